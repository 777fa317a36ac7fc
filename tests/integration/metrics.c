/*
 * The Prometheus metrics source (lib/metrics.h) against a real Prometheus
 * over fixed OpenMetrics data (tu_prometheus_start), queried at fixed times so
 * every value is known, and against tests/servers/promfault.py for what a
 * real Prometheus cannot be made to do (a proxy wanting a token, 503s, a slow
 * answer, a page that is not the API). Everything goes through lib/metrics.h,
 * as the gates use it.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "log.h"
#include "metrics.h"
#include "plan.h"

#define TOKEN     "prom-Tk9-integration-SECRET-77ab"
#define TOKEN_ENV "MG_TEST_PROM_TOKEN"
/* 2026-01-01T00:00:00Z, the first sample of the fixture */
#define T0 1767225600000LL

/*
 * Two rooms sampled every minute for four minutes; room b stops after two.
 * The label with quotes and a backslash checks how labels are rendered.
 */
static const char fixture[] = "# HELP temperature_celsius Room temperature.\n"
                              "# TYPE temperature_celsius gauge\n"
                              "temperature_celsius{site=\"x\",room=\"a\"} 21.5 1767225600\n"
                              "temperature_celsius{site=\"x\",room=\"a\"} 22.5 1767225660\n"
                              "temperature_celsius{site=\"x\",room=\"a\"} 23.5 1767225720\n"
                              "temperature_celsius{site=\"x\",room=\"a\"} 24.5 1767225780\n"
                              "temperature_celsius{site=\"x\",room=\"b\"} 19 1767225600\n"
                              "temperature_celsius{site=\"x\",room=\"b\"} 18 1767225660\n"
                              "# HELP build_info Build.\n"
                              "# TYPE build_info gauge\n"
                              "build_info{version=\"say \\\"hi\\\" \\\\o/\"} 1 1767225600\n"
                              "# EOF\n";

static char dir[256];
static tu_prometheus prom;
static pid_t fault_pid = -1;
static int fault_in = -1, fault_port;
static char url[128];
static mg_plan_slo slo;
static mg_metrics *m;

static void stop_fault(void)
{
	if (fault_in >= 0)
		close(fault_in);
	if (fault_pid > 0) {
		kill(fault_pid, SIGTERM);
		waitpid(fault_pid, NULL, 0);
	}
	fault_in = fault_pid = -1;
}

static void teardown(void)
{
	mg_metrics_free(m);
	m = NULL;
	tu_log_capture_stop();
	tu_prometheus_stop(&prom);
	stop_fault();
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

/* For setup: Criterion skips .fini when .init fails, so clean up before failing. */
#define require(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			teardown();                                                                \
			cr_assert_fail(__VA_ARGS__);                                               \
		}                                                                                  \
	} while (0)

static void setup_common(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "metrics");
	setenv("NO_PROXY", "127.0.0.1", 1);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("ALL_PROXY");
	setenv(TOKEN_ENV, TOKEN, 1);
	tu_log_capture(MG_LOG_DEBUG); /* every level: none may hold the token */
	slo = (mg_plan_slo){.prometheus_url = url, .prometheus_timeout_ms = 3000};
}

static void setup_prometheus(void)
{
	setup_common();
	char why[4096];
	require(tu_prometheus_start(&prom, dir, fixture, why, sizeof(why)), "%s", why);
	snprintf(url, sizeof(url), "%s", prom.url);
}

static void setup_fault(void)
{
	setup_common();
	url[0] = '\0';
}

/* Starts promfault.py with these options (NULL-terminated) and points slo at it. */
#define start_fault(...)                                                                           \
	do {                                                                                       \
		fault_pid = tu_promfault_start(&fault_port, &fault_in, __VA_ARGS__);               \
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", fault_port);                     \
	} while (0)

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
	char **buf = ud;
	size_t old = *buf ? strlen(*buf) : 0;
	*buf = realloc(*buf, old + size * n + 1);
	cr_assert_not_null(*buf);
	memcpy(*buf + old, data, size * n);
	(*buf)[old + size * n] = '\0';
	return size * n;
}

