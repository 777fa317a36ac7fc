/*
 * tests/bench/judge: the error-rate judge of lib/judge.h against other
 * rules, on simulated steps (docs/gates.md (the benchmark) says how and why).
 *
 * Every rule sees the same simulated traffic (the same counts per interval
 * of the same step) and goes through the library's own decision table,
 * mg_migration_decide, so the rows differ in the rule alone.
 */
#ifndef BJ_BENCH_H
#define BJ_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "gate.h"

/*
 * The hard cap of looks in one step. The decision table ends every step
 * long before it (a step that is not passing is rolled back or stalls
 * within failure_limit x 3 x max(bake, interval) after its bake: at most
 * 320 looks for flagger-5 with plans/example.yaml), so a capped step means
 * a bug here; it is counted as inconclusive and reported as "capped".
 */
#define BJ_MAX_LOOKS 1000

/* xoshiro256** (Blackman and Vigna): fast, and its streams are fixed by the seed. */
typedef struct {
	uint64_t s[4];
} bj_rng;

void bj_rng_seed(bj_rng *r, uint64_t seed);
uint64_t bj_mix(uint64_t x);  /* splitmix64's finaliser: seeds from indices */
double bj_uniform(bj_rng *r); /* in (0, 1): never 0, so log() of it is finite */
long bj_poisson(bj_rng *r, double mu);

/* What a plan says about its gates (plans/example.yaml, plans/demo.yaml). */
typedef struct {
	const char *name;
	int64_t interval_ms, window_ms, bake_ms;
	int failure_limit;
	long min_requests;      /* the previous rule's floor: the plan's value before the judge */
	double max_error_rate;  /* the plan's slo.red.max_error_rate */
	int64_t test_period_ms; /* max(window, bake), as the plan loader sets it */
} bj_plan;

/* The traffic of a scenario: the same mean on both sides. */
typedef struct {
	double rps;     /* requests per second per side, on average */
	bool bursty;    /* whole intervals at 2 x rps, then at 0, alternating */
	double vm_rate; /* error rates */
	double k8s_rate;
} bj_traffic;

/*
 * One step's traffic, made an interval at a time as far as any rule looks:
 * the counts depend on the step's seed alone, never on which rule asked
 * first. Cumulative sums, so any run of intervals is summed in O(1);
 * index 0 is the step's start (all zero), index k the end of interval k.
 */
typedef struct {
	bj_rng rng;
	bj_traffic tr;
	double mean;   /* requests per interval per side, steady */
	bool on_first; /* bursty: the first interval is an "on" one */
	int n;         /* intervals made so far */
	int64_t req[BJ_MAX_LOOKS + 1], err[BJ_MAX_LOOKS + 1];
	int64_t vm_req[BJ_MAX_LOOKS + 1], vm_err[BJ_MAX_LOOKS + 1];
} bj_trace;

void bj_trace_begin(bj_trace *t, const bj_traffic *tr, const bj_plan *p, uint64_t seed);
void bj_trace_upto(bj_trace *t, int k);

typedef enum {
	BJ_MIGRATE,
	BJ_MIN_REQUESTS,
	BJ_FLAGGER_1,
	BJ_FLAGGER_5,
	BJ_MANN_WHITNEY,
	BJ_NJUDGES
} bj_judge;

extern const char *const bj_judge_names[BJ_NJUDGES];

typedef enum { BJ_ROLLBACK, BJ_ADVANCE, BJ_STALLED, BJ_CAPPED, BJ_NENDS } bj_end_kind;

typedef struct {
	bj_end_kind kind;
	int look; /* 1-based index of the look that ended the step */
} bj_end;

/* The outcome of rule j at look k (1-based; intervals 1..k are made). */
mg_gate_outcome bj_look(bj_judge j, const bj_plan *p, const bj_trace *t, int k);

/* One step from its first look to its end, through mg_migration_decide. */
bj_end bj_run_step(bj_judge j, const bj_plan *p, bj_trace *t);

/* The Mann-Whitney rule's test alone (for the self-test): +1 when a is
 * significantly higher than b at confidence 0.98, -1 lower, 0 neither. */
int bj_mann_whitney(const double *a, int na, const double *b, int nb);

#endif
