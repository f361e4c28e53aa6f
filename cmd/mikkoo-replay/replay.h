/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * replay: dead letters back into their PgQ queue (mikkoo-replay).
 *
 * Owns: the replay transaction.  Each chunk of dead-letter ids is one
 * transaction: the rows are locked (FOR UPDATE SKIP LOCKED, so two
 * replays running at once never insert one event twice), deleted, and
 * their original ev_type, ev_data and ev_extra1..4 inserted with
 * pgq.insert_event (a new ev_id), in id order; with a stream, through
 * mikkoo.emit(stream, ...) instead: a slot worker's dead letters
 * (table changes too: the event carries the change's fields) go back
 * to a worker that relays that stream.  Either all of a chunk
 * happens or none of it.  A dry run reads and reports, changes nothing.
 * Never: prints anything but result records on out.
 */
#ifndef MIKKOO_REPLAY_H
#define MIKKOO_REPLAY_H

#include <stdbool.h>
#include <stdio.h>

#include "dead.h"
#include "err.h"
#include "pg.h"

struct replay_stats {
	long replayed; /* events inserted (or that would be) */
	long missing;  /* ids asked for that are not dead letters */
};

/*
 * Replay the dead letters the filter selects, chunk rows at a time.
 * Records {"id":..,"queue":..,"old_ev_id":..,"ev_id":..} go to out.
 */
int replay_filter(PGconn *c, const struct dead_filter *f, int chunk,
		  const char *stream, bool dry_run, FILE *out,
		  struct replay_stats *st, struct mk_err *e);

/*
 * Replay these ids (a chunk, from JSON lines): ids that are not (or no
 * longer) dead letters are counted in st->missing and reported to the
 * caller through the missing callback.
 */
int replay_ids(PGconn *c, const long long *ids, size_t n, const char *stream,
	       bool dry_run, FILE *out, struct replay_stats *st,
	       void (*missing)(long long id, void *arg), void *arg,
	       struct mk_err *e);

#endif
