#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# Table-change capture (mikkoo.capture) end to end: a table's changes
# through PgQ and mikkoo-relay to a RabbitMQ queue, message by message.

load helpers/common
load helpers/relay
load helpers/capture

setup_file() {
	install_schema
}

setup() {
	cap_setup
}

teardown() {
	common_teardown
	cap_drop_role
}

# A table with one column of each type the issue names.
types_table() {
	sql "CREATE TABLE $T (id int PRIMARY KEY, n numeric, t text, b bool,
	     j jsonb, a int[], ts timestamptz, z text)" >/dev/null
}

@test "insert: every type as to_jsonb renders it, the message's routing, properties and headers" {
	types_table
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	relay_start
	sql "INSERT INTO $T VALUES (1, 1.50, 'Mikael Åkerfeldt ✓ \"q\"', true,
	     '{\"x\": [1, null, 2.5], \"y\": {\"z\": null}}', '{1,2,3}',
	     '2017-02-23 06:17:14.471682+00', NULL)" >/dev/null
	get_messages 1
	row=$(sql "SELECT to_jsonb(t.*) FROM $T t")
	msgs | jq -e --arg ex "$EX" --arg t "tab_$Q" '
		.exchange == $ex and .routing_key == "public." + $t and
		.properties.content_type == "application/json" and
		.properties.headers.table == "public." + $t and
		.properties.headers.action == "I"'
	msgs | jq -c '.body | fromjson' | jq -e --argjson row "$row" --arg t "tab_$Q" '
		.table_name == "public." + $t and .action == "I" and .id == 1 and
		.old == {} and .new == $row and .diff == ($row | del(.z)) and
		(.recorded_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{6}Z$")) and
		(.new.n | type) == "number" and .new.t == "Mikael Åkerfeldt ✓ \"q\"" and
		.new.b == true and .new.j == {"x": [1, null, 2.5], "y": {"z": null}} and
		.new.a == [1, 2, 3] and .new.ts == "2017-02-23T06:17:14.471682+00:00" and
		.new.z == null and (.new | keys) == ["a","b","id","j","n","t","ts","z"]'
	# numbers keep PostgreSQL's text (1.50, not 1.5): the body is
	# jsonb's own rendering of the row
	msgs | jq -r '.body' | grep -F '"n": 1.50'
	# keys in the order of the issue
	msgs | jq -c '.body | fromjson | keys_unsorted' |
		grep -Fx '["table_name","action","id","old","new","diff","recorded_at"]'
}

@test "update: old and new rows, only changed columns in diff; a no-op update sends nothing" {
	types_table
	sql "INSERT INTO $T (id, n, t) VALUES (1, 2, 'a')" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	relay_start
	sql "UPDATE $T SET t = 'b', z = 'new' WHERE id = 1" >/dev/null
	sql "UPDATE $T SET t = t, n = 2.0 WHERE id = 1" >/dev/null   # nothing changed
	sql "UPDATE $T SET z = NULL WHERE id = 1" >/dev/null        # the sentinel
	run -0 bodies_plain 2
	echo "${lines[0]}" | jq -e '.action == "U" and .id == 1 and
		.old.t == "a" and .old.z == null and .new.t == "b" and
		.new.z == "new" and .diff == {"t": "b", "z": "new"} and
		(.old | keys) == (.new | keys)'
	# the next message is the sentinel: the no-op update sent nothing
	echo "${lines[1]}" | jq -e '.action == "U" and .diff == {"z": null} and
		.old.z == "new"'
	assert_equal "$(mq count "$MQ")" 0
}

@test "skip_unchanged false: a no-op update sends diff {}" {
	types_table
	sql "INSERT INTO $T (id, t) VALUES (1, 'a'), (2, 'b')" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX', skip_unchanged => false)" >/dev/null
	relay_start
	sql "UPDATE $T SET t = t" >/dev/null
	run -0 bodies_plain 2
	echo "$output" | jq -s -e 'map(.id) | sort == [1, 2]'
	echo "$output" | jq -s -e 'all(.action == "U" and .diff == {} and .old == .new)'
}

