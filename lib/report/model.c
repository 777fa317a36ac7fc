/*
 * The report's model from the journal: one walk over every record, oldest
 * first, one record in memory at a time. Records before the period set where
 * traffic stood when it began; records in it become events (markers) and
 * points of the traffic share; records after it are skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "journal.h"
#include "secret.h"
#include "str.h"

static const char *const kind_names[RP_NKINDS] = {
    "step", "rollback", "failed", "gate", "pause", "resume", "deploy", "autopilot", "other"};

const char *mg_report_kind_name(rp_kind k)
{
	return k < RP_NKINDS ? kind_names[k] : "other";
}

/* ---- small helpers ---- */

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A number of a JSON object, or NAN. */
static double num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A step of a position: 0 for null ("before the first step"), -1 when absent or not a step. */
static int step_of(json_t *pos)
{
	json_t *s = json_object_get(pos, "step");
	if (json_is_null(s))
		return 0;
	if (json_is_integer(s) && json_integer_value(s) > 0 && json_integer_value(s) < 100000)
		return (int)json_integer_value(s);
	return -1;
}

/* A text of another party for the model: scrubbed of every secret migrate holds. */
static char *scrubbed(const char *s)
{
	return s ? mg_scrub_dup(s) : NULL;
}

static bool push_point(rp_point **a, size_t *n, size_t *cap, int64_t t, double pct)
{
	if (isnan(pct))
		return true;
	if (*n && (*a)[*n - 1].t_ms == t) {
		(*a)[*n - 1].pct = pct;
		return true;
	}
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		rp_point *p = realloc(*a, c * sizeof(*p));
		if (!p)
			return false;
		*a = p;
		*cap = c;
	}
	(*a)[(*n)++] = (rp_point){t, pct};
	return true;
}

/* ---- the walk ---- */

typedef struct {
	mg_report *r;
	int64_t until_ms;
	/* where traffic stands, as recorded so far */
	double applied, read_back;
	int step;
	int64_t since_t;   /* when step began, for the time at each step */
	double intent_pct; /* the target of a traffic intent not yet followed by its result */
	long intent_pid;
	bool started; /* a record of the period was seen */
	int rc;
	mg_error *err;
} walker;

static bool in_period(const walker *w, int64_t t)
{
	return t >= w->r->since_ms && t <= w->until_ms;
}

/* The percent of step s of the plan (0 for 0), or NAN when the plan has no such step. */
static double plan_pct(const mg_report *r, int s)
{
	if (s == 0)
		return 0;
	if (s > 0 && (size_t)s <= r->nsteps)
		return r->steps[s - 1];
	return NAN;
}

static int add_time_at_step(mg_report *r, int step, double pct, int64_t ms)
{
	if (ms <= 0 || step < 0)
		return 0;
	for (size_t i = 0; i < r->nat_step; i++)
		if (r->at_step[i].step == step) {
			r->at_step[i].ms += ms;
			return 0;
		}
	rp_step_time *a = realloc(r->at_step, (r->nat_step + 1) * sizeof(*a));
	if (!a)
		return -1;
	r->at_step = a;
	a[r->nat_step++] = (rp_step_time){step, isnan(pct) ? 0 : pct, ms};
	return 0;
}

/* The time spent at the current step up to t (inside the period), then step moves to s. */
static int move_step(walker *w, int64_t t, int s, double pct)
{
	mg_report *r = w->r;
	int64_t from = w->since_t > r->since_ms ? w->since_t : r->since_ms;
	int64_t to = t < w->until_ms ? t : w->until_ms;
	double cur = plan_pct(r, w->step);
	if (add_time_at_step(r, w->step, isnan(cur) ? w->read_back : cur, to - from))
		return -1;
	if (s >= 0)
		w->step = s;
	else if (!isnan(pct) && pct == 0)
		w->step = 0;
	w->since_t = t;
	return 0;
}

