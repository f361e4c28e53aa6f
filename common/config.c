/* SPDX-License-Identifier: BSD-3-Clause */
/* config: the YAML configuration, read through one table of keys. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#include "config.h"

#define MAX_FILE (1024 * 1024)

enum ktype {
	K_STR,          /* any scalar */
	K_NAME,         /* a queue or consumer name */
	K_INT,
	K_DOUBLE,
	K_BOOL,
	K_SIZE,         /* integer bytes */
	K_STRLIST,      /* a sequence of strings: exchanges */
	K_AMQP_URL,     /* rabbitmq_url: parsed into w->amqp */
	K_RABBITMQ,     /* the 3.x rabbitmq: mapping */
	K_SSL,          /* rabbitmq/ssl_options */
	K_STATSD,
	K_WORKERS,
	K_SECTION,      /* a mapping walked with its own table */
	K_IGNORED,      /* any node; a notice says it does not apply */
	K_UNSUPPORTED,  /* accepted with a notice (TLS options we lack) */
	K_PWFILE,       /* rabbitmq/password_file */
};

/* Which struct a key writes to. */
enum target { T_CFG, T_STATSD, T_WORKER, T_AMQP };

struct key {
	const char *name;
	enum ktype type;
	enum target target;
	size_t off;
	double lo, hi;
	const char *group;      /* keys that are aliases share a group */
	const struct key *sub;  /* for K_SECTION */
};

#define W(f) T_WORKER, offsetof(struct mk_worker_config, f)
#define C(f) T_CFG, offsetof(struct mk_config, f)
#define S(f) T_STATSD, offsetof(struct mk_statsd_config, f)
#define A(f) T_AMQP, offsetof(struct mk_amqp_url, f)

