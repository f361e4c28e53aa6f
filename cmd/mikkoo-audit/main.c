/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-audit: report audited events RabbitMQ never delivered. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "jsonl.h"
#include "log.h"
#include "nodes.h"
#include "tool.h"

#define USAGE \
	"usage: mikkoo-audit [conn] -a AMQP_QUEUE [--grace SECONDS] " \
	"[-q PGQ_QUEUE]"

static const char help[] =
	USAGE "\n"
	"\n"
	"Drain a confirming queue (a RabbitMQ queue bound to the audited\n"
	"exchanges), delete the mikkoo.audit row of each message by its\n"
	"message_id, acknowledge the messages once that committed, then print\n"
	"the rows older than the grace period: events never delivered.\n"
	"For cron: the exit status is 1 when something is missing.\n"
	"  {\"message_id\":..,\"event_id\":..,\"queue\":..,\"exchange\":..,\n"
	"   \"routing_key\":..,\"published_at\":..,\"age_seconds\":..,\n"
	"   \"dead_letter_id\":..,\"dead_letter_reason\":..}\n"
	"\n"
	TOOL_CONN_HELP
	"                       RabbitMQ: from -c, or $MIKKOO_RABBITMQ_URL\n"
	"                       (one URL, or several: the first that answers)\n"
	"  -a, --amqp-queue Q   the confirming queue to drain\n"
	"      --no-drain       only report (no RabbitMQ needed)\n"
	"  -q, --queue QUEUE    report rows of this PgQ queue only\n"
	"  -g, --grace SECONDS  how old a row must be to count (default 300)\n"
	"      --idle SECONDS   stop draining after this silence (default 2)\n"
	"      --max N          drain at most N messages\n"
	"  -h, --help           show this help and exit\n"
	"  -V, --version        show the version and exit\n"
	"\n"
	"Exit status: 0 nothing missing, 1 something is missing, 64 usage,\n"
	"66 no such RabbitMQ queue, 69 a server unreachable, 74 output\n"
	"failed, 77 login refused, 78 bad config.  See mikkoo-audit(1).\n";

enum { OPT_NO_DRAIN = 256, OPT_IDLE, OPT_MAX };

static const struct option longopts[] = {
	TOOL_CONN_OPTS,
	{ "amqp-queue", required_argument, NULL, 'a' },
	{ "no-drain", no_argument, NULL, OPT_NO_DRAIN },
	{ "queue", required_argument, NULL, 'q' },
	{ "grace", required_argument, NULL, 'g' },
	{ "idle", required_argument, NULL, OPT_IDLE },
	{ "max", required_argument, NULL, OPT_MAX },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int
seconds(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return (errno || *end || end == s || *out < 0 || *out > 1e7) ? -1 : 0;
}

static void
node_failed(void *arg, size_t i, size_t n, const struct mk_err *e)
{
	(void)arg;
	log_warn("RabbitMQ node %zu of %zu: %s: trying the next", i + 1, n,
		 e->msg);
}

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-audit" };
	struct audit_opts o = { .grace = 300, .idle_ms = 2000 };
	struct audit_stats st;
	struct pgq_conn pg = { 0 };
	struct broker *mq = NULL;
	struct mk_amqp_node *nodes = NULL;
	size_t nnodes = 0, used = 0;
	char *end;
	bool no_drain = false;
	struct mk_err e;
	double d;
	int opt, rc = 0;

	log_init("mikkoo-audit");
	opterr = 0;       /* our own messages, one line each */
	while ((opt = getopt_long(argc, argv, ":d:c:w:a:q:g:hV", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'd': t.dbname = optarg; break;
		case 'c': t.config = optarg; break;
		case 'w': t.worker = optarg; break;
		case 'a': o.amqp_queue = optarg; break;
		case 'q': o.pgq_queue = optarg; break;
		case OPT_NO_DRAIN: no_drain = true; break;
		case 'g':
			if (seconds(optarg, &o.grace) < 0)
				return log_usage_error(USAGE, "--grace needs seconds");
			break;
		case OPT_IDLE:
			if (seconds(optarg, &d) < 0 || d > 3600)
				return log_usage_error(USAGE, "--idle needs seconds");
			o.idle_ms = (int)(d * 1000);
			break;
		case OPT_MAX:
			errno = 0;
			o.max_messages = strtol(optarg, &end, 10);
			if (errno || *end || o.max_messages < 1)
				return log_usage_error(USAGE, "--max needs a positive "
						   "integer");
			break;
		case 'h':
			fputs(help, stdout);
			return fflush(stdout) == 0 ? 0 : EX_IOERR;
		case 'V':
			printf("mikkoo-audit %s\n", MIKKOO_VERSION);
			return fflush(stdout) == 0 ? 0 : EX_IOERR;
		case ':':
			return log_usage_error(USAGE, "option '%s' needs a value",
				argv[optind - 1]);
		default:
			return log_usage_error(USAGE, "unknown option '%s'",
				argv[optind - 1]);
		}
	}
	if (optind < argc)
		return log_usage_error(USAGE, "unexpected argument");
	if (no_drain == (o.amqp_queue != NULL))
		return log_usage_error(USAGE, no_drain ? "--no-drain and -a exclude each "
				   "other" : "give the confirming queue with "
				   "-a QUEUE (or --no-drain)");
	if (tool_setup(&t, &e) < 0 || tool_pg(&t, &pg, &e) < 0)
		goto fail;
	if (!no_drain) {
		if (tool_amqp_nodes(&t, &nodes, &nnodes, &e) < 0 ||
		    nodes_connect(nodes, nnodes, 0, "mikkoo-audit", &mq, &used,
				  node_failed, NULL, &e) < 0)
			goto fail;
		if (nnodes > 1)
			log_info("draining through RabbitMQ '%s' (node %zu of "
				 "%zu)", nodes[used].display, used + 1, nnodes);
	}
	if (audit_run(&pg, mq, &o, stdout, &st, &e) < 0)
		goto fail;
	if (!no_drain)
		log_info("%ld messages drained from '%s': %ld audit rows "
			 "confirmed, %ld messages not audited or seen before",
			 st.consumed, o.amqp_queue, st.confirmed, st.unaudited);
	if (st.missing)
		log_warn("%ld audited event%s not delivered after %.0f s",
			 st.missing, st.missing == 1 ? "" : "s", o.grace);
	rc = st.missing ? MK_EX_NO : 0;
	goto out;
fail:
	log_error("%s", e.msg);
	rc = e.code;
out:
	broker_free(mq);
	tool_nodes_free(nodes, nnodes);
	pgq_disconnect(&pg);
	tool_release(&t);
	if (jsonl_finish(stdout, &e) < 0 && (rc == 0 || rc == MK_EX_NO)) {
		log_error("%s", e.msg);
		rc = e.code;
	}
	return rc;
}
