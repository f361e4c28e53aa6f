/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * relay: one worker: one PgQ queue and consumer to RabbitMQ.
 *
 * Owns: the batch loop and every event's fate.  A batch is finished
 * only after each of its events was confirmed by RabbitMQ (acked and not
 * returned), put back with pgq retry (failures below max_failures), or
 * copied to mikkoo.dead_letter (bad data at once; refused events after
 * max_failures), and those retries, dead letters and pgq.finish_batch
 * commit in one transaction.  Anything else (a crash, a lost connection,
 * a stop deadline) abandons the batch, which PgQ hands out again:
 * at-least-once, duplicates limited to the open batch.
 * Also owns reconnects with capped exponential backoff, the single-
 * instance advisory lock, the stop drain, and when the counters are
 * reported (counters.h says what they are and where they go).
 * Never: forks (see supervise), parses flags, exits.
 */
#ifndef MIKKOO_RELAY_H
#define MIKKOO_RELAY_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

/*
 * What a worker writes to ready_fd: RELAY_READY once connected and
 * relaying (then it closes the fd); a supervised worker also writes
 * RELAY_WAITING once when a server is unavailable at start and it goes
 * on retrying.
 */
#define RELAY_READY '\n'
#define RELAY_WAITING 'u'

struct relay_opts {
	const char *config_path; /* re-read on SIGHUP when reload is set */
	const struct mk_config *cfg;
	const char *queue;    /* the worker to run */
	int ready_fd;         /* "\n" then close when ready; -1 none */
	bool reload;          /* re-read config_path on SIGHUP */
	bool supervised;      /* a child of supervise: retries servers
				     unavailable at start; its parent logs
				     the config's notices */
	double drain_seconds; /* stop deadline for the open batch */
	int report_fd;        /* struct report records for the
				     supervisor (non-blocking); -1 none */
};

/*
 * Run until SIGTERM/SIGINT (returns 0).  Fails at start (before ready)
 * with the error's code: EX_NOPERM (login refused), EX_CONFIG (mikkoo
 * schema missing, ...), EX_UNAVAILABLE (a server unreachable) unless
 * supervised, when it waits and retries instead.  After a successful
 * start, lost connections are retried forever.
 */
int relay_run(const struct relay_opts *o, struct mk_err *e);

/* Log cfg's notices for worker queue (NULL: all of them). */
void relay_log_notices(const struct mk_config *cfg, const char *queue);

#endif
