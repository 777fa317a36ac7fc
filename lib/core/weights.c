#include "weights.h"

#include <math.h>
#include <stdint.h>

#include "units.h"

/* Shares closer than this are equal: they differ only by rounding in the division. */
#define SAME_SHARE 1e-9
#define TOLERANCE  0.5

static double share(uint64_t nvm, uint64_t nk8s, uint64_t vw, uint64_t kw)
{
	/* Both terms are below 2^41 with the limits in weights.h, so the sum is exact. */
	return 100.0 * (double)(nk8s * kw) / (double)(nvm * vw + nk8s * kw);
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

int mg_weights_split(mg_weights *out, double percent, size_t nvm, size_t nk8s, int max_weight,
                     mg_error *err)
{
	if (!(percent >= 0 && percent <= 100))
		return mg_error_set(err, MG_EINVALID,
		                    "cannot send %g%% to the cluster: a share is from 0%% to 100%%",
		                    percent);
	if (nvm == 0 || nk8s == 0)
		return mg_error_set(
		    err, MG_EINVALID,
		    "cannot split traffic with %zu VM server%s and %zu cluster server%s: each side needs at least one",
		    nvm, plural(nvm), nk8s, plural(nk8s));
	if (nvm > MG_WEIGHTS_MAX_SERVERS || nk8s > MG_WEIGHTS_MAX_SERVERS)
		return mg_error_set(err, MG_EINVALID,
		                    "cannot split traffic over more than %d servers of one kind",
		                    MG_WEIGHTS_MAX_SERVERS);
	if (max_weight < 1 || max_weight > MG_WEIGHTS_MAX_WEIGHT)
		return mg_error_set(err, MG_EINVALID,
		                    "a maximum weight of %d is not usable (1 to %d)", max_weight,
		                    MG_WEIGHTS_MAX_WEIGHT);
	if (percent == 0) {
		*out = (mg_weights){.vm_weight = 1, .k8s_weight = 0, .effective_percent = 0};
		return 0;
	}
	if (percent == 100) {
		*out = (mg_weights){.vm_weight = 0, .k8s_weight = 1, .effective_percent = 100};
		return 0;
	}

	/*
	 * For a given cluster weight the share falls as the VM weight grows,
	 * so the best VM weight is next to the real solution of
	 * share(vw, kw) == percent. That makes the search linear in max_weight
	 * instead of quadratic; one step either side absorbs rounding.
	 */
	double best = INFINITY;
	int64_t bv = 0, bk = 0;
	for (int64_t kw = 1; kw <= max_weight && best > SAME_SHARE; kw++) {
		double ideal =
		    (double)nk8s * (double)kw * (100 - percent) / (percent * (double)nvm);
		double f = floor(ideal);
		int64_t base = f > max_weight ? max_weight : (int64_t)f;
		int64_t lo = base - 1 < 1 ? 1 : base - 1;
		int64_t hi = base + 2 > max_weight ? max_weight : base + 2;
		if (lo > hi)
			lo = hi;
		for (int64_t vw = lo; vw <= hi; vw++) {
			double d = fabs(share(nvm, nk8s, (uint64_t)vw, (uint64_t)kw) - percent);
			/* Equally close: the smaller pair is easier to read in a config. */
			if (d < best - SAME_SHARE ||
			    (d <= best + SAME_SHARE && vw + kw < bv + bk)) {
				best = d;
				bv = vw;
				bk = kw;
			}
		}
	}
	double eff = share(nvm, nk8s, (uint64_t)bv, (uint64_t)bk);
	if (best > TOLERANCE + SAME_SHARE) {
		char want[32], got[32];
		mg_percent_format(want, sizeof(want), percent);
		mg_percent_format(got, sizeof(got), eff);
		return mg_error_set(
		    err, MG_EINVALID,
		    "cannot send %s to %zu cluster server%s against %zu VM server%s with weights up to %d: the closest is %s",
		    want, nk8s, plural(nk8s), nvm, plural(nvm), max_weight, got);
	}
	*out = (mg_weights){.vm_weight = (int)bv, .k8s_weight = (int)bk, .effective_percent = eff};
	return 0;
}
