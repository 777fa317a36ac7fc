#include "state.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "secret.h"
#include "storebackend.h"

#define STATE_FILE "state.json"

static const char *const phase_names[] = {
    [MG_PHASE_IDLE] = "idle",         [MG_PHASE_SHIFTING] = "shifting",
    [MG_PHASE_PAUSED] = "paused",     [MG_PHASE_ROLLED_BACK] = "rolled-back",
    [MG_PHASE_COMPLETE] = "complete",
};

#define NPHASES (sizeof(phase_names) / sizeof(phase_names[0]))

const char *mg_phase_name(mg_phase p)
{
	if ((unsigned)p < NPHASES)
		return phase_names[p];
	return "unknown";
}

int mg_phase_parse(mg_phase *out, const char *s)
{
	for (size_t i = 0; s && i < NPHASES; i++) {
		if (strcmp(s, phase_names[i]) == 0) {
			*out = (mg_phase)i;
			return 0;
		}
	}
	return MG_EINVALID;
}

void mg_state_init(mg_state *st, const char *plan_name)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->plan, sizeof(st->plan), "%s", plan_name ? plan_name : "");
	st->phase = MG_PHASE_IDLE;
	st->step_index = -1;
	st->pending_step_index = -1;
}

static const char *store_plan(const mg_store *store)
{
	return mg_store_plan(store);
}

static char *state_path(const mg_store *store)
{
	char *p;
	if (asprintf(&p, "%s/" STATE_FILE, mg_store_path(store)) < 0)
		return NULL;
	return p;
}

/* A timestamp, or null for "never" (0) so that status output does not show 1970. */
static json_t *time_or_null(int64_t ms)
{
	if (ms == 0)
		return json_null();
	char buf[40];
	mg_time_format(buf, sizeof(buf), ms);
	return json_string(buf);
}

static json_t *weights_json(bool has, double k8s, int64_t ms)
{
	if (!has)
		return json_null();
	/* json_real refuses NaN and infinities, which makes the caller fail cleanly. */
	return json_pack("{s:f, s:f, s:o}", "k8s_percent", k8s, "vm_percent", 100.0 - k8s, "at",
	                 time_or_null(ms));
}

static json_t *pending_json(const mg_state *st)
{
	if (!st->pending)
		return json_null();
	return json_pack("{s:s, s:f, s:o, s:o}", "command", st->pending_command, "k8s_percent",
	                 st->pending_k8s_percent, "step_index",
	                 st->pending_step_index < 0 ? json_null()
	                                            : json_integer(st->pending_step_index),
	                 "since", time_or_null(st->pending_ms));
}

void mg_state_reset_gates(mg_state *st)
{
	st->gate_failures = 0;
	st->gate_last[0] = '\0';
	st->gate_last_ms = 0;
	st->gate_summary[0] = '\0';
}

static json_t *gates_json(const mg_state *st)
{
	return json_pack("{s:i, s:o, s:o, s:o}", "failures", st->gate_failures, "last",
	                 st->gate_last[0] ? json_string(st->gate_last) : json_null(), "at",
	                 time_or_null(st->gate_last_ms), "summary",
	                 st->gate_summary[0] ? json_string(st->gate_summary) : json_null());
}

void mg_state_set_kubernetes_error(mg_state *st, const char *msg)
{
	size_t n = msg ? strlen(msg) : 0, max = sizeof(st->kubernetes_error) - 1;
	if (n > max) {
		n = max;
		/* not in the middle of a character: the JSON must stay valid UTF-8 */
		while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
			n--;
	}
	if (n)
		memcpy(st->kubernetes_error, msg, n);
	st->kubernetes_error[n] = '\0';
}

