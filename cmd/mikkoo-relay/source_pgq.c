/* SPDX-License-Identifier: BSD-3-Clause */
/* source_pgq: PgQ batches as the pipeline's source. */
#include "source_pgq.h"

static int
pgq_next(struct source *s, long long *batch_id, struct mk_err *e)
{
	struct source_pgq *p = s->impl;

	if (pgq_next_batch(p->pg, p->queue, p->consumer, batch_id, e) < 0)
		return -1;
	p->batch_id = *batch_id;
	return 0;
}

static int
pgq_open(struct source *s, long long batch_id, size_t max_bytes,
	 long long from_id, struct mk_err *e)
{
	struct source_pgq *p = s->impl;

	p->batch_id = batch_id;
	return pgq_batch_open_from(p->pg, batch_id, max_bytes, from_id, e);
}

static enum source_fetch
pgq_next_event(struct source *s, struct mk_event *ev, struct mk_err *e)
{
	struct source_pgq *p = s->impl;

	switch (pgq_fetch(p->pg, p->chunk, ev, e)) {
	case PGQ_FETCH_EVENT:
		return SOURCE_EVENT;
	case PGQ_FETCH_CHUNK_END:
		return SOURCE_PAUSE;
	case PGQ_FETCH_DONE:
		return SOURCE_DONE;
	case PGQ_FETCH_ERROR:
		break;
	}
	return SOURCE_ERROR;
}

static int
pgq_store(struct source *s, const struct fate *f, size_t n, struct mk_err *e)
{
	struct source_pgq *p = s->impl;

	return pgq_settle(p->pg, p->batch_id, p->queue, p->consumer,
			  p->retry_delay, f, n, e);
}

static int
pgq_finish(struct source *s, struct mk_err *e)
{
	struct source_pgq *p = s->impl;

	return pgq_batch_finish(p->pg, p->batch_id, e);
}

static void
pgq_give_up(struct source *s)
{
	struct source_pgq *p = s->impl;

	pgq_batch_abandon(p->pg);
}

static const struct source_ops pgq_ops = {
	.next = pgq_next,
	.open = pgq_open,
	.fetch = pgq_next_event,
	.settle = pgq_store,
	.finish = pgq_finish,
	.abandon = pgq_give_up,
};

void
source_pgq_init(struct source_pgq *s, struct pgq_conn *pg, const char *queue,
		const char *consumer, int retry_delay, int chunk)
{
	s->src.ops = &pgq_ops;
	s->src.impl = s;
	s->pg = pg;
	s->queue = queue;
	s->consumer = consumer;
	s->retry_delay = retry_delay;
	s->chunk = chunk;
	s->batch_id = -1;
}
