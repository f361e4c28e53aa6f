#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts, kills or reconfigures the shared servers
# mikkoo-inspect on the RabbitMQ side: peek at a queue (--amqp-queue),
# tap an exchange; what RabbitMQ does to peeked messages.

load helpers/common
load helpers/relay

setup() {
	N=$(mk_name)
	export MIKKOO_RABBITMQ_URL=$MIKKOO_AMQP_URL
}

teardown() {
	common_teardown
	[ -n "${TAP_PID:-}" ] && kill -KILL "$TAP_PID" 2>/dev/null || true
}

# bodies of the messages now in queue $1, in order (consumes them)
drain_bodies() {
	mq get "$1" --count "$2" | jq -r '.body // .body_b64' | paste -sd ' '
}

publish_n() {
	local q=$1 n=$2 i
	for i in $(seq 1 "$n"); do
		mq publish "" "$q" "m$i"
	done
}

@test "peek: JSON lines with typed headers, left in the queue in order" {
	mq declare-queue "$N"
	mq publish "" "$N" "héllo" --properties '{"message_id":"id-1",
		"content_type":"text/plain","delivery_mode":2,
		"timestamp":1700000000,"headers":{"n":5,"big":9000000000,
		"s":"x","flag":true,"raw":{"$bytes":"AAEC/w=="},
		"when":{"$timestamp":1700000000},"price":{"$decimal":"12.50"},
		"nested":{"k":[1,"two"]},"nothing":null}}'
	mq publish "" "$N" "//79AA==" --body-b64
	publish_n "$N" 3
	run --separate-stderr mikkoo-inspect --amqp-queue "$N"
	assert_success
	assert_equal "$(echo "$output" | wc -l)" 5
	echo "$output" | head -1 | jq -e --arg q "$N" '
		keys_unsorted == ["queue","exchange","routing_key",
		"redelivered","properties","headers","body"] and
		.queue == $q and .exchange == "" and .routing_key == $q and
		.redelivered == false and .body == "héllo" and
		.properties == {"content_type":"text/plain","delivery_mode":2,
		"message_id":"id-1","timestamp":"2023-11-14T22:13:20Z"} and
		.headers.n == {"type":"int32","value":5} and
		.headers.big == {"type":"int64","value":9000000000} and
		.headers.s == {"type":"string","value":"x"} and
		.headers.flag == {"type":"bool","value":true} and
		.headers.raw == {"type":"bytes","base64":"AAEC/w=="} and
		.headers.when == {"type":"timestamp",
			"value":"2023-11-14T22:13:20Z"} and
		.headers.price == {"type":"decimal","value":"12.5"} and
		.headers.nested.value.k == {"type":"array","value":[
			{"type":"int32","value":1},
			{"type":"string","value":"two"}]} and
		.headers.nothing == {"type":"void","value":null}'
	echo "$output" | sed -n 2p | jq -e '.body_base64 == "//79AA==" and
		(has("body") | not)'
	echo "$output" | tail -3 | jq -s -e '[.[].body] == ["m1","m2","m3"]'
	assert_equal "$stderr" "mikkoo-inspect: info: peeked at 5 messages of '$N': back in the queue, in order, marked redelivered"
	# still there, same order; RabbitMQ marked them redelivered
	assert_equal "$(mq count "$N")" 5
	mq get "$N" --count 5 >"$BATS_TEST_TMPDIR/after"
	jq -s -e '[.[].redelivered] == [true,true,true,true,true]' \
		"$BATS_TEST_TMPDIR/after"
	jq -s -e '[.[] | .body // .body_b64] ==
		["héllo","//79AA==","m1","m2","m3"]' "$BATS_TEST_TMPDIR/after"
}

@test "peek --limit: the first N; the others are not touched" {
	mq declare-queue "$N"
	publish_n "$N" 4
	run --separate-stderr mikkoo-inspect -a "$N" --limit 2
	assert_success
	echo "$output" | jq -s -e '[.[].body] == ["m1","m2"]'
	assert_equal "$(mq count "$N")" 4
	mq get "$N" --count 4 >"$BATS_TEST_TMPDIR/after"
	jq -s -e '[.[] | [.body, .redelivered]] == [["m1",true],["m2",true],
		["m3",false],["m4",false]]' "$BATS_TEST_TMPDIR/after"
	# RabbitMQ from the relay's configuration, as the other tools take it
	printf 'Application:\n  workers:\n    w:\n      postgres_url: %s\n      rabbitmq_url: %s\n' \
		"$MIKKOO_PG_URL" "$MIKKOO_AMQP_URL" >"$BATS_TEST_TMPDIR/c.yml"
	chmod 600 "$BATS_TEST_TMPDIR/c.yml"
	run --separate-stderr env -u MIKKOO_RABBITMQ_URL mikkoo-inspect \
		-c "$BATS_TEST_TMPDIR/c.yml" -a "$N" --limit 1
	assert_success
	echo "$output" | jq -e '.body == "m1"'
	# an empty queue: nothing, and success
	mq purge "$N"
	run --separate-stderr mikkoo-inspect -a "$N"
	assert_success
	assert_output ""
}

