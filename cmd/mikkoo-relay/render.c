/* SPDX-License-Identifier: BSD-3-Clause */
/* render: change bodies by PostgreSQL, one statement per definition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "render.h"

#define JSONOID 114
#define PG_EPOCH_OFFSET 946684800LL

/* A prepared table definition. */
struct plan {
	bool used;
	uint32_t relid;
	int ncols;
	char **names;
	uint32_t *types;
	bool *raw; /* json, jsonb: the value goes in as JSON */
	char stmt[24];
	bool prepared;
	unsigned long long last_use;
	size_t queued; /* rows of rounds not yet run: it must stay */
};

struct row {
	struct plan *plan;
	char action;
	int64_t commit_time;
	char *table; /* "schema.table", JSON-escaped with quotes */
	size_t req_start, req_len; /* its object in plan->req */
	struct render_row out;
	size_t body_off; /* in r->bodies */
	bool done;
	char *error;
};

struct render {
	PGconn *pg;
	struct plan plans[RENDER_PLANS];
	unsigned long long clock;
	unsigned long long next_stmt;
	struct sbuf tmp;
	char *note;
};

struct render_round {
	struct row *rows;
	size_t nrows, caprows;
	size_t bytes;
	struct sbuf bodies;
	/* per plan (same index), the rows queued: a JSON array */
	struct sbuf req[RENDER_PLANS];
	size_t nreq[RENDER_PLANS];
	bool ran;
};

void
render_time(char *buf, size_t sz, int64_t t)
{
	time_t secs;
	struct tm tm;
	int64_t us = t % 1000000;

	if (us < 0)
		us += 1000000;
	secs = (time_t)((t - us) / 1000000 + PG_EPOCH_OFFSET);
	gmtime_r(&secs, &tm);
	snprintf(buf, sz, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)us);
}

void
render_table_name(struct sbuf *b, const struct pgo_relation *rel)
{
	const char *nsp = rel->nspname[0] ? rel->nspname : "pg_catalog";
	size_t n = strlen(nsp), m = strlen(rel->relname);
	char *s = malloc(n + m + 2);

	if (s == NULL) {
		b->oom = true;
		return;
	}
	memcpy(s, nsp, n);
	s[n] = '.';
	memcpy(s + n + 1, rel->relname, m + 1);
	sbuf_add_json(b, s, n + m + 1);
	free(s);
}

static void
head(struct sbuf *b, const char *table, char action)
{
	sbuf_adds(b, "{\"table_name\":");
	sbuf_adds(b, table);
	sbuf_adds(b, ",\"action\":\"");
	sbuf_addc(b, action);
	sbuf_adds(b, "\",\"id\":");
}

static void
tail(struct sbuf *b, int64_t commit_time)
{
	char ts[40];

	render_time(ts, sizeof(ts), commit_time);
	sbuf_adds(b, ",\"recorded_at\":\"");
	sbuf_adds(b, ts);
	sbuf_adds(b, "\"}");
}

void
render_truncate(struct sbuf *b, const struct pgo_relation *rel,
		int64_t commit_time)
{
	struct sbuf t = { 0 };

	render_table_name(&t, rel);
	head(b, t.p ? t.p : "\"\"", 'T');
	sbuf_adds(b, "null,\"old\":{},\"new\":{},\"diff\":{}");
	tail(b, commit_time);
	if (t.oom)
		b->oom = true;
	sbuf_release(&t);
}

int
render_new(struct render **out, PGconn *pg, struct mk_err *e)
{
	struct render *r;
	PGresult *res;

	*out = NULL;
	/* UTC, as the issue wants timestamps from a slot; nothing of a
	 * caller's search_path in the statements */
	res = PQexec(pg, "SET search_path = pg_catalog, pg_temp; "
			 "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mk_err_set(e,
			   PQstatus(pg) == CONNECTION_OK ? EX_SOFTWARE
							 : EX_UNAVAILABLE,
			   "setting up the rendering "
			   "session: %s",
			   PQerrorMessage(pg));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	r->pg = pg;
	*out = r;
	return 0;
}

