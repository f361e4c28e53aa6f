/* SPDX-License-Identifier: BSD-3-Clause */
/* mikkoo-insert: events into PgQ, one from flags or many as JSON lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "insert.h"
#include "jsonl.h"
#include "log.h"
#include "tool.h"

#define USAGE                                                                 \
	"usage: mikkoo-insert [conn] -q QUEUE -e EXCHANGE -r KEY [-b BODY]\n" \
	"                     [-t TYPE] [-P K=V]... [-H K=V]... [--audit]\n"  \
	"       mikkoo-insert [conn] [-q QUEUE] --jsonl [--batch N] < FILE"

enum { OPT_AUDIT = 256, OPT_JSONL, OPT_BATCH, OPT_MAX_LINE, OPT_STRICT };

static const struct cli_opt opts[] = {
	TOOL_CONN_OPTS,
	{ 'q', "queue", "QUEUE", "the PgQ queue (default: the worker's)" },
	{ 'e', "exchange", "NAME",
	  "ev_extra1: the exchange ('' is the "
	  "default one)" },
	{ 'r', "routing-key", "K", "ev_type: the routing key" },
	{ 'b', "body", "TEXT", "ev_data: the body ('-' reads standard input)" },
	{ 't', "content-type", "T", "ev_extra2" },
	{ 'P', "property", "K=V",
	  "a property in ev_extra3 (V is JSON or "
	  "text)" },
	{ 'H', "header", "K=V", "a header in ev_extra4 (V is JSON or text)" },
	{ OPT_AUDIT, "audit", NULL,
	  "also write a mikkoo.audit row "
	  "(message_id)" },
	{ OPT_JSONL, "jsonl", NULL, "read events as JSON lines from stdin" },
	{ OPT_BATCH, "batch", "N", "lines per transaction (default 1000)" },
	{ OPT_MAX_LINE, "max-line", "N",
	  "longest input line in bytes "
	  "(default 1 MiB)" },
	{ OPT_STRICT, "strict", NULL, "stop at the first bad line" },
	{ 'n', "dry-run", NULL, "check and show, insert nothing" },
	CLI_STD_OPTS,
	{ 0 },
};

static const struct cli cli = {
	.prog = "mikkoo-insert",
	.usage = USAGE,
	.about =
		"Insert events into a PgQ queue with mikkoo's mapping.  With --jsonl,\n"
		"read one event per line from standard input:\n"
		"  {\"queue\":..,\"exchange\":..,\"routing_key\":..,\"body\":..,\n"
		"   \"content_type\":..,\"properties\":{..},\"headers\":{..},"
		"\"audit\":true}\n"
		"Each chunk of --batch lines is one transaction; a bad line inserts\n"
		"nothing of its chunk.  One result line per input line on stdout:\n"
		"  {\"line\":1,\"ev_id\":42,\"queue\":\"orders\"}\n",
	.opts = opts,
	.after =
		"Exit status: 0 all inserted, 64 usage, 65 a bad line or a refused\n"
		"chunk, 69 PostgreSQL unreachable, 74 output failed, 77 login or\n"
		"permission refused, 78 bad config.  See mikkoo-insert(1).\n",
};

/* K=V into obj: V as JSON when it parses, else as text. */
static int
add_pair(json_t *obj, const char *kv)
{
	const char *eq = strchr(kv, '=');
	json_t *v;
	char *k;

	if (eq == NULL || eq == kv)
		return -1;
	v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
	if (v == NULL)
		v = json_string(eq + 1);
	k = strndup(kv, (size_t)(eq - kv));
	json_object_set_new(obj, k, v);
	free(k);
	return 0;
}