static rp_event *new_event(walker *w, int64_t t, rp_kind kind, json_t *rec)
{
	mg_report *r = w->r;
	if (r->nev == r->cap_ev) {
		size_t c = r->cap_ev ? r->cap_ev * 2 : 32;
		rp_event *e = realloc(r->ev, c * sizeof(*e));
		if (!e)
			return NULL;
		r->ev = e;
		r->cap_ev = c;
	}
	rp_event *e = &r->ev[r->nev];
	memset(e, 0, sizeof(*e));
	e->t_ms = t;
	e->kind = kind;
	e->command = scrubbed(str(rec, "command"));
	e->action = scrubbed(str(rec, "action"));
	e->operator_ = scrubbed(str(rec, "operator"));
	e->reason = scrubbed(str(rec, "reason"));
	json_t *pid = json_object_get(rec, "pid");
	e->pid = json_is_integer(pid) ? (long)json_integer_value(pid) : -1;
	r->nev++;
	return e;
}

static int add_seq(rp_event *e, json_t *rec)
{
	json_t *s = json_object_get(rec, "seq");
	int64_t *a = realloc(e->seq, (e->nseq + 1) * sizeof(*a));
	if (!a)
		return -1;
	e->seq = a;
	a[e->nseq++] = json_is_integer(s) ? (int64_t)json_integer_value(s) : 0;
	return 0;
}

/* The open event of group g from the same process, or NULL. */
static rp_event *open_event(walker *w, const char *g, long pid)
{
	for (size_t i = w->r->nev; i-- > 0;) {
		rp_event *e = &w->r->ev[i];
		if (e->open && !strcmp(e->group, g) && e->pid == pid)
			return e;
	}
	return NULL;
}

static void set_text(char **dst, char *text)
{
	free(*dst);
	*dst = text;
}

static const char *pct_text(char *buf, size_t size, double pct)
{
	if (isnan(pct))
		snprintf(buf, size, "?");
	else
		snprintf(buf, size, "%.4g%%", pct);
	return buf;
}

static char *step_label(const mg_report *r, int s)
{
	if (s == 0)
		return mg_str_printf("before the first step");
	if (s > 0)
		return mg_str_printf("step %d of %zu", s, r->nsteps);
	return mg_str_printf("an unknown step");
}

/* ---- records by kind ---- */

static bool traffic_command(const char *c)
{
	return c && (!strcmp(c, "step") || !strcmp(c, "run") || !strcmp(c, "rollback"));
}

static bool has_pct(json_t *o)
{
	return json_is_number(json_object_get(o, "k8s_percent"));
}

/* A record of a traffic move: its positions carry k8s_percent (or a read-back does). */
static bool is_traffic(json_t *rec)
{
	const char *a = str(rec, "action");
	if (!traffic_command(str(rec, "command")) || !a)
		return false;
	if (strcmp(a, "intent") && strcmp(a, "result") && strcmp(a, "failed") &&
	    strcmp(a, "reconcile") && strcmp(a, "adopt"))
		return false;
	json_t *b = json_object_get(rec, "before"), *af = json_object_get(rec, "after");
	json_t *ev = json_object_get(rec, "evidence");
	return has_pct(b) || has_pct(af) || json_is_object(json_object_get(ev, "read_back")) ||
	       json_is_object(json_object_get(b, "target"));
}

static bool is_release(json_t *rec)
{
	const char *c = str(rec, "command"), *a = str(rec, "action");
	if (!c || !a)
		return false;
	if (strcmp(c, "deploy") && strcmp(c, "rollback"))
		return false;
	return !strcmp(a, "intent") || !strcmp(a, "batch") || !strcmp(a, "result") ||
	       !strcmp(a, "failed") || !strcmp(a, "canceled") || !strcmp(a, "cluster-intent") ||
	       !strcmp(a, "cluster-result");
}

