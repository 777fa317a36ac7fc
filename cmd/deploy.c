/*
 * migrate deploy and rollback --release: a release onto the VM fleet and the
 * cluster together, or either side alone (--vms-only, --k8s-only). lib/release
 * does the work (checks, state, journal, both sides at once); this file parses
 * the options, draws the progress line and prints the outcome.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "cmd.h"
#include "release.h"

/* Hosts in the text table before only the ones that did not succeed are listed (-v: all). */
#define TABLE_ALL_UP_TO 50
/* Progress redraws at most this often. */
#define PROGRESS_MS 100

/* The TTY line: the fleet's progress alone, or both sides' (lib/release calls one at a time). */
typedef struct {
	mg_cli *cli;
	const char *plan, *verb, *version;
	bool tty, drawn, vms, k8s;
	int64_t last_ms;
	size_t batch, nbatches, nhosts, ok, failed, running;
	const char *host, *host_state;
	char k8s_msg[200];
} progress_ctx;

static void draw(progress_ctx *c, bool force)
{
	int64_t now = mg_clock_ms();
	if (!c->tty || (!force && now - c->last_ms < PROGRESS_MS))
		return;
	c->last_ms = now;
	bool col = c->cli->color_err;
	if (!c->k8s) {
		fprintf(stderr,
		        "%s%s: %s %s  batch %zu/%zu  %zu/%zu done, %s%zu failed%s, %zu working  "
		        "%s%s %s%s",
		        cli_c(true, C_CLEAR_LINE), c->plan, c->verb, c->version, c->batch,
		        c->nbatches, c->ok + c->failed, c->nhosts,
		        c->failed ? cli_c(col, C_RED) : "", c->failed,
		        c->failed ? cli_c(col, C_RESET) : "", c->running, cli_c(col, C_DIM),
		        c->host, c->host_state, cli_c(col, C_RESET));
	} else {
		char vm[160] = "", k8[240] = "";
		if (c->vms)
			snprintf(vm, sizeof(vm), "  VMs: batch %zu/%zu, %zu/%zu done, %zu failed",
			         c->batch, c->nbatches, c->ok + c->failed, c->nhosts, c->failed);
		snprintf(k8, sizeof(k8), "  cluster: %s", *c->k8s_msg ? c->k8s_msg : "starting");
		fprintf(stderr, "%s%s: %s %s%s%s", cli_c(true, C_CLEAR_LINE), c->plan, c->verb,
		        c->version, vm, k8);
	}
	fflush(stderr);
	c->drawn = true;
}

static void progress(void *ud, const mg_release_progress *p)
{
	progress_ctx *c = ud;
	const mg_fleet_progress *f = p->fleet;
	if (f) {
		if (f->finished && !f->reverting) {
			c->ok += f->host->outcome == MG_FLEET_OK;
			c->failed += f->host->outcome == MG_FLEET_FAILED;
		}
		c->batch = f->batch + 1;
		c->nbatches = f->run->nbatches;
		c->nhosts = f->run->nhosts;
		c->running = f->running;
		c->host = f->host->host->name;
		c->host_state = f->finished ? mg_fleet_outcome_name(f->host->outcome)
		                            : mg_fleet_stage_name(f->host->stage);
	} else {
		snprintf(c->k8s_msg, sizeof(c->k8s_msg), "%s %s: %s",
		         p->object->kind ? p->object->kind : "?",
		         p->object->name ? p->object->name : "?", p->message);
	}
	draw(c, f && f->finished);
}

static void progress_clear(progress_ctx *c)
{
	if (c->drawn) {
		fputs(cli_c(true, C_CLEAR_LINE), stderr);
		fflush(stderr);
		c->drawn = false;
	}
}

static void fmt_secs(char *buf, size_t size, int64_t ms)
{
	if (ms < 10000)
		snprintf(buf, size, "%.2fs", (double)ms / 1000.0);
	else
		snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
}

