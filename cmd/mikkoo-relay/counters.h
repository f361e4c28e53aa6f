/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * counters: a worker's running totals and gauges, and the sinks they go
 * to, each at its own pace.
 *
 * Owns: struct counts (plain numbers the batch loop adds to), the last
 * gauges read (pending events, consumer lag), and the sinks: the
 * "stats:" log line and statsd (the original mikkoo's names) are here,
 * every poll_interval; the supervisor's metrics report (relay.c) is one
 * more sink, every second.  Each sink gets what changed since its own
 * last report.  Adding a sink never touches the batch loop, which only
 * calls counters_tick().
 * Never: blocks (a sink must not: statsd is UDP, the report pipe is
 * non-blocking), does PostgreSQL or AMQP I/O (gauges are handed in).
 */
#ifndef MIKKOO_COUNTERS_H
#define MIKKOO_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>

#include "prom.h"

struct counts {
	long long batches;       /* finished */
	long long events;        /* read from PgQ */
	long long published;     /* confirmed by RabbitMQ */
	long long retried;       /* put back with pgq retry (counted) */
	long long dead;          /* copied to mikkoo.dead_letter */
	long long refused;       /* holds after a broker refusal */
	long long empty;         /* polls that found no batch */
	long long reconnects_pg; /* connections re-established */
	long long reconnects_mq;
	struct prom_hist latency; /* commit to confirm of published
				      events (totals only: not in deltas) */
};

struct gauges {
	long long pending;  /* pgq's pending_events; < 0 unknown */
	double lag;         /* seconds behind; < 0 unknown */
	double tick_age;    /* seconds since the queue's last tick; < 0
				   unknown */
	long long retained; /* slot workers: WAL bytes the slot holds
				   back; < 0 unknown or not a slot */
};

typedef void (*counter_sink_fn)(void *arg, const struct counts *total,
				const struct counts *delta,
				const struct gauges *g);

#define COUNTERS_SINKS 4

struct counter_sink {
	counter_sink_fn fn;
	void *arg;
	double every;           /* seconds between reports */
	double next;            /* monotonic time of the next one */
	struct counts reported; /* total as of this sink's last report */
};

struct counters {
	struct counts total; /* the batch loop adds here */
	struct gauges gauges;
	struct counter_sink sink[COUNTERS_SINKS];
	size_t nsinks;
};

void counters_init(struct counters *c);
/* A sink every `every` seconds; -1 when all COUNTERS_SINKS are taken. */
int counters_add_sink(struct counters *c, counter_sink_fn fn, void *arg,
		      double every);
/* Change sink fn's argument (statsd reopened) or pace (a reload). */
void counters_set_sink(struct counters *c, counter_sink_fn fn, void *arg,
		       double every);
/* A published event's delivery latency, seconds. */
void counters_latency(struct counters *c, double seconds);

/* Hand the due sinks (all of them when force) their report. */
void counters_tick(struct counters *c, double now, bool force);

/* The sinks kept here. */
void counters_log_sink(void *arg, const struct counts *total,
		       const struct counts *delta, const struct gauges *g);
/* arg: a struct statsd * (NULL: nothing sent). */
void counters_statsd_sink(void *arg, const struct counts *total,
			  const struct counts *delta, const struct gauges *g);

#endif
