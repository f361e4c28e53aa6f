-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql: the mikkoo schema.  Install (and re-install, it is
-- idempotent) with:
--
--     psql -v ON_ERROR_STOP=1 -f mikkoo.sql DBNAME
--
-- Needs the pgq extension (CREATE EXTENSION pgq) and PostgreSQL 13 or
-- later (gen_random_uuid is built in; uuid-ossp is no longer needed).
--
-- Compatible with the Python mikkoo's mikkoo.sql: the same table
-- (mikkoo.audit) and functions with the same names and signatures, with
-- these fixes:
--   * JSON is built with json_build_object, so a queue name with a quote
--     or backslash no longer produces invalid ev_extra4;
--   * SECURITY DEFINER functions pin search_path (no hijacking through a
--     caller's schema);
--   * functions are no longer STRICT: a NULL content type or NULL headers
--     inserts the event instead of silently inserting nothing; a NULL
--     queue, exchange or routing key raises an error instead;
--   * the install can be run again without errors.
-- Added: mikkoo.dead_letter, where mikkoo-relay stores events it cannot
-- deliver, so nothing is ever dropped (see mikkoo-replay(1)).
--
-- Least privilege (see mikkoo(7)): the relay's role needs pgq_reader,
-- INSERT on mikkoo.dead_letter and USAGE on its sequence; producers need
-- EXECUTE on the insert functions (they run as the owner); mikkoo-audit
-- needs SELECT and DELETE on mikkoo.audit; mikkoo-replay needs
-- pgq_writer plus SELECT and DELETE on mikkoo.dead_letter.

SET client_min_messages = warning;

BEGIN;

CREATE SCHEMA IF NOT EXISTS mikkoo;
COMMENT ON SCHEMA mikkoo IS 'mikkoo: PgQ to RabbitMQ relay helpers';

CREATE TABLE IF NOT EXISTS mikkoo.audit (
    message_id   UUID NOT NULL,
    event_id     BIGINT NOT NULL,
    queue        TEXT NOT NULL,
    exchange     TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    payload      TEXT NOT NULL,
    content_type TEXT,
    properties   TEXT,
    headers      TEXT,
    published_at TIMESTAMP WITH TIME ZONE NOT NULL
                 DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_message_id
    ON mikkoo.audit (message_id);
-- mikkoo-audit looks for rows older than a grace period.
CREATE INDEX IF NOT EXISTS audit_published_at
    ON mikkoo.audit (published_at);

COMMENT ON TABLE mikkoo.audit IS
    'Events inserted with mikkoo.insert_audited_event; a row is deleted '
    'when its message is seen on the confirming queue, so rows left after '
    'a grace period are events RabbitMQ never delivered';
COMMENT ON COLUMN mikkoo.audit.message_id IS
    'AMQP message_id property of the published message';
COMMENT ON COLUMN mikkoo.audit.event_id IS 'PgQ ev_id';
COMMENT ON COLUMN mikkoo.audit.queue IS 'PgQ queue';
COMMENT ON COLUMN mikkoo.audit.published_at IS
    'When the event was inserted (the inserting transaction''s time)';

CREATE TABLE IF NOT EXISTS mikkoo.dead_letter (
    id          BIGSERIAL PRIMARY KEY,
    queue       TEXT NOT NULL,
    consumer    TEXT NOT NULL,
    batch_id    BIGINT,
    ev_id       BIGINT NOT NULL,
    ev_time     TIMESTAMP WITH TIME ZONE NOT NULL,
    ev_txid     BIGINT,
    ev_retry    INTEGER,
    ev_type     TEXT,
    ev_data     TEXT,
    ev_extra1   TEXT,
    ev_extra2   TEXT,
    ev_extra3   TEXT,
    ev_extra4   TEXT,
    reason      TEXT NOT NULL,
    failed_at   TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dead_letter_queue_failed_at
    ON mikkoo.dead_letter (queue, failed_at);
CREATE INDEX IF NOT EXISTS dead_letter_ev_id
    ON mikkoo.dead_letter (ev_id);

COMMENT ON TABLE mikkoo.dead_letter IS
    'Events mikkoo-relay could not deliver: bad data (at once) or '
    'refused by RabbitMQ more than max_failures times; the ev_* columns '
    'are the PgQ event as it was; mikkoo-replay re-inserts them';
COMMENT ON COLUMN mikkoo.dead_letter.ev_retry IS
    'PgQ retry count of the last attempt (NULL: first attempt)';
COMMENT ON COLUMN mikkoo.dead_letter.reason IS
    'Why the event was not delivered, as logged by mikkoo-relay';

CREATE OR REPLACE FUNCTION mikkoo.delete_audit_record(in_message_id UUID)
RETURNS BOOLEAN
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (DELETE FROM mikkoo.audit WHERE message_id = in_message_id
               RETURNING 1)
    SELECT count(*) > 0 FROM d;
$$;
COMMENT ON FUNCTION mikkoo.delete_audit_record(UUID) IS
    'Delete the audit row of a message seen on the confirming queue; '
    'true if a row was deleted';

CREATE OR REPLACE FUNCTION mikkoo.new_audit_record(
    in_message_id UUID, in_event_id BIGINT, in_queue TEXT,
    in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT, in_properties TEXT, in_headers TEXT)
RETURNS mikkoo.audit
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO mikkoo.audit (message_id, event_id, queue, exchange,
                              routing_key, payload, content_type,
                              properties, headers)
    VALUES (in_message_id, in_event_id, in_queue, in_exchange,
            in_routing_key, in_payload, in_content_type, in_properties,
            in_headers)
    RETURNING *;
$$;

-- Shared by the public functions below: checks the arguments the relay
-- cannot do without, then inserts the PgQ event.
CREATE OR REPLACE FUNCTION mikkoo._insert(
    in_queue TEXT, in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT, in_properties TEXT, in_headers TEXT)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF in_queue IS NULL THEN
        RAISE EXCEPTION 'mikkoo: queue must not be NULL';
    END IF;
    IF in_exchange IS NULL THEN
        RAISE EXCEPTION 'mikkoo: exchange must not be NULL (use '''' for '
                        'the default exchange)';
    END IF;
    IF in_routing_key IS NULL THEN
        RAISE EXCEPTION 'mikkoo: routing key must not be NULL';
    END IF;
    RETURN pgq.insert_event(in_queue, in_routing_key, in_payload,
                            in_exchange, in_content_type, in_properties,
                            in_headers);
END;
$$;

CREATE OR REPLACE FUNCTION mikkoo.insert_event(
    in_queue TEXT, in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT, in_properties TEXT, in_headers TEXT)
RETURNS BIGINT
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mikkoo._insert(in_queue, in_exchange, in_routing_key, in_payload,
                          in_content_type, in_properties, in_headers);
$$;
COMMENT ON FUNCTION mikkoo.insert_event(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT,
                                        TEXT) IS
    'Insert an event; properties and headers are JSON texts (or NULL)';

CREATE OR REPLACE FUNCTION mikkoo.insert_event(
    in_queue TEXT, in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT)
RETURNS BIGINT
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mikkoo._insert(
        in_queue, in_exchange, in_routing_key, in_payload, in_content_type,
        json_build_object('message_id', gen_random_uuid())::text,
        json_build_object('pgq_queue', in_queue)::text);
$$;
COMMENT ON FUNCTION mikkoo.insert_event(TEXT, TEXT, TEXT, TEXT, TEXT) IS
    'Insert an event with a new random message_id and a pgq_queue header';

CREATE OR REPLACE FUNCTION mikkoo.insert_audited_event(
    in_queue TEXT, in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message_id UUID := gen_random_uuid();
    v_properties TEXT := json_build_object('message_id', v_message_id)::text;
    v_headers    TEXT := json_build_object('pgq_queue', in_queue)::text;
    v_event_id   BIGINT;
BEGIN
    IF in_payload IS NULL THEN
        -- mikkoo.audit.payload is NOT NULL, as in the original.
        RAISE EXCEPTION 'mikkoo: payload of an audited event must not be NULL';
    END IF;
    v_event_id := mikkoo._insert(in_queue, in_exchange, in_routing_key,
                                 in_payload, in_content_type, v_properties,
                                 v_headers);
    PERFORM mikkoo.new_audit_record(v_message_id, v_event_id, in_queue,
                                    in_exchange, in_routing_key, in_payload,
                                    in_content_type, v_properties, v_headers);
    RETURN v_event_id;
END;
$$;
COMMENT ON FUNCTION mikkoo.insert_audited_event(TEXT, TEXT, TEXT, TEXT,
                                                TEXT) IS
    'Insert an event and its audit row in the caller''s transaction';

-- The helpers run as their owner; callers need only EXECUTE, which
-- PostgreSQL grants to PUBLIC by default.  The internal helper is not
-- for callers.
REVOKE ALL ON FUNCTION mikkoo._insert(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT,
                                      TEXT) FROM PUBLIC;

-- ---------------------------------------------------------------------
-- Table-change capture: mikkoo.capture(), mikkoo.uncapture(), the view
-- mikkoo.captures and CALL mikkoo.snapshot() (see mikkoo-capture(7)).
--
-- A capture is four AFTER ... FOR EACH STATEMENT triggers on the table
-- (INSERT, UPDATE and DELETE with transition tables, and TRUNCATE), all
-- running mikkoo._capture() with the settings as trigger arguments.  The
-- triggers are the only record of a capture: DROP TABLE ends it, pg_dump
-- keeps it, and mikkoo.captures reads the arguments back.
--
-- Statement level, because the work is then set-based: one query turns
-- all the changed rows into message bodies.  A statement that changed
-- more than 64 rows inserts its events with one INSERT ... SELECT
-- straight into the queue's current event table (which is what
-- pgq.current_event_table() is for), planned once per statement.  That
-- is as safe across table rotation as pgq.insert_event_raw(), which
-- does the same: the name is read in the writing transaction, batches
-- that span a switch read both tables, and the next rotation waits
-- until the slowest consumer's tick is past the last switch (its step 2
-- txid), so no table is emptied while a writer of it is open.  A
-- smaller one runs the same query from a plan cached for the session and
-- inserts each event with pgq.insert_event_raw(), which costs more per
-- row but needs no planning.  bench/run measures both beside
-- pgq.jsontriga; the README has the figures.
-- ---------------------------------------------------------------------

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

-- What the events of one kind of change (in_op: INSERT, UPDATE, DELETE
-- or TRUNCATE) of a table need from its names: the routing key, the body
-- up to "id": and the headers.
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

-- Whether a PgQ queue exists, for callers without rights on schema pgq.
CREATE OR REPLACE FUNCTION mikkoo._queue_exists(in_queue TEXT)
RETURNS BOOLEAN
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pgq.queue WHERE queue_name = in_queue);
$$;

-- mikkoo._capture() and mikkoo._snapshot_chunk() are built by the DO
-- block below, so that each message body is written once and used in
-- two forms: PL/pgSQL for a small statement (a loop over its rows, plans
-- cached for the session) and SQL for a bulk statement and for the
-- snapshot's R events (one query, planned each time, makes all the
-- events).  Placeholders:
--   @head@  the body up to "id":    @tail@  recorded_at and the brace
--   @key@   the key's columns       @drop@  keys left out of old and new
--   @skip@  skip_unchanged
--   @n@     the changed row, whole (to_jsonb), for the id
--   @f@     I: the new row as sent  @dd@    I: its diff
--   @of@    U, D: old row as sent   @nf@ @d@  U: new row as sent, diff
--   @id@    the id
-- Bodies are concatenated: compact, and cheaper than json_build_object;
-- rows are jsonb's own text.
DO $install$
DECLARE
    -- Sub-queries; @1@ and @2@ are their arguments.  PL/pgSQL runs them
    -- as statements of their own, only where needed: inside a larger
    -- expression they would be set up for every row, needed or not.
    --   a composite key's id, {"k1":..,"k2":..} in key order
    q_keyobj TEXT := $q$SELECT json_object_agg(k.k, @1@ -> k.k ORDER BY k.i)::text
        FROM unnest(@2@) WITH ORDINALITY k(k, i)$q$;
    --   row @1@ without its null columns: the diff of I (and R)
    q_nonnull TEXT := $q$SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
        FROM jsonb_each(@1@) e WHERE e.value <> 'null'::jsonb$q$;
    --   the columns of new row @2@ that differ from old row @1@
    q_changed TEXT := $q$SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
        FROM jsonb_each(@2@) e WHERE @1@ -> e.key IS DISTINCT FROM e.value$q$;

    -- The id without a composite key (NULL with one).
    e_id TEXT := $q$CASE cardinality(@key@)
            WHEN 0 THEN 'null'
            WHEN 1 THEN coalesce((@n@ -> (@key@)[1])::text, 'null')$q$;
    -- Whether the diff of I is the whole row: usually nothing at any
    -- depth is null, and this is cheap.
    e_nonull TEXT := $q$jsonb_strip_nulls(@f@) = @f@$q$;
    e_insert TEXT := $q$@head@ || @id@
        || ',"old":{},"new":' || @f@::text || ',"diff":' || @dd@::text
        || @tail@$q$;
    e_update TEXT := $q$@head@ || @id@
        || ',"old":' || @of@::text || ',"new":' || @nf@::text
        || ',"diff":' || @d@::text || @tail@$q$;
    e_delete TEXT := $q$@head@ || @id@
        || ',"old":' || @of@::text || ',"new":{},"diff":{}' || @tail@$q$;

    -- The bulk statements' queries.  OFFSET 0 keeps to_jsonb() computed
    -- once per row (the planner would copy it into every use).  In an
    -- update, the transition tables hold old and new rows in the same
    -- order, and the diff is made per statement (the three %s): columns
    -- of the types where SQL equality and jsonb equality agree are
    -- compared as they are, others as jsonb: the test of q_changed, but
    -- several times cheaper.
    q_insert TEXT := $q$SELECT @insert@ AS body
        FROM (SELECT y.n, y.n - @drop@ AS f
              FROM (SELECT to_jsonb(t.*) AS n FROM @rows@ t OFFSET 0) y
              OFFSET 0) x$q$;
    q_update TEXT := $q$SELECT @update@ AS body
        FROM (SELECT z.n, z.of, z.nf, %3$s AS d
              FROM (SELECT n.n, o.o - @drop@ AS of, n.n - @drop@ AS nf%4$s
                    FROM (SELECT row_number() OVER () AS i, to_jsonb(t.*) AS o%5$s
                          FROM mikkoo_old t) o
                    JOIN (SELECT row_number() OVER () AS i, to_jsonb(t.*) AS n%5$s
                          FROM mikkoo_new t) n ON n.i = o.i
                    OFFSET 0) z
              OFFSET 0) x
        WHERE NOT @skip@ OR x.d <> '{}'::jsonb$q$;
    q_delete TEXT := $q$SELECT @delete@ AS body
        FROM (SELECT y.n, y.n - @drop@ AS of
              FROM (SELECT to_jsonb(t.*) AS n FROM mikkoo_old t OFFSET 0) y
              OFFSET 0) x$q$;
    -- A bulk statement's events: one INSERT into the current event table.
    q_bulk TEXT := $q$INSERT INTO %s (ev_id, ev_time, ev_type, ev_data,
            ev_extra1, ev_extra2, ev_extra4)
        SELECT nextval(%L), now(), $6, b.body, $7, 'application/json', $8
        FROM (@query@) b$q$;
    -- The snapshot's: mikkoo.insert_event() each, in key order.  format()
    -- puts in the table, the key range and the key order; $1 and $2 are
    -- the range's ends.
    q_snapshot TEXT := $q$SELECT count(mikkoo.insert_event($3, $4, $5,
            b.body, 'application/json', NULL, $6))
        FROM (@query@) b$q$;
    q_locked TEXT := $q$(SELECT * FROM %1$s t WHERE %2$s ORDER BY %3$s
                  FOR SHARE)$q$;

    v_names TEXT[] := ARRAY['@head@', '@key@', '@drop@', '@tail@', '@skip@'];
    v_vars  TEXT[] := ARRAY['v_head', 'v_key', 'v_drop', 'v_tail', 'v_skip'];
    p_id     TEXT;  p_dd     TEXT;  p_d      TEXT;
    p_insert TEXT;  p_update TEXT;  p_delete TEXT;
    s_id     TEXT;
    d_snapshot TEXT;
    f_capture  TEXT;
    f_chunk    TEXT;
BEGIN
    -- PL/pgSQL form: statements that set v_id, v_dd and v_d, and the
    -- bodies over variables.
    p_id := 'IF v_k1 <> '''' THEN
                v_id := coalesce((v_n -> v_k1)::text, ''null'');
            ELSIF v_key = ''{}'' THEN
                v_id := ''null'';
            ELSE
                v_id := (' || replace(replace(q_keyobj, '@1@', 'v_n'),
                                      '@2@', 'v_key') || ');
            END IF;';
    p_dd := 'IF ' || e_nonull || ' THEN
                v_dd := v_f;
            ELSE
                v_dd := (' || replace(q_nonnull, '@1@', 'v_f') || ');
            END IF;';
    p_d := 'IF v_of = v_nf THEN
                v_d := ''{}'';
            ELSE
                v_d := (' || replace(replace(q_changed, '@1@', 'v_of'),
                                     '@2@', 'v_nf') || ');
            END IF;';
    p_dd := replace(p_dd, '@f@', 'v_f');
    p_insert := replace(replace(replace(e_insert, '@id@', 'v_id'),
                                '@f@', 'v_f'), '@dd@', 'v_dd');
    p_update := replace(replace(replace(replace(e_update, '@id@', 'v_id'),
                                        '@of@', 'v_of'), '@nf@', 'v_nf'),
                        '@d@', 'v_d');
    p_delete := replace(replace(e_delete, '@id@', 'v_id'), '@of@', 'v_of');
    FOR i IN 1 .. 5 LOOP
        p_insert := replace(p_insert, v_names[i], v_vars[i]);
        p_update := replace(p_update, v_names[i], v_vars[i]);
        p_delete := replace(p_delete, v_names[i], v_vars[i]);
    END LOOP;

    -- SQL form: the same expressions over the columns of x, inline.
    s_id := e_id || ' ELSE (' || replace(replace(q_keyobj, '@1@', 'x.n'),
                                         '@2@', '@key@') || ') END';
    q_insert := replace(q_insert, '@insert@',
        replace(replace(replace(replace(e_insert, '@id@', s_id),
            '@dd@', 'CASE WHEN ' || e_nonull || ' THEN @f@ ELSE ('
                    || replace(q_nonnull, '@1@', '@f@') || ') END'),
            '@f@', 'x.f'), '@n@', 'x.n'));
    q_update := replace(q_update, '@update@',
        replace(replace(replace(replace(replace(e_update, '@id@', s_id),
            '@of@', 'x.of'), '@nf@', 'x.nf'), '@d@', 'x.d'), '@n@', 'x.n'));
    q_delete := replace(q_delete, '@delete@',
        replace(replace(replace(e_delete, '@id@', s_id),
            '@of@', 'x.of'), '@n@', 'x.n'));
    -- the snapshot reads locked rows; its parameters are $7..$10
    d_snapshot := replace(replace(replace(replace(replace(replace(
        replace(q_snapshot, '@query@', q_insert),
        '@rows@', q_locked), '@head@', '$7'), '@key@', '$8'),
        '@drop@', '$9'), '@tail@', '$10'), '@skip@', 'false');
    q_insert := replace(q_insert, '@rows@', 'mikkoo_new');
    FOR i IN 1 .. 5 LOOP
        q_insert := replace(q_insert, v_names[i], '$' || i);
        q_update := replace(q_update, v_names[i], '$' || i);
        q_delete := replace(q_delete, v_names[i], '$' || i);
    END LOOP;

    -- The trigger function of every capture.  Its arguments: queue,
    -- exchange, routing key template, columns, exclude, skip_unchanged,
    -- the key's columns (arrays as text[] literals; '' for no columns or
    -- exclude), the schema and the table's name at capture time, what
    -- mikkoo._capture_names() made of them for this trigger's action (the
    -- routing key, the body up to "id": and the headers), and the key's
    -- column if it is one (else '').  All that can be is worked out in
    -- advance: a one-row statement's work is mostly its row's.
    f_capture := $fn$
CREATE OR REPLACE FUNCTION mikkoo._capture()
RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    v_names    TEXT[];      -- routing key, body head, headers
    v_old      JSONB[];     -- the rows (up to 65 but in a bulk
    v_new      JSONB[];     -- statement), in the transition tables' order
    v_found    BOOLEAN;
    v_head     TEXT;
    v_tail     TEXT;
    v_key      TEXT[];
    v_k1       TEXT;        -- the key's column, if it has one
    v_drop     TEXT[];
    v_skip     BOOLEAN;
    v_n        JSONB;
    v_f        JSONB;
    v_of       JSONB;
    v_nf       JSONB;
    v_d        JSONB;
    v_dd       JSONB;
    v_id       TEXT;
    v_ev       BIGINT;
    v_sql      TEXT;
    v_diff     TEXT;
    v_pairs    TEXT;
    v_cols     TEXT;
    q          record;
BEGIN
    IF TG_TABLE_NAME = TG_ARGV[8] AND TG_TABLE_SCHEMA = TG_ARGV[7] THEN
        v_names := TG_ARGV[9:11];
    ELSE                                -- renamed since captured
        v_names := mikkoo._capture_names(TG_TABLE_SCHEMA, TG_TABLE_NAME,
                                         TG_ARGV[2], TG_OP);
    END IF;
    v_head := v_names[2];
    v_tail := ',"recorded_at":"'
              || to_char(clock_timestamp() AT TIME ZONE 'UTC',
                         'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"}';
    -- One query for the rows (65 of them tell a bulk statement) and
    -- whether the queue exists.
    IF TG_OP = 'INSERT' THEN
        SELECT ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_new t LIMIT 65),
               EXISTS (SELECT FROM pgq.queue WHERE queue_name = TG_ARGV[0])
            INTO v_new, v_found;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_new t LIMIT 65),
               ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_old t LIMIT 65),
               EXISTS (SELECT FROM pgq.queue WHERE queue_name = TG_ARGV[0])
            INTO v_new, v_old, v_found;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_old t LIMIT 65),
               EXISTS (SELECT FROM pgq.queue WHERE queue_name = TG_ARGV[0])
            INTO v_old, v_found;
    ELSE
        SELECT EXISTS (SELECT FROM pgq.queue WHERE queue_name = TG_ARGV[0])
            INTO v_found;
    END IF;
    IF NOT v_found THEN
        RAISE EXCEPTION 'mikkoo: table %.% is captured into PgQ queue ''%'','
                        ' which does not exist', TG_TABLE_SCHEMA,
                        TG_TABLE_NAME, TG_ARGV[0]
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create the queue, or stop the capture with '
                         'mikkoo.uncapture().';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        v_ev := pgq.insert_event_raw(TG_ARGV[0], NULL, now(), NULL, NULL,
            v_names[1], v_head || 'null,"old":{},"new":{},"diff":{}' || v_tail,
            TG_ARGV[1], 'application/json', NULL, v_names[3]);
        RETURN NULL;
    END IF;
    v_k1 := TG_ARGV[12];
    IF v_k1 = '' THEN
        v_key := TG_ARGV[6]::text[];
    END IF;
    -- The keys to leave out.  An allow list becomes a deny list of the
    -- columns the rows have now, so a column added later stays out.
    IF TG_ARGV[3] <> '' THEN
        v_drop := ARRAY(SELECT k.k
                        FROM jsonb_object_keys(coalesce(v_new[1], v_old[1]))
                             k(k)
                        WHERE k.k <> ALL (TG_ARGV[3]::text[]));
    ELSIF TG_ARGV[4] <> '' THEN
        v_drop := TG_ARGV[4]::text[];
    ELSE
        v_drop := '{}';
    END IF;
    v_skip := TG_OP = 'UPDATE' AND TG_ARGV[5]::boolean;
    -- Bulk: straight into the event table, unless only PgQ may insert:
    -- it counts events per transaction, refuses a disabled queue, and
    -- the owner may lack the rights on the table.
    IF cardinality(coalesce(v_new, v_old)) > 64 THEN
        SELECT pgq.quote_fqname(queue_data_pfx || '_'
                                || queue_cur_table::text) AS tbl,
               queue_event_seq AS seq
            INTO q FROM pgq.queue
            WHERE queue_name = TG_ARGV[0] AND queue_per_tx_limit IS NULL
              AND NOT queue_disable_insert;
        IF FOUND AND has_table_privilege(q.tbl, 'INSERT')
           AND has_sequence_privilege(q.seq, 'USAGE') THEN
            v_key := TG_ARGV[6]::text[];
            v_sql := CASE TG_OP WHEN 'INSERT' THEN @bulk_insert@
                                WHEN 'UPDATE' THEN @bulk_update@
                                ELSE @bulk_delete@ END;
            IF TG_OP = 'UPDATE' THEN
                -- The diff.  For these types "distinct" means their jsonb
                -- differs too (text only under a deterministic
                -- collation); other types are compared as jsonb.
                SELECT 'z.nf - ARRAY[' || coalesce(string_agg(format(
                           'CASE WHEN %s THEN %L END',
                           CASE WHEN a.typed
                                THEN format('z.o%1$s IS NOT DISTINCT FROM'
                                            ' z.n%1$s', a.attnum)
                                ELSE format('z.of -> %1$L IS NOT DISTINCT'
                                            ' FROM z.nf -> %1$L', a.attname)
                                END, a.attname), ', '), '') || ']::text[]',
                       coalesce(string_agg(format(', o.c%1$s AS o%1$s,'
                                                  ' n.c%1$s AS n%1$s',
                                                  a.attnum), '')
                                FILTER (WHERE a.typed), ''),
                       coalesce(string_agg(format(', t.%I AS c%s',
                                                  a.attname, a.attnum), '')
                                FILTER (WHERE a.typed), '')
                    INTO v_diff, v_pairs, v_cols
                FROM (SELECT a.attname, a.attnum,
                             a.atttypid IN ('int2'::regtype, 'int4'::regtype,
                                 'int8'::regtype, 'oid'::regtype,
                                 'bool'::regtype, 'float4'::regtype,
                                 'float8'::regtype, 'numeric'::regtype,
                                 'text'::regtype, 'varchar'::regtype,
                                 'bpchar'::regtype, 'name'::regtype,
                                 'date'::regtype, 'time'::regtype,
                                 'timestamp'::regtype, 'timestamptz'::regtype,
                                 'uuid'::regtype, 'bytea'::regtype,
                                 'jsonb'::regtype)
                             AND coalesce(c.collisdeterministic, true)
                             AS typed
                      FROM pg_attribute a
                      LEFT JOIN pg_collation c ON c.oid = a.attcollation
                      WHERE a.attrelid = TG_RELID AND a.attnum > 0
                        AND NOT a.attisdropped
                        AND a.attname <> ALL (v_drop)) a;
            END IF;
            EXECUTE format(v_sql, q.tbl, q.seq, v_diff, v_pairs, v_cols)
                USING v_head, v_key, v_drop, v_tail, v_skip,
                      v_names[1], TG_ARGV[1], v_names[3];
            RETURN NULL;
        END IF;
        -- Else every row through pgq.insert_event_raw(), not only 65.
        IF TG_OP <> 'DELETE' THEN
            v_new := ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_new t);
        END IF;
        IF TG_OP <> 'INSERT' THEN
            v_old := ARRAY(SELECT to_jsonb(t.*) FROM mikkoo_old t);
        END IF;
    END IF;
    IF TG_OP = 'INSERT' THEN
        FOREACH v_n IN ARRAY v_new LOOP
            v_f := v_n - v_drop;
            @p_id@
            @p_dd@
            v_ev := pgq.insert_event_raw(TG_ARGV[0], NULL, now(), NULL, NULL,
                v_names[1], @insert@,
                TG_ARGV[1], 'application/json', NULL, v_names[3]);
        END LOOP;
    ELSIF TG_OP = 'UPDATE' THEN
        FOR i IN 1 .. cardinality(v_new) LOOP
            v_n := v_new[i];
            v_of := v_old[i] - v_drop;
            v_nf := v_n - v_drop;
            @p_d@
            CONTINUE WHEN v_skip AND v_d = '{}'::jsonb;
            @p_id@
            v_ev := pgq.insert_event_raw(TG_ARGV[0], NULL, now(), NULL, NULL,
                v_names[1], @update@,
                TG_ARGV[1], 'application/json', NULL, v_names[3]);
        END LOOP;
    ELSE
        FOREACH v_n IN ARRAY v_old LOOP
            v_of := v_n - v_drop;
            @p_id@
            v_ev := pgq.insert_event_raw(TG_ARGV[0], NULL, now(), NULL, NULL,
                v_names[1], @delete@,
                TG_ARGV[1], 'application/json', NULL, v_names[3]);
        END LOOP;
    END IF;
    RETURN NULL;
