/*
 * lib/promql.h: PromQL durations, ${window}/${interval} expansion and the
 * RED presets, as text. Whether Prometheus accepts them is tested against a
 * real one in tests/integration/.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "promql.h"

static const char *dur(int64_t ms)
{
	static char buf[64];
	mg_promql_duration(buf, sizeof(buf), ms);
	return buf;
}

Test(promql, durations_in_whole_units)
{
	cr_assert_str_eq(dur(0), "0s");
	cr_assert_str_eq(dur(1000), "1s");
	cr_assert_str_eq(dur(59000), "59s");
	cr_assert_str_eq(dur(60000), "1m");
	cr_assert_str_eq(dur(90000), "1m30s");
	cr_assert_str_eq(dur(3600000), "1h");
	cr_assert_str_eq(dur(3661000), "1h1m1s");
	cr_assert_str_eq(dur(7200000 + 5000), "2h5s");
	cr_assert_str_eq(dur(86400000), "24h");
	/* PromQL units are whole numbers: a sub-second part makes it all milliseconds */
	cr_assert_str_eq(dur(1500), "1500ms");
	cr_assert_str_eq(dur(1), "1ms");
	cr_assert_str_eq(dur(60001), "60001ms");
}

Test(promql, a_short_buffer_is_cut_not_overrun)
{
	char buf[4];
	memset(buf, 'x', sizeof(buf));
	mg_promql_duration(buf, sizeof(buf), 3661000);
	cr_assert_eq(strlen(buf), 3);
	cr_assert_str_eq(buf, "1h1");
}

static char *expand(const char *tmpl, int64_t window_ms, int64_t interval_ms)
{
	char *out = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_promql_expand(&out, tmpl, window_ms, interval_ms, &err), 0, "%s",
	             err.message);
	cr_assert_not_null(out);
	return out;
}

Test(promql, window_and_interval_are_expanded_everywhere)
{
	char *s =
	    expand("rate(x[${window}]) / rate(y[${window}]) offset ${interval}", 300000, 15000);
	cr_assert_str_eq(s, "rate(x[5m]) / rate(y[5m]) offset 15s");
	free(s);
	s = expand("${window}${interval}${window}", 1500, 60000);
	cr_assert_str_eq(s, "1500ms1m1500ms");
	free(s);
}

Test(promql, other_placeholders_and_plain_text_stay)
{
	char *s = expand("up{job=\"${job}\"} $window ${Window} ${window", 60000, 1000);
	cr_assert_str_eq(s, "up{job=\"${job}\"} $window ${Window} ${window");
	free(s);
	s = expand("", 60000, 1000);
	cr_assert_str_eq(s, "");
	free(s);
}

Test(promql, a_long_template_grows_its_buffer)
{
	/* every placeholder longer once expanded than twice the template allows for */
	size_t n = 500;
	char *tmpl = malloc(n * 11 + 1);
	cr_assert_not_null(tmpl);
	tmpl[0] = '\0';
	for (size_t i = 0; i < n; i++)
		strcat(tmpl, "${window}");
	char *s = expand(tmpl, 3661001, 1000); /* "3661001ms": 9 bytes for 9 */
	cr_assert_eq(strlen(s), n * 9);
	cr_assert_eq(strncmp(s, "3661001ms3661001ms", 18), 0);
	free(s);
	free(tmpl);
}

/* ---- RED ------------------------------------------------------------------------------------ */

static const char *k8s[] = {"k8s-a", "k8s.b"};
static const char *vms[] = {"vm1", "vm(2)"};

static mg_plan_red haproxy_red(void)
{
	return (mg_plan_red){.source = MG_RED_HAPROXY,
	                     .backend = "web",
	                     .k8s_servers = k8s,
	                     .nk8s_servers = 2,
	                     .vm_servers = vms,
	                     .nvm_servers = 2,
	                     .max_error_rate = 0.01,
	                     .max_latency_ms = 250,
	                     .max_error_rate_vs_vms = 1.5};
}

