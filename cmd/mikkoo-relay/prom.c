/* SPDX-License-Identifier: BSD-3-Clause */
/* prom: Prometheus text format 0.0.4 for the relay's metrics. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

const double prom_buckets[PROM_NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	0.5,   1,      2.5,   5,    10,    30,   60,
};

void
prom_observe(struct prom_hist *h, double s)
{
	size_t i;

	if (!(s > 0))
		s = 0; /* clocks apart, or NaN: the first bucket */
	for (i = 0; i < PROM_NBUCKETS && s > prom_buckets[i]; i++)
		;
	h->n[i]++;
	h->count++;
	h->sum += s;
}

void
prom_add(struct prom_counts *a, const struct prom_counts *b)
{
	size_t i;

	a->published += b->published;
	a->retried += b->retried;
	a->dead += b->dead;
	a->batches += b->batches;
	a->refused += b->refused;
	a->reconnects_pg += b->reconnects_pg;
	a->reconnects_mq += b->reconnects_mq;
	for (i = 0; i <= PROM_NBUCKETS; i++)
		a->latency.n[i] += b->latency.n[i];
	a->latency.count += b->latency.count;
	a->latency.sum += b->latency.sum;
}

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void
put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = (b->cap + (size_t)n + 1) * 2;
			char *p = realloc(b->p, cap);

			if (p == NULL) {
				b->oom = true;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void
put_label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			put(b, "\\\\");
		else if (*v == '"')
			put(b, "\\\"");
		else if (*v == '\n')
			put(b, "\\n");
		else
			put(b, "%c", *v);
	}
}

/* Like Go's strconv.FormatFloat(v, 'g', -1): the shortest exact text.
 * Infinities and NaN have their own spellings. */
static void
put_value(struct buf *b, double v)
{
	if (isnan(v))
		put(b, "NaN");
	else if (isinf(v))
		put(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		put(b, "%.0f", v); /* counts: digits, never 1e+01 */
	else {
		char t[32];
		int prec;

		/* the shortest text that reads back as v */
		for (prec = 1; prec < 17; prec++) {
			snprintf(t, sizeof(t), "%.*g", prec, v);
			if (strtod(t, NULL) == v)
				break;
		}
		if (prec == 17)
			snprintf(t, sizeof(t), "%.17g", v);
		put(b, "%s", t);
	}
}

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sample(struct buf *b, const char *name, const char *queue, const char *more,
       double v)
{
	put(b, "%s{queue=\"", name);
	put_label(b, queue);
	put(b, "\"%s} ", more ? more : "");
	put_value(b, v);
	put(b, "\n");
}

int
prom_render(const struct prom_queue *q, size_t n, char **out, size_t *len)
{
	struct buf b = { NULL, 0, 0, false };
	size_t i, k;
	char le[64];

	b.p = malloc(4096);
	if (b.p == NULL)
		return -1;
	b.cap = 4096;
	b.p[0] = '\0';

#define COUNTER(name, help, field)                         \
	do {                                               \
		family(&b, name, "counter", help);         \
		for (i = 0; i < n; i++)                    \
			sample(&b, name, q[i].queue, NULL, \
			       (double)q[i].c.field);      \
	} while (0)
	COUNTER("mikkoo_events_published_total",
		"Events confirmed by "
		"RabbitMQ.",
		published);
	COUNTER("mikkoo_events_retried_total",
		"Events put back into PgQ "
		"for a later retry.",
		retried);
	COUNTER("mikkoo_events_dead_lettered_total",
		"Events stored in "
		"mikkoo.dead_letter.",
		dead);
	COUNTER("mikkoo_batches_total", "PgQ batches finished.", batches);
	COUNTER("mikkoo_broker_refusals_total",
		"Times RabbitMQ refused "
		"publishes of an open batch for reasons not the event's "
		"(nacks, channel closes, lost connections): the relay held "
		"the line and published again in order.",
		refused);
#undef COUNTER

	family(&b, "mikkoo_reconnects_total", "counter",
	       "Connections "
	       "re-established after a loss, by server.");
	for (i = 0; i < n; i++) {
		sample(&b, "mikkoo_reconnects_total", q[i].queue,
		       ",server=\"postgresql\"", (double)q[i].c.reconnects_pg);
		sample(&b, "mikkoo_reconnects_total", q[i].queue,
		       ",server=\"rabbitmq\"", (double)q[i].c.reconnects_mq);
	}

	family(&b, "mikkoo_pending_events", "gauge",
	       "Events PgQ holds for "
	       "the consumer (pgq.get_consumer_info), as last seen.");
	for (i = 0; i < n; i++)
		if (q[i].pending >= 0)
			sample(&b, "mikkoo_pending_events", q[i].queue, NULL,
			       (double)q[i].pending);
	family(&b, "mikkoo_consumer_lag_seconds", "gauge",
	       "Age of the "
	       "consumer's last finished tick while a newer tick exists, "
	       "else 0.");
	for (i = 0; i < n; i++)
		if (q[i].lag >= 0)
			sample(&b, "mikkoo_consumer_lag_seconds", q[i].queue,
			       NULL, q[i].lag);
	family(&b, "mikkoo_queue_tick_age_seconds", "gauge",
	       "Age of the "
	       "queue's last tick, whoever ticks it (pgq ticker_lag); grows "
	       "while nobody does.");
	for (i = 0; i < n; i++)
		if (q[i].tick_age >= 0)
			sample(&b, "mikkoo_queue_tick_age_seconds", q[i].queue,
			       NULL, q[i].tick_age);
	family(&b, "mikkoo_slot_retained_bytes", "gauge",
	       "Bytes of WAL a slot "
	       "worker's replication slot holds back (from its restart_lsn), "
	       "as last seen.");
	for (i = 0; i < n; i++)
		if (q[i].retained >= 0)
			sample(&b, "mikkoo_slot_retained_bytes", q[i].queue,
			       NULL, (double)q[i].retained);
	family(&b, "mikkoo_worker_up", "gauge",
	       "1 when the queue's worker "
	       "is connected to both servers and relaying.");
	for (i = 0; i < n; i++)
		sample(&b, "mikkoo_worker_up", q[i].queue, NULL,
		       q[i].up ? 1 : 0);

	family(&b, "mikkoo_delivery_latency_seconds", "histogram",
	       "From "
	       "the event's ev_time to RabbitMQ's confirm.");
	for (i = 0; i < n; i++) {
		const struct prom_hist *h = &q[i].c.latency;
		uint64_t cum = 0;

		for (k = 0; k <= PROM_NBUCKETS; k++) {
			cum += h->n[k];
			if (k < PROM_NBUCKETS)
				snprintf(le, sizeof(le), ",le=\"%g\"",
					 prom_buckets[k]);
			else
				snprintf(le, sizeof(le), ",le=\"+Inf\"");
			sample(&b, "mikkoo_delivery_latency_seconds_bucket",
			       q[i].queue, le, (double)cum);
		}
		sample(&b, "mikkoo_delivery_latency_seconds_sum", q[i].queue,
		       NULL, h->sum);
		sample(&b, "mikkoo_delivery_latency_seconds_count", q[i].queue,
		       NULL, (double)h->count);
	}
	if (b.oom) {
		free(b.p);
		return -1;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}
