/*
 * The preconditions of a step (mg_migration_check_step, lib/migration/rules.c)
 * called directly: a migration opened over a fake balancer and a fake metrics
 * source (mg_migration_options.traffic and .metrics), a real plan file and a
 * real state directory. Every refusal in its documented order, each override,
 * and the journal record of a gate evaluation.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "journal.h"
#include "metrics.h"
#include "migration.h"
#include "state.h"
#include "store.h"
#include "traffic.h"

#define NOW    ((int64_t)2000000000000) /* ms */
#define HOUR   ((int64_t)3600000)
#define BAKE_S 60

/* ---- a fake balancer: holds a share, reads it back ------------------------------------- */

typedef struct {
	double k8s;
	int reads, applies;
	int frees;
} fake_lb;

static int lb_read(void *drv, mg_traffic_state *out, mg_error *err)
{
	(void)err;
	fake_lb *f = drv;
	f->reads++;
	out->servers = calloc(2, sizeof(*out->servers));
	cr_assert_not_null(out->servers);
	out->nservers = 2;
	snprintf(out->servers[0].name, sizeof(out->servers[0].name), "vm1");
	out->servers[0].weight = 100 - f->k8s;
	snprintf(out->servers[1].name, sizeof(out->servers[1].name), "k8s1");
	out->servers[1].k8s = true;
	out->servers[1].weight = f->k8s;
	out->servers[1].health = MG_HEALTH_UP;
	out->k8s_percent = f->k8s;
	return 0;
}

static int lb_apply(void *drv, double k8s_percent, mg_error *err)
{
	(void)err;
	fake_lb *f = drv;
	f->applies++;
	f->k8s = k8s_percent;
	return 0;
}

static int lb_describe(void *drv, double k8s_percent, json_t **out, mg_error *err)
{
	(void)drv, (void)err;
	*out = json_pack("{s:f}", "k8s_percent", k8s_percent);
	return 0;
}

static void lb_free(void *drv)
{
	((fake_lb *)drv)->frees++;
}

static const mg_traffic_ops lb_ops = {
    .name = "fakelb", .read = lb_read, .apply = lb_apply, .describe = lb_describe, .free = lb_free};

/* ---- a fake metrics source: one value for the plan's one check, or no data ------------- */

typedef struct {
	bool no_data;
	double v;
	int queries;
	int frees;
} fake_prom;

static int prom_query(void *src, mg_metrics_result *out, const char *query, int64_t at_ms,
                      mg_error *err)
{
	(void)at_ms, (void)err;
	fake_prom *f = src;
	f->queries++;
	out->type = MG_METRICS_VECTOR;
	if (f->no_data || !strstr(query, "error_ratio"))
		return 0; /* as Prometheus answers a metric it never saw */
	out->series = calloc(1, sizeof(*out->series));
	cr_assert_not_null(out->series);
	out->nseries = 1;
	out->series[0].labels = strdup("{}");
	out->series[0].samples = calloc(1, sizeof(*out->series[0].samples));
	cr_assert_not_null(out->series[0].samples);
	out->series[0].nsamples = 1;
	out->series[0].samples[0] = (mg_metrics_sample){.t_ms = at_ms, .v = f->v};
	return 0;
}

static int prom_query_range(void *src, mg_metrics_result *out, const char *query, int64_t start_ms,
                            int64_t end_ms, int64_t step_ms, mg_error *err)
{
	(void)src, (void)out, (void)query, (void)start_ms, (void)end_ms, (void)step_ms;
	return mg_error_set(err, MG_EINVALID, "the gates make no range queries");
}

static void prom_free(void *src)
{
	((fake_prom *)src)->frees++;
}

static const mg_metrics_ops prom_ops = {
    .name = "fakeprom", .query = prom_query, .query_range = prom_query_range, .free = prom_free};

/* ---- fixture --------------------------------------------------------------------------- */

