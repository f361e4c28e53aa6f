#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: valgrind wants the CPU to itself
# mikkoo-relay under valgrind (the unsanitized build): no invalid access,
# no leak, on error paths and through a real run with failures.

load helpers/common
load helpers/relay

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
