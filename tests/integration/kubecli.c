/*
 * The real build/migrate with `state.backend: kubernetes` against
 * tests/servers/kubeapi.py and a real HAProxy on loopback: two operators
 * (two HOMEs, two state directories) share one migration through the
 * cluster; what one steps the other sees, and the lock one holds keeps the
 * other out with exit 3 naming the holder.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../testutil.h"
#include "kube.h"
#include "kubestore.h"
#include "store.h"

static char dir[256];
static tu_kubeapi k = TU_KUBEAPI_INIT;
static pid_t haproxy_pid, upstream_pid[2];
static int upstream_stdin[2];

static const char *path(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
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

static void wait_up(void)
{
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

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kubecli");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	unsetenv("NO_COLOR");
	tu_kubeapi_start(&k, dir, "default");
	const char *names[2] = {"vm-01", "k8s"};
	char addrs[2][64];
	for (int i = 0; i < 2; i++) {
		char port[16];
		snprintf(port, sizeof(port), "%d", tu_free_port());
		snprintf(addrs[i], sizeof(addrs[i]), "%s=127.0.0.1:%s", names[i], port);
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
	wait_up();
	free(api("set weight be/k8s 0"));

	FILE *f = fopen(path("plan.yaml"), "w");
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
	        "  backend: kubernetes\n"
	        "  lease: 5s\n"
	        "  kubernetes:\n"
	        "    kubeconfig: %s\n"
	        "    namespace: default\n",
	        path("admin.sock"), k.kubeconfig);
	fclose(f);
	mkdir(path("ann"), 0700);
	mkdir(path("bob"), 0700);
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
}

TestSuite(kubecli, .init = setup, .fini = teardown, .timeout = 90);

/* migrate as one operator: their own HOME and state directory (which the cluster makes moot). */
static tu_output as(const char *who, const char *a1, const char *a2, const char *a3, const char *a4)
{
	setenv("HOME", path(who), 1);
	char sd[600];
	snprintf(sd, sizeof(sd), "--state-dir=%s/state", path(who));
	return tu_migrate_plan(path("plan.yaml"), sd, a1, a2, a3, a4, (char *)NULL);
}

Test(kubecli, one_operator_steps_and_the_other_sees_it)
{
	tu_output r = as("ann", "step", "--reason", "first slice", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);

	r = as("bob", "status", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_not_null(st, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "step"), "index")), 0,
	             "%s", r.out);
	cr_assert_geq(json_integer_value(json_object_get(st, "revision")), 1, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "shifting", "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "state_backend")), "kubernetes");
	const char *where = json_string_value(json_object_get(doc, "state_store"));
	cr_assert(where && strstr(where, "kubernetes ") && strstr(where, "/migrate-shop"), "%s",
	          r.out);
	json_decref(doc);
	tu_output_free(&r);

	r = as("bob", "history", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "first slice"), "%s", r.out);
	cr_assert(strstr(r.out, "\"intent\""), "%s", r.out);
	tu_output_free(&r);

	/* bob goes on from where ann left it */
	r = as("bob", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = as("ann", "status", "-o", "json", NULL);
	doc = tu_json_doc(&r);
	json_t *step = json_object_get(json_object_get(doc, "state"), "step");
	cr_assert_eq(json_integer_value(json_object_get(step, "index")), 1, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	/* nothing of it on either laptop */
	struct stat sb;
	cr_assert_neq(stat(path("ann/state/shop"), &sb), 0);
	cr_assert_neq(stat(path("bob/state/shop"), &sb), 0);
}

Test(kubecli, the_second_operator_is_locked_out_naming_the_first)
{
	/* ann's long command holds the plan (as `migrate run` does) */
	mg_kube_config_options co = {.kubeconfig = k.kubeconfig};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &co, &err), 0, "%s", err.message);
	mg_kube_store_options o = {.plan = "shop", .lease_ms = 5000};
	mg_store *held = NULL;
	cr_assert_eq(mg_kube_store_open(&held, c, true, &o, &err), 0, "%s", err.message);
	cr_assert_eq(mg_store_lock(held, "deploy", &err), 0, "%s", err.message);

	tu_output r = as("bob", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 3, "%s\n%s", r.out, r.err);
	char op[256], want[400];
	mg_operator_id(op, sizeof(op));
	snprintf(want, sizeof(want), "plan \"shop\" is locked by %s (pid %ld, running \"deploy\"",
	         op, (long)getpid());
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);

	/* status is not locked out, and names the holder */
	r = as("bob", "status", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "deploy"), "%s", r.out);
	tu_output_free(&r);

	mg_store_free(held); /* releases the Lease */
	r = as("bob", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
}

static int weight(const char *server)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "get weight be/%s", server);
	char *r = api(cmd);
	cr_assert_not_null(r);
	int w = atoi(r);
	free(r);
	return w;
}

