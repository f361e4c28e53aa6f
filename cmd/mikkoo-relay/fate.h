/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fate: what becomes of one event, as a pure function.
 *
 * Owns: the policy.  An event RabbitMQ acked (and did not return) is
 * published.  Bad data and an oversized event can never become a
 * message: dead at once.  A refusal (return, a closed channel, an
 * exchange that cannot be published to) is retried through PgQ until the
 * event has failed max_failures + 1 times (ev_retry counts its earlier
 * failures), then dead.  A nack, a channel closed over several publishes
 * or a lost connection say nothing about the event: the relay holds the
 * line for them (relay_int.h, struct hold) and never asks here; asked
 * anyway, a nack is a refusal like the others.  struct fate is what
 * pgq_settle stores; its reason is always safe text (text.h: valid
 * UTF-8, every control and bidi character escaped, never cut inside a
 * character), whatever bytes the broker or the event put in it.
 * Never: does I/O, logs, allocates.
 */
#ifndef MIKKOO_FATE_H
#define MIKKOO_FATE_H

#include <stdbool.h>

/* Room for a refusal's text and the attempt suffix. */
#define FATE_REASON_MAX 384

enum fate_cause {
	FATE_ACKED,            /* confirmed and not returned */
	FATE_NACKED,           /* basic.nack */
	FATE_RETURNED,         /* basic.return (unroutable), then acked */
	FATE_CHANNEL_CLOSED,   /* the channel closed before its confirm */
	FATE_EXCHANGE_REFUSED, /* the exchange probe said no (404, 403) */
	FATE_BAD_DATA,         /* cannot be mapped to a message (over
				   max_event_bytes too: event.c) */
};

enum fate_verdict {
	FATE_PUBLISHED,
	FATE_RETRY, /* pgq retry, ev_retry + 1 */
	FATE_DEAD,  /* into mikkoo.dead_letter */
};

struct fate {
	long long ev_id;
	enum fate_verdict verdict;
	int attempt;                  /* which failure this is: ev_retry + 1 */
	char reason[FATE_REASON_MAX]; /* "" when published */
};

/*
 * Decide for event ev_id with ev_retry earlier failures, given cause and
 * why (the broker's words, or what is wrong with the data; ignored when
 * acked).  Fills *f and returns its verdict.  A dead refusal's reason
 * says so: "... (attempt 11, max_failures 10)".
 */
enum fate_verdict
fate_decide(enum fate_cause cause, long long ev_id, int ev_retry,
	    int max_failures, const char *why, struct fate *f);

/* "published", "retry", "dead" */
const char *fate_verdict_name(enum fate_verdict v);

#endif
