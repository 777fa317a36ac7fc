/* migrate status: where the migration stands, as recorded, beside the balancer's live weights. */
#include <string.h>

#include "cmd.h"
#include "state.h"
#include "store.h"
#include "traffic.h"
#include "units.h"

static json_t *lock_json(bool held, const mg_lock_holder *h)
{
	if (!held)
		return json_pack("{s:b}", "held", 0);
	if (!h->pid) /* held, but the holder is unknown: no made-up pid or 1970 timestamp */
		return json_pack("{s:b, s:n, s:n, s:n, s:n}", "held", 1, "operator", "pid",
		                 "command", "since");
	char since[40];
	mg_time_format(since, sizeof(since), h->since_ms);
	return json_pack("{s:b, s:s, s:I, s:s, s:s}", "held", 1, "operator", h->operator_, "pid",
	                 (json_int_t)h->pid, "command", h->command, "since", since);
}

static int status_opt(mg_cli *cli, int opt, const char *arg, void *ud)
{
	(void)cli;
	(void)arg;
	if (opt == 'O')
		*(bool *)ud = true;
	return 0;
}

/* The balancer as it is now; NULL with *why set when it cannot be read. */
static json_t *read_live(mg_traffic_state *live, const mg_plan_traffic *t, char *why, size_t size)
{
	mg_error err = MG_ERROR_INIT;
	mg_traffic *drv = NULL;
	json_t *j = NULL;
	if (mg_traffic_open(&drv, t, &err) == 0 && mg_traffic_read(live, drv, &err) == 0)
		j = mg_traffic_state_to_json(live);
	else
		snprintf(why, size, "%s", err.message);
	mg_traffic_free(drv);
	mg_error_clear(&err);
	return j;
}

