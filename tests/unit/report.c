/*
 * lib/report.h over a journal written here line by line (the documented
 * format of journal.jsonl, at fixed times) and a fake metrics source: the
 * events a journal becomes (an intent and its result one event, a deploy's
 * batches folded per side), where traffic stood before the period, the
 * summary and the time at each step to the millisecond, the RED series per
 * side from the preset's queries, a Prometheus that fails, and text of other
 * parties escaped and scrubbed in every output.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "fs.h"
#include "log.h"
#include "plan.h"
#include "promql.h"
#include "report.h"
#include "secret.h"
#include "store.h"

/* 2026-01-01T00:00:00Z */
#define T0 1767225600000LL

static char dir[64];
static mg_store *store;
static mg_plan *plan;
static mg_report *rep;
static mg_error err;

/* ---- a fake Prometheus: each query's side and kind from its text ---- */

typedef struct {
	int ranges;
	int fail_at; /* > 0: the fail_at-th range query fails */
	int64_t start, end, step;
	char last[1024];
} fake_src;
static fake_src fake;

static int fake_query(void *src, mg_metrics_result *out, const char *query, int64_t at_ms,
                      mg_error *e)
{
	(void)src, (void)out, (void)query, (void)at_ms;
	return mg_error_set(e, MG_ERROR, "instant queries are not for the report");
}

/* requests: cluster 100, VMs 900 per window; 5xx: cluster 5, VMs 0 (absent: "or vector(0)");
 * latency: cluster 40 ms, VMs 20 ms; every point but the first (no data yet) */
static int fake_query_range(void *src, mg_metrics_result *out, const char *query, int64_t start_ms,
                            int64_t end_ms, int64_t step_ms, mg_error *e)
{
	fake_src *f = src;
	f->ranges++;
	f->start = start_ms, f->end = end_ms, f->step = step_ms;
	snprintf(f->last, sizeof(f->last), "%s", query);
	if (f->fail_at && f->ranges == f->fail_at)
		return mg_error_set(
		    e, MG_ERROR, "Prometheus: cannot reach http://127.0.0.1:9/api/v1/query_range");
	bool k8s = strstr(query, "server=~\"k8s\"") != NULL;
	double v = strstr(query, "response_time") ? (k8s ? 0.04 : 0.02)
	           : strstr(query, "5xx")         ? (k8s ? 5 : 0)
	                                          : (k8s ? 100 : 900);
	size_t n = (size_t)((end_ms - start_ms) / step_ms) + 1;
	out->type = MG_METRICS_MATRIX;
	out->nseries = 1;
	out->series = calloc(1, sizeof(*out->series));
	out->series[0].labels = strdup("{}");
	out->series[0].samples = calloc(n, sizeof(mg_metrics_sample));
	for (size_t i = 1; i < n; i++)
		out->series[0].samples[out->series[0].nsamples++] =
		    (mg_metrics_sample){start_ms + (int64_t)i * step_ms, v};
	return 0;
}

static const mg_metrics_ops fake_ops = {
    .name = "fake", .query = fake_query, .query_range = fake_query_range};

/* ---- fixtures ---- */

static void setup(void)
{
	err = (mg_error)MG_ERROR_INIT;
	memset(&fake, 0, sizeof(fake));
	tu_tmpdir_make(dir, sizeof(dir), "report");
	cr_assert_eq(mg_store_open(&store, dir, "shop", &err), 0, "%s", err.message);
	mg_log_set(NULL, NULL, MG_LOG_ERROR);
}

static void teardown(void)
{
	mg_report_free(rep);
	rep = NULL;
	mg_plan_free(plan);
	plan = NULL;
	mg_store_free(store);
	store = NULL;
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}

TestSuite(report, .init = setup, .fini = teardown, .timeout = 20);

static const char plan_head[] = "version: 1\n"
                                "name: shop\n"
                                "description: the shop's <web> & \"api\"\n"
                                "traffic:\n"
                                "  provider: haproxy\n"
                                "  steps: [10, 50, 100]\n"
                                "  bake: 1m\n"
                                "  haproxy: { socket: /tmp/x.sock, backend: be, vm_servers: "
                                "[vm-01, vm-02], k8s_servers: [k8s] }\n";

