/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config_keys: the configuration's key table.  config.c reads a file
 * through it and the relay's config_diff.c compares two through it;
 * nothing else includes this header.
 *
 * Owns: the row layout (struct key) and the tables.  Everything about a
 * key is written in its row and nowhere else: its type, range or choices,
 * default, reload class, the notice a value earns, and the flag its
 * presence sets; config.c treats keys by type, never by name.
 * config_check_table() is the rule a new row must follow.
 */
#ifndef MIKKOO_CONFIG_KEYS_H
#define MIKKOO_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum ktype {
	K_STR,  /* any scalar */
	K_NAME, /* a queue or consumer name */
	K_INT,
	K_DOUBLE,
	K_BOOL,
	K_SIZE,     /* integer bytes */
	K_STRLIST,  /* a sequence of strings: exchanges */
	K_ROUTES,   /* a mapping media type -> exchange: routes */
	K_AMQP_URL, /* rabbitmq_url: parsed into w->amqp; or a list */
	K_HOSTS,    /* rabbitmq/host: one, or a list */
	K_RABBITMQ, /* the 3.x rabbitmq: mapping */
	K_SSL,      /* rabbitmq/ssl_options */
	K_STATSD,
	K_WORKERS,
	K_SECTION,     /* a mapping walked with its own table */
	K_IGNORED,     /* any node; a notice says it does not apply */
	K_UNSUPPORTED, /* accepted with a notice (TLS options we lack) */
	K_PWFILE,      /* rabbitmq/password_file */
	K_LISTEN,      /* an address:port to listen on (metrics) */
	K_SECRET,      /* a password: never shown in a message */
	K_CHOICE,      /* one of choices[], stored as its index (int) */
	K_SLOT,        /* a replication slot name: 1 to 63 of a-z 0-9 _ */
	K_NAMES,       /* one name or a list of them (struct mk_strlist),
			   each 1 to hi bytes */
};

/* Which struct a key writes to. */
enum target { T_CFG, T_STATSD, T_WORKER, T_AMQP };

/*
 * One row per key: everything about it is said here and nowhere else.
 * def is the value an absent key takes, written as in the file; keys of
 * the rabbitmq: map (and the URL form's query) are unset when below
 * their range (-1) or NULL, and get def after the worker is read.
 */
struct key {
	const char *name;
	enum ktype type;
	enum target target;
	size_t off;
	double lo, hi;
	const char *def;
	enum config_reload reload;
	const char *group;          /* keys that are aliases share a group */
	const struct key *sub;      /* for K_SECTION and the mappings */
	const char *const *choices; /* K_CHOICE: the values, NULL-ended */
	/*
	 * A notice for the file: K_BOOL says it when the file gives the
	 * opposite of def (a value accepted but not honoured as written);
	 * K_IGNORED says why the key does not apply.
	 */
	const char *note;
	/* 1 + the offset (in the key's target) of a bool that is set when
	 * the file gives the key; 0: none. */
	size_t given;
	/*
	 * Worker keys only.  when: "KEY=VALUE", the key applies only to
	 * workers whose K_CHOICE key KEY is VALUE (given elsewhere, it is
	 * an error; its default is not checked).  one_of: of the keys
	 * with this tag that apply, at least one must be given (the tag
	 * says what they are, for the message).  with: the key is
	 * required when the key so named is given.
	 */
	const char *when;
	const char *one_of;
	const char *with;
};

/* Application, Daemon, Logging; each worker's keys; the rabbitmq: map. */
extern const struct key config_top_keys[];
extern const struct key config_worker_keys[];
extern const struct key config_rabbitmq_keys[];

/* The field k writes, in cfg or in worker w (for T_WORKER, T_AMQP). */
const void *config_field(const struct key *k, const struct mk_config *cfg,
			 const struct mk_worker_config *w);

/* The index of s among k's choices, or -1. */
int config_choice(const struct key *k, const char *s);

/*
 * Does worker key k apply to w (its when condition)?  The condition's
 * key is looked up in config_worker_keys.
 */
bool config_applies(const struct key *k, const struct mk_worker_config *w);

#endif
