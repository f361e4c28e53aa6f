/* SPDX-License-Identifier: BSD-3-Clause */
/* supervise: fork, watch and restart one relay process per queue. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config_diff.h"
#include "log.h"
#include "mono.h"
#include "relay.h"
#include "sig.h"
#include "supervise.h"
#include "endpoint.h"
#include "httpd.h"
#include "report.h"
#include "sdnotify.h"

#define RESTART_MIN 1.0
#define RESTART_MAX 60.0
#define STABLE_AFTER 60.0

struct child {
	char *queue;
	pid_t pid;    /* 0: not running */
	int ready_rd; /* -1: closed */
	bool ready, ever_ready;
	bool waiting;     /* a server was unavailable at its start */
	bool remove;      /* gone from the config: do not restart */
	bool restart_now; /* changed by a reload: restart at once */
	double started, restart_at, backoff;
	/* its reports, for /metrics and /health (see endpoint.h) */
	int rep_rd; /* -1: closed */
	struct report rep;
	bool have_rep;
	double rep_at;
	struct prom_counts base; /* totals of its earlier processes */
	char how[64];            /* how the last one ended */
};

struct sup {
	struct supervise_opts *o;
	struct mk_config cfg;
	struct child *c;
	size_t n;
	bool stopping;
	bool announced;   /* readiness decided (maybe_ready) */
	char status[512]; /* the last STATUS= sent to systemd */
	double kill_at;
	int exit_code;
	struct mk_err err;
	struct httpd *http; /* Application/metrics/listen; NULL: none */
};

static void
start_child(struct sup *s, struct child *c)
{
	struct relay_opts ro;
	struct mk_err e;
	int p[2], rp[2];
	pid_t pid, parent = getpid();

	if (pipe2(p, O_CLOEXEC) < 0) {
		log_error("worker '%s': cannot create a pipe: %s", c->queue,
			  strerror(errno));
		c->restart_at = now_mono() + RESTART_MAX;
		return;
	}
	/* Non-blocking both ways: the worker never waits to report. */
	if (pipe2(rp, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_error("worker '%s': cannot create a pipe: %s", c->queue,
			  strerror(errno));
		close(p[0]);
		close(p[1]);
		c->restart_at = now_mono() + RESTART_MAX;
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("worker '%s': cannot fork: %s", c->queue,
			  strerror(errno));
		close(p[0]);
		close(p[1]);
		close(rp[0]);
		close(rp[1]);
		c->restart_at = now_mono() + c->backoff;
		return;
	}
	if (pid == 0) {
		/*
		 * A worker never outlives its supervisor: if the parent is
		 * killed (SIGKILL by a supervisor's timeout), TERM drains the
		 * worker as if asked.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(0);
		/*
		 * The child: nothing of the parent's plumbing stays open
		 * (other workers' pipes, the readiness fd, the metrics
		 * listener and its clients' connections): its two pipe
		 * ends become fds 3 and 4, everything above goes.
		 */
		sig_reset();
		sig_close();
		sdnotify_close(); /* the parent speaks for the service */
		{
			int fr = fcntl(p[1], F_DUPFD, 10);
			int fw = fcntl(rp[1], F_DUPFD, 10);

			if (fr < 0 || fw < 0 || dup2(fr, 3) != 3 ||
			    dup2(fw, 4) != 4 || close_range(5, ~0U, 0) < 0)
				_exit(EX_OSERR);
		}
		if (sig_install(false) < 0)
			_exit(EX_OSERR);
		memset(&ro, 0, sizeof(ro));
		ro.config_path = s->o->config_path;
		ro.cfg = &s->cfg;
		ro.queue = c->queue;
		ro.ready_fd = 3;
		ro.report_fd = 4;
		ro.reload = true;
		ro.supervised = true;
		ro.drain_seconds = s->o->drain_seconds;
		if (relay_run(&ro, &e) < 0) {
			log_error("%s", e.msg);
			exit(e.code);
		}
		exit(0);
	}
	close(p[1]);
	close(rp[1]);
	c->pid = pid;
	c->ready_rd = p[0];
	c->rep_rd = rp[0];
	c->have_rep = false;
	c->ready = false;
	c->waiting = false;
	c->restart_now = false;
	c->started = now_mono();
	log_debug("worker '%s' started (pid %d)", c->queue, (int)pid);
}

static int
add_child(struct sup *s, const char *queue)
{
	struct child *c = realloc(s->c, (s->n + 1) * sizeof(*c));

	if (c == NULL)
		return -1;
	s->c = c;
	c = &s->c[s->n++];
	memset(c, 0, sizeof(*c));
	c->queue = strdup(queue);
	c->ready_rd = -1;
	c->rep_rd = -1;
	c->backoff = RESTART_MIN;
	return c->queue ? 0 : -1;
}

static void
kill_all(struct sup *s, int signo)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->c[i].pid > 0)
			kill(s->c[i].pid, signo);
}

