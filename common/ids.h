/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ids: the per-publish values of the mapping: correlation ids and the
 * "sequence" header.
 *
 * Owns: a buffered getrandom() pool (one syscall per 256 UUIDs) and the
 * process's last sequence value.  Never: fails silently; if the kernel's
 * random source is unavailable, ids_uuid4 aborts (a broken invariant).
 */
#ifndef MIKKOO_IDS_H
#define MIKKOO_IDS_H

/* A random (version 4) UUID as 36 characters plus NUL. */
void ids_uuid4(char out[37]);

/*
 * The next "sequence" header: (milliseconds since 2000-01-01 UTC) << 23,
 * the 1.x "simpleflake" layout, but strictly increasing within the
 * process (the low bits count instead of being random).
 */
long long ids_sequence(void);

#endif
