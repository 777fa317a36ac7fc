/* migrate step: move to the next traffic step, after the bake, with read-back. */
#include <string.h>

#include "journal.h"
#include "units.h"
#include "util_gate.h"
#include "util_shift.h"

enum { OPT_TO = 3000, OPT_FORCE, OPT_REASON, OPT_ADOPT, OPT_ALLOW_SKEW };

typedef struct {
	const char *to;
	bool force, adopt, allow_skew;
	const char *reason;
} step_opts;

static int step_opt(mg_cli *cli, int opt, const char *arg, void *ud)
{
	(void)cli;
	step_opts *o = ud;
	switch (opt) {
	case OPT_TO:
		o->to = arg;
		break;
	case OPT_FORCE:
		o->force = true;
		break;
	case OPT_REASON:
		o->reason = arg;
		break;
	case OPT_ADOPT:
		o->adopt = true;
		break;
	case OPT_ALLOW_SKEW:
		o->allow_skew = true;
		break;
	}
	return 0;
}

static json_t *pos_json(double pct, int idx)
{
	return json_pack("{s:f, s:o}", "k8s_percent", pct, "step",
	                 idx < 0 ? json_null() : json_integer(idx + 1));
}

/* Evaluates the gates of the current step; an error (exit 1 or 4) unless they pass. */
static int step_gates(mg_cli *cli, shift_ctx *c, const mg_plan_slo *slo, json_t *doc, mg_error *err)
{
	mg_metrics *m = NULL;
	mg_gate_eval ev = {0};
	mg_state *st = &c->st;
	int rc = mg_metrics_open(&m, slo, err);
	if (!rc)
		rc = mg_gate_evaluate(&ev, m, slo, mg_now_ms(), st->step_started_ms, err);
	mg_metrics_free(m);
	if (rc)
		return rc;
	const char *decision = ev.outcome == MG_GATE_PASS ? "advance" : "refuse";
	if (!cli->dry_run) {
		/* a refusal is a decision too: the journal says on which numbers */
		rc = gate_journal(c->store, st, "step", &ev, decision, err);
		if (!rc && ev.outcome != MG_GATE_PASS)
			rc = mg_state_save(c->store, st, err);
	} else {
		gate_record(st, &ev);
	}
	if (doc)
		json_object_set_new(doc, "gates", mg_gate_eval_to_json(&ev));
	if (!rc && ev.outcome != MG_GATE_PASS) {
		char where[64];
		gate_step_name(where, sizeof(where), st, c->traffic);
		if (!cli->json)
			gate_print(stderr, cli, &ev, cli->color_err);
		rc = mg_error_set(err, ev.outcome == MG_GATE_FAIL ? MG_ERROR : MG_EINCONCLUSIVE,
		                  "the gates %s at %s: %s. Nothing was changed; `migrate check` "
		                  "shows every check, --force --reason TEXT overrides",
		                  ev.outcome == MG_GATE_FAIL ? "fail" : "are inconclusive", where,
		                  st->gate_summary);
	}
	mg_gate_eval_clear(&ev);
	return rc;
}

