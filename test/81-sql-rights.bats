#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# The rights model of sql/mikkoo.sql, attacked: low-privileged roles try
# every known way to run code with another role's rights, to write events
# or audit rows they may not, and to break mikkoo.captures; each attempt
# must fail, judged by its effect (the attacker is not superuser, no trap
# ran as another role, no forged event exists), while the documented
# flows keep working.  Every attack runs against two installs: the
# schema owned by a superuser (as mikkoo.sql 0.1.0 was installed) and by
# a NOLOGIN owner (the recommended install).

load helpers/common

# Roles are cluster-wide: names unique to this run.
setup_file() {
	export P="r$$"
	export DB_SU="${P}_su" DB_OWN="${P}_own"
	export A="${P}_atk"   # may write PgQ events, owns tables, captures them
	export N="${P}_nob"   # owns tables, no right on PgQ at all
	export V="${P}_vic"   # a team that captures its table properly
	export W="${P}_wri"   # may only write the victim's table
	export OWNER="${P}_owner"
	local r
	for r in "$A" "$N" "$V" "$W"; do
		sql "CREATE ROLE $r LOGIN PASSWORD 'pw'" >/dev/null
	done
	sql "CREATE ROLE $OWNER NOLOGIN; GRANT pgq_admin TO $OWNER;
	     GRANT pgq_writer TO $A, $V" >/dev/null
	make_db "$DB_SU" ""
	make_db "$DB_OWN" "$OWNER"
}

teardown_file() {
	local d r
	psql -qX -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		     WHERE slot_name = '${P}_snap'" >/dev/null 2>&1 || true
	for d in "$DB_SU" "$DB_OWN" "${P}_up"; do
		psql -qX -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true
	done
	for r in "$A" "$N" "$V" "$W" "${P}_old" "${P}_up" "$OWNER"; do
		psql -qX -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || true
	done
}

# make_db NAME OWNER: a database with pgq, the victim's queue vq and
# mikkoo.sql installed by the superuser (into a schema OWNER owns, if
# given); the victim's captured table, a secret table, the attackers'
# schemas with their traps.
make_db() {
	local db=$1 owner=$2
	sql "CREATE DATABASE $db" >/dev/null
	PGDATABASE=$db sql "CREATE EXTENSION pgq; SELECT pgq.create_queue('vq');
	     GRANT CREATE ON DATABASE $db TO $A, $N, $V" >/dev/null
	if [ -n "$owner" ]; then
		PGDATABASE=$db sql "CREATE SCHEMA mikkoo AUTHORIZATION $owner" >/dev/null
	fi
	PGDATABASE=$db psql -qX -v ON_ERROR_STOP=1 \
		-f "$MIKKOO_SQL" >/dev/null
	PGDATABASE=$db sql "GRANT USAGE ON SCHEMA mikkoo TO PUBLIC" >/dev/null
	DB=$db
	as "$V" "CREATE SCHEMA $V;
		 CREATE TABLE $V.t (id int PRIMARY KEY, v text);
		 CREATE TABLE $V.secret (s text);
		 INSERT INTO $V.secret VALUES ('the-secret-${P}');
		 SELECT mikkoo.capture('$V.t', 'vq', 'vex');
		 GRANT USAGE ON SCHEMA $V TO PUBLIC;
		 GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON $V.t TO $W" >/dev/null
	traps "$A"
	traps "$N"
}

