/* SPDX-License-Identifier: BSD-3-Clause */
/* statsd: UDP metrics, best effort. */
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "statsd.h"

struct statsd {
	int fd;
	char prefix[256];
};

struct statsd *
statsd_open(const struct mk_statsd_config *c, const char *queue, char *why,
	    size_t whysz)
{
	struct addrinfo hints, *ai = NULL;
	struct statsd *s;
	char port[16], host[256], *dot;
	int rc;

	if (!c->enabled)
		return NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	snprintf(port, sizeof(port), "%d", c->port);
	rc = getaddrinfo(c->host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(why, whysz, "cannot resolve statsd host '%s': %s",
			 c->host, gai_strerror(rc));
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto fail;
	s->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (s->fd < 0 || connect(s->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(why, whysz, "cannot set up statsd socket to '%s:%d'",
			 c->host, c->port);
		goto fail;
	}
	freeaddrinfo(ai);
	host[0] = '\0';
	if (c->include_hostname && gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if ((dot = strchr(host, '.')) != NULL)
			*dot = '\0';
	}
	snprintf(s->prefix, sizeof(s->prefix), "%s%s%s.%s.", c->prefix,
		 host[0] ? "." : "", host, queue);
	return s;
fail:
	if (s && s->fd >= 0)
		close(s->fd);
	free(s);
	freeaddrinfo(ai);
	return NULL;
}

void
statsd_close(struct statsd *s)
{
	if (s == NULL)
		return;
	close(s->fd);
	free(s);
}

static void
send_metric(struct statsd *s, const char *name, const char *val,
	    const char *type)
{
	char buf[512];
	int n;

	if (s == NULL)
		return;
	n = snprintf(buf, sizeof(buf), "%s%s:%s|%s", s->prefix, name, val,
		     type);
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)!send(s->fd, buf, (size_t)n, MSG_DONTWAIT);
}

void
statsd_count(struct statsd *s, const char *name, long long n)
{
	char v[32];

	if (n == 0)
		return;
	snprintf(v, sizeof(v), "%lld", n);
	send_metric(s, name, v, "c");
}

void
statsd_gauge(struct statsd *s, const char *name, long long v)
{
	char b[32];

	snprintf(b, sizeof(b), "%lld", v);
	send_metric(s, name, b, "g");
}

void
statsd_timing(struct statsd *s, const char *name, double ms)
{
	char b[32];

	snprintf(b, sizeof(b), "%.3f", ms);
	send_metric(s, name, b, "ms");
}
