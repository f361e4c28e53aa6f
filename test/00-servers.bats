#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: checks the servers before anything else
# The harness itself: the servers test/run started answer as expected.

load helpers/common

mq() {
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/mq.py" "$@"
}

@test "PostgreSQL answers over TCP with a password and has pgq" {
	run sql "SELECT extversion FROM pg_extension WHERE extname = 'pgq'"
	assert_success
	assert_output "3.5"
	PGPASSWORD=wrong run psql -qXAt -c "SELECT 1"
	assert_failure
	assert_output --partial "password authentication failed"
}

@test "pgqd ticks a new queue: inserted events show up in a batch" {
	q=$(mk_name)
	pgq_create_queue "$q"
	sql "SELECT pgq.register_consumer('$q', 'c')" >/dev/null
	sql "SELECT pgq.insert_event('$q', 't', 'd1')" >/dev/null
	batch_with_event() {
		local b
		b=$(sql "SELECT pgq.next_batch('$q', 'c')")
		[ -n "$b" ] || return 1
		if [ "$(sql "SELECT count(*) FROM pgq.get_batch_events($b)")" = 1 ]; then
			return 0
		fi
		sql "SELECT pgq.finish_batch($b)" >/dev/null
		return 1
	}
	wait_for 10 batch_with_event
}

@test "RabbitMQ round trip through the pika peer" {
	ex=$(mk_name)
	mq declare-exchange "$ex"
	mq declare-queue "q_$ex" --bind "$ex:a.#"
	mq publish "$ex" a.b hello --properties '{"headers":{"n":1}}'
	run mq get "q_$ex" --count 1
	assert_success
	echo "$output" | jq -e --arg ex "$ex" '.exchange == $ex and
		.routing_key == "a.b" and .body == "hello" and
		.properties.headers.n == 1 and .header_types.n == "I"'
	run -1 mq get "q_$ex" --count 1 --timeout 0.2
	mq delete-queue "q_$ex"
	mq delete-exchange "$ex"
}

@test "rabbitmqctl reaches the private node" {
	run "$RABBITMQCTL" set_policy "p_$$" '^nothing$' '{"max-length":1}' \
		--apply-to queues
	assert_success
	run "$RABBITMQCTL" -q list_policies
	assert_output --partial "p_$$"
	"$RABBITMQCTL" clear_policy "p_$$"
}

@test "daemon_start waits for readiness on fd 3; daemon_stop reports the status" {
	cat >"$BATS_TEST_TMPDIR/d.sh" <<'SH'
#!/bin/sh
trap 'exit 7' TERM
[ "$1" = --ready-fd ] && echo >&3 && exec 3>&-
while :; do sleep 0.1; done
SH
	chmod +x "$BATS_TEST_TMPDIR/d.sh"
	daemon_start d "$BATS_TEST_TMPDIR/d.sh"
	daemon_stop d
	assert_equal "$daemon_status" 7
}

@test "a start/stop cycle leaves no process behind" {
	dir=$(mktemp -d /tmp/mikkoo-cycle.XXXXXX)
	run "$MIKKOO_TOP/test/servers/start" "$dir"
	assert_success
	pids=$(cat "$dir"/*.pid)
	run "$MIKKOO_TOP/test/servers/stop" "$dir"
	assert_success
	for p in $pids; do
		# gone, or a zombie about to be reaped
		if kill -0 "$p" 2>/dev/null; then
			[ "$(ps -o stat= -p "$p")" = Z ] ||
				fail "process $p ($(ps -o cmd= -p "$p")) survived stop"
		fi
	done
	run pgrep -f "$dir"
	assert_failure
	[ ! -e "$dir" ]
}
