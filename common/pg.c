/* SPDX-License-Identifier: BSD-3-Clause */
/* pg: connections, statements and error classes over libpq. */
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mono.h"
#include "pg.h"

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

/*
 * A failed connection attempt has no SQLSTATE on the client side: libpq
 * only has its message to go by.
 */
static int
connect_code(const char *msg)
{
	static const char *const perm[] = {
		"authentication failed",
		"no pg_hba.conf entry",
		"does not exist",
		"permission denied",
		"password is required",
		"not permitted to log in",
		/* TLS: a server we must not talk to */
		"certificate verify failed",
		"does not match host name",
		"server certificate",
		NULL,
	};
	static const char *const conf[] = {
		"invalid connection option",
		"invalid URI",
		"missing \"=\"",
		"invalid integer value",
		"invalid sslmode value",
		"unterminated quoted string",
		NULL,
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

/*
 * libpq's own words for a server it could not reach (in the C locale
 * the relay runs in): nothing the server said, so nothing to ask it.
 */
static bool
unreachable(const char *msg)
{
	static const char *const net[] = {
		"Connection refused",
		"could not translate host name",
		"timeout expired",
		"No route to host",
		"Network is unreachable",
		"server closed the connection unexpectedly",
		"Connection reset by peer",
		"could not connect",
		NULL,
	};
	size_t i;

	for (i = 0; net[i]; i++)
		if (strstr(msg, net[i]))
			return true;
	return false;
}

int
pg_sqlstate_in(const char *msg, char state[6])
{
	const char *p;
	int found = 0, k;

	/* verbose errors: "SEVERITY:  XXXXX: message", once per server
	 * answer (several with several hosts): the last one counts */
	for (p = msg; (p = strstr(p, ":  ")) != NULL; p++) {
		const char *s = p + 3;

		for (k = 0; k < 5; k++)
			if (!((s[k] >= '0' && s[k] <= '9') ||
			      (s[k] >= 'A' && s[k] <= 'Z')))
				break;
		if (k == 5 && s[5] == ':') {
			memcpy(state, s, 5);
			state[5] = '\0';
			found = 1;
		}
	}
	return found;
}

int
pg_sqlstate_code(const char *state)
{
	if (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0 ||
	    strcmp(state, "3D000") == 0)
		return EX_NOPERM;
	return EX_UNAVAILABLE;
}

/*
 * The SQLSTATE of a failed connection, which libpq keeps only inside
 * its message, in the server's language (lc_messages): a wrong password
 * must stop the relay (77) in German too.  Asked again, only after a
 * failure, with verbose errors set before the server answers, so the
 * message carries the code.  1 with state, 0 unknown.
 */
static int
connect_sqlstate(const char *const *keys, const char *const *vals,
		 double timeout, char state[6])
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	double end = now_mono() + (timeout < 2 ? 2 : timeout);
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	int found = 0;

	if (c == NULL)
		return 0;
	PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
	while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		struct pollfd pfd = { PQsocket(c),
				      st == PGRES_POLLING_READING ? POLLIN
								  : POLLOUT,
				      0 };
		double left = end - now_mono();

		if (left <= 0 || pfd.fd < 0 ||
		    poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
			break;
		st = PQconnectPoll(c);
	}
	if (PQstatus(c) == CONNECTION_BAD)
		found = pg_sqlstate_in(PQerrorMessage(c), state);
	PQfinish(c);
	return found;
}

/* A server notice or warning, on one line, at its level. */
static void
notice(void *arg, const PGresult *r)
{
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	enum mk_log_level level = MK_LOG_INFO;
	char buf[512];

	(void)arg;
	if (sev && strcmp(sev, "WARNING") == 0)
		level = MK_LOG_WARNING;
	else if (sev && strcmp(sev, "DEBUG") == 0)
		level = MK_LOG_DEBUG;
	if (level == MK_LOG_DEBUG && log_get_level() < MK_LOG_DEBUG)
		return;
	one_line(msg ? msg : PQresultErrorMessage(r), buf, sizeof(buf));
	log_msg(level, "postgresql says: %s", buf);
}

int
pg_connect(PGconn **out, const char *url, const char *display,
	   const char *appname, double timeout, struct mk_err *e)
{
	/*
	 * Defaults come first: with expand_dbname, keywords of the URL
	 * override the ones before it, so a user's own setting wins.
	 */
	static const char *const keys[] = {
		"application_name",
		"connect_timeout",
		"keepalives",
		"keepalives_idle",
		"keepalives_interval",
		"keepalives_count",
		"tcp_user_timeout",
		"dbname",
		NULL,
	};
	char ctimeout[16], buf[512];
	const char *vals[9];
	PGconn *c;
	int code;

	*out = NULL;
	snprintf(ctimeout, sizeof(ctimeout), "%d",
		 timeout < 2 ? 2 : (int)timeout);
	vals[0] = appname;
	vals[1] = ctimeout;
	vals[2] = "1";
	vals[3] = "10";
	vals[4] = "5";
	vals[5] = "3";
	vals[6] = "30000";
	vals[7] = url;
	vals[8] = NULL;
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL)
		return mk_err_set(e, EX_OSERR,
				  "cannot connect to '%s': out of "
				  "memory",
				  display);
	if (PQstatus(c) != CONNECTION_OK) {
		char state[6];

		one_line(PQerrorMessage(c), buf, sizeof(buf));
		code = connect_code(buf);
		PQfinish(c);
		if (code == EX_UNAVAILABLE && !unreachable(buf) &&
		    connect_sqlstate(keys, vals, timeout, state))
			code = pg_sqlstate_code(state);
		return mk_err_set(e, code,
				  "cannot connect to PostgreSQL '%s': "
				  "%s",
				  display, buf);
	}
	PQsetNoticeReceiver(c, notice, NULL);
	*out = c;
	return 0;
}

