/* SPDX-License-Identifier: BSD-3-Clause */
/* walstream: the replication connection and its CopyBoth stream. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <libpq-fe.h>

#include "mono.h"
#include "walstream.h"

/* Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01. */
#define PG_EPOCH_OFFSET 946684800LL

struct walstream {
	PGconn *conn;
	char display[256];
	char dbname[64];
	mk_lsn server_lsn;
	bool streaming;
	char *buf;        /* the message handed out last (PQfreemem) */
	mk_lsn received;  /* the highest WAL end the server sent */
	mk_lsn confirmed; /* what the caller settled */
	mk_lsn sent;      /* the flushed position last sent */
	mk_lsn ka_clean;  /* a keepalive's end, no XLogData since (0: no) */
	bool idle;
	bool reply_now;     /* the server asked for a reply */
	double last_status; /* now_mono() of the last status update */
	double interval;    /* seconds between status updates */
};

bool
walstream_slot_name_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return false;
	return i > 0 && i < 64;
}

/* libpq messages end in "\n" and may span lines; keep one line. */
static const char *
one_line(const char *msg, char *buf, size_t sz)
{
	size_t i, n = 0;

	for (i = 0; msg && msg[i] && n + 1 < sz; i++)
		buf[n++] = (msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t')
				   ? ' '
				   : msg[i];
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
	return buf;
}

/* The exit code a failed connection attempt's message stands for. */
static int
connect_code(const char *msg)
{
	static const char *const perm[] = {
		"replication role",
		"authentication failed",
		"no pg_hba.conf entry",
		"does not exist",
		"permission denied",
		"password is required",
		"not permitted to log in",
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

/* The exit code of a failed command's result on the walsender. */
static int
result_code(const PGconn *c, const PGresult *r)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(c) != CONNECTION_OK || st == NULL ||
	    strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0)
		return EX_UNAVAILABLE;
	if (strncmp(st, "28", 2) == 0 || strcmp(st, "42501") == 0)
		return EX_NOPERM;
	/* undefined_object (a slot, a publication), a slot that cannot
	 * stream (invalidated, wal_level), an invalid parameter */
	if (strcmp(st, "42704") == 0 || strcmp(st, "55000") == 0 ||
	    strcmp(st, "22023") == 0)
		return EX_CONFIG;
	if (strcmp(st, "55006") == 0) /* object_in_use: slot active */
		return EX_TEMPFAIL;
	return EX_PROTOCOL;
}

/* Fill e from r (which may be NULL) on ws, PQclear(r), return -1. */
static int
fail(struct walstream *ws, PGresult *r, const char *what, struct mk_err *e)
{
	const char *msg =
		r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char buf[512];

	one_line(msg ? msg : PQerrorMessage(ws->conn), buf, sizeof(buf));
	if (buf[0] == '\0')
		snprintf(buf, sizeof(buf), "the server closed the connection");
	if (st)
		mk_err_set(e, result_code(ws->conn, r),
			   "%s on '%s': %s "
			   "(SQLSTATE %s)",
			   what, ws->display, buf, st);
	else
		mk_err_set(e, result_code(ws->conn, r), "%s on '%s': %s", what,
			   ws->display, buf);
	PQclear(r);
	return -1;
}

/* Run a command that returns rows (or none); NULL with e on failure. */
static PGresult *
run(struct walstream *ws, const char *cmd, const char *what, struct mk_err *e)
{
	PGresult *r = PQexec(ws->conn, cmd);
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return r;
	fail(ws, r, what, e);
	return NULL;
}

/* Seconds, from a setting such as "60s", "500ms", "1min" or "0". */
static double
setting_seconds(const char *v)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v)
		return -1;
	if (strcmp(end, "ms") == 0)
		return x / 1000;
	if (strcmp(end, "min") == 0)
		return x * 60;
	if (strcmp(end, "h") == 0)
		return x * 3600;
	return x; /* "s", or a bare number of milliseconds */
}

