/*
 * The local spool (lib/spool.h): records a command that moved traffic could
 * not write to the cluster, kept on this machine until a command reaches it.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "fs.h"
#include "log.h"
#include "storebackend.h"

#define SPOOL_FORMAT    1
#define SPOOL_FILE_MAX  (1 << 20) /* a record and a state: a few KiB */
#define SPOOL_NAME_SIZE 64

int mg_spool_dir(char *buf, size_t size, const char *state_dir, const char *plan, mg_error *err)
{
	const char *dir = state_dir ? state_dir : ".migrate";
	int n = snprintf(buf, size, "%s/spool/%s", dir, plan);
	if (n < 0 || (size_t)n >= size)
		return mg_error_set(
		    err, MG_EINVALID,
		    "the spool directory of plan \"%s\" under %s is too long a path", plan, dir);
	return 0;
}

int mg_spool_save(char *path, size_t size, const char *dir, const json_t *record,
                  const mg_state *st, bool base_known, uint64_t base_revision, mg_error *err)
{
	if (path && size)
		*path = '\0';
	int rc = mg_fs_mkdirs(dir, 0700, err);
	if (rc)
		return rc;
	json_t *doc =
	    json_pack("{s:i, s:I, s:O, s:o, s:o}", "format", SPOOL_FORMAT, "spooled_ms",
	              (json_int_t)mg_now_ms(), "record", record ? record : json_null(), "state",
	              st ? mg_state_to_json(st) : json_null(), "base_revision",
	              st && base_known ? json_integer((json_int_t)base_revision) : json_null());
	char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!text)
		return mg_error_oom(err);
	/* the time first and zero-padded, so that names sort in the order they were written */
	static unsigned counter;
	char file[1024];
	int n =
	    snprintf(file, sizeof(file), "%s/%020lld-%ld-%06u.json", dir, (long long)mg_now_ms(),
	             (long)getpid(), __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	if (n < 0 || (size_t)n >= sizeof(file)) {
		free(text);
		return mg_error_set(err, MG_EINVALID, "%s: too long a path for the spool", dir);
	}
	rc = mg_fs_write_atomic(file, text, strlen(text), 0600, err);
	free(text);
	if (!rc && path)
		snprintf(path, size, "%s", file);
	return rc;
}

static bool spool_name(const char *name)
{
	size_t n = strlen(name);
	/* ours only: a temp file of a write in progress or anything else is not a record */
	return n > 5 && n < SPOOL_NAME_SIZE && name[0] >= '0' && name[0] <= '9' &&
	       !strcmp(name + n - 5, ".json");
}

static int by_name(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* The file names of the spool, sorted, at most max (*n of them; *total: all there are). */
static int list(char (*names)[SPOOL_NAME_SIZE], size_t max, size_t *n, size_t *total,
                const char *dir, mg_error *err)
{
	*n = *total = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0
		                       : mg_error_set(err, MG_EIO, "cannot read the spool %s: %s",
		                                      dir, strerror(errno));
	/* the oldest max: keep them all while listing, then sort (the bound is small) */
	size_t cap = 0;
	char(*all)[SPOOL_NAME_SIZE] = NULL;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		if (!spool_name(e->d_name))
			continue;
		if (*total == cap) {
			size_t nc = cap ? cap * 2 : 64;
			void *p = nc > 100000 ? NULL : realloc(all, nc * SPOOL_NAME_SIZE);
			if (!p) {
				rc = mg_error_oom(err);
				break;
			}
			all = p;
			cap = nc;
		}
		/* spool_name() checked its length: copied, not formatted (gcc -O1 warns on %s) */
		size_t l = strnlen(e->d_name, SPOOL_NAME_SIZE - 1);
		memcpy(all[*total], e->d_name, l);
		all[(*total)++][l] = '\0';
	}
	closedir(d);
	if (!rc && *total) {
		qsort(all, *total, SPOOL_NAME_SIZE, by_name);
		*n = *total < max ? *total : max;
		memcpy(names, all, *n * SPOOL_NAME_SIZE);
	}
	free(all);
	return rc;
}

size_t mg_spool_count(const char *dir)
{
	char names[1][SPOOL_NAME_SIZE];
	size_t n, total;
	mg_error err = MG_ERROR_INIT;
	if (list(names, 0, &n, &total, dir, &err))
		mg_error_clear(&err);
	return total;
}

/* What a rollback or a step changed in the state: the traffic, never the releases. */
static void take_traffic(mg_state *cur, const mg_state *sp)
{
	cur->phase = sp->phase;
	cur->step_index = sp->step_index;
	cur->step_started_ms = sp->step_started_ms;
	cur->has_applied = sp->has_applied;
	cur->applied_k8s_percent = sp->applied_k8s_percent;
	cur->applied_ms = sp->applied_ms;
	cur->has_read_back = sp->has_read_back;
	cur->read_back_k8s_percent = sp->read_back_k8s_percent;
	cur->read_back_ms = sp->read_back_ms;
	cur->pending = false;
	cur->gate_failures = sp->gate_failures;
	snprintf(cur->gate_last, sizeof(cur->gate_last), "%s", sp->gate_last);
	cur->gate_last_ms = sp->gate_last_ms;
	snprintf(cur->gate_summary, sizeof(cur->gate_summary), "%s", sp->gate_summary);
	snprintf(cur->pause_reason, sizeof(cur->pause_reason), "%s", sp->pause_reason);
}

