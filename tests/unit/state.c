#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "fs.h"
#include "state.h"
#include "store.h"

static char tmpdir[64];
static mg_store *store;
static char state_file[256];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "state");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&store, tmpdir, "payments-api", &err), 0, "%s", err.message);
	snprintf(state_file, sizeof(state_file), "%s/state.json", mg_store_path(store));
}

static void teardown(void)
{
	mg_store_free(store);
	store = NULL;
	tu_tmpdir_remove(tmpdir);
}

static void write_state_file(const char *text)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_write_atomic(state_file, text, strlen(text), 0600, &err), 0, "%s",
	             err.message);
}

static void lock(void)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(store, "test", &err), 0, "%s", err.message);
}

/* A valid document with one field replaced by a JSON snippet. */
static const char *valid_doc = "{\"format\":1,\"plan\":\"payments-api\",\"revision\":3,"
                               "\"phase\":\"shifting\",\"step\":{\"index\":1,\"started_at\":"
                               "\"2026-11-22T03:12:05.000Z\"},\"weights\":{\"applied\":"
                               "{\"k8s_percent\":25,\"vm_percent\":75,\"at\":"
                               "\"2026-11-22T03:12:06.000Z\"},\"read_back\":null},"
                               "\"versions\":{\"vms\":\"1.4.2\",\"kubernetes\":null},"
                               "\"created_at\":\"2026-11-22T03:00:00.000Z\",\"updated_at\":"
                               "\"2026-11-22T03:12:06.000Z\"}";

Test(state, missing_file_is_fresh_state, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	memset(&st, 0x5a, sizeof(st));
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 0);
	cr_assert_str_eq(st.plan, "payments-api");
	cr_assert_eq(st.phase, MG_PHASE_IDLE);
	cr_assert_eq(st.step_index, -1);
	cr_assert_not(st.has_applied);
	cr_assert_not(st.has_read_back);
	cr_assert_str_eq(st.vms_version, "");
	cr_assert_eq(st.created_ms, 0);
	cr_assert_eq(access(state_file, F_OK), -1, "loading created state.json");
}

