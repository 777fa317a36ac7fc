/* migrate plan: what the plan will do, changing nothing and contacting nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "promql.h"
#include "template.h"
#include "units.h"
#include "weights.h"

#define WEIGHT_MAX 256 /* as the plan loader checks it */
#define TEXT_HOSTS 20  /* longer fleets are summarised unless -v */

static const char *dur(char *buf, size_t n, int64_t ms)
{
	mg_duration_format(buf, n, ms);
	return buf;
}

static const char *pct(char *buf, size_t n, double p)
{
	mg_percent_format(buf, n, p);
	return buf;
}

static void heading(const mg_cli *cli, const char *title)
{
	printf("\n%s%s%s\n", cli_c(cli->color_out, C_BOLD), title, cli_c(cli->color_out, C_RESET));
}

static json_t *plan_build(const mg_cli *cli, const mg_plan_build *b)
{
	if (!cli->json) {
		heading(cli, "Build");
		if (b->repo)
			printf("  version    the commit at HEAD of %s\n", b->repo);
		if (b->artifact)
			printf("  artifact   %s\n", b->artifact);
		if (b->image)
			printf("  image      %s\n", b->image);
		return NULL;
	}
	return json_pack("{s:s?, s:s?, s:s?}", "repo", b->repo, "artifact", b->artifact, "image",
	                 b->image);
}

