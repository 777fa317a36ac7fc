/*
 * The journal of a store in the cluster (lib/kubestore.h): records in
 * ConfigMaps migrate-<plan>-journal-000001, -000002, ..., one JSON record a
 * line under the key journal.jsonl, as journal.jsonl holds them on disk.
 *
 * A chunk grows by compare-and-swap updates until the next record would take
 * it past CHUNK_MAX; that record starts the next chunk, created (never
 * replaced: 409 AlreadyExists means another writer made it, and it is read
 * again). The newest chunk is labelled migrate.dev/open=true, so an append
 * finds it with one list; the one before is relabelled after its successor
 * exists, so there is never a moment without an open chunk (two, for an
 * instant: the higher wins). seq runs on across chunks: a new chunk's first
 * record follows the previous chunk's last.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "internal.h"
#include "log.h"
#include "store.h"

static void chunk_name(char *buf, size_t size, const kstore *k, long n)
{
	snprintf(buf, size, "%s-journal-%06ld", k->prefix, n);
}

/* The chunk number of a ConfigMap of ours, 0 when the name is not a chunk's. */
static long chunk_number(const kstore *k, const char *name)
{
	char head[120];
	snprintf(head, sizeof(head), "%s-journal-", k->prefix);
	size_t n = strlen(head);
	if (!name || strncmp(name, head, n) || strlen(name + n) != 6)
		return 0;
	char *end;
	long v = strtol(name + n, &end, 10);
	return *end || v < 1 ? 0 : v;
}

static const char *chunk_data(const json_t *o)
{
	const char *s = json_string_value(json_object_get(json_object_get(o, "data"), JOURNAL_KEY));
	return s ? s : "";
}

/* GET chunk n: 0 with *out, MG_ENOTFOUND (err cleared) when there is none. */
static int chunk_get(json_t **out, kstore *k, long n, mg_error *err)
{
	*out = NULL;
	char name[160];
	chunk_name(name, sizeof(name), k, n);
	char *path = mg_kube_store_path(k, name);
	if (!path)
		return mg_error_oom(err);
	int rc = mg_kube_get(k->c, path, NULL, out, err);
	free(path);
	if (rc == MG_ENOTFOUND)
		mg_error_clear(err);
	return rc;
}

/*
 * The newest chunk (*obj, a new reference) and its number; *n 0 when the
 * plan has no journal yet.
 */
static int newest(json_t **obj, long *n, kstore *k, mg_error *err)
{
	*obj = NULL;
	*n = 0;
	char sel[300];
	snprintf(sel, sizeof(sel), LABEL_PLAN "=%s," LABEL_KIND "=journal," LABEL_OPEN "=true",
	         k->plan);
	json_t *items = NULL;
	int rc = mg_kube_list(k->c, k->collection, sel, &items, err);
	if (rc)
		return rc;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
	{
		long v = chunk_number(k, mg_kube_store_meta(it, NULL, "name"));
		if (v > *n) {
			*n = v;
			json_decref(*obj);
			*obj = json_incref(it);
		}
	}
	json_decref(items);
	if (*n)
		return 0;
	/* none open: no journal, or one whose open chunk lost its label by hand: walk it */
	for (long v = 1; v < CHUNKS_MAX; v++) {
		json_t *o;
		rc = chunk_get(&o, k, v, err);
		if (rc == MG_ENOTFOUND)
			return 0;
		if (rc)
			return rc;
		json_decref(*obj);
		*obj = o;
		*n = v;
	}
	return 0;
}

/* The seq of the last complete record in data, 0 when none. */
static json_int_t last_seq(const char *data)
{
	size_t end = strlen(data);
	while (end > 0) {
		if (data[end - 1] == '\n')
			end--;
		size_t begin = end;
		while (begin > 0 && data[begin - 1] != '\n')
			begin--;
		json_t *rec = json_loadb(data + begin, end - begin, 0, NULL);
		json_t *seq = json_object_get(rec, "seq");
		json_int_t v = json_is_integer(seq) ? json_integer_value(seq) : 0;
		json_decref(rec);
		if (v > 0)
			return v;
		end = begin;
	}
	return 0;
}