/* promfault's request log, read with plain libcurl rather than the code under test. */
static json_t *fault_log(void)
{
	char u[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/log", fault_port);
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	char *text = NULL;
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &text);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	cr_assert_eq(rc, CURLE_OK, "GET /log: %s", curl_easy_strerror(rc));
	json_t *doc = json_loads(text ? text : "", 0, NULL);
	free(text);
	cr_assert(json_is_array(doc), "/log is not a JSON list");
	return doc;
}

static const char *entry_str(json_t *log, size_t i, const char *key)
{
	const char *s = json_string_value(json_object_get(json_array_get(log, i), key));
	cr_assert_not_null(s, "log entry %zu has no %s", i, key);
	return s;
}

static void open_ok(void)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_open(&m, &slo, &err), 0, "%s", err.message);
	cr_assert_str_eq(mg_metrics_name(m), "prometheus");
}

/* The secret appears nowhere: not in the message, not in anything logged. */
static void no_token(const mg_error *err)
{
	cr_assert_null(strstr(err->message, TOKEN), "token in message: %s", err->message);
	cr_assert_null(strstr(tu_log_text(), TOKEN), "token in the log: %s", tu_log_text());
}

/* Queries at t_ms, expects failure with code and every one of the NULL-terminated parts. */
static void query_fails(const char *query, int code, const char *part, ...)
{
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_metrics_query(&r, m, query, T0 + 20000, &err);
	cr_assert_eq(rc, code, "rc %d (%s), not %d", rc, err.message, code);
	cr_assert_eq(r.nseries, 0);
	cr_assert_null(r.series);
	va_list ap;
	va_start(ap, part);
	for (const char *p = part; p; p = va_arg(ap, const char *))
		cr_assert(strstr(err.message, p), "\"%s\" not in: %s", p, err.message);
	va_end(ap);
	no_token(&err);
}

static double scalar_at(const char *query, int64_t at_ms)
{
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, query, at_ms, &err), 0, "%s: %s", query, err.message);
	cr_assert_eq(r.type, MG_METRICS_SCALAR, "%s: %s", query, mg_metrics_type_name(r.type));
	cr_assert_eq(r.nseries, 1);
	cr_assert_str_eq(r.series[0].labels, "{}");
	cr_assert_eq(r.series[0].nsamples, 1);
	cr_assert_eq(r.series[0].samples[0].t_ms, at_ms);
	double v = r.series[0].samples[0].v;
	mg_metrics_result_clear(&r);
	return v;
}

/* promfault answers every query with up{job="promfault"} = 1 at the time asked. */
static void fault_answers(void)
{
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "up", T0, &err), 0, "%s", err.message);
	cr_assert_eq(r.type, MG_METRICS_VECTOR);
	cr_assert_eq(r.nseries, 1);
	cr_assert_eq(r.series[0].samples[0].t_ms, T0);
	cr_assert_float_eq(r.series[0].samples[0].v, 1, 1e-9);
	mg_metrics_result_clear(&r);
}

TestSuite(metrics, .init = setup_prometheus, .fini = teardown, .timeout = 60);

Test(metrics, vector_at_a_fixed_time)
{
	open_ok();
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	/* 90 s after T0: the sample of T0 + 60 s is the latest within the lookback */
	cr_assert_eq(mg_metrics_query(&r, m, "temperature_celsius{room=\"a\"}", T0 + 90000, &err),
	             0, "%s", err.message);
	cr_assert_eq(r.type, MG_METRICS_VECTOR);
	cr_assert_str_eq(mg_metrics_type_name(r.type), "vector");
	cr_assert_eq(r.nseries, 1);
	cr_assert_str_eq(r.series[0].labels,
	                 "{__name__=\"temperature_celsius\",room=\"a\",site=\"x\"}");
	cr_assert_eq(r.series[0].nsamples, 1);
	cr_assert_eq(r.series[0].samples[0].t_ms, T0 + 90000);
	cr_assert_float_eq(r.series[0].samples[0].v, 22.5, 1e-9);
	cr_assert_null(r.warnings);
	mg_metrics_result_clear(&r);
	cr_assert_eq(r.nseries, 0);
	cr_assert_null(r.series);

	/* milliseconds reach Prometheus: 1 ms before T0 + 120 s is still the older sample */
	cr_assert_eq(
	    mg_metrics_query(&r, m, "sum by (site) (temperature_celsius)", T0 + 119999, &err), 0,
	    "%s", err.message);
	cr_assert_eq(r.nseries, 1);
	cr_assert_str_eq(r.series[0].labels, "{site=\"x\"}");
	cr_assert_eq(r.series[0].samples[0].t_ms, T0 + 119999);
	cr_assert_float_eq(r.series[0].samples[0].v, 22.5 + 18, 1e-9);
	mg_metrics_result_clear(&r);
	cr_assert_eq(
	    mg_metrics_query(&r, m, "sum by (site) (temperature_celsius)", T0 + 120000, &err), 0,
	    "%s", err.message);
	cr_assert_float_eq(r.series[0].samples[0].v, 23.5 + 18, 1e-9);
	mg_metrics_result_clear(&r);
}

