/*
 * `migrate state push`, `state pull` and `unlock --force` (issue 14): the
 * real build/migrate against tests/servers/kubeapi.py. The local state is
 * written through lib/ (state.json, fleet.json, a manifest record) and by
 * hand (journal lines from another day and another operator, so that a kept
 * time cannot be mistaken for the push's own); two plans name the same
 * state.dir, one kept locally and one in the cluster.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../testutil.h"
#include "fs.h"
#include "journal.h"
#include "kube.h"
#include "kubestore.h"
#include "records.h"
#include "state.h"
#include "store.h"
#include "storebackend.h"

static char dir[256];
static tu_kubeapi k = TU_KUBEAPI_INIT;
/* a real HAProxy and its two servers, for the one test that steps with real commands */
static pid_t haproxy_pid, upstream_pid[2];
static int upstream_stdin[2] = {-1, -1};

/* Three records of a migration on a laptop, long before any push. */
static const char *const old_lines[] = {
    "{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"operator\":\"alice@laptop\",\"pid\":11,"
    "\"command\":\"step\",\"action\":\"intent\",\"before\":{\"k8s_percent\":0.0},\"after\":{"
    "\"k8s_percent\":10.0},\"reason\":\"first slice\",\"evidence\":null}",
    "{\"seq\":2,\"time\":\"2026-01-02T03:04:06.001Z\",\"operator\":\"alice@laptop\",\"pid\":11,"
    "\"command\":\"step\",\"action\":\"result\",\"before\":null,\"after\":{\"k8s_percent\":10.0},"
    "\"reason\":null,\"evidence\":null}",
    "{\"seq\":3,\"time\":\"2026-01-03T09:00:00.000Z\",\"operator\":\"bob@desk\",\"pid\":22,"
    "\"command\":\"pause\",\"action\":\"pause\",\"before\":null,\"after\":null,\"reason\":"
    "\"lunch\",\"evidence\":null}",
};
#define OLD_N 3

static const char *path(const char *name)
{
	return tu_at("%s/%s", dir, name);
}

static void write_plan(const char *file, const char *backend)
{
	FILE *f = fopen(path(file), "w");
	cr_assert_not_null(f);
	fprintf(f,
	        "version: 1\n"
	        "name: shop\n"
	        "traffic:\n"
	        "  provider: haproxy\n"
	        "  steps: [10, 50, 100]\n"
	        "  bake: 0s\n"
	        "  haproxy:\n"
	        "    socket: %s\n"
	        "    backend: be\n"
	        "    vm_servers: [vm-01]\n"
	        "    k8s_servers: [k8s]\n"
	        "state:\n"
	        "  backend: %s\n"
	        "  dir: %s\n"
	        "  lease: 5s\n"
	        "  kubernetes:\n"
	        "    kubeconfig: %s\n"
	        "    namespace: default\n",
	        path("admin.sock"), backend, path("state"), k.kubeconfig);
	fclose(f);
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kubestate");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	unsetenv("NO_COLOR");
	setenv("HOME", dir, 1);
	tu_kubeapi_start(&k, dir, "default");
	write_plan("kube.yaml", "kubernetes");
	write_plan("local.yaml", "local");
}

