/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for event: the PgQ event -> AMQP message mapping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "event.h"
#include "tap.h"

static struct mk_map_ctx ctx;

static void
setup_ctx(void)
{
	memset(&ctx, 0, sizeof(ctx));
	ctx.app_id = "mikkoo";
	ctx.origin = "relay.example.com";
	ctx.user = "mikkoo";
	ctx.persistent = true;
	ctx.max_depth = 32;
	ctx.max_headers = 1024;
	ctx.max_event_bytes = 1 << 20;
	ctx.sequence = 4539586784185129828LL;
	strcpy(ctx.correlation_id, "0ad6b212-4c84-4eb0-8782-9a44bdfe949f");
}

/* An event with the given texts (NULL = SQL NULL). */
static struct mk_event
ev(const char *type, const char *data, const char *x1, const char *x2,
   const char *x3, const char *x4)
{
	struct mk_event e;
	const char *x[4] = { x1, x2, x3, x4 };
	int i;

	memset(&e, 0, sizeof(e));
	e.ev_id = 4;
	e.ev_time_us = 1487830634471682LL; /* 2017-02-23T06:17:14.471682Z */
	e.ev_txid = 41356335556LL;
	e.ev_type = type;
	e.ev_type_len = type ? strlen(type) : 0;
	e.ev_data = data;
	e.ev_data_len = data ? strlen(data) : 0;
	for (i = 0; i < 4; i++) {
		e.extra[i] = x[i];
		e.extra_len[i] = x[i] ? strlen(x[i]) : 0;
	}
	return e;
}

/* Only ev_extra3 and ev_extra4 vary in most checks. */
static struct mk_event
ev34(const char *x3, const char *x4)
{
	return ev("k", "b", "x", NULL, x3, x4);
}

static char *
str(amqp_bytes_t b)
{
	static char buf[8][512];
	static int n;
	char *s = buf[n++ % 8];

	snprintf(s, 512, "%.*s", (int)b.len, (const char *)b.bytes);
	return s;
}

static const amqp_field_value_t *
get(const amqp_table_t *t, const char *key)
{
	int i;

	for (i = 0; i < t->num_entries; i++)
		if (t->entries[i].key.len == strlen(key) &&
		    memcmp(t->entries[i].key.bytes, key, strlen(key)) == 0)
			return &t->entries[i].value;
	return NULL;
}

static const amqp_field_value_t *
hdr(const struct mk_message *m, const char *key)
{
	return get(&m->props.headers, key);
}

static const char *
key_at(const struct mk_message *m, int i)
{
	if (i >= m->props.headers.num_entries)
		return "(none)";
	return str(m->props.headers.entries[i].key);
}

static int
count_key(const struct mk_message *m, const char *key)
{
	int i, n = 0;

	for (i = 0; i < m->props.headers.num_entries; i++)
		if (strcmp(str(m->props.headers.entries[i].key), key) == 0)
			n++;
	return n;
}

static bool
is_utf8(const amqp_field_value_t *v, const char *want)
{
	return v && v->kind == AMQP_FIELD_KIND_UTF8 &&
	       strcmp(str(v->value.bytes), want) == 0;
}

static bool
is_i32(const amqp_field_value_t *v, int32_t want)
{
	return v && v->kind == AMQP_FIELD_KIND_I32 && v->value.i32 == want;
}

static bool
is_i64(const amqp_field_value_t *v, int64_t want)
{
	return v && v->kind == AMQP_FIELD_KIND_I64 && v->value.i64 == want;
}

static struct mk_message m; /* reused by all checks, as the relay does */

/* Map e into m; "(mapped)" or the reason, "(wrong code)" unless DATAERR. */
static const char *
reason(struct mk_event e)
{
	static char buf[1100];
	struct mk_err err;

	if (event_map(&e, &ctx, &m, &err) == 0)
		return "(mapped)";
	snprintf(buf, sizeof(buf), "%s%s",
		 err.code == EX_DATAERR ? "" : "(wrong code) ", err.msg);
	return buf;
}

static void
seed_example(void)
{
	/*
	 * pgq.insert_event('test', 'test.routing-key', '{"foo": "bar"}',
	 *     'postgres', 'application/json', '{"type": "example"}', '')
	 */
	struct mk_event e =
		ev("test.routing-key", "{\"foo\": \"bar\"}", "postgres",
		   "application/json", "{\"type\": \"example\"}", "");

	is_str(reason(e), "(mapped)", "seed README example maps");
	is_str(str(m.exchange), "postgres", "exchange is ev_extra1");
	is_str(str(m.routing_key), "test.routing-key", "routing key ev_type");
	is_str(str(m.body), "{\"foo\": \"bar\"}", "body is ev_data");
	is_int(m.props._flags,
	       AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
		       AMQP_BASIC_CORRELATION_ID_FLAG |
		       AMQP_BASIC_TIMESTAMP_FLAG |
		       AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TYPE_FLAG |
		       AMQP_BASIC_HEADERS_FLAG,
	       "exactly these properties are set");
	is_str(str(m.props.app_id), "mikkoo", "app_id");
	is_str(str(m.props.content_type), "application/json", "content_type");
	is_str(str(m.props.correlation_id),
	       "0ad6b212-4c84-4eb0-8782-9a44bdfe949f", "correlation_id");
	is_str(str(m.props.type), "example", "type from ev_extra3");
	is_int(m.props.timestamp, 1487830634, "timestamp: ev_time seconds");
	is_int(m.props.delivery_mode, 2, "persistent by default");
	is_int(m.props.headers.num_entries, 5, "exactly five headers");
	is_str(key_at(&m, 0), "origin", "header 0 origin");
	is_str(key_at(&m, 1), "sequence", "header 1 sequence");
	is_str(key_at(&m, 2), "timestamp", "header 2 timestamp");
	is_str(key_at(&m, 3), "txid", "header 3 txid");
	is_str(key_at(&m, 4), "event_id", "header 4 event_id");
	ok(is_utf8(hdr(&m, "origin"), "relay.example.com"),
	   "origin is a string, the host");
	ok(is_i64(hdr(&m, "sequence"), 4539586784185129828LL),
	   "sequence is int64");
	ok(is_utf8(hdr(&m, "timestamp"), "2017-02-23T06:17:14.471682+00:00"),
	   "timestamp header is an ISO-8601 string");
	ok(is_i64(hdr(&m, "txid"), 41356335556LL), "txid is int64");
	ok(is_i64(hdr(&m, "event_id"), 4), "event_id is the ev_id, int64");
	is_int(event_id_of(&m.props), 4, "event_id_of reads it back");
	ok(m.json[0] != NULL && m.json[1] == NULL,
	   "ev_extra3 is parsed, an empty ev_extra4 is not");

	e = ev("test.routing-key", "x", "postgres", NULL, NULL, NULL);
	is_str(reason(e), "(mapped)", "an event without extras maps");
	ok(m.json[0] == NULL && m.json[1] == NULL,
	   "no JSON parsed without ev_extra3/ev_extra4");
	e.ev_txid = 7;
	is_str(reason(e), "(mapped)", "small txid maps");
	ok(is_i64(hdr(&m, "txid"), 7), "a small txid is still int64");
}