Test(metrics, series_and_labels_as_promql_writes_them)
{
	open_ok();
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "temperature_celsius", T0, &err), 0, "%s",
	             err.message);
	cr_assert_eq(r.nseries, 2);
	const char *a = "{__name__=\"temperature_celsius\",room=\"a\",site=\"x\"}";
	const char *b = "{__name__=\"temperature_celsius\",room=\"b\",site=\"x\"}";
	int ia = !strcmp(r.series[0].labels, a) ? 0 : 1;
	cr_assert_str_eq(r.series[ia].labels, a);
	cr_assert_str_eq(r.series[1 - ia].labels, b);
	cr_assert_float_eq(r.series[ia].samples[0].v, 21.5, 1e-9);
	cr_assert_float_eq(r.series[1 - ia].samples[0].v, 19, 1e-9);
	mg_metrics_result_clear(&r);

	/* quotes and backslashes escaped */
	cr_assert_eq(mg_metrics_query(&r, m, "label_replace(build_info, \"a\", \"z\", \"\", \"\")",
	                              T0, &err),
	             0, "%s", err.message);
	cr_assert_eq(r.nseries, 1);
	cr_assert_str_eq(r.series[0].labels,
	                 "{__name__=\"build_info\",a=\"z\",version=\"say \\\"hi\\\" \\\\o/\"}");
	mg_metrics_result_clear(&r);
}

Test(metrics, scalars)
{
	open_ok();
	/* "+" must arrive as a plus, not as a space */
	cr_assert_float_eq(scalar_at("1+1", T0), 2, 1e-9);
	cr_assert_float_eq(scalar_at("scalar(sum(temperature_celsius{room=~\"a|b\"}))", T0 + 60000),
	                   22.5 + 18, 1e-9);
	/* a time with milliseconds comes back as the same ms */
	cr_assert_float_eq(scalar_at("time()", T0 + 1234), (double)(T0 + 1234) / 1000.0, 1e-6);
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "\"a string\"", T0, &err), 0, "%s", err.message);
	cr_assert_eq(r.type, MG_METRICS_STRING);
	cr_assert_eq(r.nseries, 1);
	cr_assert(isnan(r.series[0].samples[0].v));
	mg_metrics_result_clear(&r);
}

Test(metrics, nan_and_infinities)
{
	open_ok();
	cr_assert(isnan(scalar_at("0/0", T0)));
	double inf = scalar_at("1/0", T0);
	cr_assert(isinf(inf) && inf > 0, "1/0 gave %g", inf);
	double ninf = scalar_at("-1/0", T0);
	cr_assert(isinf(ninf) && ninf < 0, "-1/0 gave %g", ninf);
	/* the same in a vector */
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "temperature_celsius{room=\"a\"} / 0", T0, &err), 0,
	             "%s", err.message);
	cr_assert_eq(r.nseries, 1);
	cr_assert_str_eq(r.series[0].labels, "{room=\"a\",site=\"x\"}");
	cr_assert(isinf(r.series[0].samples[0].v) && r.series[0].samples[0].v > 0);
	mg_metrics_result_clear(&r);
}