static void load_plan(const char *slo)
{
	char yaml[4096];
	snprintf(yaml, sizeof(yaml), "%s%s", plan_head, slo ? slo : "");
	int rc = mg_plan_load_buffer(&plan, yaml, strlen(yaml), "plan.yaml", "/tmp",
	                             MG_PLAN_LOAD_NO_FS, &err);
	char d[512] = "";
	if (rc && err.ndiags)
		mg_diag_format(d, sizeof(d), &err.diags[0]);
	cr_assert_eq(rc, 0, "plan: %s %s", err.message, d);
}

#define SLO                                                                                        \
	"slo:\n"                                                                                   \
	"  prometheus: { url: \"http://127.0.0.1:9/\" }\n"                                         \
	"  interval: 5s\n"                                                                         \
	"  window: 20s\n"                                                                          \
	"  red: { source: haproxy, backend: be, max_error_rate: 5%, max_latency: 250ms }\n"

/* One record as `mg_journal_append` writes it, at T0 + ms, by rec_operator. */
static const char *rec_operator = "alice@ops1";
static void rec(FILE *f, int seq, int64_t ms, int pid, const char *command, const char *action,
                const char *before, const char *after, const char *reason, const char *evidence)
{
	char t[40];
	mg_time_format(t, sizeof(t), T0 + ms);
	fprintf(f,
	        "{\"seq\":%d,\"time\":\"%s\",\"operator\":\"%s\",\"pid\":%d,\"command\":\"%s\","
	        "\"action\":\"%s\",\"before\":%s,\"after\":%s,\"reason\":%s,\"evidence\":%s}\n",
	        seq, t, rec_operator, pid, command, action, before ? before : "null",
	        after ? after : "null", reason ? reason : "null", evidence ? evidence : "null");
}

#define POS(p, s) "{\"k8s_percent\":" #p ",\"step\":" #s "}"

/*
 * A migration: a step by hand to 10% (intent + result), the autopilot's gate pass and step
 * to 50%, its gate fail and rollback to 0%, a pause; then a deploy to both sides.
 */
static void write_journal(void)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/journal.jsonl", mg_store_path(store));
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	rec(f, 1, 0, 10, "step", "intent", POS(0.0, null), POS(10.0, 1), "\"canary\"", NULL);
	rec(f, 2, 10, 10, "step", "result", POS(0.0, null), POS(10.0, 1), "\"canary\"", NULL);
	rec(f, 3, 60000, 11, "run", "gate", "{\"step\":1,\"k8s_percent\":10.0}",
	    "{\"outcome\":\"pass\",\"decision\":\"advance\",\"failures\":0}",
	    "\"errors 0 <= 0.05\"", NULL);
	rec(f, 4, 60100, 11, "run", "intent", POS(10.0, 1), POS(50.0, 2), "\"gates passed\"", NULL);
	rec(f, 5, 60200, 11, "run", "result", POS(10.0, 1), POS(50.0, 2), "\"gates passed\"", NULL);
	rec(f, 6, 120000, 11, "run", "gate", "{\"step\":2,\"k8s_percent\":50.0}",
	    "{\"outcome\":\"fail\",\"decision\":\"rollback\",\"failures\":1}",
	    "\"errors 0.13 > 0.05\"", NULL);
	rec(f, 7, 120100, 11, "run", "intent", POS(50.0, 2), POS(0.0, null), "\"gates failed\"",
	    NULL);
	rec(f, 8, 120200, 11, "run", "result", POS(50.0, 2), POS(0.0, null), "\"gates failed\"",
	    NULL);
	rec(f, 9, 180000, 12, "pause", "pause", NULL, NULL, "\"investigating\"", NULL);
	/* a deploy of both sides by one process: the fleet's records and the cluster's interleave
	 */
	rec(f, 10, 200000, 13, "deploy", "intent", "{\"version\":\"1.0.0\"}",
	    "{\"version\":\"1.1.0\",\"hosts\":2}", "\"fix\"", "{\"op\":\"deploy\"}");
	rec(f, 11, 200001, 13, "deploy", "cluster-intent",
	    "{\"side\":\"kubernetes\",\"version\":\"1.0.0\"}",
	    "{\"side\":\"kubernetes\",\"version\":\"1.1.0\"}", "\"fix\"", "{\"objects\":3}");
	rec(f, 12, 205000, 13, "deploy", "batch", NULL, "{\"batch\":1,\"of\":2}", NULL, NULL);
	rec(f, 13, 210000, 13, "deploy", "cluster-result",
	    "{\"side\":\"kubernetes\",\"version\":\"1.0.0\"}",
	    "{\"side\":\"kubernetes\",\"version\":\"1.1.0\"}", "\"fix\"",
	    "{\"objects\":3,\"failed\":0,\"canceled\":false}");
	rec(f, 14, 215000, 13, "deploy", "batch", NULL, "{\"batch\":2,\"of\":2}", NULL, NULL);
	rec(f, 15, 220000, 13, "deploy", "result", NULL,
	    "{\"version\":\"1.1.0\",\"ok\":2,\"failed\":0}", NULL, NULL);
	cr_assert_eq(fclose(f), 0);
}

