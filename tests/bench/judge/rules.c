/*
 * The rules compared, one look each, and a step run through the library's
 * decision table. docs/gates.md (the benchmark) states each rule in words.
 */
#include "bench.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "judge.h"
#include "migration.h"

const char *const bj_judge_names[BJ_NJUDGES] = {"migrate", "min_requests", "flagger-1", "flagger-5",
                                                "mann-whitney"};

/* Requests and errors of both sides over intervals first..last (1-based, inclusive). */
typedef struct {
	double req, err, vm_req, vm_err;
} sums;

static sums sum_of(const bj_trace *t, int first, int last)
{
	if (first < 1)
		first = 1;
	if (last < first)
		return (sums){0};
	return (sums){.req = (double)(t->req[last] - t->req[first - 1]),
	              .err = (double)(t->err[last] - t->err[first - 1]),
	              .vm_req = (double)(t->vm_req[last] - t->vm_req[first - 1]),
	              .vm_err = (double)(t->vm_err[last] - t->vm_err[first - 1])};
}

/* How the gate combines its checks: any fail fails, then any inconclusive holds. */
static mg_gate_outcome combine(mg_gate_outcome a, mg_gate_outcome b)
{
	if (a == MG_GATE_FAIL || b == MG_GATE_FAIL)
		return MG_GATE_FAIL;
	if (a == MG_GATE_INCONCLUSIVE || b == MG_GATE_INCONCLUSIVE)
		return MG_GATE_INCONCLUSIVE;
	return MG_GATE_PASS;
}

/*
 * This project's judge: the counts of the test period so far, as the gate
 * sums them (mg_judge_period), through the gate's own policy function.
 */
static mg_gate_outcome look_migrate(const bj_plan *p, const bj_trace *t, int k)
{
	int64_t age_ms = (int64_t)k * p->interval_ms, since_ms;
	int period;
	mg_judge_period(&period, &since_ms, age_ms, p->test_period_ms);
	/* the intervals wholly inside [age - since, age] */
	int first = k - (int)(since_ms / p->interval_ms) + 1;
	sums s = sum_of(t, first, k);
	mg_gate_counts c = {
	    .requests = s.req, .errors = s.err, .vm_requests = s.vm_req, .vm_errors = s.vm_err};
	mg_gate_error_rules r = {
	    .max_error_rate = p->max_error_rate, .factor = 2, .min_requests = 0};
	mg_judge_opts o = {.confidence = 0.95, .period = period, .quick = true};
	mg_gate_error_verdict v;
	mg_gate_judge_errors(&v, &c, &r, &o);
	return combine(v.rate, combine(v.errors, v.vs_vms));
}

/* lib/gates/gate.c before d26137e: factor_of, 0/0 is "as good as the VMs". */
static double factor_of(double k8s, double vm)
{
	if (k8s == 0)
		return vm == 0 ? 1.0 : 0.0;
	return vm == 0 ? INFINITY : k8s / vm;
}

/*
 * The previous rule: point ratios over slo.window clamped to the step, no
 * judgement at all below min_requests.
 */
static mg_gate_outcome look_min_requests(const bj_plan *p, const bj_trace *t, int k)
{
	int w = (int)(p->window_ms / p->interval_ms);
	sums s = sum_of(t, k - w + 1, k);
	if (s.req < (double)p->min_requests)
		return MG_GATE_INCONCLUSIVE; /* the rate check, and the others with it */
	double ratio = s.err / s.req;
	bool vm_ok = s.vm_req > 0; /* else the VM query is 0/0: NaN, no data */
	double vm_ratio = vm_ok ? s.vm_err / s.vm_req : NAN;
	mg_gate_outcome errors = ratio <= p->max_error_rate ? MG_GATE_PASS : MG_GATE_FAIL;
	if (errors == MG_GATE_FAIL && vm_ok && ratio <= 2 * vm_ratio)
		errors = MG_GATE_INCONCLUSIVE; /* "a shared cause, not the cluster" */
	mg_gate_outcome vs = MG_GATE_INCONCLUSIVE;
	if (vm_ok) {
		vs = factor_of(ratio, vm_ratio) <= 2 ? MG_GATE_PASS : MG_GATE_FAIL;
		if (vs == MG_GATE_FAIL && ratio <= p->max_error_rate)
			vs = MG_GATE_PASS; /* "worse than the VMs, but within max_error_rate" */
	}
	return combine(errors, vs);
}

