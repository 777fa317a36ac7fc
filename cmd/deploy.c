/*
 * migrate deploy --vms-only: a release onto every VM of the fleet in rolling
 * batches; and the fleet half of `migrate rollback --release`, which goes
 * back to the release the fleet ran before. lib/fleet.c does the work; this
 * file checks the input before any host is contacted, holds the lock,
 * records the versions and reports per host.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "fleet.h"
#include "sha256.h"
#include "state.h"
#include "store.h"

/* Hosts in the text table before only the ones that did not succeed are listed (-v: all). */
#define TABLE_ALL_UP_TO 50
/* Progress redraws at most this often. */
#define PROGRESS_MS 100

enum { OPT_VMS_ONLY = 3300, OPT_K8S_ONLY, OPT_VERSION, OPT_ACCEPT_NEW, OPT_REASON };

static volatile sig_atomic_t fleet_signal;

static void on_signal(int sig)
{
	fleet_signal = sig;
}

typedef struct {
	mg_cli *cli;
	const char *plan;
	const char *verb; /* "deploy", "rollback" */
	const char *version;
	bool tty;
	int64_t last_ms;
	size_t ok, failed;
	bool drawn;
} progress_ctx;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One line on the terminal, rewritten in place; called under lib/fleet's mutex. */
static void progress(void *ud, const mg_fleet_progress *p)
{
	progress_ctx *c = ud;
	if (p->finished && !p->reverting) {
		c->ok += p->host->outcome == MG_FLEET_OK;
		c->failed += p->host->outcome == MG_FLEET_FAILED;
	}
	if (!c->tty)
		return;
	int64_t now = mono_ms();
	if (!p->finished && now - c->last_ms < PROGRESS_MS)
		return;
	c->last_ms = now;
	bool col = c->cli->color_err;
	fprintf(stderr,
	        "\r\033[K%s: %s %s  batch %zu/%zu  %zu/%zu done, %s%zu failed%s, %zu working  "
	        "%s%s %s%s",
	        c->plan, c->verb, c->version, p->batch + 1, p->run->nbatches, c->ok + c->failed,
	        p->run->nhosts, c->failed ? cli_c(col, C_RED) : "", c->failed,
	        c->failed ? cli_c(col, C_RESET) : "", p->running, cli_c(col, C_DIM),
	        p->host->host->name,
	        p->finished ? mg_fleet_outcome_name(p->host->outcome)
	                    : mg_fleet_stage_name(p->host->stage),
	        cli_c(col, C_RESET));
	fflush(stderr);
	c->drawn = true;
}

static void progress_clear(progress_ctx *c)
{
	if (c->drawn) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
		c->drawn = false;
	}
}

