/* SPDX-License-Identifier: BSD-3-Clause */
/* config_keys: every configuration key, one row each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"

#define W(f) .target = T_WORKER, .off = offsetof(struct mk_worker_config, f)
#define C(f) .target = T_CFG, .off = offsetof(struct mk_config, f)
#define S(f) .target = T_STATSD, .off = offsetof(struct mk_statsd_config, f)
#define A(f) .target = T_AMQP, .off = offsetof(struct mk_amqp_url, f)
#define RANGE(a, b) .lo = (a), .hi = (b)
#define DEF(s) .def = (s)
#define LIVE .reload = CONFIG_RELOAD_LIVE
#define NOTICE .reload = CONFIG_RELOAD_NOTICE
#define RESTART .reload = CONFIG_RELOAD_RESTART
#define NOTE(s) .note = (s)
#define GIVEN_A(f) .given = 1 + offsetof(struct mk_amqp_url, f)
#define END             \
	{               \
		NULL, 0 \
	}

static const char *const ticker_choices[] = { "relay", "pgqd", NULL };
static const char *const source_choices[] = { "pgq", "logical", NULL };

/* Keys of one source only (mikkoo.yaml(5)). */
#define PGQ_ONLY .when = "source=pgq"
#define SLOT_ONLY .when = "source=logical"
#define RELAYS .one_of = "publication or messages (what a slot worker relays)"

static const struct key daemon_keys[] = {
	{ "user", K_STR, C(daemon_user), NOTICE },
	{ "pidfile", K_STR, C(daemon_pidfile), NOTICE },
	END,
};

static const struct key statsd_keys[] = {
	{ "enabled", K_BOOL, S(enabled), DEF("false"), LIVE },
	{ "host", K_STR, S(host), DEF("localhost"), LIVE },
	{ "port", K_INT, S(port), RANGE(1, 65535), DEF("8125"), LIVE },
	{ "prefix", K_STR, S(prefix), DEF("mikkoo"), LIVE },
	{ "include_hostname", K_BOOL, S(include_hostname), DEF("true"), LIVE },
	END,
};

static const struct key metrics_keys[] = {
	/* the listener is opened once, at start */
	{ "listen", K_LISTEN, C(metrics.listen), NOTICE },
	{ "health_max_lag", K_DOUBLE, C(metrics.health_max_lag),
	  RANGE(0.001, 86400), LIVE },
	{ "health_max_retained_wal", K_SIZE, C(metrics.health_max_retained),
	  RANGE(1, 1e15), LIVE },
	END,
};

static const struct key app_keys[] = {
	{ "poll_interval", K_INT, C(poll_interval), RANGE(1, 86400), DEF("60"),
	  LIVE },
	{ "sentry_dsn", K_IGNORED, .target = T_CFG, LIVE,
	  NOTE("Sentry is not supported") },
	{ "statsd", K_STATSD, .target = T_CFG, .sub = statsd_keys, LIVE },
	{ "metrics", K_SECTION, .target = T_CFG, .sub = metrics_keys, LIVE },
	/* workers come and go by name; each one's keys say the rest */
	{ "workers", K_WORKERS, .target = T_CFG, RESTART },
	END,
};

const struct key config_top_keys[] = {
	{ "Application", K_SECTION, .target = T_CFG, .sub = app_keys, LIVE },
	{ "Daemon", K_SECTION, .target = T_CFG, .sub = daemon_keys, NOTICE },
	{ "Logging", K_IGNORED, .target = T_CFG, LIVE,
	  NOTE("mikkoo-relay logs to stderr") },
	END,
};

static const struct key ssl_keys[] = {
	{ "ca_certs", K_STR, A(cacertfile), RESTART },
	{ "certfile", K_STR, A(certfile), RESTART },
	{ "keyfile", K_STR, A(keyfile), RESTART },
	{ "password", K_SECRET, A(key_password), RESTART },
	{ "verify", K_BOOL, A(verify), DEF("true"), RESTART },
	{ "server_hostname", K_STR, A(sni), RESTART },
	{ "protocol", K_UNSUPPORTED, .target = T_AMQP, LIVE },
	{ "ca_path", K_UNSUPPORTED, .target = T_AMQP, LIVE },
	{ "ca_data", K_UNSUPPORTED, .target = T_AMQP, LIVE },
	{ "ciphers", K_UNSUPPORTED, .target = T_AMQP, LIVE },
	END,
};