static void
precedence(void)
{
	const amqp_field_value_t *v;

	is_str(reason(ev("k", "b", "x", "text/plain",
			 "{\"content_type\":\"application/x\","
			 "\"app_id\":\"billing\",\"delivery_mode\":1,"
			 "\"priority\":9,\"expiration\":60000,"
			 "\"timestamp\":42,\"content_encoding\":\"gzip\","
			 "\"correlation_id\":\"c-1\",\"message_id\":\"m-1\","
			 "\"type\":\"t\",\"user_id\":\"mikkoo\","
			 "\"nope\":[1],\"reply_to\":\"q\"}",
			 NULL)),
	       "(mapped)", "every ev_extra3 property at once");
	is_str(str(m.props.content_type), "application/x",
	       "ev_extra3 content_type beats ev_extra2");
	is_str(str(m.props.app_id), "billing", "ev_extra3 app_id wins");
	is_int(m.props.delivery_mode, 1,
	       "ev_extra3 delivery_mode beats persistent");
	is_int(m.props.priority, 9, "priority");
	is_str(str(m.props.expiration), "60000", "integer expiration");
	is_int(m.props.timestamp, 42, "timestamp override");
	is_str(str(m.props.content_encoding), "gzip", "content_encoding");
	is_str(str(m.props.correlation_id), "c-1", "correlation_id wins");
	is_str(str(m.props.message_id), "m-1", "message_id");
	is_str(str(m.props.type), "t", "type");
	is_str(str(m.props.user_id), "mikkoo", "own user_id");
	ok(!(m.props._flags & AMQP_BASIC_REPLY_TO_FLAG),
	   "keys outside the whitelist (reply_to) are ignored");
	ok(is_utf8(hdr(&m, "timestamp"), "2017-02-23T06:17:14.471682+00:00"),
	   "timestamp property override leaves the header alone");

	/* user headers beat the automatic ones; event_id is ours */
	is_str(reason(ev34(NULL, "{\"origin\":\"mine\",\"event_id\":\"spoof\","
				 "\"sequence\":\"s\",\"timestamp\":5,"
				 "\"txid\":null,\"own\":1}")),
	       "(mapped)", "ev_extra4 with automatic names");
	ok(is_utf8(hdr(&m, "origin"), "mine"), "user origin wins");
	ok(is_utf8(hdr(&m, "sequence"), "s"), "user sequence wins");
	ok(is_i32(hdr(&m, "timestamp"), 5), "user timestamp wins");
	v = hdr(&m, "txid");
	ok(v && v->kind == AMQP_FIELD_KIND_VOID, "user txid (null) wins");
	is_int(m.props.headers.num_entries, 6, "no header duplicated");
	is_int(count_key(&m, "event_id"), 1, "one event_id header");
	is_str(key_at(&m, 1), "event_id", "event_id keeps the user's place");
	ok(is_i64(hdr(&m, "event_id"), 4), "event_id is ours, not the spoof");
	is_int(event_id_of(&m.props), 4, "event_id_of sees ours");
	is_str(key_at(&m, 5), "own", "user headers keep their order");

	is_str(reason(ev34(NULL, "{\"a\":1}")), "(mapped)", "ev_extra4 only");
	is_str(key_at(&m, 0), "a", "user headers come first");
	is_str(key_at(&m, 1), "origin", "then the automatic ones");
	is_int(m.props.headers.num_entries, 6, "1 + 5 headers");

	/* ev_extra3 headers replace ev_extra4's table wholesale */
	is_str(reason(ev34("{\"headers\":{\"h3\":1,\"origin\":\"o3\"}}",
			   "{\"h4\":1,\"txid\":\"t4\"}")),
	       "(mapped)", "headers in ev_extra3 and ev_extra4");
	ok(hdr(&m, "h3") && !hdr(&m, "h4"), "ev_extra3 headers replace");
	ok(is_utf8(hdr(&m, "origin"), "o3"), "ev_extra3 header beats origin");
	ok(is_i64(hdr(&m, "txid"), 41356335556LL),
	   "ev_extra4's txid went with its table");
	is_str(reason(ev34("{\"headers\":{}}", "{\"h4\":1}")), "(mapped)",
	       "empty ev_extra3 headers");
	is_int(m.props.headers.num_entries, 5,
	       "an empty table still replaces ev_extra4's");
	is_str(reason(ev34("{\"type\":\"x\"}", "{\"h4\":1}")), "(mapped)",
	       "ev_extra3 without headers");
	ok(hdr(&m, "h4") != NULL, "keeps ev_extra4's headers");
	is_str(reason(ev("k", "b", "x", "", "", "")), "(mapped)",
	       "empty extras are absent");
	ok(!(m.props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG),
	   "empty ev_extra2: no content_type");
	ok(m.json[0] == NULL && m.json[1] == NULL, "and nothing parsed");
}

