/*
 * `migrate step`, `rollback` and `status` end to end against a real HAProxy
 * on loopback (tests/sandbox/haproxy.sh) with three tests/servers/upstream.py
 * servers behind it: exit codes, what the balancer really holds afterwards,
 * the journal, bake, drift, dry runs, reconciliation after a crash, and the
 * lock rules.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "journal.h"
#include "state.h"
#include "store.h"

extern char **environ;

static char dir[256];
static pid_t haproxy_pid, upstream_pid[3];
static int upstream_stdin[3];
static int front_port;

static const char *path(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

/* One runtime API command over the admin socket; the reply, malloc'd. */
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

/* Waits (bounded) until HAProxy reports every server in the wanted state ("UP"/"DOWN"). */
static void wait_servers(const char *want, int count)
{
	for (int i = 0; i < 100; i++) {
		char *r = api("show stat be 4 -1");
		int n = 0;
		for (char *p = r ? strstr(r, "\nbe,") : NULL; p; p = strstr(p + 1, "\nbe,")) {
			char *line_end = strchr(p + 1, '\n');
			char line[2048];
			snprintf(line, sizeof(line), "%.*s",
			         (int)(line_end ? line_end - p - 1 : (long)strlen(p + 1)), p + 1);
			/* status is the 18th CSV field */
			char *f = line;
			for (int k = 0; k < 17 && f; k++)
				f = strchr(f, ',') ? strchr(f, ',') + 1 : NULL;
			if (f && !strncmp(f, want, strlen(want)))
				n++;
		}
		free(r);
		if (n >= count)
			return;
		usleep(50 * 1000);
	}
	cr_assert_fail("HAProxy did not report %d servers %s in time", count, want);
}

/*
 * Waits (bounded) until 127.0.0.1:port accepts a connection. HAProxy counts a
 * server UP before its first check, so an upstream still starting on a busy
 * machine would be UP, then DOWN, in the middle of a test.
 */
static void wait_listening(int port)
{
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(fd, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons((uint16_t)port),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return;
		usleep(25 * 1000);
	}
	cr_assert_fail("nothing listens on 127.0.0.1:%d after 5 s", port);
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "step");
	const char *names[3] = {"vm-01", "vm-02", "k8s"};
	char addrs[3][64];
	for (int i = 0; i < 3; i++) {
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
	for (int i = 0; i < 3; i++)
		wait_listening(atoi(strchr(addrs[i], ':') + 1));
	front_port = tu_free_port();
	char fp[16];
	snprintf(fp, sizeof(fp), "%d", front_port);
	char *argv[] = {"/bin/sh", "tests/sandbox/haproxy.sh",
	                "-d",      dir,
	                "-f",      fp,
	                "-b",      "be",
	                addrs[0],  addrs[1],
	                addrs[2],  NULL};
	haproxy_pid = tu_spawn_piped(argv, NULL, NULL);
	wait_servers("UP", 3);
	/* all traffic on the VMs to start with, as before any migration */
	free(api("set weight be/k8s 0"));
	unsetenv("NO_COLOR");
}

static char immutable[512]; /* a file a test made immutable, for teardown to release */

static void teardown(void)
{
	if (immutable[0]) {
		int fd = open(immutable, O_RDONLY | O_CLOEXEC);
		int flags = 0;
		if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
			flags &= ~FS_IMMUTABLE_FL;
			ioctl(fd, FS_IOC_SETFLAGS, &flags);
		}
		if (fd >= 0)
			close(fd);
		immutable[0] = '\0';
	}
	tu_state_stop();
	tu_stop(&haproxy_pid);
	for (int i = 0; i < 3; i++)
		if (upstream_pid[i] > 0) {
			close(upstream_stdin[i]);
			tu_stop(&upstream_pid[i]);
		}
	tu_tmpdir_remove(dir);
}

static void write_plan(const char *bake)
{
	FILE *f = fopen(path("plan.yaml"), "w");
	cr_assert_not_null(f);
	fprintf(f,
	        "version: 1\n"
	        "name: shop\n"
	        "traffic:\n"
	        "  provider: haproxy\n"
	        "  steps: [10, 50, 100]\n"
	        "  bake: %s\n"
	        "  haproxy:\n"
	        "    socket: %s\n"
	        "    backend: be\n"
	        "    vm_servers: [vm-01, vm-02]\n"
	        "    k8s_servers: [k8s]\n",
	        bake, path("admin.sock"));
	fclose(f);
	tu_state_plan(path("plan.yaml"), dir);
}

typedef struct {
	int status;
	char out[65536];
	char err[65536];
} result;

/* Starts args (a path) with stdout and stderr on pipes; *out and *err get their read ends. */
static pid_t start(char **args, int *out_fd, int *err_fd)
{
	int out[2], err[2];
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, args[0], &fa, NULL, args, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	*out_fd = out[0];
	*err_fd = err[0];
	return pid;
}

