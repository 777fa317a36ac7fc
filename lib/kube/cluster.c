/* The cluster side of a release (lib/cluster.h). */
#include "cluster.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "configmap.h"
#include "fs.h"
#include "internal.h"
#include "journal.h"
#include "log.h"
#include "nginxconf.h"
#include "template.h"

#define DEFAULT_ROLLOUT_MS ((int64_t)600000)
/* A rollout GET every quarter second is cheap, and a rolled-out Deployment answers at once. */
#define DEFAULT_POLL_MS 250

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *meta(const json_t *obj, const char *key)
{
	return jstr(json_object_get(obj, "metadata"), key);
}

/* --- rendering ------------------------------------------------------------------------------ */

int mg_cluster_render(json_t **objects, const mg_plan *plan, const char *version,
                      size_t *secret_files, mg_error *err)
{
	*objects = NULL;
	if (secret_files)
		*secret_files = 0;
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(plan);
	if (!k)
		return mg_error_set(err, MG_EINVALID, "the plan has no kubernetes section");
	json_t *list = json_array();
	if (!list)
		return mg_error_oom(err);
	/* the ConfigMaps the templates' ${configmap.*} refer to, built once: the checksum in
	 * the pod template is the checksum of what is applied */
	mg_template_plan_vars *pv = NULL;
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	int rc = mg_kube_plan_vars_new(&pv, plan, version, err);
	for (size_t i = 0; !rc && i < k->nconfigmaps; i++) {
		const mg_cm *cm = mg_kube_plan_vars_configmap(pv, i);
		json_t *o = mg_cm_json(cm);
		if (!o || json_array_append_new(list, o))
			rc = mg_error_set(err, MG_ENOMEM,
			                  "kubernetes.configmaps %s (%s): out of memory",
			                  k->configmaps[i].name, k->configmaps[i].from_nginx);
		else if (secret_files)
			*secret_files += cm->nsecrets;
	}
	if (!rc)
		rc = mg_template_render_dir(&out, k->templates, mg_template_plan_vars_get(pv), err);
	for (size_t i = 0; !rc && i < out.ndocs; i++)
		if (json_array_append(list, out.docs[i].object))
			rc = mg_error_oom(err);
	mg_template_output_clear(&out);
	mg_template_plan_vars_free(pv);
	if (rc) {
		json_decref(list);
		return rc;
	}
	mg_cluster_sort(list);
	*objects = list;
	return 0;
}

/*
 * What an object may need to exist before it: a namespace before anything
 * in it, what pods mount before the workloads, a workload before what
 * scales or protects it, the Service before the Ingress that routes to it.
 */
static int kind_rank(const json_t *obj)
{
	static const char *const order[] = {
	    "Namespace",
	    "ResourceQuota",
	    "LimitRange",
	    "ServiceAccount",
	    "Secret",
	    "ConfigMap",
	    "PersistentVolumeClaim",
	    "Role",
	    "RoleBinding",
	    "Service",
	    "Deployment",
	    "StatefulSet",
	    "DaemonSet",
	    "HorizontalPodAutoscaler",
	    "PodDisruptionBudget",
	    "Ingress",
	    NULL,
	};
	const char *kind = jstr(obj, "kind");
	for (int i = 0; kind && order[i]; i++)
		if (!strcmp(kind, order[i]))
			return i;
	return 100; /* custom resources last: their definitions may come from the cluster */
}

void mg_cluster_sort(json_t *objects)
{
	/* insertion sort: stable, and a release has tens of objects, not thousands */
	size_t n = json_array_size(objects);
	for (size_t i = 1; i < n; i++) {
		json_t *x = json_incref(json_array_get(objects, i));
		int r = kind_rank(x);
		size_t j = i;
		while (j > 0 && kind_rank(json_array_get(objects, j - 1)) > r) {
			json_array_set(objects, j, json_array_get(objects, j - 1));
			j--;
		}
		json_array_set_new(objects, j, x);
	}
}

/* --- applying -------------------------------------------------------------------------------- */