/* A table row without the padding of its last column. */
static void print_row(char *line)
{
	size_t n = strlen(line);
	while (n && line[n - 1] == ' ')
		line[--n] = '\0';
	printf("%s\n", line);
}

static void print_table(const mg_cli *cli, const mg_fleet_result *r)
{
	bool c = cli->color_out;
	bool all = r->nhosts <= TABLE_ALL_UP_TO || cli->verbose;
	size_t w = 4;
	for (size_t i = 0; i < r->nhosts; i++) {
		size_t n = strlen(r->hosts[i].host->name);
		if (n > w)
			w = n;
	}
	if (w > 40)
		w = 40;
	printf("  %-*s  %-5s  %-11s  %-8s  %-8s  %-12s  %-12s  %-7s  %s\n", (int)w, "HOST", "BATCH",
	       "OUTCOME", "STAGE", "UPLOAD", "PREVIOUS", "NOW", "TIME", "ERROR");
	char line[2048];
	size_t hidden = 0;
	for (size_t i = 0; i < r->nhosts; i++) {
		const mg_fleet_host_result *h = &r->hosts[i];
		if (!all && h->outcome == MG_FLEET_OK && !*h->prune_error) {
			hidden++;
			continue;
		}
		const char *col = h->outcome == MG_FLEET_OK       ? C_GREEN
		                  : h->outcome == MG_FLEET_FAILED ? C_RED
		                                                  : C_YELLOW;
		const char *up = h->upload == MG_FLEET_UPLOAD_DONE      ? "uploaded"
		                 : h->upload == MG_FLEET_UPLOAD_SKIPPED ? "skipped"
		                                                        : "-";
		char t[32] = "-";
		if (h->outcome != MG_FLEET_NOT_RUN)
			fmt_secs(t, sizeof(t), h->duration_ms);
		bool ran = h->outcome != MG_FLEET_NOT_RUN;
		char why[1100];
		if (*h->error || !*h->prune_error)
			snprintf(why, sizeof(why), "%s", h->error);
		else /* it succeeded: the failed prune is a note, not a failure */
			snprintf(why, sizeof(why), "old releases not pruned: %s", h->prune_error);
		snprintf(line, sizeof(line),
		         "  %-*s  %-5zu  %s%-11s%s  %-8s  %-8s  %-12s  %-12s  %-7s  %s", (int)w,
		         h->host->name, h->batch + 1, cli_c(c, col),
		         mg_fleet_outcome_name(h->outcome), cli_c(c, C_RESET),
		         ran ? mg_fleet_stage_name(h->stage) : "-", up,
		         ran && *h->previous ? h->previous : "-",
		         h->version_known && *h->version ? h->version : (ran ? "?" : "-"), t, why);
		print_row(line);
	}
	if (hidden)
		printf("  (%zu host%s that succeeded not listed; -v lists every host)\n", hidden,
		       hidden == 1 ? "" : "s");
}

static void print_summary(const mg_cli *cli, const char *plan, const mg_fleet_result *r, int rc)
{
	char t[32];
	fmt_secs(t, sizeof(t), r->duration_ms);
	const char *verb = r->op == MG_FLEET_ROLLBACK ? "rolled back to" : "deployed";
	bool c = cli->color_out;
	if (!rc)
		printf("%s: %s%s %s%s on all %zu hosts in %s (%zu batch%s of %zu", plan,
		       cli_c(c, C_GREEN), verb, r->version, cli_c(c, C_RESET), r->nhosts, t,
		       r->nbatches, r->nbatches == 1 ? "" : "es", r->batch_size);
	else
		printf("%s: %s%s %s%s on %zu of %zu hosts in %s (%zu batch%s of %zu", plan,
		       cli_c(c, C_RED), r->op == MG_FLEET_ROLLBACK ? "rollback to" : "deploy of",
		       r->version, cli_c(c, C_RESET), r->ok, r->nhosts, t, r->batches_run,
		       r->batches_run == 1 ? "" : "es", r->batch_size);
	if (r->op == MG_FLEET_DEPLOY)
		printf("; %zu uploaded, %zu already there", r->uploaded, r->skipped_uploads);
	printf(")\n");
	print_table(cli, r);
}

