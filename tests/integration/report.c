/*
 * `migrate report` end to end: a journal written by the real binary against a
 * real HAProxy (tests/sandbox/haproxy.sh, three tests/servers/upstream.py
 * behind it), a real Prometheus over data made for that run's own times
 * (tu_prometheus_start: promtool blocks), and the page rendered by a real
 * headless browser (Debian's chromium) in a network namespace of its own, so
 * it is offline whatever the page says: it must load without a console
 * message, show a series per side in each RED chart and a marker per journal
 * record of the period (an intent and its result share one), and keep the
 * journal's hostile text as text.
 *
 * Works with the state in the cluster too (MG_TEST_STATE_BACKEND=kubernetes):
 * the report reads the journal through the same store as history.
 */
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
#include "store.h"

#define CHROMIUM "/usr/bin/chromium"

static char dir[64];
static pid_t haproxy_pid, upstream_pid[3];
static int upstream_stdin[3] = {-1, -1, -1};
static tu_prometheus prom;

static const char *path(const char *name)
{
	return tu_at("%s/%s", dir, name);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "report");
	haproxy_pid = 0;
	for (int i = 0; i < 3; i++)
		upstream_pid[i] = 0, upstream_stdin[i] = -1;
	memset(&prom, 0, sizeof(prom));
	setenv("NO_PROXY", "127.0.0.1", 1);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("NO_COLOR");
}

static void teardown(void)
{
	tu_prometheus_stop(&prom);
	tu_state_stop();
	tu_stop(&haproxy_pid);
	for (int i = 0; i < 3; i++)
		if (upstream_pid[i] > 0) {
			close(upstream_stdin[i]);
			tu_stop(&upstream_pid[i]);
		}
	tu_tmpdir_remove(dir);
}

TestSuite(report, .init = setup, .fini = teardown, .timeout = 90);

/* ---- a real balancer ---- */

static bool listening(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* One runtime API command; the reply (malloc'd), NULL when the socket is not there yet. */
static char *api(const char *cmd)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path("admin.sock"));
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char line[256];
	snprintf(line, sizeof(line), "%s\n", cmd);
	cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	char *buf = calloc(1, 65536);
	size_t n = 0;
	for (int i = 0; i < 100 && n < 65535; i++) {
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

/* HAProxy with vm-01, vm-02 and k8s (weight 0) in backend be, every server UP. */
static void balancer_start(void)
{
	const char *names[3] = {"vm-01", "vm-02", "k8s"};
	char addrs[3][64];
	int ports[3];
	for (int i = 0; i < 3; i++) {
		ports[i] = tu_free_port();
		char port[16];
		snprintf(port, sizeof(port), "%d", ports[i]);
		snprintf(addrs[i], sizeof(addrs[i]), "%s=127.0.0.1:%d", names[i], ports[i]);
		char *argv[] = {"/usr/bin/python3",
		                "tests/servers/upstream.py",
		                (char *)names[i],
		                "127.0.0.1",
		                port,
		                NULL};
		upstream_pid[i] = tu_spawn_piped(argv, &upstream_stdin[i], NULL);
	}
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 200 && !listening(ports[i]); k++)
			sleep_ms(25);
		cr_assert(listening(ports[i]), "upstream %s did not start", names[i]);
	}
	char fp[16];
	snprintf(fp, sizeof(fp), "%d", tu_free_port());
	char *argv[] = {"/bin/sh", "tests/sandbox/haproxy.sh",
	                "-d",      dir,
	                "-f",      fp,
	                "-b",      "be",
	                addrs[0],  addrs[1],
	                addrs[2],  NULL};
	haproxy_pid = tu_spawn_piped(argv, NULL, NULL);
	/* HAProxy counts a server UP only after its first check */
	int up = 0;
	for (int i = 0; i < 400 && up < 3; i++) {
		char *s = api("show stat be 4 -1");
		up = 0;
		for (char *p = s ? strstr(s, ",UP,") : NULL; p; p = strstr(p + 1, ",UP,"))
			up++;
		free(s);
		if (up < 3)
			sleep_ms(25);
	}
	cr_assert_geq(up, 3, "HAProxy did not report its 3 servers UP in 10 s");
	free(api("set weight be/k8s 0"));
}