Test(state, save_and_load_round_trip, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	st.phase = MG_PHASE_PAUSED;
	st.step_index = 2;
	st.step_started_ms = 1795319871123;
	st.has_applied = true;
	st.applied_k8s_percent = 12.5;
	st.applied_ms = 1795319872000;
	st.has_read_back = true;
	st.read_back_k8s_percent = 12.5;
	st.read_back_ms = 1795319873001;
	snprintf(st.vms_version, sizeof(st.vms_version), "1.4.2");
	snprintf(st.kubernetes_version, sizeof(st.kubernetes_version), "2.0.0-rc.1 \"quoted\"");

	lock();
	int64_t before = mg_now_ms();
	cr_assert_eq(mg_state_save(store, &st, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 1);
	cr_assert_geq(st.updated_ms, before);
	cr_assert_eq(st.created_ms, st.updated_ms);

	struct stat sb;
	cr_assert_eq(stat(state_file, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", (unsigned)(sb.st_mode & 0777));

	/* Through a second handle, as another command would. */
	mg_store *other;
	cr_assert_eq(mg_store_open_existing(&other, tmpdir, "payments-api", &err), 0, "%s",
	             err.message);
	mg_state back;
	cr_assert_eq(mg_state_load(&back, other, &err), 0, "%s", err.message);
	mg_store_free(other);
	cr_assert_eq(back.revision, 1);
	cr_assert_str_eq(back.plan, "payments-api");
	cr_assert_eq(back.phase, MG_PHASE_PAUSED);
	cr_assert_eq(back.step_index, 2);
	cr_assert_eq(back.step_started_ms, 1795319871123);
	cr_assert(back.has_applied);
	cr_assert_float_eq(back.applied_k8s_percent, 12.5, 1e-9);
	cr_assert_eq(back.applied_ms, 1795319872000);
	cr_assert(back.has_read_back);
	cr_assert_float_eq(back.read_back_k8s_percent, 12.5, 1e-9);
	cr_assert_eq(back.read_back_ms, 1795319873001);
	cr_assert_str_eq(back.vms_version, "1.4.2");
	cr_assert_str_eq(back.kubernetes_version, "2.0.0-rc.1 \"quoted\"");
	cr_assert_eq(back.created_ms, st.created_ms);
	cr_assert_eq(back.updated_ms, st.updated_ms);

	/* The next save keeps created_at and bumps the revision. */
	back.phase = MG_PHASE_SHIFTING;
	cr_assert_eq(mg_state_save(store, &back, &err), 0, "%s", err.message);
	cr_assert_eq(back.revision, 2);
	cr_assert_eq(back.created_ms, st.created_ms);
	cr_assert_geq(back.updated_ms, st.updated_ms);
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 2);
	cr_assert_eq(st.phase, MG_PHASE_SHIFTING);
}

Test(state, document_shape, .init = setup, .fini = teardown)
{
	mg_state st;
	mg_state_init(&st, "payments-api");
	json_t *doc = mg_state_to_json(&st);
	cr_assert_not_null(doc);
	cr_assert_eq(json_integer_value(json_object_get(doc, "format")), 1);
	cr_assert(json_is_null(json_object_get(json_object_get(doc, "step"), "index")));
	cr_assert(json_is_null(json_object_get(json_object_get(doc, "weights"), "applied")));
	cr_assert(json_is_null(json_object_get(json_object_get(doc, "versions"), "vms")));
	json_decref(doc);

	st.has_applied = true;
	st.applied_k8s_percent = 30;
	st.applied_ms = 1795319871123;
	st.step_index = 0;
	doc = mg_state_to_json(&st);
	json_t *applied = json_object_get(json_object_get(doc, "weights"), "applied");
	cr_assert_float_eq(json_number_value(json_object_get(applied, "k8s_percent")), 30, 1e-9);
	cr_assert_float_eq(json_number_value(json_object_get(applied, "vm_percent")), 70, 1e-9);
	cr_assert_str_eq(json_string_value(json_object_get(applied, "at")),
	                 "2026-11-22T03:57:51.123Z");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc, "step"), "index")), 0);

	mg_error err = MG_ERROR_INIT;
	mg_state back;
	cr_assert_eq(mg_state_from_json(&back, doc, &err), 0, "%s", err.message);
	cr_assert_eq(back.step_index, 0);
	cr_assert_float_eq(back.applied_k8s_percent, 30, 1e-9);
	json_decref(doc);

	json_error_t jerr;
	doc = json_loads(valid_doc, 0, &jerr);
	cr_assert_not_null(doc, "%s", jerr.text);
	cr_assert_eq(mg_state_from_json(&back, doc, &err), 0, "%s", err.message);
	cr_assert_eq(back.revision, 3);
	cr_assert_eq(back.phase, MG_PHASE_SHIFTING);
	cr_assert_float_eq(back.applied_k8s_percent, 25, 1e-9);
	cr_assert_not(back.has_read_back);
	cr_assert_str_eq(back.kubernetes_version, "");
	json_decref(doc);
}

Test(state, phase_names)
{
	mg_phase all[] = {MG_PHASE_IDLE, MG_PHASE_SHIFTING, MG_PHASE_PAUSED, MG_PHASE_ROLLED_BACK,
	                  MG_PHASE_COMPLETE};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		mg_phase p;
		cr_assert_eq(mg_phase_parse(&p, mg_phase_name(all[i])), 0);
		cr_assert_eq(p, all[i]);
	}
	cr_assert_str_eq(mg_phase_name(MG_PHASE_ROLLED_BACK), "rolled-back");
	mg_phase p = MG_PHASE_COMPLETE;
	cr_assert_eq(mg_phase_parse(&p, "rolled_back"), MG_EINVALID);
	cr_assert_eq(mg_phase_parse(&p, "Idle"), MG_EINVALID);
	cr_assert_eq(p, MG_PHASE_COMPLETE);
}

Test(state, corrupt_file_is_invalid, .init = setup, .fini = teardown)
{
	write_state_file("{\"format\":1,\"plan\":\"payments-api\",\"revis");
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), MG_EINVALID);
	cr_assert(strstr(err.message, state_file), "message: %s", err.message);
	cr_assert(strstr(err.message, "not valid JSON"), "message: %s", err.message);

	/* A save does not paper over a file it cannot read. */
	mg_state_init(&st, "payments-api");
	lock();
	cr_assert_eq(mg_state_save(store, &st, &err), MG_EINVALID);
	char *data;
	cr_assert_eq(mg_fs_read_all(&data, NULL, state_file, &err), 0);
	cr_assert_str_eq(data, "{\"format\":1,\"plan\":\"payments-api\",\"revis");
	free(data);
}

