#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
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
#include "store.h"

static char tmpdir[64];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "store");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmpdir);
}

static bool dir_is_empty(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, NULL);
	cr_assert_geq(n, 0, "scandir %s: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return n == 2; /* "." and ".." */
}

static mg_store *open_store(const char *plan)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *s = NULL;
	cr_assert_eq(mg_store_open(&s, tmpdir, plan, &err), 0, "%s", err.message);
	cr_assert_not_null(s);
	return s;
}

/*
 * A child that takes the lock and then waits: it writes one byte on ready
 * when it holds the lock, and exits when go is closed (or stays until killed).
 */
static pid_t spawn_holder(const char *plan, int *go_fd)
{
	int ready[2], go[2];
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		mg_error err = MG_ERROR_INIT;
		mg_store *s;
		if (mg_store_open(&s, tmpdir, plan, &err) < 0)
			_exit(2);
		if (mg_store_lock(s, "step", &err) < 0)
			_exit(3);
		if (write(ready[1], "x", 1) != 1)
			_exit(4);
		char c;
		while (read(go[0], &c, 1) > 0)
			;
		mg_store_free(s);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1, "the child did not take the lock");
	close(ready[0]);
	*go_fd = go[1];
	return pid;
}

Test(store, invalid_plan_names_refused, .init = setup, .fini = teardown)
{
	const char *bad[] = {"../x",
	                     "",
	                     "Payments",
	                     "a/b",
	                     "..",
	                     "pay ments",
	                     "a_b",
	                     "caf\xc3\xa9",
	                     "0123456789012345678901234567890123456789012345678901234567890123"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mg_error err = MG_ERROR_INIT;
		mg_store *s = (mg_store *)1;
		cr_assert_eq(mg_store_open(&s, tmpdir, bad[i], &err), MG_EINVALID, "\"%s\"",
		             bad[i]);
		cr_assert_null(s);
		cr_assert(strstr(err.message, "invalid plan name"), "%s", err.message);
		cr_assert_eq(mg_store_open_existing(&s, tmpdir, bad[i], &err), MG_EINVALID);
	}
	mg_store *none = NULL;
	cr_assert_eq(mg_store_open(&none, tmpdir, NULL, NULL), MG_EINVALID);
	cr_assert(dir_is_empty(tmpdir), "an invalid name created something");

	/* The longest allowed name works. */
	mg_store *s = open_store("012345678901234567890123456789012345678901234567890123456789-ab");
	mg_store_free(s);
}

Test(store, open_creates_private_directory, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	char state_dir[128], expect[192];
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
	mg_store *s = NULL;
	cr_assert_eq(mg_store_open(&s, state_dir, "payments-api", &err), 0, "%s", err.message);
	snprintf(expect, sizeof(expect), "%s/payments-api", state_dir);
	cr_assert_str_eq(mg_store_path(s), expect);
	struct stat sb;
	cr_assert_eq(stat(expect, &sb), 0);
	cr_assert(S_ISDIR(sb.st_mode));
	cr_assert_eq(sb.st_mode & 0777, 0700, "mode %o", (unsigned)(sb.st_mode & 0777));
	mg_store_free(s);

	/* Opening again is fine. */
	s = NULL;
	cr_assert_eq(mg_store_open(&s, state_dir, "payments-api", &err), 0, "%s", err.message);
	mg_store_free(s);
}

Test(store, open_existing_creates_nothing, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *s = (mg_store *)1;
	cr_assert_eq(mg_store_open_existing(&s, tmpdir, "payments-api", &err), MG_ENOTFOUND);
	cr_assert_null(s);
	cr_assert(strstr(err.message, "payments-api"), "%s", err.message);
	cr_assert(dir_is_empty(tmpdir));

	char state_dir[128];
	snprintf(state_dir, sizeof(state_dir), "%s/not-there", tmpdir);
	cr_assert_eq(mg_store_open_existing(&s, state_dir, "payments-api", &err), MG_ENOTFOUND);
	cr_assert(dir_is_empty(tmpdir));

	mg_store_free(open_store("payments-api"));
	cr_assert_eq(mg_store_open_existing(&s, tmpdir, "payments-api", &err), 0, "%s",
	             err.message);
	cr_assert_not_null(s);
	mg_store_free(s);
}

