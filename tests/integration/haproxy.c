/*
 * The HAProxy traffic driver against a real haproxy (tests/sandbox/haproxy.sh)
 * balancing three tests/servers/upstream.py servers: vm-01, vm-02 and k8s.
 * Weights are checked three ways: what the driver reads back, what HAProxy
 * says over its own socket, and where real HTTP requests end up.
 *
 * The malformed answers a real haproxy never gives come from a fake runtime
 * API on a unix socket, served by a thread of the test.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "../testutil.h"
#include "fs.h"
#include "log.h"
#include "plan.h"
#include "traffic.h"
#include "weights.h"

#define BACKEND    "payments"
#define NUPSTREAMS 3
/*
 * Requests per step, each on its own connection so each is balanced. A
 * random balancer would need 4 standard deviations of a binomial around
 * N * share: 29 requests at 10%, 49 at 50% for N = 600. roundrobin is
 * deterministic: every cycle of sum(weights) picks gives each server its
 * weight, and only the cycle running when the weights change is off (it
 * continues from the old weights' positions), so N requests land within one
 * cycle of N * share: 20 requests at 10% (weights 9, 9, 2), 4 at 50%. The
 * check uses the smaller of the two; at 0% and 100% it is exact. 600
 * requests keep six steps over two transports to a few seconds.
 */
#define NREQ 600

static const char *const up_names[NUPSTREAMS] = {"vm-01", "vm-02", "k8s"};

typedef struct {
	pid_t pid;
	int in; /* its stdin: upstream.py exits when this closes */
	int port;
} child;

static char dir[256];
static child up[NUPSTREAMS];
static pid_t hap_pid = -1;
static int front_port, api_port;

static const char *path_in(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

/* tu_spawn_fds (no haproxy or python left behind) with stderr appended to errlog. */
static pid_t spawn(char *const argv[], int in, int out, const char *errlog)
{
	int err = open(errlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	cr_assert_geq(err, 0, "%s: %s", errlog, strerror(errno));
	pid_t pid = tu_spawn_fds(argv, in, out, err);
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	close(err);
	return pid;
}

/* Stops a child: SIGTERM, then SIGKILL if it is still there after 3 s. */
static void reap(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	int st;
	for (int i = 0; i < 300; i++) {
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = -1;
			return;
		}
		usleep(10000);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &st, 0);
	*pid = -1;
}

static void stop_upstream(int i)
{
	if (up[i].in >= 0)
		close(up[i].in);
	up[i].in = -1;
	reap(&up[i].pid);
}

/* Starts upstream i on a free port; its "ready" line will come on *out. */
static void start_upstream(int i, int *out)
{
	int pin[2], pout[2];
	cr_assert_eq(pipe2(pin, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(pout, O_CLOEXEC), 0);
	up[i].port = tu_free_port();
	char port[16], log[64];
	snprintf(port, sizeof(port), "%d", up[i].port);
	snprintf(log, sizeof(log), "%s.log", up_names[i]);
	char *argv[] = {(char *)tu_python(),
	                "tests/servers/upstream.py",
	                (char *)up_names[i],
	                "127.0.0.1",
	                port,
	                NULL};
	/* health checks that close at once make http.server print tracebacks there */
	up[i].pid = spawn(argv, pin[0], pout[1], path_in(log));
	close(pin[0]);
	close(pout[1]);
	up[i].in = pin[1];
	*out = pout[0];
}

/* Whether the upstream said "ready" within 5 s; closes fd. */
static bool upstream_ready(int fd)
{
	char buf[64] = "";
	size_t n = 0;
	int64_t end = tu_now_ms() + 5000;
	while (n < sizeof(buf) - 1 && !strchr(buf, '\n') && tu_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
	}
	close(fd);
	return !strcmp(buf, "ready\n");
}

/* The end of a log in the test's directory, for a message written before the directory goes. */
static const char *log_tail(const char *name)
{
	static char tail[256];
	char *text = NULL;
	size_t len = 0;
	if (mg_fs_read_all(&text, &len, path_in(name), NULL)) {
		snprintf(tail, sizeof(tail), "(no %s)", name);
		return tail;
	}
	while (len && text[len - 1] == '\n')
		text[--len] = '\0';
	snprintf(tail, sizeof(tail), "%s", len > 200 ? text + len - 200 : text);
	free(text);
	return tail;
}

/*
 * Starts the three upstreams at once. A port found free can be taken by
 * another process before the server binds it (other suites run alongside),
 * so a server that does not come up is tried again on another port, 3 times.
 */
static bool start_upstreams(char *why, size_t size)
{
	bool ready[NUPSTREAMS] = {false};
	for (int attempt = 0; attempt < 3; attempt++) {
		int outs[NUPSTREAMS];
		for (int i = 0; i < NUPSTREAMS; i++)
			if (!ready[i])
				start_upstream(i, &outs[i]);
		for (int i = 0; i < NUPSTREAMS; i++)
			if (!ready[i] && !(ready[i] = upstream_ready(outs[i])))
				stop_upstream(i);
	}
	for (int i = 0; i < NUPSTREAMS; i++)
		if (!ready[i]) {
			char log[64];
			snprintf(log, sizeof(log), "%s.log", up_names[i]);
			snprintf(why, size, "upstream %s did not start: %s", up_names[i],
			         log_tail(log));
			return false;
		}
	return true;
}

/* haproxy.sh on fresh ports; hap_pid stays -1 if haproxy exits or has no socket within 5 s. */
static void start_haproxy(void)
{
	unlink(path_in("admin.sock"));
	front_port = tu_free_port();
	api_port = tu_free_port();
	char fp[16], ap[16], srv[NUPSTREAMS][64];
	snprintf(fp, sizeof(fp), "%d", front_port);
	snprintf(ap, sizeof(ap), "%d", api_port);
	for (int i = 0; i < NUPSTREAMS; i++)
		snprintf(srv[i], sizeof(srv[i]), "%s=127.0.0.1:%d", up_names[i], up[i].port);
	char *argv[] = {"/bin/sh", "tests/sandbox/haproxy.sh",
	                "-d",      dir,
	                "-f",      fp,
	                "-b",      BACKEND,
	                "-a",      ap,
	                srv[0],    srv[1],
	                srv[2],    NULL};
	hap_pid = spawn(argv, -1, -1, path_in("haproxy.log"));
	int64_t end = tu_now_ms() + 5000;
	do {
		int st;
		if (waitpid(hap_pid, &st, WNOHANG) == hap_pid) {
			hap_pid = -1;
			return;
		}
		struct stat sb;
		if (stat(path_in("admin.sock"), &sb) == 0)
			return;
		usleep(10000);
	} while (tu_now_ms() < end);
	reap(&hap_pid);
}

/* One runtime API command over a unix socket, the way an operator would send it by hand. */
static char *cli(const char *sock, const char *cmd)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return NULL;
	}
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
	cr_assert_eq(write(fd, "\n", 1), 1);
	size_t n = 0, cap = 4096;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	for (;;) {
		if (cap - n < 1024)
			cr_assert_not_null(buf = realloc(buf, cap *= 2));
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* The admin socket's answer to a command that answers nothing on success. */
static void cli_ok(const char *cmd)
{
	char *r = cli(path_in("admin.sock"), cmd);
	cr_assert_not_null(r);
	for (const char *p = r; *p; p++)
		cr_assert_eq(*p, '\n', "`%s` answered \"%s\"", cmd, r);
	free(r);
}

/* HAProxy's own `get weight` for a server, independent of the driver. */
static int weight_of(const char *server)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "get weight " BACKEND "/%s", server);
	char *r = cli(path_in("admin.sock"), cmd);
	cr_assert_not_null(r);
	int w = -1, initial = -1;
	cr_assert_eq(sscanf(r, "%d (initial %d)", &w, &initial), 2, "get weight: %s", r);
	free(r);
	return w;
}

