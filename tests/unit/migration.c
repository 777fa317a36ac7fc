/*
 * The autopilot's decision table (lib/migration/decide.c), row by row: what one
 * evaluation of the gates leads to, without a balancer, a Prometheus or a clock.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../testutil.h"
#include "migration.h"

#define NOW   1000000000LL /* ms */
#define BAKE  60000
#define EVERY 10000

enum { SINCE_NONE = 0, SINCE_NOW = -1 };

typedef struct {
	const char *name;
	/* the state and the run so far */
	int step, failures;
	int64_t age_ms; /* since the current step began */
	mg_on_failure on_failure;
	int failure_limit;
	mg_gate_outcome outcome;
	bool awaiting, changed, data_seen, drift;
	int64_t inconclusive_for_ms; /* 0: the last evaluation was conclusive */
	int until;
	/* what is decided */
	mg_decision_kind kind;
	const char *journal;
	bool save;
	int failures_after;
	mg_run_end end;
	int target;
	int64_t since_after; /* SINCE_NONE, SINCE_NOW or an age in ms */
	bool data_seen_after;
} row;

static const row rows[] = {
    {"fail below the limit counts", .step = 1, .failures = 0, .age_ms = 70000, .failure_limit = 3,
     .outcome = MG_GATE_FAIL, .changed = true, .inconclusive_for_ms = 5000, .until = 2,
     .kind = MG_DECIDE_COUNT, .journal = "count", .save = true, .failures_after = 1,
     .end = MG_RUN_GOES_ON, .target = 1, .since_after = SINCE_NONE},
    {"fail at the limit rolls back (on_failure: rollback)", .step = 1, .failures = 2,
     .age_ms = 70000, .on_failure = MG_ON_FAILURE_ROLLBACK, .failure_limit = 3,
     .outcome = MG_GATE_FAIL, .until = 2, .kind = MG_DECIDE_ROLLBACK, .journal = "rollback",
     .save = true, .failures_after = 3, .end = MG_RUN_FAILED, .target = -1},
    {"fail at the limit pauses (on_failure: pause)", .step = 1, .failures = 2, .age_ms = 70000,
     .on_failure = MG_ON_FAILURE_PAUSE, .failure_limit = 3, .outcome = MG_GATE_FAIL, .until = 2,
     .kind = MG_DECIDE_PAUSE, .journal = "pause", .save = true, .failures_after = 3,
     .end = MG_RUN_FAILED, .target = 1},
    {"one failure is the limit at failure_limit 1 (on_failure: pause)", .step = 0, .age_ms = 5000,
     .on_failure = MG_ON_FAILURE_PAUSE, .failure_limit = 1, .outcome = MG_GATE_FAIL, .until = 2,
     .kind = MG_DECIDE_PAUSE, .journal = "pause", .save = true, .failures_after = 1,
     .end = MG_RUN_FAILED, .target = 0},
    {"inconclusive for 3 x max(bake, interval) pauses", .step = 1, .age_ms = 500000,
     .failure_limit = 3, .outcome = MG_GATE_INCONCLUSIVE, .data_seen = true,
     .inconclusive_for_ms = 3 * BAKE, .until = 2, .kind = MG_DECIDE_STALLED, .journal = "pause",
     .save = false, .end = MG_RUN_INCONCLUSIVE, .target = 1, .since_after = 3 * BAKE,
     .data_seen_after = true},
    {"inconclusive just short of the limit holds", .step = 1, .age_ms = 500000, .failure_limit = 3,
     .outcome = MG_GATE_INCONCLUSIVE, .data_seen = true, .inconclusive_for_ms = 3 * BAKE - 1,
     .until = 2, .kind = MG_DECIDE_HOLD, .journal = NULL, .end = MG_RUN_GOES_ON, .target = 1,
     .since_after = 3 * BAKE - 1, .data_seen_after = true},
    {"no data yet at a young step is forgotten", .step = 1, .age_ms = 20000, .failure_limit = 3,
     .outcome = MG_GATE_INCONCLUSIVE, .awaiting = true, .changed = true, .until = 2,
     .kind = MG_DECIDE_FORGET, .journal = NULL, .end = MG_RUN_GOES_ON, .target = 1,
     .since_after = SINCE_NOW, .data_seen_after = false},
    {"no data after the grace is a hold", .step = 1, .age_ms = BAKE, .failure_limit = 3,
     .outcome = MG_GATE_INCONCLUSIVE, .awaiting = true, .changed = true, .until = 2,
     .kind = MG_DECIDE_HOLD, .journal = "hold", .save = true, .end = MG_RUN_GOES_ON, .target = 1,
     .since_after = SINCE_NOW, .data_seen_after = false},
    {"no data again after data was seen is a hold", .step = 1, .age_ms = 20000, .failure_limit = 3,
     .outcome = MG_GATE_INCONCLUSIVE, .awaiting = true, .changed = true, .data_seen = true,
     .until = 2, .kind = MG_DECIDE_HOLD, .journal = "hold", .save = true, .end = MG_RUN_GOES_ON,
     .target = 1, .since_after = SINCE_NOW, .data_seen_after = true},
    {"inconclusive with data, new outcome: hold, journalled", .step = 1, .age_ms = 20000,
     .failure_limit = 3, .outcome = MG_GATE_INCONCLUSIVE, .changed = true, .until = 2,
     .kind = MG_DECIDE_HOLD, .journal = "hold", .save = true, .end = MG_RUN_GOES_ON, .target = 1,
     .since_after = SINCE_NOW, .data_seen_after = true},
    {"inconclusive, same outcome: hold, no news", .step = 1, .age_ms = 30000, .failure_limit = 3,
     .outcome = MG_GATE_INCONCLUSIVE, .data_seen = true, .inconclusive_for_ms = 10000, .until = 2,
     .kind = MG_DECIDE_HOLD, .journal = NULL, .end = MG_RUN_GOES_ON, .target = 1,
     .since_after = 10000, .data_seen_after = true},
    {"pass while baking, new outcome: bake, journalled", .step = 1, .age_ms = BAKE - 1,
     .failure_limit = 3, .outcome = MG_GATE_PASS, .changed = true, .inconclusive_for_ms = 10000,
     .until = 2, .kind = MG_DECIDE_BAKE, .journal = "bake", .save = true, .end = MG_RUN_GOES_ON,
     .target = 1, .since_after = SINCE_NONE, .data_seen_after = true},
    {"pass while baking, same outcome: no news", .step = 1, .age_ms = 30000, .failure_limit = 3,
     .outcome = MG_GATE_PASS, .until = 2, .kind = MG_DECIDE_BAKE, .journal = NULL,
     .end = MG_RUN_GOES_ON, .target = 1, .data_seen_after = true},
    {"pass after the bake on hand-changed weights: drift hold", .step = 1, .age_ms = BAKE,
     .failure_limit = 3, .outcome = MG_GATE_PASS, .drift = true, .until = 2,
     .kind = MG_DECIDE_DRIFT, .journal = NULL, .end = MG_RUN_FAILED, .target = 1,
     .data_seen_after = true},
    {"pass after the bake advances", .step = 0, .age_ms = BAKE, .failure_limit = 3,
     .outcome = MG_GATE_PASS, .until = 2, .kind = MG_DECIDE_ADVANCE, .journal = "advance",
     .end = MG_RUN_GOES_ON, .target = 1, .data_seen_after = true},
    {"pass after the bake reaching --until ends the run", .step = 1, .age_ms = BAKE,
     .failure_limit = 3, .outcome = MG_GATE_PASS, .until = 2, .kind = MG_DECIDE_ADVANCE,
     .journal = "advance", .end = MG_RUN_DONE, .target = 2, .data_seen_after = true},
    {"the failure count survives a pass", .step = 1, .failures = 2, .age_ms = 30000,
     .failure_limit = 3, .outcome = MG_GATE_PASS, .until = 2, .kind = MG_DECIDE_BAKE,
     .failures_after = 2, .end = MG_RUN_GOES_ON, .target = 1, .data_seen_after = true},
};