Test(store, lock_writes_holder_and_unlock_clears_it, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *s = open_store("payments-api");
	cr_assert_not(mg_store_locked(s));
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	cr_assert(mg_store_locked(s));

	char path[256], *data, op[256], expect[512];
	snprintf(path, sizeof(path), "%s/lock", mg_store_path(s));
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	cr_assert_eq(mg_fs_read_all(&data, NULL, path, &err), 0, "%s", err.message);
	mg_operator_id(op, sizeof(op));
	snprintf(expect, sizeof(expect), "{\"operator\":\"%s\",\"pid\":%ld,\"since\":\"", op,
	         (long)getpid());
	cr_assert_eq(strncmp(data, expect, strlen(expect)), 0, "holder: %s", data);
	cr_assert(strstr(data, "\"command\":\"step\"}\n"), "holder: %s", data);
	cr_assert_eq(strchr(data, '\n'), data + strlen(data) - 1, "not one line: %s", data);
	free(data);

	/* Our own lock is not "someone else's". */
	bool held = true;
	mg_lock_holder h;
	cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0, "%s", err.message);
	cr_assert_not(held);

	mg_store_unlock(s);
	cr_assert_not(mg_store_locked(s));
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_size, 0, "holder left behind after unlock");
	mg_store_free(s);
}

Test(store, probe_without_lock_file, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *s = open_store("payments-api");
	bool held = true;
	mg_lock_holder h;
	cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0, "%s", err.message);
	cr_assert_not(held);
	char path[256];
	snprintf(path, sizeof(path), "%s/lock", mg_store_path(s));
	cr_assert_eq(access(path, F_OK), -1, "probing created the lock file");
	mg_store_free(s);
}

Test(store, contention_between_processes, .init = setup, .fini = teardown)
{
	int go;
	pid_t child = spawn_holder("payments-api", &go);

	mg_error err = MG_ERROR_INIT;
	mg_store *s = open_store("payments-api");
	cr_assert_eq(mg_store_lock(s, "rollback", &err), MG_ELOCKED, "%s", err.message);
	cr_assert_not(mg_store_locked(s));

	char op[256], want[512];
	mg_operator_id(op, sizeof(op));
	snprintf(want, sizeof(want),
	         "plan \"payments-api\" is locked by %s (pid %ld, running \"step\" since ", op,
	         (long)child);
	cr_assert_eq(strncmp(err.message, want, strlen(want)), 0, "message: %s", err.message);
	cr_assert(strstr(err.message, "; wait for it to finish or ask them"), "message: %s",
	          err.message);

	bool held = false;
	mg_lock_holder h;
	cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0, "%s", err.message);
	cr_assert(held);
	cr_assert_eq(h.pid, (long)child);
	cr_assert_str_eq(h.operator_, op);
	cr_assert_str_eq(h.command, "step");
	int64_t now = mg_now_ms();
	cr_assert(h.since_ms <= now && h.since_ms > now - 60000, "since %lld now %lld",
	          (long long)h.since_ms, (long long)now);

	close(go);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);

	cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0, "%s", err.message);
	cr_assert_not(held);
	cr_assert_eq(mg_store_lock(s, "rollback", &err), 0, "%s", err.message);
	cr_assert(mg_store_locked(s));
	mg_store_free(s);
}

Test(store, lock_released_when_holder_is_killed, .init = setup, .fini = teardown)
{
	int go;
	pid_t child = spawn_holder("payments-api", &go);
	mg_error err = MG_ERROR_INIT;
	mg_store *s = open_store("payments-api");
	cr_assert_eq(mg_store_lock(s, "step", &err), MG_ELOCKED);

	cr_assert_eq(kill(child, SIGKILL), 0);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(go);

	/* Nobody cleaned up: the kernel dropped the flock with the process. */
	bool held = true;
	cr_assert_eq(mg_store_lock_probe(&held, NULL, s, &err), 0, "%s", err.message);
	cr_assert_not(held);
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	mg_store_free(s);
}

