/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for fate: every cause, below, at and past max_failures. */
#include <string.h>

#include "fate.h"
#include "text.h"
#include "tap.h"

struct row {
	enum fate_cause cause;
	int ev_retry, max_failures;
	const char *why;
	enum fate_verdict want;
	const char *reason;
	int attempt;
};

static const struct row rows[] = {
	/* confirmed: published, whatever the history */
	{ FATE_ACKED, 0, 10, NULL, FATE_PUBLISHED, "", 0 },
	{ FATE_ACKED, 50, 10, "ignored", FATE_PUBLISHED, "", 0 },
	/* a nack never reaches fate (the relay holds the line); asked
	   anyway, it is a refusal like the others */
	{ FATE_NACKED, 0, 10, "nacked by RabbitMQ", FATE_RETRY,
	  "nacked by RabbitMQ", 1 },
	{ FATE_NACKED, 10, 10, "nacked by RabbitMQ", FATE_DEAD,
	  "nacked by RabbitMQ (attempt 11, max_failures 10)", 11 },
	/* refusals: retried while ev_retry < max_failures */
	{ FATE_RETURNED, 0, 3, "returned by RabbitMQ: 312 NO_ROUTE", FATE_RETRY,
	  "returned by RabbitMQ: 312 NO_ROUTE", 1 },
	{ FATE_RETURNED, 3, 3, "returned by RabbitMQ: 312 NO_ROUTE", FATE_DEAD,
	  "returned by RabbitMQ: 312 NO_ROUTE (attempt 4, "
	  "max_failures 3)",
	  4 },
	{ FATE_RETURNED, 7, 3, "returned by RabbitMQ: 312 NO_ROUTE", FATE_DEAD,
	  "returned by RabbitMQ: 312 NO_ROUTE (attempt 8, "
	  "max_failures 3)",
	  8 },
	{ FATE_CHANNEL_CLOSED, 1, 2, "channel closed by RabbitMQ: 406",
	  FATE_RETRY, "channel closed by RabbitMQ: 406", 2 },
	{ FATE_CHANNEL_CLOSED, 2, 2, "channel closed by RabbitMQ: 406",
	  FATE_DEAD,
	  "channel closed by RabbitMQ: 406 (attempt 3, "
	  "max_failures 2)",
	  3 },
	{ FATE_EXCHANGE_REFUSED, 0, 1,
	  "exchange 'x' cannot be published "
	  "to: 404 NOT_FOUND",
	  FATE_RETRY,
	  "exchange 'x' cannot be "
	  "published to: 404 NOT_FOUND",
	  1 },
	{ FATE_EXCHANGE_REFUSED, 1, 1, "exchange 'x': 404", FATE_DEAD,
	  "exchange 'x': 404 (attempt 2, max_failures 1)", 2 },
	/* max_failures 0: the first refusal is the last */
	{ FATE_RETURNED, 0, 0, "returned by RabbitMQ: 312 NO_ROUTE", FATE_DEAD,
	  "returned by RabbitMQ: 312 NO_ROUTE (attempt 1, "
	  "max_failures 0)",
	  1 },
	/* never publishable: dead at once, reason unchanged */
	{ FATE_BAD_DATA, 0, 10, "ev_extra3 is not a JSON object", FATE_DEAD,
	  "ev_extra3 is not a JSON object", 1 },
	{ FATE_BAD_DATA, 5, 10, "bad", FATE_DEAD, "bad", 6 },
	{ FATE_BAD_DATA, 0, 10,
	  "event is 2048 bytes, over max_event_bytes "
	  "(1024)",
	  FATE_DEAD,
	  "event is 2048 bytes, over max_event_bytes "
	  "(1024)",
	  1 },
	/* NULL ev_retry arrives as -1 from nowhere, and no reason at all */
	{ FATE_RETURNED, -1, 10, NULL, FATE_RETRY, "unknown", 1 },
	{ FATE_NACKED, -1, 10, NULL, FATE_RETRY, "unknown", 1 },
	{ FATE_BAD_DATA, 0, 10, "", FATE_DEAD, "unknown", 1 },
};

int
main(void)
{
	size_t i;
	struct fate f;
	char big[1000];

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		enum fate_verdict v;

		memset(&f, 0x55, sizeof(f));
		v = fate_decide(r->cause, 1000 + (long long)i, r->ev_retry,
				r->max_failures, r->why, &f);
		ok(v == r->want && f.verdict == r->want, "row %zu: %s", i,
		   fate_verdict_name(r->want));
		is_str(f.reason, r->reason, "row's reason");
		is_int(f.attempt, r->attempt, "row's attempt");
		is_int(f.ev_id, 1000 + (long long)i, "row's ev_id");
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fate_decide(FATE_RETURNED, 1, 1, 10, big, &f);
	ok(strlen(f.reason) < FATE_REASON_MAX && strlen(f.reason) > 200 &&
		   strcmp(f.reason + strlen(f.reason) - 3, "...") == 0,
	   "a long reason is cut to fit, not overrun, and says so");
	/* the first defect of issue 17: a 404 reply quoting 35 CJK
	 * characters twice, then a retry suffix, cut anywhere */
	{
		char cjk[1024] = "exchange '";
		int k, bad = 0;

		for (k = 0; k < 35; k++)
			strcat(cjk, "\xe4\xb8\xad");
		strcat(cjk, "' cannot be published to: 404 NOT_FOUND - no "
			    "exchange '");
		for (k = 0; k < 35; k++)
			strcat(cjk, "\xe4\xb8\xad");
		strcat(cjk, "' in vhost '/'");
		for (k = 150; k < (int)strlen(cjk); k++) {
			char cut[1024];

			memcpy(cut, cjk, (size_t)k);
			cut[k] = '\0';
			fate_decide(FATE_EXCHANGE_REFUSED, 1, 1, 1, cut, &f);
			if (!text_safe(f.reason, strlen(f.reason)))
				bad++;
		}
		is_int(bad, 0,
		       "reasons are valid UTF-8 wherever the words "
		       "they quote were cut");
	}
	return tap_done();
}
