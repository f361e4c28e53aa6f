/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * delivery: a message RabbitMQ delivered, as a JSON record, and what its
 * x-death headers say about where it first died.
 *
 * Owns: the record's shape (mikkoo(7), "RabbitMQ messages"): queue (when
 * read from one), exchange, routing_key, redelivered, the properties that
 * are set, headers with their AMQP types, x_death and first_death decoded
 * (when the message has them), and the body as text when it is valid
 * UTF-8, else as body_base64.  Also: the first death of a dead letter,
 * and the properties to re-publish it with (death headers dropped), for
 * mikkoo-replay --amqp-queue; and the check of a queue or exchange name
 * given on a command line.
 * Never: does I/O, logs, changes the message it is given.
 *
 * Typed values: {"type":T,"value":V} with T one of bool, int8, uint8,
 * int16, uint16, int32, uint32, int64, uint64, float, double, decimal
 * (value a string such as "12.50"), string (value a JSON string; a string
 * that is not valid UTF-8 has "base64" instead of "value"), bytes
 * ("base64"), timestamp (RFC 3339 UTC), table (an object of typed values),
 * array (a list of typed values), void (null).
 */
#ifndef MIKKOO_DELIVERY_H
#define MIKKOO_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <jansson.h>

#include "err.h"

struct delivery {
	const char *queue; /* the queue read from; NULL for a tap */
	amqp_bytes_t exchange;
	amqp_bytes_t routing_key;
	bool redelivered;
	const amqp_message_t *msg;
};

/* The record; a new reference, NULL only when memory ran out. */
json_t *delivery_json(const struct delivery *d);

/* One AMQP field value as a typed JSON value (new reference). */
json_t *delivery_value_json(const amqp_field_value_t *v);

/*
 * The first death of a dead letter.  Everything is borrowed from the
 * message's properties.  x-first-death-* headers name it; the x-death
 * entry with that queue and reason gives its routing keys (without
 * those headers, the oldest x-death entry is the first death).
 */
struct death {
	amqp_bytes_t exchange;    /* the exchange it was published to */
	amqp_bytes_t queue;       /* the queue it died in */
	amqp_bytes_t reason;      /* rejected, expired, maxlen, ... */
	const amqp_array_t *keys; /* routing keys (CC's included) */
	long long count;          /* deaths in that queue, that reason */
};

/*
 * Fill d: 1 when p says where the message first died, 0 when it is not a
 * dead letter (no usable x-death), never -1.
 */
int death_first(const amqp_basic_properties_t *p, struct death *d);

/* Is key one of d's routing keys? */
bool death_has_key(const struct death *d, const char *key);

/*
 * The properties to re-publish a dead letter with: p's, with x-death,
 * x-first-death-*, x-last-death-* and x-delivery-count removed from the
 * headers (the headers property is dropped when nothing is left).  With
 * cc (routing keys beyond the first, NULL for none), a CC header of those
 * keys replaces any CC the message has; with drop_cc, CC and BCC headers
 * are removed.  Tables are allocated in pool and borrow p's entries.
 * 0, or -1 when memory ran out.
 */
int death_strip(const amqp_basic_properties_t *p, const amqp_array_t *cc,
		bool drop_cc, amqp_pool_t *pool, amqp_basic_properties_t *out);

/*
 * Check a queue or exchange name from a command line: 1 to 255 bytes of
 * valid UTF-8 (AMQP's short string; RabbitMQ refuses other bytes).
 * EX_USAGE with "what 'name' ..." otherwise.
 */
int delivery_name_check(const char *what, const char *name, struct mk_err *e);

/* Base64 (RFC 4648, padded) of n bytes: a new string, caller frees. */
char *delivery_base64(const void *s, size_t n);

/*
 * Is key (len bytes) one of the headers RabbitMQ writes when it
 * dead-letters a message (x-death, x-first-death-*, x-last-death-*,
 * x-delivery-count)?  The one list of them.
 */
bool delivery_death_header(const char *key, size_t len);

#endif
