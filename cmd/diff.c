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

#include "cmd.h"
#include "release.h"

int cmd_diff(mg_cli *cli, int argc, char **argv)
{
	struct {
		const char *version, *context;
	} opts = {0};
	const cli_opt table[] = {
	    CLI_STRING("version", &opts.version), CLI_STRING("context", &opts.context), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, table, 0, &exit_code) < 0)
		return exit_code;
	const char *version_arg = opts.version;
	if (opts.context && !*opts.context)
		return cli_usage_error(cli, "--context needs a context name");
	char why[256];
	if (version_arg && mg_plan_check_version(version_arg, why, sizeof(why)))
		return cli_usage_error(cli, "--version \"%s\": %s", version_arg, why);

	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_release_diff_result res = {0};
	int rc = cli_load_plan(cli, &plan, MG_NEED_KUBERNETES | MG_NEED_BUILD, &err);
	if (!rc) {
		rc = mg_release_diff(&res, plan, version_arg, opts.context, &err);
		cli_print_diags(cli, &res.warnings); /* template warnings */
	}
	if (rc && !res.applied) {
		exit_code = cli_fail(cli, &err);
		goto done;
	}
	const mg_cluster_result *cr = &res.cluster;
	exit_code = rc ? EXIT_INCONCLUSIVE : res.changed ? EXIT_FAILED : EXIT_DONE;
	if (rc && (rc == MG_EINVALID || rc == MG_ENOTFOUND) && cr->failed == 0)
		exit_code = EXIT_USAGE;
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_update_new(doc, mg_release_diff_to_json(&res, plan, rc, &err));
		exit_code = cli_doc_emit(cli, doc, exit_code);
	} else {
		for (size_t i = 0; i < cr->nobjects; i++)
			if (cr->objects[i].diff)
				fputs(cr->objects[i].diff, stdout);
		printf("%s %s: %zu object%s, %zu new, %zu changed, %zu unchanged (server-side dry "
		       "run in context %s)\n",
		       mg_plan_name(plan), res.version, cr->nobjects, cr->nobjects == 1 ? "" : "s",
		       cr->created, cr->configured, cr->unchanged, cr->context ? cr->context : "-");
	}
	if (rc)
		fprintf(stderr, "%serror:%s %s\n", cli_c(cli->color_err, C_RED),
		        cli_c(cli->color_err, C_RESET), err.message);
	if (cr->insecure)
		fprintf(stderr,
		        "warning: the cluster's certificate was not verified "
		        "(insecure-skip-tls-verify in context %s)\n",
		        cr->context ? cr->context : "?");
done:
	mg_release_diff_clear(&res);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