static void
nulls_and_persistence(void)
{
	is_str(reason(ev("k", NULL, "", "text/plain",
			 "{\"app_id\":null,\"content_type\":null,"
			 "\"correlation_id\":null,\"timestamp\":null,"
			 "\"delivery_mode\":null,\"headers\":null,"
			 "\"content_encoding\":null,\"expiration\":null,"
			 "\"message_id\":null,\"priority\":null,"
			 "\"type\":null,\"user_id\":null}",
			 "{\"h4\":1}")),
	       "(mapped)", "null for every property");
	is_int(m.props._flags, AMQP_BASIC_HEADERS_FLAG,
	       "null unsets every property but headers");
	ok(!hdr(&m, "h4") && hdr(&m, "origin") && hdr(&m, "event_id"),
	   "null headers drop ev_extra4's, the automatic ones stay");
	ok(m.body.len == 0, "NULL ev_data is an empty body");
	ok(m.exchange.len == 0, "'' is the default exchange");

	is_str(reason(ev34("{\"type\":\"a\",\"type2\":null}", NULL)),
	       "(mapped)", "null for an unknown key is ignored");
	ctx.persistent = false;
	is_str(reason(ev34(NULL, NULL)), "(mapped)", "transient event");
	ok(!(m.props._flags & AMQP_BASIC_DELIVERY_MODE_FLAG),
	   "no delivery_mode when not persistent");
	is_str(reason(ev34("{\"delivery_mode\":2}", NULL)), "(mapped)",
	       "transient worker, ev_extra3 asks");
	ok((m.props._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) &&
		   m.props.delivery_mode == 2,
	   "ev_extra3 can still ask for 2");
	ctx.persistent = true;
	is_str(reason(ev34(NULL, NULL)), "(mapped)", "persistent event");
	ok((m.props._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) &&
		   m.props.delivery_mode == 2,
	   "delivery_mode 2 when persistent");
}

static void
values(void)
{
	const amqp_field_value_t *v, *a;
	const amqp_table_t *t;

	is_str(reason(ev34(NULL, "{\"o\":{\"a\":[1,\"s\",2.5,true,false,null,"
				 "{\"x\":{}},[]],\"f\":-0.25},\"e\":{},"
				 "\"u\":\"caf\\u00e9 \\ud83d\\ude00\"}")),
	       "(mapped)", "nested headers map");
	v = hdr(&m, "o");
	ok(v && v->kind == AMQP_FIELD_KIND_TABLE &&
		   v->value.table.num_entries == 2,
	   "object is a table");
	t = v ? &v->value.table : NULL;
	a = t ? get(t, "a") : NULL;
	ok(a && a->kind == AMQP_FIELD_KIND_ARRAY &&
		   a->value.array.num_entries == 8,
	   "array of 8");
	if (a && a->kind == AMQP_FIELD_KIND_ARRAY &&
	    a->value.array.num_entries == 8) {
		amqp_field_value_t *x = a->value.array.entries;

		ok(is_i32(&x[0], 1), "[0] int32");
		ok(is_utf8(&x[1], "s"), "[1] string");
		ok(x[2].kind == AMQP_FIELD_KIND_F64 && x[2].value.f64 == 2.5,
		   "[2] double");
		ok(x[3].kind == AMQP_FIELD_KIND_BOOLEAN && x[3].value.boolean,
		   "[3] true");
		ok(x[4].kind == AMQP_FIELD_KIND_BOOLEAN && !x[4].value.boolean,
		   "[4] false");
		ok(x[5].kind == AMQP_FIELD_KIND_VOID, "[5] null is void");
		ok(x[6].kind == AMQP_FIELD_KIND_TABLE &&
			   x[6].value.table.num_entries == 1 &&
			   x[6].value.table.entries[0].value.kind ==
				   AMQP_FIELD_KIND_TABLE &&
			   x[6].value.table.entries[0]
					   .value.value.table.num_entries == 0,
		   "[6] table in an array, empty table in it");
		ok(x[7].kind == AMQP_FIELD_KIND_ARRAY &&
			   x[7].value.array.num_entries == 0,
		   "[7] empty array");
	}
	v = t ? get(t, "f") : NULL;
	ok(v && v->kind == AMQP_FIELD_KIND_F64 && v->value.f64 == -0.25,
	   "negative double in a nested table");
	v = hdr(&m, "e");
	ok(v && v->kind == AMQP_FIELD_KIND_TABLE &&
		   v->value.table.num_entries == 0,
	   "empty object, empty table");
	ok(is_utf8(hdr(&m, "u"), "caf\xc3\xa9 \xf0\x9f\x98\x80"),
	   "\\u escapes and surrogate pairs become UTF-8");

	/* integers: 32 bits when they fit, else 64; beyond is bad data */
	is_str(reason(ev34(NULL, "{\"a\":2147483647,\"b\":-2147483648,"
				 "\"c\":2147483648,\"d\":-2147483649,"
				 "\"e\":9223372036854775807,"
				 "\"f\":-9223372036854775808,\"g\":1.0,"
				 "\"h\":1e300}")),
	       "(mapped)", "integer edges map");
	ok(is_i32(hdr(&m, "a"), 2147483647), "INT32_MAX is int32");
	ok(is_i32(hdr(&m, "b"), -2147483647 - 1), "INT32_MIN is int32");
	ok(is_i64(hdr(&m, "c"), 2147483648LL), "INT32_MAX + 1 is int64");
	ok(is_i64(hdr(&m, "d"), -2147483649LL), "INT32_MIN - 1 is int64");
	ok(is_i64(hdr(&m, "e"), 9223372036854775807LL), "INT64_MAX");
	ok(is_i64(hdr(&m, "f"), -9223372036854775807LL - 1), "INT64_MIN");
	v = hdr(&m, "g");
	ok(v && v->kind == AMQP_FIELD_KIND_F64 && v->value.f64 == 1.0,
	   "1.0 stays a double");
	v = hdr(&m, "h");
	ok(v && v->kind == AMQP_FIELD_KIND_F64 && v->value.f64 == 1e300,
	   "1e300 is a double");
	is_str(reason(ev34(NULL, "{\"a\":9223372036854775808}")),
	       "ev_extra4 is not valid JSON: too big integer near "
	       "'9223372036854775808' at line 1, column 24",
	       "INT64_MAX + 1 is bad data");
	is_str(reason(ev34(NULL, "{\"a\":-9223372036854775809}")),
	       "ev_extra4 is not valid JSON: too big negative integer near "
	       "'-9223372036854775809' at line 1, column 25",
	       "INT64_MIN - 1 is bad data");
	is_str(reason(ev34(NULL, "{\"a\":1e400}")),
	       "ev_extra4 is not valid JSON: real number overflow near "
	       "'1e400' at line 1, column 10",
	       "1e400 is bad data");
}

