/*
 * The rules of a step, whoever takes it (`migrate step`, the autopilot): the
 * preconditions in one place, the move through lib/traffic/shift.c, and the
 * gate evaluations that led to a decision in the journal.
 */
#include <string.h>

#include "clock.h"
#include "internal.h"
#include "journal.h"
#include "spool.h"
#include "storebackend.h"
#include "units.h"

void mg_migration_gate_record(mg_state *st, const mg_gate_eval *ev)
{
	snprintf(st->gate_last, sizeof(st->gate_last), "%s", mg_gate_outcome_name(ev->outcome));
	st->gate_last_ms = ev->at_ms;
	mg_gate_eval_summary(st->gate_summary, sizeof(st->gate_summary), ev);
}

int mg_migration_gate_journal(mg_store *store, mg_state *st, const char *command,
                              const mg_gate_eval *ev, const char *decision, mg_error *err)
{
	mg_migration_gate_record(st, ev);
	json_t *after = json_pack("{s:s, s:s, s:i}", "outcome", mg_gate_outcome_name(ev->outcome),
	                          "decision", decision, "failures", st->gate_failures);
	json_t *evidence = mg_gate_eval_to_json(ev);
	json_t *before =
	    json_pack("{s:o, s:f}", "step",
	              st->step_index < 0 ? json_null() : json_integer(st->step_index + 1),
	              "k8s_percent", st->has_read_back ? st->read_back_k8s_percent : 0.0);
	mg_journal_entry e = {.command = command,
	                      .action = "gate",
	                      .before = before,
	                      .after = after,
	                      .reason = st->gate_summary,
	                      .evidence = evidence};
	int rc = mg_journal_append(store, &e, err);
	json_decref(before);
	json_decref(after);
	json_decref(evidence);
	return rc;
}

void mg_step_verdict_clear(mg_step_verdict *v)
{
	mg_gate_eval_clear(&v->gates);
	memset(v, 0, sizeof(*v));
}

/*
 * More traffic to a cluster that runs another release than the VMs is a
 * release change and a migration step at once: whichever breaks, the gates
 * cannot tell which. A cluster whose rollout of the VMs' release failed does
 * not run it either: some pods may, some may run the release before, or none
 * be ready.
 */
static int check_skew(mg_step_verdict *out, mg_migration *m, const mg_step_rules *r, mg_error *err)
{
	const mg_state *st = &m->st;
	bool skew = *st->vms_version && *st->kubernetes_version &&
	            strcmp(st->vms_version, st->kubernetes_version) != 0;
	bool failed = *st->vms_version && !strcmp(st->vms_version, st->kubernetes_version) &&
	              !strcmp(st->kubernetes_rollout, "failed");
	if (failed && !r->allow_skew)
		return mg_error_set(
		    err, MG_ECONFLICT,
		    "the VMs run %s but the cluster's rollout of %s failed (%s): deploy "
		    "it to the cluster again (`migrate deploy --k8s-only --version %s`) "
		    "before moving traffic, or step anyway with --allow-skew",
		    st->vms_version, st->kubernetes_version,
		    *st->kubernetes_error ? st->kubernetes_error : "no reason recorded",
		    st->kubernetes_version);
	if (!skew && !failed)
		return 0;
	if (!r->allow_skew)
		return mg_error_set(err, MG_ECONFLICT,
		                    "the VMs run %s but the cluster runs %s: deploy one release to "
		                    "both (`migrate deploy --version V`) before moving traffic, or "
		                    "step anyway with --allow-skew",
		                    st->vms_version, st->kubernetes_version);
	out->skew_allowed = true;
	if (m->dry_run)
		return 0;
	json_t *ev =
	    json_pack("{s:s, s:s, s:b}", "vms_version", st->vms_version, "kubernetes_version",
	              st->kubernetes_version, "kubernetes_rollout_failed", failed);
	mg_journal_entry e = {
	    .command = m->command, .action = "skew-allowed", .reason = r->reason, .evidence = ev};
	int rc = mg_journal_append(m->store, &e, err);
	json_decref(ev);
	return rc;
}