END;
$body$;
$fn$;
    f_capture := replace(f_capture, '@p_id@', p_id);
    f_capture := replace(f_capture, '@p_dd@', p_dd);
    f_capture := replace(f_capture, '@p_d@', p_d);
    f_capture := replace(f_capture, '@insert@', p_insert);
    f_capture := replace(f_capture, '@update@', p_update);
    f_capture := replace(f_capture, '@delete@', p_delete);
    f_capture := replace(f_capture, '@bulk_insert@',
                         quote_literal(replace(q_bulk, '@query@', q_insert)));
    f_capture := replace(f_capture, '@bulk_update@',
                         quote_literal(replace(q_bulk, '@query@', q_update)));
    f_capture := replace(f_capture, '@bulk_delete@',
                         quote_literal(replace(q_bulk, '@query@', q_delete)));
    EXECUTE f_capture;

    -- One chunk of CALL mikkoo.snapshot(): the rows after in_after (a
    -- key as text; NULL for the first chunk) in key order, in_chunk of
    -- them or the rest, locked FOR SHARE until the caller commits, each
    -- an R event in every chosen capture.  Returns the chunk's last key,
    -- NULL after the last chunk.  Runs with the caller's rights: SELECT
    -- and UPDATE on the table (FOR SHARE), EXECUTE on
    -- mikkoo.insert_event.
    f_chunk := $fn$
