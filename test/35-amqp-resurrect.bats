#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# mikkoo-replay --amqp-queue: RabbitMQ dead letters back to where they
# first died, with confirms; nothing acked that was not confirmed.

load helpers/common
load helpers/relay

# A topic exchange $EX routing order.* to $Q, whose rejected messages go
# through the fanout $DLX to the dead-letter queue $DLQ (arguments $1).
setup_dlx() {
	EX="ex_$N"
	DLX="dlx_$N"
	Q="billing_$N"
	DLQ="dlq_$N"
	mq declare-exchange "$EX"
	mq declare-exchange "$DLX" --type fanout
	mq declare-queue "$DLQ" --bind "$DLX:" ${1:+--arguments "$1"}
	mq declare-queue "$Q" --bind "$EX:order.*" \
		--arguments '{"x-dead-letter-exchange":"'"$DLX"'"}'
}

setup() {
	N=$(mk_name)
	export MIKKOO_RABBITMQ_URL=$MIKKOO_AMQP_URL
	POLICY=
	ALARM=
}

teardown() {
	[ -n "$ALARM" ] && "$RABBITMQCTL" set_vm_memory_high_watermark 0.4 >/dev/null
	[ -n "$POLICY" ] && "$RABBITMQCTL" clear_policy "$POLICY" >/dev/null
	common_teardown
}

# publish N messages m1..mN with key $2 (default order.paid) to $EX and
# let the broken consumer reject everything in $Q into $DLQ
dead_letters() {
	local n=$1 key=${2:-order.paid} i want in_q
	for i in $(seq 1 "$n"); do
		mq publish "$EX" "$key" "m$i" --properties '{"message_id":"id'"$i"'"}'
	done
	in_q=$(mq count "$Q")
	want=$(($(mq count "$DLQ") + in_q))
	mq reject "$Q" --count "$in_q"
	wait_for 10 mq_depth_is "$DLQ" "$want"
}

mq_depth_is() {
	[ "$(mq count "$1")" -eq "$2" ]
}

bodies() {
	mq get "$1" --count "$2" | jq -r '.body // .body_b64' | paste -sd ' '
}

@test "resurrect: each message back on its original queue exactly once" {
	setup_dlx
	mq publish "$EX" order.paid "//79AA==" --body-b64 --properties '{
		"message_id":"bin-1","content_type":"application/octet-stream",
		"correlation_id":"c-1","priority":3,"type":"t","app_id":"shop",
		"timestamp":1700000000,"delivery_mode":2,"reply_to":"r",
		"headers":{"n":5,"big":9000000000,"raw":{"$bytes":"AAEC/w=="},
		"s":"x"}}'
	dead_letters 2
	assert_equal "$(mq count "$Q")" 0
	run --separate-stderr mikkoo-replay --amqp-queue "$DLQ"
	assert_success
	assert_equal "$(echo "$output" | wc -l)" 3
	echo "$output" | head -1 | jq -e --arg dlq "$DLQ" --arg q "$Q" \
		--arg ex "$EX" 'keys_unsorted == ["queue","message_id",
		"death_queue","death_reason","exchange","routing_key",
		"result"] and . == {"queue":$dlq,"message_id":"bin-1",
		"death_queue":$q,"death_reason":"rejected","exchange":$ex,
		"routing_key":"order.paid","result":"resurrected"}'
	echo "$output" | jq -s -e '[.[] | .message_id + " " + .result] ==
		["bin-1 resurrected","id1 resurrected","id2 resurrected"]'
	assert_equal "$(echo "$stderr" | head -1)" "mikkoo-replay: info: resurrected 3 of 3 messages read from '$DLQ'"
	assert_equal "$(mq count "$DLQ")" 0
	assert_equal "$(mq count "$Q")" 3
	mq get "$Q" --count 3 >"$BATS_TEST_TMPDIR/back"
	# body and properties as published; the death headers gone
	head -1 "$BATS_TEST_TMPDIR/back" | jq -e --arg ex "$EX" '
		.body_b64 == "//79AA==" and .exchange == $ex and .routing_key == "order.paid" and
		.redelivered == false and
		(.properties | del(.headers)) == {"app_id":"shop",
		"content_type":"application/octet-stream",
		"correlation_id":"c-1","delivery_mode":2,"message_id":"bin-1",
		"priority":3,"timestamp":1700000000,"type":"t",
		"reply_to":"r"} and
		.properties.headers == {"n":5,"big":9000000000,
		"raw":{"b64":"AAEC/w=="},"s":"x"} and
		.header_types == {"n":"I","big":"l","raw":"x","s":"S"}'
	jq -s -e '[.[1:][] | [.body, (.properties.headers // {} | keys)]] ==
		[["m1",[]],["m2",[]]]' "$BATS_TEST_TMPDIR/back"
	# nothing left to do: a second run reads nothing
	run --separate-stderr mikkoo-replay -a "$DLQ"
	assert_success
	assert_output ""
	assert_equal "$stderr" "mikkoo-replay: info: resurrected 0 of 0 messages read from '$DLQ'"
}

