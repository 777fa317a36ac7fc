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
	ANS_BUCKETS,  /* histogram buckets by le: the table below, times v */
} answer_kind;

/* Cumulative counts per le of 1000 requests: 1% slower than 0.25s, 0.2% than 0.5s. */
static const struct {
	const char *le;
	double count;
} buckets[] = {{"0.1", 900}, {"0.25", 990}, {"0.5", 998}, {"1", 1000}, {"+Inf", 1000}};

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
		case ANS_BUCKETS:
			/* unsorted, as Prometheus may send them */
			for (size_t b = sizeof(buckets) / sizeof(buckets[0]); b-- > 0;) {
				char labels[64];
				snprintf(labels, sizeof(labels), "{le=\"%s\"}", buckets[b].le);
				add_series(out, labels, 1, buckets[b].count * r->v);
			}
			return 0;
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
#define VM_RATE  "haproxy_server_http_responses_total{proxy=\"be\",server=~\"vm\"}"
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
	                    .min_requests = 0,
	                    .confidence = 0.95,
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

/* The cluster's requests and 5xx in the sample. */
static void counts(double requests, double errors)
{
	answer(K8S_ERR, ANS_VALUE, errors);
	answer(RATE, ANS_VALUE, requests);
}

/* A healthy cluster: 5000 requests, 0.1% errors, 100 ms. */
static void healthy(void)
{
	answer(DURATION, ANS_VALUE, 0.1);
	counts(5000, 5);
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
	cr_assert_float_eq(e->value, 0.001, 1e-12, "the estimate: 5 of 5000");
	cr_assert_float_eq(e->threshold, 0.01, 1e-12);
	cr_assert_str_eq(e->op, "<=");
	/* what the verdict stands on */
	cr_assert(e->stats.judged);
	cr_assert_float_eq(e->stats.requests, 5000, 1e-9);
	cr_assert_float_eq(e->stats.events, 5, 1e-9);
	cr_assert_eq(e->stats.side, MG_JUDGE_BELOW);
	cr_assert_float_eq(e->stats.confidence, 0.95, 1e-12);
	cr_assert(e->stats.lower < 0.001 && 0.001 < e->stats.upper && e->stats.upper < 0.01,
	          "[%g, %g]", e->stats.lower, e->stats.upper);
	cr_assert_geq(e->stats.e_below, 1 / e->stats.alpha, "the evidence that decided");
	cr_assert_str_eq(check("rate")->op, ">=");
	cr_assert_float_eq(check("duration")->threshold, 0.5, 1e-12);
	/* HAProxy has no histogram: the check says it is judged without a confidence */
	cr_assert(strstr(check("duration")->detail, "without a confidence"), "%s",
	          check("duration")->detail);
	/* the queries as sent: counts over the sample, the requests query kept as evidence */
	cr_assert(strstr(check("rate")->query, RATE "[30s]"), "%s", check("rate")->query);
	cr_assert(strstr(e->query, K8S_ERR "}[30s])) or vector(0)"), "%s", e->query);
	cr_assert_str_eq(e->requests_query, check("rate")->query);
	cr_assert_eq(fake.queries, 3);
}

Test(gate, errors_shown_above_the_limit_fail)
{
	answer(DURATION, ANS_VALUE, 0.1);
	counts(1000, 50);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
	expect("errors", MG_GATE_FAIL);
	expect("duration", MG_GATE_PASS);
	summary_has("errors 0.05 > 0.01 (50/1000, 95%: ");
	cr_assert(strstr(check("errors")->detail, "above max_error_rate with 95% confidence"), "%s",
	          check("errors")->detail);
	cr_assert_gt(check("errors")->stats.lower, 0.01);
}

/*
 * The heart of it: one error in fifty requests is 2%, twice the limit, and
 * proves nothing either way. The old rule failed (or, with min_requests,
 * waited for a count it might not need); the judge holds and says how many
 * more requests it needs.
 */