@test "delete: the old row, new and diff empty; truncate: one T event with id null" {
	types_table
	sql "INSERT INTO $T (id, t) VALUES (1, 'a'), (2, 'b')" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	relay_start
	sql "DELETE FROM $T WHERE id = 1" >/dev/null
	sql "TRUNCATE $T" >/dev/null
	run -0 bodies_plain 2
	echo "${lines[0]}" | jq -e '.action == "D" and .id == 1 and
		.old.t == "a" and .old.id == 1 and .new == {} and .diff == {}'
	echo "${lines[1]}" | jq -e --arg t "public.tab_$Q" '. == {"table_name": $t,
		"action": "T", "id": null, "old": {}, "new": {}, "diff": {}}'
	msgs | tail -1 | jq -e '.properties.headers.action == "T"'
}

@test "a rolled-back change sends nothing; a committed one in the same session does" {
	types_table
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	relay_start
	sql "BEGIN; INSERT INTO $T (id, t) VALUES (1, 'gone');
	     UPDATE $T SET t = 'gone too'; ROLLBACK;
	     INSERT INTO $T (id, t) VALUES (2, 'kept')" >/dev/null
	sql "BEGIN; INSERT INTO $T (id, t) VALUES (3, 'gone');
	     SAVEPOINT s; INSERT INTO $T (id, t) VALUES (4, 'gone, savepoint');
	     ROLLBACK TO s; INSERT INTO $T (id, t) VALUES (5, 'kept'); COMMIT" >/dev/null
	run -0 bodies_plain 3
	echo "$output" | jq -s -e 'map([.id, .new.t]) == [[2, "kept"], [3, "gone"], [5, "kept"]]'
	assert_equal "$(mq count "$MQ")" 0
}

@test "id: the key's value, an object in key order for a composite key, null without a key" {
	sql "CREATE TABLE $T (a int, b text, v int, PRIMARY KEY (b, a));
	     CREATE TABLE ${T}_nokey (v int)" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX');
	     SELECT mikkoo.capture('${T}_nokey', '$Q', '$EX')" >/dev/null
	relay_start
	sql "INSERT INTO $T VALUES (1, 'x', 10)" >/dev/null
	sql "UPDATE $T SET a = 2, v = 11" >/dev/null      # the key changes
	sql "DELETE FROM $T" >/dev/null
	sql "INSERT INTO ${T}_nokey VALUES (7)" >/dev/null
	sql "DELETE FROM ${T}_nokey" >/dev/null
	run -0 bodies 5
	echo "${lines[0]}" | jq -e '.action == "I" and .id == {"b": "x", "a": 1}'
	echo "${lines[0]}" | jq -e '.id | keys_unsorted == ["b", "a"]'
	# an update's id is the new row's key; the old key is in old
	echo "${lines[1]}" | jq -e '.action == "U" and .id == {"b": "x", "a": 2} and
		.old.a == 1 and .diff == {"a": 2, "v": 11}'
	echo "${lines[2]}" | jq -e '.action == "D" and .id == {"b": "x", "a": 2}'
	echo "${lines[3]}" | jq -e '.action == "I" and .id == null and .new == {"v": 7}'
	echo "${lines[4]}" | jq -e '.action == "D" and .id == null and .old == {"v": 7}'
}

