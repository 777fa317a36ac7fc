/*
 * migrate report: the migration over a period as one self-contained HTML
 * page with SVG charts (or the SVG alone, or the model as JSON), from the
 * journal and Prometheus. The model and the rendering are lib/report's; this
 * parses the options, opens the plan's store as history does, and writes
 * the result to stdout or, atomically, to --out.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fs.h"
#include "kubestore.h"
#include "report.h"
#include "store.h"

static int write_out(const char *path, const char *data, size_t len, mg_error *err)
{
	if (path)
		return mg_fs_write_atomic(path, data, len, 0644, err);
	fwrite(data, 1, len, stdout);
	fflush(stdout);
	return 0;
}

int cmd_report(mg_cli *cli, int argc, char **argv)
{
	struct {
		const char *since, *until, *out;
	} o = {0};
	const cli_opt opts[] = {CLI_STRING("since", &o.since),
	                        CLI_STRING("until", &o.until),
	                        CLI_STRING("out", &o.out),
	                        {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	const char *fmt = cli->output ? cli->output : "html";
	if (strcmp(fmt, "html") && strcmp(fmt, "svg") && strcmp(fmt, "json"))
		return cli_usage_error(cli,
		                       "`migrate report` prints html (the default), svg or json, "
		                       "not %s",
		                       fmt);
	mg_report_options ro = {0};
	if (o.since && cli_parse_time(cli, "--since", o.since, &ro.since_ms))
		return EXIT_USAGE;
	if (o.until && cli_parse_time(cli, "--until", o.until, &ro.until_ms))
		return EXIT_USAGE;
	if (o.since && o.until && ro.since_ms >= ro.until_ms)
		return cli_usage_error(cli, "--since %s is not before --until %s: an empty period",
		                       o.since, o.until);
	if (o.out && !*o.out)
		return cli_usage_error(cli, "--out needs a file name");

	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_store *store = NULL;
	mg_report *r = NULL;
	char *page = NULL;
	size_t len = 0;
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc) {
		rc = mg_kube_store_open_plan(&store, plan, cli_state_dir(cli, plan), true, NULL, 0,
		                             &err);
		if (rc == MG_ENOTFOUND) { /* no state yet: a report of nothing */
			rc = 0;
			mg_error_clear(&err);
		}
	}
	if (!rc)
		rc = mg_report_build(&r, plan, store, &ro, &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}
	mg_report_info info;
	mg_report_info_get(&info, r);
	if (info.metrics_note)
		fprintf(stderr, "%swarning:%s %s\n", cli_c(cli->color_err, C_YELLOW),
		        cli_c(cli->color_err, C_RESET), info.metrics_note);
	if (cli->json) {
		json_t *doc = cli_doc(cli), *model = mg_report_to_json(r);
		if (!model) {
			json_decref(doc);
			exit_code = cli_fail(cli, (mg_error_oom(&err), &err));
			goto out;
		}
		json_object_update(doc, model);
		json_decref(model);
		if (!o.out) {
			exit_code = cli_doc_emit(cli, doc, EXIT_DONE);
			goto out;
		}
		json_object_set_new(doc, "ok", json_true());
		json_object_set_new(doc, "exit_code", json_integer(0));
		page =
		    json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
		json_decref(doc);
		if (!page) {
			exit_code = cli_fail(cli, (mg_error_oom(&err), &err));
			goto out;
		}
		len = strlen(page);
		char *nl = realloc(page, len + 2); /* a newline at the end, as on stdout */
		if (!nl) {
			exit_code = cli_fail(cli, (mg_error_oom(&err), &err));
			goto out;
		}
		page = nl;
		page[len++] = '\n';
		page[len] = '\0';
	} else {
		rc = mg_report_render(&page, &len, r,
		                      !strcmp(fmt, "svg") ? MG_REPORT_SVG : MG_REPORT_HTML, &err);
		if (rc) {
			exit_code = cli_fail(cli, &err);
			goto out;
		}
	}
	if ((rc = write_out(o.out, page, len, &err))) {
		/* the JSON document is not on stdout yet: the error envelope is */
		exit_code = cli_fail(cli, &err);
		goto out;
	}
	if (o.out && !cli->json) {
		char a[40], z[40];
		mg_time_format(a, sizeof(a), info.since_ms);
		mg_time_format(z, sizeof(z), info.until_ms);
		printf(
		    "%s: report of %s to %s (%zu journal record%s as %zu event%s; %s) written to "
		    "%s\n",
		    info.plan, a, z, info.records, info.records == 1 ? "" : "s", info.events,
		    info.events == 1 ? "" : "s",
		    info.metrics ? "RED charts from Prometheus" : "from the journal alone", o.out);
	}
out:
	free(page);
	mg_report_free(r);
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
