#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# serial: restarts, kills or reconfigures the shared servers
# The s6 and runit service directories of dist/, as "make install-dist"
# installs them (only their paths made this test's: the program, the
# configuration, the log directory), under Debian's real s6-svscan and
# runsvdir on temporary scan directories, against the real servers.
# The relay runs as user mikkoo, as the directories say; the oracle
# (test/tools/oracle.py) judges that nothing was lost.

load helpers/common
load helpers/relay
load helpers/oracle

setup_file() {
	install_schema
	# the service directories' user, as the Debian package makes it
	id -u mikkoo >/dev/null 2>&1 ||
		useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin mikkoo
	SV=$(mktemp -d /tmp/mikkoo-sv.XXXXXX)
	chmod 755 "$SV"     # the relay's user reads its config below
	export SV
	local s
	for s in s6 runit; do
		env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
			make -s -C "$MIKKOO_TOP" install-dist \
			DESTDIR="$SV/$s/root" PREFIX=/usr \
			BINDIR="$MIKKOO_BUILD/bin" SYSCONFDIR="$SV/$s/etc" \
			LOGDIR="$SV/$s/log" >&3
		install -d -m 755 "$SV/$s/etc/mikkoo" "$SV/$s/scan"
	done
}

teardown_file() {
	rm -rf "$SV"
}

setup() {
	setup_oracle_queue
	unset SCANPID
}

teardown() {
	local left=
	broker_resume
	if [ -n "${SCANPID:-}" ]; then
		# the relay and its workers, by id, in case the supervisor
		# cannot stop them
		left=$(relay_pid)
		[ -n "$left" ] && left="$left $(pgrep -P "$left" | tr '\n' ' ')"
		if [ "$KIND" = s6 ]; then
			s6-svc -k -d "$SVC" 2>/dev/null
			s6-svscanctl -t "$SCAN" 2>/dev/null
		else
			sv kill "$SVC" 2>/dev/null
			kill -HUP "$SCANPID" 2>/dev/null
		fi
		wait_for 20 _gone "$SCANPID" || kill -KILL "$SCANPID"
		wait "$SCANPID" 2>/dev/null
		# nothing of ours may outlive the test
		[ -z "$left" ] || kill -KILL $left 2>/dev/null
	fi
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -n "${LOG:-}" ]; then
		echo "--- service log:" >&2
		sed 's/^/log> /' "$LOG/current" >&2 2>/dev/null
		echo "--- supervisor:" >&2
		sed 's/^/log> /' "$BATS_TEST_TMPDIR/scan.out" >&2 2>/dev/null
	fi
	oracle_teardown
}

# service s6|runit [KEY: VALUE...]: the installed service directory,
# fresh, in the scan directory, and the configuration it reads (for $Q,
# as user mikkoo).  Sets KIND, SCAN, SVC, LOG, CONF.
service() {
	KIND=$1
	shift
	SCAN="$SV/$KIND/scan"
	SVC="$SCAN/mikkoo-relay"
	LOG="$SV/$KIND/log"
	rm -rf "$SVC" "$LOG"
	cp -a "$SV/$KIND/root/usr/share/mikkoo/$KIND/mikkoo-relay" "$SVC"
	CONF="$SV/$KIND/etc/mikkoo/mikkoo.yml"
	write_config "$CONF" "max_failures: 1000" "$@"
	chown mikkoo:mikkoo "$CONF"
}

# Start the supervision tree on $SCAN (the service comes up with it).
scan_start() {
	if [ "$KIND" = s6 ]; then
		s6-svscan "$SCAN" >"$BATS_TEST_TMPDIR/scan.out" 2>&1 3>&- &
	else
		runsvdir "$SCAN" >"$BATS_TEST_TMPDIR/scan.out" 2>&1 3>&- &
	fi
	SCANPID=$!
	# its supervisor answers (s6-svwait and sv need it)
	if [ "$KIND" = s6 ]; then
		wait_for 10 s6-svok "$SVC"
	else
		wait_for 10 sv status "$SVC"
	fi
}

# The relay's pid, as its supervisor knows it ("" when down).
relay_pid() {
	if [ "$KIND" = s6 ]; then
		local p
		p=$(s6-svstat -o pid "$SVC" 2>/dev/null)
		[ "$p" != -1 ] && echo "$p"
	else
		# "run: DIR: (pid N) 3s" (supervise/pid is finish's pid while
		# that runs)
		sv status "$SVC" 2>/dev/null |
			sed -n 's/^run: [^(]*(pid \([0-9]*\)).*/\1/p'
	fi
}

