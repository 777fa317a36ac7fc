/* The metrics interface (metrics.h): argument checks and dispatch to the plan's source. */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

struct mg_metrics {
	const mg_metrics_ops *ops;
	void *src;
	const mg_cancel *cancel;
};

int mg_metrics_open_source(mg_metrics **out, const mg_metrics_ops *ops, void *src, mg_error *err)
{
	*out = NULL;
	if (!ops || !ops->name || !ops->query || !ops->query_range)
		return mg_error_set(err, MG_EINVALID,
		                    "metrics source without a name, query or query_range");
	mg_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return mg_error_oom(err);
	m->ops = ops;
	m->src = src;
	*out = m;
	return 0;
}

int mg_metrics_open(mg_metrics **out, const mg_plan_slo *slo, mg_error *err)
{
	*out = NULL;
	if (!slo || !slo->prometheus_url || !*slo->prometheus_url)
		return mg_error_set(err, MG_EINVALID,
		                    "no Prometheus to read the gates from: set slo.prometheus.url");
	void *src = NULL;
	int rc = mg_metrics_prometheus_new(&src, slo, err);
	if (rc)
		return rc;
	rc = mg_metrics_open_source(out, &mg_metrics_prometheus_ops, src, err);
	if (rc)
		mg_metrics_prometheus_ops.free(src);
	return rc;
}

void mg_metrics_free(mg_metrics *m)
{
	if (!m)
		return;
	if (m->ops->free && m->src)
		m->ops->free(m->src);
	free(m);
}

const char *mg_metrics_name(const mg_metrics *m)
{
	return m->ops->name;
}

void mg_metrics_set_cancel(mg_metrics *m, const mg_cancel *flag)
{
	m->cancel = flag;
	if (m->ops->set_cancel)
		m->ops->set_cancel(m->src, flag);
}

/* A raised flag stops before anything is sent: the source would only find out later. */
static int canceled(const mg_metrics *m, mg_error *err)
{
	if (m->cancel && *m->cancel)
		return mg_error_set(err, MG_ECANCELED, "%s query not sent: interrupted",
		                    m->ops->name);
	return 0;
}

int mg_metrics_query(mg_metrics_result *out, mg_metrics *m, const char *query, int64_t at_ms,
                     mg_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!query || !*query)
		return mg_error_set(err, MG_EINVALID, "empty query");
	int rc = canceled(m, err);
	if (!rc)
		rc = m->ops->query(m->src, out, query, at_ms, err);
	if (rc)
		mg_metrics_result_clear(out);
	return rc;
}

int mg_metrics_query_range(mg_metrics_result *out, mg_metrics *m, const char *query,
                           int64_t start_ms, int64_t end_ms, int64_t step_ms, mg_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!query || !*query)
		return mg_error_set(err, MG_EINVALID, "empty query");
	if (step_ms <= 0)
		return mg_error_set(err, MG_EINVALID,
		                    "range query step must be positive, not %lld ms",
		                    (long long)step_ms);
	if (end_ms < start_ms)
		return mg_error_set(err, MG_EINVALID,
		                    "range query ends (%lld) before it starts (%lld)",
		                    (long long)end_ms, (long long)start_ms);
	int rc = canceled(m, err);
	if (!rc)
		rc = m->ops->query_range(m->src, out, query, start_ms, end_ms, step_ms, err);
	if (rc)
		mg_metrics_result_clear(out);
	return rc;
}

void mg_metrics_result_clear(mg_metrics_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nseries; i++) {
		free(r->series[i].labels);
		free(r->series[i].samples);
	}
	free(r->series);
	free(r->warnings);
	memset(r, 0, sizeof(*r));
}

const char *mg_metrics_type_name(mg_metrics_type t)
{
	switch (t) {
	case MG_METRICS_VECTOR:
		return "vector";
	case MG_METRICS_SCALAR:
		return "scalar";
	case MG_METRICS_MATRIX:
		return "matrix";
	case MG_METRICS_STRING:
		return "string";
	}
	return "unknown";
}
