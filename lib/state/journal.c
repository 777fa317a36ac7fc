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
#include "secret.h"
#include "storebackend.h"

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

static json_t *record_new(json_t *seq, const mg_journal_entry *e)
{
	char now[40], op[256];
	mg_time_format(now, sizeof(now), mg_now_ms());
	mg_operator_id(op, sizeof(op));
	/* Every key is always there, null when absent, so readers need no special cases. */
	return json_pack("{s:o, s:s, s:s, s:I, s:s, s:s, s:O?, s:O?, s:s?, s:O?}", "seq", seq,
	                 "time", now, "operator", op, "pid", (json_int_t)getpid(), "command",
	                 e->command, "action", e->action, "before", e->before, "after", e->after,
	                 "reason", e->reason, "evidence", e->evidence);
}

json_t *mg_journal_record(const mg_journal_entry *entry)
{
	return entry && entry->command && entry->action ? record_new(json_null(), entry) : NULL;
}

static char *format_record(json_int_t seq, const mg_journal_entry *e)
{
	json_t *rec = record_new(json_integer(seq), e);
	if (!rec)
		return NULL;
	/* the last line of defence; before/after/evidence are the caller's: scrub a copy */
	json_t *clean = json_deep_copy(rec);
	json_decref(rec);
	if (!clean)
		return NULL;
	rec = clean;
	mg_scrub_json(rec);
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
	if (mg_store_remote(store)) {
		/* the backend numbers it; scrubbed here, as a line of the file is */
		json_t *rec = record_new(json_null(), entry);
		json_t *clean = rec ? json_deep_copy(rec) : NULL;
		json_decref(rec);
		if (!clean)
			return mg_error_set(
			    err, MG_EINVALID,
			    "cannot record %s/%s in %s: a field is not valid UTF-8 JSON",
			    entry->command, entry->action, mg_store_path(store));
		mg_scrub_json(clean);
		int rc = mg_store_journal_append_record(store, clean, err);
		json_decref(clean);
		return rc;
	}

	char *path = journal_path(store);
	if (!path)
		return mg_error_oom(err);

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
		rc = mg_error_oom(err);
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

/* The 1-based number of the line that starts at off: counted only for a warning. */
static size_t line_number_at(int fd, off_t off)
{
	char buf[65536];
	size_t lines = 1;
	for (off_t pos = 0; pos < off;) {
		size_t want = off - pos < (off_t)sizeof(buf) ? (size_t)(off - pos) : sizeof(buf);
		ssize_t n = pread_all(fd, buf, want, pos);
		if (n <= 0)
			break;
		for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))); p++)
			lines++;
		pos += n;
	}
	return lines;
}

typedef struct {
	const mg_journal_query *q;
	const char *path;
	size_t skipped;
} reader;

/*
 * The record in one line, or NULL: a line that is not a JSON object is
 * skipped with a warning (lineno is only called then), and *older is set for
 * a record written before q->since_ms. A record without a readable time is
 * kept: a reader cannot tell it is old.
 */
static json_t *parse_line(reader *r, const char *line, size_t len, bool *older,
                          size_t (*lineno)(void *), void *lineno_ud)
{
	*older = false;
	json_error_t jerr;
	json_t *rec = json_loadb(line, len, 0, &jerr);
	if (!json_is_object(rec)) {
		mg_log(MG_LOG_WARN, "%s:%zu: %s; torn or corrupt journal record ignored", r->path,
		       lineno(lineno_ud), rec ? "not a JSON object" : jerr.text);
		json_decref(rec);
		r->skipped++;
		return NULL;
	}
	int64_t t;
	if (r->q->since_ms && json_is_string(json_object_get(rec, "time")) &&
	    mg_time_parse(&t, json_string_value(json_object_get(rec, "time"))) == 0 &&
	    t < r->q->since_ms) {
		*older = true;
		json_decref(rec);
		return NULL;
	}
	return rec;
}

static size_t counted_line(void *ud)
{
	return *(size_t *)ud;
}

