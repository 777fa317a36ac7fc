/*
 * Secrets never leave the process: the migrate binary against servers that
 * quote the credential back (tests/servers/cloudflare.py and promfault.py in
 * their echo modes: the Authorization header, and the bare token placed so
 * that every usual cut falls in its middle). Neither the token nor its first
 * half may appear in stdout, stderr, any file of the state directory or
 * `history -v`, at any verbosity.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"

#define CF_TOKEN   "cf-Tk7-integration-SECRET-4e1d9a"
#define PROM_TOKEN "prom-Zq8-echo-SECRET-77b3c0e1"
#define ACCOUNT    "01a7362d577a6c3019a474fd6f485823"
#define ZONE       "023e105f4ecef8ad9ca31a8372d0c353"
#define LB         "699d98642c564d2e855e9661899b7252"
#define VM_POOL    "17b5962d775c646f3f9725cbc7a53df4"
#define K8S_POOL   "9290f38c5d07c2e2f4df57b1f61d4196"

static char dir[256], plan[300];
static tu_cloudflare cf = TU_CLOUDFLARE_INIT;
static pid_t prom_pid = -1;
static int prom_in = -1, prom_port;

static void teardown(void)
{
	tu_cloudflare_stop(&cf);
	if (prom_in >= 0)
		close(prom_in);
	prom_in = -1;
	tu_stop(&prom_pid);
	tu_state_stop();
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "secrets");
	setenv("NO_PROXY", "127.0.0.1", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("ALL_PROXY");
	setenv("MG_TEST_CF_TOKEN", CF_TOKEN, 1);
	setenv("MG_TEST_PROM_TOKEN", PROM_TOKEN, 1);
	char why[4096];
	if (!tu_make_test_certs(dir, why, sizeof(why)) ||
	    !tu_cloudflare_start(&cf, dir, CF_TOKEN, why, sizeof(why))) {
		teardown();
		cr_assert_fail("%s", why);
	}
}

TestSuite(secrets, .init = setup, .fini = teardown, .timeout = 120);

static void write_plan(void)
{
	char text[4096];
	snprintf(text, sizeof(text),
	         "version: 1\n"
	         "name: shop\n"
	         "traffic:\n"
	         "  provider: cloudflare\n"
	         "  steps: [10, 50, 100]\n"
	         "  bake: 1m\n"
	         "  cloudflare:\n"
	         "    api_url: https://127.0.0.1:%d/client/v4\n"
	         "    account_id: \"" ACCOUNT "\"\n"
	         "    zone_id: \"" ZONE "\"\n"
	         "    load_balancer_id: \"" LB "\"\n"
	         "    vm_pool: \"" VM_POOL "\"\n"
	         "    k8s_pool: \"" K8S_POOL "\"\n"
	         "    token_env: MG_TEST_CF_TOKEN\n"
	         "    ca_file: %s/ca.pem\n"
	         "    timeout: 5s\n"
	         "slo:\n"
	         "  prometheus:\n"
	         "    url: \"http://127.0.0.1:%d\"\n"
	         "    token_env: MG_TEST_PROM_TOKEN\n"
	         "    timeout: 2s\n"
	         "  checks:\n"
	         "    - name: up\n"
	         "      query: up{job=\"shop\"}\n"
	         "      min: 1\n",
	         cf.api_port, dir, prom_port);
	snprintf(plan, sizeof(plan), "%s/plan.yaml", dir);
	tu_write_file(plan, text);
	tu_state_plan(plan, dir); /* MG_TEST_STATE_BACKEND */
}

static void echo_on(const char *mode)
{
	json_decref(tu_cloudflare_ctl(&cf, "POST", "/echo", mode));
}

/* Any 12 bytes of the token in text (a cut before scrubbing leaves a piece of it). */
static const char *leak_in(const char *text, const char *token)
{
	size_t n = strlen(token);
	for (size_t i = 0; text && i + 12 <= n; i++) {
		char piece[13];
		snprintf(piece, sizeof(piece), "%.12s", token + i);
		const char *p = strstr(text, piece);
		if (p)
			return p;
	}
	return NULL;
}

static void no_leak(const char *what, const char *text)
{
	const char *toks[] = {CF_TOKEN, PROM_TOKEN};
	for (size_t i = 0; i < 2; i++) {
		const char *p = leak_in(text, toks[i]);
		cr_assert_null(p, "%s holds a piece of the token %s: ...%.120s", what, toks[i],
		               p ? (p - text > 80 ? p - 80 : text) : "");
	}
}

static void run_no_leak(const char *what, tu_output r)
{
	char w[256];
	snprintf(w, sizeof(w), "stdout of %s", what);
	no_leak(w, r.out);
	snprintf(w, sizeof(w), "stderr of %s", what);
	no_leak(w, r.err);
	tu_output_free(&r);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char chunk[4096];
	size_t r;
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (len + r + 1 > cap) {
			cap = (len + r + 1) * 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		memcpy(buf + len, chunk, r);
		len += r;
		buf[len] = '\0';
	}
	fclose(f);
	return buf ? buf : strdup("");
}

/* Every file under path (the state directory), recursively; how many were read. */
static size_t files_no_leak(const char *path, int depth)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && depth < 4) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char p[1024];
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		struct stat sb;
		if (lstat(p, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			n += files_no_leak(p, depth + 1);
		} else if (S_ISREG(sb.st_mode)) {
			char *text = slurp(p);
			no_leak(p, text);
			free(text);
			n++;
		}
	}
	closedir(d);
	return n;
}

/*
 * Everything of the plan's state: the files of the state directory, or every write to the
 * state's cluster (MG_TEST_STATE_BACKEND=kubernetes); how many files (or writes) there were.
 */
