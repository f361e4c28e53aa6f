#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts, kills or reconfigures the shared servers
# The supervisor's /metrics and /health (Application/metrics), and the
# relay ticking its own queue (ticker: relay) as far as a test can see
# it: the queue's flag, handed back at a stop.  Latency is measured by
# make bench, not here.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	setup_relay_queue
	PORT=$(free_port)
}

teardown() {
	common_teardown
	# a test that failed half way must not leave RabbitMQ down
	if ! amqp_up; then
		"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-start
	fi
}

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

amqp_up() {
	(exec 9<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null
}

# metrics_config [WORKER KEY: VALUE...]: $CONF with the endpoint on $PORT.
metrics_config() {
	write_config "$CONF" "$@"
	sed -i "s/^Application:/Application:\n  metrics:\n    listen: 127.0.0.1:$PORT\n    health_max_lag: 600/" "$CONF"
}

get() {
	curl -s -m 5 -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' \
		"http://127.0.0.1:$PORT$1"
}

body() {
	cat "$BATS_TEST_TMPDIR/body"
}

# metric NAME: its sample for $Q (the first, for labelled families).
metric() {
	get /metrics >/dev/null
	awk -v n="$1{queue=\"$Q\"" 'index($0, n) == 1 { print $2; exit }' \
		"$BATS_TEST_TMPDIR/body"
}

metric_is() {
	[ "$(metric "$1")" = "$2" ]
}

# The relay's session ran its tick statement after time $1.
looked_since() {
	[ "$(sql "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'mikkoo-relay'
		AND query LIKE 'WITH q AS%' AND query_start > '$1'")" -ge 1 ]
}

health_is() {
	[ "$(get /health)" = "$1" ]
}

@test "a real scrape passes promtool; counters rise by exactly what was published, retried and dead-lettered" {
	metrics_config
	relay_start
	wait_for 20 metric_is mikkoo_worker_up 1
	assert_equal "$(metric mikkoo_events_published_total)" 0
	sql "BEGIN;
	SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 25) g;
	SELECT pgq.insert_event('$Q', 'k', 'bad', '$EX', NULL, '{\"type\":', NULL);
	SELECT pgq.insert_event('$Q', 'k', 'no-exchange', 'nope_$Q', NULL, NULL, NULL);
	COMMIT;" >/dev/null
	get_messages 25
	wait_for 60 dead_count_is 2
	wait_for 10 metric_is mikkoo_events_dead_lettered_total 2
	assert_equal "$(metric mikkoo_events_published_total)" 25
	# max_failures 2: the refused event was retried twice, then dead
	assert_equal "$(metric mikkoo_events_retried_total)" 2
	assert_equal "$(metric mikkoo_worker_up)" 1
	assert_equal "$(metric mikkoo_delivery_latency_seconds_count)" 25
	assert_equal "$(metric 'mikkoo_reconnects_total')" 0
	[ "$(metric mikkoo_batches_total)" -ge 1 ]
	run get /metrics
	assert_output 200
	run promtool check metrics <"$BATS_TEST_TMPDIR/body"
	assert_success
	assert_output ""
	run curl -s -m 5 -D - -o /dev/null "http://127.0.0.1:$PORT/metrics"
	assert_line --partial "Content-Type: text/plain; version=0.0.4"
	for f in events_published_total events_retried_total \
		events_dead_lettered_total batches_total pending_events \
		consumer_lag_seconds worker_up reconnects_total \
		delivery_latency_seconds; do
		grep -q "^# TYPE mikkoo_$f " "$BATS_TEST_TMPDIR/body" ||
			fail "family mikkoo_$f is missing"
	done
	grep -q "^mikkoo_reconnects_total{queue=\"$Q\",server=\"rabbitmq\"} 0$" \
		"$BATS_TEST_TMPDIR/body"
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "/health: 200 while relaying, 503 naming the worker when RabbitMQ stops, 200 when it is back" {
	metrics_config
	relay_start
	wait_for 20 health_is 200
	run jq -c . "$BATS_TEST_TMPDIR/body"
	assert_output --regexp "^\{\"status\":\"ok\",\"workers\":\[\{\"queue\":\"$Q\",\"ok\":true,\"state\":\"relaying\""
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-kill
	wait_for 30 health_is 503
	run jq -r '.status, (.workers[] | "\(.queue) \(.ok) \(.state)"), .workers[0].why' \
		"$BATS_TEST_TMPDIR/body"
	assert_line --index 0 unavailable
	assert_line --index 1 "$Q false down"
	assert_line --index 2 --partial "RabbitMQ"
	assert_equal "$(metric mikkoo_worker_up)" 0
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-start
	wait_for 90 health_is 200
	wait_for 10 metric_is mikkoo_worker_up 1
	[ "$(metric mikkoo_reconnects_total)" = 0 ]   # postgresql's
	grep -q "^mikkoo_reconnects_total{queue=\"$Q\",server=\"rabbitmq\"} [1-9]" \
		"$BATS_TEST_TMPDIR/body"
	insert_event "'k'" "'after'" "'$EX'" NULL NULL NULL >/dev/null
	get_messages 1 30
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "pending and lag gauges have samples as soon as /health says ok" {
	metrics_config
	relay_start
	wait_for 20 health_is 200
	get /metrics >/dev/null
	grep -q "^mikkoo_pending_events{queue=\"$Q\"} [0-9]" "$BATS_TEST_TMPDIR/body"
	grep -q "^mikkoo_consumer_lag_seconds{queue=\"$Q\"} [0-9]" "$BATS_TEST_TMPDIR/body"
	relay_stop
}

@test "/health is 503 while a worker waits for the consumer lock" {
	metrics_config
	sql "SELECT pg_advisory_lock(hashtext('mikkoo'),
	     hashtext('$Q' || '/' || 'mikkoo')), pg_sleep(60)" >/dev/null &
	echo $! >"$BATS_TEST_TMPDIR/locker.pid"
	wait_for 10 sh -c "psql -qXAt -c \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted\" | grep -qv '^0$'"
	relay_start
	wait_for 20 health_is 503
	run jq -r '.workers[0].state, .workers[0].why' "$BATS_TEST_TMPDIR/body"
	assert_line --index 0 waiting
	assert_line --index 1 --partial "holds the consumer lock"
	kill "$(cat "$BATS_TEST_TMPDIR/locker.pid")"
	sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	     WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
	wait_for 30 health_is 200
	relay_stop
}

@test "other paths are 404, other methods 405; the endpoint listens on its address only" {
	metrics_config
	relay_start
	run get /nope
	assert_output 404
	run curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST -d x \
		"http://127.0.0.1:$PORT/metrics"
	assert_output 405
	run ss -Htln "sport = :$PORT"
	assert_line --regexp "127\.0\.0\.1:$PORT "
	refute_line --regexp "(\*|0\.0\.0\.0|\[::\]):$PORT "
	relay_stop
}

@test "bad listen values are configuration errors (78) that name them" {
	local v
	for v in "9321" "127.0.0.1" "127.0.0.1:0" "127.0.0.1:70000" \
		"1.2.3.999:80" "[::1:80" "example.com:80" ":9321"; do
		write_config "$CONF"
		sed -i "s/^Application:/Application:\n  metrics:\n    listen: \"$v\"/" "$CONF"
		run -78 --separate-stderr mikkoo-relay -n -c "$CONF"
		assert_output ""
		[[ "$stderr" == *"key 'Application/metrics/listen': '$v' is not an address to listen on: "* ]] ||
			fail "for '$v': $stderr"
	done
	write_config "$CONF"
	sed -i "s/^Application:/Application:\n  metrics:\n    health_max_lag: -1/" "$CONF"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output --partial "health_max_lag"
	# a well-formed address that is not this machine's: 78 at start
	metrics_config
	sed -i "s/listen: 127.0.0.1:$PORT/listen: 192.0.2.1:$PORT/" "$CONF"
	run -78 --separate-stderr mikkoo-relay -c "$CONF"
	assert_output ""
	[[ "$stderr" == *"metrics: cannot listen on '192.0.2.1:$PORT': not an address of this machine"* ]]
}

@test "a port in use fails at start with 69 and says so; no worker starts" {
	/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(60)' "$PORT" &
	defer kill $!
	wait_for 10 sh -c "ss -Htln 'sport = :$PORT' | grep -q ."
	metrics_config
	run -69 --separate-stderr mikkoo-relay -c "$CONF"
	assert_output ""
	[[ "$stderr" == *"metrics: cannot listen on '127.0.0.1:$PORT': the port is in use"* ]]
	[[ "$stderr" != *"starting 1 worker"* ]]
}

@test "a flood of slow and malformed HTTP clients: the relay keeps relaying, the endpoint answers after" {
	metrics_config
	relay_start
	wait_for 20 health_is 200
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/httpflood.py" 127.0.0.1 "$PORT" 12 \
		>"$BATS_TEST_TMPDIR/flood.out" 2>"$BATS_TEST_TMPDIR/flood.err" &
	local flood=$!
	wait_for 10 grep -q flooding "$BATS_TEST_TMPDIR/flood.err"
	sql "SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', NULL, NULL,
		NULL)) FROM generate_series(1, 200) g" >/dev/null
	get_messages 200 30
	assert_equal "$(jq -r .body "$BATS_TEST_TMPDIR/msgs.jsonl" | sort -n | uniq | wc -l)" 200
	wait "$flood"
	run cat "$BATS_TEST_TMPDIR/flood.out"
	assert_output --regexp "^opened [0-9]+$"
	# the slow ones time out (HTTPD_TIMEOUT 5 s): room again
	wait_for 15 health_is 200
	wait_for 10 metric_is mikkoo_events_published_total 200
	kill -0 "$(daemon_pid relay)"
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "ticker: relay sets the queue's external_ticker and hands it back to pgqd at a stop; ticker: pgqd leaves it alone" {
	write_config "$CONF"
	relay_start
	assert_equal "$(sql "SELECT queue_external_ticker FROM pgq.queue WHERE queue_name = '$Q'")" t
	run grep -c "ticking queue '$Q' itself" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 1
	insert_event "'k'" "'one'" "'$EX'" NULL NULL NULL >/dev/null
	get_messages 1
	relay_stop
	assert_equal "$daemon_status" 0
	assert_equal "$(sql "SELECT queue_external_ticker FROM pgq.queue WHERE queue_name = '$Q'")" f
	grep -q "queue '$Q' handed back to pgqd (external_ticker cleared)" \
		"$BATS_TEST_TMPDIR/relay.err"
	write_config "$CONF" "ticker: pgqd"
	relay_start
	insert_event "'k'" "'two'" "'$EX'" NULL NULL NULL >/dev/null
	get_messages 1
	assert_equal "$(sql "SELECT queue_external_ticker FROM pgq.queue WHERE queue_name = '$Q'")" f
	relay_stop
	write_config "$CONF" "ticker: sometimes"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output --partial "/ticker' is 'sometimes': give 'relay' or 'pgqd'"
}

