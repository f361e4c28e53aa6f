/* SPDX-License-Identifier: BSD-3-Clause */
/* httpd: /metrics and /health on libmicrohttpd, without threads. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "httpd.h"
#include "listen.h"

struct httpd {
	struct MHD_Daemon *d;
	int fd; /* the listening socket (MHD closes it) */
	httpd_handler h;
	void *arg;
};

static enum MHD_Result
reply(struct MHD_Connection *c, int status, char *body, size_t len,
      const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ok;

	r = body ? MHD_create_response_from_buffer(len, body,
						   MHD_RESPMEM_MUST_FREE)
		 : MHD_create_response_from_buffer(0, (void *)"",
						   MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	if (type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ok = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_size,
       void **state)
{
	static int seen;
	struct httpd *d = cls;
	struct httpd_page page;
	char *msg;

	(void)version;
	(void)upload;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		/* a body, if any, is never read: answer and close */
		*upload_size = 0;
		msg = strdup("only GET and HEAD are served here\n");
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, msg,
			     msg ? strlen(msg) : 0, "text/plain");
	}
	if (*state == NULL) {
		/* the headers are in; the next call answers */
		*state = &seen;
		return MHD_YES;
	}
	memset(&page, 0, sizeof(page));
	d->h(d->arg, url, &page);
	return reply(c, page.status, page.body, page.len, page.type);
}

static int
listen_on(const char *addr, struct mk_err *e)
{
	struct listen_addr a;
	char why[160];
	int fd, one = 1, err;

	if (listen_parse(addr, &a, why, sizeof(why)) < 0)
		return mk_err_set(e, EX_CONFIG, "metrics: listen '%s': %s",
				  addr, why);
	fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return mk_err_set(e, EX_OSERR, "metrics: socket: %s",
				  strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				 sizeof(one));
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) == 0 &&
	    listen(fd, 64) == 0)
		return fd;
	err = errno;
	close(fd);
	if (err == EADDRINUSE)
		return mk_err_set(e, EX_UNAVAILABLE,
				  "metrics: cannot listen "
				  "on '%s': the port is in use",
				  addr);
	if (err == EACCES)
		return mk_err_set(e, EX_NOPERM,
				  "metrics: cannot listen on "
				  "'%s': %s (ports under 1024 need "
				  "privileges)",
				  addr, strerror(err));
	if (err == EADDRNOTAVAIL)
		return mk_err_set(e, EX_CONFIG,
				  "metrics: cannot listen on "
				  "'%s': not an address of this machine",
				  addr);
	return mk_err_set(e, EX_OSERR, "metrics: cannot listen on '%s': %s",
			  addr, strerror(err));
}

int
httpd_open(struct httpd **out, const char *addr, httpd_handler h, void *arg,
	   struct mk_err *e)
{
	struct httpd *d = calloc(1, sizeof(*d));
	const union MHD_DaemonInfo *info;

	*out = NULL;
	if (d == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	d->h = h;
	d->arg = arg;
	d->fd = listen_on(addr, e);
	if (d->fd < 0) {
		free(d);
		return -1;
	}
	d->d = MHD_start_daemon(
		MHD_USE_EPOLL, 0, NULL, NULL, answer, d,
		MHD_OPTION_LISTEN_SOCKET, d->fd, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)HTTPD_MAX_CONN, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)HTTPD_MAX_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)HTTPD_TIMEOUT, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)HTTPD_MEMORY, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
		MHD_OPTION_END);
	if (d->d == NULL) {
		close(d->fd);
		free(d);
		return mk_err_set(e, EX_OSERR,
				  "metrics: cannot start the "
				  "HTTP server on '%s'",
				  addr);
	}
	info = MHD_get_daemon_info(d->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		MHD_stop_daemon(d->d);
		free(d);
		return mk_err_set(e, EX_OSERR,
				  "metrics: libmicrohttpd has no "
				  "epoll support");
	}
	/* the workers, forked later, must not hold these */
	(void)fcntl(info->epoll_fd, F_SETFD, FD_CLOEXEC);
	*out = d;
	return 0;
}

int
httpd_fd(const struct httpd *d)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(d->d, MHD_DAEMON_INFO_EPOLL_FD);

	return info ? info->epoll_fd : -1;
}

int
httpd_timeout_ms(struct httpd *d)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(d->d, &t) != MHD_YES)
		return -1;
	return t > 60000 ? 60000 : (int)t;
}

void
httpd_run(struct httpd *d)
{
	MHD_run(d->d);
}

void
httpd_close(struct httpd *d)
{
	if (d == NULL)
		return;
	MHD_stop_daemon(d->d); /* closes the listening socket too */
	free(d);
}
