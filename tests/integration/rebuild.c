/*
 * `status` and `rollback --release` with no state recorded, as a CI pipeline
 * runs them (a fresh runner, a fresh state directory per job): what the
 * versions are is rebuilt from the hosts (real sshd per fake VM,
 * tests/sandbox/vms.sh) and the cluster (tests/servers/kubeapi.py). What is
 * asserted is what each side holds afterwards (the VMs' current links, the
 * Deployment the API server stores), exit codes, JSON and text.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"

static char dir[256];
static char plan[300];    /* dir/plan.yaml */
static char state_a[300]; /* the deploy jobs' state directory */
static char state_b[300]; /* the later job's: empty */
static char cwd[512];
static tu_vms vms;
static tu_kubeapi k = TU_KUBEAPI_INIT;
static bool in_cluster; /* write_plan: state.backend kubernetes */

#define DEPLOYMENT "/apis/apps/v1/namespaces/default/deployments/shop"

static void setup(void)
{
	in_cluster = false;
	tu_tmpdir_make(dir, sizeof(dir), "rebuild");
	snprintf(plan, sizeof(plan), "%s/plan.yaml", dir);
	snprintf(state_a, sizeof(state_a), "%s/job-a", dir);
	snprintf(state_b, sizeof(state_b), "%s/job-b", dir);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	unsetenv("NO_COLOR");
	unsetenv("KUBECONFIG");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	tu_kubeapi_start(&k, dir, "default");
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":10,"
	                                   "\"observe_ms\":10,\"deadline_scale\":0.001}"));
}

static void teardown(void)
{
	tu_vms_stop(&vms);
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
}

TestSuite(rebuild, .init = setup, .fini = teardown, .timeout = 90);

/* A plan with the cluster and, with nvms > 0, that many of the VMs. */
static void write_plan(int nvms)
{
	char text[16384], hosts[8192], vms_yaml[12288] = "";
	if (nvms) {
		tu_vms_hosts_lines(&vms, nvms, hosts, sizeof(hosts));
		snprintf(vms_yaml, sizeof(vms_yaml),
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
	snprintf(text, sizeof(text),
	         "version: 1\n"
	         "name: shop\n"
	         "build:\n"
	         "  artifact: art/app-${version}.tar.gz\n"
	         "  image: registry.example.com/shop:${version}\n"
	         "kubernetes:\n"
	         "  kubeconfig: %s\n"
	         "  namespace: default\n"
	         "  templates: %s/templates/web\n"
	         "  rollout_timeout: 20s\n"
	         "  values: { replicas: 2, max_replicas: 6, port: 8080, cpu: 100m, "
	         "memory: 64Mi, health_path: /healthz, nginx_image: nginx:1.25 }\n"
	         "%s"
	         "state:\n  dir: state\n%s",
	         k.kubeconfig, cwd, vms_yaml, in_cluster ? "  backend: kubernetes\n" : "");
	tu_write_file(plan, text);
}

static json_t *stored(const char *path)
{
	json_t *r = tu_kubeapi_control(&k, tu_at("{\"op\":\"get\",\"path\":\"%s\"}", path));
	json_t *obj = json_incref(json_object_get(r, "object"));
	if (!obj && json_object_get(r, "kind"))
		obj = json_incref(r);
	json_decref(r);
	return obj;
}

static const char *vstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "(null)";
}

/* The stored Deployment's image and its annotation key (one of 4 rotating buffers). */
static const char *deployment(const char *what)
{
	static char buf[4][256];
	static int n;
	char *out = buf[n++ % 4];
	json_t *d = stored(DEPLOYMENT);
	cr_assert_not_null(d, "no Deployment shop stored");
	if (!strcmp(what, "image")) {
		json_t *c = json_array_get(
		    json_object_get(
		        json_object_get(json_object_get(json_object_get(d, "spec"), "template"),
		                        "spec"),
		        "containers"),
		    0);
		snprintf(out, 256, "%s", vstr(c, "image"));
	} else {
		snprintf(
		    out, 256, "%s",
		    vstr(json_object_get(json_object_get(d, "metadata"), "annotations"), what));
	}
	json_decref(d);
	return out;
}

static bool has(json_t *list, const char *s)
{
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) if (!strcmp(json_string_value(e), s)) return true;
	return false;
}

