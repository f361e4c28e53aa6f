#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# dist/prometheus/mikkoo.rules.yml under promtool (checked, and unit
# tests on series fixtures in test/alerts/), and dist/grafana's
# dashboard: every expression of it and of the rules names only metrics
# that a real scrape of a running relay has.

load helpers/common
load helpers/relay

RULES="$MIKKOO_TOP/dist/prometheus/mikkoo.rules.yml"
DASH="$MIKKOO_TOP/dist/grafana/mikkoo-dashboard.json"

setup() {
	install_schema
}

teardown() {
	common_teardown
}

promnames() {
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/promnames.py" "$@"
}

@test "the rules pass promtool check rules, and promtool test rules on series fixtures" {
	run promtool check rules "$RULES"
	assert_success
	assert_output --partial "SUCCESS: 5 rules found"
	run promtool test rules "$MIKKOO_TOP/test/alerts/mikkoo.rules.test.yml"
	assert_success
	assert_output --partial "SUCCESS"
	# every alert has a test that fires it and one that must not
	for a in $(sed -n 's/^ *- alert: //p' "$RULES"); do
		grep -q "alertname: $a\$" "$MIKKOO_TOP/test/alerts/mikkoo.rules.test.yml" ||
			fail "alert $a has no unit test"
		# and mikkoo(7) says what to do about it
		grep -q "^\.It Sy $a\$" "$MIKKOO_TOP/man/mikkoo.7" ||
			fail "alert $a is not explained in mikkoo(7)"
	done
}

@test "every expression of the dashboard and of the rules names only metrics a real scrape of the relay has; promtool parses them" {
	local port scrape="$BATS_TEST_TMPDIR/scrape.txt"
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	setup_relay_queue
	sed -i "s/^Application:/Application:\n  metrics:\n    listen: 127.0.0.1:$port/" "$CONF"
	relay_start
	# a relayed event and a dead letter: every family has samples
	insert_event "'k'" "'ok'" "'$EX'" "NULL" "NULL" "NULL"
	insert_event "'k'" "'bad'" "'$EX'" "NULL" "'{broken'" "NULL"
	get_messages 1
	wait_for 20 dead_count_is 1
	# the gauges come with the worker's next reading (every 5 s)
	wait_for 20 scraped "mikkoo_queue_tick_age_seconds{queue=\"$Q\"}" "$port" "$scrape"
	run promtool check metrics <"$scrape"
	assert_success

	run promnames check "$scrape" "$DASH" "$RULES" --emit-rules "$BATS_TEST_TMPDIR/dash.rules.yml"
	echo "$output" | jq -c 'select(.missing != [] or .unknown_functions != [])' >&2
	assert_success
	# all the relay's families are on the dashboard
	for n in mikkoo_events_published_total mikkoo_events_retried_total \
		mikkoo_events_dead_lettered_total mikkoo_batches_total \
		mikkoo_broker_refusals_total \
		mikkoo_reconnects_total mikkoo_pending_events \
		mikkoo_consumer_lag_seconds mikkoo_queue_tick_age_seconds \
		mikkoo_worker_up mikkoo_delivery_latency_seconds_bucket; do
		echo "$output" | grep -q "\"$n\"" || fail "$n is on no panel"
	done
	run promtool check rules "$BATS_TEST_TMPDIR/dash.rules.yml"
	assert_success
	assert_output --partial "SUCCESS: $(jq '[.panels[].targets[]] | length' "$DASH") rules found"

	# the check is not blind: without one family it fails, naming it
	grep -v '^mikkoo_queue_tick_age_seconds' "$scrape" >"$scrape.less"
	run promnames check "$scrape.less" "$DASH" "$RULES"
	assert_failure
	assert_output --partial '"missing": ["mikkoo_queue_tick_age_seconds"]'
	relay_stop
}

# scraped TEXT PORT FILE: GET /metrics into FILE; it holds TEXT.
scraped() {
	curl -sf -m 5 -o "$3" "http://127.0.0.1:$2/metrics" && grep -qF "$1" "$3"
}
