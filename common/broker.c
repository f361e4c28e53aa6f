/* SPDX-License-Identifier: BSD-3-Clause */
/* broker: a confirm-mode publishing connection to RabbitMQ. */
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "broker.h"
#include "mono.h"

#define PUB_CH 1
#define PROBE_CH 2
#define CACHE_SLOTS 256
#define CACHE_FOUND_TTL 60.0
#define CACHE_MISSING_TTL 1.0
#define RETURN_READ_TIMEOUT 30 /* s, for a returned message's content */

struct cache_slot {
	double expires;
	bool exists;
	unsigned char len;
	char name[256];
	char why[200];
};

struct broker {
	amqp_connection_state_t conn;
	char *display;
	char user[256];
	uint64_t last_tag;
	bool probe_open;
	double blocked_since; /* mono time of connection.blocked; 0 not */
	bool lost;            /* see broker_lost */
	bool corked;          /* TCP_CORK set by a run of publishes */
	amqp_bytes_t scratch; /* for measuring big properties */
	size_t frame_max;     /* negotiated at login */
	char blocked_reason[128];
	struct cache_slot cache[CACHE_SLOTS];
};

static struct timeval
tv_of(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - floor(s)) * 1e6);
	return tv;
}

/* "404 NOT_FOUND - no exchange 'x' in vhost '/'" */
static void
reply_text(char *buf, size_t sz, unsigned code, amqp_bytes_t text)
{
	snprintf(buf, sz, "%u %.*s", code, (int)text.len,
		 (const char *)text.bytes);
}

/*
 * A server's connection.close that is about the node, not about what we
 * asked: 320 CONNECTION_FORCED (the node is stopping, or an operator
 * closed us) and 541 INTERNAL_ERROR.  Another node may do.
 */
static bool
closed_for_node(unsigned code)
{
	return code == 320 || code == 541;
}

/*
 * Turn a non-normal RPC reply into an error, answering a close the
 * server sent so the connection or channel ends cleanly.
 */
static int
rpc_error(struct broker *b, amqp_rpc_reply_t r, amqp_channel_t ch,
	  const char *what, struct mk_err *e)
{
	char txt[512];

	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_NONE:
		b->lost = true;
		return mk_err_set(e, EX_UNAVAILABLE,
				  "%s: no reply from "
				  "RabbitMQ",
				  what);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		b->lost = true;
		return mk_err_set(e, EX_UNAVAILABLE, "%s: %s", what,
				  amqp_error_string2(r.library_error));
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		break;
	}
	if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *c = r.reply.decoded;
		amqp_connection_close_ok_t ok;

		reply_text(txt, sizeof(txt), c->reply_code, c->reply_text);
		amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
				 &ok);
		b->lost = closed_for_node(c->reply_code);
		return mk_err_set(e,
				  (c->reply_code == 403 || c->reply_code == 530)
					  ? EX_NOPERM
					  : EX_UNAVAILABLE,
				  "%s: connection closed by RabbitMQ: %s", what,
				  txt);
	}
	if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *c = r.reply.decoded;
		amqp_channel_close_ok_t ok;

		reply_text(txt, sizeof(txt), c->reply_code, c->reply_text);
		amqp_send_method(b->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD,
				 &ok);
		return mk_err_set(
			e, c->reply_code == 403 ? EX_NOPERM : EX_UNAVAILABLE,
			"%s: channel closed by RabbitMQ: %s", what, txt);
	}
	return mk_err_set(e, EX_UNAVAILABLE, "%s: unexpected %s", what,
			  amqp_method_name(r.reply.id));
}

static int
open_publish_channel(struct broker *b, struct mk_err *e)
{
	amqp_channel_open(b->conn, PUB_CH);
	if (rpc_error(b, amqp_get_rpc_reply(b->conn), PUB_CH,
		      "opening the channel", e) < 0)
		return -1;
	amqp_confirm_select(b->conn, PUB_CH);
	if (rpc_error(b, amqp_get_rpc_reply(b->conn), PUB_CH, "confirm.select",
		      e) < 0)
		return -1;
	b->last_tag = 0;
	return 0;
}

