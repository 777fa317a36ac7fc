/*
 * The SLO gates (lib/gate.h) against a real Prometheus over fixed TSDB
 * blocks: plan YAML -> mg_plan_slo -> PromQL -> Prometheus -> verdict, and
 * `migrate check` on top. One OpenMetrics fixture holds every scenario as its
 * own HAProxy backend (the `proxy` label), sampled every 5 s at fixed Unix
 * times, and every evaluation is at a fixed time, so each value is known in
 * advance. The counters grow at a constant rate inside each window, so
 * increase() comes out exact whether or not Prometheus extrapolates at the
 * window's edges.
 *
 * Each test starts its own Prometheus (about 0.3 s): Criterion runs every
 * test in its own process, and one shared instance would need the runner's
 * internals.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "gate.h"
#include "metrics.h"
#include "migration.h"
#include "plan.h"
#include "state.h"
#include "store.h"

/* 2026-01-01T00:00:00Z; the gates are evaluated five minutes later */
#define T0     1767225600LL
#define AT_MS  ((T0 + 300) * 1000)
#define AT_STR "2026-01-01T00:05:00Z"
#define STEP   5 /* seconds between samples */
#define FIRST  (T0 - 300)
#define LAST   (T0 + 600)

/*
 * Every 5 s each server adds ok 2xx and err 5xx responses (5xx stop growing
 * at err_until, if set), and reports a constant average response time.
 */
typedef struct {
	const char *proxy, *server;
	double ok, err;
	double latency;
	long long err_until;
	int err_every; /* > 0: one 5xx every err_every seconds instead, the first at FIRST + 75 */
} fx_server;

static const fx_server servers[] = {
    /* healthy: 60000 requests in 5m, 0.1% 5xx, worst latency 50 ms; the decoys must not count */
    {"healthy", "k8s-1", 500, 0, 0.030, 0},
    {"healthy", "k8s-2", 499, 1, 0.050, 0},
    {"healthy", "k8s-10", 0, 100, 9, 0}, /* not k8s-1: the regex is anchored */
    {"healthy", "vm-1", 50, 50, 2, 0},   /* a VM: never part of the cluster's figures */
    {"healthy", "vm-2", 1000, 0, 0.020, 0},
    /* errors: 5% 5xx */
    {"errors", "k8s-1", 95, 5, 0.050, 0},
    {"errors", "vm-1", 100, 0, 0.050, 0},
    /* low: 60 requests in 5m, every one a 5xx, and slow */
    {"low", "k8s-1", 0, 1, 5, 0},
    /* idle: counters that do not move: 0 requests, 0/0 errors */
    {"idle", "k8s-1", 0, 0, 0.050, 0},
    /* clamp: 5xx until 20 s before AT, none after: 4000 clean requests since then, enough
     * for the judge to show a rate below 1% */
    {"clamp", "k8s-1", 1000, 50, 0.050, T0 + 280},
    /* shared: the cluster at 5%, the VMs at 4% */
    {"shared", "k8s-1", 95, 5, 0.050, 0},
    {"shared", "vm-1", 96, 4, 0.050, 0},
    {"shared", "vm-2", 192, 8, 0.050, 0},
    /* regress: the cluster at 5%, the VMs at 0.5% */
    {"regress", "k8s-1", 95, 5, 0.050, 0},
    {"regress", "vm-1", 199, 1, 0.050, 0},
    /* trickle: a healthy cluster at 1 request/s with one 5xx every 150 s (0.67%, the
     * first of the step at T0 + 75), and VMs at 1 request/s without any */
    {"trickle", "k8s-1", 5, 0, 0.050, 0, 150},
    {"trickle", "vm-1", 5, 0, 0.050, 0},
    /* regress4x: 100 requests/s each side, the cluster at 4% 5xx (4x of 1%), VMs at 0 */
    {"regress4x", "k8s-1", 480, 20, 0.050, 0},
    {"regress4x", "vm-1", 500, 0, 0.050, 0},
    /* slow: no errors, worst latency 250 ms */
    {"slow", "k8s-1", 1000, 0, 0.250, 0},
    {"slow", "k8s-2", 1000, 0, 0.080, 0},
};
#define NSERVERS (sizeof(servers) / sizeof(servers[0]))

static double counter_at(const fx_server *s, bool err, long long t)
{
	if (!err)
		return 1000 + s->ok * (double)(t - FIRST) / STEP;
	if (s->err_every)
		return 10 + (t >= FIRST + 75 ? 1 + (t - FIRST - 75) / s->err_every : 0);
	long long end = s->err_until && t > s->err_until ? s->err_until : t;
	return 10 + s->err * (double)(end - FIRST) / STEP;
}

/* The OpenMetrics text of servers[] (malloc'd). */
static char *fixture_text(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("# TYPE haproxy_server_http_responses counter\n", f);
	for (size_t i = 0; i < NSERVERS; i++)
		for (int e = 0; e < 2; e++)
			for (long long t = FIRST; t <= LAST; t += STEP)
				fprintf(f,
				        "haproxy_server_http_responses_total{proxy=\"%s\","
				        "server=\"%s\",code=\"%s\"} %.10g %lld\n",
				        servers[i].proxy, servers[i].server, e ? "5xx" : "2xx",
				        counter_at(&servers[i], e, t), t);
	fputs("# TYPE haproxy_server_response_time_average_seconds gauge\n", f);
	for (size_t i = 0; i < NSERVERS; i++)
		for (long long t = FIRST; t <= LAST; t += STEP)
			fprintf(f,
			        "haproxy_server_response_time_average_seconds{proxy=\"%s\","
			        "server=\"%s\"} %.10g %lld\n",
			        servers[i].proxy, servers[i].server, servers[i].latency, t);
	/*
	 * ingress-nginx in namespace "shop": 1000 requests per 5 s, 10 of them 5xx (1%), and
	 * their durations: 900 within 0.1 s, 990 within 0.25 s, 998 within 0.5 s, all within
	 * 1 s. So 10% are slower than 0.1 s, 1% than 0.25 s, 0.2% than 0.5 s.
	 */
	static const struct {
		const char *le;
		double per_step;
	} hist[] = {{"0.1", 900}, {"0.25", 990}, {"0.5", 998}, {"1", 1000}, {"+Inf", 1000}};
	/* ingress-nginx names its counter without _total, which an OpenMetrics counter cannot
	 * have: "unknown" keeps the name as it is */
	fputs("# TYPE nginx_ingress_controller_requests unknown\n", f);
	for (int e = 0; e < 2; e++)
		for (long long t = FIRST; t <= LAST; t += STEP)
			fprintf(
			    f,
			    "nginx_ingress_controller_requests{namespace=\"shop\",status=\"%s\"} "
			    "%.10g %lld\n",
			    e ? "500" : "200", (e ? 10.0 : 990.0) * (double)(t - FIRST) / STEP, t);
	fputs("# TYPE nginx_ingress_controller_request_duration_seconds histogram\n", f);
	for (long long t = FIRST; t <= LAST; t += STEP) {
		double k = (double)(t - FIRST) / STEP;
		for (size_t b = 0; b < sizeof(hist) / sizeof(hist[0]); b++)
			fprintf(
			    f,
			    "nginx_ingress_controller_request_duration_seconds_bucket{namespace="
			    "\"shop\",le=\"%s\"} %.10g %lld\n",
			    hist[b].le, hist[b].per_step * k, t);
		fprintf(
		    f,
		    "nginx_ingress_controller_request_duration_seconds_count{namespace=\"shop\"} "
		    "%.10g %lld\n",
		    1000 * k, t);
		fprintf(f,
		        "nginx_ingress_controller_request_duration_seconds_sum{namespace=\"shop\"} "
		        "%.10g %lld\n",
		        60 * k, t);
	}
	fputs("# EOF\n", f);
	fclose(f);
	return buf;
}

