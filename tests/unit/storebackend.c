/*
 * mg_store over a backend (lib/storebackend.h): an in-memory fake whose
 * documents carry versions shows that store.h, state.h, journal.h and
 * records.h reach the ops, and that the rules above them (a lock before a
 * save, the revision check, the journal's fields and seq) stay theirs.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../testutil.h"
#include "journal.h"
#include "records.h"
#include "spool.h"
#include "state.h"
#include "storebackend.h"

typedef struct {
	json_t *docs;    /* name -> {"text", "version"} */
	json_t *journal; /* records */
	int next_version;
	bool locked, other_holds;
	int keepalives, frees;
	size_t append_fails_at; /* 0: never; else the append that makes the journal this long */
} fake;

static fake F;

static int f_lock(void *impl, const char *command, mg_error *err)
{
	fake *f = impl;
	if (f->other_holds)
		return mg_error_set(err, MG_ELOCKED, "plan \"web\" is locked by bob@ci (%s)",
		                    command);
	f->locked = true;
	return 0;
}

static void f_unlock(void *impl)
{
	((fake *)impl)->locked = false;
}

static bool f_locked(const void *impl)
{
	return ((const fake *)impl)->locked;
}

static int f_probe(void *impl, bool *held, mg_lock_holder *h, mg_error *err)
{
	(void)err;
	fake *f = impl;
	*held = f->other_holds;
	if (*held) {
		snprintf(h->operator_, sizeof(h->operator_), "bob@ci");
		h->pid = 7;
		snprintf(h->command, sizeof(h->command), "run");
	}
	return 0;
}

static int f_keepalive(void *impl, mg_error *err)
{
	(void)err;
	((fake *)impl)->keepalives++;
	return 0;
}

static int f_read(void *impl, const char *name, char **text, size_t *len, char **version,
                  mg_error *err)
{
	fake *f = impl;
	json_t *d = json_object_get(f->docs, name);
	if (!d)
		return mg_error_set(err, MG_ENOTFOUND, "no %s", name);
	*text = strdup(json_string_value(json_object_get(d, "text")));
	*len = strlen(*text);
	*version = strdup(json_string_value(json_object_get(d, "version")));
	return 0;
}

static int f_write(void *impl, const char *name, const char *text, size_t len, const char *version,
                   bool fenced, mg_error *err)
{
	(void)len;
	fake *f = impl;
	if (fenced && !f->locked)
		return mg_error_set(err, MG_ERROR, "fenced write without the lock");
	json_t *d = json_object_get(f->docs, name);
	const char *cur = d ? json_string_value(json_object_get(d, "version")) : "";
	if (version && strcmp(version, cur))
		return mg_error_set(err, MG_ECONFLICT, "%s moved", name);
	char v[16];
	snprintf(v, sizeof(v), "%d", ++f->next_version);
	json_object_set_new(f->docs, name, json_pack("{s:s, s:s}", "text", text, "version", v));
	return 0;
}

static int f_remove(void *impl, const char *name, mg_error *err)
{
	(void)err;
	json_object_del(((fake *)impl)->docs, name);
	return 0;
}

static int f_append(void *impl, json_t *record, mg_error *err)
{
	fake *f = impl;
	if (f->append_fails_at && json_array_size(f->journal) + 1 >= f->append_fails_at)
		return mg_error_set(err, MG_EIO, "the cluster does not answer");
	json_t *copy = json_deep_copy(record);
	json_object_set_new(copy, "seq", json_integer((json_int_t)json_array_size(f->journal) + 1));
	json_array_append_new(f->journal, copy);
	return 0;
}

static int f_each(void *impl, const mg_journal_query *q, mg_journal_fn fn, void *ud,
                  size_t *skipped, mg_error *err)
{
	fake *f = impl;
	size_t n = json_array_size(f->journal);
	size_t from = q->limit && q->limit < n ? n - q->limit : 0;
	if (skipped)
		*skipped = 0;
	for (size_t i = from; i < n; i++) {
		int rc = fn(json_array_get(f->journal, i), ud, err);
		if (rc)
			return rc;
	}
	return 0;
}

static void f_free(void *impl)
{
	((fake *)impl)->frees++;
}