Test(migration, decision_table)
{
	double steps[] = {10, 50, 100};
	mg_plan_traffic t = {.steps = steps, .nsteps = 3, .bake_ms = BAKE};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const row *w = &rows[i];
		mg_plan_slo slo = {.interval_ms = EVERY,
		                   .failure_limit = w->failure_limit,
		                   .on_failure = w->on_failure};
		mg_state st;
		mg_state_init(&st, "shop");
		st.step_index = w->step;
		st.step_started_ms = NOW - w->age_ms;
		st.gate_failures = w->failures;
		mg_decision_input in = {.st = &st,
		                        .traffic = &t,
		                        .slo = &slo,
		                        .outcome = w->outcome,
		                        .awaiting_data = w->awaiting,
		                        .changed = w->changed,
		                        .now_ms = NOW,
		                        .inconclusive_since_ms = w->inconclusive_for_ms
		                                                     ? NOW - w->inconclusive_for_ms
		                                                     : 0,
		                        .data_seen = w->data_seen,
		                        .drift = w->drift,
		                        .until = w->until};
		mg_decision d;
		mg_migration_decide(&d, &in);
		cr_expect_eq(d.kind, w->kind, "%s: kind %d, not %d", w->name, d.kind, w->kind);
		if (w->journal)
			cr_expect(d.journal && !strcmp(d.journal, w->journal), "%s: journal %s",
			          w->name, d.journal ? d.journal : "(none)");
		else
			cr_expect_null(d.journal, "%s: journal %s", w->name, d.journal);
		cr_expect_eq(d.save, w->save, "%s: save", w->name);
		cr_expect_eq(d.gate_failures, w->failures_after, "%s: failures %d", w->name,
		             d.gate_failures);
		cr_expect_eq(d.end, w->end, "%s: end %d", w->name, d.end);
		if (w->kind == MG_DECIDE_ADVANCE || w->kind == MG_DECIDE_ROLLBACK)
			cr_expect_eq(d.target, w->target, "%s: target %d", w->name, d.target);
		int64_t since = w->since_after == SINCE_NOW    ? NOW
		                : w->since_after == SINCE_NONE ? 0
		                                               : NOW - w->since_after;
		cr_expect_eq(d.inconclusive_since_ms, since, "%s: inconclusive since %lld", w->name,
		             (long long)d.inconclusive_since_ms);
		cr_expect_eq(d.data_seen, w->data_seen_after, "%s: data seen", w->name);
		/* pure: the input is not touched */
		cr_expect_eq(st.gate_failures, w->failures, "%s: the state changed", w->name);
	}
}

