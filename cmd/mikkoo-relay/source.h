/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * source: where the batch pipeline's events come from, and where their
 * failures are settled.  The pipeline (pipeline.c) knows only this; the
 * first source is PgQ (source_pgq.c).
 *
 * A source hands out batches of events in order.  A batch is open from
 * next() until finish() (every event confirmed or settled: the source
 * forgets it) or abandon() (the source hands it out again: at-least-once).
 * A batch may be opened again from an event of it (a pipeline holding
 * the line after a broker refusal reads it again from there), or from
 * ev_id + 1 of an event of it: from the event after that one.
 * Never: talks to RabbitMQ, logs, decides an event's fate.
 */
#ifndef MIKKOO_SOURCE_H
#define MIKKOO_SOURCE_H

#include <stddef.h>

#include "err.h"
#include "event.h"
#include "fate.h"

enum source_fetch {
	SOURCE_ERROR = -1,
	SOURCE_DONE,  /* the batch has no more events */
	SOURCE_EVENT, /* *ev is the next one */
	SOURCE_PAUSE, /* a read ended: settle() may run now */
};

struct source;

struct source_ops {
	/* The next batch to relay: its id in *batch_id, -1 none. */
	int (*next)(struct source *s, long long *batch_id, struct mk_err *e);
	/*
	 * Open batch_id for reading, from its event from_id on (0: all).
	 * An event over max_bytes arrives with its size and no text.
	 */
	int (*open)(struct source *s, long long batch_id, size_t max_bytes,
		    long long from_id, struct mk_err *e);
	/* The next event (borrowed until the next call; ev->size says
	 * how big it is, see event.h). */
	enum source_fetch (*fetch)(struct source *s, struct mk_event *ev,
				   struct mk_err *e);
	/*
	 * Store f[0..n) (retries and dead letters) in the open batch; only
	 * between reads (after SOURCE_PAUSE or SOURCE_DONE).  0 only if
	 * the source stored exactly n events.
	 */
	int (*settle)(struct source *s, const struct fate *f, size_t n,
		      struct mk_err *e);
	/* The batch is done: forget it, with what settle stored. */
	int (*finish)(struct source *s, struct mk_err *e);
	/* Give it up: nothing of it is kept; it comes again. */
	void (*abandon)(struct source *s);
	/*
	 * Optional.  The event's place in the open batch, for comparing
	 * two events' order (NULL: the ev_id is its place, as in PgQ; a
	 * slot's events come in commit order, not in ev_id order).
	 */
	long long (*rank)(struct source *s, long long ev_id);
	/*
	 * Optional.  Keep the source's connection alive while the
	 * pipeline waits on RabbitMQ (called at least every 200 ms, and
	 * as confirms come in), and do what work of the next batch can be
	 * done meanwhile (a slot's reads ahead).
	 */
	int (*service)(struct source *s, struct mk_err *e);
};

struct source {
	const struct source_ops *ops;
	void *impl;
};

#endif
