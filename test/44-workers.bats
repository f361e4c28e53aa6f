#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts, kills or reconfigures the shared servers
# Several workers under one supervisor: a server down at boot stops only
# its worker, registration is race-free, SIGHUP applies live keys without
# a restart, and each worker sees only its own notices.

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
	[ -f "$BATS_TEST_TMPDIR/proxy.pid" ] &&
		kill "$(cat "$BATS_TEST_TMPDIR/proxy.pid")" 2>/dev/null
	true
}

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# worker_block NAME [URL]: one more worker's lines for $CONF
worker_block() {
	printf '    %s:\n      postgres_url: %s\n      rabbitmq_url: %s\n' \
		"$1" "$MIKKOO_PG_URL" "${2:-$MIKKOO_AMQP_URL}"
	printf '      consumer_name: %s\n      wait_duration: 0.1\n' "$CONSUMER"
	printf '      retry_delay: 1\n'
}

@test "a bad --ready-fd is a usage error, not silence" {
	run -64 --separate-stderr mikkoo-relay -c "$CONF" --ready-fd 97
	[[ "$stderr" == *"mikkoo-relay: error: --ready-fd needs an open file descriptor, not '97'"* ]] ||
		fail "stderr: $stderr"
	run -64 --separate-stderr mikkoo-relay -c "$CONF" --notify-fd -1
}

@test "RabbitMQ down at boot for one of two workers: the other relays, both once it is up" {
	Q2="${Q}_b"
	pgq_create_queue "$Q2"
	sql "SELECT pgq.register_consumer('$Q2', '$CONSUMER')" >/dev/null
	port=$(free_port)
	worker_block "$Q2" "amqp://mikkoo:$AMQP_PASSWORD@127.0.0.1:$port/%2f" >>"$CONF"
	relay_start
	grep -q "ready: 1 of 2 workers relaying; '$Q2' waiting for its servers, retrying" \
		"$BATS_TEST_TMPDIR/relay.err"
	grep -q "queue '$Q2': cannot connect to RabbitMQ 'amqp://mikkoo:\*\*\*@127.0.0.1:$port/%2f'" \
		"$BATS_TEST_TMPDIR/relay.err"
	insert_event "'k'" "'first'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "first"'
	sql "SELECT pgq.insert_event('$Q2', 'k', 'second', '$EX', NULL, NULL, NULL)" >/dev/null
	# RabbitMQ "comes up" on the second worker's port
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/faultproxy.py" "$port" "$AMQP_PORT" \
		>"$BATS_TEST_TMPDIR/proxy.out" 2>&1 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/proxy.pid"
	get_messages 1 40
	msgs | jq -e '.body == "second"'
	insert_event "'k'" "'third'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "third"'
	relay_stop
	assert_equal "$daemon_status" 0
	refute grep -q "$AMQP_PASSWORD" "$BATS_TEST_TMPDIR/relay.err"
}

@test "every worker down at boot: the relay exits 69 with each reason" {
	Q2="${Q}_b"
	port=$(free_port)
	worker_block "$Q2" "amqp://u:p@127.0.0.1:$port/%2f" >>"$CONF"
	sed -i "0,/rabbitmq_url: .*/s||rabbitmq_url: amqp://u:p@127.0.0.1:$port/%2f|" "$CONF"
	run -69 --separate-stderr mikkoo-relay -c "$CONF"
	[[ "$stderr" == *"queue '$Q': cannot connect to RabbitMQ"* ]] || fail "$stderr"
	[[ "$stderr" == *"queue '$Q2': cannot connect to RabbitMQ"* ]] || fail "$stderr"
	[[ "$stderr" == *"no worker could reach its servers: stopping"* ]] || fail "$stderr"
}

