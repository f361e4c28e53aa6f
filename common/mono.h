/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mono: the monotonic clock in seconds, for deadlines and backoffs
 * (never the wall clock, which steps).
 */
#ifndef MIKKOO_MONO_H
#define MIKKOO_MONO_H

#include <time.h>

static inline double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
