/* SPDX-License-Identifier: BSD-3-Clause */
/* audit: match a confirming queue against mikkoo.audit. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "jsonl.h"

#define CHUNK 500

static bool
is_uuid(const char *s)
{
	int i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/*
 * Delete the rows of ids (a uuid[] literal), commit, then ack every
 * delivery up to tag: in that order, so a crash never loses a row.
 */
static int
settle(PGconn *pg, struct broker *mq, const char *ids, size_t n, uint64_t tag,
       struct audit_stats *st, struct mk_err *e)
{
	const char *v[] = { ids };
	PGresult *r;

	if (n > 0) {
		r = pg_exec(pg,
			    "DELETE FROM mikkoo.audit"
			    " WHERE message_id = ANY($1::uuid[])",
			    1, v, "deleting audit rows", e);
		if (r == NULL)
			return -1;
		st->confirmed += atol(PQcmdTuples(r));
		PQclear(r);
	}
	return tag ? broker_ack(mq, tag, true, e) : 0;
}

/*
 * The RabbitMQ side failed with e: when the connection is gone, move to
 * the next node (tool.h) and consume again.  What was received and not
 * yet settled is forgotten: it was not acknowledged, so it comes again
 * (and a row deleted but not acknowledged finds its row gone: counted
 * as seen before).  0 moved, -1 not (e).
 */
static int
move_on(struct tool_mq *mq, const struct audit_opts *o, struct mk_err *e)
{
	if (!tool_mq_lost(mq) || tool_mq_move(mq, e, e) < 0)
		return -1;
	return broker_consume(mq->b, o->amqp_queue, CHUNK, e);
}

static int
drain(PGconn *pg, struct tool_mq *mq, const struct audit_opts *o,
      struct audit_stats *st, struct mk_err *e)
{
	struct broker_msg m;
	char *ids = malloc(CHUNK * 38 + 3);
	size_t n = 0, len = 0;
	uint64_t last = 0;
	long in_chunk = 0, odd_in_chunk = 0;
	int rc;

	if (ids == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	while (broker_consume(mq->b, o->amqp_queue, CHUNK, e) < 0)
		if (move_on(mq, o, e) < 0)
			goto fail;
	ids[len++] = '{';
	for (;;) {
		rc = broker_get(mq->b, o->idle_ms, &m, e);
		if (rc < 0) {
			if (move_on(mq, o, e) < 0)
				goto fail;
			/* the unsettled chunk comes again */
			st->consumed -= in_chunk;
			st->unaudited -= odd_in_chunk;
			in_chunk = odd_in_chunk = 0;
			n = 0;
			len = 1;
			last = 0;
			continue;
		}
		if (rc > 0) {
			st->consumed++;
			in_chunk++;
			last = m.tag;
			if (m.has_id && is_uuid(m.message_id)) {
				len += (size_t)sprintf(ids + len, "%s%s",
						       n ? "," : "",
						       m.message_id);
				n++;
			} else {
				st->unaudited++;
				odd_in_chunk++;
			}
		}
		if (rc == 0 || n == CHUNK ||
		    (last && st->consumed % CHUNK == 0) ||
		    (o->max_messages && st->consumed >= o->max_messages)) {
			long before = st->confirmed;

			ids[len] = '}';
			ids[len + 1] = '\0';
			if (settle(pg, mq->b, ids, n, last, st, e) < 0) {
				/* the rows are deleted (committed); the
				 * messages come again and find them gone */
				if (PQstatus(pg) != CONNECTION_OK ||
				    move_on(mq, o, e) < 0)
					goto fail;
				st->consumed -= in_chunk;
				st->unaudited -= odd_in_chunk;
			} else {
				st->unaudited +=
					(long)n - (st->confirmed - before);
			}
			n = 0;
			len = 1;
			last = 0;
			in_chunk = odd_in_chunk = 0;
		}
		if (rc == 0 ||
		    (o->max_messages && st->consumed >= o->max_messages))
			break;
	}
	free(ids);
	return 0;
fail:
	free(ids);
	return -1;
}

struct sink {
	FILE *out;
	struct audit_stats *st;
};

static int
write_missing(void *arg, const PGresult *r)
{
	struct sink *k = arg;
	json_t *rec = jsonl_row(r, 0);

	jsonl_write(k->out, rec);
	json_decref(rec);
	k->st->missing++;
	return 0;
}

/* The missing rows, streamed: a large backlog is not held in memory. */
static int
report(PGconn *pg, const struct audit_opts *o, FILE *out,
       struct audit_stats *st, struct mk_err *e)
{
	static const char sql[] =
		"SELECT a.message_id::text AS message_id, a.event_id,"
		" a.queue, a.exchange, a.routing_key,"
		" to_char(a.published_at AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS published_at,"
		" round(extract(epoch FROM now() - a.published_at))::int8"
		"  AS age_seconds,"
		" d.id AS dead_letter_id, d.reason AS dead_letter_reason"
		" FROM mikkoo.audit a LEFT JOIN mikkoo.dead_letter d"
		"  ON d.queue = a.queue AND d.ev_id = a.event_id"
		" WHERE a.published_at < now() - make_interval(secs => $1)"
		" AND ($2::text IS NULL OR a.queue = $2)"
		" ORDER BY a.published_at, a.event_id";
	char grace[32];
	const char *v[] = { grace, o->pgq_queue };
	struct sink k = { out, st };

	snprintf(grace, sizeof(grace), "%.3f", o->grace);
	st->missing = 0;
	return pg_stream(pg, sql, 2, v, "reading mikkoo.audit", write_missing,
			 &k, e);
}

int
audit_run(PGconn *pg, struct tool_mq *mq, const struct audit_opts *o, FILE *out,
	  struct audit_stats *st, struct mk_err *e)
{
	memset(st, 0, sizeof(*st));
	if (o->amqp_queue && drain(pg, mq, o, st, e) < 0)
		return -1;
	return report(pg, o, out, st, e);
}
