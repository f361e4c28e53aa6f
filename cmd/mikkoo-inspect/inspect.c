/* SPDX-License-Identifier: BSD-3-Clause */
/* inspect: read-only queue status, pending, retry and dead-letter views. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "jsonl.h"
#include "log.h"

#define TIME(col)                              \
	"to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

struct sink {
	FILE *out;
	long *count;
};

static int
write_row(void *arg, const PGresult *r)
{
	struct sink *k = arg;
	json_t *o = jsonl_row(r, 0);

	jsonl_write(k->out, o);
	json_decref(o);
	(*k->count)++;
	return 0;
}

/* Run sql and write each row as a record, one row in memory at a time. */
static int
stream(PGconn *c, const char *sql, int n, const char *const *v,
       const char *what, FILE *out, long *count, struct mk_err *e)
{
	struct sink k = { out, count };

	return pg_stream(c, sql, n, v, what, write_row, &k, e);
}

/* 1 and *out (PQclear it) for a row, 0 for none, -1. */
static int
one_row(PGconn *c, const char *sql, int n, const char *const *v,
	const char *what, PGresult **out, struct mk_err *e)
{
	PGresult *r = pg_exec(c, sql, n, v, what, e);

	*out = NULL;
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	*out = r;
	return 1;
}

/*
 * Who ticks the queue: "pgqd" (external_ticker is not set), "relay" (a
 * mikkoo-relay session holds the queue's ticker lock: ticker_pid),
 * "external" (the flag is set by another ticker, e.g. a Londiste
 * cascade: no row in mikkoo.queue_ticker), "nobody" (the flag is a
 * leftover of a relay that stopped without handing the queue back: it
 * has a row, and no relay holds the lock; nothing ticks the queue until
 * a relay runs again), "paused" (ticker_paused).  Without
 * mikkoo.queue_ticker (an older mikkoo.sql) "external" and "nobody"
 * cannot be told apart: "unknown".
 */
#define TICKER_SQL(set_by, unmarked)                     \
	" CASE WHEN q.queue_ticker_paused THEN 'paused'" \
	"  WHEN NOT q.queue_external_ticker THEN 'pgqd'" \
	"  WHEN tk.pid IS NOT NULL THEN 'relay'"         \
	"  WHEN " set_by " IS NOT NULL THEN 'nobody'"    \
	"  ELSE '" unmarked "' END AS ticker,"           \
	" tk.pid AS ticker_pid, " set_by " AS ticker_set_by,"
#define MARKER_SQL                                                      \
	"(SELECT m.set_by || ' since ' || to_char(m.set_at AT TIME"     \
	" ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"                \
	" FROM mikkoo.queue_ticker m WHERE m.queue_name = c.queue_name" \
	" AND q.queue_external_ticker)"
/* The session holding the queue's ticker lock (ticker.h). */
#define TICKER_LOCK_SQL                                    \
	" LEFT JOIN LATERAL (SELECT l.pid FROM pg_locks l" \
	"  WHERE l.locktype = 'advisory' AND l.granted"    \
	"  AND l.database = (SELECT oid FROM pg_database"  \
	"   WHERE datname = current_database())"           \
	"  AND l.classid = hashtext('mikkoo-ticker')::oid" \
	"  AND l.objid = (SELECT queue_id FROM pgq.queue"  \
	"   WHERE queue_name = c.queue_name)::oid"         \
	"  AND l.objsubid = 2 LIMIT 1) tk ON true"

