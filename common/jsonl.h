/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * jsonl: JSON lines in and out, for the tools' pipes.
 *
 * Owns: a bounded line reader (a line over max_line is an error for that
 * line, never split in two), parsing with duplicate keys refused, error
 * positions as "NAME:LINE:COLUMN: message", and the writer: one compact
 * object plus "\n" per record, flushed per record unless the output is a
 * regular file, with write errors reported once at the end (jq's rule:
 * a failed stdout is a failure, exit 74).
 * Never: prints, exits.
 */
#ifndef MIKKOO_JSONL_H
#define MIKKOO_JSONL_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "err.h"

#define JSONL_MAX_LINE_DEFAULT (1024 * 1024)

struct jsonl_reader {
	FILE *f;
	const char *name; /* "<stdin>" */
	size_t max_line;
	long line; /* number of the line last read */
	char *buf;
	size_t cap;
};

void jsonl_reader_init(struct jsonl_reader *r, FILE *f, const char *name,
		       size_t max_line);
void jsonl_reader_release(struct jsonl_reader *r);

/*
 * Read the next non-empty line: 1 with *out (caller decrefs), 0 at end of
 * input, -1 with e: EX_DATAERR for a bad line (reading may go on),
 * EX_IOERR when the input cannot be read.
 */
int jsonl_read(struct jsonl_reader *r, json_t **out, struct mk_err *e);

/* Write v as one line; errors are collected for jsonl_finish. */
void jsonl_write(FILE *f, const json_t *v);

/* ferror + fclose: 0, or -1 with EX_IOERR "writing output failed: ...". */
int jsonl_finish(FILE *f, struct mk_err *e);

/*
 * Row row of r as a JSON object, keys in column order: int2/4/8 become
 * integers, float and numeric numbers, bool true/false, json/jsonb parsed
 * JSON, NULL null, anything else a string.  New reference.
 */
json_t *jsonl_row(const PGresult *r, int row);

#endif