/* Flagger: the point rate of the last interval; no requests, no value (skipped). */
static mg_gate_outcome look_flagger(const bj_plan *p, const bj_trace *t, int k)
{
	sums s = sum_of(t, k, k);
	if (s.req <= 0)
		return MG_GATE_INCONCLUSIVE;
	return s.err / s.req > p->max_error_rate ? MG_GATE_FAIL : MG_GATE_PASS;
}

#define MW_MAX 64 /* samples per side; window / interval is 10 (example) and 20 (demo) */

/* z of 0.99: two-sided at confidence 0.98 */
#define MW_Z 2.3263478740408408

int bj_mann_whitney(const double *a, int na, const double *b, int nb)
{
	struct {
		double v;
		bool a;
	} x[2 * MW_MAX], tmp;
	int n = 0;
	for (int i = 0; i < na && n < 2 * MW_MAX; i++)
		x[n].v = a[i], x[n++].a = true;
	for (int i = 0; i < nb && n < 2 * MW_MAX; i++)
		x[n].v = b[i], x[n++].a = false;
	for (int i = 1; i < n; i++) /* insertion sort: at most 20 values here */
		for (int j = i; j > 0 && x[j - 1].v > x[j].v; j--)
			tmp = x[j], x[j] = x[j - 1], x[j - 1] = tmp;
	double rank_a = 0, ties = 0;
	for (int i = 0; i < n;) {
		int j = i;
		while (j < n && x[j].v == x[i].v)
			j++;
		double rank = (i + 1 + j) / 2.0, tn = j - i; /* mid-rank of positions i+1..j */
		ties += tn * tn * tn - tn;
		for (int m = i; m < j; m++)
			if (x[m].a)
				rank_a += rank;
		i = j;
	}
	double u = rank_a - na * (na + 1) / 2.0, mu = na * nb / 2.0;
	double var = na * nb / 12.0 * ((n + 1) - ties / ((double)n * (n - 1)));
	if (!(var > 0))
		return 0; /* every value tied: no difference to see */
	/* continuity correction, as R's wilcox.test(correct = TRUE) */
	double z = (fabs(u - mu) - 0.5) / sqrt(var);
	if (z < MW_Z)
		return 0;
	return u > mu ? 1 : -1;
}

/*
 * Kayenta-like: per-interval error rates of the cluster against the VMs',
 * since the step began, at most the last window's worth; an interval where
 * a side served nothing has no rate on that side.
 */
static mg_gate_outcome look_mann_whitney(const bj_plan *p, const bj_trace *t, int k)
{
	if (k < 3)
		return MG_GATE_INCONCLUSIVE;
	int w = (int)(p->window_ms / p->interval_ms);
	if (w > MW_MAX)
		w = MW_MAX;
	if (w < 3)
		w = 3;
	double a[MW_MAX], b[MW_MAX];
	int na = 0, nb = 0;
	for (int j = k - w + 1 > 1 ? k - w + 1 : 1; j <= k; j++) {
		sums s = sum_of(t, j, j);
		if (s.req > 0)
			a[na++] = s.err / s.req;
		if (s.vm_req > 0)
			b[nb++] = s.vm_err / s.vm_req;
	}
	if (na < 3 || nb < 3)
		return MG_GATE_INCONCLUSIVE; /* Kayenta's NODATA */
	/* "no significant difference" is a pass, as Kayenta scores it */
	return bj_mann_whitney(a, na, b, nb) > 0 ? MG_GATE_FAIL : MG_GATE_PASS;
}