static int
status(PGconn *c, const struct inspect_opts *o, bool has_dead, bool has_marker,
       FILE *out, long *count, struct mk_err *e)
{
/*
 * The relay consuming as (queue, consumer): the session holding its
 * advisory lock (see pgq_try_lock), and the RabbitMQ node that session's
 * application_name names ("mikkoo-relay HOST:PORT", set by the relay).
 */
#define RELAY_SQL                                                    \
	" LEFT JOIN LATERAL (SELECT l.pid,"                          \
	"  substring(a.application_name FROM '^mikkoo-relay (.+)$')" \
	"  AS node FROM pg_locks l"                                  \
	"  LEFT JOIN pg_stat_activity a ON a.pid = l.pid"            \
	"  WHERE l.locktype = 'advisory' AND l.granted"              \
	"  AND l.database = (SELECT oid FROM pg_database"            \
	"   WHERE datname = current_database())"                     \
	"  AND l.classid = hashtext('mikkoo')::oid"                  \
	"  AND l.objid = hashtext(c.queue_name || '/'"               \
	"   || c.consumer_name)::oid"                                \
	"  AND l.objsubid = 2 LIMIT 1) rl ON true"
#define STATUS_SQL(dead, ticker)                                         \
	"SELECT c.queue_name AS queue, c.consumer_name AS consumer,"     \
	" extract(epoch FROM c.lag)::float8 AS lag_seconds,"             \
	" extract(epoch FROM c.last_seen)::float8 AS last_seen_seconds," \
	" c.last_tick, c.current_batch, c.next_tick, c.pending_events,"  \
	" (SELECT count(*) FROM pgq.retry_queue r"                       \
	"  JOIN pgq.subscription s ON s.sub_id = r.ev_owner"             \
	"  JOIN pgq.consumer k ON k.co_id = s.sub_consumer"              \
	"  JOIN pgq.queue q ON q.queue_id = s.sub_queue"                 \
	"  WHERE q.queue_name = c.queue_name"                            \
	"  AND k.co_name = c.consumer_name) AS retry_events, " dead      \
	" AS dead_letters,"                                              \
	" extract(epoch FROM q.ticker_lag)::float8"                      \
	"  AS ticker_lag_seconds," ticker                                \
	" q.ev_per_sec AS events_per_second,"                            \
	" rl.pid AS relay_pid, rl.node AS rabbitmq_node"                 \
	" FROM pgq.get_consumer_info($1) c"                              \
	" CROSS JOIN pgq.get_queue_info($1) q" RELAY_SQL TICKER_LOCK_SQL \
	" WHERE $2::text IS NULL OR c.consumer_name = $2"                \
	" ORDER BY c.consumer_name"
#define DEAD_SQL                                     \
	"(SELECT count(*) FROM mikkoo.dead_letter d" \
	" WHERE d.queue = c.queue_name AND d.consumer = c.consumer_name)"
	static const char *const sql[2][2] = {
		{ STATUS_SQL("NULL::int8", TICKER_SQL("NULL::text", "unknown")),
		  STATUS_SQL("NULL::int8",
			     TICKER_SQL(MARKER_SQL, "external")) },
		{ STATUS_SQL(DEAD_SQL, TICKER_SQL("NULL::text", "unknown")),
		  STATUS_SQL(DEAD_SQL, TICKER_SQL(MARKER_SQL, "external")) },
	};
	const char *v[] = { o->queue, o->consumer };
	long before = *count;
	PGresult *r;
	int rc;

	if (stream(c, sql[has_dead][has_marker], 2, v,
		   "reading the consumer "
		   "status",
		   out, count, e) < 0)
		return -1;
	if (o->consumer && *count == before)
		return mk_err_set(e, EX_NOINPUT,
				  "consumer '%s' is not "
				  "registered on queue '%s'",
				  o->consumer, o->queue);
	if (!has_marker)
		return 0;
	/* a leftover flag stalls the queue: say so, and how to end it */
	rc = one_row(c,
		     "SELECT " MARKER_SQL ", round(extract(epoch FROM"
		     " q.ticker_lag))::int8 FROM pgq.get_queue_info($1) q,"
		     " (SELECT $1::text AS queue_name) c" TICKER_LOCK_SQL
		     " WHERE q.queue_external_ticker AND tk.pid IS NULL"
		     " AND NOT q.queue_ticker_paused AND " MARKER_SQL
		     " IS NOT NULL",
		     1, v, "looking for a leftover ticker flag", &r, e);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		log_warn("queue '%s': nothing ticks it (last tick %s s ago): "
			 "external_ticker is a leftover of %s, which stopped "
			 "without handing the queue back; a relay that starts "
			 "takes it back, or give it to pgqd: SELECT "
			 "pgq.set_queue_config('%s', 'external_ticker', "
			 "'false')",
			 o->queue, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 0),
			 o->queue);
		PQclear(r);
	}
	return 0;
}

