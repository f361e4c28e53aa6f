#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# The logical-decoding source (common/walstream, pgoutput, render, slot,
# logical) against the real server, through test/tools/walcat: each
# change's message equals what mikkoo.capture() sends for it, the WAL's
# limits (replica identity, TOAST), TRUNCATE, mikkoo.emit() and forged
# messages, a million-row transaction in bounded memory, refused slots,
# and resuming after SIGKILL.  (What changes the server's settings for
# every slot is in test/51, which runs alone.)

load helpers/common
load helpers/logical

setup_file() {
	psql -qX -v ON_ERROR_STOP=1 -f "$MIKKOO_SQL" >/dev/null
}

setup() {
	lg_setup
}

teardown() {
	lg_teardown
	sql "SET client_min_messages = warning;
	     DROP TABLE IF EXISTS $T, ${T}_b CASCADE;
	     DROP TYPE IF EXISTS public.mood_$N, public.pair_$N CASCADE;
	     DROP DOMAIN IF EXISTS public.pos_$N CASCADE" >/dev/null
	if [ -n "${ROLE_:-}" ]; then
		sql "SET client_min_messages = warning; DROP OWNED BY $ROLE_;
		     DROP ROLE $ROLE_" >/dev/null
	fi
}

@test "unit: pgoutput (protocol 1, the relation cache, cut and corrupted messages), lsn" {
	run "$MIKKOO_BUILD/test/test-pgoutput"
	echo "$output"
	assert_success
	refute_line --regexp '^not ok'
}

@test "unit: emit (genuine, forged and malformed messages), JSON strings as to_json(text), commit times" {
	run "$MIKKOO_BUILD/test/test-emit"
	echo "$output"
	assert_success
	refute_line --regexp '^not ok'
}

# A role that may log in (dropped by teardown).
make_role() {
	ROLE_="r_$N"
	sql "CREATE ROLE $ROLE_ LOGIN PASSWORD 'pw' $*" >/dev/null
}

as_role() {
	env PGUSER="$ROLE_" PGPASSWORD=pw psql -qXAt -v ON_ERROR_STOP=1 \
		-c "$1"
}

# A table with a column of each kind of type, REPLICA IDENTITY FULL.
types_table() {
	sql "CREATE TYPE public.mood_$N AS ENUM ('sad', 'ok', 'happy');
	     CREATE TYPE public.pair_$N AS (a int, b text);
	     CREATE DOMAIN public.pos_$N AS int CHECK (VALUE > 0);
	     CREATE TABLE $T (
	         id int PRIMARY KEY, i2 smallint, i8 bigint, n numeric,
	         n2 numeric(10,2), f4 real, f8 double precision, b bool,
	         t text, vc varchar(10), c char(5), by bytea, j json,
	         jb jsonb, ia int[], ta text[], i2d int[], d date, tm time,
	         ttz timetz, ts timestamp, tstz timestamptz, iv interval,
	         u uuid, ip inet, cidr cidr, mac macaddr, bits bit(4),
	         vb varbit, pt point, bx box, bxa box[], tsv tsvector,
	         m money, e public.mood_$N, ea public.mood_$N[],
	         p public.pair_$N, pa public.pair_$N[], r int4range,
	         mr int4multirange, dm public.pos_$N, dma public.pos_$N[],
	         x xml, jba jsonb[]);
	     ALTER TABLE $T REPLICA IDENTITY FULL" >/dev/null
}