static json_t *plan_vms(const mg_cli *cli, const mg_plan_vms *v)
{
	size_t bs = mg_plan_vms_batch_size(v);
	size_t nbatches = v->nhosts ? (v->nhosts + bs - 1) / bs : 0;
	char d1[32];
	if (!cli->json) {
		char head[128];
		snprintf(head, sizeof(head), "VM fleet: %zu host%s", v->nhosts,
		         v->nhosts == 1 ? "" : "s");
		heading(cli, head);
		printf("  as %s into %s/releases/<version>, current -> the live release\n", v->user,
		       v->path);
		printf(
		    "  %zu batch%s of up to %zu host%s, %d connection%s at a time, stop after %d "
		    "failed host%s; keep %d releases\n",
		    nbatches, nbatches == 1 ? "" : "es", bs, bs == 1 ? "" : "s", v->parallel,
		    v->parallel == 1 ? "" : "s", v->max_failures, v->max_failures == 1 ? "" : "s",
		    v->keep_releases);
		printf("  activate   %s\n", v->activate ? v->activate : "(nothing)");
		if (v->health_url)
			printf("  health     %s within %s\n", v->health_url,
			       dur(d1, sizeof(d1), v->health_timeout_ms));
		printf("  ssh        %s, host keys from %s\n",
		       v->identity_file ? v->identity_file : "ssh-agent", v->known_hosts);
		size_t show = cli->verbose || v->nhosts <= TEXT_HOSTS ? v->nhosts : TEXT_HOSTS;
		if (show)
			printf("  %-6s %-32s %-24s %s\n", "BATCH", "HOST", "ADDRESS", "PORT");
		for (size_t i = 0; i < show; i++)
			printf("  %-6zu %-32s %-24s %d\n", i / bs + 1, v->hosts[i].name,
			       v->hosts[i].address, v->hosts[i].port);
		if (show < v->nhosts)
			printf("  ... and %zu more (-v lists them all)\n", v->nhosts - show);
		return NULL;
	}
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

static json_t *plan_kubernetes(const mg_cli *cli, const mg_plan_kubernetes *k)
{
	json_t *files = template_files(k->templates);
	char d1[32];
	if (!cli->json) {
		heading(cli, "Kubernetes");
		printf("  namespace  %s%s%s\n", k->namespace_, k->context ? ", context " : "",
		       k->context ? k->context : "");
		printf("  kubeconfig %s\n",
		       k->kubeconfig ? k->kubeconfig : "$KUBECONFIG or ~/.kube/config");
		printf("  templates  %s", k->templates);
		if (!files) {
			printf(" (not readable)\n");
		} else {
			printf(" (%zu file%s)\n", json_array_size(files),
			       json_array_size(files) == 1 ? "" : "s");
			size_t i;
			json_t *f;
			json_array_foreach(files, i, f)
			    printf("             - %s\n", json_string_value(f));
		}
		for (size_t i = 0; i < k->nconfigmaps; i++)
			printf("  configmap  %s from %s\n", k->configmaps[i].name,
			       k->configmaps[i].from_nginx);
		for (size_t i = 0; i < k->nvalues; i++)
			printf("  value      %s = %s\n", k->values[i].key, k->values[i].value);
		printf("  rollout    applied server-side, waited for up to %s\n",
		       dur(d1, sizeof(d1), k->rollout_timeout_ms));
		printf("  conflicts  %s\n",
		       k->force_conflicts
		           ? "forced: fields another manager owns are taken over (force_conflicts)"
		           : "refused: a field another manager owns fails the apply");
		json_decref(files);
		return NULL;
	}
	json_t *cms = json_array(), *values = json_object();
	for (size_t i = 0; i < k->nconfigmaps; i++)
		json_array_append_new(cms, json_pack("{s:s, s:s}", "name", k->configmaps[i].name,
		                                     "from_nginx", k->configmaps[i].from_nginx));
	for (size_t i = 0; i < k->nvalues; i++)
		json_object_set_new(values, k->values[i].key, json_string(k->values[i].value));
	return json_pack("{s:s, s:s?, s:s?, s:{s:s, s:o}, s:o, s:o, s:I, s:b}", "namespace",
	                 k->namespace_, "context", k->context, "kubeconfig", k->kubeconfig,
	                 "templates", "dir", k->templates, "files", files ? files : json_null(),
	                 "values", values, "configmaps", cms, "rollout_timeout_ms",
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

static json_t *plan_traffic(const mg_cli *cli, const mg_plan_traffic *t, mg_error *err)
{
	const char **vm = NULL, **k8s = NULL;
	size_t nvm = 0, nk8s = 0;
	json_t *target = NULL;
	char where[512] = "";
	if (t->provider == MG_PROVIDER_HAPROXY) {
		const mg_plan_haproxy *h = t->haproxy;
		vm = h->vm_servers, nvm = h->nvm_servers, k8s = h->k8s_servers;
		nk8s = h->nk8s_servers;
		snprintf(where, sizeof(where), "backend %s via %s", h->backend,
		         h->socket ? h->socket : h->address);
		target =
		    json_pack("{s:s, s:s?, s:s?, s:I}", "backend", h->backend, "socket", h->socket,
		              "address", h->address, "timeout_ms", (json_int_t)h->timeout_ms);
	} else if (t->provider == MG_PROVIDER_NGINX) {
		const mg_plan_nginx *n = t->nginx;
		vm = n->vm_servers, nvm = n->nvm_servers, k8s = n->k8s_servers;
		nk8s = n->nk8s_servers;
		snprintf(where, sizeof(where), "upstream %s in %s", n->upstream, n->upstream_file);
		target = json_pack("{s:s, s:s, s:s, s:s, s:I}", "upstream", n->upstream,
		                   "upstream_file", n->upstream_file, "test_command",
		                   n->test_command, "reload_command", n->reload_command,
		                   "command_timeout_ms", (json_int_t)n->command_timeout_ms);
	} else {
		const mg_plan_cloudflare *c = t->cloudflare;
		snprintf(where, sizeof(where), "load balancer %s, pools %s (VMs) and %s (cluster)",
		         c->load_balancer_id, c->vm_pool, c->k8s_pool);
		target = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:I}",
		                   "api_url", c->api_url, "account_id", c->account_id, "zone_id",
		                   c->zone_id, "load_balancer_id", c->load_balancer_id, "vm_pool",
		                   c->vm_pool, "k8s_pool", c->k8s_pool, "token_env", c->token_env,
		                   "token_file", c->token_file, "ca_file", c->ca_file, "timeout_ms",
		                   (json_int_t)c->timeout_ms);
	}
	char d1[32], p1[32], p2[32], p3[32];
	bool c = cli->color_out;
	if (!cli->json) {
		char head[160];
		snprintf(head, sizeof(head), "Traffic: %zu steps through %s", t->nsteps,
		         mg_provider_name(t->provider));
		heading(cli, head);
		printf("  %s\n  at least %s at each step before the next\n", where,
		       dur(d1, sizeof(d1), t->bake_ms));
		if (vm)
			printf("  %s%-5s %-8s %-8s %-10s %s%s\n", cli_c(c, C_DIM), "STEP",
			       "CLUSTER", "VMS", "EFFECTIVE",
			       "WEIGHTS (each VM server / each cluster server)", cli_c(c, C_RESET));
		else
			printf("  %s%-5s %-8s %-8s %s%s\n", cli_c(c, C_DIM), "STEP", "CLUSTER",
			       "VMS", "POOL WEIGHTS (VMs / cluster)", cli_c(c, C_RESET));
	}
	json_t *steps = json_array();
	for (size_t i = 0; i < t->nsteps; i++) {
		double p = t->steps[i];
		json_t *s = json_pack("{s:i, s:f, s:f}", "step", (int)i + 1, "k8s_percent", p,
		                      "vm_percent", 100 - p);
		if (vm) {
			mg_weights w;
			if (mg_weights_split(&w, p, nvm, nk8s, WEIGHT_MAX, err)) {
				json_decref(s);
				json_decref(steps);
				json_decref(target);
				return NULL;
			}
			json_object_set_new(s, "effective_k8s_percent",
			                    json_real(w.effective_percent));
			json_object_set_new(s, "weights", server_weights(vm, nvm, k8s, nk8s, &w));
			if (!cli->json)
				printf("  %-5zu %-8s %-8s %-10s %d / %d\n", i + 1,
				       pct(p1, sizeof(p1), p), pct(p2, sizeof(p2), 100 - p),
				       pct(p3, sizeof(p3), w.effective_percent), w.vm_weight,
				       w.k8s_weight);
		} else {
			json_object_set_new(s, "pool_weights",
			                    json_pack("{s:f, s:f}", "vm_pool", (100 - p) / 100,
			                              "k8s_pool", p / 100));
			if (!cli->json)
				printf("  %-5zu %-8s %-8s %.4g / %.4g\n", i + 1,
				       pct(p1, sizeof(p1), p), pct(p2, sizeof(p2), 100 - p),
				       (100 - p) / 100, p / 100);
		}
		json_array_append_new(steps, s);
	}
	if (!cli->json) {
		printf("  rollback   all traffic back to the VMs in one call\n");
		json_decref(steps);
		json_decref(target);
		return NULL;
	}
	return json_pack("{s:s, s:o, s:I, s:o}", "provider", mg_provider_name(t->provider),
	                 "target", target, "bake_ms", (json_int_t)t->bake_ms, "steps", steps);
}

/* A gate as two or three lines: name and rule, then the PromQL, then the baseline if any. */
static void print_check(const mg_cli *cli, const char *name, const char *rule, const char *query,
                        const char *baseline)
{
	bool c = cli->color_out;
	printf("  %s%-16s%s %s\n  %-16s %s%s%s\n", cli_c(c, C_BOLD), name, cli_c(c, C_RESET), rule,
	       "", cli_c(c, C_DIM), query, cli_c(c, C_RESET));
	if (baseline)
		printf("  %-16s %sbaseline: %s%s\n", "", cli_c(c, C_DIM), baseline,
		       cli_c(c, C_RESET));
}

static json_t *plan_slo(const mg_cli *cli, const mg_plan_slo *s, mg_error *err)
{
	mg_red_check *red = NULL;
	size_t nred = 0;
	if (mg_promql_red(&red, &nred, s, s->window_ms, err))
		return NULL;
	char d1[32], d2[32], p1[32], rule[256];
	json_t *checks = json_array();
	if (!cli->json) {
		heading(cli, "Gates");
		printf("  Prometheus %s\n", s->prometheus_url);
		printf("  every %s over the last %s (never reaching back before the step began)\n",
		       dur(d1, sizeof(d1), s->interval_ms), dur(d2, sizeof(d2), s->window_ms));
		printf("  a step fails after %d failed evaluation%s, then: %s\n", s->failure_limit,
		       s->failure_limit == 1 ? "" : "s", mg_on_failure_name(s->on_failure));
		printf("  no data, too few requests or an unreachable Prometheus: inconclusive, "
		       "never a pass\n\n");
	}
	for (size_t i = 0; i < nred; i++) {
		mg_red_check *r = &red[i];
		json_t *o = json_pack("{s:s, s:s, s:s}", "name", r->name, "source", "red", "query",
		                      r->query);
		switch (r->kind) {
		case MG_RED_RATE:
			snprintf(rule, sizeof(rule),
			         "at least %.0f requests to the cluster, else inconclusive",
			         r->threshold);
			json_object_set_new(o, "min", json_real(r->threshold));
			break;
		case MG_RED_ERRORS:
			snprintf(rule, sizeof(rule), "5xx responses at most %s of requests",
			         pct(p1, sizeof(p1), r->threshold * 100));
			json_object_set_new(o, "max", json_real(r->threshold));
			break;
		case MG_RED_DURATION:
			snprintf(rule, sizeof(rule), "%s at most %s",
			         s->red->source == MG_RED_HAPROXY ? "average response time"
			                                          : "99th percentile latency",
			         dur(d1, sizeof(d1), (int64_t)llround(r->threshold * 1000)));
			json_object_set_new(o, "max", json_real(r->threshold));
			break;
		case MG_RED_ERRORS_VS_VMS:
			snprintf(rule, sizeof(rule),
			         "5xx ratio at most %gx the VMs' over the same window",
			         r->threshold);
			json_object_set_new(o, "baseline", json_string(r->vm_query));
			json_object_set_new(o, "max_ratio", json_real(r->threshold));
			break;
		}
		if (!cli->json)
			print_check(cli, r->name, rule, r->query, r->vm_query);
		json_array_append_new(checks, o);
	}
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
		json_t *o =
		    json_pack("{s:s, s:s, s:s}", "name", ck->name, "source", "custom", "query", q);
		size_t n = 0;
		rule[0] = '\0';
		if (ck->has_min) {
			json_object_set_new(o, "min", json_real(ck->min));
			n += (size_t)snprintf(rule + n, sizeof(rule) - n, "at least %g ", ck->min);
			rule[n - 1] = ck->has_max || b ? ' ' : '\0';
		}
		if (ck->has_max) {
			json_object_set_new(o, "max", json_real(ck->max));
			n += (size_t)snprintf(rule + n, sizeof(rule) - n, "%sat most %g",
			                      n ? "and " : "", ck->max);
		}
		if (b) {
			json_object_set_new(o, "baseline", json_string(b));
			json_object_set_new(o, "max_ratio", json_real(ck->max_ratio));
			snprintf(rule + n, sizeof(rule) - n, "%sat most %gx the baseline",
			         n ? "and " : "", ck->max_ratio);
		}
		if (!cli->json)
			print_check(cli, ck->name, rule, q, b);
		json_array_append_new(checks, o);
		free(q);
		free(b);
	}
	if (!cli->json) {
		json_decref(checks);
		return NULL;
	}
	return json_pack(
	    "{s:{s:s, s:s?, s:s?, s:s?, s:I}, s:I, s:I, s:I, s:i, s:s, s:o}", "prometheus", "url",
	    s->prometheus_url, "token_env", s->token_env, "token_file", s->token_file, "ca_file",
	    s->ca_file, "timeout_ms", (json_int_t)s->prometheus_timeout_ms, "interval_ms",
	    (json_int_t)s->interval_ms, "window_ms", (json_int_t)s->window_ms, "min_requests",
	    (json_int_t)s->min_requests, "failure_limit", s->failure_limit, "on_failure",
	    mg_on_failure_name(s->on_failure), "checks", checks);
}

