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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"

static char dir[256];
static char plan[300]; /* dir/plan.yaml */
static char cwd[512];
static tu_vms vms;
static tu_kubeapi k = TU_KUBEAPI_INIT;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "dual");
	snprintf(plan, sizeof(plan), "%s/plan.yaml", dir);
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
	tu_state_stop();
	tu_tmpdir_remove(dir);
}

TestSuite(dual, .init = setup, .fini = teardown, .timeout = 60);

typedef struct {
	int nvms;              /* 0: no vms section */
	const char *templates; /* "web" (default) or "php-fpm-nginx" */
	int replicas;          /* default 2 */
	bool traffic;          /* a haproxy traffic section (for step) */
	bool force;
	const char *templates_dir;   /* an absolute templates directory instead */
	const char *kubeconfig;      /* instead of the test server's */
	const char *repo;            /* build.repo */
	const char *rollout_timeout; /* default 20s */
} plan_opts;

static void write_plan(const plan_opts *o)
{
	char text[16384];
	const char *t = o->templates ? o->templates : "web";
	char tdir[1024];
	if (o->templates_dir)
		snprintf(tdir, sizeof(tdir), "%s", o->templates_dir);
	else
		snprintf(tdir, sizeof(tdir), "%s/templates/%s", cwd, t);
	int len = snprintf(text, sizeof(text),
	                   "version: 1\n"
	                   "name: shop\n"
	                   "build:\n"
	                   "  artifact: art/app-${version}.tar.gz\n"
	                   "  image: registry.example.com/shop:${version}\n"
	                   "%s%s%s"
	                   "kubernetes:\n"
	                   "  kubeconfig: %s\n"
	                   "  namespace: default\n"
	                   "  templates: %s\n"
	                   "  rollout_timeout: %s\n"
	                   "  force_conflicts: %s\n"
	                   "  values: { replicas: %d, max_replicas: 6, port: 8080, cpu: 100m, "
	                   "memory: 64Mi, health_path: /healthz, nginx_image: nginx:1.25 }\n",
	                   o->repo ? "  repo: " : "", o->repo ? o->repo : "", o->repo ? "\n" : "",
	                   o->kubeconfig ? o->kubeconfig : k.kubeconfig, tdir,
	                   o->rollout_timeout ? o->rollout_timeout : "20s",
	                   o->force ? "true" : "false", o->replicas ? o->replicas : 2);
	if (!strcmp(t, "php-fpm-nginx"))
		len += snprintf(text + len, sizeof(text) - (size_t)len,
		                "  configmaps:\n"
		                "    - { name: nginx, from_nginx: "
		                "%s/tests/fixtures/nginx/php-app/nginx.conf }\n",
		                cwd);
	if (o->nvms) {
		char hosts[8192];
		tu_vms_hosts_lines(&vms, o->nvms, hosts, sizeof(hosts));
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
	tu_write_file(plan, text);
	/* MG_TEST_STATE_BACKEND=kubernetes: the state in a cluster of its own, not k */
	tu_state_plan(plan, dir);
}

/* The object the API server stores (null when it has none). */
static json_t *stored(const char *path)
{
	json_t *r = tu_kubeapi_control(&k, tu_at("{\"op\":\"get\",\"path\":\"%s\"}", path));
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

static json_t *state_versions(void)
{
	json_error_t e;
	char *text = tu_state_doc_text(plan, NULL, "state");
	cr_assert_not_null(text, "no state recorded");
	json_t *st = json_loads(text, 0, &e);
	cr_assert_not_null(st, "state.json: %s", e.text);
	free(text);
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
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
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
	char *manifests = tu_state_doc_text(plan, NULL, "manifests/1.0");
	cr_assert_not_null(manifests, "the manifests of 1.0 are not recorded");
	free(manifests);
	struct stat sb;
	if (!tu_state_kube()) {
		cr_assert_eq(stat(tu_at("%s/state/shop/manifests/1.0.json", dir), &sb), 0);
		cr_assert_eq(sb.st_mode & 0777, 0600);
	}
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
	tu_make_artifact(dir, "1.0", true);
	tu_make_artifact(dir, "1.1", true);
	tu_output r = tu_migrate_plan(plan, "deploy", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
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
		cr_assert(strstr(tu_vms_current(&vms, i), "releases/1.0"), "vm %d: %s", i,
		          tu_vms_current(&vms, i));
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");

	/* the same again: nothing changes on the cluster, nothing is uploaded */
	r = tu_migrate_plan(plan, "deploy", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	doc = tu_json_doc(&r);
	kj = json_object_get(doc, "kubernetes");
	cr_assert_eq(json_integer_value(json_object_get(kj, "unchanged")), 4);
	cr_assert_eq(json_integer_value(json_object_get(kj, "created")), 0);
	cr_assert_eq(json_integer_value(json_object_get(kj, "configured")), 0);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc, "vms"), "uploaded")),
	             0);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "deploy", "--version", "1.1", NULL);
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
	r = tu_migrate_plan(plan, "rollback", "--release", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	doc = tu_json_doc(&r);
	cr_assert_str_eq(vstr(doc, "op"), "rollback");
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(doc, "kubernetes"), "configured")),
	    1, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");
	for (int i = 0; i < 3; i++)
		cr_assert(strstr(tu_vms_current(&vms, i), "releases/1.0"), "vm %d: %s", i,
		          tu_vms_current(&vms, i));
	v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.0");
	cr_assert_str_eq(vstr(v, "vms"), "1.0");
	cr_assert(json_is_null(json_object_get(v, "kubernetes_previous")));
	json_decref(v);
	/* twice is refused: there is no release before */
	r = tu_migrate_plan(plan, "rollback", "--release", "--k8s-only", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "nothing to roll back to on the cluster"), "%s", r.err);
	tu_output_free(&r);
}

