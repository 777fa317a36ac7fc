/*
 * The nginx traffic driver against the real nginx (Debian's /usr/sbin/nginx)
 * started by tests/sandbox/nginx.sh, with three tests/servers/upstream.py
 * servers behind it: the exact file each step writes, what read() reports,
 * where real requests go after the reload, and that every failure (nginx -t,
 * reload, a hung command, a file that does not match the plan) leaves the old
 * file and the old traffic in place.
 *
 * How exact the traffic check is: with one worker process, nginx's smooth
 * weighted round-robin is one deterministic sequence, started afresh by each
 * reload. After t picks a server's current weight is t*w - W*picks (W the
 * total weight); it comes back to 0 every W picks, so each server gets exactly
 * w of every W consecutive requests, and in between it stays within -W..W for
 * three servers. Over any n requests a server's count is therefore within 2 of
 * n*w/W (exact when W divides n, as it does for every step here). The check
 * allows those 2 requests and nothing more: 600 requests pin a step's share
 * to 0.33 points, 200 tell old weights from new ones, a down server gets none.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "fs.h"
#include "log.h"
#include "plan.h"
#include "traffic.h"

extern char **environ;

#define NGINX "/usr/sbin/nginx"
/* Requests per check: in the steps (0.33 points), and where old and new weights differ widely. */
#define REQUESTS 600
#define FEW      200
#define NUL_TEXT "upstream shop {\n\tserver 127.0.0.1:18101;\0}\n"
#define HEADER                                                                                     \
	"# Managed by migrate: each traffic step rewrites the `server` lines of the upstream\n"    \
	"# it manages (weights, `down` for weight 0); everything else here is kept as it is.\n"
#define MARK "# migrate: weight 0"

static const char *const names[3] = {"vm-01", "vm-02", "k8s"};

static char dir[256];
static int port[3], lb_port;
static pid_t upstream_pid[3], nginx_pid;
static int upstream_stdin[3] = {-1, -1, -1};
static mg_plan *plan;
static mg_traffic *traffic;
/* traffic.nginx.command_timeout for open_plan; empty: the default */
static char command_timeout[32];

static const char *path(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void write_file(const char *file, const char *text)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_write_atomic(file, text, strlen(text), 0644, &err), 0, "%s",
	             err.message);
}

static char *read_file(const char *file)
{
	char *text;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&text, NULL, file, &err), 0, "%s", err.message);
	return text;
}

static void assert_file(const char *file, const char *want)
{
	char *got = read_file(file);
	cr_assert_str_eq(got, want, "%s is\n%s\nwanted\n%s", file, got, want);
	free(got);
}

/* --- the upstream file ------------------------------------------------------------------- */

/*
 * The operator's file: another upstream, a comment after a statement,
 * parameters migrate must keep (max_fails=...), a directive after the
 * servers. All traffic on the VMs: the cluster server as migrate writes
 * weight 0.
 */
static const char file_fmt[] = "# shop: written by the operator, included from nginx.conf\n"
                               "upstream other {\n"
                               "\tserver 127.0.0.1:9 weight=5;\n"
                               "}\n"
                               "\n"
                               "upstream shop {\n"
                               "\t%s\n"
                               "\t%s # the second VM\n"
                               "\t%s\n"
                               "\tzone shop 64k;\n"
                               "}\n";

static char initial[2048];

/* One server line as migrate writes it for weight w; params as the operator wrote them. */
static void server_line(char *buf, size_t size, int i, int w, const char *params)
{
	if (w)
		snprintf(buf, size, "server 127.0.0.1:%d weight=%d%s;", port[i], w, params);
	else
		snprintf(buf, size, "server 127.0.0.1:%d%s down; " MARK, port[i], params);
}

/* The file after a step that gave the VMs weight vw and the cluster kw. */
static void expected(char *buf, size_t size, int vw, int kw)
{
	char l[3][128];
	server_line(l[0], sizeof(l[0]), 0, vw, " max_fails=3 fail_timeout=10s");
	server_line(l[1], sizeof(l[1]), 1, vw, "");
	server_line(l[2], sizeof(l[2]), 2, kw, "");
	int n = snprintf(buf, size, "%s", HEADER);
	snprintf(buf + n, size - (size_t)n, file_fmt, l[0], l[1], l[2]);
}

static void write_initial(void)
{
	char l[3][128];
	snprintf(l[0], sizeof(l[0]), "server 127.0.0.1:%d max_fails=3 fail_timeout=10s;", port[0]);
	snprintf(l[1], sizeof(l[1]), "server 127.0.0.1:%d;", port[1]);
	snprintf(l[2], sizeof(l[2]), "server 127.0.0.1:%d down; " MARK, port[2]);
	snprintf(initial, sizeof(initial), file_fmt, l[0], l[1], l[2]);
	write_file(path("upstream.conf"), initial);
}

/* --- processes ---------------------------------------------------------------------------- */

/* What fd says until EOF (or the first line break when line), bounded by 10 s. */
static void read_from(int fd, char *buf, size_t size, bool line)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < 1000 && n + 1 < size; i++) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (line && strchr(buf, '\n'))
			break;
	}
}

/*
 * All three at once: starting python is the slowest part of the fixture.
 * $PYTHON, else the system's python3 directly: a version manager's shim on
 * PATH (pyenv) can take seconds per start.
 */
static void start_upstreams(void)
{
	const char *python = getenv("PYTHON");
	if (!python || !*python)
		python = access("/usr/bin/python3", X_OK) ? NULL : "/usr/bin/python3";
	int out[3];
	for (int i = 0; i < 3; i++) {
		port[i] = tu_free_port();
		char p[16];
		snprintf(p, sizeof(p), "%d", port[i]);
		char *with_env[] = {"/usr/bin/env",
		                    "python3",
		                    "tests/servers/upstream.py",
		                    (char *)names[i],
		                    "127.0.0.1",
		                    p,
		                    NULL};
		char *direct[] = {(char *)python,
		                  "tests/servers/upstream.py",
		                  (char *)names[i],
		                  "127.0.0.1",
		                  p,
		                  NULL};
		upstream_pid[i] =
		    tu_spawn_piped(python ? direct : with_env, &upstream_stdin[i], &out[i]);
	}
	for (int i = 0; i < 3; i++) {
		char line[64];
		read_from(out[i], line, sizeof(line), true);
		close(out[i]);
		cr_assert_str_eq(line, "ready\n", "upstream.py %s did not start: %s", names[i],
		                 line);
	}
}

static void start_nginx(void)
{
	char p[16], out[256];
	snprintf(p, sizeof(p), "%d", lb_port);
	char *argv[] = {"/bin/sh", "tests/sandbox/nginx.sh", dir, p, "shop", NULL};
	int in, fd;
	pid_t pid = tu_spawn_piped(argv, &in, &fd);
	close(in);
	read_from(fd, out, sizeof(out), false);
	close(fd);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nginx.sh failed");
	nginx_pid = atoi(out);
	cr_assert_gt(nginx_pid, 1, "nginx.sh printed no pid: %s", out);
}

