/* SPDX-License-Identifier: BSD-3-Clause */
/* emit: mikkoo.emit()'s messages, genuine or forged. */
#include <string.h>

#include "emit.h"

/* '-' or LEN ':' BYTES at *p; advances *p.  0, or -1 if malformed. */
static int
field(const char **p, const char *end, const char **out, size_t *len)
{
	const char *s = *p;
	size_t n = 0;

	if (s >= end)
		return -1;
	if (*s == '-') {
		*out = NULL;
		*len = 0;
		*p = s + 1;
		return 0;
	}
	if (*s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] != ':'))
		return -1;
	while (s < end && *s >= '0' && *s <= '9') {
		if (n > ((size_t)-1 - 9) / 10)
			return -1;
		n = n * 10 + (size_t)(*s - '0');
		s++;
	}
	if (s >= end || *s != ':' || (size_t)(end - s - 1) < n)
		return -1;
	*out = s + 1;
	*len = n;
	*p = s + 1 + n;
	return 0;
}

int
emit_parse(const char *prefix, bool transactional, const char *content,
	   size_t len, const char *key, struct emit_event *ev, struct mk_err *e)
{
	const char *p, *end = content + len;
	unsigned char diff = 0;
	size_t i;

	if (prefix == NULL || strcmp(prefix, EMIT_PREFIX) != 0)
		return 0;
	if (!transactional)
		return mk_err_set(e, EX_DATAERR,
				  "forged: a message with "
				  "prefix '" EMIT_PREFIX "' that is not "
				  "transactional (mikkoo.emit() writes only "
				  "transactional ones)");
	if (key == NULL || strlen(key) != EMIT_KEY_LEN)
		return mk_err_set(e, EX_SOFTWARE,
				  "no emit key to check "
				  "messages with");
	if (len < EMIT_KEY_LEN)
		return mk_err_set(e, EX_DATAERR,
				  "forged: a message with "
				  "prefix '" EMIT_PREFIX "' without the emit "
				  "key (not written by mikkoo.emit())");
	for (i = 0; i < EMIT_KEY_LEN; i++)
		diff |= (unsigned char)(content[i] ^ key[i]);
	if (diff)
		return mk_err_set(e, EX_DATAERR,
				  "forged: a message with "
				  "prefix '" EMIT_PREFIX "' without the emit "
				  "key (not written by mikkoo.emit())");
	p = content + EMIT_KEY_LEN;
	if (field(&p, end, &ev->stream, &ev->stream_len) < 0 ||
	    ev->stream == NULL)
		return mk_err_set(e, EX_DATAERR,
				  "malformed message of "
				  "mikkoo.emit() at byte %zu: no stream",
				  (size_t)(p - content));
	for (i = 0; i < 6; i++)
		if (field(&p, end, &ev->field[i], &ev->len[i]) < 0)
			return mk_err_set(e, EX_DATAERR,
					  "malformed message "
					  "of mikkoo.emit() at byte %zu",
					  (size_t)(p - content));
	if (p != end)
		return mk_err_set(e, EX_DATAERR,
				  "malformed message of "
				  "mikkoo.emit(): %zu bytes after its fields",
				  (size_t)(end - p));
	return 1;
}
