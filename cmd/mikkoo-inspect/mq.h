/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mq: the RabbitMQ side of mikkoo-inspect: peek at a queue (--amqp-queue)
 * and tap an exchange (tap -e).  Records are common/delivery.h's.
 *
 * Peek reads with basic.get without acknowledging and ends by closing
 * the channel, which puts every message back in its place (see
 * common/mqchan.h for what RabbitMQ does to them; on a quorum queue a
 * peek that stops early reads on through the messages handed back
 * before, unless stop_at_limit).  Tap binds a private queue (exclusive,
 * auto-deleted) and prints what flows until stopped.  Both stop on
 * SIGINT/SIGTERM, and when the reader of their output goes away
 * (EPIPE): neither is an error.  When their RabbitMQ node is lost
 * mid-run both go on from the next node (tool.h, tool_mq): a peek
 * starts again from the front of the queue (what it printed may come
 * again), a tap binds a new queue (what was routed meanwhile is not
 * seen).
 */
#ifndef MIKKOO_INSPECT_MQ_H
#define MIKKOO_INSPECT_MQ_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "broker.h"
#include "err.h"
#include "mqchan.h"
#include "tool.h"

struct mq_view_opts {
	const char *queue;    /* peek: --amqp-queue */
	const char *exchange; /* tap: -e */
	char **keys;          /* tap: -k (none: "#") */
	size_t nkeys;
	long limit;         /* 0: no limit */
	double seconds;     /* tap: 0 until stopped */
	bool stop_at_limit; /* peek: no reading on (mqchan.h) */
};

/* Add a -k binding key (o->keys borrows optarg); -1 out of memory. */
int mq_add_key(struct mq_view_opts *o, const char *key);

/*
 * Are the options a peek or a tap?  view: a PgQ view was named; pgq:
 * PgQ-only options were given.  NULL, or what is wrong (a usage error).
 */
const char *
mq_usage(const struct mq_view_opts *o, bool tap, bool view, bool pgq);

/* Connect as the tool says, run the peek or the tap, log the outcome;
 * returns the exit status. */
int mq_inspect(struct tool_conn *t, const struct mq_view_opts *o, bool tap);

/* Peek: at most o->limit messages, and never more than the queue held
 * when it started (so a busy queue cannot keep it going). */
int peek_run(struct broker *b, const struct mq_view_opts *o, FILE *out,
	     long *count, struct mk_err *e);

/* Tap: ready(queue) is called once bound and consuming. */
int tap_run(struct broker *b, const struct mq_view_opts *o, FILE *out,
	    void (*ready)(const char *queue, const struct mq_view_opts *o),
	    long *count, struct mk_err *e);

/* m's record (common/delivery.h); queue is NULL for a tap.  A new
 * reference, NULL only when memory ran out. */
json_t *mq_record(const char *queue, const struct mq_msg *m);

/*
 * Write rec as a JSON line and drop the reference: 1 written, 0 the
 * reader is gone (EPIPE: the rest of the buffer is dropped so the exit
 * is clean), -1 another write error (left for jsonl_finish to report).
 */
int mq_emit(FILE *out, json_t *rec);

#endif
