/* SPDX-License-Identifier: BSD-3-Clause */
/* report: a worker's metrics and state to its supervisor, never blocking. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "report.h"

const char *
report_state_name(enum report_state s)
{
	switch (s) {
	case REPORT_STARTING:
		return "starting";
	case REPORT_RELAYING:
		return "relaying";
	case REPORT_DOWN:
		return "down";
	case REPORT_WAITING:
		return "waiting";
	case REPORT_BLOCKED:
		return "blocked";
	case REPORT_REFUSED:
		return "refused";
	}
	return "unknown";
}

int
report_send(int fd, const struct report *r)
{
	ssize_t n;

	if (fd < 0)
		return 0;
	do
		n = write(fd, r, sizeof(*r));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(*r))
		return 1;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return -1;
}

int
report_read(int fd, struct report *r)
{
	struct report buf;
	int got = 0;

	for (;;) {
		ssize_t n = read(fd, &buf, sizeof(buf));

		if (n == (ssize_t)sizeof(buf)) {
			*r = buf;
			got = 1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return got;
		/* EOF, or a torn record (never written so): done */
		return got ? got : -1;
	}
}