Test(migration, baked_is_the_bake_since_the_step_began)
{
	double steps[] = {50, 100};
	mg_plan_traffic t = {.steps = steps, .nsteps = 2, .bake_ms = BAKE};
	mg_state st;
	mg_state_init(&st, "shop");
	st.step_index = 0;
	st.step_started_ms = NOW - BAKE;
	cr_expect(mg_migration_baked(&st, &t, NOW));
	cr_expect_not(mg_migration_baked(&st, &t, NOW - 1));
}

Test(migration, step_index_and_name)
{
	double steps[] = {10, 50, 100};
	mg_plan_traffic t = {.steps = steps, .nsteps = 3};
	cr_expect_eq(mg_migration_step_index(&t, 50), 1);
	cr_expect_eq(mg_migration_step_index(&t, 30), -1);
	mg_state st;
	mg_state_init(&st, "shop");
	char buf[64];
	mg_migration_step_name(buf, sizeof(buf), &st, &t);
	cr_expect_str_eq(buf, "before the first step (0%)");
	st.step_index = 1;
	mg_migration_step_name(buf, sizeof(buf), &st, &t);
	cr_expect_str_eq(buf, "step 2 of 3 (50%)");
}

/* mg_migration_preview: what `migrate plan` shows, from the plan alone. */
Test(migration, preview_describes_steps_weights_and_gates)
{
	const char *yaml = "version: 1\nname: shop\n"
	                   "traffic:\n  provider: haproxy\n  steps: [10, 100]\n  bake: 1m\n"
	                   "  haproxy:\n    socket: /run/h.sock\n    backend: web\n"
	                   "    vm_servers: [vm-1, vm-2, vm-3]\n    k8s_servers: [k8s]\n"
	                   "slo:\n  prometheus: { url: \"http://127.0.0.1:9090\" }\n"
	                   "  window: 5m\n  checks:\n    - name: ok\n"
	                   "      query: sum(rate(ok[${window}]))\n      min: 0.5\n";
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(
	    mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", "/tmp", MG_PLAN_LOAD_NO_FS, &err),
	    0, "%s", err.message);
	json_t *pv = NULL;
	cr_assert_eq(mg_migration_preview(&pv, p, "/var/lib/m", &err), 0, "%s", err.message);
	cr_expect_str_eq(
	    json_string_value(json_object_get(json_object_get(pv, "plan"), "state_dir")),
	    "/var/lib/m");
	cr_expect(json_is_null(json_object_get(pv, "vms")));
	cr_expect(json_is_null(json_object_get(pv, "kubernetes")));
	cr_expect_eq(json_integer_value(json_object_get(pv, "minimum_duration_ms")), 120000);
	/* 10% over three VM servers and one cluster server: each server's weight */
	json_t *t = json_object_get(pv, "traffic");
	json_t *s1 = json_array_get(json_object_get(t, "steps"), 0);
	json_t *w = json_object_get(s1, "weights");
	cr_expect_eq(json_array_size(json_object_get(t, "steps")), 2);
	cr_expect_gt(json_integer_value(json_object_get(w, "vm-1")), 0);
	cr_expect_eq(json_integer_value(json_object_get(w, "vm-1")),
	             json_integer_value(json_object_get(w, "vm-3")));
	cr_expect_gt(json_integer_value(json_object_get(w, "k8s")), 0);
	/* the custom check's query with ${window} expanded */
	json_t *checks = json_object_get(json_object_get(pv, "slo"), "checks");
	json_t *ck = json_array_get(checks, json_array_size(checks) - 1);
	cr_expect_str_eq(json_string_value(json_object_get(ck, "source")), "custom");
	cr_expect_str_eq(json_string_value(json_object_get(ck, "query")), "sum(rate(ok[5m]))");
	json_decref(pv);
	mg_plan_free(p);
	mg_error_clear(&err);
}