# Three rows: ordinary values, edge values, NULLs.
types_rows() {
	sql "INSERT INTO $T VALUES
	     (1, 7, 9007199254740993, 1.50, 2.5, 0.1, 0.1, true,
	      'Mikael Åkerfeldt ✓ \"q\"', 'vc', 'ab', '\\x0102ff',
	      '{\"b\": 1,  \"a\": [1, 2.50], \"a\": null}',
	      '{\"x\": [1, null, 2.5], \"y\": {\"z\": null}}', '{1,2,3}',
	      '{a,\"b c\",NULL,\"d\\\"e\"}', '{{1,2},{3,4}}', '2017-02-23',
	      '06:17:14.471682', '06:17:14+02', '2017-02-23 06:17:14.471682',
	      '2017-02-23 06:17:14.471682+03', '1 year 2 mons 3 days 04:05:06.789',
	      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24',
	      '10.0.0.0/8', '08:00:2b:01:02:03', B'1010', B'101', '(1.5,2)',
	      '((0,0),(1,1))', '{(0,0),(1,1);(2,2),(3,3)}', 'a fat cat',
	      '12.34', 'happy', '{sad,ok}', '(1,\"x, y\")',
	      '{\"(1,a)\",\"(2,\\\"b c\\\")\"}', '[1,5)', '{[1,3),[5,7)}', 3,
	      '{1,2}', '<a>x</a>', ARRAY['{\"k\": 1}'::jsonb, '[]']),
	     (2, -32768, -9223372036854775808, 'NaN', -0.01, 'Infinity',
	      '-0', false, E'tab\\tnl\\ncr\\r\\\\ \\x01 \"', '', '',
	      '\\x', '\"\\u0041\"', '\"\\u00e9\"', '{}', '{NULL}',
	      '[0:1]={7,8}', 'infinity', '24:00', '00:00+14',
	      '-infinity', 'infinity', '-1 days +00:00:01', NULL, '::1',
	      '::/0', NULL, B'0000', B'', '(0,0)', '((1,1),(0,0))', '{}',
	      '', '-1.00', 'sad', '{}', '(,)', '{NULL,\"(,)\"}', 'empty',
	      '{}', 1, '{}', '', '{}'),
	     (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	      NULL, NULL, NULL)" >/dev/null
}

@test "insert, update, delete and truncate of every type: the slot's messages equal mikkoo.capture()'s" {
	types_table
	both_routes
	types_rows
	sql "UPDATE $T SET t = 'changed', n = 1.500 WHERE id = 1" >/dev/null
	sql "UPDATE $T SET n = 'NaN' WHERE id = 2" >/dev/null     # no change: skipped
	sql "UPDATE $T SET id = 4, jb = '{\"z\": 1}' WHERE id = 3" >/dev/null  # the key changes
	sql "UPDATE $T SET f8 = f8 + 1, ia = ia || 4" >/dev/null
	sql "DELETE FROM $T WHERE id = 2" >/dev/null
	sql "TRUNCATE $T" >/dev/null
	slot_read -n 10
	assert_routes_agree
	run -0 slot_bodies
	assert_equal "$(echo "$output" | jq -r .action | tr -d "\n")" IIIUUUUUDT
	# spot checks of to_jsonb()'s rendering, in case both were wrong
	echo "${lines[0]}" | jq -e '.id == 1 and .new.b == true and
		.new.jb == {"x": [1, null, 2.5], "y": {"z": null}} and
		.new.j == {"a": null, "b": 1} and .new.ia == [1, 2, 3] and
		.new.i2d == [[1, 2], [3, 4]] and .new.ta == ["a", "b c", null, "d\"e"] and
		.new.tstz == "2017-02-23T03:17:14.471682+00:00" and
		.new.p == {"a": 1, "b": "x, y"} and .new.e == "happy" and
		.new.dm == 3 and .new.dma == [1, 2]'
	slot_out | head -1 | jq -r .ev_data | grep -F '"n": 1.50'
	slot_out | head -1 | jq -r .ev_data | grep -F '"i8": 9007199254740993'
	echo "${lines[1]}" | jq -e '.new.n == "NaN" and .new.f4 == "Infinity" and
		.new.i2d == [7, 8] and .new.d == "infinity"'
	echo "${lines[2]}" | jq -e '[.new[]] | all(. == null or . == 3)'
	# the key-changing update: id is the new key, the old row in old
	echo "${lines[4]}" | jq -e '.action == "U" and .id == 4 and .old.id == 3'
	echo "${lines[9]}" | jq -e '.action == "T" and .id == null and
		.old == {} and .new == {} and .diff == {}'
	# the events' other fields: ids from WAL positions, the commit's txid
	slot_out | jq -s -e 'map(.ev_id) | . == (sort | unique)'
	slot_out | jq -s -e 'all(.ev_txid > 0 and .kind != "F" and .error == null)'
}

