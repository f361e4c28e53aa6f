-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql, part 6: rights, the last of what the schema's owner
-- creates (see part 1).

-- ---------------------------------------------------------------------
-- Rights.  Functions are created with EXECUTE for PUBLIC; the ones that
-- run with the owner's rights are narrowed, and the others check their
-- callers' rights on the objects they touch.
-- ---------------------------------------------------------------------
REVOKE ALL ON FUNCTION mikkoo._capture_dropped() FROM PUBLIC;
REVOKE ALL ON mikkoo.capture_settings FROM PUBLIC, pgq_writer;
GRANT SELECT, DELETE ON mikkoo.capture_settings TO PUBLIC;
GRANT INSERT ON mikkoo.capture_settings TO pgq_writer;
REVOKE ALL ON mikkoo.audit FROM pgq_writer;
GRANT INSERT ON mikkoo.audit TO pgq_writer;
GRANT SELECT ON mikkoo.captures TO PUBLIC;
-- The ticker marker: whoever may set a queue's external_ticker flag
-- (pgq_admin, through pgq.set_queue_config) may say who set it.
REVOKE ALL ON mikkoo.queue_ticker FROM PUBLIC;
GRANT SELECT ON mikkoo.queue_ticker TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON mikkoo.queue_ticker TO pgq_admin;
-- The logical-decoding source (logical.sql): roles that may write
-- events read the emit key and call mikkoo.emit(); the slot records are
-- readable by all.  The relay's role gets SELECT on mikkoo.emit_key and
-- SELECT, INSERT, UPDATE on mikkoo.slots from the operator.
REVOKE ALL ON mikkoo.emit_key FROM PUBLIC;
GRANT SELECT ON mikkoo.emit_key TO pgq_writer;
REVOKE ALL ON mikkoo.slots FROM PUBLIC;
GRANT SELECT ON mikkoo.slots TO PUBLIC;
REVOKE ALL ON FUNCTION mikkoo.emit(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION mikkoo.emit(TEXT, TEXT, TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mikkoo.emit(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT,
                                      TEXT) TO pgq_writer;
GRANT EXECUTE ON FUNCTION mikkoo.emit(TEXT, TEXT, TEXT) TO pgq_writer;

RESET ROLE;
