-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, the part between the snapshot (5) and the rights (6):
-- what the logical-decoding source needs in the database: the outbox
-- without a table (mikkoo.emit), the record of the replication slots
-- the relay made (mikkoo.slots), and the statements that render a
-- decoded row as mikkoo.capture() renders it.

-- ---------------------------------------------------------------------
-- The outbox without a table: mikkoo.emit() writes an event into the
-- WAL with pg_logical_emit_message() (transactional: a transaction that
-- rolls back sends nothing), for mikkoo-relay workers whose source is a
-- slot.
--
-- pg_logical_emit_message() is executable by PUBLIC: any role can put
-- a message with any prefix and content into the WAL.  So that the
-- relay tells an event written through mikkoo.emit() by a role with the
-- right to write events from a forged one, mikkoo.emit() starts the
-- content with the emit key, a random token in mikkoo.emit_key that only
-- roles with that right read (pgq_writer, as for pgq.insert_event; and
-- the relay's role, which the operator grants SELECT on it).  A message
-- with mikkoo.emit's prefix and without the key is forged: the relay
-- never publishes it.  No function here runs with its owner's rights.
--
-- The content, after the 32 characters of the key: stream, ev_type,
-- ev_data, ev_extra1 .. ev_extra4, each '-' for NULL or its length in
-- bytes, ':' and its text.  The event's id is the message's WAL
-- position less one (a byte of its own record: the record ends where
-- the next begins).
-- ---------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS mikkoo.emit_key (
    one        BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    key        TEXT NOT NULL CHECK (key ~ '^[0-9a-f]{32}$'),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);
COMMENT ON TABLE mikkoo.emit_key IS
    'The token that marks messages written by mikkoo.emit(); readable '
    'by roles that may write events (pgq_writer) and the relay''s role';
INSERT INTO mikkoo.emit_key (key)
SELECT replace(gen_random_uuid()::text, '-', '')
WHERE NOT EXISTS (SELECT 1 FROM mikkoo.emit_key);

-- Unlike every other function of mikkoo.sql, mikkoo.emit() does not pin
-- search_path with a SET clause: that clause costs more than the rest of
-- a call (a GUC saved and restored on every call: 4.7 against 3.7 µs).
-- It names everything instead, operators and types too, so a caller's
-- search_path changes nothing; and it runs with the caller's rights.
-- The three-argument form is a plain SQL call of it, which PostgreSQL
-- inlines (a SET clause would prevent that too).
CREATE OR REPLACE FUNCTION mikkoo.emit(
    stream TEXT, ev_type TEXT, ev_data TEXT, ev_extra1 TEXT,
    ev_extra2 TEXT, ev_extra3 TEXT, ev_extra4 TEXT)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_key TEXT;
BEGIN
    IF stream IS NULL THEN
        RAISE EXCEPTION 'mikkoo.emit: stream must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- (a role without pgq_writer fails here: permission denied)
    SELECT k.key INTO v_key FROM mikkoo.emit_key k;
    IF v_key IS NULL THEN
        RAISE EXCEPTION 'mikkoo.emit: mikkoo.emit_key is empty'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install mikkoo.sql again.';
    END IF;
    RETURN (pg_catalog.pg_logical_emit_message(true, 'mikkoo.emit',
        v_key
        OPERATOR(pg_catalog.||) pg_catalog.octet_length(stream)
        OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) stream
        OPERATOR(pg_catalog.||) CASE WHEN ev_type IS NULL THEN '-'
            ELSE pg_catalog.octet_length(ev_type) OPERATOR(pg_catalog.||) ':'
                 OPERATOR(pg_catalog.||) ev_type END
        OPERATOR(pg_catalog.||) CASE WHEN ev_data IS NULL THEN '-'
            ELSE pg_catalog.octet_length(ev_data) OPERATOR(pg_catalog.||) ':'
                 OPERATOR(pg_catalog.||) ev_data END
        OPERATOR(pg_catalog.||) CASE WHEN ev_extra1 IS NULL THEN '-'
            ELSE pg_catalog.octet_length(ev_extra1) OPERATOR(pg_catalog.||) ':'
                 OPERATOR(pg_catalog.||) ev_extra1 END
        OPERATOR(pg_catalog.||) CASE WHEN ev_extra2 IS NULL THEN '-'
            ELSE pg_catalog.octet_length(ev_extra2) OPERATOR(pg_catalog.||) ':'
                 OPERATOR(pg_catalog.||) ev_extra2 END
        OPERATOR(pg_catalog.||) CASE WHEN ev_extra3 IS NULL THEN '-'
            ELSE pg_catalog.octet_length(ev_extra3) OPERATOR(pg_catalog.||) ':'
                 OPERATOR(pg_catalog.||) ev_extra3 END
        OPERATOR(pg_catalog.||) CASE WHEN ev_extra4 IS NULL THEN '-'
            ELSE pg_catalog.octet_length(ev_extra4) OPERATOR(pg_catalog.||) ':'
                 OPERATOR(pg_catalog.||) ev_extra4 END)
        OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8
        OPERATOR(pg_catalog.-) 1;
END;
$$;
-- (an install over one that pinned it)
ALTER FUNCTION mikkoo.emit(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT)
    RESET search_path;
COMMENT ON FUNCTION mikkoo.emit(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT)
    IS 'Write an event (the arguments of pgq.insert_event) into the WAL '
       'for the slot workers relaying stream; returns its event id; '
       'needs pgq_writer';

CREATE OR REPLACE FUNCTION mikkoo.emit(stream TEXT, ev_type TEXT,
                                       ev_data TEXT)
RETURNS BIGINT
LANGUAGE sql VOLATILE
AS $$
    SELECT mikkoo.emit(stream, ev_type, ev_data, NULL::pg_catalog.text,
                       NULL::pg_catalog.text, NULL::pg_catalog.text,
                       NULL::pg_catalog.text);
$$;
ALTER FUNCTION mikkoo.emit(TEXT, TEXT, TEXT) RESET search_path;
COMMENT ON FUNCTION mikkoo.emit(TEXT, TEXT, TEXT) IS
    'mikkoo.emit() without the extra fields; needs pgq_writer';

-- A worker that relays only mikkoo.emit() events still names a
-- publication (pgoutput insists); this one publishes no table.  Made
-- here when the installing role may create publications, otherwise by
-- the operator (CREATE PUBLICATION mikkoo_emit).
DO $pub$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication
                   WHERE pubname = 'mikkoo_emit')
       AND pg_catalog.has_database_privilege(current_database(),
                                             'CREATE') THEN
        CREATE PUBLICATION mikkoo_emit;
    END IF;
