# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the logical-decoding source's tests: a slot read with
# test/tools/walcat (common/logical.h), and the trigger route's events
# (mikkoo.capture into a PgQ queue) read straight from PgQ's tables to
# compare with.  Needs helpers/common loaded first.

# lg_setup: names for this test: slot $SLOT, publication $PUB, table
# $T, PgQ queue $Q, exchange $EX.
lg_setup() {
	N=$(mk_name)
	SLOT="s_$N"
	PUB="p_$N"
	T="public.lt_$N"
	Q="q_$N"
	EX="ex_$N"
	WALCAT_PIDS=()
}

# lg_teardown: stop walcats, drop this test's slot, record, publication.
lg_teardown() {
	local pid
	for pid in "${WALCAT_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[ -n "${SLOT:-}" ] || return 0
	wait_for 10 slot_inactive || true
	sql "SET client_min_messages = warning;
	     SELECT pg_drop_replication_slot(slot_name)
	     FROM pg_replication_slots WHERE slot_name = '$SLOT';
	     DELETE FROM mikkoo.slots WHERE slot_name = '$SLOT';
	     DROP PUBLICATION IF EXISTS $PUB" >/dev/null
}

slot_inactive() {
	[ "$(sql "SELECT count(*) FROM pg_replication_slots
	          WHERE slot_name = '$SLOT' AND active")" = 0 ]
}

walcat() {
	"$MIKKOO_BUILD/test/tools/walcat" -d "$MIKKOO_PG_URL" "$@"
}

# walcat_bg OUT ARGS: walcat in the background (its own pid in
# WALCAT_PIDS, killed by lg_teardown), stdout to OUT, stderr to OUT.err.
walcat_bg() {
	local out=$1
	shift
	"$MIKKOO_BUILD/test/tools/walcat" -d "$MIKKOO_PG_URL" "$@" \
		>"$out" 2>"$out.err" 3>&- &
	WALCAT_PIDS+=($!)
}

# slot_create [ARGS]: create $SLOT (recorded), streaming nothing yet.
slot_create() {
	walcat -S "$SLOT" -P "$PUB" --create -n 0 "$@"
}

# slot_read [ARGS]: stream $SLOT into slot.jsonl until it has been idle
# for $IDLE seconds (default 3) or -n events came; stderr in slot.err.
slot_read() {
	walcat -S "$SLOT" -P "$PUB" -x "$EX" --idle "${IDLE:-3}" "$@" \
		>"$BATS_TEST_TMPDIR/slot.jsonl" 2>"$BATS_TEST_TMPDIR/slot.err"
}

slot_out() {
	cat "$BATS_TEST_TMPDIR/slot.jsonl"
}

# The bodies of the slot's events, one JSON object per line.
slot_bodies() {
	slot_out | jq -c '.ev_data | fromjson'
}

# What both routes must agree on, one line per table change: routing
# key, exchange, content type, headers and the body without recorded_at
# (the trigger's is the statement's time, the slot's the commit's),
# bytes as they are (jq does not reparse the body).
agree() {
	jq -c 'select(.kind == null or (.kind | test("^[IUDT]$")))
	       | {ev_type, ev_extra1, ev_extra2, ev_extra4,
	          ev_data: (.ev_data | sub(",\"recorded_at\":\"[^\"]*\"}$"; "}"))}'
}

# The events mikkoo.capture() put into PgQ queue $Q, as JSON lines.
pgq_events() {
	local tbl
	tbl=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	sql "SELECT json_build_object('ev_type', ev_type, 'ev_data', ev_data,
	            'ev_extra1', ev_extra1, 'ev_extra2', ev_extra2,
	            'ev_extra4', ev_extra4)
	     FROM $tbl ORDER BY ev_id"
}

# both_routes: capture $T into $Q for exchange $EX and publish it in
# $PUB, then create the slot.
both_routes() {
	pgq_create_queue "$Q"
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX');
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_create
}

