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
 * - Fewer than slo.min_requests requests to the cluster in the window makes
 *   the rate check and every ratio built on it (errors, duration,
 *   errors-vs-vms) inconclusive: a handful of requests proves nothing either
 *   way, so it neither passes nor fails.
 * - The window is clamped to the time since the current step began, so no
 *   evaluation mixes traffic from an earlier weight.
 * - With max_error_rate_vs_vms, the cluster fails on errors only when it is
 *   both above max_error_rate (if set) and worse than the VMs by that
 *   factor: a shared dependency that hurts both sides is inconclusive (hold
 *   the step) rather than a reason to roll back.
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
#include "metrics.h"
#include "plan.h"

typedef enum { MG_GATE_PASS, MG_GATE_FAIL, MG_GATE_INCONCLUSIVE } mg_gate_outcome;

/* Evaluations shorter than this have too few scrapes to say anything: inconclusive. */
#define MG_GATE_MIN_WINDOW_MS 1000

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
} mg_gate_check;

typedef struct {
	mg_gate_outcome outcome; /* fail if any fails; else inconclusive if any is; else pass */
	int64_t at_ms;           /* evaluated at this time */
	int64_t window_ms;       /* the window the queries used, after clamping */
	int64_t window_plan_ms;  /* slo.window */
	bool clamped;            /* window_ms < window_plan_ms because the step is younger */
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
