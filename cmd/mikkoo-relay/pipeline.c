/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pipeline: one batch from the source to RabbitMQ: map, publish,
 * confirm, every event given its fate, the settle and the finish.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "ids.h"
#include "log.h"
#include "mono.h"
#include "worker.h"
#include "text.h"

/* ---- test-only fault points ---------------------------------------- */

#ifdef MIKKOO_TEST_HOOKS
/*
 * MIKKOO_FAULT=POINT[:N] kills the worker with SIGKILL at POINT (the
 * N-th time it is reached; the first without N): after_publish,
 * after_confirm, before_finish, after_finish (these three count only
 * batches with events).  With MIKKOO_FAULT_ONCE
 * set to a path, only the process that creates that file dies, so the
 * restarted worker goes on.  Only in test builds (make check-asan): the
 * fault suite proves nothing is lost at each point.
 */
static void
fault_point(const char *point)
{
	static const char *spec;
	static long seen;
	const char *colon;
	size_t len;

	if (spec == NULL)
		spec = getenv("MIKKOO_FAULT") ? getenv("MIKKOO_FAULT") : "";
	colon = strchr(spec, ':');
	len = colon ? (size_t)(colon - spec) : strlen(spec);
	if (len == 0 || strlen(point) != len || strncmp(spec, point, len))
		return;
	if (++seen < (colon ? atol(colon + 1) : 1))
		return;
	if (getenv("MIKKOO_FAULT_ONCE")) {
		int fd = open(getenv("MIKKOO_FAULT_ONCE"),
			      O_CREAT | O_EXCL | O_WRONLY, 0600);

		if (fd < 0)
			return;
		close(fd);
	}
	raise(SIGKILL);
}
#else
#define fault_point(p) ((void)0)
#endif

/* ---- failures ----------------------------------------------------- */

/* The batch's failures so far: stored (settled) or waiting to be. */
static size_t
failures(const struct relay *r)
{
	return r->batch_settled + r->nfail;
}

static void
fail_clear(struct relay *r)
{
	r->nfail = 0;
}

/*
 * Decide a failed event's fate (fate.h) and keep it for the settle.
 * At most FAIL_FLUSH + one chunk of them wait at a time.
 */
static int
event_failed(struct relay *r, long long ev_id, int ev_retry,
	     enum fate_cause cause, const char *why)
{
	const struct mk_worker_config *w = r->w;
	struct fate *f;

	if (r->nfail == r->capfail) {
		size_t cap = r->capfail ? r->capfail * 2 : 256;

		f = realloc(r->fail, cap * sizeof(*f));
		if (f == NULL)
			return mk_err_set(&r->e, EX_OSERR, "out of memory");
		r->fail = f;
		r->capfail = cap;
	}
	f = &r->fail[r->nfail++];
	fate_decide(cause, ev_id, ev_retry, w->max_failures, why, f);
	if (r->batch_failed_logged < FAIL_LOG_MAX) {
		r->batch_failed_logged++;
		if (f->verdict == FATE_DEAD)
			log_warn("ev_id %lld: %s: moved to mikkoo.dead_letter",
				 ev_id, f->reason);
		else
			log_warn("ev_id %lld: %s: retry %d of %d in %ds", ev_id,
				 f->reason, f->attempt, w->max_failures,
				 w->retry_delay);
	}
	if (f->verdict == FATE_DEAD)
		r->cnt.total.dead++;
	else
		r->cnt.total.retried++;
	return 0;
}

static int
settle(struct relay *r)
{
	if (r->nfail == 0)
		return 0;
	if (r->src->ops->settle(r->src, r->fail, r->nfail, &r->e) < 0)
		return -1;
	r->batch_settled += r->nfail;
	fail_clear(r);
	return 0;
}

/*
 * The invariant, checked where the batch would be finished: every event
 * the relay read from PgQ was acked by RabbitMQ (and not returned) or
 * stored by pgq_settle (retried or dead), counted against the events
 * read, with nothing left in flight or waiting.  A violation is a bug:
 * the batch is never finished (it is read again by the next worker) and
 * the worker stops with EX_SOFTWARE.
 */
static bool
accounted(struct relay *r)
{
	if (inflight_count(&r->q) == 0 && r->nfail == 0 &&
	    r->batch_read == r->batch_acked + r->batch_settled)
		return true;
	mk_err_set(&r->e, EX_SOFTWARE,
		   "batch %lld not finished: of %zu "
		   "events read, %zu were confirmed and %zu settled, %zu are "
		   "in flight and %zu wait to be settled (a bug: please "
		   "report it)",
		   r->batch_id, r->batch_read, r->batch_acked, r->batch_settled,
		   inflight_count(&r->q), r->nfail);
	return false;
}