/* Jobs 1 and 2 of the pipeline: 1.0.0, then 1.1.0, with their own state directory. */
static void deploy_two_releases(void)
{
	tu_make_artifact(dir, "1.0.0", true);
	tu_make_artifact(dir, "1.1.0", true);
	const char *versions[] = {"1.0.0", "1.1.0"};
	for (int i = 0; i < 2; i++) {
		tu_output r = tu_migrate_plan(plan, "deploy", "--state-dir", state_a, "--version",
		                              versions[i], NULL);
		cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
		tu_output_free(&r);
	}
	for (int i = 0; i < vms.n; i++)
		cr_assert(strstr(tu_vms_current(&vms, i), "releases/1.1.0"), "vm %d: %s", i,
		          tu_vms_current(&vms, i));
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.1.0");
}

Test(rebuild, three_jobs_status_and_rollback_from_an_empty_state_dir)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(3);
	deploy_two_releases();
	/* what the cluster side will be read back from */
	cr_assert_str_eq(deployment("migrate/release"), "1.1.0");
	cr_assert_str_eq(deployment("migrate/previous-release"), "1.0.0");

	/* job 3, a fresh runner: nothing in B */
	tu_output r = tu_migrate_plan(plan, "status", "--state-dir", state_b, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert(json_is_false(json_object_get(doc, "recorded")));
	json_t *rebuilt = json_object_get(doc, "rebuilt");
	cr_assert(has(rebuilt, "versions.vms") && has(rebuilt, "versions.vms_previous") &&
	              has(rebuilt, "versions.kubernetes") &&
	              has(rebuilt, "versions.kubernetes_previous") && has(rebuilt, "fleet"),
	          "%s", r.out);
	json_t *v = json_object_get(json_object_get(doc, "state"), "versions");
	cr_assert_str_eq(vstr(v, "vms"), "1.1.0");
	cr_assert_str_eq(vstr(v, "vms_previous"), "1.0.0");
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.1.0");
	cr_assert_str_eq(vstr(v, "kubernetes_previous"), "1.0.0");
	json_t *from = json_object_get(doc, "rebuilt_from");
	cr_assert_eq(json_integer_value(json_object_get(from, "hosts_read")), 3);
	json_t *h0 = json_array_get(json_object_get(from, "hosts"), 0);
	cr_assert_str_eq(vstr(h0, "current"), "1.1.0");
	cr_assert_eq(json_array_size(json_object_get(h0, "releases")), 2);
	cr_assert_str_eq(vstr(json_object_get(from, "cluster"), "version"), "1.1.0");
	cr_assert(json_is_false(json_object_get(json_object_get(doc, "fleet"), "skew")));
	json_decref(doc);
	tu_output_free(&r);
	/* read, never written: status creates no state directory */
	struct stat sb;
	cr_assert_neq(stat(state_b, &sb), 0);

	r = tu_migrate_plan(plan, "status", "--state-dir", state_b, NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "versions rebuilt from what the hosts and the cluster hold"), "%s",
	          r.out);
	cr_assert(strstr(r.out, "VMs 1.1.0 (before: 1.0.0), cluster 1.1.0 (before: 1.0.0)"), "%s",
	          r.out);
	cr_assert(strstr(r.out, "rebuilt    VMs from the hosts (current and releases/, 3 of 3 "
	                        "read)"),
	          "%s", r.out);
	cr_assert(strstr(r.out, "fleet      3 hosts: 3 on 1.1.0"), "%s", r.out);
	tu_output_free(&r);

	/* a dry run reads the same and changes nothing, not even creating B */
	r = tu_migrate_plan(plan, "rollback", "--release", "--dry-run", "--state-dir", state_b,
	                    "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	doc = tu_json_doc(&r);
	cr_assert_str_eq(vstr(doc, "version"), "1.0.0");
	cr_assert(strstr(vstr(doc, "rebuilt"), "read from the hosts"), "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);
	cr_assert_neq(stat(state_b, &sb), 0);
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.1.0");

	/* rollback --release goes back to 1.0.0 on both sides */
	r = tu_migrate_plan(plan, "rollback", "--release", "--state-dir", state_b, NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "no state recorded in"), "%s", r.out);
	tu_output_free(&r);
	for (int i = 0; i < 3; i++)
		cr_assert(strstr(tu_vms_current(&vms, i), "releases/1.0.0"), "vm %d: %s", i,
		          tu_vms_current(&vms, i));
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.0.0");
	cr_assert_str_eq(deployment("migrate/release"), "1.0.0");
	/* gone back once: nothing to go back to again */
	cr_assert_str_eq(deployment("migrate/previous-release"), "(null)");

	/* B now records it */
	r = tu_migrate_plan(plan, "status", "--state-dir", state_b, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	doc = tu_json_doc(&r);
	cr_assert(json_is_true(json_object_get(doc, "recorded")));
	cr_assert(json_is_null(json_object_get(doc, "rebuilt")));
	v = json_object_get(json_object_get(doc, "state"), "versions");
	cr_assert_str_eq(vstr(v, "vms"), "1.0.0");
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.0.0");
	json_decref(doc);
	tu_output_free(&r);
}

/*
 * The same three jobs with the record in the cluster (state.backend: kubernetes):
 * job 3 rebuilds nothing, it reads what jobs 1 and 2 recorded, on another runner
 * (another state directory) and with nothing on its disk.
 */
Test(rebuild, three_jobs_share_the_record_in_the_cluster)
{
	in_cluster = true;
	tu_vms_start(&vms, dir, 2);
	write_plan(2);
	deploy_two_releases();
	char state_c[320];
	snprintf(state_c, sizeof(state_c), "%s/job-c", dir);

	tu_output r = tu_migrate_plan(plan, "status", "--state-dir", state_c, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert(json_is_true(json_object_get(doc, "recorded")), "%s", r.out);
	cr_assert(json_is_null(json_object_get(doc, "rebuilt")), "%s", r.out);
	cr_assert_str_eq(vstr(doc, "state_backend"), "kubernetes");
	json_t *v = json_object_get(json_object_get(doc, "state"), "versions");
	cr_assert_str_eq(vstr(v, "vms"), "1.1.0");
	cr_assert_str_eq(vstr(v, "vms_previous"), "1.0.0");
	cr_assert_str_eq(vstr(v, "kubernetes"), "1.1.0");
	cr_assert_str_eq(vstr(v, "kubernetes_previous"), "1.0.0");
	json_decref(doc);
	tu_output_free(&r);

	/* both deploys, from the other runner's jobs, in one history */
	r = tu_migrate_plan(plan, "history", "--state-dir", state_c, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	doc = tu_json_doc(&r);
	size_t i, results = 0;
	json_t *rec;
	json_array_foreach(json_object_get(doc, "records"), i, rec) results +=
	    !strcmp(vstr(rec, "command"), "deploy") && !strcmp(vstr(rec, "action"), "result");
	cr_assert_eq(results, 2, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "rollback", "--release", "--state-dir", state_c, NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert_null(strstr(r.out, "no state recorded"), "%s", r.out);
	tu_output_free(&r);
	for (int h = 0; h < 2; h++)
		cr_assert(strstr(tu_vms_current(&vms, h), "releases/1.0.0"), "vm %d: %s", h,
		          tu_vms_current(&vms, h));
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.0.0");
	/* nothing of the record on either runner's disk */
	struct stat sb;
	cr_assert_neq(stat(tu_at("%s/shop/state.json", state_a), &sb), 0);
	cr_assert_neq(stat(tu_at("%s/shop/state.json", state_c), &sb), 0);
}

Test(rebuild, an_unreachable_host_is_named_and_nothing_rolls_back)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(3);
	deploy_two_releases();
	tu_stop(&vms.pid[1]); /* vm-02's sshd */

	tu_output r = tu_migrate_plan(plan, "status", "--state-dir", state_b, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *rebuilt = json_object_get(doc, "rebuilt");
	/* two of three hosts say 1.1.0: the VMs' version is not claimed */
	cr_assert(!has(rebuilt, "versions.vms") && !has(rebuilt, "versions.vms_previous"), "%s",
	          r.out);
	cr_assert(has(rebuilt, "versions.kubernetes"), "%s", r.out);
	json_t *v = json_object_get(json_object_get(doc, "state"), "versions");
	cr_assert(json_is_null(json_object_get(v, "vms")), "%s", r.out);
	json_t *from = json_object_get(doc, "rebuilt_from");
	cr_assert_eq(json_integer_value(json_object_get(from, "hosts_read")), 2);
	json_t *h1 = json_array_get(json_object_get(from, "hosts"), 1);
	cr_assert_str_eq(vstr(h1, "host"), "vm-02");
	cr_assert(json_is_false(json_object_get(h1, "reached")));
	cr_assert(json_is_null(json_object_get(h1, "current")));
	cr_assert(strstr(vstr(h1, "error"), "vm-02"), "%s", vstr(h1, "error"));
	json_t *fleet = json_object_get(doc, "fleet");
	cr_assert_eq(json_integer_value(json_object_get(fleet, "unknown")), 1, "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "status", "--state-dir", state_b, NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "2 of 3 read): the VMs' version is unknown"), "%s", r.out);
	cr_assert(strstr(r.out, "vm-02"), "%s", r.out);
	cr_assert(strstr(r.out, "not read:"), "%s", r.out);
	cr_assert(strstr(r.out, "versions   VMs -,"), "%s", r.out);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "rollback", "--release", "--state-dir", state_b, NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "the VMs' release cannot be rebuilt: 1 of 3 hosts could not be "
	                        "read (vm-02: "),
	          "%s", r.err);
	tu_output_free(&r);
	cr_assert(strstr(tu_vms_current(&vms, 0), "releases/1.1.0"));
	cr_assert(strstr(tu_vms_current(&vms, 2), "releases/1.1.0"));
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.1.0");
}

Test(rebuild, a_deployment_without_the_annotation_is_not_guessed)
{
	tu_vms_start(&vms, dir, 2);
	write_plan(2);
	deploy_two_releases();
	/* as applied by something else, or a migrate from before the annotation */
	json_decref(tu_kubeapi_control(
	    &k, "{\"op\":\"update\",\"path\":\"" DEPLOYMENT "\",\"manager\":\"kubectl-edit\","
	        "\"patch\":{\"metadata\":{\"annotations\":{\"migrate/release\":null,"
	        "\"migrate/previous-release\":null}}}}"));
	cr_assert_str_eq(deployment("migrate/release"), "(null)");

	tu_output r = tu_migrate_plan(plan, "status", "--state-dir", state_b, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *rebuilt = json_object_get(doc, "rebuilt");
	cr_assert(has(rebuilt, "versions.vms") && !has(rebuilt, "versions.kubernetes"), "%s",
	          r.out);
	json_t *v = json_object_get(json_object_get(doc, "state"), "versions");
	cr_assert(json_is_null(json_object_get(v, "kubernetes")), "%s", r.out);
	json_t *cl = json_object_get(json_object_get(doc, "rebuilt_from"), "cluster");
	cr_assert(strstr(vstr(cl, "missing"), "Deployment default/shop carries no migrate/release "
	                                      "annotation"),
	          "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "status", "--state-dir", state_b, NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "cluster -"), "%s", r.out);
	cr_assert(strstr(r.out, "rebuilt    cluster unknown: apps/v1 Deployment default/shop "
	                        "carries no migrate/release annotation"),
	          "%s", r.out);
	tu_output_free(&r);

	/* both sides: refused, naming what is missing; nothing moved */
	r = tu_migrate_plan(plan, "rollback", "--release", "--state-dir", state_b, NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "the cluster's release cannot be rebuilt: apps/v1 Deployment "
	                        "default/shop carries no migrate/release annotation"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "--vms-only rolls back the VMs alone"), "%s", r.err);
	tu_output_free(&r);
	for (int i = 0; i < 2; i++)
		cr_assert(strstr(tu_vms_current(&vms, i), "releases/1.1.0"), "vm %d", i);
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.1.0");

	/* the VMs alone are known: they go back */
	r = tu_migrate_plan(plan, "rollback", "--release", "--vms-only", "--state-dir", state_b,
	                    NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	tu_output_free(&r);
	for (int i = 0; i < 2; i++)
		cr_assert(strstr(tu_vms_current(&vms, i), "releases/1.0.0"), "vm %d", i);
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.1.0");
}

/* The cluster alone, every job on a fresh state directory: deploy, deploy, rollback, rollback. */
Test(rebuild, cluster_only_every_job_fresh_goes_back_once)
{
	char fresh[4][300];
	for (int i = 0; i < 4; i++)
		snprintf(fresh[i], sizeof(fresh[i]), "%s/job-%d", dir, i + 1);
	write_plan(0);
	const char *versions[] = {"1.0.0", "1.1.0"};
	for (int i = 0; i < 2; i++) {
		tu_output r = tu_migrate_plan(plan, "deploy", "--k8s-only", "--state-dir", fresh[i],
		                              "--version", versions[i], NULL);
		cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
		tu_output_free(&r);
	}
	/* job 2 knew nothing of job 1: the live Deployment said what it replaced */
	cr_assert_str_eq(deployment("migrate/previous-release"), "1.0.0");

	tu_output r = tu_migrate_plan(plan, "rollback", "--release", "--k8s-only", "--state-dir",
	                              fresh[2], "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert(strstr(vstr(doc, "rebuilt"), "rendered from the plan's templates"), "%s", r.out);
	cr_assert_str_eq(vstr(json_object_get(doc, "kubernetes"), "from_version"), "1.1.0");
	cr_assert_str_eq(vstr(json_object_get(doc, "versions"), "kubernetes"), "1.0.0");
	json_decref(doc);
	tu_output_free(&r);
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.0.0");
	cr_assert_str_eq(deployment("migrate/release"), "1.0.0");

	/* gone back once, as with a recorded state: the next fresh job has nowhere to go */
	r = tu_migrate_plan(plan, "rollback", "--release", "--k8s-only", "--state-dir", fresh[3],
	                    NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "nothing to roll back to on the cluster: no state is recorded"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "carries no migrate/previous-release annotation"), "%s", r.err);
	tu_output_free(&r);
	cr_assert_str_eq(deployment("image"), "registry.example.com/shop:1.0.0");
}

/* Hosts on different releases: shown as they are, the VMs' version not claimed, no rollback. */
Test(rebuild, hosts_on_different_releases_are_skew_not_a_version)
{
	tu_vms_start(&vms, dir, 3);
	write_plan(3);
	deploy_two_releases();
	/* vm-03 put back by hand */
	const char *cur = tu_at("%s/current", vms.root[2]);
	cr_assert_eq(unlink(cur), 0);
	cr_assert_eq(symlink("releases/1.0.0", cur), 0);

	tu_output r = tu_migrate_plan(plan, "status", "--state-dir", state_b, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *rebuilt = json_object_get(doc, "rebuilt");
	cr_assert(!has(rebuilt, "versions.vms") && has(rebuilt, "fleet"), "%s", r.out);
	json_t *fleet = json_object_get(doc, "fleet");
	cr_assert(json_is_true(json_object_get(fleet, "skew")), "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(fleet, "unknown")), 0, "%s", r.out);
	json_t *h2 =
	    json_array_get(json_object_get(json_object_get(doc, "rebuilt_from"), "hosts"), 2);
	cr_assert_str_eq(vstr(h2, "current"), "1.0.0");
	cr_assert(json_is_null(json_object_get(h2, "previous")), "%s", r.out);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "status", "--state-dir", state_b, NULL);
	cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.out, "3 of 3 read): the hosts do not run one release"), "%s", r.out);
	cr_assert(strstr(r.out, "fleet      3 hosts: 2 on 1.1.0, 1 on 1.0.0  SKEW"), "%s", r.out);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "rollback", "--release", "--vms-only", "--state-dir", state_b,
	                    NULL);
	cr_assert_eq(r.status, 2, "stdout: %s\nstderr: %s", r.out, r.err);
	cr_assert(strstr(r.err, "the hosts do not run one release: vm-01 runs 1.1.0, vm-03 runs "
	                        "1.0.0"),
	          "%s", r.err);
	tu_output_free(&r);
	cr_assert(strstr(tu_vms_current(&vms, 0), "releases/1.1.0"));
}