int cmd_status(mg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"offline", no_argument, NULL, 'O'},
	                                     {NULL, 0, NULL, 0}};
	bool offline = false;
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "", status_opt, &offline, 0, &exit_code) < 0)
		return exit_code;
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_store *store = NULL;
	mg_state st;
	bool recorded = false, held = false;
	mg_lock_holder holder = {0};
	mg_traffic_state live = {0}; /* declared before any goto out: cleaned up there */
	char live_why[1024] = "";
	json_t *jlive = NULL;
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc) {
		mg_state_init(&st, mg_plan_name(plan));
		rc = mg_store_open_existing(&store, cli_state_dir(cli, plan), mg_plan_name(plan),
		                            &err);
		if (rc == MG_ENOTFOUND) {
			rc = 0; /* nothing has run yet: that is a state too */
			mg_error_clear(&err);
		} else if (!rc) {
			rc = mg_state_load(&st, store, &err);
			recorded = !rc && st.revision > 0;
			if (!rc)
				rc = mg_store_lock_probe(&held, &holder, store, &err);
		}
	}
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}

	const mg_plan_traffic *t = mg_plan_traffic_section(plan);
	jlive = t && !offline ? read_live(&live, t, live_why, sizeof(live_why)) : NULL;
	double expected = st.has_read_back ? st.read_back_k8s_percent : 0;
	bool drift = jlive && !mg_traffic_same_share(live.k8s_percent, expected);
	int64_t now = mg_now_ms();
	int64_t bake_left = -1;
	if (t && st.step_index >= 0 && st.step_started_ms > 0 && st.phase == MG_PHASE_SHIFTING) {
		bake_left = st.step_started_ms + t->bake_ms - now;
		if (bake_left < 0)
			bake_left = 0;
	}
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_set_new(doc, "plan", json_string(mg_plan_name(plan)));
		json_object_set_new(doc, "state_dir", json_string(cli_state_dir(cli, plan)));
		json_object_set_new(doc, "recorded", json_boolean(recorded));
		json_object_set_new(doc, "state", mg_state_to_json(&st));
		json_object_set_new(doc, "steps",
		                    t ? json_integer((json_int_t)t->nsteps) : json_null());
		json_object_set_new(doc, "bake_remaining_ms",
		                    bake_left >= 0 ? json_integer(bake_left) : json_null());
		json_object_set_new(doc, "lock", lock_json(held, &holder));
		json_object_set_new(doc, "live", jlive ? jlive : json_null());
		json_object_set_new(doc, "live_error",
		                    *live_why ? json_string(live_why) : json_null());
		json_object_set_new(doc, "drift", jlive ? json_boolean(drift) : json_null());
		jlive = NULL;
		exit_code = cli_doc_emit(cli, doc, EXIT_DONE);
		goto out;
	}

	bool c = cli->color_out;
	char buf[64], buf2[64];
	printf("%s%s%s  phase %s%s%s", cli_c(c, C_BOLD), mg_plan_name(plan), cli_c(c, C_RESET),
	       cli_c(c, C_CYAN), mg_phase_name(st.phase), cli_c(c, C_RESET));
	if (recorded) {
		mg_time_format(buf, sizeof(buf), st.updated_ms);
		printf("  (revision %llu, updated %s)\n", (unsigned long long)st.revision, buf);
	} else {
		printf("  (nothing recorded yet: no command has changed anything)\n");
	}
	if (st.step_index >= 0 && t && (size_t)st.step_index < t->nsteps) {
		mg_percent_format(buf, sizeof(buf), t->steps[st.step_index]);
		printf("  step       %d of %zu: %s to the cluster", st.step_index + 1, t->nsteps,
		       buf);
		if (bake_left > 0) {
			mg_duration_format(buf2, sizeof(buf2), (bake_left + 999) / 1000 * 1000);
			printf(", bake %s left", buf2);
		} else if (bake_left == 0) {
			printf(", bake done");
		}
		printf("\n");
	} else if (t) {
		printf("  step       none yet: all traffic on the VMs (%zu steps planned)\n",
		       t->nsteps);
	}
	if (st.has_applied) {
		mg_percent_format(buf, sizeof(buf), st.applied_k8s_percent);
		mg_time_format(buf2, sizeof(buf2), st.applied_ms);
		printf("  applied    %s to the cluster at %s\n", buf, buf2);
	}
	if (st.has_read_back) {
		mg_percent_format(buf, sizeof(buf), st.read_back_k8s_percent);
		mg_time_format(buf2, sizeof(buf2), st.read_back_ms);
		printf("  read back  %s to the cluster at %s%s\n", buf, buf2,
		       st.has_applied && st.applied_k8s_percent != st.read_back_k8s_percent
		           ? "  (differs from what was applied)"
		           : "");
	}
	printf("  versions   VMs %s, cluster %s\n", *st.vms_version ? st.vms_version : "-",
	       *st.kubernetes_version ? st.kubernetes_version : "-");
	if (held && !holder.pid) {
		/* the holder has not written its name yet, or the lock file was edited */
		printf("  lock       %sheld by a process that did not say who it is%s\n",
		       cli_c(c, C_YELLOW), cli_c(c, C_RESET));
	} else if (held) {
		mg_time_format(buf, sizeof(buf), holder.since_ms);
		printf("  lock       %sheld by %s%s (pid %ld, \"%s\" since %s)\n",
		       cli_c(c, C_YELLOW), holder.operator_, cli_c(c, C_RESET), holder.pid,
		       holder.command, buf);
	} else {
		printf("  lock       free\n");
	}
	if (st.gate_last[0]) {
		mg_time_format(buf2, sizeof(buf2), st.gate_last_ms);
		printf("  gates      %s at %s, %d failure%s at this step: %s\n", st.gate_last, buf2,
		       st.gate_failures, st.gate_failures == 1 ? "" : "s", st.gate_summary);
	}
	if (st.phase == MG_PHASE_PAUSED && st.pause_reason[0])
		printf("  paused     %s%s%s\n", cli_c(c, C_YELLOW), st.pause_reason,
		       cli_c(c, C_RESET));
	if (st.pending) {
		mg_percent_format(buf, sizeof(buf), st.pending_k8s_percent);
		printf("  %sinterrupted%s a %s to %s did not record its result; the next step or "
		       "rollback reconciles it from the balancer\n",
		       cli_c(c, C_YELLOW), cli_c(c, C_RESET), st.pending_command, buf);
	}
	if (jlive) {
		mg_percent_format(buf, sizeof(buf), live.k8s_percent);
		printf("  live       %s to the cluster, read from %s now%s%s%s\n", buf,
		       mg_provider_name(t->provider), drift ? cli_c(c, C_YELLOW) : "",
		       drift ? "  DRIFT: changed outside migrate; `step` refuses until `step "
		               "--adopt` or `rollback`"
		             : "",
		       drift ? cli_c(c, C_RESET) : "");
		for (size_t i = 0; i < live.nservers; i++) {
			const mg_traffic_server *sv = &live.servers[i];
			printf("    %-28s %-8s weight %-8g %s\n", sv->name,
			       sv->k8s ? "cluster" : "vm", sv->weight,
			       *sv->detail ? sv->detail : mg_health_name(sv->health));
		}
	} else if (*live_why) {
		printf("  live       %sunavailable:%s %s\n", cli_c(c, C_YELLOW), cli_c(c, C_RESET),
		       live_why);
	}
	printf("  state      %s/%s\n", cli_state_dir(cli, plan), mg_plan_name(plan));
out:
	json_decref(jlive);
	mg_traffic_state_clear(&live);
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
