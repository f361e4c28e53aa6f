/* SPDX-License-Identifier: BSD-3-Clause */
/* resurrect: RabbitMQ dead letters re-published with confirms, then acked. */
#include <errno.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "text.h"
#include "event.h"
#include "jsonl.h"
#include "log.h"
#include "mono.h"
#include "mqchan.h"
#include "resurrect.h"
#include "sig.h"

/* What RabbitMQ said about the one message in flight. */
struct wait {
	uint64_t tag;
	bool done, acked, returned, closed, timed_out;
	char why[600];
};

static void
on_broker(void *arg, const struct broker_ev *ev)
{
	struct wait *w = arg;

	switch (ev->kind) {
	case BROKER_ACK:
	case BROKER_NACK:
		if (ev->tag == w->tag || (ev->multiple && ev->tag > w->tag)) {
			w->done = true;
			w->acked = ev->kind == BROKER_ACK;
			if (!w->acked)
				snprintf(w->why, sizeof(w->why),
					 "nacked by "
					 "RabbitMQ (a queue refused it: a "
					 "reject-publish length limit?)");
		}
		break;
	case BROKER_RETURN:
		/* basic.return comes before the ack of the same publish. */
		w->returned = true;
		snprintf(w->why, sizeof(w->why), "returned by RabbitMQ: %s",
			 ev->text);
		break;
	case BROKER_CHANNEL_CLOSED:
		w->done = true;
		w->closed = true;
		snprintf(w->why, sizeof(w->why),
			 "channel closed by RabbitMQ: "
			 "%s",
			 ev->text);
		break;
	case BROKER_BLOCKED: /* the wait's deadline covers it */
	case BROKER_UNBLOCKED:
		break;
	}
}

static json_t *
bytes_json(amqp_bytes_t b)
{
	/* Names RabbitMQ gave back are UTF-8; a bad one shows as null. */
	json_t *j = text_utf8_ok(b.bytes, b.len)
			    ? json_stringn(b.len ? b.bytes : "", b.len)
			    : NULL;

	return j ? j : json_null();
}

