/*
 * lib/gate.h over a fake metrics source (mg_metrics_open_source): every
 * verdict the gates give, for the RED presets and custom checks, without a
 * Prometheus. The tests against the real Prometheus are in
 * tests/integration/; these pin the rules of docs/gates.md one by one.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "metrics.h"

/* ---- a fake metrics source: answers by the first rule whose text is in the query ------ */

typedef enum {
	ANS_VALUE,    /* a vector of one sample */
	ANS_EMPTY,    /* a vector without series */
	ANS_NAN,      /* one sample, NaN */
	ANS_TWO,      /* two series */
	ANS_MATRIX,   /* a range result */
	ANS_NOSAMPLE, /* one series without a sample */
	ANS_ERROR,    /* the source fails */
} answer_kind;

typedef struct {
	const char *match;
	answer_kind kind;
	double v;
} rule;

typedef struct {
	rule rules[8];
	size_t nrules;
	int queries;
	char seen[8][1024]; /* the first queries, as sent */
} fake_prom;

static int add_series(mg_metrics_result *out, const char *labels, size_t nsamples, double v)
{
	mg_metrics_series *s = realloc(out->series, (out->nseries + 1) * sizeof(*s));
	cr_assert_not_null(s);
	out->series = s;
	s = &out->series[out->nseries++];
	s->labels = strdup(labels);
	s->nsamples = nsamples;
	s->samples = nsamples ? calloc(nsamples, sizeof(*s->samples)) : NULL;
	for (size_t i = 0; i < nsamples; i++)
		s->samples[i] = (mg_metrics_sample){.t_ms = 1000 * (int64_t)i, .v = v};
	return 0;
}

static int fake_query(void *src, mg_metrics_result *out, const char *query, int64_t at_ms,
                      mg_error *err)
{
	(void)at_ms;
	fake_prom *f = src;
	if (f->queries < 8)
		snprintf(f->seen[f->queries], sizeof(f->seen[0]), "%s", query);
	f->queries++;
	for (size_t i = 0; i < f->nrules; i++) {
		const rule *r = &f->rules[i];
		if (!strstr(query, r->match))
			continue;
		out->type = MG_METRICS_VECTOR;
		switch (r->kind) {
		case ANS_VALUE:
			return add_series(out, "{}", 1, r->v);
		case ANS_EMPTY:
			return 0;
		case ANS_NAN:
			return add_series(out, "{}", 1, NAN);
		case ANS_TWO:
			add_series(out, "{a=\"1\"}", 1, r->v);
			return add_series(out, "{a=\"2\"}", 1, r->v);
		case ANS_MATRIX:
			out->type = MG_METRICS_MATRIX;
			return add_series(out, "{}", 3, r->v);
		case ANS_NOSAMPLE:
			return add_series(out, "{}", 0, 0);
		case ANS_ERROR:
			return mg_error_set(err, MG_EIO, "fake: connection refused");
		}
	}
	/* a query no rule knows: as Prometheus answers a metric it never saw */
	out->type = MG_METRICS_VECTOR;
	return 0;
}

static int fake_query_range(void *src, mg_metrics_result *out, const char *query, int64_t start_ms,
                            int64_t end_ms, int64_t step_ms, mg_error *err)
{
	(void)src, (void)out, (void)query, (void)start_ms, (void)end_ms, (void)step_ms;
	return mg_error_set(err, MG_EINVALID, "the gates make no range queries");
}

static const mg_metrics_ops fake_ops = {
    .name = "fakeprom", .query = fake_query, .query_range = fake_query_range};

/* ---- plans -------------------------------------------------------------------------------- */

/* HAProxy RED over backend "be": cluster server "k8s", VM server "vm". */
static const char *k8s_servers[] = {"k8s"};
static const char *vm_servers[] = {"vm"};

#define RATE     "haproxy_server_http_responses_total{proxy=\"be\",server=~\"k8s\"}"
#define K8S_ERR  "server=~\"k8s\",code=\"5xx\""
#define VM_ERR   "server=~\"vm\",code=\"5xx\""
#define DURATION "haproxy_server_response_time_average_seconds"

static mg_plan_red red;
static mg_plan_slo slo;
static fake_prom fake;
static mg_metrics *m;
static mg_gate_eval ev;

static const int64_t AT = 1700000000000; /* evaluated at, Unix ms */

