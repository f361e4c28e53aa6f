#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# systemd's Type=notify, without systemd: the relay speaks the
# NOTIFY_SOCKET datagram protocol itself, and test/tools/notifylisten.py
# stands where systemd would, recording each datagram and its sender's
# pid (systemd's NotifyAccess=main accepts the main process only).

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	setup_relay_queue
	# a consumer nobody registered: an event inserted once READY=1
	# came arrives only if the relay registered it before saying so
	CONSUMER="c_$Q"
	write_config "$CONF"
	N="$BATS_TEST_TMPDIR/notify.jsonl"
}

teardown() {
	common_teardown
	[ -f "$BATS_TEST_TMPDIR/listen.pid" ] &&
		kill "$(cat "$BATS_TEST_TMPDIR/listen.pid")" 2>/dev/null
	true
}

# listen ADDRESS: the stand-in for systemd, until the test ends.
listen() {
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/notifylisten.py" "$1" \
		>"$N" 2>"$BATS_TEST_TMPDIR/listen.err" &
	echo $! >"$BATS_TEST_TMPDIR/listen.pid"
	wait_for 10 grep -q listening "$N"
}

# notified_run ADDRESS ARGS...: the relay with NOTIFY_SOCKET and no
# readiness fd, in the background (pid in $RELAY_PID).
notified_run() {
	local where=$1
	shift
	NOTIFY_SOCKET=$where mikkoo-relay -c "$CONF" "$@" \
		>"$BATS_TEST_TMPDIR/relay.out" 2>"$BATS_TEST_TMPDIR/relay.err" &
	RELAY_PID=$!
	echo "$RELAY_PID" >"$BATS_TEST_TMPDIR/relay.pid"
	echo relay >>"$BATS_TEST_TMPDIR/daemons"
}

# count KEY VALUE: datagrams so far with KEY=VALUE.
count() {
	jq -s --arg k "$1" --arg v "$2" \
		'[.[] | select(.fields[$k] == $v)] | length' "$N"
}

count_ge() {
	[ "$(count "$1" "$2")" -ge "$3" ]
}

# The STATUS= texts so far, one a line.
statuses() {
	jq -r 'select(.fields.STATUS) | .fields.STATUS' "$N"
}

status_has() {
	statuses | grep -qF "$1"
}

# Every datagram came from pid $1 (nothing from a worker process).
all_from() {
	run jq -s --argjson p "$1" '[.[] | select(.fields) |
		select(.pid != $p)] | length' "$N"
	assert_output 0
	run jq -s '[.[] | select(.fields)] | length' "$N"
	[ "$output" -ge 3 ]
}

# The keys, one datagram a line, in the order they came.
sequence() {
	jq -r 'select(.fields) | .fields | keys | map(select(. != "STATUS"
		and . != "MONOTONIC_USEC")) | join(",")' "$N" | grep -v '^$'
}

stop_relay() {
	kill -TERM "$RELAY_PID"
	wait_for 20 _gone "$RELAY_PID"
	status=0
	wait "$RELAY_PID" || status=$?
	rm -f "$BATS_TEST_TMPDIR/relay.pid"
	assert_equal "$status" 0
	assert_no_sanitizer_report "$BATS_TEST_TMPDIR/relay.err"
}

@test "supervisor: READY=1 once relaying, STATUS names each worker, HUP is RELOADING=1 then READY=1, TERM is STOPPING=1, all from the main pid" {
	# a second worker whose PostgreSQL is down: ready comes anyway
	# (the first relays) and STATUS says who is not relaying
	cat >>"$CONF" <<EOF
    ${Q}_b:
      postgres_url: postgresql://mikkoo@127.0.0.1:1/mikkoo
      rabbitmq_url: $MIKKOO_AMQP_URL
EOF
	listen "$BATS_TEST_TMPDIR/notify.sock"
	notified_run "$BATS_TEST_TMPDIR/notify.sock"
	wait_for 30 count_ge READY 1 1
	insert_event "'k'" "'at-ready'" "'$EX'" "NULL" "NULL" "NULL"
	get_messages 1
	run msgs
	assert_output --partial '"body":"at-ready"'

	# the worker's state, and why, as soon as it reported
	wait_for 15 status_has "1 of 2 workers relaying; '${Q}_b' starting: cannot connect to PostgreSQL 'postgresql://mikkoo@127.0.0.1:1/mikkoo'"

	kill -HUP "$RELAY_PID"
	wait_for 15 count_ge READY 1 2
	run jq -r 'select(.fields.RELOADING) | .fields.MONOTONIC_USEC' "$N"
	assert_output --regexp '^[0-9]+$'
	grep -q "configuration reloaded" "$BATS_TEST_TMPDIR/relay.err"

	stop_relay
	run sequence
	assert_output "READY
RELOADING
READY
STOPPING"
	run statuses
	assert_output --partial "stopping: finishing open batches"
	all_from "$RELAY_PID"
}

@test "--worker in an abstract socket's namespace: READY=1, its state as STATUS, RELOADING=1, STOPPING=1" {
	local where="@mikkoo-test-$$-$RANDOM"

	listen "$where"
	notified_run "$where" -w "$Q"
	wait_for 30 count_ge READY 1 1
	insert_event "'k'" "'at-ready'" "'$EX'" "NULL" "NULL" "NULL"
	get_messages 1
	run statuses
	assert_output --partial "relaying"

	kill -HUP "$RELAY_PID"
	wait_for 15 count_ge READY 1 2
	stop_relay
	run sequence
	assert_output "READY
RELOADING
READY
STOPPING"
	all_from "$RELAY_PID"
}

@test "a NOTIFY_SOCKET that is not an address is a warning; the relay runs" {
	NOTIFY_SOCKET=relative/notify.sock relay_start
	run relay_log
	assert_output --partial "NOTIFY_SOCKET 'relative/notify.sock' is not an absolute path"
	relay_stop
	assert_equal "$daemon_status" 0
}
