/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for config: the YAML file, its defaults and its errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_diff.h"
#include "tap.h"

static const char seed[] =
	"Application:\n"
	"\n"
	"  poll_interval: 10\n"
	"  sentry_dsn: [YOUR SENTRY DSN]\n"
	"\n"
	"  statsd:\n"
	"    enabled: true\n"
	"    host: localhost\n"
	"    port: 8125\n"
	"\n"
	"  workers:\n"
	"    test:\n"
	"      confirm: False\n"
	"      consumer_name: my_consumer\n"
	"      max_failures: 5\n"
	"      postgres_url: postgresql://localhost:5432/postgres\n"
	"      rabbitmq_url: amqp://localhost:5672/%2f\n"
	"      retry_delay: 5\n"
	"      unregister: False\n"
	"      wait_duration: 5\n"
	"\n"
	"Daemon:\n"
	"  user: mikkoo\n"
	"  pidfile: /var/run/mikkoo\n"
	"\n"
	"Logging:\n"
	"  version: 1\n"
	"  formatters:\n"
	"    verbose:\n"
	"      format: '%(levelname) -10s %(asctime)s'\n"
	"  root:\n"
	"    handlers: [console]\n";

static int
load(const char *text, struct mk_config *cfg, struct mk_err *e)
{
	return config_load_buffer("t.yml", text, strlen(text), cfg, e);
}

/* The error message for text, or "(loaded)". */
static const char *
error_of(const char *text)
{
	static char buf[1100];
	struct mk_config cfg;
	struct mk_err e;

	if (load(text, &cfg, &e) == 0) {
		config_release(&cfg);
		return "(loaded)";
	}
	snprintf(buf, sizeof(buf), "%s%s",
		 e.code == EX_CONFIG ? "" : "(wrong code) ", e.msg);
	return buf;
}

#define WORKER(body)                         \
	"Application:\n  workers:\n    q:\n" \
	"      postgres_url: postgresql://u:S3cr3t-CANARY@h/db\n" body

static void
seed_example(void)
{
	struct mk_config cfg;
	struct mk_err e;
	const struct mk_worker_config *w;

	ok(load(seed, &cfg, &e) == 0, "the seed README example loads");
	is_int(cfg.poll_interval, 10, "poll_interval");
	ok(cfg.statsd.enabled && cfg.statsd.port == 8125 &&
		   strcmp(cfg.statsd.host, "localhost") == 0,
	   "statsd");
	is_str(cfg.daemon_user, "mikkoo", "Daemon/user kept");
	is_str(cfg.daemon_pidfile, "/var/run/mikkoo", "Daemon/pidfile");
	is_int(cfg.nworkers, 1, "one worker");
	w = config_worker(&cfg, "test");
	ok(w != NULL, "worker 'test'");
	if (w == NULL)
		return;
	is_str(w->consumer_name, "my_consumer", "consumer_name");
	is_int(w->max_failures, 5, "max_failures");
	is_int(w->retry_delay, 5, "retry_delay");
	ok(w->wait_duration == 5.0, "wait_duration");
	ok(!w->unregister && w->confirm == false, "booleans in Python case");
	is_str(w->amqp.host, "localhost", "amqp host");
	is_str(w->amqp.vhost, "/", "%2f vhost");
	is_str(w->amqp_display, "amqp://localhost:5672/%2f", "display");
	ok(w->persistent && w->window == 1000 && w->batch_chunk == 1000 &&
		   w->max_event_bytes == 8 * 1024 * 1024 &&
		   w->amqp.heartbeat == 30 && w->amqp.timeout == 10 &&
		   w->amqp.frame_max == 131072,
	   "our defaults");
	is_int(cfg.nnotices, 3, "three notices");
	has_str(cfg.notices[0].text, "t.yml:4: 'sentry_dsn' is ignored",
		"sentry notice");
	has_str(cfg.notices[1].text,
		"t.yml:13: worker 'test': 'confirm: "
		"false' is ignored",
		"confirm notice");
	has_str(cfg.notices[2].text, "t.yml:26: 'Logging' is ignored",
		"Logging");
	ok(cfg.notices[0].queue == NULL && cfg.notices[2].queue == NULL,
	   "global notices name no worker");
	is_str(cfg.notices[1].queue, "test", "a worker's notice names it");
	ok(config_notice_for(&cfg.notices[1], "test") &&
		   !config_notice_for(&cfg.notices[1], "tes") &&
		   !config_notice_for(&cfg.notices[1], "test_v2") &&
		   config_notice_for(&cfg.notices[0], "other"),
	   "a worker sees its own notices and the global ones only");
	ok(config_worker(&cfg, "nope") == NULL, "unknown worker is NULL");
	config_release(&cfg);
}