static int
pending(PGconn *c, const struct inspect_opts *o, FILE *out, long *count,
	struct mk_err *e)
{
	static const char subq[] =
		"SELECT q.queue_id, q.queue_data_pfx, s.sub_id, s.sub_last_tick"
		" FROM pgq.queue q JOIN pgq.subscription s"
		"  ON s.sub_queue = q.queue_id"
		" JOIN pgq.consumer k ON k.co_id = s.sub_consumer"
		" WHERE q.queue_name = $1 AND k.co_name = $2";
	const char *consumer = o->consumer ? o->consumer : "mikkoo";
	const char *v[] = { o->queue, consumer }, *pv[4];
	char sql[2048], *schema = NULL, *table = NULL, *pfx, *dot;
	char lim[32];
	PGresult *r;
	int rc;

	rc = one_row(c, subq, 2, v, "reading the subscription", &r, e);
	if (rc <= 0)
		return rc < 0 ? -1
			      : mk_err_set(e, EX_NOINPUT,
					   "consumer '%s' "
					   "is not registered on queue "
					   "'%s'",
					   consumer, o->queue);
	/* The event table's name comes from pgq's catalog; quote it. */
	pfx = strdup(PQgetvalue(r, 0, 1));
	dot = pfx ? strchr(pfx, '.') : NULL;
	if (dot) {
		*dot = '\0';
		schema = PQescapeIdentifier(c, pfx, strlen(pfx));
		table = PQescapeIdentifier(c, dot + 1, strlen(dot + 1));
	}
	if (schema == NULL || table == NULL) {
		rc = mk_err_set(e, EX_SOFTWARE, "unexpected pgq table name");
		goto out;
	}
	snprintf(lim, sizeof(lim), "%ld", o->limit);
	snprintf(
		sql, sizeof(sql),
		"SELECT ev.ev_id, " TIME(
			"ev.ev_time") " AS ev_time,"
				      " ev.ev_txid, ev.ev_retry, ev.ev_type, ev.ev_data,"
				      " ev.ev_extra1, ev.ev_extra2, ev.ev_extra3, ev.ev_extra4"
				      " FROM %s.%s ev, pgq.tick t"
				      " WHERE t.tick_queue = $1::int4 AND t.tick_id = $2::int8"
				      " AND ev.ev_txid >= txid_snapshot_xmin(t.tick_snapshot)"
				      " AND NOT txid_visible_in_snapshot(ev.ev_txid, t.tick_snapshot)"
				      " AND txid_visible_in_snapshot(ev.ev_txid,"
				      "  txid_current_snapshot())"
				      " AND (ev.ev_owner IS NULL OR ev.ev_owner = $3::int4)"
				      " ORDER BY ev.ev_id LIMIT nullif($4::int8, 0)",
		schema, table);
	pv[0] = PQgetvalue(r, 0, 0);
	pv[1] = PQgetvalue(r, 0, 3);
	pv[2] = PQgetvalue(r, 0, 2);
	pv[3] = lim;
	rc = stream(c, sql, 4, pv, "reading pending events", out, count, e);
out:
	PQfreemem(schema);
	PQfreemem(table);
	free(pfx);
	PQclear(r);
	return rc;
}

static int
retry(PGconn *c, const struct inspect_opts *o, FILE *out, long *count,
      struct mk_err *e)
{
	static const char sql[] = "SELECT r.ev_id, " TIME(
		"r.ev_time") " AS ev_time, r.ev_retry,"
			     " " TIME(
				     "r.ev_retry_after") " AS retry_after,"
							 " r.ev_type, r.ev_data, r.ev_extra1, r.ev_extra2, r.ev_extra3,"
							 " r.ev_extra4"
							 " FROM pgq.retry_queue r"
							 " JOIN pgq.subscription s ON s.sub_id = r.ev_owner"
							 " JOIN pgq.consumer k ON k.co_id = s.sub_consumer"
							 " JOIN pgq.queue q ON q.queue_id = s.sub_queue"
							 " WHERE q.queue_name = $1 AND k.co_name = $2"
							 " ORDER BY r.ev_retry_after, r.ev_id LIMIT nullif($3::int8, 0)";
	char lim[32];
	const char *v[] = { o->queue, o->consumer ? o->consumer : "mikkoo",
			    lim };

