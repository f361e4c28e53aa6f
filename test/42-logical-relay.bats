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
	slot_worker_setup
}

teardown() {
	oracle_teardown
	if ! exec 9<>"/dev/tcp/127.0.0.1/$AMQP_PORT" 2>/dev/null; then
		"$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-start || true
	else
		exec 9<&- 9>&-
	fi
	slot_worker_teardown
}

# A table of several kinds of value, REPLICA IDENTITY FULL, in $PUB.
slot_table() {
	sql "CREATE TABLE $T (id int PRIMARY KEY, n numeric, t text,
	         j jsonb, b bool, ts timestamptz, ia int[]);
	     ALTER TABLE $T REPLICA IDENTITY FULL;
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
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
	both_workers
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

@test "a transaction of 200 000 rows through the relay: all of it delivered and confirmed, in the relay's memory for a small one" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, t text);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	MQ=$MQS
	slot_config
	# ASan keeps freed memory in quarantine (256 MB): a small one, so
	# that RSS shows what the relay holds
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=16" relay_start
	sql "INSERT INTO $T SELECT g, 'row ' || g FROM generate_series(1, 10000) g" >/dev/null
	wait_for 120 mq_count_ge 10000
	small=$(awk '/^VmHWM/ { print $2 }' "/proc/$(daemon_pid relay)/status")
	before_commit=$(sql "BEGIN;
		INSERT INTO $T SELECT g, 'row ' || g FROM generate_series(10001, 210000) g;
		SELECT pg_current_wal_insert_lsn(); COMMIT" | tail -1)
	wait_for 600 mq_count_ge 210000
	big=$(awk '/^VmHWM/ { print $2 }' "/proc/$(daemon_pid relay)/status")
	wait_for 30 slot_confirmed_past "$before_commit"
	relay_stop
	echo "# relay peak RSS: $small kB after 10 000 rows, $big kB after 200 000 more in one transaction" >&3
	# every row once (no restart: no duplicate either)
	assert_equal "$(mq count "$MQ")" 210000
	# twenty times the rows, not the memory (two batches of 1000 rows
	# are well under 32 MB)
	[ "$big" -lt $((small + 32768)) ]
}

@test "mikkoo.emit is transactional: a rolled-back transaction or savepoint sends nothing; events of other streams are left alone" {
	slot_config "publication: mikkoo_emit" "exchange: $EXS"
	relay_start
	sql "BEGIN; SELECT mikkoo.emit('$STREAM', 'rk.gone', 'rolled back', '$EXS', NULL, NULL, NULL);
	     ROLLBACK;
	     BEGIN; SELECT mikkoo.emit('$STREAM', 'rk.sp', 'savepoint', '$EXS', NULL, NULL, NULL);
	     SAVEPOINT a;
	     SELECT mikkoo.emit('$STREAM', 'rk.gone', 'rolled back to a savepoint', '$EXS', NULL, NULL, NULL);
	     ROLLBACK TO SAVEPOINT a; COMMIT;
	     SELECT mikkoo.emit('other_$N', 'rk.other', 'another stream', '$EXS', NULL, NULL, NULL);
	     SELECT mikkoo.emit('$STREAM', 'rk.last', 'committed', '$EXS', 'text/plain', NULL, '{\"h\": 1}')" >/dev/null
	get_messages_from "$MQS" 2
	jq -s -e 'map(.routing_key) == ["rk.sp", "rk.last"] and
		.[1].body == "committed" and .[1].properties.content_type == "text/plain" and
		.[1].properties.headers.h == 1' "$BATS_TEST_TMPDIR/msgs.jsonl"
	sleep 1
	[ "$(mq count "$MQS")" -eq 0 ]
}

