#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "fs.h"
#include "journal.h"
#include "log.h"
#include "state.h"
#include "store.h"

static char tmpdir[64];
static mg_store *store;
static char journal_file[256];

static struct {
	int warnings;
	char last[2048];
} logged;

static void capture(mg_log_level level, const char *msg, void *ud)
{
	(void)ud;
	if (level == MG_LOG_WARN) {
		logged.warnings++;
		snprintf(logged.last, sizeof(logged.last), "%s", msg);
	}
}

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "journal");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&store, tmpdir, "payments-api", &err), 0, "%s", err.message);
	snprintf(journal_file, sizeof(journal_file), "%s/journal.jsonl", mg_store_path(store));
	memset(&logged, 0, sizeof(logged));
	mg_log_set(capture, NULL, MG_LOG_DEBUG);
}

static void teardown(void)
{
	mg_log_set(NULL, NULL, MG_LOG_INFO);
	mg_store_free(store);
	store = NULL;
	tu_tmpdir_remove(tmpdir);
}

static void lock(void)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(store, "test", &err), 0, "%s", err.message);
}

/* Takes the reference to after. */
static void append(const char *action, json_t *after, const char *reason)
{
	mg_error err = MG_ERROR_INIT;
	mg_journal_entry e = {
	    .command = "step", .action = action, .after = after, .reason = reason};
	int rc = mg_journal_append(store, &e, &err);
	json_decref(after);
	cr_assert_eq(rc, 0, "%s", err.message);
}

static void append_raw(const char *text)
{
	int fd = open(journal_file, O_WRONLY | O_APPEND | O_CREAT, 0600);
	cr_assert_geq(fd, 0, "%s", strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static json_t *read_journal(size_t limit, size_t *skipped)
{
	mg_error err = MG_ERROR_INIT;
	json_t *recs = NULL;
	cr_assert_eq(mg_journal_read(&recs, skipped, store, limit, &err), 0, "%s", err.message);
	cr_assert(json_is_array(recs));
	return recs;
}

static json_int_t seq_at(const json_t *recs, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(recs, i), "seq"));
}

Test(journal, missing_file_reads_as_empty, .init = setup, .fini = teardown)
{
	size_t skipped = 99;
	json_t *recs = read_journal(0, &skipped);
	cr_assert_eq(json_array_size(recs), 0);
	cr_assert_eq(skipped, 0);
	json_decref(recs);
	cr_assert_eq(access(journal_file, F_OK), -1, "reading created the journal");
}

Test(journal, append_requires_lock, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_journal_entry e = {.command = "step", .action = "intent"};
	cr_assert_eq(mg_journal_append(store, &e, &err), MG_ERROR);
	cr_assert(strstr(err.message, "lock"), "%s", err.message);
	cr_assert_eq(access(journal_file, F_OK), -1);

	lock();
	mg_journal_entry no_action = {.command = "step"};
	cr_assert_eq(mg_journal_append(store, &no_action, &err), MG_EINVALID);
	cr_assert_eq(access(journal_file, F_OK), -1);
}

