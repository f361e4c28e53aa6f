/* SPDX-License-Identifier: BSD-3-Clause */
/* insert: validated events into PgQ, a chunk per statement. */
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "insert.h"
#include "jsonl.h"

static const char *const keys[] = {
	"queue", "exchange", "routing_key", "body", "content_type",
	"properties", "headers", "audit", NULL,
};

void
inserter_init(struct inserter *in, struct pgq_conn *pg)
{
	memset(in, 0, sizeof(*in));
	in->pg = pg;
	in->rows = json_array();
}

void
inserter_release(struct inserter *in)
{
	json_decref(in->rows);
	in->rows = NULL;
}

size_t
inserter_pending(const struct inserter *in)
{
	return json_array_size(in->rows);
}

void
inserter_discard(struct inserter *in)
{
	json_array_clear(in->rows);
}

static int
want_string(json_t *rec, const char *key, bool required, bool null_ok,
	    const char **out, struct mk_err *e)
{
	json_t *v = json_object_get(rec, key);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required && !(v && null_ok))
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
		return mk_err_set(e, EX_DATAERR, "'%s' must be an object or "
				  "null", key);
	*out = v;
	return 0;
}

/* JSON text of an object, or JSON null. */
static json_t *
text_of(json_t *obj)
{
	char *s;
	json_t *j;

	if (obj == NULL)
		return json_null();
	s = json_dumps(obj, JSON_COMPACT);
	j = s ? json_string(s) : json_null();
	free(s);
	return j;
}

