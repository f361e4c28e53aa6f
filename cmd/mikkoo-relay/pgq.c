/* SPDX-License-Identifier: BSD-3-Clause */
/* pgq: PgQ consumer calls and the batch transaction over libpq. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg.h"
#include "pgq.h"

#define CURSOR "mikkoo_batch"

int
pgq_connect(struct pgq_conn *c, const char *url, const char *display,
	    const char *appname, double timeout, struct mk_err *e)
{
	memset(c, 0, sizeof(*c));
	return pg_connect(&c->pg, url, display, appname, timeout, e);
}

void
pgq_disconnect(struct pgq_conn *c)
{
	PQclear(c->row);
	c->row = NULL;
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->in_fetch = c->in_tx = false;
}

bool
pgq_alive(struct pgq_conn *c)
{
	return pg_alive(c->pg);
}

int
pgq_setup(struct pgq_conn *c, const char *queue, const char *consumer,
	  bool *created, bool *registered, struct mk_err *e)
{
	/*
	 * pgq.create_queue and pgq.register_consumer insert into tables
	 * with unique names: two workers starting at once (several queues
	 * with one consumer_name, or two relays) would collide there.  A
	 * transaction lock serialises every mikkoo relay's setup in this
	 * database; it is held for milliseconds, once per connect.
	 */
	const char *v[] = { queue, consumer };
	PGresult *r;

	if (pg_command(c->pg, "BEGIN", "BEGIN", e) < 0)
		return -1;
	r = pg_exec(c->pg,
		    "SELECT pg_advisory_xact_lock(hashtext('mikkoo'),"
		    " hashtext('setup'))",
		    0, NULL, "advisory lock", e);
	if (r == NULL)
		goto fail;
	PQclear(r);
	/*
	 * Only what is missing: creating a queue takes pgq_admin, and a
	 * relay whose role is only a pgq_reader must still start on a queue
	 * that exists (the catalog is readable by every role).
	 */
	r = pg_exec(c->pg,
		    "SELECT EXISTS (SELECT 1 FROM pgq.queue"
		    "  WHERE queue_name = $1),"
		    " EXISTS (SELECT 1 FROM pgq.subscription s"
		    "  JOIN pgq.queue q ON q.queue_id = s.sub_queue"
		    "  JOIN pgq.consumer k ON k.co_id = s.sub_consumer"
		    "  WHERE q.queue_name = $1 AND k.co_name = $2)",
		    2, v, "looking up the queue and consumer", e);
	if (r == NULL)
		goto fail;
	*created = PQgetvalue(r, 0, 0)[0] != 't';
	*registered = PQgetvalue(r, 0, 1)[0] != 't';
	PQclear(r);
	if (*created) {
		r = pg_exec(c->pg, "SELECT pgq.create_queue($1)", 1, v,
			    "pgq.create_queue", e);
		if (r == NULL)
			goto fail;
		PQclear(r);
	}
	if (*registered) {
		r = pg_exec(c->pg, "SELECT pgq.register_consumer($1, $2)", 2, v,
			    "pgq.register_consumer", e);
		if (r == NULL)
			goto fail;
		PQclear(r);
	}
	return pg_command(c->pg, "COMMIT", "COMMIT", e);
fail:
	r = PQexec(c->pg, "ROLLBACK");
	PQclear(r);
	return -1;
}

int
pgq_unregister(struct pgq_conn *c, const char *queue, const char *consumer,
	       struct mk_err *e)
{
	const char *v[] = { queue, consumer }, *val;
	PGresult *r;

	if (pg_value(c->pg, "SELECT pgq.unregister_consumer($1, $2)", 2, v,
		     "pgq.unregister_consumer", &r, &val, e) < 0)
		return -1;
	PQclear(r);
	return 0;
}

int
pgq_try_lock(struct pgq_conn *c, const char *queue, const char *consumer,
	     bool *got, struct mk_err *e)
{
	const char *v[] = { queue, consumer }, *val;
	PGresult *r;

	if (pg_value(c->pg,
		     "SELECT pg_try_advisory_lock(hashtext('mikkoo'), "
		     "hashtext($1 || '/' || $2))",
		     2, v, "advisory lock", &r, &val, e) < 0)
		return -1;
	*got = val && strcmp(val, "t") == 0;
	PQclear(r);
	return 0;
}

