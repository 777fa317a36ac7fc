/*
 * Sequential tests on counts (see judge.h for the method and docs/gates.md
 * for a worked example). Everything is in log space: a window of a busy
 * service holds millions of requests, and (p_r/p0)^x overflows long before.
 */
#include "judge.h"

#include <math.h>
#include <stddef.h>

static const double ratios[MG_JUDGE_NRATIOS] = MG_JUDGE_RATIOS;

/* Both ends of every search stay this far inside (0, 1): log(0) is not a number. */
#define EDGE 1e-12

double mg_judge_alpha(const mg_judge_opts *o)
{
	double k = o->period > 1 ? o->period : 1;
	return (1 - o->confidence) * 6 / (M_PI * M_PI * k * k);
}

void mg_judge_period(int *period, int64_t *since_ms, int64_t age_ms, int64_t period_ms)
{
	/* whole seconds, as the windows of the queries: a look a few ms after a period's
	 * end still belongs to it, rather than opening the next with nothing in it */
	int64_t age = age_ms > 0 ? age_ms / 1000 * 1000 : 0;
	if (period_ms <= 0 || age <= period_ms) {
		*period = 1;
		*since_ms = age;
		return;
	}
	int64_t k = (age + period_ms - 1) / period_ms;
	*period = k > 1000000 ? 1000000 : (int)k;
	*since_ms = age - (k - 1) * period_ms;
}

double mg_judge_log_evidence(double x, double n, double p0, bool above)
{
	double o0 = p0 / (1 - p0), l0 = log(p0), m0 = log1p(-p0);
	double terms[MG_JUDGE_NRATIOS], top = -INFINITY;
	for (size_t i = 0; i < MG_JUDGE_NRATIOS; i++) {
		double o = (above ? ratios[i] : 1 / ratios[i]) * o0;
		double p = o / (1 + o);
		/* (p/p0)^x ((1-p)/(1-p0))^(n-x); 0 * log(...) is 0 even at the edges */
		double t = 0;
		if (x > 0)
			t += x * (log(p) - l0);
		if (n - x > 0)
			t += (n - x) * (log1p(-p) - m0);
		terms[i] = t;
		if (t > top)
			top = t;
	}
	double sum = 0;
	for (size_t i = 0; i < MG_JUDGE_NRATIOS; i++)
		sum += exp(terms[i] - top);
	return top + log(sum) - log((double)MG_JUDGE_NRATIOS);
}

static double e_of(double log_e)
{
	return log_e > 700 ? exp(700) : exp(log_e);
}

static mg_judge_side side_of(double x, double n, double p0, double thr, double *la, double *lb)
{
	*la = mg_judge_log_evidence(x, n, p0, true);
	*lb = mg_judge_log_evidence(x, n, p0, false);
	if (*la >= thr)
		return MG_JUDGE_ABOVE;
	return *lb >= thr ? MG_JUDGE_BELOW : MG_JUDGE_UNDECIDED;
}

static double logistic(double t)
{
	return 1 / (1 + exp(-t));
}

/*
 * The edge of the rates the data does not reject: for "above", the largest
 * p0 that is rejected (evidence falls as p0 grows), for "below" the smallest.
 * Searched in log-odds, where both ends are far apart.
 */
static double edge(double x, double n, double thr, bool above)
{
	double lo = log(EDGE), hi = -log(EDGE);
	bool lo_rej = mg_judge_log_evidence(x, n, logistic(lo), above) >= thr;
	bool hi_rej = mg_judge_log_evidence(x, n, logistic(hi), above) >= thr;
	if (above && !lo_rej)
		return 0;
	if (above && hi_rej)
		return 1;
	if (!above && !hi_rej)
		return 1;
	if (!above && lo_rej)
		return 0;
	for (int i = 0; i < 60; i++) {
		double mid = (lo + hi) / 2;
		bool rej = mg_judge_log_evidence(x, n, logistic(mid), above) >= thr;
		if (rej == above)
			lo = mid;
		else
			hi = mid;
	}
	return logistic((lo + hi) / 2);
}

/*
 * How many more trials, at rates that stay as observed, until decided(...)
 * holds: doubling, then halving the gap to within 1%. -1 when not even
 * MG_JUDGE_NEEDED_MAX more would do.
 */
typedef bool (*decides_fn)(const void *ctx, double more);

static double needed_more(decides_fn decides, const void *ctx, double start)
{
	double hi = start > 1 ? start : 1;
	while (!decides(ctx, hi)) {
		hi *= 2;
		if (hi > MG_JUDGE_NEEDED_MAX)
			return -1;
	}
	double lo = hi / 2 >= 1 && !decides(ctx, hi / 2) ? hi / 2 : 0;
	while (hi - lo > 1 && hi - lo > hi * 0.01) {
		double mid = (lo + hi) / 2;
		if (decides(ctx, mid))
			hi = mid;
		else
			lo = mid;
	}
	return ceil(hi);
}

