/*
 * lib/kube/store.c and store_journal.c (lib/kubestore.h) against
 * tests/servers/kubeapi.py: the state store kept in the cluster. Two stores
 * stand for two operators (two laptops, a CI runner); the lease's clock is
 * driven through now_ms where a test needs time to pass, and the one test
 * of a holder that dies waits the real two seconds of its lease.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "journal.h"
#include "kube.h"
#include "kubestore.h"
#include "records.h"
#include "state.h"
#include "storebackend.h"

static char dir[256];
static tu_kubeapi k = TU_KUBEAPI_INIT;

#define CMS "/api/v1/namespaces/default/configmaps"
/* 2026-12-05T07:00:00Z */
#define T0 1796454000000LL

static int64_t clock_ms = T0;

static int64_t test_now(void)
{
	return clock_ms;
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kubestore");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	tu_kubeapi_start(&k, dir, "default");
	clock_ms = T0;
}

static void teardown(void)
{
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

TestSuite(kubestore, .init = setup, .fini = teardown, .timeout = 60);

static mg_kube_client *client(void)
{
	mg_kube_config_options o = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &o, &err), 0, "%s", err.message);
	return c;
}

/* A store of plan "web" with a client of its own; clocked: the lease runs on test_now. */
static mg_store *store_lease(bool clocked, int64_t lease_ms)
{
	mg_kube_store_options o = {
	    .plan = "web", .lease_ms = lease_ms, .now_ms = clocked ? test_now : NULL};
	mg_store *s = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_store_open(&s, client(), true, &o, &err), 0, "%s", err.message);
	cr_assert(mg_store_remote(s));
	cr_assert_str_eq(mg_store_path(s), "kubernetes default/migrate-web");
	return s;
}

static mg_store *store(void)
{
	return store_lease(true, 15000);
}

static void lock_ok(mg_store *s, const char *command)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(s, command, &err), 0, "%s", err.message);
	cr_assert(mg_store_locked(s));
}

static json_t *get(const char *path)
{
	mg_kube_client *c = client();
	json_t *o = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_kube_get(c, path, NULL, &o, &err);
	cr_assert(rc == 0 || rc == MG_ENOTFOUND, "%s", err.message);
	mg_error_clear(&err);
	mg_kube_client_free(c);
	return o;
}

static const char *label(const json_t *o, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(o, "metadata"), "labels"), key));
}

static const char *annotation(const json_t *o, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(o, "metadata"), "annotations"), key));
}

Test(kubestore, state_round_trips_in_a_labelled_configmap)
{
	mg_store *a = store();
	mg_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_state_load(&st, a, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 0);
	cr_assert_str_eq(st.plan, "web");
	/* no lock, no save */
	cr_assert_eq(mg_state_save(a, &st, &err), MG_ERROR);
	mg_error_clear(&err);
	lock_ok(a, "step");
	st.step_index = 2;
	cr_assert_eq(mg_state_save(a, &st, &err), 0, "%s", err.message);
	cr_assert_eq(st.revision, 1);

	json_t *o = get(CMS "/migrate-web-state");
	cr_assert_not_null(o);
	cr_assert_str_eq(label(o, "app.kubernetes.io/managed-by"), "migrate");
	cr_assert_str_eq(label(o, "migrate.dev/plan"), "web");
	cr_assert_str_eq(label(o, "migrate.dev/kind"), "state");
	cr_assert_str_eq(annotation(o, "migrate.dev/fencing-token"), "0");
	cr_assert_not_null(strstr(annotation(o, "migrate.dev/holder"), " command step id "));
	json_decref(o);

	mg_store *b = store();
	mg_state other;
	cr_assert_eq(mg_state_load(&other, b, &err), 0, "%s", err.message);
	cr_assert_eq(other.revision, 1);
	cr_assert_eq(other.step_index, 2);
	mg_store_free(b);
	mg_store_free(a);
}