@test "a quiet slot worker keeps its RabbitMQ connection: heartbeats are served between reads of the slot" {
	slot_config "publication: mikkoo_emit" "exchange: $EXS"
	sed -i "s|rabbitmq_url: .*|rabbitmq_url: $MIKKOO_AMQP_URL?heartbeat=1|" "$CONF"
	relay_start
	# several heartbeats with nothing to relay (it used to lose the
	# connection here and find out at the next publish)
	sleep 6
	sql "SELECT mikkoo.emit('$STREAM', 'rk.quiet', 'after a quiet spell', '$EXS', NULL, NULL, NULL)" >/dev/null
	get_messages_from "$MQS" 1
	relay_stop
	run cat "$BATS_TEST_TMPDIR/relay.err"
	refute_output --partial "socket error"
	refute_output --partial "connection lost"
	assert_output --partial "reconnects=0"
}

get_messages_from() {
	mq get "$1" --count "$2" --timeout "${3:-20}" >"$BATS_TEST_TMPDIR/msgs.jsonl"
}

@test "a forged message and an unpublishable event become dead letters (the latter after max_failures retries); the line goes on and the slot moves past them" {
	slot_config "publication: mikkoo_emit" "exchange: $EXS"
	relay_start
	fake="0123456789abcdef0123456789abcdef${#STREAM}:${STREAM}6:forged1:x-----"
	sql "SELECT pg_logical_emit_message(true, 'mikkoo.emit', '$fake')" >/dev/null
	sql "SELECT mikkoo.emit('$STREAM', 'rk.nowhere', 'to a missing exchange', 'missing_$N', NULL, NULL, NULL)" >/dev/null
	sql "SELECT mikkoo.emit('$STREAM', 'rk.after', 'after them', '$EXS', NULL, NULL, NULL)" >/dev/null
	get_messages_from "$MQS" 1
	jq -e '.routing_key == "rk.after"' "$BATS_TEST_TMPDIR/msgs.jsonl"
	Q=$W
	wait_for 30 dead_count_is 2
	sql "SELECT consumer, ev_retry, ev_type, reason FROM mikkoo.dead_letter
	     WHERE queue = '$W' ORDER BY ev_id" >"$BATS_TEST_TMPDIR/dead"
	cat "$BATS_TEST_TMPDIR/dead"
	# the forged one at once, never retried; the other after 2 retries
	sed -n 1p "$BATS_TEST_TMPDIR/dead" | grep -E "^$SLOT\|0\|\|forged: "
	# what the forger wrote is kept (less the place of the key)
	[ "$(sql "SELECT ev_data FROM mikkoo.dead_letter WHERE queue = '$W' AND ev_type IS NULL")" \
		= "${fake:32}" ]
	sed -n 2p "$BATS_TEST_TMPDIR/dead" | grep -E "^$SLOT\|2\|rk.nowhere\|exchange 'missing_$N' cannot be published to.*attempt 3, max_failures 2"
	grep -q "retry 1 of 2" "$BATS_TEST_TMPDIR/relay.err"
	grep -q "retry 2 of 2" "$BATS_TEST_TMPDIR/relay.err"
	# the key is in no dead letter
	key=$(sql "SELECT key FROM mikkoo.emit_key")
	! grep -qF "$key" "$BATS_TEST_TMPDIR/dead"
	# the slot's position is past both: a restart sends nothing again
	relay_stop
	relay_start
	sleep 2
	[ "$(mq count "$MQS")" -eq 0 ]
	[ "$(dead_count)" -eq 2 ]
	# mikkoo-replay --emit puts the undeliverable one back through
	# mikkoo.emit(): once its exchange exists it arrives as it was
	mq declare-exchange "missing_$N" --type topic
	mq declare-queue "mqm_$N" --bind "missing_$N:#"
	id=$(sql "SELECT id FROM mikkoo.dead_letter WHERE queue = '$W' AND ev_type = 'rk.nowhere'")
	run -0 --separate-stderr mikkoo-replay --emit "$STREAM" --id "$id"
	echo "$output"
	echo "$output" | jq -e --argjson id "$id" --arg s "$STREAM" \
		'.id == $id and .stream == $s and .ev_id > .old_ev_id'
	get_messages_from "mqm_$N" 1
	jq -e '.routing_key == "rk.nowhere" and .body == "to a missing exchange"' \
		"$BATS_TEST_TMPDIR/msgs.jsonl"
	[ "$(dead_count)" -eq 1 ]
	mq delete-queue "mqm_$N"
	mq delete-exchange "missing_$N"
}