static size_t state_no_leak(void)
{
	if (!tu_state_kube())
		return files_no_leak(tu_at("%s/.migrate", dir), 0);
	char *text = tu_state_everything(plan, NULL);
	no_leak("a write to the state's cluster", text);
	size_t n = strlen(text);
	free(text);
	return n;
}

static const char *const verbosity[] = {NULL, "-v", "-vv"};

/*
 * The pool health of status (a 400 that quotes the token for the VM pool, an
 * unhealthy PoP whose failure_reason quotes it for the cluster pool), a step
 * that Cloudflare refuses with the token quoted (the result record), check
 * against a Prometheus that quotes it, and the journal as history shows it.
 */
Test(secrets, echoed_tokens_reach_no_output_file_or_journal)
{
	prom_pid = tu_promfault_start(&prom_port, &prom_in, "--token", PROM_TOKEN, "--echo",
	                              "error", NULL);
	write_plan();
	echo_on("{\"on\": true}");
	for (size_t v = 0; v < 3; v++) {
		const char *vb = verbosity[v];
		run_no_leak("status", tu_migrate_plan(plan, "status", vb, NULL));
		run_no_leak("status -o json",
		            tu_migrate_plan(plan, "status", "-o", "json", vb, NULL));
		run_no_leak("check", tu_migrate_plan(plan, "check", vb, NULL));
		run_no_leak("check -o json",
		            tu_migrate_plan(plan, "check", "-o", "json", vb, NULL));
	}
	/* the first step needs no gate: it reaches Cloudflare, which refuses with the token */
	tu_output r = tu_migrate_plan(plan, "step", "-vv", NULL);
	cr_assert_neq(r.status, 0, "the step succeeded: %s", r.out);
	run_no_leak("step -vv", r);
	run_no_leak("step -o json", tu_migrate_plan(plan, "step", "-o", "json", NULL));
	/* past the down pool: the PATCH is refused with the token quoted, into the result record */
	for (size_t v = 0; v < 3; v++) {
		r = tu_migrate_plan(plan, "step", "--force", "--reason", "test",
		                    verbosity[v] ? verbosity[v] : "-o",
		                    verbosity[v] ? NULL : "json", NULL);
		cr_assert_neq(r.status, 0, "the step succeeded: %s", r.out);
		cr_assert(strstr(r.out, "[redacted]") || strstr(r.err, "[redacted]"),
		          "Cloudflare's refusal is not shown: %s\n%s", r.out, r.err);
		run_no_leak("step --force", r);
	}
	for (size_t v = 0; v < 3; v++) {
		run_no_leak("history", tu_migrate_plan(plan, "history", verbosity[v], NULL));
		run_no_leak("history -o json",
		            tu_migrate_plan(plan, "history", "-o", "json", verbosity[v], NULL));
	}
	cr_assert_gt(state_no_leak(), 0, "no state recorded");
	/* the refusal was journalled, masked */
	char *journal = tu_state_journal_text(plan, NULL);
	cr_assert(strstr(journal, "\"failed\"") && strstr(journal, "[redacted]"),
	          "no masked result record: %s", journal);
	free(journal);
	/* the servers did quote it: the test tested something */
	json_t *log = tu_cloudflare_ctl(&cf, "GET", "/log", NULL);
	cr_assert_gt(json_array_size(log), 0);
	json_decref(log);
}

/* The same with the load balancer read itself failing, and Prometheus quoting it as a warning. */
Test(secrets, echoed_tokens_in_every_failing_read)
{
	prom_pid = tu_promfault_start(&prom_port, &prom_in, "--token", PROM_TOKEN, "--echo",
	                              "warning", NULL);
	write_plan();
	echo_on("{\"on\": true, \"lb\": true}");
	for (size_t v = 0; v < 3; v++) {
		const char *vb = verbosity[v];
		run_no_leak("status", tu_migrate_plan(plan, "status", vb, NULL));
		run_no_leak("status -o json",
		            tu_migrate_plan(plan, "status", "-o", "json", vb, NULL));
		run_no_leak("check", tu_migrate_plan(plan, "check", vb, NULL));
		run_no_leak("check -o json",
		            tu_migrate_plan(plan, "check", "-o", "json", vb, NULL));
		run_no_leak("step", tu_migrate_plan(plan, "step", vb, NULL));
		run_no_leak("history", tu_migrate_plan(plan, "history", "-v", NULL));
	}
	state_no_leak();
}

/* A step that succeeds while the pool health quotes the token: the result record holds the health.
 */
Test(secrets, the_result_record_of_a_step_holds_no_echoed_token)
{
	prom_pid = tu_promfault_start(&prom_port, &prom_in, "--token", PROM_TOKEN, NULL);
	write_plan();
	echo_on("{\"on\": true, \"patch\": false}");
	tu_output r = tu_migrate_plan(plan, "step", "--force", "--reason", "test", "-vv", NULL);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	run_no_leak("step --force", r);
	for (size_t v = 0; v < 3; v++) {
		run_no_leak("status", tu_migrate_plan(plan, "status", verbosity[v], NULL));
		run_no_leak("history",
		            tu_migrate_plan(plan, "history", verbosity[v] ? verbosity[v] : "-o",
		                            verbosity[v] ? NULL : "json", NULL));
	}
	cr_assert_gt(state_no_leak(), 0, "no state recorded");
	char *journal = tu_state_journal_text(plan, NULL);
	cr_assert(strstr(journal, "\"result\"") && strstr(journal, "health unavailable: HTTP 400"),
	          "no result record with the pools' health: %s", journal);
	free(journal);
}