/* Running, and not a zombie (no one may reap a daemon here). */
static bool alive(pid_t pid)
{
	char f[64], buf[512];
	snprintf(f, sizeof(f), "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(f, "r");
	if (!fp)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static void stop_nginx(void)
{
	if (nginx_pid <= 0)
		return;
	kill(nginx_pid, SIGTERM);
	for (int i = 0; i < 300 && alive(nginx_pid); i++)
		usleep(10 * 1000);
	if (alive(nginx_pid))
		kill(nginx_pid, SIGKILL);
	nginx_pid = 0;
}

/* The worker processes of our nginx, sorted; returns how many. */
static size_t workers(pid_t *out, size_t max)
{
	size_t n = 0;
	DIR *d = opendir("/proc");
	cr_assert_not_null(d);
	for (struct dirent *e; (e = readdir(d)) && n < max;) {
		pid_t pid = atoi(e->d_name);
		char f[64], buf[512];
		snprintf(f, sizeof(f), "/proc/%d/stat", (int)pid);
		FILE *fp = pid > 0 ? fopen(f, "r") : NULL;
		if (!fp)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		const char *rp = strrchr(buf, ')');
		char state;
		int ppid;
		if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == nginx_pid &&
		    state != 'Z')
			out[n++] = pid;
	}
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
			pid_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

typedef struct {
	pid_t pid[16];
	size_t n;
} worker_set;

/* The one worker; waits (bounded) for it after a start or a reload. */
static worker_set snapshot(void)
{
	worker_set w;
	for (int i = 0; i < 500; i++) {
		w.n = workers(w.pid, 16);
		if (w.n == 1)
			return w;
		usleep(10 * 1000);
	}
	cr_assert_fail("nginx has %zu workers after 5 s, wanted 1", w.n);
	return w;
}

/* A reload is asynchronous: wait (bounded) until none of the old workers serves any more. */
static void wait_reloaded(const worker_set *old)
{
	for (int i = 0; i < 500; i++) {
		worker_set now;
		now.n = workers(now.pid, 16);
		bool overlap = false;
		for (size_t a = 0; a < now.n; a++)
			for (size_t b = 0; b < old->n; b++)
				overlap |= now.pid[a] == old->pid[b];
		if (now.n == 1 && !overlap)
			return;
		usleep(10 * 1000);
	}
	cr_assert_fail("nginx did not replace its worker within 5 s of the reload");
}

static void assert_not_reloaded(const worker_set *old)
{
	worker_set now = snapshot();
	cr_assert_eq(now.pid[0], old->pid[0], "nginx reloaded although the step failed");
}

/* --- requests ----------------------------------------------------------------------------- */

/* One GET through nginx on a new connection; which server answered (0..2). */
static int request(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)lb_port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s",
	             strerror(errno));
	static const char req[] = "GET / HTTP/1.0\r\nHost: shop\r\n\r\n";
	cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	char buf[2048];
	read_from(fd, buf, sizeof(buf), false);
	close(fd);
	if (strncmp(buf, "HTTP/1.1 200 ", 13)) {
		char *log = read_file(path("error.log"));
		size_t n = strlen(log);
		cr_assert_fail("nginx answered: %s\nits error log ends with:\n%s", buf,
		               log + (n > 2000 ? n - 2000 : 0));
	}
	const char *body = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(body);
	for (int i = 0; i < 3; i++)
		if (!strncmp(body + 4, names[i], strlen(names[i])) &&
		    body[4 + strlen(names[i])] == '\n')
			return i;
	cr_assert_fail("unknown server answered: %s", body + 4);
	return -1;
}

/* Sends n requests and checks each server's count against weights vw, vw, kw. */
static void assert_traffic(int n, int vw, int kw)
{
	int count[3] = {0, 0, 0};
	for (int i = 0; i < n; i++)
		count[request()]++;
	int w[3] = {vw, vw, kw}, total = 2 * vw + kw;
	for (int i = 0; i < 3; i++) {
		double ideal = (double)n * w[i] / total;
		cr_assert(
		    fabs(count[i] - ideal) <= 2,
		    "%s got %d of %d requests, weights %d/%d/%d give %.1f (+-2): counts %d %d "
		    "%d",
		    names[i], count[i], n, vw, vw, kw, ideal, count[0], count[1], count[2]);
	}
}

/* --- plans -------------------------------------------------------------------------------- */

/* Opens the driver through a plan; commands are YAML double-quoted strings. */
static void open_plan(const char *test_command, const char *reload_command)
{
	char yaml[4096];
	snprintf(yaml, sizeof(yaml),
	         "version: 1\n"
	         "name: shop\n"
	         "traffic:\n"
	         "  provider: nginx\n"
	         "  steps: [10, 25, 50, 75, 100]\n"
	         "  bake: 1m\n"
	         "  nginx:\n"
	         "    upstream_file: %s\n"
	         "    upstream: shop\n"
	         "    vm_servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
	         "    k8s_servers: [\"127.0.0.1:%d\"]\n"
	         "    test_command: \"%s\"\n"
	         "    reload_command: \"%s\"\n"
	         "%s%s%s",
	         path("upstream.conf"), port[0], port[1], port[2], test_command, reload_command,
	         *command_timeout ? "    command_timeout: " : "", command_timeout,
	         *command_timeout ? "\n" : "");
	if (traffic)
		mg_traffic_free(traffic);
	if (plan)
		mg_plan_free(plan);
	traffic = NULL;
	plan = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_plan_load_buffer(&plan, yaml, strlen(yaml), "nginx.yaml", dir, 0, &err);
	char first[512] = "";
	if (err.ndiags)
		mg_diag_format(first, sizeof(first), &err.diags[0]);
	cr_assert_eq(rc, 0, "%s %s", err.message, first);
	mg_error_clear(&err);
	cr_assert_eq(mg_traffic_open(&traffic, mg_plan_traffic_section(plan), &err), 0, "%s",
	             err.message);
	cr_assert_str_eq(mg_traffic_name(traffic), "nginx");
}

static const char *nginx_cmd(const char *extra)
{
	static char buf[2][512];
	static int i;
	i = (i + 1) % 2;
	snprintf(buf[i], sizeof(buf[i]), NGINX " -p %s/ -c %s %s", dir, path("nginx.conf"), extra);
	return buf[i];
}

static void open_real_plan(void)
{
	open_plan(nginx_cmd("-t"), nginx_cmd("-s reload"));
}

/* --- fixtures ----------------------------------------------------------------------------- */

static void free_handles(void)
{
	mg_traffic_free(traffic);
	mg_plan_free(plan);
	traffic = NULL;
	plan = NULL;
}

/* Only a directory and an upstream file: for what needs no nginx. Ports are never opened. */
static void setup_file(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "nginx");
	for (int i = 0; i < 3; i++)
		port[i] = 18101 + i;
	write_initial();
	command_timeout[0] = '\0';
}

static void teardown_file(void)
{
	free_handles();
	tu_tmpdir_remove(dir);
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "nginx");
	start_upstreams();
	lb_port = tu_free_port();
	write_initial();
	start_nginx();
	command_timeout[0] = '\0';
}

static void teardown(void)
{
	free_handles();
	stop_nginx();
	for (int i = 0; i < 3; i++) {
		if (upstream_stdin[i] >= 0)
			close(upstream_stdin[i]);
		upstream_stdin[i] = -1;
		tu_stop(&upstream_pid[i]);
	}
	tu_state_stop();
	tu_tmpdir_remove(dir);
}

TestSuite(nginx, .timeout = 60);