@test "columns and exclude filter old, new and diff; the id still comes from the key" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, name text, email text,
	     password text, seen timestamptz);
	     CREATE TABLE ${T}_b (LIKE $T INCLUDING ALL)" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX', exclude => '{password,seen}');
	     SELECT mikkoo.capture('${T}_b', '$Q', '$EX', columns => '{name,email}')" >/dev/null
	relay_start
	sql "INSERT INTO $T VALUES (1, 'n', 'e', 'secret', now())" >/dev/null
	sql "UPDATE $T SET password = 'other', seen = now()" >/dev/null   # only excluded
	sql "UPDATE $T SET email = 'f', password = 'x'" >/dev/null
	sql "INSERT INTO ${T}_b VALUES (2, 'n', 'e', 'secret', now())" >/dev/null
	sql "UPDATE ${T}_b SET seen = now()" >/dev/null                  # not listed
	sql "UPDATE ${T}_b SET name = 'm'" >/dev/null
	sql "DELETE FROM ${T}_b" >/dev/null
	run -0 bodies_plain 5
	echo "${lines[0]}" | jq -e '.action == "I" and .id == 1 and
		.new == {"id": 1, "name": "n", "email": "e"} and .diff == .new'
	echo "${lines[1]}" | jq -e '.action == "U" and
		.old == {"id": 1, "name": "n", "email": "e"} and
		.new == {"id": 1, "name": "n", "email": "f"} and .diff == {"email": "f"}'
	# the allow list leaves out the key column too, not the id
	echo "${lines[2]}" | jq -e '.action == "I" and .id == 2 and
		.new == {"name": "n", "email": "e"} and .diff == .new'
	echo "${lines[3]}" | jq -e '.action == "U" and .id == 2 and .diff == {"name": "m"} and
		.old == {"name": "n", "email": "e"}'
	echo "${lines[4]}" | jq -e '.action == "D" and .id == 2 and
		.old == {"name": "m", "email": "e"}'
	assert_equal "$(mq count "$MQ")" 0
}

@test "routing key templates: {schema}, {table} and {action}" {
	defer sql "DROP SCHEMA IF EXISTS s_$Q CASCADE"
	sql "CREATE SCHEMA IF NOT EXISTS s_$Q;
	     CREATE TABLE s_$Q.orders (id int PRIMARY KEY, v int)" >/dev/null
	sql "SELECT mikkoo.capture('s_$Q.orders', '$Q', '$EX',
	     'db1.{schema}.{table}.{action}')" >/dev/null
	relay_start
	sql "INSERT INTO s_$Q.orders VALUES (1, 1); UPDATE s_$Q.orders SET v = 2;
	     DELETE FROM s_$Q.orders; TRUNCATE s_$Q.orders" >/dev/null
	get_messages 4
	assert_equal "$(msgs | jq -r .routing_key | paste -sd ' ')" \
		"db1.s_$Q.orders.I db1.s_$Q.orders.U db1.s_$Q.orders.D db1.s_$Q.orders.T"
	msgs | jq -s -e --arg t "s_$Q.orders" 'all((.body | fromjson | .table_name) == $t and
		.properties.headers.table == $t)'
}

@test "a renamed table's events carry the new name" {
	types_table
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX', '{table}.{action}')" >/dev/null
	relay_start
	sql "ALTER TABLE $T RENAME TO ren_$Q; INSERT INTO public.ren_$Q (id) VALUES (1)" >/dev/null
	get_messages 1
	msgs | jq -e --arg t "ren_$Q" '.routing_key == $t + ".I" and
		(.body | fromjson | .table_name) == "public." + $t and
		.properties.headers.table == "public." + $t'
	run -0 sql "SELECT table_name FROM mikkoo.captures WHERE queue = '$Q'"
	assert_output "public.ren_$Q"
}

# A one-worker config for queue $1 (another than $Q) into the same file.
second_worker() {
	sql "SELECT pgq.register_consumer('$1', 'mikkoo')" >/dev/null
	cat >>"$CONF" <<YAML
    $1:
      postgres_url: $MIKKOO_PG_URL
      rabbitmq_url: $MIKKOO_AMQP_URL
      consumer_name: mikkoo
      wait_duration: 0.1
YAML
}

