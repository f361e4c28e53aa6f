/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * inspect: read-only views of a PgQ queue for mikkoo-inspect.
 *
 * Owns: the queries.  Everything runs in a READ ONLY transaction that is
 * rolled back: inspecting never opens, finishes or advances a batch.
 * Records stream out one at a time (single-row mode), so a huge queue
 * piped into head(1) costs nothing.
 * Never: prints anything but records on out.
 */
#ifndef MIKKOO_INSPECT_H
#define MIKKOO_INSPECT_H

#include <stdio.h>

#include "dead.h"
#include "err.h"
#include "pg.h"

enum inspect_what {
	INSPECT_STATUS,   /* one record per consumer */
	INSPECT_PENDING,  /* events the consumer has not finished */
	INSPECT_RETRY,    /* the consumer's events in pgq.retry_queue */
	INSPECT_DEAD,     /* rows of mikkoo.dead_letter */
	INSPECT_CAPTURES, /* rows of mikkoo.captures */
	INSPECT_SLOTS,    /* the replication slots of mikkoo.slots */
};

struct inspect_opts {
	const char *queue;
	const char *consumer; /* NULL: all (status), "mikkoo" otherwise */
	long limit;           /* 0: no limit */
	struct dead_filter dead;
	/* slots: {"slot": "worker", ...} from the configuration, or NULL */
	const char *slot_workers;
};

/*
 * Write the records; *count is how many.  EX_NOINPUT when the queue, the
 * consumer or the table or view read (dead, captures) does not exist.
 * Dead letters and captures cover every queue when o->queue is NULL;
 * a dead letter's queue may also be a slot worker's name (no PgQ queue
 * then).  Slots: one record per slot recorded in mikkoo.slots.
 */
int inspect_run(PGconn *c, enum inspect_what what, const struct inspect_opts *o,
		FILE *out, long *count, struct mk_err *e);

#endif
