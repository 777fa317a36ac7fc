/*
 * What the cluster runs, read back (lib/cluster.h, mg_cluster_read_live): the
 * release annotations migrate's applies leave on the plan's Deployments. A
 * Deployment is what serves the traffic, so its annotation is the release
 * the cluster side runs; nothing is taken from an object that was not read.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

/* A release name rendered for no release in particular: only object names are used. */
#define NAMES_ONLY "0.0.0-names"

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The annotation when it is a release name; *bad when present but not one. */
static const char *release_of(const json_t *obj, const char *key, bool *bad)
{
	char why[64];
	const char *v = jstr(json_object_get(json_object_get(obj, "metadata"), "annotations"), key);
	*bad = v && mg_plan_check_version(v, why, sizeof(why)) != 0;
	return *bad ? NULL : v;
}

/* Reads one Deployment; 0, or the client's error other than not found. */
static int read_one(mg_cluster_live *out, mg_kube_client *c, const json_t *manifest, bool first,
                    mg_error *err)
{
	char path[1024], what[700];
	int rc = mg_kube_object_path(c, manifest, path, sizeof(path), what, sizeof(what), err);
	if (rc)
		return rc;
	json_t *live = NULL;
	mg_error gerr = MG_ERROR_INIT;
	rc = mg_kube_get(c, path, what, &live, &gerr);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(&gerr);
		if (!*out->missing)
			snprintf(out->missing, sizeof(out->missing), "%s does not exist", what);
		return 0;
	}
	if (rc) {
		mg_error_set(err, rc, "%s", gerr.message);
		mg_error_clear(&gerr);
		return rc;
	}
	mg_error_clear(&gerr);
	out->read++;
	bool bad = false, pbad = false;
	const char *v = release_of(live, MG_CLUSTER_RELEASE_ANNOTATION, &bad);
	const char *p = release_of(live, MG_CLUSTER_PREVIOUS_ANNOTATION, &pbad);
	if (!v && !*out->missing)
		snprintf(out->missing, sizeof(out->missing),
		         bad ? "%s carries a %s annotation that is not a release name"
		             : "%s carries no %s annotation (applied by something else, or by a "
		               "migrate from before it annotated what it applies)",
		         what, MG_CLUSTER_RELEASE_ANNOTATION);
	if (v && first) {
		snprintf(out->version, sizeof(out->version), "%s", v);
		snprintf(out->previous, sizeof(out->previous), "%s", p ? p : "");
		if (!p)
			snprintf(out->previous_missing, sizeof(out->previous_missing),
			         pbad ? "%s carries a %s annotation that is not a release name"
			              : "%s carries no %s annotation (nothing replaced, or it was "
			                "rolled back already)",
			         what, MG_CLUSTER_PREVIOUS_ANNOTATION);
	} else if (v && *out->version && strcmp(v, out->version) && !*out->missing) {
		snprintf(out->missing, sizeof(out->missing),
		         "the Deployments disagree: %s carries %s, an earlier one %s", what, v,
		         out->version);
	} else if (v && strcmp(p ? p : "", out->previous) && !*out->previous_missing) {
		snprintf(out->previous_missing, sizeof(out->previous_missing),
		         "the Deployments disagree on the release before: %s carries %s, an "
		         "earlier one %s",
		         what, p ? p : "none", *out->previous ? out->previous : "none");
	}
	json_decref(live);
	return 0;
}

int mg_cluster_read_live(mg_cluster_live *out, mg_kube_client *c, const mg_plan *plan,
                         mg_error *err)
{
	memset(out, 0, sizeof(*out));
	json_t *objects = NULL;
	/* an error of its own: the renderer reads a code already in err as its failure, and
	 * the template warnings were shown when the release was deployed */
	mg_error rerr = MG_ERROR_INIT;
	int rc = mg_cluster_render(&objects, plan, NAMES_ONLY, NULL, &rerr);
	if (rc) {
		mg_error_set(err, rc, "%s", rerr.message);
		mg_error_clear(&rerr);
		return rc;
	}
	mg_error_clear(&rerr);
	size_t i;
	json_t *o;
	json_array_foreach(objects, i, o)
	{
		if (rc || !jstr(o, "kind") || strcmp(jstr(o, "kind"), "Deployment"))
			continue;
		rc = read_one(out, c, o, out->deployments == 0, err);
		out->deployments++;
	}
	json_decref(objects);
	if (rc) {
		mg_scrub_error(err);
		return rc;
	}
	if (!out->deployments)
		snprintf(out->missing, sizeof(out->missing), "%s",
		         "the plan's templates render no Deployment to read the release from");
	if (*out->missing) {
		out->version[0] = out->previous[0] = '\0';
		out->previous_missing[0] = '\0';
	}
	if (*out->previous_missing)
		out->previous[0] = '\0';
	return 0;
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

json_t *mg_cluster_live_to_json(const mg_cluster_live *l)
{
	return json_pack("{s:o, s:o, s:I, s:I, s:o, s:o}", "version", str_or_null(l->version),
	                 "previous", str_or_null(l->previous), "deployments",
	                 (json_int_t)l->deployments, "read", (json_int_t)l->read, "missing",
	                 str_or_null(l->missing), "previous_missing",
	                 str_or_null(l->previous_missing));
}
