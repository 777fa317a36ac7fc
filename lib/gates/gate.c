/*
 * SLO gates (see gate.h and docs/gates.md for the rules). Each check is
 * queried first and judged afterwards, because the verdicts depend on each
 * other: too little traffic makes every ratio inconclusive, and the VMs'
 * error ratio decides whether the cluster's errors are the cluster's fault.
 */
#include "gate.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql.h"
#include "store.h"
#include "units.h"

const char *mg_gate_outcome_name(mg_gate_outcome o)
{
	switch (o) {
	case MG_GATE_PASS:
		return "pass";
	case MG_GATE_FAIL:
		return "fail";
	case MG_GATE_INCONCLUSIVE:
		return "inconclusive";
	}
	return "?";
}

static char *dupf(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *f, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* One number from a query, or why there is none (malloc'd into *why). */
typedef struct {
	bool ok;
	bool no_data; /* !ok because the query had nothing (yet), not because it failed */
	double v;
	char *why;
} reading;

static void reading_clear(reading *r)
{
	free(r->why);
	memset(r, 0, sizeof(*r));
}

static void read_one(reading *r, mg_metrics *m, const char *query, int64_t at_ms)
{
	memset(r, 0, sizeof(*r));
	mg_metrics_result res = {0};
	mg_error err = MG_ERROR_INIT;
	if (mg_metrics_query(&res, m, query, at_ms, &err) < 0) {
		r->why = dupf("%s", err.message);
		mg_error_clear(&err);
		return;
	}
	if (res.type == MG_METRICS_SCALAR || res.type == MG_METRICS_VECTOR) {
		r->no_data = res.nseries == 0 ||
		             (res.nseries == 1 &&
		              (res.series[0].nsamples < 1 || isnan(res.series[0].samples[0].v)));
		if (res.nseries == 0)
			r->why = dupf("no data: the query returned an empty result");
		else if (res.nseries > 1)
			r->why =
			    dupf("the query returned %zu series; a gate needs one number (wrap "
			         "it in sum() or max())",
			         res.nseries);
		else if (res.series[0].nsamples < 1)
			r->why = dupf("no data: the query returned a series without a sample");
		else if (isnan(res.series[0].samples[0].v))
			r->why = dupf("no data: the query returned NaN (nothing to divide by?)");
		else {
			r->ok = true;
			r->v = res.series[0].samples[0].v;
		}
	} else {
		r->why = dupf("the query returned a %s; a gate needs one number",
		              mg_metrics_type_name(res.type));
	}
	mg_metrics_result_clear(&res);
}

static void set_detail(mg_gate_check *c, char *s)
{
	free(c->detail);
	c->detail = s;
}

/* A reading's value onto the check; false (and inconclusive) if there is none. */
static bool take(mg_gate_check *c, reading *r)
{
	if (!r->ok) {
		c->outcome = MG_GATE_INCONCLUSIVE;
		c->no_data = r->no_data;
		set_detail(c, r->why);
		r->why = NULL;
		return false;
	}
	c->has_value = true;
	c->value = r->v;
	return true;
}

static void judge_max(mg_gate_check *c)
{
	c->outcome = c->value <= c->threshold ? MG_GATE_PASS : MG_GATE_FAIL;
}

/* The cluster's error ratio as a multiple of the VMs'; 0/0 is "as good as the VMs". */
static double factor_of(double k8s, double vm)
{
	if (k8s == 0)
		return vm == 0 ? 1.0 : 0.0;
	return vm == 0 ? INFINITY : k8s / vm;
}

/* The RED checks: queried, then judged together. */
static int red_checks(mg_gate_eval *ev, mg_metrics *m, const mg_plan_slo *slo, bool too_young,
                      mg_error *err)
{
	mg_red_check *rc = NULL;
	size_t n = 0;
	int ret = mg_promql_red(&rc, &n, slo, ev->window_ms, err);
	if (ret)
		return ret;
	reading rd[4] = {0}, vm = {0};
	for (size_t i = 0; i < n; i++) {
		mg_gate_check *c = &ev->checks[ev->nchecks++];
		c->name = strdup(rc[i].name);
		c->query = rc[i].query;
		rc[i].query = NULL;
		c->other_query = rc[i].vm_query;
		rc[i].vm_query = NULL;
		c->threshold = rc[i].threshold;
		c->op = rc[i].kind == MG_RED_RATE ? ">=" : "<=";
		if (!c->name)
			ret = mg_error_oom(err);
		if (too_young)
			continue;
		read_one(&rd[i], m, c->query, ev->at_ms);
		if (c->other_query)
			read_one(&vm, m, c->other_query, ev->at_ms);
	}
	mg_promql_red_free(rc, n);
	if (ret || too_young)
		goto out;

	/* rate is always first: the traffic every other verdict stands on */
	mg_gate_check *rate = &ev->checks[ev->nchecks - n];
	bool enough = false;
	char win[32];
	mg_duration_format(win, sizeof(win), ev->window_ms);
	if (take(rate, &rd[0])) {
		enough = rate->value >= rate->threshold;
		rate->outcome = enough ? MG_GATE_PASS : MG_GATE_INCONCLUSIVE;
		if (!enough)
			set_detail(rate, dupf("%.0f requests to the cluster in %s; at least %.0f "
			                      "are needed to judge it (slo.min_requests)",
			                      rate->value, win, rate->threshold));
	}
	double vm_ratio = vm.ok ? vm.v : NAN, factor = -1, max_rate = -1;
	for (size_t i = 1; i < n; i++) {
		mg_gate_check *c = &ev->checks[ev->nchecks - n + i];
		if (!strcmp(c->name, "errors-vs-vms"))
			factor = c->threshold;
		if (!strcmp(c->name, "errors"))
			max_rate = c->threshold;
	}
	for (size_t i = 1; i < n; i++) {
		mg_gate_check *c = &ev->checks[ev->nchecks - n + i];
		if (!take(c, &rd[i]))
			continue;
		if (!enough && !strcmp(c->name, "errors-vs-vms") && !isnan(vm_ratio)) {
			/* shown as the factor, like when it is judged */
			c->has_other_value = true;
			c->other_value = vm_ratio;
			c->value = factor_of(c->value, vm_ratio);
		}
		if (!enough) {
			c->outcome = MG_GATE_INCONCLUSIVE;
			set_detail(c, dupf("too few requests to the cluster to judge (see rate)"));
			continue;
		}
		if (!strcmp(c->name, "errors")) {
			judge_max(c);
			if (c->outcome == MG_GATE_FAIL && factor >= 0 && !isnan(vm_ratio) &&
			    c->value <= factor * vm_ratio) {
				/* both sides hurt: a shared dependency, not the cluster */
				c->outcome = MG_GATE_INCONCLUSIVE;
				set_detail(
				    c, dupf("above max_error_rate, but the VMs fail as much "
				            "(%.4g): a shared cause, not the cluster; holding the "
				            "step",
				            vm_ratio));
			}
		} else if (!strcmp(c->name, "duration")) {
			judge_max(c);
		} else if (!strcmp(c->name, "errors-vs-vms")) {
			double k8s = c->value;
			if (isnan(vm_ratio)) {
				c->has_value = false;
				c->outcome = MG_GATE_INCONCLUSIVE;
				set_detail(c, dupf("no VM figure to compare with: %s",
				                   vm.why ? vm.why : "no data"));
				continue;
			}
			c->has_other_value = true;
			c->other_value = vm_ratio;
			/* the value shown is the factor; 0/0 is "as good as the VMs" */
			c->value = factor_of(k8s, vm_ratio);
			judge_max(c);
			if (c->outcome == MG_GATE_FAIL && max_rate >= 0 && k8s <= max_rate) {
				c->outcome = MG_GATE_PASS;
				set_detail(c, dupf("worse than the VMs (%.4g vs %.4g), but within "
				                   "max_error_rate",
				                   k8s, vm_ratio));
			}
		}
	}
out:
	for (size_t i = 0; i < 4; i++)
		reading_clear(&rd[i]);
	reading_clear(&vm);
	return ret;
}

static int custom_check(mg_gate_check *c, mg_metrics *m, const mg_plan_check *pc,
                        const mg_plan_slo *slo, int64_t at_ms, int64_t window_ms, bool too_young,
                        mg_error *err)
{
	c->name = strdup(pc->name);
	if (!c->name)
		return mg_error_oom(err);
	c->has_min = pc->has_min;
	c->has_max = pc->has_max;
	c->min = pc->min;
	c->max = pc->max;
	if (pc->has_min && pc->has_max) {
		c->op = "in";
	} else if (pc->has_min) {
		c->op = ">=";
		c->threshold = pc->min;
	} else if (pc->has_max) {
		c->op = "<=";
		c->threshold = pc->max;
	}
	int ret = mg_promql_expand(&c->query, pc->query, window_ms, slo->interval_ms, err);
	if (!ret && pc->baseline) {
		c->max_ratio = pc->max_ratio;
		ret = mg_promql_expand(&c->other_query, pc->baseline, window_ms, slo->interval_ms,
		                       err);
		/* with only a baseline there is no threshold for the value: see ratio */
	}
	if (ret || too_young)
		return ret;

	reading r, b = {0};
	read_one(&r, m, c->query, at_ms);
	bool ok = take(c, &r);
	reading_clear(&r);
	if (!ok)
		return 0;
	c->outcome = MG_GATE_PASS;
	if ((pc->has_min && c->value < pc->min) || (pc->has_max && c->value > pc->max))
		c->outcome = MG_GATE_FAIL;
	if (pc->baseline) {
		read_one(&b, m, c->other_query, at_ms);
		if (!b.ok) {
			if (c->outcome != MG_GATE_FAIL) {
				c->outcome = MG_GATE_INCONCLUSIVE;
				set_detail(c, dupf("baseline: %s", b.why));
			}
		} else {
			c->has_other_value = true;
			c->other_value = b.v;
			c->has_ratio = true;
			c->ratio = b.v == 0 ? (c->value == 0 ? 1.0 : INFINITY) : c->value / b.v;
			if (c->ratio > pc->max_ratio)
				c->outcome = MG_GATE_FAIL;
		}
		reading_clear(&b);
	}
	return 0;
}

int mg_gate_evaluate(mg_gate_eval *out, mg_metrics *m, const mg_plan_slo *slo, int64_t at_ms,
                     int64_t step_started_ms, mg_error *err)
{
	memset(out, 0, sizeof(*out));
	out->at_ms = at_ms;
	out->window_plan_ms = slo->window_ms;
	out->window_ms = slo->window_ms;
	if (step_started_ms > 0 && at_ms - step_started_ms < slo->window_ms) {
		/* whole seconds: scrapes are seconds apart, and the query text stays readable */
		int64_t age = at_ms - step_started_ms;
		out->window_ms = age > 0 ? age / 1000 * 1000 : 0;
		out->clamped = true;
	}
	bool too_young = out->window_ms < MG_GATE_MIN_WINDOW_MS;
	if (too_young)
		out->window_ms = MG_GATE_MIN_WINDOW_MS;

	size_t cap = (slo->red ? 4 : 0) + slo->nchecks;
	out->checks = calloc(cap ? cap : 1, sizeof(*out->checks));
	if (!out->checks)
		return mg_error_oom(err);
	int ret = 0;
	if (slo->red)
		ret = red_checks(out, m, slo, too_young, err);
	for (size_t i = 0; !ret && i < slo->nchecks; i++) {
		ret = custom_check(&out->checks[out->nchecks], m, &slo->checks[i], slo, at_ms,
		                   out->window_ms, too_young, err);
		out->nchecks++;
	}
	if (ret) {
		mg_gate_eval_clear(out);
		return ret;
	}
	out->outcome = out->nchecks ? MG_GATE_PASS : MG_GATE_INCONCLUSIVE;
	for (size_t i = 0; i < out->nchecks; i++) {
		mg_gate_check *c = &out->checks[i];
		if (too_young) {
			c->outcome = MG_GATE_INCONCLUSIVE;
			c->no_data = true;
			set_detail(c, dupf("the step is less than a second old: nothing to judge "
			                   "yet"));
		}
		if (c->outcome == MG_GATE_FAIL)
			out->outcome = MG_GATE_FAIL;
		else if (c->outcome == MG_GATE_INCONCLUSIVE && out->outcome == MG_GATE_PASS)
			out->outcome = MG_GATE_INCONCLUSIVE;
	}
	if (out->outcome == MG_GATE_INCONCLUSIVE && out->nchecks) {
		/* with slo.red the rate check is first: the traffic every other verdict needs */
		bool none = true;
		for (size_t i = 0; i < (slo->red ? 1 : out->nchecks); i++)
			none &= out->checks[i].no_data;
		out->awaiting_data = none;
	}
	return 0;
}

void mg_gate_eval_clear(mg_gate_eval *ev)
{
	if (!ev)
		return;
	for (size_t i = 0; i < ev->nchecks; i++) {
		free(ev->checks[i].name);
		free(ev->checks[i].query);
		free(ev->checks[i].other_query);
		free(ev->checks[i].detail);
	}
	free(ev->checks);
	memset(ev, 0, sizeof(*ev));
}

/* JSON has no NaN or Inf: those go as Prometheus writes them, as strings. */
static json_t *num(double v)
{
	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "+Inf" : "-Inf");
	return json_real(v);
}

json_t *mg_gate_eval_to_json(const mg_gate_eval *ev)
{
	char at[40], w[32], wp[32];
	mg_time_format(at, sizeof(at), ev->at_ms);
	mg_duration_format(w, sizeof(w), ev->window_ms);
	mg_duration_format(wp, sizeof(wp), ev->window_plan_ms);
	json_t *checks = json_array();
	for (size_t i = 0; i < ev->nchecks; i++) {
		const mg_gate_check *c = &ev->checks[i];
		json_t *o = json_pack("{s:s, s:s, s:o, s:s*, s:s*}", "name", c->name, "outcome",
		                      mg_gate_outcome_name(c->outcome), "value",
		                      c->has_value ? num(c->value) : json_null(), "op", c->op,
		                      "query", c->query);
		if (!o)
			continue;
		if (c->op && strcmp(c->op, "in") != 0)
			json_object_set_new(o, "threshold", num(c->threshold));
		if (c->has_min)
			json_object_set_new(o, "min", num(c->min));
		if (c->has_max)
			json_object_set_new(o, "max", num(c->max));
		if (c->other_query) {
			bool vm = !strcmp(c->name, "errors-vs-vms") && !c->has_ratio;
			json_object_set_new(o, vm ? "vm_query" : "baseline_query",
			                    json_string(c->other_query));
			json_object_set_new(o, vm ? "vm_value" : "baseline_value",
			                    c->has_other_value ? num(c->other_value) : json_null());
		}
		if (c->has_ratio) {
			json_object_set_new(o, "ratio", num(c->ratio));
			json_object_set_new(o, "max_ratio", num(c->max_ratio));
		}
		json_object_set_new(o, "detail", c->detail ? json_string(c->detail) : json_null());
		json_array_append_new(checks, o);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:o}", "outcome",
	                 mg_gate_outcome_name(ev->outcome), "at", at, "window", w, "window_plan",
	                 wp, "clamped", ev->clamped, "checks", checks);
}