json_t *mg_state_to_json(const mg_state *st)
{
	json_t *step_index =
	    st->step_index < 0 ? json_null() : json_integer((json_int_t)st->step_index);
	json_t *doc = json_pack(
	    "{s:i, s:s, s:I, s:s, s:{s:o, s:o}, s:{s:o, s:o}, s:{s:o, s:o, s:o, s:o}, s:o, "
	    "s:o}",
	    "format", MG_STATE_FORMAT, "plan", st->plan, "revision", (json_int_t)st->revision,
	    "phase", mg_phase_name(st->phase), "step", "index", step_index, "started_at",
	    time_or_null(st->step_started_ms), "weights", "applied",
	    weights_json(st->has_applied, st->applied_k8s_percent, st->applied_ms), "read_back",
	    weights_json(st->has_read_back, st->read_back_k8s_percent, st->read_back_ms),
	    "versions", "vms", st->vms_version[0] ? json_string(st->vms_version) : json_null(),
	    "vms_previous",
	    st->vms_previous_version[0] ? json_string(st->vms_previous_version) : json_null(),
	    "kubernetes",
	    st->kubernetes_version[0] ? json_string(st->kubernetes_version) : json_null(),
	    "kubernetes_previous",
	    st->kubernetes_previous_version[0] ? json_string(st->kubernetes_previous_version)
	                                       : json_null(),
	    "created_at", time_or_null(st->created_ms), "updated_at", time_or_null(st->updated_ms));
	if (doc) {
		json_t *v = json_object_get(doc, "versions");
		json_object_set_new(v, "kubernetes_rollout",
		                    st->kubernetes_rollout[0] ? json_string(st->kubernetes_rollout)
		                                              : json_null());
		json_object_set_new(v, "kubernetes_error",
		                    st->kubernetes_error[0] ? json_string(st->kubernetes_error)
		                                            : json_null());
		json_object_set_new(doc, "pending", pending_json(st));
		json_object_set_new(doc, "gates", gates_json(st));
		json_object_set_new(doc, "pause_reason",
		                    st->pause_reason[0] ? json_string(st->pause_reason)
		                                        : json_null());
	}
	return doc;
}

static json_t *get_object(const json_t *parent, const char *key, const char *name, bool nullable,
                          mg_error *err, int *rc)
{
	json_t *v = json_object_get(parent, key);
	if (!v) {
		*rc = mg_error_set(err, MG_EINVALID, "\"%s\" is missing", name);
		return NULL;
	}
	if (json_is_null(v) && nullable)
		return NULL;
	if (!json_is_object(v)) {
		*rc = mg_error_set(err, MG_EINVALID, "\"%s\" must be an object%s", name,
		                   nullable ? " or null" : "");
		return NULL;
	}
	return v;
}

/* Reads an RFC 3339 time or null (0). */
static int get_time(int64_t *out, const json_t *parent, const char *key, const char *name,
                    mg_error *err)
{
	json_t *v = json_object_get(parent, key);
	*out = 0;
	if (!v)
		return mg_error_set(err, MG_EINVALID, "\"%s\" is missing", name);
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v) || mg_time_parse(out, json_string_value(v)) < 0)
		return mg_error_set(
		    err, MG_EINVALID,
		    "\"%s\" must be an RFC 3339 time (like 2026-11-22T03:57:51.123Z) "
		    "or null",
		    name);
	return 0;
}

static int get_weights(bool *has, double *k8s, int64_t *ms, const json_t *weights, const char *key,
                       mg_error *err)
{
	char name[64];
	int rc = 0;
	snprintf(name, sizeof(name), "weights.%s", key);
	json_t *w = get_object(weights, key, name, true, err, &rc);
	*has = false;
	*k8s = 0;
	*ms = 0;
	if (rc < 0 || !w)
		return rc;
	json_t *pct = json_object_get(w, "k8s_percent");
	if (!json_is_number(pct) || json_number_value(pct) < 0 || json_number_value(pct) > 100)
		return mg_error_set(err, MG_EINVALID,
		                    "\"%s.k8s_percent\" must be a number from 0 to 100", name);
	json_t *vm = json_object_get(w, "vm_percent");
	if (vm && !json_is_number(vm))
		return mg_error_set(err, MG_EINVALID, "\"%s.vm_percent\" must be a number", name);
	char at[80];
	snprintf(at, sizeof(at), "%s.at", name);
	rc = get_time(ms, w, "at", at, err);
	if (rc < 0)
		return rc;
	*has = true;
	*k8s = json_number_value(pct);
	return 0;
}