int mg_cluster_connect(mg_kube_client **out, const mg_plan *plan, const char *context,
                       const mg_cancel *cancel, mg_error *err)
{
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(plan);
	if (!k)
		return mg_error_set(err, MG_EINVALID, "the plan has no kubernetes section");
	mg_kube_config_options o = {.kubeconfig = k->kubeconfig,
	                            .context = context && *context ? context : k->context,
	                            .namespace_ = k->namespace_,
	                            .cancel = cancel};
	return mg_kube_client_new(out, &o, err);
}

const char *mg_cluster_outcome_name(mg_cluster_outcome o)
{
	switch (o) {
	case MG_CLUSTER_CREATED:
		return "created";
	case MG_CLUSTER_CONFIGURED:
		return "configured";
	case MG_CLUSTER_UNCHANGED:
		return "unchanged";
	case MG_CLUSTER_FAILED:
		return "failed";
	case MG_CLUSTER_NOT_RUN:
		break;
	}
	return "not-run";
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void mg_cluster_result_clear(mg_cluster_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nobjects; i++) {
		mg_cluster_object *o = &r->objects[i];
		free(o->what);
		free(o->kind);
		free(o->name);
		free(o->namespace_);
		free(o->rollout_status);
		free(o->diff);
		free(o->error);
	}
	free(r->objects);
	free(r->context);
	free(r->server);
	free(r->namespace_);
	memset(r, 0, sizeof(*r));
}

typedef struct {
	const mg_cluster_options *o;
	mg_cluster_object *obj;
} wait_ctx;

static void on_rollout(const char *msg, void *ud)
{
	wait_ctx *w = ud;
	free(w->obj->rollout_status);
	w->obj->rollout_status = strdup(msg);
	if (w->o->progress)
		w->o->progress(w->o->progress_ud, w->obj, msg);
}

static void fail_object(mg_cluster_object *obj, const mg_error *err)
{
	obj->outcome = MG_CLUSTER_FAILED;
	free(obj->error);
	obj->error = strdup(err->message);
}

static const char *annotation(const json_t *obj, const char *key)
{
	return jstr(json_object_get(json_object_get(obj, "metadata"), "annotations"), key);
}

/*
 * The manifest as sent: a copy, a workload's carrying the release and, for a deploy, the
 * release the live object carried before (kept across a re-apply of the same
 * release); a new reference, NULL on out of memory. Values from the cluster
 * go in only when they are release names.
 */
static json_t *annotated(const json_t *manifest, const json_t *live, const mg_cluster_options *o)
{
	json_t *copy = json_deep_copy(manifest);
	/* workloads only: their content changes with every release anyway, while a Service
	 * or a ConfigMap the release did not change stays "unchanged" */
	const char *kind = jstr(manifest, "kind");
	if (!copy || !o->release || !kind ||
	    (strcmp(kind, "Deployment") && strcmp(kind, "StatefulSet") &&
	     strcmp(kind, "DaemonSet")))
		return copy;
	json_t *md = json_object_get(copy, "metadata");
	if (!json_is_object(md))
		return copy; /* refused by the object's path before it is sent */
	json_t *ann = json_object_get(md, "annotations");
	if (!json_is_object(ann)) {
		ann = json_object();
		if (!ann || json_object_set_new(md, "annotations", ann)) {
			json_decref(copy);
			return NULL;
		}
	}
	char why[64];
	const char *was = live ? annotation(live, MG_CLUSTER_RELEASE_ANNOTATION) : NULL;
	const char *prev = NULL;
	if (was && strcmp(was, o->release))
		prev = was;
	else if (was)
		prev = annotation(live, MG_CLUSTER_PREVIOUS_ANNOTATION);
	if (prev && mg_plan_check_version(prev, why, sizeof(why)))
		prev = NULL;
	if (json_object_set_new(ann, MG_CLUSTER_RELEASE_ANNOTATION, json_string(o->release)) ||
	    (prev && !o->rollback &&
	     json_object_set_new(ann, MG_CLUSTER_PREVIOUS_ANNOTATION, json_string(prev)))) {
		json_decref(copy);
		return NULL;
	}
	return copy;
}

