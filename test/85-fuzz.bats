#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# A short libFuzzer round per target (make fuzz runs longer ones).  Each
# starts from the committed seeds; a crash, leak or UB report fails.

load helpers/common

FUZZ_SECONDS=${FUZZ_SECONDS_SHORT:-10}

fuzz() {
	local f="$MIKKOO_FUZZ_BIN/$1"
	[ -x "$f" ] || fail "no fuzzer $f (make fuzz-build)"
	mkdir -p "$BATS_TEST_TMPDIR/corpus"
	cp "$MIKKOO_TOP/fuzz/corpus/$1/"* "$BATS_TEST_TMPDIR/corpus/"
	run "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024 \
		-artifact_prefix="$BATS_TEST_TMPDIR/" "$BATS_TEST_TMPDIR/corpus"
	if [ "$status" -ne 0 ]; then
		echo "$output" | tail -40
		ls "$BATS_TEST_TMPDIR"/crash-* "$BATS_TEST_TMPDIR"/leak-* 2>/dev/null
	fi
	assert_success
	assert_output --partial "Done "
}

@test "fuzz: event mapping" {
	fuzz fuzz-event
}

@test "fuzz: configuration parser" {
	fuzz fuzz-config
}

@test "fuzz: AMQP URL parser and password masking" {
	fuzz fuzz-url
}

@test "fuzz: JSON-lines reader" {
	fuzz fuzz-jsonl
}

@test "fuzz: confirm tracker" {
	fuzz fuzz-inflight
}