static void teardown(void)
{
	tu_stop(&haproxy_pid);
	for (int i = 0; i < 2; i++)
		if (upstream_pid[i] > 0) {
			close(upstream_stdin[i]);
			tu_stop(&upstream_pid[i]);
		}
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

TestSuite(kubestate, .init = setup, .fini = teardown, .timeout = 90);

/* A local state directory dir/state/shop: step 1 of 3 paused, a fleet, release 1.0's manifests. */
static void make_local_state(void)
{
	mg_store *s = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, path("state"), "shop", &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_lock(s, "test", &err), 0, "%s", err.message);
	mg_state st;
	mg_state_init(&st, "shop");
	st.phase = MG_PHASE_PAUSED;
	st.step_index = 0;
	snprintf(st.vms_version, sizeof(st.vms_version), "1.0");
	snprintf(st.kubernetes_version, sizeof(st.kubernetes_version), "1.0");
	snprintf(st.pause_reason, sizeof(st.pause_reason), "by bob@desk: lunch");
	for (int i = 0; i < 3; i++) /* revision 3 */
		cr_assert_eq(mg_state_save(s, &st, &err), 0, "%s", err.message);
	json_t *fleet = json_pack("{s:i, s:s, s:{s:{s:s, s:s}}}", "format", 1, "plan", "shop",
	                          "hosts", "vm-01", "version", "1.0", "outcome", "ok");
	cr_assert_eq(mg_fleet_record_save(s, fleet, &err), 0, "%s", err.message);
	json_decref(fleet);
	json_t *objs = json_pack("[{s:s, s:s, s:{s:s}}]", "apiVersion", "apps/v1", "kind",
	                         "Deployment", "metadata", "name", "web");
	cr_assert_eq(mg_cluster_record_save(s, "1.0", objs, &err), 0, "%s", err.message);
	json_decref(objs);
	mg_store_free(s);
	char text[4096] = "";
	for (int i = 0; i < OLD_N; i++) {
		strcat(text, old_lines[i]);
		strcat(text, "\n");
	}
	tu_write_file(path("state/shop/journal.jsonl"), text);
}

static tu_output kube(const char *a1, const char *a2, const char *a3, const char *a4,
                      const char *a5)
{
	return tu_migrate_plan(path("kube.yaml"), a1, a2, a3, a4, a5, (char *)NULL);
}

static char *slurp(const char *p)
{
	char *buf = NULL;
	size_t len = 0;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&buf, &len, p, &err), 0, "%s: %s", p, err.message);
	return buf;
}

/* The cluster's journal as `history -o json` shows it. */
static json_t *history(void)
{
	tu_output r = kube("history", "-o", "json", NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *recs = json_incref(json_object_get(doc, "records"));
	cr_assert(json_is_array(recs), "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	return recs;
}

/* Record i of the cluster's journal carries old line j's time, operator, command and action. */
static void assert_same_record(json_t *got, int j)
{
	json_t *want = json_loads(old_lines[j], 0, NULL);
	const char *keys[] = {"time", "operator", "command", "action", "reason"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert(json_equal(json_object_get(got, keys[i]), json_object_get(want, keys[i])),
		          "record %d, %s: %s", j, keys[i],
		          json_dumps(got, JSON_COMPACT | JSON_PRESERVE_ORDER));
	json_decref(want);
}

Test(kubestate, push_copies_the_local_state_and_status_and_history_see_it)
{
	make_local_state();
	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "pushed"), "%s", r.out);
	cr_assert(strstr(r.out, "3 journal records"), "%s", r.out);
	cr_assert(strstr(r.out, "kubernetes default/migrate-shop"), "%s", r.out);
	tu_output_free(&r);

	r = kube("status", "--offline", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "paused", "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(st, "revision")), 3, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "step"), "index")), 0,
	             "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), OLD_N + 1, "%s",
	             json_dumps(recs, JSON_COMPACT | JSON_PRESERVE_ORDER));
	for (int j = 0; j < OLD_N; j++) {
		assert_same_record(json_array_get(recs, (size_t)j), j);
		cr_assert_eq(
		    json_integer_value(json_object_get(json_array_get(recs, (size_t)j), "seq")),
		    j + 1);
	}
	json_t *push = json_array_get(recs, OLD_N);
	cr_assert_str_eq(json_string_value(json_object_get(push, "command")), "state");
	cr_assert_str_eq(json_string_value(json_object_get(push, "action")), "push");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(push, "evidence"), "from")),
	    path("state/shop"));
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(push, "after"), "journal_records")),
	    OLD_N);
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(push, "after"), "manifests")), 1);
	json_decref(recs);

	/* the manifest record reached the cluster, where a rollback --release reads it */
	mg_store *s = NULL;
	mg_error err = MG_ERROR_INIT;
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	cr_assert_eq(mg_kube_client_new(&c, &co, &err), 0, "%s", err.message);
	mg_kube_store_options o = {.plan = "shop", .lease_ms = 5000};
	cr_assert_eq(mg_kube_store_open(&s, c, true, &o, &err), 0, "%s", err.message);
	json_t *objs = NULL;
	cr_assert_eq(mg_cluster_record_load(&objs, s, "1.0", &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(objs), 1);
	json_decref(objs);
	json_t *fleet = NULL;
	cr_assert_eq(mg_fleet_record_load(&fleet, s, &err), 0, "%s", err.message);
	cr_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_object_get(fleet, "hosts"), "vm-01"), "version")),
	                 "1.0");
	json_decref(fleet);
	/* and the lock was given back */
	bool held = true;
	mg_lock_holder h;
	cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0, "%s", err.message);
	cr_assert(!held, "the push left the Lease held by %s", h.operator_);
	mg_store_free(s);
}

