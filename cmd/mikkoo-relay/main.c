/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-relay: relay PgQ events to RabbitMQ with publisher confirms. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "relay.h"
#include "sdnotify.h"
#include "sig.h"
#include "supervise.h"

#define USAGE                                                           \
	"usage: mikkoo-relay [-fnvV] [--quiet] -c FILE [-w|-q QUEUE]\n" \
	"                    [--ready-fd N] [--daemon]"

enum {
	OPT_READY_FD = 256,
	OPT_NOTIFY_FD,
	OPT_LOG_TIME,
	OPT_DAEMON,
	OPT_QUIET,
	OPT_CHECK
};

static const struct cli_opt opts[] = {
	{ 'c', "config", "FILE",
	  "the YAML configuration (see mikkoo.yaml(5))" },
	{ 'n', "dry-run", NULL, "check the configuration, start nothing" },
	{ OPT_CHECK, "check", NULL, "the same as --dry-run" },
	{ 'w', "worker", "QUEUE",
	  "run only this queue's worker, in this "
	  "process" },
	{ 'q', "queue", "QUEUE", "the same as --worker" },
	{ OPT_READY_FD, "ready-fd", "N",
	  "write a newline to fd N once ready "
	  "(s6)" },
	{ OPT_NOTIFY_FD, "notify-fd", "N", "the same as --ready-fd" },
	{ 'f', "foreground", NULL, "accepted for compatibility (the default)" },
	{ OPT_DAEMON, "daemon", NULL,
	  "detach, write Daemon/pidfile, run as "
	  "Daemon/user" },
	{ OPT_LOG_TIME, "log-time", NULL,
	  "start log lines with an RFC 3339 "
	  "UTC time" },
	{ 'v', "verbose", NULL, "more log lines (debug)" },
	{ OPT_QUIET, "quiet", NULL,
	  "warnings and errors only (-q alone: the "
	  "old spelling)" },
	CLI_STD_OPTS,
	{ 0 },
};

static const struct cli cli = {
	.prog = "mikkoo-relay",
	.usage = USAGE,
	.about =
		"Relay events from PgQ queues, and table changes and mikkoo.emit()\n"
		"events from replication slots (source: logical), to RabbitMQ: one\n"
		"worker process per queue or slot in the configuration, in the\n"
		"foreground, logging to stderr.  An event leaves its queue (or the\n"
		"slot moves past it) only once RabbitMQ confirmed it or it was\n"
		"stored in mikkoo.dead_letter.\n",
	.opts = opts,
	.after =
		"Signals: TERM/INT finish the open batch (or give it up after 5 s;\n"
		"PgQ hands it out again) and exit 0; a second TERM stops at once;\n"
		"HUP reloads the configuration.  Under systemd (Type=notify, with\n"
		"NOTIFY_SOCKET) it says READY=1, RELOADING=1, STOPPING=1 and\n"
		"STATUS= itself.\n"
		"Exit status: 0 stopped on request, 64 usage, 69 no server was\n"
		"available at start, 77 login or permission refused, 78 bad\n"
		"configuration.  See mikkoo-relay(1).\n",
};

/*
 * -q alone was --quiet before -q meant a queue in every command, and run
 * scripts may still say so: as the relay takes no operands, a -q followed
 * by an option or by nothing can only be that.  True if one was seen
 * (and made --quiet).
 */
static bool
old_spellings(int argc, char **argv)
{
	bool seen = false;
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-q") == 0 &&
		    (i + 1 == argc || argv[i + 1][0] == '-')) {
			argv[i] = (char *)"--quiet";
			seen = true;
		}
	return seen;
}

int
main(int argc, char **argv)
{
	const char *path = NULL, *worker = NULL;
	int level = MK_LOG_INFO, ready_fd = -1, opt, rc = 0;
	bool check = false, detach = false, old_quiet;
	struct mk_config cfg;
	struct mk_err e;
	struct cli_parser p;

	log_init("mikkoo-relay");
	old_quiet = old_spellings(argc, argv);
	cli_init(&p, &cli);
	while ((opt = cli_next(&p, argc, argv, &rc)) != CLI_END) {
		switch (opt) {
		case CLI_EXIT:
			return rc;
		case 'c':
			path = optarg;
			break;
		case 'n':
		case OPT_CHECK:
			check = true;
			break;
		case 'w':
		case 'q':
			worker = optarg;
			break;
		case OPT_READY_FD:
		case OPT_NOTIFY_FD:
			if (cli_fd(optarg, &ready_fd) < 0)
				return cli_usage(&cli,
						 "--ready-fd needs an "
						 "open file descriptor, not "
						 "'%s'",
						 optarg);
			break;
		case 'f':
			break;
		case OPT_DAEMON:
			detach = true;
			break;
		case OPT_LOG_TIME:
			log_set_time(true);
			break;
		case 'v':
			level = MK_LOG_DEBUG;
			break;
		case OPT_QUIET:
			level = MK_LOG_WARNING;
			break;
		}
	}
	if (old_quiet)
		log_warn("-q alone is the old spelling of --quiet: in every "
			 "mikkoo command -q names a queue (see mikkoo(7))");
	if (optind < argc)
		return cli_usage(&cli, "unexpected argument");
	if (path == NULL)
		return cli_usage(&cli, "no configuration file: use -c FILE");
	log_set_level((enum mk_log_level)level);

	if (config_load(path, &cfg, &e) < 0) {
		log_error("%s", e.msg);
		/* For a daemon a missing file is a configuration error: s6's
		 * finish scripts stop retrying on 78. */
		return EX_CONFIG;
	}
	if (worker && config_worker(&cfg, worker) == NULL) {
		log_error("no worker '%s' in '%s'", worker, path);
		config_release(&cfg);
		return EX_CONFIG;
	}
	if (check) {
		relay_log_notices(&cfg, NULL);
		config_release(&cfg);
		puts("configuration OK");
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}

	/* Under systemd (Type=notify) the relay says READY=1 itself; the
	 * variable goes now, so no worker or exec'd program inherits it. */
	if (sdnotify_open(&e) < 0)
		log_warn("%s", e.msg);

	/* No core file or same-user ptrace: memory holds passwords. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	if (detach &&
	    daemon_detach(cfg.daemon_pidfile, cfg.daemon_user, &e) < 0) {
		log_error("%s", e.msg);
		config_release(&cfg);
		return e.code;
	}
	if (worker) {
		struct relay_opts ro = {
			.config_path = path,
			.cfg = &cfg,
			.queue = worker,
			.ready_fd = ready_fd,
			.reload = true,
			.drain_seconds = 5,
			.report_fd = -1,
		};

		relay_log_notices(&cfg, worker);
		if (cfg.metrics.listen)
			log_warn("metrics: listen is served by the supervisor: "
				 "not with --worker");
		if (sig_install(false) < 0) {
			log_error("cannot set up signals: %s", strerror(errno));
			config_release(&cfg);
			return EX_OSERR;
		}
		rc = relay_run(&ro, &e);
		config_release(&cfg);
		sig_close();
	} else {
		struct supervise_opts so = {
			.config_path = path,
			.cfg = &cfg,
			.ready_fd = ready_fd,
			.drain_seconds = 5,
		};

		relay_log_notices(&cfg, NULL);
		rc = supervise_run(&so, &e);
		sig_close();
	}
	daemon_cleanup();
	sdnotify_close();
	if (rc < 0) {
		if (e.msg[0])
			log_error("%s", e.msg);
		return e.code;
	}
	return 0;
}