Test(kubestore, lock_held_names_user_host_pid_and_command)
{
	mg_store *a = store(), *b = store();
	lock_ok(a, "step");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(b, "deploy", &err), MG_ELOCKED);
	char op[256], want[400];
	mg_operator_id(op, sizeof(op));
	snprintf(want, sizeof(want),
	         "plan \"web\" is locked by %s (pid %ld, running \"step\" since ", op,
	         (long)getpid());
	cr_assert_not_null(strstr(err.message, want), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "Lease default/migrate-web, renewed until "), "%s",
	                   err.message);
	mg_error_clear(&err);
	cr_assert_not(mg_store_locked(b));

	bool held;
	mg_lock_holder h;
	cr_assert_eq(mg_store_lock_probe(&held, &h, b, &err), 0, "%s", err.message);
	cr_assert(held);
	cr_assert_str_eq(h.operator_, op);
	cr_assert_eq(h.pid, (long)getpid());
	cr_assert_str_eq(h.command, "step");
	cr_assert_eq(h.since_ms, T0);
	/* the holder itself sees nobody else */
	cr_assert_eq(mg_store_lock_probe(&held, &h, a, &err), 0, "%s", err.message);
	cr_assert_not(held);

	/* released: the next one takes it at once, and is the next holder (token 1) */
	mg_store_unlock(a);
	cr_assert_eq(mg_store_lock_probe(&held, &h, b, &err), 0, "%s", err.message);
	cr_assert_not(held);
	lock_ok(b, "deploy");
	json_t *lease = get("/apis/coordination.k8s.io/v1/namespaces/default/leases/migrate-web");
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(lease, "spec"), "leaseTransitions")),
	    1);
	json_decref(lease);
	mg_store_free(a);
	mg_store_free(b);
}

/* The autopilot holding the plan: the message says what ends it, as the directory's does. */
Test(kubestore, lock_held_by_run_says_how_to_end_it)
{
	mg_store *a = store(), *b = store();
	lock_ok(a, "run");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(b, "deploy", &err), MG_ELOCKED);
	cr_assert_not_null(strstr(err.message, "an autopilot is moving traffic"), "%s",
	                   err.message);
	cr_assert_not_null(strstr(err.message, "then run `migrate deploy` again"), "%s",
	                   err.message);
	mg_error_clear(&err);
	mg_store_free(a);
	mg_store_free(b);
}

