/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * text: the one rule for bytes that come from data and leave as text
 * (log lines, failure reasons, dead-letter rows, the tools' JSON records,
 * /health).
 *
 * Owns:
 *   - UTF-8 validity, strict as PostgreSQL's: no overlong forms, no
 *     surrogates, nothing over U+10FFFF (reasons end up in text columns,
 *     which refuse anything else);
 *   - cutting only at character boundaries (an invalid byte counts as a
 *     one-byte unit, so a cut never makes bytes invalid that were not);
 *   - which code points are unsafe to show as they are: C0 controls, DEL,
 *     C1 controls, U+2028/U+2029 (line breaks to JavaScript and some
 *     terminals), the bidi embeddings, overrides and isolates (U+202A-E,
 *     U+2066-9) and the marks U+200E/U+200F/U+061C (they reorder what an
 *     operator reads: "Trojan Source");
 *   - the escapes: \n \r \t, \uXXXX for every other unsafe code point,
 *     \xNN for a byte that is not UTF-8, and with TEXT_QUOTE also \" and
 *     \\ (a quoted value cannot be confused with the text around it).
 *     Escaped text is valid UTF-8 with nothing unsafe in it, and escaping
 *     it again without TEXT_QUOTE leaves it unchanged.
 * Never: allocates (except text_json, which returns a jansson value),
 * logs, does I/O.
 */
#ifndef MIKKOO_TEXT_H
#define MIKKOO_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Escape '"' and '\' too (for values quoted inside a message). */
#define TEXT_QUOTE 1u

/* The length of the valid UTF-8 character at p (n bytes left), or 0. */
size_t text_char(const void *p, size_t n);

/* Is s[0..n) valid UTF-8? */
bool text_utf8_ok(const void *s, size_t n);

/* Is this code point unsafe to show raw (see above)? */
bool text_unsafe(uint32_t cp);

/* Is s[0..n) valid UTF-8 with no unsafe code point? */
bool text_safe(const void *s, size_t n);

/*
 * The length of the longest prefix of s[0..n) that is at most max bytes
 * and ends at a character boundary.
 */
size_t text_cut(const void *s, size_t n, size_t max);

/*
 * snprintf's "%s" that never cuts a character in two: copies src into
 * dst (dstsz > 0), NUL-terminated; returns dst.
 */
char *text_copy(char *dst, size_t dstsz, const char *src);

/*
 * Escape at most max_in bytes of src[0..len) into dst (dstsz > 3) as
 * above; when the input is cut (by max_in or by dst's size) the text
 * ends in "...".  Always NUL-terminated; returns dst.
 */
char *text_escape(char *dst, size_t dstsz, const void *src, size_t len,
		  size_t max_in, unsigned flags);

/*
 * A JSON string for bytes that should be text (a reason, a name, a
 * message): the bytes as they are when valid UTF-8, else escaped (\xNN
 * for each invalid byte).  Never NULL unless memory ran out, so a
 * jansson object or array built with it never loses a member silently.
 * For data whose exact bytes matter, delivery.h gives base64 instead.
 */
json_t *text_json(const void *s, size_t n);

#endif
