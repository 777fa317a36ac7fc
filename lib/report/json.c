/* The report's model as JSON (`migrate report -o json`; docs/cli.md, "report"). */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

static json_t *time_json(int64_t ms)
{
	char buf[40];
	mg_report_time(buf, sizeof(buf), ms);
	return json_string(buf);
}

/* A number, or null for NAN (JSON has no NaN). */
static json_t *num_json(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *str_json(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *points(const rp_point *a, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, json_pack("{s:o, s:o}", "time", time_json(a[i].t_ms),
		                                     "k8s_percent", json_real(a[i].pct)));
	return arr;
}

static json_t *traffic(const mg_report *r)
{
	return json_pack(
	    "{s:o, s:o, s:o, s:o}", "initial_applied_percent", json_real(r->initial_applied),
	    "initial_read_back_percent", json_real(r->initial_read_back), "applied",
	    points(r->applied, r->napplied), "read_back", points(r->read_back, r->nread_back));
}

static json_t *event_json(const rp_event *e)
{
	json_t *seq = json_array();
	for (size_t k = 0; seq && k < e->nseq; k++)
		json_array_append_new(seq, json_integer((json_int_t)e->seq[k]));
	return json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "time",
	                 time_json(e->t_ms), "kind", mg_report_kind_name(e->kind), "outcome",
	                 str_json(e->outcome), "title", str_json(e->title), "reason",
	                 str_json(e->reason), "command", str_json(e->command), "action",
	                 str_json(e->action), "operator", str_json(e->operator_), "seqs", seq);
}

static json_t *series_json(const mg_report *r, const rp_series *s)
{
	json_t *pts = json_array();
	for (size_t k = 0; pts && k < s->n; k++)
		json_array_append_new(pts,
		                      json_pack("{s:o, s:o}", "time",
		                                time_json(r->since_ms + (int64_t)k * r->step_ms),
		                                "value", num_json(s->v[k])));
	return json_pack("{s:s, s:s, s:s, s:s, s:o}", "metric", s->metric, "side", s->side, "unit",
	                 s->unit, "query", s->queries ? s->queries : "", "points", pts);
}

static json_t *summary(const mg_report *r)
{
	json_t *at = json_array();
	for (size_t i = 0; at && i < r->nat_step; i++) {
		const rp_step_time *s = &r->at_step[i];
		json_array_append_new(at, json_pack("{s:o, s:o, s:I}", "step",
		                                    s->step ? json_integer(s->step) : json_null(),
		                                    "k8s_percent", json_real(s->pct), "duration_ms",
		                                    (json_int_t)s->ms));
	}
	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:o, s:o, s:o, "
	    "s:o, s:o}",
	    "duration_ms", (json_int_t)(r->until_ms - r->since_ms), "steps",
	    (json_int_t)r->steps_taken, "rollbacks", (json_int_t)r->rollbacks, "failed_moves",
	    (json_int_t)r->failed_moves, "gates", "pass", (json_int_t)r->gates[0], "fail",
	    (json_int_t)r->gates[1], "inconclusive", (json_int_t)r->gates[2], "pauses",
	    (json_int_t)r->pauses, "resumes", (json_int_t)r->resumes, "deploys",
	    (json_int_t)r->deploys, "start_percent", json_real(r->initial_read_back), "end_percent",
	    json_real(r->final_pct), "max_percent", json_real(r->max_pct), "end_step",
	    r->final_step > 0 ? json_integer(r->final_step) : json_null(), "time_at_step", at);
}

static json_t *metrics(const mg_report *r)
{
	json_t *series = json_array();
	for (size_t i = 0; series && i < r->nseries; i++)
		json_array_append_new(series, series_json(r, &r->series[i]));
	return json_pack(
	    "{s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "available", r->metrics_ok, "source",
	    str_json(r->metrics_source), "note", str_json(r->metrics_note), "step_ms",
	    r->metrics_ok ? json_integer(r->step_ms) : json_null(), "window_ms",
	    r->metrics_ok ? json_integer(r->window_ms) : json_null(), "max_error_rate",
	    num_json(r->max_error_rate), "max_latency_seconds", num_json(r->max_latency_s),
	    "latency_quantile", num_json(r->quantile), "series", series);
}

json_t *mg_report_to_json(const mg_report *r)
{
	json_t *ev = json_array();
	for (size_t i = 0; ev && i < r->nev; i++)
		json_array_append_new(ev, event_json(&r->ev[i]));
	return json_pack("{s:s, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o}", "plan", r->plan,
	                 "since", time_json(r->since_ms), "until", time_json(r->until_ms),
	                 "generated", time_json(r->generated_ms), "records", (json_int_t)r->records,
	                 "skipped_lines", (json_int_t)r->skipped, "summary", summary(r), "traffic",
	                 traffic(r), "events", ev, "metrics", metrics(r));
}