@test "a dropped slot is refused (exit 78) naming the slot and the last position relayed; never created anew" {
	slot_config "publication: mikkoo_emit" "exchange: $EXS"
	relay_start
	sql "SELECT mikkoo.emit('$STREAM', 'rk.one', 'x', '$EXS', NULL, NULL, NULL)" >/dev/null
	get_messages_from "$MQS" 1
	relay_stop
	last=$(sql "SELECT last_lsn FROM mikkoo.slots WHERE slot_name = '$SLOT'")
	[ -n "$last" ]
	wait_for 10 slot_inactive
	sql "SELECT pg_drop_replication_slot('$SLOT')" >/dev/null
	run -78 timeout 60 mikkoo-relay -c "$CONF"
	echo "$output"
	assert_output --partial "replication slot '$SLOT' is gone"
	assert_output --partial "$last"
	# no loop: one refusal, and no new slot
	[ "$(grep -c "is gone" <<<"$output")" -le 2 ]
	[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = 0 ]
	refute_output --regexp "(AddressSanitizer|runtime error)"
}

@test "configuration errors of a slot worker: a missing publication (78), no REPLICATION right (77), at once" {
	slot_config "publication: nope_$N"
	run -78 timeout 60 mikkoo-relay -c "$CONF"
	echo "$output"
	assert_output --partial "publication 'nope_$N' does not exist"
	[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = 0 ]
	ROLE_="r_$N"
	sql "CREATE ROLE $ROLE_ LOGIN PASSWORD 'pw'; GRANT USAGE ON SCHEMA mikkoo TO $ROLE_;
	     GRANT SELECT ON mikkoo.emit_key TO $ROLE_" >/dev/null
	url="${MIKKOO_PG_URL/\/\/mikkoo:*@/\/\/$ROLE_:pw@}"
	sed -i "s|postgres_url: .*|postgres_url: $url|; s|publication: .*|publication: mikkoo_emit|" "$CONF"
	run -77 timeout 60 mikkoo-relay -c "$CONF"
	echo "$output"
	assert_output --partial "must be superuser or replication role"
	refute_output --regexp "(AddressSanitizer|runtime error)"
}

# ---- the oracle (helpers/oracle): numbered, audited events written
# with mikkoo.emit() by four producers, a fault, then every committed
# event checked: lost 0, unexpected 0, first deliveries in commit order.

# slot_oracle: a worker relaying only stream $STREAM, the confirming
# queue $AQ bound to all of $EX.
slot_oracle() {
	FAULT_SEED=${FAULT_SEED:-$((7919 * ${BATS_TEST_NUMBER:-1}))}
	RANDOM=$FAULT_SEED
	echo "# fault timing seed $FAULT_SEED" >&3
	EX="ex_$N"
	AQ="oracle_$N"
	mq declare-exchange "$EX" --type topic
	mq declare-queue "$AQ" --bind "$EX:#"
	slot_config "publication: mikkoo_emit" "exchange: $EX" "max_failures: 1000"
}

slot_produce() {
	oracle produce --queue "$W" --exchange "$EX" --emit "$STREAM" \
		--producers 4 --events "${1:-300}" --duration "${2:-8}" \
		>"$BATS_TEST_TMPDIR/produce.out" 2>"$BATS_TEST_TMPDIR/produce.err" 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/producer.pid"
}

# slot_finish [CHECK OPTIONS]: wait for the producers and for the slot
# to be confirmed past their last commit, stop the relay, judge.
slot_finish() {
	wait "$(cat "$BATS_TEST_TMPDIR/producer.pid")" ||
		fail "producer failed: $(cat "$BATS_TEST_TMPDIR/produce.err")"
	local lsn
	# The insert position, not pg_current_wal_lsn() (the write
	# position): with synchronous_commit off the last commits may still
	# be in WAL buffers, below no write position yet, and a slot
	# confirmed past the write position has not had them (they were
	# never lost: the next start would relay them, but this run would
	# stop first and count them lost).
	lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
	wait_for 120 slot_confirmed_past "$lsn"
	relay_stop
	run oracle check --queue "$W" --amqp-queue "$AQ" "$@"
	echo "# oracle: $output (producers: $(cat "$BATS_TEST_TMPDIR/produce.out"))" >&3
	assert_success
	echo "$output" | jq -e '.lost == 0 and .unexpected == 0 and .order == 0 and .committed > 0'
}

