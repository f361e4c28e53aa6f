/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pgq: the relay's PostgreSQL session: PgQ consumer calls, the batch
 * cursor and the settle-and-finish transaction.
 *
 * Owns: one PGconn, every PGresult it creates (cleared on every path),
 * the SQL text.  All values go through parameters ($1); nothing from the
 * config or the data is ever spliced into SQL.
 * Never: knows AMQP, logs, sleeps.
 *
 * Error codes in mk_err: EX_UNAVAILABLE when the server cannot be reached
 * or the connection broke (retry later), EX_NOPERM for authentication or
 * privilege failures, EX_CONFIG for a bad connection string, EX_SOFTWARE
 * for an SQL error we did not expect (e->msg has the server's message).
 */
#ifndef MIKKOO_PGQ_H
#define MIKKOO_PGQ_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "err.h"
#include "event.h"

struct pgq_conn {
	PGconn *pg;
	PGresult *row;          /* the current single-row result */
	bool in_fetch;          /* a FETCH is streaming */
	bool in_tx;
	int chunk_rows;         /* rows seen in the current FETCH */
	int chunk_want;         /* rows asked for */
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

/* pgq.create_queue; *created = true when it did not exist. */
int pgq_create_queue(struct pgq_conn *c, const char *queue, bool *created,
		     struct mk_err *e);
int pgq_register(struct pgq_conn *c, const char *queue, const char *consumer,
		 bool *created, struct mk_err *e);
int pgq_unregister(struct pgq_conn *c, const char *queue,
		   const char *consumer, struct mk_err *e);

/* Session advisory lock on (queue, consumer): one relay per consumer. */
int pgq_try_lock(struct pgq_conn *c, const char *queue, const char *consumer,
		 bool *got, struct mk_err *e);

/* pgq.next_batch: *batch_id = -1 when there is no batch. */
int pgq_next_batch(struct pgq_conn *c, const char *queue,
		   const char *consumer, long long *batch_id,
		   struct mk_err *e);

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
 * Next event of the batch into ev (strings borrowed until the next call):
 * 1 an event; 2 the end of a chunk: the connection is idle (pgq_settle
 * may run) and the next call starts the next FETCH; 0 the batch is done;
 * -1 error.  *size is the event's octet length (ev_type, ev_data and the
 * extras); when it is over max_bytes the text fields arrive NULL.
 */
int pgq_fetch(struct pgq_conn *c, int chunk, struct mk_event *ev,
	      size_t *size, struct mk_err *e);

/* A failed event to settle: retried or dead-lettered. */
struct pgq_failure {
	long long ev_id;
	bool dead;              /* dead-letter; else pgq retry */
	const char *reason;     /* for the dead-letter row */
};

/*
 * In the batch's transaction: put the retried failures back with
 * pgq.event_retry_raw (retry_seconds from now, ev_retry + 1) and copy the
 * dead ones into mikkoo.dead_letter, with one scan of the batch.  Must
 * not be called while a FETCH is streaming.
 */
int pgq_settle(struct pgq_conn *c, long long batch_id, const char *queue,
	       const char *consumer, int retry_seconds,
	       const struct pgq_failure *f, size_t n, struct mk_err *e);

/* Close the cursor, pgq.finish_batch, COMMIT. */
int pgq_batch_finish(struct pgq_conn *c, long long batch_id,
		     struct mk_err *e);

/* Give up the batch: ROLLBACK (it is read again next time). */
void pgq_batch_abandon(struct pgq_conn *c);

/* pgq.get_consumer_info's pending_events (-1 when unknown). */
long long pgq_pending(struct pgq_conn *c, const char *queue,
		      const char *consumer);

#endif
