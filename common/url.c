/* SPDX-License-Identifier: BSD-3-Clause */
/* url: AMQP URL parsing and password masking for messages. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
url_decode(const char *src, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)src[i];

		if (c == '%') {
			int h, l;

			h = i + 1 < len ? hexval(src[i + 1]) : -1;
			l = i + 2 < len ? hexval(src[i + 2]) : -1;
			if (h < 0 || l < 0)
				goto bad;
			c = h * 16 + l;
			i += 2;
		}
		if (c == 0)
			goto bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* Append s[0..n) to a growing buffer; NULL buffer stays NULL. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->p == NULL && b->cap != 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (p == NULL) {
			free(b->p);
			b->p = NULL;
			b->cap = 1; /* remember the failure */
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Mask "password=VALUE" pairs (libpq conninfo or a URL query). */
static void
mask_pairs(struct sbuf *b, const char *s, size_t n, bool query)
{
	static const char key[] = "password";
	size_t i = 0;

	while (i < n) {
		bool at_start =
			i == 0 || (query ? (s[i - 1] == '?' || s[i - 1] == '&')
					 : isspace((unsigned char)s[i - 1]));
		size_t j = i + sizeof(key) - 1;

		if (at_start && n - i >= sizeof(key) - 1 &&
		    strncasecmp(s + i, key, sizeof(key) - 1) == 0) {
			while (!query && j < n && isspace((unsigned char)s[j]))
				j++;
			if (j < n && s[j] == '=') {
				j++;
				while (!query && j < n &&
				       isspace((unsigned char)s[j]))
					j++;
				sb_add(b, s + i, j - i);
				sb_str(b, "***");
				/* skip the value: quoted (with \ escapes) or
				 * up to the separator */
				if (!query && j < n && s[j] == '\'') {
					for (j++; j < n && s[j] != '\''; j++)
						if (s[j] == '\\' && j + 1 < n)
							j++;
					if (j < n)
						j++;
				} else {
					while (j < n &&
					       (query ? s[j] != '&' &&
								s[j] != '#'
						      : !isspace((unsigned char)
									 s[j])))
						j++;
				}
				i = j;
				continue;
			}
		}
		sb_add(b, s + i, 1);
		i++;
	}
}

/* RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static bool
valid_scheme(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !isalpha((unsigned char)s[0]))
		return false;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' &&
		    s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

/*
 * url_mask(), where conninfo false means s is not libpq key=value
 * conninfo (an AMQP URL, a misplaced config value): then, without a
 * valid "scheme://" to anchor the mask, any '@' hides all before the
 * last one.
 */
static char *
mask(const char *s, bool conninfo)
{
	struct sbuf b = { 0 };
	const char *scheme = strstr(s, "://");
	const char *auth, *end, *at, *colon, *q;

	if (scheme != NULL && !valid_scheme(s, (size_t)(scheme - s)))
		scheme = NULL;
	at = scheme == NULL ? strchr(s, '@') : NULL;
	q = strchr(s, '=');
	if (at != NULL && (!conninfo || q == NULL || at < q)) {
		/*
		 * Not a URL, and an '@' before any conninfo "key=":
		 * perhaps "user:secret@host" with the scheme forgotten.
		 * Keep only what follows the last '@'.
		 */
		struct sbuf t = { 0 };

		at = strrchr(s, '@');
		sb_str(&b, "***");
		/* and password= pairs after it, conninfo or query style */
		mask_pairs(&t, at, strlen(at), false);
		if (t.p != NULL)
			mask_pairs(&b, t.p, t.len, true);
		if (t.p == NULL || b.p == NULL) { /* out of memory */
			free(t.p);
			free(b.p);
			return NULL;
		}
		free(t.p);
		return b.p;
	}
	if (scheme == NULL) {
		/* libpq key=value conninfo, or something else entirely */
		mask_pairs(&b, s, strlen(s), false);
		if (b.p == NULL && b.cap == 0)
			return strdup(s);
		return b.p;
	}
	auth = scheme + 3;
	/*
	 * The authority ends at the first '/', '?' or '#' after the last
	 * '@' (an unescaped '@' or ':' in a password must not leak).
	 */
	at = NULL;
	for (end = auth; *end; end++)
		if (*end == '@')
			at = end;
	if (at) {
		end = at;
		while (*end && *end != '/' && *end != '?' && *end != '#')
			end++;
	} else {
		end = auth;
		while (*end && *end != '/' && *end != '?' && *end != '#')
			end++;
	}
	sb_add(&b, s, (size_t)(auth - s));
	if (at && at < end) {
		colon = memchr(auth, ':', (size_t)(at - auth));
		if (colon) {
			sb_add(&b, auth, (size_t)(colon - auth) + 1);
			sb_str(&b, "***");
		} else {
			sb_add(&b, auth, (size_t)(at - auth));
		}
		auth = at;
	}
	sb_add(&b, auth, (size_t)(end - auth));
	q = strchr(end, '?');
	if (q) {
		sb_add(&b, end, (size_t)(q - end));
		mask_pairs(&b, q, strlen(q), true);
	} else {
		sb_str(&b, end);
	}
	if (b.p == NULL)
		return b.cap ? NULL : strdup(s);
	return b.p;
}

