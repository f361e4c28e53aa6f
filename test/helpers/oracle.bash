# SPDX-License-Identifier: BSD-3-Clause
# The fault suites' oracle (test/tools/oracle.py) and what they share:
# producers of numbered, audited events, the final check, the fault
# proxy, and the recovery time of a fault.  Needs helpers/common and
# helpers/relay loaded first.

oracle() {
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/oracle.py" "$@"
}

# setup_oracle_queue [KEY: VALUE...]: $Q as setup_relay_queue makes it,
# the confirming queue $AQ (declared with $AQ_ARGS, JSON queue
# arguments, if set) bound to all of $EX, and a config that retries a
# long time.
setup_oracle_queue() {
	setup_relay_queue
	# fault timing (at_random_moments) from a fixed seed per test,
	# printed: FAULT_SEED=N reruns a run's timing
	FAULT_SEED=${FAULT_SEED:-$((7919 * ${BATS_TEST_NUMBER:-1}))}
	RANDOM=$FAULT_SEED
	echo "# fault timing seed $FAULT_SEED" >&3
	AQ="oracle_$Q"
	mq declare-queue "$AQ" --bind "$EX:#" ${AQ_ARGS:+--arguments "$AQ_ARGS"}
	write_config "$CONF" "max_failures: 1000" "$@"
}

oracle_teardown() {
	common_teardown
	local p
	for p in "$BATS_TEST_TMPDIR"/proxy-*.pid; do
		[ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
	done
	return 0
}

# proxy_start NAME TARGET_PORT: test/tools/faultproxy.py in front of a
# server; sets PROXY_PORT.  proxy NAME SIGNAL: USR1 black hole, USR2
# reset (RST), HUP heal.
proxy_start() {
	local out="$BATS_TEST_TMPDIR/proxy-$1.out"
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/faultproxy.py" 0 "$2" >"$out" 2>&1 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/proxy-$1.pid"
	wait_for 10 grep -q '^ready ' "$out"
	PROXY_PORT=$(sed -n 's/^ready //p' "$out")
}

proxy() {
	kill -"$2" "$(cat "$BATS_TEST_TMPDIR/proxy-$1.pid")"
}

# produce [EVENTS_PER_PRODUCER [SECONDS]]: four producers in the
# background.
produce() {
	oracle produce --queue "$Q" --exchange "$EX" --producers 4 \
		--events "${1:-300}" --duration "${2:-8}" \
		>"$BATS_TEST_TMPDIR/produce.out" 2>"$BATS_TEST_TMPDIR/produce.err" 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/producer.pid"
}

producing() {
	kill -0 "$(cat "$BATS_TEST_TMPDIR/producer.pid")" 2>/dev/null
}

# The consumer has passed tick $1, has no open batch and nothing pending
# or waiting to retry.  (pending_events only counts ticked events: the
# tick after the producers finished is what covers all of them.)
caught_up() {
	[ "$(sql "SELECT count(*) FROM pgq.get_consumer_info('$Q', 'mikkoo')
		WHERE pending_events = 0 AND current_batch IS NULL
		  AND last_tick > $1")" = 1 ] &&
	[ "$(sql "SELECT count(*) FROM pgq.retry_queue r JOIN pgq.queue q
		ON q.queue_id = r.ev_queue WHERE q.queue_name = '$Q'")" = 0 ]
}

# finish [CHECK OPTIONS]: wait for the producers and the relay, then
# judge; the summary is in $output.  With --late-ok, first deliveries
# out of order are the caller's to judge (see relay_retried).
finish() {
	wait "$(cat "$BATS_TEST_TMPDIR/producer.pid")" ||
		fail "producer failed: $(cat "$BATS_TEST_TMPDIR/produce.err")"
	# the ticker (pgqd, not us) must cover every committed event
	tick=$(sql "SELECT pgq.force_tick('$Q')")
	wait_for "${CATCH_UP_SECONDS:-120}" caught_up "$tick"
	relay_stop
	# MIKKOO_KEEP_LOGS=DIR keeps each test's relay log for a look after
	[ -z "${MIKKOO_KEEP_LOGS:-}" ] ||
		cp "$BATS_TEST_TMPDIR/relay.err" \
			"$MIKKOO_KEEP_LOGS/$(basename "$BATS_TEST_FILENAME" .bats)-$BATS_TEST_NUMBER.err"
	run oracle check --queue "$Q" --amqp-queue "$AQ" "$@"
	echo "oracle: $output (producers: $(cat "$BATS_TEST_TMPDIR/produce.out"))" >&3
	assert_success
	if [[ " $* " == *" --late-ok "* ]]; then
		echo "$output" | jq -e '.lost == 0 and .unexpected == 0'
	else
		echo "$output" | jq -e '.lost == 0 and .unexpected == 0 and .order == 0'
	fi
}

# The relay's count of retried events, from its last stats line.
relay_retried() {
	grep -o 'stats: .*' "$BATS_TEST_TMPDIR/relay.err" | tail -1 |
		sed -n 's/.* retried=\([0-9]*\) requeued=\([0-9]*\).*/\1 \2/p' |
		awk '{ print $1 + $2 }'
}

# at_random_moments N CMD...: run CMD N times while producing.
at_random_moments() {
	local n=$1 i
	shift
	for i in $(seq "$n"); do
		sleep "0.$((RANDOM % 9 + 1))"
		producing || break
		"$@"
	done
}

# report_recovery FAULT_EPOCH LABEL [LOG]: print (fd 3) the time from the
# fault to the relay's first confirmed publish after its last failure
# (a fault may take down one node after another: the last recovery is
# the one that counts), from the relay's own "relaying again" lines (run
# it with --log-time), and how many outages the relay went through.
# Fails when there is no such line after the fault: the relay must have
# noticed it.  $BACK, if set, is when the servers were back (epoch).
report_recovery() {
	local fault=$1 label=$2 log=${3:-$BATS_TEST_TMPDIR/relay.err} t= x n=0
	while read -r x _; do
		x=$(date -d "$x" +%s.%N) || continue
		if awk -v a="$fault" -v b="$x" 'BEGIN { exit !(b >= a) }'; then
			t=$x
			n=$((n + 1))
		fi
	done < <(grep "relaying again: first publish confirmed" "$log")
	[ -n "$t" ] || fail "no 'relaying again' line after: $label"
	RECOVERY_SECONDS=$(awk -v a="$fault" -v b="$t" 'BEGIN { printf "%.1f", b - a }')
	echo "recovery: $RECOVERY_SECONDS s from the fault to the first confirmed publish after it ($label; $n outage(s) seen by the relay${BACK:+; servers back $(awk -v a="$fault" -v b="$BACK" 'BEGIN { printf "%.1f", b - a }') s after the fault})" >&3
}