@test "REPLICA IDENTITY DEFAULT: old holds the key, diff every column an unchanged key leaves; warnings at start; FULL gives the capture's" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, a text, b int);
	     CREATE TABLE ${T}_b (v int);
	     CREATE PUBLICATION $PUB FOR TABLE $T, ${T}_b" >/dev/null
	run -0 --separate-stderr slot_create
	[[ "$stderr" == *"warning: table $T is not REPLICA IDENTITY FULL: its UPDATE and DELETE messages hold only the key in old"* ]]
	[[ "$stderr" == *"warning: table ${T}_b has no replica identity (REPLICA IDENTITY DEFAULT without a primary key): if its publication publishes updates or deletes, its writers' UPDATE and DELETE fail"* ]]
	sql "INSERT INTO $T VALUES (1, 'a', 1)" >/dev/null
	sql "UPDATE $T SET a = 'b' WHERE id = 1" >/dev/null
	sql "UPDATE $T SET id = 2 WHERE id = 1" >/dev/null
	# nothing changed, but without the old row nobody can tell
	sql "UPDATE $T SET id = id" >/dev/null
	sql "DELETE FROM $T" >/dev/null
	sql "ALTER TABLE $T REPLICA IDENTITY FULL;
	     INSERT INTO $T VALUES (3, 'c', 3); UPDATE $T SET b = 4;
	     UPDATE $T SET b = b" >/dev/null
	slot_read -n 7
	run -0 slot_bodies
	assert_equal "${#lines[@]}" 7
	echo "${lines[1]}" | jq -e '.action == "U" and .id == 1 and
		.old == {"id": 1} and .new == {"id": 1, "a": "b", "b": 1} and
		.diff == {"a": "b", "b": 1}'
	# the key changed: the WAL has the old key
	echo "${lines[2]}" | jq -e '.action == "U" and .id == 2 and
		.old == {"id": 1} and .diff == {"id": 2, "a": "b", "b": 1}'
	echo "${lines[3]}" | jq -e '.action == "U" and .old == {"id": 2} and
		.diff == {"a": "b", "b": 1}'
	echo "${lines[4]}" | jq -e '.action == "D" and .id == 2 and
		.old == {"id": 2} and .new == {} and .diff == {}'
	# under FULL: the whole old row, only what changed, no-ops skipped
	echo "${lines[6]}" | jq -e '.action == "U" and .old == {"id": 3, "a": "c", "b": 3}
		and .new == {"id": 3, "a": "c", "b": 4} and .diff == {"b": 4}'
}

@test "unchanged TOASTed values: from the old row under FULL (as the capture's), left out of new otherwise" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, big text, n int);
	     ALTER TABLE $T ALTER big SET STORAGE EXTERNAL, REPLICA IDENTITY FULL;
	     CREATE TABLE ${T}_b (id int PRIMARY KEY, big text, n int);
	     ALTER TABLE ${T}_b ALTER big SET STORAGE EXTERNAL" >/dev/null
	both_routes
	sql "ALTER PUBLICATION $PUB ADD TABLE ${T}_b" >/dev/null
	sql "INSERT INTO $T VALUES (1, repeat('x', 100000) || 'end', 1);
	     INSERT INTO ${T}_b VALUES (1, repeat('y', 100000) || 'end', 1)" >/dev/null
	# the big values are stored out of line
	toast=$(sql "SELECT reltoastrelid::regclass FROM pg_class
	             WHERE oid = '${T}_b'::regclass")
	[ "$(sql "SELECT count(*) FROM $toast")" -gt 0 ]
	sql "UPDATE $T SET n = 2; UPDATE ${T}_b SET n = 2" >/dev/null
	sql "DELETE FROM $T; DELETE FROM ${T}_b" >/dev/null
	slot_read -n 6
	slot_out | jq -c "select(.table == \"$T\")" >"$BATS_TEST_TMPDIR/full.jsonl"
	pgq_events | agree >"$BATS_TEST_TMPDIR/trigger.agree"
	agree <"$BATS_TEST_TMPDIR/full.jsonl" >"$BATS_TEST_TMPDIR/slot.agree"
	run diff "$BATS_TEST_TMPDIR/trigger.agree" "$BATS_TEST_TMPDIR/slot.agree"
	assert_success
	run -0 jq -c 'select(.action == "U") | .ev_data | fromjson' "$BATS_TEST_TMPDIR/full.jsonl"
	echo "$output" | jq -e '(.new.big | length) == 100003 and .diff == {"n": 2}'
	# DEFAULT: the WAL does not carry the unchanged value
	run -0 bash -c "cat '$BATS_TEST_TMPDIR/slot.jsonl' | jq -c 'select(.table == \"${T}_b\") | .ev_data | fromjson'"
	echo "${lines[1]}" | jq -e '.action == "U" and .new == {"id": 1, "n": 2} and
		.old == {"id": 1} and .diff == {"n": 2}'
	echo "${lines[2]}" | jq -e '.action == "D" and .old == {"id": 1}'
}

