/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * endpoint: the supervisor's pages, GET /metrics and GET /health, made
 * from what its workers last reported (see report.h).
 *
 * Owns: the health rule and its reasons: a worker is healthy when its
 * process runs, it reported within ENDPOINT_STALE s, it says
 * "relaying" (connected to both servers, holding its lock, RabbitMQ
 * not blocking it), its consumer lag is not over health_max_lag
 * (when set), and a slot worker's slot retains no more WAL than
 * health_max_retained_wal (when set).  /health is 200 when every worker is healthy, else 503;
 * the JSON body names each worker with its state and, if unhealthy,
 * why.  /metrics adds up each queue's earlier worker lives (base) and
 * the running one's totals, so counters never go back on a restart.
 * Never: does I/O.
 */
#ifndef MIKKOO_ENDPOINT_H
#define MIKKOO_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "httpd.h"
#include "prom.h"
#include "report.h"

#define ENDPOINT_STALE 10.0 /* seconds without a report: stuck */

struct endpoint_worker {
	const char *queue;
	bool running; /* its process is alive */
	bool have;    /* rep holds a report of this process */
	struct report rep;
	struct prom_counts base; /* the totals of its earlier processes */
	double report_age;       /* seconds since rep arrived */
	const char *exited;      /* when not running: "exited with ..." */
};

/* The page for path ("/metrics", "/health"; else 404). */
void endpoint_page(const struct endpoint_worker *w, size_t n,
		   double health_max_lag, size_t health_max_retained,
		   const char *path, struct httpd_page *page);

#endif