static char *
read_all(FILE *f)
{
	size_t n = 0, cap = 0, got;
	char *buf = NULL, *b;

	do {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			b = realloc(buf, cap);
			if (b == NULL) {
				free(buf);
				return NULL;
			}
			buf = b;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	buf[n] = '\0';
	return buf;
}

/*
 * After a flush or the final collect: a refused chunk is reported and
 * counted (the others go on); anything else ends the run.  0, or the
 * exit code to end with.
 */
static int
settled(int r, struct mk_err *e, int *bad)
{
	if (r == 0)
		return 0;
	log_error("%s", e->msg);
	if (e->code != EX_DATAERR)
		return e->code;
	(*bad)++;
	return 0;
}

/*
 * A chunk of --batch records is one transaction: with a bad line in it,
 * none of it is inserted.
 */
static int
end_chunk(struct inserter *in, bool chunk_bad, long last, int *bad)
{
	struct mk_err e;

	if (chunk_bad) {
		if (inserter_pending(in))
			log_error("lines %ld-%ld not inserted: their chunk has "
				  "a bad line",
				  inserter_first_line(in), last);
		inserter_discard(in);
		return 0;
	}
	return settled(inserter_flush(in, stdout, &e), &e, bad);
}

int
main(int argc, char **argv)
{
	struct tool_conn t = { .prog = "mikkoo-insert" };
	const char *queue = NULL, *exchange = NULL, *rk = NULL, *body = NULL;
	const char *ctype = NULL;
	json_t *props = json_object(), *hdrs = json_object(), *rec = NULL;
	bool audit = false, jsonl = false, dry = false, strict = false;
	long batch = 1000, max_line = JSONL_MAX_LINE_DEFAULT;
	PGconn *pg = NULL;
	struct inserter in;
	struct jsonl_reader rd;
	struct mk_err e;
	char *stdin_body = NULL;
	long in_chunk = 0;
	bool chunk_bad = false;
	struct cli_parser p;
	int opt, rc = 0, bad = 0;

	log_init("mikkoo-insert");
	cli_init(&p, &cli);
	while ((opt = cli_next(&p, argc, argv, &rc)) != CLI_END) {
		if (opt == CLI_EXIT)
			goto out;
		if (tool_option(&t, opt, optarg))
			continue;
		switch (opt) {
		case 'q':
			queue = optarg;
			break;
		case 'e':
			exchange = optarg;
			break;
		case 'r':
			rk = optarg;
			break;
		case 'b':
			body = optarg;
			break;
		case 't':
			ctype = optarg;
			break;
		case 'P':
			if (add_pair(props, optarg) < 0)
				CLI_FAIL(rc, &cli, "-P needs KEY=VALUE");
			break;
		case 'H':
			if (add_pair(hdrs, optarg) < 0)
				CLI_FAIL(rc, &cli, "-H needs KEY=VALUE");
			break;
		case OPT_AUDIT:
			audit = true;
			break;
		case OPT_JSONL:
			jsonl = true;
			break;
		case OPT_STRICT:
			strict = true;
			break;
		case OPT_BATCH:
			if (cli_long(optarg, 1, 100000, &batch) < 0)
				CLI_FAIL(rc, &cli,
					 "--batch must be 1 to 100000");
			break;
		case OPT_MAX_LINE:
			if (cli_long(optarg, 64, 1L << 30, &max_line) < 0)
				CLI_FAIL(rc, &cli,
					 "--max-line must be 64 to 1 GiB");
			break;
		case 'n':
			dry = true;
			break;
		}
	}
	if (optind < argc)
		CLI_FAIL(rc, &cli, "unexpected argument");
	if (jsonl && (exchange || rk || body || ctype || audit ||
		      json_object_size(props) || json_object_size(hdrs)))
		CLI_FAIL(rc, &cli,
			 "--jsonl takes the events from stdin: no "
			 "-e, -r, -b, -t, -P, -H or --audit");
	if (!jsonl && (exchange == NULL || rk == NULL))
		CLI_FAIL(rc, &cli,
			 "give -e EXCHANGE and -r ROUTING_KEY, or "
			 "--jsonl");
	if (tool_setup(&t, &e) < 0) {
		log_error("%s", e.msg);
		return e.code;
	}
	if (queue == NULL)
		queue = tool_queue(&t);
	if (!dry && tool_pg(&t, &pg, &e) < 0) {
		log_error("%s", e.msg);
		rc = e.code;
		goto out;
	}
	if (inserter_init(&in, dry ? NULL : pg) < 0) {
		log_error("out of memory");
		rc = EX_OSERR;
		goto out;
	}

	if (!jsonl) {
		if (body && strcmp(body, "-") == 0) {
			stdin_body = read_all(stdin);
			body = stdin_body;
		}
		rec = json_pack("{s:s,s:s,s:s?,s:s?,s:O,s:O,s:b}", "exchange",
				exchange, "routing_key", rk, "body", body,
				"content_type", ctype, "properties", props,
				"headers", hdrs, "audit", audit);
		if (rec == NULL || inserter_add(&in, 1, rec, queue, &e) < 0) {
			log_error("%s", rec ? e.msg
					    : "arguments are not "
					      "valid UTF-8");
			rc = EX_DATAERR;
		} else if (inserter_flush(&in, stdout, &e) < 0 ||
			   inserter_finish(&in, stdout, &e) < 0) {
			log_error("%s", e.msg);
			rc = e.code;
		}
		goto done;
	}

	jsonl_reader_init(&rd, stdin, "<stdin>", (size_t)max_line);
	for (;;) {
		int r = jsonl_read(&rd, &rec, &e);

		if (r == 0)
			break;
		if (r < 0 && (e.code == EX_IOERR || e.code == EX_OSERR)) {
			log_error("%s", e.msg);
			rc = e.code;
			break;
		}
		in_chunk++;
		if (r > 0 && inserter_add(&in, rd.line, rec, queue, &e) < 0)
			mk_err_prefix(&e, "<stdin>:%ld:1", rd.line);
		else if (r > 0)
			e.msg[0] = '\0';
		json_decref(rec);
		rec = NULL;
		if (e.msg[0]) {
			log_error("%s", e.msg);
			bad++;
			chunk_bad = true;
		}
		if (in_chunk == batch || (chunk_bad && strict)) {
			rc = end_chunk(&in, chunk_bad, rd.line, &bad);
			if (rc != 0)
				break;
			in_chunk = 0;
			chunk_bad = false;
			if (bad && strict)
				break;
		}
	}
	if (rc == 0 && in_chunk > 0)
		rc = end_chunk(&in, chunk_bad, rd.line, &bad);
	if (rc == 0)
		rc = settled(inserter_finish(&in, stdout, &e), &e, &bad);
	jsonl_reader_release(&rd);
	if (rc == 0 && bad)
		rc = EX_DATAERR;
	if (in.inserted || in.failed || bad)
		log_info("%zu events inserted%s", in.inserted,
			 bad ? "; see the errors above" : "");
done:
	inserter_release(&in);
out:
	json_decref(rec);
	json_decref(props);
	json_decref(hdrs);
	free(stdin_body);
	return tool_end(&t, pg, rc);
}
