#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# CALL mikkoo.snapshot(): R events for the rows a captured table already
# has, in chunks, consistent with concurrent writers.

load helpers/common
load helpers/relay
load helpers/capture
load helpers/snapshot

setup_file() {
	install_schema
}

setup() {
	cap_setup
}

teardown() {
	[ -n "${WRITERS:-}" ] && kill $WRITERS 2>/dev/null
	common_teardown
	cap_drop_role
}

@test "one R event per row in key order, like an insert's; every capture of the table or one" {
	Q2="${Q}_b"
	pgq_create_queue "$Q2"
	sql "SELECT pgq.register_consumer('$Q2', 'mikkoo')" >/dev/null
	cat >>"$CONF" <<YAML
    $Q2:
      postgres_url: $MIKKOO_PG_URL
      rabbitmq_url: $MIKKOO_AMQP_URL
      wait_duration: 0.1
YAML
	sql "CREATE TABLE $T (id int PRIMARY KEY, v text, secret text, z int)" >/dev/null
	sql "INSERT INTO $T SELECT g, 'v' || g, 's', NULL FROM generate_series(25, 1, -1) g" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX', '{table}.{action}', exclude => '{secret}');
	     SELECT mikkoo.capture('$T', '$Q2', '$EX', 'two.{action}')" >/dev/null
	relay_start
	run -0 --separate-stderr psql -qXAt -v ON_ERROR_STOP=1 -c "CALL mikkoo.snapshot('$T', chunk => 10)"
	assert_equal "$stderr" ""
	get_messages 50
	msgs | jq -c 'select(.routing_key | startswith("tab_")) | .body | fromjson' \
		>"$BATS_TEST_TMPDIR/one"
	jq -s -e 'length == 25 and map(.id) == [range(1; 26)] and
		all(.action == "R" and .old == {} and .new == {"id": .id, "v": ("v" + (.id | tostring)), "z": null} and
		    .diff == {"id": .id, "v": .new.v})' "$BATS_TEST_TMPDIR/one"
	msgs | jq -s -e --arg t "tab_$Q" 'map(select(.routing_key == $t + ".R")) |
		length == 25 and all(.properties.headers.action == "R")'
	msgs | jq -s -e 'map(select(.routing_key == "two.R") | .body | fromjson) |
		length == 25 and all(.new.secret == "s")'
	# an R body is what an insert of the row would send, but the action
	sql "INSERT INTO $T VALUES (26, 'v26', 's', NULL)" >/dev/null
	get_messages 2
	msgs | jq -c 'select(.routing_key | startswith("tab_")) | .body | fromjson |
		del(.recorded_at, .action, .id, .new.id, .diff.id) | .new.v |= sub("26"; "1") | .diff.v |= sub("26"; "1")' >"$BATS_TEST_TMPDIR/ins"
	head -1 "$BATS_TEST_TMPDIR/one" | jq -c 'del(.recorded_at, .action, .id, .new.id, .diff.id)' |
		cmp - "$BATS_TEST_TMPDIR/ins"
	# one queue only
	run -0 sql "CALL mikkoo.snapshot('$T', '$Q2', 7)"
	get_messages 26
	msgs | jq -s -e 'all(.routing_key == "two.R") and (map(.body | fromjson | .id) == [range(1; 27)])'
}

@test "a composite key is read in key order" {
	sql "CREATE TABLE $T (a int, b text, v int, PRIMARY KEY (b, a))" >/dev/null
	sql "INSERT INTO $T SELECT g % 4, chr(100 - g % 3), g FROM generate_series(1, 12) g" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	relay_start
	run -0 sql "CALL mikkoo.snapshot('$T', chunk => 5)"
	run -0 bodies 12
	expected=$(sql "SELECT json_agg(json_build_object('b', b, 'a', a) ORDER BY b, a) FROM $T")
	echo "$output" | jq -s -e --argjson e "$expected" 'map(.id) == $e'
}

@test "errors: no primary key, a bad chunk, not captured, inside a transaction block" {
	sql "CREATE TABLE $T (id int PRIMARY KEY); CREATE TABLE ${T}_nokey (v int)" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX');
	     SELECT mikkoo.capture('${T}_nokey', '$Q', '$EX')" >/dev/null
	t="public.tab_$Q"
	check() {
		run -1 --separate-stderr sql "$1"
		assert_output ""
		[[ "$stderr" == *"ERROR:  $2"* ]] || fail "stderr: $stderr"
	}
	check "CALL mikkoo.snapshot('${T}_nokey')" \
		"mikkoo.snapshot: table ${t}_nokey has no primary key: the snapshot reads it in key order"
	check "CALL mikkoo.snapshot('$T', chunk => 0)" \
		"mikkoo.snapshot: chunk must be a positive number of rows, not 0"
	check "CALL mikkoo.snapshot('$T', '$Q', NULL)" \
		"mikkoo.snapshot: chunk must be a positive number of rows, not NULL"
	sql "SELECT mikkoo.uncapture('$T')" >/dev/null
	check "CALL mikkoo.snapshot('$T')" \
		"mikkoo.snapshot: table $t is not captured"
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX'); INSERT INTO $T VALUES (1)" >/dev/null
	run -1 --separate-stderr psql -qXAt -v ON_ERROR_STOP=1 \
		-c "BEGIN" -c "CALL mikkoo.snapshot('$T')"
	[[ "$stderr" == *"ERROR:  invalid transaction termination"* ]] || fail "stderr: $stderr"
}