static int
check_server(struct walstream *ws, struct mk_err *e)
{
	PGresult *r;
	double t;

	r = run(ws, "IDENTIFY_SYSTEM", "IDENTIFY_SYSTEM", e);
	if (r == NULL)
		return -1;
	if (PQntuples(r) != 1 || PQnfields(r) < 4 ||
	    lsn_parse(PQgetvalue(r, 0, 2), &ws->server_lsn) < 0 ||
	    PQgetisnull(r, 0, 3)) {
		PQclear(r);
		return mk_err_set(e, EX_PROTOCOL,
				  "IDENTIFY_SYSTEM on '%s': "
				  "not a database connection",
				  ws->display);
	}
	snprintf(ws->dbname, sizeof(ws->dbname), "%s", PQgetvalue(r, 0, 3));
	PQclear(r);

	r = run(ws, "SHOW wal_level", "SHOW wal_level", e);
	if (r == NULL)
		return -1;
	if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "logical")) {
		mk_err_set(e, EX_CONFIG,
			   "PostgreSQL '%s' has wal_level '%s': "
			   "logical decoding needs wal_level = logical (in "
			   "postgresql.conf, then a restart)",
			   ws->display,
			   PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "?");
		PQclear(r);
		return -1;
	}
	PQclear(r);

	/* Status updates at a third of wal_sender_timeout, at most every
	 * 10 s (pg_recvlogical's default), at least every 0.1 s. */
	r = run(ws, "SHOW wal_sender_timeout", "SHOW wal_sender_timeout", e);
	if (r == NULL)
		return -1;
	t = PQntuples(r) == 1 ? setting_seconds(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	ws->interval = t <= 0 ? 10 : t / 3;
	if (ws->interval > 10)
		ws->interval = 10;
	if (ws->interval < 0.1)
		ws->interval = 0.1;
	return 0;
}

int
walstream_connect(struct walstream **out, const char *url, const char *display,
		  const char *appname, double timeout, struct mk_err *e)
{
	/*
	 * With expand_dbname, keywords after dbname override the URL's:
	 * replication and the session settings are ours, the rest the
	 * user's (they come first as defaults).
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
		"replication",
		"options",
		NULL,
	};
	char ctimeout[16], buf[512];
	const char *vals[11];
	struct walstream *ws;

	*out = NULL;
	ws = calloc(1, sizeof(*ws));
	if (ws == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	snprintf(ws->display, sizeof(ws->display), "%s", display);
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
	vals[8] = "database";
	vals[9] = "-c datestyle=ISO -c intervalstyle=postgres "
		  "-c timezone=UTC -c bytea_output=hex "
		  "-c extra_float_digits=3";
	vals[10] = NULL;
	ws->conn = PQconnectdbParams(keys, vals, 1);
	if (ws->conn == NULL) {
		free(ws);
		return mk_err_set(e, EX_OSERR,
				  "cannot connect to '%s': out "
				  "of memory",
				  display);
	}
	if (PQstatus(ws->conn) != CONNECTION_OK) {
		one_line(PQerrorMessage(ws->conn), buf, sizeof(buf));
		mk_err_set(e, connect_code(buf),
			   "cannot connect to "
			   "PostgreSQL '%s' for replication: %s",
			   display, buf);
		walstream_close(ws);
		return -1;
	}
	if (check_server(ws, e) < 0) {
		walstream_close(ws);
		return -1;
	}
	*out = ws;
	return 0;
}

const char *
walstream_dbname(const struct walstream *ws)
{
	return ws->dbname;
}

mk_lsn
walstream_server_lsn(const struct walstream *ws)
{
	return ws->server_lsn;
}

int
walstream_slot_state(struct walstream *ws, const char *slot,
		     struct walstream_slot *st, struct mk_err *e)
{
	char cmd[512];
	PGresult *r;

	memset(st, 0, sizeof(*st));
	if (!walstream_slot_name_ok(slot))
		return mk_err_set(e, EX_CONFIG,
				  "'%s' is not a slot name "
				  "(lower-case letters, digits and '_', at "
				  "most 63)",
				  slot);
	/* simple query protocol only here: the name is checked above */
	snprintf(cmd, sizeof(cmd),
		 "SELECT slot_type, coalesce(plugin, ''), "
		 "coalesce(database::text, ''), temporary, "
		 "coalesce(wal_status, ''), coalesce(active_pid, 0), "
		 "coalesce(restart_lsn::text, ''), "
		 "coalesce(confirmed_flush_lsn::text, '') "
		 "FROM pg_catalog.pg_replication_slots WHERE slot_name = '%s'",
		 slot);
	r = run(ws, cmd, "reading pg_replication_slots", e);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1) {
		st->exists = true;
		snprintf(st->slot_type, sizeof(st->slot_type), "%s",
			 PQgetvalue(r, 0, 0));
		snprintf(st->plugin, sizeof(st->plugin), "%s",
			 PQgetvalue(r, 0, 1));
		snprintf(st->database, sizeof(st->database), "%s",
			 PQgetvalue(r, 0, 2));
		st->temporary = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
		snprintf(st->wal_status, sizeof(st->wal_status), "%s",
			 PQgetvalue(r, 0, 4));
		st->active_pid = atoi(PQgetvalue(r, 0, 5));
		lsn_parse(PQgetvalue(r, 0, 6), &st->restart_lsn);
		lsn_parse(PQgetvalue(r, 0, 7), &st->confirmed_flush);
	}
	PQclear(r);
	return 0;
}

