/*
 * lib/metrics.h: the interface in front of every metrics source, over a fake
 * one (mg_metrics_open_source): what it checks before a source is asked, what
 * it clears after a source fails, cancelling, ownership. The Prometheus
 * source itself is tested against a real Prometheus in tests/integration/.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

typedef struct {
	int queries, ranges, frees;
	const mg_cancel *cancel;
	bool fail_after_filling; /* leave a series in *out, then fail */
	int64_t at, start, end, step;
} fake_src;

static int fill(mg_metrics_result *out)
{
	out->type = MG_METRICS_VECTOR;
	out->series = calloc(1, sizeof(*out->series));
	cr_assert_not_null(out->series);
	out->nseries = 1;
	out->series[0].labels = strdup("{job=\"x\"}");
	out->series[0].samples = calloc(1, sizeof(*out->series[0].samples));
	out->series[0].nsamples = 1;
	out->series[0].samples[0].v = 42;
	out->warnings = strdup("a warning");
	return 0;
}

static int fake_query(void *src, mg_metrics_result *out, const char *query, int64_t at_ms,
                      mg_error *err)
{
	(void)query;
	fake_src *f = src;
	f->queries++;
	f->at = at_ms;
	fill(out);
	return f->fail_after_filling ? mg_error_set(err, MG_EIO, "fake: broke half-way") : 0;
}

static int fake_query_range(void *src, mg_metrics_result *out, const char *query, int64_t start_ms,
                            int64_t end_ms, int64_t step_ms, mg_error *err)
{
	(void)query;
	fake_src *f = src;
	f->ranges++;
	f->start = start_ms, f->end = end_ms, f->step = step_ms;
	fill(out);
	out->type = MG_METRICS_MATRIX;
	return f->fail_after_filling ? mg_error_set(err, MG_EIO, "fake: broke half-way") : 0;
}

static void fake_free(void *src)
{
	((fake_src *)src)->frees++;
}

static void fake_set_cancel(void *src, const mg_cancel *flag)
{
	((fake_src *)src)->cancel = flag;
}

static const mg_metrics_ops fake_ops = {.name = "fake",
                                        .query = fake_query,
                                        .query_range = fake_query_range,
                                        .free = fake_free,
                                        .set_cancel = fake_set_cancel};

static fake_src src;
static mg_metrics *m;

static void setup(void)
{
	memset(&src, 0, sizeof(src));
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_open_source(&m, &fake_ops, &src, &err), 0, "%s", err.message);
}

static void teardown(void)
{
	mg_metrics_free(m);
	m = NULL;
}

TestSuite(metrics, .init = setup, .fini = teardown);

Test(metrics, a_source_is_asked_and_its_answer_returned)
{
	cr_assert_str_eq(mg_metrics_name(m), "fake");
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "up", 1234, &err), 0, "%s", err.message);
	cr_assert_eq(src.queries, 1);
	cr_assert_eq(src.at, 1234);
	cr_assert_eq(r.nseries, 1);
	cr_assert_float_eq(r.series[0].samples[0].v, 42, 1e-12);
	mg_metrics_result_clear(&r);
	cr_assert_eq(r.nseries, 0);
	cr_assert_null(r.series);
	cr_assert_eq(mg_metrics_query_range(&r, m, "up", 1000, 5000, 1000, &err), 0, "%s",
	             err.message);
	cr_assert_eq(src.ranges, 1);
	cr_assert_eq(src.start, 1000);
	cr_assert_eq(src.end, 5000);
	cr_assert_eq(src.step, 1000);
	cr_assert_eq(r.type, MG_METRICS_MATRIX);
	mg_metrics_result_clear(&r);
}

