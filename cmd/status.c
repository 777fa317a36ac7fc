/* migrate status: where the migration stands, as recorded, beside the balancer's live weights. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fleet.h"
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

/* What fleet.json says about the plan's hosts. */
typedef struct {
	size_t hosts, recorded, unknown;
	json_t *versions; /* [{version, hosts}], most hosts first */
	json_t *off;      /* [{host, version, outcome, at}]: hosts not on the fleet's version */
	bool skew;
} fleet_view;

static int by_count(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;
	json_int_t nx = json_integer_value(json_object_get(*x, "hosts"));
	json_int_t ny = json_integer_value(json_object_get(*y, "hosts"));
	if (nx != ny)
		return nx > ny ? -1 : 1;
	return strcmp(json_string_value(json_object_get(*x, "version")),
	              json_string_value(json_object_get(*y, "version")));
}

static void fleet_view_make(fleet_view *f, const mg_plan_vms *v, json_t *record,
                            const char *fleet_version)
{
	memset(f, 0, sizeof(*f));
	f->hosts = v->nhosts;
	json_t *hosts = json_object_get(record, "hosts");
	json_t *count = json_object();
	f->off = json_array();
	for (size_t i = 0; i < v->nhosts; i++) {
		json_t *h = json_object_get(hosts, v->hosts[i].name);
		json_t *ver = json_object_get(h, "version");
		if (h)
			f->recorded++;
		if (!json_is_string(ver)) {
			f->unknown++;
		} else {
			const char *s = json_string_value(ver);
			json_t *n = json_object_get(count, s);
			json_object_set_new(count, s,
			                    json_integer(n ? json_integer_value(n) + 1 : 1));
		}
		if (!json_is_string(ver) || !*fleet_version ||
		    strcmp(json_string_value(ver), fleet_version) != 0) {
			json_t *out = json_object_get(h, "outcome");
			json_t *at = json_object_get(h, "at");
			json_array_append_new(
			    f->off, json_pack("{s:s, s:O, s:O, s:O}", "host", v->hosts[i].name,
			                      "version", json_is_string(ver) ? ver : json_null(),
			                      "outcome", json_is_string(out) ? out : json_null(),
			                      "at", json_is_string(at) ? at : json_null()));
		}
	}
	size_t nv = json_object_size(count), k = 0;
	json_t **items = calloc(nv ? nv : 1, sizeof(*items));
	const char *key;
	json_t *n;
	json_object_foreach(count, key, n)
	{
		if (items)
			items[k++] = json_pack("{s:s, s:O}", "version", key, "hosts", n);
	}
	qsort(items, k, sizeof(*items), by_count);
	f->versions = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(f->versions, items[i]);
	free(items);
	json_decref(count);
	/* one release everywhere is the only state without skew; hosts never deployed to count */
	f->skew = f->recorded > 0 && (nv > 1 || (nv == 1 && f->unknown > 0));
	if (!f->recorded) {
		json_decref(f->off);
		f->off = json_array();
	}
}

static json_t *fleet_view_json(fleet_view *f)
{
	json_t *j =
	    json_pack("{s:I, s:I, s:I, s:o, s:b, s:o}", "hosts", (json_int_t)f->hosts, "recorded",
	              (json_int_t)f->recorded, "unknown", (json_int_t)f->unknown, "versions",
	              f->versions, "skew", f->skew, "off_version", f->off);
	f->versions = f->off = NULL;
	return j;
}