/* build.artifact with every ${version} replaced. */
static char *expand_version(const char *tmpl, const char *version)
{
	size_t n = 0, vl = strlen(version);
	for (const char *p = strstr(tmpl, "${version}"); p; p = strstr(p + 10, "${version}"))
		n++;
	char *out = malloc(strlen(tmpl) + n * vl + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = tmpl; *p;) {
		if (!strncmp(p, "${version}", 10)) {
			memcpy(o, version, vl);
			o += vl;
			p += 10;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

/* What can be checked without contacting a host: the artifact, the key, known_hosts. */
static int preflight(const mg_plan_vms *v, bool accept_new, const char **passphrase, mg_error *err)
{
	*passphrase = NULL;
	if (v->identity_file && v->passphrase_env) {
		const char *p = getenv(v->passphrase_env);
		if (!p || !*p)
			return mg_error_set(
			    err, MG_EINVALID,
			    "vms.passphrase_env: the environment variable %s is not set "
			    "or empty; it must hold the passphrase of %s",
			    v->passphrase_env, v->identity_file);
		*passphrase = p;
	}
	if (v->identity_file && access(v->identity_file, R_OK) != 0)
		return mg_error_set(err, MG_EINVALID, "vms.identity_file: cannot read %s: %s",
		                    v->identity_file, strerror(errno));
	if (!v->identity_file && !getenv("SSH_AUTH_SOCK"))
		return mg_error_set(err, MG_EINVALID,
		                    "the plan has no vms.identity_file, so ssh-agent is used, but "
		                    "SSH_AUTH_SOCK is not set: start an agent and add the key "
		                    "(ssh-add), or set vms.identity_file");
	if (!accept_new && access(v->known_hosts, F_OK) != 0)
		return mg_error_set(
		    err, MG_EINVALID,
		    "vms.known_hosts: %s does not exist, so no host key can be "
		    "checked; add the hosts' keys after checking their fingerprints "
		    "(ssh-keyscan -p PORT HOST >> %s), or pass "
		    "--accept-new-host-keys to record them on first contact "
		    "(see docs/vms.md)",
		    v->known_hosts, v->known_hosts);
	return 0;
}

static void fmt_secs(char *buf, size_t size, int64_t ms)
{
	if (ms < 10000)
		snprintf(buf, size, "%.2fs", (double)ms / 1000.0);
	else
		snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
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
		if (!all && h->outcome == MG_FLEET_OK) {
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
		snprintf(
		    line, sizeof(line),
		    "  %-*s  %-5zu  %s%-11s%s  %-8s  %-8s  %-12s  %-12s  %-7s  %s", (int)w,
		    h->host->name, h->batch + 1, cli_c(c, col), mg_fleet_outcome_name(h->outcome),
		    cli_c(c, C_RESET), ran ? mg_fleet_stage_name(h->stage) : "-", up,
		    ran && *h->previous ? h->previous : "-",
		    h->version_known && *h->version ? h->version : (ran ? "?" : "-"), t, h->error);
		size_t n = strlen(line);
		while (n && line[n - 1] == ' ')
			line[--n] = '\0';
		printf("%s\n", line);
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

static json_t *result_json(const mg_fleet_result *r)
{
	json_t *hosts = json_array();
	for (size_t i = 0; i < r->nhosts; i++)
		json_array_append_new(hosts, mg_fleet_host_to_json(&r->hosts[i]));
	json_t *j = json_pack(
	    "{s:I, s:I, s:I, s:b, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:i, "
	    "s:I}",
	    "batch_size", (json_int_t)r->batch_size, "batches", (json_int_t)r->nbatches,
	    "batches_run", (json_int_t)r->batches_run, "stopped", r->stopped, "stopped_batch",
	    r->stopped ? json_integer((json_int_t)r->stopped_batch + 1) : json_null(), "canceled",
	    r->canceled, "hosts_ok", (json_int_t)r->ok, "hosts_failed", (json_int_t)r->failed,
	    "hosts_rolled_back", (json_int_t)r->rolled_back, "hosts_not_run",
	    (json_int_t)r->not_run, "uploaded", (json_int_t)r->uploaded, "skipped_uploads",
	    (json_int_t)r->skipped_uploads, "max_concurrent", r->max_concurrent, "duration_ms",
	    (json_int_t)r->duration_ms);
	json_object_set_new(j, "hosts", hosts);
	return j;
}

static void dry_run_text(const mg_cli *cli, const mg_fleet_options *o, json_t *desc)
{
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
}

int cmd_fleet(mg_cli *cli, mg_fleet_op op, const char *version_arg, bool accept_new,
              const char *reason)
{
	char why[256];
	if (op == MG_FLEET_DEPLOY && mg_fleet_check_version(version_arg, why, sizeof(why)))
		return cli_usage_error(cli, "--version: %s", why);

	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_store *store = NULL;
	json_t *fleet = NULL, *doc = cli->json ? cli_doc(cli) : NULL;
	char *artifact = NULL;
	char sha[65] = "";
	mg_fleet_result res = {0};
	mg_state st;
	const char *passphrase = NULL;
	char version[MG_FLEET_VERSION_MAX + 1] = "";
	char from[sizeof(st.vms_version)] = "";
	int exit_code = EXIT_DONE;
	struct sigaction old_int, old_term, old_pipe;
	bool signals = false;

	int rc = cli_load_plan(
	    cli, &plan, op == MG_FLEET_DEPLOY ? MG_NEED_BUILD | MG_NEED_VMS : MG_NEED_VMS, &err);
	if (rc)
		goto fail;
	const mg_plan_vms *v = mg_plan_vms_section(plan);
	const char *name = mg_plan_name(plan);
	if (op == MG_FLEET_DEPLOY) {
		snprintf(version, sizeof(version), "%s", version_arg);
		const mg_plan_build *b = mg_plan_build_section(plan);
		if (!b->artifact) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "%s: `migrate deploy --vms-only` needs build.artifact, the "
			    "file unpacked on each VM (see docs/plan.md)",
			    mg_plan_file(plan));
			goto fail;
		}
		artifact = expand_version(b->artifact, version);
		if (!artifact) {
			rc = mg_error_set(&err, MG_ENOMEM, "out of memory");
			goto fail;
		}
		struct stat sb;
		errno = 0;
		if (stat(artifact, &sb) != 0 || !S_ISREG(sb.st_mode)) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "the artifact %s (build.artifact for version %s) %s; no host "
			    "was contacted",
			    artifact, version,
			    errno == ENOENT ? "does not exist" : "is not a readable file");
			goto fail;
		}
		rc = mg_sha256_file(sha, artifact, &err);
		if (rc) {
			rc = mg_error_set(&err, MG_EINVALID, "%s; no host was contacted",
			                  err.message);
			goto fail;
		}
	}
	rc = preflight(v, accept_new, &passphrase, &err);
	if (rc)
		goto fail;

	const char *dir = cli_state_dir(cli, plan);
	if (cli->dry_run) {
		/* change nothing: not even create the state directory */
		mg_state_init(&st, name);
		rc = mg_store_open_existing(&store, dir, name, &err);
		if (rc == MG_ENOTFOUND) {
			mg_error_clear(&err);
			rc = 0;
		} else if (!rc) {
			rc = mg_state_load(&st, store, &err);
		}
	} else {
		rc = mg_store_open(&store, dir, name, &err);
		if (!rc)
			rc = mg_store_lock(store, cli->command, &err);
		if (!rc)
			rc = mg_state_load(&st, store, &err);
		if (!rc)
			rc = mg_fleet_record_load(&fleet, store, &err);
	}
	if (rc)
		goto fail;
	snprintf(from, sizeof(from), "%s", st.vms_version);
	if (op == MG_FLEET_ROLLBACK) {
		if (!*st.vms_previous_version) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "nothing to roll back to: no release before %s is recorded for the VMs "
			    "(a rollback --release can only go back once, to the release the last "
			    "deploy replaced). Deploy the version you want with `migrate deploy "
			    "--vms-only --version V`",
			    *st.vms_version ? st.vms_version : "the first deploy");
			goto fail;
		}
		snprintf(version, sizeof(version), "%s", st.vms_previous_version);
		/* state.json is hand-editable: the name goes into remote paths */
		if (mg_fleet_check_version(version, why, sizeof(why))) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "state.json: versions.vms_previous is not a release name: %s", why);
			goto fail;
		}
	}

	mg_fleet_options o = {
	    .op = op,
	    .vms = v,
	    .version = version,
	    .artifact = artifact,
	    .artifact_sha256 = op == MG_FLEET_DEPLOY ? sha : NULL,
	    .accept_new_host_keys = accept_new,
	    .passphrase = passphrase,
	    .cancel = &fleet_signal,
	    .store = cli->dry_run ? NULL : store,
	    .fleet = fleet,
	    .command = cli->command,
	    .reason = reason,
	    .from_version = *from ? from : NULL,
	};
	if (cli->dry_run) {
		json_t *desc = mg_fleet_describe(&o);
		if (doc) {
			json_object_set_new(doc, "plan", json_string(name));
			json_object_set_new(doc, "dry_run", json_true());
			json_object_set_new(doc, "op", json_string(mg_fleet_op_name(op)));
			json_object_set_new(doc, "version", json_string(version));
			json_object_set_new(doc, "from_version",
			                    *from ? json_string(from) : json_null());
			json_object_set_new(doc, "artifact",
			                    artifact ? json_string(artifact) : json_null());
			json_object_set_new(doc, "sha256", *sha ? json_string(sha) : json_null());
			size_t bs = mg_plan_vms_batch_size(v);
			json_object_set_new(doc, "batch_size", json_integer((json_int_t)bs));
			json_object_set_new(
			    doc, "batches",
			    json_integer((json_int_t)mg_fleet_batch_count(v->nhosts, bs)));
			json_object_set_new(doc, "parallel", json_integer(v->parallel));
			json_object_set_new(doc, "max_failures", json_integer(v->max_failures));
			json_object_set_new(doc, "hosts", desc);
			exit_code = cli_doc_emit(cli, doc, EXIT_DONE);
			doc = NULL;
		} else {
			dry_run_text(cli, &o, desc);
			json_decref(desc);
		}
		goto out;
	}

	progress_ctx pc = {cli, name, mg_fleet_op_name(op), version, isatty(STDERR_FILENO) != 0};
	o.progress = progress;
	o.progress_ud = &pc;
	/* a signal stops the run between stages (lib/fleet looks at the flag); the default
	 * action would leave hosts half switched with nothing journalled */
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	/* a host that drops its connection must fail that host, not kill the process */
	struct sigaction ign = {0};
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old_pipe);
	signals = true;

	int run_rc = mg_fleet_run(&res, &o, &err);
	progress_clear(&pc);
	if (res.hosts) {
		/* the fleet's version is what the hosts run now, as read back */
		size_t on = mg_fleet_count_on(&res, version);
		bool changed = false;
		if (op == MG_FLEET_DEPLOY && on > 0 && strcmp(st.vms_version, version) != 0) {
			snprintf(st.vms_previous_version, sizeof(st.vms_previous_version), "%s",
			         st.vms_version);
			snprintf(st.vms_version, sizeof(st.vms_version), "%s", version);
			changed = true;
		} else if (op == MG_FLEET_ROLLBACK && on == res.nhosts) {
			/* gone back once; going back again would be a guess */
			snprintf(st.vms_version, sizeof(st.vms_version), "%s", version);
			st.vms_previous_version[0] = '\0';
			changed = true;
		}
		mg_error serr = MG_ERROR_INIT;
		if (changed && mg_state_save(store, &st, &serr) != 0) {
			if (!run_rc) {
				run_rc = serr.code;
				mg_error_clear(&err);
				mg_error_set(&err, serr.code, "%s", serr.message);
			} else {
				fprintf(stderr, "error: %s\n", serr.message);
			}
		}
		mg_error_clear(&serr);
	}
	rc = run_rc;
	if (!res.hosts)
		goto fail;

	if (run_rc == MG_ECANCELED)
		exit_code = fleet_signal == SIGINT ? 130 : 143;
	else
		exit_code = cli_exit_code(run_rc);
	if (doc) {
		json_object_set_new(doc, "plan", json_string(name));
		json_object_set_new(doc, "op", json_string(mg_fleet_op_name(op)));
		json_object_set_new(doc, "version", json_string(version));
		json_object_set_new(doc, "from_version", *from ? json_string(from) : json_null());
		json_object_set_new(doc, "artifact",
		                    artifact ? json_string(artifact) : json_null());
		json_object_set_new(doc, "sha256", *sha ? json_string(sha) : json_null());
		json_t *rj = result_json(&res);
		json_object_update(doc, rj);
		json_decref(rj);
		json_object_set_new(doc, "fleet_version",
		                    *st.vms_version ? json_string(st.vms_version) : json_null());
		json_object_set_new(doc, "fleet_previous_version",
		                    *st.vms_previous_version ? json_string(st.vms_previous_version)
		                                             : json_null());
		if (run_rc) {
			json_t *e = json_pack("{s:s, s:s}", "kind", mg_error_name(run_rc),
			                      "message", err.message);
			json_object_set_new(e, "diagnostics", cli_diags_json(&err, MG_SEV_ERROR));
			json_object_set_new(doc, "error", e);
		}
	} else {
		print_summary(cli, name, &res, run_rc);
	}
	if (run_rc) {
		bool c = cli->color_err;
		fprintf(stderr, "%serror:%s %s\n", cli_c(c, C_RED), cli_c(c, C_RESET), err.message);
	}
	if (doc) {
		exit_code = cli_doc_emit(cli, doc, exit_code);
		doc = NULL;
	}
	goto out;