static void cork(struct broker *b, bool on);
static int handle_frame(struct broker *b, amqp_frame_t *f, broker_cb cb,
			void *arg, struct mk_err *e);

/* For frames of a channel that is gone. */
static void
ignore_ev(void *arg, const struct broker_ev *ev)
{
	(void)arg;
	(void)ev;
}

int
broker_fresh_channel(struct broker *b, struct mk_err *e)
{
	struct timeval zero = { 0, 0 };
	amqp_rpc_reply_t r;
	amqp_frame_t f;

	cork(b, false);
	r = amqp_channel_close(b->conn, PUB_CH, AMQP_REPLY_SUCCESS);
	/* A close the server crossed with its own is answered by it. */
	if (r.reply_type != AMQP_RESPONSE_NORMAL &&
	    rpc_error(b, r, PUB_CH, "closing the channel", e) < 0 &&
	    r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION)
		return -1;
	if (open_publish_channel(b, e) < 0)
		return mk_err_prefix(e, "RabbitMQ '%s'", b->display);
	/*
	 * Confirms of the old channel that came during those RPCs were put
	 * aside by rabbitmq-c; their tags would be taken for the new
	 * channel's: drop them (connection frames are still heard).
	 */
	while (amqp_frames_enqueued(b->conn)) {
		if (amqp_simple_wait_frame_noblock(b->conn, &f, &zero) !=
		    AMQP_STATUS_OK)
			break;
		if (handle_frame(b, &f, ignore_ev, NULL, e) < 0) {
			b->lost = true;
			return -1;
		}
	}
	return 0;
}

static int
open_probe_channel(struct broker *b, struct mk_err *e)
{
	amqp_channel_open(b->conn, PROBE_CH);
	if (rpc_error(b, amqp_get_rpc_reply(b->conn), PROBE_CH,
		      "opening the probe channel", e) < 0)
		return -1;
	b->probe_open = true;
	return 0;
}

static amqp_table_entry_t
bool_entry(const char *k, bool v)
{
	amqp_table_entry_t t;

	t.key = amqp_cstring_bytes(k);
	t.value.kind = AMQP_FIELD_KIND_BOOLEAN;
	t.value.value.boolean = v;
	return t;
}

static amqp_table_entry_t
str_entry(const char *k, const char *v)
{
	amqp_table_entry_t t;

	t.key = amqp_cstring_bytes(k);
	t.value.kind = AMQP_FIELD_KIND_UTF8;
	t.value.value.bytes = amqp_cstring_bytes(v);
	return t;
}

static int
open_socket(struct broker *b, const struct broker_opts *o, struct mk_err *e)
{
	const struct mk_amqp_url *u = o->url;
	amqp_socket_t *s;
	struct timeval tv = tv_of(o->timeout);
	int st, fd;
	unsigned int ms;

	if (u->tls) {
		s = amqp_ssl_socket_new(b->conn);
		if (s == NULL)
			return mk_err_set(e, EX_OSERR,
					  "cannot create a TLS "
					  "socket");
		if (amqp_ssl_socket_set_ssl_versions(s, AMQP_TLSv1_2,
						     AMQP_TLSvLATEST))
			return mk_err_set(e, EX_SOFTWARE,
					  "TLS 1.2 is not "
					  "supported by this OpenSSL");
		if (u->cacertfile &&
		    amqp_ssl_socket_set_cacert(s, u->cacertfile))
			return mk_err_set(e, EX_CONFIG,
					  "cannot load CA file "
					  "'%s'",
					  u->cacertfile);
		if (u->key_password)
			amqp_ssl_socket_set_key_passwd(s, u->key_password);
		if (u->certfile && u->keyfile &&
		    amqp_ssl_socket_set_key(s, u->certfile, u->keyfile))
			return mk_err_set(e, EX_CONFIG,
					  "cannot load client "
					  "certificate '%s' or key '%s'",
					  u->certfile, u->keyfile);
		amqp_ssl_socket_set_verify_peer(s, u->verify != 0);
		amqp_ssl_socket_set_verify_hostname(s, u->verify != 0);
	} else {
		s = amqp_tcp_socket_new(b->conn);
		if (s == NULL)
			return mk_err_set(e, EX_OSERR,
					  "cannot create a "
					  "socket");
	}
	st = amqp_socket_open_noblock(s, u->host, u->port, &tv);
	if (st != AMQP_STATUS_OK)
		/* A certificate we must not trust is a refusal, not an
		 * outage: retrying will not help. */
		return mk_err_set(
			e,
			st == AMQP_STATUS_SSL_ERROR ||
					st == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED ||
					st == AMQP_STATUS_SSL_PEER_VERIFY_FAILED
				? EX_NOPERM
				: EX_UNAVAILABLE,
			"cannot connect to RabbitMQ '%s': %s", o->display,
			amqp_error_string2(st));
	/*
	 * rabbitmq-c 0.11 can block in send() forever on a black-holed
	 * peer; the kernel gives up on unacknowledged data after this.
	 */
	fd = amqp_get_sockfd(b->conn);
	ms = (unsigned)((o->heartbeat > 0 ? o->heartbeat * 2 : 30) * 1000);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	return 0;
}