@test "re-capture replaces the settings; two queues; uncapture one or all; mikkoo.captures" {
	Q2="${Q}_b"
	pgq_create_queue "$Q2"
	second_worker "$Q2"
	types_table
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX', 'one.{action}');
	     SELECT mikkoo.capture('$T', '$Q', '$EX', 'two.{action}', exclude => '{t}');
	     SELECT mikkoo.capture('$T', '$Q2', '$EX', 'q2.{action}')" >/dev/null
	run -0 sql "SELECT queue, routing_key, exclude, skip_unchanged, key_columns
	            FROM mikkoo.captures WHERE tbl = '$T'::regclass ORDER BY queue"
	assert_output "$Q|two.{action}|{t}|t|{id}
$Q2|q2.{action}||t|{id}"
	run -0 --separate-stderr mikkoo-inspect -q "$Q" captures
	assert_equal "$stderr" ""
	echo "$output" | jq -e --arg t "public.tab_$Q" --arg q "$Q" --arg ex "$EX" '
		. == {"table_name": $t, "queue": $q, "exchange": $ex,
		      "routing_key": "two.{action}", "columns": null,
		      "exclude": ["t"], "skip_unchanged": true, "key_columns": ["id"]}'
	run -0 mikkoo-inspect captures
	assert_equal "$(echo "$output" | jq -r 'select(.table_name == "public.tab_'"$Q"'") | .queue' | paste -sd ' ')" "$Q $Q2"
	relay_start
	sql "INSERT INTO $T (id, t) VALUES (1, 'a')" >/dev/null
	get_messages 2
	assert_equal "$(msgs | jq -r .routing_key | sort | paste -sd ' ')" "q2.I two.I"
	msgs | jq -s -e 'map(select(.routing_key == "two.I") | .body | fromjson) |
		length == 1 and (.[0].new | has("t") | not)'
	msgs | jq -s -e 'map(select(.routing_key == "q2.I") | .body | fromjson) |
		length == 1 and .[0].new.t == "a"'
	# stop one queue: 1 capture stopped, the other goes on
	run -0 sql "SELECT mikkoo.uncapture('$T', '$Q')"
	assert_output 1
	sql "UPDATE $T SET t = 'b'" >/dev/null
	get_messages 1
	msgs | jq -e '.routing_key == "q2.U"'
	run -0 sql "SELECT mikkoo.uncapture('$T')"
	assert_output 1
	run -0 sql "SELECT mikkoo.uncapture('$T')"
	assert_output 0
	run -0 sql "SELECT count(*) FROM mikkoo.captures WHERE tbl = '$T'::regclass"
	assert_output 0
	run -0 sql "SELECT count(*) FROM pg_trigger WHERE tgrelid = '$T'::regclass"
	assert_output 0
	sql "DELETE FROM $T; INSERT INTO $T (id) VALUES (9)" >/dev/null
	sql "SELECT pgq.insert_event('$Q2', 'sentinel', 'x', '$EX', NULL, NULL, NULL)" >/dev/null
	get_messages 1
	msgs | jq -e '.routing_key == "sentinel"'
}

@test "a role that may only write the table (no rights on schema pgq or mikkoo) writes a captured table" {
	types_table
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	cap_role
	sql "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON $T TO $CAP_ROLE" >/dev/null
	# the role has no way into PgQ of its own (PgQ lets everyone use
	# schema pgq and read its catalog, nothing more)
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	run -1 --separate-stderr as_role "SELECT pgq.insert_event('$Q', 'x', 'y')"
	assert_output ""
	[[ "$stderr" == *"permission denied for function insert_event"* ]]
	run -1 --separate-stderr as_role "INSERT INTO ${pfx}_0 (ev_id, ev_time) VALUES (1, now())"
	[[ "$stderr" == *"permission denied for table event_"* ]]
	run -1 --separate-stderr as_role "SELECT count(*) FROM mikkoo.captures"
	[[ "$stderr" == *"permission denied for schema mikkoo"* ]]
	relay_start
	as_role "INSERT INTO $T (id, t) VALUES (1, 'a'), (2, 'b');
	         UPDATE $T SET t = 'c' WHERE id = 1; DELETE FROM $T WHERE id = 2;
	         INSERT INTO $T (id) SELECT g FROM generate_series(10, 109) g;
	         TRUNCATE $T" >/dev/null
	run -0 bodies 105
	echo "$output" | jq -s -e 'map(.action) | group_by(.) | map([.[0], length]) ==
		[["D", 1], ["I", 102], ["T", 1], ["U", 1]]'
}