Test(promql, haproxy_red_has_four_checks_with_escaped_servers)
{
	mg_plan_red r = haproxy_red();
	mg_plan_slo slo = {.min_requests = 50, .red = &r};
	mg_red_check *c;
	size_t n;
	mg_error err = MG_ERROR_INIT;
	/* counts over the sample (40s), HAProxy's average latency over the window (2m) */
	cr_assert_eq(mg_promql_red(&c, &n, &slo, 120000, 40000, &err), 0, "%s", err.message);
	cr_assert_eq(n, 4);
	cr_assert_eq(c[0].kind, MG_RED_RATE);
	cr_assert_str_eq(c[0].name, "rate");
	cr_assert_str_eq(c[0].query,
	                 "sum(increase(haproxy_server_http_responses_total{proxy=\"web\","
	                 "server=~\"k8s-a|k8s\\\\.b\"}[40s]))");
	cr_assert_float_eq(c[0].threshold, 50, 1e-12);
	cr_assert_null(c[0].vm_query);
	cr_assert_eq(c[1].kind, MG_RED_ERRORS);
	cr_assert_str_eq(c[1].name, "errors");
	/* a count, not a ratio, and 0 when no 5xx series exists yet */
	cr_assert_str_eq(
	    c[1].query,
	    "sum(increase(haproxy_server_http_responses_total{proxy=\"web\",server=~\"k8s-a|k8s\\\\."
	    "b\",code=\"5xx\"}[40s])) or vector(0)");
	cr_assert_float_eq(c[1].threshold, 0.01, 1e-12);
	cr_assert_eq(c[2].kind, MG_RED_DURATION);
	cr_assert_not(c[2].histogram, "HAProxy exports an average");
	cr_assert_str_eq(c[2].query, "max(avg_over_time(haproxy_server_response_time_average_"
	                             "seconds{proxy=\"web\",server=~\"k8s-a|k8s\\\\.b\"}[2m]))");
	cr_assert_float_eq(c[2].threshold, 0.25, 1e-12, "seconds, not ms");
	cr_assert_eq(c[3].kind, MG_RED_ERRORS_VS_VMS);
	cr_assert_str_eq(c[3].name, "errors-vs-vms");
	cr_assert_str_eq(c[3].query, c[1].query);
	cr_assert_not_null(c[3].vm_query);
	cr_assert(strstr(c[3].vm_query,
	                 "server=~\"vm1|vm\\\\(2\\\\)\",code=\"5xx\"}[40s])) or vector(0)"),
	          "%s", c[3].vm_query);
	cr_assert_str_eq(c[3].vm_requests_query,
	                 "sum(increase(haproxy_server_http_responses_total{proxy=\"web\","
	                 "server=~\"vm1|vm\\\\(2\\\\)\"}[40s]))");
	cr_assert_float_eq(c[3].threshold, 1.5, 1e-12);
	mg_promql_red_free(c, n);
}

Test(promql, unset_limits_leave_their_checks_out)
{
	mg_plan_red r = haproxy_red();
	r.max_error_rate = -1;
	r.max_latency_ms = -1;
	r.max_error_rate_vs_vms = -1;
	mg_plan_slo slo = {.min_requests = 1, .red = &r};
	mg_red_check *c;
	size_t n;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_promql_red(&c, &n, &slo, 60000, 60000, &err), 0);
	cr_assert_eq(n, 1, "the rate check is always there");
	cr_assert_eq(c[0].kind, MG_RED_RATE);
	mg_promql_red_free(c, n);
	/* a zero limit is a limit */
	r.max_error_rate = 0;
	cr_assert_eq(mg_promql_red(&c, &n, &slo, 60000, 60000, &err), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(c[1].kind, MG_RED_ERRORS);
	mg_promql_red_free(c, n);
}

Test(promql, ingress_nginx_red_has_no_vm_side)
{
	mg_plan_red r = {.source = MG_RED_INGRESS_NGINX,
	                 .namespace_ = "shop",
	                 .ingress = "web",
	                 .max_error_rate = 0.02,
	                 .max_latency_ms = 1500,
	                 .max_error_rate_vs_vms = 2,
	                 .max_latency_quantile = 0.999};
	mg_plan_slo slo = {.min_requests = 10, .red = &r};
	mg_red_check *c;
	size_t n;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_promql_red(&c, &n, &slo, 30000, 30000, &err), 0, "%s", err.message);
	cr_assert_eq(n, 3, "errors-vs-vms needs a VM side ingress-nginx does not see");
	cr_assert_str_eq(c[0].query, "sum(increase(nginx_ingress_controller_requests{namespace="
	                             "\"shop\",ingress=\"web\"}[30s]))");
	cr_assert_str_eq(c[1].query,
	                 "sum(increase(nginx_ingress_controller_requests{namespace=\"shop\","
	                 "ingress=\"web\",status=~\"5..\"}[30s])) or vector(0)");
	/* the buckets themselves: the gate judges the quantile with its uncertainty */
	cr_assert(c[2].histogram);
	cr_assert_float_eq(c[2].quantile, 0.999, 1e-12);
	cr_assert_str_eq(c[2].query,
	                 "sum by (le) (increase(nginx_ingress_controller_request_duration_"
	                 "seconds_bucket{namespace=\"shop\",ingress=\"web\"}[30s]))");
	cr_assert_float_eq(c[2].threshold, 1.5, 1e-12);
	mg_promql_red_free(c, n);
	/* without an ingress: the namespace alone */
	r.ingress = NULL;
	cr_assert_eq(mg_promql_red(&c, &n, &slo, 30000, 30000, &err), 0);
	cr_assert_str_eq(
	    c[0].query,
	    "sum(increase(nginx_ingress_controller_requests{namespace=\"shop\"}[30s]))");
	mg_promql_red_free(c, n);
}

