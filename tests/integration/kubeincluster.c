/*
 * migrate inside a pod, against tests/servers/kubeapi.py: no kubeconfig,
 * only KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount files at their
 * real path, /var/run/secrets/kubernetes.io/serviceaccount. The test process
 * enters a mount namespace of its own (unshare(CLONE_NEWNS), as root) and
 * puts a tmpfs over /var/run's directory there, with the test's ServiceAccount
 * directory bound at that path; the machine's /run is never touched, and what
 * the test starts (migrate, kubectl) inherits the namespace. The directory is
 * laid out as the kubelet's atomic writer does it (token -> ..data/token,
 * ..data -> a dated directory swapped by rename), so a rotation is what a
 * pod sees. Debian's kubectl, in the same fake pod, proves the fake is what
 * client-go takes for in-cluster.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "fs.h"
#include "kube.h"
#include "log.h"

#define SA_PATH "/var/run/secrets/kubernetes.io/serviceaccount"
#define SA_USER "system:serviceaccount:shop:migrate"

static char dir[256], sa[300], cwd[1024];
static tu_kubeapi k = TU_KUBEAPI_INIT;
static int generation;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kubeincluster");
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	snprintf(sa, sizeof(sa), "%s/sa", dir);
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	unsetenv("POD_NAMESPACE");
	/* a HOME without ~/.kube/config: nothing but the pod to find */
	char home[300];
	snprintf(home, sizeof(home), "%s/home", dir);
	cr_assert_eq(mkdir(home, 0755), 0);
	setenv("HOME", home, 1);
	tu_log_capture(MG_LOG_DEBUG);
	tu_kubeapi_start(&k, dir, "default,shop");
	generation = 0;
}

static void teardown(void)
{
	tu_log_capture_stop();
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
}

TestSuite(kubeincluster, .init = setup, .fini = teardown, .timeout = 60);

/*
 * The next generation of the ServiceAccount's files with this token, made
 * current as the kubelet does: a new dated directory, then ..data renamed
 * over to point at it (one atomic step: a reader sees the old files or the
 * new ones).
 */
static void sa_publish(const char *token)
{
	char gen[400], path[500], link[400];
	if (generation == 0) {
		cr_assert_eq(mkdir(sa, 0755), 0);
		static const char *names[] = {"token", "ca.crt", "namespace"};
		for (int i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", sa, names[i]);
			snprintf(link, sizeof(link), "..data/%s", names[i]);
			cr_assert_eq(symlink(link, path), 0, "%s", strerror(errno));
		}
	}
	generation++;
	snprintf(gen, sizeof(gen), "%s/..2026_12_05_00_00_0%d.%d", sa, generation, generation);
	cr_assert_eq(mkdir(gen, 0755), 0);
	snprintf(path, sizeof(path), "%s/token", gen);
	tu_write_file(path, token);
	snprintf(path, sizeof(path), "%s/namespace", gen);
	tu_write_file(path, "shop");
	char *ca = NULL;
	size_t len = 0;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&ca, &len, k.ca, &err), 0, "%s", err.message);
	snprintf(path, sizeof(path), "%s/ca.crt", gen);
	tu_write_file(path, ca);
	free(ca);
	snprintf(link, sizeof(link), "%s/..data_tmp", sa);
	snprintf(path, sizeof(path), "%s/..data", sa);
	cr_assert_eq(symlink(strrchr(gen, '/') + 1, link), 0);
	cr_assert_eq(rename(link, path), 0);
}

/*
 * This process in a pod of its own: a mount namespace where SA_PATH is the
 * test's directory, and the service variables set. Skips (saying why) where
 * a mount namespace cannot be made.
 */
