# SPDX-License-Identifier: BSD-3-Clause
# Shared by test/servers/*: the server user, ports, and waiting helpers.
# Sourced by bash scripts.

SRV_USER=mikkoo-srv
PGBIN=/usr/lib/postgresql/15/bin

die() {
	echo "servers: error: $*" >&2
	exit 1
}

# Run a command as the unprivileged server user (initdb refuses root).
as_srv() {
	setpriv --reuid="$SRV_USER" --regid="$SRV_USER" --init-groups -- "$@"
}

# A server outlives the test that (re)started it: it must not hold the
# test runner's pipes (bats would wait for it forever).  Closes every fd
# above 2 of the calling (sub)shell.
close_fds() {
	local fd
	for fd in $(ls "/proc/$BASHPID/fd"); do
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	return 0
}

# Start a daemon in the background as the server user: "spawn_srv cmd &".
# It execs, so $! is the daemon's own PID (with a plain function call
# it would be a subshell's, and stopping "by PID" would orphan the
# daemon).
spawn_srv() {
	close_fds
	exec setpriv --reuid="$SRV_USER" --regid="$SRV_USER" --init-groups -- "$@"
}

ensure_user() {
	id -u "$SRV_USER" >/dev/null 2>&1 && return 0
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$SRV_USER" 2>/dev/null ||
		id -u "$SRV_USER" >/dev/null 2>&1 ||
		die "cannot create user $SRV_USER"
}

# A TCP port nobody listens on, from a random start.
free_port() {
	local used p
	used=$(ss -Htanl | awk '{ n = split($4, a, ":"); print a[n] }')
	while :; do
		p=$((20000 + RANDOM % 40000))
		grep -qx "$p" <<<"$used" && continue
		grep -qx "$p" <<<"${TAKEN:-}" && continue
		TAKEN="${TAKEN:-}
$p"
		echo "$p"
		return 0
	done
}

# wait_until SECONDS CMD...: poll every 0.1 s.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# The broker answers the AMQP 0-9-1 header with Connection.Start, a
# method frame: first byte 1.
amqp_answers() {
	local port=$1 b
	exec 9<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf 'AMQP\0\0\011\001' >&9
	b=$(timeout 2 head -c 1 <&9 | od -An -tu1 | tr -d ' ')
	exec 9<&- 9>&-
	[ "$b" = 1 ]
}

pid_alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# stop_pid PIDFILE SECONDS: TERM, wait, KILL; by PID only.
stop_pid() {
	local f=$1 secs=$2 pid
	[ -s "$f" ] || return 0
	pid=$(head -1 "$f")
	if pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_until "$secs" sh -c "! kill -0 $pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			wait_until 5 sh -c "! kill -0 $pid" || true
		fi
	fi
	rm -f "$f"
}
