/*
 * The report's RED series: the plan's preset (slo.red) queried per side as
 * range queries over the period (mg_promql_red_sides, the gates' selectors),
 * on one grid for every chart. Nothing here is an error: a plan without
 * slo.red, a missing token or a Prometheus that does not answer leaves the
 * report without metrics and a note that says why.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "promql.h"
#include "secret.h"
#include "str.h"

/* The grid: at most this many intervals over the period, none shorter than a second. */
#define GRID_POINTS 400
#define GRID_MIN_MS 1000

static void note(mg_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(mg_report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = mg_str_vprintf(fmt, ap);
	va_end(ap);
	free(r->metrics_note);
	r->metrics_note = s ? mg_scrub_dup(s) : NULL;
	free(s);
}

/* Every sample of res added into v (sum) or kept as the largest (max), on the grid. */
static void on_grid(double *v, size_t n, const mg_metrics_result *res, int64_t start, int64_t step,
                    bool max)
{
	for (size_t s = 0; s < res->nseries; s++)
		for (size_t k = 0; k < res->series[s].nsamples; k++) {
			const mg_metrics_sample *x = &res->series[s].samples[k];
			if (x->t_ms < start || isnan(x->v) || isinf(x->v))
				continue;
			size_t i = (size_t)((x->t_ms - start + step / 2) / step);
			if (i >= n)
				continue;
			if (isnan(v[i]))
				v[i] = x->v;
			else
				v[i] = max ? fmax(v[i], x->v) : v[i] + x->v;
		}
}

static double *grid_new(size_t n)
{
	double *v = malloc(n * sizeof(*v));
	for (size_t i = 0; v && i < n; i++)
		v[i] = NAN;
	return v;
}

/* One query over the grid into a new array; 0, or the query's error. */
static int fetch(double **out, mg_report *r, mg_metrics *m, const char *q, size_t n, bool max,
                 mg_error *err)
{
	mg_metrics_result res;
	int rc = mg_metrics_query_range(
	    &res, m, q, r->since_ms, r->since_ms + (int64_t)(n - 1) * r->step_ms, r->step_ms, err);
	if (rc)
		return rc;
	*out = grid_new(n);
	if (!*out) {
		mg_metrics_result_clear(&res);
		return mg_error_oom(err);
	}
	on_grid(*out, n, &res, r->since_ms, r->step_ms, max);
	mg_metrics_result_clear(&res);
	return 0;
}

static rp_series *add_series(mg_report *r, const char *metric, const char *side, const char *unit,
                             double *v, size_t n, char *queries)
{
	rp_series *a = realloc(r->series, (r->nseries + 1) * sizeof(*a));
	if (!a) {
		free(v);
		free(queries);
		return NULL;
	}
	r->series = a;
	rp_series *s = &a[r->nseries++];
	*s = (rp_series){
	    .metric = metric, .side = side, .unit = unit, .queries = queries, .v = v, .n = n};
	for (size_t i = 0; v && i < n; i++)
		s->any |= !isnan(v[i]);
	return s;
}

/* Each side's requests, errors and latency; the derived series: rates, ratios, the share. */
static int query_sides(mg_report *r, mg_metrics *m, const mg_red_side *sides, size_t nsides,
                       size_t n, mg_error *err)
{
	double *req[2] = {NULL, NULL}, *errs[2] = {NULL, NULL}, *lat[2] = {NULL, NULL};
	int rc = 0;
	for (size_t i = 0; i < nsides && !rc; i++) {
		rc = fetch(&req[i], r, m, sides[i].requests, n, false, err);
		if (!rc)
			rc = fetch(&errs[i], r, m, sides[i].errors, n, false, err);
		if (!rc)
			rc = fetch(&lat[i], r, m, sides[i].latency, n, true, err);
	}
	double wsec = (double)r->window_ms / 1000.0;
	for (size_t i = 0; i < nsides && !rc; i++) {
		double *rate = grid_new(n), *ratio = grid_new(n);
		if (!rate || !ratio) {
			free(rate);
			free(ratio);
			rc = mg_error_oom(err);
			break;
		}
		for (size_t k = 0; k < n; k++) {
			rate[k] = req[i][k] / wsec;
			/* no request, no rate: a gap, not 0% */
			if (!isnan(req[i][k]) && req[i][k] > 0)
				ratio[k] = (isnan(errs[i][k]) ? 0 : errs[i][k]) / req[i][k];
		}
		const char *side = sides[i].side;
		if (!add_series(r, "requests", side, "per_second", rate, n,
		                mg_str_printf("%s", sides[i].requests)) ||
		    !add_series(r, "error_rate", side, "ratio", ratio, n,
		                mg_str_printf("%s; %s", sides[i].errors, sides[i].requests)) ||
		    !add_series(r, "latency", side, "seconds", lat[i], n,
		                mg_str_printf("%s", sides[i].latency)))
			rc = mg_error_oom(err);
		lat[i] = NULL; /* the series owns it (or freed it) */
	}
	/* the share Prometheus saw: the cluster's requests among both sides' */
	if (!rc && nsides == 2) {
		double *share = grid_new(n);
		if (!share) {
			rc = mg_error_oom(err);
		} else {
			for (size_t k = 0; k < n; k++) {
				double c = req[0][k], v = req[1][k];
				double sum = (isnan(c) ? 0 : c) + (isnan(v) ? 0 : v);
				if (sum > 0)
					share[k] = 100.0 * (isnan(c) ? 0 : c) / sum;
			}
			if (!add_series(
			        r, "share", "cluster", "percent", share, n,
			        mg_str_printf("%s; %s", sides[0].requests, sides[1].requests)))
				rc = mg_error_oom(err);
		}
	}
	for (size_t i = 0; i < 2; i++) {
		free(req[i]);
		free(errs[i]);
		free(lat[i]);
	}
	return rc;
}

void mg_report_query_metrics(mg_report *r, const mg_plan *plan, mg_metrics *given,
                             const mg_cancel *cancel)
{
	const mg_plan_slo *slo = mg_plan_slo_section(plan);
	if (!slo) {
		note(r, "the plan has no slo section: traffic and verdicts from the journal only");
		return;
	}
	if (!slo->red) {
		note(r, "the plan's slo has no red preset to chart: traffic and verdicts from the "
		        "journal only");
		return;
	}
	const mg_plan_red *red = slo->red;
	if (red->max_error_rate >= 0)
		r->max_error_rate = red->max_error_rate;
	if (red->max_latency_ms >= 0)
		r->max_latency_s = (double)red->max_latency_ms / 1000.0;
	if (red->source == MG_RED_INGRESS_NGINX)
		r->quantile = red->max_latency_quantile;
	/* (the plan refuses a URL with credentials in it) */
	r->metrics_source =
	    mg_str_printf("prometheus %s", slo->prometheus_url ? slo->prometheus_url : "");

	/*
	 * The grid: whole seconds, at most GRID_POINTS intervals. Each point counts the requests
	 * of the window before it: at least a grid step, so that no request falls between two
	 * points, and otherwise slo.window, but no more than 4 x slo.interval, a span the plan's
	 * author chose to hold several scrapes (gates are not evaluated more often than
	 * Prometheus scrapes), so a short run is not smoothed away.
	 */
	int64_t span = r->until_ms - r->since_ms;
	int64_t step = (span + GRID_POINTS - 1) / GRID_POINTS;
	step = (step + GRID_MIN_MS - 1) / GRID_MIN_MS * GRID_MIN_MS;
	if (step < GRID_MIN_MS)
		step = GRID_MIN_MS;
	r->step_ms = step;
	int64_t w = slo->window_ms < 4 * slo->interval_ms ? slo->window_ms : 4 * slo->interval_ms;
	r->window_ms = w > step ? w : step;
	size_t n = (size_t)(span / step) + 1;

	mg_error err = MG_ERROR_INIT;
	mg_metrics *m = given;
	int rc = 0;
	if (!m && (rc = mg_metrics_open(&m, slo, &err))) {
		note(r, "Prometheus not queried: %s; traffic and verdicts from the journal only",
		     err.message);
		mg_error_clear(&err);
		return;
	}
	mg_metrics_set_cancel(m, cancel);
	mg_red_side *sides = NULL;
	size_t nsides = 0;
	rc = mg_promql_red_sides(&sides, &nsides, red, r->window_ms, &err);
	if (!rc)
		rc = query_sides(r, m, sides, nsides, n, &err);
	mg_promql_red_sides_free(sides, nsides);
	if (m != given)
		mg_metrics_free(m);
	if (rc) {
		/* all or nothing: charts from a Prometheus that answered half would mislead */
		for (size_t i = 0; i < r->nseries; i++) {
			free(r->series[i].queries);
			free(r->series[i].v);
		}
		free(r->series);
		r->series = NULL;
		r->nseries = 0;
		note(r, "%s did not answer: %s; traffic and verdicts from the journal only",
		     r->metrics_source ? r->metrics_source : "Prometheus", err.message);
		mg_error_clear(&err);
		return;
	}
	r->metrics_ok = true;
}