Test(metrics, matrix_from_a_range_query)
{
	open_ok();
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query_range(&r, m, "temperature_celsius{room=\"a\"}", T0,
	                                    T0 + 180000, 30000, &err),
	             0, "%s", err.message);
	cr_assert_eq(r.type, MG_METRICS_MATRIX);
	cr_assert_str_eq(mg_metrics_type_name(r.type), "matrix");
	cr_assert_eq(r.nseries, 1);
	cr_assert_eq(r.series[0].nsamples, 7);
	double want[] = {21.5, 21.5, 22.5, 22.5, 23.5, 23.5, 24.5};
	for (size_t i = 0; i < 7; i++) {
		cr_assert_eq(r.series[0].samples[i].t_ms, T0 + (int64_t)i * 30000);
		cr_assert_float_eq(r.series[0].samples[i].v, want[i], 1e-9, "sample %zu", i);
	}
	mg_metrics_result_clear(&r);

	/* a step with milliseconds; each room is seen until 5 min (the lookback) after its last
	 * sample, and no step lands on that edge */
	cr_assert_eq(
	    mg_metrics_query_range(&r, m, "temperature_celsius", T0, T0 + 600000, 7250, &err), 0,
	    "%s", err.message);
	cr_assert_eq(r.nseries, 2);
	for (size_t s = 0; s < 2; s++) {
		bool is_a = strstr(r.series[s].labels, "room=\"a\"") != NULL;
		/* a: from T0 to its last sample (T0 + 180 s) + 300 s; b: to T0 + 60 s + 300 s */
		size_t n = is_a ? 480000 / 7250 + 1 : 360000 / 7250 + 1;
		cr_assert_eq(r.series[s].nsamples, n, "%s: %zu samples", r.series[s].labels,
		             r.series[s].nsamples);
		cr_assert_eq(r.series[s].samples[1].t_ms, T0 + 7250);
	}
	mg_metrics_result_clear(&r);
}

Test(metrics, no_series_is_success)
{
	open_ok();
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "temperature_celsius{room=\"nowhere\"}", T0, &err), 0,
	             "%s", err.message);
	cr_assert_eq(r.type, MG_METRICS_VECTOR);
	cr_assert_eq(r.nseries, 0);
	mg_metrics_result_clear(&r);
	/* before the data begin */
	cr_assert_eq(mg_metrics_query(&r, m, "temperature_celsius", T0 - 1000, &err), 0, "%s",
	             err.message);
	cr_assert_eq(r.nseries, 0);
	mg_metrics_result_clear(&r);
	cr_assert_eq(mg_metrics_query_range(&r, m, "nothing_here", T0, T0 + 60000, 15000, &err), 0,
	             "%s", err.message);
	cr_assert_eq(r.type, MG_METRICS_MATRIX);
	cr_assert_eq(r.nseries, 0);
	mg_metrics_result_clear(&r);
}

Test(metrics, a_bad_query_quotes_prometheus)
{
	open_ok();
	query_fails("sum(", MG_ERROR,
	            "Prometheus rejected the query: bad_data: invalid parameter \"query\": 1:5: "
	            "parse error: unclosed left parenthesis",
	            NULL);
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	/* a range too fine for Prometheus: its own limit, its own words */
	cr_assert_eq(mg_metrics_query_range(&r, m, "1", T0, T0 + 86400000, 1, &err), MG_ERROR);
	cr_assert(strstr(err.message, "Prometheus rejected the query: bad_data: exceeded maximum "
	                              "resolution of 11,000 points"),
	          "%s", err.message);
	/* caught before anything is sent */
	cr_assert_eq(mg_metrics_query_range(&r, m, "1", T0 + 1000, T0, 1000, &err), MG_EINVALID);
	cr_assert_eq(mg_metrics_query_range(&r, m, "1", T0, T0 + 1000, 0, &err), MG_EINVALID);
	cr_assert_eq(mg_metrics_query(&r, m, "", T0, &err), MG_EINVALID);
}

Test(metrics, trailing_slash_and_path_prefix)
{
	char base[160];
	snprintf(base, sizeof(base), "%s/", prom.url);
	slo.prometheus_url = base;
	open_ok();
	cr_assert_float_eq(scalar_at("2*3", T0), 6, 1e-9);
	mg_metrics_free(m);
	m = NULL;

	/* a prefix this Prometheus does not serve: the request went to <prefix>/api/v1/query */
	snprintf(base, sizeof(base), "%s/prom//", prom.url);
	open_ok();
	char want[512];
	snprintf(want, sizeof(want),
	         "no Prometheus API at %s/prom (HTTP 404 for %s/prom/api/v1/query)", prom.url,
	         prom.url);
	query_fails("up", MG_ERROR, want, "check slo.prometheus.url", NULL);
}

