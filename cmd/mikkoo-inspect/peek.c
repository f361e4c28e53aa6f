/* SPDX-License-Identifier: BSD-3-Clause */
/* peek: a RabbitMQ queue's messages as JSON lines, left in place. */
#include "delivery.h"
#include "mq.h"
#include "mqchan.h"
#include "sig.h"

int
peek_run(struct broker *b, const struct mq_view_opts *o, FILE *out, long *count,
	 struct mk_err *e)
{
	struct mqchan c = { 0 };
	struct mq_msg m;
	uint32_t ready, bound, more = 0;
	long taken = 0;
	int rc = 0, got;
	json_t *rec;

	*count = 0;
	if (delivery_name_check("queue", o->queue, e) < 0)
		return -1;
	if (mqchan_open(&c, b, e) < 0 ||
	    mqchan_count(&c, o->queue, &ready, e) < 0)
		return -1;
	/* At least one basic.get even when the count says empty: a stream
	 * (count 0, no basic.get) or a queue we may not read says so. */
	bound = ready ? ready : 1;
	while ((uint32_t)taken < bound &&
	       (o->limit == 0 || *count < o->limit) && sig_term_count() == 0) {
		got = mqchan_get(&c, o->queue, &m, e);
		if (got <= 0) {
			rc = got;
			break;
		}
		taken++;
		rec = mq_record(o->queue, &m);
		mq_msg_release(&m);
		if (rec == NULL) {
			rc = mk_err_set(e, EX_OSERR, "out of memory");
			break;
		}
		if (mq_emit(out, rec) <= 0)
			break;
		(*count)++;
	}
	if (rc < 0 && e->code == EX_UNAVAILABLE) {
		/* the connection is gone, and with it our hold on them */
		mqchan_forget(&c);
		return -1;
	}
	/* Stopped early on a quorum queue: read on through the handed-back
	 * ones, or what was read would go behind them (mqchan.h). */
	if (rc == 0 && !o->stop_at_limit &&
	    mqchan_keep_order(&c, o->queue, bound - (uint32_t)taken, &more, e) <
		    0) {
		if (e->code == EX_UNAVAILABLE)
			mqchan_forget(&c);
		return -1;
	}
	/* Not a nack: a closed channel puts them back (mqchan.h). */
	mqchan_close(&c);
	if (rc == 0 && taken + more > 0) {
		mqchan_wait_ready(&c, o->queue, ready, 2000);
		mqchan_close(&c);
	}
	return rc;
}