static char dir[256], plan_path[300], state_dir[300];
static fake_lb lb;
static fake_prom prom;
static mg_migration *m;
static mg_step_verdict v;
static mg_error err = MG_ERROR_INIT;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "rules");
	snprintf(plan_path, sizeof(plan_path), "%s/plan.yaml", dir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	char text[2048];
	snprintf(text, sizeof(text),
	         "version: 1\n"
	         "name: shop\n"
	         "traffic:\n"
	         "  provider: haproxy\n"
	         "  steps: [10, 50, 100]\n"
	         "  bake: %ds\n"
	         "  haproxy:\n"
	         "    socket: %s/nothing.sock\n"
	         "    backend: app\n"
	         "    vm_servers: [vm1]\n"
	         "    k8s_servers: [k8s1]\n"
	         "slo:\n"
	         "  prometheus: { url: \"http://127.0.0.1:1\" }\n"
	         "  interval: 5s\n"
	         "  window: 30s\n"
	         "  checks:\n"
	         "    - { name: errors, query: error_ratio, max: 0.01 }\n"
	         "state:\n"
	         "  dir: state\n",
	         BAKE_S, dir);
	tu_write_file(plan_path, text);
	memset(&lb, 0, sizeof(lb));
	memset(&prom, 0, sizeof(prom));
	prom.v = 0.001; /* under max: the gates pass */
	m = NULL;
	memset(&v, 0, sizeof(v));
	mg_error_clear(&err);
}

static void teardown(void)
{
	mg_step_verdict_clear(&v);
	mg_migration_free(m);
	m = NULL;
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}

TestSuite(migration_rules, .init = setup, .fini = teardown);

/*
 * A state that passes every rule at step 1 (10%): one release on both sides,
 * the balancer where migrate left it, baked for an hour, not paused.
 */
static mg_state healthy_state(void)
{
	mg_state st;
	mg_state_init(&st, "shop");
	st.phase = MG_PHASE_SHIFTING;
	st.step_index = 0;
	st.step_started_ms = NOW - HOUR;
	st.has_applied = true;
	st.applied_k8s_percent = 10;
	st.has_read_back = true;
	st.read_back_k8s_percent = 10;
	snprintf(st.vms_version, sizeof(st.vms_version), "v1");
	snprintf(st.kubernetes_version, sizeof(st.kubernetes_version), "v1");
	snprintf(st.kubernetes_rollout, sizeof(st.kubernetes_rollout), "ok");
	return st;
}

/* Writes st as state.json (and a pause request when asked), as another command left it. */
static void leave_state(mg_state st, const char *pause_request)
{
	mg_store *s = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, state_dir, "shop", &e), 0, "%s", e.message);
	cr_assert_eq(mg_store_lock(s, "test", &e), 0, "%s", e.message);
	mg_state cur;
	cr_assert_eq(mg_state_load(&cur, s, &e), 0, "%s", e.message);
	st.revision = cur.revision;
	cr_assert_eq(mg_state_save(s, &st, &e), 0, "%s", e.message);
	if (pause_request)
		cr_assert_eq(mg_store_pause_write(s, pause_request, &e), 0, "%s", e.message);
	mg_store_free(s);
	lb.k8s = st.has_read_back ? st.read_back_k8s_percent : 0;
}

/* `migrate step` opening the migration over the fakes. */
static void open_step(void)
{
	mg_traffic *t = NULL;
	mg_metrics *mx = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_open_driver(&t, &lb_ops, &lb, &e), 0, "%s", e.message);
	cr_assert_eq(mg_metrics_open_source(&mx, &prom_ops, &prom, &e), 0, "%s", e.message);
	mg_migration_options o = {.plan_path = plan_path,
	                          .state_dir = state_dir,
	                          .command = "step",
	                          .mode = MG_MIGRATION_SHIFT,
	                          .traffic = t,
	                          .metrics = mx};
	cr_assert_eq(mg_migration_open(&m, &o, &e), 0, "%s", e.message);
	cr_assert_str_eq(mg_traffic_name(mg_migration_balancer(m)), "fakelb");
	mg_error_clear(&e);
}