static const mg_store_ops ops = {.lock = f_lock,
                                 .unlock = f_unlock,
                                 .locked = f_locked,
                                 .probe = f_probe,
                                 .keepalive = f_keepalive,
                                 .doc_read = f_read,
                                 .doc_write = f_write,
                                 .doc_remove = f_remove,
                                 .journal_append = f_append,
                                 .journal_each = f_each,
                                 .free = f_free};

static mg_store *open_fake(void)
{
	json_decref(F.docs);
	json_decref(F.journal);
	F = (fake){.docs = json_object(), .journal = json_array()};
	mg_store *s = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open_backend(&s, &ops, &F, "web", "fake:web", &err), 0, "%s",
	             err.message);
	cr_assert(mg_store_remote(s));
	cr_assert_str_eq(mg_store_plan(s), "web");
	cr_assert_str_eq(mg_store_path(s), "fake:web");
	return s;
}

Test(storebackend, a_bad_plan_name_frees_the_backend)
{
	F = (fake){0};
	mg_store *s = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open_backend(&s, &ops, &F, "../x", "fake", &err), MG_EINVALID);
	cr_assert_null(s);
	cr_assert_eq(F.frees, 1);
	mg_error_clear(&err);
}

Test(storebackend, lock_and_probe_dispatch)
{
	mg_store *s = open_fake();
	mg_error err = MG_ERROR_INIT;
	F.other_holds = true;
	cr_assert_eq(mg_store_lock(s, "step", &err), MG_ELOCKED);
	mg_error_clear(&err);
	bool held;
	mg_lock_holder h;
	cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0);
	cr_assert(held);
	cr_assert_str_eq(h.operator_, "bob@ci");
	F.other_holds = false;
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	cr_assert(mg_store_locked(s));
	cr_assert_eq(mg_store_keepalive(s, &err), 0);
	cr_assert_eq(F.keepalives, 1);
	mg_store_unlock(s);
	cr_assert_not(mg_store_locked(s));
	cr_assert_eq(mg_store_keepalive(s, &err), 0);
	cr_assert_eq(F.keepalives, 1, "nothing to keep without the lock");
	mg_store_free(s);
	cr_assert_eq(F.frees, 1);
}

Test(storebackend, state_saves_through_the_backend_with_the_revision_check)
{
	mg_store *s = open_fake();
	mg_error err = MG_ERROR_INIT;
	mg_state st;
	cr_assert_eq(mg_state_load(&st, s, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 0);
	cr_assert_eq(mg_state_save(s, &st, &err), MG_ERROR, "no lock, no save");
	mg_error_clear(&err);
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	st.step_index = 1;
	cr_assert_eq(mg_state_save(s, &st, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 1);
	mg_state again;
	cr_assert_eq(mg_state_load(&again, s, &err), 0, "%s", err.message);
	cr_assert_eq(again.step_index, 1);
	/* a stale copy: the revision check refuses before anything is written */
	mg_state stale = st;
	cr_assert_eq(mg_state_save(s, &st, &err), 0, "%s", err.message);
	cr_assert_eq(mg_state_save(s, &stale, &err), MG_ECONFLICT);
	cr_assert(strstr(err.message, "expected revision 1, found 2"), "%s", err.message);
	mg_error_clear(&err);
	/* a document of another plan is refused */
	json_object_set_new(json_object_get(F.docs, "state"), "text",
	                    json_string("{\"format\": 1, \"plan\": \"other\"}"));
	cr_assert_neq(mg_state_load(&again, s, &err), 0);
	mg_error_clear(&err);
	mg_store_free(s);
}

static int count(json_t *rec, void *ud, mg_error *err)
{
	(void)rec;
	(void)err;
	(*(int *)ud)++;
	return 0;
}

Test(storebackend, journal_records_and_requests_go_through_the_backend)
{
	mg_store *s = open_fake();
	mg_error err = MG_ERROR_INIT;
	mg_journal_entry e = {.command = "step", .action = "intent", .reason = "why"};
	cr_assert_eq(mg_journal_append(s, &e, &err), MG_ERROR, "no lock, no record");
	mg_error_clear(&err);
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(mg_journal_append(s, &e, &err), 0, "%s", err.message);
	json_t *rec = json_array_get(F.journal, 2);
	cr_assert_eq(json_integer_value(json_object_get(rec, "seq")), 3);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "reason")), "why");
	cr_assert_not_null(json_object_get(rec, "operator"));
	int n = 0;
	mg_journal_query q = {.limit = 2};
	cr_assert_eq(mg_journal_each(s, &q, count, &n, NULL, &err), 0);
	cr_assert_eq(n, 2);

	json_t *objs = json_pack("[{s:s, s:s, s:{s:s}}]", "apiVersion", "v1", "kind", "ConfigMap",
	                         "metadata", "name", "x");
	cr_assert_eq(mg_cluster_record_save(s, "1.0.0", objs, &err), 0, "%s", err.message);
	cr_assert_not_null(json_object_get(F.docs, "manifests/1.0.0"));
	json_t *back = NULL;
	cr_assert_eq(mg_cluster_record_load(&back, s, "1.0.0", &err), 0, "%s", err.message);
	cr_assert(json_equal(back, objs));
	json_decref(back);
	json_decref(objs);

	mg_store_unlock(s);
	cr_assert_eq(mg_store_pause_write(s, "lunch", &err), 0, "a request needs no lock");
	bool present;
	mg_pause_request pr;
	cr_assert_eq(mg_store_pause_read(&present, &pr, s, &err), 0);
	cr_assert(present);
	cr_assert_str_eq(pr.reason, "lunch");
	cr_assert_eq(mg_store_pause_remove(s, &err), 0);
	cr_assert_eq(mg_store_pause_read(&present, &pr, s, &err), 0);
	cr_assert_not(present);
	mg_store_free(s);
	json_decref(F.docs);
	json_decref(F.journal);
	F.docs = F.journal = NULL;
}

