/* migrate step: move to the next traffic step, after the bake, with read-back. */
#include "units.h"
#include "util_gate.h"
#include "util_shift.h"

/* The step taken, read back: in doc, or as text. */
static void report(mg_cli *cli, mg_migration *m, json_t *doc, const mg_shift_outcome *out,
                   double from, int from_idx, int idx, bool forced, bool adopted, bool unrecorded)
{
	const mg_plan_traffic *t = mg_migration_traffic(m);
	const mg_state *st = mg_migration_state(m);
	const char *name = mg_plan_name(mg_migration_plan(m));
	const mg_traffic_state *rb = &out->read_back;
	double target = t->steps[idx];
	char when[40];
	mg_time_format(when, sizeof(when), st->step_started_ms + t->bake_ms);
	if (doc) {
		json_object_update_new(
		    doc, mg_migration_move_to_json(m, out, from, &from_idx, target, idx));
		json_object_set_new(doc, "changed", json_true());
		json_object_set_new(doc, "bake_until", json_string(when));
		json_object_set_new(doc, "forced", json_boolean(forced));
		json_object_set_new(doc, "adopted", json_boolean(adopted));
		return;
	}
	char a[32], b[32];
	mg_percent_format(a, sizeof(a), target);
	mg_percent_format(b, sizeof(b), rb->k8s_percent);
	printf("%s: step %d of %zu, %s to the cluster (%s read back from %s)%s\n", name, idx + 1,
	       t->nsteps, a, b, mg_traffic_name(mg_migration_balancer(m)),
	       unrecorded ? ", NOT RECORDED (see below)" : "");
	shift_print_servers(cli, rb);
	if (st->phase == MG_PHASE_COMPLETE)
		printf("  all traffic is on the cluster: the migration is complete\n");
	else
		printf("  next step possible after %s (bake)\n", when);
}

int cmd_step(mg_cli *cli, int argc, char **argv)
{
	mg_step_rules r = {.bake = true, .gates = true};
	const cli_opt opts[] = {CLI_STRING("to", &r.to_text),          CLI_FLAG("force", &r.force),
	                        CLI_STRING("reason", &r.reason),       CLI_FLAG("adopt", &r.adopt),
	                        CLI_FLAG("allow-skew", &r.allow_skew), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	r.has_to = r.to_text != NULL;
	if (r.force && (!r.reason || !*r.reason))
		return cli_usage_error(cli, "--force needs --reason TEXT: the journal records why");
	if (r.has_to && shift_parse_percent(cli, "--to", r.to_text, &r.to))
		return EXIT_USAGE;

	mg_error err = MG_ERROR_INIT;
	mg_migration *m = NULL;
	mg_shift_outcome out = {0};
	mg_step_verdict v = {0};
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	int rc = shift_open(&m, cli, "step", MG_MIGRATION_SHIFT, 0, &err);
	if (rc)
		goto out;
	r.now_ms = mg_now_ms();
	rc = mg_migration_check_step(&v, m, &r, &err);
	if (v.has_gates && doc)
		json_object_set_new(doc, "gates", mg_gate_eval_to_json(&v.gates));
	if (rc && v.has_gates && !cli->json)
		gate_print(stderr, cli, &v.gates, cli->color_err);
	if (rc)
		goto out;
	if (v.at_end) {
		const char *name = mg_plan_name(mg_migration_plan(m));
		if (doc) {
			json_object_set_new(doc, "plan", json_string(name));
			json_object_set_new(doc, "changed", json_false());
			json_object_set_new(doc, "message",
			                    json_string("already at the last step"));
		} else {
			printf(
			    "%s: already at the last step (100%% to the cluster); nothing to do\n",
			    name);
		}
		goto out;
	}
	const mg_plan_traffic *t = mg_migration_traffic(m);
	if (cli->dry_run) {
		rc = shift_print_dry_run(m, t->steps[v.target], doc, &err);
		if (!rc && doc)
			json_object_set_new(doc, "to",
			                    json_pack("{s:f, s:i}", "k8s_percent",
			                              t->steps[v.target], "step", v.target + 1));
		goto out;
	}
	const mg_state *st = mg_migration_state(m);
	double from = st->has_read_back ? st->read_back_k8s_percent : 0;
	int from_idx = st->step_index;
	rc = mg_migration_shift(&out, m, v.target, r.reason, r.force, &err);
	/* moved but not recorded: still the read-back, beside why (exit 5) */
	if (!rc || rc == MG_EUNRECORDED)
		report(cli, m, doc, &out, from, from_idx, v.target, r.force, v.adopted, rc != 0);
out:
	mg_step_verdict_clear(&v);
	return shift_finish(cli, m, &out, doc, &err, rc);
}