# traps ROLE: in schema ROLE, a log every trap writes (who ran it) and
# types whose casts, input and checks spring a trap that also tries to
# make ROLE a superuser.
traps() {
	local r=$1
	as "$r" "$(sed "s/ATK/$r/g" <<'SQL'
CREATE SCHEMA ATK;
GRANT USAGE ON SCHEMA ATK TO PUBLIC;
CREATE TABLE ATK.log (who text, what text);
GRANT INSERT ON ATK.log TO PUBLIC;
CREATE FUNCTION ATK.trap(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ATK.log VALUES (current_user, what);
    BEGIN
        EXECUTE 'ALTER ROLE ATK SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END $$;
CREATE TYPE ATK.mood AS ENUM ('ok', 'sad');
CREATE TYPE ATK.rng AS RANGE (subtype = int4, multirange_type_name = ATK.mrng);
CREATE DOMAIN ATK.dmood AS ATK.mood;
CREATE TYPE ATK.comp AS (a int, m ATK.mood);
CREATE DOMAIN ATK.dkey AS int CHECK (ATK.trap('domain check'));
CREATE FUNCTION ATK.mood_json(ATK.mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN PERFORM ATK.trap('mood to json'); RETURN '"trapped"'::json; END $$;
CREATE CAST (ATK.mood AS json) WITH FUNCTION ATK.mood_json(ATK.mood);
CREATE FUNCTION ATK.rng_json(ATK.rng) RETURNS json LANGUAGE plpgsql AS $$
BEGIN PERFORM ATK.trap('range to json'); RETURN '"trapped"'::json; END $$;
CREATE CAST (ATK.rng AS json) WITH FUNCTION ATK.rng_json(ATK.rng);
CREATE FUNCTION ATK.mrng_json(ATK.mrng) RETURNS json LANGUAGE plpgsql AS $$
BEGIN PERFORM ATK.trap('multirange to json'); RETURN '"trapped"'::json; END $$;
CREATE CAST (ATK.mrng AS json) WITH FUNCTION ATK.mrng_json(ATK.mrng);
CREATE FUNCTION ATK.mood_text(ATK.mood) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM ATK.trap('mood to text'); RETURN 'ok'; END $$;
CREATE CAST (ATK.mood AS text) WITH FUNCTION ATK.mood_text(ATK.mood);
CREATE FUNCTION ATK.text_mood(text) RETURNS ATK.mood LANGUAGE plpgsql AS $$
BEGIN PERFORM ATK.trap('text to mood'); RETURN 'ok'; END $$;
CREATE CAST (text AS ATK.mood) WITH FUNCTION ATK.text_mood(text);
SQL
)" >/dev/null
}

# as ROLE SQL: run SQL as ROLE in database $DB.
as() {
	env PGUSER="$1" PGPASSWORD=pw PGDATABASE="$DB" psql -qXAt \
		-v ON_ERROR_STOP=1 -c "$2"
}

# su SQL: run SQL as the superuser in database $DB.
su() {
	PGDATABASE=$DB sql "$1"
}

# The effect that matters: neither attacker is superuser, and no trap
# ran as anyone but the attacker who set it.
assert_safe() {
	run -0 su "SELECT string_agg(rolname, ',') FROM pg_roles
		   WHERE rolname IN ('$A', '$N') AND rolsuper"
	assert_output ""
	run -0 su "SELECT string_agg(who || ' ran ' || what, ', ')
		   FROM (SELECT * FROM $A.log WHERE who <> '$A'
			 UNION ALL SELECT * FROM $N.log WHERE who <> '$N') l"
	assert_output ""
}

# vq's events whose body matches a LIKE pattern, counted.
events_like() {
	su "SELECT count(*) FROM pgq.event_1 WHERE ev_data LIKE '$1'"
}

# each_db FUNCTION: the attack against both installs.  (Not "f ||
# fail": on the left of || a function runs without errexit, so its
# assertions would not stop it.)
each_db() {
	local f=$1
	for DB in "$DB_SU" "$DB_OWN"; do
		echo "in database $DB"
		"$f"
	done
}

@test "the recommended install: everything belongs to the NOLOGIN owner; only three functions run with its rights" {
	DB=$DB_OWN
	run -0 su "SELECT count(*) FROM pg_class c
		   WHERE c.relnamespace = 'mikkoo'::regnamespace
		     AND c.relowner <> '$OWNER'::regrole"
	assert_output 0
	run -0 su "SELECT count(*) FROM pg_proc p
		   WHERE p.pronamespace = 'mikkoo'::regnamespace
		     AND p.proowner <> '$OWNER'::regrole"
	assert_output 0
	for DB in "$DB_SU" "$DB_OWN"; do
		run -0 su "SELECT string_agg(proname, ',' ORDER BY proname)
			   FROM pg_proc WHERE pronamespace = 'mikkoo'::regnamespace
			     AND prosecdef"
		assert_output "_capture,_capture_dropped,_capture_gc"
		# every function pins search_path (the procedures cannot; mikkoo.emit
		# names all it calls instead: test/30)
		run -0 su "SELECT count(*) FROM pg_proc
			   WHERE pronamespace = 'mikkoo'::regnamespace
			     AND proname NOT IN ('snapshot', 'slot_snapshot', '_snapshot_run', 'emit')
			     AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false)"
		assert_output 0
	done
	# the traps are live: run by their owner, they fire
	run -0 as "$A" "SELECT to_jsonb('ok'::$A.mood); SELECT count(*) FROM $A.log"
	assert_line 1
}