static void write_plan(const char *slo)
{
	FILE *f = fopen(path("plan.yaml"), "w");
	cr_assert_not_null(f);
	fprintf(f,
	        "version: 1\n"
	        "name: shop\n"
	        "description: the <shop> & its \"web\"\n"
	        "traffic:\n"
	        "  provider: haproxy\n"
	        "  steps: [10, 50, 100]\n"
	        "  bake: 1s\n"
	        "  haproxy:\n"
	        "    socket: %s\n"
	        "    backend: be\n"
	        "    vm_servers: [vm-01, vm-02]\n"
	        "    k8s_servers: [k8s]\n"
	        "%s",
	        path("admin.sock"), slo ? slo : "");
	cr_assert_eq(fclose(f), 0);
	tu_state_plan(path("plan.yaml"), dir);
}

static void write_slo_plan(const char *url)
{
	char slo[512];
	snprintf(slo, sizeof(slo),
	         "slo:\n"
	         "  prometheus: { url: \"%s\", timeout: 3s }\n"
	         "  interval: 1s\n"
	         "  window: 5s\n"
	         "  red: { source: haproxy, backend: be, max_error_rate: 5%%, max_latency: "
	         "250ms }\n",
	         url);
	write_plan(slo);
}

static const char hostile[] = "</title><script>alert(1)</script> & \"quotes\" \x1b[2J";

static void run_ok(const char *first, ...)
{
	char *args[16];
	size_t n = 0;
	args[n++] = "-p";
	args[n++] = (char *)path("plan.yaml");
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a && n < 15; a = va_arg(ap, const char *))
		args[n++] = (char *)a;
	va_end(ap);
	args[n] = NULL;
	tu_output r = tu_migrate(args[0], args[1], args[2], n > 3 ? args[3] : NULL,
	                         n > 4 ? args[4] : NULL, n > 5 ? args[5] : NULL,
	                         n > 6 ? args[6] : NULL, n > 7 ? args[7] : NULL, NULL);
	cr_assert_eq(r.status, 0, "migrate %s: exit %d\n%s%s", first, r.status, r.out, r.err);
	tu_output_free(&r);
}

/*
 * A short migration by the real binary: two steps, a pause with hostile text,
 * a resume, a rollback. 7 records, 5 events. The bake is 1 s.
 */
static void migrate_a_little(void)
{
	balancer_start();
	write_plan(NULL);
	run_ok("step", "--reason", "canary", NULL);
	sleep_ms(1100);
	run_ok("step", NULL);
	run_ok("pause", "--reason", hostile, NULL);
	run_ok("resume", NULL);
	run_ok("rollback", "--reason", "5xx & latency", NULL);
}

/* The journal's first and last times (ms) and its records. */
static json_t *journal(int64_t *first, int64_t *last)
{
	json_t *recs = tu_state_journal(path("plan.yaml"), NULL);
	cr_assert_eq(json_array_size(recs), 7, "7 records, not %zu", json_array_size(recs));
	cr_assert_eq(mg_time_parse(first, json_string_value(
	                                      json_object_get(json_array_get(recs, 0), "time"))),
	             0);
	cr_assert_eq(mg_time_parse(
	                 last, json_string_value(json_object_get(json_array_get(recs, 6), "time"))),
	             0);
	return recs;
}

/* ---- Prometheus over data made for this run ---- */

/*
 * HAProxy's exporter as Prometheus would have scraped it every second from
 * 60 s before to 60 s after the run: 100 requests a second, the cluster's
 * share as the journal's read-backs say, 2% of the cluster's requests 5xx
 * and none of the VMs'; average response times 40 ms (cluster) and 20 ms.
 */