/* A migration over a plan with a haproxy balancer in dir, opened to read: nothing recorded. */
static mg_migration *open_fresh(const char *dir)
{
	char plan[512];
	snprintf(plan, sizeof(plan), "%s/migrate.yaml", dir);
	FILE *f = fopen(plan, "w");
	cr_assert(f);
	fprintf(f,
	        "version: 1\nname: shop\nstate: { dir: %s/state }\n"
	        "traffic:\n  provider: haproxy\n  steps: [50, 100]\n  bake: 1m\n"
	        "  haproxy:\n    socket: %s/none.sock\n    backend: web\n"
	        "    vm_servers: [vm-1]\n    k8s_servers: [k8s]\n",
	        dir, dir);
	fclose(f);
	mg_migration *m = NULL;
	mg_error err = MG_ERROR_INIT;
	mg_migration_options o = {
	    .plan_path = plan, .command = "status", .mode = MG_MIGRATION_READ};
	cr_assert_eq(mg_migration_open(&m, &o, &err), 0, "%s", err.message);
	mg_error_clear(&err);
	return m;
}

/* mg_status_to_json: `status -o json` of a migration that has recorded nothing, offline. */
Test(migration, status_json_of_a_fresh_migration)
{
	char dir[256];
	tu_tmpdir_make(dir, sizeof(dir), "status");
	mg_migration *m = open_fresh(dir);
	mg_error err = MG_ERROR_INIT;
	mg_status s = {0};
	cr_assert_eq(mg_migration_status(&s, m, true, NOW, &err), 0, "%s", err.message);
	json_t *j = mg_status_to_json(&s, m, "/the/state");
	cr_expect_str_eq(json_string_value(json_object_get(j, "plan")), "shop");
	cr_expect_str_eq(json_string_value(json_object_get(j, "state_dir")), "/the/state");
	cr_expect(json_is_false(json_object_get(j, "recorded")));
	cr_expect_eq(json_integer_value(json_object_get(j, "steps")), 2);
	cr_expect(json_is_false(json_object_get(json_object_get(j, "lock"), "held")));
	cr_expect(json_is_null(json_object_get(j, "live")));
	cr_expect(json_is_null(json_object_get(j, "drift")));
	cr_expect(json_is_null(json_object_get(j, "bake_remaining_ms")));
	cr_expect(json_is_object(json_object_get(j, "state")));
	cr_expect_null(json_object_get(j, "error"));
	json_decref(j);
	mg_status_clear(&s);
	mg_migration_free(m);
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}