static void assert_state(const mg_traffic_state *st, double pct, int vw, int kw)
{
	cr_assert(fabs(st->k8s_percent - pct) <= 0.5, "read back %g%%, wanted %g%%",
	          st->k8s_percent, pct);
	cr_assert_eq(st->nservers, 3);
	int w[3] = {vw, vw, kw};
	for (int i = 0; i < 3; i++) {
		const mg_traffic_server *s = &st->servers[i];
		char name[64];
		snprintf(name, sizeof(name), "127.0.0.1:%d", port[i]);
		cr_assert_str_eq(s->name, name);
		cr_assert_eq(s->k8s, i == 2);
		cr_assert_eq(s->weight, w[i], "%s has weight %g, wanted %d", name, s->weight, w[i]);
		cr_assert_eq(s->health, MG_HEALTH_UNKNOWN, "%s: %s", name,
		             mg_health_name(s->health));
		cr_assert_str_eq(
		    s->detail, w[i] ? "open-source nginx does not report upstream health"
		                    : "weight 0 (down, by migrate); nginx does not report health");
	}
}

Test(nginx, every_step_and_the_rollback_move_real_traffic, .init = setup, .fini = teardown)
{
	open_real_plan();
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	cr_assert_eq(mg_traffic_read(&st, traffic, &err), 0, "%s", err.message);
	assert_state(&st, 0, 1, 0);
	mg_traffic_state_clear(&st);
	assert_traffic(FEW, 1, 0);

	static const struct {
		double pct;
		int vw, kw;
	} steps[] = {{10, 9, 2}, {25, 3, 2}, {50, 1, 2}, {75, 1, 6}, {100, 0, 1}, {0, 1, 0}};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		worker_set before = snapshot();
		int rc = mg_traffic_apply(&st, traffic, steps[i].pct, false, &err);
		cr_assert_eq(rc, 0, "step %g: %s", steps[i].pct, err.message);
		assert_state(&st, steps[i].pct, steps[i].vw, steps[i].kw);
		cr_assert_eq(st.k8s_percent, steps[i].pct);
		mg_traffic_state_clear(&st);

		char want[4096];
		expected(want, sizeof(want), steps[i].vw, steps[i].kw);
		assert_file(path("upstream.conf"), want);
		struct stat sb;
		cr_assert_eq(stat(path("upstream.conf"), &sb), 0);
		cr_assert_eq(sb.st_mode & 07777, 0644);

		cr_assert_eq(mg_traffic_read(&st, traffic, &err), 0, "%s", err.message);
		assert_state(&st, steps[i].pct, steps[i].vw, steps[i].kw);
		mg_traffic_state_clear(&st);

		wait_reloaded(&before);
		assert_traffic(REQUESTS, steps[i].vw, steps[i].kw);
	}
}

Test(nginx, the_same_step_twice_keeps_the_file_and_still_reloads, .init = setup, .fini = teardown)
{
	open_real_plan();
	mg_error err = MG_ERROR_INIT;
	worker_set before = snapshot();
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 50, false, &err), 0, "%s", err.message);
	wait_reloaded(&before);
	char *first = read_file(path("upstream.conf"));
	before = snapshot();
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 50, false, &err), 0, "%s", err.message);
	assert_file(path("upstream.conf"), first);
	free(first);
	/* the operator may have edited the file by hand: nginx must run what it says */
	wait_reloaded(&before);
}

Test(nginx, a_failing_test_command_restores_the_file_and_keeps_the_traffic, .init = setup,
     .fini = teardown)
{
	open_plan("echo boom >&2; exit 1", nginx_cmd("-s reload"));
	worker_set before = snapshot();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 50, false, &err), MG_ERROR);
	cr_assert(strstr(err.message, "nginx rejected the new upstream file: `echo boom >&2; exit "
	                              "1` failed with exit status 1: boom; "),
	          "%s", err.message);
	cr_assert(strstr(err.message, "upstream.conf is back to its previous content"), "%s",
	          err.message);
	assert_file(path("upstream.conf"), initial);
	assert_not_reloaded(&before);
	assert_traffic(FEW, 1, 0);
}

/*
 * A test command that quotes a credential (nginx echoing a proxy_set_header
 * line), once where the summary's cut falls in the token's middle: none of
 * it reaches the message or the log.
 */
Test(nginx, credentials_in_the_test_output_are_masked, .init = setup, .fini = teardown)
{
#define NGX_TOKEN "nGx7-secret-Token-0123456789abcdef"
	char script[1024];
	snprintf(
	    script, sizeof(script),
	    "echo 'nginx: [emerg] bad header: proxy_set_header Authorization \"Bearer " NGX_TOKEN
	    "\";' >&2\n"
	    "printf 'nginx: [emerg] %%0364d Bearer " NGX_TOKEN " x\\n' 0 >&2\n"
	    "exit 1\n");
	tu_write_file(path("t.sh"), script);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "sh %s", path("t.sh"));
	tu_log_capture(MG_LOG_DEBUG);
	open_plan(cmd, nginx_cmd("-s reload"));
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 50, false, &err), MG_ERROR);
	const char *halves[] = {"nGx7-secret-Token", "0123456789abcdef"};
	for (int i = 0; i < 2; i++) {
		cr_assert_null(strstr(err.message, halves[i]), "%s", err.message);
		cr_assert_null(strstr(tu_log_text(), halves[i]), "%s", tu_log_text());
	}
	cr_assert(strstr(err.message, "failed with exit status 1: nginx: [emerg] bad header: "
	                              "proxy_set_header Authorization \"[redacted]\";; nginx: "
	                              "[emerg] 000"),
	          "%s", err.message);
	tu_log_capture_stop();
	assert_file(path("upstream.conf"), initial);
#undef NGX_TOKEN
}

Test(nginx, nginx_t_on_a_broken_config_restores_the_file_and_keeps_the_traffic, .init = setup,
     .fini = teardown)
{
	open_real_plan();
	mg_error err = MG_ERROR_INIT;
	worker_set before = snapshot();
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 25, false, &err), 0, "%s", err.message);
	wait_reloaded(&before);
	char *at25 = read_file(path("upstream.conf"));

	/* someone edited nginx.conf and did not test it */
	char *conf = read_file(path("nginx.conf"));
	int conf_lines = 0;
	for (const char *c = conf; *c; c++)
		conf_lines += *c == '\n';
	free(conf);
	FILE *f = fopen(path("nginx.conf"), "a");
	cr_assert_not_null(f);
	fputs("bogus_directive on;\n", f);
	cr_assert_eq(fclose(f), 0);

	before = snapshot();
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 50, false, &err), MG_ERROR);
	cr_assert(strstr(err.message, "nginx rejected the new upstream file: `" NGINX " -p "), "%s",
	          err.message);
	cr_assert(strstr(err.message, "-t` failed with exit status 1: "), "%s", err.message);
	/* nginx's own words: the directive, the file and line, the verdict */
	char want[512];
	snprintf(want, sizeof(want), ": unknown directive \"bogus_directive\" in %s:%d; ",
	         path("nginx.conf"), conf_lines + 1);
	cr_assert(strstr(err.message, want), "%s", err.message);
	cr_assert(strstr(err.message, "[emerg] "), "%s", err.message);
	snprintf(want, sizeof(want), "; nginx: configuration file %s test failed; ",
	         path("nginx.conf"));
	cr_assert(strstr(err.message, want), "%s", err.message);
	cr_assert(strstr(err.message, "upstream.conf is back to its previous content"), "%s",
	          err.message);
	cr_assert_eq(strchr(err.message, '\n'), NULL, "%s", err.message);
	assert_file(path("upstream.conf"), at25);
	free(at25);
	assert_not_reloaded(&before);
	assert_traffic(FEW, 3, 2);

	mg_traffic_state st;
	cr_assert_eq(mg_traffic_read(&st, traffic, &err), 0, "%s", err.message);
	assert_state(&st, 25, 3, 2);
	mg_traffic_state_clear(&st);
}