static void build(int64_t since, int64_t until, mg_metrics *m)
{
	mg_report_options o = {.since_ms = since, .until_ms = until, .metrics = m};
	int rc = mg_report_build(&rep, plan, store, &o, &err);
	cr_assert_eq(rc, 0, "mg_report_build: %s", err.message);
}

static mg_metrics *fake_metrics(void)
{
	mg_metrics *m;
	cr_assert_eq(mg_metrics_open_source(&m, &fake_ops, &fake, &err), 0, "%s", err.message);
	return m;
}

static char *render(mg_report_format f)
{
	char *out;
	size_t len;
	cr_assert_eq(mg_report_render(&out, &len, rep, f, &err), 0, "%s", err.message);
	cr_assert_eq(strlen(out), len);
	return out;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static json_t *model(void)
{
	json_t *j = mg_report_to_json(rep);
	cr_assert_not_null(j);
	return j;
}

static json_t *event(json_t *j, size_t i)
{
	json_t *e = json_array_get(json_object_get(j, "events"), i);
	cr_assert_not_null(e, "no event %zu", i);
	return e;
}

static const char *estr(json_t *e, const char *key)
{
	const char *s = json_string_value(json_object_get(e, key));
	return s ? s : "(null)";
}

static void expect_seqs(json_t *e, const char *want)
{
	char got[64] = "";
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(e, "seqs"), i, v)
	{
		size_t l = strlen(got);
		snprintf(got + l, sizeof(got) - l, "%s%lld", i ? " " : "", json_integer_value(v));
	}
	cr_assert_str_eq(got, want, "%s: seqs %s, expected %s", estr(e, "title"), got, want);
}

static long long summary_int(json_t *j, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(j, "summary"), key));
}

/* ---- the journal ---- */

