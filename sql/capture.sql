-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, part 4: table-change capture.

-- ---------------------------------------------------------------------
-- Table-change capture: mikkoo.capture(), mikkoo.uncapture(), the view
-- mikkoo.captures and CALL mikkoo.snapshot() (see mikkoo-capture(7)).
--
-- A capture is a row of mikkoo.capture_settings and four AFTER ... FOR
-- EACH STATEMENT triggers on the table (INSERT, UPDATE and DELETE with
-- transition tables, and TRUNCATE) running mikkoo._capture() with the
-- queue as their one argument.  The trigger function runs with the
-- owner's rights (writers of the table need no rights on PgQ), so it
-- trusts nothing a caller can write:
--   * it runs only for a trigger whose pg_trigger row is exactly one that
--     mikkoo.capture() makes, on a table that has a settings row for the
--     queue; only roles that may write PgQ events and create triggers on
--     the table can write that row (a row-level policy);
--   * everything it sends comes from that row, the catalog and the
--     statement's transition tables, not from trigger arguments;
--   * mikkoo_new and mikkoo_old are the transition tables the trigger
--     row names (they hide any relation of that name in pg_temp);
--   * a row is rendered as to_jsonb() renders it, except that a value of
--     a type whose owner is neither a superuser nor the schema's owner
--     goes through its type's output function instead of a cast to json
--     its owner may have made (mikkoo._render_value), so no code of the
--     table's owner or writer runs with the owner's rights.
--
-- Statement level, because the work is then set-based: one query turns
-- all the changed rows into message bodies and inserts their events
-- straight into the queue's current event table (which is what
-- pgq.current_event_table() is for).  That is as safe across table
-- rotation as pgq.insert_event_raw(), which does the same: the name is
-- read in the writing transaction, batches that span a switch read both
-- tables, and the next rotation waits until the slowest consumer's tick
-- is past the last switch (its step 2 txid), so no table is emptied
-- while a writer of it is open.  Where only PgQ may insert (a queue with
-- a per-transaction limit, or one closed to inserts, or an owner without
-- pgq_admin, which PgQ's event tables need), each event goes through
-- pgq.insert_event() instead, which pgq_writer may call.
-- ---------------------------------------------------------------------

-- The settings of each capture: the only record the trigger trusts.
CREATE TABLE IF NOT EXISTS mikkoo.capture_settings (
    tbl            REGCLASS NOT NULL,
    queue          TEXT NOT NULL,
    exchange       TEXT NOT NULL,
    routing_key    TEXT NOT NULL,
    columns        TEXT[],
    exclude        TEXT[],
    skip_unchanged BOOLEAN NOT NULL,
    key_columns    TEXT[] NOT NULL,
    trigger_prefix TEXT NOT NULL,
    captured_by    NAME NOT NULL DEFAULT current_user,
    captured_at    TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, queue)
);
COMMENT ON TABLE mikkoo.capture_settings IS
    'One row per captured table and queue, written by mikkoo.capture(); '
    'the capture''s triggers take every setting from here';
COMMENT ON COLUMN mikkoo.capture_settings.trigger_prefix IS
    'The triggers are named prefix_i, _u, _d and _t';
COMMENT ON COLUMN mikkoo.capture_settings.key_columns IS
    'The primary key''s columns at capture time: the message''s id';

-- Readable by all (as pg_trigger is); written only for tables the role
-- may create triggers on, and (by the grants below) only by roles that
-- may write PgQ events.
ALTER TABLE mikkoo.capture_settings ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS capture_settings_read ON mikkoo.capture_settings;
CREATE POLICY capture_settings_read ON mikkoo.capture_settings
    FOR SELECT USING (true);
DROP POLICY IF EXISTS capture_settings_add ON mikkoo.capture_settings;
CREATE POLICY capture_settings_add ON mikkoo.capture_settings
    FOR INSERT
    WITH CHECK (pg_catalog.has_table_privilege(tbl, 'TRIGGER'));
DROP POLICY IF EXISTS capture_settings_remove ON mikkoo.capture_settings;
CREATE POLICY capture_settings_remove ON mikkoo.capture_settings
    FOR DELETE USING (pg_catalog.has_table_privilege(tbl, 'TRIGGER'));

-- The arguments of a trigger (pg_trigger.tgargs: each NUL-terminated).
CREATE OR REPLACE FUNCTION mikkoo._trigger_args(in_args BYTEA,
                                                in_n SMALLINT)
RETURNS TEXT[]
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE a(i, rest, arg) AS (
        SELECT 0, in_args, NULL::bytea
        UNION ALL
        SELECT a.i + 1,
               substring(a.rest FROM position(decode('00', 'hex') IN a.rest)
                                     + 1),
               substring(a.rest FOR position(decode('00', 'hex') IN a.rest)
                                    - 1)
        FROM a WHERE a.i < in_n)
    SELECT coalesce(array_agg(convert_from(a.arg, getdatabaseencoding())
                              ORDER BY a.i), '{}')
    FROM a WHERE a.i > 0;