static void enter_pod(void)
{
	char run[PATH_MAX];
	cr_assert_not_null(realpath("/var/run", run));
	if (unshare(CLONE_NEWNS) != 0)
		cr_skip_test("cannot make a mount namespace here (unshare: %s); the real "
		             "ServiceAccount path cannot be faked",
		             strerror(errno));
	/* private first, so nothing mounted here reaches the machine's namespace */
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
	cr_assert_eq(mount("tmpfs", run, "tmpfs", 0, "size=1m,mode=0755"), 0, "%s",
	             strerror(errno));
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", SA_PATH);
	for (char *s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	cr_assert_eq(mkdir(p, 0755), 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(mount(sa, SA_PATH, NULL, MS_BIND, NULL), 0, "%s", strerror(errno));
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", tu_at("%d", k.port), 1);
}

static void sa_token(const char *token, const char *id)
{
	char op[300];
	snprintf(op, sizeof(op),
	         "{\"op\":\"add_token\",\"token\":\"%s\",\"user\":\"" SA_USER "\",\"groups\":"
	         "[\"system:serviceaccounts\"],\"id\":\"%s\"}",
	         token, id);
	json_decref(tu_kubeapi_control(&k, op));
}

static void rotate(const char *old, const char *new_, const char *id)
{
	char op[300];
	snprintf(op, sizeof(op),
	         "{\"op\":\"rotate_token\",\"token\":\"%s\",\"new\":\"%s\",\"id\":\"%s\"}", old,
	         new_, id);
	json_decref(tu_kubeapi_control(&k, op));
}

/* Every request the server logged as "method path -> status user token_id", one a line. */
static char *request_lines(void)
{
	json_t *log = tu_kubeapi_requests(&k), *e;
	size_t i, len = 0;
	char *out = calloc(1, 1);
	json_array_foreach(log, i, e)
	{
		const char *user = json_string_value(json_object_get(e, "user"));
		const char *id = json_string_value(json_object_get(e, "token_id"));
		char line[600];
		int n = snprintf(line, sizeof(line), "%s %s -> %lld %s %s\n",
		                 json_string_value(json_object_get(e, "method")),
		                 json_string_value(json_object_get(e, "path")),
		                 (long long)json_integer_value(json_object_get(e, "status")),
		                 user ? user : "-", id ? id : "-");
		out = realloc(out, len + (size_t)n + 1);
		memcpy(out + len, line, (size_t)n + 1);
		len += (size_t)n;
	}
	json_decref(log);
	return out;
}

static const char *plan_file(const char *kubeconfig_line)
{
	const char *plan = tu_at("%s/plan.yaml", dir);
	char text[4096];
	snprintf(text, sizeof(text),
	         "version: 1\n"
	         "name: shop\n"
	         "build:\n"
	         "  image: registry.example.com/shop:${version}\n"
	         "kubernetes:\n"
	         "%s"
	         "  namespace: shop\n"
	         "  templates: %s/templates/web\n"
	         "  values: { replicas: 2, max_replicas: 6, port: 8080, cpu: 100m, "
	         "memory: 64Mi, health_path: /healthz, nginx_image: nginx:1.25 }\n",
	         kubeconfig_line, cwd);
	tu_write_file(plan, text);
	return plan;
}

Test(kubeincluster, migrate_diff_in_a_pod_with_no_kubeconfig)
{
	sa_token("sa-v1-SECRET-91e2", "sa-1");
	sa_publish("sa-v1-SECRET-91e2");
	enter_pod();
	const char *plan = plan_file("");
	tu_output r = tu_migrate_plan(plan, "diff", "--version", "1.0", NULL);
	/* 1: changes pending (everything is new); 2 would be "no kubeconfig" */
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "apps/v1 Deployment shop/shop: (new)"), "%s", r.out);
	cr_assert(strstr(r.out, "(server-side dry run in context in-cluster)"), "%s", r.out);
	tu_output_free(&r);
	char *lines = request_lines();
	cr_assert(strstr(lines,
	                 "PATCH /apis/apps/v1/namespaces/shop/deployments/shop -> 201 " SA_USER
	                 " sa-1\n"),
	          "%s", lines);
	cr_assert_null(strstr(lines, "-> 401"), "%s", lines);
	free(lines);

	/* a ~/.kube/config comes first (clientcmd's order), unless the plan asks for the pod */
	char *kc = NULL;
	size_t len = 0;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&kc, &len, k.kubeconfig, &err), 0);
	tu_write_file_in(getenv("HOME"), ".kube/config", kc);
	free(kc);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"clear_requests\"}"));
	r = tu_migrate_plan(plan, "diff", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "(server-side dry run in context cert)"), "%s", r.out);
	tu_output_free(&r);
	plan = plan_file("  kubeconfig: in-cluster\n");
	r = tu_migrate_plan(plan, "diff", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "(server-side dry run in context in-cluster)"), "%s", r.out);
	tu_output_free(&r);
	lines = request_lines();
	cr_assert(
	    strstr(lines, "PATCH /apis/apps/v1/namespaces/shop/deployments/shop -> 201 admin -"),
	    "%s", lines);
	cr_assert(strstr(lines,
	                 "PATCH /apis/apps/v1/namespaces/shop/deployments/shop -> 201 " SA_USER
	                 " sa-1\n"),
	          "%s", lines);
	free(lines);

	/* --context asks for a kubeconfig's context: never the pod's */
	r = tu_migrate_plan(plan, "diff", "--version", "1.0", "--context", "cert", NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "context cert was asked for, but the in-cluster configuration has "
	                        "no contexts"),
	          "%s", r.err);
	tu_output_free(&r);
}