Test(journal, records_have_every_field, .init = setup, .fini = teardown)
{
	lock();
	json_t *before = json_pack("{s:f}", "k8s_percent", 10.0);
	json_t *after = json_pack("{s:f}", "k8s_percent", 25.0);
	json_t *evidence = json_pack("{s:f, s:s}", "error_rate", 0.001, "note", "line1\nline2");
	mg_error err = MG_ERROR_INIT;
	mg_journal_entry e = {.command = "step",
	                      .action = "result",
	                      .before = before,
	                      .after = after,
	                      .reason = "gate passed",
	                      .evidence = evidence};
	int64_t t0 = mg_now_ms();
	cr_assert_eq(mg_journal_append(store, &e, &err), 0, "%s", err.message);
	append("intent", NULL, NULL);
	json_decref(before);
	json_decref(after);
	json_decref(evidence);

	struct stat sb;
	cr_assert_eq(stat(journal_file, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);

	/* Exactly two lines, each ending in a newline. */
	char *data;
	size_t len;
	cr_assert_eq(mg_fs_read_all(&data, &len, journal_file, &err), 0, "%s", err.message);
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	cr_assert_eq(lines, 2, "%s", data);
	cr_assert_eq(data[len - 1], '\n');
	free(data);

	size_t skipped;
	json_t *recs = read_journal(0, &skipped);
	cr_assert_eq(skipped, 0);
	cr_assert_eq(json_array_size(recs), 2);
	json_t *r = json_array_get(recs, 0);
	cr_assert_eq(seq_at(recs, 0), 1);
	cr_assert_eq(seq_at(recs, 1), 2);
	char op[256];
	mg_operator_id(op, sizeof(op));
	cr_assert_str_eq(json_string_value(json_object_get(r, "operator")), op);
	cr_assert_eq(json_integer_value(json_object_get(r, "pid")), getpid());
	cr_assert_str_eq(json_string_value(json_object_get(r, "command")), "step");
	cr_assert_str_eq(json_string_value(json_object_get(r, "action")), "result");
	cr_assert_str_eq(json_string_value(json_object_get(r, "reason")), "gate passed");
	cr_assert_float_eq(
	    json_number_value(json_object_get(json_object_get(r, "before"), "k8s_percent")), 10,
	    1e-9);
	cr_assert_float_eq(
	    json_number_value(json_object_get(json_object_get(r, "after"), "k8s_percent")), 25,
	    1e-9);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "evidence"), "note")),
	                 "line1\nline2");
	int64_t t;
	cr_assert_eq(mg_time_parse(&t, json_string_value(json_object_get(r, "time"))), 0);
	cr_assert(t >= t0 - 1 && t <= mg_now_ms(), "time %lld", (long long)t);

	/* Absent values are there as null, so the keys are the same on every record. */
	json_t *r2 = json_array_get(recs, 1);
	const char *keys[] = {"seq",    "time",   "operator", "pid",    "command",
	                      "action", "before", "after",    "reason", "evidence"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert_not_null(json_object_get(r2, keys[i]), "no \"%s\"", keys[i]);
	cr_assert_eq(json_object_size(r2), sizeof(keys) / sizeof(keys[0]));
	cr_assert(json_is_null(json_object_get(r2, "before")));
	cr_assert(json_is_null(json_object_get(r2, "reason")));
	cr_assert(json_is_null(json_object_get(r2, "evidence")));
	json_decref(recs);
}

Test(journal, torn_last_line_is_skipped_and_next_append_is_readable, .init = setup,
     .fini = teardown)
{
	lock();
	append("intent", NULL, "one");
	append("result", NULL, "two");
	append_raw("{\"seq\":3,\"time\":\"2026-11-22T03:1");

	size_t skipped = 0;
	json_t *recs = read_journal(0, &skipped);
	cr_assert_eq(skipped, 1);
	cr_assert_eq(json_array_size(recs), 2);
	cr_assert_eq(seq_at(recs, 1), 2);
	json_decref(recs);
	cr_assert_eq(logged.warnings, 1);
	cr_assert(strstr(logged.last, "journal.jsonl:3: "), "%s", logged.last);
	cr_assert(strstr(logged.last, "torn or corrupt journal record ignored"), "%s", logged.last);

	append("intent", NULL, "three");
	recs = read_journal(0, &skipped);
	cr_assert_eq(skipped, 1, "the torn line is still there, and only it");
	cr_assert_eq(json_array_size(recs), 3);
	cr_assert_eq(seq_at(recs, 2), 3);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(recs, 2), "reason")),
	                 "three");
	json_decref(recs);

	/* The append ended the torn line, so the new record is line 4. */
	cr_assert_eq(logged.warnings, 2);
	cr_assert(strstr(logged.last, "journal.jsonl:3: "), "%s", logged.last);
}

Test(journal, corrupt_lines_in_the_middle, .init = setup, .fini = teardown)
{
	lock();
	append("intent", NULL, NULL);
	append_raw("[1,2,3]\n\ngarbage\n");
	append("result", NULL, NULL);
	size_t skipped = 0;
	json_t *recs = read_journal(0, &skipped);
	cr_assert_eq(skipped, 3);
	cr_assert_eq(logged.warnings, 3);
	cr_assert_eq(json_array_size(recs), 2);
	cr_assert_eq(seq_at(recs, 0), 1);
	cr_assert_eq(seq_at(recs, 1), 2);
	json_decref(recs);
}

