/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * worker: one worker's life: connections and failover, the consumer
 * lock, ticking, waits and reloads; the pipeline (pipeline.c) relays
 * each batch, status.c says how it goes.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config_diff.h"
#include "log.h"
#include "mono.h"
#include "nodes.h"
#include "pg.h"
#include "worker.h"
#include "sdnotify.h"
#include "sig.h"
#include "text.h"

static void
find_origin(char *buf, size_t sz)
{
	struct addrinfo hints, *ai = NULL;

	if (gethostname(buf, sz) != 0) {
		snprintf(buf, sz, "localhost");
		return;
	}
	buf[sz - 1] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	hints.ai_family = AF_UNSPEC;
	/* Like Python's socket.getfqdn(): the canonical name if any. */
	if (getaddrinfo(buf, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname)
		snprintf(buf, sz, "%s", ai->ai_canonname);
	if (ai)
		freeaddrinfo(ai);
}

/* Interruptible sleep that keeps the AMQP connection's heartbeats. */
static void idle(struct relay *r, double seconds);

/* ---- connections -------------------------------------------------- */

static void ticker_end(struct relay *r);

static void
disconnect(struct relay *r, bool pg, bool mq)
{
	if (pg) {
		ticker_end(r);
		ticker_forget(&r->tk);
		pgq_disconnect(&r->pg);
		if (r->logical)
			source_logical_close(&r->lgs);
	}
	if (mq) {
		broker_free(r->mq);
		r->mq = NULL;
	}
	if (pg)
		r->locked = false;
}

static int
connect_pg(struct relay *r)
{
	const struct mk_worker_config *w = r->w;
	bool created, registered;

	if (pgq_connect(&r->pg, w->postgres_url, w->postgres_display,
			"mikkoo-relay", w->amqp.timeout, &r->e) < 0)
		return -1;
	if (pg_check_schema(r->pg.pg, w->postgres_display, &r->e) < 0)
		goto fail;
	if (pgq_setup(&r->pg, w->queue, w->consumer_name, &created, &registered,
		      &r->e) < 0)
		goto fail;
	if (created)
		log_info("created PgQ queue '%s'", w->queue);
	if (registered)
		log_info("registered PgQ consumer '%s' (it sees events from "
			 "now on)",
			 w->consumer_name);
	return 0;
fail:
	pgq_disconnect(&r->pg);
	return -1;
}

/*
 * A slot worker's PostgreSQL side: the source opens its two sessions,
 * checks (and at the first start creates) the slot; what an operator
 * should know is logged once.
 */
static int
connect_logical(struct relay *r)
{
	const char *const *warn;
	struct logical *lg;

	if (source_logical_open(&r->lgs, &r->e) < 0)
		return -1;
	lg = source_logical_handle(&r->lgs);
	if (logical_slot_created(lg))
		log_info("created replication slot '%s' (recorded in "
			 "mikkoo.slots; the relay never drops it)",
			 r->w->slot);
	warn = logical_warnings(lg);
	for (size_t i = 0; warn[i]; i++)
		if (i >= r->lg_warned) {
			log_warn("%s", warn[i]);
			r->lg_warned = i + 1;
		}
	if (r->lg_busy_logged)
		log_info("replication slot '%s' is ours now: streaming it",
			 r->w->slot);
	r->lg_busy_logged = false;
	return 0;
}

/* New warnings of the open slot source (a table sent as text). */
static void
logical_warn_more(struct relay *r)
{
	struct logical *lg = source_logical_handle(&r->lgs);
	const char *const *warn;
	size_t i;

	if (lg == NULL)
		return;
	warn = logical_warnings(lg);
	for (i = 0; warn[i]; i++)
		if (i >= r->lg_warned) {
			log_warn("%s", warn[i]);
			r->lg_warned = i + 1;
		}
}

static void
node_failed(void *arg, size_t i, size_t n, const struct mk_err *e)
{
	(void)arg;
	log_warn("RabbitMQ node %zu of %zu: %s: trying the next", i + 1, n,
		 e->msg);
}

static int
connect_mq(struct relay *r)
{
	const struct mk_worker_config *w = r->w;
	char name[128];

	snprintf(name, sizeof(name), "mikkoo-relay %s", w->queue);
	r->failover_now = false; /* this is the attempt */
	if (r->next_node >= w->nnodes)
		r->next_node = 0;
	if (nodes_connect(w->nodes, w->nnodes, r->next_node, name, &r->mq,
			  &r->node, node_failed, r, &r->e) < 0)
		return -1;
	r->ctx.user = broker_user(r->mq);
	r->named = false;
	r->mq_since = now_mono();
	r->mq_backoff = MQ_BACKOFF_MIN;
	return 0;
}

/*
 * With several RabbitMQ nodes, our PostgreSQL session's application_name
 * names the one in use ("mikkoo-relay HOST:PORT", no credentials), so
 * mikkoo-inspect status and pg_stat_activity can tell an operator which
 * it is.  With one node it stays "mikkoo-relay", as scripts may expect.
 */
static int
name_session(struct relay *r)
{
	char addr[256], name[64];
	const char *v[] = { name }, *val;
	PGresult *res;

	if (r->named || r->mq == NULL || !pgq_alive(&r->pg) || r->w->nnodes < 2)
		return 0;
	nodes_address(&r->w->nodes[r->node], addr, sizeof(addr));
	/* PostgreSQL keeps 63 bytes of it */
	snprintf(name, sizeof(name), "mikkoo-relay %s", addr);
	if (pg_value(r->pg.pg,
		     "SELECT set_config('application_name', $1, "
		     "false)",
		     1, v, "setting application_name", &res, &val, &r->e) < 0)
		return -1;
	PQclear(res);
	r->named = true;
	return 0;
}

/* The node in use failed: drop it; the next connect starts after it. */
static void
lose_mq(struct relay *r)
{
	if (r->mq) {
		r->next_node = nodes_after(r->node, r->w->nnodes);
		/* a node that worked for a while: the others are worth a
		 * try at once (one that fails at once gets the backoff) */
		r->failover_now = r->w->nnodes > 1 &&
				  now_mono() - r->mq_since >= FAILOVER_AFTER;
	}
	disconnect(r, false, true);
}

static int
ensure_connected(struct relay *r)
{
	if (r->logical && !source_logical_alive(&r->lgs)) {
		/*
		 * A slot another process streams (a relay still running, or
		 * a session the server has not ended yet after a crash) is
		 * waited for, as PgQ's consumer lock is (ensure_locked).
		 */
		r->slot_busy = false;
		if (connect_logical(r) < 0) {
			if (r->e.code != EX_TEMPFAIL)
				return -1;
			if (!r->lg_busy_logged)
				log_warn("%s: waiting for it to stop",
					 r->e.msg);
			r->lg_busy_logged = true;
			r->slot_busy = true;
		} else if (r->started) {
			r->cnt.total.reconnects_pg++;
			log_info("reconnected to PostgreSQL: streaming slot "
				 "'%s' from %s",
				 r->w->slot, "its confirmed position");
		}
	}
	if (!r->logical && !pgq_alive(&r->pg)) {
		if (r->pg.pg)
			disconnect(r, true, false);
		if (connect_pg(r) < 0)
			return -1;
		r->named = false;
		if (r->started) {
			r->cnt.total.reconnects_pg++;
			log_info("reconnected to PostgreSQL");
		}
	}
	if (r->mq == NULL) {
		if (connect_mq(r) < 0)
			return -1;
		if (r->started) {
			r->cnt.total.reconnects_mq++;
			if (r->w->nnodes > 1)
				log_info("reconnected to RabbitMQ '%s' (node "
					 "%zu of %zu)",
					 status_node(r), r->node + 1,
					 r->w->nnodes);
			else
				log_info("reconnected to RabbitMQ");
		}
	}
	return name_session(r);
}

/* Take the single-instance lock, or say once that we wait for it. */
static int
ensure_locked(struct relay *r)
{
	const struct mk_worker_config *w = r->w;
	bool got;

	if (r->logical)
		return r->slot_busy ? 0 : 1; /* see ensure_connected */
	if (r->locked)
		return 1;
	if (pgq_try_lock(&r->pg, w->queue, w->consumer_name, &got, &r->e) < 0)
		return -1;
	if (!got) {
		if (!r->lock_logged)
			log_warn("another mikkoo-relay is consuming queue '%s' "
				 "as '%s': waiting for it to stop",
				 w->queue, w->consumer_name);
		r->lock_logged = true;
		return 0;
	}
	if (r->lock_logged)
		log_info("lock acquired: consuming queue '%s'", w->queue);
	r->locked = true;
	r->lock_logged = false;
	return 1;
}

/* ---- ticker mode (ticker: relay; see ticker.h) --------------------- */

/*
 * Once the consumer lock is ours: become the queue's ticker, or say
 * once why not (another session ticks it, or its ticker is paused) and
 * try again every few seconds.
 */
static int
ticker_begin(struct relay *r)
{
	const char *q = r->w->queue;
	char who[384];
	int rc;

	if (r->logical || r->w->ticker != MK_TICKER_RELAY || r->tk.active ||
	    now_mono() < r->tk_retry_at)
		return 0;
	/* what mikkoo-inspect status shows as the ticker */
	snprintf(who, sizeof(who), "mikkoo-relay on %s (consumer %s)",
		 r->origin, r->w->consumer_name);
	rc = ticker_start(&r->tk, r->pg.pg, q, who, TAKEOVER_WAIT, &r->e);
	if (rc < 0)
		return -1;
	r->tk_retry_at = now_mono() + 5;
	if (rc == 1) {
		if (r->e.msg[0])
			log_warn("%s", r->e.msg);
		log_info("ticking queue '%s' itself (external_ticker is set: "
			 "pgqd leaves the queue to this relay)",
			 q);
		r->tk_logged = false;
		r->news_gap = NEWS_MIN;
		r->news_at = now_mono();
		r->news = true; /* ticks made before us */
	} else if (!r->tk_logged) {
		r->tk_logged = true;
		if (r->e.msg[0])
			log_warn("%s", r->e.msg);
		else if (r->tk.paused)
			log_warn("queue '%s': its ticker is paused "
				 "(ticker_paused): no batches until it is "
				 "resumed",
				 q);
		else
			log_info("another session ticks queue '%s': using "
				 "its ticks, looking again every %.2f s",
				 q, r->w->wait_duration);
	}
	return 0;
}

/* Tick if there is news (why: see ticker_tick). */
static int
tick_now(struct relay *r, enum ticker_for why, bool *ticked)
{
	*ticked = false;
	if (!r->tk.active || !pgq_alive(&r->pg))
		return 0;
	if (ticker_tick(&r->tk, r->pg.pg, r->w->queue, why, ticked, &r->e) < 0)
		return -1;
	if (*ticked) {
		r->news = true;
		r->news_at = now_mono();
		r->news_gap = NEWS_MIN;
	}
	return 0;
}

/*
 * Ticker mode, the queue drained: look for news every news_gap s (the
 * AMQP connection served meanwhile), the gap growing from NEWS_MIN after
 * a tick to NEWS_MAX, so a steady flow is seen within milliseconds, an
 * occasional event within 0.1 s, and a silent queue costs four looks a
 * second.  Returns after a tick, a signal, a broken connection or a
 * second (for the relay_stats and the reload check).
 */
static int
wait_news(struct relay *r)
{
	double end = now_mono() + 1.0;
	bool ticked;

	while (sig_term_count() == 0 && !(r->o->reload && sig_hup_pending())) {
		double cap = now_mono() - r->news_at > NEWS_QUIET
				     ? NEWS_QUIET_MAX
				     : NEWS_MAX;

		idle(r, r->news_gap);
		if (r->mq == NULL)
			return 0;
		if (tick_now(r, TICK_FOR_RELAY, &ticked) < 0)
			return -1;
		if (ticked)
			return 0;
		r->news_gap = fmin(r->news_gap * NEWS_GROWTH, cap);
		if (now_mono() >= end)
			return 0;
	}
	return 0;
}

/* A clean end of the session: pgqd ticks the queue again. */
static void
ticker_end(struct relay *r)
{
	struct mk_err e;

	if (!r->tk.active || !pgq_alive(&r->pg))
		return;
	if (ticker_stop(&r->tk, r->pg.pg, r->w->queue, &e) < 0)
		log_warn("queue '%s' stays with external_ticker set (%s): "
			 "pgqd will not tick it until a relay runs again",
			 r->w->queue, e.msg);
	else
		log_info("queue '%s' handed back to pgqd (external_ticker "
			 "cleared)",
			 r->w->queue);
}

/*
 * A slot worker's gauge: the WAL its slot holds back (PgQ's pending
 * events, consumer lag and tick age mean nothing here: unknown).
 */
static void
logical_gauges(struct relay *r)
{
	struct logical *lg = source_logical_handle(&r->lgs);
	struct gauges *g = &r->cnt.gauges;
	const char *v[1], *val;
	PGresult *keep;
	struct mk_err e;

	if (lg == NULL || now_mono() < r->gauges_at)
		return;
	r->gauges_at = now_mono() + GAUGES_EVERY;
	v[0] = logical_slot(lg);
	if (pg_value(
		    logical_conn(lg),
		    "SELECT pg_catalog.pg_wal_lsn_diff(CASE WHEN "
		    "pg_catalog.pg_is_in_recovery() THEN "
		    "pg_catalog.pg_last_wal_replay_lsn() ELSE "
		    "pg_catalog.pg_current_wal_lsn() END, restart_lsn)::int8 "
		    "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
		    1, v, "reading the slot's retained WAL", &keep, &val,
		    &e) < 0) {
		g->retained = -1;
		return;
	}
	g->retained = val ? strtoll(val, NULL, 10) : -1;
	PQclear(keep);
}

/* Between batches, connected: the pending and lag gauges, now and then. */
static void
gauges_maybe(struct relay *r)
{
	struct gauges *g = &r->cnt.gauges;
	struct mk_err e;

	if (r->logical) {
		logical_gauges(r);
		return;
	}
	if (!pgq_alive(&r->pg) || now_mono() < r->gauges_at)
		return;
	r->gauges_at = now_mono() + GAUGES_EVERY;
	if (pgq_gauges(&r->pg, r->w->queue, r->w->consumer_name, &g->pending,
		       &g->lag, &g->tick_age, &e) < 0) {
		g->pending = -1;
		g->lag = -1;
		g->tick_age = -1;
	}
}

static void
idle(struct relay *r, double seconds)
{
	double end = now_mono() + seconds;

	while (sig_term_count() == 0 && !(r->o->reload && sig_hup_pending())) {
		double left = end - now_mono();

		if (left <= 0)
			break;
		if (left > 0.25)
			left = 0.25;
		status_stats(r, false);
		if (r->logical && source_logical_service(&r->lgs, &r->e) < 0) {
			log_warn("%s: reconnecting", r->e.msg);
			if (r->failed_at == 0)
				r->failed_at = now_mono();
		}
		/*
		 * rabbitmq-c turns the last millisecond or so of a wait
		 * into 0 ms polls that spin until the end: short waits and
		 * remainders sleep instead (heartbeats can wait for them).
		 */
		if (r->mq && left >= 0.003) {
			/* rounded up: a 0 ms poll under 1 ms before the
			 * end would spin until it */
			if (broker_poll(r->mq, (int)ceil(left * 1000),
					pipeline_on_broker, r, &r->e) < 0) {
				log_warn("%s: reconnecting", r->e.msg);
				lose_mq(r);
				if (r->failed_at == 0)
					r->failed_at = now_mono();
			}
		} else {
			struct timespec ts = { 0, (long)(left * 1e9) };

			nanosleep(&ts, NULL);
		}
	}
}

static void
ready(struct relay *r)
{
	const struct mk_worker_config *w = r->w;
	char of[48] = "";

	r->started = true;
	if (w->nnodes > 1)
		snprintf(of, sizeof(of), " (node %zu of %zu)", r->node + 1,
			 w->nnodes);
	if (r->logical)
		log_info("ready: relaying replication slot '%s' (worker '%s') "
			 "to '%s'%s, %d publishes in flight, %s",
			 w->slot, w->queue, status_node(r), of, w->window,
			 w->persistent ? "persistent" : "transient");
	else
		log_info("ready: relaying queue '%s' (consumer '%s') to "
			 "'%s'%s, %d publishes in flight, %s",
			 w->queue, w->consumer_name, status_node(r), of,
			 w->window, w->persistent ? "persistent" : "transient");
	if (r->o->ready_fd >= 0) {
		(void)!write(r->o->ready_fd, "\n", 1);
		close(r->o->ready_fd);
	}
	status_notify("READY=1\nSTATUS=relaying");
}

/* ---- the worker ---------------------------------------------------- */

void
relay_log_notices(const struct mk_config *cfg, const char *queue)
{
	size_t i;

	for (i = 0; i < cfg->nnotices; i++)
		if (config_notice_for(&cfg->notices[i], queue))
			log_warn("%s", cfg->notices[i].text);
}

static void
apply_worker(struct relay *r)
{
	const struct mk_worker_config *w = r->w;
	char why[256];

	r->ctx.app_id = "mikkoo";
	r->ctx.origin = r->origin;
	r->ctx.persistent = w->persistent;
	r->ctx.allow_user_id = false;
	/* CC/BCC let a database writer route anywhere: off unless allowed. */
	r->ctx.deny_cc_bcc = !w->allow_sender_routing;
	r->ctx.exchanges = w->exchanges.v;
	r->ctx.nexchanges = w->exchanges.n;
	r->ctx.routes = w->routes.v;
	r->ctx.nroutes = w->routes.n;
	r->ctx.route_default = w->routes.fallback;
	r->ctx.max_depth = 32;
	r->ctx.max_headers = 1024;
	r->ctx.max_event_bytes = w->max_event_bytes;
	/* the pipeline's source: this worker's PgQ queue, over its
	 * connection (reloads change the settings, between batches) */
	source_pgq_init(&r->pgq, &r->pg, w->queue, w->consumer_name,
			w->retry_delay, w->batch_chunk);
	r->src = &r->pgq.src;
	r->logical = w->source == MK_SOURCE_LOGICAL;
	if (r->logical) {
		struct logical_config lc;

		/* closed before: it borrows the configuration's strings */
		memset(&lc, 0, sizeof(lc));
		lc.url = w->postgres_url;
		lc.display = w->postgres_display;
		lc.appname = "mikkoo-relay";
		lc.connect_timeout = w->amqp.timeout;
		lc.slot = w->slot;
		lc.create_slot = true;
		lc.publications = (const char *const *)w->publications.v;
		lc.npublications = w->publications.n;
		lc.streams = (const char *const *)w->streams.v;
		lc.nstreams = w->streams.n;
		lc.exchange = w->change_exchange;
		lc.routing_key = w->change_routing_key;
		lc.skip_unchanged = w->skip_unchanged;
		lc.max_events = (size_t)w->batch_chunk;
		lc.max_bytes = 8 << 20;
		/* the stream is read without serving RabbitMQ (heartbeats):
		 * a second at most, and the worker does not idle after */
		lc.wait = w->wait_duration < 1 ? w->wait_duration : 1;
		source_logical_init(&r->lgs, &lc, w->queue, w->retry_delay);
		r->src = &r->lgs.src;
	}
	statsd_close(r->sd);
	why[0] = '\0';
	r->sd = statsd_open(&r->cfg->statsd, w->queue, why, sizeof(why));
	if (r->sd == NULL && why[0])
		log_warn("statsd disabled: %s", why);
	counters_set_sink(&r->cnt, counters_statsd_sink, r->sd,
			  r->cfg->poll_interval);
	counters_set_sink(&r->cnt, counters_log_sink, NULL,
			  r->cfg->poll_interval);
}

static void reload_config(struct relay *r);

/* SIGHUP: systemd hears of it before and after (Type=notify). */
static void
reload(struct relay *r)
{
	char what[64];

	if (sdnotify_on()) {
		snprintf(what, sizeof(what), "RELOADING=1\nMONOTONIC_USEC=%llu",
			 sdnotify_monotonic_usec());
		status_notify(what);
	}
	reload_config(r);
	status_notify("READY=1");
}

static void
reload_config(struct relay *r)
{
	struct mk_config nc;
	const struct mk_worker_config *nw;
	struct config_diff d;
	struct mk_err me;

	if (config_load(r->o->config_path, &nc, &me) < 0) {
		log_error("reload failed: %s: keeping the running "
			  "configuration",
			  me.msg);
		return;
	}
	nw = config_worker(&nc, r->w->queue);
	if (nw == NULL) {
		log_error("reload failed: worker '%s' is no longer in '%s': "
			  "keeping the running configuration",
			  r->w->queue, r->o->config_path);
		config_release(&nc);
		return;
	}
	/* A supervised worker's notices were logged by its parent. */
	if (!r->o->supervised)
		relay_log_notices(&nc, nw->queue);
	config_diff(r->cfg, &nc, nw->queue, &d);
	if (r->logical) {
		/* its source borrows the old configuration's strings: it
		 * streams again from the slot's confirmed position */
		source_logical_close(&r->lgs);
		pipeline_hold_end(r);
	}
	if (d.restart) {
		disconnect(r, true, true);
		r->node = r->next_node = 0; /* the list may have changed */
		pipeline_hold_end(r);       /* the batch is read anew */
	}
	if (r->own)
		config_release(&r->own_cfg);
	r->own_cfg = nc;
	r->own = true;
	r->cfg = &r->own_cfg;
	r->w = config_worker(r->cfg, nw->queue);
	if ((size_t)r->w->window != r->q.cap) {
		inflight_release(&r->q);
		if (inflight_init(&r->q, (size_t)r->w->window) < 0)
			abort(); /* a few kilobytes: nothing to save */
	}
	apply_worker(r);
	if (d.notice && !r->o->supervised)
		log_warn("reload: %s changed: takes effect when mikkoo-relay "
			 "is started again",
			 d.notice_keys);
	if (d.restart)
		log_info("configuration reloaded: reconnecting (%s changed)",
			 d.restart_keys);
	else if (d.live)
		log_info("configuration reloaded: %s applied", d.live_keys);
	else
		log_info("configuration reloaded: no change");
}

/*
 * Wait before trying again after a failure.  A RabbitMQ outage alone (the
 * PostgreSQL session is fine) is retried every MQ_BACKOFF_MAX s at most,
 * so relaying resumes within seconds of a node answering again; anything
 * else backs off up to BACKOFF_MAX.  The first failure of a streak is a
 * warning, then one every 30 s (the others are debug lines).
 */
static void
backoff(struct relay *r)
{
	double end, *pause, cap;
	bool ticked, mq_only;

	if (r->failed_at == 0)
		r->failed_at = now_mono();
	if (r->failover_now) {
		r->failover_now = false;
		log_warn("%s: trying the next RabbitMQ node", r->e.msg);
		return;
	}
	mq_only = r->mq == NULL && pgq_alive(&r->pg);
	pause = mq_only ? &r->mq_backoff : &r->backoff;
	cap = mq_only ? MQ_BACKOFF_MAX : BACKOFF_MAX;
	if (*pause <= 0)
		*pause = mq_only ? MQ_BACKOFF_MIN : BACKOFF_MIN;
	if (r->down_logged_at < r->failed_at ||
	    now_mono() - r->down_logged_at >= 30) {
		log_warn("%s: retrying in %.1f s%s", r->e.msg, *pause,
			 r->down_logged_at >= r->failed_at ? " (still)" : "");
		r->down_logged_at = now_mono();
	} else {
		log_debug("%s: retrying in %.1f s", r->e.msg, *pause);
	}
	status_set(r, r->started ? REPORT_DOWN : REPORT_STARTING, r->e.msg);
	end = now_mono() + *pause;
	while (sig_term_count() == 0 && now_mono() < end) {
		idle(r, fmin(1.0, end - now_mono()));
		/* The queue's other consumers still get ticks, at pgqd's
		 * pace, while this relay cannot consume. */
		if (tick_now(r, TICK_FOR_OTHERS, &ticked) < 0)
			log_debug("%s", r->e.msg); /* the loop reconnects */
	}
	*pause = fmin(*pause * 2, cap);
}

/*
 * The line is held (relay_batch.h, struct hold): a lost connection goes
 * the way of any other (the next node, or a short backoff); a refusal
 * waits a moment, growing to HOLD_PAUSE_MAX, and takes a fresh channel
 * (a quorum queue's new leader serves a new channel, not an old one).
 */
static void drop_broken(struct relay *r);

static void
hold_wait(struct relay *r)
{
	struct hold *h = &r->hold;
	char why[REPORT_WHY];
	bool ticked;

	if (h->lost || r->mq == NULL) {
		drop_broken(r);
		backoff(r);
		return;
	}
	snprintf(why, sizeof(why),
		 "RabbitMQ refuses publishes since %.0f s "
		 "(%s): holding the line at ev_id %lld",
		 now_mono() - h->since, h->why, h->from);
	status_set(r, REPORT_REFUSED, why);
	idle(r, h->pause);
	h->pause = fmin(h->pause * 2, HOLD_PAUSE_MAX);
	/* between batches: the others still get their ticks */
	if (tick_now(r, TICK_FOR_OTHERS, &ticked) < 0)
		log_debug("%s", r->e.msg);
	if (r->mq && broker_fresh_channel(r->mq, &r->e) < 0) {
		log_warn("%s: reconnecting", r->e.msg);
		lose_mq(r);
	}
}

/* After a failed batch or connect: drop what broke. */
static void
drop_broken(struct relay *r)
{
	if (r->pg.pg && !pgq_alive(&r->pg))
		disconnect(r, true, false);
	if (r->mq_broken)
		lose_mq(r);
	r->mq_broken = false;
}

static void
cleanup(struct relay *r)
{
	disconnect(r, true, true);
	source_logical_release(&r->lgs);
	free(r->fail);
	inflight_release(&r->q);
	message_release(&r->msg);
	statsd_close(r->sd);
	if (r->own)
		config_release(&r->own_cfg);
}

/*
 * The first connection.  A configuration or permission problem ends the
 * worker at once (the supervisor above stops on it); an unavailable
 * server is fatal only when there is no supervisor to keep the other
 * workers going: a supervised worker says it is waiting (RELAY_WAITING)
 * and retries with the usual backoff.  0 connected, 1 stop asked, -1.
 */
/*
 * A slot worker's refusals are permanent: a missing right (77), a
 * configuration or a slot that vanished or lost its WAL (78) never
 * mend by retrying; the supervisor is told by the exit status.
 */
static bool
slot_refused(const struct relay *r)
{
	return r->logical &&
	       (r->e.code == EX_NOPERM || r->e.code == EX_CONFIG ||
		r->e.code == EX_SOFTWARE);
}

static int
first_connect(struct relay *r)
{
	bool told = false;

	for (;;) {
		if (ensure_connected(r) == 0)
			return 0;
		if (!r->o->supervised || r->e.code != EX_UNAVAILABLE)
			return -1;
		if (!told && r->o->ready_fd >= 0) {
			char c = RELAY_WAITING;

			(void)!write(r->o->ready_fd, &c, 1);
			told = true;
		}
		drop_broken(r);
		backoff(r);
		if (sig_term_count() > 0)
			return 1;
		if (r->o->reload && sig_hup_take())
			reload(r);
	}
}

int
relay_run(const struct relay_opts *o, struct mk_err *e)
{
	struct relay r;
	enum batch_result br;
	int rc;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.cfg = o->cfg;
	r.w = config_worker(o->cfg, o->queue);
	if (r.w == NULL)
		return mk_err_set(e, EX_CONFIG, "no worker '%s' in '%s'",
				  o->queue, o->config_path);
	log_set_context("queue '%s'", r.w->queue);
	find_origin(r.origin, sizeof(r.origin));
	message_init(&r.msg);
	if (inflight_init(&r.q, (size_t)r.w->window) < 0)
		return mk_err_set(e, EX_OSERR, "out of memory");
	counters_init(&r.cnt);
	if (counters_add_sink(&r.cnt, counters_log_sink, NULL,
			      r.cfg->poll_interval) < 0 ||
	    counters_add_sink(&r.cnt, counters_statsd_sink, NULL,
			      r.cfg->poll_interval) < 0 ||
	    (o->report_fd >= 0 && counters_add_sink(&r.cnt, status_report_sink,
						    &r, REPORT_EVERY) < 0))
		abort(); /* a fixed table with room for all three */
	r.backoff = BACKOFF_MIN;
	r.mq_backoff = MQ_BACKOFF_MIN;
	r.rep.pending = -1;
	r.rep.lag = -1;
	r.rep.tick_age = -1;
	r.rep.retained = -1;
	r.rep.state = REPORT_STARTING;
	status_set(&r, REPORT_STARTING, "connecting");
	apply_worker(&r);
	log_info("mikkoo-relay %s starting: consumer '%s', postgres '%s', "
		 "rabbitmq '%s'",
		 MIKKOO_VERSION, r.w->consumer_name, r.w->postgres_display,
		 r.w->amqp_display);
	for (size_t i = 1; i < r.w->nnodes; i++)
		log_info("RabbitMQ node %zu of %zu: '%s'", i + 1, r.w->nnodes,
			 r.w->nodes[i].display);
	if (r.w->unregister)
		log_warn("unregister is on: the consumer is dropped at "
			 "shutdown, and events inserted while the relay is "
			 "stopped will be skipped");

	rc = first_connect(&r);
	if (rc > 0)
		status_notify("STOPPING=1");
	if (rc != 0) {
		if (rc < 0)
			*e = r.e;
		cleanup(&r);
		return rc < 0 ? -1 : 0;
	}
	ready(&r);

	while (sig_term_count() == 0) {
		if (o->reload && sig_hup_take())
			reload(&r);
		status_stats(&r, false);
		if (ensure_connected(&r) < 0) {
			if (slot_refused(&r)) {
				log_error("%s", r.e.msg);
				*e = r.e;
				cleanup(&r);
				return -1;
			}
			drop_broken(&r);
			backoff(&r);
			continue;
		}
		rc = ensure_locked(&r);
		if (rc > 0 && ticker_begin(&r) < 0)
			rc = -1;
		if (sig_term_count() > 0)
			break; /* e.g. during the wait to take over ticking */
		if (rc <= 0) {
			if (rc < 0) {
				drop_broken(&r);
				backoff(&r);
			} else {
				status_set(&r, REPORT_WAITING,
					   r.logical
						   ? "another process streams "
						     "the replication slot"
						   : "another "
						     "mikkoo-relay holds the "
						     "consumer lock");
				/* a slot is tried with two sessions: not
				 * more than once a second */
				idle(&r, r.logical && r.w->wait_duration < 1
						 ? 1
						 : r.w->wait_duration);
			}
			continue;
		}
		/* the gauges first: the report that says "relaying" (and
		 * makes /health ok) carries them, so /metrics has pending
		 * and lag samples from that moment on; held: the state says
		 * so until a publish is confirmed */
		gauges_maybe(&r);
		if (!r.hold.on)
			status_set(&r,
				   broker_blocked(r.mq) ? REPORT_BLOCKED
							: REPORT_RELAYING,
				   broker_blocked(r.mq)
					   ? broker_blocked_reason(r.mq)
					   : NULL);
		status_stats(&r, false);
		if (r.tk.active && !r.news) {
			/* Only this relay ticks: no tick, no batch. */
			if (wait_news(&r) < 0) {
				drop_broken(&r);
				backoff(&r);
			}
			continue;
		}
		br = pipeline_batch(&r);
		if (r.logical)
			logical_warn_more(&r);
		if (br == BATCH_FAILED) {
			drop_broken(&r);
			backoff(&r);
		} else if (br == BATCH_HELD) {
			hold_wait(&r);
		} else if (br == BATCH_NONE) {
			r.cnt.total.empty++;
			r.backoff = BACKOFF_MIN;
			r.news = false;
			/* a slot's next batch waited for the stream itself;
			 * a short look at RabbitMQ serves its heartbeats
			 * (rabbitmq-c sends ours only from inside a call:
			 * a quiet slot lost its connection every few
			 * heartbeats) */
			if (r.logical)
				idle(&r,
				     0.005); /* under 3 ms idle only sleeps */
			else if (!r.tk.active)
				idle(&r, r.w->wait_duration);
		} else if (br == BATCH_BROKEN) {
			log_error("%s", r.e.msg);
			*e = r.e;
			cleanup(&r);
			return -1;
		} else if (br == BATCH_FINISHED) {
			bool ticked;

			r.backoff = BACKOFF_MIN;
			/* News while the batch was out: tick before asking
			 * for the next one. */
			if (tick_now(&r, TICK_FOR_RELAY, &ticked) < 0) {
				drop_broken(&r);
				backoff(&r);
			}
		} else {
			break;
		}
	}

	log_info("stopping on %s",
		 sig_term_signo() == SIGINT ? "SIGINT" : "SIGTERM");
	status_notify("STOPPING=1");
	if (r.w->unregister && pgq_alive(&r.pg)) {
		if (pgq_unregister(&r.pg, r.w->queue, r.w->consumer_name,
				   &r.e) < 0)
			log_warn("%s", r.e.msg);
		else
			log_warn("unregistered consumer '%s' (unregister is "
				 "on)",
				 r.w->consumer_name);
	}
	status_stats(&r, true);
	cleanup(&r);
	return 0;
}