/* Someone moved the weights by hand: stepping on top of that would hide it. */
static int check_drift(mg_step_verdict *out, mg_migration *m, const mg_step_rules *r, mg_error *err)
{
	bool drift;
	double live;
	int rc = mg_shift_drift(&drift, &live, &m->st, m->t, err);
	if (rc || !drift)
		return rc;
	if (!r->adopt)
		return mg_error_set(
		    err, MG_ECONFLICT,
		    "%s sends %.4g%% to the cluster, but migrate last set %.4g%%: the "
		    "weights were changed by hand. Take them as they are with "
		    "`migrate step --adopt`, or put everything back with `migrate "
		    "rollback`",
		    mg_traffic_name(m->t), live,
		    m->st.has_read_back ? m->st.read_back_k8s_percent : 0.0);
	out->adopted = true;
	return m->dry_run ? 0 : mg_shift_adopt(m->store, &m->st, live, m->command, r->reason, err);
}

static int resolve_target(mg_step_verdict *out, mg_migration *m, const mg_step_rules *r,
                          mg_error *err)
{
	const mg_plan_traffic *t = m->traffic;
	int idx = m->st.step_index + 1;
	if (r->has_to) {
		idx = mg_migration_step_index(t, r->to);
		if (idx < 0)
			return mg_error_set(
			    err, MG_EINVALID,
			    "--to %s is not one of traffic.steps; `migrate plan` lists them",
			    r->to_text);
		if (idx <= m->st.step_index)
			return mg_error_set(err, MG_EINVALID,
			                    "--to %s is not ahead of the current step (%d); use "
			                    "`migrate rollback --to %s` to go back",
			                    r->to_text, m->st.step_index + 1, r->to_text);
	}
	out->at_end = (size_t)idx >= t->nsteps;
	out->target = out->at_end ? -1 : idx;
	return 0;
}

/* A step must bake before the next: that is when the gates have had time to see it. */
static int check_bake(mg_migration *m, const mg_step_rules *r, mg_error *err)
{
	const mg_state *st = &m->st;
	int64_t ready_at = st->step_started_ms + m->traffic->bake_ms;
	if (!r->bake || r->force || st->step_index < 0 || st->phase != MG_PHASE_SHIFTING ||
	    r->now_ms >= ready_at)
		return 0;
	char left[32];
	/* rounded up: "0s left" while refusing would contradict itself */
	mg_duration_format(left, sizeof(left), (ready_at - r->now_ms + 999) / 1000 * 1000);
	return mg_error_set(err, MG_EINCONCLUSIVE,
	                    "step %d has baked for less than traffic.bake: %s left. Nothing was "
	                    "changed; try again then, or override with --force --reason TEXT",
	                    st->step_index + 1, left);
}

/* A pause holds manual steps too: whoever paused wanted nothing to move. */
static int check_pause(mg_migration *m, const mg_step_rules *r, mg_error *err)
{
	bool pause_file = false;
	mg_pause_request pr;
	if (m->store) { /* with a dry run there may be no state directory yet */
		int rc = mg_store_pause_read(&pause_file, &pr, m->store, err);
		if (rc)
			return rc;
	}
	if ((m->st.phase != MG_PHASE_PAUSED && !pause_file) || r->force)
		return 0;
	/* only `step` has --force; the autopilot waits for `migrate resume` */
	bool step = !strcmp(m->command, "step");
	return mg_error_set(err, MG_ECONFLICT,
	                    "the migration is paused%s%s; `migrate resume` releases it%s",
	                    m->st.pause_reason[0] ? " " : "", m->st.pause_reason,
	                    step ? " (or override with --force --reason TEXT)" : "");
}

/*
 * The step being left must have proven itself; before the first there is
 * nothing on the cluster to measure. A refusal is a decision too: the journal
 * says on which numbers.
 */
