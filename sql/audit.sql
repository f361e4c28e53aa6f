-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, part 2: the tables of dead letters and audit rows, and
-- the original's audit helpers.  (Parts are put together by make, in the
-- order of SQL_PARTS in the Makefile.)

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

-- Who set a queue's external_ticker flag, when mikkoo-relay ticks the
-- queue itself (ticker: relay): written in the transaction that sets the
-- flag and deleted with it, so that a relay that died holding the flag
-- is told from another external ticker (a Londiste cascade has no row
-- here) and only the relay's own leftover is taken back.
CREATE TABLE IF NOT EXISTS mikkoo.queue_ticker (
    queue_name  TEXT PRIMARY KEY,
    set_by      TEXT NOT NULL,
    set_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);
COMMENT ON TABLE mikkoo.queue_ticker IS
    'Queues whose pgq external_ticker flag mikkoo-relay set (set_by: '
    'which relay); no row: the flag belongs to another ticker';

-- The audit helpers and the insert functions run with the caller's
-- rights: INSERT or DELETE on mikkoo.audit, and pgq.insert_event, which
-- PgQ lets pgq_writer call.  (Up to mikkoo.sql 0.1.0 they ran with the
-- owner's, so that any role could write any queue and any audit row.)
CREATE OR REPLACE FUNCTION mikkoo.delete_audit_record(in_message_id UUID)
RETURNS BOOLEAN
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (DELETE FROM mikkoo.audit WHERE message_id = in_message_id
               RETURNING 1)
    SELECT count(*) > 0 FROM d;
$$;
COMMENT ON FUNCTION mikkoo.delete_audit_record(UUID) IS
    'Delete the audit row of a message seen on the confirming queue; '
    'true if a row was deleted (needs DELETE on mikkoo.audit)';

CREATE OR REPLACE FUNCTION mikkoo.new_audit_record(
    in_message_id UUID, in_event_id BIGINT, in_queue TEXT,
    in_exchange TEXT, in_routing_key TEXT, in_payload TEXT,
    in_content_type TEXT, in_properties TEXT, in_headers TEXT)
RETURNS mikkoo.audit
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The row made from the arguments, not RETURNING (which would take
    -- SELECT on mikkoo.audit: every audited event's payload).
    WITH i AS (
        INSERT INTO mikkoo.audit (message_id, event_id, queue, exchange,
                                  routing_key, payload, content_type,
                                  properties, headers, published_at)
        VALUES (in_message_id, in_event_id, in_queue, in_exchange,
                in_routing_key, in_payload, in_content_type, in_properties,
                in_headers, CURRENT_TIMESTAMP))
    SELECT in_message_id, in_event_id, in_queue, in_exchange, in_routing_key,
           in_payload, in_content_type, in_properties, in_headers,
           CURRENT_TIMESTAMP;
$$;
COMMENT ON FUNCTION mikkoo.new_audit_record(UUID, BIGINT, TEXT, TEXT, TEXT,
                                            TEXT, TEXT, TEXT, TEXT) IS
    'Insert an audit row (needs INSERT on mikkoo.audit: pgq_writer)';
