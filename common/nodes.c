/* SPDX-License-Identifier: BSD-3-Clause */
/* nodes: the first RabbitMQ node of a list that answers. */
#include <stdio.h>
#include <string.h>

#include "nodes.h"

size_t
nodes_after(size_t i, size_t n)
{
	return n ? (i + 1) % n : 0;
}

int
nodes_connect(const struct mk_amqp_node *nodes, size_t n, size_t first,
	      const char *name, struct broker **out, size_t *used,
	      nodes_fail_cb cb, void *arg, struct mk_err *e)
{
	struct mk_err last;
	bool unreachable = false;
	size_t k;

	*out = NULL;
	if (n == 0)
		return mk_err_set(e, EX_SOFTWARE,
				  "no RabbitMQ node to "
				  "connect to");
	mk_err_clear(&last);
	for (k = 0; k < n; k++) {
		size_t i = (first + k) % n;
		struct broker_opts bo = {
			.url = &nodes[i].url,
			.display = nodes[i].display,
			.name = name,
			.heartbeat = nodes[i].url.heartbeat,
			.timeout = nodes[i].url.timeout,
		};

		if (broker_connect(out, &bo, &last) == 0) {
			*used = i;
			return 0;
		}
		if (last.code == EX_UNAVAILABLE)
			unreachable = true;
		if (k + 1 < n && cb)
			cb(arg, i, n, &last);
	}
	if (n == 1) {
		*e = last;
		return -1;
	}
	return mk_err_set(e, unreachable ? EX_UNAVAILABLE : last.code,
			  "no RabbitMQ node answered (%zu tried): last: %s", n,
			  last.msg);
}

void
nodes_address(const struct mk_amqp_node *node, char *buf, size_t sz)
{
	const char *h = node->url.host ? node->url.host : "?";

	snprintf(buf, sz, strchr(h, ':') ? "[%s]:%d" : "%s:%d", h,
		 node->url.port);
}