cast_attack() {
	local ty k
	for ty in mood rng mrng dmood 'mood[]' comp 'comp[]'; do
		k=${ty%'[]'}
		[ "$k" = "$ty" ] || k=${k}_a
		as "$A" "CREATE TABLE $A.t_$k (id int PRIMARY KEY, v $A.$ty, x $A.mood);
			 SELECT mikkoo.capture('$A.t_$k', 'vq', 'ex', exclude => '{x}')" >/dev/null
	done
	# one-row and bulk statements, every action, the excluded column too
	as "$A" "INSERT INTO $A.t_mood VALUES (1, 'ok', 'sad');
		 INSERT INTO $A.t_mood SELECT g, 'sad', 'ok' FROM generate_series(2, 100) g;
		 UPDATE $A.t_mood SET v = 'ok' WHERE id = 2;
		 UPDATE $A.t_mood SET x = 'ok';
		 DELETE FROM $A.t_mood WHERE id < 3;
		 DELETE FROM $A.t_mood;
		 INSERT INTO $A.t_rng VALUES (1, '[1,5)', 'ok');
		 INSERT INTO $A.t_mrng VALUES (1, '{[1,5), [7,9)}', 'ok');
		 INSERT INTO $A.t_dmood VALUES (1, 'sad', 'ok');
		 INSERT INTO $A.t_mood_a VALUES (1, '{ok,sad,NULL}', 'ok'),
		        (2, '{{ok,sad},{sad,ok}}', 'ok'), (3, '{}', 'ok');
		 INSERT INTO $A.t_comp VALUES (1, ROW(1, 'sad'), 'ok'), (2, NULL, 'ok');
		 INSERT INTO $A.t_comp_a VALUES (1, ARRAY[ROW(1, 'sad')::$A.comp, NULL], 'ok');
		 UPDATE $A.t_comp SET v = ROW(2, 'ok');
		 DELETE FROM $A.t_comp" >/dev/null
	assert_safe
	# and the values are what to_jsonb gives without the casts
	run -0 su "SELECT ev_data::jsonb -> 'new' -> 'v' FROM pgq.event_1
		   WHERE ev_data::jsonb ->> 'table_name' <> '$A.t_mood'
		     AND ev_data::jsonb ->> 'action' = 'I' ORDER BY ev_id"
	assert_output '"[1,5)"
"{[1,5),[7,9)}"
"sad"
["ok", "sad", null]
[["ok", "sad"], ["sad", "ok"]]
[]
{"a": 1, "m": "sad"}
null
[{"a": 1, "m": "sad"}, null]'
	run -0 events_like '%trapped%'
	assert_output 0
	# 100 inserted, one update (the other changed only the excluded
	# column, so it sent nothing), 100 deleted
	run -0 events_like "%\"table_name\":\"$A.t_mood\"%"
	assert_output 201
	as "$A" "DROP TABLE $A.t_mood, $A.t_rng, $A.t_mrng, $A.t_dmood, $A.t_mood_a,
		 $A.t_comp, $A.t_comp_a" >/dev/null
}

@test "casts to json of an owner's enum, range, multirange, domain, array and composite never run with mikkoo's rights" {
	each_db cast_attack
}

temp_attack() {
	# types, casts and the table all in pg_temp, in one session
	as "$A" "CREATE TYPE pg_temp.tm AS ENUM ('a');
		 CREATE FUNCTION pg_temp.tm_json(pg_temp.tm) RETURNS json
		     LANGUAGE plpgsql AS \$\$
		     BEGIN PERFORM $A.trap('temp enum to json'); RETURN '1'; END \$\$;
		 CREATE CAST (pg_temp.tm AS json) WITH FUNCTION pg_temp.tm_json(pg_temp.tm);
		 CREATE TEMP TABLE tt (id int PRIMARY KEY, v pg_temp.tm);
		 SELECT mikkoo.capture('pg_temp.tt', 'vq', 'ex');
		 INSERT INTO tt VALUES (1, 'a');
		 UPDATE tt SET v = 'a'; DELETE FROM tt" >/dev/null
	assert_safe
}

@test "temporary types, casts and tables change nothing" {
	each_db temp_attack
}

