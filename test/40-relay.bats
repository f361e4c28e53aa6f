#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# mikkoo-relay end to end: real PostgreSQL + pgq + pgqd + RabbitMQ.

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
	# a session a test held open (see the ticker takeover test)
	sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	     WHERE application_name = 'hold_$Q'" >/dev/null 2>&1 || true
}

@test "the seed README's insertion example arrives with every property and header" {
	relay_start
	ev_id=$(insert_event "'test.routing-key'" "'{\"foo\": \"bar\"}'" \
		"'$EX'" "'application/json'" "'{\"type\": \"example\"}'" "''")
	get_messages 1
	m=$(msgs)
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	read -r txid iso epoch < <(sql "SELECT ev_txid,
		to_char(ev_time AT TIME ZONE 'UTC',
			'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),
		floor(extract(epoch FROM ev_time))::int8
		FROM $pfx WHERE ev_id = $ev_id" | tr '|' ' ')
	echo "$m" | jq -e --arg ex "$EX" --argjson id "$ev_id" \
		--argjson txid "$txid" --arg iso "$iso" --argjson ts "$epoch" '
		.exchange == $ex and .routing_key == "test.routing-key" and
		.body == "{\"foo\": \"bar\"}" and
		.properties.app_id == "mikkoo" and
		.properties.content_type == "application/json" and
		.properties.type == "example" and
		.properties.delivery_mode == 2 and
		.properties.timestamp == $ts and
		(.properties.correlation_id | test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")) and
		(.properties.headers.origin | type == "string" and length > 0) and
		(.properties.headers.sequence | type == "number" and . > 0) and
		.properties.headers.timestamp == $iso and
		.properties.headers.txid == $txid and
		.properties.headers.event_id == $id and
		(.properties | has("message_id") | not)'
	# 64-bit integers on the wire, strings where the original sent them
	echo "$m" | jq -e '.header_types.sequence == "l" and
		.header_types.txid == "l" and .header_types.event_id == "l" and
		.header_types.origin == "S" and .header_types.timestamp == "S"'
}

@test "ev_extra3 properties win over automatic ones; its headers replace ev_extra4's" {
	relay_start
	insert_event "'k1'" "'a'" "'$EX'" "'text/plain'" \
		"'{\"app_id\":\"billing\",\"content_type\":\"application/x\",\"correlation_id\":\"c-1\",\"timestamp\":42,\"message_id\":\"m-1\",\"priority\":7,\"expiration\":\"60000\",\"content_encoding\":\"gzip\",\"unknown_key\":1}'" \
		"'{\"origin\":\"mine\",\"sequence\":\"s\",\"txid\":\"t\",\"timestamp\":\"ts\",\"event_id\":\"spoof\",\"x\":{\"y\":[1,2.5,true,null]}}'"
	insert_event "'k2'" "'b'" "'$EX'" "NULL" \
		"'{\"headers\":{\"from3\":1}}'" "'{\"from4\":1}'"
	get_messages 2
	msgs | head -1 | jq -e '.properties.app_id == "billing" and
		.properties.content_type == "application/x" and
		.properties.correlation_id == "c-1" and
		.properties.timestamp == 42 and .properties.message_id == "m-1" and
		.properties.priority == 7 and .properties.expiration == "60000" and
		.properties.content_encoding == "gzip" and
		.properties.headers.origin == "mine" and
		.properties.headers.sequence == "s" and
		.properties.headers.txid == "t" and
		.properties.headers.timestamp == "ts" and
		(.properties.headers.event_id | type == "number") and
		.properties.headers.x == {"y": [1, 2.5, true, null]}'
	msgs | tail -1 | jq -e '.properties.headers.from3 == 1 and
		(.properties.headers | has("from4") | not) and
		(.properties.headers | has("origin")) and
		(.properties | has("content_type") | not)'
}

@test "messages are persistent by default, transient with persistent: false" {
	relay_start
	insert_event "'k'" "'p'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.properties.delivery_mode == 2'
	relay_stop
	assert_equal "$daemon_status" 0

	write_config "$CONF" "persistent: false"
	relay_start
	insert_event "'k'" "'t'" "'$EX'" NULL "'{\"type\":\"x\"}'" NULL
	get_messages 1
	msgs | jq -e '.body == "t" and (.properties | has("delivery_mode") | not)'
	# and ev_extra3 can still ask for it
	insert_event "'k'" "'u'" "'$EX'" NULL "'{\"delivery_mode\":2}'" NULL
	get_messages 1
	msgs | jq -e '.body == "u" and .properties.delivery_mode == 2'
}

@test "a few thousand events of one transaction arrive once each, in ev_id order" {
	sql "SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 3000) g" >/dev/null
	relay_start
	get_messages 3000 60
	run bash -c "jq -r .body '$BATS_TEST_TMPDIR/msgs.jsonl' |
		awk 'NR != \$1 { print \"out of order at \" NR \": \" \$1; bad = 1 }
		     END { print NR; exit bad }'"
	assert_success
	assert_output "3000"
	# event_id header follows ev_id order as well
	run bash -c "jq .properties.headers.event_id '$BATS_TEST_TMPDIR/msgs.jsonl' |
		sort -c -n && echo sorted"
	assert_output "sorted"
	assert_equal "$(mq count "$MQ")" 0
}

@test "a nacked publish (reject-publish policy) is requeued, then delivered" {
	"$MIKKOO_SRV_DIR/bin/rabbitmqctl" set_policy "lim_$Q" "^$MQ\$" \
		'{"max-length":3,"overflow":"reject-publish"}' \
		--apply-to queues >/dev/null
	# max_failures 0: a nack that counted would be a dead letter at once
	write_config "$CONF" "max_failures: 0"
	relay_start
	sql "SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 10) g" >/dev/null
	# drain in rounds of at most 3 until the ten bodies are all here
	: >"$BATS_TEST_TMPDIR/all.jsonl"
	deadline=$((SECONDS + 60))
	while [ "$(jq -r .body "$BATS_TEST_TMPDIR/all.jsonl" | sort -u | wc -l)" -lt 10 ]; do
		[ "$SECONDS" -lt "$deadline" ] || fail "not all nacked events came back"
		mq get "$MQ" --timeout 1 >>"$BATS_TEST_TMPDIR/all.jsonl" || true
	done
	run grep -c "nacked by RabbitMQ: requeued, again in 1s (not counted toward max_failures)" \
		"$BATS_TEST_TMPDIR/relay.err"
	assert_success
	assert_equal "$(dead_count)" 0
	"$MIKKOO_SRV_DIR/bin/rabbitmqctl" clear_policy "lim_$Q" >/dev/null
}

@test "unroutable and missing-exchange events are retried, then dead-lettered; the rest flows" {
	relay_start
	sql "BEGIN;
	SELECT pgq.insert_event('$Q', 'k', 'good-1', '$EX', NULL, NULL, NULL);
	SELECT pgq.insert_event('$Q', 'k', 'no-route', '$EX-direct', NULL, NULL, NULL);
	SELECT pgq.insert_event('$Q', 'k', 'good-2', '$EX', NULL, NULL, NULL);
	SELECT pgq.insert_event('$Q', 'k', 'no-exchange', 'nope_$Q', NULL, NULL, NULL);
	SELECT pgq.insert_event('$Q', 'k', 'good-3', '$EX', NULL, NULL, NULL);
	COMMIT;" >/dev/null
	mq declare-exchange "$EX-direct" --type direct
	get_messages 3
	assert_equal "$(jq -r .body "$BATS_TEST_TMPDIR/msgs.jsonl" | paste -sd,)" \
		"good-1,good-2,good-3"
	wait_for 60 dead_count_is 2
	run dead_letters
	assert_line --regexp "^[0-9]+\|2\|returned by RabbitMQ: 312 NO_ROUTE \(attempt 3, max_failures 2\)$"
	assert_line --regexp "^[0-9]+\|2\|exchange 'nope_$Q' cannot be published to: 404 NOT_FOUND - no exchange 'nope_$Q' in vhost '/' \(attempt 3, max_failures 2\)$"
	run grep -c "retry [12] of 2 in 1s" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 4
	run grep -c "moved to mikkoo.dead_letter" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 2
	# the dead letters keep the event as it was
	run sql "SELECT ev_type, ev_data, ev_extra1 FROM mikkoo.dead_letter
		 WHERE queue = '$Q' ORDER BY ev_id"
	assert_output "k|no-route|$EX-direct
k|no-exchange|nope_$Q"
	assert_equal "$(mq count "$MQ")" 0
}

@test "bad data is dead-lettered at once with a precise reason" {
	relay_start
	sql "BEGIN;
	SELECT pgq.insert_event('$Q', 'k', 'e3-bad', '$EX', NULL, '{\"type\":', NULL);
	SELECT pgq.insert_event('$Q', 'k', 'e3-array', '$EX', NULL, '[1]', NULL);
	SELECT pgq.insert_event('$Q', 'k', 'e4-bad', '$EX', NULL, NULL, 'nope');
	SELECT pgq.insert_event('$Q', 'k', 'e4-string', '$EX', NULL, NULL, '\"s\"');
	SELECT pgq.insert_event('$Q', 'k', 'no-exchange', NULL, NULL, NULL, NULL);
	SELECT pgq.insert_event('$Q', 'k', 'bad-mode', '$EX', NULL, '{\"delivery_mode\":\"2\"}', NULL);
	SELECT pgq.insert_event('$Q', 'k', 'fine', '$EX', NULL, NULL, NULL);
	COMMIT;" >/dev/null
	get_messages 1
	msgs | jq -e '.body == "fine"'
	wait_for 20 dead_count_is 6
	run sql "SELECT ev_data || ' ' || coalesce(ev_retry::text, 'first') || ': ' || reason
		 FROM mikkoo.dead_letter WHERE queue = '$Q' ORDER BY ev_id"
	assert_line --index 0 --regexp "^e3-bad first: ev_extra3 is not valid JSON: .*line 1"
	assert_line --index 1 --regexp "^e3-array first: ev_extra3 .*object"
	assert_line --index 2 --regexp "^e4-bad first: ev_extra4 is not valid JSON: "
	assert_line --index 3 --regexp "^e4-string first: ev_extra4 .*object"
	assert_line --index 4 "no-exchange first: ev_extra1 (exchange) is NULL"
	assert_line --index 5 --regexp "^bad-mode first: ev_extra3 property 'delivery_mode' must be 1 or 2"
	# never retried: nothing waits in PgQ's retry queue
	assert_equal "$(sql "SELECT count(*) FROM pgq.retry_queue r JOIN pgq.queue q
		ON q.queue_id = r.ev_queue WHERE q.queue_name = '$Q'")" 0
	run grep -c "moved to mikkoo.dead_letter" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 6
}

@test "a restart resumes where it stopped: nothing lost, nothing twice" {
	relay_start
	sql "SELECT count(pgq.insert_event('$Q', 'k', 'a' || g, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 100) g" >/dev/null
	get_messages 100
	cp "$BATS_TEST_TMPDIR/msgs.jsonl" "$BATS_TEST_TMPDIR/first.jsonl"
	relay_stop
	assert_equal "$daemon_status" 0
	# events inserted while the relay is down are not skipped
	sql "SELECT count(pgq.insert_event('$Q', 'k', 'b' || g, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 100) g" >/dev/null
	relay_start
	get_messages 100
	cat "$BATS_TEST_TMPDIR/first.jsonl" "$BATS_TEST_TMPDIR/msgs.jsonl" |
		jq -r .body | sort >"$BATS_TEST_TMPDIR/got"
	assert_equal "$(sort -u "$BATS_TEST_TMPDIR/got" | wc -l)" 200
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/got")" 200
	assert_equal "$(mq count "$MQ")" 0
	# the consumer stays registered (unregister defaults to false)
	assert_equal "$(sql "SELECT count(*) FROM pgq.get_consumer_info('$Q', '$CONSUMER')")" 1
}

# No open batch and nothing pending: every event of $Q was relayed.
consumer_done() {
	[ "$(sql "SELECT count(*) FROM pgq.get_consumer_info('$Q', '$CONSUMER')
		WHERE current_batch IS NULL AND pending_events = 0")" = 1 ]
}

@test "SIGTERM in the middle of a big batch exits 0 and loses nothing" {
	sql "SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 20000) g" >/dev/null
	relay_start
	wait_for 30 mq_count_ge 201
	relay_stop TERM
	assert_equal "$daemon_status" 0
	run grep -E "stopping on SIGTERM" "$BATS_TEST_TMPDIR/relay.err"
	assert_success
	relay_start
	# done when PgQ says so: the queue's count alone reaches 20000 early
	# when the batch given up above left duplicates (a loaded machine
	# does not finish it within the 5 s drain)
	wait_for 60 consumer_done
	relay_stop
	mq get "$MQ" --timeout 5 | jq -r .body | sort -n >"$BATS_TEST_TMPDIR/got"
	# every event at least once; duplicates only from the open batch
	assert_equal "$(sort -un "$BATS_TEST_TMPDIR/got" | wc -l)" 20000
	assert_equal "$(head -1 "$BATS_TEST_TMPDIR/got")" 1
	assert_equal "$(tail -1 "$BATS_TEST_TMPDIR/got")" 20000
}

@test "two relays on one queue and consumer: the second waits for the lock" {
	relay_start
	daemon_start relay2 mikkoo-relay -c "$CONF"
	wait_for 10 grep -q "another mikkoo-relay is consuming queue '$Q' as 'mikkoo': waiting" \
		"$BATS_TEST_TMPDIR/relay2.err"
	sql "SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 50) g" >/dev/null
	get_messages 50
	relay_stop
	sql "SELECT count(pgq.insert_event('$Q', 'k', 'x' || g, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 50) g" >/dev/null
	wait_for 20 grep -q "lock acquired" "$BATS_TEST_TMPDIR/relay2.err"
	get_messages 50
	msgs | jq -e -s 'all(.body | startswith("x"))'
	assert_equal "$(mq count "$MQ")" 0
	daemon_stop relay2
	assert_equal "$daemon_status" 0
}

@test "--worker runs one queue in-process and SIGHUP reloads it" {
	relay_start --worker "$Q"
	insert_event "'k'" "'one'" "'$EX'" NULL NULL NULL
	get_messages 1
	write_config "$CONF" "persistent: false"
	kill -HUP "$(daemon_pid relay)"
	wait_for 10 grep -q "configuration reloaded: persistent applied" "$BATS_TEST_TMPDIR/relay.err"
	insert_event "'k'" "'two'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "two" and (.properties | has("delivery_mode") | not)'
	# a broken file keeps the running configuration
	echo "Application: [" >"$CONF"
	kill -HUP "$(daemon_pid relay)"
	wait_for 10 grep -q "reload failed: .*: keeping the running configuration" \
		"$BATS_TEST_TMPDIR/relay.err"
	insert_event "'k'" "'three'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "three"'
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "--daemon detaches with a locked pidfile and stops on SIGTERM" {
	pidfile="$BATS_TEST_TMPDIR/mikkoo.pid"
	printf 'Daemon:\n  pidfile: %s\n' "$pidfile" >>"$CONF"
	# stderr is kept by the daemon: send it to a file, as a user would
	mikkoo-relay --daemon -c "$CONF" 2>"$BATS_TEST_TMPDIR/daemon.err"
	pid=$(cat "$pidfile")
	echo "$pid" >"$BATS_TEST_TMPDIR/relay.pid"   # teardown kills it
	echo relay >>"$BATS_TEST_TMPDIR/daemons"
	touch "$BATS_TEST_TMPDIR/relay.err"
	kill -0 "$pid"
	insert_event "'k'" "'daemon'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "daemon"'
	# a second copy is refused while the first holds the lock
	run -75 mikkoo-relay --daemon -c "$CONF" 2>&1
	assert_output --partial "pidfile '$pidfile' is locked: mikkoo-relay is already running (pid $pid)"
	kill -TERM "$pid"
	wait_for 15 _gone "$pid"
	[ ! -e "$pidfile" ]
	grep -q "stopping on SIGTERM" "$BATS_TEST_TMPDIR/daemon.err"
}

@test "--daemon with a relative -c path reloads on SIGHUP after its chdir(\"/\")" {
	pidfile="$BATS_TEST_TMPDIR/mikkoo.pid"
	printf 'Daemon:\n  pidfile: %s\n' "$pidfile" >>"$CONF"
	cd "$BATS_TEST_TMPDIR"
	mikkoo-relay --daemon -c mikkoo.yml 2>"$BATS_TEST_TMPDIR/daemon.err"
	pid=$(cat "$pidfile")
	echo "$pid" >"$BATS_TEST_TMPDIR/relay.pid"   # teardown kills it
	echo relay >>"$BATS_TEST_TMPDIR/daemons"
	touch "$BATS_TEST_TMPDIR/relay.err"
	write_config "$CONF" "persistent: false"
	printf 'Daemon:\n  pidfile: %s\n' "$pidfile" >>"$CONF"
	kill -HUP "$pid"
	wait_for 10 grep -q "configuration reloaded" "$BATS_TEST_TMPDIR/daemon.err"
	run grep -c "reload failed" "$BATS_TEST_TMPDIR/daemon.err"
	assert_output 0
	insert_event "'k'" "'reloaded'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "reloaded" and (.properties | has("delivery_mode") | not)'
	kill -TERM "$pid"
	wait_for 15 _gone "$pid"
}

# holding NAME: the session named NAME runs its statement.  (A function,
# so that wait_for asks again each time.)
holding() {
	[ "$(sql "SELECT count(*) FROM pg_stat_activity
		  WHERE application_name = '$1' AND state = 'active'")" = 1 ]
}

@test "TERM stops the relay at once while it waits to take over ticking" {
	# a statement that looks like a running pgq.ticker() call: the
	# relay waits for it (up to 30 s) before it ticks the queue itself
	PGAPPNAME="hold_$Q" psql -qXAt -c "SELECT pg_sleep(60) -- pgq.ticker" \
		>/dev/null 2>&1 &
	wait_for 30 holding "hold_$Q"
	relay_start
	sleep 1
	start=$SECONDS
	relay_stop
	assert_equal "$daemon_status" 0
	[ $((SECONDS - start)) -le 10 ] || fail "took $((SECONDS - start)) s to stop"
	grep -q "stop requested while waiting to tick" "$BATS_TEST_TMPDIR/relay.err"
}

@test "workers do not outlive a killed supervisor" {
	relay_start
	parent=$(daemon_pid relay)
	child=$(pgrep -P "$parent")
	[ -n "$child" ]
	kill -KILL "$parent"
	wait_for 15 _gone "$child"
	# the worker drained on its way out
	grep -q "queue '$Q': stopping on SIGTERM" "$BATS_TEST_TMPDIR/relay.err"
}