/* To systemd (NOTIFY_SOCKET), if it listens; a failure is logged. */
static void
notify(const char *what, const char *status)
{
	struct mk_err e;

	if (sdnotify(&e, "%s%sSTATUS=%s", what, *what ? "\n" : "", status) < 0)
		log_warn("%s", e.msg);
}

static void
begin_stop(struct sup *s, int code)
{
	if (!s->stopping) {
		s->stopping = true;
		s->exit_code = code;
		s->kill_at = now_mono() + s->o->drain_seconds + 5;
		notify("STOPPING=1", code ? "stopping: a worker could not "
					    "start"
					  : "stopping: finishing open batches");
	}
	kill_all(s, SIGTERM);
}

static bool
fatal_at_start(int code)
{
	return code == EX_USAGE || code == EX_CONFIG || code == EX_NOPERM ||
	       code == EX_UNAVAILABLE || code == EX_SOFTWARE;
}

static void
child_exited(struct sup *s, struct child *c, int status)
{
	double ran = now_mono() - c->started;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	char how[64];

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d",
			 WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exited with status %d", code);
	c->pid = 0;
	if (c->ready_rd >= 0) {
		close(c->ready_rd);
		c->ready_rd = -1;
	}
	if (c->rep_rd >= 0) {
		(void)report_read(c->rep_rd, &c->rep);
		close(c->rep_rd);
		c->rep_rd = -1;
	}
	/* its counts stay in the totals its successor adds to */
	if (c->have_rep)
		prom_add(&c->base, &c->rep.c);
	c->have_rep = false;
	snprintf(c->how, sizeof(c->how), "%s", how);
	if (s->stopping) {
		if (code != 0)
			log_warn("worker '%s' %s", c->queue, how);
		return;
	}
	if (c->remove) {
		log_info("worker '%s' stopped: removed from the configuration",
			 c->queue);
		return;
	}
	if (c->restart_now) {
		log_info("worker '%s' restarting with the new configuration",
			 c->queue);
		start_child(s, c);
		return;
	}
	if (!c->ever_ready && code > 0 && fatal_at_start(code)) {
		log_error("worker '%s' could not start (%s): stopping",
			  c->queue, how);
		begin_stop(s, code);
		return;
	}
	c->backoff = ran > STABLE_AFTER ? RESTART_MIN
					: fmin(c->backoff * 2, RESTART_MAX);
	c->restart_at = now_mono() + c->backoff;
	log_warn("worker '%s' %s: restarting in %.0f s", c->queue, how,
		 c->backoff);
}

static void
reap(struct sup *s)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < s->n; i++)
			if (s->c[i].pid == pid) {
				child_exited(s, &s->c[i], status);
				break;
			}
	}
}