int
walstream_create_slot(struct walstream *ws, const char *slot,
		      mk_lsn *consistent_point, struct mk_err *e)
{
	char cmd[256];
	PGresult *r;

	if (!walstream_slot_name_ok(slot))
		return mk_err_set(e, EX_CONFIG, "'%s' is not a slot name",
				  slot);
	snprintf(cmd, sizeof(cmd),
		 "CREATE_REPLICATION_SLOT %s LOGICAL "
		 "pgoutput (SNAPSHOT 'nothing')",
		 slot);
	r = run(ws, cmd, "creating replication slot", e);
	if (r == NULL)
		return mk_err_prefix(e, "slot '%s'", slot);
	if (PQntuples(r) != 1 || PQnfields(r) < 2 ||
	    lsn_parse(PQgetvalue(r, 0, 1), consistent_point) < 0) {
		PQclear(r);
		return mk_err_set(e, EX_PROTOCOL,
				  "CREATE_REPLICATION_SLOT "
				  "on '%s': unexpected answer",
				  ws->display);
	}
	PQclear(r);
	return 0;
}

/* Append s to buf as a double-quoted identifier ("" for "). */
static void
quote_ident(char *buf, size_t sz, size_t *n, const char *s)
{
	if (*n + 1 < sz)
		buf[(*n)++] = '"';
	for (; *s && *n + 3 < sz; s++) {
		if (*s == '"')
			buf[(*n)++] = '"';
		/* inside the command's single-quoted option value */
		if (*s == '\'')
			buf[(*n)++] = '\'';
		buf[(*n)++] = *s;
	}
	if (*n + 1 < sz)
		buf[(*n)++] = '"';
	buf[*n] = '\0';
}

