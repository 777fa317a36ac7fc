/*
 * `migrate run` (the autopilot), `pause`, `resume` and a rollback from another
 * process, end to end in the sandbox of tests/sandbox/sandbox.sh: a real
 * HAProxy, a real Prometheus scraping its exporter every second, three app
 * servers and 100 requests a second of load. What the balancer holds is read
 * back here over its runtime API, and what was decided from `migrate history
 * -o json`, so nothing rests on the autopilot's own account of itself.
 *
 * The sandbox is started by each test (not by .init) so that a failed start
 * is a failed assertion, after which .fini still stops whatever is up.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"

#define SANDBOX "tests/sandbox/sandbox.sh"

/* /tmp/mg-ap-XXXXXX: short, since the admin socket lives inside it */
static char dir[64];
static bool sandbox_up;
static tu_kubeapi kapi = TU_KUBEAPI_INIT; /* the state's cluster, when a test keeps it there */
static pid_t bg = -1;                     /* a `migrate run` in the background */
static pid_t peer = -1;                   /* a second one (leader tests) */

/* DIR/sandbox.env */
static struct {
	char key[32];
	char val[256];
} env[32];
static size_t nenv;

/* DIR/sandbox.pids, kept for teardown: down removes the file */
static struct {
	long pid;
	char token[256];
} spids[16];
static size_t nspids;

static const char *path(const char *name)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static const char *envv(const char *key)
{
	for (size_t i = 0; i < nenv; i++)
		if (!strcmp(env[i].key, key))
			return env[i].val;
	cr_assert_fail("%s is not in %s", key, path("sandbox.env"));
	return NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

typedef struct {
	int status; /* exit status, 128 + signal, or -1 when killed at the deadline */
	int64_t ms; /* wall time */
	char out[65536];
	char err[65536];
} result;

/*
 * Runs argv to completion with stdout and stderr captured, killing it at the
 * deadline. Ends when the process does, not at EOF: sandbox.sh leaves daemons
 * behind and the pipes must not depend on them.
 */
static void run_argv(result *r, char *const argv[], int64_t timeout_ms)
{
	int out[2], err[2];
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	int64_t start = tu_now_ms();
	pid_t pid = tu_spawn_fds(argv, -1, out[1], err[1]);
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	close(out[1]);
	close(err[1]);
	size_t len[2] = {0, 0};
	char *buf[2] = {r->out, r->err};
	struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
	int st = 0;
	bool exited = false, killed = false;
	for (;;) {
		if (!exited && waitpid(pid, &st, WNOHANG) == pid)
			exited = true;
		int timeout = exited ? 0 : 20;
		if ((p[0].fd < 0 && p[1].fd < 0) || poll(p, 2, timeout) <= 0) {
			if (exited)
				break;
			if (p[0].fd < 0 && p[1].fd < 0)
				sleep_ms(20);
		} else {
			for (int k = 0; k < 2; k++) {
				if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLHUP)))
					continue;
				ssize_t got =
				    read(p[k].fd, buf[k] + len[k], sizeof(r->out) - 1 - len[k]);
				if (got <= 0) {
					close(p[k].fd);
					p[k].fd = -1;
				} else {
					len[k] += (size_t)got;
				}
			}
		}
		if (!exited && tu_now_ms() - start > timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			exited = killed = true;
		}
	}
	for (int k = 0; k < 2; k++)
		if (p[k].fd >= 0)
			close(p[k].fd);
	r->out[len[0]] = r->err[len[1]] = '\0';
	r->ms = tu_now_ms() - start;
	r->status = killed ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void sandbox(result *r, int64_t timeout_ms, const char *verb, const char *a1, const char *a2)
{
	char *argv[] = {"/bin/sh", SANDBOX, (char *)verb, dir, (char *)a1, (char *)a2, NULL};
	run_argv(r, argv, timeout_ms);
}

static size_t build_args(char **args, size_t max, const char *first, va_list ap)
{
	size_t n = 0;
	args[n++] = getenv("MIGRATE_BIN");
	cr_assert_not_null(args[0], "MIGRATE_BIN is not set");
	args[n++] = "-p";
	args[n++] = (char *)envv("PLAN");
	args[n++] = "--state-dir";
	args[n++] = (char *)path("state");
	for (const char *a = first; a && n < max - 1; a = va_arg(ap, const char *))
		args[n++] = (char *)a;
	args[n] = NULL;
	return n;
}

/* migrate -p PLAN --state-dir DIR/state ARGS..., killed after timeout_ms. */
static void mg(result *r, int64_t timeout_ms, const char *first, ...)
{
	char *args[32];
	va_list ap;
	va_start(ap, first);
	build_args(args, 32, first, ap);
	va_end(ap);
	run_argv(r, args, timeout_ms);
}

