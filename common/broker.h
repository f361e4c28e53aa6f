/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * broker: a RabbitMQ connection that publishes with confirms
 * (rabbitmq-c 0.11): the relay's, and the tools' (mikkoo-replay's
 * resurrect, mikkoo-audit and mikkoo-inspect through mqchan and tool).
 *
 * Owns: the connection and its two channels (1 publishes in confirm
 * mode; 2 probes exchanges with passive declares, so a missing exchange
 * closes the probe channel instead of the publishing one and the
 * pipeline of confirms survives), delivery tags, the connection.blocked
 * state, and the cache of exchanges known to exist.
 * Never: knows PostgreSQL, logs, decides an event's fate: it reports
 * ack / nack / return / channel-closed to a callback and its user
 * decides.  The module is named broker, not amqp, so its header cannot
 * shadow rabbitmq-c's <amqp.h>.
 *
 * Deadlines: connect, handshake and RPCs are bounded by the configured
 * timeout; a silent peer is detected by heartbeats (rabbitmq-c checks
 * them inside publish and frame waits) and TCP_USER_TIMEOUT.
 * Errors: EX_UNAVAILABLE (network, closed connection: reconnect later),
 * EX_NOPERM (login refused, vhost not allowed), EX_CONFIG (TLS files).
 */
#ifndef MIKKOO_BROKER_H
#define MIKKOO_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include <amqp.h>

#include "err.h"
#include "event.h"
#include "url.h"

struct broker;

enum broker_ev_kind {
	BROKER_ACK,            /* tag, multiple */
	BROKER_NACK,           /* tag, multiple */
	BROKER_RETURN,         /* ev_id, code, text */
	BROKER_CHANNEL_CLOSED, /* code, text: every unconfirmed tag failed;
				   tags restart at 1 on the new channel */
	BROKER_BLOCKED,        /* text: connection.blocked (an alarm) */
	BROKER_UNBLOCKED,      /* connection.unblocked */
};

struct broker_ev {
	enum broker_ev_kind kind;
	uint64_t tag;
	bool multiple;
	long long ev_id; /* a return's event_id header; -1 none */
	int code;
	const char *text;         /* borrowed for the callback's duration */
	amqp_bytes_t exchange;    /* a return's exchange and routing key, */
	amqp_bytes_t routing_key; /* borrowed likewise */
	bool unreadable;          /* the return's content could not be read:
				   ev_id is -1 and broker_poll fails after
				   the callback (the connection is lost) */
};

typedef void (*broker_cb)(void *arg, const struct broker_ev *ev);

struct broker_opts {
	const struct mk_amqp_url *url;
	const char *display; /* masked URL, for messages */
	const char *name;    /* connection_name shown by RabbitMQ */
	int heartbeat;       /* seconds; 0 disables */
	double timeout;      /* connect/handshake/RPC deadline, seconds */
};

int broker_connect(struct broker **out, const struct broker_opts *o,
		   struct mk_err *e);
/* Close (best effort, bounded) and free; NULL is fine. */
void broker_free(struct broker *b);
/*
 * Free without the close handshake: the socket is closed at once (the
 * server then treats us as gone: unacknowledged deliveries go back).
 * For a connection that is lost or blocked (a memory alarm: the server
 * reads nothing, so a close would wait for the RPC timeout).
 */
void broker_abort(struct broker *b);

/*
 * A fresh publishing channel: close channel 1 (its unconfirmed tags are
 * forgotten) and open it again in confirm mode; tags restart at 1.  A
 * quorum queue's client state lives in the channel: after its leader
 * was lost, a channel opened before the new one was elected goes on
 * nacking (RabbitMQ 3.10, measured: until the old leader's node is
 * back), a new channel is served by the new leader.
 */
int broker_fresh_channel(struct broker *b, struct mk_err *e);

/*
 * Publish m on channel 1 (mandatory); *tag is its delivery tag.
 * EX_DATAERR when m cannot be sent at all (its properties do not fit in
 * a frame): nothing was sent and the connection is fine.
 */
int broker_publish(struct broker *b, const struct mk_message *m, uint64_t *tag,
		   struct mk_err *e);

/*
 * Wait up to timeout_ms for frames, then handle everything already
 * received without waiting again; cb is called for each ack, nack,
 * return and publishing-channel close.  Returns 0, or -1 when the
 * connection is gone (e says why, e.g. "connection closed by RabbitMQ:
 * 320 CONNECTION_FORCED - ...").
 */
int broker_poll(struct broker *b, int timeout_ms, broker_cb cb, void *arg,
		struct mk_err *e);

/*
 * Does the exchange exist?  Cached: found exchanges for a minute, missing
 * ones for a second.  The default exchange ("") always exists.  On
 * *exists == false, why holds the broker's reply ("404 NOT_FOUND - no
 * exchange 'x' in vhost '/'").  -1 only when the connection is gone.
 */
int broker_exchange_exists(struct broker *b, amqp_bytes_t name, bool *exists,
			   char *why, size_t whysz, struct mk_err *e);

/* Consuming (mikkoo-audit): a delivery's tag and message_id. */
struct broker_msg {
	uint64_t tag;
	bool has_id;
	char message_id[256];
};

/* basic.consume on channel 1 with manual acks; EX_NOINPUT when the
 * queue does not exist. */
int broker_consume(struct broker *b, const char *queue, int prefetch,
		   struct mk_err *e);
/* The next delivery: 1, 0 when none came within timeout_ms, -1 error. */
int broker_get(struct broker *b, int timeout_ms, struct broker_msg *m,
	       struct mk_err *e);
int broker_ack(struct broker *b, uint64_t tag, bool multiple, struct mk_err *e);

/*
 * The connection is lost, not refused: it failed under us (socket
 * error, heartbeat timeout, a frame we could not read), or the server
 * closed it for reasons of its own (320 CONNECTION_FORCED: stopping, or
 * an operator; 541 INTERNAL_ERROR), so another node (or this one again)
 * may do.  A close that answers what we asked (403, 530, 540, ...)
 * and a channel's close are not losses.  The tools' own channel code
 * notes its losses with broker_note_lost.
 */
bool broker_lost(const struct broker *b);
void broker_note_lost(struct broker *b);

/*
 * The broker asked us to stop publishing (a resource alarm): since when
 * (monotonic seconds; 0 not blocked) and why.  The change itself is a
 * BROKER_BLOCKED or BROKER_UNBLOCKED event, once.
 */
bool broker_blocked(const struct broker *b);
double broker_blocked_since(const struct broker *b);
const char *broker_blocked_reason(const struct broker *b);

/* The user we logged in as (for the user_id check). */
const char *broker_user(const struct broker *b);

/*
 * For the tools' own channels (BROKER_TOOL_CH and up; common/mqchan.h):
 * the connection, uncorked; the masked URL; and rpc_error's mapping of
 * an RPC reply (a server's close is answered, 403 is EX_NOPERM, the rest
 * EX_UNAVAILABLE).  broker_poll ignores frames of those channels.
 */
#define BROKER_TOOL_CH 3
amqp_connection_state_t broker_conn(struct broker *b);
const char *broker_display(const struct broker *b);
int broker_rpc_error(struct broker *b, amqp_rpc_reply_t r, amqp_channel_t ch,
		     const char *what, struct mk_err *e);

#endif
