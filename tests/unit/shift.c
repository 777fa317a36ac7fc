/*
 * lib/shift.h directly: the intent / pending / read-back protocol around a
 * traffic move, over a fake balancer (mg_traffic_open_driver) and a real
 * store in a temporary directory. What is on disk at the moment the balancer
 * moves is looked at from inside the fake's apply.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "journal.h"
#include "log.h"
#include "shift.h"
#include "state.h"
#include "store.h"
#include "traffic.h"

/* ---- a fake balancer ------------------------------------------------------------------ */

typedef struct fake_lb fake_lb;
struct fake_lb {
	double k8s;      /* the share it holds */
	double lands_at; /* >= 0: an apply lands here instead of where it was asked */
	int apply_rc;    /* an apply fails with this (nothing changes) */
	int settle_rc;   /* a settle fails with this */
	bool k8s_down;   /* the cluster server reports DOWN */
	int applies, reads, settles;
	void (*on_apply)(fake_lb *f); /* before the weights change: what is on disk now */
	mg_store *store;
	/* what on_apply saw */
	bool disk_pending;
	double disk_pending_pct;
	char disk_last_action[32];
	size_t disk_records;
};

static int fake_read(void *drv, mg_traffic_state *out, mg_error *err)
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
	out->servers[1].health = f->k8s_down ? MG_HEALTH_DOWN : MG_HEALTH_UP;
	out->k8s_percent = f->k8s;
	return 0;
}

static int fake_apply(void *drv, double k8s_percent, mg_error *err)
{
	fake_lb *f = drv;
	f->applies++;
	if (f->on_apply)
		f->on_apply(f);
	if (f->apply_rc)
		return mg_error_set(err, f->apply_rc, "fake balancer: set weight refused");
	f->k8s = f->lands_at >= 0 ? f->lands_at : k8s_percent;
	return 0;
}

static int fake_describe(void *drv, double k8s_percent, json_t **out, mg_error *err)
{
	(void)drv, (void)err;
	*out = json_pack("{s:f}", "k8s_percent", k8s_percent);
	return 0;
}

static int fake_settle(void *drv, mg_error *err)
{
	fake_lb *f = drv;
	f->settles++;
	return f->settle_rc ? mg_error_set(err, f->settle_rc, "fake balancer: reload failed") : 0;
}

static const mg_traffic_ops fake_ops = {
    .name = "fakelb",
    .read = fake_read,
    .apply = fake_apply,
    .describe = fake_describe,
    .settle = fake_settle,
};

/* ---- fixture ------------------------------------------------------------------------------ */

static char dir[256];
static mg_store *store;
static mg_traffic *lb;
static fake_lb fake;
static mg_state st;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "shift");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&store, dir, "shop", &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_lock(store, "step", &err), 0, "%s", err.message);
	memset(&fake, 0, sizeof(fake));
	fake.lands_at = -1;
	fake.store = store;
	cr_assert_eq(mg_traffic_open_driver(&lb, &fake_ops, &fake, &err), 0, "%s", err.message);
	mg_state_init(&st, "shop");
}

static void teardown(void)
{
	mg_traffic_free(lb);
	lb = NULL;
	mg_store_free(store);
	store = NULL;
	tu_tmpdir_remove(dir);
}

TestSuite(shift, .init = setup, .fini = teardown);

/* The journal as an array (decref it). */
static json_t *journal(void)
{
	json_t *arr = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_journal_read(&arr, NULL, store, 0, &err), 0, "%s", err.message);
	return arr;
}

static const char *action_of(json_t *arr, size_t i)
{
	return json_string_value(json_object_get(json_array_get(arr, i), "action"));
}

static double num_at(json_t *rec, const char *key, const char *field)
{
	return json_number_value(json_object_get(json_object_get(rec, key), field));
}

static mg_state disk_state(void)
{
	mg_state d;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_state_load(&d, store, &err), 0, "%s", err.message);
	return d;
}

