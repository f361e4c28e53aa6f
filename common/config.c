/* SPDX-License-Identifier: BSD-3-Clause */
/* config: the YAML configuration, read through the key table. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <yaml.h>

#include "config.h"
#include "config_keys.h"
#include "listen.h"

#define MAX_FILE (1024 * 1024)

struct ctx {
	const char *name; /* file name for messages */
	yaml_document_t doc;
	struct mk_config *cfg;
	struct mk_worker_config *w;
	struct mk_err *e;
	char path[512]; /* key path being read, for messages */
	bool amqp_map;  /* the rabbitmq: form was used */
	bool amqp_url_set;
	int amqp_line;
	bool ssl;
	char shown[128]; /* a rejected value, masked (see shown()) */
	uint64_t given;  /* the worker's keys the file gave, by
				   their index in config_worker_keys */
};

static int at(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
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

static int notice(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Append line (taken over) to cfg->notices, for worker queue (NULL:
 * global); -1 (line freed) on OOM.
 */
static int
add_notice(struct mk_config *cfg, const char *queue, char *line)
{
	struct mk_notice *p =
		realloc(cfg->notices, (cfg->nnotices + 1) * sizeof(*p));
	char *q = queue ? strdup(queue) : NULL;

	if (p)
		cfg->notices = p;
	if (p == NULL || (queue && q == NULL)) {
		free(line);
		free(q);
		return -1;
	}
	p[cfg->nnotices].queue = q;
	p[cfg->nnotices++].text = line;
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
	    add_notice(c->cfg, c->w ? c->w->queue : NULL, line) < 0)
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
	/* the reader writes what the table describes */
	return (void *)(uintptr_t)config_field(k, c->cfg, c->w);
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
		return at(c, v, "key '%s' must be a string, not empty",
			  c->path);
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
		return at(c, v,
			  "key '%s' must be %s from %.15g to %.15g, not "
			  "'%s'",
			  c->path, integer ? "an integer" : "a number", k->lo,
			  k->hi, shown(c, s));
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
	return at(c, v, "key '%s' must be true or false, not '%s'", c->path,
		  shown(c, s));
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
/*
 * Relative file names in a configuration (and the configuration's own
 * name) mean the directory mikkoo-relay started in, also after
 * --daemon's chdir("/"): every reload and every reconnect (TLS files are
 * opened then) finds the same files.  Captured at the first load.
 */
static char start_dir[4096];

static void
remember_start_dir(void)
{
	if (start_dir[0] == '\0' &&
	    getcwd(start_dir, sizeof(start_dir)) == NULL)
		start_dir[0] = '\0'; /* unknown: names stay as given */
}

/* name, made absolute against start_dir when relative (malloc'd). */
static char *
absolute(const char *name)
{
	char *p;

	remember_start_dir();
	if (name[0] == '/' || start_dir[0] == '\0')
		return strdup(name);
	if (asprintf(&p, "%s/%s", start_dir, name) < 0)
		return NULL;
	return p;
}

/* *pp (malloc'd or NULL) made absolute in place; -1 out of memory. */
static int
make_absolute(char **pp)
{
	char *a;

	if (*pp == NULL || (*pp)[0] == '/')
		return 0;
	a = absolute(*pp);
	if (a == NULL)
		return -1;
	free(*pp);
	*pp = a;
	return 0;
}

static int
read_password_file(struct ctx *c, const yaml_node_t *kn, const yaml_node_t *v)
{
	struct mk_amqp_url *u = &c->w->amqp;
	char buf[1024];
	struct stat st;
	FILE *f;
	int rc;

	char *name;

	if (want_scalar(c, v, "a file name") < 0)
		return -1;
	name = absolute(scalar(v));
	if (name == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	f = fopen(name, "r");
	free(name);
	if (f == NULL)
		return at(c, v, "key '%s': cannot open '%s': %s", c->path,
			  shown(c, scalar(v)), strerror(errno));
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		notice(c, kn,
		       "password file '%s' is readable by group or "
		       "others: chmod 600 it",
		       shown(c, scalar(v)));
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
	struct mk_strlist *l = &c->w->exchanges;
	yaml_node_item_t *it;
	size_t n;

	if (v->type != YAML_SEQUENCE_NODE)
		return at(c, v, "key '%s' must be a list of exchange names",
			  c->path);
	n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	l->v = calloc(n + 1, sizeof(*l->v));
	if (l->v == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		yaml_node_t *x = yaml_document_get_node(&c->doc, *it);

		if (x->type != YAML_SCALAR_NODE)
			return at(c, x,
				  "key '%s' must be a list of exchange "
				  "names",
				  c->path);
		if (x->data.scalar.length > 255)
			return at(c, x,
				  "key '%s': an exchange name is at most "
				  "255 bytes",
				  c->path);
		l->v[l->n] = strdup(scalar(x));
		if (l->v[l->n++] == NULL)
			return mk_err_set(c->e, EX_OSERR, "out of memory");
	}
	return 0;
}

/* K_NAMES: one name, or a list of them, each 1 to k->hi bytes. */
static int
set_names(struct ctx *c, const struct key *k, const yaml_node_t *v)
{
	struct mk_strlist *l = field(c, k);
	yaml_node_item_t *it, one;
	const yaml_node_item_t *from, *to;
	size_t n;

	if (v->type == YAML_MAPPING_NODE)
		return at(c, v, "key '%s' must be a name or a list of names",
			  c->path);
	if (v->type == YAML_SCALAR_NODE) {
		one = (yaml_node_item_t)(v - c->doc.nodes.start + 1);
		from = &one;
		to = &one + 1;
	} else {
		from = v->data.sequence.items.start;
		to = v->data.sequence.items.top;
	}
	n = (size_t)(to - from);
	if (n == 0)
		return at(c, v, "key '%s' must name at least one", c->path);
	l->v = calloc(n + 1, sizeof(*l->v));
	if (l->v == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	for (it = (yaml_node_item_t *)from; it < to; it++) {
		yaml_node_t *x = yaml_document_get_node(&c->doc, *it);

		if (x->type != YAML_SCALAR_NODE || is_null(x))
			return at(c, x,
				  "key '%s' must be a name or a list of "
				  "names",
				  c->path);
		if (x->data.scalar.length > k->hi)
			return at(c, x, "key '%s': '%s' is over %.0f bytes",
				  c->path, shown(c, scalar(x)), k->hi);
		l->v[l->n] = strdup(scalar(x));
		if (l->v[l->n++] == NULL)
			return mk_err_set(c->e, EX_OSERR, "out of memory");
	}
	return 0;
}

/* A replication slot's name, as PostgreSQL takes it. */
static bool
slot_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 63 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz"
			 "0123456789_") == n;
}

/*
 * A host name, an IPv4 or an IPv6 address (bracketed or not, with a
 * zone): nothing of a URL, so that a URL written where a host goes is
 * refused rather than shown, password and all, as the node's name.
 */
static bool
host_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 255 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.-_:[]%") == n;
}

/* v, stored in host (item: its place in a list, 0 alone), a host name? */
static int
check_host(struct ctx *c, const yaml_node_t *v, const char *host, size_t item)
{
	if (host_name(host))
		return 0;
	if (item)
		return at(c, v,
			  "key '%s', item %zu: '%s' is not a host name "
			  "(a URL goes in rabbitmq_url)",
			  c->path, item, shown(c, host));
	return at(c, v,
		  "key '%s': '%s' is not a host name (a URL goes in "
		  "rabbitmq_url)",
		  c->path, shown(c, host));
}

/*
 * A list of RabbitMQ nodes: of URLs (rabbitmq_url) or of hosts (the
 * map's host).  The first item goes where a lone one would; the others
 * are kept as written in more_nodes, URLs parsed now (so an error names
 * its item) into nodes[1..], which finish_worker completes.
 */
static int
set_nodes(struct ctx *c, const yaml_node_t *v, bool urls)
{
	struct mk_worker_config *w = c->w;
	yaml_node_item_t *it;
	size_t n, i = 0;

	n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n == 0)
		return at(c, v, "key '%s' must list at least one %s", c->path,
			  urls ? "URL" : "host");
	if (n > CONFIG_MAX_NODES)
		return at(c, v, "key '%s' lists %zu nodes: at most %d", c->path,
			  n, CONFIG_MAX_NODES);
	w->more_nodes.v = calloc(n, sizeof(*w->more_nodes.v));
	w->nodes = calloc(n, sizeof(*w->nodes));
	if (w->more_nodes.v == NULL || w->nodes == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++, i++) {
		yaml_node_t *x = yaml_document_get_node(&c->doc, *it);
		char **dst = i == 0 ? (urls ? &w->rabbitmq_url : &w->amqp.host)
				    : &w->more_nodes.v[w->more_nodes.n];

		if (set_string(c, x, dst) < 0)
			return -1;
		if (i > 0)
			w->more_nodes.n++;
		if (!urls) {
			if (check_host(c, x, *dst, i + 1) < 0)
				return -1;
			continue;
		}
		if (url_amqp_parse(*dst, i == 0 ? &w->amqp : &w->nodes[i].url,
				   c->e) < 0)
			return at(c, x, "key '%s', item %zu: %s", c->path,
				  i + 1, c->e->msg);
	}
	if (urls)
		c->amqp_url_set = true;
	return 0;
}

