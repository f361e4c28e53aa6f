/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for inflight: confirm bookkeeping against a naive model. */
#include <stdlib.h>
#include <string.h>

#include "inflight.h"
#include "tap.h"

static void
basics(void)
{
	struct inflight q;
	struct inflight_done d;

	inflight_init(&q, 4);
	inflight_add(&q, 1, 100, 0);
	inflight_add(&q, 2, 101, 0);
	inflight_add(&q, 3, 102, 3);
	is_int(inflight_pending(&q), 3, "three pending");
	is_int(inflight_pop(&q, &d), 0, "nothing resolved, nothing pops");
	inflight_ack(&q, 2, false);
	is_int(inflight_pop(&q, &d), 0, "out-of-order ack waits for head");
	inflight_ack(&q, 1, false);
	ok(inflight_pop(&q, &d) && d.ok && d.ev_id == 100, "head pops ok");
	ok(inflight_pop(&q, &d) && d.ok && d.ev_id == 101, "then the next");
	ok(inflight_return(&q, 102, "returned by RabbitMQ: 312 NO_ROUTE"),
	   "return matched by ev_id");
	inflight_ack(&q, 3, false);
	ok(inflight_pop(&q, &d) && !d.ok && d.ev_retry == 3,
	   "returned then acked is a failure");
	is_str(d.reason, "returned by RabbitMQ: 312 NO_ROUTE", "reason kept");
	ok(d.cause == FATE_RETURNED, "a return's cause, though acked after");
	ok(!inflight_return(&q, 999, "x"), "stray return not matched");

	inflight_add(&q, 4, 103, 0);
	inflight_add(&q, 5, 104, 0);
	inflight_add(&q, 6, 105, 0);
	inflight_add(&q, 7, 106, 0);
	ok(inflight_full(&q), "full at capacity");
	inflight_nack(&q, 5, true, "nacked by RabbitMQ");
	ok(inflight_pop(&q, &d) && !d.ok && d.ev_id == 103, "multiple nack 1");
	ok(inflight_pop(&q, &d) && !d.ok && d.ev_id == 104, "multiple nack 2");
	is_str(d.reason, "nacked by RabbitMQ", "nack reason");
	ok(d.cause == FATE_NACKED, "a nack's cause");
	inflight_fail_all(&q, "channel closed by RabbitMQ: 404 NOT_FOUND");
	is_int(inflight_pending(&q), 0, "channel close resolves all");
	/* tags restart at 1 on the new channel while old slots remain */
	inflight_add(&q, 1, 107, 0);
	inflight_ack(&q, 1, true);
	ok(inflight_pop(&q, &d) && !d.ok && d.ev_id == 105, "old gen failed");
	ok(d.cause == FATE_CHANNEL_CLOSED, "a channel close's cause");
	ok(inflight_pop(&q, &d) && !d.ok && d.ev_id == 106, "old gen failed 2");
	ok(inflight_pop(&q, &d) && d.ok && d.ev_id == 107,
	   "new generation's tag 1 acked, not confused with old tag 1");
	is_int(inflight_count(&q), 0, "empty");
	inflight_release(&q);
}

/* The model: arrays indexed by publish order, O(n) everything. */
struct model {
	long long ev[4096];
	unsigned long long tag[4096];
	int gen[4096];
	int state[4096]; /* 0 pending 1 ok 2 failed */
	int returned[4096];
	int n, head, curgen;
};