Test(promql, no_red_section_is_no_checks)
{
	mg_plan_slo slo = {.min_requests = 10};
	mg_red_check *c = (mg_red_check *)&slo;
	size_t n = 7;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_promql_red(&c, &n, &slo, 30000, 30000, &err), 0);
	cr_assert_null(c);
	cr_assert_eq(n, 0);
	mg_promql_red_free(NULL, 0);
}

/* ---- RED per side, for the report's range queries ------------------------------------------- */

Test(promql, red_sides_are_the_presets_queries_for_each_side_whatever_the_limits)
{
	mg_plan_red r = haproxy_red();
	r.max_error_rate = r.max_error_rate_vs_vms = -1;
	r.max_latency_ms = -1;
	mg_red_side *s;
	size_t n;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_promql_red_sides(&s, &n, &r, 90000, &err), 0, "%s", err.message);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(s[0].side, "cluster");
	cr_assert_str_eq(s[1].side, "vms");
	/* the same text the gates send, over the chart's window */
	mg_plan_slo slo = {.min_requests = 1, .red = &r};
	r.max_error_rate = r.max_error_rate_vs_vms = 0.01;
	mg_red_check *c;
	size_t nc;
	cr_assert_eq(mg_promql_red(&c, &nc, &slo, 90000, 90000, &err), 0);
	cr_assert_eq(nc, 3);
	cr_assert_str_eq(s[0].requests, c[0].query);
	cr_assert_str_eq(s[0].errors, c[1].query);
	cr_assert_str_eq(s[1].errors, c[2].vm_query);
	cr_assert_str_eq(s[1].requests, c[2].vm_requests_query);
	mg_promql_red_free(c, nc);
	cr_assert_str_eq(s[0].latency,
	                 "max(avg_over_time(haproxy_server_response_time_average_"
	                 "seconds{proxy=\"web\",server=~\"k8s-a|k8s\\\\.b\"}[1m30s]))");
	cr_assert_str_eq(s[1].latency,
	                 "max(avg_over_time(haproxy_server_response_time_average_"
	                 "seconds{proxy=\"web\",server=~\"vm1|vm\\\\(2\\\\)\"}[1m30s]))");
	cr_assert_float_eq(s[1].quantile, 0, 1e-12);
	mg_promql_red_sides_free(s, n);
}

Test(promql, red_sides_of_ingress_nginx_are_the_cluster_alone_with_its_quantile)
{
	mg_plan_red r = {.source = MG_RED_INGRESS_NGINX,
	                 .namespace_ = "shop",
	                 .max_error_rate = -1,
	                 .max_latency_ms = -1,
	                 .max_error_rate_vs_vms = -1,
	                 .max_latency_quantile = 0.99};
	mg_red_side *s;
	size_t n;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_promql_red_sides(&s, &n, &r, 60000, &err), 0, "%s", err.message);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(s[0].side, "cluster");
	cr_assert_str_eq(s[0].latency,
	                 "histogram_quantile(0.99, sum by (le) (increase(nginx_ingress_"
	                 "controller_request_duration_seconds_bucket{namespace="
	                 "\"shop\"}[1m])))");
	cr_assert_float_eq(s[0].quantile, 0.99, 1e-12);
	mg_promql_red_sides_free(s, n);
	cr_assert_eq(mg_promql_red_sides(&s, &n, NULL, 60000, &err), 0);
	cr_assert_null(s);
	cr_assert_eq(n, 0);
}