Test(report, a_move_is_one_event_and_the_summary_counts_each_kind)
{
	load_plan(NULL);
	write_journal();
	build(T0, T0 + 240000, NULL);
	json_t *j = model();
	cr_assert_eq(json_integer_value(json_object_get(j, "records")), 15);
	cr_assert_eq(json_array_size(json_object_get(j, "events")), 8);
	json_t *e = event(j, 0);
	cr_assert_str_eq(estr(e, "kind"), "step");
	expect_seqs(e, "1 2");
	cr_assert_str_eq(estr(e, "time"), "2026-01-01T00:00:00.010Z", "the result's time");
	cr_assert_str_eq(estr(e, "title"), "step 1 of 3 (migrate step): 0% -> 10%, 10% read back");
	cr_assert_str_eq(estr(e, "reason"), "canary");
	e = event(j, 1);
	cr_assert_str_eq(estr(e, "kind"), "gate");
	cr_assert_str_eq(estr(e, "outcome"), "pass");
	cr_assert_str_eq(estr(e, "title"), "gates pass at step 1 of 3 (10%): advance");
	expect_seqs(event(j, 2), "4 5");
	cr_assert_str_eq(estr(event(j, 3), "outcome"), "fail");
	e = event(j, 4);
	cr_assert_str_eq(estr(e, "kind"), "rollback");
	expect_seqs(e, "7 8");
	cr_assert_str_eq(estr(e, "title"), "rollback (migrate run): 50% -> 0%, 0% read back");
	cr_assert_str_eq(estr(event(j, 5), "kind"), "pause");
	/* one deploy event per side: intent, batches and result of the fleet; the cluster's two */
	e = event(j, 6);
	cr_assert_str_eq(estr(e, "kind"), "deploy");
	expect_seqs(e, "10 12 14 15");
	cr_assert_str_eq(estr(e, "outcome"), "ok");
	cr_assert_str_eq(estr(e, "title"), "deploy of 1.1.0 to the VMs: ok (2 ok, 0 failed)");
	cr_assert_str_eq(estr(e, "time"), "2026-01-01T00:03:40.000Z");
	e = event(j, 7);
	expect_seqs(e, "11 13");
	cr_assert_str_eq(estr(e, "title"), "deploy of 1.1.0 to the cluster: ok");

	cr_assert_eq(summary_int(j, "steps"), 2);
	cr_assert_eq(summary_int(j, "rollbacks"), 1);
	cr_assert_eq(summary_int(j, "pauses"), 1);
	cr_assert_eq(summary_int(j, "deploys"), 2);
	cr_assert_eq(summary_int(j, "duration_ms"), 240000);
	json_t *g = json_object_get(json_object_get(j, "summary"), "gates");
	cr_assert_eq(json_integer_value(json_object_get(g, "pass")), 1);
	cr_assert_eq(json_integer_value(json_object_get(g, "fail")), 1);
	cr_assert_eq(json_integer_value(json_object_get(g, "inconclusive")), 0);
	/* time at each step, to the millisecond: 0% until 10 ms and from 120.2 s; 10% for
	 * 60.19 s; 50% for 60 s */
	json_t *at = json_object_get(json_object_get(j, "summary"), "time_at_step");
	cr_assert_eq(json_array_size(at), 3);
	long long want[3][2] = {{0, 10 + 119800}, {1, 60190}, {2, 60000}};
	for (size_t i = 0; i < 3; i++) {
		json_t *s = json_array_get(at, i);
		long long step = json_is_null(json_object_get(s, "step"))
		                     ? 0
		                     : json_integer_value(json_object_get(s, "step"));
		cr_assert_eq(step, want[i][0]);
		cr_assert_eq(json_integer_value(json_object_get(s, "duration_ms")), want[i][1],
		             "step %lld: %lld ms", step,
		             json_integer_value(json_object_get(s, "duration_ms")));
	}
	/* applied and read back, as a step function */
	json_t *rb = json_object_get(json_object_get(j, "traffic"), "read_back");
	cr_assert_eq(json_array_size(rb), 3);
	cr_assert_float_eq(json_real_value(json_object_get(json_array_get(rb, 1), "k8s_percent")),
	                   50, 1e-9);
	json_decref(j);
}

Test(report, the_period_starts_where_traffic_stood_and_keeps_only_its_records)
{
	load_plan(NULL);
	write_journal();
	/* from 1m30s: at 50% since the step at 60.2 s; until 3m: the pause is the last record */
	build(T0 + 90000, T0 + 180000, NULL);
	json_t *j = model();
	json_t *tr = json_object_get(j, "traffic");
	cr_assert_float_eq(json_real_value(json_object_get(tr, "initial_read_back_percent")), 50,
	                   1e-9);
	cr_assert_float_eq(json_real_value(json_object_get(tr, "initial_applied_percent")), 50,
	                   1e-9);
	cr_assert_eq(json_integer_value(json_object_get(j, "records")), 4, "seq 6 to 9");
	cr_assert_eq(json_array_size(json_object_get(j, "events")), 3);
	expect_seqs(event(j, 0), "6");
	expect_seqs(event(j, 1), "7 8");
	expect_seqs(event(j, 2), "9");
	cr_assert_eq(summary_int(j, "steps"), 0);
	cr_assert_eq(summary_int(j, "rollbacks"), 1);
	json_t *at = json_object_get(json_object_get(j, "summary"), "time_at_step");
	cr_assert_eq(json_array_size(at), 2, "50%% then 0%%");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(at, 0), "step")), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(at, 0), "duration_ms")),
	             30200);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(at, 1), "duration_ms")),
	             59800);
	json_decref(j);
}

