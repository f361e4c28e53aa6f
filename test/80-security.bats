#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# TLS on both sides, secrets that never show, limits and hostile input.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	setup_relay_queue
	TLS=$MIKKOO_TLS_DIR
}

teardown() {
	common_teardown
}

# tls_config AMQP_URL PG_URL: a one-worker config.
tls_config() {
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: $2
      rabbitmq_url: $1
      wait_duration: 0.1
YAML
}

@test "TLS: amqps with a CA file, peer and name verified; PostgreSQL verify-full" {
	tls_config "amqps://mikkoo:$AMQP_PASSWORD@localhost:$AMQPS_PORT/%2f?cacertfile=$TLS/ca.crt" \
		"postgresql://mikkoo:$PGPASSWORD@localhost:$PGPORT/mikkoo?sslmode=verify-full&sslrootcert=$TLS/ca.crt"
	relay_start
	insert_event "'k'" "'over TLS'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "over TLS"'
	# the relay's sessions really are encrypted
	assert_equal "$(sql "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN
		pg_stat_activity a USING (pid) WHERE a.application_name =
		'mikkoo-relay'")" t
	# (the relay is the only client of the TLS port)
	run "$RABBITMQCTL" -q list_connections port ssl ssl_protocol
	assert_output --regexp "$AMQPS_PORT"$'\t'"true"$'\t'"tlsv1\.[23]"
}

@test "TLS: a wrong CA or a wrong name is refused and nothing is read or published" {
	insert_event "'k'" "'must stay'" "'$EX'" NULL NULL NULL
	tick0=$(sql "SELECT last_tick FROM pgq.get_consumer_info('$Q', 'mikkoo')")
	tls_config "amqps://mikkoo:$AMQP_PASSWORD@localhost:$AMQPS_PORT/%2f?cacertfile=$TLS/other-ca.crt" \
		"$MIKKOO_PG_URL"
	run -77 mikkoo-relay -c "$CONF"
	assert_output --partial "cannot connect to RabbitMQ 'amqps://mikkoo:***@localhost:$AMQPS_PORT/%2f?cacertfile=$TLS/other-ca.crt': "
	# the certificate names localhost, not 127.0.0.1
	tls_config "amqps://mikkoo:$AMQP_PASSWORD@127.0.0.1:$AMQPS_PORT/%2f?cacertfile=$TLS/ca.crt" \
		"$MIKKOO_PG_URL"
	run -77 mikkoo-relay -c "$CONF"
	tls_config "$MIKKOO_AMQP_URL" \
		"postgresql://mikkoo:$PGPASSWORD@localhost:$PGPORT/mikkoo?sslmode=verify-full&sslrootcert=$TLS/other-ca.crt"
	run -77 mikkoo-relay -c "$CONF"
	assert_output --partial "certificate verify failed"
	tls_config "$MIKKOO_AMQP_URL" \
		"postgresql://mikkoo:$PGPASSWORD@127.0.0.1:$PGPORT/mikkoo?sslmode=verify-full&sslrootcert=$TLS/ca.crt"
	run -77 mikkoo-relay -c "$CONF"
	assert_output --partial "does not match host name"
	assert_equal "$(mq count "$MQ")" 0
	# no batch was taken, finished or dead-lettered: the event waits
	assert_equal "$(sql "SELECT last_tick = $tick0 AND current_batch IS NULL
		FROM pgq.get_consumer_info('$Q', 'mikkoo')")" t
	assert_equal "$(sql "SELECT count(*) FROM mikkoo.dead_letter WHERE queue = '$Q'")" 0
}

@test "secrets: a canary password never reaches logs, errors, argv or dead letters" {
	canary="S3cr3t-CANARY-$$"
	defer "$RABBITMQCTL" -q delete_user "canary$$"
	"$RABBITMQCTL" -q add_user "canary$$" "$canary" >/dev/null
	"$RABBITMQCTL" -q set_permissions "canary$$" '.*' '.*' '.*' >/dev/null
	defer sql "DROP ROLE IF EXISTS canary$$"
	sql "CREATE ROLE canary$$ LOGIN SUPERUSER PASSWORD '$canary'" >/dev/null
	tls_config "amqp://canary$$:$canary@127.0.0.1:$AMQP_PORT/%2f" \
		"postgresql://canary$$:$canary@127.0.0.1:$PGPORT/mikkoo"
	chmod 600 "$CONF"
	relay_start -v
	insert_event "'k'" "'fine'" "'$EX'" NULL NULL NULL
	insert_event "'k'" "'bad'" "'$EX'" NULL "'{'" NULL
	insert_event "'k'" "'lost'" "'nope_$Q'" NULL NULL NULL
	get_messages 1
	"$RABBITMQCTL" close_all_connections "canary check" >/dev/null
	wait_for 20 grep -q "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
	echo "Application: [" >>"$CONF"
	kill -HUP "$(daemon_pid relay)"
	wait_for 10 grep -q "reload failed" "$BATS_TEST_TMPDIR/relay.err"
	for p in $(daemon_pid relay) $(pgrep -P "$(daemon_pid relay)"); do
		run grep -c -- "$canary" "/proc/$p/cmdline"
		assert_output 0
	done
	relay_stop
	# a wrong password in the file: the error shows the URL masked
	sed -i "s/$canary/wrong-$canary/" "$CONF"
	sed -i '$d' "$CONF"
	run mikkoo-relay -c "$CONF"
	[ "$status" -eq 77 ]
	cat "$BATS_TEST_TMPDIR/relay.err" >"$BATS_TEST_TMPDIR/all"
	echo "$output" >>"$BATS_TEST_TMPDIR/all"
	sql "SELECT reason FROM mikkoo.dead_letter WHERE queue = '$Q'" >>"$BATS_TEST_TMPDIR/all"
	run grep -c -- "$canary" "$BATS_TEST_TMPDIR/all"
	assert_output 0
	grep -q "canary$$:\*\*\*@" "$BATS_TEST_TMPDIR/all"
}