static int get_version(char *buf, size_t size, const json_t *versions, const char *key,
                       mg_error *err)
{
	json_t *v = json_object_get(versions, key);
	buf[0] = '\0';
	if (!v)
		return mg_error_set(err, MG_EINVALID, "\"versions.%s\" is missing", key);
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= size ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return mg_error_set(err, MG_EINVALID,
		                    "\"versions.%s\" must be a string of at most %zu bytes or null",
		                    key, size - 1);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int mg_state_from_json(mg_state *out, const json_t *doc, mg_error *err)
{
	mg_state st;
	int rc = 0;
	mg_state_init(&st, NULL);
	if (!json_is_object(doc))
		return mg_error_set(err, MG_EINVALID, "the document must be a JSON object");

	json_t *v = json_object_get(doc, "format");
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return mg_error_set(err, MG_EINVALID, "\"format\" must be a positive integer");
	if (json_integer_value(v) > MG_STATE_FORMAT)
		return mg_error_set(
		    err, MG_EINVALID,
		    "written by a newer migrate (format %lld; this one reads format "
		    "%d); upgrade migrate",
		    (long long)json_integer_value(v), MG_STATE_FORMAT);

	v = json_object_get(doc, "plan");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) >= sizeof(st.plan) ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return mg_error_set(err, MG_EINVALID, "\"plan\" must be a plan name");
	snprintf(st.plan, sizeof(st.plan), "%s", json_string_value(v));

	v = json_object_get(doc, "revision");
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return mg_error_set(err, MG_EINVALID,
		                    "\"revision\" must be a non-negative integer");
	st.revision = (uint64_t)json_integer_value(v);

	v = json_object_get(doc, "phase");
	if (!json_is_string(v) || mg_phase_parse(&st.phase, json_string_value(v)) < 0)
		return mg_error_set(err, MG_EINVALID,
		                    "\"phase\" must be one of idle, shifting, paused, rolled-back, "
		                    "complete");

	json_t *step = get_object(doc, "step", "step", false, err, &rc);
	if (!step)
		return rc;
	v = json_object_get(step, "index");
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= INT_MAX)
		st.step_index = (int)json_integer_value(v);
	else if (!json_is_null(v))
		return mg_error_set(err, MG_EINVALID,
		                    "\"step.index\" must be a non-negative integer or null");
	rc = get_time(&st.step_started_ms, step, "started_at", "step.started_at", err);
	if (rc < 0)
		return rc;

	json_t *weights = get_object(doc, "weights", "weights", false, err, &rc);
	if (!weights)
		return rc;
	rc = get_weights(&st.has_applied, &st.applied_k8s_percent, &st.applied_ms, weights,
	                 "applied", err);
	if (rc < 0)
		return rc;
	rc = get_weights(&st.has_read_back, &st.read_back_k8s_percent, &st.read_back_ms, weights,
	                 "read_back", err);
	if (rc < 0)
		return rc;

	json_t *versions = get_object(doc, "versions", "versions", false, err, &rc);
	if (!versions)
		return rc;
	rc = get_version(st.vms_version, sizeof(st.vms_version), versions, "vms", err);
	if (rc < 0)
		return rc;
	rc = get_version(st.kubernetes_version, sizeof(st.kubernetes_version), versions,
	                 "kubernetes", err);
	if (rc < 0)
		return rc;
	/* absent in files written before `deploy` existed: no previous release known */
	if (json_object_get(versions, "vms_previous")) {
		rc = get_version(st.vms_previous_version, sizeof(st.vms_previous_version), versions,
		                 "vms_previous", err);
		if (rc < 0)
			return rc;
	}
	/* absent in files written before the cluster deploy existed */
	if (json_object_get(versions, "kubernetes_previous")) {
		rc = get_version(st.kubernetes_previous_version,
		                 sizeof(st.kubernetes_previous_version), versions,
		                 "kubernetes_previous", err);
		if (rc < 0)
			return rc;
	}

	/* absent in files written before failed rollouts were recorded: unknown */
	json_t *ro = json_object_get(versions, "kubernetes_rollout");
	if (ro && !json_is_null(ro)) {
		const char *r = json_string_value(ro);
		if (!r || (strcmp(r, "ok") != 0 && strcmp(r, "failed") != 0))
			return mg_error_set(
			    err, MG_EINVALID,
			    "\"versions.kubernetes_rollout\" must be \"ok\", \"failed\" "
			    "or null");
		snprintf(st.kubernetes_rollout, sizeof(st.kubernetes_rollout), "%s", r);
	}
	json_t *kerr = json_object_get(versions, "kubernetes_error");
	if (kerr && !json_is_null(kerr)) {
		if (!json_is_string(kerr))
			return mg_error_set(
			    err, MG_EINVALID,
			    "\"versions.kubernetes_error\" must be a string or null");
		/* a message: cut to the field's size rather than refuse the whole state */
		mg_state_set_kubernetes_error(&st, json_string_value(kerr));
	}

	rc = get_time(&st.created_ms, doc, "created_at", "created_at", err);
	if (rc < 0)
		return rc;
	rc = get_time(&st.updated_ms, doc, "updated_at", "updated_at", err);
	if (rc < 0)
		return rc;

	/* absent in files written before it existed: nothing pending */
	json_t *pending = json_object_get(doc, "pending");
	if (pending && !json_is_null(pending)) {
		json_t *cmd = json_object_get(pending, "command");
		json_t *pct = json_object_get(pending, "k8s_percent");
		json_t *idx = json_object_get(pending, "step_index");
		if (!json_is_object(pending) || !json_is_string(cmd) ||
		    json_string_length(cmd) >= sizeof(st.pending_command) || !json_is_number(pct) ||
		    json_number_value(pct) < 0 || json_number_value(pct) > 100 ||
		    !(json_is_null(idx) || (json_is_integer(idx) && json_integer_value(idx) >= 0 &&
		                            json_integer_value(idx) <= INT_MAX)))
			return mg_error_set(err, MG_EINVALID,
			                    "\"pending\" must be null or {command, k8s_percent, "
			                    "step_index, since}");
		st.pending = true;
		snprintf(st.pending_command, sizeof(st.pending_command), "%s",
		         json_string_value(cmd));
		st.pending_k8s_percent = json_number_value(pct);
		st.pending_step_index = json_is_null(idx) ? -1 : (int)json_integer_value(idx);
		rc = get_time(&st.pending_ms, pending, "since", "pending.since", err);
		if (rc < 0)
			return rc;
	}

	/* absent in files written before they existed: no gate evaluated, not paused */
	json_t *gates = json_object_get(doc, "gates");
	if (gates && !json_is_null(gates)) {
		json_t *f = json_object_get(gates, "failures");
		json_t *last = json_object_get(gates, "last");
		json_t *sum = json_object_get(gates, "summary");
		if (!json_is_object(gates) || !json_is_integer(f) || json_integer_value(f) < 0 ||
		    json_integer_value(f) > INT_MAX ||
		    !(json_is_null(last) || json_is_string(last)) ||
		    !(json_is_null(sum) || json_is_string(sum)))
			return mg_error_set(
			    err, MG_EINVALID,
			    "\"gates\" must be null or {failures, last, at, summary}");
		st.gate_failures = (int)json_integer_value(f);
		snprintf(st.gate_last, sizeof(st.gate_last), "%s",
		         json_is_string(last) ? json_string_value(last) : "");
		snprintf(st.gate_summary, sizeof(st.gate_summary), "%s",
		         json_is_string(sum) ? json_string_value(sum) : "");
		rc = get_time(&st.gate_last_ms, gates, "at", "gates.at", err);
		if (rc < 0)
			return rc;
	}
	json_t *why = json_object_get(doc, "pause_reason");
	if (json_is_string(why))
		snprintf(st.pause_reason, sizeof(st.pause_reason), "%s", json_string_value(why));
	else if (why && !json_is_null(why))
		return mg_error_set(err, MG_EINVALID, "\"pause_reason\" must be a string or null");

	*out = st;
	return 0;
}

