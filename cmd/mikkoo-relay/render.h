/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * render: decoded row changes as the message bodies mikkoo.capture()
 * sends for the same changes (mikkoo-capture(7)).
 *
 * Owns: what a change's body holds when the WAL says less than a
 * trigger sees, and rendering values exactly as to_jsonb() does by
 * letting PostgreSQL do it: one prepared statement per table definition
 * (mikkoo._logical_render_sql in mikkoo.sql), rows queued in a round
 * with render_add() and rendered by render_run(), one round trip per
 * table definition in the round.  The prepared definitions belong to
 * the session (struct render) and serve any number of rounds, so one
 * round's bodies stay while the next one is queued.  Values travel as their text and are read by
 * their types' input functions (domains as their base types), never
 * through a cast, so no code of a table's owner runs in the relay's
 * session; types mikkoo does not trust are rendered through their
 * output functions, as the capture's triggers do.
 *
 * What the WAL gives and the body then holds:
 *   I  new: the row.  diff: its columns that are not null.
 *   U  with REPLICA IDENTITY FULL, old: the whole old row, and new,
 *      diff as the capture's.  Otherwise old holds only the replica
 *      identity's columns (the key; the old key when the update changed
 *      it), and diff every column of new that old does not hold or
 *      holds with another value (a superset of what changed).
 *      An unchanged TOASTed value is not in the WAL's new row: it is
 *      taken from the old row under FULL, else left out of new (and so
 *      of diff, rightly: it did not change).
 *   D  old: the whole row under FULL, else only the identity's columns.
 *   T  id null, old, new and diff {}.
 * id: the table's primary key, as the capture's; recorded_at: the
 * transaction's commit time, UTC; timestamps in UTC (the session's
 * TimeZone, which render_new sets, with DateStyle and search_path).
 *
 * Memory: each round's rows (the caller bounds them with render_pending
 * and render_bytes) and the prepared definitions (at most RENDER_PLANS,
 * the least recently used of those no unrendered row needs
 * deallocated).
 * A row PostgreSQL cannot render (it fails alone) gets an error and a
 * body with its values as JSON strings, so nothing is lost.
 * Never: reads the stream, prints.
 */
#ifndef MIKKOO_RENDER_H
#define MIKKOO_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "err.h"
#include "pgoutput.h"
#include "sbuf.h"

#define RENDER_PLANS 256

struct render;       /* the session and its prepared definitions */
struct render_round; /* rows queued, then rendered, together */

/* One rendered row. */
struct render_row {
	const char *body; /* NUL-terminated, the capture's JSON */
	size_t len;
	bool unchanged;    /* an update whose diff is {} */
	const char *error; /* NULL, or why PostgreSQL could not render
				* it (body then holds its values as texts) */
};

/* pg is borrowed (an ordinary connection to the slot's database). */
int render_new(struct render **out, PGconn *pg, struct mk_err *e);
/* After every round of it is freed. */
void render_free(struct render *r);

/* A round (NULL: out of memory); freed with the render it served. */
struct render_round *render_round_new(void);
void render_round_free(struct render *r, struct render_round *rd);

/*
 * Queue in rd a change of rel (action I, U, D or R for a snapshot's row)
 * that committed at commit_time (microseconds since 2000-01-01 UTC); the
 * tuples are copied.  A round that ran starts again (render_reset).
 * Returns its index among the round's rows, or -1
 * with e (the table's definition cannot be prepared: EX_CONFIG without
 * mikkoo.sql's function, EX_SOFTWARE, EX_UNAVAILABLE).
 */
int render_add(struct render *r, struct render_round *rd,
	       const struct pgo_relation *rel, char action, char old_kind,
	       const struct pgo_tuple *oldt, const struct pgo_tuple *newt,
	       int64_t commit_time, struct mk_err *e);

/*
 * The note of the last definition render_add prepared, if it has one
 * (columns sent as their text, see the top), for the caller to log and
 * free; NULL otherwise.
 */
char *render_take_note(struct render *r);

size_t render_pending(const struct render_round *rd);
size_t render_bytes(const struct render_round *rd);

/* Render every row of rd; -1 with e when the session failed. */
int render_run(struct render *r, struct render_round *rd, struct mk_err *e);

/* Row i of rd once it ran (valid until render_reset). */
const struct render_row *render_result(const struct render_round *rd, size_t i);

/* Forget rd's rows, queued or rendered (the prepared plans stay). */
void render_reset(struct render *r, struct render_round *rd);

/* A TRUNCATE's body for rel into b (no round trip). */
void render_truncate(struct sbuf *b, const struct pgo_relation *rel,
		     int64_t commit_time);

/* "schema.table" as the capture names it, JSON-escaped, into b. */
void render_table_name(struct sbuf *b, const struct pgo_relation *rel);

/* commit_time as recorded_at: "2026-12-02T10:15:00.123456Z". */
void render_time(char *buf, size_t sz, int64_t pg_time_us);

#endif