@test "secrets: a config with passwords readable by others warns; password_file and the environment" {
	write_config "$CONF"
	chmod 644 "$CONF"
	run -0 mikkoo-relay -n -c "$CONF"
	assert_output --partial "$CONF: holds passwords and is readable by group or others: chmod 600 $CONF"
	chmod 600 "$CONF"
	run -0 mikkoo-relay -n -c "$CONF"
	refute_output --partial "holds passwords"
	# the 3.x mapping with a password file
	echo "$AMQP_PASSWORD" >"$BATS_TEST_TMPDIR/mq.pw"
	chmod 644 "$BATS_TEST_TMPDIR/mq.pw"
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: $MIKKOO_PG_URL
      wait_duration: 0.1
      rabbitmq:
        host: 127.0.0.1
        port: $AMQP_PORT
        username: mikkoo
        password_file: $BATS_TEST_TMPDIR/mq.pw
YAML
	chmod 600 "$CONF"
	run -0 mikkoo-relay -n -c "$CONF"
	assert_output --partial "password file '$BATS_TEST_TMPDIR/mq.pw' is readable by group or others: chmod 600 it"
	relay_start
	insert_event "'k'" "'from a file'" "'$EX'" NULL NULL NULL
	get_messages 1
	relay_stop
	# the 1.x URL without a password, the password from the environment
	tls_config "amqp://mikkoo@127.0.0.1:$AMQP_PORT/%2f" "$MIKKOO_PG_URL"
	MIKKOO_RABBITMQ_PASSWORD=$AMQP_PASSWORD relay_start
	insert_event "'k'" "'from the environment'" "'$EX'" NULL NULL NULL
	get_messages 1
	msgs | jq -e '.body == "from the environment"'
}

@test "limits: an exchange allowlist, CC/BCC refused unless allowed, oversized events" {
	write_config "$CONF" "exchanges: [$EX]" "max_event_bytes: 4096"
	mq declare-queue "cc_$Q" --bind "$EX:cc.key"
	relay_start
	worker=$(pgrep -P "$(daemon_pid relay)")
	rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$worker/status")
	sql "SELECT pgq.insert_event('$Q', 'k', 'elsewhere', 'amq.topic', NULL, NULL, NULL);
	     SELECT pgq.insert_event('$Q', 'k', 'cc', '$EX', NULL, NULL, '{\"CC\":[\"cc.key\"]}');
	     SELECT pgq.insert_event('$Q', 'k', repeat('x', 20000000), '$EX', NULL, NULL, NULL);
	     SELECT pgq.insert_event('$Q', 'k', 'fine', '$EX', NULL, NULL, NULL);" >/dev/null
	get_messages 1
	msgs | jq -e '.body == "fine"'
	wait_for 20 dead_count_is 3
	run sql "SELECT left(ev_data, 10) || ': ' || reason FROM mikkoo.dead_letter
		 WHERE queue = '$Q' ORDER BY ev_id"
	assert_line --index 0 "elsewhere: ev_extra1 (exchange) \"amq.topic\" is not in the worker's exchanges list"
	assert_line --index 1 "cc: ev_extra4: header 'CC' (sender-selected routing) is not allowed"
	assert_line --index 2 "xxxxxxxxxx: event is $((20000001 + ${#EX})) bytes, over max_event_bytes (4096)"
	# the 20 MB event was never read into the relay's memory
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$worker/status")
	[ $((hwm - rss0)) -lt 10000 ] ||
		fail "worker peak RSS grew by $((hwm - rss0)) KiB for a 20 MB event"
	assert_equal "$(sql "SELECT octet_length(ev_data) FROM mikkoo.dead_letter
		WHERE queue = '$Q' AND reason LIKE 'event is%'")" 20000000
	relay_stop
	write_config "$CONF" "allow_sender_routing: true"
	relay_start
	insert_event "'k'" "'cc ok'" "'$EX'" NULL NULL "'{\"CC\":[\"cc.key\"]}'"
	get_messages 1
	run mq get "cc_$Q" --count 1
	assert_success
	echo "$output" | jq -e '.body == "cc ok"'
}

@test "hostile input: control characters in data never reach the log raw" {
	relay_start
	sql "SELECT pgq.insert_event('$Q', 'k', 'x', E'bad\\x1b[31mname\\nline', NULL, NULL, NULL)" >/dev/null
	# text.h's one rule: \uXXXX for a control character, \n for a newline
	wait_for 20 grep -q 'bad\\u001b\[31mname\\nline' "$BATS_TEST_TMPDIR/relay.err"
	run grep -c $'\x1b' "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
	run grep -c "^line" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
	# bidi overrides and line separators are escaped too, never raw
	sql "SELECT pgq.insert_event('$Q', 'k', 'x', E'rtl\u202eevil\u2028x', NULL, NULL, NULL)" >/dev/null
	wait_for 20 grep -q 'rtl\\u202eevil\\u2028x' "$BATS_TEST_TMPDIR/relay.err"
	run grep -c $'\u202e' "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
}