Test(report, without_since_the_period_starts_at_the_first_record)
{
	load_plan(NULL);
	write_journal();
	build(0, T0 + 300000, NULL);
	mg_report_info info;
	mg_report_info_get(&info, rep);
	cr_assert_eq(info.since_ms, T0);
	cr_assert_eq(info.records, 15);
	cr_assert_eq(info.events, 8);
	cr_assert_str_eq(info.plan, "shop");
}

Test(report, no_journal_is_an_empty_report_and_a_backwards_period_is_refused)
{
	load_plan(NULL);
	build(0, T0, NULL);
	mg_report_info info;
	mg_report_info_get(&info, rep);
	cr_assert_eq(info.events, 0);
	cr_assert_eq(info.since_ms, T0);
	char *page = render(MG_REPORT_HTML);
	cr_assert(strstr(page, "0 in the period"), "%s", page);
	free(page);
	mg_report_free(rep);
	rep = NULL;
	mg_report_options o = {.since_ms = T0 + 1, .until_ms = T0};
	cr_assert_eq(mg_report_build(&rep, plan, NULL, &o, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "after it ends"), "%s", err.message);
	cr_assert_null(rep);
}

Test(report, a_marker_per_event_with_every_record_of_the_period_once)
{
	load_plan(NULL);
	write_journal();
	build(T0, T0 + 240000, NULL);
	char *svg = render(MG_REPORT_SVG);
	cr_assert_eq(count(svg, "<g class=\"marker\""), 8);
	/* every seq from 1 to 15 in exactly one data-seq */
	for (int s = 1; s <= 15; s++) {
		int found = 0;
		for (const char *p = strstr(svg, "data-seq=\""); p;
		     p = strstr(p + 1, "data-seq=\"")) {
			const char *q = p + 10;
			while (*q && *q != '"') {
				char *end;
				long v = strtol(q, &end, 10);
				found += v == s;
				q = *end == ' ' ? end + 1 : end;
			}
		}
		cr_assert_eq(found, 1, "seq %d in %d markers", s, found);
	}
	cr_assert(strstr(svg, "data-kind=\"gate\" data-outcome=\"fail\""));
	cr_assert(strstr(svg, "data-kind=\"deploy\" data-outcome=\"ok\""));
	cr_assert(strstr(svg, "<title>2026-01-01T00:02:00.000Z  gates fail at step 2 of 3 (50%): "
	                      "rollback\nreason: errors 0.13 &gt; 0.05\nby alice@ops1 (migrate run "
	                      "gate)</title>"),
	          "the hover text");
	/* both share series, from the journal */
	cr_assert(strstr(svg, "data-metric=\"share_applied\" data-side=\"cluster\""));
	cr_assert(strstr(svg, "data-metric=\"share_read_back\" data-side=\"cluster\""));
	cr_assert(strncmp(svg, "<?xml", 5) == 0);
	cr_assert(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
	free(svg);
}

/* ---- text of other parties ---- */

Test(report, text_from_the_journal_is_escaped_and_scrubbed_in_every_output)
{
	cr_assert_eq(mg_secret_register("tok-9f8e7d6c5b4a"), 0);
	load_plan(NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/journal.jsonl", mg_store_path(store));
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	rec(f, 1, 0, 10, "step", "result", POS(0.0, null), POS(10.0, 1),
	    "\"</title><script>alert(1)</script> & \\\"q\\\" 'a' \\u001b[2J \\u202eevil "
	    "tok-9f8e7d6c5b4a\"",
	    NULL);
	rec_operator = "<b>eve</b>"; /* an operator's name is text from another host */
	rec(f, 2, 1000, 11, "pause", "pause", NULL, NULL, "\"<img src=x onerror=alert(2)>\"", NULL);
	rec_operator = "alice@ops1";
	fclose(f);
	build(T0, T0 + 10000, NULL);
	for (int k = 0; k < 2; k++) {
		char *out = render(k ? MG_REPORT_SVG : MG_REPORT_HTML);
		cr_assert_null(strstr(out, "<script"), "a script element");
		cr_assert_null(strstr(out, "<img"), "an img element");
		cr_assert_null(strstr(out, "<b>"));
		cr_assert(strstr(out, "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; "
		                      "&quot;q&quot; &#39;a&#39; \\x1b[2J \\u202eevil [redacted]"),
		          "%s", out);
		cr_assert(strstr(out, "&lt;img src=x onerror=alert(2)&gt;"));
		cr_assert_null(strstr(out, "\x1b"), "a raw ESC");
		cr_assert_null(strstr(out, "\xe2\x80\xae"), "a raw RIGHT-TO-LEFT OVERRIDE");
		cr_assert_null(strstr(out, "tok-9f8e7d6c5b4a"), "the secret");
		free(out);
	}
	json_t *j = model();
	char *json = json_dumps(j, 0);
	json_decref(j);
	cr_assert_null(strstr(json, "tok-9f8e7d6c5b4a"));
	free(json);
	/* the plan's own text too: its description */
	char *page = render(MG_REPORT_HTML);
	cr_assert(strstr(page, "the shop&#39;s &lt;web&gt; &amp; &quot;api&quot;"));
	/* the page itself may run nothing and fetch nothing */
	cr_assert(strstr(page, "Content-Security-Policy\" content=\"default-src 'none'; "
	                       "style-src 'unsafe-inline'\""));
	cr_assert_null(strstr(page, " src=\""), "no src attribute: %s", strstr(page, " src=\""));
	cr_assert_null(strstr(page, "href"));
	free(page);
	mg_secret_forget_all();
}

/* ---- Prometheus ---- */

Test(report, red_series_per_side_come_from_the_presets_range_queries)
{
	load_plan(SLO);
	write_journal();
	mg_metrics *m = fake_metrics();
	build(T0, T0 + 240000, m);
	/* 240 s over at most 400 points: a point every second; counts over the plan's window */
	cr_assert_eq(fake.step, 1000);
	cr_assert_eq(fake.start, T0);
	cr_assert_eq(fake.end, T0 + 240000);
	cr_assert_eq(fake.ranges, 6, "requests, errors, latency for each side");
	json_t *j = model();
	json_t *mj = json_object_get(j, "metrics");
	cr_assert(json_is_true(json_object_get(mj, "available")));
	cr_assert_eq(json_integer_value(json_object_get(mj, "window_ms")), 20000);
	cr_assert_str_eq(json_string_value(json_object_get(mj, "source")),
	                 "prometheus http://127.0.0.1:9/");
	json_t *series = json_object_get(mj, "series");
	cr_assert_eq(json_array_size(series), 7, "3 per side and the share seen");
	mg_red_side *sides;
	size_t nsides;
	cr_assert_eq(
	    mg_promql_red_sides(&sides, &nsides, mg_plan_slo_section(plan)->red, 20000, &err), 0);
	struct {
		const char *metric, *side;
		double value;
		const char *query;
	} want[] = {
	    {"requests", "cluster", 5, sides[0].requests}, /* 100 in 20 s */
	    {"error_rate", "cluster", 0.05, sides[0].errors},
	    {"latency", "cluster", 0.04, sides[0].latency},
	    {"requests", "vms", 45, sides[1].requests},
	    {"error_rate", "vms", 0, sides[1].errors},
	    {"latency", "vms", 0.02, sides[1].latency},
	    {"share", "cluster", 10, sides[1].requests},
	};
	for (size_t i = 0; i < 7; i++) {
		json_t *s = json_array_get(series, i);
		cr_assert_str_eq(json_string_value(json_object_get(s, "metric")), want[i].metric);
		cr_assert_str_eq(json_string_value(json_object_get(s, "side")), want[i].side);
		cr_assert(strstr(json_string_value(json_object_get(s, "query")), want[i].query),
		          "%s %s: %s", want[i].metric, want[i].side,
		          json_string_value(json_object_get(s, "query")));
		json_t *pts = json_object_get(s, "points");
		cr_assert_eq(json_array_size(pts), 241);
		cr_assert(json_is_null(json_object_get(json_array_get(pts, 0), "value")),
		          "no data at the first point is a gap, not 0");
		cr_assert_float_eq(
		    json_number_value(json_object_get(json_array_get(pts, 100), "value")),
		    want[i].value, 1e-9, "%s %s", want[i].metric, want[i].side);
	}
	mg_promql_red_sides_free(sides, nsides);
	char *svg = render(MG_REPORT_SVG);
	const char *metrics[] = {"requests", "error_rate", "latency"};
	for (size_t i = 0; i < 3; i++)
		for (int side = 0; side < 2; side++) {
			char needle[128];
			snprintf(needle, sizeof(needle),
			         "class=\"series\" data-metric=\"%s\" data-side=\"%s\" "
			         "data-points=\"yes\"",
			         metrics[i], side ? "vms" : "cluster");
			cr_assert(strstr(svg, needle), "no %s", needle);
		}
	cr_assert(strstr(svg, "class=\"limit\""), "the plan's limits are drawn");
	free(svg);
	json_decref(j);
	mg_metrics_free(m);
}

Test(report, a_prometheus_that_fails_leaves_the_journal_and_says_why)
{
	load_plan(SLO);
	write_journal();
	mg_metrics *m = fake_metrics();
	fake.fail_at = 4; /* the VMs' requests: half of it had answered */
	build(T0, T0 + 240000, m);
	mg_report_info info;
	mg_report_info_get(&info, rep);
	cr_assert_not(info.metrics);
	cr_assert_eq(info.events, 8, "the journal's part is whole");
	cr_assert(strstr(info.metrics_note, "cannot reach http://127.0.0.1:9"), "%s",
	          info.metrics_note);
	cr_assert(strstr(info.metrics_note, "traffic and verdicts from the journal only"));
	json_t *j = model();
	cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "metrics"), "series")), 0,
	             "all or nothing");
	json_decref(j);
	char *page = render(MG_REPORT_HTML);
	cr_assert(strstr(page, "<p class=\"note\" id=\"no-metrics\">"));
	cr_assert_null(strstr(page, "data-metric=\"error_rate\""));
	cr_assert(strstr(page, "data-metric=\"share_read_back\""));
	free(page);
	mg_metrics_free(m);
}

