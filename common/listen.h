/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * listen: the address a server of ours listens on, as written in the
 * configuration ("127.0.0.1:9321").  The config module checks it when it
 * reads a file; the relay's HTTP server binds it.
 * Owns: the syntax and the rule that names are not looked up.
 * Never: opens a socket, logs.
 */
#ifndef MIKKOO_LISTEN_H
#define MIKKOO_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * "127.0.0.1:9321", "[::1]:9321" or "localhost:9321" (127.0.0.1): a
 * numeric address or localhost, then a port 1-65535.  -1 with why
 * ("no port: give ADDRESS:PORT", ...) otherwise.  out may be NULL.
 */
int
listen_parse(const char *s, struct listen_addr *out, char *why, size_t whysz);

#endif
