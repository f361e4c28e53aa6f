/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * slot: the replication slot a logical source streams, and its record
 * in mikkoo.slots.
 *
 * Owns the rules (mikkoo(7)):
 *   - no slot and no record: create it when allowed (the relay's first
 *     start), recorded before (the intent) and after (where its stream
 *     begins), else refuse;
 *   - a slot without a complete record: adopt it (record it, from its
 *     own position: nothing is skipped);
 *   - a complete record and no slot: the slot vanished (dropped, or lost
 *     in a failover: PostgreSQL 15 keeps slots off standbys, mikkoo.slots
 *     is replicated): refuse, naming the slot and the last position
 *     relayed; never create a new one past the gap;
 *   - a slot whose WAL is gone (wal_status lost: max_slot_wal_keep_size)
 *     or that is not a logical pgoutput slot of this database: refuse.
 * Starting anew is the operator's: mikkoo.forget_slot() (after
 * pg_drop_replication_slot() for an invalidated slot).  Refusals are
 * EX_CONFIG (78), which supervisors treat as permanent.
 * Never: drops a slot, streams, prints.
 */
#ifndef MIKKOO_SLOT_H
#define MIKKOO_SLOT_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "err.h"
#include "lsn.h"
#include "walstream.h"

struct slot_info {
	bool created;            /* this call created it */
	bool adopted;            /* this call recorded a slot it found */
	mk_lsn consistent_point; /* created, adopted: where it begins */
	mk_lsn confirmed;        /* the slot's confirmed_flush_lsn */
	char wal_status[16];     /* "unreserved": WAL is about to go */
};

/*
 * Check (and when may_create, create) slot on ws's server; pg is an
 * ordinary connection to the same database (mikkoo.slots).
 */
int slot_open(struct walstream *ws, PGconn *pg, const char *slot,
	      bool may_create, struct slot_info *out, struct mk_err *e);

/* Record lsn as the last position confirmed on slot. */
int slot_progress(PGconn *pg, const char *slot, mk_lsn lsn, struct mk_err *e);

#endif