/* status and check_status of a server as `show stat` has them, "" if unknown. */
static void raw_status(const char *server, char *status, char *check, size_t size)
{
	status[0] = check[0] = '\0';
	char *r = cli(path_in("admin.sock"), "show stat " BACKEND " 4 -1");
	if (!r)
		return;
	int col_status = -1, col_check = -1;
	char *save = NULL;
	for (char *line = strtok_r(r, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *fields[64];
		int n = 0;
		for (char *p = line; n < 64; p++) {
			fields[n++] = p;
			p = strchr(p, ',');
			if (!p)
				break;
			*p = '\0';
		}
		if (!strncmp(line, "# ", 2)) {
			for (int i = 0; i < n; i++) {
				if (!strcmp(fields[i], "status"))
					col_status = i;
				if (!strcmp(fields[i], "check_status"))
					col_check = i;
			}
			continue;
		}
		if (n > col_check && col_status >= 0 && col_check >= 0 &&
		    !strcmp(fields[1], server)) {
			snprintf(status, size, "%s", fields[col_status]);
			const char *c = fields[col_check];
			snprintf(check, size, "%s", strncmp(c, "* ", 2) ? c : c + 2);
		}
	}
	free(r);
}

/* Waits (5 s at most) until HAProxy reports the server in this state after a finished check. */
static bool status_within(const char *server, const char *status, const char *check, char *why,
                          size_t size)
{
	char s[64], c[64];
	int64_t end = tu_now_ms() + 5000;
	do {
		raw_status(server, s, c, sizeof(s));
		if (!strcmp(s, status) && !strcmp(c, check))
			return true;
		usleep(20000);
	} while (tu_now_ms() < end);
	snprintf(why, size, "%s is \"%s\" (%s) after 5 s, not \"%s\" (%s)", server, s, c, status,
	         check);
	return false;
}

static void wait_status(const char *server, const char *status, const char *check)
{
	char why[256];
	cr_assert(status_within(server, status, check, why, sizeof(why)), "%s", why);
}

static void teardown(void)
{
	reap(&hap_pid);
	for (int i = 0; i < NUPSTREAMS; i++)
		stop_upstream(i);
	tu_log_capture_stop();
	curl_global_cleanup();
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

/* Criterion skips .fini when .init fails, so a fixture that cannot start cleans up itself. */
static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "haproxy");
	for (int i = 0; i < NUPSTREAMS; i++)
		up[i] = (child){-1, -1, 0};
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	tu_log_capture(MG_LOG_WARN); /* lib/ logs nothing above warnings */
	char why[512] = "";
	bool ok = start_upstreams(why, sizeof(why));
	/* a port taken between tu_free_port() and haproxy's bind: try other ports */
	for (int attempt = 0; ok && attempt < 3 && hap_pid < 0; attempt++)
		start_haproxy();
	if (ok && hap_pid < 0) {
		snprintf(why, sizeof(why), "haproxy did not start: %s", log_tail("haproxy.log"));
		ok = false;
	}
	for (int i = 0; ok && i < NUPSTREAMS; i++)
		ok = status_within(up_names[i], "UP", "L4OK", why, sizeof(why));
	if (!ok) {
		teardown();
		cr_assert_fail("%s", why);
	}
}

/*
 * A driver for the fixture's haproxy through mg_traffic_open, from a plan in
 * YAML. where is "socket: ..." or "address: ..."; extra is more haproxy keys.
 */