$$;

-- The primary key's columns in key order ('{}' without one).
CREATE OR REPLACE FUNCTION mikkoo._capture_key(in_tbl OID)
RETURNS TEXT[]
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(a.attname::text ORDER BY k.i), '{}')
    FROM pg_index x
    CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, i)
    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
    WHERE x.indrelid = in_tbl AND x.indisprimary;
$$;

-- What the events of one kind of change (in_op: INSERT, UPDATE, DELETE,
-- TRUNCATE or R for a snapshot's row) of a table need from its names:
-- the routing key, the body up to "id": and the headers.
CREATE OR REPLACE FUNCTION mikkoo._capture_names(
    in_schema TEXT, in_table TEXT, in_routing_key TEXT, in_op TEXT)
RETURNS TEXT[]
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[
        replace(replace(replace(in_routing_key, '{schema}', in_schema),
                        '{table}', in_table), '{action}', a),
        '{"table_name":' || to_json(in_schema || '.' || in_table)::text
            || ',"action":"' || a || '","id":',
        json_build_object('table', in_schema || '.' || in_table,
                          'action', a)::text]
    FROM (SELECT left(in_op, 1) AS a) x;
$$;

-- Whether a PgQ queue exists (PgQ lets everyone read pgq.queue).
CREATE OR REPLACE FUNCTION mikkoo._queue_exists(in_queue TEXT)
RETURNS BOOLEAN
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pgq.queue WHERE queue_name = in_queue);
$$;

-- Whose types' casts to json may run while a row is rendered: a
-- superuser's, or the schema owner's own.
CREATE OR REPLACE FUNCTION mikkoo._trusted_owner(in_role OID)
RETURNS BOOLEAN
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT r.rolsuper FROM pg_roles r
                     WHERE r.oid = in_role), false)
        OR in_role = (SELECT n.nspowner FROM pg_namespace n
                      WHERE n.nspname = 'mikkoo');
$$;

-- How to render the SQL expression in_expr, of type in_type, as
-- to_jsonb() would, without running code of a role mikkoo does not
-- trust: NULL when to_jsonb(in_expr) is safe as it is (no type in it
-- that could have a cast to json belongs to such a role), else an
-- expression of type jsonb.
--
-- to_jsonb() looks through domains, walks arrays and composites, and
-- for any other type that is not built in uses a cast to json if there
-- is one: the only code of a type's owner it runs.  Here such a value
-- of an untrusted type is its output function's text, which is what
-- to_jsonb() gives for a type without that cast; arrays of them are
-- arrays of those texts.  A composite of an untrusted type is rendered
-- field by field, from the fields it has now (so one added later by its
-- owner is not rendered by to_jsonb either); arrays of such composites
-- element by element (of more than one dimension: their text).
-- Nothing here casts: format('%s') calls the output function.
CREATE OR REPLACE FUNCTION mikkoo._render_value(in_type OID, in_expr TEXT,
                                                in_depth INTEGER DEFAULT 0)
RETURNS TEXT
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_t      record;
    v_elem   record;
    v_sub    TEXT;
    v_i      TEXT := 'i' || in_depth;
    v_a      record;
    v_pairs  TEXT[] := '{}';
    v_unsafe BOOLEAN := false;
