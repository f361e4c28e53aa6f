/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests for emit (mikkoo.emit()'s messages, genuine or forged),
 * sbuf's JSON strings (to_json(text)'s escapes) and render's times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "render.h"
#include "sbuf.h"
#include "tap.h"

#define KEY "0123456789abcdef0123456789abcdef"

static int
parse(const char *content, bool tx, struct emit_event *ev, struct mk_err *e)
{
	return emit_parse(EMIT_PREFIX, tx, content, strlen(content), KEY, ev,
			  e);
}

static void
genuine(void)
{
	struct emit_event ev;
	struct mk_err e;

	ok(parse(KEY "6:orders13:order.created8:{\"id\":1}2:ex16:"
		     "application/json-0:",
		 true, &ev, &e) == 1,
	   "parses");
	ok(ev.stream_len == 6 && memcmp(ev.stream, "orders", 6) == 0, "stream");
	ok(ev.len[0] == 13 && memcmp(ev.field[0], "order.created", 13) == 0,
	   "ev_type");
	ok(ev.len[1] == 8 && memcmp(ev.field[1], "{\"id\":1}", 8) == 0,
	   "ev_data");
	ok(ev.field[4] == NULL && ev.field[5] != NULL && ev.len[5] == 0,
	   "NULL is '-', empty is '0:'");
	/* lengths are bytes: a value holding ':' and '-' and UTF-8 */
	ok(parse(KEY "1:s8:a:-\xc3\x85:--2:x:----", true, &ev, &e) == 1 &&
		   ev.len[0] == 8 &&
		   memcmp(ev.field[0], "a:-\xc3\x85:--", 8) == 0 &&
		   ev.len[1] == 2,
	   "lengths in bytes");
	ok(emit_parse("someapp", true, "x", 1, KEY, &ev, &e) == 0,
	   "another prefix is not ours");
	ok(emit_parse(NULL, true, "x", 1, KEY, &ev, &e) == 0, "no prefix");
}

static void
forged(void)
{
	struct emit_event ev;
	struct mk_err e;
	const char *bad[] = {
		"short",
		"0123456789abcdef0123456789abcdee1:s------",
		"0123456789ABCDEF0123456789ABCDEF1:s------",
		NULL,
	};
	int i;

	ok(parse(KEY "1:s------", false, &ev, &e) < 0 && e.code == EX_DATAERR &&
		   strstr(e.msg, "not transactional"),
	   "a non-transactional message is forged: %s", e.msg);
	for (i = 0; bad[i]; i++)
		ok(parse(bad[i], true, &ev, &e) < 0 && e.code == EX_DATAERR &&
			   strstr(e.msg, "forged: ") && !strstr(e.msg, KEY),
		   "no key, or a wrong one: forged (%d)", i);
	ok(emit_parse(EMIT_PREFIX, true, "x", 1, NULL, &ev, &e) < 0 &&
		   e.code == EX_SOFTWARE,
	   "no key to check with");
}

static void
malformed(void)
{
	const char *bad[] = {
		KEY,                /* no stream */
		KEY "-------",      /* NULL stream */
		KEY "1:s-----",     /* a field short */
		KEY "1:s-------",   /* a field too many */
		KEY "1:s------x",   /* bytes after */
		KEY "1:s01:x-----", /* a leading zero */
		KEY "1:s9:x------", /* longer than the content */
		KEY "1:s99999999999999999999999:x-----",
		KEY "1:s1x------", /* no ':' */
		NULL,
	};
	struct emit_event ev;
	struct mk_err e;
	int i;

	for (i = 0; bad[i]; i++)
		ok(parse(bad[i], true, &ev, &e) < 0 && e.code == EX_DATAERR &&
			   !strstr(e.msg, KEY),
		   "malformed %d refused: %s", i, e.msg);
}

static unsigned
rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/*
 * Seeded random contents after the key: seven fields, each NULL or a
 * random length and bytes, half of them with one byte changed: parsed
 * or refused, never read out of bounds.
 */
static void
random_contents(void)
{
	const char alphabet[] = "0123456789:-x";
	unsigned seed = 46, i, f, j, good = 0, bad = 0;
	struct emit_event ev;
	struct mk_err e;
	struct sbuf b = { 0 };

#define RND() rnd(&seed)
	for (i = 0; i < 50000; i++) {
		char *c;

		sbuf_reset(&b);
		sbuf_adds(&b, KEY);
		for (f = 0; f < 7; f++) {
			unsigned n = RND() % 12;

			if (f > 0 && RND() % 4 == 0) {
				sbuf_addc(&b, '-');
				continue;
			}
			sbuf_addf(&b, "%u:", n);
			for (j = 0; j < n; j++)
				sbuf_addc(&b, alphabet[RND() % 13]);
		}
		if (RND() % 2) {
			size_t at =
				EMIT_KEY_LEN + RND() % (b.len - EMIT_KEY_LEN);

			b.p[at] = alphabet[RND() % 13];
		}
		c = malloc(b.len);
		memcpy(c, b.p, b.len);
		if (emit_parse(EMIT_PREFIX, true, c, b.len, KEY, &ev, &e) == 1)
			good++;
		else
			bad++;
		free(c);
	}
#undef RND
	sbuf_release(&b);
	ok(good > 25000 && bad > 0,
	   "50000 random contents (seed 46): %u "
	   "parsed, %u refused",
	   good, bad);
}

static void
json_strings(void)
{
	struct sbuf b = { 0 };

	sbuf_add_json(&b, "a\"b\\c\b\f\n\r\t\x01\x1f\x7f \xc3\x85", 16);
	is_str(b.p, "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xc3\x85\"",
	       "escapes as to_json(text)");
	sbuf_reset(&b);
	sbuf_add_json(&b, "", 0);
	is_str(b.p, "\"\"", "empty");
	sbuf_reset(&b);
	sbuf_addf(&b, "%d-%s", 42, "x");
	is_str(b.p, "42-x", "addf");
	ok(!b.oom, "no allocation failed");
	sbuf_release(&b);
}

static void
times(void)
{
	char buf[40];

	render_time(buf, sizeof(buf), 0);
	is_str(buf, "2000-01-01T00:00:00.000000Z", "PostgreSQL's epoch");
	render_time(buf, sizeof(buf), 540000000000000LL + 123456);
	is_str(buf, "2017-02-10T00:00:00.123456Z", "microseconds kept");
	render_time(buf, sizeof(buf), -1);
	is_str(buf, "1999-12-31T23:59:59.999999Z", "before the epoch");
}

int
main(void)
{
	genuine();
	forged();
	malformed();
	random_contents();
	json_strings();
	times();
	return tap_done();
}
