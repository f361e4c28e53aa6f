/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * walstream: a logical replication connection and its stream.
 *
 * Owns: the connection (replication=database), IDENTIFY_SYSTEM, the
 * checks a slot source needs before it streams (wal_level logical, the
 * REPLICATION right, the slot's row in pg_replication_slots), creating
 * a pgoutput slot when the caller asks (and only then), START_REPLICATION
 * with pgoutput's options (proto_version 1, publication_names,
 * messages), and the CopyBoth loop: XLogData handed out one at a time,
 * keepalives answered at once when the server asks, and standby status
 * updates carrying the position the caller confirmed, sent well inside
 * wal_sender_timeout even while the caller reads nothing.
 *
 * The server's session settings are pinned in the startup packet
 * (DateStyle ISO, IntervalStyle postgres, TimeZone UTC, bytea_output
 * hex, extra_float_digits 3), so values arrive in text forms that any
 * session reads back exactly.
 *
 * Positions: the caller confirms an LSN when every change of every
 * transaction that committed before it is settled (RabbitMQ confirmed
 * it, or it is a committed dead letter); the server then never sends
 * those again.  Confirming inside a transaction is harmless (the server
 * resends a transaction whose commit is past the position, whole).
 * When the caller also says it is idle (nothing it was handed is
 * outstanding), the position follows the server's keepalives past WAL
 * that held nothing for this slot, so a quiet publication on a busy
 * server does not pin WAL.
 *
 * Memory: one message at a time (libpq's buffer holds at most one
 * message and one read); a transaction of any size streams through.
 * Never: decodes pgoutput (pgoutput.h), decides to create or refuse a
 * slot (slot.h), prints, retries.  Errors: EX_NOPERM (77) without the
 * REPLICATION right or a login; EX_CONFIG (78) for wal_level below
 * logical, a missing publication or slot, an invalidated slot;
 * EX_TEMPFAIL (75) when another process streams the slot;
 * EX_UNAVAILABLE (69) when the server is unreachable or went away.
 */
#ifndef MIKKOO_WALSTREAM_H
#define MIKKOO_WALSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "lsn.h"

/* Is name a valid slot name ([a-z0-9_], 1 to 63 bytes)? */
bool walstream_slot_name_ok(const char *name);

struct walstream;

/* A slot's row in pg_replication_slots (exists false: none). */
struct walstream_slot {
	bool exists;
	bool temporary;
	char plugin[64];    /* "" for a physical slot */
	char slot_type[16]; /* "logical" or "physical" */
	char database[64];
	char wal_status[16]; /* reserved, extended, unreserved, lost */
	int active_pid;      /* 0: nobody streams it */
	mk_lsn restart_lsn;
	mk_lsn confirmed_flush; /* 0 for a physical slot */
};

/* One XLogData message. */
struct walstream_msg {
	mk_lsn start;     /* the WAL position the message stands for */
	mk_lsn end;       /* the server's WAL end when it sent it */
	const char *data; /* the pgoutput message, valid until the next */
	size_t len;       /* walstream_read() or walstream_close() */
};

/*
 * Connect to url (libpq URL or key=value string; display is its masked
 * form for messages) as a walsender, run IDENTIFY_SYSTEM and check
 * wal_level.  timeout: connect timeout in seconds.
 */
int
walstream_connect(struct walstream **out, const char *url, const char *display,
		  const char *appname, double timeout, struct mk_err *e);

/* What IDENTIFY_SYSTEM said: the database and the server's WAL end. */
const char *walstream_dbname(const struct walstream *ws);
mk_lsn walstream_server_lsn(const struct walstream *ws);

/* The slot's row (on this connection, before walstream_start). */
int walstream_slot_state(struct walstream *ws, const char *slot,
			 struct walstream_slot *st, struct mk_err *e);

/*
 * CREATE_REPLICATION_SLOT slot LOGICAL pgoutput, without a snapshot;
 * *consistent_point is where its stream begins.  Waits for transactions
 * running at that moment to end (the server needs that to begin).
 */
int walstream_create_slot(struct walstream *ws, const char *slot,
			  mk_lsn *consistent_point, struct mk_err *e);

/* Does each publication exist?  EX_CONFIG for the first that does not. */
int walstream_check_publications(struct walstream *ws, const char *const *pubs,
				 size_t npubs, struct mk_err *e);

/*
 * START_REPLICATION from the slot's confirmed position, pgoutput
 * protocol 1, the publications named (at least one: pgoutput insists)
 * and, when messages, the messages of pg_logical_emit_message().
 */
int
walstream_start(struct walstream *ws, const char *slot, const char *const *pubs,
		size_t npubs, bool messages, struct mk_err *e);

/*
 * The next XLogData within timeout seconds: 1 and *m filled, 0 when
 * none came, -1 with e (the stream ended or broke).  Keepalives and
 * status updates are handled on the way.
 */
int walstream_read(struct walstream *ws, struct walstream_msg *m,
		   double timeout, struct mk_err *e);

/*
 * Everything before lsn is settled (see the top).  idle: nothing the
 * caller was handed is outstanding and it is between transactions.
 * Sent with the next status update (walstream_read, walstream_service,
 * walstream_flush).
 */
void walstream_confirm(struct walstream *ws, mk_lsn lsn, bool idle);
mk_lsn walstream_confirmed(const struct walstream *ws);

/*
 * Send a status update if one is due, reading nothing: call it at least
 * every second while not calling walstream_read (RabbitMQ down), or the
 * server ends the stream after wal_sender_timeout.
 */
int walstream_service(struct walstream *ws, struct mk_err *e);

/* Send the confirmed position now (before a clean stop, for tests). */
int walstream_flush(struct walstream *ws, struct mk_err *e);

/* The socket, for poll() (readable: walstream_read has work). */
int walstream_fd(const struct walstream *ws);

/* Send the last position (when streaming) and close; NULL is fine. */
void walstream_close(struct walstream *ws);

#endif
