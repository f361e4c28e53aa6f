/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-replay: put dead letters back into their PgQ queues. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jsonl.h"
#include "log.h"
#include "replay.h"
#include "resurrect.h"
#include "tool.h"

#define USAGE                                                             \
	"usage: mikkoo-replay [conn] [-n] (FILTERS | --all | --stdin)\n"  \
	"       mikkoo-replay [conn] [-n] --amqp-queue DLQ [--to-queue] " \
	"[AMQP FILTERS]"

enum {
	OPT_CONSUMER = 256,
	OPT_ALL,
	OPT_STDIN,
	OPT_BATCH,
	OPT_REASON_IS,
	OPT_LIMIT,
	OPT_TO_QUEUE,
	OPT_TIMEOUT,
	OPT_EMIT
};

static const struct cli_opt opts[] = {
	TOOL_CONN_OPTS,
	{ 'n', "dry-run", NULL, "show what would be replayed, change nothing" },
	{ 'q', "queue", "QUEUE", "dead letters of this PgQ queue" },
	{ OPT_CONSUMER, "consumer", "NAME", "dead letters of this consumer" },
	DEAD_FILTER_OPTS,
	{ OPT_ALL, "all", NULL, "every dead letter (no filter given)" },
	{ OPT_EMIT, "emit", "STREAM",
	  "put them back through mikkoo.emit() into\n"
	  "STREAM (a slot worker's dead letters: table\n"
	  "changes too) instead of PgQ" },
	{ OPT_STDIN, "stdin", NULL,
	  "the dead letters named by JSON lines on\n"
	  "stdin (their \"id\"), e.g. from\n"
	  "mikkoo-inspect dead | jq -c 'select(...)'" },
	{ OPT_BATCH, "batch", "N",
	  "dead letters per transaction (default "
	  "500)" },
	{ 'a', "amqp-queue", "DLQ",
	  "resurrect this RabbitMQ dead-letter "
	  "queue\n(--routing-key: only those first routed so)" },
	{ OPT_TO_QUEUE, "to-queue", NULL,
	  "-a: to the queue each died in, "
	  "through the\ndefault exchange (no other queue gets it)" },
	{ OPT_REASON_IS, "reason", "WHY",
	  "-a: only those that first died "
	  "so: rejected,\nexpired, maxlen or delivery_limit" },
	{ OPT_LIMIT, "limit", "N", "-a: at most N messages" },
	{ OPT_TIMEOUT, "timeout", "S",
	  "-a: wait S seconds for a confirm "
	  "(default 30)" },
	CLI_STD_OPTS,
	{ 0 },
};

static const struct cli cli = {
	.prog = "mikkoo-replay",
	.usage = USAGE,
	.about =
		"Re-insert dead letters (rows of mikkoo.dead_letter) into their PgQ\n"
		"queues with their original type, data and extras, deleting each\n"
		"dead letter in the same transaction.  Dry-run first: -n shows what\n"
		"would be replayed and changes nothing.  One line per dead letter:\n"
		"  {\"id\":7,\"queue\":\"orders\",\"old_ev_id\":812,"
		"\"ev_id\":9051}\n"
		"\n"
		"With -a, resurrect RabbitMQ dead letters instead (RabbitMQ from -c,\n"
		"or $MIKKOO_RABBITMQ_URL): re-publish each to the exchange and\n"
		"routing keys of its first death, mandatory with confirms, and\n"
		"acknowledge it in DLQ only once confirmed; one line per message.\n",
	.opts = opts,
	.after =
		"Exit status: 0 ok, 64 usage, 65 a bad input line, an id that is not\n"
		"a dead letter, or a message that stayed in DLQ, 66 no such queue,\n"
		"69 PostgreSQL or RabbitMQ unreachable (or no confirm in time), 70\n"
		"unexpected SQL error, 74 output failed, 77 login or permission\n"
		"refused, 78 bad config.  See mikkoo-replay(1).\n",
};

static void
missing(long long id, void *arg)
{
	(void)arg;
	log_error("dead letter %lld not found (replayed already?)", id);
}

/* --stdin: ids from JSON lines, a chunk per transaction. */
static int
from_stdin(PGconn *pg, const char *stream, bool dry, long batch,
	   struct replay_stats *st, int *bad, struct mk_err *e)
{
	struct jsonl_reader rd;
	long long *ids = calloc((size_t)batch, sizeof(*ids));
	size_t n = 0;
	json_t *rec, *id;
	int r, rc = 0;

	if (ids == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	jsonl_reader_init(&rd, stdin, "<stdin>", 0);
	while ((r = jsonl_read(&rd, &rec, e)) != 0) {
		if (r < 0) {
			if (e->code == EX_IOERR || e->code == EX_OSERR) {
				rc = -1;
				break;
			}
			log_error("%s", e->msg);
			(*bad)++;
			continue;
		}
		id = json_object_get(rec, "id");
		if (json_is_integer(id) && json_integer_value(id) > 0) {
			ids[n++] = json_integer_value(id);
		} else {
			log_error(
				"<stdin>:%ld:1: a record needs \"id\", a dead "
				"letter's id (as mikkoo-inspect dead prints "
				"it)",
				rd.line);
			(*bad)++;
		}
		json_decref(rec);
		if ((long)n == batch) {
			rc = replay_ids(pg, ids, n, stream, dry, stdout, st,
					missing, NULL, e);
			n = 0;
			if (rc < 0)
				break;
		}
	}
	if (rc == 0 && n > 0)
		rc = replay_ids(pg, ids, n, stream, dry, stdout, st, missing,
				NULL, e);
	jsonl_reader_release(&rd);
	free(ids);
	return rc;
}

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-replay" };
	struct dead_filter f = { 0 };
	struct replay_stats st = { 0 };
	PGconn *pg = NULL;
	struct resurrect_opts ro = { .timeout = 30 };
	bool dry = false, all = false, use_stdin = false, amqp = false;
	bool batch_given = false;
	long batch = 500;
	char *ids = NULL;
	const char *stream = NULL;
	struct mk_err e;
	struct cli_parser p;
	int opt, rc = 0, bad = 0;