@test "peek on a quorum queue: depth and order kept, delivery count +1" {
	mq declare-queue "$N" --arguments '{"x-queue-type":"quorum"}'
	publish_n "$N" 5
	run --separate-stderr mikkoo-inspect -a "$N" --limit 2
	assert_success
	echo "$output" | jq -s -e '[.[] | [.body, .redelivered,
		.headers["x-delivery-count"].value]] ==
		[["m1",false,0],["m2",false,0]]'
	# the tool waits until the queue has them ready again
	assert_equal "$(mq count "$N")" 5
	run --separate-stderr mikkoo-inspect -a "$N"
	assert_success
	echo "$output" | jq -s -e '[.[] | [.body, .redelivered,
		.headers["x-delivery-count"].value]] ==
		[["m1",true,1],["m2",true,1],["m3",false,0],["m4",false,0],
		 ["m5",false,0]]'
	assert_equal "$(mq count "$N")" 5
	assert_equal "$(drain_bodies "$N" 5)" "m1 m2 m3 m4 m5"
}

@test "peek --limit on a quorum queue handed back before: the order is kept, or --stop-at-limit moves them" {
	# RabbitMQ 3.10 serves a quorum queue's handed-back messages first,
	# in the order handed back, each new hand-back at their end
	mq declare-queue "$N" --arguments '{"x-queue-type":"quorum"}'
	publish_n "$N" 5
	run --separate-stderr mikkoo-inspect -a "$N"         # all handed back
	assert_success
	run --separate-stderr mikkoo-inspect -a "$N" --limit 2
	assert_success
	echo "$output" | jq -s -e '[.[].body] == ["m1","m2"]'
	# the peek read on through m3..m5 (not printed), so all went back
	# in order, each one's delivery count one higher
	run --separate-stderr mikkoo-inspect -a "$N"
	echo "$output" | jq -s -e '[.[] | [.body,
		.headers["x-delivery-count"].value]] ==
		[["m1",2],["m2",2],["m3",2],["m4",2],["m5",2]]'
	# RabbitMQ's own way, on request: m1 m2 go behind m3..m5, and only
	# the read ones count one more
	run --separate-stderr mikkoo-inspect -a "$N" --limit 2 --stop-at-limit
	assert_success
	run --separate-stderr mikkoo-inspect -a "$N"
	echo "$output" | jq -s -e '[.[] | [.body,
		.headers["x-delivery-count"].value]] ==
		[["m3",3],["m4",3],["m5",3],["m1",4],["m2",4]]'
	# fresh messages after handed-back ones: read on only through those
	mq purge "$N"
	publish_n "$N" 2
	mikkoo-inspect -a "$N" >/dev/null 2>&1          # m1 m2 handed back
	mq publish "" "$N" m3
	mq publish "" "$N" m4
	run --separate-stderr mikkoo-inspect -a "$N" --limit 1
	echo "$output" | jq -s -e '[.[].body] == ["m1"]'
	assert_equal "$(drain_bodies "$N" 4)" "m1 m2 m3 m4"
	run -64 --separate-stderr mikkoo-inspect tap -e amq.topic --stop-at-limit
}

@test "peek | head -n 1 ends with exit 0 and leaves the queue whole" {
	mq declare-queue "$N"
	publish_n "$N" 20
	run bash -c "set -o pipefail; mikkoo-inspect -a '$N' 2>'$BATS_TEST_TMPDIR/err' |
		head -n 1 | jq -r .body"
	assert_success
	assert_output m1
	refute grep -q error "$BATS_TEST_TMPDIR/err"
	assert_equal "$(mq count "$N")" 20
	assert_equal "$(drain_bodies "$N" 20)" "$(seq -f 'm%g' 1 20 | paste -sd ' ')"
}

