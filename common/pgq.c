/* SPDX-License-Identifier: BSD-3-Clause */
/* pgq: PgQ consumer calls and the batch transaction over libpq. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pgq.h"

#define CURSOR "mikkoo_batch"

/* libpq messages end in "\n" and may span lines; keep one line. */
static const char *
one_line(const char *msg, char *buf, size_t sz)
{
	size_t i, n = 0;

	for (i = 0; msg[i] && n + 1 < sz; i++) {
		char ch = msg[i];

		if (ch == '\n' || ch == '\r' || ch == '\t')
			ch = ' ';
		buf[n++] = ch;
	}
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
	return buf;
}

static int
conn_error_code(const char *msg)
{
	static const char *const perm[] = {
		"authentication failed", "no pg_hba.conf entry",
		"does not exist", "permission denied", "password is required",
		"not permitted to log in",
		/* TLS: a server we must not talk to */
		"certificate verify failed", "does not match host name",
		"server certificate", NULL,
	};
	static const char *const conf[] = {
		"invalid connection option", "invalid URI",
		"missing \"=\"", "invalid integer value",
		"invalid sslmode value", "unterminated quoted string", NULL,
	};
	size_t i;

	for (i = 0; perm[i]; i++)
		if (strstr(msg, perm[i]))
			return EX_NOPERM;
	for (i = 0; conf[i]; i++)
		if (strstr(msg, conf[i]))
			return EX_CONFIG;
	return EX_UNAVAILABLE;
}

int
pgq_connect(struct pgq_conn *c, const char *url, const char *display,
	    const char *appname, double timeout, struct mk_err *e)
{
	/*
	 * Defaults come first: with expand_dbname, keywords of the URL
	 * override the ones before it, so a user's own setting wins.
	 */
	char ctimeout[16], utimeout[24], buf[512];
	const char *keys[] = {
		"application_name", "connect_timeout", "keepalives",
		"keepalives_idle", "keepalives_interval", "keepalives_count",
		"tcp_user_timeout", "dbname", NULL,
	};
	const char *vals[9];
	int code;

	memset(c, 0, sizeof(*c));
	snprintf(ctimeout, sizeof(ctimeout), "%d",
		 timeout < 2 ? 2 : (int)timeout);
	snprintf(utimeout, sizeof(utimeout), "%d", 30000);
	vals[0] = appname;
	vals[1] = ctimeout;
	vals[2] = "1";
	vals[3] = "10";
	vals[4] = "5";
	vals[5] = "3";
	vals[6] = utimeout;
	vals[7] = url;
	vals[8] = NULL;
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL)
		return mk_err_set(e, EX_OSERR, "cannot connect to '%s': out of "
				  "memory", display);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		one_line(PQerrorMessage(c->pg), buf, sizeof(buf));
		code = conn_error_code(buf);
		PQfinish(c->pg);
		c->pg = NULL;
		return mk_err_set(e, code, "cannot connect to PostgreSQL '%s': "
				  "%s", display, buf);
	}
	return 0;
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
	return c->pg && PQstatus(c->pg) == CONNECTION_OK;
}

/* The error of a failed command, classified for the caller. */
static int
result_error(struct pgq_conn *c, PGresult *r, const char *what,
	     struct mk_err *e)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
			    : NULL;
	char buf[512];
	int code = EX_SOFTWARE;

	if (msg == NULL)
		msg = PQerrorMessage(c->pg);
	one_line(msg, buf, sizeof(buf));
	if (PQstatus(c->pg) != CONNECTION_OK || state == NULL ||
	    strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		code = EX_UNAVAILABLE;
	else if (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0)
		code = EX_NOPERM;
	if (state)
		mk_err_set(e, code, "%s: %s (SQLSTATE %s)", what, buf, state);
	else
		mk_err_set(e, code, "%s: %s", what, buf);
	PQclear(r);
	return -1;
}

static PGresult *
exec(struct pgq_conn *c, const char *sql, int n, const char *const *vals,
     const char *what, struct mk_err *e)
{
	PGresult *r;
	ExecStatusType st;

	r = PQexecParams(c->pg, sql, n, NULL, vals, NULL, NULL, 0);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	result_error(c, r, what, e);
	return NULL;
}

