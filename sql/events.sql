-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, part 3: the original's functions that insert events.

CREATE OR REPLACE FUNCTION mikkoo.insert_event(
    in_queue TEXT, in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT, in_properties TEXT, in_headers TEXT)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- the arguments the relay cannot do without
    IF in_queue IS NULL THEN
        RAISE EXCEPTION 'mikkoo: queue must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF in_exchange IS NULL THEN
        RAISE EXCEPTION 'mikkoo: exchange must not be NULL (use '''' for '
                        'the default exchange)'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF in_routing_key IS NULL THEN
        RAISE EXCEPTION 'mikkoo: routing key must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN pgq.insert_event(in_queue, in_routing_key, in_payload,
                            in_exchange, in_content_type, in_properties,
                            in_headers);
END;
$$;
COMMENT ON FUNCTION mikkoo.insert_event(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT,
                                        TEXT) IS
    'Insert an event; properties and headers are JSON texts (or NULL); '
    'needs pgq_writer';

CREATE OR REPLACE FUNCTION mikkoo.insert_event(
    in_queue TEXT, in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT)
RETURNS BIGINT
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mikkoo.insert_event(
        in_queue, in_exchange, in_routing_key, in_payload, in_content_type,
        json_build_object('message_id', gen_random_uuid())::text,
        json_build_object('pgq_queue', in_queue)::text);
$$;
COMMENT ON FUNCTION mikkoo.insert_event(TEXT, TEXT, TEXT, TEXT, TEXT) IS
    'Insert an event with a new random message_id and a pgq_queue header; '
    'needs pgq_writer';

CREATE OR REPLACE FUNCTION mikkoo.insert_audited_event(
    in_queue TEXT, in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE
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
        RAISE EXCEPTION 'mikkoo: payload of an audited event must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_event_id := mikkoo.insert_event(in_queue, in_exchange, in_routing_key,
                                      in_payload, in_content_type,
                                      v_properties, v_headers);
    PERFORM mikkoo.new_audit_record(v_message_id, v_event_id, in_queue,
                                    in_exchange, in_routing_key, in_payload,
                                    in_content_type, v_properties, v_headers);
    RETURN v_event_id;
END;
$$;
COMMENT ON FUNCTION mikkoo.insert_audited_event(TEXT, TEXT, TEXT, TEXT,
                                                TEXT) IS
    'Insert an event and its audit row in the caller''s transaction; '
    'needs pgq_writer';

-- 0.1.0's helper of the functions above, which ran with the owner's
-- rights.
DROP FUNCTION IF EXISTS mikkoo._insert(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT,
                                       TEXT);