Test(nginx, a_failing_reload_restores_the_file_and_keeps_the_traffic, .init = setup,
     .fini = teardown)
{
	open_plan(nginx_cmd("-t"), "echo nope >&2; exit 3");
	worker_set before = snapshot();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 75, false, &err), MG_ERROR);
	cr_assert(strstr(err.message, "nginx did not reload: `echo nope >&2; exit 3` failed with "
	                              "exit status 3: nope; "),
	          "%s", err.message);
	cr_assert(strstr(err.message, "upstream.conf is back to its previous content"), "%s",
	          err.message);
	assert_file(path("upstream.conf"), initial);
	assert_not_reloaded(&before);
	assert_traffic(FEW, 1, 0);

	/* nginx's own refusal: -g repeats the pid directive of nginx.conf */
	char reload[512];
	snprintf(reload, sizeof(reload), "%s", nginx_cmd("-g 'pid x.pid;' -s reload"));
	open_plan(nginx_cmd("-t"), reload);
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 75, false, &err), MG_ERROR);
	cr_assert(strstr(err.message, "nginx did not reload: `"), "%s", err.message);
	cr_assert(strstr(err.message, "failed with exit status 1: "), "%s", err.message);
	cr_assert(strstr(err.message, "\"pid\" directive is duplicate"), "%s", err.message);
	assert_file(path("upstream.conf"), initial);
	assert_not_reloaded(&before);
	assert_traffic(FEW, 1, 0);
}

Test(nginx, a_hung_test_command_is_stopped_with_everything_it_started, .init = setup,
     .fini = teardown)
{
	/* long enough for a loaded machine to start the shell, short enough for a test */
	snprintf(command_timeout, sizeof(command_timeout), "1500ms");
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "echo waiting; sleep 60 & echo $! > %s; wait",
	         path("sleep.pid"));
	open_plan(cmd, nginx_cmd("-s reload"));
	worker_set before = snapshot();
	mg_error err = MG_ERROR_INIT;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 10, false, &err), MG_ERROR);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	cr_assert(took >= 1.5 && took < 6, "apply took %.2f s with a 1500 ms timeout", took);
	char want[768];
	snprintf(want, sizeof(want),
	         "nginx rejected the new upstream file: `%s` did not finish within 1500 ms "
	         "(traffic.nginx.command_timeout) and was stopped (waiting); ",
	         cmd);
	cr_assert(strstr(err.message, want), "%s", err.message);
	assert_file(path("upstream.conf"), initial);
	assert_not_reloaded(&before);

	char *pid = read_file(path("sleep.pid"));
	pid_t sleeper = atoi(pid);
	free(pid);
	cr_assert_gt(sleeper, 1);
	for (int i = 0; i < 200 && alive(sleeper); i++)
		usleep(10 * 1000);
	cr_assert(!alive(sleeper), "the command's background sleep %d still runs", (int)sleeper);
}

Test(nginx, a_reload_longer_than_command_timeout_is_stopped_and_names_the_key, .init = setup_file,
     .fini = teardown_file)
{
	snprintf(command_timeout, sizeof(command_timeout), "300ms");
	open_plan("true", "echo reloading; exec sleep 30");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 10, false, &err), MG_ERROR);
	char msg[1024], *resolved = realpath(path("upstream.conf"), NULL);
	snprintf(msg, sizeof(msg),
	         "nginx did not reload: `echo reloading; exec sleep 30` did not finish within "
	         "300 ms (traffic.nginx.command_timeout) and was stopped (reloading); %s is back "
	         "to its previous content",
	         resolved);
	free(resolved);
	cr_assert_str_eq(err.message, msg);
	assert_file(path("upstream.conf"), initial);
}