static mg_traffic *open_plan(const char *where, const char *backend, const char *vms,
                             const char *k8s, const char *extra)
{
	char yaml[2048];
	snprintf(yaml, sizeof(yaml),
	         "version: 1\n"
	         "name: shop\n"
	         "traffic:\n"
	         "  provider: haproxy\n"
	         "  steps: [10, 25, 50, 75, 100]\n"
	         "  bake: 1m\n"
	         "  haproxy:\n"
	         "    %s\n"
	         "    backend: %s\n"
	         "    vm_servers: [%s]\n"
	         "    k8s_servers: [%s]\n"
	         "    %s\n",
	         where, backend, vms, k8s, extra ? extra : "");
	mg_plan *plan = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load_buffer(&plan, yaml, strlen(yaml), "plan.yaml", dir, 0, &err);
	char diag[512] = "";
	if (rc && err.ndiags)
		mg_diag_format(diag, sizeof(diag), &err.diags[0]);
	cr_assert_eq(rc, 0, "plan: %s %s", err.message, diag);
	mg_error_clear(&err);
	mg_traffic *t = NULL;
	rc = mg_traffic_open(&t, mg_plan_traffic_section(plan), &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	/* the driver keeps its own copy of the configuration */
	mg_plan_free(plan);
	return t;
}

static mg_traffic *open_socket(const char *sock)
{
	char where[512];
	snprintf(where, sizeof(where), "socket: %s", sock);
	return open_plan(where, BACKEND, "vm-01, vm-02", "k8s", NULL);
}

static mg_traffic *open_admin(void)
{
	return open_socket(path_in("admin.sock"));
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
	char *buf = ud;
	size_t len = strlen(buf), add = size * n;
	if (len + add < 64) {
		memcpy(buf + len, data, add);
		buf[len + add] = '\0';
	}
	return add;
}

/* Sends n requests through the frontend, each on its own connection; counts who answered. */
static void send_requests(int n, int counts[NUPSTREAMS])
{
	CURL *c = curl_easy_init();
	cr_assert_not_null(c);
	char url[64], body[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", front_port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)body);
	memset(counts, 0, NUPSTREAMS * sizeof(*counts));
	for (int i = 0; i < n; i++) {
		body[0] = '\0';
		CURLcode cc = curl_easy_perform(c);
		cr_assert_eq(cc, CURLE_OK, "request %d: %s", i, curl_easy_strerror(cc));
		long status = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		cr_assert_eq(status, 200, "request %d: HTTP %ld", i, status);
		int k = 0;
		while (k < NUPSTREAMS && (strncmp(body, up_names[k], strlen(up_names[k])) ||
		                          body[strlen(up_names[k])] != '\n'))
			k++;
		cr_assert_lt(k, NUPSTREAMS, "request %d answered \"%s\"", i, body);
		counts[k]++;
	}
	curl_easy_cleanup(c);
}

/* The read-back state, HAProxy's own weights and real traffic all agree with the step. */
static void check_step(mg_traffic *t, double step)
{
	mg_error err = MG_ERROR_INIT;
	mg_weights w;
	cr_assert_eq(mg_weights_split(&w, step, 2, 1, 256, &err), 0);

	mg_traffic_state st;
	int rc = mg_traffic_apply(&st, t, step, false, &err);
	cr_assert_eq(rc, 0, "step %g: %s", step, err.message);
	cr_assert_leq(fabs(st.k8s_percent - step), 0.5, "step %g read back %g", step,
	              st.k8s_percent);
	cr_assert_float_eq(st.k8s_percent, w.effective_percent, 1e-9);
	cr_assert_eq(st.nservers, 3);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_str_eq(st.servers[i].name, up_names[i]);
		cr_assert_eq(st.servers[i].k8s, i == 2);
		cr_assert_float_eq(st.servers[i].weight, i == 2 ? w.k8s_weight : w.vm_weight, 0);
		cr_assert_eq(st.servers[i].health, MG_HEALTH_UP);
		cr_assert_str_eq(st.servers[i].detail, "UP");
		cr_assert_eq(weight_of(up_names[i]), i == 2 ? w.k8s_weight : w.vm_weight);
	}
	mg_traffic_state_clear(&st);

	int counts[NUPSTREAMS];
	send_requests(NREQ, counts);
	double p = w.effective_percent / 100;
	double want = NREQ * p, got = counts[2];
	double binomial = 4 * sqrt(NREQ * p * (1 - p));
	double cycle = 2 * w.vm_weight + w.k8s_weight;
	double tol = p > 0 && p < 1 ? fmin(binomial, cycle) : 0;
	cr_assert_leq(fabs(got - want), tol,
	              "step %g: %g of %d requests went to k8s, expected %g within %g", step, got,
	              NREQ, want, tol);
	/* the VMs have equal weights: one cycle apart at most, none at 100% */
	cr_assert_leq(abs(counts[0] - counts[1]), w.vm_weight, "vm-01 %d, vm-02 %d", counts[0],
	              counts[1]);
	cr_assert_eq(counts[0] + counts[1] + counts[2], NREQ);
}

static void run_steps(mg_traffic *t)
{
	static const double steps[] = {10, 25, 50, 75, 100, 0};
	for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++)
		check_step(t, steps[i]);
	cr_assert_str_empty(tu_log_text());
}

TestSuite(haproxy, .init = setup, .fini = teardown, .timeout = 60);

Test(haproxy, steps_and_rollback_over_the_admin_socket)
{
	/* haproxy.sh exec's haproxy, so the pid it records is the one this test stops */
	char *pidfile;
	cr_assert_eq(mg_fs_read_all(&pidfile, NULL, path_in("haproxy.pid"), NULL), 0);
	cr_assert_eq(atoi(pidfile), hap_pid, "haproxy.pid says %s", pidfile);
	free(pidfile);

	mg_traffic *t = open_admin();
	cr_assert_str_eq(mg_traffic_name(t), "haproxy");
	run_steps(t);
	mg_traffic_free(t);
}

Test(haproxy, steps_and_rollback_over_tcp)
{
	char where[64];
	snprintf(where, sizeof(where), "address: 127.0.0.1:%d", api_port);
	mg_traffic *t = open_plan(where, BACKEND, "vm-01, vm-02", "k8s", NULL);
	run_steps(t);
	mg_traffic_free(t);
}

static void assert_weights(int vm1, int vm2, int k8s)
{
	cr_assert_eq(weight_of("vm-01"), vm1);
	cr_assert_eq(weight_of("vm-02"), vm2);
	cr_assert_eq(weight_of("k8s"), k8s);
}

static void assert_read_fails(mg_traffic *t, int code, const char *message)
{
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	cr_assert_eq(mg_traffic_read(&st, t, &err), code, "%s", err.message);
	cr_assert_str_eq(err.message, message);
	cr_assert_null(st.servers);
	cr_assert_eq(st.nservers, 0);
}

static void assert_apply_fails(mg_traffic *t, double pct, bool force, int code, const char *message)
{
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	cr_assert_eq(mg_traffic_apply(&st, t, pct, force, &err), code, "%s", err.message);
	cr_assert_str_eq(err.message, message);
	cr_assert_null(st.servers);
}

static void apply_ok(mg_traffic *t, double pct, bool force)
{
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	cr_assert_eq(mg_traffic_apply(&st, t, pct, force, &err), 0, "%g%%: %s", pct, err.message);
	cr_assert_leq(fabs(st.k8s_percent - pct), 0.5);
	mg_traffic_state_clear(&st);
}

Test(haproxy, unknown_backend)
{
	char where[512];
	snprintf(where, sizeof(where), "socket: %s", path_in("admin.sock"));
	mg_traffic *t = open_plan(where, "nosuch", "vm-01, vm-02", "k8s", NULL);
	const char *msg = "HAProxy has no backend \"nosuch\" (it answered \"No such proxy.\"); "
	                  "traffic.haproxy.backend and haproxy.cfg disagree";
	assert_read_fails(t, MG_ENOTFOUND, msg);
	assert_apply_fails(t, 10, false, MG_ENOTFOUND, msg);
	mg_traffic_free(t);

	/* the frontend's name is a proxy too, but not a backend */
	t = open_plan(where, "fe", "vm-01, vm-02", "k8s", NULL);
	assert_read_fails(t, MG_ENOTFOUND,
	                  "HAProxy has no backend \"fe\" (only a frontend of that name); "
	                  "traffic.haproxy.backend and haproxy.cfg disagree");
	mg_traffic_free(t);
	assert_weights(1, 1, 1);
}

