/*
 * What `migrate state pull` needs of the store in the cluster beyond
 * mg_store_ops: the list of its manifest records, whose ConfigMaps are named
 * by a hash of the version (lib/kubestore.h) and so are found by label.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kubestore.h"
#include "log.h"
#include "plan.h"
#include "secret.h"

int mg_kube_store_manifest_versions(json_t **versions, mg_kube_client *c, const char *namespace_,
                                    const char *plan, mg_error *err)
{
	*versions = NULL;
	const char *ns = namespace_ ? namespace_ : mg_kube_client_namespace(c);
	char path[300], sel[300];
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns ? ns : "default");
	snprintf(sel, sizeof(sel), MANAGED_BY "=migrate," LABEL_PLAN "=%s," LABEL_KIND "=manifest",
	         plan);
	json_t *items = NULL;
	int rc = mg_kube_list(c, path, sel, &items, err);
	if (rc)
		return rc;
	json_t *out = json_array();
	if (!out) {
		json_decref(items);
		return mg_error_oom(err);
	}
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
	{
		const char *text = json_string_value(
		    json_object_get(json_object_get(it, "data"), "manifest.json"));
		json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
		const char *v = json_string_value(json_object_get(doc, "version"));
		char why[256];
		if (!v || mg_plan_check_version(v, why, sizeof(why))) {
			/* the server's text: scrubbed and cut before it is logged */
			char name[200];
			const char *n = mg_kube_store_meta(it, NULL, "name");
			mg_scrub_cut(name, sizeof(name), n ? n : "?", 150);
			mg_log(MG_LOG_WARN,
			       "ConfigMap %s/%s is labelled a manifest record of plan \"%s\" but "
			       "names no release: skipped",
			       ns, name, plan);
		} else if (json_array_append_new(out, json_string(v))) {
			json_decref(doc);
			json_decref(items);
			json_decref(out);
			return mg_error_oom(err);
		}
		json_decref(doc);
	}
	json_decref(items);
	*versions = out;
	return 0;
}