Test(dual, cluster_fails_vms_reported_ok)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(&(plan_opts){.nvms = 3});
	tu_make_artifact(dir, "2.0-fail-rollout", true);
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--version", "2.0-fail-rollout", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
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
		cr_assert(strstr(tu_vms_current(&vms, i), "releases/2.0-fail-rollout"), "vm %d", i);
}

Test(dual, vms_fail_cluster_reported_ok)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(&(plan_opts){.nvms = 3});
	tu_make_artifact(dir, "3.0", false); /* never healthy on the VMs */
	tu_output r = tu_migrate_plan(plan, "deploy", "--version", "3.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
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
	tu_output r = tu_migrate_plan(plan, "diff", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "apps/v1 Deployment default/shop: (new)"), "%s", r.out);
	cr_assert(strstr(r.out, "4 objects, 4 new, 0 changed, 0 unchanged"), "%s", r.out);
	tu_output_free(&r);
	/* a dry run persists nothing */
	cr_assert_eq(count_requests("PATCH", "/", "dryRun", "All"), 4);

	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	/* created now: the dry run had stored nothing */
	cr_assert(strstr(r.out, "(context cert, namespace default): 4 created, 0 configured"), "%s",
	          r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "diff", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "apps/v1 Deployment default/shop: (no changes)"), "%s", r.out);
	tu_output_free(&r);

	write_plan(&(plan_opts){.replicas = 3});
	r = tu_migrate_plan(plan, "diff", "--version", "1.1", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
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
	r = tu_migrate_plan(plan, "diff", "--version", "1.1", NULL);
	cr_assert_eq(r.status, 4, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
}

Test(dual, step_refuses_skew_allow_skew_journals)
{
	write_plan(&(plan_opts){.traffic = true});
	mkdir(tu_at("%s/state", dir), 0700);
	mkdir(tu_at("%s/state/shop", dir), 0700);
	tu_state_write_raw(
	    plan, NULL,
	    "{\"format\":1,\"plan\":\"shop\",\"revision\":1,\"phase\":\"idle\","
	    "\"step\":{\"index\":null,\"started_at\":null},"
	    "\"weights\":{\"applied\":null,\"read_back\":null},"
	    "\"versions\":{\"vms\":\"1.0\",\"vms_previous\":null,\"kubernetes\":\"1.1\"},"
	    "\"created_at\":null,\"updated_at\":null}");
	tu_output r = tu_migrate_plan(plan, "step", NULL);
	cr_assert_eq(r.status, 3, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "the VMs run 1.0 but the cluster runs 1.1"), "%s", r.err);
	tu_output_free(&r);
	char *journal = tu_state_journal_text(plan, NULL);
	cr_assert_str_empty(journal, "a refused step journals nothing");
	free(journal);

	r = tu_migrate_plan(plan, "step", "--allow-skew", "--reason", "cluster ahead on purpose",
	                    NULL);
	/* the balancer socket does not exist: the step fails after the skew was accepted */
	cr_assert_neq(r.status, 0);
	cr_assert(!strstr(r.err, "the VMs run 1.0 but the cluster runs 1.1"), "%s", r.err);
	tu_output_free(&r);
	char *buf = tu_state_journal_text(plan, NULL);
	cr_assert(strstr(buf, "\"skew-allowed\""), "%s", buf);
	cr_assert(strstr(buf, "cluster ahead on purpose"), "%s", buf);
	free(buf);
}

