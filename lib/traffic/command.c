/*
 * Running an operator's shell command from the plan (nginx's test and reload
 * commands), bounded by a timeout, with its output kept for the message.
 */
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "secret.h"

extern char **environ;

/* Command output kept for an error message; the rest is read and dropped. */
#define OUTPUT_MAX 16384
/* After the shell exits, how long a background child may keep its output pipe open. */
#define EXIT_GRACE_MS 200
/* After SIGTERM to a command that timed out, before SIGKILL. */
#define KILL_GRACE_MS 500

/* --- running the operator's commands ------------------------------------------------------ */

/* Whether pid has exited, without reaping it: its process group id stays ours to signal. */
static bool has_exited(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

static void append(char *buf, size_t *len, const char *data, size_t n)
{
	size_t room = OUTPUT_MAX - *len;
	if (n > room)
		n = room;
	memcpy(buf + *len, data, n);
	*len += n;
	buf[*len] = '\0';
}

/* The command's output on one line, for a message. */
static void summarize(char *dst, size_t size, const char *raw)
{
	/* scrubbed before it is cut: a secret cut in half would no longer be recognised */
	char *clean = mg_scrub_dup(raw);
	if (!clean) {
		snprintf(dst, size, "%s", "(output withheld: out of memory)");
		return;
	}
	const char *src = clean;
	size_t o = 0;
	bool gap = false;
	while (mg_traffic_is_space(*src))
		src++;
	for (; *src && o + 4 < size; src++) {
		unsigned char c = (unsigned char)*src;
		if (c == '\n' || c == '\r') {
			gap = true;
			continue;
		}
		if (gap && o + 6 < size) {
			memcpy(dst + o, "; ", 2);
			o += 2;
		}
		gap = false;
		dst[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	while (o && mg_traffic_is_space(dst[o - 1]))
		o--;
	if (*src) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	free(clean);
	if (!o)
		snprintf(dst, size, "no output");
}

static void duration(char *buf, size_t size, long ms)
{
	if (ms % 1000)
		snprintf(buf, size, "%ld ms", ms);
	else
		snprintf(buf, size, "%ld s", ms / 1000);
}

/*
 * Runs cmd with /bin/sh -c. The test and reload commands are the operator's
 * own shell commands from the plan (like an Ansible `shell` task: "sudo nginx
 * -t", "systemctl reload nginx"), so a shell is what they are written for;
 * nothing else is ever spliced into them. The command gets its own process
 * group so a timeout stops everything it started. Returns 0 when it exits
 * with status 0; otherwise MG_ERROR with what happened and its output in
 * `what` (err is only for failing to run it at all).
 */
int mg_traffic_run_command(const char *cmd, long timeout_ms, char *what, size_t what_size,
                           mg_error *err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return mg_error_set(err, MG_EIO, "cannot run `%s`: pipe: %s", cmd, strerror(errno));

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                  POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	sigset_t mask, def;
	sigemptyset(&mask);
	posix_spawnattr_setsigmask(&at, &mask);
	/* the caller may ignore these (SIGPIPE often is); the operator's command must not */
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGQUIT);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGHUP);
	posix_spawnattr_setsigdefault(&at, &def);

	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	pid_t pid;
	int src = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[1]);
	if (src) {
		close(pfd[0]);
		return mg_error_set(err, MG_EIO, "cannot run `%s`: /bin/sh: %s", cmd,
		                    strerror(src));
	}

	char *output = malloc(OUTPUT_MAX + 1);
	size_t olen = 0;
	if (output)
		output[0] = '\0';
	long deadline = mg_clock_ms() + timeout_ms, grace_end = 0;
	bool exited = false, eof = false, timed_out = false;
	for (;;) {
		if (!exited && has_exited(pid)) {
			exited = true;
			grace_end = mg_clock_ms() + EXIT_GRACE_MS;
		}
		long now = mg_clock_ms();
		if (exited && (eof || now >= grace_end))
			break;
		if (!exited && now >= deadline) {
			timed_out = true;
			break;
		}
		long wait = (exited ? grace_end : deadline) - now;
		if (eof) {
			/* the output is closed but the shell is still running */
			poll(NULL, 0, (int)(wait < 5 ? wait : 5));
			continue;
		}
		struct pollfd pf = {pfd[0], POLLIN, 0};
		if (poll(&pf, 1, (int)(wait < 50 ? wait : 50)) <= 0)
			continue;
		char chunk[4096];
		ssize_t r = read(pfd[0], chunk, sizeof(chunk));
		if (r > 0 && output)
			append(output, &olen, chunk, (size_t)r);
		else if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
			eof = true;
	}
	close(pfd[0]);
	if (timed_out) {
		kill(-pid, SIGTERM);
		for (long end = mg_clock_ms() + KILL_GRACE_MS;
		     !has_exited(pid) && mg_clock_ms() < end;)
			poll(NULL, 0, 10);
		/* the shell may be gone while what it started is not */
		kill(-pid, SIGKILL);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;

	char out[512], limit[32];
	summarize(out, sizeof(out), output ? output : "");
	free(output);
	if (timed_out) {
		duration(limit, sizeof(limit), timeout_ms);
		snprintf(
		    what, what_size,
		    "`%.200s` did not finish within %s (traffic.nginx.command_timeout) and was "
		    "stopped (%s)",
		    cmd, limit, out);
		return MG_ERROR;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(what, what_size, "`%.200s` failed with exit status %d: %s", cmd,
		         WEXITSTATUS(status), out);
	else
		snprintf(what, what_size, "`%.200s` was killed by signal %d: %s", cmd,
		         WTERMSIG(status), out);
	return MG_ERROR;
}