static int traffic_record(walker *w, json_t *rec, int64_t t)
{
	mg_report *r = w->r;
	const char *a = str(rec, "action"), *cmd = str(rec, "command");
	json_t *before = json_object_get(rec, "before"), *after = json_object_get(rec, "after");
	json_t *ev = json_object_get(rec, "evidence");
	json_t *pid = json_object_get(rec, "pid");
	long p = json_is_integer(pid) ? (long)json_integer_value(pid) : -1;
	bool in = in_period(w, t);
	double prev = w->read_back;
	char b1[32], b2[32], b3[32];

	if (!strcmp(a, "intent")) {
		w->intent_pct = num(after, "k8s_percent");
		w->intent_pid = p;
		if (!in)
			return 0;
		rp_event *e =
		    new_event(w, t, num(after, "k8s_percent") < prev ? RP_ROLLBACK : RP_STEP, rec);
		if (!e || add_seq(e, rec))
			return -1;
		e->open = true;
		snprintf(e->group, sizeof(e->group), "traffic");
		char *sl = step_label(r, step_of(after));
		e->title = mg_str_printf("%s to %s (%s), not followed by its result",
		                         cmd ? cmd : "move", sl ? sl : "?",
		                         pct_text(b1, sizeof(b1), num(after, "k8s_percent")));
		free(sl);
		return 0;
	}

	double rb = NAN, target = NAN;
	int s = -1;
	rp_kind kind = RP_OTHER;
	char *title = NULL;
	if (!strcmp(a, "result")) {
		rb = num(after, "k8s_percent");
		s = step_of(after);
		target =
		    w->intent_pid == p && !isnan(w->intent_pct) ? w->intent_pct : plan_pct(r, s);
		if (isnan(target))
			target = rb;
		double from = has_pct(before) ? num(before, "k8s_percent") : prev;
		kind = (!strcmp(cmd, "rollback") || rb < from) ? RP_ROLLBACK : RP_STEP;
		char *sl = kind == RP_STEP && s > 0 ? step_label(r, s) : NULL;
		title =
		    mg_str_printf("%s%s (migrate %s): %s -> %s, %s read back",
		                  kind == RP_ROLLBACK ? "rollback to " : "", sl ? sl : "", cmd,
		                  pct_text(b1, sizeof(b1), from), pct_text(b2, sizeof(b2), target),
		                  pct_text(b3, sizeof(b3), rb));
		if (kind == RP_ROLLBACK) {
			free(title);
			title = mg_str_printf("rollback (migrate %s): %s -> %s, %s read back", cmd,
			                      pct_text(b1, sizeof(b1), from),
			                      pct_text(b2, sizeof(b2), target),
			                      pct_text(b3, sizeof(b3), rb));
		}
		free(sl);
	} else if (!strcmp(a, "failed")) {
		rb = json_is_object(after) ? num(after, "k8s_percent") : NAN;
		kind = RP_FAILED;
		const char *why = str(ev, "error");
		char *sl = step_label(r, step_of(before));
		title = mg_str_printf("%s failed at %s (%s): %s", cmd, sl ? sl : "?",
		                      pct_text(b1, sizeof(b1), num(before, "k8s_percent")),
		                      why ? why : "no error recorded");
		free(sl);
	} else if (!strcmp(a, "reconcile")) {
		rb = num(after, "k8s_percent");
		const char *o = str(ev, "outcome");
		title = mg_str_printf("an interrupted %s reconciled: %s (%s read back)",
		                      str(before, "command") ? str(before, "command") : "move",
		                      o ? o : "unknown", pct_text(b1, sizeof(b1), rb));
		if (o && !strcmp(o, "applied")) {
			target = rb;
			s = step_of(json_object_get(before, "target"));
		}
	} else { /* adopt */
		rb = target = num(after, "k8s_percent");
		s = step_of(after);
		title = mg_str_printf("weights changed by hand adopted: %s to the cluster",
		                      pct_text(b1, sizeof(b1), rb));
	}
	w->intent_pct = NAN;
	w->intent_pid = -1;

	if (!isnan(rb) || !isnan(target)) {
		if (move_step(w, t, s, isnan(rb) ? target : rb))
			goto oom;
		if (!isnan(rb))
			w->read_back = rb;
		if (!isnan(target))
			w->applied = target;
	}
	if (!in) {
		free(title);
		return 0;
	}
	if (kind == RP_ROLLBACK)
		r->rollbacks++;
	else if (kind == RP_STEP)
		r->steps_taken++;
	else if (kind == RP_FAILED)
		r->failed_moves++;
	if (!push_point(&r->read_back, &r->nread_back, &r->cap_read_back, t, rb) ||
	    !push_point(&r->applied, &r->napplied, &r->cap_applied, t, target))
		goto oom;
	rp_event *e = open_event(w, "traffic", p);
	if (e) {
		e->kind = kind;
		e->t_ms = t;
		e->open = false;
		set_text(&e->action, scrubbed(a));
		set_text(&e->reason, scrubbed(str(rec, "reason")));
	} else {
		e = new_event(w, t, kind, rec);
	}
	if (!e || add_seq(e, rec))
		goto oom;
	set_text(&e->title, title ? scrubbed(title) : NULL);
	free(title);
	if (!isnan(rb) && rb > r->max_pct)
		r->max_pct = rb;
	return 0;
oom:
	free(title);
	return -1;
}

