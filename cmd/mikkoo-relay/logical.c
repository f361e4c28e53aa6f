/* SPDX-License-Identifier: BSD-3-Clause */
/* logical: a slot's changes and emitted events as PgQ-shaped batches. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "emit.h"
#include "logical.h"
#include "mono.h"
#include "pg.h"
#include "pgoutput.h"
#include "render.h"
#include "sbuf.h"
#include "slot.h"
#include "walstream.h"

#define PG_EPOCH_OFFSET_US (946684800LL * 1000000)
#define NONE ((size_t)-1)
#define MAX_WARNINGS 256

/* The strings of a pending event, as offsets into the arena. */
enum { F_TYPE, F_DATA, F_X1, F_X2, F_X3, F_X4, F_TABLE, F_STREAM, F_ERR, F_N };

struct pending {
	char kind;
	mk_lsn lsn, commit_lsn;
	long long txid;
	int64_t commit_time;
	int row; /* render row, or -1: F_DATA in the arena */
	size_t off[F_N], len[F_N];
};

/*
 * A batch: the events read for it, their rendered rows, and the events
 * handed out.  There are two: the open one, and the next, which is read
 * (and rendered once full) while RabbitMQ confirms the open one, so that
 * the stream and PostgreSQL's rendering work while RabbitMQ does, not
 * between its batches.
 */
struct lbatch {
	struct pending *pend;
	size_t npend, cappend;
	struct sbuf arena;
	struct render_round *round;
	struct logical_event *events;
	size_t nevents, capevents;
	mk_lsn commit; /* the end of its last commit, or 0 */
	bool idle;     /* it ended between transactions */
	bool touched;  /* a message of the stream was read into it */
	bool sealed;   /* full: it takes no more */
};

struct logical {
	struct logical_config cfg;
	PGconn *pg;
	struct walstream *ws;
	struct pgo *dec;
	struct render *render;
	char key[EMIT_KEY_LEN + 1];
	bool created;
	char **warnings;
	size_t nwarnings;

	/* the transaction being read */
	bool in_txn;
	long long txid;
	int64_t commit_time;
	mk_lsn commit_lsn;
	uint64_t next_full; /* a recent full next txid, for epochs */
	mk_lsn last_start;  /* ids: the record and the index in it */
	long long k;

	struct lbatch b[2];
	struct lbatch *cur;  /* the batch handed out (open_batch) */
	struct lbatch *fill; /* the next, being read */
	bool open_batch;
	bool ahead_failed;       /* reading ahead failed: the next batch */
	struct mk_err ahead_err; /* fails so, after the open one finished */

	mk_lsn recorded;
	double recorded_at;
};

