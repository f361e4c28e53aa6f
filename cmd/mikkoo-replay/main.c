/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-replay: put dead letters back into their PgQ queues. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "log.h"
#include "replay.h"
#include "resurrect.h"
#include "tool.h"

#define USAGE \
	"usage: mikkoo-replay [conn] [-n] (FILTERS | --all | --stdin)\n" \
	"       mikkoo-replay [conn] [-n] --amqp-queue DLQ [--to-queue] " \
	"[AMQP FILTERS]"

static const char help[] =
	USAGE "\n"
	"\n"
	"Re-insert dead letters (rows of mikkoo.dead_letter) into their PgQ\n"
	"queues with their original type, data and extras, deleting each\n"
	"dead letter in the same transaction.  Dry-run first: -n shows what\n"
	"would be replayed and changes nothing.  One line per dead letter:\n"
	"  {\"id\":7,\"queue\":\"orders\",\"old_ev_id\":812,\"ev_id\":9051}\n"
	"\n"
	TOOL_CONN_HELP
	"  -n, --dry-run          show what would be replayed, change nothing\n"
	"  -q, --queue QUEUE      dead letters of this PgQ queue\n"
	"      --consumer NAME    dead letters of this consumer\n"
	"      --id N             this dead letter (repeatable)\n"
	"      --since TIME       failed at or after TIME\n"
	"      --until TIME       failed before TIME\n"
	"      --routing-key KEY  this ev_type only\n"
	"      --reason-like PAT  reason LIKE PAT, e.g. '%NO_ROUTE%'\n"
	"      --all              every dead letter (no filter given)\n"
	"      --stdin            the dead letters named by JSON lines on\n"
	"                         stdin (their \"id\"), e.g. from\n"
	"                         mikkoo-inspect dead | jq -c 'select(...)'\n"
	"      --batch N          dead letters per transaction (default 500)\n"
	"\n"
	"RabbitMQ dead letters (from -c, or $MIKKOO_RABBITMQ_URL): re-publish\n"
	"each to the exchange and routing keys of its first death, with\n"
	"confirms, and acknowledge it in DLQ only once confirmed:\n"
	"  -a, --amqp-queue DLQ   the dead-letter queue\n"
	"      --to-queue         to the queue it died in instead, through the\n"
	"                         default exchange (no other queue gets it)\n"
	"      --routing-key KEY  only those first routed with KEY\n"
	"      --reason WHY       only those that first died so: rejected,\n"
	"                         expired, maxlen or delivery_limit\n"
	"      --limit N          at most N messages\n"
	"      --timeout S        wait S seconds for a confirm (default 30)\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"Exit status: 0 ok, 64 usage, 65 a bad input line, an id that is not\n"
	"a dead letter, or a message that stayed in DLQ, 66 no such queue, 69\n"
	"PostgreSQL or RabbitMQ unreachable, 74 output failed, 77\n"
	"login refused, 78 bad config.  See mikkoo-replay(1).\n";

enum { OPT_CONSUMER = 256, OPT_SINCE, OPT_UNTIL, OPT_RK, OPT_REASON,
       OPT_ID, OPT_ALL, OPT_STDIN, OPT_BATCH, OPT_REASON_IS, OPT_LIMIT,
       OPT_TO_QUEUE, OPT_TIMEOUT };

static const struct option longopts[] = {
	TOOL_CONN_OPTS,
	{ "dry-run", no_argument, NULL, 'n' },
	{ "queue", required_argument, NULL, 'q' },
	{ "consumer", required_argument, NULL, OPT_CONSUMER },
	{ "id", required_argument, NULL, OPT_ID },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "routing-key", required_argument, NULL, OPT_RK },
	{ "reason-like", required_argument, NULL, OPT_REASON },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "stdin", no_argument, NULL, OPT_STDIN },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "amqp-queue", required_argument, NULL, 'a' },
	{ "reason", required_argument, NULL, OPT_REASON_IS },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "to-queue", no_argument, NULL, OPT_TO_QUEUE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void
missing(long long id, void *arg)
{
	(void)arg;
	log_error("dead letter %lld not found (replayed already?)", id);
}

static long
positive(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return (errno || *end || end == s || v <= 0) ? -1 : v;
}

/* --stdin: ids from JSON lines, a chunk per transaction. */
static int
from_stdin(struct pgq_conn *pg, bool dry, long batch,
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
			log_error("<stdin>:%ld:1: a record needs \"id\", a dead "
				  "letter's id (as mikkoo-inspect dead prints "
				  "it)", rd.line);
			(*bad)++;
		}
		json_decref(rec);
		if ((long)n == batch) {
			rc = replay_ids(pg, ids, n, dry, stdout, st, missing,
					NULL, e);
			n = 0;
			if (rc < 0)
				break;
		}
	}
	if (rc == 0 && n > 0)
		rc = replay_ids(pg, ids, n, dry, stdout, st, missing, NULL, e);
	jsonl_reader_release(&rd);
	free(ids);
	return rc;
}