/* Inside apply: the mark and the intent must already be on disk. */
static void look_at_disk(fake_lb *f)
{
	mg_state d = disk_state();
	f->disk_pending = d.pending;
	f->disk_pending_pct = d.pending_k8s_percent;
	json_t *arr = journal();
	f->disk_records = json_array_size(arr);
	const char *a = f->disk_records ? action_of(arr, f->disk_records - 1) : "";
	snprintf(f->disk_last_action, sizeof(f->disk_last_action), "%s", a ? a : "");
	json_decref(arr);
}

/* Another writer saves state.json, so st's revision is stale: the next save is MG_ECONFLICT. */
static void bump_state_on_disk(void)
{
	mg_state other = disk_state();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_state_save(store, &other, &err), 0, "%s", err.message);
}

/* journal.jsonl becomes a directory: every append fails, reads see no journal. */
static void break_journal(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/journal.jsonl", mg_store_path(store));
	unlink(path);
	cr_assert_eq(mkdir(path, 0700), 0);
}

static void break_journal_hook(fake_lb *f)
{
	look_at_disk(f);
	break_journal();
}

static void bump_state_hook(fake_lb *f)
{
	look_at_disk(f);
	bump_state_on_disk();
}

static const mg_shift_request step1 = {
    .command = "step", .k8s_percent = 25, .step_index = 0, .nsteps = 3, .reason = "unit"};

/* ---- apply -------------------------------------------------------------------------------- */

Test(shift, apply_marks_and_journals_the_intent_before_the_balancer_moves)
{
	fake.on_apply = look_at_disk;
	mg_shift_outcome out;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_shift_apply(&out, store, &st, lb, &step1, &err), 0, "%s", err.message);
	/* at the moment the balancer moved */
	cr_assert(fake.disk_pending, "state.json was not marked pending before the balancer moved");
	cr_assert_float_eq(fake.disk_pending_pct, 25, 1e-9);
	cr_assert_eq(fake.disk_records, 1);
	cr_assert_str_eq(fake.disk_last_action, "intent");
	/* after: the result, read back */
	cr_assert_eq(fake.applies, 1);
	cr_assert_float_eq(out.read_back.k8s_percent, 25, 1e-9);
	cr_assert_str_eq(out.record_error, "");
	cr_assert_null(out.record);
	mg_shift_outcome_clear(&out);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_str_eq(action_of(arr, 0), "intent");
	cr_assert_str_eq(action_of(arr, 1), "result");
	json_t *intent = json_array_get(arr, 0), *result = json_array_get(arr, 1);
	cr_assert_float_eq(num_at(intent, "before", "k8s_percent"), 0, 1e-9);
	cr_assert_float_eq(num_at(intent, "after", "k8s_percent"), 25, 1e-9);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(intent, "after"), "step")),
	             1);
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(intent, "evidence"), "balancer")),
	    "fakelb");
	cr_assert_float_eq(num_at(result, "after", "k8s_percent"), 25, 1e-9);
	json_t *rb = json_object_get(json_object_get(result, "evidence"), "read_back");
	cr_assert_float_eq(json_number_value(json_object_get(rb, "k8s_percent")), 25, 1e-9);
	cr_assert_str_eq(json_string_value(json_object_get(result, "reason")), "unit");
	json_decref(arr);
	/* the state, in memory and on disk: step taken, read back, no mark */
	mg_state d = disk_state();
	cr_assert_eq(d.revision, st.revision);
	cr_assert(!d.pending);
	cr_assert_eq(d.step_index, 0);
	cr_assert_eq(d.phase, MG_PHASE_SHIFTING);
	cr_assert(d.has_read_back);
	cr_assert_float_eq(d.read_back_k8s_percent, 25, 1e-9);
	cr_assert(d.has_applied);
	cr_assert_float_eq(d.applied_k8s_percent, 25, 1e-9);
	cr_assert_gt(d.step_started_ms, 0);
}