/* The password default comes last: see finish_worker. */
const struct key config_rabbitmq_keys[] = {
	{ "host", K_HOSTS, A(host), DEF("localhost"), RESTART },
	{ "port", K_INT, A(port), RANGE(1, 65535), DEF("5672"), RESTART },
	{ "vhost", K_STR, A(vhost), DEF("/"), RESTART },
	{ "username", K_STR, A(user), DEF("guest"), RESTART },
	{ "password", K_SECRET, A(password), DEF("guest"), RESTART,
	  .group = "password", GIVEN_A(password_given) },
	{ "password_file", K_PWFILE, A(password), RESTART,
	  .group = "password" },
	{ "heartbeat_interval", K_INT, A(heartbeat), RANGE(0, 65535), DEF("30"),
	  RESTART },
	{ "socket_timeout", K_DOUBLE, A(timeout), RANGE(0.1, 3600), DEF("10"),
	  RESTART },
	{ "frame_max", K_INT, A(frame_max), RANGE(4096, 2147483647),
	  DEF("131072"), RESTART },
	{ "ssl_options", K_SSL, .target = T_AMQP, .sub = ssl_keys, RESTART },
	END,
};

const struct key config_worker_keys[] = {
	{ "postgres_url", K_STR, W(postgres_url), RESTART,
	  .group = "postgres_url" },
	{ "postgresql_url", K_STR, W(postgres_url), RESTART,
	  .group = "postgres_url" },
	{ "rabbitmq_url", K_AMQP_URL, W(rabbitmq_url), RESTART,
	  .group = "rabbitmq" },
	{ "rabbitmq", K_RABBITMQ, .target = T_WORKER,
	  .sub = config_rabbitmq_keys, RESTART, .group = "rabbitmq" },
	/* always on: false only earns a notice */
	{ "confirm", K_BOOL, W(confirm), DEF("true"), LIVE,
	  NOTE("'confirm: false' is ignored: mikkoo-relay always waits for "
	       "publisher confirms") },
	{ "source", K_CHOICE, W(source), DEF("pgq"), RESTART,
	  .choices = source_choices },
	{ "consumer_name", K_NAME, W(consumer_name), DEF("mikkoo"), RESTART,
	  PGQ_ONLY },
	{ "max_failures", K_INT, W(max_failures), RANGE(0, 1000000), DEF("10"),
	  LIVE },
	{ "retry_delay", K_INT, W(retry_delay), RANGE(1, 86400), DEF("10"),
	  LIVE, .group = "retry" },
	{ "retry_interval", K_INT, W(retry_delay), RANGE(1, 86400), DEF("10"),
	  LIVE, .group = "retry" },
	{ "unregister", K_BOOL, W(unregister), DEF("false"), LIVE,
	  NOTE("'unregister: true' drops the consumer's position and retry "
	       "queue on every shutdown; events inserted while the relay is "
	       "down are skipped"),
	  PGQ_ONLY },
	{ "wait_duration", K_DOUBLE, W(wait_duration), RANGE(0.01, 3600),
	  DEF("1"), LIVE },
	{ "persistent", K_BOOL, W(persistent), DEF("true"), LIVE },
	{ "max_event_bytes", K_SIZE, W(max_event_bytes),
	  RANGE(1024, 512.0 * 1024 * 1024), DEF("8388608"), LIVE },
	{ "window", K_INT, W(window), RANGE(1, 65535), DEF("1000"), LIVE },
	{ "batch_chunk", K_INT, W(batch_chunk), RANGE(1, 100000), DEF("1000"),
	  LIVE },
	{ "exchanges", K_STRLIST, W(exchanges), LIVE },
	{ "allow_sender_routing", K_BOOL, W(allow_sender_routing), DEF("false"),
	  LIVE },
	{ "ticker", K_CHOICE, W(ticker), DEF("relay"), RESTART,
	  .choices = ticker_choices, PGQ_ONLY },
	{ "routes", K_ROUTES, W(routes), LIVE },
	/* source: logical (mikkoo-logical(7)); {worker} is its name */
	{ "slot", K_SLOT, W(slot), DEF("mikkoo_{worker}"), RESTART, SLOT_ONLY },
	{ "publication", K_NAMES, W(publications), RANGE(1, 63), RESTART,
	  SLOT_ONLY, RELAYS },
	{ "messages", K_NAMES, W(streams), RANGE(1, 255), RESTART, SLOT_ONLY,
	  RELAYS },
	{ "exchange", K_STR, W(change_exchange), RESTART, SLOT_ONLY,
	  .with = "publication" },
	{ "routing_key", K_STR, W(change_routing_key), DEF("{schema}.{table}"),
	  RESTART, SLOT_ONLY },
	{ "skip_unchanged", K_BOOL, W(skip_unchanged), DEF("true"), RESTART,
	  SLOT_ONLY },
	END,
};

const void *
config_field(const struct key *k, const struct mk_config *cfg,
	     const struct mk_worker_config *w)
{
	switch (k->target) {
	case T_CFG:
		return (const char *)cfg + k->off;
	case T_STATSD:
		return (const char *)&cfg->statsd + k->off;
	case T_WORKER:
		return (const char *)w + k->off;
	case T_AMQP:
		return (const char *)&w->amqp + k->off;
	}
	return NULL;
}

