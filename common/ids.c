/* SPDX-License-Identifier: BSD-3-Clause */
/* ids: UUIDv4 correlation ids and the "sequence" header. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "ids.h"

/* 2000-01-01T00:00:00Z, the 1.x simpleflake epoch. */
#define SEQ_EPOCH_MS 946684800000LL

static unsigned char pool[4096];
static size_t pool_left;

/* A child must not hand out the same UUIDs as its parent. */
static void
forget_pool(void)
{
	pool_left = 0;
}

static void
refill(void)
{
	static bool registered;
	size_t got = 0;
	ssize_t n;

	if (!registered) {
		if (pthread_atfork(NULL, NULL, forget_pool) != 0)
			abort(); /* out of memory at the first UUID */
		registered = true;
	}
	while (got < sizeof(pool)) {
		n = getrandom(pool + got, sizeof(pool) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			abort(); /* no kernel randomness: a broken system */
		}
		got += (size_t)n;
	}
	pool_left = sizeof(pool);
}

void
ids_uuid4(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char *b;
	int i, o = 0;

	if (pool_left < 16)
		refill();
	b = pool + sizeof(pool) - pool_left;
	pool_left -= 16;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

/* Not thread-safe: each relay worker is one single-threaded process. */
long long
ids_sequence(void)
{
	static long long last;
	struct timespec ts;
	long long ms, next;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - SEQ_EPOCH_MS;
	/*
	 * Unsigned, so a clock before 2000 or after 2034 (when ms << 23 no
	 * longer fits) is no undefined behaviour; the max() below then keeps
	 * the values increasing by counting.
	 */
	next = ms < 0 ? 0 : (long long)((uint64_t)ms << 23 & INT64_MAX);
	if (next <= last)
		next = last + 1;
	last = next;
	return next;
}
