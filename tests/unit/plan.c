/*
 * The plan loader (lib/plan/): every class of diagnostic with its exact
 * line:col and key path, and the typed model a valid plan turns into.
 *
 * Inline plans are written one YAML line per string literal with the line
 * number beside it, so an expected position can be checked by eye. They load
 * with MG_PLAN_LOAD_NO_FS from "t.yaml" in /tmp unless a test says otherwise.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"
#include "error.h"
#include "plan.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* One expected diagnostic. */
typedef struct {
	int line, col;
	const char *path; /* NULL: the diagnostic names no key */
	const char *msg;  /* must occur in the message */
	const char *file; /* NULL: the plan itself, "t.yaml" */
} want;

/* Every diagnostic, one a line, for failure messages. */
static const char *listing(const mg_error *err)
{
	static char buf[32768];
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < err->ndiags && o < sizeof(buf) - 1; i++) {
		char line[2048];
		mg_diag_format(line, sizeof(line), &err->diags[i]);
		int n = snprintf(
		    buf + o, sizeof(buf) - o, "\n    %s %s",
		    err->diags[i].severity == MG_SEV_ERROR ? "error:  " : "warning:", line);
		if (n < 0)
			break;
		o += (size_t)n;
	}
	return buf;
}

/* The diagnostics of severity sev must be exactly w, in order. */
static void check_diags(const mg_error *err, mg_severity sev, const want *w, size_t n)
{
	const mg_diag *got[256];
	size_t ngot = 0;
	for (size_t i = 0; i < err->ndiags && ngot < N(got); i++)
		if (err->diags[i].severity == sev)
			got[ngot++] = &err->diags[i];
	cr_expect_eq(ngot, n, "%zu %s, want %zu:%s", ngot,
	             sev == MG_SEV_ERROR ? "errors" : "warnings", n, listing(err));
	for (size_t i = 0; i < n && i < ngot; i++) {
		const mg_diag *d = got[i];
		const char *file = w[i].file ? w[i].file : "t.yaml";
		bool ok = d->line == w[i].line && d->col == w[i].col && d->file &&
		          !strcmp(d->file, file) &&
		          (w[i].path ? d->path && !strcmp(d->path, w[i].path) : !d->path) &&
		          d->message && strstr(d->message, w[i].msg);
		cr_expect(ok, "diagnostic %zu: want %s:%d:%d: %s: ...%s...; got:%s", i, file,
		          w[i].line, w[i].col, w[i].path ? w[i].path : "(no path)", w[i].msg,
		          listing(err));
	}
}

static void expect_errors_(const char *yaml, const char *base, unsigned flags, const want *w,
                           size_t n)
{
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", base, flags, &err);
	cr_expect_eq(rc, MG_EINVALID, "rc %d (%s), want MG_EINVALID:%s", rc, err.message,
	             listing(&err));
	cr_expect_null(p);
	cr_expect_eq(err.code, MG_EINVALID);
	check_diags(&err, MG_SEV_ERROR, w, n);
	char msg[128];
	snprintf(msg, sizeof(msg), "t.yaml: %zu error%s in the plan", n, n == 1 ? "" : "s");
	cr_expect_str_eq(err.message, msg);
	mg_plan_free(p);
	mg_error_clear(&err);
}

/* Loads yaml and expects exactly the listed errors (warnings are not looked at). */
#define EXPECT_ERRORS_IN(yaml, base, flags, ...)                                                   \
	expect_errors_(yaml, base, flags, (const want[]){__VA_ARGS__},                             \
	               N(((const want[]){__VA_ARGS__})))
#define EXPECT_ERRORS(yaml, ...) EXPECT_ERRORS_IN(yaml, "/tmp", MG_PLAN_LOAD_NO_FS, __VA_ARGS__)

/* Loads yaml, which must succeed with no diagnostic at all. */
static mg_plan *load_ok_in(const char *yaml, const char *base, unsigned flags)
{
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", base, flags, &err);
	cr_assert_eq(rc, 0, "rc %d: %s%s", rc, err.message, listing(&err));
	cr_assert_not_null(p);
	cr_expect_eq(err.ndiags, 0, "unexpected diagnostics:%s", listing(&err));
	mg_error_clear(&err);
	return p;
}

static mg_plan *load_ok(const char *yaml)
{
	return load_ok_in(yaml, "/tmp", MG_PLAN_LOAD_NO_FS);
}

static const char *cwd(void)
{
	static char buf[PATH_MAX];
	cr_assert_not_null(getcwd(buf, sizeof(buf)));
	return buf;
}

static const char *join(const char *a, const char *b)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *r = bufs[next++ % 8];
	int n = snprintf(r, PATH_MAX, "%s/%s", a, b);
	cr_assert(n > 0 && n < PATH_MAX);
	return r;
}

/* ---- building blocks; each comment gives the line number in the plan ---- */

#define HEAD                                                                                       \
	"version: 1\n" /* 1 */                                                                     \
	"name: t\n"    /* 2 */

/* Lines 3-11: a valid haproxy traffic section with two VM servers and one cluster server. */
#define TRAFFIC_HAPROXY                                                                            \
	"traffic:\n"                            /* 3 */                                            \
	"  provider: haproxy\n"                 /* 4 */                                            \
	"  steps: [10, 50, 100]\n"              /* 5 */                                            \
	"  bake: 10m\n"                         /* 6 */                                            \
	"  haproxy:\n"                          /* 7 */                                            \
	"    socket: /run/haproxy/admin.sock\n" /* 8 */                                            \
	"    backend: web\n"                    /* 9 */                                            \
	"    vm_servers: [vm-01, vm-02]\n"      /* 10 */                                           \
	"    k8s_servers: [k8s]\n"              /* 11 */

/* Lines 3-12: a cloudflare traffic section without its token. */
#define TRAFFIC_CLOUDFLARE                                                                         \
	"traffic:\n"                                               /* 3 */                         \
	"  provider: cloudflare\n"                                 /* 4 */                         \
	"  steps: [10, 100]\n"                                     /* 5 */                         \
	"  bake: 10m\n"                                            /* 6 */                         \
	"  cloudflare:\n"                                          /* 7 */                         \
	"    account_id: 01a7362d577a6c3019a474fd6f485823\n"       /* 8 */                         \
	"    zone_id: 023e105f4ecef8ad9ca31a8372d0c353\n"          /* 9 */                         \
	"    load_balancer_id: 699d98642c564d2e855e9661899b7252\n" /* 10 */                        \
	"    vm_pool: 17b5962d775c646f3f9725cbc7a53df4\n"          /* 11 */                        \
	"    k8s_pool: 9290f38c5d07c2e2f4df57b1f61d4196\n"         /* 12 */

/* ---- real files ---- */

Test(plan, example_loads_without_diagnostics)
{
	setenv("HOME", "/home/op", 1);
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load(&p, "plans/example.yaml", 0, &err);
	cr_assert_eq(rc, 0, "rc %d: %s%s", rc, err.message, listing(&err));
	cr_assert_not_null(p);
	cr_expect_eq(mg_error_count(&err, MG_SEV_ERROR), 0, "%s", listing(&err));
	cr_expect_eq(mg_error_count(&err, MG_SEV_WARNING), 0, "%s", listing(&err));
	cr_expect_eq(err.ndiags, 0);
	cr_expect_str_eq(mg_plan_file(p), "plans/example.yaml");
	cr_expect_str_eq(mg_plan_dir(p), join(cwd(), "plans"));
	cr_expect_str_eq(mg_plan_name(p), "payments-api");
	cr_expect_str_eq(mg_plan_description(p),
	                 "Move payments-api from the VM fleet to Kubernetes");
	cr_expect_str_eq(mg_plan_state_dir(p), join(cwd(), ".migrate"));
	cr_expect_null(strstr(mg_plan_state_dir(p), "/../"));
	cr_expect_eq(mg_plan_require(p,
	                             MG_NEED_BUILD | MG_NEED_VMS | MG_NEED_KUBERNETES |
	                                 MG_NEED_TRAFFIC | MG_NEED_SLO | MG_NEED_VMS_OR_KUBERNETES,
	                             "migrate", &err),
	             0);
	mg_plan_free(p);
	mg_error_clear(&err);
}

static mg_plan *load_example(void)
{
	setenv("HOME", "/home/op", 1);
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load(&p, "plans/example.yaml", 0, &err);
	cr_assert_eq(rc, 0, "rc %d: %s%s", rc, err.message, listing(&err));
	mg_error_clear(&err);
	return p;
}

Test(plan, example_build)
{
	mg_plan *p = load_example();
	const mg_plan_build *b = mg_plan_build_section(p);
	cr_assert_not_null(b);
	cr_expect_str_eq(b->repo, cwd());
	cr_expect_str_eq(b->artifact, join(cwd(), "dist/payments-api-${version}.tar.gz"));
	cr_expect_str_eq(b->image, "registry.example.com/payments/api:${version}");
	mg_plan_free(p);
}

Test(plan, example_vms)
{
	mg_plan *p = load_example();
	const mg_plan_vms *v = mg_plan_vms_section(p);
	cr_assert_not_null(v);
	cr_assert_eq(v->nhosts, 4);
	static const mg_plan_host hosts[] = {
	    {.name = "vm-01.payments.internal", .address = "vm-01.payments.internal", .port = 22},
	    {.name = "vm-02.payments.internal", .address = "vm-02.payments.internal", .port = 22},
	    {.name = "vm-03", .address = "10.20.0.13", .port = 22},
	    {.name = "vm-04", .address = "10.20.0.14", .port = 2222},
	};
	for (size_t i = 0; i < 4; i++) {
		cr_expect_str_eq(v->hosts[i].name, hosts[i].name, "host %zu", i);
		cr_expect_str_eq(v->hosts[i].address, hosts[i].address, "host %zu", i);
		cr_expect_eq(v->hosts[i].port, hosts[i].port, "host %zu", i);
	}
	cr_expect_null(v->inventory);
	cr_expect_str_eq(v->user, "deploy");
	cr_expect_str_eq(v->identity_file, "/home/op/.ssh/id_ed25519");
	cr_expect_null(v->passphrase_env);
	cr_expect_str_eq(v->known_hosts, "/home/op/.ssh/known_hosts");
	cr_expect_str_eq(v->path, "/srv/payments-api");
	cr_expect_eq(v->keep_releases, 5);
	cr_expect_eq(v->parallel, 10);
	cr_expect_eq(v->batch_count, 0);
	cr_expect_eq(v->batch_percent, 25.0);
	cr_expect_eq(v->max_failures, 0);
	cr_expect_str_eq(v->activate, "sudo systemctl restart payments-api");
	cr_expect_str_eq(v->health_url, "http://${host}:8080/healthz");
	cr_expect_eq(v->health_timeout_ms, 30000);
	cr_expect_eq(v->connect_timeout_ms, 10000);
	cr_expect_eq(v->command_timeout_ms, 300000);
	cr_expect_eq(mg_plan_vms_batch_size(v), 1);
	mg_plan_free(p);
}

Test(plan, example_kubernetes)
{
	mg_plan *p = load_example();
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(p);
	cr_assert_not_null(k);
	cr_expect_null(k->kubeconfig);
	cr_expect_str_eq(k->context, "prod");
	cr_expect_str_eq(k->namespace_, "payments");
	cr_expect_str_eq(k->templates, join(cwd(), "templates/web"));
	cr_assert_eq(k->nvalues, 6);
	cr_expect_str_eq(k->values[0].key, "replicas");
	cr_expect_str_eq(k->values[0].value, "3");
	cr_expect_eq(k->values[0].is_string, false);
	cr_expect_str_eq(k->values[1].key, "cpu");
	cr_expect_str_eq(k->values[1].value, "500m");
	cr_expect_eq(k->values[1].is_string, true);
	cr_expect_str_eq(k->values[2].key, "port");
	cr_expect_str_eq(k->values[2].value, "8080");
	cr_expect_eq(k->values[2].is_string, false);
	cr_assert_eq(k->nconfigmaps, 1);
	cr_expect_str_eq(k->configmaps[0].name, "payments-nginx");
	cr_expect_str_eq(k->configmaps[0].from_nginx,
	                 join(cwd(), "examples/legacy-nginx/nginx.conf"));
	cr_expect_eq(k->rollout_timeout_ms, 600000);
	mg_plan_free(p);
}

Test(plan, example_traffic)
{
	mg_plan *p = load_example();
	const mg_plan_traffic *t = mg_plan_traffic_section(p);
	cr_assert_not_null(t);
	cr_expect_eq(t->provider, MG_PROVIDER_HAPROXY);
	cr_expect_str_eq(mg_provider_name(t->provider), "haproxy");
	static const double steps[] = {10, 25, 50, 75, 100};
	cr_assert_eq(t->nsteps, N(steps));
	for (size_t i = 0; i < N(steps); i++)
		cr_expect_eq(t->steps[i], steps[i], "step %zu: %g", i, t->steps[i]);
	cr_expect_eq(t->bake_ms, 600000);
	cr_expect_null(t->nginx);
	cr_expect_null(t->cloudflare);
	const mg_plan_haproxy *h = t->haproxy;
	cr_assert_not_null(h);
	cr_expect_str_eq(h->socket, "/run/haproxy/admin.sock");
	cr_expect_null(h->address);
	cr_expect_str_eq(h->backend, "payments");
	cr_assert_eq(h->nvm_servers, 4);
	cr_expect_str_eq(h->vm_servers[0], "vm-01");
	cr_expect_str_eq(h->vm_servers[1], "vm-02");
	cr_expect_str_eq(h->vm_servers[2], "vm-03");
	cr_expect_str_eq(h->vm_servers[3], "vm-04");
	cr_assert_eq(h->nk8s_servers, 1);
	cr_expect_str_eq(h->k8s_servers[0], "k8s");
	cr_expect_eq(h->timeout_ms, 5000);
	mg_plan_free(p);
}

Test(plan, example_slo)
{
	mg_plan *p = load_example();
	const mg_plan_slo *s = mg_plan_slo_section(p);
	cr_assert_not_null(s);
	cr_expect_str_eq(s->prometheus_url, "http://127.0.0.1:9090");
	cr_expect_null(s->token_env);
	cr_expect_null(s->token_file);
	cr_expect_null(s->ca_file);
	cr_expect_eq(s->prometheus_timeout_ms, 10000);
	cr_expect_eq(s->interval_ms, 30000);
	cr_expect_eq(s->window_ms, 300000);
	cr_expect_eq(s->min_requests, 0);
	cr_expect_eq(s->test_period_ms, 600000, "traffic.bake (10m) is longer than the window");
	cr_expect_eq(s->failure_limit, 2);
	cr_expect_eq(s->on_failure, MG_ON_FAILURE_ROLLBACK);
	const mg_plan_red *r = s->red;
	cr_assert_not_null(r);
	cr_expect_eq(r->source, MG_RED_HAPROXY);
	cr_expect_str_eq(r->backend, "payments");
	cr_expect_null(r->ingress);
	cr_expect_null(r->namespace_);
	cr_expect_eq(r->max_error_rate, 0.01);
	cr_expect_eq(r->max_latency_ms, 300);
	cr_expect_eq(r->max_error_rate_vs_vms, 2.0);
	/* taken from traffic.haproxy */
	cr_assert_eq(r->nvm_servers, 4);
	cr_expect_str_eq(r->vm_servers[0], "vm-01");
	cr_expect_str_eq(r->vm_servers[3], "vm-04");
	cr_assert_eq(r->nk8s_servers, 1);
	cr_expect_str_eq(r->k8s_servers[0], "k8s");
	cr_assert_eq(s->nchecks, 1);
	const mg_plan_check *c = &s->checks[0];
	cr_expect_str_eq(c->name, "checkout-success");
	cr_expect_str_eq(c->query, "sum(rate(checkout_ok_total{side=\"k8s\"}[${window}])) / "
	                           "sum(rate(checkout_total{side=\"k8s\"}[${window}]))");
	cr_expect(c->has_min);
	cr_expect_eq(c->min, 0.995);
	cr_expect_not(c->has_max);
	cr_expect_null(c->baseline);
	mg_plan_free(p);
}