Test(gate, a_point_estimate_above_the_limit_is_not_yet_a_failure)
{
	answer(DURATION, ANS_VALUE, 0.1);
	counts(50, 1);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	expect("rate", MG_GATE_PASS);
	expect("errors", MG_GATE_INCONCLUSIVE);
	const mg_gate_check *e = check("errors");
	cr_assert_float_eq(e->value, 0.02, 1e-12);
	cr_assert(strstr(e->detail, "neither above nor below max_error_rate with 95% confidence "
	                            "yet (1 errors in 50 requests); needs about "),
	          "%s", e->detail);
	cr_assert(strstr(e->detail, "more requests at the observed rate"), "%s", e->detail);
	cr_assert_gt(e->stats.needed, 50);
	cr_assert(e->stats.lower < 0.01 && e->stats.upper > 0.01);
	summary_has("needs ~");
	/* and no errors in fifty is no proof of health either */
	mg_gate_eval_clear(&ev);
	fake.rules[1].v = 0;
	evaluate(0);
	expect("errors", MG_GATE_INCONCLUSIVE);
	/* nor is one whose every request failed the same as a hold: five of five fail */
	mg_gate_eval_clear(&ev);
	fake.rules[1].v = 5;
	fake.rules[2].v = 5;
	evaluate(0);
	expect("errors", MG_GATE_FAIL);
}

Test(gate, latency_above_the_limit_fails)
{
	answer(DURATION, ANS_VALUE, 0.75);
	counts(5000, 0);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
	expect("duration", MG_GATE_FAIL);
	summary_has("duration 0.75 > 0.5");
}

Test(gate, min_requests_is_a_floor_under_the_judge)
{
	slo.min_requests = 100;
	answer(DURATION, ANS_VALUE, 9); /* would fail, but is the cluster's */
	counts(99, 50);                 /* would fail */
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL, "the duration has no floor");
	expect("rate", MG_GATE_INCONCLUSIVE);
	expect("errors", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("rate")->detail, "99 requests to the cluster in 30s; at least 100"),
	          "%s", check("rate")->detail);
	cr_assert(!check("rate")->no_data);
	cr_assert(!ev.awaiting_data, "there is data: too little of it");
	/* exactly min_requests is enough */
	mg_gate_eval_clear(&ev);
	fake.rules[2].v = 100;
	evaluate(0);
	expect("rate", MG_GATE_PASS);
	expect("errors", MG_GATE_FAIL);
	/* without a floor, no request at all is still nothing to judge */
	mg_gate_eval_clear(&ev);
	slo.min_requests = 0;
	fake.rules[2].v = 0;
	fake.rules[1].v = 0;
	evaluate(0);
	expect("rate", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("rate")->detail, "no requests reached the cluster in 30s"), "%s",
	          check("rate")->detail);
	expect("errors", MG_GATE_INCONCLUSIVE);
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
	answer(RATE, ANS_VALUE, 5000);
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
	answer(RATE, ANS_VALUE, 5000);
	evaluate(0);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	expect("errors", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("errors")->detail, "2 series"), "%s", check("errors")->detail);
	expect("duration", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("duration")->detail, "matrix"), "%s", check("duration")->detail);
}

/* ---- errors-vs-vms ---------------------------------------------------------------------- */

/* Counts of both sides; vm_kind other than ANS_VALUE answers the VM queries so. */
static void vs_vms(double k8s_req, double k8s_err, answer_kind vm_kind, double vm_req,
                   double vm_err)
{
	red.max_error_rate_vs_vms = 2;
	red.max_latency_ms = -1;
	answer(VM_ERR, vm_kind, vm_err);
	answer(VM_RATE, vm_kind, vm_req);
	answer(K8S_ERR, ANS_VALUE, k8s_err);
	answer(RATE, ANS_VALUE, k8s_req);
	evaluate(0);
	cr_assert_eq(ev.nchecks, red.max_error_rate >= 0 ? 3 : 2);
}

