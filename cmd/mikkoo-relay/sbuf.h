/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sbuf: a growable byte string for building text piece by piece.
 *
 * Owns: its bytes (always NUL-terminated) and one sticky flag for a
 * failed allocation, checked once at the end instead of after every
 * append.  sbuf_reset keeps the memory for the next round (and clears
 * the flag); sbuf_release frees it.
 */
#ifndef MIKKOO_SBUF_H
#define MIKKOO_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

void sbuf_add(struct sbuf *b, const void *s, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_addf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * s as a JSON string, escaped as PostgreSQL's to_json(text) escapes it
 * (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx, the rest as
 * they are).
 */
void sbuf_add_json(struct sbuf *b, const char *s, size_t n);
void sbuf_reset(struct sbuf *b);
void sbuf_release(struct sbuf *b);

#endif
