/*
 * What `migrate run --metrics-addr` shows about itself: the Prometheus text
 * exposition format 0.0.4 of the migration's state and the autopilot's last
 * evaluation, and the probes of a Kubernetes Deployment (docs/cli.md, "migrate
 * run", lists every family). Built from what the state and the autopilot
 * already hold: nothing here queries the balancer or Prometheus, so a scrape
 * costs the migration nothing and says what migrate believes, not more.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buildinfo.h"
#include "clock.h"
#include "internal.h"
#include "serve.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* /healthz turns 503 after this long without a tick, unless one tick may take longer. */
#define LIVE_MIN_MS 30000
/* One evaluation's queries at most: the RED presets (rate, errors, duration, and the VMs'
 * side of errors-vs-vms, with room for one more), and each custom check and its baseline. */
#define RED_QUERIES_MAX 6

typedef struct {
	FILE *f;
	const char *plan;
} out;

/* A label value as the format wants it: backslash, double quote and newline escaped. */
static void put_escaped(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* A sample value: Go's spelling of the special values, else the shortest exact decimal. */
static void put_value(FILE *f, double v)
{
	if (isnan(v)) {
		fputs("NaN", f);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "+Inf" : "-Inf", f);
		return;
	}
	char buf[40];
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	fputs(buf, f);
}

