/*
 * What a plan will do, for `migrate plan`: the hosts and their batches, the
 * template files, every traffic step with the weights each balancer will be
 * given, the gates with their PromQL expanded, the bake times. One JSON
 * document that `-o json` emits and the text display reads, so both say the
 * same. Nothing is changed or contacted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration.h"
#include "promql.h"
#include "str.h"
#include "template.h"
#include "units.h"
#include "weights.h"

static json_t *or_null(json_t *j)
{
	return j ? j : json_null();
}

static json_t *preview_build(const mg_plan_build *b)
{
	return json_pack("{s:s?, s:s?, s:s?}", "repo", b->repo, "artifact", b->artifact, "image",
	                 b->image);
}

static json_t *preview_vms(const mg_plan_vms *v)
{
	size_t bs = mg_plan_vms_batch_size(v);
	size_t nbatches = v->nhosts ? (v->nhosts + bs - 1) / bs : 0;
	json_t *hosts = json_array();
	for (size_t i = 0; i < v->nhosts; i++)
		json_array_append_new(hosts,
		                      json_pack("{s:s, s:s, s:i, s:i}", "name", v->hosts[i].name,
		                                "address", v->hosts[i].address, "port",
		                                v->hosts[i].port, "batch", (int)(i / bs + 1)));
	json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:s?, s:s?, s:s?}",
	                      "hosts", hosts, "user", v->user, "path", v->path, "known_hosts",
	                      v->known_hosts, "parallel", v->parallel, "batch_size", (int)bs,
	                      "batches", (int)nbatches, "max_failures", v->max_failures,
	                      "keep_releases", v->keep_releases, "identity_file", v->identity_file,
	                      "activate", v->activate, "inventory", v->inventory);
	json_object_set_new(o, "passphrase_env",
	                    v->passphrase_env ? json_string(v->passphrase_env) : json_null());
	json_object_set_new(o, "connect_timeout_ms", json_integer(v->connect_timeout_ms));
	json_object_set_new(o, "command_timeout_ms", json_integer(v->command_timeout_ms));
	json_object_set_new(o, "health",
	                    v->health_url
	                        ? json_pack("{s:s, s:I}", "url", v->health_url, "timeout_ms",
	                                    (json_int_t)v->health_timeout_ms)
	                        : json_null());
	return o;
}

/* The template files render renders (mg_template_list_dir); NULL when the directory cannot be
 * read. */
static json_t *template_files(const char *dir)
{
	char **names = NULL;
	size_t n = 0;
	mg_error err = MG_ERROR_INIT;
	if (mg_template_list_dir(&names, &n, dir, &err)) {
		mg_error_clear(&err);
		return NULL;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(names[i]));
	mg_template_list_free(names, n);
	return a;
}

static json_t *preview_kubernetes(const mg_plan_kubernetes *k)
{
	json_t *files = template_files(k->templates);
	json_t *cms = json_array(), *values = json_object();
	for (size_t i = 0; i < k->nconfigmaps; i++)
		json_array_append_new(cms, json_pack("{s:s, s:s}", "name", k->configmaps[i].name,
		                                     "from_nginx", k->configmaps[i].from_nginx));
	for (size_t i = 0; i < k->nvalues; i++)
		json_object_set_new(values, k->values[i].key, json_string(k->values[i].value));
	return json_pack("{s:s, s:s?, s:s?, s:{s:s, s:o}, s:o, s:o, s:I, s:b}", "namespace",
	                 k->namespace_, "context", k->context, "kubeconfig", k->kubeconfig,
	                 "templates", "dir", k->templates, "files", or_null(files), "values",
	                 values, "configmaps", cms, "rollout_timeout_ms",
	                 (json_int_t)k->rollout_timeout_ms, "force_conflicts", k->force_conflicts);
}

/* The servers and weights a provider with per-server weights will be given at one step. */
static json_t *server_weights(const char **vm, size_t nvm, const char **k8s, size_t nk8s,
                              const mg_weights *w)
{
	json_t *o = json_object();
	for (size_t i = 0; i < nvm; i++)
		json_object_set_new(o, vm[i], json_integer(w->vm_weight));
	for (size_t i = 0; i < nk8s; i++)
		json_object_set_new(o, k8s[i], json_integer(w->k8s_weight));
	return o;
}

