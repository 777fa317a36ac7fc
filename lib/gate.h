/*
 * SLO gates: whether the cluster has earned the next traffic step.
 *
 * Every check (the RED presets of slo.red, then slo.checks) comes out as
 * pass, fail or inconclusive, with the observed value, the threshold, the
 * window and the expanded query, so the journal can say why traffic moved or
 * rolled back. The rules that keep the verdicts honest (docs/gates.md):
 *
 * - No data, NaN, a Prometheus error or an unreachable Prometheus is
 *   inconclusive, never pass.
 * - Error rates are judged on counts with a confidence (judge.h): a check
 *   fails only when the cluster is shown above its bound, passes only when
 *   it is shown below, and is inconclusive in between, saying how many more
 *   requests it needs. slo.min_requests is a floor under that.
 * - The sample of those counts is the traffic since the step began (the
 *   test period; a new one every slo.window), so no evaluation mixes traffic
 *   from an earlier weight; other checks use slo.window clamped to the step.
 * - With max_error_rate_vs_vms, the cluster fails on errors only when it is
 *   both shown above max_error_rate (if set) and shown worse than the VMs by
 *   that factor: a shared dependency that hurts both sides is inconclusive
 *   (hold the step) rather than a reason to roll back.
 *
 * The gate reads metrics and returns a verdict; it neither moves traffic nor
 * writes the journal.
 */
#ifndef MG_GATE_H
#define MG_GATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "judge.h"
#include "metrics.h"
#include "plan.h"

typedef enum { MG_GATE_PASS, MG_GATE_FAIL, MG_GATE_INCONCLUSIVE } mg_gate_outcome;

/* Evaluations shorter than this have too few scrapes to say anything: inconclusive. */
#define MG_GATE_MIN_WINDOW_MS 1000

/*
 * What a check judged on counts stands on, so a verdict can be checked by
 * hand from the journal: the sample, the estimate, the bound it was tested
 * against, the interval and the evidence each way (docs/gates.md).
 */
typedef struct {
	bool judged;             /* the rest is set: the check was judged on counts */
	const char *unit;        /* what "events" counts: "errors", "slow requests" */
	double requests, events; /* the cluster's, in the sample */
	bool has_vm;             /* errors-vs-vms: the VMs' counts too */
	double vm_requests, vm_events;
	int64_t sample_ms;   /* the sample: the last sample_ms of the step */
	int period;          /* its test period (1 for the first slo.window of the step) */
	double estimate;     /* events / requests; errors-vs-vms: the ratio of the rates */
	double bound;        /* what it was tested against */
	double lower, upper; /* the always-valid interval of the estimate */
	double confidence, alpha;
	double e_above, e_below; /* the evidence (mixture likelihood ratios), against 1 / alpha */
	double needed;           /* requests still needed at the observed rate; 0, or -1 never */
	mg_judge_side side;
} mg_gate_stats;

typedef struct {
	char *name; /* "rate", "errors", "duration", "errors-vs-vms", or the check's own name */
	mg_gate_outcome outcome;
	bool has_value;
	double value;          /* what was observed, in the unit of the threshold */
	const char *op;        /* ">=", "<=", or "in" (custom checks with min and max) */
	double threshold;      /* with op "in": unused, see min and max */
	bool has_min, has_max; /* custom checks: min and max as the plan gives them */
	double min, max;
	char *query;          /* as sent, with ${window} expanded */
	char *other_query;    /* errors-vs-vms: the VM side; custom: the baseline; else NULL */
	bool has_other_value; /* the VM ratio, or the baseline's value */
	double other_value;
	bool has_ratio; /* custom checks with a baseline: value / baseline, at most max_ratio */
	double ratio, max_ratio;
	char *detail; /* why it is not a pass (or a pass with a caveat), in words; or NULL */
	bool no_data; /* inconclusive because the query had nothing yet (empty, NaN, too young) */
	char *requests_query;    /* judged checks: the requests it was judged on (the cluster's) */
	char *vm_requests_query; /* errors-vs-vms: the VMs' requests */
	mg_gate_stats stats;
} mg_gate_check;

typedef struct {
	mg_gate_outcome outcome; /* fail if any fails; else inconclusive if any is; else pass */
	int64_t at_ms;           /* evaluated at this time */
	int64_t window_ms;       /* the window the queries used, after clamping */
	int64_t window_plan_ms;  /* slo.window */
	bool clamped;            /* window_ms < window_plan_ms because the step is younger */
	int period;              /* the step's test period (judge.h): 1 in its first window */
	int64_t sample_ms;       /* how far back the counts go: the test period so far */
	/* Inconclusive only because nothing was scraped since the step began: with slo.red
	 * the rate check has no data yet, else no check has. A step that just began looks
	 * like this until the first scrapes of its weights; so does a query that never
	 * matches anything, which is why the autopilot tolerates it only for a while. */
	bool awaiting_data;
	mg_gate_check *checks;
	size_t nchecks;
} mg_gate_eval;

/*
 * Evaluates every check of slo at at_ms (Unix ms). step_started_ms is when
 * the current weights took effect (0 if unknown: no clamping). Queries that
 * fail are inconclusive checks, not errors; the return is negative only for
 * an internal failure (out of memory), and *out is then empty.
 */
int mg_gate_evaluate(mg_gate_eval *out, mg_metrics *m, const mg_plan_slo *slo, int64_t at_ms,
                     int64_t step_started_ms, mg_error *err);
void mg_gate_eval_clear(mg_gate_eval *ev);

const char *mg_gate_outcome_name(mg_gate_outcome o);

/*
 * The error checks' verdicts from counts alone, the policy docs/gates.md
 * tabulates: the gate calls it on Prometheus' numbers and tests/bench/judge
 * on simulated ones, so both judge alike.
 */
typedef struct {
	double requests, errors;       /* the cluster's in the sample */
	double vm_requests, vm_errors; /* the VMs'; vm_requests < 0 when there is no VM side */
} mg_gate_counts;

typedef struct {
	double max_error_rate; /* < 0: no errors check */
	double factor;         /* max_error_rate_vs_vms; < 0: no errors-vs-vms check */
	long min_requests;
} mg_gate_error_rules;

typedef struct {
	mg_gate_outcome rate, errors, vs_vms; /* errors, vs_vms: only with their rule */
	bool enough;                          /* requests >= max(1, min_requests) */
	mg_judge_rate abs;                    /* with max_error_rate */
	mg_judge_ratio rel;                   /* with factor and VM requests */
	bool has_rel;
} mg_gate_error_verdict;

void mg_gate_judge_errors(mg_gate_error_verdict *out, const mg_gate_counts *c,
                          const mg_gate_error_rules *r, const mg_judge_opts *o);

/* {"outcome","at","window","window_plan","clamped","checks":[{name,outcome,value,...}]} */
json_t *mg_gate_eval_to_json(const mg_gate_eval *ev);

/*
 * How a check is stated, for text and messages: *value as observed ("-" when
 * none, "+Inf"), and *rule, when it passes ("<= 0.01", "in [0.9, 1]") with
 * the comparison it made (", 1.2x baseline (max 1.5x)", " (VMs 0.002)").
 */
void mg_gate_check_text(char *value, size_t vsize, char *rule, size_t rsize,
                        const mg_gate_check *c);

/* One line naming the checks that decided, e.g. "errors 0.052 > 0.01 (window 25s)". */
void mg_gate_eval_summary(char *buf, size_t size, const mg_gate_eval *ev);

#endif