/* ---- holding the line ------------------------------------------- */

/* An event's place in the batch (source.h: rank). */
static long long
rank(const struct relay *r, long long ev_id)
{
	return r->src->ops->rank ? r->src->ops->rank(r->src, ev_id) : ev_id;
}

/* The oldest event in flight (the ring's head). */
static long long
head_ev_id(const struct relay *r)
{
	return r->q.s[r->q.head].ev_id;
}

/*
 * Forget the failures of events from `from` on (they are read and
 * decided again) and make the batch's counts say what is known of the
 * events before it.
 */
static void
forget_from(struct relay *r, long long from)
{
	size_t i, kept = 0, read;
	long long at = rank(r, from);

	for (i = 0; i < r->nfail; i++) {
		struct fate *f = &r->fail[i];

		if (rank(r, f->ev_id) < at) {
			r->fail[kept++] = *f;
			continue;
		}
		if (f->verdict == FATE_DEAD)
			r->cnt.total.dead--;
		else
			r->cnt.total.retried--;
	}
	r->nfail = kept;
	read = r->batch_acked + r->batch_settled + r->nfail;
	r->cnt.total.events -= (long long)(r->batch_read - read);
	r->batch_read = read;
}

/*
 * RabbitMQ refused, not for the event's sake: hold the line from event
 * `from` (see struct hold).  A batch that already settled failures in
 * its transaction (over FAIL_FLUSH of them) cannot be held (the rollback
 * would lose them): it is abandoned, the connection renewed, and the
 * batch read again from its start, which keeps the order too.
 */
static enum step
hold_from(struct relay *r, long long from, bool lost, const char *why)
{
	struct hold *h = &r->hold;
	size_t i, ahead = 0;
	long long at = rank(r, from);

	if (r->batch_settled > 0) {
		/* and a new connection: a fresh channel */
		mk_err_set(&r->e, EX_UNAVAILABLE, "%s", why);
		r->mq_broken = true;
		return STEP_ERROR;
	}
	/* Confirmed behind the refused one: a queue that took it and
	 * refused the earlier one has them out of order (a reject-publish
	 * queue drained at that moment).  Say so. */
	for (i = 0; i < r->q.count; i++) {
		const struct inflight_slot *sl =
			&r->q.s[(r->q.head + i) % r->q.cap];

		if (rank(r, sl->ev_id) > at && inflight_slot_acked(sl))
			ahead++;
	}
	if (ahead > 0 && !lost)
		log_warn("%zu events after ev_id %lld were confirmed although "
			 "it was refused: a queue that took them before it "
			 "has them out of order",
			 ahead, from);
	forget_from(r, from);
	if (!h->on || h->batch_id != r->batch_id)
		h->attempts = 0;
	h->on = true;
	h->batch_id = r->batch_id;
	h->from = from;
	h->lost = lost;
	h->attempts++;
	text_copy(h->why, sizeof(h->why), why);
	if (h->since == 0) {
		h->since = now_mono();
		h->logged_at = h->since;
		h->pause = HOLD_PAUSE_MIN;
		r->cnt.total.refused++;
		log_warn("%s (%s): holding the line: publishing again in "
			 "order from ev_id %lld, nothing goes to PgQ's retry "
			 "queue",
			 lost ? "RabbitMQ connection lost mid-batch"
			      : "RabbitMQ refuses publishes",
			 why, from);
	} else {
		r->cnt.total.refused++;
		if (now_mono() - h->logged_at >= HOLD_LOG_EVERY) {
			h->logged_at = now_mono();
			log_warn(
				"RabbitMQ still %s after %.0f s (%lld "
				"attempts; %s): holding the line at ev_id %lld",
				lost ? "lost" : "refuses publishes",
				now_mono() - h->since, h->attempts, why, from);
		} else {
			log_debug("refused again (%s): from ev_id %lld", why,
				  from);
		}
	}
	if (r->failed_at == 0)
		r->failed_at = now_mono();
	r->win = 1;
	if (lost)
		r->mq_broken = true;
	return STEP_HOLD;
}

/* The hold is over (the batch finished) or void (another batch came). */
void
pipeline_hold_end(struct relay *r)
{
	r->hold.on = false;
	r->hold.since = 0;
	r->hold.attempts = 0;
}

