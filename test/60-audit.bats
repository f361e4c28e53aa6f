#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# mikkoo-audit: nothing missing after a normal run; exactly the right
# events missing when the relay was stopped or an event dead-lettered;
# nothing again after the relay ran or the dead letter was replayed.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
	# earlier files' audit rows would count as missing here
	sql "DELETE FROM mikkoo.audit" >/dev/null
}

setup() {
	setup_relay_queue
	AQ="audit_$Q"
	mq declare-queue "$AQ" --bind "$EX:#"
	export MIKKOO_RABBITMQ_URL=$MIKKOO_AMQP_URL
}

teardown() {
	common_teardown
	sql "DELETE FROM mikkoo.audit WHERE queue = '$Q'" >/dev/null
}

audited() {
	local i
	for i in $(seq "$1" "$2"); do
		echo "{\"exchange\":\"$EX\",\"routing_key\":\"${3:-k}\",\"body\":\"$i\",\"audit\":true}"
	done | mikkoo-insert -q "$Q" --jsonl
}

@test "after a normal run nothing is missing (exit 0)" {
	relay_start
	audited 1 20 >/dev/null
	wait_for 20 mq_count_ge 20
	wait_for 20 sh -c "[ \$(/usr/bin/python3 '$MIKKOO_TOP/test/tools/mq.py' count '$AQ') -ge 20 ]"
	run --separate-stderr mikkoo-audit -a "$AQ" -q "$Q" --grace 0 --idle 0.5
	assert_success
	assert_output ""
	assert_equal "$stderr" "mikkoo-audit: info: 20 messages drained from '$AQ': 20 audit rows confirmed, 0 messages not audited or seen before"
	assert_equal "$(mq count "$AQ")" 0
	assert_equal "$(sql "SELECT count(*) FROM mikkoo.audit WHERE queue = '$Q'")" 0
}

@test "with the relay stopped, exactly the undelivered events are missing (exit 1)" {
	relay_start
	audited 1 3 >/dev/null
	get_messages 3
	relay_stop
	audited 4 5 >"$BATS_TEST_TMPDIR/late"
	run --separate-stderr mikkoo-audit -a "$AQ" -q "$Q" --grace 0 --idle 0.5
	assert_equal "$status" 1
	assert_equal "$(echo "$output" | jq -r .message_id | sort)" \
		"$(jq -r .message_id "$BATS_TEST_TMPDIR/late" | sort)"
	echo "$output" | head -1 | jq -e --arg q "$Q" '
		keys_unsorted == ["message_id","event_id","queue","exchange",
		"routing_key","published_at","age_seconds","dead_letter_id",
		"dead_letter_reason"] and .queue == $q and .dead_letter_id == null'
	[[ "$stderr" == *"mikkoo-audit: warning: 2 audited events not delivered after 0 s"* ]]
	# a grace period hides young rows
	run -0 --separate-stderr mikkoo-audit --no-drain -q "$Q" --grace 3600
	assert_output ""
	# once the relay ran, nothing is missing
	relay_start
	wait_for 20 sh -c "[ \$(/usr/bin/python3 '$MIKKOO_TOP/test/tools/mq.py' count '$AQ') -ge 2 ]"
	run -0 --separate-stderr mikkoo-audit -a "$AQ" -q "$Q" --grace 0 --idle 0.5
	assert_output ""
}

@test "a dead-lettered event is missing with its reason, until replayed" {
	relay_start
	# routed nowhere: max_failures 2 then dead letter
	mq delete-queue "$MQ"
	mq delete-queue "$AQ"
	audited 1 1 lost >"$BATS_TEST_TMPDIR/lost"
	wait_for 60 dead_count_is 1
	mq declare-queue "$AQ" --bind "$EX:#"
	run --separate-stderr mikkoo-audit -a "$AQ" -q "$Q" --grace 0 --idle 0.5
	assert_equal "$status" 1
	echo "$output" | jq -e --arg m "$(jq -r .message_id "$BATS_TEST_TMPDIR/lost")" '
		.message_id == $m and (.dead_letter_id | type == "number") and
		(.dead_letter_reason | startswith("returned by RabbitMQ: 312 NO_ROUTE"))'
	# bound again, replayed, delivered: the audit is clean
	run -0 --separate-stderr mikkoo-replay -q "$Q" --all
	wait_for 30 sh -c "[ \$(/usr/bin/python3 '$MIKKOO_TOP/test/tools/mq.py' count '$AQ') -ge 1 ]"
	run -0 --separate-stderr mikkoo-audit -a "$AQ" -q "$Q" --grace 0 --idle 0.5
	assert_output ""
}

@test "messages are acked only after the audit rows' DELETE committed" {
	relay_start
	audited 1 5 >/dev/null
	wait_for 20 sh -c "[ \$(/usr/bin/python3 '$MIKKOO_TOP/test/tools/mq.py' count '$AQ') -ge 5 ]"
	role="audit_$$"
	defer sql "DROP OWNED BY $role; DROP ROLE $role"
	sql "DROP ROLE IF EXISTS $role; CREATE ROLE $role LOGIN PASSWORD 'pw';
	     GRANT USAGE ON SCHEMA mikkoo TO $role;
	     GRANT SELECT ON mikkoo.audit, mikkoo.dead_letter TO $role;" >/dev/null
	run --separate-stderr env PGUSER="$role" PGPASSWORD=pw \
		mikkoo-audit -a "$AQ" -q "$Q" --grace 0 --idle 0.5
	# a privilege refused is 77, as in every command (it was 70)
	assert_equal "$status" 77
	[[ "$stderr" == *"deleting audit rows: permission denied for table audit (SQLSTATE 42501)"* ]]
	# nothing was acknowledged: every message is still there
	wait_for 10 sh -c "[ \$(/usr/bin/python3 '$MIKKOO_TOP/test/tools/mq.py' count '$AQ') -eq 5 ]"
	run -0 --separate-stderr mikkoo-audit -a "$AQ" -q "$Q" --grace 0 --idle 0.5
	assert_output ""
}

@test "usage and connection errors" {
	run -64 mikkoo-audit
	assert_output --partial "give the confirming queue with -a QUEUE (or --no-drain)"
	run --separate-stderr mikkoo-audit -a "nosuch_$$" --grace 0
	assert_equal "$status" 66
	[[ "$stderr" == *"no RabbitMQ queue 'nosuch_$$' on 'amqp://mikkoo:***@127.0.0.1:$AMQP_PORT/%2f'"* ]]
	MIKKOO_RABBITMQ_URL="amqp://mikkoo:S3cr3t-CANARY@127.0.0.1:$AMQP_PORT/%2f" \
		run --separate-stderr mikkoo-audit -a "$AQ"
	assert_equal "$status" 77
	[[ "$stderr" != *CANARY* ]]
}
