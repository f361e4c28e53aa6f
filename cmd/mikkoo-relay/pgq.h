/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pgq: the relay's PgQ consumer calls: setup, the single-instance lock,
 * the batch cursor and the settle-and-finish transaction.
 *
 * Owns: one PGconn (through pg.h), the batch's cursor and current row,
 * every PGresult it creates (cleared on every path), the SQL text.
 * Never: knows AMQP, logs, sleeps, decides an event's fate (fate.h does).
 * Error codes in mk_err are pg.h's classes.
 */
#ifndef MIKKOO_PGQ_H
#define MIKKOO_PGQ_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "err.h"
#include "event.h"
#include "fate.h"

struct pgq_conn {
	PGconn *pg;
	PGresult *row; /* the current single-row result */
	bool in_fetch; /* a FETCH is streaming */
	bool in_tx;
	int chunk_rows; /* rows seen in the current FETCH */
	int chunk_want; /* rows asked for */
};

/*
 * Connect with the relay's session defaults (application_name, a connect
 * timeout, TCP keepalives and tcp_user_timeout so a dead peer is noticed)
 * unless the URL sets them.  display is the masked URL for messages.
 */
int pgq_connect(struct pgq_conn *c, const char *url, const char *display,
		const char *appname, double timeout, struct mk_err *e);
void pgq_disconnect(struct pgq_conn *c);
bool pgq_alive(struct pgq_conn *c);

/*
 * pgq.create_queue and pgq.register_consumer, race-free between relays:
 * *created when the queue is new, *registered when the consumer is.
 */
int pgq_setup(struct pgq_conn *c, const char *queue, const char *consumer,
	      bool *created, bool *registered, struct mk_err *e);
int pgq_unregister(struct pgq_conn *c, const char *queue, const char *consumer,
		   struct mk_err *e);

/* Session advisory lock on (queue, consumer): one relay per consumer. */
int pgq_try_lock(struct pgq_conn *c, const char *queue, const char *consumer,
		 bool *got, struct mk_err *e);

/* pgq.next_batch: *batch_id = -1 when there is no batch. */
int pgq_next_batch(struct pgq_conn *c, const char *queue, const char *consumer,
		   long long *batch_id, struct mk_err *e);

/*
 * Open the batch's transaction and cursor.  Rows are then read with
 * pgq_fetch(): each FETCH asks for up to chunk rows and streams them one
 * by one (libpq single-row mode), so memory is one row whatever the
 * batch and event sizes.  ev_data of an event over max_bytes is not
 * transferred: the row arrives with ev_data NULL and *oversize set.
 */
int pgq_batch_open(struct pgq_conn *c, long long batch_id, size_t max_bytes,
		   struct mk_err *e);
/*
 * The same, from event from_ev_id on: the batch read again after its
 * events before from_ev_id were settled in memory (a relay holding the
 * line after a broker refusal, see relay.h).  0 reads it all.
 */
int
pgq_batch_open_from(struct pgq_conn *c, long long batch_id, size_t max_bytes,
		    long long from_ev_id, struct mk_err *e);

enum pgq_fetch_result {
	PGQ_FETCH_ERROR = -1,
	PGQ_FETCH_DONE,      /* the batch has no more events */
	PGQ_FETCH_EVENT,     /* *ev is the next event */
	PGQ_FETCH_CHUNK_END, /* a FETCH ended: the connection is idle
				   (pgq_settle may run); the next call
				   starts the next one */
};

/*
 * Next event of the batch into ev (strings borrowed until the next
 * call).  ev->size is the event's octet length (ev_type, ev_data and
 * the extras); when it is over max_bytes the text fields arrive NULL
 * (event_map refuses such an event: the size rule is event.c's).
 */
enum pgq_fetch_result
pgq_fetch(struct pgq_conn *c, int chunk, struct mk_event *ev, struct mk_err *e);

/*
 * In the batch's transaction: put the FATE_RETRY events back with
 * pgq.event_retry_raw (retry_seconds from now, ev_retry + 1) and copy
 * the FATE_DEAD ones into mikkoo.dead_letter with their reasons, with one
 * scan of the batch.  Must not be called while a FETCH is streaming.
 * 0 only when the database stored exactly n events (retried or dead):
 * anything else is EX_SOFTWARE and the batch must not be finished.
 */
int pgq_settle(struct pgq_conn *c, long long batch_id, const char *queue,
	       const char *consumer, int retry_seconds, const struct fate *f,
	       size_t n, struct mk_err *e);

/*
 * The JSON pgq_settle sends for f[0..n): an array of n objects {ev_id,
 * dead, reason}, in f's order; *out is the caller's to free.
 * Every jansson call is checked: the array has n members or this fails
 * (EX_SOFTWARE; EX_OSERR when memory ran out); a published fate in f is
 * an error too.  Pure, for the fuzz target fuzz-settle.
 */
int
pgq_settle_json(const struct fate *f, size_t n, char **out, struct mk_err *e);

/* Close the cursor, pgq.finish_batch, COMMIT. */
int pgq_batch_finish(struct pgq_conn *c, long long batch_id, struct mk_err *e);

/* Give up the batch: ROLLBACK (it is read again next time). */
void pgq_batch_abandon(struct pgq_conn *c);

/*
 * The consumer's pending events (pgq.get_consumer_info; -1 unknown),
 * lag: the age of its last finished tick while the queue has a newer
 * tick, else 0 (caught up: nothing ticked is waiting), and tick_age:
 * the age of the queue's last tick, whoever made it (pgq's ticker_lag;
 * it grows without bound when nobody ticks the queue).  Between batches.
 */
int
pgq_gauges(struct pgq_conn *c, const char *queue, const char *consumer,
	   long long *pending, double *lag, double *tick_age, struct mk_err *e);

#endif