/* Reads both pipes to their end (bounded) and waits for pid. */
static void finish(result *r, pid_t pid, int out_fd, int err_fd)
{
	size_t no = 0, ne = 0;
	struct pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
	for (int i = 0; i < 3000 && (p[0].fd >= 0 || p[1].fd >= 0); i++) {
		if (poll(p, 2, 10) <= 0)
			continue;
		for (int k = 0; k < 2; k++) {
			if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLHUP)))
				continue;
			char *buf = k ? r->err : r->out;
			size_t *len = k ? &ne : &no;
			ssize_t got = read(p[k].fd, buf + *len, sizeof(r->out) - 1 - *len);
			if (got <= 0) {
				close(p[k].fd);
				p[k].fd = -1;
			} else {
				*len += (size_t)got;
			}
		}
	}
	r->out[no] = r->err[ne] = '\0';
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* prefix (NULL-terminated), then migrate -p <dir>/plan.yaml and the arguments in ap. */
static size_t argv_of(char **args, size_t max, char *const *prefix, const char *first, va_list ap)
{
	size_t n = 0;
	for (; prefix && *prefix && n < max - 1; prefix++)
		args[n++] = *prefix;
	args[n++] = getenv("MIGRATE_BIN");
	cr_assert_not_null(args[n - 1], "MIGRATE_BIN is not set");
	args[n++] = "-p";
	args[n++] = (char *)path("plan.yaml");
	for (const char *a = first; a && n < max - 1; a = va_arg(ap, const char *))
		args[n++] = (char *)a;
	args[n] = NULL;
	return n;
}

/* migrate with -p <dir>/plan.yaml and the given arguments. */
static void run(result *r, const char *first, ...)
{
	char *args[40];
	va_list ap;
	va_start(ap, first);
	argv_of(args, 40, NULL, first, ap);
	va_end(ap);
	int out, err;
	pid_t pid = start(args, &out, &err);
	finish(r, pid, out, err);
}

static json_t *doc_of(const result *r)
{
	json_error_t e;
	json_t *d = json_loads(r->out, 0, &e);
	cr_assert_not_null(d, "not JSON (%s): %s\nstderr: %s", e.text, r->out, r->err);
	return d;
}

static double jnum(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	cr_assert(json_is_number(v), "%s.%s is not a number", a, b ? b : "");
	return json_number_value(v);
}

/* The plan's journal, wherever the plan keeps it (MG_TEST_STATE_BACKEND). */
static json_t *journal(void)
{
	return tu_state_journal(path("plan.yaml"), NULL);
}

static const char *action(json_t *recs, size_t i)
{
	return json_string_value(json_object_get(json_array_get(recs, i), "action"));
}

TestSuite(step, .init = setup, .fini = teardown, .timeout = 60);

Test(step, steps_to_100_then_rolls_back)
{
	write_plan("0s");
	result r;
	double want[] = {10, 50, 100};
	/* 2 VM servers, 1 cluster server: 9/9/2, 1/1/2, 0/0/1 */
	int vm[] = {9, 1, 0}, k8s[] = {2, 2, 1};
	for (int i = 0; i < 3; i++) {
		run(&r, "step", "-o", "json", NULL);
		cr_assert_eq(r.status, 0, "step %d: %s", i + 1, r.err);
		json_t *d = doc_of(&r);
		cr_assert_float_eq(jnum(d, "read_back", "k8s_percent"), want[i], 0.01);
		cr_assert_eq(jnum(d, "to", "step"), i + 1);
		json_decref(d);
		cr_assert_eq(weight("vm-01"), vm[i], "step %d", i + 1);
		cr_assert_eq(weight("vm-02"), vm[i]);
		cr_assert_eq(weight("k8s"), k8s[i]);
	}
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "already at the last step"), "%s", r.out);

	run(&r, "status", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = doc_of(&r);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "state"), "phase")),
	                 "complete");
	cr_assert(json_is_false(json_object_get(d, "drift")));
	cr_assert_float_eq(jnum(d, "live", "k8s_percent"), 100, 0.01);
	json_decref(d);

	run(&r, "rollback", "--reason", "test", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "rolled back to 0% to the cluster (0% read back"), "%s", r.out);
	cr_assert_eq(weight("k8s"), 0);
	cr_assert_gt(weight("vm-01"), 0);

	json_t *recs = journal();
	/* a rollback talks to the balancer first and records after: no intent */
	cr_assert_eq(json_array_size(recs), 7,
	             "intent and result for 3 steps, a rollback's result");
	for (size_t i = 0; i < 6; i += 2) {
		cr_assert_str_eq(action(recs, i), "intent");
		cr_assert_str_eq(action(recs, i + 1), "result");
	}
	cr_assert_str_eq(action(recs, 6), "result");
	json_t *last = json_array_get(recs, 6);
	cr_assert_str_eq(json_string_value(json_object_get(last, "command")), "rollback");
	cr_assert_str_eq(json_string_value(json_object_get(last, "reason")), "test");
	json_decref(recs);
}