TestSuite(metrics_faults, .init = setup_fault, .fini = teardown, .timeout = 60);

Test(metrics_faults, nothing_listening_is_cannot_reach_quickly)
{
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", tu_free_port());
	open_ok();
	int64_t t = tu_now_ms();
	char want[512];
	snprintf(want, sizeof(want), "cannot reach %s/api/v1/query: ", url);
	query_fails("sum(rate(x[5m]))", MG_ERROR, want, "3 attempts", "slo.prometheus.url", NULL);
	int64_t took = tu_now_ms() - t;
	cr_assert_lt(took, 2000, "took %lld ms", (long long)took);
}

Test(metrics_faults, the_query_and_times_arrive_exactly)
{
	start_fault("--warning", "query used 3 GB", "--warning", "partial\nresult", NULL);
	open_ok();
	const char *q = "sum(rate(x{a=\"b c\",d=~\"e+|f\"}[5m])) / 1 > 0 & ~ % # ?";
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, q, T0 + 20000, &err), 0, "%s", err.message);
	cr_assert_eq(r.nseries, 1);
	/* sorted, though promfault sends them in another order */
	cr_assert_str_eq(r.series[0].labels,
	                 "{__name__=\"up\",instance=\"fault:9\",job=\"promfault\"}");
	cr_assert_eq(r.series[0].samples[0].t_ms, T0 + 20000);
	cr_assert_float_eq(r.series[0].samples[0].v, 1, 1e-9);
	cr_assert_str_eq(r.warnings, "query used 3 GB; partial result");
	mg_metrics_result_clear(&r);
	cr_assert_eq(mg_metrics_query_range(&r, m, q, T0 - 1500, T0 + 3000, 1500, &err), 0, "%s",
	             err.message);
	cr_assert_eq(r.series[0].nsamples, 4);
	cr_assert_eq(r.series[0].samples[0].t_ms, T0 - 1500);
	cr_assert_eq(r.series[0].samples[3].t_ms, T0 + 3000);
	mg_metrics_result_clear(&r);

	json_t *log = fault_log();
	cr_assert_eq(json_array_size(log), 2);
	cr_assert_str_eq(entry_str(log, 0, "path"), "/api/v1/query");
	const char *raw = entry_str(log, 0, "raw");
	cr_assert(strstr(raw, "&time=1767225620.000") && !strchr(strchr(raw, '=') + 1, '+'), "%s",
	          raw);
	cr_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_array_get(log, 0), "params"), "query")),
	                 q);
	cr_assert_str_eq(entry_str(log, 1, "path"), "/api/v1/query_range");
	cr_assert(
	    strstr(entry_str(log, 1, "raw"), "&start=1767225598.500&end=1767225603.000&step=1.500"),
	    "%s", entry_str(log, 1, "raw"));
	cr_assert_str_eq(entry_str(log, 0, "auth"), "missing"); /* no token configured */
	json_decref(log);
}

Test(metrics_faults, retries_503_then_succeeds)
{
	start_fault("--fail", "2", NULL);
	open_ok();
	fault_answers();
	json_t *log = fault_log();
	cr_assert_eq(json_array_size(log), 3);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(json_integer_value(json_object_get(json_array_get(log, i), "status")),
		             i < 2 ? 503 : 200);
	json_decref(log);
}

Test(metrics_faults, keeps_failing_is_reported_with_the_status)
{
	start_fault("--fail", "100", NULL);
	open_ok();
	char want[512];
	snprintf(want, sizeof(want), "Prometheus at %s is failing: HTTP 503 after 3 attempts", url);
	query_fails("up", MG_ERROR, want, NULL);
	json_t *log = fault_log();
	cr_assert_eq(json_array_size(log), 3);
	json_decref(log);
}

Test(metrics_faults, the_token_is_sent)
{
	start_fault("--token", TOKEN, NULL);
	slo.token_env = TOKEN_ENV;
	open_ok();
	fault_answers();
	json_t *log = fault_log();
	cr_assert_eq(json_array_size(log), 1);
	cr_assert_str_eq(entry_str(log, 0, "auth"), "valid");
	json_decref(log);
	cr_assert_null(strstr(tu_log_text(), TOKEN), "token in the log: %s", tu_log_text());
}

