/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * raw-pgq: the PostgreSQL ceiling for bench/run.  Reads COUNT events of
 * a pre-filled queue as a plain PgQ consumer (next_batch,
 * get_batch_events, finish_batch) with no AMQP in the loop, and prints
 * "events_per_second N".
 *
 *   raw-pgq CONNINFO QUEUE CONSUMER COUNT
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <libpq-fe.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static PGresult *
q(PGconn *c, const char *sql, const char *a, const char *b)
{
	const char *v[] = { a, b };
	PGresult *r = PQexecParams(c, sql, b ? 2 : 1, NULL, v, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "raw-pgq: %s", PQerrorMessage(c));
		exit(1);
	}
	return r;
}

int
main(int argc, char **argv)
{
	PGconn *c;
	PGresult *r;
	long count, got = 0;
	double t0;
	char batch[32];

	if (argc != 5) {
		fprintf(stderr,
			"usage: raw-pgq CONNINFO QUEUE CONSUMER COUNT\n");
		return 64;
	}
	count = atol(argv[4]);
	c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "raw-pgq: %s", PQerrorMessage(c));
		return 69;
	}
	t0 = now();
	while (got < count) {
		r = q(c, "SELECT pgq.next_batch($1, $2)", argv[2], argv[3]);
		if (PQgetisnull(r, 0, 0)) {
			PQclear(r);
			if (now() - t0 > 600) {
				fprintf(stderr, "raw-pgq: only %ld events\n",
					got);
				return 1;
			}
			continue;
		}
		snprintf(batch, sizeof(batch), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = q(c, "SELECT * FROM pgq.get_batch_events($1)", batch, NULL);
		got += PQntuples(r);
		PQclear(r);
		PQclear(q(c, "SELECT pgq.finish_batch($1)", batch, NULL));
	}
	printf("events_per_second %.0f\n", (double)got / (now() - t0));
	PQfinish(c);
	return 0;
}
