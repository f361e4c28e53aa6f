#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# The C unit tests (test/unit/test-*.c), one bats test per binary.

load helpers/common

unit() {
	run "$MIKKOO_BUILD/test/$1"
	echo "$output"
	assert_success
	refute_line --regexp '^not ok'
	assert_line --regexp '^1\.\.[1-9]'
}

@test "unit: inflight (confirm tracker, against a model)" {
	unit test-inflight
}

@test "unit: event (the PgQ event -> AMQP message mapping)" {
	unit test-event
}

@test "unit: ids (UUIDv4 correlation ids, the sequence header)" {
	unit test-ids
}

@test "unit: config (the YAML file, defaults, errors with locations)" {
	unit test-config
}

@test "unit: url (AMQP URL parsing, password masking)" {
	unit test-url
}

@test "unit: delivery (RabbitMQ messages as JSON, x-death, names)" {
	unit test-delivery
}

@test "unit: fate (every cause, below, at and past max_failures)" {
	unit test-fate
}

@test "unit: prom (metric families, Prometheus text format 0.0.4)" {
	unit test-prom
}

@test "unit: routes (the routes key, routing by media type)" {
	unit test-routes
}

@test "unit: text (UTF-8, cuts at boundaries, one escape rule)" {
	unit test-text
}

@test "layers: no two files call each other (scripts/calls over the build's objects)" {
	run "$MIKKOO_TOP/scripts/calls" "$MIKKOO_BUILD"
	echo "$output"
	assert_success
	assert_output ""
}

@test "bench/plot draws what a run measured: a slot-only run's figures give the throughput picture with its rows, and no latency picture" {
	local d=$BATS_TEST_TMPDIR
	fig() { printf '"%s": {"median": %s, "min": %s, "max": %s, "runs": 3}' "$@"; }
	{
		echo '{"figures": {'
		fig slot_ceiling_publish_100.events_per_second 13832 13680 14524
		echo ','
		fig slot_emit_100.events_per_second 15409 14417 16346
		echo ','
		fig slot_ceiling_publish_change.events_per_second 14596 14416 15371
		echo ','
		fig slot_change.events_per_second 13274 13174 14583
		echo '}, "ratios": {}, "settings": {}}'
	} >"$d/bench.json"
	mkdir "$d/samples"
	run -0 "$MIKKOO_TOP/bench/plot" "$d/bench.json" "$d/samples"
	assert_output "pictures: $d/bench-throughput.svg"
	[ ! -e "$d/bench-latency.svg" ]
	grep -q 'slot worker, changes 278 B' "$d/bench-throughput.svg"
	grep -q 'raw publisher 278 B' "$d/bench-throughput.svg"
	# rows the run did not measure are left out
	run -1 grep -c 'mikkoo-relay' "$d/bench-throughput.svg"
	assert_output 0
}
