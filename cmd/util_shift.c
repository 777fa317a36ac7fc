#include "util_shift.h"

#include <stdlib.h>
#include <string.h>

#include "units.h"

/* How long pause and resume wait for a running autopilot to confirm. */
#define SHIFT_ACK_WAIT_MS 3000

int shift_open(mg_migration **m, mg_cli *cli, const char *command, mg_migration_mode mode,
               unsigned needs, mg_error *err)
{
	return shift_open_reason(m, cli, command, mode, needs, NULL, err);
}

int shift_open_reason(mg_migration **m, mg_cli *cli, const char *command, mg_migration_mode mode,
                      unsigned needs, const char *reason, mg_error *err)
{
	mg_migration_options o = {.plan_path = cli->plan_path,
	                          .state_dir = cli->state_dir,
	                          .command = command,
	                          .mode = mode,
	                          .needs = needs,
	                          .dry_run = cli->dry_run,
	                          .reason = reason};
	int rc = mg_migration_open(m, &o, err);
	if (!rc) {
		cli_print_diags(cli, err); /* warnings; stderr, so JSON on stdout stays clean */
		mg_error_clear(err);
	}
	return rc;
}

int shift_finish(mg_cli *cli, mg_migration *m, mg_shift_outcome *out, json_t *doc, mg_error *err,
                 int rc)
{
	int exit_code = EXIT_DONE;
	if (rc == MG_EUNRECORDED && out) {
		if (doc) {
			if (!json_object_get(doc, "read_back"))
				json_object_set_new(doc, "read_back",
				                    mg_traffic_state_to_json(&out->read_back));
			json_object_set_new(doc, "record_error", json_string(out->record_error));
			if (out->spooled[0])
				json_object_set_new(doc, "spooled", json_string(out->spooled));
		}
		/* the operator's only copy: one line, so it can be cut and pasted whole */
		char *line = out->record
		                 ? json_dumps(out->record, JSON_COMPACT | JSON_PRESERVE_ORDER |
		                                               JSON_REAL_PRECISION(15))
		                 : NULL;
		if (line) {
			fprintf(stderr,
			        "the record of this move, to keep (one JSON line, as the journal "
			        "writes it):\n"
			        "%s\n",
			        line);
			free(line);
		}
	}
	mg_shift_outcome_clear(out);
	if (rc)
		exit_code = cli_fail_doc(cli, err, doc);
	mg_migration_free(m);
	mg_error_clear(err);
	return !rc && doc ? cli_doc_emit(cli, doc, EXIT_DONE) : exit_code;
}

int shift_parse_percent(mg_cli *cli, const char *option, const char *arg, double *out)
{
	char why[256];
	if (mg_percent_parse(out, arg, why, sizeof(why))) {
		cli_usage_error(cli, "%s: %s", option, why);
		return -1;
	}
	return 0;
}

void shift_print_servers(const mg_cli *cli, const mg_traffic_state *st)
{
	bool c = cli->color_out;
	for (size_t i = 0; i < st->nservers; i++) {
		const mg_traffic_server *s = &st->servers[i];
		bool bad = s->health == MG_HEALTH_DOWN || s->health == MG_HEALTH_MAINT;
		printf("    %-28s %-8s weight %-8g %s%s%s\n", s->name, s->k8s ? "cluster" : "vm",
		       s->weight, bad ? cli_c(c, C_YELLOW) : "",
		       *s->detail ? s->detail : mg_health_name(s->health),
		       bad ? cli_c(c, C_RESET) : "");
	}
}

int shift_print_dry_run(mg_migration *m, double target, json_t *doc, mg_error *err)
{
	json_t *calls = NULL;
	int rc = mg_traffic_describe(&calls, mg_migration_balancer(m), target, err);
	if (rc)
		return rc;
	if (doc) {
		json_object_set_new(doc, "dry_run", json_true());
		json_object_set_new(doc, "calls", calls);
		return 0;
	}
	char *s = json_dumps(calls, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	printf("dry run: %s would be sent this, and nothing was changed:\n%s\n",
	       mg_traffic_name(mg_migration_balancer(m)), s ? s : "");
	free(s);
	json_decref(calls);
	return 0;
}

int shift_hold(mg_cli *cli, bool pause, const char *reason)
{
	mg_error err = MG_ERROR_INIT;
	mg_migration *m = NULL;
	mg_hold_result h;
	int rc = shift_open(&m, cli, pause ? "pause" : "resume", MG_MIGRATION_HOLD, 0, &err);
	if (!rc)
		rc = pause ? mg_migration_pause(&h, m, reason, SHIFT_ACK_WAIT_MS, &err)
		           : mg_migration_resume(&h, m, reason, SHIFT_ACK_WAIT_MS, &err);
	if (rc) {
		int exit_code = cli_fail(cli, &err);
		mg_migration_free(m);
		mg_error_clear(&err);
		return exit_code;
	}
	const mg_plan *plan = mg_migration_plan(m);
	const mg_state *st = mg_migration_state(m);
	long pid = h.autopilot_pid;
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_update_new(doc, mg_hold_result_to_json(&h, m));
		mg_migration_free(m);
		return cli_doc_emit(cli, doc, EXIT_DONE);
	}
	const char *hint = !pause ? NULL
	                   : pid  ? "`migrate resume` continues it"
	                          : "`migrate resume` releases it";
	char where[64], who[32] = "";
	mg_migration_step_name(where, sizeof(where), st, mg_migration_traffic(m));
	if (pid)
		snprintf(who, sizeof(who), " (pid %ld)", pid);
	printf("%s: %s%s at %s%s%s\n", mg_plan_name(plan), h.how, who, where, hint ? "; " : "",
	       hint ? hint : "");
	mg_migration_free(m);
	return EXIT_DONE;
}
