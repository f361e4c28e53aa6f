/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * log: one line per record on stderr, for s6-log, svlogd or a terminal.
 *
 * Owns: the line format "PROG: LEVEL: CONTEXT: message" and the level
 * filter.  Every record goes through text.h's escape (control and bidi
 * characters, U+2028/U+2029 and invalid UTF-8 are never written raw),
 * so a record is always exactly one line of valid UTF-8, whatever the
 * data in it; a cut message never ends inside a character.
 * Never: exits, buffers, timestamps by default (the supervisor's logger
 * adds them; --log-time adds an RFC 3339 UTC stamp for bare terminals).
 * Secrets: callers pass URLs through url_mask() first; log never sees them.
 */
#ifndef MIKKOO_LOG_H
#define MIKKOO_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum mk_log_level {
	MK_LOG_FATAL,
	MK_LOG_ERROR,
	MK_LOG_WARNING,
	MK_LOG_INFO,
	MK_LOG_DEBUG,
};

/* prog is borrowed and must outlive logging (argv[0]'s basename is fine). */
void log_init(const char *prog);
void log_set_level(enum mk_log_level level);
enum mk_log_level log_get_level(void);
void log_set_time(bool on);
/* Context printed after the level, e.g. "queue 'orders'"; NULL clears. */
void
log_set_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void log_msg(enum mk_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_fatal(...) log_msg(MK_LOG_FATAL, __VA_ARGS__)
#define log_error(...) log_msg(MK_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(MK_LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(MK_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                      \
	do {                                                \
		if (log_get_level() >= MK_LOG_DEBUG)        \
			log_msg(MK_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

/*
 * A usage error at the edge of a command: "PROG: error: ...", the usage
 * lines, "try 'PROG --help' for more".  Returns EX_USAGE (64).
 */
int log_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
