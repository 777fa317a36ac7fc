#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"

#define JOURNAL_FILE "journal.jsonl"

static char *journal_path(const mg_store *store)
{
	char *p;
	if (asprintf(&p, "%s/" JOURNAL_FILE, mg_store_path(store)) < 0)
		return NULL;
	return p;
}

/* The seq of a line that is a complete record, or 0. */
static json_int_t line_seq(const char *line, size_t len)
{
	json_t *doc = json_loadb(line, len, 0, NULL);
	json_t *seq = json_object_get(doc, "seq");
	json_int_t v =
	    json_is_integer(seq) && json_integer_value(seq) > 0 ? json_integer_value(seq) : 0;
	json_decref(doc);
	return v;
}

static ssize_t pread_all(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/*
 * Finds the seq of the last complete record and whether the file ends with a
 * newline, reading backwards from the end in growing windows so that a long
 * journal costs one small read.
 */
static int scan_tail(json_int_t *last_seq, bool *ends_with_newline, const char *path, off_t size,
                     mg_error *err)
{
	*last_seq = 0;
	*ends_with_newline = true;
	if (size == 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));

	int rc = 0;
	char *buf = NULL;
	for (off_t window = 4096;; window *= 2) {
		if (window > size)
			window = size;
		off_t start = size - window;
		char *nb = realloc(buf, (size_t)window);
		if (!nb) {
			rc = mg_error_set(err, MG_ENOMEM, "out of memory reading %s", path);
			break;
		}
		buf = nb;
		ssize_t n = pread_all(fd, buf, (size_t)window, start);
		if (n < 0) {
			rc = mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));
			break;
		}
		size_t len = (size_t)n;
		if (len > 0)
			*ends_with_newline = buf[len - 1] == '\n';

		/* Walk lines from the end; the first one is cut unless the window starts the file.
		 */
		size_t end = len;
		while (end > 0) {
			size_t begin = end;
			while (begin > 0 && buf[begin - 1] != '\n')
				begin--;
			if (begin == 0 && start > 0)
				break;
			json_int_t seq = line_seq(buf + begin, end - begin);
			if (seq > 0) {
				*last_seq = seq;
				goto out;
			}
			end = begin > 0 ? begin - 1 : 0;
		}
		if (start == 0)
			break;
	}
out:
	free(buf);
	close(fd);
	return rc;
}

/* Opens for appending; *created says the file is new, so its directory entry needs an fsync. */
static int open_journal(int *out_fd, bool *created, const char *path, mg_error *err)
{
	*created = false;
	for (;;) {
		int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			*out_fd = fd;
			return 0;
		}
		if (errno != ENOENT)
			break;
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		          0600);
		if (fd >= 0) {
			*out_fd = fd;
			*created = true;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	return mg_error_set(err, MG_EIO, "cannot open %s: %s", path, strerror(errno));
}

static char *format_record(json_int_t seq, const mg_journal_entry *e)
{
	char now[40], op[256];
	mg_time_format(now, sizeof(now), mg_now_ms());
	mg_operator_id(op, sizeof(op));
	/* Every key is always there, null when absent, so readers need no special cases. */
	json_t *rec = json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:O?, s:O?, s:s?, s:O?}", "seq",
	                        seq, "time", now, "operator", op, "pid", (json_int_t)getpid(),
	                        "command", e->command, "action", e->action, "before", e->before,
	                        "after", e->after, "reason", e->reason, "evidence", e->evidence);
	if (!rec)
		return NULL;
	/* Compact output escapes control characters, so the record cannot span lines. */
	char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(rec);
	return line;
}