/* "type/subtype": RFC 9110 tokens around one slash, no parameters. */
static bool
media_type(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	size_t i, slash = 0, n = strlen(s);

	for (i = 0; i < n; i++) {
		if (s[i] == '/' && slash == 0 && i > 0)
			slash = i;
		else if (!isalnum((unsigned char)s[i]) && !strchr(tchar, s[i]))
			return false;
	}
	return slash > 0 && slash + 1 < n && n <= 255;
}

/* routes: media type -> exchange, and "default" for every other. */
static int
set_routes(struct ctx *c, const yaml_node_t *v)
{
	struct mk_routes *r = &c->w->routes;
	yaml_node_pair_t *p, *q;
	size_t n;

	if (v->type != YAML_MAPPING_NODE ||
	    v->data.mapping.pairs.top == v->data.mapping.pairs.start)
		return at(c, v,
			  "key '%s' must map media types (and "
			  "'default') to exchange names",
			  c->path);
	n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	r->v = calloc(n, sizeof(*r->v));
	if (r->v == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(&c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&c->doc, p->value);
		const char *k;
		char **dst;

		if (kn->type != YAML_SCALAR_NODE)
			return at(c, kn,
				  "key '%s': a route's media type must "
				  "be a string",
				  c->path);
		k = scalar(kn);
		if (strcmp(k, "default") != 0 && !media_type(k))
			return at(c, kn,
				  "key '%s': '%s' is not a media type "
				  "(type/subtype, no parameters) or 'default'",
				  c->path, shown(c, k));
		for (q = v->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *pk =
				yaml_document_get_node(&c->doc, q->key);

			if (strcasecmp(scalar(pk), k) == 0)
				return at(c, kn,
					  "key '%s': route '%s' is "
					  "repeated (first on line %zu)",
					  c->path, shown(c, k),
					  pk->start_mark.line + 1);
		}
		if (vn->type != YAML_SCALAR_NODE || is_null(vn) ||
		    vn->data.scalar.length > 255)
			return at(c, vn,
				  "key '%s': route '%s' must name an "
				  "exchange (up to 255 bytes; \"\" is the "
				  "default exchange)",
				  c->path, shown(c, k));
		if (strcmp(k, "default") == 0) {
			dst = &r->fallback;
		} else {
			r->v[r->n].media_type = strdup(k);
			if (r->v[r->n].media_type == NULL)
				return mk_err_set(c->e, EX_OSERR,
						  "out of "
						  "memory");
			dst = &r->v[r->n++].exchange;
		}
		*dst = strdup(scalar(vn));
		if (*dst == NULL)
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
	case K_LISTEN: {
		char why[160];

		if (set_string(c, v, dst) < 0)
			return -1;
		if (listen_parse(*(char **)dst, NULL, why, sizeof(why)) < 0)
			return at(c, v,
				  "key '%s': '%s' is not an address to "
				  "listen on: %s",
				  c->path, shown(c, *(char **)dst), why);
		return 0;
	}
	case K_STR:
	case K_SECRET:
		return set_string(c, v, dst);
	case K_NAME:
		if (set_string(c, v, dst) < 0)
			return -1;
		if (!valid_name(*(char **)dst))
			return at(c, v,
				  "key '%s': '%s' is not a valid "
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
			*(int *)dst = b; /* verify is tri-state */
		else
			*(bool *)dst = b;
		if (k->note && b != (strcmp(k->def, "true") == 0))
			return c->w ? notice(c, kn, "worker '%s': %s",
					     c->w->queue, k->note)
				    : notice(c, kn, "%s", k->note);
		return 0;
	case K_CHOICE: {
		int i = config_choice(k, scalar(v));
		char list[128] = "";
		const char *const *ch;

		if (v->type == YAML_SCALAR_NODE && i >= 0) {
			*(int *)dst = i;
			return 0;
		}
		for (ch = k->choices; *ch; ch++)
			snprintf(list + strlen(list),
				 sizeof(list) - strlen(list), "%s'%s'",
				 ch == k->choices ? ""
				 : ch[1]          ? ", "
						  : " or ",
				 *ch);
		return at(c, v, "key '%s' is '%s': give %s", c->path,
			  v->type == YAML_SCALAR_NODE ? shown(c, scalar(v))
						      : "not a value",
			  list);
	}
	case K_STRLIST:
		return set_list(c, v);
	case K_NAMES:
		return set_names(c, k, v);
	case K_SLOT:
		if (set_string(c, v, dst) < 0)
			return -1;
		if (!slot_name(*(char **)dst))
			return at(c, v,
				  "key '%s': '%s' is not a replication "
				  "slot name (1 to 63 of a-z 0-9 _)",
				  c->path, shown(c, *(char **)dst));
		return 0;
	case K_ROUTES:
		return set_routes(c, v);
	case K_AMQP_URL:
		if (v->type == YAML_SEQUENCE_NODE)
			return set_nodes(c, v, true);
		if (set_string(c, v, dst) < 0)
			return -1;
		if (url_amqp_parse(scalar(v), &c->w->amqp, c->e) < 0)
			return at(c, v, "key '%s': %s", c->path, c->e->msg);
		c->amqp_url_set = true;
		return 0;
	case K_HOSTS:
		if (v->type == YAML_SEQUENCE_NODE)
			return set_nodes(c, v, false);
		if (set_string(c, v, dst) < 0)
			return -1;
		return check_host(c, v, *(char **)dst, 0);
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
		return -2; /* handled by the caller */
	case K_IGNORED:
		return notice(c, kn, "'%s' is ignored: %s", k->name, k->note);
	case K_UNSUPPORTED:
		return notice(c, kn,
			      "'%s' is ignored: not supported by "
			      "mikkoo-relay's TLS client",
			      c->path);
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

	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
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
			yaml_node_t *prev =
				yaml_document_get_node(&c->doc, q->key);

			if (prev->type == YAML_SCALAR_NODE &&
			    strcmp(scalar(prev), name) == 0) {
				rc = at(c, kn,
					"key '%s' is repeated (first "
					"on line %zu)",
					c->path, prev->start_mark.line + 1);
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
				rc = at(c, kn,
					"key '%s' is unknown (did you "
					"mean '%s'?)",
					c->path, best->name);
			else
				rc = at(c, kn, "key '%s' is unknown", c->path);
			goto out;
		}
		if (k->group) {
			for (i = 0; i < nseen; i++)
				if (strcmp(seen_group[i], k->group) == 0) {
					rc = at(c, kn,
						"key '%s' says again "
						"what line %zu said: give only "
						"one",
						c->path,
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
		if (tab == config_worker_keys)
			c->given |= 1ull << (k - tab);
		if (k->type == K_WORKERS)
			rc = walk_workers(c, vn);
		else
			rc = set_value(c, k, kn, vn);
		if (rc >= 0 && k->given)
			*(bool *)((char *)field(c, k) - k->off + k->given - 1) =
				true;
		if (rc < 0)
			goto out;
	}
out:
	c->path[plen] = '\0';
	return rc < 0 ? -1 : 0;
}

/*
 * Is k's field unset?  Strings when NULL; numbers (and the tri-state
 * verify) when below the key's range, as the URL parser and
 * unset_amqp() leave them.  Plain booleans are never unset: their
 * defaults apply before the file is read.
 */
static bool
is_unset(const struct key *k, void *dst)
{
	switch (k->type) {
	case K_STR:
	case K_SECRET:
	case K_NAME:
	case K_HOSTS:
	case K_LISTEN:
	case K_SLOT:
		return *(char **)dst == NULL;
	case K_INT:
		return *(int *)dst < k->lo;
	case K_DOUBLE:
		return *(double *)dst < k->lo;
	case K_SIZE:
		return (double)*(size_t *)dst < k->lo;
	case K_BOOL:
		return k->target == T_AMQP && *(int *)dst < 0;
	default:
		return false;
	}
}

/* def with each "{worker}" replaced by the worker's name (malloc'd). */
static char *
expand(const char *def, const char *worker)
{
	static const char tag[] = "{worker}";
	const char *hit = worker ? strstr(def, tag) : NULL;
	char *out;

	if (hit == NULL)
		return strdup(def);
	if (asprintf(&out, "%.*s%s%s", (int)(hit - def), def, worker,
		     hit + sizeof(tag) - 1) < 0)
		return NULL;
	return out;
}

/* Give dst (k's field) the table's default for k. */
static int
set_default(struct ctx *c, const struct key *k, void *dst)
{
	struct mk_err *e = c->e;

	switch (k->type) {
	case K_CHOICE:
		*(int *)dst = config_choice(k, k->def);
		return 0;
	case K_STR:
	case K_SECRET:
	case K_NAME:
	case K_HOSTS:
	case K_LISTEN:
	case K_SLOT:
		free(*(char **)dst);
		*(char **)dst = expand(k->def, c->w ? c->w->queue : NULL);
		if (*(char **)dst == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		return 0;
	case K_INT:
		*(int *)dst = (int)strtol(k->def, NULL, 10);
		return 0;
	case K_DOUBLE:
		*(double *)dst = strtod(k->def, NULL);
		return 0;
	case K_SIZE:
		*(size_t *)dst = (size_t)strtoull(k->def, NULL, 10);
		return 0;
	case K_BOOL:
		if (k->target == T_AMQP)
			*(int *)dst = strcmp(k->def, "true") == 0;
		else
			*(bool *)dst = strcmp(k->def, "true") == 0;
		return 0;
	default:
		return 0;
	}
}

/*
 * Apply tab's defaults (and its sub-tables', but never a worker's from
 * the top: each worker gets its own).  only_unset: to fields still unset
 * after reading (the rabbitmq: map, the URL form's query); else to all,
 * before reading.
 */
static int
apply_defaults(struct ctx *c, const struct key *tab, bool only_unset)
{
	const struct key *k;

	for (k = tab; k->name; k++) {
		if (k->sub && k->type != K_RABBITMQ &&
		    apply_defaults(c, k->sub, only_unset) < 0)
			return -1;
		if (k->def && (!only_unset || is_unset(k, field(c, k))) &&
		    set_default(c, k, field(c, k)) < 0)
			return -1;
	}
	return 0;
}

/* What neither the URL nor the map has set yet (see is_unset). */
static void
unset_amqp(struct mk_amqp_url *u)
{
	u->port = u->heartbeat = u->frame_max = u->channel_max = -1;
	u->verify = -1;
	u->timeout = -1;
}

/*
 * The node list: nodes[0] from amqp; a map's other hosts with its
 * settings; other URLs completed as the first was (the environment's
 * password, then the table's defaults, applied through w->amqp so the
 * table stays the one place they are written).
 */
static int
finish_nodes(struct ctx *c)
{
	struct mk_worker_config *w = c->w;
	const char *env = getenv("MIKKOO_RABBITMQ_PASSWORD");
	size_t i;
	int rc = 0;

	w->nnodes = 1 + w->more_nodes.n;
	if (make_absolute(&w->amqp.cacertfile) < 0 ||
	    make_absolute(&w->amqp.certfile) < 0 ||
	    make_absolute(&w->amqp.keyfile) < 0)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	if (w->nodes == NULL)
		w->nodes = calloc(1, sizeof(*w->nodes));
	if (w->nodes == NULL || url_amqp_copy(&w->nodes[0].url, &w->amqp) < 0 ||
	    (w->nodes[0].display = strdup(w->amqp_display)) == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	for (i = 1; i < w->nnodes && rc == 0; i++) {
		struct mk_amqp_node *nd = &w->nodes[i];

		if (c->amqp_map) {
			if (url_amqp_copy(&nd->url, &w->amqp) < 0)
				return mk_err_set(c->e, EX_OSERR,
						  "out of "
						  "memory");
			free(nd->url.host);
			nd->url.host = strdup(w->more_nodes.v[i - 1]);
			nd->display = nd->url.host ? url_amqp_display(&nd->url)
						   : NULL;
		} else {
			struct mk_amqp_url first = w->amqp;

			w->amqp = nd->url;
			if (env && !w->amqp.password_given)
				rc = set_password(c, &w->amqp, env);
			if (rc == 0)
				rc = apply_defaults(c, config_rabbitmq_keys,
						    true);
			nd->url = w->amqp;
			w->amqp = first;
			nd->display = url_mask(w->more_nodes.v[i - 1]);
		}
		if (rc == 0 && nd->display == NULL)
			rc = mk_err_set(c->e, EX_OSERR, "out of memory");
		if (rc == 0 && (make_absolute(&nd->url.cacertfile) < 0 ||
				make_absolute(&nd->url.certfile) < 0 ||
				make_absolute(&nd->url.keyfile) < 0))
			rc = mk_err_set(c->e, EX_OSERR, "out of memory");
	}
	return rc;
}

/* After a worker's keys: required ones, then the defaults of the rest. */
/* A route's exchange that the exchanges allowlist does not have. */
static bool
route_outside(const struct mk_worker_config *w, const char **x)
{
	size_t i, j;

	if (w->exchanges.v == NULL)
		return false;
	for (i = 0; i <= w->routes.n; i++) {
		*x = i < w->routes.n ? w->routes.v[i].exchange
				     : w->routes.fallback;
		if (*x == NULL)
			continue;
		for (j = 0; j < w->exchanges.n; j++)
			if (strcmp(w->exchanges.v[j], *x) == 0)
				break;
		if (j == w->exchanges.n)
			return true;
	}
	return false;
}

static bool
given(const struct ctx *c, const struct key *k)
{
	return c->given & (1ull << (k - config_worker_keys));
}

/*
 * The rows' when, one_of and with (config_keys.h), and the values of
 * the keys that apply, defaults included (a slot named after a worker
 * whose name is not a slot name).
 */
static int
check_applies(struct ctx *c, const yaml_node_t *kn)
{
	const struct mk_worker_config *w = c->w;
	const struct key *k, *j;

	for (k = config_worker_keys; k->name; k++) {
		bool any = false;

		if (!config_applies(k, w)) {
			if (given(c, k)) {
				char cond[64];

				snprintf(cond, sizeof(cond), "%s", k->when);
				if (strchr(cond, '='))
					memcpy(strchr(cond, '='), ":", 1);
				return at(c, kn,
					  "worker '%s': key '%s' is for "
					  "workers with '%.*s %s' only",
					  w->queue, k->name,
					  (int)strcspn(cond, ":") + 1, cond,
					  strchr(cond, ':')
						  ? strchr(cond, ':') + 1
						  : "");
			}
			continue;
		}
		if (k->type == K_SLOT && !given(c, k) &&
		    !slot_name(*(char *const *)field(c, k)))
			return at(c, kn,
				  "worker '%s': its default %s '%s' is "
				  "not a replication slot name (1 to 63 of a-z "
				  "0-9 _): set %s",
				  w->queue, k->name,
				  shown(c, *(char *const *)field(c, k)),
				  k->name);
		if (k->with && !given(c, k)) {
			for (j = config_worker_keys; j->name; j++)
				if (strcmp(j->name, k->with) == 0 &&
				    given(c, j))
					return at(c, kn,
						  "worker '%s': key "
						  "'%s' is required with "
						  "'%s'",
						  w->queue, k->name, k->with);
		}
		if (k->one_of == NULL)
			continue;
		/* once per tag: at its first row */
		for (j = config_worker_keys; j < k; j++)
			if (j->one_of && strcmp(j->one_of, k->one_of) == 0)
				break;
		if (j < k)
			continue;
		for (j = k; j->name; j++)
			if (j->one_of && strcmp(j->one_of, k->one_of) == 0 &&
			    config_applies(j, w) && given(c, j))
				any = true;
		if (!any)
			return at(c, kn, "worker '%s': give %s", w->queue,
				  k->one_of);
	}
	return 0;
}

static int
finish_worker(struct ctx *c, const yaml_node_t *kn)
{
	struct mk_worker_config *w = c->w;
	struct mk_amqp_url *u = &w->amqp;
	const char *env, *x;

	if (w->postgres_url == NULL)
		return at(c, kn, "worker '%s': postgres_url is required",
			  w->queue);
	if (c->amqp_url_set && c->amqp_map)
		return at(c, kn,
			  "worker '%s': give rabbitmq_url or rabbitmq, "
			  "not both",
			  w->queue);
	if (!c->amqp_url_set && !c->amqp_map)
		return at(c, kn,
			  "worker '%s': rabbitmq_url (or a rabbitmq "
			  "mapping) is required",
			  w->queue);
	if (route_outside(w, &x))
		return at(c, kn,
			  "worker '%s': routes send events to exchange "
			  "'%s', which is not in its exchanges list",
			  w->queue, shown(c, x));
	if (check_applies(c, kn) < 0)
		return -1;
	/*
	 * Neither the URL nor the mapping gave a password, nor did a
	 * password_file (the URL parser's "" is not a choice): the
	 * environment's, if set, else the table's guest below.
	 */
	env = getenv("MIKKOO_RABBITMQ_PASSWORD");
	if (env && !u->password_given &&
	    (c->amqp_url_set || u->password == NULL) &&
	    set_password(c, u, env) < 0)
		return -1;
	if (c->amqp_map) {
		u->tls = c->ssl;
		/* the one default that depends on another key */
		if (u->tls && u->port < 0)
			u->port = 5671;
	}
	if (apply_defaults(c, config_rabbitmq_keys, true) < 0)
		return -1;
	if (c->amqp_map)
		w->amqp_display = url_amqp_display(u);
	else
		w->amqp_display = url_mask(w->rabbitmq_url);
	w->postgres_display = url_mask(w->postgres_url);
	if (w->amqp_display == NULL || w->postgres_display == NULL)
		return mk_err_set(c->e, EX_OSERR, "out of memory");
	return finish_nodes(c);
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
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(&c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&c->doc, p->value);
		struct mk_worker_config *w;
		size_t i;

		if (kn->type != YAML_SCALAR_NODE || !valid_name(scalar(kn)))
			return at(c, kn,
				  "key under '%s' must be a queue name "
				  "(1 to 63 of A-Z a-z 0-9 _ . : -)",
				  c->path);
		for (i = 0; i < cfg->nworkers; i++)
			if (strcmp(cfg->workers[i].queue, scalar(kn)) == 0)
				return at(c, kn, "worker '%s' is repeated",
					  scalar(kn));
		w = &cfg->workers[cfg->nworkers++];
		w->queue = strdup(scalar(kn));
		w->line = (int)kn->start_mark.line + 1;
		if (w->queue == NULL)
			return mk_err_set(c->e, EX_OSERR, "out of memory");
		snprintf(c->path + plen, sizeof(c->path) - plen, "/%s",
			 w->queue);
		if (vn->type != YAML_MAPPING_NODE) {
			rc = at(c, vn,
				"worker '%s' must be a mapping of "
				"settings",
				w->queue);
			goto out;
		}
		c->w = w;
		c->given = 0;
		c->amqp_map = c->amqp_url_set = c->ssl = false;
		unset_amqp(&w->amqp);
		rc = apply_defaults(c, config_worker_keys, false);
		if (rc == 0)
			rc = walk(c, vn, config_worker_keys);
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
	cfg->path = strdup(name);
	if (cfg->path == NULL) {
		mk_err_set(e, EX_OSERR, "out of memory");
		goto out;
	}
	if (apply_defaults(&c, config_top_keys, false) < 0)
		goto out;
	if (len > MAX_FILE) {
		mk_err_set(e, EX_CONFIG,
			   "%s: configuration is %zu bytes, over "
			   "the limit of 1 MiB",
			   name, len);
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		mk_err_set(e, EX_OSERR, "out of memory");
		goto out;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &c.doc)) {
		mk_err_set(e, EX_CONFIG,
			   "%s:%zu:%zu: YAML syntax error: %s%s%s", name,
			   parser.problem_mark.line + 1,
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
		at(&c, root,
		   "the top level must be a mapping with an "
		   "'Application' section");
		goto out;
	}
	if (walk(&c, root, config_top_keys) < 0)
		goto out;
	if (cfg->nworkers == 0) {
		mk_err_set(e, EX_CONFIG,
			   "%s: no workers: add queues under "
			   "'Application/workers'",
			   name);
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

	char *name;

	memset(cfg, 0, sizeof(*cfg));
	name = absolute(path);
	if (name == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	f = fopen(name, "r");
	free(name);
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

		if (asprintf(&line,
			     "%s: holds passwords and is readable by "
			     "group or others: chmod 600 %s",
			     path, path) > 0)
			(void)add_notice(cfg, NULL, line); /* OOM: none */
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
		wipe_free(w->rabbitmq_url);
		url_amqp_release(&w->amqp);
		free(w->amqp_display);
		for (size_t k = 0; w->nodes && k < w->nnodes; k++) {
			url_amqp_release(&w->nodes[k].url);
			free(w->nodes[k].display);
		}
		/* a load that failed half way left no count */
		for (size_t k = w->nnodes; w->nodes && k <= w->more_nodes.n;
		     k++)
			url_amqp_release(&w->nodes[k].url);
		free(w->nodes);
		for (size_t k = 0; k < w->more_nodes.n; k++)
			wipe_free(w->more_nodes.v[k]);
		free(w->more_nodes.v);
		free(w->postgres_display);
		free(w->consumer_name);
		for (size_t k = 0; k < w->exchanges.n; k++)
			free(w->exchanges.v[k]);
		free(w->exchanges.v);
		for (size_t k = 0; k < w->routes.n; k++) {
			free(w->routes.v[k].media_type);
			free(w->routes.v[k].exchange);
		}
		free(w->routes.v);
		free(w->routes.fallback);
		free(w->slot);
		for (size_t k = 0; k < w->publications.n; k++)
			free(w->publications.v[k]);
		free(w->publications.v);
		for (size_t k = 0; k < w->streams.n; k++)
			free(w->streams.v[k]);
		free(w->streams.v);
		free(w->change_exchange);
		free(w->change_routing_key);
	}
	free(cfg->workers);
	for (i = 0; i < cfg->nnotices; i++) {
		free(cfg->notices[i].queue);
		free(cfg->notices[i].text);
	}
	free(cfg->notices);
	free(cfg->path);
	free(cfg->statsd.host);
	free(cfg->statsd.prefix);
	free(cfg->metrics.listen);
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

bool
config_notice_for(const struct mk_notice *n, const char *queue)
{
	return queue == NULL || n->queue == NULL ||
	       strcmp(n->queue, queue) == 0;
}