static int gate_record(walker *w, json_t *rec, int64_t t)
{
	mg_report *r = w->r;
	json_t *before = json_object_get(rec, "before"), *after = json_object_get(rec, "after");
	const char *o = str(after, "outcome"), *d = str(after, "decision");
	rp_event *e = new_event(w, t, RP_GATE, rec);
	if (!e || add_seq(e, rec))
		return -1;
	e->outcome = scrubbed(o ? o : "unknown");
	if (o && !strcmp(o, "pass"))
		r->gates[0]++;
	else if (o && !strcmp(o, "fail"))
		r->gates[1]++;
	else if (o && !strcmp(o, "inconclusive"))
		r->gates[2]++;
	char b1[32];
	char *sl = step_label(r, step_of(before));
	char *title = mg_str_printf("gates %s at %s (%s): %s", o ? o : "?", sl ? sl : "?",
	                            pct_text(b1, sizeof(b1), num(before, "k8s_percent")),
	                            d ? d : "no decision recorded");
	free(sl);
	e->title = scrubbed(title);
	free(title);
	return 0;
}

static int release_record(walker *w, json_t *rec, int64_t t)
{
	mg_report *r = w->r;
	const char *a = str(rec, "action"), *cmd = str(rec, "command");
	json_t *after = json_object_get(rec, "after"), *before = json_object_get(rec, "before");
	json_t *pid = json_object_get(rec, "pid");
	long p = json_is_integer(pid) ? (long)json_integer_value(pid) : -1;
	bool cluster = !strncmp(a, "cluster-", 8);
	const char *g = cluster ? "cluster" : "fleet";
	const char *act = cluster ? a + 8 : a;
	bool final = strcmp(act, "intent") && strcmp(act, "batch");
	rp_event *e = open_event(w, g, p);
	if (!e) {
		e = new_event(w, t, RP_DEPLOY, rec);
		if (!e)
			return -1;
		snprintf(e->group, sizeof(e->group), "%s", g);
		r->deploys++;
	}
	if (add_seq(e, rec))
		return -1;
	e->open = !final;
	const char *version = str(after, "version");
	if (!version)
		version = str(before, "version");
	const char *op = !strcmp(cmd, "rollback") ? "rollback --release" : "deploy";
	const char *side = cluster ? "the cluster" : "the VMs";
	char *title;
	if (!final) {
		title = mg_str_printf("%s of %s to %s: %s", op, version ? version : "?", side,
		                      !strcmp(act, "batch") ? "batches running" : "started");
	} else {
		e->t_ms = t;
		const char *outcome = !strcmp(act, "result") ? "ok" : act;
		if (cluster) {
			json_t *ev = json_object_get(rec, "evidence");
			if (json_is_true(json_object_get(ev, "canceled")))
				outcome = "canceled";
			else if (json_integer_value(json_object_get(ev, "failed")) > 0 ||
			         json_is_string(json_object_get(ev, "error")))
				outcome = "failed";
		}
		set_text(&e->outcome, scrubbed(outcome));
		set_text(&e->action, scrubbed(a));
		set_text(&e->reason, scrubbed(str(rec, "reason")));
		if (cluster)
			title = mg_str_printf("%s of %s to %s: %s", op, version ? version : "?",
			                      side, outcome);
		else
			title = mg_str_printf(
			    "%s of %s to %s: %s (%lld ok, %lld failed)", op,
			    version ? version : "?", side, outcome,
			    (long long)json_integer_value(json_object_get(after, "ok")),
			    (long long)json_integer_value(json_object_get(after, "failed")));
	}
	set_text(&e->title, title ? scrubbed(title) : NULL);
	free(title);
	return 0;
}

