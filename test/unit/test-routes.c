/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for routes: the config key, and routing by media type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_diff.h"
#include "event.h"
#include "tap.h"

#define HEAD                                    \
	"Application:\n"                        \
	"  workers:\n"                          \
	"    q:\n"                              \
	"      postgres_url: postgresql:///x\n" \
	"      rabbitmq_url: amqp://u:p@localhost/\n"

static int
load(const char *text, struct mk_config *cfg, struct mk_err *e)
{
	return config_load_buffer("t.yml", text, strlen(text), cfg, e);
}

static void
bad_config(const char *text, const char *want, const char *name)
{
	struct mk_config cfg;
	struct mk_err e = { 0 };

	ok(load(text, &cfg, &e) < 0, "%s: refused", name);
	is_int(e.code, EX_CONFIG, "a config error");
	is_str(e.msg, want, name);
}

static void
test_config(void)
{
	struct mk_config cfg, other;
	struct config_diff d;
	struct mk_err e;
	const struct mk_routes *r;

	ok(load(HEAD, &cfg, &e) == 0, "no routes");
	ok(cfg.workers[0].routes.v == NULL &&
		   cfg.workers[0].routes.fallback == NULL,
	   "none by default: nothing changes");
	config_release(&cfg);

	ok(load(HEAD "      routes:\n"
		     "        application/vnd.acme.order+json: orders\n"
		     "        text/plain: ''\n"
		     "        default: events\n",
		&cfg, &e) == 0,
	   "routes");
	r = &cfg.workers[0].routes;
	is_int(r->n, 2, "two media types");
	is_str(r->v[0].media_type, "application/vnd.acme.order+json",
	       "in file order");
	is_str(r->v[0].exchange, "orders", "its exchange");
	is_str(r->v[1].exchange, "", "'' is the default exchange");
	is_str(r->fallback, "events", "default");

	ok(load(HEAD "      routes:\n"
		     "        application/vnd.acme.order+json: orders\n"
		     "        default: other\n",
		&other, &e) == 0,
	   "changed default");
	config_diff(&cfg, &other, "q", &d);
	ok(d.live && !d.restart, "a route change applies live");
	is_str(d.live_keys, "routes", "named in the reload line");
	config_release(&other);
	config_release(&cfg);

	ok(load(HEAD
		"      exchanges: [orders, events]\n"
		"      routes: {application/json: orders, default: events}\n",
		&cfg, &e) == 0,
	   "routes within the exchanges list");
	config_release(&cfg);

	bad_config(HEAD "      routes:\n        application/json;v=1: x\n",
		   "t.yml:7:9: key 'Application/workers/q/routes': "
		   "'application/json;v=1' is not a media type (type/subtype, "
		   "no parameters) or 'default'",
		   "parameters refused");
	bad_config(HEAD "      routes:\n        json: x\n",
		   "t.yml:7:9: key 'Application/workers/q/routes': 'json' is "
		   "not a media type (type/subtype, no parameters) or "
		   "'default'",
		   "a bare word refused");
	bad_config(HEAD "      routes:\n        text/plain: a\n"
			"        Text/Plain: b\n",
		   "t.yml:8:9: key 'Application/workers/q/routes': route "
		   "'Text/Plain' is repeated (first on line 7)",
		   "media types are case-insensitive");
	bad_config(HEAD "      routes:\n        default:\n",
		   "t.yml:7:17: key 'Application/workers/q/routes': route "
		   "'default' must name an exchange (up to 255 bytes; \"\" is "
		   "the default exchange)",
		   "an empty route");
	bad_config(HEAD "      routes: {}\n",
		   "t.yml:6:15: key 'Application/workers/q/routes' must map "
		   "media types (and 'default') to exchange names",
		   "no routes at all");
	bad_config(HEAD "      routes: [orders]\n",
		   "t.yml:6:15: key 'Application/workers/q/routes' must map "
		   "media types (and 'default') to exchange names",
		   "a list");
	bad_config(HEAD
		   "      exchanges: [orders]\n"
		   "      routes: {application/json: orders, default: x}\n",
		   "t.yml:3:5: worker 'q': routes send events to exchange 'x', "
		   "which is not in its exchanges list",
		   "a route outside the exchanges list");
	bad_config(HEAD "      route: {default: x}\n",
		   "t.yml:6:7: key 'Application/workers/q/route' is unknown "
		   "(did you mean 'routes'?)",
		   "a misspelt key");
}

