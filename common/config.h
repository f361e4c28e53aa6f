/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config: the YAML configuration file, read into plain structs.
 *
 * Owns: struct mk_config and everything hanging off it, read through
 * the key table of config_keys.c (each key's type, range, default, reload
 * class and notices: the only place any of them is written; the relay's
 * config_diff.c compares two configurations through the same table), and
 * errors that name "FILE:LINE:COLUMN: key 'a/b/c': problem".  Used by
 * the relay and by the tools (-c takes their connections from it).
 * Never: connects, logs (notices for ignored sections are returned in
 * cfg->notices for the caller to log), or keeps the libyaml document.
 *
 * File layout (compatible with the Python mikkoo, 1.x and 3.x forms):
 *
 *   Application:
 *     poll_interval: 10            # supervisor stats interval, seconds
 *     sentry_dsn: ...              # accepted, ignored with a notice
 *     statsd: {enabled, host, port, prefix, include_hostname}
 *     metrics: {listen: "127.0.0.1:9321", health_max_lag: SECONDS,
 *               health_max_retained_wal: BYTES}
 *     workers:
 *       <pgq queue name>:
 *         postgres_url | postgresql_url: postgresql://...   (required)
 *         rabbitmq_url: amqp://... | [amqp://..., ...]       (1.x form)
 *         rabbitmq: {host (one, or a list), port, vhost,      (3.x form)
 *                    username, password,
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
 *         ticker (relay: the relay ticks its queue, the default; pgqd),
 *         routes (media type -> exchange, "default" for the rest: where
 *                 events without an exchange go; see event.h)
 *         source (pgq, the default: the worker's name is its PgQ queue;
 *                 logical: a replication slot, mikkoo-logical(7)), and
 *         for source logical only: slot (default mikkoo_<worker>),
 *         publication (one or a list), messages (mikkoo.emit streams,
 *         one or a list; at least one of the two), exchange (of table
 *         changes, required with publication), routing_key (default
 *         "{schema}.{table}"), skip_unchanged (default true);
 *         consumer_name, unregister and ticker are for source pgq only
 *   Daemon: {user, pidfile}
 *   Logging: ...                   # accepted, ignored with a notice
 *
 * Exactly one of rabbitmq_url / rabbitmq per worker (neither: an error).
 * Several RabbitMQ nodes: a list of URLs (each complete in itself), or a
 * list of hosts sharing the map's port, vhost, credentials and TLS; at
 * most CONFIG_MAX_NODES.
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
#include "event.h"
#include "url.h"

struct mk_statsd_config {
	bool enabled;          /* default false */
	char *host;            /* default "localhost" */
	int port;              /* default 8125 */
	char *prefix;          /* default "mikkoo" */
	bool include_hostname; /* default true (1.x) */
};

/* A list of strings from a YAML sequence. */
struct mk_strlist {
	char **v; /* NULL when the key is absent */
	size_t n;
};

#define CONFIG_MAX_NODES 16

/* One RabbitMQ node a worker may publish to. */
struct mk_amqp_node {
	struct mk_amqp_url url;
	char *display; /* its masked URL, for log lines */
};

/* routes: for events without an exchange (event.h struct mk_route). */
struct mk_routes {
	struct mk_route *v; /* in file order; NULL when absent */
	size_t n;
	char *fallback; /* the "default" route; NULL when absent */
};

/*
 * How a running relay takes a changed key on SIGHUP (each key's row in
 * config.c says which; a row without one fails the unit test).
 */
enum config_reload {
	CONFIG_RELOAD_UNSET,   /* no class given: a table bug */
	CONFIG_RELOAD_LIVE,    /* applied between batches, no reconnect */
	CONFIG_RELOAD_NOTICE,  /* only at the next start: a notice says so */
	CONFIG_RELOAD_RESTART, /* the worker reconnects (is restarted) */
};

/* ticker: the key's choices, in the table's order. */
enum mk_ticker { MK_TICKER_RELAY, MK_TICKER_PGQD };

/* source: the key's choices, in the table's order. */
enum mk_source { MK_SOURCE_PGQ, MK_SOURCE_LOGICAL };

struct mk_worker_config {
	char *queue;        /* the key under workers: the PgQ queue */
	char *postgres_url; /* libpq URL or conninfo, as written */
	char *rabbitmq_url; /* as written (1.x form), else NULL */
	/*
	 * From rabbitmq_url or the rabbitmq: map, with the table's defaults
	 * for what neither gave: heartbeat (s), timeout (connect, handshake
	 * and RPC deadline, s; PostgreSQL's connect timeout too), frame_max.
	 */
	struct mk_amqp_url amqp;
	char *amqp_display; /* masked amqp URL for log lines */
	/*
	 * Every RabbitMQ node in the order given, nodes[0] with amqp's
	 * settings (its own copy); one unless a list was given.  The relay
	 * tries them in this order (see mikkoo.yaml(5)).
	 */
	struct mk_amqp_node *nodes;
	size_t nnodes;                /* >= 1 */
	struct mk_strlist more_nodes; /* the list's items after the first,
				   as written (URLs, or hosts of the map) */
	char *postgres_display;       /* masked postgres_url for log lines */
	bool confirm;                 /* default true; false is accepted but
				   ignored with a notice: we always confirm */
	char *consumer_name;          /* default "mikkoo" */
	int max_failures;             /* default 10, 0..1000000 */
	int retry_delay;              /* seconds, default 10, 1..86400 */
	bool unregister;              /* default false; true warns */
	double wait_duration;         /* seconds, default 1, 0.01..3600 */
	bool persistent;              /* default true: delivery_mode 2 */
	size_t max_event_bytes;       /* default 8 MiB, 1 KiB..512 MiB */
	int window;      /* publishes in flight, default 1000, 1..65535 */
	int batch_chunk; /* rows per FETCH, default 1000, 1..100000 */
	struct mk_strlist exchanges; /* allowlist; v NULL: any exchange */
	bool allow_sender_routing;   /* CC/BCC headers; default false */
	int ticker;                  /* MK_TICKER_RELAY (default: the relay
				   ticks its queue, see ticker.h) or
				   MK_TICKER_PGQD */
	struct mk_routes routes;
	int source; /* MK_SOURCE_PGQ (default) or
				   MK_SOURCE_LOGICAL */
	/* source: logical (mikkoo-logical(7)); unused otherwise */
	char *slot; /* default "mikkoo_" + the worker's name */
	struct mk_strlist publications; /* table changes of these */
	struct mk_strlist streams;      /* mikkoo.emit() streams relayed */
	char *change_exchange;    /* table changes' exchange (key exchange) */
	char *change_routing_key; /* template, default "{schema}.{table}" */
	bool skip_unchanged;      /* default true */
	int line;                 /* where the worker was defined, for errors */
};

/* A one-line notice for the caller to log, and whom it concerns. */
struct mk_notice {
	char *queue; /* the worker it is about; NULL: global */
	char *text;  /* "FILE:LINE: ..." */
};

struct mk_metrics_config {
	char *listen;               /* "ADDRESS:PORT"; NULL: no endpoint */
	double health_max_lag;      /* seconds; 0: lag never fails health */
	size_t health_max_retained; /* bytes of WAL a slot worker's slot
				   may hold back; 0: never fails health */
};

struct mk_config {
	char *path;        /* as given */
	int poll_interval; /* default 60 */
	struct mk_statsd_config statsd;
	struct mk_metrics_config metrics;
	char *daemon_user;    /* Daemon/user, NULL if absent */
	char *daemon_pidfile; /* Daemon/pidfile, NULL if absent */
	struct mk_worker_config *workers;
	size_t nworkers; /* >= 1 */
	/*
	 * Notices for the caller to log at warning level: "FILE:LINE:
	 * 'Logging' is ignored: mikkoo-relay logs to stderr", the
	 * confirm/unregister notes, ...
	 */
	struct mk_notice *notices;
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
const struct mk_worker_config *
config_worker(const struct mk_config *cfg, const char *queue);

/* Is notice n for worker queue (its own, or a global one)?  queue NULL:
 * every notice is. */
bool config_notice_for(const struct mk_notice *n, const char *queue);

/*
 * The key table's own consistency, for the unit test: every row has a
 * reload class, and every default is a valid value of its key.  0, or -1
 * with e naming the first bad row.
 */
int config_check_table(struct mk_err *e);

#endif