fail:
	json_decref(doc);
	doc = NULL;
	exit_code = cli_fail(cli, &err);
out:
	if (signals) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		sigaction(SIGPIPE, &old_pipe, NULL);
	}
	json_decref(doc);
	json_decref(fleet);
	mg_fleet_result_free(&res);
	free(artifact);
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}

typedef struct {
	bool vms_only, k8s_only, accept_new;
	const char *version, *reason;
} deploy_opts;

static int deploy_opt(mg_cli *cli, int opt, const char *arg, void *ud)
{
	(void)cli;
	deploy_opts *o = ud;
	switch (opt) {
	case OPT_VMS_ONLY:
		o->vms_only = true;
		break;
	case OPT_K8S_ONLY:
		o->k8s_only = true;
		break;
	case OPT_VERSION:
		o->version = arg;
		break;
	case OPT_ACCEPT_NEW:
		o->accept_new = true;
		break;
	case OPT_REASON:
		o->reason = arg;
		break;
	}
	return 0;
}

int cmd_deploy(mg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"vms-only", no_argument, NULL, OPT_VMS_ONLY},
	    {"k8s-only", no_argument, NULL, OPT_K8S_ONLY},
	    {"version", required_argument, NULL, OPT_VERSION},
	    {"accept-new-host-keys", no_argument, NULL, OPT_ACCEPT_NEW},
	    {"reason", required_argument, NULL, OPT_REASON},
	    {NULL, 0, NULL, 0}};
	deploy_opts o = {0};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "", deploy_opt, &o, 0, &exit_code) < 0)
		return exit_code;
	if (o.k8s_only)
		return cli_usage_error(cli,
		                       "--k8s-only: deploying to the cluster is not in this "
		                       "release; `migrate deploy --vms-only` deploys to the VMs");
	if (!o.vms_only)
		return cli_usage_error(cli,
		                       "deploy needs --vms-only: this release deploys to the VM "
		                       "fleet only (the cluster is not in this release)");
	if (!o.version)
		return cli_usage_error(cli, "deploy needs --version V: the release to deploy");
	return cmd_fleet(cli, MG_FLEET_DEPLOY, o.version, o.accept_new, o.reason);
}
