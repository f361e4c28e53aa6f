/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer: the confirm tracker driven by arbitrary publish / ack /
 * nack / return (by ev_id, or matched by route: inflight_return_match) /
 * channel-close sequences.  Invariants: pending <=
 * count <= capacity; an event pops once, only when resolved, in publish
 * order; after a channel close everything that was pending has failed.
 */
#include <stdint.h>
#include <stdlib.h>

#include "inflight.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inflight q;
	struct inflight_done d;
	uint64_t tag = 0;
	long long next_ev = 1, last_popped = 0;
	size_t i;

	if (inflight_init(&q, 8) < 0)
		return 0;
	for (i = 0; i + 1 < size; i += 2) {
		uint8_t op = data[i] % 6, arg = data[i + 1];

		switch (op) {
		case 0:
			if (!inflight_full(&q)) {
				inflight_add(&q, ++tag, next_ev++, arg);
				inflight_set_route(&q, arg % 3);
			}
			break;
		case 1:
			inflight_ack(&q, arg % (tag + 2), arg & 1);
			break;
		case 2:
			inflight_nack(&q, arg % (tag + 2), arg & 1, "nack");
			break;
		case 3:
			if (arg & 0x80) {
				/* a return matched by route only (an unreadable
				 * one: ev_id -1), or by ev_id and route */
				long long id = -1, got;

				if (arg & 0x40)
					id = (arg & 0x3f) % (next_ev + 1);
				if (inflight_return_match(&q, id, arg % 3,
							  "ret", &got) &&
				    (got <= 0 || got >= next_ev))
					abort();
			} else {
				inflight_return(&q, arg % (next_ev + 1), "ret");
			}
			break;
		case 4:
			inflight_fail_all(&q, "closed");
			if (inflight_pending(&q) != 0)
				abort();
			tag = 0;
			break;
		case 5:
			while (inflight_pop(&q, &d)) {
				if (d.ev_id <= last_popped)
					abort();
				last_popped = d.ev_id;
			}
			break;
		}
		if (inflight_pending(&q) > inflight_count(&q) ||
		    inflight_count(&q) > 8)
			abort();
	}
	inflight_release(&q);
	return 0;
}