static void dry_run_text(const mg_cli *cli, const mg_fleet_options *o)
{
	json_t *desc = mg_fleet_describe(o);
	const mg_plan_vms *v = o->vms;
	size_t bs = mg_plan_vms_batch_size(v);
	size_t nb = mg_fleet_batch_count(v->nhosts, bs);
	printf("dry run: %s %s on %zu host%s in %zu batch%s of %zu, at most %d at once; nothing "
	       "was contacted or changed\n",
	       o->op == MG_FLEET_ROLLBACK ? "rollback to" : "deploy", o->version, v->nhosts,
	       v->nhosts == 1 ? "" : "s", nb, nb == 1 ? "" : "es", bs, v->parallel);
	if (o->op == MG_FLEET_DEPLOY)
		printf("artifact %s\n  sha256 %s\n", o->artifact, o->artifact_sha256);
	printf("a batch stops the %s when the failures so far exceed vms.max_failures (%d); its "
	       "switched hosts then go back to their previous release\n",
	       mg_fleet_op_name(o->op), v->max_failures);
	bool all = v->nhosts <= 20 || cli->verbose;
	size_t idx;
	json_t *h;
	size_t batch = 0;
	json_array_foreach(desc, idx, h)
	{
		size_t b = (size_t)json_integer_value(json_object_get(h, "batch"));
		if (b != batch) {
			printf("batch %zu\n", b);
			batch = b;
		}
		printf("  %s (%s@%s port %d)\n", json_string_value(json_object_get(h, "host")),
		       v->user, json_string_value(json_object_get(h, "address")),
		       (int)json_integer_value(json_object_get(h, "port")));
		if (!all && idx > 0)
			continue;
		size_t k;
		json_t *s;
		json_array_foreach(json_object_get(h, "steps"), k, s)
		    printf("    %zu. %s\n", k + 1, json_string_value(s));
	}
	if (!all)
		printf("(every host gets the steps of the first, with its own address; -v lists "
		       "them for each)\n");
	json_decref(desc);
}

/* "1 of 1 Deployment" as before, or "2 of 3 workloads" once StatefulSets or DaemonSets are in */
static void rolled_text(char *buf, size_t size, const mg_cluster_result *r)
{
	if (r->workloads == r->deployments)
		snprintf(buf, size, "%zu of %zu Deployment%s rolled out", r->rolled_out,
		         r->deployments, r->deployments == 1 ? "" : "s");
	else
		snprintf(buf, size, "%zu of %zu workload%s rolled out", r->rolled_out,
		         r->workloads - r->rollouts_not_waitable,
		         r->workloads - r->rollouts_not_waitable == 1 ? "" : "s");
	if (r->rollouts_not_waitable)
		snprintf(buf + strlen(buf), size - strlen(buf), ", %zu not waitable (OnDelete)",
		         r->rollouts_not_waitable);
}

