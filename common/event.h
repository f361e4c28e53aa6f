/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * event: map one PgQ event row to one AMQP message.  Pure: no I/O, no
 * clock, no randomness (the caller passes the per-publish values in
 * struct mk_map_ctx), so every rule below is unit-tested.
 *
 * Owns: the mapping of the original mikkoo, with our deliberate
 * differences (see mikkoo(7)):
 *   exchange     = ev_extra1 (NULL: bad data; "" is the default exchange)
 *   routing key  = ev_type   (NULL: bad data)
 *   body         = ev_data, bytes unchanged (NULL: empty body)
 *   content_type = ev_extra2 when non-empty
 *   app_id "mikkoo", correlation_id (ctx), timestamp = ev_time seconds
 *   (floor; none before 1970, as AMQP's timestamp is unsigned),
 *   delivery_mode 2 when ctx->persistent
 *   headers      = ev_extra4 (a JSON object) when non-empty
 *   ev_extra3    = JSON object of properties when non-empty (NULL and ''
 *                  are absent, as for ev_extra4); whitelisted keys (app_id,
 *                  content_encoding, content_type, correlation_id,
 *                  delivery_mode, expiration, headers, message_id,
 *                  priority, timestamp, type, user_id) replace the
 *                  automatic values; "headers" replaces ev_extra4's table
 *                  wholesale; null unsets (for headers: the user's,
 *                  not the automatic ones); other keys are ignored.
 *                  ev_extra4 must be valid even when replaced.
 *   then headers origin (ctx), sequence (int64, ctx), timestamp
 *   ("2017-02-23T06:17:14.471682+00:00", always 6 fractional digits),
 *   txid (int64) and, for an event with one, lsn (its WAL position,
 *   "X/Y") are added unless present (user values win), and
 *   event_id (int64 ev_id) is always set by us (returns are matched on it;
 *   a user's event_id keeps its place in the table but gets our value).
 * Property types in ev_extra3: strings of at most 255 bytes; expiration
 * milliseconds 0..4294967295 as digits in a string or an integer
 * (RabbitMQ closes the channel for anything else); delivery_mode 1 or 2;
 * priority 0..255; timestamp a non-negative integer; headers an object.
 * JSON values become AMQP field values: string S, integer I (fits 32
 * bits) else l, real d, true/false t, null V, object F, array A.
 *
 * Bad data (never retried; the caller dead-letters the event): what the
 * source refused (ev->refused, its words), malformed
 * or non-object JSON in ev_extra3/ev_extra4, wrong property types or
 * ranges, NULL exchange or routing key, names or keys over 255 bytes,
 * nesting deeper than ctx->max_depth, more than ctx->max_headers headers,
 * an event larger than ctx->max_event_bytes, user_id different from
 * ctx->user (unless ctx->allow_user_id), CC/BCC headers when
 * ctx->deny_cc_bcc, an exchange not in ctx->exchanges (when set).
 *
 * Routes by media type (mikkoo.yaml(5) routes): when ctx has routes or
 * a route_default, an event with no exchange (ev_extra1 NULL or '') goes
 * to the exchange of the route whose media type is the message's
 * content_type (ev_extra2, or ev_extra3's; parameters after ';' and case
 * ignored), else to route_default; with neither it is bad data
 * ("ev_extra1 (exchange) is NULL and no route matches content type
 * ...").  An event that names its exchange is never routed.  Without
 * routes nothing changes.
 * event_map() then returns -1, e->code EX_DATAERR and e->msg a precise
 * reason, e.g.
 *   "ev_extra3 is not valid JSON: '}' expected near end of file at line 1,
 *    column 9"
 *   "ev_extra3 property 'delivery_mode' must be 1 or 2, not \"2\""
 *   "ev_extra1 (exchange) is NULL"
 *
 * Values quoted in a reason are JSON-escaped, cut to about 64 bytes,
 * and always valid UTF-8 without control characters (safe for a log line
 * and mikkoo.dead_letter's text column).
 *
 * Memory: struct mk_message borrows the event's and ctx's bytes, and owns
 * what it builds (an amqp_pool_t and parsed JSON).  message_reset()
 * between events keeps the pool's blocks, so the per-event cost is not a
 * malloc storm; message_release() frees everything.
 */
#ifndef MIKKOO_EVENT_H
#define MIKKOO_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>
#include <jansson.h>

#include "err.h"

/* A PgQ event as read from pgq.get_batch_events; strings are borrowed. */
struct mk_event {
	long long ev_id;
	long long ev_time_us; /* microseconds since 1970-01-01 UTC */
	long long ev_txid;
	int ev_retry;        /* SQL NULL is 0 */
	const char *ev_type; /* NULL for SQL NULL; the same below */
	size_t ev_type_len;
	const char *ev_data;
	size_t ev_data_len;
	const char *extra[4]; /* ev_extra1 .. ev_extra4 */
	size_t extra_len[4];
	/*
	 * The octet length of ev_type, ev_data and the extras as the source
	 * measured it; a source may leave the text fields NULL for an event
	 * over the limit (event_map refuses it by this).  0: the lengths
	 * above are the whole event.
	 */
	size_t size;
	/*
	 * A source's own verdict: why it refuses the event (a forged
	 * message, a row PostgreSQL could not render); event_map then
	 * fails with it, so it is dead-lettered and never published.
	 * NULL for an event to map.
	 */
	const char *refused;
	/* Header "lsn" (a WAL position "X/Y", slot events); NULL none. */
	const char *lsn;
};

/* A route: messages of this media type ("type/subtype") go to exchange. */
struct mk_route {
	char *media_type;
	char *exchange;
};

/* Everything a mapping needs that is not in the event. */
struct mk_map_ctx {
	const char *app_id; /* "mikkoo" */
	const char *origin; /* the relay host's FQDN */
	const char *user;   /* the AMQP user, for the user_id check */
	bool persistent;
	bool allow_user_id;     /* false: user_id must equal user */
	bool deny_cc_bcc;       /* true: CC/BCC headers are bad data */
	char *const *exchanges; /* allowlist, or NULL for any exchange */
	size_t nexchanges;
	const struct mk_route *routes; /* for events without an exchange */
	size_t nroutes;
	const char *route_default; /* NULL: no default route */
	int max_depth;             /* headers nesting (table = 1), e.g. 32 */
	/*
	 * The user's top-level headers (ev_extra4 or ev_extra3's
	 * "headers", a user event_id included); the automatic ones come on
	 * top, so a message has at most max_headers + 6.
	 */
	int max_headers;
	size_t max_event_bytes;  /* ev_type + ev_data + extras, as pgq.c */
	long long sequence;      /* header "sequence" for this publish */
	char correlation_id[37]; /* UUIDv4 text for this publish */
};

struct mk_message {
	amqp_bytes_t exchange;
	amqp_bytes_t routing_key;
	amqp_bytes_t body;
	amqp_basic_properties_t props;
	size_t user_json_len; /* bytes of ev_extra3 and ev_extra4: bounds
				   what the properties can take encoded */
	/* private */
	amqp_pool_t pool;
	json_t *json[2];
	char timestamp_hdr[40];
};

void message_init(struct mk_message *m);
void message_reset(struct mk_message *m);
void message_release(struct mk_message *m);

/* Map ev into m (reset first).  0, or -1 with a bad-data reason in e. */
int event_map(const struct mk_event *ev, const struct mk_map_ctx *ctx,
	      struct mk_message *m, struct mk_err *e);

/*
 * Format ev_time like the original's header: "YYYY-MM-DDTHH:MM:SS.ffffff
 * +00:00" (no space before +).  buf must hold 33 bytes.
 */
void event_iso_time(long long time_us, char *buf, size_t bufsz);

/*
 * The exchange routes send a message of content type ct (len bytes; NULL
 * for none) to: the matching route's, else route_default, else NULL.
 */
const char *
event_route(const struct mk_map_ctx *ctx, const char *ct, size_t len);

/* The event_id header of a (returned) message; -1 if absent. */
long long event_id_of(const amqp_basic_properties_t *props);

#endif