static void
plan_clear(struct render *r, struct plan *p)
{
	int i;
	char cmd[64];
	PGresult *res;

	if (!p->used)
		return;
	if (r && p->prepared && PQstatus(r->pg) == CONNECTION_OK) {
		snprintf(cmd, sizeof(cmd), "DEALLOCATE %s", p->stmt);
		res = PQexec(r->pg, cmd);
		PQclear(res);
	}
	for (i = 0; i < p->ncols; i++)
		free(p->names[i]);
	free(p->names);
	free(p->types);
	free(p->raw);
	memset(p, 0, sizeof(*p));
}

/* The round's requests are done with (run, or forgotten unrun). */
static void
requests_clear(struct render *r, struct render_round *rd)
{
	size_t i;

	for (i = 0; i < RENDER_PLANS; i++) {
		if (rd->nreq[i] == 0)
			continue;
		if (r)
			r->plans[i].queued -= rd->nreq[i];
		rd->nreq[i] = 0;
		sbuf_reset(&rd->req[i]);
	}
}

struct render_round *
render_round_new(void)
{
	return calloc(1, sizeof(struct render_round));
}

void
render_reset(struct render *r, struct render_round *rd)
{
	size_t i;

	requests_clear(r, rd);
	for (i = 0; i < rd->nrows; i++) {
		free(rd->rows[i].table);
		free(rd->rows[i].error);
	}
	rd->nrows = 0;
	rd->bytes = 0;
	rd->ran = false;
	sbuf_reset(&rd->bodies);
}

void
render_round_free(struct render *r, struct render_round *rd)
{
	size_t i;

	if (rd == NULL)
		return;
	render_reset(r, rd);
	for (i = 0; i < RENDER_PLANS; i++)
		sbuf_release(&rd->req[i]);
	free(rd->rows);
	sbuf_release(&rd->bodies);
	free(rd);
}

void
render_free(struct render *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < RENDER_PLANS; i++)
		plan_clear(NULL, &r->plans[i]);
	sbuf_release(&r->tmp);
	free(r->note);
	free(r);
}

char *
render_take_note(struct render *r)
{
	char *n = r->note;

	r->note = NULL;
	return n;
}

size_t
render_pending(const struct render_round *rd)
{
	return rd->nrows;
}

size_t
render_bytes(const struct render_round *rd)
{
	return rd->bytes;
}

static bool
plan_matches(const struct plan *p, const struct pgo_relation *rel)
{
	int i;

	if (!p->used || p->relid != rel->relid || p->ncols != rel->ncols)
		return false;
	for (i = 0; i < p->ncols; i++)
		if (p->types[i] != rel->cols[i].type ||
		    strcmp(p->names[i], rel->cols[i].name))
			return false;
	return true;
}

/* Parse "{t,f}" (a boolean[]) into raw. */
static int
parse_bools(const char *s, bool *raw, int n)
{
	int i = 0;

	if (*s++ != '{')
		return -1;
	while (*s && *s != '}') {
		if (i >= n || (*s != 't' && *s != 'f'))
			return -1;
		raw[i++] = *s++ == 't';
		if (*s == ',')
			s++;
	}
	return i == n ? 0 : -1;
}

static int
plan_prepare(struct render *r, struct plan *p, const struct pgo_relation *rel,
	     struct mk_err *e)
{
	struct sbuf names = { 0 }, types = { 0 };
	const char *vals[3];
	Oid jsonoid = JSONOID;
	PGresult *res;
	char relid[16];
	int i;

