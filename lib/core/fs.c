#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Directory part of path ("." when there is none); malloc'd. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			/* Not expected for a regular file; don't spin if it happens. */
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A name no other writer picks: pid for other processes, a counter for other
 * threads or calls, the clock for a pid reused after a crash. The shape
 * ".<name>.tmp.<...>" is what store.c looks for to remove leftovers of a crash.
 */
static int temp_name(char *buf, size_t size, const char *dir, const char *base, unsigned attempt)
{
	static unsigned counter;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned seq = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
	uint64_t r = (uint64_t)ts.tv_nsec ^ ((uint64_t)seq << 32) ^ attempt;
	int n = snprintf(buf, size, "%s/.%s.tmp.%ld.%" PRIx64, dir, base, (long)getpid(), r);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int mg_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, mg_error *err)
{
	char *dir = dir_of(path);
	if (!dir)
		return mg_error_set(err, MG_ENOMEM, "out of memory writing %s", path);
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base) {
		free(dir);
		return mg_error_set(err, MG_EINVALID, "cannot write %s: not a file name", path);
	}

	size_t tmp_size = strlen(dir) + strlen(base) + 64;
	char *tmp = malloc(tmp_size);
	if (!tmp) {
		free(dir);
		return mg_error_set(err, MG_ENOMEM, "out of memory writing %s", path);
	}

	int fd = -1;
	for (unsigned attempt = 0; attempt < 100; attempt++) {
		if (temp_name(tmp, tmp_size, dir, base, attempt) < 0) {
			errno = ENAMETOOLONG;
			break;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		int rc = mg_error_set(err, MG_EIO, "cannot write %s: creating a temporary file: %s",
		                      path, strerror(errno));
		free(tmp);
		free(dir);
		return rc;
	}

	const char *step = "writing";
	if (write_all(fd, data, len) < 0)
		goto fail;
	step = "syncing";
	if (fsync(fd) < 0)
		goto fail;
	step = "closing";
	int close_rc = close(fd);
	fd = -1;
	/* close(2) reports delayed write errors (NFS); EINTR still closed the descriptor */
	if (close_rc < 0 && errno != EINTR)
		goto fail;
	step = "renaming";
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	tmp = NULL;

	mg_error sync_err = MG_ERROR_INIT;
	int rc = mg_fs_sync_dir(dir, &sync_err);
	free(dir);
	if (rc < 0)
		return mg_error_set(err, MG_EIO, "cannot write %s: %s", path, sync_err.message);
	return 0;

fail:;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	free(dir);
	return mg_error_set(err, MG_EIO, "cannot write %s: %s: %s", path, step, strerror(saved));
}

/*
 * The one read loop: reads fd to its end, or to max + 1 bytes when it is longer, so a caller
 * with a limit can tell "over" without reading an endless file. hint is the size fstat gave
 * (only a hint: the file may grow while we read it). Closes fd. *buf is NUL-terminated.
 */
static int read_fd(char **out, size_t *out_len, int fd, const char *path, size_t hint, size_t max,
                   mg_error *err)
{
	size_t cap = hint + 1;
	if (cap > max + 1)
		cap = max + 1;
	if (cap < 4096 && max + 1 > 4096)
		cap = 4096;
	char *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", path);
	}
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			if (cap >= max + 1)
				break;
			size_t ncap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				close(fd);
				return mg_error_set(err, MG_ENOMEM, "out of memory reading %s",
				                    path);
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int saved = errno;
			free(buf);
			close(fd);
			return mg_error_set(err, MG_EIO, "cannot read %s: %s", path,
			                    strerror(saved));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

int mg_fs_read_all(char **out, size_t *out_len, const char *path, mg_error *err)
{
	*out = NULL;
	if (out_len)
		*out_len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return mg_error_set(err, MG_ENOTFOUND, "%s: no such file", path);
		return mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));
	}
	struct stat sb;
	size_t hint = 0;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
	    (uint64_t)sb.st_size < SIZE_MAX / 4)
		hint = (size_t)sb.st_size;
	size_t len;
	/* No limit of its own: SIZE_MAX / 4 only keeps the arithmetic of the loop exact. */
	int rc = read_fd(out, &len, fd, path, hint, SIZE_MAX / 4, err);
	if (rc == 0 && len > SIZE_MAX / 4) {
		free(*out);
		*out = NULL;
		return mg_error_set(err, MG_ENOMEM, "%s is too large to read", path);
	}
	if (rc == 0 && out_len)
		*out_len = len;
	return rc;
}

