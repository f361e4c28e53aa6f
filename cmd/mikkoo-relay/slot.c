/* SPDX-License-Identifier: BSD-3-Clause */
/* slot: a slot's checks, creation and record. */
#include <stdio.h>
#include <string.h>

#include "pg.h"
#include "slot.h"

/* mikkoo.slots' row for slot. */
struct record {
	bool exists;
	bool complete; /* consistent_point set */
	char created_at[64];
	char last_lsn[24];
	char last_at[64];
};

static int
schema_error(struct mk_err *e)
{
	if (e->code == EX_NOPERM)
		return mk_err_prefix(e, "grant SELECT, INSERT and UPDATE on "
					"mikkoo.slots to this role");
	/* undefined_table or undefined_function: an older mikkoo.sql */
	if (strstr(e->msg, "SQLSTATE 42P01") ||
	    strstr(e->msg, "SQLSTATE 42883")) {
		e->code = EX_CONFIG;
		return mk_err_prefix(e, "install this version's mikkoo.sql");
	}
	return -1;
}

static int
read_record(PGconn *pg, const char *slot, struct record *rec, struct mk_err *e)
{
	const char *v[1] = { slot };
	PGresult *r;

	memset(rec, 0, sizeof(*rec));
	r = pg_exec(pg,
		    "SELECT consistent_point IS NOT NULL, "
		    "coalesce(to_char(created_at AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD HH24:MI:SS UTC'), ''), "
		    "coalesce(last_lsn::text, ''), "
		    "coalesce(to_char(last_at AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD HH24:MI:SS UTC'), '') "
		    "FROM mikkoo.slots WHERE slot_name = $1",
		    1, v, "reading mikkoo.slots", e);
	if (r == NULL)
		return schema_error(e);
	if (PQntuples(r) == 1) {
		rec->exists = true;
		rec->complete = PQgetvalue(r, 0, 0)[0] == 't';
		snprintf(rec->created_at, sizeof(rec->created_at), "%s",
			 PQgetvalue(r, 0, 1));
		snprintf(rec->last_lsn, sizeof(rec->last_lsn), "%s",
			 PQgetvalue(r, 0, 2));
		snprintf(rec->last_at, sizeof(rec->last_at), "%s",
			 PQgetvalue(r, 0, 3));
	}
	PQclear(r);
	return 0;
}

static int
call(PGconn *pg, const char *sql, int n, const char *const *v, const char *what,
     struct mk_err *e)
{
	PGresult *r = pg_exec(pg, sql, n, v, what, e);

	if (r == NULL)
		return schema_error(e);
	PQclear(r);
	return 0;
}

static int
record_created(PGconn *pg, const char *slot, mk_lsn point, bool adopted,
	       struct mk_err *e)
{
	char lsn[24];
	const char *v[3] = { slot, lsn, adopted ? "t" : "f" };

	lsn_format(point, lsn, sizeof(lsn));
	return call(pg,
		    "SELECT mikkoo._slot_created($1, $2::pg_lsn, "
		    "$3::boolean)",
		    3, v, "recording the slot", e);
}

int
slot_open(struct walstream *ws, PGconn *pg, const char *slot, bool may_create,
	  struct slot_info *out, struct mk_err *e)
{
	struct walstream_slot st;
	struct record rec;
	char a[24];
	const char *v[1] = { slot };

	memset(out, 0, sizeof(*out));
	/* the record first: a slot another relay makes between the two
	 * reads is then adopted, not taken for one that vanished (the
	 * name is checked by walstream_slot_state; read_record binds it) */
	if (read_record(pg, slot, &rec, e) < 0 ||
	    walstream_slot_state(ws, slot, &st, e) < 0)
		return -1;

	if (!st.exists && rec.complete)
		return mk_err_set(e, EX_CONFIG,
				  "replication slot '%s' is "
				  "gone: it was created %s and the last "
				  "position relayed was %s (%s); it was "
				  "dropped, or lost in a failover (PostgreSQL "
				  "15 keeps slots off standbys), and changes "
				  "after that position may be lost.  Nothing "
				  "is sent past the gap; to start anew from "
				  "now: SELECT mikkoo.forget_slot('%s')",
				  slot, rec.created_at, rec.last_lsn,
				  rec.last_at, slot);
	if (!st.exists) {
		if (!may_create)
			return mk_err_set(e, EX_CONFIG,
					  "replication slot "
					  "'%s' does not exist (and creating "
					  "it was not asked for)",
					  slot);
		/* the intent first: a crash between the two leaves an
		 * incomplete record, and the next start creates it again */
		if (call(pg, "SELECT mikkoo._slot_intent($1)", 1, v,
			 "recording the slot", e) < 0 ||
		    walstream_create_slot(ws, slot, &out->consistent_point, e) <
			    0 ||
		    record_created(pg, slot, out->consistent_point, false, e) <
			    0)
			return -1;
		out->created = true;
		out->confirmed = out->consistent_point;
		snprintf(out->wal_status, sizeof(out->wal_status), "reserved");
		return 0;
	}

	if (strcmp(st.slot_type, "logical") || strcmp(st.plugin, "pgoutput"))
		return mk_err_set(e, EX_CONFIG,
				  "replication slot '%s' is a "
				  "%s slot%s%s, not a logical pgoutput one",
				  slot, st.slot_type,
				  st.plugin[0] ? " of plugin " : "", st.plugin);
	if (strcmp(st.database, walstream_dbname(ws)))
		return mk_err_set(e, EX_CONFIG,
				  "replication slot '%s' belongs "
				  "to database '%s', not '%s'",
				  slot, st.database, walstream_dbname(ws));
	if (st.temporary)
		return mk_err_set(e, EX_CONFIG,
				  "replication slot '%s' is "
				  "temporary",
				  slot);
	if (strcmp(st.wal_status, "lost") == 0 || st.restart_lsn == 0)
		return mk_err_set(e, EX_CONFIG,
				  "replication slot '%s' was "
				  "invalidated (wal_status lost: the WAL it "
				  "needs was removed, see "
				  "max_slot_wal_keep_size); the last position "
				  "relayed was %s (the slot's %s): changes "
				  "after it are gone.  To start anew from now: "
				  "SELECT pg_drop_replication_slot('%s'); "
				  "SELECT mikkoo.forget_slot('%s')",
				  slot,
				  rec.last_lsn[0] ? rec.last_lsn : "unknown",
				  lsn_format(st.confirmed_flush, a, sizeof(a)),
				  slot, slot);
	if (!rec.complete) {
		if (record_created(pg, slot, st.confirmed_flush, !rec.exists,
				   e) < 0)
			return -1;
		out->adopted = !rec.exists;
		out->consistent_point = st.confirmed_flush;
	}
	out->confirmed = st.confirmed_flush;
	snprintf(out->wal_status, sizeof(out->wal_status), "%s", st.wal_status);
	return 0;
}

int
slot_progress(PGconn *pg, const char *slot, mk_lsn lsn, struct mk_err *e)
{
	char s[24];
	const char *v[2] = { slot, s };

	lsn_format(lsn, s, sizeof(s));
	return call(pg, "SELECT mikkoo._slot_progress($1, $2::pg_lsn)", 2, v,
		    "recording the slot's position", e);
}