Test(metrics_faults, a_refused_token_is_named_never_shown)
{
	start_fault("--token", "some-other-token", NULL);
	slo.token_env = TOKEN_ENV;
	open_ok();
	char want[512];
	snprintf(want, sizeof(want),
	         "Prometheus at %s refused the token from $" TOKEN_ENV " (HTTP 401)", url);
	query_fails("up", MG_ERROR, want, NULL);
	json_t *log = fault_log();
	cr_assert_eq(json_array_size(log), 1, "a 401 is not retried");
	cr_assert_str_eq(entry_str(log, 0, "auth"), "invalid");
	json_decref(log);

	/* from a file, the file is named */
	mg_metrics_free(m);
	m = NULL;
	char file[300];
	snprintf(file, sizeof(file), "%s/token", dir);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fprintf(f, "  %s  \n", TOKEN);
	fclose(f);
	slo.token_env = NULL;
	slo.token_file = file;
	open_ok();
	snprintf(want, sizeof(want), "refused the token from %s (HTTP 401)", file);
	query_fails("up", MG_ERROR, want, NULL);

	/* and with none configured, the message says how to give one */
	mg_metrics_free(m);
	m = NULL;
	slo.token_file = NULL;
	open_ok();
	query_fails("up", MG_ERROR, "wants a token (HTTP 401)", "slo.prometheus.token_env", NULL);
}

Test(metrics_faults, a_token_env_that_is_missing_or_empty)
{
	mg_error err = MG_ERROR_INIT;
	snprintf(url, sizeof(url), "http://127.0.0.1:9");
	slo.token_env = "MG_TEST_PROM_NOT_SET";
	unsetenv("MG_TEST_PROM_NOT_SET");
	cr_assert_eq(mg_metrics_open(&m, &slo, &err), MG_EINVALID);
	cr_assert_null(m);
	cr_assert(strstr(err.message, "MG_TEST_PROM_NOT_SET is not set"), "%s", err.message);
	cr_assert(strstr(err.message, "slo.prometheus.token_env"), "%s", err.message);
	setenv("MG_TEST_PROM_NOT_SET", " \n", 1);
	cr_assert_eq(mg_metrics_open(&m, &slo, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "MG_TEST_PROM_NOT_SET is empty"), "%s", err.message);
	cr_assert(strstr(err.message, "slo.prometheus.token_env"), "%s", err.message);
	setenv("MG_TEST_PROM_NOT_SET", "two words", 1);
	cr_assert_eq(mg_metrics_open(&m, &slo, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "$MG_TEST_PROM_NOT_SET contains spaces"), "%s", err.message);
	cr_assert_null(strstr(err.message, "two words"), "%s", err.message);
	slo.token_env = NULL;
	slo.token_file = "/nonexistent/token";
	cr_assert_eq(mg_metrics_open(&m, &slo, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "slo.prometheus.token_file"), "%s", err.message);
	cr_assert(strstr(err.message, "/nonexistent/token"), "%s", err.message);
}

Test(metrics_faults, a_web_page_is_not_the_api)
{
	start_fault("--html", NULL);
	open_ok();
	char want[512];
	snprintf(want, sizeof(want),
	         "%s/api/v1/query is not the Prometheus API (content type text/html; "
	         "charset=utf-8, not JSON): check slo.prometheus.url",
	         url);
	query_fails("up", MG_ERROR, want, NULL);
}

Test(metrics_faults, not_found_says_check_the_url)
{
	start_fault("--not-found", NULL);
	open_ok();
	char want[512];
	snprintf(want, sizeof(want),
	         "no Prometheus API at %s (HTTP 404 for %s/api/v1/query): check "
	         "slo.prometheus.url",
	         url, url);
	query_fails("up", MG_ERROR, want, NULL);
}

Test(metrics_faults, a_slow_answer_times_out)
{
	start_fault("--slow", "3000", NULL);
	slo.prometheus_timeout_ms = 400;
	open_ok();
	int64_t t = tu_now_ms();
	char want[512];
	snprintf(want, sizeof(want), "no answer from %s/api/v1/query within", url);
	query_fails("up", MG_ERROR, want, "slo.prometheus.timeout", NULL);
	int64_t took = tu_now_ms() - t;
	/* two attempts at most within the 800 ms deadline, and no more */
	cr_assert_geq(took, 400, "took %lld ms", (long long)took);
	cr_assert_lt(took, 1500, "took %lld ms", (long long)took);
}

