/*
 * migrate diff: what `migrate deploy` would change on the cluster for a
 * release, object by object, from a server-side dry run (dryRun=All) of
 * each apply against the live object. Nothing is persisted and no VM is
 * contacted.
 *
 * Like `kubectl diff`, the exit code says whether there is a difference:
 * 0 none, 1 some. An error must not look like "changes" to a CI job, so
 * bad input is 2 (as everywhere) and a cluster that could not be asked is
 * 4 (inconclusive).
 */
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cmd.h"
#include "release.h"

enum { OPT_VERSION = 3400, OPT_CONTEXT };

typedef struct {
	const char *version, *context;
} diff_opts;

static int on_opt(mg_cli *cli, int opt, const char *arg, void *ud)
{
	(void)cli;
	diff_opts *o = ud;
	if (opt == OPT_VERSION)
		o->version = arg;
	else if (opt == OPT_CONTEXT)
		o->context = arg;
	return 0;
}

static const struct option longopts[] = {
    {"version", required_argument, NULL, OPT_VERSION},
    {"context", required_argument, NULL, OPT_CONTEXT},
    {NULL, 0, NULL, 0},
};

int cmd_diff(mg_cli *cli, int argc, char **argv)
{
	diff_opts opts = {0};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, longopts, NULL, on_opt, &opts, 0, &exit_code) < 0)
		return exit_code;
	const char *version_arg = opts.version;
	if (opts.context && !*opts.context)
		return cli_usage_error(cli, "--context needs a context name");
	char why[256];
	if (version_arg && mg_plan_check_version(version_arg, why, sizeof(why)))
		return cli_usage_error(cli, "--version \"%s\": %s", version_arg, why);

	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_kube_client *client = NULL;
	json_t *objects = NULL;
	mg_cluster_result res = {0};
	char version[MG_PLAN_VERSION_MAX + 1] = "";
	int rc = cli_load_plan(cli, &plan, MG_NEED_KUBERNETES | MG_NEED_BUILD, &err);
	if (!rc) {
		if (version_arg)
			snprintf(version, sizeof(version), "%s", version_arg);
		else
			rc = mg_release_version(version, sizeof(version), plan, &err);
	}
	if (!rc)
		rc = mg_cluster_render(&objects, plan, version, NULL, &err);
	if (!rc) {
		cli_print_diags(cli, &err); /* template warnings */
		mg_error_clear(&err);
		rc = mg_cluster_connect(&client, plan, opts.context, NULL, &err);
	}
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto done;
	}
	mg_cluster_options o = {.objects = objects,
	                        .force = mg_plan_kubernetes_section(plan)->force_conflicts,
	                        .dry_run = true};
	rc = mg_cluster_apply(&res, client, &o, &err);
	bool changed = res.created + res.configured > 0;
	exit_code = rc ? EXIT_INCONCLUSIVE : changed ? EXIT_FAILED : EXIT_DONE;
	if (rc && (rc == MG_EINVALID || rc == MG_ENOTFOUND) && res.failed == 0)
		exit_code = EXIT_USAGE;
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_set_new(doc, "plan", json_string(mg_plan_name(plan)));
		json_object_set_new(doc, "version", json_string(version));
		json_object_set_new(doc, "changed", json_boolean(changed));
		json_object_update_missing_new(doc, mg_cluster_result_to_json(&res));
		if (rc) {
			json_t *e = json_pack("{s:s, s:s}", "kind", mg_error_name(rc), "message",
			                      err.message);
			json_object_set_new(doc, "error", e);
		}
		exit_code = cli_doc_emit(cli, doc, exit_code);
	} else {
		for (size_t i = 0; i < res.nobjects; i++)
			if (res.objects[i].diff)
				fputs(res.objects[i].diff, stdout);
		printf("%s %s: %zu object%s, %zu new, %zu changed, %zu unchanged (server-side dry "
		       "run in context %s)\n",
		       mg_plan_name(plan), version, res.nobjects, res.nobjects == 1 ? "" : "s",
		       res.created, res.configured, res.unchanged, res.context ? res.context : "-");
	}
	if (rc)
		fprintf(stderr, "%serror:%s %s\n", cli_c(cli->color_err, C_RED),
		        cli_c(cli->color_err, C_RESET), err.message);
	if (res.insecure)
		fprintf(stderr,
		        "warning: the cluster's certificate was not verified "
		        "(insecure-skip-tls-verify in context %s)\n",
		        res.context ? res.context : "?");
done:
	mg_cluster_result_clear(&res);
	json_decref(objects);
	mg_kube_client_free(client);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