	p->ncols = rel->ncols;
	p->relid = rel->relid;
	p->names = calloc((size_t)rel->ncols + 1, sizeof(char *));
	p->types = calloc((size_t)rel->ncols + 1, sizeof(uint32_t));
	p->raw = calloc((size_t)rel->ncols + 1, sizeof(bool));
	p->used = true;
	if (p->names == NULL || p->types == NULL || p->raw == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	/* text[] and oid[] literals of the names and types */
	sbuf_addc(&names, '{');
	sbuf_addc(&types, '{');
	for (i = 0; i < rel->ncols; i++) {
		const char *c;

		p->names[i] = strdup(rel->cols[i].name);
		p->types[i] = rel->cols[i].type;
		if (p->names[i] == NULL)
			break;
		if (i) {
			sbuf_addc(&names, ',');
			sbuf_addc(&types, ',');
		}
		sbuf_addc(&names, '"');
		for (c = rel->cols[i].name; *c; c++) {
			if (*c == '"' || *c == '\\')
				sbuf_addc(&names, '\\');
			sbuf_addc(&names, *c);
		}
		sbuf_addc(&names, '"');
		sbuf_addf(&types, "%u", rel->cols[i].type);
	}
	sbuf_addc(&names, '}');
	sbuf_addc(&types, '}');
	if (i < rel->ncols || names.oom || types.oom) {
		sbuf_release(&names);
		sbuf_release(&types);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	snprintf(relid, sizeof(relid), "%u", rel->relid);
	vals[0] = relid;
	vals[1] = names.p;
	vals[2] = types.p;
	res = PQexecParams(r->pg,
			   "SELECT sql, raw, unsafe FROM "
			   "mikkoo._logical_render_sql($1::oid, $2::text[], "
			   "$3::oid[])",
			   3, NULL, vals, NULL, NULL, 0);
	sbuf_release(&names);
	sbuf_release(&types);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    parse_bools(PQgetvalue(res, 0, 1), p->raw, p->ncols) < 0) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		mk_err_set(e,
			   PQstatus(r->pg) != CONNECTION_OK ? EX_UNAVAILABLE
			   : st && strcmp(st, "42883") == 0 ? EX_CONFIG
							    : EX_SOFTWARE,
			   "cannot render rows of %s.%s: %s", rel->nspname,
			   rel->relname,
			   PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
				   ? PQresultErrorField(res,
							PG_DIAG_MESSAGE_PRIMARY)
				   : "unexpected answer");
		PQclear(res);
		return -1;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "{}") != 0) {
		free(r->note);
		r->note = NULL;
		if (asprintf(&r->note,
			     "table %s.%s: columns %s are sent as "
			     "their text (JSON strings): reading them would "
			     "run a CHECK constraint of a domain whose owner "
			     "mikkoo does not trust",
			     rel->nspname, rel->relname,
			     PQgetvalue(res, 0, 2)) < 0)
			r->note = NULL;
	}
	snprintf(p->stmt, sizeof(p->stmt), "mikkoo_render_%llu",
		 ++r->next_stmt);
	{
		PGresult *prep = PQprepare(r->pg, p->stmt,
					   PQgetvalue(res, 0, 0), 1, &jsonoid);

		PQclear(res);
		if (PQresultStatus(prep) != PGRES_COMMAND_OK) {
			mk_err_set(e,
				   PQstatus(r->pg) != CONNECTION_OK
					   ? EX_UNAVAILABLE
					   : EX_SOFTWARE,
				   "cannot prepare the rendering of %s.%s: %s",
				   rel->nspname, rel->relname,
				   PQresultErrorField(prep,
						      PG_DIAG_MESSAGE_PRIMARY));
			PQclear(prep);
			return -1;
		}
		PQclear(prep);
		p->prepared = true;
	}
	return 0;
}

/* The plan for rel's definition, prepared if new. */
static struct plan *
plan_for(struct render *r, const struct pgo_relation *rel, struct mk_err *e)
{
	struct plan *p, *victim = NULL;
	size_t i;

	for (i = 0; i < RENDER_PLANS; i++) {
		p = &r->plans[i];
		if (plan_matches(p, rel)) {
			p->last_use = ++r->clock;
			return p;
		}
	}
	/* a free slot, else the least recently used without rows queued */
	for (i = 0; i < RENDER_PLANS; i++) {
		p = &r->plans[i];
		if (!p->used) {
			victim = p;
			break;
		}
		if (p->queued == 0 &&
		    (victim == NULL || p->last_use < victim->last_use))
			victim = p;
	}
	if (victim == NULL) {
		mk_err_set(e, EX_SOFTWARE,
			   "more than %d table definitions in "
			   "rounds not rendered yet",
			   RENDER_PLANS);
		return NULL;
	}
	plan_clear(r, victim);
	if (plan_prepare(r, victim, rel, e) < 0) {
		plan_clear(r, victim);
		return NULL;
	}
	victim->last_use = ++r->clock;
	return victim;
}

