/* SPDX-License-Identifier: BSD-3-Clause */
/* inflight: publisher-confirm bookkeeping for a window of publishes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inflight.h"
#include "text.h"

int
inflight_init(struct inflight *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->s = calloc(cap, sizeof(*q->s));
	if (q->s == NULL)
		return -1;
	q->cap = cap;
	return 0;
}

static struct inflight_slot *
at(struct inflight *q, size_t i)
{
	return &q->s[(q->head + i) % q->cap];
}

static struct inflight_why *
why_new(const char *reason)
{
	char buf[INFLIGHT_REASON_MAX];
	struct inflight_why *w;
	size_t n;

	text_copy(buf, sizeof(buf), reason);
	n = strlen(buf) + 1;
	w = malloc(sizeof(*w) + n);
	if (w) { /* NULL: the pop says "unknown" */
		w->refs = 1;
		memcpy(w->text, buf, n);
	}
	return w;
}

static void
why_put(struct inflight_why *w)
{
	if (w && --w->refs == 0)
		free(w);
}

static void
forget_reasons(struct inflight *q)
{
	size_t i;

	for (i = 0; i < q->count; i++) {
		why_put(at(q, i)->reason);
		at(q, i)->reason = NULL;
	}
	why_put(q->popped);
	q->popped = NULL;
}

void
inflight_release(struct inflight *q)
{
	forget_reasons(q);
	free(q->s);
	memset(q, 0, sizeof(*q));
}

void
inflight_clear(struct inflight *q)
{
	forget_reasons(q);
	q->head = q->count = q->gen_count = q->pending = 0;
	q->floor = 0;
	q->gen++;
}

/* Give s reason w (a slot keeps the first one it is given). */
static void
keep_reason(struct inflight_slot *s, struct inflight_why *w)
{
	if (s->reason || w == NULL)
		return;
	w->refs++;
	s->reason = w;
}

void
inflight_add(struct inflight *q, uint64_t tag, long long ev_id, int ev_retry)
{
	struct inflight_slot *s;

	if (q->gen_count == 0) {
		q->gen_start = q->count;
		q->gen_tag = tag;
		q->floor = tag - 1;
	}
	s = at(q, q->count);
	s->tag = tag;
	s->ev_id = ev_id;
	s->ev_retry = ev_retry;
	s->ev_time_us = 0;
	s->route = 0;
	s->gen = q->gen;
	s->outcome = INFLIGHT_PENDING;
	s->reason = NULL;
	q->count++;
	q->gen_count++;
	q->pending++;
}

/* The slot of tag in the current generation, or NULL. */
static struct inflight_slot *
by_tag(struct inflight *q, uint64_t tag)
{
	uint64_t off;

	if (q->gen_count == 0 || tag < q->gen_tag)
		return NULL;
	off = tag - q->gen_tag;
	if (off >= q->gen_count)
		return NULL;
	return at(q, q->gen_start + (size_t)off);
}

static bool
unresolved(const struct inflight_slot *s)
{
	return s->outcome == INFLIGHT_PENDING ||
	       s->outcome == INFLIGHT_RETURNED;
}

static void
resolve(struct inflight *q, struct inflight_slot *s, enum fate_cause cause,
	struct inflight_why *reason)
{
	if (!unresolved(s))
		return;
	if (s->outcome == INFLIGHT_RETURNED)
		cause = FATE_RETURNED; /* returned, then acked: not delivered */
	else if (cause != FATE_ACKED)
		keep_reason(s, reason);
	s->outcome = (signed char)cause;
	q->pending--;
}

static void
settle(struct inflight *q, uint64_t tag, bool multiple, enum fate_cause cause,
       struct inflight_why *reason)
{
	struct inflight_slot *s;
	uint64_t t;

	if (!multiple) {
		s = by_tag(q, tag);
		if (s)
			resolve(q, s, cause, reason);
		return;
	}
	/*
	 * Everything up to tag; the floor makes repeated multiples cheap.
	 * Slots below gen_tag were popped, so they are resolved too.
	 */
	t = q->floor + 1 > q->gen_tag ? q->floor + 1 : q->gen_tag;
	for (; t <= tag; t++) {
		s = by_tag(q, t);
		if (s == NULL)
			break;
		resolve(q, s, cause, reason);
	}
	if (tag > q->floor)
		q->floor = tag;
}

