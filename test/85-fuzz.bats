#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# A short libFuzzer round per target, from the committed seeds; a crash,
# leak or UB report fails.  The round is reproducible: a fixed seed and a
# fixed number of inputs, so a failure here fails the same way on a rerun
# and in a bisect.  Exploring with random seeds is make fuzz's job (run it
# before landing a change to a parser); what it finds is committed to
# fuzz/corpus as regress-* and so joins this round.

load helpers/common

FUZZ_RUNS=${FUZZ_RUNS:-300000}
FUZZ_SEED=${FUZZ_SEED:-1}

fuzz() {
	local f="$MIKKOO_FUZZ_BIN/$1"
	[ -x "$f" ] || fail "no fuzzer $f (make fuzz-build)"
	mkdir -p "$BATS_TEST_TMPDIR/corpus"
	cp "$MIKKOO_TOP/fuzz/corpus/$1/"* "$BATS_TEST_TMPDIR/corpus/"
	run "$f" -seed="$FUZZ_SEED" -runs="$FUZZ_RUNS" -rss_limit_mb=1024 \
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

@test "fuzz: the settle path (failures to the JSON PostgreSQL receives)" {
	fuzz fuzz-settle
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