Test(haproxy, server_not_in_backend)
{
	char where[512];
	snprintf(where, sizeof(where), "socket: %s", path_in("admin.sock"));
	mg_traffic *t = open_plan(where, BACKEND, "vm-01, vm-02", "k8s, k8s-2", NULL);
	const char *msg = "server k8s-2 is not in backend payments; the plan and haproxy.cfg "
	                  "disagree";
	assert_read_fails(t, MG_ENOTFOUND, msg);
	/* mg_traffic_apply reads first, so nothing is sent */
	assert_apply_fails(t, 10, false, MG_ENOTFOUND, msg);
	assert_weights(1, 1, 1);
	mg_traffic_free(t);

	/* the driver alone sends the step, and says which server HAProxy refused */
	const char *vms[] = {"vm-01", "vm-02"}, *k8s[] = {"k8s", "k8s-2"};
	mg_plan_haproxy cfg = {.socket = path_in("admin.sock"),
	                       .backend = BACKEND,
	                       .vm_servers = vms,
	                       .nvm_servers = 2,
	                       .k8s_servers = k8s,
	                       .nk8s_servers = 2,
	                       .timeout_ms = 2000};
	void *drv;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &cfg, &err), 0, "%s", err.message);
	cr_assert_eq(mg_traffic_haproxy_ops.apply(drv, 50, &err), MG_ERROR);
	cr_assert_str_eq(
	    err.message,
	    "HAProxy refused `set weight payments/k8s-2 1`: No such server.; 3 of this "
	    "step's 4 weights were set, so run the step again or roll back");
	mg_traffic_haproxy_ops.free(drv);
	assert_weights(1, 1, 1);
}

Test(haproxy, socket_missing)
{
	const char *sock = path_in("nosuch.sock");
	mg_traffic *t = open_socket(sock);
	char msg[1024];
	snprintf(msg, sizeof(msg),
	         "cannot connect to HAProxy's runtime API at %s: No such file or directory; is "
	         "`stats socket %s level admin` in haproxy.cfg, and haproxy running?",
	         sock, sock);
	assert_read_fails(t, MG_ERROR, msg);
	assert_apply_fails(t, 10, false, MG_ERROR, msg);
	mg_traffic_free(t);
}

Test(haproxy, socket_without_a_listener)
{
	/* what haproxy leaves behind when it dies: the file, and nobody listening */
	const char *sock = path_in("stale.sock");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	mg_traffic *t = open_socket(sock);
	char msg[1024];
	snprintf(msg, sizeof(msg),
	         "cannot connect to HAProxy's runtime API at %s: Connection refused; the socket "
	         "file is there but nothing listens on it; is haproxy running with `stats socket "
	         "%s level admin`?",
	         sock, sock);
	assert_read_fails(t, MG_ERROR, msg);
	mg_traffic_free(t);
}

Test(haproxy, socket_not_permitted)
{
	const char *sock = path_in("admin.sock");
	mg_traffic *t = open_socket(sock);
	/* root may open any socket: the read runs in a child that is nobody */
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		if (geteuid() == 0 ? setgid(65534) || setuid(65534) : chmod(dir, 0))
			_exit(3);
		mg_error err = MG_ERROR_INIT;
		mg_traffic_state st;
		int rc = mg_traffic_read(&st, t, &err);
		dprintf(p[1], "%d %s", rc, err.message);
		_exit(0);
	}
	close(p[1]);
	char buf[1100] = "";
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(buf) - 1 && (r = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(p[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	chmod(dir, 0700);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	char msg[1024];
	snprintf(msg, sizeof(msg),
	         "-1 cannot connect to HAProxy's runtime API at %s: Permission denied; migrate "
	         "must run as a user that may write to the socket (see the `mode`, `user` and "
	         "`group` options of `stats socket %s` in haproxy.cfg)",
	         sock, sock);
	cr_assert_str_eq(buf, msg);
	mg_traffic_free(t);
}

Test(haproxy, socket_at_user_level_reads_but_cannot_move_traffic)
{
	mg_traffic *t = open_socket(path_in("user.sock"));
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.nservers, 3);
	cr_assert_float_eq(st.k8s_percent, 100.0 / 3, 1e-9);
	mg_traffic_state_clear(&st);
	assert_apply_fails(
	    t, 50, false, MG_ERROR,
	    "HAProxy refused `set weight payments/vm-01 1` (and 2 more): Permission "
	    "denied; this runtime API is not at admin level: give its `stats socket` "
	    "line `level admin`");
	assert_weights(1, 1, 1);
	mg_traffic_free(t);
}

Test(haproxy, tcp_connection_refused)
{
	char where[64], msg[512];
	int port = tu_free_port();
	snprintf(where, sizeof(where), "address: 127.0.0.1:%d", port);
	mg_traffic *t = open_plan(where, BACKEND, "vm-01, vm-02", "k8s", NULL);
	snprintf(msg, sizeof(msg),
	         "cannot connect to HAProxy's runtime API at 127.0.0.1:%d: Connection refused; is "
	         "haproxy running with `stats socket ipv4@127.0.0.1:%d level admin` in "
	         "haproxy.cfg?",
	         port, port);
	assert_read_fails(t, MG_ERROR, msg);
	mg_traffic_free(t);
}

Test(haproxy, tcp_api_that_never_answers_times_out)
{
	/* a listener that never accepts: connect succeeds (backlog), the answer never comes */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	socklen_t len = sizeof(sa);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	char where[64], msg[512];
	snprintf(where, sizeof(where), "address: 127.0.0.1:%d", ntohs(sa.sin_port));
	mg_traffic *t = open_plan(where, BACKEND, "vm-01, vm-02", "k8s", "timeout: 300ms");
	snprintf(msg, sizeof(msg),
	         "HAProxy's runtime API at 127.0.0.1:%d did not answer `show stat payments 6 -1` "
	         "within 300 ms (traffic.haproxy.timeout)",
	         ntohs(sa.sin_port));
	int64_t t0 = tu_now_ms();
	assert_read_fails(t, MG_ERROR, msg);
	int64_t took = tu_now_ms() - t0;
	cr_assert(took >= 290 && took < 2000, "took %lld ms", (long long)took);
	mg_traffic_free(t);
	close(fd);
}

Test(haproxy, down_cluster_server_blocks_more_traffic_but_not_rollback)
{
	mg_traffic *t = open_admin();
	apply_ok(t, 50, false);
	stop_upstream(2);
	wait_status("k8s", "DOWN", "L4CON");

	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.servers[2].health, MG_HEALTH_DOWN);
	cr_assert_str_eq(st.servers[2].detail, "DOWN (L4CON: Connection refused)");
	cr_assert_eq(st.servers[0].health, MG_HEALTH_UP);
	cr_assert_float_eq(st.k8s_percent, 50, 1e-9);
	mg_traffic_state_clear(&st);

	assert_apply_fails(
	    t, 75, false, MG_ERROR,
	    "refusing to send more traffic to the cluster: haproxy reports k8s (DOWN "
	    "(L4CON: Connection refused)) not able to take it; fix them or pass "
	    "--force");
	assert_weights(1, 1, 2);
	/* back towards the VMs is what an operator does about it */
	apply_ok(t, 0, false);
	assert_weights(1, 1, 0);
	/* and --force is theirs to use */
	apply_ok(t, 25, true);
	assert_weights(3, 3, 2);
	mg_traffic_free(t);
}

