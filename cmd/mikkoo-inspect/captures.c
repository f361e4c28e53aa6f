/* SPDX-License-Identifier: BSD-3-Clause */
/* captures: the tables captured into PgQ queues, as JSON lines. */
#include <stdio.h>

#include "captures.h"
#include "inspect.h"

/* Arrays as JSON arrays; identity (table, queue) first. */
static const char captures_sql[] =
	"SELECT table_name, queue, exchange, routing_key,"
	" to_jsonb(columns) AS columns, to_jsonb(exclude) AS exclude,"
	" skip_unchanged, to_jsonb(key_columns) AS key_columns"
	" FROM mikkoo.captures"
	" WHERE $1::text IS NULL OR queue = $1"
	" ORDER BY table_name, queue LIMIT nullif($2::int8, 0)";

/* 1 if sql returns a row, 0 if not, -1 with e. */
static int
exists(struct pgq_conn *c, const char *sql, const char *arg,
       struct mk_err *e)
{
	const char *v[] = { arg };
	PGresult *r = PQexecParams(c->pg, sql, arg ? 1 : 0, NULL, v, NULL,
				   NULL, 0);
	int rc;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

		rc = mk_err_set(e, PQstatus(c->pg) == CONNECTION_OK
				? EX_SOFTWARE : EX_UNAVAILABLE, "%s",
				m ? m : PQerrorMessage(c->pg));
	} else {
		rc = PQntuples(r) > 0;
	}
	PQclear(r);
	return rc;
}

int
captures_run(struct pgq_conn *c, const struct inspect_opts *o, FILE *out,
	     long *count, struct mk_err *e)
{
	char lim[32];
	const char *v[] = { o->queue, lim };
	PGresult *r;
	int rc;

	*count = 0;
	/* Read only, rolled back, like every other view. */
	r = PQexec(c->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0
		: mk_err_set(e, EX_UNAVAILABLE, "%s", PQerrorMessage(c->pg));
	PQclear(r);
	if (rc < 0)
		return -1;
	rc = exists(c, "SELECT 1 WHERE to_regclass('mikkoo.captures')"
		    " IS NOT NULL", NULL, e);
	if (rc == 0)
		rc = mk_err_set(e, EX_NOINPUT, "view mikkoo.captures does not "
				"exist: install mikkoo.sql");
	if (rc >= 0 && o->queue) {
		rc = exists(c, "SELECT 1 FROM pgq.queue WHERE queue_name = $1",
			    o->queue, e);
		if (rc == 0)
			rc = mk_err_set(e, EX_NOINPUT, "no PgQ queue '%s'",
					o->queue);
	}
	if (rc >= 0) {
		snprintf(lim, sizeof(lim), "%ld", o->limit);
		rc = inspect_stream(c, captures_sql, 2, v, out, count, e);
	}
	r = PQexec(c->pg, "ROLLBACK");
	PQclear(r);
	return rc < 0 ? -1 : 0;
}
