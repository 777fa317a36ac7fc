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

void mg_gate_judge_errors(mg_gate_error_verdict *out, const mg_gate_counts *c,
                          const mg_gate_error_rules *r, const mg_judge_opts *o)
{
	*out = (mg_gate_error_verdict){.rate = MG_GATE_INCONCLUSIVE,
	                               .errors = MG_GATE_INCONCLUSIVE,
	                               .vs_vms = MG_GATE_INCONCLUSIVE};
	double floor = r->min_requests > 1 ? (double)r->min_requests : 1;
	out->enough = c->requests >= floor;
	if (out->enough)
		out->rate = MG_GATE_PASS;
	bool has_abs = r->max_error_rate > 0 && r->max_error_rate < 1;
	if (has_abs)
		mg_judge_rate_test(&out->abs, c->errors, c->requests, r->max_error_rate, o);
	out->has_rel = r->factor >= 0 && c->vm_requests > 0 && c->requests > 0;
	if (out->has_rel)
		mg_judge_ratio_test(&out->rel, c->errors, c->requests, c->vm_errors, c->vm_requests,
		                    r->factor, o);
	if (!out->enough)
		return;
	mg_judge_side a = has_abs ? out->abs.side : MG_JUDGE_UNDECIDED;
	bool worse = out->has_rel && out->rel.side == MG_JUDGE_ABOVE;
	if (has_abs) {
		if (a == MG_JUDGE_BELOW)
			out->errors = MG_GATE_PASS;
		/* above, and not shown a shared cause: with VMs that served nothing there
		 * is nothing to share it with */
		else if (a == MG_JUDGE_ABOVE && (r->factor < 0 || !out->has_rel || worse))
			out->errors = MG_GATE_FAIL;
	}
	if (r->factor >= 0 && out->has_rel) {
		if (has_abs && a == MG_JUDGE_BELOW)
			out->vs_vms = MG_GATE_PASS;
		else if (worse)
			out->vs_vms =
			    !has_abs || a == MG_JUDGE_ABOVE ? MG_GATE_FAIL : MG_GATE_INCONCLUSIVE;
		else
			out->vs_vms = MG_GATE_PASS; /* one-sided: not shown worse */
	}
}

