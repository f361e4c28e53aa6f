/* SPDX-License-Identifier: BSD-3-Clause */
/* mqchan: a tool's channel for reading RabbitMQ queues. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqchan.h"

#define CH BROKER_TOOL_CH

void
mq_msg_release(struct mq_msg *m)
{
	amqp_bytes_free(m->exchange);
	amqp_bytes_free(m->routing_key);
	m->exchange = amqp_empty_bytes;
	m->routing_key = amqp_empty_bytes;
	if (m->has_msg)
		amqp_destroy_message(&m->msg);
	m->has_msg = false;
}

/*
 * An RPC reply that is not the expected one.  A channel close for a
 * missing queue or exchange (404) is EX_NOINPUT naming it; everything
 * else takes broker's mapping.  Either way the server's close has been
 * answered and the channel is gone.
 */
static int
reply_error(struct mqchan *c, amqp_rpc_reply_t r, const char *what,
	    const char *kind, const char *name, struct mk_err *e)
{
	bool missing = false;

	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
		missing =
			((amqp_channel_close_t *)r.reply.decoded)->reply_code ==
			404;
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		c->open = false;
	broker_rpc_error(c->b, r, CH, what, e);
	if (missing)
		return mk_err_set(e, EX_NOINPUT, "no RabbitMQ %s '%s' on '%s'",
				  kind, name, broker_display(c->b));
	return mk_err_prefix(e, "RabbitMQ '%s'", broker_display(c->b));
}

int
mqchan_open(struct mqchan *c, struct broker *b, struct mk_err *e)
{
	amqp_rpc_reply_t r;

	c->b = b;
	c->conn = broker_conn(b);
	if (c->open)
		return 0;
	amqp_channel_open(c->conn, CH);
	r = amqp_get_rpc_reply(c->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return reply_error(c, r, "opening a channel", "", "", e);
	c->open = true;
	return 0;
}

void
mqchan_close(struct mqchan *c)
{
	c->last_handed_back = false;
	if (!c->open)
		return;
	c->open = false;
	(void)amqp_channel_close(broker_conn(c->b), CH, AMQP_REPLY_SUCCESS);
}

int
mqchan_count(struct mqchan *c, const char *queue, uint32_t *ready,
	     struct mk_err *e)
{
	amqp_queue_declare_ok_t *ok;
	amqp_rpc_reply_t r;

	if (mqchan_open(c, c->b, e) < 0)
		return -1;
	ok = amqp_queue_declare(c->conn, CH, amqp_cstring_bytes(queue), 1, 0, 0,
				0, amqp_empty_table);
	r = amqp_get_rpc_reply(c->conn);
	if (ok == NULL || r.reply_type != AMQP_RESPONSE_NORMAL)
		return reply_error(c, r, "checking the queue", "queue", queue,
				   e);
	*ready = ok->message_count;
	return 0;
}

void
mqchan_wait_ready(struct mqchan *c, const char *queue, uint32_t n, int ms)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	struct mk_err e;
	uint32_t ready;
	int waited;

	for (waited = 0; waited <= ms; waited += 20) {
		if (mqchan_count(c, queue, &ready, &e) < 0 || ready >= n)
			return;
		nanosleep(&ts, NULL);
	}
}

/* Does the message carry a quorum queue's x-delivery-count? */
static bool
has_delivery_count(const amqp_basic_properties_t *p)
{
	int i;

	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return false;
	for (i = 0; i < p->headers.num_entries; i++) {
		amqp_bytes_t k = p->headers.entries[i].key;

		if (k.len == 16 && memcmp(k.bytes, "x-delivery-count", 16) == 0)
			return true;
	}
	return false;
}

static amqp_bytes_t
dup_bytes(amqp_bytes_t b)
{
	return b.len ? amqp_bytes_malloc_dup(b) : amqp_empty_bytes;
}

int
mqchan_get(struct mqchan *c, const char *queue, struct mq_msg *m,
	   struct mk_err *e)
{
	amqp_basic_get_ok_t *ok;
	amqp_rpc_reply_t r;

	memset(m, 0, sizeof(*m));
	if (mqchan_open(c, c->b, e) < 0)
		return -1;
	amqp_maybe_release_buffers_on_channel(c->conn, CH);
	r = amqp_basic_get(c->conn, CH, amqp_cstring_bytes(queue), 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return reply_error(c, r, "basic.get", "queue", queue, e);
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
		c->last_handed_back = false;
		return 0;
	}
	ok = r.reply.decoded;
	m->tag = ok->delivery_tag;
	m->redelivered = ok->redelivered;
	m->exchange = dup_bytes(ok->exchange);
	m->routing_key = dup_bytes(ok->routing_key);
	if ((ok->exchange.len && m->exchange.bytes == NULL) ||
	    (ok->routing_key.len && m->routing_key.bytes == NULL)) {
		mq_msg_release(m);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	r = amqp_read_message(c->conn, CH, &m->msg, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		mq_msg_release(m);
		return reply_error(c, r, "reading a message", "queue", queue,
				   e);
	}
	m->has_msg = true;
	m->handed_back =
		m->redelivered && has_delivery_count(&m->msg.properties);
	c->last_handed_back = m->handed_back;
	return 1;
}

int
mqchan_keep_order(struct mqchan *c, const char *queue, uint32_t max,
		  uint32_t *more, struct mk_err *e)
{
	struct mq_msg m;
	int got;

	*more = 0;
	while (c->open && c->last_handed_back && *more < max) {
		got = mqchan_get(c, queue, &m, e);
		if (got < 0)
			return -1;
		if (got == 0)
			break;
		mq_msg_release(&m);
		(*more)++;
	}
	return 0;
}

void
mqchan_forget(struct mqchan *c)
{
	c->open = false;
	c->last_handed_back = false;
}

int
mqchan_ack(struct mqchan *c, uint64_t tag, struct mk_err *e)
{
	if (amqp_basic_ack(broker_conn(c->b), CH, tag, 0) != AMQP_STATUS_OK) {
		broker_note_lost(c->b);
		return mk_err_set(e, EX_UNAVAILABLE,
				  "RabbitMQ '%s': cannot "
				  "acknowledge",
				  broker_display(c->b));
	}
	return 0;
}

int
mqchan_tap(struct mqchan *c, const char *exchange, char *const *keys,
	   size_t nkeys, int prefetch, char *qname, size_t qsz,
	   struct mk_err *e)
{
	amqp_queue_declare_ok_t *ok;
	amqp_bytes_t q;
	amqp_rpc_reply_t r;
	size_t i;