/* Usage errors jump to one place, which frees what was built so far. */
#define USAGE_ERROR(...) \
	do { \
		snprintf(uerr, sizeof(uerr), __VA_ARGS__); \
		goto usage; \
	} while (0)

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-replay" };
	struct dead_filter f = { 0 };
	struct replay_stats st = { 0 };
	struct pgq_conn pg = { 0 };
	struct resurrect_opts ro = { .timeout = 30 };
	bool dry = false, all = false, use_stdin = false, amqp = false;
	bool batch_given = false;
	long batch = 500;
	char *ids = NULL, *end;
	struct mk_err e;
	char uerr[256];
	int opt, rc = 0, bad = 0;

	log_init("mikkoo-replay");
	opterr = 0;       /* our own messages, one line each */
	while ((opt = getopt_long(argc, argv, ":d:c:w:nq:a:hV", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'd': t.dbname = optarg; break;
		case 'c': t.config = optarg; break;
		case 'w': t.worker = optarg; break;
		case 'n': dry = true; break;
		case 'q': f.queue = optarg; break;
		case OPT_CONSUMER: f.consumer = optarg; break;
		case OPT_SINCE: f.since = optarg; break;
		case OPT_UNTIL: f.until = optarg; break;
		case OPT_RK: f.routing_key = optarg; break;
		case OPT_REASON: f.reason_like = optarg; break;
		case OPT_ALL: all = true; break;
		case OPT_STDIN: use_stdin = true; break;
		case OPT_ID:
			if (dead_add_id(&ids, optarg) < 0)
				USAGE_ERROR("--id needs a positive "
						   "integer");
			break;
		case OPT_BATCH:
			if ((batch = positive(optarg)) < 0 ||
			    batch > 100000)
				USAGE_ERROR("--batch must be 1 to "
						   "100000");
			batch_given = true;
			break;
		case 'a': ro.queue = optarg; break;
		case OPT_REASON_IS:
			if (strcmp(optarg, "rejected") && strcmp(optarg,
			    "expired") && strcmp(optarg, "maxlen") &&
			    strcmp(optarg, "delivery_limit"))
				USAGE_ERROR("--reason is rejected, expired, "
					    "maxlen or delivery_limit");
			ro.reason = optarg;
			amqp = true;
			break;
		case OPT_LIMIT:
			if ((ro.limit = positive(optarg)) < 0)
				USAGE_ERROR("--limit needs a positive integer");
			amqp = true;
			break;
		case OPT_TO_QUEUE: ro.to_queue = amqp = true; break;
		case OPT_TIMEOUT:
			errno = 0;
			ro.timeout = strtod(optarg, &end);
			if (errno || *end || end == optarg ||
			    !(ro.timeout > 0) || ro.timeout > 3600)
				USAGE_ERROR("--timeout needs seconds, up to "
					    "3600");
			amqp = true;
			break;
		case 'h':
			fputs(help, stdout);
			rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
			goto out;
		case 'V':
			printf("mikkoo-replay %s\n", MIKKOO_VERSION);
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
	if (amqp || ro.queue) {
		if (ro.queue == NULL)
			USAGE_ERROR("--reason, --limit, --to-queue and "
				    "--timeout are for --amqp-queue");
		if (use_stdin || all || ids || batch_given || f.queue || f.consumer
		    || f.since || f.until || f.reason_like || optind < argc)
			USAGE_ERROR("--amqp-queue resurrects RabbitMQ dead "
				    "letters: no PgQ filters, --all, --stdin "
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
		USAGE_ERROR("unexpected argument");
	if (use_stdin && (dead_filtered(&f) || all))
		USAGE_ERROR("--stdin takes the dead letters from stdin: "
				   "no filters or --all with it");
	if (!use_stdin && !dead_filtered(&f) && !all)
		USAGE_ERROR("refusing to replay every dead letter: give "
				   "a filter, --stdin, or --all");
	if (tool_setup(&t, &e) < 0 || tool_pg(&t, &pg, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
		goto out;
	}
	if (use_stdin) {
		if (from_stdin(&pg, dry, batch, &st, &bad, &e) < 0) {
			log_error("%s", e.msg);
			rc = e.code;
		}
	} else {
		if (replay_filter(&pg, &f, (int)batch, dry, stdout, &st,
				  &e) < 0) {
			log_error("%s", e.msg);
			rc = e.code;
		}
		if (ids && rc == 0) {
			/* Ids asked for by --id and not replayed. */
			long asked = dead_count_ids(ids);

			if (asked > st.replayed) {
				st.missing = asked - st.replayed;
				log_error("%ld of the --id dead letters were not "
					  "found (replayed already?)",
					  st.missing);
			}
		}
	}
	if (dry)
		log_info("would replay %ld dead letter%s (dry run: nothing "
			 "changed)", st.replayed, st.replayed == 1 ? "" : "s");
	else
		log_info("replayed %ld dead letter%s into their PgQ queues",
			 st.replayed, st.replayed == 1 ? "" : "s");
	if (rc == 0 && (bad || st.missing))
		rc = EX_DATAERR;
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