static json_t *or_null(json_t *j)
{
	return j ? j : json_null();
}

int cmd_plan(mg_cli *cli, int argc, char **argv)
{
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, NULL, NULL, NULL, NULL, 0, &exit_code) < 0)
		return exit_code;
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	if (cli_load_plan(cli, &plan, 0, &err)) {
		exit_code = cli_fail(cli, &err);
		mg_error_clear(&err);
		return exit_code;
	}
	const mg_plan_build *b = mg_plan_build_section(plan);
	const mg_plan_vms *v = mg_plan_vms_section(plan);
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(plan);
	const mg_plan_traffic *t = mg_plan_traffic_section(plan);
	const mg_plan_slo *s = mg_plan_slo_section(plan);
	const char *desc = mg_plan_description(plan);
	if (!cli->json) {
		printf("%sPlan %s%s  (%s)\n", cli_c(cli->color_out, C_BOLD), mg_plan_name(plan),
		       cli_c(cli->color_out, C_RESET), mg_plan_file(plan));
		if (desc)
			printf("  %s\n", desc);
		printf("  state in %s/%s\n", cli_state_dir(cli, plan), mg_plan_name(plan));
	}
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	json_t *jb = b ? plan_build(cli, b) : NULL;
	json_t *jv = v ? plan_vms(cli, v) : NULL;
	json_t *jk = k ? plan_kubernetes(cli, k) : NULL;
	json_t *jt = t ? plan_traffic(cli, t, &err) : NULL;
	json_t *js = !err.code && s ? plan_slo(cli, s, &err) : NULL;
	if (err.code) {
		json_decref(doc);
		json_decref(jb);
		json_decref(jv);
		json_decref(jk);
		json_decref(jt);
		json_decref(js);
		mg_plan_free(plan);
		exit_code = cli_fail(cli, &err);
		mg_error_clear(&err);
		return exit_code;
	}
	if (!cli->json) {
		if (t) {
			char d1[32], d2[32];
			printf(
			    "\nAt least %s from the first step to 100%% (%zu steps x %s bake).\n",
			    dur(d1, sizeof(d1), t->bake_ms * (int64_t)t->nsteps), t->nsteps,
			    dur(d2, sizeof(d2), t->bake_ms));
		}
		printf("Nothing was changed.\n");
		mg_plan_free(plan);
		return EXIT_DONE;
	}
	json_object_set_new(doc, "plan",
	                    json_pack("{s:s, s:s, s:s?, s:s}", "name", mg_plan_name(plan), "file",
	                              mg_plan_file(plan), "description", desc, "state_dir",
	                              cli_state_dir(cli, plan)));
	json_object_set_new(doc, "build", or_null(jb));
	json_object_set_new(doc, "vms", or_null(jv));
	json_object_set_new(doc, "kubernetes", or_null(jk));
	json_object_set_new(doc, "traffic", or_null(jt));
	json_object_set_new(doc, "slo", or_null(js));
	json_object_set_new(doc, "minimum_duration_ms",
	                    t ? json_integer((json_int_t)(t->bake_ms * (int64_t)t->nsteps))
	                      : json_null());
	mg_plan_free(plan);
	return cli_doc_emit(cli, doc, EXIT_DONE);
}