static void
json_errors(void)
{
	is_str(reason(ev34("{\"type\":", NULL)),
	       "ev_extra3 is not valid JSON: unexpected token near end of "
	       "file at line 1, column 8",
	       "malformed ev_extra3");
	is_str(reason(ev34(NULL, "{\"a\" 1}")),
	       "ev_extra4 is not valid JSON: ':' expected near '1' at line 1, "
	       "column 6",
	       "malformed ev_extra4");
	is_str(reason(ev34("{}", "{\"a\":1}\n{")),
	       "ev_extra4 is not valid JSON: end of file expected near '{' "
	       "at line 2, column 1",
	       "the line is counted");
	is_str(reason(ev34("[1]", NULL)),
	       "ev_extra3 is not a JSON object (it is an array)",
	       "array ev_extra3");
	is_str(reason(ev34("7", NULL)),
	       "ev_extra3 is not a JSON object (it is an integer)",
	       "number ev_extra3");
	is_str(reason(ev34("null", NULL)),
	       "ev_extra3 is not a JSON object (it is null)", "null ev_extra3");
	is_str(reason(ev34(NULL, "\"s\"")),
	       "ev_extra4 is not a JSON object (it is a string)",
	       "string ev_extra4");
	is_str(reason(ev34(NULL, "true")),
	       "ev_extra4 is not a JSON object (it is a boolean)",
	       "boolean ev_extra4");
	is_str(reason(ev34(NULL, "2.5")),
	       "ev_extra4 is not a JSON object (it is a number)",
	       "real ev_extra4");
	is_str(reason(ev34("{\"a\":1,\"a\":2}", NULL)),
	       "ev_extra3 is not valid JSON: duplicate object key near "
	       "'\"a\"' at line 1, column 10",
	       "duplicate keys");
	is_str(reason(ev34(NULL, "{\"b\":{\"a\":1,\"a\":2}}")),
	       "ev_extra4 is not valid JSON: duplicate object key near "
	       "'\"a\"' at line 1, column 15",
	       "nested duplicate keys");
	is_str(reason(ev34(NULL, "{\"a\":\"\\u0000\"}")),
	       "ev_extra4 is not valid JSON: \\u0000 is not allowed without "
	       "JSON_ALLOW_NUL near '\"\\u0000\"' at line 1, column 13",
	       "\\u0000 refused");
	is_str(reason(ev34(NULL, "{\"a\":\"\xff\"}")),
	       "ev_extra4 is not valid JSON: unable to decode byte 0xff "
	       "near '\"' at line 1, column 6",
	       "invalid UTF-8 refused");
	is_str(reason(ev34(NULL, "{\"a\":\"\xed\xa0\x80\"}")),
	       "ev_extra4 is not valid JSON: unable to decode byte 0xed "
	       "near '\"' at line 1, column 6",
	       "UTF-8 surrogate refused");
	is_str(reason(ev34(NULL, "{\"a\":\"x\x1b\"}")),
	       "ev_extra4 is not valid JSON: control character 0x1b near "
	       "'\"x' at line 1, column 7",
	       "raw control character refused");
	is_str(reason(ev34(NULL, "{\"a\":\x01}")),
	       "ev_extra4 is not valid JSON: invalid token near '\\u0001' at "
	       "line 1, column 6",
	       "jansson's raw token is escaped");
	is_str(reason(ev34(NULL, "{\"a\":\"\\ud800\"}")),
	       "ev_extra4 is not valid JSON: invalid Unicode '\\uD800' near "
	       "'\"\\ud800\"' at line 1, column 13",
	       "lone surrogate escape");
}

