/* migrate plan: what the plan will do, changing nothing and contacting nothing. The
 * description is mg_migration_preview's; this prints it. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "migration.h"
#include "units.h"

#define TEXT_HOSTS 20 /* longer fleets are summarised unless -v */

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

/* Members of the preview document, NULL or 0 when absent or null. */
static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int64_t num(const json_t *o, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(o, key));
}

static double real(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *plural(int64_t n, const char *many)
{
	return n == 1 ? "" : many;
}

static void heading(const mg_cli *cli, const char *title)
{
	printf("\n%s%s%s\n", cli_c(cli->color_out, C_BOLD), title, cli_c(cli->color_out, C_RESET));
}

static void print_build(const mg_cli *cli, const json_t *b)
{
	heading(cli, "Build");
	if (str(b, "repo"))
		printf("  version    the commit at HEAD of %s\n", str(b, "repo"));
	if (str(b, "artifact"))
		printf("  artifact   %s\n", str(b, "artifact"));
	if (str(b, "image"))
		printf("  image      %s\n", str(b, "image"));
}

static void print_vms(const mg_cli *cli, const json_t *v)
{
	const json_t *hosts = json_object_get(v, "hosts"), *health = json_object_get(v, "health");
	size_t nhosts = json_array_size(hosts);
	int64_t bs = num(v, "batch_size"), nbatches = num(v, "batches");
	int64_t parallel = num(v, "parallel"), max_failures = num(v, "max_failures");
	char d1[32], head[128];
	snprintf(head, sizeof(head), "VM fleet: %zu host%s", nhosts, plural((int64_t)nhosts, "s"));
	heading(cli, head);
	printf("  as %s into %s/releases/<version>, current -> the live release\n", str(v, "user"),
	       str(v, "path"));
	printf("  %lld batch%s of up to %lld host%s, %lld connection%s at a time, stop after %lld "
	       "failed host%s; keep %lld releases\n",
	       (long long)nbatches, plural(nbatches, "es"), (long long)bs, plural(bs, "s"),
	       (long long)parallel, plural(parallel, "s"), (long long)max_failures,
	       plural(max_failures, "s"), (long long)num(v, "keep_releases"));
	printf("  activate   %s\n", str(v, "activate") ? str(v, "activate") : "(nothing)");
	if (json_is_object(health))
		printf("  health     %s within %s\n", str(health, "url"),
		       dur(d1, sizeof(d1), num(health, "timeout_ms")));
	printf("  ssh        %s, host keys from %s\n",
	       str(v, "identity_file") ? str(v, "identity_file") : "ssh-agent",
	       str(v, "known_hosts"));
	size_t show = cli->verbose || nhosts <= TEXT_HOSTS ? nhosts : TEXT_HOSTS;
	if (show)
		printf("  %-6s %-32s %-24s %s\n", "BATCH", "HOST", "ADDRESS", "PORT");
	for (size_t i = 0; i < show; i++) {
		const json_t *h = json_array_get(hosts, i);
		printf("  %-6lld %-32s %-24s %lld\n", (long long)num(h, "batch"), str(h, "name"),
		       str(h, "address"), (long long)num(h, "port"));
	}
	if (show < nhosts)
		printf("  ... and %zu more (-v lists them all)\n", nhosts - show);
}

static void print_kubernetes(const mg_cli *cli, const json_t *k)
{
	const json_t *templates = json_object_get(k, "templates");
	const json_t *files = json_object_get(templates, "files");
	const char *context = str(k, "context");
	char d1[32];
	heading(cli, "Kubernetes");
	printf("  namespace  %s%s%s\n", str(k, "namespace"), context ? ", context " : "",
	       context ? context : "");
	printf("  kubeconfig %s\n", str(k, "kubeconfig")
	                                ? str(k, "kubeconfig")
	                                : "$KUBECONFIG, ~/.kube/config or in-cluster");
	printf("  templates  %s", str(templates, "dir"));
	if (!json_is_array(files)) {
		printf(" (not readable)\n");
	} else {
		printf(" (%zu file%s)\n", json_array_size(files),
		       plural((int64_t)json_array_size(files), "s"));
		size_t i;
		json_t *f;
		json_array_foreach(files, i, f) printf("             - %s\n", json_string_value(f));
	}
	size_t i;
	json_t *cm;
	json_array_foreach(json_object_get(k, "configmaps"), i, cm)
	    printf("  configmap  %s from %s\n", str(cm, "name"), str(cm, "from_nginx"));
	const char *key;
	json_t *value;
	json_object_foreach(json_object_get(k, "values"), key, value)
	    printf("  value      %s = %s\n", key, json_string_value(value));
	printf("  rollout    applied server-side, waited for up to %s\n",
	       dur(d1, sizeof(d1), num(k, "rollout_timeout_ms")));
	printf("  conflicts  %s\n",
	       json_is_true(json_object_get(k, "force_conflicts"))
	           ? "forced: fields another manager owns are taken over (force_conflicts)"
	           : "refused: a field another manager owns fails the apply");
}

static void print_traffic(const mg_cli *cli, const json_t *t)
{
	const json_t *target = json_object_get(t, "target"), *steps = json_object_get(t, "steps");
	const char *provider = str(t, "provider");
	bool vm = strcmp(provider, "cloudflare") != 0; /* weights per server, not per pool */
	char where[512];
	if (!strcmp(provider, "haproxy"))
		snprintf(where, sizeof(where), "backend %s via %s", str(target, "backend"),
		         str(target, "socket") ? str(target, "socket") : str(target, "address"));
	else if (vm)
		snprintf(where, sizeof(where), "upstream %s in %s", str(target, "upstream"),
		         str(target, "upstream_file"));
	else
		snprintf(where, sizeof(where), "load balancer %s, pools %s (VMs) and %s (cluster)",
		         str(target, "load_balancer_id"), str(target, "vm_pool"),
		         str(target, "k8s_pool"));
	char d1[32], p1[32], p2[32], p3[32], head[160];
	bool c = cli->color_out;
	snprintf(head, sizeof(head), "Traffic: %zu steps through %s", json_array_size(steps),
	         str(t, "provider"));
	heading(cli, head);
	printf("  %s\n  at least %s at each step before the next\n", where,
	       dur(d1, sizeof(d1), num(t, "bake_ms")));
	if (vm)
		printf("  %s%-5s %-8s %-8s %-10s %s%s\n", cli_c(c, C_DIM), "STEP", "CLUSTER", "VMS",
		       "EFFECTIVE", "WEIGHTS (each VM server / each cluster server)",
		       cli_c(c, C_RESET));
	else
		printf("  %s%-5s %-8s %-8s %s%s\n", cli_c(c, C_DIM), "STEP", "CLUSTER", "VMS",
		       "POOL WEIGHTS (VMs / cluster)", cli_c(c, C_RESET));
	size_t i;
	json_t *s;
	json_array_foreach(steps, i, s)
	{
		double p = real(s, "k8s_percent");
		const json_t *pool = json_object_get(s, "pool_weights");
		if (vm)
			printf("  %-5zu %-8s %-8s %-10s %lld / %lld\n", i + 1,
			       pct(p1, sizeof(p1), p), pct(p2, sizeof(p2), real(s, "vm_percent")),
			       pct(p3, sizeof(p3), real(s, "effective_k8s_percent")),
			       (long long)num(s, "vm_weight"), (long long)num(s, "k8s_weight"));
		else
			printf("  %-5zu %-8s %-8s %.4g / %.4g\n", i + 1, pct(p1, sizeof(p1), p),
			       pct(p2, sizeof(p2), real(s, "vm_percent")), real(pool, "vm_pool"),
			       real(pool, "k8s_pool"));
	}
	printf("  rollback   all traffic back to the VMs in one call\n");
}

static void print_slo(const mg_cli *cli, const json_t *j)
{
	char d1[32], d2[32];
	bool c = cli->color_out;
	int64_t failure_limit = num(j, "failure_limit");
	heading(cli, "Gates");
	printf("  Prometheus %s\n", str(json_object_get(j, "prometheus"), "url"));
	printf("  every %s over the last %s (never reaching back before the step began)\n",
	       dur(d1, sizeof(d1), num(j, "interval_ms")),
	       dur(d2, sizeof(d2), num(j, "window_ms")));
	printf("  a step fails after %lld failed evaluation%s, then: %s\n",
	       (long long)failure_limit, plural(failure_limit, "s"), str(j, "on_failure"));
	printf("  error rates judged on counts with %g%% confidence, over test periods of %s "
	       "from the step's start\n",
	       json_number_value(json_object_get(j, "confidence")) * 100,
	       dur(d1, sizeof(d1), num(j, "test_period_ms")));
	if (num(j, "min_requests") > 0)
		printf("  nothing judged below %lld requests to the cluster (slo.min_requests)\n",
		       (long long)num(j, "min_requests"));
	printf("  no data, not yet enough requests or an unreachable Prometheus: inconclusive, "
	       "never a pass\n\n");
	size_t i;
	json_t *ck;
	json_array_foreach(json_object_get(j, "checks"), i, ck)
	{
		/* name and rule, then the PromQL, then the baseline if any */
		printf("  %s%-16s%s %s\n  %-16s %s%s%s\n", cli_c(c, C_BOLD), str(ck, "name"),
		       cli_c(c, C_RESET), str(ck, "rule"), "", cli_c(c, C_DIM), str(ck, "query"),
		       cli_c(c, C_RESET));
		if (str(ck, "baseline"))
			printf("  %-16s %sbaseline: %s%s\n", "", cli_c(c, C_DIM),
			       str(ck, "baseline"), cli_c(c, C_RESET));
		if (str(ck, "vm_requests_query"))
			printf("  %-16s %sVM requests: %s%s\n", "", cli_c(c, C_DIM),
			       str(ck, "vm_requests_query"), cli_c(c, C_RESET));
	}
}

int cmd_plan(mg_cli *cli, int argc, char **argv)
{
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, NULL, 0, &exit_code) < 0)
		return exit_code;
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	json_t *pv = NULL;
	if (cli_load_plan(cli, &plan, 0, &err) ||
	    mg_migration_preview(&pv, plan, cli_state_dir(cli, plan), &err)) {
		mg_plan_free(plan);
		exit_code = cli_fail(cli, &err);
		mg_error_clear(&err);
		return exit_code;
	}
	if (cli->json) {
		mg_plan_free(plan);
		json_t *doc = cli_doc(cli);
		json_object_update_new(doc, pv);
		return cli_doc_emit(cli, doc, EXIT_DONE);
	}
	const json_t *p = json_object_get(pv, "plan"), *t = json_object_get(pv, "traffic");
	printf("%sPlan %s%s  (%s)\n", cli_c(cli->color_out, C_BOLD), str(p, "name"),
	       cli_c(cli->color_out, C_RESET), str(p, "file"));
	if (str(p, "description"))
		printf("  %s\n", str(p, "description"));
	char where[600];
	printf("  state in %s\n", cli_state_where(cli, plan, where, sizeof(where)));
	if (json_is_object(json_object_get(pv, "build")))
		print_build(cli, json_object_get(pv, "build"));
	if (json_is_object(json_object_get(pv, "vms")))
		print_vms(cli, json_object_get(pv, "vms"));
	if (json_is_object(json_object_get(pv, "kubernetes")))
		print_kubernetes(cli, json_object_get(pv, "kubernetes"));
	if (json_is_object(t))
		print_traffic(cli, t);
	if (json_is_object(json_object_get(pv, "slo")))
		print_slo(cli, json_object_get(pv, "slo"));
	if (json_is_object(t)) {
		char d1[32], d2[32];
		printf("\nAt least %s from the first step to 100%% (%zu steps x %s bake).\n",
		       dur(d1, sizeof(d1), num(pv, "minimum_duration_ms")),
		       json_array_size(json_object_get(t, "steps")),
		       dur(d2, sizeof(d2), num(t, "bake_ms")));
	}
	printf("Nothing was changed.\n");
	json_decref(pv);
	mg_plan_free(plan);
	return EXIT_DONE;
}
