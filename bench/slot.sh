# SPDX-License-Identifier: BSD-3-Clause
# bench/slot.sh: sourced by bench/run (its servers, record, now, mq, log,
# $bin, $bb, $runs, $N).  A slot worker's relayed rate (source: logical)
# beside the raw publisher's ceiling measured in the same run: a backlog
# of $N mikkoo.emit() events, and one of $N table changes (an INSERT ...
# SELECT into a published table), each read from a slot made before the
# backlog was written, until RabbitMQ holds them all; and the
# commit-to-delivery latency at half that rate, beside a PgQ worker's.
#
#   BENCH_ONLY=slot bench/run   (these figures alone)

# slot_backlog NAME N FILL_SQL: a fresh slot, FILL_SQL, then the relay's
# slot worker until bench.q holds N messages; rate, CPU, peak RSS.
# slot_setup: a fresh table in publication bench_pub and a fresh slot.
slot_setup() {
	psql -qXAt -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning;
		SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = 'bench_slot';
		DELETE FROM mikkoo.slots WHERE slot_name = 'bench_slot';
		DROP TABLE IF EXISTS public.slot_bench;
		CREATE TABLE public.slot_bench (id bigint PRIMARY KEY, t text);
		DROP PUBLICATION IF EXISTS bench_pub;
		CREATE PUBLICATION bench_pub FOR TABLE public.slot_bench" >/dev/null
	psql -qXAt -v ON_ERROR_STOP=1 -c "SELECT 1 FROM
		pg_create_logical_replication_slot('bench_slot', 'pgoutput')" >/dev/null
	cat >"$srv/slot.yml" <<YAML
Application:
  workers:
    slotbench:
      source: logical
      postgres_url: $MIKKOO_PG_URL
      rabbitmq_url: $MIKKOO_AMQP_URL
      slot: bench_slot
      publication: bench_pub
      messages: [bench]
      exchange: bench
      wait_duration: 0.05
YAML
	chmod 600 "$srv/slot.yml"
}

# slot_backlog NAME N FILL_SQL: a fresh slot, FILL_SQL, then the relay's
# slot worker until bench.q holds N messages; rate, CPU, peak RSS.
slot_backlog() {
	local name=$1 n=$2 fill_sql=$3 t0 t1 pid ticks hwm
	slot_setup
	psql -qXAt -v ON_ERROR_STOP=1 -c "$fill_sql" >/dev/null
	mq purge bench.q
	mq wait-count bench.q "$n" >"$srv/t1" &
	local waiter=$!
	sleep 0.3
	t0=$(now)
	"$bin/mikkoo-relay" --quiet -c "$srv/slot.yml" --worker slotbench \
		2>>"$srv/relay.err" &
	relay_pid=$!
	wait "$waiter"
	t1=$(cat "$srv/t1")
	pid=$relay_pid
	ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
	kill -TERM "$pid"
	wait "$pid" || true
	relay_pid=
	record "$name.events_per_second" "$(echo "$n / ($t1 - $t0)" | bc -l)"
	record "$name.cpu_us_per_event" \
		"$(echo "$ticks / $(getconf CLK_TCK) * 1000000 / $n" | bc -l)"
	record "$name.peak_rss_kib" "$hwm"
}

# slot_latency RATE RUN: commit-to-delivery of mikkoo.emit() events
# offered at RATE through a slot worker, and of pgq.insert_event() ones
# through a PgQ worker (ticker: relay, the default) at the same rate,
# which goes first alternating per run.
slot_latency() {
	local rate=$1 run=$2 way ways="slot pgq" q
	[ $((run % 2)) = 0 ] && ways="pgq slot"
	for way in $ways; do
		log "run $run: latency at $rate ev/s, $way worker"
		mq purge bench.q
		if [ "$way" = slot ]; then
			slot_setup
			: >"$srv/ready"
			"$bin/mikkoo-relay" --quiet -c "$srv/slot.yml" --worker slotbench \
				--ready-fd 3 3>"$srv/ready" 2>>"$srv/relay.err" &
			relay_pid=$!
			for _ in $(seq 100); do
				[ -s "$srv/ready" ] && break
				sleep 0.1
			done
			q=emit:bench
		else
			q="slat$run"
			plain_queue "$q"
			relay_start "$q" relay
		fi
		"$bb/latency" "$conninfo" "$q" bench "$MIKKOO_AMQP_URL" bench.q \
			"$rate" "$lat_secs" >"$srv/lat" || true
		relay_stop
		[ "$way" = pgq ] && drop_queue "$q"
		for p in p50 p99 max; do
			record "slot_latency_$way.${p}_ms" \
				"$(awk "/^${p}_ms/ { print \$2 }" "$srv/lat")"
		done
	done
}

for run in $(seq "$runs"); do
	log "run $run of $runs: slot worker"
	mq purge bench.q
	record "slot_ceiling_publish_100.events_per_second" \
		"$("$bb/raw-publish" "$MIKKOO_AMQP_URL" bench bench.k "$N" 100 1000 | awk '{ print $2 }')"
	slot_backlog slot_emit_100 "$N" "SELECT count(mikkoo.emit('bench',
		'bench.k', rpad(g::text, 100, 'x'), 'bench', 'application/json',
		NULL, NULL)) FROM generate_series(1, $N) g"
	slot_backlog slot_change "$N" "INSERT INTO public.slot_bench
		SELECT g, rpad(g::text, 60, 'x') FROM generate_series(1, $N) g"
	# a change's body is the capture's JSON: the ceiling for its size
	size=$(mq get bench.q --count 1 | jq -r '.body | utf8bytelength')
	mq purge bench.q
	record "slot_change_body_bytes" "$size"
	record "slot_ceiling_publish_change.events_per_second" \
		"$("$bb/raw-publish" "$MIKKOO_AMQP_URL" bench bench.k "$N" "$size" 1000 | awk '{ print $2 }')"
	# half load: half of this run's relayed rate of emitted events
	half=$(grep '^slot_emit_100.events_per_second' "$results" | tail -1 |
		awk '{ printf "%d", $2 / 2 }')
	record "slot_latency_offered_rate" "$half"
	slot_latency "$half" "$run"
done
psql -qXAt -c "SELECT pg_drop_replication_slot('bench_slot')" >/dev/null 2>&1 || true
