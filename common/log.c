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

static const char *log_prog = "mikkoo";
static enum mk_log_level log_level = MK_LOG_INFO;
static bool log_time;
static char log_ctx[256];

static const char *const level_names[] = {
	[MK_LOG_FATAL] = "fatal",
	[MK_LOG_ERROR] = "error",
	[MK_LOG_WARNING] = "warning",
	[MK_LOG_INFO] = "info",
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
	va_list ap;

	if (fmt == NULL) {
		log_ctx[0] = '\0';
		return;
	}
	va_start(ap, fmt);
	vsnprintf(log_ctx, sizeof(log_ctx), fmt, ap);
	va_end(ap);
}

void
log_msg(enum mk_log_level level, const char *fmt, ...)
{
	static const char hex[] = "0123456789abcdef";
	char line[4096], raw[3072], msg[3584];
	size_t n = 0, i, o = 0;
	va_list ap;
	int saved = errno;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/*
	 * Messages carry data (exchange names, broker replies, server
	 * errors): no control byte may reach the log as is, so a record is
	 * always one line and never a terminal escape sequence (CWE-117).
	 */
	for (i = 0; raw[i] && o + 5 < sizeof(msg); i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c >= 0x20 && c != 0x7f) {
			msg[o++] = (char)c;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			msg[o++] = ' ';
		} else {
			msg[o++] = '\\';
			msg[o++] = 'x';
			msg[o++] = hex[c >> 4];
			msg[o++] = hex[c & 15];
		}
	}
	msg[o] = '\0';

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

char *
log_escape(char *dst, size_t dstsz, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (dstsz == 0)
		return dst;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char tmp[4];
		size_t k = 0;

		if (c == '\n') {
			tmp[k++] = '\\';
			tmp[k++] = 'n';
		} else if (c == '\t') {
			tmp[k++] = '\\';
			tmp[k++] = 't';
		} else if (c == '\r') {
			tmp[k++] = '\\';
			tmp[k++] = 'r';
		} else if (c == '\\') {
			tmp[k++] = '\\';
			tmp[k++] = '\\';
		} else if (c < 0x20 || c == 0x7f) {
			tmp[k++] = '\\';
			tmp[k++] = 'x';
			tmp[k++] = hex[c >> 4];
			tmp[k++] = hex[c & 15];
		} else {
			tmp[k++] = (char)c;
		}
		if (o + k + 4 > dstsz) {
			if (o + 4 <= dstsz) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(dst + o, tmp, k);
		o += k;
	}
	dst[o] = '\0';
	return dst;
}
