#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# The tools classify PostgreSQL failures as the relay does (pg.h): a
# privilege refused is 77 in every one of them, a lost server 69.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
	# A role that may log in and nothing more: no USAGE on schema mikkoo.
	sql "DROP ROLE IF EXISTS mikkoo_noperm;
	     CREATE ROLE mikkoo_noperm LOGIN PASSWORD 'np-S3cret'"
}

teardown_file() {
	sql "DROP ROLE IF EXISTS mikkoo_noperm"
}

setup() {
	setup_relay_queue
	NP_URL="postgresql://mikkoo_noperm:np-S3cret@127.0.0.1:$PGPORT/$PGDATABASE"
}

teardown() {
	common_teardown
}

@test "mikkoo-insert: a privilege refused (audited insert) is 77" {
	run -77 --separate-stderr env MIKKOO_POSTGRES_URL="$NP_URL" \
		mikkoo-insert -q "$Q" -e x -r k -b b --audit
	[[ "$stderr" == *"mikkoo-insert: error: line 1 was not inserted: permission denied for schema mikkoo"* ]] ||
		fail "stderr: $stderr"
	refute_output --partial "np-S3cret"
}

@test "mikkoo-inspect: a privilege refused is 77 for status and dead letters" {
	run -77 --separate-stderr env MIKKOO_POSTGRES_URL="$NP_URL" \
		mikkoo-inspect -q "$Q"
	[[ "$stderr" == *"permission denied for schema mikkoo (SQLSTATE 42501)"* ]] ||
		fail "stderr: $stderr"
	run -77 --separate-stderr env MIKKOO_POSTGRES_URL="$NP_URL" \
		mikkoo-inspect -q "$Q" dead
	[[ "$stderr" == *"permission denied for schema mikkoo"* ]] ||
		fail "stderr: $stderr"
}

@test "mikkoo-replay: a privilege refused is 77" {
	run -77 --separate-stderr env MIKKOO_POSTGRES_URL="$NP_URL" \
		mikkoo-replay -q "$Q" --dry-run
	[[ "$stderr" == *"selecting dead letters: permission denied for schema mikkoo (SQLSTATE 42501)"* ]] ||
		fail "stderr: $stderr"
}

@test "mikkoo-audit: a privilege refused is 77" {
	run -77 --separate-stderr env MIKKOO_POSTGRES_URL="$NP_URL" \
		mikkoo-audit --no-drain -q "$Q"
	[[ "$stderr" == *"reading mikkoo.audit: permission denied for schema mikkoo (SQLSTATE 42501)"* ]] ||
		fail "stderr: $stderr"
}

@test "mikkoo-relay: a schema it may not use is 77, a missing one 78" {
	write_config "$CONF"
	sed -i "s|postgres_url: .*|postgres_url: $NP_URL|" "$CONF"
	run -77 --separate-stderr mikkoo-relay -c "$CONF" --worker "$Q"
	[[ "$stderr" == *"permission denied for schema mikkoo"* ]] ||
		fail "stderr: $stderr"
	[[ "$stderr" != *np-S3cret* ]]
}

@test "every tool: a server that is not there is 69" {
	local url="postgresql://mikkoo:x@127.0.0.1:1/mikkoo"
	run -69 --separate-stderr env MIKKOO_POSTGRES_URL="$url" \
		mikkoo-insert -q "$Q" -e x -r k -b b
	run -69 --separate-stderr env MIKKOO_POSTGRES_URL="$url" \
		mikkoo-inspect -q "$Q"
	run -69 --separate-stderr env MIKKOO_POSTGRES_URL="$url" \
		mikkoo-replay -q "$Q" --dry-run
	run -69 --separate-stderr env MIKKOO_POSTGRES_URL="$url" \
		mikkoo-audit --no-drain -q "$Q"
	[[ "$stderr" == *"cannot connect to PostgreSQL 'postgresql://mikkoo:***@127.0.0.1:1/mikkoo'"* ]]
}
