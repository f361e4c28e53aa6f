/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * latency: insert-to-delivery latency for bench/run.  Offers RATE events
 * a second for SECONDS, committed in 10 ms slices (one transaction per
 * slice, each event's body its commit-side insert time), consumes the
 * RabbitMQ queue the relay publishes to, and prints "p50_ms X",
 * "p99_ms Y", "max_ms Z", "received N".
 *
 *   latency CONNINFO PGQ_QUEUE EXCHANGE AMQP_URL AMQP_QUEUE RATE SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>

#include "url.h"

static double
wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct mk_amqp_url u;
	struct mk_err e;
	amqp_connection_state_t c;
	double rate, secs, start, next, *lat;
	long total, sent = 0, got = 0;
	PGconn *pg;
	char body[64];

	if (argc != 8) {
		fprintf(stderr, "usage: latency CONNINFO QUEUE EXCHANGE "
			"AMQP_URL AMQP_QUEUE RATE SECONDS\n");
		return 64;
	}
	rate = atof(argv[6]);
	secs = atof(argv[7]);
	total = (long)(rate * secs);
	lat = calloc((size_t)total + 1, sizeof(*lat));
	pg = PQconnectdb(argv[1]);
	if (PQstatus(pg) != CONNECTION_OK || url_amqp_parse(argv[4], &u, &e))
		return 69;
	c = amqp_new_connection();
	if (amqp_socket_open(amqp_tcp_socket_new(c), u.host, u.port) ||
	    amqp_login(c, u.vhost, 0, 131072, 30, AMQP_SASL_METHOD_PLAIN,
		       u.user, u.password).reply_type != AMQP_RESPONSE_NORMAL)
		return 69;
	amqp_channel_open(c, 1);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(argv[5]), amqp_empty_bytes,
			   0, 1, 0, amqp_empty_table);
	start = next = wall();
	while (got < total) {
		double t = wall();
		struct timeval tv;
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		if (sent < total && t >= next) {
			long due = (long)((t - start) * rate) + 1 - sent;
			char n[24];
			const char *v[] = { argv[2], body, argv[3], n };
			PGresult *res;

			if (due > total - sent)
				due = total - sent;
			snprintf(body, sizeof(body), "%.6f", t);
			snprintf(n, sizeof(n), "%ld", due);
			res = PQexecParams(pg, "SELECT count(pgq.insert_event($1,"
					   " 'lat', $2, $3, NULL, NULL, NULL))"
					   " FROM generate_series(1, $4::int)",
					   4, NULL, v, NULL, NULL, 0);
			PQclear(res);
			sent += due;
			next = t + 0.01;
			continue;
		}
		if (t - start > secs + 30)
			break;
		amqp_maybe_release_buffers(c);
		tv.tv_sec = 0;
		tv.tv_usec = sent < total ? (suseconds_t)((next - t) * 1e6) + 1
			: 200000;
		if (tv.tv_usec < 0 || tv.tv_usec > 999999)
			tv.tv_usec = 1000;
		r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			continue;
		{
			char ts[64];

			snprintf(ts, sizeof(ts), "%.*s",
				 (int)env.message.body.len,
				 (const char *)env.message.body.bytes);
			lat[got++] = (wall() - atof(ts)) * 1000;
		}
		amqp_destroy_envelope(&env);
	}
	qsort(lat, (size_t)got, sizeof(*lat), cmp);
	if (got > 0)
		printf("p50_ms %.1f\np99_ms %.1f\nmax_ms %.1f\n",
		       lat[got / 2], lat[(long)(got * 0.99)], lat[got - 1]);
	printf("received %ld\n", got);
	amqp_destroy_connection(c);
	PQfinish(pg);
	free(lat);
	url_amqp_release(&u);
	return got == total ? 0 : 1;
}