ticker_of() {
	mikkoo-inspect -q "$Q" status 2>/dev/null | jq -r "$1"
}

@test "ticker: the relay records that it set the flag; a crashed relay's flag is taken back, inspect says nobody ticks meanwhile" {
	write_config "$CONF"
	relay_start --worker "$Q"
	sql "SELECT set_by FROM mikkoo.queue_ticker WHERE queue_name = '$Q'" |
		grep -qx "mikkoo-relay on .* (consumer mikkoo)"
	assert_equal "$(ticker_of .ticker)" relay
	[ "$(ticker_of .ticker_pid)" != null ]
	ticker_of .ticker_set_by | grep -q "^mikkoo-relay on .* (consumer mikkoo) since 20"
	# a crash: the flag and its row stay, nothing ticks the queue
	kill -KILL "$(daemon_pid relay)"
	wait_for 10 eval '[ "$(ticker_of .ticker)" = nobody ]'
	run --separate-stderr mikkoo-inspect -q "$Q" status
	assert_success
	[[ $stderr == *"queue '$Q': nothing ticks it (last tick "*" s ago): external_ticker is a leftover of mikkoo-relay on "*"which stopped without handing the queue back"* ]]
	# the next relay takes back its own leftover
	relay_start --worker "$Q"
	grep -q "queue '$Q': took back the ticking left by a relay that stopped without handing it back (mikkoo-relay on" \
		"$BATS_TEST_TMPDIR/relay.err"
	insert_event "'k'" "'after'" "'$EX'" NULL NULL NULL >/dev/null
	get_messages 1
	assert_equal "$(ticker_of .ticker)" relay
	relay_stop
	assert_equal "$(ticker_of .ticker)" pgqd
	assert_equal "$(sql "SELECT count(*) FROM mikkoo.queue_ticker WHERE queue_name = '$Q'")" 0
}

