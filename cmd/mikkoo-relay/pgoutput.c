/* SPDX-License-Identifier: BSD-3-Clause */
/* pgoutput: protocol 1 messages and the relation cache. */
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

struct pgo {
	struct pgo_relation **rels; /* open addressing by relid */
	size_t cap, count;
	struct pgo_value *vals[2]; /* old, new */
	int nvals[2];
	const struct pgo_relation **trunc;
	int ntrunc;
};

/* A cursor over one message; any overrun marks it bad. */
struct cur {
	const unsigned char *p, *end, *start;
	bool bad;
};

static bool
need(struct cur *c, size_t n)
{
	if (c->bad || (size_t)(c->end - c->p) < n) {
		c->bad = true;
		return false;
	}
	return true;
}

static uint8_t
u8(struct cur *c)
{
	return need(c, 1) ? *c->p++ : 0;
}

static uint16_t
u16(struct cur *c)
{
	uint16_t v;

	if (!need(c, 2))
		return 0;
	v = (uint16_t)((c->p[0] << 8) | c->p[1]);
	c->p += 2;
	return v;
}

static uint32_t
u32(struct cur *c)
{
	uint32_t v;

	if (!need(c, 4))
		return 0;
	v = ((uint32_t)c->p[0] << 24) | ((uint32_t)c->p[1] << 16) |
	    ((uint32_t)c->p[2] << 8) | c->p[3];
	c->p += 4;
	return v;
}

static uint64_t
u64(struct cur *c)
{
	uint64_t hi = u32(c);

	return (hi << 32) | u32(c);
}

/* A NUL-terminated string in the message. */
static const char *
str(struct cur *c)
{
	const unsigned char *z;

	if (c->bad)
		return "";
	z = memchr(c->p, '\0', (size_t)(c->end - c->p));
	if (z == NULL) {
		c->bad = true;
		return "";
	}
	{
		const char *s = (const char *)c->p;

		c->p = z + 1;
		return s;
	}
}

static int
cut_short(const struct cur *c, char type, struct mk_err *e)
{
	return mk_err_set(e, EX_PROTOCOL,
			  "pgoutput: message '%c' is cut "
			  "short or malformed at byte %zu of %zu",
			  type, (size_t)(c->p - c->start),
			  (size_t)(c->end - c->start));
}

struct pgo *
pgo_new(void)
{
	return calloc(1, sizeof(struct pgo));
}

static void
rel_free(struct pgo_relation *r)
{
	int i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ncols; i++)
		free(r->cols[i].name);
	free(r->cols);
	free(r->nspname);
	free(r->relname);
	free(r);
}

void
pgo_free(struct pgo *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->cap; i++)
		rel_free(d->rels[i]);
	free(d->rels);
	free(d->vals[0]);
	free(d->vals[1]);
	free(d->trunc);
	free(d);
}

static size_t
slot_of(const struct pgo *d, uint32_t relid)
{
	size_t i = (relid * 2654435761u) & (d->cap - 1);

	while (d->rels[i] && d->rels[i]->relid != relid)
		i = (i + 1) & (d->cap - 1);
	return i;
}

const struct pgo_relation *
pgo_relation(const struct pgo *d, uint32_t relid)
{
	return d->cap ? d->rels[slot_of(d, relid)] : NULL;
}

/* Put r in the cache, replacing its relid's; 0 or -1 (memory). */
static int
rel_put(struct pgo *d, struct pgo_relation *r)
{
	size_t i;

	if (2 * (d->count + 1) > d->cap) {
		size_t oldcap = d->cap, ncap = d->cap ? d->cap * 2 : 16;
		struct pgo_relation **old = d->rels;

		d->rels = calloc(ncap, sizeof(*d->rels));
		if (d->rels == NULL) {
			d->rels = old;
			return -1;
		}
		d->cap = ncap;
		for (i = 0; i < oldcap; i++)
			if (old[i])
				d->rels[slot_of(d, old[i]->relid)] = old[i];
		free(old);
	}
	i = slot_of(d, r->relid);
	if (d->rels[i])
		rel_free(d->rels[i]);
	else
		d->count++;
	d->rels[i] = r;
	return 0;
}

