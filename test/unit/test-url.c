/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for url: AMQP URL parsing and password masking. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "url.h"

#define CANARY "S3cr3t-CANARY"

static void
parse_ok(void)
{
	struct mk_amqp_url u;
	struct mk_err e;

	ok(url_amqp_parse("amqp://host", &u, &e) == 0, "bare host");
	ok(!u.tls && u.port == 5672 && strcmp(u.user, "guest") == 0 &&
		   strcmp(u.password, "guest") == 0,
	   "defaults guest/guest:5672");
	is_str(u.host, "host", "host");
	is_str(u.vhost, "/", "no vhost is /");
	ok(u.heartbeat == -1 && u.timeout < 0 && u.verify == -1,
	   "unset query values");
	url_amqp_release(&u);

	ok(url_amqp_parse("amqps://u:p@h/", &u, &e) == 0, "amqps");
	ok(u.tls && u.port == 5671 && u.verify == 1, "5671, verifying");
	is_str(u.vhost, "/", "empty vhost is /");
	url_amqp_release(&u);

	ok(url_amqp_parse("amqp://us%40r:p%3Aw%2Fd@h:5673/%2fprod", &u, &e) ==
		   0,
	   "percent escapes");
	is_str(u.user, "us@r", "user decoded");
	is_str(u.password, "p:w/d", "password decoded");
	is_int(u.port, 5673, "port");
	is_str(u.vhost, "/prod", "%2f vhost");
	url_amqp_release(&u);

	ok(url_amqp_parse("amqp://u:" CANARY "@[::1]:5674/v", &u, &e) == 0,
	   "IPv6 literal");
	is_str(u.host, "::1", "IPv6 host");
	is_int(u.port, 5674, "IPv6 port");
	url_amqp_release(&u);

	ok(url_amqp_parse("amqp://h/?heartbeat=15&connection_timeout=2.5"
			  "&frame_max=8192&channel_max=10&cacertfile=/ca.pem"
			  "&certfile=/c.pem&keyfile=/k.pem&verify=verify_none"
			  "&server_name_indication=mq.example",
			  &u, &e) == 0,
	   "every query key");
	ok(u.heartbeat == 15 && u.timeout == 2.5 && u.frame_max == 8192 &&
		   u.channel_max == 10 && u.verify == 0,
	   "numeric query values");
	is_str(u.cacertfile, "/ca.pem", "cacertfile");
	is_str(u.certfile, "/c.pem", "certfile");
	is_str(u.keyfile, "/k.pem", "keyfile");
	is_str(u.sni, "mq.example", "server_name_indication");
	url_amqp_release(&u);

	ok(url_amqp_parse("amqp://h/?socket_timeout=3", &u, &e) == 0 &&
		   u.timeout == 3,
	   "socket_timeout alias");
	url_amqp_release(&u);
	ok(url_amqp_parse("amqps://h/?verify=verify_peer", &u, &e) == 0 &&
		   u.verify == 1,
	   "verify=verify_peer");
	url_amqp_release(&u);
	ok(url_amqp_parse("amqp://h/?verify=verify_none", &u, &e) == 0 &&
		   u.verify == 0,
	   "verify=verify_none");
	url_amqp_release(&u);
	ok(url_amqp_parse("amqp://u:p@ss@h/", &u, &e) == 0, "unescaped @");
	is_str(u.password, "p@ss", "password up to the last @");
	is_str(u.host, "h", "host after the last @");
	url_amqp_release(&u);
}

static void
decode(void)
{
	char *d;

	d = url_decode("a%2Fb%2fc%40", 12);
	is_str(d, "a/b/c@", "url_decode");
	free(d);
	d = url_decode("abc%2fxyz", 6);
	is_str(d, "abc/", "url_decode stops at len");
	free(d);
	ok(url_decode("a%zz", 4) == NULL, "url_decode: %%zz refused");
	ok(url_decode("a%2", 3) == NULL, "url_decode: short escape refused");
	ok(url_decode("a%00b", 5) == NULL, "url_decode: NUL refused");
}

static void
parse_bad(const char *url, const char *want, const char *name)
{
	struct mk_amqp_url u;
	struct mk_err e;

	ok(url_amqp_parse(url, &u, &e) < 0 && e.code == EX_CONFIG,
	   "%s: refused with 78", name);
	has_str(e.msg, want, name);
	ok(strstr(e.msg, CANARY) == NULL, "%s: no password in '%s'", name,
	   e.msg);
}

static void
mask(const char *in, const char *want, const char *name)
{
	char *m = url_mask(in);

	is_str(m, want, name);
	ok(m && strstr(m, CANARY) == NULL, "%s: no password", name);
	free(m);
}

static void
mask_strict(const char *in, const char *want, const char *name)
{
	char *m = url_mask_strict(in);

	is_str(m, want, name);
	ok(m && strstr(m, CANARY) == NULL, "%s: no password", name);
	free(m);
}