Test(state, newer_format_is_invalid, .init = setup, .fini = teardown)
{
	char doc[2048];
	snprintf(doc, sizeof(doc), "%s", valid_doc);
	memcpy(strstr(doc, "\"format\":1"), "\"format\":2", 10);
	write_state_file(doc);
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), MG_EINVALID);
	cr_assert(strstr(err.message, state_file), "message: %s", err.message);
	cr_assert(strstr(err.message, "newer migrate (format 2"), "message: %s", err.message);
}

Test(state, wrong_plan_is_invalid, .init = setup, .fini = teardown)
{
	char doc[2048];
	snprintf(doc, sizeof(doc), "%s", valid_doc);
	char *p = strstr(doc, "payments-api");
	memcpy(p, "checkout-api", 12);
	write_state_file(doc);
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), MG_EINVALID);
	cr_assert(strstr(err.message, state_file), "message: %s", err.message);
	cr_assert(strstr(err.message, "belongs to plan \"checkout-api\", not \"payments-api\""),
	          "message: %s", err.message);
}

Test(state, bad_field_types_are_invalid, .init = setup, .fini = teardown)
{
	struct {
		const char *from, *to, *field;
	} cases[] = {
	    {"\"revision\":3", "\"revision\":\"3\"", "\"revision\""},
	    {"\"revision\":3", "\"revision\":-1", "\"revision\""},
	    {"\"phase\":\"shifting\"", "\"phase\":\"moving\"", "\"phase\""},
	    {"\"phase\":\"shifting\"", "\"phase\":7", "\"phase\""},
	    {"\"index\":1", "\"index\":\"1\"", "\"step.index\""},
	    {"\"index\":1", "\"index\":-2", "\"step.index\""},
	    {"\"k8s_percent\":25", "\"k8s_percent\":\"25\"", "\"weights.applied.k8s_percent\""},
	    {"\"k8s_percent\":25", "\"k8s_percent\":250", "\"weights.applied.k8s_percent\""},
	    {"\"read_back\":null", "\"read_back\":[]", "\"weights.read_back\""},
	    {"\"vms\":\"1.4.2\"", "\"vms\":142", "\"versions.vms\""},
	    {"\"created_at\":\"2026-11-22T03:00:00.000Z\"", "\"created_at\":\"yesterday\"",
	     "\"created_at\""},
	    {"\"started_at\":\"2026-11-22T03:12:05.000Z\"", "\"started_at\":12",
	     "\"step.started_at\""},
	    {"\"format\":1", "\"format\":\"1\"", "\"format\""},
	    {"\"versions\":{", "\"versions\":[],\"x\":{", "\"versions\""},
	    {"\"plan\":\"payments-api\",", "", "\"plan\""},
	    {"\"step\":{", "\"step\":{},\"stepx\":{", "\"step.index\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char doc[2048];
		const char *at = strstr(valid_doc, cases[i].from);
		cr_assert_not_null(at, "case %zu", i);
		snprintf(doc, sizeof(doc), "%.*s%s%s", (int)(at - valid_doc), valid_doc,
		         cases[i].to, at + strlen(cases[i].from));
		write_state_file(doc);

		mg_error err = MG_ERROR_INIT;
		mg_state st;
		cr_assert_eq(mg_state_load(&st, store, &err), MG_EINVALID, "case %zu: %s", i, doc);
		cr_assert(strstr(err.message, state_file), "case %zu: %s", i, err.message);
		cr_assert(strstr(err.message, cases[i].field), "case %zu: %s", i, err.message);
	}
	/* The unmodified document is fine, so each case failed for its own reason. */
	write_state_file(valid_doc);
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 3);
}

Test(state, not_an_object_and_duplicate_keys, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	write_state_file("[1,2,3]");
	cr_assert_eq(mg_state_load(&st, store, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "must be a JSON object"), "%s", err.message);
	write_state_file("{\"format\":1,\"format\":1}");
	cr_assert_eq(mg_state_load(&st, store, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "duplicate"), "%s", err.message);
}

Test(state, save_without_lock_is_refused, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	mg_state_init(&st, "payments-api");
	cr_assert_eq(mg_state_save(store, &st, &err), MG_ERROR);
	cr_assert(strstr(err.message, "lock"), "%s", err.message);
	cr_assert_eq(st.revision, 0);
	cr_assert_eq(access(state_file, F_OK), -1, "state.json written without the lock");
}

Test(state, save_for_another_plan_is_refused, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	mg_state_init(&st, "checkout-api");
	lock();
	cr_assert_eq(mg_state_save(store, &st, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "checkout-api"), "%s", err.message);
	cr_assert_eq(access(state_file, F_OK), -1);
}