int
broker_connect(struct broker **out, const struct broker_opts *o,
	       struct mk_err *e)
{
	const struct mk_amqp_url *u = o->url;
	struct broker *b;
	struct timeval tv = tv_of(o->timeout);
	amqp_table_entry_t caps[5], props[5];
	amqp_table_t caps_t, props_t;
	amqp_rpc_reply_t r;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	b->display = strdup(o->display);
	snprintf(b->user, sizeof(b->user), "%s", u->user);
	b->conn = amqp_new_connection();
	if (b->conn == NULL || b->display == NULL) {
		mk_err_set(e, EX_OSERR, "out of memory");
		goto fail;
	}
	if (open_socket(b, o, e) < 0)
		goto fail;
	amqp_set_handshake_timeout(b->conn, &tv);
	amqp_set_rpc_timeout(b->conn, &tv);

	/* connection.blocked is opt-in: without it an alarm looks like a
	 * hung connection. */
	caps[0] = bool_entry("connection.blocked", true);
	caps[1] = bool_entry("authentication_failure_close", true);
	caps[2] = bool_entry("publisher_confirms", true);
	caps[3] = bool_entry("exchange_exchange_bindings", true);
	caps[4] = bool_entry("basic.nack", true);
	caps_t.num_entries = 5;
	caps_t.entries = caps;
	props[0] = str_entry("product", "mikkoo");
	props[1] = str_entry("version", MIKKOO_VERSION);
	props[2] = str_entry("connection_name", o->name);
	props[3] = str_entry("information", "PgQ to RabbitMQ relay");
	props[4].key = amqp_cstring_bytes("capabilities");
	props[4].value.kind = AMQP_FIELD_KIND_TABLE;
	props[4].value.value.table = caps_t;
	props_t.num_entries = 5;
	props_t.entries = props;

	r = amqp_login_with_properties(
		b->conn, u->vhost, 0,
		u->frame_max > 0 ? u->frame_max : AMQP_DEFAULT_FRAME_SIZE,
		o->heartbeat, &props_t, AMQP_SASL_METHOD_PLAIN, u->user,
		u->password);
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_CONNECTION_CLOSED) {
		/* Old brokers refuse a login by closing the socket. */
		mk_err_set(e, EX_NOPERM,
			   "cannot log in to RabbitMQ '%s': "
			   "connection closed during login (wrong user or "
			   "password?)",
			   o->display);
		goto fail;
	}
	if (rpc_error(b, r, 0, "login", e) < 0) {
		mk_err_prefix(e, "cannot log in to RabbitMQ '%s'", o->display);
		goto fail;
	}
	b->frame_max = (size_t)amqp_get_frame_max(b->conn);
	if (open_publish_channel(b, e) < 0 || open_probe_channel(b, e) < 0) {
		mk_err_prefix(e, "RabbitMQ '%s'", o->display);
		goto fail;
	}
	*out = b;
	return 0;