int
pgq_next_batch(struct pgq_conn *c, const char *queue, const char *consumer,
	       long long *batch_id, struct mk_err *e)
{
	const char *v[] = { queue, consumer }, *val;
	PGresult *r;

	/*
	 * An asynchronous commit: a next_batch lost in a crash only hands
	 * the same events out again as a new batch (at-least-once), and
	 * the fsync it saves is between every two batches.
	 */
	if (pg_value(c->pg,
		     "SELECT pgq.next_batch($1, $2), set_config("
		     "'synchronous_commit', 'off', true)",
		     2, v, "pgq.next_batch", &r, &val, e) < 0)
		return -1;
	*batch_id = val ? strtoll(val, NULL, 10) : -1;
	PQclear(r);
	return 0;
}

int
pgq_batch_open(struct pgq_conn *c, long long batch_id, size_t max_bytes,
	       struct mk_err *e)
{
	return pgq_batch_open_from(c, batch_id, max_bytes, 0, e);
}

int
pgq_batch_open_from(struct pgq_conn *c, long long batch_id, size_t max_bytes,
		    long long from_ev_id, struct mk_err *e)
{
	char sql[1100];
	PGresult *r;

	c->in_tx = true;
	/*
	 * The numbers are ours, not data.  An oversized event is measured
	 * on the server and not sent: bounded memory whatever is stored.
	 * BEGIN rides along: one round trip less between batches.  The
	 * batch's events come in ev_id order (pgq.batch_event_sql), and a
	 * filter keeps it.
	 */
	snprintf(sql, sizeof(sql),
		 "BEGIN; DECLARE " CURSOR " NO SCROLL CURSOR FOR "
		 "SELECT ev_id, (extract(epoch FROM ev_time) * 1000000)::int8,"
		 " ev_txid, ev_retry, s.size,"
		 " CASE WHEN s.size > %zu THEN NULL ELSE ev_type END,"
		 " CASE WHEN s.size > %zu THEN NULL ELSE ev_data END,"
		 " CASE WHEN s.size > %zu THEN NULL ELSE ev_extra1 END,"
		 " CASE WHEN s.size > %zu THEN NULL ELSE ev_extra2 END,"
		 " CASE WHEN s.size > %zu THEN NULL ELSE ev_extra3 END,"
		 " CASE WHEN s.size > %zu THEN NULL ELSE ev_extra4 END"
		 " FROM pgq.get_batch_events(%lld) e,"
		 " LATERAL (SELECT coalesce(octet_length(ev_type), 0)"
		 " + coalesce(octet_length(ev_data), 0)"
		 " + coalesce(octet_length(ev_extra1), 0)"
		 " + coalesce(octet_length(ev_extra2), 0)"
		 " + coalesce(octet_length(ev_extra3), 0)"
		 " + coalesce(octet_length(ev_extra4), 0) AS size) s"
		 " WHERE e.ev_id >= %lld",
		 max_bytes, max_bytes, max_bytes, max_bytes, max_bytes,
		 max_bytes, batch_id, from_ev_id);
	r = PQexec(c->pg, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_error(c->pg, r, "reading the batch", e);
		pgq_batch_abandon(c);
		return -1;
	}
	PQclear(r);
	c->chunk_rows = 0;
	return 0;
}

static const char *
field(PGresult *r, int col, size_t *len)
{
	if (PQgetisnull(r, 0, col)) {
		*len = 0;
		return NULL;
	}
	*len = (size_t)PQgetlength(r, 0, col);
	return PQgetvalue(r, 0, col);
}