/* The rule of a rollback holds with the state in the cluster: traffic first, the record after. */
Test(kubecli, rollback_moves_traffic_when_the_cluster_with_the_state_is_gone)
{
	tu_output r = as("ann", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	cr_assert_gt(weight("k8s"), 0);
	r = as("bob", "status", NULL, NULL, NULL);
	cr_assert(strstr(r.out, "state      kubernetes default/migrate-shop"), "%s", r.out);
	tu_output_free(&r);

	tu_kubeapi_stop(&k);
	int64_t t0 = mg_clock_ms();
	r = as("bob", "rollback", "--reason", "cluster down", NULL);
	int64_t took = mg_clock_ms() - t0;
	cr_assert_eq(r.status, 5, "%s\n%s", r.out, r.err);
	cr_assert_eq(weight("k8s"), 0, "traffic is back on the VMs");
	cr_assert_gt(weight("vm-01"), 0);
	cr_assert_lt(took, 15000, "the rollback waited %lld ms for the cluster", (long long)took);
	tu_output_free(&r);
}

Test(kubecli, a_pause_from_one_laptop_holds_the_other)
{
	tu_output r = as("ann", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = as("ann", "pause", "--reason", "lunch", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = as("bob", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 3, "a paused migration must not step: %s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = as("bob", "status", "-o", "json", NULL);
	json_t *doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "paused", "%s", r.out);
	cr_assert(strstr(json_string_value(json_object_get(st, "pause_reason")), "lunch"), "%s",
	          r.out);
	json_decref(doc);
	tu_output_free(&r);
	r = as("bob", "resume", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = as("bob", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	r = as("ann", "history", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "pause"), "%s", r.out);
	cr_assert(strstr(r.out, "resume"), "%s", r.out);
	tu_output_free(&r);
}

/* The files of a spool directory, their names into names (up to 8); -1 when there is no directory.
 */
static int spool_files(const char *d, char names[8][256])
{
	DIR *dp = opendir(d);
	if (!dp)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dp)))
		if (e->d_name[0] != '.' && n < 8)
			snprintf(names[n++], 256, "%s", e->d_name);
	closedir(dp);
	return n;
}

/*
 * The cluster API stops answering (SIGSTOP: connections hang, as a partitioned
 * control plane's do): ann rolls back, which moves traffic and keeps the record
 * in her spool. Returns the spooled record's time (malloc'd).
 */
static char *rollback_into_the_spool(void)
{
	tu_output r = as("ann", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	cr_assert_gt(weight("k8s"), 0);

	cr_assert_eq(kill(k.pid, SIGSTOP), 0);
	int64_t t0 = mg_clock_ms();
	r = as("ann", "rollback", "--reason", "cluster down", NULL);
	int64_t took = mg_clock_ms() - t0;
	kill(k.pid, SIGCONT);
	cr_assert_eq(r.status, 5, "%s\n%s", r.out, r.err);
	cr_assert_eq(weight("k8s"), 0, "traffic is back on the VMs");
	/* one request's 2 s for the lock, none more for the state: not 2 s per request */
	cr_assert_lt(took, 3500, "the rollback waited %lld ms for a cluster that hangs",
	             (long long)took);
	char sp[600];
	snprintf(sp, sizeof(sp), "%s/state/spool/shop", path("ann"));
	char want[700];
	snprintf(want, sizeof(want),
	         "recorded in the local spool %s; it is uploaded by the next "
	         "command that reaches the cluster",
	         sp);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);

	char names[8][256];
	cr_assert_eq(spool_files(sp, names), 1, "one record in %s", sp);
	struct stat sb;
	cr_assert_eq(stat(sp, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0700);
	char f[1000];
	snprintf(f, sizeof(f), "%s/%s", sp, names[0]);
	cr_assert_eq(stat(f, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "%o", sb.st_mode & 0777);
	json_error_t je;
	json_t *doc = json_load_file(f, 0, &je);
	cr_assert_not_null(doc, "%s: %s", f, je.text);
	json_t *rec = json_object_get(doc, "record");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "command")), "rollback");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "reason")), "cluster down");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "state"), "phase")),
	                 "rolled-back", "%s", f);
	char *when = strdup(json_string_value(json_object_get(rec, "time")));
	json_decref(doc);
	return when;
}