Test(dual, dry_run_changes_nothing)
{
	write_plan(&(plan_opts){0});
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", "--dry-run", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "dry run of the cluster deploy of 1.0"), "%s", r.out);
	cr_assert(strstr(r.out, "4 to create"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_eq(count_requests("PATCH", "/", "dryRun", "All"), 4);
	cr_assert_eq(count_requests("PATCH", "/", NULL, NULL), 4);
	cr_assert_neq(access(tu_at("%s/state", dir), F_OK), 0, "a dry run created the state dir");
}

/* The auth of every request the server saw for path_part, all the same, or "mixed". */
static const char *auth_of(const char *path_part)
{
	static char buf[64];
	json_t *log = tu_kubeapi_requests(&k);
	size_t i;
	json_t *r;
	buf[0] = '\0';
	json_array_foreach(log, i, r)
	{
		if (!strstr(vstr(r, "path"), path_part))
			continue;
		char one[64];
		snprintf(one, sizeof(one), "%s:%s", vstr(r, "auth"), vstr(r, "user"));
		if (!buf[0])
			snprintf(buf, sizeof(buf), "%s", one);
		else if (strcmp(buf, one))
			snprintf(buf, sizeof(buf), "mixed");
	}
	json_decref(log);
	return buf;
}

Test(dual, context_flag_overrides_the_plan)
{
	write_plan(&(plan_opts){0}); /* kubernetes.context unset: current-context is cert */
	tu_output r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", "--context",
	                              "token", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(vstr(json_object_get(doc, "kubernetes"), "context"), "token");
	json_decref(doc);
	tu_output_free(&r);
	/* every request with the token context's user, none with the certificate */
	cr_assert_str_eq(auth_of("/namespaces/default/"), "token:ci");

	json_decref(tu_kubeapi_control(&k, "{\"op\":\"clear_requests\"}"));
	r = tu_migrate_plan(plan, "diff", "--version", "1.0", "--context", "token", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "(server-side dry run in context token)"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_str_eq(auth_of("/namespaces/default/"), "token:ci");

	/* a context the kubeconfig lacks: bad input, naming the file and what it has */
	char want[1024];
	snprintf(want, sizeof(want),
	         "context nope is not defined in %s (contexts: cert, token, "
	         "expired)",
	         k.kubeconfig);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"clear_requests\"}"));
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.1", "--context", "nope",
	                    NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "diff", "--version", "1.1", "--context", "nope", NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "rollback", "--release", "--k8s-only", "--context", "nope", NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);
	json_t *log = tu_kubeapi_requests(&k);
	cr_assert_eq(json_array_size(log), 0, "the cluster was contacted");
	json_decref(log);

	/* the cluster's option where no cluster is contacted is a usage error */
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1", "--context", "token",
	                    NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "--vms-only contacts only the VMs"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "rollback", "--context", "token", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "--context names the cluster for rollback --release"), "%s", r.err);
	tu_output_free(&r);

	/* rollback --release goes through the context given */
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.1", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	tu_output_free(&r);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"clear_requests\"}"));
	r = tu_migrate_plan(plan, "rollback", "--release", "--context", "token", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "cluster rolled back to 1.0"), "%s", r.out);
	cr_assert(strstr(r.out, "(context token, namespace default)"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_str_eq(auth_of("/namespaces/default/"), "token:ci");
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");
}

static void git(const char *repo, const char *a1, const char *a2, const char *a3)
{
	char why[2048];
	char *argv[] = {"/usr/bin/git",
	                "-c",
	                "user.name=T",
	                "-c",
	                "user.email=t@example.com",
	                "-C",
	                (char *)repo,
	                (char *)a1,
	                (char *)a2,
	                (char *)a3,
	                NULL};
	cr_assert(tu_run_ok(dir, argv, why, sizeof(why)), "git %s: %s", a1, why);
}

Test(dual, version_from_build_repo_head)
{
	char repo[512];
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	cr_assert_eq(mkdir(repo, 0755), 0);
	git(repo, "init", "-q", NULL);
	tu_write_file(tu_at("%s/app.c", repo), "int main(void) { return 0; }\n");
	git(repo, "add", "app.c", NULL);
	git(repo, "commit", "-qm", "one");
	char *argv[] = {"/usr/bin/git", "-C", repo, "rev-parse", "HEAD", NULL};
	tu_output h = tu_capture(argv);
	cr_assert_eq(h.status, 0, "%s", h.err);
	char full[64];
	snprintf(full, sizeof(full), "%.40s", h.out);
	tu_output_free(&h);

	write_plan(&(plan_opts){.repo = repo});
	tu_output r = tu_migrate_plan(plan, "deploy", "--k8s-only", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	const char *v = vstr(doc, "version");
	/* the short id: a prefix of HEAD, as long as libgit2 makes it unique (7 here) */
	cr_assert_eq(strlen(v), 7, "%s", v);
	cr_assert_eq(strncmp(v, full, 7), 0, "%s is not a prefix of %s", v, full);
	char want[1024];
	snprintf(want, sizeof(want), "registry.example.com/shop:%.7s", full);
	cr_assert_str_eq(deployment_image(), want);
	json_decref(doc);
	tu_output_free(&r);

	/* an untracked file is no part of the commit's build: still fine */
	tu_write_file(tu_at("%s/notes.txt", repo), "x\n");
	r = tu_migrate_plan(plan, "diff", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);

	/* a changed tracked file: the release would not be what the commit names */
	tu_write_file(tu_at("%s/app.c", repo), "int main(void) { return 1; }\n");
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"clear_requests\"}"));
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	snprintf(want, sizeof(want),
	         "build.repo %s has 1 uncommitted change (app.c): the release would not be the "
	         "commit %.7s names. Commit them, or pass --version V",
	         repo, full);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);
	json_t *log = tu_kubeapi_requests(&k);
	cr_assert_eq(json_array_size(log), 0, "the cluster was contacted");
	json_decref(log);
	/* --version still works with a dirty tree */
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0-dirty", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
}