/* `migrate step` with no flags: bake and gates checked. */
static mg_step_rules step_rules(void)
{
	return (mg_step_rules){.bake = true, .gates = true, .now_ms = NOW};
}

static int check(const mg_step_rules *r)
{
	mg_step_verdict_clear(&v);
	mg_error_clear(&err);
	return mg_migration_check_step(&v, m, r, &err);
}

static void refused(int rc, int want, const char *words)
{
	cr_assert_eq(rc, want, "rc %d, want %d: %s", rc, want, err.message);
	cr_assert(strstr(err.message, words), "«%s» not in: %s", words, err.message);
}

/* The journal's records (decref it); the migration is closed first to let go of the lock. */
static json_t *journal(void)
{
	mg_migration_free(m);
	m = NULL;
	mg_store *s = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, state_dir, "shop", &e), 0, "%s", e.message);
	json_t *arr = NULL;
	cr_assert_eq(mg_journal_read(&arr, NULL, s, 0, &e), 0, "%s", e.message);
	mg_store_free(s);
	return arr;
}

static json_t *last_with_action(json_t *arr, const char *action)
{
	json_t *found = NULL;
	size_t i;
	json_t *rec;
	json_array_foreach(arr, i, rec)
	{
		const char *a = json_string_value(json_object_get(rec, "action"));
		if (a && !strcmp(a, action))
			found = rec;
	}
	return found;
}

static mg_state disk_state(void)
{
	mg_store *s = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, state_dir, "shop", &e), 0, "%s", e.message);
	mg_state st;
	cr_assert_eq(mg_state_load(&st, s, &e), 0, "%s", e.message);
	mg_store_free(s);
	return st;
}

/* ---- the tests ------------------------------------------------------------------------- */

Test(migration_rules, the_test_hooks_are_used_and_owned)
{
	leave_state(healthy_state(), NULL);
	open_step();
	mg_step_rules r = step_rules();
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert_geq(lb.reads, 1, "the fake balancer was read (drift)");
	cr_assert_geq(prom.queries, 1, "the fake metrics source was asked (gates)");
	mg_migration_free(m);
	m = NULL;
	cr_assert_eq(lb.frees, 1);
	cr_assert_eq(prom.frees, 1);
}

Test(migration_rules, hooks_are_freed_when_the_open_fails)
{
	tu_write_file(plan_path, "version: 1\nname: shop\n"); /* no traffic section */
	mg_traffic *t = NULL;
	mg_metrics *mx = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_open_driver(&t, &lb_ops, &lb, &e), 0, "%s", e.message);
	cr_assert_eq(mg_metrics_open_source(&mx, &prom_ops, &prom, &e), 0, "%s", e.message);
	mg_migration_options o = {.plan_path = plan_path,
	                          .state_dir = state_dir,
	                          .command = "step",
	                          .traffic = t,
	                          .metrics = mx};
	cr_assert_neq(mg_migration_open(&m, &o, &e), 0);
	cr_assert_null(m);
	cr_assert_eq(lb.frees, 1);
	cr_assert_eq(prom.frees, 1);
	mg_error_clear(&e);
}

/*
 * Everything wrong at once, then put right one at a time: each refusal must
 * be the next rule in the documented order (skew, rollout failed, drift, --to,
 * bake, pause, gates).
 */
