#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# mikkoo-replay: dead letters back on the wire, dry run first.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	setup_relay_queue
	# three dead letters, as the relay would have stored them
	sql "INSERT INTO mikkoo.dead_letter (queue, consumer, ev_id, ev_time,
		ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4,
		reason)
	     VALUES
	     ('$Q', 'mikkoo', 11, now(), 'k.a', 'one', '$EX', 'text/plain',
	      '{\"type\":\"t\"}', '{\"h\":1}', 'returned by RabbitMQ: 312 NO_ROUTE (attempt 3, max_failures 2)'),
	     ('$Q', 'mikkoo', 12, now(), 'k.b', 'two', '$EX', NULL, NULL, NULL,
	      'nacked by RabbitMQ (attempt 3, max_failures 2)'),
	     ('$Q', 'mikkoo', 13, now(), 'k.c', 'three', '$EX', NULL, NULL, NULL,
	      'returned by RabbitMQ: 312 NO_ROUTE (attempt 3, max_failures 2)')" >/dev/null
}

teardown() {
	common_teardown
}

@test "the man page's pipeline: inspect | jq | replay, dry run first" {
	run --separate-stderr bash -c "mikkoo-inspect -q '$Q' dead |
		jq -c 'select(.reason | test(\"NO_ROUTE\"))' |
		mikkoo-replay --dry-run --stdin"
	assert_success
	assert_equal "$(echo "$output" | jq -s -c '[.[].old_ev_id]')" "[11,13]"
	echo "$output" | jq -s -e 'all(.dry_run == true and .ev_id == null)'
	assert_equal "$stderr" "mikkoo-replay: info: would replay 2 dead letters (dry run: nothing changed)"
	assert_equal "$(dead_count)" 3

	run --separate-stderr bash -c "mikkoo-inspect -q '$Q' dead |
		jq -c 'select(.reason | test(\"NO_ROUTE\"))' |
		mikkoo-replay --stdin"
	assert_success
	echo "$output" | jq -s -e 'length == 2 and all(.ev_id | type == "number")'
	assert_equal "$stderr" "mikkoo-replay: info: replayed 2 dead letters into their PgQ queues"
	assert_equal "$(dead_count)" 1
	# the events go out again, with their original fields
	relay_start
	get_messages 2
	msgs | jq -s -e '.[0].body == "one" and .[0].routing_key == "k.a" and
		.[0].properties.type == "t" and
		.[0].properties.content_type == "text/plain" and
		.[0].properties.headers.h == 1 and .[1].body == "three"'
}

@test "filters, --id, --all; missing ids make it 65; nothing twice" {
	run -0 --separate-stderr mikkoo-replay -q "$Q" --routing-key k.b
	echo "$output" | jq -e '.old_ev_id == 12'
	id=$(sql "SELECT min(id) FROM mikkoo.dead_letter WHERE queue = '$Q'")
	run --separate-stderr mikkoo-replay --id "$id" --id 999999999
	assert_equal "$status" 65
	[[ "$stderr" == *"1 of the --id dead letters were not found (replayed already?)"* ]]
	run --separate-stderr mikkoo-replay --id "$id"
	assert_equal "$status" 65
	assert_output ""
	run -0 --separate-stderr mikkoo-replay -q "$Q" --reason-like '%NO_ROUTE%'
	assert_equal "$(dead_count)" 0
	run -0 --separate-stderr mikkoo-replay -q "$Q"
	assert_output ""
	run -64 mikkoo-replay
	assert_output --partial "refusing to replay every dead letter: give a filter, --stdin, or --all"
	run -64 mikkoo-replay --stdin --all
	run -64 mikkoo-replay --id 1 --id 2 --stdin
	# each of the three dead letters went back exactly once
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	assert_equal "$(sql "SELECT string_agg(ev_data, ',' ORDER BY ev_id) FROM $pfx")" "two,one,three"
}

@test "bad stdin lines are reported with their position" {
	run --separate-stderr mikkoo-replay --stdin <<'JSON'
{"nothing":1}
not json
JSON
	assert_equal "$status" 65
	[[ "$stderr" == *"<stdin>:1:1: a record needs \"id\", a dead letter's id"* ]]
	[[ "$stderr" == *"<stdin>:2:"* ]]
	assert_equal "$(dead_count)" 3
}
