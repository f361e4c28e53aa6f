#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# Nothing is lost through faults.  Each test runs the relay (supervised)
# while test/tools/oracle.py produces numbered, audited events from four
# producers (with rolled-back transactions and one long-open one), hits
# it with a fault while events flow, lets it catch up, and then checks
# every committed event: lost = 0, unexpected = 0, first deliveries in
# order per producer; duplicates only where a fault happened.

load helpers/common
load helpers/relay
load helpers/oracle

setup_file() {
	install_schema
}

setup() {
	setup_oracle_queue
}

teardown() {
	oracle_teardown
	# a test that failed half way must not leave a server broken
	if ! amqp_answers_now; then
		"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-start || true
	fi
	"$RABBITMQCTL" -q set_vm_memory_high_watermark 0.4 >/dev/null 2>&1 || true
	[ -s "$MIKKOO_SRV_DIR/pgqd.pid" ] && kill -0 "$(cat "$MIKKOO_SRV_DIR/pgqd.pid")" ||
		"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" pgqd-start
	return 0
}

amqp_answers_now() {
	exec 9<>"/dev/tcp/127.0.0.1/$AMQP_PORT" 2>/dev/null || return 1
	exec 9<&- 9>&-
}

@test "control: no fault, no loss, no duplicate" {
	relay_start
	produce
	finish --no-dups
}

@test "fault: the worker SIGKILLed at random moments (5x)" {
	relay_start
	produce 300 10
	kill_worker() {
		local w
		w=$(pgrep -P "$(daemon_pid relay)") || return 0
		kill -KILL "$w"
		wait_for 20 pgrep -P "$(daemon_pid relay)"
	}
	at_random_moments 5 kill_worker
	finish
	run grep -c "killed by signal 9: restarting" "$BATS_TEST_TMPDIR/relay.err"
	[ "$output" -ge 1 ]
}

@test "fault: killed at each point of a batch (after publish, after confirm, before and after finish)" {
	grep -q MIKKOO_FAULT "$(command -v mikkoo-relay)" ||
		skip "this build has no fault points (make check-asan has)"
	for point in after_publish:50 after_confirm:3 before_finish:3 after_finish:3; do
		MIKKOO_FAULT=$point MIKKOO_FAULT_ONCE="$BATS_TEST_TMPDIR/fault.${point%%:*}" \
			relay_start
		produce 100 3
		wait_for 30 test -e "$BATS_TEST_TMPDIR/fault.${point%%:*}"
		finish
		# a batch confirmed but not finished is published again;
		# a finished one is not (the points count non-empty batches)
		case $point in
		after_confirm* | before_finish*) echo "$output" | jq -e '.dup > 0' ;;
		after_finish*) echo "$output" | jq -e '.dup == 0' ;;
		esac
		mq purge "$AQ"
		sql "DELETE FROM mikkoo.audit WHERE queue = '$Q'" >/dev/null
	done
}

@test "fault: RabbitMQ restarted (stop_app/start_app, 2x)" {
	relay_start
	produce 300 10
	at_random_moments 2 "$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-restart-app
	finish
	grep -q "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
}

@test "fault: RabbitMQ crashed (SIGKILL of the VM) and started again" {
	relay_start
	produce 300 10
	sleep 2
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-kill
	sleep 2
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-start
	finish
	grep -q "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
}

@test "fault: the RabbitMQ connection black-holed, then healed (heartbeats notice)" {
	proxy_start mq "$AMQP_PORT"
	MIKKOO_AMQP_URL="amqp://mikkoo:$AMQP_PASSWORD@127.0.0.1:$PROXY_PORT/%2f?heartbeat=2" \
		write_config "$CONF" "max_failures: 1000"
	relay_start
	produce 300 12
	sleep 2
	proxy mq USR1
	sleep 8
	proxy mq HUP
	finish
	grep -q "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
}

@test "fault: connections reset (RST) to RabbitMQ and to PostgreSQL, 2x each" {
	proxy_start mq "$AMQP_PORT"
	mq_url="amqp://mikkoo:$AMQP_PASSWORD@127.0.0.1:$PROXY_PORT/%2f"
	proxy_start pg "$PGPORT"
	MIKKOO_AMQP_URL=$mq_url \
		MIKKOO_PG_URL="postgresql://mikkoo:$PGPASSWORD@127.0.0.1:$PROXY_PORT/mikkoo" \
		write_config "$CONF" "max_failures: 1000"
	relay_start
	produce 300 12
	at_random_moments 2 proxy mq USR2
	at_random_moments 2 proxy pg USR2
	finish
	grep -q "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
	grep -q "reconnected to PostgreSQL" "$BATS_TEST_TMPDIR/relay.err"
}

@test "fault: PostgreSQL restarted (fast, then immediate)" {
	relay_start
	produce 300 12
	sleep 2
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" postgres-restart fast
	sleep 2
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" postgres-restart immediate
	finish
	grep -q "reconnected to PostgreSQL" "$BATS_TEST_TMPDIR/relay.err"
}

@test "fault: pgqd down for a while (no ticks: a stall, no loss)" {
	# pgqd must be the queue's ticker, or stopping it tests nothing
	# (the default, ticker: relay, ticks the queue itself)
	write_config "$CONF" "max_failures: 1000" "ticker: pgqd"
	defer pgqd_running_again
	relay_start
	produce 200 8
	sleep 1
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" pgqd-stop
	before=$(queue_ticks)
	sleep 4
	# stalled: nobody ticked the queue meanwhile
	assert_equal "$(queue_ticks)" "$before"
	"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" pgqd-start
	finish
}

# for teardown: pgqd runs again, whatever the test reached
pgqd_running_again() {
	kill -0 "$(cat "$MIKKOO_SRV_DIR/pgqd.pid")" 2>/dev/null ||
		"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" pgqd-start
}

queue_ticks() {
	sql "SELECT count(*) FROM pgq.tick t JOIN pgq.queue q
	     ON q.queue_id = t.tick_queue WHERE q.queue_name = '$Q'"
}

@test "fault: RabbitMQ memory alarm (connection.blocked), then cleared" {
	relay_start
	produce 300 10
	sleep 1
	"$RABBITMQCTL" -q set_vm_memory_high_watermark 0.0000001 >/dev/null
	wait_for 20 grep -q "RabbitMQ blocked publishing" "$BATS_TEST_TMPDIR/relay.err"
	sleep 2
	"$RABBITMQCTL" -q set_vm_memory_high_watermark 0.4 >/dev/null
	wait_for 20 grep -q "RabbitMQ unblocked publishing" "$BATS_TEST_TMPDIR/relay.err"
	finish
}

@test "fault: PgQ table rotation while the relay runs" {
	switched() {
		sql "SELECT queue_switch_time FROM pgq.queue WHERE queue_name = '$Q'"
	}
	before=$(switched)
	sql "SELECT pgq.set_queue_config('$Q', 'rotation_period', '1 second')" >/dev/null
	relay_start
	produce 300 10
	finish
	# pgqd's maintenance did rotate the event tables meanwhile
	[ "$(switched)" != "$before" ]
}
