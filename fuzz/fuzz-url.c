/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer: the AMQP URL parser and url_mask.  For every URL that
 * parses with a password, the masked form must not contain
 * ":password@"; errors must not contain the password either.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canary.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_amqp_url u;
	struct mk_err e;
	char *s = malloc(size + 1), *m, *needle;

	memcpy(s, data, size);
	s[size] = '\0';
	m = url_mask(s);
	if (m == NULL)
		abort();
	if (url_amqp_parse(s, &u, &e) == 0) {
		if (u.password_given && u.password[0] &&
		    strchr(s, '%') == NULL) {
			needle = malloc(strlen(u.password) + 3);
			strcpy(needle, ":");
			strcat(needle, u.password);
			strcat(needle, "@");
			/* only a password that shows once in the input is
			 * unambiguous (it may also spell part of the user) */
			if (strstr(m, needle) &&
			    strstr(strstr(s, needle) + 1, needle) == NULL)
				abort();
			free(needle);
		}
		url_amqp_release(&u);
	} else if (strstr(e.msg, CANARY) && canary_only_secret(data, size, 0)) {
		abort();
	}
	free(m);
	free(s);
	return 0;
}
