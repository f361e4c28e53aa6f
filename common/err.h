/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * err: the one way an error travels up from deep code to main().
 *
 * Owns: struct mk_err, a sysexits code plus one human message.
 * Never: prints or exits.  Functions that can fail take a struct mk_err *
 * as their last argument and return -1 (or NULL) after filling it in, so
 * callers write `return mk_err_set(e, EX_CONFIG, "...")`.
 *
 * Messages follow git: lowercase, no full stop, the error first, the
 * subject quoted: "cannot open 'x.yml': No such file or directory".
 */
#ifndef MIKKOO_ERR_H
#define MIKKOO_ERR_H

#include <sysexits.h>

/* 1 is the "no" answer of a tool (mikkoo-audit found missing events). */
#define MK_EX_NO 1

struct mk_err {
	int code; /* exit code main() should use: EX_* from sysexits.h */
	char msg[1024];
};

/* Fill in e (if not NULL); always returns -1. */
int mk_err_set(struct mk_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend "CONTEXT: " to e->msg, keeping its code; always returns -1. */
int mk_err_prefix(struct mk_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void mk_err_clear(struct mk_err *e);

#endif
