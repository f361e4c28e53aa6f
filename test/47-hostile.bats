#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# Hostile data through the real relay: whatever bytes a producer puts in
# a row, the event ends delivered, retried or dead-lettered with a
# readable reason; none vanishes and none stalls its queue.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	setup_relay_queue
}

teardown() {
	common_teardown
}

retry_count() {
	sql "SELECT count(*) FROM pgq.retry_queue r JOIN pgq.queue q
	     ON q.queue_id = r.ev_queue WHERE q.queue_name = '$Q'"
}

@test "a refusal whose reason is cut inside a CJK character is dead-lettered, not lost" {
	write_config "$CONF" "max_failures: 1"
	relay_start
	# 35 CJK characters: 105 bytes of exchange name, quoted twice in
	# RabbitMQ's 404 reply, so the reason crosses every cut point
	ev=$(insert_event "'k'" "'x'" "repeat('中', 35)" "'text/plain'" NULL NULL)
	wait_for 60 dead_count_is 1
	run sql "SELECT ev_id, reason FROM mikkoo.dead_letter WHERE queue = '$Q'"
	assert_output --regexp "^$ev\|exchange '中{35}' cannot be published to: 404 NOT_FOUND"
	assert_output --partial "(attempt 2, max_failures 1)"
	assert_equal "$(retry_count)" 0
	# every log line is valid UTF-8
	run iconv -f UTF-8 -t UTF-8 "$BATS_TEST_TMPDIR/relay.err"
	assert_success
}

# poison HEADERS: a returned event (default exchange, no queue bound
# to its key) whose ev_extra4 is HEADERS, then a good event; the good
# one must arrive and the poison one end as a dead letter.
poison() {
	write_config "$CONF" "max_failures: 1"
	relay_start
	sql "BEGIN;
	SELECT pgq.insert_event('$Q', 'nobody_$Q', 'poison', '', NULL, NULL, '$1');
	SELECT pgq.insert_event('$Q', 'k', 'good', '$EX', NULL, NULL, NULL);
	COMMIT;" >/dev/null
	get_messages 1 30
	msgs | jq -e '.body == "good"'
	wait_for 60 dead_count_is 1
	run sql "SELECT ev_data, reason FROM mikkoo.dead_letter WHERE queue = '$Q'"
	assert_output --regexp "^poison\|.*312 NO_ROUTE"
	run grep -c "retrying in" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
}

@test "a returned event with an empty header name does not stall the queue" {
	poison '{"": "x"}'
}

@test "a returned event with an x-death header does not stall the queue" {
	poison '{"x-death": "x"}'
}

@test "a returned event with its own event_id header does not stall the queue" {
	poison '{"event_id": 7}'
}