Test(step, bake_refuses_then_force_needs_a_reason)
{
	write_plan("1h");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 4, "a step before the bake must be refused: %s", r.err);
	cr_assert(strstr(r.err, "baked for less than traffic.bake"), "%s", r.err);
	cr_assert_eq(weight("k8s"), 2, "nothing may change");
	run(&r, "step", "--force", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--force needs --reason"), "%s", r.err);
	run(&r, "step", "--force", "--reason", "incident 42: VMs on fire", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(weight("k8s"), 2);
	cr_assert_eq(weight("vm-01"), 1);
	json_t *recs = journal();
	json_t *intent = json_array_get(recs, 2);
	cr_assert_str_eq(json_string_value(json_object_get(intent, "reason")),
	                 "incident 42: VMs on fire");
	cr_assert(json_is_true(json_object_get(json_object_get(intent, "evidence"), "forced")));
	json_decref(recs);
}

Test(step, hand_changed_weights_are_drift)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	free(api("set weight be/k8s 18")); /* someone at the console: 18 / 36 = 50% */
	run(&r, "status", "-o", "json", NULL);
	json_t *d = doc_of(&r);
	cr_assert(json_is_true(json_object_get(d, "drift")));
	cr_assert_float_eq(jnum(d, "live", "k8s_percent"), 50, 0.01);
	json_decref(d);
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert(strstr(r.err, "changed by hand"), "%s", r.err);
	cr_assert_eq(weight("k8s"), 18, "a refused step changes nothing");
	run(&r, "step", "--adopt", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(weight("k8s"), 2);
	cr_assert_eq(weight("vm-01"), 1);
	json_t *recs = journal();
	cr_assert_str_eq(action(recs, 2), "adopt");
	json_decref(recs);
}

Test(step, dry_run_changes_nothing)
{
	write_plan("0s");
	result r;
	run(&r, "step", "--dry-run", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = doc_of(&r);
	cr_assert(json_is_true(json_object_get(d, "dry_run")));
	json_t *c = json_object_get(d, "calls");
	cr_assert(json_is_array(c));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(c, 0), "kind")),
	                 "runtime-api");
	char *calls = json_dumps(c, JSON_COMPACT);
	cr_assert(strstr(calls, "set weight be/k8s 2"), "%s", calls);
	free(calls);
	json_decref(d);
	cr_assert_eq(weight("k8s"), 0);
	cr_assert(!tu_state_written(path(".migrate")), "a dry run must not create the state");
	run(&r, "rollback", "--dry-run", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "dry run"), "%s", r.out);
}

/* The state a kill -9 between intent and result leaves: pending set, result never written. */
static void leave_pending(double target, int idx)
{
	mg_store *s = tu_state_store(path("plan.yaml"), NULL, false);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	mg_state st;
	cr_assert_eq(mg_state_load(&st, s, &err), 0);
	st.pending = true;
	snprintf(st.pending_command, sizeof(st.pending_command), "step");
	st.pending_k8s_percent = target;
	st.pending_step_index = idx;
	st.pending_ms = mg_now_ms();
	cr_assert_eq(mg_state_save(s, &st, &err), 0, "%s", err.message);
	mg_store_free(s);
}

Test(step, crash_after_the_balancer_changed_is_reconciled)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	leave_pending(50, 1);
	free(api("set weight be/vm-01 1; set weight be/vm-02 1; set weight be/k8s 2"));
	run(&r, "status", NULL);
	cr_assert(strstr(r.out, "interrupted"), "%s", r.out);
	run(&r, "step", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = doc_of(&r);
	cr_assert_str_eq(json_string_value(json_object_get(d, "reconciled")), "applied");
	/* the interrupted step counted: this one went on to 100% */
	cr_assert_float_eq(jnum(d, "read_back", "k8s_percent"), 100, 0.01);
	json_decref(d);
	cr_assert(strstr(r.err, "reconciled"), "the operator is told: %s", r.err);
}

Test(step, crash_before_the_balancer_changed_is_reconciled)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	leave_pending(50, 1);
	run(&r, "rollback", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = doc_of(&r);
	cr_assert_str_eq(json_string_value(json_object_get(d, "reconciled")), "not applied");
	json_decref(d);
	json_t *recs = journal();
	cr_assert_str_eq(action(recs, 2), "reconcile");
	json_decref(recs);
}

/*
 * A lock holder running `command`; stops on SIGTERM. It waits (10 s at most) for a lock
 * still held: a Lease outlives a holder killed with SIGKILL until it runs out, a flock does not.
 */
static pid_t hold_lock(const char *command)
{
	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		mg_store *s;
		mg_error err = MG_ERROR_INIT;
		if (tu_state_store_open(&s, path("plan.yaml"), NULL, false, &err))
			_exit(3);
		int rc;
		for (int i = 0; (rc = mg_store_lock(s, command, &err)) == MG_ELOCKED && i < 100;
		     i++)
			usleep(100 * 1000);
		if (rc)
			_exit(3);
		if (write(ready[1], "x", 1) != 1)
			_exit(4);
		for (int i = 0; i < 200; i++)
			usleep(50 * 1000);
		_exit(0);
	}
	close(ready[1]);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