bool
pg_alive(const PGconn *c)
{
	return c && PQstatus(c) == CONNECTION_OK;
}

int
pg_code(const PGconn *c, const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (!pg_alive(c) || state == NULL || strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0)
		return EX_UNAVAILABLE;
	if (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0)
		return EX_NOPERM;
	return EX_SOFTWARE;
}

const char *
pg_message(const PGconn *c, const PGresult *r, char *buf, size_t sz)
{
	const char *msg =
		r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (msg == NULL)
		msg = c ? PQerrorMessage(c) : "no connection";
	return one_line(msg, buf, sz);
}

int
pg_error(const PGconn *c, PGresult *r, const char *what, struct mk_err *e)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char buf[512];

	pg_message(c, r, buf, sizeof(buf));
	if (state)
		mk_err_set(e, pg_code(c, r), "%s: %s (SQLSTATE %s)", what, buf,
			   state);
	else
		mk_err_set(e, pg_code(c, r), "%s: %s", what, buf);
	PQclear(r);
	return -1;
}

PGresult *
pg_exec(PGconn *c, const char *sql, int n, const char *const *vals,
	const char *what, struct mk_err *e)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	pg_error(c, r, what, e);
	return NULL;
}

int
pg_command(PGconn *c, const char *sql, const char *what, struct mk_err *e)
{
	PGresult *r = pg_exec(c, sql, 0, NULL, what, e);

	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

int
pg_value(PGconn *c, const char *sql, int n, const char *const *vals,
	 const char *what, PGresult **keep, const char **val, struct mk_err *e)
{
	PGresult *r = pg_exec(c, sql, n, vals, what, e);

	*keep = r;
	*val = NULL;
	if (r == NULL)
		return -1;
	if (PQntuples(r) != 1 || PQnfields(r) < 1) {
		int rows = PQntuples(r);

		PQclear(r);
		*keep = NULL;
		return mk_err_set(e, EX_SOFTWARE,
				  "%s: expected one row, got "
				  "%d",
				  what, rows);
	}
	if (!PQgetisnull(r, 0, 0))
		*val = PQgetvalue(r, 0, 0);
	return 0;
}

int
pg_stream(PGconn *c, const char *sql, int n, const char *const *vals,
	  const char *what, int (*row)(void *arg, const PGresult *r), void *arg,
	  struct mk_err *e)
{
	PGresult *r;
	int rc = 0;

	if (!PQsendQueryParams(c, sql, n, NULL, vals, NULL, NULL, 0))
		return pg_error(c, NULL, what, e);
	/* Unchecked, a refusal would hand over every row at once, which
	 * the loop below would take for an empty answer. */
	if (!PQsetSingleRowMode(c)) {
		while ((r = PQgetResult(c)) != NULL)
			PQclear(r);
		return mk_err_set(e, EX_SOFTWARE,
				  "%s: cannot read the rows "
				  "one by one",
				  what);
	}
	while ((r = PQgetResult(c)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && rc == 0)
			rc = mk_err_set(e, EX_SOFTWARE,
					"%s: rows not read one "
					"by one",
					what);
		else if (st == PGRES_SINGLE_TUPLE && rc == 0)
			rc = row(arg, r);
		else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK &&
			 rc == 0) {
			rc = pg_error(c, r, what, e);
			continue; /* cleared */
		}
		PQclear(r);
	}
	return rc;
}