/* 1,800 for 1800: counts are read by people. */
static void group(char *buf, size_t size, double v)
{
	char raw[64];
	snprintf(raw, sizeof(raw), "%.0f", v);
	size_t len = strlen(raw), o = 0;
	for (size_t i = 0; i < len && o + 2 < size; i++) {
		if (i && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = raw[i];
	}
	buf[o] = '\0';
}

/* "needs about 1,800 more requests at the observed rate": two significant digits. */
static char *needs_text(double needed, const char *what)
{
	if (needed < 0)
		return dupf("at the observed rate no number of requests would decide it");
	double mag = pow(10, floor(log10(needed > 1 ? needed : 1)) - 1);
	char n[64];
	group(n, sizeof(n), mag >= 1 ? ceil(needed / mag) * mag : ceil(needed));
	return dupf("needs about %s more %s at the observed rate", n, what);
}

static void stats_from_rate(mg_gate_stats *st, const mg_judge_rate *t, const char *unit,
                            int64_t sample_ms, int period, double confidence)
{
	*st = (mg_gate_stats){.judged = true,
	                      .unit = unit,
	                      .requests = t->n,
	                      .events = t->x,
	                      .sample_ms = sample_ms,
	                      .period = period,
	                      .estimate = t->estimate,
	                      .bound = t->bound,
	                      .lower = t->lower,
	                      .upper = t->upper,
	                      .confidence = confidence,
	                      .alpha = t->alpha,
	                      .e_above = t->e_above,
	                      .e_below = t->e_below,
	                      .needed = t->needed,
	                      .side = t->side};
}

/* The VM comparison as the rate test it is run as, plus the VMs' counts. */
static void stats_from_ratio(mg_gate_stats *st, const mg_judge_ratio *t, int64_t sample_ms,
                             int period, double confidence)
{
	mg_judge_rate as_rate = {.side = t->side,
	                         .x = t->x,
	                         .n = t->n,
	                         .estimate = t->estimate,
	                         .bound = t->factor,
	                         .alpha = t->alpha,
	                         .e_above = t->e_above,
	                         .e_below = t->e_below,
	                         .lower = t->lower,
	                         .upper = t->upper,
	                         .needed = t->needed};
	stats_from_rate(st, &as_rate, "errors", sample_ms, period, confidence);
	st->has_vm = true;
	st->vm_requests = t->vm_n;
	st->vm_events = t->vm_x;
}

/* Bucket counts by le, sorted, from `sum by (le) (increase(..._bucket[S]))`. */
typedef struct {
	double le, count;
} bucket;

static int by_le(const void *a, const void *b)
{
	double x = ((const bucket *)a)->le, y = ((const bucket *)b)->le;
	return x < y ? -1 : x > y;
}

static size_t read_buckets(bucket **out, char **why, mg_metrics *m, const char *query,
                           int64_t at_ms)
{
	*out = NULL;
	mg_metrics_result res = {0};
	mg_error err = MG_ERROR_INIT;
	if (mg_metrics_query(&res, m, query, at_ms, &err) < 0) {
		*why = dupf("%s", err.message);
		mg_error_clear(&err);
		return 0;
	}
	size_t n = 0;
	bucket *b =
	    res.type == MG_METRICS_VECTOR && res.nseries ? calloc(res.nseries, sizeof(*b)) : NULL;
	for (size_t i = 0; b && i < res.nseries; i++) {
		const char *le = strstr(res.series[i].labels, "le=\"");
		if (!le || res.series[i].nsamples < 1 || isnan(res.series[i].samples[0].v))
			continue;
		le += 4;
		char *end = NULL;
		double v = !strncmp(le, "+Inf\"", 5) ? INFINITY : strtod(le, &end);
		if (!isinf(v) && (!end || *end != '"'))
			continue;
		b[n++] = (bucket){.le = v, .count = res.series[i].samples[0].v};
	}
	if (n)
		qsort(b, n, sizeof(*b), by_le);
	if (!n || !isinf(b[n - 1].le)) {
		*why = dupf("no data: the query returned no histogram buckets with an le=\"+Inf\" "
		            "(is this a histogram's _bucket series?)");
		free(b);
		b = NULL;
		n = 0;
	}
	mg_metrics_result_clear(&res);
	*out = b;
	return n;
}

/* The q-quantile of a histogram as Prometheus' histogram_quantile() estimates it. */
static double bucket_quantile(const bucket *b, size_t n, double q)
{
	double total = b[n - 1].count, rank = q * total, prev_le = 0, prev = 0;
	for (size_t i = 0; i < n; i++) {
		if (b[i].count >= rank) {
			if (isinf(b[i].le))
				return i ? b[i - 1].le : NAN;
			if (b[i].count == prev)
				return b[i].le;
			return prev_le + (b[i].le - prev_le) * (rank - prev) / (b[i].count - prev);
		}
		prev_le = b[i].le;
		prev = b[i].count;
	}
	return NAN;
}

/*
 * A latency quantile with its uncertainty: "the q-quantile is at most T" is
 * "at most 1 - q of the requests are slower than T", a rate the judge tests
 * like an error rate. Requests between two bucket bounds around T may be
 * either: the fail side counts them fast and the pass side slow, so neither
 * verdict leans on what the buckets cannot tell.
 */
static void judge_histogram(mg_gate_check *c, const bucket *b, size_t n, double q, long min_req,
                            int64_t sample_ms, int period, const mg_judge_opts *o)
{
	double total = b[n - 1].count, t = c->threshold, below = 0, upto = -1;
	double le_below = 0, le_upto = INFINITY;
	for (size_t i = 0; i < n; i++) {
		if (b[i].le <= t) {
			below = b[i].count;
			le_below = b[i].le;
		}
		if (b[i].le >= t && upto < 0) {
			upto = b[i].count;
			le_upto = b[i].le;
		}
	}
	double slow_most = total - below, slow_least = total - (upto < 0 ? total : upto);
	c->has_value = true;
	c->value = bucket_quantile(b, n, q);
	if (isnan(c->value))
		c->has_value = false;
	double floor = min_req > 1 ? (double)min_req : 1;
	mg_judge_rate fail, pass;
	mg_judge_rate_test(&fail, slow_least, total, 1 - q, o);
	mg_judge_rate_test(&pass, slow_most, total, 1 - q, o);
	const mg_judge_rate *shown = &pass;
	char qs[16];
	snprintf(qs, sizeof(qs), "p%g", q * 100);
	if (total < floor) {
		c->outcome = MG_GATE_INCONCLUSIVE;
		set_detail(c, dupf("too few requests to the cluster to judge (see rate)"));
	} else if (fail.side == MG_JUDGE_ABOVE) {
		c->outcome = MG_GATE_FAIL;
		shown = &fail;
		set_detail(c, dupf("more than %g%% of the requests took longer than %gs (at least "
		                   "%.0f of %.0f), so %s is above it with %g%% confidence",
		                   (1 - q) * 100, t, slow_least, total, qs, o->confidence * 100));
	} else if (pass.side == MG_JUDGE_BELOW) {
		c->outcome = MG_GATE_PASS;
	} else {
		c->outcome = MG_GATE_INCONCLUSIVE;
		char *needs = needs_text(pass.needed, "requests");
		set_detail(c, dupf("%s of the %s is not yet shown under %gs with %g%% confidence "
		                   "(%.0f of %.0f slower); %s",
		                   qs, "latency", t, o->confidence * 100, slow_most, total, needs));
		free(needs);
	}
	stats_from_rate(&c->stats, shown, "slow requests", sample_ms, period, o->confidence);
	if (le_below != le_upto && c->outcome != MG_GATE_FAIL && c->outcome != MG_GATE_PASS) {
		char *d = dupf("%s; max_latency %gs falls between the buckets %g and %g, whose "
		               "requests count as slow here",
		               c->detail, t, le_below, le_upto);
		set_detail(c, d);
	}
}

/* The RED checks: queried, then judged together on counts. */
static int red_checks(mg_gate_eval *ev, mg_metrics *m, const mg_plan_slo *slo, bool too_young,
                      int64_t sample_ms, int period, mg_error *err)
{
	mg_red_check *rc = NULL;
	size_t n = 0;
	int ret = mg_promql_red(&rc, &n, slo, ev->window_ms, sample_ms, err);
	if (ret)
		return ret;
	mg_gate_check *base = &ev->checks[ev->nchecks];
	reading rd[4] = {0}, vm_err = {0}, vm_req = {0};
	bucket *buckets = NULL;
	size_t nbuckets = 0;
	char *bucket_why = NULL;
	double quantile = 0.99;
	for (size_t i = 0; i < n; i++) {
		mg_gate_check *c = &ev->checks[ev->nchecks++];
		c->name = strdup(rc[i].name);
		c->query = rc[i].query;
		rc[i].query = NULL;
		c->other_query = rc[i].vm_query;
		rc[i].vm_query = NULL;
		c->vm_requests_query = rc[i].vm_requests_query;
		rc[i].vm_requests_query = NULL;
		c->threshold = rc[i].threshold;
		c->op = rc[i].kind == MG_RED_RATE ? ">=" : "<=";
		/* the errors are judged against the requests: both queries are evidence */
		if (rc[i].kind == MG_RED_ERRORS || rc[i].kind == MG_RED_ERRORS_VS_VMS) {
			c->requests_query = strdup(base[0].query);
			if (!c->requests_query)
				ret = mg_error_oom(err);
		}
		if (!c->name)
			ret = mg_error_oom(err);
		if (too_young)
			continue;
		if (rc[i].histogram) {
			quantile = rc[i].quantile;
			nbuckets = read_buckets(&buckets, &bucket_why, m, c->query, ev->at_ms);
			continue;
		}
		read_one(&rd[i], m, c->query, ev->at_ms);
		if (c->other_query) {
			read_one(&vm_err, m, c->other_query, ev->at_ms);
			read_one(&vm_req, m, c->vm_requests_query, ev->at_ms);
		}
	}
	mg_promql_red_free(rc, n);
	if (ret || too_young)
		goto out;

	/* rate is always first: the traffic every other verdict stands on */
	mg_gate_check *rate = &base[0];
	char sample[32];
	mg_duration_format(sample, sizeof(sample), sample_ms);
	/* the floor the rate check holds the others to: one request, or min_requests */
	rate->threshold = slo->min_requests > 1 ? (double)slo->min_requests : 1;
	bool counted = take(rate, &rd[0]);
	mg_gate_counts counts = {.requests = counted ? rate->value : 0, .vm_requests = -1};
	mg_gate_error_rules rules = {
	    .max_error_rate = -1, .factor = -1, .min_requests = slo->min_requests};
	mg_judge_opts opts = {.confidence = slo->confidence > 0 ? slo->confidence : 0.95,
	                      .period = period};
	for (size_t i = 1; i < n; i++) {
		mg_gate_check *c = &base[i];
		if (!strcmp(c->name, "errors")) {
			rules.max_error_rate = c->threshold;
			if (rd[i].ok)
				counts.errors = rd[i].v;
		} else if (!strcmp(c->name, "errors-vs-vms")) {
			rules.factor = c->threshold;
			if (rd[i].ok)
				counts.errors = rd[i].v;
			if (vm_req.ok && vm_err.ok) {
				counts.vm_requests = vm_req.v;
				counts.vm_errors = vm_err.v;
			}
		}
	}
	mg_gate_error_verdict v;
	mg_gate_judge_errors(&v, &counts, &rules, &opts);
	if (counted) {
		rate->outcome = v.rate;
		if (!v.enough)
			set_detail(
			    rate, slo->min_requests > 1
			              ? dupf("%.0f requests to the cluster in %s; at least %ld are "
			                     "needed to judge it (slo.min_requests)",
			                     rate->value, sample, slo->min_requests)
			              : dupf("no requests reached the cluster in %s", sample));
	}
	for (size_t i = 1; i < n; i++) {
		mg_gate_check *c = &base[i];
		if (!strcmp(c->name, "duration") && nbuckets) {
			if (!counted) {
				c->outcome = MG_GATE_INCONCLUSIVE;
				set_detail(c,
				           dupf("no count of the cluster's requests (see rate)"));
				continue;
			}
			judge_histogram(c, buckets, nbuckets, quantile, slo->min_requests,
			                sample_ms, period, &opts);
			continue;
		}
		if (!strcmp(c->name, "duration") && bucket_why) {
			c->outcome = MG_GATE_INCONCLUSIVE;
			c->no_data = !strncmp(bucket_why, "no data", 7);
			set_detail(c, bucket_why);
			bucket_why = NULL;
			continue;
		}
		if (!take(c, &rd[i]))
			continue;
		if (!strcmp(c->name, "duration")) {
			judge_max(c);
			set_detail(c, dupf("HAProxy exports an average response time, not a "
			                   "histogram: judged on the value alone, without a "
			                   "confidence"));
			continue;
		}
		if (!counted) {
			c->has_value = false;
			c->outcome = MG_GATE_INCONCLUSIVE;
			set_detail(c, dupf("no count of the cluster's requests (see rate)"));
			continue;
		}
		if (!strcmp(c->name, "errors")) {
			c->value = v.abs.estimate;
			c->has_value = !isnan(c->value);
			c->outcome = v.errors;
			stats_from_rate(&c->stats, &v.abs, "errors", sample_ms, period,
			                opts.confidence);
			char conf[16];
			snprintf(conf, sizeof(conf), "%g%%", opts.confidence * 100);
			if (!v.enough)
				set_detail(
				    c, dupf("too few requests to the cluster to judge (see rate)"));
			else if (v.errors == MG_GATE_FAIL)
				set_detail(
				    c, dupf("above max_error_rate with %s confidence (%.0f errors "
				            "in %.0f requests)",
				            conf, v.abs.x, v.abs.n));
			else if (v.abs.side == MG_JUDGE_ABOVE && v.has_rel &&
			         v.rel.side == MG_JUDGE_BELOW)
				set_detail(
				    c, dupf("above max_error_rate, but the VMs fail as much "
				            "(%.0f errors in %.0f requests): a shared cause, not "
				            "the cluster; holding the step",
				            v.rel.vm_x, v.rel.vm_n));
			else if (v.abs.side == MG_JUDGE_ABOVE) {
				char *needs = needs_text(v.rel.needed, "requests");
				set_detail(
				    c, dupf("above max_error_rate with %s confidence, but not yet "
				            "shown worse than the VMs (%.0f errors in %.0f "
				            "requests), which may share the cause; %s",
				            conf, v.rel.vm_x, v.rel.vm_n, needs));
				free(needs);
			} else if (v.errors == MG_GATE_INCONCLUSIVE) {
				char *needs = needs_text(v.abs.needed, "requests");
				set_detail(c,
				           dupf("neither above nor below max_error_rate with %s "
				                "confidence yet (%.0f errors in %.0f requests); %s",
				                conf, v.abs.x, v.abs.n, needs));
				free(needs);
			}
		} else if (!strcmp(c->name, "errors-vs-vms")) {
			if (!v.has_rel) {
				c->has_value = false;
				c->outcome = MG_GATE_INCONCLUSIVE;
				set_detail(c,
				           dupf("no VM figure to compare with: %s",
				                !vm_req.ok   ? (vm_req.why ? vm_req.why : "no data")
				                : !vm_err.ok ? (vm_err.why ? vm_err.why : "no data")
				                             : "the VMs served no requests"));
				continue;
			}
			/* the value is the least the ratio can be: finite even when the VMs had
			 * no errors, and above the factor exactly when it is shown worse */
			c->value = v.rel.lower;
			c->has_other_value = true;
			c->other_value = v.rel.vm_n > 0 ? v.rel.vm_x / v.rel.vm_n : NAN;
			c->outcome = v.vs_vms;
			stats_from_ratio(&c->stats, &v.rel, sample_ms, period, opts.confidence);
			char conf[16];
			snprintf(conf, sizeof(conf), "%g%%", opts.confidence * 100);
			if (!v.enough)
				set_detail(
				    c, dupf("too few requests to the cluster to judge (see rate)"));
			else if (v.rel.side == MG_JUDGE_ABOVE && v.vs_vms == MG_GATE_PASS)
				set_detail(
				    c, dupf("worse than the VMs (%.0f of %.0f vs %.0f of %.0f), "
				            "but within max_error_rate",
				            v.rel.x, v.rel.n, v.rel.vm_x, v.rel.vm_n));
			else if (v.vs_vms == MG_GATE_INCONCLUSIVE)
				set_detail(
				    c, dupf("worse than the VMs with %s confidence, but not yet "
				            "shown above max_error_rate (see errors)",
				            conf));
			else if (v.vs_vms == MG_GATE_FAIL)
				set_detail(c, dupf("at least %.3gx the VMs' error rate with %s "
				                   "confidence (%.0f of %.0f vs %.0f of %.0f)",
				                   v.rel.lower, conf, v.rel.x, v.rel.n, v.rel.vm_x,
				                   v.rel.vm_n));
			else if (v.rel.side == MG_JUDGE_UNDECIDED && v.rel.x > 0)
				set_detail(c,
				           dupf("not shown worse than %gx the VMs (%.0f of %.0f vs "
				                "%.0f of %.0f): this check only fails",
				                c->threshold, v.rel.x, v.rel.n, v.rel.vm_x,
				                v.rel.vm_n));
		}
	}
out:
	for (size_t i = 0; i < 4; i++)
		reading_clear(&rd[i]);
	reading_clear(&vm_err);
	reading_clear(&vm_req);
	free(buckets);
	free(bucket_why);
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

	/* the sample the counts are judged on: the step's current test period */
	int period = 1;
	int64_t sample_ms = out->window_ms;
	if (step_started_ms > 0 && at_ms > step_started_ms) {
		int64_t len =
		    slo->test_period_ms > slo->window_ms ? slo->test_period_ms : slo->window_ms;
		mg_judge_period(&period, &sample_ms, at_ms - step_started_ms, len);
		if (sample_ms < MG_GATE_MIN_WINDOW_MS)
			sample_ms = MG_GATE_MIN_WINDOW_MS;
	}
	out->period = period;
	out->sample_ms = sample_ms;

	size_t cap = (slo->red ? 4 : 0) + slo->nchecks;
	out->checks = calloc(cap ? cap : 1, sizeof(*out->checks));
	if (!out->checks)
		return mg_error_oom(err);
	int ret = 0;
	if (slo->red)
		ret = red_checks(out, m, slo, too_young, sample_ms, period, err);
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
		free(ev->checks[i].requests_query);
		free(ev->checks[i].vm_requests_query);
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

static const char *side_name(mg_judge_side s)
{
	return s == MG_JUDGE_ABOVE ? "above" : s == MG_JUDGE_BELOW ? "below" : "undecided";
}

/*
 * Everything a verdict on counts stands on, so it can be checked by hand:
 * the counts, the estimate and its interval, the bound, the level and the
 * evidence each way against 1/alpha (docs/gates.md).
 */
static json_t *stats_json(const mg_gate_stats *st)
{
	char sw[32];
	mg_duration_format(sw, sizeof(sw), st->sample_ms);
	bool slow = st->unit && !strcmp(st->unit, "slow requests");
	json_t *counts =
	    json_pack("{s:f, s:f}", "requests", st->requests, slow ? "slow" : "errors", st->events);
	if (st->has_vm) {
		json_object_set_new(counts, "vm_requests", json_real(st->vm_requests));
		json_object_set_new(counts, "vm_errors", json_real(st->vm_events));
	}
	json_t *o =
	    json_pack("{s:o, s:s, s:i, s:o, s:o, s:[o,o], s:f, s:f, s:s}", "counts", counts,
	              "sample", sw, "period", st->period, "estimate",
	              isfinite(st->estimate) ? json_real(st->estimate) : json_null(), "bound",
	              num(st->bound), "interval", num(st->lower), num(st->upper), "confidence",
	              st->confidence, "alpha", st->alpha, "side", side_name(st->side));
	if (!o)
		return json_null();
	json_object_set_new(o, "evidence",
	                    json_pack("{s:o, s:o, s:o}", "above", num(st->e_above), "below",
	                              num(st->e_below), "needed", num(1 / st->alpha)));
	json_object_set_new(o, "needs_requests",
	                    st->needed > 0 ? json_real(ceil(st->needed)) : json_null());
	return o;
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
		if (c->requests_query)
			json_object_set_new(o, "requests_query", json_string(c->requests_query));
		if (c->vm_requests_query)
			json_object_set_new(o, "vm_requests_query",
			                    json_string(c->vm_requests_query));
		if (c->stats.judged)
			json_object_set_new(o, "judge", stats_json(&c->stats));
		json_array_append_new(checks, o);
	}
	char sw[32];
	mg_duration_format(sw, sizeof(sw), ev->sample_ms);
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:i, s:o}", "outcome",
	                 mg_gate_outcome_name(ev->outcome), "at", at, "window", w, "window_plan",
	                 wp, "clamped", ev->clamped, "sample", sw, "period",
	                 ev->period > 0 ? ev->period : 1, "checks", checks);
}