static bool
bytes_is(amqp_bytes_t b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

/* The record's fixed part: where the message came from and goes to. */
static json_t *
record(const char *queue, const amqp_basic_properties_t *p,
       const struct death *d, bool dead, amqp_bytes_t ex, amqp_bytes_t rk,
       const amqp_array_t *cc)
{
	json_t *o = json_object(), *a;
	int i;

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "queue", json_string(queue));
	json_object_set_new(o, "message_id",
			    (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
				    ? bytes_json(p->message_id)
				    : json_null());
	json_object_set_new(o, "death_queue",
			    dead ? bytes_json(d->queue) : json_null());
	json_object_set_new(o, "death_reason",
			    dead ? bytes_json(d->reason) : json_null());
	json_object_set_new(o, "exchange", dead ? bytes_json(ex) : json_null());
	json_object_set_new(o, "routing_key",
			    dead ? bytes_json(rk) : json_null());
	if (cc && cc->num_entries > 0) {
		a = json_array();
		for (i = 0; a && i < cc->num_entries; i++)
			json_array_append_new(
				a, bytes_json(cc->entries[i].value.bytes));
		json_object_set_new(o, "cc", a);
	}
	return o;
}

static int
emit(FILE *out, json_t *rec, const char *result, const char *why,
     struct mk_err *e)
{
	if (rec == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	json_object_set_new(rec, "result", json_string(result));
	if (why)
		/* the broker's words: text.h's rule, never a lost member */
		json_object_set_new(rec, "error", text_json(why, strlen(why)));
	errno = 0;
	jsonl_write(out, rec);
	json_decref(rec);
	fflush(out);
	/* The records are the account of what happened: without them,
	 * stop (the rest stays in the queue). */
	if (!ferror(out))
		return 0;
	if (errno == EPIPE) {
		/* head(1) has what it wanted: stop, as mikkoo-inspect
		 * does, and it is not a failure of ours */
		__fpurge(out);
		clearerr(out);
		return 1;
	}
	return mk_err_set(e, EX_IOERR, "writing output failed: %s",
			  strerror(errno ? errno : EIO));
}

/*
 * Publish and wait for the verdict.  1 confirmed and routed, 0 refused
 * (w->why says how), -1 no verdict: the connection is gone or the
 * timeout passed (EX_UNAVAILABLE).
 */
static int
publish(struct broker *b, const struct mk_message *msg, double timeout,
	struct wait *w, struct mk_err *e)
{
	double deadline = now_mono() + timeout;

	memset(w, 0, sizeof(*w));
	if (broker_publish(b, msg, &w->tag, e) < 0)
		return -1;
	while (!w->done) {
		if (now_mono() >= deadline) {
			w->timed_out = true;
			mk_err_set(e, EX_UNAVAILABLE,
				   "RabbitMQ '%s' did not "
				   "confirm a publish within %g s%s%s",
				   broker_display(b), timeout,
				   broker_blocked(b) ? ": publishing is "
						       "blocked: "
						     : "",
				   broker_blocked(b) ? broker_blocked_reason(b)
						     : "");
			snprintf(w->why, sizeof(w->why), "%s", e->msg);
			return -1;
		}
		if (broker_poll(b, 100, on_broker, w, e) < 0) {
			snprintf(w->why, sizeof(w->why), "%s", e->msg);
			return -1;
		}
	}
	return w->acked && !w->returned ? 1 : 0;
}

/* One message got from the queue: resurrect it or say why not. */
static int
one(struct broker *b, struct mqchan *c, const struct resurrect_opts *o,
    struct mq_msg *m, amqp_pool_t *pool, FILE *out, struct resurrect_stats *st,
    struct mk_err *e)
{
	const amqp_basic_properties_t *p = &m->msg.properties;
	const amqp_array_t *cc = NULL;
	amqp_array_t rest;
	struct mk_message msg;
	struct death d;
	struct wait w;
	char why[300];
	bool exists;
	json_t *rec;
	int dead, rc;

	dead = death_first(p, &d);
	if (dead && ((o->reason && !bytes_is(d.reason, o->reason)) ||
		     (o->routing_key && !death_has_key(&d, o->routing_key)))) {
		st->skipped++;
		return 0;
	}
	if (!dead && (o->reason || o->routing_key)) {
		st->skipped++;
		return 0;
	}
	memset(&msg, 0, sizeof(msg));
	if (dead && o->to_queue) {
		msg.exchange = amqp_empty_bytes;
		msg.routing_key = d.queue;
	} else if (dead) {
		msg.exchange = d.exchange;
		msg.routing_key = d.keys->entries[0].value.bytes;
		rest.num_entries = d.keys->num_entries - 1;
		rest.entries = d.keys->entries + 1;
		cc = &rest;
	}
	rec = record(o->queue, p, &d, dead, msg.exchange, msg.routing_key, cc);
	if (!dead) {
		st->stayed++;
		return emit(out, rec, "not_a_dead_letter",
			    "no x-death header: "
			    "where it died is unknown",
			    e);
	}
	if (o->dry_run) {
		st->resurrected++;
		return emit(out, rec, "would_resurrect", NULL, e);
	}
	recycle_amqp_pool(pool);
	msg.body = m->msg.body;
	if (death_strip(p, cc, o->to_queue, pool, &msg.props) < 0) {
		json_decref(rec);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	/* A missing exchange would close the publishing channel: ask on
	 * the probe channel first (the channel close is handled anyway). */
	if (broker_exchange_exists(b, msg.exchange, &exists, why, sizeof(why),
				   e) < 0) {
		json_decref(rec);
		return -1;
	}
	if (!exists) {
		st->stayed++;
		return emit(out, rec, "refused", why, e);
	}
	rc = publish(b, &msg, o->timeout, &w, e);
	if (rc < 0) {
		st->timed_out = w.timed_out;
		/* Not acked: it stays, and may also have been delivered. */
		st->stayed++;
		if (emit(out, rec, "unconfirmed", w.why, NULL) < 0)
			log_error("writing output failed");
		return -1;
	}
	if (rc == 0) {
		st->stayed++;
		return emit(out, rec, w.returned ? "returned" : "refused",
			    w.why, e);
	}
	if (mqchan_ack(c, m->tag, e) < 0) {
		/* Confirmed but still in the queue: a second copy later. */
		st->stayed++;
		if (emit(out, rec, "unacked", e->msg, NULL) < 0)
			log_error("writing output failed");
		return -1;
	}
	st->resurrected++;
	return emit(out, rec, "resurrected", NULL, e);
}

int
resurrect_run(struct broker *b, const struct resurrect_opts *o, FILE *out,
	      struct resurrect_stats *st, struct mk_err *e)
{
	struct mqchan c = { 0 };
	amqp_pool_t pool;
	struct mq_msg m;
	uint32_t ready, bound, more = 0, taken = 0;
	long selected, gone;
	int rc = 0, got;

	/* Passes after a move read again what was not acknowledged: only
	 * the resurrected ones are gone (none in a dry run). */
	if (o->dry_run)
		st->resurrected = 0;
	gone = st->resurrected;
	st->stayed = st->skipped = 0;
	st->lost = st->timed_out = false;
	if (delivery_name_check("queue", o->queue, e) < 0)
		return -1;
	if (mqchan_open(&c, b, e) < 0 ||
	    mqchan_count(&c, o->queue, &ready, e) < 0) {
		st->lost = broker_lost(b);
		return -1;
	}
	/* No more than the queue held at the start: a message that dies
	 * again at once comes back behind them and is left for next time.
	 * One basic.get at least: a stream (its count is 0) or a queue we
	 * may not read then says so.  After a move to another node, no
	 * more than the first node's count less what was resurrected. */
	if (st->ready0 == 0 && gone == 0)
		st->ready0 = ready;
	bound = ready ? ready : 1;
	if (gone > 0 && st->ready0 > (uint32_t)gone &&
	    bound > st->ready0 - (uint32_t)gone)
		bound = st->ready0 - (uint32_t)gone;
	init_amqp_pool(&pool, 4096);
	while (taken < bound && sig_term_count() == 0) {
		selected = st->resurrected + st->stayed;
		if (o->limit > 0 && selected >= o->limit)
			break;
		got = mqchan_get(&c, o->queue, &m, e);
		if (got <= 0) {
			rc = got;
			break;
		}
		st->read++;
		taken++;
		rc = one(b, &c, o, &m, &pool, out, st, e);
		mq_msg_release(&m);
		if (rc < 0)
			break;
		if (rc == 1) {
			/* the reader of our output is gone: the rest stays */
			rc = 0;
			break;
		}
	}
	empty_amqp_pool(&pool);
	/* Everything not acked goes back to its place, with the channel or,
	 * when the connection failed or is blocked, with the connection. */
	if (rc < 0 && e->code == EX_UNAVAILABLE) {
		st->lost = broker_lost(b);
		mqchan_forget(&c);
	}
	/* Stopped early on a quorum queue: read on through the handed-back
	 * ones so that what stays keeps its order (mqchan.h). */
	if (rc == 0 &&
	    mqchan_keep_order(&c, o->queue, bound - taken, &more, e) < 0) {
		rc = -1;
		if (e->code == EX_UNAVAILABLE) {
			st->lost = broker_lost(b);
			mqchan_forget(&c);
		}
	}
	mqchan_close(&c);
	if (rc == 0 && ((long)taken > st->resurrected - gone || o->dry_run)) {
		/* A quorum queue takes a moment to have them ready again. */
		uint32_t left =
			o->dry_run ? 0 : (uint32_t)(st->resurrected - gone);

		mqchan_wait_ready(&c, o->queue, ready > left ? ready - left : 0,
				  2000);
		mqchan_close(&c);
	}
	return rc;
}

int
resurrect_main(struct tool_conn *t, const struct resurrect_opts *o)
{
	struct resurrect_stats st = { 0 };
	struct tool_mq m = { 0 };
	struct mk_err e;
	int rc = 0;

	/* Stops are flags looked at between messages, never in the middle
	 * of one; a closed stdout is a write error, not a death. */
	if (sig_install(false) < 0)
		log_warn("cannot install signal handlers: ^C ends at once");
	if (delivery_name_check("queue", o->queue, &e) < 0 ||
	    tool_setup(t, &e) < 0 ||
	    tool_mq_open(t, "mikkoo-replay", &m, &e) < 0)
		goto fail;
	while (resurrect_run(m.b, o, stdout, &st, &e) < 0) {
		/* The node was lost: go on from the next one.  Messages not
		 * acknowledged went back to the queue and are read again
		 * there (an unconfirmed one may then be published twice). */
		if (st.lost && sig_term_count() == 0 &&
		    tool_mq_move(&m, &e, &e) == 0) {
			log_warn("resurrecting '%s' on: %ld resurrected so "
				 "far; what was read and not resurrected is "
				 "read again",
				 o->queue, st.resurrected);
			continue;
		}
		log_error("%s", e.msg);
		rc = e.code;
		if (st.read == 0 && st.resurrected == 0)
			goto out;
		break;
	}
	if (o->dry_run)
		log_info("would resurrect %ld of %ld message%s read from '%s' "
			 "(dry run: nothing published or acked)",
			 st.resurrected, st.read, st.read == 1 ? "" : "s",
			 o->queue);
	else
		log_info("resurrected %ld of %ld message%s read from '%s'",
			 st.resurrected, st.read, st.read == 1 ? "" : "s",
			 o->queue);
	if (st.stayed)
		log_warn("%ld selected message%s stayed in '%s' (see their "
			 "records)",
			 st.stayed, st.stayed == 1 ? "" : "s", o->queue);
	if (rc == 0 && st.stayed)
		rc = EX_DATAERR;
	goto out;
fail:
	log_error("%s", e.msg);
	rc = e.code;
out:
	tool_mq_close(&m);
	return rc;
}
