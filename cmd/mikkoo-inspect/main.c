/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-inspect: a queue's status, pending events, retries, dead letters. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "captures.h"
#include "inspect.h"
#include "jsonl.h"
#include "log.h"
#include "tool.h"

#define USAGE \
	"usage: mikkoo-inspect [conn] -q QUEUE [--consumer NAME] " \
	"[status|pending|retry|dead|captures]\n" \
	"                      [--limit N] [dead filters]"

static const char help[] =
	USAGE "\n"
	"\n"
	"Show a PgQ queue as JSON lines, without consuming or changing\n"
	"anything (a read-only transaction, rolled back):\n"
	"  status   one record per consumer: lag, pending events, open batch,\n"
	"           retry and dead-letter counts (the default)\n"
	"  pending  the events the consumer has not finished, in ev_id order\n"
	"  retry    the consumer's events waiting in PgQ's retry queue\n"
	"  dead     rows of mikkoo.dead_letter (all queues without -q)\n"
	"  captures tables captured into the queue (all without -q)\n"
	"\n"
	TOOL_CONN_HELP
	"  -q, --queue QUEUE      the PgQ queue (default: the worker's)\n"
	"      --consumer NAME    the consumer (status: all; else mikkoo)\n"
	"  -l, --limit N          at most N records\n"
	"      --since TIME       dead: failed at or after TIME\n"
	"      --until TIME       dead: failed before TIME\n"
	"      --routing-key KEY  dead: this ev_type only\n"
	"      --reason-like PAT  dead: reason LIKE PAT (e.g. '%NO_ROUTE%')\n"
	"      --id N             dead: this dead letter (repeatable)\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"Exit status: 0 ok, 64 usage, 66 no such queue or consumer, 69\n"
	"PostgreSQL unreachable, 74 output failed, 77 login refused, 78 bad\n"
	"config.  See mikkoo-inspect(1).\n";

enum { OPT_CONSUMER = 256, OPT_SINCE, OPT_UNTIL, OPT_RK, OPT_REASON,
       OPT_ID };

static const struct option longopts[] = {
	TOOL_CONN_OPTS,
	{ "queue", required_argument, NULL, 'q' },
	{ "consumer", required_argument, NULL, OPT_CONSUMER },
	{ "limit", required_argument, NULL, 'l' },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "routing-key", required_argument, NULL, OPT_RK },
	{ "reason-like", required_argument, NULL, OPT_REASON },
	{ "id", required_argument, NULL, OPT_ID },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Usage errors jump to one place, which frees what was built so far. */
#define USAGE_ERROR(...) \
	do { \
		snprintf(uerr, sizeof(uerr), __VA_ARGS__); \
		goto usage; \
	} while (0)

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-inspect" };
	struct inspect_opts o = { 0 };
	enum inspect_what what = INSPECT_STATUS;
	struct pgq_conn pg = { 0 };
	char *ids = NULL, *end;
	struct mk_err e;
	char uerr[256];
	long count;
	int opt, rc = 0;
	bool captures = false;

	log_init("mikkoo-inspect");
	opterr = 0;       /* our own messages, one line each */
	while ((opt = getopt_long(argc, argv, ":d:c:w:q:l:hV", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'd': t.dbname = optarg; break;
		case 'c': t.config = optarg; break;
		case 'w': t.worker = optarg; break;
		case 'q': o.queue = optarg; break;
		case OPT_CONSUMER: o.consumer = optarg; break;
		case OPT_SINCE: o.dead.since = optarg; break;
		case OPT_UNTIL: o.dead.until = optarg; break;
		case OPT_RK: o.dead.routing_key = optarg; break;
		case OPT_REASON: o.dead.reason_like = optarg; break;
		case OPT_ID:
			if (dead_add_id(&ids, optarg) < 0)
				USAGE_ERROR("--id needs a positive "
						   "integer");
			break;
		case 'l':
			errno = 0;
			o.limit = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || o.limit < 1)
				USAGE_ERROR("--limit needs a positive "
						   "integer");
			break;
		case 'h':
			fputs(help, stdout);
			rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
			goto out;
		case 'V':
			printf("mikkoo-inspect %s\n", MIKKOO_VERSION);
			rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
			goto out;
		case ':':
			USAGE_ERROR("option '%s' needs a value",
				argv[optind - 1]);
		default:
			USAGE_ERROR("unknown option '%s'",
				argv[optind - 1]);
		}
	}
	if (optind < argc) {
		static const char *const names[] = {
			"status", "pending", "retry", "dead",
		};
		int i;

		for (i = 0; i < 4 && strcmp(argv[optind], names[i]); i++)
			;
		captures = strcmp(argv[optind], "captures") == 0;
		if (i == 4 && !captures)
			USAGE_ERROR("the view is status, pending, "
					   "retry, dead or captures");
		if (!captures)
			what = (enum inspect_what)i;
		if (++optind < argc)
			USAGE_ERROR("unexpected argument");
	}
	o.dead.ids = ids;
	if ((what != INSPECT_DEAD || captures) && (dead_filtered(&o.dead) &&
	    (o.dead.since || o.dead.until || o.dead.routing_key ||
	    o.dead.reason_like || ids)))
		USAGE_ERROR("--since, --until, --routing-key, "
				   "--reason-like and --id are for 'dead'");
	if (tool_setup(&t, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
		goto out;
	}
	if (o.queue == NULL)
		o.queue = tool_queue(&t);
	if (o.queue == NULL && what != INSPECT_DEAD && !captures)
		USAGE_ERROR("which queue? give -q QUEUE");
	o.dead.queue = o.queue;
	o.dead.consumer = o.consumer;
	if (tool_pg(&t, &pg, &e) < 0 ||
	    (captures ? captures_run(&pg, &o, stdout, &count, &e)
	     : inspect_run(&pg, what, &o, stdout, &count, &e)) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
	}
	goto out;
usage:
	rc = log_usage_error(USAGE, "%s", uerr);
out:
	pgq_disconnect(&pg);
	tool_release(&t);
	free(ids);
	if (jsonl_finish(stdout, &e) < 0 && rc == 0) {
		log_error("%s", e.msg);
		rc = e.code;
	}
	return rc;
}
