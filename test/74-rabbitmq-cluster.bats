#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts, kills or reconfigures the shared servers
# A 3-node RabbitMQ cluster under the oracle (test/servers/start --only
# rabbitmq --nodes 3, once for the file; PostgreSQL is the suite's).
# The relay gets all three nodes as a list of URLs; the confirming queue
# is a quorum queue with a replica on each node, so a confirm means a
# majority has the message.  The workers run with max_failures 0: any
# event that a fault made count as a failure would be a dead letter at
# once, and every row asserts there is none.  MIKKOO_MQ_CLUSTER_DIR names
# a running cluster to reuse while iterating.

load helpers/common
load helpers/relay
load helpers/oracle

setup_file() {
	if [ -n "${MIKKOO_MQ_CLUSTER_DIR:-}" ] &&
		[ -f "$MIKKOO_MQ_CLUSTER_DIR/env" ]; then
		export MQ_CLUSTER_DIR=$MIKKOO_MQ_CLUSTER_DIR MQ_CLUSTER_OWN=
	else
		MQ_CLUSTER_DIR=$(mktemp -d /tmp/mikkoo-mqc.XXXXXX)
		export MQ_CLUSTER_DIR MQ_CLUSTER_OWN=1
		"$MIKKOO_TOP/test/servers/start" "$MQ_CLUSTER_DIR" \
			--only rabbitmq --nodes 3 >&3 2>&1 3>&-
	fi
	# shellcheck disable=SC1091
	. "$MQ_CLUSTER_DIR/env"
	install_schema
}

teardown_file() {
	[ -z "${MQ_CLUSTER_OWN:-}" ] || "$MIKKOO_TOP/test/servers/stop" "$MQ_CLUSTER_DIR"
}