/*
 * Loads the file at path for the given plan. *found says whether it existed;
 * when it did not, out is a fresh state.
 */
static int parse_state(mg_state *out, char *buf, size_t len, const char *path, const char *plan,
                       mg_error *err);

static int load_file(mg_state *out, bool *found, const char *path, const char *plan, mg_error *err)
{
	char *buf;
	size_t len;
	*found = false;
	int rc = mg_fs_read_all(&buf, &len, path, err);
	if (rc == MG_ENOTFOUND) {
		/* no state yet is not an error: leave none behind for the caller's next step */
		mg_error_clear(err);
		mg_state_init(out, plan);
		return 0;
	}
	if (rc < 0)
		return rc;
	*found = true;
	return parse_state(out, buf, len, path, plan, err);
}

/* The document in buf (freed here), read from path (for messages) for plan. */
static int parse_state(mg_state *out, char *buf, size_t len, const char *path, const char *plan,
                       mg_error *err)
{
	int rc;
	json_error_t jerr;
	json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!doc)
		return mg_error_set(err, MG_EINVALID,
		                    "%s:%d:%d: not valid JSON (%s); fix or restore the file, it is "
		                    "never written partially",
		                    path, jerr.line, jerr.column, jerr.text);

	mg_error inner = MG_ERROR_INIT;
	mg_state st;
	rc = mg_state_from_json(&st, doc, &inner);
	json_decref(doc);
	if (rc < 0) {
		rc = mg_error_set(err, rc, "%s: %s", path, inner.message);
		mg_error_clear(&inner);
		return rc;
	}
	if (strcmp(st.plan, plan) != 0)
		return mg_error_set(err, MG_EINVALID,
		                    "%s: belongs to plan \"%s\", not \"%s\"; was it copied from "
		                    "another plan's state directory?",
		                    path, st.plan, plan);
	*out = st;
	return 0;
}

