/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * supervise: the parent of the per-queue worker processes.
 *
 * Owns: one child per configured queue (each runs relay_run), their
 * readiness (reported to --ready-fd once all are ready), restarts with
 * exponential backoff (1 s doubling to 60 s, reset after a minute of
 * uptime), SIGHUP reloads (changed workers restarted, removed ones
 * stopped, new ones started; a bad file keeps the running config),
 * and shutdown: TERM/INT is passed on, children get drain + 5 s, then
 * SIGKILL (safe: an unfinished batch is handed out again).
 * Never: touches PostgreSQL or RabbitMQ itself.
 *
 * A worker that fails before it was ever ready with a usage, config,
 * permission or unavailable error stops everything, and that code
 * becomes the exit status: the supervisor above us (s6, runit) then
 * sees the real problem instead of a restart loop here.
 */
#ifndef MIKKOO_SUPERVISE_H
#define MIKKOO_SUPERVISE_H

#include "config.h"
#include "err.h"

struct supervise_opts {
	const char *config_path;
	struct mk_config *cfg; /* taken over: released by supervise_run */
	int ready_fd;          /* -1 for none */
	double drain_seconds;
};

/* 0 after a requested stop; else -1 with the failing worker's code. */
int supervise_run(struct supervise_opts *o, struct mk_err *e);

#endif