static void setup(void)
{
	red = (mg_plan_red){.source = MG_RED_HAPROXY,
	                    .backend = "be",
	                    .k8s_servers = k8s_servers,
	                    .nk8s_servers = 1,
	                    .vm_servers = vm_servers,
	                    .nvm_servers = 1,
	                    .max_error_rate = 0.01,
	                    .max_latency_ms = 500,
	                    .max_error_rate_vs_vms = -1};
	slo = (mg_plan_slo){.prometheus_url = "http://127.0.0.1:1",
	                    .interval_ms = 5000,
	                    .window_ms = 30000,
	                    .min_requests = 100,
	                    .red = &red};
	memset(&fake, 0, sizeof(fake));
	memset(&ev, 0, sizeof(ev));
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_open_source(&m, &fake_ops, &fake, &err), 0, "%s", err.message);
}

static void teardown(void)
{
	mg_gate_eval_clear(&ev);
	mg_metrics_free(m);
	m = NULL;
}

TestSuite(gate, .init = setup, .fini = teardown);

static void answer(const char *match, answer_kind kind, double v)
{
	cr_assert_lt(fake.nrules, 8);
	/* the VM side first: its query has the cluster's words too */
	fake.rules[fake.nrules++] = (rule){.match = match, .kind = kind, .v = v};
}

/* A healthy cluster: 500 requests, 0.1% errors, 100 ms. */
static void healthy(void)
{
	answer(K8S_ERR, ANS_VALUE, 0.001);
	answer(DURATION, ANS_VALUE, 0.1);
	answer(RATE, ANS_VALUE, 500);
}

static void evaluate(int64_t step_started_ms)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_gate_evaluate(&ev, m, &slo, AT, step_started_ms, &err), 0, "%s",
	             err.message);
}

static const mg_gate_check *check(const char *name)
{
	for (size_t i = 0; i < ev.nchecks; i++)
		if (!strcmp(ev.checks[i].name, name))
			return &ev.checks[i];
	cr_assert_fail("no check %s", name);
	return NULL;
}

static void expect(const char *name, mg_gate_outcome o)
{
	const mg_gate_check *c = check(name);
	cr_assert_eq(c->outcome, o, "%s is %s, not %s (%s)", name, mg_gate_outcome_name(c->outcome),
	             mg_gate_outcome_name(o), c->detail ? c->detail : "no detail");
}

static void summary_has(const char *text)
{
	char buf[1024];
	mg_gate_eval_summary(buf, sizeof(buf), &ev);
	cr_assert(strstr(buf, text), "summary \"%s\" lacks \"%s\"", buf, text);
}

/* ---- RED ------------------------------------------------------------------------------------ */

Test(gate, a_healthy_cluster_passes_every_check)
{
	healthy();
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
	cr_assert_eq(ev.nchecks, 3);
	cr_assert_str_eq(ev.checks[0].name, "rate", "rate comes first");
	expect("rate", MG_GATE_PASS);
	expect("errors", MG_GATE_PASS);
	expect("duration", MG_GATE_PASS);
	cr_assert(!ev.awaiting_data);
	cr_assert(!ev.clamped);
	cr_assert_eq(ev.window_ms, 30000);
	const mg_gate_check *e = check("errors");
	cr_assert(e->has_value);
	cr_assert_float_eq(e->value, 0.001, 1e-12);
	cr_assert_float_eq(e->threshold, 0.01, 1e-12);
	cr_assert_str_eq(e->op, "<=");
	cr_assert_str_eq(check("rate")->op, ">=");
	cr_assert_float_eq(check("duration")->threshold, 0.5, 1e-12);
	/* the queries as sent, with the window */
	cr_assert(strstr(check("rate")->query, RATE "[30s]"), "%s", check("rate")->query);
	cr_assert_eq(fake.queries, 3);
}

Test(gate, errors_above_the_limit_fail)
{
	answer(K8S_ERR, ANS_VALUE, 0.05);
	answer(DURATION, ANS_VALUE, 0.1);
	answer(RATE, ANS_VALUE, 500);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
	expect("errors", MG_GATE_FAIL);
	expect("duration", MG_GATE_PASS);
	summary_has("errors 0.05 > 0.01");
	/* at the limit is a pass */
	mg_gate_eval_clear(&ev);
	fake.rules[0].v = 0.01;
	evaluate(0);
	expect("errors", MG_GATE_PASS);
}

Test(gate, latency_above_the_limit_fails)
{
	answer(K8S_ERR, ANS_VALUE, 0);
	answer(DURATION, ANS_VALUE, 0.75);
	answer(RATE, ANS_VALUE, 500);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
	expect("duration", MG_GATE_FAIL);
	summary_has("duration 0.75 > 0.5");
}