int mg_journal_append(mg_store *store, const mg_journal_entry *entry, mg_error *err)
{
	if (!mg_store_locked(store))
		return mg_error_set(err, MG_ERROR,
		                    "refusing to append to %s/" JOURNAL_FILE
		                    " without holding the plan's lock (a bug in migrate)",
		                    mg_store_path(store));
	if (!entry || !entry->command || !entry->action)
		return mg_error_set(err, MG_EINVALID,
		                    "a journal record needs a command and an action");

	char *path = journal_path(store);
	if (!path)
		return mg_error_set(err, MG_ENOMEM, "out of memory");

	int fd = -1;
	bool created = false;
	char *line = NULL, *buf = NULL;
	int rc = open_journal(&fd, &created, path, err);
	if (rc < 0)
		goto out;

	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		rc = mg_error_set(err, MG_EIO, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	json_int_t last;
	bool ends_nl;
	rc = scan_tail(&last, &ends_nl, path, sb.st_size, err);
	if (rc < 0)
		goto out;

	line = format_record(last + 1, entry);
	if (!line) {
		rc = mg_error_set(err, MG_EINVALID,
		                  "cannot record %s/%s in %s: a field is not valid UTF-8 JSON",
		                  entry->command, entry->action, path);
		goto out;
	}
	size_t line_len = strlen(line);
	if (memchr(line, '\n', line_len)) {
		rc = mg_error_set(err, MG_ERROR, "cannot record in %s: the record has a newline",
		                  path);
		goto out;
	}

	/* A torn tail from a crash gets its own line ended, so this record parses on its own. */
	size_t len = 0;
	buf = malloc(line_len + 2);
	if (!buf) {
		rc = mg_error_set(err, MG_ENOMEM, "out of memory");
		goto out;
	}
	if (!ends_nl)
		buf[len++] = '\n';
	memcpy(buf + len, line, line_len);
	len += line_len;
	buf[len++] = '\n';

	/*
	 * One write, so readers never see half a record; a short write (disk full)
	 * is finished with more writes, and a crash in between leaves a torn line
	 * that readers skip and the next append ends.
	 */
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = mg_error_set(err, MG_EIO, "cannot append to %s: %s", path,
			                  n < 0 ? strerror(errno) : "short write");
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		rc = mg_error_set(err, MG_EIO, "cannot sync %s: %s", path, strerror(errno));
		goto out;
	}
	if (created)
		rc = mg_fs_sync_dir(mg_store_path(store), err);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(line);
	free(path);
	return rc;
}

int mg_journal_read(json_t **out, size_t *out_skipped, mg_store *store, size_t limit, mg_error *err)
{
	*out = NULL;
	if (out_skipped)
		*out_skipped = 0;
	char *path = journal_path(store);
	if (!path)
		return mg_error_set(err, MG_ENOMEM, "out of memory");

	char *data;
	size_t size;
	mg_error read_err = MG_ERROR_INIT;
	int rc = mg_fs_read_all(&data, &size, path, &read_err);
	if (rc == MG_ENOTFOUND) {
		/* No journal yet is an empty history, not an error. */
		data = NULL;
		size = 0;
	} else if (rc < 0) {
		free(path);
		return mg_error_set(err, rc, "%s", read_err.message);
	}

	json_t *all = json_array();
	if (!all) {
		free(data);
		free(path);
		return mg_error_set(err, MG_ENOMEM, "out of memory");
	}
	size_t skipped = 0, lineno = 0;
	for (size_t pos = 0; pos < size;) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - line) : size - pos;
		pos += len + (nl ? 1 : 0);
		lineno++;

		json_error_t jerr;
		json_t *rec = json_loadb(line, len, 0, &jerr);
		if (!json_is_object(rec)) {
			mg_log(MG_LOG_WARN, "%s:%zu: %s; torn or corrupt journal record ignored",
			       path, lineno, rec ? "not a JSON object" : jerr.text);
			json_decref(rec);
			skipped++;
			continue;
		}
		if (json_array_append_new(all, rec) < 0) {
			json_decref(all);
			free(data);
			free(path);
			return mg_error_set(err, MG_ENOMEM, "out of memory");
		}
	}
	free(data);
	free(path);

	size_t n = json_array_size(all);
	if (limit > 0 && n > limit) {
		json_t *tail = json_array();
		for (size_t i = n - limit; tail && i < n; i++) {
			if (json_array_append(tail, json_array_get(all, i)) < 0) {
				json_decref(tail);
				tail = NULL;
			}
		}
		json_decref(all);
		if (!tail)
			return mg_error_set(err, MG_ENOMEM, "out of memory");
		all = tail;
	}
	*out = all;
	if (out_skipped)
		*out_skipped = skipped;
	return 0;
}
