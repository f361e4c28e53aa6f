/* SPDX-License-Identifier: BSD-3-Clause */
/* tool: connection settings shared by the operator tools. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
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
			return mk_err_set(e, EX_CONFIG, "no worker '%s' in '%s'",
					  t->worker, t->config);
	} else if (t->cfg.nworkers == 1) {
		t->w = &t->cfg.workers[0];
	} else {
		return mk_err_set(e, EX_USAGE, "'%s' has %zu workers: choose "
				  "one with -w QUEUE", t->config,
				  t->cfg.nworkers);
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
		url = "";       /* libpq's environment and defaults */
	display = url_mask(url);
	if (display == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	if (t->dbname && strcmp(display, t->dbname) != 0)
		log_warn("a password given with -d is visible to every user "
			 "of this machine (ps): prefer ~/.pgpass, PGPASSWORD "
			 "or MIKKOO_POSTGRES_URL");
	rc = pg_connect(c, url, url[0] ? display : "(libpq defaults)",
			 t->prog, 10, e);
	free(display);
	return rc;
}

int
tool_amqp(struct tool_conn *t, struct mk_amqp_url *u, char **display,
	  struct mk_err *e)
{
	const char *url = getenv("MIKKOO_RABBITMQ_URL");

	*display = NULL;
	if (t->w) {
		/* The config's settings, re-parsed from nothing: copy. */
		const struct mk_amqp_url *s = &t->w->amqp;

		memset(u, 0, sizeof(*u));
		*u = *s;
		u->host = strdup(s->host);
		u->vhost = strdup(s->vhost);
		u->user = strdup(s->user);
		u->password = strdup(s->password);
		u->cacertfile = s->cacertfile ? strdup(s->cacertfile) : NULL;
		u->certfile = s->certfile ? strdup(s->certfile) : NULL;
		u->keyfile = s->keyfile ? strdup(s->keyfile) : NULL;
		u->key_password = s->key_password ? strdup(s->key_password)
			: NULL;
		u->sni = s->sni ? strdup(s->sni) : NULL;
		*display = strdup(t->w->amqp_display);
		return 0;
	}
	if (url == NULL)
		return mk_err_set(e, EX_USAGE, "no RabbitMQ to connect to: use "
				  "-c FILE or set MIKKOO_RABBITMQ_URL");
	if (url_amqp_parse(url, u, e) < 0)
		return mk_err_prefix(e, "MIKKOO_RABBITMQ_URL");
	*display = url_mask(url);
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