relay_up() {
	[ -n "$(relay_pid)" ]
}

relay_changed() {
	local p
	p=$(relay_pid)
	[ -n "$p" ] && [ "$p" != "$1" ]
}

logged() {
	grep -qF -- "$1" "$LOG/current" 2>/dev/null
}

readies_are() {
	[ "$(count_logged "ready: 1 worker running")" = "$1" ]
}

# count_logged TEXT: lines of the service log with TEXT.
count_logged() {
	grep -cF -- "$1" "$LOG/current" 2>/dev/null || true
}

# A batch of the relay's is open on $Q (PgQ's view).
batch_open() {
	[ "$(sql "SELECT count(*) FROM pgq.get_consumer_info('$Q', '$CONSUMER')
		WHERE current_batch IS NOT NULL")" = 1 ]
}

s6_state() {
	[ "$(s6-svstat -o up,wantedup,exitcode "$SVC")" = "$1" ]
}

sv_down_for_good() {
	local st
	st=$(sv status "$SVC")
	[[ "$st" == "down: $SVC:"* ]] && [[ "$st" != *"want up"* ]]
}

aq_count_ge() {
	[ "$(mq count "$AQ")" -ge "$1" ]
}

# While the RabbitMQ node's VM (a child of its pid file's shell) is
# stopped, nothing is confirmed: a batch the relay took stays open, and
# a stop or a SIGKILL lands in the middle of it, not by luck.
broker_pause() {
	BEAM=$(pgrep -P "$(cat "$MIKKOO_SRV_DIR/rabbitmq.pid")" beam.smp)
	[ -n "$BEAM" ] && kill -STOP "$BEAM"
}

broker_resume() {
	if [ -n "${BEAM:-}" ]; then
		kill -CONT "$BEAM"
		BEAM=
	fi
}

# big P N: N numbered, audited events of producer P in one transaction,
# so that relaying them keeps a batch open a while.
big() {
	sql "SELECT count(mikkoo.insert_audited_event('$Q', '$EX', 'big',
		json_build_object('p', $1, 'seq', g)::text, 'application/json'))
	     FROM generate_series(1, $2) g" >/dev/null
}

# Every line of the log starts with a time the logger added.
assert_stamped() {
	local re=$1 n bad
	n=$(wc -l <"$LOG/current")
	[ "$n" -ge 3 ] || fail "only $n log lines"
	bad=$(grep -cvE "$re" "$LOG/current" || true)
	[ "$bad" = 0 ] || {
		grep -vE "$re" "$LOG/current" >&2
		fail "$bad of $n lines without a time"
	}
}

# The relay's user and its log lines carry no sanitizer report.
assert_clean_log() {
	assert_no_sanitizer_report "$LOG/current"
	run ps -o user= -p "$(relay_pid)"
	assert_output mikkoo
}

judge() {
	local tick
	tick=$(sql "SELECT pgq.force_tick('$Q')")
	wait_for 60 caught_up "$tick"
	# caught up: every message is in $AQ already
	run oracle check --queue "$Q" --amqp-queue "$AQ" --idle 0.5
	echo "oracle: $output" >&3
	assert_success
	echo "$output" | jq -e '.lost == 0 and .unexpected == 0 and .order == 0 and .dead == 0'
}

@test "s6: s6-svwait -U returns once the relay is ready (its consumer registered: an event sent then arrives); s6-log stamps each line" {
	# a consumer nobody registered yet: only the relay can do it
	CONSUMER="c_$Q"
	service s6
	scan_start
	run s6-svwait -U -t 30000 "$SVC"
	assert_success
	assert_equal "$(sql "SELECT count(*) FROM pgq.get_consumer_info('$Q', '$CONSUMER')")" 1
	insert_event "'k'" "'at-ready'" "'$EX'" "NULL" "NULL" "NULL"
	get_messages 1
	run msgs
	assert_output --partial '"body":"at-ready"'
	wait_for 10 logged "ready: 1 worker running"
	assert_stamped '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}  mikkoo-relay: '
	assert_clean_log
}

