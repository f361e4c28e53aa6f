/* SPDX-License-Identifier: BSD-3-Clause */
/* fate: an event's fate from what happened to it. */
#include <stdio.h>

#include "fate.h"

static bool
never_publishable(enum fate_cause cause)
{
	return cause == FATE_BAD_DATA || cause == FATE_OVERSIZED;
}

enum fate_verdict
fate_decide(enum fate_cause cause, long long ev_id, int ev_retry,
	    int max_failures, const char *why, struct fate *f)
{
	if (ev_retry < 0)
		ev_retry = 0;   /* NULL in PgQ: never failed */
	f->ev_id = ev_id;
	f->attempt = ev_retry + 1;
	f->reason[0] = '\0';
	if (why == NULL || why[0] == '\0')
		why = "unknown";
	if (cause == FATE_ACKED) {
		f->attempt = 0;
		return f->verdict = FATE_PUBLISHED;
	}
	if (never_publishable(cause)) {
		snprintf(f->reason, sizeof(f->reason), "%s", why);
		return f->verdict = FATE_DEAD;
	}
	if (cause == FATE_NACKED) {
		f->attempt = ev_retry;
		snprintf(f->reason, sizeof(f->reason), "%s", why);
		return f->verdict = FATE_REQUEUE;
	}
	if (ev_retry >= max_failures) {
		snprintf(f->reason, sizeof(f->reason), "%s (attempt %d, "
			 "max_failures %d)", why, f->attempt, max_failures);
		return f->verdict = FATE_DEAD;
	}
	snprintf(f->reason, sizeof(f->reason), "%s", why);
	return f->verdict = FATE_RETRY;
}

const char *
fate_verdict_name(enum fate_verdict v)
{
	switch (v) {
	case FATE_PUBLISHED:
		return "published";
	case FATE_RETRY:
		return "retry";
	case FATE_REQUEUE:
		return "requeue";
	case FATE_DEAD:
		return "dead";
	}
	return "?";
}