mg_gate_outcome bj_look(bj_judge j, const bj_plan *p, const bj_trace *t, int k)
{
	switch (j) {
	case BJ_MIGRATE:
		return look_migrate(p, t, k);
	case BJ_MIN_REQUESTS:
		return look_min_requests(p, t, k);
	case BJ_FLAGGER_1:
	case BJ_FLAGGER_5:
		return look_flagger(p, t, k);
	case BJ_MANN_WHITNEY:
		return look_mann_whitney(p, t, k);
	case BJ_NJUDGES:
		break;
	}
	return MG_GATE_INCONCLUSIVE;
}

/* Any time will do; a real one keeps "0 means not inconclusive" out of the way. */
#define T0 1700000000000LL

bj_end bj_run_step(bj_judge j, const bj_plan *p, bj_trace *t)
{
	bool flagger = j == BJ_FLAGGER_1 || j == BJ_FLAGGER_5;
	mg_state st;
	memset(&st, 0, sizeof(st));
	st.step_started_ms = T0;
	mg_plan_traffic traffic = {.bake_ms = p->bake_ms};
	/* Flagger's threshold stands in for failure_limit; the other rules use the plan's */
	mg_plan_slo slo = {.interval_ms = p->interval_ms,
	                   .window_ms = p->window_ms,
	                   .min_requests = p->min_requests,
	                   .confidence = 0.95,
	                   .failure_limit = j == BJ_FLAGGER_1   ? 1
	                                    : j == BJ_FLAGGER_5 ? 5
	                                                        : p->failure_limit,
	                   .on_failure = MG_ON_FAILURE_ROLLBACK};
	/* what the autopilot keeps between two evaluations (lib/migration/autopilot.c) */
	int64_t inconclusive_since = 0;
	bool data_seen = false, has_last = false;
	mg_gate_outcome last = MG_GATE_INCONCLUSIVE;
	for (int k = 1; k <= BJ_MAX_LOOKS; k++) {
		bj_trace_upto(t, k);
		mg_gate_outcome o = bj_look(j, p, t, k);
		mg_decision_input in = {.st = &st,
		                        .traffic = &traffic,
		                        .slo = &slo,
		                        .outcome = o,
		                        .awaiting_data = false,
		                        .changed = !has_last || last != o,
		                        .now_ms = T0 + k * p->interval_ms,
		                        .inconclusive_since_ms = inconclusive_since,
		                        .data_seen = data_seen,
		                        .drift = false,
		                        .until = INT_MAX};
		mg_decision d;
		mg_migration_decide(&d, &in);
		st.gate_failures = d.gate_failures;
		inconclusive_since = d.inconclusive_since_ms;
		data_seen = d.data_seen;
		has_last = d.kind != MG_DECIDE_FORGET;
		last = o;
		/* Flagger counts consecutive failures (as the brief states its rule): a pass
		 * starts over, a skipped interval does not */
		if (flagger && o == MG_GATE_PASS)
			st.gate_failures = 0;
		switch (d.kind) {
		case MG_DECIDE_ROLLBACK:
		case MG_DECIDE_PAUSE: /* not with on_failure rollback; a failure all the same */
			return (bj_end){BJ_ROLLBACK, k};
		case MG_DECIDE_ADVANCE:
		case MG_DECIDE_DRIFT: /* not without drift */
			return (bj_end){BJ_ADVANCE, k};
		case MG_DECIDE_STALLED:
			return (bj_end){BJ_STALLED, k};
		case MG_DECIDE_FORGET:
		case MG_DECIDE_COUNT:
		case MG_DECIDE_HOLD:
		case MG_DECIDE_BAKE:
			break;
		}
	}
	return (bj_end){BJ_CAPPED, BJ_MAX_LOOKS};
}