	log_init("mikkoo-replay");
	cli_init(&p, &cli);
	while ((opt = cli_next(&p, argc, argv, &rc)) != CLI_END) {
		if (opt == CLI_EXIT)
			goto out;
		if (tool_option(&t, opt, optarg))
			continue;
		switch (opt) {
		case 'n':
			dry = true;
			break;
		case 'q':
			f.queue = optarg;
			break;
		case OPT_CONSUMER:
			f.consumer = optarg;
			break;

		case OPT_ALL:
			all = true;
			break;
		case OPT_STDIN:
			use_stdin = true;
			break;
		case OPT_EMIT:
			stream = optarg;
			break;
		default:
			if (dead_option(&f, &ids, opt, optarg) < 0)
				CLI_FAIL(rc, &cli,
					 "--id needs a positive integer");
			break;
		case OPT_BATCH:
			if (cli_long(optarg, 1, 100000, &batch) < 0)
				CLI_FAIL(rc, &cli,
					 "--batch must be 1 to 100000");
			batch_given = true;
			break;
		case 'a':
			ro.queue = optarg;
			break;
		case OPT_REASON_IS:
			if (strcmp(optarg, "rejected") &&
			    strcmp(optarg, "expired") &&
			    strcmp(optarg, "maxlen") &&
			    strcmp(optarg, "delivery_limit"))
				CLI_FAIL(rc, &cli,
					 "--reason is rejected, "
					 "expired, maxlen or delivery_limit");
			ro.reason = optarg;
			amqp = true;
			break;
		case OPT_LIMIT:
			if (cli_long(optarg, 1, LONG_MAX, &ro.limit) < 0)
				CLI_FAIL(rc, &cli,
					 "--limit needs a positive "
					 "integer");
			amqp = true;
			break;
		case OPT_TO_QUEUE:
			ro.to_queue = amqp = true;
			break;
		case OPT_TIMEOUT:
			if (cli_seconds(optarg, 0.001, 3600, &ro.timeout) < 0)
				CLI_FAIL(rc, &cli,
					 "--timeout needs seconds "
					 "(up to 3600)");
			amqp = true;
			break;
		}
	}
	if (amqp || ro.queue) {
		if (ro.queue == NULL)
			CLI_FAIL(rc, &cli,
				 "--reason, --limit, --to-queue and "
				 "--timeout are for --amqp-queue");
		if (use_stdin || all || ids || batch_given || f.queue ||
		    stream || f.consumer || f.since || f.until ||
		    f.reason_like || optind < argc)
			CLI_FAIL(rc, &cli,
				 "--amqp-queue resurrects RabbitMQ "
				 "dead letters: no PgQ filters, --all, --stdin "
				 "or --batch with it");
		ro.routing_key = f.routing_key;
		ro.dry_run = dry;
		rc = resurrect_main(&t, &ro);
		goto out;
	}
	f.ids = ids;
	if (optind < argc && strcmp(argv[optind], "-") == 0) {
		use_stdin = true;
		optind++;
	}
	if (optind < argc)
		CLI_FAIL(rc, &cli, "unexpected argument");
	if (use_stdin && (dead_filtered(&f) || all))
		CLI_FAIL(rc, &cli,
			 "--stdin takes the dead letters from stdin: "
			 "no filters or --all with it");
	if (!use_stdin && !dead_filtered(&f) && !all)
		CLI_FAIL(rc, &cli,
			 "refusing to replay every dead letter: give "
			 "a filter, --stdin, or --all");
	if (tool_setup(&t, &e) < 0 || tool_pg(&t, &pg, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
		goto out;
	}
	if (use_stdin) {
		if (from_stdin(pg, stream, dry, batch, &st, &bad, &e) < 0) {
			log_error("%s", e.msg);
			rc = e.code;
		}
	} else {
		if (replay_filter(pg, &f, (int)batch, stream, dry, stdout, &st,
				  &e) < 0) {
			log_error("%s", e.msg);
			rc = e.code;
		}
		if (ids && rc == 0) {
			/* Ids asked for by --id and not replayed. */
			long asked = dead_count_ids(ids);

			if (asked > st.replayed) {
				st.missing = asked - st.replayed;
				log_error(
					"%ld of the --id dead letters were not "
					"found (replayed already?)",
					st.missing);
			}
		}
	}
	if (dry)
		log_info("would replay %ld dead letter%s (dry run: nothing "
			 "changed)",
			 st.replayed, st.replayed == 1 ? "" : "s");
	else
		log_info("replayed %ld dead letter%s %s%s", st.replayed,
			 st.replayed == 1 ? "" : "s",
			 stream ? "through mikkoo.emit() into stream "
				: "into their PgQ queues",
			 stream ? stream : "");
	if (rc == 0 && (bad || st.missing))
		rc = EX_DATAERR;
out:
	free(ids);
	return tool_end(&t, pg, rc);
}
