-- SPDX-License-Identifier: BSD-3-Clause
--
-- mikkoo.sql: the mikkoo schema.  Install, re-install and upgrade (it
-- is idempotent, and upgrades any earlier mikkoo.sql in place) with:
--
--     psql -v ON_ERROR_STOP=1 -f mikkoo.sql DBNAME
--
-- make builds it from the parts in sql/ (schema.sql, this one, then
-- audit, events, capture, snapshot, grants and upgrade: SQL_PARTS in
-- the Makefile), one transaction in one file.
--
-- Needs the pgq extension (CREATE EXTENSION pgq) and PostgreSQL 13 or
-- later (gen_random_uuid is built in; uuid-ossp is no longer needed).
--
-- Compatible with the Python mikkoo's mikkoo.sql: the same table
-- (mikkoo.audit) and functions with the same names and signatures, with
-- these fixes:
--   * JSON is built with json_build_object, so a queue name with a quote
--     or backslash no longer produces invalid ev_extra4;
--   * functions pin search_path (no hijacking through a caller's schema);
--   * functions are no longer STRICT: a NULL content type or NULL headers
--     inserts the event instead of silently inserting nothing; a NULL
--     queue, exchange or routing key raises an error instead;
--   * they run with the caller's rights: writing an event needs PgQ's
--     own right to write events (pgq_writer), as pgq.insert_event does;
--   * the install can be run again without errors.
-- Added: mikkoo.dead_letter, where mikkoo-relay stores events it cannot
-- deliver, so nothing is ever dropped (see mikkoo-replay(1)), and
-- table-change capture (mikkoo.capture, see mikkoo-capture(7)).
--
-- Rights (mikkoo(7) and mikkoo-capture(7) say it for operators):
--   * Every object belongs to the owner of schema mikkoo.  Recommended: a
--     NOLOGIN role that is not a superuser, made before installing:
--         CREATE ROLE mikkoo_owner NOLOGIN;
--         GRANT pgq_admin TO mikkoo_owner;  -- pgq_writer is enough, slower
--         CREATE SCHEMA mikkoo AUTHORIZATION mikkoo_owner;
--     and then this file run by a superuser, which creates everything as
--     that owner (and moves to it what an earlier install left to
--     another role).  Without the schema, the installing role owns it.
--   * Only three functions run with the owner's rights, and none of them
--     runs anything a caller controls: the capture's trigger function
--     mikkoo._capture() (it checks that the trigger that fired it is one
--     mikkoo.capture() made, takes every setting from
--     mikkoo.capture_settings, and renders rows without the casts of
--     types the owner does not trust), mikkoo._capture_gc() and
--     mikkoo._capture_dropped() (they delete the settings of dropped
--     tables).  Everything else runs with the caller's rights.
--   * Producers: pgq_writer (the insert functions call pgq.insert_event,
--     and audited ones INSERT into mikkoo.audit, granted to pgq_writer).
--   * Capturing a table: the right to create triggers on it (its owner)
--     and pgq_writer (INSERT on mikkoo.capture_settings is granted to
--     pgq_writer, and a row-level policy admits only tables the role may
--     create triggers on).  Writers of a captured table need nothing but
--     their rights on the table.
--   * mikkoo-relay: pgq_reader, INSERT on mikkoo.dead_letter and USAGE
--     on its sequence (with ticker: relay, pgq_admin, which may also
--     write mikkoo.queue_ticker); mikkoo-audit: SELECT and DELETE on mikkoo.audit;
--     mikkoo-replay: pgq_writer plus SELECT and DELETE on
--     mikkoo.dead_letter.  These are granted by the operator.

SET client_min_messages = warning;

BEGIN;

CREATE SCHEMA IF NOT EXISTS mikkoo;
COMMENT ON SCHEMA mikkoo IS 'mikkoo: PgQ to RabbitMQ relay helpers';

-- Create everything as the schema's owner.  A superuser (or a member of
-- the owner) installing moves to the owner what an earlier install left
-- to another role, so "ALTER SCHEMA mikkoo OWNER TO r" and running this
-- file again hands the whole schema to r.
DO $owner$
DECLARE
    v_oid   OID := (SELECT n.nspowner FROM pg_catalog.pg_namespace n
                    WHERE n.nspname = 'mikkoo');
    v_owner NAME := (SELECT r.rolname FROM pg_catalog.pg_roles r
                     WHERE r.oid = v_oid);
    o       record;
BEGIN
    IF v_owner = current_user THEN
        RETURN;
    END IF;
    IF NOT pg_catalog.pg_has_role(v_owner, 'MEMBER') THEN
        RAISE EXCEPTION 'mikkoo.sql: schema mikkoo belongs to %; run '
                        'mikkoo.sql as that role, a member of it or a '
                        'superuser', v_owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR o IN
        SELECT format('ALTER %s %s OWNER TO %I',
                      CASE c.relkind WHEN 'v' THEN 'VIEW'
                                     WHEN 'S' THEN 'SEQUENCE'
                                     ELSE 'TABLE' END,
                      c.oid::regclass, v_owner) AS stmt
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'mikkoo'::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'S')
          AND c.relowner <> v_oid
          -- a serial's sequence follows its table
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_class'::regclass
                            AND d.objid = c.oid AND d.deptype = 'a')
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure,
                      v_owner)
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'mikkoo'::regnamespace
          AND p.proowner <> v_oid LOOP
        EXECUTE o.stmt;
    END LOOP;
    EXECUTE format('SET LOCAL ROLE %I', v_owner);
END;
$owner$;

-- The schema's version: programs compare it with their own.
CREATE OR REPLACE FUNCTION mikkoo.version()
RETURNS TEXT
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.2.0'::text $$;
COMMENT ON FUNCTION mikkoo.version() IS
    'The version of mikkoo.sql installed in this database';
