/* SPDX-License-Identifier: BSD-3-Clause */
/* dead: the shared dead-letter filter. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dead.h"

void
dead_params(const struct dead_filter *f, const char *v[DEAD_NPARAMS])
{
	v[0] = f->queue;
	v[1] = f->consumer;
	v[2] = f->since;
	v[3] = f->until;
	v[4] = f->routing_key;
	v[5] = f->reason_like;
	v[6] = f->ids;
}

int
dead_option(struct dead_filter *f, char **ids, int opt, const char *arg)
{
	switch (opt) {
	case DEAD_OPT_SINCE:
		f->since = arg;
		return 1;
	case DEAD_OPT_UNTIL:
		f->until = arg;
		return 1;
	case DEAD_OPT_RK:
		f->routing_key = arg;
		return 1;
	case DEAD_OPT_REASON:
		f->reason_like = arg;
		return 1;
	case DEAD_OPT_ID:
		if (dead_add_id(ids, arg) < 0)
			return -1;
		f->ids = *ids;
		return 1;
	default:
		return 0;
	}
}

bool
dead_filtered(const struct dead_filter *f)
{
	return f->queue || f->consumer || f->since || f->until ||
	       f->routing_key || f->reason_like || f->ids;
}

int
dead_add_id(char **list, const char *s)
{
	size_t old = *list ? strlen(*list) : 0;
	char *end, *n;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v <= 0)
		return -1;
	n = realloc(*list, old + 24);
	if (n == NULL)
		return -1;
	/* "{1,2}" + 3 -> "{1,2,3}" */
	if (old == 0)
		snprintf(n, 24, "{%lld}", v);
	else
		snprintf(n + old - 1, 25, ",%lld}", v);
	*list = n;
	return 0;
}

long
dead_count_ids(const char *list)
{
	long n = 1;

	if (list == NULL || strcmp(list, "{}") == 0)
		return 0;
	for (; *list; list++)
		n += *list == ',';
	return n;
}
