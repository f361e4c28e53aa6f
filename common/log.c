/* SPDX-License-Identifier: BSD-3-Clause */
/* log: single-line records on stderr. */
#include <errno.h>
#include <sysexits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

static const char *log_prog = "mikkoo";
static enum mk_log_level log_level = MK_LOG_INFO;
static bool log_time;
static char log_ctx[256];

static const char *const level_names[] = {
	[MK_LOG_FATAL] = "fatal",     [MK_LOG_ERROR] = "error",
	[MK_LOG_WARNING] = "warning", [MK_LOG_INFO] = "info",
	[MK_LOG_DEBUG] = "debug",
};

void
log_init(const char *prog)
{
	const char *slash = strrchr(prog, '/');

	log_prog = slash ? slash + 1 : prog;
}

void
log_set_level(enum mk_log_level level)
{
	log_level = level;
}

enum mk_log_level
log_get_level(void)
{
	return log_level;
}

void
log_set_time(bool on)
{
	log_time = on;
}

void
log_set_context(const char *fmt, ...)
{
	char raw[sizeof(log_ctx)];
	va_list ap;

	if (fmt == NULL) {
		log_ctx[0] = '\0';
		return;
	}

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	text_escape(log_ctx, sizeof(log_ctx), raw, strlen(raw), sizeof(raw), 0);
}

void
log_msg(enum mk_log_level level, const char *fmt, ...)
{
	char line[4096], raw[3072], msg[3584];
	size_t n = 0;
	va_list ap;
	int saved = errno;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/*
	 * Messages carry data (exchange names, broker replies, server
	 * errors): text.h's rule escapes every control character, bidi
	 * override and invalid byte, so a record is always one line of
	 * valid UTF-8 and never a terminal escape sequence (CWE-117).
	 * A message cut by vsnprintf ends in a partial character at worst,
	 * which is escaped like any invalid byte.
	 */
	n = strlen(raw);
	if (n == sizeof(raw) - 1)
		n = text_cut(raw, n, n - 3); /* no partial character */
	text_escape(msg, sizeof(msg), raw, n, n, 0);
	n = 0;

	if (log_time) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - n, ".%03ldZ ",
			      ts.tv_nsec / 1000000);
	}
	n += snprintf(line + n, sizeof(line) - n, "%s: %s: ", log_prog,
		      level_names[level]);
	if (log_ctx[0] && n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - n, "%s: ", log_ctx);
	if (n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - n, "%s", msg);
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write(2) per record keeps lines from several processes whole. */
	(void)!write(STDERR_FILENO, line, n);
	errno = saved;
}

int
log_usage_error(const char *usage, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(MK_LOG_ERROR, "%s", msg);
	fprintf(stderr, "%s\ntry '%s --help' for more\n", usage, log_prog);
	return EX_USAGE;
}
