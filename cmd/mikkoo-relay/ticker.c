/* SPDX-License-Identifier: BSD-3-Clause */
/* ticker: tick the relay's own queue, alone, when there is news. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mono.h"
#include "pg.h"
#include "sig.h"
#include "ticker.h"

/* A number, not data: the advisory lock class of queue tickers. */
#define LOCK_CLASS "hashtext('mikkoo-ticker')"
#define STMT "mikkoo_tick"

static PGresult *
run(PGconn *pg, const char *sql, int n, const char *const *v, const char *what,
    struct mk_err *e)
{
	return pg_exec(pg, sql, n, v, what, e);
}

/* "pgq.event_5" -> "pgq"."event_5", quoted by libpq. */
static char *
quote_table(PGconn *pg, const char *pfx)
{
	const char *dot = strchr(pfx, '.');
	char *schema, *a, *b, *out = NULL;

	schema = dot ? strndup(pfx, (size_t)(dot - pfx)) : strdup("public");
	if (schema == NULL)
		return NULL;
	a = PQescapeIdentifier(pg, schema, strlen(schema));
	b = PQescapeIdentifier(pg, dot ? dot + 1 : pfx,
			       strlen(dot ? dot + 1 : pfx));
	if (a && b && asprintf(&out, "%s.%s", a, b) < 0)
		out = NULL;
	PQfreemem(a);
	PQfreemem(b);
	free(schema);
	return out;
}

/*
 * The tick statement for one event table.  The outer statement's
 * snapshot decides whether to tick; pgq.ticker's INSERT takes its own,
 * later one, and the event sequence is read before it, so an event
 * whose sequence number is past tick_event_seq is still seen next time.
 */
static char *
tick_sql(const char *events)
{
	char *s;

	if (asprintf(
		    &s,
		    "WITH q AS (SELECT queue_id, queue_tick_seq, queue_event_seq,"
		    "  queue_ticker_max_lag AS max_lag,"
		    "  queue_ticker_idle_period AS idle FROM pgq.queue"
		    "  WHERE queue_name = $1 AND queue_external_ticker"
		    "  AND NOT queue_ticker_paused),"
		    " last AS (SELECT t.tick_snapshot AS s, now() - t.tick_time AS age"
		    "  FROM pgq.tick t, q WHERE t.tick_queue = q.queue_id"
		    "  ORDER BY t.tick_id DESC LIMIT 1)"
		    " SELECT set_config('synchronous_commit', 'off', true),"
		    "  pgq.ticker($1, nextval(q.queue_tick_seq::regclass), now(),"
		    "   pgq.seq_getval(q.queue_event_seq))"
		    " FROM q, last"
		    " WHERE last.age >= q.idle"
		    "  OR ((NOT $2::bool OR last.age >= q.max_lag)"
		    "   AND (EXISTS (SELECT 1 FROM %s e"
		    "     WHERE e.ev_txid >= txid_snapshot_xmax(last.s))"
		    "    OR EXISTS (SELECT 1 FROM %s e WHERE e.ev_txid = ANY ("
		    "     ARRAY(SELECT txid_snapshot_xip(last.s))))))",
		    events, events) < 0)
		return NULL;
	return s;
}

static void
nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

/*
 * After setting external_ticker: wait until no pgq.ticker() that may
 * have read the old flag still runs.  1 when clear, 0 when wait_max
 * passed, -1 error.
 */