@test "eight new queues sharing one consumer_name start at once: registration is race-free" {
	: >"$CONF.new"
	printf 'Application:\n  workers:\n' >"$CONF"
	for i in 1 2 3 4 5 6 7 8; do
		worker_block "${Q}_r$i" >>"$CONF"
	done
	CONSUMER_NAME="c_$Q"
	sed -i "s/consumer_name: .*/consumer_name: $CONSUMER_NAME/" "$CONF"
	relay_start
	refute grep -q "duplicate key" "$BATS_TEST_TMPDIR/relay.err"
	grep -q "ready: 8 workers running" "$BATS_TEST_TMPDIR/relay.err"
	assert_equal "$(sql "SELECT count(*) FROM pgq.get_consumer_info()
		WHERE consumer_name = '$CONSUMER_NAME'")" 8
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "SIGHUP: live keys reach a supervised worker without a restart; connection keys restart it" {
	relay_start
	child=$(pgrep -P "$(daemon_pid relay)")
	write_config "$CONF" "persistent: false"
	kill -HUP "$(daemon_pid relay)"
	wait_for 10 grep -q "configuration reloaded: 0 workers restarted, 1 told to apply changes" \
		"$BATS_TEST_TMPDIR/relay.err"
	wait_for 10 grep -q "queue '$Q': configuration reloaded: persistent applied" \
		"$BATS_TEST_TMPDIR/relay.err"
	assert_equal "$(pgrep -P "$(daemon_pid relay)")" "$child"
	insert_event "'k'" "'transient'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "transient" and (.properties | has("delivery_mode") | not)'
	write_config "$CONF" "persistent: false" "rabbitmq: {host: 127.0.0.1, port: $AMQP_PORT, username: mikkoo, password: $AMQP_PASSWORD}"
	sed -i '/rabbitmq_url:/d' "$CONF"
	kill -HUP "$(daemon_pid relay)"
	wait_for 10 grep -q "worker '$Q': rabbitmq_url changed: restarting" \
		"$BATS_TEST_TMPDIR/relay.err"
	wait_for 10 sh -c "[ \"\$(pgrep -P $(daemon_pid relay))\" != '$child' ] && [ -n \"\$(pgrep -P $(daemon_pid relay))\" ]"
	insert_event "'k'" "'after'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "after"'
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "a worker shows its own notices, not those of a queue whose name starts like its own" {
	Q2="${Q}_v2"
	pgq_create_queue "$Q2"
	worker_block "$Q2" >>"$CONF"
	echo "      confirm: false" >>"$CONF"
	relay_start --worker "$Q"
	relay_stop
	refute grep -q "worker '$Q2': 'confirm: false'" "$BATS_TEST_TMPDIR/relay.err"
	daemon_start relay2 mikkoo-relay -c "$CONF" --worker "$Q2"
	daemon_stop relay2
	grep -q "worker '$Q2': 'confirm: false' is ignored" "$BATS_TEST_TMPDIR/relay2.err"
}

@test "a pgq_reader role: the relay starts on an existing queue; ticker: relay falls back to pgqd's ticks" {
	role="relay_$$"
	defer sql "DROP OWNED BY $role; DROP ROLE $role"
	# pgq_reader consumes; pgq.set_queue_config takes pgq_admin
	sql "DROP ROLE IF EXISTS $role; CREATE ROLE $role LOGIN PASSWORD 'r-S3cret'
	     IN ROLE pgq_reader; GRANT USAGE ON SCHEMA mikkoo TO $role;
	     GRANT INSERT ON mikkoo.dead_letter TO $role;
	     GRANT USAGE ON SEQUENCE mikkoo.dead_letter_id_seq TO $role" >/dev/null
	sed -i "s|postgres_url: .*|postgres_url: postgresql://$role:r-S3cret@127.0.0.1:$PGPORT/$PGDATABASE|" "$CONF"
	relay_start --worker "$Q"
	wait_for 10 grep -q "queue '$Q' cannot be ticked by this relay (.*permission denied for function set_queue_config.*): pgqd ticks it" \
		"$BATS_TEST_TMPDIR/relay.err"
	assert_equal "$(sql "SELECT queue_external_ticker FROM pgq.queue WHERE queue_name = '$Q'")" f
	insert_event "'k'" "'ticked by pgqd'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "ticked by pgqd"'
	relay_stop
	assert_equal "$daemon_status" 0
}
