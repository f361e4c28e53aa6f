/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests for pgoutput (protocol 1 messages, the relation cache) and
 * lsn: messages built here byte by byte as the server sends them, every
 * one cut short at every length, and seeded random corruptions (the
 * decoder must refuse or decode, never read outside the message: the
 * suite's ASan build checks that).
 */
#include <stdlib.h>
#include <string.h>

#include "lsn.h"
#include "pgoutput.h"
#include "tap.h"

struct msg {
	unsigned char b[512];
	size_t n;
};

static void
u8(struct msg *m, unsigned v)
{
	m->b[m->n++] = (unsigned char)v;
}

static void
u16(struct msg *m, unsigned v)
{
	u8(m, v >> 8);
	u8(m, v & 0xff);
}

static void
u32(struct msg *m, unsigned long v)
{
	u16(m, (unsigned)(v >> 16));
	u16(m, (unsigned)(v & 0xffff));
}

static void
u64(struct msg *m, unsigned long long v)
{
	u32(m, (unsigned long)(v >> 32));
	u32(m, (unsigned long)(v & 0xffffffffUL));
}

static void
str(struct msg *m, const char *s)
{
	memcpy(m->b + m->n, s, strlen(s) + 1);
	m->n += strlen(s) + 1;
}

static void
text(struct msg *m, const char *s)
{
	u8(m, 't');
	u32(m, strlen(s));
	memcpy(m->b + m->n, s, strlen(s));
	m->n += strlen(s);
}

/* R: public.users (id int4 key, name text), identity d */
static struct msg
relation(unsigned long relid, const char *second)
{
	struct msg m = { .n = 0 };

	u8(&m, 'R');
	u32(&m, relid);
	str(&m, "public");
	str(&m, "users");
	u8(&m, 'd');
	u16(&m, 2);
	u8(&m, 1);
	str(&m, "id");
	u32(&m, 23);
	u32(&m, 0xffffffffUL);
	u8(&m, 0);
	str(&m, second);
	u32(&m, 25);
	u32(&m, 0xffffffffUL);
	return m;
}

static struct msg
insert(unsigned long relid)
{
	struct msg m = { .n = 0 };

	u8(&m, 'I');
	u32(&m, relid);
	u8(&m, 'N');
	u16(&m, 2);
	text(&m, "1");
	text(&m, "Mikael \xc3\x85kerfeldt");
	return m;
}

static struct msg
update(unsigned long relid)
{
	struct msg m = { .n = 0 };

	u8(&m, 'U');
	u32(&m, relid);
	u8(&m, 'O');
	u16(&m, 2);
	text(&m, "1");
	u8(&m, 'n');
	u8(&m, 'N');
	u16(&m, 2);
	text(&m, "2");
	u8(&m, 'u');
	return m;
}

static int
decodes(struct pgo *d, const struct msg *m, struct pgo_msg *out)
{
	struct mk_err e;

	return pgo_decode(d, (const char *)m->b, m->n, out, &e);
}

static void
relations_and_changes(void)
{
	struct pgo *d = pgo_new();
	struct pgo_msg out;
	struct mk_err e;
	struct msg m;

	m = insert(16384);
	ok(pgo_decode(d, (const char *)m.b, m.n, &out, &e) < 0 &&
		   e.code == EX_PROTOCOL && strstr(e.msg, "no 'R' message"),
	   "a change before its relation is refused: %s", e.msg);

	m = relation(16384, "name");
	ok(decodes(d, &m, &out) == 0 && out.type == 'R', "R decodes");
	ok(out.rel && out.rel->relid == 16384 && out.rel->ncols == 2 &&
		   strcmp(out.rel->nspname, "public") == 0 &&
		   strcmp(out.rel->relname, "users") == 0 &&
		   out.rel->replident == 'd',
	   "relation: relid, names, identity");
	ok(out.rel->cols[0].key && !out.rel->cols[1].key &&
		   out.rel->cols[0].type == 23 && out.rel->cols[1].type == 25 &&
		   out.rel->cols[1].typmod == -1 &&
		   strcmp(out.rel->cols[1].name, "name") == 0,
	   "columns");

	m = insert(16384);
	ok(decodes(d, &m, &out) == 0 && out.type == 'I' &&
		   out.new_tuple.ncols == 2 && out.old_kind == 0,
	   "I decodes");
	ok(out.new_tuple.vals[0].kind == 't' &&
		   out.new_tuple.vals[0].len == 1 &&
		   memcmp(out.new_tuple.vals[0].data, "1", 1) == 0 &&
		   out.new_tuple.vals[1].len ==
			   strlen("Mikael \xc3\x85kerfeldt"),
	   "I's values point into the message");

	m = update(16384);
	ok(decodes(d, &m, &out) == 0 && out.type == 'U' &&
		   out.old_kind == 'O' && out.old_tuple.ncols == 2 &&
		   out.old_tuple.vals[1].kind == 'n' &&
		   out.new_tuple.vals[1].kind == 'u',
	   "U with O, n and u");
	ok(out.old_tuple.vals != out.new_tuple.vals,
	   "old and new rows do not share their arrays");

	/* a new definition replaces the cached one */
	m = relation(16384, "full_name");
	ok(decodes(d, &m, &out) == 0, "R again");
	ok(strcmp(pgo_relation(d, 16384)->cols[1].name, "full_name") == 0,
	   "the relation cache holds the new definition");

	/* many relations: the cache grows */
	{
		unsigned long r;
		int all = 1;

		for (r = 1; r <= 200; r++) {
			m = relation(r, "c");
			all &= decodes(d, &m, &out) == 0;
		}
		for (r = 1; r <= 200; r++)
			all &= pgo_relation(d, r) != NULL &&
			       pgo_relation(d, r)->relid == r;
		ok(all && pgo_relation(d, 16384) != NULL,
		   "200 relations cached by relid");
	}

	/* T: two relations */
	m.n = 0;
	u8(&m, 'T');
	u32(&m, 2);
	u8(&m, 1);
	u32(&m, 16384);
	u32(&m, 7);
	ok(decodes(d, &m, &out) == 0 && out.nrels == 2 &&
		   out.truncate_options == 1 && out.rels[0]->relid == 16384 &&
		   out.rels[1]->relid == 7,
	   "T names its relations");

	/* D with K, and a column count that differs from the relation's */
	m.n = 0;
	u8(&m, 'D');
	u32(&m, 16384);
	u8(&m, 'K');
	u16(&m, 2);
	text(&m, "1");
	u8(&m, 'n');
	ok(decodes(d, &m, &out) == 0 && out.type == 'D' && out.old_kind == 'K',
	   "D with K");
	m.n = 0;
	u8(&m, 'D');
	u32(&m, 16384);
	u8(&m, 'K');
	u16(&m, 3);
	text(&m, "1");
	u8(&m, 'n');
	u8(&m, 'n');
	ok(pgo_decode(d, (const char *)m.b, m.n, &out, &e) < 0 &&
		   strstr(e.msg, "has 3 columns, its relation 2"),
	   "a tuple of the wrong width is refused: %s", e.msg);
	pgo_free(d);
}

static void
transactions_and_messages(void)
{
	struct pgo *d = pgo_new();
	struct pgo_msg out;
	struct msg m = { .n = 0 };
	struct mk_err e;

	u8(&m, 'B');
	u64(&m, 0x16B374D848ULL);
	u64(&m, 1000000);
	u32(&m, 742);
	ok(decodes(d, &m, &out) == 0 && out.final_lsn == 0x16B374D848ULL &&
		   out.commit_time == 1000000 && out.xid == 742,
	   "B");
	m.n = 0;
	u8(&m, 'C');
	u8(&m, 0);
	u64(&m, 0x100);
	u64(&m, 0x180);
	u64(&m, 5);
	ok(decodes(d, &m, &out) == 0 && out.final_lsn == 0x100 &&
		   out.end_lsn == 0x180 && out.commit_time == 5,
	   "C");
	m.n = 0;
	u8(&m, 'M');
	u8(&m, 1);
	u64(&m, 0x200);
	str(&m, "mikkoo.emit");
	u32(&m, 3);
	memcpy(m.b + m.n, "a\0b", 3);
	m.n += 3;
	ok(decodes(d, &m, &out) == 0 && out.transactional &&
		   out.msg_lsn == 0x200 &&
		   strcmp(out.prefix, "mikkoo.emit") == 0 &&
		   out.content_len == 3 && memcmp(out.content, "a\0b", 3) == 0,
	   "M, content with a NUL byte");
	m.n = 0;
	u8(&m, 'Y');
	u32(&m, 99);
	str(&m, "public");
	str(&m, "mood");
	ok(decodes(d, &m, &out) == 0 && out.type_oid == 99 &&
		   strcmp(out.name, "mood") == 0,
	   "Y");
	m.n = 0;
	u8(&m, 'S');
	u32(&m, 1);
	ok(pgo_decode(d, (const char *)m.b, m.n, &out, &e) < 0 &&
		   strstr(e.msg, "unknown message type 0x53"),
	   "protocol 2's stream start is refused: %s", e.msg);
	ok(pgo_decode(d, "", 0, &out, &e) < 0, "an empty message");
	m.n = 0;
	u8(&m, 'B');
	u64(&m, 1);
	u64(&m, 1);
	u32(&m, 1);
	u8(&m, 0);
	ok(pgo_decode(d, (const char *)m.b, m.n, &out, &e) < 0 &&
		   strstr(e.msg, "cut short or malformed"),
	   "a byte too many");
	pgo_free(d);
}

/* Every message cut at every length is refused, never over-read. */
static void
cut_short(void)
{
	struct msg all[5];
	struct pgo *d = pgo_new();
	struct pgo_msg out;
	struct mk_err e;
	int i, bad = 0, n = 0;
	size_t len;

	all[0] = relation(5, "name");
	all[1] = insert(5);
	all[2] = update(5);
	all[3] = relation(6, "x");
	all[4] = insert(6);
	ok(decodes(d, &all[0], &out) == 0 && decodes(d, &all[3], &out) == 0,
	   "relations for the cut messages");
	for (i = 0; i < 5; i++)
		for (len = 0; len < all[i].n; len++) {
			/* a copy of exactly len bytes: ASan sees an over-read */
			char *c = malloc(len ? len : 1);

			memcpy(c, all[i].b, len);
			if (pgo_decode(d, c, len, &out, &e) == 0)
				bad++;
			n++;
			free(c);
		}
	ok(bad == 0, "%d cut messages, all refused", n);
	pgo_free(d);
}

/* Seeded random bytes flipped in valid messages: decode or refuse. */
static void
corrupted(void)
{
	struct pgo *d = pgo_new();
	struct pgo_msg out;
	struct mk_err e;
	unsigned seed = 20261206, i, decoded = 0, refused = 0;
	struct msg base[3], m;

	base[0] = relation(9, "name");
	base[1] = insert(9);
	base[2] = update(9);
	ok(decodes(d, &base[0], &out) == 0, "relation for corruption");
	for (i = 0; i < 20000; i++) {
		char *c;

		m = base[i % 3];
		seed = seed * 1103515245u + 12345u;
		m.b[(seed >> 8) % m.n] = (unsigned char)(seed >> 16);
		c = malloc(m.n);
		memcpy(c, m.b, m.n);
		if (pgo_decode(d, c, m.n, &out, &e) == 0)
			decoded++;
		else
			refused++;
		free(c);
		/* keep a relation 9 cached whatever the corruption did */
		if (i % 3 == 0)
			(void)decodes(d, &base[0], &out);
	}
	ok(decoded + refused == 20000 && refused > 0,
	   "20000 corrupted messages (seed 20261206): %u decoded, %u refused",
	   decoded, refused);
	pgo_free(d);
}

static void
lsns(void)
{
	char buf[24];
	mk_lsn l = 0;

	is_str(lsn_format(0x16B374D848ULL, buf, sizeof(buf)), "16/B374D848",
	       "format");
	is_str(lsn_format(0, buf, sizeof(buf)), "0/0", "format 0");
	ok(lsn_parse("16/B374D848", &l) == 0 && l == 0x16B374D848ULL, "parse");
	ok(lsn_parse("ffffffff/ffffffff", &l) == 0 && l == ~0ULL,
	   "parse the largest");
	ok(lsn_parse("1/", &l) < 0 && lsn_parse("/1", &l) < 0 &&
		   lsn_parse("1/2/3", &l) < 0 &&
		   lsn_parse("123456789/1", &l) < 0 &&
		   lsn_parse("x/1", &l) < 0 && lsn_parse("", &l) < 0 &&
		   lsn_parse(NULL, &l) < 0,
	   "refuse what is not an LSN");
}

int
main(void)
{
	relations_and_changes();
	transactions_and_messages();
	cut_short();
	corrupted();
	lsns();
	return tap_done();
}