Test(gate, too_few_requests_make_every_ratio_inconclusive)
{
	answer(K8S_ERR, ANS_VALUE, 0.5); /* would fail */
	answer(DURATION, ANS_VALUE, 9);  /* would fail */
	answer(RATE, ANS_VALUE, 99);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	expect("rate", MG_GATE_INCONCLUSIVE);
	expect("errors", MG_GATE_INCONCLUSIVE);
	expect("duration", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("rate")->detail, "99 requests to the cluster in 30s"), "%s",
	          check("rate")->detail);
	cr_assert(!check("rate")->no_data);
	cr_assert(!ev.awaiting_data, "there is data: too little of it");
	/* exactly min_requests is enough */
	mg_gate_eval_clear(&ev);
	fake.rules[2].v = 100;
	evaluate(0);
	expect("rate", MG_GATE_PASS);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
}

Test(gate, no_data_is_inconclusive_and_awaiting_data)
{
	answer(K8S_ERR, ANS_EMPTY, 0);
	answer(DURATION, ANS_EMPTY, 0);
	answer(RATE, ANS_EMPTY, 0);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	expect("rate", MG_GATE_INCONCLUSIVE);
	cr_assert(check("rate")->no_data);
	cr_assert(!check("rate")->has_value);
	cr_assert(strstr(check("rate")->detail, "no data"), "%s", check("rate")->detail);
	cr_assert(ev.awaiting_data);
	summary_has("rate no data");
}

Test(gate, nan_and_a_series_without_samples_are_no_data)
{
	answer(K8S_ERR, ANS_NAN, 0);
	answer(DURATION, ANS_NOSAMPLE, 0);
	answer(RATE, ANS_VALUE, 500);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	expect("errors", MG_GATE_INCONCLUSIVE);
	cr_assert(check("errors")->no_data);
	cr_assert(strstr(check("errors")->detail, "NaN"), "%s", check("errors")->detail);
	expect("duration", MG_GATE_INCONCLUSIVE);
	cr_assert(check("duration")->no_data);
	cr_assert(!ev.awaiting_data, "the rate check has data");
}

Test(gate, a_failing_source_is_inconclusive_never_a_pass)
{
	answer(K8S_ERR, ANS_VALUE, 0);
	answer(DURATION, ANS_VALUE, 0.1);
	answer(RATE, ANS_ERROR, 0);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	expect("rate", MG_GATE_INCONCLUSIVE);
	cr_assert_str_eq(check("rate")->detail, "fake: connection refused");
	cr_assert(!check("rate")->no_data, "an error is not \"no data yet\"");
	cr_assert(!ev.awaiting_data);
	expect("errors", MG_GATE_INCONCLUSIVE);
}

Test(gate, answers_that_are_not_one_number_are_inconclusive)
{
	answer(K8S_ERR, ANS_TWO, 0);
	answer(DURATION, ANS_MATRIX, 0.1);
	answer(RATE, ANS_VALUE, 500);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	expect("errors", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("errors")->detail, "2 series"), "%s", check("errors")->detail);
	expect("duration", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("duration")->detail, "matrix"), "%s", check("duration")->detail);
}

/* ---- errors-vs-vms ---------------------------------------------------------------------- */

static void vs_vms(double k8s_ratio, answer_kind vm_kind, double vm_ratio)
{
	red.max_error_rate_vs_vms = 2;
	red.max_latency_ms = -1;
	answer(VM_ERR, vm_kind, vm_ratio);
	answer(K8S_ERR, ANS_VALUE, k8s_ratio);
	answer(RATE, ANS_VALUE, 500);
	evaluate(0);
	cr_assert_eq(ev.nchecks, 3);
}

Test(gate, errors_the_vms_share_hold_the_step)
{
	vs_vms(0.05, ANS_VALUE, 0.04);
	expect("errors", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("errors")->detail, "a shared cause"), "%s", check("errors")->detail);
	expect("errors-vs-vms", MG_GATE_PASS);
	const mg_gate_check *c = check("errors-vs-vms");
	cr_assert_float_eq(c->value, 1.25, 1e-9);
	cr_assert(c->has_other_value);
	cr_assert_float_eq(c->other_value, 0.04, 1e-12);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
}

Test(gate, errors_worse_than_the_vms_fail)
{
	vs_vms(0.05, ANS_VALUE, 0.01);
	expect("errors", MG_GATE_FAIL);
	expect("errors-vs-vms", MG_GATE_FAIL);
	cr_assert_float_eq(check("errors-vs-vms")->value, 5, 1e-9);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
}

