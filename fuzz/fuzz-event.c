/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer: the event mapping.  The input is split at NUL bytes into
 * ev_extra3, ev_extra4, the exchange and the routing key; every
 * mapping must either succeed with a complete message or fail with a
 * bad-data reason, never crash, leak or touch memory it does not own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mk_message m;
	static int ready;
	struct mk_map_ctx ctx = {
		.app_id = "mikkoo",
		.origin = "fuzz",
		.user = "mikkoo",
		.persistent = true,
		.max_depth = 32,
		.max_headers = 64,
		.max_event_bytes = 1 << 20,
		.sequence = 1,
		.correlation_id = "0ad6b212-4c84-4eb0-8782-9a44bdfe949f",
		.deny_cc_bcc = size % 2,
	};
	const char *part[4] = { NULL, NULL, "ex", "rk" };
	size_t len[4] = { 0, 0, 2, 2 };
	struct mk_event ev = { .ev_id = 1, .ev_time_us = (long long)size * 7 };
	struct mk_err e;
	char *copy = malloc(size + 1);
	size_t i, start = 0;
	int k = 0;

	if (!ready) {
		message_init(&m);
		ready = 1;
	}
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (i = 0; i <= size && k < 4; i++)
		if (i == size || copy[i] == '\0') {
			part[k] = copy + start;
			len[k++] = i - start;
			start = i + 1;
		}
	ev.extra[2] = part[0];
	ev.extra_len[2] = len[0];
	ev.extra[3] = part[1];
	ev.extra_len[3] = len[1];
	ev.extra[0] = part[2];
	ev.extra_len[0] = len[2];
	ev.ev_type = part[3];
	ev.ev_type_len = len[3];
	ev.ev_data = "body";
	ev.ev_data_len = 4;
	if (event_map(&ev, &ctx, &m, &e) == 0) {
		/* a mapped message carries our event_id, always */
		if (event_id_of(&m.props) != 1)
			abort();
	} else if (e.code != EX_DATAERR || e.msg[0] == '\0') {
		abort();
	}
	free(copy);
	return 0;
}