static void prometheus_for(json_t *recs, int64_t first, int64_t last)
{
	long long a = first / 1000 - 60, z = last / 1000 + 60;
	size_t n = (size_t)(z - a + 1);
	double *share = calloc(n, sizeof(double));
	cr_assert_not_null(share);
	for (size_t k = 0; k < n; k++) {
		size_t i;
		json_t *r;
		json_array_foreach(recs, i, r)
		{
			int64_t rt;
			json_t *pct = json_object_get(json_object_get(r, "after"), "k8s_percent");
			if (!mg_time_parse(&rt, json_string_value(json_object_get(r, "time"))) &&
			    rt / 1000 <= a + (long long)k && json_is_number(pct) &&
			    !strcmp(json_string_value(json_object_get(r, "action")), "result"))
				share[k] = json_number_value(pct);
		}
	}
	char *om = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&om, &len);
	cr_assert_not_null(f);
	fputs("# TYPE haproxy_server_http_responses counter\n", f);
	const char *srv[3] = {"vm-01", "vm-02", "k8s"};
	for (int s = 0; s < 3; s++)
		for (int c = 0; c < 2; c++) {
			double total = c ? 1 : 1000;
			for (size_t k = 0; k < n; k++) {
				double req = s == 2 ? share[k] : 100 * (1 - share[k] / 100) / 2;
				total += s == 2 ? req * (c ? 0.02 : 0.98) : c ? 0 : req;
				fprintf(
				    f,
				    "haproxy_server_http_responses_total{proxy=\"be\",server=\"%s\","
				    "code=\"%s\"} %.3f %lld\n",
				    srv[s], c ? "5xx" : "2xx", total, a + (long long)k);
			}
		}
	fputs("# TYPE haproxy_server_response_time_average_seconds gauge\n", f);
	for (int s = 0; s < 3; s++)
		for (size_t k = 0; k < n; k++)
			fprintf(
			    f,
			    "haproxy_server_response_time_average_seconds{proxy=\"be\",server=\"%s\"} "
			    "%s %lld\n",
			    srv[s], s == 2 ? "0.04" : "0.02", a + (long long)k);
	fputs("# EOF\n", f);
	cr_assert_eq(fclose(f), 0);
	free(share);
	char why[4096], pdir[128];
	snprintf(pdir, sizeof(pdir), "%s/prom", dir);
	cr_assert_eq(mkdir(pdir, 0755), 0);
	bool ok = tu_prometheus_start(&prom, pdir, om, why, sizeof(why));
	free(om);
	cr_assert(ok, "%s", why);
}

/* ---- the browser ---- */

static bool netns_ok(void)
{
	char *argv[] = {"/usr/bin/unshare", "-n", "/bin/true", NULL};
	tu_output r = tu_capture(argv);
	bool ok = r.status == 0;
	tu_output_free(&r);
	return ok;
}

