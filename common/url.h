/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * url: parse AMQP URLs; render any URL or libpq conninfo for humans.
 *
 * Owns: struct mk_amqp_url and the only function through which a URL may
 * reach a log line or an error message, url_mask().
 * Never: logs, connects, resolves names.
 *
 * AMQP URL form (as pika and the original mikkoo accept it):
 *   amqp[s]://[user[:password]@]host[:port][/vhost][?key=value&...]
 * user, password and vhost are percent-decoded ("%2f" is "/"); an empty or
 * missing vhost means "/"; defaults: guest/guest, localhost, 5672 (5671
 * for amqps).  IPv6 literals in brackets.  Query keys (pika names):
 *   heartbeat (seconds, 0..65535), connection_timeout / socket_timeout
 *   (seconds, float), frame_max (4096..2^31-1), channel_max,
 *   cacertfile, certfile, keyfile, verify (verify_peer | verify_none),
 *   server_name_indication.
 * Unknown query keys are an error (a typo must not silently weaken TLS).
 */
#ifndef MIKKOO_URL_H
#define MIKKOO_URL_H

#include <stdbool.h>

#include "err.h"

struct mk_amqp_url {
	bool tls;
	char *host;
	int port;
	char *vhost;
	char *user;
	char *password;
	bool password_given; /* in the URL, not the guest default */
	int heartbeat;       /* -1: not given */
	double timeout;      /* seconds; -1: not given */
	int frame_max;       /* -1: not given */
	int channel_max;     /* -1: not given */
	char *cacertfile;    /* NULL: not given */
	char *certfile;
	char *keyfile;
	char *key_password; /* for an encrypted keyfile (config only) */
	int verify;         /* -1 not given, 0 verify_none, 1 verify_peer */
	char *sni;          /* server_name_indication */
};

/*
 * Parse s into u (all strings newly allocated; url_amqp_release frees and
 * wipes the password).  On error, e says what is wrong with the URL in
 * its masked form, code EX_CONFIG; u is left released.
 */
int url_amqp_parse(const char *s, struct mk_amqp_url *u, struct mk_err *e);
void url_amqp_release(struct mk_amqp_url *u);

/* A deep copy of src into dst (release with url_amqp_release); -1 when
 * memory ran out (dst is then left released). */
int url_amqp_copy(struct mk_amqp_url *dst, const struct mk_amqp_url *src);

/*
 * A copy of s safe to show: the password of a scheme://user:pass@host URL
 * becomes "***", and so does the value of password= in a libpq key=value
 * conninfo (quoted values too) or in a URL query (?password=...).
 * Anything unparsable is masked conservatively (everything after "://" up
 * to the last '@' before the host; with no valid "scheme://" and no '='
 * before the first '@', everything up to the last '@').  Returns a new
 * string; caller frees.  Never returns NULL except on allocation failure.
 */
char *url_mask(const char *s);

/*
 * As url_mask(), for text that is not libpq conninfo (a bad AMQP URL, a
 * config value rejected under another key): without a valid "scheme://",
 * everything before the last '@' becomes "***" whatever else the text
 * holds, and password= pairs after it too.
 */
char *url_mask_strict(const char *s);

/*
 * url_mask_strict(s) into buf, cut to fit ("?" if memory ran out): how a
 * value or a name from the input is quoted inside an error message.
 */
void url_mask_strict_to(char *buf, size_t sz, const char *s);

/* Percent-decode src into a new string; NULL on a bad escape or NUL byte. */
char *url_decode(const char *src, size_t len);

/*
 * "amqp://user:***@host:port/vhost" for u's settings (the 3.x rabbitmq:
 * map has no URL of its own to mask); NULL when out of memory.
 */
char *url_amqp_display(const struct mk_amqp_url *u);

#endif