static void print_cluster(const mg_cli *cli, const char *plan, const char *verb,
                          const char *version, const mg_cluster_result *r, int rc)
{
	bool c = cli->color_out;
	char t[32], rolled[160];
	fmt_secs(t, sizeof(t), r->duration_ms);
	rolled_text(rolled, sizeof(rolled), r);
	if (r->dry_run)
		printf("%s: dry run of the cluster %s of %s (server-side dryRun=All, nothing "
		       "persisted, no rollout waited for): %zu to create, %zu to change, %zu "
		       "unchanged\n",
		       plan, verb, version, r->created, r->configured, r->unchanged);
	else if (!rc)
		printf("%s: %scluster %s %s%s in %s (context %s, namespace %s): %zu created, %zu "
		       "configured, %zu unchanged; %s\n",
		       plan, cli_c(c, C_GREEN), !strcmp(verb, "rollback") ? "rolled back to" : "at",
		       version, cli_c(c, C_RESET), t, r->context ? r->context : "-",
		       r->namespace_ ? r->namespace_ : "-", r->created, r->configured, r->unchanged,
		       rolled);
	else
		printf("%s: %scluster %s of %s failed%s after %s: %zu created, %zu configured, %zu "
		       "unchanged, %zu failed, %zu not applied; %s\n",
		       plan, cli_c(c, C_RED), verb, version, cli_c(c, C_RESET), t, r->created,
		       r->configured, r->unchanged, r->failed, r->not_run, rolled);
	size_t w = 6;
	for (size_t i = 0; i < r->nobjects; i++) {
		const mg_cluster_object *o = &r->objects[i];
		size_t n = strlen(o->kind ? o->kind : "?") + 1 + strlen(o->name ? o->name : "?");
		if (n > w)
			w = n;
	}
	if (w > 60)
		w = 60;
	printf("  %-*s  %-10s  %-9s  %s\n", (int)w, "OBJECT", "OUTCOME", "ROLLOUT", "ERROR");
	for (size_t i = 0; i < r->nobjects; i++) {
		const mg_cluster_object *o = &r->objects[i];
		char name[300], line[2048];
		snprintf(name, sizeof(name), "%s/%s", o->kind ? o->kind : "?",
		         o->name ? o->name : "?");
		const char *col = o->outcome == MG_CLUSTER_FAILED    ? C_RED
		                  : o->outcome == MG_CLUSTER_NOT_RUN ? C_YELLOW
		                                                     : C_GREEN;
		char ro[32] = "-";
		if (o->rollout && o->rolled_out)
			fmt_secs(ro, sizeof(ro), o->rollout_ms);
		else if (o->rollout && o->outcome == MG_CLUSTER_FAILED && !o->rolled_out &&
		         o->rollout_status)
			snprintf(ro, sizeof(ro), "failed");
		else if (o->rollout_not_waited)
			snprintf(ro, sizeof(ro), "unknown");
		else if (o->rollout_not_waitable)
			snprintf(ro, sizeof(ro), "OnDelete");
		snprintf(line, sizeof(line), "  %-*s  %s%-10s%s  %-9s  %s", (int)w, name,
		         cli_c(c, col), mg_cluster_outcome_name(o->outcome), cli_c(c, C_RESET), ro,
		         o->error ? o->error : "");
		print_row(line);
	}
	if (r->rollouts_not_waited) {
		/* the waits stop at the first failure: say what nobody watched */
		printf("  not waited for after the failure (ready or not is unknown):");
		for (size_t i = 0, n = 0; i < r->nobjects; i++)
			if (r->objects[i].rollout_not_waited)
				printf("%s %s/%s", n++ ? "," : "", r->objects[i].kind,
				       r->objects[i].name ? r->objects[i].name : "?");
		printf("\n");
	}
	if (r->dry_run && cli->verbose)
		for (size_t i = 0; i < r->nobjects; i++)
			if (r->objects[i].diff)
				fputs(r->objects[i].diff, stdout);
}