Test(nginx, validate_refuses_a_bad_command_timeout, .init = setup_file, .fini = teardown_file)
{
	const char *const bad[][2] = {
	    {"50ms", "50ms is too short; the minimum is 100ms"},
	    {"soon", "\"soon\" is not a duration"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char yaml[1024];
		snprintf(yaml, sizeof(yaml),
		         "version: 1\n"
		         "name: shop\n"
		         "traffic:\n"
		         "  provider: nginx\n"
		         "  steps: [10, 100]\n"
		         "  bake: 1m\n"
		         "  nginx:\n"
		         "    upstream_file: %s\n"
		         "    upstream: shop\n"
		         "    vm_servers: [\"127.0.0.1:%d\"]\n"
		         "    k8s_servers: [\"127.0.0.1:%d\"]\n"
		         "    command_timeout: %s\n",
		         path("upstream.conf"), port[0], port[2], bad[i][0]);
		write_file(path("plan.yaml"), yaml);
		tu_output r = tu_migrate("validate", "-p", path("plan.yaml"), NULL);
		cr_assert_eq(r.status, 2, "%s: %s", bad[i][0], r.err);
		char want[1024];
		snprintf(want, sizeof(want), "%s:12:22: traffic.nginx.command_timeout: %s",
		         path("plan.yaml"), bad[i][1]);
		cr_assert(strstr(r.err, want), "%s\nwanted: %s", r.err, want);
		tu_output_free(&r);
	}
}

/* The file write, then the two commands: the `calls` array of --dry-run. */
static json_t *file_call(json_t *d)
{
	cr_assert(json_is_array(d));
	cr_assert_eq(json_array_size(d), 3);
	json_t *f = json_array_get(d, 0);
	cr_assert_str_eq(json_string_value(json_object_get(f, "kind")), "file");
	return f;
}

Test(nginx, describe_shows_the_exact_file_and_changes_nothing, .init = setup, .fini = teardown)
{
	open_real_plan();
	worker_set before = snapshot();
	mg_error err = MG_ERROR_INIT;
	json_t *d;
	cr_assert_eq(mg_traffic_describe(&d, traffic, 25, &err), 0, "%s", err.message);
	char want[4096];
	expected(want, sizeof(want), 3, 2);
	json_t *f = file_call(d);
	cr_assert_str_eq(json_string_value(json_object_get(f, "content")), want);
	cr_assert_str_eq(json_string_value(json_object_get(f, "upstream_file")),
	                 path("upstream.conf"));
	cr_assert_str_eq(json_string_value(json_object_get(f, "upstream")), "shop");
	cr_assert_eq(json_integer_value(json_object_get(f, "vm_weight")), 3);
	cr_assert_eq(json_integer_value(json_object_get(f, "k8s_weight")), 2);
	cr_assert_eq(json_real_value(json_object_get(f, "effective_percent")), 25.0);
	cr_assert(json_is_true(json_object_get(f, "changed")));
	cr_assert_eq(json_object_size(f), 8);
	const char *const keys[] = {"test_command", "reload_command"};
	const char *const cmds[] = {nginx_cmd("-t"), nginx_cmd("-s reload")};
	for (size_t i = 0; i < 2; i++) {
		json_t *c = json_array_get(d, i + 1);
		cr_assert_str_eq(json_string_value(json_object_get(c, "kind")), "command");
		cr_assert_str_eq(json_string_value(json_object_get(c, "key")), keys[i]);
		cr_assert_str_eq(json_string_value(json_object_get(c, "command")), cmds[i]);
		cr_assert_eq(json_integer_value(json_object_get(c, "timeout_ms")), 30000);
		cr_assert_eq(json_object_size(c), 4);
	}
	assert_file(path("upstream.conf"), initial);
	assert_not_reloaded(&before);

	cr_assert_eq(mg_traffic_apply(NULL, traffic, 25, false, &err), 0, "%s", err.message);
	assert_file(path("upstream.conf"), json_string_value(json_object_get(f, "content")));
	json_decref(d);

	cr_assert_eq(mg_traffic_describe(&d, traffic, 25, &err), 0, "%s", err.message);
	f = file_call(d);
	cr_assert(json_is_false(json_object_get(f, "changed")));
	cr_assert_str_eq(json_string_value(json_object_get(f, "content")), want);
	json_decref(d);

	/* a share the weights cannot give is refused before anything is read */
	cr_assert_eq(mg_traffic_describe(&d, traffic, 101, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "a share is from 0% to 100%"), "%s", err.message);
	cr_assert_null(d);
}

/* DIR/plan.yaml for the real nginx, for tests that run the migrate binary. */
static void write_cli_plan(void)
{
	char yaml[4096];
	snprintf(yaml, sizeof(yaml),
	         "version: 1\n"
	         "name: shop\n"
	         "traffic:\n"
	         "  provider: nginx\n"
	         "  steps: [10, 25, 50, 75, 100]\n"
	         "  bake: 1h\n"
	         "  nginx:\n"
	         "    upstream_file: %s\n"
	         "    upstream: shop\n"
	         "    vm_servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
	         "    k8s_servers: [\"127.0.0.1:%d\"]\n"
	         "    test_command: \"%s\"\n"
	         "    reload_command: \"%s\"\n",
	         path("upstream.conf"), port[0], port[1], port[2], nginx_cmd("-t"),
	         nginx_cmd("-s reload"));
	write_file(path("plan.yaml"), yaml);
	tu_state_plan(path("plan.yaml"), dir);
}

Test(nginx, an_operators_down_is_kept_and_gates_the_step, .init = setup, .fini = teardown)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "upstream shop {\n"
	         "\tserver 127.0.0.1:%d;\n"
	         "\tserver 127.0.0.1:%d;\n"
	         "\tserver 127.0.0.1:%d down;\n"
	         "}\n",
	         port[0], port[1], port[2]);
	write_file(path("upstream.conf"), text);
	open_real_plan();
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	cr_assert_eq(mg_traffic_read(&st, traffic, &err), 0, "%s", err.message);
	cr_assert_eq(st.k8s_percent, 0);
	cr_assert_eq(st.servers[2].weight, 0);
	cr_assert_eq(st.servers[2].health, MG_HEALTH_MAINT);
	cr_assert_str_eq(st.servers[2].detail, "down in the upstream file");
	mg_traffic_state_clear(&st);

	cr_assert_eq(mg_traffic_apply(NULL, traffic, 10, false, &err), MG_ERROR);
	char want[1024];
	snprintf(want, sizeof(want),
	         "refusing to send more traffic to the cluster: nginx reports 127.0.0.1:%d (down "
	         "in the upstream file) not able to take it",
	         port[2]);
	cr_assert(strstr(err.message, want), "%s", err.message);
	assert_file(path("upstream.conf"), text);

	/* forced: still refused, before anything changes, saying how to hand the server over */
	worker_set before = snapshot();
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 10, true, &err), MG_ERROR);
	char *resolved = realpath(path("upstream.conf"), NULL);
	snprintf(want, sizeof(want),
	         "server 127.0.0.1:%d is `down` in %s (line 4) without migrate's mark: that is an "
	         "operator's `down`, which migrate keeps at every step (--force does not lift "
	         "it), so the cluster would get 0%% instead of 10%%; nothing was changed. To hand "
	         "it to migrate, add migrate's weight-0 mark after the ';' of its line (`server "
	         "127.0.0.1:%d down; " MARK "`): the next step then gives it its weight",
	         port[2], resolved, port[2]);
	free(resolved);
	cr_assert_str_eq(err.message, want);
	cr_assert_null(strstr(err.message, "reads back"), "%s", err.message);
	assert_file(path("upstream.conf"), text);
	assert_not_reloaded(&before);
	/* the dry run says the same */
	json_t *d = NULL;
	cr_assert_eq(mg_traffic_describe(&d, traffic, 10, &err), MG_ERROR);
	cr_assert(strstr(err.message, "without migrate's mark"), "%s", err.message);
	cr_assert_null(d);

	/* a VM the operator took out: the step towards the cluster is refused the same way */
	snprintf(text, sizeof(text),
	         "upstream shop {\n"
	         "\tserver 127.0.0.1:%d;\n"
	         "\tserver 127.0.0.1:%d max_fails=3 down;\n"
	         "\tserver 127.0.0.1:%d down; " MARK "\n"
	         "}\n",
	         port[0], port[1], port[2]);
	write_file(path("upstream.conf"), text);
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 10, false, &err), MG_ERROR);
	cr_assert(strstr(err.message, "(line 3) without migrate's mark"), "%s", err.message);
	cr_assert(strstr(err.message, "the cluster would get 18.2% instead of 10%"), "%s",
	          err.message);
	assert_file(path("upstream.conf"), text);
	assert_not_reloaded(&before);

	/* handed over with the mark: migrate owns the line and gives it its weight */
	snprintf(text, sizeof(text),
	         "upstream shop {\n"
	         "\tserver 127.0.0.1:%d;\n"
	         "\tserver 127.0.0.1:%d max_fails=3 down; " MARK "\n"
	         "\tserver 127.0.0.1:%d down; " MARK "\n"
	         "}\n",
	         port[0], port[1], port[2]);
	write_file(path("upstream.conf"), text);
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 10, false, &err), 0, "%s", err.message);
	char stepped[2048];
	snprintf(stepped, sizeof(stepped),
	         HEADER "upstream shop {\n"
	                "\tserver 127.0.0.1:%d weight=9;\n"
	                "\tserver 127.0.0.1:%d weight=9 max_fails=3;\n"
	                "\tserver 127.0.0.1:%d weight=2;\n"
	                "}\n",
	         port[0], port[1], port[2]);
	assert_file(path("upstream.conf"), stepped);
	wait_reloaded(&before);
	assert_traffic(FEW, 9, 2);
}

/* The same through the binary: `step --force` exits 1 with the reason, and nothing moved. */
Test(nginx, step_force_onto_an_operators_down_cluster_server_says_why, .init = setup,
     .fini = teardown)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "upstream shop {\n"
	         "\tserver 127.0.0.1:%d;\n"
	         "\tserver 127.0.0.1:%d;\n"
	         "\tserver 127.0.0.1:%d down;\n"
	         "}\n",
	         port[0], port[1], port[2]);
	write_file(path("upstream.conf"), text);
	write_cli_plan();
	worker_set before = snapshot();
	tu_output r = tu_migrate_plan(path("plan.yaml"), "--state-dir", path("state"), "step",
	                              "--force", "--reason", "test", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	char want[256];
	snprintf(want, sizeof(want), "server 127.0.0.1:%d is `down` in ", port[2]);
	cr_assert(strstr(r.err, want), "%s", r.err);
	snprintf(want, sizeof(want), "(`server 127.0.0.1:%d down; " MARK "`)", port[2]);
	cr_assert(strstr(r.err, want), "%s", r.err);
	cr_assert(strstr(r.err, "nothing was changed"), "%s", r.err);
	cr_assert_null(strstr(r.err, "reads back"), "%s", r.err);
	tu_output_free(&r);
	assert_file(path("upstream.conf"), text);
	assert_not_reloaded(&before);
	assert_traffic(FEW, 1, 0);
}

/* --- the file against the plan: no nginx needed ------------------------------------------- */

static void open_file_plan(void)
{
	open_plan("true", "true");
}