/* ---- confirms ----------------------------------------------------- */

/* When RabbitMQ last showed progress: the confirm deadline's start. */
static void
progress(struct relay *r)
{
	r->last_progress = now_mono();
}

/* The oldest entry makes room: the list only has to outlive a batch. */
static void
poison_add(struct relay *r, long long ev_id, const char *why)
{
	size_t i = r->npoison;

	if (i == POISON_MAX) {
		memmove(&r->poison[0], &r->poison[1],
			sizeof(r->poison[0]) * (POISON_MAX - 1));
		i = POISON_MAX - 1;
	} else {
		r->npoison++;
	}
	r->poison[i].ev_id = ev_id;
	text_copy(r->poison[i].why, sizeof(r->poison[i].why), why);
}

/* Was ev_id returned unreadably?  Then it is taken out, *why its words. */
static bool
poison_take(struct relay *r, long long ev_id, char *why, size_t sz)
{
	size_t i;

	for (i = 0; i < r->npoison; i++) {
		if (r->poison[i].ev_id != ev_id)
			continue;
		text_copy(why, sz, r->poison[i].why);
		memmove(&r->poison[i], &r->poison[i + 1],
			sizeof(r->poison[0]) * (r->npoison - i - 1));
		r->npoison--;
		return true;
	}
	return false;
}

void
pipeline_on_broker(void *arg, const struct broker_ev *ev)
{
	struct relay *r = arg;
	char why[INFLIGHT_REASON_MAX];

	/* anything RabbitMQ says is a sign of life: the confirm deadline
	 * (await) counts from here; so does an unblocked connection, whose
	 * blocked time was no silence */
	progress(r);
	switch (ev->kind) {
	case BROKER_BLOCKED:
		log_warn("RabbitMQ blocked publishing (%s): waiting", ev->text);
		status_set(r, REPORT_BLOCKED, ev->text);
		break;
	case BROKER_UNBLOCKED:
		log_info("RabbitMQ unblocked publishing");
		status_set(r, REPORT_RELAYING, NULL);
		break;
	case BROKER_ACK:
		inflight_ack(&r->q, ev->tag, ev->multiple);
		break;
	case BROKER_NACK:
		inflight_nack(&r->q, ev->tag, ev->multiple,
			      "nacked by RabbitMQ");
		if (!r->refused)
			text_copy(r->refusal, sizeof(r->refusal),
				  "nacked by "
				  "RabbitMQ: a queue refused it (full with "
				  "reject-publish, or a quorum queue without "
				  "a leader)");
		r->refused = true;
		break;
	case BROKER_RETURN: {
		long long id;

		snprintf(why, sizeof(why), "returned by RabbitMQ: %s%s",
			 ev->text,
			 ev->unreadable ? " (rabbitmq-c could not "
					  "read the returned message)"
					: "");
		if (!inflight_return_match(&r->q, ev->ev_id,
					   inflight_route(ev->exchange.bytes,
							  ev->exchange.len,
							  ev->routing_key.bytes,
							  ev->routing_key.len),
					   why, &id))
			log_warn("a returned message matches no event in "
				 "flight (event_id %lld): %s",
				 ev->ev_id, ev->text);
		else if (ev->unreadable)
			poison_add(r, id, why);
		break;
	}
	case BROKER_CHANNEL_CLOSED:
		snprintf(why, sizeof(why), "channel closed by RabbitMQ: %s",
			 ev->text);
		log_warn("%s: %zu unconfirmed events", why,
			 inflight_pending(&r->q));
		r->close_code = ev->code;
		r->close_pending = inflight_pending(&r->q);
		inflight_fail_all(&r->q, why);
		if (!r->refused)
			text_copy(r->refusal, sizeof(r->refusal), why);
		r->refused = true;
		break;
	}
}

/* ev_time is the database's clock: compare it with the wall clock. */
static double
now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A channel closed over a publish (access refused, a missing exchange, a
 * message RabbitMQ will not take) with only that one unconfirmed is that
 * event's doing: it gets its fate.  With more unconfirmed the culprit is
 * not known: the line is held and they go again one at a time.
 */
static bool
closed_for_event(const struct relay *r)
{
	return r->close_pending == 1 &&
	       (r->close_code == 403 || r->close_code == 404 ||
		r->close_code == 406);
}