/* The fleet alone (--vms-only, or a plan without a cluster): its own report and JSON. */
static int report_fleet(mg_cli *cli, const mg_release *rel, int run_rc, mg_error *err)
{
	const mg_release_info *in = mg_release_info_get(rel);
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	if (doc)
		json_object_update_new(doc, mg_release_to_json(rel));
	if (cli->dry_run && doc)
		return cli_doc_emit(cli, doc, EXIT_DONE);
	if (cli->dry_run) {
		dry_run_text(cli, in->fleet_options);
		return EXIT_DONE;
	}
	int exit_code = run_rc == MG_ECANCELED ? 128 + (int)cli_signal : cli_exit_code(run_rc);
	if (doc && run_rc)
		json_object_set_new(doc, "error", mg_error_json(err, MG_ERROR, NULL));
	if (!doc)
		print_summary(cli, in->plan, in->fleet, run_rc);
	if (run_rc)
		fprintf(stderr, "%serror:%s %s\n", cli_c(cli->color_err, C_RED),
		        cli_c(cli->color_err, C_RESET), err->message);
	return doc ? cli_doc_emit(cli, doc, exit_code) : exit_code;
}

/* Both sides, or the cluster alone. */
static int report_dual(mg_cli *cli, const mg_release *rel)
{
	const mg_release_info *in = mg_release_info_get(rel);
	const char *name = in->plan;
	const char *verb = in->op == MG_FLEET_DEPLOY ? "deploy" : "rollback";
	const mg_cluster_result *cr = in->cluster;
	int exit_code = EXIT_DONE;
	if (in->journal_rc)
		fprintf(stderr, "error: %s\n", in->journal_err->message);
	if (in->state_rc) {
		fprintf(stderr, "error: %s\n", in->state_err->message);
		if (!in->fleet_rc && !in->cluster_rc)
			exit_code = cli_exit_code(in->state_rc);
	}
	bool failed = (in->fleet_ran && in->fleet_rc) || in->cluster_rc;
	if (cli_signal && failed)
		exit_code = 128 + (int)cli_signal;
	else if (failed)
		exit_code = EXIT_FAILED;
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_update_new(doc, mg_release_to_json(rel));
		exit_code = cli_doc_emit(cli, doc, exit_code);
	} else {
		if (in->vms && in->fleet_ran)
			print_summary(cli, name, in->fleet, in->fleet_rc);
		else if (in->vms && cli->dry_run)
			dry_run_text(cli, in->fleet_options);
		print_cluster(cli, name, verb, in->version, cr, in->cluster_rc);
		if (in->secret_files)
			printf(
			    "  (%zu file%s the nginx configuration names belong%s in a Secret the "
			    "cluster must already have; not applied)\n",
			    in->secret_files, in->secret_files == 1 ? "" : "s",
			    in->secret_files == 1 ? "s" : "");
	}
	if (cr->insecure)
		fprintf(stderr,
		        "warning: the cluster's certificate was not verified "
		        "(insecure-skip-tls-verify in context %s)\n",
		        cr->context ? cr->context : "?");
	bool c = cli->color_err;
	if (in->fleet_ran && in->fleet_rc)
		fprintf(stderr, "%serror:%s VMs: %s\n", cli_c(c, C_RED), cli_c(c, C_RESET),
		        in->fleet_err->message);
	if (in->cluster_rc)
		fprintf(stderr, "%serror:%s cluster: %s\n", cli_c(c, C_RED), cli_c(c, C_RESET),
		        in->cluster_err->message);
	if (failed && in->vms) {
		bool vok = in->fleet_ran && !in->fleet_rc, kok = !in->cluster_rc;
		if (vok != kok)
			fprintf(stderr, "the %s side is on %s and was left as it is\n",
			        vok ? "VM" : "cluster", vok ? in->vms_version : in->version);
	}
	return exit_code;
}

/*
 * deploy and rollback --release, on the sides the flags and the plan leave. The
 * plan is loaded once. A signal stops both sides between stages.
 */
