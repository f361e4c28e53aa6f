-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, part 5: snapshots, a table's rows as R events: CALL
-- mikkoo.snapshot() into the queues of a captured table (PgQ), and the
-- chunks that CALL mikkoo.slot_snapshot() (logical.sql) writes with
-- mikkoo.emit() for slot workers.

DROP FUNCTION IF EXISTS mikkoo._snapshot_chunk(REGCLASS, TEXT, INTEGER,
                                               TEXT[]);
-- (0.2.0 before row filters: another result type)
DO $drop$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc
               WHERE oid = 'mikkoo._snapshot_targets(regclass, jsonb, text)'
                           ::pg_catalog.regprocedure
                 AND NOT 'row_filter' = ANY (proargnames)) THEN
        DROP FUNCTION mikkoo._snapshot_targets(REGCLASS, JSONB, TEXT);
    END IF;
EXCEPTION WHEN undefined_function THEN
    NULL;
END;
$drop$;

-- Where a snapshot's R events go, by route (in_route, a JSON object):
--   {"sink": "pgq", "queue": q}  every capture of the table, or only
--       the one into queue q (NULL: all); dest is the queue.
--   {"sink": "emit", "publication": p, "stream": s, "exchange": x,
--    "routing_key": r}  one target: the table as publication p
--       publishes it (its column list and row filter), for the slot
--       workers relaying stream s; dest is the stream.
-- drop_cols: the columns left out of the rows; row_filter: the
-- condition a row meets to be sent (NULL: every row), SQL over the
-- table's columns.  Errors name in_who.
CREATE OR REPLACE FUNCTION mikkoo._snapshot_targets(in_tbl REGCLASS,
                                                    in_route JSONB,
                                                    in_who TEXT)
RETURNS TABLE (dest TEXT, exchange TEXT, routing_key TEXT,
               drop_cols TEXT[], row_filter TEXT)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_queue TEXT := in_route ->> 'queue';
    v_pub   TEXT := in_route ->> 'publication';
    v_pt    record;
    v_cap   record;