/* "12/1000, 95%: 0.0071..0.043" (errors-vs-vms: "12/1000 vs VMs 0/1000, ..."). */
static void stats_text(char *buf, size_t size, const mg_gate_stats *st, bool needs)
{
	char lo[32], hi[32], vm[80] = "", nd[64] = "";
	snprintf(lo, sizeof(lo), "%.2g", st->lower);
	if (isinf(st->upper))
		snprintf(hi, sizeof(hi), "+Inf");
	else
		snprintf(hi, sizeof(hi), "%.2g", st->upper);
	if (st->has_vm)
		snprintf(vm, sizeof(vm), " vs VMs %.0f/%.0f", st->vm_events, st->vm_requests);
	if (needs && st->needed > 0)
		snprintf(nd, sizeof(nd), ", needs ~%.2g more requests", st->needed);
	else if (needs && st->needed < 0 && st->side == MG_JUDGE_UNDECIDED)
		snprintf(nd, sizeof(nd), ", undecidable at this rate");
	snprintf(buf, size, "%.0f/%.0f%s, %g%%: %s..%s%s", st->events, st->requests, vm,
	         st->confidence * 100, lo, hi, nd);
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
		char r[200] = "", rv[32];
		if (c->has_ratio) {
			if (isinf(c->ratio))
				snprintf(rv, sizeof(rv), "%sInf", c->ratio > 0 ? "+" : "-");
			else
				snprintf(rv, sizeof(rv), "%.3g", c->ratio);
			snprintf(r, sizeof(r), " (%sx the baseline, at most %.3gx)", rv,
			         c->max_ratio);
		}
		if (c->stats.judged) {
			char st[160];
			stats_text(st, sizeof(st), &c->stats, c->outcome == MG_GATE_INCONCLUSIVE);
			snprintf(r, sizeof(r), " (%s)", st);
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
	if (c->stats.judged) {
		char st[160];
		stats_text(st, sizeof(st), &c->stats, false);
		snprintf(rule + off, rsize - off, " (%s)", st);
	} else if (c->has_ratio)
		snprintf(rule + off, rsize - off, "%s%.3gx baseline (max %.3gx)", off ? ", " : "",
		         c->ratio, c->max_ratio);
	else if (c->has_other_value)
		snprintf(rule + off, rsize - off, " (VMs %.4g)", c->other_value);
}