Test(plan, four_errors_fixture)
{
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	const char *f = "tests/fixtures/plans/four-errors.yaml";
	int rc = mg_plan_load(&p, f, 0, &err);
	cr_expect_eq(rc, MG_EINVALID);
	cr_expect_null(p);
	const want w[] = {
	    {5, 19, "traffic.steps[2]", "40 is lower than the step before it (50)", f},
	    {6, 9, "traffic.bake", "\"10 minutes\" is not a duration", f},
	    {13, 5, "traffic.cloudflare.token",
	     "secrets may not be written into the plan; put it in an environment variable and "
	     "give that variable's name in `token_env`",
	     f},
	    {16, 3, "slo.intreval", "unknown key; did you mean \"interval\"?", f},
	};
	check_diags(&err, MG_SEV_ERROR, w, N(w));
	cr_expect_eq(mg_error_count(&err, MG_SEV_WARNING), 0);
	cr_expect_str_eq(err.message,
	                 "tests/fixtures/plans/four-errors.yaml: 4 errors in the plan");
	mg_error_clear(&err);
}

Test(plan, missing_plan_file)
{
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load(&p, "tests/fixtures/plans/does-not-exist.yaml", 0, &err);
	cr_expect_eq(rc, MG_EINVALID);
	cr_expect_null(p);
	cr_expect_str_eq(err.message, "tests/fixtures/plans/does-not-exist.yaml: no such plan file "
	                              "(give one with -p FILE, or create migrate.yaml; see "
	                              "docs/plan.md)");
	mg_error_clear(&err);
}

Test(plan, minimal_fixture_file)
{
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load(&p, "tests/fixtures/plans/minimal.yaml", 0, &err);
	cr_assert_eq(rc, 0, "%s%s", err.message, listing(&err));
	cr_expect_eq(err.ndiags, 0, "%s", listing(&err));
	cr_expect_str_eq(mg_plan_name(p), "minimal");
	cr_expect_null(mg_plan_description(p));
	cr_expect_str_eq(mg_plan_dir(p), join(cwd(), "tests/fixtures/plans"));
	cr_expect_str_eq(mg_plan_state_dir(p), join(cwd(), "tests/fixtures/plans/.migrate"));
	cr_expect_null(mg_plan_build_section(p));
	cr_expect_null(mg_plan_vms_section(p));
	cr_expect_null(mg_plan_kubernetes_section(p));
	cr_expect_null(mg_plan_traffic_section(p));
	cr_expect_null(mg_plan_slo_section(p));
	mg_plan_free(p);
	mg_error_clear(&err);
}

/* ---- the document ---- */

Test(plan, yaml_syntax_error_position_from_libyaml)
{
	EXPECT_ERRORS(HEAD "  bad: x\n", /* 3 */
	              {3, 6, NULL, "invalid YAML: mapping values are not allowed in this context"});
}

Test(plan, yaml_unterminated_quote)
{
	EXPECT_ERRORS(
	    "version: 1\n" /* 1 */
	    "name: \"t\n", /* 2 */
	    {3, 1, NULL,
	     "invalid YAML: found unexpected end of stream while scanning a quoted scalar"});
}

Test(plan, yaml_tab_indentation)
{
	EXPECT_ERRORS(
	    "version: 1\n" /* 1 */
	    "\tname: t\n", /* 2 */
	    {2, 1, NULL, "invalid YAML: found a tab character that violates indentation"});
}

Test(plan, empty_file)
{
	EXPECT_ERRORS("", {1, 1, NULL, "the plan is empty; see docs/plan.md for an example"});
}

Test(plan, comments_only_file_is_empty)
{
	EXPECT_ERRORS("# nothing here yet\n\n", {1, 1, NULL, "the plan is empty"});
}

Test(plan, second_document)
{
	EXPECT_ERRORS(
	    HEAD "---\n"      /* 3 */
	         "name: u\n", /* 4 */
	    {4, 1, NULL, "a plan file holds one YAML document; found another after \"---\""});
}

Test(plan, root_is_a_list)
{
	EXPECT_ERRORS("- version: 1\n" /* 1 */
	              "- name: t\n",   /* 2 */
	              {1, 1, NULL, "expected a mapping (key: value lines), found a list"});
}

Test(plan, root_is_a_scalar)
{
	EXPECT_ERRORS("just some words\n",
	              {1, 1, NULL, "expected a mapping (key: value lines), found a single value"});
}

/* ---- version and name ---- */

Test(plan, version_missing)
{
	EXPECT_ERRORS("name: t\n",
	              {1, 1, NULL, "missing required key \"version\"; write `version: 1`"});
}

Test(plan, version_wrong)
{
	EXPECT_ERRORS("version: 2\n" /* 1 */
	              "name: t\n",   /* 2 */
	              {1, 10, "version",
	               "this migrate reads plan version 1; \"2\" is from a different release"});
	EXPECT_ERRORS("version: 1.0\nname: t\n", {1, 10, "version", "\"1.0\" is from a different"});
}

Test(plan, version_as_quoted_string_is_accepted)
{
	mg_plan *p = load_ok("version: \"1\"\nname: t\n");
	cr_expect_str_eq(mg_plan_name(p), "t");
	mg_plan_free(p);
}

Test(plan, name_upper_case)
{
	EXPECT_ERRORS(
	    "version: 1\n"      /* 1 */
	    "name: Payments\n", /* 2 */
	    {2, 7, "name",
	     "\"Payments\" must be 1 to 63 lower case letters, digits or '-', starting and "
	     "ending with a letter or digit (it names the state directory)"});
}

Test(plan, name_too_long)
{
	/* 63 characters is the longest name */
	mg_plan *p = load_ok("version: 1\nname: "
	                     "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk\n");
	cr_expect_eq(strlen(mg_plan_name(p)), 63);
	mg_plan_free(p);
	EXPECT_ERRORS("version: 1\nname: "
	              "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl\n",
	              {2, 7, "name", "must be 1 to 63 lower case letters"});
}

Test(plan, name_leading_or_trailing_dash)
{
	EXPECT_ERRORS("version: 1\nname: -api\n", {2, 7, "name", "\"-api\" must be 1 to 63"});
	EXPECT_ERRORS("version: 1\nname: api-\n", {2, 7, "name", "\"api-\" must be 1 to 63"});
	EXPECT_ERRORS("version: 1\nname: pay_api\n", {2, 7, "name", "\"pay_api\" must be"});
}

Test(plan, name_missing)
{
	EXPECT_ERRORS("version: 1\n", {1, 1, NULL, "missing required key \"name\""});
	EXPECT_ERRORS("version: 1\nname:\n", {1, 1, NULL, "missing required key \"name\""});
}

/* ---- keys ---- */

Test(plan, unknown_top_level_key_with_suggestion)
{
	EXPECT_ERRORS(HEAD "tarffic:\n"             /* 3 */
	                   "  provider: haproxy\n", /* 4 */
	              {3, 1, "tarffic", "unknown key; did you mean \"traffic\"?"});
}

Test(plan, unknown_nested_key_with_suggestion)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                       /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n"     /* 4 */
	                   "  intreval: 30s\n"                            /* 5 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 6 */
	              {5, 3, "slo.intreval", "unknown key; did you mean \"interval\"?"});
}

Test(plan, unknown_top_level_key_lists_valid_keys)
{
	EXPECT_ERRORS(HEAD "colour: blue\n", /* 3 */
	              {3, 1, "colour",
	               "unknown key; the top level takes: version, name, description, build, vms, "
	               "kubernetes, traffic, slo, state"});
}

Test(plan, unknown_nested_key_lists_valid_keys)
{
	EXPECT_ERRORS(HEAD "vms:\n"               /* 3 */
	                   "  hosts: [a]\n"       /* 4 */
	                   "  user: u\n"          /* 5 */
	                   "  path: /srv/a\n"     /* 6 */
	                   "  health:\n"          /* 7 */
	                   "    url: http://x/\n" /* 8 */
	                   "    retries: 3\n",    /* 9 */
	              {9, 5, "vms.health.retries", "unknown key; vms.health takes: url, timeout"});
}

Test(plan, duplicate_top_level_key)
{
	EXPECT_ERRORS(HEAD "name: u\n", /* 3 */
	              {3, 1, "name", "duplicate key (first set on line 2)"});
}

Test(plan, duplicate_nested_key)
{
	EXPECT_ERRORS(HEAD "vms:\n"           /* 3 */
	                   "  hosts: [a]\n"   /* 4 */
	                   "  user: u\n"      /* 5 */
	                   "  path: /srv/a\n" /* 6 */
	                   "  user: v\n",     /* 7 */
	              {7, 3, "vms.user", "duplicate key (first set on line 5)"});
}

/* ---- secrets ---- */

Test(plan, inline_secrets_in_several_sections)
{
	EXPECT_ERRORS(
	    HEAD "api_key: abc\n"                               /* 3 */
	         "build:\n"                                     /* 4 */
	         "  artifact: app-${version}.tgz\n"             /* 5 */
	         "  github_token: abc\n"                        /* 6 */
	         "vms:\n"                                       /* 7 */
	         "  hosts: [a]\n"                               /* 8 */
	         "  user: u\n"                                  /* 9 */
	         "  path: /srv/a\n"                             /* 10 */
	         "  passphrase: hunter2\n"                      /* 11 */
	         "slo:\n"                                       /* 12 */
	         "  prometheus:\n"                              /* 13 */
	         "    url: \"http://p:9090\"\n"                 /* 14 */
	         "    password: hunter2\n"                      /* 15 */
	         "  checks: [{name: up, query: up, min: 1}]\n", /* 16 */
	    {3, 1, "api_key",
	     "secrets may not be written into the plan, and the top level takes none"},
	    {6, 3, "build.github_token",
	     "secrets may not be written into the plan, and build takes none"},
	    {11, 3, "vms.passphrase",
	     "secrets may not be written into the plan; put it in an environment variable "
	     "and give that variable's name in `passphrase_env`"},
	    {15, 5, "slo.prometheus.password", "give that variable's name in `token_env`"});
}

Test(plan, inline_cloudflare_token)
{
	EXPECT_ERRORS(
	    HEAD TRAFFIC_CLOUDFLARE "    token: Yx3kP9qLmN2vB8wR5tZ7cD4fG6hJ1sA0eU\n", /* 13 */
	    {13, 5, "traffic.cloudflare.token",
	     "secrets may not be written into the plan; put it in an environment variable "
	     "and give that variable's name in `token_env`"});
}

Test(plan, inline_secrets_ending_in_token)
{
	EXPECT_ERRORS(HEAD TRAFFIC_CLOUDFLARE "    token_env: CF_TOKEN\n"  /* 13 */
	                                      "    api_token: abc\n"       /* 14 */
	                                      "    cf_token: abc\n"        /* 15 */
	                                      "    admin_password: abc\n", /* 16 */
	              {14, 5, "traffic.cloudflare.api_token", "`token_env`"},
	              {15, 5, "traffic.cloudflare.cf_token", "`token_env`"},
	              {16, 5, "traffic.cloudflare.admin_password", "`token_env`"});
}

Test(plan, token_env_holding_a_token)
{
	EXPECT_ERRORS(
	    HEAD TRAFFIC_CLOUDFLARE "    token_env: Yx3kP9qLmN2vB8wR5tZ7cD4fG6hJ1sA0eU\n", /* 13 */
	    {13, 16, "traffic.cloudflare.token_env",
	     "must be the name of an environment variable (such as CLOUDFLARE_API_TOKEN); "
	     "this looks like a secret itself, which must never be in the plan"});
	EXPECT_ERRORS(HEAD "slo:\n"                                        /* 3 */
	                   "  prometheus:\n"                               /* 4 */
	                   "    url: \"http://p:9090\"\n"                  /* 5 */
	                   "    token_env: glpat1x2y3z4a5b6c7d8e9f0ghij\n" /* 6 */
	                   "  checks: [{name: up, query: up, min: 1}]\n",  /* 7 */
	              {6, 16, "slo.prometheus.token_env", "this looks like a secret itself"});
}

Test(plan, token_env_not_a_variable_name)
{
	EXPECT_ERRORS(
	    HEAD TRAFFIC_CLOUDFLARE "    token_env: cloudflare-token\n", /* 13 */
	    {13, 16, "traffic.cloudflare.token_env",
	     "\"cloudflare-token\" is not an environment variable name (letters, digits and '_', "
	     "not starting with a digit)"});
	EXPECT_ERRORS(HEAD TRAFFIC_CLOUDFLARE "    token_env: 1TOKEN\n", /* 13 */
	              {13, 16, "traffic.cloudflare.token_env",
	               "\"1TOKEN\" is not an environment variable name"});
}

/* A name that is merely malformed is not called a secret (it once was). */
Test(plan, token_env_bad_name_is_not_called_a_secret)
{
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	const char *yaml = HEAD TRAFFIC_CLOUDFLARE "    token_env: cloudflare-token\n";
	cr_expect_eq(
	    mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", "/tmp", MG_PLAN_LOAD_NO_FS, &err),
	    MG_EINVALID);
	cr_assert_eq(err.ndiags, 1, "%s", listing(&err));
	cr_expect_null(strstr(err.diags[0].message, "looks like a secret"), "%s",
	               err.diags[0].message);
	mg_error_clear(&err);
}

Test(plan, token_env_and_token_file)
{
	EXPECT_ERRORS(HEAD TRAFFIC_CLOUDFLARE "    token_env: CF_TOKEN\n"                /* 13 */
	                                      "    token_file: /etc/cloudflare.token\n", /* 14 */
	              {14, 17, "traffic.cloudflare.token_file",
	               "give either \"token_env\" or \"token_file\", not both"});
	EXPECT_ERRORS(HEAD "slo:\n"                                       /* 3 */
	                   "  prometheus:\n"                              /* 4 */
	                   "    url: \"http://p:9090\"\n"                 /* 5 */
	                   "    token_env: PROM_TOKEN\n"                  /* 6 */
	                   "    token_file: prom.token\n"                 /* 7 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 8 */
	              {7, 17, "slo.prometheus.token_file", "give either"});
}

Test(plan, token_file_must_exist)
{
	char dir[PATH_MAX];
	tu_tmpdir_make(dir, sizeof(dir), "plan");
	char msg[PATH_MAX + 64];
	snprintf(msg, sizeof(msg), "%s/missing.token: No such file or directory", dir);
	EXPECT_ERRORS_IN(HEAD "slo:\n"                                       /* 3 */
	                      "  prometheus:\n"                              /* 4 */
	                      "    url: \"http://p:9090\"\n"                 /* 5 */
	                      "    token_file: missing.token\n"              /* 6 */
	                      "  checks: [{name: up, query: up, min: 1}]\n", /* 7 */
	                 dir, 0, {6, 17, "slo.prometheus.token_file", msg});
	/* an existing one loads, as an absolute path */
	FILE *f = fopen(join(dir, "prom.token"), "w");
	cr_assert_not_null(f);
	fclose(f);
	mg_plan *p = load_ok_in(HEAD "slo:\n"
	                             "  prometheus:\n"
	                             "    url: \"http://p:9090\"\n"
	                             "    token_file: ./prom.token\n"
	                             "  checks: [{name: up, query: up, min: 1}]\n",
	                        dir, 0);
	cr_expect_str_eq(mg_plan_slo_section(p)->token_file, join(dir, "prom.token"));
	cr_expect_null(mg_plan_slo_section(p)->token_env);
	mg_plan_free(p);
	tu_tmpdir_remove(dir);
}