/* Whether data ends with line and a newline: our own write, landed. */
static bool ends_with(const char *data, const char *line)
{
	size_t d = strlen(data), l = strlen(line);
	return d >= l + 1 && data[d - 1] == '\n' && !memcmp(data + d - l - 1, line, l) &&
	       (d == l + 1 || data[d - l - 2] == '\n');
}

/* Marks chunk prev (as read) no longer the newest; a failure only leaves two open. */
static void seal(kstore *k, const json_t *prev, long n)
{
	json_t *o = json_deep_copy(prev);
	json_t *labels = json_object_get(json_object_get(o, "metadata"), "labels");
	char name[160];
	chunk_name(name, sizeof(name), k, n);
	char *path = mg_kube_store_path(k, name);
	mg_error err = MG_ERROR_INIT;
	if (o && path && json_is_object(labels) &&
	    json_object_set_new(labels, LABEL_OPEN, json_string("false")) == 0 &&
	    mg_kube_update(k->c, path, o, NULL, &err))
		mg_log(MG_LOG_DEBUG, "journal chunk %s stays labelled open: %s", name, err.message);
	mg_error_clear(&err);
	free(path);
	json_decref(o);
}

/* A new chunk n holding line; *again when someone else created it first. */
static int create_chunk(kstore *k, long n, const char *line, bool *again, mg_error *err)
{
	char name[160], *text = NULL;
	chunk_name(name, sizeof(name), k, n);
	if (asprintf(&text, "%s\n", line) < 0)
		return mg_error_oom(err);
	json_t *o = mg_kube_store_cm_new(k, name, "journal", JOURNAL_KEY, text, true);
	json_t *labels = json_object_get(json_object_get(o, "metadata"), "labels");
	int rc;
	if (!o || json_object_set_new(labels, LABEL_OPEN, json_string("true")))
		rc = mg_error_oom(err);
	else
		rc = mg_kube_create(k->c, k->collection, o, NULL, err);
	json_decref(o);
	if (rc == MG_ECONFLICT) {
		/* a resent create meeting its own first attempt, or another writer's chunk */
		json_t *now = NULL;
		mg_error tmp = MG_ERROR_INIT;
		if (chunk_get(&now, k, n, &tmp) == 0 && !strcmp(chunk_data(now), text)) {
			mg_error_clear(err);
			rc = 0;
		} else {
			*again = true;
		}
		mg_error_clear(&tmp);
		json_decref(now);
	}
	free(text);
	return rc;
}

/* ---- reading ---- */

typedef struct {
	kstore *k;
	const mg_journal_query *q;
	size_t skipped;
} reader;

/* The record of one line, NULL when skipped (*older: before q->since_ms). */
static json_t *parse_line(reader *r, const char *line, size_t len, long chunk, size_t lineno,
                          bool *older)
{
	*older = false;
	if (len == 0)
		return NULL;
	json_error_t jerr;
	json_t *rec = json_loadb(line, len, 0, &jerr);
	if (!json_is_object(rec)) {
		char name[160];
		chunk_name(name, sizeof(name), r->k, chunk);
		mg_log(MG_LOG_WARN, "%s/%s:%zu: %s; torn or corrupt journal record ignored",
		       r->k->ns, name, lineno, rec ? "not a JSON object" : jerr.text);
		json_decref(rec);
		r->skipped++;
		return NULL;
	}
	int64_t t;
	const char *ts = json_string_value(json_object_get(rec, "time"));
	if (r->q->since_ms && ts && mg_time_parse(&t, ts) == 0 && t < r->q->since_ms) {
		*older = true;
		json_decref(rec);
		return NULL;
	}
	return rec;
}

