/* SPDX-License-Identifier: BSD-3-Clause */
/* cli: option tables to getopt, --help and one-line usage errors. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "log.h"

void
cli_init(struct cli_parser *p, const struct cli *c)
{
	const struct cli_opt *o;
	size_t n = 0, s = 0;

	memset(p, 0, sizeof(*p));
	p->c = c;
	/* ':' first: a missing value is told apart from an unknown option */
	p->shortopts[s++] = ':';
	for (o = c->opts; o->name && n < CLI_MAX_OPTS; o++, n++) {
		p->longopts[n].name = o->name;
		p->longopts[n].has_arg =
			o->arg ? required_argument : no_argument;
		p->longopts[n].val = o->val;
		if (o->val < 256) {
			p->shortopts[s++] = (char)o->val;
			if (o->arg)
				p->shortopts[s++] = ':';
		}
	}
	if (o->name)
		abort(); /* a table over CLI_MAX_OPTS: a build bug */
}

/* "-c, --config FILE" or "    --ready-fd N" */
static int
left(const struct cli_opt *o, char *buf, size_t sz)
{
	return snprintf(buf, sz, "%c%c%s--%s%s%s", o->val < 256 ? '-' : ' ',
			o->val < 256 ? o->val : ' ', o->val < 256 ? ", " : "  ",
			o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

static int
help(const struct cli *c)
{
	const struct cli_opt *o;
	char buf[128];
	int w = 0;

	for (o = c->opts; o->name; o++) {
		int n = left(o, buf, sizeof(buf));

		if (n > w)
			w = n;
	}
	printf("%s\n\n", c->usage);
	if (c->about && c->about[0])
		printf("%s\n", c->about);
	for (o = c->opts; o->name; o++) {
		const char *t = o->help, *nl;

		left(o, buf, sizeof(buf));
		printf("  %-*s  ", w, buf);
		while ((nl = strchr(t, '\n')) != NULL) {
			printf("%.*s\n  %-*s  ", (int)(nl - t), t, w, "");
			t = nl + 1;
		}
		printf("%s\n", t);
	}
	if (c->after && c->after[0])
		printf("\n%s", c->after);
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : EX_IOERR;
}

int
cli_usage(const struct cli *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return log_usage_error(c->usage, "%s", msg);
}

int
cli_next(struct cli_parser *p, int argc, char **argv, int *rc)
{
	int opt;

	opterr = 0; /* our own messages, one line each */
	opt = getopt_long(argc, argv, p->shortopts, p->longopts, NULL);
	switch (opt) {
	case -1:
		return CLI_END;
	case 'h':
		*rc = help(p->c);
		return CLI_EXIT;
	case 'V':
		printf("%s %s\n", p->c->prog, MIKKOO_VERSION);
		*rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
		return CLI_EXIT;
	case ':':
		*rc = cli_usage(p->c, "option '%s' needs a value",
				argv[optind - 1]);
		return CLI_EXIT;
	case '?':
		*rc = cli_usage(p->c, "unknown option '%s'", argv[optind - 1]);
		return CLI_EXIT;
	default:
		return opt;
	}
}

int
cli_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
cli_seconds(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
cli_fd(const char *s, int *out)
{
	long v;

	/* A number that names no open descriptor would make readiness
	 * silently never arrive: refuse it now. */
	if (cli_long(s, 0, 1 << 20, &v) < 0 || fcntl((int)v, F_GETFD) < 0)
		return -1;
	*out = (int)v;
	return 0;
}
