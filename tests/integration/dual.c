/*
 * `migrate deploy` on both sides at once, `diff`, `rollback --release` on
 * the cluster and the skew check of `step`, end to end: the fake VMs of
 * tests/sandbox/vms.sh (real sshd per VM) and tests/servers/kubeapi.py (a
 * strict API server with a Deployment controller). What is asserted is what
 * each side holds afterwards (the VMs' current links, the objects the API
 * server stores, the requests it received), exit codes, JSON and files.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"

static char dir[256];
static char cwd[512];
static tu_vms vms;
static tu_kubeapi k = TU_KUBEAPI_INIT;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "dual");
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	unsetenv("NO_COLOR");
	unsetenv("KUBECONFIG");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	tu_kubeapi_start(&k, dir, "default,staging");
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":10,"
	                                   "\"observe_ms\":10,\"deadline_scale\":0.001}"));
}

static void teardown(void)
{
	tu_vms_stop(&vms);
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
}

TestSuite(dual, .init = setup, .fini = teardown, .timeout = 60);

static const char *bin(void)
{
	const char *b = getenv("MIGRATE_BIN");
	cr_assert_not_null(b, "MIGRATE_BIN is not set; run through `make integration`");
	return b;
}

static const char *at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *at(const char *fmt, ...)
{
	static char buf[8][1024];
	static int i;
	i = (i + 1) % 8;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf[i], sizeof(buf[i]), fmt, ap);
	va_end(ap);
	return buf[i];
}

static tu_output mig(const char *first, ...)
{
	char *args[64];
	size_t n = 0;
	args[n++] = (char *)bin();
	args[n++] = "-p";
	args[n++] = (char *)at("%s/plan.yaml", dir);
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a && n < 63; a = va_arg(ap, const char *))
		args[n++] = (char *)a;
	va_end(ap);
	args[n] = NULL;
	return tu_capture(args);
}

static json_t *json_doc(const tu_output *r)
{
	json_error_t e;
	json_t *doc = json_loads(r->out, 0, &e);
	cr_assert_not_null(doc, "stdout is not one JSON document (%s): %s\nstderr: %s", e.text,
	                   r->out, r->err);
	return doc;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static void make_artifact(const char *version, bool healthy)
{
	char src[512], why[2048];
	snprintf(src, sizeof(src), "%s/art/src-%s", dir, version);
	mkdir(at("%s/art", dir), 0755);
	cr_assert_eq(mkdir(src, 0755), 0, "%s: %s", src, strerror(errno));
	write_file(at("%s/version.txt", src), version);
	if (healthy)
		write_file(at("%s/healthy", src), "");
	char *argv[] = {"/bin/tar", "-czf", (char *)at("%s/art/app-%s.tar.gz", dir, version),
	                "-C",       src,    ".",
	                NULL};
	cr_assert(tu_run_ok(dir, argv, why, sizeof(why)), "%s", why);
}

typedef struct {
	int nvms;              /* 0: no vms section */
	const char *templates; /* "web" (default) or "php-fpm-nginx" */
	int replicas;          /* default 2 */
	bool traffic;          /* a haproxy traffic section (for step) */
	bool force;
} plan_opts;