static int
decode_relation(struct pgo *d, struct cur *c, struct pgo_msg *m,
		struct mk_err *e)
{
	struct pgo_relation *r = calloc(1, sizeof(*r));
	const char *s;
	int i;

	if (r == NULL)
		return mk_err_set(e, EX_OSERR, "out of memory");
	r->relid = u32(c);
	s = str(c);
	r->nspname = strdup(s);
	s = str(c);
	r->relname = strdup(s);
	r->replident = (char)u8(c);
	r->ncols = u16(c);
	r->cols = calloc(r->ncols ? (size_t)r->ncols : 1, sizeof(*r->cols));
	if (r->nspname == NULL || r->relname == NULL || r->cols == NULL) {
		r->ncols = 0;
		rel_free(r);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	for (i = 0; i < r->ncols && !c->bad; i++) {
		r->cols[i].key = (u8(c) & 1) != 0;
		r->cols[i].name = strdup(str(c));
		r->cols[i].type = u32(c);
		r->cols[i].typmod = (int32_t)u32(c);
		if (r->cols[i].name == NULL) {
			rel_free(r);
			return mk_err_set(e, EX_OSERR, "out of memory");
		}
	}
	if (c->bad || c->p != c->end) {
		rel_free(r);
		c->bad = true;
		return cut_short(c, 'R', e);
	}
	if (rel_put(d, r) < 0) {
		rel_free(r);
		return mk_err_set(e, EX_OSERR, "out of memory");
	}
	m->rel = r;
	return 0;
}

/* Tuple data for rel into vals[which]. */
static int
decode_tuple(struct pgo *d, struct cur *c, const struct pgo_relation *rel,
	     int which, struct pgo_tuple *t, char type, struct mk_err *e)
{
	int n = u16(c), i;
	struct pgo_value *v;

	if (c->bad)
		return cut_short(c, type, e);
	if (n != rel->ncols)
		return mk_err_set(e, EX_PROTOCOL,
				  "pgoutput: message '%c' "
				  "for %s.%s has %d columns, its relation %d",
				  type, rel->nspname, rel->relname, n,
				  rel->ncols);
	if (n > d->nvals[which]) {
		v = realloc(d->vals[which], (size_t)n * sizeof(*v));
		if (v == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		d->vals[which] = v;
		d->nvals[which] = n;
	}
	v = d->vals[which];
	for (i = 0; i < n; i++) {
		v[i].kind = (char)u8(c);
		v[i].len = 0;
		v[i].data = NULL;
		switch (v[i].kind) {
		case 'n':
		case 'u':
			break;
		case 't':
		case 'b':
			v[i].len = u32(c);
			if (!need(c, v[i].len))
				return cut_short(c, type, e);
			v[i].data = (const char *)c->p;
			c->p += v[i].len;
			break;
		default:
			c->bad = true;
			return cut_short(c, type, e);
		}
	}
	if (c->bad)
		return cut_short(c, type, e);
	t->ncols = n;
	t->vals = v;
	return 0;
}

static int
change_rel(struct pgo *d, struct cur *c, struct pgo_msg *m, char type,
	   struct mk_err *e)
{
	uint32_t relid = u32(c);

	if (c->bad)
		return cut_short(c, type, e);
	m->rel = pgo_relation(d, relid);
	if (m->rel == NULL)
		return mk_err_set(e, EX_PROTOCOL,
				  "pgoutput: message '%c' for "
				  "relation %u, which no 'R' message "
				  "described",
				  type, relid);
	return 0;
}

static int
decode_change(struct pgo *d, struct cur *c, struct pgo_msg *m, struct mk_err *e)
{
	char type = m->type;
	uint8_t k;

	if (change_rel(d, c, m, type, e) < 0)
		return -1;
	k = u8(c);
	if ((type == 'U' || type == 'D') && (k == 'K' || k == 'O')) {
		m->old_kind = (char)k;
		if (decode_tuple(d, c, m->rel, 0, &m->old_tuple, type, e) < 0)
			return -1;
		if (type == 'U')
			k = u8(c);
	}
	if (type == 'I' || type == 'U') {
		if (k != 'N') {
			c->bad = true;
			return cut_short(c, type, e);
		}
		if (decode_tuple(d, c, m->rel, 1, &m->new_tuple, type, e) < 0)
			return -1;
	} else if (m->old_kind == 0) {
		c->bad = true; /* a delete without its old key or row */
		return cut_short(c, type, e);
	}
	if (c->p != c->end) {
		c->bad = true;
		return cut_short(c, type, e);
	}
	return 0;
}

static int
decode_truncate(struct pgo *d, struct cur *c, struct pgo_msg *m,
		struct mk_err *e)
{
	uint32_t n = u32(c), i, relid;
	const struct pgo_relation **t;

	m->truncate_options = u8(c);
	if (c->bad || (size_t)(c->end - c->p) != (size_t)n * 4)
		return cut_short(c, 'T', e);
	if ((int)n > d->ntrunc) {
		t = realloc(d->trunc, n * sizeof(*t));
		if (t == NULL)
			return mk_err_set(e, EX_OSERR, "out of memory");
		d->trunc = t;
		d->ntrunc = (int)n;
	}
	for (i = 0; i < n; i++) {
		relid = u32(c);
		d->trunc[i] = pgo_relation(d, relid);
		if (d->trunc[i] == NULL)
			return mk_err_set(e, EX_PROTOCOL,
					  "pgoutput: truncate "
					  "of relation %u, which no 'R' "
					  "message described",
					  relid);
	}
	m->nrels = (int)n;
	m->rels = d->trunc;
	return 0;
}

int
pgo_decode(struct pgo *d, const char *buf, size_t len, struct pgo_msg *m,
	   struct mk_err *e)
{
	struct cur c = { (const unsigned char *)buf,
			 (const unsigned char *)buf + len,
			 (const unsigned char *)buf, false };

	memset(m, 0, sizeof(*m));
	if (len == 0)
		return mk_err_set(e, EX_PROTOCOL, "pgoutput: empty message");
	m->type = (char)u8(&c);
	switch (m->type) {
	case 'B':
		m->final_lsn = u64(&c);
		m->commit_time = (int64_t)u64(&c);
		m->xid = u32(&c);
		break;
	case 'C':
		(void)u8(&c); /* flags, unused */
		m->final_lsn = u64(&c);
		m->end_lsn = u64(&c);
		m->commit_time = (int64_t)u64(&c);
		break;
	case 'O':
		m->final_lsn = u64(&c);
		m->name = str(&c);
		break;
	case 'Y':
		m->type_oid = u32(&c);
		m->nsp = str(&c);
		m->name = str(&c);
		break;
	case 'R':
		return decode_relation(d, &c, m, e);
	case 'I':
	case 'U':
	case 'D':
		return decode_change(d, &c, m, e);
	case 'T':
		return decode_truncate(d, &c, m, e);
	case 'M':
		m->transactional = (u8(&c) & 1) != 0;
		m->msg_lsn = u64(&c);
		m->prefix = str(&c);
		m->content_len = u32(&c);
		if (!need(&c, m->content_len))
			break;
		m->content = (const char *)c.p;
		c.p += m->content_len;
		break;
	default:
		return mk_err_set(e, EX_PROTOCOL,
				  "pgoutput: unknown message "
				  "type 0x%02x (protocol 1 was asked for)",
				  (unsigned char)m->type);
	}
	if (c.bad || c.p != c.end)
		return cut_short(&c, m->type, e);
	return 0;
}