static void
reload(struct sup *s)
{
	struct mk_config nc;
	struct config_diff d;
	struct mk_err e;
	size_t i, j, restarted = 0, told = 0;

	/* systemd needs the clock with RELOADING=1 (Type=notify-reload) */
	if (sdnotify_on()) {
		char what[96];

		snprintf(what, sizeof(what), "RELOADING=1\nMONOTONIC_USEC=%llu",
			 sdnotify_monotonic_usec());
		notify(what, "reloading the configuration");
	}
	if (config_load(s->o->config_path, &nc, &e) < 0) {
		log_error("reload failed: %s: keeping the running "
			  "configuration",
			  e.msg);
		notify("READY=1", "reload failed: running the configuration "
				  "as it was");
		s->status[0] = '\0'; /* the workers' line again */
		return;
	}
	relay_log_notices(&nc, NULL);
	config_diff(&s->cfg, &nc, NULL, &d);
	if (d.notice)
		log_warn("reload: %s changed: takes effect when mikkoo-relay "
			 "is started again",
			 d.notice_keys);
	for (i = 0; i < s->n; i++) {
		struct child *c = &s->c[i];
		const struct mk_worker_config *nw =
			config_worker(&nc, c->queue);
		const struct mk_worker_config *ow =
			config_worker(&s->cfg, c->queue);

		if (c->remove)
			continue;
		if (nw == NULL) {
			c->remove = true;
			if (c->pid > 0)
				kill(c->pid, SIGTERM);
			continue;
		}
		if (ow)
			config_diff(&s->cfg, &nc, c->queue, &d);
		if (ow == NULL || d.restart) {
			if (ow)
				log_info("worker '%s': %s changed: restarting",
					 c->queue, d.restart_keys);
			c->restart_now = true;
			c->backoff = RESTART_MIN;
			restarted++;
			if (c->pid > 0)
				kill(c->pid, SIGTERM);
			else
				c->restart_at = 0;
		} else if (d.live && c->pid > 0) {
			/* it re-reads the file and applies them itself */
			kill(c->pid, SIGHUP);
			told++;
		}
	}
	for (j = 0; j < nc.nworkers; j++) {
		bool known = false;

		for (i = 0; i < s->n; i++)
			if (!s->c[i].remove &&
			    strcmp(s->c[i].queue, nc.workers[j].queue) == 0)
				known = true;
		if (!known && add_child(s, nc.workers[j].queue) == 0)
			s->c[s->n - 1].restart_at = 0;
	}
	config_release(&s->cfg);
	s->cfg = nc;
	log_info("configuration reloaded: %zu worker%s restarted, %zu "
		 "told to apply changes",
		 restarted, restarted == 1 ? "" : "s", told);
	notify("READY=1", "configuration reloaded");
	s->status[0] = '\0';
}

static void
read_ready(struct sup *s, struct child *c)
{
	char buf[16];
	ssize_t n = read(c->ready_rd, buf, sizeof(buf)), i;

	for (i = 0; i < n; i++) {
		if (buf[i] == RELAY_WAITING) {
			c->waiting = true;
		} else if (buf[i] == RELAY_READY) {
			if (!c->ready)
				log_debug("worker '%s' ready", c->queue);
			c->ready = c->ever_ready = true;
			c->waiting = false;
		}
	}
	if (n > 0)
		return;
	if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(c->ready_rd);
		c->ready_rd = -1;
	}
	(void)s;
}

/*
 * Ready once every worker has started or found a server unavailable and
 * gone on retrying (so readiness is bounded by the connect timeout, and
 * says what it can): then at least one must be relaying, else nothing
 * can start and the relay exits 69 as a lone worker would.
 */
static void
maybe_ready(struct sup *s)
{
	char waiting[256] = "";
	size_t i, nready = 0, nwait = 0, n = 0;

	if (s->announced)
		return;
	for (i = 0; i < s->n; i++) {
		struct child *c = &s->c[i];

		if (c->remove)
			continue;
		n++;
		if (c->ever_ready) {
			nready++;
		} else if (c->waiting) {
			size_t l = strlen(waiting);

			nwait++;
			snprintf(waiting + l, sizeof(waiting) - l, "%s'%s'",
				 l ? ", " : "", c->queue);
		} else {
			return;
		}
	}
	if (n == 0)
		return;
	s->announced = true;
	if (nready == 0) {
		log_error("no worker could reach its servers: stopping");
		begin_stop(s, EX_UNAVAILABLE);
		return;
	}
	if (s->o->ready_fd >= 0) {
		(void)!write(s->o->ready_fd, "\n", 1);
		close(s->o->ready_fd);
		s->o->ready_fd = -1;
	}
	notify("READY=1", "ready");
	if (nwait)
		log_warn("ready: %zu of %zu workers relaying; %s waiting for "
			 "%s servers, retrying",
			 nready, n, waiting, nwait == 1 ? "its" : "their");
	else
		log_info("ready: %zu worker%s running", n, n == 1 ? "" : "s");
}

