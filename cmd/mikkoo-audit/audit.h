/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * audit: prove delivery with mikkoo.audit (mikkoo-audit).
 *
 * Owns: draining a confirming queue (a RabbitMQ queue bound to the
 * audited exchanges), deleting the mikkoo.audit row of each message by
 * its message_id, and listing the rows still there after a grace period:
 * events RabbitMQ never delivered.  Messages are acknowledged only after
 * the DELETE of their rows committed, so a crash in between loses
 * nothing: the messages come again and find their rows gone.  When the
 * RabbitMQ node is lost mid-drain, the drain goes on from the next node
 * (tool.h): what was received and not acknowledged comes again there.
 * Never: prints anything but the missing rows on out.
 */
#ifndef MIKKOO_AUDIT_H
#define MIKKOO_AUDIT_H

#include <stdio.h>

#include "broker.h"
#include "err.h"
#include "pg.h"
#include "tool.h"

struct audit_opts {
	const char *amqp_queue; /* the confirming queue; NULL: only report */
	const char *pgq_queue;  /* report rows of this PgQ queue only */
	double grace;           /* seconds before a row counts as missing */
	int idle_ms;            /* stop draining after this much silence */
	long max_messages;      /* 0: no limit */
};

struct audit_stats {
	long consumed;  /* messages taken from the queue */
	long confirmed; /* audit rows they deleted */
	long unaudited; /* messages with no (or an unknown) row */
	long missing;   /* rows reported */
};

int audit_run(PGconn *pg, struct tool_mq *mq, const struct audit_opts *o,
	      FILE *out, struct audit_stats *st, struct mk_err *e);

#endif