Test(shift, the_last_step_at_100_completes_and_zero_rolls_back)
{
	mg_error err = MG_ERROR_INIT;
	mg_shift_request last = {
	    .command = "step", .k8s_percent = 100, .step_index = 2, .nsteps = 3};
	cr_assert_eq(mg_shift_apply(NULL, store, &st, lb, &last, &err), 0, "%s", err.message);
	cr_assert_eq(st.phase, MG_PHASE_COMPLETE);
	mg_shift_request back = {
	    .command = "rollback", .k8s_percent = 0, .step_index = -1, .nsteps = 3};
	cr_assert_eq(mg_shift_apply(NULL, store, &st, lb, &back, &err), 0, "%s", err.message);
	cr_assert_eq(st.phase, MG_PHASE_ROLLED_BACK);
	cr_assert_eq(st.step_index, -1);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 4);
	json_t *intent = json_array_get(arr, 2);
	cr_assert_float_eq(num_at(intent, "before", "k8s_percent"), 100, 1e-9);
	cr_assert(json_is_null(json_object_get(json_object_get(intent, "after"), "step")));
	json_decref(arr);
}

Test(shift, a_mark_that_cannot_be_saved_moves_nothing)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_state_save(store, &st, &err), 0, "%s", err.message);
	bump_state_on_disk();
	uint64_t rev = st.revision;
	int rc = mg_shift_apply(NULL, store, &st, lb, &step1, &err);
	cr_assert_eq(rc, MG_ECONFLICT, "%d %s", rc, err.message);
	mg_error_clear(&err);
	cr_assert_eq(fake.applies, 0, "the balancer moved without a mark on disk");
	cr_assert(!st.pending, "the mark stays in memory");
	cr_assert_eq(st.revision, rev);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 0, "an intent was journalled without its mark");
	json_decref(arr);
}

Test(shift, an_intent_that_cannot_be_journalled_takes_the_mark_back)
{
	break_journal();
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_apply(NULL, store, &st, lb, &step1, &err);
	cr_assert_lt(rc, 0);
	cr_assert_neq(rc, MG_EUNRECORDED);
	mg_error_clear(&err);
	cr_assert_eq(fake.applies, 0, "the balancer moved without an intent in the journal");
	cr_assert(!st.pending);
	mg_state d = disk_state();
	cr_assert(!d.pending, "state.json keeps a mark for an intent that was never journalled");
	cr_assert_float_eq(fake.k8s, 0, 1e-9);
}

Test(shift, a_refusal_reads_the_balancer_again_and_journals_the_failure)
{
	fake.k8s = 10;
	st.has_read_back = true;
	st.read_back_k8s_percent = 10;
	fake.apply_rc = MG_EIO;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_apply(NULL, store, &st, lb, &step1, &err);
	cr_assert_eq(rc, MG_EIO);
	cr_assert_str_eq(err.message, "fake balancer: set weight refused");
	mg_error_clear(&err);
	cr_assert(!st.pending);
	cr_assert_eq(st.step_index, -1, "a refused step counts as taken");
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_str_eq(action_of(arr, 0), "intent");
	cr_assert_str_eq(action_of(arr, 1), "failed");
	json_t *failed = json_array_get(arr, 1);
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(failed, "evidence"), "error")),
	    "fake balancer: set weight refused");
	/* "after" is what the balancer was read to hold after the refusal */
	cr_assert_float_eq(num_at(failed, "after", "k8s_percent"), 10, 1e-9);
	json_decref(arr);
	mg_state d = disk_state();
	cr_assert(!d.pending);
	cr_assert_float_eq(d.read_back_k8s_percent, 10, 1e-9);
}

Test(shift, a_read_back_that_disagrees_is_a_failure_recording_what_it_holds)
{
	fake.lands_at = 12; /* asked for 25, holds 12 */
	mg_shift_outcome out;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_apply(&out, store, &st, lb, &step1, &err);
	cr_assert_eq(rc, MG_ERROR, "%d %s", rc, err.message);
	cr_assert(strstr(err.message, "asked for 25% to the cluster but reads back 12%"), "%s",
	          err.message);
	mg_error_clear(&err);
	mg_shift_outcome_clear(&out);
	cr_assert_eq(st.step_index, -1, "a step the balancer does not confirm counts as taken");
	cr_assert(!st.has_applied);
	cr_assert(st.has_read_back);
	cr_assert_float_eq(st.read_back_k8s_percent, 12, 1e-9);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_str_eq(action_of(arr, 1), "failed");
	cr_assert_float_eq(num_at(json_array_get(arr, 1), "after", "k8s_percent"), 12, 1e-9);
	json_decref(arr);
	mg_state d = disk_state();
	cr_assert(!d.pending);
	cr_assert_float_eq(d.read_back_k8s_percent, 12, 1e-9);
}

