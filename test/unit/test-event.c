/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for event: the PgQ event -> AMQP message mapping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	e.ev_time_us = 1487830634471682LL;      /* 2017-02-23T06:17:14.471682Z */
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
hdr(const struct mk_message *m, const char *key)
{
	int i;

	for (i = 0; i < m->props.headers.num_entries; i++)
		if (strcmp(str(m->props.headers.entries[i].key), key) == 0)
			return &m->props.headers.entries[i].value;
	return NULL;
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

static void
seed_example(void)
{
	struct mk_event e = ev("test.routing-key", "{\"foo\": \"bar\"}",
			       "postgres", "application/json",
			       "{\"type\": \"example\"}", "");
	struct mk_message m;
	struct mk_err err;
	const amqp_field_value_t *v;
	amqp_flags_t f;

	message_init(&m);
	ok(event_map(&e, &ctx, &m, &err) == 0, "seed README example maps");
	is_str(str(m.exchange), "postgres", "exchange is ev_extra1");
	is_str(str(m.routing_key), "test.routing-key", "routing key ev_type");
	is_str(str(m.body), "{\"foo\": \"bar\"}", "body is ev_data");
	f = m.props._flags;
	is_str(str(m.props.app_id), "mikkoo", "app_id");
	is_str(str(m.props.content_type), "application/json", "content_type");
	is_str(str(m.props.correlation_id),
	       "0ad6b212-4c84-4eb0-8782-9a44bdfe949f", "correlation_id");
	is_str(str(m.props.type), "example", "type from ev_extra3");
	is_int(m.props.timestamp, 1487830634, "timestamp: ev_time seconds");
	ok((f & AMQP_BASIC_DELIVERY_MODE_FLAG) && m.props.delivery_mode == 2,
	   "persistent by default");
	ok(!(f & AMQP_BASIC_MESSAGE_ID_FLAG), "no message_id unless given");
	v = hdr(&m, "origin");
	ok(v && v->kind == AMQP_FIELD_KIND_UTF8 &&
	   strcmp(str(v->value.bytes), "relay.example.com") == 0, "origin");
	v = hdr(&m, "sequence");
	ok(v && v->kind == AMQP_FIELD_KIND_I64 &&
	   v->value.i64 == 4539586784185129828LL, "sequence is int64");
	v = hdr(&m, "timestamp");
	ok(v && v->kind == AMQP_FIELD_KIND_UTF8, "timestamp header string");
	is_str(v ? str(v->value.bytes) : NULL,
	       "2017-02-23T06:17:14.471682+00:00", "timestamp header text");
	v = hdr(&m, "txid");
	ok(v && v->kind == AMQP_FIELD_KIND_I64 &&
	   v->value.i64 == 41356335556LL, "txid is int64");
	v = hdr(&m, "event_id");
	ok(v && v->kind == AMQP_FIELD_KIND_I64 && v->value.i64 == 4,
	   "event_id is the ev_id");
	is_int(event_id_of(&m.props), 4, "event_id_of reads it back");
	is_int(m.props.headers.num_entries, 5, "exactly five headers");
	message_release(&m);
}

static void
precedence(void)
{
	struct mk_event e;
	struct mk_message m;
	struct mk_err err;
	const amqp_field_value_t *v;

	message_init(&m);
	e = ev("k", "b", "x", "text/plain",
	       "{\"content_type\":\"application/x\",\"app_id\":\"billing\","
	       "\"delivery_mode\":1,\"priority\":9,\"expiration\":60000,"
	       "\"timestamp\":42,\"nope\":[1]}",
	       "{\"origin\":\"mine\",\"txid\":\"t\",\"event_id\":\"spoof\","
	       "\"n\":2147483648,\"small\":-5,\"f\":2.5,\"b\":true,"
	       "\"z\":null,\"o\":{\"a\":[1,\"s\"]}}");
	ok(event_map(&e, &ctx, &m, &err) == 0, "precedence event maps");
	is_str(str(m.props.content_type), "application/x",
	       "ev_extra3 content_type beats ev_extra2");
	is_str(str(m.props.app_id), "billing", "ev_extra3 app_id wins");
	is_int(m.props.delivery_mode, 1, "ev_extra3 delivery_mode wins");
	is_int(m.props.priority, 9, "priority");
	is_str(str(m.props.expiration), "60000", "integer expiration");
	is_int(m.props.timestamp, 42, "timestamp override");
	v = hdr(&m, "origin");
	is_str(v ? str(v->value.bytes) : NULL, "mine", "user origin wins");
	v = hdr(&m, "txid");
	ok(v && v->kind == AMQP_FIELD_KIND_UTF8, "user txid wins (string)");
	ok(hdr(&m, "sequence") && hdr(&m, "timestamp"),
	   "missing automatic headers still added");
	is_int(count_key(&m, "event_id"), 1, "one event_id header");
	is_int(event_id_of(&m.props), 4, "event_id is ours, not the spoof");
	v = hdr(&m, "n");
	ok(v && v->kind == AMQP_FIELD_KIND_I64, "2^31 is int64");
	v = hdr(&m, "small");
	ok(v && v->kind == AMQP_FIELD_KIND_I32 && v->value.i32 == -5,
	   "small int is int32");
	v = hdr(&m, "f");
	ok(v && v->kind == AMQP_FIELD_KIND_F64 && v->value.f64 == 2.5,
	   "float is a double");
	v = hdr(&m, "b");
	ok(v && v->kind == AMQP_FIELD_KIND_BOOLEAN && v->value.boolean,
	   "bool");
	v = hdr(&m, "z");
	ok(v && v->kind == AMQP_FIELD_KIND_VOID, "null is void");
	v = hdr(&m, "o");
	ok(v && v->kind == AMQP_FIELD_KIND_TABLE &&
	   v->value.table.num_entries == 1 &&
	   v->value.table.entries[0].value.kind == AMQP_FIELD_KIND_ARRAY &&
	   v->value.table.entries[0].value.value.array.num_entries == 2,
	   "nested table with an array");

	/* ev_extra3 headers replace ev_extra4's table wholesale */
	e = ev("k", "b", "x", NULL, "{\"headers\":{\"h3\":1}}", "{\"h4\":1}");
	ok(event_map(&e, &ctx, &m, &err) == 0, "headers in ev_extra3");
	ok(hdr(&m, "h3") && !hdr(&m, "h4"), "ev_extra3 headers replace");
	ok(!(m.props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG),
	   "NULL ev_extra2: no content_type");

	/* null unsets; persistent off */
	ctx.persistent = false;
	e = ev("k", NULL, "", "", "{\"app_id\":null,\"headers\":null}",
	       "{\"h4\":1}");
	ok(event_map(&e, &ctx, &m, &err) == 0, "null values map");
	ok(!(m.props._flags & AMQP_BASIC_APP_ID_FLAG), "null unsets app_id");
	ok(!hdr(&m, "h4") && hdr(&m, "origin"),
	   "null headers drop ev_extra4's, automatic ones stay");
	ok(!(m.props._flags & AMQP_BASIC_DELIVERY_MODE_FLAG),
	   "transient when not persistent");
	ok(m.body.len == 0, "NULL ev_data is an empty body");
	ok(m.exchange.len == 0, "'' is the default exchange");
	ctx.persistent = true;
	message_release(&m);
}

/* The reason of a bad event, or "(mapped)". */
static const char *
reason(struct mk_event e)
{
	static char buf[1100];
	struct mk_message m;
	struct mk_err err;

	message_init(&m);
	if (event_map(&e, &ctx, &m, &err) == 0) {
		strcpy(buf, "(mapped)");
	} else {
		snprintf(buf, sizeof(buf), "%s%s", err.code == EX_DATAERR ? ""
			 : "(wrong code) ", err.msg);
	}
	message_release(&m);
	return buf;
}

static void
bad_data(void)
{
	char big[300], deep[200], key[320], *huge;
	int i;

	is_str(reason(ev("k", "b", NULL, NULL, NULL, NULL)),
	       "ev_extra1 (exchange) is NULL", "NULL exchange");
	is_str(reason(ev(NULL, "b", "x", NULL, NULL, NULL)),
	       "ev_type (routing key) is NULL", "NULL routing key");
	memset(big, 'a', 256);
	big[256] = '\0';
	is_str(reason(ev("k", "b", big, NULL, NULL, NULL)),
	       "ev_extra1 (exchange) is 256 bytes, over 255", "long exchange");
	is_str(reason(ev(big, "b", "x", NULL, NULL, NULL)),
	       "ev_type (routing key) is 256 bytes, over 255", "long key");
	has_str(reason(ev("k", "b", "x", NULL, "{\"type\":", NULL)),
		"ev_extra3 is not valid JSON: ", "malformed ev_extra3");
	has_str(reason(ev("k", "b", "x", NULL, "{\"type\":", NULL)),
		"at line 1, column", "the JSON error is located");
	is_str(reason(ev("k", "b", "x", NULL, "[1]", NULL)),
	       "ev_extra3 is not a JSON object (it is an array)",
	       "array ev_extra3");
	is_str(reason(ev("k", "b", "x", NULL, NULL, "\"s\"")),
	       "ev_extra4 is not a JSON object (it is a string)",
	       "string ev_extra4");
	has_str(reason(ev("k", "b", "x", NULL, "{\"a\":1,\"a\":2}", NULL)),
		"duplicate object key", "duplicate keys");
	has_str(reason(ev("k", "b", "x", NULL, NULL, "{\"a\":\"\\u0000\"}")),
		"ev_extra4 is not valid JSON", "NUL escape refused");
	has_str(reason(ev("k", "b", "x", NULL, NULL, "{\"a\":\"\xff\"}")),
		"ev_extra4 is not valid JSON", "invalid UTF-8 refused");
	has_str(reason(ev("k", "b", "x", NULL, NULL,
			  "{\"a\":99999999999999999999}")),
		"ev_extra4 is not valid JSON", "too big integer");
	is_str(reason(ev("k", "b", "x", NULL, "{\"delivery_mode\":\"2\"}",
			 NULL)),
	       "ev_extra3 property 'delivery_mode' must be 1 or 2, not \"2\"",
	       "delivery_mode as a string");
	is_str(reason(ev("k", "b", "x", NULL, "{\"priority\":256}", NULL)),
	       "ev_extra3 property 'priority' must be an integer from 0 to "
	       "255, not 256", "priority range");
	is_str(reason(ev("k", "b", "x", NULL, "{\"type\":5}", NULL)),
	       "ev_extra3 property 'type' must be a string, not 5",
	       "type must be a string");
	is_str(reason(ev("k", "b", "x", NULL, "{\"timestamp\":-1}", NULL)),
	       "ev_extra3 property 'timestamp' must be a non-negative integer "
	       "(epoch seconds), not -1", "negative timestamp");
	is_str(reason(ev("k", "b", "x", NULL, "{\"headers\":[1]}", NULL)),
	       "ev_extra3 property 'headers' must be an object, not [1]",
	       "headers must be an object");
	has_str(reason(ev("k", "b", "x", NULL, "{\"user_id\":\"root\"}",
			  NULL)),
		"ev_extra3 property 'user_id' 'root' is not the relay's "
		"RabbitMQ user", "foreign user_id");
	is_str(reason(ev("k", "b", "x", NULL, "{\"user_id\":\"mikkoo\"}",
			 NULL)), "(mapped)", "own user_id is fine");
	/* nesting: 33 levels of arrays */
	for (i = 0; i < 40; i++)
		deep[i] = '[';
	deep[40] = '\0';
	strcpy(big, "{\"d\":");
	strcat(big, deep);
	for (i = 0; i < 40; i++)
		strcat(big, "]");
	strcat(big, "}");
	is_str(reason(ev("k", "b", "x", NULL, NULL, big)),
	       "ev_extra4: headers are nested deeper than 32 levels",
	       "depth limit");
	memset(big, 'k', 256);
	big[256] = '\0';
	snprintf(key, sizeof(key), "{\"%s\":1}", big);
	has_str(reason(ev("k", "b", "x", NULL, NULL, key)),
		"bytes, over 255", "256-byte header name");
	ctx.deny_cc_bcc = true;
	is_str(reason(ev("k", "b", "x", NULL, NULL, "{\"CC\":[\"a\"]}")),
	       "ev_extra4: header 'CC' (sender-selected routing) is not "
	       "allowed", "CC denied when configured");
	ctx.deny_cc_bcc = false;
	is_str(reason(ev("k", "b", "x", NULL, NULL, "{\"CC\":[\"a\"]}")),
	       "(mapped)", "CC allowed by default");
	ctx.max_headers = 2;
	is_str(reason(ev("k", "b", "x", NULL, NULL, "{\"a\":1,\"b\":2,"
			 "\"c\":3}")),
	       "ev_extra4: 3 headers, over the limit of 2", "header count");
	ctx.max_headers = 1024;
	huge = malloc(2000);
	memset(huge, 'x', 1999);
	huge[1999] = '\0';
	ctx.max_event_bytes = 1024;
	has_str(reason(ev("k", huge, "x", NULL, NULL, NULL)),
		"over max_event_bytes (1024)", "event size limit");
	ctx.max_event_bytes = 1 << 20;
	free(huge);
}

static void
iso_time(void)
{
	char b[40];

	event_iso_time(0, b, sizeof(b));
	is_str(b, "1970-01-01T00:00:00.000000+00:00", "epoch");
	event_iso_time(1487830634000000LL, b, sizeof(b));
	is_str(b, "2017-02-23T06:17:14.000000+00:00",
	       "always six fractional digits");
	event_iso_time(999999, b, sizeof(b));
	is_str(b, "1970-01-01T00:00:00.999999+00:00", "999999 us");
	event_iso_time(-1, b, sizeof(b));
	is_str(b, "1969-12-31T23:59:59.999999+00:00", "before 1970 floors");
}

static void
reuse(void)
{
	struct mk_event e = ev("k", "b", "x", "t", "{\"type\":\"x\"}",
			       "{\"a\":{\"b\":[1,2,3]}}");
	struct mk_message m;
	struct mk_err err;
	int i, fails = 0;

	message_init(&m);
	for (i = 0; i < 10000; i++)
		if (event_map(&e, &ctx, &m, &err) != 0)
			fails++;
	is_int(fails, 0, "10000 mappings with one message (pool reused)");
	message_release(&m);
}

int
main(void)
{
	setup_ctx();
	seed_example();
	precedence();
	bad_data();
	iso_time();
	reuse();
	return tap_done();
}