Test(kubeincluster, a_long_lived_client_follows_the_rotated_serviceaccount_token)
{
	sa_token("sa-v1-SECRET-3c44", "sa-1");
	sa_publish("sa-v1-SECRET-3c44");
	enter_pod();
	mg_kube_config_options o = {0}; /* no kubeconfig, no namespace: the pod's */
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &o, &err), 0, "%s", err.message);
	cr_assert_str_eq(mg_kube_client_namespace(c), "shop");
	cr_assert_str_eq(mg_kube_client_server(c), k.url);
	const char *cms = "/api/v1/namespaces/shop/configmaps";
	json_t *out = NULL;
	cr_assert_eq(mg_kube_get(c, cms, "list", &out, &err), 0, "%s", err.message);
	json_decref(out);

	/* the kubelet rotates the file; the server ends the old token */
	sa_publish("sa-v2-SECRET-3c45");
	rotate("sa-v1-SECRET-3c44", "sa-v2-SECRET-3c45", "sa-2");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(mg_kube_get(c, cms, "list", &out, &err), 0, "%s", err.message);
		json_decref(out);
	}
	char *lines = request_lines();
	char want[1024];
	snprintf(want, sizeof(want),
	         "GET %s -> 200 " SA_USER " sa-1\nGET %s -> 401 - sa-1\nGET %s -> 200 " SA_USER
	         " sa-2\nGET %s -> 200 " SA_USER " sa-2\nGET %s -> 200 " SA_USER " sa-2\n",
	         cms, cms, cms, cms, cms);
	cr_assert_str_eq(lines, want);
	free(lines);

	/* not rotated in the file: the 401 names the ServiceAccount token, never its value */
	rotate("sa-v2-SECRET-3c45", "sa-v3-SECRET-3c46", "sa-3");
	cr_assert_eq(mg_kube_get(c, cms, "list", &out, &err), MG_ERROR);
	snprintf(want, sizeof(want),
	         "list: 401 Unauthorized: %s refused the ServiceAccount token from " SA_PATH
	         "/token (in-cluster), read again after the 401 and unchanged; the token or "
	         "certificate is wrong, expired or revoked",
	         k.url);
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);
	mg_kube_client_free(c);
	cr_assert_null(strstr(tu_log_text(), "SECRET"), "%s", tu_log_text());
}

Test(kubeincluster, kubectl_in_the_same_pod)
{
	if (access("/usr/bin/kubectl", X_OK) != 0)
		cr_skip_test("no /usr/bin/kubectl");
	sa_token("sa-v1-SECRET-77d0", "sa-1");
	sa_publish("sa-v1-SECRET-77d0");
	enter_pod();
	const char *cache = tu_at("--cache-dir=%s/kcache", dir);
	char *argv[] = {"/usr/bin/kubectl", (char *)cache, "get", "cm", "-o", "name", NULL};
	tu_output r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	tu_output_free(&r);
	char *lines = request_lines();
	/* client-go's in-cluster config: this server, the token, the namespace file */
	cr_assert(strstr(lines, "GET /api/v1/namespaces/shop/configmaps -> 200 " SA_USER " sa-1\n"),
	          "%s", lines);
	free(lines);
	/* rotated at the server only: kubectl is refused as a real server refuses it */
	rotate("sa-v1-SECRET-77d0", "sa-v2-SECRET-77d1", "sa-2");
	r = tu_capture(argv);
	cr_assert_neq(r.status, 0, "%s", r.out);
	cr_assert(strstr(r.err, "Unauthorized"), "%s", r.err);
	tu_output_free(&r);
	sa_publish("sa-v2-SECRET-77d1");
	r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	tu_output_free(&r);
}