END;
$pub$;

-- ---------------------------------------------------------------------
-- The slots mikkoo-relay made.  A slot is recorded before it is created
-- (consistent_point NULL) and completed after, so a relay that finds a
-- complete record and no slot knows the slot vanished (dropped, or lost
-- in a failover: in PostgreSQL 15 slots are not on standbys, this table
-- is) and refuses to go on past the gap, naming last_lsn, the last
-- position it confirmed.  mikkoo.forget_slot() is the operator's step
-- to start anew.  Readable by all; written by the relay's role, which
-- the operator grants SELECT, INSERT and UPDATE on it.
-- ---------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS mikkoo.slots (
    slot_name        NAME PRIMARY KEY,
    created_at       TIMESTAMP WITH TIME ZONE,
    created_by       NAME NOT NULL DEFAULT session_user,
    adopted          BOOLEAN NOT NULL DEFAULT false,
    consistent_point PG_LSN,
    last_lsn         PG_LSN,
    last_at          TIMESTAMP WITH TIME ZONE
);
COMMENT ON TABLE mikkoo.slots IS
    'Replication slots mikkoo-relay created (or adopted) and the last '
    'position it confirmed on each';
COMMENT ON COLUMN mikkoo.slots.consistent_point IS
    'Where the slot''s stream began; NULL while it is being created';

-- Before CREATE_REPLICATION_SLOT: the intent.
CREATE OR REPLACE FUNCTION mikkoo._slot_intent(in_slot NAME)
RETURNS VOID
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO mikkoo.slots (slot_name) VALUES (in_slot)
    ON CONFLICT (slot_name) DO NOTHING;
END;
$$;

-- After it: where the slot begins (or, adopted, where it stood).
CREATE OR REPLACE FUNCTION mikkoo._slot_created(in_slot NAME,
                                                in_point PG_LSN,
                                                in_adopted BOOLEAN)
