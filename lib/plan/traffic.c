/* The plan's traffic section: the steps, and the balancer that moves traffic (haproxy, nginx,
 * cloudflare). */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "units.h"

static void check_disjoint(loader *L, yaml_node_t *m, const char *path, const char **a, size_t na,
                           const char **b, size_t nb)
{
	strset bs = {0};
	for (size_t j = 0; j < nb; j++)
		mg_pl_strset_add(&bs, b[j], 0, NULL);
	L->oom |= bs.oom;
	for (size_t i = 0; i < na; i++)
		if (mg_pl_strset_has(&bs, a[i]))
			ERR(L, mg_pl_get(L, m, "k8s_servers"), mg_pl_kpath(L, path, "k8s_servers"),
			    "\"%s\" is in both vm_servers and k8s_servers", a[i]);
	mg_pl_strset_clear(&bs);
}

static bool valid_host_port(const char *s)
{
	char host[256];
	int port = 0;
	return mg_pl_parse_host_port(s, host, sizeof(host), &port) && port > 0;
}

static mg_plan_haproxy *load_haproxy(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"socket",      "address", "backend", "vm_servers",
	                                   "k8s_servers", "timeout", NULL};
	const char *P = "traffic.haproxy";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return NULL;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_haproxy *h = mg_pl_arena_alloc(L->plan, sizeof(*h));
	if (!h)
		return NULL;
	h->socket = mg_pl_get_path(L, m, P, "socket", false, NULL);
	h->address = mg_pl_get_str(L, m, P, "address", false, NULL);
	if (h->socket && h->address)
		ERR(L, mg_pl_get(L, m, "address"), "traffic.haproxy.address",
		    "give either \"socket\" or \"address\", not both");
	else if (!h->socket && !h->address)
		ERR(L, m, P,
		    "needs \"socket\" (the admin socket's path) or \"address\" (host:port "
		    "of the runtime API)");
	if (h->address && !valid_host_port(h->address))
		ERR(L, mg_pl_get(L, m, "address"), "traffic.haproxy.address",
		    "\"%s\" is not host:port", h->address);
	h->backend = mg_pl_get_str(L, m, P, "backend", true, NULL);
	if (h->backend && !mg_pl_valid_server_name(h->backend))
		ERR(L, mg_pl_get(L, m, "backend"), "traffic.haproxy.backend",
		    "\"%s\" is not an HAProxy backend name", h->backend);
	h->vm_servers = mg_pl_load_name_list(L, m, P, "vm_servers", &h->nvm_servers, true,
	                                     mg_pl_valid_server_name, "an HAProxy server name");
	h->k8s_servers = mg_pl_load_name_list(L, m, P, "k8s_servers", &h->nk8s_servers, true,
	                                      mg_pl_valid_server_name, "an HAProxy server name");
	check_disjoint(L, m, P, h->vm_servers, h->nvm_servers, h->k8s_servers, h->nk8s_servers);
	h->timeout_ms = mg_pl_get_duration(L, m, P, "timeout", 5000, 10);
	return h;
}

static mg_plan_nginx *load_nginx(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {
	    "upstream_file", "upstream",       "vm_servers",      "k8s_servers",
	    "test_command",  "reload_command", "command_timeout", NULL};
	const char *P = "traffic.nginx";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return NULL;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_nginx *n = mg_pl_arena_alloc(L->plan, sizeof(*n));
	if (!n)
		return NULL;
	n->upstream_file = mg_pl_get_path(L, m, P, "upstream_file", true, NULL);
	n->upstream = mg_pl_get_str(L, m, P, "upstream", true, NULL);
	if (n->upstream && !mg_pl_valid_server_name(n->upstream))
		ERR(L, mg_pl_get(L, m, "upstream"), "traffic.nginx.upstream",
		    "\"%s\" is not an nginx upstream name", n->upstream);
	n->vm_servers = mg_pl_load_name_list(L, m, P, "vm_servers", &n->nvm_servers, true,
	                                     valid_host_port, "host:port");
	n->k8s_servers = mg_pl_load_name_list(L, m, P, "k8s_servers", &n->nk8s_servers, true,
	                                      valid_host_port, "host:port");
	check_disjoint(L, m, P, n->vm_servers, n->nvm_servers, n->k8s_servers, n->nk8s_servers);
	n->test_command = mg_pl_get_str(L, m, P, "test_command", false, "nginx -t");
	n->reload_command = mg_pl_get_str(L, m, P, "reload_command", false, "nginx -s reload");
	n->command_timeout_ms = mg_pl_get_duration(L, m, P, "command_timeout", 30000, 100);
	return n;
}

static mg_plan_cloudflare *load_cloudflare(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {
	    "account_id", "zone_id", "load_balancer_id", "vm_pool", "k8s_pool", "token_env",
	    "token_file", "api_url", "ca_file",          "timeout", NULL};
	static const char *const ids[] = {"account_id", "zone_id", "load_balancer_id", "vm_pool",
	                                  "k8s_pool"};
	const char *P = "traffic.cloudflare";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return NULL;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_cloudflare *c = mg_pl_arena_alloc(L->plan, sizeof(*c));
	if (!c)
		return NULL;
	const char **dst[] = {&c->account_id, &c->zone_id, &c->load_balancer_id, &c->vm_pool,
	                      &c->k8s_pool};
	for (size_t i = 0; i < 5; i++) {
		*dst[i] = mg_pl_get_str(L, m, P, ids[i], true, NULL);
		if (*dst[i] && !mg_pl_valid_hex_id(*dst[i]))
			ERR(L, mg_pl_get(L, m, ids[i]), mg_pl_kpath(L, P, ids[i]),
			    "\"%s\" is not a Cloudflare identifier (32 hexadecimal digits)",
			    *dst[i]);
	}
	if (c->vm_pool && c->k8s_pool && !strcmp(c->vm_pool, c->k8s_pool))
		ERR(L, mg_pl_get(L, m, "k8s_pool"), "traffic.cloudflare.k8s_pool",
		    "the cluster pool must differ from the VM pool");
	mg_pl_load_secret_ref(L, m, P, &c->token_env, &c->token_file, true);
	c->api_url =
	    mg_pl_get_str(L, m, P, "api_url", false, "https://api.cloudflare.com/client/v4");
	mg_pl_check_url(L, m, P, "api_url", c->api_url);
	c->ca_file = mg_pl_get_path(L, m, P, "ca_file", false, NULL);
	mg_pl_check_file_exists(L, m, P, "ca_file", c->ca_file, false, MG_SEV_ERROR);
	c->timeout_ms = mg_pl_get_duration(L, m, P, "timeout", 30000, 100);
	return c;
}