static void write_plan(const plan_opts *o)
{
	char text[16384];
	const char *t = o->templates ? o->templates : "web";
	int len = snprintf(text, sizeof(text),
	                   "version: 1\n"
	                   "name: shop\n"
	                   "build:\n"
	                   "  artifact: art/app-${version}.tar.gz\n"
	                   "  image: registry.example.com/shop:${version}\n"
	                   "kubernetes:\n"
	                   "  kubeconfig: %s\n"
	                   "  namespace: default\n"
	                   "  templates: %s/templates/%s\n"
	                   "  rollout_timeout: 20s\n"
	                   "  force_conflicts: %s\n"
	                   "  values: { replicas: %d, max_replicas: 6, port: 8080, cpu: 100m, "
	                   "memory: 64Mi, health_path: /healthz, nginx_image: nginx:1.25 }\n",
	                   k.kubeconfig, cwd, t, o->force ? "true" : "false",
	                   o->replicas ? o->replicas : 2);
	if (!strcmp(t, "php-fpm-nginx"))
		len += snprintf(text + len, sizeof(text) - (size_t)len,
		                "  configmaps:\n"
		                "    - { name: nginx, from_nginx: "
		                "%s/tests/fixtures/nginx/php-app/nginx.conf }\n",
		                cwd);
	if (o->nvms) {
		char hosts[8192] = "", line[256];
		FILE *f = fopen(vms.hosts_yaml, "r");
		cr_assert_not_null(f);
		for (int n = 0; n < o->nvms && fgets(line, sizeof(line), f); n++) {
			strncat(hosts, "    ", sizeof(hosts) - strlen(hosts) - 1);
			strncat(hosts, line, sizeof(hosts) - strlen(hosts) - 1);
		}
		fclose(f);
		len += snprintf(text + len, sizeof(text) - (size_t)len,
		                "vms:\n"
		                "  hosts:\n%s"
		                "  user: root\n"
		                "  identity_file: %s\n"
		                "  known_hosts: %s\n"
		                "  path: %s\n"
		                "  parallel: 4\n"
		                "  batch: \"2\"\n"
		                "  max_failures: 0\n"
		                "  connect_timeout: 3s\n"
		                "  command_timeout: 20s\n"
		                "  health: { url: \"http://${host}:%d/healthz\", timeout: 3s }\n",
		                hosts, vms.identity, vms.known_hosts, vms.path, vms.health_port);
	}
	if (o->traffic)
		len += snprintf(text + len, sizeof(text) - (size_t)len,
		                "traffic:\n"
		                "  provider: haproxy\n"
		                "  steps: [10, 50, 100]\n"
		                "  bake: 1s\n"
		                "  haproxy:\n"
		                "    socket: %s/nothing.sock\n"
		                "    backend: app\n"
		                "    vm_servers: [vm1]\n"
		                "    k8s_servers: [k8s1]\n",
		                dir);
	snprintf(text + len, sizeof(text) - (size_t)len, "state:\n  dir: state\n");
	write_file(at("%s/plan.yaml", dir), text);
}

/* The object the API server stores (null when it has none). */
static json_t *stored(const char *path)
{
	json_t *r = tu_kubeapi_control(&k, at("{\"op\":\"get\",\"path\":\"%s\"}", path));
	json_t *obj = json_incref(json_object_get(r, "object"));
	if (!obj && json_object_get(r, "kind"))
		obj = json_incref(r);
	json_decref(r);
	return obj;
}

static const char *deployment_image(void)
{
	static char buf[256];
	json_t *d = stored("/apis/apps/v1/namespaces/default/deployments/shop");
	cr_assert_not_null(d, "no Deployment shop stored");
	json_t *c = json_array_get(
	    json_object_get(
	        json_object_get(json_object_get(json_object_get(d, "spec"), "template"), "spec"),
	        "containers"),
	    0);
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(c, "image")));
	json_decref(d);
	return buf;
}

static const char *current_of(int i)
{
	static char buf[4][256];
	static int n;
	n = (n + 1) % 4;
	ssize_t len = readlink(at("%s/current", vms.root[i]), buf[n], sizeof(buf[n]) - 1);
	buf[n][len > 0 ? len : 0] = '\0';
	return buf[n];
}

static json_t *state_versions(void)
{
	json_error_t e;
	json_t *st = json_load_file(at("%s/state/shop/state.json", dir), 0, &e);
	cr_assert_not_null(st, "state.json: %s", e.text);
	json_t *v = json_incref(json_object_get(st, "versions"));
	json_decref(st);
	return v;
}

static const char *vstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "(null)";
}

/* The PATCH requests the server saw, as "kind-resource name" paths in order. */
static size_t count_requests(const char *method, const char *path_part, const char *query_key,
                             const char *query_value)
{
	json_t *log = tu_kubeapi_requests(&k);
	size_t i, n = 0;
	json_t *r;
	json_array_foreach(log, i, r)
	{
		if (strcmp(vstr(r, "method"), method) || !strstr(vstr(r, "path"), path_part))
			continue;
		if (query_key) {
			json_t *q = json_object_get(json_object_get(r, "query"), query_key);
			const char *v = json_is_array(q) ? json_string_value(json_array_get(q, 0))
			                                 : json_string_value(q);
			if (!v || strcmp(v, query_value))
				continue;
		}
		n++;
	}
	json_decref(log);
	return n;
}

