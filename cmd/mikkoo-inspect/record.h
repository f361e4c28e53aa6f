/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * record: what peek and tap print for a message (common/delivery.h's
 * record) and how a line reaches a reader that may go away.
 */
#ifndef MIKKOO_INSPECT_RECORD_H
#define MIKKOO_INSPECT_RECORD_H

#include <stdio.h>

#include <jansson.h>

#include "mqchan.h"

/* m's record (common/delivery.h); queue is NULL for a tap.  A new
 * reference, NULL only when memory ran out. */
json_t *mq_record(const char *queue, const struct mq_msg *m);

/*
 * Write rec as a JSON line and drop the reference: 1 written, 0 the
 * reader is gone (EPIPE: the rest of the buffer is dropped so the exit
 * is clean), -1 another write error (left for jsonl_finish to report).
 */
int mq_emit(FILE *out, json_t *rec);

#endif
