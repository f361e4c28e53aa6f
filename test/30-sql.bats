#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# sql/mikkoo.sql through psql: the original's functions, their bugs fixed.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	Q=$(mk_name)
	pgq_create_queue "$Q"
}

# The event as PgQ stored it: type|data|extra1|extra2|extra3|extra4
stored() {
	local pfx
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	sql "SELECT ev_type, ev_data, ev_extra1, coalesce(ev_extra2, 'NULL'),
	     coalesce(ev_extra3, 'NULL'), coalesce(ev_extra4, 'NULL')
	     FROM $pfx WHERE ev_id = $1"
}

@test "installing twice is fine and quiet" {
	run psql -qX -v ON_ERROR_STOP=1 -f "$MIKKOO_SQL"
	assert_success
	assert_output ""
}

@test "insert_event, 7 arguments: passes everything through" {
	id=$(sql "SELECT mikkoo.insert_event('$Q', 'ex', 'rk', 'body',
		'text/plain', '{\"type\":\"t\"}', '{\"h\":1}')")
	run stored "$id"
	assert_output 'rk|body|ex|text/plain|{"type":"t"}|{"h":1}'
	# NULL optional arguments insert (the original's STRICT inserted
	# nothing, silently)
	id=$(sql "SELECT mikkoo.insert_event('$Q', 'ex', 'rk', 'b', NULL, NULL, NULL)")
	run stored "$id"
	assert_output 'rk|b|ex|NULL|NULL|NULL'
}

@test "insert_event, 5 arguments: a message_id and a pgq_queue header" {
	id=$(sql "SELECT mikkoo.insert_event('$Q', 'ex', 'rk', 'b', NULL)")
	run stored "$id"
	assert_output --regexp "^rk\|b\|ex\|NULL\|\{\"message_id\" : \"[0-9a-f-]{36}\"\}\|\{\"pgq_queue\" : \"$Q\"\}$"
}

@test "insert_audited_event: the event and its audit row, atomically" {
	id=$(sql "SELECT mikkoo.insert_audited_event('$Q', 'ex', 'rk', 'payload',
		'application/json')")
	run sql "SELECT event_id, queue, exchange, routing_key, payload,
		content_type, properties::json->>'message_id' = message_id::text,
		headers FROM mikkoo.audit WHERE event_id = $id AND queue = '$Q'"
	assert_output "$id|$Q|ex|rk|payload|application/json|t|{\"pgq_queue\" : \"$Q\"}"
	# rolled back: neither the event nor the row
	sql "BEGIN; SELECT mikkoo.insert_audited_event('$Q', 'ex', 'rk', 'gone',
		NULL); ROLLBACK;" >/dev/null
	assert_equal "$(sql "SELECT count(*) FROM mikkoo.audit WHERE payload = 'gone'")" 0
	# delete_audit_record
	mid=$(sql "SELECT message_id FROM mikkoo.audit WHERE event_id = $id AND queue = '$Q'")
	assert_equal "$(sql "SELECT mikkoo.delete_audit_record('$mid')")" t
	assert_equal "$(sql "SELECT mikkoo.delete_audit_record('$mid')")" f
}

@test "JSON is built properly: a queue name with a quote and a backslash" {
	q='a"b\c'
	sql "SELECT pgq.create_queue('$q')" >/dev/null
	id=$(sql "SELECT mikkoo.insert_event('$q', 'ex', 'rk', 'b', NULL)")
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$q'")
	run sql "SELECT (ev_extra4::json)->>'pgq_queue' FROM $pfx WHERE ev_id = $id"
	assert_output "$q"
	sql "SELECT pgq.drop_queue('$q')" >/dev/null
}

@test "NULL queue, exchange or routing key raise instead of inserting nothing" {
	run sql "SELECT mikkoo.insert_event('$Q', NULL, 'rk', 'b', NULL)"
	assert_failure
	assert_output --partial "mikkoo: exchange must not be NULL"
	run sql "SELECT mikkoo.insert_audited_event('$Q', 'ex', NULL, 'b', NULL)"
	assert_output --partial "mikkoo: routing key must not be NULL"
	run sql "SELECT mikkoo.insert_audited_event('$Q', 'ex', 'rk', NULL, NULL)"
	assert_output --partial "payload of an audited event must not be NULL"
}

