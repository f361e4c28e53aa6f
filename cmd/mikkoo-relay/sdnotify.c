/* SPDX-License-Identifier: BSD-3-Clause */
/* sdnotify: READY=1 and friends to systemd's NOTIFY_SOCKET. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sdnotify.h"

static int fd = -1;
static struct sockaddr_un addr;
static socklen_t addrlen;

int
sdnotify_open(struct mk_err *e)
{
	const char *v = getenv("NOTIFY_SOCKET");
	char name[sizeof(addr.sun_path) + 1];
	size_t n;

	if (v == NULL || *v == '\0') {
		unsetenv("NOTIFY_SOCKET");
		return 0;
	}
	n = strlen(v);
	if ((v[0] != '/' && v[0] != '@') || n >= sizeof(addr.sun_path)) {
		/* quoted before unsetenv frees it */
		snprintf(name, sizeof(name), "%s", v);
		unsetenv("NOTIFY_SOCKET");
		return mk_err_set(e, EX_CONFIG,
				  "NOTIFY_SOCKET '%.100s' is "
				  "not an absolute path or an @abstract "
				  "name of at most %zu bytes: not notifying "
				  "systemd",
				  name, sizeof(addr.sun_path) - 1);
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, v, n);
	/* An abstract name is the bytes after a NUL, and only those. */
	if (v[0] == '@')
		addr.sun_path[0] = '\0';
	addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
			      (v[0] == '/'));
	unsetenv("NOTIFY_SOCKET");
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return mk_err_set(e, EX_OSERR,
				  "cannot open a socket for "
				  "systemd's notifications: %s",
				  strerror(errno));
	return 0;
}

bool
sdnotify_on(void)
{
	return fd >= 0;
}

int
sdnotify(struct mk_err *e, const char *fmt, ...)
{
	char msg[SDNOTIFY_MAX + 1];
	va_list ap;
	int n;

	if (fd < 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return mk_err_set(e, EX_SOFTWARE,
				  "cannot format a "
				  "notification");
	if ((size_t)n > SDNOTIFY_MAX)
		n = SDNOTIFY_MAX;
	if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&addr,
		   addrlen) < 0)
		return mk_err_set(e, EX_IOERR,
				  "cannot notify systemd "
				  "(NOTIFY_SOCKET): %s",
				  strerror(errno));
	return 0;
}

unsigned long long
sdnotify_monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	       (unsigned long long)ts.tv_nsec / 1000ULL;
}

void
sdnotify_close(void)
{
	if (fd >= 0)
		close(fd);
	fd = -1;
}