/* One object through the server: its outcome, and for a Deployment the live namespace. */
static int apply_one(mg_cluster_object *obj, mg_kube_client *c, const json_t *manifest,
                     const mg_cluster_options *o, mg_error *err)
{
	char path[1024], what[700];
	int rc = mg_kube_object_path(c, manifest, path, sizeof(path), what, sizeof(what), err);
	if (rc)
		return rc;
	free(obj->what);
	obj->what = strdup(what);
	if (o->dry_run) {
		char *text = NULL;
		bool changed = false;
		/* the diff shows the annotations as a run would set them: the live one is read */
		json_t *live = NULL, *sent = NULL;
		mg_error gerr = MG_ERROR_INIT;
		if (o->release && mg_kube_get(c, path, what, &live, &gerr) == MG_ENOMEM) {
			mg_error_clear(&gerr);
			return mg_error_oom(err);
		}
		mg_error_clear(&gerr);
		sent = annotated(manifest, live, o);
		json_decref(live);
		if (!sent)
			return mg_error_oom(err);
		rc = mg_kube_diff(c, sent, &text, &changed, err);
		json_decref(sent);
		if (rc)
			return rc;
		/* mg_kube_diff's first line ends in "(new)" for an object the cluster lacks */
		const char *nl = strchr(text, '\n');
		size_t first = nl ? (size_t)(nl - text) : strlen(text);
		bool is_new = first >= 5 && !strncmp(text + first - 5, "(new)", 5);
		obj->outcome = is_new    ? MG_CLUSTER_CREATED
		               : changed ? MG_CLUSTER_CONFIGURED
		                         : MG_CLUSTER_UNCHANGED;
		obj->diff = text;
		return 0;
	}
	/* read first: the only way to tell "configured" from "unchanged" (a no-op apply keeps
	 * the resourceVersion), and one GET is cheap next to a rollout */
	json_t *live = NULL, *after = NULL;
	mg_error gerr = MG_ERROR_INIT;
	rc = mg_kube_get(c, path, what, &live, &gerr);
	if (rc == MG_ENOTFOUND) {
		rc = 0;
	} else if (rc) {
		mg_error_set(err, rc, "%s", gerr.message);
		mg_error_clear(&gerr);
		return rc;
	}
	mg_error_clear(&gerr);
	json_t *sent = annotated(manifest, live, o);
	if (!sent) {
		json_decref(live);
		return mg_error_oom(err);
	}
	mg_kube_apply_options ao = {.force = o->force, .field_manager = "migrate"};
	rc = mg_kube_apply(c, sent, &ao, &after, err);
	json_decref(sent);
	if (!rc) {
		const char *before_rv = live ? meta(live, "resourceVersion") : NULL;
		const char *after_rv = after ? meta(after, "resourceVersion") : NULL;
		if (!live)
			obj->outcome = MG_CLUSTER_CREATED;
		else if (before_rv && after_rv && !strcmp(before_rv, after_rv))
			obj->outcome = MG_CLUSTER_UNCHANGED;
		else
			obj->outcome = MG_CLUSTER_CONFIGURED;
		const char *ns = after ? meta(after, "namespace") : NULL;
		if (ns && (!obj->namespace_ || strcmp(ns, obj->namespace_))) {
			free(obj->namespace_);
			obj->namespace_ = strdup(ns);
		}
	}
	json_decref(live);
	json_decref(after);
	return rc;
}

