/*
 * The autopilot: from the current step to --until, evaluating the gates every
 * slo.interval and doing what the decision table (decide.c) says. It holds
 * the plan's lock for as long as it runs, so every change goes through the
 * same journal and state as a manual step; a pause request (the pause file)
 * is followed every turn, and a stop request (left by a rollback that no
 * signal of its could bring here: another host) ends the run before any
 * other move. The caller owns the loop, the clock and the display.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "internal.h"
#include "journal.h"
#include "units.h"

struct mg_autopilot {
	mg_migration *m;
	mg_autopilot_options o;
	bool started; /* `start` is in the journal: every way out journals why */
	bool paused;
	mg_gate_eval last;
	bool has_last;
	int64_t next_eval_ms;
	int64_t inconclusive_since_ms; /* 0: the last evaluation was conclusive */
	bool data_seen;                /* an evaluation at this step had data to judge */
	json_t *decided;               /* the evaluation that made the last move */
	mg_shift_outcome moved;        /* a move the state could not record */
	bool stop;                     /* a stop request was seen: no traffic moves after it */
	char stop_why[600];            /* who asked, and why */
	int64_t last_tick_ms;          /* now_ms of the last tick (exposed: a stuck loop shows) */
};

static void event(mg_autopilot *ap, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(mg_autopilot *ap, const char *fmt, ...)
{
	if (!ap->o.event)
		return;
	char msg[1024];
	va_list va;
	va_start(va, fmt);
	vsnprintf(msg, sizeof(msg), fmt, va);
	va_end(va);
	ap->o.event(ap->o.ud, msg);
}

/* A record of the run itself; evidence is taken. */
static int journal(mg_autopilot *ap, const char *action, const char *reason, json_t *evidence,
                   mg_error *err)
{
	mg_journal_entry e = {
	    .command = "run", .action = action, .reason = reason, .evidence = evidence};
	int rc = mg_journal_append(ap->m->store, &e, err);
	json_decref(evidence);
	return rc;
}

int mg_autopilot_new(mg_autopilot **out, mg_migration *m, const mg_autopilot_options *o,
                     mg_error *err)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return mg_error_oom(err);
	(*out)->m = m;
	(*out)->o = *o;
	return 0;
}

int mg_autopilot_prepare(int *until_idx, const char **done, mg_migration *m, double until_pct,
                         const char *until_text, bool allow_skew, const mg_cancel *cancel,
                         mg_error *err)
{
	const mg_state *st = mg_migration_state(m);
	*done = NULL;
	*until_idx = mg_migration_step_index(mg_migration_traffic(m), until_pct);
	if (*until_idx < 0)
		return mg_error_set(
		    err, MG_EINVALID,
		    "--until %s is not one of traffic.steps; `migrate plan` lists them",
		    until_text ? until_text : "100");
	if (st->step_index >= *until_idx) {
		*done = st->phase == MG_PHASE_COMPLETE ? "complete" : "until-reached";
		return 0;
	}
	mg_step_rules rules = {.allow_skew = allow_skew, .now_ms = mg_now_ms()};
	mg_step_verdict v;
	int rc = mg_migration_check_step(&v, m, &rules, err);
	mg_step_verdict_clear(&v);
	if (rc)
		return rc;
	mg_migration_set_cancel(m, cancel);
	return mg_migration_metrics_open(m, err);
}

void mg_autopilot_free(mg_autopilot *ap)
{
	if (!ap)
		return;
	mg_gate_eval_clear(&ap->last);
	json_decref(ap->decided);
	mg_shift_outcome_clear(&ap->moved);
	free(ap);
}

bool mg_autopilot_paused(const mg_autopilot *ap)
{
	return ap->paused;
}

int64_t mg_autopilot_next_eval_ms(const mg_autopilot *ap)
{
	return ap->next_eval_ms;
}

const mg_gate_eval *mg_autopilot_last(const mg_autopilot *ap)
{
	return ap->has_last ? &ap->last : NULL;
}

json_t *mg_autopilot_decided(const mg_autopilot *ap)
{
	return ap->decided;
}

mg_shift_outcome *mg_autopilot_moved(mg_autopilot *ap)
{
	return &ap->moved;
}

int64_t mg_autopilot_last_tick_ms(const mg_autopilot *ap)
{
	return ap->last_tick_ms;
}

