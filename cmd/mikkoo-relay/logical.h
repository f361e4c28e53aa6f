/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * logical: the logical-decoding source.  A replication slot's table
 * changes (of the publications) and mikkoo.emit() events (of chosen
 * streams) as PgQ-shaped events, batch by batch, so that the relay maps
 * and publishes them exactly as PgQ's.
 *
 * Owns: opening the source (an ordinary connection and a replication
 * one, the slot's checks and creation (slot.h), the emit key, the
 * warnings an operator needs at start), turning the stream into events,
 * and the position: logical_finish() confirms the end of the last
 * transaction whose every event was in a finished batch (a transaction
 * larger than a batch is confirmed with the batch that holds its
 * commit), and records it in mikkoo.slots at most every few seconds.
 *
 * An event, as pgq.get_batch_events() would give it:
 *   table change (kind I U D T): ev_type the routing key (the template's
 *     {schema}, {table}, {action} replaced, in that order, as
 *     mikkoo.capture() does), ev_data the capture's body (render.h),
 *     ev_extra1 the exchange, ev_extra2 "application/json", ev_extra4
 *     the headers {"table" : ..., "action" : ...}; an update whose diff
 *     is {} is left out with skip_unchanged;
 *   emitted (E): the fields mikkoo.emit() was given;
 *   forged (F): a message with mikkoo.emit's prefix that mikkoo.emit()
 *     did not write: never publish it; ev_data holds its content after
 *     the place of the key, error says why.
 * ev_id: a WAL position inside the record that wrote the event: a
 * change's record start plus its index among the events of that record
 * (COPY writes many rows in one record), an emitted event's record end
 * less one (what mikkoo.emit() returned).  Unique, the same on every
 * resend.  ev_time: the commit time; ev_txid: the writing transaction's
 * txid (with its epoch, as txid_current() says it).
 * Changes of tables in schema mikkoo (the relay's own bookkeeping, which
 * a FOR ALL TABLES publication would feed back) are left out.
 *
 * Memory: two batches (cfg.max_events events, about cfg.max_bytes bytes
 * each: the open one, and the next, read ahead while RabbitMQ confirms
 * the open one) and the relation cache; a transaction of any size
 * streams through.
 * Never: publishes, dead-letters, prints (warnings are handed out).
 */
#ifndef MIKKOO_LOGICAL_H
#define MIKKOO_LOGICAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "err.h"
#include "event.h"
#include "lsn.h"

struct logical_config {
	const char *url;     /* the database (libpq URL) */
	const char *display; /* url masked, for messages */
	const char *appname;
	double connect_timeout;
	const char *slot;
	bool create_slot; /* create it when missing and unrecorded */
	const char *const *publications; /* table changes; none: only */
	size_t npublications;            /* events (pub. mikkoo_emit) */
	const char *const *streams;      /* mikkoo.emit() streams relayed */
	size_t nstreams;
	const char *exchange;    /* of table changes */
	const char *routing_key; /* template, "{schema}.{table}" */
	bool skip_unchanged;
	size_t max_events;   /* per batch */
	size_t max_bytes;    /* per batch, about */
	double wait;         /* seconds a batch waits for its first */
	double record_every; /* seconds between mikkoo.slots writes */
};

struct logical_event {
	struct mk_event ev;
	char kind;          /* I U D T, E, F (see above) */
	mk_lsn lsn;         /* the WAL position of its record */
	mk_lsn commit_lsn;  /* its transaction's commit (0: none) */
	const char *table;  /* I U D T: "schema.table" */
	const char *stream; /* E */
	const char *error;  /* F; or a change PostgreSQL could not
				       * render (ev_data: values as texts) */
};

struct logical;

int logical_open(struct logical **out, const struct logical_config *cfg,
		 struct mk_err *e);

/*
 * What the operator should know (NULL-terminated): found at open, and
 * added while streaming (a table whose columns are sent as text); the
 * list only grows, so a caller remembers how many it has logged.
 */
const char *const *logical_warnings(const struct logical *s);

/* The slot was created by this open. */
bool logical_slot_created(const struct logical *s);

/*
 * The next batch: waits up to cfg.wait for a first event, then takes
 * what has arrived, up to the limits (and past them the commit that
 * follows at once, or the events of one more message).  Returns the number of events
 * (0: none came; positions of event-less transactions are confirmed on
 * the way), or -1 with e (the stream or a session broke: reopen).
 * The previous batch must be finished.
 */
long logical_next_batch(struct logical *s, struct mk_err *e);

/* Event i of the batch (borrowed until the next batch). */
const struct logical_event *logical_event(const struct logical *s, size_t i);

/*
 * Every event of the batch is settled (RabbitMQ confirmed it, or it is a
 * committed dead letter): confirm the position.
 */
int logical_finish(struct logical *s, struct mk_err *e);

/*
 * Keep the stream alive (call at least every second), and while a batch
 * is open read the next one ahead without waiting, rendering it once it
 * is full: the caller calls this while it waits on RabbitMQ, so that
 * the next batch is ready when the open one finishes.  A failure of
 * that reading is kept for logical_next_batch(); -1 only when the
 * stream's session failed.
 */
int logical_service(struct logical *s, struct mk_err *e);

/*
 * The source's ordinary session (mikkoo.dead_letter, gauges), for the
 * caller's own statements between batches; borrowed.
 */
PGconn *logical_conn(struct logical *s);

/* The slot's name (the configuration's, borrowed). */
const char *logical_slot(const struct logical *s);

/* The position confirmed so far. */
mk_lsn logical_confirmed(const struct logical *s);

/* Send the confirmed position now, record it, and close. */
void logical_close(struct logical *s);

#endif
