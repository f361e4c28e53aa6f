# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the table-change capture tests: a captured table's changes
# go through PgQ and mikkoo-relay to a RabbitMQ queue, and the tests read
# them back there.  Needs helpers/common and helpers/relay loaded first.

# cap_setup: the relay queue $Q (with exchange $EX and queue $MQ bound to
# everything, see setup_relay_queue) and a table name $T of its own.
cap_setup() {
	setup_relay_queue
	T="public.tab_$Q"
}

# bodies N: the next N messages from $MQ (into msgs.jsonl, as
# get_messages does), printed as their parsed bodies, one per line.
bodies() {
	get_messages "$1" || return 1
	msgs | jq -c '.body | fromjson'
}

# bodies_plain N: the same without recorded_at, which no test can know.
bodies_plain() {
	bodies "$1" | jq -c 'del(.recorded_at)'
}

# The rows of $T as to_jsonb renders them, by id.
rows_jsonb() {
	sql "SELECT coalesce(jsonb_agg(to_jsonb(t.*) ORDER BY t.id), '[]')
	     FROM $T t"
}

# A role that may log in; dropped by cap_drop_role.
cap_role() {
	CAP_ROLE="r_$Q"
	sql "SET client_min_messages = warning; DROP ROLE IF EXISTS $CAP_ROLE;
	     CREATE ROLE $CAP_ROLE LOGIN PASSWORD 'pw'" >/dev/null
}

cap_drop_role() {
	[ -n "${CAP_ROLE:-}" ] || return 0
	sql "DROP OWNED BY $CAP_ROLE; DROP ROLE $CAP_ROLE" >/dev/null
}

# as_role SQL: run SQL as $CAP_ROLE.
as_role() {
	env PGUSER="$CAP_ROLE" PGPASSWORD=pw psql -qXAt -v ON_ERROR_STOP=1 \
		-c "$1"
}