static volatile int cancel_flag;

static void *raise_later(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 300 * 1000000L};
	nanosleep(&ts, NULL);
	cancel_flag = 1;
	return NULL;
}

Test(metrics_faults, cancel_stops_a_slow_request)
{
	start_fault("--slow", "8000", NULL);
	slo.prometheus_timeout_ms = 10000;
	open_ok();
	cancel_flag = 0;
	mg_metrics_set_cancel(m, &cancel_flag);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, raise_later, NULL), 0);
	int64_t t = tu_now_ms();
	query_fails("up", MG_ECANCELED, "interrupted", NULL);
	int64_t took = tu_now_ms() - t;
	pthread_join(th, NULL);
	cr_assert_geq(took, 250, "took %lld ms", (long long)took);
	cr_assert_lt(took, 800, "took %lld ms", (long long)took);
	json_t *log = fault_log();
	cr_assert_eq(json_array_size(log), 1, "a canceled request is not retried");
	json_decref(log);

	/* still raised: nothing more is sent */
	query_fails("up", MG_ECANCELED, "interrupted", NULL);
	log = fault_log();
	cr_assert_eq(json_array_size(log), 1);
	json_decref(log);

	/* lowered again, or no flag at all: queries run */
	mg_metrics_set_cancel(m, NULL);
	stop_fault();
	start_fault(NULL);
	mg_metrics_free(m);
	m = NULL;
	slo.prometheus_timeout_ms = 3000;
	open_ok();
	mg_metrics_set_cancel(m, &cancel_flag);
	cancel_flag = 0;
	fault_answers();
}

Test(metrics_faults, tls_is_verified_and_ca_file_trusts_a_private_ca)
{
	char why[2048], cert[300], key[300], ca[300];
	cr_assert(tu_make_test_certs(dir, why, sizeof(why)), "%s", why);
	snprintf(cert, sizeof(cert), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	start_fault("--tls", cert, key, NULL);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", fault_port);
	/* the system's CAs do not know the test CA: refused, and said how to fix it */
	open_ok();
	query_fails("up", MG_ERROR, "TLS certificate of 127.0.0.1 not trusted", "ca_file", NULL);
	mg_metrics_free(m);
	m = NULL;
	slo.ca_file = ca;
	open_ok();
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "up", T0 + 20000, &err), 0, "%s", err.message);
	mg_metrics_result_clear(&r);
	mg_error_clear(&err);
}

/* The whole token, or its first or last half, in text (a cut before scrubbing leaves one). */
static bool leaks(const char *text, const char *tok)
{
	size_t n = strlen(tok), h = n / 2;
	char first[64], last[64];
	snprintf(first, sizeof(first), "%.*s", (int)h, tok);
	snprintf(last, sizeof(last), "%s", tok + n - h);
	return text && (strstr(text, first) || strstr(text, last));
}

/* A proxy quoting the token back in the error (longer than any cut, the token across each). */
Test(metrics_faults, an_echoed_token_in_the_error_is_masked)
{
	start_fault("--token", TOKEN, "--echo", "error", NULL);
	slo.token_env = TOKEN_ENV;
	open_ok();
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_neq(mg_metrics_query(&r, m, "up", T0 + 20000, &err), 0);
	cr_assert(!leaks(err.message, TOKEN), "%s", err.message);
	cr_assert(strstr(err.message, "Authorization: [redacted]"), "%s", err.message);
	cr_assert(!leaks(tu_log_text(), TOKEN), "%s", tu_log_text());
}

/* ... and in a warning of a successful answer. */
Test(metrics_faults, an_echoed_token_in_a_warning_is_masked)
{
	start_fault("--token", TOKEN, "--echo", "warning", NULL);
	slo.token_env = TOKEN_ENV;
	open_ok();
	mg_metrics_result r;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_metrics_query(&r, m, "up", T0 + 20000, &err), 0, "%s", err.message);
	cr_assert_not_null(r.warnings);
	cr_assert(!leaks(r.warnings, TOKEN), "%s", r.warnings);
	mg_metrics_result_clear(&r);
	cr_assert(!leaks(tu_log_text(), TOKEN), "%s", tu_log_text());
}
