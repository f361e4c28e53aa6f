/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer: the configuration parser.  Any input loads or fails with
 * a located EX_CONFIG message; a password in the input never shows in
 * that message, nor in the masked URL of any RabbitMQ node it lists.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canary.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_config cfg;
	struct mk_err e;

	if (config_load_buffer("f.yml", (const char *)data, size, &cfg, &e) ==
	    0) {
		if (cfg.nworkers == 0)
			abort();
		/* every node's display is masked, as the first one's */
		for (size_t i = 0; i < cfg.nworkers; i++) {
			const struct mk_worker_config *w = &cfg.workers[i];

			if (w->nnodes < 1 || w->nnodes > CONFIG_MAX_NODES)
				abort();
			for (size_t k = 0; k < w->nnodes; k++)
				if (strstr(w->nodes[k].display, CANARY) &&
				    canary_only_secret(data, size, 1))
					abort();
		}
		config_release(&cfg);
	} else {
		if (e.code != EX_CONFIG && e.code != EX_OSERR)
			abort();
		if (strstr(e.msg, CANARY) && canary_only_secret(data, size, 1))
			abort();
	}
	return 0;
}