int mg_cluster_apply(mg_cluster_result *out, mg_kube_client *c, const mg_cluster_options *o,
                     mg_error *err)
{
	memset(out, 0, sizeof(*out));
	int64_t t0 = mg_clock_ms();
	size_t n = json_array_size(o->objects);
	out->dry_run = o->dry_run;
	out->context = dup_or_null(mg_kube_client_context(c));
	out->server = dup_or_null(mg_kube_client_server(c));
	out->namespace_ = dup_or_null(mg_kube_client_namespace(c));
	out->insecure = mg_kube_client_insecure(c);
	out->objects = calloc(n ? n : 1, sizeof(*out->objects));
	if (!out->objects)
		return mg_error_oom(err);
	out->nobjects = n;
	for (size_t i = 0; i < n; i++) {
		const json_t *m = json_array_get(o->objects, i);
		mg_cluster_object *obj = &out->objects[i];
		obj->kind = dup_or_null(jstr(m, "kind"));
		obj->name = dup_or_null(meta(m, "name"));
		const char *ns = meta(m, "namespace");
		obj->namespace_ = dup_or_null(ns ? ns : out->namespace_);
		obj->rollout = obj->kind && (!strcmp(obj->kind, "Deployment") ||
		                             !strcmp(obj->kind, "StatefulSet") ||
		                             !strcmp(obj->kind, "DaemonSet"));
		out->deployments += obj->kind && !strcmp(obj->kind, "Deployment");
		out->workloads += obj->rollout;
	}

	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		mg_cluster_object *obj = &out->objects[i];
		if (o->cancel && *o->cancel) {
			rc = mg_error_set(err, MG_ECANCELED, "cancelled before applying %s %s",
			                  obj->kind ? obj->kind : "?", obj->name ? obj->name : "?");
			out->canceled = true;
			break;
		}
		rc = apply_one(obj, c, json_array_get(o->objects, i), o, err);
		if (rc)
			fail_object(obj, err);
		else if (o->progress)
			o->progress(o->progress_ud, obj, mg_cluster_outcome_name(obj->outcome));
	}

	int64_t budget = o->rollout_timeout_ms > 0 ? o->rollout_timeout_ms : DEFAULT_ROLLOUT_MS;
	int64_t wait_start = mg_clock_ms();
	for (size_t i = 0; i < n && !rc && !o->dry_run; i++) {
		mg_cluster_object *obj = &out->objects[i];
		if (!obj->rollout)
			continue;
		int64_t left = budget - (mg_clock_ms() - wait_start);
		wait_ctx w = {o, obj};
		bool not_waitable = false;
		mg_kube_rollout_options ro = {.kind = obj->kind,
		                              .not_waitable = &not_waitable,
		                              .timeout_ms = left > 1 ? left : 1,
		                              .poll_ms =
		                                  o->poll_ms > 0 ? o->poll_ms : DEFAULT_POLL_MS,
		                              .cancel = o->cancel,
		                              .progress = on_rollout,
		                              .ud = &w};
		int64_t t = mg_clock_ms();
		rc = mg_kube_rollout_wait(c, obj->namespace_, obj->name, &ro, err);
		obj->rollout_ms = mg_clock_ms() - t;
		if (rc) {
			fail_object(obj, err);
			out->canceled = rc == MG_ECANCELED;
		} else if (not_waitable) {
			obj->rollout_not_waitable = true;
			out->rollouts_not_waitable++;
		} else {
			obj->rolled_out = true;
			out->rolled_out++;
		}
	}

	/* after a failure the waits stopped: say which applied Deployments nobody watched */
	for (size_t i = 0; i < n && !o->dry_run; i++) {
		mg_cluster_object *obj = &out->objects[i];
		if (obj->rollout && !obj->rolled_out && !obj->rollout_not_waitable &&
		    obj->outcome != MG_CLUSTER_FAILED && obj->outcome != MG_CLUSTER_NOT_RUN) {
			obj->rollout_not_waited = true;
			out->rollouts_not_waited++;
		}
	}

	for (size_t i = 0; i < n; i++) {
		switch (out->objects[i].outcome) {
		case MG_CLUSTER_CREATED:
			out->created++;
			break;
		case MG_CLUSTER_CONFIGURED:
			out->configured++;
			break;
		case MG_CLUSTER_UNCHANGED:
			out->unchanged++;
			break;
		case MG_CLUSTER_FAILED:
			out->failed++;
			break;
		case MG_CLUSTER_NOT_RUN:
			out->not_run++;
			break;
		}
	}
	out->duration_ms = mg_clock_ms() - t0;
	return rc;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *mg_cluster_result_to_json(const mg_cluster_result *r)
{
	json_t *objs = json_array();
	for (size_t i = 0; i < r->nobjects; i++) {
		const mg_cluster_object *o = &r->objects[i];
		json_t *j =
		    json_pack("{s:o, s:o, s:o, s:o, s:s}", "kind", str_or_null(o->kind), "name",
		              str_or_null(o->name), "namespace", str_or_null(o->namespace_), "what",
		              str_or_null(o->what), "outcome", mg_cluster_outcome_name(o->outcome));
		if (o->rollout) {
			json_object_set_new(j, "rolled_out", json_boolean(o->rolled_out));
			json_object_set_new(j, "rollout_ms", json_integer(o->rollout_ms));
			json_object_set_new(j, "rollout_status", str_or_null(o->rollout_status));
			json_object_set_new(j, "rollout_not_waited",
			                    json_boolean(o->rollout_not_waited));
			json_object_set_new(j, "rollout_not_waitable",
			                    json_boolean(o->rollout_not_waitable));
		}
		if (o->diff)
			json_object_set_new(j, "diff", json_string(o->diff));
		json_object_set_new(j, "error", str_or_null(o->error));
		json_array_append_new(objs, j);
	}
	/* by name too, so that a report need not scan the objects for what is unknown */
	json_t *not_waited = json_array();
	for (size_t i = 0; i < r->nobjects; i++) {
		const mg_cluster_object *o = &r->objects[i];
		if (o->rollout_not_waited)
			json_array_append_new(not_waited,
			                      json_sprintf("%s/%s", o->kind ? o->kind : "?",
			                                   o->name ? o->name : "?"));
	}
	json_t *not_waitable = json_array();
	for (size_t i = 0; i < r->nobjects; i++) {
		const mg_cluster_object *o = &r->objects[i];
		if (o->rollout_not_waitable)
			json_array_append_new(not_waitable,
			                      json_sprintf("%s/%s", o->kind ? o->kind : "?",
			                                   o->name ? o->name : "?"));
	}
	return json_pack("{s:o, s:o, s:o, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, "
	                 "s:o, s:b, s:I, s:o}",
	                 "context", str_or_null(r->context), "server", str_or_null(r->server),
	                 "namespace", str_or_null(r->namespace_), "insecure", r->insecure,
	                 "dry_run", r->dry_run, "created", (json_int_t)r->created, "configured",
	                 (json_int_t)r->configured, "unchanged", (json_int_t)r->unchanged, "failed",
	                 (json_int_t)r->failed, "not_run", (json_int_t)r->not_run, "deployments",
	                 (json_int_t)r->deployments, "workloads", (json_int_t)r->workloads,
	                 "rolled_out", (json_int_t)r->rolled_out, "rollouts_not_waited", not_waited,
	                 "rollouts_not_waitable", not_waitable, "canceled", r->canceled,
	                 "duration_ms", (json_int_t)r->duration_ms, "objects", objs);
}