static void
map_form(void)
{
	struct mk_config cfg, cfg2;
	struct mk_err e;
	struct config_diff d;
	const struct mk_worker_config *w;
	static const char text[] = WORKER("      rabbitmq:\n"
					  "        host: mq.example.com\n"
					  "        vhost: /prod\n"
					  "        username: app\n"
					  "        password: S3cr3t-CANARY\n"
					  "        heartbeat_interval: 15\n"
					  "        socket_timeout: 2.5\n"
					  "        ssl_options:\n"
					  "          ca_certs: /ca.pem\n"
					  "          ciphers: HIGH\n"
					  "      retry_interval: 7\n"
					  "      unregister: yes\n"
					  "      persistent: off\n");

	ok(load(text, &cfg, &e) == 0, "3.x rabbitmq mapping loads");
	w = &cfg.workers[0];
	ok(w->amqp.tls && w->amqp.port == 5671 && w->amqp.verify == 1,
	   "ssl_options: amqps on 5671, verifying");
	is_str(w->amqp.cacertfile, "/ca.pem", "ca_certs");
	is_str(w->amqp_display, "amqps://app:***@mq.example.com:5671/%2fprod",
	       "masked display of the mapping");
	is_str(w->postgres_display, "postgresql://u:***@h/db",
	       "masked postgres display");
	is_int(w->amqp.heartbeat, 15, "heartbeat_interval");
	ok(w->amqp.timeout == 2.5, "socket_timeout");
	is_int(w->retry_delay, 7, "retry_interval alias");
	ok(w->unregister && !w->persistent, "yes/off spellings");
	has_str(cfg.notices[0].text,
		"'Application/workers/q/rabbitmq/"
		"ssl_options/ciphers' is ignored",
		"unsupported TLS option notice");
	has_str(cfg.notices[1].text, "'unregister: true' drops", "unregister");
	ok(load(text, &cfg2, &e) == 0, "loads twice");
	config_diff(&cfg, &cfg2, "q", &d);
	ok(!d.restart && !d.live && !d.notice, "no difference with itself");
	cfg2.workers[0].max_failures++;
	config_diff(&cfg, &cfg2, "q", &d);
	ok(!d.restart && d.live, "a changed setting is a difference");
	is_str(d.live_keys, "max_failures", "named");
	config_release(&cfg2);
	config_release(&cfg);
}

static const struct config_diff *diff_of(const char *a, const char *b);

