/*
 * A migration's state between a state directory and the cluster (issue 14):
 * `migrate state push` when a team moves a plan to `state.backend:
 * kubernetes` and its history must come along, `migrate state pull DIR` to
 * look at the cluster's copy with the tools of a directory (jq, grep, diff).
 *
 * What is copied: state.json, fleet.json, manifests/<version>.json and the
 * journal. The documents go as they are (fleet and manifests byte for byte,
 * after they parsed); the journal record by record, each keeping its time,
 * operator and order, numbered by the backend it lands in. The lock and the
 * request files (pause, resume) are not state of the migration and stay.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "journal.h"
#include "kube.h"
#include "kubestore.h"
#include "log.h"
#include "migration.h"
#include "records.h"
#include "secret.h"
#include "state.h"
#include "storebackend.h"

#define COMMAND "state push"

/* ---- the cluster side ---- */

typedef struct {
	mg_kube_client *c; /* kept for listing the manifest records */
	mg_store *store;
	const char *ns; /* the plan's state namespace, or the client's */
} cluster;

static void cluster_close(cluster *cl)
{
	mg_store_free(cl->store); /* releases the Lease if held */
	mg_kube_client_free(cl->c);
	*cl = (cluster){0};
}

/*
 * The plan's store in the cluster, as mg_kube_store_open_plan opens it, but
 * over a client kept here: listing the manifests needs one.
 */
static int cluster_open(cluster *cl, const mg_plan *plan, mg_error *err)
{
	*cl = (cluster){0};
	const mg_plan_state *s = mg_plan_state_section(plan);
	mg_kube_config_options co;
	int rc = mg_kube_store_client(&cl->c, &co, plan, "state", NULL, 0, err);
	if (rc)
		return rc;
	cl->ns = s->namespace_ ? s->namespace_ : mg_kube_client_namespace(cl->c);
	mg_kube_store_options o = {
	    .plan = mg_plan_name(plan), .lease_ms = s->lease_ms, .renew_client = &co};
	rc = mg_kube_store_open(&cl->store, cl->c, false, &o, err);
	if (rc)
		cluster_close(cl);
	return rc;
}

/* The refusal every command of this file gives a plan whose state is kept locally. */
static int not_in_cluster(const mg_plan *plan, const char *what, mg_error *err)
{
	return mg_error_set(err, MG_EINVALID,
	                    "`migrate %s` copies state between a directory and the cluster, but "
	                    "plan \"%s\" keeps its state in a local directory (state.backend: "
	                    "local); set state.backend: kubernetes (docs/plan.md) first",
	                    what, mg_plan_name(plan));
}

static int count_record(json_t *record, void *ud, mg_error *err)
{
	(void)record;
	(void)err;
	(*(size_t *)ud)++;
	return 0;
}

/*
 * What the cluster holds for the plan: state.json's revision and version, the
 * journal's length. force: a state.json that does not parse is there (revision
 * 0) rather than an error, so that a push can replace it.
 */
static int cluster_survey(mg_state_copy *out, char **state_version, cluster *cl, bool force,
                          mg_error *err)
{
	*state_version = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc = mg_store_doc_read(cl->store, "state", &text, &len, state_version, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
	} else if (rc) {
		return rc;
	} else {
		free(text);
		mg_state st;
		rc = mg_state_load(&st, cl->store, err);
		if (rc && !(force && rc == MG_EINVALID))
			return rc;
		if (rc) {
			/* it may quote the document, which is the API server's text */
			char why[600];
			mg_scrub_cut(why, sizeof(why), err->message, 500);
			mg_log(MG_LOG_WARN, "%s; --force replaces it", why);
			mg_error_clear(err);
		}
		out->had_state = true;
		out->had_revision = rc ? 0 : st.revision;
	}
	char *version = NULL;
	rc = mg_store_doc_read(cl->store, "fleet", &text, &len, &version, err);
	free(version);
	if (rc == 0) {
		free(text);
		out->had_fleet = true;
	} else if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
	} else {
		return rc;
	}
	mg_journal_query all = {0};
	return mg_journal_each(cl->store, &all, count_record, &out->had_records, NULL, err);
}

