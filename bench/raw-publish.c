/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * raw-publish: the AMQP ceiling for bench/run.  Publishes N persistent,
 * mandatory messages of S bytes with relay-like properties and headers
 * to an exchange straight from rabbitmq-c, with W confirms in flight
 * (W=1: one confirm at a time, the original mikkoo's way), and prints
 * "events_per_second N".  No PostgreSQL in the loop.
 *
 *   raw-publish URL EXCHANGE ROUTING_KEY COUNT BODY_BYTES WINDOW
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "url.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
	fprintf(stderr, "raw-publish: %s\n", what);
	exit(1);
}

int
main(int argc, char **argv)
{
	struct mk_amqp_url u;
	struct mk_err e;
	amqp_connection_state_t c;
	amqp_socket_t *s;
	amqp_basic_properties_t p;
	amqp_table_entry_t h[5];
	amqp_bytes_t body;
	long count, window, sent = 0, acked = 0;
	size_t size;
	double t0, t1;
	char *buf;

	if (argc != 7)
		die("usage: raw-publish URL EXCHANGE KEY COUNT BYTES WINDOW");
	if (url_amqp_parse(argv[1], &u, &e) < 0)
		die(e.msg);
	count = atol(argv[4]);
	size = (size_t)atol(argv[5]);
	window = atol(argv[6]);
	buf = malloc(size);
	memset(buf, 'x', size);
	body.bytes = buf;
	body.len = size;

	c = amqp_new_connection();
	s = amqp_tcp_socket_new(c);
	if (amqp_socket_open(s, u.host, u.port))
		die("cannot connect");
	if (amqp_login(c, u.vhost, 0, 131072, 30, AMQP_SASL_METHOD_PLAIN,
		       u.user, u.password)
		    .reply_type != AMQP_RESPONSE_NORMAL)
		die("login failed");
	amqp_channel_open(c, 1);
	amqp_confirm_select(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		die("confirm.select failed");

	/* The shape of a relayed message: properties and five headers. */
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
		   AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
		   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
	p.app_id = amqp_cstring_bytes("mikkoo");
	p.correlation_id =
		amqp_cstring_bytes("0ad6b212-4c84-4eb0-8782-9a44bdfe949f");
	p.content_type = amqp_cstring_bytes("application/json");
	p.timestamp = 1487830634;
	p.delivery_mode = 2;
	h[0].key = amqp_cstring_bytes("origin");
	h[0].value.kind = AMQP_FIELD_KIND_UTF8;
	h[0].value.value.bytes = amqp_cstring_bytes("bench.example.com");
	h[1].key = amqp_cstring_bytes("sequence");
	h[1].value.kind = AMQP_FIELD_KIND_I64;
	h[2].key = amqp_cstring_bytes("timestamp");
	h[2].value.kind = AMQP_FIELD_KIND_UTF8;
	h[2].value.value.bytes =
		amqp_cstring_bytes("2017-02-23T06:17:14.471682+00:00");
	h[3].key = amqp_cstring_bytes("txid");
	h[3].value.kind = AMQP_FIELD_KIND_I64;
	h[3].value.value.i64 = 41356335556LL;
	h[4].key = amqp_cstring_bytes("event_id");
	h[4].value.kind = AMQP_FIELD_KIND_I64;
	p.headers.num_entries = 5;
	p.headers.entries = h;

	t0 = now();
	while (acked < count) {
		while (sent < count && sent - acked < window) {
			h[1].value.value.i64 = sent;
			h[4].value.value.i64 = sent;
			if (amqp_basic_publish(c, 1,
					       amqp_cstring_bytes(argv[2]),
					       amqp_cstring_bytes(argv[3]), 1,
					       0, &p, body))
				die("publish failed");
			sent++;
		}
		{
			amqp_frame_t f;
			struct timeval tv = { 5, 0 };

			if (amqp_simple_wait_frame_noblock(c, &f, &tv))
				die("no confirm within 5 s");
			if (f.frame_type == AMQP_FRAME_METHOD &&
			    f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
				amqp_basic_ack_t *a = f.payload.method.decoded;

				/* One queue confirms in order: the highest
				 * tag is the count. */
				if ((long)a->delivery_tag > acked)
					acked = (long)a->delivery_tag;
			} else if (f.frame_type == AMQP_FRAME_METHOD &&
				   f.payload.method.id ==
					   AMQP_BASIC_NACK_METHOD) {
				die("nacked");
			}
			if (!amqp_frames_enqueued(c))
				amqp_maybe_release_buffers(c);
		}
	}
	t1 = now();
	printf("events_per_second %.0f\n", (double)count / (t1 - t0));
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	url_amqp_release(&u);
	free(buf);
	return 0;
}