/* Several RabbitMQ nodes: a list of URLs, or the map's list of hosts. */
static void
node_lists(void)
{
	struct mk_config cfg;
	struct mk_err e;
	const struct mk_worker_config *w;
	const struct config_diff *d;

	ok(load(WORKER("      rabbitmq_url: amqp://h1/\n"), &cfg, &e) == 0,
	   "one URL");
	w = &cfg.workers[0];
	ok(w->nnodes == 1 && w->more_nodes.n == 0, "is one node");
	is_str(w->nodes[0].url.host, "h1", "node 1 is the URL's");
	is_str(w->nodes[0].display, "amqp://h1/", "its display");
	config_release(&cfg);

	ok(load(WORKER("      rabbitmq_url:\n"
		       "        - amqp://u:S3cr3t-CANARY@h1:5672/%2f\n"
		       "        - amqps://v:S3cr3t-CANARY@h2/x?heartbeat=5\n"
		       "        - amqp://h3:5674\n"),
		&cfg, &e) == 0,
	   "a list of URLs loads");
	w = &cfg.workers[0];
	is_int(w->nnodes, 3, "three nodes");
	is_str(w->amqp.host, "h1", "amqp is the first");
	is_str(w->nodes[0].url.host, "h1", "node 1");
	ok(w->nodes[0].url.password != w->amqp.password &&
		   strcmp(w->nodes[0].url.password, "S3cr3t-CANARY") == 0,
	   "node 1 has its own copy of the first URL's settings");
	ok(w->nodes[1].url.tls && w->nodes[1].url.port == 5671 &&
		   w->nodes[1].url.heartbeat == 5 &&
		   w->nodes[1].url.timeout == 10 &&
		   w->nodes[1].url.frame_max == 131072,
	   "node 2: its own query, the "
	   "table's defaults for the rest");
	is_str(w->nodes[1].url.user, "v", "node 2's user");
	is_str(w->nodes[1].url.vhost, "x", "node 2's vhost");
	ok(w->nodes[2].url.port == 5674 && w->nodes[2].url.heartbeat == 30,
	   "node 3");
	is_str(w->nodes[0].display, "amqp://u:***@h1:5672/%2f", "display 1");
	is_str(w->nodes[1].display, "amqps://v:***@h2/x?heartbeat=5",
	       "display 2, masked");
	is_str(w->nodes[2].display, "amqp://h3:5674", "display 3");
	config_release(&cfg);

	ok(load(WORKER("      rabbitmq:\n"
		       "        host: [a.example, b.example, c.example]\n"
		       "        port: 5673\n"
		       "        username: app\n"
		       "        password: S3cr3t-CANARY\n"
		       "        ssl_options: {ca_certs: /ca.pem}\n"),
		&cfg, &e) == 0,
	   "the map with a list of hosts loads");
	w = &cfg.workers[0];
	is_int(w->nnodes, 3, "three nodes");
	is_str(w->amqp.host, "a.example", "amqp is the first host");
	is_str(w->nodes[2].url.host, "c.example", "node 3's host");
	ok(w->nodes[2].url.tls && w->nodes[2].url.port == 5673 &&
		   strcmp(w->nodes[2].url.user, "app") == 0 &&
		   strcmp(w->nodes[2].url.password, "S3cr3t-CANARY") == 0 &&
		   strcmp(w->nodes[2].url.cacertfile, "/ca.pem") == 0,
	   "the other hosts share port, credentials and TLS");
	is_str(w->nodes[1].display, "amqps://app:***@b.example:5673/%2f",
	       "display of node 2");
	config_release(&cfg);

	ok(load(WORKER("      rabbitmq: {host: [solo]}\n"), &cfg, &e) == 0 &&
		   cfg.workers[0].nnodes == 1,
	   "a list of one host");
	config_release(&cfg);

	is_str(error_of(WORKER("      rabbitmq_url: []\n")),
	       "t.yml:5:21: key 'Application/workers/q/rabbitmq_url' must list "
	       "at least one URL",
	       "an empty list");
	is_str(error_of(WORKER("      rabbitmq_url:\n        - amqp://h/\n"
			       "        - amqp://u:S3cr3t-CANARY@h:99999/\n")),
	       "t.yml:7:11: key 'Application/workers/q/rabbitmq_url', item 2: "
	       "bad URL 'amqp://u:***@h:99999/': port out of range",
	       "a bad URL names its item, masked");
	is_str(error_of(WORKER("      rabbitmq_url: [amqp://h/, [x]]\n")),
	       "t.yml:5:33: key 'Application/workers/q/rabbitmq_url' must be "
	       "a string, not a sequence",
	       "an item that is not a string");
	is_str(error_of(WORKER("      rabbitmq: {host: [a, ~]}\n")),
	       "t.yml:5:28: key 'Application/workers/q/rabbitmq/host' must be a "
	       "string, not empty",
	       "an empty host");
	is_str(error_of(WORKER("      rabbitmq: {host: []}\n")),
	       "t.yml:5:24: key 'Application/workers/q/rabbitmq/host' must "
	       "list at least one host",
	       "no host");
	is_str(error_of(WORKER("      rabbitmq: {host: [a,b,c,d,e,f,g,h,i,j,"
			       "k,l,m,n,o,p,q]}\n")),
	       "t.yml:5:24: key 'Application/workers/q/rabbitmq/host' lists 17 "
	       "nodes: at most 16",
	       "too many");

	d = diff_of(WORKER("      rabbitmq_url: [amqp://a/, amqp://b/]\n"),
		    WORKER("      rabbitmq_url: [amqp://a/, amqp://c/]\n"));
	ok(d->restart && strcmp(d->restart_keys, "rabbitmq_url") == 0,
	   "another second node reconnects");
	d = diff_of(WORKER("      rabbitmq_url: [amqp://a/, amqp://b/]\n"),
		    WORKER("      rabbitmq_url: [amqp://a/, amqp://b/]\n"));
	ok(!d->restart && !d->live, "the same list: no change");
	d = diff_of(WORKER("      rabbitmq: {host: [a, b]}\n"),
		    WORKER("      rabbitmq: {host: [a]}\n"));
	is_str(d->restart_keys, "rabbitmq/host", "a host less reconnects");
}