fail:
	broker_free(b);
	return -1;
}

/*
 * rabbitmq-c writes every frame with its own send(), three per message,
 * and on loopback each send that pushes a segment also runs RabbitMQ's
 * receive path in our time slice.  A run of publishes is corked so
 * they leave in full segments; anything that then waits for an answer
 * (a poll for confirms, an RPC, a close) uncorks first, or the kernel
 * would hold the data up to 200 ms.
 */
static void
cork(struct broker *b, bool on)
{
	int fd = amqp_get_sockfd(b->conn), v = on;

	if (fd >= 0 && b->corked != on &&
	    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v)) == 0)
		b->corked = on;
}

void
broker_free(struct broker *b)
{
	if (b == NULL)
		return;
	if (b->conn) {
		/* Bounded by the RPC timeout set at connect. */
		if (amqp_get_socket(b->conn) && amqp_get_sockfd(b->conn) >= 0) {
			cork(b, false);
			amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
		}
		amqp_destroy_connection(b->conn);
	}
	free(b->scratch.bytes);
	free(b->display);
	free(b);
}

void
broker_abort(struct broker *b)
{
	if (b == NULL)
		return;
	if (b->conn)
		amqp_destroy_connection(b->conn);
	free(b->scratch.bytes);
	free(b->display);
	free(b);
}

/*
 * Do m's properties fit in one header frame?  rabbitmq-c finds out only
 * after it sent the basic.publish method, and RabbitMQ then closes the
 * connection: the same event again after every reconnect.  A JSON value
 * takes at most 2.5 times its text encoded (a "0," becomes an I32), so
 * only events with big ev_extra3/ev_extra4 are encoded here to measure.
 */
