/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer: the settle path, from what happened to events (a cause, an
 * ev_retry, max_failures and the broker's or the mapping's words, any
 * bytes) through fate_decide to the JSON PostgreSQL receives
 * (pgq_settle_json).  Invariants: every reason fate_decide writes is
 * safe text that fits; the JSON has exactly one member per failure, in
 * order, with its ev_id, verdict flags and reason unchanged; a fate
 * whose reason is not UTF-8 (written by hand, not by fate_decide) makes
 * pgq_settle_json fail, never drop it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fate.h"
#include "pgq.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXF 64

static void
check(const struct fate *f, size_t n, bool expect_ok)
{
	struct mk_err e;
	char *js = NULL;
	json_t *arr;
	size_t i;

	if (pgq_settle_json(f, n, &js, &e) < 0) {
		if (expect_ok)
			abort(); /* refused a settle it must carry */
		return;
	}
	if (!expect_ok)
		abort(); /* carried a reason that is not UTF-8 */
	arr = json_loads(js, 0, NULL);
	if (arr == NULL || !json_is_array(arr) || json_array_size(arr) != n)
		abort();
	for (i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i);
		json_int_t id;
		int dead;
		const char *reason;

		if (json_unpack(o, "{s:I,s:b,s:s}", "ev_id", &id, "dead", &dead,
				"reason", &reason) < 0)
			abort();
		if (id != f[i].ev_id || dead != (f[i].verdict == FATE_DEAD) ||
		    strcmp(reason, f[i].reason) != 0)
			abort();
	}
	json_decref(arr);
	free(js);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fate f[MAXF];
	size_t n = 0, i = 0;
	bool raw_ok = true;

	while (i + 4 <= size && n < MAXF) {
		uint8_t op = data[i], retry = data[i + 1], maxf = data[i + 2];
		size_t len = data[i + 3];
		char why[256];

		i += 4;
		if (len > size - i)
			len = size - i;
		memcpy(why, data + i, len);
		why[len] = '\0'; /* the words end at a NUL, as in C */
		i += len;
		if (op & 0x80) {
			/* a fate written by hand: the reason's bytes raw */
			f[n].ev_id = (long long)n * 1000003 - 7;
			f[n].verdict = (enum fate_verdict)(1 + op % 3);
			f[n].attempt = retry;
			memcpy(f[n].reason, why, strlen(why) + 1);
			if (!text_utf8_ok(why, strlen(why)))
				raw_ok = false;
		} else {
			enum fate_cause cause = (enum fate_cause)(1 + op % 6);

			fate_decide(cause, (long long)n - 3, (int)retry - 1,
				    maxf % 12, why, &f[n]);
			if (f[n].verdict == FATE_PUBLISHED ||
			    strlen(f[n].reason) >= FATE_REASON_MAX ||
			    !text_safe(f[n].reason, strlen(f[n].reason)))
				abort();
		}
		n++;
	}
	check(f, n, raw_ok);
	return 0;
}
