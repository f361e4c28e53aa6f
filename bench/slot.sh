# SPDX-License-Identifier: BSD-3-Clause
# bench/slot.sh: sourced by bench/run (its servers, record, now, mq, log,
# $bin, $bb, $runs, $N).  A slot worker's relayed rate (source: logical)
# beside the raw publisher's ceiling measured in the same run: a backlog
# of $N mikkoo.emit() events, and one of $N table changes (an INSERT ...
# SELECT into a published table), each read from a slot made before the
# backlog was written, until RabbitMQ holds them all.
#
#   BENCH_ONLY=slot bench/run   (these figures alone)

# slot_backlog NAME N FILL_SQL: a fresh slot, FILL_SQL, then the relay's
# slot worker until bench.q holds N messages; rate, CPU, peak RSS.
slot_backlog() {
	local name=$1 n=$2 fill_sql=$3 t0 t1 pid ticks hwm conf="$srv/slot.yml"
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
	psql -qXAt -v ON_ERROR_STOP=1 -c "$fill_sql" >/dev/null
	mq purge bench.q
	cat >"$conf" <<YAML
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
	chmod 600 "$conf"
	mq wait-count bench.q "$n" >"$srv/t1" &
	local waiter=$!
	sleep 0.3
	t0=$(now)
	"$bin/mikkoo-relay" --quiet -c "$conf" --worker slotbench \
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
done
psql -qXAt -c "SELECT pg_drop_replication_slot('bench_slot')" >/dev/null 2>&1 || true
