#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "spool.h"
#include "storebackend.h"

#define LOCK_FILE "lock"

/* Retries before reporting contention: the holder may not have written its name yet. */
#define LOCK_ATTEMPTS 10
#define LOCK_RETRY_NS (10 * 1000 * 1000)

struct mg_store {
	char *path;
	char *lock_path;
	char plan[64];
	int lock_fd; /* >= 0 while this handle holds the lock */
	/* its backend (storebackend.h): local_ops, this directory, or another */
	const mg_store_ops *ops;
	void *impl;
	char *spool;             /* spool.h: uploaded when the lock is taken; NULL: none */
	mg_spool_upload spooled; /* what that upload did */
};

static const mg_store_ops local_ops; /* the directory's, defined below */

/* Plan names become directory names: nothing that could climb out or hide. */
static int check_plan_name(const char *name, mg_error *err)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 63)
		return mg_error_set(
		    err, MG_EINVALID,
		    "invalid plan name \"%s\": must be 1 to 63 characters of a-z, 0-9 "
		    "and '-'",
		    name ? name : "");
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return mg_error_set(
			    err, MG_EINVALID,
			    "invalid plan name \"%s\": must be 1 to 63 characters of "
			    "a-z, 0-9 and '-'",
			    name);
	}
	return 0;
}

static int store_new(mg_store **out, const char *state_dir, const char *plan_name, mg_error *err)
{
	*out = NULL;
	int rc = check_plan_name(plan_name, err);
	if (rc < 0)
		return rc;
	if (!state_dir || !*state_dir)
		return mg_error_set(err, MG_EINVALID, "no state directory given for plan \"%s\"",
		                    plan_name);
	mg_store *s = calloc(1, sizeof(*s));
	if (!s)
		return mg_error_oom(err);
	s->lock_fd = -1;
	s->ops = &local_ops;
	s->impl = s;
	snprintf(s->plan, sizeof(s->plan), "%s", plan_name);
	if (asprintf(&s->path, "%s/%s", state_dir, plan_name) < 0) {
		s->path = NULL;
		mg_store_free(s);
		return mg_error_oom(err);
	}
	if (asprintf(&s->lock_path, "%s/" LOCK_FILE, s->path) < 0) {
		s->lock_path = NULL;
		mg_store_free(s);
		return mg_error_oom(err);
	}
	*out = s;
	return 0;
}