@test "mikkoo.emit(): committed events only, as given, with the id it returned; other streams and applications' messages left out" {
	STREAM="orders_$N"
	# no publication of its own: the one mikkoo.sql made for events
	walcat -S "$SLOT" -m "$STREAM" --create -n 0
	run -0 sql "SELECT txid_current() || ' ' || mikkoo.emit('$STREAM',
	    'order.created', '{\"id\": 1}', 'ex', 'application/json',
	    '{\"message_id\": \"m1\"}', '{\"h\": 1}')"
	read -r txid id1 <<<"$output"
	sql "BEGIN; SELECT mikkoo.emit('$STREAM', 'gone', 'x'); ROLLBACK" >/dev/null
	sql "BEGIN; SELECT mikkoo.emit('$STREAM', 'kept', 'a');
	     SAVEPOINT s; SELECT mikkoo.emit('$STREAM', 'gone too', 'b');
	     ROLLBACK TO s; SELECT mikkoo.emit('$STREAM', 'kept too', NULL);
	     COMMIT" >/dev/null
	sql "SELECT mikkoo.emit('other_$N', 'other stream', 'x');
	     SELECT pg_logical_emit_message(true, 'someapp', 'hello')" >/dev/null
	data=$'multi\nline ✓ "q" \\ '"$(head -c 3000 /dev/zero | tr '\0' z)"
	sql "SELECT mikkoo.emit('$STREAM', 'last', \$d\$$data\$d\$, NULL, NULL, NULL, NULL)" >/dev/null
	walcat -S "$SLOT" -m "$STREAM" -n 4 --idle 3 >"$BATS_TEST_TMPDIR/slot.jsonl"
	run -0 slot_out
	assert_equal "${#lines[@]}" 4
	slot_out | jq -s -e --arg s "$STREAM" 'map(.kind) == ["E", "E", "E", "E"] and
		map(.ev_type) == ["order.created", "kept", "kept too", "last"] and
		all(.stream == $s and .error == null)'
	echo "${lines[0]}" | jq -e --argjson id "$id1" --argjson txid "$txid" '
		.ev_id == $id and .ev_txid == $txid and .ev_data == "{\"id\": 1}" and
		.ev_extra1 == "ex" and .ev_extra2 == "application/json" and
		.ev_extra3 == "{\"message_id\": \"m1\"}" and .ev_extra4 == "{\"h\": 1}"'
	echo "${lines[2]}" | jq -e '.ev_data == null and .ev_extra1 == null'
	assert_equal "$(echo "${lines[3]}" | jq -r .ev_data)" "$data"
}