setup() {
	setup_urls
	# a cluster left short by a failed test is made whole again
	local i down=()
	for i in 1 2 3; do
		amqp_port_answers "$(port_of "$i")" || down+=("$i")
	done
	[ ${#down[@]} -eq 0 ] || mqctl rabbitmq-start "${down[@]}"
	AQ_ARGS='{"x-queue-type":"quorum"}' setup_oracle_queue
	# only the quorum queues are bound: no classic queue on one node
	mq delete-queue "$MQ"
	# the probes' queue (see probe_start)
	PQ="probe_$Q"
	mq declare-queue "$PQ" --bind "$EX:probe" --arguments '{"x-queue-type":"quorum"}'
	PROBES=0
	nodes_config "$URL_1" "$URL_2" "$URL_3"
}

teardown() {
	oracle_teardown
	[ -f "$BATS_TEST_TMPDIR/watch.pid" ] &&
		kill "$(cat "$BATS_TEST_TMPDIR/watch.pid")" 2>/dev/null
	# quorum queues cost every node a Raft member: do not pile them up
	if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
		mq delete-queue "$AQ" >/dev/null 2>&1
		mq delete-queue "$PQ" >/dev/null 2>&1
	fi
	return 0
}

mqctl() {
	"$MIKKOO_TOP/test/servers/ctl" "$MQ_CLUSTER_DIR" "$@"
}

port_of() {
	local v=AMQP_PORT_$1
	echo "${!v}"
}

amqp_port_answers() {
	exec 9<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
	exec 9<&- 9>&-
}

# A node's URL, with heartbeats that notice a silent peer in seconds.
url_of() {
	echo "amqp://mikkoo:$AMQP_PASSWORD@127.0.0.1:$1/%2f?heartbeat=2"
}

setup_urls() {
	URL_1=$(url_of "$(port_of 1)")
	URL_2=$(url_of "$(port_of 2)")
	URL_3=$(url_of "$(port_of 3)")
}

# nodes_config URL...: the worker's rabbitmq_url is this list, and
# max_failures 0 (see above).
nodes_config() {
	local list u
	for u in "$@"; do
		list="${list:+$list, }$u"
	done
	MIKKOO_AMQP_URL="[$list]" write_config "$CONF" "max_failures: 0"
}

# The node (1-3) the relay publishes to, as mikkoo-inspect status says
# (the port of rabbitmq_node); fails while it says none.
relay_node() {
	local node i
	node=$(mikkoo-inspect -q "$Q" status | jq -r .rabbitmq_node)
	for i in 1 2 3; do
		[ "$node" = "127.0.0.1:$(port_of "$i")" ] && echo "$i" && return 0
	done
	return 1
}

# The node (1-3) that leads quorum queue $1.
leader_of() {
	local leader i v
	leader=$("$RABBITMQCTL" -q list_queues name leader --formatter json |
		jq -r --arg q "$1" '.[] | select(.name == $q) | .leader')
	for i in 1 2 3; do
		v=RABBITMQ_NODE_$i
		[ "$leader" = "${!v}" ] && echo "$i" && return 0
	done
	return 1
}

# probe_start SINCE: commit one probe event now (oracle probe) and wait,
# in the background, for it to arrive through any node; probe_report
# LABEL prints when it was committed and delivered, in seconds after
# SINCE (the fault, or when a node answered again).  Printed, never
# asserted (tests never assert on time): mikkoo(7) quotes them.
probe_start() {
	PROBES=$((PROBES + 1))
	PROBE_SINCE=$1
	oracle probe --queue "$Q" --exchange "$EX" --amqp-queue "$PQ" \
		--seq "$PROBES" --since "$1" --urls "$URL_1 $URL_2 $URL_3" \
		>"$BATS_TEST_TMPDIR/probe.out" 2>"$BATS_TEST_TMPDIR/probe.err" 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/probe.pid"
}

probe_report() {
	wait "$(cat "$BATS_TEST_TMPDIR/probe.pid")" ||
		fail "the probe did not arrive: $(cat "$BATS_TEST_TMPDIR/probe.out" "$BATS_TEST_TMPDIR/probe.err")"
	echo "recovery: an event committed $(jq .committed "$BATS_TEST_TMPDIR/probe.out") s after $1 was delivered $(jq .delivered "$BATS_TEST_TMPDIR/probe.out") s after it" >&3
}

# watch_answers: from now on (every node down), note when the first
# node and when a majority (two) answer on their AMQP ports again, in
# $BATS_TEST_TMPDIR/answer.first and answer.majority (epochs).
watch_answers() {
	(
		exec 3>&-
		while :; do
			n=0
			for i in 1 2 3; do
				amqp_port_answers "$(port_of "$i")" && n=$((n + 1))
			done
			[ "$n" -ge 1 ] && [ ! -s "$BATS_TEST_TMPDIR/answer.first" ] &&
				date +%s.%N >"$BATS_TEST_TMPDIR/answer.first"
			if [ "$n" -ge 2 ]; then
				date +%s.%N >"$BATS_TEST_TMPDIR/answer.majority"
				exit 0
			fi
			sleep 0.05
		done
	) &
	echo $! >"$BATS_TEST_TMPDIR/watch.pid"
}

# after_answers LABEL: the relay's first confirmed publish after the first
# node and after a majority answered again (its "relaying again" lines).
after_answers() {
	local first majority t x
	first=$(cat "$BATS_TEST_TMPDIR/answer.first")
	majority=$(cat "$BATS_TEST_TMPDIR/answer.majority")
	t=
	while read -r x _; do
		x=$(date -d "$x" +%s.%N) || continue
		if awk -v a="$first" -v b="$x" 'BEGIN { exit !(b >= a) }'; then
			t=$x
			break
		fi
	done < <(grep "relaying again: first publish confirmed" "$BATS_TEST_TMPDIR/relay.err")
	[ -n "$t" ] || fail "no 'relaying again' line after the first node answered"
	echo "recovery: relaying again $(awk -v a="$first" -v b="$t" 'BEGIN { printf "%.1f", b - a }') s after the first node answered, $(awk -v a="$majority" -v b="$t" 'BEGIN { printf "%.1f", b - a }') s after a majority did ($1)" >&3
}

# judge: the oracle's verdict (finish: nothing lost, no first delivery
# out of commit order, no PgQ retry), and no dead letter (with
# max_failures 0, any event a fault made count as failed would be one).
judge() {
	finish "$@"
	echo "$output" | jq -e '.dead == 0'
}

@test "the cluster: three nodes running, the quorum queue on each" {
	run "$RABBITMQCTL" -q cluster_status --formatter json
	assert_success
	echo "$output" | jq -e '.running_nodes | length == 3'
	run "$RABBITMQCTL" -q list_queues name type members --formatter json
	echo "$output" | jq -e --arg q "$AQ" \
		'.[] | select(.name == $q) | .type == "quorum" and (.members | length) == 3'
	relay_start
	wait_for 20 relay_node
	assert_equal "$(relay_node)" 1   # the first of the list that answers
}

@test "cluster: SIGKILL of the node the relay publishes to, then restarted" {
	relay_start --log-time
	produce 300 10
	wait_for 20 relay_node
	n=$(relay_node)
	sleep 2
	fault=$(date +%s.%N)
	mqctl rabbitmq-kill "$n"
	probe_start "$fault"
	wait_for 60 grep -q "reconnected to RabbitMQ '" "$BATS_TEST_TMPDIR/relay.err"
	# it moved past the lost node, to the next one of the list
	wait_for 20 relay_node
	assert_equal "$(relay_node)" $((n % 3 + 1))
	sleep 2
	mqctl rabbitmq-start "$n"
	judge
	# BACK unset: the relay had other nodes all along
	report_recovery "$fault" "SIGKILL of the relay's node"
	probe_report "the SIGKILL of the relay's node (and leader)"
}

@test "cluster: SIGKILL of the quorum queue's leader on another node, then restarted" {
	lead=$(leader_of "$AQ")
	# the relay on another node: only the queue loses its leader
	other=$((lead % 3 + 1))
	u=URL_$other
	nodes_config "${!u}" "$URL_1" "$URL_2" "$URL_3"
	relay_start --log-time
	produce 300 10
	wait_for 20 relay_node
	assert_equal "$(relay_node)" "$other"
	sleep 2
	fault=$(date +%s.%N)
	mqctl rabbitmq-kill "$lead"
	probe_start "$fault"
	probe_report "the SIGKILL of the queue's leader"
	sleep 2
	mqctl rabbitmq-start "$lead"
	judge
	# the relay's own connection was never lost
	run grep -c "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
	echo "leader: node $lead, then node $(leader_of "$AQ")" >&3
}

@test "cluster: the relay's node SIGKILLed for 20 s, then another node stopped for 15 s" {
	# the fault of issue 18, as a new user tried it
	relay_start --log-time
	produce 600 45
	wait_for 20 relay_node
	n=$(relay_node)
	sleep 3
	fault=$(date +%s.%N)
	mqctl rabbitmq-kill "$n"
	probe_start "$fault"
	probe_report "the SIGKILL of the relay's node"
	sleep 20
	mqctl rabbitmq-start "$n"
	wait_for 20 relay_node
	m=$(relay_node)
	other=$((m % 3 + 1))
	sleep 3
	fault=$(date +%s.%N)
	mqctl rabbitmq-stop "$other"
	probe_start "$fault"
	probe_report "the graceful stop of node $other (the relay on node $m)"
	sleep 15
	mqctl rabbitmq-start "$other"
	judge
}

@test "cluster: graceful stop of another node, then started again" {
	relay_start --log-time
	produce 300 10
	wait_for 20 relay_node
	n=$(relay_node)
	other=$((n % 3 + 1))
	sleep 2
	fault=$(date +%s.%N)
	mqctl rabbitmq-stop "$other"
	probe_start "$fault"
	sleep 3
	mqctl rabbitmq-start "$other"
	assert_equal "$(relay_node)" "$n"
	judge
	probe_report "the graceful stop of another node"
	# the relay's own connection was never lost
	run grep -c "reconnected to RabbitMQ" "$BATS_TEST_TMPDIR/relay.err"
	assert_output 0
	echo "recovery: none needed (the relay's node stayed up)" >&3
}

@test "cluster: the relay's node cut off by the fault proxy (black hole), then healed" {
	proxy_start mq "$(port_of 1)"
	nodes_config "$(url_of "$PROXY_PORT")" "$URL_2" "$URL_3"
	relay_start --log-time
	produce 300 12
	sleep 2
	fault=$(date +%s.%N)
	proxy mq USR1
	probe_start "$fault"
	wait_for 60 grep -q "reconnected to RabbitMQ '.*' (node 2 of 3)" \
		"$BATS_TEST_TMPDIR/relay.err"
	proxy mq HUP
	judge
	report_recovery "$fault" "the relay's node black-holed"
	probe_report "the black hole"
}

@test "cluster: two of three nodes down (no majority) for a while, then back" {
	relay_start --log-time
	produce 300 14
	wait_for 20 relay_node
	n=$(relay_node)
	other=$((n % 3 + 1))
	sleep 2
	fault=$(date +%s.%N)
	# the relay's node and one more: it must move, and the quorum
	# queue on the one node left cannot confirm anything
	mqctl rabbitmq-stop "$n" "$other"
	probe_start "$fault"
	sleep 8
	mqctl rabbitmq-start "$n" "$other"
	BACK=$(date +%s.%N)
	judge
	report_recovery "$fault" "two of three nodes stopped, no majority"
	probe_report "two of three nodes stopped"
	grep -q "reconnected to RabbitMQ '" "$BATS_TEST_TMPDIR/relay.err"
}

@test "cluster: all three nodes restarted" {
	relay_start --log-time
	produce 300 14
	sleep 2
	fault=$(date +%s.%N)
	mqctl rabbitmq-stop 1 2 3
	watch_answers
	probe_start "$fault"
	sleep 5
	mqctl rabbitmq-start 1 2 3
	BACK=$(date +%s.%N)
	judge
	report_recovery "$fault" "all three nodes stopped and started"
	after_answers "all three nodes stopped for 5 s"
	probe_report "all three nodes stopped"
	run "$RABBITMQCTL" -q cluster_status --formatter json
	echo "$output" | jq -e '.running_nodes | length == 3'
}

@test "a list with a bad URL first still relays, and mikkoo-audit takes the list" {
	bad="amqp://mikkoo:S3cr3t-CANARY@127.0.0.1:1/%2f"
	nodes_config "$bad" "$URL_2"
	relay_start
	grep -q "RabbitMQ node 1 of 2: cannot connect to RabbitMQ 'amqp://mikkoo:\*\*\*@127.0.0.1:1/%2f'" \
		"$BATS_TEST_TMPDIR/relay.err"
	grep -q "to 'amqp://mikkoo:\*\*\*@127.0.0.1:$(port_of 2)/%2f?heartbeat=2' (node 2 of 2)" \
		"$BATS_TEST_TMPDIR/relay.err"
	sql "SELECT mikkoo.insert_audited_event('$Q', '$EX', 'k', '{\"n\":1}',
		'application/json')" >/dev/null
	aq_has() { [ "$(mq count "$AQ")" -ge "$1" ]; }
	wait_for 20 aq_has 1
	relay_stop
	run -0 --separate-stderr mikkoo-audit -c "$CONF" -a "$AQ" --grace 0 -q "$Q"
	assert_output ""
	[[ $stderr == *"connected to RabbitMQ 'amqp://mikkoo:***@127.0.0.1:$(port_of 2)/%2f?heartbeat=2' (node 2 of 2)"* ]]
	[[ $stderr == *"1 audit rows confirmed"* ]]
	[[ $stderr != *S3cr3t-CANARY* ]]
	run -1 grep -q S3cr3t-CANARY "$BATS_TEST_TMPDIR/relay.err"
}

@test "a list of only bad URLs: exit 69 naming the nodes, passwords masked" {
	nodes_config "amqp://mikkoo:S3cr3t-CANARY@127.0.0.1:1/%2f" \
		"amqp://u:S3cr3t-CANARY@127.0.0.1:2/"
	run -69 --separate-stderr mikkoo-relay -c "$CONF"
	[[ $stderr == *"warning: queue '$Q': RabbitMQ node 1 of 2: cannot connect to RabbitMQ 'amqp://mikkoo:***@127.0.0.1:1/%2f': "*": trying the next"* ]]
	[[ $stderr == *"warning: queue '$Q': no RabbitMQ node answered (2 tried): last: cannot connect to RabbitMQ 'amqp://u:***@127.0.0.1:2/': "* ]]
	[[ $stderr == *"error: no worker could reach its servers: stopping"* ]]
	[[ $stderr != *S3cr3t-CANARY* ]]
	assert_output ""
	MIKKOO_RABBITMQ_URL="amqp://u:S3cr3t-CANARY@127.0.0.1:1/ amqp://u:S3cr3t-CANARY@127.0.0.1:2/" \
		run -69 --separate-stderr mikkoo-audit -a "$AQ"
	[[ $stderr == *"no RabbitMQ node answered (2 tried)"* ]]
	[[ $stderr != *S3cr3t-CANARY* ]]
}

# fill QUEUE N SIZE [DEAD]: N persistent messages of SIZE bytes (body
# "m<i>" padded), message_id "id<i>", through node 2; with DEAD, each
# one looks like a dead letter of queue DEAD (x-death).
fill() {
	MIKKOO_AMQP_URL=$URL_2 /usr/bin/python3 - "$@" <<'PY'
import os, sys, pika
q, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dead = sys.argv[4] if len(sys.argv) > 4 else None
c = pika.BlockingConnection(pika.URLParameters(os.environ["MIKKOO_AMQP_URL"]))
ch = c.channel()
ch.confirm_delivery()
for i in range(1, n + 1):
    h = None
    if dead:
        h = {"x-death": [{"queue": dead, "reason": "rejected", "exchange": "",
                          "routing-keys": [dead], "count": 1}]}
    body = ("m%d " % i).ljust(size, "x").encode()
    ch.basic_publish("", q, body, pika.BasicProperties(
        delivery_mode=2, message_id="id%d" % i, headers=h))
c.close()
PY
}

@test "the tools move to the next node when theirs is lost mid-run" {
	qq='{"x-queue-type":"quorum"}'
	export MIKKOO_RABBITMQ_URL="$URL_1 $URL_2 $URL_3"
	at2() { MIKKOO_AMQP_URL=$URL_2 mq "$@"; }

	# mikkoo-inspect: its output pipe holds it after the first record
	# (100 kB each) while its node is killed; it starts again from the
	# front of the queue on the next node
	PK="peek_$Q"
	at2 declare-queue "$PK" --arguments "$qq"
	fill "$PK" 40 100000
	mikkoo-inspect -a "$PK" 2>"$BATS_TEST_TMPDIR/peek.err" | {
		read -r first
		echo "$first" >"$BATS_TEST_TMPDIR/peek.out"
		mqctl rabbitmq-kill 1
		cat >>"$BATS_TEST_TMPDIR/peek.out"
	}
	cat "$BATS_TEST_TMPDIR/peek.err" >&3
	grep -q "moved to RabbitMQ '.*' (node 2 of 3)" "$BATS_TEST_TMPDIR/peek.err"
	grep -q "peeking at '$PK' again from its front" "$BATS_TEST_TMPDIR/peek.err"
	# the last pass: the whole queue, in order
	jq -r '.properties.message_id' "$BATS_TEST_TMPDIR/peek.out" | tail -40 >"$BATS_TEST_TMPDIR/ids"
	diff "$BATS_TEST_TMPDIR/ids" <(seq -f 'id%g' 1 40)
	assert_equal "$(at2 count "$PK")" 40
	mqctl rabbitmq-start 1

	# mikkoo-replay: stopped mid-run while its node is killed; every
	# dead letter ends in its queue (a copy more is allowed: one was
	# unconfirmed), the DLQ empty, and nothing acked before its confirm
	T="target_$Q"
	DLQ="dlq_$Q"
	at2 declare-queue "$T" --arguments "$qq"
	at2 declare-queue "$DLQ" --arguments "$qq"
	fill "$DLQ" 600 100 "$T"
	mikkoo-replay -a "$DLQ" >"$BATS_TEST_TMPDIR/replay.out" \
		2>"$BATS_TEST_TMPDIR/replay.err" &
	pid=$!
	lines_ge() { [ "$(wc -l <"$BATS_TEST_TMPDIR/replay.out")" -ge "$1" ]; }
	wait_for 30 lines_ge 20
	kill -STOP "$pid"
	mqctl rabbitmq-kill 1
	kill -CONT "$pid"
	rc=0
	wait "$pid" || rc=$?
	cat "$BATS_TEST_TMPDIR/replay.err" >&3
	assert_equal "$rc" 0
	grep -q "moved to RabbitMQ '.*' (node 2 of 3)" "$BATS_TEST_TMPDIR/replay.err"
	wait_for 10 eval '[ "$(at2 count "$DLQ")" = 0 ]'
	MIKKOO_AMQP_URL=$URL_2 mq get "$T" --count "$(at2 count "$T")" --timeout 30 |
		jq -r '.properties.message_id' | sort -u | wc -l >"$BATS_TEST_TMPDIR/n"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/n")" 600
	mqctl rabbitmq-start 1

	# mikkoo-audit: killed under it mid-drain; it drains on from the next
	# node, and every message is taken
	A="audit_$Q"
	at2 declare-queue "$A" --arguments "$qq"
	fill "$A" 20000 50
	mikkoo-audit -a "$A" --grace 3600 -q "$Q" >"$BATS_TEST_TMPDIR/audit.out" \
		2>"$BATS_TEST_TMPDIR/audit.err" &
	pid=$!
	below() { [ "$(at2 count "$A")" -lt 19000 ]; }
	wait_for 30 below
	kill -STOP "$pid"
	mqctl rabbitmq-kill 1
	kill -CONT "$pid"
	rc=0
	wait "$pid" || rc=$?
	cat "$BATS_TEST_TMPDIR/audit.err" >&3
	assert_equal "$rc" 0
	grep -q "moved to RabbitMQ '.*' (node 2 of 3)" "$BATS_TEST_TMPDIR/audit.err"
	assert_equal "$(at2 count "$A")" 0
	mqctl rabbitmq-start 1
	for x in "$PK" "$T" "$DLQ" "$A"; do
		at2 delete-queue "$x"
	done
}
