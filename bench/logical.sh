#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/logical.sh: the logical-decoding source's figures beside their
# baselines, measured in one run (alternating, BENCH_RUNS times, the
# median printed):
#   - writer cost per event: mikkoo.emit() beside pgq.insert_event(),
#     one-row transactions with the same payload;
#   - writer cost of INSERT ... SELECT of BENCH_LOG_ROWS rows: a table in
#     a publication with a slot, beside the same table unpublished and
#     captured by mikkoo.capture();
#   - reading: pg_recvlogical (pgoutput's bytes to /dev/null: the
#     server's ceiling) beside walcat (decoded and rendered into the
#     capture's bodies, batches of 1000) over the same BENCH_LOG_ROWS
#     rows of a 7-column table.
#
#   MIKKOO_BUILD=build bench/logical.sh   (throwaway durable servers, or
#   MIKKOO_SRV_DIR=DIR to use running ones)
#   BENCH_RUNS=3 BENCH_LOG_ROWS=100000 BENCH_LOG_TX=5000
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${MIKKOO_BUILD:-$top/build}
runs=${BENCH_RUNS:-3}
ROWS=${BENCH_LOG_ROWS:-100000}
TX=${BENCH_LOG_TX:-5000}
log() { printf 'bench: %s\n' "$*" >&2; }

srv=${MIKKOO_SRV_DIR:-}
own=
if [ -z "$srv" ]; then
	srv=$(mktemp -d /tmp/mikkoo-bench.XXXXXX)
	own=$srv
	"$top/test/servers/start" "$srv" --durable --only postgres
fi
cleanup() {
	psql -qXAt -c "SELECT pg_drop_replication_slot(slot_name)
	               FROM pg_replication_slots WHERE slot_name = 'bench_log'" \
		>/dev/null 2>&1 || true
	[ -z "$own" ] || "$top/test/servers/stop" "$own" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM
# shellcheck disable=SC1090,SC1091
. "$srv/env"
sqlq() { psql -qXAt -v ON_ERROR_STOP=1 "$@"; }
sqlq -f "$build/mikkoo.sql"
results=$(mktemp)
record() { echo "$1 $2" >>"$results"; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }

# --- writer cost per event: one-row transactions, and the function
# alone (many calls in one statement) -----------------------------------
sqlq -c "SELECT pgq.create_queue('bench_log')
         WHERE NOT EXISTS (SELECT 1 FROM pgq.queue
                           WHERE queue_name = 'bench_log')" >/dev/null
payload='{"order": 12345, "items": [1, 2, 3], "note": "a typical event"}'
seq 1 "$TX" | awk -v p="$payload" '{ printf "SELECT pgq.insert_event(%s, %s, %s, %s, %s, NULL, NULL);\n",
	"'"'"'bench_log'"'"'", "'"'"'order.created'"'"'", "'"'"'" p "'"'"'",
	"'"'"'bench'"'"'", "'"'"'application/json'"'"'" }' >"$srv/pgq.sql"
sed 's/pgq.insert_event(/mikkoo.emit(/' "$srv/pgq.sql" >"$srv/emit.sql"
for run in $(seq "$runs"); do
	for kind in pgq emit; do
		t0=$(now)
		sqlq -f "$srv/$kind.sql" >/dev/null
		record "write_$kind.us_per_event" \
			"$(echo "($(now) - $t0) * 1000000 / $TX" | bc -l)"
		# the function alone: many calls in one statement
		fn=$([ "$kind" = pgq ] && echo pgq.insert_event || echo mikkoo.emit)
		t0=$(now)
		sqlq -c "SELECT count($fn('bench_log', 'order.created',
		             '$payload', 'bench', 'application/json', NULL, NULL))
		         FROM generate_series(1, $((TX * 4)))" >/dev/null
		record "call_$kind.us_per_event" \
			"$(echo "($(now) - $t0) * 1000000 / ($TX * 4)" | bc -l)"
	done
done

# --- writer cost of a bulk INSERT ... SELECT --------------------------
table() {
	sqlq -c "SET client_min_messages = warning;
	    DROP PUBLICATION IF EXISTS bench_log;
	    DROP TABLE IF EXISTS public.log_bench;
	    CREATE TABLE public.log_bench (id bigint PRIMARY KEY, a int, b text,
	        c numeric(12,2), d timestamptz, e boolean, f jsonb)" >/dev/null
	case $1 in
	published)
		sqlq -c "CREATE PUBLICATION bench_log FOR TABLE public.log_bench" >/dev/null
		"$build/test/tools/walcat" -d "$MIKKOO_PG_URL" -S bench_log \
			-P bench_log --create -n 0 2>/dev/null ;;
	captured)
		sqlq -c "SELECT mikkoo.capture('public.log_bench', 'bench_log', 'bench')" >/dev/null ;;
	esac
}
fill="INSERT INTO public.log_bench SELECT g, g, 'name ' || g, g + 0.25,
      now(), g % 2 = 0, jsonb_build_object('k', g)
      FROM generate_series(1, $ROWS) g"
