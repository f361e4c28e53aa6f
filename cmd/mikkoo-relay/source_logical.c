/* SPDX-License-Identifier: BSD-3-Clause */
/* source_logical: a replication slot's events as the pipeline's source. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mono.h"
#include "pg.h"
#include "source_logical.h"
#include "text.h"

/* An event's state in the open batch. */
enum {
	ST_SEND,  /* to hand out (again) */
	ST_DONE,  /* confirmed, or a committed dead letter */
	ST_RETRY, /* refused for itself: the retry round sends it again */
};

/* Forged bytes are stored escaped and cut: never published anyway. */
#define DEAD_ESCAPED_MAX 8192

static void
lose(struct source_logical *s)
{
	source_logical_close(s);
}

static int
failed(struct source_logical *s, struct mk_err *e)
{
	(void)e;
	lose(s);
	return -1;
}

int
source_logical_open(struct source_logical *s, struct mk_err *e)
{
	if (s->lg)
		return 0;
	s->have = false;
	s->n = 0;
	return logical_open(&s->lg, &s->cfg, e);
}

bool
source_logical_alive(const struct source_logical *s)
{
	return s->lg != NULL;
}

struct logical *
source_logical_handle(struct source_logical *s)
{
	return s->lg;
}

int
source_logical_service(struct source_logical *s, struct mk_err *e)
{
	if (s->lg == NULL)
		return 0;
	if (logical_service(s->lg, e) < 0)
		return failed(s, e);
	return 0;
}

void
source_logical_close(struct source_logical *s)
{
	logical_close(s->lg);
	s->lg = NULL;
	s->have = false;
	s->n = 0;
	s->pos = 0;
}

void
source_logical_release(struct source_logical *s)
{
	source_logical_close(s);
	free(s->st);
	free(s->retries);
	s->st = NULL;
	s->retries = NULL;
	s->cap = 0;
}

/* The index of event ev_id in the batch, or -1. */
static long long
index_of(struct source_logical *s, long long ev_id)
{
	size_t i, k;

	/* callers mostly ask about the event at or next to the last */
	for (k = 0; k < s->n; k++) {
		i = (s->last_rank + k) % s->n;
		if (logical_event(s->lg, i)->ev.ev_id == ev_id) {
			s->last_rank = i;
			return (long long)i;
		}
	}
	return -1;
}

/*
 * Where an event from `from` on starts: the event from, or the one after
 * the event from - 1 (source.h), or -1.
 */
static long long
start_of(struct source_logical *s, long long from)
{
	long long i;

	if (from <= 0)
		return 0;
	if ((i = index_of(s, from)) >= 0)
		return i;
	if ((i = index_of(s, from - 1)) >= 0)
		return i + 1;
	return -1;
}

static long long
l_rank(struct source *src, long long ev_id)
{
	struct source_logical *s = src->impl;
	long long i;

	if (!s->have)
		return ev_id;
	i = start_of(s, ev_id);
	return i >= 0 ? i : (long long)s->n;
}

/* Sleep up to secs, keeping the stream alive. */
static int
pause_for(struct source_logical *s, double secs, struct mk_err *e)
{
	double end = now_mono() + secs;

	while (now_mono() < end) {
		double left = end - now_mono();
		struct timespec ts;

		if (left > 0.2)
			left = 0.2;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
		if (logical_service(s->lg, e) < 0)
			return failed(s, e);
	}
	return 0;
}

static bool
any(const struct source_logical *s, unsigned char st)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->st[i] == st)
			return true;
	return false;
}

