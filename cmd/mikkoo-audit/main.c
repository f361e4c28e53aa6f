/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-audit: report audited events RabbitMQ never delivered. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "jsonl.h"
#include "log.h"
#include "tool.h"

#define USAGE                                                         \
	"usage: mikkoo-audit [conn] -a AMQP_QUEUE [--grace SECONDS] " \
	"[-q PGQ_QUEUE]"

enum { OPT_NO_DRAIN = 256, OPT_IDLE, OPT_MAX };

static const struct cli_opt opts[] = {
	TOOL_CONN_OPTS,
	{ 'a', "amqp-queue", "Q",
	  "the confirming queue to drain (RabbitMQ: "
	  "from -c,\nor $MIKKOO_RABBITMQ_URL: one URL, or several, the "
	  "first\nthat answers)" },
	{ OPT_NO_DRAIN, "no-drain", NULL, "only report (no RabbitMQ needed)" },
	{ 'q', "queue", "QUEUE", "report rows of this PgQ queue only" },
	{ 'g', "grace", "SECONDS",
	  "how old a row must be to count (default "
	  "300)" },
	{ OPT_IDLE, "idle", "SECONDS",
	  "stop draining after this silence "
	  "(default 2)" },
	{ OPT_MAX, "max", "N", "drain at most N messages" },
	CLI_STD_OPTS,
	{ 0 },
};

static const struct cli cli = {
	.prog = "mikkoo-audit",
	.usage = USAGE,
	.about =
		"Drain a confirming queue (a RabbitMQ queue bound to the audited\n"
		"exchanges), delete the mikkoo.audit row of each message by its\n"
		"message_id, acknowledge the messages once that committed, then print\n"
		"the rows older than the grace period: events never delivered.\n"
		"For cron: the exit status is 1 when something is missing.\n"
		"  {\"message_id\":..,\"event_id\":..,\"queue\":..,\"exchange\":..,\n"
		"   \"routing_key\":..,\"published_at\":..,\"age_seconds\":..,\n"
		"   \"dead_letter_id\":..,\"dead_letter_reason\":..}\n",
	.opts = opts,
	.after =
		"Exit status: 0 nothing missing, 1 something is missing, 64 usage,\n"
		"66 no such RabbitMQ queue, 69 a server unreachable, 74 output\n"
		"failed, 77 login or permission refused, 78 bad config.  See\n"
		"mikkoo-audit(1).\n",
};

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-audit" };
	struct audit_opts o = { .grace = 300, .idle_ms = 2000 };
	struct audit_stats st;
	PGconn *pg = NULL;
	struct tool_mq mq = { 0 };
	struct cli_parser p;
	bool no_drain = false;
	struct mk_err e;
	double d;
	int opt, rc = 0;

	log_init("mikkoo-audit");
	cli_init(&p, &cli);
	while ((opt = cli_next(&p, argc, argv, &rc)) != CLI_END) {
		if (opt == CLI_EXIT)
			return rc;
		if (tool_option(&t, opt, optarg))
			continue;
		switch (opt) {
		case 'a':
			o.amqp_queue = optarg;
			break;
		case 'q':
			o.pgq_queue = optarg;
			break;
		case OPT_NO_DRAIN:
			no_drain = true;
			break;
		case 'g':
			if (cli_seconds(optarg, 0, 1e7, &o.grace) < 0)
				return cli_usage(&cli, "--grace needs seconds");
			break;
		case OPT_IDLE:
			if (cli_seconds(optarg, 0, 3600, &d) < 0)
				return cli_usage(&cli, "--idle needs seconds");
			o.idle_ms = (int)(d * 1000);
			break;
		case OPT_MAX:
			if (cli_long(optarg, 1, LONG_MAX, &o.max_messages) < 0)
				return cli_usage(&cli, "--max needs a positive "
						       "integer");
			break;
		}
	}
	if (optind < argc)
		return cli_usage(&cli, "unexpected argument");
	if (no_drain == (o.amqp_queue != NULL))
		return cli_usage(
			&cli, "%s",
			no_drain ? "--no-drain and -a "
				   "exclude each other"
				 : "give the confirming "
				   "queue with -a QUEUE (or --no-drain)");
	if (tool_setup(&t, &e) < 0 || tool_pg(&t, &pg, &e) < 0)
		goto fail;
	if (!no_drain && tool_mq_open(&t, "mikkoo-audit", &mq, &e) < 0)
		goto fail;
	if (audit_run(pg, &mq, &o, stdout, &st, &e) < 0)
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
	tool_mq_close(&mq);
	return tool_end(&t, pg, rc);
}