Test(gate, errors_the_vms_share_hold_the_step)
{
	vs_vms(10000, 500, ANS_VALUE, 10000, 400);
	expect("errors", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("errors")->detail, "a shared cause"), "%s", check("errors")->detail);
	expect("errors-vs-vms", MG_GATE_PASS);
	const mg_gate_check *c = check("errors-vs-vms");
	cr_assert(c->stats.judged && c->stats.has_vm);
	cr_assert_float_eq(c->stats.estimate, 1.25, 1e-9, "5%% against 4%%");
	cr_assert_lt(c->stats.upper, 2, "shown not worse than twice the VMs");
	cr_assert(c->has_other_value);
	cr_assert_float_eq(c->other_value, 0.04, 1e-12);
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
}

Test(gate, errors_worse_than_the_vms_fail)
{
	vs_vms(10000, 500, ANS_VALUE, 10000, 100);
	expect("errors", MG_GATE_FAIL);
	expect("errors-vs-vms", MG_GATE_FAIL);
	/* the value is the least the ratio can be, with the confidence: above the factor */
	const mg_gate_check *c = check("errors-vs-vms");
	cr_assert(c->value > 2 && c->value < 5, "%g", c->value);
	cr_assert_float_eq(c->stats.estimate, 5, 1e-9);
	cr_assert(strstr(c->detail, "the VMs' error rate with 95% confidence (500 of 10000 vs 100 "
	                            "of 10000)"),
	          "%s", c->detail);
	cr_assert_eq(ev.outcome, MG_GATE_FAIL);
}

/* The VMs had no errors: a ratio of +Inf before; now a finite bound, and a real test. */
Test(gate, vms_without_errors_give_a_finite_verdict)
{
	vs_vms(1000, 30, ANS_VALUE, 1000, 0);
	expect("errors-vs-vms", MG_GATE_FAIL);
	const mg_gate_check *c = check("errors-vs-vms");
	cr_assert(isfinite(c->value) && c->value > 2, "%g", c->value);
	cr_assert(isinf(c->stats.estimate), "the point ratio has nothing to divide by");
	char v[32], r[320];
	mg_gate_check_text(v, sizeof(v), r, sizeof(r), c);
	cr_assert(strcmp(v, "+Inf") != 0, "%s", v);
	/* one cluster error against none is not "infinitely worse": not shown, a pass */
	mg_gate_eval_clear(&ev);
	fake.nrules = 0;
	red.max_error_rate = -1;
	vs_vms(1000, 1, ANS_VALUE, 1000, 0);
	expect("errors-vs-vms", MG_GATE_PASS);
	cr_assert(strstr(check("errors-vs-vms")->detail, "not shown worse than 2x the VMs"), "%s",
	          check("errors-vs-vms")->detail);
}

Test(gate, worse_than_the_vms_but_within_the_error_rate_passes)
{
	vs_vms(100000, 500, ANS_VALUE, 100000, 100);
	expect("errors", MG_GATE_PASS);
	expect("errors-vs-vms", MG_GATE_PASS);
	cr_assert(strstr(check("errors-vs-vms")->detail, "within max_error_rate"), "%s",
	          check("errors-vs-vms")->detail);
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
}

Test(gate, no_errors_on_either_side_is_as_good_as_the_vms)
{
	vs_vms(5000, 0, ANS_VALUE, 5000, 0);
	expect("errors", MG_GATE_PASS);
	expect("errors-vs-vms", MG_GATE_PASS);
	cr_assert_float_eq(check("errors-vs-vms")->value, 0, 1e-12);
	cr_assert_eq(ev.outcome, MG_GATE_PASS);
}

Test(gate, no_vm_figure_is_inconclusive)
{
	vs_vms(5000, 5, ANS_EMPTY, 0, 0);
	expect("errors-vs-vms", MG_GATE_INCONCLUSIVE);
	cr_assert(!check("errors-vs-vms")->has_value);
	cr_assert(strstr(check("errors-vs-vms")->detail, "no VM figure"));
	cr_assert_eq(ev.outcome, MG_GATE_INCONCLUSIVE);
	/* VMs that served nothing (all traffic on the cluster): nothing to share a cause with */
	mg_gate_eval_clear(&ev);
	fake.nrules = 0;
	vs_vms(1000, 50, ANS_VALUE, 0, 0);
	expect("errors-vs-vms", MG_GATE_INCONCLUSIVE);
	cr_assert(strstr(check("errors-vs-vms")->detail, "the VMs served no requests"), "%s",
	          check("errors-vs-vms")->detail);
	expect("errors", MG_GATE_FAIL);
}