/* Hand resolved events their fate, oldest first. */
static enum step
drain_done(struct relay *r)
{
	struct inflight_done d;
	double now = now_wall(); /* the confirms came in this poll */

	while (inflight_pop(&r->q, &d)) {
		if (d.ok) {
			r->batch_acked++;
			r->cnt.total.published++;
			if (r->win < (size_t)r->w->window)
				r->win++; /* one more per confirm */
			if (d.ev_time_us > 0)
				counters_latency(&r->cnt,
						 now - (double)d.ev_time_us /
								 1e6);
			if (r->failed_at > 0) {
				/* the time a failover cost, as seen here */
				log_info("relaying again: first publish "
					 "confirmed %.1f s after the failure",
					 now_mono() - r->failed_at);
				r->failed_at = 0;
				status_set(r, REPORT_RELAYING, NULL);
			}
			continue;
		}
		if (d.cause == FATE_NACKED ||
		    (d.cause == FATE_CHANNEL_CLOSED && !closed_for_event(r)))
			return hold_from(r, d.ev_id, false,
					 d.cause == FATE_NACKED ? r->refusal
								: d.reason);
		if (event_failed(r, d.ev_id, d.ev_retry, d.cause, d.reason) < 0)
			return STEP_ERROR;
	}
	return STEP_OK;
}

/*
 * A refusal came (r->refused): publish nothing more, and hold the line
 * from the oldest event not settled in order.
 */
static enum step
refused_now(struct relay *r)
{
	enum step st = drain_done(r);

	if (st != STEP_OK)
		return st;
	if (inflight_count(&r->q) == 0) {
		r->refused = false; /* all confirmed after all */
		return STEP_OK;
	}
	return hold_from(r, head_ev_id(r), false, r->refusal);
}

/*
 * The RabbitMQ connection failed: hold the line from the oldest event
 * not confirmed (the next node, or this one again, gets them), unless
 * the batch cannot be held (hold_from).
 */
static enum step
broker_failed(struct relay *r)
{
	long long from;
	char why[sizeof(r->e.msg)];

	r->mq_broken = true;
	snprintf(why, sizeof(why), "%s", r->e.msg);
	if (drain_done(r) == STEP_HOLD) {
		r->hold.lost = true; /* a nack came first; the connection
					   is gone too */
		return STEP_HOLD;
	}
	if (inflight_count(&r->q) > 0)
		from = head_ev_id(r);
	else if (r->cur_ev_id >= 0)
		from = r->cur_ev_id;
	else
		from = r->last_read + 1;
	return hold_from(r, from, true, why);
}

/*
 * Blocked past the deadline with other nodes to try: give this one up.
 * (RabbitMQ's memory and disk alarms block a whole cluster, so another
 * node may block too; a node that is unwell on its own does not.)  With
 * one node there is nowhere to go: wait for the alarm to clear.
 */
static bool
blocked_too_long(struct relay *r)
{
	double since = broker_blocked_since(r->mq);

	if (r->w->nnodes < 2 || since == 0 ||
	    now_mono() - since <= CONFIRM_TIMEOUT)
		return false;
	mk_err_set(&r->e, EX_UNAVAILABLE,
		   "RabbitMQ '%s' has blocked "
		   "publishing for over %.0f s (%s): trying another node",
		   status_node(r), CONFIRM_TIMEOUT,
		   broker_blocked_reason(r->mq));
	return true;
}

static enum step
poll_broker(struct relay *r, int timeout_ms)
{
	if (broker_poll(r->mq, timeout_ms, pipeline_on_broker, r, &r->e) < 0)
		return broker_failed(r);
	if (r->refused)
		return refused_now(r);
	return drain_done(r);
}

/* Conditions to wait for (await). */
static bool
fewer_pending(struct relay *r, size_t want)
{
	return inflight_pending(&r->q) <= want && !inflight_full(&r->q);
}

static bool
unblocked(struct relay *r, size_t unused)
{
	(void)unused;
	return !broker_blocked(r->mq);
}

/*
 * The pipeline's one wait: poll RabbitMQ until done(r, arg), checking on
 * each turn for a stop that is due, a node blocked for too long (with
 * others to go to), and silence past the confirm deadline (a blocked
 * connection is not silent: it said so).
 */
