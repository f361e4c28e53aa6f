/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * httpd: the supervisor's small HTTP server (GET /metrics, /health) on
 * libmicrohttpd, run from the supervisor's own poll loop (no threads:
 * the supervisor forks its workers).
 *
 * Owns: the listening socket (bound to the one configured address, never
 * a wildcard the operator did not write), the daemon and its limits: at
 * most HTTPD_MAX_CONN connections (HTTPD_MAX_PER_IP from one address),
 * HTTPD_TIMEOUT s of silence closes one, HTTPD_MEMORY bytes per
 * connection; only GET and HEAD are answered (405 otherwise), bodies are
 * never read.  A slow or malformed client costs a slot for a few
 * seconds; the workers, separate processes, relay on whatever happens
 * here.
 * Never: knows what the pages say (the handler does), logs.
 */
#ifndef MIKKOO_HTTPD_H
#define MIKKOO_HTTPD_H

#include <stddef.h>

#include "err.h"

#define HTTPD_MAX_CONN 16
#define HTTPD_MAX_PER_IP 8
#define HTTPD_TIMEOUT 5
#define HTTPD_MEMORY (32 * 1024)

/*
 * A page: status code, body (malloc'd, taken over; NULL for none) and
 * its content type.
 */
struct httpd_page {
	int status;
	char *body;
	size_t len;
	const char *type;
};

typedef void (*httpd_handler)(void *arg, const char *path,
			      struct httpd_page *page);

struct httpd;

/*
 * Listen on addr (see listen_parse) and serve with h.  Errors:
 * EX_CONFIG a bad address or not one of this machine's, EX_UNAVAILABLE
 * the port is in use, EX_NOPERM a privileged port, EX_OSERR otherwise.
 */
int httpd_open(struct httpd **out, const char *addr, httpd_handler h, void *arg,
	       struct mk_err *e);
/* The fd to poll for input, and the longest wait before httpd_run. */
int httpd_fd(const struct httpd *d);
int httpd_timeout_ms(struct httpd *d);
/* Accept, read, answer, time out: whatever is due, without blocking. */
void httpd_run(struct httpd *d);
/* NULL is fine. */
void httpd_close(struct httpd *d);

#endif