Test(kubestate, push_dry_run_says_what_and_writes_nothing)
{
	make_local_state();
	tu_output r = kube("state", "push", "--dry-run", "-o", "json");
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert_eq(json_integer_value(json_object_get(doc, "journal_records")), OLD_N, "%s",
	             r.out);
	cr_assert_eq(json_integer_value(json_object_get(doc, "manifests")), 1, "%s", r.out);
	cr_assert(json_is_true(json_object_get(doc, "fleet")), "%s", r.out);
	cr_assert(json_is_false(json_object_get(doc, "written")), "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(doc, "revision")), 3, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), 0, "a dry run wrote to the cluster's journal");
	json_decref(recs);
	r = kube("state", "pull", path("out"), NULL, NULL);
	cr_assert_eq(r.status, 2, "a dry run left state in the cluster: %s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "nothing to pull"), "%s", r.err);
	tu_output_free(&r);
}

Test(kubestate, push_is_refused_when_the_cluster_has_state_unless_forced)
{
	make_local_state();
	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);

	r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 3, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "already has state"), "%s", r.err);
	cr_assert(strstr(r.err, "revision 3"), "%s", r.err);
	cr_assert(strstr(r.err, "4 journal records"), "%s", r.err);
	tu_output_free(&r);
	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), OLD_N + 1, "a refused push wrote records");
	json_decref(recs);

	r = kube("state", "push", "--force", "-o", "json");
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *before = json_object_get(doc, "cluster_before");
	cr_assert_eq(json_integer_value(json_object_get(before, "revision")), 3, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(before, "journal_records")), OLD_N + 1,
	             "%s", r.out);
	/* the revision only goes up */
	cr_assert_eq(json_integer_value(json_object_get(doc, "revision")), 4, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	recs = history();
	cr_assert_eq(json_array_size(recs), 2 * (OLD_N + 1));
	for (int j = 0; j < OLD_N; j++)
		assert_same_record(json_array_get(recs, (size_t)(OLD_N + 1 + j)), j);
	/* numbered on after the cluster's own */
	for (size_t i = 0; i < json_array_size(recs); i++)
		cr_assert_eq(json_integer_value(json_object_get(json_array_get(recs, i), "seq")),
		             (json_int_t)i + 1);
	json_decref(recs);
}

Test(kubestate, push_and_pull_need_the_kubernetes_backend)
{
	make_local_state();
	tu_output r = tu_migrate_plan(path("local.yaml"), "state", "push", (char *)NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "state.backend: kubernetes"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate_plan(path("local.yaml"), "state", "pull", path("out"), (char *)NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "state.backend: kubernetes"), "%s", r.err);
	tu_output_free(&r);
}

