#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# mikkoo-insert: flags and JSON lines, chunks, exact errors.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

setup() {
	Q=$(mk_name)
	pgq_create_queue "$Q"
}

stored() {
	local pfx
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	sql "SELECT ev_type, ev_data, ev_extra1, coalesce(ev_extra2, 'NULL'),
	     coalesce(ev_extra3, 'NULL'), coalesce(ev_extra4, 'NULL')
	     FROM $pfx WHERE ev_id = $1"
}

count_events() {
	local pfx
	pfx=$(sql "SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$Q'")
	sql "SELECT count(*) FROM $pfx"
}

@test "one event from flags, mapped as the relay reads it" {
	run --separate-stderr mikkoo-insert -q "$Q" -e orders -r order.paid \
		-b '{"order": 1}' -t application/json -P type=paid \
		-P delivery_mode=2 -H n=5 -H who=me
	assert_success
	id=$(echo "$output" | jq -e --arg q "$Q" 'select(.line == 1 and .queue == $q) | .ev_id')
	run stored "$id"
	assert_output 'order.paid|{"order": 1}|orders|application/json|{"type":"paid","delivery_mode":2}|{"n":5,"who":"me"}'
}

@test "the body from stdin, and an audited event" {
	run --separate-stderr bash -c "printf 'line1\nline2' | mikkoo-insert -q '$Q' -e x -r k -b - --audit"
	assert_success
	mid=$(echo "$output" | jq -r .message_id)
	id=$(echo "$output" | jq .ev_id)
	run stored "$id"
	assert_output "k|line1
line2|x|NULL|{\"message_id\":\"$mid\"}|{\"pgq_queue\":\"$Q\"}"
	assert_equal "$(sql "SELECT event_id FROM mikkoo.audit WHERE message_id = '$mid'")" "$id"
}

@test "JSON lines: one result per line, in order, ev_ids growing" {
	run --separate-stderr bash -c "for i in \$(seq 2500); do
		echo '{\"exchange\":\"x\",\"routing_key\":\"k\",\"body\":\"'\$i'\"}'
	done | mikkoo-insert -q '$Q' --jsonl --batch 1000"
	assert_success
	assert_equal "$(echo "$output" | wc -l)" 2500
	echo "$output" | jq -s -e 'map(.line) == [range(1; 2501)]'
	echo "$output" | jq -s -e '[.[].ev_id] | . == sort and (unique | length) == 2500'
	assert_equal "$(count_events)" 2500
	[[ "$stderr" == *"2500 events inserted"* ]]
}

@test "JSON lines: queue, body as JSON, properties, headers, audit" {
	run --separate-stderr mikkoo-insert --jsonl <<JSON
{"queue":"$Q","exchange":"","routing_key":"k","body":{"a":[1,2]},"content_type":"application/json","properties":{"type":"t"},"headers":{"h":true},"audit":true}
{"queue":"$Q","exchange":"x","routing_key":"k","body":null}
JSON
	assert_success
	id1=$(echo "$output" | jq -s '.[0].ev_id')
	mid=$(echo "$output" | jq -rs '.[0].message_id')
	run stored "$id1"
	assert_output "k|{\"a\":[1,2]}||application/json|{\"type\":\"t\",\"message_id\":\"$mid\"}|{\"h\":true,\"pgq_queue\":\"$Q\"}"
}

@test "a bad line inserts nothing of its chunk; the other chunks go in" {
	run --separate-stderr mikkoo-insert -q "$Q" --jsonl --batch 2 <<'JSON'
{"exchange":"x","routing_key":"a"}
{"exchange":"x","routing_key":"b","bogus":1}
{"exchange":"x","routing_key":"c"}
{"exchange":"x","routing_key":"d"}
{"exchange":"x"
JSON
	assert_equal "$status" 65
	assert_equal "$(echo "$output" | jq -c '[.line]' | paste -sd' ')" "[3] [4]"
	[[ "$stderr" == *"mikkoo-insert: error: <stdin>:2:1: unknown key 'bogus' (known: queue, exchange, routing_key, body, content_type, properties, headers, audit)"* ]]
	[[ "$stderr" == *"mikkoo-insert: error: lines 1-2 not inserted: their chunk has a bad line"* ]]
	[[ "$stderr" == *"mikkoo-insert: error: <stdin>:5:"* ]]
	assert_equal "$(count_events)" 2
}

@test "bad records: exact messages" {
	check() {
		run --separate-stderr mikkoo-insert -q "$Q" --jsonl <<<"$1"
		assert_equal "$status" 65
		[[ "$stderr" == *"$2"* ]] || fail "stderr: $stderr"
	}
	check '{"routing_key":"k"}' "<stdin>:1:1: 'exchange' is required"
	check '{"exchange":"x"}' "<stdin>:1:1: 'routing_key' is required"
	check '{"exchange":1,"routing_key":"k"}' "'exchange' must be a string"
	check '{"exchange":"x","routing_key":"k","headers":[1]}' "'headers' must be an object or null"
	check '{"exchange":"x","routing_key":"k","audit":"yes"}' "'audit' must be true or false"
	check '{"exchange":"x","routing_key":"k","audit":true}' "an audited event needs a body"
	check '[1]' "<stdin>:1:1: a record must be a JSON object"
	check '{"a":1,"a":2}' "duplicate object key"
	assert_equal "$(count_events)" 0
}

@test "an unknown queue, usage errors, dry run" {
	run --separate-stderr mikkoo-insert -q "nosuch_$$" -e x -r k -b b
	assert_equal "$status" 65
	assert_equal "$stderr" "mikkoo-insert: error: line 1 was not inserted: No such queue"
	run -64 mikkoo-insert -q "$Q" -e x
	assert_output --partial "give -e EXCHANGE and -r ROUTING_KEY, or --jsonl"
	run -64 mikkoo-insert --jsonl -e x
	run -64 mikkoo-insert -q "$Q" -e x -r k -P nokey
	# usage errors after something was built leak nothing (ASan: 86)
	run -64 mikkoo-insert -q "$Q" -e x -r k -P a=1 -H b=2 --bogus
	run --separate-stderr mikkoo-insert -q "$Q" --jsonl -n <<<'{"exchange":"x","routing_key":"k"}'
	assert_success
	assert_output "{\"line\":1,\"ev_id\":null,\"queue\":\"$Q\",\"dry_run\":true}"
	assert_equal "$(count_events)" 0
}

@test "connection errors: 69 and 77 with the masked URL; -d warns about passwords" {
	run --separate-stderr mikkoo-insert -d "postgresql://mikkoo:S3cr3t-CANARY@127.0.0.1:1/x" -q q -e x -r k -b b
	assert_equal "$status" 69
	[[ "$stderr" == *"mikkoo-insert: warning: a password given with -d is visible to every user of this machine"* ]]
	[[ "$stderr" == *"cannot connect to PostgreSQL 'postgresql://mikkoo:***@127.0.0.1:1/x'"* ]]
	[[ "$stderr" != *CANARY* ]]
	MIKKOO_POSTGRES_URL="postgresql://mikkoo:wrong@127.0.0.1:$PGPORT/mikkoo" \
		run --separate-stderr mikkoo-insert -q q -e x -r k -b b
	assert_equal "$status" 77
}

@test "the relay's config gives the connection and the queue" {
	CONSUMER=mikkoo
	EX=x
	CONF="$BATS_TEST_TMPDIR/m.yml"
	write_config "$CONF"
	run --separate-stderr mikkoo-insert -c "$CONF" -e x -r k -b b
	assert_success
	echo "$output" | jq -e --arg q "$Q" '.queue == $q'
}

@test "a server's WARNING is one line in the log's format, not libpq's raw text" {
	# a trigger on the queue's event tables speaks up on every insert
	sql "CREATE OR REPLACE FUNCTION public.warn_$Q() RETURNS trigger
	     LANGUAGE plpgsql AS \$\$ BEGIN
	         RAISE WARNING 'slow disk'
	             USING DETAIL = 'a second line';
	         RETURN NEW; END \$\$" >/dev/null
	for t in $(sql "SELECT queue_data_pfx || '_' || n FROM pgq.queue,
	                generate_series(0, queue_ntables - 1) n
	                WHERE queue_name = '$Q'"); do
		sql "CREATE TRIGGER w BEFORE INSERT ON $t
		     FOR EACH ROW EXECUTE FUNCTION public.warn_$Q()" >/dev/null
	done
	run --separate-stderr mikkoo-insert -q "$Q" -e orders -r k -b '{}'
	assert_success
	assert_equal "$stderr" "mikkoo-insert: warning: postgresql says: slow disk"
	assert_equal "$(count_events)" 1
}