BEGIN
    IF in_depth > 64 THEN
        RAISE EXCEPTION 'mikkoo: types nested too deep to render: %',
                        in_type::regtype;
    END IF;
    SELECT t.typtype, t.typbasetype, t.typelem, t.typrelid,
           t.oid < 16384 AS builtin,
           t.typelem <> 0 AND t.typsubscript =
               'pg_catalog.array_subscript_handler'::regproc AS is_array,
           mikkoo._trusted_owner(t.typowner) AS trusted
        INTO v_t FROM pg_type t WHERE t.oid = in_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mikkoo: no type %', in_type;
    END IF;
    IF v_t.typtype = 'd' THEN
        RETURN mikkoo._render_value(v_t.typbasetype, in_expr, in_depth + 1);
    ELSIF v_t.is_array THEN
        v_sub := mikkoo._render_value(v_t.typelem,
                                      format('(%s)[%s]', in_expr, v_i),
                                      in_depth + 1);
        IF v_sub IS NULL THEN
            RETURN NULL;
        END IF;
        -- the element's own type, through domains: composite or not?
        WITH RECURSIVE b(oid, typtype, typbasetype) AS (
            SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t
            WHERE t.oid = v_t.typelem
            UNION ALL
            SELECT t.oid, t.typtype, t.typbasetype
            FROM b JOIN pg_type t ON t.oid = b.typbasetype
            WHERE b.typtype = 'd')
        SELECT b.typtype INTO v_elem FROM b WHERE b.typtype <> 'd';
        IF v_elem.typtype <> 'c' THEN
            RETURN format('CASE WHEN (%1$s) IS NULL THEN NULL'
                          ' ELSE to_jsonb(format(''%%s'', %1$s)::text[]) END',
                          in_expr);
        END IF;
        RETURN format('CASE WHEN (%1$s) IS NULL THEN NULL'
                      ' WHEN array_ndims(%1$s) IS NULL THEN ''[]''::jsonb'
                      ' WHEN array_ndims(%1$s) > 1'
                      ' THEN to_jsonb(format(''%%s'', %1$s))'
                      ' ELSE (SELECT jsonb_agg(%2$s ORDER BY %3$s)'
                      ' FROM generate_subscripts(%1$s, 1) %3$s) END',
                      in_expr, v_sub, v_i);
    ELSIF v_t.typtype = 'c' THEN
        FOR v_a IN SELECT a.attname, a.atttypid FROM pg_attribute a
                   WHERE a.attrelid = v_t.typrelid AND a.attnum > 0
                     AND NOT a.attisdropped ORDER BY a.attnum LOOP
            v_sub := mikkoo._render_value(
                v_a.atttypid, format('(%s).%I', in_expr, v_a.attname),
                in_depth + 1);
            v_unsafe := v_unsafe OR v_sub IS NOT NULL;
            v_pairs := v_pairs || format('%L, %s', v_a.attname,
                coalesce(v_sub, format('(%s).%I', in_expr, v_a.attname)));
        END LOOP;
        IF v_t.trusted AND NOT v_unsafe THEN
            RETURN NULL;
        END IF;
        RETURN format('CASE WHEN num_nulls(%s) = 1 THEN NULL ELSE %s END',
                      in_expr, mikkoo._render_object(v_pairs));
    ELSIF v_t.builtin OR v_t.trusted THEN
        RETURN NULL;
    END IF;
    RETURN format('CASE WHEN (%1$s) IS NULL THEN NULL'
                  ' ELSE to_jsonb(format(''%%s'', %1$s)) END', in_expr);
END;
$$;

