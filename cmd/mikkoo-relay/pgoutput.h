/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pgoutput: the messages of PostgreSQL's built-in logical decoding
 * plugin, protocol version 1, decoded.
 *
 * Owns: the wire format of Begin, Commit, Origin, Relation, Type,
 * Insert, Update, Delete, Truncate and Message, tuple data ('n' null,
 * 'u' unchanged TOASTed value not sent, 't' text, 'b' binary), and the
 * relation cache: a Relation message describes a table before its first
 * change on the stream and again after its definition changed; it
 * replaces the cached one for its relid.
 * Pure: no I/O.  Decoded values point into the buffer given to
 * pgo_decode() and live as long as it does; a relation lives until the
 * next Relation message for its relid or pgo_free().  Memory: the
 * relations of the publication, and arrays as wide as the widest one.
 * Never: renders values (render.h), knows slots.
 * Errors: EX_PROTOCOL with where the message went wrong.
 */
#ifndef MIKKOO_PGOUTPUT_H
#define MIKKOO_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "lsn.h"

struct pgo_column {
	char *name;
	uint32_t type; /* pg_type OID, as of the change */
	int32_t typmod;
	bool key; /* part of the replica identity */
};

struct pgo_relation {
	uint32_t relid;
	char *nspname; /* "" stands for pg_catalog */
	char *relname;
	char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
	int ncols;      /* the published columns, in table order */
	struct pgo_column *cols;
};

struct pgo_value {
	char kind; /* 'n' null, 'u' unchanged TOAST, 't', 'b' */
	uint32_t len;
	const char *data; /* not NUL-terminated */
};

struct pgo_tuple {
	int ncols; /* 0: no tuple */
	const struct pgo_value *vals;
};

struct pgo_msg {
	char type; /* B C O R Y I U D T M */
	/* B: final_lsn is the commit's LSN; C: commit LSN and end_lsn, the
	 * end of the commit record (what a client confirms); O: origin's */
	mk_lsn final_lsn;
	mk_lsn end_lsn;
	int64_t commit_time; /* B, C: microseconds since 2000-01-01 UTC */
	uint32_t xid;        /* B */
	/* R, I, U, D */
	const struct pgo_relation *rel;
	char old_kind; /* U, D: 'K' key only, 'O' old row, 0 none */
	struct pgo_tuple old_tuple;
	struct pgo_tuple new_tuple;
	/* T: the relations, in the message's order */
	int nrels;
	uint8_t truncate_options; /* 1 CASCADE, 2 RESTART IDENTITY */
	const struct pgo_relation *const *rels;
	/* M */
	bool transactional;
	mk_lsn msg_lsn;
	const char *prefix; /* NUL-terminated, in the buffer */
	const char *content;
	size_t content_len;
	/* Y: type_oid and nsp/name; O: name */
	uint32_t type_oid;
	const char *nsp;
	const char *name;
};

struct pgo;

struct pgo *pgo_new(void);
void pgo_free(struct pgo *d);

/* Decode one message; 0, or -1 with e (EX_PROTOCOL, EX_OSERR). */
int pgo_decode(struct pgo *d, const char *buf, size_t len, struct pgo_msg *m,
	       struct mk_err *e);

/* A cached relation, or NULL. */
const struct pgo_relation *pgo_relation(const struct pgo *d, uint32_t relid);

#endif
