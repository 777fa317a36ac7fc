/* The plan's kubernetes section: the cluster, its templates, values and ConfigMaps. */
#include <string.h>

#include "internal.h"

void mg_pl_load_kubernetes(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"kubeconfig",      "context",         "namespace",
	                                   "templates",       "values",          "configmaps",
	                                   "rollout_timeout", "force_conflicts", NULL};
	static const char *const ckeys[] = {"name", "from_nginx", NULL};
	const char *P = "kubernetes";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_kubernetes *k = mg_pl_arena_alloc(L->plan, sizeof(*k));
	if (!k)
		return;
	k->kubeconfig = mg_pl_get_kubeconfig(L, m, P);
	k->context = mg_pl_get_str(L, m, P, "context", false, NULL);
	if (k->context && k->kubeconfig && !strcmp(k->kubeconfig, MG_PL_IN_CLUSTER))
		ERR(L, mg_pl_get(L, m, "context"), "kubernetes.context",
		    "kubeconfig: in-cluster has no contexts (it is the pod's ServiceAccount); remove "
		    "the context or name a kubeconfig file");
	k->namespace_ = mg_pl_get_str(L, m, P, "namespace", true, NULL);
	if (k->namespace_ && !mg_pl_valid_dns_label(k->namespace_, 63))
		ERR(L, mg_pl_get(L, m, "namespace"), "kubernetes.namespace",
		    "\"%s\" is not a Kubernetes namespace name (lower case letters, digits and "
		    "'-', at most 63)",
		    k->namespace_);
	k->templates = mg_pl_get_path(L, m, P, "templates", true, NULL);
	mg_pl_check_file_exists(L, m, P, "templates", k->templates, true, MG_SEV_WARNING);
	k->rollout_timeout_ms = mg_pl_get_duration(L, m, P, "rollout_timeout", 600000, 1000);
	k->force_conflicts = mg_pl_get_bool(L, m, P, "force_conflicts", false);

	yaml_node_t *values = mg_pl_get(L, m, "values");
	if (values && mg_pl_expect(L, values, YAML_MAPPING_NODE, "kubernetes.values")) {
		size_t n =
		    (size_t)(values->data.mapping.pairs.top - values->data.mapping.pairs.start);
		k->values = mg_pl_arena_alloc(L->plan, (n ? n : 1) * sizeof(*k->values));
		strset seen = {0};
		for (yaml_node_pair_t *p = values->data.mapping.pairs.start;
		     k->values && p < values->data.mapping.pairs.top; p++) {
			yaml_node_t *kn = mg_pl_node(L, p->key), *vn = mg_pl_node(L, p->value);
			const char *key = mg_pl_scalar(kn);
			if (!key || !mg_pl_valid_env_name(key)) {
				ERR(L, kn, "kubernetes.values",
				    "value names are letters, digits and '_' (used as "
				    "${values.NAME} in templates)");
				continue;
			}
			const char *vp = mg_pl_kpath(L, "kubernetes.values", key);
			if (mg_pl_secret_key(key)) {
				ERR(L, kn, vp,
				    "secrets may not be written into the plan; keep it in a Kubernetes "
				    "Secret and reference that from the templates");
				continue;
			}
			if (!mg_pl_expect(L, vn, YAML_SCALAR_NODE, vp))
				continue;
			if (!mg_pl_strset_add(&seen, key, 0, NULL)) {
				L->oom |= seen.oom;
				ERR(L, kn, vp, "duplicate key");
				continue;
			}
			double d;
			const char *s = mg_pl_scalar(vn);
			bool plain_literal =
			    mg_pl_is_plain(vn) && (mg_pl_parse_double(s, &d) ||
			                           !strcmp(s, "true") || !strcmp(s, "false"));
			k->values[k->nvalues++] =
			    (mg_plan_value){.key = mg_pl_arena_strdup(L->plan, key),
			                    .value = mg_pl_arena_strdup(L->plan, s),
			                    .is_string = !plain_literal};
		}
		mg_pl_strset_clear(&seen);
	}

	yaml_node_t *cms = mg_pl_get(L, m, "configmaps");
	if (cms && mg_pl_expect(L, cms, YAML_SEQUENCE_NODE, "kubernetes.configmaps")) {
		size_t n = (size_t)(cms->data.sequence.items.top - cms->data.sequence.items.start);
		k->configmaps = mg_pl_arena_alloc(L->plan, (n ? n : 1) * sizeof(*k->configmaps));
		size_t i = 0;
		for (yaml_node_item_t *it = cms->data.sequence.items.start;
		     k->configmaps && it < cms->data.sequence.items.top; it++, i++) {
			yaml_node_t *c = mg_pl_node(L, *it);
			const char *p = mg_pl_ipath(L, "kubernetes.configmaps", i);
			if (!mg_pl_expect(L, c, YAML_MAPPING_NODE, p))
				continue;
			mg_pl_check_keys(L, c, p, ckeys);
			mg_plan_configmap cm = {
			    .name = mg_pl_get_str(L, c, p, "name", true, NULL),
			    .from_nginx = mg_pl_get_path(L, c, p, "from_nginx", true, NULL)};
			if (cm.name && !mg_pl_valid_dns_label(cm.name, 253))
				ERR(L, mg_pl_get(L, c, "name"), mg_pl_kpath(L, p, "name"),
				    "\"%s\" is not a ConfigMap name (lower case letters, digits and "
				    "'-')",
				    cm.name);
			for (size_t j = 0; cm.name && j < k->nconfigmaps; j++)
				if (!strcmp(k->configmaps[j].name, cm.name))
					ERR(L, mg_pl_get(L, c, "name"), mg_pl_kpath(L, p, "name"),
					    "ConfigMap \"%s\" is listed twice", cm.name);
			mg_pl_check_file_exists(L, c, p, "from_nginx", cm.from_nginx, false,
			                        MG_SEV_WARNING);
			if (cm.name && cm.from_nginx)
				k->configmaps[k->nconfigmaps++] = cm;
		}
	}
	L->plan->kubernetes = k;
}
