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

COMMIT;
