/* SPDX-License-Identifier: BSD-3-Clause */
/* mq: mikkoo-inspect's RabbitMQ views: connection, output, summary. */
#include <errno.h>
#include <stdio_ext.h>
#include <stdlib.h>

#include "delivery.h"
#include "jsonl.h"
#include "log.h"
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
		 "with ^C", o->exchange, o->nkeys ? keys : "'#'", queue);
}

int
mq_inspect(struct tool_conn *t, const struct mq_view_opts *o, bool tap)
{
	struct broker *b = NULL;
	struct mk_err e;
	long count = 0;
	int rc = 0;

	/* Stops are flags looked at between messages; a closed pipe is an
	 * EPIPE to handle, not a death. */
	if (sig_install(false) < 0)
		log_warn("cannot install signal handlers: ^C ends at once");
	if ((tap ? delivery_name_check("exchange", o->exchange, &e)
	     : delivery_name_check("queue", o->queue, &e)) < 0 ||
	    tool_setup(t, &e) < 0 || tool_broker(t, "mikkoo-inspect", &b, &e) < 0)
		goto fail;
	if (tap ? tap_run(b, o, stdout, tap_ready, &count, &e) < 0
	    : peek_run(b, o, stdout, &count, &e) < 0)
		goto fail;
	if (tap)
		log_info("tap of '%s' ended after %ld message%s", o->exchange,
			 count, count == 1 ? "" : "s");
	else
		log_info("peeked at %ld message%s of '%s': back in the queue, "
			 "in order, marked redelivered", count,
			 count == 1 ? "" : "s", o->queue);
	goto out;
fail:
	log_error("%s", e.msg);
	rc = e.code;
out:
	broker_free(b);
	return rc;
}