static int
props_fit(struct broker *b, const struct mk_message *m, struct mk_err *e)
{
	size_t room;
	int n;

	if (m->user_json_len == 0)
		return 0; /* most events: only our own properties */
	/* frame header 7, class, weight and body size 12, frame end 1 */
	room = b->frame_max > 20 ? b->frame_max - 20 : 0;
	if (m->user_json_len < room / 4 && room > 8192 &&
	    m->user_json_len * 4 + 8192 < room)
		return 0;
	if (b->scratch.len < room) {
		void *p = realloc(b->scratch.bytes, room);

		if (p == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		b->scratch.bytes = p;
		b->scratch.len = room;
	}
	n = amqp_encode_properties(AMQP_BASIC_CLASS, (void *)&m->props,
				   (amqp_bytes_t){ room, b->scratch.bytes });
	if (n < 0)
		return mk_err_set(e, EX_DATAERR,
				  "the message's properties "
				  "and headers do not fit in one AMQP frame "
				  "of %zu bytes (the connection's frame_max)",
				  room + 20);
	return 0;
}

int
broker_publish(struct broker *b, const struct mk_message *m, uint64_t *tag,
	       struct mk_err *e)
{
	int st;

	if (props_fit(b, m, e) < 0)
		return -1;
	cork(b, true);
	st = amqp_basic_publish(b->conn, PUB_CH, m->exchange, m->routing_key, 1,
				0, &m->props, m->body);
	if (st != AMQP_STATUS_OK) {
		b->lost = true;
		return mk_err_set(e, EX_UNAVAILABLE,
				  "publishing to RabbitMQ "
				  "'%s': %s",
				  b->display, amqp_error_string2(st));
	}
	*tag = ++b->last_tag;
	return 0;
}

/*
 * The content of a returned message: its header frame and body frames,
 * read here instead of with amqp_read_message, which copies the
 * properties with amqp_basic_properties_clone and so refuses what it
 * cannot copy (a header with an empty name: "invalid parameter").  Only
 * the event_id header is looked at; the body is skipped.  0, or an
 * AMQP_STATUS_* (the connection is then unusable).
 */
static int
read_returned(struct broker *b, amqp_channel_t ch, long long *ev_id)
{
	struct timeval tv;
	amqp_frame_t f;
	uint64_t left;
	int st;

	tv.tv_sec = RETURN_READ_TIMEOUT;
	tv.tv_usec = 0;
	st = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
	if (st != AMQP_STATUS_OK)
		return st;
	/* content frames follow their method on its channel, and no other
	 * channel of ours has anything in flight meanwhile */
	if (f.channel != ch || f.frame_type != AMQP_FRAME_HEADER)
		return AMQP_STATUS_UNEXPECTED_STATE;
	*ev_id = event_id_of(f.payload.properties.decoded);
	left = f.payload.properties.body_size;
	while (left > 0) {
		st = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
		if (st != AMQP_STATUS_OK)
			return st;
		if (f.channel != ch || f.frame_type != AMQP_FRAME_BODY ||
		    f.payload.body_fragment.len > left)
			return AMQP_STATUS_UNEXPECTED_STATE;
		left -= f.payload.body_fragment.len;
	}
#ifdef MIKKOO_TEST_HOOKS
	/* test builds: act as if rabbitmq-c could not read it */
	if (getenv("MIKKOO_FAULT_RETURN_UNREADABLE"))
		return AMQP_STATUS_BAD_AMQP_DATA;
#endif
	return AMQP_STATUS_OK;
}

static int
handle_return(struct broker *b, amqp_frame_t *f, broker_cb cb, void *arg,
	      struct mk_err *e)
{
	amqp_basic_return_t *ret = f->payload.method.decoded;
	struct broker_ev ev = { .kind = BROKER_RETURN };
	char txt[512];
	int st;

	reply_text(txt, sizeof(txt), ret->reply_code, ret->reply_text);
	ev.code = ret->reply_code;
	ev.text = txt;
	/* borrowed from the frame, which stays until buffers are released */
	ev.exchange = ret->exchange;
	ev.routing_key = ret->routing_key;
	/* basic.return carries no delivery tag: our event_id header says
	 * which event came back, the exchange and key confirm it */
	ev.ev_id = -1;
	st = read_returned(b, f->channel, &ev.ev_id);
	if (st != AMQP_STATUS_OK) {
		/* still that event's fate: the relay finds it by its
		 * exchange and key, then the connection is given up */
		ev.ev_id = -1;
		ev.unreadable = true;
		cb(arg, &ev);
		return mk_err_set(e, EX_UNAVAILABLE,
				  "RabbitMQ '%s': reading "
				  "a returned message: %s",
				  b->display, amqp_error_string2(st));
	}
	cb(arg, &ev);
	return 0;
}

static int
handle_frame(struct broker *b, amqp_frame_t *f, broker_cb cb, void *arg,
	     struct mk_err *e)
{
	struct broker_ev ev = { 0 };
	char txt[512];

	if (f->frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f->payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *a = f->payload.method.decoded;

		ev.kind = BROKER_ACK;
		ev.tag = a->delivery_tag;
		ev.multiple = a->multiple;
		cb(arg, &ev);
		return 0;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *n = f->payload.method.decoded;

		ev.kind = BROKER_NACK;
		ev.tag = n->delivery_tag;
		ev.multiple = n->multiple;
		cb(arg, &ev);
		return 0;
	}
	case AMQP_BASIC_RETURN_METHOD:
		return handle_return(b, f, cb, arg, e);
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *c = f->payload.method.decoded;
		amqp_channel_close_ok_t ok;

		reply_text(txt, sizeof(txt), c->reply_code, c->reply_text);
		if (amqp_send_method(b->conn, f->channel,
				     AMQP_CHANNEL_CLOSE_OK_METHOD, &ok))
			return mk_err_set(e, EX_UNAVAILABLE,
					  "RabbitMQ '%s': "
					  "connection lost after a channel "
					  "close (%s)",
					  b->display, txt);
		if (f->channel != PUB_CH) {
			/* A tool's channel is the tool's business. */
			if (f->channel == PROBE_CH)
				b->probe_open = false;
			return 0;
		}
		ev.kind = BROKER_CHANNEL_CLOSED;
		ev.code = c->reply_code;
		ev.text = txt;
		cb(arg, &ev);
		return open_publish_channel(b, e);
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *c = f->payload.method.decoded;
		amqp_connection_close_ok_t ok;

		reply_text(txt, sizeof(txt), c->reply_code, c->reply_text);
		amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
				 &ok);
		b->lost = closed_for_node(c->reply_code);
		return mk_err_set(e, EX_UNAVAILABLE,
				  "connection closed by "
				  "RabbitMQ '%s': %s",
				  b->display, txt);
	}
	case AMQP_CONNECTION_BLOCKED_METHOD: {
		amqp_connection_blocked_t *bl = f->payload.method.decoded;

		ev.kind = BROKER_BLOCKED;
		if (b->blocked_since == 0)
			b->blocked_since = now_mono();
		snprintf(b->blocked_reason, sizeof(b->blocked_reason), "%.*s",
			 (int)bl->reason.len, (const char *)bl->reason.bytes);
		ev.text = b->blocked_reason;
		cb(arg, &ev);
		return 0;
	}
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		ev.kind = BROKER_UNBLOCKED;
		b->blocked_since = 0;
		b->blocked_reason[0] = '\0';
		cb(arg, &ev);
		return 0;
	default:
		return 0;
	}
}

