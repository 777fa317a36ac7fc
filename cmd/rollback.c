/*
 * migrate rollback: traffic back to the VMs (or to an earlier step) in one
 * balancer call. It never waits behind the autopilot: a `migrate run`
 * holding the lock is told to stop first.
 *
 * rollback --release is the releases' way back instead: no traffic moves, the
 * VMs go back to their previous release (lib/fleet/fleet.c) and the cluster gets
 * the recorded manifests of its previous release again (lib/kube/cluster.c),
 * both at once (cmd/deploy.c); --vms-only / --k8s-only for one side.
 */
#include "units.h"
#include "util_shift.h"

typedef struct {
	const char *to, *reason, *context;
	bool force, release, accept_new, vms_only, k8s_only;
} rollback_opts;

int cmd_rollback(mg_cli *cli, int argc, char **argv)
{
	rollback_opts o = {0};
	const cli_opt opts[] = {CLI_STRING("to", &o.to),
	                        CLI_FLAG("force", &o.force),
	                        CLI_STRING("reason", &o.reason),
	                        CLI_FLAG("release", &o.release),
	                        CLI_FLAG("accept-new-host-keys", &o.accept_new),
	                        CLI_FLAG("vms-only", &o.vms_only),
	                        CLI_FLAG("k8s-only", &o.k8s_only),
	                        CLI_STRING("context", &o.context),
	                        {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	if (o.force && !o.release && !o.reason)
		return cli_usage_error(cli, "--force needs --reason TEXT: the journal records why");
	if (o.release && (o.to || o.force))
		return cli_usage_error(cli, "--release switches the VMs' release and moves no "
		                            "traffic; --to and --force are for a traffic rollback");
	if (o.accept_new && !o.release)
		return cli_usage_error(cli, "--accept-new-host-keys goes with --release (a traffic "
		                            "rollback contacts no host)");
	if ((o.vms_only || o.k8s_only) && !o.release)
		return cli_usage_error(cli,
		                       "--vms-only and --k8s-only go with --release (a traffic "
		                       "rollback moves traffic, not releases)");
	if (o.context && (!o.release || o.vms_only))
		return cli_usage_error(cli, "--context names the cluster for rollback --release; a "
		                            "traffic rollback and --vms-only contact no cluster");
	if (o.context && !*o.context)
		return cli_usage_error(cli, "--context needs a context name");
	if (o.vms_only && o.k8s_only)
		return cli_usage_error(cli, "--vms-only and --k8s-only exclude each other; without "
		                            "either, --release rolls back every side the plan has");
	if (o.release)
		return cmd_release(cli, MG_FLEET_ROLLBACK, NULL, o.vms_only, o.k8s_only,
		                   o.accept_new, o.reason, o.context);
	double to = 0;
	if (o.to && shift_parse_percent(cli, "--to", o.to, &to))
		return EXIT_USAGE;

	mg_error err = MG_ERROR_INIT;
	mg_migration *m = NULL;
	mg_shift_outcome out = {0};
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	int rc = shift_open_reason(&m, cli, "rollback", MG_MIGRATION_ROLLBACK, 0, o.reason, &err);
	if (rc)
		goto out;
	int idx;
	double from;
	rc = mg_migration_rollback_check(&idx, &from, m, o.to ? to : 0, o.to, &err);
	if (rc)
		goto out;
	if (cli->dry_run) {
		rc = shift_print_dry_run(m, to, doc, &err);
		goto out;
	}
	/* the balancer first, then the record: MG_EUNRECORDED still reports the read-back */
	rc = mg_migration_rollback(&out, m, to, idx, o.reason, o.force, &err);
	if (rc && rc != MG_EUNRECORDED)
		goto out;
	const mg_traffic_state *rb = &out.read_back;
	const char *name = mg_plan_name(mg_migration_plan(m));
	if (doc) {
		json_object_update_new(doc,
		                       mg_migration_move_to_json(m, &out, from, NULL, to, idx));
	} else {
		char a[32], b[32];
		mg_percent_format(a, sizeof(a), to);
		mg_percent_format(b, sizeof(b), rb->k8s_percent);
		printf("%s: rolled back to %s to the cluster (%s read back from %s)%s\n", name, a,
		       b, mg_traffic_name(mg_migration_balancer(m)),
		       rc ? ", NOT RECORDED (see below)" : "");
		shift_print_servers(cli, rb);
	}
	/* the autopilot of another host: no signal reaches it, the store carries the request */
	const char *stopped = mg_migration_stop_asked(m);
	if (stopped && !doc)
		printf("the autopilot running on %s was asked to stop (a stop request in %s); it "
		       "stops within one slo.interval and moves no more traffic\n",
		       stopped, name);
	if (doc)
		json_object_set_new(doc, "autopilot_asked_to_stop",
		                    stopped ? json_string(stopped) : json_null());
out:
	return shift_finish(cli, m, &out, doc, &err, rc);
}