char *
url_mask(const char *s)
{
	return mask(s, true);
}

char *
url_mask_strict(const char *s)
{
	return mask(s, false);
}

void
url_mask_strict_to(char *buf, size_t sz, const char *s)
{
	char *m = mask(s, false);

	snprintf(buf, sz, "%s", m ? m : "?");
	free(m);
}

static int
fail(struct mk_amqp_url *u, struct mk_err *e, const char *s, const char *why)
{
	char *m = url_mask_strict(s);

	mk_err_set(e, EX_CONFIG, "bad URL '%s': %s", m ? m : "?", why);
	free(m);
	url_amqp_release(u);
	return -1;
}

static int
parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int
parse_query(struct mk_amqp_url *u, const char *q, const char *s,
	    struct mk_err *e)
{
	char why[160];

	while (*q) {
		const char *amp = strchr(q, '&'), *eq;
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		char *k = NULL, *v = NULL;
		int bad = 0;

		eq = memchr(q, '=', len);
		if (len == 0) {
			q += amp ? 1 : 0;
			if (!amp)
				break;
			continue;
		}
		if (eq == NULL)
			return fail(u, e, s, "query parameter without '='");
		k = url_decode(q, (size_t)(eq - q));
		v = url_decode(eq + 1, len - (size_t)(eq - q) - 1);
		if (k == NULL || v == NULL) {
			free(k);
			free(v);
			return fail(u, e, s, "bad percent-escape in the query");
		}
		if (strcmp(k, "heartbeat") == 0) {
			bad = parse_int(v, 0, 65535, &u->heartbeat);
		} else if (strcmp(k, "connection_timeout") == 0 ||
			   strcmp(k, "socket_timeout") == 0) {
			char *end;

			u->timeout = strtod(v, &end);
			bad = end == v || *end ||
			      !(u->timeout > 0 && u->timeout <= 3600);
		} else if (strcmp(k, "frame_max") == 0) {
			bad = parse_int(v, 4096, 2147483647, &u->frame_max);
		} else if (strcmp(k, "channel_max") == 0) {
			bad = parse_int(v, 0, 65535, &u->channel_max);
		} else if (strcmp(k, "cacertfile") == 0) {
			free(u->cacertfile);
			u->cacertfile = v;
			v = NULL;
		} else if (strcmp(k, "certfile") == 0) {
			free(u->certfile);
			u->certfile = v;
			v = NULL;
		} else if (strcmp(k, "keyfile") == 0) {
			free(u->keyfile);
			u->keyfile = v;
			v = NULL;
		} else if (strcmp(k, "server_name_indication") == 0) {
			free(u->sni);
			u->sni = v;
			v = NULL;
		} else if (strcmp(k, "verify") == 0) {
			if (strcmp(v, "verify_peer") == 0)
				u->verify = 1;
			else if (strcmp(v, "verify_none") == 0)
				u->verify = 0;
			else
				bad = 1;
		} else {
			/*
			 * Masked: the masker reads a '?' before an '@' as
			 * part of a password, so this name may hold one.
			 */
			char name[41];

			url_mask_strict_to(name, sizeof(name), k);
			snprintf(why, sizeof(why),
				 "unknown query parameter "
				 "'%s'",
				 name);
			free(k);
			free(v);
			return fail(u, e, s, why);
		}
		if (bad) {
			snprintf(why, sizeof(why),
				 "bad value for query "
				 "parameter '%s'",
				 k);
			free(k);
			free(v);
			return fail(u, e, s, why);
		}
		free(k);
		free(v);
		if (!amp)
			break;
		q = amp + 1;
	}
	return 0;
}