/* Oldest first from the start, one line in memory at a time. */
static int each_forward(reader *r, int fd, mg_journal_fn fn, void *ud, mg_error *err)
{
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", r->path);
	}
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int rc = 0;
	while (!rc && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		size_t len = (size_t)n;
		if (len && line[len - 1] == '\n')
			len--;
		bool older;
		json_t *rec = parse_line(r, line, len, &older, counted_line, &lineno);
		if (rec)
			rc = fn(rec, ud, err);
		json_decref(rec);
	}
	if (!rc && ferror(f))
		rc = mg_error_set(err, MG_EIO, "cannot read %s: %s", r->path, strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

typedef struct {
	int fd;
	off_t off;
} line_at;

static size_t backward_line(void *ud)
{
	const line_at *a = ud;
	return line_number_at(a->fd, a->off);
}

/*
 * The newest q->limit records, reading backwards from the end in blocks: the
 * cost is the records wanted (and the longest of their lines), not the
 * journal's length. Stops early at the first record older than q->since_ms.
 */
static int each_backward(reader *r, int fd, off_t size, mg_journal_fn fn, void *ud, mg_error *err)
{
	enum { BLOCK = 65536 };
	json_t *newest_first = json_array();
	char *data = NULL; /* the block just read, then the start of a line cut by it */
	size_t carry = 0;  /* bytes at the end of data that belong to the line after the block */
	bool done = false;
	int rc = 0;
	if (!newest_first)
		rc = mg_error_set(err, MG_ENOMEM, "out of memory reading %s", r->path);
	for (off_t pos = size; !rc && !done && pos > 0;) {
		size_t n = pos < BLOCK ? (size_t)pos : BLOCK;
		pos -= (off_t)n;
		char *nd = malloc(n + carry);
		if (!nd) {
			rc = mg_error_set(err, MG_ENOMEM, "out of memory reading %s", r->path);
			break;
		}
		if (carry)
			memcpy(nd + n, data, carry);
		free(data);
		data = nd;
		if (pread_all(fd, data, n, pos) != (ssize_t)n) {
			rc = mg_error_set(err, MG_EIO, "cannot read %s: %s", r->path,
			                  errno ? strerror(errno) : "the file shrank");
			break;
		}
		size_t len = n + carry, end = len;
		/* the part after the file's last newline is empty, not a torn line */
		if (pos + (off_t)len == size && len && data[len - 1] == '\n')
			end = len - 1;
		for (;;) {
			size_t begin = end;
			while (begin > 0 && data[begin - 1] != '\n')
				begin--;
			if (begin == 0 && pos > 0)
				break; /* the line starts in an earlier block */
			line_at at = {fd, pos + (off_t)begin};
			bool older;
			json_t *rec =
			    parse_line(r, data + begin, end - begin, &older, backward_line, &at);
			if (older) {
				done = true;
				break;
			}
			if (rec && json_array_append_new(newest_first, rec) < 0) {
				rc = mg_error_set(err, MG_ENOMEM, "out of memory reading %s",
				                  r->path);
				break;
			}
			if (json_array_size(newest_first) >= r->q->limit || begin == 0) {
				done = true;
				break;
			}
			end = begin - 1;
		}
		/* keep the unfinished line's start for the next (earlier) block */
		carry = end;
		if (carry && !done) {
			char *kept = malloc(carry);
			if (!kept) {
				rc = mg_error_set(err, MG_ENOMEM, "out of memory reading %s",
				                  r->path);
				break;
			}
			memcpy(kept, data, carry);
			free(data);
			data = kept;
		}
	}
	free(data);
	close(fd);
	for (size_t i = json_array_size(newest_first); !rc && i > 0; i--)
		rc = fn(json_array_get(newest_first, i - 1), ud, err);
	json_decref(newest_first);
	return rc;
}

int mg_journal_each(mg_store *store, const mg_journal_query *q, mg_journal_fn fn, void *ud,
                    size_t *out_skipped, mg_error *err)
{
	static const mg_journal_query all = {0};
	if (out_skipped)
		*out_skipped = 0;
	if (mg_store_remote(store))
		return mg_store_journal_each_remote(store, q ? q : &all, fn, ud, out_skipped, err);
	reader r = {.q = q ? q : &all};
	char *path = journal_path(store);
	if (!path)
		return mg_error_oom(err);
	r.path = path;
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat sb;
	if (fd < 0) {
		/* No journal yet is an empty history, not an error. */
		if (errno != ENOENT)
			rc = mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));
	} else if (fstat(fd, &sb) < 0) {
		rc = mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));
		close(fd);
	} else if (!S_ISREG(sb.st_mode)) {
		rc = mg_error_set(err, MG_EIO, "cannot read %s: not a regular file", path);
		close(fd);
	} else if (r.q->limit) {
		rc = each_backward(&r, fd, sb.st_size, fn, ud, err);
	} else {
		rc = each_forward(&r, fd, fn, ud, err);
	}
	if (out_skipped)
		*out_skipped = r.skipped;
	free(path);
	return rc;
}

static int collect(json_t *record, void *ud, mg_error *err)
{
	if (json_array_append(ud, record) < 0)
		return mg_error_oom(err);
	return 0;
}

int mg_journal_read(json_t **out, size_t *out_skipped, mg_store *store, size_t limit, mg_error *err)
{
	json_t *all = json_array();
	if (!all)
		return mg_error_oom(err);
	mg_journal_query q = {.limit = limit};
	int rc = mg_journal_each(store, &q, collect, all, out_skipped, err);
	if (rc) {
		json_decref(all);
		all = NULL;
	}
	*out = all;
	return rc;
}
