/* SPDX-License-Identifier: BSD-3-Clause */
/* tool: connection settings shared by the operator tools. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "nodes.h"
#include "jsonl.h"
#include "tool.h"

int
tool_setup(struct tool_conn *t, struct mk_err *e)
{
	memset(&t->cfg, 0, sizeof(t->cfg));
	t->w = NULL;
	if (t->config == NULL) {
		if (t->worker)
			return mk_err_set(e, EX_USAGE, "-w needs -c FILE");
		return 0;
	}
	if (config_load(t->config, &t->cfg, e) < 0) {
		if (e->code == EX_NOINPUT)
			e->code = EX_CONFIG;
		return -1;
	}
	if (t->worker) {
		t->w = config_worker(&t->cfg, t->worker);
		if (t->w == NULL)
			return mk_err_set(e, EX_CONFIG,
					  "no worker '%s' in '%s'", t->worker,
					  t->config);
	} else if (t->cfg.nworkers == 1) {
		t->w = &t->cfg.workers[0];
	} else {
		return mk_err_set(e, EX_USAGE,
				  "'%s' has %zu workers: choose "
				  "one with -w QUEUE",
				  t->config, t->cfg.nworkers);
	}
	return 0;
}

void
tool_release(struct tool_conn *t)
{
	config_release(&t->cfg);
	t->w = NULL;
}

bool
tool_option(struct tool_conn *t, int opt, const char *arg)
{
	switch (opt) {
	case 'd':
		t->dbname = arg;
		return true;
	case 'c':
		t->config = arg;
		return true;
	case 'w':
		t->worker = arg;
		return true;
	default:
		return false;
	}
}

int
tool_pg(struct tool_conn *t, PGconn **c, struct mk_err *e)
{
	const char *url = t->dbname;
	char *display;
	int rc;

	if (url == NULL && t->w)
		url = t->w->postgres_url;
	if (url == NULL)
		url = getenv("MIKKOO_POSTGRES_URL");
	if (url == NULL)
		url = ""; /* libpq's environment and defaults */
	display = url_mask(url);
	if (display == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	if (t->dbname && strcmp(display, t->dbname) != 0)
		log_warn("a password given with -d is visible to every user "
			 "of this machine (ps): prefer ~/.pgpass, PGPASSWORD "
			 "or MIKKOO_POSTGRES_URL");
	rc = pg_connect(c, url, url[0] ? display : "(libpq defaults)", t->prog,
			10, e);
	free(display);
	return rc;
}

void
tool_nodes_free(struct mk_amqp_node *nodes, size_t n)
{
	size_t i;

	for (i = 0; nodes && i < n; i++) {
		url_amqp_release(&nodes[i].url);
		free(nodes[i].display);
	}
	free(nodes);
}

/* MIKKOO_RABBITMQ_URL: one URL, or several separated by white space. */
static int
env_nodes(const char *env, struct mk_amqp_node **out, size_t *n,
	  struct mk_err *e)
{
	struct mk_amqp_node *nodes;
	const char *p = env;
	size_t cap = 0, i = 0;

	for (p = env; *p;) {
		p += strspn(p, " \t\n");
		if (*p)
			cap++;
		p += strcspn(p, " \t\n");
	}
	if (cap == 0)
		return mk_err_set(e, EX_USAGE, "MIKKOO_RABBITMQ_URL is empty");
	if (cap > CONFIG_MAX_NODES)
		return mk_err_set(e, EX_USAGE,
				  "MIKKOO_RABBITMQ_URL lists %zu "
				  "nodes: at most %d",
				  cap, CONFIG_MAX_NODES);
	nodes = calloc(cap, sizeof(*nodes));
	if (nodes == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	for (p = env; i < cap; i++) {
		size_t len;
		char *one;

		p += strspn(p, " \t\n");
		len = strcspn(p, " \t\n");
		one = strndup(p, len);
		p += len;
		if (one == NULL) {
			tool_nodes_free(nodes, i);
			return mk_err_set(e, EX_OSERR, "out of memory");
		}
		if (url_amqp_parse(one, &nodes[i].url, e) < 0) {
			explicit_bzero(one, len);
			free(one);
			tool_nodes_free(nodes, i);
			return mk_err_prefix(e, "MIKKOO_RABBITMQ_URL");
		}
		nodes[i].display = url_mask(one);
		explicit_bzero(one, len);
		free(one);
		/* the tools' deadlines where the URL gives none */
		if (nodes[i].url.heartbeat < 0)
			nodes[i].url.heartbeat = 30;
		if (nodes[i].url.timeout < 0)
			nodes[i].url.timeout = 10;
		if (nodes[i].display == NULL) {
			tool_nodes_free(nodes, i + 1);
			return mk_err_set(e, EX_OSERR, "out of memory");
		}
	}
	*out = nodes;
	*n = cap;
	return 0;
}

int
tool_amqp_nodes(struct tool_conn *t, struct mk_amqp_node **out, size_t *n,
		struct mk_err *e)
{
	const char *env = getenv("MIKKOO_RABBITMQ_URL");
	struct mk_amqp_node *nodes;
	size_t i;

