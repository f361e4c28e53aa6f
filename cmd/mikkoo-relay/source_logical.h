/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * source_logical: a replication slot as the pipeline's source (source.h),
 * over logical.h, for the workers with source: logical.
 *
 * Owns: the logical source's life (opened on demand, closed on any error
 * of its sessions: reopened, it streams again from the slot's confirmed
 * position, so what was not confirmed comes again), the batch's events
 * in the stream's (commit) order and each one's state, retries, dead
 * letters and the moment the slot's position may move:
 *   - a batch stays in memory until every event of it is settled;
 *     abandoned (the line held, a stop, a failure on the RabbitMQ side)
 *     it is handed out again under the same id, from the event asked;
 *   - a retry (fate.h's RETRY: a refusal for the event's own sake) is
 *     the event published again, after retry_delay seconds, before
 *     anything after its batch: there is no retry queue, the line is
 *     held at the batch and the slot's position does not move past it
 *     meanwhile.  Events of the same batch after it may have gone out
 *     before it (as with PgQ's retry queue);
 *   - a dead letter is a row of mikkoo.dead_letter (queue: the worker's
 *     name, consumer: the slot, batch_id NULL), committed before the
 *     batch may finish; a forged or unrenderable event (ev->refused)
 *     is one at once (event_map refuses it);
 *   - finish() confirms the batch's position (logical_finish) once no
 *     retry is left.
 * Never: publishes, decides a fate, logs (the worker logs the warnings
 * of logical_warnings()).
 */
#ifndef MIKKOO_SOURCE_LOGICAL_H
#define MIKKOO_SOURCE_LOGICAL_H

#include <stdbool.h>
#include <stddef.h>

#include "logical.h"
#include "source.h"

struct source_logical {
	struct source src;
	struct logical_config cfg; /* strings borrowed: the worker's */
	const char *worker;        /* mikkoo.dead_letter's queue */
	int retry_delay;           /* seconds */
	struct logical *lg;        /* NULL: closed */

	long long batch_id, next_id;
	bool have;         /* a batch read from the stream is open */
	size_t n;          /* its events */
	unsigned char *st; /* each one's state (source_logical.c) */
	int *retries;      /* each one's failures so far */
	size_t cap;
	size_t pos;       /* where fetch looks next */
	double retry_at;  /* the retry round's time (monotonic) */
	size_t last_rank; /* rank's guess */
	char lsn[24];     /* the fetched event's "lsn" header */
};

/*
 * Make s a source for a worker (strings borrowed until
 * source_logical_close); nothing is opened yet.
 */
void
source_logical_init(struct source_logical *s, const struct logical_config *cfg,
		    const char *worker, int retry_delay);

/* Open the slot's stream if it is closed.  0, or -1 with e. */
int source_logical_open(struct source_logical *s, struct mk_err *e);

bool source_logical_alive(const struct source_logical *s);

/* The open source (NULL: closed), for warnings and gauges. */
struct logical *source_logical_handle(struct source_logical *s);

/* Keep the stream alive while idle; an error closes the source. */
int source_logical_service(struct source_logical *s, struct mk_err *e);

/* Close (the confirmed position is sent and recorded); forgets the
 * batch: it comes again from the slot. */
void source_logical_close(struct source_logical *s);

/* Close and free everything (s may be init'ed again). */
void source_logical_release(struct source_logical *s);

#endif