/* The latest report of c, if any came. */
static void
read_report(struct child *c)
{
	int rc = report_read(c->rep_rd, &c->rep);

	if (rc > 0) {
		c->have_rep = true;
		c->rep_at = now_mono();
	} else if (rc < 0) {
		close(c->rep_rd);
		c->rep_rd = -1;
	}
}

/* GET /metrics and /health (see endpoint.h). */
static void
serve(void *arg, const char *path, struct httpd_page *page)
{
	struct sup *s = arg;
	struct endpoint_worker *w = calloc(s->n ? s->n : 1, sizeof(*w));
	size_t i, n = 0;

	if (w == NULL) {
		page->status = 500;
		return;
	}
	for (i = 0; i < s->n; i++) {
		struct child *c = &s->c[i];

		if (c->remove)
			continue;
		if (c->rep_rd >= 0)
			read_report(c);
		w[n].queue = c->queue;
		w[n].running = c->pid > 0;
		w[n].have = c->have_rep;
		w[n].rep = c->rep;
		w[n].base = c->base;
		w[n].report_age = now_mono() - c->rep_at;
		w[n].exited = c->how[0] ? c->how : NULL;
		n++;
	}
	endpoint_page(w, n, s->cfg.metrics.health_max_lag,
		      s->cfg.metrics.health_max_retained, path, page);
	free(w);
}

/*
 * STATUS= for systemd: how many workers relay, and what each other one
 * is doing ("'billing' down: ..."), sent when it changes.  Workers
 * report their state at once when it changes (report.h).
 */
static void
send_status(struct sup *s)
{
	char st[sizeof(s->status)];
	size_t i, n = 0, up = 0, l;

	if (!sdnotify_on() || !s->announced)
		return;
	for (i = 0; i < s->n; i++) {
		if (s->c[i].remove)
			continue;
		n++;
		if (s->c[i].pid > 0 && s->c[i].have_rep &&
		    s->c[i].rep.state == REPORT_RELAYING)
			up++;
	}
	snprintf(st, sizeof(st), "%zu of %zu worker%s relaying", up, n,
		 n == 1 ? "" : "s");
	for (i = 0; i < s->n; i++) {
		const struct child *c = &s->c[i];
		const char *state, *why = "";

		if (c->remove || (c->pid > 0 && c->have_rep &&
				  c->rep.state == REPORT_RELAYING))
			continue;
		if (c->pid == 0) {
			state = "restarting";
			why = c->how;
		} else if (!c->have_rep) {
			state = "starting";
		} else {
			state = report_state_name(c->rep.state);
			why = c->rep.why;
		}
		l = strlen(st);
		snprintf(st + l, sizeof(st) - l, "; '%s' %s%s%s", c->queue,
			 state, *why ? ": " : "", why);
	}
	/* one line: a server's error may hold a newline */
	for (l = 0; st[l]; l++)
		if ((unsigned char)st[l] < 0x20)
			st[l] = ' ';
	if (strcmp(st, s->status) == 0)
		return;
	snprintf(s->status, sizeof(s->status), "%s", st);
	notify("", st);
}

static bool
any_alive(struct sup *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->c[i].pid > 0)
			return true;
	return false;
}

