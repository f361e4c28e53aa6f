#!/usr/bin/env bats
# SPDX-License-Identifier: BSD-3-Clause
# mikkoo-relay's command line, configuration and start-up failures: the
# documented exit codes and messages, and no password in any of them.

load helpers/common
load helpers/relay

setup() {
	Q=$(mk_name)
	CONSUMER=mikkoo
	CONF="$BATS_TEST_TMPDIR/mikkoo.yml"
}

teardown() {
	common_teardown
}

@test "the seed README's full example configuration is accepted as is" {
	cat >"$CONF" <<'YAML'
Application:

  poll_interval: 10
  sentry_dsn: [YOUR SENTRY DSN]

  statsd:
    enabled: true
    host: localhost
    port: 8125

  workers:
    test:
      confirm: False
      consumer_name: my_consumer
      max_failures: 5
      postgres_url: postgresql://localhost:5432/postgres
      rabbitmq_url: amqp://localhost:5672/%2f
      retry_delay: 5
      unregister: False
      wait_duration: 5

Daemon:
  user: mikkoo
  pidfile: /var/run/mikkoo

Logging:
  version: 1
  formatters:
    verbose:
      format: '%(levelname) -10s %(asctime)s  %(process)-6d %(processName) -20s %(name) -18s: %(message)s'
      datefmt: '%Y-%m-%d %H:%M:%S'
  handlers:
    console:
      class: logging.StreamHandler
      formatter: verbose
      debug_only: True
  loggers:
    mikkoo:
      handlers: [console]
      level: INFO
      propagate: true
  root:
    handlers: [console]
    level: CRITICAL
    propagate: true
  disable_existing_loggers: true
  incremental: false
YAML
	run --separate-stderr mikkoo-relay -n -c "$CONF"
	assert_success
	assert_output "configuration OK"
	[[ "$stderr" == *"'Logging' is ignored"* ]]
	[[ "$stderr" == *"'sentry_dsn' is ignored"* ]]
	[[ "$stderr" == *"'confirm: false' is ignored"* ]]
	# -f is accepted for compatibility
	run mikkoo-relay -f -n -c "$CONF"
	assert_success
}

@test "usage errors exit 64" {
	run -64 mikkoo-relay
	assert_line "mikkoo-relay: error: no configuration file: use -c FILE"
	run -64 mikkoo-relay -c x.yml extra
	assert_line "mikkoo-relay: error: unexpected argument"
	run -64 mikkoo-relay --ready-fd x -c x.yml
	run -64 mikkoo-relay --bogus
	assert_line --partial "try 'mikkoo-relay --help'"
	run -0 mikkoo-relay --help
	assert_line --index 0 --partial "usage: mikkoo-relay"
	run -0 mikkoo-relay -V
	assert_output --regexp "^mikkoo-relay [0-9]+\.[0-9]+\.[0-9]+$"
}

@test "one meaning per letter: -n and --check, -q QUEUE as --worker; -q alone, the old --quiet, still works with a warning" {
	local conf=$BATS_TEST_TMPDIR/c.yml
	printf 'Application:\n  workers:\n    q1:\n      postgres_url: %s\n      rabbitmq_url: amqp://127.0.0.1:1/\n      unregister: true\n' \
		"$MIKKOO_PG_URL" >"$conf"
	chmod 600 "$conf"
	for f in -n --dry-run --check; do
		run -0 --separate-stderr mikkoo-relay $f -c "$conf"
		assert_output "configuration OK"
		[[ "$stderr" == *"'unregister: true' drops"* ]]
	done
	# -q alone: quiet (the notice is a warning, so it stays), and said once
	run -0 --separate-stderr mikkoo-relay -n -q -c "$conf"
	[[ "$stderr" == *"-q alone is the old spelling of --quiet"* ]]
	run -0 --separate-stderr mikkoo-relay -n -c "$conf" -q
	[[ "$stderr" == *"-q alone is the old spelling of --quiet"* ]]
	# -q QUEUE names the worker, as -w does
	run -78 --separate-stderr mikkoo-relay -n -q nosuch -c "$conf"
	[[ "$stderr" == *"no worker 'nosuch'"* ]]
	[[ "$stderr" != *"old spelling"* ]]
	run -0 --separate-stderr mikkoo-relay -n -q q1 -c "$conf"
	run -78 --separate-stderr mikkoo-relay -n -w nosuch -c "$conf"
}

@test "configuration errors exit 78 and name the file, line and key" {
	run -78 mikkoo-relay -n -c "$BATS_TEST_TMPDIR/missing.yml"
	assert_output --partial "cannot open '$BATS_TEST_TMPDIR/missing.yml': No such file or directory"

	write_config "$CONF" "max_failurs: 3"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output --partial "$CONF:10:7: key 'Application/workers/$Q/max_failurs' is unknown (did you mean 'max_failures'?)"

	write_config "$CONF" "window: many"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output --partial "$CONF:10:15: key 'Application/workers/$Q/window'"

	write_config "$CONF"
	echo "      max_failures: 3" >>"$CONF"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output --partial "$CONF:10:7: key 'Application/workers/$Q/max_failures' is repeated (first on line 9)"

	write_config "$CONF" "retry_interval: 3"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output --partial "$CONF:10:7: key 'Application/workers/$Q/retry_interval' says again what line 8 said: give only one"


	printf 'Application:\n  workers:\n    q: [\n' >"$CONF"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output --regexp "$CONF:[0-9]+:[0-9]+: "

	write_config "$CONF"
	run -78 mikkoo-relay -c "$CONF" --worker nosuch
	assert_output --partial "no worker 'nosuch' in '$CONF'"
}

