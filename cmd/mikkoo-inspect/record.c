/* SPDX-License-Identifier: BSD-3-Clause */
/* record: a RabbitMQ message as a line of mikkoo-inspect's output. */
#include <errno.h>
#include <stdio_ext.h>

#include "delivery.h"
#include "jsonl.h"
#include "record.h"

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
