/* SPDX-License-Identifier: BSD-3-Clause */
/* config_diff: what a reload changes, key by key through the table. */
#include <stdio.h>
#include <string.h>

#include "config_diff.h"
#include "config_keys.h"

struct side {
	const struct mk_config *cfg;
	const struct mk_worker_config *w;
};

static const void *
field_of(const struct key *k, const struct side *sd)
{
	return config_field(k, sd->cfg, sd->w);
}

static bool
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool
same_list(const struct mk_strlist *a, const struct mk_strlist *b)
{
	size_t i;

	if ((a->v == NULL) != (b->v == NULL) || a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

static bool
same_routes(const struct mk_routes *a, const struct mk_routes *b)
{
	size_t i;

	if ((a->v == NULL) != (b->v == NULL) || a->n != b->n ||
	    !same_str(a->fallback, b->fallback))
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i].media_type, b->v[i].media_type) != 0 ||
		    strcmp(a->v[i].exchange, b->v[i].exchange) != 0)
			return false;
	return true;
}

/* Does k hold the same value on both sides?  (Mappings: see diff_tab.) */
static bool
same_value(const struct key *k, const struct side *x, const struct side *y)
{
	const void *a = field_of(k, x), *b = field_of(k, y);

	switch (k->type) {
	case K_AMQP_URL: /* the first node, then the others */
		return same_str(*(char *const *)a, *(char *const *)b) &&
		       (*(char *const *)a == NULL ||
			same_list(&x->w->more_nodes, &y->w->more_nodes));
	case K_HOSTS:
		return same_str(*(char *const *)a, *(char *const *)b) &&
		       same_list(&x->w->more_nodes, &y->w->more_nodes);
	case K_STR:
	case K_SECRET:
	case K_NAME:
	case K_LISTEN:
	case K_SLOT:
	case K_PWFILE: /* what the file said: the password */
		return same_str(*(char *const *)a, *(char *const *)b);
	case K_INT:
	case K_CHOICE:
		return *(const int *)a == *(const int *)b;
	case K_DOUBLE:
		return *(const double *)a == *(const double *)b;
	case K_SIZE:
		return *(const size_t *)a == *(const size_t *)b;
	case K_BOOL:
		if (k->target == T_AMQP)
			return *(const int *)a == *(const int *)b;
		return *(const bool *)a == *(const bool *)b;
	case K_STRLIST:
	case K_NAMES:
		return same_list(a, b);
	case K_ROUTES:
		return same_routes(a, b);
	case K_SSL:
		return x->w->amqp.tls == y->w->amqp.tls;
	default:
		return true;
	}
}

static void
note_key(char *list, size_t sz, const char *prefix, const char *name)
{
	size_t n = strlen(list);

	if (n + 1 < sz)
		snprintf(list + n, sz - n, "%s%s%s", n ? ", " : "", prefix,
			 name);
}

static void
diff_tab(const struct key *tab, const char *prefix, const struct side *x,
	 const struct side *y, bool workers, struct config_diff *d)
{
	const struct key *k, *j;

	for (k = tab; k->name; k++) {
		bool dup = false;
		char sub[128];

		/* an alias writes the field another row already compared */
		for (j = tab; j < k && !dup; j++)
			dup = j->target == k->target && j->off == k->off &&
			      j->group && k->group &&
			      strcmp(j->group, k->group) == 0;
		if (dup || (!workers &&
			    (k->target == T_WORKER || k->target == T_AMQP)))
			continue;
		if (k->sub) {
			/* both from one URL: the URL row said it all */
			if (k->type == K_RABBITMQ && x->w->rabbitmq_url &&
			    y->w->rabbitmq_url)
				continue;
			snprintf(sub, sizeof(sub), "%s%s/", prefix, k->name);
			diff_tab(k->sub, sub, x, y, workers, d);
		}
		if (same_value(k, x, y))
			continue;
		switch (k->reload) {
		case CONFIG_RELOAD_RESTART:
			d->restart = true;
			note_key(d->restart_keys, sizeof(d->restart_keys),
				 prefix, k->name);
			break;
		case CONFIG_RELOAD_NOTICE:
			d->notice = true;
			note_key(d->notice_keys, sizeof(d->notice_keys), prefix,
				 k->name);
			break;
		default:
			d->live = true;
			note_key(d->live_keys, sizeof(d->live_keys), prefix,
				 k->name);
			break;
		}
	}
}

void
config_diff(const struct mk_config *a, const struct mk_config *b,
	    const char *queue, struct config_diff *d)
{
	struct side x = { a, NULL }, y = { b, NULL };

	memset(d, 0, sizeof(*d));
	diff_tab(config_top_keys, "", &x, &y, false, d);
	if (queue == NULL)
		return;
	x.w = config_worker(a, queue);
	y.w = config_worker(b, queue);
	if (x.w && y.w)
		diff_tab(config_worker_keys, "", &x, &y, true, d);
}