typedef struct {
	double x, n, p0, thr;
} rate_ctx;

static bool rate_decides(const void *v, double more)
{
	const rate_ctx *c = v;
	double la, lb;
	double x = c->x + c->x / c->n * more;
	return side_of(x, c->n + more, c->p0, c->thr, &la, &lb) != MG_JUDGE_UNDECIDED;
}

void mg_judge_rate_test(mg_judge_rate *out, double x, double n, double bound,
                        const mg_judge_opts *o)
{
	if (!(n > 0))
		n = 0;
	if (!(x > 0))
		x = 0;
	if (x > n)
		x = n;
	*out = (mg_judge_rate){.x = x,
	                       .n = n,
	                       .bound = bound,
	                       .estimate = n > 0 ? x / n : NAN,
	                       .alpha = mg_judge_alpha(o),
	                       .lower = 0,
	                       .upper = 1,
	                       .needed = -1};
	double thr = -log(out->alpha), la, lb;
	out->side = side_of(x, n, bound, thr, &la, &lb);
	out->e_above = e_of(la);
	out->e_below = e_of(lb);
	if (o->quick)
		return;
	if (n > 0) {
		out->lower = edge(x, n, thr, true);
		out->upper = edge(x, n, thr, false);
	}
	if (out->side != MG_JUDGE_UNDECIDED) {
		out->needed = 0;
	} else if (n > 0) {
		rate_ctx c = {.x = x, .n = n, .p0 = bound, .thr = thr};
		out->needed = needed_more(rate_decides, &c, n / 8);
	}
}

typedef struct {
	double x, n, vm_x, vm_n, factor, thr;
} ratio_ctx;

static double share_at(double factor, double s)
{
	return factor * s / (factor * s + 1);
}

static bool ratio_decides(const void *v, double more)
{
	const ratio_ctx *c = v;
	double x = c->x + c->x / c->n * more;
	double vm_more = more * c->vm_n / c->n;
	double vm_x = c->vm_x + c->vm_x / c->vm_n * vm_more;
	double q0 = share_at(c->factor, c->n / c->vm_n), la, lb;
	return side_of(x, x + vm_x, q0, c->thr, &la, &lb) != MG_JUDGE_UNDECIDED;
}

void mg_judge_ratio_test(mg_judge_ratio *out, double x, double n, double vm_x, double vm_n,
                         double factor, const mg_judge_opts *o)
{
	if (!(n > 0))
		n = 0;
	if (!(vm_n > 0))
		vm_n = 0;
	x = x > 0 ? (x < n ? x : n) : 0;
	vm_x = vm_x > 0 ? (vm_x < vm_n ? vm_x : vm_n) : 0;
	*out = (mg_judge_ratio){.x = x,
	                        .n = n,
	                        .vm_x = vm_x,
	                        .vm_n = vm_n,
	                        .factor = factor,
	                        .alpha = mg_judge_alpha(o),
	                        .e_above = 1,
	                        .e_below = 1,
	                        .estimate = NAN,
	                        .lower = 0,
	                        .upper = INFINITY,
	                        .needed = -1};
	if (n <= 0 || vm_n <= 0)
		return;
	double s = n / vm_n, thr = -log(out->alpha);
	out->q0 = share_at(factor, s);
	if (vm_x > 0)
		out->estimate = (x / n) / (vm_x / vm_n);
	else if (x > 0)
		out->estimate = INFINITY;
	double all = x + vm_x, la, lb;
	if (all <= 0)
		return; /* no error on either side: nothing to compare, ever, at these rates */
	out->side = side_of(x, all, out->q0, thr, &la, &lb);
	out->e_above = e_of(la);
	out->e_below = e_of(lb);
	if (o->quick)
		return;
	/* the interval of the share q, as one of the ratio of rates rho = q / (1 - q) / s */
	double ql = edge(x, all, thr, true), qu = edge(x, all, thr, false);
	out->lower = ql / (1 - ql) / s;
	out->upper = qu >= 1 ? INFINITY : qu / (1 - qu) / s;
	if (out->side != MG_JUDGE_UNDECIDED) {
		out->needed = 0;
	} else {
		ratio_ctx c = {
		    .x = x, .n = n, .vm_x = vm_x, .vm_n = vm_n, .factor = factor, .thr = thr};
		out->needed = needed_more(ratio_decides, &c, n / 8);
	}
}
