/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resurrect: RabbitMQ dead letters back to where they first died
 * (mikkoo-replay --amqp-queue).
 *
 * Owns: the resurrection of one dead-letter queue.  Messages are read one
 * at a time with basic.get and not acknowledged; each selected one is
 * published, body and properties unchanged but for the death headers
 * (common/delivery.h death_strip), to the exchange of its first death
 * with its original routing key (and its CC keys), mandatory, on the
 * confirm-mode channel, and acknowledged in the dead-letter queue only
 * after RabbitMQ confirmed it without returning it.  A message that is
 * returned (unroutable), nacked (e.g. a reject-publish limit), refused
 * with a channel error (a missing exchange, access refused), not
 * confirmed in time, not a dead letter, or not selected by the filters
 * is not acknowledged: closing the channel at the end puts it back in
 * its place in the dead-letter queue.  One message is in flight at a
 * time, so a return is always the current message's.  When the node is
 * lost mid-run, resurrect_main goes on from the next one (tool.h): the
 * unacknowledged messages went back and are read again there, and acks
 * are only ever sent on the connection that got the message, after its
 * copy was confirmed there.
 * Never: acknowledges a message that was not confirmed; prints anything
 * but result records on out.
 */
#ifndef MIKKOO_REPLAY_RESURRECT_H
#define MIKKOO_REPLAY_RESURRECT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "broker.h"
#include "err.h"
#include "tool.h"

struct resurrect_opts {
	const char *queue;       /* the dead-letter queue */
	const char *routing_key; /* only messages first routed so */
	const char *reason;      /* only this first-death reason */
	long limit;              /* at most this many selected; 0 all */
	bool to_queue;           /* via the default exchange to the
					   queue of the first death */
	bool dry_run;
	double timeout; /* seconds to wait for a confirm */
};

struct resurrect_stats {
	long read;        /* messages read from the queue */
	long resurrected; /* confirmed and acked (dry run: would be) */
	long stayed;      /* selected but left in the queue */
	long skipped;     /* not selected by the filters */
	uint32_t ready0;  /* the queue's count at the start */
	bool lost;        /* the run failed with its connection */
	bool timed_out;   /* no confirm within the timeout */
};

/*
 * Resurrect; records go to out; st accumulates over runs (zero it
 * before the first).  -1 stops the run: the connection is gone
 * (st->lost: the caller may go on from another node, calling again), a
 * confirm did not come in time (EX_UNAVAILABLE, st->timed_out), the
 * queue is missing (EX_NOINPUT), or out failed (EX_IOERR).  A run that
 * stops early on a quorum queue reads on through the messages handed
 * back before (mqchan_keep_order), so what stays keeps its order.
 */
int resurrect_run(struct broker *b, const struct resurrect_opts *o, FILE *out,
		  struct resurrect_stats *st, struct mk_err *e);

/* Connect as the tool says, resurrect, log the summary; the exit
 * status: 65 when a selected message stayed in the queue. */
int resurrect_main(struct tool_conn *t, const struct resurrect_opts *o);

#endif