/* ---- latency quantiles from ingress-nginx' histograms ------------------------------------ */

static void ingress(int64_t max_latency_ms, double scale)
{
	red = (mg_plan_red){.source = MG_RED_INGRESS_NGINX,
	                    .namespace_ = "shop",
	                    .max_error_rate = -1,
	                    .max_latency_ms = max_latency_ms,
	                    .max_latency_quantile = 0.99,
	                    .max_error_rate_vs_vms = -1};
	answer("_bucket", ANS_BUCKETS, scale);
	answer("nginx_ingress_controller_requests", ANS_VALUE, 1000 * scale);
	evaluate(0);
}

/* A new evaluation of ingress(): the duration check's verdict and a part of its detail. */
static void ingress_again(int64_t max_latency_ms, double scale, mg_gate_outcome o,
                          const char *detail)
{
	mg_gate_eval_clear(&ev);
	fake.nrules = 0;
	ingress(max_latency_ms, scale);
	expect("duration", o);
	cr_assert(strstr(check("duration")->detail, detail), "%s", check("duration")->detail);
}

Test(gate, a_quantile_is_judged_from_the_buckets_with_its_uncertainty)
{
	/* 0.2% of requests slower than 0.5s: p99 under 0.5s, shown with 100,000 requests */
	ingress(500, 100);
	expect("duration", MG_GATE_PASS);
	const mg_gate_check *d = check("duration");
	cr_assert(d->stats.judged);
	cr_assert_str_eq(d->stats.unit, "slow requests");
	cr_assert_float_eq(d->stats.events, 200, 1e-9);
	cr_assert_float_eq(d->stats.bound, 0.01, 1e-12, "1 - p99");
	cr_assert(d->value > 0.1 && d->value <= 0.25, "p99 %g, as histogram_quantile says",
	          d->value);
	cr_assert(strstr(d->query, "sum by (le) (increase(nginx_ingress_controller_request_"
	                           "duration_seconds_bucket{namespace=\"shop\"}[30s]))"),
	          "%s", d->query);
	/* 1% slower than 0.25s exactly at the bound: neither shown, however many requests */
	ingress_again(250, 100, MG_GATE_INCONCLUSIVE, "no number of requests would decide");
	/* 10% slower than 0.1s: p99 above it */
	ingress_again(100, 10, MG_GATE_FAIL, "took longer than 0.1s");
	/* 0.3s lies between the buckets 0.25 and 0.5: what lies between counts as slow */
	ingress_again(300, 1, MG_GATE_INCONCLUSIVE, "between the buckets 0.25 and 0.5");
}

