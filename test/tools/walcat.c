/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * walcat: stream a replication slot through the logical source
 * (common/logical.h) and print each event as a JSON line, confirming
 * each batch once it is written out.  For the tests and for looking at
 * a slot by hand; the relay does the same with RabbitMQ in between.
 *
 *   walcat -S SLOT [-d URL] [-P PUB]... [-m STREAM]... [--create]
 *          [-x EXCHANGE] [-k ROUTING_KEY] [--keep-unchanged]
 *          [-n COUNT] [--idle SECONDS] [--batch N] [--quiet] [--stats]
 *          [--stall SECONDS] [--stall-silent]
 *
 * A line: {"kind", "ev_id", "lsn", "commit_lsn", "ev_txid", "ev_time",
 * "ev_type", "ev_data", "ev_extra1" .. "ev_extra4", "table", "stream",
 * "error"}.  -n: stop after COUNT events (and one more batch, for the
 * commit that may follow them: it is what gets confirmed); --idle: stop
 * after SECONDS without one; SIGTERM/SIGINT: stop after the batch at
 * hand.  --stats
 * prints "events N batches B seconds S rate R maxrss_kb K" on stderr at
 * the end (S: from the start to the last event).
 * --stall: after the first batch, read nothing for SECONDS (as a relay
 * whose RabbitMQ is down) but keep the stream alive (logical_service
 * every half second); --stall-silent: without that, to show it is
 * needed.
 * Exit: 0, or the error's sysexits code (78 for a refused slot).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "event.h"
#include "log.h"
#include "logical.h"
#include "mono.h"
#include "url.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static json_t *
str_or_null(const char *s, size_t n)
{
	json_t *j;

	if (s == NULL)
		return json_null();
	j = json_stringn(s, n);
	return j ? j : json_string("(not UTF-8)");
}

static void
print_event(const struct logical_event *le)
{
	const struct mk_event *ev = &le->ev;
	char lsn[24], clsn[24], when[40], kind[2] = { le->kind, '\0' };
	static const char *const extra[4] = { "ev_extra1", "ev_extra2",
					      "ev_extra3", "ev_extra4" };
	json_t *o = json_object();
	char *line;
	int i;

	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "ev_id", json_integer(ev->ev_id));
	json_object_set_new(o, "lsn",
			    json_string(lsn_format(le->lsn, lsn, sizeof(lsn))));
	json_object_set_new(
		o, "commit_lsn",
		le->commit_lsn ? json_string(lsn_format(le->commit_lsn, clsn,
							sizeof(clsn)))
			       : json_null());
	json_object_set_new(o, "ev_txid", json_integer(ev->ev_txid));
	event_iso_time(ev->ev_time_us, when, sizeof(when));
	json_object_set_new(o, "ev_time", json_string(when));
	json_object_set_new(o, "ev_type",
			    str_or_null(ev->ev_type, ev->ev_type_len));
	json_object_set_new(o, "ev_data",
			    str_or_null(ev->ev_data, ev->ev_data_len));
	for (i = 0; i < 4; i++)
		json_object_set_new(
			o, extra[i],
			str_or_null(ev->extra[i], ev->extra_len[i]));
	json_object_set_new(o, "table",
			    le->table ? json_string(le->table) : json_null());
	json_object_set_new(o, "stream",
			    le->stream ? json_string(le->stream) : json_null());
	json_object_set_new(o, "error",
			    le->error ? json_string(le->error) : json_null());
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line)
		puts(line);
	free(line);
	json_decref(o);
}

static int
usage(void)
{
	fprintf(stderr,
		"usage: walcat -S SLOT [-d URL] [-P PUB]... "
		"[-m STREAM]... [--create] [-x EXCHANGE] [-k ROUTING_KEY] "
		"[--keep-unchanged] [-n COUNT] [--idle SECONDS] [--batch N] "
		"[--quiet] [--stats]\n");
	return EX_USAGE;
}

