/* SPDX-License-Identifier: BSD-3-Clause */
/* delivery: RabbitMQ messages as JSON records; dead letters' first death. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "text.h"

/* Deeper tables are cut: the record must stay bounded and the recursion
 * shallow whatever a publisher sent. */
#define MAX_DEPTH 32

char *
delivery_base64(const void *s, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789+/";
	const unsigned char *p = s;
	char *out, *o;
	size_t i;

	if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	out = malloc((n + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = tab[p[i] >> 2];
		*o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = tab[p[i + 2] & 63];
	}
	if (i < n) {
		*o++ = tab[p[i] >> 2];
		if (i + 1 < n) {
			*o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			*o++ = tab[(p[i + 1] & 15) << 2];
		} else {
			*o++ = tab[(p[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Bytes as safe text (text.h), quoted marks escaped, cut to fit. */
static char *
printable(char *dst, size_t sz, const void *src, size_t n)
{
	return text_escape(dst, sz, src, n, n, TEXT_QUOTE);
}

static json_t *
base64_json(amqp_bytes_t b)
{
	char *s = delivery_base64(b.bytes, b.len);
	json_t *j;

	if (s == NULL)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

/* A name or property: a string when valid UTF-8, else {"base64":..}. */
static json_t *
name_json(amqp_bytes_t b)
{
	json_t *o;

	if (text_utf8_ok(b.bytes, b.len))
		return json_stringn(b.len ? b.bytes : "", b.len);
	o = json_object();
	if (o)
		json_object_set_new(o, "base64", base64_json(b));
	return o;
}

static json_t *
time_json(uint64_t secs)
{
	struct tm tm;
	time_t t = (time_t)secs;
	char buf[40];

	/* Past year 9999 RFC 3339 has no form: give the number. */
	if (secs > 253402300799ULL || gmtime_r(&t, &tm) == NULL)
		return json_integer(
			(json_int_t)(secs > INT64_MAX ? INT64_MAX : secs));
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *
decimal_json(amqp_decimal_t d)
{
	char digits[16], buf[300];
	size_t n, pad = 0;

	n = (size_t)snprintf(digits, sizeof(digits), "%" PRIu32, d.value);
	if (d.decimals == 0)
		return json_string(digits);
	if (n <= d.decimals)
		pad = d.decimals + 1 - n;
	/* "0.00" + digits: the integer part, then the fraction */
	memset(buf, '0', pad);
	memcpy(buf + pad, digits, n);
	n += pad;
	memmove(buf + n - d.decimals + 1, buf + n - d.decimals, d.decimals);
	buf[n - d.decimals] = '.';
	buf[n + 1] = '\0';
	return json_string(buf);
}

static json_t *
real_json(double v)
{
	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "Infinity" : "-Infinity");
	return json_real(v);
}

static json_t *value_json(const amqp_field_value_t *v, int depth);

/* JSON keys must be UTF-8: other bytes are shown escaped. */
static void
set_key(json_t *o, amqp_bytes_t key, json_t *v)
{
	char buf[4 * 255 + 8];

	if (text_utf8_ok(key.bytes, key.len)) {
		json_object_setn_new(o, key.len ? key.bytes : "", key.len, v);
		return;
	}
	printable(buf, sizeof(buf), key.bytes, key.len);
	json_object_set_new(o, buf, v);
}

static json_t *
table_json(const amqp_table_t *t, int depth)
{
	json_t *o = json_object();
	int i;

	for (i = 0; o && i < t->num_entries; i++)
		set_key(o, t->entries[i].key,
			value_json(&t->entries[i].value, depth + 1));
	return o;
}

static json_t *
typed(const char *type, const char *vkey, json_t *v)
{
	json_t *o = json_object();

	if (o == NULL) {
		json_decref(v);
		return NULL;
	}
	json_object_set_new(o, "type", json_string(type));
	json_object_set_new(o, vkey, v ? v : json_null());
	return o;
}

static json_t *
value_json(const amqp_field_value_t *v, int depth)
{
	const amqp_field_value_t *a;
	json_t *arr;
	int i;

	switch (v->kind) {
	case AMQP_FIELD_KIND_BOOLEAN:
		return typed("bool", "value", json_boolean(v->value.boolean));
	case AMQP_FIELD_KIND_I8:
		return typed("int8", "value", json_integer(v->value.i8));
	case AMQP_FIELD_KIND_U8:
		return typed("uint8", "value", json_integer(v->value.u8));
	case AMQP_FIELD_KIND_I16:
		return typed("int16", "value", json_integer(v->value.i16));
	case AMQP_FIELD_KIND_U16:
		return typed("uint16", "value", json_integer(v->value.u16));
	case AMQP_FIELD_KIND_I32:
		return typed("int32", "value", json_integer(v->value.i32));
	case AMQP_FIELD_KIND_U32:
		return typed("uint32", "value", json_integer(v->value.u32));
	case AMQP_FIELD_KIND_I64:
		return typed("int64", "value", json_integer(v->value.i64));
	case AMQP_FIELD_KIND_U64:
		if (v->value.u64 > INT64_MAX) {
			char buf[24];

			snprintf(buf, sizeof(buf), "%" PRIu64, v->value.u64);
			return typed("uint64", "value", json_string(buf));
		}
		return typed("uint64", "value",
			     json_integer((json_int_t)v->value.u64));
	case AMQP_FIELD_KIND_F32:
		return typed("float", "value", real_json(v->value.f32));
	case AMQP_FIELD_KIND_F64:
		return typed("double", "value", real_json(v->value.f64));
	case AMQP_FIELD_KIND_DECIMAL:
		return typed("decimal", "value",
			     decimal_json(v->value.decimal));
	case AMQP_FIELD_KIND_UTF8:
		if (text_utf8_ok(v->value.bytes.bytes, v->value.bytes.len))
			return typed("string", "value",
				     json_stringn(v->value.bytes.len
							  ? v->value.bytes.bytes
							  : "",
						  v->value.bytes.len));
		return typed("string", "base64", base64_json(v->value.bytes));
	case AMQP_FIELD_KIND_BYTES:
		return typed("bytes", "base64", base64_json(v->value.bytes));
	case AMQP_FIELD_KIND_TIMESTAMP:
		return typed("timestamp", "value", time_json(v->value.u64));
	case AMQP_FIELD_KIND_TABLE:
		if (depth >= MAX_DEPTH)
			return typed("table", "value", NULL);
		return typed("table", "value",
			     table_json(&v->value.table, depth));
	case AMQP_FIELD_KIND_ARRAY:
		if (depth >= MAX_DEPTH)
			return typed("array", "value", NULL);
		arr = json_array();
		for (i = 0; arr && i < v->value.array.num_entries; i++) {
			a = &v->value.array.entries[i];
			json_array_append_new(arr, value_json(a, depth + 1));
		}
		return typed("array", "value", arr);
	case AMQP_FIELD_KIND_VOID:
	default:
		return typed("void", "value", NULL);
	}
}

json_t *
delivery_value_json(const amqp_field_value_t *v)
{
	return value_json(v, 0);
}

static const amqp_field_value_t *
table_get(const amqp_table_t *t, const char *key)
{
	size_t n = strlen(key);
	int i;

	for (i = 0; i < t->num_entries; i++)
		if (t->entries[i].key.len == n &&
		    memcmp(t->entries[i].key.bytes, key, n) == 0)
			return &t->entries[i].value;
	return NULL;
}

static const amqp_table_t *
headers_of(const amqp_basic_properties_t *p)
{
	return (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
}

/* A string-ish field (S or x) of a table, or NULL. */
static const amqp_bytes_t *
str_field(const amqp_table_t *t, const char *key)
{
	const amqp_field_value_t *v = t ? table_get(t, key) : NULL;

	if (v && (v->kind == AMQP_FIELD_KIND_UTF8 ||
		  v->kind == AMQP_FIELD_KIND_BYTES))
		return &v->value.bytes;
	return NULL;
}

static bool
int_field(const amqp_table_t *t, const char *key, long long *out)
{
	const amqp_field_value_t *v = table_get(t, key);

	if (v == NULL)
		return false;
	switch (v->kind) {
	case AMQP_FIELD_KIND_I8:
		*out = v->value.i8;
		return true;
	case AMQP_FIELD_KIND_U8:
		*out = v->value.u8;
		return true;
	case AMQP_FIELD_KIND_I16:
		*out = v->value.i16;
		return true;
	case AMQP_FIELD_KIND_U16:
		*out = v->value.u16;
		return true;
	case AMQP_FIELD_KIND_I32:
		*out = v->value.i32;
		return true;
	case AMQP_FIELD_KIND_U32:
		*out = v->value.u32;
		return true;
	case AMQP_FIELD_KIND_I64:
		*out = v->value.i64;
		return true;
	case AMQP_FIELD_KIND_U64:
	case AMQP_FIELD_KIND_TIMESTAMP:
		*out = v->value.u64 > INT64_MAX ? INT64_MAX
						: (long long)v->value.u64;
		return true;
	default:
		return false;
	}
}

static bool
bytes_eq(const amqp_bytes_t *a, const amqp_bytes_t *b)
{
	return a->len == b->len &&
	       (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
}

static const amqp_array_t *
x_death(const amqp_basic_properties_t *p)
{
	const amqp_table_t *h = headers_of(p);
	const amqp_field_value_t *v = h ? table_get(h, "x-death") : NULL;

	return v && v->kind == AMQP_FIELD_KIND_ARRAY ? &v->value.array : NULL;
}

int
death_first(const amqp_basic_properties_t *p, struct death *d)
{
	const amqp_table_t *h = headers_of(p), *entry = NULL, *t;
	const amqp_array_t *xd = x_death(p);
	const amqp_bytes_t *fq, *fr, *fx, *q, *r, *x;
	const amqp_field_value_t *k;
	int i;

	memset(d, 0, sizeof(*d));
	if (xd == NULL)
		return 0;
	fq = str_field(h, "x-first-death-queue");
	fr = str_field(h, "x-first-death-reason");
	fx = str_field(h, "x-first-death-exchange");
	/* x-death is most recent first: without the x-first-death-*
	 * headers the last entry is the oldest. */
	for (i = 0; i < xd->num_entries; i++) {
		if (xd->entries[i].kind != AMQP_FIELD_KIND_TABLE)
			continue;
		t = &xd->entries[i].value.table;
		q = str_field(t, "queue");
		r = str_field(t, "reason");
		if (fq && fr && q && r && bytes_eq(q, fq) && bytes_eq(r, fr)) {
			entry = t;
			break;
		}
		if (!(fq && fr))
			entry = t;
	}
	if (entry == NULL)
		return 0;
	q = str_field(entry, "queue");
	r = str_field(entry, "reason");
	x = fx ? fx : str_field(entry, "exchange");
	k = table_get(entry, "routing-keys");
	if (q == NULL || r == NULL || x == NULL || k == NULL ||
	    k->kind != AMQP_FIELD_KIND_ARRAY || k->value.array.num_entries < 1)
		return 0;
	for (i = 0; i < k->value.array.num_entries; i++)
		if (k->value.array.entries[i].kind != AMQP_FIELD_KIND_UTF8 &&
		    k->value.array.entries[i].kind != AMQP_FIELD_KIND_BYTES)
			return 0;
	d->queue = *q;
	d->reason = *r;
	d->exchange = *x;
	d->keys = &k->value.array;
	if (!int_field(entry, "count", &d->count))
		d->count = 1;
	return 1;
}

bool
death_has_key(const struct death *d, const char *key)
{
	amqp_bytes_t k = { strlen(key), (void *)key };
	int i;

	for (i = 0; d->keys && i < d->keys->num_entries; i++)
		if (bytes_eq(&d->keys->entries[i].value.bytes, &k))
			return true;
	return false;
}

bool
delivery_death_header(const char *key, size_t len)
{
	static const char *const names[] = {
		"x-death",
		"x-first-death-exchange",
		"x-first-death-queue",
		"x-first-death-reason",
		"x-last-death-exchange",
		"x-last-death-queue",
		"x-last-death-reason",
		"x-delivery-count",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (len == strlen(names[i]) && memcmp(key, names[i], len) == 0)
			return true;
	return false;
}

static bool
is_death_header(amqp_bytes_t key, bool drop_cc)
{
	if (delivery_death_header(key.bytes, key.len))
		return true;
	if (!drop_cc)
		return false;
	return (key.len == 2 && memcmp(key.bytes, "CC", 2) == 0) ||
	       (key.len == 3 && memcmp(key.bytes, "BCC", 3) == 0);
}

int
death_strip(const amqp_basic_properties_t *p, const amqp_array_t *cc,
	    bool drop_cc, amqp_pool_t *pool, amqp_basic_properties_t *out)
{
	const amqp_table_t *h = headers_of(p);
	bool add_cc = cc && cc->num_entries > 0;
	amqp_table_entry_t *ent;
	int i, n = 0;

	*out = *p;
	out->_flags &= ~AMQP_BASIC_HEADERS_FLAG;
	out->headers = amqp_empty_table;
	if (h == NULL && !add_cc)
		return 0;
	ent = amqp_pool_alloc(
		pool, sizeof(*ent) * (size_t)((h ? h->num_entries : 0) + 1));
	if (ent == NULL)
		return -1;
	for (i = 0; h && i < h->num_entries; i++)
		if (!is_death_header(h->entries[i].key, drop_cc || add_cc))
			ent[n++] = h->entries[i];
	if (add_cc) {
		ent[n].key = amqp_cstring_bytes("CC");
		ent[n].value.kind = AMQP_FIELD_KIND_ARRAY;
		ent[n].value.value.array = *cc;
		n++;
	}
	if (n == 0)
		return 0;
	out->_flags |= AMQP_BASIC_HEADERS_FLAG;
	out->headers.num_entries = n;
	out->headers.entries = ent;
	return 0;
}

int
delivery_name_check(const char *what, const char *name, struct mk_err *e)
{
	size_t n = strlen(name);
	char shown[80];

	if (n == 0)
		return mk_err_set(e, EX_USAGE, "%s name is empty", what);
	printable(shown, sizeof(shown), name, n);
	if (n > 255)
		return mk_err_set(e, EX_USAGE,
				  "%s name '%s' is longer than "
				  "255 bytes",
				  what, shown);
	if (!text_utf8_ok(name, n))
		return mk_err_set(e, EX_USAGE,
				  "%s name '%s' is not valid "
				  "UTF-8",
				  what, shown);
	return 0;
}

static json_t *
properties_json(const amqp_basic_properties_t *p)
{
	json_t *o = json_object();
	amqp_flags_t f = p->_flags;

	if (o == NULL)
		return NULL;
#define TEXT(flag, name) \
	if (f & (flag))  \
	json_object_set_new(o, #name, name_json(p->name))
	TEXT(AMQP_BASIC_CONTENT_TYPE_FLAG, content_type);
	TEXT(AMQP_BASIC_CONTENT_ENCODING_FLAG, content_encoding);
	if (f & AMQP_BASIC_DELIVERY_MODE_FLAG)
		json_object_set_new(o, "delivery_mode",
				    json_integer(p->delivery_mode));
	if (f & AMQP_BASIC_PRIORITY_FLAG)
		json_object_set_new(o, "priority", json_integer(p->priority));
	TEXT(AMQP_BASIC_CORRELATION_ID_FLAG, correlation_id);
	TEXT(AMQP_BASIC_REPLY_TO_FLAG, reply_to);
	TEXT(AMQP_BASIC_EXPIRATION_FLAG, expiration);
	TEXT(AMQP_BASIC_MESSAGE_ID_FLAG, message_id);
	if (f & AMQP_BASIC_TIMESTAMP_FLAG)
		json_object_set_new(o, "timestamp", time_json(p->timestamp));
	TEXT(AMQP_BASIC_TYPE_FLAG, type);
	TEXT(AMQP_BASIC_USER_ID_FLAG, user_id);
	TEXT(AMQP_BASIC_APP_ID_FLAG, app_id);
	TEXT(AMQP_BASIC_CLUSTER_ID_FLAG, cluster_id);
#undef TEXT
	return o;
}

/* One x-death entry, its known fields in a fixed order. */
static json_t *
death_entry_json(const amqp_table_t *t)
{
	static const char *const strs[] = { "queue", "reason" };
	const amqp_field_value_t *v;
	const amqp_bytes_t *b;
	json_t *o = json_object(), *keys;
	long long n;
	size_t i;
	int k;

	if (o == NULL)
		return NULL;
	for (i = 0; i < 2; i++)
		if ((b = str_field(t, strs[i])) != NULL)
			json_object_set_new(o, strs[i], name_json(*b));
	if (int_field(t, "count", &n))
		json_object_set_new(o, "count", json_integer(n));
	v = table_get(t, "time");
	if (v && v->kind == AMQP_FIELD_KIND_TIMESTAMP)
		json_object_set_new(o, "time", time_json(v->value.u64));
	if ((b = str_field(t, "exchange")) != NULL)
		json_object_set_new(o, "exchange", name_json(*b));
	v = table_get(t, "routing-keys");
	if (v && v->kind == AMQP_FIELD_KIND_ARRAY) {
		keys = json_array();
		for (k = 0; keys && k < v->value.array.num_entries; k++) {
			const amqp_field_value_t *e;

			e = &v->value.array.entries[k];
			if (e->kind == AMQP_FIELD_KIND_UTF8 ||
			    e->kind == AMQP_FIELD_KIND_BYTES)
				json_array_append_new(
					keys, name_json(e->value.bytes));
		}
		json_object_set_new(o, "routing_keys", keys);
	}
	if ((b = str_field(t, "original-expiration")) != NULL)
		json_object_set_new(o, "original_expiration", name_json(*b));
	return o;
}

json_t *
delivery_json(const struct delivery *d)
{
	const amqp_basic_properties_t *p = &d->msg->properties;
	const amqp_table_t *h = headers_of(p);
	const amqp_array_t *xd = x_death(p);
	struct death first;
	json_t *o = json_object(), *a, *f;
	int i;

	if (o == NULL)
		return NULL;
	if (d->queue)
		json_object_set_new(o, "queue", json_string(d->queue));
	json_object_set_new(o, "exchange", name_json(d->exchange));
	json_object_set_new(o, "routing_key", name_json(d->routing_key));
	json_object_set_new(o, "redelivered", json_boolean(d->redelivered));
	json_object_set_new(o, "properties", properties_json(p));
	json_object_set_new(o, "headers", h ? table_json(h, 0) : json_object());
	if (xd) {
		a = json_array();
		for (i = 0; a && i < xd->num_entries; i++)
			if (xd->entries[i].kind == AMQP_FIELD_KIND_TABLE)
				json_array_append_new(
					a,
					death_entry_json(
						&xd->entries[i].value.table));
		json_object_set_new(o, "x_death", a);
	}
	if (death_first(p, &first) == 1) {
		f = json_object();
		if (f) {
			json_object_set_new(f, "exchange",
					    name_json(first.exchange));
			json_object_set_new(f, "queue", name_json(first.queue));
			json_object_set_new(f, "reason",
					    name_json(first.reason));
		}
		json_object_set_new(o, "first_death", f);
	}
	if (text_utf8_ok(d->msg->body.bytes, d->msg->body.len))
		json_object_set_new(
			o, "body",
			json_stringn(d->msg->body.len ? d->msg->body.bytes : "",
				     d->msg->body.len));
	else
		json_object_set_new(o, "body_base64",
				    base64_json(d->msg->body));
	return o;
}
