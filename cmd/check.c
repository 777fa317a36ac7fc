/* migrate check: evaluate the gates once, now (or at --at), and say what they show. */
#include <string.h>

#include "units.h"
#include "util_gate.h"

int cmd_check(mg_cli *cli, int argc, char **argv)
{
	struct {
		const char *at, *since;
	} o = {0};
	const cli_opt opts[] = {CLI_STRING("at", &o.at), CLI_STRING("since", &o.since), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	/* every time is a valid --at, the Unix epoch too: "now" is o.at == NULL, not a value */
	int64_t at = 0, since = -1;
	if (o.at && cli_parse_time(cli, "--at", o.at, &at))
		return EXIT_USAGE;
	if (o.since && cli_parse_time(cli, "--since", o.since, &since))
		return EXIT_USAGE;

	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_gate_eval ev = {0};
	mg_state st;
	mg_gates_once_options go = {.has_at = o.at != NULL, .at_ms = at, .since_ms = since};
	int rc = cli_load_plan(cli, &plan, MG_NEED_SLO, &err);
	if (!rc) {
		go.state_dir = cli_state_dir(cli, plan);
		rc = mg_migration_check_gates(&ev, &st, plan, &go, &err);
	}
	if (rc)
		goto fail;
	exit_code = ev.outcome == MG_GATE_PASS   ? EXIT_DONE
	            : ev.outcome == MG_GATE_FAIL ? EXIT_FAILED
	                                         : EXIT_INCONCLUSIVE;
	char where[64];
	gate_step_name(where, sizeof(where), &st, mg_plan_traffic_section(plan));
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_set_new(doc, "plan", json_string(mg_plan_name(plan)));
		json_object_set_new(
		    doc, "step", st.step_index < 0 ? json_null() : json_integer(st.step_index + 1));
		json_object_set_new(doc, "gates", mg_gate_eval_to_json(&ev));
		exit_code = cli_doc_emit(cli, doc, exit_code);
	} else {
		bool c = cli->color_out;
		char sum[512];
		mg_gate_eval_summary(sum, sizeof(sum), &ev);
		printf("%s: %s\n", mg_plan_name(plan), where);
		gate_print(stdout, cli, &ev, c);
		const char *col = ev.outcome == MG_GATE_PASS   ? C_GREEN
		                  : ev.outcome == MG_GATE_FAIL ? C_RED
		                                               : C_YELLOW;
		printf("%s%s%s: %s\n", cli_c(c, col), mg_gate_outcome_name(ev.outcome),
		       cli_c(c, C_RESET), sum);
	}
	goto out;
fail:
	exit_code = cli_fail(cli, &err);
out:
	mg_gate_eval_clear(&ev);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
