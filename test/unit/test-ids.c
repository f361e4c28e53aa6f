/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for ids: UUIDv4 text and the "sequence" header. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ids.h"
#include "tap.h"

#define NUUID 1000 /* about four pool refills */

static bool
well_formed(const char *u)
{
	int i;

	if (strlen(u) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (u[i] != '-')
				return false;
		} else if (u[i] == '\0' || !strchr("0123456789abcdef", u[i])) {
			return false;
		}
	}
	return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static int
cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
uuids(void)
{
	static char u[NUUID][37];
	int i, bad = 0, dup = 0, nibble[16] = { 0 };

	for (i = 0; i < NUUID; i++) {
		ids_uuid4(u[i]);
		if (!well_formed(u[i])) {
			if (bad++ == 0)
				printf("# malformed: %s\n", u[i]);
		}
		nibble[strchr("0123456789abcdef", u[i][0]) -
		       "0123456789abcdef"]++;
	}
	is_int(bad, 0,
	       "1000 UUIDs: 8-4-4-4-12 lowercase hex, version 4, "
	       "variant 10xx");
	qsort(u, NUUID, sizeof(u[0]), cmp);
	for (i = 1; i < NUUID; i++)
		if (strcmp(u[i - 1], u[i]) == 0)
			dup++;
	is_int(dup, 0, "all distinct");
	for (i = 0; i < 16; i++)
		if (nibble[i] < 20) /* expected 62.5 each */
			break;
	is_int(i, 16, "the first digit takes every value");
}

/* A forked child must not repeat the UUIDs its parent will use. */
static void
uuid_after_fork(void)
{
	char parent[37], child[37] = "";
	int fd[2], status;
	pid_t pid;

	ids_uuid4(parent); /* the pool is full now */
	if (pipe(fd) < 0) {
		ok(0, "pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		ids_uuid4(child);
		_exit(write(fd[1], child, 37) == 37 ? 0 : 1);
	}
	close(fd[1]);
	ok(pid > 0 && read(fd[0], child, 37) == 37, "child made a UUID");
	close(fd[0]);
	waitpid(pid, &status, 0);
	ids_uuid4(parent);
	ok(well_formed(child) && strcmp(parent, child) != 0,
	   "the child's next UUID is not the parent's");
}

static void
sequence(void)
{
	struct timespec ts;
	long long first, prev, next, now_ms;
	int i, down = 0;

	first = prev = ids_sequence();
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 -
		 946684800000LL;
	ok(first > 0 && now_ms - (first >> 23) >= 0 &&
		   now_ms - (first >> 23) < 5000,
	   "sequence >> 23 is ms since 2000-01-01 (%lld vs %lld)", first >> 23,
	   now_ms);
	for (i = 0; i < 200000; i++) {
		next = ids_sequence();
		if (next <= prev)
			down++;
		prev = next;
	}
	is_int(down, 0, "200000 values strictly increasing");
	ok(prev - first >= 200000, "each at least one more");
}

int
main(void)
{
	uuids();
	uuid_after_fork();
	sequence();
	return tap_done();
}
