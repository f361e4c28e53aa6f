/* SPDX-License-Identifier: BSD-3-Clause */
/* lsn: WAL positions as text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "lsn.h"

const char *
lsn_format(mk_lsn lsn, char *buf, size_t sz)
{
	snprintf(buf, sz, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32),
		 (uint32_t)lsn);
	return buf;
}

static int
half(const char *s, size_t n, uint32_t *out)
{
	uint32_t v = 0;
	size_t i;

	if (n == 0 || n > 8)
		return -1;
	for (i = 0; i < n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;

		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

int
lsn_parse(const char *s, mk_lsn *out)
{
	const char *slash;
	uint32_t hi, lo;
	size_t n;

	if (s == NULL)
		return -1;
	for (slash = s; *slash && *slash != '/'; slash++)
		;
	if (*slash != '/')
		return -1;
	for (n = 0; slash[1 + n]; n++)
		;
	if (half(s, (size_t)(slash - s), &hi) < 0 ||
	    half(slash + 1, n, &lo) < 0)
		return -1;
	*out = (mk_lsn)hi << 32 | lo;
	return 0;
}
