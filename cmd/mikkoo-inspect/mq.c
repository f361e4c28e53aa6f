/* SPDX-License-Identifier: BSD-3-Clause */
/* mq: mikkoo-inspect's RabbitMQ views: connection, output, summary. */
#include <errno.h>
#include <stdio_ext.h>
#include <stdlib.h>

#include "delivery.h"
#include "jsonl.h"
#include "log.h"
#include "mono.h"
#include "mq.h"
#include "sig.h"

json_t *
mq_record(const char *queue, const struct mq_msg *m)
{
	struct delivery d = {
		.queue = queue,
		.exchange = m->exchange,
		.routing_key = m->routing_key,
		.redelivered = m->redelivered,
		.msg = &m->msg,
	};

	return delivery_json(&d);
}

int
mq_emit(FILE *out, json_t *rec)
{
	errno = 0;
	jsonl_write(out, rec);
	json_decref(rec);
	/* Even into a file: a tap runs until stopped (tail -f its file). */
	fflush(out);
	if (!ferror(out))
		return 1;
	if (errno != EPIPE)
		return -1;
	/* head(1) has what it wanted: not a failure of ours. */
	__fpurge(out);
	clearerr(out);
	return 0;
}

int
mq_add_key(struct mq_view_opts *o, const char *key)
{
	char **k = realloc(o->keys, (o->nkeys + 1) * sizeof(*k));

	if (k == NULL)
		return -1;
	k[o->nkeys++] = (char *)key;
	o->keys = k;
	return 0;
}

const char *
mq_usage(const struct mq_view_opts *o, bool tap, bool view, bool pgq)
{
	if (view)
		return "--amqp-queue, -e, -k and --seconds are not for the PgQ "
		       "views";
	if (pgq)
		return "-q, --consumer and the dead filters are for the PgQ "
		       "views";
	if (tap && o->queue)
		return "tap reads an exchange: no --amqp-queue with it";
	if (tap && o->exchange == NULL)
		return "tap needs -e EXCHANGE";
	if (!tap && (o->exchange || o->nkeys || o->seconds > 0))
		return "-e, -k and --seconds are for tap";
	if (o->stop_at_limit && (tap || o->queue == NULL))
		return "--stop-at-limit is for --amqp-queue";
	return NULL;
}

static void
tap_ready(const char *queue, const struct mq_view_opts *o)
{
	size_t i;
	char keys[512];
	size_t n = 0;

	keys[0] = '\0';
	for (i = 0; i < o->nkeys && n < sizeof(keys); i++)
		n += (size_t)snprintf(keys + n, sizeof(keys) - n, "%s'%s'",
				      i ? ", " : "", o->keys[i]);
	log_info("tapping exchange '%s' with binding %s (queue '%s'); stop "
		 "with ^C",
		 o->exchange, o->nkeys ? keys : "'#'", queue);
}

int
mq_inspect(struct tool_conn *t, const struct mq_view_opts *o, bool tap)
{
	struct tool_mq m = { 0 };
	struct mk_err e;
	long count = 0, total = 0;
	int rc = 0, passes = 0;
	double end = o->seconds > 0 ? now_mono() + o->seconds : 0;
	struct mq_view_opts left = *o;

	/* Stops are flags looked at between messages; a closed pipe is an
	 * EPIPE to handle, not a death. */
	if (sig_install(false) < 0)
		log_warn("cannot install signal handlers: ^C ends at once");
	if ((tap ? delivery_name_check("exchange", o->exchange, &e)
		 : delivery_name_check("queue", o->queue, &e)) < 0 ||
	    tool_setup(t, &e) < 0 ||
	    tool_mq_open(t, "mikkoo-inspect", &m, &e) < 0)
		goto fail;
	for (;;) {
		passes++;
		if (tap ? tap_run(m.b, &left, stdout,
				  passes == 1 ? tap_ready : NULL, &count,
				  &e) == 0
			: peek_run(m.b, o, stdout, &count, &e) == 0)
			break;
		total += count;
		if (!tool_mq_lost(&m) || sig_term_count() > 0)
			goto fail;
		if (tap) {
			/* the rest of the limit and of the time */
			if (left.limit > 0 && (left.limit -= count) <= 0)
				goto done;
			if (end > 0 && (left.seconds = end - now_mono()) <= 0)
				goto done;
		}
		if (tool_mq_move(&m, &e, &e) < 0)
			goto fail;
		if (tap)
			log_warn("tapping exchange '%s' again: what was routed "
				 "through it while we moved is not shown",
				 o->exchange);
		else
			log_warn("peeking at '%s' again from its front: the "
				 "%ld message%s printed so far may come again",
				 o->queue, count, count == 1 ? "" : "s");
	}
	total += count;
done:
	if (tap)
		log_info("tap of '%s' ended after %ld message%s", o->exchange,
			 total, total == 1 ? "" : "s");
	else
		log_info("peeked at %ld message%s of '%s': back in the queue, "
			 "in order, marked redelivered",
			 count, count == 1 ? "" : "s", o->queue);
	goto out;
fail:
	log_error("%s", e.msg);
	rc = e.code;
out:
	tool_mq_close(&m);
	return rc;
}
