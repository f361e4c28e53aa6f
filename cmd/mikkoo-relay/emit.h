/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emit: the events mikkoo.emit() writes into the WAL, as a slot
 * delivers them (pgoutput 'M' messages).
 *
 * Owns: the message's prefix and content (after the 32 characters of
 * the emit key: stream, ev_type, ev_data, ev_extra1 .. ev_extra4, each
 * '-' for NULL or its length in bytes, ':' and its bytes; see
 * sql/logical.sql), and telling an event that mikkoo.emit() wrote from
 * a forged one: pg_logical_emit_message() is open to every role, but
 * only mikkoo.emit() (run with its owner's rights, by roles that may
 * write events) knows the key.  A message with the prefix that is not
 * transactional, lacks the key or is malformed is forged: never an
 * event.
 * Pure: no I/O.  The key is compared in constant time and never copied
 * into a message.
 */
#ifndef MIKKOO_EMIT_H
#define MIKKOO_EMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define EMIT_PREFIX "mikkoo.emit"
#define EMIT_KEY_LEN 32

/* An emitted event; the pointers borrow the message's content. */
struct emit_event {
	const char *stream;
	size_t stream_len;
	const char *field[6]; /* ev_type, ev_data, ev_extra1 .. 4; NULL */
	size_t len[6];        /* for SQL NULL */
};

/*
 * 1: a genuine event, *ev filled; 0: not mikkoo.emit's prefix (another
 * application's message); -1: forged or malformed, e->msg says why
 * (EX_DATAERR).  key: the emit key (mikkoo._emit_key()).
 */
int emit_parse(const char *prefix, bool transactional, const char *content,
	       size_t len, const char *key, struct emit_event *ev,
	       struct mk_err *e);

#endif