@test "peek errors: missing queue 66, bad names 64, no broker 64/69" {
	run --separate-stderr mikkoo-inspect -a "nosuch_$N"
	assert_equal "$status" 66
	assert_output ""
	assert_equal "$stderr" "mikkoo-inspect: error: no RabbitMQ queue 'nosuch_$N' on 'amqp://mikkoo:***@127.0.0.1:$AMQP_PORT/%2f'"
	run --separate-stderr mikkoo-inspect -a "$(printf 'q%.0s' $(seq 256))"
	assert_equal "$status" 64
	assert_equal "$stderr" "mikkoo-inspect: error: queue name '$(printf 'q%.0s' $(seq 76))...' is longer than 255 bytes"
	run --separate-stderr mikkoo-inspect -a "$(printf 'bad\377')"
	assert_equal "$status" 64
	assert_equal "$stderr" 'mikkoo-inspect: error: queue name '\''bad\xff'\'' is not valid UTF-8'
	run --separate-stderr mikkoo-inspect -a ''
	assert_equal "$status" 64
	assert_equal "$stderr" "mikkoo-inspect: error: queue name is empty"
	# where is RabbitMQ?
	run --separate-stderr env -u MIKKOO_RABBITMQ_URL mikkoo-inspect -a "$N"
	assert_equal "$status" 64
	assert_equal "$stderr" "mikkoo-inspect: error: no RabbitMQ to connect to: use -c FILE or set MIKKOO_RABBITMQ_URL"
	port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	run --separate-stderr env MIKKOO_RABBITMQ_URL="amqp://u:secret@127.0.0.1:$port/" \
		mikkoo-inspect -a "$N"
	assert_equal "$status" 69
	assert_equal "$stderr" "mikkoo-inspect: error: cannot connect to RabbitMQ 'amqp://u:***@127.0.0.1:$port/': a socket error occurred"
	# options that do not go together
	run -64 mikkoo-inspect -a "$N" pending
	assert_output --partial "--amqp-queue, -e, -k and --seconds are not for the PgQ views"
	run -64 mikkoo-inspect -a "$N" -q orders
	assert_output --partial "-q, --consumer and the dead filters are for the PgQ views"
	run -64 mikkoo-inspect tap
	assert_output --partial "tap needs -e EXCHANGE"
	run -64 mikkoo-inspect -e "$N"
	assert_output --partial "-e, -k and --seconds are for tap"
	run -64 mikkoo-inspect tap -e "$N" -a "$N"
	run -64 mikkoo-inspect tap -e ''
	assert_output --partial "exchange name is empty"
	run -64 mikkoo-inspect tap -e "$N" --seconds 0
	run --separate-stderr mikkoo-inspect tap -e "nosuch_$N"
	assert_equal "$status" 66
	assert_equal "$stderr" "mikkoo-inspect: error: no RabbitMQ exchange 'nosuch_$N' on 'amqp://mikkoo:***@127.0.0.1:$AMQP_PORT/%2f'"
}

# tap_start ARGS...: mikkoo-inspect tap in the background, ready once
# its queue is bound (its "tapping" line).
tap_start() {
	mikkoo-inspect tap "$@" >"$BATS_TEST_TMPDIR/tap.out" \
		2>"$BATS_TEST_TMPDIR/tap.err" &
	TAP_PID=$!
	wait_for 20 grep -q "tapping exchange" "$BATS_TEST_TMPDIR/tap.err"
}

# tap_wait: wait for the tap to end (in this shell: run would use a
# subshell, whose wait does not know the job); its status in $tap_status.
tap_wait() {
	tap_status=0
	wait "$TAP_PID" || tap_status=$?
	TAP_PID=
	assert_no_sanitizer_report "$BATS_TEST_TMPDIR/tap.err"
}

lines_ge() {
	[ "$(wc -l <"$1")" -ge "$2" ]
}