/* Multi-host libpq URLs and conninfo (PostgreSQL failover). */
static void
mask_multi_host(void)
{
	mask("postgresql://u:" CANARY "@h1:5432,h2:5433/db"
	     "?target_session_attrs=read-write",
	     "postgresql://u:***@h1:5432,h2:5433/db"
	     "?target_session_attrs=read-write",
	     "multi-host URL");
	mask("postgres://u:" CANARY "@[::1]:5432,[::2]:5433/db",
	     "postgres://u:***@[::1]:5432,[::2]:5433/db",
	     "multi-host URL, IPv6 literals");
	mask("postgresql://u:" CANARY "@h1,h2,h3/db?password=" CANARY
	     "&target_session_attrs=primary",
	     "postgresql://u:***@h1,h2,h3/db?password=***"
	     "&target_session_attrs=primary",
	     "hosts without ports, password in userinfo and query");
	mask("postgresql://h1:1,h2:2/db?user=u&password=" CANARY
	     "&target_session_attrs=read-write",
	     "postgresql://h1:1,h2:2/db?user=u&password=***"
	     "&target_session_attrs=read-write",
	     "multi-host URL, password only in the query");
	mask("postgresql://u:a," CANARY ":x@y@h1:1,h2:2/db",
	     "postgresql://u:***@h1:1,h2:2/db",
	     "',' ':' and '@' unescaped in the password of a host list");
	mask("postgresql://u:" CANARY "@h1:1,h2:2",
	     "postgresql://u:***@h1:1,h2:2", "multi-host URL, no dbname");
	mask("host=h1,h2 port=5432,5433 password=" CANARY
	     " target_session_attrs=read-write",
	     "host=h1,h2 port=5432,5433 password=***"
	     " target_session_attrs=read-write",
	     "multi-host conninfo");
	mask("host=/run/a,/run/b port=1,2 password='" CANARY ",x y'"
	     " dbname=d",
	     "host=/run/a,/run/b port=1,2 password=*** dbname=d",
	     "multi-host conninfo, quoted password with a comma");
	mask("hostaddr=127.0.0.1,127.0.0.2 password =" CANARY,
	     "hostaddr=127.0.0.1,127.0.0.2 password =***",
	     "multi-host hostaddr conninfo");
}

int
main(void)
{
	char *big;

	parse_ok();
	decode();
	parse_bad("http://u:" CANARY "@h/",
		  "bad URL 'http://u:***@h/': the "
		  "scheme must be amqp:// or amqps://",
		  "bad scheme");
	parse_bad("amqp://u:" CANARY "@h:0/",
		  "bad URL 'amqp://u:***@h:0/': "
		  "port out of range",
		  "port 0");
	/* a conninfo-looking AMQP URL: the '@' hides, password= too */
	parse_bad("user=u@h password=" CANARY,
		  "bad URL '***@h password=***': "
		  "the scheme must be amqp:// or amqps://",
		  "conninfo as URL");
	/* found by fuzz-url: scheme forgotten, password before the '@' */
	parse_bad("guest:" CANARY "@h:5672/",
		  "bad URL '***@h:5672/': the "
		  "scheme must be amqp:// or amqps://",
		  "no scheme");
	parse_bad("amqp://u:" CANARY "@h:65536/", "port out of range",
		  "port 65536");
	parse_bad("amqp://u:" CANARY "@h:abc/", "port out of range",
		  "port abc");
	parse_bad("amqp://u:" CANARY "%zz@h/",
		  "bad percent-escape in the "
		  "user or password",
		  "bad escape");
	parse_bad("amqp://u:" CANARY "@h/%00",
		  "bad percent-escape in the "
		  "vhost",
		  "NUL in the vhost");
	parse_bad("amqp://u:" CANARY "@h/?heartbeet=1",
		  "unknown query "
		  "parameter 'heartbeet'",
		  "unknown query key");
	/* found by fuzz-url: a '?' in the password makes a query name */
	parse_bad("amqp://h?#:" CANARY "@h::x=1",
		  "unknown query parameter "
		  "'***@h::x'",
		  "query name holding a password");
	parse_bad("amqp://u:" CANARY "@h/?heartbeat=x",
		  "bad value for query "
		  "parameter 'heartbeat'",
		  "bad heartbeat");
	parse_bad("amqp://u:" CANARY "@h/?verify=maybe",
		  "bad value for query "
		  "parameter 'verify'",
		  "bad verify");
	parse_bad("amqp://u:" CANARY "@[::1/", "unterminated IPv6 address",
		  "bad IPv6");
	big = malloc(70000);
	memset(big, 'a', 69999);
	memcpy(big, "amqp://", 7);
	big[69999] = '\0';
	parse_bad(big, "too long", "64 KiB URL");
	free(big);

	mask("amqp://u:" CANARY "@h/", "amqp://u:***@h/", "amqp URL");
	mask("amqp://u:" CANARY "@x:y@h:5672/v", "amqp://u:***@h:5672/v",
	     "unescaped @ and : in the password");
	mask("postgresql://u:pw" CANARY "@h/db?password=" CANARY
	     "&sslmode=require",
	     "postgresql://u:***@h/db?password=***&sslmode=require",
	     "postgres URL with a password in the query");
	mask("host=h password=" CANARY " user=u", "host=h password=*** user=u",
	     "libpq conninfo");
	mask("password = '" CANARY " x\\'y' user=u", "password = *** user=u",
	     "quoted conninfo password");
	mask("password='S3cr3t CANARY\\'x' user=u", "password=*** user=u",
	     "quoted conninfo password, no spaces");
	mask("amqp://h:5672/%2f", "amqp://h:5672/%2f", "no password");
	mask("postgresql://u@h/db", "postgresql://u@h/db", "user only");
	mask("dbname=x", "dbname=x", "conninfo without password");
	/* '@' before any "key=": userinfo with the scheme forgotten */
	mask("u:" CANARY "@h password=" CANARY, "***@h password=***",
	     "no scheme, '@' first");
	/* found by fuzz-config: '=' first, yet not conninfo */
	mask_strict("po+=x" CANARY "ql://u:" CANARY "@h/db", "***@h/db",
		    "strict: invalid scheme");
	mask_strict("amqp://u:" CANARY "@h/", "amqp://u:***@h/",
		    "strict: a URL as url_mask");
	mask_strict("host=h password=" CANARY, "host=h password=***",
		    "strict: no '@', pairs still masked");
	mask_multi_host();
	return tap_done();
}