/* The same in the background, stdout to DIR/run.out and stderr to DIR/run.err. */
static pid_t mg_bg(const char *first, ...)
{
	char *args[32];
	va_list ap;
	va_start(ap, first);
	build_args(args, 32, first, ap);
	va_end(ap);
	int out = open(path("run.out"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(path("run.err"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(out >= 0 && err >= 0);
	pid_t pid = tu_spawn_fds(args, -1, out, err);
	close(out);
	close(err);
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	return pid;
}

/* Waits for pid until the deadline; its exit status (128 + signal if killed) or -1. */
static int wait_exit(pid_t pid, int64_t timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	for (;;) {
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		cr_assert_geq(w, 0, "waitpid: %s", strerror(errno));
		if (tu_now_ms() >= end)
			return -1;
		sleep_ms(10);
	}
}

static bool alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

static char *slurp(const char *file)
{
	FILE *f = fopen(file, "r");
	cr_assert_not_null(f, "%s: %s", file, strerror(errno));
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void read_env(void)
{
	FILE *f = fopen(path("sandbox.env"), "r");
	cr_assert_not_null(f, "%s: %s", path("sandbox.env"), strerror(errno));
	char line[512];
	nenv = 0;
	while (fgets(line, sizeof(line), f) && nenv < 32) {
		char *eq = strchr(line, '=');
		if (line[0] == '#' || !eq)
			continue;
		*eq = '\0';
		char *v = eq + 1;
		v[strcspn(v, "\n")] = '\0';
		size_t n = strlen(v);
		if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
			v[n - 1] = '\0';
			v++;
		}
		snprintf(env[nenv].key, sizeof(env[nenv].key), "%.31s", line);
		snprintf(env[nenv].val, sizeof(env[nenv].val), "%.255s", v);
		nenv++;
	}
	fclose(f);
}

static void read_pids(void)
{
	FILE *f = fopen(path("sandbox.pids"), "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f) && nspids < 16) {
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		line[strcspn(line, "\n")] = '\0';
		spids[nspids].pid = atol(line);
		snprintf(spids[nspids].token, sizeof(spids[nspids].token), "%s", sp + 1);
		nspids++;
	}
	fclose(f);
}

/* pid is alive and its command line still holds token (so a reused pid is never hit) */
static bool ours(long pid, const char *token)
{
	char file[64], cmd[4096];
	snprintf(file, sizeof(file), "/proc/%ld/cmdline", pid);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return false; /* a zombie has an empty command line */
	for (ssize_t i = 0; i < n; i++)
		if (!cmd[i])
			cmd[i] = ' ';
	cmd[n] = '\0';
	return strstr(cmd, token) != NULL;
}

/*
 * Starts the sandbox; with from/to, rewrites that (unique) text of DIR/plan.yaml
 * into a variant of the demo plan.
 */
static void up(const char *from, const char *to)
{
	static result r;
	sandbox_up = true; /* from here on, teardown calls down whatever happens */
	sandbox(&r, 45000, "up", NULL, NULL);
	read_pids();
	cr_assert_eq(r.status, 0, "sandbox.sh up: %d\n%s\n%s", r.status, r.out, r.err);
	read_env();
	if (from) {
		char *text = slurp(envv("PLAN"));
		char *at = strstr(text, from);
		cr_assert(at && !strstr(at + 1, from), "%s is not once in the plan", from);
		FILE *f = fopen(envv("PLAN"), "w");
		cr_assert_not_null(f);
		fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
		cr_assert_eq(fclose(f), 0);
	}
	/* MG_TEST_STATE_BACKEND=kubernetes: the state in the fixture's cluster */
	tu_state_plan(envv("PLAN"), dir);
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "ap");
	sandbox_up = false;
	bg = peer = -1;
	nenv = nspids = 0;
	/* a test killed at its timeout runs no .fini: the sandbox then ends by itself */
	setenv("SANDBOX_SECONDS", "120", 1);
	unsetenv("NO_COLOR");
}

static void teardown(void)
{
	if (bg > 0) {
		kill(bg, SIGKILL);
		waitpid(bg, NULL, 0);
		bg = -1;
	}
	if (peer > 0) {
		kill(peer, SIGKILL);
		waitpid(peer, NULL, 0);
		peer = -1;
	}
	if (sandbox_up) {
		static result r;
		if (nspids == 0)
			read_pids();
		sandbox(&r, 15000, "down", NULL, NULL);
		for (size_t i = 0; i < nspids; i++)
			if (ours(spids[i].pid, spids[i].token))
				kill((pid_t)spids[i].pid, SIGKILL);
		sandbox_up = false;
	}
	tu_kubeapi_stop(&kapi);
	tu_state_stop();
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

/* One runtime API command, the whole answer (HAProxy closes after it). */
static void hap(char *buf, size_t size, const char *cmd)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	const char *sock = envv("ADMIN_SOCK");
	cr_assert_lt(strlen(sock), sizeof(a.sun_path), "%s is too long for sun_path", sock);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s: %s", sock,
	             strerror(errno));
	char line[256];
	snprintf(line, sizeof(line), "%s\n", cmd);
	cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	size_t n = 0;
	int64_t end = tu_now_ms() + 2000;
	while (n < size - 1 && tu_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t got = read(fd, buf + n, size - 1 - n);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	buf[n] = '\0';
}

/* The weight HAProxy gives web/server now: "get weight" answers "<cur> (initial <init>)". */
static int weight(const char *server)
{
	char cmd[64], ans[256];
	snprintf(cmd, sizeof(cmd), "get weight web/%s", server);
	hap(ans, sizeof(ans), cmd);
	char *end;
	long w = strtol(ans, &end, 10);
	cr_assert(end != ans && !strncmp(end, " (initial", 9), "%s: %s", cmd, ans);
	return (int)w;
}

static json_t *parse(const char *text, const char *what)
{
	json_error_t e;
	json_t *d = json_loads(text, 0, &e);
	cr_assert_not_null(d, "%s is not JSON (%s): %s", what, e.text, text);
	return d;
}

/* o.a.b.c: objects only; NULL when a member is missing */
static json_t *jget(json_t *o, const char *dotted)
{
	char key[64];
	const char *p = dotted;
	while (o && *p) {
		size_t n = strcspn(p, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, p);
		/* a number picks from an array: "judge.interval.0" */
		o = json_is_array(o) ? json_array_get(o, (size_t)atoi(key))
		                     : json_object_get(o, key);
		p += n + (p[n] == '.');
	}
	return o;
}

static const char *jstr(json_t *o, const char *dotted)
{
	const char *s = json_string_value(jget(o, dotted));
	return s ? s : "(none)";
}

static double jnum(json_t *o, const char *dotted)
{
	json_t *v = jget(o, dotted);
	cr_assert(json_is_number(v), "%s is not a number", dotted);
	return json_number_value(v);
}

/* The recorded state (status --offline): the step index (-1 before the first) and phase. */
static int state(char *phase, size_t size)
{
	static result r;
	mg(&r, 10000, "status", "-o", "json", "--offline", NULL);
	cr_assert_eq(r.status, 0, "status: %s\n%s", r.out, r.err);
	json_t *d = parse(r.out, "status -o json");
	json_t *idx = jget(d, "state.step.index");
	int i = json_is_integer(idx) ? (int)json_integer_value(idx) : -1;
	if (phase)
		snprintf(phase, size, "%s", jstr(d, "state.phase"));
	json_decref(d);
	return i;
}

/* Waits until the recorded step index is at least idx; the index then. */
static int wait_step(int idx, int64_t timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	for (;;) {
		int i = state(NULL, 0);
		if (i >= idx)
			return i;
		cr_assert(bg <= 0 || alive(bg), "the autopilot exited early: %s",
		          slurp(path("run.err")));
		cr_assert_lt(tu_now_ms(), end, "step index %d not reached in %lld ms (at %d)", idx,
		             (long long)timeout_ms, i);
		sleep_ms(100);
	}
}

/* migrate history -o json: the records, oldest first. */
static json_t *history(void)
{
	static result r;
	mg(&r, 10000, "history", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "history: %s\n%s", r.out, r.err);
	json_t *d = parse(r.out, "history -o json");
	json_t *recs = json_incref(json_object_get(d, "records"));
	json_decref(d);
	cr_assert(json_is_array(recs));
	return recs;
}

static bool is(json_t *rec, const char *command, const char *action)
{
	return !strcmp(jstr(rec, "command"), command) && !strcmp(jstr(rec, "action"), action);
}

/* The check called name in a gate record's evidence. */
static json_t *check_of(json_t *gate, const char *name)
{
	json_t *checks = jget(gate, "evidence.checks"), *k;
	size_t i;
	json_array_foreach(checks, i, k) if (!strcmp(jstr(k, "name"), name)) return k;
	cr_assert_fail("no check %s in the gate record", name);
	return NULL;
}

/* The background run's JSON document, once it has exited. */
static json_t *bg_doc(void)
{
	return parse(slurp(path("run.out")), "run -o json");
}

TestSuite(autopilot, .init = setup, .fini = teardown, .timeout = 60);

Test(autopilot, healthy_cluster_reaches_100_percent)
{
	up(NULL, NULL);
	static result r;
	mg(&r, 50000, "run", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "run: %d\n%s\n%s", r.status, r.out, r.err);
	json_t *d = parse(r.out, "run -o json");
	cr_assert_str_eq(jstr(d, "outcome"), "complete");
	cr_assert_str_eq(jstr(d, "phase"), "complete");
	cr_assert_eq(jnum(d, "step"), 4);
	cr_assert_float_eq(jnum(d, "k8s_percent"), 100, 0.01);
	json_decref(d);

	cr_assert_gt(weight("k8s1"), 0);
	cr_assert_eq(weight("vm1"), 0);
	cr_assert_eq(weight("vm2"), 0);

	/* the first step needs no gate (nothing on the cluster yet); each one after it does */
	json_t *recs = history(), *rec;
	size_t i;
	int advances = 0;
	bool seen[4] = {false};
	json_array_foreach(recs, i, rec)
	{
		if (!is(rec, "run", "gate"))
			continue;
		cr_assert_str_neq(jstr(rec, "after.outcome"), "fail", "record %zu", i);
		if (strcmp(jstr(rec, "after.decision"), "advance"))
			continue;
		cr_assert_str_eq(jstr(rec, "after.outcome"), "pass");
		int from = (int)jnum(rec, "before.step");
		cr_assert(from >= 1 && from <= 3 && !seen[from], "advance from step %d", from);
		seen[from] = true;
		advances++;
		json_t *next = json_array_get(recs, i + 1);
		cr_assert(is(next, "run", "intent"), "record %zu is not the step's intent", i + 1);
		cr_assert_eq(jnum(next, "after.step"), from + 1);
	}
	cr_assert_eq(advances, 3);
	/* and it says why it ended */
	json_t *last = json_array_get(recs, json_array_size(recs) - 1);
	cr_assert(is(last, "run", "end"), "the last record is %s/%s", jstr(last, "command"),
	          jstr(last, "action"));
	cr_assert_str_eq(jstr(last, "evidence.outcome"), "complete");
	json_decref(recs);
}

Test(autopilot, errors_at_25_percent_roll_back_with_the_values_in_the_journal)
{
	/* a longer bake, so the faulty step cannot pass on a lucky run of good requests */
	up("bake: 6s", "bake: 10s");
	static result r;
	mg(&r, 30000, "run", "--until", "25", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "run --until 25: %d\n%s\n%s", r.status, r.out, r.err);
	json_t *d = parse(r.out, "run -o json");
	cr_assert_str_eq(jstr(d, "outcome"), "until-reached");
	cr_assert_eq(jnum(d, "step"), 2);
	json_decref(d);
	cr_assert_gt(weight("k8s1"), 0);

	/* five times the demo plan's 5% */
	sandbox(&r, 10000, "fault", "k8s1", "error_rate=0.25");
	cr_assert_eq(r.status, 0, "fault: %s\n%s", r.out, r.err);

	mg(&r, 30000, "run", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "run: %d\n%s\n%s", r.status, r.out, r.err);
	d = parse(r.out, "run -o json");
	cr_assert_str_eq(jstr(d, "outcome"), "rolled-back");
	cr_assert_float_eq(jnum(d, "k8s_percent"), 0, 0.01);
	json_decref(d);

	cr_assert_eq(weight("k8s1"), 0);
	cr_assert_gt(weight("vm1"), 0);
	cr_assert_gt(weight("vm2"), 0);

	json_t *recs = history(), *rec, *gate = NULL;
	size_t i, at = 0;
	json_array_foreach(recs, i, rec) if (is(rec, "run", "gate"))
	{
		gate = rec;
		at = i;
	}
	cr_assert_not_null(gate);
	cr_assert_str_eq(jstr(gate, "after.decision"), "rollback");
	cr_assert_str_eq(jstr(gate, "after.outcome"), "fail");
	cr_assert_eq(jnum(gate, "before.step"), 2);
	json_t *k = check_of(gate, "errors");
	cr_assert_str_eq(jstr(k, "outcome"), "fail");
	cr_assert_gt(jnum(k, "value"), 0.05, "errors value %g", jnum(k, "value"));
	cr_assert_float_eq(jnum(k, "threshold"), 0.05, 1e-9);
	/* the numbers the verdict stands on: shown above 5% with 95% confidence */
	cr_assert_gt(jnum(k, "judge.interval.0"), 0.05);
	cr_assert_gt(jnum(k, "judge.counts.errors"), 0);
	cr_assert_gt(jnum(k, "judge.counts.requests"), jnum(k, "judge.counts.errors"));
	cr_assert_float_eq(jnum(k, "judge.confidence"), 0.95, 1e-9);
	/* and the rollback it decided, read back at 0% */
	json_t *res = json_array_get(recs, at + 2);
	cr_assert(is(json_array_get(recs, at + 1), "run", "intent"));
	cr_assert(is(res, "run", "result"));
	cr_assert_float_eq(jnum(res, "after.k8s_percent"), 0, 0.01);
	cr_assert_float_eq(jnum(res, "evidence.read_back.k8s_percent"), 0, 0.01);
	json_decref(recs);
}

Test(autopilot, prometheus_gone_is_inconclusive_and_never_advances)
{
	/* 3 x bake of inconclusive pauses: 12 s */
	up("bake: 6s", "bake: 4s");
	long prom = atol(envv("PROM_PID"));
	cr_assert_gt(prom, 0);
	bg = mg_bg("run", "-o", "json", NULL);
	int idx = wait_step(0, 10000);
	cr_assert_eq(kill((pid_t)prom, SIGKILL), 0, "kill prometheus: %s", strerror(errno));
	int64_t killed = tu_now_ms();
	while (ours(prom, "--storage.tsdb.path=")) {
		cr_assert_lt(tu_now_ms() - killed, 5000, "prometheus is still there");
		sleep_ms(20);
	}

	int code = wait_exit(bg, 30000);
	int64_t took = tu_now_ms() - killed;
	cr_assert_eq(code, 4, "run: %d\n%s", code, slurp(path("run.err")));
	bg = -1;
	cr_assert_geq(took, 3 * 4000 - 2000, "paused after %lld ms", (long long)took);
	json_t *d = bg_doc();
	cr_assert_str_eq(jstr(d, "outcome"), "paused");
	cr_assert_str_eq(jstr(d, "phase"), "paused");
	cr_assert_eq(jnum(d, "step"), idx + 1);
	json_decref(d);

	static result r;
	mg(&r, 10000, "status", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "status: %s\n%s", r.out, r.err);
	d = parse(r.out, "status -o json");
	cr_assert_str_eq(jstr(d, "state.phase"), "paused");
	cr_assert_eq(jnum(d, "state.step.index"), idx);
	cr_assert(strstr(jstr(d, "state.pause_reason"), "inconclusive"), "%s",
	          jstr(d, "state.pause_reason"));
	json_decref(d);

	json_t *recs = history(), *rec, *gate = NULL;
	size_t i;
	json_array_foreach(recs, i, rec)
	{
		cr_assert(!is(rec, "run", "gate") || strcmp(jstr(rec, "after.decision"), "advance"),
		          "record %zu advanced", i);
		if (is(rec, "run", "gate"))
			gate = rec;
	}
	cr_assert_not_null(gate);
	cr_assert_str_eq(jstr(gate, "after.decision"), "pause");
	cr_assert_str_eq(jstr(gate, "after.outcome"), "inconclusive");
	size_t n = json_array_size(recs);
	cr_assert(is(json_array_get(recs, n - 2), "run", "pause"));
	json_t *end = json_array_get(recs, n - 1);
	cr_assert(is(end, "run", "end"), "the run says why it ended");
	cr_assert_str_eq(jstr(end, "evidence.outcome"), "paused");
	cr_assert_eq(jnum(end, "evidence.exit_code"), 4);
	cr_assert(strstr(jstr(end, "reason"), "inconclusive"), "%s", jstr(end, "reason"));
	json_decref(recs);
}

Test(autopilot, rollback_from_another_process_stops_the_autopilot)
{
	up(NULL, NULL);
	bg = mg_bg("run", "-o", "json", NULL);
	wait_step(0, 10000);
	cr_assert_gt(weight("k8s1"), 0);

	static result r;
	mg(&r, 10000, "rollback", "--reason", "x", NULL);
	int64_t done = tu_now_ms();
	cr_assert_eq(r.status, 0, "rollback: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert_leq(r.ms, 2000, "rollback took %lld ms", (long long)r.ms);
	int code = wait_exit(bg, 1000 - (tu_now_ms() - done));
	cr_assert_eq(code, 143, "run: %d, 1 s after the rollback\n%s", code,
	             slurp(path("run.err")));
	bg = -1;
	json_t *d = bg_doc();
	cr_assert_str_eq(jstr(d, "outcome"), "stopped");
	json_decref(d);

	cr_assert_eq(weight("k8s1"), 0);
	cr_assert_gt(weight("vm1"), 0);
	cr_assert_gt(weight("vm2"), 0);

	/* the run's stop, then the rollback's result (the balancer first: no intent) */
	json_t *recs = history(), *rec;
	size_t i, stop = 0, intent = 0, res = 0;
	json_array_foreach(recs, i, rec)
	{
		if (is(rec, "run", "stop")) {
			cr_assert_str_eq(jstr(rec, "reason"), "stopped by SIGTERM");
			stop = i + 1;
		} else if (is(rec, "rollback", "intent")) {
			intent = i + 1;
		} else if (is(rec, "rollback", "result")) {
			cr_assert_str_eq(jstr(rec, "reason"), "x");
			cr_assert_float_eq(jnum(rec, "after.k8s_percent"), 0, 0.01);
			res = i + 1;
		}
	}
	cr_assert(stop && !intent && res, "stop %zu, intent %zu, result %zu", stop, intent, res);
	cr_assert(stop < res, "stop %zu, result %zu", stop, res);
	json_decref(recs);
}

Test(autopilot, pause_holds_a_running_autopilot_and_resume_finishes_it)
{
	/* a short bake, so that the hold below outlasts it */
	up("bake: 6s", "bake: 2s");
	bg = mg_bg("run", "-o", "json", NULL);
	wait_step(0, 10000);

	static result r;
	mg(&r, 10000, "pause", "--reason", "t", NULL);
	cr_assert_eq(r.status, 0, "pause: %d\n%s\n%s", r.status, r.out, r.err);
	char phase[32];
	int idx = state(phase, sizeof(phase));
	cr_assert_str_eq(phase, "paused");
	int w = weight("k8s1");
	cr_assert_gt(w, 0);
	/* twice the bake and more: unpaused, it would have stepped by now */
	int64_t end = tu_now_ms() + 4500;
	while (tu_now_ms() < end) {
		cr_assert(alive(bg), "the autopilot exited while paused: %s",
		          slurp(path("run.err")));
		cr_assert_eq(state(phase, sizeof(phase)), idx);
		cr_assert_str_eq(phase, "paused");
		sleep_ms(250);
	}
	cr_assert_eq(weight("k8s1"), w);

	mg(&r, 10000, "step", NULL);
	cr_assert_eq(r.status, 3, "step while paused: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert_eq(weight("k8s1"), w);

	mg(&r, 10000, "resume", "--reason", "looked at the graphs", NULL);
	cr_assert_eq(r.status, 0, "resume: %d\n%s\n%s", r.status, r.out, r.err);
	state(phase, sizeof(phase));
	cr_assert_str_eq(phase, "shifting");

	int code = wait_exit(bg, 40000);
	cr_assert_eq(code, 0, "run: %d\n%s", code, slurp(path("run.err")));
	bg = -1;
	json_t *d = bg_doc();
	cr_assert_str_eq(jstr(d, "outcome"), "complete");
	json_decref(d);
	cr_assert_gt(weight("k8s1"), 0);
	cr_assert_eq(weight("vm1"), 0);
	cr_assert_eq(weight("vm2"), 0);

	/* nothing advanced between the pause and the resume */
	json_t *recs = history(), *rec;
	size_t i, paused = 0, resumed = 0;
	json_array_foreach(recs, i, rec)
	{
		if (is(rec, "run", "pause"))
			paused = i + 1;
		else if (is(rec, "run", "resume")) {
			resumed = i + 1;
			/* the operator's reason reaches the journal through the autopilot */
			const char *why = jstr(rec, "reason");
			cr_assert(why && !strncmp(why, "by ", 3) &&
			              strstr(why, ": looked at the graphs"),
			          "%s", why ? why : "(null)");
		} else if (paused && !resumed)
			cr_assert(!is(rec, "run", "intent"), "record %zu moved while paused", i);
	}
	cr_assert(paused && resumed && paused < resumed, "pause %zu, resume %zu", paused, resumed);
	json_decref(recs);
}

Test(autopilot, run_while_paused_without_an_autopilot_is_refused)
{
	up(NULL, NULL);
	static result r;
	mg(&r, 10000, "step", NULL);
	cr_assert_eq(r.status, 0, "step: %d\n%s\n%s", r.status, r.out, r.err);
	int w = weight("k8s1");
	cr_assert_gt(w, 0);
	mg(&r, 10000, "pause", "--reason", "t", NULL);
	cr_assert_eq(r.status, 0, "pause: %d\n%s\n%s", r.status, r.out, r.err);

	mg(&r, 10000, "run", NULL);
	cr_assert_eq(r.status, 3, "run: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, "migrate resume"), "%s", r.err);
	cr_assert_eq(weight("k8s1"), w);
	char phase[32];
	cr_assert_eq(state(phase, sizeof(phase)), 0);
	cr_assert_str_eq(phase, "paused");

	json_t *recs = history(), *rec;
	size_t i;
	json_array_foreach(recs, i, rec) cr_assert_str_neq(jstr(rec, "command"), "run");
	json_decref(recs);
}

Test(autopilot, step_refused_by_the_gates_returns_them_in_json)
{
	up("bake: 6s", "bake: 2s");
	static result r;
	mg(&r, 10000, "step", NULL);
	cr_assert_eq(r.status, 0, "first step: %d\n%s\n%s", r.status, r.out, r.err);
	int w = weight("k8s1");
	cr_assert_gt(w, 0);
	sandbox(&r, 10000, "fault", "k8s1", "error_rate=1");
	cr_assert_eq(r.status, 0, "fault: %s\n%s", r.out, r.err);

	/* exit 4 while the step bakes or the failing requests are too few to judge */
	int64_t end = tu_now_ms() + 20000;
	do {
		sleep_ms(500);
		mg(&r, 10000, "step", "-o", "json", NULL);
	} while (r.status == 4 && tu_now_ms() < end);
	cr_assert_eq(r.status, 1, "step: %d\n%s\n%s", r.status, r.out, r.err);
	json_t *d = parse(r.out, "step -o json");
	cr_assert(json_is_false(json_object_get(d, "ok")));
	cr_assert(strstr(jstr(d, "error.message"), "the gates fail"), "%s", r.out);
	/* the same evaluation the text output and the journal show, every check in it */
	cr_assert_str_eq(jstr(d, "gates.outcome"), "fail", "%s", r.out);
	json_t *checks = jget(d, "gates.checks");
	cr_assert_geq(json_array_size(checks), 4, "%s", r.out);
	json_t *errors = NULL, *k;
	size_t i;
	json_array_foreach(checks, i, k) if (!strcmp(jstr(k, "name"), "errors")) errors = k;
	cr_assert_not_null(errors, "%s", r.out);
	cr_assert_str_eq(jstr(errors, "outcome"), "fail");
	cr_assert_gt(jnum(errors, "value"), 0.01);
	json_decref(d);
	cr_assert_eq(weight("k8s1"), w, "a refused step moved traffic");
}

/*
 * The balancer's admin socket goes away while the autopilot bakes a step: the read before the
 * next step fails, the run exits 1, and the journal says why it ended.
 */
Test(autopilot, an_unreachable_balancer_ends_the_run_with_a_record)
{
	up(NULL, NULL);
	bg = mg_bg("run", NULL);
	wait_step(0, 10000);
	char moved[256];
	snprintf(moved, sizeof(moved), "%s.gone", envv("ADMIN_SOCK"));
	cr_assert_eq(rename(envv("ADMIN_SOCK"), moved), 0, "%s", strerror(errno));
	int code = wait_exit(bg, 30000);
	bg = -1;
	rename(moved, envv("ADMIN_SOCK"));
	cr_assert_eq(code, 1, "run: %d\n%s", code, slurp(path("run.err")));
	const char *err = slurp(path("run.err"));
	cr_assert(strstr(err, "admin.sock"), "%s", err);

	json_t *recs = history();
	json_t *last = json_array_get(recs, json_array_size(recs) - 1);
	cr_assert(is(last, "run", "end"), "the last record is %s/%s", jstr(last, "command"),
	          jstr(last, "action"));
	cr_assert_str_eq(jstr(last, "evidence.outcome"), "failed");
	cr_assert_eq(jnum(last, "evidence.exit_code"), 1);
	cr_assert(strstr(jstr(last, "reason"), "admin.sock"), "%s", jstr(last, "reason"));
	json_decref(recs);
}

/*
 * The autopilot's first step moves the balancer, and then state.json cannot be written
 * (made immutable between the intent and the result): `run` ends with exit 5, the
 * read-back and why, never a bare I/O error.
 */
Test(autopilot, a_move_that_cannot_be_recorded_ends_the_run_with_exit_5_and_the_read_back)
{
	tu_state_local_only("makes state.json immutable");
	up(NULL, NULL);
	char sock[300], state_file[300];
	snprintf(sock, sizeof(sock), "socket: \"%s\"", envv("ADMIN_SOCK"));
	snprintf(state_file, sizeof(state_file), "%s", path("state/demo/state.json"));
	tu_edit_file(envv("PLAN"), sock, tu_at("socket: \"%s\"", path("relay.sock")));
	tu_relay rl;
	tu_relay_start(&rl, path("relay.sock"), envv("ADMIN_SOCK"), state_file, 0);
	static result r;
	mg(&r, 30000, "run", "-o", "json", NULL);
	int hooked = rl.hooked;
	tu_set_immutable(state_file, false);
	tu_relay_stop(&rl);
	if (hooked < 0)
		cr_skip_test("state.json cannot be made immutable here");
	cr_assert_eq(hooked, 1, "run set weights: %d\n%s", r.status, r.err);
	cr_assert_eq(r.status, 5, "run: %d\n%s\n%s", r.status, r.out, r.err);
	json_t *d = parse(r.out, "run -o json");
	cr_assert(json_is_false(jget(d, "ok")));
	cr_assert_eq(jnum(d, "exit_code"), 5);
	cr_assert_gt(jnum(d, "read_back.k8s_percent"), 0, "%s", r.out);
	cr_assert(strstr(jstr(d, "record_error"), "state.json"), "%s", r.out);
	cr_assert_str_eq(jstr(d, "error.kind"), "not recorded");
	json_decref(d);
	cr_assert(strstr(r.err, "but the record could not be written: "), "%s", r.err);
	cr_assert_gt(weight("k8s1"), 0, "the balancer has the first step");
}

/*
 * A gate record inconclusive for want of data: its rate check (the traffic
 * every other RED verdict stands on) had nothing scraped since the step began.
 */
static bool no_data_only(json_t *gate)
{
	if (strcmp(jstr(gate, "after.outcome"), "inconclusive"))
		return false;
	json_t *k = check_of(gate, "rate");
	const char *d = jstr(k, "detail");
	return json_is_null(jget(k, "value")) &&
	       (!strncmp(d, "no data", 7) || strstr(d, "less than a second old"));
}

/*
 * The first evaluations after a step find no scrape of the new weights yet:
 * that is no news, and the journal does not record it as a hold. The gate
 * records of each step begin with one that has data.
 */
Test(autopilot, no_hold_for_no_data_before_the_first_scrape_of_a_step)
{
	up(NULL, NULL);
	static result r;
	mg(&r, 50000, "run", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "run: %d\n%s\n%s", r.status, r.out, r.err);
	json_t *recs = history(), *rec;
	size_t i;
	int gates = 0;
	json_array_foreach(recs, i, rec)
	{
		if (!is(rec, "run", "gate"))
			continue;
		gates++;
		char *s = json_dumps(jget(rec, "evidence.checks"), JSON_COMPACT);
		cr_assert(!no_data_only(rec), "record %zu (%s at step %g) is a no-data %s: %s", i,
		          jstr(rec, "after.outcome"), jnum(rec, "before.step"),
		          jstr(rec, "after.decision"), s);
		free(s);
	}
	cr_assert_geq(gates, 3, "one advance per step after the first");
	json_decref(recs);
}

/* The demo plan with its state in a kubeapi.py of this test, the Lease lease_s long. */
static void up_elected(int lease_s)
{
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	tu_kubeapi_start(&kapi, dir, "default");
	char to[1024];
	snprintf(to, sizeof(to),
	         "name: demo\n"
	         "state:\n"
	         "  backend: kubernetes\n"
	         "  lease: %ds\n"
	         "  kubernetes:\n"
	         "    kubeconfig: %s\n"
	         "    namespace: default\n",
	         lease_s, kapi.kubeconfig);
	up("name: demo\n", to);
}

/*
 * `state.backend: kubernetes`: the autopilot holds the plan's Lease for its
 * whole run (a 2 s lease, renewed all along), another operator's step is
 * refused naming it, and the journal and state it leaves are the cluster's.
 */
Test(autopilot, run_with_the_state_in_the_cluster_holds_the_lease_to_the_end, .timeout = 90)
{
	up_elected(2);
	bg = mg_bg("run", "-o", "json", NULL);
	wait_step(1, 30000);
	static result r;
	mg(&r, 10000, "step", NULL);
	cr_assert_eq(r.status, 3, "step while run holds the Lease: %d\n%s\n%s", r.status, r.out,
	             r.err);
	cr_assert(strstr(r.err, "running \"run\""), "%s", r.err);
	int st = wait_exit(bg, 60000);
	bg = -1;
	cr_assert_eq(st, 0, "run: %d\n%s", st, slurp(path("run.err")));
	char phase[32];
	state(phase, sizeof(phase));
	cr_assert_str_eq(phase, "complete");
	json_t *recs = history();
	json_t *last = json_array_get(recs, json_array_size(recs) - 1);
	cr_assert(is(last, "run", "end"), "the last record is %s/%s", jstr(last, "command"),
	          jstr(last, "action"));
	json_decref(recs);
	struct stat sb;
	cr_assert_neq(stat(path("state/demo"), &sb), 0, "nothing in the state directory");
}

/*
 * A `migrate run` on another host (its own UTS namespace, hostname
 * "elsewhere": the Lease names root@elsewhere) holds the plan in the cluster.
 * No signal reaches it: the rollback leaves a stop request in the cluster,
 * moves traffic all the same and says so; the run stops within one
 * slo.interval and moves no more traffic, and lets go of the lock, which the
 * rollback then takes to record itself in the cluster (nothing spooled).
 */
Test(autopilot, a_rollback_stops_a_run_of_another_host_through_the_cluster, .timeout = 90)
{
	if (system("unshare -u true >/dev/null 2>&1") != 0)
		cr_skip_test("no UTS namespace here (unshare -u): another host cannot be faked");
	up_elected(5);

	char *args[40];
	size_t n = 0;
	args[n++] = "/usr/bin/unshare";
	args[n++] = "-u";
	args[n++] = "/bin/sh";
	args[n++] = "-c";
	args[n++] = "hostname elsewhere && exec \"$@\"";
	args[n++] = "sh";
	args[n++] = getenv("MIGRATE_BIN");
	cr_assert_not_null(args[n - 1], "MIGRATE_BIN is not set");
	const char *tail[] = {"-p",  envv("PLAN"), "--state-dir", path("state"),
	                      "run", "-o",         "json",        NULL};
	for (size_t i = 0; tail[i]; i++)
		args[n++] = (char *)tail[i];
	args[n] = NULL;
	int out = open(path("run.out"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(path("run.err"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(out >= 0 && err >= 0);
	bg = tu_spawn_fds(args, -1, out, err);
	close(out);
	close(err);
	cr_assert_gt(bg, 0);
	wait_step(0, 15000);
	cr_assert_gt(weight("k8s1"), 0);

	static result r;
	mg(&r, 15000, "rollback", "--reason", "from my laptop", NULL);
	int64_t done = tu_now_ms();
	cr_assert_eq(r.status, 0, "rollback: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.out, "the autopilot running on ") && strstr(r.out, "@elsewhere, pid"),
	          "%s", r.out);
	cr_assert(strstr(r.out, "was asked to stop"), "%s", r.out);
	cr_assert_null(strstr(r.err, "spool"), "%s", r.err);
	cr_assert_null(strstr(r.err, "writes no record"), "%s", r.err);
	cr_assert_eq(weight("k8s1"), 0, "the rollback moved traffic regardless");
	/* slo.interval is 1s in the demo plan; the run looks at each 100 ms tick */
	int code = wait_exit(bg, 2000 - (tu_now_ms() - done));
	cr_assert_eq(code, 1, "run: %d, 2 s after the rollback\n%s", code, slurp(path("run.err")));
	bg = -1;
	json_t *d = bg_doc();
	cr_assert_str_eq(jstr(d, "outcome"), "stopped");
	json_decref(d);
	/* what the bake would have done next, it does not: the traffic stays on the VMs */
	sleep_ms(1500);
	cr_assert_eq(weight("k8s1"), 0);

	/* recorded in the cluster by the rollback itself: nothing waits in a spool */
	mg(&r, 15000, "pause", "--reason", "after", NULL);
	cr_assert_null(strstr(r.err, "local spool"), "%s\n%s", r.out, r.err);
	mg(&r, 15000, "status", "-o", "json", NULL);
	json_t *sd = json_loads(r.out, 0, NULL);
	cr_assert_str_eq(jstr(sd, "state.phase"), "rolled-back", "%s", r.out);
	json_decref(sd);
	json_t *recs = history(), *rec;
	size_t i, stop = 0, res = 0, moves_after = 0;
	json_array_foreach(recs, i, rec)
	{
		if (is(rec, "run", "stop")) {
			cr_assert(strstr(jstr(rec, "reason"), "a rollback by "), "%s",
			          jstr(rec, "reason"));
			cr_assert(strstr(jstr(rec, "reason"), "from my laptop"), "%s",
			          jstr(rec, "reason"));
			stop = i + 1;
		} else if (is(rec, "rollback", "result")) {
			cr_assert_float_eq(jnum(rec, "after.k8s_percent"), 0, 0.01);
			res = i + 1;
		} else if (stop && is(rec, "run", "intent")) {
			moves_after++;
		}
	}
	cr_assert(stop && res, "stop %zu, result %zu", stop, res);
	cr_assert_eq(moves_after, 0, "the run moved traffic after the stop request");
	json_decref(recs);
}

/* ---- run --leader-elect (issue 15): two autopilots, one leads ---- */

/* `run --leader-elect` in the background, output in DIR/<name>.out and DIR/<name>.err. */
static pid_t elect_bg(const char *name)
{
	char *args[32];
	size_t n = 0;
	args[n++] = getenv("MIGRATE_BIN");
	cr_assert_not_null(args[0], "MIGRATE_BIN is not set");
	const char *tail[] = {"-p",  envv("PLAN"),     "--state-dir", path("state"),
	                      "run", "--leader-elect", NULL};
	for (size_t i = 0; tail[i]; i++)
		args[n++] = (char *)tail[i];
	args[n] = NULL;
	char o[64], e[64];
	snprintf(o, sizeof(o), "%s.out", name);
	snprintf(e, sizeof(e), "%s.err", name);
	int out = open(path(o), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(path(e), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(out >= 0 && err >= 0);
	pid_t pid = tu_spawn_fds(args, -1, out, err);
	close(out);
	close(err);
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	return pid;
}

/* Kills *pid (SIGKILL) if it runs, reaps it, and forgets it. */
static void reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

static void wait_said(const char *name, const char *text, int64_t timeout_ms);

/* Two autopilots: a (bg) leads and has taken the first step, b (peer) waits as its standby. */
static void two_autopilots(pid_t *a, pid_t *b)
{
	*a = bg = elect_bg("a");
	wait_step(0, 15000);
	wait_said("a", "leading plan \"demo\"", 2000);
	*b = peer = elect_bg("b");
	wait_said("b", "standby: plan \"demo\" is led by ", 5000);
}

static char *output_of(const char *name)
{
	char o[64];
	snprintf(o, sizeof(o), "%s.out", name);
	return slurp(path(o));
}

/* Waits until DIR/<name>.out holds text; asserts it does by the deadline. */
static void wait_said(const char *name, const char *text, int64_t timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	for (;;) {
		const char *s = output_of(name); /* slurp's buffer */
		bool found = strstr(s, text) != NULL;
		if (found || tu_now_ms() >= end) {
			cr_assert(found, "%s did not say \"%s\" in %lld ms:\n%s", name, text,
			          (long long)timeout_ms, s);
			return;
		}
		sleep_ms(50);
	}
}

/*
 * HAProxy's cluster share now, from one `show servers state` (every weight of
 * one answer, so no half-read step): k8s1's weight over all of them.
 */
static double share_now(void)
{
	char ans[8192];
	hap(ans, sizeof(ans), "show servers state web");
	double k8s = 0, all = 0;
	for (char *line = strtok(ans, "\n"); line; line = strtok(NULL, "\n")) {
		/* be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
		 */
		char name[64];
		int w;
		if (sscanf(line, "%*d %*s %*d %63s %*s %*d %*d %d", name, &w) != 2)
			continue;
		all += w;
		if (!strcmp(name, "k8s1"))
			k8s += w;
	}
	return all > 0 ? 100.0 * k8s / all : -1;
}

/* The weight history: the cluster share only ever goes up while no one rolls back. */
typedef struct {
	double last;
	int samples, decreases;
	char seen[512];
} history_watch;

static void watch(history_watch *h)
{
	double s = share_now();
	if (s < 0)
		return;
	h->samples++;
	if (h->samples > 1 && s < h->last - 0.01) {
		h->decreases++;
		size_t n = strlen(h->seen);
		snprintf(h->seen + n, sizeof(h->seen) - n, " %.4g->%.4g", h->last, s);
	}
	h->last = s;
}

/* About ms of sampling the weights, every 50 ms. */
static void watch_for(history_watch *h, int ms)
{
	for (int t = 0; t < ms; t += 50) {
		watch(h);
		sleep_ms(50);
	}
}

/* Waits for the recorded phase, watching the weights meanwhile. */
static void wait_phase(const char *want, history_watch *h, int64_t timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	char phase[32] = "";
	while (tu_now_ms() < end) {
		state(phase, sizeof(phase));
		if (!strcmp(phase, want))
			return;
		watch_for(h, 200);
	}
	cr_assert_fail("phase %s not reached in %lld ms (at %s)", want, (long long)timeout_ms,
	               phase);
}

/* Waits for the recorded step index to reach idx, watching the weights meanwhile. */
static void wait_index(int idx, history_watch *h, int64_t timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int at = -1;
	while (tu_now_ms() < end) {
		at = state(NULL, 0);
		if (at >= idx)
			return;
		watch_for(h, 200);
	}
	cr_assert_fail("step index %d not reached in %lld ms (at %d)", idx, (long long)timeout_ms,
	               at);
}

/* How many journal records are run's action. */
static size_t count_of(json_t *recs, const char *action)
{
	size_t i, n = 0;
	json_t *rec;
	json_array_foreach(recs, i, rec) n += is(rec, "run", action);
	return n;
}

static json_t *last_of(json_t *recs, const char *action)
{
	json_t *found = NULL, *rec;
	size_t i;
	json_array_foreach(recs, i, rec) if (is(rec, "run", action)) found = rec;
	return found;
}

TestSuite(leader, .init = setup, .fini = teardown, .timeout = 120);

/*
 * kill -9 of the leader mid-bake: the standby takes over within the lease and
 * one slo.interval, continues from the recorded step, and finishes; the
 * journal holds one takeover from the dead leader, and HAProxy's weights only
 * ever went up (two movers would show a step back).
 */
Test(leader, the_standby_takes_over_a_killed_leader_and_finishes)
{
	up_elected(2);
	history_watch h = {0};
	pid_t a, b;
	two_autopilots(&a, &b);
	/* status names the leader and the standby */
	static result r;
	mg(&r, 10000, "status", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "standbys"), "%s", r.out);
	char bpid[32];
	snprintf(bpid, sizeof(bpid), "pid %d ", (int)b);
	cr_assert(strstr(r.out, bpid), "%s", r.out);
	/* and a real client sees the same Leases: the leader's and the standby's, by label */
	if (access("/usr/bin/kubectl", X_OK) == 0) {
		char kc[600], cache[600];
		snprintf(kc, sizeof(kc), "--kubeconfig=%s", kapi.kubeconfig);
		snprintf(cache, sizeof(cache), "--cache-dir=%s/kcache", dir);
		char *kargv[] = {"/usr/bin/kubectl",
		                 kc,
		                 cache,
		                 "get",
		                 "leases",
		                 "-l",
		                 "migrate.dev/kind=standby,migrate.dev/plan=demo",
		                 "-o",
		                 "jsonpath={.items[*].spec.holderIdentity}",
		                 NULL};
		tu_output ko = tu_capture(kargv);
		cr_assert_eq(ko.status, 0, "kubectl: %s", ko.err);
		cr_assert(strstr(ko.out, bpid), "kubectl sees: %s", ko.out);
		tu_output_free(&ko);
	}
	wait_step(1, 20000);
	for (int i = 0; i < 10; i++) {
		watch(&h);
		sleep_ms(50);
	}
	int at = state(NULL, 0);
	reap(&bg);
	int64_t killed = tu_now_ms();
	wait_said("b", "leading plan \"demo\" (took over from ", 6000);
	int64_t took = tu_now_ms() - killed;
	/* lease 2 s + slo.interval 1 s, and the polling of this test */
	cr_assert_leq(took, 3500, "took over %lld ms after the kill", (long long)took);
	cr_assert_geq(state(NULL, 0), at, "it went on from the recorded step");
	wait_phase("complete", &h, 60000);
	cr_assert_eq(h.decreases, 0, "the cluster share went down:%s", h.seen);
	cr_assert_gt(h.samples, 20);
	json_t *recs = history();
	cr_assert_eq(count_of(recs, "takeover"), 2, "the first leader's, and b's");
	json_t *t = last_of(recs, "takeover");
	cr_assert_str_eq(jstr(t, "evidence.how"), "expired");
	char apid[32];
	snprintf(apid, sizeof(apid), "pid %d ", (int)a);
	cr_assert(strstr(jstr(t, "evidence.from"), apid), "%s", jstr(t, "evidence.from"));
	cr_assert_eq((pid_t)jnum(t, "pid"), b);
	json_decref(recs);
	/* complete: b stays up (a Deployment must not crash-loop), leading nothing */
	wait_said("b", "the migration is complete", 5000);
	cr_assert(alive(b));
	kill(b, SIGTERM);
	cr_assert_eq(wait_exit(b, 5000), 143);
	peer = -1;
}

/*
 * A leader frozen (SIGSTOP) past its lease is replaced; continued, it finds
 * its Lease gone and touches the balancer no more: no journal record of its
 * pid after the takeover, it says so, and waits as a standby.
 */
Test(leader, a_frozen_leader_is_replaced_and_moves_nothing_when_it_wakes)
{
	up_elected(2);
	history_watch h = {0};
	pid_t a, b;
	two_autopilots(&a, &b);
	kill(a, SIGSTOP);
	int64_t stopped = tu_now_ms();
	wait_said("b", "leading plan \"demo\" (took over from ", 6000);
	cr_assert_leq(tu_now_ms() - stopped, 3500);
	for (int i = 0; i < 20; i++) {
		watch(&h);
		sleep_ms(50);
	}
	kill(a, SIGCONT);
	wait_said("a", "no longer the leader", 5000);
	/* b goes on to the next step (and a, awake, moves nothing meanwhile) */
	wait_index(state(NULL, 0) + 1, &h, 30000);
	cr_assert_eq(h.decreases, 0, "the cluster share went down:%s", h.seen);
	json_t *recs = history(), *rec;
	size_t i, took = 0, after = 0;
	json_array_foreach(recs, i, rec)
	{
		if (is(rec, "run", "takeover") && (pid_t)jnum(rec, "pid") == b)
			took = i + 1;
		else if (took && (pid_t)jnum(rec, "pid") == a)
			after++;
	}
	cr_assert(took, "no takeover by b");
	cr_assert_eq(after, 0, "the old leader wrote %zu records after the takeover", after);
	json_decref(recs);
	cr_assert(alive(a), "a waits as a standby: %s", output_of("a"));
	reap(&bg);
	reap(&peer);
}

/* SIGTERM to the leader: it releases the Lease and the standby leads within 2 s. */
Test(leader, sigterm_hands_the_lease_over_at_once)
{
	up_elected(15); /* a lease that would take 15 s to run out: the hand-over must not */
	pid_t a, b;
	two_autopilots(&a, &b);
	kill(a, SIGTERM);
	int64_t sent = tu_now_ms();
	cr_assert_eq(wait_exit(a, 5000), 143, "%s", output_of("a"));
	bg = -1;
	wait_said("b", "leading plan \"demo\" (handed over by ", 5000);
	int64_t took = tu_now_ms() - sent;
	cr_assert_lt(took, 2000, "took over %lld ms after SIGTERM", (long long)took);
	json_t *recs = history();
	json_t *ho = last_of(recs, "handover");
	cr_assert_not_null(ho, "no handover record");
	cr_assert((pid_t)jnum(ho, "pid") == a);
	cr_assert(strstr(jstr(ho, "reason"), "SIGTERM"), "%s", jstr(ho, "reason"));
	cr_assert_str_eq(jstr(last_of(recs, "takeover"), "evidence.how"), "handed-over");
	json_decref(recs);
	reap(&peer);
}

/*
 * A rollback from anywhere preempts a leader-elected autopilot: traffic goes to
 * the VMs, the leader stops, the standby does not take the migration forward
 * again (the stop request halts it, then the recorded rollback keeps it
 * dormant), and a `migrate step` by an operator re-arms it.
 */
Test(leader, a_rollback_halts_leader_and_standby_until_an_operator_steps)
{
	up_elected(2);
	pid_t a, b;
	two_autopilots(&a, &b);
	/* from a laptop: another host (its own UTS namespace), which no signal of its reaches */
	if (system("unshare -u true >/dev/null 2>&1") != 0)
		cr_skip_test("no UTS namespace here (unshare -u): another host cannot be faked");
	static result r;
	char *args[] = {"/usr/bin/unshare",
	                "-u",
	                "/bin/sh",
	                "-c",
	                "hostname laptop && exec \"$@\"",
	                "sh",
	                getenv("MIGRATE_BIN"),
	                "-p",
	                (char *)envv("PLAN"),
	                "--state-dir",
	                (char *)path("laptop"),
	                "rollback",
	                "--reason",
	                "pager",
	                NULL};
	run_argv(&r, args, 20000);
	cr_assert_eq(r.status, 0, "rollback: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.out, "was asked to stop"), "%s", r.out);
	cr_assert_eq(weight("k8s1"), 0);
	/* twice the lease, and more than a bake: nobody moves it forward again */
	for (int i = 0; i < 40; i++) {
		cr_assert_eq(weight("k8s1"), 0, "moved forward after the rollback: b %s",
		             output_of("b"));
		sleep_ms(100);
	}
	char phase[32];
	state(phase, sizeof(phase));
	cr_assert_str_eq(phase, "rolled-back");
	cr_assert(alive(a), "a waits: %s", output_of("a"));
	cr_assert(alive(b), "b waits: %s", output_of("b"));
	wait_said("b", "rolled back", 3000);
	/* an operator takes the first step again: one of them leads it on */
	mg(&r, 20000, "step", NULL);
	cr_assert_eq(r.status, 0, "step: %d\n%s\n%s", r.status, r.out, r.err);
	wait_step(1, 20000);
	reap(&bg);
	reap(&peer);
}

/*
 * The leader cut off from the API (the server frozen past the lease): its
 * renewals fail, it stops moving traffic and says it is no longer the
 * leader; once the API answers again one of the two leads, and the cluster
 * share never went down.
 */
Test(leader, a_leader_cut_off_from_the_api_stops_and_one_leads_after)
{
	up_elected(2);
	history_watch h = {0};
	pid_t a, b;
	two_autopilots(&a, &b);
	watch(&h);
	kill(kapi.pid, SIGSTOP);
	for (int i = 0; i < 40; i++) { /* 4 s: twice the lease */
		watch(&h);
		sleep_ms(100);
	}
	kill(kapi.pid, SIGCONT);
	wait_said("a", "no longer the leader", 40000);
	cr_assert(strstr(output_of("a"), "cannot be renewed") ||
	              strstr(output_of("a"), "lost the lock"),
	          "%s", output_of("a"));
	wait_index(state(NULL, 0) + 1, &h, 40000);
	cr_assert_eq(h.decreases, 0, "the cluster share went down:%s", h.seen);
	json_t *recs = history();
	cr_assert_geq(count_of(recs, "takeover"), 2, "a first, then whoever led after the cut");
	json_decref(recs);
	reap(&bg);
	reap(&peer);
}

/*
 * `migrate pause` and `resume` reach a leader-elected autopilot through the
 * cluster; a takeover while paused stays paused (the standby does not
 * contend), and `resume` lets one of them finish.
 */
Test(leader, pause_and_resume_reach_the_leader_and_survive_a_takeover)
{
	up_elected(2);
	pid_t a, b;
	two_autopilots(&a, &b);
	static result r;
	mg(&r, 10000, "pause", "--reason", "dashboards", NULL);
	cr_assert_eq(r.status, 0, "pause: %d\n%s\n%s", r.status, r.out, r.err);
	wait_said("a", "paused: by ", 3000);
	int at = state(NULL, 0);
	/* the leader dies while paused: the standby waits for the resume, moving nothing */
	reap(&bg);
	wait_said("b", "paused (", 6000);
	sleep_ms(3000);
	cr_assert_eq(state(NULL, 0), at, "a paused migration moved: %s", output_of("b"));
	cr_assert_null(strstr(output_of("b"), "leading plan"), "%s", output_of("b"));
	mg(&r, 10000, "resume", "--reason", "looks fine", NULL);
	cr_assert_eq(r.status, 0, "resume: %d\n%s\n%s", r.status, r.out, r.err);
	wait_said("b", "leading plan \"demo\"", 5000);
	history_watch h = {0};
	wait_index(at + 1, &h, 30000);
	json_t *recs = history(), *rec;
	size_t i, pause = 0, resume = 0;
	json_array_foreach(recs, i, rec)
	{
		if (is(rec, "run", "pause") && strstr(jstr(rec, "reason"), "dashboards"))
			pause = i + 1;
		else if (is(rec, "resume", "result") || is(rec, "resume", "resume") ||
		         (!strcmp(jstr(rec, "action"), "resume") &&
		          strstr(jstr(rec, "reason"), "looks fine")))
			resume = i + 1;
	}
	cr_assert(pause && resume && pause < resume, "pause %zu, resume %zu", pause, resume);
	json_decref(recs);
	reap(&peer);
}

/* --leader-elect is for a plan whose state is in the cluster. */
Test(leader, leader_elect_needs_the_kubernetes_backend)
{
	up(NULL, NULL);
	static result r;
	mg(&r, 10000, "run", "--leader-elect", NULL);
	cr_assert_eq(r.status, 2, "%d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, "--leader-elect needs the plan's state in the cluster"), "%s",
	          r.err);
	cr_assert_eq(weight("k8s1"), 0, "nothing moved");
}

/* ---- run --metrics-addr ------------------------------------------------------------------ */

/*
 * GET path from 127.0.0.1:port over a plain socket (HTTP/1.0, so no server
 * chunks its answer): the status (0 when nothing listens), the body in body.
 */
static int http_get(int port, const char *path, char *body, size_t size)
{
	body[0] = '\0';
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return 0;
	}
	char req[1200];
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	static char ans[1 << 17];
	size_t n = 0;
	int64_t end = tu_now_ms() + 5000;
	while (n < sizeof(ans) - 1 && tu_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t got = recv(fd, ans + n, sizeof(ans) - 1 - n, 0);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	ans[n] = '\0';
	int status = 0;
	if (sscanf(ans, "HTTP/1.%*d %d ", &status) != 1)
		return -1;
	const char *b = strstr(ans, "\r\n\r\n");
	snprintf(body, size, "%s", b ? b + 4 : "");
	return status;
}

/* The value of the sample that starts a line of text with prefix, or NAN. */
static double sample_of(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, prefix, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

/* status --offline: the step index, read-back and applied shares (percent; -1: none). */
static void recorded(int *idx, double *read_back, double *applied)
{
	static result r;
	mg(&r, 10000, "status", "-o", "json", "--offline", NULL);
	cr_assert_eq(r.status, 0, "status: %s\n%s", r.out, r.err);
	json_t *d = parse(r.out, "status -o json");
	json_t *i = jget(d, "state.step.index");
	*idx = json_is_integer(i) ? (int)json_integer_value(i) : -1;
	json_t *rb = jget(d, "state.weights.read_back.k8s_percent");
	json_t *ap = jget(d, "state.weights.applied.k8s_percent");
	*read_back = json_is_number(rb) ? json_number_value(rb) : -1;
	*applied = json_is_number(ap) ? json_number_value(ap) : -1;
	json_decref(d);
}

/*
 * /metrics says what the state says (status --offline, read on both sides of
 * the scrape so that a step between them is retried), and its last tick is
 * this second's: the loop publishes as it goes. The text scraped in text.
 */
static void matches_the_state(int port, char *text, size_t size)
{
	bool compared = false;
	for (int tries = 0; tries < 10 && !compared; tries++) {
		int i1, i2;
		double rb1, rb2, ap1, ap2;
		recorded(&i1, &rb1, &ap1);
		cr_assert_eq(http_get(port, "/metrics", text, size), 200);
		recorded(&i2, &rb2, &ap2);
		if (i1 != i2 || rb1 != rb2 || ap1 != ap2) {
			sleep_ms(200); /* it moved meanwhile */
			continue;
		}
		compared = true;
		cr_assert_eq(sample_of(text, "migrate_step{plan=\"demo\"}"), i1 + 1, "%s", text);
		cr_assert_float_eq(
		    sample_of(text, "migrate_cluster_read_back_ratio{plan=\"demo\"}"), rb1 / 100,
		    1e-9, "%s", text);
		cr_assert_float_eq(sample_of(text, "migrate_cluster_applied_ratio{plan=\"demo\"}"),
		                   ap1 / 100, 1e-9, "%s", text);
		static const double steps[] = {10, 25, 50, 100};
		cr_assert_float_eq(sample_of(text, "migrate_step_cluster_ratio{plan=\"demo\"}"),
		                   steps[i1] / 100, 1e-9, "%s", text);
	}
	cr_assert(compared, "the state moved under every scrape");
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	double t = (double)now.tv_sec + now.tv_nsec / 1e9;
	double tick =
	    sample_of(text, "migrate_autopilot_last_tick_timestamp_seconds{plan=\"demo\"}");
	cr_assert(fabs(tick - t) < 2, "last tick %f, now %f", tick, t);
}

/*
 * `run --metrics-addr` against the real HAProxy and Prometheus of the sandbox:
 * while it runs, /metrics is what the state says (step, applied and read-back
 * shares), Debian's promtool accepts it, the probes answer, and the sandbox's
 * own Prometheus, told to scrape it, answers a PromQL query for migrate_step.
 * When the run ends, nothing listens there any more.
 */
Test(autopilot, metrics_addr_serves_the_state_to_a_real_prometheus, .timeout = 90)
{
	/* long enough steps for the scrapes below: the run takes 20 s and more */
	up("bake: 6s", "bake: 10s");
	int port = tu_free_port();
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	/* the sandbox's Prometheus scrapes the autopilot too (SIGHUP: it reads its config again) */
	FILE *f = fopen(path("prometheus.yml"), "a");
	cr_assert_not_null(f);
	fprintf(f, "  - job_name: migrate\n    static_configs:\n      - targets: [\"%s\"]\n", addr);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(kill((pid_t)atol(envv("PROM_PID")), SIGHUP), 0, "%s", strerror(errno));

	bg = mg_bg("run", "--until", "50", "--metrics-addr", addr, NULL);
	static char text[1 << 17], body[1 << 16];
	int64_t end = tu_now_ms() + 15000;
	for (;;) {
		cr_assert(alive(bg), "the autopilot exited: %s", slurp(path("run.err")));
		if (http_get(port, "/metrics", text, sizeof(text)) == 200 &&
		    sample_of(text, "migrate_step{plan=\"demo\"}") >= 1)
			break;
		cr_assert_lt(tu_now_ms(), end, "no migrate_step >= 1 at %s/metrics: %s", addr,
		             text);
		sleep_ms(100);
	}
	cr_assert(strstr(slurp(path("run.out")), "metrics at http://127.0.0.1:"), "%s",
	          slurp(path("run.out")));

	matches_the_state(port, text, sizeof(text));
	cr_assert_eq(sample_of(text, "migrate_phase{plan=\"demo\",phase=\"shifting\"}"), 1, "%s",
	             text);
	cr_assert_eq(sample_of(text, "migrate_role{plan=\"demo\",role=\"single\"}"), 1, "%s", text);
	double tick =
	    sample_of(text, "migrate_autopilot_last_tick_timestamp_seconds{plan=\"demo\"}");
	cr_assert(fabs(tick - (double)time(NULL)) < 5, "last tick %f, now %lld", tick,
	          (long long)time(NULL));

	/* Debian's own promtool */
	tu_write_file(path("metrics.txt"), text);
	char *argv[] = {"/bin/sh", "-c", "exec promtool check metrics < \"$0\"",
	                (char *)path("metrics.txt"), NULL};
	tu_output r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "promtool check metrics: %s%s\n%s", r.out, r.err, text);
	tu_output_free(&r);

	cr_assert_eq(http_get(port, "/healthz", body, sizeof(body)), 200, "%s", body);
	cr_assert_eq(http_get(port, "/readyz", body, sizeof(body)), 200, "%s", body);
	cr_assert_eq(http_get(port, "/nothing", body, sizeof(body)), 404, "%s", body);

	/* a real Prometheus scraped it: PromQL has migrate_step */
	char q[256];
	snprintf(q, sizeof(q), "/api/v1/query?query=migrate_step%%7Bjob%%3D%%22migrate%%22%%7D");
	int prom = atoi(strrchr(envv("PROM_URL"), ':') + 1);
	end = tu_now_ms() + 25000;
	double step = NAN;
	while (isnan(step)) {
		cr_assert(alive(bg), "the autopilot exited before Prometheus scraped it: %s",
		          slurp(path("run.err")));
		cr_assert_lt(tu_now_ms(), end, "Prometheus has no migrate_step: %s\n%s", body,
		             slurp(path("prometheus.log")));
		if (http_get(prom, q, body, sizeof(body)) == 200) {
			json_t *d = parse(body, "the query's answer");
			json_t *v = json_array_get(jget(d, "data.result"), 0);
			const char *val =
			    json_string_value(json_array_get(json_object_get(v, "value"), 1));
			const char *plan = json_string_value(jget(v, "metric.plan"));
			if (val && plan) {
				cr_assert_str_eq(plan, "demo");
				step = strtod(val, NULL);
			}
			json_decref(d);
		}
		if (isnan(step))
			sleep_ms(250);
	}
	cr_assert_geq(step, 1, "%s", body);
	/* and at the next step, what it says has followed */
	wait_step(1, 20000);
	matches_the_state(port, text, sizeof(text));
	cr_assert_geq(sample_of(text, "migrate_step{plan=\"demo\"}"), 2, "%s", text);

	int code = wait_exit(bg, 40000);
	bg = -1;
	cr_assert_eq(code, 0, "run: %d\n%s", code, slurp(path("run.err")));
	cr_assert_eq(http_get(port, "/metrics", body, sizeof(body)), 0,
	             "the server outlived the run: %s", body);
}

/*
 * A malformed address is exit 2 and a port in use exit 1, each naming the
 * address, before the state is opened or the balancer touched.
 */
Test(autopilot, metrics_addr_refused_before_any_traffic_moves)
{
	up(NULL, NULL);
	static result r;
	mg(&r, 10000, "run", "--metrics-addr", "127.0.0.1", NULL);
	cr_assert_eq(r.status, 2, "run: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, "--metrics-addr \"127.0.0.1\" has no port"), "%s", r.err);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
	mg(&r, 10000, "run", "--metrics-addr", addr, "-o", "json", NULL);
	close(fd);
	cr_assert_eq(r.status, 1, "run: %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.err, tu_at("cannot listen on %s: Address already in use", addr)), "%s",
	          r.err);
	json_t *d = parse(r.out, "run -o json");
	cr_assert(json_is_false(jget(d, "ok")));
	json_decref(d);

	cr_assert_eq(weight("k8s1"), 0, "traffic moved");
	cr_assert_eq(state(NULL, 0), -1);
	json_t *recs = history(), *rec;
	size_t i;
	json_array_foreach(recs, i, rec) cr_assert_str_neq(jstr(rec, "command"), "run");
	json_decref(recs);
}
