/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg: the PostgreSQL session every command shares.
 *
 * Owns: connecting with the project's session defaults, running
 * parameterised statements, and the one classification of failures
 * into exit codes, so the relay and the tools give the same answer:
 *   EX_UNAVAILABLE  the server cannot be reached, the connection broke,
 *                   or the server is shutting down (SQLSTATE 08, 57P)
 *   EX_NOPERM       authentication or privilege refused (28, 42501), a
 *                   TLS peer we must not talk to
 *   EX_CONFIG       a bad connection string
 *   EX_SOFTWARE     any other SQL error (the caller may know better:
 *                   mikkoo-insert calls it bad data)
 * Values always travel as parameters ($1); nothing from the config or
 * the data is spliced into SQL.  Every PGresult is cleared on every path
 * unless handed to the caller.
 * Logs only what the server says on its own (NOTICE, WARNING: libpq
 * would print them raw on stderr), as "postgresql says: ..." lines.
 * Never: knows PgQ or AMQP, logs its own errors, retries.
 */
#ifndef MIKKOO_PG_H
#define MIKKOO_PG_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "err.h"

/*
 * Connect (*out, PQfinish it) with application_name appname, a connect
 * timeout, TCP keepalives and tcp_user_timeout so a dead peer is
 * noticed, unless the URL sets them.  display is the masked URL for
 * messages: "cannot connect to PostgreSQL 'display': ...".
 */
int pg_connect(PGconn **out, const char *url, const char *display,
	       const char *appname, double timeout, struct mk_err *e);

bool pg_alive(const PGconn *c);

/* The exit code that a failed result r (NULL: none) on c stands for. */
int pg_code(const PGconn *c, const PGresult *r);

/* The server's primary message for r, else libpq's, on one line. */
const char *
pg_message(const PGconn *c, const PGresult *r, char *buf, size_t sz);

/*
 * Fill e with pg_code and "WHAT: message (SQLSTATE xxxxx)", PQclear(r),
 * return -1.
 */
int pg_error(const PGconn *c, PGresult *r, const char *what, struct mk_err *e);

/* Run sql; the result (tuples or command OK) or NULL with e filled. */
PGresult *pg_exec(PGconn *c, const char *sql, int n, const char *const *vals,
		  const char *what, struct mk_err *e);

/* The same for a statement whose result is not needed. */
int pg_command(PGconn *c, const char *sql, const char *what, struct mk_err *e);

/*
 * A one-row, one-value query: *val (NULL for SQL NULL) is borrowed from
 * *keep, which the caller PQclears.  Another row count is EX_SOFTWARE.
 */
int
pg_value(PGconn *c, const char *sql, int n, const char *const *vals,
	 const char *what, PGresult **keep, const char **val, struct mk_err *e);

/*
 * Stream the rows of sql one at a time (single-row mode: memory is one
 * row whatever the result's size) to row(arg, r), which must not keep r.
 * A non-zero return of row stops the stream (rows left are read and
 * dropped) and is returned.  -1 with e on an SQL error.
 */
int pg_stream(PGconn *c, const char *sql, int n, const char *const *vals,
	      const char *what, int (*row)(void *arg, const PGresult *r),
	      void *arg, struct mk_err *e);

/*
 * Is the mikkoo schema installed?  EX_CONFIG ("install mikkoo.sql
 * first") when mikkoo.dead_letter is missing; EX_NOPERM when it exists
 * but this user may not see it.
 */
int pg_check_schema(PGconn *c, const char *display, struct mk_err *e);

/*
 * The schema's version (mikkoo.version()) is at least the one this build
 * needs; otherwise EX_CONFIG naming the upgrade step.  pg_check_schema
 * does this too.
 */
#define MIKKOO_SCHEMA_NEEDED "0.2.0"
int pg_check_schema_version(PGconn *c, const char *display, struct mk_err *e);

/*
 * A failed connection's SQLSTATE, from a message written with verbose
 * errors ("FATAL:  28P01: ..."; the last one when several): 1 and
 * state, or 0.  And the exit class of one: 28xxx, 42501 and 3D000
 * (no such database) are EX_NOPERM, the rest EX_UNAVAILABLE.
 */
int pg_sqlstate_in(const char *msg, char state[6]);
int pg_sqlstate_code(const char *state);

#endif
