#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# CALL mikkoo.slot_snapshot(): a published table's rows as R messages of
# a slot worker, written with mikkoo.emit() in chunks, consistent with
# concurrent writers: the messages are mikkoo.snapshot()'s, and applied
# in delivery order per id they make the table.

load helpers/common
load helpers/relay
load helpers/logical
load helpers/snapshot

setup_file() {
	install_schema
}

setup() {
	slot_worker_setup
	MQ=$MQS
	ROLE_=
}

teardown() {
	[ -n "${WRITERS:-}" ] && kill $WRITERS 2>/dev/null
	common_teardown
	slot_worker_teardown
}

# snap_call [ARGS]: CALL mikkoo.slot_snapshot() of $T for the worker's
# publication, stream and exchange, more arguments after those.
snap_call() {
	echo "CALL mikkoo.slot_snapshot('$T', '$PUB', '$STREAM', '$EXS'${1:+, $1})"
}

@test "the R messages equal mikkoo.snapshot()'s, message by message: the publication's column list, UTC whatever the caller's TimeZone, a transaction per chunk" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, n numeric, t text, j jsonb,
	         b bool, ts timestamptz, ia int[], secret text);
	     INSERT INTO $T SELECT g, g * 1.50, 'row ' || g || ' \"q\" ✓',
	         jsonb_build_object('k', jsonb_build_array(g, 2.50, null)),
	         g % 2 = 0, '2026-12-06 13:00:00.123456+02'::timestamptz + g * interval '1 day',
	         ARRAY[g, NULL, 3], 's'
	     FROM generate_series(12, 1, -1) g;
	     INSERT INTO $T (id) VALUES (13);
	     CREATE PUBLICATION $PUB FOR TABLE $T (id, n, t, j, b, ts, ia)" >/dev/null
	# both routes: the table captured without the column the publication
	# leaves out; the slot worker's slot made before the snapshot (see the
	# man page)
	both_workers "exclude => '{secret}'"
	PGTZ=UTC run -0 sql "CALL mikkoo.snapshot('$T', '$Q', 5)"
	PGTZ=Asia/Tokyo run -0 --separate-stderr sql "$(snap_call "chunk => 5")"
	assert_equal "$stderr" ""
	mq get "$MQC" --count 13 --timeout 30 >"$BATS_TEST_TMPDIR/capture.jsonl"
	mq get "$MQ" --count 13 --timeout 30 >"$BATS_TEST_TMPDIR/slot.jsonl"
	# (txid: the snapshots ran in transactions of their own)
	same_shape <"$BATS_TEST_TMPDIR/capture.jsonl" | jq -c 'del(.props.headers.txid)' \
		>"$BATS_TEST_TMPDIR/capture.shape"
	same_shape <"$BATS_TEST_TMPDIR/slot.jsonl" | jq -c 'del(.props.headers.txid)' \
		>"$BATS_TEST_TMPDIR/slot.shape"
	diff -u "$BATS_TEST_TMPDIR/capture.shape" "$BATS_TEST_TMPDIR/slot.shape"
	# what they hold: R, in key order, the published columns, UTC
	jq -s -e --arg ex "$EXS" --arg t "${T#public.}" '
		map(.body | fromjson) as $b |
		all(.[]; .exchange == $ex and .routing_key == "public." + $t and
		    .properties.headers.action == "R") and
		($b | map(.id)) == [range(1; 14)] and
		all($b[]; .action == "R" and .old == {} and (.new | has("secret") | not)) and
		$b[0].new == {"id": 1, "n": 1.50, "t": "row 1 \"q\" ✓", "j": {"k": [1, 2.50, null]},
		              "b": false, "ts": "2026-12-07T11:00:00.123456+00:00", "ia": [1, null, 3]} and
		$b[12].diff == {"id": 13}' "$BATS_TEST_TMPDIR/slot.jsonl"
	# the slot's headers: event_id growing, a txid per chunk of 5 rows
	jq -s -e 'map(.properties.headers.event_id) | . == sort and (unique | length) == 13' \
		"$BATS_TEST_TMPDIR/slot.jsonl"
	jq -s -e 'map(.properties.headers.txid) | unique | length == 3' \
		"$BATS_TEST_TMPDIR/slot.jsonl"
	# nothing more
	sleep 1
	[ "$(mq count "$MQ")" -eq 0 ]
	daemon_stop relayq
	relay_stop
}