int
broker_poll(struct broker *b, int timeout_ms, broker_cb cb, void *arg,
	    struct mk_err *e)
{
	struct timeval tv;
	amqp_frame_t f;
	int st;

	cork(b, false);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	for (;;) {
		st = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
		if (st == AMQP_STATUS_TIMEOUT)
			break;
		if (st != AMQP_STATUS_OK) {
			b->lost = true;
			return mk_err_set(e, EX_UNAVAILABLE,
					  "RabbitMQ '%s': "
					  "%s",
					  b->display, amqp_error_string2(st));
		}
		if (handle_frame(b, &f, cb, arg, e) < 0)
			return -1;
		/* Only the first wait may block. */
		tv.tv_sec = 0;
		tv.tv_usec = 0;
	}
	/* Decoded frames live in per-channel pools until released. */
	if (!amqp_frames_enqueued(b->conn))
		amqp_maybe_release_buffers(b->conn);
	return 0;
}

static struct cache_slot *
cache_slot(struct broker *b, amqp_bytes_t name)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < name.len; i++)
		h = (h ^ ((const unsigned char *)name.bytes)[i]) * 16777619u;
	return &b->cache[h % CACHE_SLOTS];
}

int
broker_exchange_exists(struct broker *b, amqp_bytes_t name, bool *exists,
		       char *why, size_t whysz, struct mk_err *e)
{
	struct cache_slot *s;
	amqp_rpc_reply_t r;
	double now;

	*exists = true;
	if (name.len == 0)
		return 0;
	if (name.len > 255) {
		*exists = false;
		snprintf(why, whysz, "exchange name is over 255 bytes");
		return 0;
	}
	s = cache_slot(b, name);
	now = now_mono();
	if (s->len == name.len && memcmp(s->name, name.bytes, name.len) == 0 &&
	    s->expires > now) {
		*exists = s->exists;
		if (!s->exists)
			snprintf(why, whysz, "%s", s->why);
		return 0;
	}
	cork(b, false);
	if (!b->probe_open && open_probe_channel(b, e) < 0)
		return -1;
	amqp_exchange_declare(b->conn, PROBE_CH, name, amqp_cstring_bytes(""),
			      1, 0, 0, 0, amqp_empty_table);
	r = amqp_get_rpc_reply(b->conn);
	s->len = (unsigned char)name.len;
	memcpy(s->name, name.bytes, name.len);
	s->why[0] = '\0';
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *c = r.reply.decoded;
		amqp_channel_close_ok_t ok;

		reply_text(s->why, sizeof(s->why), c->reply_code,
			   c->reply_text);
		if (amqp_send_method(b->conn, PROBE_CH,
				     AMQP_CHANNEL_CLOSE_OK_METHOD, &ok))
			return mk_err_set(e, EX_UNAVAILABLE,
					  "RabbitMQ '%s': "
					  "connection lost",
					  b->display);
		b->probe_open = false;
		s->exists = false;
		s->expires = now + CACHE_MISSING_TTL;
		*exists = false;
		snprintf(why, whysz, "%s", s->why);
		return 0;
	}
	if (rpc_error(b, r, PROBE_CH, "checking an exchange", e) < 0) {
		s->len = 0;
		return -1;
	}
	s->exists = true;
	s->expires = now + CACHE_FOUND_TTL;
	return 0;
}