/* A backend without journal_append_many gets the records one journal_append each, in order. */
Test(storebackend, records_go_one_at_a_time_without_the_batch_op)
{
	mg_store *s = open_fake();
	mg_error err = MG_ERROR_INIT;
	json_t *recs = json_pack("[{s:s}, {s:s}, {s:s}]", "time", "a", "time", "b", "time", "c");
	cr_assert_eq(mg_store_journal_append_records(s, recs, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(F.journal), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *r = json_array_get(F.journal, i);
		cr_assert_eq(json_integer_value(json_object_get(r, "seq")), (json_int_t)i + 1);
		char want[2] = {(char)('a' + i), 0};
		cr_assert_str_eq(json_string_value(json_object_get(r, "time")), want);
	}
	json_decref(recs);
	mg_store_free(s);
	mg_store *local = NULL;
	char dir[256];
	tu_tmpdir_make(dir, sizeof(dir), "storebackend");
	cr_assert_eq(mg_store_open(&local, dir, "web", &err), 0, "%s", err.message);
	recs = json_array();
	cr_assert_eq(mg_store_journal_append_records(local, recs, &err), MG_EINVALID,
	             "a state directory writes its own journal file");
	mg_error_clear(&err);
	json_decref(recs);
	mg_store_free(local);
	tu_tmpdir_remove(dir);
	json_decref(F.docs);
	json_decref(F.journal);
	F.docs = F.journal = NULL;
}

/* ---- the local spool (spool.h) over the fake ---- */

static json_t *spooled_record(const char *time, const char *reason)
{
	return json_pack("{s:n, s:s, s:s, s:s, s:s, s:s}", "seq", "time", time, "operator",
	                 "ann@laptop", "command", "rollback", "action", "result", "reason", reason);
}

static size_t files_in(const char *dir)
{
	return mg_spool_count(dir);
}

Test(storebackend, the_spool_uploads_in_order_and_keeps_what_failed)
{
	char dir[256];
	tu_tmpdir_make(dir, sizeof(dir), "spool");
	char sp[300];
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_spool_dir(sp, sizeof(sp), dir, "web", &err), 0);
	const char *times[3] = {"2026-11-22T05:52:48.001Z", "2026-11-22T05:52:49.002Z",
	                        "2026-11-22T05:52:50.003Z"};
	for (int i = 0; i < 3; i++) {
		json_t *rec = spooled_record(times[i], i == 1 ? "second" : "other");
		char file[1200];
		cr_assert_eq(mg_spool_save(file, sizeof(file), sp, rec, NULL, false, 0, &err), 0,
		             "%s", err.message);
		json_decref(rec);
		struct stat sb;
		cr_assert_eq(stat(file, &sb), 0);
		cr_assert_eq(sb.st_mode & 0777, 0600);
	}
	cr_assert_eq(files_in(sp), 3);

	mg_store *s = open_fake();
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	/* the second append fails: the first is uploaded, its file gone, the others kept */
	F.append_fails_at = 2;
	mg_spool_upload up;
	cr_assert_eq(mg_spool_upload_all(&up, s, sp, &err), MG_EIO);
	mg_error_clear(&err);
	cr_assert_eq(up.uploaded, 1);
	cr_assert_eq(up.left, 2);
	cr_assert_eq(files_in(sp), 2);
	F.append_fails_at = 0;
	cr_assert_eq(mg_spool_upload_all(&up, s, sp, &err), 0, "%s", err.message);
	cr_assert_eq(up.uploaded, 2);
	cr_assert_eq(up.left, 0);
	cr_assert_eq(files_in(sp), 0);
	/* in the order they were written, with their own times; the store numbers them */
	cr_assert_eq(json_array_size(F.journal), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *rec = json_array_get(F.journal, i);
		cr_assert_str_eq(json_string_value(json_object_get(rec, "time")), times[i]);
		cr_assert_eq(json_integer_value(json_object_get(rec, "seq")), (json_int_t)i + 1);
		cr_assert_str_eq(json_string_value(json_object_get(rec, "operator")), "ann@laptop");
	}
	mg_store_free(s);
	tu_tmpdir_remove(dir);
}

