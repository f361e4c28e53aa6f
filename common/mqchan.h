/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mqchan: a tool's own channel on a broker connection, for reading
 * RabbitMQ queues (mikkoo-inspect --amqp-queue and tap, mikkoo-replay
 * --amqp-queue).
 *
 * Owns: channel BROKER_TOOL_CH: passive queue checks, basic.get without
 * acknowledgement, acks, a private tap queue and its consumer, and the
 * close.  Closing the channel is how messages got and not acked go back,
 * marked redelivered.  A classic queue puts them back in their places.
 * A quorum queue (RabbitMQ 3.10) adds one to each one's x-delivery-count
 * and keeps the messages handed back apart from the others: it serves
 * them first, in the order they were handed back, and appends each new
 * hand-back to their end.  So a read that stops while handed-back
 * messages remain would move what it read behind those:
 * mqchan_keep_order reads on (without acknowledging) to the end of them
 * first.  basic.nack or basic.recover with requeue are hand-backs too,
 * one by one, so this module never uses them.
 * Never: prints, knows JSON.
 * Errors: EX_NOINPUT no such queue or exchange, EX_NOPERM access refused,
 * EX_UNAVAILABLE anything else (the connection or channel is gone).
 */
#ifndef MIKKOO_MQCHAN_H
#define MIKKOO_MQCHAN_H

#include <stdbool.h>
#include <stdint.h>

#include <amqp.h>

#include "broker.h"
#include "err.h"

struct mqchan {
	struct broker *b;
	amqp_connection_state_t conn;
	bool open;
	bool last_handed_back; /* the last message got was a quorum
				   queue's handed back one */
};

/* A message got from a queue; release with mq_msg_release. */
struct mq_msg {
	uint64_t tag;
	bool redelivered;
	amqp_bytes_t exchange; /* copies (malloc) */
	amqp_bytes_t routing_key;
	amqp_message_t msg; /* owns its pool and body */
	bool has_msg;
	bool handed_back; /* redelivered, with the
					   x-delivery-count of a quorum
					   queue */
};

void mq_msg_release(struct mq_msg *m);

int mqchan_open(struct mqchan *c, struct broker *b, struct mk_err *e);
/* Close the channel (best effort, bounded by the RPC timeout): messages
 * not acked go back to their places.  Safe to call twice. */
void mqchan_close(struct mqchan *c);

/* Passive queue.declare: the number of ready messages. */
int mqchan_count(struct mqchan *c, const char *queue, uint32_t *ready,
		 struct mk_err *e);

/*
 * Wait (at most ms) until queue has at least n ready messages again
 * after a close, e.g. for a quorum queue, which takes a moment to return
 * them.  Gives up quietly when the time is over.
 */
void mqchan_wait_ready(struct mqchan *c, const char *queue, uint32_t n, int ms);

/* basic.get without ack: 1 with *m filled, 0 when the queue is empty. */
int mqchan_get(struct mqchan *c, const char *queue, struct mq_msg *m,
	       struct mk_err *e);
int mqchan_ack(struct mqchan *c, uint64_t tag, struct mk_err *e);

/*
 * Before closing a read that stopped early: while the last message got
 * was a quorum queue's handed-back one, get (and keep unacknowledged)
 * the next, at most max more, so that the close hands them all back in
 * their order (see above).  Each such message's x-delivery-count grows
 * by one, as a read one's does.  *more counts them.
 */
int mqchan_keep_order(struct mqchan *c, const char *queue, uint32_t max,
		      uint32_t *more, struct mk_err *e);

/* The connection is gone: forget the channel without a close. */
void mqchan_forget(struct mqchan *c);

/*
 * Declare a server-named, exclusive, auto-deleted queue, bind it to
 * exchange with each of keys, and consume from it (manual acks, at most
 * prefetch unacked).  qname receives the queue's name.
 */
int mqchan_tap(struct mqchan *c, const char *exchange, char *const *keys,
	       size_t nkeys, int prefetch, char *qname, size_t qsz,
	       struct mk_err *e);

/* The next message of the tap: 1, 0 when none came within ms, -1. */
int mqchan_next(struct mqchan *c, int ms, struct mq_msg *m, struct mk_err *e);

#endif