@test "forging an event: a role without the right cannot emit or read the key; its pg_logical_emit_message() is never an event" {
	STREAM="orders_$N"
	make_role
	sql "GRANT USAGE ON SCHEMA mikkoo TO $ROLE_" >/dev/null
	walcat -S "$SLOT" -m "$STREAM" --create -n 0
	run -1 --separate-stderr as_role "SELECT mikkoo.emit('$STREAM', 'x', 'y')"
	[[ "$stderr" == *"permission denied for function emit"* ]]
	run -1 --separate-stderr as_role "SELECT key FROM mikkoo.emit_key"
	[[ "$stderr" == *"permission denied for table emit_key"* ]]
	# no function of mikkoo.sql reads it for others
	[ "$(sql "SELECT count(*) FROM pg_proc WHERE prosecdef
	          AND pronamespace = 'mikkoo'::regnamespace
	          AND prosrc LIKE '%emit_key%'")" = 0 ]
	# pg_logical_emit_message is PUBLIC's: the attack is a message in
	# the exact format with a guessed key
	fake="0123456789abcdef0123456789abcdef${#STREAM}:${STREAM}6:forged1:x-----"
	as_role "SELECT pg_logical_emit_message(true, 'mikkoo.emit', '$fake')" >/dev/null
	as_role "SELECT pg_logical_emit_message(false, 'mikkoo.emit', '$fake')" >/dev/null
	as_role "SELECT pg_logical_emit_message(true, 'mikkoo.emit', 'short')" >/dev/null
	# with the right to write events, the same role emits
	sql "GRANT pgq_writer TO $ROLE_" >/dev/null
	as_role "SELECT mikkoo.emit('$STREAM', 'genuine', 'ok')" >/dev/null
	walcat -S "$SLOT" -m "$STREAM" -n 4 --idle 3 >"$BATS_TEST_TMPDIR/slot.jsonl" \
		2>"$BATS_TEST_TMPDIR/slot.err"
	slot_out | jq -s -e 'map(.kind) == ["F", "F", "F", "E"] and
		(map(select(.kind == "E")) | map(.ev_type)) == ["genuine"] and
		(map(select(.kind == "F")) | all(.error | startswith("forged: ")))'
	grep -c 'walcat: warning: event .*: forged: ' "$BATS_TEST_TMPDIR/slot.err"
	# the key never leaves: not in the output, not on stderr
	key=$(sql "SELECT key FROM mikkoo.emit_key")
	[ "${#key}" = 32 ]
	! grep -qF "$key" "$BATS_TEST_TMPDIR/slot.jsonl" "$BATS_TEST_TMPDIR/slot.err"
}

@test "rendering runs no code of a table's owner: a domain's CHECK and a cast to json of an untrusted role's types" {
	make_role
	sql "GRANT CREATE ON SCHEMA public TO $ROLE_" >/dev/null
	# the trap fires when a superuser (the relay here) runs it
	as_role "CREATE FUNCTION public.trap_$N(x anyelement) RETURNS boolean
	    LANGUAGE plpgsql AS \$f\$ BEGIN
	        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
	            RAISE EXCEPTION 'trap sprung by %', current_user;
	        END IF;
	        RETURN true; END \$f\$;
	    CREATE DOMAIN public.pos_$N AS int CHECK (public.trap_$N(VALUE));
	    CREATE TYPE public.pair_$N AS (v public.pos_$N);
	    CREATE TYPE public.mood_$N AS ENUM ('a', 'b');
	    CREATE FUNCTION public.mood_json_$N(public.mood_$N) RETURNS json
	        LANGUAGE plpgsql AS \$f\$ BEGIN
	        PERFORM public.trap_$N(1); RETURN '\"cast\"'; END \$f\$;
	    CREATE CAST (public.mood_$N AS json)
	        WITH FUNCTION public.mood_json_$N(public.mood_$N);
	    CREATE TABLE $T (id int PRIMARY KEY, d public.pos_$N,
	        da public.pos_$N[], p public.pair_$N, m public.mood_$N,
	        ma public.mood_$N[]);
	    ALTER TABLE $T REPLICA IDENTITY FULL" >/dev/null
	both_routes
	as_role "INSERT INTO $T VALUES (1, 5, '{6}', ROW(7), 'a', '{b}');
	         UPDATE $T SET d = 8" >/dev/null
	slot_read -n 2
	! grep -q 'trap sprung' "$BATS_TEST_TMPDIR/slot.err"
	slot_out | jq -s -e 'all(.error == null)'
	run -0 slot_bodies
	echo "${lines[0]}" | jq -e '.new == {"id": 1, "d": 5, "da": [6],
		"p": "(7)", "m": "a", "ma": ["b"]}'
	grep -F "warning: table $T: columns {p} are sent as their text" "$BATS_TEST_TMPDIR/slot.err"
	# the trigger route renders the composite as an object: the one
	# documented difference; all else is equal
	pgq_events | jq -c '.ev_data | fromjson | del(.recorded_at) |
		del(.new.p, .old.p, .diff.p)' >"$BATS_TEST_TMPDIR/t"
	slot_bodies | jq -c 'del(.recorded_at) | del(.new.p, .old.p, .diff.p)' >"$BATS_TEST_TMPDIR/s"
	diff "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/s"
	pgq_events | head -1 | jq -e '.ev_data | fromjson | .new.p == {"v": 7}'
}

