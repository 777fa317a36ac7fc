/*
 * The simulated traffic: a seeded generator, Poisson counts, and the
 * per-interval requests and errors of one step on both sides.
 */
#include "bench.h"

#include <math.h>
#include <string.h>

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t bj_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void bj_rng_seed(bj_rng *r, uint64_t seed)
{
	/* splitmix64 fills the state, as the authors of xoshiro advise: never all zero */
	for (int i = 0; i < 4; i++) {
		seed += 0x9e3779b97f4a7c15ULL;
		r->s[i] = bj_mix(seed);
	}
}

static uint64_t next(bj_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double bj_uniform(bj_rng *r)
{
	/* the middle of one of 2^53 cells: strictly inside (0, 1) */
	return ((double)(next(r) >> 11) + 0.5) * 0x1.0p-53;
}

/*
 * Poisson(mu). Below 10, multiplication of uniforms (Knuth), exact and cheap
 * there; above, Hörmann's transformed rejection with squeeze (PTRS, 1993),
 * exact too and O(1) at the 60,000 requests of a bursty 30 s interval at
 * 1,000 rps, where the first method would draw 60,000 uniforms.
 */
long bj_poisson(bj_rng *r, double mu)
{
	if (!(mu > 0))
		return 0;
	if (mu < 10) {
		double limit = exp(-mu), prod = bj_uniform(r);
		long k = 0;
		while (prod > limit) {
			prod *= bj_uniform(r);
			k++;
		}
		return k;
	}
	double slam = sqrt(mu), loglam = log(mu);
	double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
	double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
	for (;;) {
		double u = bj_uniform(r) - 0.5, v = bj_uniform(r);
		double us = 0.5 - fabs(u);
		double k = floor((2 * a / us + b) * u + mu + 0.43);
		if (us >= 0.07 && v <= vr)
			return (long)k;
		if (k < 0 || (us < 0.013 && v > us))
			continue;
		int sign;
		double lf = lgamma_r(k + 1, &sign); /* lgamma's signgam is shared by the threads */
		if (log(v) + log(invalpha) - log(a / (us * us) + b) <= -mu + k * loglam - lf)
			return (long)k;
	}
}

void bj_trace_begin(bj_trace *t, const bj_traffic *tr, const bj_plan *p, uint64_t seed)
{
	bj_rng_seed(&t->rng, seed);
	t->tr = *tr;
	t->mean = tr->rps * (double)p->interval_ms / 1000;
	/* a step begins at any moment of the on/off cycle: half of them in an "off" interval */
	t->on_first = !tr->bursty || (bj_uniform(&t->rng) < 0.5);
	t->n = 0;
	t->req[0] = t->err[0] = t->vm_req[0] = t->vm_err[0] = 0;
}

/*
 * Requests ~ Poisson(mean), errors ~ Binomial(requests, rate): drawn as two
 * independent Poisson counts, errors at mean x rate and successes at
 * mean x (1 - rate), which is the same joint distribution (Poisson
 * thinning) with no binomial sampler to get right.
 */
static void side(int64_t *req, int64_t *err, bj_rng *r, double mean, double rate, int k)
{
	long e = bj_poisson(r, mean * rate), ok = bj_poisson(r, mean * (1 - rate));
	req[k] = req[k - 1] + e + ok;
	err[k] = err[k - 1] + e;
}

void bj_trace_upto(bj_trace *t, int k)
{
	if (k > BJ_MAX_LOOKS)
		k = BJ_MAX_LOOKS;
	while (t->n < k) {
		int i = ++t->n;
		double mean = t->mean;
		if (t->tr.bursty) {
			/* the whole service's traffic comes and goes, so both sides at once */
			bool on = ((i - 1) % 2 == 0) == t->on_first;
			mean = on ? 2 * t->mean : 0;
		}
		side(t->req, t->err, &t->rng, mean, t->tr.k8s_rate, i);
		side(t->vm_req, t->vm_err, &t->rng, mean, t->tr.vm_rate, i);
	}
}