static void family(out *o, const char *name, const char *help)
{
	/* every family here is a gauge: each value can go down as well as up */
	fprintf(o->f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* name{plan="P"[,k1="v1"[,k2="v2"]]} value; k1, k2 may be NULL. */
static void sample(out *o, const char *name, const char *k1, const char *v1, const char *k2,
                   const char *v2, double value)
{
	fprintf(o->f, "%s{plan=\"", name);
	put_escaped(o->f, o->plan);
	fputc('"', o->f);
	const char *k[2] = {k1, k2}, *v[2] = {v1, v2};
	for (int i = 0; i < 2; i++) {
		if (!k[i])
			continue;
		fprintf(o->f, ",%s=\"", k[i]);
		put_escaped(o->f, v[i]);
		fputc('"', o->f);
	}
	fputs("} ", o->f);
	put_value(o->f, value);
	fputc('\n', o->f);
}

static void one(out *o, const char *name, const char *help, double value)
{
	family(o, name, help);
	sample(o, name, NULL, NULL, NULL, NULL, value);
}

static const char *const outcomes[] = {"pass", "fail", "inconclusive"};

/* The state set of one outcome: 1 for the one it is, 0 for the others (all 0: none). */
static void outcome_set(out *o, const char *name, const char *check, const char *is)
{
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(*outcomes); i++)
		sample(o, name, check ? "check" : "outcome", check ? check : outcomes[i],
		       check ? "outcome" : NULL, outcomes[i], is && !strcmp(is, outcomes[i]));
}

static void gates(out *o, const mg_autopilot_view *v)
{
	const mg_state *st = v->st;
	const mg_gate_eval *ev = v->last;
	/* the autopilot's evaluation when it has one at this step, else what the state recorded */
	const char *last = ev ? mg_gate_outcome_name(ev->outcome) : st->gate_last;
	int64_t at = ev ? ev->at_ms : st->gate_last_ms;
	family(o, "migrate_gate_outcome",
	       "Outcome of the last evaluation of the gates at this step (1 for the outcome it "
	       "had; all 0 before one).");
	outcome_set(o, "migrate_gate_outcome", NULL, last[0] ? last : NULL);
	if (at > 0)
		one(o, "migrate_gate_evaluation_timestamp_seconds",
		    "When the gates were last evaluated at this step, in Unix seconds.",
		    (double)at / 1000);
	one(o, "migrate_gate_failures",
	    "Failed evaluations of the gates at this step (slo.on_failure applies at "
	    "migrate_gate_failure_limit).",
	    st->gate_failures);
	if (v->slo)
		one(o, "migrate_gate_failure_limit", "slo.failure_limit of the plan.",
		    v->slo->failure_limit);
	if (!ev || !ev->nchecks)
		return;
	family(o, "migrate_gate_check_outcome",
	       "Outcome of each check in the last evaluation at this step (1 for the outcome it "
	       "had).");
	for (size_t i = 0; i < ev->nchecks; i++)
		outcome_set(o, "migrate_gate_check_outcome", ev->checks[i].name,
		            mg_gate_outcome_name(ev->checks[i].outcome));
	family(o, "migrate_gate_check_value",
	       "Value each check observed in the last evaluation (absent: no data), in the unit "
	       "of its threshold.");
	for (size_t i = 0; i < ev->nchecks; i++)
		if (ev->checks[i].has_value)
			sample(o, "migrate_gate_check_value", "check", ev->checks[i].name, NULL,
			       NULL, ev->checks[i].value);
	family(o, "migrate_gate_check_threshold",
	       "Bound each check must keep to pass: bound=\"min\" (value >= it) or \"max\" "
	       "(value <= it).");
	for (size_t i = 0; i < ev->nchecks; i++) {
		const mg_gate_check *k = &ev->checks[i];
		if (!k->op)
			continue;
		if (!strcmp(k->op, "in")) {
			if (k->has_min)
				sample(o, "migrate_gate_check_threshold", "check", k->name, "bound",
				       "min", k->min);
			if (k->has_max)
				sample(o, "migrate_gate_check_threshold", "check", k->name, "bound",
				       "max", k->max);
		} else {
			sample(o, "migrate_gate_check_threshold", "check", k->name, "bound",
			       !strcmp(k->op, ">=") ? "min" : "max", k->threshold);
		}
	}
}

int mg_autopilot_metrics_render(char **text, const mg_autopilot_view *v, mg_error *err)
{
	*text = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return mg_error_oom(err);
	out o = {.f = f, .plan = v->plan ? v->plan : ""};
	const mg_state *st = v->st;
	const mg_plan_traffic *t = v->traffic;

	family(&o, "migrate_build_info", "The release of this migrate binary (always 1).");
	fputs("migrate_build_info{version=\"", f);
	put_escaped(f, mg_buildinfo_version());
	fputs("\",revision=\"", f);
	put_escaped(f, mg_buildinfo_revision());
	fputs("\"} 1\n", f);

	static const char *const roles[] = {"leader", "standby", "single"};
	family(&o, "migrate_role",
	       "What this process is for the plan: leader (moves traffic), standby (waits to "
	       "lead) or single (no election); 1 for the role it has.");
	for (size_t i = 0; i < sizeof(roles) / sizeof(*roles); i++)
		sample(&o, "migrate_role", "role", roles[i], NULL, NULL,
		       v->role && !strcmp(v->role, roles[i]));

	family(&o, "migrate_phase",
	       "Phase of the migration as state.json records it; 1 for the phase it is in.");
	for (int p = MG_PHASE_IDLE; p <= MG_PHASE_COMPLETE; p++)
		sample(&o, "migrate_phase", "phase", mg_phase_name((mg_phase)p), NULL, NULL,
		       st->phase == (mg_phase)p);

	one(&o, "migrate_step",
	    "Current step, 1 for the first of traffic.steps; 0 before the first step.",
	    st->step_index + 1);
	one(&o, "migrate_steps", "Number of steps in traffic.steps.", (double)t->nsteps);
	bool on_step = st->step_index >= 0 && (size_t)st->step_index < t->nsteps;
	one(&o, "migrate_step_cluster_ratio",
	    "Share of the traffic the current step of traffic.steps gives the cluster (0 to 1).",
	    on_step ? t->steps[st->step_index] / 100 : 0);
	if (st->has_applied)
		one(&o, "migrate_cluster_applied_ratio",
		    "Share of the traffic migrate last set the balancer to send to the cluster "
		    "(0 to 1).",
		    st->applied_k8s_percent / 100);
	if (st->has_read_back) {
		one(&o, "migrate_cluster_read_back_ratio",
		    "Share of the traffic the balancer reported sending to the cluster when migrate "
		    "last read it back (0 to 1).",
		    st->read_back_k8s_percent / 100);
		one(&o, "migrate_cluster_read_back_timestamp_seconds",
		    "When the balancer was last read back, in Unix seconds.",
		    (double)st->read_back_ms / 1000);
	}
	if (st->step_started_ms > 0)
		one(&o, "migrate_step_started_timestamp_seconds",
		    "When the current step began, in Unix seconds.",
		    (double)st->step_started_ms / 1000);
	int64_t left = 0;
	if (on_step && st->step_started_ms > 0 && st->step_started_ms + t->bake_ms > v->now_ms)
		left = st->step_started_ms + t->bake_ms - v->now_ms;
	one(&o, "migrate_bake_remaining_seconds",
	    "Seconds until the current step has baked for traffic.bake (0: baked, or no step).",
	    (double)left / 1000);

	gates(&o, v);

	if (v->last_tick_ms > 0)
		one(&o, "migrate_autopilot_last_tick_timestamp_seconds",
		    "When the autopilot's loop last ran, in Unix seconds.",
		    (double)v->last_tick_ms / 1000);

	bool failed = ferror(f) != 0;
	if (fclose(f) != 0 || failed || !buf) {
		free(buf);
		return mg_error_oom(err);
	}
	*text = buf;
	return 0;
}

int mg_autopilot_metrics_text(char **text, const mg_migration *m, const mg_autopilot *ap,
                              const char *role, int64_t now_ms, mg_error *err)
{
	mg_autopilot_view v = {.plan = mg_plan_name(m->plan),
	                       .st = &m->st,
	                       .traffic = m->traffic,
	                       .slo = m->slo,
	                       .last = ap ? mg_autopilot_last(ap) : NULL,
	                       .last_tick_ms = ap ? mg_autopilot_last_tick_ms(ap) : 0,
	                       .role = role,
	                       .now_ms = now_ms};
	return mg_autopilot_metrics_render(text, &v, err);
}

int64_t mg_autopilot_live_ms(const mg_migration *m)
{
	int64_t live = LIVE_MIN_MS;
	const mg_plan_slo *slo = m ? m->slo : NULL;
	if (!slo)
		return live;
	/* a tick that evaluates may wait for every query: each is cut at twice the timeout */
	int64_t timeout = slo->prometheus_timeout_ms > 0 ? slo->prometheus_timeout_ms : 10000;
	int64_t queries = (slo->red ? RED_QUERIES_MAX : 0) + 2 * (int64_t)slo->nchecks;
	int64_t eval = queries * 2 * timeout + LIVE_MIN_MS;
	if (eval > live)
		live = eval;
	if (3 * slo->interval_ms > live)
		live = 3 * slo->interval_ms;
	return live;
}

int mg_autopilot_publish(mg_serve *srv, const mg_migration *m, const mg_autopilot *ap,
                         const char *role, bool ready, mg_error *err)
{
	int rc = 0;
	if (m) {
		char *text;
		rc = mg_autopilot_metrics_text(&text, m, ap, role, mg_now_ms(), err);
		if (rc)
			return rc;
		rc = mg_serve_publish(srv, "/metrics", 200, CONTENT_TYPE, text, 0, err);
		free(text);
	}
	if (!rc)
		rc = mg_serve_publish(srv, "/healthz", 200, NULL, "ok\n", mg_autopilot_live_ms(m),
		                      err);
	if (!rc)
		rc = mg_serve_publish(srv, "/readyz", ready ? 200 : 503, NULL,
		                      ready ? "ready\n" : "not ready: not in its loop\n", 0, err);
	return rc;
}