@test "resurrect --dry-run: what would happen; nothing published or acked" {
	setup_dlx
	dead_letters 3
	run --separate-stderr mikkoo-replay -a "$DLQ" --dry-run
	assert_success
	echo "$output" | jq -s -e --arg ex "$EX" '[.[] | [.message_id,
		.exchange, .result]] == [["id1",$ex,"would_resurrect"],
		["id2",$ex,"would_resurrect"],["id3",$ex,"would_resurrect"]]'
	assert_equal "$(echo "$stderr" | head -1)" "mikkoo-replay: info: would resurrect 3 of 3 messages read from '$DLQ' (dry run: nothing published or acked)"
	assert_equal "$(mq count "$Q")" 0
	assert_equal "$(mq count "$DLQ")" 3
	assert_equal "$(bodies "$DLQ" 3)" "m1 m2 m3"
}

@test "refused by the broker (reject-publish): nothing acked, order kept" {
	# a quorum DLQ: a nack-and-requeue would have moved them to its back
	setup_dlx '{"x-queue-type":"quorum"}'
	dead_letters 3
	POLICY="full_$N"
	"$RABBITMQCTL" set_policy "$POLICY" "^$Q\$" \
		'{"max-length":0,"overflow":"reject-publish"}' \
		--apply-to queues --priority 10 >/dev/null
	wait_for 20 bash -c "'$RABBITMQCTL' list_queues name policy 2>/dev/null |
		grep -q '^$Q[[:space:]]$POLICY\$'"
	run --separate-stderr mikkoo-replay -a "$DLQ"
	assert_equal "$status" 65
	echo "$output" | jq -s -e '[.[] | [.message_id, .result, .error]] ==
		[["id1","refused","nacked by RabbitMQ (a queue refused it: a reject-publish length limit?)"],
		 ["id2","refused","nacked by RabbitMQ (a queue refused it: a reject-publish length limit?)"],
		 ["id3","refused","nacked by RabbitMQ (a queue refused it: a reject-publish length limit?)"]]'
	assert_equal "$(echo "$stderr" | tail -1)" "mikkoo-replay: warning: 3 selected messages stayed in '$DLQ' (see their records)"
	assert_equal "$(mq count "$DLQ")" 3
	assert_equal "$(mq count "$Q")" 0
	# once the limit is gone, they go back, in order
	"$RABBITMQCTL" clear_policy "$POLICY" >/dev/null
	POLICY=
	wait_for 20 bash -c "! '$RABBITMQCTL' list_queues name policy 2>/dev/null |
		grep -q '^$Q[[:space:]]full_'"
	run -0 mikkoo-replay -a "$DLQ"
	assert_equal "$(mq count "$DLQ")" 0
	assert_equal "$(bodies "$Q" 3)" "m1 m2 m3"
}