int cmd_step(mg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"to", required_argument, NULL, OPT_TO},
	                                     {"force", no_argument, NULL, OPT_FORCE},
	                                     {"reason", required_argument, NULL, OPT_REASON},
	                                     {"adopt", no_argument, NULL, OPT_ADOPT},
	                                     {"allow-skew", no_argument, NULL, OPT_ALLOW_SKEW},
	                                     {NULL, 0, NULL, 0}};
	step_opts o = {0};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "", step_opt, &o, 0, &exit_code) < 0)
		return exit_code;
	if (o.force && (!o.reason || !*o.reason))
		return cli_usage_error(cli, "--force needs --reason TEXT: the journal records why");
	double to = 0;
	if (o.to && shift_parse_percent(cli, "--to", o.to, &to))
		return EXIT_USAGE;

	mg_error err = MG_ERROR_INIT;
	shift_ctx c;
	mg_shift_outcome out = {0};
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	int rc = shift_open(&c, cli, "step", false, 0, &err);
	if (rc)
		goto fail;
	const mg_plan_traffic *t = c.traffic;
	mg_state *st = &c.st;

	/* more traffic to a cluster that runs another release than the VMs is a release change
	 * and a migration step at once: whichever breaks, the gates cannot tell which */
	bool skew = *st->vms_version && *st->kubernetes_version &&
	            strcmp(st->vms_version, st->kubernetes_version) != 0;
	/* a cluster whose rollout of the VMs' release failed does not run it: some pods may,
	 * some may run the release before, or none be ready */
	bool failed = *st->vms_version && !strcmp(st->vms_version, st->kubernetes_version) &&
	              !strcmp(st->kubernetes_rollout, "failed");
	if (failed && !o.allow_skew) {
		rc = mg_error_set(
		    &err, MG_ECONFLICT,
		    "the VMs run %s but the cluster's rollout of %s failed (%s): deploy "
		    "it to the cluster again (`migrate deploy --k8s-only --version %s`) "
		    "before moving traffic, or step anyway with --allow-skew",
		    st->vms_version, st->kubernetes_version,
		    *st->kubernetes_error ? st->kubernetes_error : "no reason recorded",
		    st->kubernetes_version);
		goto fail;
	}
	skew = skew || failed;
	if (skew && !o.allow_skew) {
		rc = mg_error_set(
		    &err, MG_ECONFLICT,
		    "the VMs run %s but the cluster runs %s: deploy one release to both "
		    "(`migrate deploy --version V`) before moving traffic, or step "
		    "anyway with --allow-skew",
		    st->vms_version, st->kubernetes_version);
		goto fail;
	}
	if (skew && !cli->dry_run) {
		json_t *ev = json_pack("{s:s, s:s, s:b}", "vms_version", st->vms_version,
		                       "kubernetes_version", st->kubernetes_version,
		                       "kubernetes_rollout_failed", failed);
		mg_journal_entry e = {"step", "skew-allowed", NULL, NULL, o.reason, ev};
		rc = mg_journal_append(c.store, &e, &err);
		json_decref(ev);
		if (rc)
			goto fail;
	}

	/* someone moved the weights by hand: stepping on top of that would hide it */
	bool drift;
	double live;
	rc = mg_shift_drift(&drift, &live, st, c.t, &err);
	if (rc)
		goto fail;
	if (drift && !o.adopt) {
		rc =
		    mg_error_set(&err, MG_ECONFLICT,
		                 "%s sends %.4g%% to the cluster, but migrate last set %.4g%%: the "
		                 "weights were changed by hand. Take them as they are with "
		                 "`migrate step --adopt`, or put everything back with `migrate "
		                 "rollback`",
		                 mg_traffic_name(c.t), live,
		                 st->has_read_back ? st->read_back_k8s_percent : 0.0);
		goto fail;
	}
	if (drift && !cli->dry_run) {
		rc = mg_shift_adopt(c.store, st, live, "step", o.reason, &err);
		if (rc)
			goto fail;
	}

	int idx;
	if (o.to) {
		idx = shift_step_index(t, to);
		if (idx < 0) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "--to %s is not one of traffic.steps; `migrate plan` lists them", o.to);
			goto fail;
		}
		if (idx <= st->step_index) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "--to %s is not ahead of the current step (%d); use `migrate "
			    "rollback --to %s` to go back",
			    o.to, st->step_index + 1, o.to);
			goto fail;
		}
	} else {
		idx = st->step_index + 1;
	}
	if ((size_t)idx >= t->nsteps) {
		if (doc) {
			json_object_set_new(doc, "plan", json_string(mg_plan_name(c.plan)));
			json_object_set_new(doc, "changed", json_false());
			json_object_set_new(doc, "message",
			                    json_string("already at the last step"));
		} else {
			printf(
			    "%s: already at the last step (100%% to the cluster); nothing to do\n",
			    mg_plan_name(c.plan));
		}
		goto done;
	}
	double target = t->steps[idx];

	/* a step must bake before the next: that is when the gates have had time to see it */
	int64_t now = mg_now_ms();
	int64_t ready_at = st->step_started_ms + t->bake_ms;
	if (st->step_index >= 0 && st->phase == MG_PHASE_SHIFTING && now < ready_at && !o.force) {
		char left[32];
		/* rounded up: "0s left" while refusing would contradict itself */
		mg_duration_format(left, sizeof(left), (ready_at - now + 999) / 1000 * 1000);
		rc = mg_error_set(
		    &err, MG_EINCONCLUSIVE,
		    "step %d has baked for less than traffic.bake: %s left. Nothing was "
		    "changed; try again then, or override with --force --reason TEXT",
		    st->step_index + 1, left);
		goto fail;
	}

	/* a pause holds manual steps too: whoever paused wanted nothing to move */
	bool pause_file = false;
	mg_pause_request pr;
	if (c.store) {
		rc = mg_store_pause_read(&pause_file, &pr, c.store, &err);
		if (rc)
			goto fail;
	}
	if ((st->phase == MG_PHASE_PAUSED || pause_file) && !o.force) {
		rc = mg_error_set(&err, MG_ECONFLICT,
		                  "the migration is paused%s%s; `migrate resume` releases it (or "
		                  "override with --force --reason TEXT)",
		                  st->pause_reason[0] ? " " : "", st->pause_reason);
		goto fail;
	}

	/* the step being left must have proven itself; before the first there is nothing
	 * on the cluster to measure */
	const mg_plan_slo *slo = mg_plan_slo_section(c.plan);
	if (slo && st->step_index >= 0 && !o.force) {
		rc = step_gates(cli, &c, slo, doc, &err);
		if (rc)
			goto fail;
	}

	if (cli->dry_run) {
		rc = shift_print_dry_run(&c, target, doc, &err);
		if (rc)
			goto fail;
		if (doc)
			json_object_set_new(doc, "to", pos_json(target, idx));
		goto done;
	}

	mg_shift_request req = {"step", target, idx, t->nsteps, o.reason, o.force};
	double from = st->has_read_back ? st->read_back_k8s_percent : 0;
	int from_idx = st->step_index;
	rc = mg_shift_apply(&out, c.store, st, c.t, &req, &err);
	/* moved but not recorded: still the read-back, beside why (exit 5) */
	if (rc && rc != MG_EUNRECORDED)
		goto fail;
	const mg_traffic_state *rb = &out.read_back;
	char when[40];
	mg_time_format(when, sizeof(when), st->step_started_ms + t->bake_ms);
	if (doc) {
		json_object_set_new(doc, "plan", json_string(mg_plan_name(c.plan)));
		json_object_set_new(doc, "changed", json_true());
		json_object_set_new(doc, "from", pos_json(from, from_idx));
		json_object_set_new(doc, "to", pos_json(target, idx));
		json_object_set_new(doc, "read_back", mg_traffic_state_to_json(rb));
		json_object_set_new(doc, "phase", json_string(mg_phase_name(st->phase)));
		json_object_set_new(doc, "bake_until", json_string(when));
		json_object_set_new(doc, "forced", json_boolean(req.forced));
		json_object_set_new(doc, "adopted", json_boolean(drift));
		json_object_set_new(doc, "reconciled",
		                    c.reconciled ? json_string(c.reconciled) : json_null());
	} else {
		char a[32], b[32];
		mg_percent_format(a, sizeof(a), target);
		mg_percent_format(b, sizeof(b), rb->k8s_percent);
		printf("%s: step %d of %zu, %s to the cluster (%s read back from %s)%s\n",
		       mg_plan_name(c.plan), idx + 1, t->nsteps, a, b, mg_traffic_name(c.t),
		       rc ? ", NOT RECORDED (see below)" : "");
		shift_print_servers(cli, rb);
		if (st->phase == MG_PHASE_COMPLETE)
			printf("  all traffic is on the cluster: the migration is complete\n");
		else
			printf("  next step possible after %s (bake)\n", when);
	}
done:
fail:
	return shift_finish(cli, &c, &out, doc, &err, rc);
}