Test(migration_rules, refusals_come_in_the_documented_order)
{
	mg_state st = healthy_state();
	snprintf(st.vms_version, sizeof(st.vms_version), "v2"); /* skew */
	st.step_started_ms = NOW - 10000;                       /* baking */
	/* a pause request, not phase paused: a paused migration does not bake */
	leave_state(st, "incident 7");
	lb.k8s = 30;  /* drift: migrate set 10 */
	prom.v = 0.5; /* the gates fail */
	open_step();
	mg_step_rules r = step_rules();
	r.has_to = true; /* not a step */
	r.to = 33;
	r.to_text = "33";

	refused(check(&r), MG_ECONFLICT, "the VMs run v2 but the cluster runs v1");
	cr_assert_eq(lb.reads, 0, "the balancer was read after a skew refusal");
	r.allow_skew = true;
	refused(check(&r), MG_ECONFLICT, "weights were changed by hand");
	r.adopt = true;
	refused(check(&r), MG_EINVALID, "--to 33 is not one of traffic.steps");
	r.to = 50;
	r.to_text = "50";
	refused(check(&r), MG_EINCONCLUSIVE,
	        "step 1 has baked for less than traffic.bake: 50s left");
	r.now_ms = NOW + 60000; /* baked */
	refused(check(&r), MG_ECONFLICT, "the migration is paused; `migrate resume` releases it");
	cr_assert_eq(prom.queries, 0, "the gates were asked before the pause refused");
	mg_migration_free(m);
	m = NULL;
	mg_store *s = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, state_dir, "shop", &e), 0, "%s", e.message);
	cr_assert_eq(mg_store_pause_remove(s, &e), 0, "%s", e.message);
	mg_store_free(s);
	lb.k8s = 30; /* adopted: no drift any more */
	open_step();
	refused(check(&r), MG_ERROR, "the gates fail at step 1 of 3 (10%)");
	cr_assert(v.has_gates);
	cr_assert_eq(v.gates.outcome, MG_GATE_FAIL);
	prom.v = 0.001;
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert_eq(v.target, 1);
	cr_assert(v.skew_allowed);
	cr_assert(!v.adopted, "the drift was adopted already");
}

Test(migration_rules, skew_refused_unless_allowed_and_then_journalled)
{
	mg_state st = healthy_state();
	snprintf(st.kubernetes_version, sizeof(st.kubernetes_version), "v0");
	leave_state(st, NULL);
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_ECONFLICT,
	        "the VMs run v1 but the cluster runs v0: deploy one release to both");
	cr_assert(strstr(err.message, "--allow-skew"), "%s", err.message);
	cr_assert(!v.skew_allowed);
	r.allow_skew = true;
	r.reason = "hotfix on the VMs only";
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert(v.skew_allowed);
	cr_assert_eq(v.target, 1);
	json_t *j = journal();
	json_t *rec = last_with_action(j, "skew-allowed");
	cr_assert_not_null(rec, "no skew-allowed record");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "reason")),
	                 "hotfix on the VMs only");
	json_t *evd = json_object_get(rec, "evidence");
	cr_assert_str_eq(json_string_value(json_object_get(evd, "vms_version")), "v1");
	cr_assert_str_eq(json_string_value(json_object_get(evd, "kubernetes_version")), "v0");
	json_decref(j);
}

Test(migration_rules, a_failed_cluster_rollout_is_skew_too)
{
	mg_state st = healthy_state();
	snprintf(st.kubernetes_rollout, sizeof(st.kubernetes_rollout), "failed");
	mg_state_set_kubernetes_error(&st, "Deployment shop: ProgressDeadlineExceeded");
	leave_state(st, NULL);
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_ECONFLICT,
	        "the VMs run v1 but the cluster's rollout of v1 failed (Deployment shop: "
	        "ProgressDeadlineExceeded)");
	r.allow_skew = true;
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert(v.skew_allowed);
	json_t *j = journal();
	json_t *rec = last_with_action(j, "skew-allowed");
	cr_assert_not_null(rec);
	cr_assert(json_is_true(
	    json_object_get(json_object_get(rec, "evidence"), "kubernetes_rollout_failed")));
	json_decref(j);
}