static void fleet_view_print(const mg_cli *cli, const fleet_view *f, const char *fleet_version)
{
	bool c = cli->color_out;
	if (!f->recorded) {
		printf(
		    "  fleet      %zu host%s, no release recorded yet (`migrate deploy --vms-only` "
		    "records them)\n",
		    f->hosts, f->hosts == 1 ? "" : "s");
		return;
	}
	printf("  fleet      %zu host%s:", f->hosts, f->hosts == 1 ? "" : "s");
	size_t i;
	json_t *e;
	json_array_foreach(f->versions, i, e)
	{
		printf("%s %lld on %s", i ? "," : "",
		       (long long)json_integer_value(json_object_get(e, "hosts")),
		       json_string_value(json_object_get(e, "version")));
	}
	if (f->unknown)
		printf("%s %zu unknown", json_array_size(f->versions) ? "," : "", f->unknown);
	if (f->skew)
		printf("  %sSKEW: not every host runs %s%s", cli_c(c, C_YELLOW),
		       *fleet_version ? fleet_version : "the same release", cli_c(c, C_RESET));
	printf("\n");
	size_t shown = 0, limit = cli->verbose ? (size_t)-1 : 10;
	json_array_foreach(f->off, i, e)
	{
		if (shown++ >= limit)
			break;
		json_t *ver = json_object_get(e, "version");
		json_t *out = json_object_get(e, "outcome");
		json_t *at = json_object_get(e, "at");
		printf("    %-28s %-16s", json_string_value(json_object_get(e, "host")),
		       json_is_string(ver) ? json_string_value(ver) : "unknown");
		if (json_is_string(out))
			printf(" last %s at %s", json_string_value(out),
			       json_is_string(at) ? json_string_value(at) : "?");
		printf("\n");
	}
	if (json_array_size(f->off) > limit)
		printf("    ... and %zu more (-v lists them all)\n",
		       json_array_size(f->off) - limit);
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
	fleet_view fv = {0};
	bool has_fleet = false;
	char fleet_why[1024] = "";
	/* a damaged state.json is shown, with the live weights, not a reason to show nothing */
	int state_rc = 0;
	char state_why[1024] = "";
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc) {
		mg_state_init(&st, mg_plan_name(plan));
		rc = mg_store_open_existing(&store, cli_state_dir(cli, plan), mg_plan_name(plan),
		                            &err);
		if (rc == MG_ENOTFOUND) {
			rc = 0; /* nothing has run yet: that is a state too */
			mg_error_clear(&err);
		} else if (!rc) {
			state_rc = mg_state_load(&st, store, &err);
			if (state_rc) {
				snprintf(state_why, sizeof(state_why), "%s", err.message);
				mg_error_clear(&err);
				mg_state_init(&st, mg_plan_name(plan));
			}
			recorded = !state_rc && st.revision > 0;
			rc = mg_store_lock_probe(&held, &holder, store, &err);
		}
	}
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}

	/* the fleet as fleet.json records it; a damaged file is shown, not fatal */
	const mg_plan_vms *vms = mg_plan_vms_section(plan);
	if (vms) {
		json_t *record = NULL;
		mg_error ferr = MG_ERROR_INIT;
		if (store && mg_fleet_record_load(&record, store, &ferr) != 0)
			snprintf(fleet_why, sizeof(fleet_why), "%s", ferr.message);
		else
			fleet_view_make(&fv, vms, record, st.vms_version);
		has_fleet = !*fleet_why;
		json_decref(record);
		mg_error_clear(&ferr);
	}

	const mg_plan_traffic *t = mg_plan_traffic_section(plan);
	jlive = t && !offline ? read_live(&live, t, live_why, sizeof(live_why)) : NULL;
	double expected = st.has_read_back ? st.read_back_k8s_percent : 0;
	/* what the next step, rollback or run will record for an interrupted one, from live */
	const char *pending_outcome = NULL;
	if (jlive && st.pending && !state_rc)
		pending_outcome =
		    mg_traffic_same_share(live.k8s_percent, st.pending_k8s_percent) ? "applied"
		    : mg_traffic_same_share(live.k8s_percent, expected)             ? "not applied"
		                                                                    : "unknown";
	/* the target of migrate's own interrupted command is not a change made outside it */
	bool drift = jlive && !state_rc && !mg_traffic_same_share(live.k8s_percent, expected) &&
	             !(pending_outcome && !strcmp(pending_outcome, "applied"));
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
		json_object_set_new(doc, "state", state_rc ? json_null() : mg_state_to_json(&st));
		json_object_set_new(doc, "state_error",
		                    state_rc ? json_string(state_why) : json_null());
		json_object_set_new(doc, "steps",
		                    t ? json_integer((json_int_t)t->nsteps) : json_null());
		json_object_set_new(doc, "bake_remaining_ms",
		                    bake_left >= 0 ? json_integer(bake_left) : json_null());
		json_object_set_new(doc, "lock", lock_json(held, &holder));
		json_object_set_new(doc, "live", jlive ? jlive : json_null());
		json_object_set_new(doc, "live_error",
		                    *live_why ? json_string(live_why) : json_null());
		json_object_set_new(doc, "drift",
		                    jlive && !state_rc ? json_boolean(drift) : json_null());
		json_object_set_new(doc, "pending_outcome",
		                    pending_outcome ? json_string(pending_outcome) : json_null());
		json_object_set_new(doc, "fleet", has_fleet ? fleet_view_json(&fv) : json_null());
		json_object_set_new(doc, "fleet_error",
		                    *fleet_why ? json_string(fleet_why) : json_null());
		jlive = NULL;
		if (state_rc) {
			exit_code = cli_exit_code(state_rc);
			json_object_set_new(doc, "error",
			                    json_pack("{s:s, s:s, s:[]}", "kind",
			                              mg_error_name(state_rc), "message", state_why,
			                              "diagnostics"));
			fprintf(stderr, "error: state.json cannot be read: %s\n", state_why);
		}
		exit_code = cli_doc_emit(cli, doc, exit_code);
		goto out;
	}

	bool c = cli->color_out;
	char buf[64], buf2[64];
	printf("%s%s%s  phase %s%s%s", cli_c(c, C_BOLD), mg_plan_name(plan), cli_c(c, C_RESET),
	       cli_c(c, C_CYAN), state_rc ? "unknown" : mg_phase_name(st.phase), cli_c(c, C_RESET));
	if (state_rc) {
		printf(
		    "  %s(state.json cannot be read: the live weights below are all there is)%s\n",
		    cli_c(c, C_YELLOW), cli_c(c, C_RESET));
	} else if (recorded) {
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
	} else if (t && !state_rc) {
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
	if (!state_rc) {
		printf("  versions   VMs %s", *st.vms_version ? st.vms_version : "-");
		if (*st.vms_previous_version)
			printf(" (before: %s)", st.vms_previous_version);
		printf(", cluster %s", *st.kubernetes_version ? st.kubernetes_version : "-");
		if (!strcmp(st.kubernetes_rollout, "failed"))
			printf(" %s(rollout failed)%s", cli_c(c, C_RED), cli_c(c, C_RESET));
		if (*st.kubernetes_previous_version)
			printf(" (before: %s)", st.kubernetes_previous_version);
		printf("\n");
		if (!strcmp(st.kubernetes_rollout, "failed"))
			printf(
			    "  cluster    %s's rollout failed: %s; deploy a release again or `migrate "
			    "rollback --release`%s%s%s\n",
			    st.kubernetes_version,
			    *st.kubernetes_error ? st.kubernetes_error : "(no reason recorded)",
			    *st.kubernetes_previous_version ? " (to " : "",
			    st.kubernetes_previous_version,
			    *st.kubernetes_previous_version ? ")" : "");
	}
	if (has_fleet)
		fleet_view_print(cli, &fv, st.vms_version);
	else if (*fleet_why)
		printf("  fleet      %sunreadable:%s %s\n", cli_c(c, C_YELLOW), cli_c(c, C_RESET),
		       fleet_why);
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
		mg_time_format(buf2, sizeof(buf2), st.pending_ms);
		printf("  %sinterrupted%s `migrate %s` to %s was interrupted at %s before it "
		       "recorded its result; the next step, rollback or run %s and records what "
		       "happened\n",
		       cli_c(c, C_YELLOW), cli_c(c, C_RESET), st.pending_command, buf, buf2,
		       t && t->provider == MG_PROVIDER_NGINX
		           ? "tests and reloads nginx, reads the balancer"
		           : "reads the balancer");
	}
	if (jlive) {
		char note[256] = "";
		if (drift && pending_outcome)
			snprintf(
			    note, sizeof(note),
			    "  DRIFT: neither the interrupted %s's target nor what migrate last "
			    "set; the next command records it as unknown and `step` refuses "
			    "until `step --adopt` or `rollback`",
			    st.pending_command);
		else if (drift)
			snprintf(note, sizeof(note),
			         "  DRIFT: changed outside migrate; `step` refuses until `step "
			         "--adopt` or `rollback`");
		else if (pending_outcome && !strcmp(pending_outcome, "applied"))
			snprintf(note, sizeof(note),
			         "  the interrupted %s's target: the next command records it as "
			         "applied",
			         st.pending_command);
		else if (pending_outcome)
			snprintf(
			    note, sizeof(note),
			    "  as before the interrupted %s: the next command records it as not "
			    "applied",
			    st.pending_command);
		mg_percent_format(buf, sizeof(buf), live.k8s_percent);
		printf("  live       %s to the cluster, read from %s now%s%s%s\n", buf,
		       mg_provider_name(t->provider), drift ? cli_c(c, C_YELLOW) : "", note,
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
	if (state_rc) {
		exit_code = cli_exit_code(state_rc);
		fprintf(stderr, "%serror:%s state.json cannot be read: %s\n",
		        cli_c(cli->color_err, C_RED), cli_c(cli->color_err, C_RESET), state_why);
	}
out:
	json_decref(fv.versions);
	json_decref(fv.off);
	json_decref(jlive);
	mg_traffic_state_clear(&live);
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
