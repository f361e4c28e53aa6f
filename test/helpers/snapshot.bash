# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the snapshot tests of both routes (CALL mikkoo.snapshot()
# into PgQ, test 39; CALL mikkoo.slot_snapshot() through a slot, test
# 43): a deadlock with a writer, random concurrent writers, and applying
# the delivered messages to compare them with the table.  Needs
# helpers/common loaded first; $T is the table.

# snapshot_deadlock CALL: run CALL (a snapshot of $T, ids 1..30, chunk
# 10) so that it deadlocks with a writer once.  The writer holds row 5;
# the snapshot locks rows 1 to 4 and waits for it; then the writer wants
# row 2.  The snapshot's deadlock check comes first (3 s against 60 s),
# so the snapshot is the one rolled back.  Its stderr in snap.err.
snapshot_deadlock() {
	local line snap
	coproc W { psql -qXAt -v ON_ERROR_STOP=0 2>&1; }
	echo "SET deadlock_timeout = '60s'; BEGIN; UPDATE $T SET v = -v WHERE id = 5;
	      SELECT 'locked';" >&"${W[1]}"
	read -r -t 20 line <&"${W[0]}"
	assert_equal "$line" locked
	PGOPTIONS="-c deadlock_timeout=3s" psql -qXAt -v ON_ERROR_STOP=1 \
		-c "$1" >"$BATS_TEST_TMPDIR/snap.out" 2>"$BATS_TEST_TMPDIR/snap.err" &
	snap=$!
	SNAP_CALL=${1%%(*}
	wait_for 20 snapshot_waits
	echo "UPDATE $T SET v = -v WHERE id = 2; COMMIT; SELECT 'done';" >&"${W[1]}"
	read -r -t 30 line <&"${W[0]}"
	assert_equal "$line" done
	echo '\q' >&"${W[1]}"
	wait "$snap"
}

snapshot_waits() {
	[ "$(sql "SELECT count(*) FROM pg_stat_activity
	          WHERE query LIKE '$SNAP_CALL%' AND wait_event_type = 'Lock'")" = 1 ]
}

# assert_deadlock_order: the messages on stdin (as mq get prints them)
# are the writer's two U events, then the R events with its values.
assert_deadlock_order() {
	local got
	got=$(jq -c -s 'map(.body | fromjson | [.action, .id, .new.v])')
	echo "messages: $got"
	echo "$got" | jq -e '
		.[0:2] == [["U", 5, -5], ["U", 2, -2]] and
		(.[2:] | map(.[0]) | unique) == ["R"] and
		(.[2:] | map(.[1])) == [range(1; 31)] and
		.[3] == ["R", 2, -2] and .[6] == ["R", 5, -5]'
}

# snapshot_writer SEED STOPFILE: random one-row and two-row transactions
# on $T (id int, v int, s text; ids 1..24000, so some are new) until
# STOPFILE exists.  Two-row transactions update in random order, against
# the snapshot's key order: deadlocks happen and one side retries or
# rolls back.
snapshot_writer() {
	awk -v seed="$1" -v stop="$2" -v t="$T" 'BEGIN {
		srand(seed)
		for (n = 0; ; n++) {
			if (n % 50 == 0 && (getline x < stop) > 0)
				exit
			close(stop)
			id = int(rand() * 24000) + 1
			r = rand()
			if (r < 0.3)
				printf "INSERT INTO %s VALUES (%d, %d, md5(random()::text)) ON CONFLICT (id) DO UPDATE SET v = excluded.v;\n", t, id, n
			else if (r < 0.7)
				printf "UPDATE %s SET v = v + 1, s = md5(random()::text) WHERE id = %d;\n", t, id
			else if (r < 0.85)
				printf "DELETE FROM %s WHERE id = %d;\n", t, id
			else
				printf "BEGIN; UPDATE %s SET v = -v WHERE id = %d; UPDATE %s SET v = -v WHERE id = %d; COMMIT;\n", t, id, t, int(rand() * 24000) + 1
			fflush()
		}
	}' | psql -qX -v ON_ERROR_STOP=0 >/dev/null 2>>"$BATS_TEST_TMPDIR/writers.err"
}

# start_writers SEED: three snapshot_writers (seeds SEED+1 to SEED+3)
# in the background, their pids in WRITERS.  Their pipelines stop on a
# file, also when the test fails half way (killing their subshells would
# leave awk and psql behind).
start_writers() {
	local w
	WRITERS_STOP="$BATS_TEST_TMPDIR/stop"
	defer sh -c "echo stop >'$WRITERS_STOP'"
	WRITERS=
	for w in 1 2 3; do
		snapshot_writer $(($1 + w)) "$WRITERS_STOP" &
		WRITERS="$WRITERS $!"
	done
}

# stop_writers: stop start_writers' writers and wait for them.
stop_writers() {
	local p
	echo stop >"$WRITERS_STOP"
	for p in $WRITERS; do wait "$p"; done
	WRITERS=
}

# assert_applied_is_table [COND]: the messages on stdin (as mq get
# prints them, in delivery order), applied per id (upsert on I, U and R,
# delete on D), make exactly the rows $T has now (those meeting COND).
assert_applied_is_table() {
	jq -c '.body | fromjson | [.action, .id, .new]' |
		jq -n -c 'reduce inputs as [$a, $id, $new] ({};
			if $a == "D" then del(.[$id | tostring])
			else .[$id | tostring] = $new end)' >"$BATS_TEST_TMPDIR/applied"
	sql "SELECT coalesce(jsonb_object_agg(t.id, to_jsonb(t.*)), '{}') FROM $T t
	     ${1:+WHERE $1}" \
		>"$BATS_TEST_TMPDIR/table"
	jq -e -n --slurpfile a "$BATS_TEST_TMPDIR/applied" \
		--slurpfile t "$BATS_TEST_TMPDIR/table" '$a[0] == $t[0]'
}
