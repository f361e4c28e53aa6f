/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-inspect: a queue's status, pending events, retries, dead letters,
 * captured tables; RabbitMQ queues and exchanges. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "inspect.h"
#include "jsonl.h"
#include "log.h"
#include "mq.h"
#include "tool.h"

#define USAGE                                                           \
	"usage: mikkoo-inspect [conn] -q QUEUE [--consumer NAME] "      \
	"[status|pending|retry|dead|captures|slots]\n"                  \
	"                      [--limit N] [dead filters]\n"            \
	"       mikkoo-inspect [conn] --amqp-queue QUEUE [--limit N]\n" \
	"       mikkoo-inspect [conn] tap -e EXCHANGE [-k KEY]... "     \
	"[--limit N] [--seconds S]"

enum { OPT_CONSUMER = 256, OPT_SECONDS, OPT_STOP_AT_LIMIT };

static const struct cli_opt opts[] = {
	TOOL_CONN_OPTS,
	{ 'q', "queue", "QUEUE", "the PgQ queue (default: the worker's)" },
	{ OPT_CONSUMER, "consumer", "NAME",
	  "the consumer (status: all; else "
	  "mikkoo)" },
	{ 'l', "limit", "N", "at most N records" },
	DEAD_FILTER_OPTS, /* for 'dead' */
	{ 'a', "amqp-queue", "QUEUE",
	  "RabbitMQ: print a queue's messages, "
	  "leave them\nin place (they come back marked redelivered)" },
	{ OPT_STOP_AT_LIMIT, "stop-at-limit", NULL,
	  "peek: stop at --limit "
	  "even where a quorum\nqueue then moves what was read behind "
	  "messages\nhanded back before (see ORDER)" },
	{ 'e', "exchange", "NAME", "tap: the exchange" },
	{ 'k', "binding", "KEY",
	  "tap: a binding key (repeatable; default "
	  "'#')" },
	{ OPT_SECONDS, "seconds", "S",
	  "tap: stop after S seconds (also "
	  "--limit, ^C)" },
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
		"  dead     rows of mikkoo.dead_letter (all queues without -q)\n"
		"  captures tables captured into the queue (all without -q)\n"
		"  slots    the replication slots of slot workers (mikkoo.slots):\n"
		"           active, confirmed_lsn, retained_bytes, lag (bytes)\n"
		"\n"
		"Or look at RabbitMQ (from -c, or $MIKKOO_RABBITMQ_URL): peek at a\n"
		"queue with --amqp-queue, or tap an exchange:\n"
		"  tap      print what is routed through an exchange from now on\n",
	.opts = opts,
	.after =
		"Exit status: 0 ok, 64 usage, 66 no such queue, consumer or exchange,\n"
		"69 PostgreSQL or RabbitMQ unreachable, 70 unexpected SQL error, 74\n"
		"output failed, 77 login or permission refused, 78 bad config.  See\n"
		"mikkoo-inspect(1).\n",
};

/* {"slot": "worker"} of the configuration's slot workers (free it). */
static char *
slot_map(const struct mk_config *cfg)
{
	json_t *m = json_object();
	char *s;
	size_t i;

	if (m == NULL)
		return NULL;
	for (i = 0; i < cfg->nworkers; i++) {
		const struct mk_worker_config *w = &cfg->workers[i];

		if (w->source == MK_SOURCE_LOGICAL && w->slot &&
		    json_object_set_new(m, w->slot, json_string(w->queue))) {
			json_decref(m);
			return NULL;
		}
	}
	s = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	return s;
}

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-inspect" };
	struct inspect_opts o = { 0 };
	enum inspect_what what = INSPECT_STATUS;
	PGconn *pg = NULL;
	struct mq_view_opts mo = { 0 };
	bool tap = false, view = false;
	const char *bad;
	char *ids = NULL, *slot_workers = NULL;
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
		case 'q':
			o.queue = optarg;
			break;
		case OPT_CONSUMER:
			o.consumer = optarg;
			break;
		default:
			if (dead_option(&o.dead, &ids, opt, optarg) < 0)
				CLI_FAIL(rc, &cli,
					 "--id needs a positive integer");
			break;
		case 'l':
			if (cli_long(optarg, 1, LONG_MAX, &o.limit) < 0)
				CLI_FAIL(rc, &cli,
					 "--limit needs a positive integer");
			break;
		case 'a':
			mo.queue = optarg;
			break;
		case OPT_STOP_AT_LIMIT:
			mo.stop_at_limit = true;
			break;
		case 'e':
			mo.exchange = optarg;
			break;
		case 'k':
			if (mq_add_key(&mo, optarg) < 0)
				CLI_FAIL(rc, &cli, "out of memory");
			break;
		case OPT_SECONDS:
			if (cli_seconds(optarg, 0.001, 1e7, &mo.seconds) < 0)
				CLI_FAIL(rc, &cli,
					 "--seconds needs a positive "
					 "number");
			break;
		}
	}
	if (optind < argc) {
		static const char *const names[] = {
			"status",   "pending", "retry", "dead",
			"captures", "slots",   "tap",
		};
		int i;

		for (i = 0; i < 7 && strcmp(argv[optind], names[i]); i++)
			;
		if (i == 7)
			CLI_FAIL(rc, &cli,
				 "the view is status, pending, "
				 "retry, dead, captures, slots or tap");
		tap = i == 6;
		view = !tap;
		what = tap ? INSPECT_STATUS : (enum inspect_what)i;
		if (++optind < argc)
			CLI_FAIL(rc, &cli, "unexpected argument");
	}
	o.dead.ids = ids;
	if (tap || mo.queue || mo.exchange || mo.nkeys || mo.seconds > 0 ||
	    mo.stop_at_limit) {
		mo.limit = o.limit;
		bad = mq_usage(&mo, tap, view,
			       o.queue || o.consumer || o.dead.since ||
				       o.dead.until || o.dead.routing_key ||
				       o.dead.reason_like || ids);
		if (bad)
			CLI_FAIL(rc, &cli, "%s", bad);
		rc = mq_inspect(&t, &mo, tap);
		goto out;
	}
	if (what != INSPECT_DEAD &&
	    (dead_filtered(&o.dead) &&
	     (o.dead.since || o.dead.until || o.dead.routing_key ||
	      o.dead.reason_like || ids)))
		CLI_FAIL(rc, &cli,
			 "--since, --until, --routing-key, "
			 "--reason-like and --id are for 'dead'");
	if (tool_setup(&t, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
		goto out;
	}
	if (what == INSPECT_SLOTS && t.w &&
	    (slot_workers = slot_map(&t.cfg)) == NULL) {
		rc = EX_OSERR;
		log_error("out of memory");
		goto out;
	}
	o.slot_workers = slot_workers;
	if (o.queue == NULL && what != INSPECT_SLOTS)
		o.queue = tool_queue(&t);
	if (o.queue == NULL && what != INSPECT_DEAD &&
	    what != INSPECT_CAPTURES && what != INSPECT_SLOTS)
		CLI_FAIL(rc, &cli, "which queue? give -q QUEUE");
	o.dead.queue = o.queue;
	o.dead.consumer = o.consumer;
	if (tool_pg(&t, &pg, &e) < 0 ||
	    inspect_run(pg, what, &o, stdout, &count, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
	}
out:
	free(slot_workers);
	free(ids);
	free(mo.keys);
	return tool_end(&t, pg, rc);
}