static enum step
await(struct relay *r, bool (*done)(struct relay *, size_t), size_t arg)
{
	enum step st;

	while (!done(r, arg)) {
		if ((st = poll_broker(r, 200)) != STEP_OK)
			return st;
		/* a slot's stream is kept alive while we wait (source.h) */
		if (r->src->ops->service &&
		    r->src->ops->service(r->src, &r->e) < 0)
			return STEP_ERROR;
		if (done(r, arg))
			break;
		status_stats(r, false);
		if (status_stop_now(r))
			return STEP_STOP;
		if (blocked_too_long(r))
			return broker_failed(r);
		if (!broker_blocked(r->mq) &&
		    now_mono() - r->last_progress > CONFIRM_TIMEOUT) {
			mk_err_set(&r->e, EX_UNAVAILABLE,
				   "no publisher "
				   "confirm from RabbitMQ for %.0f s",
				   CONFIRM_TIMEOUT);
			return broker_failed(r);
		}
	}
	return STEP_OK;
}

/* Wait until at most want events are unresolved (0: all). */
static enum step
wait_confirms(struct relay *r, size_t want)
{
	return await(r, fewer_pending, want);
}

/* Every publish confirmed, and a refusal among them held (refused_now). */
static enum step
all_confirmed(struct relay *r)
{
	enum step st = wait_confirms(r, 0);

	if (st == STEP_OK && r->refused)
		st = refused_now(r);
	return st;
}

/* ---- one event ---------------------------------------------------- */

static enum step
failed_step(struct relay *r, const struct mk_event *ev, enum fate_cause cause,
	    const char *why)
{
	r->cur_ev_id = -1;
	return event_failed(r, ev->ev_id, ev->ev_retry, cause, why) < 0
		       ? STEP_ERROR
		       : STEP_OK;
}

static enum step
relay_event(struct relay *r, const struct mk_event *ev, unsigned *since_poll)
{
	struct mk_err me;
	char why[256], reason[INFLIGHT_REASON_MAX];
	bool exists;
	uint64_t tag;
	enum step rc;

	r->cnt.total.events++;
	r->cur_ev_id = ev->ev_id;
	/* its return could not be read last time: its fate, without
	 * losing the connection over it again */
	if (r->npoison > 0 && poison_take(r, ev->ev_id, reason, sizeof(reason)))
		return failed_step(r, ev, FATE_RETURNED, reason);
	r->ctx.sequence = ids_sequence();
	ids_uuid4(r->ctx.correlation_id);
	if (event_map(ev, &r->ctx, &r->msg, &me) < 0)
		return failed_step(r, ev, FATE_BAD_DATA, me.msg);

	if (broker_exchange_exists(r->mq, r->msg.exchange, &exists, why,
				   sizeof(why), &r->e) < 0)
		return broker_failed(r);
	if (!exists) {
		snprintf(reason, sizeof(reason),
			 "exchange '%.*s' cannot be "
			 "published to: %s",
			 (int)r->msg.exchange.len,
			 (const char *)r->msg.exchange.bytes, why);
		return failed_step(r, ev, FATE_EXCHANGE_REFUSED, reason);
	}

	if ((rc = await(r, unblocked, 0)) != STEP_OK)
		return rc;
	/* after a refusal one in flight, then one more per confirm */
	if (inflight_count(&r->q) >= r->win || inflight_full(&r->q)) {
		rc = wait_confirms(r, r->win > 1 ? r->win - 1 : 0);
		if (rc != STEP_OK)
			return rc;
	}
	/* nothing more once RabbitMQ refused (unless nothing is left to
	 * hold: a channel closed with nothing in flight) */
	if (r->refused && (rc = refused_now(r)) != STEP_OK)
		return rc;
	if (broker_publish(r->mq, &r->msg, &tag, &r->e) < 0)
		return r->e.code == EX_DATAERR
			       ? failed_step(r, ev, FATE_BAD_DATA, r->e.msg)
			       : broker_failed(r);
	fault_point("after_publish");
	if (inflight_pending(&r->q) == 0)
		progress(r); /* the first to wait for a confirm */
	inflight_add(&r->q, tag, ev->ev_id, ev->ev_retry);
	inflight_set_time(&r->q, ev->ev_time_us);
	inflight_set_route(&r->q, inflight_route(r->msg.exchange.bytes,
						 r->msg.exchange.len,
						 r->msg.routing_key.bytes,
						 r->msg.routing_key.len));
	r->cur_ev_id = -1;
	if (++*since_poll >= POLL_EVERY) {
		*since_poll = 0;
		return poll_broker(r, 0);
	}
	return STEP_OK;
}

/* ---- one batch ---------------------------------------------------- */

static void
batch_abandon(struct relay *r)
{
	r->src->ops->abandon(r->src);
	inflight_clear(&r->q);
	fail_clear(r);
	pipeline_hold_end(r);
}

/*
 * Open the batch PgQ hands out: from its start, or, when it is the held
 * one, from the event the hold starts at, keeping what is known of the
 * events before it.
 */