Test(shift, an_unhealthy_cluster_is_refused_before_the_balancer_moves)
{
	fake.k8s_down = true;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_apply(NULL, store, &st, lb, &step1, &err);
	cr_assert_eq(rc, MG_ERROR);
	cr_assert(strstr(err.message, "k8s1"), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_eq(fake.applies, 0);
	cr_assert(!disk_state().pending);
	/* forced: it goes */
	mg_shift_request forced = step1;
	forced.forced = true;
	cr_assert_eq(mg_shift_apply(NULL, store, &st, lb, &forced, &err), 0, "%s", err.message);
	cr_assert_eq(fake.applies, 1);
}

Test(shift, a_result_the_state_cannot_keep_is_unrecorded_with_the_record)
{
	fake.on_apply = bump_state_hook;
	mg_shift_outcome out;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_apply(&out, store, &st, lb, &step1, &err);
	cr_assert_eq(rc, MG_EUNRECORDED, "%d %s", rc, err.message);
	cr_assert(strstr(err.message, "traffic is 25% on the cluster (read back)"), "%s",
	          err.message);
	cr_assert(strstr(err.message, "still marks the move as pending"), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_float_eq(out.read_back.k8s_percent, 25, 1e-9);
	cr_assert_neq(out.record_error[0], '\0');
	cr_assert_not_null(out.record);
	cr_assert_str_eq(json_string_value(json_object_get(out.record, "action")), "result");
	mg_shift_outcome_clear(&out);
	/* the journal has it; state.json still has the mark, for the next command to reconcile */
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_str_eq(action_of(arr, 1), "result");
	json_decref(arr);
	cr_assert(disk_state().pending);
}

Test(shift, a_result_the_journal_cannot_keep_is_unrecorded_but_the_state_has_it)
{
	fake.on_apply = break_journal_hook;
	mg_shift_outcome out;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_apply(&out, store, &st, lb, &step1, &err);
	cr_assert_eq(rc, MG_EUNRECORDED, "%d %s", rc, err.message);
	cr_assert(strstr(err.message, "state.json has the move; the journal does not"), "%s",
	          err.message);
	mg_error_clear(&err);
	cr_assert_not_null(out.record);
	mg_shift_outcome_clear(&out);
	mg_state d = disk_state();
	cr_assert(!d.pending);
	cr_assert_eq(d.step_index, 0);
	cr_assert_float_eq(d.read_back_k8s_percent, 25, 1e-9);
}

/* ---- reconcile ---------------------------------------------------------------------------- */

/* st as a command that died after its intent left it: pending to 25% from 10%. */
static void interrupted(void)
{
	st.has_read_back = true;
	st.read_back_k8s_percent = 10;
	st.pending = true;
	snprintf(st.pending_command, sizeof(st.pending_command), "step");
	st.pending_k8s_percent = 25;
	st.pending_step_index = 1;
	st.pending_ms = mg_now_ms();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_state_save(store, &st, &err), 0, "%s", err.message);
}

static size_t count_action(const char *action)
{
	json_t *arr = journal();
	size_t n = 0;
	for (size_t i = 0; i < json_array_size(arr); i++)
		n += !strcmp(action_of(arr, i), action);
	json_decref(arr);
	return n;
}

Test(shift, reconcile_without_a_mark_does_nothing)
{
	bool done = true;
	const char *outcome = "x";
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_shift_reconcile(&done, &outcome, store, &st, lb, "step", &err), 0);
	cr_assert(!done);
	cr_assert_null(outcome);
	cr_assert_eq(fake.reads + fake.settles, 0, "the balancer was asked without a mark");
}