/* read, describe and apply all refuse the file with this code and message, and change nothing. */
static void assert_refused(int code, const char *want)
{
	mg_error err = MG_ERROR_INIT;
	char *before =
	    access(path("upstream.conf"), F_OK) ? NULL : read_file(path("upstream.conf"));
	mg_traffic_state st;
	json_t *d = NULL;
	cr_assert_eq(mg_traffic_read(&st, traffic, &err), code, "%s", err.message);
	cr_assert(strstr(err.message, want), "read: %s\nwanted: %s", err.message, want);
	cr_assert_eq(st.nservers, 0);
	cr_assert_null(st.servers);
	cr_assert_eq(mg_traffic_describe(&d, traffic, 50, &err), code, "%s", err.message);
	cr_assert(strstr(err.message, want), "describe: %s", err.message);
	cr_assert_null(d);
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 50, true, &err), code, "%s", err.message);
	cr_assert(strstr(err.message, want), "apply: %s", err.message);
	if (before) {
		assert_file(path("upstream.conf"), before);
		free(before);
	} else {
		cr_assert_neq(access(path("upstream.conf"), F_OK), 0, "apply created the file");
	}
}

Test(nginx, a_missing_file_tells_how_to_create_it, .init = setup_file, .fini = teardown_file)
{
	cr_assert_eq(unlink(path("upstream.conf")), 0);
	open_file_plan();
	char want[1024];
	snprintf(want, sizeof(want),
	         "%s does not exist: create it with an `upstream shop { ... }` block that has a "
	         "`server` line for each server of traffic.nginx, add `include %s;` to nginx's "
	         "http block and reload nginx; migrate only changes weights",
	         path("upstream.conf"), path("upstream.conf"));
	assert_refused(MG_ENOTFOUND, want);
}

Test(nginx, a_missing_upstream_block_is_named, .init = setup_file, .fini = teardown_file)
{
	write_file(path("upstream.conf"), "# upstream shop { server 127.0.0.1:18101; }\n"
	                                  "upstream other {\n\tserver 127.0.0.1:18101;\n}\n");
	open_file_plan();
	char want[512];
	snprintf(want, sizeof(want),
	         "%s has no `upstream shop { ... }` block: add one with a `server` line for each "
	         "server of traffic.nginx, then reload nginx",
	         path("upstream.conf"));
	assert_refused(MG_ENOTFOUND, want);
}

Test(nginx, missing_servers_are_named, .init = setup_file, .fini = teardown_file)
{
	write_file(path("upstream.conf"), "upstream shop {\n\tserver 127.0.0.1:18102;\n}\n");
	open_file_plan();
	char want[512];
	snprintf(want, sizeof(want),
	         "upstream shop in %s has no line for 127.0.0.1:18101, 127.0.0.1:18103: add "
	         "`server <host:port>;` for each, then reload nginx",
	         path("upstream.conf"));
	assert_refused(MG_ENOTFOUND, want);
}

/* tmpl with its "%s" (if any) replaced by the upstream file's path. */
static void with_path(char *buf, size_t size, const char *tmpl)
{
	const char *at = strstr(tmpl, "%s");
	if (at)
		snprintf(buf, size, "%.*s%s%s", (int)(at - tmpl), tmpl, path("upstream.conf"),
		         at + 2);
	else
		snprintf(buf, size, "%s", tmpl);
}

static void write_shop(const char *servers)
{
	char text[2048];
	snprintf(text, sizeof(text), "upstream shop {\n%s}\n", servers);
	write_file(path("upstream.conf"), text);
}

Test(nginx, files_that_do_not_match_the_plan, .init = setup_file, .fini = teardown_file)
{
	static const char three[] = "\tserver 127.0.0.1:18101;\n"
	                            "\tserver 127.0.0.1:18102;\n"
	                            "\tserver 127.0.0.1:18103;\n";
	static const struct {
		const char *servers, *extra, *want;
		int code;
	} cases[] = {
	    {three, "\tserver 127.0.0.1:9999 weight=3;\n\tserver 127.0.0.1:9998;\n",
	     "upstream shop in %s has servers that are in neither vm_servers nor k8s_servers of "
	     "traffic.nginx: 127.0.0.1:9999, 127.0.0.1:9998; nginx sends them traffic too, so add "
	     "them to the plan or remove them from the file",
	     MG_EINVALID},
	    {three, "\tserver 127.0.0.1:18102 weight=2;\n",
	     "%s:5: server 127.0.0.1:18102 is already in upstream shop (line 3); keep one line per "
	     "server",
	     MG_EINVALID},
	    {three, "\tserver 127.0.0.1:18104 backup;\n", "in neither vm_servers", MG_EINVALID},
	    {"\tserver 127.0.0.1:18101;\n\tserver 127.0.0.1:18102 backup;\n"
	     "\tserver 127.0.0.1:18103;\n",
	     "",
	     "%s:3: server 127.0.0.1:18102 is a backup server, which takes traffic only when the "
	     "others fail, so no weight gives it a share; remove `backup`",
	     MG_EINVALID},
	    {"\tserver 127.0.0.1:18101 weight=0;\n\tserver 127.0.0.1:18102;\n"
	     "\tserver 127.0.0.1:18103;\n",
	     "", "%s:2: \"weight=0\" is not a weight nginx accepts (1 or more)", MG_EINVALID},
	    {"\tserver 127.0.0.1:18101 weight=x;\n\tserver 127.0.0.1:18102;\n"
	     "\tserver 127.0.0.1:18103;\n",
	     "", "%s:2: \"weight=x\" is not a weight nginx accepts (1 or more)", MG_EINVALID},
	    {three, "\tserver;\n", "%s:5: `server` without an address", MG_EINVALID},
	    {three, "\tserver 127.0.0.1:18104\n", "%s:5: `server` is not ended by ';' before '}'",
	     MG_EINVALID},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char servers[1024], want[1024];
		snprintf(servers, sizeof(servers), "%s%s", cases[i].servers, cases[i].extra);
		write_shop(servers);
		with_path(want, sizeof(want), cases[i].want);
		open_file_plan();
		assert_refused(cases[i].code, want);
	}

	static const struct {
		const char *text, *want;
		size_t len; /* 0: strlen */
	} syntax[] = {
	    {"upstream shop {\n\tserver 127.0.0.1:18101;\n",
	     "%s: a block is not closed: missing '}'"},
	    {"}\n", "%s:1: unexpected '}'"},
	    {"upstream shop {\n}\nserver \"127.0.0.1:18101;\n}\n",
	     "%s:3: a quoted string is not closed"},
	    {"upstream shop {\n}\ninclude x", "%s:3: `include` is not ended by ';'"},
	    {"upstream shop {\n}\nupstream shop {\n}\n",
	     "%s:3: a second `upstream shop` block; nginx refuses duplicates, keep one"},
	    {NUL_TEXT, "%s is not a text file", sizeof(NUL_TEXT) - 1},
	};
	for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
		char want[1024];
		size_t len = syntax[i].len ? syntax[i].len : strlen(syntax[i].text);
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(
		    mg_fs_write_atomic(path("upstream.conf"), syntax[i].text, len, 0644, &err), 0);
		with_path(want, sizeof(want), syntax[i].want);
		open_file_plan();
		assert_refused(MG_EINVALID, want);
	}
}

