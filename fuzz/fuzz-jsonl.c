/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer: the JSON-lines reader with a small line cap.  Every line
 * yields a record or a positioned error; reading never stops early and
 * never splits a line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonl_reader r;
	struct mk_err e;
	json_t *v;
	FILE *f;
	int rc, guard = 0;

	if (size == 0)
		return 0;
	f = fmemopen((void *)data, size, "r");
	if (f == NULL)
		return 0;
	jsonl_reader_init(&r, f, "<fuzz>", 64);
	while ((rc = jsonl_read(&r, &v, &e)) != 0) {
		if (rc > 0)
			json_decref(v);
		else if (e.code != EX_DATAERR)
			abort();
		if (++guard > (int)size + 1)
			abort(); /* more records than bytes: a loop */
	}
	jsonl_reader_release(&r);
	fclose(f);
	return 0;
}
