/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cli: a command's options, written once, and the parsing every main()
 * shares.
 *
 * Owns: the table of a command's options (struct cli_opt), from which
 * getopt's short string, the long options and the --help lines are all
 * made; -h/--help and -V/--version (on stdout, flushed: 74 if that
 * fails); one-line messages for a missing value or an unknown option
 * (64 with the usage lines and "try --help"); numbers and file
 * descriptors taken from option values.
 * Never: exits (main returns the code it is handed), knows what an
 * option means.
 */
#ifndef MIKKOO_CLI_H
#define MIKKOO_CLI_H

#include <getopt.h>
#include <stdbool.h>

struct cli_opt {
	int val;          /* the short letter, or >= 256 for long only */
	const char *name; /* the long name */
	const char *arg;  /* the value's name in --help; NULL: none */
	const char *help; /* one line; "\n" goes on under it */
};

/* Every command has these two; they end its table before { 0 }. */
#define CLI_STD_OPTS                                              \
	{ 'h', "help", NULL, "show this help and exit" },         \
	{                                                         \
		'V', "version", NULL, "show the version and exit" \
	}

struct cli {
	const char *prog;
	const char *usage;          /* "usage: PROG ..." (lines) */
	const char *about;          /* --help: paragraphs before the options */
	const struct cli_opt *opts; /* ends with { 0 } */
	const char *after; /* --help: after the options (exit status) */
};

#define CLI_MAX_OPTS 48

struct cli_parser {
	const struct cli *c;
	char shortopts[2 + 2 * CLI_MAX_OPTS];
	struct option longopts[CLI_MAX_OPTS + 1];
};

enum {
	CLI_END = -1,  /* no more options (optind: the operands) */
	CLI_EXIT = -2, /* main returns *rc: --help, --version, or a
				   usage error already reported */
};

void cli_init(struct cli_parser *p, const struct cli *c);

/* The next option's val, or CLI_END, or CLI_EXIT with *rc set. */
int cli_next(struct cli_parser *p, int argc, char **argv, int *rc);

/*
 * "PROG: error: MESSAGE", the usage lines and "try 'PROG --help' for
 * more" on stderr; returns EX_USAGE.
 */
int cli_usage(const struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * In a main() that frees what it built at a label 'out': report a usage
 * error and go there with rc set to EX_USAGE.
 */
#define CLI_FAIL(rc, c, ...)                        \
	do {                                        \
		(rc) = cli_usage((c), __VA_ARGS__); \
		goto out;                           \
	} while (0)

/* An integer in lo..hi: 0, or -1 (nothing stored). */
int cli_long(const char *s, long lo, long hi, long *out);
/* A number of seconds in lo..hi (decimals allowed): 0, or -1. */
int cli_seconds(const char *s, double lo, double hi, double *out);
/* An open file descriptor's number (--ready-fd): 0, or -1. */
int cli_fd(const char *s, int *out);

#endif
