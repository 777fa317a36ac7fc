/*
 * Metrics sources for the gates: one small interface, one file per source
 * under lib/gates/ (Prometheus today). Nothing here knows about load
 * balancers or steps; the gates (lib/gates/gate.c) decide what the numbers mean.
 *
 * A query that ran and came back is 0 with the result in *out, even when it
 * holds no series: "no data" is for the gate to judge. An error (unreachable,
 * timeout, Prometheus' own error envelope, an answer that is not the API) is
 * a negative MG_E* code with a message that says which and how to fix it;
 * Prometheus' errorType and error are quoted as they came.
 */
#ifndef MG_METRICS_H
#define MG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"
#include "plan.h"

typedef enum {
	MG_METRICS_VECTOR,
	MG_METRICS_SCALAR,
	MG_METRICS_MATRIX,
	MG_METRICS_STRING,
} mg_metrics_type;

typedef struct {
	int64_t t_ms;
	double v; /* "NaN", "+Inf", "-Inf" arrive as NAN, INFINITY, -INFINITY */
} mg_metrics_sample;

typedef struct {
	char *labels; /* the metric's labels as {a="b",...}; "{}" when it has none */
	mg_metrics_sample *samples;
	size_t nsamples; /* 1 for a vector or scalar, any number for a matrix */
} mg_metrics_series;

typedef struct {
	mg_metrics_type type;
	mg_metrics_series *series; /* a scalar is one series with labels "{}" */
	size_t nseries;
	char *warnings; /* Prometheus' warnings joined with "; ", or NULL */
} mg_metrics_result;

typedef struct mg_metrics mg_metrics;

/*
 * A metrics source: Prometheus (lib/gates/prometheus.c), or a test's fake.
 * query and query_range get arguments mg_metrics_query(_range) has checked
 * and an *out that is zeroed; on an error, whatever they left in *out is
 * cleared for them.
 */
typedef struct {
	const char *name; /* in messages: "prometheus" */
	int (*query)(void *src, mg_metrics_result *out, const char *query, int64_t at_ms,
	             mg_error *err);
	int (*query_range)(void *src, mg_metrics_result *out, const char *query, int64_t start_ms,
	                   int64_t end_ms, int64_t step_ms, mg_error *err);
	void (*free)(void *src); /* by mg_metrics_free; NULL: src is not the mg_metrics' to free */
	/* The flag mg_metrics_set_cancel was given (NULL: none), for every request after.
	 * May be NULL: the flag is still checked before each query is sent. */
	void (*set_cancel)(void *src, const mg_cancel *flag);
} mg_metrics_ops;

/*
 * Opens the plan's metrics source (slo.prometheus). Reads the token from
 * token_env or token_file now, so a missing token is an error before any
 * traffic moves. Contacts nothing yet.
 */
int mg_metrics_open(mg_metrics **out, const mg_plan_slo *slo, mg_error *err);

/*
 * Opens a metrics handle over any source: ops (name, query and query_range
 * required; ops must outlive the handle) called with src. On success the
 * handle owns src (mg_metrics_free calls ops->free); on an error the caller
 * still does. mg_metrics_open is this over Prometheus; tests plug a fake.
 */
int mg_metrics_open_source(mg_metrics **out, const mg_metrics_ops *ops, void *src, mg_error *err);
void mg_metrics_free(mg_metrics *m);
const char *mg_metrics_name(const mg_metrics *m);

/*
 * Stops requests in flight as soon as *flag becomes non-zero (checked by the
 * HTTP layer's progress callback), so a signalled autopilot does not sit
 * out a slow Prometheus. NULL: never.
 */
void mg_metrics_set_cancel(mg_metrics *m, const mg_cancel *flag);

/* An instant query evaluated at at_ms (Unix ms): /api/v1/query with time. */
int mg_metrics_query(mg_metrics_result *out, mg_metrics *m, const char *query, int64_t at_ms,
                     mg_error *err);
/* A range query: /api/v1/query_range with start, end and step. */
int mg_metrics_query_range(mg_metrics_result *out, mg_metrics *m, const char *query,
                           int64_t start_ms, int64_t end_ms, int64_t step_ms, mg_error *err);

void mg_metrics_result_clear(mg_metrics_result *r);
const char *mg_metrics_type_name(mg_metrics_type t);

/* Driver constructors (lib/gates/<name>.c). */
int mg_metrics_prometheus_new(void **out, const mg_plan_slo *slo, mg_error *err);
extern const mg_metrics_ops mg_metrics_prometheus_ops;

#endif
