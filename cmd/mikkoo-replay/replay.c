/* SPDX-License-Identifier: BSD-3-Clause */
/* replay: dead letters re-inserted into PgQ, one transaction per chunk. */
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "replay.h"

/* "{1,2,3}" for an int8[] parameter; caller frees. */
static char *
id_array(const long long *ids, size_t n)
{
	size_t cap = n * 21 + 3, o = 0, i;
	char *s = malloc(cap);

	if (s == NULL)
		return NULL;
	s[o++] = '{';
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s%lld", i ? "," : "",
				      ids[i]);
	s[o++] = '}';
	s[o] = '\0';
	return s;
}

/* Replay (or show) exactly the dead letters in idlist; one transaction. */
static int
replay_chunk(PGconn *c, const char *idlist, const char *stream, bool dry_run,
	     FILE *out, struct replay_stats *st, PGresult **done,
	     struct mk_err *e)
{
	static const char run[] =
		"WITH d AS (DELETE FROM mikkoo.dead_letter WHERE id IN ("
		"  SELECT id FROM mikkoo.dead_letter WHERE id = ANY($1::int8[])"
		"  FOR UPDATE SKIP LOCKED) RETURNING *),"
		" i AS (SELECT d.id, d.queue, d.ev_id AS old_ev_id,"
		"  pgq.insert_event(d.queue, d.ev_type, d.ev_data, d.ev_extra1,"
		"  d.ev_extra2, d.ev_extra3, d.ev_extra4) AS ev_id"
		"  FROM (SELECT * FROM d ORDER BY id OFFSET 0) d)"
		" SELECT id, queue, old_ev_id, ev_id FROM i ORDER BY id";
	/* a slot worker's: through mikkoo.emit() into a stream it relays
	 * (a table change too: the event has the change's fields) */
	static const char emit[] =
		"WITH d AS (DELETE FROM mikkoo.dead_letter WHERE id IN ("
		"  SELECT id FROM mikkoo.dead_letter WHERE id = ANY($1::int8[])"
		"  FOR UPDATE SKIP LOCKED) RETURNING *),"
		" i AS (SELECT d.id, d.queue, d.ev_id AS old_ev_id,"
		"  mikkoo.emit($2, d.ev_type, d.ev_data, d.ev_extra1,"
		"  d.ev_extra2, d.ev_extra3, d.ev_extra4) AS ev_id"
		"  FROM (SELECT * FROM d ORDER BY id OFFSET 0) d)"
		" SELECT id, queue, $2 AS stream, old_ev_id, ev_id FROM i"
		" ORDER BY id";
	static const char dry[] =
		"SELECT id, queue, ev_id AS old_ev_id, NULL::int8 AS ev_id,"
		" true AS dry_run FROM mikkoo.dead_letter"
		" WHERE id = ANY($1::int8[]) ORDER BY id";
	const char *v[] = { idlist, stream };
	PGresult *r;
	int i, n;

	r = pg_exec(c,
		    dry_run  ? dry
		    : stream ? emit
			     : run,
		    !dry_run && stream ? 2 : 1, v,
		    dry_run ? "reading dead "
			      "letters"
			    : "replaying dead letters",
		    e);
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		json_t *o = jsonl_row(r, i);

		jsonl_write(out, o);
		json_decref(o);
	}
	st->replayed += n;
	*done = r;
	return 0;
}

int
replay_ids(PGconn *c, const long long *ids, size_t n, const char *stream,
	   bool dry_run, FILE *out, struct replay_stats *st,
	   void (*missing)(long long id, void *arg), void *arg,
	   struct mk_err *e)
{
	PGresult *r = NULL;
	char *list = id_array(ids, n);
	size_t i;
	int k, rc;

	if (list == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	rc = replay_chunk(c, list, stream, dry_run, out, st, &r, e);
	free(list);
	if (rc < 0)
		return -1;
	/* Which asked-for ids were not there (replayed already, or never
	 * dead letters)? */
	for (i = 0; i < n; i++) {
		for (k = 0; k < PQntuples(r); k++)
			if (strtoll(PQgetvalue(r, k, 0), NULL, 10) == ids[i])
				break;
		if (k == PQntuples(r)) {
			st->missing++;
			if (missing)
				missing(ids[i], arg);
		}
	}
	PQclear(r);
	return 0;
}

int
replay_filter(PGconn *c, const struct dead_filter *f, int chunk,
	      const char *stream, bool dry_run, FILE *out,
	      struct replay_stats *st, struct mk_err *e)
{
	/* Walk the selection by id so each chunk is a fresh snapshot and a
	 * concurrent replay's rows are simply skipped. */
	static const char pick[] =
		"SELECT coalesce(array_agg(id ORDER BY id)::text, '{}')"
		" FROM (SELECT id FROM mikkoo.dead_letter WHERE " DEAD_WHERE
		" AND id > $8::int8 ORDER BY id LIMIT $9::int8) s";
	const char *v[DEAD_NPARAMS + 2];
	char after[24] = "0", lim[16];
	PGresult *r, *done;

	snprintf(lim, sizeof(lim), "%d", chunk);
	dead_params(f, v);
	v[DEAD_NPARAMS] = after;
	v[DEAD_NPARAMS + 1] = lim;
	for (;;) {
		const char *list;
		char *last;

		r = pg_exec(c, pick, DEAD_NPARAMS + 2, v,
			    "selecting dead "
			    "letters",
			    e);
		if (r == NULL)
			return -1;
		list = PQgetvalue(r, 0, 0);
		if (strcmp(list, "{}") == 0) {
			PQclear(r);
			return 0;
		}
		last = strrchr(list, ',');
		snprintf(after, sizeof(after), "%.*s",
			 (int)strcspn(last ? last + 1 : list + 1, "}"),
			 last ? last + 1 : list + 1);
		if (replay_chunk(c, list, stream, dry_run, out, st, &done, e) <
		    0) {
			PQclear(r);
			return -1;
		}
		PQclear(done);
		PQclear(r);
	}
}