Test(shift, reconcile_finds_the_target_reached)
{
	tu_log_capture(MG_LOG_WARN);
	interrupted();
	fake.k8s = 25;
	bool done;
	const char *outcome;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_shift_reconcile(&done, &outcome, store, &st, lb, "run", &err), 0, "%s",
	             err.message);
	cr_assert(done);
	cr_assert_str_eq(outcome, "applied");
	cr_assert_eq(fake.settles, 1, "read before the balancer runs what it reports");
	mg_state d = disk_state();
	cr_assert(!d.pending);
	cr_assert_eq(d.step_index, 1, "the step counts as taken");
	cr_assert_float_eq(d.read_back_k8s_percent, 25, 1e-9);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 1);
	json_t *rec = json_array_get(arr, 0);
	cr_assert_str_eq(action_of(arr, 0), "reconcile");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "command")), "run");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(rec, "evidence"), "outcome")),
	    "applied");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(rec, "before"), "command")), "step");
	json_decref(arr);
	cr_assert(strstr(tu_log_text(), "was reconciled"), "%s", tu_log_text());
	tu_log_capture_stop();
}

Test(shift, reconcile_finds_nothing_changed)
{
	interrupted();
	fake.k8s = 10;
	bool done;
	const char *outcome;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_shift_reconcile(&done, &outcome, store, &st, lb, "step", &err), 0, "%s",
	             err.message);
	cr_assert_str_eq(outcome, "not applied");
	mg_state d = disk_state();
	cr_assert(!d.pending);
	cr_assert_eq(d.step_index, -1, "a move that did not happen counts as taken");
	cr_assert_float_eq(d.read_back_k8s_percent, 10, 1e-9);
}

Test(shift, reconcile_finds_neither_and_keeps_the_last_read_back)
{
	interrupted();
	fake.k8s = 60;
	bool done;
	const char *outcome;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_shift_reconcile(&done, &outcome, store, &st, lb, "step", &err), 0, "%s",
	             err.message);
	cr_assert_str_eq(outcome, "unknown");
	mg_state d = disk_state();
	cr_assert(!d.pending);
	/* so the next command sees the drift */
	cr_assert_float_eq(d.read_back_k8s_percent, 10, 1e-9);
	bool drift;
	double live;
	cr_assert_eq(mg_shift_drift(&drift, &live, &st, lb, &err), 0);
	cr_assert(drift);
	cr_assert_float_eq(live, 60, 1e-9);
}

Test(shift, reconcile_refuses_while_the_balancer_cannot_settle)
{
	interrupted();
	fake.k8s = 25;
	fake.settle_rc = MG_EIO;
	bool done;
	const char *outcome;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_reconcile(&done, &outcome, store, &st, lb, "step", &err);
	cr_assert_eq(rc, MG_EIO);
	cr_assert(strstr(err.message, "cannot be reconciled: fake balancer: reload failed"), "%s",
	          err.message);
	mg_error_clear(&err);
	cr_assert(!done);
	cr_assert_eq(fake.reads, 0, "read before the balancer settled");
	cr_assert(st.pending);
	cr_assert(disk_state().pending);
	cr_assert_eq(count_action("reconcile"), 0);
}

Test(shift, a_reconcile_retried_after_a_failed_save_is_journalled_once)
{
	interrupted();
	fake.k8s = 25;
	mg_state before = st;
	bump_state_on_disk(); /* the save after the journal record fails */
	bool done;
	const char *outcome;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_reconcile(&done, &outcome, store, &st, lb, "step", &err);
	cr_assert_eq(rc, MG_ECONFLICT, "%d %s", rc, err.message);
	mg_error_clear(&err);
	cr_assert(!done);
	cr_assert_eq(count_action("reconcile"), 1);
	/* the next command loads the state, still pending, and reconciles again */
	st = disk_state();
	cr_assert(st.pending);
	cr_assert_eq(st.pending_ms, before.pending_ms);
	cr_assert_eq(mg_shift_reconcile(&done, &outcome, store, &st, lb, "step", &err), 0, "%s",
	             err.message);
	cr_assert(done);
	cr_assert_str_eq(outcome, "applied");
	cr_assert_eq(count_action("reconcile"), 1,
	             "the same intent was reconciled in the journal twice");
	cr_assert(!disk_state().pending);
}