/* pause, resume, run's own records and everything else: one marker each. */
static int plain_record(walker *w, json_t *rec, int64_t t)
{
	mg_report *r = w->r;
	const char *a = str(rec, "action"), *cmd = str(rec, "command");
	rp_kind k = RP_OTHER;
	if (a && !strcmp(a, "pause")) {
		k = RP_PAUSE;
		r->pauses++;
	} else if (a && !strcmp(a, "resume")) {
		k = RP_RESUME;
		r->resumes++;
	} else if (cmd && !strcmp(cmd, "run") && a &&
	           (!strcmp(a, "start") || !strcmp(a, "stop") || !strcmp(a, "end") ||
	            !strcmp(a, "takeover") || !strcmp(a, "handover"))) {
		k = RP_AUTOPILOT;
	}
	rp_event *e = new_event(w, t, k, rec);
	if (!e || add_seq(e, rec))
		return -1;
	char *title;
	bool autopilot = cmd && !strcmp(cmd, "run");
	if (k == RP_PAUSE)
		title =
		    mg_str_printf(autopilot ? "paused by the autopilot" : "paused (migrate pause)");
	else if (k == RP_RESUME)
		title = mg_str_printf(autopilot ? "resumed by the autopilot"
		                                : "resumed (migrate resume)");
	else if (k == RP_AUTOPILOT) {
		const char *o = str(json_object_get(rec, "evidence"), "outcome");
		title = mg_str_printf("autopilot %s%s%s", a, o ? ": " : "", o ? o : "");
	} else
		title = mg_str_printf("%s %s", cmd ? cmd : "?", a ? a : "?");
	e->title = scrubbed(title);
	free(title);
	return 0;
}

static void period_starts(walker *w)
{
	w->started = true;
	w->r->initial_applied = w->applied;
	w->r->initial_read_back = w->read_back;
	w->r->initial_step = w->step;
}

static int on_record(json_t *rec, void *ud, mg_error *err)
{
	(void)err;
	walker *w = ud;
	int64_t t;
	if (!json_is_object(rec) || mg_time_parse(&t, str(rec, "time")) < 0 ||
	    t > w->until_ms) /* a record without a time says nothing about the period */
		return 0;
	if (!w->r->since_ms) /* no --since: the period starts with the first record */
		w->r->since_ms = t;
	if (in_period(w, t)) {
		w->r->records++;
		if (!w->started) /* where traffic stood when the period began */
			period_starts(w);
	}
	const char *a = str(rec, "action");
	int rc = 0;
	if (is_traffic(rec))
		rc = traffic_record(w, rec, t);
	else if (!in_period(w, t))
		rc = 0;
	else if (a && !strcmp(a, "gate"))
		rc = gate_record(w, rec, t);
	else if (is_release(rec))
		rc = release_record(w, rec, t);
	else
		rc = plain_record(w, rec, t);
	return rc ? mg_error_oom(w->err) : 0;
}