int
config_choice(const struct key *k, const char *s)
{
	int i;

	for (i = 0; k->choices && k->choices[i]; i++)
		if (strcmp(k->choices[i], s) == 0)
			return i;
	return -1;
}

bool
config_applies(const struct key *k, const struct mk_worker_config *w)
{
	const struct key *c;
	const char *eq;
	size_t n;

	if (k->when == NULL)
		return true;
	eq = strchr(k->when, '=');
	n = eq ? (size_t)(eq - k->when) : strlen(k->when);
	for (c = config_worker_keys; c->name; c++)
		if (c->type == K_CHOICE && strlen(c->name) == n &&
		    strncmp(c->name, k->when, n) == 0)
			break;
	if (c->name == NULL || eq == NULL)
		return true; /* a table bug: config_check_table says so */
	return config_choice(c, eq + 1) ==
	       *(const int *)config_field(c, NULL, w);
}

/* The table's own rules, for the unit test. */
static int
check_tab(const struct key *tab, const char *prefix, struct mk_err *e)
{
	const struct key *k;

	for (k = tab; k->name; k++) {
		char path[128];

		snprintf(path, sizeof(path), "%s%s", prefix, k->name);
		if (k->reload == CONFIG_RELOAD_UNSET)
			return mk_err_set(e, EX_SOFTWARE,
					  "key '%s' does not "
					  "say how a reload treats it",
					  path);
		if (k->def && (k->type == K_INT || k->type == K_DOUBLE ||
			       k->type == K_SIZE)) {
			char *end;
			double v = strtod(k->def, &end);

			if (*end || v < k->lo || v > k->hi)
				return mk_err_set(e, EX_SOFTWARE,
						  "key '%s': "
						  "default '%s' is out of its "
						  "range",
						  path, k->def);
		}
		if (k->def && k->type == K_BOOL &&
		    strcmp(k->def, "true") != 0 && strcmp(k->def, "false") != 0)
			return mk_err_set(e, EX_SOFTWARE,
					  "key '%s': default "
					  "'%s' is not true or false",
					  path, k->def);
		if (k->type == K_CHOICE &&
		    (k->choices == NULL || k->def == NULL ||
		     config_choice(k, k->def) < 0))
			return mk_err_set(e, EX_SOFTWARE,
					  "key '%s': its "
					  "default is not one of its choices",
					  path);
		if (k->when) {
			const struct key *c;
			const char *eq = strchr(k->when, '=');
			size_t n = eq ? (size_t)(eq - k->when) : 0;

			for (c = config_worker_keys; eq && c->name; c++)
				if (c->type == K_CHOICE &&
				    strlen(c->name) == n &&
				    strncmp(c->name, k->when, n) == 0)
					break;
			if (eq == NULL || c->name == NULL ||
			    config_choice(c, eq + 1) < 0)
				return mk_err_set(e, EX_SOFTWARE,
						  "key '%s': "
						  "'when %s' names no choice "
						  "of a worker key",
						  path, k->when);
		}
		if (k->with) {
			const struct key *c;

			for (c = tab; c->name; c++)
				if (strcmp(c->name, k->with) == 0)
					break;
			if (c->name == NULL)
				return mk_err_set(e, EX_SOFTWARE,
						  "key '%s' is "
						  "required with '%s', which "
						  "is not in its table",
						  path, k->with);
		}
		if (k->type == K_NAMES && !(k->hi >= 1))
			return mk_err_set(e, EX_SOFTWARE,
					  "key '%s': names "
					  "need a length bound",
					  path);
		if (k->type == K_IGNORED && k->note == NULL)
			return mk_err_set(e, EX_SOFTWARE,
					  "key '%s' is ignored "
					  "without saying why",
					  path);
		if (k->note && k->type == K_BOOL && k->def == NULL)
			return mk_err_set(e, EX_SOFTWARE,
					  "key '%s': a note "
					  "needs a default to differ from",
					  path);
		if (k->sub) {
			snprintf(path + strlen(path),
				 sizeof(path) - strlen(path), "/");
			if (check_tab(k->sub, path, e) < 0)
				return -1;
		}
		if (k->type == K_WORKERS) {
			snprintf(path + strlen(path),
				 sizeof(path) - strlen(path), "/*/");
			if (check_tab(config_worker_keys, path, e) < 0)
				return -1;
		}
	}
	return 0;
}

int
config_check_table(struct mk_err *e)
{
	const struct key *k;

	/* config.c keeps which worker keys a file gave in 64 bits */
	for (k = config_worker_keys; k->name; k++)
		if (k - config_worker_keys >= 64)
			return mk_err_set(e, EX_SOFTWARE,
					  "over 64 worker "
					  "keys: widen struct ctx's given");
	return check_tab(config_top_keys, "", e);
}
