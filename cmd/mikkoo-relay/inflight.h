/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * inflight: the window of published events waiting for their confirm.
 *
 * Owns: a ring of at most cap slots in publish order, each with its
 * delivery tag, ev_id, ev_retry and outcome.  Pure bookkeeping: no I/O.
 * Rules (RabbitMQ publisher confirms):
 *   - an ack resolves its tag (or every tag up to it when multiple);
 *     an event is delivered only if acked and not returned before;
 *   - a nack fails its tag(s);
 *   - a basic.return (matched by ev_id: it carries no tag) marks the
 *     event failed; its ack, which follows, does not undo that;
 *   - a channel close fails every unresolved slot, and delivery tags
 *     start again at 1 on the new channel (a new generation).
 * Events leave in publish order through inflight_pop once resolved, so
 * the caller sees outcomes in ev_id order.  Acks cost O(1) amortized.
 */
#ifndef MIKKOO_INFLIGHT_H
#define MIKKOO_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fate.h"

/* The longest failure reason a slot keeps (text_copy cuts it). */
#define INFLIGHT_REASON_MAX 200

/* A failure's words, counted: one copy for every slot it failed. */
struct inflight_why {
	unsigned refs;
	char text[];
};

/*
 * A slot's outcome, one value: still pending; returned and waiting for
 * its ack (which does not undo the return); or resolved, as an enum
 * fate_cause (FATE_ACKED: delivered).
 */
#define INFLIGHT_PENDING (-2)
#define INFLIGHT_RETURNED (-1)

struct inflight_slot {
	uint64_t tag;
	long long ev_id;
	long long ev_time_us; /* for the latency histogram; 0 unknown */
	uint64_t route;       /* inflight_route of its exchange and key */
	struct inflight_why *reason; /* a failure's words, shared by the
				   slots one nack or close failed; NULL
				   while it has none: slots that succeed
				   cost nothing for it */
	unsigned gen;
	int ev_retry;
	signed char outcome; /* INFLIGHT_PENDING, INFLIGHT_RETURNED or
				   an enum fate_cause */
};

struct inflight {
	struct inflight_slot *s;
	size_t cap;
	size_t head; /* oldest slot */
	size_t count;
	unsigned gen;
	size_t gen_start; /* ring offset (from head) of this gen's
				   first slot; valid while gen_count > 0 */
	size_t gen_count; /* slots of the current generation */
	uint64_t gen_tag; /* tag of this gen's first slot */
	uint64_t floor;   /* every tag <= floor of this gen resolved */
	size_t pending;   /* unresolved slots */
	struct inflight_why *popped; /* the last popped slot's reason, let
				   go at the next pop (inflight_done
				   borrows its text) */
};

struct inflight_done {
	long long ev_id;
	int ev_retry;
	long long ev_time_us;
	bool ok; /* cause == FATE_ACKED */
	enum fate_cause cause;
	const char *reason; /* borrowed until the next call */
};

int inflight_init(struct inflight *q, size_t cap);
void inflight_release(struct inflight *q);
/* Forget everything (after a connection loss the batch is abandoned). */
void inflight_clear(struct inflight *q);

static inline bool
inflight_full(const struct inflight *q)
{
	return q->count == q->cap;
}

/* Unresolved publishes. */
static inline size_t
inflight_pending(const struct inflight *q)
{
	return q->pending;
}

static inline size_t
inflight_count(const struct inflight *q)
{
	return q->count;
}

/* A publish with delivery tag tag; the caller checks inflight_full. */
void
inflight_add(struct inflight *q, uint64_t tag, long long ev_id, int ev_retry);
/* The event time of the slot just added (for its latency at confirm). */
void inflight_set_time(struct inflight *q, long long ev_time_us);
/* The route of the slot just added (inflight_route; 0 by default). */
void inflight_set_route(struct inflight *q, uint64_t route);

/* A 64-bit hash of an exchange and a routing key. */
uint64_t
inflight_route(const void *exchange, size_t xlen, const void *key, size_t klen);
void inflight_ack(struct inflight *q, uint64_t tag, bool multiple);
void inflight_nack(struct inflight *q, uint64_t tag, bool multiple,
		   const char *reason);
/* false when no pending slot has that ev_id (a stray return). */
bool inflight_return(struct inflight *q, long long ev_id, const char *reason);

/*
 * A basic.return, matched without trusting what a producer controls:
 * the pending, not yet returned slot of the current generation with
 * our event_id header's value and the return's route; when there is
 * none (ev_id < 0: the header could not be read), the oldest such slot
 * with that route.  RabbitMQ returns in publish order, before the
 * return's ack, so the oldest is the likeliest and a wrong guess costs
 * an innocent event one retry, never a loss.  *matched is the slot's
 * ev_id; false when nothing matches.
 */
bool inflight_return_match(struct inflight *q, long long ev_id, uint64_t route,
			   const char *reason, long long *matched);
void inflight_fail_all(struct inflight *q, const char *reason);

/* Delivered (and not returned)? */
static inline bool
inflight_slot_acked(const struct inflight_slot *s)
{
	return s->outcome == FATE_ACKED;
}

/* 1 and *d when the oldest slot is resolved (and removed), else 0. */
int inflight_pop(struct inflight *q, struct inflight_done *d);

#endif
