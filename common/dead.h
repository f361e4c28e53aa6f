/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dead: selecting rows of mikkoo.dead_letter, for mikkoo-inspect and
 * mikkoo-replay, so both read "the same" dead letters from the same
 * flags.
 *
 * Owns: the filter (queue, consumer, time range, routing key, reason
 * pattern, ids), its SQL condition with parameters, and the record
 * layout of a dead letter.  Never: runs queries itself.
 */
#ifndef MIKKOO_DEAD_H
#define MIKKOO_DEAD_H

#include <stdbool.h>
#include <stddef.h>

struct dead_filter {
	const char *queue;
	const char *consumer;
	const char *since; /* timestamptz text, inclusive */
	const char *until; /* exclusive */
	const char *routing_key;
	const char *reason_like; /* SQL LIKE pattern */
	const char *ids;         /* "{1,2,3}": an int8[] literal, or NULL */
};

/* The condition over mikkoo.dead_letter with parameters $1..$7. */
#define DEAD_WHERE                                          \
	"($1::text IS NULL OR queue = $1)"                  \
	" AND ($2::text IS NULL OR consumer = $2)"          \
	" AND ($3::timestamptz IS NULL OR failed_at >= $3)" \
	" AND ($4::timestamptz IS NULL OR failed_at < $4)"  \
	" AND ($5::text IS NULL OR ev_type = $5)"           \
	" AND ($6::text IS NULL OR reason LIKE $6)"         \
	" AND ($7::int8[] IS NULL OR id = ANY($7))"
#define DEAD_NPARAMS 7

/* The columns of a dead-letter record, in output order. */
#define DEAD_COLUMNS                                                  \
	"id, queue, consumer, batch_id, ev_id,"                       \
	" to_char(ev_time AT TIME ZONE 'UTC',"                        \
	"  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ev_time,"          \
	" ev_txid, ev_retry, ev_type, ev_data, ev_extra1, ev_extra2," \
	" ev_extra3, ev_extra4, reason,"                              \
	" to_char(failed_at AT TIME ZONE 'UTC',"                      \
	"  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS failed_at"

/*
 * The filter's options, the same in every command that selects dead
 * letters: rows for a cli_opt table (cli.h) and their values.
 */
enum {
	DEAD_OPT_SINCE = 320,
	DEAD_OPT_UNTIL,
	DEAD_OPT_RK,
	DEAD_OPT_REASON,
	DEAD_OPT_ID
};
#define DEAD_FILTER_OPTS                                                \
	{ DEAD_OPT_SINCE, "since", "TIME",                              \
	  "dead letters failed at or after "                            \
	  "TIME" },                                                     \
		{ DEAD_OPT_UNTIL, "until", "TIME",                      \
		  "dead letters failed before TIME" },                  \
		{ DEAD_OPT_RK, "routing-key", "KEY",                    \
		  "dead letters of this ev_type "                       \
		  "only" },                                             \
		{ DEAD_OPT_REASON, "reason-like", "PAT",                \
		  "reason LIKE PAT, e.g. "                              \
		  "'%NO_ROUTE%'" },                                     \
	{                                                               \
		DEAD_OPT_ID, "id", "N", "this dead letter (repeatable)" \
	}

/*
 * Take option opt's value arg into f; an --id goes into *ids (an int8[]
 * literal the caller frees; f->ids points at it).  1 taken, 0 not one
 * of DEAD_FILTER_OPTS, -1 a bad --id.
 */
int dead_option(struct dead_filter *f, char **ids, int opt, const char *arg);

/* The parameters for DEAD_WHERE. */
void dead_params(const struct dead_filter *f, const char *v[DEAD_NPARAMS]);

/*
 * Add the decimal id s to *list, an int8[] literal ("{1,2}") the caller
 * frees.  -1 when s is not a positive integer.
 */
int dead_add_id(char **list, const char *s);

/* How many ids the list holds. */
long dead_count_ids(const char *list);

/* True when the filter selects something narrower than everything. */
bool dead_filtered(const struct dead_filter *f);

#endif