Test(store, second_handle_in_same_process_is_locked_out, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *a = open_store("payments-api");
	mg_store *b = open_store("payments-api");
	cr_assert_eq(mg_store_lock(a, "step", &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_lock(a, "step", &err), 0, "relocking our own lock: %s", err.message);
	cr_assert_eq(mg_store_lock(b, "step", &err), MG_ELOCKED);
	mg_store_free(a); /* releases */
	cr_assert_eq(mg_store_lock(b, "step", &err), 0, "%s", err.message);
	mg_store_free(b);
}

Test(store, unreadable_holder_gives_generic_message, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *a = open_store("payments-api");
	mg_store *b = open_store("payments-api");
	cr_assert_eq(mg_store_lock(a, "step", &err), 0, "%s", err.message);
	char path[256];
	snprintf(path, sizeof(path), "%s/lock", mg_store_path(a));
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"operator\": tor", f);
	fclose(f);
	cr_assert_eq(mg_store_lock(b, "step", &err), MG_ELOCKED);
	cr_assert(strstr(err.message, "plan \"payments-api\" is locked by another migrate process"),
	          "message: %s", err.message);
	mg_store_free(a);
	mg_store_free(b);
}

Test(store, operator_id)
{
	char op[256];
	mg_operator_id(op, sizeof(op));
	char *at = strchr(op, '@');
	cr_assert_not_null(at, "%s", op);
	struct passwd *pw = getpwuid(geteuid());
	if (pw)
		cr_assert_eq(strncmp(op, pw->pw_name, (size_t)(at - op)), 0, "%s", op);
	char host[256] = "";
	cr_assert_eq(gethostname(host, sizeof(host) - 1), 0);
	host[strcspn(host, ".")] = '\0';
	cr_assert_str_eq(at + 1, host);
	char small[4];
	mg_operator_id(small, sizeof(small));
	cr_assert_eq(strlen(small), 3);
}

Test(store, now_ms)
{
	int64_t a = (int64_t)time(NULL) * 1000;
	int64_t now = mg_now_ms();
	cr_assert(now >= a && now < a + 2000, "now %lld, time() %lld", (long long)now,
	          (long long)a);
}

Test(store, time_format)
{
	char buf[40];
	mg_time_format(buf, sizeof(buf), 1795319871123);
	cr_assert_str_eq(buf, "2026-11-22T03:57:51.123Z");
	mg_time_format(buf, sizeof(buf), 0);
	cr_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
	mg_time_format(buf, sizeof(buf), -500);
	cr_assert_str_eq(buf, "1969-12-31T23:59:59.500Z");
	mg_time_format(buf, sizeof(buf), 1709251199999);
	cr_assert_str_eq(buf, "2024-02-29T23:59:59.999Z");
}

Test(store, time_parse)
{
	int64_t ms = 0;
	cr_assert_eq(mg_time_parse(&ms, "2026-11-22T03:57:51.123Z"), 0);
	cr_assert_eq(ms, 1795319871123);
	cr_assert_eq(mg_time_parse(&ms, "2026-11-22T03:57:51Z"), 0);
	cr_assert_eq(ms, 1795319871000);
	cr_assert_eq(mg_time_parse(&ms, "2026-11-22T03:57:51.1Z"), 0);
	cr_assert_eq(ms, 1795319871100);
	cr_assert_eq(mg_time_parse(&ms, "2026-11-22T03:57:51.123456789Z"), 0);
	cr_assert_eq(ms, 1795319871123);
	cr_assert_eq(mg_time_parse(&ms, "2026-11-22T05:57:51.123+02:00"), 0);
	cr_assert_eq(ms, 1795319871123);
	cr_assert_eq(mg_time_parse(&ms, "2024-02-29T23:59:59.999Z"), 0);
	cr_assert_eq(ms, 1709251199999);

	const char *bad[] = {"",
	                     "garbage",
	                     "2026-11-22",
	                     "2026-11-22 03:57:51Z",
	                     "2026-11-22T03:57:51",
	                     "2026-11-22T03:57:51.Z",
	                     "2026-11-22T03:57:51.123Zjunk",
	                     "2026-13-01T00:00:00Z",
	                     "2025-02-29T00:00:00Z",
	                     "2026-11-22T24:00:00Z",
	                     "2026-11-22T03:60:00Z",
	                     "+026-11-22T03:57:51Z",
	                     "2026-1-22T03:57:51Z"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 42;
		cr_assert_eq(mg_time_parse(&ms, bad[i]), MG_EINVALID, "accepted \"%s\"", bad[i]);
		cr_assert_eq(ms, 42, "\"%s\" changed the output", bad[i]);
	}
}

Test(store, time_round_trip)
{
	int64_t samples[] = {0,          1, 999, 1000, -1, -86400001, 1795319871123, 4102444799999,
	                     mg_now_ms()};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		char buf[40];
		int64_t back = 0;
		mg_time_format(buf, sizeof(buf), samples[i]);
		cr_assert_eq(mg_time_parse(&back, buf), 0, "cannot parse %s", buf);
		cr_assert_eq(back, samples[i], "%s: %lld != %lld", buf, (long long)back,
		             (long long)samples[i]);
	}
}