Test(plan, cloudflare_needs_a_token)
{
	EXPECT_ERRORS(HEAD TRAFFIC_CLOUDFLARE,
	              {8, 5, "traffic.cloudflare",
	               "needs \"token_env\" (the name of an environment variable holding the API "
	               "token) or \"token_file\""});
}

/* ---- node types ---- */

Test(plan, list_where_a_mapping_is_expected)
{
	EXPECT_ERRORS(HEAD "vms: [a, b]\n", /* 3 */
	              {3, 6, "vms", "expected a mapping (key: value lines), found a list"});
	EXPECT_ERRORS(
	    HEAD "slo:\n"                                       /* 3 */
	         "  prometheus: [http://p]\n"                   /* 4 */
	         "  checks: [{name: up, query: up, min: 1}]\n", /* 5 */
	    {4, 15, "slo.prometheus", "expected a mapping (key: value lines), found a list"});
}

Test(plan, mapping_where_a_value_is_expected)
{
	EXPECT_ERRORS(HEAD "description:\n" /* 3 */
	                   "  text: hi\n",  /* 4 */
	              {4, 3, "description", "expected a single value, found a mapping"});
	EXPECT_ERRORS(HEAD "vms:\n"                   /* 3 */
	                   "  hosts: [a]\n"           /* 4 */
	                   "  user: {name: deploy}\n" /* 5 */
	                   "  path: /srv/a\n",        /* 6 */
	              {5, 9, "vms.user", "expected a single value, found a mapping"});
}

Test(plan, value_where_a_list_is_expected)
{
	EXPECT_ERRORS(HEAD "vms:\n"            /* 3 */
	                   "  hosts: vm-01\n"  /* 4 */
	                   "  user: u\n"       /* 5 */
	                   "  path: /srv/a\n", /* 6 */
	              {4, 10, "vms.hosts", "expected a list, found a single value"});
}

Test(plan, list_inside_a_list_of_steps)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                            /* 3 */
	                   "  provider: haproxy\n"                 /* 4 */
	                   "  steps: [[10], 100]\n"                /* 5 */
	                   "  bake: 10m\n"                         /* 6 */
	                   "  haproxy:\n"                          /* 7 */
	                   "    socket: /run/haproxy/admin.sock\n" /* 8 */
	                   "    backend: web\n"                    /* 9 */
	                   "    vm_servers: [vm-01, vm-02]\n"      /* 10 */
	                   "    k8s_servers: [k8s]\n",             /* 11 */
	              {5, 11, "traffic.steps[0]", "expected a single value, found a list"});
}

/* ---- durations, numbers, percentages ---- */

Test(plan, durations)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                                            /* 3 */
	                   "  provider: haproxy\n"                                 /* 4 */
	                   "  steps: [10, 100]\n"                                  /* 5 */
	                   "  bake: 600\n"                                         /* 6 */
	                   "  haproxy:\n"                                          /* 7 */
	                   "    socket: /run/haproxy/admin.sock\n"                 /* 8 */
	                   "    backend: web\n"                                    /* 9 */
	                   "    vm_servers: [vm-01, vm-02]\n"                      /* 10 */
	                   "    k8s_servers: [k8s]\n"                              /* 11 */
	                   "    timeout: 5 s\n"                                    /* 12 */
	                   "slo:\n"                                                /* 13 */
	                   "  prometheus: {url: \"http://p:9090\", timeout: 2x}\n" /* 14 */
	                   "  interval: 100ms\n"                                   /* 15 */
	                   "  window: 5m\n"                                        /* 16 */
	                   "  checks: [{name: up, query: up, min: 1}]\n",          /* 17 */
	              {6, 9, "traffic.bake", "\"600\" has no unit; write 600s, 600m or 600ms"},
	              {12, 14, "traffic.haproxy.timeout", "\"5 s\" is not a duration"},
	              {14, 47, "slo.prometheus.timeout",
	               "\"2x\" is not a duration: unknown unit \"x\" (use ms, s, m or h)"},
	              {15, 13, "slo.interval", "100ms is too short; the minimum is 1s"});
}

Test(plan, whole_numbers)
{
	EXPECT_ERRORS(HEAD "vms:\n"                 /* 3 */
	                   "  hosts: [a]\n"         /* 4 */
	                   "  user: u\n"            /* 5 */
	                   "  path: /srv/a\n"       /* 6 */
	                   "  keep_releases: 1\n"   /* 7 */
	                   "  parallel: ten\n"      /* 8 */
	                   "  max_failures: 1.5\n", /* 9 */
	              {7, 18, "vms.keep_releases", "1 is out of range (2 to 1000)"},
	              {8, 13, "vms.parallel", "\"ten\" is not a whole number"},
	              {9, 17, "vms.max_failures", "\"1.5\" is not a whole number"});
}

Test(plan, percentages_in_steps)
{
	EXPECT_ERRORS(
	    HEAD "traffic:\n"                            /* 3 */
	         "  provider: haproxy\n"                 /* 4 */
	         "  steps: [ten, -5, 150, 100]\n"        /* 5 */
	         "  bake: 10m\n"                         /* 6 */
	         "  haproxy:\n"                          /* 7 */
	         "    socket: /run/haproxy/admin.sock\n" /* 8 */
	         "    backend: web\n"                    /* 9 */
	         "    vm_servers: [vm-01, vm-02]\n"      /* 10 */
	         "    k8s_servers: [k8s]\n",             /* 11 */
	    {5, 11, "traffic.steps[0]",
	     "\"ten\" is not a percentage: write a number such as 10% or 0.5%"},
	    {5, 16, "traffic.steps[1]", "\"-5\" is out of range: a percentage is from 0% to 100%"},
	    {5, 20, "traffic.steps[2]",
	     "\"150\" is out of range: a percentage is from 0% to 100%"});
}

Test(plan, percentages_and_rates_in_red)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  red:\n"                                 /* 5 */
	                   "    source: haproxy\n"                    /* 6 */
	                   "    backend: web\n"                       /* 7 */
	                   "    vm_servers: [a]\n"                    /* 8 */
	                   "    k8s_servers: [b]\n"                   /* 9 */
	                   "    max_error_rate: 150%\n",              /* 10 */
	              {10, 21, "slo.red.max_error_rate",
	               "\"150%\" is out of range: a percentage is from 0% to 100%"});
	EXPECT_ERRORS(
	    HEAD "slo:\n"                                   /* 3 */
	         "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	         "  red:\n"                                 /* 5 */
	         "    source: haproxy\n"                    /* 6 */
	         "    backend: web\n"                       /* 7 */
	         "    vm_servers: [a]\n"                    /* 8 */
	         "    k8s_servers: [b]\n"                   /* 9 */
	         "    max_error_rate: lots\n",              /* 10 */
	    {10, 21, "slo.red.max_error_rate",
	     "\"lots\" is not a rate; write a percentage such as 1% or a ratio from 0 to 1"});
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  red:\n"                                 /* 5 */
	                   "    source: haproxy\n"                    /* 6 */
	                   "    backend: web\n"                       /* 7 */
	                   "    vm_servers: [a]\n"                    /* 8 */
	                   "    k8s_servers: [b]\n"                   /* 9 */
	                   "    max_error_rate: -0.1\n",              /* 10 */
	              {10, 21, "slo.red.max_error_rate", "\"-0.1\" is not a rate"});
}

Test(plan, rates_as_ratio_or_percent)
{
	mg_plan *p = load_ok(HEAD "slo:\n"
	                          "  prometheus: {url: \"http://p:9090\"}\n"
	                          "  red:\n"
	                          "    source: haproxy\n"
	                          "    backend: web\n"
	                          "    vm_servers: [a]\n"
	                          "    k8s_servers: [b]\n"
	                          "    max_error_rate: 0.25\n");
	const mg_plan_red *r = mg_plan_slo_section(p)->red;
	cr_expect_eq(r->max_error_rate, 0.25);
	cr_expect_lt(r->max_latency_ms, 0);
	cr_expect_lt(r->max_error_rate_vs_vms, 0);
	mg_plan_free(p);
	p = load_ok(HEAD "slo:\n"
	                 "  prometheus: {url: \"http://p:9090\"}\n"
	                 "  red:\n"
	                 "    source: haproxy\n"
	                 "    backend: web\n"
	                 "    vm_servers: [a]\n"
	                 "    k8s_servers: [b]\n"
	                 "    max_error_rate: 0.5%\n");
	cr_expect_eq(mg_plan_slo_section(p)->red->max_error_rate, 0.005);
	mg_plan_free(p);
}

/* ---- steps ---- */

#define STEPS_PLAN(steps)                                                                          \
	HEAD "traffic:\n"                            /* 3 */                                       \
	     "  provider: haproxy\n"                 /* 4 */                                       \
	     "  steps: " steps "\n"                  /* 5 */                                       \
	     "  bake: 10m\n"                         /* 6 */                                       \
	     "  haproxy:\n"                          /* 7 */                                       \
	     "    socket: /run/haproxy/admin.sock\n" /* 8 */                                       \
	     "    backend: web\n"                    /* 9 */                                       \
	     "    vm_servers: [vm-01, vm-02]\n"      /* 10 */                                      \
	     "    k8s_servers: [k8s]\n"              /* 11 */

Test(plan, steps_decreasing)
{
	EXPECT_ERRORS(STEPS_PLAN("[10, 50, 40, 100]"),
	              {5, 19, "traffic.steps[2]",
	               "40 is lower than the step before it (50); steps must increase"});
}

Test(plan, steps_equal)
{
	EXPECT_ERRORS(STEPS_PLAN("[10, 10, 100]"),
	              {5, 15, "traffic.steps[1]",
	               "10 is the same as the step before it (10); steps must increase"});
}

Test(plan, steps_zero)
{
	EXPECT_ERRORS(STEPS_PLAN("[0, 50, 100]"),
	              {5, 11, "traffic.steps[0]",
	               "a step sends some traffic to the cluster; 0% is where every migration "
	               "starts and `migrate rollback` returns"});
	EXPECT_ERRORS(STEPS_PLAN("[\"0%\", 100]"), {5, 11, "traffic.steps[0]", "0% is where"});
}

Test(plan, steps_not_ending_at_100)
{
	EXPECT_ERRORS(STEPS_PLAN("[10, 50]"),
	              {5, 15, "traffic.steps[1]",
	               "the last step must be 100, so the migration ends with all traffic on the "
	               "cluster"});
}

Test(plan, steps_empty)
{
	EXPECT_ERRORS(STEPS_PLAN("[]"),
	              {5, 10, "traffic.steps", "no steps; the last step must be 100"});
}

Test(plan, steps_missing)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                            /* 3 */
	                   "  provider: haproxy\n"                 /* 4 */
	                   "  bake: 10m\n"                         /* 5 */
	                   "  haproxy:\n"                          /* 6 */
	                   "    socket: /run/haproxy/admin.sock\n" /* 7 */
	                   "    backend: web\n"                    /* 8 */
	                   "    vm_servers: [vm-01, vm-02]\n"      /* 9 */
	                   "    k8s_servers: [k8s]\n",             /* 10 */
	              {4, 3, "traffic", "missing required key \"steps\""});
}

Test(plan, steps_in_every_form)
{
	mg_plan *p = load_ok(STEPS_PLAN("[\"0.5%\", 10%, 33.3, 100%]"));
	const mg_plan_traffic *t = mg_plan_traffic_section(p);
	cr_assert_eq(t->nsteps, 4);
	cr_expect_eq(t->steps[0], 0.5);
	cr_expect_eq(t->steps[1], 10);
	cr_expect_eq(t->steps[2], 33.3);
	cr_expect_eq(t->steps[3], 100);
	mg_plan_free(p);
	p = load_ok(STEPS_PLAN("\n    - 25\n    - 100"));
	cr_assert_eq(mg_plan_traffic_section(p)->nsteps, 2);
	cr_expect_eq(mg_plan_traffic_section(p)->steps[0], 25);
	mg_plan_free(p);
}

Test(plan, step_not_representable_as_weights)
{
	/* one VM server against three cluster servers cannot go below 3/(256+3) = 1.158% */
	EXPECT_ERRORS(HEAD "traffic:\n"                            /* 3 */
	                   "  provider: haproxy\n"                 /* 4 */
	                   "  steps: [0.1, 50, 100]\n"             /* 5 */
	                   "  bake: 10m\n"                         /* 6 */
	                   "  haproxy:\n"                          /* 7 */
	                   "    socket: /run/haproxy/admin.sock\n" /* 8 */
	                   "    backend: web\n"                    /* 9 */
	                   "    vm_servers: [vm-01]\n"             /* 10 */
	                   "    k8s_servers: [k1, k2, k3]\n",      /* 11 */
	              {5, 11, "traffic.steps[0]",
	               "cannot send 0.1% to 3 cluster servers against 1 VM server with weights up "
	               "to 256: the closest is 1.158% (traffic.haproxy)"});
	EXPECT_ERRORS(
	    HEAD "traffic:\n"                                                            /* 3 */
	         "  provider: nginx\n"                                                   /* 4 */
	         "  steps: [10, 99.9, 100]\n"                                            /* 5 */
	         "  bake: 10m\n"                                                         /* 6 */
	         "  nginx:\n"                                                            /* 7 */
	         "    upstream_file: /etc/nginx/up.conf\n"                               /* 8 */
	         "    upstream: app\n"                                                   /* 9 */
	         "    vm_servers: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\n" /* 10 */
	         "    k8s_servers: [\"10.1.0.1:80\"]\n",                                 /* 11 */
	    {5, 15, "traffic.steps[1]", "(traffic.nginx)"});
}

Test(plan, small_step_with_two_vm_servers_and_one_cluster_server)
{
	/* 0.1% is 1 against 256 + 256: 0.195%, within the half point weights.h allows */
	mg_plan *p = load_ok(STEPS_PLAN("[0.1, 100]"));
	cr_expect_eq(mg_plan_traffic_section(p)->steps[0], 0.1);
	mg_plan_free(p);
}

/*
 * A rejected step (0) must not shift where later step errors point: 0.1 is
 * the second item of the list, whatever index it has among the accepted steps.
 */
Test(plan, weights_error_after_a_rejected_step)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                            /* 3 */
	                   "  provider: haproxy\n"                 /* 4 */
	                   "  steps: [0, 0.1, 100]\n"              /* 5 */
	                   "  bake: 10m\n"                         /* 6 */
	                   "  haproxy:\n"                          /* 7 */
	                   "    socket: /run/haproxy/admin.sock\n" /* 8 */
	                   "    backend: web\n"                    /* 9 */
	                   "    vm_servers: [vm-01]\n"             /* 10 */
	                   "    k8s_servers: [k1, k2, k3]\n",      /* 11 */
	              {5, 11, "traffic.steps[0]", "0% is where every migration starts"},
	              {5, 14, "traffic.steps[1]", "cannot send 0.1% to 3 cluster servers"});
}

/* ---- bake, window, interval ---- */

Test(plan, bake_shorter_than_interval)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                                   /* 3 */
	                   "  provider: haproxy\n"                        /* 4 */
	                   "  steps: [10, 50, 100]\n"                     /* 5 */
	                   "  bake: 10s\n"                                /* 6 */
	                   "  haproxy:\n"                                 /* 7 */
	                   "    socket: /run/haproxy/admin.sock\n"        /* 8 */
	                   "    backend: web\n"                           /* 9 */
	                   "    vm_servers: [vm-01, vm-02]\n"             /* 10 */
	                   "    k8s_servers: [k8s]\n"                     /* 11 */
	                   "slo:\n"                                       /* 12 */
	                   "  prometheus: {url: \"http://p:9090\"}\n"     /* 13 */
	                   "  interval: 30s\n"                            /* 14 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 15 */
	              {6, 9, "traffic.bake",
	               "10s is shorter than slo.interval (30s); a step would end before its gates "
	               "were evaluated once"});
}