Test(gate, worse_than_the_vms_but_within_the_error_rate_passes)
{
	vs_vms(0.005, ANS_VALUE, 0.001);
	expect("errors", MG_GATE_PASS);
	expect("errors-vs-vms", MG_GATE_PASS);
	cr_assert(strstr(check("errors-vs-vms")->detail, "within max_error_rate"));
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
}

Test(gate, no_errors_on_either_side_is_as_good_as_the_vms)
{
	vs_vms(0, ANS_VALUE, 0);
	expect("errors-vs-vms", MG_GATE_PASS);
	cr_assert_float_eq(check("errors-vs-vms")->value, 1, 1e-12);
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
}

Test(gate, no_vm_figure_is_inconclusive)
{
	vs_vms(0.005, ANS_EMPTY, 0);
	expect("errors-vs-vms", MG_GATE_INCONCLUSIVE);
	cr_assert(!check("errors-vs-vms")->has_value);
	cr_assert(strstr(check("errors-vs-vms")->detail, "no VM figure"));
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
}

/* ---- custom checks ---------------------------------------------------------------------- */

static mg_plan_check custom[2];

static void custom_only(mg_plan_check c)
{
	slo.red = NULL;
	custom[0] = c;
	slo.checks = custom;
	slo.nchecks = 1;
}

Test(gate, a_custom_check_within_min_and_max_passes_and_outside_fails)
{
	custom_only((mg_plan_check){.name = "queue",
	                            .query = "queue_depth[${window}] / ${interval}",
	                            .has_min = true,
	                            .min = 1,
	                            .has_max = true,
	                            .max = 10});
	answer("queue_depth", ANS_VALUE, 5);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
	cr_assert_str_eq(ev.checks[0].query, "queue_depth[30s] / 5s");
	cr_assert_str_eq(ev.checks[0].op, "in");
	for (int i = 0; i < 2; i++) {
		mg_gate_eval_clear(&ev);
		fake.rules[0].v = i ? 11 : 0.5;
		evaluate(0);
		cr_assert_eq(ev.outcome, MG_GATE_FAIL, "value %g", fake.rules[0].v);
	}
	summary_has("queue 11 in [1, 10]");
}

Test(gate, a_custom_check_with_no_data_is_inconclusive_and_awaiting_data)
{
	custom_only(
	    (mg_plan_check){.name = "q", .query = "nothing_here", .has_max = true, .max = 1});
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	cr_assert(ev.checks[0].no_data);
	cr_assert(ev.awaiting_data);
}

Test(gate, a_baseline_ratio_above_max_ratio_fails)
{
	custom_only((mg_plan_check){
	    .name = "p99", .query = "cluster_p99", .baseline = "vm_p99", .max_ratio = 1.5});
	answer("cluster_p99", ANS_VALUE, 0.3);
	answer("vm_p99", ANS_VALUE, 0.1);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
	cr_assert(ev.checks[0].has_ratio);
	cr_assert_float_eq(ev.checks[0].ratio, 3, 1e-9);
	summary_has("(3x the baseline, at most 1.5x)");
	mg_gate_eval_clear(&ev);
	fake.rules[0].v = 0.15;
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
}

Test(gate, a_missing_baseline_is_inconclusive_but_never_hides_a_failure)
{
	custom_only((mg_plan_check){.name = "p99",
	                            .query = "cluster_p99",
	                            .has_max = true,
	                            .max = 1,
	                            .baseline = "vm_p99",
	                            .max_ratio = 1.5});
	answer("cluster_p99", ANS_VALUE, 0.3);
	answer("vm_p99", ANS_ERROR, 0);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(ev.checks[0].detail, "baseline: fake: connection refused"), "%s",
	          ev.checks[0].detail);
	mg_gate_eval_clear(&ev);
	fake.rules[0].v = 2; /* over max: fails whatever the baseline says */
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
}

Test(gate, any_failure_fails_the_whole_and_inconclusive_beats_pass)
{
	custom[1] = (mg_plan_check){.name = "b", .query = "metric_b", .has_max = true, .max = 1};
	custom_only((mg_plan_check){.name = "a", .query = "metric_a", .has_max = true, .max = 1});
	slo.nchecks = 2;
	answer("metric_a", ANS_VALUE, 0.5);
	answer("metric_b", ANS_EMPTY, 0);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	cr_assert(!ev.awaiting_data, "one check has data");
	mg_gate_eval_clear(&ev);
	fake.rules[0].v = 2;
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
}