# changes_at_least N: whether $T's statistics count N changes.
changes_at_least() {
	[ "$(sql "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) >= $1
	          FROM pg_stat_user_tables WHERE relid = '$T'::regclass")" = t ]
}

# under_writers [FILTER]: $T of 20 000 rows in $PUB (with the row filter
# FILTER, and REPLICA IDENTITY FULL, which a filter on a column not in
# the key needs), the slot worker relaying, three seeded writers at work
# before, during and after a snapshot in chunks of 500; then every
# message the slot held in msgs, in delivery order.
under_writers() {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int, s text);
	     INSERT INTO $T SELECT g, g, md5(g::text) FROM generate_series(1, 20000) g;
	     CREATE PUBLICATION $PUB FOR TABLE $T${1:+ WHERE ($1)}" >/dev/null
	[ -z "${1:-}" ] || sql "ALTER TABLE $T REPLICA IDENTITY FULL" >/dev/null
	slot_config
	relay_start
	seed=${MIKKOO_SEED:-$((RANDOM * 32768 + RANDOM))}
	echo "# writers' seed: $seed (MIKKOO_SEED)" >&3
	start_writers "$seed"
	# the writers are at work before the snapshot starts...
	base=$(sql "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)
	            FROM pg_stat_user_tables WHERE relid = '$T'::regclass")
	wait_for 60 changes_at_least $((base + 200))
	run -0 --separate-stderr sql "$(snap_call "chunk => 500")"
	echo "# snapshot chunks read again after a deadlock: $(grep -c deadlock <<<"$stderr")" >&3
	# ...and after it ended
	base=$(sql "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)
	            FROM pg_stat_user_tables WHERE relid = '$T'::regclass")
	wait_for 60 changes_at_least $((base + 200))
	stop_writers
	echo "# writers' transactions lost to a deadlock: $(grep -c 'deadlock detected' "$BATS_TEST_TMPDIR/writers.err")" >&3
	# everything the slot holds was relayed and confirmed
	lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
	wait_for 300 slot_confirmed_past "$lsn"
	relay_stop
	total=$(mq count "$MQ")
	echo "# $total messages" >&3
	get_messages "$total" 300
	# every message once
	assert_equal "$(msgs | jq -s 'map(.properties.headers.event_id) | unique | length')" "$total"
	msgs | jq -s -r 'map(select(.properties.headers.action == "R")) |
		"# \(length) R messages in \(group_by(.properties.headers.txid) | length) transactions, the largest \(group_by(.properties.headers.txid) | map(length) | max)"' >&3
}

@test "the snapshot under concurrent random writers (MIKKOO_SEED): the messages, applied per id in delivery order, make the table" {
	under_writers
	# applied in delivery order per id, they make the table
	msgs | assert_applied_is_table
	[ "$(jq 'length' "$BATS_TEST_TMPDIR/table")" -gt 15000 ]
	# R messages: at least 30 chunks, each its own transaction of about
	# 500 (a chunk is the rows up to a bound key read first: a writer
	# may insert keys below it before the rows are locked, a few more)
	msgs | jq -s -e 'map(select(.properties.headers.action == "R")) |
		(length >= 15000) and
		(group_by(.properties.headers.txid) | length >= 30 and all(length <= 550))'
	# the writers' changes interleave with the snapshot's
	msgs | jq -s -e 'to_entries | map(select(.value.properties.headers.action == "R") | .key) as $r |
		[.[] | select(.value.properties.headers.action != "R" and
		              .key > ($r | min) and .key < ($r | max))] | length > 0'
}

@test "a row filter under concurrent random writers (MIKKOO_SEED) moving rows in and out of it: the messages, applied per id in delivery order, make the filtered table" {
	local cond="v % 2 = 0"
	under_writers "$cond"
	msgs | assert_applied_is_table "$cond"
	[ "$(jq 'length' "$BATS_TEST_TMPDIR/table")" -gt 5000 ]
	# the snapshot sent only rows the filter passed, in chunks of about
	# 500 keys (about half of them pass)
	msgs | jq -s -e 'map(select(.properties.headers.action == "R")) |
		(length >= 5000) and all(.[]; (.body | fromjson | .new.v) % 2 == 0) and
		(group_by(.properties.headers.txid) | length >= 30 and all(length <= 550))'
	# rows entered and left the filter while it ran: inserts and deletes
	# of rows the table kept
	msgs | jq -s -e '[.[] | .properties.headers.action] | (index("I") != null) and (index("D") != null)'
}

@test "a deadlock with a writer: the slot snapshot reads the chunk again, after the writer's changes" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int);
	     INSERT INTO $T SELECT g, g FROM generate_series(1, 30) g;
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_config
	relay_start
	snapshot_deadlock "$(snap_call "chunk => 10")"
	grep -F "NOTICE:  mikkoo.slot_snapshot: deadlock with a writer, reading the chunk again" \
		"$BATS_TEST_TMPDIR/snap.err"
	get_messages 32 30
	msgs | assert_deadlock_order
}

