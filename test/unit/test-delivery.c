/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for delivery: JSON records, typed values, first deaths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "text.h"
#include "tap.h"

static amqp_bytes_t
B(const char *s)
{
	return amqp_cstring_bytes(s);
}

static amqp_table_entry_t
str(const char *k, const char *v)
{
	amqp_table_entry_t e;

	e.key = B(k);
	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = B(v);
	return e;
}

/* A value's JSON text, for comparisons; caller frees. */
static char *
vtext(const amqp_field_value_t *v)
{
	json_t *j = delivery_value_json(v);
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return s;
}

static void
check_value(amqp_field_value_t v, const char *want, const char *name)
{
	char *s = vtext(&v);

	is_str(s, want, name);
	free(s);
}

static void
test_utf8_base64(void)
{
	char *s;

	ok(text_utf8_ok("", 0), "empty is UTF-8");
	ok(text_utf8_ok("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15),
	   "2, 3 and 4 byte sequences");
	ok(!text_utf8_ok("\xff", 1), "0xff is not UTF-8");
	ok(!text_utf8_ok("\xc0\xaf", 2), "an overlong '/' is not UTF-8");
	ok(!text_utf8_ok("\xed\xa0\x80", 3), "a surrogate is not UTF-8");
	ok(!text_utf8_ok("\xe2\x82", 2), "a cut sequence is not UTF-8");
	ok(!text_utf8_ok("\xf4\x90\x80\x80", 4), "past U+10FFFF is not");
	ok(text_utf8_ok("a\0b", 3), "NUL is UTF-8 (JSON escapes it)");
	s = delivery_base64("", 0);
	is_str(s, "", "base64 of nothing");
	free(s);
	s = delivery_base64("f", 1);
	is_str(s, "Zg==", "base64 'f'");
	free(s);
	s = delivery_base64("fo", 2);
	is_str(s, "Zm8=", "base64 'fo'");
	free(s);
	s = delivery_base64("foobar", 6);
	is_str(s, "Zm9vYmFy", "base64 'foobar'");
	free(s);
	s = delivery_base64("\x00\x01\x02\xff", 4);
	is_str(s, "AAEC/w==", "base64 of binary bytes");
	free(s);
}

static void
test_values(void)
{
	amqp_field_value_t v, inner[2];
	amqp_table_entry_t te[1];

	v.kind = AMQP_FIELD_KIND_I64;
	v.value.i64 = -9000000000LL;
	check_value(v, "{\"type\":\"int64\",\"value\":-9000000000}", "int64");
	v.kind = AMQP_FIELD_KIND_U64;
	v.value.u64 = 18446744073709551615ULL;
	check_value(v,
		    "{\"type\":\"uint64\",\"value\":"
		    "\"18446744073709551615\"}",
		    "uint64 past int64 is a string");
	v.kind = AMQP_FIELD_KIND_I8;
	v.value.i8 = -5;
	check_value(v, "{\"type\":\"int8\",\"value\":-5}", "int8");
	v.kind = AMQP_FIELD_KIND_BOOLEAN;
	v.value.boolean = 1;
	check_value(v, "{\"type\":\"bool\",\"value\":true}", "bool");
	v.kind = AMQP_FIELD_KIND_F64;
	v.value.f64 = 1.5;
	check_value(v, "{\"type\":\"double\",\"value\":1.5}", "double");
	v.value.f64 = NAN;
	check_value(v, "{\"type\":\"double\",\"value\":\"NaN\"}", "NaN");
	v.value.f64 = -INFINITY;
	check_value(v, "{\"type\":\"double\",\"value\":\"-Infinity\"}",
		    "-Infinity");
	v.kind = AMQP_FIELD_KIND_DECIMAL;
	v.value.decimal.decimals = 2;
	v.value.decimal.value = 1250;
	check_value(v, "{\"type\":\"decimal\",\"value\":\"12.50\"}",
		    "decimal 12.50");
	v.value.decimal.value = 5;
	check_value(v, "{\"type\":\"decimal\",\"value\":\"0.05\"}",
		    "decimal 0.05");
	v.value.decimal.decimals = 0;
	v.value.decimal.value = 7;
	check_value(v, "{\"type\":\"decimal\",\"value\":\"7\"}", "decimal 7");
	v.kind = AMQP_FIELD_KIND_TIMESTAMP;
	v.value.u64 = 1700000000;
	check_value(v,
		    "{\"type\":\"timestamp\",\"value\":"
		    "\"2023-11-14T22:13:20Z\"}",
		    "timestamp in RFC 3339");
	v.kind = AMQP_FIELD_KIND_UTF8;
	v.value.bytes = B("caf\xc3\xa9");
	check_value(v, "{\"type\":\"string\",\"value\":\"caf\xc3\xa9\"}",
		    "string");
	v.value.bytes = B("\xff\xfe");
	check_value(v, "{\"type\":\"string\",\"base64\":\"//4=\"}",
		    "a string that is not UTF-8 is base64");
	v.kind = AMQP_FIELD_KIND_BYTES;
	v.value.bytes = B("ab");
	check_value(v, "{\"type\":\"bytes\",\"base64\":\"YWI=\"}", "bytes");
	v.kind = AMQP_FIELD_KIND_VOID;
	check_value(v, "{\"type\":\"void\",\"value\":null}", "void");
	inner[0].kind = AMQP_FIELD_KIND_I32;
	inner[0].value.i32 = 1;
	inner[1].kind = AMQP_FIELD_KIND_UTF8;
	inner[1].value.bytes = B("x");
	v.kind = AMQP_FIELD_KIND_ARRAY;
	v.value.array.num_entries = 2;
	v.value.array.entries = inner;
	check_value(v,
		    "{\"type\":\"array\",\"value\":[{\"type\":\"int32\","
		    "\"value\":1},{\"type\":\"string\",\"value\":\"x\"}]}",
		    "array of typed values");
	te[0].key = B("k\xff");
	te[0].value = inner[0];
	v.kind = AMQP_FIELD_KIND_TABLE;
	v.value.table.num_entries = 1;
	v.value.table.entries = te;
	check_value(v,
		    "{\"type\":\"table\",\"value\":{\"k\\\\xff\":{\"type\":"
		    "\"int32\",\"value\":1}}}",
		    "a key that is not UTF-8 is shown escaped");
}

/* A dead letter's headers: two deaths, the older one first published
 * to 'orders' with key 'order.paid' and CC 'audit'. */
struct dead {
	amqp_table_entry_t h[8];
	amqp_field_value_t deaths[2];
	amqp_table_entry_t d0[6], d1[6];
	amqp_field_value_t keys0[1], keys1[2];
	amqp_basic_properties_t p;
};

static void
death_entry(amqp_table_entry_t *d, const char *queue, const char *reason,
	    const char *exchange, amqp_field_value_t *keys, int nkeys,
	    long long count)
{
	d[0] = str("queue", queue);
	d[1] = str("reason", reason);
	d[2].key = B("count");
	d[2].value.kind = AMQP_FIELD_KIND_I64;
	d[2].value.value.i64 = count;
	d[3].key = B("time");
	d[3].value.kind = AMQP_FIELD_KIND_TIMESTAMP;
	d[3].value.value.u64 = 1700000000;
	d[4] = str("exchange", exchange);
	d[5].key = B("routing-keys");
	d[5].value.kind = AMQP_FIELD_KIND_ARRAY;
	d[5].value.value.array.num_entries = nkeys;
	d[5].value.value.array.entries = keys;
}

static void
make_dead(struct dead *x, bool first_headers)
{
	int n = 0;

	memset(x, 0, sizeof(*x));
	x->keys0[0].kind = AMQP_FIELD_KIND_UTF8;
	x->keys0[0].value.bytes = B("retry");
	x->keys1[0].kind = AMQP_FIELD_KIND_UTF8;
	x->keys1[0].value.bytes = B("order.paid");
	x->keys1[1].kind = AMQP_FIELD_KIND_UTF8;
	x->keys1[1].value.bytes = B("audit");
	/* most recent first: died in the retry queue after the billing one */
	death_entry(x->d0, "retry", "expired", "dlx", x->keys0, 1, 1);
	death_entry(x->d1, "billing", "rejected", "orders", x->keys1, 2, 3);
	x->deaths[0].kind = AMQP_FIELD_KIND_TABLE;
	x->deaths[0].value.table.num_entries = 6;
	x->deaths[0].value.table.entries = x->d0;
	x->deaths[1].kind = AMQP_FIELD_KIND_TABLE;
	x->deaths[1].value.table.num_entries = 6;
	x->deaths[1].value.table.entries = x->d1;
	x->h[n] = str("app", "billing");
	n++;
	x->h[n].key = B("x-death");
	x->h[n].value.kind = AMQP_FIELD_KIND_ARRAY;
	x->h[n].value.value.array.num_entries = 2;
	x->h[n].value.value.array.entries = x->deaths;
	n++;
	if (first_headers) {
		x->h[n++] = str("x-first-death-exchange", "orders");
		x->h[n++] = str("x-first-death-queue", "billing");
		x->h[n++] = str("x-first-death-reason", "rejected");
	}
	x->h[n].key = B("x-delivery-count");
	x->h[n].value.kind = AMQP_FIELD_KIND_I64;
	x->h[n].value.value.i64 = 2;
	n++;
	x->h[n++] = str("CC", "stale");
	x->p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	x->p.message_id = B("m-1");
	x->p.headers.num_entries = n;
	x->p.headers.entries = x->h;
}

static bool
has_header(const amqp_basic_properties_t *p, const char *k)
{
	int i;

	for (i = 0; i < p->headers.num_entries; i++)
		if (p->headers.entries[i].key.len == strlen(k) &&
		    memcmp(p->headers.entries[i].key.bytes, k, strlen(k)) == 0)
			return true;
	return false;
}

static void
test_death(void)
{
	struct dead x;
	struct death d;
	amqp_basic_properties_t out, none;
	amqp_array_t cc;
	amqp_pool_t pool;

	make_dead(&x, true);
	is_int(death_first(&x.p, &d), 1, "a dead letter has a first death");
	ok(d.queue.len == 7 && !memcmp(d.queue.bytes, "billing", 7),
	   "first death queue from x-first-death-queue");
	ok(d.exchange.len == 6 && !memcmp(d.exchange.bytes, "orders", 6),
	   "first death exchange");
	is_int(d.keys->num_entries, 2, "its routing keys (CC included)");
	is_int(d.count, 3, "its count");
	ok(death_has_key(&d, "audit") && !death_has_key(&d, "retry"),
	   "routing key filter looks at the first death's keys");

	make_dead(&x, false);
	is_int(death_first(&x.p, &d), 1, "without x-first-death-*: the oldest");
	ok(d.reason.len == 8 && !memcmp(d.reason.bytes, "rejected", 8),
	   "the oldest x-death entry is the first death");

	memset(&none, 0, sizeof(none));
	is_int(death_first(&none, &d), 0, "no headers: not a dead letter");
	make_dead(&x, true);
	x.d1[5].value.value.array.num_entries = 0;
	is_int(death_first(&x.p, &d), 0, "no routing keys: not usable");

	init_amqp_pool(&pool, 1024);
	make_dead(&x, true);
	death_first(&x.p, &d);
	cc.num_entries = d.keys->num_entries - 1;
	cc.entries = d.keys->entries + 1;
	is_int(death_strip(&x.p, &cc, false, &pool, &out), 0, "strip");
	ok(!has_header(&out, "x-death") &&
		   !has_header(&out, "x-first-death-queue") &&
		   !has_header(&out, "x-delivery-count"),
	   "death headers and x-delivery-count are dropped");
	ok(has_header(&out, "app"), "other headers stay");
	is_int(out.headers.num_entries, 2, "app and the restored CC");
	ok(out.headers.entries[1].value.kind == AMQP_FIELD_KIND_ARRAY &&
		   out.headers.entries[1].value.value.array.num_entries == 1,
	   "CC is the first death's other keys");
	ok(out.message_id.len == 3 && (out._flags & AMQP_BASIC_MESSAGE_ID_FLAG),
	   "properties are kept");
	ok(x.p.headers.num_entries == 7, "the message is not changed");

	is_int(death_strip(&x.p, NULL, true, &pool, &out), 0, "strip, no CC");
	ok(!has_header(&out, "CC") && out.headers.num_entries == 1,
	   "drop_cc removes CC");
	x.p.headers.num_entries = 2; /* app, x-death */
	x.h[0] = x.h[1];
	x.p.headers.num_entries = 1;
	death_strip(&x.p, NULL, false, &pool, &out);
	ok(!(out._flags & AMQP_BASIC_HEADERS_FLAG),
	   "no headers left: the headers property is dropped");
	empty_amqp_pool(&pool);
}

static void
test_record(void)
{
	amqp_message_t m;
	struct delivery dv;
	struct dead x;
	json_t *j;
	char *s;

	memset(&m, 0, sizeof(m));
	make_dead(&x, true);
	m.properties = x.p;
	m.properties._flags |=
		AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
	m.properties.delivery_mode = 2;
	m.properties.timestamp = 0;
	m.body = B("\xff\x01");
	dv.queue = "dlq";
	dv.exchange = B("dlx");
	dv.routing_key = B("order.paid");
	dv.redelivered = true;
	dv.msg = &m;
	j = delivery_json(&dv);
	s = json_dumps(json_object_get(j, "properties"), JSON_COMPACT);
	is_str(s,
	       "{\"delivery_mode\":2,\"message_id\":\"m-1\","
	       "\"timestamp\":\"1970-01-01T00:00:00Z\"}",
	       "properties in AMQP order, timestamp in RFC 3339");
	free(s);
	s = json_dumps(json_object_get(j, "first_death"), JSON_COMPACT);
	is_str(s,
	       "{\"exchange\":\"orders\",\"queue\":\"billing\","
	       "\"reason\":\"rejected\"}",
	       "first_death");
	free(s);
	s = json_dumps(json_array_get(json_object_get(j, "x_death"), 1),
		       JSON_COMPACT);
	is_str(s,
	       "{\"queue\":\"billing\",\"reason\":\"rejected\",\"count\":3,"
	       "\"time\":\"2023-11-14T22:13:20Z\",\"exchange\":\"orders\","
	       "\"routing_keys\":[\"order.paid\",\"audit\"]}",
	       "x_death entries decoded");
	free(s);
	is_str(json_string_value(json_object_get(j, "body_base64")),
	       "/wE=", "a binary body is base64");
	ok(json_object_get(j, "body") == NULL, "and has no body key");
	s = json_dumps(j, JSON_COMPACT);
	ok(strncmp(s,
		   "{\"queue\":\"dlq\",\"exchange\":\"dlx\",\"routing_key\":"
		   "\"order.paid\",\"redelivered\":true,\"properties\":",
		   87) == 0,
	   "identity first, fixed order");
	free(s);
	json_decref(j);
	m.body = B("plain");
	dv.queue = NULL;
	j = delivery_json(&dv);
	is_str(json_string_value(json_object_get(j, "body")), "plain",
	       "a UTF-8 body is text");
	ok(json_object_get(j, "queue") == NULL, "a tap record has no queue");
	json_decref(j);
}

static void
test_names(void)
{
	struct mk_err e;
	char big[300];

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	is_int(delivery_name_check("queue", "orders.dlq", &e), 0, "a name");
	is_int(delivery_name_check("queue", "", &e), -1, "empty: refused");
	is_int(e.code, EX_USAGE, "a usage error");
	is_str(e.msg, "queue name is empty", "says so");
	is_int(delivery_name_check("queue", big, &e), -1, "300 bytes: refused");
	has_str(e.msg, "is longer than 255 bytes", "says why");
	is_int(delivery_name_check("exchange", "ex\xff", &e), -1,
	       "not UTF-8: refused");
	is_str(e.msg, "exchange name 'ex\\xff' is not valid UTF-8",
	       "shown escaped");
}

int
main(void)
{
	test_utf8_base64();
	test_values();
	test_death();
	test_record();
	test_names();
	return tap_done();
}
