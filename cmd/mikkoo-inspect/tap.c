/* SPDX-License-Identifier: BSD-3-Clause */
/* tap: what flows through a RabbitMQ exchange, as JSON lines. */
#include <math.h>
#include <string.h>

#include "delivery.h"
#include "text.h"
#include "mono.h"
#include "mq.h"
#include "mqchan.h"
#include "sig.h"

/* Unacked deliveries in flight to us: enough to stream, bounded. */
#define TAP_PREFETCH 100

int
tap_run(struct broker *b, const struct mq_view_opts *o, FILE *out,
	void (*ready)(const char *queue, const struct mq_view_opts *o),
	long *count, struct mk_err *e)
{
	static char *const all[] = { "#" };
	struct mqchan c = { 0 };
	struct mq_msg m;
	char qname[256];
	double deadline = 0, left;
	size_t i;
	int rc = 0, got, w;
	json_t *rec;

	*count = 0;
	if (delivery_name_check("exchange", o->exchange, e) < 0)
		return -1;
	for (i = 0; i < o->nkeys; i++)
		if (strlen(o->keys[i]) > 255 ||
		    !text_utf8_ok(o->keys[i], strlen(o->keys[i])))
			return mk_err_set(e, EX_USAGE,
					  "binding key %zu is not "
					  "up to 255 bytes of UTF-8",
					  i + 1);
	if (mqchan_open(&c, b, e) < 0 ||
	    mqchan_tap(&c, o->exchange, o->nkeys ? o->keys : all,
		       o->nkeys ? o->nkeys : 1, TAP_PREFETCH, qname,
		       sizeof(qname), e) < 0) {
		if (e->code == EX_UNAVAILABLE)
			mqchan_forget(&c);
		mqchan_close(&c);
		return -1;
	}
	if (ready)
		ready(qname, o);
	if (o->seconds > 0)
		deadline = now_mono() + o->seconds;
	while (sig_term_count() == 0) {
		int ms = 200;

		if (deadline > 0) {
			left = deadline - now_mono();
			if (left <= 0)
				break;
			if (left < 0.2)
				ms = (int)ceil(left * 1000);
		}
		got = mqchan_next(&c, ms, &m, e);
		if (got < 0) {
			rc = -1;
			break;
		}
		if (got == 0)
			continue;
		rec = mq_record(NULL, &m);
		if (rec == NULL) {
			mq_msg_release(&m);
			rc = mk_err_set(e, EX_OSERR, "out of memory");
			break;
		}
		w = mq_emit(out, rec);
		*count += w > 0;
		/* Our private copy: acked once shown, so prefetch moves. */
		rc = mqchan_ack(&c, m.tag, e);
		mq_msg_release(&m);
		if (rc < 0 || w <= 0 || (o->limit > 0 && *count >= o->limit))
			break;
	}
	if (rc < 0 && e->code == EX_UNAVAILABLE)
		mqchan_forget(&c); /* the connection is gone */
	mqchan_close(&c);
	return rc;
}