static struct mk_event
ev(const char *x1, const char *x2, const char *x3)
{
	struct mk_event e;

	memset(&e, 0, sizeof(e));
	e.ev_id = 7;
	e.ev_type = "order.paid";
	e.ev_type_len = strlen(e.ev_type);
	e.ev_data = "{}";
	e.ev_data_len = 2;
	e.extra[0] = x1;
	e.extra_len[0] = x1 ? strlen(x1) : 0;
	e.extra[1] = x2;
	e.extra_len[1] = x2 ? strlen(x2) : 0;
	e.extra[2] = x3;
	e.extra_len[2] = x3 ? strlen(x3) : 0;
	return e;
}

static struct mk_route routes[] = {
	{ "application/vnd.acme.order+json", "orders" },
	{ "text/plain", "" },
};

static struct mk_map_ctx ctx;

/* Map and give the exchange, or the error. */
static const char *
routed(const struct mk_event *e)
{
	static char buf[1024];
	struct mk_message m;
	struct mk_err err;

	message_init(&m);
	if (event_map(e, &ctx, &m, &err) < 0)
		snprintf(buf, sizeof(buf), "error: %s", err.msg);
	else
		snprintf(buf, sizeof(buf), "'%.*s'", (int)m.exchange.len,
			 (const char *)m.exchange.bytes);
	message_release(&m);
	return buf;
}

static void
test_map(void)
{
	struct mk_event e;
	char *list[] = { "orders" };

	memset(&ctx, 0, sizeof(ctx));
	ctx.app_id = "mikkoo";
	ctx.origin = "h";
	ctx.user = "u";
	ctx.max_depth = 32;
	ctx.max_headers = 1024;
	ctx.max_event_bytes = 1 << 20;
	strcpy(ctx.correlation_id, "0ad6b212-4c84-4eb0-8782-9a44bdfe949f");

	/* without routes: as before */
	e = ev(NULL, "application/vnd.acme.order+json", NULL);
	is_str(routed(&e), "error: ev_extra1 (exchange) is NULL",
	       "no routes: a NULL exchange is bad data");
	e = ev("", "application/vnd.acme.order+json", NULL);
	is_str(routed(&e), "''", "no routes: '' is the default exchange");

	ctx.routes = routes;
	ctx.nroutes = 2;
	e = ev(NULL, "application/vnd.acme.order+json", NULL);
	is_str(routed(&e), "'orders'", "NULL exchange: by media type");
	e = ev("", "Application/VND.acme.order+JSON ; charset=utf-8", NULL);
	is_str(routed(&e), "'orders'",
	       "'' exchange: case and parameters ignored");
	e = ev("billing", "application/vnd.acme.order+json", NULL);
	is_str(routed(&e), "'billing'", "an exchange named is never routed");
	e = ev(NULL, "text/plain", NULL);
	is_str(routed(&e), "''", "a route to the default exchange");
	e = ev(NULL, "application/json",
	       "{\"content_type\":"
	       "\"application/vnd.acme.order+json\"}");
	is_str(routed(&e), "'orders'", "ev_extra3's content_type counts");
	e = ev(NULL, "application/json", NULL);
	is_str(routed(&e),
	       "error: ev_extra1 (exchange) is NULL and no route "
	       "matches content type \"application/json\"",
	       "no match, no default: bad data, saying why");
	e = ev("", NULL, NULL);
	is_str(routed(&e),
	       "error: ev_extra1 (exchange) is empty and the "
	       "event has no content type to route by",
	       "no content type: bad data");
	ctx.route_default = "events";
	e = ev(NULL, "application/json", NULL);
	is_str(routed(&e), "'events'", "no match: the default route");
	e = ev(NULL, NULL, NULL);
	is_str(routed(&e), "'events'", "no content type: the default route");
	is_str(event_route(&ctx, "text/plain;x=1", 14), "",
	       "event_route: the route's exchange");
	is_str(event_route(&ctx, "text/plainx", 11), "events",
	       "event_route: a longer type is another type");
	ctx.exchanges = list;
	ctx.nexchanges = 1;
	e = ev(NULL, "application/json", NULL);
	is_str(routed(&e),
	       "error: routed exchange \"events\" is not in the "
	       "worker's exchanges list",
	       "the allowlist still applies");
	ctx.route_default = NULL;
	ctx.routes = NULL;
	ctx.nroutes = 0;
	ctx.exchanges = NULL;
	ctx.nexchanges = 0;
	ctx.route_default = "events";
	e = ev("", "text/plain", NULL);
	is_str(routed(&e), "'events'", "only a default route: '' is routed");
}

int
main(void)
{
	test_config();
	test_map();
	return tap_done();
}