Test(state, revision_conflict, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state a, b;
	cr_assert_eq(mg_state_load(&a, store, &err), 0, "%s", err.message);
	cr_assert_eq(mg_state_load(&b, store, &err), 0, "%s", err.message);
	lock();
	a.phase = MG_PHASE_SHIFTING;
	cr_assert_eq(mg_state_save(store, &a, &err), 0, "%s", err.message);

	b.phase = MG_PHASE_COMPLETE;
	cr_assert_eq(mg_state_save(store, &b, &err), MG_ECONFLICT);
	cr_assert(strstr(err.message, "state.json changed underneath us: expected revision 0, "
	                              "found 1"),
	          "%s", err.message);
	cr_assert_eq(b.revision, 0, "a failed save must not advance the revision");

	mg_state disk;
	cr_assert_eq(mg_state_load(&disk, store, &err), 0, "%s", err.message);
	cr_assert_eq(disk.revision, 1);
	cr_assert_eq(disk.phase, MG_PHASE_SHIFTING);

	/* A hand edit moves the revision too. */
	write_state_file(valid_doc); /* revision 3 */
	cr_assert_eq(mg_state_save(store, &a, &err), MG_ECONFLICT);
	cr_assert(strstr(err.message, "expected revision 1, found 3"), "%s", err.message);

	/* Deleting the file under a loaded state is a conflict as well. */
	cr_assert_eq(mg_state_load(&a, store, &err), 0, "%s", err.message);
	cr_assert_eq(unlink(state_file), 0);
	cr_assert_eq(mg_state_save(store, &a, &err), MG_ECONFLICT);
	cr_assert(strstr(err.message, "expected revision 3, found 0"), "%s", err.message);
}

Test(state, no_temp_files_after_saves, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	lock();
	for (int i = 0; i < 25; i++) {
		st.step_index = i;
		cr_assert_eq(mg_state_save(store, &st, &err), 0, "%s", err.message);
	}
	cr_assert_eq(st.revision, 25);
	char names[512];
	tu_list_dir(names, sizeof(names), mg_store_path(store));
	cr_assert_str_eq(names, "lock,state.json");
}

Test(state, pending_intent_round_trip, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	cr_assert(!st.pending);
	cr_assert_eq(st.pending_step_index, -1);
	st.pending = true;
	snprintf(st.pending_command, sizeof(st.pending_command), "step");
	st.pending_k8s_percent = 25;
	st.pending_step_index = 1;
	st.pending_ms = 1795319871123;
	lock();
	cr_assert_eq(mg_state_save(store, &st, &err), 0, "%s", err.message);
	mg_state back;
	cr_assert_eq(mg_state_load(&back, store, &err), 0, "%s", err.message);
	cr_assert(back.pending);
	cr_assert_str_eq(back.pending_command, "step");
	cr_assert_float_eq(back.pending_k8s_percent, 25, 1e-9);
	cr_assert_eq(back.pending_step_index, 1);
	cr_assert_eq(back.pending_ms, 1795319871123);

	back.pending = false;
	cr_assert_eq(mg_state_save(store, &back, &err), 0, "%s", err.message);
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	cr_assert(!st.pending);
	json_t *doc = mg_state_to_json(&st);
	cr_assert(json_is_null(json_object_get(doc, "pending")));
	json_decref(doc);
	mg_error_clear(&err);
}

Test(state, pending_of_the_wrong_shape_is_invalid)
{
	mg_state st;
	mg_error err = MG_ERROR_INIT;
	mg_state_init(&st, "payments-api");
	json_t *doc = mg_state_to_json(&st);
	json_object_set_new(doc, "pending",
	                    json_pack("{s:s, s:i}", "command", "step", "k8s_percent", 140));
	cr_assert_eq(mg_state_from_json(&st, doc, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "\"pending\""), "%s", err.message);
	json_decref(doc);
	mg_error_clear(&err);
}

