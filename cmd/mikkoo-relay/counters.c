/* SPDX-License-Identifier: BSD-3-Clause */
/* counters: totals, per-sink deltas and paces, the log and statsd sinks. */
#include <string.h>

#include "counters.h"
#include "log.h"
#include "statsd.h"

void
counters_init(struct counters *c)
{
	memset(c, 0, sizeof(*c));
	c->gauges.pending = -1;
	c->gauges.lag = -1;
	c->gauges.tick_age = -1;
	c->gauges.retained = -1;
}

int
counters_add_sink(struct counters *c, counter_sink_fn fn, void *arg,
		  double every)
{
	struct counter_sink *s;

	if (c->nsinks == COUNTERS_SINKS)
		return -1;
	s = &c->sink[c->nsinks++];
	memset(s, 0, sizeof(*s));
	s->fn = fn;
	s->arg = arg;
	s->every = every;
	return 0;
}

void
counters_set_sink(struct counters *c, counter_sink_fn fn, void *arg,
		  double every)
{
	size_t i;

	for (i = 0; i < c->nsinks; i++)
		if (c->sink[i].fn == fn) {
			c->sink[i].arg = arg;
			c->sink[i].every = every;
		}
}

void
counters_latency(struct counters *c, double seconds)
{
	prom_observe(&c->total.latency, seconds);
}

static void
delta(const struct counts *t, const struct counts *l, struct counts *d)
{
	memset(d, 0, sizeof(*d));
	d->batches = t->batches - l->batches;
	d->events = t->events - l->events;
	d->published = t->published - l->published;
	d->retried = t->retried - l->retried;
	d->dead = t->dead - l->dead;
	d->refused = t->refused - l->refused;
	d->empty = t->empty - l->empty;
	d->reconnects_pg = t->reconnects_pg - l->reconnects_pg;
	d->reconnects_mq = t->reconnects_mq - l->reconnects_mq;
}

void
counters_tick(struct counters *c, double now, bool force)
{
	size_t i;

	for (i = 0; i < c->nsinks; i++) {
		struct counter_sink *s = &c->sink[i];
		struct counts d;

		if (s->next == 0)
			s->next = now + s->every; /* the first period */
		if (!force && now < s->next)
			continue;
		s->next = now + s->every;
		delta(&c->total, &s->reported, &d);
		s->fn(s->arg, &c->total, &d, &c->gauges);
		s->reported = c->total;
	}
}

void
counters_log_sink(void *arg, const struct counts *t, const struct counts *d,
		  const struct gauges *g)
{
	(void)arg;
	(void)d;
	log_info("stats: batches=%lld events=%lld processed=%lld failed=%lld "
		 "retried=%lld dead=%lld refused=%lld empty_polls=%lld "
		 "reconnects=%lld pending=%lld",
		 t->batches, t->events, t->published, t->retried + t->dead,
		 t->retried, t->dead, t->refused, t->empty,
		 t->reconnects_pg + t->reconnects_mq, g->pending);
}

void
counters_statsd_sink(void *arg, const struct counts *t, const struct counts *d,
		     const struct gauges *g)
{
	struct statsd *sd = arg;

	(void)t;
	if (sd == NULL)
		return;
	statsd_count(sd, "processed", d->published);
	statsd_count(sd, "failed", d->retried + d->dead);
	statsd_count(sd, "batches", d->batches);
	statsd_count(sd, "empty_queue", d->empty);
	statsd_count(sd, "dead_lettered", d->dead);
	if (g->pending >= 0)
		statsd_gauge(sd, "pending_events", g->pending);
}
