/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-inspect: a queue's status, pending events, retries, dead letters. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"
#include "jsonl.h"
#include "log.h"
#include "tool.h"

#define USAGE \
	"usage: mikkoo-inspect [conn] -q QUEUE [--consumer NAME] " \
	"[status|pending|retry|dead]\n" \
	"                      [--limit N] [dead filters]"

enum { OPT_CONSUMER = 256, OPT_SINCE, OPT_UNTIL, OPT_RK, OPT_REASON,
       OPT_ID };

static const struct cli_opt opts[] = {
	TOOL_CONN_OPTS,
	{ 'q', "queue", "QUEUE", "the PgQ queue (default: the worker's)" },
	{ OPT_CONSUMER, "consumer", "NAME", "the consumer (status: all; else "
	  "mikkoo)" },
	{ 'l', "limit", "N", "at most N records" },
	{ OPT_SINCE, "since", "TIME", "dead: failed at or after TIME" },
	{ OPT_UNTIL, "until", "TIME", "dead: failed before TIME" },
	{ OPT_RK, "routing-key", "KEY", "dead: this ev_type only" },
	{ OPT_REASON, "reason-like", "PAT", "dead: reason LIKE PAT (e.g. "
	  "'%NO_ROUTE%')" },
	{ OPT_ID, "id", "N", "dead: this dead letter (repeatable)" },
	CLI_STD_OPTS,
	{ 0 },
};

static const struct cli cli = {
	.prog = "mikkoo-inspect",
	.usage = USAGE,
	.about =
	"Show a PgQ queue as JSON lines, without consuming or changing\n"
	"anything (a read-only transaction, rolled back):\n"
	"  status   one record per consumer: lag, pending events, open batch,\n"
	"           retry and dead-letter counts (the default)\n"
	"  pending  the events the consumer has not finished, in ev_id order\n"
	"  retry    the consumer's events waiting in PgQ's retry queue\n"
	"  dead     rows of mikkoo.dead_letter (all queues without -q)\n",
	.opts = opts,
	.after =
	"Exit status: 0 ok, 64 usage, 66 no such queue or consumer, 69\n"
	"PostgreSQL unreachable, 74 output failed, 77 login or permission\n"
	"refused, 78 bad config.  See mikkoo-inspect(1).\n",
};

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-inspect" };
	struct inspect_opts o = { 0 };
	enum inspect_what what = INSPECT_STATUS;
	PGconn *pg = NULL;
	char *ids = NULL;
	struct cli_parser p;
	struct mk_err e;
	long count;
	int opt, rc = 0;

	log_init("mikkoo-inspect");
	cli_init(&p, &cli);
	while ((opt = cli_next(&p, argc, argv, &rc)) != CLI_END) {
		if (opt == CLI_EXIT)
			goto out;
		if (tool_option(&t, opt, optarg))
			continue;
		switch (opt) {
		case 'q': o.queue = optarg; break;
		case OPT_CONSUMER: o.consumer = optarg; break;
		case OPT_SINCE: o.dead.since = optarg; break;
		case OPT_UNTIL: o.dead.until = optarg; break;
		case OPT_RK: o.dead.routing_key = optarg; break;
		case OPT_REASON: o.dead.reason_like = optarg; break;
		case OPT_ID:
			if (dead_add_id(&ids, optarg) < 0)
				CLI_FAIL(rc, &cli, "--id needs a positive integer");
			break;
		case 'l':
			if (cli_long(optarg, 1, LONG_MAX, &o.limit) < 0)
				CLI_FAIL(rc, &cli, "--limit needs a positive integer");
			break;
		}
	}
	if (optind < argc) {
		static const char *const names[] = {
			"status", "pending", "retry", "dead",
		};
		int i;

		for (i = 0; i < 4 && strcmp(argv[optind], names[i]); i++)
			;
		if (i == 4)
			CLI_FAIL(rc, &cli, "the view is status, pending, "
					   "retry or dead");
		what = (enum inspect_what)i;
		if (++optind < argc)
			CLI_FAIL(rc, &cli, "unexpected argument");
	}
	o.dead.ids = ids;
	if (what != INSPECT_DEAD && (dead_filtered(&o.dead) && (o.dead.since
	    || o.dead.until || o.dead.routing_key || o.dead.reason_like ||
	    ids)))
		CLI_FAIL(rc, &cli, "--since, --until, --routing-key, "
				   "--reason-like and --id are for 'dead'");
	if (tool_setup(&t, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
		goto out;
	}
	if (o.queue == NULL)
		o.queue = tool_queue(&t);
	if (o.queue == NULL && what != INSPECT_DEAD)
		CLI_FAIL(rc, &cli, "which queue? give -q QUEUE");
	o.dead.queue = o.queue;
	o.dead.consumer = o.consumer;
	if (tool_pg(&t, &pg, &e) < 0 ||
	    inspect_run(pg, what, &o, stdout, &count, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
	}
out:
	free(ids);
	return tool_end(&t, pg, rc);
}
