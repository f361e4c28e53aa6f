#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: valgrind wants the CPU to itself
# mikkoo-relay under valgrind (the unsanitized build): no invalid access,
# no leak, on error paths and through a real run with failures, of a PgQ
# worker and of a slot worker.

load helpers/common
load helpers/relay
load helpers/logical

VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect"

setup_file() {
	install_schema
}

setup() {
	[ -x "$MIKKOO_PLAIN_BIN/mikkoo-relay" ] ||
		fail "MIKKOO_PLAIN_BIN has no mikkoo-relay (run through make)"
	setup_relay_queue
	# valgrind makes libpq's SCRAM exchange slow; on a busy machine the
	# default 10 s connect deadline (rabbitmq's timeout, which the
	# worker also gives PostgreSQL) is too short to be a test of ours
	sed -i "s|rabbitmq_url: .*|&?connection_timeout=60|" "$CONF"
}

teardown() {
	common_teardown
}

@test "valgrind: configuration errors and --check" {
	run -78 $VG "$MIKKOO_PLAIN_BIN/mikkoo-relay" -n -c /nonexistent.yml
	write_config "$CONF" "max_failurs: 3"
	run -78 $VG "$MIKKOO_PLAIN_BIN/mikkoo-relay" -n -c "$CONF"
	assert_output --partial "is unknown (did you mean 'max_failures'?)"
	write_config "$CONF"
	run -0 $VG "$MIKKOO_PLAIN_BIN/mikkoo-relay" -n -c "$CONF"
	run -69 $VG "$MIKKOO_PLAIN_BIN/mikkoo-relay" -c <(sed \
		"s|rabbitmq_url: .*|rabbitmq_url: amqp://u:p@127.0.0.1:1/|" "$CONF") \
		--worker "$Q"
}

@test "valgrind: a worker relays, retries and dead-letters, then stops cleanly" {
	daemon_start relay $VG "$MIKKOO_PLAIN_BIN/mikkoo-relay" -c "$CONF" \
		--worker "$Q"
	sql "BEGIN;
	SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', 'text/plain',
		'{\"type\":\"t\",\"headers\":{\"a\":[1,{\"b\":2.5}]}}', NULL))
		FROM generate_series(1, 300) g;
	SELECT pgq.insert_event('$Q', 'k', 'bad', '$EX', NULL, '{', NULL);
	SELECT pgq.insert_event('$Q', 'k', 'lost', 'nope_$Q', NULL, NULL, NULL);
	COMMIT;" >/dev/null
	get_messages 300 60
	wait_for 60 dead_count_is 2
	relay_stop
	assert_equal "$daemon_status" 0
	run grep -E "==[0-9]+==" "$BATS_TEST_TMPDIR/relay.err"
	assert_failure
}

@test "valgrind: a slot worker relays every kind of change and emitted events, dead-letters a forged one, then stops cleanly" {
	# slot_worker_setup's names, but this file's $Q and $EX stay
	local n
	n=$(mk_name)
	SLOT="s_$n" PUB="p_$n" T="public.lt_$n" W="w_$n" STREAM="st_$n"
	EXS="exs_$n" MQ="mqs_$n" WALCAT_PIDS=()
	mq declare-exchange "$EXS" --type topic
	mq declare-queue "$MQ" --bind "$EXS:#"
	defer slot_worker_teardown
	sql "CREATE TABLE $T (id int PRIMARY KEY, n numeric, t text, j jsonb,
	         ts timestamptz, ia int[]);
	     ALTER TABLE $T REPLICA IDENTITY FULL;
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_config "batch_chunk: 64"
	sed -i "s|rabbitmq_url: .*|&?connection_timeout=60|" "$CONF"
	daemon_start relay $VG "$MIKKOO_PLAIN_BIN/mikkoo-relay" -c "$CONF" \
		--worker "$W"
	sql "INSERT INTO $T SELECT g, g * 1.5, repeat('t', g * 10),
	         jsonb_build_object('g', g), now(), ARRAY[g, NULL]
	     FROM generate_series(1, 300) g;
	     UPDATE $T SET n = n + 1, t = 'u' WHERE id <= 100;
	     DELETE FROM $T WHERE id > 250;
	     SELECT count(mikkoo.emit('$STREAM', 'k', g::text, '$EXS', 'text/plain',
	         NULL, NULL)) FROM generate_series(1, 50) g;
	     SELECT pg_logical_emit_message(true, 'mikkoo.emit', 'forged');
	     TRUNCATE $T" >/dev/null
	# 300 inserts, 100 updates, 50 deletes, 50 events, a truncate
	get_messages 501 120
	slot_dead_is() {
		[ "$(sql "SELECT count(*) FROM mikkoo.dead_letter
		          WHERE queue = '$W'")" = "$1" ]
	}
	wait_for 60 slot_dead_is 1
	relay_stop
	assert_equal "$daemon_status" 0
	run grep -E "==[0-9]+==" "$BATS_TEST_TMPDIR/relay.err"
	assert_failure
}

@test "valgrind: the supervisor and its worker process stop cleanly" {
	daemon_start relay $VG --trace-children=yes \
		"$MIKKOO_PLAIN_BIN/mikkoo-relay" -c "$CONF"
	insert_event "'k'" "'one'" "'$EX'" NULL NULL NULL
	get_messages 1 30
	relay_stop
	assert_equal "$daemon_status" 0
	# the worker's findings do not reach the parent's exit status
	run grep -E "==[0-9]+==|exited with status" "$BATS_TEST_TMPDIR/relay.err"
	assert_failure
}
