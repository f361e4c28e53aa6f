/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nodes: which of a worker's RabbitMQ nodes to connect to, in what order.
 *
 * Owns: the order, which is the list as configured, starting from a
 * given node and wrapping around once, so that after losing node i the
 * caller starts at i + 1 and the lost node is tried last (nodes_after);
 * and the error of a round in which no node answered.
 * Never: logs (each node's failure goes to a callback), sleeps or backs
 * off between rounds (the caller does), remembers anything.
 */
#ifndef MIKKOO_NODES_H
#define MIKKOO_NODES_H

#include <stddef.h>

#include "broker.h"
#include "config.h"
#include "err.h"

/* Node i of n (0-based) failed with e; another is tried next. */
typedef void (*nodes_fail_cb)(void *arg, size_t i, size_t n,
			      const struct mk_err *e);

/*
 * Connect to the first node that answers, trying nodes[first],
 * nodes[first + 1], ... around the list once, each with its own URL's
 * heartbeat and timeout, as connection name.  On success *out and
 * *used (its index).  On failure -1 and e: with one node, its error;
 * with several, "no RabbitMQ node answered (N tried): last: ...",
 * EX_UNAVAILABLE when any node was unreachable (it may come back), else
 * the code of the refusals (EX_NOPERM login or TLS, EX_CONFIG).
 * cb (may be NULL) hears of each failed node but the round's last, whose
 * error is in e.
 */
int nodes_connect(const struct mk_amqp_node *nodes, size_t n, size_t first,
		  const char *name, struct broker **out, size_t *used,
		  nodes_fail_cb cb, void *arg, struct mk_err *e);

/* Where the next round starts after losing node i of n. */
size_t nodes_after(size_t i, size_t n);

/*
 * "HOST:PORT" of a node ("[::1]:5672" for an IPv6 literal) into buf:
 * what names a node where its URL would be too long (PostgreSQL's
 * application_name); no user or password.
 */
void nodes_address(const struct mk_amqp_node *node, char *buf, size_t sz);

#endif
