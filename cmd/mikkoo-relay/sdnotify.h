/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sdnotify: systemd's service notification protocol (Type=notify),
 * spoken without libsystemd.
 *
 * Owns: the NOTIFY_SOCKET address (a path, or "@name" in the abstract
 * namespace), taken from the environment once and removed from it so
 * that nothing started later (the worker processes) speaks for the
 * service; the datagram socket; sending "KEY=VALUE" lines as one
 * datagram (READY=1, RELOADING=1, STOPPING=1, STATUS=...).  Sending
 * never blocks: a datagram that does not fit is lost, as with
 * sd_notify().
 * Never: logs, retries, decides when the service is ready.
 */
#ifndef MIKKOO_SDNOTIFY_H
#define MIKKOO_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/*
 * Read and unset NOTIFY_SOCKET.  0: open, or nothing to do (unset);
 * -1 with e when the address is unusable (the caller warns and goes on
 * without it: systemd then times the start out and says so).
 */
int sdnotify_open(struct mk_err *e);
/* True when there is somewhere to send to. */
bool sdnotify_on(void);
/*
 * Send one datagram of "KEY=VALUE" lines (fmt, printf-style; at most
 * SDNOTIFY_MAX bytes, longer text is cut at a line's end or at the
 * limit).  0 sent or nothing to do, -1 with e.
 */
#define SDNOTIFY_MAX 2048
int sdnotify(struct mk_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The monotonic clock in microseconds, for RELOADING's MONOTONIC_USEC. */
unsigned long long sdnotify_monotonic_usec(void);
/*
 * Forget the socket without sending (a forked child: only the parent
 * speaks for the service).
 */
void sdnotify_close(void);

#endif
