#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts RabbitMQ under a slot worker
# mikkoo-relay workers whose source is a replication slot (source:
# logical), end to end against the real servers: the messages equal
# what the trigger route (mikkoo.capture, pgq.insert_event) sends for the
# same seeded workload, mikkoo.emit() is transactional, nothing is lost
# through a SIGKILL or a RabbitMQ restart (the oracle), forged messages
# become dead letters, and the refusals (a dropped slot, a missing
# publication, no REPLICATION right) are permanent exit statuses.

load helpers/common
load helpers/relay
load helpers/logical
load helpers/oracle

setup_file() {
	install_schema
}

setup() {
	lg_setup
	W="w_$N"
	STREAM="st_$N"
	EXS="exs_$N"
	MQS="mqs_$N"
	mq declare-exchange "$EXS" --type topic
	mq declare-queue "$MQS" --bind "$EXS:#"
	CONF="$BATS_TEST_TMPDIR/mikkoo.yml"
}

teardown() {
	oracle_teardown
	if ! exec 9<>"/dev/tcp/127.0.0.1/$AMQP_PORT" 2>/dev/null; then
		"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-start || true
	else
		exec 9<&- 9>&-
	fi
	lg_teardown
	sql "SET client_min_messages = warning;
	     DROP TABLE IF EXISTS $T CASCADE" >/dev/null
	if [ -n "${ROLE_:-}" ]; then
		sql "SET client_min_messages = warning; DROP OWNED BY $ROLE_;
		     DROP ROLE $ROLE_" >/dev/null
	fi
}

# slot_config [KEY: VALUE...]: a one-worker config, worker $W reading
# slot $SLOT (publication $PUB, stream $STREAM) into $EXS.
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

# A table of several kinds of value, REPLICA IDENTITY FULL, in $PUB.
slot_table() {
	sql "CREATE TABLE $T (id int PRIMARY KEY, n numeric, t text,
	         j jsonb, b bool, ts timestamptz, ia int[]);
	     ALTER TABLE $T REPLICA IDENTITY FULL;
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
}

# Messages as both routes must agree on them: what differs by nature
# (exchange, the per-publish ids, the WAL position, times) left out.
same_shape() {
	jq -c '{routing_key, body: (.body | sub(",\"recorded_at\":\"[^\"]*\"}$"; "}")),
	        props: (.properties | del(.correlation_id, .timestamp)
	               | .headers |= del(.sequence, .event_id, .lsn, .timestamp, .origin)),
	        header_types: (.header_types | del(.lsn))}'
}

relay_exit_status() {
	local pid
	pid=$(daemon_pid relay)
	wait_for 30 _gone "$pid"
	daemon_status=0
	wait "$pid" 2>/dev/null || daemon_status=$?
	rm -f "$BATS_TEST_TMPDIR/relay.pid"
	assert_no_sanitizer_report "$BATS_TEST_TMPDIR/relay.err"
}

# workload SEED FILE: a seeded random mix of transactions on $T and of
# events written both ways (pgq.insert_event into $Q for $EX, and
# mikkoo.emit into $STREAM for $EXS, in the same transaction), with
# rolled-back ones and a TRUNCATE, as one psql script.
workload() {
	local i id tx r k
	RANDOM=$1
	{
		echo "SET TimeZone = 'UTC';"
		for i in $(seq 80); do
			r=$((RANDOM % 100))
			tx=COMMIT
			[ $((RANDOM % 10)) -eq 0 ] && tx=ROLLBACK
			echo "BEGIN;"
			k=$((RANDOM % 3 + 1)) # here: a subshell's RANDOM is its own
			for _ in $(seq "$k"); do
				id=$((RANDOM % 12 + 1))
				case $((RANDOM % 6)) in
				0 | 1)
					echo "INSERT INTO $T SELECT $id, $RANDOM.$((RANDOM % 100))0,
					      'row $id \"q\" ✓', '{\"k\": [$i, 2.50, null]}', $((RANDOM % 2))::bool,
					      '2026-12-06 13:00:0$((RANDOM % 10)).123456+02', '{$i,NULL,3}'
					      WHERE NOT EXISTS (SELECT 1 FROM $T WHERE id = $id);" ;;
				2)
					echo "UPDATE $T SET n = n + 1.5, t = t || '.', j = jsonb_set(j, '{u}', '$i')
					      WHERE id = $id;" ;;
				3)
					echo "UPDATE $T SET b = b WHERE id = $id;" ;;   # no change: both skip
				4)
					echo "DELETE FROM $T WHERE id = $id;" ;;
				5)
					echo "SELECT pgq.insert_event('$Q', 'ev.$id', '{\"i\": $i, \"r\": $r}', '$EX',
					        'application/json', '{\"type\": \"t$id\"}', '{\"h\": $i}');
					      SELECT mikkoo.emit('$STREAM', 'ev.$id', '{\"i\": $i, \"r\": $r}', '$EXS',
					        'application/json', '{\"type\": \"t$id\"}', '{\"h\": $i}');" ;;
				esac
			done
			echo "$tx;"
			if [ "$i" -eq 50 ]; then
				echo "TRUNCATE $T;"
			fi
		done
	} >"$2"
}

