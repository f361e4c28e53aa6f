/* SPDX-License-Identifier: BSD-3-Clause */
/* endpoint: /metrics and /health from the workers' reports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "endpoint.h"
#include "text.h"

/* Healthy?  If not, why (into buf). */
static bool
healthy(const struct endpoint_worker *w, double max_lag, size_t max_retained,
	char *buf, size_t sz)
{
	if (!w->running) {
		snprintf(buf, sz, "worker restarting (%s)",
			 w->exited ? w->exited : "not started yet");
		return false;
	}
	if (!w->have) {
		snprintf(buf, sz, "worker starting: no report yet");
		return false;
	}
	if (w->report_age > ENDPOINT_STALE) {
		snprintf(buf, sz, "no report from the worker for %.0f s",
			 w->report_age);
		return false;
	}
	if (w->rep.state != REPORT_RELAYING) {
		char safe[REPORT_WHY * 4];

		text_escape(safe, sizeof(safe), w->rep.why,
			    strnlen(w->rep.why, sizeof(w->rep.why)),
			    sizeof(w->rep.why), 0);
		snprintf(buf, sz, "%s: %s",
			 report_state_name((enum report_state)w->rep.state),
			 safe);
		buf[text_cut(buf, strlen(buf), sz - 4)] = '\0';
		return false;
	}
	if (max_lag > 0 && w->rep.lag > max_lag) {
		snprintf(buf, sz,
			 "consumer lag %.1f s is over health_max_lag "
			 "%g s",
			 w->rep.lag, max_lag);
		return false;
	}
	if (max_retained > 0 && w->rep.retained > (int64_t)max_retained) {
		snprintf(buf, sz,
			 "replication slot retains %lld bytes of WAL, over "
			 "health_max_retained_wal %zu",
			 (long long)w->rep.retained, max_retained);
		return false;
	}
	return true;
}

static void
health(const struct endpoint_worker *w, size_t n, double max_lag,
       size_t max_retained, struct httpd_page *page)
{
	json_t *root = json_object(), *arr = json_array();
	bool all = true;
	size_t i;

	for (i = 0; i < n; i++) {
		char why[512];
		bool ok =
			healthy(&w[i], max_lag, max_retained, why, sizeof(why));
		json_t *o = json_pack(
			"{s:o,s:b,s:s}", "queue",
			text_json(w[i].queue, strlen(w[i].queue)), "ok", ok,
			"state",
			!w[i].running ? "restarting"
			: !w[i].have
				? "starting"
				: report_state_name(
					  (enum report_state)w[i].rep.state));

		if (o == NULL) {
			all = false; /* out of memory: not a healthy answer */
			continue;
		}

		if (w[i].have && w[i].rep.lag >= 0)
			json_object_set_new(o, "lag_seconds",
					    json_real(w[i].rep.lag));
		if (w[i].have && w[i].rep.retained >= 0)
			json_object_set_new(o, "retained_wal_bytes",
					    json_integer(w[i].rep.retained));
		if (w[i].have && w[i].rep.pending >= 0)
			json_object_set_new(o, "pending_events",
					    json_integer(w[i].rep.pending));
		/* the why carries server and broker words: text.h's rule */
		if (!ok)
			json_object_set_new(o, "why",
					    text_json(why, strlen(why)));
		all = all && ok;
		json_array_append_new(arr, o);
	}
	json_object_set_new(root, "status",
			    json_string(all ? "ok" : "unavailable"));
	json_object_set_new(root, "workers", arr);
	page->body = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	page->status = all ? 200 : 503;
	page->type = "application/json";
	if (page->body == NULL) {
		page->status = 500;
		return;
	}
	page->len = strlen(page->body);
	/* one line, like every JSON answer of the tools */
	page->body = realloc(page->body, page->len + 2);
	if (page->body)
		memcpy(page->body + page->len++, "\n", 2);
}

static void
metrics(const struct endpoint_worker *w, size_t n, struct httpd_page *page)
{
	struct prom_queue *q = calloc(n ? n : 1, sizeof(*q));
	size_t i;

	page->type = "text/plain; version=0.0.4; charset=utf-8";
	page->status = 500;
	if (q == NULL)
		return;
	for (i = 0; i < n; i++) {
		q[i].queue = w[i].queue;
		q[i].c = w[i].base;
		q[i].pending = -1;
		q[i].lag = -1;
		q[i].tick_age = -1;
		q[i].retained = -1;
		if (w[i].running && w[i].have) {
			prom_add(&q[i].c, &w[i].rep.c);
			q[i].up = w[i].rep.state == REPORT_RELAYING;
			q[i].pending = w[i].rep.pending;
			q[i].lag = w[i].rep.lag;
			q[i].tick_age = w[i].rep.tick_age;
			q[i].retained = w[i].rep.retained;
		}
	}
	if (prom_render(q, n, &page->body, &page->len) == 0)
		page->status = 200;
	free(q);
}

void
endpoint_page(const struct endpoint_worker *w, size_t n, double health_max_lag,
	      size_t health_max_retained, const char *path,
	      struct httpd_page *page)
{
	if (strcmp(path, "/metrics") == 0) {
		metrics(w, n, page);
	} else if (strcmp(path, "/health") == 0) {
		health(w, n, health_max_lag, health_max_retained, page);
	} else {
		page->status = 404;
		page->body = strdup("not found: try /metrics or /health\n");
		page->len = page->body ? strlen(page->body) : 0;
		page->type = "text/plain";
	}
}