@test "a publication's row filter: the snapshot sends the rows it passes; with the stream's changes (rows moving in and out) they make the filtered table" {
	local cond="v % 2 = 0 AND s <> 'r4'"
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int, s text);
	     ALTER TABLE $T REPLICA IDENTITY FULL;
	     INSERT INTO $T SELECT g, g, 'r' || g FROM generate_series(1, 20) g;
	     CREATE PUBLICATION $PUB FOR TABLE $T WHERE ($cond)" >/dev/null
	slot_config
	relay_start
	run -0 sql "$(snap_call "chunk => 3")"
	# 3 enters the filter, 6 leaves it, 5 stays out, 8 stays in
	sql "UPDATE $T SET v = v + 1 WHERE id IN (3, 6);
	     UPDATE $T SET s = 'x' WHERE id IN (5, 8);
	     DELETE FROM $T WHERE id IN (10, 11);
	     INSERT INTO $T VALUES (21, 22, 'n'), (23, 23, 'n')" >/dev/null
	get_messages 14 30
	run -0 jq -s -c 'map(.body | fromjson | [.action, .id])' "$BATS_TEST_TMPDIR/msgs.jsonl"
	assert_output '[["R",2],["R",6],["R",8],["R",10],["R",12],["R",14],["R",16],["R",18],["R",20],["I",3],["D",6],["U",8],["D",10],["I",21]]'
	msgs | assert_applied_is_table "$cond"
	# and nothing else: once the slot is past the last change, no more
	lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
	wait_for 60 slot_confirmed_past "$lsn"
	assert_equal "$(mq count "$MQ")" 0
}