Test(plan, bake_missing)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                            /* 3 */
	                   "  provider: haproxy\n"                 /* 4 */
	                   "  steps: [10, 100]\n"                  /* 5 */
	                   "  haproxy:\n"                          /* 6 */
	                   "    socket: /run/haproxy/admin.sock\n" /* 7 */
	                   "    backend: web\n"                    /* 8 */
	                   "    vm_servers: [vm-01, vm-02]\n"      /* 9 */
	                   "    k8s_servers: [k8s]\n",             /* 10 */
	              {4, 3, "traffic",
	               "missing required key \"bake\" (the minimum time at a step, such as 10m)"});
}

Test(plan, window_shorter_than_interval)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                       /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n"     /* 4 */
	                   "  interval: 1m\n"                             /* 5 */
	                   "  window: 30s\n"                              /* 6 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 7 */
	              {6, 11, "slo.window",
	               "the window must be at least the interval, or requests between two "
	               "evaluations are never looked at"});
}

/* With the default 5m window, the error points at the interval that is too long for it. */
Test(plan, default_window_shorter_than_interval_has_a_position)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                       /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n"     /* 4 */
	                   "  interval: 10m\n"                            /* 5 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 6 */
	              {5, 13, "slo.window", "the window must be at least the interval"});
}

/* ---- providers ---- */

Test(plan, provider_unknown)
{
	EXPECT_ERRORS(HEAD "traffic:\n"           /* 3 */
	                   "  provider: f5\n"     /* 4 */
	                   "  steps: [10, 100]\n" /* 5 */
	                   "  bake: 10m\n",       /* 6 */
	              {4, 13, "traffic.provider",
	               "unknown provider \"f5\"; use haproxy, nginx or cloudflare"});
}

Test(plan, provider_section_missing)
{
	EXPECT_ERRORS(
	    HEAD "traffic:\n"                            /* 3 */
	         "  provider: nginx\n"                   /* 4 */
	         "  steps: [10, 50, 100]\n"              /* 5 */
	         "  bake: 10m\n"                         /* 6 */
	         "  haproxy:\n"                          /* 7 */
	         "    socket: /run/haproxy/admin.sock\n" /* 8 */
	         "    backend: web\n"                    /* 9 */
	         "    vm_servers: [vm-01, vm-02]\n"      /* 10 */
	         "    k8s_servers: [k8s]\n",             /* 11 */
	    {4, 13, "traffic.provider", "provider is nginx but there is no traffic.nginx section"});
}

Test(plan, provider_missing)
{
	EXPECT_ERRORS(HEAD "traffic:\n"           /* 3 */
	                   "  steps: [10, 100]\n" /* 4 */
	                   "  bake: 10m\n",       /* 5 */
	              {4, 3, "traffic", "missing required key \"provider\""});
}

/* ---- haproxy ---- */

#define HAPROXY_PLAN(lines)                                                                        \
	HEAD "traffic:\n"               /* 3 */                                                    \
	     "  provider: haproxy\n"    /* 4 */                                                    \
	     "  steps: [10, 50, 100]\n" /* 5 */                                                    \
	     "  bake: 10m\n"            /* 6 */                                                    \
	     "  haproxy:\n"             /* 7 */                                                    \
	     "    backend: web\n"       /* 8 */                                                    \
	    lines                       /* from 9 */

Test(plan, haproxy_socket_and_address)
{
	EXPECT_ERRORS(
	    HAPROXY_PLAN("    socket: /run/haproxy/admin.sock\n" /* 9 */
	                 "    address: 127.0.0.1:9999\n"         /* 10 */
	                 "    vm_servers: [vm-01, vm-02]\n"      /* 11 */
	                 "    k8s_servers: [k8s]\n"),            /* 12 */
	    {10, 14, "traffic.haproxy.address", "give either \"socket\" or \"address\", not both"});
}

Test(plan, haproxy_neither_socket_nor_address)
{
	EXPECT_ERRORS(
	    HAPROXY_PLAN("    vm_servers: [vm-01, vm-02]\n" /* 9 */
	                 "    k8s_servers: [k8s]\n"),       /* 10 */
	    {8, 5, "traffic.haproxy",
	     "needs \"socket\" (the admin socket's path) or \"address\" (host:port of the "
	     "runtime API)"});
}

Test(plan, haproxy_address_not_host_port)
{
	EXPECT_ERRORS(HAPROXY_PLAN("    address: haproxy.internal\n"  /* 9 */
	                           "    vm_servers: [vm-01, vm-02]\n" /* 10 */
	                           "    k8s_servers: [k8s]\n"),       /* 11 */
	              {9, 14, "traffic.haproxy.address", "\"haproxy.internal\" is not host:port"});
	EXPECT_ERRORS(HAPROXY_PLAN("    address: haproxy.internal:99999\n" /* 9 */
	                           "    vm_servers: [vm-01, vm-02]\n"      /* 10 */
	                           "    k8s_servers: [k8s]\n"),            /* 11 */
	              {9, 14, "traffic.haproxy.address", "is not host:port"});
}

Test(plan, haproxy_address_forms)
{
	mg_plan *p = load_ok(HAPROXY_PLAN("    address: \"[::1]:9999\"\n"
	                                  "    vm_servers: [vm-01, vm-02]\n"
	                                  "    k8s_servers: [k8s]\n"));
	const mg_plan_haproxy *h = mg_plan_traffic_section(p)->haproxy;
	cr_expect_str_eq(h->address, "[::1]:9999");
	cr_expect_null(h->socket);
	mg_plan_free(p);
}

Test(plan, haproxy_server_listed_twice)
{
	EXPECT_ERRORS(HAPROXY_PLAN("    socket: /run/haproxy/admin.sock\n"   /* 9 */
	                           "    vm_servers: [vm-01, vm-02, vm-01]\n" /* 10 */
	                           "    k8s_servers: [k8s]\n"),              /* 11 */
	              {10, 32, "traffic.haproxy.vm_servers[2]", "\"vm-01\" is listed twice"});
}

Test(plan, haproxy_server_in_both_lists)
{
	EXPECT_ERRORS(HAPROXY_PLAN("    socket: /run/haproxy/admin.sock\n" /* 9 */
	                           "    vm_servers: [vm-01, vm-02]\n"      /* 10 */
	                           "    k8s_servers: [k8s, vm-02]\n"),     /* 11 */
	              {11, 18, "traffic.haproxy.k8s_servers",
	               "\"vm-02\" is in both vm_servers and k8s_servers"});
}

Test(plan, haproxy_server_names)
{
	EXPECT_ERRORS(
	    HAPROXY_PLAN("    socket: /run/haproxy/admin.sock\n" /* 9 */
	                 "    vm_servers: [\"vm 01\", vm-02]\n"  /* 10 */
	                 "    k8s_servers: []\n"),               /* 11 */
	    {10, 18, "traffic.haproxy.vm_servers[0]", "\"vm 01\" is not an HAProxy server name"},
	    {11, 18, "traffic.haproxy.k8s_servers", "the list is empty"});
}

Test(plan, haproxy_servers_missing)
{
	EXPECT_ERRORS(HAPROXY_PLAN("    socket: /run/haproxy/admin.sock\n" /* 9 */
	                           "    vm_servers: [vm-01]\n"),           /* 10 */
	              {8, 5, "traffic.haproxy", "missing required key \"k8s_servers\""});
}

/* ---- nginx ---- */

#define NGINX_PLAN(vm, k8s)                                                                        \
	HEAD "traffic:\n"                              /* 3 */                                     \
	     "  provider: nginx\n"                     /* 4 */                                     \
	     "  steps: [10, 50, 100]\n"                /* 5 */                                     \
	     "  bake: 10m\n"                           /* 6 */                                     \
	     "  nginx:\n"                              /* 7 */                                     \
	     "    upstream_file: conf/upstream.conf\n" /* 8 */                                     \
	     "    upstream: app\n"                     /* 9 */                                     \
	     "    vm_servers: " vm "\n"                /* 10 */                                    \
	     "    k8s_servers: " k8s "\n"              /* 11 */

Test(plan, nginx_servers_not_host_port)
{
	EXPECT_ERRORS(NGINX_PLAN("[web-1, \"10.0.0.2:8080\"]", "[\"10.1.0.1\"]"),
	              {10, 18, "traffic.nginx.vm_servers[0]", "\"web-1\" is not host:port"},
	              {11, 19, "traffic.nginx.k8s_servers[0]", "\"10.1.0.1\" is not host:port"});
}

Test(plan, nginx_model)
{
	mg_plan *p = load_ok(
	    NGINX_PLAN("[\"10.0.0.1:8080\", \"web-2.internal:8080\"]", "[\"[fd00::1]:80\"]"));
	const mg_plan_traffic *t = mg_plan_traffic_section(p);
	cr_expect_eq(t->provider, MG_PROVIDER_NGINX);
	const mg_plan_nginx *n = t->nginx;
	cr_assert_not_null(n);
	cr_expect_str_eq(n->upstream_file, "/tmp/conf/upstream.conf");
	cr_expect_str_eq(n->upstream, "app");
	cr_assert_eq(n->nvm_servers, 2);
	cr_expect_str_eq(n->vm_servers[1], "web-2.internal:8080");
	cr_assert_eq(n->nk8s_servers, 1);
	cr_expect_str_eq(n->k8s_servers[0], "[fd00::1]:80");
	cr_expect_str_eq(n->test_command, "nginx -t");
	cr_expect_str_eq(n->reload_command, "nginx -s reload");
	cr_expect_eq(n->command_timeout_ms, 30000);
	cr_expect_null(t->haproxy);
	mg_plan_free(p);
}

Test(plan, nginx_command_timeout)
{
	mg_plan *p = load_ok(NGINX_PLAN("[\"10.0.0.1:8080\"]", "[\"10.1.0.1:80\"]") /* 11 */
	                     "    command_timeout: 100ms\n");                       /* 12 */
	cr_expect_eq(mg_plan_traffic_section(p)->nginx->command_timeout_ms, 100);
	mg_plan_free(p);
	EXPECT_ERRORS(
	    NGINX_PLAN("[\"10.0.0.1:8080\"]", "[\"10.1.0.1:80\"]") /* 11 */
	    "    command_timeout: 99ms\n",                         /* 12 */
	    {12, 22, "traffic.nginx.command_timeout", "99ms is too short; the minimum is 100ms"});
	EXPECT_ERRORS(NGINX_PLAN("[\"10.0.0.1:8080\"]", "[\"10.1.0.1:80\"]") /* 11 */
	              "    command_timeout: 30\n",                           /* 12 */
	              {12, 22, "traffic.nginx.command_timeout",
	               "\"30\" has no unit; write 30s, 30m or 30ms"});
}

/* ---- cloudflare ---- */

Test(plan, cloudflare_ids_not_32_hex)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                                     /* 3 */
	                   "  provider: cloudflare\n"                       /* 4 */
	                   "  steps: [10, 100]\n"                           /* 5 */
	                   "  bake: 10m\n"                                  /* 6 */
	                   "  cloudflare:\n"                                /* 7 */
	                   "    account_id: xyz\n"                          /* 8 */
	                   "    zone_id: 023e105f4ecef8ad9ca31a8372d0c35\n" /* 9: 31 digits */
	                   "    load_balancer_id: 699d98642c564d2e855e9661899b725g\n" /* 10 */
	                   "    vm_pool: 17b5962d775c646f3f9725cbc7a53df4\n"          /* 11 */
	                   "    k8s_pool: 9290f38c5d07c2e2f4df57b1f61d4196\n"         /* 12 */
	                   "    token_env: CF_TOKEN\n",                               /* 13 */
	              {8, 17, "traffic.cloudflare.account_id",
	               "\"xyz\" is not a Cloudflare identifier (32 hexadecimal digits)"},
	              {9, 14, "traffic.cloudflare.zone_id", "is not a Cloudflare identifier"},
	              {10, 23, "traffic.cloudflare.load_balancer_id",
	               "\"699d98642c564d2e855e9661899b725g\" is not a Cloudflare identifier"});
}

Test(plan, cloudflare_same_pool_twice)
{
	EXPECT_ERRORS(HEAD "traffic:\n"                                               /* 3 */
	                   "  provider: cloudflare\n"                                 /* 4 */
	                   "  steps: [10, 100]\n"                                     /* 5 */
	                   "  bake: 10m\n"                                            /* 6 */
	                   "  cloudflare:\n"                                          /* 7 */
	                   "    account_id: 01a7362d577a6c3019a474fd6f485823\n"       /* 8 */
	                   "    zone_id: 023e105f4ecef8ad9ca31a8372d0c353\n"          /* 9 */
	                   "    load_balancer_id: 699d98642c564d2e855e9661899b7252\n" /* 10 */
	                   "    vm_pool: 17b5962d775c646f3f9725cbc7a53df4\n"          /* 11 */
	                   "    k8s_pool: 17b5962d775c646f3f9725cbc7a53df4\n"         /* 12 */
	                   "    token_env: CF_TOKEN\n",                               /* 13 */
	              {12, 15, "traffic.cloudflare.k8s_pool",
	               "the cluster pool must differ from the VM pool"});
}

Test(plan, cloudflare_api_url)
{
	EXPECT_ERRORS(HEAD TRAFFIC_CLOUDFLARE "    token_env: CF_TOKEN\n"                /* 13 */
	                                      "    api_url: ftp://api.example.com/v4\n", /* 14 */
	              {14, 14, "traffic.cloudflare.api_url",
	               "the URL's scheme is \"ftp\"; use http or https"});
	EXPECT_ERRORS(
	    HEAD TRAFFIC_CLOUDFLARE "    token_env: CF_TOKEN\n"                            /* 13 */
	                            "    api_url: https://me:secret@api.example.com/v4\n", /* 14 */
	    {14, 14, "traffic.cloudflare.api_url", "the URL has a user name or password in it"});
}

Test(plan, cloudflare_model)
{
	mg_plan *p = load_ok(HEAD TRAFFIC_CLOUDFLARE "    token_env: CLOUDFLARE_API_TOKEN\n");
	const mg_plan_traffic *t = mg_plan_traffic_section(p);
	cr_expect_eq(t->provider, MG_PROVIDER_CLOUDFLARE);
	const mg_plan_cloudflare *c = t->cloudflare;
	cr_assert_not_null(c);
	cr_expect_str_eq(c->account_id, "01a7362d577a6c3019a474fd6f485823");
	cr_expect_str_eq(c->zone_id, "023e105f4ecef8ad9ca31a8372d0c353");
	cr_expect_str_eq(c->load_balancer_id, "699d98642c564d2e855e9661899b7252");
	cr_expect_str_eq(c->vm_pool, "17b5962d775c646f3f9725cbc7a53df4");
	cr_expect_str_eq(c->k8s_pool, "9290f38c5d07c2e2f4df57b1f61d4196");
	cr_expect_str_eq(c->token_env, "CLOUDFLARE_API_TOKEN");
	cr_expect_null(c->token_file);
	cr_expect_str_eq(c->api_url, "https://api.cloudflare.com/client/v4");
	cr_expect_null(c->ca_file);
	cr_expect_eq(c->timeout_ms, 30000);
	mg_plan_free(p);
	p = load_ok(HEAD TRAFFIC_CLOUDFLARE "    token_file: ../secrets/./cf.token\n");
	cr_expect_str_eq(mg_plan_traffic_section(p)->cloudflare->token_file, "/secrets/cf.token");
	cr_expect_null(mg_plan_traffic_section(p)->cloudflare->token_env);
	mg_plan_free(p);
}

/* ---- slo and red ---- */

Test(plan, slo_without_gates)
{
	EXPECT_ERRORS(
	    HEAD "slo:\n"                                   /* 3 */
	         "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	         "  interval: 30s\n",                       /* 5 */
	    {4, 3, "slo",
	     "no gates: add \"red\" or \"checks\", or traffic would move on no evidence"});
}

