/*
 * PromQL text for the gates: the RED presets for each metrics source, and
 * ${window}/${interval} expansion for custom checks. Only text is produced
 * here; querying Prometheus is lib/metrics' job.
 */
#ifndef MG_PROMQL_H
#define MG_PROMQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "plan.h"

typedef enum {
	MG_RED_RATE,          /* the cluster's requests in the sample: the n of every error test */
	MG_RED_ERRORS,        /* the cluster's 5xx in the sample: judged against max_error_rate */
	MG_RED_DURATION,      /* latency: HAProxy's average, or ingress-nginx' buckets by le */
	MG_RED_ERRORS_VS_VMS, /* the cluster's 5xx, and the VMs' 5xx and requests */
} mg_red_kind;

/*
 * The error checks fetch counts, not ratios, so the judge (judge.h) knows
 * its sample size: sum(increase(...[S])) over the sample S (the test period
 * of the step so far). A 5xx count adds "or vector(0)": a source that has
 * seen no 5xx yet has no such series, and no error is 0 errors, not "no
 * data" (the requests query still says whether there is any traffic).
 */
typedef struct {
	mg_red_kind kind;
	const char *name;        /* "rate", "errors", "duration", "errors-vs-vms" */
	char *query;             /* the cluster side (see mg_red_kind) */
	char *vm_query;          /* errors-vs-vms: the VMs' 5xx; otherwise NULL */
	char *vm_requests_query; /* errors-vs-vms: the VMs' requests; otherwise NULL */
	bool histogram;          /* duration: query is bucket counts by le, to judge a quantile */
	double quantile;         /* with histogram: max_latency_quantile */
	double threshold;        /* min_requests, max_error_rate, seconds, or the factor */
} mg_red_check;

/* A duration as PromQL writes it: 90000 -> "1m30s", 1500 -> "1500ms". */
void mg_promql_duration(char *buf, size_t size, int64_t ms);

/* Replaces ${window} and ${interval}; *out is malloc'd. */
int mg_promql_expand(char **out, const char *tmpl, int64_t window_ms, int64_t interval_ms,
                     mg_error *err);

/*
 * The RED checks the plan's slo.red asks for: counts over sample_ms, and
 * HAProxy's average latency over window_ms (the clamped slo.window).
 */
int mg_promql_red(mg_red_check **out, size_t *out_n, const mg_plan_slo *slo, int64_t window_ms,
                  int64_t sample_ms, mg_error *err);
void mg_promql_red_free(mg_red_check *checks, size_t n);

/*
 * The same preset's queries per side, for charts over time (range queries:
 * `migrate report`): each side's requests and 5xx as counts over window_ms,
 * with the selectors and metric names of mg_promql_red, and its latency in
 * seconds (HAProxy: the worst server's average; ingress-nginx: the plan's
 * max_latency_quantile of the buckets). Every query is there whatever limits
 * the plan sets. Two sides for HAProxy (cluster, then VMs); one for
 * ingress-nginx, which sees only the cluster; none without slo.red.
 */
typedef struct {
	const char *side; /* "cluster" or "vms" */
	char *requests;   /* sum(increase(...[window])) */
	char *errors;     /* the 5xx among them, "or vector(0)" */
	char *latency;    /* seconds */
	double quantile;  /* ingress-nginx: the quantile latency is; 0 for HAProxy's average */
} mg_red_side;

int mg_promql_red_sides(mg_red_side **out, size_t *out_n, const mg_plan_red *r, int64_t window_ms,
                        mg_error *err);
void mg_promql_red_sides_free(mg_red_side *sides, size_t n);

#endif