static char *slurp(const char *file)
{
	FILE *f = fopen(file, "r");
	cr_assert_not_null(f, "%s: %s", file, strerror(errno));
	size_t cap = 1 << 16, n = 0, got;
	char *buf = malloc(cap);
	while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (n + 1 >= cap)
			buf = realloc(buf, cap *= 2);
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/*
 * The page as Chromium's DOM after loading it (--dump-dom), offline: in a
 * network namespace with nothing but a loopback that is down (unshare -n, when
 * it may: root, as in CI), with no proxy, no host names resolved, no
 * background networking, and a throwaway profile. Console messages (errors,
 * CSP violations) are logged to stderr as CONSOLE lines: there must be none.
 */
static char *browse_log(const char *page);

static char *browse(const char *page)
{
	char *log = browse_log(page);
	for (char *l = strstr(log, "CONSOLE"); l; l = strstr(l + 1, "CONSOLE")) {
		char *eol = strchr(l, '\n');
		cr_assert_fail("the page logged to the console: %.*s", (int)(eol ? eol - l : 300),
		               l);
	}
	free(log);
	char *dom = slurp(path("dom.html"));
	cr_assert(strstr(dom, "<svg"), "no SVG in the DOM:\n%.2000s", dom);
	return dom;
}

/* Loads page; its DOM in dir/dom.html; returns what chromium logged (malloc'd). */
static char *browse_log(const char *page)
{
	cr_assert_eq(access(CHROMIUM, X_OK), 0,
	             CHROMIUM " is missing: `make deps` installs it (the package chromium)");
	char profile[128], url[300];
	snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium", dir);
	snprintf(url, sizeof(url), "file://%s", page);
	char *argv[32];
	size_t n = 0;
	if (netns_ok()) {
		argv[n++] = "/usr/bin/unshare";
		argv[n++] = "-n";
	}
	char *flags[] = {CHROMIUM,
	                 "--headless",
	                 "--disable-gpu",
	                 "--no-sandbox",
	                 "--no-proxy-server",
	                 "--host-resolver-rules=MAP * ~NOTFOUND",
	                 profile,
	                 "--no-first-run",
	                 "--disable-extensions",
	                 "--disable-background-networking",
	                 "--disable-component-update",
	                 "--disable-sync",
	                 "--disable-default-apps",
	                 "--disable-dev-shm-usage",
	                 "--mute-audio",
	                 "--enable-logging=stderr",
	                 "--v=0",
	                 "--dump-dom",
	                 url,
	                 NULL};
	for (size_t i = 0; flags[i]; i++)
		argv[n++] = flags[i];
	argv[n] = NULL;
	int out = open(path("dom.html"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(path("chromium.log"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(out >= 0 && err >= 0);
	int64_t t0 = tu_now_ms();
	pid_t pid = tu_spawn_fds(argv, -1, out, err);
	close(out);
	close(err);
	cr_assert_gt(pid, 0);
	int st = 0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (tu_now_ms() - t0 > 60000) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			cr_assert_fail("chromium did not finish in 60 s:\n%s",
			               slurp(path("chromium.log")));
		}
		sleep_ms(50);
	}
	char *log = slurp(path("chromium.log"));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "chromium: status %d\n%s", st, log);
	return log;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Every seq of recs in the DOM's markers exactly once; the number of markers. */
static size_t expect_markers(const char *dom, json_t *recs)
{
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		long long seq = json_integer_value(json_object_get(r, "seq"));
		int found = 0;
		for (const char *p = strstr(dom, "data-seq=\""); p;
		     p = strstr(p + 1, "data-seq=\"")) {
			const char *q = p + 10;
			while (*q && *q != '"') {
				char *end;
				found += strtoll(q, &end, 10) == seq;
				q = *end == ' ' ? end + 1 : end;
			}
		}
		cr_assert_eq(found, 1, "record %lld (%s %s) is in %d markers", seq,
		             json_string_value(json_object_get(r, "command")),
		             json_string_value(json_object_get(r, "action")), found);
	}
	return count(dom, "class=\"marker\"");
}

/* ---- the tests ---- */

Test(report, a_real_run_charted_from_prometheus_loads_clean_in_chromium)
{
	migrate_a_little();
	int64_t first, last;
	json_t *recs = journal(&first, &last);
	prometheus_for(recs, first, last);
	write_slo_plan(prom.url);
	char since[40], until[40];
	mg_time_format(since, sizeof(since), first - 10000);
	mg_time_format(until, sizeof(until), last + 10000);

	int64_t t0 = tu_now_ms();
	tu_output r = tu_migrate_plan(path("plan.yaml"), "report", "--since", since, "--until",
	                              until, "--out", path("page.html"), NULL);
	int64_t took = tu_now_ms() - t0;
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "shop: report of "), "%s", r.out);
	cr_assert(strstr(r.out, "(7 journal records as 5 events; RED charts from Prometheus) "
	                        "written to "),
	          "%s", r.out);
	cr_assert_str_eq(r.err, "");
	tu_output_free(&r);
	cr_log_info("report with 6 range queries: %lld ms", (long long)took);
	struct stat st;
	cr_assert_eq(stat(path("page.html"), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);

	/* the model: a series per side with data, each kind of event */
	r = tu_migrate_plan(path("plan.yaml"), "report", "--since", since, "--until", until, "-o",
	                    "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = tu_json_doc(&r);
	tu_output_free(&r);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "command")), "report");
	cr_assert(json_is_true(json_object_get(doc, "ok")));
	json_t *metrics = json_object_get(doc, "metrics");
	cr_assert(json_is_true(json_object_get(metrics, "available")));
	size_t i;
	json_t *s;
	int with_data = 0;
	json_array_foreach(json_object_get(metrics, "series"), i, s)
	{
		const char *m = json_string_value(json_object_get(s, "metric"));
		const char *side = json_string_value(json_object_get(s, "side"));
		size_t k;
		json_t *p;
		int values = 0;
		json_array_foreach(json_object_get(s, "points"), k, p)
		{
			json_t *v = json_object_get(p, "value");
			if (!json_is_number(v))
				continue;
			values++;
			double x = json_number_value(v);
			if (!strcmp(m, "error_rate"))
				cr_assert(fabs(x - (strcmp(side, "vms") ? 0.02 : 0)) < 0.002,
				          "%s %s: %g", m, side, x);
			if (!strcmp(m, "latency"))
				cr_assert(fabs(x - (strcmp(side, "vms") ? 0.04 : 0.02)) < 1e-9,
				          "%s %s: %g", m, side, x);
		}
		with_data += values > 0;
	}
	cr_assert_eq(with_data, 7, "every series has data");
	json_t *sum = json_object_get(doc, "summary");
	cr_assert_eq(json_integer_value(json_object_get(sum, "steps")), 2);
	cr_assert_eq(json_integer_value(json_object_get(sum, "rollbacks")), 1);
	cr_assert_eq(json_integer_value(json_object_get(sum, "pauses")), 1);
	cr_assert_eq(json_real_value(json_object_get(sum, "max_percent")), 50);
	json_decref(doc);

	/* the charts alone: well-formed XML */
	r = tu_migrate_plan(path("plan.yaml"), "report", "--since", since, "--until", until, "-o",
	                    "svg", "--out", path("charts.svg"), NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	tu_output_free(&r);
	char *py[] = {(char *)tu_python(), "-c",
	              "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
	              (char *)path("charts.svg"), NULL};
	r = tu_capture(py);
	cr_assert_eq(r.status, 0, "charts.svg is not XML: %s", r.err);
	tu_output_free(&r);

	/* the page in a browser */
	char *dom = browse(path("page.html"));
	const char *metric[] = {"requests", "error_rate", "latency"};
	for (size_t m = 0; m < 3; m++)
		for (int side = 0; side < 2; side++) {
			char needle[160];
			snprintf(needle, sizeof(needle),
			         "class=\"series\" data-metric=\"%s\" data-side=\"%s\" "
			         "data-points=\"yes\"",
			         metric[m], side ? "vms" : "cluster");
			cr_assert(strstr(dom, needle), "no %s in the DOM", needle);
		}
	cr_assert(strstr(dom, "data-metric=\"share_applied\""));
	cr_assert(strstr(dom, "data-metric=\"share_read_back\""));
	cr_assert(strstr(dom, "data-metric=\"share\" data-side=\"cluster\" data-points=\"yes\""));
	cr_assert_eq(expect_markers(dom, recs), 5);
	/* the hostile reason stayed text: no script element, its words escaped in a <title> */
	cr_assert_null(strstr(dom, "<script"));
	cr_assert(strstr(dom, "reason: &lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; "
	                      "\"quotes\" \\x1b[2J"),
	          "%s", strstr(dom, "reason: "));
	cr_assert(strstr(dom, "the &lt;shop&gt; &amp; its \"web\""));
	free(dom);
	json_decref(recs);
}