# stat_of FILE NAME: the number after NAME in a walcat --stats line.
stat_of() {
	sed -n "s/.*$2 \([0-9]*\).*/\1/p" "$1" | tail -1
}

@test "a transaction of a million rows streams through bounded memory" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, t text);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_create 2>/dev/null
	# ASan keeps freed memory in quarantine (256 MB): a small one, so
	# that RSS shows what the program holds
	export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=16"
	sql "INSERT INTO $T SELECT g, 'row ' || g FROM generate_series(1, 10000) g" >/dev/null
	walcat -S "$SLOT" -P "$PUB" -n 10000 --idle 60 --quiet --stats \
		2>"$BATS_TEST_TMPDIR/small.err"
	# a position inside the transaction, before its commit: the slot
	# must be confirmed past it (other files write WAL meanwhile, so the
	# server's current position says nothing)
	before_commit=$(sql "BEGIN;
		INSERT INTO $T SELECT g, 'row ' || g FROM generate_series(10001, 1010000) g;
		SELECT pg_current_wal_insert_lsn(); COMMIT" | tail -1)
	walcat -S "$SLOT" -P "$PUB" -n 1000000 --idle 120 --quiet --stats \
		2>"$BATS_TEST_TMPDIR/big.err"
	cat "$BATS_TEST_TMPDIR/small.err" "$BATS_TEST_TMPDIR/big.err"
	assert_equal "$(stat_of "$BATS_TEST_TMPDIR/big.err" events)" 1000000
	small=$(stat_of "$BATS_TEST_TMPDIR/small.err" maxrss_kb)
	big=$(stat_of "$BATS_TEST_TMPDIR/big.err" maxrss_kb)
	# a hundred times the rows, not the memory: within 32 MB of the
	# small one (one batch of 1000 rows is well under that)
	[ "$big" -lt $((small + 32768)) ]
	# and the transaction's commit was confirmed
	wait_for 10 slot_inactive
	[ "$(sql "SELECT confirmed_flush_lsn > '$before_commit'
	          FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ]
}

@test "a recorded slot that vanished is refused, naming it and the last position relayed; never recreated until forgotten" {
	sql "CREATE TABLE $T (id int PRIMARY KEY);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_create 2>/dev/null
	sql "INSERT INTO $T VALUES (1)" >/dev/null
	slot_read -n 1
	last=$(sql "SELECT last_lsn FROM mikkoo.slots WHERE slot_name = '$SLOT'")
	[ "$last" = "$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots
	                    WHERE slot_name = '$SLOT'")" ]
	sql "SELECT pg_drop_replication_slot('$SLOT')" >/dev/null
	sql "INSERT INTO $T VALUES (2)" >/dev/null     # in the gap
	run -78 walcat -S "$SLOT" -P "$PUB" --create -n 0
	assert_output --partial "replication slot '$SLOT' is gone"
	assert_output --partial "the last position relayed was $last"
	assert_output --partial "SELECT mikkoo.forget_slot('$SLOT')"
	[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = 0 ]
	# the operator's step
	[ "$(sql "SELECT mikkoo.forget_slot('$SLOT')")" = t ]
	run -78 walcat -S "$SLOT" -P "$PUB" -n 0
	assert_output --partial "replication slot '$SLOT' does not exist (and creating it was not asked for)"
	run -0 walcat -S "$SLOT" -P "$PUB" --create -n 0
	assert_output --partial "created replication slot '$SLOT'"
	[ "$(sql "SELECT consistent_point IS NOT NULL AND NOT adopted
	          FROM mikkoo.slots WHERE slot_name = '$SLOT'")" = t ]
}