static void
randomized(unsigned seed)
{
	struct inflight q;
	static struct model m;
	struct inflight_done d;
	unsigned long long next_tag = 1;
	long long next_ev = 1;
	int step, bad = 0, i;

	srand(seed);
	memset(&m, 0, sizeof(m));
	inflight_init(&q, 16);
	for (step = 0; step < 3000 && m.n < 4000; step++) {
		int op = rand() % 10;

		if (op < 4 && !inflight_full(&q)) {
			inflight_add(&q, next_tag, next_ev, 0);
			m.ev[m.n] = next_ev++;
			m.tag[m.n] = next_tag++;
			m.gen[m.n] = m.curgen;
			m.n++;
		} else if (op < 7 && next_tag > 1) {
			unsigned long long t =
				1 + (unsigned)rand() % (next_tag - 1);
			bool mult = rand() % 2;
			bool ack = rand() % 5 != 0;

			if (ack)
				inflight_ack(&q, t, mult);
			else
				inflight_nack(&q, t, mult, "nack");
			for (i = m.head; i < m.n; i++)
				if (m.gen[i] == m.curgen && m.state[i] == 0 &&
				    (m.tag[i] == t || (mult && m.tag[i] < t)))
					m.state[i] =
						ack && !m.returned[i] ? 1 : 2;
		} else if (op < 8 && m.n > m.head) {
			int k = m.head + rand() % (m.n - m.head);
			bool hit = inflight_return(&q, m.ev[k], "ret");
			bool want = m.state[k] == 0 && m.gen[k] == m.curgen &&
				    !m.returned[k];

			if (hit != want)
				bad++;
			if (want)
				m.returned[k] = 1;
		} else if (op < 9 && rand() % 8 == 0) {
			inflight_fail_all(&q, "closed");
			for (i = m.head; i < m.n; i++)
				if (m.state[i] == 0)
					m.state[i] = 2;
			m.curgen++;
			next_tag = 1;
		} else {
			while (inflight_pop(&q, &d)) {
				if (m.head >= m.n || m.state[m.head] == 0 ||
				    d.ev_id != m.ev[m.head] ||
				    d.ok != (m.state[m.head] == 1))
					bad++;
				m.head++;
			}
			if (m.head < m.n && m.state[m.head] != 0)
				bad++;
		}
	}
	ok(bad == 0, "randomized against the model (seed %u): %d mismatches",
	   seed, bad);
	inflight_release(&q);
}

/* Returns matched without trusting what a producer controls. */
static void
matching(void)
{
	struct inflight q;
	struct inflight_done d;
	uint64_t ra = inflight_route("ex", 2, "a", 1);
	uint64_t rb = inflight_route("ex", 2, "b", 1);
	long long got = 0;

	ok(ra != rb && inflight_route("e", 1, "xa", 2) != ra,
	   "routes differ by exchange and key, not by their concatenation");
	inflight_init(&q, 8);
	inflight_add(&q, 1, 200, 0);
	inflight_set_route(&q, ra);
	inflight_add(&q, 2, 201, 0);
	inflight_set_route(&q, rb);
	inflight_add(&q, 3, 202, 0);
	inflight_set_route(&q, rb);
	ok(inflight_return_match(&q, 202, rb, "ret", &got) && got == 202,
	   "event_id and route: that event");
	ok(inflight_return_match(&q, 200, rb, "guess", &got) && got == 201,
	   "an event_id whose route differs is not trusted: the oldest "
	   "pending event with the route");
	ok(!inflight_return_match(&q, -1, rb, "again", &got),
	   "each event is returned once");
	ok(inflight_return_match(&q, -1, ra, "unreadable", &got) && got == 200,
	   "unreadable (no event_id): by the route");
	inflight_ack(&q, 3, true);
	ok(inflight_pop(&q, &d) && !d.ok && d.ev_id == 200 &&
		   strcmp(d.reason, "unreadable") == 0,
	   "returned, then acked: failed");
	ok(inflight_pop(&q, &d) && !d.ok && d.cause == FATE_RETURNED &&
		   strcmp(d.reason, "guess") == 0,
	   "the guessed one failed");
	ok(inflight_pop(&q, &d) && !d.ok && d.ev_id == 202, "the matched one");
	inflight_release(&q);
}

int
main(void)
{
	unsigned s;

	basics();
	matching();
	for (s = 1; s <= 50; s++)
		randomized(s);
	return tap_done();
}
