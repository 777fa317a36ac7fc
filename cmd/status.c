/* migrate status: where the migration stands, as recorded, beside the balancer's live weights. */
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "spool.h"
#include "units.h"
#include "util_shift.h"

/* The fleet's releases (mg_status.fleet), hosts off the fleet's version under them. */
static void fleet_view_print(const mg_cli *cli, json_t *f, const char *fleet_version)
{
	bool c = cli->color_out;
	size_t hosts = (size_t)json_integer_value(json_object_get(f, "hosts"));
	size_t unknown = (size_t)json_integer_value(json_object_get(f, "unknown"));
	json_t *versions = json_object_get(f, "versions"), *off = json_object_get(f, "off_version");
	if (!json_integer_value(json_object_get(f, "recorded"))) {
		printf(
		    "  fleet      %zu host%s, no release recorded yet (`migrate deploy --vms-only` "
		    "records them)\n",
		    hosts, hosts == 1 ? "" : "s");
		return;
	}
	printf("  fleet      %zu host%s:", hosts, hosts == 1 ? "" : "s");
	size_t i;
	json_t *e;
	json_array_foreach(versions, i, e)
	{
		printf("%s %lld on %s", i ? "," : "",
		       (long long)json_integer_value(json_object_get(e, "hosts")),
		       json_string_value(json_object_get(e, "version")));
	}
	if (unknown)
		printf("%s %zu unknown", json_array_size(versions) ? "," : "", unknown);
	if (json_is_true(json_object_get(f, "skew")))
		printf("  %sSKEW: not every host runs %s%s", cli_c(c, C_YELLOW),
		       *fleet_version ? fleet_version : "the same release", cli_c(c, C_RESET));
	printf("\n");
	size_t shown = 0, limit = cli->verbose ? (size_t)-1 : 10;
	json_array_foreach(off, i, e)
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
	if (json_array_size(off) > limit)
		printf("    ... and %zu more (-v lists them all)\n", json_array_size(off) - limit);
}

static bool rebuilt(const mg_status *s, const char *field)
{
	size_t i;
	json_t *e;
	json_array_foreach(s->rebuilt, i, e) if (!strcmp(json_string_value(e), field)) return true;
	return false;
}

/* No state recorded: where each version came from, and what could not be read. */
static void rebuild_print(const mg_cli *cli, const mg_status *s)
{
	bool c = cli->color_out;
	json_t *hosts = json_object_get(s->rebuild, "hosts");
	json_t *cl = json_object_get(s->rebuild, "cluster");
	if (json_is_array(hosts)) {
		size_t n = json_array_size(hosts);
		size_t read = (size_t)json_integer_value(json_object_get(s->rebuild, "hosts_read"));
		printf(
		    "  rebuilt    VMs from the hosts (current and releases/, %zu of %zu read)%s\n",
		    read, n,
		    rebuilt(s, "versions.vms") ? ""
		    : read < n                 ? ": the VMs' version is unknown"
		                               : ": the hosts do not run one release");
		size_t i;
		json_t *h;
		json_array_foreach(hosts, i, h)
		{
			if (json_is_true(json_object_get(h, "reached")))
				continue;
			printf("    %-28s %snot read:%s %s\n",
			       json_string_value(json_object_get(h, "host")), cli_c(c, C_YELLOW),
			       cli_c(c, C_RESET), json_string_value(json_object_get(h, "error")));
		}
	}
	if (json_is_object(cl)) {
		json_t *missing = json_object_get(cl, "missing");
		json_t *pmissing = json_object_get(cl, "previous_missing");
		if (json_is_string(missing))
			printf("  rebuilt    cluster %sunknown:%s %s\n", cli_c(c, C_YELLOW),
			       cli_c(c, C_RESET), json_string_value(missing));
		else
			printf("  rebuilt    cluster from its Deployments' %s annotations%s%s\n",
			       MG_CLUSTER_RELEASE_ANNOTATION,
			       json_is_string(pmissing) ? "; the release before is unknown: " : "",
			       json_is_string(pmissing) ? json_string_value(pmissing) : "");
	}
}