Test(migration_rules, drift_refused_unless_adopted)
{
	leave_state(healthy_state(), NULL);
	lb.k8s = 25; /* someone moved the weights by hand */
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_ECONFLICT,
	        "fakelb sends 25% to the cluster, but migrate last set 10%: the weights were "
	        "changed by hand");
	cr_assert(!v.adopted);
	r.adopt = true;
	r.reason = "ops moved it";
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert(v.adopted);
	cr_assert_eq(mg_migration_state(m)->read_back_k8s_percent, 25);
	cr_assert_eq(lb.applies, 0, "checking moved traffic");
	json_t *j = journal();
	cr_assert_not_null(last_with_action(j, "adopt"), "the adoption is not journalled");
	json_decref(j);
	cr_assert_eq(disk_state().read_back_k8s_percent, 25, "the adoption is not saved");
}

Test(migration_rules, to_must_be_a_step_ahead)
{
	leave_state(healthy_state(), NULL);
	open_step();
	mg_step_rules r = step_rules();
	r.has_to = true;
	r.to = 20;
	r.to_text = "20%";
	refused(check(&r), MG_EINVALID, "--to 20% is not one of traffic.steps");
	r.to = 10;
	r.to_text = "10";
	refused(check(&r), MG_EINVALID, "--to 10 is not ahead of the current step (1)");
	r.to = 100;
	r.to_text = "100";
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert_eq(v.target, 2);
}

Test(migration_rules, at_the_last_step_there_is_nothing_to_do)
{
	mg_state st = healthy_state();
	st.step_index = 2;
	st.read_back_k8s_percent = st.applied_k8s_percent = 100;
	st.step_started_ms = NOW; /* baking, but no step is left to refuse */
	leave_state(st, NULL);
	prom.v = 0.5;
	open_step();
	mg_step_rules r = step_rules();
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert(v.at_end);
	cr_assert_eq(v.target, -1);
	cr_assert_eq(prom.queries, 0);
}

Test(migration_rules, bake_refused_unless_forced)
{
	mg_state st = healthy_state();
	st.step_started_ms = NOW - 1000;
	leave_state(st, NULL);
	prom.no_data = true; /* forced past the bake, the gates are not asked either */
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_EINCONCLUSIVE,
	        "step 1 has baked for less than traffic.bake: 59s left");
	r.now_ms = NOW - 1000 + BAKE_S * 1000 - 1;
	refused(check(&r), MG_EINCONCLUSIVE, "1s left");
	r.now_ms = NOW;
	r.force = true;
	r.reason = "urgent";
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert_eq(v.target, 1);
	cr_assert(!v.has_gates);
	cr_assert_eq(prom.queries, 0);
	/* run waits instead of refusing */
	r.force = false;
	r.bake = false;
	r.gates = false;
	cr_assert_eq(check(&r), 0, "%s", err.message);
}

Test(migration_rules, a_pause_refuses_unless_forced)
{
	mg_state st = healthy_state();
	st.phase = MG_PHASE_PAUSED;
	snprintf(st.pause_reason, sizeof(st.pause_reason), "by ops");
	leave_state(st, NULL);
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_ECONFLICT,
	        "the migration is paused by ops; `migrate resume` releases it (or override with "
	        "--force --reason TEXT)");
	r.force = true;
	r.reason = "on call says go";
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert_eq(v.target, 1);
}

Test(migration_rules, a_pause_request_refuses_too)
{
	leave_state(healthy_state(), "the autopilot must stop");
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_ECONFLICT, "the migration is paused");
	r.force = true;
	r.reason = "override";
	cr_assert_eq(check(&r), 0, "%s", err.message);
}