Test(step, rollback_stops_the_autopilot_but_not_a_manual_step)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	pid_t manual = hold_lock("step");
	run(&r, "rollback", NULL);
	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert(strstr(r.err, "locked by"), "%s", r.err);
	kill(manual, SIGKILL);
	waitpid(manual, NULL, 0);

	pid_t autopilot = hold_lock("run");
	run(&r, "rollback", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	int st;
	cr_assert_eq(waitpid(autopilot, &st, 0), autopilot);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	cr_assert_eq(weight("k8s"), 0);
}

Test(step, a_down_cluster_server_is_refused_rollback_still_works)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	close(upstream_stdin[2]);
	tu_stop(&upstream_pid[2]);
	wait_servers("DOWN", 1);
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "k8s"), "the server is named: %s", r.err);
	cr_assert_eq(weight("k8s"), 2, "nothing changed");
	json_t *recs = journal();
	cr_assert_str_eq(action(recs, json_array_size(recs) - 1), "failed");
	json_decref(recs);
	run(&r, "rollback", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(weight("k8s"), 0);
}

Test(step, a_missing_socket_is_a_clear_failure)
{
	write_plan("0s");
	cr_assert_eq(unlink(path("admin.sock")), 0);
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "admin.sock"), "%s", r.err);
	run(&r, "status", NULL);
	cr_assert_eq(r.status, 0, "status still shows the record: %s", r.err);
	cr_assert(strstr(r.out, "unavailable"), "%s", r.out);
}

/* An interrupted step, then a hand change: neither the target nor the old share. Reconciled as
 * "unknown", and that must count as drift: step refuses, nothing moves without --adopt. */
Test(step, unknown_reconcile_is_drift)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	leave_pending(50, 1);
	free(api("set weight be/vm-01 1; set weight be/vm-02 1; set weight be/k8s 6")); /* 75% */
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert(strstr(r.err, "so it was unknown"), "%s", r.err);
	cr_assert(strstr(r.err, "changed by hand"), "%s", r.err);
	cr_assert_eq(weight("k8s"), 6, "nothing may move");
	json_t *recs = journal();
	cr_assert_str_eq(action(recs, 2), "reconcile");
	json_decref(recs);
}

static const char *phase_now(void)
{
	static char phase[32];
	result r;
	run(&r, "status", "--offline", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = doc_of(&r);
	snprintf(phase, sizeof(phase), "%s",
	         json_string_value(json_object_get(json_object_get(d, "state"), "phase")));
	json_decref(d);
	return phase;
}

Test(step, pause_holds_manual_steps_until_resume)
{
	write_plan("0s");
	result r;
	/* nothing to pause before traffic moves */
	run(&r, "pause", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "nothing to pause"), "%s", r.err);
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);

	run(&r, "pause", "--reason", "change freeze", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = doc_of(&r);
	cr_assert(json_is_true(json_object_get(d, "changed")));
	cr_assert_str_eq(json_string_value(json_object_get(d, "phase")), "paused");
	json_decref(d);
	cr_assert_str_eq(phase_now(), "paused");
	run(&r, "pause", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "already paused"), "%s", r.out);

	run(&r, "step", NULL);
	cr_assert_eq(r.status, 3, "a paused migration must not step: %s", r.err);
	cr_assert(strstr(r.err, "change freeze") && strstr(r.err, "migrate resume"), "%s", r.err);
	cr_assert_eq(weight("k8s"), 2, "nothing may change");

	run(&r, "resume", "--reason", "freeze over", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "resumed"), "%s", r.out);
	cr_assert_str_eq(phase_now(), "shifting");
	run(&r, "resume", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "not paused"), "%s", r.out);
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(weight("k8s"), 2);
	cr_assert_eq(weight("vm-01"), 1, "50%% now");

	json_t *recs = journal();
	size_t n = json_array_size(recs);
	bool saw_pause = false, saw_resume = false;
	for (size_t i = 0; i < n; i++) {
		json_t *rec = json_array_get(recs, i);
		const char *a = action(recs, i);
		const char *why = json_string_value(json_object_get(rec, "reason"));
		if (!strcmp(a, "pause"))
			saw_pause = why && !strcmp(why, "change freeze");
		if (!strcmp(a, "resume"))
			saw_resume = why && !strcmp(why, "freeze over");
	}
	cr_assert(saw_pause && saw_resume, "pause and resume are journalled with their reasons");
	json_decref(recs);
}

Test(step, rollback_ends_a_pause_and_its_request)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	/* a request as a pause of a running autopilot leaves it */
	mg_store *s = tu_state_store(path("plan.yaml"), NULL, true);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_pause_write(s, "left behind", &err), 0, "%s", err.message);
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 3, "a pause request holds steps too: %s", r.err);
	run(&r, "rollback", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	bool present = true;
	mg_pause_request pr;
	cr_assert_eq(mg_store_pause_read(&present, &pr, s, &err), 0, "%s", err.message);
	cr_assert(!present, "the rollback removes the request");
	mg_store_free(s);
	cr_assert_str_eq(phase_now(), "rolled-back");
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "after the rollback, stepping works again: %s", r.err);
	mg_error_clear(&err);
}