RETURNS VOID
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO mikkoo.slots AS s (slot_name, created_at, adopted,
                                   consistent_point, last_lsn, last_at)
    VALUES (in_slot, now(), in_adopted, in_point, in_point, now())
    ON CONFLICT (slot_name) DO UPDATE
        SET created_at = now(), created_by = session_user,
            adopted = in_adopted, consistent_point = in_point,
            last_lsn = in_point, last_at = now()
        WHERE s.consistent_point IS NULL;
END;
$$;

-- The last position the relay confirmed (it never goes back).
CREATE OR REPLACE FUNCTION mikkoo._slot_progress(in_slot NAME,
                                                 in_lsn PG_LSN)
RETURNS VOID
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE mikkoo.slots
    SET last_lsn = greatest(last_lsn, in_lsn), last_at = now()
    WHERE slot_name = in_slot AND consistent_point IS NOT NULL;
END;
$$;

-- The operator's step to start anew after a slot vanished or was
-- invalidated (as the owner of schema mikkoo, or a superuser): forget
-- the record (drop an invalidated slot with
-- pg_drop_replication_slot() first); the next start creates a new slot
-- whose stream begins at its creation.  Returns whether there was one.
CREATE OR REPLACE FUNCTION mikkoo.forget_slot(slot_name NAME)
RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n INTEGER;
BEGIN
    DELETE FROM mikkoo.slots s WHERE s.slot_name = forget_slot.slot_name;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n > 0;
END;
$$;
COMMENT ON FUNCTION mikkoo.forget_slot(NAME) IS
    'Forget the record of a slot that vanished or was invalidated, so '
    'that mikkoo-relay creates a new one (changes in between are not '
    'sent); needs DELETE on mikkoo.slots (its owner has it)';

-- ---------------------------------------------------------------------
-- Rendering decoded rows.  The relay gets each value of a change as its
-- type's output text and renders rows with one statement per table
-- definition, many rows per call, so that the message is what
-- mikkoo.capture() sends for the same change: the rows arrive as one
-- json parameter read by json_to_recordset() with a column definition
-- list (the types' input functions: no casts, and arrays of arrays
-- work, which typed array parameters cannot carry), then go through
-- the capture's rendering (mikkoo._render_value: to_jsonb() for types
-- mikkoo trusts, the output function for the others).
--
-- Reading a value runs its type's input function, and for a domain its
-- CHECK constraints: code of the domain's owner.  So a domain is read as
-- its base type (to_jsonb() looks through domains: the same result),
-- also as an array's element; a column whose type holds, under a
-- composite or range, a domain with a CHECK constraint of a role mikkoo
-- does not trust (see mikkoo._trusted_owner) is not read at all but
-- sent as its text (a JSON string), and named in "unsafe".
-- ---------------------------------------------------------------------

-- Would reading a value of in_type run a CHECK constraint of a domain
-- whose owner mikkoo does not trust?
CREATE OR REPLACE FUNCTION mikkoo._input_untrusted(in_type OID,
                                                   in_depth INTEGER
                                                       DEFAULT 0)
RETURNS BOOLEAN
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_t record;
BEGIN
    IF in_depth > 64 THEN
        RETURN true;
    END IF;
    SELECT t.typtype, t.typbasetype, t.typelem, t.typrelid, t.typowner,
           t.typelem <> 0 AND t.typsubscript =
               'pg_catalog.array_subscript_handler'::regproc AS is_array
        INTO v_t FROM pg_type t WHERE t.oid = in_type;
    IF NOT FOUND THEN
        RETURN true;
    END IF;
    IF v_t.typtype = 'd' THEN
        RETURN (NOT mikkoo._trusted_owner(v_t.typowner)
                AND EXISTS (SELECT 1 FROM pg_constraint c
                            WHERE c.contypid = in_type
                              AND c.contype = 'c'))
            OR mikkoo._input_untrusted(v_t.typbasetype, in_depth + 1);
    ELSIF v_t.is_array THEN
        RETURN mikkoo._input_untrusted(v_t.typelem, in_depth + 1);
    ELSIF v_t.typtype = 'c' THEN
        RETURN EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = v_t.typrelid AND a.attnum > 0
                         AND NOT a.attisdropped
                         AND mikkoo._input_untrusted(a.atttypid,
                                                     in_depth + 1));
    ELSIF v_t.typtype = 'r' THEN
        RETURN mikkoo._input_untrusted(
            (SELECT r.rngsubtype FROM pg_range r
             WHERE r.rngtypid = in_type), in_depth + 1);
    ELSIF v_t.typtype = 'm' THEN
        RETURN mikkoo._input_untrusted(
            (SELECT r.rngtypid FROM pg_range r
             WHERE r.rngmultitypid = in_type), in_depth + 1);
    END IF;
    RETURN false;
