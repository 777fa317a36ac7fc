/*
 * lib/release without a host or a cluster: which sides a release runs on and
 * what is refused before anything is contacted (the flags against the plan,
 * the artifact, the credentials).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "release.h"

static char dir[256];

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "release");
	unsetenv("SSH_AUTH_SOCK");
}

static void teardown(void)
{
	tu_tmpdir_remove(dir);
}

TestSuite(release, .init = setup, .fini = teardown, .timeout = 60);

static mg_plan *load(bool vms, bool k8s)
{
	char text[2048];
	int n = snprintf(text, sizeof(text),
	                 "version: 1\nname: shop\nbuild: { artifact: \"art/app-${version}.tgz\", "
	                 "image: \"reg/shop:${version}\" }\n");
	if (vms)
		n += snprintf(
		    text + n, sizeof(text) - (size_t)n,
		    "vms:\n  hosts: [{ name: vm1, address: 127.0.0.1 }]\n  user: app\n"
		    "  identity_file: key\n  known_hosts: known_hosts\n  path: /srv/app\n");
	if (k8s)
		snprintf(text + n, sizeof(text) - (size_t)n,
		         "kubernetes:\n  namespace: web\n  templates: %s\n", dir);
	mg_plan *plan = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_plan_load_buffer(&plan, text, strlen(text), "plan.yaml", dir, 0, &err), 0,
	             "%s", err.message);
	mg_error_clear(&err);
	return plan;
}

/* prepare's verdict and message for these options. */
static int prepare(const mg_plan *plan, mg_release_options o, char *msg, size_t size)
{
	mg_release *r = NULL;
	mg_error err = MG_ERROR_INIT;
	o.state_dir = dir;
	o.command = "deploy";
	int rc = mg_release_prepare(&r, plan, &o, &err);
	snprintf(msg, size, "%s", err.message);
	mg_release_free(r);
	mg_error_clear(&err);
	return rc;
}

Test(release, plan_needs_follow_the_flags)
{
	cr_assert_eq(mg_release_plan_needs(MG_FLEET_DEPLOY, true, "1.0"),
	             MG_NEED_BUILD | MG_NEED_VMS);
	cr_assert_eq(mg_release_plan_needs(MG_FLEET_ROLLBACK, true, "1.0"), MG_NEED_VMS);
	cr_assert_eq(mg_release_plan_needs(MG_FLEET_DEPLOY, true, NULL), MG_NEED_VMS_OR_KUBERNETES);
	cr_assert_eq(mg_release_plan_needs(MG_FLEET_DEPLOY, false, "1.0"),
	             MG_NEED_VMS_OR_KUBERNETES);
}

Test(release, flags_the_plan_cannot_serve_are_refused)
{
	char msg[1024];
	mg_plan *vms_only = load(true, false);
	int rc = prepare(vms_only, (mg_release_options){.version = "1.0", .context = "prod"}, msg,
	                 sizeof(msg));
	cr_assert_eq(rc, MG_EINVALID);
	cr_assert(strstr(msg, "--context names the cluster to use, but this deploy contacts only "
	                      "the VMs: the plan has no kubernetes section"),
	          "%s", msg);
	rc = prepare(vms_only, (mg_release_options){.version = "1.0", .k8s_only = true}, msg,
	             sizeof(msg));
	cr_assert_eq(rc, MG_EINVALID);
	cr_assert(strstr(msg, "--k8s-only: plan.yaml has no kubernetes section"), "%s", msg);
	mg_plan_free(vms_only);
}

Test(release, the_artifact_and_the_key_are_checked_before_any_host)
{
	char msg[1024];
	mg_plan *plan = load(true, true);
	/* --vms-only: the artifact of the version must exist */
	int rc = prepare(plan, (mg_release_options){.version = "1.0", .vms_only = true}, msg,
	                 sizeof(msg));
	cr_assert_eq(rc, MG_EINVALID);
	cr_assert(strstr(msg, "art/app-1.0.tgz (build.artifact for version 1.0) does not exist; "
	                      "no host was contacted"),
	          "%s", msg);
	/* then the key */
	tu_write_file_in(dir, "art/app-1.0.tgz", "not really a tarball\n");
	rc = prepare(plan, (mg_release_options){.version = "1.0", .vms_only = true}, msg,
	             sizeof(msg));
	cr_assert_eq(rc, MG_EINVALID);
	cr_assert(strstr(msg, "vms.identity_file: cannot read"), "%s", msg);
	mg_plan_free(plan);
}

Test(release, artifact_hash_of_the_expanded_path)
{
	mg_plan *plan = load(true, false);
	tu_write_file_in(dir, "art/app-2.0.tgz", "abc");
	char *path = NULL, sha[65] = "";
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_release_artifact(&path, sha, plan, "2.0", &err), 0, "%s", err.message);
	cr_assert(strstr(path, "/art/app-2.0.tgz"), "%s", path);
	/* sha256("abc") */
	cr_assert_str_eq(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(path);
	mg_plan_free(plan);
}

/* diff: a cluster that cannot be reached stops before the dry run, with the release named. */
Test(release, diff_without_a_cluster_stops_before_the_dry_run)
{
	mg_plan *plan = load(false, true);
	char kc[512];
	snprintf(kc, sizeof(kc), "%s/no-such-kubeconfig", dir);
	setenv("KUBECONFIG", kc, 1);
	mg_release_diff_result d;
	mg_error err = MG_ERROR_INIT;
	cr_expect_neq(mg_release_diff(&d, plan, "v1", NULL, &err), 0);
	cr_expect_not(d.applied);
	cr_expect_not(d.changed);
	cr_expect_str_eq(d.version, "v1");
	json_t *j = mg_release_diff_to_json(&d, plan, MG_ERROR, &err);
	cr_expect_str_eq(json_string_value(json_object_get(j, "plan")), "shop");
	cr_expect_str_eq(json_string_value(json_object_get(j, "version")), "v1");
	cr_expect(json_is_false(json_object_get(j, "changed")));
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
	                 err.message);
	json_decref(j);
	mg_release_diff_clear(&d);
	mg_error_clear(&err);
	mg_plan_free(plan);
	unsetenv("KUBECONFIG");
}