	if (mqchan_open(c, c->b, e) < 0)
		return -1;
	/* Exclusive: gone with our connection, whatever happens to us. */
	ok = amqp_queue_declare(c->conn, CH, amqp_empty_bytes, 0, 0, 1, 1,
				amqp_empty_table);
	r = amqp_get_rpc_reply(c->conn);
	if (ok == NULL || r.reply_type != AMQP_RESPONSE_NORMAL)
		return reply_error(c, r, "declaring the tap queue", "queue", "",
				   e);
	snprintf(qname, qsz, "%.*s", (int)ok->queue.len,
		 (const char *)ok->queue.bytes);
	q = amqp_cstring_bytes(qname);
	for (i = 0; i < nkeys; i++) {
		amqp_queue_bind(c->conn, CH, q, amqp_cstring_bytes(exchange),
				amqp_cstring_bytes(keys[i]), amqp_empty_table);
		r = amqp_get_rpc_reply(c->conn);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			return reply_error(c, r, "queue.bind", "exchange",
					   exchange, e);
	}
	amqp_basic_qos(c->conn, CH, 0, (uint16_t)prefetch, 0);
	r = amqp_get_rpc_reply(c->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return reply_error(c, r, "basic.qos", "queue", qname, e);
	amqp_basic_consume(c->conn, CH, q, amqp_empty_bytes, 0, 0, 1,
			   amqp_empty_table);
	r = amqp_get_rpc_reply(c->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return reply_error(c, r, "basic.consume", "queue", qname, e);
	return 0;
}

/* A frame that is not a delivery arrived while consuming. */
static int
other_frame(struct mqchan *c, struct mk_err *e)
{
	struct timeval tv = { 0, 0 };
	amqp_frame_t f;
	char txt[512];
	int st;

	st = amqp_simple_wait_frame_noblock(c->conn, &f, &tv);
	if (st == AMQP_STATUS_TIMEOUT)
		return 0;
	if (st != AMQP_STATUS_OK) {
		broker_note_lost(c->b);
		return mk_err_set(e, EX_UNAVAILABLE, "RabbitMQ '%s': %s",
				  broker_display(c->b), amqp_error_string2(st));
	}
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *cl = f.payload.method.decoded;
		amqp_channel_close_ok_t cok;

		snprintf(txt, sizeof(txt), "%u %.*s", cl->reply_code,
			 (int)cl->reply_text.len,
			 (const char *)cl->reply_text.bytes);
		amqp_send_method(c->conn, f.channel,
				 AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
		if (f.channel != CH)
			return 0;
		c->open = false;
		return mk_err_set(e, EX_UNAVAILABLE,
				  "RabbitMQ '%s': channel "
				  "closed by RabbitMQ: %s",
				  broker_display(c->b), txt);
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *cl = f.payload.method.decoded;
		amqp_connection_close_ok_t cok;

		snprintf(txt, sizeof(txt), "%u %.*s", cl->reply_code,
			 (int)cl->reply_text.len,
			 (const char *)cl->reply_text.bytes);
		amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
				 &cok);
		c->open = false;
		if (cl->reply_code == 320 || cl->reply_code == 541)
			broker_note_lost(c->b);
		return mk_err_set(e, EX_UNAVAILABLE,
				  "connection closed by "
				  "RabbitMQ '%s': %s",
				  broker_display(c->b), txt);
	}
	case AMQP_BASIC_CANCEL_METHOD:
		return mk_err_set(e, EX_UNAVAILABLE,
				  "RabbitMQ '%s' cancelled "
				  "the tap (was its queue deleted?)",
				  broker_display(c->b));
	default:
		return 0;
	}
}

int
mqchan_next(struct mqchan *c, int ms, struct mq_msg *m, struct mk_err *e)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	amqp_envelope_t env;
	amqp_rpc_reply_t r;

	memset(m, 0, sizeof(*m));
	amqp_maybe_release_buffers(c->conn);
	r = amqp_consume_message(c->conn, &env, &tv, 0);
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_TIMEOUT)
		return 0;
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
		return other_frame(c, e) < 0 ? -1 : 0;
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		broker_note_lost(c->b);
		return mk_err_set(
			e, EX_UNAVAILABLE, "RabbitMQ '%s': %s",
			broker_display(c->b),
			r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
				? amqp_error_string2(r.library_error)
				: "unexpected reply while consuming");
	}
	m->tag = env.delivery_tag;
	m->redelivered = env.redelivered;
	/* The envelope's strings are malloc'd copies: take them. */
	m->exchange = env.exchange;
	m->routing_key = env.routing_key;
	m->msg = env.message;
	m->has_msg = true;
	amqp_bytes_free(env.consumer_tag);
	return 1;
}
