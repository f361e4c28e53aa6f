/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * latency: commit-to-delivery latency for bench/run.  Offers RATE events
 * a second for SECONDS with plain pgq.insert_event, committed in 10 ms
 * slices (one transaction per slice that has events due, each event's
 * body its slice number), and notes when each COMMIT returned.  A child
 * process consumes the RabbitMQ queue the relay publishes to and notes
 * when each message arrived (CLOCK_MONOTONIC: one clock for both).
 * Prints "p50_ms X", "p99_ms Y", "max_ms Z", "received N"; with
 * SAMPLES_FILE also writes every latency in ms, sorted, one a line.
 *
 *   latency CONNINFO PGQ_QUEUE EXCHANGE AMQP_URL AMQP_QUEUE RATE SECONDS
 *           [SAMPLES_FILE]
 *
 * PGQ_QUEUE "emit:STREAM" writes the events with mikkoo.emit(STREAM, ...)
 * instead, for a slot worker relaying that stream.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>

#include "url.h"

#define PGQ_SQL                                                         \
	"SELECT count(pgq.insert_event($1, 'lat', $2, $3, NULL, NULL, " \
	"NULL)) FROM generate_series(1, $4::int)"
#define EMIT_SQL                                                          \
	"SELECT count(mikkoo.emit($1, 'lat', $2, $3, NULL, NULL, NULL)) " \
	"FROM generate_series(1, $4::int)"

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The consumer: "SLICE TIME" lines to out until total arrived. */
static int
consume(const char *url, const char *queue, long total, double secs, FILE *out,
	int ready)
{
	struct mk_amqp_url u;
	struct mk_err e;
	amqp_connection_state_t c;
	double end;
	long got = 0;

	if (url_amqp_parse(url, &u, &e))
		return 69;
	c = amqp_new_connection();
	if (amqp_socket_open(amqp_tcp_socket_new(c), u.host, u.port) ||
	    amqp_login(c, u.vhost, 0, 131072, 30, AMQP_SASL_METHOD_PLAIN,
		       u.user, u.password)
			    .reply_type != AMQP_RESPONSE_NORMAL)
		return 69;
	amqp_channel_open(c, 1);
	if (amqp_basic_consume(c, 1, amqp_cstring_bytes(queue),
			       amqp_empty_bytes, 0, 1, 0,
			       amqp_empty_table) == NULL)
		return 69;
	(void)!write(ready, "\n", 1);
	close(ready);
	end = mono() + secs + 30;
	while (got < total && mono() < end) {
		struct timeval tv = { 0, 200000 };
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			continue;
		fprintf(out, "%.*s %.9f\n", (int)env.message.body.len,
			(const char *)env.message.body.bytes, mono());
		got++;
		amqp_destroy_envelope(&env);
	}
	fclose(out);
	amqp_destroy_connection(c);
	url_amqp_release(&u);
	return 0;
}

int
main(int argc, char **argv)
{
	double rate, secs, start, next, *commit, *lat;
	long total, slices, sent = 0, got = 0, slice = 0;
	int ready[2], status;
	int emit;
	char tmpl[] = "/tmp/mikkoo-latency.XXXXXX", line[128], rb;
	FILE *f;
	PGconn *pg;
	pid_t kid;
	int fd;

	if (argc != 8 && argc != 9) {
		fprintf(stderr,
			"usage: latency CONNINFO QUEUE EXCHANGE "
			"AMQP_URL AMQP_QUEUE RATE SECONDS [SAMPLES_FILE]\n");
		return 64;
	}
	rate = atof(argv[6]);
	secs = atof(argv[7]);
	total = (long)(rate * secs);
	slices = (long)(secs * 100) + 2;
	commit = calloc((size_t)slices, sizeof(*commit));
	lat = calloc((size_t)total + 1, sizeof(*lat));
	fd = mkstemp(tmpl);
	if (commit == NULL || lat == NULL || fd < 0 || pipe(ready) < 0)
		return 70;
	kid = fork();
	if (kid == 0) {
		close(ready[0]);
		_exit(consume(argv[4], argv[5], total, secs, fdopen(fd, "w"),
			      ready[1]));
	}
	close(ready[1]);
	if (read(ready[0], &rb, 1) != 1) {
		fprintf(stderr, "latency: the consumer did not start\n");
		return 69;
	}
	pg = PQconnectdb(argv[1]);
	if (PQstatus(pg) != CONNECTION_OK)
		return 69;
	emit = strncmp(argv[2], "emit:", 5) == 0;
	if (emit)
		argv[2] += 5;

	start = next = mono();
	while (sent < total && slice < slices) {
		double t = mono();
		long due = (long)((t - start) * rate) + 1 - sent;
		char n[24], body[24];
		const char *v[] = { argv[2], body, argv[3], n };
		PGresult *res;

		if (t < next) {
			struct timespec ts = { 0, (long)((next - t) * 1e9) };

			nanosleep(&ts, NULL);
			continue;
		}
		next += 0.01;
		if (due > total - sent)
			due = total - sent;
		if (due <= 0)
			continue;
		snprintf(body, sizeof(body), "%ld", slice);
		snprintf(n, sizeof(n), "%ld", due);
		res = PQexecParams(pg, emit ? EMIT_SQL : PGQ_SQL, 4, NULL, v,
				   NULL, NULL, 0);
		commit[slice++] = mono();
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "latency: %s", PQerrorMessage(pg));
			kill(kid, SIGTERM);
			return 69;
		}
		PQclear(res);
		sent += due;
	}
	waitpid(kid, &status, 0);
	f = fdopen(fd, "r");
	rewind(f);
	while (got < total && fgets(line, sizeof(line), f)) {
		long s;
		double at;

		if (sscanf(line, "%ld %lf", &s, &at) != 2 || s < 0 ||
		    s >= slice)
			continue;
		lat[got++] = (at - commit[s]) * 1000;
	}
	fclose(f);
	unlink(tmpl);
	qsort(lat, (size_t)got, sizeof(*lat), cmp);
	if (got > 0)
		printf("p50_ms %.1f\np99_ms %.1f\nmax_ms %.1f\n", lat[got / 2],
		       lat[(long)(got * 0.99)], lat[got - 1]);
	printf("received %ld\n", got);
	if (argc == 9 && (f = fopen(argv[8], "w")) != NULL) {
		long i;

		for (i = 0; i < got; i++)
			fprintf(f, "%.3f\n", lat[i]);
		fclose(f);
	}
	PQfinish(pg);
	free(commit);
	free(lat);
	return got == total ? 0 : 1;
}