BEGIN
    IF in_route ->> 'sink' = 'emit' THEN
        IF v_pub IS NULL OR in_route ->> 'stream' IS NULL
           OR in_route ->> 'exchange' IS NULL
           OR in_route ->> 'routing_key' IS NULL THEN
            RAISE EXCEPTION '%: % must not be NULL', in_who,
                CASE WHEN v_pub IS NULL THEN 'the publication'
                     WHEN in_route ->> 'stream' IS NULL THEN 'the stream'
                     WHEN in_route ->> 'exchange' IS NULL
                     THEN 'the exchange (the worker''s exchange; '''' is '
                          'the default exchange)'
                     ELSE 'the routing key' END
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        SELECT t.attnames, t.rowfilter INTO v_pt
        FROM pg_publication_tables t
        JOIN pg_namespace n ON n.nspname = t.schemaname
        JOIN pg_class c ON c.relnamespace = n.oid
                       AND c.relname = t.tablename
        WHERE t.pubname = v_pub AND c.oid = in_tbl;
        IF NOT FOUND THEN
            IF NOT EXISTS (SELECT 1 FROM pg_publication p
                           WHERE p.pubname = v_pub) THEN
                RAISE EXCEPTION '%: publication "%" does not exist',
                                in_who, v_pub
                    USING ERRCODE = 'undefined_object';
            END IF;
            RAISE EXCEPTION '%: publication "%" does not publish table %',
                            in_who, v_pub, in_tbl
                USING ERRCODE = 'undefined_object',
                      HINT = 'A slot worker sends the changes of its '
                             'publication''s tables only (of a partitioned '
                             'table''s partitions, unless the publication '
                             'has publish_via_partition_root).';
        END IF;
        -- (a row filter holds only columns, constants and built-in
        -- immutable functions and operators: PostgreSQL refuses others;
        -- deparsed under this search_path, every name means pg_catalog's)
        RETURN QUERY
        SELECT in_route ->> 'stream', in_route ->> 'exchange',
               in_route ->> 'routing_key',
               coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}'),
               v_pt.rowfilter
        FROM pg_attribute a
        WHERE a.attrelid = in_tbl AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname <> ALL (v_pt.attnames);
        RETURN;
    END IF;
    PERFORM FROM mikkoo.captures c
    WHERE c.tbl = in_tbl AND (v_queue IS NULL OR c.queue = v_queue);
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: table % is not captured%', in_who, in_tbl,
            CASE WHEN v_queue IS NULL THEN ''
                 ELSE format(' into queue ''%s''', v_queue) END
            USING ERRCODE = 'undefined_object',
                  HINT = 'Call mikkoo.capture() first.';
    END IF;
    FOR v_cap IN SELECT * FROM mikkoo.captures c
                 WHERE c.tbl = in_tbl
                   AND (v_queue IS NULL OR c.queue = v_queue)
                 ORDER BY c.queue LOOP
        dest := v_cap.queue;
        exchange := v_cap.exchange;
        routing_key := v_cap.routing_key;
        row_filter := NULL;
        IF v_cap.columns IS NULL THEN
            drop_cols := coalesce(v_cap.exclude, '{}');
        ELSE
            SELECT coalesce(array_agg(a.attname::text), '{}')
                INTO drop_cols
            FROM pg_attribute a
            WHERE a.attrelid = in_tbl AND a.attnum > 0
              AND NOT a.attisdropped AND a.attname <> ALL (v_cap.columns);
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- One chunk of a snapshot: the rows after in_after (a key, each column
-- its output function's text; NULL for the first chunk) in key order,
-- in_chunk of them or the rest, locked FOR SHARE until the caller
-- commits, each an R event for every target of in_route (above),
-- written by pgq.insert_event or, for a slot worker, mikkoo.emit.
-- Returns the chunk's last key, NULL after the last chunk.  Runs with
-- the caller's rights: SELECT and UPDATE on the table (FOR SHARE) and
-- pgq_writer.  Nothing in it casts a value of the table's types: keys
-- are read with format('%s') and compared as their base types to
-- literals (read by the base type's input function, so no domain's
-- check runs), and rows are rendered as the triggers render them, or
-- for mikkoo.emit as a slot worker does (TimeZone UTC and DateStyle ISO
-- as in its session; a column it would not read sent as its text).
CREATE OR REPLACE FUNCTION mikkoo._snapshot_chunk(
    in_tbl REGCLASS, in_chunk INTEGER, in_after TEXT[], in_route JSONB)
RETURNS TEXT[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_emit   BOOLEAN := in_route ->> 'sink' = 'emit';
    v_who    TEXT := CASE WHEN in_route ->> 'sink' = 'emit'
                          THEN 'mikkoo.slot_snapshot'
                          ELSE 'mikkoo.snapshot' END;
    v_key    TEXT[];
    v_cols   TEXT;      -- "k1", "k2"
    v_texts  TEXT;      -- format('%s', "k1"), ...
    v_base   TEXT;      -- "k1"::base1, ...
    v_types  TEXT[];    -- base1, ...
    v_where  TEXT;
    v_bound  TEXT[];
    v_schema TEXT;
    v_name   TEXT;
    v_names  TEXT[];
    v_row    TEXT;
    v_tail   TEXT := ',"recorded_at":"'
                     || to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"}';
    v_tz     TEXT := current_setting('TimeZone');
    v_ds     TEXT := current_setting('DateStyle');
    v_tgt    record;
BEGIN
    IF in_tbl IS NULL THEN
        RAISE EXCEPTION '%: the table must not be NULL', v_who
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF in_chunk IS NULL OR in_chunk < 1 THEN
        RAISE EXCEPTION '%: chunk must be a positive number of rows, '
                        'not %', v_who, coalesce(in_chunk::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- (raises when there is none)
    PERFORM FROM mikkoo._snapshot_targets(in_tbl, in_route, v_who);
    v_key := mikkoo._capture_key(in_tbl);
    IF cardinality(v_key) = 0 THEN
        RAISE EXCEPTION '%: table % has no primary key: the '
                        'snapshot reads it in key order', v_who, in_tbl
            USING ERRCODE = 'invalid_table_definition';
    END IF;
    -- each key column's base type (through domains)
    SELECT string_agg(quote_ident(k.k), ', ' ORDER BY k.i),
           string_agg(format('format(''%%s'', t.%I)', k.k), ', '
                      ORDER BY k.i),
           string_agg(format('t.%I::%s', k.k, b.typ), ', ' ORDER BY k.i),
           array_agg(b.typ ORDER BY k.i)
        INTO v_cols, v_texts, v_base, v_types
    FROM unnest(v_key) WITH ORDINALITY k(k, i)
    JOIN pg_attribute a ON a.attrelid = in_tbl AND a.attname = k.k
    CROSS JOIN LATERAL (
        WITH RECURSIVE d(oid, typtype, typbasetype, typmod) AS (
            SELECT t.oid, t.typtype, t.typbasetype, a.atttypmod
            FROM pg_type t WHERE t.oid = a.atttypid
            UNION ALL
            SELECT t.oid, t.typtype, t.typbasetype, d.typmod
            FROM d JOIN pg_type t ON t.oid = d.typbasetype
            WHERE d.typtype = 'd')
        SELECT format_type(d.oid, CASE WHEN d.oid = a.atttypid
                                       THEN d.typmod END) AS typ
        FROM d WHERE d.typtype <> 'd') b;
    v_where := CASE WHEN in_after IS NULL THEN 'true'
                    ELSE format('(%s) > (%s)', v_base,
                                (SELECT string_agg(format('%L::%s', v, v_types[i]),
                                                   ', ' ORDER BY i)
                                 FROM unnest(in_after) WITH ORDINALITY u(v, i)))
                    END;
    -- Where this chunk ends: its in_chunk-th key (none: the last chunk).
    EXECUTE format('SELECT ARRAY[%s] FROM %s t WHERE %s ORDER BY %s'
                   ' OFFSET %s LIMIT 1', v_texts, in_tbl, v_where, v_cols,
                   in_chunk - 1)
        INTO v_bound;
    IF v_bound IS NOT NULL THEN
        v_where := v_where || format(' AND (%s) <= (%s)', v_base,
            (SELECT string_agg(format('%L::%s', v, v_types[i]), ', '
                               ORDER BY i)
             FROM unnest(v_bound) WITH ORDINALITY u(v, i)));
    END IF;
    SELECT n.nspname, c.relname INTO v_schema, v_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = in_tbl;
    IF v_emit THEN
        -- as the slot worker's session renders (set back below; a
        -- failure rolls it back)
        PERFORM set_config('TimeZone', 'UTC', true),
                set_config('DateStyle', 'ISO', true);
    END IF;
    v_row := mikkoo._render_row(in_tbl, v_emit);
    FOR v_tgt IN SELECT * FROM mikkoo._snapshot_targets(in_tbl, in_route,
                                                        v_who) t
                 ORDER BY t.dest LOOP
        v_names := mikkoo._capture_names(v_schema, v_name,
                                         v_tgt.routing_key, 'R');
        -- The first target's query takes the row locks; the others find
        -- the same rows (and any committed since, whose I events come
        -- first).  The body is an insert's (see mikkoo._capture()).
        EXECUTE format($q$
SELECT count(%5$s($5, $6, b.body, $7, 'application/json', NULL, $8))
FROM (SELECT $1 || CASE cardinality($2)
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
            FROM (SELECT %1$s AS n
                  FROM (SELECT * FROM %2$s t WHERE %3$s ORDER BY %4$s
                        FOR SHARE) t
                  OFFSET 0) y
            OFFSET 0) x) b$q$, v_row, in_tbl,
            v_where || coalesce(' AND (' || v_tgt.row_filter || ')', ''),
            v_cols,
            CASE WHEN v_emit THEN 'mikkoo.emit' ELSE 'pgq.insert_event' END)
            USING v_names[2], v_key, v_tgt.drop_cols, v_tail, v_tgt.dest,
                  v_names[1], v_tgt.exchange, v_names[3];
    END LOOP;
    IF v_emit THEN
        PERFORM set_config('TimeZone', v_tz, true),
                set_config('DateStyle', v_ds, true);
    END IF;
    RETURN v_bound;
END;
$$;

-- The chunks of a snapshot, each a transaction of its own; a chunk that
-- deadlocks with a writer is read again.  Transaction control rules out
-- SECURITY DEFINER and SET search_path in these procedures, so their
-- bodies call only functions that pin search_path, by their full names.
CREATE OR REPLACE PROCEDURE mikkoo._snapshot_run(in_tbl REGCLASS,
                                                 in_chunk INTEGER,
                                                 in_route JSONB)
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
            v_next := mikkoo._snapshot_chunk(in_tbl, in_chunk, v_after,
                                             in_route);
        EXCEPTION WHEN deadlock_detected THEN
            -- A writer locked rows in another order: this chunk was
            -- rolled back and is read again.
            v_tries := v_tries + 1;
            IF v_tries > 10 THEN
                RAISE;
            END IF;
            RAISE NOTICE '%: deadlock with a writer, reading the chunk '
                         'again',
                CASE pg_catalog.jsonb_extract_path_text(in_route, 'sink')
                WHEN 'emit' THEN 'mikkoo.slot_snapshot'
                ELSE 'mikkoo.snapshot' END;
            CONTINUE;
        END;
        v_tries := 0;
        EXIT WHEN v_next IS NULL;
        COMMIT;
        v_after := v_next;
    END LOOP;
END;
$$;

CREATE OR REPLACE PROCEDURE mikkoo.snapshot(tbl REGCLASS,
                                            queue TEXT DEFAULT NULL,
                                            chunk INTEGER DEFAULT 10000)
LANGUAGE plpgsql
AS $$
BEGIN
    CALL mikkoo._snapshot_run(tbl, chunk,
        pg_catalog.jsonb_build_object('sink', 'pgq', 'queue', queue));
END;
$$;
COMMENT ON PROCEDURE mikkoo.snapshot(REGCLASS, TEXT, INTEGER) IS
    'One R event per existing row of a captured table, in key order, in '
    'chunks that commit separately; call outside a transaction block';