static void
properties(void)
{
	char big[300], want[400];

	is_str(reason(ev34("{\"delivery_mode\":\"2\"}", NULL)),
	       "ev_extra3 property 'delivery_mode' must be 1 or 2, not \"2\"",
	       "delivery_mode as a string");
	is_str(reason(ev34("{\"delivery_mode\":3}", NULL)),
	       "ev_extra3 property 'delivery_mode' must be 1 or 2, not 3",
	       "delivery_mode 3");
	is_str(reason(ev34("{\"delivery_mode\":2.0}", NULL)),
	       "ev_extra3 property 'delivery_mode' must be 1 or 2, not 2.0",
	       "delivery_mode 2.0");
	is_str(reason(ev34("{\"priority\":256}", NULL)),
	       "ev_extra3 property 'priority' must be an integer from 0 to "
	       "255, not 256",
	       "priority 256");
	is_str(reason(ev34("{\"priority\":-1}", NULL)),
	       "ev_extra3 property 'priority' must be an integer from 0 to "
	       "255, not -1",
	       "priority -1");
	is_str(reason(ev34("{\"priority\":\"5\"}", NULL)),
	       "ev_extra3 property 'priority' must be an integer from 0 to "
	       "255, not \"5\"",
	       "priority as a string");
	is_str(reason(ev34("{\"priority\":255}", NULL)), "(mapped)",
	       "priority 255");
	is_int(m.props.priority, 255, "priority 255 set");
	is_str(reason(ev34("{\"priority\":0}", NULL)), "(mapped)",
	       "priority 0");
	ok((m.props._flags & AMQP_BASIC_PRIORITY_FLAG) && m.props.priority == 0,
	   "priority 0 set");
	is_str(reason(ev34("{\"type\":5}", NULL)),
	       "ev_extra3 property 'type' must be a string, not 5",
	       "type must be a string");
	is_str(reason(ev34("{\"app_id\":{\"a\":[1]}}", NULL)),
	       "ev_extra3 property 'app_id' must be a string, not "
	       "{\"a\":[1]}",
	       "app_id must be a string");
	is_str(reason(ev34("{\"message_id\":true}", NULL)),
	       "ev_extra3 property 'message_id' must be a string, not true",
	       "message_id must be a string");
	memset(big, 'm', 256);
	big[256] = '\0';
	snprintf(want, sizeof(want), "{\"message_id\":\"%s\"}", big);
	is_str(reason(ev34(want, NULL)),
	       "ev_extra3 property 'message_id' is 256 bytes, over 255",
	       "a 256-byte string property");
	big[255] = '\0';
	snprintf(want, sizeof(want), "{\"message_id\":\"%s\"}", big);
	is_str(reason(ev34(want, NULL)), "(mapped)", "255 bytes are fine");
	is_int(m.props.message_id.len, 255, "all 255 kept");
	is_str(reason(ev34("{\"timestamp\":-1}", NULL)),
	       "ev_extra3 property 'timestamp' must be a non-negative integer "
	       "(epoch seconds), not -1",
	       "negative timestamp");
	is_str(reason(ev34("{\"timestamp\":\"now\"}", NULL)),
	       "ev_extra3 property 'timestamp' must be a non-negative integer "
	       "(epoch seconds), not \"now\"",
	       "string timestamp");
	is_str(reason(ev34("{\"timestamp\":0}", NULL)), "(mapped)",
	       "timestamp 0");
	ok((m.props._flags & AMQP_BASIC_TIMESTAMP_FLAG) &&
		   m.props.timestamp == 0,
	   "timestamp 0 set");
	is_str(reason(ev34("{\"headers\":[1]}", NULL)),
	       "ev_extra3 property 'headers' must be an object, not [1]",
	       "headers must be an object");
	is_str(reason(ev34("{\"headers\":\"{}\"}", NULL)),
	       "ev_extra3 property 'headers' must be an object, not "
	       "\"{}\"",
	       "headers as a string");

	/* expiration: what RabbitMQ accepts, or bad data */
	is_str(reason(ev34("{\"expiration\":\"60000\"}", NULL)), "(mapped)",
	       "expiration string");
	is_str(str(m.props.expiration), "60000", "string kept");
	is_str(reason(ev34("{\"expiration\":4294967295}", NULL)), "(mapped)",
	       "expiration integer at the limit");
	is_str(str(m.props.expiration), "4294967295", "as decimal text");
	is_str(reason(ev34("{\"expiration\":0}", NULL)), "(mapped)",
	       "expiration 0");
	is_str(str(m.props.expiration), "0", "0 as text");
	is_str(reason(ev34("{\"expiration\":\"0004294967295\"}", NULL)),
	       "(mapped)", "leading zeros are fine");
#define EXPIRATION_MUST                                                 \
	"ev_extra3 property 'expiration' must be "                      \
	"milliseconds from 0 to 4294967295 (digits in a string, or an " \
	"integer), not "
	is_str(reason(ev34("{\"expiration\":4294967296}", NULL)),
	       EXPIRATION_MUST "4294967296", "expiration over the limit");
	is_str(reason(ev34("{\"expiration\":\"4294967296\"}", NULL)),
	       EXPIRATION_MUST "\"4294967296\"", "string over the limit");
	is_str(reason(ev34("{\"expiration\":-1}", NULL)), EXPIRATION_MUST "-1",
	       "negative expiration");
	is_str(reason(ev34("{\"expiration\":\"1m\"}", NULL)),
	       EXPIRATION_MUST "\"1m\"", "expiration with a unit");
	is_str(reason(ev34("{\"expiration\":\"\"}", NULL)),
	       EXPIRATION_MUST "\"\"", "empty expiration");
	is_str(reason(ev34("{\"expiration\":1.5}", NULL)),
	       EXPIRATION_MUST "1.5", "real expiration");

	/* user_id must be the relay's user, shown safely */
	is_str(reason(ev34("{\"user_id\":\"root\"}", NULL)),
	       "ev_extra3 property 'user_id' must be the relay's RabbitMQ "
	       "user, not \"root\"",
	       "foreign user_id");
	is_str(reason(ev34("{\"user_id\":\"a\\\"b\\\\c\\nd\\u0001\\u007f\"}",
			   NULL)),
	       "ev_extra3 property 'user_id' must be the relay's RabbitMQ "
	       "user, not \"a\\\"b\\\\c\\nd\\u0001\\u007f\"",
	       "user_id shown with JSON escapes");
	is_str(reason(ev34("{\"user_id\":\"mikkooo\"}", NULL)),
	       "ev_extra3 property 'user_id' must be the relay's RabbitMQ "
	       "user, not \"mikkooo\"",
	       "a longer name is not the user");
	is_str(reason(ev34("{\"user_id\":\"mikkoo\"}", NULL)), "(mapped)",
	       "own user_id is fine");
	is_str(reason(ev34("{\"user_id\":\"root\",\"user_id2\":1,"
			   "\"type\":\"t\"}",
			   NULL)),
	       "ev_extra3 property 'user_id' must be the relay's RabbitMQ "
	       "user, not \"root\"",
	       "checked whatever comes after");
	ctx.allow_user_id = true;
	is_str(reason(ev34("{\"user_id\":\"root\"}", NULL)), "(mapped)",
	       "any user_id with allow_user_id");
	is_str(str(m.props.user_id), "root", "user_id set");
	ctx.allow_user_id = false;
}