/* pgoutput would only fail at the first change. */
int
walstream_check_publications(struct walstream *ws, const char *const *pubs,
			     size_t npubs, struct mk_err *e)
{
	PGresult *r;
	size_t i;
	char *lit;
	char cmd[512];
	int found;

	for (i = 0; i < npubs; i++) {
		lit = PQescapeLiteral(ws->conn, pubs[i], strlen(pubs[i]));
		if (lit == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		snprintf(cmd, sizeof(cmd),
			 "SELECT 1 FROM "
			 "pg_catalog.pg_publication WHERE pubname = %s",
			 lit);
		PQfreemem(lit);
		r = run(ws, cmd, "reading pg_publication", e);
		if (r == NULL)
			return -1;
		found = PQntuples(r);
		PQclear(r);
		if (!found)
			return mk_err_set(e, EX_CONFIG,
					  "publication '%s' does "
					  "not exist in database '%s' (CREATE "
					  "PUBLICATION)",
					  pubs[i], ws->dbname);
	}
	return 0;
}

int
walstream_start(struct walstream *ws, const char *slot, const char *const *pubs,
		size_t npubs, bool messages, struct mk_err *e)
{
	struct walstream_slot st;
	char cmd[8192];
	size_t n, i;
	PGresult *r;

	if (npubs == 0)
		return mk_err_set(e, EX_CONFIG,
				  "pgoutput needs a "
				  "publication to stream");
	if (walstream_check_publications(ws, pubs, npubs, e) < 0)
		return -1;
	if (walstream_slot_state(ws, slot, &st, e) < 0)
		return -1;
	if (!st.exists)
		return mk_err_set(e, EX_CONFIG,
				  "replication slot '%s' does "
				  "not exist",
				  slot);
	/* The server starts at the slot's position whatever we say; a
	 * status update below it would move the slot back. */
	ws->confirmed = ws->sent = ws->received = st.confirmed_flush;
	n = (size_t)snprintf(cmd, sizeof(cmd),
			     "START_REPLICATION SLOT %s "
			     "LOGICAL 0/0 (proto_version '1', "
			     "publication_names '",
			     slot);
	for (i = 0; i < npubs; i++) {
		if (i > 0 && n + 1 < sizeof(cmd))
			cmd[n++] = ',';
		quote_ident(cmd, sizeof(cmd), &n, pubs[i]);
	}
	snprintf(cmd + n, sizeof(cmd) - n, "', messages '%s')",
		 messages ? "true" : "false");
	r = PQexec(ws->conn, cmd);
	if (PQresultStatus(r) != PGRES_COPY_BOTH) {
		fail(ws, r, "START_REPLICATION", e);
		return mk_err_prefix(e, "slot '%s'", slot);
	}
	PQclear(r);
	ws->streaming = true;
	ws->last_status = now_mono();
	return 0;
}

static void
put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static uint64_t
get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Microseconds since 2000-01-01 UTC, PostgreSQL's clock. */
static int64_t
pg_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return ((int64_t)tv.tv_sec - PG_EPOCH_OFFSET) * 1000000 + tv.tv_usec;
}

static int
send_status(struct walstream *ws, struct mk_err *e)
{
	unsigned char m[34];
	mk_lsn written =
		ws->received > ws->confirmed ? ws->received : ws->confirmed;

	m[0] = 'r';
	put64(m + 1, written);
	put64(m + 9, ws->confirmed);
	put64(m + 17, ws->confirmed);
	put64(m + 25, (uint64_t)pg_now());
	m[33] = 0;
	if (PQputCopyData(ws->conn, (const char *)m, sizeof(m)) != 1 ||
	    PQflush(ws->conn) != 0)
		return fail(ws, NULL, "sending a standby status update", e);
	ws->sent = ws->confirmed;
	ws->reply_now = false;
	ws->last_status = now_mono();
	return 0;
}

/* When the next status update is due (now_mono() seconds). */
static double
status_due(const struct walstream *ws)
{
	if (ws->reply_now)
		return 0;
	/* a new position goes out within a second */
	if (ws->confirmed != ws->sent)
		return ws->last_status + (ws->interval < 1 ? ws->interval : 1);
	return ws->last_status + ws->interval;
}

int
walstream_service(struct walstream *ws, struct mk_err *e)
{
	if (!ws->streaming)
		return 0;
	if (now_mono() >= status_due(ws))
		return send_status(ws, e);
	return 0;
}

int
walstream_flush(struct walstream *ws, struct mk_err *e)
{
	return ws->streaming ? send_status(ws, e) : 0;
}

void
walstream_confirm(struct walstream *ws, mk_lsn lsn, bool idle)
{
	if (lsn > ws->confirmed)
		ws->confirmed = lsn;
	ws->idle = idle;
	if (idle && ws->ka_clean > ws->confirmed)
		ws->confirmed = ws->ka_clean;
}

