/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * captures: mikkoo-inspect's view of the tables captured with
 * mikkoo.capture(): one record per table and queue, read from the view
 * mikkoo.captures in a read-only transaction that is rolled back.
 * Never: prints anything but records on out.
 */
#ifndef MIKKOO_INSPECT_CAPTURES_H
#define MIKKOO_INSPECT_CAPTURES_H

#include <stdio.h>

#include "err.h"
#include "inspect.h"
#include "pgq.h"

/*
 * Write the records (only o->queue's when set); *count is how many.
 * EX_NOINPUT when the queue or the view does not exist.
 */
int captures_run(struct pgq_conn *c, const struct inspect_opts *o,
		 FILE *out, long *count, struct mk_err *e);

#endif