handmade_attack() {
	local id
	id=$(su "SELECT coalesce(max(ev_id), 0) FROM pgq.event_1")
	# a trigger written by hand, with and without REFERENCING, with the
	# victim's trigger name and the 0.1.0 arguments of the victim's
	# capture (routing key, body head and headers of its table)
	as "$N" "CREATE TABLE $N.h (id int PRIMARY KEY, v text);
		 CREATE TRIGGER mikkoo_vq_i AFTER INSERT ON $N.h
		     REFERENCING NEW TABLE AS mikkoo_new FOR EACH STATEMENT
		     EXECUTE FUNCTION mikkoo._capture('vq')" >/dev/null
	run -1 as "$N" "INSERT INTO $N.h VALUES (1, 'forged')"
	assert_output --partial "was not made by mikkoo.capture()"
	as "$N" "DROP TRIGGER mikkoo_vq_i ON $N.h;
		 CREATE TRIGGER mikkoo_vq_i AFTER INSERT ON $N.h
		     REFERENCING NEW TABLE AS mikkoo_new FOR EACH STATEMENT
		     EXECUTE FUNCTION mikkoo._capture('vq', 'vex', 'forged.key',
		         '', '', 'true', '{id}', '$V', 't', 'forged.key',
		         '{\"table_name\":\"$V.t\",\"action\":\"I\",\"id\":',
		         '{\"table\":\"$V.t\",\"action\":\"I\"}', 'id')" >/dev/null
	run -1 as "$N" "INSERT INTO $N.h VALUES (2, 'forged')"
	assert_output --partial "was not made by mikkoo.capture()"
	# a temp view in place of the transition table, run with the rights
	# of whoever reads it (security_invoker), that reads a table the
	# attacker may not read and shows it in an error, and springs a trap
	run -1 as "$N" "CREATE TEMP VIEW mikkoo_new WITH (security_invoker = true) AS
		     SELECT s.s::int AS id, $N.trap('pg_temp view') AS v FROM $V.secret s;
		 CREATE TEMP TABLE h2 (id int);
		 CREATE TRIGGER mikkoo_vq_i AFTER INSERT ON h2 FOR EACH STATEMENT
		     EXECUTE FUNCTION mikkoo._capture('vq');
		 INSERT INTO h2 VALUES (1)"
	assert_output --partial "was not made by mikkoo.capture()"
	refute_output --partial "the-secret"
	# a row-level and a BEFORE trigger, and a second trigger on a table
	# the attacker captured properly
	as "$A" "CREATE TABLE $A.h (id int PRIMARY KEY);
		 SELECT mikkoo.capture('$A.h', 'vq', 'ex');
		 CREATE TRIGGER x BEFORE INSERT ON $A.h FOR EACH ROW
		     EXECUTE FUNCTION mikkoo._capture('vq')" >/dev/null
	run -1 as "$A" "INSERT INTO $A.h VALUES (1)"
	assert_output --partial "was not made by mikkoo.capture()"
	as "$A" "DROP TRIGGER x ON $A.h;
		 CREATE TRIGGER mikkoo_vq_x AFTER INSERT ON $A.h
		     REFERENCING NEW TABLE AS mikkoo_new FOR EACH STATEMENT
		     EXECUTE FUNCTION mikkoo._capture('vq')" >/dev/null
	run -1 as "$A" "INSERT INTO $A.h VALUES (1)"
	assert_output --partial "was not made by mikkoo.capture()"
	assert_safe
	run -0 su "SELECT count(*) FROM pgq.event_1 WHERE ev_id > $id"
	assert_output 0
	# the triggers of a capture swapped for ones whose transition tables
	# trade places: refused too
	as "$A" "DROP TRIGGER mikkoo_vq_x ON $A.h; DROP TRIGGER mikkoo_vq_u ON $A.h;
		 CREATE TRIGGER mikkoo_vq_u AFTER UPDATE ON $A.h
		     REFERENCING OLD TABLE AS mikkoo_new NEW TABLE AS mikkoo_old
		     FOR EACH STATEMENT EXECUTE FUNCTION mikkoo._capture('vq');
		 INSERT INTO $A.h VALUES (1)" >/dev/null
	run -1 as "$A" "UPDATE $A.h SET id = 2"
	assert_output --partial "was not made by mikkoo.capture()"
	# mikkoo.captures is not broken by any of this, nor by a trigger
	# whose arguments do not parse
	as "$N" "CREATE TABLE $N.b (id int);
		 CREATE TRIGGER b1 AFTER INSERT ON $N.b FOR EACH STATEMENT
		     EXECUTE FUNCTION mikkoo._capture();
		 CREATE TRIGGER b2 AFTER INSERT ON $N.b FOR EACH STATEMENT
		     EXECUTE FUNCTION mikkoo._capture('vq', 'x', 'y', '{', '}', 'maybe', '{{',
		         'a', 'b', 'c', 'd', 'e', 'f')" >/dev/null
	run -0 as "$W" "SELECT string_agg(table_name, ',' ORDER BY table_name)
		FROM mikkoo.captures WHERE table_name IN ('$A.h', '$V.t', '$N.b', '$N.h')"
	assert_output "$A.h,$V.t"
	run -0 as "$N" "SELECT count(*) = (SELECT count(*) FROM mikkoo.capture_settings)
		FROM mikkoo.captures"
	assert_output t
	as "$N" "DROP TABLE $N.h, $N.b" >/dev/null
	as "$A" "DROP TABLE $A.h" >/dev/null
}