	snprintf(lim, sizeof(lim), "%ld", o->limit);
	return stream(c, sql, 3, v, "reading the retry queue", out, count, e);
}

static int
dead(PGconn *c, const struct inspect_opts *o, FILE *out, long *count,
     struct mk_err *e)
{
	static const char sql[] = "SELECT " DEAD_COLUMNS
				  " FROM mikkoo.dead_letter WHERE " DEAD_WHERE
				  " ORDER BY id LIMIT nullif($8::int8, 0)";
	const char *v[DEAD_NPARAMS + 1];
	char lim[32];

	snprintf(lim, sizeof(lim), "%ld", o->limit);
	dead_params(&o->dead, v);
	v[DEAD_NPARAMS] = lim;
	return stream(c, sql, DEAD_NPARAMS + 1, v,
		      "reading "
		      "mikkoo.dead_letter",
		      out, count, e);
}

/* One record per table and queue; arrays as JSON arrays. */
static int
captures(PGconn *c, const struct inspect_opts *o, FILE *out, long *count,
	 struct mk_err *e)
{
	static const char sql[] =
		"SELECT table_name, queue, exchange, routing_key,"
		" to_jsonb(columns) AS columns, to_jsonb(exclude) AS exclude,"
		" skip_unchanged, to_jsonb(key_columns) AS key_columns"
		" FROM mikkoo.captures"
		" WHERE $1::text IS NULL OR queue = $1"
		" ORDER BY table_name, queue LIMIT nullif($2::int8, 0)";
	char lim[32];
	const char *v[] = { o->queue, lim };
	PGresult *r;
	int rc;

	rc = one_row(c,
		     "SELECT 1 WHERE to_regclass('mikkoo.captures')"
		     " IS NOT NULL",
		     0, NULL, "looking for mikkoo.captures", &r, e);
	PQclear(r);
	if (rc == 0)
		return mk_err_set(e, EX_NOINPUT,
				  "view mikkoo.captures does "
				  "not exist: install mikkoo.sql");
	if (rc < 0)
		return -1;
	snprintf(lim, sizeof(lim), "%ld", o->limit);
	return stream(c, sql, 2, v, "reading mikkoo.captures", out, count, e);
}

/*
 * The slots slot workers made (mikkoo.slots) as the server has them:
 * retained_bytes is the WAL the slot holds back (from its restart_lsn),
 * lag the bytes of WAL written after its confirmed position; gone: the
 * slot is recorded but no longer exists (dropped, or lost in a
 * failover), and the worker refuses to start.
 */
static int
slots(PGconn *c, const struct inspect_opts *o, FILE *out, long *count,
      struct mk_err *e)
{
	static const char sql[] =
		"WITH w AS (SELECT CASE WHEN pg_catalog.pg_is_in_recovery()"
		"  THEN pg_catalog.pg_last_wal_replay_lsn()"
		"  ELSE pg_catalog.pg_current_wal_lsn() END AS lsn)"
		" SELECT s.slot_name AS slot, $1::jsonb ->> s.slot_name AS worker,"
		"  r.active, r.active_pid,"
		"  r.confirmed_flush_lsn::text AS confirmed_lsn,"
		"  r.restart_lsn::text AS restart_lsn, r.wal_status,"
		"  r.safe_wal_size,"
		"  pg_catalog.pg_wal_lsn_diff(w.lsn, r.restart_lsn)::int8"
		"   AS retained_bytes,"
		"  pg_catalog.pg_wal_lsn_diff(w.lsn, r.confirmed_flush_lsn)::int8"
		"   AS lag,"
		"  s.last_lsn::text AS last_relayed_lsn,"
		"  to_char(s.last_at AT TIME ZONE 'UTC',"
		"   'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS last_at,"
		"  (r.slot_name IS NULL AND s.consistent_point IS NOT NULL) AS gone,"
		"  to_char(s.created_at AT TIME ZONE 'UTC',"
		"   'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at,"
		"  s.adopted"
		" FROM mikkoo.slots s CROSS JOIN w"
		" LEFT JOIN pg_catalog.pg_replication_slots r"
		"  ON r.slot_name = s.slot_name"
		" ORDER BY s.slot_name LIMIT nullif($2::int8, 0)";
	char lim[32];
	const char *v[] = { o->slot_workers ? o->slot_workers : "{}", lim };
	PGresult *r;
	int rc;