int
pg_check_schema(PGconn *c, const char *display, struct mk_err *e)
{
	/* pg_class and pg_namespace are readable by every role. */
	static const char sql[] =
		"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
		"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
		"  WHERE n.nspname = 'mikkoo' AND c.relname = 'dead_letter'),"
		" coalesce((SELECT pg_catalog.has_schema_privilege(oid, 'USAGE')"
		"  FROM pg_catalog.pg_namespace WHERE nspname = 'mikkoo'),"
		"  false)";
	PGresult *r = pg_exec(c, sql, 0, NULL, "checking the mikkoo schema", e);
	bool exists, usable;

	if (r == NULL)
		return -1;
	exists = PQgetvalue(r, 0, 0)[0] == 't';
	usable = PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	if (!exists)
		return mk_err_set(e, EX_CONFIG,
				  "table mikkoo.dead_letter does "
				  "not exist in '%s': install mikkoo.sql first "
				  "(psql -f mikkoo.sql)",
				  display);
	if (!usable)
		return mk_err_set(e, EX_NOPERM,
				  "'%s': permission denied for "
				  "schema mikkoo: grant USAGE on it (see "
				  "mikkoo.sql)",
				  display);
	return pg_check_schema_version(c, display, e);
}

/* "0.2.0" against "0.10.1", number by number; <0, 0, >0. */
static int
version_cmp(const char *a, const char *b)
{
	while (*a || *b) {
		long x = strtol(a, (char **)&a, 10),
		     y = strtol(b, (char **)&b, 10);

		if (x != y)
			return x < y ? -1 : 1;
		if (*a == '.')
			a++;
		if (*b == '.')
			b++;
		if ((*a && !isdigit((unsigned char)*a)) ||
		    (*b && !isdigit((unsigned char)*b)))
			break;
	}
	return 0;
}

int
pg_check_schema_version(PGconn *c, const char *display, struct mk_err *e)
{
	/* mikkoo.version() came with 0.2.0: its absence says "older" */
	PGresult *r = pg_exec(c,
			      "SELECT pg_catalog.to_regprocedure("
			      "'mikkoo.version()') IS NOT NULL",
			      0, NULL, "looking for mikkoo.version()", e);
	char have[32] = "older than 0.2.0";
	bool known;

	if (r == NULL)
		return -1;
	known = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (known) {
		r = pg_exec(c, "SELECT mikkoo.version()", 0, NULL,
			    "asking mikkoo.version()", e);
		if (r == NULL)
			return -1;
		snprintf(have, sizeof(have), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	if (isdigit((unsigned char)have[0]) &&
	    version_cmp(have, MIKKOO_SCHEMA_NEEDED) >= 0)
		return 0;
	return mk_err_set(e, EX_CONFIG,
			  "the mikkoo schema in '%s' is %s; "
			  "this program needs %s: upgrade it in place by "
			  "installing mikkoo.sql again (psql -v "
			  "ON_ERROR_STOP=1 -f mikkoo.sql, as a superuser; "
			  "see mikkoo(7))",
			  display, have, MIKKOO_SCHEMA_NEEDED);
}