int
inserter_add(struct inserter *in, long line, json_t *rec,
	     const char *default_queue, struct mk_err *e)
{
	const char *queue, *exchange, *rk, *ctype, *key;
	json_t *body, *props, *hdrs, *audit, *row, *v;
	char mid[37] = "";
	json_t *p2 = NULL, *h2 = NULL;
	int i;

	json_object_foreach(rec, key, v) {
		for (i = 0; keys[i]; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (keys[i] == NULL)
			return mk_err_set(e, EX_DATAERR, "unknown key '%.64s' "
					  "(known: queue, exchange, "
					  "routing_key, body, content_type, "
					  "properties, headers, audit)", key);
	}
	if (want_string(rec, "queue", false, false, &queue, e) < 0 ||
	    want_string(rec, "exchange", true, false, &exchange, e) < 0 ||
	    want_string(rec, "routing_key", true, false, &rk, e) < 0 ||
	    want_string(rec, "content_type", false, false, &ctype, e) < 0 ||
	    want_object(rec, "properties", &props, e) < 0 ||
	    want_object(rec, "headers", &hdrs, e) < 0)
		return -1;
	if (queue == NULL)
		queue = default_queue;
	if (queue == NULL || queue[0] == '\0')
		return mk_err_set(e, EX_DATAERR, "no queue: give 'queue' or "
				  "-q QUEUE");
	audit = json_object_get(rec, "audit");
	if (audit && !json_is_boolean(audit))
		return mk_err_set(e, EX_DATAERR, "'audit' must be true or "
				  "false");
	body = json_object_get(rec, "body");
	if (body && !json_is_null(body) && !json_is_string(body)) {
		/* a JSON body given as JSON: store its compact text */
		char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);

		body = json_string(s ? s : "");
		free(s);
	} else {
		body = body ? json_incref(body) : json_null();
	}
	if (json_is_true(audit)) {
		if (json_is_null(body)) {
			json_decref(body);
			return mk_err_set(e, EX_DATAERR, "an audited event needs "
					  "a body (mikkoo.audit.payload is "
					  "NOT NULL)");
		}
		p2 = props ? json_deep_copy(props) : json_object();
		v = json_object_get(p2, "message_id");
		if (v && !json_is_string(v)) {
			json_decref(p2);
			json_decref(body);
			return mk_err_set(e, EX_DATAERR, "properties.message_id "
					  "must be a UUID string");
		}
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
	if (json_array_size(in->rows) == 0)
		in->first_line = line;
	row = json_pack("{s:I,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o}",
			"n", (json_int_t)line, "queue", queue,
			"exchange", exchange, "routing_key", rk,
			"body", body,
			"content_type", ctype ? json_string(ctype) : json_null(),
			"properties", text_of(props),
			"headers", text_of(hdrs),
			"message_id", mid[0] ? json_string(mid) : json_null());
	json_decref(p2);
	json_decref(h2);
	if (row == NULL)
		return mk_err_set(e, EX_DATAERR, "a field is not valid UTF-8");
	json_array_append_new(in->rows, row);
	return 0;
}

static void
write_results(struct inserter *in, PGresult *r, FILE *out)
{
	size_t i, n = json_array_size(in->rows);

	for (i = 0; i < n; i++) {
		json_t *row = json_array_get(in->rows, i), *o;
		json_t *mid = json_object_get(row, "message_id");

		o = json_pack("{s:O,s:o,s:O}", "line",
			      json_object_get(row, "n"), "ev_id",
			      r ? json_integer(strtoll(PQgetvalue(r, (int)i,
				1), NULL, 10)) : json_null(),
			      "queue", json_object_get(row, "queue"));
		if (!json_is_null(mid))
			json_object_set(o, "message_id", mid);
		if (r == NULL)
			json_object_set_new(o, "dry_run", json_true());
		jsonl_write(out, o);
		json_decref(o);
	}
}

int
inserter_flush(struct inserter *in, FILE *out, struct mk_err *e)
{
	/*
	 * One statement per chunk.  The ordered, fenced subquery makes the
	 * insert_event calls (and so the ev_ids) follow the line order.
	 */
	static const char sql[] =
		"WITH src AS (SELECT * FROM json_to_recordset($1::json) AS e("
		" n int8, queue text, exchange text, routing_key text,"
		" body text, content_type text, properties text,"
		" headers text, message_id uuid) ORDER BY n OFFSET 0),"
		" ev AS (SELECT s.*, pgq.insert_event(queue, routing_key,"
		"  body, exchange, content_type, properties, headers) AS ev_id"
		"  FROM src s),"
		" aud AS (INSERT INTO mikkoo.audit (message_id, event_id,"
		"  queue, exchange, routing_key, payload, content_type,"
		"  properties, headers) SELECT message_id, ev_id, queue,"
		"  exchange, routing_key, body, content_type, properties,"
		"  headers FROM ev WHERE message_id IS NOT NULL RETURNING 1)"
		" SELECT n, ev_id, (SELECT count(*) FROM aud) FROM ev"
		" ORDER BY n";
	size_t n = json_array_size(in->rows);
	const char *v[1];
	PGresult *r;
	char *js;
	long last;
	int rc = 0;

	if (n == 0)
		return 0;
	last = (long)json_integer_value(json_object_get(
		json_array_get(in->rows, n - 1), "n"));
	if (in->pg == NULL) {
		write_results(in, NULL, out);
		inserter_discard(in);
		return 0;
	}
	js = json_dumps(in->rows, JSON_COMPACT);
	if (js == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	v[0] = js;
	/* One statement is one transaction: all of the chunk or none. */
	r = PQexecParams(in->pg->pg, sql, 1, NULL, v, NULL, NULL, 0);
	free(js);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && (size_t)PQntuples(r) == n) {
		write_results(in, r, out);
		in->inserted += n;
	} else {
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

		if (PQstatus(in->pg->pg) != CONNECTION_OK)
			rc = mk_err_set(e, EX_UNAVAILABLE, "lost the connection "
					"to PostgreSQL: lines %ld-%ld were not "
					"inserted", in->first_line, last);
		else if (in->first_line == last)
			rc = mk_err_set(e, EX_DATAERR, "line %ld was not "
					"inserted: %s", last,
					msg ? msg : PQerrorMessage(in->pg->pg));
		else
			rc = mk_err_set(e, EX_DATAERR, "lines %ld-%ld were not "
					"inserted: %s", in->first_line, last,
					msg ? msg : PQerrorMessage(in->pg->pg));
		in->failed += n;
	}
	PQclear(r);
	inserter_discard(in);
	return rc;
}
