#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "weights.h"

static mg_weights split_ok(double pct, size_t nvm, size_t nk8s, int max_weight)
{
	mg_weights w = {.vm_weight = -1, .k8s_weight = -1, .effective_percent = -1};
	mg_error err = MG_ERROR_INIT;
	int rc = mg_weights_split(&w, pct, nvm, nk8s, max_weight, &err);
	cr_assert_eq(rc, 0, "%g%% %zu/%zu up to %d: rc %d: %s", pct, nvm, nk8s, max_weight, rc,
	             err.message);
	mg_error_clear(&err);
	return w;
}

static const struct {
	double pct;
	size_t nvm, nk8s;
	int max_weight;
	int vw, kw;
	double eff;
} cases[] = {
    {10, 2, 1, 256, 9, 2, 10},
    {50, 1, 1, 256, 1, 1, 50},
    {50, 4, 4, 256, 1, 1, 50},
    {25, 1, 1, 256, 3, 1, 25},
    {75, 1, 1, 256, 1, 3, 75},
    {25, 3, 1, 256, 1, 1, 25},
    {75, 3, 1, 256, 1, 9, 75},
    {0, 2, 1, 256, 1, 0, 0},
    {0, 1, 5, 1, 1, 0, 0},
    {100, 2, 1, 256, 0, 1, 100},
    {100, 3, 7, 1, 0, 1, 100},
    {1, 30, 1, 256, 33, 10, 1},
    {1, 1, 1, 256, 99, 1, 1},
    {20, 4, 1, 256, 1, 1, 20},
    {33.333, 1, 1, 1000, 2, 1, 100.0 / 3},
    {50, 1, 1, 1, 1, 1, 50},
    /* 250/10 is as close (0.0999%) but 25/1 is easier to read. */
    {0.1, 40, 1, 256, 25, 1, 100.0 / 1001},
};

Test(weights, known_splits)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mg_weights w =
		    split_ok(cases[i].pct, cases[i].nvm, cases[i].nk8s, cases[i].max_weight);
		cr_expect_eq(w.vm_weight, cases[i].vw, "case %zu: vm weight %d", i, w.vm_weight);
		cr_expect_eq(w.k8s_weight, cases[i].kw, "case %zu: k8s weight %d", i, w.k8s_weight);
		cr_expect_eq(w.effective_percent, cases[i].eff, "case %zu: effective %.17g", i,
		             w.effective_percent);
	}
}

Test(weights, impossible_share_names_the_closest)
{
	mg_weights w = {.vm_weight = -1, .k8s_weight = -1, .effective_percent = -1};
	mg_error err = MG_ERROR_INIT;
	cr_expect_eq(mg_weights_split(&w, 50, 1, 300, 256, &err), MG_EINVALID);
	cr_expect_eq(err.code, MG_EINVALID);
	cr_expect_str_eq(
	    err.message,
	    "cannot send 50% to 300 cluster servers against 1 VM server with weights up to 256: the closest is 53.957%");
	cr_expect_eq(w.vm_weight, -1, "output written on error");
	mg_error_clear(&err);

	cr_expect_eq(mg_weights_split(&w, 5, 1000, 1, 10, &err), MG_EINVALID);
	cr_expect_str_eq(
	    err.message,
	    "cannot send 5% to 1 cluster server against 1000 VM servers with weights up to 10: the closest is 0.99%");
	mg_error_clear(&err);

	/* With a single weight level only 50% is reachable from 1 + 1 servers. */
	cr_expect_eq(mg_weights_split(&w, 30, 1, 1, 1, &err), MG_EINVALID);
	cr_expect_str_eq(
	    err.message,
	    "cannot send 30% to 1 cluster server against 1 VM server with weights up to 1: the closest is 50%");
	mg_error_clear(&err);

	/* Just inside and just outside the 0.5-point tolerance: 1 + 1 servers at max 1. */
	cr_expect_eq(mg_weights_split(&w, 49.5, 1, 1, 1, &err), 0);
	cr_expect_eq(mg_weights_split(&w, 49.49, 1, 1, 1, &err), MG_EINVALID);
	mg_error_clear(&err);
}