/* A lock holder running `command` that stops on SIGTERM unless told to ignore it. */
static pid_t spawn_runner(const char *command, bool ignore_term)
{
	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(ready[0]);
		signal(SIGTERM, ignore_term ? SIG_IGN : SIG_DFL);
		mg_error err = MG_ERROR_INIT;
		mg_store *s;
		if (mg_store_open(&s, tmpdir, "payments-api", &err) < 0 ||
		    mg_store_lock(s, command, &err) < 0)
			_exit(3);
		if (write(ready[1], "x", 1) != 1)
			_exit(4);
		for (int i = 0; i < 100; i++) /* bounded: 10 s at most */
			usleep(100 * 1000);
		_exit(0);
	}
	close(ready[1]);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1, "the child did not take the lock");
	close(ready[0]);
	return pid;
}

Test(store, preempt_stops_an_autopilot, .init = setup, .fini = teardown)
{
	pid_t pid = spawn_runner("run", false);
	mg_store *s;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, tmpdir, "payments-api", &err), 0);
	cr_assert_eq(mg_store_lock_preempt(s, "rollback", "run", 5000, &err), 0, "%s", err.message);
	cr_assert(mg_store_locked(s));
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "the autopilot was not stopped");
	mg_store_free(s);
	mg_error_clear(&err);
}

Test(store, preempt_waits_for_no_manual_command, .init = setup, .fini = teardown)
{
	pid_t pid = spawn_runner("step", false);
	mg_store *s;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, tmpdir, "payments-api", &err), 0);
	cr_assert_eq(mg_store_lock_preempt(s, "rollback", "run", 5000, &err), MG_ELOCKED);
	cr_assert(strstr(err.message, "running \"step\""), "%s", err.message);
	cr_assert_eq(kill(pid, 0), 0, "a manual step must not be stopped");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	mg_store_free(s);
	mg_error_clear(&err);
}

Test(store, preempt_gives_up_on_an_autopilot_that_does_not_stop, .init = setup, .fini = teardown)
{
	pid_t pid = spawn_runner("run", true);
	mg_store *s;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, tmpdir, "payments-api", &err), 0);
	int64_t t0 = mg_now_ms();
	cr_assert_eq(mg_store_lock_preempt(s, "rollback", "run", 300, &err), MG_ELOCKED);
	int64_t took = mg_now_ms() - t0;
	cr_assert(took >= 300 && took < 3000, "waited %lld ms", (long long)took);
	cr_assert(strstr(err.message, "was asked to stop but still holds"), "%s", err.message);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	mg_store_free(s);
	mg_error_clear(&err);
}

Test(store, pause_request_write_read_remove, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	mg_store *s = open_store("shop");
	bool present = true;
	mg_pause_request pr;
	cr_assert_eq(mg_store_pause_read(&present, &pr, s, &err), 0, "%s", err.message);
	cr_assert(!present);
	/* no lock needed: the autopilot holds it while it runs */
	cr_assert_eq(mg_store_pause_write(s, "coffee", &err), 0, "%s", err.message);
	char path[256];
	snprintf(path, sizeof(path), "%s/shop/pause", tmpdir);
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	cr_assert_eq(mg_store_pause_read(&present, &pr, s, &err), 0, "%s", err.message);
	cr_assert(present);
	cr_assert_str_eq(pr.reason, "coffee");
	char me[256];
	mg_operator_id(me, sizeof(me));
	cr_assert_str_eq(pr.operator_, me);
	cr_assert_gt(pr.since_ms, 0);
	cr_assert_eq(mg_store_pause_remove(s, &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_pause_read(&present, &pr, s, &err), 0, "%s", err.message);
	cr_assert(!present);
	/* removing twice is fine; a file written by hand still counts as a request */
	cr_assert_eq(mg_store_pause_remove(s, &err), 0, "%s", err.message);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs("not json", f);
	fclose(f);
	cr_assert_eq(mg_store_pause_read(&present, &pr, s, &err), 0, "%s", err.message);
	cr_assert(present);
	cr_assert_str_eq(pr.reason, "");
	mg_store_free(s);
	mg_error_clear(&err);
}
