/* SPDX-License-Identifier: BSD-3-Clause */
/* The canary password the fuzz targets plant, and where it may show. */
#ifndef MIKKOO_FUZZ_CANARY_H
#define MIKKOO_FUZZ_CANARY_H

#include <stdint.h>
#include <string.h>

#define CANARY "S3cr3t-CANARY"

/*
 * True when every copy of the canary in the input sits where a secret
 * goes (after "password: " or as URL userinfo ":...@"); a canary the
 * fuzzer moved into a key name may rightly be quoted in an error.
 */
/* A YAML value on its line: "://" and ": " (or "- ") come before d[i]. */
static inline int
scheme_on_line(const uint8_t *d, size_t i)
{
	int scheme = 0, value = 0;

	while (i >= 3 && d[i - 1] != '\n') {
		if (memcmp(d + i - 3, "://", 3) == 0)
			scheme = 1;
		/* "key: value", or "- value" in a list */
		if ((d[i - 2] == ':' || d[i - 2] == '-') && d[i - 1] == ' ')
			value = 1;
		i--;
	}
	return scheme && value;
}

/*
 * need_scheme is for YAML input: there "password: CANARY" is a secret,
 * and ":CANARY@" counts as userinfo only in a value holding a
 * "scheme://" URL.  For a bare URL only ":CANARY@" is.
 */
static inline int
canary_only_secret(const uint8_t *d, size_t n, int need_scheme)
{
	size_t cl = strlen(CANARY), i, seen = 0;

	for (i = 0; i + cl <= n; i++) {
		if (memcmp(d + i, CANARY, cl) != 0)
			continue;
		seen++;
		if (need_scheme && i >= 10 &&
		    memcmp(d + i - 10, "password: ", 10) == 0)
			continue;
		if (i >= 1 && d[i - 1] == ':' && i + cl < n &&
		    d[i + cl] == '@' && (!need_scheme || scheme_on_line(d, i)))
			continue;
		return 0;
	}
	return seen > 0;
}

#endif