bool
broker_lost(const struct broker *b)
{
	return b->lost;
}

void
broker_note_lost(struct broker *b)
{
	b->lost = true;
}

bool
broker_blocked(const struct broker *b)
{
	return b->blocked_since > 0;
}

double
broker_blocked_since(const struct broker *b)
{
	return b->blocked_since;
}

const char *
broker_blocked_reason(const struct broker *b)
{
	return b->blocked_reason;
}

const char *
broker_user(const struct broker *b)
{
	return b->user;
}

amqp_connection_state_t
broker_conn(struct broker *b)
{
	cork(b, false);
	return b->conn;
}

const char *
broker_display(const struct broker *b)
{
	return b->display;
}

int
broker_rpc_error(struct broker *b, amqp_rpc_reply_t r, amqp_channel_t ch,
		 const char *what, struct mk_err *e)
{
	return rpc_error(b, r, ch, what, e);
}

int
broker_consume(struct broker *b, const char *queue, int prefetch,
	       struct mk_err *e)
{
	amqp_rpc_reply_t r;

	cork(b, false);
	amqp_basic_qos(b->conn, PUB_CH, 0, (uint16_t)prefetch, 0);
	if (rpc_error(b, amqp_get_rpc_reply(b->conn), PUB_CH, "basic.qos", e) <
	    0)
		return -1;
	amqp_basic_consume(b->conn, PUB_CH, amqp_cstring_bytes(queue),
			   amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
	    ((amqp_channel_close_t *)r.reply.decoded)->reply_code == 404) {
		rpc_error(b, r, PUB_CH, "basic.consume", e);
		return mk_err_set(e, EX_NOINPUT,
				  "no RabbitMQ queue '%s' on "
				  "'%s'",
				  queue, b->display);
	}
	return rpc_error(b, r, PUB_CH, "basic.consume", e);
}

int
broker_get(struct broker *b, int timeout_ms, struct broker_msg *m,
	   struct mk_err *e)
{
	struct timeval tv;
	amqp_envelope_t env;
	amqp_rpc_reply_t r;

	cork(b, false);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	amqp_maybe_release_buffers(b->conn);
	r = amqp_consume_message(b->conn, &env, &tv, 0);
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_TIMEOUT)
		return 0;
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		/* (a close from the server arrives as an unexpected frame) */
		b->lost = true;
		return mk_err_set(
			e, EX_UNAVAILABLE, "RabbitMQ '%s': %s", b->display,
			r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
				? amqp_error_string2(r.library_error)
				: "unexpected reply while consuming");
	}
	m->tag = env.delivery_tag;
	m->has_id =
		(env.message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) &&
		env.message.properties.message_id.len < sizeof(m->message_id);
	m->message_id[0] = '\0';
	if (m->has_id)
		snprintf(m->message_id, sizeof(m->message_id), "%.*s",
			 (int)env.message.properties.message_id.len,
			 (const char *)env.message.properties.message_id.bytes);
	amqp_destroy_envelope(&env);
	return 1;
}

int
broker_ack(struct broker *b, uint64_t tag, bool multiple, struct mk_err *e)
{
	cork(b, false);
	if (amqp_basic_ack(b->conn, PUB_CH, tag, multiple) != AMQP_STATUS_OK) {
		b->lost = true;
		return mk_err_set(e, EX_UNAVAILABLE,
				  "RabbitMQ '%s': cannot "
				  "acknowledge",
				  b->display);
	}
	return 0;
}