static void no_proxies(void)
{
	setenv("NO_PROXY", "127.0.0.1", 1);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("ALL_PROXY");
}

/* ---- per test ---- */

static char url[128];
static char own_dir[256], tmpdir[256];
static tu_prometheus own;

typedef struct {
	mg_plan *plan;
	mg_metrics *m;
	mg_gate_eval ev;
	int rc;
	mg_error err;
} gate_run;

static gate_run g;

static void teardown(void)
{
	mg_gate_eval_clear(&g.ev);
	mg_metrics_free(g.m);
	mg_plan_free(g.plan);
	mg_error_clear(&g.err);
	memset(&g, 0, sizeof(g));
	tu_prometheus_stop(&own);
	tu_state_stop();
	tu_tmpdir_remove(own_dir);
	tu_tmpdir_remove(tmpdir);
	own_dir[0] = tmpdir[0] = '\0';
}

static void setup(void)
{
	no_proxies();
	unsetenv("NO_COLOR");
	g.err = (mg_error)MG_ERROR_INIT;
	tu_tmpdir_make(own_dir, sizeof(own_dir), "gate");
	char *om = fixture_text(), why[4096];
	cr_assert_not_null(om);
	bool ok = tu_prometheus_start(&own, own_dir, om, why, sizeof(why));
	free(om);
	if (!ok) {
		teardown(); /* Criterion skips .fini when .init fails */
		cr_assert_fail("%s", why);
	}
	snprintf(url, sizeof(url), "%s", own.url);
}

TestSuite(gate, .init = setup, .fini = teardown, .timeout = 60);

/*
 * Loads a plan whose slo section is slo_body (indented by two spaces, after
 * the prometheus key) pointing at prom_url, and evaluates its gates at at_ms
 * for a step that began at started_ms.
 */
static void evaluate_at(const char *prom_url, int64_t at_ms, int64_t started_ms,
                        const char *slo_body)
{
	mg_gate_eval_clear(&g.ev);
	mg_metrics_free(g.m);
	mg_plan_free(g.plan);
	g.m = NULL;
	g.plan = NULL;
	char *yaml = NULL;
	int n = asprintf(&yaml,
	                 "version: 1\n"
	                 "name: gates\n"
	                 "slo:\n"
	                 "  prometheus: { url: \"%s\", timeout: 5s }\n"
	                 "%s",
	                 prom_url, slo_body);
	cr_assert_gt(n, 0);
	int rc = mg_plan_load_buffer(&g.plan, yaml, strlen(yaml), "gate.yaml", "/tmp",
	                             MG_PLAN_LOAD_NO_FS, &g.err);
	if (rc) {
		char d[512] = "";
		if (g.err.ndiags)
			mg_diag_format(d, sizeof(d), &g.err.diags[0]);
		cr_assert_fail("plan: %s %s\n%s", g.err.message, d, yaml);
	}
	free(yaml);
	const mg_plan_slo *slo = mg_plan_slo_section(g.plan);
	cr_assert_not_null(slo);
	cr_assert_eq(mg_metrics_open(&g.m, slo, &g.err), 0, "%s", g.err.message);
	g.rc = mg_gate_evaluate(&g.ev, g.m, slo, at_ms, started_ms, &g.err);
	cr_assert_eq(g.rc, 0, "mg_gate_evaluate: %s", g.err.message);
}

static void evaluate(int64_t started_ms, const char *slo_body)
{
	evaluate_at(url, AT_MS, started_ms, slo_body);
}

static const mg_gate_check *find(const char *name)
{
	for (size_t i = 0; i < g.ev.nchecks; i++)
		if (!strcmp(g.ev.checks[i].name, name))
			return &g.ev.checks[i];
	cr_assert_fail("no check named %s among %zu", name, g.ev.nchecks);
	return NULL;
}

static const char *oname(mg_gate_outcome o)
{
	return mg_gate_outcome_name(o);
}

static bool close_to(double got, double want)
{
	if (isinf(want))
		return got == want;
	return fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want));
}

/* The check's verdict and value (NAN: it must have none). */
static const mg_gate_check *expect(const char *name, mg_gate_outcome o, double value)
{
	const mg_gate_check *c = find(name);
	cr_assert_eq(c->outcome, o, "%s: %s, expected %s (value %g, detail %s)", name,
	             oname(c->outcome), oname(o), c->value, c->detail ? c->detail : "none");
	if (isnan(value)) {
		cr_assert_not(c->has_value, "%s: has value %g, expected none", name, c->value);
	} else {
		cr_assert(c->has_value, "%s: no value (%s)", name, c->detail ? c->detail : "");
		cr_assert(close_to(c->value, value), "%s: value %.12g, expected %.12g", name,
		          c->value, value);
	}
	return c;
}

static void expect_detail(const mg_gate_check *c, const char *part)
{
	cr_assert_not_null(c->detail, "%s: no detail, expected one with \"%s\"", c->name, part);
	cr_assert(strstr(c->detail, part), "%s: detail \"%s\" lacks \"%s\"", c->name, c->detail,
	          part);
}

static void expect_overall(mg_gate_outcome o)
{
	cr_assert_eq(g.ev.outcome, o, "evaluation %s, expected %s", oname(g.ev.outcome), oname(o));
}

#define RED_HEAD "  red:\n    source: haproxy\n"

/* ---- healthy ---- */

Test(gate, healthy_cluster_passes_with_the_fixture_values)
{
	evaluate(0, RED_HEAD "    backend: healthy\n"
	                     "    k8s_servers: [k8s-1, k8s-2]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_latency: 100ms\n");
	expect_overall(MG_GATE_PASS);
	cr_assert_eq(g.ev.nchecks, 3);
	cr_assert_eq(g.ev.at_ms, AT_MS);
	cr_assert_eq(g.ev.window_ms, 300000);
	cr_assert_eq(g.ev.window_plan_ms, 300000);
	cr_assert_not(g.ev.clamped);
	/* k8s-1 and k8s-2 only: (500 + 499 + 1) per 5 s, 60 intervals */
	const mg_gate_check *rate = expect("rate", MG_GATE_PASS, 60000);
	cr_assert_str_eq(rate->op, ">=");
	cr_assert_eq(rate->threshold, 1); /* min_requests' default: no floor but one request */
	const mg_gate_check *errors = expect("errors", MG_GATE_PASS, 0.001);
	cr_assert_str_eq(errors->op, "<=");
	cr_assert(close_to(errors->threshold, 0.01));
	/* judged on the counts: 60 errors in 60,000 requests, shown below 1% */
	cr_assert(errors->stats.judged);
	cr_assert(close_to(errors->stats.requests, 60000), "%g", errors->stats.requests);
	cr_assert(close_to(errors->stats.events, 60), "%g", errors->stats.events);
	cr_assert_eq(errors->stats.side, MG_JUDGE_BELOW);
	cr_assert_lt(errors->stats.upper, 0.01);
	const mg_gate_check *dur = expect("duration", MG_GATE_PASS, 0.050);
	cr_assert(close_to(dur->threshold, 0.1));
	cr_assert_null(rate->detail, "%s", rate->detail);
	cr_assert_null(errors->detail, "%s", errors->detail);
	expect_detail(dur, "HAProxy exports an average response time, not a histogram");
	/* the plan -> query path, exactly as sent */
	cr_assert_str_eq(rate->query, "sum(increase(haproxy_server_http_responses_total{proxy="
	                              "\"healthy\",server=~\"k8s-1|k8s-2\"}[5m]))");
	cr_assert_str_eq(errors->query,
	                 "sum(increase(haproxy_server_http_responses_total{proxy=\"healthy\","
	                 "server=~\"k8s-1|k8s-2\",code=\"5xx\"}[5m])) or vector(0)");
	cr_assert_str_eq(errors->requests_query, rate->query);
	cr_assert_str_eq(dur->query, "max(avg_over_time(haproxy_server_response_time_average_"
	                             "seconds{proxy=\"healthy\",server=~\"k8s-1|k8s-2\"}[5m]))");
	cr_assert_null(errors->other_query);

	json_t *j = mg_gate_eval_to_json(&g.ev);
	cr_assert_not_null(j);
	cr_assert_str_eq(json_string_value(json_object_get(j, "outcome")), "pass");
	cr_assert_str_eq(json_string_value(json_object_get(j, "at")), "2026-01-01T00:05:00.000Z");
	cr_assert_str_eq(json_string_value(json_object_get(j, "window")), "5m");
	cr_assert(json_is_false(json_object_get(j, "clamped")));
	json_t *c0 = json_array_get(json_object_get(j, "checks"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(c0, "name")), "rate");
	cr_assert(close_to(json_number_value(json_object_get(c0, "value")), 60000));
	json_decref(j);
}