static int
batch_open(struct relay *r)
{
	long long from = 0;

	if (r->hold.on && r->hold.batch_id == r->batch_id) {
		from = r->hold.from;
	} else {
		if (r->hold.on)
			pipeline_hold_end(r); /* not ours any more */
		fail_clear(r);
		r->batch_failed_logged = 0;
		r->batch_read = r->batch_acked = r->batch_settled = 0;
		r->win = (size_t)r->w->window;
	}
	r->refused = false;
	r->cur_ev_id = -1;
	r->last_read = from > 0 ? from - 1 : 0;
	inflight_clear(&r->q);
	return r->src->ops->open(r->src, r->batch_id, r->w->max_event_bytes,
				 from, &r->e);
}

enum batch_result
pipeline_batch(struct relay *r)
{
	const struct mk_worker_config *w = r->w;
	struct mk_event ev;
	unsigned since_poll = 0;
	long long before;
	bool had_events;
	enum step st;

	if (r->src->ops->next(r->src, &r->batch_id, &r->e) < 0)
		return BATCH_FAILED;
	if (r->batch_id < 0) {
		if (r->hold.on)
			pipeline_hold_end(r);
		return BATCH_NONE;
	}
	if (batch_open(r) < 0) {
		if (!r->hold.on)
			fail_clear(r);
		return BATCH_FAILED;
	}
	before = r->cnt.total.events - (long long)r->batch_read;
	log_set_context("queue '%s' batch %lld", w->queue, r->batch_id);

	for (;;) {
		enum source_fetch f = r->src->ops->fetch(r->src, &ev, &r->e);

		if (f == SOURCE_ERROR)
			goto fail;
		if (f == SOURCE_DONE)
			break;
		if (f == SOURCE_PAUSE) {
			if (r->nfail < FAIL_FLUSH)
				continue;
			/* Settle only what no refusal can send back to be
			 * read again: nothing in flight (hold_from). */
			if ((st = all_confirmed(r)) != STEP_OK)
				goto not_ok;
			if (settle(r) < 0)
				goto settle_failed;
			continue;
		}
		r->batch_read++;
		r->last_read = ev.ev_id;
		st = relay_event(r, &ev, &since_poll);
		if (st == STEP_OK && status_stop_now(r))
			st = STEP_STOP;
		if (st != STEP_OK)
			goto not_ok;
	}
	if ((st = all_confirmed(r)) != STEP_OK)
		goto not_ok;
	had_events = r->cnt.total.events > before;
	if (had_events)
		fault_point("after_confirm");
	if ((st = drain_done(r)) != STEP_OK)
		goto not_ok;
	if (settle(r) < 0)
		goto settle_failed;
	if (!accounted(r))
		goto broken;
	if (had_events)
		fault_point("before_finish");
	if (r->src->ops->finish(r->src, &r->e) < 0)
		goto fail;
	if (had_events)
		fault_point("after_finish");
	pipeline_hold_end(r);
	r->cnt.total.batches++;
	if (failures(r) > r->batch_failed_logged)
		log_warn("%zu more failed events in this batch (not logged "
			 "one by one)",
			 failures(r) - r->batch_failed_logged);
	if (had_events)
		log_debug("finished: %lld events, %zu failed",
			  r->cnt.total.events - before, failures(r));
	log_set_context("queue '%s'", w->queue);
	return BATCH_FINISHED;
not_ok:
	if (st == STEP_HOLD)
		goto held;
	if (st == STEP_STOP)
		goto stopped;
	goto fail;
held:
	/* Nothing finished, nothing retried: read again from hold.from. */
	r->src->ops->abandon(r->src);
	inflight_clear(&r->q);
	r->refused = false;
	log_set_context("queue '%s'", w->queue);
	return BATCH_HELD;
stopped:
	log_info("stop requested: batch abandoned unfinished; PgQ will hand "
		 "it out again");
	batch_abandon(r);
	log_set_context("queue '%s'", w->queue);
	return BATCH_STOPPED;
settle_failed:
	/* pgq_settle's own count did not match (or an SQL error without a
	 * class of its own): never go on as if it had */
	if (r->e.code == EX_SOFTWARE)
		goto broken;
fail:
	batch_abandon(r);
	log_set_context("queue '%s'", w->queue);
	return BATCH_FAILED;
broken:
	batch_abandon(r);
	log_set_context("queue '%s'", w->queue);
	return BATCH_BROKEN;
}
