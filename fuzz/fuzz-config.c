/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer: the configuration parser.  Any input loads or fails with
 * a located EX_CONFIG message; a password in the input never shows in
 * that message.
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

	if (config_load_buffer("f.yml", (const char *)data, size, &cfg,
			       &e) == 0) {
		if (cfg.nworkers == 0)
			abort();
		config_release(&cfg);
	} else {
		if (e.code != EX_CONFIG && e.code != EX_OSERR)
			abort();
		if (strstr(e.msg, CANARY) && canary_only_secret(data, size, 1))
			abort();
	}
	return 0;
}