@test "a seeded workload: the slot worker's messages equal the trigger route's, message by message" {
	slot_table
	pgq_create_queue "$Q"
	sql "SELECT pgq.register_consumer('$Q', 'mikkoo');
	     SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	MQC="mqc_$N"
	mq declare-exchange "$EX" --type topic
	mq declare-queue "$MQC" --bind "$EX:#"
	# the trigger route: a PgQ worker for $Q
	CONSUMER=mikkoo
	write_config "$BATS_TEST_TMPDIR/pgq.yml"
	daemon_start relayq mikkoo-relay -c "$BATS_TEST_TMPDIR/pgq.yml"
	slot_config
	relay_start
	grep -q "created replication slot '$SLOT'" "$BATS_TEST_TMPDIR/relay.err"
	seed=${WORKLOAD_SEED:-4242}
	echo "# workload seed $seed" >&3
	workload "$seed" "$BATS_TEST_TMPDIR/workload.sql"
	psql -qXAt -v ON_ERROR_STOP=1 -f "$BATS_TEST_TMPDIR/workload.sql" >/dev/null
	n=$(pgq_events | wc -l)
	echo "# $n events on each route" >&3
	[ "$n" -ge 40 ]
	mq get "$MQC" --count "$n" --timeout 30 >"$BATS_TEST_TMPDIR/capture.jsonl"
	mq get "$MQS" --count "$n" --timeout 30 >"$BATS_TEST_TMPDIR/slot.jsonl"
	same_shape <"$BATS_TEST_TMPDIR/capture.jsonl" >"$BATS_TEST_TMPDIR/capture.shape"
	same_shape <"$BATS_TEST_TMPDIR/slot.jsonl" >"$BATS_TEST_TMPDIR/slot.shape"
	diff -u "$BATS_TEST_TMPDIR/capture.shape" "$BATS_TEST_TMPDIR/slot.shape"
	# every kind came: I U D T and events
	jq -r '.properties.headers.action // "event"' "$BATS_TEST_TMPDIR/slot.jsonl" |
		sort | uniq -c | tr '\n' ' ' | sed 's/^/# /' >&3
	echo >&3
	for a in I U D T; do
		jq -s -e --arg a "$a" 'any(.[]; .properties.headers.action == $a)' \
			"$BATS_TEST_TMPDIR/slot.jsonl"
	done
	jq -s -e 'any(.[]; .routing_key | startswith("ev."))' "$BATS_TEST_TMPDIR/slot.jsonl"
	# event_id grows with the WAL position; lsn is where the record is
	jq -s -e 'map(.properties.headers.event_id) | . == sort and (unique | length) == length' \
		"$BATS_TEST_TMPDIR/slot.jsonl"
	jq -e -s 'all(.properties.headers.lsn | test("^[0-9A-F]+/[0-9A-F]+$"))' \
		"$BATS_TEST_TMPDIR/slot.jsonl"
	# the commit times, in UTC
	jq -e -s 'all(.properties.headers.timestamp | test("^2[0-9-]+T[0-9:.]+\\+00:00$"))' \
		"$BATS_TEST_TMPDIR/slot.jsonl"
	# and nothing more (the rolled-back transactions sent nothing)
	sleep 1
	[ "$(mq count "$MQS")" -eq 0 ]
	[ "$(mq count "$MQC")" -eq 0 ]
	daemon_stop relayq
	relay_stop
	[ "$daemon_status" -eq 0 ]
	# the slot's position was recorded at the stop
	[ "$(sql "SELECT last_lsn >= (SELECT confirmed_flush_lsn FROM pg_replication_slots
	          WHERE slot_name = '$SLOT') FROM mikkoo.slots WHERE slot_name = '$SLOT'")" = t ]
}
