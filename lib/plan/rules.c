/* Rules that span sections: each runs only over sections that loaded cleanly enough. */
#include <string.h>

#include "internal.h"
#include "units.h"
#include "weights.h"

/* ---- rules that span sections ---- */

static void check_weights(loader *L, size_t nvm, size_t nk8s, const char *provider)
{
	const mg_plan_traffic *t = L->plan->traffic;
	for (size_t i = 0; i < t->nsteps; i++) {
		mg_weights w;
		mg_error werr = MG_ERROR_INIT;
		if (mg_weights_split(&w, t->steps[i], nvm, nk8s, MG_WEIGHTS_BALANCER_MAX, &werr)) {
			ERR(L, L->step_nodes[i], mg_pl_ipath(L, "traffic.steps", L->step_items[i]),
			    "%s (traffic.%s)", werr.message, provider);
		}
		mg_error_clear(&werr);
	}
}

void mg_pl_check_cross(loader *L, yaml_node_t *root)
{
	mg_plan *p = L->plan;
	const mg_plan_traffic *t = p->traffic;
	yaml_node_t *tn = mg_pl_get(L, root, "traffic"), *sn = mg_pl_get(L, root, "slo");
	if (t && t->nsteps) {
		if (t->provider == MG_PROVIDER_HAPROXY && t->haproxy && t->haproxy->nvm_servers &&
		    t->haproxy->nk8s_servers)
			check_weights(L, t->haproxy->nvm_servers, t->haproxy->nk8s_servers,
			              "haproxy");
		if (t->provider == MG_PROVIDER_NGINX && t->nginx && t->nginx->nvm_servers &&
		    t->nginx->nk8s_servers)
			check_weights(L, t->nginx->nvm_servers, t->nginx->nk8s_servers, "nginx");
	}
	if (t && p->slo && t->bake_ms > p->slo->test_period_ms)
		p->slo->test_period_ms = t->bake_ms;
	if (t && p->slo && t->bake_ms >= 0 && t->bake_ms < p->slo->interval_ms) {
		char a[32], b[32];
		mg_duration_format(a, sizeof(a), t->bake_ms);
		mg_duration_format(b, sizeof(b), p->slo->interval_ms);
		ERR(L, mg_pl_get(L, tn, "bake"), "traffic.bake",
		    "%s is shorter than slo.interval (%s); a step would end before its gates "
		    "were evaluated once",
		    a, b);
	}
	const mg_plan_red *r = p->slo ? p->slo->red : NULL;
	yaml_node_t *rn = mg_pl_get(L, sn, "red");
	if (r && r->source == MG_RED_HAPROXY && t && t->provider == MG_PROVIDER_HAPROXY &&
	    t->haproxy) {
		const mg_plan_haproxy *h = t->haproxy;
		if (r->backend && h->backend && strcmp(r->backend, h->backend))
			ERR(L, mg_pl_get(L, rn, "backend"), "slo.red.backend",
			    "\"%s\" is not the backend traffic moves (traffic.haproxy.backend is "
			    "\"%s\")",
			    r->backend, h->backend);
		const char **lists[] = {r->vm_servers, r->k8s_servers};
		size_t counts[] = {r->nvm_servers, r->nk8s_servers};
		const char **tl[] = {h->vm_servers, h->k8s_servers};
		size_t tc[] = {h->nvm_servers, h->nk8s_servers};
		const char *keys[] = {"vm_servers", "k8s_servers"};
		for (size_t k = 0; k < 2; k++) {
			yaml_node_t *ln = mg_pl_get(L, rn, keys[k]);
			/* sets, not scans: both lists can be long */
			strset known = {0}, where = {0};
			for (size_t i = 0; i < tc[k]; i++)
				mg_pl_strset_add(&known, tl[k][i], 0, NULL);
			size_t idx = 0;
			for (yaml_node_item_t *it = ln && ln->type == YAML_SEQUENCE_NODE
			                                ? ln->data.sequence.items.start
			                                : NULL;
			     it && it < ln->data.sequence.items.top; it++, idx++)
				if (mg_pl_scalar(mg_pl_node(L, *it)))
					mg_pl_strset_add(&where, mg_pl_scalar(mg_pl_node(L, *it)),
					                 idx, NULL);
			L->oom |= known.oom || where.oom;
			for (size_t i = 0; i < counts[k]; i++) {
				if (mg_pl_strset_has(&known, lists[k][i]))
					continue;
				size_t at = 0;
				mg_pl_strset_add(&where, lists[k][i], 0, &at);
				yaml_node_t *item =
				    ln && ln->type == YAML_SEQUENCE_NODE &&
				            at < (size_t)(ln->data.sequence.items.top -
				                          ln->data.sequence.items.start)
				        ? mg_pl_node(L, ln->data.sequence.items.start[at])
				        : NULL;
				ERR(L, item ? item : rn,
				    mg_pl_ipath(L, mg_pl_kpath(L, "slo.red", keys[k]), at),
				    "server \"%s\" is not in traffic.haproxy.%s", lists[k][i],
				    keys[k]);
			}
			mg_pl_strset_clear(&known);
			mg_pl_strset_clear(&where);
		}
	}
	if (r && r->source == MG_RED_HAPROXY && t && t->haproxy) {
		/* default each selector to the servers traffic moves between */
		mg_plan_red *rw = (mg_plan_red *)r;
		if (!rw->nvm_servers) {
			rw->vm_servers = t->haproxy->vm_servers;
			rw->nvm_servers = t->haproxy->nvm_servers;
		}
		if (!rw->nk8s_servers) {
			rw->k8s_servers = t->haproxy->k8s_servers;
			rw->nk8s_servers = t->haproxy->nk8s_servers;
		}
	}
	/* only when nothing was given at all: a refused entry has been reported already */
	bool from_traffic = t && t->haproxy;
	if (r && r->source == MG_RED_HAPROXY && !r->nk8s_servers && !from_traffic &&
	    !mg_pl_get(L, rn, "k8s_servers"))
		ERR(L, rn, "slo.red",
		    "needs k8s_servers (or a traffic.haproxy section to take them from)");
	if (r && r->source == MG_RED_HAPROXY && !r->nvm_servers && r->max_error_rate_vs_vms >= 0 &&
	    !from_traffic && !mg_pl_get(L, rn, "vm_servers"))
		ERR(L, rn, "slo.red",
		    "max_error_rate_vs_vms compares with the VM servers: needs vm_servers (or a "
		    "traffic.haproxy section to take them from)");
	if (r && r->source == MG_RED_INGRESS_NGINX && r->max_error_rate_vs_vms >= 0)
		ERR(L, mg_pl_get(L, rn, "max_error_rate_vs_vms"), "slo.red.max_error_rate_vs_vms",
		    "needs metrics from both pools; ingress-nginx only sees the cluster, so use "
		    "source: haproxy or drop this key");
	if (r && r->source == MG_RED_INGRESS_NGINX && !r->namespace_ && !p->kubernetes)
		ERR(L, rn, "slo.red",
		    "ingress-nginx needs \"namespace\" (or a kubernetes section to take it from)");
	if (r && r->source == MG_RED_INGRESS_NGINX && !r->namespace_ && p->kubernetes)
		((mg_plan_red *)r)->namespace_ = p->kubernetes->namespace_;
	yaml_node_t *bn = mg_pl_get(L, root, "build");
	if (p->build && p->vms && !p->build->artifact)
		ERR(L, bn, "build", "vms need \"artifact\": the file deployed to each host");
	if (p->build && p->kubernetes && !p->build->image)
		ERR(L, bn, "build", "kubernetes needs \"image\": the container image the pods run");
}