CREATE OR REPLACE FUNCTION mikkoo._snapshot_chunk(
    in_tbl REGCLASS, in_queue TEXT, in_chunk INTEGER, in_after TEXT[])
RETURNS TEXT[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    v_key    TEXT[];
    v_cols   TEXT;      -- "k1", "k2"
    v_texts  TEXT;      -- "k1"::text, "k2"::text
    v_params TEXT;      -- $1[1]::type1, $1[2]::type2
    v_where  TEXT;
    v_bound  TEXT[];
    v_schema TEXT;
    v_name   TEXT;
    v_drop   TEXT[];
    v_tail   TEXT := ',"recorded_at":"'
                     || to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"}';
    v_cap    record;
BEGIN
    IF in_tbl IS NULL THEN
        RAISE EXCEPTION 'mikkoo.snapshot: the table must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF in_chunk IS NULL OR in_chunk < 1 THEN
        RAISE EXCEPTION 'mikkoo.snapshot: chunk must be a positive number '
                        'of rows, not %', coalesce(in_chunk::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM FROM mikkoo.captures c
    WHERE c.tbl = in_tbl AND (in_queue IS NULL OR c.queue = in_queue);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mikkoo.snapshot: table % is not captured%', in_tbl,
            CASE WHEN in_queue IS NULL THEN ''
                 ELSE format(' into queue ''%s''', in_queue) END
            USING ERRCODE = 'undefined_object',
                  HINT = 'Call mikkoo.capture() first.';
    END IF;
    v_key := mikkoo._capture_key(in_tbl);
    IF cardinality(v_key) = 0 THEN
        RAISE EXCEPTION 'mikkoo.snapshot: table % has no primary key: the '
                        'snapshot reads it in key order', in_tbl
            USING ERRCODE = 'invalid_table_definition';
    END IF;
    SELECT string_agg(quote_ident(k.k), ', ' ORDER BY k.i),
           string_agg(quote_ident(k.k) || '::text', ', ' ORDER BY k.i),
           string_agg(format('$1[%s]::%s', k.i,
                             format_type(a.atttypid, a.atttypmod)),
                      ', ' ORDER BY k.i)
        INTO v_cols, v_texts, v_params
    FROM unnest(v_key) WITH ORDINALITY k(k, i)
    JOIN pg_attribute a ON a.attrelid = in_tbl AND a.attname = k.k;
    v_where := CASE WHEN in_after IS NULL THEN 'true'
                    ELSE format('(%s) > (%s)', v_cols, v_params) END;
    -- Where this chunk ends: its in_chunk-th key (none: the last chunk).
    EXECUTE format('SELECT ARRAY[%s] FROM %s WHERE %s ORDER BY %s'
                   ' OFFSET %s LIMIT 1', v_texts, in_tbl, v_where, v_cols,
                   in_chunk - 1)
        INTO v_bound USING in_after;
    IF v_bound IS NOT NULL THEN
        v_where := v_where || format(' AND (%s) <= (%s)', v_cols,
                                     replace(v_params, '$1', '$2'));
    END IF;
    SELECT n.nspname, c.relname INTO v_schema, v_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = in_tbl;
    FOR v_cap IN SELECT * FROM mikkoo.captures c
                 WHERE c.tbl = in_tbl
                   AND (in_queue IS NULL OR c.queue = in_queue)
                 ORDER BY c.queue LOOP
        IF v_cap.columns IS NULL THEN
            v_drop := coalesce(v_cap.exclude, '{}');
        ELSE
            SELECT coalesce(array_agg(a.attname::text), '{}') INTO v_drop
            FROM pg_attribute a
            WHERE a.attrelid = in_tbl AND a.attnum > 0
              AND NOT a.attisdropped AND a.attname <> ALL (v_cap.columns);
        END IF;
        -- The first capture's query takes the row locks; the others find
        -- the same rows (and any committed since, whose I events come
        -- first).
        EXECUTE format(@snapshot@, in_tbl, v_where, v_cols)
            USING in_after, v_bound, v_cap.queue, v_cap.exchange,
                  replace(replace(replace(v_cap.routing_key, '{schema}',
                                          v_schema), '{table}', v_name),
                          '{action}', 'R'),
                  json_build_object('table', v_schema || '.' || v_name,
                                    'action', 'R')::text,
                  '{"table_name":' || to_json(v_schema || '.' || v_name)::text
                  || ',"action":"R","id":',
                  v_key, v_drop, v_tail;
    END LOOP;
    RETURN v_bound;
END;
$body$;
$fn$;
    EXECUTE replace(f_chunk, '@snapshot@', quote_literal(d_snapshot));
END;
$install$;

CREATE OR REPLACE VIEW mikkoo.captures AS
SELECT n.nspname || '.' || c.relname AS table_name,
       a.a[1] AS queue,
       a.a[2] AS exchange,
       a.a[3] AS routing_key,
       nullif(a.a[4], '')::text[] AS columns,
       nullif(a.a[5], '')::text[] AS exclude,
       a.a[6]::boolean AS skip_unchanged,
       a.a[7]::text[] AS key_columns,
       c.oid::regclass AS tbl
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL mikkoo._trigger_args(t.tgargs, t.tgnargs) AS a(a)
WHERE t.tgfoid = 'mikkoo._capture()'::pg_catalog.regprocedure
  AND t.tgtype::int & 4 <> 0;     -- the INSERT trigger: one per capture
COMMENT ON VIEW mikkoo.captures IS
    'Tables captured with mikkoo.capture(): one row per table and queue';
GRANT SELECT ON mikkoo.captures TO PUBLIC;

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
    v_kind  "char";
    v_col   TEXT;
    v_list  TEXT;           -- columns or exclude, for the message
    v_base  TEXT;
    v_args  TEXT;
    v_schema TEXT;
    v_name  TEXT;
    v_op    TEXT;
    v_names TEXT[];
    v_key   TEXT[];
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

    -- Re-capturing replaces the settings: the old triggers go.
    PERFORM mikkoo.uncapture(capture.tbl, capture.queue);
    -- Trigger names show the queue when it is short enough.
    v_base := 'mikkoo_' || CASE WHEN octet_length(capture.queue) <= 40
                                     AND capture.queue ~ '^[a-z0-9_.-]+$'
                                THEN capture.queue
                                ELSE md5(capture.queue) END;
    -- The key and the names are looked up now, not per statement
    -- (which would cost more than a one-row statement's own work).
    SELECT n.nspname, c.relname INTO v_schema, v_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = capture.tbl;
    v_key := mikkoo._capture_key(capture.tbl);
    v_args := format('%L, %L, %L, %L, %L, %L, %L, %L, %L', capture.queue,
                     capture.exchange, capture.routing_key,
                     coalesce(capture.columns::text, ''),
                     coalesce(capture.exclude::text, ''),
                     capture.skip_unchanged::text, v_key::text,
                     v_schema, v_name);
    FOREACH v_op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] LOOP
        v_names := mikkoo._capture_names(v_schema, v_name,
                                         capture.routing_key, v_op);
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s'
                       ' FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION mikkoo._capture(%s, %L, %L, %L, %L)',
                       v_base || '_' || lower(left(v_op, 1)), v_op,
                       capture.tbl,
                       CASE v_op
                       WHEN 'INSERT' THEN 'REFERENCING NEW TABLE AS mikkoo_new'
                       WHEN 'UPDATE' THEN 'REFERENCING OLD TABLE AS mikkoo_old'
                                          ' NEW TABLE AS mikkoo_new'
                       WHEN 'DELETE' THEN 'REFERENCING OLD TABLE AS mikkoo_old'
                       ELSE '' END,
                       v_args, v_names[1], v_names[2], v_names[3],
                       CASE WHEN cardinality(v_key) = 1 THEN v_key[1]
                            ELSE '' END);
    END LOOP;
END;
$$;
COMMENT ON FUNCTION mikkoo.capture(REGCLASS, TEXT, TEXT, TEXT, TEXT[],
                                   TEXT[], BOOLEAN) IS
    'Capture INSERT, UPDATE, DELETE and TRUNCATE of a table as events in '
    'a PgQ queue; again for the same table and queue replaces the settings';

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
    FOR t IN SELECT g.tgname, (mikkoo._trigger_args(g.tgargs, g.tgnargs))[1]
                               AS q
             FROM pg_trigger g
             WHERE g.tgrelid = uncapture.tbl
               AND g.tgfoid = 'mikkoo._capture()'::regprocedure LOOP
        CONTINUE WHEN uncapture.queue IS NOT NULL AND t.q <> uncapture.queue;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, uncapture.tbl);
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

