/* SPDX-License-Identifier: BSD-3-Clause */
/* sig: async-signal-safe flags plus a self-pipe. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sig.h"

static volatile sig_atomic_t n_term, last_term, got_hup, got_chld;
static int pipefd[2] = { -1, -1 };

static void
on_signal(int signo)
{
	int saved = errno;
	char c = (char)signo;

	switch (signo) {
	case SIGTERM:
	case SIGINT:
		n_term++;
		last_term = signo;
		break;
	case SIGHUP:
		got_hup = 1;
		break;
	case SIGCHLD:
		got_chld = 1;
		break;
	}
	if (pipefd[1] >= 0)
		(void)!write(pipefd[1], &c, 1);
	errno = saved;
}

int
sig_install(bool want_chld)
{
	struct sigaction sa;

	if (pipefd[0] < 0) {
		if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
			return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocking waits must wake up */
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return -1;
	if (want_chld) {
		sa.sa_flags = SA_NOCLDSTOP;
		if (sigaction(SIGCHLD, &sa, NULL) < 0)
			return -1;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -1;
	return pipefd[0];
}

void
sig_reset(void)
{
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	n_term = last_term = got_hup = got_chld = 0;
}

void
sig_close(void)
{
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	pipefd[0] = pipefd[1] = -1;
}

int
sig_term_count(void)
{
	return n_term;
}

int
sig_term_signo(void)
{
	return last_term;
}

bool
sig_hup_take(void)
{
	if (!got_hup)
		return false;
	got_hup = 0;
	return true;
}

bool
sig_hup_pending(void)
{
	return got_hup != 0;
}

bool
sig_chld_take(void)
{
	if (!got_chld)
		return false;
	got_chld = 0;
	return true;
}

void
sig_drain(void)
{
	char buf[64];

	if (pipefd[0] < 0)
		return;
	while (read(pipefd[0], buf, sizeof(buf)) > 0)
		;
}