@test "a slot nobody recorded is adopted from its own position; one of another plugin is refused" {
	sql "CREATE TABLE $T (id int PRIMARY KEY);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	sql "SELECT pg_create_logical_replication_slot('$SLOT', 'pgoutput')" >/dev/null
	sql "INSERT INTO $T VALUES (1)" >/dev/null
	slot_read -n 1
	slot_bodies | jq -e '.action == "I" and .id == 1'
	[ "$(sql "SELECT adopted FROM mikkoo.slots WHERE slot_name = '$SLOT'")" = t ]
	sql "SELECT pg_create_logical_replication_slot('${SLOT}_x', 'test_decoding')" >/dev/null
	run -78 walcat -S "${SLOT}_x" -P "$PUB" -n 0
	sql "SELECT pg_drop_replication_slot('${SLOT}_x')" >/dev/null
	assert_output --partial "replication slot '${SLOT}_x' is a logical slot of plugin test_decoding, not a logical pgoutput one"
}

# The slot's confirmed position is at least $1.
slot_confirmed_ge() {
	[ "$(sql "SELECT confirmed_flush_lsn >= '$1'::pg_lsn FROM pg_replication_slots
	          WHERE slot_name = '$SLOT'")" = t ]
}

@test "SIGKILL while streaming: the next start resends from the confirmed position, duplicates but no gap, in commit order" {
	sql "CREATE TABLE $T (id int PRIMARY KEY);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	slot_create 2>/dev/null
	# 300 transactions of 10 rows, one after the other, for a few seconds
	for i in $(seq 0 299); do
		echo "INSERT INTO $T SELECT g FROM generate_series($((i * 10 + 1)), $((i * 10 + 10))) g;"
		echo "SELECT pg_sleep(0.01);"
	done >"$BATS_TEST_TMPDIR/writes.sql"
	psql -qX -v ON_ERROR_STOP=1 -f "$BATS_TEST_TMPDIR/writes.sql" >/dev/null &
	writer=$!
	walcat_bg "$BATS_TEST_TMPDIR/1.jsonl" -S "$SLOT" -P "$PUB" --batch 25
	wait_for 60 bash -c "[ \$(wc -l <'$BATS_TEST_TMPDIR/1.jsonl') -ge 400 ]"
	# once the server has the position of the 100th row's commit (sent
	# within a second), in the middle of the stream
	line=$(sed -n 100p "$BATS_TEST_TMPDIR/1.jsonl")
	id100=$(echo "$line" | jq -r '.ev_data | fromjson | .id')
	wait_for 30 slot_confirmed_ge "$(echo "$line" | jq -r .commit_lsn)"
	kill -KILL "${WALCAT_PIDS[0]}"
	wait "$writer"
	wait_for 10 slot_inactive
	walcat -S "$SLOT" -P "$PUB" --idle 3 >"$BATS_TEST_TMPDIR/2.jsonl" 2>/dev/null
	# (a line the kill cut short is no event)
	cat "$BATS_TEST_TMPDIR/1.jsonl" "$BATS_TEST_TMPDIR/2.jsonl" |
		jq -R -r 'fromjson? | .ev_data | fromjson | .id' | sort -n | uniq \
		>"$BATS_TEST_TMPDIR/ids"
	# every row, none lost
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/ids")" 3000
	assert_equal "$(head -1 "$BATS_TEST_TMPDIR/ids")-$(tail -1 "$BATS_TEST_TMPDIR/ids")" 1-3000
	# each run in commit order; the second started where the first's
	# confirmed position was, not at the beginning
	for f in 1 2; do
		jq -R -r 'fromjson? | .ev_data | fromjson | .id' \
			"$BATS_TEST_TMPDIR/$f.jsonl" >"$BATS_TEST_TMPDIR/o$f"
		sort -n -c "$BATS_TEST_TMPDIR/o$f"
	done
	[ "$(head -1 "$BATS_TEST_TMPDIR/o2")" -gt "$id100" ]
	dups=$(sort -n "$BATS_TEST_TMPDIR/o1" "$BATS_TEST_TMPDIR/o2" | uniq -d | wc -l)
	echo "duplicates after SIGKILL: $dups"
	# a resend starts at a transaction's first row
	[ $(( ($(head -1 "$BATS_TEST_TMPDIR/o2") - 1) % 10 )) = 0 ]
}