Test(gate, no_checks_at_all_is_inconclusive)
{
	slo.red = NULL;
	slo.nchecks = 0;
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	cr_assert_eq(ev.nchecks, 0);
}

/* ---- the window ---------------------------------------------------------------------------- */

Test(gate, the_window_is_clamped_to_the_age_of_the_step)
{
	healthy();
	evaluate(AT - 10500);
	cr_assert(ev.clamped);
	cr_assert_eq(ev.window_ms, 10000, "whole seconds");
	cr_assert_eq(ev.window_plan_ms, 30000);
	cr_assert(strstr(check("rate")->query, "[10s]"), "%s", check("rate")->query);
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
	summary_has("(window 10s, clamped)");
	/* an older step: the plan's window */
	mg_gate_eval_clear(&ev);
	evaluate(AT - 60000);
	cr_assert(!ev.clamped);
	cr_assert_eq(ev.window_ms, 30000);
}

Test(gate, a_step_younger_than_a_second_asks_nothing)
{
	healthy();
	evaluate(AT - 400);
	cr_assert_eq(fake.queries, 0, "queried a step too young to judge");
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	cr_assert(ev.awaiting_data);
	for (size_t i = 0; i < ev.nchecks; i++) {
		cr_assert_eq(ev.checks[i].outcome, MG_GATE_INCONCLUSIVE);
		cr_assert(ev.checks[i].no_data);
	}
	cr_assert_eq(ev.window_ms, MG_GATE_MIN_WINDOW_MS);
}

Test(gate, a_raised_cancel_flag_sends_nothing_and_is_inconclusive)
{
	healthy();
	mg_cancel flag = 1;
	mg_metrics_set_cancel(m, &flag);
	evaluate(0);
	cr_assert_eq(fake.queries, 0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("rate")->detail, "fakeprom query not sent: interrupted"), "%s",
	          check("rate")->detail);
}

Test(gate, the_json_has_every_check_with_value_and_threshold)
{
	vs_vms(0.05, ANS_VALUE, 0.01);
	json_t *doc = mg_gate_eval_to_json(&ev);
	cr_assert_not_null(doc);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "outcome")), "fail");
	json_t *checks = json_object_get(doc, "checks");
	cr_assert_eq(json_array_size(checks), 3);
	json_t *vs = json_array_get(checks, 2);
	cr_assert_str_eq(json_string_value(json_object_get(vs, "name")), "errors-vs-vms");
	cr_assert_float_eq(json_number_value(json_object_get(vs, "vm_value")), 0.01, 1e-12);
	cr_assert_float_eq(json_number_value(json_object_get(vs, "threshold")), 2, 1e-12);
	cr_assert(strstr(json_string_value(json_object_get(vs, "vm_query")), VM_ERR));
	json_decref(doc);
}

Test(gate_text, each_kind_of_check_is_stated_as_the_tables_print_it)
{
	char v[32], r[160];
	mg_gate_check none = {.op = ">=", .threshold = 500};
	mg_gate_check_text(v, sizeof(v), r, sizeof(r), &none);
	cr_assert_str_eq(v, "-");
	cr_assert_str_eq(r, ">= 500");
	mg_gate_check inf = {.has_value = true,
	                     .value = INFINITY,
	                     .op = "<=",
	                     .threshold = 2,
	                     .has_other_value = true,
	                     .other_value = 0};
	mg_gate_check_text(v, sizeof(v), r, sizeof(r), &inf);
	cr_assert_str_eq(v, "+Inf");
	cr_assert_str_eq(r, "<= 2 (VMs 0)");
	mg_gate_check band = {.has_value = true,
	                      .value = 0.95,
	                      .has_min = true,
	                      .min = 0.9,
	                      .has_max = true,
	                      .max = 1,
	                      .op = "in"};
	mg_gate_check_text(v, sizeof(v), r, sizeof(r), &band);
	cr_assert_str_eq(v, "0.95");
	cr_assert_str_eq(r, "in [0.9, 1]");
	mg_gate_check ratio = {
	    .has_value = true, .value = 3, .has_ratio = true, .ratio = 1.25, .max_ratio = 1.5};
	mg_gate_check_text(v, sizeof(v), r, sizeof(r), &ratio);
	cr_assert_str_eq(r, "1.25x baseline (max 1.5x)");
	ratio.op = "<=", ratio.threshold = 4;
	mg_gate_check_text(v, sizeof(v), r, sizeof(r), &ratio);
	cr_assert_str_eq(r, "<= 4, 1.25x baseline (max 1.5x)");
}