static void fmt_num(char *buf, size_t size, double v)
{
	if (isinf(v))
		snprintf(buf, size, "%sInf", v > 0 ? "+" : "-");
	else
		snprintf(buf, size, "%.4g", v);
}

void mg_gate_eval_summary(char *buf, size_t size, const mg_gate_eval *ev)
{
	char w[32];
	mg_duration_format(w, sizeof(w), ev->window_ms);
	size_t n = 0;
	buf[0] = '\0';
	/* the checks that decided: the failures, else the inconclusive ones, else all */
	mg_gate_outcome show = ev->outcome;
	for (size_t i = 0; i < ev->nchecks && n + 1 < size; i++) {
		const mg_gate_check *c = &ev->checks[i];
		if (c->outcome != show)
			continue;
		char v[32], t[64];
		if (c->has_value)
			fmt_num(v, sizeof(v), c->value);
		else
			snprintf(v, sizeof(v), "no data");
		const char *op = c->op ? c->op : "";
		/* a custom check with only a baseline: its op and threshold are max_ratio's */
		bool ratio_only = c->max_ratio > 0 && !c->has_min && !c->has_max;
		if (c->has_min && c->has_max) {
			snprintf(t, sizeof(t), " in [%.4g, %.4g]", c->min, c->max);
		} else if (c->op && !ratio_only) {
			/* say how the value stands, whatever decided the verdict (a ratio,
			   the VMs) */
			bool above = c->has_value && c->value > c->threshold;
			bool below = c->has_value && c->value < c->threshold;
			if (!strcmp(op, "<=") && above)
				op = ">";
			else if (!strcmp(op, ">=") && below)
				op = "<";
			snprintf(t, sizeof(t), " %s %.4g", op, c->threshold);
		} else {
			t[0] = '\0';
		}
		char r[80] = "", rv[32];
		if (c->has_ratio) {
			if (isinf(c->ratio))
				snprintf(rv, sizeof(rv), "%sInf", c->ratio > 0 ? "+" : "-");
			else
				snprintf(rv, sizeof(rv), "%.3g", c->ratio);
			snprintf(r, sizeof(r), " (%sx the baseline, at most %.3gx)", rv,
			         c->max_ratio);
		}
		int k = snprintf(buf + n, size - n, "%s%s %s%s%s", n ? "; " : "", c->name, v, t, r);
		if (k < 0)
			break;
		n += (size_t)k < size - n ? (size_t)k : size - n - 1;
	}
	if (n + 1 < size)
		snprintf(buf + n, size - n, " (window %s%s)", w, ev->clamped ? ", clamped" : "");
}

void mg_gate_check_text(char *value, size_t vsize, char *rule, size_t rsize, const mg_gate_check *c)
{
	if (!c->has_value)
		snprintf(value, vsize, "-");
	else if (isinf(c->value))
		snprintf(value, vsize, "%sInf", c->value > 0 ? "+" : "-");
	else
		snprintf(value, vsize, "%.4g", c->value);
	int n = 0;
	if (c->has_min && c->has_max)
		n = snprintf(rule, rsize, "in [%.4g, %.4g]", c->min, c->max);
	else if (c->op)
		n = snprintf(rule, rsize, "%s %.4g", c->op, c->threshold);
	else
		rule[0] = '\0';
	size_t off = n > 0 && (size_t)n < rsize ? (size_t)n : strlen(rule);
	if (c->has_ratio)
		snprintf(rule + off, rsize - off, "%s%.3gx baseline (max %.3gx)", off ? ", " : "",
		         c->ratio, c->max_ratio);
	else if (c->has_other_value)
		snprintf(rule + off, rsize - off, " (VMs %.4g)", c->other_value);
}
