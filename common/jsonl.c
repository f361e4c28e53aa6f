/* SPDX-License-Identifier: BSD-3-Clause */
/* jsonl: bounded JSON-lines reading and checked writing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jsonl.h"
#include "text.h"

/* PostgreSQL type OIDs we convert (from pg_type.h, stable). */
#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define OIDOID 26
#define JSONOID 114
#define FLOAT4OID 700
#define FLOAT8OID 701
#define NUMERICOID 1700
#define JSONBOID 3802

void
jsonl_reader_init(struct jsonl_reader *r, FILE *f, const char *name,
		  size_t max_line)
{
	memset(r, 0, sizeof(*r));
	r->f = f;
	r->name = name;
	r->max_line = max_line ? max_line : JSONL_MAX_LINE_DEFAULT;
}

void
jsonl_reader_release(struct jsonl_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

/* Read one line into r->buf (without "\n"); 1, 0 at EOF, -1 error. */
static int
read_line(struct jsonl_reader *r, size_t *len, bool *too_long, struct mk_err *e)
{
	size_t n = 0;
	int c;

	*too_long = false;
	while ((c = getc(r->f)) != EOF) {
		if (c == '\n')
			break;
		if (n >= r->max_line) {
			*too_long = true; /* keep reading: skip it */
			continue;
		}
		if (n + 1 >= r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 4096;
			char *b = realloc(r->buf, cap);

			if (b == NULL)
				return mk_err_set(e, EX_OSERR, "out of memory");
			r->buf = b;
			r->cap = cap;
		}
		r->buf[n++] = (char)c;
	}
	if (ferror(r->f))
		return mk_err_set(e, EX_IOERR, "%s: cannot read: %s", r->name,
				  strerror(errno));
	if (c == EOF && n == 0 && !*too_long)
		return 0;
	r->line++;
	if (r->buf)
		r->buf[n] = '\0';
	*len = n;
	return 1;
}

int
jsonl_read(struct jsonl_reader *r, json_t **out, struct mk_err *e)
{
	json_error_t jerr;
	bool too_long;
	size_t len = 0, i;
	int rc;

	*out = NULL;
	for (;;) {
		rc = read_line(r, &len, &too_long, e);
		if (rc <= 0)
			return rc;
		if (too_long)
			return mk_err_set(e, EX_DATAERR,
					  "%s:%ld:1: line is "
					  "longer than %zu bytes",
					  r->name, r->line, r->max_line);
		for (i = 0; i < len && strchr(" \t\r", r->buf[i]); i++)
			;
		if (i < len)
			break; /* skip blank lines */
	}
	*out = json_loadb(r->buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (*out == NULL)
		return mk_err_set(e, EX_DATAERR, "%s:%ld:%d: %s", r->name,
				  r->line, jerr.column, jerr.text);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return mk_err_set(e, EX_DATAERR,
				  "%s:%ld:1: a record must be "
				  "a JSON object",
				  r->name, r->line);
	}
	return 1;
}

void
jsonl_write(FILE *f, const json_t *v)
{
	static int regular = -1;
	struct stat st;

	if (regular < 0)
		regular = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
	if (json_dumpf(v, f, JSON_COMPACT | JSON_REAL_PRECISION(15)) == 0)
		putc('\n', f);
	/* A pipe reader (jq, head) sees each record when it is made. */
	if (!regular)
		fflush(f);
}

int
jsonl_finish(FILE *f, struct mk_err *e)
{
	int bad = ferror(f);

	if (fclose(f) != 0 || bad)
		return mk_err_set(e, EX_IOERR, "writing output failed: %s",
				  strerror(errno ? errno : EIO));
	return 0;
}

json_t *
jsonl_row(const PGresult *r, int row)
{
	json_t *o = json_object();
	int c, n = PQnfields(r);

	for (c = 0; c < n; c++) {
		const char *v = PQgetvalue(r, row, c);
		json_t *j;

		if (PQgetisnull(r, row, c)) {
			j = json_null();
		} else {
			switch (PQftype(r, c)) {
			case INT2OID:
			case INT4OID:
			case INT8OID:
			case OIDOID:
				j = json_integer(strtoll(v, NULL, 10));
				break;
			case FLOAT4OID:
			case FLOAT8OID:
			case NUMERICOID:
				j = json_real(strtod(v, NULL));
				break;
			case BOOLOID:
				j = json_boolean(v[0] == 't');
				break;
			case JSONOID:
			case JSONBOID:
				j = json_loads(v, JSON_DECODE_ANY, NULL);
				if (j == NULL)
					j = text_json(v, strlen(v));
				break;
			default:
				/* text.h: a database that is not UTF-8
				 * may hand out any bytes */
				j = text_json(v,
					      (size_t)PQgetlength(r, row, c));
				break;
			}
		}
		json_object_set_new(o, PQfname(r, c), j ? j : json_null());
	}
	return o;
}