/* Append s to a NULL-terminated list. */
static const char **
push(const char **list, size_t *n, const char *s)
{
	const char **l = realloc(list, (*n + 2) * sizeof(*l));

	if (l == NULL)
		exit(EX_OSERR);
	l[(*n)++] = s;
	l[*n] = NULL;
	return l;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ "keep-unchanged", no_argument, NULL, 'u' },
		{ "idle", required_argument, NULL, 'i' },
		{ "batch", required_argument, NULL, 'b' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "stats", no_argument, NULL, 's' },
		{ "stall", required_argument, NULL, 'w' },
		{ "stall-silent", no_argument, NULL, 'z' },
		{ NULL, 0, NULL, 0 },
	};
	struct logical_config cfg = { 0 };
	const char **pubs = NULL, **streams = NULL;
	struct logical *src = NULL;
	struct sigaction sa;
	struct mk_err e = { 0 };
	struct rusage ru;
	const char *url = "";
	char *display;
	long count = -1, got = 0, n, batches = 0;
	double idle = -1, stall = 0, t0, last, until;
	bool quiet = false, stats = false, silent = false, stalled = false;
	const char *const *w;
	int c, rc = 0;
	size_t i, warned = 0;

	log_init("walcat");
	cfg.skip_unchanged = true;
	cfg.routing_key = "{schema}.{table}";
	cfg.exchange = "";
	cfg.wait = 0.5;
	while ((c = getopt_long(argc, argv, "d:S:P:m:x:k:n:", opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'd':
			url = optarg;
			break;
		case 'S':
			cfg.slot = optarg;
			break;
		case 'P':
			pubs = push(pubs, &cfg.npublications, optarg);
			break;
		case 'm':
			streams = push(streams, &cfg.nstreams, optarg);
			break;
		case 'x':
			cfg.exchange = optarg;
			break;
		case 'k':
			cfg.routing_key = optarg;
			break;
		case 'n':
			count = atol(optarg);
			break;
		case 'c':
			cfg.create_slot = true;
			break;
		case 'u':
			cfg.skip_unchanged = false;
			break;
		case 'i':
			idle = atof(optarg);
			break;
		case 'b':
			cfg.max_events = (size_t)atol(optarg);
			break;
		case 'q':
			quiet = true;
			break;
		case 's':
			stats = true;
			break;
		case 'w':
			stall = atof(optarg);
			break;
		case 'z':
			silent = true;
			break;
		default:
			return usage();
		}
	}
	if (cfg.slot == NULL || optind != argc)
		return usage();
	cfg.publications = pubs;
	cfg.streams = streams;
	display = url_mask(url[0] ? url : "(libpq defaults)");
	cfg.url = url;
	cfg.display = display;
	cfg.appname = "walcat";
	cfg.connect_timeout = 10;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (logical_open(&src, &cfg, &e) < 0) {
		fprintf(stderr, "walcat: error: %s\n", e.msg);
		free(display);
		free(pubs);
		free(streams);
		return e.code ? e.code : EX_SOFTWARE;
	}
	for (w = logical_warnings(src); w[warned]; warned++)
		fprintf(stderr, "walcat: warning: %s\n", w[warned]);
	if (logical_slot_created(src))
		fprintf(stderr, "walcat: created replication slot '%s'\n",
			cfg.slot);
	t0 = last = now_mono();
	while (!stop && (count < 0 || got < count)) {
		n = logical_next_batch(src, &e);
		if (n < 0) {
			rc = -1;
			break;
		}
		for (w = logical_warnings(src); w[warned]; warned++)
			fprintf(stderr, "walcat: warning: %s\n", w[warned]);
		if (n == 0) {
			if (idle >= 0 && now_mono() - last >= idle)
				break;
			continue;
		}
		for (i = 0; i < (size_t)n; i++) {
			const struct logical_event *le = logical_event(src, i);

			if (le->kind == 'F' || (le->error && !quiet))
				fprintf(stderr,
					"walcat: warning: event %lld: "
					"%s\n",
					le->ev.ev_id, le->error);
			if (!quiet)
				print_event(le);
		}
		if (fflush(stdout) != 0) {
			mk_err_set(&e, EX_IOERR, "cannot write the events");
			rc = -1;
			break;
		}
		got += n;
		batches++;
		last = now_mono();
		if (logical_finish(src, &e) < 0) {
			rc = -1;
			break;
		}
		if (stall > 0 && !stalled) {
			stalled = true;
			fprintf(stderr, "walcat: stalling %.1f s\n", stall);
			for (until = now_mono() + stall; now_mono() < until;) {
				struct timespec ts = { 0, 500000000 };

				nanosleep(&ts, NULL);
				if (!silent && logical_service(src, &e) < 0) {
					rc = -1;
					break;
				}
			}
			if (rc < 0)
				break;
			fprintf(stderr, "walcat: reading again\n");
		}
	}
	/* the commit that may follow the last event counted: confirmed by
	 * a batch without events */
	if (rc == 0 && !stop && count >= 0 && got >= count &&
	    logical_next_batch(src, &e) > 0) {
		n = 0;
		while (logical_event(src, (size_t)n)) {
			if (!quiet)
				print_event(logical_event(src, (size_t)n));
			n++;
		}
		fflush(stdout);
		got += n;
		if (logical_finish(src, &e) < 0)
			rc = -1;
	}
	if (stats) {
		double secs = last - t0; /* reading, not the idle wait */

		getrusage(RUSAGE_SELF, &ru);
		fprintf(stderr,
			"events %ld batches %ld seconds %.3f rate %.0f "
			"maxrss_kb %ld\n",
			got, batches, secs, secs > 0 ? (double)got / secs : 0.0,
			ru.ru_maxrss);
	}
	logical_close(src);
	free(display);
	free(pubs);
	free(streams);
	if (rc < 0) {
		fprintf(stderr, "walcat: error: %s\n", e.msg);
		return e.code ? e.code : EX_SOFTWARE;
	}
	return 0;
}