Test(step, run_dry_run_without_a_state_directory)
{
	write_plan("1s");
	FILE *f = fopen(path("plan.yaml"), "a");
	cr_assert_not_null(f);
	fprintf(f, "slo:\n  prometheus: { url: \"http://127.0.0.1:9\" }\n  interval: 1s\n"
	           "  window: 10s\n  red: { source: haproxy, backend: be, max_error_rate: 1%% }\n");
	fclose(f);
	result r;
	run(&r, "run", "--dry-run", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "step 3 of 3: 100% to the cluster"), "%s", r.out);
	cr_assert(!tu_state_written(path(".migrate")), "a dry run creates nothing");
	run(&r, "run", "--until", "abc", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--until"), "%s", r.err);
	run(&r, "run", "--until", "30", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "not one of traffic.steps"), "%s", r.err);
}

/*
 * The autopilot obeys the rule of `step`: no traffic moves while the VMs and the cluster run
 * different releases (exit 3, the same message), unless --allow-skew says so, journalled.
 */
Test(step, run_refuses_skew_as_step_does)
{
	write_plan("1s");
	FILE *f = fopen(path("plan.yaml"), "a");
	cr_assert_not_null(f);
	fprintf(f, "slo:\n  prometheus: { url: \"http://127.0.0.1:9\" }\n  interval: 1s\n"
	           "  window: 10s\n  red: { source: haproxy, backend: be, max_error_rate: 1%% }\n");
	fclose(f);
	mkdir(path(".migrate"), 0700);
	mkdir(path(".migrate/shop"), 0700);
	tu_state_write_raw(
	    path("plan.yaml"), NULL,
	    "{\"format\":1,\"plan\":\"shop\",\"revision\":1,\"phase\":\"idle\","
	    "\"step\":{\"index\":null,\"started_at\":null},"
	    "\"weights\":{\"applied\":null,\"read_back\":null},"
	    "\"versions\":{\"vms\":\"1.0\",\"vms_previous\":null,\"kubernetes\":\"1.1\"},"
	    "\"created_at\":null,\"updated_at\":null}");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 3, "step: %s", r.err);
	static char step_err[sizeof(r.err)];
	memcpy(step_err, r.err, sizeof(step_err));
	run(&r, "run", "--until", "10", NULL);
	cr_assert_eq(r.status, 3, "run with skew: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, "the VMs run 1.0 but the cluster runs 1.1"), "%s", r.err);
	cr_assert_str_eq(r.err, step_err, "the same message as step");
	cr_assert_eq(weight("k8s"), 0, "nothing may move");

	run(&r, "run", "--until", "10", "--allow-skew", NULL);
	cr_assert_eq(r.status, 0, "run --allow-skew: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert_gt(weight("k8s"), 0, "the first step was taken");
	json_t *recs = journal();
	size_t i, skew = 0, intent = 0;
	json_t *rec;
	json_array_foreach(recs, i, rec)
	{
		const char *cmd = json_string_value(json_object_get(rec, "command"));
		if (!strcmp(action(recs, i), "skew-allowed") && !strcmp(cmd, "run"))
			skew = i + 1;
		if (!strcmp(action(recs, i), "intent") && !intent)
			intent = i + 1;
	}
	cr_assert(skew && intent && skew < intent, "skew-allowed %zu before the intent %zu", skew,
	          intent);
	json_decref(recs);
}

/*
 * A step killed after the balancer changed: the balancer has the step's target, which is not
 * what migrate last read back, but it is migrate's own doing. status says the step was
 * interrupted and what the next command does, not that someone changed the weights by hand.
 */
Test(step, status_after_an_interrupted_step_is_not_drift)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	leave_pending(50, 1);
	free(api("set weight be/vm-01 1; set weight be/vm-02 1; set weight be/k8s 2"));
	run(&r, "status", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "`migrate step` to 50% was interrupted at "), "%s", r.out);
	cr_assert(strstr(r.out, "the next step, rollback or run reads the balancer and records "
	                        "what happened"),
	          "%s", r.out);
	cr_assert(strstr(r.out, "the interrupted step's target"), "%s", r.out);
	cr_assert_null(strstr(r.out, "DRIFT"), "%s", r.out);
	run(&r, "status", "-o", "json", NULL);
	json_t *d = doc_of(&r);
	cr_assert(json_is_false(json_object_get(d, "drift")), "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(d, "pending_outcome")), "applied");
	json_decref(d);

	/* before the balancer changed: the old weights, not drift either */
	free(api("set weight be/vm-01 9; set weight be/vm-02 9; set weight be/k8s 2"));
	run(&r, "status", "-o", "json", NULL);
	d = doc_of(&r);
	cr_assert(json_is_false(json_object_get(d, "drift")), "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(d, "pending_outcome")), "not applied");
	json_decref(d);

	/* neither: someone else moved them too, and that is drift */
	free(api("set weight be/vm-01 1; set weight be/vm-02 1; set weight be/k8s 6"));
	run(&r, "status", NULL);
	cr_assert(strstr(r.out, "DRIFT"), "%s", r.out);
	run(&r, "status", "-o", "json", NULL);
	d = doc_of(&r);
	cr_assert(json_is_true(json_object_get(d, "drift")), "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(d, "pending_outcome")), "unknown");
	json_decref(d);
}

/* Makes file immutable (chattr +i): as root, the one way to make state.json unreplaceable. */
static void make_immutable(const char *file)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", file, strerror(errno));
	int flags = 0;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
		close(fd);
		cr_skip_test("%s: no file attributes here (%s)", file, strerror(errno));
	}
	flags |= FS_IMMUTABLE_FL;
	snprintf(immutable, sizeof(immutable), "%s", file);
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
		immutable[0] = '\0';
		close(fd);
		cr_skip_test("%s: cannot make it immutable here (%s)", file, strerror(errno));
	}
	close(fd);
}