/* ---- the local side ---- */

/* The versions of the records in <dir>/manifests (V.json), sorted; none: an empty array. */
static int local_manifests(json_t **out, const char *dir, mg_error *err)
{
	*out = json_array();
	if (!*out)
		return mg_error_oom(err);
	char path[1200];
	snprintf(path, sizeof(path), "%s/manifests", dir);
	DIR *d = opendir(path);
	if (!d && errno == ENOENT)
		return 0;
	if (!d)
		return mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));
	struct dirent *e;
	int rc = 0;
	while (!rc && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n <= 5 || e->d_name[0] == '.' || strcmp(e->d_name + n - 5, ".json"))
			continue; /* a temp file of an atomic write, an editor's backup */
		char v[256];
		snprintf(v, sizeof(v), "%.*s", (int)(n - 5), e->d_name);
		if (json_array_append_new(*out, json_string(v)))
			rc = mg_error_oom(err);
	}
	closedir(d);
	if (rc)
		return rc;
	/* readdir's order is the file system's: sorted, so two pushes say the same */
	size_t n = json_array_size(*out);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0; j--) {
			json_t *a = json_array_get(*out, j - 1), *b = json_array_get(*out, j);
			if (strcmp(json_string_value(a), json_string_value(b)) <= 0)
				break;
			json_incref(a);
			json_array_set(*out, j - 1, b);
			json_array_set_new(*out, j, a);
		}
	return 0;
}

/* state.json as the state layer writes it: indented, a final newline. */
static int state_text(char **out, size_t *len, const mg_state *st, mg_error *err)
{
	json_t *doc = mg_state_to_json(st);
	if (!doc)
		return mg_error_set(err, MG_EINVALID,
		                    "the state of plan \"%s\" has a value JSON cannot hold",
		                    st->plan);
	mg_scrub_json(doc);
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!text)
		return mg_error_oom(err);
	size_t n = strlen(text);
	char *buf = realloc(text, n + 2);
	if (!buf) {
		free(text);
		return mg_error_oom(err);
	}
	buf[n++] = '\n';
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* ---- push ---- */

/*
 * Records go to the cluster a batch at a time: the backend fills each write
 * with as many as fit (a write a record would cost a whole journal's worth of
 * chunk rewrites), and the batch bounds what is held in memory.
 */
#define BATCH_RECORDS 2000

typedef struct {
	mg_store *to;
	json_t *batch;
	size_t copied;
} copier;

static int flush(copier *cp, mg_error *err)
{
	if (!json_array_size(cp->batch))
		return 0;
	int rc = mg_store_journal_append_records(cp->to, cp->batch, err);
	if (rc == 0)
		cp->copied += json_array_size(cp->batch);
	json_array_clear(cp->batch);
	return rc;
}

static int copy_record(json_t *record, void *ud, mg_error *err)
{
	copier *cp = ud;
	mg_scrub_json(record); /* as mg_journal_append does: the last line of defence */
	if (json_array_append(cp->batch, record))
		return mg_error_oom(err);
	return json_array_size(cp->batch) >= BATCH_RECORDS ? flush(cp, err) : 0;
}

/* Everything local has, read and checked before the cluster is touched. */
typedef struct {
	mg_state st;
	char *fleet; /* fleet.json's bytes, NULL when there is none */
	size_t fleet_len;
	json_t *manifests; /* versions */
	char **manifest_text;
	size_t *manifest_len;
} local_state;

static void local_clear(local_state *l)
{
	free(l->fleet);
	for (size_t i = 0; l->manifest_text && i < json_array_size(l->manifests); i++)
		free(l->manifest_text[i]);
	free(l->manifest_text);
	free(l->manifest_len);
	json_decref(l->manifests);
	*l = (local_state){0};
}

