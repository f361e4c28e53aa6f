-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, part 7, run by the installing role again: upgrades of
-- earlier installs, the event trigger, and the end of the transaction
-- that part 1 began.

-- ---------------------------------------------------------------------
-- Upgrade from mikkoo.sql 0.1.0, whose captures kept their settings in
-- the triggers' arguments (13 of them) and whose trigger function ran
-- with the owner's rights whatever trigger called it.  Each such capture
-- found well-formed (the four triggers 0.1.0 made, their arguments
-- alike) gets its settings row and new triggers; the rest are left
-- alone with a warning, and refused when they fire.  Run as the
-- installing role: replacing triggers takes the tables' owner's rights
-- (a superuser has them).
-- ---------------------------------------------------------------------
DO $upgrade$
DECLARE
    c       record;
    v_op    TEXT;
    v_n     INTEGER := 0;
BEGIN
    FOR c IN
        WITH t AS (
            SELECT g.tgrelid, g.tgname, g.tgtype, g.tgoldtable,
                   g.tgnewtable, g.tgqual, g.tgattr,
                   mikkoo._trigger_args(g.tgargs, g.tgnargs) AS a
            FROM pg_catalog.pg_trigger g
            WHERE g.tgfoid = 'mikkoo._capture()'::regprocedure
              AND g.tgnargs = 13)
        SELECT t.tgrelid::regclass AS tbl, t.a[1] AS queue,
               array_agg(t.tgname ORDER BY t.tgname) AS triggers,
               count(DISTINCT t.a[1:7]) = 1
               AND count(*) = 4
               AND bool_and(t.tgqual IS NULL AND t.tgattr = ''::int2vector)
               AND bool_and(t.tgname = 'mikkoo_'
                   || CASE WHEN octet_length(t.a[1]) <= 40
                                AND t.a[1] ~ '^[a-z0-9_.-]+$'
                           THEN t.a[1] ELSE md5(t.a[1]) END
                   || '_' || CASE t.tgtype WHEN 4 THEN 'i' WHEN 16 THEN 'u'
                                           WHEN 8 THEN 'd' WHEN 32 THEN 't'
                                           END)
               AND bool_and(t.tgoldtable IS NOT DISTINCT FROM
                            CASE WHEN t.tgtype IN (8, 16) THEN 'mikkoo_old'
                                 END::name
                            AND t.tgnewtable IS NOT DISTINCT FROM
                            CASE WHEN t.tgtype IN (4, 16) THEN 'mikkoo_new'
                                 END::name) AS sound,
               min(t.a[2]) AS exchange, min(t.a[3]) AS routing_key,
               min(t.a[4]) AS columns, min(t.a[5]) AS exclude,
               min(t.a[6]) AS skip_unchanged, min(t.a[7]) AS key_columns,
               min(left(t.tgname, length(t.tgname) - 2)) AS prefix
        FROM t GROUP BY t.tgrelid, t.a[1] LOOP
        IF NOT c.sound THEN
            RAISE WARNING 'mikkoo.sql: triggers % on % run mikkoo._capture() '
                          'but were not made by mikkoo.capture(); left '
                          'alone, they fail when they fire: drop them',
                          c.triggers, c.tbl;
            CONTINUE;
        END IF;
        BEGIN
            INSERT INTO mikkoo.capture_settings (tbl, queue, exchange,
                routing_key, columns, exclude, skip_unchanged, key_columns,
                trigger_prefix, captured_by)
            VALUES (c.tbl, c.queue, c.exchange, c.routing_key,
                    nullif(c.columns, '')::text[],
                    nullif(c.exclude, '')::text[],
                    c.skip_unchanged::boolean, c.key_columns::text[],
                    c.prefix,
                    (SELECT r.rolname FROM pg_catalog.pg_class x
                     JOIN pg_catalog.pg_roles r ON r.oid = x.relowner
                     WHERE x.oid = c.tbl))
            ON CONFLICT DO NOTHING;
        EXCEPTION WHEN data_exception THEN
            RAISE WARNING 'mikkoo.sql: triggers % on % have settings that '
                          'do not parse; left alone: drop them',
                          c.triggers, c.tbl;
            CONTINUE;
        END;
        FOREACH v_op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE',
                                    'TRUNCATE'] LOOP
            EXECUTE format('DROP TRIGGER %I ON %s',
                           c.prefix || '_' || lower(left(v_op, 1)), c.tbl);
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s'
                           ' FOR EACH STATEMENT'
                           ' EXECUTE FUNCTION mikkoo._capture(%L)',
                           c.prefix || '_' || lower(left(v_op, 1)), v_op,
                           c.tbl,
                           CASE v_op
                           WHEN 'INSERT'
                           THEN 'REFERENCING NEW TABLE AS mikkoo_new'
                           WHEN 'UPDATE'
                           THEN 'REFERENCING OLD TABLE AS mikkoo_old'
                                ' NEW TABLE AS mikkoo_new'
                           WHEN 'DELETE'
                           THEN 'REFERENCING OLD TABLE AS mikkoo_old'
                           ELSE '' END,
                           c.queue);
        END LOOP;
        v_n := v_n + 1;
    END LOOP;
    IF v_n > 0 THEN
        RAISE WARNING 'mikkoo.sql: % capture(s) of mikkoo.sql 0.1.0 '
                      'upgraded: their settings are in '
                      'mikkoo.capture_settings', v_n;
    END IF;
END;
$upgrade$;

-- DROP TABLE removes the settings of its captures at once, when a
-- superuser installs (event triggers are theirs alone); otherwise
-- mikkoo.capture() and mikkoo.uncapture() remove them later.  Either way
-- the triggers are gone with the table.
DO $event$
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r
        WHERE r.rolname = current_user)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger
                       WHERE evtname = 'mikkoo_capture_dropped') THEN
        CREATE EVENT TRIGGER mikkoo_capture_dropped ON sql_drop
            WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION mikkoo._capture_dropped();
    END IF;
END;
$event$;

COMMIT;