/*
 * Whether a stop request is there (taken: read and removed, why in
 * ap->stop_why). One older than this run's lock (by more than STOP_STALE_MS)
 * was left for a run that is gone: dropped. Once seen, it stays seen.
 */
#define STOP_STALE_MS (10 * 60 * 1000)
static int stop_requested(mg_autopilot *ap, mg_error *err)
{
	/* a signal ends the run already: it is what stopped it, whatever came after */
	if (ap->stop || (ap->m->cancel && *ap->m->cancel))
		return 0;
	bool present;
	mg_pause_request pr;
	/* an elected autopilot leaves it for the rollback to clear: it halts every replica */
	int rc = ap->o.elected ? mg_store_stop_read(&present, &pr, ap->m->store, err)
	                       : mg_store_stop_take(&present, &pr, ap->m->store, err);
	if (rc || !present)
		return rc;
	/* with a margin for the clocks of two hosts: one stop too many is the safe side */
	if (pr.since_ms && pr.since_ms < ap->m->opened_ms - STOP_STALE_MS) {
		event(ap,
		      "an old stop request (by %.80s) was dropped: it was left before this run "
		      "began",
		      pr.operator_[0] ? pr.operator_ : "someone");
		return 0;
	}
	ap->stop = true;
	snprintf(ap->stop_why, sizeof(ap->stop_why),
	         "a rollback by %.200s asked it to stop%s%.300s",
	         pr.operator_[0] ? pr.operator_ : "someone", pr.reason[0] ? ": " : "", pr.reason);
	event(ap, "stop requested: %s", ap->stop_why);
	return 0;
}

/* Moves to step idx (-1: everything back on the VMs) with read-back. */
static int move(mg_autopilot *ap, int idx, const char *reason, mg_error *err)
{
	mg_migration *m = ap->m;
	const mg_plan_traffic *t = m->traffic;
	/* a rollback may have moved the traffic since the tick looked: never move over it */
	/* a signal stops the run: no move begins after it (one under way finishes) */
	if (m->cancel && *m->cancel)
		return 0;
	int src = stop_requested(ap, err);
	if (src || ap->stop)
		return src;
	/*
	 * A lock that lapses (a Lease) is renewed now if a third of it went by:
	 * a leader that cannot prove it still leads moves nothing (it may have
	 * been replaced while it was frozen or cut off).
	 */
	if ((src = mg_store_keepalive(m->store, err)))
		return src;
	/* MG_EUNRECORDED: the autopilot stops, and the way out reports the read-back (exit 5) */
	int rc = mg_migration_shift(&ap->moved, m, idx, reason, false, err);
	if (rc)
		return rc;
	char a[32], b[32];
	mg_percent_format(a, sizeof(a), idx < 0 ? 0.0 : t->steps[idx]);
	mg_percent_format(b, sizeof(b), ap->moved.read_back.k8s_percent);
	mg_shift_outcome_clear(&ap->moved);
	/* the old step's checks must not show under the new step */
	if (ap->has_last) {
		json_decref(ap->decided);
		ap->decided = mg_gate_eval_to_json(&ap->last);
	}
	mg_gate_eval_clear(&ap->last);
	ap->has_last = false;
	if (idx < 0)
		event(ap, "rolled back: %s to the cluster (%s read back from %s)", a, b,
		      mg_traffic_name(m->t));
	else
		event(ap, "step %d of %zu: %s to the cluster (%s read back from %s)", idx + 1,
		      t->nsteps, a, b, mg_traffic_name(m->t));
	ap->inconclusive_since_ms = 0;
	ap->data_seen = false;
	ap->next_eval_ms = m->st.step_started_ms + m->slo->interval_ms;
	return 0;
}

/* Holds the migration at the current weights: phase paused, with why. */
static int hold(mg_autopilot *ap, const char *why, mg_error *err)
{
	mg_state *st = &ap->m->st;
	st->phase = MG_PHASE_PAUSED;
	snprintf(st->pause_reason, sizeof(st->pause_reason), "%s", why);
	int rc = journal(ap, "pause", why, NULL, err);
	if (!rc)
		rc = mg_state_save(ap->m->store, st, err);
	if (!rc)
		event(ap, "paused: %s", why);
	return rc;
}

/* "by NAME: REASON" of a pause request or a resume note. */
static void by_whom(char *buf, size_t size, const mg_pause_request *pr)
{
	snprintf(buf, size, "by %.80s%s%.160s", pr->operator_[0] ? pr->operator_ : "someone",
	         pr->reason[0] ? ": " : "", pr->reason);
}