Test(gate, a_histogram_without_buckets_is_no_data)
{
	red = (mg_plan_red){.source = MG_RED_INGRESS_NGINX,
	                    .namespace_ = "shop",
	                    .max_error_rate = 0.01,
	                    .max_latency_ms = 250,
	                    .max_latency_quantile = 0.99,
	                    .max_error_rate_vs_vms = -1};
	answer("_bucket", ANS_VALUE, 3); /* one series, no le */
	answer("status=~", ANS_EMPTY, 0);
	answer("nginx_ingress_controller_requests", ANS_VALUE, 1000);
	evaluate(0);
	expect("duration", MG_GATE_INCONCLUSIVE);
	cr_assert(check("duration")->no_data);
	cr_assert(strstr(check("duration")->detail, "le=\"+Inf\""), "%s",
	          check("duration")->detail);
	/* no 5xx series is no error: vector(0) in the real query; here the fake's empty
	 * answer stands for a source that errs, and says so */
	expect("errors", MG_GATE_INCONCLUSIVE);
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
	cr_assert_eq(ev.period, 1);
	/* an older step: the plan's window, and the counts of the second test period */
	mg_gate_eval_clear(&ev);
	evaluate(AT - 60000);
	cr_assert(!ev.clamped);
	cr_assert_eq(ev.window_ms, 30000);
	cr_assert_eq(ev.period, 2, "60s is the end of the second 30s period");
	cr_assert(strstr(check("rate")->query, "[30s]"), "%s", check("rate")->query);
	/* 75s: the third period, 15s into it; its level is smaller (alpha spent per period) */
	mg_gate_eval_clear(&ev);
	evaluate(AT - 75400);
	cr_assert_eq(ev.period, 3);
	cr_assert_eq(ev.sample_ms, 15000);
	cr_assert(strstr(check("rate")->query, RATE "[15s]"), "%s", check("rate")->query);
	cr_assert(strstr(check("duration")->query, "[30s]"), "the average keeps the window: %s",
	          check("duration")->query);
	cr_assert_float_eq(check("errors")->stats.alpha, 0.05 * 6 / (M_PI * M_PI * 9), 1e-12);
	/* a bake longer than the window makes the period: the advance stands on the whole bake */
	mg_gate_eval_clear(&ev);
	slo.test_period_ms = 90000;
	evaluate(AT - 75400);
	cr_assert_eq(ev.period, 1);
	cr_assert_eq(ev.sample_ms, 75000);
	cr_assert(strstr(check("rate")->query, RATE "[1m15s]"), "%s", check("rate")->query);
	cr_assert_eq(ev.window_ms, 30000, "the window itself is the plan's");
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
	vs_vms(10000, 500, ANS_VALUE, 10000, 100);
	json_t *doc = mg_gate_eval_to_json(&ev);
	cr_assert_not_null(doc);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "outcome")), "fail");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "sample")), "30s");
	cr_assert_eq(json_integer_value(json_object_get(doc, "period")), 1);
	json_t *checks = json_object_get(doc, "checks");
	cr_assert_eq(json_array_size(checks), 3);
	json_t *vs = json_array_get(checks, 2);
	cr_assert_str_eq(json_string_value(json_object_get(vs, "name")), "errors-vs-vms");
	cr_assert_float_eq(json_number_value(json_object_get(vs, "vm_value")), 0.01, 1e-12);
	cr_assert_float_eq(json_number_value(json_object_get(vs, "threshold")), 2, 1e-12);
	cr_assert(strstr(json_string_value(json_object_get(vs, "vm_query")), VM_ERR));
	cr_assert(strstr(json_string_value(json_object_get(vs, "vm_requests_query")), VM_RATE));
	/* the counts, the estimate, the bound, the interval, the confidence, the evidence */
	json_t *j = json_object_get(vs, "judge");
	cr_assert(json_is_object(j));
	json_t *cn = json_object_get(j, "counts");
	cr_assert_float_eq(json_number_value(json_object_get(cn, "requests")), 10000, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(cn, "errors")), 500, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(cn, "vm_requests")), 10000, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(cn, "vm_errors")), 100, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(j, "estimate")), 5, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(j, "bound")), 2, 1e-12);
	cr_assert_float_eq(json_number_value(json_object_get(j, "confidence")), 0.95, 1e-12);
	cr_assert_str_eq(json_string_value(json_object_get(j, "side")), "above");
	cr_assert_eq(json_array_size(json_object_get(j, "interval")), 2);
	json_t *e = json_object_get(j, "evidence");
	cr_assert_gt(json_number_value(json_object_get(e, "above")),
	             json_number_value(json_object_get(e, "needed")));
	cr_assert(json_is_null(json_object_get(j, "needs_requests")), "decided: nothing needed");
	json_t *er = json_array_get(checks, 1);
	cr_assert(strstr(json_string_value(json_object_get(er, "requests_query")), RATE));
	cr_assert(json_is_object(json_object_get(er, "judge")));
	cr_assert_null(json_object_get(json_array_get(checks, 0), "judge"), "rate is a count");
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
