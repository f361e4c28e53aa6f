/* SPDX-License-Identifier: BSD-3-Clause */
/* fate: an event's fate from what happened to it. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "fate.h"
#include "text.h"

/*
 * The reason as safe text (text.h): the broker's words and the data
 * quoted in them may hold any bytes, and the reason goes to a log line,
 * a JSON document and a text column.  Room is kept for the suffix.
 */
static void
set_reason(struct fate *f, const char *why, const char *suffix)
{
	char safe[FATE_REASON_MAX - 64];

	text_escape(safe, sizeof(safe), why, strlen(why), strlen(why), 0);
	snprintf(f->reason, sizeof(f->reason), "%s%s", safe, suffix);
}

static bool
never_publishable(enum fate_cause cause)
{
	return cause == FATE_BAD_DATA;
}

enum fate_verdict
fate_decide(enum fate_cause cause, long long ev_id, int ev_retry,
	    int max_failures, const char *why, struct fate *f)
{
	if (ev_retry < 0)
		ev_retry = 0; /* NULL in PgQ: never failed */
	if (ev_retry > INT_MAX - 1)
		ev_retry = INT_MAX - 1; /* a row written by hand: no overflow */
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
		set_reason(f, why, "");
		return f->verdict = FATE_DEAD;
	}
	if (ev_retry >= max_failures) {
		char suffix[64];

		snprintf(suffix, sizeof(suffix),
			 " (attempt %d, max_failures "
			 "%d)",
			 f->attempt, max_failures);
		set_reason(f, why, suffix);
		return f->verdict = FATE_DEAD;
	}
	set_reason(f, why, "");
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
	case FATE_DEAD:
		return "dead";
	}
	return "?";
}