/* A pause file appeared or went away: follow it. */
static int follow_pause_request(mg_autopilot *ap, int64_t now_ms, mg_error *err)
{
	bool present;
	mg_pause_request pr;
	mg_store *store = ap->m->store;
	int rc = mg_store_pause_read(&present, &pr, store, err);
	if (rc || present == ap->paused)
		return rc;
	mg_state *st = &ap->m->st;
	char why[400];
	if (present) {
		by_whom(why, sizeof(why), &pr);
		rc = hold(ap, why, err);
		if (!rc)
			ap->paused = true;
		return rc;
	}
	st->phase = MG_PHASE_SHIFTING;
	st->pause_reason[0] = '\0';
	/* as `migrate resume` without an autopilot: whoever resumes has looked at them */
	mg_state_reset_gates(st);
	/* `migrate resume` leaves who and why; a request removed by hand says only that */
	bool noted;
	mg_pause_request note;
	rc = mg_store_resume_take(&noted, &note, store, err);
	if (rc)
		return rc;
	snprintf(why, sizeof(why), "the pause request was removed");
	if (noted)
		by_whom(why, sizeof(why), &note);
	rc = journal(ap, "resume", why, NULL, err);
	if (!rc)
		rc = mg_state_save(store, st, err);
	if (rc)
		return rc;
	ap->paused = false;
	ap->inconclusive_since_ms = 0;
	ap->next_eval_ms = now_ms;
	event(ap, "resumed");
	return 0;
}

int mg_autopilot_start(mg_run_end *end, mg_autopilot *ap, mg_error *err)
{
	mg_migration *m = ap->m;
	const mg_state *st = &m->st;
	const mg_plan_traffic *t = m->traffic;
	*end = MG_RUN_GOES_ON;
	char start[64];
	mg_migration_step_name(start, sizeof(start), st, t);
	int rc =
	    journal(ap, "start", NULL,
	            json_pack("{s:o, s:f}", "from_step",
	                      st->step_index < 0 ? json_null() : json_integer(st->step_index + 1),
	                      "until", t->steps[ap->o.until]),
	            err);
	if (rc)
		return rc;
	ap->started = true;
	event(ap, "autopilot started: %s, until %g%%; gates every %llds", start,
	      t->steps[ap->o.until], (long long)(m->slo->interval_ms / 1000));
	rc = stop_requested(ap, err);
	if (rc || ap->stop) {
		*end = ap->stop ? MG_RUN_STOPPED : MG_RUN_GOES_ON;
		return rc;
	}
	if (st->step_index < 0) {
		/* nothing on the cluster yet, so nothing to measure: the first step is the
		 * measurement */
		rc = move(ap, 0, "first step of the autopilot", err);
		if (!rc && ap->o.until == 0 && !(m->cancel && *m->cancel))
			*end = MG_RUN_DONE;
		if (ap->stop)
			*end = MG_RUN_STOPPED;
		return rc;
	}
	int64_t first = st->step_started_ms + m->slo->interval_ms, now = mg_now_ms();
	ap->next_eval_ms = first > now ? first : now;
	return 0;
}