@test "the exchange is gone, or nothing is bound: nothing acked" {
	setup_dlx
	dead_letters 2
	mq delete-exchange "$EX"
	run --separate-stderr mikkoo-replay -a "$DLQ"
	assert_equal "$status" 65
	echo "$output" | jq -s -e --arg ex "$EX" '[.[] | [.result, .error]] ==
		[["refused","404 NOT_FOUND - no exchange '\''" + $ex + "'\'' in vhost '\''/'\''"],
		 ["refused","404 NOT_FOUND - no exchange '\''" + $ex + "'\'' in vhost '\''/'\''"]]'
	assert_equal "$(mq count "$DLQ")" 2
	# back, but with no binding: mandatory returns them
	mq declare-exchange "$EX"
	run --separate-stderr mikkoo-replay -a "$DLQ"
	assert_equal "$status" 65
	echo "$output" | jq -s -e '[.[] | [.result, .error]] ==
		[["returned","returned by RabbitMQ: 312 NO_ROUTE"],
		 ["returned","returned by RabbitMQ: 312 NO_ROUTE"]]'
	assert_equal "$(mq count "$DLQ")" 2
	assert_equal "$(bodies "$DLQ" 2)" "m1 m2"
}

@test "--to-queue: back to the queue it died in, and only there" {
	setup_dlx
	# a second queue gets everything the exchange routes
	mq declare-queue "audit_$N" --bind "$EX:#"
	dead_letters 2
	mq purge "audit_$N"
	run --separate-stderr mikkoo-replay -a "$DLQ" --to-queue --limit 1
	assert_success
	echo "$output" | jq -e --arg q "$Q" '.exchange == "" and
		.routing_key == $q and .result == "resurrected"'
	assert_equal "$(mq count "$Q")" 1
	assert_equal "$(mq count "audit_$N")" 0
	# without it, the original routing: every queue bound to the key
	run --separate-stderr mikkoo-replay -a "$DLQ"
	assert_success
	echo "$output" | jq -e --arg ex "$EX" '.exchange == $ex and
		.message_id == "id2"'
	assert_equal "$(mq count "$Q")" 2
	assert_equal "$(mq count "audit_$N")" 1
	# --to-queue when that queue is gone: returned, stays
	mq purge "$Q"
	dead_letters 1
	mq delete-queue "$Q"
	run --separate-stderr mikkoo-replay -a "$DLQ" --to-queue
	assert_equal "$status" 65
	echo "$output" | jq -e '.result == "returned"'
	assert_equal "$(mq count "$DLQ")" 1
}

@test "filters: --reason, --routing-key, --limit; the others stay in place" {
	setup_dlx
	dead_letters 2 order.paid
	dead_letters 1 order.sent       # id1 again, key order.sent
	# and one that expired in $Q
	mq publish "$EX" order.paid late --properties '{"message_id":"exp","expiration":"1"}'
	wait_for 20 mq_depth_is "$DLQ" 4
	run --separate-stderr mikkoo-replay -a "$DLQ" -n --reason expired
	assert_success
	echo "$output" | jq -e '.message_id == "exp" and .death_reason == "expired"'
	run --separate-stderr mikkoo-replay -a "$DLQ" -n --routing-key order.sent
	assert_success
	echo "$output" | jq -e '.routing_key == "order.sent"'
	run --separate-stderr mikkoo-replay -a "$DLQ" -n --reason rejected --limit 2
	assert_success
	assert_equal "$(echo "$output" | jq -r .message_id | paste -sd ' ')" "id1 id2"
	run --separate-stderr mikkoo-replay -a "$DLQ" --reason rejected --routing-key order.paid
	assert_success
	assert_equal "$(echo "$output" | jq -r .message_id | paste -sd ' ')" "id1 id2"
	assert_equal "$(bodies "$Q" 2)" "m1 m2"
	assert_equal "$(bodies "$DLQ" 2)" "m1 late"
	run -64 mikkoo-replay -a "$DLQ" --reason lost
	assert_output --partial "--reason is rejected, expired, maxlen or delivery_limit"
}