Test(plan, slo_without_prometheus)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                       /* 3 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 4 */
	              {4, 3, "slo", "missing required key \"prometheus\""});
}

Test(plan, slo_prometheus_url_and_on_failure)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                       /* 3 */
	                   "  prometheus: {url: \"prometheus:9090\"}\n"   /* 4 */
	                   "  on_failure: retry\n"                        /* 5 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 6 */
	              {4, 21, "slo.prometheus.url",
	               "the URL has no scheme; write http:// or https:// before the host"},
	              {5, 15, "slo.on_failure", "\"retry\" is not rollback or pause"});
}

Test(plan, slo_failure_limit_at_least_1)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                       /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n"     /* 4 */
	                   "  failure_limit: 0\n"                         /* 5 */
	                   "  checks: [{name: up, query: up, min: 1}]\n", /* 6 */
	              {5, 18, "slo.failure_limit", "0 is out of range (1 to 1000)"});
}

Test(plan, red_source_unknown)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  red:\n"                                 /* 5 */
	                   "    source: datadog\n"                    /* 6 */
	                   "    backend: web\n"                       /* 7 */
	                   "    vm_servers: [a]\n"                    /* 8 */
	                   "    k8s_servers: [b]\n"                   /* 9 */
	                   "    max_error_rate: 1%\n",                /* 10 */
	              {6, 13, "slo.red.source",
	               "unknown metrics source \"datadog\"; use haproxy or ingress-nginx"});
}

/*
 * An unknown source is one error: it must not also make "backend" required,
 * as if the source were haproxy (the enum's zero value).
 */
Test(plan, red_source_unknown_reports_one_error)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                          /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n"        /* 4 */
	                   "  red: {source: datadog, max_error_rate: 1%}\n", /* 5 */
	              {5, 17, "slo.red.source", "unknown metrics source \"datadog\""});
}

#define RED_PLAN(red)                                                                              \
	HEAD "traffic:\n"                               /* 3 */                                    \
	     "  provider: haproxy\n"                    /* 4 */                                    \
	     "  steps: [10, 50, 100]\n"                 /* 5 */                                    \
	     "  bake: 10m\n"                            /* 6 */                                    \
	     "  haproxy:\n"                             /* 7 */                                    \
	     "    socket: /run/haproxy/admin.sock\n"    /* 8 */                                    \
	     "    backend: web\n"                       /* 9 */                                    \
	     "    vm_servers: [vm-01, vm-02]\n"         /* 10 */                                   \
	     "    k8s_servers: [k8s]\n"                 /* 11 */                                   \
	     "slo:\n"                                   /* 12 */                                   \
	     "  prometheus: {url: \"http://p:9090\"}\n" /* 13 */                                   \
	     "  red:\n"                                 /* 14 */                                   \
	    red                                         /* from 15 */

Test(plan, red_server_not_in_traffic_haproxy)
{
	EXPECT_ERRORS(RED_PLAN("    source: haproxy\n"            /* 15 */
	                       "    backend: web\n"               /* 16 */
	                       "    vm_servers: [vm-01, vm-09]\n" /* 17 */
	                       "    k8s_servers: [k8s-1]\n"       /* 18 */
	                       "    max_error_rate: 1%\n"),       /* 19 */
	              {17, 25, "slo.red.vm_servers[1]",
	               "server \"vm-09\" is not in traffic.haproxy.vm_servers"},
	              {18, 19, "slo.red.k8s_servers[0]",
	               "server \"k8s-1\" is not in traffic.haproxy.k8s_servers"});
}

/*
 * A dropped duplicate must not shift where the next red server's error
 * points: vm-09 is vm_servers[2] (17:32), not [1].
 */
Test(plan, red_server_error_after_a_rejected_server)
{
	EXPECT_ERRORS(RED_PLAN("    source: haproxy\n"                   /* 15 */
	                       "    backend: web\n"                      /* 16 */
	                       "    vm_servers: [vm-01, vm-01, vm-09]\n" /* 17 */
	                       "    k8s_servers: [k8s]\n"                /* 18 */
	                       "    max_error_rate: 1%\n"),              /* 19 */
	              {17, 25, "slo.red.vm_servers[1]", "\"vm-01\" is listed twice"},
	              {17, 32, "slo.red.vm_servers[2]",
	               "server \"vm-09\" is not in traffic.haproxy.vm_servers"});
}

Test(plan, red_backend_mismatch)
{
	EXPECT_ERRORS(RED_PLAN("    source: haproxy\n"      /* 15 */
	                       "    backend: api\n"         /* 16 */
	                       "    max_error_rate: 1%\n"), /* 17 */
	              {16, 14, "slo.red.backend",
	               "\"api\" is not the backend traffic moves (traffic.haproxy.backend is "
	               "\"web\")"});
}

Test(plan, red_servers_default_to_traffic_haproxy)
{
	mg_plan *p = load_ok(RED_PLAN("    source: haproxy\n"
	                              "    backend: web\n"
	                              "    max_latency: 250ms\n"));
	const mg_plan_red *r = mg_plan_slo_section(p)->red;
	cr_assert_eq(r->nvm_servers, 2);
	cr_expect_str_eq(r->vm_servers[0], "vm-01");
	cr_expect_str_eq(r->vm_servers[1], "vm-02");
	cr_assert_eq(r->nk8s_servers, 1);
	cr_expect_str_eq(r->k8s_servers[0], "k8s");
	cr_expect_eq(r->max_latency_ms, 250);
	cr_expect_lt(r->max_error_rate, 0);
	mg_plan_free(p);
}

/* Each selector defaults on its own to traffic.haproxy's list. */
Test(plan, red_vm_servers_default_when_only_k8s_servers_given)
{
	mg_plan *p = load_ok(RED_PLAN("    source: haproxy\n"
	                              "    backend: web\n"
	                              "    k8s_servers: [k8s]\n"
	                              "    max_error_rate: 1%\n"));
	const mg_plan_red *r = mg_plan_slo_section(p)->red;
	cr_assert_eq(r->nvm_servers, 2);
	cr_expect_str_eq(r->vm_servers[0], "vm-01");
	cr_expect_str_eq(r->vm_servers[1], "vm-02");
	cr_assert_eq(r->nk8s_servers, 1);
	cr_expect_str_eq(r->k8s_servers[0], "k8s");
	mg_plan_free(p);
}

Test(plan, red_k8s_servers_default_when_only_vm_servers_given)
{
	mg_plan *p = load_ok(RED_PLAN("    source: haproxy\n"
	                              "    backend: web\n"
	                              "    vm_servers: [vm-02]\n"
	                              "    max_error_rate: 1%\n"));
	const mg_plan_red *r = mg_plan_slo_section(p)->red;
	cr_assert_eq(r->nvm_servers, 1);
	cr_expect_str_eq(r->vm_servers[0], "vm-02");
	cr_assert_eq(r->nk8s_servers, 1);
	cr_expect_str_eq(r->k8s_servers[0], "k8s");
	mg_plan_free(p);
}

Test(plan, red_haproxy_without_servers_or_traffic)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  red:\n"                                 /* 5 */
	                   "    source: haproxy\n"                    /* 6 */
	                   "    backend: web\n"                       /* 7 */
	                   "    max_error_rate: 1%\n",                /* 8 */
	              {6, 5, "slo.red",
	               "needs k8s_servers (or a traffic.haproxy section to take them from)"});
}

Test(plan, red_without_thresholds)
{
	EXPECT_ERRORS(RED_PLAN("    source: haproxy\n" /* 15 */
	                       "    backend: web\n"),  /* 16 */
	              {15, 5, "slo.red",
	               "needs at least one of max_error_rate, max_latency, max_error_rate_vs_vms"});
}

Test(plan, red_error_rate_vs_vms_below_1)
{
	EXPECT_ERRORS(RED_PLAN("    source: haproxy\n"              /* 15 */
	                       "    backend: web\n"                 /* 16 */
	                       "    max_error_rate: 1%\n"           /* 17 */
	                       "    max_error_rate_vs_vms: 0.5\n"), /* 18 */
	              {18, 28, "slo.red.max_error_rate_vs_vms",
	               "0.5 would fail the cluster for doing better than the VMs; use 1 or more"});
}

Test(plan, slo_confidence_and_the_latency_quantile)
{
	mg_plan *p = load_ok(HEAD "slo:\n"
	                          "  prometheus: {url: \"http://p:9090\"}\n"
	                          "  confidence: 99%\n"
	                          "  red:\n"
	                          "    source: ingress-nginx\n"
	                          "    namespace: shop\n"
	                          "    max_latency: 300ms\n"
	                          "    max_latency_quantile: p99.9\n");
	const mg_plan_slo *s = mg_plan_slo_section(p);
	cr_expect_float_eq(s->confidence, 0.99, 1e-12);
	cr_expect_float_eq(s->red->max_latency_quantile, 0.999, 1e-12);
	mg_plan_free(p);
	p = load_ok(HEAD "slo:\n"
	                 "  prometheus: {url: \"http://p:9090\"}\n"
	                 "  confidence: 0.9\n"
	                 "  red: {source: ingress-nginx, namespace: shop, max_latency: 1s}\n");
	s = mg_plan_slo_section(p);
	cr_expect_float_eq(s->confidence, 0.9, 1e-12);
	cr_expect_float_eq(s->red->max_latency_quantile, 0.99, 1e-12, "p99 by default");
	mg_plan_free(p);
}

Test(plan, slo_confidence_out_of_range)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  confidence: 40%\n"                      /* 5 */
	                   "  checks: [{name: up, query: up, min: 1}]\n",
	              {5, 15, "slo.confidence",
	               "0.4 is not a useful confidence: use 50% to 99.99% (0.95 is the default)"});
}

Test(plan, red_error_rate_of_zero_cannot_be_judged)
{
	EXPECT_ERRORS(RED_PLAN("    source: haproxy\n"      /* 15 */
	                       "    backend: web\n"         /* 16 */
	                       "    max_error_rate: 0%\n"), /* 17 */
	              {17, 21, "slo.red.max_error_rate",
	               "0 can never be judged with confidence: no number of requests shows a rate "
	               "of exactly 0, and none is above it; use a rate between 0 and 100%, such "
	               "as 0.1%"});
}

Test(plan, red_latency_quantile_needs_a_histogram)
{
	EXPECT_ERRORS(RED_PLAN("    source: haproxy\n"             /* 15 */
	                       "    backend: web\n"                /* 16 */
	                       "    max_latency: 250ms\n"          /* 17 */
	                       "    max_latency_quantile: p99\n"), /* 18 */
	              {18, 27, "slo.red.max_latency_quantile",
	               "HAProxy exports an average response time, not a histogram, so no quantile "
	               "can be judged; remove max_latency_quantile (max_latency bounds the "
	               "average) or use source: ingress-nginx"});
	EXPECT_ERRORS(
	    HEAD "slo:\n"                                   /* 3 */
	         "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	         "  red:\n"                                 /* 5 */
	         "    source: ingress-nginx\n"              /* 6 */
	         "    namespace: shop\n"                    /* 7 */
	         "    max_error_rate: 1%\n"                 /* 8 */
	         "    max_latency_quantile: 1.5\n",         /* 9 */
	    {9, 27, "slo.red.max_latency_quantile",
	     "\"1.5\" is not a quantile; write p99, p99.9, 99% or 0.99 (above 0, below 1)"},
	    {9, 27, "slo.red.max_latency_quantile",
	     "a quantile of what? set max_latency, the bound the quantile must stay under"});
}

Test(plan, red_error_rate_vs_vms_needs_vm_servers)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  red:\n"                                 /* 5 */
	                   "    source: haproxy\n"                    /* 6 */
	                   "    backend: web\n"                       /* 7 */
	                   "    k8s_servers: [k8s]\n"                 /* 8 */
	                   "    max_error_rate_vs_vms: 2\n",          /* 9 */
	              {6, 5, "slo.red",
	               "max_error_rate_vs_vms compares with the VM servers: needs vm_servers (or a "
	               "traffic.haproxy section to take them from)"});
}

Test(plan, red_ingress_nginx_with_error_rate_vs_vms)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  red:\n"                                 /* 5 */
	                   "    source: ingress-nginx\n"              /* 6 */
	                   "    ingress: web\n"                       /* 7 */
	                   "    namespace: payments\n"                /* 8 */
	                   "    max_error_rate_vs_vms: 2\n",          /* 9 */
	              {9, 28, "slo.red.max_error_rate_vs_vms",
	               "needs metrics from both pools; ingress-nginx only sees the cluster, so use "
	               "source: haproxy or drop this key"});
}

Test(plan, red_ingress_nginx_namespace)
{
	EXPECT_ERRORS(
	    HEAD "slo:\n"                                   /* 3 */
	         "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	         "  red:\n"                                 /* 5 */
	         "    source: ingress-nginx\n"              /* 6 */
	         "    ingress: web\n"                       /* 7 */
	         "    max_latency: 1s\n",                   /* 8 */
	    {6, 5, "slo.red",
	     "ingress-nginx needs \"namespace\" (or a kubernetes section to take it from)"});
	/* taken from the kubernetes section when there is one */
	mg_plan *p = load_ok(HEAD "kubernetes:\n"
	                          "  namespace: payments\n"
	                          "  templates: k8s\n"
	                          "slo:\n"
	                          "  prometheus: {url: \"http://p:9090\"}\n"
	                          "  red:\n"
	                          "    source: ingress-nginx\n"
	                          "    ingress: web\n"
	                          "    max_latency: 1s\n");
	const mg_plan_red *r = mg_plan_slo_section(p)->red;
	cr_expect_eq(r->source, MG_RED_INGRESS_NGINX);
	cr_expect_str_eq(mg_red_source_name(r->source), "ingress-nginx");
	cr_expect_str_eq(r->namespace_, "payments");
	cr_expect_str_eq(r->ingress, "web");
	cr_expect_eq(r->max_latency_ms, 1000);
	cr_expect_null(r->backend);
	mg_plan_free(p);
}

/* ---- checks ---- */

Test(plan, checks)
{
	EXPECT_ERRORS(
	    HEAD "slo:\n"                                   /* 3 */
	         "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	         "  checks:\n"                              /* 5 */
	         "    - name: a\n"                          /* 6 */
	         "      min: 1\n"                           /* 7 */
	         "    - name: b\n"                          /* 8 */
	         "      query: up\n"                        /* 9 */
	         "    - name: c\n"                          /* 10 */
	         "      query: up\n"                        /* 11 */
	         "      baseline: up offset 1d\n"           /* 12 */
	         "    - name: d\n"                          /* 13 */
	         "      query: up\n"                        /* 14 */
	         "      max: 1\n"                           /* 15 */
	         "      max_ratio: 1.5\n"                   /* 16 */
	         "    - name: e\n"                          /* 17 */
	         "      query: up\n"                        /* 18 */
	         "      min: 2\n"                           /* 19 */
	         "      max: 1\n"                           /* 20 */
	         "    - name: e\n"                          /* 21 */
	         "      query: up\n"                        /* 22 */
	         "      min: 0\n"                           /* 23 */
	         "    - name: f\n"                          /* 24 */
	         "      query: rate(x[${range}])\n"         /* 25 */
	         "      min: 0\n"                           /* 26 */
	         "    - name: g\n"                          /* 27 */
	         "      query: rate(x[${window])\n"         /* 28 */
	         "      min: 0\n",                          /* 29 */
	    {6, 7, "slo.checks[0]", "missing required key \"query\""},
	    {8, 7, "slo.checks[1]",
	     "a check needs \"min\", \"max\" or \"baseline\" to pass or fail"},
	    {10, 7, "slo.checks[2]", "a check with \"baseline\" needs \"max_ratio\""},
	    {16, 18, "slo.checks[3].max_ratio",
	     "\"max_ratio\" compares with a \"baseline\" query, which is missing"},
	    {19, 12, "slo.checks[4].min", "2 is greater than max (1); no value could pass"},
	    {21, 13, "slo.checks[5].name", "check \"e\" is defined twice"},
	    {25, 14, "slo.checks[6].query",
	     "unknown reference \"${range}\"; this value may use ${window}, ${interval}"},
	    {28, 14, "slo.checks[7].query", "unterminated reference \"${\"; write ${name}"});
}