END;
$$;

-- The type to read a value of in_type as: through domains, also an
-- array's elements; NULL when reading it is not safe (above).
CREATE OR REPLACE FUNCTION mikkoo._input_type(in_type OID,
                                              in_depth INTEGER DEFAULT 0)
RETURNS OID
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_t record;
    v_e OID;
BEGIN
    IF in_depth > 64 THEN
        RETURN NULL;
    END IF;
    SELECT t.typtype, t.typbasetype, t.typelem,
           t.typelem <> 0 AND t.typsubscript =
               'pg_catalog.array_subscript_handler'::regproc AS is_array
        INTO v_t FROM pg_type t WHERE t.oid = in_type;
    IF NOT FOUND THEN
        RETURN NULL;
    ELSIF v_t.typtype = 'd' THEN
        RETURN mikkoo._input_type(v_t.typbasetype, in_depth + 1);
    ELSIF v_t.is_array THEN
        v_e := mikkoo._input_type(v_t.typelem, in_depth + 1);
        IF v_e IS NULL OR v_e = v_t.typelem THEN
            RETURN CASE WHEN v_e IS NULL THEN NULL ELSE in_type END;
        END IF;
        RETURN (SELECT nullif(t.typarray, 0) FROM pg_type t
                WHERE t.oid = v_e);
    ELSIF mikkoo._input_untrusted(in_type, in_depth) THEN
        RETURN NULL;
    END IF;
    RETURN in_type;
END;
$$;

