/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * relay_int: one worker's state, shared by the two halves of the relay
 * module and by nothing else: relay.c runs the worker (connections, the
 * lock, ticking, waits, reloads, reports) and relay_batch.c relays one
 * batch (events, confirms, fates, the settle and finish).
 */
#ifndef MIKKOO_RELAY_INT_H
#define MIKKOO_RELAY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "counters.h"
#include "event.h"
#include "fate.h"
#include "inflight.h"
#include "pgq.h"
#include "relay.h"
#include "report.h"
#include "statsd.h"
#include "ticker.h"

#define BACKOFF_MIN 1.0
#define BACKOFF_MAX 30.0
#define CONFIRM_TIMEOUT 60.0    /* no confirm progress: connection dead */
#define FAILOVER_AFTER 5.0      /* a node up this long is worth leaving
				   for the next at once when lost */
#define FAIL_FLUSH 1000         /* settle failures at this many */
#define FAIL_LOG_MAX 10         /* per-event failure lines per batch */
#define POISON_MAX 16           /* returns that could not be read */
#define POLL_EVERY 32           /* publishes between non-blocking polls */
/* Ticker mode: look for news every NEWS_MIN s after a tick, the gap
 * growing by NEWS_GROWTH per empty look up to NEWS_MAX, and to
 * NEWS_QUIET_MAX after NEWS_QUIET s without news (see wait_news). */
#define NEWS_MIN 0.002
#define NEWS_GROWTH 1.25
#define NEWS_MAX 0.1
#define NEWS_QUIET 10.0
#define NEWS_QUIET_MAX 0.25
#define TAKEOVER_WAIT 30.0      /* for a pgq.ticker() call still running */
#define REPORT_EVERY 1.0        /* to the supervisor (see report.h) */
#define GAUGES_EVERY 5.0        /* the pending and lag query */

/* What one step of a batch asks of its caller. */
enum step {
	STEP_ERROR = -1,        /* a connection broke: abandon the batch */
	STEP_OK,
	STEP_STOP,              /* a stop was asked for and is due now */
};

enum batch_result {
	BATCH_FAILED = -1,      /* abandoned; r->e says why */
	BATCH_NONE,             /* PgQ had no batch for us */
	BATCH_FINISHED,
	BATCH_STOPPED,          /* abandoned on a stop request */
	BATCH_BROKEN,           /* the settle invariant failed: abandoned,
				   and the worker must stop (r->e, 70) */
};

struct relay {
	const struct relay_opts *o;
	const struct mk_config *cfg;    /* o->cfg, or own_cfg after reload */
	struct mk_config own_cfg;
	bool own;
	const struct mk_worker_config *w;
	struct pgq_conn pg;
	struct broker *mq;
	struct statsd *sd;
	struct inflight q;
	struct mk_message msg;
	struct mk_map_ctx ctx;
	char origin[256];

	/*
	 * Events whose return could not be read: the connection was lost
	 * with them, so their fate waits for the batch to be read again
	 * (relay_event fails them there, without publishing).
	 */
	struct {
		long long ev_id;
		char why[INFLIGHT_REASON_MAX];
	} poison[POISON_MAX];
	size_t npoison;

	struct fate *fail;      /* failures waiting for pgq_settle */
	size_t nfail, capfail;
	long long batch_id;
	size_t batch_failed_logged, batch_failed;
	/* The settle invariant (relay_batch.c): every event read is
	 * acked, or stored by pgq_settle, before the batch may finish. */
	size_t batch_read, batch_acked, batch_settled;

	bool started, locked, lock_logged, tk_logged;
	bool mq_broken;                 /* the last error came from RabbitMQ */
	size_t node;                    /* the RabbitMQ node in use (or last) */
	size_t next_node;               /* where the next connect starts */
	bool named;                     /* application_name says the node */
	bool failover_now;              /* lost a node that had worked: try
					   the next one without backing off */
	double mq_since;                /* when the node in use connected */
	double backoff;
	double failed_at;               /* first failure of a streak; 0 none */
	double blocked_since;           /* connection.blocked (logged); 0 not */
	double last_progress;
	double stop_deadline;
	struct counters cnt;
	struct ticker tk;               /* ticker mode (ticker: relay) */
	double news_gap;                /* wait_news's current gap */
	double news_at;                 /* when the last tick was made */
	bool news;                      /* a batch may be waiting */
	double tk_retry_at;             /* next try for the ticker lock */
	struct report rep;              /* for the supervisor */
	double gauges_at;
	struct mk_err e;
};

/* relay_batch.c */
enum batch_result relay_batch(struct relay *r);
/* The confirm callback for broker_poll, also while idle. */
void relay_on_broker(void *arg, const struct broker_ev *ev);

/* relay.c */
bool relay_stop_now(struct relay *r);
const char *relay_node_display(const struct relay *r);
void relay_set_state(struct relay *r, enum report_state st, const char *why);
void relay_stats(struct relay *r, bool force);

#endif