@test "a reader that stops reading (| head -n 1) ends the run with 0; the rest stays" {
	setup_dlx
	dead_letters 2
	# a pipe whose reader is gone before the first record: EPIPE at once
	mikkoo-replay -a "$DLQ" 2>"$BATS_TEST_TMPDIR/err" | (exec 0<&-; sleep 1)
	assert_equal "${PIPESTATUS[0]}" 0
	# the one resurrected before the output failed is back; none lost
	wait_for 10 mq_depth_is "$Q" 1
	wait_for 10 mq_depth_is "$DLQ" 1
	run grep -c "error" "$BATS_TEST_TMPDIR/err"
	assert_output 0
}

@test "a message that is not a dead letter stays and is reported (65)" {
	setup_dlx
	mq publish "" "$DLQ" stray --properties '{"message_id":"s-1"}'
	dead_letters 1
	run --separate-stderr mikkoo-replay -a "$DLQ"
	assert_equal "$status" 65
	echo "$output" | head -1 | jq -e --arg dlq "$DLQ" '. == {"queue":$dlq,
		"message_id":"s-1","death_queue":null,"death_reason":null,
		"exchange":null,"routing_key":null,
		"result":"not_a_dead_letter",
		"error":"no x-death header: where it died is unknown"}'
	echo "$output" | tail -1 | jq -e '.result == "resurrected"'
	assert_equal "$(bodies "$DLQ" 1)" stray
}

@test "no confirm in time (publishing blocked): 69, it stays in the DLQ" {
	setup_dlx
	dead_letters 1
	ALARM=1
	"$RABBITMQCTL" set_vm_memory_high_watermark 0.000001 >/dev/null
	run --separate-stderr mikkoo-replay -a "$DLQ" --timeout 1
	assert_equal "$status" 69
	echo "$output" | jq -e '.result == "unconfirmed" and
		(.error | test("did not confirm a publish within 1 s: publishing is blocked: low on memory$"))'
	"$RABBITMQCTL" set_vm_memory_high_watermark 0.4 >/dev/null
	ALARM=
	# never acked: still there (it may also have been delivered: at
	# least once)
	wait_for 20 mq_depth_is "$DLQ" 1
}

@test "errors: missing queue 66, bad names and options 64" {
	run --separate-stderr mikkoo-replay -a "nosuch_$N"
	assert_equal "$status" 66
	assert_equal "$stderr" "mikkoo-replay: error: no RabbitMQ queue 'nosuch_$N' on 'amqp://mikkoo:***@127.0.0.1:$AMQP_PORT/%2f'"
	assert_output ""
	run --separate-stderr mikkoo-replay -a "$(printf 'x\001\377')"
	assert_equal "$status" 64
	assert_equal "$stderr" 'mikkoo-replay: error: queue name '\''x\u0001\xff'\'' is not valid UTF-8'
	run -64 mikkoo-replay -a "$(printf 'q%.0s' $(seq 300))"
	assert_output --partial "is longer than 255 bytes"
	run -64 mikkoo-replay -a "$N" --stdin
	assert_output --partial "--amqp-queue resurrects RabbitMQ dead letters: no PgQ filters, --all, --stdin or --batch with it"
	run -64 mikkoo-replay -a "$N" -q orders
	run -64 mikkoo-replay -a "$N" --batch 5
	run -64 mikkoo-replay --limit 5 -q orders
	assert_output --partial "--reason, --limit, --to-queue and --timeout are for --amqp-queue"
	run -64 mikkoo-replay -a "$N" --timeout 0
	run --separate-stderr env -u MIKKOO_RABBITMQ_URL mikkoo-replay -a "$N"
	assert_equal "$status" 64
	assert_equal "$stderr" "mikkoo-replay: error: no RabbitMQ to connect to: use -c FILE or set MIKKOO_RABBITMQ_URL"
}
