/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-relay: relay PgQ events to RabbitMQ with publisher confirms. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "relay.h"
#include "sig.h"
#include "supervise.h"

#define USAGE \
	"usage: mikkoo-relay [-fnqvV] -c FILE [-w QUEUE] [--ready-fd N] [--daemon]"

static const char help[] =
	USAGE "\n"
	"\n"
	"Relay events from PgQ queues to RabbitMQ: one worker process per\n"
	"queue in the configuration, in the foreground, logging to stderr.\n"
	"An event leaves PgQ only once RabbitMQ confirmed it or it was\n"
	"stored in mikkoo.dead_letter.\n"
	"\n"
	"  -c, --config FILE    the YAML configuration (see mikkoo.yaml(5))\n"
	"  -n, --check          check the configuration and exit\n"
	"  -w, --worker QUEUE   run only this queue's worker, in this process\n"
	"      --ready-fd N     write a newline to fd N once ready (s6)\n"
	"      --notify-fd N    the same as --ready-fd\n"
	"  -f, --foreground     accepted for compatibility (the default)\n"
	"      --daemon         detach, write Daemon/pidfile, run as Daemon/user\n"
	"      --log-time       start log lines with an RFC 3339 UTC time\n"
	"  -v, --verbose        more log lines (debug)\n"
	"  -q, --quiet          warnings and errors only\n"
	"  -h, --help           show this help and exit\n"
	"  -V, --version        show the version and exit\n"
	"\n"
	"Signals: TERM/INT finish the open batch (or give it up after 5 s;\n"
	"PgQ hands it out again) and exit 0; a second TERM stops at once;\n"
	"HUP reloads the configuration.\n"
	"Exit status: 0 stopped on request, 64 usage, 69 a server was\n"
	"unavailable at start, 77 login or permission refused, 78 bad\n"
	"configuration.  See mikkoo-relay(1).\n";

enum { OPT_READY_FD = 256, OPT_LOG_TIME, OPT_DAEMON };

static const struct option longopts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "check", no_argument, NULL, 'n' },
	{ "worker", required_argument, NULL, 'w' },
	{ "ready-fd", required_argument, NULL, OPT_READY_FD },
	{ "notify-fd", required_argument, NULL, OPT_READY_FD },
	{ "foreground", no_argument, NULL, 'f' },
	{ "daemon", no_argument, NULL, OPT_DAEMON },
	{ "log-time", no_argument, NULL, OPT_LOG_TIME },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
	const char *path = NULL, *worker = NULL;
	int level = MK_LOG_INFO, ready_fd = -1, opt, rc;
	bool check = false, detach = false;
	struct mk_config cfg;
	struct mk_err e;
	char *end;

	log_init("mikkoo-relay");
	opterr = 0;       /* our own messages, one line each */
	while ((opt = getopt_long(argc, argv, ":c:nw:fvqhV", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'w':
			worker = optarg;
			break;
		case OPT_READY_FD:
			errno = 0;
			ready_fd = (int)strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || ready_fd < 0)
				return log_usage_error(USAGE, "--ready-fd needs a file "
						   "descriptor number");
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
		case 'q':
			level = MK_LOG_WARNING;
			break;
		case 'h':
			fputs(help, stdout);
			return fflush(stdout) == 0 ? 0 : EX_IOERR;
		case 'V':
			printf("mikkoo-relay %s\n", MIKKOO_VERSION);
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
	if (path == NULL)
		return log_usage_error(USAGE, "no configuration file: use -c FILE");
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

	/* No core file or same-user ptrace: memory holds passwords. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	if (detach && daemon_detach(cfg.daemon_pidfile, cfg.daemon_user,
				    &e) < 0) {
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
		};

		relay_log_notices(&cfg, worker);
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
	if (rc < 0) {
		if (e.msg[0])
			log_error("%s", e.msg);
		return e.code;
	}
	return 0;
}
