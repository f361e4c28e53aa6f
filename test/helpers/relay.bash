# SPDX-License-Identifier: BSD-3-Clause
# Helpers for tests that run mikkoo-relay against the real servers.
# Needs helpers/common (wait_for, mk_name, pgq_create_queue, sql,
# daemon_start, daemon_stop) loaded first.

mq() {
	/usr/bin/python3 "$MIKKOO_TOP/test/tools/mq.py" "$@"
}

# Install the mikkoo schema once per file (it is idempotent anyway).
install_schema() {
	psql -qX -v ON_ERROR_STOP=1 -f "$MIKKOO_SQL" >/dev/null
}

# setup_relay_queue: a fresh PgQ queue $Q with the relay's consumer
# registered (so events inserted before the relay starts are seen), and
# a topic exchange $EX with a queue $MQ bound to everything.
setup_relay_queue() {
	Q=$(mk_name)
	EX="ex_$Q"
	MQ="mq_$Q"
	CONSUMER=${CONSUMER:-mikkoo}
	pgq_create_queue "$Q"
	sql "SELECT pgq.register_consumer('$Q', '$CONSUMER')" >/dev/null
	mq declare-exchange "$EX" --type topic
	mq declare-queue "$MQ" --bind "$EX:#"
	CONF="$BATS_TEST_TMPDIR/mikkoo.yml"
	write_config "$CONF"
}

# write_config FILE [KEY: VALUE...]: a one-worker config for $Q; the
# extra worker settings replace the test defaults of the same key.
write_config() {
	local f=$1 l k
	shift
	local -A set=()
	for l in "$@"; do
		set[${l%%:*}]=1
	done
	{
		echo "Application:"
		echo "  workers:"
		echo "    $Q:"
		echo "      postgres_url: $MIKKOO_PG_URL"
		echo "      rabbitmq_url: $MIKKOO_AMQP_URL"
		echo "      consumer_name: $CONSUMER"
		for l in "wait_duration: 0.1" "retry_delay: 1" "max_failures: 2"; do
			k=${l%%:*}
			[ -n "${set[$k]:-}" ] || echo "      $l"
		done
		for l in "$@"; do
			echo "      $l"
		done
	} >"$f"
	chmod 600 "$f"   # it holds passwords, as an operator's would
}

# insert_event TYPE DATA EXTRA1 EXTRA2 EXTRA3 EXTRA4 (SQL literals)
insert_event() {
	sql "SELECT pgq.insert_event('$Q', $1, $2, $3, $4, $5, $6)"
}

relay_start() {
	daemon_start relay mikkoo-relay -c "$CONF" "$@"
}

relay_stop() {
	daemon_stop relay "${1:-TERM}"
}

# The relay's stderr so far.
relay_log() {
	cat "$BATS_TEST_TMPDIR/relay.err"
}

# get_messages N [TIMEOUT]: exactly N messages from $MQ as JSON lines
# into $BATS_TEST_TMPDIR/msgs.jsonl (fails if fewer arrive in time).
get_messages() {
	mq get "$MQ" --count "$1" --timeout "${2:-20}" \
		>"$BATS_TEST_TMPDIR/msgs.jsonl"
}

msgs() {
	cat "$BATS_TEST_TMPDIR/msgs.jsonl"
}

dead_letters() {
	sql "SELECT ev_id, coalesce(ev_retry, -1), reason FROM mikkoo.dead_letter
	     WHERE queue = '$Q' ORDER BY ev_id"
}

dead_count() {
	sql "SELECT count(*) FROM mikkoo.dead_letter WHERE queue = '$Q'"
}

# Predicates for wait_for: they re-read the state on every poll.
dead_count_is() {
	[ "$(dead_count)" -eq "$1" ]
}

mq_count_ge() {
	[ "$(mq count "$MQ")" -ge "$1" ]
}