/* ---- errors ---- */

Test(gate, cluster_errors_above_the_limit_fail)
{
	evaluate(0, RED_HEAD "    backend: errors\n"
	                     "    k8s_servers: [k8s-1]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_latency: 100ms\n");
	expect_overall(MG_GATE_FAIL);
	expect("rate", MG_GATE_PASS, 6000);
	expect("errors", MG_GATE_FAIL, 0.05);
	expect("duration", MG_GATE_PASS, 0.05);
	char sum[512];
	mg_gate_eval_summary(sum, sizeof(sum), &g.ev);
	cr_assert(strstr(sum, "errors 0.05 > 0.01"), "summary: %s", sum);
	cr_assert(strstr(sum, "window 5m"), "summary: %s", sum);
	cr_assert_null(strstr(sum, "rate"), "only the failures decide: %s", sum);
}

/* ---- low traffic ---- */

/*
 * 60 requests in 5m, every one a 5xx: the old rule (min_requests 100 by
 * default) judged nothing; the judge needs no floor to see that 60 of 60 is
 * above 1%. A floor the user sets still holds it.
 */
Test(gate, low_traffic_with_every_request_failing_fails_unless_a_floor_holds_it)
{
	evaluate(0, RED_HEAD "    backend: low\n"
	                     "    k8s_servers: [k8s-1]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_latency: 100ms\n");
	expect_overall(MG_GATE_FAIL);
	expect("rate", MG_GATE_PASS, 60);
	const mg_gate_check *e = expect("errors", MG_GATE_FAIL, 1.0);
	expect_detail(e, "above max_error_rate with 95% confidence (60 errors in 60 requests)");
	evaluate(0, "  min_requests: 100\n" RED_HEAD "    backend: low\n"
	            "    k8s_servers: [k8s-1]\n"
	            "    max_error_rate: 1%\n"
	            "    max_latency: 100ms\n");
	expect_overall(MG_GATE_FAIL); /* the average latency has no floor: 5 s */
	const mg_gate_check *rate = expect("rate", MG_GATE_INCONCLUSIVE, 60);
	expect_detail(rate, "60 requests to the cluster in 5m; at least 100");
	/* 100% errors: observed, shown, but not judged */
	expect_detail(expect("errors", MG_GATE_INCONCLUSIVE, 1.0), "too few requests");
	expect("duration", MG_GATE_FAIL, 5.0);
}

/* ---- NaN ---- */

Test(gate, no_requests_in_the_window_is_nothing_to_judge_not_a_pass)
{
	/* counters that do not move: 0 errors of 0 requests */
	evaluate(0, "  min_requests: 0\n" RED_HEAD "    backend: idle\n"
	            "    k8s_servers: [k8s-1]\n"
	            "    max_error_rate: 1%\n");
	expect_overall(MG_GATE_INCONCLUSIVE);
	expect_detail(expect("rate", MG_GATE_INCONCLUSIVE, 0), "no requests reached the cluster");
	expect_detail(expect("errors", MG_GATE_INCONCLUSIVE, NAN), "too few requests");
}

/* ---- no series ---- */

Test(gate, no_series_is_no_data)
{
	evaluate(0, RED_HEAD "    backend: ghost\n"
	                     "    k8s_servers: [k8s-1]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_latency: 100ms\n");
	expect_overall(MG_GATE_INCONCLUSIVE);
	expect_detail(expect("rate", MG_GATE_INCONCLUSIVE, NAN), "no data");
	expect_detail(expect("duration", MG_GATE_INCONCLUSIVE, NAN), "no data");
	/* no 5xx series is 0 errors (or vector(0)), but of no known number of requests */
	expect_detail(expect("errors", MG_GATE_INCONCLUSIVE, NAN),
	              "no count of the cluster's requests (see rate)");
	char sum[512];
	mg_gate_eval_summary(sum, sizeof(sum), &g.ev);
	cr_assert(strstr(sum, "rate no data"), "summary: %s", sum);
}

Test(gate, servers_of_another_backend_are_not_the_cluster)
{
	/* k8s-2 exists, in backend healthy: backend low has no such server */
	evaluate(0, RED_HEAD "    backend: low\n"
	                     "    k8s_servers: [k8s-2]\n"
	                     "    max_error_rate: 1%\n");
	expect_overall(MG_GATE_INCONCLUSIVE);
	expect_detail(expect("rate", MG_GATE_INCONCLUSIVE, NAN), "no data");
}

/* ---- the window ---- */

Test(gate, window_is_clamped_to_the_step_in_whole_seconds)
{
	/* 20.7 s ago: rounded down to 20 s, in every query, custom ones too */
	evaluate(AT_MS - 20700, RED_HEAD "    backend: clamp\n"
	                                 "    k8s_servers: [k8s-1]\n"
	                                 "    max_error_rate: 1%\n"
	                                 "  checks:\n"
	                                 "    - name: clamp-2xx\n"
	                                 "      query: sum(increase(haproxy_server_http_"
	                                 "responses_total{proxy=\"clamp\",code=\"2xx\"}"
	                                 "[${window}]))\n"
	                                 "      min: 1\n");
	cr_assert_eq(g.ev.window_ms, 20000);
	cr_assert_eq(g.ev.window_plan_ms, 300000);
	cr_assert(g.ev.clamped);
	for (size_t i = 0; i < g.ev.nchecks; i++) {
		cr_assert(strstr(g.ev.checks[i].query, "[20s]"), "%s", g.ev.checks[i].query);
		cr_assert_null(strstr(g.ev.checks[i].query, "[5m]"), "%s", g.ev.checks[i].query);
	}
	/* 4 intervals of 100 2xx, and the 5xx stopped at the step's start */
	expect("rate", MG_GATE_PASS, 4000);
	expect("errors", MG_GATE_PASS, 0);
	expect("clamp-2xx", MG_GATE_PASS, 4000);
	expect_overall(MG_GATE_PASS);
	char sum[512];
	mg_gate_eval_summary(sum, sizeof(sum), &g.ev);
	cr_assert(strstr(sum, "(window 20s, clamped)"), "summary: %s", sum);
	json_t *j = mg_gate_eval_to_json(&g.ev);
	cr_assert(json_is_true(json_object_get(j, "clamped")));
	cr_assert_str_eq(json_string_value(json_object_get(j, "window")), "20s");
	cr_assert_str_eq(json_string_value(json_object_get(j, "window_plan")), "5m");
	json_decref(j);
}

