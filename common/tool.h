/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tool: what the operator tools share: where to connect, and the help
 * text for it.
 *
 * PostgreSQL, first match wins: -d URL-or-conninfo; the relay's
 * configuration (-c FILE, -w QUEUE when it has several workers); the
 * environment variable MIKKOO_POSTGRES_URL; libpq's own defaults (PGHOST,
 * PGUSER, ~/.pgpass, ...).  RabbitMQ (mikkoo-audit, and mikkoo-inspect
 * and mikkoo-replay on the RabbitMQ side): the configuration's worker's
 * nodes, or MIKKOO_RABBITMQ_URL (one URL or several).  Passwords belong
 * in files or the environment: one given with -d is visible to every
 * user of the machine, and a warning says so.
 * Owns: the loaded configuration, if any, and a tool's RabbitMQ session
 * (struct tool_mq): the nodes, the connection in use and its moves to
 * the next node when it is lost mid-run.  Never: exits.
 */
#ifndef MIKKOO_TOOL_H
#define MIKKOO_TOOL_H

#include "broker.h"
#include "config.h"
#include "err.h"
#include "pg.h"
#include "url.h"

/* The connection options, rows of each tool's cli_opt table. */
#define TOOL_CONN_OPTS                                              \
	{ 'd', "dbname", "URL",                                     \
	  "PostgreSQL URL or conninfo (default: from "              \
	  "-c,\n$MIKKOO_POSTGRES_URL, or libpq's PG* variables)" }, \
		{ 'c', "config", "FILE",                            \
		  "take connections from mikkoo-relay's "           \
		  "config" },                                       \
	{                                                           \
		'w', "worker", "QUEUE",                             \
			"which worker of that config (if several)"  \
	}

/* The values of TOOL_CONN_OPTS: true when opt was one of them. */
struct tool_conn;
bool tool_option(struct tool_conn *t, int opt, const char *arg);

struct tool_conn {
	const char *prog;
	const char *dbname;
	const char *config;
	const char *worker;
	struct mk_config cfg;
	const struct mk_worker_config *w; /* NULL without -c */
};

/* Load -c if given and pick the worker. */
int tool_setup(struct tool_conn *t, struct mk_err *e);
void tool_release(struct tool_conn *t);

/* Connect to PostgreSQL (pg_connect with the tool's name); PQfinish *c. */
int tool_pg(struct tool_conn *t, PGconn **c, struct mk_err *e);

/*
 * The RabbitMQ nodes to try, in order (a copy: free with
 * tool_nodes_free): the config worker's, else MIKKOO_RABBITMQ_URL's (one
 * URL, or several separated by white space; heartbeat 30 s and timeout
 * 10 s unless a URL says otherwise).
 */
int tool_amqp_nodes(struct tool_conn *t, struct mk_amqp_node **nodes, size_t *n,
		    struct mk_err *e);
void tool_nodes_free(struct mk_amqp_node *nodes, size_t n);

/*
 * A tool's RabbitMQ session: the first node that answers, and when that
 * node is lost mid-run (tool_mq_lost: not a refusal), the next one: tool_mq_move drops the lost connection without a handshake (its
 * unacknowledged deliveries go back to their queues) and connects to
 * the next node that answers, the lost one last (with one node: that
 * one again, for a restarted node).  Moves back off briefly (a quorum
 * queue needs a moment for a new leader) and are bounded (TOOL_MQ_MOVES
 * per run), so a cluster that is down ends the run with 69 as before.
 * Each move is a warning naming both nodes and why.
 */
#define TOOL_MQ_MOVES 8

struct tool_mq {
	struct mk_amqp_node *nodes;
	size_t n;
	size_t node;      /* in use (or last) */
	const char *name; /* connection name */
	struct broker *b; /* NULL after a failed move */
	int moves;
};

int tool_mq_open(struct tool_conn *t, const char *name, struct tool_mq *m,
		 struct mk_err *e);
/* Was the connection lost (broker_lost), so that a move may help? */
bool tool_mq_lost(const struct tool_mq *m);
/*
 * The connection was lost (why says how): move.  0 with m->b the new
 * connection; -1 with e when no node answered or the moves ran out.
 */
int tool_mq_move(struct tool_mq *m, const struct mk_err *why, struct mk_err *e);
void tool_mq_close(struct tool_mq *m);

/*
 * The end of a tool's main(): close pg (NULL is fine), release t, and
 * close stdout.  Returns rc, or 74 (EX_IOERR) with a message when the
 * output could not be written and rc said all was well (0, or the "no"
 * answer 1, which is only true if the report was complete).
 */
int tool_end(struct tool_conn *t, PGconn *pg, int rc);

/* The worker's queue name, or NULL. */
const char *tool_queue(const struct tool_conn *t);

#endif