Test(haproxy, server_in_maintenance_or_draining_blocks_more_traffic)
{
	mg_traffic *t = open_admin();
	cli_ok("set server " BACKEND "/k8s state maint");
	wait_status("k8s", "MAINT", "");
	assert_apply_fails(t, 50, false, MG_ERROR,
	                   "refusing to send more traffic to the cluster: haproxy reports k8s "
	                   "(MAINT) not able to take it; fix them or pass --force");
	cli_ok("set server " BACKEND "/k8s state drain");
	wait_status("k8s", "DRAIN", "L4OK");
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.servers[2].health, MG_HEALTH_MAINT);
	cr_assert_str_eq(st.servers[2].detail, "DRAIN");
	mg_traffic_state_clear(&st);
	assert_apply_fails(t, 50, false, MG_ERROR,
	                   "refusing to send more traffic to the cluster: haproxy reports k8s "
	                   "(DRAIN) not able to take it; fix them or pass --force");
	assert_weights(1, 1, 1);
	cli_ok("set server " BACKEND "/k8s state ready");
	wait_status("k8s", "UP", "L4OK");
	apply_ok(t, 50, false);

	/* every VM in maintenance: no rollback without --force */
	cli_ok("set server " BACKEND "/vm-01 state maint; set server " BACKEND
	       "/vm-02 state maint");
	wait_status("vm-02", "MAINT", "");
	assert_apply_fails(t, 0, false, MG_ERROR,
	                   "refusing to send traffic back to the VMs: every VM server is down "
	                   "(vm-01 (MAINT), vm-02 (MAINT)); pass --force to do it anyway");
	assert_weights(1, 1, 2);
	mg_traffic_free(t);
}

Test(haproxy, read_reports_weights_set_by_hand)
{
	mg_traffic *t = open_admin();
	apply_ok(t, 50, false);
	cli_ok("set weight " BACKEND "/k8s 7; set weight " BACKEND "/vm-01 3");
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.servers[0].weight, 3, 0);
	cr_assert_float_eq(st.servers[1].weight, 1, 0);
	cr_assert_float_eq(st.servers[2].weight, 7, 0);
	cr_assert_float_eq(st.k8s_percent, 700.0 / 11, 1e-9);
	mg_traffic_state_clear(&st);

	/* every weight 0: nothing is balanced; counted as 0% with a warning */
	cli_ok("set weight " BACKEND "/k8s 0; set weight " BACKEND "/vm-01 0; set weight " BACKEND
	       "/vm-02 0");
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.k8s_percent, 0, 0);
	cr_assert_str_eq(tu_log_text(), "every server of backend payments has weight 0, so HAProxy "
	                                "sends its traffic nowhere; counting that as 0% to the "
	                                "cluster\n");
	mg_traffic_state_clear(&st);
	mg_traffic_free(t);
}

Test(haproxy, servers_the_plan_does_not_name_count_on_the_vm_side)
{
	char where[512];
	snprintf(where, sizeof(where), "socket: %s", path_in("admin.sock"));
	mg_traffic *t = open_plan(where, BACKEND, "vm-01", "k8s", NULL);
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.nservers, 2);
	cr_assert_str_eq(st.servers[0].name, "vm-01");
	cr_assert_str_eq(st.servers[1].name, "k8s");
	cr_assert_float_eq(st.k8s_percent, 100.0 / 3, 1e-9);
	mg_traffic_state_clear(&st);
	const char *warn = "backend payments also sends traffic to vm-02 (weight 1), in neither "
	                   "vm_servers nor k8s_servers; the cluster's share counts them on the "
	                   "VMs' side\n";
	cr_assert_str_eq(tu_log_text(), warn);
	/* 50% of the plan's servers is 33% of the traffic: the read-back says so */
	mg_error_clear(&err);
	cr_assert_eq(mg_traffic_apply(&st, t, 50, false, &err), MG_ERROR);
	cr_assert_str_eq(err.message,
	                 "haproxy was asked for 50% to the cluster but reads back 33.3%");
	/* the balancer did change, and the caller is told what it holds now */
	cr_assert_float_eq(st.k8s_percent, 100.0 / 3, 0.05);
	cr_assert_not_null(st.servers);
	mg_traffic_state_clear(&st);
	mg_error_clear(&err);
	assert_weights(1, 1, 1);
	mg_traffic_free(t);
}

Test(haproxy, describe_is_what_apply_sends_and_sends_nothing)
{
	const char *sock = path_in("admin.sock");
	mg_traffic *t = open_admin();
	json_t *d = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_describe(&d, t, 25, &err), 0, "%s", err.message);
	cr_assert_eq(json_array_size(d), 1);
	json_t *call = json_array_get(d, 0);
	cr_assert_eq(json_object_size(call), 3);
	cr_assert_str_eq(json_string_value(json_object_get(call, "kind")), "runtime-api");
	cr_assert_str_eq(json_string_value(json_object_get(call, "socket")), sock);
	const char *line = json_string_value(json_object_get(call, "line"));
	cr_assert_str_eq(line, "set weight payments/vm-01 3; set weight payments/vm-02 3; set "
	                       "weight payments/k8s 2");
	assert_weights(1, 1, 1);

	/* the line, sent by hand, gives what apply gives */
	cli_ok(line);
	assert_weights(3, 3, 2);
	json_decref(d);

	cr_assert_eq(mg_traffic_describe(&d, t, 101, &err), MG_EINVALID);
	cr_assert_null(d);
	cr_assert_str_eq(err.message,
	                 "cannot send 101% to the cluster: a share is from 0% to 100%");
	mg_traffic_free(t);

	char where[64];
	snprintf(where, sizeof(where), "address: 127.0.0.1:%d", api_port);
	t = open_plan(where, BACKEND, "vm-01, vm-02", "k8s", NULL);
	cr_assert_eq(mg_traffic_describe(&d, t, 100, &err), 0, "%s", err.message);
	char *s = json_dumps(d, JSON_COMPACT);
	char want[256];
	snprintf(
	    want, sizeof(want),
	    "[{\"kind\":\"runtime-api\",\"address\":\"127.0.0.1:%d\",\"line\":\"set weight payments/vm-01 0; set weight "
	    "payments/vm-02 0; set weight payments/k8s 1\"}]",
	    api_port);
	cr_assert_str_eq(s, want);
	free(s);
	json_decref(d);
	assert_weights(3, 3, 2);
	mg_traffic_free(t);
}

/*
 * A fake runtime API on a unix socket, for answers a real haproxy does not
 * give. It serves one connection per entry of replies, in order; a NULL
 * reply answers each ';'-separated command with success (an empty answer),
 * FAKE_RESET closes with the line unread (the kernel resets the connection)
 * and FAKE_BIG sends 17 MiB.
 */
