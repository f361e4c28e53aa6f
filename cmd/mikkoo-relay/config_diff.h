/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config_diff: the relay's reload, key by key.
 * Owns: which keys differ between a running configuration and a new one,
 * by the reload class the key table gives each (restart the worker, apply
 * live, or only say so).
 * Never: reads files, logs.
 */
#ifndef MIKKOO_CONFIG_DIFF_H
#define MIKKOO_CONFIG_DIFF_H

#include <stdbool.h>

#include "config.h"

/*
 * What changed between a running configuration and a new one, as SIGHUP
 * sees it, found by walking the key table: the keys that differ, by
 * reload class, as "a, rabbitmq/b" lists for log lines (cut to fit).
 */
struct config_diff {
	bool restart; /* restart_keys is not empty */
	bool live;
	bool notice;
	char restart_keys[256];
	char live_keys[256];
	char notice_keys[256];
};

/*
 * Compare the keys every worker uses (Application's, Daemon's) and, when
 * queue is not NULL, that worker's own (it must exist in both).
 */
void config_diff(const struct mk_config *a, const struct mk_config *b,
		 const char *queue, struct config_diff *d);

#endif