/* mg_hold_result_to_json and mg_autopilot_to_json without an autopilot (a dry run). */
Test(migration, hold_and_run_json)
{
	char dir[256];
	tu_tmpdir_make(dir, sizeof(dir), "holdjson");
	mg_migration *m = open_fresh(dir);
	mg_hold_result h = {.how = "paused", .changed = true, .autopilot_pid = 42};
	json_t *j = mg_hold_result_to_json(&h, m);
	cr_expect_str_eq(json_string_value(json_object_get(j, "plan")), "shop");
	cr_expect(json_is_true(json_object_get(j, "changed")));
	cr_expect_eq(json_integer_value(json_object_get(j, "autopilot")), 42);
	cr_expect_str_eq(json_string_value(json_object_get(j, "phase")), "idle");
	cr_expect_str_eq(json_string_value(json_object_get(j, "message")), "paused");
	json_decref(j);
	h.autopilot_pid = 0;
	j = mg_hold_result_to_json(&h, m);
	cr_expect(json_is_null(json_object_get(j, "autopilot")));
	json_decref(j);
	j = mg_autopilot_to_json(m, NULL, "dry-run");
	cr_expect_str_eq(json_string_value(json_object_get(j, "outcome")), "dry-run");
	cr_expect(json_is_null(json_object_get(j, "step")));
	cr_expect_eq(json_real_value(json_object_get(j, "k8s_percent")), 0);
	cr_expect(json_is_null(json_object_get(j, "gates")));
	cr_expect_null(json_object_get(j, "events"), "the caller's");
	json_decref(j);
	mg_migration_free(m);
	tu_tmpdir_remove(dir);
}

/* mg_migration_check_gates: a start after the time evaluated is refused, naming the flags. */
Test(migration, check_gates_refuses_a_start_after_the_time)
{
	const char *yaml = "version: 1\nname: shop\n"
	                   "slo:\n  prometheus: { url: \"http://127.0.0.1:9\" }\n"
	                   "  checks:\n    - { name: ok, query: up, min: 1 }\n";
	char dir[256];
	tu_tmpdir_make(dir, sizeof(dir), "check");
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(
	    mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", dir, MG_PLAN_LOAD_NO_FS, &err), 0,
	    "%s", err.message);
	mg_gate_eval ev = {0};
	mg_state st;
	mg_gates_once_options o = {
	    .state_dir = dir, .has_at = true, .at_ms = NOW, .since_ms = NOW + 1};
	cr_expect_eq(mg_migration_check_gates(&ev, &st, p, &o, &err), MG_EINVALID);
	cr_expect(strstr(err.message, "--at") && strstr(err.message, "an earlier --since"), "%s",
	          err.message);
	cr_expect_eq(st.step_index, -1, "a fresh state without a state directory");
	mg_gate_eval_clear(&ev);
	mg_plan_free(p);
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}
