/*
 * The gates evaluated once, for `migrate check`: at a time given or now, over
 * the traffic since the current step began (as state.json records it) or
 * since a time given. Read-only: the state directory is neither created nor
 * locked, and nothing is journalled.
 */
#include "kubestore.h"
#include "migration.h"

int mg_migration_check_gates(mg_gate_eval *out, mg_state *st, const mg_plan *plan,
                             const mg_gates_once_options *o, mg_error *err)
{
	mg_store *store = NULL;
	mg_metrics *m = NULL;
	mg_state_init(st, mg_plan_name(plan));
	int rc = mg_kube_store_open_plan(&store, plan, o->state_dir, true, NULL, 0, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		rc = 0;
	} else if (!rc) {
		rc = mg_state_load(st, store, err);
	}
	if (!rc)
		rc = mg_metrics_open(&m, mg_plan_slo_section(plan), err);
	int64_t at = o->has_at ? o->at_ms : mg_now_ms();
	int64_t started = o->since_ms >= 0 ? o->since_ms : st->step_started_ms;
	if (!rc && started > at) {
		char a[40], b[40];
		mg_time_format(a, sizeof(a), at);
		mg_time_format(b, sizeof(b), started);
		rc = mg_error_set(err, MG_EINVALID,
		                  "%s %s is before %s (%s): the gates judge the traffic of the "
		                  "current step since it began, so there is nothing to evaluate "
		                  "then; give a later --at%s",
		                  o->has_at ? "--at" : "now,", a,
		                  o->since_ms >= 0 ? "--since" : "the current step began", b,
		                  o->since_ms >= 0 ? " or an earlier --since" : "");
	}
	if (!rc)
		rc = mg_gate_evaluate(out, m, mg_plan_slo_section(plan), at, started, err);
	mg_metrics_free(m);
	mg_store_free(store);
	return rc;
}
