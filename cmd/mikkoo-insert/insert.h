/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * insert: events into PgQ, many per statement (mikkoo-insert).
 *
 * Owns: the event record (queue, exchange, routing_key, body,
 * content_type, properties, headers, audit), its validation, and chunks
 * of records inserted with one statement and one transaction each, in
 * input order (ev_ids grow with the line numbers).  Audited events get
 * a message_id (a new UUID unless the properties have one) and a
 * pgq_queue header, and their mikkoo.audit row in the same transaction,
 * like mikkoo.insert_audited_event.  The mapping is mikkoo's:
 * ev_type = routing key, ev_data = body, ev_extra1 = exchange,
 * ev_extra2 = content type, ev_extra3 = properties, ev_extra4 = headers.
 *
 * Speed: a chunk travels as binary text[] parameters (nothing for the
 * server to parse) and is inserted through pgq.insert_event (so a
 * least-privilege writer can use the tool); while the server inserts one
 * chunk, the next is read and checked (one chunk in flight).
 * Never: prints (results go to the FILE the caller gives).
 */
#ifndef MIKKOO_INSERT_H
#define MIKKOO_INSERT_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "err.h"
#include "pg.h"

struct insert_chunk;

struct inserter {
	PGconn *pg;                /* NULL for a dry run */
	struct insert_chunk *cur;  /* being filled */
	struct insert_chunk *sent; /* in flight, or NULL */
	size_t inserted, failed;
};

int inserter_init(struct inserter *in, PGconn *pg);
void inserter_release(struct inserter *in);

/*
 * Check a record (borrowed) and add it to the chunk.  default_queue is
 * used when the record has none.  -1 with EX_DATAERR and a message
 * without position (the caller adds "NAME:LINE:COL: ").
 */
int inserter_add(struct inserter *in, long line, json_t *rec,
		 const char *default_queue, struct mk_err *e);

/* Records waiting in the chunk being filled. */
size_t inserter_pending(const struct inserter *in);
/* Line of the first record of that chunk. */
long inserter_first_line(const struct inserter *in);

/* Drop the chunk being filled (a bad line in it). */
void inserter_discard(struct inserter *in);

/*
 * Send the chunk being filled (one transaction), after collecting the
 * result of the one in flight, whose lines are then written to out:
 * {"line":N,"ev_id":ID,"queue":Q[,"message_id":U]} (dry run: "ev_id":
 * null,"dry_run":true).  -1 with EX_DATAERR when the server refused the
 * chunk whose result was collected (nothing of it inserted; going on is
 * fine), or EX_UNAVAILABLE when the connection is gone.
 */
int inserter_flush(struct inserter *in, FILE *out, struct mk_err *e);

/* Collect the chunk in flight; same results and errors. */
int inserter_finish(struct inserter *in, FILE *out, struct mk_err *e);

#endif