@test "oracle, no fault: no loss, no duplicate, commit order" {
	slot_oracle
	relay_start
	slot_produce 200 5
	slot_finish --no-dups
}

@test "oracle: the slot worker SIGKILLed at random moments (4x): duplicates, never a gap, commit order" {
	slot_oracle
	relay_start
	slot_produce 300 10
	kill_worker() {
		local w
		w=$(pgrep -P "$(daemon_pid relay)") || return 0
		kill -KILL "$w"
		wait_for 20 pgrep -P "$(daemon_pid relay)"
	}
	at_random_moments 4 kill_worker
	slot_finish
	run grep -c "killed by signal 9: restarting" "$BATS_TEST_TMPDIR/relay.err"
	[ "$output" -ge 1 ]
}

@test "oracle: killed before a batch's finish (confirmed, not yet settled in the slot): sent again, nothing lost" {
	grep -q MIKKOO_FAULT "$(command -v mikkoo-relay)" ||
		skip "this build has no fault points (make check-asan has)"
	slot_oracle
	MIKKOO_FAULT=before_finish:3 MIKKOO_FAULT_ONCE="$BATS_TEST_TMPDIR/fault.before_finish" \
		relay_start
	slot_produce 150 4
	wait_for 30 test -e "$BATS_TEST_TMPDIR/fault.before_finish"
	slot_finish
	echo "$output" | jq -e '.dup > 0'
}

@test "oracle: RabbitMQ restarted (stop_app/start_app, 2x) under a slot worker" {
	slot_oracle
	relay_start
	slot_produce 300 10
	at_random_moments 2 "$MIKKOO_TOP/test/servers/ctl" "$MIKKOO_SRV_DIR" rabbitmq-restart-app
	slot_finish
	grep -q "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
}

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

http_get() {
	curl -s -m 5 -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' \
		"http://127.0.0.1:$PORT$1"
}

retained_metric() {
	http_get /metrics >/dev/null
	awk -v n="mikkoo_slot_retained_bytes{queue=\"$W\"}" \
		'index($0, n) == 1 { print $2; exit }' "$BATS_TEST_TMPDIR/body"
}

has_retained_metric() {
	[ -n "$(retained_metric)" ]
}

health_is() {
	[ "$(http_get /health)" = "$1" ]
}

@test "operators see the slot: mikkoo-inspect slots, mikkoo_slot_retained_bytes, /health over health_max_retained_wal, a slot worker's dead letters" {
	PORT=$(free_port)
	slot_config "publication: mikkoo_emit" "exchange: $EXS"
	sed -i "s/^Application:/Application:\n  metrics:\n    listen: 127.0.0.1:$PORT\n    health_max_retained_wal: 1000000000/" "$CONF"
	relay_start
	sql "SELECT mikkoo.emit('$STREAM', 'rk.one', 'x', '$EXS', NULL, NULL, NULL)" >/dev/null
	get_messages_from "$MQS" 1
	run -0 mikkoo-inspect -c "$CONF" slots
	echo "$output"
	echo "$output" | jq -e -s --arg s "$SLOT" --arg w "$W" '
		map(select(.slot == $s)) | length == 1 and (.[0] |
		.worker == $w and .active == true and
		(.confirmed_lsn | test("^[0-9A-F]+/[0-9A-F]+$")) and
		(.retained_bytes | type == "number" and . >= 0) and
		(.lag | type == "number") and .gone == false)'
	wait_for 20 has_retained_metric
	echo "# mikkoo_slot_retained_bytes: $(retained_metric)" >&3
	wait_for 20 health_is 200
	jq -e --arg w "$W" '[.. | objects | select(.queue? == $w)][0]
		| .ok == true and (.retained_wal_bytes | type == "number")' \
		"$BATS_TEST_TMPDIR/body"
	relay_stop
	# one byte: the slot always holds more
	sed -i "s/health_max_retained_wal: .*/health_max_retained_wal: 1/" "$CONF"
	relay_start
	wait_for 30 health_is 503
	cat "$BATS_TEST_TMPDIR/body"
	grep -q "over health_max_retained_wal 1" "$BATS_TEST_TMPDIR/body"
	# a forged message's dead letter, shown by the same tool
	fake="0123456789abcdef0123456789abcdef${#STREAM}:${STREAM}6:forged1:x-----"
	sql "SELECT pg_logical_emit_message(true, 'mikkoo.emit', '$fake')" >/dev/null
	Q=$W
	wait_for 30 dead_count_is 1
	run -0 mikkoo-inspect -c "$CONF" dead -q "$W"
	echo "$output" | jq -e -s --arg w "$W" --arg s "$SLOT" \
		'length == 1 and .[0].queue == $w and .[0].consumer == $s and
		 (.[0].reason | startswith("forged: "))'
	relay_stop
	run -0 mikkoo-inspect -c "$CONF" slots
	echo "$output" | jq -e -s --arg s "$SLOT" 'map(select(.slot == $s))[0].active == false'
}