int mg_report_read_journal(mg_report *r, mg_store *store, const mg_plan *plan, int64_t until_ms,
                           mg_error *err)
{
	(void)plan;
	walker w = {.r = r,
	            .until_ms = until_ms,
	            .applied = 0,
	            .read_back = 0,
	            .step = 0,
	            .since_t = 0,
	            .intent_pct = NAN,
	            .intent_pid = -1,
	            .err = err};
	int rc = 0;
	if (store) {
		/* the walk sets the state before the period, then the events in it */
		rc =
		    mg_journal_each(store, &(mg_journal_query){0}, on_record, &w, &r->skipped, err);
		if (rc)
			return rc;
	}
	if (!r->since_ms)
		r->since_ms = until_ms; /* nothing recorded: an empty period, one instant */
	if (!w.started)
		period_starts(&w);
	r->final_pct = w.read_back;
	r->final_step = w.step;
	if (r->initial_read_back > r->max_pct)
		r->max_pct = r->initial_read_back;
	return move_step(&w, until_ms, w.step, NAN) ? mg_error_oom(err) : 0;
}

/* ---- the report ---- */

static void event_clear(rp_event *e)
{
	free(e->seq);
	free(e->command);
	free(e->action);
	free(e->operator_);
	free(e->title);
	free(e->reason);
	free(e->outcome);
}

void mg_report_free(mg_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nev; i++)
		event_clear(&r->ev[i]);
	free(r->ev);
	for (size_t i = 0; i < r->nseries; i++) {
		free(r->series[i].queries);
		free(r->series[i].v);
	}
	free(r->series);
	free(r->applied);
	free(r->read_back);
	free(r->at_step);
	free(r->steps);
	free(r->plan);
	free(r->description);
	free(r->provider);
	free(r->metrics_source);
	free(r->metrics_note);
	free(r);
}

int mg_report_build(mg_report **out, const mg_plan *plan, mg_store *store,
                    const mg_report_options *opt, mg_error *err)
{
	*out = NULL;
	mg_report_options o = opt ? *opt : (mg_report_options){0};
	int64_t now = mg_now_ms();
	int64_t since = o.since_ms, until = o.until_ms ? o.until_ms : now;
	if (since > until) {
		char a[40], b[40];
		mg_time_format(a, sizeof(a), since);
		mg_time_format(b, sizeof(b), until);
		return mg_error_set(err, MG_EINVALID,
		                    "the period starts (%s) after it ends (%s): nothing to report",
		                    a, b);
	}
	mg_report *r = calloc(1, sizeof(*r));
	if (!r)
		return mg_error_oom(err);
	r->since_ms = since;
	r->until_ms = until;
	r->generated_ms = now;
	r->max_error_rate = r->max_latency_s = r->quantile = NAN;
	r->plan = strdup(mg_plan_name(plan));
	r->description = mg_plan_description(plan) ? strdup(mg_plan_description(plan)) : NULL;
	const mg_plan_traffic *tr = mg_plan_traffic_section(plan);
	r->provider = tr ? strdup(mg_provider_name(tr->provider)) : NULL;
	if (tr && tr->nsteps) {
		r->steps = malloc(tr->nsteps * sizeof(double));
		if (r->steps) {
			memcpy(r->steps, tr->steps, tr->nsteps * sizeof(double));
			r->nsteps = tr->nsteps;
		}
	}
	if (!r->plan || (mg_plan_description(plan) && !r->description) || (tr && !r->provider) ||
	    (tr && tr->nsteps && !r->steps)) {
		mg_report_free(r);
		return mg_error_oom(err);
	}
	int rc = mg_report_read_journal(r, store, plan, until, err);
	if (rc) {
		mg_report_free(r);
		return rc;
	}
	mg_report_query_metrics(r, plan, o.metrics, o.cancel);
	*out = r;
	return 0;
}

void mg_report_info_get(mg_report_info *out, const mg_report *r)
{
	*out = (mg_report_info){.plan = r->plan,
	                        .since_ms = r->since_ms,
	                        .until_ms = r->until_ms,
	                        .records = r->records,
	                        .events = r->nev,
	                        .skipped_lines = r->skipped,
	                        .metrics = r->metrics_ok,
	                        .metrics_note = r->metrics_note};
}
