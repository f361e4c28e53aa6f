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
