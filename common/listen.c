/* SPDX-License-Identifier: BSD-3-Clause */
/* listen: ADDRESS:PORT for a server socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listen.h"

int
listen_parse(const char *s, struct listen_addr *out, char *why, size_t whysz)
{
	struct listen_addr a;
	const char *colon;
	char host[64], *end;
	long port;
	size_t hl;

	memset(&a, 0, sizeof(a));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(why, whysz,
				 "an IPv6 address is written "
				 "[ADDRESS]:PORT");
			return -1;
		}
		hl = (size_t)(close - s - 1);
		colon = close + 1;
		if (hl >= sizeof(host))
			hl = sizeof(host) - 1;
		memcpy(host, s + 1, hl);
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(why, whysz, "no port: give ADDRESS:PORT");
			return -1;
		}
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host))
			hl = sizeof(host) - 1;
		memcpy(host, s, hl);
	}
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || errno || port < 1 || port > 65535) {
		snprintf(why, whysz,
			 "the port must be a number from 1 to "
			 "65535");
		return -1;
	}
	if (host[0] == '\0') {
		snprintf(why, whysz,
			 "no address: give one (127.0.0.1 to be "
			 "reached from this machine only; 0.0.0.0 for every "
			 "interface)");
		return -1;
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (s[0] == '[') {
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a.ss;

		if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1) {
			snprintf(why, whysz, "'%s' is not an IPv6 address",
				 host);
			return -1;
		}
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		a.len = sizeof(*v6);
	} else {
		struct sockaddr_in *v4 = (struct sockaddr_in *)&a.ss;

		if (inet_pton(AF_INET, host, &v4->sin_addr) != 1) {
			snprintf(why, whysz,
				 "'%s' is not an IPv4 address "
				 "(names other than localhost are not looked "
				 "up; IPv6 goes in brackets)",
				 host);
			return -1;
		}
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		a.len = sizeof(*v4);
	}
	if (out)
		*out = a;
	return 0;
}