int cmd_release(mg_cli *cli, mg_fleet_op op, const char *version_arg, bool vms_only, bool k8s_only,
                bool accept_new, const char *reason, const char *context)
{
	char why[256];
	if (version_arg && mg_plan_check_version(version_arg, why, sizeof(why)))
		return cli_usage_error(cli, "--version: %s", why);
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_release *rel = NULL;
	int exit_code = EXIT_DONE;
	int rc = cli_load_plan(cli, &plan, mg_release_plan_needs(op, vms_only, version_arg), &err);
	if (rc)
		goto fail;
	const char *name = mg_plan_name(plan);
	mg_release_options ro = {.op = op,
	                         .vms_only = vms_only,
	                         .k8s_only = k8s_only,
	                         .version = version_arg,
	                         .accept_new_host_keys = accept_new,
	                         .context = context,
	                         .state_dir = cli_state_dir(cli, plan),
	                         .command = cli->command,
	                         .reason = reason,
	                         .dry_run = cli->dry_run,
	                         .cancel = &cli_signal,
	                         .progress = progress};
	progress_ctx pc = {.cli = cli,
	                   .plan = name,
	                   .verb = op == MG_FLEET_DEPLOY ? "deploy" : "rollback",
	                   .tty = !cli->dry_run && isatty(STDERR_FILENO) != 0};
	ro.progress_ud = &pc;
	/* a signal stops both sides between stages, each host's outcome journalled */
	if (!cli->dry_run && cli_signals_catch()) {
		rc = mg_error_set(&err, MG_EIO, "cannot install the signal handlers");
		goto fail;
	}
	if ((rc = mg_release_prepare(&rel, plan, &ro, &err)))
		goto fail;
	cli_print_diags(cli, &err); /* template warnings */
	mg_error_clear(&err);
	if ((rc = mg_release_begin(rel, &err)))
		goto fail;
	const mg_release_info *in = mg_release_info_get(rel);
	bool k8s = in->k8s;
	if (in->rebuilt && !cli->json)
		printf("%s: %s\n", name, in->rebuilt);
	pc.version = in->version;
	pc.vms = in->vms;
	pc.k8s = k8s;
	if (!k8s && cli->dry_run) {
		exit_code = report_fleet(cli, rel, 0, &err);
		goto out;
	}
	rc = mg_release_run(rel, &err);
	progress_clear(&pc);
	if (k8s && !in->fleet_ran && !in->cluster_ran)
		goto fail; /* nothing began: the record, the journal or the thread failed */
	if (!k8s) {
		if (!in->fleet->hosts)
			goto fail;
		/* the fleet's version is what the hosts run now, as read back */
		if (in->state_rc && !rc) {
			rc = in->state_rc;
			mg_error_set(&err, rc, "%s", in->state_err->message);
		} else if (in->state_rc) {
			fprintf(stderr, "error: %s\n", in->state_err->message);
		}
		exit_code = report_fleet(cli, rel, rc, &err);
	} else {
		exit_code = report_dual(cli, rel);
	}
	goto out;
fail:
	exit_code = cli_fail(cli, &err);
out:
	mg_release_free(rel);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}

int cmd_deploy(mg_cli *cli, int argc, char **argv)
{
	struct {
		bool vms_only, k8s_only, accept_new;
		const char *version, *reason, *context;
	} o = {0};
	const cli_opt opts[] = {CLI_FLAG("vms-only", &o.vms_only),
	                        CLI_FLAG("k8s-only", &o.k8s_only),
	                        CLI_STRING("version", &o.version),
	                        CLI_FLAG("accept-new-host-keys", &o.accept_new),
	                        CLI_STRING("reason", &o.reason),
	                        CLI_STRING("context", &o.context),
	                        {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	if (o.k8s_only && o.vms_only)
		return cli_usage_error(cli, "--vms-only and --k8s-only exclude each other; without "
		                            "either, deploy goes to every side the plan has");
	if (o.context && !*o.context)
		return cli_usage_error(cli, "--context needs a context name");
	if (o.vms_only && o.context)
		return cli_usage_error(cli, "--context names the cluster to use; --vms-only "
		                            "contacts only the VMs");
	return cmd_release(cli, MG_FLEET_DEPLOY, o.version, o.vms_only, o.k8s_only, o.accept_new,
	                   o.reason, o.context);
}
