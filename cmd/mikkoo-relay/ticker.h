/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ticker: the relay as its queue's only ticker (worker key "ticker:
 * relay", the default), for latency in milliseconds instead of
 * pgqd's ticker_period and ticker_max_lag.
 *
 * PgQ hands out events only in batches between two ticks, and pgqd
 * ticks a queue at most every ticker_period (and, with create_queue's
 * defaults, only after 500 events or 3 s).  Here the relay ticks the
 * queue itself, as soon as a committed event is not covered by the last
 * tick, and pgqd's pgq.ticker() leaves the queue alone:
 *
 *   - ticker_start() takes a session advisory lock on the queue (key
 *     hashtext('mikkoo-ticker'), queue_id: one ticker per queue, however
 *     many relays or consumers), sets the queue's external_ticker flag
 *     with pgq.set_queue_config (pgqd's pgq.ticker() then skips it), and
 *     before its first tick waits until no pgq.ticker() call that began
 *     before that change is still running: two tickers must never run
 *     at once (pgq.force_tick's comment).
 *   - ticker_tick() ticks, with the 4-argument pgq.ticker, in one
 *     statement and only when the queue's event tables hold a committed
 *     event that the last tick does not cover (ev_txid at or above its
 *     snapshot's xmax, or in its running list, found through the txid
 *     index of each event table), when the last tick is older than the
 *     queue's ticker_idle_period (so pgq's lag stays bounded), or when
 *     for=TICK_FOR_OTHERS and the last tick is older than the queue's
 *     ticker_max_lag (while the relay itself cannot consume).  A
 *     rolled-back event never ticks; a retried event (put back by
 *     pgqd's maintenance with a new txid) does.  The tick commits
 *     asynchronously: losing it in a crash loses nothing.
 *   - ticker_stop() (a clean stop) clears external_ticker, so pgqd
 *     ticks the queue again for its other consumers.  After a crash the
 *     flag stays set until a relay takes the lock again.
 *   - The flag's owner is recorded: setting it also writes the queue's
 *     row of mikkoo.queue_ticker (who set it, when), in the same
 *     transaction, and clearing it deletes the row.  So a relay that
 *     finds the flag set and the ticker lock free tells a leftover of a
 *     relay that died (a row: it takes the queue back) from a queue that
 *     another external ticker drives (no row, e.g. a Londiste cascade:
 *     it leaves the queue alone and uses those ticks).  Without that
 *     table (a mikkoo.sql that predates it) it cannot tell, and takes
 *     the flag as before, saying so.
 *
 * Owns: the lock, the flag it set, the statement text (the event table
 * name comes from pgq.queue, quoted).  Never: logs, sleeps except in the
 * bounded takeover wait, or runs inside a batch's transaction (the
 * caller calls it between batches).
 */
#ifndef MIKKOO_TICKER_H
#define MIKKOO_TICKER_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "err.h"

struct ticker {
	bool active;   /* lock held, flag set: we tick */
	bool paused;   /* queue_ticker_paused: nobody ticks */
	bool foreign;  /* external_ticker set by another ticker */
	bool marker;   /* mikkoo.queue_ticker exists */
	bool prepared; /* the session has the tick statement */
	int queue_id;
	char *sql;       /* the tick statement (owned) */
	long long ticks; /* ticks made by this session */
};

enum ticker_for {
	TICK_FOR_RELAY,  /* any committed new event ticks now */
	TICK_FOR_OTHERS, /* as pgq.ticker() would: ticker_max_lag */
};

/*
 * Become the ticker of queue, as who (recorded in mikkoo.queue_ticker):
 * 1 active (e->msg, code 0, may hold a note: a leftover flag taken
 * back, or one taken without knowing whose); 0 another session holds
 * the queue's ticker lock, the queue's ticker is paused, or another
 * external ticker drives it (t->foreign, e->msg says so) (the caller
 * polls next_batch as before); -1 error (e).  Waits at most wait_max
 * seconds for a running pgq.ticker() call (else it gives the queue back
 * to pgqd and returns 0, saying why in e->msg with code 0).  A role
 * that may not call pgq.set_queue_config also gets 0 and a message:
 * pgqd goes on ticking.
 */
int ticker_start(struct ticker *t, PGconn *pg, const char *queue,
		 const char *who, double wait_max, struct mk_err *e);

/* Tick when there is something to tick (see above); *ticked says. */
int ticker_tick(struct ticker *t, PGconn *pg, const char *queue,
		enum ticker_for why, bool *ticked, struct mk_err *e);

/*
 * Clean stop on a live connection: clear external_ticker (pgqd ticks
 * again) and release the lock.  Best effort; returns -1 with e on error.
 */
int
ticker_stop(struct ticker *t, PGconn *pg, const char *queue, struct mk_err *e);

/* The connection is gone (its lock with it): forget, keep nothing. */
void ticker_forget(struct ticker *t);

#endif
