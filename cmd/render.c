/*
 * migrate render: the plan's Kubernetes templates with a release filled in,
 * printed and not applied (no cluster is contacted).
 *
 * stdout carries only the manifests, and nothing when a template has an
 * error, so `migrate render ... | kubectl apply -f -` never applies half a
 * release. Diagnostics (file:line:col) and warnings go to stderr.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "template.h"

int cmd_render(mg_cli *cli, int argc, char **argv)
{
	const char *version = NULL;
	const cli_opt opts[] = {CLI_STRING("version", &version), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	if (!version)
		return cli_usage_error(cli, "--version V is required (the release to render)");
	char why[256];
	if (mg_plan_check_version(version, why, sizeof(why)))
		return cli_usage_error(cli, "--version \"%s\": %s", version, why);

	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_template_plan_vars *pv = NULL;
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	int rc = cli_load_plan(cli, &plan, MG_NEED_KUBERNETES, &err);
	if (!rc)
		rc = mg_template_plan_vars_new(&pv, plan, version, &err);
	if (!rc)
		rc = mg_template_render_dir(&out, mg_plan_kubernetes_section(plan)->templates,
		                            mg_template_plan_vars_get(pv), &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto done;
	}
	cli_print_diags(cli, &err); /* warnings */
	if (cli->json) {
		json_t *list = mg_template_render_json(&out);
		char *s = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(list);
		if (!s) {
			exit_code = EXIT_FAILED;
			goto done;
		}
		puts(s);
		free(s);
	} else {
		char *s = mg_template_render_yaml(&out);
		if (!s) {
			exit_code = EXIT_FAILED;
			goto done;
		}
		fputs(s, stdout);
		free(s);
	}
	fflush(stdout);
	if (cli->verbose)
		fprintf(stderr, "%zu object%s from %s for release %s\n", out.ndocs,
		        out.ndocs == 1 ? "" : "s", mg_plan_kubernetes_section(plan)->templates,
		        version);
done:
	mg_template_output_clear(&out);
	mg_template_plan_vars_free(pv);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