	rc = one_row(c,
		     "SELECT 1 WHERE to_regclass('mikkoo.slots') IS NOT NULL",
		     0, NULL, "looking for mikkoo.slots", &r, e);
	PQclear(r);
	if (rc == 0)
		return mk_err_set(e, EX_NOINPUT,
				  "table mikkoo.slots does not exist: "
				  "install mikkoo.sql");
	if (rc < 0)
		return -1;
	snprintf(lim, sizeof(lim), "%ld", o->limit);
	return stream(c, sql, 2, v, "reading the replication slots", out, count,
		      e);
}

int
inspect_run(PGconn *c, enum inspect_what what, const struct inspect_opts *o,
	    FILE *out, long *count, struct mk_err *e)
{
	const char *v[] = { o->queue };
	bool has_dead, has_marker;
	PGresult *r;
	int rc;

	*count = 0;
	/* Read only, rolled back: inspecting can never move a consumer. */
	if (pg_command(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		       "BEGIN", e) < 0)
		return -1;
	if (what == INSPECT_SLOTS) {
		rc = slots(c, o, out, count, e);
		goto out;
	}
	if ((what != INSPECT_DEAD && what != INSPECT_CAPTURES) || o->queue) {
		rc = one_row(c, "SELECT 1 FROM pgq.queue WHERE queue_name = $1",
			     1, v, "looking up the queue", &r, e);
		/* a slot worker's dead letters carry its name, no queue's */
		if (rc == 0 && what == INSPECT_DEAD) {
			rc = one_row(c,
				     "SELECT 1 WHERE to_regclass("
				     "'mikkoo.dead_letter') IS NOT NULL",
				     0, NULL, "looking for mikkoo.dead_letter",
				     &r, e);
			PQclear(r);
			if (rc > 0)
				rc = one_row(c,
					     "SELECT 1 FROM mikkoo.dead_letter "
					     "WHERE queue = $1 LIMIT 1",
					     1, v, "looking up the queue", &r,
					     e);
		}
		PQclear(r);
		if (rc == 0)
			rc = mk_err_set(e, EX_NOINPUT, "no PgQ queue '%s'",
					o->queue);
		if (rc < 0)
			goto out;
	}
	rc = one_row(c,
		     "SELECT 1 WHERE to_regclass('mikkoo.dead_letter')"
		     " IS NOT NULL",
		     0, NULL, "looking for mikkoo.dead_letter", &r, e);
	PQclear(r);
	if (rc < 0)
		goto out;
	has_dead = rc > 0;
	rc = one_row(c,
		     "SELECT 1 WHERE to_regclass('mikkoo.queue_ticker')"
		     " IS NOT NULL",
		     0, NULL, "looking for mikkoo.queue_ticker", &r, e);
	PQclear(r);
	if (rc < 0)
		goto out;
	has_marker = rc > 0;
	if (what == INSPECT_DEAD && !has_dead) {
		rc = mk_err_set(e, EX_NOINPUT,
				"table mikkoo.dead_letter does "
				"not exist: install mikkoo.sql");
		goto out;
	}
	switch (what) {
	case INSPECT_STATUS:
		rc = status(c, o, has_dead, has_marker, out, count, e);
		break;
	case INSPECT_PENDING:
		rc = pending(c, o, out, count, e);
		break;
	case INSPECT_RETRY:
		rc = retry(c, o, out, count, e);
		break;
	case INSPECT_DEAD:
		rc = dead(c, o, out, count, e);
		break;
	case INSPECT_CAPTURES:
		rc = captures(c, o, out, count, e);
		break;
	case INSPECT_SLOTS:
		break;
	}
out:
	r = PQexec(c, "ROLLBACK");
	PQclear(r);
	return rc < 0 ? -1 : 0;
}
