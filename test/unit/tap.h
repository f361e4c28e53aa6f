/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tap.h: the unit tests' only framework.  Each test binary prints TAP
 * ("ok N - name" / "not ok N - name" with a diagnostic) and exits 1 if
 * any check failed, so test/05-unit.bats can run it and show the output.
 */
#ifndef MIKKOO_TAP_H
#define MIKKOO_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) \
	do { \
		int pass_ = (cond) ? 1 : 0; /* evaluated once */ \
		tap_n++; \
		if (!pass_) \
			tap_failed++; \
		printf("%sok %d - ", pass_ ? "" : "not ", tap_n); \
		printf(__VA_ARGS__); \
		printf("\n"); \
		if (!pass_) \
			printf("#   %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} while (0)

#define is_str(got, want, name) \
	do { \
		const char *g_ = (got), *w_ = (want); \
		int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
		ok(same_, "%s", name); \
		if (!same_) \
			printf("#   got:  '%s'\n#   want: '%s'\n", \
			       g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
	} while (0)

#define is_int(got, want, name) \
	do { \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		ok(g_ == w_, "%s", name); \
		if (g_ != w_) \
			printf("#   got:  %lld\n#   want: %lld\n", g_, w_); \
	} while (0)

#define has_str(hay, needle, name) \
	do { \
		const char *h_ = (hay), *n_ = (needle); \
		int in_ = h_ && strstr(h_, n_) != NULL; \
		ok(in_, "%s", name); \
		if (!in_) \
			printf("#   '%s'\n#   does not contain '%s'\n", \
			       h_ ? h_ : "(null)", n_); \
	} while (0)

/* A diagnostic line: "# ..." */
#define diag(...) \
	do { \
		printf("#   "); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
