/*
 * PromQL text for the gates: the RED presets for each metrics source, and
 * ${window}/${interval} expansion for custom checks. Only text is produced
 * here; querying Prometheus is lib/metrics' job.
 */
#ifndef MG_PROMQL_H
#define MG_PROMQL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "plan.h"

typedef enum {
	MG_RED_RATE,          /* requests to the cluster in the window: >= min_requests */
	MG_RED_ERRORS,        /* cluster 5xx ratio: <= max_error_rate */
	MG_RED_DURATION,      /* cluster latency in seconds: <= max_latency */
	MG_RED_ERRORS_VS_VMS, /* cluster 5xx ratio / VM 5xx ratio: <= max_error_rate_vs_vms */
} mg_red_kind;

typedef struct {
	mg_red_kind kind;
	const char *name; /* "rate", "errors", "duration", "errors-vs-vms" */
	char *query;      /* the cluster side */
	char *vm_query;   /* errors-vs-vms: the VM side; otherwise NULL */
	double threshold; /* in the query's unit: requests, ratio, seconds, factor */
} mg_red_check;

/* A duration as PromQL writes it: 90000 -> "1m30s", 1500 -> "1500ms". */
void mg_promql_duration(char *buf, size_t size, int64_t ms);

/* Replaces ${window} and ${interval}; *out is malloc'd. */
int mg_promql_expand(char **out, const char *tmpl, int64_t window_ms, int64_t interval_ms,
                     mg_error *err);

/* The RED checks the plan's slo.red asks for, with queries over window_ms. */
int mg_promql_red(mg_red_check **out, size_t *out_n, const mg_plan_slo *slo, int64_t window_ms,
                  mg_error *err);
void mg_promql_red_free(mg_red_check *checks, size_t n);

#endif