Test(gate, errors_before_the_step_began_do_not_fail_it)
{
	const char *body = RED_HEAD "    backend: clamp\n"
	                            "    k8s_servers: [k8s-1]\n"
	                            "    max_error_rate: 1%\n";
	/* step start unknown: the whole 5m, with the earlier weight's errors, fails */
	evaluate(0, body);
	cr_assert_not(g.ev.clamped);
	expect_overall(MG_GATE_FAIL);
	const mg_gate_check *e = find("errors");
	cr_assert_eq(e->outcome, MG_GATE_FAIL);
	/* 2800 5xx of 62800 with exact edges; extrapolation at the left edge moves it little */
	cr_assert(e->value > 0.04 && e->value < 0.05, "errors %g", e->value);
	/* a step older than the window: no clamping either */
	evaluate(AT_MS - 600000, body);
	cr_assert_not(g.ev.clamped);
	cr_assert_eq(g.ev.window_ms, 300000);
	expect_overall(MG_GATE_FAIL);
	/* the step began when the errors stopped: clean */
	evaluate(AT_MS - 20000, body);
	cr_assert(g.ev.clamped);
	expect_overall(MG_GATE_PASS);
	expect("errors", MG_GATE_PASS, 0);
}

Test(gate, a_step_younger_than_a_second_is_inconclusive)
{
	evaluate(AT_MS - 999, RED_HEAD "    backend: healthy\n"
	                               "    k8s_servers: [k8s-1, k8s-2]\n"
	                               "    max_error_rate: 1%\n"
	                               "  checks:\n"
	                               "    - name: one\n"
	                               "      query: vector(1)\n"
	                               "      min: 0\n");
	expect_overall(MG_GATE_INCONCLUSIVE);
	cr_assert(g.ev.clamped);
	cr_assert_eq(g.ev.nchecks, 3);
	const char *names[] = {"rate", "errors", "one"};
	for (size_t i = 0; i < 3; i++)
		expect_detail(expect(names[i], MG_GATE_INCONCLUSIVE, NAN), "less than a second");
	cr_assert(g.ev.awaiting_data);
	/* the same at the very moment of the step */
	evaluate(AT_MS, RED_HEAD "    backend: healthy\n"
	                         "    k8s_servers: [k8s-1, k8s-2]\n"
	                         "    max_error_rate: 1%\n");
	expect_overall(MG_GATE_INCONCLUSIVE);
	expect_detail(expect("rate", MG_GATE_INCONCLUSIVE, NAN), "less than a second");
	/* from one second on, the queries are sent (a 1s range holds one 5 s scrape: no data) */
	evaluate(AT_MS - 1000, RED_HEAD "    backend: healthy\n"
	                                "    k8s_servers: [k8s-1, k8s-2]\n"
	                                "    max_error_rate: 1%\n"
	                                "  checks:\n"
	                                "    - name: one\n"
	                                "      query: vector(1)\n"
	                                "      min: 0\n");
	cr_assert_eq(g.ev.window_ms, 1000);
	cr_assert(strstr(find("rate")->query, "[1s]"), "%s", find("rate")->query);
	expect_detail(expect("rate", MG_GATE_INCONCLUSIVE, NAN), "no data");
	expect("one", MG_GATE_PASS, 1);
	/* nothing scraped of the step yet, though "one" has a value: the rate decides */
	cr_assert(g.ev.awaiting_data);
	/* an old enough step has data: no longer awaiting it */
	evaluate(AT_MS - 60000, RED_HEAD "    backend: healthy\n"
	                                 "    k8s_servers: [k8s-1, k8s-2]\n"
	                                 "    max_error_rate: 1%\n");
	cr_assert_not(g.ev.awaiting_data);
}

/* ---- against the VMs ---- */

Test(gate, errors_on_both_sides_hold_the_step)
{
	evaluate(0, RED_HEAD "    backend: shared\n"
	                     "    k8s_servers: [k8s-1]\n"
	                     "    vm_servers: [vm-1, vm-2]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_error_rate_vs_vms: 2\n");
	expect_overall(MG_GATE_INCONCLUSIVE);
	expect("rate", MG_GATE_PASS, 6000);
	const mg_gate_check *e = expect("errors", MG_GATE_INCONCLUSIVE, 0.05);
	expect_detail(e, "shared cause");
	char sum[512];
	mg_gate_eval_summary(sum, sizeof(sum), &g.ev);
	cr_assert(strstr(sum, "errors 0.05 > 0.01"), "summary: %s", sum);
	const mg_gate_check *v = find("errors-vs-vms");
	cr_assert_eq(v->outcome, MG_GATE_PASS, "%s", v->detail);
	/* the value is the least the ratio of rates can be; 5% against 4% is 1.25 */
	cr_assert(close_to(v->stats.estimate, 1.25), "%g", v->stats.estimate);
	cr_assert(v->value < 1.25 && v->stats.upper < 2, "[%g, %g]", v->value, v->stats.upper);
	cr_assert_eq(v->stats.side, MG_JUDGE_BELOW, "shown not twice as bad as the VMs");
	cr_assert(close_to(v->stats.vm_requests, 18000), "%g", v->stats.vm_requests);
	cr_assert(close_to(v->stats.vm_events, 720), "%g", v->stats.vm_events);
	cr_assert(strstr(v->vm_requests_query, "server=~\"vm-1|vm-2\"}[5m]))"), "%s",
	          v->vm_requests_query);
	cr_assert(v->has_other_value);
	cr_assert(close_to(v->other_value, 0.04), "VM ratio %g", v->other_value);
	cr_assert(close_to(v->threshold, 2));
	cr_assert_not_null(v->other_query);
	cr_assert(strstr(v->other_query, "server=~\"vm-1|vm-2\""), "%s", v->other_query);
	cr_assert(strstr(v->query, "server=~\"k8s-1\""), "%s", v->query);
	json_t *j = mg_gate_eval_to_json(&g.ev);
	json_t *jv = json_array_get(json_object_get(j, "checks"), 2);
	cr_assert_str_eq(json_string_value(json_object_get(jv, "name")), "errors-vs-vms");
	cr_assert(close_to(json_number_value(json_object_get(jv, "vm_value")), 0.04));
	cr_assert(json_is_string(json_object_get(jv, "vm_query")));
	json_decref(j);
}

Test(gate, cluster_only_errors_fail_both_checks)
{
	evaluate(0, RED_HEAD "    backend: regress\n"
	                     "    k8s_servers: [k8s-1]\n"
	                     "    vm_servers: [vm-1]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_error_rate_vs_vms: 2\n");
	expect_overall(MG_GATE_FAIL);
	expect("errors", MG_GATE_FAIL, 0.05);
	const mg_gate_check *v = find("errors-vs-vms");
	cr_assert_eq(v->outcome, MG_GATE_FAIL, "%s", v->detail);
	cr_assert(close_to(v->stats.estimate, 10), "%g", v->stats.estimate);
	cr_assert(v->value > 2 && v->value < 10, "at least %g times the VMs' rate", v->value);
	cr_assert(close_to(v->other_value, 0.005), "VM ratio %g", v->other_value);
}

