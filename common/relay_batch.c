/* SPDX-License-Identifier: BSD-3-Clause */
/* relay_batch: one PgQ batch to RabbitMQ, every event given its fate. */
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
#include "relay_int.h"
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
	r->batch_failed++;
	if (r->batch_failed_logged < FAIL_LOG_MAX) {
		r->batch_failed_logged++;
		if (f->verdict == FATE_DEAD)
			log_warn("ev_id %lld: %s: moved to mikkoo.dead_letter",
				 ev_id, f->reason);
		else if (f->verdict == FATE_REQUEUE)
			log_warn("ev_id %lld: %s: requeued, again in %ds (not "
				 "counted toward max_failures)", ev_id,
				 f->reason, w->retry_delay);
		else
			log_warn("ev_id %lld: %s: retry %d of %d in %ds",
				 ev_id, f->reason, f->attempt,
				 w->max_failures, w->retry_delay);
	}
	if (f->verdict == FATE_DEAD)
		r->cnt.total.dead++;
	else if (f->verdict == FATE_REQUEUE)
		r->cnt.total.requeued++;
	else
		r->cnt.total.retried++;
	return 0;
}

static int
settle(struct relay *r)
{
	if (r->nfail == 0)
		return 0;
	if (pgq_settle(&r->pg, r->batch_id, r->w->queue, r->w->consumer_name,
		       r->w->retry_delay, r->fail, r->nfail, &r->e) < 0)
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
	mk_err_set(&r->e, EX_SOFTWARE, "batch %lld not finished: of %zu "
		   "events read, %zu were confirmed and %zu settled, %zu are "
		   "in flight and %zu wait to be settled (a bug: please "
		   "report it)", r->batch_id, r->batch_read, r->batch_acked,
		   r->batch_settled, inflight_count(&r->q), r->nfail);
	return false;
}

