#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# The logical-decoding source (common/walstream, pgoutput, render, slot,
# logical) against the real server, through test/tools/walcat: each
# change's message equals what mikkoo.capture() sends for it, the WAL's
# limits (replica identity, TOAST), TRUNCATE, mikkoo.emit() and forged
# messages, a million-row transaction in bounded memory, refused slots,
# and resuming after SIGKILL.

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