-- Transaction control rules out SECURITY DEFINER and SET search_path
-- here, so the body calls only mikkoo._snapshot_chunk (which has both
-- pinned) by its full name.
CREATE OR REPLACE PROCEDURE mikkoo.snapshot(tbl REGCLASS,
                                            queue TEXT DEFAULT NULL,
                                            chunk INTEGER DEFAULT 10000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_after TEXT[];
    v_next  TEXT[];
    v_tries INTEGER := 0;
BEGIN
    -- Each chunk is a transaction of its own; in a transaction block
    -- this fails at once ("invalid transaction termination").
    COMMIT;
    LOOP
        BEGIN
            v_next := mikkoo._snapshot_chunk(tbl, queue, chunk, v_after);
        EXCEPTION WHEN deadlock_detected THEN
            -- A writer locked rows in another order: this chunk was
            -- rolled back and is read again.
            v_tries := v_tries + 1;
            IF v_tries > 10 THEN
                RAISE;
            END IF;
            RAISE NOTICE 'mikkoo.snapshot: deadlock with a writer, reading '
                         'the chunk again';
            CONTINUE;
        END;
        v_tries := 0;
        EXIT WHEN v_next IS NULL;
        COMMIT;
        v_after := v_next;
    END LOOP;
END;
$$;
COMMENT ON PROCEDURE mikkoo.snapshot(REGCLASS, TEXT, INTEGER) IS
    'One R event per existing row of a captured table, in key order, in '
    'chunks that commit separately; call outside a transaction block';

COMMIT;