int
supervise_run(struct supervise_opts *o, struct mk_err *e)
{
	struct sup s;
	struct pollfd *pfd = NULL;
	int sigfd, last_terms = 0;
	size_t i;

	memset(&s, 0, sizeof(s));
	s.o = o;
	s.cfg = *o->cfg;
	memset(o->cfg, 0, sizeof(*o->cfg));
	sigfd = sig_install(true);
	if (sigfd < 0) {
		config_release(&s.cfg);
		return mk_err_set(e, EX_OSERR, "cannot set up signals: %s",
				  strerror(errno));
	}
	/* before the workers: a port in use stops us here, not later */
	if (s.cfg.metrics.listen &&
	    httpd_open(&s.http, s.cfg.metrics.listen, serve, &s, e) < 0) {
		config_release(&s.cfg);
		return -1;
	}
	if (s.http)
		log_info("metrics: serving /metrics and /health on %s",
			 s.cfg.metrics.listen);
	for (i = 0; i < s.cfg.nworkers; i++)
		if (add_child(&s, s.cfg.workers[i].queue) < 0) {
			httpd_close(s.http);
			config_release(&s.cfg);
			return mk_err_set(e, EX_OSERR, "out of memory");
		}
	log_info("mikkoo-relay %s: starting %zu worker%s", MIKKOO_VERSION, s.n,
		 s.n == 1 ? "" : "s");

	for (;;) {
		double now = now_mono(), wait = 1.0;
		size_t nfd = 0;
		int terms = sig_term_count();

		if (terms > last_terms) {
			if (last_terms == 0)
				log_info("stopping on %s: waiting for the "
					 "workers",
					 sig_term_signo() == SIGINT
						 ? "SIGINT"
						 : "SIGTERM");
			last_terms = terms;
			begin_stop(&s, 0);
		}
		if (sig_hup_take() && !s.stopping)
			reload(&s);
		reap(&s);
		if (s.stopping) {
			if (!any_alive(&s))
				break;
			if (now >= s.kill_at) {
				log_warn("workers did not stop in time: "
					 "SIGKILL (their batches are read "
					 "again next time)");
				kill_all(&s, SIGKILL);
				s.kill_at = now + 3600;
			}
		} else {
			for (i = 0; i < s.n; i++) {
				struct child *c = &s.c[i];

				if (c->pid == 0 && !c->remove &&
				    c->restart_at <= now)
					start_child(&s, c);
				if (c->pid == 0 && !c->remove)
					wait = fmin(wait, c->restart_at - now);
			}
			maybe_ready(&s);
			send_status(&s);
		}

		free(pfd);
		pfd = calloc(2 * s.n + 2, sizeof(*pfd));
		if (pfd == NULL)
			abort();
		pfd[nfd].fd = sigfd;
		pfd[nfd++].events = POLLIN;
		for (i = 0; i < s.n; i++) {
			if (s.c[i].ready_rd >= 0) {
				pfd[nfd].fd = s.c[i].ready_rd;
				pfd[nfd++].events = POLLIN;
			}
			if (s.c[i].rep_rd >= 0) {
				pfd[nfd].fd = s.c[i].rep_rd;
				pfd[nfd++].events = POLLIN;
			}
		}
		if (s.http) {
			int t = httpd_timeout_ms(s.http);

			pfd[nfd].fd = httpd_fd(s.http);
			pfd[nfd++].events = POLLIN;
			if (t >= 0)
				wait = fmin(wait, t / 1000.0);
		}
		if (wait < 0.01)
			wait = 0.01;
		if (poll(pfd, nfd, (int)(wait * 1000)) > 0) {
			sig_drain();
			for (i = 0; i < s.n; i++) {
				size_t k;

				for (k = 1; k < nfd; k++) {
					if (!pfd[k].revents)
						continue;
					if (pfd[k].fd == s.c[i].ready_rd)
						read_ready(&s, &s.c[i]);
					else if (pfd[k].fd == s.c[i].rep_rd)
						read_report(&s.c[i]);
				}
			}
		}
		if (s.http)
			httpd_run(s.http);
	}
	free(pfd);
	httpd_close(s.http);
	for (i = 0; i < s.n; i++) {
		if (s.c[i].rep_rd >= 0)
			close(s.c[i].rep_rd);
		free(s.c[i].queue);
	}
	free(s.c);
	config_release(&s.cfg);
	if (s.exit_code != 0)
		return mk_err_set(e, s.exit_code, "%s",
				  ""); /* the worker said why */
	log_info("stopped");
	return 0;
}