Test(gate, worse_than_error_free_vms_but_within_the_limit_passes)
{
	/* healthy: the cluster at 0.1%, vm-2 at 0: once an infinite factor, yet within 1% */
	evaluate(0, RED_HEAD "    backend: healthy\n"
	                     "    k8s_servers: [k8s-1, k8s-2]\n"
	                     "    vm_servers: [vm-2]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_error_rate_vs_vms: 2\n");
	expect_overall(MG_GATE_PASS);
	expect("errors", MG_GATE_PASS, 0.001);
	const mg_gate_check *v = find("errors-vs-vms");
	cr_assert_eq(v->outcome, MG_GATE_PASS);
	cr_assert(isfinite(v->value), "no more +Inf: %g", v->value);
	cr_assert(isinf(v->stats.estimate), "the point ratio still has nothing to divide by");
	cr_assert(close_to(v->other_value, 0));
	expect_detail(v, "within max_error_rate");
	/* without max_error_rate the comparison alone decides: 60 errors against none in
	 * 120,000 VM requests is shown worse than twice the VMs */
	evaluate(0, RED_HEAD "    backend: healthy\n"
	                     "    k8s_servers: [k8s-1, k8s-2]\n"
	                     "    vm_servers: [vm-2]\n"
	                     "    max_error_rate_vs_vms: 2\n");
	expect_overall(MG_GATE_FAIL);
	v = find("errors-vs-vms");
	cr_assert_eq(v->outcome, MG_GATE_FAIL, "%s", v->detail);
	cr_assert(isfinite(v->value) && v->value > 2, "%g", v->value);
	json_t *j = mg_gate_eval_to_json(&g.ev);
	json_t *jv = json_array_get(json_object_get(j, "checks"), 1);
	cr_assert(json_is_number(json_object_get(jv, "value")), "a number, not \"+Inf\"");
	cr_assert(json_is_null(json_object_get(json_object_get(jv, "judge"), "estimate")));
	json_decref(j);
}

Test(gate, no_vm_figure_leaves_the_comparison_inconclusive)
{
	/* the VM servers named have no series: the cluster's own limit still fails it */
	evaluate(0, RED_HEAD "    backend: errors\n"
	                     "    k8s_servers: [k8s-1]\n"
	                     "    vm_servers: [vm-9]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_error_rate_vs_vms: 2\n");
	expect_overall(MG_GATE_FAIL);
	expect("errors", MG_GATE_FAIL, 0.05);
	expect_detail(expect("errors-vs-vms", MG_GATE_INCONCLUSIVE, NAN), "no VM figure");
}

/* ---- the judge over a step, look by look (issue 16's real-Prometheus cases) ---- */

/* The verdict of each look of a step that began at T0, every 30 s for 10 minutes. */
static const char trickle_plan[] = "  interval: 30s\n"
                                   "  window: 5m\n" RED_HEAD "    backend: trickle\n"
                                   "    k8s_servers: [k8s-1]\n"
                                   "    vm_servers: [vm-1]\n"
                                   "    max_error_rate: 1%\n"
                                   "    max_error_rate_vs_vms: 2\n";

/*
 * A quiet healthy cluster with occasional errors, against VMs with none: a
 * point estimate over a short window is above 1% at times (one error in 90
 * requests), and the VMs' ratio is 0, so the old rule's factor was +Inf. The
 * judge passes or holds at every look and never fails.
 */
Test(gate, a_quiet_healthy_cluster_with_occasional_errors_never_fails)
{
	int passes = 0, holds = 0, above_by_point = 0;
	for (int look = 1; look <= 20; look++) {
		int64_t at = (T0 + 30LL * look) * 1000;
		evaluate_at(url, at, T0 * 1000, trickle_plan);
		const mg_gate_check *e = find("errors"), *v = find("errors-vs-vms");
		cr_assert_neq(g.ev.outcome, MG_GATE_FAIL,
		              "look %d failed a healthy cluster: %s / %s", look,
		              e->detail ? e->detail : "", v->detail ? v->detail : "");
		passes += g.ev.outcome == MG_GATE_PASS;
		holds += g.ev.outcome == MG_GATE_INCONCLUSIVE;
		above_by_point += e->has_value && e->value > 0.01;
		cr_assert(isfinite(v->value) || !v->has_value, "look %d: %g", look, v->value);
	}
	/* the case is the one the issue names: a point estimate above the bound was seen */
	cr_assert_gt(above_by_point, 0, "no look saw more than 1%%: the fixture proves nothing");
	cr_assert_eq(passes + holds, 20);
	cr_log_info("trickle: %d passes, %d holds", passes, holds);
}

/*
 * A 4x regression at 100 requests/s fails at the first interval, and the
 * second fails too, so the decision table rolls back within two intervals
 * at the example plan's failure_limit of 2.
 */
Test(gate, a_4x_regression_at_100_rps_fails_within_two_intervals)
{
	static const char plan[] = "  interval: 30s\n"
	                           "  window: 5m\n"
	                           "  failure_limit: 2\n" RED_HEAD "    backend: regress4x\n"
	                           "    k8s_servers: [k8s-1]\n"
	                           "    vm_servers: [vm-1]\n"
	                           "    max_error_rate: 1%\n"
	                           "    max_error_rate_vs_vms: 2\n";
	mg_state st;
	mg_state_init(&st, "gates");
	st.phase = MG_PHASE_SHIFTING;
	st.step_index = 0;
	st.step_started_ms = T0 * 1000;
	mg_plan_traffic traffic = {.bake_ms = 600000};
	mg_decision d = {0};
	for (int look = 1; look <= 2; look++) {
		int64_t at = (T0 + 30LL * look) * 1000;
		evaluate_at(url, at, st.step_started_ms, plan);
		expect_overall(MG_GATE_FAIL);
		const mg_gate_check *e = find("errors");
		cr_assert_eq(e->outcome, MG_GATE_FAIL, "look %d: %s", look, e->detail);
		cr_assert(e->stats.lower > 0.01, "look %d: [%g, %g]", look, e->stats.lower,
		          e->stats.upper);
		cr_assert(close_to(e->stats.requests, 3000.0 * look), "%g", e->stats.requests);
		cr_assert_eq(find("errors-vs-vms")->outcome, MG_GATE_FAIL);
		mg_decision_input in = {.st = &st,
		                        .traffic = &traffic,
		                        .slo = mg_plan_slo_section(g.plan),
		                        .outcome = g.ev.outcome,
		                        .changed = look == 1,
		                        .now_ms = at,
		                        .until = 3};
		mg_migration_decide(&d, &in);
		st.gate_failures = d.gate_failures;
		if (look == 1)
			cr_assert_eq(d.kind, MG_DECIDE_COUNT);
	}
	cr_assert_eq(d.kind, MG_DECIDE_ROLLBACK, "rolled back at the second interval");
}

/* ---- latency quantiles from ingress-nginx' histogram, through the real Prometheus ---- */