static json_int_t stored_replicas(void)
{
	json_t *d = stored("/apis/apps/v1/namespaces/default/deployments/shop");
	cr_assert_not_null(d);
	json_int_t n = json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas"));
	json_decref(d);
	return n;
}

Test(dual, force_conflicts_true_and_false)
{
	write_plan(&(plan_opts){0});
	tu_output r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	tu_output_free(&r);
	/* someone scales by hand: kubectl-edit now owns .spec.replicas */
	json_decref(tu_kubeapi_control(
	    &k, "{\"op\":\"update\",\"path\":\"/apis/apps/v1/namespaces/default/deployments/"
	        "shop\",\"manager\":\"kubectl-edit\",\"patch\":{\"spec\":{\"replicas\":5}}}"));
	cr_assert_eq(stored_replicas(), 5);

	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.1", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *kj = json_object_get(doc, "kubernetes");
	cr_assert_str_eq(vstr(json_object_get(kj, "error"), "kind"), "state conflict", "%s", r.out);
	const char *msg = vstr(json_object_get(kj, "error"), "message");
	cr_assert(strstr(msg, "kubectl-edit"), "%s", msg);
	cr_assert(strstr(msg, ".spec.replicas"), "%s", msg);
	json_t *objs = json_object_get(kj, "objects");
	size_t i;
	json_t *o;
	json_array_foreach(objs, i, o) if (!strcmp(vstr(o, "kind"), "Deployment"))
	    cr_assert_str_eq(vstr(o, "outcome"), "failed");
	json_decref(doc);
	cr_assert(strstr(r.err, ".spec.replicas"), "%s", r.err);
	tu_output_free(&r);
	cr_assert_eq(stored_replicas(), 5);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");

	write_plan(&(plan_opts){.force = true});
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.1", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
	/* taken over: the plan's replicas and image */
	cr_assert_eq(stored_replicas(), 2);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.1");
	cr_assert_eq(count_requests("PATCH", "deployments/shop", "force", "true"), 1);
}

