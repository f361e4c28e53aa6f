/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * source_pgq: PgQ as the pipeline's source (source.h): pgq.next_batch,
 * the batch's rows read in chunks, retries with pgq.event_retry_raw and
 * dead letters into mikkoo.dead_letter, pgq.finish_batch.
 * Owns: the worker's queue, consumer and retry delay as the source uses
 * them; the connection stays the worker's (struct pgq_conn).
 */
#ifndef MIKKOO_SOURCE_PGQ_H
#define MIKKOO_SOURCE_PGQ_H

#include "pgq.h"
#include "source.h"

struct source_pgq {
	struct source src;
	struct pgq_conn *pg;
	const char *queue;
	const char *consumer;
	int retry_delay; /* seconds */
	int chunk;       /* rows per FETCH */
	long long batch_id;
};

/* Make s a source over pg for this queue and consumer (strings are
 * borrowed: the worker's configuration). */
void
source_pgq_init(struct source_pgq *s, struct pgq_conn *pg, const char *queue,
		const char *consumer, int retry_delay, int chunk);

#endif
