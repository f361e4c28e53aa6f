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

RESET ROLE;