@test "triggers written by hand (with and without REFERENCING, a pg_temp view, the victim's names and arguments) send nothing and read nothing" {
	each_db handmade_attack
}

snapshot_attack() {
	as "$A" "CREATE TABLE $A.s (id $A.dkey PRIMARY KEY, m $A.mood, r $A.rng);
		 INSERT INTO $A.s SELECT g, 'ok', '[1,2)' FROM generate_series(1, 5) g;
		 CREATE TABLE $A.s2 (id $A.mood PRIMARY KEY, v int);
		 INSERT INTO $A.s2 VALUES ('ok', 1), ('sad', 2);
		 SELECT mikkoo.capture('$A.s', 'vq', 'ex');
		 SELECT mikkoo.capture('$A.s2', 'vq', 'ex');
		 DELETE FROM $A.log" >/dev/null
	# the superuser snapshots the attacker's tables, chunk by chunk, so
	# keys are read and compared: a domain key with a check, an enum key
	# with casts to and from text (one that reads every key as the
	# first would make the snapshot loop: bounded, in case)
	PGOPTIONS='-c statement_timeout=120s' PGDATABASE=$DB psql -qX -v ON_ERROR_STOP=1 \
		-c "CALL mikkoo.snapshot('$A.s', chunk => 2)" \
		-c "CALL mikkoo.snapshot('$A.s2', chunk => 1)" >/dev/null
	assert_safe
	run -0 events_like "%\"table_name\":\"$A.s\",\"action\":\"R\"%"
	assert_output 5
	run -0 events_like "%\"table_name\":\"$A.s2\",\"action\":\"R\"%"
	assert_output 2
	run -0 su "SELECT string_agg(ev_data::jsonb ->> 'id', ',' ORDER BY ev_id)
		   FROM pgq.event_1 WHERE ev_data::jsonb ->> 'action' = 'R'
		     AND ev_data::jsonb ->> 'table_name' = '$A.s2'"
	assert_output "ok,sad"
	run -0 events_like '%trapped%'
	assert_output 0
	# and a slot worker's snapshot of them (its messages read from a
	# slot of its own; commits flushed at once, so that the slot has them)
	su "CREATE PUBLICATION ${P}_snap FOR TABLE $A.s, $A.s2" >/dev/null
	su "SELECT pg_create_logical_replication_slot('${P}_snap', 'test_decoding')" >/dev/null
	PGOPTIONS='-c statement_timeout=120s -c synchronous_commit=on' PGDATABASE=$DB \
		psql -qX -v ON_ERROR_STOP=1 \
		-c "CALL mikkoo.slot_snapshot('$A.s', '${P}_snap', 'st', 'ex', chunk => 2)" \
		-c "CALL mikkoo.slot_snapshot('$A.s2', '${P}_snap', 'st', 'ex', chunk => 1)" >/dev/null
	assert_safe
	run -0 su "SELECT count(*) FROM pg_logical_slot_get_changes('${P}_snap', NULL, NULL)
		   WHERE data LIKE 'message: transactional: 1 prefix: mikkoo.emit,%\"action\":\"R\"%'
		     AND data NOT LIKE '%trapped%'"
	assert_output 7
	su "SELECT pg_drop_replication_slot('${P}_snap')" >/dev/null
	su "DROP PUBLICATION ${P}_snap" >/dev/null
	as "$A" "DROP TABLE $A.s, $A.s2" >/dev/null
}