static int local_read(local_state *l, mg_state_copy *out, mg_store *local, mg_error *err)
{
	const char *dir = mg_store_path(local);
	int rc = mg_state_load(&l->st, local, err);
	if (rc)
		return rc;
	if (l->st.revision == 0)
		return mg_error_set(
		    err, MG_ENOTFOUND,
		    "nothing to push: %s has no state.json (no command has recorded "
		    "anything there)",
		    dir);
	json_t *fleet = NULL;
	if ((rc = mg_fleet_record_load(&fleet, local, err)))
		return rc;
	bool has_fleet = json_object_size(json_object_get(fleet, "hosts")) > 0;
	json_decref(fleet);
	if (has_fleet) {
		char path[1200];
		snprintf(path, sizeof(path), "%s/fleet.json", dir);
		if ((rc = mg_fs_read_all(&l->fleet, &l->fleet_len, path, err)))
			return rc;
	}
	if ((rc = local_manifests(&l->manifests, dir, err)))
		return rc;
	size_t n = json_array_size(l->manifests);
	l->manifest_text = calloc(n ? n : 1, sizeof(*l->manifest_text));
	l->manifest_len = calloc(n ? n : 1, sizeof(*l->manifest_len));
	if (!l->manifest_text || !l->manifest_len)
		return mg_error_oom(err);
	for (size_t i = 0; i < n; i++) {
		const char *v = json_string_value(json_array_get(l->manifests, i));
		json_t *objects = NULL;
		/* parsed first: a damaged record is refused here, not found by a rollback */
		if ((rc = mg_cluster_record_load(&objects, local, v, err)))
			return rc;
		json_decref(objects);
		char path[1400];
		snprintf(path, sizeof(path), "%s/manifests/%s.json", dir, v);
		if ((rc = mg_fs_read_all(&l->manifest_text[i], &l->manifest_len[i], path, err)))
			return rc;
	}
	size_t records = 0;
	mg_journal_query all = {0};
	if ((rc = mg_journal_each(local, &all, count_record, &records, &out->skipped, err)))
		return rc;
	out->records = records;
	out->revision = l->st.revision;
	out->fleet = has_fleet;
	out->manifests = n;
	return 0;
}

/* The cluster's state, for the refusal and the journal: null when it has none. */
static json_t *had_json(const mg_state_copy *out)
{
	if (!out->had_state && !out->had_records && !out->had_fleet)
		return json_null();
	return json_pack("{s:I, s:I, s:b}", "revision", (json_int_t)out->had_revision,
	                 "journal_records", (json_int_t)out->had_records, "fleet", out->had_fleet);
}