Test(kubestate, pull_into_an_empty_dir_gives_the_same_files)
{
	make_local_state();
	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	mkdir(path("out"), 0755); /* empty, and too open: it is made 0700 */
	r = kube("state", "pull", path("out"), NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "4 journal records"), "%s", r.out);
	tu_output_free(&r);

	struct stat sb;
	cr_assert_eq(stat(path("out"), &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0700, "%o", sb.st_mode & 0777);
	const char *files[] = {"state.json", "journal.jsonl", "fleet.json", "manifests/1.0.json"};
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(stat(tu_at("%s/out/%s", dir, files[i]), &sb), 0, "%s", files[i]);
		cr_assert_eq(sb.st_mode & 0777, 0600, "%s: %o", files[i], sb.st_mode & 0777);
	}

	/* state.json: the same migration */
	json_t *a = json_load_file(path("state/shop/state.json"), 0, NULL);
	json_t *b = json_load_file(path("out/state.json"), 0, NULL);
	cr_assert(a && b);
	const char *keys[] = {"plan", "revision", "phase", "step", "versions", "created_at"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert(json_equal(json_object_get(a, keys[i]), json_object_get(b, keys[i])),
		          "state.json %s differs", keys[i]);
	json_decref(a);
	json_decref(b);

	/* the journal: the local lines as they were, then the push's own */
	char *got = slurp(path("out/journal.jsonl"));
	char *line = got;
	for (int j = 0; j < OLD_N; j++) {
		char *nl = strchr(line, '\n');
		cr_assert_not_null(nl, "%s", got);
		*nl = '\0';
		cr_assert_str_eq(line, old_lines[j]);
		line = nl + 1;
	}
	cr_assert(strstr(line, "\"command\":\"state\",\"action\":\"push\""), "%s", line);
	free(got);

	/* fleet.json and the manifest record, byte for byte */
	const char *same[] = {"fleet.json", "manifests/1.0.json"};
	for (size_t i = 0; i < 2; i++) {
		char *x = slurp(tu_at("%s/state/shop/%s", dir, same[i]));
		char *y = slurp(tu_at("%s/out/%s", dir, same[i]));
		cr_assert_str_eq(x, y, "%s", same[i]);
		free(x);
		free(y);
	}
}

Test(kubestate, pull_refuses_a_dir_that_is_not_empty)
{
	make_local_state();
	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	mkdir(path("out"), 0700);
	tu_write_file(path("out/notes.txt"), "mine\n");
	r = kube("state", "pull", path("out"), NULL, NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "not empty"), "%s", r.err);
	tu_output_free(&r);
	struct stat sb;
	cr_assert_neq(stat(path("out/state.json"), &sb), 0, "a refused pull wrote state.json");

	/* a record of an earlier pull that the cluster does not have is not left behind */
	mkdir(path("out/manifests"), 0700);
	tu_write_file(path("out/manifests/0.9.json"), "{}\n");
	r = kube("state", "pull", "--force", path("out"), NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	cr_assert_eq(stat(path("out/state.json"), &sb), 0);
	cr_assert_eq(stat(path("out/manifests/1.0.json"), &sb), 0);
	cr_assert_neq(stat(path("out/manifests/0.9.json"), &sb), 0, "a stale record stayed");
	char *notes = slurp(path("out/notes.txt"));
	cr_assert_str_eq(notes, "mine\n", "pull --force touched a file not of its layout");
	free(notes);
}

/* The Lease held in this process, as a `migrate deploy` on a laptop that went to sleep. */
static mg_store *hold_lock(void)
{
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &co, &err), 0, "%s", err.message);
	mg_kube_store_options o = {.plan = "shop", .lease_ms = 30000};
	mg_store *held = NULL;
	cr_assert_eq(mg_kube_store_open(&held, c, true, &o, &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_lock(held, "deploy", &err), 0, "%s", err.message);
	return held;
}

/* Who holds the Lease now, as another process sees it: "" when nobody does. */
static void lease_holder(char *command, size_t size)
{
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &co, &err), 0, "%s", err.message);
	mg_kube_store_options o = {.plan = "shop", .lease_ms = 5000};
	mg_store *s = NULL;
	cr_assert_eq(mg_kube_store_open(&s, c, true, &o, &err), 0, "%s", err.message);
	bool held = false;
	mg_lock_holder h = {0};
	cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0, "%s", err.message);
	snprintf(command, size, "%s", held ? h.command : "");
	mg_store_free(s);
}