enum pgq_fetch_result
pgq_fetch(struct pgq_conn *c, int chunk, struct mk_event *ev, struct mk_err *e)
{
	PGresult *r;
	ExecStatusType st;
	int i;

	PQclear(c->row);
	c->row = NULL;
	if (!c->in_fetch) {
		char sql[64];

		snprintf(sql, sizeof(sql), "FETCH %d FROM " CURSOR, chunk);
		if (!PQsendQuery(c->pg, sql)) {
			pg_error(c->pg, NULL, "FETCH", e);
			return PGQ_FETCH_ERROR;
		}
		/*
		 * One row at a time: memory stays at one event.  Unchecked,
		 * a refusal would hand the whole chunk over as one result,
		 * which reads as "no more events": a batch finished unread.
		 */
		c->in_fetch = true;
		if (!PQsetSingleRowMode(c->pg)) {
			pg_error(c->pg, NULL, "FETCH: cannot read row by row",
				 e);
			e->code = EX_SOFTWARE;
			pgq_batch_abandon(c);
			return PGQ_FETCH_ERROR;
		}
		c->chunk_rows = 0;
		c->chunk_want = chunk;
	}
	r = PQgetResult(c->pg);
	st = PQresultStatus(r);
	if (st == PGRES_SINGLE_TUPLE) {
		size_t n;

		c->row = r;
		c->chunk_rows++;
		/* a PgQ event has no source verdict and no WAL position */
		ev->refused = NULL;
		ev->lsn = NULL;
		ev->ev_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		ev->ev_time_us = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		ev->ev_txid = PQgetisnull(r, 0, 2)
				      ? 0
				      : strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		ev->ev_retry =
			PQgetisnull(r, 0, 3) ? 0 : atoi(PQgetvalue(r, 0, 3));
		ev->size = (size_t)strtoull(PQgetvalue(r, 0, 4), NULL, 10);
		ev->ev_type = field(r, 5, &ev->ev_type_len);
		ev->ev_data = field(r, 6, &ev->ev_data_len);
		for (i = 0; i < 4; i++)
			ev->extra[i] = field(r, 7 + i, &n),
			ev->extra_len[i] = n;
		return PGQ_FETCH_EVENT;
	}
	if (st != PGRES_TUPLES_OK || PQntuples(r) != 0) {
		/* (rows in the final result were never handed out: an
		 * error, not the end of the batch) */
		c->in_fetch = false;
		/* Drain so the connection is usable for ROLLBACK. */
		pg_error(c->pg, r, "FETCH", e);
		while ((r = PQgetResult(c->pg)) != NULL)
			PQclear(r);
		return PGQ_FETCH_ERROR;
	}
	PQclear(r);
	while ((r = PQgetResult(c->pg)) != NULL)
		PQclear(r);
	c->in_fetch = false;
	return c->chunk_rows < c->chunk_want ? PGQ_FETCH_DONE
					     : PGQ_FETCH_CHUNK_END;
}

int
pgq_settle_json(const struct fate *f, size_t n, char **out, struct mk_err *e)
{
	json_t *arr = json_array(), *o;
	size_t i;

	*out = NULL;
	if (arr == NULL)
		return mk_err_set(e, EX_OSERR,
				  "settling failures: out of "
				  "memory");
	for (i = 0; i < n; i++) {
		if (f[i].verdict == FATE_PUBLISHED) {
			json_decref(arr);
			return mk_err_set(e, EX_SOFTWARE,
					  "settling failures: "
					  "ev_id %lld was published, not "
					  "failed",
					  f[i].ev_id);
		}
		/*
		 * Every call checked: a member jansson refuses (a reason
		 * that is not UTF-8, memory) must stop the settle, never
		 * leave the event out of it.
		 */
		o = json_pack("{s:I,s:b,s:s%}", "ev_id", (json_int_t)f[i].ev_id,
			      "dead", f[i].verdict == FATE_DEAD, "reason",
			      f[i].reason,
			      strnlen(f[i].reason, sizeof(f[i].reason)));
		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return mk_err_set(e, EX_SOFTWARE,
					  "settling failures: "
					  "ev_id %lld cannot be written as "
					  "JSON",
					  f[i].ev_id);
		}
	}
	if (json_array_size(arr) != n) {
		json_decref(arr);
		return mk_err_set(e, EX_SOFTWARE,
				  "settling failures: %zu of "
				  "%zu written",
				  json_array_size(arr), n);
	}
	*out = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (*out == NULL)
		return mk_err_set(e, EX_OSERR,
				  "settling failures: out of "
				  "memory");
	return 0;
}

/* A count from our own SQL, strictly: digits only. */
static long long
count_of(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	v = strtoll(s, &end, 10);
	return *end == '\0' ? v : -1;
}