static int
l_next(struct source *src, long long *batch_id, struct mk_err *e)
{
	struct source_logical *s = src->impl;
	long n;
	size_t i;

	*batch_id = -1;
	if (source_logical_open(s, e) < 0)
		return -1;
	if (s->have && any(s, ST_SEND)) {
		/* abandoned: the same batch again */
		*batch_id = s->batch_id;
		return 0;
	}
	if (s->have) {
		/* the retry round, when its time has come */
		double left = s->retry_at - now_mono();

		if (left > 0) {
			return pause_for(
				s, left < s->cfg.wait ? left : s->cfg.wait, e);
		}
		for (i = 0; i < s->n; i++)
			if (s->st[i] == ST_RETRY)
				s->st[i] = ST_SEND;
		*batch_id = s->batch_id = ++s->next_id;
		return 0;
	}
	n = logical_next_batch(s->lg, e);
	if (n < 0)
		return failed(s, e);
	if (n == 0)
		return 0;
	if ((size_t)n > s->cap) {
		unsigned char *st = realloc(s->st, (size_t)n);
		int *rt;

		if (st == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		s->st = st;
		rt = realloc(s->retries, (size_t)n * sizeof(*rt));
		if (rt == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		s->retries = rt;
		s->cap = (size_t)n;
	}
	s->n = (size_t)n;
	memset(s->st, ST_SEND, s->n);
	memset(s->retries, 0, s->n * sizeof(*s->retries));
	s->have = true;
	s->last_rank = 0;
	*batch_id = s->batch_id = ++s->next_id;
	return 0;
}

static int
l_open(struct source *src, long long batch_id, size_t max_bytes,
       long long from_id, struct mk_err *e)
{
	struct source_logical *s = src->impl;
	long long at;

	(void)max_bytes; /* the events are in memory: event_map measures */
	if (!s->have || batch_id != s->batch_id)
		return mk_err_set(e, EX_SOFTWARE,
				  "slot batch %lld is not the open one (%lld)",
				  batch_id, s->have ? s->batch_id : -1);
	at = start_of(s, from_id);
	if (at < 0)
		return mk_err_set(e, EX_SOFTWARE,
				  "slot batch %lld has no event %lld to "
				  "read again from",
				  batch_id, from_id);
	s->pos = (size_t)at;
	return 0;
}

static enum source_fetch
l_fetch(struct source *src, struct mk_event *ev, struct mk_err *e)
{
	struct source_logical *s = src->impl;
	const struct logical_event *le;

	(void)e;
	while (s->pos < s->n && s->st[s->pos] != ST_SEND)
		s->pos++;
	if (s->pos >= s->n)
		return SOURCE_DONE;
	le = logical_event(s->lg, s->pos);
	*ev = le->ev;
	ev->ev_retry = s->retries[s->pos];
	ev->refused = le->kind == 'F' || le->error ? le->error : NULL;
	if (ev->refused && ev->refused[0] == '\0')
		ev->refused = "refused by the slot source";
	ev->lsn = lsn_format(le->lsn, s->lsn, sizeof(s->lsn));
	s->pos++;
	return SOURCE_EVENT;
}

/* A dead letter's text field: its bytes, or escaped when no text. */
static json_t *
dead_text(const char *p, size_t n)
{
	char *buf;
	json_t *j;

	if (p == NULL)
		return json_null();
	if (memchr(p, '\0', n) == NULL && text_utf8_ok(p, n))
		return json_stringn(p, n);
	buf = malloc(DEAD_ESCAPED_MAX);
	if (buf == NULL)
		return NULL;
	text_escape(buf, DEAD_ESCAPED_MAX, p, n, DEAD_ESCAPED_MAX, 0);
	j = json_string(buf);
	free(buf);
	return j;
}

static int
store_dead(struct source_logical *s, json_t *rows, size_t n, struct mk_err *e)
{
	static const char sql[] =
		"WITH f AS (SELECT * FROM json_to_recordset($1::json) AS f("
		"  ev_id int8, ev_time_us int8, ev_txid int8, ev_retry int4,"
		"  ev_type text, ev_data text, ev_extra1 text, ev_extra2 text,"
		"  ev_extra3 text, ev_extra4 text, reason text)),"
		" d AS (INSERT INTO mikkoo.dead_letter (queue, consumer,"
		"  batch_id, ev_id, ev_time, ev_txid, ev_retry, ev_type,"
		"  ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4, reason)"
		"  SELECT $2, $3, NULL, ev_id, CASE WHEN ev_time_us > 0 THEN"
		"  'epoch'::timestamptz + ev_time_us * interval '1 microsecond'"
		"  ELSE pg_catalog.now() END, nullif(ev_txid, 0), ev_retry,"
		"  ev_type,"
		"  ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4, reason"
		"  FROM f RETURNING 1)"
		" SELECT count(*) FROM d";
	const char *v[3];
	char *js;
	PGresult *keep;
	const char *val;
	int rc;

	js = json_dumps(rows, JSON_COMPACT);
	if (js == NULL)
		return mk_err_set(e, EX_OSERR, "dead letters: out of memory");
	v[0] = js;
	v[1] = s->worker;
	v[2] = s->cfg.slot;
	rc = pg_value(logical_conn(s->lg), sql, 3, v,
		      "storing dead letters in mikkoo.dead_letter", &keep, &val,
		      e);
	free(js);
	if (rc < 0)
		return -1;
	rc = val && strtoll(val, NULL, 10) == (long long)n ? 0 : -1;
	PQclear(keep);
	if (rc < 0)
		return mk_err_set(e, EX_SOFTWARE,
				  "dead letters: not all %zu stored", n);
	return 0;
}

static int
l_settle(struct source *src, const struct fate *f, size_t n, struct mk_err *e)
{
	struct source_logical *s = src->impl;
	json_t *rows = json_array();
	size_t i, ndead = 0;
	long long *idx;
	int f_, rc = -1;

	if (rows == NULL)
		return mk_err_set(e, EX_OSERR, "settling: out of memory");
	idx = calloc(n ? n : 1, sizeof(*idx));
	if (idx == NULL) {
		json_decref(rows);
		return mk_err_set(e, EX_OSERR, "settling: out of memory");
	}
	for (i = 0; i < n; i++) {
		const struct logical_event *le;
		json_t *o;
		static const char *const names[] = { "ev_extra1", "ev_extra2",
						     "ev_extra3", "ev_extra4" };

		idx[i] = s->have ? index_of(s, f[i].ev_id) : -1;
		if (idx[i] < 0 || f[i].verdict == FATE_PUBLISHED) {
			mk_err_set(e, EX_SOFTWARE,
				   "settling: ev_id %lld is not a failed "
				   "event of slot batch %lld",
				   f[i].ev_id, s->batch_id);
			goto out;
		}
		if (f[i].verdict != FATE_DEAD)
			continue;
		le = logical_event(s->lg, (size_t)idx[i]);
		o = json_pack("{s:I,s:I,s:I,s:i,s:o*,s:o*,s:s%}", "ev_id",
			      (json_int_t)le->ev.ev_id, "ev_time_us",
			      (json_int_t)le->ev.ev_time_us, "ev_txid",
			      (json_int_t)le->ev.ev_txid, "ev_retry",
			      s->retries[idx[i]], "ev_type",
			      dead_text(le->ev.ev_type, le->ev.ev_type_len),
			      "ev_data",
			      dead_text(le->ev.ev_data, le->ev.ev_data_len),
			      "reason", f[i].reason,
			      strnlen(f[i].reason, sizeof(f[i].reason)));
		for (f_ = 0; o && f_ < 4; f_++) {
			json_t *x = dead_text(le->ev.extra[f_],
					      le->ev.extra_len[f_]);

			if (x == NULL || json_object_set_new(o, names[f_], x)) {
				json_decref(o);
				o = NULL;
			}
		}
		if (o == NULL || json_array_append_new(rows, o) < 0) {
			mk_err_set(e, EX_SOFTWARE,
				   "settling: ev_id %lld cannot be written "
				   "as JSON",
				   f[i].ev_id);
			goto out;
		}
		ndead++;
	}
	if (ndead && store_dead(s, rows, ndead, e) < 0) {
		if (e->code != EX_SOFTWARE)
			lose(s);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (f[i].verdict == FATE_DEAD) {
			s->st[idx[i]] = ST_DONE;
		} else {
			s->st[idx[i]] = ST_RETRY;
			s->retries[idx[i]] = f[i].attempt;
		}
	}
	rc = 0;
out:
	free(idx);
	json_decref(rows);
	return rc;
}

static int
l_finish(struct source *src, struct mk_err *e)
{
	struct source_logical *s = src->impl;
	size_t i;

	if (!s->have)
		return 0;
	/* what is neither dead nor to retry was confirmed */
	for (i = 0; i < s->n; i++)
		if (s->st[i] == ST_SEND)
			s->st[i] = ST_DONE;
	if (any(s, ST_RETRY)) {
		s->retry_at = now_mono() + s->retry_delay;
		return 0;
	}
	s->have = false;
	s->n = 0;
	if (logical_finish(s->lg, e) < 0)
		return failed(s, e);
	return 0;
}

static void
l_abandon(struct source *src)
{
	/* kept: the next next() hands it out again (l_next) */
	(void)src;
}

static int
l_service(struct source *src, struct mk_err *e)
{
	return source_logical_service(src->impl, e);
}

static const struct source_ops logical_ops = {
	.next = l_next,
	.open = l_open,
	.fetch = l_fetch,
	.settle = l_settle,
	.finish = l_finish,
	.abandon = l_abandon,
	.rank = l_rank,
	.service = l_service,
};

void
source_logical_init(struct source_logical *s, const struct logical_config *cfg,
		    const char *worker, int retry_delay)
{
	source_logical_release(s);
	memset(s, 0, sizeof(*s));
	s->src.ops = &logical_ops;
	s->src.impl = s;
	s->cfg = *cfg;
	s->worker = worker;
	s->retry_delay = retry_delay;
}
