/*
 * lib/judge.h: the sequential tests the gates judge counts with. The
 * formula against a hand computation, the guarantee it is chosen for (a
 * healthy rate is almost never failed, however often it is looked at), the
 * interval and the "needs N more requests" against the decisions they
 * describe, and the test periods.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "judge.h"

static const mg_judge_opts P1 = {.confidence = 0.95, .period = 1};

/* log M by the formula of judge.h, written out the slow way */
static double by_hand(double x, double n, double p0, bool above)
{
	const double r[] = MG_JUDGE_RATIOS;
	double sum = 0;
	for (int i = 0; i < MG_JUDGE_NRATIOS; i++) {
		double odds = (above ? r[i] : 1 / r[i]) * p0 / (1 - p0);
		double p = odds / (1 + odds);
		sum += pow(p / p0, x) * pow((1 - p) / (1 - p0), n - x);
	}
	return log(sum / MG_JUDGE_NRATIOS);
}

Test(judge, the_evidence_is_the_mixture_of_judge_h)
{
	double cases[][3] = {{0, 50, 0.01},  {3, 100, 0.01}, {30, 1000, 0.01},
	                     {0, 800, 0.01}, {7, 9, 0.5},    {12, 15, 0.667}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (int above = 0; above < 2; above++) {
			double got =
			    mg_judge_log_evidence(cases[i][0], cases[i][1], cases[i][2], above);
			double want = by_hand(cases[i][0], cases[i][1], cases[i][2], above);
			cr_assert_float_eq(got, want, 1e-9 * fmax(1, fabs(want)),
			                   "case %zu %s: %g vs %g", i, above ? "above" : "below",
			                   got, want);
		}
	/* no data is no evidence either way */
	cr_assert_float_eq(mg_judge_log_evidence(0, 0, 0.01, true), 0, 1e-12);
	cr_assert_float_eq(mg_judge_log_evidence(0, 0, 0.01, false), 0, 1e-12);
}

/* The worked example of docs/gates.md: 30 errors in 1,000 requests against 1%. */
Test(judge, the_worked_example_of_the_docs)
{
	mg_judge_rate r;
	mg_judge_rate_test(&r, 30, 1000, 0.01, &P1);
	cr_assert_eq(r.side, MG_JUDGE_ABOVE);
	cr_assert_float_eq(r.alpha, 0.05 * 6 / (M_PI * M_PI), 1e-12);
	cr_assert_float_eq(1 / r.alpha, 32.9, 0.05);
	cr_assert_float_eq(log(r.e_above), by_hand(30, 1000, 0.01, true), 1e-9);
	cr_assert_gt(r.e_above, 1 / r.alpha);
	cr_assert(r.lower > 0.01 && r.lower < 0.03 && r.upper > 0.03, "[%g, %g]", r.lower, r.upper);
	cr_assert_float_eq(r.needed, 0, 1e-12);
}

static uint64_t rng = 88172645463325252ull;
static double uniform(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

/*
 * Why a sequential test: at exactly the bound, looked at after every 25
 * requests up to 5,000 (200 looks), the chance of ever saying "above" must
 * stay under alpha. A fixed-sample test at the same level, looked at as
 * often, says it far more often; the test checks that too, so it would
 * notice if the sequence stopped being one.
 */
Test(judge, repeated_looks_at_the_bound_rarely_fail_it)
{
	const int runs = 1000, looks = 200, per = 25;
	const double p0 = 0.02;
	int mixture_fails = 0, naive_fails = 0;
	for (int run = 0; run < runs; run++) {
		double x = 0, n = 0;
		bool failed = false, naive = false;
		for (int l = 0; l < looks; l++) {
			for (int i = 0; i < per; i++)
				x += uniform() < p0;
			n += per;
			mg_judge_rate r;
			mg_judge_opts quick = P1;
			quick.quick = true;
			mg_judge_rate_test(&r, x, n, p0, &quick);
			failed |= r.side == MG_JUDGE_ABOVE;
			/* one-sided z test at the same alpha, as a point-in-time judge would */
			double z = (x / n - p0) / sqrt(p0 * (1 - p0) / n);
			naive |= z > 1.87;
		}
		mixture_fails += failed;
		naive_fails += naive;
	}
	double alpha = mg_judge_alpha(&P1);
	cr_log_info("mixture %d, naive %d of %d", mixture_fails, naive_fails, runs);
	cr_assert_leq(mixture_fails, runs * alpha, "%d of %d healthy runs failed (alpha %.3f)",
	              mixture_fails, runs, alpha);
	cr_assert_gt(naive_fails, 3 * runs * alpha, "the naive test, %d of %d", naive_fails, runs);
}

Test(judge, a_clear_regression_is_found_and_a_clear_health_shown)
{
	mg_judge_rate r;
	mg_judge_rate_test(&r, 40, 1000, 0.01, &P1); /* 4x */
	cr_assert_eq(r.side, MG_JUDGE_ABOVE);
	mg_judge_rate_test(&r, 2, 2000, 0.01, &P1); /* 0.1x */
	cr_assert_eq(r.side, MG_JUDGE_BELOW);
	cr_assert_lt(r.upper, 0.01);
	/* all five requests failing: above any bound below 1 */
	mg_judge_rate_test(&r, 5, 5, 0.01, &P1);
	cr_assert_eq(r.side, MG_JUDGE_ABOVE);
}

Test(judge, the_interval_and_the_side_agree)
{
	double cases[][2] = {{0, 10},    {1, 50},   {5, 500}, {12, 600},
	                     {30, 1000}, {2, 1000}, {8, 800}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mg_judge_rate r;
		mg_judge_rate_test(&r, cases[i][0], cases[i][1], 0.01, &P1);
		cr_assert(r.lower <= r.estimate && r.estimate <= r.upper,
		          "case %zu: %g in [%g, %g]", i, r.estimate, r.lower, r.upper);
		mg_judge_side side = r.lower > 0.01   ? MG_JUDGE_ABOVE
		                     : r.upper < 0.01 ? MG_JUDGE_BELOW
		                                      : MG_JUDGE_UNDECIDED;
		cr_assert_eq(r.side, side, "case %zu: side %d, interval [%g, %g]", i, r.side,
		             r.lower, r.upper);
	}
}

/* "needs about N more requests": N more at the same rate decide it, 5% fewer do not. */
Test(judge, needed_is_what_decides_it)
{
	double cases[][2] = {{0, 50}, {1, 50}, {12, 600}, {1, 300}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double x = cases[i][0], n = cases[i][1];
		mg_judge_rate r;
		mg_judge_rate_test(&r, x, n, 0.01, &P1);
		cr_assert_eq(r.side, MG_JUDGE_UNDECIDED, "case %zu", i);
		cr_assert_gt(r.needed, 0, "case %zu", i);
		double rate = x / n;
		mg_judge_rate more, fewer;
		mg_judge_rate_test(&more, x + rate * r.needed, n + r.needed, 0.01, &P1);
		mg_judge_rate_test(&fewer, x + rate * r.needed * 0.95, n + r.needed * 0.95, 0.01,
		                   &P1);
		cr_assert_neq(more.side, MG_JUDGE_UNDECIDED, "case %zu: %g more", i, r.needed);
		cr_assert_eq(fewer.side, MG_JUDGE_UNDECIDED, "case %zu: %g more", i,
		             r.needed * 0.95);
	}
	/* exactly at the bound, no number of requests decides it */
	mg_judge_rate r;
	mg_judge_rate_test(&r, 10, 1000, 0.01, &P1);
	cr_assert_eq(r.needed, -1);
	/* nothing to go on */
	mg_judge_rate_test(&r, 0, 0, 0.01, &P1);
	cr_assert_eq(r.needed, -1);
	cr_assert(isnan(r.estimate));
}

Test(judge, the_vms_comparison_is_defined_without_vm_errors)
{
	mg_judge_ratio r;
	mg_judge_ratio_test(&r, 12, 1000, 0, 1000, 2, &P1);
	cr_assert_eq(r.side, MG_JUDGE_ABOVE);
	cr_assert(isinf(r.estimate));
	cr_assert(isfinite(r.lower) && r.lower > 2, "%g", r.lower);
	cr_assert(isinf(r.upper));
	cr_assert_float_eq(r.q0, 2.0 / 3, 1e-12, "half the traffic each, factor 2");
	/* a cluster at 10% of the traffic: each of its errors weighs more */
	mg_judge_ratio_test(&r, 3, 100, 0, 900, 2, &P1);
	cr_assert_eq(r.side, MG_JUDGE_ABOVE);
	/* a few errors against none are not yet shown worse, and more would show it */
	mg_judge_ratio_test(&r, 3, 1000, 0, 1000, 2, &P1);
	cr_assert_eq(r.side, MG_JUDGE_UNDECIDED);
	cr_assert_gt(r.needed, 0);
	/* no error on either side: nothing to compare, ever */
	mg_judge_ratio_test(&r, 0, 1000, 0, 1000, 2, &P1);
	cr_assert_eq(r.side, MG_JUDGE_UNDECIDED);
	cr_assert_eq(r.needed, -1);
	/* both sides alike: shown not twice as bad */
	mg_judge_ratio_test(&r, 500, 10000, 400, 10000, 2, &P1);
	cr_assert_eq(r.side, MG_JUDGE_BELOW);
	cr_assert(r.lower < 1.25 && 1.25 < r.upper && r.upper < 2, "[%g, %g]", r.lower, r.upper);
	/* no VM traffic: no test */
	mg_judge_ratio_test(&r, 5, 1000, 0, 0, 2, &P1);
	cr_assert_eq(r.side, MG_JUDGE_UNDECIDED);
	cr_assert_eq(r.needed, -1);
}

Test(judge, test_periods_cut_a_step_into_windows_and_spend_alpha_per_period)
{
	int k;
	int64_t since;
	mg_judge_period(&k, &since, 400, 30000);
	cr_assert_eq(k, 1);
	cr_assert_eq(since, 0);
	mg_judge_period(&k, &since, 10500, 30000);
	cr_assert_eq(k, 1);
	cr_assert_eq(since, 10000, "whole seconds");
	mg_judge_period(&k, &since, 30400, 30000);
	cr_assert_eq(k, 1, "a look just after the period's end still belongs to it");
	cr_assert_eq(since, 30000);
	mg_judge_period(&k, &since, 31000, 30000);
	cr_assert_eq(k, 2);
	cr_assert_eq(since, 1000);
	mg_judge_period(&k, &since, 600000, 300000);
	cr_assert_eq(k, 2);
	cr_assert_eq(since, 300000);
	/* the levels of all periods add up to 1 - confidence */
	double sum = 0;
	for (int p = 1; p <= 100000; p++) {
		mg_judge_opts o = {.confidence = 0.95, .period = p};
		sum += mg_judge_alpha(&o);
	}
	cr_assert_leq(sum, 0.05);
	cr_assert_gt(sum, 0.0499);
}

Test(judge, counts_from_prometheus_may_be_fractional_or_odd)
{
	mg_judge_rate r;
	/* increase() extrapolates: 29.7 errors in 998.4 requests */
	mg_judge_rate_test(&r, 29.7, 998.4, 0.01, &P1);
	cr_assert_eq(r.side, MG_JUDGE_ABOVE);
	/* more errors than requests (counters reset apart) are taken as all requests */
	mg_judge_rate_test(&r, 20, 10, 0.01, &P1);
	cr_assert_float_eq(r.x, 10, 1e-12);
	/* negatives and NaN are nothing */
	mg_judge_rate_test(&r, -3, NAN, 0.01, &P1);
	cr_assert_float_eq(r.n, 0, 1e-12);
	cr_assert_eq(r.side, MG_JUDGE_UNDECIDED);
	/* a busy service: ten million requests, no overflow */
	mg_judge_rate_test(&r, 99000, 1e7, 0.01, &P1);
	cr_assert_eq(r.side, MG_JUDGE_UNDECIDED);
	cr_assert(isfinite(r.e_above) && isfinite(r.e_below));
	mg_judge_rate_test(&r, 150000, 1e7, 0.01, &P1);
	cr_assert_eq(r.side, MG_JUDGE_ABOVE);
	cr_assert(isfinite(r.e_above));
}