Test(report, without_slo_red_there_is_nothing_to_query_and_the_report_says_so)
{
	load_plan(NULL);
	write_journal();
	build(T0, T0 + 240000, NULL);
	mg_report_info info;
	mg_report_info_get(&info, rep);
	cr_assert_not(info.metrics);
	cr_assert_str_eq(info.metrics_note,
	                 "the plan has no slo section: traffic and verdicts from the journal only");
}

Test(report, a_long_period_is_at_most_400_points_of_whole_seconds)
{
	load_plan(SLO);
	mg_metrics *m = fake_metrics();
	build(T0, T0 + 21LL * 86400000, m); /* three weeks */
	cr_assert_eq(fake.step, 4536000, "21 days / 400, rounded up to a second");
	json_t *j = model();
	json_t *mj = json_object_get(j, "metrics");
	cr_assert_eq(json_integer_value(json_object_get(mj, "window_ms")), 4536000,
	             "a window shorter than a point would leave most requests out");
	json_t *pts = json_object_get(json_array_get(json_object_get(mj, "series"), 0), "points");
	cr_assert_eq(json_array_size(pts), 401);
	json_decref(j);
	mg_metrics_free(m);
}

Test(report, a_short_run_is_counted_over_four_intervals_not_the_whole_window)
{
	/* the demo's plan: gates every second over 20 s; a 4-minute report */
	load_plan("slo:\n"
	          "  prometheus: { url: \"http://127.0.0.1:9/\" }\n"
	          "  interval: 1s\n"
	          "  window: 20s\n"
	          "  red: { source: haproxy, backend: be, max_error_rate_vs_vms: 2 }\n");
	mg_metrics *m = fake_metrics();
	build(T0, T0 + 240000, m);
	json_t *j = model();
	json_t *mj = json_object_get(j, "metrics");
	cr_assert_eq(json_integer_value(json_object_get(mj, "step_ms")), 1000);
	cr_assert_eq(json_integer_value(json_object_get(mj, "window_ms")), 4000);
	cr_assert(strstr(fake.last, "[4s]"), "%s", fake.last);
	/* no limit on the charted values in the plan: none drawn, none in the model */
	cr_assert(json_is_null(json_object_get(mj, "max_error_rate")));
	cr_assert(json_is_null(json_object_get(mj, "max_latency_seconds")));
	json_decref(j);
	char *svg = render(MG_REPORT_SVG);
	cr_assert_null(strstr(svg, "class=\"limit\""));
	free(svg);
	mg_metrics_free(m);
}

