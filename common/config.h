/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config: the YAML configuration file, read into plain structs.
 *
 * Owns: struct mk_config and everything hanging off it; the list of
 * accepted keys (one table: path, type, default, check), their defaults,
 * and errors that name "FILE:LINE:COLUMN: key 'a/b/c': problem".
 * Never: connects, logs (notices for ignored sections are returned in
 * cfg->notices for the caller to log), or keeps the libyaml document.
 *
 * File layout (compatible with the Python mikkoo, 1.x and 3.x forms):
 *
 *   Application:
 *     poll_interval: 10            # supervisor stats interval, seconds
 *     sentry_dsn: ...              # accepted, ignored with a notice
 *     statsd: {enabled, host, port, prefix, include_hostname}
 *     workers:
 *       <pgq queue name>:
 *         postgres_url | postgresql_url: postgresql://...   (required)
 *         rabbitmq_url: amqp://...                           (1.x form)
 *         rabbitmq: {host, port, vhost, username, password,  (3.x form)
 *                    password_file, heartbeat_interval, socket_timeout,
 *                    frame_max,
 *                    ssl_options: {ca_certs, certfile, keyfile,
 *                                  password, verify, server_hostname,
 *                                  protocol, ca_path, ca_data, ciphers}}
 *         confirm, consumer_name, max_failures, retry_delay |
 *         retry_interval, unregister, wait_duration,
 *         persistent, max_event_bytes, window, batch_chunk,
 *         exchanges (a list: the only exchanges events may name),
 *         allow_sender_routing (CC/BCC headers; default false),
 *         ticker (relay: the relay ticks its queue, the default; pgqd)
 *   Daemon: {user, pidfile}
 *   Logging: ...                   # accepted, ignored with a notice
 *
 * Exactly one of rabbitmq_url / rabbitmq per worker (neither: an error).
 * The RabbitMQ password comes from the URL or mapping, else from
 * rabbitmq: password_file (its first line), else from the environment
 * variable MIKKOO_RABBITMQ_PASSWORD, else "guest".  PostgreSQL passwords
 * are libpq's business (~/.pgpass, PGPASSWORD, PGPASSFILE).  A file that
 * holds a password and is readable by group or others gets a notice,
 * as libpq gives for .pgpass.
 * Unknown or misspelt keys are errors, except under Logging and
 * sentry_dsn, whose values are never looked at.  Booleans take YAML 1.1
 * spellings (true/false/yes/no/on/off, any case), as PyYAML did.
 */
#ifndef MIKKOO_CONFIG_H
#define MIKKOO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "url.h"

struct mk_statsd_config {
	bool enabled;           /* default false */
	char *host;             /* default "localhost" */
	int port;               /* default 8125 */
	char *prefix;           /* default "mikkoo" */
	bool include_hostname;  /* default true (1.x) */
};

struct mk_worker_config {
	char *queue;            /* the key under workers: the PgQ queue */
	char *postgres_url;     /* libpq URL or conninfo, as written */
	struct mk_amqp_url amqp;/* from rabbitmq_url or the rabbitmq: map */
	char *amqp_display;     /* masked amqp URL for log lines */
	char *postgres_display; /* masked postgres_url for log lines */
	bool confirm;           /* default true; false is accepted but
				   ignored with a notice: we always confirm */
	char *consumer_name;    /* default "mikkoo" */
	int max_failures;       /* default 10, 0..1000000 */
	int retry_delay;        /* seconds, default 10, 1..86400 */
	bool unregister;        /* default false; true warns */
	double wait_duration;   /* seconds, default 1, 0.01..3600 */
	bool persistent;        /* default true: delivery_mode 2 */
	size_t max_event_bytes; /* default 8 MiB, 1 KiB..512 MiB */
	int window;             /* publishes in flight, default 1000, 1..65535 */
	int batch_chunk;        /* rows per FETCH, default 1000, 1..100000 */
	char **exchanges;       /* allowlist (exchanges: [..]); NULL: any */
	size_t nexchanges;
	bool allow_sender_routing; /* CC/BCC headers; default false */
	char *ticker;           /* "relay" (default) or "pgqd", as written */
	bool relay_ticks;       /* ticker: relay (see ticker.h) */
	int heartbeat;          /* seconds, default 30 (0 disables) */
	double connect_timeout; /* seconds, default 10 */
	int line;               /* where the worker was defined, for errors */
};

struct mk_config {
	char *path;             /* as given */
	int poll_interval;      /* default 60 */
	struct mk_statsd_config statsd;
	char *daemon_user;      /* Daemon/user, NULL if absent */
	char *daemon_pidfile;   /* Daemon/pidfile, NULL if absent */
	struct mk_worker_config *workers;
	size_t nworkers;        /* >= 1 */
	/*
	 * One-line notices for the caller to log at info/warning level:
	 * "FILE:LINE: Logging is ignored: mikkoo logs to stderr", the
	 * confirm/unregister notes, ...  NULL-terminated array.
	 */
	char **notices;
	size_t nnotices;
};

/*
 * Read and validate path.  On success fills cfg (release with
 * config_release) and returns 0.  On failure returns -1 with e->code
 * EX_CONFIG (EX_NOINPUT if the file does not exist) and e->msg like
 *   "mikkoo.yml:12:7: key 'Application/workers/test/max_failurs' is
 *    unknown (did you mean 'max_failures'?)"
 *   "mikkoo.yml:9:21: key '.../rabbitmq_url': bad URL
 *    'amqp://u:***@h:99999/': port out of range"
 * cfg is left released on failure.
 */
int config_load(const char *path, struct mk_config *cfg, struct mk_err *e);

/* Same, from a buffer (name is used in messages).  For tests and fuzzing. */
int config_load_buffer(const char *name, const char *buf, size_t len,
		       struct mk_config *cfg, struct mk_err *e);

/* Free everything; passwords are wiped first. */
void config_release(struct mk_config *cfg);

/* The worker named queue, or NULL. */
const struct mk_worker_config *config_worker(const struct mk_config *cfg,
					     const char *queue);

/*
 * True when two worker configs would connect and behave identically
 * (used by SIGHUP reload to decide which workers to restart).
 */
bool config_worker_equal(const struct mk_worker_config *a,
			 const struct mk_worker_config *b);

#endif