/* Run a one-value query; *val borrowed from *keep (caller PQclears). */
static int
exec_value(struct pgq_conn *c, const char *sql, int n,
	   const char *const *vals, const char *what, PGresult **keep,
	   const char **val, struct mk_err *e)
{
	PGresult *r = exec(c, sql, n, vals, what, e);

	*keep = r;
	*val = NULL;
	if (r == NULL)
		return -1;
	if (PQntuples(r) != 1 || PQnfields(r) < 1) {
		int rows = PQntuples(r);

		PQclear(r);
		*keep = NULL;
		return mk_err_set(e, EX_SOFTWARE, "%s: expected one row, got "
				  "%d", what, rows);
	}
	if (!PQgetisnull(r, 0, 0))
		*val = PQgetvalue(r, 0, 0);
	return 0;
}

int
pgq_create_queue(struct pgq_conn *c, const char *queue, bool *created,
		 struct mk_err *e)
{
	const char *v[] = { queue }, *val;
	PGresult *r;

	if (exec_value(c, "SELECT pgq.create_queue($1)", 1, v,
		       "pgq.create_queue", &r, &val, e) < 0)
		return -1;
	*created = val && strcmp(val, "1") == 0;
	PQclear(r);
	return 0;
}

int
pgq_register(struct pgq_conn *c, const char *queue, const char *consumer,
	     bool *created, struct mk_err *e)
{
	const char *v[] = { queue, consumer }, *val;
	PGresult *r;

	if (exec_value(c, "SELECT pgq.register_consumer($1, $2)", 2, v,
		       "pgq.register_consumer", &r, &val, e) < 0)
		return -1;
	*created = val && strcmp(val, "1") == 0;
	PQclear(r);
	return 0;
}

int
pgq_unregister(struct pgq_conn *c, const char *queue, const char *consumer,
	       struct mk_err *e)
{
	const char *v[] = { queue, consumer }, *val;
	PGresult *r;

	if (exec_value(c, "SELECT pgq.unregister_consumer($1, $2)", 2, v,
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

	if (exec_value(c, "SELECT pg_try_advisory_lock(hashtext('mikkoo'), "
		       "hashtext($1 || '/' || $2))", 2, v, "advisory lock",
		       &r, &val, e) < 0)
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

	if (exec_value(c, "SELECT pgq.next_batch($1, $2)", 2, v,
		       "pgq.next_batch", &r, &val, e) < 0)
		return -1;
	*batch_id = val ? strtoll(val, NULL, 10) : -1;
	PQclear(r);
	return 0;
}

int
pgq_batch_open(struct pgq_conn *c, long long batch_id, size_t max_bytes,
	       struct mk_err *e)
{
	char sql[1024];
	PGresult *r;

	c->in_tx = true;
	/*
	 * Both numbers are ours, not data.  An oversized event is measured
	 * on the server and not sent: bounded memory whatever is stored.
	 * BEGIN rides along: one round trip (latency between batches).
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
		 " + coalesce(octet_length(ev_extra4), 0) AS size) s",
		 max_bytes, max_bytes, max_bytes, max_bytes, max_bytes,
		 max_bytes, batch_id);
	r = PQexec(c->pg, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		result_error(c, r, "reading the batch", e);
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

int
pgq_fetch(struct pgq_conn *c, int chunk, struct mk_event *ev, size_t *size,
	  struct mk_err *e)
{
	PGresult *r;
	ExecStatusType st;
	int i;

	PQclear(c->row);
	c->row = NULL;
	if (!c->in_fetch) {
		char sql[64];

		snprintf(sql, sizeof(sql), "FETCH %d FROM " CURSOR, chunk);
		if (!PQsendQuery(c->pg, sql))
			return result_error(c, NULL, "FETCH", e);
		/* One row at a time: memory stays at one event. */
		PQsetSingleRowMode(c->pg);
		c->in_fetch = true;
		c->chunk_rows = 0;
		c->chunk_want = chunk;
	}
	r = PQgetResult(c->pg);
	st = PQresultStatus(r);
	if (st == PGRES_SINGLE_TUPLE) {
		size_t n;

		c->row = r;
		c->chunk_rows++;
		ev->ev_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		ev->ev_time_us = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		ev->ev_txid = PQgetisnull(r, 0, 2) ? 0
			: strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		ev->ev_retry = PQgetisnull(r, 0, 3) ? 0
			: atoi(PQgetvalue(r, 0, 3));
		*size = (size_t)strtoull(PQgetvalue(r, 0, 4), NULL, 10);
		ev->ev_type = field(r, 5, &ev->ev_type_len);
		ev->ev_data = field(r, 6, &ev->ev_data_len);
		for (i = 0; i < 4; i++)
			ev->extra[i] = field(r, 7 + i, &n), ev->extra_len[i] = n;
		return 1;
	}
	if (st != PGRES_TUPLES_OK) {
		c->in_fetch = false;
		/* Drain so the connection is usable for ROLLBACK. */
		result_error(c, r, "FETCH", e);
		while ((r = PQgetResult(c->pg)) != NULL)
			PQclear(r);
		return -1;
	}
	PQclear(r);
	while ((r = PQgetResult(c->pg)) != NULL)
		PQclear(r);
	c->in_fetch = false;
	return c->chunk_rows < c->chunk_want ? 0 : 2;
}

int
pgq_settle(struct pgq_conn *c, long long batch_id, const char *queue,
	   const char *consumer, int retry_seconds,
	   const struct pgq_failure *f, size_t n, struct mk_err *e)
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
	json_t *arr = NULL;
	char *js = NULL;
	PGresult *r = NULL;
	size_t i;
	int ret = -1;