Test(kubestate, unlock_force_names_the_displaced_holder_and_the_next_command_gets_the_lock)
{
	make_local_state();
	mg_store *held = hold_lock();
	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 3, "the Lease is held: %s\n%s", r.out, r.err);
	tu_output_free(&r);

	r = kube("unlock", "--force", "--reason", "laptop asleep mid-deploy", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	char op[256], want[400];
	mg_operator_id(op, sizeof(op));
	snprintf(want, sizeof(want), "from %s (pid %ld, running \"deploy\"", op, (long)getpid());
	cr_assert(strstr(r.out, want), "want %s in: %s", want, r.out);
	cr_assert(strstr(r.out, "released"), "%s", r.out);
	tu_output_free(&r);
	char who[64];
	lease_holder(who, sizeof(who));
	cr_assert_str_eq(who, "", "unlock left the Lease held by \"%s\"", who);

	/* the next command takes the lock at once (--force: the unlock record is state) */
	r = kube("state", "push", "--force", NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);

	/* the journal names who was displaced, and why */
	json_t *recs = history();
	json_t *u = NULL;
	size_t i;
	json_t *rec;
	json_array_foreach(recs, i, rec)
	{
		if (!strcmp(json_string_value(json_object_get(rec, "command")), "unlock"))
			u = rec;
	}
	cr_assert_not_null(u, "no unlock record");
	cr_assert_str_eq(json_string_value(json_object_get(u, "action")), "force");
	cr_assert_str_eq(json_string_value(json_object_get(u, "reason")),
	                 "laptop asleep mid-deploy");
	json_t *before = json_object_get(u, "before");
	cr_assert_str_eq(json_string_value(json_object_get(before, "operator")), op);
	cr_assert_eq(json_integer_value(json_object_get(before, "pid")), getpid());
	cr_assert_str_eq(json_string_value(json_object_get(before, "command")), "deploy");
	json_decref(recs);

	/* the displaced holder wakes up: its next write is refused */
	mg_error err = MG_ERROR_INIT;
	mg_journal_entry e = {.command = "deploy", .action = "result"};
	int rc = mg_journal_append(held, &e, &err);
	cr_assert_eq(rc, MG_ECONFLICT, "the displaced holder wrote (%d): %s", rc, err.message);
	mg_error_clear(&err);
	mg_store_free(held);
}

Test(kubestate, unlock_needs_force_and_a_reason)
{
	mg_store *held = hold_lock();
	tu_output r = kube("unlock", "--force", NULL, NULL, NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "--reason"), "%s", r.err);
	tu_output_free(&r);
	r = kube("unlock", "--reason", "why not", NULL, NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "--force"), "%s", r.err);
	tu_output_free(&r);
	char who[64];
	lease_holder(who, sizeof(who));
	cr_assert_str_eq(who, "deploy", "the refused unlock took the lock");
	mg_store_free(held);
}

Test(kubestate, unlock_with_the_local_backend_explains_the_flock)
{
	tu_output r = tu_migrate_plan(path("local.yaml"), "unlock", "--force", "--reason", "stale",
	                              (char *)NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "flock"), "%s", r.err);
	cr_assert(strstr(r.err, "never a stale one"), "%s", r.err);
	tu_output_free(&r);
}

Test(kubestate, unlock_with_no_holder_says_so)
{
	tu_output r = kube("unlock", "--force", "--reason", "just in case", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "nobody holds the lock"), "%s", r.out);
	tu_output_free(&r);
	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), 0, "nothing to unlock, yet something was journalled");
	json_decref(recs);
}

