/*
 * Commands and uploads over an SSH session: each bounded by a deadline and
 * *cancel, its output capped, its exit status read from a wrapper line
 * (see wrapper_fmt) rather than trusted from the channel.
 */
#include <errno.h>
#include <fcntl.h>
#include <libssh2_sftp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "log.h"

/* libssh2_sftp_write pipelines a large buffer as many packets in flight, so one read feeds it. */
#define UPLOAD_CHUNK (1024 * 1024)

/* Starts the status line the exec wrapper prints after the command; a random nonce follows. */
#define EXIT_TOKEN "migrate-exit-status-"
/* How much of the end of stdout is kept to find that line in. */
#define EXIT_TAIL 96

/* ---- commands ---- */

/* Appends what fits under MG_SSH_MAX_OUTPUT; the rest is read and dropped so the window moves. */
static int keep(char **buf, size_t *len, const char *data, size_t n)
{
	size_t room = MG_SSH_MAX_OUTPUT - *len;
	if (n > room)
		n = room;
	if (!n)
		return 0;
	char *p = realloc(*buf, *len + n + 1);
	if (!p)
		return MG_ENOMEM;
	memcpy(p + *len, data, n);
	*len += n;
	p[*len] = '\0';
	*buf = p;
	return 0;
}

void mg_ssh_result_clear(mg_ssh_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static int unusable(const mg_ssh *s, mg_error *err)
{
	return mg_error_set(err, MG_ERROR,
	                    "%s: the session is unusable after an earlier failure; connect again",
	                    s->label);
}

/*
 * What is sent instead of the command: a POSIX shell script, run by the
 * user's login shell, that
 *  - starts the command (with the login shell, as sshd would have) in a
 *    session and process group of its own (setsid), stdin from /dev/null;
 *  - keeps a watchdog on the channel's stdin, which migrate never writes to:
 *    it reaches EOF only when the channel or the connection goes away (a
 *    timeout, a cancel, migrate killed), and then the whole group gets TERM
 *    and, 2 s later, KILL, so nothing the command started keeps running;
 *    the watchdog ignores TERM once it fired, so the wrapper's own cleanup
 *    cannot stop the KILL;
 *  - does the same when the wrapper itself gets HUP, INT or TERM;
 *  - prints, after the command ended, a line with a per-call random token
 *    and the command's exit status, and exits with it. libssh2 reports a
 *    missing exit-status message as 0, so only that line (or an
 *    exit-signal) tells that the command ran to the end and how.
 * Without setsid on the host the command runs in the wrapper's group, and
 * only the command's own process is signalled.
 */
static const char wrapper_fmt[] =
    "c=%s\n"
    "exec 3<&0 </dev/null\n"
    "if command -v setsid >/dev/null 2>&1; then setsid \"${SHELL:-/bin/sh}\" -c \"$c\" 3<&- & "
    "else \"${SHELL:-/bin/sh}\" -c \"$c\" 3<&- & fi\n"
    "p=$!\n"
    "(while IFS= read -r _; do :; done; trap '' TERM; kill -TERM -$p || kill -TERM $p; "
    "sleep 2; kill -KILL -$p || kill -KILL $p) <&3 >/dev/null 2>&1 &\n"
    "w=$!\n"
    "exec 3<&-\n"
    "trap 'kill -TERM -$p 2>/dev/null || kill -TERM $p 2>/dev/null' HUP INT TERM\n"
    "wait $p\n"
    "r=$?\n"
    "kill $w 2>/dev/null\n"
    "printf '\\n" EXIT_TOKEN "%s %%d\\n' \"$r\"\n"
    "exit $r\n";

/* Keeps the last EXIT_TAIL bytes of stdout, where the wrapper's status line is. */
static void tail_add(char *tail, size_t *tlen, const char *data, size_t n)
{
	if (n >= EXIT_TAIL) {
		memcpy(tail, data + n - EXIT_TAIL, EXIT_TAIL);
		*tlen = EXIT_TAIL;
		return;
	}
	if (*tlen + n > EXIT_TAIL) {
		size_t drop = *tlen + n - EXIT_TAIL;
		memmove(tail, tail + drop, *tlen - drop);
		*tlen -= drop;
	}
	memcpy(tail + *tlen, data, n);
	*tlen += n;
}

/*
 * Finds "\n<EXIT_TOKEN><nonce> <status>\n" at the very end of stdout: the
 * status, and the line's length (to cut it from the output), or -1.
 */
static int exit_line(const char *tail, size_t tlen, const char *nonce, size_t *line_len)
{
	char tok[80];
	int n = snprintf(tok, sizeof(tok), "\n" EXIT_TOKEN "%s ", nonce);
	if (n <= 0 || tlen < (size_t)n + 2 || tail[tlen - 1] != '\n')
		return -1;
	for (size_t at = tlen - (size_t)n - 1;; at--) {
		if (memcmp(tail + at, tok, (size_t)n) == 0) {
			const char *p = tail + at + n, *end = tail + tlen - 1;
			int status = 0;
			if (p == end || end - p > 3)
				return -1;
			for (; p < end; p++) {
				if (*p < '0' || *p > '9')
					return -1;
				status = status * 10 + (*p - '0');
			}
			if (status > 255)
				return -1;
			*line_len = tlen - at;
			return status;
		}
		if (at == 0)
			return -1;
	}
}

int mg_ssh_exec(mg_ssh_result *r, mg_ssh *s, const char *command, int64_t timeout_ms, mg_error *err)
{
	memset(r, 0, sizeof(*r));
	if (s->broken)
		return unusable(s, err);
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	uint8_t rnd[16];
	char nonce[33];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* no entropy yet: the token need only not appear in the command's own output */
		uint64_t x =
		    (uint64_t)mg_clock_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
		memcpy(rnd, &x, sizeof(x));
		memcpy(rnd + 8, &x, sizeof(x));
	}
	for (int i = 0; i < 16; i++)
		snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
	char *quoted = mg_ssh_quote(command);
	char *wrapped = NULL;
	if (!quoted || asprintf(&wrapped, wrapper_fmt, quoted, nonce) < 0)
		wrapped = NULL;
	free(quoted);
	if (!r->out || !r->err || !wrapped) {
		free(wrapped);
		mg_ssh_result_clear(r);
		return mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
	}
	char tail[EXIT_TAIL];
	size_t tlen = 0, out_total = 0;
	const char *what = "the command";
	int64_t deadline = mg_clock_ms() + timeout_ms;
	LIBSSH2_CHANNEL *ch;
	int rc;
	while (!(ch = libssh2_channel_open_session(s->session))) {
		if (libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_EAGAIN) {
			rc = mg_error_set(err, MG_ERROR, "%s: cannot open a channel: %s", s->label,
			                  mg_ssh_errmsg(s));
			goto fail;
		}
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	}
	while ((rc = libssh2_channel_exec(ch, wrapped)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	if (rc) {
		rc = mg_error_set(err, MG_ERROR, "%s: the host would not run the command: %s",
		                  s->label, mg_ssh_errmsg(s));
		goto fail;
	}
	char buf[16384];
	for (;;) {
		/* checked here too: a command that never stops writing never makes us wait */
		if ((rc = mg_ssh_check_stop(s, deadline, timeout_ms, what, err)))
			goto fail;
		/*
		 * Sampled before reading: a read of one stream may take in the other's
		 * last data together with the EOF, and that data must still be read.
		 */
		bool eof = libssh2_channel_eof(ch) == 1;
		bool got = false;
		for (int stream = 0; stream < 2; stream++) {
			ssize_t n = libssh2_channel_read_ex(ch, stream, buf, sizeof(buf));
			if (n > 0) {
				got = true;
				if (!stream) {
					tail_add(tail, &tlen, buf, (size_t)n);
					out_total += (size_t)n;
				}
				if ((rc = stream ? keep(&r->err, &r->err_len, buf, (size_t)n)
				                 : keep(&r->out, &r->out_len, buf, (size_t)n))) {
					rc = mg_error_set(err, rc, "%s: out of memory", s->label);
					goto fail;
				}
			} else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
				rc = mg_error_set(err, MG_ERROR,
				                  "%s: reading the command's output: %s", s->label,
				                  mg_ssh_errmsg(s));
				goto fail;
			}
		}
		if (got)
			continue;
		if (eof)
			break;
		/* the EOF came in with these reads: read once more for data that came with it,
		   instead of waiting a slice for a socket that has nothing more to say */
		if (libssh2_channel_eof(ch) == 1)
			continue;
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	}
	while ((rc = libssh2_channel_close(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	while ((rc = libssh2_channel_wait_closed(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	size_t line_len = 0;
	int status = exit_line(tail, tlen, nonce, &line_len);
	char *sig = NULL;
	libssh2_channel_get_exit_signal(ch, &sig, NULL, NULL, NULL, NULL, NULL);
	if (status >= 0) {
		r->exit_status = status;
		/* the status line is the wrapper's, not the command's output */
		size_t start = out_total - line_len;
		if (start < r->out_len) {
			r->out_len = start;
			r->out[start] = '\0';
		}
	} else if (sig) {
		r->exit_status = -1; /* the wrapper (the login shell) itself was killed */
	}
	if (sig)
		libssh2_free(s->session, sig);
	while ((rc = libssh2_channel_free(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	if (status < 0 && r->exit_status != -1) {
		/*
		 * No status line and no exit-signal: libssh2 would say 0 whether the
		 * host sent that or nothing. The command may not have run, or not to
		 * its end: never a success. The session itself is still fine.
		 */
		char tail_err[256] = "";
		size_t k = 0;
		for (size_t i = 0; i < r->err_len && k + 1 < sizeof(tail_err); i++) {
			unsigned char c = (unsigned char)r->err[i];
			tail_err[k++] = c == '\n' ? '|' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
		}
		tail_err[k] = '\0';
		mg_ssh_result_clear(r);
		free(wrapped);
		return mg_error_set(
		    err, MG_ERROR,
		    "%s: the host did not report an exit status for the command (it "
		    "may not have run, or not to its end; is the user's login shell "
		    "a POSIX shell, and is no forced command set for the key?)%s%s",
		    s->label, *tail_err ? ": " : "", tail_err);
	}
	free(wrapped);
	return 0;
fail:
	/*
	 * The channel is left to libssh2_session_free: see the top of this file.
	 * The connection is shut at once: the host then closes the channel, and
	 * the wrapper's watchdog ends whatever the command started.
	 */
	s->broken = true;
	if (s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
	free(wrapped);
	mg_ssh_result_clear(r);
	return rc ? rc : MG_ERROR;
}

/* ---- upload ---- */

static const char *sftp_status(unsigned long code)
{
	switch (code) {
	case LIBSSH2_FX_NO_SUCH_FILE:
	case LIBSSH2_FX_NO_SUCH_PATH:
		return "no such file or directory";
	case LIBSSH2_FX_PERMISSION_DENIED:
		return "permission denied";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
		return "no space left on the file system";
	case LIBSSH2_FX_QUOTA_EXCEEDED:
		return "quota exceeded";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS:
		return "file exists";
	case LIBSSH2_FX_WRITE_PROTECT:
	case LIBSSH2_FX_LOCK_CONFLICT:
		return "the file system is read-only or the file is locked";
	case LIBSSH2_FX_NOT_A_DIRECTORY:
		return "a parent is not a directory";
	case LIBSSH2_FX_INVALID_FILENAME:
		return "invalid file name";
	default:
		return "failure";
	}
}

/* The reason an SFTP call failed: the server's status when it sent one, else libssh2's. */
static void sftp_why(char *out, size_t size, mg_ssh *s, LIBSSH2_SFTP *sftp)
{
	int e = libssh2_session_last_errno(s->session);
	if (sftp && e == LIBSSH2_ERROR_SFTP_PROTOCOL) {
		unsigned long code = libssh2_sftp_last_error(sftp);
		snprintf(out, size, "%s (SFTP status %lu)", sftp_status(code), code);
	} else {
		snprintf(out, size, "%s", mg_ssh_errmsg(s));
	}
}

int mg_ssh_upload(mg_ssh *s, const char *local_path, const char *remote_path, long mode,
                  int64_t timeout_ms, mg_error *err)
{
	if (s->broken)
		return unusable(s, err);
	int fd = open(local_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mg_error_set(err, MG_EIO, "%s: cannot read %s: %s", s->label, local_path,
		                    strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mg_error_set(err, MG_EIO, "%s: %s is not a regular file", s->label,
		                    local_path);
	}
	char *buf = malloc(UPLOAD_CHUNK);
	if (!buf) {
		close(fd);
		return mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
	}
	const char *what = "the upload";
	char why[256];
	int64_t deadline = mg_clock_ms() + timeout_ms;
	LIBSSH2_SFTP *sftp = NULL;
	LIBSSH2_SFTP_HANDLE *h = NULL;
	int rc = 0;
	while (!(sftp = libssh2_sftp_init(s->session))) {
		if (libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_EAGAIN) {
			rc = mg_error_set(err, MG_ERROR, "%s: cannot start SFTP: %s", s->label,
			                  mg_ssh_errmsg(s));
			goto out;
		}
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	}
	while (!(h = libssh2_sftp_open_ex(sftp, remote_path, (unsigned)strlen(remote_path),
	                                  LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
	                                  mode, LIBSSH2_SFTP_OPENFILE))) {
		if (libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_EAGAIN) {
			sftp_why(why, sizeof(why), s, sftp);
			rc = mg_error_set(err, MG_ERROR, "%s: cannot create %s: %s", s->label,
			                  remote_path, why);
			goto out;
		}
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, UPLOAD_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mg_error_set(err, MG_EIO, "%s: reading %s: %s", s->label, local_path,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (size_t off = 0; off < (size_t)n;) {
			if ((rc = mg_ssh_check_stop(s, deadline, timeout_ms, what, err)))
				goto out;
			ssize_t w = libssh2_sftp_write(h, buf + off, (size_t)n - off);
			if (w > 0) {
				off += (size_t)w;
			} else if (w == 0 || w == LIBSSH2_ERROR_EAGAIN) {
				if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
					goto out;
			} else {
				sftp_why(why, sizeof(why), s, sftp);
				rc = mg_error_set(err, MG_ERROR, "%s: writing %s: %s", s->label,
				                  remote_path, why);
				goto out;
			}
		}
	}
	/* the mode given to open applies only to a new file, and through the server's umask */
	LIBSSH2_SFTP_ATTRIBUTES attrs = {.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS,
	                                 .permissions = (unsigned long)mode};
	while ((rc = libssh2_sftp_fsetstat(h, &attrs)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	if (rc) {
		sftp_why(why, sizeof(why), s, sftp);
		rc = mg_error_set(err, MG_ERROR, "%s: setting the mode of %s: %s", s->label,
		                  remote_path, why);
		goto out;
	}
	/* closing is what confirms the last writes: its failure is the upload's */
	while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	h = NULL;
	if (rc) {
		sftp_why(why, sizeof(why), s, sftp);
		rc = mg_error_set(err, MG_ERROR, "%s: closing %s: %s", s->label, remote_path, why);
		goto out;
	}
	while ((rc = libssh2_sftp_shutdown(sftp)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	sftp = NULL;
	rc = 0;
out:
	if (h || sftp) {
		/*
		 * Gone wrong midway: close what is open, bounded, so the session may
		 * still serve; if even that fails, it is broken.
		 */
		libssh2_session_set_blocking(s->session, 1);
		libssh2_session_set_timeout(s->session, TEARDOWN_MS);
		if (h && libssh2_sftp_close_handle(h) != 0)
			s->broken = true;
		if (sftp && !s->broken && libssh2_sftp_shutdown(sftp) != 0)
			s->broken = true;
		libssh2_session_set_timeout(s->session, 0);
		libssh2_session_set_blocking(s->session, 0);
	}
	free(buf);
	close(fd);
	return rc;
}