static int check_gates(mg_step_verdict *out, mg_migration *m, const mg_step_rules *r, mg_error *err)
{
	if (!r->gates || !m->slo || m->st.step_index < 0 || r->force)
		return 0;
	mg_metrics *metrics;
	int rc = mg_migration_metrics(&metrics, m, err);
	if (!rc)
		rc = mg_gate_evaluate(&out->gates, metrics, m->slo, r->now_ms,
		                      m->st.step_started_ms, err);
	if (rc)
		return rc;
	out->has_gates = true;
	const mg_gate_eval *ev = &out->gates;
	const char *decision = ev->outcome == MG_GATE_PASS ? "advance" : "refuse";
	if (m->dry_run) {
		mg_migration_gate_record(&m->st, ev);
	} else {
		rc = mg_migration_gate_journal(m->store, &m->st, m->command, ev, decision, err);
		if (!rc && ev->outcome != MG_GATE_PASS)
			rc = mg_state_save(m->store, &m->st, err);
	}
	if (rc || ev->outcome == MG_GATE_PASS)
		return rc;
	char where[64];
	mg_migration_step_name(where, sizeof(where), &m->st, m->traffic);
	return mg_error_set(err, ev->outcome == MG_GATE_FAIL ? MG_ERROR : MG_EINCONCLUSIVE,
	                    "the gates %s at %s: %s. Nothing was changed; `migrate check` "
	                    "shows every check, --force --reason TEXT overrides",
	                    ev->outcome == MG_GATE_FAIL ? "fail" : "are inconclusive", where,
	                    m->st.gate_summary);
}

int mg_migration_check_step(mg_step_verdict *out, mg_migration *m, const mg_step_rules *r,
                            mg_error *err)
{
	memset(out, 0, sizeof(*out));
	out->target = -1;
	int rc = check_skew(out, m, r, err);
	if (!rc)
		rc = check_drift(out, m, r, err);
	if (!rc)
		rc = resolve_target(out, m, r, err);
	if (rc || out->at_end)
		return rc;
	rc = check_bake(m, r, err);
	if (!rc)
		rc = check_pause(m, r, err);
	if (!rc)
		rc = check_gates(out, m, r, err);
	return rc;
}

int mg_migration_shift(mg_shift_outcome *out, mg_migration *m, int idx, const char *reason,
                       bool forced, mg_error *err)
{
	const mg_plan_traffic *t = m->traffic;
	mg_shift_request req = {.command = m->command,
	                        .k8s_percent = idx < 0 ? 0.0 : t->steps[idx],
	                        .step_index = idx,
	                        .nsteps = t->nsteps,
	                        .reason = reason,
	                        .forced = forced};
	int rc = mg_shift_apply(out, m->store, &m->st, m->t, &req, err);
	/* the cluster went away mid-move: what it did not take waits in the local spool */
	rc = out ? mg_migration_spool(m, out, true, rc, err) : rc;
	/*
	 * An operator's step moves the migration on after a rollback: a stop
	 * request still halting leader-elected autopilots is over with it.
	 */
	if (!rc && !strcmp(m->command, "step"))
		rc = mg_store_stop_remove(m->store, err);
	return rc;
}

int mg_migration_rollback_check(int *idx, double *from, mg_migration *m, double to_percent,
                                const char *to_text, mg_error *err)
{
	*idx = -1;
	*from = 0;
	if (to_text && to_percent > 0) {
		*idx = mg_migration_step_index(m->traffic, to_percent);
		if (*idx < 0)
			return mg_error_set(
			    err, MG_EINVALID,
			    "--to %s is neither 0 nor one of traffic.steps; `migrate "
			    "plan` lists them",
			    to_text);
	}
	mg_traffic_state live;
	int rc = mg_traffic_read(&live, m->t, err);
	if (rc)
		return rc;
	*from = live.k8s_percent;
	mg_traffic_state_clear(&live);
	if (to_text && to_percent >= *from + 0.5)
		return mg_error_set(err, MG_EINVALID,
		                    "--to %s is not below the %.4g%% the cluster has now; use "
		                    "`migrate step --to %s` to go forward",
		                    to_text, *from, to_text);
	return 0;
}

/*
 * The rollback moved traffic without the lock: an autopilot of another host
 * held it and was asked to stop, which it does within a tick (a gate query
 * at most). The traffic has moved already, so waiting now costs the
 * balancer nothing: the lock is taken once that autopilot let go (up to
 * MG_MIGRATION_PREEMPT_WAIT_MS), the state read as it left it, and the
 * rollback recorded there rather than in this machine's spool. Returns rc
 * (unrecorded) when the lock or the state cannot be had in that time.
 */