static int push_write(mg_state_copy *out, local_state *l, mg_store *local, cluster *cl,
                      const char *state_version, mg_error *err)
{
	mg_store *to = cl->store;
	/* the journal first: the state it explains must not arrive without it */
	copier cp = {.to = to, .batch = json_array()};
	mg_journal_query all = {0};
	int rc = cp.batch ? mg_journal_each(local, &all, copy_record, &cp, NULL, err)
	                  : mg_error_oom(err);
	if (!rc)
		rc = flush(&cp, err);
	json_decref(cp.batch);
	if (rc)
		goto partial;
	for (size_t i = 0; i < json_array_size(l->manifests); i++) {
		char name[300];
		snprintf(name, sizeof(name), "manifests/%s",
		         json_string_value(json_array_get(l->manifests, i)));
		if ((rc = mg_store_doc_write(to, name, l->manifest_text[i], l->manifest_len[i],
		                             NULL, true, err)))
			goto partial;
	}
	if (l->fleet &&
	    (rc = mg_store_doc_write(to, "fleet", l->fleet, l->fleet_len, NULL, true, err)))
		goto partial;
	/*
	 * The revision only goes up: a command that read the cluster's state before
	 * the push and saves after it must meet a revision it did not load.
	 */
	mg_state st = l->st;
	if (out->had_state && st.revision <= out->had_revision)
		st.revision = out->had_revision + 1;
	char *text = NULL;
	size_t len = 0;
	if ((rc = state_text(&text, &len, &st, err)))
		goto partial;
	rc = mg_store_doc_write(to, "state", text, len, state_version ? state_version : "", true,
	                        err);
	free(text);
	if (rc)
		goto partial;
	out->revision = st.revision;

	json_t *after = json_pack("{s:I, s:I, s:I, s:b}", "revision", (json_int_t)st.revision,
	                          "journal_records", (json_int_t)cp.copied, "manifests",
	                          (json_int_t)out->manifests, "fleet", out->fleet);
	json_t *before = had_json(out);
	json_t *evidence = json_pack("{s:s, s:I}", "from", mg_store_path(local),
	                             "journal_lines_skipped", (json_int_t)out->skipped);
	mg_journal_entry e = {.command = "state",
	                      .action = "push",
	                      .before = before,
	                      .after = after,
	                      .evidence = evidence};
	rc = after && before && evidence ? mg_journal_append(to, &e, err) : mg_error_oom(err);
	json_decref(after);
	json_decref(before);
	json_decref(evidence);
	if (rc)
		goto partial;
	out->written = true;
	return 0;
partial:;
	/* said plainly: what is in the cluster now is part of the push */
	char why[1024];
	snprintf(why, sizeof(why), "%s", err->message);
	return mg_error_set(
	    err, rc,
	    "the push to %s stopped with %zu of %zu journal records known to be copied: %s. The "
	    "cluster has part of the state now; `migrate state push --force` "
	    "copies everything again (the records already copied then appear "
	    "twice in the cluster's journal)",
	    out->to, cp.copied, out->records, why);
}

int mg_migration_push(mg_state_copy *out, const mg_plan *plan, const mg_push_options *o,
                      mg_error *err)
{
	*out = (mg_state_copy){0};
	if (mg_plan_state_section(plan)->backend != MG_STATE_KUBERNETES)
		return not_in_cluster(plan, "state push", err);
	const char *dir = o->state_dir ? o->state_dir : mg_plan_state_dir(plan);
	mg_store *local = NULL;
	int rc = mg_store_open_existing(&local, dir, mg_plan_name(plan), err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		return mg_error_set(
		    err, MG_ENOTFOUND,
		    "nothing to push: there is no state directory %s/%s (the plan's "
		    "state.dir, or --state-dir)",
		    dir, mg_plan_name(plan));
	}
	if (rc)
		return rc;
	snprintf(out->from, sizeof(out->from), "%s", mg_store_path(local));
	local_state l = {0};
	cluster cl = {0};
	char *state_version = NULL;
	/* the local side held still while it is read and copied */
	if (!o->dry_run && (rc = mg_store_lock(local, COMMAND, err)))
		goto out;
	if ((rc = local_read(&l, out, local, err)))
		goto out;
	if ((rc = cluster_open(&cl, plan, err)))
		goto out;
	snprintf(out->to, sizeof(out->to), "%s", mg_store_path(cl.store));
	if (!o->dry_run && (rc = mg_store_lock(cl.store, COMMAND, err)))
		goto out;
	if ((rc = cluster_survey(out, &state_version, &cl, o->force, err)))
		goto out;
	if ((out->had_state || out->had_records || out->had_fleet) && !o->force) {
		char rev[64] = "no state.json";
		if (out->had_state)
			snprintf(rev, sizeof(rev), "state.json at revision %llu",
			         (unsigned long long)out->had_revision);
		rc = mg_error_set(
		    err, MG_ECONFLICT,
		    "the cluster already has state for plan \"%s\" (%s): %s, %zu journal record%s%s; "
		    "nothing was pushed. `migrate state pull DIR` shows it; --force replaces its "
		    "state.json, fleet.json and manifests with %s's (its journal is kept, the pushed "
		    "records follow it)",
		    mg_plan_name(plan), out->to, rev, out->had_records,
		    out->had_records == 1 ? "" : "s", out->had_fleet ? ", fleet.json" : "",
		    out->from);
		goto out;
	}
	if (o->dry_run) {
		out->revision = out->had_state && l.st.revision <= out->had_revision
		                    ? out->had_revision + 1
		                    : l.st.revision;
		goto out;
	}
	rc = push_write(out, &l, local, &cl, state_version, err);
out:
	free(state_version);
	cluster_close(&cl);
	local_clear(&l);
	mg_store_free(local);
	return rc;
}