@test "a role with SELECT and UPDATE on the table and pgq_writer may snapshot it; without UPDATE or pgq_writer it may not" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int);
	     INSERT INTO $T SELECT g, g FROM generate_series(1, 30) g" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	cap_role
	sql "GRANT USAGE ON SCHEMA mikkoo TO $CAP_ROLE;
	     GRANT SELECT ON $T TO $CAP_ROLE; GRANT pgq_writer TO $CAP_ROLE" >/dev/null
	run -1 --separate-stderr as_role "CALL mikkoo.snapshot('$T', chunk => 10)"
	[[ "$stderr" == *"permission denied for table tab_$Q"* ]] || fail "stderr: $stderr"
	sql "GRANT UPDATE ON $T TO $CAP_ROLE; REVOKE pgq_writer FROM $CAP_ROLE" >/dev/null
	run -1 --separate-stderr as_role "CALL mikkoo.snapshot('$T', chunk => 10)"
	[[ "$stderr" == *"permission denied for function insert_event"* ]] || fail "stderr: $stderr"
	sql "GRANT pgq_writer TO $CAP_ROLE" >/dev/null
	run -0 as_role "CALL mikkoo.snapshot('$T', chunk => 10)"
	relay_start
	run -0 bodies 30
	echo "$output" | jq -s -e 'map(.id) == [range(1; 31)] and all(.action == "R")'
}

@test "a deadlock with a writer: the snapshot reads the chunk again, after the writer's changes" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int);
	     INSERT INTO $T SELECT g, g FROM generate_series(1, 30) g" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	snapshot_deadlock "CALL mikkoo.snapshot('$T', chunk => 10)"
	grep -F "NOTICE:  mikkoo.snapshot: deadlock with a writer, reading the chunk again" \
		"$BATS_TEST_TMPDIR/snap.err"
	relay_start
	get_messages 32
	msgs | assert_deadlock_order
}

# events_at_least TABLE N: whether the event table holds N events.
events_at_least() {
	[ "$(sql "SELECT count(*) >= $2 FROM $1")" = t ]
}

@test "the snapshot under concurrent random writers: the events, applied per id in delivery order, make the table" {
	sql "CREATE TABLE $T (id int PRIMARY KEY, v int, s text)" >/dev/null
	sql "INSERT INTO $T SELECT g, g, md5(g::text) FROM generate_series(1, 20000) g" >/dev/null
	sql "SELECT mikkoo.capture('$T', '$Q', '$EX')" >/dev/null
	seed=${MIKKOO_SEED:-$((RANDOM * 32768 + RANDOM))}
	echo "# writers' seed: $seed (MIKKOO_SEED)" >&3
	start_writers "$seed"
	# the writers are at work before the snapshot starts
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	# (a function, so that wait_for asks again each time: a "$(...)"
	# argument would be read once)
	wait_for 60 events_at_least "$pfx" 200
	run -0 --separate-stderr sql "CALL mikkoo.snapshot('$T', '$Q', 1000)"
	echo "# snapshot chunks read again after a deadlock: $(grep -c deadlock <<<"$stderr")" >&3
	# and still after it ended
	n=$(sql "SELECT count(*) FROM $pfx")
	wait_for 60 events_at_least "$pfx" $((n + 200))
	stop_writers
	echo "# writers' transactions lost to a deadlock: $(grep -c 'deadlock detected' "$BATS_TEST_TMPDIR/writers.err")" >&3
	total=$(sql "SELECT count(*) FROM $pfx")
	echo "# $total events" >&3
	relay_start
	get_messages "$total" 300
	# every message once, in ev_id order within its batch... and all of
	# them: the event ids are those PgQ has
	assert_equal "$(msgs | jq -s 'map(.properties.headers.event_id) | unique | length')" "$total"
	# R events: at least 20 chunks, each its own transaction of about
	# 1000 (a chunk is the rows up to a bound key read first: a writer
	# may insert keys below it before the rows are locked, a few more)
	msgs | jq -s -e 'map(select(.properties.headers.action == "R")) |
		(length >= 19000) and
		(group_by(.properties.headers.txid) | length >= 20 and
		 all(length <= 1050))'
	# the writers' events interleave with the snapshot's
	msgs | jq -s -e 'map(select(.properties.headers.action == "R") |
		.properties.headers.event_id) as $r |
		[.[] | select(.properties.headers.action != "R") |
		 .properties.headers.event_id |
		 select(. > ($r | min) and . < ($r | max))] | length > 0'
	# applied in delivery order per id, they make the table
	msgs | assert_applied_is_table
	[ "$(jq 'length' "$BATS_TEST_TMPDIR/table")" -gt 15000 ]
}