Test(dual, exec_plugin_credentials)
{
	char plugin[512], kc[512], text[4096];
	snprintf(plugin, sizeof(plugin), "%s/cred.sh", dir);
	snprintf(text, sizeof(text),
	         "#!/bin/sh\n"
	         "echo \"$1 $KUBERNETES_EXEC_INFO\" >> %s/plugin.log\n"
	         "printf '%%s' '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
	         "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\"}}'\n",
	         dir, k.token);
	tu_write_file(plugin, text);
	cr_assert_eq(chmod(plugin, 0700), 0);
	snprintf(kc, sizeof(kc), "%s/kubeconfig-exec", dir);
	snprintf(text, sizeof(text),
	         "apiVersion: v1\n"
	         "kind: Config\n"
	         "clusters:\n"
	         "- name: kubeapi\n"
	         "  cluster: {server: \"%s\", certificate-authority: \"%s\"}\n"
	         "users:\n"
	         "- name: plugin\n"
	         "  user:\n"
	         "    exec:\n"
	         "      apiVersion: client.authentication.k8s.io/v1\n"
	         "      command: %s\n"
	         "      args: [get-token]\n"
	         "      interactiveMode: Never\n"
	         "contexts:\n"
	         "- name: exec\n"
	         "  context: {cluster: kubeapi, user: plugin, namespace: default}\n"
	         "current-context: exec\n",
	         k.url, k.ca, plugin);
	tu_write_file(kc, text);
	write_plan(&(plan_opts){.kubeconfig = kc});
	tu_output r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "shop: cluster at 1.0"), "%s", r.out);
	cr_assert(strstr(r.out, "(context exec, namespace default): 4 created"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_str_eq(auth_of("/namespaces/default/"), "token:ci");
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");
	/* the plugin ran with its args and was told it cannot prompt */
	FILE *f = fopen(tu_at("%s/plugin.log", dir), "r");
	cr_assert_not_null(f, "the exec plugin never ran");
	char line[1024] = "";
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_assert(!strncmp(line, "get-token {", 11), "%s", line);
	cr_assert(strstr(line, "\"interactive\":false"), "%s", line);
}

/* A web template set with a second Deployment, shop-worker, after shop. */
static void two_deployments(char *tdir, size_t size)
{
	snprintf(tdir, size, "%s/tmpl", dir);
	cr_assert_eq(mkdir(tdir, 0755), 0);
	char *in = NULL;
	size_t n = 0;
	FILE *f = fopen(tu_at("%s/templates/web/deployment.yaml", cwd), "r");
	cr_assert_not_null(f);
	cr_assert_eq(getdelim(&in, &n, '\0', f) > 0, 1);
	fclose(f);
	tu_write_file(tu_at("%s/deployment.yaml", tdir), in);
	/* the worker: every ${plan.name} becomes ${plan.name}-worker */
	char out[16384], *o = out;
	for (const char *p = in; *p && o < out + sizeof(out) - 16;) {
		if (!strncmp(p, "${plan.name}", 12)) {
			o += sprintf(o, "${plan.name}-worker");
			p += 12;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	free(in);
	tu_write_file(tu_at("%s/worker.yaml", tdir), out);
}

Test(dual, failed_rollout_names_the_deployments_not_waited_for)
{
	char tdir[512];
	two_deployments(tdir, sizeof(tdir));
	write_plan(&(plan_opts){.templates_dir = tdir});
	tu_output r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "2.0-fail-rollout",
	                              "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *kj = json_object_get(doc, "kubernetes");
	cr_assert_eq(json_integer_value(json_object_get(kj, "deployments")), 2, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(kj, "rolled_out")), 0);
	json_t *nw = json_object_get(kj, "rollouts_not_waited");
	cr_assert_eq(json_array_size(nw), 1, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_array_get(nw, 0)), "Deployment/shop-worker");
	size_t i;
	json_t *o;
	int seen = 0;
	json_array_foreach(json_object_get(kj, "objects"), i, o)
	{
		if (!strcmp(vstr(o, "name"), "shop") && !strcmp(vstr(o, "kind"), "Deployment")) {
			cr_assert_str_eq(vstr(o, "outcome"), "failed");
			cr_assert(json_is_false(json_object_get(o, "rollout_not_waited")));
			seen++;
		} else if (!strcmp(vstr(o, "name"), "shop-worker")) {
			/* applied; whether it became ready nobody knows */
			cr_assert_str_eq(vstr(o, "outcome"), "created");
			cr_assert(json_is_true(json_object_get(o, "rollout_not_waited")));
			cr_assert(json_is_false(json_object_get(o, "rolled_out")));
			seen++;
		}
	}
	cr_assert_eq(seen, 2, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	/* the same in text, after a second failing release */
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "2.1-fail-rollout", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "  not waited for after the failure (ready or not is unknown): "
	                        "Deployment/shop-worker\n"),
	          "%s", r.out);
	cr_assert(strstr(r.out, "unknown"), "%s", r.out);
	tu_output_free(&r);
}

