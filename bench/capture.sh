# SPDX-License-Identifier: BSD-3-Clause
# bench/capture.sh: sourced by bench/run (its servers, record, now,
# new_queue, drop_queue, relay_backlog, log, $runs, $N).  Table-change
# capture's cost to the writers, beside the same table without a
# trigger and with PgQ's own C trigger pgq.jsontriga(queue, 'backup'),
# and the relay's rate for captured events beside plain events of the
# same size.
#
#   BENCH_CAP_ROWS=100000   rows of the bulk INSERT ... SELECT and UPDATE
#   BENCH_CAP_TX=10000      one-row transactions of each kind
CAP_ROWS=${BENCH_CAP_ROWS:-100000}
CAP_TX=${BENCH_CAP_TX:-10000}

# cap_table VARIANT QUEUE: a fresh public.cap_bench, with VARIANT's
# trigger writing into QUEUE.
cap_table() {
	psql -qXAt -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning;
		DROP TABLE IF EXISTS public.cap_bench;
		CREATE TABLE public.cap_bench (id bigint PRIMARY KEY, a int,
			b text, c numeric(12,2), d timestamptz, e boolean, f jsonb)" >/dev/null
	case $1 in
	jsontriga)
		psql -qXAt -v ON_ERROR_STOP=1 -c "CREATE TRIGGER cap_bench
			AFTER INSERT OR UPDATE OR DELETE ON public.cap_bench
			FOR EACH ROW EXECUTE FUNCTION pgq.jsontriga('$2', 'backup')" >/dev/null ;;
	captured)
		psql -qXAt -v ON_ERROR_STOP=1 -c "SELECT mikkoo.capture('public.cap_bench',
			'$2', 'bench')" >/dev/null ;;
	esac
}

# cap_time NAME CMD...: run CMD, record its wall time as NAME.seconds.
cap_time() {
	local name=$1 t0
	shift
	t0=$(now)
	"$@" >/dev/null
	record "$name.seconds" "$(echo "$(now) - $t0" | bc -l)"
}

# One statement per line, each its own transaction (psql autocommit):
# inserts of new rows, updates and deletes of existing ones.
cap_script() {
	local f=$srv/cap_$1.sql
	[ -f "$f" ] || case $1 in
	insert) seq "$((CAP_ROWS + 1))" "$((CAP_ROWS + CAP_TX))" | awk -v q="'" '{
		printf "INSERT INTO public.cap_bench VALUES (%d, %d, %sname %d%s, %d.25, now(), true, %s{\"k\": %d}%s);\n", $1, $1, q, $1, q, $1, q, $1, q }' >"$f" ;;
	update) seq 1 "$CAP_TX" | awk -v q="'" '{
		printf "UPDATE public.cap_bench SET a = a + 1, b = b || %s!%s WHERE id = %d;\n", q, q, $1 }' >"$f" ;;
	delete) seq 1 "$CAP_TX" | awk '{
		printf "DELETE FROM public.cap_bench WHERE id = %d;\n", $1 }' >"$f" ;;
	esac
	echo "$f"
}

cap_write_cost() {
	local variant q run op n want
	local order=(plain jsontriga captured)
	for run in $(seq "$runs"); do
		# each variant first in one run
		for variant in "${order[@]}"; do
			log "capture run $run of $runs: write cost, $variant"
			q="cw${run}_$variant"
			new_queue "$q"
			cap_table "$variant" "$q"
			psql -qXAt -c "CHECKPOINT" >/dev/null
			cap_time "capture_write.insert_select.$variant" \
				psql -qXAt -v ON_ERROR_STOP=1 -c "INSERT INTO public.cap_bench
				SELECT g, g, 'name ' || g, g * 1.25, now(), g % 2 = 0,
				       jsonb_build_object('k', g)
				FROM generate_series(1, $CAP_ROWS) g"
			cap_time "capture_write.update_all.$variant" \
				psql -qXAt -v ON_ERROR_STOP=1 -c "UPDATE public.cap_bench
				SET a = a + 1, b = b || '!'"
			for op in insert update delete; do
				cap_time "capture_write.one_row_$op.$variant" \
					psql -qX -v ON_ERROR_STOP=1 -f "$(cap_script $op)"
			done
			# every change made its event
			n=$(psql -qXAt -c "SELECT count(*) FROM $(psql -qXAt -c \
				"SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '$q'")")
			want=$((2 * CAP_ROWS + 3 * CAP_TX))
			[ "$variant" = plain ] && want=0
			[ "$n" -eq "$want" ] || {
				log "error: $variant: $n events, not $want"
				exit 1
			}
			drop_queue "$q"
		done
		order=("${order[@]:1}" "${order[0]}")
	done
	psql -qXAt -c "DROP TABLE public.cap_bench" >/dev/null
}

# The relay's rate for N captured inserts, and for N plain events with
# bodies of their average size and the same type, exchange, content type
# and headers.  Both queues are filled first, then relayed in turn, the
# other one first in every other run.
cap_relay() {
	local run q pfx bytes hdr order kind
	for run in $(seq "$runs"); do
		log "capture run $run of $runs: relay rate, captured and plain"
		q="cr${run}_cap"
		new_queue "$q"
		cap_table captured "$q"
		psql -qXAt -v ON_ERROR_STOP=1 -c "INSERT INTO public.cap_bench
			SELECT g, g, 'name ' || g, g * 1.25, now(), g % 2 = 0,
			       jsonb_build_object('k', g)
			FROM generate_series(1, $N) g" >/dev/null
		psql -qXAt -c "SELECT pgq.force_tick('$q')" >/dev/null
		pfx=$(psql -qXAt -c "SELECT queue_data_pfx FROM pgq.queue
			WHERE queue_name = '$q'")
		bytes=$(psql -qXAt -c "SELECT round(avg(octet_length(ev_data)))
			FROM $pfx")
		hdr=$(psql -qXAt -c "SELECT ev_extra4 FROM $pfx LIMIT 1")
		record "capture_relay.body_bytes" "$bytes"
		new_queue "${q}_plain"
		psql -qXAt -v ON_ERROR_STOP=1 -c "SELECT count(pgq.insert_event('${q}_plain',
			'public.cap_bench', rpad(g::text, $bytes, 'x'), 'bench',
			'application/json', NULL, '$hdr'))
			FROM generate_series(1, $N) g" >/dev/null
		psql -qXAt -c "SELECT pgq.force_tick('${q}_plain')" >/dev/null
		psql -qXAt -c "CHECKPOINT" >/dev/null
		sleep 0.3
		order="captured plain_same_size"
		[ $((run % 2)) -eq 0 ] && order="plain_same_size captured"
		for kind in $order; do
			case $kind in
			captured) relay_backlog "capture_relay.captured" "$q" "$N" ;;
			*) relay_backlog "capture_relay.plain_same_size" "${q}_plain" "$N" ;;
			esac
		done
		drop_queue "$q"
		drop_queue "${q}_plain"
	done
	psql -qXAt -c "DROP TABLE public.cap_bench" >/dev/null
}

cap_write_cost
cap_relay