drop_slot() {
	sqlq -c "SELECT pg_drop_replication_slot('bench_log');
	         DELETE FROM mikkoo.slots WHERE slot_name = 'bench_log'" >/dev/null
}
for run in $(seq "$runs"); do
	for kind in plain published captured; do
		table "$kind"
		sqlq -c CHECKPOINT
		t0=$(now)
		sqlq -c "$fill"
		record "bulk_$kind.seconds" "$(elapsed "$t0")"
		if [ "$kind" = published ]; then
			# the same rows read twice: the server's ceiling, then
			# the source's decoding and rendering
			sqlq -c "SELECT pg_create_logical_replication_slot('bench_raw', 'pgoutput')" >/dev/null
			sqlq -c "DELETE FROM public.log_bench; $fill" >/dev/null
			end=$(sqlq -c "SELECT pg_current_wal_lsn()")
			t0=$(now)
			"${PGBIN:-/usr/lib/postgresql/15/bin}/pg_recvlogical" \
				-d "$MIKKOO_PG_URL" -S bench_raw --start \
				-o proto_version=1 -o publication_names=bench_log \
				--endpos="$end" -f /dev/null
			record "read_raw.rows_per_second" \
				"$(echo "2 * $ROWS / $(elapsed "$t0")" | bc -l)"
			sqlq -c "SELECT pg_drop_replication_slot('bench_raw')" >/dev/null
			"$build/test/tools/walcat" -d "$MIKKOO_PG_URL" -S bench_log \
				-P bench_log -n $((3 * ROWS)) --idle 5 --quiet --stats \
				2>"$srv/walcat.err"
			n=$(sed -n 's/.*events \([0-9]*\).*/\1/p' "$srv/walcat.err")
			secs=$(sed -n 's/.* seconds \([0-9.]*\).*/\1/p' "$srv/walcat.err")
			record "read_walcat.rows_per_second" \
				"$(echo "$n / $secs" | bc -l)"
			record "read_walcat.maxrss_kb" \
				"$(sed -n 's/.*maxrss_kb \([0-9]*\).*/\1/p' "$srv/walcat.err")"
			drop_slot
		fi
	done
done
sqlq -c "SET client_min_messages = warning;
         DROP PUBLICATION IF EXISTS bench_log; DROP TABLE public.log_bench;
         SELECT pgq.drop_queue('bench_log', true)" >/dev/null

median() {
	grep "^$1 " "$results" | awk '{ print $2 }' | sort -g |
		awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] }'
}
printf '%-44s %12s\n' "figure (median of $runs)" value
for k in write_pgq.us_per_event write_emit.us_per_event \
	call_pgq.us_per_event call_emit.us_per_event \
	bulk_plain.seconds bulk_published.seconds bulk_captured.seconds \
	read_raw.rows_per_second read_walcat.rows_per_second \
	read_walcat.maxrss_kb; do
	printf '%-44s %12s\n' "$k" "$(median "$k")"
done
printf '%-44s %12s\n' "emit / insert_event (one-row transactions)" \
	"$(echo "$(median write_emit.us_per_event) / $(median write_pgq.us_per_event)" | bc -l | cut -c1-5)"
printf '%-44s %12s\n' "emit / insert_event (calls in a statement)" \
	"$(echo "$(median call_emit.us_per_event) / $(median call_pgq.us_per_event)" | bc -l | cut -c1-5)"
printf '%-44s %12s\n' "published / plain (bulk insert)" \
	"$(echo "$(median bulk_published.seconds) / $(median bulk_plain.seconds)" | bc -l | cut -c1-5)"
printf '%-44s %12s\n' "captured / plain (bulk insert)" \
	"$(echo "$(median bulk_captured.seconds) / $(median bulk_plain.seconds)" | bc -l | cut -c1-5)"
printf '%-44s %12s\n' "walcat / pg_recvlogical (rows per second)" \
	"$(echo "$(median read_walcat.rows_per_second) / $(median read_raw.rows_per_second)" | bc -l | cut -c1-5)"
rm -f "$results"
