/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lsn: a WAL position (PostgreSQL's pg_lsn) and its text "X/Y".
 */
#ifndef MIKKOO_LSN_H
#define MIKKOO_LSN_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t mk_lsn;

/* "16/B374D848" as PostgreSQL prints it; buf of at least 18 bytes. */
const char *lsn_format(mk_lsn lsn, char *buf, size_t sz);

/* Parse "X/Y" (each 1 to 8 hex digits); 0, or -1. */
int lsn_parse(const char *s, mk_lsn *out);

#endif