Test(nginx, nginx_syntax_is_read_as_nginx_reads_it, .init = setup_file, .fini = teardown_file)
{
	/* quotes, a statement over several lines, a "${" that opens no block, braces in comments */
	static const char text[] = "map $uri ${x}y { default 1; } # { not a block\n"
	                           "upstream 'shop' {\n"
	                           "\tserver \"127.0.0.1:18101\"\n"
	                           "\t\tweight=4\tmax_conns=10;  # first\n"
	                           "\tserver 127.0.0.1:18102 weight=4 down; # migrate: weight 0\n"
	                           "\tserver 127.0.0.1:18103 weight=2; # migrate: weight 0\n"
	                           "}\n";
	write_file(path("upstream.conf"), text);
	open_file_plan();
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	cr_assert_eq(mg_traffic_read(&st, traffic, &err), 0, "%s", err.message);
	/* the second VM is drained by migrate; the mark on an up server means nothing */
	cr_assert_eq(st.servers[0].weight, 4);
	cr_assert_eq(st.servers[1].weight, 0);
	cr_assert_eq(st.servers[1].health, MG_HEALTH_UNKNOWN);
	cr_assert_eq(st.servers[2].weight, 2);
	cr_assert_eq(st.servers[2].health, MG_HEALTH_UNKNOWN);
	cr_assert_eq(st.k8s_percent, 100.0 * 2 / 6);
	mg_traffic_state_clear(&st);

	cr_assert_eq(mg_traffic_apply(NULL, traffic, 0, false, &err), 0, "%s", err.message);
	assert_file(path("upstream.conf"),
	            HEADER "map $uri ${x}y { default 1; } # { not a block\n"
	                   "upstream 'shop' {\n"
	                   "\tserver 127.0.0.1:18101 weight=1 max_conns=10;  # first\n"
	                   "\tserver 127.0.0.1:18102 weight=1;\n"
	                   "\tserver 127.0.0.1:18103 down; # migrate: weight 0\n"
	                   "}\n");
	/* the header is written once */
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 100, false, &err), 0, "%s", err.message);
	assert_file(path("upstream.conf"),
	            HEADER "map $uri ${x}y { default 1; } # { not a block\n"
	                   "upstream 'shop' {\n"
	                   "\tserver 127.0.0.1:18101 max_conns=10 down; # migrate: weight 0  # "
	                   "first\n"
	                   "\tserver 127.0.0.1:18102 down; # migrate: weight 0\n"
	                   "\tserver 127.0.0.1:18103 weight=1;\n"
	                   "}\n");
	/* the mark followed by the operator's comment is still the mark */
	cr_assert_eq(mg_traffic_read(&st, traffic, &err), 0, "%s", err.message);
	cr_assert_eq(st.k8s_percent, 100);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(st.servers[i].weight, 0);
		cr_assert_eq(st.servers[i].health, MG_HEALTH_UNKNOWN);
	}
	mg_traffic_state_clear(&st);
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 0, false, &err), 0, "%s", err.message);
	assert_file(path("upstream.conf"),
	            HEADER "map $uri ${x}y { default 1; } # { not a block\n"
	                   "upstream 'shop' {\n"
	                   "\tserver 127.0.0.1:18101 weight=1 max_conns=10;  # first\n"
	                   "\tserver 127.0.0.1:18102 weight=1;\n"
	                   "\tserver 127.0.0.1:18103 down; # migrate: weight 0\n"
	                   "}\n");
}

Test(nginx, every_server_down_reads_as_no_share, .init = setup_file, .fini = teardown_file)
{
	write_shop("\tserver 127.0.0.1:18101 down;\n\tserver 127.0.0.1:18102 down;\n"
	           "\tserver 127.0.0.1:18103 down;\n");
	open_file_plan();
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	cr_assert_eq(mg_traffic_read(&st, traffic, &err), 0, "%s", err.message);
	cr_assert_eq(st.k8s_percent, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(st.servers[i].health, MG_HEALTH_MAINT);
	mg_traffic_state_clear(&st);
	/* the operator's downs stay: migrate only writes weights */
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 0, true, &err), 0, "%s", err.message);
	assert_file(path("upstream.conf"), HEADER "upstream shop {\n"
	                                          "\tserver 127.0.0.1:18101 weight=1 down;\n"
	                                          "\tserver 127.0.0.1:18102 weight=1 down;\n"
	                                          "\tserver 127.0.0.1:18103 down;\n"
	                                          "}\n");
}

Test(nginx, the_file_keeps_its_mode_owner_and_symlink, .init = setup_file, .fini = teardown_file)
{
	char real[512];
	snprintf(real, sizeof(real), "%s", path("real.conf"));
	cr_assert_eq(rename(path("upstream.conf"), real), 0);
	cr_assert_eq(symlink("real.conf", path("upstream.conf")), 0);
	cr_assert_eq(chmod(real, 0640), 0);
	bool root = geteuid() == 0;
	if (root)
		cr_assert_eq(chown(real, 65534, 65534), 0);
	open_file_plan();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 50, false, &err), 0, "%s", err.message);

	struct stat sb;
	cr_assert_eq(lstat(path("upstream.conf"), &sb), 0);
	cr_assert(S_ISLNK(sb.st_mode), "the symlink was replaced by a file");
	cr_assert_eq(stat(real, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0640);
	if (root) {
		cr_assert_eq(sb.st_uid, 65534);
		cr_assert_eq(sb.st_gid, 65534);
	}
	char want[4096];
	expected(want, sizeof(want), 1, 2);
	assert_file(real, want);

	/* a failed step restores the target too, mode and owner included */
	open_plan("exit 4", "true");
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 75, false, &err), MG_ERROR);
	char msg[1024], *resolved = realpath(real, NULL);
	snprintf(msg, sizeof(msg),
	         "nginx rejected the new upstream file: `exit 4` failed with exit status 4: no "
	         "output; %s is back to its previous content",
	         resolved);
	free(resolved);
	cr_assert_str_eq(err.message, msg);
	assert_file(real, want);
	cr_assert_eq(lstat(path("upstream.conf"), &sb), 0);
	cr_assert(S_ISLNK(sb.st_mode));
	cr_assert_eq(stat(real, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0640);
	if (root)
		cr_assert_eq(sb.st_uid, 65534);
}

Test(nginx, a_command_killed_by_a_signal, .init = setup_file, .fini = teardown_file)
{
	open_plan("true", "echo half; kill -9 $$");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 10, false, &err), MG_ERROR);
	char msg[1024], *resolved = realpath(path("upstream.conf"), NULL);
	snprintf(
	    msg, sizeof(msg),
	    "nginx did not reload: `echo half; kill -9 $$` was killed by signal 9: half; %s is "
	    "back to its previous content",
	    resolved);
	free(resolved);
	cr_assert_str_eq(err.message, msg);
	assert_file(path("upstream.conf"), initial);
}

Test(nginx, a_failure_with_nothing_to_restore, .init = setup_file, .fini = teardown_file)
{
	open_file_plan();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 0, false, &err), 0, "%s", err.message);
	char *at0 = read_file(path("upstream.conf"));
	/* long, multi-line output is kept on one line and cut (YAML turns \\\\ into \\) */
	open_plan("printf 'line one\\\\n\\\\nline two\\\\n'; seq 1 400; exit 1", "true");
	cr_assert_eq(mg_traffic_apply(NULL, traffic, 0, false, &err), MG_ERROR);
	static const char want[] =
	    "nginx rejected the new upstream file: `printf 'line one\\n\\nline two\\n'; seq 1 400; "
	    "exit 1` failed with exit status 1: line one; line two; 1; 2; 3; ";
	cr_assert(!strncmp(err.message, want, strlen(want)), "%s", err.message);
	cr_assert(strstr(err.message, "..."), "%s", err.message);
	/* the file did not change, so it is not rewritten either */
	cr_assert_null(strstr(err.message, "back to its previous content"), "%s", err.message);
	cr_assert_lt(strlen(err.message), sizeof(err.message) - 1);
	assert_file(path("upstream.conf"), at0);
	free(at0);
}