static size_t count_actions(json_t *recs, const char *want)
{
	size_t n = 0;
	for (size_t i = 0; i < json_array_size(recs); i++)
		n += !strcmp(action(recs, i), want);
	return n;
}

/*
 * An interrupted step whose reconciliation cannot be saved (state.json cannot be replaced):
 * every rollback retried reconciles it again, but the journal says so once.
 */
Test(step, a_retried_rollback_journals_one_reconcile_per_intent)
{
	write_plan("0s");
	result r;
	tu_state_local_only("makes state.json immutable");
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	leave_pending(50, 1);
	make_immutable(path(".migrate/shop/state.json"));
	for (int i = 0; i < 3; i++) {
		run(&r, "rollback", NULL);
		cr_assert_neq(r.status, 0, "rollback %d: state.json cannot be written", i + 1);
		cr_assert(strstr(r.err, "state.json"), "rollback %d: %s", i + 1, r.err);
	}
	json_t *recs = journal();
	cr_assert_eq(count_actions(recs, "reconcile"), 1, "%zu reconcile records",
	             count_actions(recs, "reconcile"));
	json_decref(recs);

	/* once state.json can be written again, the rollback goes through, still one record */
	char file[512];
	snprintf(file, sizeof(file), "%s", immutable);
	int fd = open(file, O_RDONLY | O_CLOEXEC), flags = 0;
	cr_assert_geq(fd, 0);
	cr_assert_eq(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
	flags &= ~FS_IMMUTABLE_FL;
	cr_assert_eq(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
	close(fd);
	immutable[0] = '\0';
	run(&r, "rollback", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(weight("k8s"), 0);
	recs = journal();
	cr_assert_eq(count_actions(recs, "reconcile"), 1, "%zu reconcile records",
	             count_actions(recs, "reconcile"));
	json_decref(recs);
}

/*
 * A state directory migrate cannot write, made by root in a private mount namespace
 * (sh, $1 the plan's state directory) just before migrate runs in it: mode bits do not
 * stop root, a read-only mount and a full file system do.
 */
#define PREP_READ_ONLY "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\""
#define PREP_FULL                                                                                  \
	"cp -a \"$1\" \"$1.keep\" && mount -t tmpfs -o size=64k,mode=0700 tmpfs \"$1\" && "        \
	"cp -a \"$1.keep/.\" \"$1/\" && rm -rf \"$1.keep\" && "                                    \
	"{ dd if=/dev/zero of=\"$1/.fill\" bs=4k 2>/dev/null; true; }"

/* run, in a mount namespace where prep has changed the state directory first. */
static void run_ns(result *r, const char *prep, const char *first, ...)
{
	char script[1024];
	snprintf(script, sizeof(script), "%s && shift && exec \"$@\"", prep);
	char *prefix[] = {"/usr/bin/unshare",
	                  "--mount",
	                  "/bin/sh",
	                  "-c",
	                  script,
	                  "sh",
	                  (char *)path(".migrate/shop"),
	                  NULL};
	char *args[48];
	va_list ap;
	va_start(ap, first);
	argv_of(args, 48, prefix, first, ap);
	va_end(ap);
	int out, err;
	pid_t pid = start(args, &out, &err);
	finish(r, pid, out, err);
}

/* The line of stderr that is a JSON object with this command and action, or NULL. */
static json_t *record_on_stderr(const result *r, const char *command, const char *act)
{
	for (const char *p = r->err; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		size_t len = strcspn(p, "\n");
		json_t *d = *p == '{' ? json_loadb(p, len, 0, NULL) : NULL;
		const char *c = json_string_value(json_object_get(d, "command"));
		const char *a = json_string_value(json_object_get(d, "action"));
		if (c && a && !strcmp(c, command) && !strcmp(a, act))
			return d;
		json_decref(d);
	}
	return NULL;
}

/* The balancer as a step at 10% leaves it, whatever the state says. */
static void back_on_the_cluster(void)
{
	free(api("set weight be/vm-01 9; set weight be/vm-02 9; set weight be/k8s 2"));
}

/* A rollback that moved traffic but could not record it: exit 5, read back, the record kept. */
static void expect_unrecorded(const result *r, const char *what)
{
	cr_assert_eq(r->status, 5, "%s: exit %d\n%s", what, r->status, r->err);
	cr_assert_eq(weight("k8s"), 0, "%s: traffic is back on the VMs", what);
	cr_assert_gt(weight("vm-01"), 0, "%s", what);
	/* a state directory: not written; the cluster's store (the backend switch): spooled */
	cr_assert(strstr(r->err, "traffic is 0% on the cluster (read back)") &&
	              (strstr(r->err, "but the record could not be written: ") ||
	               (strstr(r->err, "but the shared store could not record it: ") &&
	                strstr(r->err, "It is recorded in the local spool "))),
	          "%s: %s", what, r->err);
	json_t *rec = record_on_stderr(r, "rollback", "result");
	cr_assert_not_null(rec, "%s: the record is on stderr as one JSON line: %s", what, r->err);
	cr_assert_float_eq(jnum(rec, "after", "k8s_percent"), 0, 0.01, "%s", what);
	cr_assert(json_is_object(json_object_get(json_object_get(rec, "evidence"), "read_back")),
	          "%s", what);
	json_decref(rec);
}

static void expect_unrecorded_json(const result *r, double read_back, const char *what)
{
	cr_assert_eq(r->status, 5, "%s: exit %d\n%s", what, r->status, r->err);
	json_t *d = doc_of(r);
	cr_assert(json_is_false(json_object_get(d, "ok")), "%s: %s", what, r->out);
	cr_assert_eq(jnum(d, "exit_code", NULL), 5, "%s", what);
	cr_assert_float_eq(jnum(d, "read_back", "k8s_percent"), read_back, 0.01, "%s: %s", what,
	                   r->out);
	const char *why = json_string_value(json_object_get(d, "record_error"));
	cr_assert(why && *why, "%s: record_error says why: %s", what, r->out);
	json_decref(d);
}

Test(step, rollback_with_a_read_only_state_dir_moves_traffic_and_exits_5)
{
	tu_state_local_only("mounts the state directory read-only");
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(weight("k8s"), 2);
	run_ns(&r, PREP_READ_ONLY, "rollback", NULL);
	expect_unrecorded(&r, "read-only");
	cr_assert(strstr(r.err, "Read-only file system"), "%s", r.err);
	cr_assert(strstr(r.err, "lock"), "says the lock could not be taken: %s", r.err);

	back_on_the_cluster();
	run_ns(&r, PREP_READ_ONLY, "rollback", "--force", "--reason", "cluster on fire", "-o",
	       "json", NULL);
	expect_unrecorded_json(&r, 0, "read-only, --force, json");
	cr_assert_eq(weight("k8s"), 0);
	json_t *rec = record_on_stderr(&r, "rollback", "result");
	cr_assert_not_null(rec, "%s", r.err);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "reason")), "cluster on fire");
	json_decref(rec);
}

