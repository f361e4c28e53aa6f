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

# poison KEY HEADERS [SQL]: an event to the default exchange with routing key
# KEY (no queue has it, so RabbitMQ returns it) and ev_extra4 HEADERS
# (or the value of the SQL expression),
# then a good event; the good one must arrive, the batch must finish,
# the poison one must end as a dead letter, and the relay must never
# lose its connection over it.
poison() {
	write_config "$CONF" "max_failures: 1" ${CONF_EXTRA:+"$CONF_EXTRA"}
	relay_start
	sql "BEGIN;
	SELECT pgq.insert_event('$Q', '$1', 'poison', '', NULL, NULL, ${3:-'$2'});
	SELECT pgq.insert_event('$Q', 'k', 'good', '$EX', NULL, NULL, NULL);
	COMMIT;" >/dev/null
	get_messages 1 30
	msgs | jq -e '.body == "good"'
	wait_for 60 dead_count_is 1
	# the batch was finished: nothing pending for the relay
	wait_for 20 pending_is 0
	run sql "SELECT ev_data || ': ' || reason FROM mikkoo.dead_letter
		 WHERE queue = '$Q'"
}

pending_is() {
	[ "$(sql "SELECT pending_events FROM pgq.get_consumer_info('$Q',
		'$CONSUMER')")" -eq "$1" ]
}

no_reconnect() {
	run grep -cE "retrying in|reconnect" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
}

@test "an empty header name is refused at once: no stall, no reconnect" {
	poison "nobody_$Q" '{"": "x"}'
	assert_output "poison: ev_extra4: a header name is empty (AMQP field names are 1 to 128 bytes)"
	no_reconnect
}

@test "a header name over 128 bytes is refused at once" {
	poison "nobody_$Q" "{\"$(printf 'n%.0s' $(seq 129))\": 1}"
	assert_output --regexp '^poison: ev_extra4: header name "n+\.\.\." is 129 bytes, over 128$'
	no_reconnect
}

@test "an x-death header is refused at once: it is RabbitMQ's" {
	poison "nobody_$Q" '{"x-death": "x"}'
	assert_output "poison: ev_extra4: header 'x-death' is RabbitMQ's record of dead-lettering: a producer may not set it"
	no_reconnect
}

@test "a returned event with its own event_id header is matched by ours: retried, then dead" {
	poison "nobody_$Q" '{"event_id": 7}'
	assert_output "poison: returned by RabbitMQ: 312 NO_ROUTE (attempt 2, max_failures 1)"
	no_reconnect
}

@test "a returned event whose header names are odd but legal is retried, then dead" {
	poison "nobody_$Q" '{"\u202e\u0001 ☃": {"a": [1, {"b": null}]}, "origin": "x", "txid": "y"}'
	assert_output "poison: returned by RabbitMQ: 312 NO_ROUTE (attempt 2, max_failures 1)"
	no_reconnect
}

@test "CC that is not an array is refused before RabbitMQ closes a channel over it" {
	CONF_EXTRA="allow_sender_routing: true" poison "k" '{"CC": "somewhere"}'
	assert_output "poison: ev_extra4: header 'CC' must be an array of routing keys (strings of at most 255 bytes)"
	run grep -c "channel closed" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
}

@test "headers too big for an AMQP frame are refused, not sent (no reconnect loop)" {
	poison "k" "" "'{\"big\": \"' || repeat('a', 150000) || '\"}'"
	assert_output "poison: the message's properties and headers do not fit in one AMQP frame of 131072 bytes (the connection's frame_max)"
	no_reconnect
}

@test "a return rabbitmq-c cannot read: the event still gets its fate; the queue flows" {
	grep -q MIKKOO_FAULT_RETURN_UNREADABLE \
		"$MIKKOO_BUILD/bin/mikkoo-relay" || skip "needs the test build (make check-asan)"
	export MIKKOO_FAULT_RETURN_UNREADABLE=1
	poison "nobody_$Q" ''
	assert_output "poison: returned by RabbitMQ: 312 NO_ROUTE (rabbitmq-c could not read the returned message) (attempt 2, max_failures 1)"
	# the connection was given up for it, and relaying went on
	run grep -c "reading a returned message" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 2
}

# The property, on generated data: thousands of events with hostile
# values in every field (test/tools/hostile.py says which), through the
# real relay and servers.  The seed is fixed and printed: rerun a failure
# with HOSTILE_SEED=N (and HOSTILE_EVENTS=N for another size).
@test "property: every hostile event is delivered byte-equal or dead-lettered with a readable reason" {
	seed=${HOSTILE_SEED:-20261206}
	n=${HOSTILE_EVENTS:-2000}
	echo "# hostile.py seed $seed, $n events (HOSTILE_SEED=$seed HOSTILE_EVENTS=$n to rerun)" >&3
	write_config "$CONF" "max_failures: 0"
	relay_start
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/hostile.py" insert --queue "$Q" \
		--exchange "$EX" --seed "$seed" --count "$n" \
		--out "$BATS_TEST_TMPDIR/events.jsonl"
	run /usr/bin/python3 "$MIKKOO_TOP/test/tools/hostile.py" check --queue "$Q" \
		--amqp-queue "$MQ" --events "$BATS_TEST_TMPDIR/events.jsonl" \
		--log "$BATS_TEST_TMPDIR/relay.err"
	echo "$output"
	echo "# ${lines[0]}" >&3
	assert_success
	# the relay survived all of it and stops cleanly
	relay_stop
	assert_equal "$daemon_status" 0
	# every dead letter reads back as a JSON record
	dead=$(dead_count)
	[ "$dead" -gt 0 ]
	mikkoo-inspect -q "$Q" dead >"$BATS_TEST_TMPDIR/dead.jsonl"
	assert_equal "$(jq -c . "$BATS_TEST_TMPDIR/dead.jsonl" | wc -l)" "$dead"
	jq -e 'select((.reason | type) != "string" or (.reason | length) == 0)' \
		"$BATS_TEST_TMPDIR/dead.jsonl" && fail "a dead letter without a reason"
	true
}