int
url_amqp_parse(const char *s, struct mk_amqp_url *u, struct mk_err *e)
{
	const char *p, *auth_end, *at, *host, *host_end, *port;
	size_t len = strlen(s);

	memset(u, 0, sizeof(*u));
	u->heartbeat = u->frame_max = u->channel_max = u->verify = -1;
	u->timeout = -1;
	if (len > 8192)
		return fail(u, e, "(a URL over 8 KiB)", "too long");
	if (strncmp(s, "amqp://", 7) == 0) {
		p = s + 7;
	} else if (strncmp(s, "amqps://", 8) == 0) {
		p = s + 8;
		u->tls = true;
	} else {
		return fail(u, e, s, "the scheme must be amqp:// or amqps://");
	}
	u->port = u->tls ? 5671 : 5672;
	/* authority: [user[:pass]@]host[:port]; the last '@' ends userinfo */
	auth_end = p + strcspn(p, "/?#");
	at = NULL;
	{
		const char *x;

		for (x = p; *x && *x != '#'; x++)
			if (*x == '@')
				at = x;
		if (at && at >= auth_end) {
			/* an '@' after a '/': part of an unescaped password */
			auth_end = at + strcspn(at, "/?#");
		}
	}
	if (at && at < auth_end) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		u->user = url_decode(p, (size_t)((colon ? colon : at) - p));
		u->password =
			colon ? url_decode(colon + 1, (size_t)(at - colon - 1))
			      : strdup("");
		u->password_given = colon != NULL;
		if (u->user == NULL || u->password == NULL)
			return fail(u, e, s,
				    "bad percent-escape in the user "
				    "or password");
		host = at + 1;
	} else {
		host = p;
	}
	if (*host == '[') {
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (host_end == NULL)
			return fail(u, e, s, "unterminated IPv6 address");
		u->host = strndup(host + 1, (size_t)(host_end - host - 1));
		port = host_end + 1;
		if (port < auth_end && *port != ':')
			return fail(u, e, s, "junk after the IPv6 address");
	} else {
		host_end = memchr(host, ':', (size_t)(auth_end - host));
		if (host_end == NULL)
			host_end = auth_end;
		u->host = url_decode(host, (size_t)(host_end - host));
		if (u->host == NULL)
			return fail(u, e, s, "bad percent-escape in the host");
		port = host_end;
	}
	if (u->host == NULL)
		return fail(u, e, s, "out of memory");
	if (u->host[0] == '\0') {
		free(u->host);
		u->host = strdup("localhost");
	}
	if (port < auth_end && *port == ':') {
		char buf[16];
		size_t n = (size_t)(auth_end - port - 1);

		if (n == 0 || n >= sizeof(buf))
			return fail(u, e, s, "port out of range");
		memcpy(buf, port + 1, n);
		buf[n] = '\0';
		if (parse_int(buf, 1, 65535, &u->port) < 0)
			return fail(u, e, s, "port out of range");
	}
	p = auth_end;
	if (*p == '/') {
		const char *vend = p + 1 + strcspn(p + 1, "?#");

		u->vhost = url_decode(p + 1, (size_t)(vend - p - 1));
		if (u->vhost == NULL)
			return fail(u, e, s,
				    "bad percent-escape in the "
				    "vhost");
		p = vend;
	}
	if (u->vhost == NULL || u->vhost[0] == '\0') {
		/* pika and the original mikkoo: no vhost means "/" */
		free(u->vhost);
		u->vhost = strdup("/");
	}
	if (u->user == NULL)
		u->user = strdup("guest");
	if (u->password == NULL)
		u->password = strdup("guest");
	if (*p == '?' && parse_query(u, p + 1, s, e) < 0)
		return -1;
	if (u->vhost == NULL || u->user == NULL || u->password == NULL)
		return fail(u, e, s, "out of memory");
	if (u->tls && u->verify < 0)
		u->verify = 1;
	return 0;
}

void
url_amqp_release(struct mk_amqp_url *u)
{
	if (u->password) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->host);
	free(u->vhost);
	free(u->user);
	free(u->cacertfile);
	free(u->certfile);
	free(u->keyfile);
	if (u->key_password) {
		explicit_bzero(u->key_password, strlen(u->key_password));
		free(u->key_password);
	}
	free(u->sni);
	memset(u, 0, sizeof(*u));
}

static bool
dup_field(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src == NULL || *dst != NULL;
}

int
url_amqp_copy(struct mk_amqp_url *dst, const struct mk_amqp_url *src)
{
	*dst = *src;
	dst->host = dst->vhost = dst->user = dst->password = NULL;
	dst->cacertfile = dst->certfile = dst->keyfile = NULL;
	dst->key_password = dst->sni = NULL;
	if (dup_field(&dst->host, src->host) &&
	    dup_field(&dst->vhost, src->vhost) &&
	    dup_field(&dst->user, src->user) &&
	    dup_field(&dst->password, src->password) &&
	    dup_field(&dst->cacertfile, src->cacertfile) &&
	    dup_field(&dst->certfile, src->certfile) &&
	    dup_field(&dst->keyfile, src->keyfile) &&
	    dup_field(&dst->key_password, src->key_password) &&
	    dup_field(&dst->sni, src->sni))
		return 0;
	url_amqp_release(dst);
	return -1;
}

static char *
pct_vhost(const char *v)
{
	size_t n = strlen(v), i, o = 0;
	char *s = malloc(n * 3 + 1);

	if (s == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (isalnum(ch) || strchr("-._~", ch)) {
			s[o++] = (char)ch;
		} else {
			snprintf(s + o, 4, "%%%02x", ch);
			o += 3;
		}
	}
	s[o] = '\0';
	return s;
}

char *
url_amqp_display(const struct mk_amqp_url *u)
{
	char *vh = pct_vhost(u->vhost), *s;

	if (vh == NULL ||
	    asprintf(&s, "%s://%s:***@%s:%d/%s", u->tls ? "amqps" : "amqp",
		     u->user, u->host, u->port, vh) < 0)
		s = NULL;
	free(vh);
	return s;
}
