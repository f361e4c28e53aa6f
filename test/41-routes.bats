#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# routes: events without an exchange go to the exchange of their media
# type (or the default route); no match is a dead letter; without routes
# nothing changes.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	setup_relay_queue
	OX="orders_$Q"          # the orders' exchange, and a queue on it
	mq declare-exchange "$OX" --type topic
	mq declare-queue "q_$OX" --bind "$OX:#"
}

teardown() {
	common_teardown
}

ORDER=application/vnd.acme.order+json

@test "routes without a default: by media type; no match is a dead letter" {
	write_config "$CONF" "routes: {$ORDER: $OX}"
	run -0 mikkoo-relay -n -c "$CONF"
	relay_start
	insert_event "'order.paid'" "'o1'" NULL "'$ORDER'" NULL NULL
	insert_event "'order.paid'" "'o2'" "''" "'Application/VND.acme.order+json; charset=utf-8'" NULL NULL
	insert_event "'order.paid'" "'o3'" NULL "'application/json'" \
		"'{\"content_type\": \"$ORDER\"}'" NULL
	insert_event "'k'" "'named'" "'$EX'" "'$ORDER'" NULL NULL
	insert_event "'k'" "'lost'" NULL "'application/json'" NULL NULL
	insert_event "'k'" "'bare'" "''" NULL NULL NULL
	mq get "q_$OX" --count 3 >"$BATS_TEST_TMPDIR/orders"
	jq -s -e --arg ox "$OX" '[.[] | [.exchange, .body]] ==
		[[$ox,"o1"],[$ox,"o2"],[$ox,"o3"]]' "$BATS_TEST_TMPDIR/orders"
	# an event that names its exchange is not routed
	get_messages 1
	msgs | jq -e --arg ex "$EX" '.exchange == $ex and .body == "named"'
	wait_for 20 dead_count_is 2
	run -0 sql "SELECT ev_data, reason FROM mikkoo.dead_letter
		WHERE queue = '$Q' ORDER BY ev_id"
	assert_output "lost|ev_extra1 (exchange) is NULL and no route matches content type \"application/json\"
bare|ev_extra1 (exchange) is empty and the event has no content type to route by"
	assert_equal "$(mq count "q_$OX")" 0
	relay_stop
	assert_equal "$daemon_status" 0
}

@test "routes with a default: the rest goes there" {
	mq declare-exchange "ev_$Q" --type fanout
	mq declare-queue "q_ev_$Q" --bind "ev_$Q:"
	write_config "$CONF" "routes: {$ORDER: $OX, default: ev_$Q}"
	relay_start
	insert_event "'order.paid'" "'o1'" NULL "'$ORDER'" NULL NULL
	insert_event "'x'" "'other'" NULL "'application/json'" NULL NULL
	insert_event "'x'" "'none'" "''" NULL NULL NULL
	run -0 mq get "q_$OX" --count 1
	echo "$output" | jq -e '.body == "o1"'
	run -0 mq get "q_ev_$Q" --count 2
	echo "$output" | jq -s -e --arg e "ev_$Q" '[.[] | [.exchange,
		.routing_key, .body]] == [[$e,"x","other"],[$e,"x","none"]]'
	assert_equal "$(dead_count)" 0
}

@test "without routes nothing changes; SIGHUP adds them live" {
	relay_start
	mq declare-queue "direct_$Q"
	# '' is the default exchange, NULL is bad data: as always
	insert_event "'direct_$Q'" "'to the default exchange'" "''" "'$ORDER'" NULL NULL
	insert_event "'k'" "'null'" NULL "'$ORDER'" NULL NULL
	run -0 mq get "direct_$Q" --count 1
	echo "$output" | jq -e '.exchange == "" and .body == "to the default exchange"'
	wait_for 20 dead_count_is 1
	assert_equal "$(sql "SELECT reason FROM mikkoo.dead_letter WHERE queue = '$Q'")" \
		"ev_extra1 (exchange) is NULL"
	write_config "$CONF" "routes: {$ORDER: $OX}"
	kill -HUP "$(daemon_pid relay)"
	wait_for 10 grep -q "configuration reloaded: routes applied" \
		"$BATS_TEST_TMPDIR/relay.err"
	insert_event "'k'" "'routed'" NULL "'$ORDER'" NULL NULL
	run -0 mq get "q_$OX" --count 1
	echo "$output" | jq -e '.body == "routed"'
	# and the dead letter, replayed, now finds its route
	run -0 mikkoo-replay -q "$Q" --all
	run -0 mq get "q_$OX" --count 1
	echo "$output" | jq -e '.body == "null"'
}

@test "bad routes are configuration errors (78)" {
	write_config "$CONF" "routes: {application/json; charset=utf-8: x}"
	run --separate-stderr mikkoo-relay -n -c "$CONF"
	assert_equal "$status" 78
	[[ "$stderr" == *"key 'Application/workers/$Q/routes': 'application/json; charset=utf-8' is not a media type (type/subtype, no parameters) or 'default'"* ]]
	write_config "$CONF" "exchanges: [$EX]" "routes: {$ORDER: $OX}"
	run --separate-stderr mikkoo-relay -n -c "$CONF"
	assert_equal "$status" 78
	[[ "$stderr" == *"worker '$Q': routes send events to exchange '$OX', which is not in its exchanges list"* ]]
	write_config "$CONF" "routes: {default: }"
	run -78 mikkoo-relay -n -c "$CONF"
}
