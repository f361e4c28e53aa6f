/* SPDX-License-Identifier: BSD-3-Clause */
/* insert: validated events into PgQ, a chunk per statement, pipelined. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "insert.h"
#include "jsonl.h"

#define TEXTARRAYOID 1009
#define TEXTOID 25

/* The columns a chunk sends, in the order of the SQL's unnest. */
enum {
	C_QUEUE,
	C_RK,
	C_BODY,
	C_EXCHANGE,
	C_CTYPE,
	C_PROPS,
	C_HDRS,
	C_MID,
	NCOLS
};

struct insert_chunk {
	size_t n, cap;
	long *line;
	char **col[NCOLS];  /* owned strings; NULL is SQL NULL */
	bool audited;       /* some record has a message_id */
	char *param[NCOLS]; /* binary text[] encodings while sent */
	int plen[NCOLS];
};

static const char *const keys[] = {
	"queue",      "exchange", "routing_key", "body", "content_type",
	"properties", "headers",  "audit",       NULL,
};

static struct insert_chunk *
chunk_new(void)
{
	return calloc(1, sizeof(struct insert_chunk));
}

static void
chunk_clear(struct insert_chunk *c)
{
	size_t i;
	int k;

	for (k = 0; k < NCOLS; k++) {
		for (i = 0; i < c->n; i++)
			free(c->col[k][i]);
		free(c->param[k]);
		c->param[k] = NULL;
	}
	c->n = 0;
	c->audited = false;
}

static void
chunk_free(struct insert_chunk *c)
{
	int k;

	if (c == NULL)
		return;
	chunk_clear(c);
	for (k = 0; k < NCOLS; k++)
		free(c->col[k]);
	free(c->line);
	free(c);
}

static int
chunk_grow(struct insert_chunk *c)
{
	size_t cap = c->cap ? c->cap * 2 : 1024;
	long *l = realloc(c->line, cap * sizeof(*l));
	int k;

	if (l == NULL)
		return -1;
	c->line = l;
	for (k = 0; k < NCOLS; k++) {
		char **v = realloc(c->col[k], cap * sizeof(*v));

		if (v == NULL)
			return -1;
		c->col[k] = v;
	}
	c->cap = cap;
	return 0;
}

int
inserter_init(struct inserter *in, PGconn *pg)
{
	memset(in, 0, sizeof(*in));
	in->pg = pg;
	in->cur = chunk_new();
	return in->cur ? 0 : -1;
}

void
inserter_release(struct inserter *in)
{
	chunk_free(in->cur);
	chunk_free(in->sent);
	in->cur = in->sent = NULL;
}

size_t
inserter_pending(const struct inserter *in)
{
	return in->cur->n;
}

long
inserter_first_line(const struct inserter *in)
{
	return in->cur->n ? in->cur->line[0] : 0;
}

void
inserter_discard(struct inserter *in)
{
	chunk_clear(in->cur);
}

static int
want_string(json_t *rec, const char *key, bool required, const char **out,
	    struct mk_err *e)
{
	json_t *v = json_object_get(rec, key);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return mk_err_set(e, EX_DATAERR, "'%s' is required",
					  key);
		return 0;
	}
	if (!json_is_string(v))
		return mk_err_set(e, EX_DATAERR, "'%s' must be a string", key);
	*out = json_string_value(v);
	return 0;
}