@test "ticker: a queue another external ticker drives (a Londiste cascade) is left to it" {
	# the flag set, not by a mikkoo-relay: no row
	sql "SELECT pgq.set_queue_config('$Q', 'external_ticker', 'true')" >/dev/null
	assert_equal "$(ticker_of .ticker)" external
	write_config "$CONF"
	relay_start
	grep -q "queue '$Q' has external_ticker set by another ticker than mikkoo-relay (a Londiste cascade?): this relay uses its ticks and leaves the flag alone" \
		"$BATS_TEST_TMPDIR/relay.err"
	ticks() {
		sql "SELECT count(*) FROM pgq.tick t JOIN pgq.queue q
			ON q.queue_id = t.tick_queue WHERE queue_name = '$Q'"
	}
	before=$(ticks)
	insert_event "'k'" "'foreign'" "'$EX'" NULL NULL NULL >/dev/null
	sleep 2
	# the relay did not tick it
	assert_equal "$(ticks)" "$before"
	assert_equal "$(mq count "$MQ")" 0
	# the other ticker ticks (as a Londiste branch does), the relay
	# relays from its ticks
	sql "SELECT pgq.ticker(queue_name, nextval(queue_tick_seq::regclass),
		now(), pgq.seq_getval(queue_event_seq)) FROM pgq.queue
		WHERE queue_name = '$Q'" >/dev/null
	get_messages 1
	assert_equal "$(jq -r .body "$BATS_TEST_TMPDIR/msgs.jsonl")" foreign
	relay_stop
	# not ours to clear
	assert_equal "$(sql "SELECT queue_external_ticker FROM pgq.queue WHERE queue_name = '$Q'")" t
	assert_equal "$(ticker_of .ticker)" external
	sql "SELECT pgq.set_queue_config('$Q', 'external_ticker', 'false')" >/dev/null
}