/* --- journal ------------------------------------------------------------------------------- */

int mg_cluster_journal(mg_store *store, const char *command, const char *action, const char *from,
                       const char *to, const mg_cluster_result *r, size_t nobjects,
                       const char *reason, mg_error *err)
{
	json_t *before = json_pack("{s:s, s:o}", "side", "kubernetes", "version",
	                           from && *from ? json_string(from) : json_null());
	json_t *after = json_pack("{s:s, s:o}", "side", "kubernetes", "version",
	                          to && *to ? json_string(to) : json_null());
	json_t *ev = json_pack("{s:I}", "objects", (json_int_t)nobjects);
	if (r) {
		json_t *rj = mg_cluster_result_to_json(r);
		/* outcomes and counts only: a diff could show a Secret's shape */
		size_t i;
		json_t *o;
		json_array_foreach(json_object_get(rj, "objects"), i, o) json_object_del(o, "diff");
		json_object_update(ev, rj);
		json_decref(rj);
	}
	mg_journal_entry e = {.command = command,
	                      .action = action,
	                      .before = before,
	                      .after = after,
	                      .reason = reason,
	                      .evidence = ev};
	int rc = mg_journal_append(store, &e, err);
	json_decref(before);
	json_decref(after);
	json_decref(ev);
	return rc;
}