@test "search_path is pinned: a caller's schema cannot hijack the helpers" {
	defer sql "DROP SCHEMA IF EXISTS evil CASCADE"
	sql "CREATE SCHEMA IF NOT EXISTS evil;
	     CREATE OR REPLACE FUNCTION evil.json_build_object(text, text)
	     RETURNS json LANGUAGE sql AS \$\$ SELECT '{\"hijacked\":1}'::json \$\$;" >/dev/null
	# the trap works where search_path is not pinned
	run psql -qXAt -c "SET search_path = evil, public;
		SELECT json_build_object('pgq_queue', 'x'::text)"
	assert_output '{"hijacked":1}'
	id=$(psql -qXAt -v ON_ERROR_STOP=1 -c "SET search_path = evil, public;
		SELECT mikkoo.insert_event('$Q', 'ex', 'rk', 'b', NULL)")
	run stored "$id"
	refute_output --partial hijacked
}

@test "mikkoo.emit() names all it calls: a caller's search_path changes nothing it writes" {
	slot="emit_path_$$"
	defer sql "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		   WHERE slot_name = '$slot'; DROP SCHEMA IF EXISTS evil_emit CASCADE"
	sql "DROP SCHEMA IF EXISTS evil_emit CASCADE; CREATE SCHEMA evil_emit;
	     CREATE FUNCTION evil_emit.octet_length(text) RETURNS integer
	         LANGUAGE sql AS 'SELECT 999';
	     CREATE FUNCTION evil_emit.cat(text, text) RETURNS text
	         LANGUAGE sql AS \$\$ SELECT 'hijacked' \$\$;
	     CREATE OPERATOR evil_emit.|| (LEFTARG = text, RIGHTARG = text,
	         FUNCTION = evil_emit.cat);
	     CREATE FUNCTION evil_emit.pg_logical_emit_message(boolean, text, text)
	         RETURNS pg_lsn LANGUAGE sql AS \$\$ SELECT '0/1'::pg_lsn \$\$;" >/dev/null
	sql "SELECT 1 FROM pg_create_logical_replication_slot('$slot', 'test_decoding')" >/dev/null
	# the traps work where names are not qualified
	run -0 sql "SET search_path = evil_emit, pg_catalog;
		SELECT 'a' || 'b', octet_length('ab'), pg_logical_emit_message(true, 'x', 'y')"
	assert_output "hijacked|999|0/1"
	# neither form of mikkoo.emit() pins search_path (cost), both are safe
	for call in "mikkoo.emit('s', 't', 'payload', NULL, NULL, NULL, 'x')" \
		"mikkoo.emit('s', 't', 'payload')"; do
		id=$(sql "SET search_path = evil_emit, pg_catalog;
			SET synchronous_commit = on; SELECT $call")
		[ "$id" -gt 1 ]
	done
	run -0 sql "SELECT regexp_replace(data, 'content:[0-9a-f]{32}', 'content:KEY')
		    FROM pg_logical_slot_get_changes('$slot', NULL, NULL)
		    WHERE data LIKE 'message:%'"
	assert_output "message: transactional: 1 prefix: mikkoo.emit, sz: 53 content:KEY1:s1:t7:payload---1:x
message: transactional: 1 prefix: mikkoo.emit, sz: 51 content:KEY1:s1:t7:payload----"
}

@test "producers need PgQ's right to write events (pgq_writer); with it they insert audited events, and read no audit row" {
	role="p_$$"
	defer sql "DROP OWNED BY $role; DROP ROLE $role"
	sql "DROP ROLE IF EXISTS $role; CREATE ROLE $role LOGIN PASSWORD 'pw';
	     GRANT USAGE ON SCHEMA mikkoo TO $role;" >/dev/null
	n=$(sql "SELECT count(*) FROM mikkoo.audit WHERE queue = '$Q'")
	for f in "insert_audited_event('$Q', 'ex', 'rk', 'b', NULL)" \
		"insert_event('$Q', 'ex', 'rk', 'b', NULL)" \
		"insert_event('$Q', 'ex', 'rk', 'b', NULL, NULL, NULL)"; do
		run -1 env PGUSER="$role" PGPASSWORD=pw psql -qXAt -v ON_ERROR_STOP=1 \
			-c "SELECT mikkoo.$f"
		assert_output --partial "permission denied for function insert_event"
	done
	run -0 sql "SELECT count(*) FROM mikkoo.audit WHERE queue = '$Q'"
	assert_output "$n"
	sql "GRANT pgq_writer TO $role" >/dev/null
	run -0 env PGUSER="$role" PGPASSWORD=pw psql -qXAt -v ON_ERROR_STOP=1 \
		-c "SELECT mikkoo.insert_audited_event('$Q', 'ex', 'rk', 'b', NULL)"
	run -0 sql "SELECT count(*) FROM mikkoo.audit WHERE queue = '$Q'"
	assert_output "$((n + 1))"
	run -1 env PGUSER="$role" PGPASSWORD=pw psql -qXAt -c "SELECT count(*) FROM mikkoo.audit"
	assert_output --partial "permission denied"
	run -1 env PGUSER="$role" PGPASSWORD=pw psql -qXAt -c "DELETE FROM mikkoo.audit"
	assert_output --partial "permission denied"
}

@test "installing over every earlier mikkoo.sql upgrades it in place: dead letters and audit rows kept, mikkoo.version() says 0.2.0" {
	local f db n=0
	for f in "$MIKKOO_TOP"/test/fixtures/mikkoo-*.sql; do
		db="up_$$_$n"
		n=$((n + 1))
		sql "CREATE DATABASE $db" >/dev/null
		PGDATABASE=$db sql "CREATE EXTENSION pgq; SELECT pgq.create_queue('uq')" >/dev/null
		PGDATABASE=$db psql -qX -v ON_ERROR_STOP=1 -f "$f" >/dev/null
		run -1 env PGDATABASE=$db psql -qXAt -c "SELECT mikkoo.version()"
		PGDATABASE=$db sql "INSERT INTO mikkoo.dead_letter (queue, consumer, ev_id,
		         ev_time, ev_data, reason) VALUES ('uq', 'c', 7, now(), 'd', 'kept');
		     SELECT mikkoo.insert_audited_event('uq', 'ex', 'rk', 'kept', NULL)" >/dev/null
		run -0 env PGDATABASE=$db psql -qX -v ON_ERROR_STOP=1 -f "$MIKKOO_SQL"
		run -0 env PGDATABASE=$db psql -qXAt -c "SELECT mikkoo.version()" \
			-c "SELECT count(*) FROM mikkoo.dead_letter WHERE reason = 'kept' AND ev_data = 'd'" \
			-c "SELECT count(*) FROM mikkoo.audit WHERE payload = 'kept'" \
			-c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'mikkoo'::regnamespace AND prosecdef AND proname LIKE '%insert%'"
		assert_output "0.2.0
1
1
0"
		# and it works as the new one does
		run -0 env PGDATABASE=$db psql -qXAt -c "SELECT mikkoo.insert_audited_event('uq', 'ex', 'rk', 'new', NULL) > 0"
		assert_output t
		sql "DROP DATABASE $db" >/dev/null
	done
	[ "$n" -ge 2 ]
}