Test(migration_rules, failing_gates_refuse_with_error_and_are_journalled)
{
	leave_state(healthy_state(), NULL);
	prom.v = 0.5;
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_ERROR, "the gates fail at step 1 of 3 (10%)");
	cr_assert(strstr(err.message, "--force --reason TEXT overrides"), "%s", err.message);
	cr_assert(v.has_gates, "a refusal by the gates keeps the evaluation");
	cr_assert_eq(v.gates.outcome, MG_GATE_FAIL);
	cr_assert_str_eq(mg_migration_state(m)->gate_last, "fail");
	json_t *j = journal();
	json_t *rec = last_with_action(j, "gate");
	cr_assert_not_null(rec, "the gate evaluation is not journalled");
	json_t *after = json_object_get(rec, "after");
	cr_assert_str_eq(json_string_value(json_object_get(after, "outcome")), "fail");
	cr_assert_str_eq(json_string_value(json_object_get(after, "decision")), "refuse");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "command")), "step");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(rec, "before"), "step")),
	             1);
	cr_assert_not_null(json_object_get(rec, "evidence"));
	json_decref(j);
	mg_state d = disk_state();
	cr_assert_str_eq(d.gate_last, "fail", "a refusal by the gates is saved in the state");
}

Test(migration_rules, inconclusive_gates_refuse_with_inconclusive)
{
	leave_state(healthy_state(), NULL);
	prom.no_data = true;
	open_step();
	mg_step_rules r = step_rules();
	refused(check(&r), MG_EINCONCLUSIVE, "the gates are inconclusive at step 1 of 3 (10%)");
	cr_assert(v.has_gates);
	cr_assert_eq(v.gates.outcome, MG_GATE_INCONCLUSIVE);
	json_t *j = journal();
	json_t *rec = last_with_action(j, "gate");
	cr_assert_not_null(rec);
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(rec, "after"), "outcome")),
	    "inconclusive");
	json_decref(j);
}

Test(migration_rules, passing_gates_allow_the_step_and_are_journalled)
{
	leave_state(healthy_state(), NULL);
	open_step();
	mg_step_rules r = step_rules();
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert(v.has_gates);
	cr_assert_eq(v.gates.outcome, MG_GATE_PASS);
	cr_assert_eq(v.target, 1);
	cr_assert(!v.at_end && !v.skew_allowed && !v.adopted);
	cr_assert_eq(lb.applies, 0, "checking moved traffic");
	json_t *j = journal();
	json_t *rec = last_with_action(j, "gate");
	cr_assert_not_null(rec, "a passing evaluation is journalled too");
	json_t *after = json_object_get(rec, "after");
	cr_assert_str_eq(json_string_value(json_object_get(after, "outcome")), "pass");
	cr_assert_str_eq(json_string_value(json_object_get(after, "decision")), "advance");
	json_decref(j);
}

Test(migration_rules, before_the_first_step_no_gates_are_asked)
{
	mg_state st;
	mg_state_init(&st, "shop");
	leave_state(st, NULL);
	prom.v = 0.5;
	open_step();
	mg_step_rules r = step_rules();
	cr_assert_eq(check(&r), 0, "%s", err.message);
	cr_assert_eq(v.target, 0);
	cr_assert(!v.has_gates);
	cr_assert_eq(prom.queries, 0);
}

Test(migration_rules, a_dry_run_records_nothing)
{
	leave_state(healthy_state(), NULL);
	prom.v = 0.5;
	mg_traffic *t = NULL;
	mg_metrics *mx = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_open_driver(&t, &lb_ops, &lb, &e), 0, "%s", e.message);
	cr_assert_eq(mg_metrics_open_source(&mx, &prom_ops, &prom, &e), 0, "%s", e.message);
	mg_migration_options o = {.plan_path = plan_path,
	                          .state_dir = state_dir,
	                          .command = "step",
	                          .dry_run = true,
	                          .traffic = t,
	                          .metrics = mx};
	cr_assert_eq(mg_migration_open(&m, &o, &e), 0, "%s", e.message);
	mg_step_rules r = step_rules();
	refused(check(&r), MG_ERROR, "the gates fail");
	json_t *j = journal();
	cr_assert_null(last_with_action(j, "gate"), "a dry run journalled the gates");
	json_decref(j);
	cr_assert_str_eq(disk_state().gate_last, "");
}