static json_t *preview_traffic(const mg_plan_traffic *t, mg_error *err)
{
	const char **vm = NULL, **k8s = NULL;
	size_t nvm = 0, nk8s = 0;
	json_t *target = NULL;
	if (t->provider == MG_PROVIDER_HAPROXY) {
		const mg_plan_haproxy *h = t->haproxy;
		vm = h->vm_servers, nvm = h->nvm_servers, k8s = h->k8s_servers;
		nk8s = h->nk8s_servers;
		target =
		    json_pack("{s:s, s:s?, s:s?, s:I}", "backend", h->backend, "socket", h->socket,
		              "address", h->address, "timeout_ms", (json_int_t)h->timeout_ms);
	} else if (t->provider == MG_PROVIDER_NGINX) {
		const mg_plan_nginx *n = t->nginx;
		vm = n->vm_servers, nvm = n->nvm_servers, k8s = n->k8s_servers;
		nk8s = n->nk8s_servers;
		target = json_pack("{s:s, s:s, s:s, s:s, s:I}", "upstream", n->upstream,
		                   "upstream_file", n->upstream_file, "test_command",
		                   n->test_command, "reload_command", n->reload_command,
		                   "command_timeout_ms", (json_int_t)n->command_timeout_ms);
	} else {
		const mg_plan_cloudflare *c = t->cloudflare;
		target = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:I}",
		                   "api_url", c->api_url, "account_id", c->account_id, "zone_id",
		                   c->zone_id, "load_balancer_id", c->load_balancer_id, "vm_pool",
		                   c->vm_pool, "k8s_pool", c->k8s_pool, "token_env", c->token_env,
		                   "token_file", c->token_file, "ca_file", c->ca_file, "timeout_ms",
		                   (json_int_t)c->timeout_ms);
	}
	json_t *steps = json_array();
	for (size_t i = 0; i < t->nsteps; i++) {
		double p = t->steps[i];
		json_t *s = json_pack("{s:i, s:f, s:f}", "step", (int)i + 1, "k8s_percent", p,
		                      "vm_percent", 100 - p);
		json_array_append_new(steps, s);
		if (!vm) {
			json_object_set_new(s, "pool_weights",
			                    json_pack("{s:f, s:f}", "vm_pool", (100 - p) / 100,
			                              "k8s_pool", p / 100));
			continue;
		}
		mg_weights w;
		if (mg_weights_split(&w, p, nvm, nk8s, MG_WEIGHTS_BALANCER_MAX, err)) {
			json_decref(steps);
			json_decref(target);
			return NULL;
		}
		json_object_set_new(s, "effective_k8s_percent", json_real(w.effective_percent));
		json_object_set_new(s, "vm_weight", json_integer(w.vm_weight));
		json_object_set_new(s, "k8s_weight", json_integer(w.k8s_weight));
		json_object_set_new(s, "weights", server_weights(vm, nvm, k8s, nk8s, &w));
	}
	return json_pack("{s:s, s:o, s:I, s:o}", "provider", mg_provider_name(t->provider),
	                 "target", target, "bake_ms", (json_int_t)t->bake_ms, "steps", steps);
}

/* A RED gate's rule in words. */
static char *red_rule(const mg_red_check *r, const mg_plan_slo *s)
{
	char d[32], p[32], c[16];
	snprintf(c, sizeof(c), "%g%%", (s->confidence > 0 ? s->confidence : 0.95) * 100);
	switch (r->kind) {
	case MG_RED_RATE:
		if (r->threshold > 1)
			return mg_str_printf(
			    "at least %.0f requests to the cluster, else inconclusive",
			    r->threshold);
		return mg_str_printf("any request to the cluster: the error checks judge how many "
		                     "they need");
	case MG_RED_ERRORS:
		mg_percent_format(p, sizeof(p), r->threshold * 100);
		return mg_str_printf("5xx responses at most %s of requests, shown with %s "
		                     "confidence (fails when shown above)",
		                     p, c);
	case MG_RED_DURATION:
		mg_duration_format(d, sizeof(d), (int64_t)llround(r->threshold * 1000));
		if (s->red->source == MG_RED_HAPROXY)
			return mg_str_printf("average response time at most %s (an average: judged "
			                     "without a confidence)",
			                     d);
		return mg_str_printf("p%g latency at most %s, shown with %s confidence",
		                     r->quantile * 100, d, c);
	case MG_RED_ERRORS_VS_VMS:
		break;
	}
	return mg_str_printf("fails when the 5xx rate is shown above %gx the VMs' with %s "
	                     "confidence",
	                     r->threshold, c);
}

/* A custom check's rule in words, from its bounds. */
static char *custom_rule(const mg_plan_check *ck)
{
	char min[48] = "", max[48] = "", base[64] = "";
	if (ck->has_min)
		snprintf(min, sizeof(min), "at least %g", ck->min);
	if (ck->has_max)
		snprintf(max, sizeof(max), "%sat most %g", ck->has_min ? " and " : "", ck->max);
	if (ck->baseline)
		snprintf(base, sizeof(base), "%sat most %gx the baseline",
		         ck->has_min || ck->has_max ? " and " : "", ck->max_ratio);
	return mg_str_printf("%s%s%s", min, max, base);
}