/* A spooled rollback: the state it left, and the revision it started from. */
static void spool_rollback(const char *sp, uint64_t base, bool known)
{
	mg_state st;
	mg_state_init(&st, "web");
	st.phase = MG_PHASE_ROLLED_BACK;
	st.step_index = -1;
	st.has_read_back = true;
	st.read_back_k8s_percent = 0;
	json_t *rec = spooled_record("2026-11-22T05:52:48.001Z", "down");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_spool_save(NULL, 0, sp, rec, &st, known, base, &err), 0, "%s", err.message);
	json_decref(rec);
}

/* The state at step 2 (50%), saved once: revision 1. */
static void shifting_state(mg_store *s, mg_state *st)
{
	mg_error err = MG_ERROR_INIT;
	mg_state_init(st, "web");
	st->phase = MG_PHASE_SHIFTING;
	st->step_index = 1;
	st->has_read_back = true;
	st->read_back_k8s_percent = 50;
	snprintf(st->vms_version, sizeof(st->vms_version), "1.2.3");
	cr_assert_eq(mg_state_save(s, st, &err), 0, "%s", err.message);
}

Test(storebackend, a_spooled_state_applies_only_over_the_state_it_started_from)
{
	char dir[256], sp[300];
	tu_tmpdir_make(dir, sizeof(dir), "spool");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_spool_dir(sp, sizeof(sp), dir, "web", &err), 0);
	mg_store *s = open_fake();
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	mg_state st;
	shifting_state(s, &st);

	/* started from revision 1, which the store still has: applied, the releases kept */
	spool_rollback(sp, st.revision, true);
	mg_spool_upload up;
	cr_assert_eq(mg_spool_upload_all(&up, s, sp, &err), 0, "%s", err.message);
	cr_assert_eq(up.applied, 1);
	mg_state now;
	cr_assert_eq(mg_state_load(&now, s, &err), 0);
	cr_assert_eq(now.phase, MG_PHASE_ROLLED_BACK);
	cr_assert_eq(now.step_index, -1);
	cr_assert_float_eq(now.read_back_k8s_percent, 0, 1e-9);
	cr_assert_str_eq(now.vms_version, "1.2.3");

	/* started from a revision the store has left behind: journalled, not applied */
	spool_rollback(sp, now.revision - 1, true);
	cr_assert_eq(mg_spool_upload_all(&up, s, sp, &err), 0, "%s", err.message);
	cr_assert_eq(up.uploaded, 1);
	cr_assert_eq(up.applied, 0);
	cr_assert_eq(up.not_applied, 1);
	mg_state after;
	cr_assert_eq(mg_state_load(&after, s, &err), 0);
	cr_assert_eq(after.revision, now.revision, "the newer state is not overwritten");
	cr_assert_eq(files_in(sp), 0);
	cr_assert_eq(json_array_size(F.journal), 2);
	mg_store_free(s);
	tu_tmpdir_remove(dir);
}