mk_lsn
walstream_confirmed(const struct walstream *ws)
{
	return ws->confirmed;
}

int
walstream_fd(const struct walstream *ws)
{
	return PQsocket(ws->conn);
}

/* The stream ended: the server's reason. */
static int
stream_ended(struct walstream *ws, struct mk_err *e)
{
	PGresult *r = PQgetResult(ws->conn);
	PGresult *next;

	ws->streaming = false;
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		while ((next = PQgetResult(ws->conn)) != NULL)
			PQclear(next);
		return mk_err_set(e, EX_UNAVAILABLE,
				  "PostgreSQL '%s' ended "
				  "the replication stream",
				  ws->display);
	}
	fail(ws, r, "replication stream", e);
	while ((next = PQgetResult(ws->conn)) != NULL)
		PQclear(next);
	return -1;
}

int
walstream_read(struct walstream *ws, struct walstream_msg *m, double timeout,
	       struct mk_err *e)
{
	double deadline = now_mono() + timeout, now, until;
	const unsigned char *p;
	struct pollfd pfd;
	char *buf;
	int n, ms;

	if (ws->buf) {
		PQfreemem(ws->buf);
		ws->buf = NULL;
	}
	if (!ws->streaming)
		return mk_err_set(e, EX_SOFTWARE, "not streaming");
	for (;;) {
		if (walstream_service(ws, e) < 0)
			return -1;
		n = PQgetCopyData(ws->conn, &buf, 1);
		if (n > 0) {
			p = (const unsigned char *)buf;
			if (p[0] == 'w' && n >= 25) {
				m->start = get64(p + 1);
				m->end = get64(p + 9);
				m->data = buf + 25;
				m->len = (size_t)n - 25;
				ws->buf = buf;
				if (m->end > ws->received)
					ws->received = m->end;
				ws->idle = false;
				ws->ka_clean = 0;
				return 1;
			}
			if (p[0] == 'k' && n >= 18) {
				mk_lsn end = get64(p + 1);

				if (end > ws->received)
					ws->received = end;
				ws->ka_clean = end;
				if (ws->idle && end > ws->confirmed)
					ws->confirmed = end;
				if (p[17])
					ws->reply_now = true;
				PQfreemem(buf);
				continue;
			}
			PQfreemem(buf);
			return mk_err_set(
				e, EX_PROTOCOL,
				"replication stream "
				"on '%s': unknown message '%c' of %d "
				"bytes",
				ws->display,
				p[0] >= ' ' && p[0] < 127 ? p[0] : '?', n);
		}
		if (n == -1)
			return stream_ended(ws, e);
		if (n < -1) {
			ws->streaming = false;
			return fail(ws, NULL, "replication stream", e);
		}
		/* nothing whole in libpq's buffer: what the socket has (a
		 * zero timeout still takes what already arrived) */
		now = now_mono();
		until = status_due(ws);
		if (until > deadline)
			until = deadline;
		ms = until > now ? (int)((until - now) * 1000) + 1 : 0;
		pfd.fd = PQsocket(ws->conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, ms);
		if (n < 0 && errno != EINTR)
			return mk_err_set(e, EX_OSERR, "poll: %s",
					  strerror(errno));
		if (n < 0)
			return 0; /* a signal: let the caller look */
		if (n > 0 && PQconsumeInput(ws->conn) != 1) {
			ws->streaming = false;
			return fail(ws, NULL, "replication stream", e);
		}
		if (n == 0 && now_mono() >= deadline)
			return 0;
	}
}

void
walstream_close(struct walstream *ws)
{
	if (ws == NULL)
		return;
	if (ws->buf)
		PQfreemem(ws->buf);
	if (ws->streaming && PQstatus(ws->conn) == CONNECTION_OK) {
		/* the last position, then end the copy; errors no longer
		 * matter (the server keeps what it got) */
		(void)send_status(ws, NULL);
		(void)PQputCopyEnd(ws->conn, NULL);
		(void)PQflush(ws->conn);
	}
	PQfinish(ws->conn);
	free(ws);
}
