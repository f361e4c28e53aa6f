/* SPDX-License-Identifier: BSD-3-Clause */
/* text: UTF-8 validity, safe cuts and escapes for text made of data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

size_t
text_char(const void *s, size_t n)
{
	const unsigned char *p = s;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, k;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	/* the second byte's range rules out overlongs, surrogates and
	 * code points over U+10FFFF (Unicode's table 3-7) */
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (k = 2; k < len; k++)
		if (p[k] < 0x80 || p[k] > 0xbf)
			return 0;
	return len;
}

static uint32_t
decode(const unsigned char *p, size_t len)
{
	switch (len) {
	case 1:
		return p[0];
	case 2:
		return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
	case 3:
		return (uint32_t)(p[0] & 0x0f) << 12 |
		       (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
	default:
		return (uint32_t)(p[0] & 0x07) << 18 |
		       (uint32_t)(p[1] & 0x3f) << 12 |
		       (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
	}
}

bool
text_utf8_ok(const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		k = text_char(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

bool
text_unsafe(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
	       cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

bool
text_safe(const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] >= 0x20 && p[i] < 0x7f) {
			i++;
			continue;
		}
		k = text_char(p + i, n - i);
		if (k == 0 || text_unsafe(decode(p + i, k)))
			return false;
		i += k;
	}
	return true;
}

size_t
text_cut(const void *s, size_t n, size_t max)
{
	const unsigned char *p = s;
	size_t i, k;

	if (n <= max)
		return n;
	/* back from max to the start of the character that may straddle
	 * it: at most three continuation bytes */
	for (i = max; i > 0 && max - i < 3 && (p[i] & 0xc0) == 0x80; i--)
		;
	k = text_char(p + i, n - i);
	/* inside a valid character: cut before it; anything else at max
	 * is a unit of its own (an invalid byte) or a character's start */
	return k > 0 && i + k > max ? i : max;
}

char *
text_copy(char *dst, size_t dstsz, const char *src)
{
	size_t n = strlen(src);

	if (dstsz == 0)
		return dst;
	n = text_cut(src, n, dstsz - 1);
	memmove(dst, src, n);
	dst[n] = '\0';
	return dst;
}

char *
text_escape(char *dst, size_t dstsz, const void *src, size_t len, size_t max_in,
	    unsigned flags)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = src;
	size_t i = 0, o = 0, n, u;
	char unit[8];

	if (dstsz < 4) {
		if (dstsz)
			dst[0] = '\0';
		return dst;
	}
	while (i < len) {
		n = text_char(p + i, len - i);
		u = 0;
		if (n == 0) {
			unit[u++] = '\\';
			unit[u++] = 'x';
			unit[u++] = hex[p[i] >> 4];
			unit[u++] = hex[p[i] & 15];
			n = 1;
		} else if (p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
			unit[u++] = '\\';
			unit[u++] = p[i] == '\n'   ? 'n'
				    : p[i] == '\r' ? 'r'
						   : 't';
		} else if ((flags & TEXT_QUOTE) &&
			   (p[i] == '"' || p[i] == '\\')) {
			unit[u++] = '\\';
			unit[u++] = (char)p[i];
		} else {
			uint32_t cp = decode(p + i, n);

			if (text_unsafe(cp)) {
				unit[u++] = '\\';
				unit[u++] = 'u';
				unit[u++] = hex[cp >> 12 & 15];
				unit[u++] = hex[cp >> 8 & 15];
				unit[u++] = hex[cp >> 4 & 15];
				unit[u++] = hex[cp & 15];
			}
		}
		/* room for this unit, a later "..." and the NUL */
		if (i + n > max_in || o + (u ? u : n) + 4 > dstsz) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (u) {
			memcpy(dst + o, unit, u);
			o += u;
		} else {
			memcpy(dst + o, p + i, n);
			o += n;
		}
		i += n;
	}
	dst[o] = '\0';
	return dst;
}

json_t *
text_json(const void *s, size_t n)
{
	char *buf;
	json_t *j;

	if (text_utf8_ok(s, n))
		return json_stringn(n ? s : "", n);
	if (n > (SIZE_MAX - 8) / 4)
		return NULL;
	buf = malloc(n * 4 + 8);
	if (buf == NULL)
		return NULL;
	text_escape(buf, n * 4 + 8, s, n, n, 0);
	j = json_string(buf);
	free(buf);
	return j;
}