Test(step, rollback_with_a_full_state_disk_moves_traffic_and_exits_5)
{
	tu_state_local_only("fills the state directory's file system");
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_ns(&r, PREP_FULL, "rollback", NULL);
	expect_unrecorded(&r, "full disk");
	cr_assert(strstr(r.err, "No space left on device"), "%s", r.err);

	back_on_the_cluster();
	run_ns(&r, PREP_FULL, "rollback", "--force", "--reason", "x", "-o", "json", NULL);
	expect_unrecorded_json(&r, 0, "full disk, json");
	cr_assert_eq(weight("k8s"), 0);
}

/* state.json cut in the middle or replaced: the rollback still goes, the journal has it */
static void rollback_with_damaged_state(const char *content, const char *what)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	tu_state_write_raw(path("plan.yaml"), NULL, content);
	run(&r, "rollback", NULL);
	expect_unrecorded(&r, what);
	cr_assert(strstr(r.err, "state.json"), "%s: %s", what, r.err);
	json_t *recs = journal();
	json_t *last = json_array_get(recs, json_array_size(recs) - 1);
	cr_assert_str_eq(json_string_value(json_object_get(last, "command")), "rollback");
	cr_assert_str_eq(action(recs, json_array_size(recs) - 1), "result");
	json_decref(recs);

	back_on_the_cluster();
	run(&r, "rollback", "--force", "--reason", "x", "-o", "json", NULL);
	expect_unrecorded_json(&r, 0, what);
	cr_assert_eq(weight("k8s"), 0);
}

Test(step, rollback_with_a_truncated_state_json_moves_traffic_and_exits_5)
{
	rollback_with_damaged_state("{\"format\": 1, \"plan\": \"shop\", \"revis", "truncated");
}

Test(step, rollback_with_a_garbage_state_json_moves_traffic_and_exits_5)
{
	rollback_with_damaged_state("\x7f"
	                            "ELF garbage\n",
	                            "garbage");
}