/* The state document of a store kept by a backend; *version NULL when there is none yet. */
static int load_remote(mg_state *out, char **version, mg_store *store, mg_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	*version = NULL;
	char where[600];
	snprintf(where, sizeof(where), "%s state", mg_store_path(store));
	int rc = mg_store_doc_read(store, "state", &buf, &len, version, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		mg_state_init(out, store_plan(store));
		return 0;
	}
	if (rc)
		return rc;
	rc = parse_state(out, buf, len, where, store_plan(store), err);
	if (rc) {
		free(*version);
		*version = NULL;
	}
	return rc;
}

int mg_state_load(mg_state *out, mg_store *store, mg_error *err)
{
	if (mg_store_remote(store)) {
		char *version = NULL;
		int rc = load_remote(out, &version, store, err);
		free(version);
		return rc;
	}
	char *path = state_path(store);
	if (!path)
		return mg_error_oom(err);
	bool found;
	int rc = load_file(out, &found, path, store_plan(store), err);
	free(path);
	return rc;
}

int mg_state_save(mg_store *store, mg_state *st, mg_error *err)
{
	if (!mg_store_locked(store))
		return mg_error_set(err, MG_ERROR,
		                    "refusing to save %s/" STATE_FILE
		                    " without holding the plan's lock (a bug in migrate)",
		                    mg_store_path(store));
	const char *plan = store_plan(store);
	if (strcmp(st->plan, plan) != 0)
		return mg_error_set(err, MG_EINVALID,
		                    "refusing to save the state of plan \"%s\" into the state "
		                    "directory of plan \"%s\"",
		                    st->plan, plan);

	bool remote = mg_store_remote(store);
	char *path = remote ? NULL : state_path(store);
	if (!remote && !path)
		return mg_error_oom(err);
	if (remote && asprintf(&path, "%s state", mg_store_path(store)) < 0)
		return mg_error_oom(err);

	/* The lock keeps other migrate processes out, but not a hand edit or a second store dir. */
	mg_state disk;
	bool found;
	char *version = NULL;
	int rc = remote ? load_remote(&disk, &version, store, err)
	                : load_file(&disk, &found, path, plan, err);
	if (rc < 0)
		goto out;
	if (disk.revision != st->revision) {
		rc = mg_error_set(err, MG_ECONFLICT,
		                  "%s changed underneath us: expected revision %llu, found %llu; "
		                  "another migrate or a hand edit wrote it, so nothing was saved. "
		                  "Check `migrate status` and run the command again",
		                  path, (unsigned long long)st->revision,
		                  (unsigned long long)disk.revision);
		goto out;
	}

	mg_state next = *st;
	int64_t now = mg_now_ms();
	next.revision = st->revision + 1;
	next.updated_ms = now;
	if (next.created_ms == 0)
		next.created_ms = now;

	json_t *doc = mg_state_to_json(&next);
	if (!doc) {
		rc =
		    mg_error_set(err, MG_EINVALID,
		                 "cannot save %s: the state has a value JSON cannot hold (a weight "
		                 "that is not a finite number, or a version that is not UTF-8)",
		                 path);
		goto out;
	}
	mg_scrub_json(doc); /* the last line of defence: reasons and summaries quote servers */
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!text) {
		rc = mg_error_set(err, MG_ENOMEM, "out of memory saving %s", path);
		goto out;
	}
	/* A final newline, so `cat state.json` leaves the prompt on its own line. */
	size_t len = strlen(text);
	char *buf = realloc(text, len + 2);
	if (!buf) {
		free(text);
		rc = mg_error_set(err, MG_ENOMEM, "out of memory saving %s", path);
		goto out;
	}
	buf[len++] = '\n';
	buf[len] = '\0';
	/*
	 * In the cluster the revision check above and the write are two requests:
	 * the write names the version read, so a writer that came in between
	 * makes it MG_ECONFLICT rather than lose its update.
	 */
	if (remote) {
		rc =
		    mg_store_doc_write(store, "state", buf, len, version ? version : "", true, err);
	} else {
		rc = mg_fs_write_atomic(path, buf, len, 0600, err);
	}
	free(buf);
	if (rc == 0)
		*st = next;
out:
	free(version);
	free(path);
	return rc;
}