Test(report, without_prometheus_the_journal_alone_and_it_says_so)
{
	migrate_a_little();
	int64_t first, last;
	json_t *recs = journal(&first, &last);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", tu_free_port()); /* nobody there */
	write_slo_plan(url);
	tu_output r =
	    tu_migrate_plan(path("plan.yaml"), "report", "--out", path("page.html"), NULL);
	cr_assert_eq(r.status, 0, "a report without metrics is still a report: %s", r.err);
	cr_assert(strstr(r.out, "(7 journal records as 5 events; from the journal alone)"), "%s",
	          r.out);
	cr_assert(strstr(r.err, "warning: prometheus http://127.0.0.1:"), "%s", r.err);
	cr_assert(strstr(r.err, "traffic and verdicts from the journal only"), "%s", r.err);
	tu_output_free(&r);
	char *dom = browse(path("page.html"));
	cr_assert(strstr(dom, "id=\"no-metrics\""));
	cr_assert(strstr(dom, "did not answer"));
	cr_assert_null(strstr(dom, "data-metric=\"error_rate\""));
	cr_assert(strstr(dom, "data-metric=\"share_read_back\" data-side=\"cluster\""));
	cr_assert_eq(expect_markers(dom, recs), 5);
	free(dom);
	json_decref(recs);
}