/*
 * The spooled state, saved if the store's has not moved since (*applied), else
 * left out. A save that lost a race is a state that moved: left out too.
 */
static int apply_state(bool *applied, mg_store *store, const json_t *doc, const char *file,
                       mg_error *err)
{
	*applied = false;
	mg_state sp, cur;
	int rc = mg_state_from_json(&sp, json_object_get(doc, "state"), err);
	if (!rc)
		rc = mg_state_load(&cur, store, err);
	if (rc)
		return rc;
	json_t *base = json_object_get(doc, "base_revision");
	int64_t spooled = (int64_t)json_integer_value(json_object_get(doc, "spooled_ms"));
	/* unknown base (the state could not be read then): nothing written since the spool */
	bool same = json_is_integer(base) ? cur.revision == (uint64_t)json_integer_value(base)
	                                  : cur.updated_ms <= spooled;
	if (!same) {
		mg_log(
		    MG_LOG_WARN,
		    "%s: the state of plan \"%s\" moved since it was spooled (revision %llu now): "
		    "its record is journalled, the newer state is kept",
		    file, cur.plan, (unsigned long long)cur.revision);
		return 0;
	}
	take_traffic(&cur, &sp);
	rc = mg_state_save(store, &cur, err);
	if (rc == MG_ECONFLICT) {
		mg_log(MG_LOG_WARN, "%s: %s; the newer state is kept", file, err->message);
		mg_error_clear(err);
		return 0;
	}
	*applied = rc == 0;
	return rc;
}

/* One file: its record journalled, its state applied, then the file removed. */
static int upload_one(mg_spool_upload *out, mg_store *store, const char *file, mg_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = mg_fs_read_file(&text, &len, file, SPOOL_FILE_MAX, "a spooled record", err);
	if (rc)
		return rc;
	json_t *doc = json_loadb(text, len, 0, NULL);
	free(text);
	json_t *record = json_object_get(doc, "record");
	if (!json_is_object(doc) ||
	    json_integer_value(json_object_get(doc, "format")) != SPOOL_FORMAT) {
		json_decref(doc);
		return mg_error_set(err, MG_EINVALID,
		                    "%s is not a spooled record of this migrate: move it away",
		                    file);
	}
	if (json_is_object(record)) {
		json_t *copy = json_deep_copy(record);
		if (!copy || json_object_set_new(copy, "seq", json_null())) {
			json_decref(copy);
			json_decref(doc);
			return mg_error_oom(err);
		}
		rc = mg_store_journal_append_record(store, copy, err);
		json_decref(copy);
		if (rc) {
			json_decref(doc);
			return rc;
		}
		/* journalled: the file keeps only what is left, so a retry never journals it twice
		 */
		json_object_set_new(doc, "record", json_null());
		char *rest = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
		mg_error tmp = MG_ERROR_INIT;
		if (json_is_object(json_object_get(doc, "state")) &&
		    (!rest || mg_fs_write_atomic(file, rest, strlen(rest), 0600, &tmp)))
			mg_error_clear(&tmp);
		free(rest);
		out->uploaded++;
	}
	if (json_is_object(json_object_get(doc, "state"))) {
		bool applied;
		rc = apply_state(&applied, store, doc, file, err);
		if (rc) {
			json_decref(doc);
			return rc;
		}
		if (applied)
			out->applied++;
		else
			out->not_applied++;
	}
	json_decref(doc);
	if (unlink(file) != 0 && errno != ENOENT)
		return mg_error_set(err, MG_EIO, "cannot remove %s once uploaded: %s", file,
		                    strerror(errno));
	return 0;
}

int mg_spool_upload_all(mg_spool_upload *out, mg_store *store, const char *dir, mg_error *err)
{
	memset(out, 0, sizeof(*out));
	char(*names)[SPOOL_NAME_SIZE] = calloc(MG_SPOOL_UPLOAD_MAX, SPOOL_NAME_SIZE);
	if (!names)
		return mg_error_oom(err);
	size_t n, total;
	int rc = list(names, MG_SPOOL_UPLOAD_MAX, &n, &total, dir, err);
	int64_t deadline = mg_clock_ms() + MG_SPOOL_UPLOAD_MS;
	size_t done = 0; /* files removed */
	for (size_t i = 0; !rc && i < n && mg_clock_ms() < deadline; i++) {
		char file[1200];
		snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
		rc = upload_one(out, store, file, err);
		if (rc == MG_EINVALID) {
			/* a damaged file holds no one else up: it stays for the operator to read */
			mg_log(MG_LOG_WARN, "%s; it is left in the spool", err->message);
			mg_error_clear(err);
			rc = 0;
		} else if (!rc) {
			done++;
		}
	}
	out->left = total - done;
	free(names);
	mg_error tmp = MG_ERROR_INIT;
	if (done && mg_fs_sync_dir(dir, &tmp))
		mg_error_clear(&tmp);
	return rc;
}
