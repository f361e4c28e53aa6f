/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * statsd: fire-and-forget UDP counters with the original mikkoo's names.
 *
 * Owns: one UDP socket and the name prefix
 * "<prefix>[.<short hostname>].<queue>." (the 1.x layout).
 * Never: blocks, fails the caller, or retries: metrics are best effort.
 * Counters are aggregated by the caller (per batch), not sent per event.
 */
#ifndef MIKKOO_STATSD_H
#define MIKKOO_STATSD_H

#include "config.h"

struct statsd;

/* NULL when statsd is disabled or cannot be set up (see *why). */
struct statsd *statsd_open(const struct mk_statsd_config *c, const char *queue,
			   char *why, size_t whysz);
void statsd_close(struct statsd *s);
void statsd_count(struct statsd *s, const char *name, long long n);
void statsd_gauge(struct statsd *s, const char *name, long long v);
void statsd_timing(struct statsd *s, const char *name, double ms);

#endif
