#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
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
	# only the quorum queue is bound: no classic queue on one node
	mq delete-queue "$MQ"
	nodes_config "$URL_1" "$URL_2" "$URL_3"
}

teardown() {
	oracle_teardown
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

# judge: the oracle's verdict (finish), plus: no dead letter, and first
# deliveries in order except for events RabbitMQ nacked (a quorum queue
# whose leader stops nacks what it had not replicated): those are
# requeued and come later, each at most once out of order, so there are
# at most as many as the relay retried.
judge() {
	local order retried
	finish --late-ok "$@"
	echo "$output" | jq -e '.dead == 0'
	order=$(echo "$output" | jq .order)
	retried=$(relay_retried)
	[ "$order" -le "${retried:-0}" ] ||
		fail "$order first deliveries out of order, $retried retried"
	[ "$order" -eq 0 ] || grep -q "requeued" "$BATS_TEST_TMPDIR/relay.err"
	echo "retried: $retried (late first deliveries: $order)" >&3
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
	wait_for 60 grep -q "reconnected to RabbitMQ '" "$BATS_TEST_TMPDIR/relay.err"
	# it moved past the lost node, to the next one of the list
	wait_for 20 relay_node
	assert_equal "$(relay_node)" $((n % 3 + 1))
	sleep 2
	mqctl rabbitmq-start "$n"
	judge
	# BACK unset: the relay had other nodes all along
	report_recovery "$fault" "SIGKILL of the relay's node"
}

@test "cluster: graceful stop of another node, then started again" {
	relay_start --log-time
	produce 300 10
	wait_for 20 relay_node
	n=$(relay_node)
	other=$((n % 3 + 1))
	sleep 2
	mqctl rabbitmq-stop "$other"
	sleep 3
	mqctl rabbitmq-start "$other"
	assert_equal "$(relay_node)" "$n"
	judge
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
	wait_for 60 grep -q "reconnected to RabbitMQ '.*' (node 2 of 3)" \
		"$BATS_TEST_TMPDIR/relay.err"
	proxy mq HUP
	judge
	report_recovery "$fault" "the relay's node black-holed"
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
	sleep 8
	mqctl rabbitmq-start "$n" "$other"
	BACK=$(date +%s.%N)
	judge
	report_recovery "$fault" "two of three nodes stopped, no majority"
	grep -q "reconnected to RabbitMQ '" "$BATS_TEST_TMPDIR/relay.err"
}

@test "cluster: all three nodes restarted" {
	relay_start --log-time
	produce 300 14
	sleep 2
	fault=$(date +%s.%N)
	mqctl rabbitmq-stop 1 2 3
	mqctl rabbitmq-start 1 2 3
	BACK=$(date +%s.%N)
	judge
	report_recovery "$fault" "all three nodes stopped and started"
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
