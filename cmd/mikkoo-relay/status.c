/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * status: what a worker tells the world, for the worker's loop and the
 * pipeline alike: its state (to the supervisor's report and systemd),
 * its counters' sinks, which node it uses, and whether a stop is due.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "mono.h"
#include "sdnotify.h"
#include "sig.h"
#include "text.h"
#include "worker.h"

/* The RabbitMQ node in use, masked, for log lines. */
const char *
status_node(const struct relay *r)
{
	return r->w->nodes[r->node < r->w->nnodes ? r->node : 0].display;
}

bool
status_stop_now(struct relay *r)
{
	int n = sig_term_count();

	if (n == 0)
		return false;
	if (r->stop_deadline == 0)
		r->stop_deadline = now_mono() + r->o->drain_seconds;
	return n >= 2 || now_mono() >= r->stop_deadline;
}

static void
send_report(struct relay *r)
{
	if (r->o->report_fd >= 0)
		(void)report_send(r->o->report_fd, &r->rep);
}

/*
 * To systemd, for a worker run alone (--worker): a supervised worker's
 * parent speaks for the service and never passes the socket on.
 */
void
status_notify(const char *what)
{
	struct mk_err e;

	if (sdnotify(&e, "%s", what) < 0)
		log_warn("%s", e.msg);
}

/* The counters' third sink: the totals and gauges, to the supervisor. */
void
status_report_sink(void *arg, const struct counts *t, const struct counts *d,
		   const struct gauges *g)
{
	struct relay *r = arg;

	(void)d;
	r->rep.c.published = (uint64_t)t->published;
	r->rep.c.retried = (uint64_t)t->retried;
	r->rep.c.dead = (uint64_t)t->dead;
	r->rep.c.batches = (uint64_t)t->batches;
	r->rep.c.refused = (uint64_t)t->refused;
	r->rep.c.reconnects_pg = (uint64_t)t->reconnects_pg;
	r->rep.c.reconnects_mq = (uint64_t)t->reconnects_mq;
	r->rep.c.latency = t->latency;
	r->rep.pending = g->pending;
	r->rep.lag = g->lag;
	r->rep.tick_age = g->tick_age;
	r->rep.retained = g->retained;
	send_report(r);
}

/* A state change goes to the supervisor at once, not at the next tick. */
void
status_set(struct relay *r, enum report_state st, const char *why)
{
	bool changed = r->rep.state != (uint32_t)st;
	char status[64 + sizeof(r->rep.why)];
	size_t i;

	r->rep.state = (uint32_t)st;
	/* never cut inside a character: /health shows it (text.h) */
	text_copy(r->rep.why, sizeof(r->rep.why), why ? why : "");
	/* with the totals as they are now: a scrape that sees the new
	 * state also sees the reconnect that led to it */
	if (changed)
		status_report_sink(r, &r->cnt.total, NULL, &r->cnt.gauges);
	if (changed && sdnotify_on()) {
		snprintf(status, sizeof(status), "STATUS=%s%s%s",
			 report_state_name(st), r->rep.why[0] ? ": " : "",
			 r->rep.why);
		for (i = 0; status[i]; i++) /* one line */
			if ((unsigned char)status[i] < 0x20)
				status[i] = ' ';
		status_notify(status);
	}
}

/* Every sink that is due (all of them when force). */
void
status_stats(struct relay *r, bool force)
{
	counters_tick(&r->cnt, now_mono(), force);
}
