/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for text: UTF-8, cuts at boundaries, the escapes. */
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "tap.h"

/* A small seeded generator: the random checks rerun identically. */
static unsigned long long rng = 17;

static unsigned
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng >> 11);
}

/* Random bytes biased towards what breaks text: UTF-8 pieces of every
 * length, controls, bidi marks, cut sequences. */
static size_t
hostile(unsigned char *b, size_t cap)
{
	static const char *const bits[] = {
		"\xe4\xb8\xad",
		"\xf0\x9f\x98\x80",
		"\xcc\x81",
		"\xe2\x80\xae",
		"\xe2\x81\xa6",
		"\xe2\x80\xa8",
		"\xc2\x85",
		"\x1b[31m",
		"\x7f",
		"\n",
		"\\",
		"\"",
		"\xe4\xb8",
		"\xf0\x9f",
		"\xc0\xaf",
		"\xed\xa0\x80",
		"\xf4\x90\x80\x80",
		"\xff",
		"a",
		"\xd8\xb9",
		"\xef\xbb\xbf",
		"\xe2\x80\x8b",
		"\x00",
	};
	size_t n = 0, k = next() % 40, i, l;

	for (i = 0; i < k; i++) {
		const char *s = bits[next() % (sizeof(bits) / sizeof(bits[0]))];

		l = s[0] ? strlen(s) : 1;
		if (n + l > cap)
			break;
		memcpy(b + n, s, l);
		n += l;
	}
	return n;
}

int
main(void)
{
	char buf[64], big[1024];
	unsigned char in[256];
	const char *cjk = "\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad"; /* 中中中 */
	int i, bad_cut = 0, unsafe = 0, not_idem = 0, nulls = 0;

	is_int(text_char("a", 1), 1, "ASCII is one byte");
	is_int(text_char("\xe4\xb8\xad", 3), 3, "CJK is three");
	is_int(text_char("\xe4\xb8", 2), 0, "a cut CJK is no character");
	is_int(text_char("\xc0\xaf", 2), 0, "an overlong form is refused");
	is_int(text_char("\xed\xa0\x80", 3), 0, "a surrogate is refused");
	is_int(text_char("\xf4\x90\x80\x80", 4), 0, "past U+10FFFF refused");
	ok(text_utf8_ok("", 0), "empty is UTF-8");
	ok(!text_utf8_ok("a\xff", 2), "0xff is not UTF-8");

	is_int(text_cut(cjk, 9, 8), 6, "a cut at 8 of 9 CJK bytes backs off");
	is_int(text_cut(cjk, 9, 7), 6, "at 7 too");
	is_int(text_cut(cjk, 9, 6), 6, "at 6 it is a boundary");
	is_int(text_cut(cjk, 9, 9), 9, "no cut when it fits");
	is_int(text_cut("\xff\xff\xff", 3, 2), 2, "invalid bytes are units");
	is_int(text_cut("ab\x80\x80\x80\x80", 6, 4), 4,
	       "stray continuation bytes are units");

	text_copy(buf, 8, cjk);
	is_str(buf, "\xe4\xb8\xad\xe4\xb8\xad", "text_copy never splits");

	text_escape(buf, sizeof(buf), "a\nb\tc\x01\x7f", 7, 99, 0);
	is_str(buf, "a\\nb\\tc\\u0001\\u007f", "controls escaped");
	text_escape(buf, sizeof(buf),
		    "\xc2\x85\xe2\x80\xae\xe2\x80\xa8"
		    "\xe2\x81\xa6",
		    11, 99, 0);
	is_str(buf, "\\u0085\\u202e\\u2028\\u2066", "C1, bidi, U+2028");
	text_escape(buf, sizeof(buf), "x\xff\xe4\xb8", 4, 99, 0);
	is_str(buf, "x\\xff\\xe4\\xb8", "invalid bytes as \\xNN");
	text_escape(buf, sizeof(buf), "a\"b\\c", 5, 99, TEXT_QUOTE);
	is_str(buf, "a\\\"b\\\\c", "TEXT_QUOTE escapes quote and backslash");
	text_escape(buf, sizeof(buf), "a\"b\\c", 5, 99, 0);
	is_str(buf, "a\"b\\c", "without it they stay");
	text_escape(buf, 9, cjk, 9, 99, 0);
	is_str(buf, "\xe4\xb8\xad...", "cut by the output: whole characters");
	text_escape(buf, sizeof(buf), cjk, 9, 4, 0);
	is_str(buf, "\xe4\xb8\xad...", "cut by max_in: whole characters");
	ok(text_safe("caf\xc3\xa9 \xe4\xb8\xad", 9), "plain UTF-8 is safe");
	ok(!text_safe("\xe2\x80\xae", 3), "an override is not");

	/* the promises, on generated hostile input */
	for (i = 0; i < 20000; i++) {
		size_t n = hostile(in, sizeof(in)), c, max = next() % 80 + 4;
		json_t *j;

		c = text_cut(in, n, max);
		if (c > max || (c < n && c > 0 && text_utf8_ok(in, n) &&
				!text_utf8_ok(in, c)))
			bad_cut++;
		text_escape(big, max, in, n, n, (next() & 1) ? TEXT_QUOTE : 0);
		if (!text_safe(big, strlen(big)) || strlen(big) >= max)
			unsafe++;
		{
			char again[1024];

			text_escape(again, sizeof(again), big, strlen(big),
				    sizeof(again), 0);
			if (strcmp(again, big) != 0)
				not_idem++;
		}
		j = text_json(in, n);
		if (j == NULL)
			nulls++;
		json_decref(j);
	}
	is_int(bad_cut, 0, "20000 cuts: within max, valid stays valid");
	is_int(unsafe, 0, "20000 escapes: always safe text that fits");
	is_int(not_idem, 0, "escaping escaped text changes nothing");
	is_int(nulls, 0, "text_json never fails on any bytes");
	return tap_done();
}
