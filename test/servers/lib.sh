# SPDX-License-Identifier: BSD-3-Clause
# Shared by test/servers/*: the server user, ports, and waiting helpers.
# Sourced by bash scripts.

SRV_USER=mikkoo-srv
PGBIN=/usr/lib/postgresql/15/bin
# A test's libpq settings (a list of ports, read-write only) must not
# reach the servers we start (postgres reads PGPORT) or our own psql.
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGTARGETSESSIONATTRS \
	PGCONNECT_TIMEOUT PGSSLMODE PGOPTIONS

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

# --- several servers of a kind (start, ctl and stop share these; they
# read the server directory from $dir) ----------------------------------

# Node I's suffix: "" for 1 (DIR/rabbitmq, DIR/pg), else I.
rmq_sfx() {
	[ "$1" = 1 ] || echo "$1"
}

rmq_port() {
	cat "$dir/rabbitmq$(rmq_sfx "$1")/amqp.port"
}

# Start RabbitMQ node I in the background; its pid in DIR/rabbitmqI.pid.
rmq_spawn() {
	local sfx
	sfx=$(rmq_sfx "$1")
	(
		# shellcheck disable=SC1090,SC1091
		. "$dir/rabbitmq$sfx/env.sh"
		spawn_srv /usr/lib/rabbitmq/bin/rabbitmq-server \
			>>"$dir/rabbitmq$sfx/server.out" 2>&1 </dev/null &
		echo $! >"$dir/rabbitmq$sfx.pid"
	)
}

# PostgreSQL server I: data in DIR/pgI, socket in DIR/pgI-run, pid in
# DIR/postgresI.pid, log DIR/postgresI.log (no I for server 1).
pg_data() {
	echo "$dir/pg$(rmq_sfx "$1")"
}

pg_sock() {
	echo "$dir/pg$(rmq_sfx "$1")-run"
}

pg_port_of() {
	cat "$dir/pg$(rmq_sfx "$1").port"
}

pg_psql() {
	local i=$1
	shift
	psql -qXAt -v ON_ERROR_STOP=1 -h "$(pg_sock "$i")" \
		-p "$(pg_port_of "$i")" -U mikkoo -d mikkoo "$@"
}

# pg_node_conf I PORT SYNC_NAMES: what differs between the servers of a
# pair (postgresql.conf includes node.conf; pg_basebackup copies it, so
# a new standby rewrites it).
pg_node_conf() {
	local i=$1 port=$2 sync=$3
	mkdir -p "$(pg_sock "$i")"
	chown "$SRV_USER:$SRV_USER" "$(pg_sock "$i")"
	cat >"$(pg_data "$i")/node.conf" <<CONF
port = $port
unix_socket_directories = '$(pg_sock "$i")'
cluster_name = 'pg$i'
synchronous_standby_names = '$sync'
CONF
	chown "$SRV_USER:$SRV_USER" "$(pg_data "$i")/node.conf"
	echo "$port" >"$dir/pg$(rmq_sfx "$i").port"
}

pg_start_node() {
	local i=$1 sfx
	sfx=$(rmq_sfx "$i")
	(
		close_fds
		as_srv "$PGBIN/pg_ctl" -D "$(pg_data "$i")" \
			-l "$dir/postgres$sfx.log" -w -t 60 start >/dev/null
	) || return 1
	head -1 "$(pg_data "$i")/postmaster.pid" >"$dir/postgres$sfx.pid"
}

# pg_make_standby I FROM PORT: server I becomes a streaming standby of
# server FROM (a fresh pg_basebackup), listening on PORT.
pg_make_standby() {
	local i=$1 from=$2 port=$3 data
	data=$(pg_data "$i")
	rm -rf "$data"
	as_srv "$PGBIN/pg_basebackup" -h "$(pg_sock "$from")" \
		-p "$(pg_port_of "$from")" -U mikkoo -D "$data" -R -X stream \
		-c fast >>"$dir/basebackup$(rmq_sfx "$i").log" 2>&1 || return 1
	pg_node_conf "$i" "$port" ""
	pg_start_node "$i"
}

# pg_make_sync PRIMARY: commits on PRIMARY wait for its standby from
# now on; returns once the standby streams as the synchronous one.  (Set
# before a standby is attached, every commit would hang.)
pg_make_sync() {
	local i=$1
	sed -i "s/^synchronous_standby_names = .*/synchronous_standby_names = '*'/" \
		"$(pg_data "$i")/node.conf"
	pg_psql "$i" -c "SELECT pg_reload_conf()" >/dev/null || return 1
	_sync_count() {
		[ "$(pg_psql "$i" -c "SELECT count(*) FROM pg_stat_replication
			WHERE sync_state = 'sync'")" = 1 ]
	}
	wait_until 30 _sync_count
}