Test(gate, ingress_nginx_quantiles_are_judged_from_the_buckets)
{
	static const char head[] = "  red:\n"
	                           "    source: ingress-nginx\n"
	                           "    namespace: shop\n"
	                           "    max_error_rate: 5%\n";
	char body[512];
	/* 0.2% slower than 0.5 s: p99 is shown under it */
	snprintf(body, sizeof(body), "%s    max_latency: 500ms\n", head);
	evaluate(0, body);
	const mg_gate_check *d = find("duration");
	cr_assert_eq(d->outcome, MG_GATE_PASS, "%s", d->detail ? d->detail : "");
	cr_assert(d->stats.judged);
	cr_assert(close_to(d->stats.requests, 60000), "%g", d->stats.requests);
	cr_assert(close_to(d->stats.events, 120), "%g slow", d->stats.events);
	/* Prometheus' histogram_quantile interpolates 0.25 within (0.1, 0.25]: 0.25 exactly */
	cr_assert(d->value > 0.1 && d->value <= 0.25 + 1e-9, "p99 %g", d->value);
	expect("errors", MG_GATE_PASS, 0.01);
	expect_overall(MG_GATE_PASS);
	/* 10% slower than 0.1 s: p99 is above it, a fail */
	snprintf(body, sizeof(body), "%s    max_latency: 100ms\n", head);
	evaluate(0, body);
	d = find("duration");
	cr_assert_eq(d->outcome, MG_GATE_FAIL, "%s", d->detail ? d->detail : "");
	expect_detail(d, "took longer than 0.1s");
	/* exactly 1% slower than 0.25 s: at the bound, never decided */
	snprintf(body, sizeof(body), "%s    max_latency: 250ms\n", head);
	evaluate(0, body);
	d = find("duration");
	cr_assert_eq(d->outcome, MG_GATE_INCONCLUSIVE);
	expect_detail(d, "no number of requests would decide it");
	/* p99.9 under 1 s: every request is */
	snprintf(body, sizeof(body), "%s    max_latency: 1s\n    max_latency_quantile: p99.9\n",
	         head);
	evaluate(0, body);
	cr_assert_eq(find("duration")->outcome, MG_GATE_PASS, "%s", find("duration")->detail);
	cr_assert(close_to(find("duration")->stats.bound, 0.001), "%g",
	          find("duration")->stats.bound);
}

/* ---- custom checks ---- */

/*
 * Queries over backend healthy as YAML double-quoted scalars: k8s-1 serves 500
 * 2xx per 5 s at 30 ms, k8s-2 499 2xx and 1 5xx at 50 ms, vm-2 no 5xx.
 */
#define SEL(server) "{proxy=\\\"healthy\\\",server=\\\"" server "\\\""
#define REQ_K8S1                                                                                   \
	"\"sum(increase(haproxy_server_http_responses_total" SEL("k8s-1") "}[${window}]))\""
#define E5XX(server)                                                                               \
	"\"sum(increase(haproxy_server_http_responses_total" SEL(                                  \
	    server) ",code=\\\"5xx\\\"}[${window}]))\""
#define LAT(server)                                                                                \
	"\"max(avg_over_time(haproxy_server_response_time_average_seconds" SEL(                    \
	    server) "}[${window}]))\""
/* object-like, so the YAML below stays one line per key after clang-format */
#define LAT_K8S1  LAT("k8s-1")
#define LAT_K8S2  LAT("k8s-2")
#define LAT_K8S9  LAT("k8s-9")
#define E5XX_K8S1 E5XX("k8s-1")
#define E5XX_K8S2 E5XX("k8s-2")
#define E5XX_VM2  E5XX("vm-2")

static const char custom_pass[] =
    "  interval: 30s\n"
    "  checks:\n"
    "    - name: k8s-1-requests\n"
    "      query: " REQ_K8S1 "\n"
    "      min: 1000\n"
    "    - name: k8s-2-latency-band\n"
    "      query: " LAT_K8S2 "\n"
    "      min: 0.01\n"
    "      max: 0.1\n"
    "    - name: k8s-1-per-second\n"
    "      query: sum(rate(haproxy_server_http_responses_total{proxy=\"healthy\",server=\"k8s-1\"}"
    "[${interval}]))\n"
    "      min: 99\n"
    "      max: 101\n";

static const char custom_fail[] =
    "  checks:\n"
    "    - name: k8s-2-latency-tight\n"
    "      query: " LAT_K8S2 "\n"
    "      min: 0.01\n"
    "      max: 0.04\n"
    "    - name: k8s-2-latency-floor\n"
    "      query: " LAT_K8S2 "\n"
    "      min: 0.06\n"
    "    - name: every-latency\n"
    "      query: haproxy_server_response_time_average_seconds{proxy=\"healthy\"}\n"
    "      max: 100\n";

Test(gate, custom_checks_with_min_and_max)
{
	evaluate(0, custom_pass);
	expect_overall(MG_GATE_PASS);
	const mg_gate_check *r = expect("k8s-1-requests", MG_GATE_PASS, 30000);
	cr_assert_str_eq(r->op, ">=");
	cr_assert_eq(r->threshold, 1000);
	cr_assert(strstr(r->query, "server=\"k8s-1\"}[5m]"), "%s", r->query);
	const mg_gate_check *b = expect("k8s-2-latency-band", MG_GATE_PASS, 0.05);
	cr_assert_str_eq(b->op, "in");
	cr_assert(b->has_min && b->has_max);
	const mg_gate_check *ps = expect("k8s-1-per-second", MG_GATE_PASS, 100);
	cr_assert(strstr(ps->query, "[30s]"), "%s", ps->query);

	evaluate(0, custom_fail);
	expect_overall(MG_GATE_FAIL);
	expect("k8s-2-latency-tight", MG_GATE_FAIL, 0.05);
	const mg_gate_check *fl = expect("k8s-2-latency-floor", MG_GATE_FAIL, 0.05);
	cr_assert_str_eq(fl->op, ">=");
	/* five series, one per server: not one number */
	expect_detail(expect("every-latency", MG_GATE_INCONCLUSIVE, NAN), "returned 5 series");
	char sum[512];
	mg_gate_eval_summary(sum, sizeof(sum), &g.ev);
	cr_assert(strstr(sum, "k8s-2-latency-tight 0.05 in [0.01, 0.04]"), "summary: %s", sum);
	cr_assert(strstr(sum, "k8s-2-latency-floor 0.05 < 0.06"), "summary: %s", sum);
}

/* k8s-2's 50 ms against k8s-1's 30 ms: 1.67x */
static const char baseline_pass[] = "  checks:\n"
                                    "    - name: within\n"
                                    "      query: " LAT_K8S2 "\n"
                                    "      baseline: " LAT_K8S1 "\n"
                                    "      max_ratio: 2\n"
                                    "    - name: both-zero\n"
                                    "      query: " E5XX_K8S1 "\n"
                                    "      baseline: " E5XX_VM2 "\n"
                                    "      max_ratio: 1\n";

static const char baseline_fail[] = "  checks:\n"
                                    "    - name: beyond\n"
                                    "      query: " LAT_K8S2 "\n"
                                    "      baseline: " LAT_K8S1 "\n"
                                    "      max_ratio: 1.5\n"
                                    "    - name: over-a-zero-baseline\n"
                                    "      query: " E5XX_K8S2 "\n"
                                    "      baseline: " E5XX_K8S1 "\n"
                                    "      max_ratio: 10\n"
                                    "    - name: floor-and-ratio\n"
                                    "      query: " LAT_K8S2 "\n"
                                    "      min: 0.01\n"
                                    "      baseline: " LAT_K8S1 "\n"
                                    "      max_ratio: 1.5\n"
                                    "    - name: no-baseline\n"
                                    "      query: " LAT_K8S2 "\n"
                                    "      baseline: " LAT_K8S9 "\n"
                                    "      max_ratio: 2\n";