-- The statement that renders rows of table in_relid whose published
-- columns are in_names of types in_types (as the stream described them).
-- Its one parameter ($1, json) is an array of objects, one per row:
--   "i" its number, "a" the action (I, U, D or R),
--   "n1" .. "nN" the new row's values, "o1" .. "oN" the old row's, each
--   its text as a JSON string, or for a column that "raw" marks (json
--   and jsonb) the JSON itself; null for NULL;
--   "nm", "om": the columns the new or old row lacks (values the stream
--   did not carry), an array of names, or absent.
-- It returns per row: i, id, old, new and diff as the capture's body has
-- them (old NULL for I and R, new and diff NULL for D).  "unsafe" names
-- the columns sent as their text (see above).
CREATE OR REPLACE FUNCTION mikkoo._logical_render_sql(
    in_relid OID, in_names TEXT[], in_types OID[],
    OUT sql TEXT, OUT raw BOOLEAN[], OUT unsafe TEXT[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_in     OID;
    v_defs   TEXT[] := '{}';
    v_new    TEXT[] := '{}';
    v_old    TEXT[] := '{}';
    v_key    TEXT[];
    v_id     TEXT;
    v_ids    TEXT[] := '{}';
    v_side   TEXT;
    v_expr   TEXT;
BEGIN
    raw := '{}';
    unsafe := '{}';
    IF cardinality(in_names) IS DISTINCT FROM cardinality(in_types) THEN
        RAISE EXCEPTION 'mikkoo: % column names and % types',
                        cardinality(in_names), cardinality(in_types);
    END IF;
    FOR k IN 1 .. coalesce(cardinality(in_names), 0) LOOP
        v_in := mikkoo._input_type(in_types[k]);
        IF v_in IS NULL THEN
            v_in := 'text'::regtype;
            unsafe := unsafe || in_names[k];
        END IF;
        raw := raw || (v_in IN ('json'::regtype, 'jsonb'::regtype));
        -- (typmod -1: "bpchar", not "character", which is char(1))
        v_defs := v_defs || format('n%1$s %2$s, o%1$s %2$s', k,
                                   format_type(v_in, -1));
        v_expr := mikkoo._render_value(v_in, 'x.n' || k);
        v_new := v_new || format('%L, %s', in_names[k],
                                 coalesce(v_expr, 'x.n' || k));
        v_expr := mikkoo._render_value(v_in, 'x.o' || k);
        v_old := v_old || format('%L, %s', in_names[k],
                                 coalesce(v_expr, 'x.o' || k));
    END LOOP;
    -- the id: as the capture's, from the table's primary key, of the
    -- new row (the old one for a delete)
    v_key := mikkoo._capture_key(in_relid);
    FOREACH v_side IN ARRAY ARRAY['n', 'o'] LOOP
        IF cardinality(v_key) = 0 THEN
            v_id := $q$'null'$q$;
        ELSIF cardinality(v_key) = 1 THEN
            v_id := format($q$coalesce((y.%s -> %L)::text, 'null')$q$,
                           v_side, v_key[1]);
        ELSE
            v_id := format($q$(SELECT json_object_agg(k.k, y.%s -> k.k
                                                      ORDER BY k.i)::text
                              FROM unnest(ARRAY[%s]) WITH ORDINALITY k(k, i))$q$,
                           v_side, (SELECT string_agg(quote_literal(c), ', ')
                                    FROM unnest(v_key) c));
        END IF;
        v_ids := v_ids || v_id;
    END LOOP;
    sql := format($q$
SELECT y.i,
       CASE WHEN y.a = 'D' THEN %1$s ELSE %2$s END,
       y.o::text,
       y.n::text,
       (CASE y.a
        WHEN 'D' THEN NULL
        WHEN 'U' THEN
            CASE WHEN y.o = y.n THEN '{}'::jsonb
            ELSE (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
                  FROM jsonb_each(y.n) e
                  WHERE y.o -> e.key IS DISTINCT FROM e.value) END
        ELSE
            CASE WHEN jsonb_strip_nulls(y.n) = y.n THEN y.n
            ELSE (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}')
                  FROM jsonb_each(y.n) e
                  WHERE e.value <> 'null'::jsonb) END
        END)::text
FROM (SELECT x.i, x.a,
             CASE WHEN x.a <> 'D'
                  THEN %3$s - coalesce(x.nm, '{}') END AS n,
             CASE WHEN x.a IN ('U', 'D')
                  THEN %4$s - coalesce(x.om, '{}') END AS o
      FROM json_to_recordset($1)
           AS x(i integer, a text, nm text[], om text[]%5$s)
      OFFSET 0) y$q$,
        v_ids[2], v_ids[1],
        mikkoo._render_object(v_new), mikkoo._render_object(v_old),
        (SELECT string_agg(', ' || d, '') FROM unnest(v_defs) d));
END;
$$;

-- ---------------------------------------------------------------------
-- The initial snapshot of a published table for a slot worker: every
-- row an R event written with mikkoo.emit() into stream, which the
-- worker relays (its "messages") with the table's own changes, so the
-- messages are the ones the worker sends for the table's changes,
-- action R.  The chunks, locks and retries are mikkoo.snapshot()'s
-- (snapshot.sql): a row's R event and its later changes are in the slot
-- in commit order.  Runs with the caller's rights: SELECT and UPDATE on
-- the table and pgq_writer (mikkoo.emit).
-- ---------------------------------------------------------------------
CREATE OR REPLACE PROCEDURE mikkoo.slot_snapshot(
    tbl REGCLASS, publication TEXT, stream TEXT, exchange TEXT,
    routing_key TEXT DEFAULT '{schema}.{table}',
    chunk INTEGER DEFAULT 10000)
LANGUAGE plpgsql
AS $$
BEGIN
    CALL mikkoo._snapshot_run(tbl, chunk,
        pg_catalog.jsonb_build_object('sink', 'emit',
                                      'publication', publication,
                                      'stream', stream,
                                      'exchange', exchange,
                                      'routing_key', routing_key));
END;
$$;
COMMENT ON PROCEDURE mikkoo.slot_snapshot(REGCLASS, TEXT, TEXT, TEXT, TEXT,
                                          INTEGER) IS
    'One R message per existing row of a published table, written with '
    'mikkoo.emit into stream for the slot worker of publication, in key '
    'order, in chunks that commit separately; call outside a transaction '
    'block';