@test "tap: sees what is published during it, not before; --limit ends it" {
	mq declare-exchange "$N"
	mq declare-queue "q_$N" --bind "$N:#"
	mq publish "$N" before.1 early
	tap_start -e "$N" --limit 2
	grep -qE "^mikkoo-inspect: info: tapping exchange '$N' with binding '#' \(queue 'amq\.gen-[^']+'\); stop with \^C$" "$BATS_TEST_TMPDIR/tap.err"
	mq publish "$N" k.1 during1 --properties '{"headers":{"n":1}}'
	mq publish "$N" k.2 during2
	tap_wait
	assert_equal "$tap_status" 0
	run -0 jq -s -c '[.[] | [.exchange, .routing_key, .body,
		.headers.n.value, has("queue")]]' "$BATS_TEST_TMPDIR/tap.out"
	assert_output '[["'"$N"'","k.1","during1",1,false],["'"$N"'","k.2","during2",null,false]]'
	assert_equal "$(tail -1 "$BATS_TEST_TMPDIR/tap.err")" "mikkoo-inspect: info: tap of '$N' ended after 2 messages"
	# the message published before is where it was, and only there
	assert_equal "$(mq count "q_$N")" 3
	assert_equal "$(drain_bodies "q_$N" 3)" "early during1 during2"
}

@test "tap -k: only the bindings given; --seconds and SIGINT end it with 0" {
	mq declare-exchange "$N"
	tap_start -e "$N" -k 'order.*' -k audit --seconds 600
	grep -q "with binding 'order.\*', 'audit' " "$BATS_TEST_TMPDIR/tap.err"
	mq publish "$N" order.paid a
	mq publish "$N" other.thing b --not-mandatory
	mq publish "$N" audit c
	wait_for 20 lines_ge "$BATS_TEST_TMPDIR/tap.out" 2
	kill -INT "$TAP_PID"
	tap_wait
	assert_equal "$tap_status" 0
	run -0 jq -s -c '[.[].body]' "$BATS_TEST_TMPDIR/tap.out"
	assert_output '["a","c"]'
	# --seconds alone ends it
	run --separate-stderr mikkoo-inspect tap -e "$N" --seconds 0.5
	assert_success
	assert_output ""
	assert_equal "$(tail -1 <<<"$stderr")" "mikkoo-inspect: info: tap of '$N' ended after 0 messages"
}

@test "tap | head -n 1 ends with exit 0 (SIGPIPE is not an error)" {
	mq declare-exchange "$N"
	bash -c "set -o pipefail; mikkoo-inspect tap -e '$N' 2>'$BATS_TEST_TMPDIR/tap.err' |
		head -n 1 >'$BATS_TEST_TMPDIR/tap.out'; echo \$? >'$BATS_TEST_TMPDIR/rc'" &
	TAP_PID=$!
	wait_for 20 grep -q "tapping exchange" "$BATS_TEST_TMPDIR/tap.err"
	# head exits after the first line; the tap notices at the next write
	mq publish "$N" k one
	mq publish "$N" k two --not-mandatory
	mq publish "$N" k three --not-mandatory
	wait_for 20 test -s "$BATS_TEST_TMPDIR/rc"
	TAP_PID=
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rc")" 0
	assert_equal "$(jq -r .body "$BATS_TEST_TMPDIR/tap.out")" one
	refute grep -q error "$BATS_TEST_TMPDIR/tap.err"
}

@test "peek: a stream cannot be peeked (69); a queue we may not read (77)" {
	mq declare-queue "$N" --arguments '{"x-queue-type":"stream"}'
	mq publish "" "$N" s1
	run --separate-stderr mikkoo-inspect -a "$N"
	assert_equal "$status" 69
	assert_output ""
	assert_equal "$stderr" "mikkoo-inspect: error: RabbitMQ 'amqp://mikkoo:***@127.0.0.1:$AMQP_PORT/%2f': basic.get: connection closed by RabbitMQ: 540 NOT_IMPLEMENTED - basic.get not supported by stream queues queue '$N' in vhost '/'"
	mq delete-queue "$N"
	mq declare-queue "$N"
	"$RABBITMQCTL" add_user "u_$N" "pw_$N" >/dev/null
	"$RABBITMQCTL" set_permissions "u_$N" '^$' '^$' '^$' >/dev/null
	run --separate-stderr env MIKKOO_RABBITMQ_URL="amqp://u_$N:pw_$N@127.0.0.1:$AMQP_PORT/%2f" \
		mikkoo-inspect -a "$N"
	"$RABBITMQCTL" delete_user "u_$N" >/dev/null
	assert_equal "$status" 77
	assert_equal "$stderr" "mikkoo-inspect: error: RabbitMQ 'amqp://u_$N:***@127.0.0.1:$AMQP_PORT/%2f': basic.get: channel closed by RabbitMQ: 403 ACCESS_REFUSED - access to queue '$N' in vhost '/' refused for user 'u_$N'"
}
