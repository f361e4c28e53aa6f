/* SPDX-License-Identifier: BSD-3-Clause */
/* ids: UUIDv4 correlation ids and the "sequence" header. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "ids.h"

/* 2000-01-01T00:00:00Z, the 1.x simpleflake epoch. */
#define SEQ_EPOCH_MS 946684800000LL

static unsigned char pool[4096];
static size_t pool_left;

static void
refill(void)
{
	size_t got = 0;

	while (got < sizeof(pool)) {
		ssize_t n = getrandom(pool + got, sizeof(pool) - got, 0);

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
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
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
	ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	next = (ms - SEQ_EPOCH_MS) << 23;
	if (next <= last)
		next = last + 1;
	last = next;
	return next;
}