static int record_late(mg_shift_outcome *out, mg_migration *m, const mg_shift_request *req, int rc,
                       mg_error *err)
{
	if (!m->store || !mg_store_remote(m->store))
		return rc;
	int64_t until = mg_clock_ms() + MG_MIGRATION_PREEMPT_WAIT_MS;
	mg_error why = MG_ERROR_INIT;
	int lrc;
	while ((lrc = mg_store_lock(m->store, m->command, &why)) == MG_ELOCKED &&
	       mg_clock_ms() < until && !(m->cancel && *m->cancel)) {
		mg_error_clear(&why);
		mg_clock_sleep_ms(100, m->cancel);
	}
	mg_state st;
	if (lrc || mg_state_load(&st, m->store, &why)) {
		mg_error_clear(&why);
		return rc;
	}
	m->st = st;
	m->site.unlocked = m->site.state_unread = false;
	mg_error_clear(err);
	/*
	 * The autopilot may have moved once more between its last look for the
	 * stop request and the rollback's move. It holds nothing now, so what the
	 * balancer has is read again, and the rollback applied again if it differs.
	 */
	mg_traffic_state live;
	if (mg_traffic_read(&live, m->t, &why) == 0) {
		bool moved = live.k8s_percent > req->k8s_percent + 0.5 ||
		             live.k8s_percent < req->k8s_percent - 0.5;
		mg_traffic_state_clear(&live);
		if (moved) {
			mg_traffic_state_clear(&out->read_back);
			rc = mg_traffic_apply(&out->read_back, m->t, req->k8s_percent, req->forced,
			                      err);
			if (rc)
				return rc;
		}
	}
	mg_error_clear(&why);
	return mg_shift_rollback_record_late(out, m->store, &m->st, req, err);
}

int mg_migration_rollback(mg_shift_outcome *out, mg_migration *m, double to_percent, int idx,
                          const char *reason, bool forced, mg_error *err)
{
	mg_shift_request req = {.command = m->command,
	                        .k8s_percent = to_percent,
	                        .step_index = idx,
	                        .nsteps = m->traffic->nsteps,
	                        .reason = reason,
	                        .forced = forced};
	/* the balancer first, then the record: MG_EUNRECORDED still reports the read-back */
	int rc = mg_shift_rollback(out, m->store, &m->st, &m->site, m->t, &req, err);
	if (rc == MG_EUNRECORDED && m->site.stop_asked)
		rc = record_late(out, m, &req, rc, err);
	/* the cluster that keeps the state cannot be reached: the record waits in the spool */
	rc = mg_migration_spool(m, out, !m->site.state_unread, rc, err);
	/* the way out ends a hold too: a pause request left behind would block the next run */
	if (!rc)
		rc = mg_store_pause_remove(m->store, err);
	/* recorded: the stop request has done its work, and leader-elected replicas see it so */
	if (!rc)
		rc = mg_store_stop_remove(m->store, err);
	/* recorded, so the cluster answers: what earlier commands spooled goes up after it */
	if (!rc)
		mg_store_spool_flush(m->store);
	return rc;
}

static json_t *position_json(double pct, const int *idx)
{
	json_t *o = json_pack("{s:f}", "k8s_percent", pct);
	if (idx)
		json_object_set_new(o, "step", *idx < 0 ? json_null() : json_integer(*idx + 1));
	return o;
}

json_t *mg_migration_move_to_json(const mg_migration *m, const mg_shift_outcome *out, double from,
                                  const int *from_idx, double to, int idx)
{
	const char *reconciled = mg_migration_reconciled(m);
	json_t *o = json_object();
	json_object_set_new(o, "plan", json_string(mg_plan_name(m->plan)));
	json_object_set_new(o, "from", position_json(from, from_idx));
	json_object_set_new(o, "to", position_json(to, &idx));
	json_object_set_new(o, "read_back", mg_traffic_state_to_json(&out->read_back));
	json_object_set_new(o, "phase", json_string(mg_phase_name(m->st.phase)));
	json_object_set_new(o, "reconciled", reconciled ? json_string(reconciled) : json_null());
	return o;
}
