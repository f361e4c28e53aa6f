/* SPDX-License-Identifier: BSD-3-Clause */
/* daemon: detach, pidfile, privilege drop for --daemon. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

static char *pidpath;
static int pidfd = -1;
static pid_t owner;

/* Tell the waiting parent how it went: one status byte. */
static void
report(int fd, int code)
{
	unsigned char c = (unsigned char)code;

	(void)!write(fd, &c, 1);
	close(fd);
}

static int
write_pidfile(const char *path, struct mk_err *e)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return mk_err_set(e, EX_CANTCREAT,
				  "cannot open pidfile '%s': "
				  "%s",
				  path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		n = (int)read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		close(fd);
		return mk_err_set(e, EX_TEMPFAIL,
				  "pidfile '%s' is locked: "
				  "mikkoo-relay is already running (pid %s)",
				  path, buf[0] ? buf : "?");
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)n) != n) {
		close(fd);
		return mk_err_set(e, EX_IOERR, "cannot write pidfile '%s': %s",
				  path, strerror(errno));
	}
	pidfd = fd; /* keep the lock for our lifetime */
	pidpath = strdup(path);
	owner = getpid();
	return 0;
}

static int
drop_privileges(const char *user, struct mk_err *e)
{
	struct passwd *pw;

	if (user == NULL || geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL)
		return mk_err_set(e, EX_NOUSER, "no user '%s' (Daemon/user)",
				  user);
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return mk_err_set(e, EX_NOPERM, "cannot become user '%s': %s",
				  user, strerror(errno));
	return 0;
}

int
daemon_detach(const char *pidfile, const char *user, struct mk_err *e)
{
	int p[2], null, status;
	unsigned char code = EX_OSERR;
	pid_t pid;

	if (pipe(p) < 0)
		return mk_err_set(e, EX_OSERR, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		return mk_err_set(e, EX_OSERR, "fork: %s", strerror(errno));
	if (pid > 0) {
		/* The original process: wait for the verdict, then leave. */
		close(p[1]);
		if (read(p[0], &code, 1) != 1)
			code = EX_OSERR;
		waitpid(pid, &status, 0);
		_exit(code);
	}
	close(p[0]);
	if (setsid() < 0)
		_exit(EX_OSERR);
	pid = fork();
	if (pid < 0)
		_exit(EX_OSERR);
	if (pid > 0)
		_exit(0);
	/* The daemon.  Errors from here are reported by the caller's log
	 * (stderr is kept) and the status byte. */
	if ((pidfile && write_pidfile(pidfile, e) < 0) ||
	    drop_privileges(user, e) < 0) {
		report(p[1], e->code);
		return -1;
	}
	if (chdir("/") < 0) {
		/* not fatal: only a mount point kept busy */
	}
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	report(p[1], 0);
	return 0;
}

void
daemon_cleanup(void)
{
	if (pidpath && getpid() == owner)
		(void)unlink(pidpath);
	free(pidpath);
	pidpath = NULL;
	if (pidfd >= 0)
		close(pidfd);
	pidfd = -1;
}