/* Does what the decision says: journal, save, move or hold. */
static int act(mg_autopilot *ap, const mg_decision *d, int64_t now_ms, const char *where,
               const char *sum, mg_error *err)
{
	mg_migration *m = ap->m;
	mg_state *st = &m->st;
	const mg_gate_eval *e = &ap->last;
	char why[700];
	int rc = 0;
	st->gate_failures = d->gate_failures;
	ap->inconclusive_since_ms = d->inconclusive_since_ms;
	ap->data_seen = d->data_seen;
	if (d->kind == MG_DECIDE_STALLED) {
		char dur[32];
		mg_duration_format(dur, sizeof(dur), now_ms - ap->inconclusive_since_ms);
		snprintf(why, sizeof(why), "gates inconclusive for %s at %s: %s", dur, where, sum);
	}
	if (d->journal)
		rc = mg_migration_gate_journal(m->store, st, "run", e, d->journal, err);
	if (!rc && d->save)
		rc = mg_state_save(m->store, st, err);
	if (rc)
		return rc;
	switch (d->kind) {
	case MG_DECIDE_FORGET:
		/* unseen, so the next evaluation is journalled whatever it shows */
		mg_gate_eval_clear(&ap->last);
		ap->has_last = false;
		return 0;
	case MG_DECIDE_COUNT:
	case MG_DECIDE_ROLLBACK:
	case MG_DECIDE_PAUSE:
		event(ap, "gates fail at %s (%d of %d): %s", where, st->gate_failures,
		      m->slo->failure_limit, sum);
		if (d->kind == MG_DECIDE_COUNT)
			return 0;
		snprintf(why, sizeof(why), "gates failed %d time%s at %s: %s", st->gate_failures,
		         st->gate_failures == 1 ? "" : "s", where, sum);
		return d->kind == MG_DECIDE_PAUSE ? hold(ap, why, err) : move(ap, -1, why, err);
	case MG_DECIDE_STALLED:
		return hold(ap, why, err);
	case MG_DECIDE_HOLD:
		if (d->journal)
			event(ap, "gates inconclusive at %s, holding: %s", where, sum);
		return 0;
	case MG_DECIDE_BAKE:
		if (d->journal)
			event(ap, "gates pass at %s; baking", where);
		return 0;
	case MG_DECIDE_DRIFT:
		return 0; /* the caller holds, with the live share in the reason */
	case MG_DECIDE_ADVANCE:
		snprintf(why, sizeof(why), "gates passed at %s after the bake: %s", where, sum);
		return move(ap, d->target, why, err);
	}
	return 0;
}

/* One evaluation and what follows from it. */
static int evaluate(mg_run_end *end, mg_autopilot *ap, int64_t now_ms, mg_error *err)
{
	mg_migration *m = ap->m;
	mg_state *st = &m->st;
	mg_metrics *metrics;
	mg_gate_eval ev;
	int rc = mg_migration_metrics(&metrics, m, err);
	if (!rc)
		rc = mg_gate_evaluate(&ev, metrics, m->slo, now_ms, st->step_started_ms, err);
	if (rc)
		return rc;
	if (m->cancel && *m->cancel) {
		/* a query cut short by the signal is no evidence of anything */
		mg_gate_eval_clear(&ev);
		return 0;
	}
	ap->next_eval_ms = now_ms + m->slo->interval_ms;
	mg_decision_input in = {.st = st,
	                        .traffic = m->traffic,
	                        .slo = m->slo,
	                        .outcome = ev.outcome,
	                        .awaiting_data = ev.awaiting_data,
	                        .changed = !ap->has_last || ap->last.outcome != ev.outcome,
	                        .now_ms = now_ms,
	                        .inconclusive_since_ms = ap->inconclusive_since_ms,
	                        .data_seen = ap->data_seen,
	                        .until = ap->o.until};
	char sum[512], where[64];
	mg_gate_eval_summary(sum, sizeof(sum), &ev);
	mg_migration_step_name(where, sizeof(where), st, m->traffic);
	mg_gate_eval_clear(&ap->last);
	ap->last = ev;
	ap->has_last = true;
	double live = 0;
	/* the balancer is read only when its answer can matter: a pass after the bake */
	if (ev.outcome == MG_GATE_PASS && mg_migration_baked(st, m->traffic, now_ms)) {
		rc = mg_shift_drift(&in.drift, &live, st, m->t, err);
		if (rc)
			return rc;
	}
	mg_decision d;
	mg_migration_decide(&d, &in);
	*end = d.end;
	rc = act(ap, &d, now_ms, where, sum, err);
	if (rc || d.kind != MG_DECIDE_DRIFT)
		return rc;
	char why[256];
	snprintf(why, sizeof(why),
	         "the balancer sends %.4g%% to the cluster, not the %.4g%% migrate set: "
	         "changed by hand",
	         live, st->has_read_back ? st->read_back_k8s_percent : 0.0);
	rc = hold(ap, why, err);
	return rc ? rc : mg_error_set(err, MG_ECONFLICT, "%s; paused", why);
}

int mg_autopilot_tick(mg_run_end *end, mg_autopilot *ap, int64_t now_ms, mg_error *err)
{
	*end = MG_RUN_GOES_ON;
	ap->last_tick_ms = now_ms;
	/* a lock that lapses (a Lease in the cluster) is renewed while the autopilot runs */
	int rc = mg_store_keepalive(ap->m->store, err);
	/* first: a rollback elsewhere has the traffic, whatever the pause or the gates say */
	if (!rc)
		rc = stop_requested(ap, err);
	if (!rc && ap->stop) {
		*end = MG_RUN_STOPPED;
		return 0;
	}
	if (!rc)
		rc = follow_pause_request(ap, now_ms, err);
	if (rc || ap->paused || now_ms < ap->next_eval_ms)
		return rc;
	rc = evaluate(end, ap, now_ms, err);
	if (!rc && ap->stop)
		*end = MG_RUN_STOPPED; /* seen just before a move, which did not happen */
	else if (!rc && ap->m->cancel && *ap->m->cancel)
		*end = MG_RUN_GOES_ON; /* a signal came first: no move was made, none is done */
	return rc;
}