static const struct key daemon_keys[] = {
	{ "user", K_STR, C(daemon_user), 0, 0, NULL, NULL },
	{ "pidfile", K_STR, C(daemon_pidfile), 0, 0, NULL, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

static const struct key statsd_keys[] = {
	{ "enabled", K_BOOL, S(enabled), 0, 0, NULL, NULL },
	{ "host", K_STR, S(host), 0, 0, NULL, NULL },
	{ "port", K_INT, S(port), 1, 65535, NULL, NULL },
	{ "prefix", K_STR, S(prefix), 0, 0, NULL, NULL },
	{ "include_hostname", K_BOOL, S(include_hostname), 0, 0, NULL, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

static const struct key app_keys[] = {
	{ "poll_interval", K_INT, C(poll_interval), 1, 86400, NULL, NULL },
	{ "sentry_dsn", K_IGNORED, T_CFG, 0, 0, 0, NULL, NULL },
	{ "statsd", K_STATSD, T_CFG, 0, 0, 0, NULL, statsd_keys },
	{ "workers", K_WORKERS, T_CFG, 0, 0, 0, NULL, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

static const struct key top_keys[] = {
	{ "Application", K_SECTION, T_CFG, 0, 0, 0, NULL, app_keys },
	{ "Daemon", K_SECTION, T_CFG, 0, 0, 0, NULL, daemon_keys },
	{ "Logging", K_IGNORED, T_CFG, 0, 0, 0, NULL, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

static const struct key ssl_keys[] = {
	{ "ca_certs", K_STR, A(cacertfile), 0, 0, NULL, NULL },
	{ "certfile", K_STR, A(certfile), 0, 0, NULL, NULL },
	{ "keyfile", K_STR, A(keyfile), 0, 0, NULL, NULL },
	{ "password", K_STR, A(key_password), 0, 0, NULL, NULL },
	{ "verify", K_BOOL, A(verify), 0, 0, NULL, NULL },
	{ "server_hostname", K_STR, A(sni), 0, 0, NULL, NULL },
	{ "protocol", K_UNSUPPORTED, T_AMQP, 0, 0, 0, NULL, NULL },
	{ "ca_path", K_UNSUPPORTED, T_AMQP, 0, 0, 0, NULL, NULL },
	{ "ca_data", K_UNSUPPORTED, T_AMQP, 0, 0, 0, NULL, NULL },
	{ "ciphers", K_UNSUPPORTED, T_AMQP, 0, 0, 0, NULL, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

static const struct key rabbitmq_keys[] = {
	{ "host", K_STR, A(host), 0, 0, NULL, NULL },
	{ "port", K_INT, A(port), 1, 65535, NULL, NULL },
	{ "vhost", K_STR, A(vhost), 0, 0, NULL, NULL },
	{ "username", K_STR, A(user), 0, 0, NULL, NULL },
	{ "password", K_STR, A(password), 0, 0, "password", NULL },
	{ "password_file", K_PWFILE, T_AMQP, 0, 0, 0, "password", NULL },
	{ "heartbeat_interval", K_INT, A(heartbeat), 0, 65535, NULL, NULL },
	{ "socket_timeout", K_DOUBLE, A(timeout), 0.1, 3600, NULL, NULL },
	{ "frame_max", K_INT, A(frame_max), 4096, 2147483647, NULL, NULL },
	{ "ssl_options", K_SSL, T_AMQP, 0, 0, 0, NULL, ssl_keys },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

static const struct key worker_keys[] = {
	{ "postgres_url", K_STR, W(postgres_url), 0, 0, "postgres_url", NULL },
	{ "postgresql_url", K_STR, W(postgres_url), 0, 0, "postgres_url",
	  NULL },
	{ "rabbitmq_url", K_AMQP_URL, T_WORKER, 0, 0, 0, "rabbitmq", NULL },
	{ "rabbitmq", K_RABBITMQ, T_WORKER, 0, 0, 0, "rabbitmq",
	  rabbitmq_keys },
	{ "confirm", K_BOOL, W(confirm), 0, 0, NULL, NULL },
	{ "consumer_name", K_NAME, W(consumer_name), 0, 0, NULL, NULL },
	{ "max_failures", K_INT, W(max_failures), 0, 1000000, NULL, NULL },
	{ "retry_delay", K_INT, W(retry_delay), 1, 86400, "retry", NULL },
	{ "retry_interval", K_INT, W(retry_delay), 1, 86400, "retry", NULL },
	{ "unregister", K_BOOL, W(unregister), 0, 0, NULL, NULL },
	{ "wait_duration", K_DOUBLE, W(wait_duration), 0.01, 3600, NULL,
	  NULL },
	{ "persistent", K_BOOL, W(persistent), 0, 0, NULL, NULL },
	{ "max_event_bytes", K_SIZE, W(max_event_bytes), 1024,
	  512.0 * 1024 * 1024, NULL, NULL },
	{ "window", K_INT, W(window), 1, 65535, NULL, NULL },
	{ "batch_chunk", K_INT, W(batch_chunk), 1, 100000, NULL, NULL },
	{ "exchanges", K_STRLIST, W(exchanges), 0, 0, NULL, NULL },
	{ "allow_sender_routing", K_BOOL, W(allow_sender_routing), 0, 0, NULL,
	  NULL },
	{ "ticker", K_STR, W(ticker), 0, 0, NULL, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

struct ctx {
	const char *name;       /* file name for messages */
	yaml_document_t doc;
	struct mk_config *cfg;
	struct mk_worker_config *w;
	struct mk_err *e;
	char path[512];         /* key path being read, for messages */
	bool amqp_map;          /* the rabbitmq: form was used */
	bool amqp_url_set;
	int amqp_line;
	bool ssl;
	char shown[128];        /* a rejected value, masked (see shown()) */
};

static int
at(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An error located at node n: "FILE:LINE:COL: ...". */
static int
at(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n)
		return mk_err_set(c->e, EX_CONFIG, "%s:%zu:%zu: %s", c->name,
				  n->start_mark.line + 1,
				  n->start_mark.column + 1, msg);
	return mk_err_set(c->e, EX_CONFIG, "%s: %s", c->name, msg);
}

static int
notice(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Append line (taken over) to cfg->notices; -1 (line freed) on OOM. */
static int
add_notice(struct mk_config *cfg, char *line)
{
	char **p = realloc(cfg->notices, (cfg->nnotices + 2) * sizeof(*p));

	if (p == NULL) {
		free(line);
		return -1;
	}
	cfg->notices = p;
	p[cfg->nnotices++] = line;
	p[cfg->nnotices] = NULL;
	return 0;
}

static int
notice(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[512], *line;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&line, "%s:%zu: %s", c->name,
		     n ? n->start_mark.line + 1 : 0, msg) < 0 ||
	    add_notice(c->cfg, line) < 0)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	return 0;
}

static const char *
scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool
plain(const yaml_node_t *n)
{
	return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* Levenshtein distance, capped: for "did you mean". */
static size_t
distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[64], prev, tmp;

	if (la > 60 || lb > 60)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

static void *
field(struct ctx *c, const struct key *k)
{
	switch (k->target) {
	case T_CFG:
		return (char *)c->cfg + k->off;
	case T_STATSD:
		return (char *)&c->cfg->statsd + k->off;
	case T_WORKER:
		return (char *)c->w + k->off;
	case T_AMQP:
		return (char *)&c->w->amqp + k->off;
	}
	return NULL;
}

static int
want_scalar(struct ctx *c, const yaml_node_t *v, const char *what)
{
	if (v->type != YAML_SCALAR_NODE)
		return at(c, v, "key '%s' must be %s, not a %s", c->path, what,
			  v->type == YAML_MAPPING_NODE ? "mapping"
			  : "sequence");
	return 0;
}

static bool
is_null(const yaml_node_t *v)
{
	const char *s = scalar(v);

	return plain(v) && (s[0] == '\0' || strcmp(s, "~") == 0 ||
			    strcasecmp(s, "null") == 0);
}

static int
set_string(struct ctx *c, const yaml_node_t *v, char **dst)
{
	if (want_scalar(c, v, "a string") < 0)
		return -1;
	if (is_null(v))
		return at(c, v, "key '%s' must be a string, not empty", c->path);
	if (*dst) {
		explicit_bzero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = strdup(scalar(v));
	return *dst ? 0 : mk_err_set(c->e, EX_OSERR, "out of memory");
}

static bool
valid_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
			return false;
	return true;
}

/*
 * A rejected scalar as it may appear in a message: a URL with a password
 * misplaced under another key must not leak, so it is masked, and cut to
 * fit c->shown.
 */
static const char *
shown(struct ctx *c, const char *s)
{
	url_mask_strict_to(c->shown, sizeof(c->shown), s);
	return c->shown;
}

static int
parse_number(struct ctx *c, const yaml_node_t *v, const struct key *k,
	     bool integer, double *out)
{
	const char *s;
	char *end;
	double d;

	if (want_scalar(c, v, integer ? "an integer" : "a number") < 0)
		return -1;
	s = scalar(v);
	if (!plain(v))
		return at(c, v, "key '%s' must be %s, not the string \"%s\"",
			  c->path, integer ? "an integer" : "a number",
			  shown(c, s));
	errno = 0;
	if (integer) {
		long long ll = strtoll(s, &end, 10);

		d = (double)ll;
	} else {
		d = strtod(s, &end);
	}
	if (errno || end == s || *end || !isfinite(d))
		return at(c, v, "key '%s' must be %s from %.15g to %.15g, not "
			  "'%s'", c->path, integer ? "an integer"
			  : "a number", k->lo, k->hi, shown(c, s));
	if (d < k->lo || d > k->hi)
		return at(c, v, "key '%s' must be from %.15g to %.15g, not %s",
			  c->path, k->lo, k->hi, shown(c, s));
	*out = d;
	return 0;
}

static int
parse_bool(struct ctx *c, const yaml_node_t *v, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", NULL };
	static const char *const no[] = { "false", "no", "off", NULL };
	const char *s;
	size_t i;

	if (want_scalar(c, v, "true or false") < 0)
		return -1;
	s = scalar(v);
	if (plain(v)) {
		for (i = 0; yes[i]; i++)
			if (strcasecmp(s, yes[i]) == 0)
				return *out = true, 0;
		for (i = 0; no[i]; i++)
			if (strcasecmp(s, no[i]) == 0)
				return *out = false, 0;
	}
	return at(c, v, "key '%s' must be true or false, not '%s'",
		  c->path, shown(c, s));
}

static int walk(struct ctx *c, const yaml_node_t *map, const struct key *tab);

/* Replace u->password with a copy of s, wiping the old one. */
static int
set_password(struct ctx *c, struct mk_amqp_url *u, const char *s)
{
	if (u->password) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	u->password = strdup(s);
	return u->password ? 0 : mk_err_set(c->e, EX_OSERR, "out of memory");
}

/* Its first line is the password; loose permissions get a notice. */
static int
read_password_file(struct ctx *c, const yaml_node_t *kn, const yaml_node_t *v)
{
	struct mk_amqp_url *u = &c->w->amqp;
	char buf[1024];
	struct stat st;
	FILE *f;
	int rc;

	if (want_scalar(c, v, "a file name") < 0)
		return -1;
	f = fopen(scalar(v), "r");
	if (f == NULL)
		return at(c, v, "key '%s': cannot open '%s': %s", c->path,
			  shown(c, scalar(v)), strerror(errno));
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		notice(c, kn, "password file '%s' is readable by group or "
		       "others: chmod 600 it", shown(c, scalar(v)));
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	rc = set_password(c, u, buf);
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* exchanges: a sequence of names ("" is the default exchange). */
static int
set_list(struct ctx *c, const yaml_node_t *v)
{
	struct mk_worker_config *w = c->w;
	yaml_node_item_t *it;
	size_t n;

	if (v->type != YAML_SEQUENCE_NODE)
		return at(c, v, "key '%s' must be a list of exchange names",
			  c->path);
	n = (size_t)(v->data.sequence.items.top -
		     v->data.sequence.items.start);
	w->exchanges = calloc(n + 1, sizeof(*w->exchanges));
	if (w->exchanges == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	for (it = v->data.sequence.items.start;
	     it < v->data.sequence.items.top; it++) {
		yaml_node_t *x = yaml_document_get_node(&c->doc, *it);

		if (x->type != YAML_SCALAR_NODE)
			return at(c, x, "key '%s' must be a list of exchange "
				  "names", c->path);
		if (x->data.scalar.length > 255)
			return at(c, x, "key '%s': an exchange name is at most "
				  "255 bytes", c->path);
		w->exchanges[w->nexchanges] = strdup(scalar(x));
		if (w->exchanges[w->nexchanges++] == NULL)
			return mk_err_set(c->e, EX_OSERR, "out of memory");
	}
	return 0;
}

static int
set_value(struct ctx *c, const struct key *k, const yaml_node_t *kn,
	  const yaml_node_t *v)
{
	void *dst = field(c, k);
	double d;
	bool b = false;

	switch (k->type) {
	case K_STR:
		if (k->target == T_AMQP &&
		    k->off == offsetof(struct mk_amqp_url, password))
			c->w->amqp.password_given = true;
		return set_string(c, v, dst);
	case K_NAME:
		if (set_string(c, v, dst) < 0)
			return -1;
		if (!valid_name(*(char **)dst))
			return at(c, v, "key '%s': '%s' is not a valid "
				  "name (1 to 63 of A-Z a-z 0-9 _ . : -)",
				  c->path, shown(c, *(char **)dst));
		return 0;
	case K_INT:
		if (parse_number(c, v, k, true, &d) < 0)
			return -1;
		*(int *)dst = (int)d;
		return 0;
	case K_SIZE:
		if (parse_number(c, v, k, true, &d) < 0)
			return -1;
		*(size_t *)dst = (size_t)d;
		return 0;
	case K_DOUBLE:
		if (parse_number(c, v, k, false, &d) < 0)
			return -1;
		*(double *)dst = d;
		return 0;
	case K_BOOL:
		if (parse_bool(c, v, &b) < 0)
			return -1;
		if (k->target == T_AMQP)
			*(int *)dst = b;        /* verify is tri-state */
		else
			*(bool *)dst = b;
		if (k->target == T_WORKER && strcmp(k->name, "confirm") == 0
		    && !b)
			return notice(c, kn, "worker '%s': 'confirm: false' is "
				      "ignored: mikkoo-relay always waits for "
				      "publisher confirms", c->w->queue);
		if (k->target == T_WORKER &&
		    strcmp(k->name, "unregister") == 0 && b)
			return notice(c, kn, "worker '%s': 'unregister: true' "
				      "drops the consumer's position and "
				      "retry queue on every shutdown; events "
				      "inserted while the relay is down are "
				      "skipped", c->w->queue);
		return 0;
	case K_STRLIST:
		return set_list(c, v);
	case K_AMQP_URL:
		if (set_string(c, v, &c->w->amqp_display) < 0)
			return -1;
		if (url_amqp_parse(scalar(v), &c->w->amqp, c->e) < 0)
			return at(c, v, "key '%s': %s", c->path, c->e->msg);
		c->amqp_url_set = true;
		return 0;
	case K_RABBITMQ:
		if (v->type != YAML_MAPPING_NODE)
			return at(c, v, "key '%s' must be a mapping", c->path);
		c->amqp_map = true;
		return walk(c, v, k->sub);
	case K_SSL:
		if (v->type != YAML_MAPPING_NODE)
			return at(c, v, "key '%s' must be a mapping", c->path);
		c->ssl = true;
		return walk(c, v, k->sub);
	case K_STATSD:
	case K_SECTION:
		if (v->type != YAML_MAPPING_NODE)
			return at(c, v, "key '%s' must be a mapping", c->path);
		return walk(c, v, k->sub);
	case K_WORKERS:
		return -2;      /* handled by the caller */
	case K_IGNORED:
		return notice(c, kn, "'%s' is ignored: %s", k->name,
			      strcmp(k->name, "Logging") == 0
			      ? "mikkoo-relay logs to stderr"
			      : "Sentry is not supported");
	case K_UNSUPPORTED:
		return notice(c, kn, "'%s' is ignored: not supported by "
			      "mikkoo-relay's TLS client", c->path);
	case K_PWFILE:
		return read_password_file(c, kn, v);
	}
	return 0;
}

static int walk_workers(struct ctx *c, const yaml_node_t *map);

/*
 * Extend the path for messages with key name.  A URL with a password
 * written as a key (a mistake, but one the message must not repeat)
 * is masked like a rejected value.
 */
static void
append_key(struct ctx *c, size_t plen, const char *name)
{
	if (plen && plen + 1 < sizeof(c->path))
		c->path[plen++] = '/';
	url_mask_strict_to(c->path + plen, sizeof(c->path) - plen, name);
}

/* Read map's keys through table tab; unknown and repeated keys fail. */
static int
walk(struct ctx *c, const yaml_node_t *map, const struct key *tab)
{
	yaml_node_pair_t *p;
	size_t plen = strlen(c->path);
	const yaml_node_t *seen_at[32] = { 0 };
	const char *seen_group[32] = { 0 };
	size_t nseen = 0, i;
	int rc = 0;

	for (p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(&c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&c->doc, p->value);
		const struct key *k, *best = NULL;
		const char *name;
		size_t bestd = 3;
		yaml_node_pair_t *q;

		if (kn->type != YAML_SCALAR_NODE)
			return at(c, kn, "key under '%s' is not a string",
				  c->path[0] ? c->path : "the top level");
		name = scalar(kn);
		append_key(c, plen, name);
		for (q = map->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *prev = yaml_document_get_node(&c->doc,
								   q->key);

			if (prev->type == YAML_SCALAR_NODE &&
			    strcmp(scalar(prev), name) == 0) {
				rc = at(c, kn, "key '%s' is repeated (first "
					"on line %zu)", c->path,
					prev->start_mark.line + 1);
				goto out;
			}
		}
		for (k = tab; k->name; k++) {
			size_t d;

			if (strcmp(k->name, name) == 0)
				break;
			d = distance(k->name, name);
			if (d < bestd) {
				bestd = d;
				best = k;
			}
		}
		if (k->name == NULL) {
			if (best)
				rc = at(c, kn, "key '%s' is unknown (did you "
					"mean '%s'?)", c->path, best->name);
			else
				rc = at(c, kn, "key '%s' is unknown", c->path);
			goto out;
		}
		if (k->group) {
			for (i = 0; i < nseen; i++)
				if (strcmp(seen_group[i], k->group) == 0) {
					rc = at(c, kn, "key '%s' says again "
						"what line %zu said: give only "
						"one", c->path,
						seen_at[i]->start_mark.line +
						1);
					goto out;
				}
			if (nseen < 32) {
				seen_group[nseen] = k->group;
				seen_at[nseen++] = kn;
			}
		}
		if (k->type == K_RABBITMQ || k->type == K_AMQP_URL)
			c->amqp_line = (int)kn->start_mark.line + 1;
		if (k->type == K_WORKERS)
			rc = walk_workers(c, vn);
		else
			rc = set_value(c, k, kn, vn);
		if (rc < 0)
			goto out;
	}
out:
	c->path[plen] = '\0';
	return rc < 0 ? -1 : 0;
}

static void
worker_defaults(struct mk_worker_config *w)
{
	w->confirm = true;
	w->max_failures = 10;
	w->retry_delay = 10;
	w->unregister = false;
	w->wait_duration = 1;
	w->persistent = true;
	w->max_event_bytes = 8 * 1024 * 1024;
	w->window = 1000;
	w->batch_chunk = 1000;
	w->heartbeat = 30;
	w->connect_timeout = 10;
	w->relay_ticks = true;
	w->amqp.heartbeat = w->amqp.frame_max = w->amqp.channel_max = -1;
	w->amqp.verify = -1;
	w->amqp.timeout = -1;
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

/* After a worker's keys: required ones, the 3.x map's defaults. */
static int
finish_worker(struct ctx *c, const yaml_node_t *kn)
{
	struct mk_worker_config *w = c->w;
	struct mk_amqp_url *u = &w->amqp;
	const char *env;
	char *vh;

	if (w->postgres_url == NULL)
		return at(c, kn, "worker '%s': postgres_url is required",
			  w->queue);
	if (w->ticker && strcmp(w->ticker, "relay") != 0 &&
	    strcmp(w->ticker, "pgqd") != 0)
		return at(c, kn, "worker '%s': ticker is '%s': give 'relay' "
			  "(the relay ticks its queue) or 'pgqd'", w->queue,
			  shown(c, w->ticker));
	w->relay_ticks = w->ticker == NULL || strcmp(w->ticker, "relay") == 0;
	if (c->amqp_url_set && c->amqp_map)
		return at(c, kn, "worker '%s': give rabbitmq_url or rabbitmq, "
			  "not both", w->queue);
	if (!c->amqp_url_set && !c->amqp_map)
		return at(c, kn, "worker '%s': rabbitmq_url (or a rabbitmq "
			  "mapping) is required", w->queue);
	/*
	 * Neither the URL nor the mapping gave a password, nor did a
	 * password_file (the URL parser's "" is not a choice): the
	 * environment's, if set, else guest below.
	 */
	env = getenv("MIKKOO_RABBITMQ_PASSWORD");
	if (env && !u->password_given &&
	    (c->amqp_url_set || u->password == NULL) &&
	    set_password(c, u, env) < 0)
		return -1;
	if (c->amqp_map) {
		u->tls = c->ssl;
		if (u->host == NULL)
			u->host = strdup("localhost");
		if (u->port == 0)
			u->port = u->tls ? 5671 : 5672;
		if (u->vhost == NULL)
			u->vhost = strdup("/");
		if (u->user == NULL)
			u->user = strdup("guest");
		if (u->password == NULL)
			u->password = strdup("guest");
		if (u->tls && u->verify < 0)
			u->verify = 1;
		vh = u->vhost ? pct_vhost(u->vhost) : NULL;
		if (u->host == NULL || vh == NULL || u->user == NULL ||
		    u->password == NULL ||
		    asprintf(&w->amqp_display, "%s://%s:***@%s:%d/%s",
			     u->tls ? "amqps" : "amqp", u->user, u->host,
			     u->port, vh) < 0) {
			free(vh);
			w->amqp_display = NULL;
			return mk_err_set(c->e, EX_OSERR, "out of memory");
		}
		free(vh);
	} else {
		char *m = url_mask(w->amqp_display);

		free(w->amqp_display);
		w->amqp_display = m;
	}
	if (u->heartbeat >= 0)
		w->heartbeat = u->heartbeat;
	if (u->timeout > 0)
		w->connect_timeout = u->timeout;
	w->postgres_display = url_mask(w->postgres_url);
	if (w->amqp_display == NULL || w->postgres_display == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	return 0;
}

static int
walk_workers(struct ctx *c, const yaml_node_t *map)
{
	struct mk_config *cfg = c->cfg;
	yaml_node_pair_t *p;
	size_t n, plen = strlen(c->path);
	int rc;

	if (map->type != YAML_MAPPING_NODE)
		return at(c, map, "key '%s' must be a mapping of queue names",
			  c->path);
	n = (size_t)(map->data.mapping.pairs.top -
		     map->data.mapping.pairs.start);
	if (n == 0)
		return at(c, map, "key '%s' must name at least one queue",
			  c->path);
	cfg->workers = calloc(n, sizeof(*cfg->workers));
	if (cfg->workers == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	for (p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(&c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&c->doc, p->value);
		struct mk_worker_config *w;
		size_t i;

		if (kn->type != YAML_SCALAR_NODE || !valid_name(scalar(kn)))
			return at(c, kn, "key under '%s' must be a queue name "
				  "(1 to 63 of A-Z a-z 0-9 _ . : -)", c->path);
		for (i = 0; i < cfg->nworkers; i++)
			if (strcmp(cfg->workers[i].queue, scalar(kn)) == 0)
				return at(c, kn, "worker '%s' is repeated",
					  scalar(kn));
		w = &cfg->workers[cfg->nworkers++];
		worker_defaults(w);
		w->queue = strdup(scalar(kn));
		w->consumer_name = strdup("mikkoo");
		w->line = (int)kn->start_mark.line + 1;
		if (w->queue == NULL || w->consumer_name == NULL)
			return mk_err_set(c->e, EX_OSERR, "out of memory");
		snprintf(c->path + plen, sizeof(c->path) - plen, "/%s",
			 w->queue);
		if (vn->type != YAML_MAPPING_NODE) {
			rc = at(c, vn, "worker '%s' must be a mapping of "
				"settings", w->queue);
			goto out;
		}
		c->w = w;
		c->amqp_map = c->amqp_url_set = c->ssl = false;
		rc = walk(c, vn, worker_keys);
		if (rc == 0)
			rc = finish_worker(c, kn);
		c->w = NULL;
		if (rc < 0)
			goto out;
		c->path[plen] = '\0';
	}
	return 0;
out:
	c->path[plen] = '\0';
	return -1;
}

int
config_load_buffer(const char *name, const char *buf, size_t len,
		   struct mk_config *cfg, struct mk_err *e)
{
	struct ctx c;
	yaml_parser_t parser;
	yaml_node_t *root;
	bool have_doc = false;
	int rc = -1;

	memset(cfg, 0, sizeof(*cfg));
	memset(&c, 0, sizeof(c));
	c.name = name;
	c.cfg = cfg;
	c.e = e;
	cfg->poll_interval = 60;
	cfg->statsd.port = 8125;
	cfg->statsd.include_hostname = true;
	cfg->path = strdup(name);
	cfg->statsd.host = strdup("localhost");
	cfg->statsd.prefix = strdup("mikkoo");
	if (!cfg->path || !cfg->statsd.host || !cfg->statsd.prefix) {
		mk_err_set(e, EX_OSERR, "out of memory");
		goto out;
	}
	if (len > MAX_FILE) {
		mk_err_set(e, EX_CONFIG, "%s: configuration is %zu bytes, over "
			   "the limit of 1 MiB", name, len);
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		mk_err_set(e, EX_OSERR, "out of memory");
		goto out;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf,
				     len);
	if (!yaml_parser_load(&parser, &c.doc)) {
		mk_err_set(e, EX_CONFIG, "%s:%zu:%zu: YAML syntax error: %s%s%s",
			   name, parser.problem_mark.line + 1,
			   parser.problem_mark.column + 1,
			   parser.problem ? parser.problem : "unknown",
			   parser.context ? " " : "",
			   parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		goto out;
	}
	yaml_parser_delete(&parser);
	have_doc = true;
	root = yaml_document_get_root_node(&c.doc);
	if (root == NULL) {
		mk_err_set(e, EX_CONFIG, "%s: the configuration is empty",
			   name);
		goto out;
	}
	if (root->type != YAML_MAPPING_NODE) {
		at(&c, root, "the top level must be a mapping with an "
		   "'Application' section");
		goto out;
	}
	if (walk(&c, root, top_keys) < 0)
		goto out;
	if (cfg->nworkers == 0) {
		mk_err_set(e, EX_CONFIG, "%s: no workers: add queues under "
			   "'Application/workers'", name);
		goto out;
	}
	rc = 0;
out:
	if (have_doc)
		yaml_document_delete(&c.doc);
	if (rc < 0)
		config_release(cfg);
	return rc;
}

/* Does any worker keep a password in the file itself? */
static bool
holds_password(const struct mk_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nworkers; i++) {
		const struct mk_worker_config *w = &cfg->workers[i];

		if (strcmp(w->postgres_display, w->postgres_url) != 0 ||
		    (w->amqp.password_given && w->amqp.password[0]))
			return true;
	}
	return false;
}

int
config_load(const char *path, struct mk_config *cfg, struct mk_err *e)
{
	struct stat st;
	FILE *f;
	char *buf;
	size_t n;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	f = fopen(path, "r");
	if (f == NULL)
		return mk_err_set(e, errno == ENOENT ? EX_NOINPUT : EX_CONFIG,
				  "cannot open '%s': %s", path,
				  strerror(errno));
	buf = malloc(MAX_FILE + 1);
	if (buf == NULL) {
		fclose(f);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	n = fread(buf, 1, MAX_FILE + 1, f);
	if (ferror(f)) {
		rc = mk_err_set(e, EX_CONFIG, "cannot read '%s': %s", path,
				strerror(errno));
	} else {
		rc = config_load_buffer(path, buf, n, cfg, e);
	}
	if (rc == 0 && fstat(fileno(f), &st) == 0 && (st.st_mode & 077) &&
	    holds_password(cfg)) {
		/* libpq's rule for .pgpass, as a notice: refusing would break
		 * configurations that worked with the Python mikkoo. */
		char *line;

		if (asprintf(&line, "%s: holds passwords and is readable by "
			     "group or others: chmod 600 %s", path, path) > 0)
			(void)add_notice(cfg, line);    /* OOM: no notice */
	}
	fclose(f);
	free(buf);
	return rc;
}

static void
wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
config_release(struct mk_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nworkers; i++) {
		struct mk_worker_config *w = &cfg->workers[i];

		free(w->queue);
		wipe_free(w->postgres_url);
		url_amqp_release(&w->amqp);
		wipe_free(w->amqp_display);     /* raw URL until masked */
		free(w->postgres_display);
		free(w->consumer_name);
		free(w->ticker);
		for (size_t k = 0; k < w->nexchanges; k++)
			free(w->exchanges[k]);
		free(w->exchanges);
	}
	free(cfg->workers);
	for (i = 0; i < cfg->nnotices; i++)
		free(cfg->notices[i]);
	free(cfg->notices);
	free(cfg->path);
	free(cfg->statsd.host);
	free(cfg->statsd.prefix);
	free(cfg->daemon_user);
	free(cfg->daemon_pidfile);
	memset(cfg, 0, sizeof(*cfg));
}

const struct mk_worker_config *
config_worker(const struct mk_config *cfg, const char *queue)
{
	size_t i;

	for (i = 0; i < cfg->nworkers; i++)
		if (strcmp(cfg->workers[i].queue, queue) == 0)
			return &cfg->workers[i];
	return NULL;
}

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool
same_list(const struct mk_worker_config *a, const struct mk_worker_config *b)
{
	size_t i;

	if ((a->exchanges == NULL) != (b->exchanges == NULL) ||
	    a->nexchanges != b->nexchanges)
		return false;
	for (i = 0; i < a->nexchanges; i++)
		if (strcmp(a->exchanges[i], b->exchanges[i]) != 0)
			return false;
	return true;
}

bool
config_worker_equal(const struct mk_worker_config *a,
		    const struct mk_worker_config *b)
{
	const struct mk_amqp_url *x = &a->amqp, *y = &b->amqp;

	return same(a->queue, b->queue) &&
	       same(a->postgres_url, b->postgres_url) &&
	       same(a->consumer_name, b->consumer_name) &&
	       x->tls == y->tls && same(x->host, y->host) &&
	       x->port == y->port && same(x->vhost, y->vhost) &&
	       same(x->user, y->user) && same(x->password, y->password) &&
	       x->frame_max == y->frame_max && x->verify == y->verify &&
	       same(x->cacertfile, y->cacertfile) &&
	       same(x->certfile, y->certfile) &&
	       same(x->keyfile, y->keyfile) &&
	       same(x->key_password, y->key_password) &&
	       same(x->sni, y->sni) &&
	       a->max_failures == b->max_failures &&
	       a->retry_delay == b->retry_delay &&
	       a->unregister == b->unregister &&
	       a->wait_duration == b->wait_duration &&
	       a->persistent == b->persistent &&
	       a->max_event_bytes == b->max_event_bytes &&
	       a->window == b->window && a->batch_chunk == b->batch_chunk &&
	       a->heartbeat == b->heartbeat &&
	       a->connect_timeout == b->connect_timeout &&
	       a->allow_sender_routing == b->allow_sender_routing &&
	       a->relay_ticks == b->relay_ticks &&
	       same_list(a, b);
}