/* Oldest first, one chunk in memory at a time. */
static int each_forward(reader *r, mg_journal_fn fn, void *ud, mg_error *err)
{
	int rc = 0;
	for (long n = 1; !rc && n < CHUNKS_MAX; n++) {
		json_t *o;
		rc = chunk_get(&o, r->k, n, err);
		if (rc == MG_ENOTFOUND)
			return 0;
		if (rc)
			return rc;
		const char *data = chunk_data(o);
		size_t lineno = 0;
		for (const char *p = data; !rc && *p;) {
			const char *nl = strchr(p, '\n');
			size_t len = nl ? (size_t)(nl - p) : strlen(p);
			bool older;
			json_t *rec = parse_line(r, p, len, n, ++lineno, &older);
			if (rec)
				rc = fn(rec, ud, err);
			json_decref(rec);
			p += len + (nl ? 1 : 0);
		}
		json_decref(o);
	}
	return rc;
}

/* The newest q->limit records: chunks from the newest back, each read backwards. */
static int each_backward(reader *r, mg_journal_fn fn, void *ud, mg_error *err)
{
	json_t *chunk = NULL;
	long n;
	int rc = newest(&chunk, &n, r->k, err);
	json_t *newest_first = json_array();
	if (!rc && !newest_first)
		rc = mg_error_oom(err);
	bool done = false;
	while (!rc && !done && n > 0) {
		const char *data = chunk_data(chunk);
		size_t lines = 0;
		for (const char *p = data; *p; p++)
			lines += *p == '\n';
		size_t end = strlen(data), lineno = lines + (end && data[end - 1] != '\n');
		while (!done && end > 0) {
			if (data[end - 1] == '\n')
				end--;
			size_t begin = end;
			while (begin > 0 && data[begin - 1] != '\n')
				begin--;
			bool older;
			json_t *rec = parse_line(r, data + begin, end - begin, n, lineno--, &older);
			if (older)
				done = true;
			else if (rec && json_array_append_new(newest_first, rec))
				rc = mg_error_oom(err), done = true;
			else if (json_array_size(newest_first) >= r->q->limit)
				done = true;
			end = begin;
		}
		json_decref(chunk);
		chunk = NULL;
		if (!done && --n > 0) {
			rc = chunk_get(&chunk, r->k, n, err);
			if (rc == MG_ENOTFOUND) /* a journal whose start was removed by hand */
				rc = 0, n = 0;
		}
	}
	json_decref(chunk);
	for (size_t i = json_array_size(newest_first); !rc && i > 0; i--)
		rc = fn(json_array_get(newest_first, i - 1), ud, err);
	json_decref(newest_first);
	return rc;
}

int mg_kube_store_journal_each(void *impl, const mg_journal_query *q, mg_journal_fn fn, void *ud,
                               size_t *out_skipped, mg_error *err)
{
	reader r = {.k = impl, .q = q};
	int rc = q->limit ? each_backward(&r, fn, ud, err) : each_forward(&r, fn, ud, err);
	if (out_skipped)
		*out_skipped = r.skipped;
	return rc;
}

/* ---- many records at once (`migrate state push`) ---- */

/*
 * Lines of records[from...] with their seq (after last) set, joined by '\n'
 * (no final one), as many as fit in room bytes with their newlines; at
 * least one. *n how many.
 */
static char *join_lines(json_t *records, size_t from, json_int_t last, size_t room, size_t *n,
                        mg_error *err)
{
	*n = 0;
	char *buf = NULL;
	size_t len = 0;
	for (size_t i = from; i < json_array_size(records); i++) {
		json_t *rec = json_array_get(records, i);
		if (json_object_set_new(rec, "seq", json_integer(last + (json_int_t)*n + 1))) {
			free(buf);
			mg_error_oom(err);
			return NULL;
		}
		char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
		size_t l = line ? strlen(line) : 0;
		if (line && *n && len + 1 + l + 1 > room) {
			free(line);
			break;
		}
		char *p = line ? realloc(buf, len + l + 2) : NULL;
		if (!p) {
			free(line);
			free(buf);
			mg_error_oom(err);
			return NULL;
		}
		buf = p;
		if (len)
			buf[len++] = '\n';
		memcpy(buf + len, line, l + 1);
		len += l;
		free(line);
		(*n)++;
	}
	return buf;
}

