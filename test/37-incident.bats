#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts, kills or reconfigures the shared servers
# The incident walk-through of mikkoo-replay(1), run as written: a
# consumer rejected messages, peek, fix, resurrect, audit.  The page's
# names are fixed, so RabbitMQ gets a vhost of its own and the PgQ queue
# 'orders' is made afresh.

load helpers/common
load helpers/relay

setup_file() {
	install_schema
}

clean_pg() {
	sql "SELECT pgq.drop_queue('orders', true) FROM pgq.queue
	     WHERE queue_name = 'orders';
	     DELETE FROM mikkoo.audit WHERE queue = 'orders'" >/dev/null
}

setup() {
	VH="walk_$$_$RANDOM"
	"$RABBITMQCTL" add_vhost "$VH" >/dev/null
	"$RABBITMQCTL" set_permissions -p "$VH" "$AMQP_USER" '.*' '.*' '.*' >/dev/null
	export MIKKOO_AMQP_URL="amqp://$AMQP_USER:$AMQP_PASSWORD@127.0.0.1:$AMQP_PORT/$VH"
	export MIKKOO_RABBITMQ_URL=$MIKKOO_AMQP_URL
	clean_pg
	Q=orders
	CONSUMER=mikkoo
	pgq_create_queue orders
	sql "SELECT pgq.register_consumer('orders', 'mikkoo')" >/dev/null
	CONF="$BATS_TEST_TMPDIR/mikkoo.yml"
	write_config "$CONF"
}

teardown() {
	common_teardown
	"$RABBITMQCTL" delete_vhost "$VH" >/dev/null 2>&1 || true
	clean_pg
}

depth_is() {
	[ "$(mq count "$1")" -eq "$2" ]
}

policy_applied() {
	"$RABBITMQCTL" list_queues -p "$VH" name policy 2>/dev/null |
		grep -qE '^billing[[:space:]]+billing-dlx$'
}

# The literal blocks between the walk-through markers of the page: lines
# "$ command", each followed by the output it must print.
walkthrough() {
	awk '/^\.\\" walk-through:begin/ { on = 1; next }
	     /^\.\\" walk-through:end/ { on = 0 }
	     on && /^\.Bd -literal/ { lit = 1; next }
	     on && /^\.Ed/ { lit = 0; next }
	     on && lit { gsub(/\\e/, "\\"); print }' \
		"$MIKKOO_TOP/man/mikkoo-replay.1"
}

# run_walkthrough DIR: run each command in DIR with bash -o pipefail,
# compare its standard output with the page's; stop at the first
# difference.
run_walkthrough() {
	local dir=$1 cmd= want= line n=0
	while IFS= read -r line; do
		if [[ $line == '$ '* ]]; then
			[ -n "$cmd" ] && check_step "$dir" "$cmd" "$want"
			cmd=${line#\$ }
			want=
			n=$((n + 1))
		else
			want+="$line"$'\n'
		fi
	done < <(walkthrough)
	[ -n "$cmd" ] && check_step "$dir" "$cmd" "$want"
	[ "$n" -ge 6 ] || fail "only $n commands found in the walk-through"
}

check_step() {
	local dir=$1 cmd=$2 want=$3 got rc=0
	got=$(cd "$dir" && bash -o pipefail -c "$cmd" 2>>"$dir/stderr") || rc=$?
	[ "$rc" -eq 0 ] || {
		sed 's/^/stderr> /' "$dir/stderr" >&2
		fail "'$cmd' exited with $rc"
	}
	[ "$got"$'\n' = "$want" ] || [ -z "$got" -a -z "$want" ] || {
		printf 'command: %s\nwant:\n%sgot:\n%s\n' "$cmd" "$want" "$got" >&2
		fail "'$cmd' printed something else than the page says"
	}
}

@test "the incident walk-through of mikkoo-replay(1) runs as written" {
	# the scene the page describes
	mq declare-exchange orders
	mq declare-exchange billing.dlx --type fanout
	mq declare-queue billing --bind 'orders:order.*'
	mq declare-queue billing.dlq --bind 'billing.dlx:'
	mq declare-queue orders.audit --bind 'orders:#'
	"$RABBITMQCTL" set_policy -p "$VH" billing-dlx '^billing$' \
		'{"dead-letter-exchange":"billing.dlx"}' --apply-to queues >/dev/null
	wait_for 20 policy_applied
	relay_start
	for i in 1 2 3; do
		mikkoo-insert -q orders -e orders -r order.paid \
			-b "{\"order\":$i}" --audit >/dev/null
	done
	wait_for 20 depth_is billing 3
	wait_for 20 depth_is orders.audit 3
	# the bad deploy: billing rejects every order
	mq reject billing --count 3
	wait_for 20 depth_is billing.dlq 3

	mkdir "$BATS_TEST_TMPDIR/walk"
	run_walkthrough "$BATS_TEST_TMPDIR/walk"

	# and the fixed consumer has its orders back, once each, in order
	assert_equal "$(mq count billing.dlq)" 0
	run -0 mq get billing --count 3
	assert_equal "$(echo "$output" | jq -r .body | paste -sd ' ')" \
		'{"order":1} {"order":2} {"order":3}'
	assert_equal "$(mq count billing)" 0
	assert_equal "$(mq count orders.audit)" 0
	assert_equal "$(sql "SELECT count(*) FROM mikkoo.audit WHERE queue = 'orders'")" 0
	relay_stop
	assert_equal "$daemon_status" 0
}