/* --- a crash of migrate itself between the rename and the reload --------------------------- */

/*
 * `migrate step` killed (SIGKILL) while the reload command runs: the upstream
 * file already holds the new weights, nginx still runs the old ones. The
 * reload command of this plan stops while DIR/block exists and says so in
 * DIR/blocked (its process group), which is where the test kills migrate.
 */
static void write_crash_plan(void)
{
	char yaml[4096], block[512], blocked[512];
	snprintf(block, sizeof(block), "%s", path("block"));
	snprintf(blocked, sizeof(blocked), "%s", path("blocked"));
	snprintf(yaml, sizeof(yaml),
	         "version: 1\n"
	         "name: shop\n"
	         "traffic:\n"
	         "  provider: nginx\n"
	         "  steps: [10, 25, 50, 75, 100]\n"
	         "  bake: 1h\n"
	         "  nginx:\n"
	         "    upstream_file: %s\n"
	         "    upstream: shop\n"
	         "    vm_servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
	         "    k8s_servers: [\"127.0.0.1:%d\"]\n"
	         "    test_command: \"%s\"\n"
	         "    reload_command: \"if [ -e %s ]; then echo $$ > %s.tmp && mv %s.tmp %s; "
	         "exec sleep 30; fi; %s\"\n",
	         path("upstream.conf"), port[0], port[1], port[2], nginx_cmd("-t"), block, blocked,
	         blocked, blocked, nginx_cmd("-s reload"));
	write_file(path("plan.yaml"), yaml);
	tu_state_plan(path("plan.yaml"), dir);
}

Test(nginx, step_dry_run_json_calls_are_an_array_of_kinds, .init = setup, .fini = teardown)
{
	write_cli_plan();
	worker_set before = snapshot();
	tu_output r = tu_migrate_plan(path("plan.yaml"), "--state-dir", path("state"), "step",
	                              "--dry-run", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = tu_json_doc(&r), *calls = json_object_get(d, "calls");
	cr_assert(json_is_array(calls), "%s", r.out);
	cr_assert_eq(json_array_size(calls), 3, "%s", r.out);
	const char *const kinds[] = {"file", "command", "command"};
	for (size_t i = 0; i < 3; i++)
		cr_assert_str_eq(
		    json_string_value(json_object_get(json_array_get(calls, i), "kind")), kinds[i]);
	char want[4096];
	expected(want, sizeof(want), 9, 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(calls, 0), "content")),
	                 want);
	json_decref(d);
	tu_output_free(&r);
	assert_file(path("upstream.conf"), initial);
	assert_not_reloaded(&before);
}

/* Starts `migrate step` and kills it with SIGKILL once its reload command is blocked. */
static void crash_in_the_reload(void)
{
	write_file(path("block"), "");
	char *argv[] = {(char *)tu_migrate_bin(),
	                "-p",
	                (char *)path("plan.yaml"),
	                "--state-dir",
	                (char *)path("state"),
	                "step",
	                NULL};
	int errfd = open(path("step.err"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid_t mg = tu_spawn_fds(argv, -1, -1, errfd);
	close(errfd);
	cr_assert_gt(mg, 0, "fork: %s", strerror(errno));
	struct stat sb;
	for (int i = 0; i < 1000 && stat(path("blocked"), &sb) != 0; i++)
		usleep(10 * 1000);
	cr_assert_eq(stat(path("blocked"), &sb), 0,
	             "the reload command was not reached in 10 s: %s", read_file(path("step.err")));
	cr_assert_eq(kill(mg, SIGKILL), 0);
	int st;
	cr_assert_eq(waitpid(mg, &st, 0), mg);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "migrate ended before the kill");
	/* the blocked command has its own process group, which migrate's death leaves behind */
	char *pgid = read_file(path("blocked"));
	cr_assert_gt(atoi(pgid), 1);
	kill(-(pid_t)atoi(pgid), SIGKILL);
	free(pgid);
	cr_assert_eq(unlink(path("block")), 0);
	/* the kubernetes backend: the killed step's Lease holds the plan until it runs out */
	tu_state_wait_unlocked(path("plan.yaml"), path("state"));
}

Test(nginx, a_crash_between_rename_and_reload_is_reloaded_before_it_counts_as_applied,
     .init = setup, .fini = teardown)
{
	write_crash_plan();
	worker_set before = snapshot();
	crash_in_the_reload();
	/* the file says 10%, nginx still runs 0% */
	char want[4096];
	expected(want, sizeof(want), 9, 2);
	assert_file(path("upstream.conf"), want);
	assert_not_reloaded(&before);
	assert_traffic(FEW, 1, 0);

	/* what status says about it: migrate's own interrupted step, not a hand change */
	tu_output r =
	    tu_migrate_plan(path("plan.yaml"), "--state-dir", path("state"), "status", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "`migrate step` to 10% was interrupted at "), "%s", r.out);
	cr_assert_null(strstr(r.out, "DRIFT"), "%s", r.out);
	tu_output_free(&r);

	/* the next step reconciles: nginx must run the file before the step counts as taken */
	r = tu_migrate_plan(path("plan.yaml"), "--state-dir", path("state"), "step", NULL);
	cr_assert_eq(r.status, 4, "the reconciled step starts its bake: %d\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "so it was applied"), "%s", r.err);
	tu_output_free(&r);
	wait_reloaded(&before);
	assert_traffic(FEW, 9, 2);
	assert_file(path("upstream.conf"), want);

	r = tu_migrate_plan(path("plan.yaml"), "--state-dir", path("state"), "history", "-o",
	                    "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = tu_json_doc(&r), *recs = json_object_get(d, "records");
	json_t *last = json_array_get(recs, json_array_size(recs) - 1);
	cr_assert_str_eq(json_string_value(json_object_get(last, "action")), "reconcile");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(last, "evidence"), "outcome")),
	    "applied");
	json_decref(d);
	tu_output_free(&r);
}

/* The same crash, and then nginx refuses the file: the step is not called applied. */
Test(nginx, a_crash_then_a_failing_test_command_is_not_applied, .init = setup, .fini = teardown)
{
	write_crash_plan();
	worker_set before = snapshot();
	crash_in_the_reload();
	/* the operator's nginx -t now fails (say a certificate went missing) */
	char *plan_text = read_file(path("plan.yaml"));
	char *at = strstr(plan_text, "test_command: \"");
	cr_assert_not_null(at);
	char *end = strchr(at + 15, '"');
	char yaml[4096];
	snprintf(yaml, sizeof(yaml), "%.*stest_command: \"echo broken >&2; exit 1%s",
	         (int)(at - plan_text), plan_text, end);
	free(plan_text);
	write_file(path("plan.yaml"), yaml);

	tu_output r =
	    tu_migrate_plan(path("plan.yaml"), "--state-dir", path("state"), "step", NULL);
	cr_assert_eq(r.status, 1, "%d\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "broken"), "%s", r.err);
	cr_assert_null(strstr(r.err, "so it was applied"), "%s", r.err);
	tu_output_free(&r);
	assert_not_reloaded(&before);
	assert_traffic(FEW, 1, 0);
	r = tu_migrate_plan(path("plan.yaml"), "--state-dir", path("state"), "status", "-o", "json",
	                    "--offline", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *d = tu_json_doc(&r);
	cr_assert(json_is_object(json_object_get(json_object_get(d, "state"), "pending")),
	          "the interrupted step is still pending: %s", r.out);
	json_decref(d);
	tu_output_free(&r);
}