@test "ticker: relay after a crash: the flag stays, the next relay ticks again; a rolled-back event never ticks" {
	write_config "$CONF"
	relay_start
	# the worker dies (its supervisor would pass on a TERM)
	kill -KILL "$(pgrep -P "$(daemon_pid relay)")"
	assert_equal "$(sql "SELECT queue_external_ticker FROM pgq.queue WHERE queue_name = '$Q'")" t
	# restarted by the supervisor, it takes the lock and ticks again
	wait_for 30 sh -c "[ \$(grep -c \"ticking queue '$Q' itself\" '$BATS_TEST_TMPDIR/relay.err') -ge 2 ]"
	assert_equal "$(sql "SELECT queue_external_ticker FROM pgq.queue WHERE queue_name = '$Q'")" t
	local ticks
	ticks=$(sql "SELECT count(*) FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue WHERE queue_name = '$Q'")
	sql "BEGIN; SELECT pgq.insert_event('$Q', 'k', 'gone', '$EX', NULL, NULL, NULL); ROLLBACK" >/dev/null
	# the relay has looked at the queue since: that look saw nothing
	wait_for 10 looked_since "$(sql "SELECT clock_timestamp()")"
	assert_equal "$(sql "SELECT count(*) FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue WHERE queue_name = '$Q'")" "$ticks"
	insert_event "'k'" "'kept'" "'$EX'" NULL NULL NULL >/dev/null
	get_messages 1
	assert_equal "$(jq -r .body "$BATS_TEST_TMPDIR/msgs.jsonl")" kept
	relay_stop
}
