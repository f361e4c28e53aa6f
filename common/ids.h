/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ids: the per-publish values of the mapping: correlation ids and the
 * "sequence" header.
 *
 * Owns: a buffered getrandom() pool (one syscall per 256 UUIDs; a forked
 * child starts with an empty one) and the process's last sequence value.
 * Never: fails silently; if the kernel's random source is unavailable,
 * ids_uuid4 aborts (a broken invariant).  Not thread-safe: each relay
 * worker is one single-threaded process.
 */
#ifndef MIKKOO_IDS_H
#define MIKKOO_IDS_H

/* A random (version 4) UUID as 36 characters plus NUL. */
void ids_uuid4(char out[37]);

/*
 * The next "sequence" header: (milliseconds since 2000-01-01 UTC) << 23,
 * the 1.x "simpleflake" layout, but strictly increasing within the
 * process (the low bits count instead of being random):
 * next = max(last + 1, now_ms << 23), CLOCK_REALTIME, so a clock stepping
 * back only slows it to counting.  ms << 23 fills 63 bits in late 2034;
 * from then on it only counts.
 */
long long ids_sequence(void);

#endif