/* ---- pull ---- */

typedef struct {
	char *buf;
	size_t len, cap;
	size_t n;
} lines;

static int add_line(json_t *record, void *ud, mg_error *err)
{
	lines *b = ud;
	/* as journal.c writes a line: compact, its keys in order */
	char *s = json_dumps(record, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!s)
		return mg_error_oom(err);
	size_t n = strlen(s);
	if (b->len + n + 2 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 65536) + n;
		char *p = realloc(b->buf, cap);
		if (!p) {
			free(s);
			return mg_error_oom(err);
		}
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len++] = '\n';
	b->buf[b->len] = '\0';
	b->n++;
	free(s);
	return 0;
}

/* Whether dir has an entry; false when it does not exist. */
static int dir_used(bool *used, const char *dir, mg_error *err)
{
	*used = false;
	struct stat sb;
	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT)
			return 0;
		return mg_error_set(err, MG_EIO, "cannot use %s: %s", dir, strerror(errno));
	}
	if (!S_ISDIR(sb.st_mode))
		return mg_error_set(err, MG_EINVALID, "%s is not a directory", dir);
	DIR *d = opendir(dir);
	if (!d)
		return mg_error_set(err, MG_EIO, "cannot read %s: %s", dir, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			*used = true;
			break;
		}
	closedir(d);
	return 0;
}

/* dir/name, written atomically (0600), or removed when text is NULL (a file the cluster lacks). */
static int put_file(const char *dir, const char *name, const char *text, size_t len, mg_error *err)
{
	char path[1400];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (text)
		return mg_fs_write_atomic(path, text, len, 0600, err);
	if (unlink(path) != 0 && errno != ENOENT)
		return mg_error_set(err, MG_EIO, "cannot remove %s: %s", path, strerror(errno));
	return 0;
}

/* Removes dir/manifests/V.json for each V not in keep (strings). */
static int remove_stale(const char *dir, const json_t *keep, mg_error *err)
{
	json_t *have = NULL;
	int rc = local_manifests(&have, dir, err);
	size_t i, j;
	json_t *v, *w;
	json_array_foreach(have, i, v)
	{
		bool kept = false;
		json_array_foreach(keep, j, w) kept |= json_equal(v, w);
		if (kept || rc)
			continue;
		char name[300];
		snprintf(name, sizeof(name), "manifests/%s.json", json_string_value(v));
		rc = put_file(dir, name, NULL, 0, err);
	}
	json_decref(have);
	return rc;
}