	if (n == 0)
		return 0;
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:b,s:s}", "ev_id",
			(json_int_t)f[i].ev_id, "dead", f[i].dead, "reason",
			f[i].reason ? f[i].reason : "unknown"));
	js = json_dumps(arr, JSON_COMPACT);
	if (js == NULL) {
		mk_err_set(e, EX_OSERR, "settling failures: out of memory");
		goto out;
	}
	snprintf(bid, sizeof(bid), "%lld", batch_id);
	snprintf(secs, sizeof(secs), "%d", retry_seconds);
	v[0] = bid;
	v[1] = js;
	v[2] = queue;
	v[3] = consumer;
	v[4] = secs;
	r = exec(c, sql, 5, v, "settling failed events", e);
	if (r == NULL)
		goto out;
	if (strcmp(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1)) != 0) {
		/* A failure we cannot find in the batch: never finish it. */
		mk_err_set(e, EX_SOFTWARE, "settling failed events: %s of %s "
			   "events found in batch %lld", PQgetvalue(r, 0, 0),
			   PQgetvalue(r, 0, 1), batch_id);
		goto out;
	}
	ret = 0;
out:
	PQclear(r);
	free(js);
	json_decref(arr);
	return ret;
}

int
pgq_batch_finish(struct pgq_conn *c, long long batch_id, struct mk_err *e)
{
	char sql[128];
	PGresult *r;

	/* One round trip; the batch id is ours, not data. */
	snprintf(sql, sizeof(sql), "CLOSE " CURSOR "; SELECT pgq.finish_batch("
		 "%lld); COMMIT", batch_id);
	r = PQexec(c->pg, sql);
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		c->in_tx = false;
		return 0;
	}
	result_error(c, r, "finishing the batch", e);
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

long long
pgq_pending(struct pgq_conn *c, const char *queue, const char *consumer)
{
	const char *v[] = { queue, consumer }, *val;
	PGresult *r;
	long long n = -1;

	if (exec_value(c, "SELECT pending_events FROM "
		       "pgq.get_consumer_info($1, $2)", 2, v,
		       "pgq.get_consumer_info", &r, &val, NULL) < 0)
		return -1;
	if (val)
		n = strtoll(val, NULL, 10);
	PQclear(r);
	return n;
}