static int warn(struct logical *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
warn(struct logical *s, const char *fmt, ...)
{
	char buf[1024], **w;
	va_list ap;

	/* bounded: a long run that re-prepares definitions repeats its
	 * notes (the caller has logged them by then) */
	if (s->nwarnings >= MAX_WARNINGS)
		return 0;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	w = realloc(s->warnings, (s->nwarnings + 2) * sizeof(*w));
	if (w == NULL)
		return -1;
	s->warnings = w;
	w[s->nwarnings] = strdup(buf);
	if (w[s->nwarnings])
		s->nwarnings++;
	w[s->nwarnings] = NULL;
	return 0;
}

const char *const *
logical_warnings(const struct logical *s)
{
	static const char *const none[] = { NULL };

	return s->warnings ? (const char *const *)s->warnings : none;
}

bool
logical_slot_created(const struct logical *s)
{
	return s->created;
}

PGconn *
logical_conn(struct logical *s)
{
	return s->pg;
}

const char *
logical_slot(const struct logical *s)
{
	return s->cfg.slot;
}

mk_lsn
logical_confirmed(const struct logical *s)
{
	return walstream_confirmed(s->ws);
}

/* A text[] literal of names (for the warnings query). */
static void
text_array(struct sbuf *b, const char *const *v, size_t n)
{
	size_t i;
	const char *c;

	sbuf_addc(b, '{');
	for (i = 0; i < n; i++) {
		if (i)
			sbuf_addc(b, ',');
		sbuf_addc(b, '"');
		for (c = v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				sbuf_addc(b, '\\');
			sbuf_addc(b, *c);
		}
		sbuf_addc(b, '"');
	}
	sbuf_addc(b, '}');
}

/*
 * The trap users hit first: a published table whose old rows the WAL
 * does not hold (not REPLICA IDENTITY FULL), and worse, one with no
 * identity at all, whose UPDATE and DELETE then fail for its writers.
 */
static int
identity_warnings(struct logical *s, struct mk_err *e)
{
	struct sbuf pubs = { 0 };
	const char *v[1];
	PGresult *r;
	int i;

	text_array(&pubs, s->cfg.publications, s->cfg.npublications);
	if (pubs.oom)
		return mk_err_set(e, EX_OSERR, "out of memory");
	v[0] = pubs.p;
	r = pg_exec(
		s->pg,
		"SELECT DISTINCT p.schemaname || '.' || p.tablename, "
		"  c.relreplident, "
		"  EXISTS (SELECT 1 FROM pg_catalog.pg_index x "
		"          WHERE x.indrelid = c.oid AND "
		"            (x.indisprimary OR x.indisreplident)) "
		"FROM pg_catalog.pg_publication_tables p "
		"JOIN pg_catalog.pg_namespace n ON n.nspname = p.schemaname "
		"JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid "
		"  AND c.relname = p.tablename "
		"WHERE p.pubname = ANY ($1::text[]) "
		"  AND c.relreplident <> 'f' ORDER BY 1",
		1, v, "reading the publications' tables", e);
	sbuf_release(&pubs);
	if (r == NULL)
		return -1;
	for (i = 0; i < PQntuples(r); i++) {
		const char *t = PQgetvalue(r, i, 0), *id = PQgetvalue(r, i, 1);
		bool key = PQgetvalue(r, i, 2)[0] == 't';

		if (id[0] == 'n' || (id[0] == 'd' && !key))
			warn(s,
			     "table %s has no replica identity (REPLICA "
			     "IDENTITY %s%s): if its publication publishes "
			     "updates or deletes, its writers' UPDATE and "
			     "DELETE fail; ALTER TABLE %s REPLICA IDENTITY "
			     "FULL",
			     t, id[0] == 'n' ? "NOTHING" : "DEFAULT",
			     id[0] == 'n' ? "" : " without a primary key", t);
		else
			warn(s,
			     "table %s is not REPLICA IDENTITY FULL: its "
			     "UPDATE and DELETE messages hold only the key "
			     "in old, and an update's diff is every column "
			     "of new but the unchanged key (ALTER TABLE %s "
			     "REPLICA IDENTITY FULL for the capture's exact "
			     "old and diff)",
			     t, t);
	}
	PQclear(r);
	return 0;
}

static int
refresh_txid(struct logical *s, struct mk_err *e)
{
	PGresult *keep;
	const char *v;

	if (pg_value(s->pg,
		     "SELECT pg_catalog.pg_snapshot_xmax("
		     "pg_catalog.pg_current_snapshot())::text",
		     0, NULL, "reading the next txid", &keep, &v, e) < 0)
		return -1;
	s->next_full = strtoull(v ? v : "0", NULL, 10);
	PQclear(keep);
	return 0;
}

/* The 64-bit txid of a 32-bit xid the stream names. */
static int
full_txid(struct logical *s, uint32_t xid, long long *out, struct mk_err *e)
{
	uint64_t epoch;

	if (xid > (uint32_t)s->next_full && refresh_txid(s, e) < 0)
		return -1;
	epoch = s->next_full >> 32;
	if (xid > (uint32_t)s->next_full && epoch > 0)
		epoch--; /* the previous epoch's */
	*out = (long long)(epoch << 32 | xid);
	return 0;
}

int
logical_open(struct logical **out, const struct logical_config *cfg,
	     struct mk_err *e)
{
	static const char *const emit_pub[] = { "mikkoo_emit" };
	struct logical *s;
	struct slot_info si;
	PGresult *keep;
	const char *v;

	*out = NULL;
	if (cfg->npublications == 0 && cfg->nstreams == 0)
		return mk_err_set(e, EX_CONFIG,
				  "a logical source needs a "
				  "publication or message streams");
	if (cfg->slot == NULL || !walstream_slot_name_ok(cfg->slot))
		return mk_err_set(e, EX_CONFIG,
				  "'%s' is not a slot name "
				  "(lower-case letters, digits and '_', at "
				  "most 63)",
				  cfg->slot ? cfg->slot : "");
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	s->cfg = *cfg;
	if (s->cfg.max_events == 0)
		s->cfg.max_events = 1000;
	if (s->cfg.max_bytes == 0)
		s->cfg.max_bytes = 8 << 20;
	if (s->cfg.npublications == 0) {
		s->cfg.publications = emit_pub;
		s->cfg.npublications = 1;
	}
	if (s->cfg.record_every <= 0)
		s->cfg.record_every = 5;
	s->cur = &s->b[0];
	s->fill = &s->b[1];
	s->b[0].idle = s->b[1].idle = true; /* no transaction read yet */
	s->dec = pgo_new();
	s->b[0].round = render_round_new();
	s->b[1].round = render_round_new();
	if (s->dec == NULL || s->b[0].round == NULL || s->b[1].round == NULL) {
		logical_close(s);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	/* everything that can be refused before a slot is created */
	if (pg_connect(&s->pg, cfg->url, cfg->display, cfg->appname,
		       cfg->connect_timeout, e) < 0 ||
	    pg_check_schema(s->pg, cfg->display, e) < 0)
		goto fail;
	if (cfg->nstreams) {
		if (pg_value(s->pg, "SELECT key FROM mikkoo.emit_key", 0, NULL,
			     "reading the emit key", &keep, &v, e) < 0) {
			if (e->code == EX_NOPERM)
				mk_err_prefix(e,
					      "grant SELECT on "
					      "mikkoo.emit_key to this role");
			goto fail;
		}
		if (v == NULL || strlen(v) != EMIT_KEY_LEN) {
			PQclear(keep);
			mk_err_set(e, EX_CONFIG,
				   "mikkoo.emit_key is empty: "
				   "install mikkoo.sql again");
			goto fail;
		}
		memcpy(s->key, v, EMIT_KEY_LEN + 1);
		PQclear(keep);
	}
	if (walstream_connect(&s->ws, cfg->url, cfg->display, cfg->appname,
			      cfg->connect_timeout, e) < 0 ||
	    walstream_check_publications(s->ws, s->cfg.publications,
					 s->cfg.npublications, e) < 0 ||
	    slot_open(s->ws, s->pg, cfg->slot, cfg->create_slot, &si, e) < 0)
		goto fail;
	s->created = si.created;
	s->recorded = si.confirmed;
	if (strcmp(si.wal_status, "unreserved") == 0)
		warn(s,
		     "replication slot '%s' is about to lose WAL it needs "
		     "(wal_status unreserved: max_slot_wal_keep_size)",
		     cfg->slot);
	if (cfg->npublications && identity_warnings(s, e) < 0)
		goto fail;
	if (refresh_txid(s, e) < 0 || render_new(&s->render, s->pg, e) < 0 ||
	    walstream_start(s->ws, cfg->slot, s->cfg.publications,
			    s->cfg.npublications, cfg->nstreams > 0, e) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	if (strstr(e->msg, "SQLSTATE 42P01"))
		e->code = EX_CONFIG; /* an older mikkoo.sql */
	logical_close(s);
	return -1;
}

/* Append n bytes (NULL: SQL NULL) as field f of p (of the fill batch). */
static void
put(struct logical *s, struct pending *p, int f, const char *v, size_t n)
{
	struct sbuf *a = &s->fill->arena;

	if (v == NULL) {
		p->off[f] = NONE;
		p->len[f] = 0;
		return;
	}
	p->off[f] = a->len;
	p->len[f] = n;
	sbuf_add(a, v, n);
	sbuf_addc(a, '\0');
}

static struct pending *
new_pending(struct logical *s, char kind, mk_lsn lsn, struct mk_err *e)
{
	struct lbatch *b = s->fill;
	struct pending *p;
	int f;

	if (b->npend == b->cappend) {
		size_t cap = b->cappend ? b->cappend * 2 : 64;

		p = realloc(b->pend, cap * sizeof(*p));
		if (p == NULL) {
			mk_err_set(e, EX_OSERR, "out of memory");
			return NULL;
		}
		b->pend = p;
		b->cappend = cap;
	}
	p = &b->pend[b->npend++];
	memset(p, 0, sizeof(*p));
	for (f = 0; f < F_N; f++)
		p->off[f] = NONE;
	p->kind = kind;
	p->lsn = lsn;
	p->row = -1;
	p->commit_lsn = s->in_txn ? s->commit_lsn : 0;
	p->txid = s->in_txn ? s->txid : 0;
	p->commit_time = s->commit_time;
	return p;
}

/* The id's index: events of one record count up from its start. */
static long long
index_in(struct logical *s, mk_lsn start)
{
	if (start != s->last_start) {
		s->last_start = start;
		s->k = 0;
	}
	return s->k++;
}

/* The routing key, the table and the headers of a change of rel. */
static void
change_fields(struct logical *s, struct pending *p,
	      const struct pgo_relation *rel, char action)
{
	const char *nsp = rel->nspname[0] ? rel->nspname : "pg_catalog";
	const char *subst[3][2] = { { "{schema}", nsp },
				    { "{table}", rel->relname },
				    { "{action}", NULL } };
	char a[2] = { action, '\0' };
	struct sbuf rk = { 0 }, t = { 0 };
	int i;

	subst[2][1] = a;
	/* replace() three times over the template, as the capture does */
	sbuf_adds(&rk,
		  s->cfg.routing_key ? s->cfg.routing_key : "{schema}.{table}");
	for (i = 0; i < 3; i++) {
		struct sbuf next = { 0 };
		const char *c = rk.p, *hit;
		size_t n = strlen(subst[i][0]);

		while ((hit = strstr(c, subst[i][0])) != NULL) {
			sbuf_add(&next, c, (size_t)(hit - c));
			sbuf_adds(&next, subst[i][1]);
			c = hit + n;
		}
		sbuf_adds(&next, c);
		if (next.oom)
			rk.oom = true;
		sbuf_release(&rk);
		rk = next;
		if (rk.p == NULL)
			break;
	}
	put(s, p, F_TYPE, rk.p ? rk.p : "", rk.p ? rk.len : 0);
	put(s, p, F_X1, s->cfg.exchange ? s->cfg.exchange : "",
	    s->cfg.exchange ? strlen(s->cfg.exchange) : 0);
	put(s, p, F_X2, "application/json", 16);
	/* {"table" : "s.t", "action" : "I"} as json_build_object writes */
	render_table_name(&t, rel);
	sbuf_reset(&rk);
	sbuf_adds(&rk, "{\"table\" : ");
	sbuf_adds(&rk, t.p ? t.p : "\"\"");
	sbuf_adds(&rk, ", \"action\" : \"");
	sbuf_addc(&rk, action);
	sbuf_adds(&rk, "\"}");
	put(s, p, F_X4, rk.p ? rk.p : "", rk.p ? rk.len : 0);
	/* the table without JSON's quotes */
	if (t.p && t.len >= 2) {
		sbuf_reset(&rk);
		sbuf_adds(&rk, nsp);
		sbuf_addc(&rk, '.');
		sbuf_adds(&rk, rel->relname);
		put(s, p, F_TABLE, rk.p, rk.len);
	}
	if (t.oom || rk.oom)
		s->fill->arena.oom = true;
	sbuf_release(&t);
	sbuf_release(&rk);
}

static bool
ours(const struct pgo_relation *rel)
{
	return strcmp(rel->nspname, "mikkoo") == 0;
}

static bool
stream_wanted(const struct logical *s, const struct emit_event *ev)
{
	size_t i;

	for (i = 0; i < s->cfg.nstreams; i++)
		if (strlen(s->cfg.streams[i]) == ev->stream_len &&
		    memcmp(s->cfg.streams[i], ev->stream, ev->stream_len) == 0)
			return true;
	return false;
}

static int
on_message(struct logical *s, const struct pgo_msg *m, struct mk_err *e)
{
	struct emit_event ev;
	struct mk_err why;
	struct pending *p;
	int rc, i;

	if (s->cfg.nstreams == 0)
		return 0;
	rc = emit_parse(m->prefix, m->transactional, m->content, m->content_len,
			s->key, &ev, &why);
	if (rc == 0)
		return 0;
	if (rc < 0 && why.code != EX_DATAERR) {
		*e = why;
		return -1;
	}
	if (rc > 0 && !stream_wanted(s, &ev))
		return 0;
	p = new_pending(s, rc > 0 ? 'E' : 'F', m->msg_lsn, e);
	if (p == NULL)
		return -1;
	if (!m->transactional) {
		p->commit_time = 0;
		p->txid = 0;
	}
	if (rc > 0) {
		put(s, p, F_STREAM, ev.stream, ev.stream_len);
		for (i = 0; i < 6; i++)
			put(s, p, i, ev.field[i], ev.len[i]);
		return 0;
	}
	put(s, p, F_ERR, why.msg, strlen(why.msg));
	/* what the forger wrote, less what stands where the key goes */
	if (m->content_len > EMIT_KEY_LEN)
		put(s, p, F_DATA, m->content + EMIT_KEY_LEN,
		    m->content_len - EMIT_KEY_LEN);
	else
		put(s, p, F_DATA, "", 0);
	return 0;
}

static int
on_change(struct logical *s, const struct pgo_msg *m, mk_lsn start,
	  struct mk_err *e)
{
	struct pending *p;
	char *note;
	int row;

	if (ours(m->rel))
		return 0;
	row = render_add(s->render, s->fill->round, m->rel, m->type,
			 m->old_kind, &m->old_tuple, &m->new_tuple,
			 s->commit_time, e);
	if (row < 0)
		return -1;
	note = render_take_note(s->render);
	if (note) {
		warn(s, "%s", note);
		free(note);
	}
	p = new_pending(s, m->type, start + (mk_lsn)index_in(s, start), e);
	if (p == NULL)
		return -1;
	p->row = row;
	change_fields(s, p, m->rel, m->type);
	return 0;
}

static int
on_truncate(struct logical *s, const struct pgo_msg *m, mk_lsn start,
	    struct mk_err *e)
{
	struct sbuf body = { 0 };
	struct pending *p;
	int i;

	for (i = 0; i < m->nrels; i++) {
		if (ours(m->rels[i]))
			continue;
		p = new_pending(s, 'T', start + (mk_lsn)index_in(s, start), e);
		if (p == NULL)
			return -1;
		change_fields(s, p, m->rels[i], 'T');
		sbuf_reset(&body);
		render_truncate(&body, m->rels[i], s->commit_time);
		put(s, p, F_DATA, body.p ? body.p : "", body.len);
		if (body.oom)
			s->fill->arena.oom = true;
	}
	sbuf_release(&body);
	return 0;
}

/* One message of the stream. */
static int
on_xlogdata(struct logical *s, const struct walstream_msg *w, struct mk_err *e)
{
	struct pgo_msg m;

	if (pgo_decode(s->dec, w->data, w->len, &m, e) < 0)
		return -1;
	if (m.type != 'C')
		s->fill->idle = false;
	switch (m.type) {
	case 'B':
		s->in_txn = true;
		s->commit_time = m.commit_time;
		s->commit_lsn = m.final_lsn;
		return full_txid(s, m.xid, &s->txid, e);
	case 'C':
		s->in_txn = false;
		s->fill->commit = m.end_lsn;
		s->fill->idle = true;
		return 0;
	case 'I':
	case 'U':
	case 'D':
		return on_change(s, &m, w->start, e);
	case 'T':
		return on_truncate(s, &m, w->start, e);
	case 'M':
		return on_message(s, &m, e);
	default: /* R, Y, O: the decoder keeps what matters */
		return 0;
	}
}

static void
batch_reset(struct logical *s, struct lbatch *b)
{
	render_reset(s->render, b->round);
	sbuf_reset(&b->arena);
	b->npend = 0;
	b->nevents = 0;
	b->commit = 0;
	b->idle = !s->in_txn;
	b->touched = false;
	b->sealed = false;
}

static const char *
at(const struct lbatch *b, const struct pending *p, int f)
{
	return p->off[f] == NONE ? NULL : b->arena.p + p->off[f];
}

/* The batch's events, from the pending ones and the rendered rows. */
static int
build_events(struct logical *s, struct lbatch *b, struct mk_err *e)
{
	size_t i;
	int f;

	if (b->capevents < b->npend) {
		struct logical_event *ev =
			realloc(b->events, b->npend * sizeof(*ev));

		if (ev == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		b->events = ev;
		b->capevents = b->npend;
	}
	b->nevents = 0;
	for (i = 0; i < b->npend; i++) {
		const struct pending *p = &b->pend[i];
		const struct render_row *rr = NULL;
		struct logical_event *ev = &b->events[b->nevents];

		if (p->row >= 0) {
			rr = render_result(b->round, (size_t)p->row);
			if (rr == NULL)
				return mk_err_set(e, EX_SOFTWARE,
						  "row %d was "
						  "not rendered",
						  p->row);
			if (rr->unchanged && s->cfg.skip_unchanged &&
			    rr->error == NULL)
				continue;
		}
		memset(ev, 0, sizeof(*ev));
		ev->kind = p->kind;
		ev->lsn = p->lsn;
		ev->commit_lsn = p->commit_lsn;
		ev->ev.ev_id = (long long)(p->kind == 'E' || p->kind == 'F'
						   ? p->lsn - 1
						   : p->lsn);
		ev->ev.ev_time_us =
			p->commit_time ? p->commit_time + PG_EPOCH_OFFSET_US
				       : 0;
		ev->ev.ev_txid = p->txid;
		ev->ev.ev_type = at(b, p, F_TYPE);
		ev->ev.ev_type_len = p->len[F_TYPE];
		ev->ev.ev_data = rr ? rr->body : at(b, p, F_DATA);
		ev->ev.ev_data_len = rr ? rr->len : p->len[F_DATA];
		for (f = 0; f < 4; f++) {
			ev->ev.extra[f] = at(b, p, F_X1 + f);
			ev->ev.extra_len[f] = p->len[F_X1 + f];
		}
		ev->table = at(b, p, F_TABLE);
		ev->stream = at(b, p, F_STREAM);
		ev->error = rr && rr->error ? rr->error : at(b, p, F_ERR);
		b->nevents++;
	}
	return 0;
}

static int
record(struct logical *s, bool force, struct mk_err *e)
{
	mk_lsn c = walstream_confirmed(s->ws);

	if (c <= s->recorded ||
	    (!force && now_mono() - s->recorded_at < s->cfg.record_every))
		return 0;
	if (slot_progress(s->pg, s->cfg.slot, c, e) < 0)
		return -1;
	s->recorded = c;
	s->recorded_at = now_mono();
	return 0;
}

/*
 * Read into the fill batch what the stream has, waiting until deadline
 * for its first event (a deadline passed: not at all).  1: the batch is
 * full (sealed: it takes no more); 0: the stream had nothing more.
 */
static int
fill_batch(struct logical *s, double deadline, struct mk_err *e)
{
	struct lbatch *b = s->fill;
	struct walstream_msg w;
	size_t before;
	double left;
	bool full;
	int rc;

	while (!b->sealed) {
		/*
		 * A full batch still takes the messages that make no event
		 * (a commit above all, so that finishing it confirms the
		 * transaction), and at most one that does.
		 */
		full = b->npend >= s->cfg.max_events ||
		       b->arena.len + render_bytes(b->round) >=
			       s->cfg.max_bytes;
		if (full && !s->in_txn) {
			b->sealed = true;
			break;
		}
		left = b->npend ? 0 : deadline - now_mono();
		rc = walstream_read(s->ws, &w, left > 0 ? left : 0, e);
		if (rc <= 0)
			return rc;
		b->touched = true;
		before = b->npend;
		if (on_xlogdata(s, &w, e) < 0)
			return -1;
		if (b->arena.oom)
			return mk_err_set(e, EX_OSERR, "out of memory");
		if (full && b->npend > before)
			b->sealed = true;
	}
	return 1;
}

long
logical_next_batch(struct logical *s, struct mk_err *e)
{
	struct lbatch *b = s->fill;

	if (s->open_batch)
		return mk_err_set(e, EX_SOFTWARE,
				  "the previous batch is not "
				  "finished");
	if (s->ahead_failed) {
		*e = s->ahead_err;
		return -1;
	}
	/* what was read ahead (logical_service), and what has come since */
	if (fill_batch(s, now_mono() + s->cfg.wait, e) < 0)
		return -1;
	if (render_pending(b->round) && render_run(s->render, b->round, e) < 0)
		return -1;
	if (build_events(s, b, e) < 0)
		return -1;
	/* the finished batch's room takes the next one */
	s->fill = s->cur;
	s->cur = b;
	batch_reset(s, s->fill);
	if (b->nevents == 0) {
		/* nothing to settle: what was read is done */
		if (b->commit || b->idle)
			walstream_confirm(s->ws, b->commit, b->idle);
		if (walstream_service(s->ws, e) < 0 || record(s, false, e) < 0)
			return -1;
		return 0;
	}
	s->open_batch = true;
	return (long)b->nevents;
}

const struct logical_event *
logical_event(const struct logical *s, size_t i)
{
	return i < s->cur->nevents ? &s->cur->events[i] : NULL;
}

int
logical_finish(struct logical *s, struct mk_err *e)
{
	if (!s->open_batch)
		return 0;
	s->open_batch = false;
	/* between transactions only if nothing was read ahead since */
	walstream_confirm(s->ws, s->cur->commit,
			  s->cur->idle && !s->fill->touched);
	if (walstream_service(s->ws, e) < 0)
		return -1;
	return record(s, false, e);
}

int
logical_service(struct logical *s, struct mk_err *e)
{
	/*
	 * While a batch is open (RabbitMQ confirms it): read the next one
	 * ahead, without waiting, and render it once it is full (rendered
	 * earlier, rows read later would need a second round trip).  What
	 * fails here is the next batch's failure: the open one may still
	 * finish (else an error that comes back on every reading would
	 * send the open batch again and again).
	 */
	if (s->open_batch && !s->ahead_failed) {
		int rc = fill_batch(s, 0, &s->ahead_err);

		if (rc > 0)
			rc = render_run(s->render, s->fill->round,
					&s->ahead_err);
		if (rc < 0)
			s->ahead_failed = true;
	}
	return walstream_service(s->ws, e);
}

void
logical_close(struct logical *s)
{
	size_t i;

	if (s == NULL)
		return;
	if (s->ws && s->pg && s->render) {
		struct mk_err ignore;

		(void)walstream_flush(s->ws, &ignore);
		(void)record(s, true, &ignore);
	}
	walstream_close(s->ws);
	for (i = 0; i < 2; i++) {
		render_round_free(s->render, s->b[i].round);
		free(s->b[i].pend);
		free(s->b[i].events);
		sbuf_release(&s->b[i].arena);
	}
	render_free(s->render);
	pgo_free(s->dec);
	if (s->pg)
		PQfinish(s->pg);
	for (i = 0; i < s->nwarnings; i++)
		free(s->warnings[i]);
	free(s->warnings);
	free(s);
}
