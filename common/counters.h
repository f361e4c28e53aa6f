/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * counters: a worker's running totals, and the sinks they go to.
 *
 * Owns: struct counts (plain numbers the batch loop adds to), what was
 * last reported, and the list of sinks a report goes to: the "stats:"
 * log line and statsd (the original mikkoo's names) are here; another
 * sink (the supervisor's metrics) is one more counters_add_sink call,
 * with no change to the batch loop.
 * Never: blocks (a sink must not: statsd is UDP), does PostgreSQL or
 * AMQP I/O (the pending gauge is handed in).
 */
#ifndef MIKKOO_COUNTERS_H
#define MIKKOO_COUNTERS_H

#include <stddef.h>

struct counts {
	long long batches;      /* finished */
	long long events;       /* read from PgQ */
	long long published;    /* confirmed by RabbitMQ */
	long long retried;      /* put back with pgq retry */
	long long dead;         /* copied to mikkoo.dead_letter */
	long long empty;        /* polls that found no batch */
	long long reconnects_pg;/* connections re-established */
	long long reconnects_mq;
};

/*
 * A sink gets the totals, what changed since the previous report, and
 * the queue's pending events (-1: unknown).
 */
typedef void (*counter_sink_fn)(void *arg, const struct counts *total,
				const struct counts *delta,
				long long pending);

#define COUNTERS_SINKS 4

struct counters {
	struct counts total;    /* the batch loop adds here */
	struct counts reported; /* total as of the last report */
	struct {
		counter_sink_fn fn;
		void *arg;
	} sink[COUNTERS_SINKS];
	size_t nsinks;
};

void counters_init(struct counters *c);
/* -1 when all COUNTERS_SINKS are taken. */
int counters_add_sink(struct counters *c, counter_sink_fn fn, void *arg);
/* Replace the argument of sink fn (statsd reopened on reload). */
void counters_set_arg(struct counters *c, counter_sink_fn fn, void *arg);
/* Hand the totals to every sink. */
void counters_report(struct counters *c, long long pending);

/* The sinks kept here. */
void counters_log_sink(void *arg, const struct counts *total,
		       const struct counts *delta, long long pending);
/* arg: a struct statsd * (NULL: nothing sent). */
void counters_statsd_sink(void *arg, const struct counts *total,
			  const struct counts *delta, long long pending);

#endif