@test "ALTER TABLE ADD COLUMN and DROP COLUMN show in later events; an allow list keeps a new column out" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, a text, b text);
	     CREATE TABLE ${T}_l (id int PRIMARY KEY, a text, b text)" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX');
	     SELECT mikkoo.capture('${T}_l', '$Q', '$EX', columns => '{id,a,b}')" >/dev/null
	relay_start
	sql "INSERT INTO $T VALUES (1, 'a', 'b')" >/dev/null
	sql "ALTER TABLE $T ADD COLUMN c int DEFAULT 7, DROP COLUMN b" >/dev/null
	sql "INSERT INTO $T VALUES (2, 'x')" >/dev/null
	sql "UPDATE $T SET c = 8 WHERE id = 1" >/dev/null
	sql "ALTER TABLE ${T}_l ADD COLUMN c int DEFAULT 7, DROP COLUMN b;
	     INSERT INTO ${T}_l VALUES (3, 'y')" >/dev/null
	run -0 bodies_plain 4
	echo "${lines[0]}" | jq -e '.new == {"id": 1, "a": "a", "b": "b"}'
	echo "${lines[1]}" | jq -e '.new == {"id": 2, "a": "x", "c": 7}'
	echo "${lines[2]}" | jq -e '.old == {"id": 1, "a": "a", "c": 7} and
		.diff == {"c": 8}'
	echo "${lines[3]}" | jq -e '.new == {"id": 3, "a": "y"}'
}

@test "DROP TABLE removes its capture" {
	types_table
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	run -0 sql "SELECT count(*) FROM mikkoo.captures WHERE queue = '$Q'"
	assert_output 1
	sql "DROP TABLE $T" >/dev/null
	run -0 sql "SELECT count(*) FROM mikkoo.captures WHERE queue = '$Q'"
	assert_output 0
	# a new table of the same name is not captured
	types_table
	run -0 sql "SELECT count(*) FROM pg_trigger WHERE tgrelid = '$T'::regclass"
	assert_output 0
	relay_start
	sql "INSERT INTO $T (id) VALUES (1)" >/dev/null
	sql "SELECT pgq.insert_event('$Q', 'sentinel', 'x', '$EX', NULL, NULL, NULL)" >/dev/null
	get_messages 1
	msgs | jq -e '.routing_key == "sentinel"'
}