Test(journal, seq_found_past_a_long_tail, .init = setup, .fini = teardown)
{
	lock();
	char *big = malloc(20001);
	memset(big, 'e', 20000);
	big[20000] = '\0';
	append("intent", NULL, NULL);
	append("gate", NULL, big); /* longer than the first tail window */
	append_raw(big);           /* and a torn tail longer than that */
	free(big);
	append("result", NULL, NULL);

	size_t skipped = 0;
	json_t *recs = read_journal(0, &skipped);
	cr_assert_eq(skipped, 1);
	cr_assert_eq(json_array_size(recs), 3);
	cr_assert_eq(seq_at(recs, 0), 1);
	cr_assert_eq(seq_at(recs, 1), 2);
	cr_assert_eq(seq_at(recs, 2), 3);
	json_decref(recs);
}

Test(journal, limit_keeps_newest_in_order, .init = setup, .fini = teardown)
{
	lock();
	for (int i = 0; i < 10; i++)
		append("intent", json_integer(i), NULL);

	size_t skipped;
	json_t *recs = read_journal(3, &skipped);
	cr_assert_eq(json_array_size(recs), 3);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(seq_at(recs, i), (json_int_t)(8 + i));
		cr_assert_eq(json_integer_value(json_object_get(json_array_get(recs, i), "after")),
		             (json_int_t)(7 + i));
	}
	json_decref(recs);

	recs = read_journal(0, &skipped);
	cr_assert_eq(json_array_size(recs), 10);
	for (size_t i = 0; i < 10; i++)
		cr_assert_eq(seq_at(recs, i), (json_int_t)(i + 1));
	json_decref(recs);

	recs = read_journal(20, &skipped);
	cr_assert_eq(json_array_size(recs), 10);
	cr_assert_eq(seq_at(recs, 0), 1);
	json_decref(recs);

	recs = read_journal(1, &skipped);
	cr_assert_eq(json_array_size(recs), 1);
	cr_assert_eq(seq_at(recs, 0), 10);
	json_decref(recs);
}

/*
 * The child: saves the state and journals each save, forever. Record k says
 * it follows revision k, so whatever instant the parent kills it at, the
 * journal and the state differ by at most the one save not yet journaled.
 */
static void crash_child(const char *dir, int ready_fd)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *s;
	if (mg_store_open(&s, dir, "payments-api", &err) < 0 || mg_store_lock(s, "step", &err) < 0)
		_exit(2);
	for (int i = 0;; i++) {
		mg_state st;
		if (mg_state_load(&st, s, &err) < 0)
			_exit(3);
		st.phase = MG_PHASE_SHIFTING;
		st.step_index = i % 1000;
		st.has_applied = true;
		st.applied_k8s_percent = i % 101;
		st.applied_ms = mg_now_ms();
		if (mg_state_save(s, &st, &err) < 0)
			_exit(4);
		json_t *after = json_pack("{s:I}", "revision", (json_int_t)st.revision);
		mg_journal_entry e = {.command = "step", .action = "result", .after = after};
		int rc = mg_journal_append(s, &e, &err);
		json_decref(after);
		if (rc < 0)
			_exit(5);
		if (i == 0 && write(ready_fd, "x", 1) != 1)
			_exit(6);
	}
}

