/*
 * What a deploy would change on the cluster, for `migrate diff`: the release's
 * objects rendered as a deploy renders them and sent as a server-side dry run
 * (dryRun=All) against the live objects. Nothing is persisted, no VM is
 * contacted and no state directory is opened.
 */
#include <stdio.h>
#include <string.h>

#include "release.h"

int mg_release_diff(mg_release_diff_result *out, const mg_plan *plan, const char *version,
                    const char *context, mg_error *err)
{
	*out = (mg_release_diff_result){.warnings = MG_ERROR_INIT};
	json_t *objects = NULL;
	mg_kube_client *client = NULL;
	int rc = 0;
	if (version)
		snprintf(out->version, sizeof(out->version), "%s", version);
	else
		rc = mg_release_version(out->version, sizeof(out->version), plan, err);
	if (!rc)
		rc = mg_cluster_render(&objects, plan, out->version, NULL, err);
	if (!rc) {
		/* the templates' warnings: the caller shows them whatever the cluster says */
		out->warnings = *err;
		*err = (mg_error)MG_ERROR_INIT;
		rc = mg_cluster_connect(&client, plan, context, NULL, err);
	}
	if (!rc) {
		mg_cluster_options o = {.objects = objects,
		                        .force = mg_plan_kubernetes_section(plan)->force_conflicts,
		                        .dry_run = true,
		                        .release = out->version};
		out->applied = true;
		rc = mg_cluster_apply(&out->cluster, client, &o, err);
		out->changed = out->cluster.created + out->cluster.configured > 0;
	}
	json_decref(objects);
	mg_kube_client_free(client);
	return rc;
}

void mg_release_diff_clear(mg_release_diff_result *d)
{
	mg_cluster_result_clear(&d->cluster);
	mg_error_clear(&d->warnings);
	*d = (mg_release_diff_result){.warnings = MG_ERROR_INIT};
}

json_t *mg_release_diff_to_json(const mg_release_diff_result *d, const mg_plan *plan, int rc,
                                const mg_error *err)
{
	json_t *o = json_object();
	json_object_set_new(o, "plan", json_string(mg_plan_name(plan)));
	json_object_set_new(o, "version", json_string(d->version));
	json_object_set_new(o, "changed", json_boolean(d->changed));
	json_object_update_missing_new(o, mg_cluster_result_to_json(&d->cluster));
	if (rc)
		json_object_set_new(
		    o, "error",
		    json_pack("{s:s, s:s}", "kind", mg_error_name(rc), "message", err->message));
	return o;
}
