/* SPDX-License-Identifier: BSD-3-Clause */
/* err: error values passed up to main(). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "text.h"

int
mk_err_set(struct mk_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	/* a message cut short never ends inside a character (text.h) */
	e->msg[text_cut(e->msg, strlen(e->msg), sizeof(e->msg) - 4)] = '\0';
	return -1;
}

int
mk_err_prefix(struct mk_err *e, const char *fmt, ...)
{
	char ctx[sizeof(e->msg)], old[sizeof(e->msg)];
	va_list ap;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", ctx, old);
	e->msg[text_cut(e->msg, strlen(e->msg), sizeof(e->msg) - 4)] = '\0';
	return -1;
}

void
mk_err_clear(struct mk_err *e)
{
	e->code = 0;
	e->msg[0] = '\0';
}