/* The record of the rollback in history, as spooled: -1 when it is not there. */
static json_int_t rollback_seq(const char *who, const char *when)
{
	tu_output r = as(who, "history", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *recs = json_is_array(doc) ? doc : json_object_get(doc, "records");
	cr_assert(json_is_array(recs), "%s", r.out);
	json_int_t seq = -1;
	size_t i;
	json_t *rec;
	json_array_foreach(recs, i, rec)
	{
		const char *cmd = json_string_value(json_object_get(rec, "command"));
		const char *t = json_string_value(json_object_get(rec, "time"));
		if (cmd && !strcmp(cmd, "rollback") && t && !strcmp(t, when))
			seq = json_integer_value(json_object_get(rec, "seq"));
	}
	json_decref(doc);
	tu_output_free(&r);
	return seq;
}

/* What a rollback could not record in the cluster waits in the spool, then goes up. */
Test(kubecli, a_rollback_the_cluster_missed_is_spooled_and_uploaded_by_the_next_command)
{
	char *when = rollback_into_the_spool();
	cr_assert_eq(rollback_seq("bob", when), -1, "not in the cluster yet");
	/* status takes no lock: it says what waits, and uploads nothing */
	tu_output r0 = as("ann", "status", NULL, NULL, NULL);
	cr_assert(strstr(r0.out, "spool      1 record not in the cluster yet"), "%s", r0.out);
	tu_output_free(&r0);
	cr_assert_eq(rollback_seq("bob", when), -1, "status uploaded nothing");

	/* the cluster is back: ann's next command uploads it before it does its own work */
	tu_output r = as("ann", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "the rolled-back state was applied, so this is step 1: %s\n%s",
	             r.out, r.err);
	cr_assert(strstr(r.err, "uploaded 1 record from the local spool"), "%s", r.err);
	cr_assert(strstr(r.err, "1 state change applied"), "%s", r.err);
	tu_output_free(&r);
	char names[8][256];
	char sp[600];
	snprintf(sp, sizeof(sp), "%s/state/spool/shop", path("ann"));
	cr_assert_eq(spool_files(sp, names), 0, "the spool is empty once uploaded");

	/* with its own time, before the step that uploaded it */
	json_int_t seq = rollback_seq("bob", when);
	cr_assert_gt(seq, 0, "history has the rollback at %s", when);
	r = as("bob", "status", "-o", "json", NULL);
	json_t *doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "step"), "index")), 0,
	             "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	free(when);
}

/* A spooled state change never overwrites a state someone wrote after it. */
Test(kubecli, a_spooled_state_is_not_applied_over_a_newer_one)
{
	char *when = rollback_into_the_spool();
	/* bob, with no spool of his own, writes the state first */
	tu_output r = as("bob", "pause", "--reason", "looking", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert_null(strstr(r.err, "uploaded"), "%s", r.err);
	tu_output_free(&r);

	r = as("ann", "pause", "--reason", "me too", NULL);
	cr_assert(strstr(r.err, "uploaded 1 record from the local spool"), "%s", r.err);
	cr_assert(strstr(r.err, "0 state changes applied, 1 left out"), "%s", r.err);
	tu_output_free(&r);
	char names[8][256];
	char sp[600];
	snprintf(sp, sizeof(sp), "%s/state/spool/shop", path("ann"));
	cr_assert_eq(spool_files(sp, names), 0);
	cr_assert_gt(rollback_seq("ann", when), 0, "the record is journalled all the same");

	r = as("bob", "status", "-o", "json", NULL);
	json_t *doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_str_eq(json_string_value(json_object_get(st, "phase")), "paused", "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "step"), "index")), 0,
	             "bob's state stays: %s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	free(when);
}

/*
 * A step whose balancer moved and whose record the cluster then refused: the
 * record and the state wait in the spool, and the next command puts both in,
 * so the pending mark the step left is resolved by its own result, not guessed.
 */
Test(kubecli, a_step_the_cluster_missed_after_the_move_is_spooled_with_its_state)
{
	tu_output r = as("ann", "step", NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	tu_output_free(&r);
	/* the pending mark and the intent go through; the result and the state do not */
	json_decref(tu_kubeapi_control(&k, "{\"op\": \"fault\", \"path\": "
	                                   "\"/configmaps/migrate-shop-\", \"method\": \"PUT\", "
	                                   "\"skip\": 2, \"count\": 100, \"status\": 403}"));
	r = as("ann", "step", "--reason", "second slice", NULL);
	json_decref(tu_kubeapi_control(&k, "{\"op\": \"clear_faults\"}"));
	cr_assert_eq(r.status, 5, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "recorded in the local spool"), "%s", r.err);
	tu_output_free(&r);
	cr_assert_gt(weight("k8s"), 0);
	char sp[600], names[8][256];
	snprintf(sp, sizeof(sp), "%s/state/spool/shop", path("ann"));
	cr_assert_eq(spool_files(sp, names), 1);

	r = as("ann", "pause", "--reason", "later", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.err, "uploaded 1 record from the local spool"), "%s", r.err);
	cr_assert(strstr(r.err, "1 state change applied"), "%s", r.err);
	tu_output_free(&r);
	cr_assert_eq(spool_files(sp, names), 0);

	r = as("bob", "status", "-o", "json", NULL);
	json_t *doc = tu_json_doc(&r);
	json_t *st = json_object_get(doc, "state");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "step"), "index")), 1,
	             "the step the spool had: %s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	r = as("bob", "history", "-o", "json", NULL);
	cr_assert_null(strstr(r.out, "\"reconcile\""), "nothing left to reconcile: %s", r.out);
	doc = tu_json_doc(&r);
	json_t *recs = json_object_get(doc, "records"), *rec;
	size_t i, results = 0;
	json_array_foreach(recs, i, rec)
	{
		const char *action = json_string_value(json_object_get(rec, "action"));
		const char *why = json_string_value(json_object_get(rec, "reason"));
		results +=
		    action && !strcmp(action, "result") && why && !strcmp(why, "second slice");
	}
	cr_assert_eq(results, 1, "the step's result, once: %s", r.out);
	json_decref(doc);
	tu_output_free(&r);
}