/* ---- examples/grafana: the same panels, live ---- */

/* Every "expr" of the dashboard, variables put in as the plans below have them. */
static void collect_exprs(json_t *v, char **out, size_t *n, size_t max)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			if (!strcmp(k, "expr") && json_is_string(x) && *n < max) {
				char *s = strdup(json_string_value(x));
				static const char *const vars[][2] = {
				    {"$__rate_interval", "1m"}, {"$backend", "web"},
				    {"$k8s_servers", "k8s1"},   {"$vm_servers", "vm1|vm2"},
				    {"$namespace", "shop"},     {"$ingress", "web"},
				    {"$quantile", "0.99"}};
				for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
					for (char *at; (at = strstr(s, vars[i][0]));) {
						char *t = NULL;
						cr_assert_gt(asprintf(&t, "%.*s%s%s", (int)(at - s),
						                      s, vars[i][1],
						                      at + strlen(vars[i][0])),
						             0);
						free(s);
						s = t;
					}
				out[(*n)++] = s;
			} else {
				collect_exprs(x, out, n, max);
			}
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) collect_exprs(x, out, n, max);
	}
}

static bool in_some(char **exprs, size_t n, const char *q)
{
	for (size_t i = 0; i < n; i++)
		if (strstr(exprs[i], q))
			return true;
	return false;
}