#define FAKE_MAX 4
static const char FAKE_RESET[] = "(reset)", FAKE_BIG[] = "(big)";

static struct {
	int lfd;
	int stop[2];
	const char *replies[FAKE_MAX];
	size_t n;
	char got[FAKE_MAX][16384]; /* the line received on each connection */
	size_t ngot;
	pthread_t th;
	bool running;
} fake;

static bool wait_in(int fd)
{
	struct pollfd p[2] = {{fd, POLLIN, 0}, {fake.stop[0], POLLIN, 0}};
	return poll(p, 2, 5000) > 0 && !p[1].revents && p[0].revents;
}

static void *fake_main(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < fake.n; i++) {
		if (!wait_in(fake.lfd))
			break;
		int fd = accept4(fake.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		char *got = fake.got[fake.ngot++];
		if (fake.replies[i] == FAKE_RESET) {
			/* the whole line waits unread, so close() resets rather than ends */
			char peek[256];
			ssize_t r = 0;
			while (wait_in(fd) && (r = recv(fd, peek, sizeof(peek), MSG_PEEK)) > 0 &&
			       !memchr(peek, '\n', (size_t)r))
				usleep(1000);
			close(fd);
			continue;
		}
		size_t n = 0;
		while (n < sizeof(fake.got[0]) - 1 && !memchr(got, '\n', n) && wait_in(fd)) {
			ssize_t r = read(fd, got + n, sizeof(fake.got[0]) - 1 - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		got[n] = '\0';
		got[strcspn(got, "\n")] = '\0';
		if (fake.replies[i] == FAKE_BIG) {
			static char chunk[1 << 16];
			memset(chunk, 'x', sizeof(chunk));
			for (int k = 0; k < 17 * 16; k++)
				if (send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
					break;
		} else if (fake.replies[i]) {
			(void)!write(fd, fake.replies[i], strlen(fake.replies[i]));
		} else {
			for (const char *p = got; p; p = strchr(p + 1, ';'))
				(void)!write(fd, "\n", 1);
		}
		close(fd);
	}
	return NULL;
}

static void fake_start(const char *const *replies, size_t n)
{
	cr_assert_leq(n, FAKE_MAX);
	fake.n = n;
	fake.ngot = 0;
	for (size_t i = 0; i < n; i++)
		fake.replies[i] = replies[i];
	fake.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path_in("fake.sock"));
	unlink(sa.sun_path);
	cr_assert_eq(bind(fake.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fake.lfd, 8), 0);
	cr_assert_eq(pipe2(fake.stop, O_CLOEXEC), 0);
	cr_assert_eq(pthread_create(&fake.th, NULL, fake_main, NULL), 0);
	fake.running = true;
}

static void fake_stop(void)
{
	if (!fake.running)
		return;
	(void)!write(fake.stop[1], "x", 1);
	pthread_join(fake.th, NULL);
	close(fake.stop[0]);
	close(fake.stop[1]);
	close(fake.lfd);
	fake.running = false;
}

static void fake_setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "haproxy-fake");
	tu_log_capture(MG_LOG_WARN); /* lib/ logs nothing above warnings */
}

static void fake_teardown(void)
{
	fake_stop();
	tu_log_capture_stop();
	tu_tmpdir_remove(dir);
}

static mg_traffic *open_fake(const char *vms, const char *k8s)
{
	char where[512];
	snprintf(where, sizeof(where), "socket: %s", path_in("fake.sock"));
	return open_plan(where, BACKEND, vms, k8s, NULL);
}

/* A `show stat` answer with the columns the driver uses, in an order of its own. */
#define STAT_HEADER  "# pxname,svname,type,status,check_status,last_chk,bck,uweight,weight,\n"
#define STAT_BACKEND "payments,BACKEND,1,UP,,,0,3,3,\n"

TestSuite(haproxy_fake, .init = fake_setup, .fini = fake_teardown, .timeout = 60);

Test(haproxy_fake, status_words_map_to_health)
{
	const char *const replies[] = {
	    STAT_HEADER
	    "fe,FRONTEND,0,OPEN,,,,,,\n"
	    "payments,FRONTEND,0,OPEN,,,,,,\n" STAT_BACKEND
	    "payments,vm-01,2,UP 1/3,* L4CON,\"Connection refused, \"\"twice\"\"\",0,"
	    "5,1,\n"
	    "payments,vm-02,2,no check,,,0,5,5,\n"
	    "payments,k8s,2,DOWN 1/2,L7STS,HTTP status check returned code <3C>503<3E>,0,"
	    "2,2,\n"
	    "payments,spare,2,UP,L4OK,,1,100,100,\n"
	    "other,vm-01,2,UP,L4OK,,0,100,100,\n"
	    "\n",
	    STAT_HEADER STAT_BACKEND "payments,vm-01,2,NOLB,L7OK,,0,1,1,\n"
	                             "payments,vm-02,2,DRAIN (agent),L4OK,,0,1,1,\n"
	                             "payments,k8s,2,MAINT (via other/k8s),,,0,1,1,\n"
	                             "payments,k8s-2,2,STARTING,,,0,1,1,\n"
	                             "\n"};
	fake_start(replies, 2);
	mg_traffic *t = open_fake("vm-01, vm-02", "k8s");
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.nservers, 3);
	/* uweight, not the effective weight slowstart lowers; the backup server does not count */
	cr_assert_float_eq(st.servers[0].weight, 5, 0);
	cr_assert_float_eq(st.k8s_percent, 100 * 2.0 / 12, 1e-9);
	cr_assert_eq(st.servers[0].health, MG_HEALTH_UP);
	cr_assert_str_eq(st.servers[0].detail, "UP 1/3 (L4CON: Connection refused, \"twice\")");
	cr_assert_eq(st.servers[1].health, MG_HEALTH_UP);
	cr_assert_str_eq(st.servers[1].detail, "no check");
	cr_assert_eq(st.servers[2].health, MG_HEALTH_DOWN);
	cr_assert_str_eq(st.servers[2].detail,
	                 "DOWN 1/2 (L7STS: HTTP status check returned code <3C>503<3E>)");
	mg_traffic_state_clear(&st);
	cr_assert_str_empty(tu_log_text());
	mg_traffic_free(t);
	cr_assert_str_eq(fake.got[0], "show stat payments 6 -1");

	t = open_fake("vm-01, vm-02", "k8s, k8s-2");
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	const mg_health want[] = {MG_HEALTH_MAINT, MG_HEALTH_MAINT, MG_HEALTH_MAINT,
	                          MG_HEALTH_UNKNOWN};
	const char *detail[] = {"NOLB", "DRAIN (agent)", "MAINT (via other/k8s)", "STARTING"};
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(st.servers[i].health, want[i], "%zu", i);
		cr_assert_str_eq(st.servers[i].detail, detail[i]);
	}
	cr_assert_float_eq(st.k8s_percent, 50, 1e-9);
	mg_traffic_state_clear(&st);
	mg_traffic_free(t);
}