@test "bulk statements (over 64 rows) send the same messages as one-row statements" {
	# Two tables with the same rows: one written 100 rows per statement
	# (straight into the event table), one a row per statement (through
	# pgq.insert_event_raw).  Types where SQL equality and jsonb
	# equality might disagree are in: 1.0 to 1.00, '1 day' to '24 hours'.
	for x in bulk one; do
		sql "CREATE TABLE ${T}_$x (id int PRIMARY KEY, n numeric, f float8,
		     t text, iv interval, j jsonb, js json, a text[], z text, k int)"
		sql "SELECT mikkoo.capture('${T}_$x', '$Q', '$EX', '$x',
		     exclude => '{k}')"
	done >/dev/null
	vals="g, g * 1.0, g / 3.0, 'r' || g, '1 day', jsonb_build_object('g', g),
	      json_build_object('g', g), ARRAY['a', NULL], NULL, g"
	sql "INSERT INTO ${T}_bulk SELECT $vals FROM generate_series(1, 100) g" >/dev/null
	for g in $(seq 1 100); do
		echo "INSERT INTO ${T}_one SELECT $vals FROM (SELECT $g AS g) s;"
	done | psql -qX -v ON_ERROR_STOP=1 >/dev/null
	upd="n = n * 1.00, iv = CASE WHEN id % 2 = 0 THEN '24 hours' ELSE iv END,
	     t = CASE WHEN id % 3 = 0 THEN t || '!' ELSE t END, z = 'z',
	     k = k + 1"
	sql "UPDATE ${T}_bulk SET $upd" >/dev/null
	for g in $(seq 1 100); do
		echo "UPDATE ${T}_one SET $upd WHERE id = $g;"
	done | psql -qX -v ON_ERROR_STOP=1 >/dev/null
	sql "UPDATE ${T}_bulk SET k = 0" >/dev/null       # only excluded: nothing
	sql "DELETE FROM ${T}_bulk" >/dev/null
	for g in $(seq 1 100); do
		echo "DELETE FROM ${T}_one WHERE id = $g;"
	done | psql -qX -v ON_ERROR_STOP=1 >/dev/null
	relay_start
	get_messages 600 60
	for x in bulk one; do
		msgs | jq -c --arg x "$x" 'select(.routing_key == $x) | .body | fromjson |
			del(.recorded_at, .table_name)' | sort >"$BATS_TEST_TMPDIR/$x"
	done
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/bulk")" 300
	cmp "$BATS_TEST_TMPDIR/bulk" "$BATS_TEST_TMPDIR/one"
	# and the diffs are what they should be
	jq -s -e '[.[] | select(.action == "U")] | length == 100 and
		all(.diff | has("n") | not) and all(.diff.z == "z") and
		all(has("k") | not) and
		([.[] | select(.diff | has("iv"))] | length) == 50 and
		([.[] | select(.diff | has("t"))] | length) == 33' "$BATS_TEST_TMPDIR/bulk"
}

@test "an UPDATE pairs each old row with its new one, also when it changes the key and moves partitions" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int);
	     CREATE TABLE ${T}_p (id int, part int, v int, PRIMARY KEY (id, part))
	         PARTITION BY LIST (part);
	     CREATE TABLE ${T}_p1 PARTITION OF ${T}_p FOR VALUES IN (1);
	     CREATE TABLE ${T}_p2 PARTITION OF ${T}_p FOR VALUES IN (2)" >/dev/null
	sql "INSERT INTO $T SELECT g, g FROM generate_series(1, 200) g;
	     INSERT INTO ${T}_p SELECT g, 1, g FROM generate_series(1, 200) g" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX', 'plain');
	     SELECT mikkoo.capture('${T}_p', '$Q', '$EX', 'part')" >/dev/null
	relay_start
	sql "UPDATE $T SET id = id + 1000" >/dev/null
	sql "UPDATE ${T}_p SET part = 2, v = -v WHERE id % 2 = 0" >/dev/null
	run -0 bodies 300 60
	echo "$output" | jq -s -e '[.[] | select(.table_name | endswith("_p") | not)] |
		length == 200 and all(.id == .old.id + 1000 and .new.v == .old.v and
		.diff == {"id": .new.id})'
	echo "$output" | jq -s -e '[.[] | select(.table_name | endswith("_p"))] |
		length == 100 and all(.new.id == .old.id and .new.v == -.old.v and
		.old.part == 1 and .new.part == 2 and .id == {"id": .old.id, "part": 2})'
}