@test "the superuser's snapshot of an attacker's table runs none of its casts, inputs or checks" {
	each_db snapshot_attack
}

forge_attack() {
	local id audits oid
	su "SELECT mikkoo.insert_audited_event('vq', 'vex', 'real', 'body', NULL)" >/dev/null
	id=$(su "SELECT max(ev_id) FROM pgq.event_1")
	audits=$(su "SELECT count(*) FROM mikkoo.audit")
	run -1 as "$N" "SELECT mikkoo.insert_event('vq', 'vex', 'forged', 'b', NULL, NULL, NULL)"
	assert_output --partial "permission denied"
	run -1 as "$N" "SELECT mikkoo.insert_event('vq', 'vex', 'forged', 'b', NULL)"
	assert_output --partial "permission denied"
	run -1 as "$N" "SELECT mikkoo.insert_audited_event('vq', 'vex', 'forged', 'b', NULL)"
	assert_output --partial "permission denied"
	run -1 as "$N" "SELECT mikkoo.new_audit_record(gen_random_uuid(), 1, 'vq',
		'vex', 'forged', 'b', NULL, NULL, NULL)"
	assert_output --partial "permission denied"
	run -1 as "$N" "SELECT mikkoo.delete_audit_record(message_id) FROM
		(SELECT gen_random_uuid() AS message_id) x"
	assert_output --partial "permission denied"
	run -1 as "$A" "DELETE FROM mikkoo.audit"
	assert_output --partial "permission denied"
	# the settings table: no writing without PgQ's right, none for a
	# table the role may not create triggers on, no capture of it
	run -1 as "$N" "INSERT INTO mikkoo.capture_settings (tbl, queue, exchange,
		routing_key, skip_unchanged, key_columns, trigger_prefix)
		VALUES ('$N.log', 'vq', 'x', 'x', true, '{}', 'x')"
	assert_output --partial "permission denied"
	oid=$(su "SELECT '$V.t'::regclass::oid")
	run -1 as "$A" "INSERT INTO mikkoo.capture_settings (tbl, queue, exchange,
		routing_key, skip_unchanged, key_columns, trigger_prefix)
		VALUES ($oid, 'vq', 'stolen', 'x', true, '{}', 'mikkoo_vq')"
	assert_output --partial "row-level security"
	run -1 as "$A" "SELECT mikkoo.capture('$V.t', 'vq', 'stolen')"
	assert_output --partial "permission denied"
	run -1 as "$N" "SELECT mikkoo.capture('$N.log', 'vq', 'x')"
	assert_output --partial "takes the right to write PgQ events"
	as "$A" "DELETE FROM mikkoo.capture_settings;
		 SELECT mikkoo.uncapture('$V.t')" >/dev/null 2>&1 || true
	assert_safe
	run -0 su "SELECT count(*) FROM pgq.event_1 WHERE ev_id > $id"
	assert_output 0
	run -0 su "SELECT count(*) FROM mikkoo.audit"
	assert_output "$audits"
	run -0 su "SELECT exchange FROM mikkoo.captures WHERE tbl = '$V.t'::regclass"
	assert_output vex
}

@test "no event, audit row or capture setting is written or deleted without the rights: each function, each table" {
	each_db forge_attack
}

legit_flows() {
	local id
	id=$(su "SELECT coalesce(max(ev_id), 0) FROM pgq.event_1")
	# a writer with rights on the table only; one-row and bulk statements
	as "$W" "INSERT INTO $V.t VALUES (1, 'a');
		 INSERT INTO $V.t SELECT g, 'b' FROM generate_series(2, 200) g;
		 UPDATE $V.t SET v = 'c' WHERE id = 1;
		 UPDATE $V.t SET v = 'd';
		 DELETE FROM $V.t WHERE id > 100;
		 TRUNCATE $V.t" >/dev/null
	run -0 su "SELECT ev_type || ' ' || (ev_data::jsonb ->> 'action'), count(*)
		   FROM pgq.event_1 WHERE ev_id > $id GROUP BY 1 ORDER BY 1"
	assert_output "$V.t D|100
$V.t I|200
$V.t T|1
$V.t U|201"
	# an enum of the table's owner, no cast: what to_jsonb gives; a
	# producer with pgq_writer; a snapshot by the owner
	as "$V" "CREATE TYPE $V.st AS ENUM ('new', 'paid');
		 CREATE TABLE $V.o (id int PRIMARY KEY, s $V.st, ss $V.st[]);
		 INSERT INTO $V.o VALUES (1, 'paid', '{new,paid}');
		 SELECT mikkoo.capture('$V.o', 'vq', 'vex')" >/dev/null
	as "$V" "CALL mikkoo.snapshot('$V.o')" >/dev/null
	as "$V" "INSERT INTO $V.o VALUES (2, 'new', NULL);
		 SELECT mikkoo.insert_event('vq', 'vex', 'rk', 'b', NULL)" >/dev/null
	run -0 su "SELECT (ev_data::jsonb -> 'new')::text = (SELECT to_jsonb(o)::text
		       FROM $V.o o WHERE o.id = (ev_data::jsonb ->> 'id')::int)
		   FROM pgq.event_1 WHERE ev_data LIKE '%\"table_name\":\"$V.o\"%'
		   ORDER BY ev_id"
	assert_output "t