static void crash_once(const char *dir, useconds_t delay_us)
{
	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(ready[0]);
		crash_child(dir, ready[1]);
	}
	close(ready[1]);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1, "the child failed before its first save");
	close(ready[0]);
	usleep(delay_us);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	          "delay %u: the child stopped on its own (status %d)", (unsigned)delay_us, status);

	mg_error err = MG_ERROR_INIT;
	mg_store *s;
	cr_assert_eq(mg_store_open_existing(&s, dir, "payments-api", &err), 0, "%s", err.message);
	mg_state st;
	cr_assert_eq(mg_state_load(&st, s, &err), 0, "delay %u: %s", (unsigned)delay_us,
	             err.message);
	cr_assert_geq(st.revision, 1);

	json_t *recs = NULL;
	size_t skipped = 0;
	cr_assert_eq(mg_journal_read(&recs, &skipped, s, 0, &err), 0, "%s", err.message);
	/* A kill can cut a write(2) that spans pages, so at most the last line may be torn. */
	cr_assert_leq(skipped, 1, "delay %u", (unsigned)delay_us);
	size_t n = json_array_size(recs);
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(recs, i);
		cr_assert_eq(json_integer_value(json_object_get(r, "seq")), (json_int_t)(i + 1));
		cr_assert_eq(
		    json_integer_value(json_object_get(json_object_get(r, "after"), "revision")),
		    (json_int_t)(i + 1), "delay %u: record %zu", (unsigned)delay_us, i);
	}
	cr_assert(st.revision == n || st.revision == n + 1,
	          "delay %u: state at revision %llu but %zu records journaled", (unsigned)delay_us,
	          (unsigned long long)st.revision, n);
	json_decref(recs);

	/* The kernel dropped the dead writer's lock; carrying on works and cleans up. */
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	uint64_t rev = st.revision;
	cr_assert_eq(mg_state_save(s, &st, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, rev + 1);
	json_t *after = json_pack("{s:I}", "revision", (json_int_t)st.revision);
	mg_journal_entry e = {.command = "step", .action = "result", .after = after};
	cr_assert_eq(mg_journal_append(s, &e, &err), 0, "%s", err.message);
	json_decref(after);
	cr_assert_eq(mg_journal_read(&recs, &skipped, s, 1, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(recs), 1);
	cr_assert_eq(seq_at(recs, 0), (json_int_t)(n + 1));
	cr_assert_eq(json_integer_value(json_object_get(
	                 json_object_get(json_array_get(recs, 0), "after"), "revision")),
	             (json_int_t)st.revision);
	json_decref(recs);

	struct dirent **names;
	int nn = scandir(mg_store_path(s), &names, NULL, alphasort);
	cr_assert_eq(nn, 5, "temporary files left in %s", mg_store_path(s));
	for (int i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	mg_store_free(s);
}

Test(journal, sigkill_during_saves_and_appends, .init = setup, .fini = teardown)
{
	useconds_t delays[] = {0, 1000, 3000, 7000, 15000, 31000};
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		char dir[128];
		snprintf(dir, sizeof(dir), "%s/run%zu", tmpdir, i);
		crash_once(dir, delays[i]);
	}
}

/* A record line with a given seq, time and a padding of pad bytes in its reason. */
static void append_record_raw(int seq, const char *time, size_t pad)
{
	char *reason = malloc(pad + 1);
	cr_assert(reason);
	memset(reason, 'r', pad);
	reason[pad] = '\0';
	char *line;
	cr_assert_geq(asprintf(&line,
	                       "{\"seq\":%d,\"time\":\"%s\",\"operator\":\"a@b\",\"pid\":1,"
	                       "\"command\":\"step\",\"action\":\"result\",\"before\":null,"
	                       "\"after\":null,\"reason\":\"%s\",\"evidence\":null}\n",
	                       seq, time, reason),
	              0);
	append_raw(line);
	free(line);
	free(reason);
}

static int count_records(json_t *record, void *ud, mg_error *err)
{
	(void)record;
	(void)err;
	(*(size_t *)ud)++;
	return 0;
}

Test(journal, limit_reads_the_newest_across_blocks, .init = setup, .fini = teardown)
{
	/* lines around and over the reader's 64 KiB block, so lines are cut by blocks */
	size_t pads[] = {10, 70000, 5, 65400, 200000, 1, 65536, 3};
	size_t n = sizeof(pads) / sizeof(pads[0]);
	for (size_t i = 0; i < n; i++)
		append_record_raw((int)i + 1, "2026-11-22T03:00:00.000Z", pads[i]);
	for (size_t limit = 1; limit <= n + 2; limit++) {
		size_t skipped = 99;
		json_t *recs = read_journal(limit, &skipped);
		size_t want = limit < n ? limit : n;
		cr_assert_eq(json_array_size(recs), want, "limit %zu", limit);
		cr_assert_eq(skipped, 0);
		for (size_t i = 0; i < want; i++) {
			cr_assert_eq(seq_at(recs, i), (json_int_t)(n - want + i + 1), "limit %zu",
			             limit);
			const char *r =
			    json_string_value(json_object_get(json_array_get(recs, i), "reason"));
			cr_assert_eq(strlen(r), pads[n - want + i], "limit %zu record %zu", limit,
			             i);
		}
		json_decref(recs);
	}
}

Test(journal, limit_does_not_read_older_records, .init = setup, .fini = teardown)
{
	/* a corrupt line far from the end: reading only the newest 2 never reaches it */
	append_raw("{not json\n");
	for (int i = 1; i <= 2000; i++)
		append_record_raw(i, "2026-11-22T03:00:00.000Z", 100);
	size_t skipped = 99;
	json_t *recs = read_journal(2, &skipped);
	cr_assert_eq(json_array_size(recs), 2);
	cr_assert_eq(seq_at(recs, 0), 1999);
	cr_assert_eq(skipped, 0, "the reader went back to the start of the journal");
	cr_assert_eq(logged.warnings, 0, "%s", logged.last);
	json_decref(recs);
	/* reading it all does find it, on line 1 */
	recs = read_journal(0, &skipped);
	cr_assert_eq(json_array_size(recs), 2000);
	cr_assert_eq(skipped, 1);
	cr_assert(strstr(logged.last, "journal.jsonl:1:"), "%s", logged.last);
	json_decref(recs);
}

Test(journal, limit_skips_torn_lines_with_their_line_number, .init = setup, .fini = teardown)
{
	append_record_raw(1, "2026-11-22T03:00:00.000Z", 10);
	append_record_raw(2, "2026-11-22T03:00:01.000Z", 10);
	append_raw("{\"seq\":3,\"time\":\"2026-11-2\n"); /* line 3, torn by a crash */
	append_raw("\n");                                /* line 4, empty */
	append_record_raw(3, "2026-11-22T03:00:02.000Z", 10);
	append_raw("{\"seq\":4,\"ti"); /* a torn tail without a newline */
	size_t skipped = 0;
	json_t *recs = read_journal(2, &skipped);
	cr_assert_eq(json_array_size(recs), 2);
	cr_assert_eq(seq_at(recs, 0), 2);
	cr_assert_eq(seq_at(recs, 1), 3);
	cr_assert_eq(skipped, 3);
	cr_assert(strstr(logged.last, "journal.jsonl:3:"), "%s", logged.last);
	json_decref(recs);
}

Test(journal, since_skips_older_records_both_ways, .init = setup, .fini = teardown)
{
	const char *times[] = {"2026-11-20T00:00:00.000Z", "2026-11-21T00:00:00.000Z",
	                       "2026-11-22T00:00:00.000Z", "2026-11-23T00:00:00.000Z"};
	for (int i = 0; i < 4; i++)
		append_record_raw(i + 1, times[i], 10);
	int64_t since;
	cr_assert_eq(mg_time_parse(&since, "2026-11-21T12:00:00Z"), 0);
	for (size_t limit = 0; limit <= 3; limit++) {
		mg_journal_query q = {.limit = limit, .since_ms = since};
		size_t n = 0, skipped = 99;
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_journal_each(store, &q, count_records, &n, &skipped, &err), 0, "%s",
		             err.message);
		cr_assert_eq(n, limit == 1 ? 1 : 2, "limit %zu", limit);
		cr_assert_eq(skipped, 0);
	}
}