/* ---- drift, adopt, rollback --------------------------------------------------------------- */

Test(shift, drift_compares_the_balancer_with_the_last_read_back)
{
	bool drift = true;
	double live = -1;
	mg_error err = MG_ERROR_INIT;
	/* before the first step the balancer should send nothing to the cluster */
	cr_assert_eq(mg_shift_drift(&drift, &live, &st, lb, &err), 0);
	cr_assert(!drift);
	fake.k8s = 0.4; /* integer weights round: the same share */
	cr_assert_eq(mg_shift_drift(&drift, &live, &st, lb, &err), 0);
	cr_assert(!drift);
	fake.k8s = 5;
	cr_assert_eq(mg_shift_drift(&drift, &live, &st, lb, &err), 0);
	cr_assert(drift);
	cr_assert_eq(mg_shift_adopt(store, &st, live, "step", "hand edit", &err), 0, "%s",
	             err.message);
	cr_assert_eq(mg_shift_drift(&drift, &live, &st, lb, &err), 0);
	cr_assert(!drift);
	mg_state d = disk_state();
	cr_assert_float_eq(d.read_back_k8s_percent, 5, 1e-9);
	cr_assert_float_eq(d.applied_k8s_percent, 5, 1e-9);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 1);
	cr_assert_str_eq(action_of(arr, 0), "adopt");
	cr_assert_float_eq(num_at(json_array_get(arr, 0), "before", "k8s_percent"), 0, 1e-9);
	cr_assert_float_eq(num_at(json_array_get(arr, 0), "after", "k8s_percent"), 5, 1e-9);
	json_decref(arr);
}

Test(shift, a_rollback_moves_first_and_journals_no_intent)
{
	fake.k8s = 50;
	st.has_read_back = true;
	st.read_back_k8s_percent = 50;
	st.step_index = 1;
	fake.on_apply = look_at_disk;
	mg_shift_site site = {0};
	mg_shift_request back = {
	    .command = "rollback", .k8s_percent = 0, .step_index = -1, .nsteps = 3};
	mg_shift_outcome out;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_shift_rollback(&out, store, &st, &site, lb, &back, &err), 0, "%s",
	             err.message);
	mg_shift_outcome_clear(&out);
	cr_assert_eq(fake.disk_records, 0, "a rollback waited for the journal before moving");
	cr_assert(!fake.disk_pending);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 1);
	cr_assert_str_eq(action_of(arr, 0), "result");
	cr_assert_float_eq(num_at(json_array_get(arr, 0), "before", "k8s_percent"), 50, 1e-9);
	json_decref(arr);
	mg_state d = disk_state();
	cr_assert_eq(d.phase, MG_PHASE_ROLLED_BACK);
	cr_assert_float_eq(d.read_back_k8s_percent, 0, 1e-9);
}

Test(shift, a_rollback_without_the_lock_moves_and_writes_nothing)
{
	fake.k8s = 50;
	mg_shift_site site = {.unlocked = true};
	snprintf(site.lock_error, sizeof(site.lock_error), "held by someone");
	mg_shift_request back = {
	    .command = "rollback", .k8s_percent = 0, .step_index = -1, .nsteps = 3};
	mg_shift_outcome out;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_shift_rollback(&out, store, &st, &site, lb, &back, &err);
	cr_assert_eq(rc, MG_EUNRECORDED, "%d %s", rc, err.message);
	cr_assert(strstr(err.message, "traffic is 0% on the cluster (read back)"), "%s",
	          err.message);
	cr_assert(strstr(err.message, "held by someone"), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_float_eq(fake.k8s, 0, 1e-9);
	cr_assert_not_null(out.record);
	mg_shift_outcome_clear(&out);
	json_t *arr = journal();
	cr_assert_eq(json_array_size(arr), 0);
	json_decref(arr);
	cr_assert_eq(disk_state().revision, 0, "state.json was written without the lock");
}
