/*
 * The plan's state section: where the migration's lock, state and journal
 * live. `local` is a directory on this machine; `kubernetes` keeps them in
 * the cluster's API (a Lease and ConfigMaps) so every laptop and CI runner
 * shares one migration, one lock and one journal.
 */
#include <string.h>

#include "internal.h"

/* Two seconds: the shortest leaseDurationSeconds the Lease lock accepts (lib/kube/lease.c). */
#define LEASE_MIN_MS     2000
#define LEASE_DEFAULT_MS 15000

static void load_connection(loader *L, yaml_node_t *m, mg_plan_state *s)
{
	static const char *const keys[] = {"kubeconfig", "context", "namespace", NULL};
	const char *P = "state.kubernetes";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return;
	mg_pl_check_keys(L, m, P, keys);
	s->has_connection = true;
	const char *kc = mg_pl_get_kubeconfig(L, m, P);
	const char *ctx = mg_pl_get_str(L, m, P, "context", false, NULL);
	const char *ns = mg_pl_get_str(L, m, P, "namespace", false, NULL);
	if (ns && !mg_pl_valid_dns_label(ns, 63))
		ERR(L, mg_pl_get(L, m, "namespace"), "state.kubernetes.namespace",
		    "\"%s\" is not a Kubernetes namespace name (lower case letters, digits and "
		    "'-', at most 63)",
		    ns);
	bool in_cluster = kc && !strcmp(kc, MG_PL_IN_CLUSTER);
	if (in_cluster && ctx)
		ERR(L, mg_pl_get(L, m, "context"), "state.kubernetes.context",
		    "kubeconfig: in-cluster has no contexts (it is the pod's ServiceAccount); remove "
		    "the context or name a kubeconfig file");
	/* each key given here replaces the same key of the kubernetes section; the pod's
	 * ServiceAccount has no contexts, so the section's context is not inherited by it */
	if (kc)
		s->kubeconfig = kc;
	if (in_cluster)
		s->context = NULL;
	if (ctx)
		s->context = ctx;
	if (ns)
		s->namespace_ = ns;
}

void mg_pl_load_state(loader *L, yaml_node_t *root)
{
	static const char *const keys[] = {"dir", "backend", "kubernetes", "lease", NULL};
	mg_plan *p = L->plan;
	mg_plan_state *s = &p->state;
	*s = (mg_plan_state){.backend = MG_STATE_LOCAL, .lease_ms = LEASE_DEFAULT_MS};
	const mg_plan_kubernetes *k = p->kubernetes;
	if (k) {
		s->kubeconfig = k->kubeconfig;
		s->context = k->context;
		s->namespace_ = k->namespace_;
	}
	yaml_node_t *n = mg_pl_get(L, root, "state");
	if (!n || !mg_pl_expect(L, n, YAML_MAPPING_NODE, "state"))
		return;
	mg_pl_check_keys(L, n, "state", keys);
	const char *d = mg_pl_get_path(L, n, "state", "dir", false, NULL);
	if (d)
		p->state_dir = d;
	yaml_node_t *b = mg_pl_get(L, n, "backend");
	const char *bs = mg_pl_get_str(L, n, "state", "backend", false, "local");
	if (!strcmp(bs, "kubernetes"))
		s->backend = MG_STATE_KUBERNETES;
	else if (strcmp(bs, "local"))
		ERR(L, b, "state.backend", "\"%s\" is not a state backend; use local or kubernetes",
		    bs);
	s->lease_ms = mg_pl_get_duration(L, n, "state", "lease", LEASE_DEFAULT_MS, LEASE_MIN_MS);
	yaml_node_t *c = mg_pl_get(L, n, "kubernetes");
	if (c)
		load_connection(L, c, s);
	if (s->backend == MG_STATE_KUBERNETES && !k && !s->has_connection)
		ERR(L, b, "state.backend",
		    "the kubernetes backend needs a cluster: add `state.kubernetes` (kubeconfig, "
		    "context, namespace) or a `kubernetes` section");
}