Test(step, status_with_a_damaged_state_json_shows_the_live_weights)
{
	write_plan("0s");
	result r;
	run(&r, "step", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	tu_state_write_raw(path("plan.yaml"), NULL, "{\"format\": 1, \"pla");
	run(&r, "status", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.out, "live       10% to the cluster"), "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "weight 2"), "%s", r.out);
	cr_assert(strstr(r.err, "state.json") && strstr(r.err, "cannot be read"), "%s", r.err);
	run(&r, "status", "-o", "json", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	json_t *d = doc_of(&r);
	cr_assert_float_eq(jnum(d, "live", "k8s_percent"), 10, 0.01, "%s", r.out);
	/* it names where the state is: the file, or the cluster's migrate-shop objects */
	const char *why = json_string_value(json_object_get(d, "state_error"));
	cr_assert(
	    why && strstr(why, tu_state_kube() ? "kubernetes default/migrate-shop" : "state.json"),
	    "%s", r.out);
	cr_assert(json_is_false(json_object_get(d, "ok")));
	json_decref(d);
}

/* Points the plan at a relay on <dir>/relay.sock (tu_relay) in front of HAProxy. */
static void relay_start(tu_relay *rl, const char *file, int delay_ms)
{
	/* teardown releases it; a copy, as path()'s buffers are reused below */
	snprintf(immutable, sizeof(immutable), "%s", file ? file : "");
	tu_edit_file(path("plan.yaml"), path("admin.sock"), path("relay.sock"));
	tu_relay_start(rl, path("relay.sock"), path("admin.sock"), file ? immutable : NULL,
	               delay_ms);
}

Test(step, a_step_that_cannot_record_after_the_balancer_moved_exits_5_with_the_read_back)
{
	tu_state_local_only("makes state.json immutable");
	write_plan("0s");
	tu_relay rl;
	relay_start(&rl, path(".migrate/shop/state.json"), 0);
	result r;
	run(&r, "step", NULL);
	int hooked = rl.hooked;
	if (hooked < 0) {
		tu_relay_stop(&rl);
		cr_skip_test("state.json cannot be made immutable here");
	}
	cr_assert_eq(hooked, 1, "the step set weights: %s", r.err);
	cr_assert_eq(weight("k8s"), 2, "the balancer has the step");
	cr_assert_eq(weight("vm-01"), 9);
	cr_assert_eq(r.status, 5, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "traffic is 10% on the cluster (read back)") &&
	              strstr(r.err, "but the record could not be written: ") &&
	              strstr(r.err, "state.json"),
	          "%s", r.err);
	json_t *rec = record_on_stderr(&r, "step", "result");
	cr_assert_not_null(rec, "%s", r.err);
	json_decref(rec);

	/* -o json: the read-back and why it is not recorded (the next step reconciles first) */
	cr_assert_eq(tu_set_immutable(rl.file, false), 0);
	rl.hooked = 0;
	run(&r, "step", "-o", "json", NULL);
	cr_assert_eq(rl.hooked, 1, "%s", r.err);
	expect_unrecorded_json(&r, 50, "step -o json");
	cr_assert_eq(weight("vm-01"), 1, "50%% now");
	cr_assert_eq(tu_set_immutable(rl.file, false), 0);
	tu_relay_stop(&rl);
}

/*
 * Two operators typing `migrate step --force` at the same moment: one moves traffic one
 * step, the other is told the state moved (or that the plan is locked), exit 3. Each
 * `set weight` takes 250 ms, as over a slow link: the second has started by the time the
 * first is done, and (before the fix) took the lock then, well within its 100 ms of
 * retries, and stepped again. The window is that wide because a second process that
 * starts only after the first has finished steps again by right: under ASan on a loaded
 * two-core CI machine, 60 ms (this test's first figure) was once not enough for the
 * second to read the state before the first had recorded its step.
 */
Test(step, concurrent_steps_move_traffic_one_step)
{
	write_plan("0s");
	tu_relay rl;
	relay_start(&rl, NULL, 250);
	for (int pair = 0; pair < 3; pair++) {
		char *args[2][40];
		int out[2], err[2];
		pid_t pid[2];
		for (int k = 0; k < 2; k++) {
			size_t n = 0;
			args[k][n++] = getenv("MIGRATE_BIN");
			args[k][n++] = "-p";
			args[k][n++] = (char *)path("plan.yaml");
			args[k][n++] = "step";
			args[k][n++] = "--force";
			args[k][n++] = "--reason";
			args[k][n++] = "x";
			args[k][n] = NULL;
		}
		for (int k = 0; k < 2; k++)
			pid[k] = start(args[k], &out[k], &err[k]);
		result r[2];
		for (int k = 0; k < 2; k++)
			finish(&r[k], pid[k], out[k], err[k]);
		int moved = (r[0].status == 0) + (r[1].status == 0);
		cr_assert_eq(moved, 1, "pair %d: exactly one moves: exits %d and %d\n%s\n%s", pair,
		             r[0].status, r[1].status, r[0].err, r[1].err);
		const result *other = r[0].status == 0 ? &r[1] : &r[0];
		cr_assert_eq(other->status, 3, "pair %d: %s", pair, other->err);
		cr_assert(strstr(other->err, "state moved") || strstr(other->err, "locked"),
		          "pair %d: %s", pair, other->err);
		cr_assert_eq(weight("k8s"), 2, "pair %d: one step, to 10%%", pair);
		cr_assert_eq(weight("vm-01"), 9, "pair %d: one step, to 10%%", pair);
		result rb;
		run(&rb, "rollback", NULL);
		cr_assert_eq(rb.status, 0, "%s", rb.err);
	}
	tu_relay_stop(&rl);
}