void
inflight_ack(struct inflight *q, uint64_t tag, bool multiple)
{
	settle(q, tag, multiple, FATE_ACKED, NULL);
}

void
inflight_nack(struct inflight *q, uint64_t tag, bool multiple,
	      const char *reason)
{
	struct inflight_why *w = why_new(reason);

	settle(q, tag, multiple, FATE_NACKED, w);
	why_put(w);
}

bool
inflight_return(struct inflight *q, long long ev_id, const char *reason)
{
	size_t i;

	for (i = 0; i < q->count; i++) {
		struct inflight_slot *s = at(q, i);

		if (s->ev_id == ev_id && s->outcome == INFLIGHT_PENDING &&
		    s->gen == q->gen) {
			struct inflight_why *w = why_new(reason);

			s->outcome = INFLIGHT_RETURNED;
			keep_reason(s, w);
			why_put(w);
			return true;
		}
	}
	return false;
}

static bool
returnable(const struct inflight *q, const struct inflight_slot *s)
{
	return s->outcome == INFLIGHT_PENDING && s->gen == q->gen;
}

bool
inflight_return_match(struct inflight *q, long long ev_id, uint64_t route,
		      const char *reason, long long *matched)
{
	struct inflight_slot *hit = NULL, *s;
	struct inflight_why *w;
	size_t i;

	for (i = 0; ev_id >= 0 && hit == NULL && i < q->count; i++) {
		s = at(q, i);
		if (returnable(q, s) && s->ev_id == ev_id && s->route == route)
			hit = s;
	}
	for (i = 0; hit == NULL && i < q->count; i++) {
		s = at(q, i);
		if (returnable(q, s) && s->route == route)
			hit = s;
	}
	if (hit == NULL)
		return false;
	w = why_new(reason);
	hit->outcome = INFLIGHT_RETURNED;
	keep_reason(hit, w);
	why_put(w);
	*matched = hit->ev_id;
	return true;
}

/* Eight bytes a step: every publish pays for it, returns are rare. */
static uint64_t
mix(uint64_t h, const void *s, size_t n)
{
	const unsigned char *p = s;
	uint64_t w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	for (; n > 0; p++, n--)
		h = (h ^ *p) * 0x100000001b3ULL;
	return h;
}

uint64_t
inflight_route(const void *exchange, size_t xlen, const void *key, size_t klen)
{
	/* the lengths go in: "ab" + "c" is not "a" + "bc" */
	return mix(mix(0x6d696b6b6f6fULL ^ xlen, exchange, xlen) ^
			   (uint64_t)klen << 32,
		   key, klen);
}

void
inflight_fail_all(struct inflight *q, const char *reason)
{
	struct inflight_why *w = why_new(reason);
	size_t i;

	for (i = 0; i < q->count; i++)
		resolve(q, at(q, i), FATE_CHANNEL_CLOSED, w);
	why_put(w);
	q->gen++;
	q->gen_count = 0;
}

int
inflight_pop(struct inflight *q, struct inflight_done *d)
{
	struct inflight_slot *s;

	if (q->count == 0)
		return 0;
	s = at(q, 0);
	if (unresolved(s))
		return 0;
	why_put(q->popped);
	q->popped = s->reason; /* borrowed by d until the next pop */
	s->reason = NULL;
	d->ev_id = s->ev_id;
	d->ev_retry = s->ev_retry;
	d->ev_time_us = s->ev_time_us;
	d->ok = inflight_slot_acked(s);
	d->cause = (enum fate_cause)s->outcome;
	d->reason = q->popped ? q->popped->text : d->ok ? "" : "unknown";
	q->head = (q->head + 1) % q->cap;
	q->count--;
	if (s->gen == q->gen) {
		/* The oldest slot of the current generation (gen_start is 0
		 * then: an older generation never follows a newer one). */
		q->gen_count--;
		q->gen_tag++;
	} else if (q->gen_start > 0) {
		q->gen_start--;
	}
	return 1;
}

void
inflight_set_time(struct inflight *q, long long ev_time_us)
{
	if (q->count > 0)
		q->s[(q->head + q->count - 1) % q->cap].ev_time_us = ev_time_us;
}

void
inflight_set_route(struct inflight *q, uint64_t route)
{
	if (q->count > 0)
		q->s[(q->head + q->count - 1) % q->cap].route = route;
}
