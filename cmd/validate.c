/* migrate validate: every problem in a plan, at once. */
#include <string.h>

#include "cmd.h"

static int validate_one(mg_cli *cli, const char *path, json_t *plans)
{
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	int rc = mg_plan_load(&plan, path, 0, &err);
	/* a file that cannot be read at all has a message but no diagnostic */
	if (rc && !mg_error_count(&err, MG_SEV_ERROR))
		mg_error_diag(&err, MG_SEV_ERROR, NULL, 0, 0, NULL, "%s", err.message);
	size_t nerr = mg_error_count(&err, MG_SEV_ERROR);
	size_t nwarn = mg_error_count(&err, MG_SEV_WARNING);

	cli_print_diags(cli, &err);
	if (cli->json) {
		json_t *o = json_pack("{s:s, s:b, s:s?}", "file", path, "valid", rc == 0, "name",
		                      plan ? mg_plan_name(plan) : NULL);
		json_object_set_new(o, "errors", mg_error_diags_json(&err, MG_SEV_ERROR));
		json_object_set_new(o, "warnings", mg_error_diags_json(&err, MG_SEV_WARNING));
		json_array_append_new(plans, o);
	} else {
		bool c = cli->color_out;
		if (rc == 0)
			printf("%s: %svalid%s (plan \"%s\"%s)\n", path, cli_c(c, C_GREEN),
			       cli_c(c, C_RESET), mg_plan_name(plan),
			       nwarn ? ", with warnings" : "");
		else
			printf("%s: %s%zu error%s%s%s\n", path, cli_c(c, C_RED), nerr,
			       nerr == 1 ? "" : "s", cli_c(c, C_RESET),
			       nwarn ? ", and warnings" : "");
	}
	mg_plan_free(plan);
	mg_error_clear(&err);
	return rc == 0 ? EXIT_DONE : cli_exit_code(rc);
}

int cmd_validate(mg_cli *cli, int argc, char **argv)
{
	int exit_code = EXIT_DONE;
	int i = cli_parse(cli, argc, argv, NULL, CLI_ANY_OPERANDS, &exit_code);
	if (i < 0)
		return exit_code;
	json_t *plans = json_array();
	if (i >= argc) {
		exit_code = validate_one(cli, cli->plan_path, plans);
	} else {
		for (; i < argc; i++) {
			int rc = validate_one(cli, argv[i], plans);
			if (rc > exit_code)
				exit_code = rc;
		}
	}
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_set_new(doc, "plans", plans);
		return cli_doc_emit(cli, doc, exit_code);
	}
	json_decref(plans);
	return exit_code;
}
