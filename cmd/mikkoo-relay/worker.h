/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * worker: mikkoo-relay's private header (the pgqd.h pattern): one
 * worker's state and the functions its three parts give each other.
 * Each calls only downward:
 *   worker.c    the worker's life: connections and failover, the
 *               consumer lock, ticking, waits, reloads (relay_run);
 *   pipeline.c  one batch: map, publish, confirm, each event's fate, the
 *               settle and the finish, from a source (source.h: PgQ is
 *               source_pgq.c);
 *   status.c    what the worker tells the world (state, counters' sinks,
 *               the node in use, whether a stop is due).
 * Nothing outside cmd/mikkoo-relay/ includes it.
 */
#ifndef MIKKOO_WORKER_H
#define MIKKOO_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "counters.h"
#include "event.h"
#include "fate.h"
#include "inflight.h"
#include "pgq.h"
#include "relay.h"
#include "source_logical.h"
#include "source_pgq.h"
#include "report.h"
#include "statsd.h"
#include "ticker.h"

#define BACKOFF_MIN 1.0
#define BACKOFF_MAX 30.0
/* Reconnecting to RabbitMQ: a total outage is over within this much of
 * the first node answering again. */
#define MQ_BACKOFF_MIN 0.25
#define MQ_BACKOFF_MAX 2.0
/* Holding the line after a refusal: the pause before publishing again
 * grows from HOLD_PAUSE_MIN to HOLD_PAUSE_MAX. */
#define HOLD_PAUSE_MIN 0.05
#define HOLD_PAUSE_MAX 1.0
#define HOLD_LOG_EVERY 10.0  /* "still refused" lines */
#define CONFIRM_TIMEOUT 60.0 /* no confirm progress: connection dead */
#define FAILOVER_AFTER \
	5.0             /* a node up this long is worth leaving
				   for the next at once when lost */
#define FAIL_FLUSH 1000 /* settle failures at this many */
#define FAIL_LOG_MAX 10 /* per-event failure lines per batch */
#define POISON_MAX 16   /* returns that could not be read */
#define POLL_EVERY 32   /* publishes between non-blocking polls */
/* Ticker mode: look for news every NEWS_MIN s after a tick, the gap
 * growing by NEWS_GROWTH per empty look up to NEWS_MAX, and to
 * NEWS_QUIET_MAX after NEWS_QUIET s without news (see wait_news). */
#define NEWS_MIN 0.002
#define NEWS_GROWTH 1.25
#define NEWS_MAX 0.1
#define NEWS_QUIET 10.0
#define NEWS_QUIET_MAX 0.25
#define TAKEOVER_WAIT 30.0 /* for a pgq.ticker() call still running */
#define REPORT_EVERY 1.0   /* to the supervisor (see report.h) */
#define GAUGES_EVERY 5.0   /* the pending and lag query */

/* What one step of a batch asks of its caller. */
enum step {
	STEP_ERROR = -1, /* a connection broke: abandon the batch */
	STEP_OK,
	STEP_STOP, /* a stop was asked for and is due now */
	STEP_HOLD, /* RabbitMQ refused: hold the line (r->hold) */
};

enum batch_result {
	BATCH_FAILED = -1, /* abandoned; r->e says why */
	BATCH_NONE,        /* PgQ had no batch for us */
	BATCH_FINISHED,
	BATCH_STOPPED, /* abandoned on a stop request */
	BATCH_HELD,    /* held: see struct hold */
	BATCH_BROKEN,  /* the settle invariant failed: abandoned,
				   and the worker must stop (r->e, 70) */
};

/*
 * The line held after RabbitMQ refused what was not the event's fault:
 * a nack, a channel closed over several publishes or for reasons of its
 * own, the connection lost.  The batch's transaction is rolled back
 * (nothing finished, nothing put in PgQ's retry queue), what is known
 * of the events before `from` is kept (confirmed ones need nothing;
 * failures for themselves wait in r->fail), and when PgQ hands out the
 * same batch again it is read from `from` on and published in order,
 * one publish in flight at first (r->win).  Duplicates: the events from
 * `from` that had been confirmed.
 */