-- jsonb_build_object() over key, value pairs (each 'key, value'), in
-- calls of up to 50 pairs (a function takes at most 100 arguments).
CREATE OR REPLACE FUNCTION mikkoo._render_object(in_pairs TEXT[])
RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(c.o, ' || ' ORDER BY c.n), '''{}''::jsonb')
    FROM (SELECT (i - 1) / 50 AS n,
                 'jsonb_build_object(' || string_agg(p, ', ' ORDER BY i)
                 || ')' AS o
          FROM unnest(in_pairs) WITH ORDINALITY u(p, i)
          GROUP BY (i - 1) / 50) c;
$$;

-- The expression that renders a row of table in_tbl, as alias t, into
-- jsonb: to_jsonb(t.*) when that is safe (mikkoo._render_value), else
-- the columns one by one.  in_as_slot: as a slot worker renders it,
-- which sends a column it does not read (mikkoo._input_type NULL, see
-- logical.sql) as its text.
CREATE OR REPLACE FUNCTION mikkoo._render_row(in_tbl OID,
                                              in_as_slot BOOLEAN)
RETURNS TEXT
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_a      record;
    v_sub    TEXT;
    v_pairs  TEXT[] := '{}';
    v_unsafe BOOLEAN := false;
BEGIN
    FOR v_a IN SELECT a.attname, a.atttypid FROM pg_attribute a
               WHERE a.attrelid = in_tbl AND a.attnum > 0
                 AND NOT a.attisdropped ORDER BY a.attnum LOOP
        IF in_as_slot AND mikkoo._input_type(v_a.atttypid) IS NULL THEN
            v_sub := format('to_jsonb(format(''%%s'', t.%I))', v_a.attname);
        ELSE
            v_sub := mikkoo._render_value(v_a.atttypid,
                                          format('t.%I', v_a.attname));
        END IF;
        v_unsafe := v_unsafe OR v_sub IS NOT NULL;
        v_pairs := v_pairs || format('%L, %s', v_a.attname,
                                     coalesce(v_sub,
                                              format('t.%I', v_a.attname)));
    END LOOP;
    IF NOT v_unsafe THEN
        RETURN 'to_jsonb(t.*)';
    END IF;
    RETURN mikkoo._render_object(v_pairs);
END;
$$;

CREATE OR REPLACE FUNCTION mikkoo._render_row(in_tbl OID)
RETURNS TEXT
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mikkoo._render_row(in_tbl, false);
$$;

-- The query that makes and inserts the events of a bulk statement (over
-- 64 rows) of table in_tbl: one query, planned each time, over the
-- transition tables, whose bodies are those mikkoo._capture() makes row
-- by row (test 38 checks that both ways send the same messages).  In the
-- templates below %1$s is the row expression (mikkoo._render_row), and
-- for an update %2$s the diff, %3$s and %4$s the typed columns it
-- compares.  The query's parameters: $1 the body up to "id":, $2 the
-- key's columns, $3 the keys left out of old and new, $4 recorded_at and
-- the closing brace, $5 skip_unchanged, $6 the routing key, $7 the
-- exchange, $8 the headers, $9 the queue.  OFFSET 0 keeps each row
-- rendered once (the planner would copy the expression into every use).
-- An update's transition tables hold old and new rows in the same order.
CREATE OR REPLACE FUNCTION mikkoo._capture_bulk_sql(
    in_op TEXT, in_tbl OID, in_row TEXT, in_drop TEXT[], in_queue TEXT)
RETURNS TEXT
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    c_insert CONSTANT TEXT := $q$
SELECT $1 || CASE cardinality($2)
                 WHEN 0 THEN 'null'
                 WHEN 1 THEN coalesce((x.n -> $2[1])::text, 'null')
                 ELSE (SELECT json_object_agg(k.k, x.n -> k.k ORDER BY k.i)::text
                       FROM unnest($2) WITH ORDINALITY k(k, i)) END
          || ',"old":{},"new":' || x.f::text
          || ',"diff":' || (CASE WHEN jsonb_strip_nulls(x.f) = x.f THEN x.f
                                 ELSE (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
                                       FROM jsonb_each(x.f) e
                                       WHERE e.value <> 'null'::jsonb) END)::text
          || $4 AS body
FROM (SELECT y.n, y.n - $3 AS f
      FROM (SELECT %1$s AS n FROM mikkoo_new t OFFSET 0) y OFFSET 0) x$q$;
    c_update CONSTANT TEXT := $q$
SELECT $1 || CASE cardinality($2)
                 WHEN 0 THEN 'null'
                 WHEN 1 THEN coalesce((x.n -> $2[1])::text, 'null')
                 ELSE (SELECT json_object_agg(k.k, x.n -> k.k ORDER BY k.i)::text
                       FROM unnest($2) WITH ORDINALITY k(k, i)) END
          || ',"old":' || x.of::text || ',"new":' || x.nf::text
          || ',"diff":' || x.d::text || $4 AS body
FROM (SELECT z.n, z.of, z.nf, %2$s AS d
      FROM (SELECT n.n, o.o - $3 AS of, n.n - $3 AS nf%3$s
            FROM (SELECT row_number() OVER () AS i, %1$s AS o%4$s
                  FROM mikkoo_old t) o
            JOIN (SELECT row_number() OVER () AS i, %1$s AS n%4$s
                  FROM mikkoo_new t) n ON n.i = o.i
            OFFSET 0) z
      OFFSET 0) x
WHERE NOT $5 OR x.d <> '{}'::jsonb$q$;
    c_delete CONSTANT TEXT := $q$
SELECT $1 || CASE cardinality($2)
                 WHEN 0 THEN 'null'
                 WHEN 1 THEN coalesce((x.n -> $2[1])::text, 'null')
                 ELSE (SELECT json_object_agg(k.k, x.n -> k.k ORDER BY k.i)::text
                       FROM unnest($2) WITH ORDINALITY k(k, i)) END
          || ',"old":' || x.of::text || ',"new":{},"diff":{}' || $4 AS body
FROM (SELECT y.n, y.n - $3 AS of
      FROM (SELECT %1$s AS n FROM mikkoo_old t OFFSET 0) y OFFSET 0) x$q$;
    -- An update's diff: the columns of the new row that differ from the
    -- old one, as jsonb.
    c_diff CONSTANT TEXT := $q$CASE WHEN z.of = z.nf THEN '{}'::jsonb
        ELSE (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
              FROM jsonb_each(z.nf) e
              WHERE z.of -> e.key IS DISTINCT FROM e.value) END$q$;
    -- Where the events go: %1$s the event table, %2$L its sequence,
    -- %3$s the bodies' query.
    c_direct CONSTANT TEXT := $q$
INSERT INTO %1$s (ev_id, ev_time, ev_type, ev_data, ev_extra1, ev_extra2,
                  ev_extra4)
SELECT nextval(%2$L), now(), $6, b.body, $7, 'application/json', $8
FROM (%3$s) b$q$;
    c_each CONSTANT TEXT := $q$
SELECT count(pgq.insert_event($9, $6, b.body, $7, 'application/json', NULL,
                              $8))
FROM (%3$s) b$q$;

    v_diff  TEXT := c_diff;
    v_pairs TEXT := '';
    v_cols  TEXT := '';
    v_sql   TEXT;
    q       record;
BEGIN
    IF in_op = 'UPDATE' THEN
        -- A statement's diff, worked out per table: columns of the types
        -- where "distinct" means their jsonb differs too (text only under
        -- a deterministic collation) are compared as they are, others as
        -- jsonb.  Several times cheaper than c_diff.
        SELECT 'z.nf - ARRAY[' || coalesce(string_agg(format(
                   'CASE WHEN %s THEN %L END',
                   CASE WHEN a.typed
                        THEN format('z.o%1$s IS NOT DISTINCT FROM z.n%1$s',
                                    a.attnum)
                        ELSE format('z.of -> %1$L IS NOT DISTINCT FROM'
                                    ' z.nf -> %1$L', a.attname)
                        END, a.attname), ', '), '') || ']::text[]',
               coalesce(string_agg(format(', o.c%1$s AS o%1$s,'
                                          ' n.c%1$s AS n%1$s', a.attnum), '')
                        FILTER (WHERE a.typed), ''),
               coalesce(string_agg(format(', t.%I AS c%s', a.attname,
                                          a.attnum), '')
                        FILTER (WHERE a.typed), '')
            INTO v_diff, v_pairs, v_cols
        FROM (SELECT a.attname, a.attnum,
                     a.atttypid IN ('int2'::regtype, 'int4'::regtype,
                         'int8'::regtype, 'oid'::regtype, 'bool'::regtype,
                         'float4'::regtype, 'float8'::regtype,
                         'numeric'::regtype, 'text'::regtype,
                         'varchar'::regtype, 'bpchar'::regtype,
                         'name'::regtype, 'date'::regtype, 'time'::regtype,
                         'timestamp'::regtype, 'timestamptz'::regtype,
                         'uuid'::regtype, 'bytea'::regtype,
                         'jsonb'::regtype)
                     AND coalesce(c.collisdeterministic, true) AS typed
              FROM pg_attribute a
              LEFT JOIN pg_collation c ON c.oid = a.attcollation
              WHERE a.attrelid = in_tbl AND a.attnum > 0
                AND NOT a.attisdropped AND a.attname <> ALL (in_drop)) a;
    END IF;
    v_sql := format(CASE in_op WHEN 'INSERT' THEN c_insert
                               WHEN 'UPDATE' THEN c_update
                               ELSE c_delete END,
                    in_row, v_diff, v_pairs, v_cols);
    -- Straight into the event table, unless only PgQ may insert: it
    -- counts events per transaction, refuses a closed queue, and the
    -- owner may lack the rights on the table.
    SELECT pgq.quote_fqname(x.queue_data_pfx || '_'
                            || x.queue_cur_table::text) AS tbl,
           x.queue_event_seq AS seq
        INTO q FROM pgq.queue x
        WHERE x.queue_name = in_queue AND x.queue_per_tx_limit IS NULL
          AND NOT x.queue_disable_insert;
    IF FOUND AND has_table_privilege(q.tbl, 'INSERT')
       AND has_sequence_privilege(q.seq, 'USAGE') THEN
        RETURN format(c_direct, q.tbl, q.seq, v_sql);
    END IF;
    RETURN format(c_each, NULL, NULL, v_sql);
END;
$body$;

-- The trigger function of every capture (see the top of this part).
--
-- A statement of up to 64 rows (most of them: one row) is done in
-- PL/pgSQL from plans cached for the session: its rows are read into
-- arrays, each turned into a body, each body inserted with
-- pgq.insert_event_raw() (or pgq.insert_event() where the owner lacks
-- pgq_admin).  A bigger one by one query (mikkoo._capture_bulk_sql).
-- Bodies are concatenated: compact, and cheaper than json_build_object;
-- rows are jsonb's own text.
CREATE OR REPLACE FUNCTION mikkoo._capture()
RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    v_type     INTEGER;
    v_oldname  NAME;
    v_newname  NAME;
    s          record;
    v_names    TEXT[];      -- routing key, body head, headers
    v_tail     TEXT;
    v_drop     TEXT[];
    v_row      TEXT := 'to_jsonb(t.*)';
    v_old      JSONB[];     -- the rows, up to 65 (65 tell a bulk statement)
    v_new      JSONB[];
    v_bodies   TEXT[] := '{}';
    v_body     TEXT;
    v_ev       BIGINT;
    v_n        JSONB;
    v_f        JSONB;
    v_of       JSONB;
    v_nf       JSONB;
    v_d        JSONB;
    v_id       TEXT;
BEGIN
    -- Which trigger this must be, from what fired: an AFTER ... FOR EACH
    -- STATEMENT trigger on one event (pg_trigger.tgtype bits), with the
    -- transition tables of that event under their names; and the queue.
    v_type := CASE TG_OP WHEN 'INSERT' THEN 4 WHEN 'DELETE' THEN 8
                         WHEN 'UPDATE' THEN 16 WHEN 'TRUNCATE' THEN 32 END;
    v_oldname := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN 'mikkoo_old' END;
    v_newname := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN 'mikkoo_new' END;
    SELECT c.queue, c.exchange, c.routing_key, c.columns, c.exclude,
           c.skip_unchanged, c.key_columns,
           NOT EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.tbl AND a.attnum > 0
                         AND NOT a.attisdropped AND a.atttypid >= 16384)
               AS builtin_types,
           x.queue_name IS NOT NULL AS queue_exists,
           has_function_privilege('pgq.insert_event_raw(text, bigint,'
               ' timestamptz, integer, integer, text, text, text, text,'
               ' text, text)'::regprocedure, 'EXECUTE') AS raw
        INTO s
    FROM mikkoo.capture_settings c
    JOIN pg_trigger g ON g.tgrelid = c.tbl
    LEFT JOIN pgq.queue x ON x.queue_name = c.queue
    WHERE c.tbl = TG_RELID AND c.queue = TG_ARGV[0] AND TG_NARGS = 1
      AND TG_LEVEL = 'STATEMENT' AND TG_WHEN = 'AFTER'
      AND g.tgname = TG_NAME
      AND g.tgname = c.trigger_prefix || '_' || lower(left(TG_OP, 1))
      AND g.tgfoid = 'mikkoo._capture()'::regprocedure
      AND g.tgtype = v_type AND g.tgnargs = 1 AND g.tgqual IS NULL
      AND g.tgattr = ''::int2vector AND g.tgconstraint = 0
      AND g.tgoldtable IS NOT DISTINCT FROM v_oldname
      AND g.tgnewtable IS NOT DISTINCT FROM v_newname;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mikkoo: trigger % on %.% was not made by '
                        'mikkoo.capture(): it sends nothing', TG_NAME,
                        TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Capture the table with mikkoo.capture(), or drop '
                         'the trigger.';
    END IF;
    IF NOT s.queue_exists THEN
        RAISE EXCEPTION 'mikkoo: table %.% is captured into PgQ queue ''%'','
                        ' which does not exist', TG_TABLE_SCHEMA,
                        TG_TABLE_NAME, s.queue
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create the queue, or stop the capture with '
                         'mikkoo.uncapture().';
    END IF;
    v_names := mikkoo._capture_names(TG_TABLE_SCHEMA, TG_TABLE_NAME,
                                     s.routing_key, TG_OP);
    v_tail := ',"recorded_at":"'
              || to_char(clock_timestamp() AT TIME ZONE 'UTC',
                         'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"}';
    IF TG_OP = 'TRUNCATE' THEN
        v_bodies := ARRAY[v_names[2] || 'null,"old":{},"new":{},"diff":{}'
                          || v_tail];
    ELSE
        -- The keys to leave out.  An allow list becomes a deny list of
        -- the columns the table has now, so a column added later stays
        -- out.
        IF s.columns IS NOT NULL THEN
            v_drop := ARRAY(SELECT a.attname::text FROM pg_attribute a
                            WHERE a.attrelid = TG_RELID AND a.attnum > 0
                              AND NOT a.attisdropped
                              AND a.attname <> ALL (s.columns));
        ELSE
            v_drop := coalesce(s.exclude, '{}');
        END IF;
        -- The rows, rendered.
        IF s.builtin_types THEN
            IF TG_OP <> 'DELETE' THEN
                v_new := ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_new t
                               LIMIT 65);
            END IF;
            IF TG_OP <> 'INSERT' THEN
                v_old := ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_old t
                               LIMIT 65);
            END IF;
        ELSE
            v_row := mikkoo._render_row(TG_RELID);
            IF TG_OP <> 'DELETE' THEN
                EXECUTE format('SELECT ARRAY(SELECT %s FROM mikkoo_new t'
                               ' LIMIT 65)', v_row) INTO v_new;
            END IF;
            IF TG_OP <> 'INSERT' THEN
                EXECUTE format('SELECT ARRAY(SELECT %s FROM mikkoo_old t'
                               ' LIMIT 65)', v_row) INTO v_old;
            END IF;
        END IF;
        IF cardinality(coalesce(v_new, v_old)) > 64 THEN
            EXECUTE mikkoo._capture_bulk_sql(TG_OP, TG_RELID, v_row, v_drop,
                                             s.queue)
                USING v_names[2], s.key_columns, v_drop, v_tail,
                      s.skip_unchanged, v_names[1], s.exchange, v_names[3],
                      s.queue;
            RETURN NULL;
        END IF;
        FOR i IN 1 .. cardinality(coalesce(v_new, v_old)) LOOP
            v_n := coalesce(v_new[i], v_old[i]);
            -- the id: the key's value, or an object of the key's values
            IF cardinality(s.key_columns) = 1 THEN
                v_id := coalesce((v_n -> s.key_columns[1])::text, 'null');
            ELSIF cardinality(s.key_columns) = 0 THEN
                v_id := 'null';
            ELSE
                v_id := (SELECT json_object_agg(k.k, v_n -> k.k ORDER BY k.i)::text
                         FROM unnest(s.key_columns) WITH ORDINALITY k(k, i));
            END IF;
            IF TG_OP = 'INSERT' THEN
                -- diff: the row without its null columns (usually nothing
                -- at any depth is null, and that is cheap to see)
                v_f := v_n - v_drop;
                IF jsonb_strip_nulls(v_f) = v_f THEN
                    v_d := v_f;
                ELSE
                    v_d := (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
                            FROM jsonb_each(v_f) e
                            WHERE e.value <> 'null'::jsonb);
                END IF;
                v_body := ',"old":{},"new":' || v_f::text
                          || ',"diff":' || v_d::text;
            ELSIF TG_OP = 'UPDATE' THEN
                v_of := v_old[i] - v_drop;
                v_nf := v_n - v_drop;
                IF v_of = v_nf THEN
                    v_d := '{}';
                ELSE
                    v_d := (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
                            FROM jsonb_each(v_nf) e
                            WHERE v_of -> e.key IS DISTINCT FROM e.value);
                END IF;
                CONTINUE WHEN s.skip_unchanged AND v_d = '{}'::jsonb;
                v_body := ',"old":' || v_of::text || ',"new":' || v_nf::text
                          || ',"diff":' || v_d::text;
            ELSE
                v_body := ',"old":' || (v_n - v_drop)::text
                          || ',"new":{},"diff":{}';
            END IF;
            v_bodies := v_bodies || (v_names[2] || v_id || v_body || v_tail);
        END LOOP;
    END IF;
    -- (assignments, not PERFORM: a simple expression skips the executor)
    FOREACH v_body IN ARRAY v_bodies LOOP
        IF s.raw THEN
            v_ev := pgq.insert_event_raw(s.queue, NULL, now(), NULL, NULL,
                v_names[1], v_body, s.exchange, 'application/json', NULL,
                v_names[3]);
        ELSE
            v_ev := pgq.insert_event(s.queue, v_names[1], v_body,
                s.exchange, 'application/json', NULL, v_names[3]);
        END IF;
    END LOOP;
    RETURN NULL;
END;
$body$;

-- Deletes the settings of captured tables that no longer exist (DROP
-- TABLE ends a capture: its triggers go with it).  With the owner's
-- rights, because nobody holds a right on a dropped table.
CREATE OR REPLACE FUNCTION mikkoo._capture_gc()
RETURNS VOID
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM mikkoo.capture_settings s
    WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.tbl);
$$;

-- The same at once, for the event trigger mikkoo_capture_dropped (which
-- only a superuser can create: see the end of this file).
CREATE OR REPLACE FUNCTION mikkoo._capture_dropped()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mikkoo.capture_settings s
    USING pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = s.tbl::oid;
END;
$$;

CREATE OR REPLACE VIEW mikkoo.captures AS
SELECT n.nspname || '.' || c.relname AS table_name,
       s.queue,
       s.exchange,
       s.routing_key,
       s.columns,
       s.exclude,
       s.skip_unchanged,
       s.key_columns,
       c.oid::regclass AS tbl
FROM mikkoo.capture_settings s
JOIN pg_catalog.pg_class c ON c.oid = s.tbl
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
COMMENT ON VIEW mikkoo.captures IS
    'Tables captured with mikkoo.capture(): one row per table and queue';

CREATE OR REPLACE FUNCTION mikkoo.capture(
    tbl REGCLASS, queue TEXT, exchange TEXT,
    routing_key TEXT DEFAULT '{schema}.{table}',
    columns TEXT[] DEFAULT NULL, exclude TEXT[] DEFAULT NULL,
    skip_unchanged BOOLEAN DEFAULT true)
RETURNS VOID
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind   "char";
    v_col    TEXT;
    v_list   TEXT;           -- columns or exclude, for the message
    v_prefix TEXT;
    v_op     TEXT;
BEGIN
    IF capture.tbl IS NULL THEN
        RAISE EXCEPTION 'mikkoo.capture: the table must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO v_kind FROM pg_class c WHERE c.oid = capture.tbl;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'mikkoo.capture: % is %, not a table', capture.tbl,
            CASE v_kind WHEN 'v' THEN 'a view'
                        WHEN 'm' THEN 'a materialized view'
                        WHEN 'f' THEN 'a foreign table'
                        WHEN 'S' THEN 'a sequence'
                        WHEN 'i' THEN 'an index'
                        WHEN 'I' THEN 'an index'
                        WHEN 'c' THEN 'a composite type'
                        WHEN 't' THEN 'a TOAST table'
                        ELSE 'something else' END
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT has_table_privilege(capture.tbl, 'TRIGGER') THEN
        RAISE EXCEPTION 'mikkoo.capture: permission denied for table %: '
                        'capturing it takes the right to create triggers '
                        'on it', capture.tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT has_table_privilege('mikkoo.capture_settings', 'INSERT') THEN
        RAISE EXCEPTION 'mikkoo.capture: permission denied: capturing into '
                        'a PgQ queue takes the right to write PgQ events'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'GRANT pgq_writer TO the role.';
    END IF;
    IF capture.queue IS NULL THEN
        RAISE EXCEPTION 'mikkoo.capture: queue must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT mikkoo._queue_exists(capture.queue) THEN
        RAISE EXCEPTION 'mikkoo.capture: no PgQ queue ''%''', capture.queue
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it first: SELECT pgq.create_queue(...).';
    END IF;
    IF capture.exchange IS NULL THEN
        RAISE EXCEPTION 'mikkoo.capture: exchange must not be NULL (use '''' '
                        'for the default exchange)'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF capture.routing_key IS NULL THEN
        RAISE EXCEPTION 'mikkoo.capture: routing_key must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF capture.skip_unchanged IS NULL THEN
        RAISE EXCEPTION 'mikkoo.capture: skip_unchanged must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF array_position(capture.columns, NULL) IS NOT NULL
       OR array_position(capture.exclude, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'mikkoo.capture: columns and exclude must not '
                        'contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOR v_col, v_list IN
        SELECT u.c, u.l
        FROM (SELECT c, 'columns' FROM unnest(capture.columns) c
              UNION ALL
              SELECT c, 'exclude' FROM unnest(capture.exclude) c) u(c, l)
        WHERE NOT EXISTS (
            SELECT 1 FROM pg_attribute a
            WHERE a.attrelid = capture.tbl AND a.attnum > 0
              AND NOT a.attisdropped AND a.attname = u.c) LOOP
        RAISE EXCEPTION 'mikkoo.capture: table % has no column ''%'' '
                        '(in %)', capture.tbl, v_col, v_list
            USING ERRCODE = 'undefined_column';
    END LOOP;
    FOR v_col IN SELECT u.c FROM unnest(capture.columns) u(c)
                 WHERE u.c = ANY (capture.exclude) LOOP
        RAISE EXCEPTION 'mikkoo.capture: column ''%'' is in both columns '
                        'and exclude', v_col
            USING ERRCODE = 'invalid_parameter_value';
    END LOOP;

    PERFORM mikkoo._capture_gc();
    -- Re-capturing replaces the settings: the old triggers go.
    PERFORM mikkoo.uncapture(capture.tbl, capture.queue);
    -- Trigger names show the queue when it is short enough.
    v_prefix := 'mikkoo_' || CASE WHEN octet_length(capture.queue) <= 40
                                       AND capture.queue ~ '^[a-z0-9_.-]+$'
                                  THEN capture.queue
                                  ELSE md5(capture.queue) END;
    -- The key is looked up now, not per statement.
    INSERT INTO mikkoo.capture_settings (tbl, queue, exchange, routing_key,
                                         columns, exclude, skip_unchanged,
                                         key_columns, trigger_prefix)
    VALUES (capture.tbl, capture.queue, capture.exchange,
            capture.routing_key, capture.columns, capture.exclude,
            capture.skip_unchanged, mikkoo._capture_key(capture.tbl),
            v_prefix);
    FOREACH v_op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s'
                       ' FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION mikkoo._capture(%L)',
                       v_prefix || '_' || lower(left(v_op, 1)), v_op,
                       capture.tbl,
                       CASE v_op
                       WHEN 'INSERT' THEN 'REFERENCING NEW TABLE AS mikkoo_new'
                       WHEN 'UPDATE' THEN 'REFERENCING OLD TABLE AS mikkoo_old'
                                          ' NEW TABLE AS mikkoo_new'
                       WHEN 'DELETE' THEN 'REFERENCING OLD TABLE AS mikkoo_old'
                       ELSE '' END,
                       capture.queue);
    END LOOP;
END;
$$;
COMMENT ON FUNCTION mikkoo.capture(REGCLASS, TEXT, TEXT, TEXT, TEXT[],
                                   TEXT[], BOOLEAN) IS
    'Capture INSERT, UPDATE, DELETE and TRUNCATE of a table as events in '
    'a PgQ queue; again for the same table and queue replaces the settings';

-- Drops every trigger on the table that runs mikkoo._capture() for the
-- queue (also ones not made by mikkoo.capture(), which would only fail),
-- and the settings.
CREATE OR REPLACE FUNCTION mikkoo.uncapture(tbl REGCLASS,
                                            queue TEXT DEFAULT NULL)
RETURNS INTEGER
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t      record;
    v_seen TEXT[] := '{}';
BEGIN
    IF uncapture.tbl IS NULL THEN
        RAISE EXCEPTION 'mikkoo.uncapture: the table must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mikkoo._capture_gc();
    FOR t IN SELECT g.tgname, (mikkoo._trigger_args(g.tgargs, g.tgnargs))[1]
                               AS q
             FROM pg_trigger g
             WHERE g.tgrelid = uncapture.tbl
               AND g.tgfoid = 'mikkoo._capture()'::regprocedure LOOP
        CONTINUE WHEN uncapture.queue IS NOT NULL
                      AND t.q IS DISTINCT FROM uncapture.queue;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, uncapture.tbl);
        IF t.q IS NOT NULL AND NOT t.q = ANY (v_seen) THEN
            v_seen := v_seen || t.q;
        END IF;
    END LOOP;
    FOR t IN DELETE FROM mikkoo.capture_settings s
             WHERE s.tbl = uncapture.tbl
               AND (uncapture.queue IS NULL OR s.queue = uncapture.queue)
             RETURNING s.queue AS q LOOP
        IF NOT t.q = ANY (v_seen) THEN
            v_seen := v_seen || t.q;
        END IF;
    END LOOP;
    RETURN cardinality(v_seen);
END;
$$;
COMMENT ON FUNCTION mikkoo.uncapture(REGCLASS, TEXT) IS
    'Stop capturing a table into a queue (every queue when NULL); '
    'returns how many captures were stopped';