Test(plan, check_numbers_and_names)
{
	EXPECT_ERRORS(
	    HEAD "slo:\n"                                                                 /* 3 */
	         "  prometheus: {url: \"http://p:9090\"}\n"                               /* 4 */
	         "  checks:\n"                                                            /* 5 */
	         "    - {name: Error_Rate, query: up, max: 1}\n"                          /* 6 */
	         "    - {name: b, query: up, min: lots, max: 1}\n"                        /* 7 */
	         "    - {name: c, query: up, baseline: up, max_ratio: 0}\n"               /* 8 */
	         "    - {name: d, query: up, baseline: \"up[${when}]\", max_ratio: 2}\n", /* 9 */
	    {6, 14, "slo.checks[0].name",
	     "\"Error_Rate\" is not a check name (lower case letters, digits and '-')"},
	    {7, 33, "slo.checks[1].min", "\"lots\" is not a number"},
	    {8, 53, "slo.checks[2].max_ratio", "must be greater than 0"},
	    {9, 38, "slo.checks[3].baseline", "unknown reference \"${when}\""});
}

Test(plan, checks_model)
{
	mg_plan *p = load_ok(HEAD "slo:\n"
	                          "  prometheus: {url: \"http://p:9090\"}\n"
	                          "  checks:\n"
	                          "    - name: latency\n"
	                          "      query: p99[${window}]\n"
	                          "      max: 0.3\n"
	                          "    - name: errors\n"
	                          "      query: errors[${interval}]\n"
	                          "      baseline: errors[${interval}] offset 1d\n"
	                          "      max_ratio: 1.5\n"
	                          "    - name: in-range\n"
	                          "      query: up\n"
	                          "      min: -1\n"
	                          "      max: 1e3\n");
	const mg_plan_slo *s = mg_plan_slo_section(p);
	cr_expect_null(s->red);
	cr_assert_eq(s->nchecks, 3);
	cr_expect_str_eq(s->checks[0].name, "latency");
	cr_expect_str_eq(s->checks[0].query, "p99[${window}]");
	cr_expect_not(s->checks[0].has_min);
	cr_expect(s->checks[0].has_max);
	cr_expect_eq(s->checks[0].max, 0.3);
	cr_expect_str_eq(s->checks[1].baseline, "errors[${interval}] offset 1d");
	cr_expect_eq(s->checks[1].max_ratio, 1.5);
	cr_expect_not(s->checks[1].has_min);
	cr_expect_not(s->checks[1].has_max);
	cr_expect_eq(s->checks[2].min, -1);
	cr_expect_eq(s->checks[2].max, 1000);
	mg_plan_free(p);
}

/* ---- build ---- */

Test(plan, build_without_artifact_or_image)
{
	EXPECT_ERRORS(HEAD "build: {repo: /src}\n", /* 3 */
	              {3, 8, "build",
	               "needs \"artifact\" (for the VMs), \"image\" (for Kubernetes), or both"});
}

Test(plan, build_unknown_reference)
{
	EXPECT_ERRORS(HEAD "build:\n"                              /* 3 */
	                   "  artifact: dist/app-${release}.tgz\n" /* 4 */
	                   "  image: reg/app:${vers\n",            /* 5 */
	              {4, 13, "build.artifact",
	               "unknown reference \"${release}\"; this value may use ${version}"},
	              {5, 10, "build.image", "unterminated reference"});
}

Test(plan, build_image_with_spaces)
{
	EXPECT_ERRORS(HEAD "build:\n"                            /* 3 */
	                   "  image: \"reg/app: ${version}\"\n", /* 4 */
	              {4, 10, "build.image", "an image reference has no white space"});
}

Test(plan, build_without_what_the_sections_need)
{
	EXPECT_ERRORS(HEAD "build:\n"             /* 3 */
	                   "  image: reg/app:1\n" /* 4 */
	                   "vms:\n"               /* 5 */
	                   "  hosts: [a]\n"       /* 6 */
	                   "  user: u\n"          /* 7 */
	                   "  path: /srv/a\n",    /* 8 */
	              {4, 3, "build", "vms need \"artifact\": the file deployed to each host"});
	EXPECT_ERRORS(
	    HEAD "build:\n"                /* 3 */
	         "  artifact: app.tgz\n"   /* 4 */
	         "kubernetes:\n"           /* 5 */
	         "  namespace: payments\n" /* 6 */
	         "  templates: k8s\n",     /* 7 */
	    {4, 3, "build", "kubernetes needs \"image\": the container image the pods run"});
}

Test(plan, build_model)
{
	mg_plan *p = load_ok_in(HEAD "build:\n"
	                             "  repo: ../src/./app/\n"
	                             "  artifact: ./out/../dist/app-${version}.tgz\n",
	                        "/srv/plans", MG_PLAN_LOAD_NO_FS);
	const mg_plan_build *b = mg_plan_build_section(p);
	cr_expect_str_eq(b->repo, "/srv/src/app");
	cr_expect_str_eq(b->artifact, "/srv/plans/dist/app-${version}.tgz");
	cr_expect_null(b->image);
	mg_plan_free(p);
}

/* ---- vms ---- */

#define VMS_PLAN(lines)                                                                            \
	HEAD "vms:\n"           /* 3 */                                                            \
	     "  user: u\n"      /* 4 */                                                            \
	     "  path: /srv/a\n" /* 5 */                                                            \
	    lines               /* from 6 */

Test(plan, vms_hosts_and_inventory)
{
	EXPECT_ERRORS(VMS_PLAN("  hosts: [a]\n"             /* 6 */
	                       "  inventory: hosts.txt\n"), /* 7 */
	              {7, 14, "vms.inventory", "give either \"hosts\" or \"inventory\", not both"});
}

Test(plan, vms_neither_hosts_nor_inventory)
{
	EXPECT_ERRORS(
	    VMS_PLAN(""),
	    {4, 3, "vms", "needs \"hosts\" (a list) or \"inventory\" (a file, one host per line)"});
}

Test(plan, vms_required_keys)
{
	EXPECT_ERRORS(HEAD "vms:\n"          /* 3 */
	                   "  hosts: [a]\n", /* 4 */
	              {4, 3, "vms", "missing required key \"user\""},
	              {4, 3, "vms", "missing required key \"path\""});
}

Test(plan, vms_host_names_invalid)
{
	EXPECT_ERRORS(
	    VMS_PLAN("  hosts:\n"                          /* 6 */
	             "    - \"vm 01\"\n"                   /* 7 */
	             "    - web_01!\n"                     /* 8 */
	             "    - {name: -x}\n"                  /* 9 */
	             "    - {name: b, address: \"c d\"}\n" /* 10 */
	             "    - [e]\n"                         /* 11 */
	             "    - {address: 10.0.0.1}\n"),       /* 12 */
	    {7, 7, "vms.hosts[0]", "\"vm 01\" is not a host name, an IP address or host:port"},
	    {8, 7, "vms.hosts[1]", "\"web_01!\" is not a host name"},
	    {9, 14, "vms.hosts[2].name", "\"-x\" is not a valid host name"},
	    {10, 26, "vms.hosts[3].address", "\"c d\" is not a host name or IP address"},
	    {11, 7, "vms.hosts[4]", "expected a host name or {name, address, port}, found a list"},
	    {12, 7, "vms.hosts[5]", "missing required key \"name\""});
}

Test(plan, vms_port_out_of_range)
{
	EXPECT_ERRORS(VMS_PLAN("  hosts:\n"                     /* 6 */
	                       "    - {name: a, port: 70000}\n" /* 7 */
	                       "    - \"b:0\"\n"                /* 8 */
	                       "    - c:65536\n"),              /* 9 */
	              {7, 23, "vms.hosts[0].port", "70000 is out of range (1 to 65535)"},
	              {8, 7, "vms.hosts[1]", "\"b:0\" is not a host name"},
	              {9, 7, "vms.hosts[2]", "\"c:65536\" is not a host name"});
}

Test(plan, vms_duplicate_host)
{
	EXPECT_ERRORS(VMS_PLAN("  hosts:\n"       /* 6 */
	                       "    - a\n"        /* 7 */
	                       "    - b\n"        /* 8 */
	                       "    - a:2222\n"), /* 9 */
	              {9, 7, "vms.hosts[2]", "host \"a\" is listed twice"});
	EXPECT_ERRORS(VMS_PLAN("  hosts:\n"                             /* 6 */
	                       "    - a\n"                              /* 7 */
	                       "    - {name: a, address: 10.0.0.1}\n"), /* 8 */
	              {8, 14, "vms.hosts[1].name", "host \"a\" is listed twice"});
}

Test(plan, vms_relative_path)
{
	EXPECT_ERRORS(HEAD "vms:\n"             /* 3 */
	                   "  hosts: [a]\n"     /* 4 */
	                   "  user: u\n"        /* 5 */
	                   "  path: srv/app\n", /* 6 */
	              {6, 9, "vms.path",
	               "must be an absolute path on the hosts without \"..\" or quotes, such as "
	               "/srv/payments-api"});
	EXPECT_ERRORS(HEAD "vms:\n"                 /* 3 */
	                   "  hosts: [a]\n"         /* 4 */
	                   "  user: u\n"            /* 5 */
	                   "  path: /srv/../etc\n", /* 6 */
	              {6, 9, "vms.path", "must be an absolute path"});
}

/* A ".." component anywhere is refused, also at the end (it once was not). */
Test(plan, vms_path_ending_in_dot_dot)
{
	EXPECT_ERRORS(HEAD "vms:\n"                 /* 3 */
	                   "  hosts: [a]\n"         /* 4 */
	                   "  user: u\n"            /* 5 */
	                   "  path: /srv/app/..\n", /* 6 */
	              {6, 9, "vms.path", "must be an absolute path"});
}

Test(plan, vms_path_with_dots_in_a_name)
{
	mg_plan *p = load_ok(HEAD "vms:\n"
	                          "  hosts: [a]\n"
	                          "  user: u\n"
	                          "  path: /srv/..cache/app..v2\n");
	cr_expect_str_eq(mg_plan_vms_section(p)->path, "/srv/..cache/app..v2");
	mg_plan_free(p);
}

Test(plan, vms_health)
{
	EXPECT_ERRORS(
	    VMS_PLAN("  hosts: [a]\n"                                               /* 6 */
	             "  health: {url: \"http://${hostname}/\", timeout: 500ms}\n"), /* 7 */
	    {7, 17, "vms.health.url",
	     "unknown reference \"${hostname}\"; this value may use ${host}"},
	    {7, 49, "vms.health.timeout", "500ms is too short; the minimum is 1s"});
	EXPECT_ERRORS(VMS_PLAN("  hosts: [a]\n"                                /* 6 */
	                       "  health: {url: \"ftp://${host}/health\"}\n"), /* 7 */
	              {7, 17, "vms.health.url", "the URL's scheme is \"ftp\"; use http or https"});
}

static void batch_is(const char *batch, int count, double percent)
{
	char yaml[512];
	snprintf(yaml, sizeof(yaml), "%s  hosts: [a, b, c]\n  batch: %s\n", VMS_PLAN(""), batch);
	mg_plan *p = load_ok(yaml);
	const mg_plan_vms *v = mg_plan_vms_section(p);
	cr_expect_eq(v->batch_count, count, "batch %s: count %d", batch, v->batch_count);
	cr_expect_eq(v->batch_percent, percent, "batch %s: percent %g", batch, v->batch_percent);
	mg_plan_free(p);
}

Test(plan, vms_batch_forms)
{
	batch_is("5", 5, 0);
	batch_is("1", 1, 0);
	batch_is("25%", 0, 25);
	batch_is("\"12.5%\"", 0, 12.5);
	batch_is("100%", 0, 100);
}

Test(plan, vms_batch_invalid)
{
	EXPECT_ERRORS(VMS_PLAN("  hosts: [a]\n"  /* 6 */
	                       "  batch: 0%\n"), /* 7 */
	              {7, 10, "vms.batch", "a batch must hold at least one host"});
	EXPECT_ERRORS(VMS_PLAN("  hosts: [a]\n"    /* 6 */
	                       "  batch: half\n"), /* 7 */
	              {7, 10, "vms.batch",
	               "\"half\" is not a host count (such as 5) or a percentage (such as 25%)"});
	EXPECT_ERRORS(VMS_PLAN("  hosts: [a]\n"
	                       "  batch: 0\n"),
	              {7, 10, "vms.batch", "\"0\" is not a host count"});
	EXPECT_ERRORS(VMS_PLAN("  hosts: [a]\n"
	                       "  batch: 120%\n"),
	              {7, 10, "vms.batch", "\"120%\" is out of range"});
}

Test(plan, vms_defaults)
{
	setenv("HOME", "/home/tester", 1);
	mg_plan *p = load_ok(VMS_PLAN("  hosts: [a, \"b:2200\", \"[::1]:22\", 10.0.0.4]\n"));
	const mg_plan_vms *v = mg_plan_vms_section(p);
	cr_assert_eq(v->nhosts, 4);
	cr_expect_str_eq(v->hosts[1].name, "b");
	cr_expect_str_eq(v->hosts[1].address, "b");
	cr_expect_eq(v->hosts[1].port, 2200);
	cr_expect_str_eq(v->hosts[2].name, "::1");
	cr_expect_eq(v->hosts[2].port, 22);
	cr_expect_str_eq(v->hosts[3].name, "10.0.0.4");
	cr_expect_str_eq(v->user, "u");
	cr_expect_str_eq(v->path, "/srv/a");
	cr_expect_eq(v->keep_releases, 5);
	cr_expect_eq(v->parallel, 10);
	cr_expect_eq(v->batch_count, 0);
	cr_expect_eq(v->batch_percent, 25);
	cr_expect_eq(v->max_failures, 0);
	cr_expect_null(v->identity_file);
	cr_expect_null(v->passphrase_env);
	cr_expect_str_eq(v->known_hosts, "/home/tester/.ssh/known_hosts");
	cr_expect_null(v->activate);
	cr_expect_null(v->health_url);
	cr_expect_eq(v->health_timeout_ms, 30000);
	cr_expect_eq(v->connect_timeout_ms, 10000);
	cr_expect_eq(v->command_timeout_ms, 300000);
	mg_plan_free(p);
}

Test(plan, tilde_expansion)
{
	setenv("HOME", "/home/tester/", 1);
	mg_plan *p = load_ok(HEAD "vms:\n"
	                          "  hosts: [a]\n"
	                          "  user: u\n"
	                          "  path: /srv/a\n"
	                          "  identity_file: ~/keys/../.ssh/id_ed25519\n"
	                          "  known_hosts: \"~\"\n"
	                          "  passphrase_env: SSH_PASSPHRASE\n"
	                          "kubernetes:\n"
	                          "  kubeconfig: ~/.kube/config\n"
	                          "  namespace: payments\n"
	                          "  templates: ~other/k8s\n");
	const mg_plan_vms *v = mg_plan_vms_section(p);
	cr_expect_str_eq(v->identity_file, "/home/tester/.ssh/id_ed25519");
	cr_expect_str_eq(v->known_hosts, "/home/tester");
	cr_expect_str_eq(v->passphrase_env, "SSH_PASSPHRASE");
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(p);
	cr_expect_str_eq(k->kubeconfig, "/home/tester/.kube/config");
	/* only "~" and "~/" are the home directory; "~other" is a relative name */
	cr_expect_str_eq(k->templates, "/tmp/~other/k8s");
	mg_plan_free(p);
}

