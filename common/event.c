/* SPDX-License-Identifier: BSD-3-Clause */
/* event: the pure PgQ event -> AMQP message mapping. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "delivery.h"
#include "event.h"
#include "text.h"

#define SHORTSTR_MAX 255
/* AMQP 0-9-1's field names (a table's keys): 1 to 128 bytes. */
#define FIELD_NAME_MAX 128

static const char *const extra_name[4] = {
	"ev_extra1",
	"ev_extra2",
	"ev_extra3",
	"ev_extra4",
};

void
message_init(struct mk_message *m)
{
	memset(m, 0, sizeof(*m));
	init_amqp_pool(&m->pool, 4096);
}

void
message_reset(struct mk_message *m)
{
	recycle_amqp_pool(&m->pool);
	json_decref(m->json[0]);
	json_decref(m->json[1]);
	m->json[0] = m->json[1] = NULL;
	memset(&m->props, 0, sizeof(m->props));
	m->exchange = m->routing_key = m->body = amqp_empty_bytes;
	m->user_json_len = 0;
}

void
message_release(struct mk_message *m)
{
	message_reset(m);
	empty_amqp_pool(&m->pool);
}

static long long
floor_div(long long a, long long b)
{
	long long q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* n as exactly w decimal digits (n >= 0, n < 10^w) */
static char *
digits(char *p, long long n, int w)
{
	int i;

	for (i = w - 1; i >= 0; i--) {
		p[i] = (char)('0' + n % 10);
		n /= 10;
	}
	return p + w;
}

/*
 * Every published event formats its time: arithmetic instead of
 * gmtime_r + snprintf (a quarter of the relay's instructions per event
 * before).  Days to a proleptic Gregorian date as in Howard Hinnant's
 * "chrono-Compatible Low-Level Date Algorithms" (civil_from_days).
 */
void
event_iso_time(long long time_us, char *buf, size_t bufsz)
{
	long long sec = floor_div(time_us, 1000000);
	long long usec = time_us - sec * 1000000;
	long long days = floor_div(sec, 86400), sod = sec - days * 86400;
	long long z = days + 719468, era = floor_div(z, 146097);
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	long long d = doy - (153 * mp + 2) / 5 + 1;
	long long m = mp < 10 ? mp + 3 : mp - 9;
	long long y = yoe + era * 400 + (m <= 2);
	char *p = buf;

	if (y < 0 || y > 9999 || bufsz < 33) {
		snprintf(buf, bufsz,
			 "%04lld-%02lld-%02lldT%02lld:%02lld:"
			 "%02lld.%06lld+00:00",
			 y, m, d, sod / 3600, sod / 60 % 60, sod % 60, usec);
		return;
	}
	p = digits(p, y, 4);
	*p++ = '-';
	p = digits(p, m, 2);
	*p++ = '-';
	p = digits(p, d, 2);
	*p++ = 'T';
	p = digits(p, sod / 3600, 2);
	*p++ = ':';
	p = digits(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = digits(p, sod % 60, 2);
	*p++ = '.';
	p = digits(p, usec, 6);
	memcpy(p, "+00:00", 7);
}

static const char *
type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

/*
 * Copy at most max bytes of s into buf as safe text (text.h), for a
 * reason; with quote_marks '"' and '\\' are escaped too.  A cut never
 * splits a character and is marked "...".
 */
static void
quote(char *buf, size_t sz, const char *s, size_t len, size_t max,
      bool quote_marks)
{
	text_escape(buf, sz, s, len, max, quote_marks ? TEXT_QUOTE : 0);
}

#define SHOW_MAX 64

struct dump {
	char text[SHOW_MAX + 32];
	size_t len;
};

/* Collect the start of a dump; -1 stops jansson once enough is seen. */
static int
dump_some(const char *buffer, size_t size, void *data)
{
	struct dump *d = data;
	size_t room = sizeof(d->text) - d->len;

	memcpy(d->text + d->len, buffer, size < room ? size : room);
	d->len += size < room ? size : room;
	return size < room ? 0 : -1;
}

/*
 * A JSON value as short JSON text for a reason: at most ~64 bytes, never
 * dumping more than that of a big value (only called on the error path).
 */
static void
show(const json_t *v, char *buf, size_t sz)
{
	struct dump d;

	d.len = 0;
	json_dump_callback(v, dump_some, &d, JSON_ENCODE_ANY | JSON_COMPACT);
	quote(buf, sz, d.text, d.len, SHOW_MAX, false);
}

static int bad(struct mk_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
bad(struct mk_err *e, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	e->code = EX_DATAERR;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* "ev_extra3 property 'NAME' must be MUST, not VALUE" */
static int
bad_prop(struct mk_err *e, const char *name, const char *must, const json_t *v)
{
	char shown[SHOW_MAX + 16];

	show(v, shown, sizeof(shown));
	return bad(e, "ev_extra3 property '%s' must be %s, not %s", name, must,
		   shown);
}

static int
oom(struct mk_err *e)
{
	return mk_err_set(e, EX_OSERR, "out of memory mapping an event");
}

static bool
present(const char *s, size_t len)
{
	return s != NULL && len > 0;
}

/* Parse ev->extra[n] (2: ev_extra3, 3: ev_extra4) into m->json[n - 2]. */
static int
parse_object(struct mk_message *m, const struct mk_event *ev, int n,
	     json_t **out, struct mk_err *e)
{
	char text[JSON_ERROR_TEXT_LENGTH * 4];
	json_error_t jerr;
	json_t *v;

	/*
	 * DECODE_ANY: a scalar gets "not an object", not "invalid JSON".
	 * Without JSON_ALLOW_NUL, jansson refuses \u0000 and invalid UTF-8.
	 */
	v = json_loadb(ev->extra[n], ev->extra_len[n],
		       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		/* jansson quotes the bad token raw: it may hold a ^A */
		quote(text, sizeof(text), jerr.text, strlen(jerr.text),
		      JSON_ERROR_TEXT_LENGTH, false);
		return bad(e, "%s is not valid JSON: %s at line %d, column %d",
			   extra_name[n], text, jerr.line, jerr.column);
	}
	m->json[n - 2] = v;
	if (!json_is_object(v))
		return bad(e, "%s is not a JSON object (it is %s)",
			   extra_name[n], type_name(v));
	*out = v;
	return 0;
}

static amqp_bytes_t
jbytes(const json_t *s)
{
	amqp_bytes_t b;

	b.bytes = (void *)json_string_value(s);
	b.len = json_string_length(s);
	return b;
}

struct conv {
	struct mk_message *m;
	const struct mk_map_ctx *ctx;
	const char *where; /* "ev_extra4" or "ev_extra3 'headers'" */
	long long ev_id;
	bool has_event_id; /* the user's table had one, now ours */
	struct mk_err *e;
};

static int to_table(struct conv *c, json_t *obj, amqp_table_t *t, int depth,
		    int reserve, bool top);

static int
to_field(struct conv *c, json_t *v, amqp_field_value_t *f, int depth)
{
	json_int_t i;
	size_t n, k;

	switch (json_typeof(v)) {
	case JSON_STRING:
		f->kind = AMQP_FIELD_KIND_UTF8;
		f->value.bytes = jbytes(v);
		return 0;
	case JSON_INTEGER:
		i = json_integer_value(v);
		if (i >= INT32_MIN && i <= INT32_MAX) {
			f->kind = AMQP_FIELD_KIND_I32;
			f->value.i32 = (int32_t)i;
		} else {
			f->kind = AMQP_FIELD_KIND_I64;
			f->value.i64 = (int64_t)i;
		}
		return 0;
	case JSON_REAL:
		f->kind = AMQP_FIELD_KIND_F64;
		f->value.f64 = json_real_value(v);
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		f->kind = AMQP_FIELD_KIND_BOOLEAN;
		f->value.boolean = json_is_true(v);
		return 0;
	case JSON_NULL:
		f->kind = AMQP_FIELD_KIND_VOID;
		return 0;
	case JSON_OBJECT:
		f->kind = AMQP_FIELD_KIND_TABLE;
		return to_table(c, v, &f->value.table, depth + 1, 0, false);
	case JSON_ARRAY:
		if (depth + 1 > c->ctx->max_depth)
			return bad(c->e,
				   "%s: headers are nested deeper than "
				   "%d levels",
				   c->where, c->ctx->max_depth);
		n = json_array_size(v);
		f->kind = AMQP_FIELD_KIND_ARRAY;
		f->value.array.num_entries = (int)n;
		f->value.array.entries =
			n == 0 ? NULL
			       : amqp_pool_alloc(&c->m->pool, n * sizeof(*f));
		if (n && f->value.array.entries == NULL)
			return oom(c->e);
		for (k = 0; k < n; k++)
			if (to_field(c, json_array_get(v, k),
				     &f->value.array.entries[k], depth + 1))
				return -1;
		return 0;
	}
	return bad(c->e, "%s: unsupported JSON value", c->where);
}

/* CC and BCC: an array of strings RabbitMQ can use as routing keys. */
static bool
routing_keys(const json_t *v)
{
	size_t i;

	if (!json_is_array(v))
		return false;
	for (i = 0; i < json_array_size(v); i++) {
		const json_t *k = json_array_get(v, i);

		if (!json_is_string(k) || json_string_length(k) > SHORTSTR_MAX)
			return false;
	}
	return true;
}

/*
 * Convert a JSON object into an AMQP table, leaving reserve free entries
 * at the end for the automatic headers.  At the top level, a user's
 * "event_id" keeps its place but gets our value: the relay matches
 * returned messages on it, so it must never be the user's.
 */
static int
to_table(struct conv *c, json_t *obj, amqp_table_t *t, int depth, int reserve,
	 bool top)
{
	size_t n = obj ? json_object_size(obj) : 0;
	char shown[SHOW_MAX + 16];
	const char *key;
	json_t *v;
	int i = 0;

	if (depth > c->ctx->max_depth)
		return bad(c->e, "%s: headers are nested deeper than %d levels",
			   c->where, c->ctx->max_depth);
	/* The user's entries; the automatic ones come on top (event.h). */
	if (top && n > (size_t)c->ctx->max_headers)
		return bad(c->e, "%s: %zu headers, over the limit of %d",
			   c->where, n, c->ctx->max_headers);
	t->num_entries = 0;
	t->entries = NULL;
	if (n + (size_t)reserve == 0)
		return 0;
	t->entries = amqp_pool_alloc(&c->m->pool, (n + (size_t)reserve) *
							  sizeof(*t->entries));
	if (t->entries == NULL)
		return oom(c->e);
	json_object_foreach(obj, key, v)
	{
		size_t klen = strlen(key);
		amqp_table_entry_t *te = &t->entries[i++];

		/*
		 * Names AMQP cannot carry: empty (rabbitmq-c's readers,
		 * ours and every consumer's, refuse the message) or over
		 * the specification's 128 bytes, at any depth.
		 */
		if (klen == 0)
			return bad(c->e,
				   "%s: a header name is empty (AMQP "
				   "field names are 1 to %d bytes)",
				   c->where, FIELD_NAME_MAX);
		if (klen > FIELD_NAME_MAX) {
			quote(shown, sizeof(shown), key, klen, 40, true);
			return bad(c->e,
				   "%s: header name \"%s\" is %zu bytes, "
				   "over %d",
				   c->where, shown, klen, FIELD_NAME_MAX);
		}
		/* RabbitMQ's dead-letter headers: a producer's copy would
		 * be taken for RabbitMQ's (by mikkoo-replay --amqp-queue,
		 * which re-publishes where the first death says) */
		if (top && delivery_death_header(key, klen)) {
			quote(shown, sizeof(shown), key, klen, 40, true);
			return bad(c->e,
				   "%s: header '%s' is RabbitMQ's record "
				   "of dead-lettering: a producer may not set "
				   "it",
				   c->where, shown);
		}
		te->key.bytes = (void *)key;
		te->key.len = klen;
		if (top && strcmp(key, "event_id") == 0) {
			te->value.kind = AMQP_FIELD_KIND_I64;
			te->value.value.i64 = c->ev_id;
			c->has_event_id = true;
			continue;
		}
		if (top &&
		    (strcmp(key, "CC") == 0 || strcmp(key, "BCC") == 0)) {
			if (c->ctx->deny_cc_bcc)
				return bad(c->e,
					   "%s: header '%s' (sender-"
					   "selected routing) is not allowed",
					   c->where, key);
			/* RabbitMQ closes the channel for anything else */
			if (!routing_keys(v))
				return bad(c->e,
					   "%s: header '%s' must be an "
					   "array of routing keys (strings of "
					   "at most %d bytes)",
					   c->where, key, SHORTSTR_MAX);
		}
		if (to_field(c, v, &te->value, depth))
			return -1;
	}
	t->num_entries = i;
	return 0;
}

static void
add_header(amqp_table_t *t, const char *key, amqp_field_value_t v)
{
	t->entries[t->num_entries].key = amqp_cstring_bytes(key);
	t->entries[t->num_entries].value = v;
	t->num_entries++;
}

static bool
has_key(json_t *obj, const char *key)
{
	return obj != NULL && json_object_get(obj, key) != NULL;
}

/* Properties ev_extra3 may set, and how. */
enum ptype { P_STR, P_EXPIRATION, P_MODE, P_PRIORITY, P_TIMESTAMP, P_HEADERS };

static const struct prop {
	const char *name;
	enum ptype type;
	amqp_flags_t flag;
	size_t off; /* of the amqp_bytes_t or integer member */
} prop_table[] = {
	{ "app_id", P_STR, AMQP_BASIC_APP_ID_FLAG,
	  offsetof(amqp_basic_properties_t, app_id) },
	{ "content_encoding", P_STR, AMQP_BASIC_CONTENT_ENCODING_FLAG,
	  offsetof(amqp_basic_properties_t, content_encoding) },
	{ "content_type", P_STR, AMQP_BASIC_CONTENT_TYPE_FLAG,
	  offsetof(amqp_basic_properties_t, content_type) },
	{ "correlation_id", P_STR, AMQP_BASIC_CORRELATION_ID_FLAG,
	  offsetof(amqp_basic_properties_t, correlation_id) },
	{ "delivery_mode", P_MODE, AMQP_BASIC_DELIVERY_MODE_FLAG, 0 },
	{ "expiration", P_EXPIRATION, AMQP_BASIC_EXPIRATION_FLAG,
	  offsetof(amqp_basic_properties_t, expiration) },
	{ "headers", P_HEADERS, AMQP_BASIC_HEADERS_FLAG, 0 },
	{ "message_id", P_STR, AMQP_BASIC_MESSAGE_ID_FLAG,
	  offsetof(amqp_basic_properties_t, message_id) },
	{ "priority", P_PRIORITY, AMQP_BASIC_PRIORITY_FLAG, 0 },
	{ "timestamp", P_TIMESTAMP, AMQP_BASIC_TIMESTAMP_FLAG, 0 },
	{ "type", P_STR, AMQP_BASIC_TYPE_FLAG,
	  offsetof(amqp_basic_properties_t, type) },
	{ "user_id", P_STR, AMQP_BASIC_USER_ID_FLAG,
	  offsetof(amqp_basic_properties_t, user_id) },
};

#define NPROPS (sizeof(prop_table) / sizeof(prop_table[0]))

/*
 * RabbitMQ closes the channel for an expiration that is not a decimal
 * number of milliseconds up to this (erlang:send_after's limit): refuse
 * it here as bad data instead of failing every event in flight.
 */
#define EXPIRATION_MAX 4294967295LL

static bool
expiration_ok(const char *s, size_t len)
{
	long long ms = 0;
	size_t k;

	if (len == 0 || len > SHORTSTR_MAX)
		return false;
	for (k = 0; k < len; k++) {
		if (s[k] < '0' || s[k] > '9')
			return false;
		ms = ms * 10 + (s[k] - '0');
		if (ms > EXPIRATION_MAX)
			return false;
	}
	return true;
}

static int
set_prop(struct mk_message *m, const struct prop *p, json_t *v, json_t **hdrs,
	 bool *hdrs_set, struct mk_err *e)
{
	amqp_basic_properties_t *pr = &m->props;
	json_int_t i;
	char *s;

	if (json_is_null(v)) {
		pr->_flags &= ~p->flag;
		if (p->type == P_HEADERS) {
			*hdrs = NULL;
			*hdrs_set = true;
		}
		return 0;
	}
	switch (p->type) {
	case P_STR:
		if (!json_is_string(v))
			return bad_prop(e, p->name, "a string", v);
		if (json_string_length(v) > SHORTSTR_MAX)
			return bad(e,
				   "ev_extra3 property '%s' is %zu bytes, "
				   "over %d",
				   p->name, json_string_length(v),
				   SHORTSTR_MAX);
		*(amqp_bytes_t *)((char *)pr + p->off) = jbytes(v);
		break;
	case P_EXPIRATION:
		i = json_is_integer(v) ? json_integer_value(v) : -1;
		if (i >= 0 && i <= EXPIRATION_MAX) {
			s = amqp_pool_alloc(&m->pool, 16);
			if (s == NULL)
				return oom(e);
			snprintf(s, 16, "%" JSON_INTEGER_FORMAT, i);
			pr->expiration = amqp_cstring_bytes(s);
		} else if (json_is_string(v) &&
			   expiration_ok(json_string_value(v),
					 json_string_length(v))) {
			pr->expiration = jbytes(v);
		} else {
			return bad_prop(e, "expiration",
					"milliseconds from 0 "
					"to 4294967295 (digits in a string, or "
					"an integer)",
					v);
		}
		break;
	case P_MODE:
		i = json_is_integer(v) ? json_integer_value(v) : 0;
		if (i != 1 && i != 2)
			return bad_prop(e, "delivery_mode", "1 or 2", v);
		pr->delivery_mode = (uint8_t)i;
		break;
	case P_PRIORITY:
		i = json_is_integer(v) ? json_integer_value(v) : -1;
		if (i < 0 || i > 255)
			return bad_prop(e, "priority",
					"an integer from 0 to "
					"255",
					v);
		pr->priority = (uint8_t)i;
		break;
	case P_TIMESTAMP:
		i = json_is_integer(v) ? json_integer_value(v) : -1;
		if (i < 0)
			return bad_prop(e, "timestamp",
					"a non-negative "
					"integer (epoch seconds)",
					v);
		pr->timestamp = (uint64_t)i;
		break;
	case P_HEADERS:
		if (!json_is_object(v))
			return bad_prop(e, "headers", "an object", v);
		*hdrs = v;
		*hdrs_set = true;
		return 0;
	}
	pr->_flags |= p->flag;
	return 0;
}

static int
check_name(const char *what, const char *s, size_t len, struct mk_err *e)
{
	if (s == NULL)
		return bad(e, "%s is NULL", what);
	if (len > SHORTSTR_MAX)
		return bad(e, "%s is %zu bytes, over %d", what, len,
			   SHORTSTR_MAX);
	return 0;
}

static bool
allowed(const struct mk_map_ctx *ctx, const char *name, size_t len)
{
	size_t i;

	/* per event: no strlen of every entry */
	for (i = 0; i < ctx->nexchanges; i++)
		if (strncmp(ctx->exchanges[i], name, len) == 0 &&
		    ctx->exchanges[i][len] == '\0')
			return true;
	return false;
}

const char *
event_route(const struct mk_map_ctx *ctx, const char *ct, size_t len)
{
	size_t i, n;

	/* the media type: up to the parameters, without blanks */
	for (n = 0; ct && n < len && ct[n] != ';'; n++)
		;
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	for (i = 0; ct && i < ctx->nroutes; i++)
		if (strlen(ctx->routes[i].media_type) == n &&
		    strncasecmp(ctx->routes[i].media_type, ct, n) == 0)
			return ctx->routes[i].exchange;
	return ctx->route_default;
}

/* An event without an exchange, when the worker has routes. */
static int
route(const struct mk_event *ev, const struct mk_map_ctx *ctx,
      struct mk_message *m, struct mk_err *e)
{
	const amqp_basic_properties_t *pr = &m->props;
	bool has_ct = pr->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG;
	const char *x = event_route(ctx, has_ct ? pr->content_type.bytes : NULL,
				    pr->content_type.len);
	char shown[SHOW_MAX + 16];

	if (x == NULL) {
		if (!has_ct)
			return bad(e,
				   "ev_extra1 (exchange) is %s and the "
				   "event has no content type to route by",
				   ev->extra[0] ? "empty" : "NULL");
		quote(shown, sizeof(shown), pr->content_type.bytes,
		      pr->content_type.len, SHOW_MAX, true);
		return bad(e,
			   "ev_extra1 (exchange) is %s and no route "
			   "matches content type \"%s\"",
			   ev->extra[0] ? "empty" : "NULL", shown);
	}
	if (ctx->exchanges && !allowed(ctx, x, strlen(x)))
		return bad(e,
			   "routed exchange \"%s\" is not in the worker's "
			   "exchanges list",
			   x);
	m->exchange = amqp_cstring_bytes(x);
	return 0;
}

int
event_map(const struct mk_event *ev, const struct mk_map_ctx *ctx,
	  struct mk_message *m, struct mk_err *e)
{
	bool routed = (ctx->nroutes > 0 || ctx->route_default) &&
		      !present(ev->extra[0], ev->extra_len[0]);
	amqp_basic_properties_t *pr = &m->props;
	json_t *hdrs = NULL, *extra3 = NULL;
	bool hdrs_from3 = false;
	struct conv c = { m, ctx, "ev_extra4", ev->ev_id, false, e };
	char shown[SHOW_MAX + 16];
	amqp_field_value_t v;
	size_t total, i;
	const char *key;
	json_t *val;

	message_reset(m);
	if (ev->refused)
		return bad(e, "%s", ev->refused);
	/* The size rule, the one place it is written: ev_type, ev_data
	 * and the extras together, as the source measured them (it may
	 * not have fetched the text of an event over the limit). */
	total = ev->ev_type_len + ev->ev_data_len;
	for (i = 0; i < 4; i++)
		total += ev->extra_len[i];
	if (ev->size > total)
		total = ev->size;
	if (total > ctx->max_event_bytes)
		return bad(e, "event is %zu bytes, over max_event_bytes (%zu)",
			   total, ctx->max_event_bytes);
	if ((!routed && check_name("ev_extra1 (exchange)", ev->extra[0],
				   ev->extra_len[0], e) < 0) ||
	    check_name("ev_type (routing key)", ev->ev_type, ev->ev_type_len,
		       e) < 0)
		return -1;
	if (!routed && ctx->exchanges &&
	    !allowed(ctx, ev->extra[0], ev->extra_len[0])) {
		quote(shown, sizeof(shown), ev->extra[0], ev->extra_len[0],
		      SHOW_MAX, true);
		return bad(e,
			   "ev_extra1 (exchange) \"%s\" is not in the "
			   "worker's exchanges list",
			   shown);
	}
	m->exchange.bytes = (void *)ev->extra[0];
	m->exchange.len = ev->extra_len[0];
	m->routing_key.bytes = (void *)ev->ev_type;
	m->routing_key.len = ev->ev_type_len;
	if (ev->ev_data) {
		m->body.bytes = (void *)ev->ev_data;
		m->body.len = ev->ev_data_len;
	}

	pr->_flags = AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
	pr->app_id = amqp_cstring_bytes(ctx->app_id);
	pr->correlation_id = amqp_cstring_bytes(ctx->correlation_id);
	/* AMQP's timestamp is unsigned: no property before 1970 (event.h) */
	if (ev->ev_time_us >= 0) {
		pr->_flags |= AMQP_BASIC_TIMESTAMP_FLAG;
		pr->timestamp = (uint64_t)(ev->ev_time_us / 1000000);
	}
	if (ctx->persistent) {
		pr->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
		pr->delivery_mode = 2;
	}
	if (present(ev->extra[1], ev->extra_len[1])) {
		if (ev->extra_len[1] > SHORTSTR_MAX)
			return bad(e,
				   "ev_extra2 (content type) is %zu bytes, "
				   "over %d",
				   ev->extra_len[1], SHORTSTR_MAX);
		pr->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
		pr->content_type.bytes = (void *)ev->extra[1];
		pr->content_type.len = ev->extra_len[1];
	}
	m->user_json_len = ev->extra_len[2] + ev->extra_len[3];
	/* Parsed only when present: most events have neither. */
	if (present(ev->extra[3], ev->extra_len[3]) &&
	    parse_object(m, ev, 3, &hdrs, e) < 0)
		return -1;
	if (present(ev->extra[2], ev->extra_len[2])) {
		if (parse_object(m, ev, 2, &extra3, e) < 0)
			return -1;
		json_object_foreach(extra3, key, val)
		{
			for (i = 0; i < NPROPS; i++)
				if (strcmp(key, prop_table[i].name) == 0)
					break;
			if (i == NPROPS)
				continue; /* unknown keys are ignored */
			if (set_prop(m, &prop_table[i], val, &hdrs, &hdrs_from3,
				     e) < 0)
				return -1;
		}
	}
	if (routed && route(ev, ctx, m, e) < 0)
		return -1;
	if (hdrs_from3)
		c.where = "ev_extra3 'headers'";
	if (pr->_flags & AMQP_BASIC_USER_ID_FLAG && !ctx->allow_user_id &&
	    (ctx->user == NULL || pr->user_id.len != strlen(ctx->user) ||
	     memcmp(pr->user_id.bytes, ctx->user, pr->user_id.len) != 0)) {
		/* RabbitMQ would close the channel (PRECONDITION_FAILED) */
		quote(shown, sizeof(shown), pr->user_id.bytes, pr->user_id.len,
		      SHOW_MAX, true);
		return bad(e,
			   "ev_extra3 property 'user_id' must be the "
			   "relay's RabbitMQ user, not \"%s\"",
			   shown);
	}

	if (to_table(&c, hdrs, &pr->headers, 1, 6, true) < 0)
		return -1;
	if (!has_key(hdrs, "origin")) {
		v.kind = AMQP_FIELD_KIND_UTF8;
		v.value.bytes = amqp_cstring_bytes(ctx->origin);
		add_header(&pr->headers, "origin", v);
	}
	if (!has_key(hdrs, "sequence")) {
		v.kind = AMQP_FIELD_KIND_I64;
		v.value.i64 = ctx->sequence;
		add_header(&pr->headers, "sequence", v);
	}
	if (!has_key(hdrs, "timestamp")) {
		event_iso_time(ev->ev_time_us, m->timestamp_hdr,
			       sizeof(m->timestamp_hdr));
		v.kind = AMQP_FIELD_KIND_UTF8;
		v.value.bytes = amqp_cstring_bytes(m->timestamp_hdr);
		add_header(&pr->headers, "timestamp", v);
	}
	if (!has_key(hdrs, "txid")) {
		v.kind = AMQP_FIELD_KIND_I64;
		v.value.i64 = ev->ev_txid;
		add_header(&pr->headers, "txid", v);
	}
	if (ev->lsn && !has_key(hdrs, "lsn")) {
		v.kind = AMQP_FIELD_KIND_UTF8;
		v.value.bytes = amqp_cstring_bytes(ev->lsn);
		add_header(&pr->headers, "lsn", v);
	}
	if (!c.has_event_id) {
		v.kind = AMQP_FIELD_KIND_I64;
		v.value.i64 = ev->ev_id;
		add_header(&pr->headers, "event_id", v);
	}
	pr->_flags |= AMQP_BASIC_HEADERS_FLAG;
	return 0;
}

long long
event_id_of(const amqp_basic_properties_t *props)
{
	const amqp_field_value_t *v;
	int i;

	if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG))
		return -1;
	for (i = 0; i < props->headers.num_entries; i++) {
		const amqp_table_entry_t *t = &props->headers.entries[i];

		if (t->key.len != 8 || memcmp(t->key.bytes, "event_id", 8))
			continue;
		v = &t->value;
		switch (v->kind) {
		case AMQP_FIELD_KIND_I64:
			return v->value.i64;
		case AMQP_FIELD_KIND_U64:
			return (long long)v->value.u64;
		case AMQP_FIELD_KIND_I32:
			return v->value.i32;
		case AMQP_FIELD_KIND_U32:
			return v->value.u32;
		case AMQP_FIELD_KIND_I16:
			return v->value.i16;
		case AMQP_FIELD_KIND_U16:
			return v->value.u16;
		case AMQP_FIELD_KIND_I8:
			return v->value.i8;
		case AMQP_FIELD_KIND_U8:
			return v->value.u8;
		default:
			return -1;
		}
	}
	return -1;
}
