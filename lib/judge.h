/*
 * The judge: sequential tests on counts, so a gate knows how sure it is.
 *
 * A gate looks every slo.interval, so it tests the same step again and
 * again; a test that is valid for one look fails a healthy cluster far more
 * often than its level says when it is repeated. These tests stay valid
 * however often they are looked at: each is a mixture sequential
 * probability ratio test (mSPRT, Robbins 1970; "always valid p-values",
 * Johari et al. 2017). For one side of a bound p0, the evidence is
 *
 *   M = 1/K * sum over r in R of  (p_r/p0)^x * ((1-p_r)/(1-p0))^(n-x)
 *
 * with x events in n trials and the alternatives p_r whose odds are r times
 * the odds of p0 (r in MG_JUDGE_RATIOS for "above", 1/r for "below"). Under
 * the bound M is a non-negative supermartingale, so by Ville's inequality the
 * chance that it ever reaches 1/alpha, at any look, is at most alpha. The
 * judge says "above" when M(above) >= 1/alpha, "below" when M(below) >=
 * 1/alpha, and "undecided" otherwise. docs/gates.md works an example by hand.
 *
 * A step is cut into test periods of the longer of slo.window and
 * traffic.bake (so the verdict that advances a step stands on all of its
 * bake), and period k spends alpha_k = alpha * 6 / (pi^2 k^2) (the sum over
 * all k is alpha): a step held for days still fails a healthy cluster with
 * a chance of at most 1 - confidence, and a regression that begins late is
 * judged on recent traffic.
 *
 * Pure functions: no I/O, no allocation; tests/bench/judge runs them by the
 * million.
 */
#ifndef MG_JUDGE_H
#define MG_JUDGE_H

#include <stdbool.h>
#include <stdint.h>

/* The odds ratios the mixture puts equal weight on (K of them). */
#define MG_JUDGE_RATIOS                                                                            \
	{                                                                                          \
		1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0                                              \
	}
#define MG_JUDGE_NRATIOS 7

/* More trials than this at the observed rate and the test still would not decide: "never". */
#define MG_JUDGE_NEEDED_MAX 1e12

typedef enum {
	MG_JUDGE_UNDECIDED,
	MG_JUDGE_ABOVE, /* the rate is above the bound with the confidence asked */
	MG_JUDGE_BELOW, /* the rate is below the bound with the confidence asked */
} mg_judge_side;

typedef struct {
	double confidence; /* 0.5 < confidence < 1 */
	int period;        /* 1 for the first slo.window of a step, 2 for the next, ... */
	bool quick;        /* the side and the evidence only: no interval, no needed (the bench) */
} mg_judge_opts;

/* One rate against a bound: the cluster's error rate against max_error_rate. */
typedef struct {
	mg_judge_side side;
	double x, n;         /* events (errors) in trials (requests) */
	double estimate;     /* x / n; NAN when n is 0 */
	double bound;        /* p0 */
	double alpha;        /* what this period spends: (1 - confidence) * 6 / (pi^2 period^2) */
	double e_above;      /* M for "above": the evidence against rate <= bound */
	double e_below;      /* M for "below" */
	double lower, upper; /* the rates not rejected at alpha: an always-valid interval */
	/* Trials still needed at the observed rate before the test decides: 0 when it has,
	 * -1 when it never would (the rate is too near the bound, or nothing to go on). */
	double needed;
} mg_judge_rate;

/*
 * x events in n trials against bound (0 < bound < 1). x and n may be
 * fractional (Prometheus' increase() extrapolates); x is clamped to [0, n].
 */
void mg_judge_rate_test(mg_judge_rate *out, double x, double n, double bound,
                        const mg_judge_opts *o);

/*
 * The cluster against the VMs: is the cluster's error rate more than factor
 * times the VMs'? Conditioned on the errors of both sides together, each
 * error is the cluster's with probability q = rho*s / (rho*s + 1), where rho
 * is the ratio of the two rates and s = n / vm_n the ratio of their
 * requests; so "rho <= factor" is "q <= q0" with q0 at rho = factor, the
 * exact conditional test for two Poisson rates (Przyborowski and Wilenski
 * 1940), run as the same mixture. Defined when the VMs have no errors.
 */
typedef struct {
	mg_judge_side side; /* ABOVE: worse than factor x the VMs; BELOW: shown not worse */
	double x, n;        /* the cluster's errors and requests */
	double vm_x, vm_n;  /* the VMs' */
	double factor;      /* max_error_rate_vs_vms */
	double q0;          /* the cluster's share of all errors at rho = factor */
	double alpha;
	double e_above, e_below;
	double estimate; /* rho observed; +Inf when only the cluster erred, NAN with no errors */
	double lower, upper; /* always-valid interval of rho (upper +Inf when not bounded) */
	double needed;       /* more cluster requests (with the VMs' in proportion), as above */
} mg_judge_ratio;

/* vm_n must be > 0 and n > 0; otherwise the result is undecided with needed -1. */
void mg_judge_ratio_test(mg_judge_ratio *out, double x, double n, double vm_x, double vm_n,
                         double factor, const mg_judge_opts *o);

/* The level period k spends: (1 - confidence) * 6 / (pi^2 k^2). */
double mg_judge_alpha(const mg_judge_opts *o);

/*
 * The test period of a step at age_ms (whole seconds count): *period (1-based)
 * and *since_ms, how far back it began. period_ms is the period's length
 * (mg_plan_slo.test_period_ms).
 */
void mg_judge_period(int *period, int64_t *since_ms, int64_t age_ms, int64_t period_ms);

/* log M for "above" (above true) or "below" of x in n against p0: for docs and tests. */
double mg_judge_log_evidence(double x, double n, double p0, bool above);

#endif