Test(plan, vms_batch_size)
{
	mg_plan_vms v = {0};
	v.nhosts = 4;
	v.batch_percent = 25;
	cr_expect_eq(mg_plan_vms_batch_size(&v), 1);
	v.nhosts = 10;
	cr_expect_eq(mg_plan_vms_batch_size(&v), 3);
	v.nhosts = 3;
	v.batch_percent = 0;
	v.batch_count = 5;
	cr_expect_eq(mg_plan_vms_batch_size(&v), 3);
	v.nhosts = 8;
	cr_expect_eq(mg_plan_vms_batch_size(&v), 5);
	v.batch_count = 0;
	v.batch_percent = 1;
	cr_expect_eq(mg_plan_vms_batch_size(&v), 1);
	v.batch_percent = 100;
	cr_expect_eq(mg_plan_vms_batch_size(&v), 8);
}

/* ---- inventory files ---- */

Test(plan, inventory_file)
{
	const char *inv = join(cwd(), "tests/fixtures/inventory/hosts.txt");
	mg_plan *p =
	    load_ok_in(VMS_PLAN("  inventory: tests/fixtures/inventory/hosts.txt\n"), cwd(), 0);
	const mg_plan_vms *v = mg_plan_vms_section(p);
	cr_expect_str_eq(v->inventory, inv);
	static const mg_plan_host hosts[] = {
	    {.name = "vm-01.payments.internal", .address = "vm-01.payments.internal", .port = 22},
	    {.name = "vm-02.payments.internal", .address = "vm-02.payments.internal", .port = 2222},
	    {.name = "10.20.0.13", .address = "10.20.0.13", .port = 22},
	    {.name = "::1", .address = "::1", .port = 22},
	    {.name = "fe80::1", .address = "fe80::1", .port = 2200},
	    {.name = "vm-06", .address = "vm-06", .port = 22},
	};
	cr_assert_eq(v->nhosts, N(hosts));
	for (size_t i = 0; i < N(hosts); i++) {
		cr_expect_str_eq(v->hosts[i].name, hosts[i].name, "host %zu", i);
		cr_expect_str_eq(v->hosts[i].address, hosts[i].address, "host %zu", i);
		cr_expect_eq(v->hosts[i].port, hosts[i].port, "host %zu", i);
	}
	mg_plan_free(p);
}

Test(plan, inventory_not_read_without_fs)
{
	mg_plan *p =
	    load_ok(VMS_PLAN("  inventory: tests/fixtures/inventory/does-not-exist.txt\n"));
	const mg_plan_vms *v = mg_plan_vms_section(p);
	cr_expect_str_eq(v->inventory, "/tmp/tests/fixtures/inventory/does-not-exist.txt");
	cr_expect_eq(v->nhosts, 0);
	mg_plan_free(p);
}

Test(plan, inventory_bad_lines_at_their_own_position)
{
	const char *inv = join(cwd(), "tests/fixtures/inventory/bad.txt");
	/* plan diagnostics come first, then the inventory's by line */
	EXPECT_ERRORS_IN(HEAD "vms:\n"                                          /* 3 */
	                      "  inventory: tests/fixtures/inventory/bad.txt\n" /* 4 */
	                      "  user: u\n"                                     /* 5 */
	                      "  path: srv\n",                                  /* 6 */
	                 cwd(), 0, {6, 9, "vms.path", "must be an absolute path"},
	                 {3, 4, "vms.inventory", "\"web 01:22\" is not host[:port]", inv},
	                 {4, 1, "vms.inventory", "\"vm-02:70000\" is not host[:port]", inv});
}

Test(plan, inventory_missing_file)
{
	const char *inv = join(cwd(), "tests/fixtures/inventory/does-not-exist.txt");
	char msg[PATH_MAX + 32];
	snprintf(msg, sizeof(msg), "%s: no such file", inv);
	EXPECT_ERRORS_IN(VMS_PLAN("  inventory: tests/fixtures/inventory/does-not-exist.txt\n"),
	                 cwd(), 0, {0, 0, "vms.inventory", msg});
}

Test(plan, inventory_duplicate_host)
{
	const char *inv = join(cwd(), "tests/fixtures/inventory/duplicate.txt");
	EXPECT_ERRORS_IN(VMS_PLAN("  inventory: tests/fixtures/inventory/duplicate.txt\n"), cwd(),
	                 0, {3, 1, "vms.inventory", "host \"vm-01\" is listed twice", inv});
}

/* ---- kubernetes ---- */

Test(plan, kubernetes_bad_namespace)
{
	EXPECT_ERRORS(HEAD "kubernetes:\n"              /* 3 */
	                   "  namespace: Payments_NS\n" /* 4 */
	                   "  templates: k8s\n",        /* 5 */
	              {4, 14, "kubernetes.namespace",
	               "\"Payments_NS\" is not a Kubernetes namespace name (lower case letters, "
	               "digits and '-', at most 63)"});
}

Test(plan, kubernetes_required_keys)
{
	EXPECT_ERRORS(HEAD "kubernetes:\n"      /* 3 */
	                   "  context: prod\n", /* 4 */
	              {4, 3, "kubernetes", "missing required key \"namespace\""},
	              {4, 3, "kubernetes", "missing required key \"templates\""});
}

Test(plan, kubernetes_values)
{
	EXPECT_ERRORS(
	    HEAD "kubernetes:\n"             /* 3 */
	         "  namespace: payments\n"   /* 4 */
	         "  templates: k8s\n"        /* 5 */
	         "  values:\n"               /* 6 */
	         "    replicas: 3\n"         /* 7 */
	         "    resources: {cpu: 1}\n" /* 8 */
	         "    bad-name: x\n"         /* 9 */
	         "    ports: [80]\n"         /* 10 */
	         "    replicas: 4\n",        /* 11 */
	    {8, 16, "kubernetes.values.resources", "expected a single value, found a mapping"},
	    {9, 5, "kubernetes.values",
	     "value names are letters, digits and '_' (used as ${values.NAME} in templates)"},
	    {10, 12, "kubernetes.values.ports", "expected a single value, found a list"},
	    {11, 5, "kubernetes.values.replicas", "duplicate key"});
}

Test(plan, kubernetes_values_hold_no_secrets)
{
	EXPECT_ERRORS(HEAD "kubernetes:\n"              /* 3 */
	                   "  namespace: payments\n"    /* 4 */
	                   "  templates: k8s\n"         /* 5 */
	                   "  values:\n"                /* 6 */
	                   "    replicas: 3\n"          /* 7 */
	                   "    db_password: hunter2\n" /* 8 */
	                   "    api_token: abc\n",      /* 9 */
	              {8, 5, "kubernetes.values.db_password",
	               "secrets may not be written into the plan; keep it in a Kubernetes Secret "
	               "and reference that from the templates"},
	              {9, 5, "kubernetes.values.api_token", "keep it in a Kubernetes Secret"});
}

Test(plan, kubernetes_values_keep_their_type)
{
	mg_plan *p =
	    load_ok(HEAD "kubernetes:\n"
	                 "  namespace: payments\n"
	                 "  templates: k8s\n"
	                 "  values: {a: 3, b: \"3\", c: true, d: 'true', e: 1.5, f: text}\n");
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(p);
	static const struct {
		const char *key, *value;
		bool is_string;
	} w[] = {{"a", "3", false},   {"b", "3", true},    {"c", "true", false},
	         {"d", "true", true}, {"e", "1.5", false}, {"f", "text", true}};
	cr_assert_eq(k->nvalues, N(w));
	for (size_t i = 0; i < N(w); i++) {
		cr_expect_str_eq(k->values[i].key, w[i].key);
		cr_expect_str_eq(k->values[i].value, w[i].value, "%s", w[i].key);
		cr_expect_eq(k->values[i].is_string, w[i].is_string, "%s", w[i].key);
	}
	cr_expect_str_eq(k->templates, "/tmp/k8s");
	cr_expect_null(k->context);
	cr_expect_eq(k->nconfigmaps, 0);
	cr_expect_eq(k->rollout_timeout_ms, 600000);
	mg_plan_free(p);
}

Test(plan, kubernetes_force_conflicts)
{
	/* absent: false, so that fields someone else owns stop the apply */
	mg_plan *p = load_ok(HEAD "kubernetes:\n"
	                          "  namespace: payments\n"
	                          "  templates: k8s\n");
	cr_expect_eq(mg_plan_kubernetes_section(p)->force_conflicts, false);
	mg_plan_free(p);
	p = load_ok(HEAD "kubernetes:\n"
	                 "  namespace: payments\n"
	                 "  templates: k8s\n"
	                 "  force_conflicts: true\n");
	cr_expect_eq(mg_plan_kubernetes_section(p)->force_conflicts, true);
	mg_plan_free(p);
	p = load_ok(HEAD "kubernetes:\n"
	                 "  namespace: payments\n"
	                 "  templates: k8s\n"
	                 "  force_conflicts: false\n");
	cr_expect_eq(mg_plan_kubernetes_section(p)->force_conflicts, false);
	mg_plan_free(p);
	/* only the plain YAML booleans: a quoted "true" or a "yes" is a mistake to report */
	EXPECT_ERRORS(HEAD "kubernetes:\n"             /* 3 */
	                   "  namespace: payments\n"   /* 4 */
	                   "  templates: k8s\n"        /* 5 */
	                   "  force_conflicts: yes\n", /* 6 */
	              {6, 20, "kubernetes.force_conflicts", "must be true or false (unquoted)"});
	EXPECT_ERRORS(HEAD "kubernetes:\n"                  /* 3 */
	                   "  namespace: payments\n"        /* 4 */
	                   "  templates: k8s\n"             /* 5 */
	                   "  force_conflicts: \"true\"\n", /* 6 */
	              {6, 20, "kubernetes.force_conflicts", "must be true or false (unquoted)"});
	EXPECT_ERRORS(HEAD "kubernetes:\n"                /* 3 */
	                   "  namespace: payments\n"      /* 4 */
	                   "  templates: k8s\n"           /* 5 */
	                   "  force_conflicts: [true]\n", /* 6 */
	              {6, 20, "kubernetes.force_conflicts", "must be true or false (unquoted)"});
}

Test(plan, kubernetes_configmaps)
{
	EXPECT_ERRORS(
	    HEAD "kubernetes:\n"                                      /* 3 */
	         "  namespace: payments\n"                            /* 4 */
	         "  templates: k8s\n"                                 /* 5 */
	         "  configmaps:\n"                                    /* 6 */
	         "    - {name: nginx-conf, from_nginx: nginx.conf}\n" /* 7 */
	         "    - {name: nginx-conf, from_nginx: other.conf}\n" /* 8 */
	         "    - {name: Nginx, from_nginx: x.conf}\n"          /* 9 */
	         "    - {name: y}\n"                                  /* 10 */
	         "    - z\n",                                         /* 11 */
	    {8, 14, "kubernetes.configmaps[1].name", "ConfigMap \"nginx-conf\" is listed twice"},
	    {9, 14, "kubernetes.configmaps[2].name",
	     "\"Nginx\" is not a ConfigMap name (lower case letters, digits and '-')"},
	    {10, 7, "kubernetes.configmaps[3]", "missing required key \"from_nginx\""},
	    {11, 7, "kubernetes.configmaps[4]",
	     "expected a mapping (key: value lines), found a single value"});
}

Test(plan, kubernetes_missing_templates_is_a_warning)
{
	char dir[PATH_MAX];
	tu_tmpdir_make(dir, sizeof(dir), "plan");
	const char *yaml = HEAD "kubernetes:\n"                                 /* 3 */
	                        "  namespace: payments\n"                       /* 4 */
	                        "  templates: k8s\n"                            /* 5 */
	                        "  configmaps:\n"                               /* 6 */
	                        "    - {name: conf, from_nginx: nginx.conf}\n"; /* 7 */
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", dir, 0, &err);
	cr_expect_eq(rc, 0, "rc %d: %s%s", rc, err.message, listing(&err));
	cr_expect_not_null(p);
	char m1[PATH_MAX + 64], m2[PATH_MAX + 64];
	snprintf(m1, sizeof(m1), "%s/k8s: No such file or directory", dir);
	snprintf(m2, sizeof(m2), "%s/nginx.conf: No such file or directory", dir);
	const want w[] = {
	    {5, 14, "kubernetes.templates", m1},
	    {7, 32, "kubernetes.configmaps[0].from_nginx", m2},
	};
	check_diags(&err, MG_SEV_WARNING, w, N(w));
	cr_expect_eq(mg_error_count(&err, MG_SEV_ERROR), 0);
	if (p)
		cr_expect_str_eq(mg_plan_kubernetes_section(p)->templates, join(dir, "k8s"));
	mg_plan_free(p);
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}

/* ---- paths, state ---- */

Test(plan, state_dir_default_and_relative)
{
	char dir[PATH_MAX];
	tu_tmpdir_make(dir, sizeof(dir), "plan");
	mg_plan *p = load_ok_in(HEAD, dir, MG_PLAN_LOAD_NO_FS);
	cr_expect_str_eq(mg_plan_dir(p), dir);
	cr_expect_str_eq(mg_plan_state_dir(p), join(dir, ".migrate"));
	mg_plan_free(p);
	p = load_ok_in(HEAD "state:\n  dir: ../shared/./../state//x/\n", dir, MG_PLAN_LOAD_NO_FS);
	cr_expect_str_eq(mg_plan_state_dir(p), "/tmp/state/x");
	mg_plan_free(p);
	p = load_ok_in(HEAD "state:\n  dir: /var/lib/../lib/migrate/.\n", dir, MG_PLAN_LOAD_NO_FS);
	cr_expect_str_eq(mg_plan_state_dir(p), "/var/lib/migrate");
	mg_plan_free(p);
	p = load_ok_in(HEAD "state:\n  dir: ../../../../..\n", dir, MG_PLAN_LOAD_NO_FS);
	cr_expect_str_eq(mg_plan_state_dir(p), "/");
	mg_plan_free(p);
	tu_tmpdir_remove(dir);
}

Test(plan, state_dir_errors)
{
	EXPECT_ERRORS(
	    HEAD "state:\n"      /* 3 */
	         "  dir: \"\"\n" /* 4 */
	         "  keep: 3\n",  /* 5 */
	    {4, 8, "state.dir", "empty path"},
	    {5, 3, "state.keep", "unknown key; state takes: dir, backend, kubernetes, lease"});
}

Test(plan, state_backend_defaults_to_local)
{
	mg_plan *p = load_ok(HEAD);
	const mg_plan_state *s = mg_plan_state_section(p);
	cr_assert_not_null(s);
	cr_expect_eq(s->backend, MG_STATE_LOCAL);
	cr_expect_eq(s->lease_ms, 15000);
	cr_expect_not(s->has_connection);
	mg_plan_free(p);
}

Test(plan, state_kubernetes_uses_the_kubernetes_section)
{
	mg_plan *p = load_ok(HEAD "kubernetes:\n"
	                          "  kubeconfig: /etc/kc\n"
	                          "  context: prod\n"
	                          "  namespace: shop\n"
	                          "  templates: k8s\n"
	                          "state:\n"
	                          "  backend: kubernetes\n"
	                          "  lease: 30s\n");
	const mg_plan_state *s = mg_plan_state_section(p);
	cr_expect_eq(s->backend, MG_STATE_KUBERNETES);
	cr_expect_eq(s->lease_ms, 30000);
	cr_expect_str_eq(s->kubeconfig, "/etc/kc");
	cr_expect_str_eq(s->context, "prod");
	cr_expect_str_eq(s->namespace_, "shop");
	mg_plan_free(p);
}

