/*
 * The page: one HTML document with everything inline (the CSS, the SVG), a
 * Content-Security-Policy that forbids every fetch and every script, so a
 * report opened from a mail or a ticket loads nothing from anywhere; the
 * summary, the charts, and every event with its reason.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buildinfo.h"
#include "internal.h"

#define P  mg_report_buf_printf
#define PS mg_report_buf_put
#define E  mg_report_buf_esc

static const char page_style[] =
    "body{font-family:sans-serif;margin:24px auto;max-width:1040px;color:#222;padding:0 12px}"
    "h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px}"
    "h3{font-size:14px}.desc{color:#555;margin-top:0}"
    "table{border-collapse:collapse;font-size:13px}"
    "th,td{padding:3px 14px 3px 0;text-align:left;vertical-align:top}"
    "table.events td,table.events th,table.steps td,table.steps th{border-bottom:1px solid #eee}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".note{background:#fff4f2;border-left:4px solid #d62728;padding:8px 12px}"
    ".k-step{color:#1d7d72}.k-rollback,.k-failed,.o-fail,.o-failed{color:#c0282a}"
    ".o-pass,.o-ok{color:#2a8a2a}.o-inconclusive{color:#a77b00}"
    "figure{margin:0;overflow-x:auto}code{font-size:12px;word-break:break-all}"
    "td.reason{max-width:520px;white-space:pre-wrap}"
    "table.events td:first-child{white-space:nowrap}";

static void row(rp_buf *b, const char *th, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row(rp_buf *b, const char *th, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	P(b, "<tr><th>%s</th><td>", th);
	E(b, s ? s : "");
	PS(b, "</td></tr>");
	free(s);
}

static int by_step(const void *a, const void *b)
{
	const rp_step_time *x = a, *y = b;
	return (x->step > y->step) - (x->step < y->step);
}

static void summary(rp_buf *b, const mg_report *r)
{
	char d[48];
	mg_report_duration(d, sizeof(d), r->until_ms - r->since_ms);
	PS(b, "<h2>Summary</h2><table class=\"summary\">");
	row(b, "Duration", "%s", d);
	row(b, "Steps taken", "%zu", r->steps_taken);
	row(b, "Rollbacks", "%zu", r->rollbacks);
	row(b, "Failed moves", "%zu", r->failed_moves);
	row(b, "Gate verdicts", "%zu pass, %zu fail, %zu inconclusive", r->gates[0], r->gates[1],
	    r->gates[2]);
	row(b, "Pauses", "%zu (%zu resumed)", r->pauses, r->resumes);
	row(b, "Deploys", "%zu", r->deploys);
	row(b, "Traffic to the cluster", "%.4g%% at the start, %.4g%% at the end, %.4g%% at most",
	    r->initial_read_back, r->final_pct, r->max_pct);
	row(b, "Journal records", "%zu in the period, shown as %zu events%s", r->records, r->nev,
	    r->skipped ? " (some lines were not records and were skipped)" : "");
	PS(b, "</table>");

	PS(b, "<h3>Time at each step</h3><table class=\"steps\"><tr><th>Step</th><th>To the "
	      "cluster</th><th>Time</th><th>Of the period</th></tr>");
	rp_step_time *s = malloc((r->nat_step ? r->nat_step : 1) * sizeof(*s));
	if (!s) {
		b->oom = true;
		return;
	}
	if (r->nat_step)
		memcpy(s, r->at_step, r->nat_step * sizeof(*s));
	qsort(s, r->nat_step, sizeof(*s), by_step);
	int64_t span = r->until_ms - r->since_ms;
	for (size_t i = 0; i < r->nat_step; i++) {
		mg_report_duration(d, sizeof(d), s[i].ms);
		if (s[i].step == 0)
			PS(b, "<tr><td>none (all on the VMs)</td>");
		else
			P(b, "<tr><td>%d of %zu</td>", s[i].step, r->nsteps);
		P(b,
		  "<td class=\"n\">%.4g%%</td><td class=\"n\">%s</td><td class=\"n\">%.1f%%</td></tr>",
		  s[i].pct, d, span > 0 ? 100.0 * (double)s[i].ms / (double)span : 100.0);
	}
	free(s);
	PS(b, "</table>");
}

static void events(rp_buf *b, const mg_report *r)
{
	P(b,
	  "<h2>Events</h2><p>%zu, oldest first; an intent and the result of the same move are "
	  "one event.</p>",
	  r->nev);
	PS(b, "<table class=\"events\"><tr><th>Time (UTC)</th><th>Event</th><th>What</th>"
	      "<th>Reason</th><th>By</th></tr>");
	for (size_t i = 0; i < r->nev; i++) {
		const rp_event *e = &r->ev[i];
		char ts[40];
		mg_report_time(ts, sizeof(ts), e->t_ms);
		const char *k = mg_report_kind_name(e->kind);
		P(b, "<tr class=\"event\" data-kind=\"%s\"><td>%s</td><td class=\"k-%s", k, ts, k);
		if (e->outcome) {
			PS(b, " o-");
			E(b, e->outcome);
		}
		P(b, "\">%s", k);
		if (e->outcome) {
			PS(b, " ");
			E(b, e->outcome);
		}
		PS(b, "</td><td>");
		E(b, e->title ? e->title : "");
		PS(b, "</td><td class=\"reason\">");
		E(b, e->reason ? e->reason : "");
		PS(b, "</td><td>");
		E(b, e->operator_ ? e->operator_ : "");
		PS(b, "</td></tr>");
	}
	PS(b, "</table>");
}

static void page(rp_buf *b, const mg_report *r)
{
	char a[40], z[40], g[40], d[48];
	mg_report_time(a, sizeof(a), r->since_ms);
	mg_report_time(z, sizeof(z), r->until_ms);
	mg_report_time(g, sizeof(g), r->generated_ms);
	mg_report_duration(d, sizeof(d), r->until_ms - r->since_ms);
	PS(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<title>migrate report: ");
	E(b, r->plan);
	P(b, "</title>\n<style>%s</style></head>\n<body>\n<h1>Migration report: ", page_style);
	E(b, r->plan);
	PS(b, "</h1>\n");
	if (r->description) {
		PS(b, "<p class=\"desc\">");
		E(b, r->description);
		PS(b, "</p>\n");
	}
	P(b, "<p>From %s to %s (%s, UTC)", a, z, d);
	if (r->provider) {
		PS(b, "; balancer ");
		E(b, r->provider);
	}
	P(b, ". Made %s by migrate ", g);
	E(b, mg_buildinfo_version());
	PS(b, ".</p>\n");
	if (r->metrics_ok) {
		char w[32], s[32];
		mg_report_duration(w, sizeof(w), r->window_ms);
		mg_report_duration(s, sizeof(s), r->step_ms);
		PS(b, "<p>Requests, errors and latency per side from ");
		E(b, r->metrics_source);
		P(b,
		  " (the plan's slo.red queries as range queries: a point every %s, each over the "
		  "%s before it).</p>\n",
		  s, w);
	} else {
		PS(b, "<p class=\"note\" id=\"no-metrics\">");
		E(b, r->metrics_note ? r->metrics_note : "no metrics");
		PS(b, "</p>\n");
	}
	summary(b, r);
	PS(b, "<h2>Charts</h2>\n<figure>");
	mg_report_svg(b, r, false);
	PS(b, "</figure>\n");
	events(b, r);
	if (r->nseries) {
		PS(b, "<details><summary>Queries</summary><ul>");
		for (size_t i = 0; i < r->nseries; i++) {
			P(b, "<li>%s, %s: <code>", r->series[i].metric, r->series[i].side);
			E(b, r->series[i].queries);
			PS(b, "</code></li>");
		}
		PS(b, "</ul></details>\n");
	}
	PS(b, "</body></html>\n");
}

int mg_report_render(char **out, size_t *out_len, const mg_report *r, mg_report_format format,
                     mg_error *err)
{
	*out = NULL;
	if (out_len)
		*out_len = 0;
	rp_buf b = {0};
	if (format == MG_REPORT_SVG) {
		PS(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
		mg_report_svg(&b, r, true);
		PS(&b, "\n");
	} else {
		page(&b, r);
	}
	if (b.oom || !b.s) {
		free(b.s);
		return mg_error_oom(err);
	}
	*out = b.s;
	if (out_len)
		*out_len = b.len;
	return 0;
}