Test(metrics, bad_arguments_never_reach_the_source)
{
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "", 0, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "empty query");
	mg_error_clear(&err);
	cr_assert_eq(mg_metrics_query(&r, m, NULL, 0, &err), MG_EINVALID);
	mg_error_clear(&err);
	cr_assert_eq(mg_metrics_query_range(&r, m, "up", 0, 10, 0, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "step must be positive"), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_eq(mg_metrics_query_range(&r, m, "up", 10, 5, 1, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "ends (5) before it starts (10)"), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_eq(src.queries + src.ranges, 0);
	cr_assert_eq(r.nseries, 0);
}

Test(metrics, what_a_failing_source_left_is_cleared)
{
	src.fail_after_filling = true;
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "up", 0, &err), MG_EIO);
	cr_assert_str_eq(err.message, "fake: broke half-way");
	mg_error_clear(&err);
	/* no series, no warnings: and nothing leaks (the ASan run says) */
	cr_assert_eq(r.nseries, 0);
	cr_assert_null(r.series);
	cr_assert_null(r.warnings);
	cr_assert_eq(mg_metrics_query_range(&r, m, "up", 0, 10, 1, &err), MG_EIO);
	mg_error_clear(&err);
	cr_assert_null(r.series);
}

Test(metrics, a_raised_flag_stops_the_query_before_it_is_sent)
{
	mg_cancel flag = 0;
	mg_metrics_set_cancel(m, &flag);
	cr_assert_eq(src.cancel, &flag, "the source is not told of the flag");
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "up", 0, &err), 0);
	mg_metrics_result_clear(&r);
	flag = 1;
	cr_assert_eq(mg_metrics_query(&r, m, "up", 0, &err), MG_ECANCELED);
	cr_assert_str_eq(err.message, "fake query not sent: interrupted");
	mg_error_clear(&err);
	cr_assert_eq(mg_metrics_query_range(&r, m, "up", 0, 10, 1, &err), MG_ECANCELED);
	mg_error_clear(&err);
	cr_assert_eq(src.queries, 1);
	cr_assert_eq(src.ranges, 0);
	mg_metrics_set_cancel(m, NULL);
	cr_assert_null(src.cancel);
}

Test(metrics, the_handle_owns_its_source)
{
	mg_metrics_free(m);
	m = NULL;
	cr_assert_eq(src.frees, 1);
	mg_metrics_free(NULL);
}

Test(metrics, a_source_without_free_or_set_cancel_is_fine)
{
	static const mg_metrics_ops bare = {
	    .name = "bare", .query = fake_query, .query_range = fake_query_range};
	fake_src s = {0};
	mg_metrics *b;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_open_source(&b, &bare, &s, &err), 0, "%s", err.message);
	mg_cancel flag = 1;
	mg_metrics_set_cancel(b, &flag);
	mg_metrics_result r;
	cr_assert_eq(mg_metrics_query(&r, b, "up", 0, &err), MG_ECANCELED);
	mg_error_clear(&err);
	mg_metrics_free(b);
	cr_assert_eq(s.frees, 0);
}

Test(metrics, an_incomplete_source_is_refused)
{
	mg_metrics *b = (mg_metrics *)&src;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_open_source(&b, NULL, &src, &err), MG_EINVALID);
	cr_assert_null(b);
	mg_error_clear(&err);
	static const mg_metrics_ops noquery = {.name = "x", .query_range = fake_query_range};
	cr_assert_eq(mg_metrics_open_source(&b, &noquery, &src, &err), MG_EINVALID);
	mg_error_clear(&err);
	static const mg_metrics_ops norange = {.name = "x", .query = fake_query};
	cr_assert_eq(mg_metrics_open_source(&b, &norange, &src, &err), MG_EINVALID);
	mg_error_clear(&err);
	static const mg_metrics_ops noname = {.query = fake_query, .query_range = fake_query_range};
	cr_assert_eq(mg_metrics_open_source(&b, &noname, &src, &err), MG_EINVALID);
	mg_error_clear(&err);
	cr_assert_eq(src.frees, 0, "a refused source is still the caller's");
}

Test(metrics, open_is_prometheus_on_top_of_open_source)
{
	mg_plan_slo slo = {.prometheus_url = "http://127.0.0.1:1", .prometheus_timeout_ms = 1000};
	mg_metrics *p;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_open(&p, &slo, &err), 0, "%s", err.message);
	cr_assert_str_eq(mg_metrics_name(p), "prometheus");
	mg_metrics_free(p);
	slo.prometheus_url = "";
	cr_assert_eq(mg_metrics_open(&p, &slo, &err), MG_EINVALID);
	cr_assert_null(p);
	cr_assert(strstr(err.message, "set slo.prometheus.url"), "%s", err.message);
	mg_error_clear(&err);
}
