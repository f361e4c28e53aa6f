/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tool: what the operator tools share: where to connect, and the help
 * text for it.
 *
 * PostgreSQL, first match wins: -d URL-or-conninfo; the relay's
 * configuration (-c FILE, -w QUEUE when it has several workers); the
 * environment variable MIKKOO_POSTGRES_URL; libpq's own defaults (PGHOST,
 * PGUSER, ~/.pgpass, ...).  RabbitMQ (mikkoo-audit): the configuration's
 * worker's nodes, or MIKKOO_RABBITMQ_URL (one URL or several).
 * Passwords belong in files or the environment: one given with -d is
 * visible to every user of the machine, and a warning says so.
 * Owns: the loaded configuration, if any.  Never: exits.
 */
#ifndef MIKKOO_TOOL_H
#define MIKKOO_TOOL_H

#include "config.h"
#include "err.h"
#include "pgq.h"
#include "url.h"

#define TOOL_CONN_HELP \
	"  -d, --dbname URL     PostgreSQL URL or conninfo (default: from -c,\n" \
	"                       $MIKKOO_POSTGRES_URL, or libpq's PG* variables)\n" \
	"  -c, --config FILE    take connections from mikkoo-relay's config\n" \
	"  -w, --worker QUEUE   which worker of that config (if several)\n"

#define TOOL_CONN_OPTS \
	{ "dbname", required_argument, NULL, 'd' }, \
	{ "config", required_argument, NULL, 'c' }, \
	{ "worker", required_argument, NULL, 'w' }

struct tool_conn {
	const char *prog;
	const char *dbname;
	const char *config;
	const char *worker;
	struct mk_config cfg;
	const struct mk_worker_config *w;       /* NULL without -c */
};

/* Load -c if given and pick the worker. */
int tool_setup(struct tool_conn *t, struct mk_err *e);
void tool_release(struct tool_conn *t);

/* Connect to PostgreSQL (pgq_connect with the tool's name). */
int tool_pg(struct tool_conn *t, struct pgq_conn *c, struct mk_err *e);

/*
 * The RabbitMQ nodes to try, in order (a copy: free with
 * tool_nodes_free): the config worker's, else MIKKOO_RABBITMQ_URL's (one
 * URL, or several separated by white space; heartbeat 30 s and timeout
 * 10 s unless a URL says otherwise).
 */
int tool_amqp_nodes(struct tool_conn *t, struct mk_amqp_node **nodes,
		    size_t *n, struct mk_err *e);
void tool_nodes_free(struct mk_amqp_node *nodes, size_t n);

/* The worker's queue name, or NULL. */
const char *tool_queue(const struct tool_conn *t);

#endif