static int
wait_other_tickers(PGconn *pg, double wait_max, struct mk_err *e)
{
	static const char sql[] =
		"SELECT count(*) FILTER (WHERE state = 'active'"
		"  AND query_start < $1::timestamptz"
		"  AND query ~* 'pgq\\.ticker'),"
		" count(*) FILTER (WHERE query_start IS NULL"
		"  AND backend_type = 'client backend')"
		" FROM pg_stat_activity WHERE pid <> pg_backend_pid()";
	PGresult *r;
	char since[64];
	const char *v[] = { since };
	double end = now_mono() + wait_max;
	bool hidden_waited = false;

	r = run(pg, "SELECT clock_timestamp()", 0, NULL, "reading the clock",
		e);
	if (r == NULL)
		return -1;
	snprintf(since, sizeof(since), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	for (;;) {
		long busy, hidden;

		r = run(pg, sql, 1, v, "looking for running tickers", e);
		if (r == NULL)
			return -1;
		busy = atol(PQgetvalue(r, 0, 0));
		hidden = atol(PQgetvalue(r, 0, 1));
		PQclear(r);
		/*
		 * Sessions of other roles hide their statements from us
		 * (without pg_read_all_stats): one of them may be pgqd.  A
		 * pgq.ticker() call takes milliseconds; a second covers it.
		 */
		if (hidden > 0 && !hidden_waited) {
			hidden_waited = true;
			/* in steps: a TERM must not wait for the second */
			for (int i = 0; i < 100 && sig_term_count() == 0; i++)
				nap(0.01);
			continue;
		}
		if (busy == 0)
			return 1;
		/* runit kills 7 s after TERM: a stop does not wait for
		 * pgqd (the queue is given back to it) */
		if (now_mono() >= end || sig_term_count() > 0)
			return 0;
		nap(0.01);
	}
}

/* Run the statements of a transaction; -1 (rolled back) on error. */
static int
in_tx(PGconn *pg, const char *const *sql, const int *nv, const char *const *v,
      size_t n, const char *what, struct mk_err *e)
{
	PGresult *r;
	size_t i;

	if (pg_command(pg, "BEGIN", "BEGIN", e) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		r = run(pg, sql[i], nv[i], v, what, e);
		if (r == NULL) {
			r = PQexec(pg, "ROLLBACK");
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	return pg_command(pg, "COMMIT", "COMMIT", e);
}

static int
unlock(PGconn *pg, const char *id, struct mk_err *e)
{
	const char *v[] = { id };
	PGresult *r =
		run(pg, "SELECT pg_advisory_unlock(" LOCK_CLASS ", $1::int4)",
		    1, v, "unlocking", e);

	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

#define MARK_SQL                                                               \
	"INSERT INTO mikkoo.queue_ticker (queue_name, set_by) VALUES ($1, $2)" \
	" ON CONFLICT (queue_name) DO UPDATE"                                  \
	" SET set_by = excluded.set_by, set_at = now()"

int
ticker_start(struct ticker *t, PGconn *pg, const char *queue, const char *who,
	     double wait_max, struct mk_err *e)
{
	static const char sql[] =
		"SELECT queue_id, queue_data_pfx, queue_external_ticker,"
		" queue_ticker_paused,"
		" pg_try_advisory_lock(" LOCK_CLASS ", queue_id),"
		" to_regclass('mikkoo.queue_ticker') IS NOT NULL"
		" FROM pgq.queue WHERE queue_name = $1";
	const char *v[] = { queue, who };
	char id[16], *events, set_by[256] = "";
	bool external, paused, got, marked = false;
	PGresult *r;
	int rc;

	free(t->sql);
	t->sql = NULL;
	t->active = t->paused = t->foreign = false;
	r = run(pg, sql, 1, v, "taking the queue's ticker lock", e);
	if (r == NULL)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mk_err_set(e, EX_SOFTWARE,
				  "taking the queue's ticker "
				  "lock: no PgQ queue '%s'",
				  queue);
	}
	t->queue_id = atoi(PQgetvalue(r, 0, 0));
	events = quote_table(pg, PQgetvalue(r, 0, 1));
	external = PQgetvalue(r, 0, 2)[0] == 't';
	paused = PQgetvalue(r, 0, 3)[0] == 't';
	got = PQgetvalue(r, 0, 4)[0] == 't';
	t->marker = PQgetvalue(r, 0, 5)[0] == 't';
	PQclear(r);
	if (events == NULL || (t->sql = tick_sql(events)) == NULL) {
		free(events);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	free(events);
	/* Planned once per session: it runs ten times a second. */
	if (!t->prepared) {
		r = PQprepare(pg, STMT, t->sql, 2, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return pg_error(pg, r, "preparing the tick statement",
					e);
		PQclear(r);
		t->prepared = true;
	}
	snprintf(id, sizeof(id), "%d", t->queue_id);
	e->code = 0;
	e->msg[0] = '\0';
	if (!got)
		return 0;
	if (paused) {
		t->paused = true;
		return unlock(pg, id, e);
	}
	if (external && t->marker) {
		/* Who set it?  The lock is ours, so no relay ticks now. */
		r = run(pg,
			"SELECT set_by || ' since ' || to_char(set_at AT "
			"TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			" FROM mikkoo.queue_ticker WHERE queue_name = $1",
			1, v, "reading mikkoo.queue_ticker", e);
		if (r == NULL)
			return -1;
		marked = PQntuples(r) == 1;
		if (marked)
			snprintf(set_by, sizeof(set_by), "%s",
				 PQgetvalue(r, 0, 0));
		PQclear(r);
		if (!marked) {
			t->foreign = true;
			mk_err_set(
				e, 0,
				"queue '%s' has external_ticker set by "
				"another ticker than mikkoo-relay (a Londiste "
				"cascade?): this relay uses its ticks and "
				"leaves the flag alone",
				queue);
			return unlock(pg, id, e) < 0 ? -1 : 0;
		}
	}
	if (external) {
		/* A leftover of a relay that died (or, without the table,
		 * of anyone): ours now, as pgqd does not tick it either. */
		if (marked) {
			const char *q[] = { MARK_SQL };
			const int nq[] = { 2 };

			if (in_tx(pg, q, nq, v, 1, "mikkoo.queue_ticker", e) <
			    0)
				return -1;
			mk_err_set(e, 0,
				   "queue '%s': took back the ticking left "
				   "by a relay that stopped without handing it "
				   "back (%s)",
				   queue, set_by);
		} else {
			mk_err_set(
				e, 0,
				"queue '%s': external_ticker was set and "
				"mikkoo.queue_ticker is missing (install the "
				"current mikkoo.sql): cannot tell who set it; "
				"ticking it",
				queue);
		}
		t->active = true;
		return 1;
	}
	{
		const char *q[] = {
			"SELECT pgq.set_queue_config($1, 'external_ticker',"
			" 'true')",
			MARK_SQL,
		};
		const int nq[] = { 1, 2 };

		rc = in_tx(pg, q, nq, v, t->marker ? 2 : 1,
			   "pgq.set_queue_config", e);
	}
	if (rc < 0 && e->code == EX_NOPERM) {
		/*
		 * A least-privilege role (pgq_reader) may consume but not
		 * configure the queue: pgqd goes on ticking it, and the
		 * relay uses its ticks.
		 */
		char why[sizeof(e->msg)];

		snprintf(why, sizeof(why), "%s", e->msg);
		if (unlock(pg, id, e) < 0)
			return -1;
		mk_err_set(e, 0,
			   "queue '%s' cannot be ticked by this relay "
			   "(%s): pgqd ticks it; give the role the right to "
			   "call pgq.set_queue_config%s, or set ticker: pgqd",
			   queue, why,
			   t->marker ? " and to write "
				       "mikkoo.queue_ticker"
				     : "");
		return 0;
	}
	if (rc < 0)
		return -1;
	rc = wait_other_tickers(pg, wait_max, e);
	if (rc <= 0) {
		/* Give the queue back: pgqd goes on ticking it. */
		struct mk_err e2;
		int src;

		t->active = true;
		src = ticker_stop(t, pg, queue, &e2);
		if (rc < 0)
			return -1;
		if (src < 0) {
			*e = e2;
			return -1;
		}
		if (sig_term_count() > 0)
			mk_err_set(e, 0,
				   "stop requested while waiting to tick "
				   "queue '%s': left to pgqd",
				   queue);
		else
			mk_err_set(e, 0,
				   "a pgq.ticker() call still ran after "
				   "%.0f s: queue '%s' left to pgqd",
				   wait_max, queue);
		return 0;
	}
	t->active = true;
	return 1;
}

int
ticker_tick(struct ticker *t, PGconn *pg, const char *queue,
	    enum ticker_for why, bool *ticked, struct mk_err *e)
{
	const char *v[] = { queue, why == TICK_FOR_OTHERS ? "t" : "f" };
	PGresult *r;

	*ticked = false;
	if (!t->active)
		return 0;
	r = PQexecPrepared(pg, STMT, 2, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return pg_error(pg, r, "ticking the queue", e);
	*ticked = PQntuples(r) > 0;
	if (*ticked)
		t->ticks++;
	PQclear(r);
	return 0;
}

int
ticker_stop(struct ticker *t, PGconn *pg, const char *queue, struct mk_err *e)
{
	static const char *const q[] = {
		"SELECT pgq.set_queue_config($1, 'external_ticker', 'false')",
		"DELETE FROM mikkoo.queue_ticker WHERE queue_name = $1",
	};
	static const int nq[] = { 1, 1 };
	char id[16];
	const char *v[] = { queue };
	bool was = t->active;

	t->active = false;
	if (!was || pg == NULL || PQstatus(pg) != CONNECTION_OK)
		return 0;
	snprintf(id, sizeof(id), "%d", t->queue_id);
	/*
	 * The flag (and its owner's row) first, committed, then the lock:
	 * a relay that takes the lock after us must see pgqd ticking again
	 * (and wait for it).
	 */
	if (in_tx(pg, q, nq, v, t->marker ? 2 : 1, "pgq.set_queue_config", e) <
	    0)
		return -1;
	return unlock(pg, id, e);
}

void
ticker_forget(struct ticker *t)
{
	free(t->sql);
	t->sql = NULL;
	t->active = t->paused = t->prepared = false;
}
