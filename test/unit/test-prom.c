/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for prom: buckets, adding up, and the exact text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"
#include "tap.h"

static void
observe(void)
{
	struct prom_hist h;

	memset(&h, 0, sizeof(h));
	prom_observe(&h, 0.001); /* on a bound: that bucket (le) */
	prom_observe(&h, 0.0011);
	prom_observe(&h, -1); /* clocks apart: the first */
	prom_observe(&h, NAN);
	prom_observe(&h, 61); /* above every bound: +Inf */
	is_int(h.n[0], 3, "0.001, -1 and NaN in the first bucket");
	is_int(h.n[1], 1, "0.0011 in le=0.0025");
	is_int(h.n[PROM_NBUCKETS], 1, "61 s only in +Inf");
	is_int(h.count, 5, "count");
	ok(fabs(h.sum - 61.0021) < 1e-9, "sum %.6f", h.sum);
}

static void
add(void)
{
	struct prom_counts a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.published = 5;
	b.published = 7;
	b.dead = 2;
	b.reconnects_mq = 1;
	prom_observe(&b.latency, 0.02);
	prom_add(&a, &b);
	is_int(a.published, 12, "published adds up");
	is_int(a.dead, 2, "dead adds up");
	is_int(a.reconnects_mq, 1, "reconnects add up");
	is_int(a.latency.n[4], 1, "histogram buckets add up");
	is_int(a.latency.count, 1, "histogram count adds up");
}

static void
render(void)
{
	struct prom_queue q[2];
	char *text = NULL, *line, want[256];
	size_t len = 0, lines = 0;

	memset(q, 0, sizeof(q));
	q[0].queue = "orders";
	q[0].c.published = 3;
	q[0].c.retried = 1;
	q[0].c.dead = 2;
	q[0].c.batches = 4;
	q[0].c.refused = 5;
	q[0].c.reconnects_pg = 1;
	q[0].up = true;
	q[0].pending = 10;
	q[0].lag = 0.5;
	q[0].tick_age = 1.25;
	q[0].retained = 4096; /* a slot worker's */
	prom_observe(&q[0].c.latency, 0.004);
	prom_observe(&q[0].c.latency, 0.3);
	q[1].queue = "we\"ird\\q\nx";
	q[1].pending = -1; /* unknown: no sample */
	q[1].lag = -1;
	q[1].tick_age = -1;
	q[1].retained = -1; /* a PgQ worker: no sample */
	ok(prom_render(q, 2, &text, &len) == 0, "renders");
	is_int(len, strlen(text), "length without the NUL");
	has_str(text,
		"# HELP mikkoo_events_published_total Events "
		"confirmed by RabbitMQ.\n# TYPE mikkoo_events_published_total "
		"counter\nmikkoo_events_published_total{queue=\"orders\"} 3\n",
		"HELP, TYPE, then the samples");
	has_str(text, "mikkoo_events_retried_total{queue=\"orders\"} 1\n",
		"retried");
	has_str(text,
		"mikkoo_events_dead_lettered_total{queue=\"orders\"} "
		"2\n",
		"dead-lettered");
	has_str(text, "mikkoo_batches_total{queue=\"orders\"} 4\n", "batches");
	has_str(text, "mikkoo_broker_refusals_total{queue=\"orders\"} 5\n",
		"broker refusals");
	has_str(text,
		"mikkoo_reconnects_total{queue=\"orders\","
		"server=\"postgresql\"} 1\nmikkoo_reconnects_total{queue="
		"\"orders\",server=\"rabbitmq\"} 0\n",
		"reconnects by server");
	has_str(text, "mikkoo_pending_events{queue=\"orders\"} 10\n",
		"pending");
	ok(strstr(text, "mikkoo_pending_events{queue=\"we") == NULL,
	   "an unknown gauge has no sample");
	has_str(text, "mikkoo_consumer_lag_seconds{queue=\"orders\"} 0.5\n",
		"lag");
	has_str(text,
		"mikkoo_queue_tick_age_seconds{queue=\"orders\"} "
		"1.25\n",
		"tick age");
	ok(strstr(text, "mikkoo_queue_tick_age_seconds{queue=\"we") == NULL,
	   "an unknown tick age has no sample");
	has_str(text, "mikkoo_worker_up{queue=\"orders\"} 1\n", "up");
	has_str(text, "mikkoo_worker_up{queue=\"we\\\"ird\\\\q\\nx\"} 0\n",
		"label value escaped: quote, backslash, newline");
	has_str(text, "# TYPE mikkoo_delivery_latency_seconds histogram\n",
		"histogram type");
	has_str(text,
		"mikkoo_delivery_latency_seconds_bucket{queue="
		"\"orders\",le=\"0.0025\"} 0\nmikkoo_delivery_latency_seconds_"
		"bucket{queue=\"orders\",le=\"0.005\"} 1\n",
		"buckets are cumulative");
	has_str(text,
		"mikkoo_delivery_latency_seconds_bucket{queue="
		"\"orders\",le=\"0.5\"} 2\n",
		"cumulative to 0.5");
	has_str(text,
		"mikkoo_delivery_latency_seconds_bucket{queue="
		"\"orders\",le=\"+Inf\"} 2\n",
		"+Inf is the count");
	snprintf(want, sizeof(want),
		 "mikkoo_delivery_latency_seconds_sum{"
		 "queue=\"orders\"} %.17g\n",
		 0.004 + 0.3);
	has_str(text, "_sum{queue=\"orders\"} 0.304\n",
		"sum: the shortest text that reads back exactly");
	(void)want;
	has_str(text,
		"mikkoo_delivery_latency_seconds_count{queue="
		"\"orders\"} 2\n",
		"count");
	has_str(text,
		"# TYPE mikkoo_slot_retained_bytes gauge\n"
		"mikkoo_slot_retained_bytes{queue=\"orders\"} 4096\n",
		"a slot's retained WAL, for its worker only");
	ok(text[len - 1] == '\n', "ends with a newline");
	for (line = text; (line = strchr(line, '\n')) != NULL; line++)
		lines++;
	/* 5 counters x (2 + 2) + reconnects 2 + 4 + pending 2 + 1 + lag
	 * 2 + 1 + tick age 2 + 1 + retained 2 + 1 + up 2 + 2 + histogram
	 * 2 + 2 x 18 */
	is_int(lines, 20 + 6 + 3 + 3 + 3 + 3 + 4 + 38,
	       "no line more, none "
	       "less");
	free(text);
	ok(prom_render(q, 0, &text, &len) == 0 && strstr(text, "{") == NULL,
	   "no queues: families without samples");
	free(text);
}

int
main(void)
{
	observe();
	add();
	render();
	return tap_done();
}