Test(gate, custom_checks_with_a_baseline)
{
	evaluate(0, baseline_pass);
	expect_overall(MG_GATE_PASS);
	const mg_gate_check *w = expect("within", MG_GATE_PASS, 0.05);
	cr_assert(w->has_ratio && w->has_other_value);
	cr_assert(close_to(w->other_value, 0.03), "baseline %g", w->other_value);
	cr_assert(close_to(w->ratio, 0.05 / 0.03), "ratio %g", w->ratio);
	cr_assert(close_to(w->max_ratio, 2));
	cr_assert(strstr(w->other_query, "server=\"k8s-1\"}[5m]"), "%s", w->other_query);
	const mg_gate_check *z = expect("both-zero", MG_GATE_PASS, 0);
	cr_assert(close_to(z->ratio, 1), "0/0 baseline ratio %g", z->ratio);
	json_t *j = mg_gate_eval_to_json(&g.ev);
	json_t *jw = json_array_get(json_object_get(j, "checks"), 0);
	cr_assert(close_to(json_number_value(json_object_get(jw, "baseline_value")), 0.03));
	cr_assert(close_to(json_number_value(json_object_get(jw, "ratio")), 0.05 / 0.03));
	cr_assert(json_is_string(json_object_get(jw, "baseline_query")));
	json_decref(j);

	evaluate(0, baseline_fail);
	expect_overall(MG_GATE_FAIL);
	const mg_gate_check *b = expect("beyond", MG_GATE_FAIL, 0.05);
	cr_assert(close_to(b->ratio, 0.05 / 0.03), "ratio %g", b->ratio);
	const mg_gate_check *zb = expect("over-a-zero-baseline", MG_GATE_FAIL, 60);
	cr_assert(isinf(zb->ratio) && zb->ratio > 0, "ratio %g", zb->ratio);
	const mg_gate_check *fr = expect("floor-and-ratio", MG_GATE_FAIL, 0.05);
	cr_assert_str_eq(fr->op, ">=");
	cr_assert(fr->has_ratio);
	const mg_gate_check *nb = expect("no-baseline", MG_GATE_INCONCLUSIVE, 0.05);
	expect_detail(nb, "baseline: no data");
	cr_assert_not(nb->has_ratio);
	/* the value is a latency and max_ratio a factor: the summary must not compare the two */
	char sum[512];
	mg_gate_eval_summary(sum, sizeof(sum), &g.ev);
	cr_assert(strstr(sum, "beyond 0.05 (1.67x the baseline, at most 1.5x)"), "summary: %s",
	          sum);
	cr_assert(strstr(sum, "over-a-zero-baseline 60 (+Infx the baseline, at most 10x)"),
	          "summary: %s", sum);
	cr_assert_null(strstr(sum, "> 1.5"), "summary: %s", sum);
	/* failed on the ratio, not on min: the value still stands above min */
	cr_assert(strstr(sum, "floor-and-ratio 0.05 >= 0.01 (1.67x the baseline, at most 1.5x)"),
	          "summary: %s", sum);
}

/* ---- Prometheus unreachable ---- */

Test(gate, unreachable_prometheus_is_inconclusive_not_an_error)
{
	char nowhere[64];
	snprintf(nowhere, sizeof(nowhere), "http://127.0.0.1:%d", tu_free_port());
	int64_t t = tu_now_ms();
	evaluate_at(nowhere, AT_MS, 0,
	            RED_HEAD "    backend: healthy\n"
	                     "    k8s_servers: [k8s-1, k8s-2]\n"
	                     "    vm_servers: [vm-2]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_latency: 100ms\n"
	                     "    max_error_rate_vs_vms: 2\n"
	                     "  checks:\n"
	                     "    - name: custom\n"
	                     "      query: vector(1)\n"
	                     "      min: 0\n");
	cr_assert_lt(tu_now_ms() - t, 20000);
	cr_assert_eq(g.rc, 0);
	expect_overall(MG_GATE_INCONCLUSIVE);
	cr_assert_eq(g.ev.nchecks, 5);
	for (size_t i = 0; i < g.ev.nchecks; i++) {
		const mg_gate_check *c = &g.ev.checks[i];
		cr_assert_eq(c->outcome, MG_GATE_INCONCLUSIVE, "%s: %s", c->name,
		             oname(c->outcome));
		cr_assert_not(c->has_value, "%s", c->name);
		expect_detail(c, "cannot reach");
	}
}

/* ---- latency ---- */

Test(gate, slow_cluster_fails_duration)
{
	evaluate(0, RED_HEAD "    backend: slow\n"
	                     "    k8s_servers: [k8s-1, k8s-2]\n"
	                     "    max_error_rate: 1%\n"
	                     "    max_latency: 100ms\n");
	expect_overall(MG_GATE_FAIL);
	expect("rate", MG_GATE_PASS, 120000);
	expect("errors", MG_GATE_PASS, 0);
	expect("duration", MG_GATE_FAIL, 0.25); /* the worst server, k8s-1 */
	char sum[512];
	mg_gate_eval_summary(sum, sizeof(sum), &g.ev);
	cr_assert(strstr(sum, "duration 0.25 > 0.1"), "summary: %s", sum);
}

/* ---- migrate check ---- */

typedef tu_output result;

/* Runs $MIGRATE_BIN with the arguments (NULL-terminated), both streams captured. */
static result run(const char *first, ...)
{
	const char *bin = getenv("MIGRATE_BIN");
	cr_assert_not_null(bin, "MIGRATE_BIN is not set; run through `make integration`");
	char *args[32] = {(char *)bin};
	size_t na = 1;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a && na < 31; a = va_arg(ap, const char *))
		args[na++] = (char *)a;
	va_end(ap);
	args[na] = NULL;
	return tu_capture(args);
}

/* A plan file in tmpdir with only an slo section on the suite's Prometheus; its path. */
static const char *write_plan(const char *name, const char *slo_body)
{
	static char path[512];
	if (!tmpdir[0])
		tu_tmpdir_make(tmpdir, sizeof(tmpdir), "gate-cli");
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fprintf(f,
	        "version: 1\n"
	        "name: gates\n"
	        "slo:\n"
	        "  prometheus: { url: \"%s\" }\n"
	        "%s",
	        url, slo_body);
	cr_assert_eq(fclose(f), 0);
	tu_state_plan(path, tmpdir); /* MG_TEST_STATE_BACKEND */
	return path;
}

static const char *state_dir(void)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/state", tmpdir);
	return path;
}

/* gates.checks[] by name in `migrate check -o json` output */
static json_t *json_check(json_t *gates, const char *name)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(gates, "checks"), i, c)
	{
		if (!strcmp(json_string_value(json_object_get(c, "name")), name))
			return c;
	}
	cr_assert_fail("no check %s in the JSON", name);
	return NULL;
}

static json_t *json_gates(const result *r, json_t **doc)
{
	json_error_t je;
	*doc = json_loads(r->out, 0, &je);
	cr_assert_not_null(*doc, "stdout is not one JSON document (%s): %s", je.text, r->out);
	json_t *gates = json_object_get(*doc, "gates");
	cr_assert(json_is_object(gates), "no gates object: %s", r->out);
	return gates;
}