@test "bad input is an error that names it" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, a text);
	     CREATE VIEW ${T}_v AS SELECT * FROM $T;
	     CREATE SEQUENCE ${T}_s;
	     CREATE MATERIALIZED VIEW ${T}_m AS SELECT 1 AS x" >/dev/null
	t="public.tab_$Q"
	check() {
		run -1 --separate-stderr sql "$1"
		assert_output ""
		[[ "$stderr" == *"ERROR:  $2"* ]] || fail "stderr: $stderr"
	}
	check "SELECT mikkoo.capture('$T', 'no_$Q', '$EX')" \
		"mikkoo.capture: no PgQ queue 'no_$Q'"
	check "SELECT mikkoo.capture('$T', '$Q', '$EX', columns => '{a,nope}')" \
		"mikkoo.capture: table $t has no column 'nope' (in columns)"
	check "SELECT mikkoo.capture('$T', '$Q', '$EX', exclude => '{nope}')" \
		"mikkoo.capture: table $t has no column 'nope' (in exclude)"
	check "SELECT mikkoo.capture('$T', '$Q', '$EX', columns => '{id,a}', exclude => '{a}')" \
		"mikkoo.capture: column 'a' is in both columns and exclude"
	check "SELECT mikkoo.capture('${T}_v', '$Q', '$EX')" \
		"mikkoo.capture: ${t}_v is a view, not a table"
	check "SELECT mikkoo.capture('${T}_s', '$Q', '$EX')" \
		"mikkoo.capture: ${t}_s is a sequence, not a table"
	check "SELECT mikkoo.capture('${T}_m', '$Q', '$EX')" \
		"mikkoo.capture: ${t}_m is a materialized view, not a table"
	check "SELECT mikkoo.capture('$T', '$Q', NULL)" \
		"mikkoo.capture: exchange must not be NULL"
	check "SELECT mikkoo.capture('$T', '$Q', '$EX', NULL)" \
		"mikkoo.capture: routing_key must not be NULL"
	check "SELECT mikkoo.capture('$T', NULL, '$EX')" \
		"mikkoo.capture: queue must not be NULL"
	check "SELECT mikkoo.capture('$T', '$Q', '$EX', columns => '{a,NULL}')" \
		"mikkoo.capture: columns and exclude must not contain NULL"
	check "SELECT mikkoo.capture('public.nope_$Q', '$Q', '$EX')" \
		"relation \"public.nope_$Q\" does not exist"
	# nothing was captured by the failed calls
	run -0 sql "SELECT count(*) FROM mikkoo.captures WHERE queue = '$Q'"
	assert_output 0
	# a captured queue that is dropped fails the writes, loudly
	pgq_create_queue "${Q}_d"
	sql "SELECT mikkoo.capture('$T', '${Q}_d', '$EX');
	     SELECT pgq.drop_queue('${Q}_d')" >/dev/null
	check "INSERT INTO $T VALUES (1, 'a')" \
		"mikkoo: table $t is captured into PgQ queue '${Q}_d', which does not exist"
	run -0 sql "SELECT count(*) FROM $T"
	assert_output 0
	check "CALL mikkoo.snapshot('$T', 'no_$Q')" \
		"mikkoo.snapshot: table $t is not captured into queue 'no_$Q'"
}

@test "mikkoo-capture(7)'s example sends the messages it shows" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, full_name text, password text)" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX', exclude => '{password}')" >/dev/null
	relay_start
	sql "INSERT INTO $T (id, full_name, password)
	         VALUES (1, 'Mikael Åkerfeldt', 'x');
	     UPDATE $T SET full_name = 'M. Åkerfeldt' WHERE id = 1;
	     UPDATE $T SET password = 'y' WHERE id = 1;
	     DELETE FROM $T WHERE id = 1" >/dev/null
	get_messages 3
	# the page's bodies, as text but for the table's name and the time
	msgs | jq -r '.body' | sed -e "s/tab_$Q/users/" \
		-e 's/"recorded_at":"[^"]*"/"recorded_at":"..."/' >"$BATS_TEST_TMPDIR/got"
	mandoc -Tutf8 "$MIKKOO_TOP/man/mikkoo-capture.7" | col -bx |
		sed -n '/send three messages/,/A consumer bound/p' |
		grep -E '^ +[{"]' | sed 's/^ *//' | tr -d '\n' |
		sed 's/}{"table_name"/}\n{"table_name"/g; s/$/\n/' >"$BATS_TEST_TMPDIR/page"
	diff "$BATS_TEST_TMPDIR/page" "$BATS_TEST_TMPDIR/got"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/got")" 3
}