Test(dual, status_and_plan_show_the_cluster_side)
{
	write_plan(&(plan_opts){.force = true});
	tu_output r = tu_migrate_plan(plan, "plan", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "  conflicts  forced: fields another manager owns are taken over "
	                        "(force_conflicts)\n"),
	          "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "plan", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert(
	    json_is_true(json_object_get(json_object_get(doc, "kubernetes"), "force_conflicts")),
	    "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	write_plan(&(plan_opts){0});
	r = tu_migrate_plan(plan, "plan", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "  conflicts  refused: a field another manager owns fails the "
	                        "apply\n"),
	          "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "plan", "-o", "json", NULL);
	doc = tu_json_doc(&r);
	cr_assert(
	    json_is_false(json_object_get(json_object_get(doc, "kubernetes"), "force_conflicts")),
	    "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "status", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "  versions   VMs -, cluster 1.0\n"), "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.1", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "status", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "  versions   VMs -, cluster 1.1 (before: 1.0)\n"), "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "status", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	doc = tu_json_doc(&r);
	json_t *v = json_object_get(json_object_get(doc, "state"), "versions");
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.1", "%s", r.out);
	cr_assert_str_eq(vstr(v, "kubernetes_previous"), "1.0", "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
}

/* Any 12 bytes of the token in text: a cut before scrubbing leaves a piece of it. */
static void no_token_in(const char *what, const char *text)
{
	size_t n = strlen(k.token);
	for (size_t i = 0; text && i + 12 <= n; i++) {
		char piece[13];
		snprintf(piece, sizeof(piece), "%.12s", k.token + i);
		cr_assert_null(strstr(text, piece), "%s holds \"%s\" of the token: %s", what, piece,
		               text);
	}
}

/*
 * The Kubernetes API quoting the token back (as a Status with causes, and
 * as a plain-text body): not in diff's or deploy's output at any verbosity,
 * nor in the state directory or history.
 */
Test(dual, an_echoed_token_is_masked_everywhere)
{
	write_plan(&(plan_opts){0});
	const char *modes[] = {"{\"op\":\"echo\",\"on\":true,\"status\":400,\"kind\":\"text\"}",
	                       "{\"op\":\"echo\",\"on\":true,\"status\":422,\"kind\":\"status\"}"};
	const char *vb[] = {NULL, "-v", "-vv"};
	for (int m = 0; m < 2; m++) {
		json_decref(tu_kubeapi_control(&k, modes[m]));
		for (int v = 0; v < 3; v++) {
			/* the "token" context: a bearer token the server can quote */
			tu_output r = tu_migrate_plan(plan, "diff", "--context", "token",
			                              "--version", "1.0", vb[v], NULL);
			cr_assert_neq(r.status, 0, "%s", r.out);
			no_token_in("diff stdout", r.out);
			no_token_in("diff stderr", r.err);
			tu_output_free(&r);
			r = tu_migrate_plan(plan, "deploy", "--context", "token", "--k8s-only",
			                    "--version", "1.0", v ? vb[v] : "-o", v ? NULL : "json",
			                    NULL);
			cr_assert_neq(r.status, 0, "%s", r.out);
			no_token_in("deploy stdout", r.out);
			no_token_in("deploy stderr", r.err);
			cr_assert(strstr(r.out, "[redacted]") || strstr(r.err, "[redacted]"),
			          "the server's words are not shown: %s\n%s", r.out, r.err);
			tu_output_free(&r);
			r = tu_migrate_plan(plan, "history", v ? vb[v] : "-o", v ? NULL : "json",
			                    NULL);
			no_token_in("history", r.out);
			tu_output_free(&r);
		}
	}
	/* the journal, the state and the lock, wherever they are kept */
	char *everything = tu_state_everything(plan, NULL);
	no_token_in("the state", everything);
	free(everything);
}

Test(dual, failed_rollout_recorded_status_step_and_rollback)
{
	tu_vms_start(&vms, dir, 1);
	write_plan(&(plan_opts){.nvms = 1, .traffic = true});
	tu_make_artifact(dir, "1.0", true);
	tu_make_artifact(dir, "2.0-fail-rollout", true);
	tu_output r = tu_migrate_plan(plan, "deploy", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
	json_t *v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes_rollout"), "ok");
	cr_assert(json_is_null(json_object_get(v, "kubernetes_error")));
	json_decref(v);

	/* applied, never ready: the cluster runs it (not healthy), and the state says so */
	r = tu_migrate_plan(plan, "deploy", "--version", "2.0-fail-rollout", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *dv = json_object_get(doc, "versions");
	cr_assert_str_eq(vstr(dv, "kubernetes"), "2.0-fail-rollout");
	cr_assert_str_eq(vstr(dv, "kubernetes_rollout"), "failed");
	json_decref(doc);
	tu_output_free(&r);
	v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes"), "2.0-fail-rollout");
	cr_assert_str_eq(vstr(v, "kubernetes_previous"), "1.0");
	cr_assert_str_eq(vstr(v, "kubernetes_rollout"), "failed");
	cr_assert(strstr(vstr(v, "kubernetes_error"), "ProgressDeadlineExceeded"), "%s",
	          vstr(v, "kubernetes_error"));
	json_decref(v);

	/* the journal's result says the same: the cluster went to 2.0-fail-rollout */
	char *buf = tu_state_journal_text(plan, NULL);
	const char *last = NULL;
	for (const char *p = strstr(buf, "\"cluster-result\""); p;
	     p = strstr(p + 1, "\"cluster-result\""))
		last = p;
	cr_assert_not_null(last, "%s", buf);
	const char *eol = strchr(last, '\n');
	char line[16384];
	snprintf(line, sizeof(line), "%.*s", eol ? (int)(eol - last) : (int)strlen(last), last);
	cr_assert(
	    strstr(line, "\"after\":{\"side\":\"kubernetes\",\"version\":\"2.0-fail-rollout\"}"),
	    "%s", line);
	free(buf);

	/* status shows it, in text and JSON */
	r = tu_migrate_plan(plan, "status", NULL);
	cr_assert(strstr(r.out, "cluster 2.0-fail-rollout (rollout failed) (before: 1.0)"), "%s",
	          r.out);
	cr_assert(strstr(r.out, "2.0-fail-rollout's rollout failed: "), "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "status", "-o", "json", NULL);
	doc = tu_json_doc(&r);
	dv = json_object_get(json_object_get(doc, "state"), "versions");
	cr_assert_str_eq(vstr(dv, "kubernetes_rollout"), "failed", "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	/* the VMs and the cluster carry the same name, but the cluster does not run it */
	r = tu_migrate_plan(plan, "step", NULL);
	cr_assert_eq(r.status, 3, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "the VMs run 2.0-fail-rollout but the cluster's rollout of "
	                        "2.0-fail-rollout failed ("),
	          "%s", r.err);
	tu_output_free(&r);

	/* another failed release: the one to go back to is still the last that rolled out */
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "3.0-fail-rollout", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
	v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes"), "3.0-fail-rollout");
	cr_assert_str_eq(vstr(v, "kubernetes_previous"), "1.0");
	json_decref(v);

	r = tu_migrate_plan(plan, "rollback", "--release", "--k8s-only", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
	cr_assert_str_eq(deployment_image(), "registry.example.com/shop:1.0");
	v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.0");
	cr_assert_str_eq(vstr(v, "kubernetes_rollout"), "ok");
	cr_assert(json_is_null(json_object_get(v, "kubernetes_error")));
	cr_assert(json_is_null(json_object_get(v, "kubernetes_previous")));
	json_decref(v);
}

/* Templates of a StatefulSet, a DaemonSet and an OnDelete DaemonSet of the release's image. */
static void workload_templates(char *tdir, size_t size)
{
	snprintf(tdir, size, "%s/wl", dir);
	cr_assert_eq(mkdir(tdir, 0755), 0);
	static const char *const t[][2] = {
	    {"db.yaml", "StatefulSet"}, {"agent.yaml", "DaemonSet"}, {"manual.yaml", "DaemonSet"}};
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "%.*s", (int)(strchr(t[i][0], '.') - t[i][0]),
		         t[i][0]);
		tu_write_file(tu_at("%s/%s", tdir, t[i][0]),
		              tu_at("apiVersion: apps/v1\nkind: %s\nmetadata:\n  name: %s\n"
		                    "  namespace: ${namespace}\nspec:\n%s%s"
		                    "  selector:\n    matchLabels: {app: %s}\n"
		                    "  template:\n    metadata:\n      labels: {app: %s}\n"
		                    "    spec:\n      containers:\n        - name: c\n"
		                    "          image: ${image}\n",
		                    t[i][1], name, i == 0 ? "  replicas: 2\n" : "",
		                    i == 2 ? "  updateStrategy: {type: OnDelete}\n" : "", name,
		                    name));
	}
}

Test(dual, statefulset_and_daemonset_rollouts)
{
	char tdir[512];
	workload_templates(tdir, sizeof(tdir));
	write_plan(&(plan_opts){.templates_dir = tdir, .rollout_timeout = "2s"});
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *kj = json_object_get(doc, "kubernetes");
	cr_assert_eq(json_integer_value(json_object_get(kj, "workloads")), 3, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(kj, "rolled_out")), 2, "%s", r.out);
	json_t *nw = json_object_get(kj, "rollouts_not_waitable");
	cr_assert_eq(json_array_size(nw), 1, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_array_get(nw, 0)), "DaemonSet/manual");
	json_decref(doc);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "2 of 2 workloads rolled out, 1 not waitable (OnDelete)"), "%s",
	          r.out);
	cr_assert(strstr(r.out, "DaemonSet/manual  unchanged   OnDelete"), "%s", r.out);
	tu_output_free(&r);

	/* a release whose pods never get ready: no deadline, so rollout_timeout ends it */
	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "2.0-fail-rollout", NULL);
	cr_assert_eq(r.status, 1, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "apps/v1 StatefulSet default/db: not rolled out within"), "%s",
	          r.out);
	cr_assert(strstr(r.out, "(rollout_timeout): waiting for "), "%s", r.out);
	/* the waits stop at the failure: the DaemonSets after it were not looked at */
	cr_assert(strstr(r.out, "0 of 3 workloads rolled out"), "%s", r.out);
	cr_assert(strstr(r.out, "not waited for after the failure (ready or not is unknown): "
	                        "DaemonSet/agent, DaemonSet/manual"),
	          "%s", r.out);
	tu_output_free(&r);
	json_t *v = state_versions();
	cr_assert_str_eq(vstr(v, "kubernetes_rollout"), "failed");
	cr_assert(strstr(vstr(v, "kubernetes_error"), "StatefulSet default/db"), "%s",
	          vstr(v, "kubernetes_error"));
	json_decref(v);
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Issue 13: `deploy --vms-only` parsed the plan twice and printed its warnings twice. */
Test(dual, vms_only_prints_the_plan_warnings_once)
{
	char repo[512], tdir[512], id[8];
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	snprintf(tdir, sizeof(tdir), "%s/no-templates", dir);
	cr_assert_eq(mkdir(repo, 0755), 0);
	git(repo, "init", "-q", NULL);
	tu_write_file(tu_at("%s/app.c", repo), "int main(void) { return 0; }\n");
	git(repo, "add", "app.c", NULL);
	git(repo, "commit", "-qm", "one");
	char *argv[] = {"/usr/bin/git", "-C", repo, "rev-parse", "--short=7", "HEAD", NULL};
	tu_output h = tu_capture(argv);
	cr_assert_eq(h.status, 0, "%s", h.err);
	snprintf(id, sizeof(id), "%.7s", h.out);
	tu_output_free(&h);
	tu_vms_start(&vms, dir, 1);
	tu_make_artifact(dir, id, true);
	write_plan(&(plan_opts){.nvms = 1, .repo = repo, .templates_dir = tdir});

	/* the version from build.repo, the fleet alone: one load of the plan */
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--dry-run", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, tu_at("dry run: deploy %s on 1 host", id)), "%s", r.out);
	cr_assert_eq(count_of(r.err, "no-templates"), 1, "the warning not exactly once:\n%s",
	             r.err);
	tu_output_free(&r);
	/* and the same for rollback --release --vms-only, refused for want of a release */
	r = tu_migrate_plan(plan, "rollback", "--release", "--vms-only", "--dry-run", NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "nothing to roll back to"), "%s", r.err);
	cr_assert_eq(count_of(r.err, "no-templates"), 1, "the warning not exactly once:\n%s",
	             r.err);
	tu_output_free(&r);
}

