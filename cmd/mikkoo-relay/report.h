/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * report: what a worker tells its supervisor for /metrics and /health,
 * over a pipe.
 *
 * Owns: the record (fixed size, under PIPE_BUF so a write is atomic and
 * a read gets whole records), sending it without ever blocking (the
 * pipe's write end is non-blocking; a full pipe skips this report: the
 * counters are totals, so the next one loses nothing), and reading the
 * latest.  The worker sends one as a counters sink (counters.h), and
 * at once when its state changes.
 * Never: logs, keeps state between calls.
 */
#ifndef MIKKOO_REPORT_H
#define MIKKOO_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "prom.h"

enum report_state {
	REPORT_STARTING, /* not connected yet */
	REPORT_RELAYING, /* both servers, the lock: healthy */
	REPORT_DOWN,     /* a server unavailable: why says which */
	REPORT_WAITING,  /* another relay holds the consumer lock */
	REPORT_BLOCKED,  /* RabbitMQ blocked publishing */
	REPORT_REFUSED,  /* RabbitMQ refuses publishes (nacks): the
				   line is held, why says since when */
};

#define REPORT_WHY 256

struct report {
	uint32_t state; /* enum report_state */
	uint32_t pad;
	struct prom_counts c; /* since this worker process started */
	int64_t pending;      /* < 0 unknown */
	double lag;           /* seconds; < 0 unknown */
	double tick_age;      /* seconds since the queue's last tick;
				   < 0 unknown */
	int64_t retained;     /* a slot's retained WAL bytes; < 0 none */
	char why[REPORT_WHY]; /* for states other than RELAYING */
};

_Static_assert(sizeof(struct report) <= 4096, "a report is one atomic "
					      "pipe write");

/* The state's name for /health ("relaying", "down", ...). */
const char *report_state_name(enum report_state s);

/* Write r if the pipe has room: 1 sent, 0 skipped (full), -1 gone. */
int report_send(int fd, const struct report *r);

/*
 * Read every record waiting, keeping the last in *r: 1 got at least
 * one, 0 none waiting, -1 the writer is gone (EOF) or an error.
 */
int report_read(int fd, struct report *r);

#endif