/*
 * The last record of a run that journalled `start`, unless a signal stopped it
 * (that is `stop`): why it ended, so the journal never leaves an autopilot that
 * seems to be still running. Best effort: the journal may be what failed, and
 * the error the command exits with says more than this record could.
 */
void mg_autopilot_journal_end(mg_autopilot *ap, const char *outcome, int exit_code, const char *why)
{
	mg_error tmp = MG_ERROR_INIT;
	if (ap->started)
		journal(ap, "end", why,
		        json_pack("{s:s, s:i}", "outcome", outcome, "exit_code", exit_code), &tmp);
	mg_error_clear(&tmp);
}

const char *mg_autopilot_finish(mg_autopilot *ap, mg_run_end end, const char *stopped_by,
                                int exit_code, char *say, size_t size)
{
	const mg_state *st = &ap->m->st;
	*say = '\0';
	if (end == MG_RUN_STOPPED) {
		char at[64];
		mg_error tmp = MG_ERROR_INIT;
		if (ap->started)
			journal(ap, "stop", ap->stop_why,
			        json_pack("{s:s}", "outcome", "stop-requested"), &tmp);
		mg_error_clear(&tmp);
		mg_migration_step_name(at, sizeof(at), st, ap->m->traffic);
		snprintf(say, size,
		         "stopped: %.400s; the rollback moved the traffic, this run moved none "
		         "after it (its state still says %s)",
		         ap->stop_why, at);
		return "stopped";
	}
	if (end == MG_RUN_GOES_ON) {
		char why[64], at[64];
		snprintf(why, sizeof(why), "stopped by %s", stopped_by);
		mg_error tmp = MG_ERROR_INIT;
		if (ap->started)
			journal(ap, "stop", why, NULL, &tmp);
		mg_error_clear(&tmp);
		mg_migration_step_name(at, sizeof(at), st, ap->m->traffic);
		snprintf(say, size, "%s; the weights stay at %s", why, at);
		return "stopped";
	}
	if (end == MG_RUN_DONE) {
		bool complete = st->phase == MG_PHASE_COMPLETE;
		const char *outcome = complete ? "complete" : "until-reached";
		snprintf(say, size, "%s",
		         complete ? "all traffic is on the cluster: the migration is complete"
		                  : "reached --until; stopping here");
		mg_autopilot_journal_end(ap, outcome, exit_code, say);
		return outcome;
	}
	const char *outcome =
	    end == MG_RUN_FAILED && st->phase != MG_PHASE_PAUSED ? "rolled-back" : "paused";
	mg_autopilot_journal_end(ap, outcome, exit_code,
	                         st->phase == MG_PHASE_PAUSED
	                             ? st->pause_reason
	                             : "the gates failed: slo.on_failure rolled the traffic back "
	                               "to the VMs");
	return outcome;
}

json_t *mg_autopilot_to_json(const mg_migration *m, const mg_autopilot *ap, const char *outcome)
{
	const mg_state *st = &m->st;
	const mg_gate_eval *last = ap ? mg_autopilot_last(ap) : NULL;
	json_t *decided = ap ? mg_autopilot_decided(ap) : NULL;
	json_t *o = json_object();
	json_object_set_new(o, "plan", json_string(mg_plan_name(m->plan)));
	json_object_set_new(o, "outcome", json_string(outcome));
	json_object_set_new(o, "phase", json_string(mg_phase_name(st->phase)));
	json_object_set_new(o, "step",
	                    st->step_index < 0 ? json_null() : json_integer(st->step_index + 1));
	json_object_set_new(o, "k8s_percent",
	                    json_real(st->has_read_back ? st->read_back_k8s_percent : 0));
	json_object_set_new(o, "gates",
	                    last      ? mg_gate_eval_to_json(last)
	                    : decided ? json_incref(decided)
	                              : json_null());
	return o;
}