/* One runtime API command over HAProxy's admin socket; the reply, malloc'd (NULL: none). */
static char *api(const char *cmd)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path("admin.sock"));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return NULL;
	}
	char line[512];
	snprintf(line, sizeof(line), "%s\n", cmd);
	cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	char *buf = calloc(1, 65536);
	size_t n = 0;
	for (int i = 0; i < 200 && n < 65535; i++) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = read(fd, buf + n, 65535 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	return buf;
}

/* HAProxy with backend be: vm-01 (weight 1) and k8s (weight 0), both UP. */
static void start_haproxy(void)
{
	const char *names[2] = {"vm-01", "k8s"};
	char addrs[2][80];
	for (int i = 0; i < 2; i++) {
		char port[16];
		snprintf(port, sizeof(port), "%d", tu_free_port());
		snprintf(addrs[i], sizeof(addrs[i]), "%s=127.0.0.1:%s%s", names[i], port,
		         i ? "@0" : "");
		char *argv[] = {"/usr/bin/python3",
		                "tests/servers/upstream.py",
		                (char *)names[i],
		                "127.0.0.1",
		                port,
		                NULL};
		upstream_pid[i] = tu_spawn_piped(argv, &upstream_stdin[i], NULL);
	}
	char fp[16];
	snprintf(fp, sizeof(fp), "%d", tu_free_port());
	char *argv[] = {"/bin/sh", "tests/sandbox/haproxy.sh",
	                "-d",      dir,
	                "-f",      fp,
	                "-b",      "be",
	                addrs[0],  addrs[1],
	                NULL};
	haproxy_pid = tu_spawn_piped(argv, NULL, NULL);
	for (int i = 0; i < 100; i++) {
		char *r = api("show stat be 4 -1");
		int n = 0;
		for (char *p = r; p && (p = strstr(p, ",UP")); p++)
			n++;
		free(r);
		if (n >= 2)
			return;
		usleep(50 * 1000);
	}
	cr_assert_fail("HAProxy did not report both servers UP in time");
}

/*
 * A migration begun on a laptop with real commands (a step, a pause) moves
 * into the cluster and goes on from there: the cluster's status and history
 * are the laptop's, and the next step with the kubernetes backend continues it.
 */
Test(kubestate, a_migration_begun_locally_goes_on_in_the_cluster_after_a_push)
{
	start_haproxy();
	tu_output r =
	    tu_migrate_plan(path("local.yaml"), "step", "--reason", "first slice", (char *)NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = tu_migrate_plan(path("local.yaml"), "pause", "--reason", "lunch", (char *)NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	char *local = slurp(path("state/shop/journal.jsonl"));
	json_t *local_state = json_load_file(path("state/shop/state.json"), 0, NULL);
	cr_assert_not_null(local_state);

	r = kube("state", "push", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	size_t n = (size_t)json_integer_value(json_object_get(doc, "journal_records"));
	cr_assert_geq(n, 3, "a step (intent, result) and a pause: %s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	r = kube("status", "-o", "json", NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "paused", "%s", r.out);
	cr_assert(
	    json_equal(json_object_get(st, "revision"), json_object_get(local_state, "revision")),
	    "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "step"), "index")), 0,
	             "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	/* the same records, in the same order, with their own times */
	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), n + 1);
	char *line = local;
	for (size_t i = 0; i < n; i++) {
		char *nl = strchr(line, '\n');
		cr_assert_not_null(nl);
		json_t *want = json_loadb(line, (size_t)(nl - line), 0, NULL);
		json_t *got = json_array_get(recs, i);
		json_object_del(want, "seq");
		json_t *cmp = json_deep_copy(got);
		json_object_del(cmp, "seq");
		cr_assert(json_equal(want, cmp), "record %zu: %.*s\nvs %s", i, (int)(nl - line),
		          line, json_dumps(got, JSON_COMPACT));
		json_decref(want);
		json_decref(cmp);
		line = nl + 1;
	}
	json_decref(recs);
	free(local);
	json_decref(local_state);

	/* and it goes on in the cluster */
	r = kube("resume", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = kube("step", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = kube("status", "--offline", "-o", "json", NULL);
	doc = tu_json_doc(&r);
	st = json_object_get(doc, "state");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "step"), "index")), 1,
	             "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
}

Test(kubestate, push_waits_for_nobody_the_local_lock_held_is_exit_3)
{
	make_local_state();
	mg_store *s = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&s, path("state"), "shop", &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 3, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "locked"), "%s", r.err);
	tu_output_free(&r);
	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), 0, "pushed while the local state was locked");
	json_decref(recs);
	mg_store_free(s);
}

