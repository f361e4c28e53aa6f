#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: changes settings of the whole server (ALTER SYSTEM)
# What needs a setting of the whole server: a slot the server
# invalidated (max_slot_wal_keep_size) is refused, a reader that stalls
# past wal_sender_timeout keeps its stream with status updates (both
# through test/tools/walcat), and the relay reads a failure's class from
# its SQLSTATE when the server speaks German (lc_messages).  Alone, so
# that no other file's slot is invalidated or timed out, and no other
# file's messages translated, meanwhile.

load helpers/common
load helpers/relay
load helpers/logical

setup_file() {
	psql -qX -v ON_ERROR_STOP=1 -f "$MIKKOO_SQL" >/dev/null
}

setup() {
	lg_setup
	CONSUMER=mikkoo
	CONF="$BATS_TEST_TMPDIR/mikkoo.yml"
}

teardown() {
	common_teardown
	if [ -n "${RESET_KEEP:-}" ]; then
		sql "ALTER SYSTEM RESET max_slot_wal_keep_size" >/dev/null
		sql "ALTER SYSTEM RESET wal_sender_timeout" >/dev/null
		sql "SELECT pg_reload_conf()" >/dev/null
	fi
	if [ -n "${RESET_LC_MESSAGES:-}" ]; then
		sql "ALTER SYSTEM RESET lc_messages" >/dev/null
		sql "SELECT pg_reload_conf()" >/dev/null
	fi
	lg_teardown
	sql "SET client_min_messages = warning;
	     DROP TABLE IF EXISTS $T CASCADE" >/dev/null
}

@test "an invalidated slot (max_slot_wal_keep_size) is refused, naming it and the last position relayed" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, t text);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_create 2>/dev/null
	sql "INSERT INTO $T VALUES (1)" >/dev/null
	slot_read -n 1
	last=$(sql "SELECT last_lsn FROM mikkoo.slots WHERE slot_name = '$SLOT'")
	sql "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'" >/dev/null
	RESET_KEEP=1
	sql "SELECT pg_reload_conf()" >/dev/null
	for i in 1 2 3; do
		sql "INSERT INTO $T SELECT g, repeat('x', 100) FROM
		     generate_series($i * 10000, $i * 10000 + 5000) g;
		     SELECT pg_switch_wal()" >/dev/null
	done
	sql "CHECKPOINT" >/dev/null
	wait_for 20 bash -c "[ \"\$(psql -XAtc \"SELECT wal_status FROM pg_replication_slots
	    WHERE slot_name = '$SLOT'\")\" = lost ]"
	run -78 walcat -S "$SLOT" -P "$PUB" --create -n 0
	assert_output --partial "replication slot '$SLOT' was invalidated (wal_status lost"
	assert_output --partial "the last position relayed was $last"
	assert_output --partial "SELECT pg_drop_replication_slot('$SLOT'); SELECT mikkoo.forget_slot('$SLOT')"
}

@test "a reader that stalls longer than wal_sender_timeout keeps its stream with status updates; without them the server ends it" {
	sql "CREATE TABLE $T (id int PRIMARY KEY);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_create 2>/dev/null
	sql "ALTER SYSTEM SET wal_sender_timeout = '2s'" >/dev/null
	RESET_KEEP=1
	sql "SELECT pg_reload_conf()" >/dev/null
	sql "INSERT INTO $T VALUES (1)" >/dev/null
	walcat_bg "$BATS_TEST_TMPDIR/slot.jsonl" -S "$SLOT" -P "$PUB" -n 2 \
		--idle 20 --stall 7
	wait_for 20 grep -q stalling "$BATS_TEST_TMPDIR/slot.jsonl.err"
	sql "INSERT INTO $T VALUES (2)" >/dev/null
	wait "${WALCAT_PIDS[0]}"
	slot_bodies | jq -s -e 'map(.id) == [1, 2]'
	# the same stall without status updates
	sql "INSERT INTO $T VALUES (3)" >/dev/null
	run walcat -S "$SLOT" -P "$PUB" -n 2 --idle 20 --stall 7 --stall-silent
	assert_failure 69
	assert_output --regexp "error: replication stream on .*(closed|ended|timeout)"
}

@test "a wrong PostgreSQL password exits 77 when the server speaks German too" {
	# the server's words are translated (lc_messages): the class of the
	# failure must come from its SQLSTATE, not from English text
	# (scripts/install-deps makes the locale; servers started before it
	# was made cannot use it)
	sql "SET lc_messages = 'de_DE.UTF-8'" >/dev/null 2>&1 ||
		skip "the server has no de_DE.UTF-8 locale (make deps, then restart the test servers)"
	RESET_LC_MESSAGES=1
	sql "ALTER SYSTEM SET lc_messages = 'de_DE.UTF-8'" >/dev/null
	sql "SELECT pg_reload_conf()" >/dev/null
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: postgresql://mikkoo:S3cr3t-CANARY@127.0.0.1:$PGPORT/mikkoo
      rabbitmq_url: $MIKKOO_AMQP_URL
YAML
	run -77 mikkoo-relay -c "$CONF"
	assert_output --partial "Passwort-Authentifizierung"
	refute_output --partial "S3cr3t-CANARY"
}
