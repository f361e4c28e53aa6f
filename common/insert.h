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
 * Never: prints (results go to the FILE the caller gives).
 */
#ifndef MIKKOO_INSERT_H
#define MIKKOO_INSERT_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "err.h"
#include "pgq.h"

struct inserter {
	struct pgq_conn *pg;    /* NULL for a dry run */
	json_t *rows;           /* the pending chunk */
	long first_line;
	size_t inserted, failed;
};

void inserter_init(struct inserter *in, struct pgq_conn *pg);
void inserter_release(struct inserter *in);

/*
 * Check a record (borrowed) and add it to the chunk.  default_queue is
 * used when the record has none.  -1 with EX_DATAERR and a message
 * without position (the caller adds "NAME:LINE:COL: ").
 */
int inserter_add(struct inserter *in, long line, json_t *rec,
		 const char *default_queue, struct mk_err *e);

/* Records waiting in the chunk. */
size_t inserter_pending(const struct inserter *in);

/* Drop the chunk (a bad line in it: nothing of it is inserted). */
void inserter_discard(struct inserter *in);

/*
 * Insert the chunk in one transaction and write one result line per
 * record to out: {"line":N,"ev_id":ID,"queue":Q[,"message_id":U]}
 * (dry run: "ev_id":null,"dry_run":true).  -1 with EX_DATAERR when the
 * server refused the chunk (nothing of it inserted; reading may go on),
 * or EX_UNAVAILABLE when the connection is gone.
 */
int inserter_flush(struct inserter *in, FILE *out, struct mk_err *e);

#endif