/* A value of the request: a JSON string of the text, or the JSON. */
static void
add_value(struct sbuf *b, const struct pgo_value *v, bool raw)
{
	if (v == NULL || v->kind != 't')
		sbuf_adds(b, "null");
	else if (raw)
		sbuf_add(b, v->data, v->len);
	else
		sbuf_add_json(b, v->data, v->len);
}

int
render_add(struct render *r, struct render_round *rd,
	   const struct pgo_relation *rel, char action, char old_kind,
	   const struct pgo_tuple *oldt, const struct pgo_tuple *newt,
	   int64_t commit_time, struct mk_err *e)
{
	const struct pgo_value **nv, **ov;
	struct plan *p;
	struct row *row;
	struct sbuf *q;
	size_t start, pi;
	int i, n = rel->ncols;
	bool first;

	if (rd->ran)
		render_reset(r, rd);
	if (oldt && oldt->ncols && oldt->ncols != n)
		return mk_err_set(e, EX_PROTOCOL,
				  "old row of %s.%s has %d "
				  "columns, not %d",
				  rel->nspname, rel->relname, oldt->ncols, n);
	if (newt && newt->ncols && newt->ncols != n)
		return mk_err_set(e, EX_PROTOCOL,
				  "new row of %s.%s has %d "
				  "columns, not %d",
				  rel->nspname, rel->relname, newt->ncols, n);
	for (i = 0; i < n; i++)
		if ((oldt && oldt->ncols && oldt->vals[i].kind == 'b') ||
		    (newt && newt->ncols && newt->vals[i].kind == 'b'))
			return mk_err_set(e, EX_PROTOCOL,
					  "a binary value in "
					  "%s.%s (text was asked for)",
					  rel->nspname, rel->relname);
	p = plan_for(r, rel, e);
	if (p == NULL)
		return -1;
	pi = (size_t)(p - r->plans);
	if (rd->nrows == rd->caprows) {
		size_t cap = rd->caprows ? rd->caprows * 2 : 64;
		struct row *rows = realloc(rd->rows, cap * sizeof(*rows));

		if (rows == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		rd->rows = rows;
		rd->caprows = cap;
	}
	nv = calloc((size_t)n + 1, sizeof(*nv));
	ov = calloc((size_t)n + 1, sizeof(*ov));
	if (nv == NULL || ov == NULL) {
		free(nv);
		free(ov);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	/*
	 * What each row holds (see render.h): NULL in nv/ov is a value
	 * the WAL did not carry.
	 */
	for (i = 0; i < n; i++) {
		const struct pgo_value *o = NULL, *v = NULL;

		if (oldt && oldt->ncols && oldt->vals[i].kind != 'u' &&
		    (old_kind == 'O' || rel->cols[i].key))
			o = &oldt->vals[i];
		if (action != 'D' && newt && newt->ncols) {
			v = &newt->vals[i];
			if (v->kind == 'u')
				v = old_kind == 'O' ? o : NULL;
		}
		if (action == 'U' && old_kind == 0 && rel->cols[i].key)
			o = v; /* the key did not change */
		nv[i] = action == 'D' ? NULL : v;
		ov[i] = action == 'U' || action == 'D' ? o : NULL;
	}

	q = &rd->req[pi];
	sbuf_addc(q, rd->nreq[pi] ? ',' : '[');
	start = q->len;
	sbuf_addf(q, "{\"i\":%zu,\"a\":\"%c\"", rd->nrows, action);
	for (i = 0; i < n; i++) {
		if (action != 'D') {
			sbuf_addf(q, ",\"n%d\":", i + 1);
			add_value(q, nv[i], p->raw[i]);
		}
		if (action == 'U' || action == 'D') {
			sbuf_addf(q, ",\"o%d\":", i + 1);
			add_value(q, ov[i], p->raw[i]);
		}
	}
	for (first = true, i = 0; action != 'D' && i < n; i++) {
		if (nv[i])
			continue;
		sbuf_adds(q, first ? ",\"nm\":[" : ",");
		sbuf_add_json(q, p->names[i], strlen(p->names[i]));
		first = false;
	}
	if (!first)
		sbuf_addc(q, ']');
	for (first = true, i = 0; (action == 'U' || action == 'D') && i < n;
	     i++) {
		if (ov[i])
			continue;
		sbuf_adds(q, first ? ",\"om\":[" : ",");
		sbuf_add_json(q, p->names[i], strlen(p->names[i]));
		first = false;
	}
	if (!first)
		sbuf_addc(q, ']');
	sbuf_addc(q, '}');
	free(nv);
	free(ov);

	row = &rd->rows[rd->nrows];
	memset(row, 0, sizeof(*row));
	row->plan = p;
	row->action = action;
	row->commit_time = commit_time;
	row->req_start = start;
	row->req_len = q->len - start;
	sbuf_reset(&r->tmp);
	render_table_name(&r->tmp, rel);
	row->table = r->tmp.p && !r->tmp.oom ? strdup(r->tmp.p) : NULL;
	if (q->oom || row->table == NULL) {
		free(row->table);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	rd->bytes += row->req_len + 64;
	rd->nreq[pi]++;
	p->queued++;
	return (int)rd->nrows++;
}

static void
body(struct render_round *rd, struct row *row, const char *id, const char *old,
     const char *new, const char *diff)
{
	struct sbuf *b = &rd->bodies;

	row->body_off = b->len;
	row->done = true;
	head(b, row->table, row->action);
	sbuf_adds(b, id ? id : "null");
	sbuf_adds(b, ",\"old\":");
	sbuf_adds(b, old ? old : "{}");
	sbuf_adds(b, ",\"new\":");
	sbuf_adds(b, new ? new : "{}");
	sbuf_adds(b, ",\"diff\":");
	sbuf_adds(b, diff ? diff : "{}");
	tail(b, row->commit_time);
	row->out.len = b->len - row->body_off;
	row->out.unchanged =
		row->action == 'U' && diff && strcmp(diff, "{}") == 0;
	sbuf_addc(b, '\0'); /* bodies are NUL-separated in the arena */
}

/* A row PostgreSQL could not render: its values as JSON strings. */
static void
fallback(struct render_round *rd, const struct sbuf *req_text, struct row *row,
	 const char *why)
{
	struct plan *p = row->plan;
	json_error_t jerr;
	json_t *req, *obj[2];
	char key[16], *s[2];
	int i, k;

	row->error = strdup(why);
	req = json_loadb(req_text->p + row->req_start, row->req_len, 0, &jerr);
	obj[0] = json_object();
	obj[1] = json_object();
	for (k = 0; req && k < 2; k++) {
		json_t *lacks = json_object_get(req, k ? "nm" : "om"), *v;
		size_t j;

		for (i = 0; i < p->ncols; i++) {
			snprintf(key, sizeof(key), "%c%d", k ? 'n' : 'o',
				 i + 1);
			v = json_object_get(req, key);
			if (v)
				json_object_set(obj[k], p->names[i], v);
		}
		json_array_foreach(lacks, j, v)
			json_object_del(obj[k], json_string_value(v));
	}
	s[0] = json_dumps(obj[0], JSON_COMPACT);
	s[1] = json_dumps(obj[1], JSON_COMPACT);
	body(rd, row, "null", s[0], s[1], "{}");
	free(s[0]);
	free(s[1]);
	json_decref(obj[0]);
	json_decref(obj[1]);
	json_decref(req);
}

/* Run p's statement over req (a JSON array); the result or NULL. */
static PGresult *
exec_plan(struct render *r, struct plan *p, const char *req, int *failed)
{
	const char *vals[1] = { req };
	PGresult *res = PQexecPrepared(r->pg, p->stmt, 1, vals, NULL, NULL, 0);

	*failed = PQresultStatus(res) != PGRES_TUPLES_OK;
	return res;
}

static int
take(struct render_round *rd, PGresult *res, struct mk_err *e)
{
	int t, nt = PQntuples(res);

	for (t = 0; t < nt; t++) {
		long i = atol(PQgetvalue(res, t, 0));
		struct row *row;

		if (i < 0 || (size_t)i >= rd->nrows)
			return mk_err_set(e, EX_SOFTWARE,
					  "rendering: row %ld "
					  "of %zu",
					  i, rd->nrows);
		row = &rd->rows[i];
#define V(c) (PQgetisnull(res, t, c) ? NULL : PQgetvalue(res, t, c))
		body(rd, row, V(1), V(2), V(3), V(4));
#undef V
	}
	return 0;
}

int
render_run(struct render *r, struct render_round *rd, struct mk_err *e)
{
	struct sbuf one = { 0 };
	PGresult *res;
	size_t i, k;
	int failed;

	if (rd->ran)
		return 0;
	for (i = 0; i < RENDER_PLANS; i++) {
		struct plan *p = &r->plans[i];
		struct sbuf *q = &rd->req[i];

		if (rd->nreq[i] == 0)
			continue;
		sbuf_addc(q, ']');
		if (q->oom)
			return mk_err_set(e, EX_OSERR, "out of memory");
		res = exec_plan(r, p, q->p, &failed);
		if (!failed) {
			if (take(rd, res, e) < 0) {
				PQclear(res);
				return -1;
			}
			PQclear(res);
			continue;
		}
		if (PQstatus(r->pg) != CONNECTION_OK) {
			mk_err_set(e, EX_UNAVAILABLE, "rendering rows: %s",
				   PQerrorMessage(r->pg));
			PQclear(res);
			return -1;
		}
		PQclear(res);
		/* one bad row fails the statement: find it, row by row */
		for (k = 0; k < rd->nrows; k++) {
			struct row *row = &rd->rows[k];

			if (row->plan != p)
				continue;
			sbuf_reset(&one);
			sbuf_addc(&one, '[');
			sbuf_add(&one, q->p + row->req_start, row->req_len);
			sbuf_addc(&one, ']');
			res = exec_plan(r, p, one.p, &failed);
			if (!failed && take(rd, res, e) == 0) {
				PQclear(res);
				continue;
			}
			if (PQstatus(r->pg) != CONNECTION_OK) {
				mk_err_set(e, EX_UNAVAILABLE,
					   "rendering "
					   "rows: %s",
					   PQerrorMessage(r->pg));
				PQclear(res);
				sbuf_release(&one);
				return -1;
			}
			fallback(
				rd, q, row,
				PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
					? PQresultErrorField(
						  res, PG_DIAG_MESSAGE_PRIMARY)
					: "cannot render the row");
			PQclear(res);
		}
	}
	sbuf_release(&one);
	for (i = 0; i < rd->nrows; i++)
		if (!rd->rows[i].done)
			fallback(rd, &rd->req[rd->rows[i].plan - r->plans],
				 &rd->rows[i],
				 "the rendering statement "
				 "returned no row for it");
	if (rd->bodies.oom)
		return mk_err_set(e, EX_OSERR, "out of memory");
	for (i = 0; i < rd->nrows; i++) {
		struct row *row = &rd->rows[i];

		row->out.body = rd->bodies.p + row->body_off;
		row->out.error = row->error;
	}
	/* the plans may go (their rows are rendered) */
	requests_clear(r, rd);
	rd->ran = true;
	return 0;
}

const struct render_row *
render_result(const struct render_round *rd, size_t i)
{
	return rd->ran && i < rd->nrows ? &rd->rows[i].out : NULL;
}