@test "a URL where a RabbitMQ host goes exits 78 naming the item, its password masked (a fuzz-config find)" {
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: $MIKKOO_PG_URL
      rabbitmq:
        host: [mq1, "amqp://u:S3cr3t-CANARY@mq0"]
YAML
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output "mikkoo-relay: error: $CONF:6:21: key 'Application/workers/$Q/rabbitmq/host', item 2: 'amqp://u:***@mq0' is not a host name (a URL goes in rabbitmq_url)"
	sed -i 's|host: .*|host: "mq0/vhost"|' "$CONF"
	run -78 mikkoo-relay -n -c "$CONF"
	assert_output "mikkoo-relay: error: $CONF:6:15: key 'Application/workers/$Q/rabbitmq/host': 'mq0/vhost' is not a host name (a URL goes in rabbitmq_url)"
	# host names, addresses (v6 too) are fine
	sed -i 's|host: .*|host: [mq-1.example.com, 127.0.0.1, "[::1]", fe80::1%eth0]|' "$CONF"
	run -0 mikkoo-relay -n -c "$CONF"
}

@test "an unreachable PostgreSQL exits 69 with the masked URL" {
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: postgresql://mikkoo:S3cr3t-CANARY@127.0.0.1:1/mikkoo
      rabbitmq_url: $MIKKOO_AMQP_URL
YAML
	run -69 mikkoo-relay -c "$CONF"
	assert_output --partial "cannot connect to PostgreSQL 'postgresql://mikkoo:***@127.0.0.1:1/mikkoo': "
	refute_output --partial "S3cr3t-CANARY"
}

@test "an unreachable RabbitMQ exits 69 with the masked URL" {
	install_schema
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: $MIKKOO_PG_URL
      rabbitmq_url: amqp://mikkoo:S3cr3t-CANARY@127.0.0.1:1/%2f
YAML
	run -69 mikkoo-relay -c "$CONF"
	assert_output --partial "cannot connect to RabbitMQ 'amqp://mikkoo:***@127.0.0.1:1/%2f': "
	refute_output --partial "S3cr3t-CANARY"
}

@test "a wrong RabbitMQ password exits 77" {
	install_schema
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: $MIKKOO_PG_URL
      rabbitmq_url: amqp://mikkoo:S3cr3t-CANARY@127.0.0.1:$AMQP_PORT/%2f
YAML
	run -77 mikkoo-relay -c "$CONF"
	assert_output --partial "cannot log in to RabbitMQ 'amqp://mikkoo:***@127.0.0.1:$AMQP_PORT/%2f': "
	assert_output --partial "403 ACCESS_REFUSED"
	refute_output --partial "S3cr3t-CANARY"
}

@test "a wrong PostgreSQL password exits 77" {
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: postgresql://mikkoo:S3cr3t-CANARY@127.0.0.1:$PGPORT/mikkoo
      rabbitmq_url: $MIKKOO_AMQP_URL
YAML
	run -77 mikkoo-relay -c "$CONF"
	assert_output --partial "cannot connect to PostgreSQL 'postgresql://mikkoo:***@127.0.0.1:$PGPORT/mikkoo': "
	assert_output --partial "password authentication failed"
	refute_output --partial "S3cr3t-CANARY"
}

@test "a database without the mikkoo schema exits 78 and says what to install" {
	db="noschema_$$"
	sql "CREATE DATABASE $db" >/dev/null
	PGDATABASE=$db sql "CREATE EXTENSION pgq" >/dev/null
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: postgresql://mikkoo:$PGPASSWORD@127.0.0.1:$PGPORT/$db
      rabbitmq_url: $MIKKOO_AMQP_URL
YAML
	run -78 mikkoo-relay -c "$CONF"
	assert_output --partial "table mikkoo.dead_letter does not exist in 'postgresql://mikkoo:***@127.0.0.1:$PGPORT/$db': install mikkoo.sql first"
	sql "DROP DATABASE $db" >/dev/null
}

@test "a schema older than the relay exits 78 and names the upgrade step; installing mikkoo.sql again fixes it" {
	db="oldschema_$$"
	sql "CREATE DATABASE $db" >/dev/null
	defer sql "DROP DATABASE IF EXISTS $db"
	PGDATABASE=$db sql "CREATE EXTENSION pgq" >/dev/null
	PGDATABASE=$db psql -qX -v ON_ERROR_STOP=1 \
		-f "$MIKKOO_TOP/test/fixtures/mikkoo-0.1.0.sql" >/dev/null
	cat >"$CONF" <<YAML
Application:
  workers:
    $Q:
      postgres_url: postgresql://mikkoo:$PGPASSWORD@127.0.0.1:$PGPORT/$db
      rabbitmq_url: $MIKKOO_AMQP_URL
YAML
	run -78 mikkoo-relay -c "$CONF"
	assert_output --partial "the mikkoo schema in 'postgresql://mikkoo:***@127.0.0.1:$PGPORT/$db' is older than 0.2.0; this program needs 0.2.0: upgrade it in place by installing mikkoo.sql again"
	PGDATABASE=$db psql -qX -v ON_ERROR_STOP=1 -f "$MIKKOO_SQL" >/dev/null 2>&1
	run -0 mikkoo-relay -n -c "$CONF"
	relay_start
	relay_stop
	assert_equal "$daemon_status" 0
}
