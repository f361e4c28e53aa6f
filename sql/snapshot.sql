-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, part 5: CALL mikkoo.snapshot(), a captured table's rows
-- as events.

-- One chunk of CALL mikkoo.snapshot(): the rows after in_after (a key,
-- each column its output function's text; NULL for the first chunk) in
-- key order, in_chunk of them or the rest, locked FOR SHARE until the
-- caller commits, each an R event in every chosen capture.  Returns the
-- chunk's last key, NULL after the last chunk.  Runs with the caller's
-- rights: SELECT and UPDATE on the table (FOR SHARE) and pgq_writer.
-- Nothing in it casts a value of the table's types: keys are read with
-- format('%s') and compared as their base types to literals (read by
-- the base type's input function, so no domain's check runs), and rows
-- are rendered as the triggers render them.
CREATE OR REPLACE FUNCTION mikkoo._snapshot_chunk(
    in_tbl REGCLASS, in_queue TEXT, in_chunk INTEGER, in_after TEXT[])
RETURNS TEXT[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key    TEXT[];
    v_cols   TEXT;      -- "k1", "k2"
    v_texts  TEXT;      -- format('%s', "k1"), ...
    v_base   TEXT;      -- "k1"::base1, ...
    v_types  TEXT[];    -- base1, ...
    v_where  TEXT;
    v_bound  TEXT[];
    v_schema TEXT;
    v_name   TEXT;
    v_drop   TEXT[];
    v_names  TEXT[];
    v_row    TEXT;
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
    v_row := mikkoo._render_row(in_tbl);
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
        v_names := mikkoo._capture_names(v_schema, v_name,
                                         v_cap.routing_key, 'R');
        -- The first capture's query takes the row locks; the others find
        -- the same rows (and any committed since, whose I events come
        -- first).  The body is an insert's (see mikkoo._capture()).
        EXECUTE format($q$
SELECT count(pgq.insert_event($5, $6, b.body, $7, 'application/json', NULL,
                              $8))
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
            OFFSET 0) x) b$q$, v_row, in_tbl, v_where, v_cols)
            USING v_names[2], v_key, v_drop, v_tail, v_cap.queue,
                  v_names[1], v_cap.exchange, v_names[3];
    END LOOP;
    RETURN v_bound;
END;
$$;

-- Transaction control rules out SECURITY DEFINER and SET search_path
-- here, so the body calls only mikkoo._snapshot_chunk (which has
-- search_path pinned) by its full name.
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