/* The key table: the rule a new row must follow, and reload classes. */
static void
table(void)
{
	struct mk_err e;

	e.msg[0] = '\0';
	ok(config_check_table(&e) == 0, "every key says how a reload treats "
					"it, and its default is valid");
	if (e.msg[0])
		diag("%s", e.msg);
}

#define RELOADED(a, b)                                       \
	diff_of(WORKER("      rabbitmq_url: amqp://h/\n" a), \
		WORKER("      rabbitmq_url: amqp://h/\n" b))

static struct config_diff diff;

/* The reload verdict for a worker going from a to b. */
static const struct config_diff *
diff_of(const char *a, const char *b)
{
	struct mk_config x, y;
	struct mk_err e;

	memset(&diff, 0, sizeof(diff));
	if (load(a, &x, &e) < 0) {
		diag("%s", e.msg);
		return &diff;
	}
	if (load(b, &y, &e) < 0) {
		diag("%s", e.msg);
		config_release(&x);
		return &diff;
	}
	config_diff(&x, &y, "q", &diff);
	config_release(&x);
	config_release(&y);
	return &diff;
}

static void
reload_classes(void)
{
	const struct config_diff *d;

	d = RELOADED("", "      window: 10\n      persistent: false\n");
	ok(d->live && !d->restart, "window and persistent apply live");
	is_str(d->live_keys, "persistent, window", "both named once");
	d = RELOADED("      retry_delay: 5\n", "      retry_interval: 5\n");
	ok(!d->live && !d->restart, "an alias with the same value: no change");
	d = RELOADED("", "      retry_interval: 6\n");
	is_str(d->live_keys, "retry_delay",
	       "an alias is named by its field's "
	       "first key");
	d = RELOADED("", "      consumer_name: other\n");
	ok(d->restart, "consumer_name restarts the worker");
	is_str(d->restart_keys, "consumer_name", "named");
	d = diff_of(WORKER("      rabbitmq_url: amqp://u:S3cr3t-A@h/\n"),
		    WORKER("      rabbitmq_url: amqp://u:S3cr3t-B@h/\n"));
	ok(d->restart && strcmp(d->restart_keys, "rabbitmq_url") == 0,
	   "a new password in the URL reconnects");
	d = diff_of(WORKER("      rabbitmq: {host: a}\n"),
		    WORKER("      rabbitmq: {host: a, port: 5673}\n"));
	is_str(d->restart_keys, "rabbitmq/port", "a map key is named by path");
	d = diff_of(WORKER("      rabbitmq: {host: a}\n"),
		    WORKER("      rabbitmq: {host: a, ssl_options: {}}\n"));
	ok(d->restart, "turning TLS on reconnects");
	d = diff_of(WORKER("      rabbitmq_url: amqp://h/\n"),
		    "Application:\n  poll_interval: 5\n  statsd: {port: 1}\n"
		    "  workers:\n    q:\n"
		    "      postgres_url: postgresql://u:S3cr3t-CANARY@h/db\n"
		    "      rabbitmq_url: amqp://h/\n"
		    "Daemon: {user: nobody}\n");
	ok(d->live && !d->restart && d->notice, "Application keys are live, "
						"Daemon's need a new start");
	is_str(d->live_keys,
	       "Application/poll_interval, "
	       "Application/statsd/port",
	       "global keys named by path");
	is_str(d->notice_keys, "Daemon/user", "Daemon/user");
}