/* Long and odd values are cut and escaped in reasons. */
static void
shown_values(void)
{
	char in[400], want[400];
	int i;

	strcpy(in, "{\"delivery_mode\":\"");
	for (i = 0; i < 100; i++)
		strcat(in, "x");
	strcat(in, "\"}");
	strcpy(want, "ev_extra3 property 'delivery_mode' must be 1 or 2, "
		     "not \"");
	for (i = 0; i < 63; i++)
		strcat(want, "x");
	strcat(want, "...");
	is_str(reason(ev34(in, NULL)), want, "a long value is cut at 64");

	strcpy(in, "{\"delivery_mode\":\"");
	for (i = 0; i < 50; i++)
		strcat(in, "\xc3\xa9");
	strcat(in, "\"}");
	strcpy(want, "ev_extra3 property 'delivery_mode' must be 1 or 2, "
		     "not \"");
	for (i = 0; i < 31; i++)
		strcat(want, "\xc3\xa9");
	strcat(want, "...");
	is_str(reason(ev34(in, NULL)), want,
	       "the cut never splits a UTF-8 character");

	is_str(reason(ev34("{\"delivery_mode\":\"\\u0007\\ttab\"}", NULL)),
	       "ev_extra3 property 'delivery_mode' must be 1 or 2, not "
	       "\"\\u0007\\ttab\"",
	       "control characters stay escaped");
	is_str(reason(ev34("{\"delivery_mode\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
			   "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]"
			   "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
			   "]]]]]]]]]]]}",
			   NULL)),
	       "ev_extra3 property 'delivery_mode' must be 1 or 2, not "
	       "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	       "[[...",
	       "a big value is cut too");
}

static void
names_and_sizes(void)
{
	char big[400], key[420];
	char *huge;

	is_str(reason(ev("k", "b", NULL, NULL, NULL, NULL)),
	       "ev_extra1 (exchange) is NULL", "NULL exchange");
	is_str(reason(ev(NULL, "b", "x", NULL, NULL, NULL)),
	       "ev_type (routing key) is NULL", "NULL routing key");
	is_str(reason(ev(NULL, "b", NULL, NULL, NULL, NULL)),
	       "ev_extra1 (exchange) is NULL", "the exchange is checked first");
	memset(big, 'a', 256);
	big[256] = '\0';
	is_str(reason(ev("k", "b", big, NULL, NULL, NULL)),
	       "ev_extra1 (exchange) is 256 bytes, over 255", "long exchange");
	is_str(reason(ev(big, "b", "x", NULL, NULL, NULL)),
	       "ev_type (routing key) is 256 bytes, over 255", "long key");
	is_str(reason(ev("k", "b", "x", big, NULL, NULL)),
	       "ev_extra2 (content type) is 256 bytes, over 255",
	       "long content type");
	big[255] = '\0';
	is_str(reason(ev(big, "b", big, big, NULL, NULL)), "(mapped)",
	       "255-byte exchange, routing key and content type");
	is_str(reason(ev("", "b", "x", NULL, NULL, NULL)), "(mapped)",
	       "an empty routing key is fine");

	/* header names: AMQP field names, 1 to 128 bytes */
	memset(big, 'k', 256);
	big[256] = '\0';
	snprintf(key, sizeof(key), "{\"%s\":1}", big);
	is_str(reason(ev34(NULL, key)),
	       "ev_extra4: header name \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
	       "kkkk...\" is 256 bytes, over 128",
	       "256-byte header name");
	snprintf(key, sizeof(key), "{\"headers\":{\"o\":{\"\\\"%s\":1}}}",
		 big + 1);
	is_str(reason(ev34(key, NULL)),
	       "ev_extra3 'headers': header name \"\\\"kkkkkkkkkkkkkkkkkkkkkkk"
	       "kkkkkkkkkkkkkkkk...\" is 256 bytes, over 128",
	       "256-byte nested name, shown escaped");
	big[129] = '\0';
	snprintf(key, sizeof(key), "{\"x\":{\"%s\":1}}", big);
	is_str(reason(ev34(NULL, key)),
	       "ev_extra4: header name \"kkkkkkkkkkkk"
	       "kkkkkkkkkkkkkkkkkkkkkkkkkkkk...\" is 129 bytes, over 128",
	       "a 129-byte nested name");
	big[128] = '\0';
	snprintf(key, sizeof(key), "{\"%s\":1}", big);
	is_str(reason(ev34(NULL, key)), "(mapped)", "128-byte header name");
	ok(hdr(&m, big) != NULL, "128-byte name kept");
	is_str(reason(ev34(NULL, "{\"\":\"x\"}")),
	       "ev_extra4: a header name "
	       "is empty (AMQP field names are 1 to 128 bytes)",
	       "an empty header name");
	is_str(reason(ev34("{\"headers\":{\"a\":{\"\":1}}}", NULL)),
	       "ev_extra3 'headers': a header name is empty (AMQP field names "
	       "are 1 to 128 bytes)",
	       "an empty nested name");

	/* names RabbitMQ gives meaning to */
	is_str(reason(ev34(NULL, "{\"x-death\":\"x\"}")),
	       "ev_extra4: header "
	       "'x-death' is RabbitMQ's record of dead-lettering: a producer "
	       "may not set it",
	       "x-death refused");
	is_str(reason(ev34(NULL, "{\"x-first-death-exchange\":\"e\"}")),
	       "ev_extra4: header 'x-first-death-exchange' is RabbitMQ's "
	       "record of dead-lettering: a producer may not set it",
	       "x-first-death-exchange refused");
	is_str(reason(ev34(NULL, "{\"x\":{\"x-death\":1},\"x-other\":1}")),
	       "(mapped)", "nested x-death and other x- headers pass");
	is_str(reason(ev34(NULL, "{\"event_id\":\"7\",\"origin\":\"o\"}")),
	       "(mapped)", "event_id and the automatic names are not refused");
	is_int(event_id_of(&m.props), 4,
	       "event_id is the relay's, not the "
	       "producer's");

	/* the event's size: ev_type + ev_data + extras */
	huge = malloc(2000);
	memset(huge, 'x', 1999);
	huge[1999] = '\0';
	ctx.max_event_bytes = 1024;
	is_str(reason(ev("k", huge, "x", NULL, NULL, NULL)),
	       "event is 2001 bytes, over max_event_bytes (1024)",
	       "event size limit");
	huge[1024 - 1 - 1 - 2 - 2 - 2] = '\0'; /* k, x, ab, {}, {} */
	is_str(reason(ev("k", huge, "x", "ab", "{}", "{}")), "(mapped)",
	       "exactly max_event_bytes is fine");
	is_str(reason(ev("k", huge, "x", "ab", "{}", "{ }")),
	       "event is 1025 bytes, over max_event_bytes (1024)",
	       "one byte more is not");
	ctx.max_event_bytes = 1 << 20;
	free(huge);
}

/* "{"d":" + n times open + "1" + n times close + "}" */
static const char *
nested(int n, char open, char close, bool objects)
{
	static char buf[2000];
	int i;

	strcpy(buf, "{\"d\":");
	for (i = 0; i < n; i++) {
		if (objects)
			strcat(buf, "{\"d\":");
		else
			strncat(buf, &open, 1);
	}
	strcat(buf, "1");
	for (i = 0; i < n; i++)
		strncat(buf, &close, 1);
	strcat(buf, "}");
	return buf;
}

static void
limits(void)
{
	char h[200];

	/* the headers table is level 1: 31 more levels fit in 32 */
	is_str(reason(ev34(NULL, nested(31, '[', ']', false))), "(mapped)",
	       "32 levels of arrays");
	is_str(reason(ev34(NULL, nested(32, '[', ']', false))),
	       "ev_extra4: headers are nested deeper than 32 levels",
	       "33 levels of arrays");
	is_str(reason(ev34(NULL, nested(31, '{', '}', true))), "(mapped)",
	       "32 levels of tables");
	is_str(reason(ev34(NULL, nested(32, '{', '}', true))),
	       "ev_extra4: headers are nested deeper than 32 levels",
	       "33 levels of tables");
	snprintf(h, sizeof(h), "{\"headers\":%s}", nested(32, '[', ']', false));
	is_str(reason(ev34(h, NULL)),
	       "ev_extra3 'headers': headers are nested deeper than 32 levels",
	       "depth in ev_extra3 headers");
	ctx.max_depth = 1;
	is_str(reason(ev34(NULL, "{\"a\":1}")), "(mapped)",
	       "max_depth 1: a flat table");
	is_str(reason(ev34(NULL, "{\"a\":[]}")),
	       "ev_extra4: headers are nested deeper than 1 levels",
	       "max_depth 1: no array");
	ctx.max_depth = 32;

	ctx.deny_cc_bcc = true;
	is_str(reason(ev34(NULL, "{\"CC\":[\"a\"]}")),
	       "ev_extra4: header 'CC' (sender-selected routing) is not "
	       "allowed",
	       "CC denied when configured");
	is_str(reason(ev34("{\"headers\":{\"BCC\":[\"a\"]}}", NULL)),
	       "ev_extra3 'headers': header 'BCC' (sender-selected routing) "
	       "is not allowed",
	       "BCC in ev_extra3 headers denied");
	is_str(reason(ev34(NULL, "{\"cc\":1,\"x\":{\"CC\":1}}")), "(mapped)",
	       "only top-level CC/BCC, case-sensitive like RabbitMQ");
	ctx.deny_cc_bcc = false;
	is_str(reason(ev34(NULL, "{\"CC\":[\"a\"],\"BCC\":[\"b\"]}")),
	       "(mapped)", "CC and BCC allowed by default");
	is_str(reason(ev34(NULL, "{\"CC\":\"a\"}")),
	       "ev_extra4: header 'CC' "
	       "must be an array of routing keys (strings of at most 255 "
	       "bytes)",
	       "a CC that is not an array closes no channel");
	is_str(reason(ev34(NULL, "{\"BCC\":[\"a\",1]}")),
	       "ev_extra4: header "
	       "'BCC' must be an array of routing keys (strings of at most "
	       "255 bytes)",
	       "a BCC of other things");

	/* max_headers counts the user's entries, not the automatic ones */
	ctx.max_headers = 2;
	is_str(reason(ev34(NULL, "{\"a\":1,\"b\":2}")), "(mapped)",
	       "max_headers user headers");
	is_int(m.props.headers.num_entries, 7, "plus the five automatic");
	is_str(reason(ev34(NULL, "{\"a\":1,\"b\":2,\"c\":3}")),
	       "ev_extra4: 3 headers, over the limit of 2", "header count");
	is_str(reason(ev34(NULL, "{\"a\":1,\"b\":2,\"event_id\":3}")),
	       "ev_extra4: 3 headers, over the limit of 2",
	       "a user event_id counts");
	is_str(reason(ev34(NULL, "{\"a\":{\"1\":1,\"2\":2,\"3\":3}}")),
	       "(mapped)", "nested tables do not count");
	ctx.max_headers = 0;
	is_str(reason(ev34(NULL, "{}")), "(mapped)",
	       "max_headers 0 allows the automatic ones");
	is_int(m.props.headers.num_entries, 5, "five");
	ctx.max_headers = 1024;
}

/* The arithmetic calendar against libc's, over years 1 to 9999. */
static void
iso_time_vs_gmtime(void)
{
	char b[40], want[40];
	long long t, step = 7919LL * 3600 + 1234567, bad = 0, n = 0;
	struct tm tm;
	time_t s;

	for (t = -62135596800LL; t < 253402300800LL; t += step, n++) {
		s = (time_t)t;
		gmtime_r(&s, &tm);
		snprintf(want, sizeof(want),
			 "%04d-%02d-%02dT%02d:%02d:%02d."
			 "%06lld+00:00",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, n % 1000000);
		event_iso_time(t * 1000000 + n % 1000000, b, sizeof(b));
		if (strcmp(b, want) != 0 && bad++ == 0)
			fprintf(stderr, "# %s != %s\n", b, want);
	}
	ok(bad == 0,
	   "the same as gmtime_r for %lld times from year 1 to "
	   "9999 (%lld differ)",
	   n, bad);
}

static void
iso_time(void)
{
	char b[40];

	event_iso_time(0, b, sizeof(b));
	is_str(b, "1970-01-01T00:00:00.000000+00:00", "epoch");
	event_iso_time(999999, b, sizeof(b));
	is_str(b, "1970-01-01T00:00:00.999999+00:00", "999999 us");
	event_iso_time(1487830634000000LL, b, sizeof(b));
	is_str(b, "2017-02-23T06:17:14.000000+00:00",
	       "always six fractional digits");
	event_iso_time(1487830634471682LL, b, sizeof(b));
	is_str(b, "2017-02-23T06:17:14.471682+00:00", "the seed's time");
	event_iso_time(-1, b, sizeof(b));
	is_str(b, "1969-12-31T23:59:59.999999+00:00", "-1 us floors");
	event_iso_time(-1000000, b, sizeof(b));
	is_str(b, "1969-12-31T23:59:59.000000+00:00", "-1 s exactly");
	event_iso_time(-1500000, b, sizeof(b));
	is_str(b, "1969-12-31T23:59:58.500000+00:00", "-1.5 s");
	event_iso_time(-14182940000001LL, b, sizeof(b));
	is_str(b, "1969-07-20T20:17:39.999999+00:00", "1969");
	event_iso_time(-62135596800000000LL, b, sizeof(b));
	is_str(b, "0001-01-01T00:00:00.000000+00:00", "year 1, padded");
	event_iso_time(253402300799999999LL, b, sizeof(b));
	is_str(b, "9999-12-31T23:59:59.999999+00:00", "year 9999");
	event_iso_time(951782400123456LL, b, sizeof(b));
	is_str(b, "2000-02-29T00:00:00.123456+00:00", "a leap day");
	iso_time_vs_gmtime();
}

static void
event_times(void)
{
	struct mk_event e = ev34(NULL, NULL);

	e.ev_time_us = 1487830634999999LL;
	is_str(reason(e), "(mapped)", "late in a second");
	is_int(m.props.timestamp, 1487830634, "timestamp property floors");
	e.ev_time_us = -1;
	is_str(reason(e), "(mapped)", "a time before 1970 maps");
	ok(!(m.props._flags & AMQP_BASIC_TIMESTAMP_FLAG),
	   "no timestamp property before 1970 (AMQP's is unsigned)");
	ok(is_utf8(hdr(&m, "timestamp"), "1969-12-31T23:59:59.999999+00:00"),
	   "the header still has the time");
	e.ev_time_us = 0;
	is_str(reason(e), "(mapped)", "the epoch maps");
	ok((m.props._flags & AMQP_BASIC_TIMESTAMP_FLAG) &&
		   m.props.timestamp == 0,
	   "timestamp 0 at the epoch");
}

static void
event_ids(void)
{
	amqp_basic_properties_t p;
	amqp_table_entry_t t[2];

	memset(&p, 0, sizeof(p));
	is_int(event_id_of(&p), -1, "no headers: -1");
	p._flags = AMQP_BASIC_HEADERS_FLAG;
	p.headers.entries = t;
	p.headers.num_entries = 1;
	t[0].key = amqp_cstring_bytes("event_ids");
	t[0].value.kind = AMQP_FIELD_KIND_I64;
	t[0].value.value.i64 = 9;
	is_int(event_id_of(&p), -1, "no event_id: -1");
	t[1].key = amqp_cstring_bytes("event_id");
	t[1].value.kind = AMQP_FIELD_KIND_U64;
	t[1].value.value.u64 = 123456789012ULL;
	p.headers.num_entries = 2;
	is_int(event_id_of(&p), 123456789012LL, "u64 event_id");
	t[1].value.kind = AMQP_FIELD_KIND_I32;
	t[1].value.value.i32 = 77;
	is_int(event_id_of(&p), 77, "i32 event_id");
	t[1].value.kind = AMQP_FIELD_KIND_U32;
	t[1].value.value.u32 = 4000000000U;
	is_int(event_id_of(&p), 4000000000LL, "u32 event_id");
	t[1].value.kind = AMQP_FIELD_KIND_I16;
	t[1].value.value.i16 = 300;
	is_int(event_id_of(&p), 300, "i16 event_id");
	t[1].value.kind = AMQP_FIELD_KIND_U16;
	t[1].value.value.u16 = 60000;
	is_int(event_id_of(&p), 60000, "u16 event_id");
	t[1].value.kind = AMQP_FIELD_KIND_I8;
	t[1].value.value.i8 = 5;
	is_int(event_id_of(&p), 5, "i8 event_id");
	t[1].value.kind = AMQP_FIELD_KIND_U8;
	t[1].value.value.u8 = 200;
	is_int(event_id_of(&p), 200, "u8 event_id");
	t[1].value.kind = AMQP_FIELD_KIND_UTF8;
	t[1].value.value.bytes = amqp_cstring_bytes("5");
	is_int(event_id_of(&p), -1, "a string event_id: -1");
	p._flags = 0;
	t[1].value.kind = AMQP_FIELD_KIND_I64;
	is_int(event_id_of(&p), -1, "headers flag unset: -1");
}

/*
 * One message for 10000 events of every shape: the pool's pages are
 * reused, nothing grows (valgrind checks nothing leaks).
 */
static void
reuse(void)
{
	static const char *const x3[] = {
		"{\"type\":\"x\",\"expiration\":5}",        NULL,         "",
		"{\"headers\":{\"a\":[1,2,{\"b\":null}]}}", "{\"type\":",
	};
	static const char *const x4[] = {
		"{\"a\":{\"b\":[1,2,3]},\"s\":\"t\"}",
		NULL,
		"{\"x\":1}",
		"[",
	};
	struct mk_event e;
	struct mk_err err;
	int i, pages = 0, fails = 0, bad = 0;

	for (i = 0; i < 10000; i++) {
		e = ev34(x3[i % 5], x4[i % 4]);
		e.ev_id = i;
		if (event_map(&e, &ctx, &m, &err) != 0)
			bad++;
		else if (event_id_of(&m.props) != i)
			fails++;
		if (i == 99)
			pages = m.pool.pages.num_blocks;
	}
	is_int(fails, 0, "10000 mappings with one message");
	is_int(bad, 10000 / 5 + 10000 / 4 - 10000 / 20, "the bad ones failed");
	is_int(m.pool.pages.num_blocks, pages, "no pool growth after 100");
	ok(pages <= 2, "a page or two for these events (%d)", pages);
	is_int(m.pool.large_blocks.num_blocks, 0, "no large blocks");
}

int
main(void)
{
	setup_ctx();
	message_init(&m);
	seed_example();
	precedence();
	nulls_and_persistence();
	values();
	json_errors();
	properties();
	shown_values();
	names_and_sizes();
	limits();
	iso_time();
	event_times();
	event_ids();
	reuse();
	message_release(&m);
	return tap_done();
}