Test(weights, rejects_bad_arguments)
{
	static const struct {
		double pct;
		size_t nvm, nk8s;
		int max_weight;
	} bad[] = {
	    {10, 0, 1, 256},
	    {10, 1, 0, 256},
	    {0, 0, 1, 256},
	    {100, 1, 0, 256},
	    {-1, 1, 1, 256},
	    {100.5, 1, 1, 256},
	    {NAN, 1, 1, 256},
	    {INFINITY, 1, 1, 256},
	    {10, 1, 1, 0},
	    {10, 1, 1, -5},
	    {10, 1, 1, MG_WEIGHTS_MAX_WEIGHT + 1},
	    {10, MG_WEIGHTS_MAX_SERVERS + 1, 1, 256},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mg_weights w = {.vm_weight = -1, .k8s_weight = -1, .effective_percent = -1};
		mg_error err = MG_ERROR_INIT;
		int rc = mg_weights_split(&w, bad[i].pct, bad[i].nvm, bad[i].nk8s,
		                          bad[i].max_weight, &err);
		cr_expect_eq(rc, MG_EINVALID, "case %zu: rc %d", i, rc);
		cr_expect_eq(err.code, MG_EINVALID, "case %zu", i);
		cr_expect_neq(err.message[0], '\0', "case %zu", i);
		cr_expect_eq(w.vm_weight, -1, "case %zu: output written on error", i);
		mg_error_clear(&err);
	}
	/* err is optional. */
	mg_weights w;
	cr_expect_eq(mg_weights_split(&w, 10, 0, 1, 256, NULL), MG_EINVALID);
}

static double share(size_t nvm, size_t nk8s, int vw, int kw)
{
	return 100.0 * (double)nk8s * kw / ((double)nvm * vw + (double)nk8s * kw);
}

static const struct {
	size_t nvm, nk8s;
	int max_weight;
} pools[] = {
    /* Every share from 1% to 99% is reachable when the weight range covers the pool ratio. */
    {1, 1, 256},   {2, 1, 256},   {1, 2, 256},  {3, 2, 256},  {3, 1, 256},
    {4, 4, 256},   {7, 3, 256},   {12, 5, 256}, {5, 5, 100},  {10, 1, 1000},
    {1, 10, 1000}, {30, 1, 2000}, {2, 1, 1000}, {1, 1, 1000}, {1, 1, 100},
};

Test(weights, every_whole_percent_within_half_a_point)
{
	for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++) {
		for (int pct = 1; pct <= 99; pct++) {
			mg_weights w =
			    split_ok(pct, pools[i].nvm, pools[i].nk8s, pools[i].max_weight);
			cr_expect(w.vm_weight >= 1 && w.vm_weight <= pools[i].max_weight,
			          "%d%% pool %zu: vm weight %d", pct, i, w.vm_weight);
			cr_expect(w.k8s_weight >= 1 && w.k8s_weight <= pools[i].max_weight,
			          "%d%% pool %zu: k8s weight %d", pct, i, w.k8s_weight);
			cr_expect_leq(fabs(w.effective_percent - pct), 0.5,
			              "%d%% pool %zu: effective %g", pct, i, w.effective_percent);
			cr_expect_eq(w.effective_percent,
			             share(pools[i].nvm, pools[i].nk8s, w.vm_weight, w.k8s_weight),
			             "%d%% pool %zu: effective does not match the weights", pct, i);
		}
	}
}

/* The linear search must find what trying every pair finds. */
Test(weights, matches_exhaustive_search)
{
	static const struct {
		size_t nvm, nk8s;
	} small[] = {{1, 1}, {2, 1}, {1, 3}, {5, 2}, {9, 4}, {17, 1}};
	const int max_weight = 40;
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		for (double pct = 0.25; pct < 100; pct += 0.37) {
			double best = INFINITY;
			int bv = 0, bk = 0;
			for (int kw = 1; kw <= max_weight; kw++)
				for (int vw = 1; vw <= max_weight; vw++) {
					double d =
					    fabs(share(small[i].nvm, small[i].nk8s, vw, kw) - pct);
					if (d < best - 1e-9 ||
					    (d <= best + 1e-9 && vw + kw < bv + bk)) {
						best = d;
						bv = vw;
						bk = kw;
					}
				}
			mg_weights w = {.vm_weight = -1, .k8s_weight = -1, .effective_percent = -1};
			int rc = mg_weights_split(&w, pct, small[i].nvm, small[i].nk8s, max_weight,
			                          NULL);
			if (best > 0.5) {
				cr_expect_eq(rc, MG_EINVALID, "%g%% %zu/%zu", pct, small[i].nvm,
				             small[i].nk8s);
				continue;
			}
			cr_expect_eq(rc, 0, "%g%% %zu/%zu", pct, small[i].nvm, small[i].nk8s);
			cr_expect(w.vm_weight == bv && w.k8s_weight == bk,
			          "%g%% %zu/%zu: got %d/%d, exhaustive %d/%d", pct, small[i].nvm,
			          small[i].nk8s, w.vm_weight, w.k8s_weight, bv, bk);
		}
	}
}
