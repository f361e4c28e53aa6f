/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * daemon: --daemon, for users of the Python mikkoo who do not run a
 * supervisor.  Under s6 or runit, do not use it: they own the process.
 *
 * Owns: detaching (fork, setsid, fork), the pidfile (written and locked
 * by the daemon, so a second copy is refused), dropping root for the
 * Daemon/user account, stdin/stdout on /dev/null.  stderr is kept:
 * redirect it where the log should go.
 * Never: returns in the original process: that one exits 0 once the
 * daemon has its pidfile, or with the daemon's error code.
 */
#ifndef MIKKOO_DAEMON_H
#define MIKKOO_DAEMON_H

#include "err.h"

/* In the daemon: 0.  On failure before detaching: -1 with e. */
int daemon_detach(const char *pidfile, const char *user, struct mk_err *e);

/* Remove the pidfile at exit (if ours). */
void daemon_cleanup(void);

#endif
