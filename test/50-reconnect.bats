#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts, kills or reconfigures the shared servers
# Lost connections are retried with backoff and lose nothing; statsd.
# (The full fault-injection suite with its oracle is test/6x-*.)

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

# all_bodies N: the queue holds every body 1..N at least once.
all_bodies() {
	mq get "$MQ" --timeout 0.2 >>"$BATS_TEST_TMPDIR/all.jsonl" || true
	[ "$(jq -r .body "$BATS_TEST_TMPDIR/all.jsonl" | sort -u | wc -l)" -ge "$1" ]
}

insert_n() {
	sql "SELECT count(pgq.insert_event('$Q', 'k', g::text, '$EX', NULL,
		NULL, NULL)) FROM generate_series($1, $2) g" >/dev/null
}

@test "RabbitMQ closing the connection: reconnect, nothing lost" {
	relay_start
	insert_n 1 100
	get_messages 100
	cp "$BATS_TEST_TMPDIR/msgs.jsonl" "$BATS_TEST_TMPDIR/all.jsonl"
	"$RABBITMQCTL" close_all_connections "test: forced close" >/dev/null
	wait_for 20 grep -q "CONNECTION_FORCED - test: forced close" \
		"$BATS_TEST_TMPDIR/relay.err"
	insert_n 101 200
	wait_for 60 all_bodies 200
	run grep -E "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
	assert_success
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "PostgreSQL ending the relay's session: reconnect, nothing lost" {
	relay_start
	insert_n 1 100
	get_messages 100
	cp "$BATS_TEST_TMPDIR/msgs.jsonl" "$BATS_TEST_TMPDIR/all.jsonl"
	sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	     WHERE application_name = 'mikkoo-relay'" >/dev/null
	insert_n 101 200
	wait_for 60 all_bodies 200
	wait_for 10 grep -q "reconnected to PostgreSQL" "$BATS_TEST_TMPDIR/relay.err"
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "statsd counters arrive over UDP with the original names" {
	port=$(( 20000 + RANDOM % 40000 ))
	/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "a") as f:
    while True:
        d = s.recv(65535).decode()
        f.write(d + "\n"); f.flush()
' "$port" "$BATS_TEST_TMPDIR/statsd.log" &
	echo $! >"$BATS_TEST_TMPDIR/statsd.pid"
	cat >"$CONF" <<YAML
Application:
  poll_interval: 1
  statsd:
    enabled: true
    host: 127.0.0.1
    port: $port
    include_hostname: false
  workers:
    $Q:
      postgres_url: $MIKKOO_PG_URL
      rabbitmq_url: $MIKKOO_AMQP_URL
      wait_duration: 0.1
YAML
	relay_start
	insert_n 1 10
	get_messages 10
	wait_for 10 grep -q "^mikkoo\.$Q\.processed:10|c$" "$BATS_TEST_TMPDIR/statsd.log"
	wait_for 10 grep -q "^mikkoo\.$Q\.pending_events:[0-9]*|g$" "$BATS_TEST_TMPDIR/statsd.log"
	grep -q "^mikkoo\.$Q\.batches:[0-9]*|c$" "$BATS_TEST_TMPDIR/statsd.log"
	relay_stop
	kill "$(cat "$BATS_TEST_TMPDIR/statsd.pid")"
}
