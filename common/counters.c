/* SPDX-License-Identifier: BSD-3-Clause */
/* counters: totals, deltas and the log and statsd sinks. */
#include <string.h>

#include "counters.h"
#include "log.h"
#include "statsd.h"

void
counters_init(struct counters *c)
{
	memset(c, 0, sizeof(*c));
}

int
counters_add_sink(struct counters *c, counter_sink_fn fn, void *arg)
{
	if (c->nsinks == COUNTERS_SINKS)
		return -1;
	c->sink[c->nsinks].fn = fn;
	c->sink[c->nsinks++].arg = arg;
	return 0;
}

void
counters_set_arg(struct counters *c, counter_sink_fn fn, void *arg)
{
	size_t i;

	for (i = 0; i < c->nsinks; i++)
		if (c->sink[i].fn == fn)
			c->sink[i].arg = arg;
}

void
counters_report(struct counters *c, long long pending)
{
	const struct counts *t = &c->total, *l = &c->reported;
	struct counts d = {
		.batches = t->batches - l->batches,
		.events = t->events - l->events,
		.published = t->published - l->published,
		.retried = t->retried - l->retried,
		.dead = t->dead - l->dead,
		.empty = t->empty - l->empty,
		.reconnects_pg = t->reconnects_pg - l->reconnects_pg,
		.reconnects_mq = t->reconnects_mq - l->reconnects_mq,
	};
	size_t i;

	for (i = 0; i < c->nsinks; i++)
		c->sink[i].fn(c->sink[i].arg, t, &d, pending);
	c->reported = *t;
}

void
counters_log_sink(void *arg, const struct counts *t, const struct counts *d,
		  long long pending)
{
	(void)arg;
	(void)d;
	log_info("stats: batches=%lld events=%lld processed=%lld failed=%lld "
		 "retried=%lld dead=%lld empty_polls=%lld reconnects=%lld "
		 "pending=%lld", t->batches, t->events, t->published,
		 t->retried + t->dead, t->retried, t->dead, t->empty,
		 t->reconnects_pg + t->reconnects_mq, pending);
}

void
counters_statsd_sink(void *arg, const struct counts *t, const struct counts *d,
		     long long pending)
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
	if (pending >= 0)
		statsd_gauge(sd, "pending_events", pending);
}