void mg_pl_load_traffic(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"provider", "steps",      "bake", "haproxy",
	                                   "nginx",    "cloudflare", NULL};
	static const char *const providers[] = {"haproxy", "nginx", "cloudflare"};
	const char *P = "traffic";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_traffic *t = mg_pl_arena_alloc(L->plan, sizeof(*t));
	if (!t)
		return;
	yaml_node_t *pn = mg_pl_get_required(L, m, P, "provider");
	bool have_provider = false;
	if (pn && mg_pl_expect(L, pn, YAML_SCALAR_NODE, "traffic.provider")) {
		for (size_t i = 0; i < 3; i++)
			if (!strcmp(mg_pl_scalar(pn), providers[i])) {
				t->provider = (mg_provider)i;
				have_provider = true;
			}
		if (!have_provider)
			ERR(L, pn, "traffic.provider",
			    "unknown provider \"%s\"; use haproxy, nginx or cloudflare",
			    mg_pl_scalar(pn));
	}

	yaml_node_t *steps = mg_pl_get_required(L, m, P, "steps");
	if (steps && mg_pl_expect(L, steps, YAML_SEQUENCE_NODE, "traffic.steps")) {
		size_t n =
		    (size_t)(steps->data.sequence.items.top - steps->data.sequence.items.start);
		t->steps = mg_pl_arena_alloc(L->plan, (n ? n : 1) * sizeof(double));
		L->step_nodes = mg_pl_arena_alloc(L->plan, (n ? n : 1) * sizeof(*L->step_nodes));
		L->step_items = mg_pl_arena_alloc(L->plan, (n ? n : 1) * sizeof(*L->step_items));
		size_t i = 0;
		bool ok = t->steps != NULL;
		yaml_node_t *last = NULL;
		for (yaml_node_item_t *it = steps->data.sequence.items.start;
		     t->steps && L->step_nodes && L->step_items &&
		     it < steps->data.sequence.items.top;
		     it++, i++) {
			yaml_node_t *s = mg_pl_node(L, *it);
			const char *p = mg_pl_ipath(L, "traffic.steps", i);
			double pct;
			char why[256];
			if (!mg_pl_expect(L, s, YAML_SCALAR_NODE, p)) {
				ok = false;
				continue;
			}
			if (mg_percent_parse(&pct, mg_pl_scalar(s), why, sizeof(why))) {
				ERR(L, s, p, "%s", why);
				ok = false;
				continue;
			}
			if (pct <= 0) {
				ERR(L, s, p,
				    "a step sends some traffic to the cluster; 0%% is where "
				    "every migration starts and `migrate rollback` returns");
				ok = false;
				continue;
			}
			if (t->nsteps && pct <= t->steps[t->nsteps - 1]) {
				char a[32], b[32];
				mg_percent_format(a, sizeof(a), pct);
				mg_percent_format(b, sizeof(b), t->steps[t->nsteps - 1]);
				a[strlen(a) - 1] = b[strlen(b) - 1] = '\0'; /* drop '%' */
				ERR(L, s, p,
				    "%s is %s the step before it (%s); steps must increase", a,
				    pct == t->steps[t->nsteps - 1] ? "the same as" : "lower than",
				    b);
				ok = false;
				continue;
			}
			L->step_nodes[t->nsteps] = s;
			L->step_items[t->nsteps] = i;
			t->steps[t->nsteps++] = pct;
			last = s;
		}
		if (!n)
			ERR(L, steps, "traffic.steps", "no steps; the last step must be 100");
		else if (ok && t->nsteps && t->steps[t->nsteps - 1] != 100)
			ERR(L, last, mg_pl_ipath(L, "traffic.steps", t->nsteps - 1),
			    "the last step must be 100, so the migration ends with all traffic on "
			    "the cluster");
	}
	t->bake_ms = mg_pl_get_duration(L, m, P, "bake", -1, 0);
	if (t->bake_ms < 0 && !mg_pl_get(L, m, "bake"))
		ERR(L, m, P,
		    "missing required key \"bake\" (the minimum time at a step, such as "
		    "10m)");

	yaml_node_t *hn = mg_pl_get(L, m, "haproxy"), *nn = mg_pl_get(L, m, "nginx"),
	            *cn = mg_pl_get(L, m, "cloudflare");
	t->haproxy = hn ? load_haproxy(L, hn) : NULL;
	t->nginx = nn ? load_nginx(L, nn) : NULL;
	t->cloudflare = cn ? load_cloudflare(L, cn) : NULL;
	if (have_provider) {
		yaml_node_t *sec[] = {hn, nn, cn};
		if (!sec[t->provider])
			ERR(L, pn, "traffic.provider",
			    "provider is %s but there is no traffic.%s section",
			    providers[t->provider], providers[t->provider]);
	}
	L->plan->traffic = t;
}
