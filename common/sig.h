/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sig: signals as flags and a self-pipe, never work in handlers.
 *
 * Owns: the process's TERM/INT/HUP/CHLD dispositions and a pipe whose
 * read end becomes readable when one arrives (for poll loops).
 * Handlers only count and write one byte; callers look at the counts at
 * safe points.  SA_RESTART is off so blocking waits wake up.
 */
#ifndef MIKKOO_SIG_H
#define MIKKOO_SIG_H

#include <stdbool.h>

/* Install handlers for TERM, INT, HUP (and CHLD when want_chld); ignore
 * PIPE.  Returns the self-pipe's read end, or -1. */
int sig_install(bool want_chld);
/* Restore default dispositions (a forked child before it sets up). */
void sig_reset(void);
/* Close the self-pipe (in a forked child). */
void sig_close(void);

/* TERM/INT received so far; the first asks for a drain, the second for
 * an immediate stop. */
int sig_term_count(void);
/* The number of the last TERM/INT, for log lines. */
int sig_term_signo(void);
/* True once per HUP (or burst of HUPs). */
bool sig_hup_take(void);
/* A HUP is waiting to be taken (for waits that should end early). */
bool sig_hup_pending(void);
bool sig_chld_take(void);
/* Empty the self-pipe. */
void sig_drain(void);

#endif