Test(plan, state_kubernetes_overrides_key_by_key)
{
	mg_plan *p = load_ok(HEAD "kubernetes:\n"
	                          "  kubeconfig: /etc/kc\n"
	                          "  context: prod\n"
	                          "  namespace: shop\n"
	                          "  templates: k8s\n"
	                          "state:\n"
	                          "  backend: kubernetes\n"
	                          "  kubernetes:\n"
	                          "    namespace: migrations\n");
	const mg_plan_state *s = mg_plan_state_section(p);
	cr_expect_str_eq(s->kubeconfig, "/etc/kc");
	cr_expect_str_eq(s->context, "prod");
	cr_expect_str_eq(s->namespace_, "migrations");
	cr_expect(s->has_connection);
	mg_plan_free(p);
	/* no kubernetes section: state.kubernetes alone is the connection */
	p = load_ok(HEAD "state:\n"
	                 "  backend: kubernetes\n"
	                 "  kubernetes:\n"
	                 "    context: ci\n");
	s = mg_plan_state_section(p);
	cr_expect_eq(s->backend, MG_STATE_KUBERNETES);
	cr_expect_str_eq(s->context, "ci");
	cr_expect_null(s->namespace_);
	cr_expect_null(s->kubeconfig);
	mg_plan_free(p);
}

Test(plan, kubeconfig_in_cluster_is_kept_and_has_no_context)
{
	mg_plan *p = load_ok(HEAD "kubernetes:\n"
	                          "  kubeconfig: in-cluster\n"
	                          "  namespace: shop\n"
	                          "  templates: k8s\n"
	                          "state:\n"
	                          "  backend: kubernetes\n");
	/* not resolved against the plan's directory: it names no file */
	cr_expect_str_eq(mg_plan_kubernetes_section(p)->kubeconfig, "in-cluster");
	cr_expect_str_eq(mg_plan_state_section(p)->kubeconfig, "in-cluster");
	mg_plan_free(p);
	/* a file of that name is still reachable */
	p = load_ok(HEAD "kubernetes:\n"
	                 "  kubeconfig: ./in-cluster\n"
	                 "  namespace: shop\n"
	                 "  templates: k8s\n");
	cr_expect_str_eq(mg_plan_kubernetes_section(p)->kubeconfig, "/tmp/in-cluster");
	mg_plan_free(p);
	/* the state in the pod's cluster, the deploys from a laptop's context: the context is
	 * the laptop's kubeconfig's, not inherited by the ServiceAccount */
	p = load_ok(HEAD "kubernetes:\n"
	                 "  kubeconfig: /etc/kc\n"
	                 "  context: prod\n"
	                 "  namespace: shop\n"
	                 "  templates: k8s\n"
	                 "state:\n"
	                 "  backend: kubernetes\n"
	                 "  kubernetes:\n"
	                 "    kubeconfig: in-cluster\n");
	const mg_plan_state *s = mg_plan_state_section(p);
	cr_expect_str_eq(s->kubeconfig, "in-cluster");
	cr_expect_null(s->context);
	cr_expect_str_eq(s->namespace_, "shop");
	mg_plan_free(p);
	EXPECT_ERRORS(
	    HEAD "kubernetes:\n"                /* 3 */
	         "  kubeconfig: in-cluster\n"   /* 4 */
	         "  context: prod\n"            /* 5 */
	         "  namespace: shop\n"          /* 6 */
	         "  templates: k8s\n"           /* 7 */
	         "state:\n"                     /* 8 */
	         "  backend: kubernetes\n"      /* 9 */
	         "  kubernetes:\n"              /* 10 */
	         "    kubeconfig: in-cluster\n" /* 11 */
	         "    context: ci\n",           /* 12 */
	    {5, 12, "kubernetes.context",
	     "kubeconfig: in-cluster has no contexts (it is the pod's ServiceAccount); "
	     "remove the context or name a kubeconfig file"},
	    {12, 14, "state.kubernetes.context", "kubeconfig: in-cluster has no contexts"});
}

Test(plan, state_backend_errors)
{
	EXPECT_ERRORS(HEAD "state:\n"                 /* 3 */
	                   "  backend: kubernetes\n", /* 4 */
	              {4, 12, "state.backend",
	               "the kubernetes backend needs a cluster: add `state.kubernetes` "
	               "(kubeconfig, context, namespace) or a `kubernetes` section"});
	EXPECT_ERRORS(
	    HEAD "state:\n"          /* 3 */
	         "  backend: etcd\n" /* 4 */
	         "  lease: 1s\n",    /* 5 */
	    {4, 12, "state.backend", "\"etcd\" is not a state backend; use local or kubernetes"},
	    {5, 10, "state.lease", "1s is too short; the minimum is 2s"});
	EXPECT_ERRORS(
	    HEAD "state:\n"                /* 3 */
	         "  backend: kubernetes\n" /* 4 */
	         "  lease: soon\n"         /* 5 */
	         "  kubernetes:\n"         /* 6 */
	         "    namespace: Shop_1\n" /* 7 */
	         "    user: x\n",          /* 8 */
	    {5, 10, "state.lease", "\"soon\" is not a duration: expected a number at \"soon\""},
	    {7, 16, "state.kubernetes.namespace",
	     "\"Shop_1\" is not a Kubernetes namespace name (lower case letters, "
	     "digits and '-', at most 63)"},
	    {8, 5, "state.kubernetes.user",
	     "unknown key; state.kubernetes takes: kubeconfig, context, namespace"});
}

/* ---- require ---- */

Test(plan, require_names_the_missing_section)
{
	mg_plan *p = load_ok(HEAD TRAFFIC_HAPROXY "slo:\n"
	                                          "  prometheus: {url: \"http://p:9090\"}\n"
	                                          "  checks: [{name: up, query: up, min: 1}]\n");
	mg_error err = MG_ERROR_INIT;
	cr_expect_eq(mg_plan_require(p, MG_NEED_TRAFFIC | MG_NEED_SLO, "run", &err), 0);
	cr_expect_eq(err.code, 0);
	cr_expect_eq(mg_plan_require(p, MG_NEED_BUILD, "build", &err), MG_EINVALID);
	cr_expect_eq(err.code, MG_EINVALID);
	cr_expect_str_eq(err.message,
	                 "t.yaml: `migrate build` needs a `build` section in the plan (see "
	                 "docs/plan.md)");
	cr_expect_eq(
	    mg_plan_require(p, MG_NEED_TRAFFIC | MG_NEED_VMS_OR_KUBERNETES, "deploy", &err),
	    MG_EINVALID);
	cr_expect_str_eq(err.message, "t.yaml: `migrate deploy` needs a `vms` or `kubernetes` "
	                              "section in the plan (see docs/plan.md)");
	/* the first missing one, in the order build, vms, kubernetes, traffic, slo */
	cr_expect_eq(mg_plan_require(p, MG_NEED_SLO | MG_NEED_KUBERNETES | MG_NEED_VMS, "x", &err),
	             MG_EINVALID);
	cr_expect_str_eq(
	    err.message,
	    "t.yaml: `migrate x` needs a `vms` section in the plan (see docs/plan.md)");
	mg_error_clear(&err);
	mg_plan_free(p);
}

/* ---- all problems at once ---- */

Test(plan, every_error_is_collected)
{
	EXPECT_ERRORS("version: 3\n"                             /* 1 */
	              "name: Payments\n"                         /* 2 */
	              "build: {artifact: a.tgz, image: a b}\n"   /* 3 */
	              "vms:\n"                                   /* 4 */
	              "  hosts: [a]\n"                           /* 5 */
	              "  user: u\n"                              /* 6 */
	              "  path: /srv/a\n"                         /* 7 */
	              "  batch: some\n"                          /* 8 */
	              "kubernetes:\n"                            /* 9 */
	              "  namespace: payments\n"                  /* 10 */
	              "  templates: k8s\n"                       /* 11 */
	              "  rollout_timeout: 1\n"                   /* 12 */
	              "slo:\n"                                   /* 13 */
	              "  prometheus: {url: \"http://p:9090\"}\n" /* 14 */
	              "  checks: [{name: up, query: up}]\n",     /* 15 */
	              {1, 10, "version", "\"3\" is from a different release"},
	              {2, 7, "name", "\"Payments\" must be"},
	              {3, 33, "build.image", "an image reference has no white space"},
	              {8, 10, "vms.batch", "\"some\" is not a host count"},
	              {12, 20, "kubernetes.rollout_timeout", "\"1\" has no unit"},
	              {15, 12, "slo.checks[0]", "a check needs \"min\", \"max\" or \"baseline\""});
}

/*
 * "the fleet has no hosts", "needs at least one of max_error_rate, ..." and
 * "needs k8s_servers" depend only on their own section: an unrelated error
 * (here the name) must not hide them. All four are reported.
 */
Test(plan, errors_that_depend_on_no_earlier_error)
{
	EXPECT_ERRORS("version: 1\n"                              /* 1 */
	              "name: Payments\n"                          /* 2 */
	              "vms:\n"                                    /* 3 */
	              "  hosts: []\n"                             /* 4 */
	              "  user: u\n"                               /* 5 */
	              "  path: /srv/a\n"                          /* 6 */
	              "slo:\n"                                    /* 7 */
	              "  prometheus: {url: \"http://p:9090\"}\n"  /* 8 */
	              "  red: {source: haproxy, backend: web}\n", /* 9 */
	              {2, 7, "name", "\"Payments\" must be"},
	              {4, 10, "vms", "the fleet has no hosts"},
	              {9, 8, "slo.red", "needs at least one of max_error_rate"},
	              {9, 8, "slo.red", "needs k8s_servers (or a traffic.haproxy section"});
}

Test(plan, empty_host_list)
{
	EXPECT_ERRORS(VMS_PLAN("  hosts: []\n"), /* 6 */
	              {6, 10, "vms", "the fleet has no hosts"});
}

Test(plan, warnings_alone_do_not_fail)
{
	const char *yaml = HEAD "kubernetes:\n"
	                        "  namespace: payments\n"
	                        "  templates: /nonexistent/templates\n";
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", "/tmp", 0, &err);
	cr_expect_eq(rc, 0, "rc %d: %s%s", rc, err.message, listing(&err));
	cr_expect_not_null(p);
	cr_expect_eq(err.code, 0);
	cr_expect_eq(mg_error_count(&err, MG_SEV_ERROR), 0);
	const want w[] = {
	    {5, 14, "kubernetes.templates", "/nonexistent/templates: No such file or directory"},
	};
	check_diags(&err, MG_SEV_WARNING, w, N(w));
	if (p)
		cr_expect_str_eq(mg_plan_kubernetes_section(p)->templates,
		                 "/nonexistent/templates");
	mg_plan_free(p);
	mg_error_clear(&err);
}

Test(plan, diagnostics_are_appended_after_existing_ones)
{
	mg_error err = MG_ERROR_INIT;
	mg_error_diag(&err, MG_SEV_ERROR, "other.yaml", 9, 9, "x", "earlier problem");
	mg_plan *p = NULL;
	const char *yaml = "version: 1\nname: A\n";
	cr_expect_eq(
	    mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", "/tmp", MG_PLAN_LOAD_NO_FS, &err),
	    MG_EINVALID);
	cr_assert_eq(err.ndiags, 2, "%s", listing(&err));
	cr_expect_str_eq(err.diags[0].message, "earlier problem");
	cr_expect_str_eq(err.diags[1].path, "name");
	cr_expect_eq(err.diags[1].line, 2);
	mg_error_clear(&err);
}

Test(plan, names_of_enums)
{
	cr_expect_str_eq(mg_provider_name(MG_PROVIDER_HAPROXY), "haproxy");
	cr_expect_str_eq(mg_provider_name(MG_PROVIDER_NGINX), "nginx");
	cr_expect_str_eq(mg_provider_name(MG_PROVIDER_CLOUDFLARE), "cloudflare");
	cr_expect_str_eq(mg_red_source_name(MG_RED_HAPROXY), "haproxy");
	cr_expect_str_eq(mg_red_source_name(MG_RED_INGRESS_NGINX), "ingress-nginx");
	cr_expect_str_eq(mg_on_failure_name(MG_ON_FAILURE_ROLLBACK), "rollback");
	cr_expect_str_eq(mg_on_failure_name(MG_ON_FAILURE_PAUSE), "pause");
}

Test(plan, slo_model)
{
	mg_plan *p = load_ok(HEAD "slo:\n"
	                          "  prometheus:\n"
	                          "    url: https://prom.example.com/\n"
	                          "    token_env: PROM_TOKEN\n"
	                          "    timeout: 2s\n"
	                          "  interval: 15s\n"
	                          "  window: 15s\n"
	                          "  min_requests: 0\n"
	                          "  failure_limit: 3\n"
	                          "  on_failure: pause\n"
	                          "  checks: [{name: up, query: up, min: 1}]\n");
	const mg_plan_slo *s = mg_plan_slo_section(p);
	cr_expect_str_eq(s->prometheus_url, "https://prom.example.com/");
	cr_expect_str_eq(s->token_env, "PROM_TOKEN");
	cr_expect_eq(s->prometheus_timeout_ms, 2000);
	cr_expect_eq(s->interval_ms, 15000);
	cr_expect_eq(s->window_ms, 15000);
	cr_expect_eq(s->min_requests, 0);
	cr_expect_eq(s->failure_limit, 3);
	cr_expect_eq(s->on_failure, MG_ON_FAILURE_PAUSE);
	mg_plan_free(p);
	p = load_ok(HEAD "slo:\n"
	                 "  prometheus: {url: \"http://p:9090\"}\n"
	                 "  checks: [{name: up, query: up, min: 1}]\n");
	s = mg_plan_slo_section(p);
	cr_expect_eq(s->interval_ms, 30000);
	cr_expect_eq(s->window_ms, 300000);
	cr_expect_eq(s->min_requests, 0, "a floor the user may set; the judge needs none");
	cr_expect_eq(s->test_period_ms, 300000, "no traffic section: the window");
	cr_expect_float_eq(s->confidence, 0.95, 1e-12);
	cr_expect_eq(s->failure_limit, 1);
	cr_expect_eq(s->on_failure, MG_ON_FAILURE_ROLLBACK);
	cr_expect_eq(s->prometheus_timeout_ms, 10000);
	mg_plan_free(p);
}

Test(plan, vms_ipv6_hosts_are_checked_as_addresses)
{
	mg_plan *p =
	    load_ok(VMS_PLAN("  hosts: [\"[fe80::1]:2200\", {name: v6, address: \"::1\"}]\n"));
	const mg_plan_vms *v = mg_plan_vms_section(p);
	cr_assert_eq(v->nhosts, 2);
	cr_assert_str_eq(v->hosts[0].address, "fe80::1");
	cr_assert_eq(v->hosts[0].port, 2200);
	cr_assert_str_eq(v->hosts[1].address, "::1");
	mg_plan_free(p);
	/* hex digits and colons alone do not make an address */
	EXPECT_ERRORS(VMS_PLAN("  hosts: [{name: \"db:22\"}]\n"), /* 6 */
	              {6, 18, "vms.hosts[0].name", "\"db:22\" is not a valid host name"});
	EXPECT_ERRORS(VMS_PLAN("  hosts: [\":::\"]\n"), /* 6 */
	              {6, 11, "vms.hosts[0]", "\":::\" is not a host name"});
}

Test(plan, trailing_empty_document_is_harmless)
{
	mg_plan *p = load_ok(VMS_PLAN("  hosts: [a]\n"
	                              "---\n"));
	cr_assert_eq(mg_plan_vms_section(p)->nhosts, 1);
	mg_plan_free(p);
}

Test(plan, invalid_min_is_one_error)
{
	EXPECT_ERRORS(HEAD "slo:\n"                                   /* 3 */
	                   "  prometheus: {url: \"http://p:9090\"}\n" /* 4 */
	                   "  checks:\n"                              /* 5 */
	                   "    - {name: a, query: up, min: lots}\n", /* 6 */
	              {6, 33, "slo.checks[0].min", "\"lots\" is not a number"});
}