Test(report, the_grafana_dashboard_has_the_presets_queries_and_documented_metrics)
{
	json_error_t je;
	json_t *dash = json_load_file("examples/grafana/migrate.json", 0, &je);
	cr_assert_not_null(dash, "examples/grafana/migrate.json:%d: %s", je.line, je.text);
	char *exprs[128];
	size_t n = 0;
	collect_exprs(dash, exprs, &n, 128);
	cr_assert_gt(n, 10);
	static const char *k8s[] = {"k8s1"}, *vms[] = {"vm1", "vm2"};
	mg_plan_red h = {.source = MG_RED_HAPROXY,
	                 .backend = "web",
	                 .k8s_servers = k8s,
	                 .nk8s_servers = 1,
	                 .vm_servers = vms,
	                 .nvm_servers = 2};
	mg_plan_red x = {.source = MG_RED_INGRESS_NGINX,
	                 .namespace_ = "shop",
	                 .ingress = "web",
	                 .max_latency_quantile = 0.99};
	const mg_plan_red *reds[] = {&h, &x};
	for (size_t r = 0; r < 2; r++) {
		mg_red_side *s;
		size_t ns;
		cr_assert_eq(mg_promql_red_sides(&s, &ns, reds[r], 60000, &err), 0);
		for (size_t i = 0; i < ns; i++) {
			cr_assert(in_some(exprs, n, s[i].requests), "no panel has %s",
			          s[i].requests);
			cr_assert(in_some(exprs, n, s[i].errors), "no panel has %s", s[i].errors);
			cr_assert(in_some(exprs, n, s[i].latency), "no panel has %s", s[i].latency);
		}
		mg_promql_red_sides_free(s, ns);
	}
	/* migrate's own metrics: only those `run --metrics-addr` documents */
	char *doc = NULL;
	size_t len;
	cr_assert_eq(mg_fs_read_all(&doc, &len, "docs/cli.md", &err), 0, "%s", err.message);
	for (size_t i = 0; i < n; i++) {
		for (const char *m = strstr(exprs[i], "migrate_"); m;
		     m = strstr(m + 1, "migrate_")) {
			char name[80], row[96];
			size_t k = 0;
			while (k < sizeof(name) - 1 &&
			       (m[k] == '_' || (m[k] >= 'a' && m[k] <= 'z')))
				name[k] = m[k], k++;
			name[k] = '\0';
			snprintf(row, sizeof(row), "| `%s` |", name);
			cr_assert(strstr(doc, row), "%s is not in docs/cli.md's metrics table",
			          name);
		}
		free(exprs[i]);
	}
	free(doc);
	json_decref(dash);
}