static void
errors(void)
{
	char *big;
	size_t i;
	const char *m;

	is_str(error_of(""), "t.yml: the configuration is empty", "empty");
	is_str(error_of("- a\n"),
	       "t.yml:1:1: the top level must be a mapping "
	       "with an 'Application' section",
	       "not a mapping");
	is_str(error_of("Daemon: {user: x}\n"),
	       "t.yml: no workers: add "
	       "queues under 'Application/workers'",
	       "no workers");
	has_str(error_of("Application:\n  workers: [\n"),
		"t.yml:3:1: YAML "
		"syntax error: ",
		"syntax error located");
	has_str(error_of("Application:\n\tworkers: {}\n"), "YAML syntax error",
		"tab indentation");
	is_str(error_of("Application:\n  workers: {}\n"),
	       "t.yml:2:12: key "
	       "'Application/workers' must name at least one queue",
	       "empty workers");
	is_str(error_of("Applicaton: {}\n"),
	       "t.yml:1:1: key 'Applicaton' is "
	       "unknown (did you mean 'Application'?)",
	       "top-level typo");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      max_failurs: 3\n")),
	       "t.yml:6:7: key 'Application/workers/q/max_failurs' is unknown "
	       "(did you mean 'max_failures'?)",
	       "worker typo suggestion");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      frobnicate: 3\n")),
	       "t.yml:6:7: key 'Application/workers/q/frobnicate' is unknown",
	       "no suggestion when nothing is close");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      max_failures: \"3\"\n")),
	       "t.yml:6:21: key 'Application/workers/q/max_failures' must be "
	       "an integer, not the string \"3\"",
	       "quoted number");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      window: 0\n")),
	       "t.yml:6:15: key 'Application/workers/q/window' must be from 1 "
	       "to 65535, not 0",
	       "range");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      max_failures: -1\n")),
	       "t.yml:6:21: key 'Application/workers/q/max_failures' must be "
	       "from 0 to 1000000, not -1",
	       "negative");
	has_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
				"      max_failures: 99999999999999999999\n")),
		"must be an integer from 0 to 1000000", "huge number");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      persistent: maybe\n")),
	       "t.yml:6:19: key 'Application/workers/q/persistent' must be "
	       "true or false, not 'maybe'",
	       "bad boolean");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      wait_duration: [1]\n")),
	       "t.yml:6:22: key 'Application/workers/q/wait_duration' must be "
	       "a number, not a sequence",
	       "sequence for a number");
	is_str(error_of("Application:\n  workers:\n    q:\n"
			"      rabbitmq_url: amqp://h/\n"),
	       "t.yml:3:5: worker 'q': postgres_url is required",
	       "postgres_url required");
	is_str(error_of(WORKER("")),
	       "t.yml:3:5: worker 'q': rabbitmq_url (or "
	       "a rabbitmq mapping) is required",
	       "rabbitmq required");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      rabbitmq: {host: h}\n")),
	       "t.yml:6:7: key 'Application/workers/q/rabbitmq' says again "
	       "what line 5 said: give only one",
	       "both rabbitmq forms");
	is_str(error_of(WORKER("      postgresql_url: x\n"
			       "      rabbitmq_url: amqp://h/\n")),
	       "t.yml:5:7: key 'Application/workers/q/postgresql_url' says "
	       "again what line 4 said: give only one",
	       "postgres aliases");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      rabbitmq_url: amqp://h/\n")),
	       "t.yml:6:7: key 'Application/workers/q/rabbitmq_url' is "
	       "repeated (first on line 5)",
	       "repeated key");
	is_str(error_of("Application:\n  workers:\n    'a b': {}\n"),
	       "t.yml:3:5: key under 'Application/workers' must be a queue "
	       "name (1 to 63 of A-Z a-z 0-9 _ . : -)",
	       "bad queue name");
	is_str(error_of("Application:\n  workers:\n    q: 5\n"),
	       "t.yml:3:8: worker 'q' must be a mapping of settings",
	       "worker not a mapping");
	is_str(error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			       "      consumer_name: \"x'; drop\"\n")),
	       "t.yml:6:22: key 'Application/workers/q/consumer_name': 'x'; "
	       "drop' is not a valid name (1 to 63 of A-Z a-z 0-9 _ . : -)",
	       "bad consumer name");
	m = error_of(
		WORKER("      rabbitmq_url: amqp://u:S3cr3t-CANARY@h:0/\n"));
	is_str(m,
	       "t.yml:5:21: key 'Application/workers/q/rabbitmq_url': bad "
	       "URL 'amqp://u:***@h:0/': port out of range",
	       "bad URL");
	ok(strstr(m, "CANARY") == NULL, "no password in the URL error");
	m = error_of(WORKER("      rabbitmq: {password: S3cr3t-CANARY, "
			    "port: 0}\n"));
	ok(strstr(m, "CANARY") == NULL && strstr(m, "port") != NULL,
	   "no password in a rabbitmq mapping error");
	/* a URL with a password written as a key, or as a name */
	m = error_of("Application: {amqp://u:S3cr3t-CANARY@h: 1}\n");
	is_str(m, "t.yml:1:15: key 'Application/amqp://u:***@h' is unknown",
	       "a URL as a key is masked");
	m = error_of(WORKER("      rabbitmq_url: amqp://h/\n"
			    "      consumer_name: amqp://u:S3cr3t-CANARY@h\n"));
	ok(strstr(m, "CANARY") == NULL && strstr(m, "not a valid name"),
	   "a URL as a name is masked");
	m = error_of(WORKER("      rabbitmq: {password_file: "
			    "x://u:S3cr3t-CANARY@h}\n"));
	ok(strstr(m, "CANARY") == NULL && strstr(m, "cannot open"),
	   "a URL as a password file name is masked");
	big = malloc(2 * 1024 * 1024);
	for (i = 0; i < 2 * 1024 * 1024 - 1; i++)
		big[i] = i % 80 == 79 ? '\n' : '#';
	big[i] = '\0';
	is_str(error_of(big),
	       "t.yml: configuration is 2097151 bytes, over "
	       "the limit of 1 MiB",
	       "size cap");
	free(big);
}

static void
file_errors(void)
{
	struct mk_config cfg;
	struct mk_err e;

	ok(config_load("/nonexistent/m.yml", &cfg, &e) < 0 &&
		   e.code == EX_NOINPUT,
	   "missing file is EX_NOINPUT");
	is_str(e.msg,
	       "cannot open '/nonexistent/m.yml': No such file or "
	       "directory",
	       "missing file message");
}

int
main(void)
{
	seed_example();
	map_form();
	errors();
	file_errors();
	table();
	reload_classes();
	node_lists();
	return tap_done();
}