Test(storebackend, taking_the_lock_uploads_the_spool_but_a_rollback_waits_for_its_record)
{
	char dir[256], sp[300];
	tu_tmpdir_make(dir, sizeof(dir), "spool");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_spool_dir(sp, sizeof(sp), dir, "web", &err), 0);
	json_t *rec = spooled_record("2026-11-22T05:52:48.001Z", "down");
	cr_assert_eq(mg_spool_save(NULL, 0, sp, rec, NULL, false, 0, &err), 0);
	json_decref(rec);
	mg_store *s = open_fake();
	cr_assert_eq(mg_store_spool_set(s, sp, &err), 0);
	cr_assert_str_eq(mg_store_spool_dir(s), sp);

	cr_assert_eq(mg_store_lock(s, "rollback", &err), 0);
	cr_assert_eq(json_array_size(F.journal), 0, "a rollback moves traffic first");
	mg_store_spool_flush(s);
	cr_assert_eq(json_array_size(F.journal), 1);
	mg_store_unlock(s);

	rec = spooled_record("2026-11-22T05:52:49.001Z", "again");
	cr_assert_eq(mg_spool_save(NULL, 0, sp, rec, NULL, false, 0, &err), 0);
	json_decref(rec);
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	cr_assert_eq(json_array_size(F.journal), 2, "any other writer uploads as it locks");
	cr_assert_eq(mg_store_spool_result(s)->uploaded, 2);
	cr_assert_eq(files_in(sp), 0);
	mg_store_free(s);
	tu_tmpdir_remove(dir);
}

Test(storebackend, a_stop_request_goes_through_the_backend_and_is_taken_once)
{
	mg_store *s = open_fake();
	mg_error err = MG_ERROR_INIT;
	bool present = true;
	mg_pause_request pr;
	cr_assert_eq(mg_store_stop_take(&present, &pr, s, &err), 0);
	cr_assert_not(present);
	cr_assert_eq(mg_store_stop_write(s, "from my laptop", &err), 0, "%s", err.message);
	cr_assert_not(F.locked, "a request needs no lock");
	cr_assert_not_null(json_object_get(F.docs, "stop"));
	cr_assert_eq(mg_store_stop_take(&present, &pr, s, &err), 0);
	cr_assert(present);
	cr_assert_str_eq(pr.reason, "from my laptop");
	cr_assert_gt(pr.since_ms, 0);
	cr_assert_null(json_object_get(F.docs, "stop"), "taken: removed");
	cr_assert_eq(mg_store_stop_take(&present, &pr, s, &err), 0);
	cr_assert_not(present);
	mg_store_free(s);
}

Test(storebackend, a_damaged_spool_file_is_left_and_holds_no_one_up)
{
	char dir[256], sp[300];
	tu_tmpdir_make(dir, sizeof(dir), "spool");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_spool_dir(sp, sizeof(sp), dir, "web", &err), 0);
	json_t *rec = spooled_record("2026-11-22T05:52:48.001Z", "down");
	cr_assert_eq(mg_spool_save(NULL, 0, sp, rec, NULL, false, 0, &err), 0);
	json_decref(rec);
	char bad[400];
	snprintf(bad, sizeof(bad), "%s/00000000000000000001-1-000001.json", sp);
	FILE *f = fopen(bad, "w");
	cr_assert_not_null(f);
	fputs("{\"format\": 1, \"record\": tor", f);
	fclose(f);
	mg_store *s = open_fake();
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	mg_spool_upload up;
	cr_assert_eq(mg_spool_upload_all(&up, s, sp, &err), 0, "%s", err.message);
	cr_assert_eq(up.uploaded, 1);
	cr_assert_eq(up.left, 1);
	struct stat sb;
	cr_assert_eq(stat(bad, &sb), 0, "the damaged file stays for the operator");
	mg_store_free(s);
	tu_tmpdir_remove(dir);
}