/* The pod template's annotation checksum/config and its ConfigMap volume's items. */
static const char *pod_checksum(json_t *deployment, json_t **items)
{
	json_t *tpl = json_object_get(json_object_get(deployment, "spec"), "template");
	json_t *vols = json_object_get(json_object_get(tpl, "spec"), "volumes");
	*items = NULL;
	for (size_t i = 0; i < json_array_size(vols); i++) {
		json_t *cmv = json_object_get(json_array_get(vols, i), "configMap");
		if (cmv)
			*items = json_object_get(cmv, "items");
	}
	return vstr(json_object_get(json_object_get(tpl, "metadata"), "annotations"),
	            "checksum/config");
}

/* Issue 13: one ConfigMap build for `render` and `deploy`: the same checksum and keys. */
Test(dual, render_and_deploy_agree_on_the_configmap)
{
	write_plan(&(plan_opts){.templates = "php-fpm-nginx"});
	tu_output r = tu_migrate_plan(plan, "render", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *list = tu_json_doc(&r);
	tu_output_free(&r);
	json_t *rendered = NULL, *ritems = NULL;
	json_t *items = json_object_get(list, "items");
	for (size_t i = 0; i < json_array_size(items); i++)
		if (!strcmp(vstr(json_array_get(items, i), "kind"), "Deployment"))
			rendered = json_array_get(items, i);
	cr_assert_not_null(rendered, "render made no Deployment");
	char rsum[65];
	snprintf(rsum, sizeof(rsum), "%s", pod_checksum(rendered, &ritems));
	cr_assert_eq(strlen(rsum), 64, "%s", rsum);

	r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
	json_t *cm = stored("/api/v1/namespaces/default/configmaps/nginx");
	json_t *d = stored("/apis/apps/v1/namespaces/default/deployments/shop");
	cr_assert_not_null(cm);
	cr_assert_not_null(d);
	json_t *ditems = NULL;
	cr_assert_str_eq(pod_checksum(d, &ditems), rsum, "deploy's pod template differs");
	cr_assert_str_eq(vstr(json_object_get(json_object_get(cm, "metadata"), "annotations"),
	                      "migrate/checksum"),
	                 rsum, "the applied ConfigMap is not the one render's checksum names");
	cr_assert(json_equal(ditems, ritems), "the volume items differ");
	/* every item render projects is a key of the applied ConfigMap */
	for (size_t i = 0; i < json_array_size(ritems); i++) {
		const char *key = vstr(json_array_get(ritems, i), "key");
		cr_assert(json_object_get(json_object_get(cm, "data"), key) ||
		              json_object_get(json_object_get(cm, "binaryData"), key),
		          "item %s is not a key of the applied ConfigMap", key);
	}
	json_decref(cm);
	json_decref(d);
	json_decref(list);
}
