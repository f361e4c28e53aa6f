#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# mikkoo-inspect: status, pending, retry, dead; read-only; pipe-safe.

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

# The consumer's position (pending_events is not: PgQ estimates it from
# the newest tick's event sequence, which moves with the ticker).
consumer_state() {
	sql "SELECT last_tick, current_batch, next_tick
	     FROM pgq.get_consumer_info('$Q', 'mikkoo')"
}

@test "status: one record per consumer, with the documented keys" {
	sql "SELECT pgq.register_consumer('$Q', 'other')" >/dev/null
	run --separate-stderr mikkoo-inspect -q "$Q"
	assert_success
	assert_equal "$(echo "$output" | wc -l)" 2
	echo "$output" | head -1 | jq -e --arg q "$Q" '
		keys_unsorted == ["queue","consumer","lag_seconds",
		"last_seen_seconds","last_tick","current_batch","next_tick",
		"pending_events","retry_events","dead_letters",
		"ticker_lag_seconds","ticker","ticker_pid","ticker_set_by",
		"events_per_second","relay_pid","rabbitmq_node"] and
		.queue == $q and .relay_pid == null and .ticker == "pgqd" and
		.consumer == "mikkoo" and (.last_tick | type == "number") and
		.current_batch == null and .dead_letters == 0'
	run -0 mikkoo-inspect -q "$Q" --consumer other
	echo "$output" | jq -e '.consumer == "other"'
}

@test "pending: events not yet relayed, without touching the consumer" {
	sql "SELECT count(pgq.insert_event('$Q', 'k', 'p' || g, '$EX', 'text/plain',
		NULL, NULL)) FROM generate_series(1, 5) g" >/dev/null
	# wait until a tick covers them, then look without consuming
	wait_for 10 sql "SELECT 1 FROM pgq.get_consumer_info('$Q', 'mikkoo')
		WHERE pending_events = 5"
	before=$(consumer_state)
	run --separate-stderr mikkoo-inspect -q "$Q" pending
	assert_success
	echo "$output" | jq -s -e '[.[].ev_data] == ["p1","p2","p3","p4","p5"]'
	echo "$output" | head -1 | jq -e '
		keys_unsorted == ["ev_id","ev_time","ev_txid","ev_retry",
		"ev_type","ev_data","ev_extra1","ev_extra2","ev_extra3",
		"ev_extra4"] and (.ev_id | type == "number") and
		(.ev_time | test("^[0-9-]{10}T[0-9:.]{15}Z$"))'
	assert_equal "$(consumer_state)" "$before"
	# pipe-safe: head takes one and mikkoo-inspect ends quietly
	run bash -c "mikkoo-inspect -q '$Q' pending | head -1 | jq -r .ev_data"
	assert_output p1
	run -0 mikkoo-inspect -q "$Q" pending --limit 2
	assert_equal "$(echo "$output" | wc -l)" 2
	# after the relay ran, nothing is pending
	relay_start
	get_messages 5
	wait_for 10 sql "SELECT 1 FROM pgq.get_consumer_info('$Q', 'mikkoo')
		WHERE pending_events = 0 AND current_batch IS NULL"
	run -0 mikkoo-inspect -q "$Q" pending
	assert_output ""
}

@test "retry and dead: what the relay put aside" {
	relay_start
	sql "SELECT pgq.insert_event('$Q', 'k', 'bad', '$EX', NULL, '{', NULL);
	     SELECT pgq.insert_event('$Q', 'k', 'lost', 'nope_$Q', NULL, NULL,
	     NULL);" >/dev/null
	wait_for 20 sql "SELECT 1 FROM pgq.retry_queue r JOIN pgq.queue q
		ON q.queue_id = r.ev_queue WHERE q.queue_name = '$Q'"
	run -0 mikkoo-inspect -q "$Q" retry
	echo "$output" | jq -e '.ev_data == "lost" and .ev_retry == 1 and
		(.retry_after | endswith("Z"))'
	run -0 mikkoo-inspect -q "$Q" dead
	echo "$output" | jq -e --arg q "$Q" 'select(.ev_data == "bad") |
		.queue == $q and .consumer == "mikkoo" and .ev_retry == null and
		(.reason | startswith("ev_extra3 is not valid JSON")) and
		(.id | type == "number")'
	run -0 mikkoo-inspect -q "$Q" dead --reason-like '%extra3%'
	assert_equal "$(echo "$output" | wc -l)" 1
	run -0 mikkoo-inspect -q "$Q" dead --routing-key nope
	assert_output ""
	run -0 mikkoo-inspect -q "$Q" dead --since '2000-01-01' --until '2999-01-01'
	assert_equal "$(echo "$output" | wc -l)" 1
}

@test "errors: unknown queue or consumer 66, usage 64" {
	run --separate-stderr mikkoo-inspect -q "nosuch_$$"
	assert_equal "$status" 66
	assert_equal "$stderr" "mikkoo-inspect: error: no PgQ queue 'nosuch_$$'"
	run --separate-stderr mikkoo-inspect -q "$Q" --consumer nobody pending
	assert_equal "$status" 66
	assert_equal "$stderr" "mikkoo-inspect: error: consumer 'nobody' is not registered on queue '$Q'"
	run -64 mikkoo-inspect -q "$Q" bogus
	assert_output --partial "the view is status, pending, retry, dead, captures, slots or tap"
	run -64 mikkoo-inspect -q "$Q" status --since 2020-01-01
	run -64 mikkoo-inspect -q "$Q" --id 1 --id 2 bogus
	run -64 mikkoo-inspect pending
	assert_output --partial "which queue? give -q QUEUE"
}