int mg_store_open(mg_store **out, const char *state_dir, const char *plan_name, mg_error *err)
{
	mg_store *s;
	*out = NULL;
	int rc = store_new(&s, state_dir, plan_name, err);
	if (rc < 0)
		return rc;
	rc = mg_fs_mkdirs(s->path, 0700, err);
	if (rc < 0) {
		mg_store_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int mg_store_open_existing(mg_store **out, const char *state_dir, const char *plan_name,
                           mg_error *err)
{
	mg_store *s;
	*out = NULL;
	int rc = store_new(&s, state_dir, plan_name, err);
	if (rc < 0)
		return rc;
	struct stat sb;
	if (stat(s->path, &sb) < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR)
			rc = mg_error_set(err, MG_ENOTFOUND,
			                  "plan \"%s\" has no state yet (%s does not exist)",
			                  plan_name, s->path);
		else
			rc = mg_error_set(err, MG_EIO, "cannot open %s: %s", s->path, strerror(e));
	} else if (!S_ISDIR(sb.st_mode)) {
		rc = mg_error_set(err, MG_EIO, "cannot open %s: not a directory", s->path);
	}
	if (rc < 0) {
		mg_store_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void mg_store_free(mg_store *store)
{
	if (!store)
		return;
	mg_store_unlock(store);
	store->ops->free(store->impl);
	free(store->path);
	free(store->lock_path);
	free(store->spool);
	free(store);
}

const char *mg_store_path(const mg_store *store)
{
	return store->path;
}

/* Parses the one-line holder record; 0 on success, -1 if it is missing, torn or foreign. */
static int parse_holder(mg_lock_holder *h, const char *buf, size_t len)
{
	memset(h, 0, sizeof(*h));
	json_t *doc = json_loadb(buf, len, 0, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return -1;
	}
	json_t *op = json_object_get(doc, "operator");
	json_t *pid = json_object_get(doc, "pid");
	json_t *since = json_object_get(doc, "since");
	json_t *cmd = json_object_get(doc, "command");
	int rc = -1;
	if (json_is_string(op) && json_is_integer(pid) && json_is_string(since) &&
	    json_is_string(cmd) && mg_time_parse(&h->since_ms, json_string_value(since)) == 0) {
		snprintf(h->operator_, sizeof(h->operator_), "%s", json_string_value(op));
		h->pid = (long)json_integer_value(pid);
		snprintf(h->command, sizeof(h->command), "%s", json_string_value(cmd));
		rc = 0;
	}
	json_decref(doc);
	return rc;
}

static int read_holder(mg_lock_holder *h, const char *lock_path)
{
	char *buf;
	size_t len;
	memset(h, 0, sizeof(*h));
	if (mg_fs_read_all(&buf, &len, lock_path, NULL) < 0)
		return -1;
	int rc = parse_holder(h, buf, len);
	free(buf);
	return rc;
}

static int write_holder(int fd, const char *command, mg_error *err, const char *lock_path)
{
	char op[256], since[40];
	mg_operator_id(op, sizeof(op));
	mg_time_format(since, sizeof(since), mg_now_ms());
	json_t *doc = json_pack("{s:s, s:I, s:s, s:s}", "operator", op, "pid", (json_int_t)getpid(),
	                        "since", since, "command", command);
	char *line = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!line)
		return mg_error_set(err, MG_ENOMEM, "out of memory writing %s", lock_path);

	size_t len = strlen(line);
	char *buf = realloc(line, len + 2);
	if (!buf) {
		free(line);
		return mg_error_set(err, MG_ENOMEM, "out of memory writing %s", lock_path);
	}
	buf[len++] = '\n';
	buf[len] = '\0';

	int rc = 0;
	if (ftruncate(fd, 0) < 0) {
		rc = mg_error_set(err, MG_EIO, "cannot write %s: %s", lock_path, strerror(errno));
		goto out;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = pwrite(fd, buf + off, len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = mg_error_set(err, MG_EIO, "cannot write %s: %s", lock_path,
			                  n < 0 ? strerror(errno) : "short write");
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		rc = mg_error_set(err, MG_EIO, "cannot sync %s: %s", lock_path, strerror(errno));
out:
	free(buf);
	return rc;
}

/*
 * Only the lock holder writes in the store, so once we hold it any temporary
 * file left by mg_fs_write_atomic (".<name>.tmp.<pid>.<n>") belongs to a
 * writer that died mid-save and nobody will ever rename it.
 */
static void remove_stale_temp_files(const mg_store *store)
{
	DIR *d = opendir(store->path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			mg_log(MG_LOG_DEBUG, "%s/%s: removed a temporary file left by a crash",
			       store->path, e->d_name);
	}
	closedir(d);
}

/* The host part of "user@host". */
static const char *host_of(const char *operator_id)
{
	const char *at = strrchr(operator_id, '@');
	return at ? at + 1 : operator_id;
}

static int local_lock(void *impl, const char *command, mg_error *err)
{
	mg_store *store = impl;
	if (store->lock_fd >= 0)
		return 0;
	int fd = open(store->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return mg_error_set(err, MG_EIO, "cannot open %s: %s", store->lock_path,
		                    strerror(errno));

	mg_lock_holder h;
	bool have_holder = false;
	for (int attempt = 0;; attempt++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e != EWOULDBLOCK) {
			close(fd);
			return mg_error_set(err, MG_EIO, "cannot lock %s: %s", store->lock_path,
			                    strerror(e));
		}
		/*
		 * A new holder writes its name just after taking the lock, and a probe
		 * holds a shared lock for an instant: look again shortly before
		 * giving up, so the operator gets a name rather than a false alarm.
		 */
		have_holder = read_holder(&h, store->lock_path) == 0;
		if (attempt + 1 >= LOCK_ATTEMPTS) {
			close(fd);
			if (!have_holder)
				return mg_error_set(
				    err, MG_ELOCKED,
				    "plan \"%s\" is locked by another migrate process "
				    "(%s does not say who); wait for it to finish",
				    store->plan, store->lock_path);
			char since[40];
			mg_time_format(since, sizeof(since), h.since_ms);
			/*
			 * An autopilot holds the lock for days and `pause` does not release
			 * it: "wait" alone would leave a deploy or release rollback stuck, so
			 * say what ends it.
			 */
			if (!strcmp(h.command, "run") && command && strcmp(command, "run"))
				return mg_error_set(
				    err, MG_ELOCKED,
				    "plan \"%s\" is locked by %s (pid %ld, running \"run\" since "
				    "%s): an autopilot is moving traffic and holds the plan until "
				    "it ends (`migrate pause` holds traffic but keeps the lock). "
				    "Wait for it to finish, or end it first: `migrate rollback` "
				    "stops it and moves traffic back to the VMs, or send SIGTERM "
				    "to pid %ld on %s; then run `migrate %s` again",
				    store->plan, h.operator_, h.pid, since, h.pid,
				    host_of(h.operator_), command);
			return mg_error_set(err, MG_ELOCKED,
			                    "plan \"%s\" is locked by %s (pid %ld, running \"%s\" "
			                    "since %s); wait for it to finish or ask them",
			                    store->plan, h.operator_, h.pid, h.command, since);
		}
		struct timespec ts = {0, LOCK_RETRY_NS};
		nanosleep(&ts, NULL);
	}

	int rc = write_holder(fd, command ? command : "", err, store->lock_path);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	store->lock_fd = fd;
	remove_stale_temp_files(store);
	return 0;
}

/*
 * mg_store_lock_preempt over a backend: the holder is told apart by the
 * probe (the same fields), and stopped only on this host, as for the
 * directory.
 */
static int request_write(mg_store *store, const char *name, const char *reason, mg_error *err);

static int preempt_remote(mg_store *store, const char *command, const char *preemptible,
                          int64_t wait_ms, mg_error *err)
{
	int rc = mg_store_lock(store, command, err);
	if (rc != MG_ELOCKED)
		return rc;
	mg_lock_holder h;
	bool held = false;
	mg_error tmp = MG_ERROR_INIT;
	int prc = mg_store_lock_probe(&held, &h, store, &tmp);
	mg_error_clear(&tmp);
	if (prc || !held || strcmp(h.command, preemptible) != 0 || h.pid <= 0)
		return rc;
	char me[256];
	mg_operator_id(me, sizeof(me));
	if (strcmp(host_of(me), host_of(h.operator_)) != 0)
		return mg_error_set(err, MG_ELOCKED,
		                    "plan \"%s\" is held by \"%s\" on another host (%s, pid %ld); "
		                    "stop it there first",
		                    store->plan, h.command, h.operator_, h.pid);
	mg_log(MG_LOG_WARN, "stopping \"%s\" (pid %ld, %s) so that %s can go ahead", h.command,
	       h.pid, h.operator_, command);
	if (kill((pid_t)h.pid, SIGTERM) != 0 && errno != ESRCH)
		return rc;
	/*
	 * Then a stop request: a leader-elected autopilot hands its Lease over on
	 * SIGTERM, and a standby must not take it before this command does (the
	 * hand-over's records and release take the leader a few requests; a
	 * standby looks for this before it contends). It halts them until the
	 * command is recorded and removes it. The signal came first, so the
	 * autopilot ends as stopped by SIGTERM, not by this request.
	 */
	char why[128];
	snprintf(why, sizeof(why), "`migrate %s` stopped the autopilot on this host", command);
	if (request_write(store, "stop", why, &tmp))
		mg_log(MG_LOG_WARN, "the stop request could not be left: %s", tmp.message);
	mg_error_clear(&tmp);
	int64_t deadline = mg_clock_ms() + wait_ms;
	for (;;) {
		mg_error_clear(err);
		rc = mg_store_lock(store, command, err);
		if (rc != MG_ELOCKED || mg_clock_ms() >= deadline)
			return rc;
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int local_lock_preempt(void *impl, const char *command, const char *preemptible,
                              int64_t wait_ms, mg_error *err)
{
	mg_store *store = impl;
	int rc = mg_store_lock(store, command, err);
	if (rc != MG_ELOCKED)
		return rc;
	mg_lock_holder h;
	if (read_holder(&h, store->lock_path) != 0 || strcmp(h.command, preemptible) != 0 ||
	    h.pid <= 0)
		return rc; /* a manual command mid-flight: that one is not ours to stop */
	char me[256];
	mg_operator_id(me, sizeof(me));
	if (strcmp(host_of(me), host_of(h.operator_)) != 0)
		return mg_error_set(err, MG_ELOCKED,
		                    "plan \"%s\" is held by \"%s\" on another host (%s, pid %ld); "
		                    "stop it there first",
		                    store->plan, h.command, h.operator_, h.pid);
	mg_log(MG_LOG_WARN, "stopping \"%s\" (pid %ld, %s) so that %s can go ahead", h.command,
	       h.pid, h.operator_, command);
	if (kill((pid_t)h.pid, SIGTERM) != 0 && errno != ESRCH)
		return mg_error_set(err, MG_ELOCKED, "cannot stop pid %ld (\"%s\"): %s", h.pid,
		                    h.command, strerror(errno));
	/* bounded: the holder finishes its current balancer call, then lets go */
	int64_t deadline = mg_now_ms() + wait_ms;
	for (;;) {
		mg_error tmp = MG_ERROR_INIT;
		rc = mg_store_lock(store, command, &tmp); /* itself retries for ~100 ms */
		mg_error_clear(&tmp);
		if (rc != MG_ELOCKED)
			return rc ? mg_store_lock(store, command, err) : 0;
		if (mg_now_ms() >= deadline)
			return mg_error_set(
			    err, MG_ELOCKED,
			    "\"%s\" (pid %ld) was asked to stop but still holds plan "
			    "\"%s\" after %lld ms",
			    h.command, h.pid, store->plan, (long long)wait_ms);
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static void local_unlock(void *impl)
{
	mg_store *store = impl;
	if (!store || store->lock_fd < 0)
		return;
	/* Clear our name first so nobody is told to ask a process that is gone. */
	if (ftruncate(store->lock_fd, 0) < 0)
		mg_log(MG_LOG_DEBUG, "%s: cannot clear the holder: %s", store->lock_path,
		       strerror(errno));
	close(store->lock_fd); /* releases the flock */
	store->lock_fd = -1;
}

static bool local_locked(const void *impl)
{
	const mg_store *store = impl;
	return store->lock_fd >= 0;
}

static int local_probe(void *impl, bool *out_held, mg_lock_holder *holder, mg_error *err)
{
	mg_store *store = impl;
	if (store->lock_fd >= 0)
		return 0; /* held, but by us: nobody else can be */

	/* Read-only so that probing (`status`) never creates the lock file. */
	int fd = open(store->lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return mg_error_set(err, MG_EIO, "cannot open %s: %s", store->lock_path,
		                    strerror(errno));
	}
	int rc;
	while ((rc = flock(fd, LOCK_SH | LOCK_NB)) < 0 && errno == EINTR)
		;
	if (rc == 0) {
		close(fd); /* drops the shared lock at once */
		return 0;
	}
	if (errno != EWOULDBLOCK) {
		int e = errno;
		close(fd);
		return mg_error_set(err, MG_EIO, "cannot probe %s: %s", store->lock_path,
		                    strerror(e));
	}
	close(fd);
	*out_held = true;
	if (holder) {
		mg_lock_holder h;
		/* The holder may be between taking the lock and writing its name. */
		for (int attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
			if (read_holder(&h, store->lock_path) == 0) {
				*holder = h;
				break;
			}
			struct timespec ts = {0, LOCK_RETRY_NS};
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

void mg_operator_id(char *buf, size_t size)
{
	const char *user = NULL;
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res && res->pw_name &&
	    *res->pw_name)
		user = res->pw_name;
	if (!user) {
		user = getenv("USER");
		if (!user || !*user)
			user = "unknown";
	}

	char host[256];
	if (gethostname(host, sizeof(host)) < 0 || !*host) {
		snprintf(host, sizeof(host), "unknown");
	} else {
		host[sizeof(host) - 1] = '\0';
		char *dot = strchr(host, '.');
		if (dot && dot != host)
			*dot = '\0';
	}
	snprintf(buf, size, "%s@%s", user, host);
}

/* Reads exactly n digits; -1 if any is missing. */
static int digits(const char **p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	return v;
}

static int days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return month == 2 && leap ? 29 : days[month - 1];
}

int mg_time_parse(int64_t *out_ms, const char *s)
{
	if (!s)
		return MG_EINVALID;
	const char *p = s;
	int year = digits(&p, 4);
	if (year < 0 || *p++ != '-')
		return MG_EINVALID;
	int mon = digits(&p, 2);
	if (mon < 1 || mon > 12 || *p++ != '-')
		return MG_EINVALID;
	int day = digits(&p, 2);
	if (day < 1 || day > days_in_month(year, mon) || (*p != 'T' && *p != 't'))
		return MG_EINVALID;
	p++;
	int hour = digits(&p, 2);
	if (hour < 0 || hour > 23 || *p++ != ':')
		return MG_EINVALID;
	int min = digits(&p, 2);
	if (min < 0 || min > 59 || *p++ != ':')
		return MG_EINVALID;
	int sec = digits(&p, 2);
	if (sec < 0 || sec > 60) /* 60: a leap second */
		return MG_EINVALID;

	int64_t frac_ms = 0;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return MG_EINVALID;
		/* Keep milliseconds; finer digits are accepted and dropped. */
		int scale = 100;
		for (; *p >= '0' && *p <= '9'; p++) {
			frac_ms += (*p - '0') * scale;
			scale /= 10;
		}
	}

	int64_t offset_s = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;
		int oh = digits(&p, 2);
		if (oh < 0 || oh > 23 || *p++ != ':')
			return MG_EINVALID;
		int om = digits(&p, 2);
		if (om < 0 || om > 59)
			return MG_EINVALID;
		offset_s = sign * (oh * 3600 + om * 60);
	} else {
		return MG_EINVALID;
	}
	if (*p)
		return MG_EINVALID;

	struct tm tm = {0};
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	errno = 0;
	time_t t = timegm(&tm);
	if (t == (time_t)-1 && errno)
		return MG_EINVALID;
	*out_ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
	return 0;
}

/* ---- the directory's documents: the request files (state.c and the others read theirs) ---- */

static int local_doc_path(char *buf, size_t size, const mg_store *store, const char *name,
                          mg_error *err)
{
	int n = snprintf(buf, size, "%s/%s", store->path, name);
	if (strchr(name, '/') || n < 0 || (size_t)n >= size)
		return mg_error_set(err, MG_EINVALID, "no document \"%s\" in %s", name,
		                    store->path);
	return 0;
}

static int local_doc_read(void *impl, const char *name, char **text, size_t *len, char **version,
                          mg_error *err)
{
	char path[PATH_MAX + 8];
	*version = NULL;
	int rc = local_doc_path(path, sizeof(path), impl, name, err);
	return rc ? rc : mg_fs_read_all(text, len, path, err);
}

/* Atomically; no versions here: the flock and state.json's revision guard the directory. */
static int local_doc_write(void *impl, const char *name, const char *text, size_t len,
                           const char *version, bool fenced, mg_error *err)
{
	(void)version;
	(void)fenced;
	char path[PATH_MAX + 8];
	int rc = local_doc_path(path, sizeof(path), impl, name, err);
	return rc ? rc : mg_fs_write_atomic(path, text, len, 0600, err);
}

static int local_doc_remove(void *impl, const char *name, mg_error *err)
{
	mg_store *store = impl;
	char path[PATH_MAX + 8];
	int rc = local_doc_path(path, sizeof(path), store, name, err);
	if (rc)
		return rc;
	if (unlink(path) != 0 && errno != ENOENT)
		return mg_error_set(err, MG_EIO, "cannot remove %s: %s", path, strerror(errno));
	return mg_fs_sync_dir(store->path, err);
}

static int local_keepalive(void *impl, mg_error *err)
{
	(void)impl;
	(void)err;
	return 0; /* flock lasts as long as the process: nothing to renew */
}

static void local_free(void *impl)
{
	(void)impl; /* the directory's fields are the mg_store's own: mg_store_free frees them */
}

/*
 * The state directory as a backend. Its journal and its state, fleet and
 * manifest files are read and written by journal.c, state.c and records.c
 * themselves (torn lines, revisions, paths in messages), so those ops are
 * NULL here; mg_store_remote tells them apart.
 */
static const mg_store_ops local_ops = {
    .lock = local_lock,
    .lock_preempt = local_lock_preempt,
    .unlock = local_unlock,
    .locked = local_locked,
    .probe = local_probe,
    .keepalive = local_keepalive,
    .doc_read = local_doc_read,
    .doc_write = local_doc_write,
    .doc_remove = local_doc_remove,
    .free = local_free,
};

/* ---- through the ops: every backend ---- */

int mg_store_lock(mg_store *store, const char *command, mg_error *err)
{
	bool had = store->ops->locked(store->impl);
	int rc = store->ops->lock(store->impl, command, err);
	/* a rollback moves traffic first and uploads after its own record */
	if (!rc && !had && store->spool && !(command && !strcmp(command, "rollback")))
		mg_store_spool_flush(store);
	return rc;
}

int mg_store_spool_set(mg_store *store, const char *dir, mg_error *err)
{
	free(store->spool);
	store->spool = dir ? strdup(dir) : NULL;
	return dir && !store->spool ? mg_error_oom(err) : 0;
}

const char *mg_store_spool_dir(const mg_store *store)
{
	return store ? store->spool : NULL;
}

const mg_spool_upload *mg_store_spool_result(const mg_store *store)
{
	return &store->spooled;
}

void mg_store_spool_flush(mg_store *store)
{
	if (!store || !store->spool || !store->ops->locked(store->impl) ||
	    !mg_spool_count(store->spool))
		return;
	mg_spool_upload up;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_spool_upload_all(&up, store, store->spool, &err);
	store->spooled.uploaded += up.uploaded;
	store->spooled.applied += up.applied;
	store->spooled.not_applied += up.not_applied;
	store->spooled.left = up.left;
	if (up.uploaded || up.applied || up.not_applied)
		mg_log(MG_LOG_WARN,
		       "uploaded %zu record%s from the local spool %s to %s (%zu state change%s "
		       "applied, %zu left out: the state had moved since)%s",
		       up.uploaded, up.uploaded == 1 ? "" : "s", store->spool, store->path,
		       up.applied, up.applied == 1 ? "" : "s", up.not_applied,
		       up.left ? "; more are left for the next command" : "");
	if (rc)
		mg_log(MG_LOG_WARN, "the local spool %s was not all uploaded (%zu left): %s",
		       store->spool, up.left, err.message);
	mg_error_clear(&err);
}

int mg_store_lock_preempt(mg_store *store, const char *command, const char *preemptible,
                          int64_t wait_ms, mg_error *err)
{
	if (store->ops->lock_preempt)
		return store->ops->lock_preempt(store->impl, command, preemptible, wait_ms, err);
	return preempt_remote(store, command, preemptible, wait_ms, err);
}

void mg_store_unlock(mg_store *store)
{
	if (store)
		store->ops->unlock(store->impl);
}

bool mg_store_locked(const mg_store *store)
{
	return store && store->ops->locked(store->impl);
}

int mg_store_lock_probe(bool *out_held, mg_lock_holder *holder, mg_store *store, mg_error *err)
{
	*out_held = false;
	mg_lock_holder h = {0};
	int rc = store->ops->probe(store->impl, out_held, &h, err);
	if (holder)
		*holder = h;
	return rc;
}

/* The pause request and the resume note share one format: who, why, since when. */
static int request_write(mg_store *store, const char *name, const char *reason, mg_error *err)
{
	char op[256], since[40];
	mg_operator_id(op, sizeof(op));
	mg_time_format(since, sizeof(since), mg_now_ms());
	json_t *doc = json_pack("{s:s, s:s, s:s}", "operator", op, "reason", reason ? reason : "",
	                        "since", since);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return mg_error_oom(err);
	/* no lock and no version: a request is left beside whoever holds the plan */
	int rc = store->ops->doc_write(store->impl, name, text, strlen(text), NULL, false, err);
	free(text);
	return rc;
}

static int request_read(bool *present, mg_pause_request *out, mg_store *store, const char *name,
                        mg_error *err)
{
	memset(out, 0, sizeof(*out));
	*present = false;
	char *buf = NULL, *version = NULL;
	size_t len = 0;
	int rc = store->ops->doc_read(store->impl, name, &buf, &len, &version, err);
	free(version);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	*present = true;
	/* a file someone wrote by hand still counts: the content only says who asked */
	json_t *doc = json_loadb(buf, len, 0, NULL);
	free(buf);
	const char *op = NULL, *why = NULL, *since = NULL;
	if (json_unpack(doc, "{s?s, s?s, s?s}", "operator", &op, "reason", &why, "since", &since) ==
	    0) {
		snprintf(out->operator_, sizeof(out->operator_), "%s", op ? op : "");
		snprintf(out->reason, sizeof(out->reason), "%s", why ? why : "");
		if (since)
			mg_time_parse(&out->since_ms, since);
	}
	json_decref(doc);
	return 0;
}

static int request_remove(mg_store *store, const char *name, mg_error *err)
{
	return store->ops->doc_remove(store->impl, name, err);
}

int mg_store_pause_write(mg_store *store, const char *reason, mg_error *err)
{
	/* a resume note left from an earlier hold must not be read as this one's */
	int rc = request_remove(store, "resume", err);
	return rc ? rc : request_write(store, "pause", reason, err);
}

int mg_store_pause_read(bool *present, mg_pause_request *out, mg_store *store, mg_error *err)
{
	return request_read(present, out, store, "pause", err);
}

int mg_store_pause_remove(mg_store *store, mg_error *err)
{
	return request_remove(store, "pause", err);
}

int mg_store_resume_write(mg_store *store, const char *reason, mg_error *err)
{
	return request_write(store, "resume", reason, err);
}

int mg_store_resume_take(bool *present, mg_pause_request *out, mg_store *store, mg_error *err)
{
	int rc = request_read(present, out, store, "resume", err);
	if (!rc && *present)
		rc = request_remove(store, "resume", err);
	return rc;
}

int mg_store_stop_write(mg_store *store, const char *reason, mg_error *err)
{
	return request_write(store, "stop", reason, err);
}

int mg_store_stop_take(bool *present, mg_pause_request *out, mg_store *store, mg_error *err)
{
	int rc = request_read(present, out, store, "stop", err);
	if (!rc && *present)
		rc = request_remove(store, "stop", err);
	return rc;
}

int mg_store_stop_read(bool *present, mg_pause_request *out, mg_store *store, mg_error *err)
{
	return request_read(present, out, store, "stop", err);
}

int mg_store_stop_remove(mg_store *store, mg_error *err)
{
	return request_remove(store, "stop", err);
}

/* ---- other backends (storebackend.h) ---- */

int mg_store_open_backend(mg_store **out, const mg_store_ops *ops, void *impl,
                          const char *plan_name, const char *where, mg_error *err)
{
	*out = NULL;
	int rc = check_plan_name(plan_name, err);
	mg_store *s = rc ? NULL : calloc(1, sizeof(*s));
	if (!rc && (!s || !(s->path = strdup(where ? where : plan_name)))) {
		free(s);
		s = NULL;
		rc = mg_error_oom(err);
	}
	if (rc) {
		ops->free(impl);
		return rc;
	}
	s->lock_fd = -1;
	snprintf(s->plan, sizeof(s->plan), "%s", plan_name);
	s->ops = ops;
	s->impl = impl;
	*out = s;
	return 0;
}

bool mg_store_remote(const mg_store *store)
{
	return store->ops != &local_ops;
}

const char *mg_store_plan(const mg_store *store)
{
	return store->plan;
}

int mg_store_keepalive(mg_store *store, mg_error *err)
{
	if (!store || !store->ops->locked(store->impl))
		return 0;
	return store->ops->keepalive(store->impl, err);
}

static int local_store(const mg_store *store, mg_error *err)
{
	return mg_error_set(err, MG_EINVALID,
	                    "%s is a state directory: its files are read directly (a bug in "
	                    "migrate)",
	                    store->path);
}

int mg_store_doc_read(mg_store *store, const char *name, char **text, size_t *len, char **version,
                      mg_error *err)
{
	*text = *version = NULL;
	*len = 0;
	if (!mg_store_remote(store))
		return local_store(store, err);
	return store->ops->doc_read(store->impl, name, text, len, version, err);
}

int mg_store_doc_write(mg_store *store, const char *name, const char *text, size_t len,
                       const char *version, bool fenced, mg_error *err)
{
	if (!mg_store_remote(store))
		return local_store(store, err);
	return store->ops->doc_write(store->impl, name, text, len, version, fenced, err);
}

int mg_store_doc_remove(mg_store *store, const char *name, mg_error *err)
{
	if (!mg_store_remote(store))
		return local_store(store, err);
	return store->ops->doc_remove(store->impl, name, err);
}

int mg_store_journal_append_record(mg_store *store, json_t *record, mg_error *err)
{
	if (!mg_store_remote(store))
		return local_store(store, err);
	return store->ops->journal_append(store->impl, record, err);
}

int mg_store_journal_append_records(mg_store *store, json_t *records, mg_error *err)
{
	if (!mg_store_remote(store))
		return local_store(store, err);
	if (store->ops->journal_append_many)
		return store->ops->journal_append_many(store->impl, records, err);
	size_t i;
	json_t *r;
	json_array_foreach(records, i, r)
	{
		int rc = store->ops->journal_append(store->impl, r, err);
		if (rc)
			return rc;
	}
	return 0;
}

int mg_store_journal_each_remote(mg_store *store, const mg_journal_query *q, mg_journal_fn fn,
                                 void *ud, size_t *out_skipped, mg_error *err)
{
	if (!mg_store_remote(store))
		return local_store(store, err);
	return store->ops->journal_each(store->impl, q, fn, ud, out_skipped, err);
}