Test(haproxy_fake, weight_column_when_there_is_no_uweight)
{
	const char *const replies[] = {"# pxname,svname,status,weight,type\n"
	                               "payments,BACKEND,UP,4,1\n"
	                               "payments,vm-01,UP,3,2\n"
	                               "payments,k8s,UP,1,2\n\n"};
	fake_start(replies, 1);
	mg_traffic *t = open_fake("vm-01", "k8s");
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.k8s_percent, 25, 1e-9);
	cr_assert_str_eq(st.servers[0].detail, "UP");
	mg_traffic_state_clear(&st);
	mg_traffic_free(t);
}

/* Each malformed answer to `show stat` and the message it gives. */
Test(haproxy_fake, answers_that_make_no_sense)
{
	static const struct {
		const char *reply, *message; /* after "HAProxy's runtime API at <socket> " */
	} cases[] = {
	    {"", "closed the connection without answering `show stat "
	         "payments 6 -1`"},
	    {"Unknown command. Please enter one of the following commands only :\n  help\n\n",
	     "answered `show stat payments 6 -1` with \"Unknown "
	     "command. Please enter one of the following commands only :\""},
	    {"# pxname,svname,status,weight,type\npayments,BACKEND,UP,1,1\n",
	     "cut its answer to `show stat payments 6 -1` short"},
	    {"# pxname,svname,weight,type\n\n",
	     "answered `show stat payments 6 -1` without a \"status\" "
	     "column"},
	    {"# pxname,svname,status,weight,type\npayments,vm-01,UP\n\n",
	     "answered `show stat payments 6 -1` with a short row: 3 "
	     "fields where the header has 5"},
	    {"# pxname,svname,status,weight,type\npayments,BACKEND,UP,1,1\npayments,vm-01,UP,x,2\n\n",
	     "gave server payments/vm-01 the weight \"x\", which is "
	     "not a number"},
	};
	size_t n = sizeof(cases) / sizeof(*cases);
	for (size_t i = 0; i < n; i++) {
		fake_start(&cases[i].reply, 1);
		mg_traffic *t = open_fake("vm-01", "k8s");
		char msg[1024];
		snprintf(msg, sizeof(msg), "HAProxy's runtime API at %s %s", path_in("fake.sock"),
		         cases[i].message);
		assert_read_fails(t, MG_ERROR, msg);
		mg_traffic_free(t);
		fake_stop();
	}
}

Test(haproxy_fake, fewer_answers_than_commands)
{
	/* the whole answer to one command, then half of the next: one of three is known done */
	const char *const replies[] = {"\n", "No such server.\n"};
	fake_start(replies, 2);
	const char *vms[] = {"vm-01", "vm-02"}, *k8s[] = {"k8s"};
	mg_plan_haproxy cfg = {.socket = path_in("fake.sock"),
	                       .backend = BACKEND,
	                       .vm_servers = vms,
	                       .nvm_servers = 2,
	                       .k8s_servers = k8s,
	                       .nk8s_servers = 1};
	void *drv;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &cfg, &err), 0, "%s", err.message);
	cr_assert_eq(mg_traffic_haproxy_ops.apply(drv, 50, &err), MG_ERROR);
	char msg[1024];
	snprintf(msg, sizeof(msg),
	         "HAProxy's runtime API at %s answered 1 of 3 `set weight` commands and closed the "
	         "connection; whether the others ran is unknown; 1 of this step's 3 weights were "
	         "set, so run the step again or roll back",
	         path_in("fake.sock"));
	cr_assert_str_eq(err.message, msg);
	cr_assert_str_eq(fake.got[0], "set weight payments/vm-01 1; set weight payments/vm-02 1; "
	                              "set weight payments/k8s 2");
	/* a half-sent answer is no answer */
	cr_assert_eq(mg_traffic_haproxy_ops.apply(drv, 50, &err), MG_ERROR);
	snprintf(msg, sizeof(msg),
	         "HAProxy's runtime API at %s answered 0 of 3 `set weight` commands and closed the "
	         "connection; whether the others ran is unknown",
	         path_in("fake.sock"));
	cr_assert_str_eq(err.message, msg);
	mg_traffic_haproxy_ops.free(drv);
}

/* HAProxy runs only part of a line longer than its buffer: a big pool is sent in parts. */
Test(haproxy_fake, many_servers_go_out_in_lines_haproxy_reads_whole)
{
	enum { NVM = 300 };
	static char names[NVM][64];
	const char *vms[NVM], *k8s[] = {"k8s"};
	for (int i = 0; i < NVM; i++) {
		snprintf(names[i], sizeof(names[i]), "vm-with-a-rather-long-server-name-%03d", i);
		vms[i] = names[i];
	}
	mg_plan_haproxy cfg = {.socket = path_in("fake.sock"),
	                       .backend = BACKEND,
	                       .vm_servers = vms,
	                       .nvm_servers = NVM,
	                       .k8s_servers = k8s,
	                       .nk8s_servers = 1};
	void *drv;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &cfg, &err), 0, "%s", err.message);
	json_t *d;
	cr_assert_eq(mg_traffic_haproxy_ops.describe(drv, 10, &d, &err), 0, "%s", err.message);
	size_t nlines = json_array_size(d);
	cr_assert_eq(nlines, 3);

	const char *const replies[] = {NULL, NULL, NULL};
	fake_start(replies, nlines);
	cr_assert_eq(mg_traffic_haproxy_ops.apply(drv, 10, &err), 0, "%s", err.message);
	fake_stop();
	cr_assert_eq(fake.ngot, nlines);
	mg_weights w;
	cr_assert_eq(mg_weights_split(&w, 10, NVM, 1, 256, &err), 0);
	/* every server once, in order, across the lines; each line within the limit */
	size_t next = 0;
	for (size_t k = 0; k < nlines; k++) {
		const char *line = json_string_value(json_object_get(json_array_get(d, k), "line"));
		cr_assert_str_eq(fake.got[k], line);
		cr_assert_leq(strlen(line), 8192);
		char *copy = strdup(line), *save = NULL;
		for (char *c = strtok_r(copy, ";", &save); c; c = strtok_r(NULL, ";", &save)) {
			char want[128];
			if (next < NVM)
				snprintf(want, sizeof(want), "set weight payments/%s %d",
				         names[next], w.vm_weight);
			else
				snprintf(want, sizeof(want), "set weight payments/k8s %d",
				         w.k8s_weight);
			cr_assert_str_eq(c + (*c == ' '), want);
			next++;
		}
		free(copy);
	}
	cr_assert_eq(next, NVM + 1);
	json_decref(d);
	mg_traffic_haproxy_ops.free(drv);
}