Test(dual, php_app_cluster_only)
{
	write_plan(&(plan_opts){.templates = "php-fpm-nginx"});
	tu_output r = mig("deploy", "--k8s-only", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_null(json_object_get(doc, "vms")));
	json_t *kj = json_object_get(doc, "kubernetes");
	cr_assert(json_is_true(json_object_get(kj, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(kj, "created")), 5);
	cr_assert_eq(json_integer_value(json_object_get(kj, "rolled_out")), 1);
	/* the fixture's ssl_certificate and key: left to a Secret, never in the ConfigMap */
	cr_assert_eq(json_integer_value(json_object_get(kj, "secret_files")), 2);
	const char *kinds[] = {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler",
	                       "PodDisruptionBudget"};
	json_t *objs = json_object_get(kj, "objects");
	cr_assert_eq(json_array_size(objs), 5);
	for (size_t i = 0; i < 5; i++) {
		cr_assert_str_eq(vstr(json_array_get(objs, i), "kind"), kinds[i]);
		cr_assert_str_eq(vstr(json_array_get(objs, i), "outcome"), "created");
	}
	json_decref(doc);
	/* every object by server-side apply as "migrate", ConfigMap first */
	cr_assert_eq(count_requests("PATCH", "/", "fieldManager", "migrate"), 5);
	json_t *log = tu_kubeapi_requests(&k);
	size_t i;
	json_t *q;
	const char *first_patch = NULL;
	json_array_foreach(log, i, q) if (!strcmp(vstr(q, "method"), "PATCH"))
	{
		if (!first_patch)
			first_patch = vstr(q, "path");
		cr_assert_str_eq(vstr(q, "content_type"), "application/apply-patch+yaml");
	}
	cr_assert_str_eq(first_patch, "/api/v1/namespaces/default/configmaps/nginx");
	json_decref(log);
	/* the pod template carries the checksum of the ConfigMap that was applied */
	json_t *cm = stored("/api/v1/namespaces/default/configmaps/nginx");
	cr_assert_not_null(cm);
	const char *sum = vstr(json_object_get(json_object_get(cm, "metadata"), "annotations"),
	                       "migrate/checksum");
	cr_assert_eq(strlen(sum), 64, "%s", sum);
	cr_assert_null(json_object_get(json_object_get(cm, "data"), "ssl_shop.example.com.key"));
	json_t *d = stored("/apis/apps/v1/namespaces/default/deployments/shop");
	json_t *ann = json_object_get(
	    json_object_get(json_object_get(json_object_get(d, "spec"), "template"), "metadata"),
	    "annotations");
	cr_assert_str_eq(vstr(ann, "checksum/config"), sum);
	json_decref(d);
	json_decref(cm);
	/* the manifests of 1.0 are recorded, private */
	struct stat sb;
	cr_assert_eq(stat(at("%s/state/shop/manifests/1.0.json", dir), &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	json_t *v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.0");
	cr_assert(json_is_null(json_object_get(v, "vms")));
	json_decref(v);
	tu_output_free(&r);
}

Test(dual, deploy_both_sides_rerun_and_rollback)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(&(plan_opts){.nvms = 3});
	make_artifact("1.0", true);
	make_artifact("1.1", true);
	tu_output r = mig("deploy", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = json_doc(&r);
	json_t *vj = json_object_get(doc, "vms"), *kj = json_object_get(doc, "kubernetes");
	cr_assert(json_is_true(json_object_get(vj, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(vj, "hosts_ok")), 3);
	cr_assert(json_is_true(json_object_get(kj, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(kj, "created")), 4);
	cr_assert_str_eq(vstr(json_object_get(doc, "versions"), "vms"), "1.0");
	cr_assert_str_eq(vstr(json_object_get(doc, "versions"), "kubernetes"), "1.0");
	json_decref(doc);
	tu_output_free(&r);
	for (int i = 0; i < 3; i++)
		cr_assert(strstr(current_of(i), "releases/1.0"), "vm %d: %s", i, current_of(i));
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");

	/* the same again: nothing changes on the cluster, nothing is uploaded */
	r = mig("deploy", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	doc = json_doc(&r);
	kj = json_object_get(doc, "kubernetes");
	cr_assert_eq(json_integer_value(json_object_get(kj, "unchanged")), 4);
	cr_assert_eq(json_integer_value(json_object_get(kj, "created")), 0);
	cr_assert_eq(json_integer_value(json_object_get(kj, "configured")), 0);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc, "vms"), "uploaded")),
	             0);
	json_decref(doc);
	tu_output_free(&r);

	r = mig("deploy", "--version", "1.1", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "shop: cluster at 1.1"), "%s", r.out);
	cr_assert(strstr(r.out, "Deployment/shop"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.1");
	json_t *v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes_previous"), "1.0");
	cr_assert_str_eq(vstr(v, "vms_previous"), "1.0");
	json_decref(v);

	/* back on both sides: the fleet's previous release and 1.0's recorded manifests */
	r = mig("rollback", "--release", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	doc = json_doc(&r);
	cr_assert_str_eq(vstr(doc, "op"), "rollback");
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(doc, "kubernetes"), "configured")),
	    1, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");
	for (int i = 0; i < 3; i++)
		cr_assert(strstr(current_of(i), "releases/1.0"), "vm %d: %s", i, current_of(i));
	v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.0");
	cr_assert_str_eq(vstr(v, "vms"), "1.0");
	cr_assert(json_is_null(json_object_get(v, "kubernetes_previous")));
	json_decref(v);
	/* twice is refused: there is no release before */
	r = mig("rollback", "--release", "--k8s-only", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "nothing to roll back to on the cluster"), "%s", r.err);
	tu_output_free(&r);
}

Test(dual, cluster_fails_vms_reported_ok)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(&(plan_opts){.nvms = 3});
	make_artifact("2.0-fail-rollout", true);
	tu_output r = mig("deploy", "--version", "2.0-fail-rollout", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = json_doc(&r);
	json_t *vj = json_object_get(doc, "vms"), *kj = json_object_get(doc, "kubernetes");
	cr_assert(json_is_true(json_object_get(vj, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(vj, "hosts_ok")), 3);
	cr_assert(json_is_false(json_object_get(kj, "ok")));
	const char *msg = vstr(json_object_get(kj, "error"), "message");
	cr_assert(strstr(msg, "ProgressDeadlineExceeded"), "%s", msg);
	json_decref(doc);
	cr_assert(strstr(r.err, "the VM side is on 2.0-fail-rollout and was left as it is"), "%s",
	          r.err);
	tu_output_free(&r);
	for (int i = 0; i < 3; i++)
		cr_assert(strstr(current_of(i), "releases/2.0-fail-rollout"), "vm %d", i);
}

Test(dual, vms_fail_cluster_reported_ok)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(&(plan_opts){.nvms = 3});
	make_artifact("3.0", false); /* never healthy on the VMs */
	tu_output r = mig("deploy", "--version", "3.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_false(json_object_get(json_object_get(doc, "vms"), "ok")));
	cr_assert(json_is_true(json_object_get(json_object_get(doc, "kubernetes"), "ok")));
	cr_assert_str_eq(vstr(json_object_get(doc, "versions"), "kubernetes"), "3.0");
	json_decref(doc);
	cr_assert(strstr(r.err, "the cluster side is on 3.0 and was left as it is"), "%s", r.err);
	tu_output_free(&r);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:3.0");
}

Test(dual, diff_exit_codes_and_output)
{
	write_plan(&(plan_opts){0});
	tu_output r = mig("diff", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "apps/v1 Deployment default/shop: (new)"), "%s", r.out);
	cr_assert(strstr(r.out, "4 objects, 4 new, 0 changed, 0 unchanged"), "%s", r.out);
	tu_output_free(&r);
	/* a dry run persists nothing */
	cr_assert_eq(count_requests("PATCH", "/", "dryRun", "All"), 4);

	r = mig("deploy", "--k8s-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	/* created now: the dry run had stored nothing */
	cr_assert(strstr(r.out, "(context cert, namespace default): 4 created, 0 configured"), "%s",
	          r.out);
	tu_output_free(&r);
	r = mig("diff", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "apps/v1 Deployment default/shop: (no changes)"), "%s", r.out);
	tu_output_free(&r);

	write_plan(&(plan_opts){.replicas = 3});
	r = mig("diff", "--version", "1.1", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_true(json_object_get(doc, "changed")));
	cr_assert_eq(json_integer_value(json_object_get(doc, "configured")), 2, "%s", r.out);
	json_t *objs = json_object_get(doc, "objects");
	const char *ddiff = NULL;
	size_t i;
	json_t *o;
	json_array_foreach(objs, i, o) if (!strcmp(vstr(o, "kind"), "Deployment")) ddiff =
	    vstr(o, "diff");
	cr_assert(ddiff && strstr(ddiff, "spec.replicas: 2 -> 3"), "%s", ddiff);
	cr_assert(strstr(ddiff, "~ spec.template.spec.containers[0].image: "
	                        "\"registry.example.com/shop:1.0\" -> "
	                        "\"registry.example.com/shop:1.1\""),
	          "%s", ddiff);
	json_decref(doc);
	tu_output_free(&r);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");

	/* a cluster that cannot be asked is not "changes" */
	tu_kubeapi_stop(&k);
	r = mig("diff", "--version", "1.1", NULL);
	cr_assert_eq(r.status, 4, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
}

Test(dual, step_refuses_skew_allow_skew_journals)
{
	write_plan(&(plan_opts){.traffic = true});
	mkdir(at("%s/state", dir), 0700);
	mkdir(at("%s/state/shop", dir), 0700);
	write_file(at("%s/state/shop/state.json", dir),
	           "{\"format\":1,\"plan\":\"shop\",\"revision\":1,\"phase\":\"idle\","
	           "\"step\":{\"index\":null,\"started_at\":null},"
	           "\"weights\":{\"applied\":null,\"read_back\":null},"
	           "\"versions\":{\"vms\":\"1.0\",\"vms_previous\":null,\"kubernetes\":\"1.1\"},"
	           "\"created_at\":null,\"updated_at\":null}");
	tu_output r = mig("step", NULL);
	cr_assert_eq(r.status, 3, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "the VMs run 1.0 but the cluster runs 1.1"), "%s", r.err);
	tu_output_free(&r);
	cr_assert_neq(access(at("%s/state/shop/journal.jsonl", dir), F_OK), 0);

	r = mig("step", "--allow-skew", "--reason", "cluster ahead on purpose", NULL);
	/* the balancer socket does not exist: the step fails after the skew was accepted */
	cr_assert_neq(r.status, 0);
	cr_assert(!strstr(r.err, "the VMs run 1.0 but the cluster runs 1.1"), "%s", r.err);
	tu_output_free(&r);
	char buf[8192] = "";
	FILE *f = fopen(at("%s/state/shop/journal.jsonl", dir), "r");
	cr_assert_not_null(f, "no journal");
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	cr_assert(strstr(buf, "\"skew-allowed\""), "%s", buf);
	cr_assert(strstr(buf, "cluster ahead on purpose"), "%s", buf);
}

Test(dual, dry_run_changes_nothing)
{
	write_plan(&(plan_opts){0});
	tu_output r = mig("deploy", "--k8s-only", "--version", "1.0", "--dry-run", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "dry run of the cluster deploy of 1.0"), "%s", r.out);
	cr_assert(strstr(r.out, "4 to create"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_eq(count_requests("PATCH", "/", "dryRun", "All"), 4);
	cr_assert_eq(count_requests("PATCH", "/", NULL, NULL), 4);
	cr_assert_neq(access(at("%s/state", dir), F_OK), 0, "a dry run created the state dir");
}