@test "odd names: a queue, schema and table with quotes, spaces and capitals" {
	# a queue name the relay may not serve (its config takes 1 to 63 of
	# A-Z a-z 0-9 _ . : -) still captures; one it may serve relays
	q="q '${Q}\" x"
	rq="Q.${Q}:x-y"
	pgq_create_queue "q ''${Q}\" x"
	pgq_create_queue "$rq"
	sql "SELECT pgq.register_consumer('$rq', 'mikkoo')" >/dev/null
	defer sql "SELECT mikkoo.uncapture('\"S ''$Q\".\"T x\"')"
	defer sql "DROP SCHEMA IF EXISTS \"S '$Q\" CASCADE"
	sql "CREATE SCHEMA \"S '$Q\"; CREATE TABLE \"S '$Q\".\"T x\" (\"Id\" int PRIMARY KEY, v text)" >/dev/null
	for dst in "q ''${Q}\" x" "$rq"; do
		sql "SELECT mikkoo.capture('\"S ''$Q\".\"T x\"', '$dst', '$EX',
		     '{schema}/{table}/{action}')" >/dev/null
	done
	run -0 sql "SELECT table_name || '|' || queue || '|' || array_to_string(key_columns, ',')
	            FROM mikkoo.captures WHERE table_name LIKE 'S ''$Q.%' ORDER BY queue"
	assert_output "S '$Q.T x|$rq|Id
S '$Q.T x|$q|Id"
	cat >"$CONF" <<YAML
Application:
  workers:
    '$rq':
      postgres_url: $MIKKOO_PG_URL
      rabbitmq_url: $MIKKOO_AMQP_URL
      wait_duration: 0.1
YAML
	relay_start
	sql "INSERT INTO \"S '$Q\".\"T x\" VALUES (1, 'v')" >/dev/null
	get_messages 1
	msgs | jq -e --arg t "S '$Q.T x" --arg rk "S '$Q/T x/I" '.routing_key == $rk and
		.properties.headers.table == $t and
		(.body | fromjson | .table_name == $t and .id == 1 and .new == {"Id": 1, "v": "v"})'
	# the same event in the other queue's table
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = 'q ''${Q}\" x'")
	run -0 sql "SELECT ev_type || '|' || (ev_data::jsonb ->> 'table_name') || '|' ||
	            (ev_extra4::jsonb ->> 'action') FROM $pfx"
	assert_output "S '$Q/T x/I|S '$Q.T x|I"
}

@test "a writer's search_path cannot hijack the capture's functions" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v text)" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	defer sql "DROP SCHEMA IF EXISTS evil_$Q CASCADE"
	sql "CREATE SCHEMA IF NOT EXISTS evil_$Q;
	     CREATE FUNCTION evil_$Q.to_jsonb(anyelement) RETURNS jsonb
	     LANGUAGE sql AS \$\$ SELECT '{\"hijacked\": 1}'::jsonb \$\$;
	     CREATE FUNCTION evil_$Q.to_char(timestamp, text) RETURNS text
	     LANGUAGE sql AS \$\$ SELECT 'hijacked' \$\$" >/dev/null
	# the trap works where search_path is not pinned
	run -0 sql "SET search_path = evil_$Q, pg_catalog; SELECT to_jsonb(1)"
	assert_output '{"hijacked": 1}'
	relay_start
	sql "SET search_path = evil_$Q, pg_catalog, public;
	     INSERT INTO $T VALUES (1, 'a');
	     INSERT INTO $T SELECT g, 'b' FROM generate_series(2, 100) g" >/dev/null
	get_messages 100
	run -1 grep -c hijacked "$BATS_TEST_TMPDIR/msgs.jsonl"
	assert_output 0
}