# assert_routes_agree: the slot's table changes equal the capture's,
# message by message.
assert_routes_agree() {
	pgq_events | agree >"$BATS_TEST_TMPDIR/trigger.agree"
	slot_out | agree >"$BATS_TEST_TMPDIR/slot.agree"
	if ! diff -u "$BATS_TEST_TMPDIR/trigger.agree" \
		"$BATS_TEST_TMPDIR/slot.agree" >"$BATS_TEST_TMPDIR/agree.diff"; then
		cut -c1-300 "$BATS_TEST_TMPDIR/agree.diff" | head -40 >&2
		echo "slot errors:" >&2
		slot_out | jq -r 'select(.error) | .error' | sort | uniq -c >&2
		cat "$BATS_TEST_TMPDIR/slot.err" >&2
		fail "the slot's messages differ from the capture's"
	fi
	[ -s "$BATS_TEST_TMPDIR/slot.agree" ] || fail "no messages to compare"
}

# slot_config [KEY: VALUE...]: a one-worker config $CONF, worker $W
# reading slot $SLOT (publication $PUB, stream $STREAM) into $EXS; the
# settings given replace the defaults of the same key.
slot_config() {
	local l k
	local -A set=()
	for l in "$@"; do
		set[${l%%:*}]=1
	done
	{
		echo "Application:"
		echo "  workers:"
		echo "    $W:"
		echo "      source: logical"
		echo "      postgres_url: $MIKKOO_PG_URL"
		echo "      rabbitmq_url: $MIKKOO_AMQP_URL"
		for l in "slot: $SLOT" "publication: $PUB" "exchange: $EXS" \
			"messages: [$STREAM]" "wait_duration: 0.1" \
			"retry_delay: 1" "max_failures: 2"; do
			k=${l%%:*}
			[ -n "${set[$k]:-}" ] || echo "      $l"
		done
		for l in "$@"; do
			echo "      $l"
		done
	} >"$CONF"
	chmod 600 "$CONF"
}

# Messages as both routes must agree on them: what differs by nature
# (exchange, the per-publish ids, the WAL position, times) left out.
same_shape() {
	jq -c '{routing_key, body: (.body | sub(",\"recorded_at\":\"[^\"]*\"}$"; "}")),
	        props: (.properties | del(.correlation_id, .timestamp)
	               | .headers |= del(.sequence, .event_id, .lsn, .timestamp, .origin)),
	        header_types: (.header_types | del(.lsn))}'
}

# slot_confirmed_past LSN: whether $SLOT's confirmed position is past LSN.
slot_confirmed_past() {
	[ "$(sql "SELECT confirmed_flush_lsn >= '$1' FROM pg_replication_slots
	          WHERE slot_name = '$SLOT'")" = t ]
}

# slot_worker_setup: lg_setup's names and, for a slot worker $W, its
# stream $STREAM and exchange $EXS with queue $MQS bound to everything;
# its config file $CONF (slot_config).
slot_worker_setup() {
	lg_setup
	W="w_$N"
	STREAM="st_$N"
	EXS="exs_$N"
	MQS="mqs_$N"
	mq declare-exchange "$EXS" --type topic
	mq declare-queue "$MQS" --bind "$EXS:#"
	CONF="$BATS_TEST_TMPDIR/mikkoo.yml"
}

# slot_worker_teardown: lg_teardown, then drop table $T and role $ROLE_
# (if set).
slot_worker_teardown() {
	lg_teardown
	sql "SET client_min_messages = warning;
	     DROP TABLE IF EXISTS $T CASCADE" >/dev/null
	if [ -n "${ROLE_:-}" ]; then
		sql "SET client_min_messages = warning; DROP OWNED BY $ROLE_;
		     DROP ROLE $ROLE_" >/dev/null
	fi
}

# both_workers [CAPTURE ARGS]: the trigger route, $T captured into PgQ
# queue $Q for exchange $EX (more mikkoo.capture() arguments after
# those) and relayed by a PgQ worker (daemon relayq) to queue $MQC; and
# the slot worker $W (slot_config, relay_start), its slot made.
both_workers() {
	pgq_create_queue "$Q"
	sql "SELECT pgq.register_consumer('$Q', 'mikkoo');
	     SELECT mikkoo.capture('$T', '$Q', '$EX'${1:+, $1})" >/dev/null
	MQC="mqc_$N"
	mq declare-exchange "$EX" --type topic
	mq declare-queue "$MQC" --bind "$EX:#"
	CONSUMER=mikkoo
	write_config "$BATS_TEST_TMPDIR/pgq.yml"
	daemon_start relayq mikkoo-relay -c "$BATS_TEST_TMPDIR/pgq.yml"
	slot_config
	relay_start
	grep -q "created replication slot '$SLOT'" "$BATS_TEST_TMPDIR/relay.err"
}
