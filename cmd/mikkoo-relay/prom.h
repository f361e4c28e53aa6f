/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * prom: the relay's metrics as numbers and as Prometheus text.
 *
 * Owns: struct prom_queue (one queue's counters, gauges and delivery
 * latency histogram, as a worker reports them and the supervisor adds
 * them up), the histogram's buckets, and the text exposition format
 * 0.0.4 rendering (one HELP and TYPE line per family, label values
 * escaped).  Pure: no I/O, no clock, no allocation but the output.
 */
#ifndef MIKKOO_PROM_H
#define MIKKOO_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds (seconds) of the delivery latency buckets; +Inf after. */
#define PROM_NBUCKETS 15
extern const double prom_buckets[PROM_NBUCKETS];

struct prom_hist {
	uint64_t n[PROM_NBUCKETS + 1]; /* per bucket, not cumulative;
					   the last is above every bound */
	uint64_t count;
	double sum; /* seconds */
};

struct prom_counts {
	uint64_t published; /* confirmed by RabbitMQ */
	uint64_t retried;
	uint64_t dead;    /* stored in mikkoo.dead_letter */
	uint64_t batches; /* finished */
	uint64_t refused; /* broker refusals held (nacks, channel
				   closes, lost connections mid-batch) */
	uint64_t reconnects_pg, reconnects_mq;
	struct prom_hist latency;
};

struct prom_queue {
	const char *queue;
	struct prom_counts c;
	bool up;            /* connected to both servers, relaying */
	long long pending;  /* pgq pending_events; < 0 unknown */
	double lag;         /* consumer lag, seconds; < 0 unknown */
	double tick_age;    /* since the queue's last tick; < 0 unknown */
	long long retained; /* a slot worker's retained WAL bytes; < 0
				   none (render skips 0 too only if < 0) */
};

/* Count one confirmed event's latency (seconds; < 0 counts as 0). */
void prom_observe(struct prom_hist *h, double seconds);
/* a += b (counters of a restarted worker's earlier lives). */
void prom_add(struct prom_counts *a, const struct prom_counts *b);

/*
 * Render the families for n queues into a malloc'd NUL-terminated text
 * (*len without the NUL).  Returns 0, or -1 when out of memory.
 */
int prom_render(const struct prom_queue *q, size_t n, char **out, size_t *len);

#endif