int cmd_status(mg_cli *cli, int argc, char **argv)
{
	bool offline = false;
	const cli_opt opts[] = {CLI_FLAG("offline", &offline), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	mg_error err = MG_ERROR_INIT;
	mg_migration *m = NULL;
	mg_status s = {0};
	int rc = shift_open(&m, cli, "status", MG_MIGRATION_READ, 0, &err);
	if (!rc)
		rc = mg_migration_status(&s, m, offline, mg_now_ms(), &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}
	const mg_plan *plan = mg_migration_plan(m);
	const mg_plan_traffic *t = mg_migration_traffic(m);
	/* moves this machine could not record in the cluster: status uploads nothing (no lock) */
	const char *spool = mg_migration_spool_dir(m);
	size_t spooled = spool ? mg_spool_count(spool) : 0;

	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_update_new(doc, mg_status_to_json(&s, m, cli_state_dir(cli, plan)));
		if (spool)
			json_object_set_new(
			    doc, "spool",
			    json_pack("{s:s, s:I}", "dir", spool, "records", (json_int_t)spooled));
		if (s.state_rc) {
			exit_code = cli_exit_code(s.state_rc);
			fprintf(stderr, "error: state.json cannot be read: %s\n", s.state_error);
		}
		exit_code = cli_doc_emit(cli, doc, exit_code);
		goto out;
	}

	bool c = cli->color_out;
	char buf[64], buf2[64];
	printf("%s%s%s  phase %s%s%s", cli_c(c, C_BOLD), mg_plan_name(plan), cli_c(c, C_RESET),
	       cli_c(c, C_CYAN), s.state_rc ? "unknown" : mg_phase_name(s.st.phase),
	       cli_c(c, C_RESET));
	if (s.state_rc) {
		printf(
		    "  %s(state.json cannot be read: the live weights below are all there is)%s\n",
		    cli_c(c, C_YELLOW), cli_c(c, C_RESET));
	} else if (s.recorded) {
		mg_time_format(buf, sizeof(buf), s.st.updated_ms);
		printf("  (revision %llu, updated %s)\n", (unsigned long long)s.st.revision, buf);
	} else if (json_array_size(s.rebuilt)) {
		printf("  (nothing recorded here: versions rebuilt from what the hosts and the "
		       "cluster hold)\n");
	} else {
		printf("  (nothing recorded yet: no command has changed anything)\n");
	}
	if (s.st.step_index >= 0 && t && (size_t)s.st.step_index < t->nsteps) {
		mg_percent_format(buf, sizeof(buf), t->steps[s.st.step_index]);
		printf("  step       %d of %zu: %s to the cluster", s.st.step_index + 1, t->nsteps,
		       buf);
		if (s.bake_left_ms > 0) {
			mg_duration_format(buf2, sizeof(buf2),
			                   (s.bake_left_ms + 999) / 1000 * 1000);
			printf(", bake %s left", buf2);
		} else if (s.bake_left_ms == 0) {
			printf(", bake done");
		}
		printf("\n");
	} else if (t && !s.state_rc) {
		printf("  step       none yet: all traffic on the VMs (%zu steps planned)\n",
		       t->nsteps);
	}
	if (s.st.has_applied) {
		mg_percent_format(buf, sizeof(buf), s.st.applied_k8s_percent);
		mg_time_format(buf2, sizeof(buf2), s.st.applied_ms);
		printf("  applied    %s to the cluster at %s\n", buf, buf2);
	}
	if (s.st.has_read_back) {
		mg_percent_format(buf, sizeof(buf), s.st.read_back_k8s_percent);
		mg_time_format(buf2, sizeof(buf2), s.st.read_back_ms);
		printf("  read back  %s to the cluster at %s%s\n", buf, buf2,
		       s.st.has_applied && s.st.applied_k8s_percent != s.st.read_back_k8s_percent
		           ? "  (differs from what was applied)"
		           : "");
	}
	if (!s.state_rc) {
		printf("  versions   VMs %s", *s.st.vms_version ? s.st.vms_version : "-");
		if (*s.st.vms_previous_version)
			printf(" (before: %s)", s.st.vms_previous_version);
		printf(", cluster %s", *s.st.kubernetes_version ? s.st.kubernetes_version : "-");
		if (!strcmp(s.st.kubernetes_rollout, "failed"))
			printf(" %s(rollout failed)%s", cli_c(c, C_RED), cli_c(c, C_RESET));
		if (*s.st.kubernetes_previous_version)
			printf(" (before: %s)", s.st.kubernetes_previous_version);
		printf("\n");
		if (s.rebuild)
			rebuild_print(cli, &s);
		if (!strcmp(s.st.kubernetes_rollout, "failed"))
			printf(
			    "  cluster    %s's rollout failed: %s; deploy a release again or `migrate "
			    "rollback --release`%s%s%s\n",
			    s.st.kubernetes_version,
			    *s.st.kubernetes_error ? s.st.kubernetes_error : "(no reason recorded)",
			    *s.st.kubernetes_previous_version ? " (to " : "",
			    s.st.kubernetes_previous_version,
			    *s.st.kubernetes_previous_version ? ")" : "");
	}
	if (s.fleet)
		fleet_view_print(cli, s.fleet, s.st.vms_version);
	else if (*s.fleet_error)
		printf("  fleet      %sunreadable:%s %s\n", cli_c(c, C_YELLOW), cli_c(c, C_RESET),
		       s.fleet_error);
	if (s.lock_held && !s.holder.pid) {
		/* the holder has not written its name yet, or the lock file was edited */
		printf("  lock       %sheld by a process that did not say who it is%s\n",
		       cli_c(c, C_YELLOW), cli_c(c, C_RESET));
	} else if (s.lock_held) {
		mg_time_format(buf, sizeof(buf), s.holder.since_ms);
		printf("  lock       %sheld by %s%s (pid %ld, \"%s\" since %s)\n",
		       cli_c(c, C_YELLOW), s.holder.operator_, cli_c(c, C_RESET), s.holder.pid,
		       s.holder.command, buf);
	} else {
		printf("  lock       free\n");
	}
	/* leader-elected autopilots waiting to take over (their own Leases in the cluster) */
	size_t si;
	json_t *sb;
	json_array_foreach(s.standbys, si, sb)
	{
		bool alive = json_is_true(json_object_get(sb, "alive"));
		printf("  %-10s %s%s%s (%s %s)\n", si ? "" : "standbys",
		       alive ? "" : cli_c(c, C_DIM),
		       json_string_value(json_object_get(sb, "holder")),
		       alive ? "" : cli_c(c, C_RESET), alive ? "waiting, seen" : "gone, last seen",
		       json_string_value(json_object_get(sb, "seen")));
	}
	if (*s.standbys_error)
		printf("  standbys   %sunknown:%s %s\n", cli_c(c, C_YELLOW), cli_c(c, C_RESET),
		       s.standbys_error);
	if (s.st.gate_last[0]) {
		mg_time_format(buf2, sizeof(buf2), s.st.gate_last_ms);
		printf("  gates      %s at %s, %d failure%s at this step: %s\n", s.st.gate_last,
		       buf2, s.st.gate_failures, s.st.gate_failures == 1 ? "" : "s",
		       s.st.gate_summary);
	}
	if (s.st.phase == MG_PHASE_PAUSED && s.st.pause_reason[0])
		printf("  paused     %s%s%s\n", cli_c(c, C_YELLOW), s.st.pause_reason,
		       cli_c(c, C_RESET));
	if (s.st.pending) {
		mg_percent_format(buf, sizeof(buf), s.st.pending_k8s_percent);
		mg_time_format(buf2, sizeof(buf2), s.st.pending_ms);
		printf("  %sinterrupted%s `migrate %s` to %s was interrupted at %s before it "
		       "recorded its result; the next step, rollback or run %s and records what "
		       "happened\n",
		       cli_c(c, C_YELLOW), cli_c(c, C_RESET), s.st.pending_command, buf, buf2,
		       t && t->provider == MG_PROVIDER_NGINX
		           ? "tests and reloads nginx, reads the balancer"
		           : "reads the balancer");
	}
	if (s.has_live) {
		char note[256] = "";
		if (s.drift && s.pending_outcome)
			snprintf(
			    note, sizeof(note),
			    "  DRIFT: neither the interrupted %s's target nor what migrate last "
			    "set; the next command records it as unknown and `step` refuses "
			    "until `step --adopt` or `rollback`",
			    s.st.pending_command);
		else if (s.drift)
			snprintf(note, sizeof(note),
			         "  DRIFT: changed outside migrate; `step` refuses until `step "
			         "--adopt` or `rollback`");
		else if (s.pending_outcome && !strcmp(s.pending_outcome, "applied"))
			snprintf(note, sizeof(note),
			         "  the interrupted %s's target: the next command records it as "
			         "applied",
			         s.st.pending_command);
		else if (s.pending_outcome)
			snprintf(
			    note, sizeof(note),
			    "  as before the interrupted %s: the next command records it as not "
			    "applied",
			    s.st.pending_command);
		mg_percent_format(buf, sizeof(buf), s.live.k8s_percent);
		printf("  live       %s to the cluster, read from %s now%s%s%s\n", buf,
		       mg_provider_name(t->provider), s.drift ? cli_c(c, C_YELLOW) : "", note,
		       s.drift ? cli_c(c, C_RESET) : "");
		for (size_t i = 0; i < s.live.nservers; i++) {
			const mg_traffic_server *sv = &s.live.servers[i];
			printf("    %-28s %-8s weight %-8g %s\n", sv->name,
			       sv->k8s ? "cluster" : "vm", sv->weight,
			       *sv->detail ? sv->detail : mg_health_name(sv->health));
		}
	} else if (*s.live_error) {
		printf("  live       %sunavailable:%s %s\n", cli_c(c, C_YELLOW), cli_c(c, C_RESET),
		       s.live_error);
	}
	char where[600];
	printf("  state      %s\n", cli_state_where(cli, plan, where, sizeof(where)));
	if (spooled)
		printf("  spool      %s%zu record%s not in the cluster yet%s, in %s: the next "
		       "command that takes the lock (step, run, pause, resume, ...) uploads %s\n",
		       cli_c(c, C_YELLOW), spooled, spooled == 1 ? "" : "s", cli_c(c, C_RESET),
		       spool, spooled == 1 ? "it" : "them");
	if (s.state_rc) {
		exit_code = cli_exit_code(s.state_rc);
		fprintf(stderr, "%serror:%s state.json cannot be read: %s\n",
		        cli_c(cli->color_err, C_RED), cli_c(cli->color_err, C_RESET),
		        s.state_error);
	}
out:
	mg_status_clear(&s);
	mg_migration_free(m);
	mg_error_clear(&err);
	return exit_code;
}