@test "s6: events committed before readiness arrive; s6-svc -h reloads; s6-svc -d with a batch open exits 0 before timeout-kill; s6-svc -k (SIGKILL) is restarted; nothing lost" {
	local pid
	service s6
	# committed before the relay started: they arrive too
	big -1 3
	scan_start
	s6-svwait -U -t 30000 "$SVC"
	wait_for 20 aq_count_ge 3

	# a reload that applies a changed key without reconnecting
	write_config "$CONF" "max_failures: 999"
	s6-svc -h "$SVC"
	wait_for 10 logged "configuration reloaded: 0 workers restarted, 1 told to apply changes"
	wait_for 10 logged "configuration reloaded: max_failures applied"

	# the stop comes while a batch of 1000 events waits for RabbitMQ
	broker_pause
	big -2 1000
	wait_for 20 batch_open
	s6-svc -d "$SVC"
	wait_for 10 logged "stopping on SIGTERM: waiting for the workers"
	broker_resume
	run s6-svwait -D -t 15000 "$SVC"
	assert_success
	run s6-svstat -o up,exitcode,signal "$SVC"
	assert_output "false 0 NA"
	run logged "did not stop in time"
	assert_failure

	# up again; the same for SIGKILL
	s6-svc -u "$SVC"
	s6-svwait -U -t 30000 "$SVC"
	pid=$(relay_pid)
	broker_pause
	big -3 1000
	wait_for 20 batch_open
	s6-svc -k "$SVC"
	wait_for 30 relay_changed "$pid"
	broker_resume
	s6-svwait -U -t 30000 "$SVC"
	assert_clean_log
	judge
	# the clean stop's last line; SIGKILL leaves none
	assert_equal "$(count_logged "mikkoo-relay: info: stopped")" 1
}

@test "s6: a configuration error (78) or a refused login (77) stops the restarts (s6-permafailon)" {
	service s6 "no_such_key: 1"
	scan_start
	# finish exited 125: s6-supervise no longer wants it up (it would
	# restart it a second after a death otherwise)
	wait_for 20 s6_state "false false 78"
	assert_equal "$(count_logged "no_such_key")" 1

	# fixed, but with a wrong RabbitMQ password: 77, and down again
	write_config "$CONF"
	sed -i "s#$MIKKOO_AMQP_URL#amqp://$AMQP_USER:wrong@$AMQP_HOST:$AMQP_PORT/%2f#" "$CONF"
	s6-svc -u "$SVC"
	wait_for 20 s6_state "false false 77"
	sleep 1.5       # past s6-supervise's restart delay: still one
	assert_equal "$(count_logged "ACCESS_REFUSED")" 1
	assert_equal "$(count_logged "no_such_key")" 1
	run logged "wrong"    # the password stays out of the log
	assert_failure
}

@test "runit: sv hup reloads; sv down with a batch open exits 0 within sv's wait; sv kill is restarted; nothing lost; svlogd stamps each line" {
	local pid
	service runit
	scan_start
	wait_for 30 readies_are 1
	big -1 3
	wait_for 20 aq_count_ge 3

	write_config "$CONF" "max_failures: 999"
	sv hup "$SVC"
	wait_for 10 logged "configuration reloaded: max_failures applied"

	broker_pause
	big -2 1000
	wait_for 20 batch_open
	sv down "$SVC"
	wait_for 10 logged "stopping on SIGTERM: waiting for the workers"
	broker_resume
	# sv's default wait (7 s) is the timeout: it fails if that passes
	run sv -v down "$SVC"
	assert_success
	assert_output --partial "ok: down: $SVC"
	logged "mikkoo-relay: info: stopped"
	run logged "did not stop in time"
	assert_failure

	sv up "$SVC"
	wait_for 30 readies_are 2
	pid=$(relay_pid)
	broker_pause
	big -3 1000
	wait_for 20 batch_open
	sv kill "$SVC"
	wait_for 30 relay_changed "$pid"
	broker_resume
	wait_for 30 readies_are 3
	assert_clean_log
	judge
	assert_stamped '^[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+ '
}

@test "runit: a configuration error (78) stops the restarts (finish marks it down)" {
	service runit "no_such_key: 1"
	scan_start
	wait_for 20 logged "mikkoo-relay exited with status 78: not restarting it"
	# down and no longer wanted up (else: "want up")
	wait_for 10 sv_down_for_good
	sleep 1.5       # past runsv's restart delay: still one
	assert_equal "$(count_logged "no_such_key")" 1
}