Test(kubestate, unlock_dry_run_names_the_holder_and_takes_nothing)
{
	mg_store *held = hold_lock();
	tu_output r = kube("unlock", "--force", "--reason", "look only", "--dry-run");
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "would take"), "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(path("kube.yaml"), "unlock", "--force", "--reason", "look only",
	                    "--dry-run", "-o", "json", (char *)NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *h = json_object_get(doc, "holder");
	char op[256];
	mg_operator_id(op, sizeof(op));
	cr_assert_str_eq(json_string_value(json_object_get(h, "operator")), op, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(h, "command")), "deploy", "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(h, "pid")), getpid(), "%s", r.out);
	cr_assert(json_is_false(json_object_get(doc, "taken")), "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	/* still the holder's, and nothing was journalled */
	char who[64];
	lease_holder(who, sizeof(who));
	cr_assert_str_eq(who, "deploy", "the dry run took the lock");
	mg_store_free(held);
	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), 0);
	json_decref(recs);
}

Test(kubestate, state_takes_push_or_pull)
{
	tu_output r = kube("state", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "push or pull"), "%s", r.err);
	tu_output_free(&r);
	r = kube("state", "shove", NULL, NULL, NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "'shove' is not a state subcommand"), "%s", r.err);
	tu_output_free(&r);
	r = kube("state", "pull", NULL, NULL, NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "DIR"), "%s", r.err);
	tu_output_free(&r);
	r = kube("state", "push", "--help", NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "usage: migrate state push"), "%s", r.out);
	tu_output_free(&r);
	r = kube("state", "push", "extra", "-o", "json");
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "command")), "state push");
	json_decref(doc);
	tu_output_free(&r);
}

/*
 * A journal of a service's long migration: written a chunk at a time, not a
 * request a record (which took 20 s for 1,000 records here, and left etcd a
 * revision of a growing 256 KiB chunk for each), numbered on across chunks.
 */
Test(kubestate, a_long_journal_is_pushed_a_chunk_at_a_time)
{
	make_local_state();
	FILE *f = fopen(path("state/shop/journal.jsonl"), "a");
	cr_assert_not_null(f);
	for (int i = 0; i < 3000; i++) /* about 750 KiB: three chunks and some */
		fprintf(f, "%s\n", old_lines[i % OLD_N]);
	fclose(f);
	int64_t t0 = tu_now_ms();
	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "3003 journal records"), "%s", r.out);
	tu_output_free(&r);
	int64_t took = tu_now_ms() - t0;
	json_t *reqs = tu_kubeapi_requests(&k);
	size_t n = json_array_size(reqs);
	json_decref(reqs);
	cr_assert_lt(n, 100, "%zu requests for the push", n);
	cr_assert_lt(took, 15000, "the push took %lld ms", (long long)took);

	json_t *recs = history();
	cr_assert_eq(json_array_size(recs), 3004);
	for (size_t i = 0; i < 3004; i++) {
		json_t *rec = json_array_get(recs, i);
		cr_assert_eq(json_integer_value(json_object_get(rec, "seq")), (json_int_t)i + 1,
		             "record %zu", i);
		if (i < 3003)
			assert_same_record(rec, (int)(i % OLD_N));
	}
	json_decref(recs);
	/* more than one chunk, and the newest labelled open */
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &co, &err), 0, "%s", err.message);
	json_t *items = NULL;
	cr_assert_eq(mg_kube_list(c, "/api/v1/namespaces/default/configmaps",
	                          "migrate.dev/plan=shop,migrate.dev/kind=journal", &items, &err),
	             0, "%s", err.message);
	cr_assert_geq(json_array_size(items), 3);
	items = (json_decref(items), NULL);
	cr_assert_eq(
	    mg_kube_list(c, "/api/v1/namespaces/default/configmaps",
	                 "migrate.dev/plan=shop,migrate.dev/kind=journal,migrate.dev/open=true",
	                 &items, &err),
	    0, "%s", err.message);
	cr_assert_eq(json_array_size(items), 1);
	json_decref(items);
	mg_kube_client_free(c);
}