Test(kubestore, a_holder_killed_without_releasing_is_taken_over_once_its_lease_runs_out)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	int64_t forked = mg_now_ms();
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		mg_kube_store_options o = {.plan = "web", .lease_ms = 2000};
		mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
		mg_kube_client *c = NULL;
		mg_store *s = NULL;
		mg_error err = MG_ERROR_INIT;
		if (mg_kube_client_new(&c, &co, &err) ||
		    mg_kube_store_open(&s, c, true, &o, &err) || mg_store_lock(s, "run", &err))
			_exit(1);
		if (write(fds[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	char x;
	cr_assert_eq(read(fds[0], &x, 1), 1, "the child could not take the lock");
	close(fds[0]);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);

	mg_store *b = store_lease(false, 2000);
	mg_error err = MG_ERROR_INIT;
	char want[64];
	snprintf(want, sizeof(want), "(pid %ld, running \"run\"", (long)pid);
	cr_assert_eq(mg_store_lock(b, "rollback", &err), MG_ELOCKED, "taken before it ran out");
	cr_assert_not_null(strstr(err.message, want), "%s", err.message);
	mg_error_clear(&err);
	int64_t got = 0;
	for (int i = 0; i < 100 && !got; i++) {
		int rc = mg_store_lock(b, "rollback", &err);
		if (rc == 0)
			got = mg_now_ms();
		else {
			cr_assert_eq(rc, MG_ELOCKED, "%s", err.message);
			mg_error_clear(&err);
			usleep(100 * 1000);
		}
	}
	cr_assert(got, "never taken over");
	cr_assert_geq(got - forked, 2000, "taken %lld ms after the holder started",
	              (long long)(got - forked));
	cr_assert_lt(got - forked, 6000);
	mg_store_free(b);
}

Test(kubestore, two_writers_of_one_state_one_gets_a_conflict_and_nothing_is_lost)
{
	mg_store *a = store(), *b = store();
	mg_error err = MG_ERROR_INIT;
	lock_ok(a, "step");
	mg_state sa, sb;
	cr_assert_eq(mg_state_load(&sa, a, &err), 0, "%s", err.message);
	/* a stalls past its lease: b takes the plan over and moves the state on */
	clock_ms = T0 + 16000;
	lock_ok(b, "step");
	cr_assert_eq(mg_state_load(&sb, b, &err), 0, "%s", err.message);
	sb.step_index = 1;
	cr_assert_eq(mg_state_save(b, &sb, &err), 0, "%s", err.message);
	/* a wakes up believing a third of its lease has not gone by */
	clock_ms = T0 + 1000;
	sa.step_index = 4;
	cr_assert_eq(mg_state_save(a, &sa, &err), MG_ECONFLICT);
	cr_assert_not_null(
	    strstr(err.message, "changed underneath us: expected revision 0, found 1"), "%s",
	    err.message);
	mg_error_clear(&err);
	mg_state now;
	cr_assert_eq(mg_state_load(&now, a, &err), 0, "%s", err.message);
	cr_assert_eq(now.revision, 1);
	cr_assert_eq(now.step_index, 1, "b's update was kept");
	mg_store_free(a);
	mg_store_free(b);
}

typedef struct {
	mg_store *s;
	int wins, conflicts;
} racer;

/* read-modify-write of a counter, each write compare-and-swap on what was read */
static void *race(void *ud)
{
	racer *r = ud;
	for (int i = 0; i < 15; i++) {
		char *text = NULL, *version = NULL;
		size_t len;
		mg_error err = MG_ERROR_INIT;
		int rc = mg_store_doc_read(r->s, "pause", &text, &len, &version, &err);
		long n = rc == 0 ? strtol(text, NULL, 10) : 0;
		char next[32];
		snprintf(next, sizeof(next), "%ld", n + 1);
		mg_error_clear(&err);
		rc = mg_store_doc_write(r->s, "pause", next, strlen(next), version ? version : "",
		                        false, &err);
		if (rc == 0)
			r->wins++;
		else if (rc == MG_ECONFLICT)
			r->conflicts++;
		mg_error_clear(&err);
		free(text);
		free(version);
	}
	return NULL;
}

Test(kubestore, compare_and_swap_racing_writers_lose_no_update)
{
	racer r[2] = {{.s = store()}, {.s = store()}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	char *text = NULL, *version = NULL;
	size_t len;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_doc_read(r[0].s, "pause", &text, &len, &version, &err), 0, "%s",
	             err.message);
	/* every write that succeeded is counted in the value: none overwrote another */
	cr_assert_eq(strtol(text, NULL, 10), r[0].wins + r[1].wins, "value %s, wins %d + %d", text,
	             r[0].wins, r[1].wins);
	cr_assert_eq(r[0].wins + r[1].wins + r[0].conflicts + r[1].conflicts, 30);
	free(text);
	free(version);
	mg_store_free(r[0].s);
	mg_store_free(r[1].s);
}

Test(kubestore, a_stale_fencing_token_stops_the_writer)
{
	mg_store *a = store(), *b = store();
	mg_error err = MG_ERROR_INIT;
	lock_ok(a, "deploy");
	json_t *fleet = NULL;
	cr_assert_eq(mg_fleet_record_load(&fleet, a, &err), 0, "%s", err.message);
	cr_assert_eq(mg_fleet_record_save(a, fleet, &err), 0, "%s", err.message);
	mg_journal_entry e = {.command = "deploy", .action = "start"};
	cr_assert_eq(mg_journal_append(a, &e, &err), 0, "%s", err.message);

	clock_ms = T0 + 16000;
	lock_ok(b, "deploy");
	cr_assert_eq(mg_fleet_record_save(b, fleet, &err), 0, "%s", err.message);
	cr_assert_eq(mg_journal_append(b, &e, &err), 0, "%s", err.message);

	clock_ms = T0 + 1000;
	char op[256];
	mg_operator_id(op, sizeof(op));
	cr_assert_eq(mg_fleet_record_save(a, fleet, &err), MG_ECONFLICT);
	cr_assert_not_null(strstr(err.message, "was written by a newer holder of plan \"web\"'s "
	                                       "lock, "),
	                   "%s", err.message);
	cr_assert_not_null(strstr(err.message, "(fencing token 1; ours is 0)"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, op), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_eq(mg_journal_append(a, &e, &err), MG_ECONFLICT);
	cr_assert_not_null(strstr(err.message, "(fencing token 1; ours is 0)"), "%s", err.message);
	mg_error_clear(&err);

	/* once a third of its lease went by, a renews first, and learns it lost the lock */
	clock_ms = T0 + 6000;
	cr_assert_eq(mg_journal_append(a, &e, &err), MG_ECONFLICT);
	cr_assert_not_null(strstr(err.message, "lost the lock to "), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_eq(mg_store_keepalive(b, &err), 0, "%s", err.message);

	json_t *all = NULL;
	cr_assert_eq(mg_journal_read(&all, NULL, b, 0, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(all), 2, "only the holders' records");
	json_decref(all);
	json_decref(fleet);
	mg_store_free(a);
	mg_store_free(b);
}

static long long seq_of(json_t *a, size_t i)
{
	return (long long)json_integer_value(json_object_get(json_array_get(a, i), "seq"));
}

static void append_n(mg_store *s, int n, const char *reason)
{
	for (int i = 0; i < n; i++) {
		mg_journal_entry e = {.command = "run", .action = "gate", .reason = reason};
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_journal_append(s, &e, &err), 0, "%s", err.message);
	}
}

typedef struct {
	json_t *seen;
} collect_ud;

static int collect(json_t *rec, void *ud, mg_error *err)
{
	(void)err;
	json_array_append(((collect_ud *)ud)->seen, rec);
	return 0;
}

Test(kubestore, the_journal_runs_across_chunks_in_order_with_limit_and_since)
{
	mg_store *a = store_lease(false, 15000);
	lock_ok(a, "run");
	/* 70 KB a record: three to a 256 KiB chunk */
	size_t big = 70 * 1024;
	char *reason = malloc(big + 1);
	memset(reason, 'r', big);
	reason[big] = '\0';
	append_n(a, 5, reason);
	usleep(20 * 1000);
	int64_t mid = mg_now_ms();
	usleep(20 * 1000);
	append_n(a, 5, reason);
	free(reason);

	/* another operator reads it */
	mg_store *b = store_lease(false, 15000);
	json_t *all = NULL;
	size_t skipped = 9;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_journal_read(&all, &skipped, b, 0, &err), 0, "%s", err.message);
	cr_assert_eq(skipped, 0);
	cr_assert_eq(json_array_size(all), 10);
	for (size_t i = 0; i < 10; i++)
		cr_assert_eq(seq_of(all, i), (long long)i + 1);
	json_decref(all);

	cr_assert_eq(mg_journal_read(&all, NULL, b, 4, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(all), 4);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(seq_of(all, i), (long long)i + 7, "oldest first");
	json_decref(all);

	collect_ud u = {.seen = json_array()};
	mg_journal_query q = {.since_ms = mid};
	cr_assert_eq(mg_journal_each(b, &q, collect, &u, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(u.seen), 5);
	cr_assert_eq(seq_of(u.seen, 0), 6);
	json_array_clear(u.seen);
	q.limit = 2;
	cr_assert_eq(mg_journal_each(b, &q, collect, &u, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(u.seen), 2);
	cr_assert_eq(seq_of(u.seen, 0), 9);
	cr_assert_eq(seq_of(u.seen, 1), 10);
	json_decref(u.seen);

	/* four chunks, each under the limit, and only the newest labelled open */
	for (int n = 1; n <= 4; n++) {
		char path[200];
		snprintf(path, sizeof(path), CMS "/migrate-web-journal-%06d", n);
		json_t *o = get(path);
		cr_assert_not_null(o, "chunk %d", n);
		const char *data =
		    json_string_value(json_object_get(json_object_get(o, "data"), "journal.jsonl"));
		cr_assert_leq(strlen(data), 256 * 1024);
		cr_assert_str_eq(label(o, "migrate.dev/open"), n == 4 ? "true" : "false");
		cr_assert_str_eq(label(o, "migrate.dev/kind"), "journal");
		json_decref(o);
	}
	cr_assert_null(get(CMS "/migrate-web-journal-000005"));

	/* the seq runs on when the next holder finds the newest chunk */
	mg_store_unlock(a);
	lock_ok(b, "run");
	append_n(b, 1, "small");
	cr_assert_eq(mg_journal_read(&all, NULL, a, 1, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(all), 1);
	cr_assert_eq(seq_of(all, 0), 11);
	json_decref(all);
	mg_store_free(a);
	mg_store_free(b);
}

Test(kubestore, manifests_fleet_and_requests_round_trip)
{
	mg_store *a = store(), *b = store();
	mg_error err = MG_ERROR_INIT;
	json_t *objs = json_pack("[{s:s, s:s, s:{s:s}}]", "apiVersion", "apps/v1", "kind",
	                         "Deployment", "metadata", "name", "web");
	cr_assert_eq(mg_cluster_record_save(a, "1.2.3+build_7", objs, &err), MG_ERROR);
	mg_error_clear(&err);
	lock_ok(a, "deploy");
	cr_assert_eq(mg_cluster_record_save(a, "1.2.3+build_7", objs, &err), 0, "%s", err.message);
	json_t *back = NULL;
	cr_assert_eq(mg_cluster_record_load(&back, b, "1.2.3+build_7", &err), 0, "%s", err.message);
	cr_assert(json_equal(back, objs));
	json_decref(back);
	cr_assert_eq(mg_cluster_record_load(&back, b, "1.2.4", &err), MG_ENOTFOUND);
	mg_error_clear(&err);

	json_t *fleet = NULL;
	cr_assert_eq(mg_fleet_record_load(&fleet, a, &err), 0, "%s", err.message);
	json_object_set_new(json_object_get(fleet, "hosts"), "vm1",
	                    json_pack("{s:s, s:n}", "version", "1.2.3", "previous"));
	cr_assert_eq(mg_fleet_record_save(a, fleet, &err), 0, "%s", err.message);
	json_decref(fleet);
	cr_assert_eq(mg_fleet_record_load(&fleet, b, &err), 0, "%s", err.message);
	cr_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_object_get(fleet, "hosts"), "vm1"), "version")),
	                 "1.2.3");
	json_decref(fleet);

	/* a pause request needs no lock: it is left beside the holder */
	cr_assert_eq(mg_store_pause_write(b, "lunch", &err), 0, "%s", err.message);
	bool present;
	mg_pause_request pr;
	cr_assert_eq(mg_store_pause_read(&present, &pr, a, &err), 0, "%s", err.message);
	cr_assert(present);
	cr_assert_str_eq(pr.reason, "lunch");
	cr_assert_eq(mg_store_resume_write(b, "back", &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_pause_remove(b, &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_pause_read(&present, &pr, a, &err), 0, "%s", err.message);
	cr_assert_not(present);
	cr_assert_eq(mg_store_resume_take(&present, &pr, a, &err), 0, "%s", err.message);
	cr_assert(present);
	cr_assert_str_eq(pr.reason, "back");
	cr_assert_eq(mg_store_resume_take(&present, &pr, a, &err), 0, "%s", err.message);
	cr_assert_not(present);
	json_decref(objs);
	mg_store_free(a);
	mg_store_free(b);
}

/* A command that writes nothing for longer than its lease (a deploy's fleet stage) keeps it. */
Test(kubestore, a_quiet_holder_keeps_its_lease_through_the_background_renewal)
{
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_store_options o = {.plan = "web", .lease_ms = 2000, .renew_client = &co};
	mg_store *a = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_store_open(&a, client(), true, &o, &err), 0, "%s", err.message);
	lock_ok(a, "deploy");
	mg_store *b = store_lease(false, 2000);
	usleep(3500 * 1000);
	cr_assert_eq(mg_store_lock(b, "step", &err), MG_ELOCKED, "the lease lapsed");
	mg_error_clear(&err);
	/* the holder writes on with its token, nobody took over */
	json_t *fleet = NULL;
	cr_assert_eq(mg_fleet_record_load(&fleet, a, &err), 0, "%s", err.message);
	cr_assert_eq(mg_fleet_record_save(a, fleet, &err), 0, "%s", err.message);
	json_decref(fleet);
	mg_store_unlock(a);
	lock_ok(b, "step");
	mg_store_free(a);
	mg_store_free(b);
}

Test(kubestore, plan_names_that_make_no_object_name_are_refused)
{
	const char *bad[] = {"", "Web", "web_1", "web-", "a/b", NULL};
	for (int i = 0; bad[i]; i++) {
		mg_kube_store_options o = {.plan = bad[i]};
		mg_store *s = NULL;
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_kube_store_open(&s, client(), true, &o, &err), MG_EINVALID, "%s",
		             bad[i]);
		cr_assert_null(s);
		mg_error_clear(&err);
	}
}

static volatile sig_atomic_t term_seen;

static void on_term(int sig)
{
	(void)sig;
	term_seen = 1;
}

/* A rollback stops an autopilot of this host that holds the Lease, as it does the flock. */
Test(kubestore, a_rollback_preempts_a_run_on_this_host_and_not_on_another)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		signal(SIGTERM, on_term);
		mg_kube_store_options o = {.plan = "web", .lease_ms = 15000};
		mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
		mg_kube_client *c = NULL;
		mg_store *s = NULL;
		mg_error err = MG_ERROR_INIT;
		if (mg_kube_client_new(&c, &co, &err) ||
		    mg_kube_store_open(&s, c, true, &o, &err) || mg_store_lock(s, "run", &err) ||
		    write(fds[1], "x", 1) != 1)
			_exit(1);
		for (int i = 0; i < 300 && !term_seen; i++)
			usleep(50 * 1000);
		mg_store_free(s); /* the autopilot lets go when told to stop */
		_exit(term_seen ? 0 : 2);
	}
	close(fds[1]);
	char x;
	cr_assert_eq(read(fds[0], &x, 1), 1, "the child could not take the lock");
	close(fds[0]);
	mg_store *b = store_lease(false, 15000);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock_preempt(b, "rollback", "run", 10000, &err), 0, "%s",
	             err.message);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the run was not told to stop");
	mg_store_unlock(b);

	/* an autopilot on another host: not ours to stop */
	json_t *lease = get("/apis/coordination.k8s.io/v1/namespaces/default/leases/migrate-web");
	cr_assert_not_null(lease);
	char now[40];
	mg_time_format(now, sizeof(now), mg_now_ms());
	memcpy(now + strlen(now) - 1, "000Z", 5);
	json_t *spec = json_pack("{s:s, s:i, s:s, s:s}", "holderIdentity",
	                         "bob@elsewhere pid 7 command run id 1", "leaseDurationSeconds", 15,
	                         "renewTime", now, "acquireTime", now);
	json_object_update(json_object_get(lease, "spec"), spec);
	json_decref(spec);
	mg_kube_client *c = client();
	cr_assert_eq(mg_kube_update(c,
	                            "/apis/coordination.k8s.io/v1/namespaces/default/leases/"
	                            "migrate-web",
	                            lease, NULL, &err),
	             0, "%s", err.message);
	json_decref(lease);
	mg_kube_client_free(c);
	cr_assert_eq(mg_store_lock_preempt(b, "rollback", "run", 1000, &err), MG_ELOCKED);
	cr_assert_str_eq(err.message, "plan \"web\" is held by \"run\" on another host "
	                              "(bob@elsewhere, pid 7); stop it there first");
	mg_error_clear(&err);
	mg_store_free(b);
}