@test "errors: NULL arguments, a publication that does not publish the table or does not exist, no primary key, a transaction block" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int);
	     CREATE TABLE ${T}_nokey (v int);
	     INSERT INTO $T VALUES (1, 1);
	     CREATE PUBLICATION $PUB FOR TABLE ${T}_nokey" >/dev/null
	defer sql "DROP TABLE IF EXISTS ${T}_nokey CASCADE"
	check() {
		run -1 --separate-stderr sql "$1"
		assert_output ""
		[[ "$stderr" == *"ERROR:  $2"* ]] || fail "stderr: $stderr"
	}
	local p="mikkoo.slot_snapshot"
	check "CALL $p('$T', '$PUB', '$STREAM', '$EXS')" \
		"$p: publication \"$PUB\" does not publish table $T"
	check "CALL $p('$T', 'nope_$N', '$STREAM', '$EXS')" \
		"$p: publication \"nope_$N\" does not exist"
	check "CALL $p('${T}_nokey', '$PUB', '$STREAM', '$EXS')" \
		"$p: table ${T}_nokey has no primary key: the snapshot reads it in key order"
	sql "ALTER PUBLICATION $PUB SET TABLE $T" >/dev/null
	check "CALL $p(NULL, '$PUB', '$STREAM', '$EXS')" "$p: the table must not be NULL"
	check "CALL $p('$T', NULL, '$STREAM', '$EXS')" "$p: the publication must not be NULL"
	check "CALL $p('$T', '$PUB', NULL, '$EXS')" "$p: the stream must not be NULL"
	check "CALL $p('$T', '$PUB', '$STREAM', NULL)" "$p: the exchange (the worker's exchange;"
	check "CALL $p('$T', '$PUB', '$STREAM', '$EXS', NULL)" "$p: the routing key must not be NULL"
	check "CALL $p('$T', '$PUB', '$STREAM', '$EXS', chunk => NULL)" \
		"$p: chunk must be a positive number of rows, not NULL"
	check "CALL $p('$T', '$PUB', '$STREAM', '$EXS', chunk => 0)" \
		"$p: chunk must be a positive number of rows, not 0"
	run -1 --separate-stderr psql -qXAt -v ON_ERROR_STOP=1 \
		-c "BEGIN" -c "$(snap_call)"
	[[ "$stderr" == *"ERROR:  invalid transaction termination"* ]] || fail "stderr: $stderr"
}

@test "a role with SELECT and UPDATE on the table and pgq_writer may snapshot it; without UPDATE or pgq_writer it may not" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int);
	     INSERT INTO $T SELECT g, g FROM generate_series(1, 30) g;
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	ROLE_="r_$N"
	sql "CREATE ROLE $ROLE_ LOGIN PASSWORD 'pw';
	     GRANT USAGE ON SCHEMA mikkoo TO $ROLE_;
	     GRANT SELECT ON $T TO $ROLE_; GRANT pgq_writer TO $ROLE_" >/dev/null
	as_r() {
		env PGUSER="$ROLE_" PGPASSWORD=pw psql -qXAt -v ON_ERROR_STOP=1 -c "$1"
	}
	slot_config
	relay_start
	run -1 --separate-stderr as_r "$(snap_call "chunk => 10")"
	[[ "$stderr" == *"permission denied for table ${T#public.}"* ]] || fail "stderr: $stderr"
	sql "GRANT UPDATE ON $T TO $ROLE_; REVOKE pgq_writer FROM $ROLE_" >/dev/null
	run -1 --separate-stderr as_r "$(snap_call "chunk => 10")"
	[[ "$stderr" == *"permission denied for function emit"* ]] || fail "stderr: $stderr"
	sql "GRANT pgq_writer TO $ROLE_" >/dev/null
	run -0 as_r "$(snap_call "chunk => 10")"
	get_messages 30
	msgs | jq -s -e 'map(.body | fromjson) | map(.id) == [range(1; 31)] and all(.action == "R")'
}

@test "a column the worker sends as its text (a domain with a check of an untrusted role inside a composite) is sent as its text by the snapshot too" {
	ROLE_="r_$N"
	sql "CREATE ROLE $ROLE_ NOLOGIN;
	     CREATE DOMAIN public.d_$N AS int CHECK (VALUE > 0);
	     ALTER DOMAIN public.d_$N OWNER TO $ROLE_;
	     CREATE TYPE public.c_$N AS (a public.d_$N, b text)" >/dev/null
	defer sql "SET client_min_messages = warning;
	           DROP TYPE IF EXISTS public.c_$N CASCADE;
	           DROP DOMAIN IF EXISTS public.d_$N CASCADE"
	sql "CREATE TABLE $T (id int PRIMARY KEY, c public.c_$N, v int);
	     INSERT INTO $T VALUES (1, ROW(5, 'x'), 1);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_config
	relay_start
	run -0 sql "$(snap_call)"
	sql "INSERT INTO $T VALUES (2, ROW(7, 'y'), 2)" >/dev/null
	get_messages 2
	msgs | jq -s -e 'map(.body | fromjson) |
		map([.action, .new]) == [["R", {"id": 1, "c": "(5,x)", "v": 1}],
		                         ["I", {"id": 2, "c": "(7,y)", "v": 2}]]'
}