/* Names a plan loader would refuse anyway; the driver refuses them on its own too. */
Test(haproxy_fake, configurations_the_driver_refuses)
{
	const char *vms[] = {"vm-01"}, *k8s[] = {"k8s"};
	const char *bad_vms[] = {"vm-01; disable server payments/vm-02"};
	static const char *bad[] = {"vm 01", "vm\t01", "vm/01", "vm\\01", "vm;01", "vm\x7f"};
	mg_plan_haproxy base = {.socket = "/run/haproxy/admin.sock",
	                        .backend = BACKEND,
	                        .vm_servers = vms,
	                        .nvm_servers = 1,
	                        .k8s_servers = k8s,
	                        .nk8s_servers = 1};
	void *drv = NULL;
	mg_error err = MG_ERROR_INIT;

	mg_plan_haproxy c = base;
	c.vm_servers = bad_vms;
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID);
	cr_assert_str_eq(err.message,
	                 "traffic.haproxy.vm_servers \"vm-01; disable server payments/vm-02\" "
	                 "contains whitespace, a control character, ';', '\\' or '/', which would "
	                 "change the runtime API command; use the name from haproxy.cfg");
	cr_assert_null(drv);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		c = base;
		c.k8s_servers = &bad[i];
		cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID, "%s", bad[i]);
		cr_assert(strstr(err.message, "traffic.haproxy.k8s_servers \""), "%s", err.message);
		c = base;
		c.backend = bad[i];
		cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID, "%s", bad[i]);
		cr_assert(strstr(err.message, "traffic.haproxy.backend \""), "%s", err.message);
	}
	c = base;
	c.backend = "";
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "traffic.haproxy.backend is empty");
	char longname[300];
	memset(longname, 'a', 256);
	longname[256] = '\0';
	c.backend = longname;
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "traffic.haproxy.backend "
	                              "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is longer "
	                              "than 255 characters");
	c = base;
	c.nk8s_servers = 0;
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID);
	cr_assert_str_eq(err.message,
	                 "traffic.haproxy needs at least one of vm_servers and of k8s_servers");
	c = base;
	c.address = "127.0.0.1:9999";
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "traffic.haproxy needs either \"socket\" or \"address\"");
	c.socket = c.address = NULL;
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "traffic.haproxy needs either \"socket\" or \"address\"");
	static const char *const bad_addr[] = {"127.0.0.1", "[::1]", "[::1", ":9999", "host:"};
	for (size_t i = 0; i < sizeof(bad_addr) / sizeof(*bad_addr); i++) {
		c.address = bad_addr[i];
		cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), MG_EINVALID, "%s",
		             bad_addr[i]);
		char msg[128];
		snprintf(msg, sizeof(msg), "traffic.haproxy.address \"%s\" is not host:port",
		         bad_addr[i]);
		cr_assert_str_eq(err.message, msg);
	}
	cr_assert_null(drv);

	/* an IPv6 literal is fine; describe says where, and contacts nothing */
	c.address = "[::1]:9999";
	cr_assert_eq(mg_traffic_haproxy_new(&drv, &c, &err), 0, "%s", err.message);
	cr_assert_eq(mg_traffic_haproxy_ops.apply(drv, -1, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "cannot send -1% to the cluster: a share is from 0% to 100%");
	json_t *d;
	cr_assert_eq(mg_traffic_haproxy_ops.describe(drv, 0, &d, &err), 0);
	char *s = json_dumps(d, JSON_COMPACT);
	cr_assert_str_eq(
	    s,
	    "[{\"kind\":\"runtime-api\",\"address\":\"[::1]:9999\",\"line\":\"set weight payments/vm-01 1; "
	    "set weight payments/k8s 0\"}]");
	free(s);
	json_decref(d);
	mg_traffic_haproxy_ops.free(drv);
}

Test(haproxy_fake, socket_path_too_long_and_unknown_host)
{
	char where[400], msg[600];
	memset(where, 0, sizeof(where));
	snprintf(where, sizeof(where), "socket: %s/", dir);
	memset(where + strlen(where), 's', 120);
	mg_traffic *t = open_plan(where, BACKEND, "vm-01", "k8s", NULL);
	snprintf(msg, sizeof(msg),
	         "traffic.haproxy.socket \"%s\" is longer than a unix socket path may be (107 "
	         "bytes)",
	         where + strlen("socket: "));
	assert_read_fails(t, MG_EINVALID, msg);
	mg_traffic_free(t);

	/* .invalid never resolves (RFC 6761); the resolver's own words vary */
	t = open_plan("address: nosuch.invalid:9999", BACKEND, "vm-01", "k8s", NULL);
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), MG_ERROR);
	const char *want = "cannot connect to HAProxy's runtime API at nosuch.invalid:9999: cannot "
	                   "resolve nosuch.invalid: ";
	cr_assert(!strncmp(err.message, want, strlen(want)), "%s", err.message);
	cr_assert_gt(strlen(err.message), strlen(want));
	mg_traffic_free(t);
}

Test(haproxy_fake, answers_cut_by_a_reset_or_too_long)
{
	const char *const replies[] = {FAKE_RESET, FAKE_BIG};
	fake_start(replies, 2);
	mg_traffic *t = open_fake("vm-01", "k8s");
	char msg[1024];
	snprintf(msg, sizeof(msg),
	         "HAProxy's runtime API at %s: reading the answer for `show stat payments 6 -1`: "
	         "Connection reset by peer",
	         path_in("fake.sock"));
	assert_read_fails(t, MG_ERROR, msg);
	snprintf(
	    msg, sizeof(msg),
	    "HAProxy's runtime API at %s sent more than 16777216 bytes for `show stat payments "
	    "6 -1`; stopped reading",
	    path_in("fake.sock"));
	assert_read_fails(t, MG_ERROR, msg);
	mg_traffic_free(t);
}

Test(haproxy_fake, socket_whose_backlog_is_full_times_out)
{
	/* a haproxy that stopped accepting: one connection waits, the next cannot get in */
	const char *sock = path_in("full.sock");
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	int filler = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);

	char where[512], msg[1024];
	snprintf(where, sizeof(where), "socket: %s", sock);
	mg_traffic *t = open_plan(where, BACKEND, "vm-01", "k8s", "timeout: 200ms");
	snprintf(msg, sizeof(msg),
	         "cannot connect to HAProxy's runtime API at %s: no answer within 200 ms "
	         "(traffic.haproxy.timeout); is haproxy running and reachable?",
	         sock);
	int64_t t0 = tu_now_ms();
	assert_read_fails(t, MG_ERROR, msg);
	int64_t took = tu_now_ms() - t0;
	cr_assert(took >= 190 && took < 2000, "took %lld ms", (long long)took);
	mg_traffic_free(t);
	close(filler);
	close(lfd);
}