int
pgq_settle(struct pgq_conn *c, long long batch_id, const char *queue,
	   const char *consumer, int retry_seconds, const struct fate *f,
	   size_t n, struct mk_err *e)
{
	/*
	 * One statement, one scan of the batch: pgq.event_retry would
	 * re-read the whole batch for every event it retries.
	 */
	static const char sql[] =
		"WITH f AS (SELECT * FROM json_to_recordset($2::json)"
		"  AS f(ev_id int8, dead bool, reason text)),"
		" e AS MATERIALIZED (SELECT e.*, f.dead, f.reason"
		"  FROM pgq.get_batch_events($1::int8) e JOIN f USING (ev_id)),"
		" r AS (SELECT pgq.event_retry_raw($3, $4,"
		"  now() + make_interval(secs => $5::int), ev_id, ev_time,"
		"  coalesce(ev_retry, 0) + 1, ev_type, ev_data, ev_extra1,"
		"  ev_extra2, ev_extra3, ev_extra4) AS id FROM e WHERE NOT dead),"
		" d AS (INSERT INTO mikkoo.dead_letter (queue, consumer,"
		"  batch_id, ev_id, ev_time, ev_txid, ev_retry, ev_type, ev_data,"
		"  ev_extra1, ev_extra2, ev_extra3, ev_extra4, reason)"
		"  SELECT $3, $4, $1::int8, ev_id, ev_time, ev_txid, ev_retry,"
		"  ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4,"
		"  reason FROM e WHERE dead RETURNING 1)"
		" SELECT (SELECT count(id) FROM r) + (SELECT count(*) FROM d),"
		"  (SELECT count(*) FROM f)";
	char bid[24], secs[16];
	const char *v[5];
	char *js = NULL;
	PGresult *r = NULL;
	long long stored, sent;
	int ret = -1;

	if (n == 0)
		return 0;
	if (pgq_settle_json(f, n, &js, e) < 0)
		return -1;
	snprintf(bid, sizeof(bid), "%lld", batch_id);
	snprintf(secs, sizeof(secs), "%d", retry_seconds);
	v[0] = bid;
	v[1] = js;
	v[2] = queue;
	v[3] = consumer;
	v[4] = secs;
	r = pg_exec(c->pg, sql, 5, v, "settling failed events", e);
	if (r == NULL)
		goto out;
	if (PQntuples(r) != 1 || PQnfields(r) != 2) {
		mk_err_set(e, EX_SOFTWARE,
			   "settling failed events: %d rows "
			   "of %d columns",
			   PQntuples(r), PQnfields(r));
		goto out;
	}
	stored = count_of(PQgetvalue(r, 0, 0));
	sent = count_of(PQgetvalue(r, 0, 1));
	/*
	 * Counted against the failures we hold, not against what the JSON
	 * turned out to carry: an event missing from either is never
	 * finished with its batch.
	 */
	if (stored < 0 || sent != (long long)n || stored != (long long)n) {
		mk_err_set(e, EX_SOFTWARE,
			   "settling failed events: %lld "
			   "stored and %lld received of %zu failed events in "
			   "batch %lld",
			   stored, sent, n, batch_id);
		goto out;
	}
	ret = 0;
out:
	PQclear(r);
	free(js);
	return ret;
}

int
pgq_batch_finish(struct pgq_conn *c, long long batch_id, struct mk_err *e)
{
	char sql[128];
	PGresult *r;

	/* One round trip; the batch id is ours, not data. */
	snprintf(sql, sizeof(sql),
		 "CLOSE " CURSOR "; SELECT pgq.finish_batch("
		 "%lld); COMMIT",
		 batch_id);
	r = PQexec(c->pg, sql);
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		c->in_tx = false;
		return 0;
	}
	pg_error(c->pg, r, "finishing the batch", e);
	if (PQstatus(c->pg) != CONNECTION_OK ||
	    PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
		/*
		 * The COMMIT failed or is ambiguous: the batch is either
		 * finished or will be read again.  Both are safe
		 * (at-least-once).
		 */
		c->in_tx = false;
		return -1;
	}
	pgq_batch_abandon(c);
	return -1;
}

void
pgq_batch_abandon(struct pgq_conn *c)
{
	PGresult *r;

	PQclear(c->row);
	c->row = NULL;
	if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
		c->in_fetch = c->in_tx = false;
		return;
	}
	if (c->in_fetch) {
		/* At most one chunk of rows is left to read; cheaper and
		 * simpler than a cancel round trip. */
		while ((r = PQgetResult(c->pg)) != NULL)
			PQclear(r);
		c->in_fetch = false;
	}
	if (c->in_tx) {
		r = PQexec(c->pg, "ROLLBACK");
		PQclear(r);
		c->in_tx = false;
	}
}

int
pgq_gauges(struct pgq_conn *c, const char *queue, const char *consumer,
	   long long *pending, double *lag, double *tick_age, struct mk_err *e)
{
	const char *v[] = { queue, consumer };
	PGresult *r;

	r = pg_exec(c->pg,
		    "SELECT c.pending_events,"
		    " CASE WHEN c.last_tick < q.last_tick_id"
		    "  THEN extract(epoch FROM c.lag) ELSE 0 END,"
		    " extract(epoch FROM q.ticker_lag)"
		    " FROM pgq.get_consumer_info($1, $2) c,"
		    " pgq.get_queue_info($1) q",
		    2, v, "reading the consumer's lag", e);
	if (r == NULL)
		return -1;
	*pending = -1;
	*lag = -1;
	*tick_age = -1;
	if (PQntuples(r) == 1) {
		if (!PQgetisnull(r, 0, 0))
			*pending = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		if (!PQgetisnull(r, 0, 1))
			*lag = strtod(PQgetvalue(r, 0, 1), NULL);
		if (!PQgetisnull(r, 0, 2))
			*tick_age = strtod(PQgetvalue(r, 0, 2), NULL);
	}
	PQclear(r);
	return 0;
}