Test(kubestate, help_for_state_and_unlock_three_ways)
{
	const char *cmds[] = {"state", "unlock"};
	for (size_t i = 0; i < 2; i++) {
		tu_output a = tu_migrate("help", cmds[i], NULL);
		tu_output b = tu_migrate(cmds[i], "--help", NULL);
		tu_output c = tu_migrate(cmds[i], "-h", NULL);
		cr_assert_eq(a.status, 0, "%s", a.err);
		cr_assert_eq(b.status, 0, "%s", b.err);
		cr_assert_eq(c.status, 0, "%s", c.err);
		cr_assert(strstr(a.out, tu_at("usage: migrate %s", cmds[i])), "%s", a.out);
		cr_assert(strstr(a.out, "--force"), "%s", a.out);
		cr_assert_str_eq(a.out, b.out);
		cr_assert_str_eq(b.out, c.out);
		tu_output_free(&a);
		tu_output_free(&b);
		tu_output_free(&c);
	}
	tu_output r = tu_migrate("help", NULL);
	cr_assert(strstr(r.out, "\n  state "), "%s", r.out);
	cr_assert(strstr(r.out, "\n  unlock "), "%s", r.out);
	tu_output_free(&r);
	r = kube("unlock", "--force", "--reason", "x", "extra");
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "unexpected argument 'extra'"), "%s", r.err);
	tu_output_free(&r);
}

/* A state.json in the cluster that does not parse stops a push, and --force replaces it. */
Test(kubestate, push_force_replaces_a_damaged_state_in_the_cluster)
{
	make_local_state();
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &co, &err), 0, "%s", err.message);
	mg_kube_store_options o = {.plan = "shop", .lease_ms = 5000};
	mg_store *s = NULL;
	cr_assert_eq(mg_kube_store_open(&s, c, true, &o, &err), 0, "%s", err.message);
	const char *junk = "{\"format\": 1, \"plan\": \"shop\", \"revision\": \"many\"}\n";
	cr_assert_eq(mg_store_doc_write(s, "state", junk, strlen(junk), "", false, &err), 0, "%s",
	             err.message);
	mg_store_free(s);

	tu_output r = kube("state", "push", NULL, NULL, NULL);
	cr_assert_eq(r.status, 2, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = kube("state", "push", "--force", NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "--force replaces it"), "%s", r.err);
	tu_output_free(&r);
	r = kube("status", "--offline", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "paused", "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(st, "revision")), 3, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
}

/* A Lease some other tool holds under a name migrate did not write is named as it stands. */
Test(kubestate, unlock_names_a_holder_migrate_did_not_write)
{
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &co, &err), 0, "%s", err.message);
	mg_kube_lease_options lo = {
	    .name = "migrate-shop", .holder = "leader-elector-7f9c", .lease_seconds = 60};
	mg_kube_lease *l = NULL;
	cr_assert_eq(mg_kube_lease_acquire(&l, c, &lo, &err), 0, "%s", err.message);
	tu_output r = kube("unlock", "--force", "--reason", "not ours", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "from \"leader-elector-7f9c\" and released it"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_eq(mg_kube_lease_renew(l, &err), MG_ECONFLICT, "the old holder still has it");
	mg_error_clear(&err);
	mg_kube_lease_free(l);
	mg_kube_client_free(c);
}