struct hold {
	bool on;
	long long batch_id;
	long long from; /* ev_id to publish again from */
	bool lost;      /* the connection, not only a refusal */
	double since;   /* the streak's first refusal; 0 none */
	double pause;   /* before the next attempt */
	double logged_at;
	long long attempts;
	char why[REPORT_WHY];
};

struct relay {
	const struct relay_opts *o;
	const struct mk_config *cfg; /* o->cfg, or own_cfg after reload */
	struct mk_config own_cfg;
	bool own;
	const struct mk_worker_config *w;
	struct pgq_conn pg;
	struct source_pgq pgq;     /* the pipeline's source, over pg */
	struct source_logical lgs; /* or, source: logical, a slot */
	bool logical;              /* w->source is MK_SOURCE_LOGICAL */
	size_t lg_warned;          /* of logical_warnings(), logged */
	bool lg_busy_logged;       /* "another process streams it" */
	bool slot_busy;            /* ... and we wait for it */
	struct source *src;
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

	struct fate *fail; /* failures waiting for pgq_settle */
	size_t nfail, capfail;
	long long batch_id;
	size_t batch_failed_logged; /* failure lines of this batch */
	/* The settle invariant (relay_batch.c): every event read is
	 * acked, or stored by pgq_settle, before the batch may finish. */
	size_t batch_read, batch_acked, batch_settled;
	long long last_read;  /* ev_id of the last event read */
	long long cur_ev_id;  /* read, not yet in flight or
					   failed; -1 none */
	size_t win;           /* publishes in flight at most, up
					   to the window: 1 after a refusal,
					   one more per confirm */
	bool refused;         /* a nack or channel close came */
	int close_code;       /* of the last channel close */
	size_t close_pending; /* unconfirmed at that close */
	char refusal[INFLIGHT_REASON_MAX];
	struct hold hold;

	bool started, locked, lock_logged, tk_logged;
	bool mq_broken;        /* the last error came from RabbitMQ */
	size_t node;           /* the RabbitMQ node in use (or last) */
	size_t next_node;      /* where the next connect starts */
	bool named;            /* application_name says the node */
	bool failover_now;     /* lost a node that had worked: try
					   the next one without backing off */
	double mq_since;       /* when the node in use connected */
	double backoff;        /* PostgreSQL, or both */
	double mq_backoff;     /* RabbitMQ alone (MQ_BACKOFF_*) */
	double failed_at;      /* first failure of a streak; 0 none */
	double down_logged_at; /* the streak's last warning */
	double last_progress;  /* RabbitMQ's last sign of life
					   (pipeline.c's progress) */
	double stop_deadline;
	struct counters cnt;
	struct ticker tk;   /* ticker mode (ticker: relay) */
	double news_gap;    /* wait_news's current gap */
	double news_at;     /* when the last tick was made */
	bool news;          /* a batch may be waiting */
	double tk_retry_at; /* next try for the ticker lock */
	struct report rep;  /* for the supervisor */
	double gauges_at;
	struct mk_err e;
};

/* pipeline.c */
enum batch_result pipeline_batch(struct relay *r);
/* Drop the hold (a restart, another batch). */
void pipeline_hold_end(struct relay *r);
/* The confirm callback for broker_poll, also while idle. */
void pipeline_on_broker(void *arg, const struct broker_ev *ev);

/* status.c */
bool status_stop_now(struct relay *r);
/* The RabbitMQ node in use, masked, for log lines. */
const char *status_node(const struct relay *r);
/* A state change goes to the supervisor (and systemd) at once. */
void status_set(struct relay *r, enum report_state st, const char *why);
/* Every counters' sink that is due (all of them when force). */
void status_stats(struct relay *r, bool force);
/* The counters' sink for the supervisor's report (counters.h). */
void status_report_sink(void *arg, const struct counts *t,
			const struct counts *d, const struct gauges *g);
/* One NOTIFY_SOCKET datagram (a failure is logged). */
void status_notify(const char *what);

#endif