/* ---- confirms ----------------------------------------------------- */

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
relay_on_broker(void *arg, const struct broker_ev *ev)
{
	struct relay *r = arg;
	char why[INFLIGHT_REASON_MAX];

	r->last_progress = now_mono();
	switch (ev->kind) {
	case BROKER_ACK:
		inflight_ack(&r->q, ev->tag, ev->multiple);
		break;
	case BROKER_NACK:
		inflight_nack(&r->q, ev->tag, ev->multiple,
			      "nacked by RabbitMQ");
		break;
	case BROKER_RETURN: {
		long long id;

		snprintf(why, sizeof(why), "returned by RabbitMQ: %s%s",
			 ev->text, ev->unreadable ? " (rabbitmq-c could not "
			 "read the returned message)" : "");
		if (!inflight_return_match(&r->q, ev->ev_id, inflight_route(
				ev->exchange.bytes, ev->exchange.len,
				ev->routing_key.bytes, ev->routing_key.len),
				why, &id))
			log_warn("a returned message matches no event in "
				 "flight (event_id %lld): %s", ev->ev_id,
				 ev->text);
		else if (ev->unreadable)
			poison_add(r, id, why);
		break;
	}
	case BROKER_CHANNEL_CLOSED:
		snprintf(why, sizeof(why), "channel closed by RabbitMQ: %s",
			 ev->text);
		log_warn("%s: %zu unconfirmed events failed", why,
			 inflight_pending(&r->q));
		inflight_fail_all(&r->q, why);
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

/* Hand resolved events their fate, oldest first. */
static int
drain_done(struct relay *r)
{
	struct inflight_done d;
	double now = now_wall();        /* the confirms came in this poll */

	while (inflight_pop(&r->q, &d)) {
		if (d.ok) {
			r->batch_acked++;
			r->cnt.total.published++;
			if (d.ev_time_us > 0)
				counters_latency(&r->cnt, now -
						 (double)d.ev_time_us / 1e6);
			if (r->failed_at > 0) {
				/* the time a failover cost, as seen here */
				log_info("relaying again: first publish "
					 "confirmed %.1f s after the failure",
					 now_mono() - r->failed_at);
				r->failed_at = 0;
			}
			continue;
		}
		if (event_failed(r, d.ev_id, d.ev_retry, d.cause, d.reason) < 0)
			return -1;
	}
	return 0;
}

static int
broker_failed(struct relay *r)
{
	r->mq_broken = true;
	return STEP_ERROR;
}

/*
 * connection.blocked may arrive while we wait for confirms as well as
 * before a publish: say so once per change, wherever it is seen.
 */
static void
note_blocked(struct relay *r)
{
	if (broker_blocked(r->mq) && r->blocked_since == 0) {
		log_warn("RabbitMQ blocked publishing (%s): waiting",
			 broker_blocked_reason(r->mq));
		r->blocked_since = now_mono();
	} else if (!broker_blocked(r->mq) && r->blocked_since > 0) {
		log_info("RabbitMQ unblocked publishing");
		r->blocked_since = 0;
	}
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
	if (r->w->nnodes < 2 || r->blocked_since == 0 ||
	    now_mono() - r->blocked_since <= CONFIRM_TIMEOUT)
		return false;
	mk_err_set(&r->e, EX_UNAVAILABLE, "RabbitMQ '%s' has blocked "
		   "publishing for over %.0f s (%s): trying another node",
		   relay_node_display(r), CONFIRM_TIMEOUT,
		   broker_blocked_reason(r->mq));
	return true;
}

static enum step
poll_broker(struct relay *r, int timeout_ms)
{
	if (broker_poll(r->mq, timeout_ms, relay_on_broker, r, &r->e) < 0)
		return broker_failed(r);
	note_blocked(r);
	return drain_done(r) < 0 ? STEP_ERROR : STEP_OK;
}

/* Wait until fewer than want events are unresolved (0: all). */
static enum step
wait_confirms(struct relay *r, size_t want)
{
	while (inflight_pending(&r->q) > want || inflight_full(&r->q)) {
		if (poll_broker(r, 200) < 0)
			return STEP_ERROR;
		if (inflight_pending(&r->q) <= want && !inflight_full(&r->q))
			break;
		if (broker_blocked(r->mq))
			relay_set_state(r, REPORT_BLOCKED, broker_blocked_reason(r->mq));
		relay_stats(r, false);
		if (relay_stop_now(r))
			return STEP_STOP;
		if (blocked_too_long(r))
			return broker_failed(r);
		if (!broker_blocked(r->mq) &&
		    now_mono() - r->last_progress > CONFIRM_TIMEOUT) {
			mk_err_set(&r->e, EX_UNAVAILABLE, "no publisher "
				   "confirm from RabbitMQ for %.0f s",
				   CONFIRM_TIMEOUT);
			return broker_failed(r);
		}
	}
	return STEP_OK;
}

/* ---- one event ---------------------------------------------------- */

static enum step
failed_step(struct relay *r, const struct mk_event *ev, enum fate_cause cause,
	    const char *why)
{
	return event_failed(r, ev->ev_id, ev->ev_retry, cause, why) < 0
		? STEP_ERROR : STEP_OK;
}

static enum step
relay_event(struct relay *r, const struct mk_event *ev, size_t size,
	    unsigned *since_poll)
{
	const struct mk_worker_config *w = r->w;
	struct mk_err me;
	char why[256], reason[INFLIGHT_REASON_MAX];
	bool exists;
	uint64_t tag;
	enum step rc;

	r->cnt.total.events++;
	if (size > w->max_event_bytes) {
		snprintf(reason, sizeof(reason), "event is %zu bytes, over "
			 "max_event_bytes (%zu)", size, w->max_event_bytes);
		return failed_step(r, ev, FATE_OVERSIZED, reason);
	}
	/* its return could not be read last time: its fate, without
	 * losing the connection over it again */
	if (r->npoison > 0 && poison_take(r, ev->ev_id, reason,
					  sizeof(reason)))
		return failed_step(r, ev, FATE_RETURNED, reason);
	r->ctx.sequence = ids_sequence();
	ids_uuid4(r->ctx.correlation_id);
	if (event_map(ev, &r->ctx, &r->msg, &me) < 0)
		return failed_step(r, ev, FATE_BAD_DATA, me.msg);

	if (broker_exchange_exists(r->mq, r->msg.exchange, &exists, why,
				   sizeof(why), &r->e) < 0)
		return broker_failed(r);
	if (!exists) {
		snprintf(reason, sizeof(reason), "exchange '%.*s' cannot be "
			 "published to: %s", (int)r->msg.exchange.len,
			 (const char *)r->msg.exchange.bytes, why);
		return failed_step(r, ev, FATE_EXCHANGE_REFUSED, reason);
	}

	while (broker_blocked(r->mq)) {
		if (poll_broker(r, 200) < 0)
			return STEP_ERROR;
		if (relay_stop_now(r))
			return STEP_STOP;
		if (blocked_too_long(r))
			return broker_failed(r);
		r->last_progress = now_mono();
	}
	if (inflight_full(&r->q)) {
		rc = wait_confirms(r, r->q.cap - 1);
		if (rc != STEP_OK)
			return rc;
	}
	if (broker_publish(r->mq, &r->msg, &tag, &r->e) < 0)
		return r->e.code == EX_DATAERR ? failed_step(r, ev,
			FATE_BAD_DATA, r->e.msg) : broker_failed(r);
	fault_point("after_publish");
	if (inflight_pending(&r->q) == 0)
		r->last_progress = now_mono();
	inflight_add(&r->q, tag, ev->ev_id, ev->ev_retry);
	inflight_set_time(&r->q, ev->ev_time_us);
	inflight_set_route(&r->q, inflight_route(r->msg.exchange.bytes,
		r->msg.exchange.len, r->msg.routing_key.bytes,
		r->msg.routing_key.len));
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
	pgq_batch_abandon(&r->pg);
	inflight_clear(&r->q);
	fail_clear(r);
}

enum batch_result
relay_batch(struct relay *r)
{
	const struct mk_worker_config *w = r->w;
	struct mk_event ev;
	unsigned since_poll = 0;
	size_t size;
	long long before;
	bool had_events;
	enum step st;

	if (pgq_next_batch(&r->pg, w->queue, w->consumer_name, &r->batch_id,
			   &r->e) < 0)
		return BATCH_FAILED;
	if (r->batch_id < 0)
		return BATCH_NONE;
	if (pgq_batch_open(&r->pg, r->batch_id, w->max_event_bytes,
			   &r->e) < 0)
		return BATCH_FAILED;
	r->batch_failed = r->batch_failed_logged = 0;
	r->batch_read = r->batch_acked = r->batch_settled = 0;
	before = r->cnt.total.events;
	r->last_progress = now_mono();
	log_set_context("queue '%s' batch %lld", w->queue, r->batch_id);

	for (;;) {
		enum pgq_fetch_result f = pgq_fetch(&r->pg, w->batch_chunk,
						    &ev, &size, &r->e);

		if (f == PGQ_FETCH_ERROR)
			goto fail;
		if (f == PGQ_FETCH_DONE)
			break;
		if (f == PGQ_FETCH_CHUNK_END) {
			if (r->nfail >= FAIL_FLUSH && settle(r) < 0)
				goto settle_failed;
			continue;
		}
		r->batch_read++;
		st = relay_event(r, &ev, size, &since_poll);
		if (st == STEP_ERROR)
			goto fail;
		if (st == STEP_STOP || relay_stop_now(r))
			goto stopped;
	}
	st = wait_confirms(r, 0);
	if (st == STEP_ERROR)
		goto fail;
	if (st == STEP_STOP)
		goto stopped;
	had_events = r->cnt.total.events > before;
	if (had_events)
		fault_point("after_confirm");
	if (drain_done(r) < 0)
		goto fail;
	if (settle(r) < 0)
		goto settle_failed;
	if (!accounted(r))
		goto broken;
	if (had_events)
		fault_point("before_finish");
	if (pgq_batch_finish(&r->pg, r->batch_id, &r->e) < 0)
		goto fail;
	if (had_events)
		fault_point("after_finish");
	r->cnt.total.batches++;
	if (r->batch_failed > r->batch_failed_logged)
		log_warn("%zu more failed events in this batch (not logged "
			 "one by one)", r->batch_failed -
			 r->batch_failed_logged);
	if (had_events)
		log_debug("finished: %lld events, %zu failed",
			  r->cnt.total.events - before, r->batch_failed);
	log_set_context("queue '%s'", w->queue);
	return BATCH_FINISHED;
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