	*out = NULL;
	*n = 0;
	if (t->w == NULL) {
		if (env == NULL)
			return mk_err_set(e, EX_USAGE,
					  "no RabbitMQ to connect "
					  "to: use -c FILE or set "
					  "MIKKOO_RABBITMQ_URL");
		return env_nodes(env, out, n, e);
	}
	/* The config's nodes, copied: the config is released first. */
	nodes = calloc(t->w->nnodes, sizeof(*nodes));
	if (nodes == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	for (i = 0; i < t->w->nnodes; i++) {
		if (url_amqp_copy(&nodes[i].url, &t->w->nodes[i].url) < 0 ||
		    (nodes[i].display = strdup(t->w->nodes[i].display)) ==
			    NULL) {
			tool_nodes_free(nodes, i + 1);
			return mk_err_set(e, EX_OSERR, "out of memory");
		}
	}
	*out = nodes;
	*n = t->w->nnodes;
	return 0;
}

int
tool_end(struct tool_conn *t, PGconn *pg, int rc)
{
	struct mk_err e;

	PQfinish(pg);
	tool_release(t);
	if (jsonl_finish(stdout, &e) < 0 && (rc == 0 || rc == MK_EX_NO)) {
		log_error("%s", e.msg);
		return e.code;
	}
	return rc;
}

const char *
tool_queue(const struct tool_conn *t)
{
	return t->w ? t->w->queue : NULL;
}

static void
node_failed(void *arg, size_t i, size_t n, const struct mk_err *e)
{
	(void)arg;
	log_warn("RabbitMQ node %zu of %zu: %s: trying the next", i + 1, n,
		 e->msg);
}

int
tool_mq_open(struct tool_conn *t, const char *name, struct tool_mq *m,
	     struct mk_err *e)
{
	memset(m, 0, sizeof(*m));
	m->name = name;
	if (tool_amqp_nodes(t, &m->nodes, &m->n, e) < 0)
		return -1;
	if (nodes_connect(m->nodes, m->n, 0, name, &m->b, &m->node, node_failed,
			  NULL, e) < 0)
		return -1;
	if (m->n > 1)
		log_info("connected to RabbitMQ '%s' (node %zu of %zu)",
			 m->nodes[m->node].display, m->node + 1, m->n);
	return 0;
}

bool
tool_mq_lost(const struct tool_mq *m)
{
	return m->b && broker_lost(m->b);
}

int
tool_mq_move(struct tool_mq *m, const struct mk_err *why_in, struct mk_err *e)
{
	size_t lost = m->node;
	struct mk_err why = *why_in; /* e may be why_in */
	double pause;
	struct timespec ts;

	broker_abort(m->b);
	m->b = NULL;
	if (++m->moves > TOOL_MQ_MOVES)
		return mk_err_set(e, EX_UNAVAILABLE,
				  "%s (RabbitMQ lost %d "
				  "times in this run: giving up)",
				  why.msg, TOOL_MQ_MOVES);
	/* 0.25 s, then 0.5, 1, 2 s: a quorum queue elects a new leader */
	pause = 0.25 * (double)(1 << (m->moves < 4 ? m->moves - 1 : 3));
	ts.tv_sec = (time_t)pause;
	ts.tv_nsec = (long)((pause - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
	if (nodes_connect(m->nodes, m->n, nodes_after(lost, m->n), m->name,
			  &m->b, &m->node, node_failed, NULL, e) < 0) {
		mk_err_prefix(e, "%s; then", why.msg);
		return -1;
	}
	log_warn("%s: moved to RabbitMQ '%s' (node %zu of %zu)", why.msg,
		 m->nodes[m->node].display, m->node + 1, m->n);
	return 0;
}

void
tool_mq_close(struct tool_mq *m)
{
	/* A blocked connection (a memory alarm) is not read by the server:
	 * a close would wait for the RPC timeout. */
	if (m->b && broker_blocked(m->b))
		broker_abort(m->b);
	else
		broker_free(m->b);
	m->b = NULL;
	tool_nodes_free(m->nodes, m->n);
	m->nodes = NULL;
	m->n = 0;
}