/* One round: records[from...] into the newest chunk, or a new one; *n how many went. */
static int append_batch(kstore *k, json_t *records, size_t from, size_t *n, bool *again,
                        mg_error *err)
{
	*again = false;
	*n = 0;
	json_t *chunk = NULL;
	long cn;
	int rc = newest(&chunk, &cn, k, err);
	if (rc)
		return rc;
	char name[160], what[200];
	chunk_name(name, sizeof(name), k, cn ? cn : 1);
	snprintf(what, sizeof(what), "journal ConfigMap %s/%s", k->ns, name);
	if (cn && (rc = mg_kube_store_fence(k, chunk, what, err))) {
		json_decref(chunk);
		return rc;
	}
	const char *data = cn ? chunk_data(chunk) : "";
	size_t dlen = strlen(data);
	size_t room = dlen < CHUNK_MAX ? CHUNK_MAX - dlen - 1 : 0;
	bool fresh = !cn || (dlen && room < 2);
	char *lines = join_lines(records, from, last_seq(data), fresh ? CHUNK_MAX : room, n, err);
	if (!lines) {
		json_decref(chunk);
		return err->code ? err->code : mg_error_oom(err);
	}
	/* a chunk with some room left but not enough for the first record: a new chunk */
	if (!fresh && dlen && dlen + strlen(lines) + 1 > CHUNK_MAX && *n == 1)
		fresh = true;
	if (fresh) {
		rc = create_chunk(k, cn + 1, lines, again, err);
		if (rc == 0 && cn)
			seal(k, chunk, cn);
		goto out;
	}
	size_t llen = strlen(lines);
	char *text = malloc(dlen + llen + 3);
	if (!text) {
		rc = mg_error_oom(err);
		goto out;
	}
	memcpy(text, data, dlen);
	size_t at = dlen;
	if (dlen && data[dlen - 1] != '\n')
		text[at++] = '\n';
	memcpy(text + at, lines, llen);
	text[at + llen] = '\n';
	text[at + llen + 1] = '\0';
	json_t *o = mg_kube_store_rewrite(k, chunk, JOURNAL_KEY, text, true);
	char *path = mg_kube_store_path(k, name);
	rc = !o || !path ? mg_error_oom(err) : mg_kube_update(k->c, path, o, NULL, err);
	json_decref(o);
	free(text);
	if (rc == MG_ECONFLICT) {
		json_t *now = NULL;
		mg_error tmp = MG_ERROR_INIT;
		if (chunk_get(&now, k, cn, &tmp) == 0 && ends_with(chunk_data(now), lines) &&
		    mg_kube_store_token(now) == mg_kube_lease_token(k->lease)) {
			mg_error_clear(err);
			rc = 0;
		} else {
			*again = true;
		}
		mg_error_clear(&tmp);
		json_decref(now);
	}
	free(path);
out:
	free(lines);
	json_decref(chunk);
	return rc;
}

/* One record is a batch of one: the same rounds, the same recognition of a resent write. */
int mg_kube_store_journal_append(void *impl, json_t *record, mg_error *err)
{
	json_t *one = json_pack("[O]", record);
	if (!one)
		return mg_error_oom(err);
	int rc = mg_kube_store_journal_append_many(impl, one, err);
	json_decref(one);
	return rc;
}

int mg_kube_store_journal_append_many(void *impl, json_t *records, mg_error *err)
{
	kstore *k = impl;
	size_t done = 0, total = json_array_size(records);
	while (done < total) {
		int rc = mg_kube_store_renew_if_due(k, err);
		if (rc)
			return rc;
		bool again = true;
		size_t n = 0;
		for (int i = 0; again && i < 4; i++) {
			if (i)
				mg_error_clear(err);
			rc = append_batch(k, records, done, &n, &again, err);
		}
		if (again)
			rc = mg_error_set(err, MG_ECONFLICT,
			                  "plan \"%s\"'s journal changed under each of 4 tries to "
			                  "append to it; another process writes it without holding "
			                  "the lock",
			                  k->plan);
		if (rc)
			return rc;
		done += n;
	}
	return 0;
}