@test "no REPLICATION right, a missing publication, a bad slot name: clear errors with their exit codes" {
	make_role
	sql "GRANT USAGE ON SCHEMA mikkoo TO $ROLE_" >/dev/null
	url="${MIKKOO_PG_URL/\/\/mikkoo:*@/\/\/$ROLE_:pw@}"
	run -77 walcat -d "$url" -S "$SLOT" -P "$PUB" --create -n 0
	assert_output --partial "must be superuser or replication role"
	run -78 walcat -S "$SLOT" -P "nope_$N" --create -n 0
	assert_output --partial "publication 'nope_$N' does not exist"
	# checked before anything was created
	[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = 0 ]
	run -78 walcat -S "Bad-Name" -P "$PUB" --create -n 0
	assert_output --partial "'Bad-Name' is not a slot name"
	# REPLICATION without superuser: it needs the grants the operator
	# gives the relay's role, and says which
	sql "ALTER ROLE $ROLE_ REPLICATION; CREATE TABLE $T (id int PRIMARY KEY);
	     CREATE PUBLICATION $PUB FOR TABLE $T" >/dev/null
	run -77 walcat -d "$url" -S "$SLOT" -P "$PUB" -m s --create -n 0
	assert_output --partial "grant SELECT on mikkoo.emit_key to this role"
	sql "GRANT SELECT ON mikkoo.emit_key TO $ROLE_" >/dev/null
	run -77 walcat -d "$url" -S "$SLOT" -P "$PUB" -m s --create -n 0
	assert_output --partial "grant SELECT, INSERT and UPDATE on mikkoo.slots to this role"
	# nothing was created on the way
	[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = 0 ]
	sql "GRANT SELECT, INSERT, UPDATE ON mikkoo.slots TO $ROLE_" >/dev/null
	run -0 walcat -d "$url" -S "$SLOT" -P "$PUB" -m s --create -n 0
	[ "$(sql "SELECT created_by FROM mikkoo.slots WHERE slot_name = '$SLOT'")" = "$ROLE_" ]
	# and a server that is not there
	run -69 walcat -d "postgresql://mikkoo@127.0.0.1:1/mikkoo" -S "$SLOT" \
		-P "$PUB" -n 0
	assert_output --partial "cannot connect to PostgreSQL"
}

@test "a seeded random workload (MIKKOO_SEED) gives the same messages by slot as by trigger" {
	seed=${MIKKOO_SEED:-42}
	echo "seed $seed"
	sql "CREATE TABLE $T (id int PRIMARY KEY, a int, t text, n numeric,
	         j jsonb, arr int[]);
	     ALTER TABLE $T REPLICA IDENTITY FULL" >/dev/null
	both_routes
	for txn in $(seq 1 12); do
		sql "SELECT setseed(($seed % 1000) / 1000.0 - $txn / 100.0);
		DO \$d\$
		DECLARE k int; op float8;
		BEGIN
		    FOR i IN 1 .. 40 LOOP
		        op := random();
		        k := (random() * 200)::int;
		        IF op < 0.45 THEN
		            INSERT INTO $T SELECT g, (random() * 10)::int,
		                md5(random()::text), round((random() * 1000)::numeric, (g % 4)),
		                jsonb_build_object('k', g, 'v', random() < 0.5),
		                ARRAY[g, (random() * 5)::int]
		            FROM generate_series(k, k + (random() * 3)::int) g
		            ON CONFLICT (id) DO NOTHING;
		        ELSIF op < 0.8 THEN
		            UPDATE $T SET a = (random() * 10)::int,
		                n = CASE WHEN random() < 0.5 THEN n ELSE n * 1.0 END
		            WHERE id % 7 = k % 7;
		        ELSIF op < 0.97 THEN
		            DELETE FROM $T WHERE id BETWEEN k AND k + 2;
		        ELSE
		            UPDATE $T SET id = id + 1000 WHERE id = k;
		        END IF;
		    END LOOP;
		END \$d\$" >/dev/null
	done
	total=$(pgq_events | wc -l)
	echo "messages: $total"
	[ "$total" -gt 300 ]
	slot_read -n "$total"
	# within a statement the bulk path may order rows differently: the
	# same messages, compared as sets per transaction
	pgq_events | agree | sort >"$BATS_TEST_TMPDIR/trigger.agree"
	slot_out | agree | sort >"$BATS_TEST_TMPDIR/slot.agree"
	run diff "$BATS_TEST_TMPDIR/trigger.agree" "$BATS_TEST_TMPDIR/slot.agree"
	echo "$output" | cut -c1-400 | head -20
	assert_success
}