Test(state, gates_and_pause_reason_round_trip, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, store, &err), 0, "%s", err.message);
	cr_assert_eq(st.gate_failures, 0);
	cr_assert_str_eq(st.gate_last, "");
	st.gate_failures = 2;
	snprintf(st.gate_last, sizeof(st.gate_last), "fail");
	st.gate_last_ms = 1795319871123;
	snprintf(st.gate_summary, sizeof(st.gate_summary), "errors 0.05 > 0.01 (window 25s)");
	st.phase = MG_PHASE_PAUSED;
	snprintf(st.pause_reason, sizeof(st.pause_reason), "by alice@ops1: coffee");
	lock();
	cr_assert_eq(mg_state_save(store, &st, &err), 0, "%s", err.message);
	mg_state back;
	cr_assert_eq(mg_state_load(&back, store, &err), 0, "%s", err.message);
	cr_assert_eq(back.gate_failures, 2);
	cr_assert_str_eq(back.gate_last, "fail");
	cr_assert_eq(back.gate_last_ms, 1795319871123);
	cr_assert_str_eq(back.gate_summary, "errors 0.05 > 0.01 (window 25s)");
	cr_assert_str_eq(back.pause_reason, "by alice@ops1: coffee");

	/* a new step forgets the old step's gates */
	mg_state_reset_gates(&back);
	cr_assert_eq(back.gate_failures, 0);
	cr_assert_str_eq(back.gate_last, "");
	cr_assert_eq(back.gate_last_ms, 0);
	mg_error_clear(&err);
}

Test(state, files_without_gates_load_and_bad_gates_are_invalid)
{
	mg_state st;
	mg_error err = MG_ERROR_INIT;
	mg_state_init(&st, "payments-api");
	json_t *doc = mg_state_to_json(&st);
	json_object_del(doc, "gates");
	json_object_del(doc, "pause_reason");
	cr_assert_eq(mg_state_from_json(&st, doc, &err), 0, "%s", err.message);
	cr_assert_eq(st.gate_failures, 0);
	json_object_set_new(doc, "gates", json_pack("{s:i}", "failures", -1));
	cr_assert_eq(mg_state_from_json(&st, doc, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "\"gates\""), "%s", err.message);
	json_object_set_new(doc, "gates", json_null());
	json_object_set_new(doc, "pause_reason", json_integer(3));
	cr_assert_eq(mg_state_from_json(&st, doc, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "\"pause_reason\""), "%s", err.message);
	json_decref(doc);
	mg_error_clear(&err);
}

Test(state, kubernetes_rollout_round_trip_and_bad_values)
{
	mg_state st, back;
	mg_error err = MG_ERROR_INIT;
	mg_state_init(&st, "payments-api");
	snprintf(st.kubernetes_version, sizeof(st.kubernetes_version), "2.0");
	snprintf(st.kubernetes_rollout, sizeof(st.kubernetes_rollout), "failed");
	mg_state_set_kubernetes_error(&st, "apps/v1 Deployment shop/web: rollout failed");
	json_t *doc = mg_state_to_json(&st);
	json_t *v = json_object_get(doc, "versions");
	cr_assert_str_eq(json_string_value(json_object_get(v, "kubernetes_rollout")), "failed");
	cr_assert_eq(mg_state_from_json(&back, doc, &err), 0, "%s", err.message);
	cr_assert_str_eq(back.kubernetes_rollout, "failed");
	cr_assert_str_eq(back.kubernetes_error, "apps/v1 Deployment shop/web: rollout failed");

	/* files from before: unknown */
	json_object_del(v, "kubernetes_rollout");
	json_object_del(v, "kubernetes_error");
	cr_assert_eq(mg_state_from_json(&back, doc, &err), 0, "%s", err.message);
	cr_assert_str_eq(back.kubernetes_rollout, "");
	cr_assert_str_eq(back.kubernetes_error, "");

	json_object_set_new(v, "kubernetes_rollout", json_string("maybe"));
	cr_assert_eq(mg_state_from_json(&back, doc, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "\"versions.kubernetes_rollout\""), "%s", err.message);
	json_object_set_new(v, "kubernetes_rollout", json_null());
	json_object_set_new(v, "kubernetes_error", json_integer(1));
	cr_assert_eq(mg_state_from_json(&back, doc, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "\"versions.kubernetes_error\""), "%s", err.message);
	json_decref(doc);
	mg_error_clear(&err);

	/* a long message is cut at a character boundary, never in the middle of one */
	char msg[1200];
	memset(msg, 'a', 510);
	snprintf(msg + 510, sizeof(msg) - 510, "\xc3\xa9\xc3\xa9 and more");
	mg_state_set_kubernetes_error(&st, msg);
	cr_assert_eq(strlen(st.kubernetes_error), 510);
	mg_state_set_kubernetes_error(&st, NULL);
	cr_assert_str_eq(st.kubernetes_error, "");
}