t"
	run -0 su "SELECT count(*) FROM pgq.event_1 WHERE ev_type = 'rk'"
	assert_output 1
	as "$V" "DROP TABLE $V.o; DROP TYPE $V.st" >/dev/null
}

@test "the documented flows still work: capture, a writer with rights on the table only, bulk statements, a snapshot" {
	each_db legit_flows
}

@test "dropping a captured table removes its settings (at once with the event trigger, else at the next capture)" {
	DB=$DB_SU
	as "$A" "CREATE TABLE $A.d (id int PRIMARY KEY);
		 SELECT mikkoo.capture('$A.d', 'vq', 'ex');
		 DROP TABLE $A.d" >/dev/null
	run -0 su "SELECT count(*) FROM mikkoo.capture_settings
		   WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tbl)"
	assert_output 0
	su "ALTER EVENT TRIGGER mikkoo_capture_dropped DISABLE" >/dev/null
	as "$A" "CREATE TABLE $A.d (id int PRIMARY KEY);
		 SELECT mikkoo.capture('$A.d', 'vq', 'ex');
		 DROP TABLE $A.d" >/dev/null
	run -0 su "SELECT count(*) FROM mikkoo.capture_settings
		   WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tbl)"
	assert_output 1
	run -0 as "$N" "SELECT count(*) FROM mikkoo.captures WHERE table_name LIKE '$A.d%'"
	assert_output 0
	as "$V" "SELECT mikkoo.capture('$V.t', 'vq', 'vex')" >/dev/null
	run -0 su "SELECT count(*) FROM mikkoo.capture_settings
		   WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tbl)"
	assert_output 0
	su "ALTER EVENT TRIGGER mikkoo_capture_dropped ENABLE" >/dev/null
}

