# SPDX-License-Identifier: BSD-3-Clause
# Loaded by every bats file: assertions, polling, names, SQL and daemons.
# The servers are started by test/run, which exports their env.

bats_require_minimum_version 1.5.0
load /usr/lib/bats/bats-support/load.bash
load /usr/lib/bats/bats-assert/load.bash

# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local secs=$1 deadline
	shift
	deadline=$((SECONDS + secs))
	until "$@" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "wait_for: '$*' still false after ${secs}s" >&2
			return 1
		fi
		sleep 0.1
	done
}

# A name unique to this test, usable as a queue or exchange name.
mk_name() {
	echo "t${BATS_TEST_NUMBER:-0}_$$_${RANDOM}"
}

sql() {
	psql -qXAt -v ON_ERROR_STOP=1 -c "$1"
}

# A PgQ queue that ticks fast enough for tests.
pgq_create_queue() {
	sql "SELECT pgq.create_queue('$1');
	     SELECT pgq.set_queue_config('$1', 'ticker_max_lag', '0.1 seconds');
	     SELECT pgq.set_queue_config('$1', 'ticker_idle_period', '2 seconds');" \
		>/dev/null
}

# daemon_start NAME CMD...: run CMD in the background with --ready-fd 3
# and wait until it is ready (or fail showing its stderr).
daemon_start() {
	local name=$1 d=$BATS_TEST_TMPDIR
	shift
	: >"$d/$name.ready"
	"$@" --ready-fd 3 3>"$d/$name.ready" >"$d/$name.out" 2>>"$d/$name.err" &
	echo $! >"$d/$name.pid"
	echo "$name" >>"$d/daemons"
	if ! wait_for 30 _daemon_ready "$name"; then
		echo "daemon '$name' did not become ready:" >&2
		sed "s/^/log> /" "$d/$name.err" >&2
		return 1
	fi
}

_daemon_ready() {
	local d=$BATS_TEST_TMPDIR
	[ -s "$d/$1.ready" ] && return 0
	kill -0 "$(cat "$d/$1.pid")" 2>/dev/null || {
		echo "daemon '$1' exited before it was ready" >&2
		return 2
	}
	return 1
}

daemon_pid() {
	cat "$BATS_TEST_TMPDIR/$1.pid"
}

# daemon_stop NAME [SIGNAL]: signal, wait up to 15 s, set $daemon_status.
daemon_stop() {
	local name=$1 sig=${2:-TERM} pid
	pid=$(daemon_pid "$name")
	daemon_status=
	kill -"$sig" "$pid" 2>/dev/null || true
	if ! wait_for 15 _gone "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		echo "daemon '$name' did not stop within 15 s" >&2
	fi
	daemon_status=0
	wait "$pid" 2>/dev/null || daemon_status=$?
	rm -f "$BATS_TEST_TMPDIR/$name.pid"
	assert_no_sanitizer_report "$BATS_TEST_TMPDIR/$name.err"
}

_gone() {
	! kill -0 "$1" 2>/dev/null
}

assert_no_sanitizer_report() {
	if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:|==[0-9]+== ERROR SUMMARY: [1-9]" "$1" 2>/dev/null; then
		sed "s/^/log> /" "$1" >&2
		fail "sanitizer or valgrind report in $1"
	fi
}

# defer CMD...: run CMD at teardown (common_teardown), last deferred
# first, whether the test passed or not: cleanup written at the end of
# a test never runs when an assertion before it fails.
defer() {
	printf '%q ' "$@" >>"$BATS_TEST_TMPDIR/deferred"
	echo >>"$BATS_TEST_TMPDIR/deferred"
}

_run_deferred() {
	local f=$BATS_TEST_TMPDIR/deferred line
	[ -f "$f" ] || return 0
	tac "$f" | while IFS= read -r line; do
		eval "$line" >/dev/null 2>&1 </dev/null || true
	done
	rm -f "$f"
}

# Call from teardown(): stop leftover daemons; on failure show their logs;
# then what the test deferred.
common_teardown() {
	_common_teardown_daemons
	_run_deferred
}

_common_teardown_daemons() {
	local d=$BATS_TEST_TMPDIR name pid
	[ -f "$d/daemons" ] || return 0
	while read -r name; do
		if [ -f "$d/$name.pid" ]; then
			pid=$(cat "$d/$name.pid")
			# children first: once the parent is gone they are
			# no longer its children
			pkill -KILL -P "$pid" 2>/dev/null || true
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
		if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
			continue
		fi
		echo "--- $name stderr:" >&2
		sed "s/^/log> /" "$d/$name.err" >&2 2>/dev/null || true
	done <"$d/daemons"
}