static const char *size_name(char *buf, size_t size, size_t n)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(buf, size, "%zu MiB", n / (1024 * 1024));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, size, "%zu KiB", n / 1024);
	else
		snprintf(buf, size, "%zu bytes", n);
	return buf;
}

int mg_fs_read_file(char **out, size_t *out_len, const char *path, size_t limit, const char *what,
                    mg_error *err)
{
	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!what)
		what = "the file";
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer; we refuse it below */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return mg_error_set(err, MG_ENOTFOUND, "%s: no such file", path);
		return mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		close(fd);
		return mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(e));
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return mg_error_set(err, MG_EINVALID,
		                    "%s: %s is not a regular file (a %s); give a file", path, what,
		                    S_ISDIR(sb.st_mode)    ? "directory"
		                    : S_ISFIFO(sb.st_mode) ? "FIFO"
		                    : S_ISCHR(sb.st_mode)  ? "character device"
		                    : S_ISBLK(sb.st_mode)  ? "block device"
		                    : S_ISSOCK(sb.st_mode) ? "socket"
		                                           : "special file");
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	char lim[32];
	if ((uint64_t)sb.st_size > (uint64_t)limit) {
		close(fd);
		return mg_error_set(err, MG_EINVALID,
		                    "%s: %s is larger than the limit of %s (see \"Limits\" in "
		                    "docs/plan.md)",
		                    path, what, size_name(lim, sizeof(lim), limit));
	}
	char *buf;
	size_t len;
	int rc = read_fd(&buf, &len, fd, path, (size_t)sb.st_size, limit, err);
	if (rc)
		return rc;
	if (len > limit) {
		free(buf);
		return mg_error_set(err, MG_EINVALID,
		                    "%s: %s is larger than the limit of %s (see \"Limits\" in "
		                    "docs/plan.md)",
		                    path, what, size_name(lim, sizeof(lim), limit));
	}
	*out = buf;
	if (out_len)
		*out_len = len;
	return 0;
}

/* Creates one directory whose parent exists; an existing directory is fine. */
static int mkdir_one(const char *path, mode_t mode, mg_error *err)
{
	if (mkdir(path, mode) < 0) {
		int e = errno;
		struct stat sb;
		/* Checked after the fact: an existing directory can fail with EROFS or EACCES. */
		if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
			return 0;
		if (e == EEXIST)
			return mg_error_set(
			    err, MG_EIO,
			    "cannot create directory %s: a file of that name is in the way", path);
		return mg_error_set(err, MG_EIO, "cannot create directory %s: %s", path,
		                    strerror(e));
	}
	/* Make the new entry durable, or a crash could lose the directory with files we fsynced. */
	char *parent = dir_of(path);
	if (!parent)
		return mg_error_set(err, MG_ENOMEM, "out of memory creating %s", path);
	int rc = mg_fs_sync_dir(parent, err);
	free(parent);
	return rc;
}

int mg_fs_mkdirs(const char *path, mode_t mode, mg_error *err)
{
	if (!path || !*path)
		return mg_error_set(err, MG_EINVALID,
		                    "cannot create a directory with an empty name");
	char *p = strdup(path);
	if (!p)
		return mg_error_set(err, MG_ENOMEM, "out of memory creating %s", path);

	int rc = 0;
	char *cur = p;
	while (*cur == '/')
		cur++;
	while (*cur) {
		char *end = strchrnul(cur, '/');
		char saved = *end;
		*end = '\0';
		rc = mkdir_one(p, mode, err);
		*end = saved;
		if (rc < 0)
			break;
		while (*end == '/')
			end++;
		cur = end;
	}
	free(p);
	return rc;
}

int mg_fs_sync_dir(const char *dir, mg_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mg_error_set(err, MG_EIO, "cannot open directory %s: %s", dir,
		                    strerror(errno));
	int rc = 0;
	/* Some file systems cannot fsync a directory (EINVAL); there is nothing more to do there.
	 */
	if (fsync(fd) < 0 && errno != EINVAL && errno != ENOTSUP)
		rc =
		    mg_error_set(err, MG_EIO, "cannot sync directory %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}