int mg_migration_pull(mg_state_copy *out, const mg_plan *plan, const char *dir, bool force,
                      mg_error *err)
{
	*out = (mg_state_copy){0};
	if (mg_plan_state_section(plan)->backend != MG_STATE_KUBERNETES)
		return not_in_cluster(plan, "state pull", err);
	snprintf(out->to, sizeof(out->to), "%s", dir);
	bool used;
	int rc = dir_used(&used, dir, err);
	if (rc)
		return rc;
	if (used && !force)
		return mg_error_set(err, MG_EINVALID,
		                    "%s is not empty: pull into a new or empty directory, or give "
		                    "--force to replace the state files in it",
		                    dir);
	cluster cl = {0};
	char *state = NULL, *fleet = NULL, *version = NULL;
	size_t state_len = 0, fleet_len = 0;
	lines journal = {0};
	json_t *versions = NULL;
	char **mtext = NULL;
	size_t *mlen = NULL;
	if ((rc = cluster_open(&cl, plan, err)))
		goto out;
	snprintf(out->from, sizeof(out->from), "%s", mg_store_path(cl.store));
	/* everything read before anything is written: a failed read leaves dir as it was */
	rc = mg_store_doc_read(cl.store, "state", &state, &state_len, &version, err);
	if (rc == MG_ENOTFOUND)
		mg_error_clear(err);
	else if (rc)
		goto out;
	if (state) {
		mg_state st;
		if ((rc = mg_state_load(&st, cl.store, err)))
			goto out;
		out->revision = st.revision;
	}
	free(version);
	version = NULL;
	rc = mg_store_doc_read(cl.store, "fleet", &fleet, &fleet_len, &version, err);
	if (rc == MG_ENOTFOUND)
		mg_error_clear(err);
	else if (rc)
		goto out;
	if ((rc = mg_kube_store_manifest_versions(&versions, cl.c, cl.ns, mg_plan_name(plan), err)))
		goto out;
	size_t nm = json_array_size(versions);
	mtext = calloc(nm ? nm : 1, sizeof(*mtext));
	mlen = calloc(nm ? nm : 1, sizeof(*mlen));
	if (!mtext || !mlen) {
		rc = mg_error_oom(err);
		goto out;
	}
	for (size_t i = 0; i < nm; i++) {
		char name[300];
		snprintf(name, sizeof(name), "manifests/%s",
		         json_string_value(json_array_get(versions, i)));
		free(version);
		version = NULL;
		if ((rc = mg_store_doc_read(cl.store, name, &mtext[i], &mlen[i], &version, err)))
			goto out;
	}
	mg_journal_query all = {0};
	if ((rc = mg_journal_each(cl.store, &all, add_line, &journal, &out->skipped, err)))
		goto out;
	if (!state && !fleet && !nm && !journal.n) {
		rc = mg_error_set(err, MG_ENOTFOUND,
		                  "the cluster has no state for plan \"%s\" (%s): nothing to pull",
		                  mg_plan_name(plan), out->from);
		goto out;
	}

	if ((rc = mg_fs_mkdirs(dir, 0700, err)))
		goto out;
	/*
	 * An empty directory the operator made (mkdir, 0755) holds state from now
	 * on: private. One already in use (--force) keeps the mode its owner gave it.
	 */
	if (!used && chmod(dir, 0700) != 0) {
		rc = mg_error_set(err, MG_EIO, "cannot chmod %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((rc = put_file(dir, "state.json", state, state_len, err)) ||
	    (rc = put_file(dir, "fleet.json", fleet, fleet_len, err)) ||
	    (rc = put_file(dir, "journal.jsonl", journal.n ? journal.buf : NULL, journal.len, err)))
		goto out;
	char mdir[1200];
	snprintf(mdir, sizeof(mdir), "%s/manifests", dir);
	if (nm && (rc = mg_fs_mkdirs(mdir, 0700, err)))
		goto out;
	for (size_t i = 0; i < nm; i++) {
		char name[300];
		snprintf(name, sizeof(name), "%s.json",
		         json_string_value(json_array_get(versions, i)));
		if ((rc = put_file(mdir, name, mtext[i], mlen[i], err)))
			goto out;
	}
	/* a record of an earlier pull the cluster no longer has would be taken for its own */
	if ((rc = remove_stale(dir, versions, err)))
		goto out;
	out->had_state = state != NULL;
	out->fleet = fleet != NULL;
	out->manifests = nm;
	out->records = journal.n;
	out->written = true;
out:
	for (size_t i = 0; mtext && i < json_array_size(versions); i++)
		free(mtext[i]);
	free(mtext);
	free(mlen);
	json_decref(versions);
	free(journal.buf);
	free(state);
	free(fleet);
	free(version);
	cluster_close(&cl);
	return rc;
}
