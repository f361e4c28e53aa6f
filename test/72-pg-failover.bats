#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# PostgreSQL failover under the oracle: a primary with a synchronous
# streaming standby (test/servers/start --only postgres --standby, once
# for the file), both named in one multi-host URL with
# target_session_attrs=read-write, as the relay, the tools, pgqd and the
# oracle's producers use it.  The primary is stopped (immediate), the
# standby promoted; the relay must resume from PgQ's replicated state on
# the new primary, losing nothing.  RabbitMQ is the suite's node.
# MIKKOO_PG_HA_DIR names a running pair to reuse while iterating.

load helpers/common
load helpers/relay
load helpers/oracle

setup_file() {
	if [ -n "${MIKKOO_PG_HA_DIR:-}" ] && [ -f "$MIKKOO_PG_HA_DIR/env" ]; then
		export PG_HA_DIR=$MIKKOO_PG_HA_DIR PG_HA_OWN=
	else
		PG_HA_DIR=$(mktemp -d /tmp/mikkoo-pgha.XXXXXX)
		export PG_HA_DIR PG_HA_OWN=1
		"$MIKKOO_TOP/test/servers/start" "$PG_HA_DIR" --only postgres \
			--standby >&3 2>&1 3>&-
	fi
	# shellcheck disable=SC1091
	. "$PG_HA_DIR/env"
	install_schema
}

teardown_file() {
	[ -z "${PG_HA_OWN:-}" ] || "$MIKKOO_TOP/test/servers/stop" "$PG_HA_DIR"
}

setup() {
	setup_oracle_queue
}

teardown() {
	oracle_teardown
}

pgctl() {
	"$MIKKOO_TOP/test/servers/ctl" "$PG_HA_DIR" "$@"
}

@test "the pair: writes go to the primary, the standby is synchronous and read-only" {
	run pgctl pg-primary
	assert_success
	p=$output
	assert_equal "$(echo "$p" | wc -w)" 1
	s=$((3 - p))
	run sql "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')"
	assert_output "f|*"
	run sql "SELECT application_name, sync_state FROM pg_stat_replication"
	assert_output "pg$s|sync"
	# the standby answers reads and refuses writes
	port_var=MIKKOO_PG_PORT_$s
	run psql -qXAt -h 127.0.0.1 -p "${!port_var}" \
		"target_session_attrs=any" -c "SELECT pg_is_in_recovery()"
	assert_output t
	run psql -qXAt -h 127.0.0.1 -p "${!port_var}" \
		"target_session_attrs=any" -c "SELECT pgq.create_queue('x_$$')"
	assert_failure
	assert_output --partial "read-only transaction"
}

@test "failover: the primary stopped (immediate) and the standby promoted; relay and tools go on" {
	relay_start --log-time
	produce 200 12
	sleep 3
	p=$(pgctl pg-primary)
	s=$((3 - p))
	fault=$(date +%s.%N)
	pgctl pg-stop "$p" immediate
	pgctl pg-promote "$s"
	BACK=$(date +%s.%N)
	assert_equal "$(pgctl pg-primary)" "$s"

	# the tools, through the same multi-host URL, on the new primary
	Q2="${Q}_tools"
	sql "SELECT pgq.create_queue('$Q2')" >/dev/null
	sql "SELECT pgq.register_consumer('$Q2', 'mikkoo')" >/dev/null
	run -0 --separate-stderr mikkoo-insert -d "$MIKKOO_PG_URL" -q "$Q2" \
		-e "$EX" -r tools.one -b '{"tools":1}' --audit
	run -0 --separate-stderr mikkoo-inspect -d "$MIKKOO_PG_URL" -q "$Q2" status
	echo "$output" | jq -e --arg q "$Q2" '.queue == $q and .consumer == "mikkoo"'
	[[ $stderr != *"$PGPASSWORD"* ]]
	run -0 --separate-stderr mikkoo-replay -d "$MIKKOO_PG_URL" --dry-run \
		--queue "$Q2"
	run -0 --separate-stderr mikkoo-audit -d "$MIKKOO_PG_URL" --no-drain \
		-q "$Q2" --grace 3600
	# a second relay waits: the first took its lock again on the new
	# primary (advisory locks are not replicated: it had to) once it
	# relays again
	wait_for 60 grep -q "relaying again" "$BATS_TEST_TMPDIR/relay.err"
	daemon_start relay2 mikkoo-relay -c "$CONF"
	wait_for 30 grep -q "another mikkoo-relay is consuming queue '$Q'" \
		"$BATS_TEST_TMPDIR/relay2.err"
	daemon_stop relay2

	finish --expect-events 200
	echo "$output" | jq -e '.commits_missing == 0 and .commits_twice == 0 and .dead == 0'
	grep -q "reconnected to PostgreSQL" "$BATS_TEST_TMPDIR/relay.err"
	report_recovery "$fault" "primary stopped, standby promoted"
	# the relay ticks its queue (ticker: relay): ticks go on at once on
	# the new primary, though pgqd reconnects only 60 s after losing
	# its server
	gap=$(sql "SELECT round(extract(epoch FROM max(d))::numeric, 1) FROM
		(SELECT tick_time - lag(tick_time) OVER (ORDER BY tick_id) d
		 FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue
		 WHERE q.queue_name = '$Q') x")
	echo "ticker: longest pause between two ticks of the queue: $gap s" >&3
	# (not "! grep": bats does not fail a test on a negated command)
	run -1 grep -F "$PGPASSWORD" "$BATS_TEST_TMPDIR/relay.err"

	# the old primary comes back as the new standby (for the next run)
	pgctl pg-standby "$p"
}