static int
want_object(json_t *rec, const char *key, json_t **out, struct mk_err *e)
{
	json_t *v = json_object_get(rec, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return mk_err_set(e, EX_DATAERR,
				  "'%s' must be an object or "
				  "null",
				  key);
	*out = v;
	return 0;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Compact JSON text of v, or NULL for none. */
static char *
text_of(json_t *v)
{
	return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

int
inserter_add(struct inserter *in, long line, json_t *rec,
	     const char *default_queue, struct mk_err *e)
{
	struct insert_chunk *c = in->cur;
	const char *queue, *exchange, *rk, *ctype, *key;
	json_t *props, *hdrs, *audit, *body, *v;
	json_t *p2 = NULL, *h2 = NULL;
	char mid[37] = "", *f[NCOLS];
	int i, k;

	json_object_foreach(rec, key, v)
	{
		for (i = 0; keys[i]; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (keys[i] == NULL)
			return mk_err_set(e, EX_DATAERR,
					  "unknown key '%.64s' "
					  "(known: queue, exchange, "
					  "routing_key, body, content_type, "
					  "properties, headers, audit)",
					  key);
	}
	if (want_string(rec, "queue", false, &queue, e) < 0 ||
	    want_string(rec, "exchange", true, &exchange, e) < 0 ||
	    want_string(rec, "routing_key", true, &rk, e) < 0 ||
	    want_string(rec, "content_type", false, &ctype, e) < 0 ||
	    want_object(rec, "properties", &props, e) < 0 ||
	    want_object(rec, "headers", &hdrs, e) < 0)
		return -1;
	if (queue == NULL)
		queue = default_queue;
	if (queue == NULL || queue[0] == '\0')
		return mk_err_set(e, EX_DATAERR,
				  "no queue: give 'queue' or "
				  "-q QUEUE");
	audit = json_object_get(rec, "audit");
	if (audit && !json_is_boolean(audit))
		return mk_err_set(e, EX_DATAERR,
				  "'audit' must be true or "
				  "false");
	body = json_object_get(rec, "body");
	if (json_is_true(audit)) {
		if (body == NULL || json_is_null(body))
			return mk_err_set(e, EX_DATAERR,
					  "an audited event needs "
					  "a body (mikkoo.audit.payload is "
					  "NOT NULL)");
		v = props ? json_object_get(props, "message_id") : NULL;
		if (v && !json_is_string(v))
			return mk_err_set(e, EX_DATAERR,
					  "properties.message_id "
					  "must be a UUID string");
		p2 = props ? json_deep_copy(props) : json_object();
		if (v) {
			snprintf(mid, sizeof(mid), "%s", json_string_value(v));
		} else {
			ids_uuid4(mid);
			json_object_set_new(p2, "message_id", json_string(mid));
		}
		h2 = hdrs ? json_deep_copy(hdrs) : json_object();
		if (json_object_get(h2, "pgq_queue") == NULL)
			json_object_set_new(h2, "pgq_queue",
					    json_string(queue));
		props = p2;
		hdrs = h2;
	}
	if (c->n == c->cap && chunk_grow(c) < 0) {
		json_decref(p2);
		json_decref(h2);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	f[C_QUEUE] = strdup(queue);
	f[C_RK] = strdup(rk);
	/* A JSON body given as JSON is stored as its compact text. */
	f[C_BODY] = body == NULL || json_is_null(body) ? NULL
		    : json_is_string(body) ? strdup(json_string_value(body))
					   : text_of(body);
	f[C_EXCHANGE] = strdup(exchange);
	f[C_CTYPE] = dup_or_null(ctype);
	f[C_PROPS] = text_of(props);
	f[C_HDRS] = text_of(hdrs);
	f[C_MID] = mid[0] ? strdup(mid) : NULL;
	json_decref(p2);
	json_decref(h2);
	for (k = 0; k < NCOLS; k++)
		c->col[k][c->n] = f[k];
	c->line[c->n++] = line;
	c->audited |= mid[0] != '\0';
	return 0;
}

/*
 * The binary text[] of column k (PostgreSQL's array_recv format): ndim,
 * has-nulls, element type, size, lower bound, then length and bytes of
 * each element (-1 for NULL), all big-endian.
 */
static int
encode(struct insert_chunk *c, int k)
{
	size_t i, len = 20;
	uint32_t w;
	char *p;

	for (i = 0; i < c->n; i++)
		len += 4 + (c->col[k][i] ? strlen(c->col[k][i]) : 0);
	if (len > INT32_MAX)
		return -1;
	c->param[k] = p = malloc(len);
	if (p == NULL)
		return -1;
#define PUT(v) (w = htonl((uint32_t)(v)), memcpy(p, &w, 4), p += 4)
	PUT(1);
	PUT(1);
	PUT(TEXTOID);
	PUT(c->n);
	PUT(1);
	for (i = 0; i < c->n; i++) {
		const char *s = c->col[k][i];

		if (s == NULL) {
			PUT(0xffffffffu);
			continue;
		}
		PUT(strlen(s));
		memcpy(p, s, strlen(s));
		p += strlen(s);
	}
#undef PUT
	c->plen[k] = (int)len;
	return 0;
}

static int
send_chunk(struct inserter *in, struct insert_chunk *c, struct mk_err *e)
{
#define UNNEST                                                               \
	"unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]," \
	" $6::text[], $7::text[], $8::text[]) WITH ORDINALITY"               \
	" AS u(q, rk, b, ex, ct, p, h, mid, ord)"
	/* unnest keeps array order, so the insert_event calls (and the
	 * ev_ids) follow the lines. */
	static const char plain[] =
		"SELECT pgq.insert_event(q, rk, b, ex, ct, p, h) FROM " UNNEST
		" ORDER BY ord";
	static const char audited[] =
		"WITH ev AS (SELECT u.*, pgq.insert_event(q, rk, b, ex, ct, p,"
		"  h) AS ev_id FROM " UNNEST "),"
		" aud AS (INSERT INTO mikkoo.audit (message_id, event_id,"
		"  queue, exchange, routing_key, payload, content_type,"
		"  properties, headers) SELECT mid::uuid, ev_id, q, ex, rk, b,"
		"  ct, p, h FROM ev WHERE mid IS NOT NULL RETURNING 1)"
		" SELECT ev_id, (SELECT count(*) FROM aud) FROM ev ORDER BY ord";
	Oid types[NCOLS];
	int formats[NCOLS], k;
	const char *vals[NCOLS];

	for (k = 0; k < NCOLS; k++) {
		if (encode(c, k) < 0)
			return mk_err_set(e, EX_OSERR, "out of memory");
		types[k] = TEXTARRAYOID;
		formats[k] = 1;
		vals[k] = c->param[k];
	}
	if (!PQsendQueryParams(in->pg, c->audited ? audited : plain, NCOLS,
			       types, vals, c->plen, formats, 0))
		return mk_err_set(e, EX_UNAVAILABLE,
				  "lost the connection to "
				  "PostgreSQL: lines %ld-%ld were not inserted",
				  c->line[0], c->line[c->n - 1]);
	return 0;
}

static void
write_results(struct insert_chunk *c, PGresult *r, FILE *out)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		json_t *o = json_pack(
			"{s:I,s:o,s:s}", "line", (json_int_t)c->line[i],
			"ev_id",
			r ? json_integer(
				    strtoll(PQgetvalue(r, (int)i, 0), NULL, 10))
			  : json_null(),
			"queue", c->col[C_QUEUE][i]);

		if (c->col[C_MID][i])
			json_object_set_new(o, "message_id",
					    json_string(c->col[C_MID][i]));
		if (r == NULL)
			json_object_set_new(o, "dry_run", json_true());
		jsonl_write(out, o);
		json_decref(o);
	}
}

/* Wait for the chunk in flight and report it. */
static int
collect(struct inserter *in, FILE *out, struct mk_err *e)
{
	struct insert_chunk *c = in->sent;
	PGresult *r, *res = NULL;
	int rc = 0;

	if (c == NULL)
		return 0;
	while ((r = PQgetResult(in->pg)) != NULL) {
		if (res == NULL)
			res = r;
		else
			PQclear(r);
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK &&
	    (size_t)PQntuples(res) == c->n) {
		write_results(c, res, out);
		in->inserted += c->n;
	} else {
		long first = c->line[0], last = c->line[c->n - 1];
		char msg[512];
		/* Rows missing from a good result: the server took the data
		 * but said nothing of it, which only bad data explains. */
		int code = PQresultStatus(res) == PGRES_TUPLES_OK
				   ? EX_DATAERR
				   : pg_code(in->pg, res);

		pg_message(in->pg, res, msg, sizeof(msg));
		/* An SQL error on this chunk: the server refused its data. */
		if (code == EX_SOFTWARE)
			code = EX_DATAERR;
		if (code == EX_UNAVAILABLE)
			rc = mk_err_set(e, code,
					"lost the connection to "
					"PostgreSQL: lines %ld-%ld were not "
					"inserted",
					first, last);
		else if (first == last)
			rc = mk_err_set(e, code,
					"line %ld was not inserted: %s", last,
					msg);
		else
			rc = mk_err_set(e, code,
					"lines %ld-%ld were not "
					"inserted: %s",
					first, last, msg);
		in->failed += c->n;
	}
	PQclear(res);
	chunk_free(c);
	in->sent = NULL;
	return rc;
}

int
inserter_flush(struct inserter *in, FILE *out, struct mk_err *e)
{
	struct insert_chunk *c = in->cur;
	int rc;

	if (c->n == 0)
		return inserter_finish(in, out, e);
	if (in->pg == NULL) {
		write_results(c, NULL, out);
		chunk_clear(c);
		return 0;
	}
	/* One chunk in flight: its result first, then the next goes. */
	rc = collect(in, out, e);
	if (rc < 0 && e->code != EX_DATAERR)
		return -1;
	in->cur = chunk_new();
	if (in->cur == NULL) {
		in->cur = c;
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	if (send_chunk(in, c, e) < 0) {
		chunk_free(c);
		return -1;
	}
	in->sent = c;
	return rc;
}

int
inserter_finish(struct inserter *in, FILE *out, struct mk_err *e)
{
	if (in->pg == NULL)
		return 0;
	return collect(in, out, e);
}