Test(report, bad_input_is_exit_2_with_a_clear_message)
{
	write_plan(NULL);
	const char *p = path("plan.yaml");
	static const struct {
		const char *a[6];
		const char *says;
	} cases[] = {
	    {{"--since", "yesterday"}, "--since yesterday: not an RFC 3339 UTC time"},
	    {{"--until", "2026-13-01T00:00:00Z"}, "--until 2026-13-01T00:00:00Z: not an RFC 3339"},
	    {{"--since", "2026-01-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"},
	     "is not before --until"},
	    {{"-o", "text"}, "`migrate report` prints html (the default), svg or json, not text"},
	    {{"-o", "yaml"},
	     "--output yaml is for configmap and render; `migrate report` prints "
	     "html (the default), svg or json"},
	    {{"-o", "pdf"}, "--output takes text, json, yaml, html or svg, not \"pdf\""},
	    {{"--out", ""}, "--out needs a file name"},
	    {{"extra"}, "unexpected argument 'extra'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tu_output r = tu_migrate_plan(p, "report", cases[i].a[0], cases[i].a[1],
		                              cases[i].a[2], cases[i].a[3], NULL);
		cr_assert_eq(r.status, 2, "case %zu: exit %d\n%s", i, r.status, r.err);
		cr_assert(strstr(r.err, cases[i].says), "case %zu: %s", i, r.err);
		cr_assert_str_eq(r.out, "", "case %zu", i);
		tu_output_free(&r);
	}
	/* html and svg belong to report */
	tu_output r = tu_migrate_plan(p, "status", "--offline", "-o", "html", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(
	    strstr(r.err, "--output html is for report; `migrate status` prints text or json"),
	    "%s", r.err);
	tu_output_free(&r);
	/* with -o json, the error as a JSON document */
	r = tu_migrate_plan(p, "report", "--since", "nope", "-o", "json", NULL);
	cr_assert_eq(r.status, 2);
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "error"), "kind")),
	                 "invalid input");
	json_decref(doc);
	tu_output_free(&r);
	r = tu_migrate("help", "report", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "usage: migrate report [options] [--since TIME] [--until TIME] "
	                        "[-o html|svg|json] [--out FILE]"),
	          "%s", r.out);
	tu_output_free(&r);
}

Test(report, out_replaces_a_file_whole_and_an_unwritable_one_is_exit_1)
{
	write_plan(NULL);
	const char *p = path("plan.yaml");
	/* no state at all yet: an empty report, not an error */
	tu_write_file(path("page.html"), "old");
	tu_output r = tu_migrate_plan(p, "report", "--out", path("page.html"), NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "(0 journal records as 0 events; from the journal alone)"), "%s",
	          r.out);
	cr_assert(strstr(r.err, "the plan has no slo section"), "%s", r.err);
	tu_output_free(&r);
	char *page = slurp(path("page.html"));
	cr_assert(!strncmp(page, "<!DOCTYPE html>", 15));
	cr_assert(strstr(page, "</html>\n"));
	free(page);
	char list[512];
	tu_list_dir(list, sizeof(list), dir);
	cr_assert_null(strstr(list, ".tmp"), "a temporary file left behind: %s", list);
	/* a directory that does not exist: nothing written, exit 1 */
	r = tu_migrate_plan(p, "report", "--out", path("no/such/dir/page.html"), NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "cannot write"), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	tu_output_free(&r);
	/* -o json --out: the document in the file, nothing on stdout */
	r = tu_migrate_plan(p, "report", "-o", "json", "--out", path("r.json"), NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	tu_output_free(&r);
	char *text = slurp(path("r.json"));
	json_t *doc = json_loads(text, 0, NULL);
	cr_assert_not_null(doc, "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "command")), "report");
	cr_assert_eq(json_integer_value(json_object_get(doc, "records")), 0);
	json_decref(doc);
	free(text);
	/* without --out, the page on stdout */
	r = tu_migrate_plan(p, "report", "-o", "svg", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(!strncmp(r.out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=", 50),
	          "%.80s", r.out);
	tu_output_free(&r);
}

/* The check above is only worth something if a page that does log is seen to. */
Test(report, the_browser_check_sees_a_page_that_logs_or_breaks_its_policy)
{
	tu_write_file(path("bad.html"),
	              "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
	              "content=\"default-src 'none'\"><title>x</title></head><body>"
	              "<script>console.error('boom')</script></body></html>\n");
	char *log = browse_log(path("bad.html"));
	cr_assert(strstr(log, "CONSOLE"), "chromium logged no console line:\n%s", log);
	cr_assert(strstr(log, "Content Security Policy"), "%s", log);
	free(log);
}