static int stop_at_second(json_t *record, void *ud, mg_error *err)
{
	(void)record;
	if (++*(size_t *)ud == 2)
		return mg_error_set(err, MG_ECANCELED, "enough");
	return 0;
}

Test(journal, each_stops_when_the_callback_says_so, .init = setup, .fini = teardown)
{
	for (int i = 1; i <= 5; i++)
		append_record_raw(i, "2026-11-22T03:00:00.000Z", 10);
	for (size_t limit = 0; limit <= 4; limit += 4) {
		mg_journal_query q = {.limit = limit};
		size_t n = 0;
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_journal_each(store, &q, stop_at_second, &n, NULL, &err),
		             MG_ECANCELED);
		cr_assert_eq(n, 2);
	}
}

Test(journal, a_journal_that_is_not_a_file_is_refused, .init = setup, .fini = teardown)
{
	cr_assert_eq(mkfifo(journal_file, 0600), 0, "%s", strerror(errno));
	mg_error err = MG_ERROR_INIT;
	json_t *recs = NULL;
	/* O_NONBLOCK + fstat: refused at once, never blocked on */
	cr_assert_eq(mg_journal_read(&recs, NULL, store, 0, &err), MG_EIO);
	cr_assert(strstr(err.message, "not a regular file"), "%s", err.message);
}
