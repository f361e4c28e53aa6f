#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# The man pages: mdoc that mandoc accepts without a warning, one page per
# command, and options that the commands really have.

load helpers/common

@test "man pages pass mandoc -Tlint" {
	run mandoc -Tlint -Wwarning "$MIKKOO_TOP"/man/*.[157]
	assert_success
	assert_output ""
}

@test "every command has a man page" {
	for b in "$MIKKOO_BUILD"/bin/*; do
		[ -f "$MIKKOO_TOP/man/$(basename "$b").1" ] ||
			fail "no man page for $(basename "$b")"
	done
}

@test "every long option of --help is in the man page" {
	for b in "$MIKKOO_BUILD"/bin/*; do
		n=$(basename "$b")
		run -0 "$b" --help
		run -0 "$b" --version
		"$b" --help >"$BATS_TEST_TMPDIR/help"
		for opt in $(grep -oE -- '--[a-z][a-z-]+' "$BATS_TEST_TMPDIR/help" | sort -u); do
			grep -q -- "Fl -${opt#--}" "$MIKKOO_TOP/man/$n.1" ||
				fail "$n: $opt is not in man/$n.1"
		done
	done
}