Test(gate, cli_check_pass_fail_inconclusive)
{
	const char *healthy =
	    write_plan("healthy.yaml", RED_HEAD "    backend: healthy\n"
	                                        "    k8s_servers: [k8s-1, k8s-2]\n"
	                                        "    max_error_rate: 1%\n"
	                                        "    max_latency: 100ms\n");
	result r = run("check", "-p", healthy, "--state-dir", state_dir(), "--at", AT_STR, NULL);
	cr_assert_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.out, "pass"), "%s", r.out);
	cr_assert(strstr(r.out, "gates at 2026-01-01T00:05:00.000Z over 5m"), "%s", r.out);
	tu_output_free(&r);

	r = run("check", "-o", "json", "-p", healthy, "--state-dir", state_dir(), "--at", AT_STR,
	        NULL);
	cr_assert_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out, r.err);
	json_t *doc;
	json_t *gates = json_gates(&r, &doc);
	cr_assert_str_eq(json_string_value(json_object_get(gates, "outcome")), "pass");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "plan")), "gates");
	cr_assert(json_is_null(json_object_get(doc, "step")));
	cr_assert(close_to(json_number_value(json_object_get(json_check(gates, "rate"), "value")),
	                   60000));
	cr_assert(close_to(json_number_value(json_object_get(json_check(gates, "errors"), "value")),
	                   0.001));
	cr_assert(close_to(
	    json_number_value(json_object_get(json_check(gates, "duration"), "value")), 0.05));
	json_decref(doc);
	tu_output_free(&r);

	const char *errors = write_plan("errors.yaml", RED_HEAD "    backend: errors\n"
	                                                        "    k8s_servers: [k8s-1]\n"
	                                                        "    max_error_rate: 1%\n");
	r = run("check", "-o", "json", "-p", errors, "--state-dir", state_dir(), "--at", AT_STR,
	        NULL);
	cr_assert_eq(r.status, 1, "exit %d\n%s\n%s", r.status, r.out, r.err);
	gates = json_gates(&r, &doc);
	cr_assert_str_eq(json_string_value(json_object_get(gates, "outcome")), "fail");
	json_t *e = json_check(gates, "errors");
	cr_assert_str_eq(json_string_value(json_object_get(e, "outcome")), "fail");
	cr_assert(close_to(json_number_value(json_object_get(e, "value")), 0.05));
	json_decref(doc);
	tu_output_free(&r);

	r = run("check", "-p", errors, "--state-dir", state_dir(), "--at", AT_STR, NULL);
	cr_assert_eq(r.status, 1, "exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(
	    strstr(r.out, "fail: errors 0.05 > 0.01 (300/6000, 95%: 0.041..0.06) (window 5m)"),
	    "%s", r.out);
	cr_assert(strstr(r.out, "counts over the last 5m (test period 1 of the step), judged with "
	                        "95% confidence"),
	          "%s", r.out);
	tu_output_free(&r);

	const char *low =
	    write_plan("low.yaml", "  min_requests: 100\n" RED_HEAD "    backend: low\n"
	                           "    k8s_servers: [k8s-1]\n"
	                           "    max_error_rate: 1%\n");
	r = run("check", "-o", "json", "-p", low, "--state-dir", state_dir(), "--at", AT_STR, NULL);
	cr_assert_eq(r.status, 4, "exit %d\n%s\n%s", r.status, r.out, r.err);
	gates = json_gates(&r, &doc);
	cr_assert_str_eq(json_string_value(json_object_get(gates, "outcome")), "inconclusive");
	json_t *rate = json_check(gates, "rate");
	cr_assert(close_to(json_number_value(json_object_get(rate, "value")), 60));
	cr_assert_str_eq(json_string_value(json_object_get(rate, "outcome")), "inconclusive");
	cr_assert_str_eq(json_string_value(json_object_get(json_check(gates, "errors"), "outcome")),
	                 "inconclusive");
	json_decref(doc);
	tu_output_free(&r);
}

Test(gate, cli_since_clamps_the_window)
{
	const char *plan = write_plan("clamp.yaml", RED_HEAD "    backend: clamp\n"
	                                                     "    k8s_servers: [k8s-1]\n"
	                                                     "    max_error_rate: 1%\n");
	result r = run("check", "-p", plan, "--state-dir", state_dir(), "--at", AT_STR, NULL);
	cr_assert_eq(r.status, 1, "without --since the earlier errors count: exit %d\n%s\n%s",
	             r.status, r.out, r.err);
	tu_output_free(&r);

	r = run("check", "-o", "json", "-p", plan, "--state-dir", state_dir(), "--at", AT_STR,
	        "--since", "2026-01-01T00:04:40Z", NULL);
	cr_assert_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out, r.err);
	json_t *doc;
	json_t *gates = json_gates(&r, &doc);
	cr_assert_str_eq(json_string_value(json_object_get(gates, "outcome")), "pass");
	cr_assert(json_is_true(json_object_get(gates, "clamped")));
	cr_assert_str_eq(json_string_value(json_object_get(gates, "window")), "20s");
	json_t *rate = json_check(gates, "rate");
	cr_assert(close_to(json_number_value(json_object_get(rate, "value")), 4000));
	cr_assert(strstr(json_string_value(json_object_get(rate, "query")), "[20s]"));
	json_decref(doc);
	tu_output_free(&r);
}

Test(gate, cli_the_recorded_step_start_clamps_the_window)
{
	const char *plan = write_plan("clamp.yaml", RED_HEAD "    backend: clamp\n"
	                                                     "    k8s_servers: [k8s-1]\n"
	                                                     "    max_error_rate: 1%\n");
	/* state.json says the first step began 20 s before AT, as `migrate step` records it */
	mg_store *s = tu_state_store(plan, state_dir(), false);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	mg_state st;
	mg_state_init(&st, "gates");
	st.phase = MG_PHASE_SHIFTING;
	st.step_index = 0;
	st.step_started_ms = AT_MS - 20000;
	cr_assert_eq(mg_state_save(s, &st, &err), 0, "%s", err.message);
	mg_store_free(s);

	result r = run("check", "-o", "json", "-p", plan, "--state-dir", state_dir(), "--at",
	               AT_STR, NULL);
	cr_assert_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out, r.err);
	json_t *doc;
	json_t *gates = json_gates(&r, &doc);
	cr_assert_eq(json_integer_value(json_object_get(doc, "step")), 1);
	cr_assert(json_is_true(json_object_get(gates, "clamped")));
	cr_assert_str_eq(json_string_value(json_object_get(gates, "window")), "20s");
	cr_assert(
	    close_to(json_number_value(json_object_get(json_check(gates, "errors"), "value")), 0));
	json_decref(doc);
	tu_output_free(&r);

	/* --since overrides the state: from 00:00:00 the earlier errors are back */
	r = run("check", "-p", plan, "--state-dir", state_dir(), "--at", AT_STR, "--since",
	        "2026-01-01T00:00:00Z", NULL);
	cr_assert_eq(r.status, 1, "exit %d\n%s\n%s", r.status, r.out, r.err);
	tu_output_free(&r);

	/* the Unix epoch is a time like any other, not "now": before the step, so refused */
	r = run("check", "-p", plan, "--state-dir", state_dir(), "--at", "1970-01-01T00:00:00Z",
	        NULL);
	cr_assert_eq(r.status, 2, "exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, "--at 1970-01-01T00:00:00.000Z is before the current step began"),
	          "%s", r.err);
	tu_output_free(&r);
	mg_error_clear(&err);
}

Test(gate, cli_bad_times_are_usage_errors)
{
	const char *plan = write_plan("healthy.yaml", RED_HEAD "    backend: healthy\n"
	                                                       "    k8s_servers: [k8s-1]\n"
	                                                       "    max_error_rate: 1%\n");
	result r = run("check", "-p", plan, "--state-dir", state_dir(), "--at", "yesterday", NULL);
	cr_assert_eq(r.status, 2, "exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, "--at yesterday"), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	tu_output_free(&r);

	r = run("check", "-p", plan, "--state-dir", state_dir(), "--at", AT_STR, "--since",
	        "2026-01-01T00:06:00Z", NULL);
	cr_assert_eq(r.status, 2, "--since after --at: exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, "--at 2026-01-01T00:05:00.000Z is before --since "
	                        "(2026-01-01T00:06:00.000Z)"),
	          "%s", r.err);
	tu_output_free(&r);
}