@test "upgrading from mikkoo.sql 0.1.0 closes the holes in place and keeps captures, dead letters and audit rows" {
	local old="${P}_old" up="${P}_up" n
	DB=$up
	sql "CREATE DATABASE $up" >/dev/null
	sql "CREATE ROLE $old LOGIN PASSWORD 'pw'" >/dev/null
	su "CREATE EXTENSION pgq; SELECT pgq.create_queue('vq');
	    GRANT CREATE ON DATABASE $up TO $old, $V" >/dev/null
	PGDATABASE=$up psql -qX -v ON_ERROR_STOP=1 \
		-f "$MIKKOO_TOP/test/fixtures/mikkoo-0.1.0.sql" >/dev/null
	su "GRANT USAGE ON SCHEMA mikkoo TO PUBLIC;
	    CREATE TABLE public.kept (id int PRIMARY KEY, v text);
	    SELECT mikkoo.capture('public.kept', 'vq', 'kex', routing_key => 'k.{action}',
	                          exclude => '{v}');
	    INSERT INTO mikkoo.dead_letter (queue, consumer, ev_id, ev_time, reason)
	        VALUES ('vq', 'c', 1, now(), 'kept');
	    SELECT mikkoo.insert_audited_event('vq', 'kex', 'rk', 'b', NULL)" >/dev/null
	# a table owner without PgQ rights captured its table (0.1.0 let it)
	as "$V" "CREATE SCHEMA $V; CREATE TABLE $V.t (id int PRIMARY KEY, v text);
		 SELECT mikkoo.capture('$V.t', 'vq', 'vex')" >/dev/null
	# the hole is there: a role with USAGE on mikkoo becomes superuser
	traps "$old"
	as "$old" "CREATE TABLE $old.t (id int PRIMARY KEY, m $old.mood);
		   SELECT mikkoo.capture('$old.t', 'vq', 'x');
		   INSERT INTO $old.t VALUES (1, 'ok')" >/dev/null
	run -0 su "SELECT rolsuper FROM pg_roles WHERE rolname = '$old'"
	assert_output t
	su "ALTER ROLE $old NOSUPERUSER; DELETE FROM $old.log" >/dev/null
	# and a hand-made trigger sits beside the captures
	as "$old" "CREATE TABLE $old.h (id int);
		   CREATE TRIGGER h AFTER INSERT ON $old.h FOR EACH STATEMENT
		       EXECUTE FUNCTION mikkoo._capture('vq', 'a', 'b', 'c', 'd',
		           'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l')" >/dev/null

	run -0 --separate-stderr psql -qX -v ON_ERROR_STOP=1 -d "$up" \
		-f "$MIKKOO_SQL"
	[[ "$stderr" == *"3 capture(s) of mikkoo.sql 0.1.0 upgraded"* ]] || fail "stderr: $stderr"
	[[ "$stderr" == *"triggers {h} on $old.h run mikkoo._capture() but were not made by mikkoo.capture()"* ]] ||
		fail "stderr: $stderr"
	run -0 su "SELECT mikkoo.version()"
	assert_output 0.2.0
	run -0 su "SELECT table_name || ' ' || exchange || ' ' || routing_key || ' '
		   || coalesce(exclude::text, '-') FROM mikkoo.captures ORDER BY 1"
	assert_output "public.kept kex k.{action} {v}
$old.t x {schema}.{table} -
$V.t vex {schema}.{table} -"
	run -0 su "SELECT count(*) FROM pg_trigger WHERE tgfoid = 'mikkoo._capture()'::regprocedure
		   AND tgnargs = 1"
	assert_output 12
	run -0 su "SELECT (SELECT count(*) FROM mikkoo.dead_letter WHERE reason = 'kept'),
		   (SELECT count(*) FROM mikkoo.audit)"
	assert_output "1|1"
	# the captures go on, with the messages they sent before
	n=$(su "SELECT count(*) FROM pgq.event_1")
	su "INSERT INTO public.kept VALUES (1, 'x'); UPDATE public.kept SET id = 2" >/dev/null
	as "$V" "INSERT INTO $V.t VALUES (1, 'y')" >/dev/null
	run -0 su "SELECT ev_type || ' ' || (ev_data::jsonb - 'recorded_at')::text
		   FROM pgq.event_1 WHERE ev_id > $n ORDER BY ev_id"
	assert_output "k.I {\"id\": 1, \"new\": {\"id\": 1}, \"old\": {}, \"diff\": {\"id\": 1}, \"action\": \"I\", \"table_name\": \"public.kept\"}
k.U {\"id\": 2, \"new\": {\"id\": 2}, \"old\": {\"id\": 1}, \"diff\": {\"id\": 2}, \"action\": \"U\", \"table_name\": \"public.kept\"}
$V.t {\"id\": 1, \"new\": {\"v\": \"y\", \"id\": 1}, \"old\": {}, \"diff\": {\"v\": \"y\", \"id\": 1}, \"action\": \"I\", \"table_name\": \"$V.t\"}"
	# the hole is closed: the same attack again
	as "$old" "INSERT INTO $old.t VALUES (2, 'sad')" >/dev/null
	run -0 su "SELECT rolsuper FROM pg_roles WHERE rolname = '$old'"
	assert_output f
	run -0 su "SELECT count(*) FROM $old.log WHERE who <> '$old'"
	assert_output 0
	# the hand-made trigger is refused; producers need pgq_writer now
	run -1 as "$old" "INSERT INTO $old.h VALUES (1)"
	assert_output --partial "was not made by mikkoo.capture()"
	run -1 as "$old" "SELECT mikkoo.insert_event('vq', 'x', 'y', 'z', NULL)"
	assert_output --partial "permission denied"
	# installing once more changes nothing and says nothing
	run -0 psql -qX -v ON_ERROR_STOP=1 -d "$up" -f "$MIKKOO_SQL"
	assert_output --partial "triggers {h}"
	refute_output --partial "upgraded"
	su "DROP OWNED BY $old CASCADE" >/dev/null
}