static json_t *red_check(const mg_red_check *r, const mg_plan_slo *s)
{
	char *rule = red_rule(r, s);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s?}", "name", r->name, "source", "red", "query",
	                      r->query, "rule", rule);
	free(rule);
	switch (r->kind) {
	case MG_RED_RATE:
		json_object_set_new(o, "min", json_real(r->threshold));
		break;
	case MG_RED_ERRORS:
	case MG_RED_DURATION:
		json_object_set_new(o, "max", json_real(r->threshold));
		break;
	case MG_RED_ERRORS_VS_VMS:
		json_object_set_new(o, "baseline", json_string(r->vm_query));
		json_object_set_new(o, "vm_requests_query", json_string(r->vm_requests_query));
		json_object_set_new(o, "max_ratio", json_real(r->threshold));
		break;
	}
	return o;
}

static json_t *preview_slo(const mg_plan_slo *s, mg_error *err)
{
	mg_red_check *red = NULL;
	size_t nred = 0;
	if (mg_promql_red(&red, &nred, s, s->window_ms, s->window_ms, err))
		return NULL;
	json_t *checks = json_array();
	for (size_t i = 0; i < nred; i++)
		json_array_append_new(checks, red_check(&red[i], s));
	mg_promql_red_free(red, nred);
	for (size_t i = 0; i < s->nchecks; i++) {
		const mg_plan_check *ck = &s->checks[i];
		char *q = NULL, *b = NULL;
		if (mg_promql_expand(&q, ck->query, s->window_ms, s->interval_ms, err) ||
		    (ck->baseline &&
		     mg_promql_expand(&b, ck->baseline, s->window_ms, s->interval_ms, err))) {
			free(q);
			json_decref(checks);
			return NULL;
		}
		char *rule = custom_rule(ck);
		json_t *o = json_pack("{s:s, s:s, s:s, s:s?}", "name", ck->name, "source", "custom",
		                      "query", q, "rule", rule);
		free(rule);
		if (ck->has_min)
			json_object_set_new(o, "min", json_real(ck->min));
		if (ck->has_max)
			json_object_set_new(o, "max", json_real(ck->max));
		if (b) {
			json_object_set_new(o, "baseline", json_string(b));
			json_object_set_new(o, "max_ratio", json_real(ck->max_ratio));
		}
		json_array_append_new(checks, o);
		free(q);
		free(b);
	}
	int64_t period = s->test_period_ms > s->window_ms ? s->test_period_ms : s->window_ms;
	return json_pack(
	    "{s:{s:s, s:s?, s:s?, s:s?, s:I}, s:I, s:I, s:I, s:I, s:f, s:i, s:s, s:o}",
	    "prometheus", "url", s->prometheus_url, "token_env", s->token_env, "token_file",
	    s->token_file, "ca_file", s->ca_file, "timeout_ms",
	    (json_int_t)s->prometheus_timeout_ms, "interval_ms", (json_int_t)s->interval_ms,
	    "window_ms", (json_int_t)s->window_ms, "test_period_ms", (json_int_t)period,
	    "min_requests", (json_int_t)s->min_requests, "confidence",
	    s->confidence > 0 ? s->confidence : 0.95, "failure_limit", s->failure_limit,
	    "on_failure", mg_on_failure_name(s->on_failure), "checks", checks);
}

int mg_migration_preview(json_t **out, const mg_plan *plan, const char *state_dir, mg_error *err)
{
	*out = NULL;
	const mg_plan_build *b = mg_plan_build_section(plan);
	const mg_plan_vms *v = mg_plan_vms_section(plan);
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(plan);
	const mg_plan_traffic *t = mg_plan_traffic_section(plan);
	const mg_plan_slo *s = mg_plan_slo_section(plan);
	json_t *jt = t ? preview_traffic(t, err) : NULL;
	if (t && !jt)
		return err->code ? err->code : mg_error_oom(err);
	json_t *js = s ? preview_slo(s, err) : NULL;
	if (s && !js) {
		json_decref(jt);
		return err->code ? err->code : mg_error_oom(err);
	}
	json_t *doc = json_object();
	json_object_set_new(doc, "plan",
	                    json_pack("{s:s, s:s, s:s?, s:s}", "name", mg_plan_name(plan), "file",
	                              mg_plan_file(plan), "description", mg_plan_description(plan),
	                              "state_dir", state_dir));
	json_object_set_new(doc, "build", b ? preview_build(b) : json_null());
	json_object_set_new(doc, "vms", v ? preview_vms(v) : json_null());
	json_object_set_new(doc, "kubernetes", k ? preview_kubernetes(k) : json_null());
	json_object_set_new(doc, "traffic", or_null(jt));
	json_object_set_new(doc, "slo", or_null(js));
	json_object_set_new(doc, "minimum_duration_ms",
	                    t ? json_integer((json_int_t)(t->bake_ms * (int64_t)t->nsteps))
	                      : json_null());
	*out = doc;
	return 0;
}