@test "warnings at start: a published table without REPLICA IDENTITY FULL, and one without any identity" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, t text);
	     CREATE TABLE ${T}_nokey (t text);
	     CREATE PUBLICATION $PUB FOR TABLE $T, ${T}_nokey" >/dev/null
	defer sql "DROP TABLE IF EXISTS ${T}_nokey"
	slot_config
	relay_start
	grep -F "table $T is not REPLICA IDENTITY FULL" "$BATS_TEST_TMPDIR/relay.err"
	grep -F "table ${T}_nokey has no replica identity" "$BATS_TEST_TMPDIR/relay.err"
	# and what arrives is what mikkoo-logical(7) says: old holds the
	# key only, an update's diff what old does not hold alike
	sql "INSERT INTO $T VALUES (1, 'a'); UPDATE $T SET t = 'b'; DELETE FROM $T" >/dev/null
	get_messages_from "$MQS" 3
	jq -c '.body | fromjson | del(.recorded_at)' "$BATS_TEST_TMPDIR/msgs.jsonl"
	jq -s -e 'map(.body | fromjson) | map(.old) == [{}, {"id": 1}, {"id": 1}] and
		.[1].diff == {"t": "b"} and .[1].new == {"id": 1, "t": "b"}' \
		"$BATS_TEST_TMPDIR/msgs.jsonl"
}

@test "a second relay on the same slot waits for the first, then takes over; SIGHUP reopens the slot where it was" {
	slot_config "publication: mikkoo_emit" "exchange: $EXS"
	relay_start
	daemon_start second mikkoo-relay -c "$CONF"
	wait_for 20 grep -q "waiting for it to stop" "$BATS_TEST_TMPDIR/second.err"
	sql "SELECT mikkoo.emit('$STREAM', 'rk.1', 'one', '$EXS', NULL, NULL, NULL)" >/dev/null
	get_messages_from "$MQS" 1
	relay_stop
	[ "$daemon_status" -eq 0 ]
	sql "SELECT mikkoo.emit('$STREAM', 'rk.2', 'two', '$EXS', NULL, NULL, NULL)" >/dev/null
	get_messages_from "$MQS" 1 30
	jq -e '.routing_key == "rk.2"' "$BATS_TEST_TMPDIR/msgs.jsonl"
	kill -HUP "$(daemon_pid second)"
	wait_for 20 grep -q "configuration reloaded" "$BATS_TEST_TMPDIR/second.err"
	sql "SELECT mikkoo.emit('$STREAM', 'rk.3', 'three', '$EXS', NULL, NULL, NULL)" >/dev/null
	get_messages_from "$MQS" 1 30
	jq -e '.routing_key == "rk.3"' "$BATS_TEST_TMPDIR/msgs.jsonl"
	sleep 1
	[ "$(mq count "$MQS")" -eq 0 ]
	daemon_stop second
	[ "$daemon_status" -eq 0 ]
}
