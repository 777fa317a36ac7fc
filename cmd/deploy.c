/*
 * migrate deploy --vms-only: a release onto every VM of the fleet in rolling
 * batches; and the fleet half of `migrate rollback --release`, which goes
 * back to the release the fleet ran before. lib/fleet/fleet.c does the work; this
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

#include <git2.h>
#include <pthread.h>

#include "clock.h"
#include "cluster.h"
#include "cmd.h"
#include "fleet.h"
#include "http.h"
#include "secret.h"
#include "sha256.h"
#include "state.h"
#include "store.h"

/* Hosts in the text table before only the ones that did not succeed are listed (-v: all). */
#define TABLE_ALL_UP_TO 50
/* Progress redraws at most this often. */
#define PROGRESS_MS 100

enum { OPT_VMS_ONLY = 3300, OPT_K8S_ONLY, OPT_VERSION, OPT_ACCEPT_NEW, OPT_REASON, OPT_CONTEXT };

static mg_cancel fleet_signal;

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
	int64_t now = mg_clock_ms();
	if (!p->finished && now - c->last_ms < PROGRESS_MS)
		return;
	c->last_ms = now;
	bool col = c->cli->color_err;
	fprintf(stderr,
	        "%s%s: %s %s  batch %zu/%zu  %zu/%zu done, %s%zu failed%s, %zu working  "
	        "%s%s %s%s",
	        cli_c(true, C_CLEAR_LINE), c->plan, c->verb, c->version, p->batch + 1,
	        p->run->nbatches, c->ok + c->failed, p->run->nhosts,
	        c->failed ? cli_c(col, C_RED) : "", c->failed, c->failed ? cli_c(col, C_RESET) : "",
	        p->running, cli_c(col, C_DIM), p->host->host->name,
	        p->finished ? mg_fleet_outcome_name(p->host->outcome)
	                    : mg_fleet_stage_name(p->host->stage),
	        cli_c(col, C_RESET));
	fflush(stderr);
	c->drawn = true;
}

static void progress_clear(progress_ctx *c)
{
	if (c->drawn) {
		fputs(cli_c(true, C_CLEAR_LINE), stderr);
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
		mg_secret_register(p); /* masked wherever a host or libssh2 echoes it */
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

/*
 * What the fleet side checks before any host is contacted: the artifact of
 * version exists (*artifact, *sha filled for a deploy), the key, known_hosts.
 */
static int fleet_prepare(const mg_plan *plan, mg_fleet_op op, const char *version, bool accept_new,
                         char **artifact_out, char sha[65], const char **passphrase, mg_error *err)
{
	const mg_plan_vms *v = mg_plan_vms_section(plan);
	*artifact_out = NULL;
	if (op == MG_FLEET_DEPLOY) {
		const mg_plan_build *b = mg_plan_build_section(plan);
		if (!b->artifact)
			return mg_error_set(err, MG_EINVALID,
			                    "%s: deploying to the VMs needs build.artifact, the "
			                    "file unpacked on each VM (see docs/plan.md)",
			                    mg_plan_file(plan));
		char *artifact = expand_version(b->artifact, version);
		if (!artifact)
			return mg_error_oom(err);
		*artifact_out = artifact;
		struct stat sb;
		errno = 0;
		if (stat(artifact, &sb) != 0 || !S_ISREG(sb.st_mode))
			return mg_error_set(
			    err, MG_EINVALID,
			    "the artifact %s (build.artifact for version %s) %s; no host "
			    "was contacted",
			    artifact, version,
			    errno == ENOENT ? "does not exist" : "is not a readable file");
		int rc = mg_sha256_file(sha, artifact, err);
		if (rc)
			return mg_error_set(err, MG_EINVALID, "%s; no host was contacted",
			                    err->message);
	}
	return preflight(v, accept_new, passphrase, err);
}

/*
 * Opens the plan's state and loads it (and, with fleet, the fleet record). A dry
 * run changes nothing, not even creating the state directory: no store yet is a
 * fresh state and *store stays NULL.
 */
static int open_state(const mg_cli *cli, const char *dir, const char *name, mg_store **store,
                      mg_state *st, json_t **fleet, mg_error *err)
{
	int rc;
	if (cli->dry_run) {
		mg_state_init(st, name);
		rc = mg_store_open_existing(store, dir, name, err);
		if (rc == MG_ENOTFOUND) {
			mg_error_clear(err);
			rc = 0;
		} else if (!rc) {
			rc = mg_state_load(st, *store, err);
		}
		return rc;
	}
	rc = mg_store_open(store, dir, name, err);
	if (!rc)
		rc = mg_store_lock(*store, cli->command, err);
	if (!rc)
		rc = mg_state_load(st, *store, err);
	if (!rc && fleet)
		rc = mg_fleet_record_load(fleet, *store, err);
	return rc;
}

/* The VM side's release to go back to; state.json is hand-editable and the name goes
 * into remote paths. */
static int vms_previous_version(char *out, size_t size, const mg_state *st, mg_error *err)
{
	char why[256];
	snprintf(out, size, "%s", st->vms_previous_version);
	if (mg_fleet_check_version(out, why, sizeof(why)))
		return mg_error_set(err, MG_EINVALID,
		                    "state.json: versions.vms_previous is not a release name: %s",
		                    why);
	return 0;
}

/*
 * A signal stops the run between stages (lib/fleet looks at the flag); the default
 * action would leave hosts half switched with nothing journalled. A host that drops
 * its connection must fail that host, not kill the process: SIGPIPE is ignored.
 */
static void signals_install(struct sigaction *old_int, struct sigaction *old_term,
                            struct sigaction *old_pipe)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, old_int);
	sigaction(SIGTERM, &sa, old_term);
	struct sigaction ign = {0};
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, old_pipe);
}

static void signals_restore(const struct sigaction *old_int, const struct sigaction *old_term,
                            const struct sigaction *old_pipe)
{
	sigaction(SIGINT, old_int, NULL);
	sigaction(SIGTERM, old_term, NULL);
	sigaction(SIGPIPE, old_pipe, NULL);
}

/*
 * The VMs' version in the state after a fleet run, as read back from the hosts: a
 * deploy that reached any host moves it on; a rollback counts once every host is
 * back (gone back once; going back again would be a guess). Returns whether st
 * changed.
 */
static bool vms_state_update(mg_state *st, mg_fleet_op op, const mg_fleet_result *r,
                             const char *version)
{
	size_t on = mg_fleet_count_on(r, version);
	if (op == MG_FLEET_DEPLOY && on > 0 && strcmp(st->vms_version, version) != 0) {
		snprintf(st->vms_previous_version, sizeof(st->vms_previous_version), "%s",
		         st->vms_version);
		snprintf(st->vms_version, sizeof(st->vms_version), "%s", version);
		return true;
	}
	if (op == MG_FLEET_ROLLBACK && on == r->nhosts) {
		snprintf(st->vms_version, sizeof(st->vms_version), "%s", version);
		st->vms_previous_version[0] = '\0';
		return true;
	}
	return false;
}

/*
 * The fleet run of `--vms-only` and of a dual run alike: a dry run gets no store (it
 * journals nothing), a rollback has no artifact to check.
 */
static mg_fleet_options fleet_options(const mg_cli *cli, mg_fleet_op op, const mg_plan *plan,
                                      const char *version, const char *artifact, const char *sha,
                                      bool accept_new, const char *passphrase, mg_store *store,
                                      json_t *fleet, const char *reason, const char *from)
{
	return (mg_fleet_options){
	    .op = op,
	    .vms = mg_plan_vms_section(plan),
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
}

/* What a fleet run is about, the same keys in --json for `--vms-only` and a dual run. */
static void fleet_release_json(json_t *o, const char *version, const char *from,
                               const char *artifact, const char *sha)
{
	json_object_set_new(o, "version", json_string(version));
	json_object_set_new(o, "from_version", *from ? json_string(from) : json_null());
	json_object_set_new(o, "artifact", artifact ? json_string(artifact) : json_null());
	json_object_set_new(o, "sha256", *sha ? json_string(sha) : json_null());
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
	if (op == MG_FLEET_DEPLOY)
		snprintf(version, sizeof(version), "%s", version_arg);
	rc = fleet_prepare(plan, op, version, accept_new, &artifact, sha, &passphrase, &err);
	if (rc)
		goto fail;

	rc = open_state(cli, cli_state_dir(cli, plan), name, &store, &st, &fleet, &err);
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
		if ((rc = vms_previous_version(version, sizeof(version), &st, &err)))
			goto fail;
	}

	mg_fleet_options o = fleet_options(cli, op, plan, version, artifact, sha, accept_new,
	                                   passphrase, store, fleet, reason, from);
	if (cli->dry_run) {
		json_t *desc = mg_fleet_describe(&o);
		if (doc) {
			json_object_set_new(doc, "plan", json_string(name));
			json_object_set_new(doc, "dry_run", json_true());
			json_object_set_new(doc, "op", json_string(mg_fleet_op_name(op)));
			fleet_release_json(doc, version, from, artifact, sha);
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
	signals_install(&old_int, &old_term, &old_pipe);
	signals = true;

	int run_rc = mg_fleet_run(&res, &o, &err);
	progress_clear(&pc);
	if (res.hosts) {
		/* the fleet's version is what the hosts run now, as read back */
		bool changed = vms_state_update(&st, op, &res, version);
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
		fleet_release_json(doc, version, from, artifact, sha);
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
	if (signals)
		signals_restore(&old_int, &old_term, &old_pipe);
	json_decref(doc);
	json_decref(fleet);
	mg_fleet_result_free(&res);
	free(artifact);
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}

/* --- both sides: the fleet and the cluster ---------------------------------------------- */

/* The TTY line of a dual run: both sides' progress, redrawn by whichever side moved. */
typedef struct {
	pthread_mutex_t mu;
	mg_cli *cli;
	const char *plan, *verb, *version;
	bool tty, drawn, vms, k8s;
	int64_t last_ms;
	size_t batch, nbatches, nhosts, ok, failed, running;
	char k8s_msg[200];
} dual_progress;

/* Called with dp->mu held. */
static void dual_draw(dual_progress *dp, bool force)
{
	if (!dp->tty)
		return;
	int64_t now = mg_clock_ms();
	if (!force && now - dp->last_ms < PROGRESS_MS)
		return;
	dp->last_ms = now;
	char vm[160] = "", k8[240] = "";
	if (dp->vms)
		snprintf(vm, sizeof(vm), "  VMs: batch %zu/%zu, %zu/%zu done, %zu failed",
		         dp->batch, dp->nbatches, dp->ok + dp->failed, dp->nhosts, dp->failed);
	if (dp->k8s)
		snprintf(k8, sizeof(k8), "  cluster: %s", *dp->k8s_msg ? dp->k8s_msg : "starting");
	fprintf(stderr, "%s%s: %s %s%s%s", cli_c(true, C_CLEAR_LINE), dp->plan, dp->verb,
	        dp->version, vm, k8);
	fflush(stderr);
	dp->drawn = true;
}

static void dual_fleet_progress(void *ud, const mg_fleet_progress *p)
{
	dual_progress *dp = ud;
	pthread_mutex_lock(&dp->mu);
	if (p->finished && !p->reverting) {
		dp->ok += p->host->outcome == MG_FLEET_OK;
		dp->failed += p->host->outcome == MG_FLEET_FAILED;
	}
	dp->batch = p->batch + 1;
	dp->nbatches = p->run->nbatches;
	dp->nhosts = p->run->nhosts;
	dp->running = p->running;
	dual_draw(dp, p->finished);
	pthread_mutex_unlock(&dp->mu);
}

static void dual_cluster_progress(void *ud, const mg_cluster_object *obj, const char *msg)
{
	dual_progress *dp = ud;
	pthread_mutex_lock(&dp->mu);
	snprintf(dp->k8s_msg, sizeof(dp->k8s_msg), "%s %s: %s", obj->kind ? obj->kind : "?",
	         obj->name ? obj->name : "?", msg);
	dual_draw(dp, false);
	pthread_mutex_unlock(&dp->mu);
}

static void dual_clear(dual_progress *dp)
{
	pthread_mutex_lock(&dp->mu);
	if (dp->drawn) {
		fputs(cli_c(true, C_CLEAR_LINE), stderr);
		fflush(stderr);
		dp->drawn = false;
	}
	pthread_mutex_unlock(&dp->mu);
}

typedef struct {
	mg_kube_client *client;
	mg_cluster_options o;
	mg_cluster_result res;
	mg_error err;
	int rc;
	bool ran;
} cluster_job;

static void *cluster_thread(void *ud)
{
	cluster_job *j = ud;
	j->rc = mg_cluster_apply(&j->res, j->client, &j->o, &j->err);
	j->ran = true;
	return NULL;
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
		size_t n = strlen(line);
		while (n && line[n - 1] == ' ')
			line[--n] = '\0';
		printf("%s\n", line);
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

static json_t *error_json(int rc, const mg_error *err)
{
	json_t *e = json_pack("{s:s, s:s}", "kind", mg_error_name(rc), "message", err->message);
	json_object_set_new(e, "diagnostics", cli_diags_json(err, MG_SEV_ERROR));
	return e;
}

/* git rev-parse --short HEAD of build.repo, refusing a tree with uncommitted changes. */
int cli_release_version(char *out, size_t size, const mg_plan *plan, mg_error *err)
{
	const mg_plan_build *b = mg_plan_build_section(plan);
	if (!b || !b->repo)
		return mg_error_set(err, MG_EINVALID,
		                    "--version V is required: the plan has no build.repo to take "
		                    "the release from (its HEAD commit)");
	git_libgit2_init();
	git_repository *repo = NULL;
	git_object *head = NULL;
	git_status_list *st = NULL;
	git_buf shortid = {0};
	int rc = 0;
	if (git_repository_open(&repo, b->repo) != 0 ||
	    git_revparse_single(&head, repo, "HEAD^{commit}") != 0 ||
	    git_object_short_id(&shortid, head) != 0) {
		const git_error *ge = git_error_last();
		rc = mg_error_set(err, MG_EINVALID, "build.repo %s: cannot read HEAD: %s", b->repo,
		                  ge && ge->message ? ge->message : "unknown error");
		goto out;
	}
	git_status_options so = GIT_STATUS_OPTIONS_INIT;
	/* untracked files are not part of a build from the commit; changes to tracked ones are */
	so.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	if (git_status_list_new(&st, repo, &so) != 0) {
		const git_error *ge = git_error_last();
		rc = mg_error_set(err, MG_EINVALID, "build.repo %s: cannot read its status: %s",
		                  b->repo, ge && ge->message ? ge->message : "unknown error");
		goto out;
	}
	size_t dirty = git_status_list_entrycount(st);
	if (dirty) {
		const git_status_entry *e = git_status_byindex(st, 0);
		const char *path = e->index_to_workdir && e->index_to_workdir->new_file.path
		                       ? e->index_to_workdir->new_file.path
		                   : e->head_to_index ? e->head_to_index->new_file.path
		                                      : "?";
		rc =
		    mg_error_set(err, MG_EINVALID,
		                 "build.repo %s has %zu uncommitted change%s (%s%s): the release "
		                 "would not be the commit %s names. Commit them, or pass --version "
		                 "V",
		                 b->repo, dirty, dirty == 1 ? "" : "s", path,
		                 dirty > 1 ? ", ..." : "", shortid.ptr);
		goto out;
	}
	snprintf(out, size, "%s", shortid.ptr);
out:
	git_buf_dispose(&shortid);
	git_status_list_free(st);
	git_object_free(head);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

/*
 * deploy (both sides, or --k8s-only) and rollback --release with a cluster.
 * The fleet runs in this thread and the cluster in its own; each side's
 * failure leaves the other as it is. Journal and state are written only
 * from this thread (lib/fleet journals from here too), the manifests of a
 * release before anything is applied.
 */
int cmd_release(mg_cli *cli, mg_fleet_op op, const char *version_arg, bool vms_only, bool k8s_only,
                bool accept_new, const char *reason, const char *context)
{
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	int exit_code = EXIT_DONE;
	char why[256];
	if (version_arg && mg_fleet_check_version(version_arg, why, sizeof(why)))
		return cli_usage_error(cli, "--version: %s", why);
	int rc = cli_load_plan(cli, &plan, MG_NEED_VMS_OR_KUBERNETES, &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
		mg_error_clear(&err);
		return exit_code;
	}
	bool has_vms = mg_plan_vms_section(plan) != NULL;
	bool has_k8s = mg_plan_kubernetes_section(plan) != NULL;
	bool vms = vms_only || (!k8s_only && has_vms);
	bool k8s = k8s_only || (!vms_only && has_k8s);
	if (vms && !k8s && context) {
		mg_error_set(
		    &err, MG_EINVALID,
		    "--context names the cluster to use, but this %s contacts only the VMs%s",
		    op == MG_FLEET_DEPLOY ? "deploy" : "rollback",
		    vms_only ? " (--vms-only)" : ": the plan has no kubernetes section");
		exit_code = cli_fail(cli, &err);
		goto end_early;
	}
	if (vms && !k8s) {
		/* the fleet alone: exactly `--vms-only` */
		char v[MG_FLEET_VERSION_MAX + 1] = "";
		if (op == MG_FLEET_DEPLOY && !version_arg) {
			rc = cli_release_version(v, sizeof(v), plan, &err);
			if (rc) {
				exit_code = cli_fail(cli, &err);
				goto end_early;
			}
		}
		mg_plan_free(plan);
		return cmd_fleet(cli, op, version_arg ? version_arg : v, accept_new, reason);
	}
	if (k8s_only && !has_k8s) {
		mg_error_set(&err, MG_EINVALID, "--k8s-only: %s has no kubernetes section",
		             mg_plan_file(plan));
		exit_code = cli_fail(cli, &err);
		goto end_early;
	}
	goto begin;
end_early:
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;

begin:;
	const char *name = mg_plan_name(plan);
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(plan);
	const char *verb = op == MG_FLEET_DEPLOY ? "deploy" : "rollback";
	mg_store *store = NULL;
	mg_kube_client *client = NULL;
	json_t *objects = NULL, *fleet = NULL, *doc = cli->json ? cli_doc(cli) : NULL;
	char *artifact = NULL;
	char sha[65] = "";
	const char *passphrase = NULL;
	mg_fleet_result fres = {0};
	cluster_job job = {0};
	job.err = (mg_error)MG_ERROR_INIT;
	mg_error ferr = MG_ERROR_INIT;
	int frc = 0;
	bool fleet_ran = false, signals = false;
	mg_state st;
	char version[MG_FLEET_VERSION_MAX + 1] = "", vms_version[MG_FLEET_VERSION_MAX + 1] = "";
	char from_vms[sizeof(st.vms_version)] = "", from_k8s[sizeof(st.vms_version)] = "";
	struct sigaction old_int, old_term, old_pipe;
	size_t secret_files = 0;

	if (op == MG_FLEET_DEPLOY) {
		if (version_arg)
			snprintf(version, sizeof(version), "%s", version_arg);
		else if ((rc = cli_release_version(version, sizeof(version), plan, &err)))
			goto fail;
		snprintf(vms_version, sizeof(vms_version), "%s", version);
		if (!mg_plan_build_section(plan)) {
			rc = mg_error_set(&err, MG_EINVALID,
			                  "%s: deploy needs a build section (build.image for the "
			                  "cluster%s)",
			                  mg_plan_file(plan),
			                  vms ? ", build.artifact for the VMs" : "");
			goto fail;
		}
		if (vms && (rc = fleet_prepare(plan, op, version, accept_new, &artifact, sha,
		                               &passphrase, &err)))
			goto fail;
		rc = mg_cluster_render(&objects, plan, version, &secret_files, &err);
		if (rc)
			goto fail;
		cli_print_diags(cli, &err); /* template warnings */
		mg_error_clear(&err);
	} else if (vms && (rc = fleet_prepare(plan, op, NULL, accept_new, &artifact, sha,
	                                      &passphrase, &err))) {
		goto fail;
	}
	/* a kubeconfig that does not resolve is bad input, found before anything is touched */
	rc = mg_cluster_connect(&client, plan, context, &fleet_signal, &err);
	if (rc)
		goto fail;

	const char *dir = cli_state_dir(cli, plan);
	rc = open_state(cli, dir, name, &store, &st, vms ? &fleet : NULL, &err);
	if (rc)
		goto fail;
	snprintf(from_vms, sizeof(from_vms), "%s", st.vms_version);
	snprintf(from_k8s, sizeof(from_k8s), "%s", st.kubernetes_version);

	if (op == MG_FLEET_ROLLBACK) {
		if (vms && !*st.vms_previous_version) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "nothing to roll back to on the VMs: no release before %s is "
			    "recorded (--k8s-only rolls back the cluster alone)",
			    *st.vms_version ? st.vms_version : "the first deploy");
			goto fail;
		}
		if (!*st.kubernetes_previous_version) {
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "nothing to roll back to on the cluster: no release before "
			    "%s is recorded%s",
			    *st.kubernetes_version ? st.kubernetes_version : "the first deploy",
			    vms ? " (--vms-only rolls back the VMs alone)" : "");
			goto fail;
		}
		if (vms && (rc = vms_previous_version(vms_version, sizeof(vms_version), &st, &err)))
			goto fail;
		snprintf(version, sizeof(version), "%s", st.kubernetes_previous_version);
		rc = store ? mg_cluster_record_load(&objects, store, version, &err) : MG_ENOTFOUND;
		if (rc == MG_ENOTFOUND) {
			mg_error_clear(&err);
			rc = mg_error_set(
			    &err, MG_EINVALID,
			    "the manifests of %s are not recorded in %s/manifests; deploy "
			    "it again with `migrate deploy --k8s-only --version %s`",
			    version, store ? mg_store_path(store) : dir, version);
		}
		if (rc)
			goto fail;
	}

	mg_fleet_options fo = fleet_options(cli, op, plan, vms_version, artifact, sha, accept_new,
	                                    passphrase, store, fleet, reason, from_vms);
	job.client = client;
	job.o = (mg_cluster_options){.objects = objects,
	                             .force = k->force_conflicts,
	                             .dry_run = cli->dry_run,
	                             .rollout_timeout_ms = k->rollout_timeout_ms,
	                             .cancel = &fleet_signal};

	dual_progress dp = {.cli = cli,
	                    .plan = name,
	                    .verb = verb,
	                    .version = version,
	                    .tty = !cli->dry_run && isatty(STDERR_FILENO) != 0,
	                    .vms = vms,
	                    .k8s = true};
	pthread_mutex_init(&dp.mu, NULL);
	job.o.progress = dual_cluster_progress;
	job.o.progress_ud = &dp;
	fo.progress = dual_fleet_progress;
	fo.progress_ud = &dp;

	if (!cli->dry_run) {
		signals_install(&old_int, &old_term, &old_pipe);
		signals = true;
		/* what a rollback to this release re-applies, kept before any of it is sent */
		if (op == MG_FLEET_DEPLOY &&
		    (rc = mg_cluster_record_save(store, version, objects, &err)))
			goto fail;
		rc = mg_cluster_journal(store, cli->command, "cluster-intent", from_k8s, version,
		                        NULL, json_array_size(objects), reason, &err);
		if (rc)
			goto fail;
	}

	/* both sides at once: the cluster in its own thread, the fleet in this one */
	pthread_t th;
	mg_error terr = MG_ERROR_INIT;
	if ((rc = mg_http_global_init(&terr)) != 0) {
		mg_error_set(&err, rc, "%s", terr.message);
		mg_error_clear(&terr);
		goto fail;
	}
	if (vms && !cli->dry_run) {
		if (pthread_create(&th, NULL, cluster_thread, &job) != 0) {
			rc = mg_error_set(&err, MG_ERROR, "cannot start a thread: %s",
			                  strerror(errno));
			goto fail;
		}
		frc = mg_fleet_run(&fres, &fo, &ferr);
		fleet_ran = true;
		pthread_join(th, NULL);
	} else {
		cluster_thread(&job);
	}
	dual_clear(&dp);
	pthread_mutex_destroy(&dp.mu);

	/* the state: what each side runs now */
	bool changed = false;
	if (!cli->dry_run && fleet_ran && fres.hosts)
		changed = vms_state_update(&st, op, &fres, vms_version);
	if (!cli->dry_run && job.ran) {
		/* once anything of V is on the cluster it runs V, healthy or not: the state says
		 * which, and only a release that rolled out becomes the one a rollback goes to */
		bool applied = job.res.created + job.res.configured + job.res.unchanged > 0;
		if (applied) {
			if (op == MG_FLEET_DEPLOY && strcmp(st.kubernetes_version, version)) {
				if (strcmp(st.kubernetes_rollout, "failed") != 0)
					snprintf(st.kubernetes_previous_version,
					         sizeof(st.kubernetes_previous_version), "%s",
					         st.kubernetes_version);
			} else if (op == MG_FLEET_ROLLBACK && !job.rc) {
				st.kubernetes_previous_version[0] = '\0';
			}
			/* a failed rollback keeps kubernetes_previous: running it again retries */
			snprintf(st.kubernetes_version, sizeof(st.kubernetes_version), "%s",
			         version);
			snprintf(st.kubernetes_rollout, sizeof(st.kubernetes_rollout), "%s",
			         job.rc ? "failed" : "ok");
			mg_state_set_kubernetes_error(&st, job.rc ? job.err.message : NULL);
			changed = true;
		}
		mg_error jerr = MG_ERROR_INIT;
		/* "to" is what the cluster runs now, as in state.json: V once any of it applied */
		if (mg_cluster_journal(store, cli->command, "cluster-result", from_k8s,
		                       applied ? version : from_k8s, &job.res,
		                       json_array_size(objects), job.rc ? job.err.message : reason,
		                       &jerr))
			fprintf(stderr, "error: %s\n", jerr.message);
		mg_error_clear(&jerr);
	}
	if (changed) {
		mg_error serr = MG_ERROR_INIT;
		if (mg_state_save(store, &st, &serr)) {
			fprintf(stderr, "error: %s\n", serr.message);
			if (!frc && !job.rc)
				exit_code = cli_exit_code(serr.code);
		}
		mg_error_clear(&serr);
	}

	bool failed = (fleet_ran && frc) || job.rc;
	if (fleet_signal && failed)
		exit_code = fleet_signal == SIGINT ? 130 : 143;
	else if (failed)
		exit_code = EXIT_FAILED;

	if (doc) {
		json_object_set_new(doc, "plan", json_string(name));
		json_object_set_new(doc, "op", json_string(mg_fleet_op_name(op)));
		json_object_set_new(doc, "version", json_string(version));
		json_object_set_new(doc, "dry_run", json_boolean(cli->dry_run));
		json_t *vj = json_null();
		if (vms && fleet_ran) {
			vj = result_json(&fres);
			json_object_set_new(vj, "ok", json_boolean(!frc));
			fleet_release_json(vj, vms_version, from_vms, artifact, sha);
			json_object_set_new(vj, "error",
			                    frc ? error_json(frc, &ferr) : json_null());
		} else if (vms && cli->dry_run) {
			vj = json_pack("{s:b, s:s, s:o}", "dry_run", 1, "version", vms_version,
			               "hosts", mg_fleet_describe(&fo));
		}
		json_object_set_new(doc, "vms", vj);
		json_t *kj = mg_cluster_result_to_json(&job.res);
		json_object_set_new(kj, "ok", json_boolean(!job.rc));
		json_object_set_new(kj, "version", json_string(version));
		json_object_set_new(kj, "from_version",
		                    *from_k8s ? json_string(from_k8s) : json_null());
		json_object_set_new(kj, "secret_files", json_integer((json_int_t)secret_files));
		json_object_set_new(kj, "error",
		                    job.rc ? error_json(job.rc, &job.err) : json_null());
		json_object_set_new(doc, "kubernetes", kj);
		json_object_set_new(
		    doc, "versions",
		    json_pack(
		        "{s:o, s:o, s:o, s:o, s:o, s:o}", "vms",
		        *st.vms_version ? json_string(st.vms_version) : json_null(), "vms_previous",
		        *st.vms_previous_version ? json_string(st.vms_previous_version)
		                                 : json_null(),
		        "kubernetes",
		        *st.kubernetes_version ? json_string(st.kubernetes_version) : json_null(),
		        "kubernetes_previous",
		        *st.kubernetes_previous_version
		            ? json_string(st.kubernetes_previous_version)
		            : json_null(),
		        "kubernetes_rollout",
		        *st.kubernetes_rollout ? json_string(st.kubernetes_rollout) : json_null(),
		        "kubernetes_error",
		        *st.kubernetes_error ? json_string(st.kubernetes_error) : json_null()));
		exit_code = cli_doc_emit(cli, doc, exit_code);
		doc = NULL;
	} else {
		if (vms && fleet_ran)
			print_summary(cli, name, &fres, frc);
		else if (vms && cli->dry_run) {
			json_t *desc = mg_fleet_describe(&fo);
			dry_run_text(cli, &fo, desc);
			json_decref(desc);
		}
		print_cluster(cli, name, verb, version, &job.res, job.rc);
		if (secret_files)
			printf(
			    "  (%zu file%s the nginx configuration names belong%s in a Secret the "
			    "cluster must already have; not applied)\n",
			    secret_files, secret_files == 1 ? "" : "s",
			    secret_files == 1 ? "s" : "");
	}
	if (job.res.insecure)
		fprintf(stderr,
		        "warning: the cluster's certificate was not verified "
		        "(insecure-skip-tls-verify in context %s)\n",
		        job.res.context ? job.res.context : "?");
	if (fleet_ran && frc)
		fprintf(stderr, "%serror:%s VMs: %s\n", cli_c(cli->color_err, C_RED),
		        cli_c(cli->color_err, C_RESET), ferr.message);
	if (job.rc)
		fprintf(stderr, "%serror:%s cluster: %s\n", cli_c(cli->color_err, C_RED),
		        cli_c(cli->color_err, C_RESET), job.err.message);
	if (failed && vms) {
		bool vok = fleet_ran && !frc, kok = !job.rc;
		if (vok != kok)
			fprintf(stderr, "the %s side is on %s and was left as it is\n",
			        vok ? "VM" : "cluster", vok ? vms_version : version);
	}
	goto out;

fail:
	json_decref(doc);
	doc = NULL;
	exit_code = cli_fail(cli, &err);
out:
	if (signals)
		signals_restore(&old_int, &old_term, &old_pipe);
	json_decref(doc);
	json_decref(fleet);
	json_decref(objects);
	mg_fleet_result_free(&fres);
	mg_cluster_result_free(&job.res);
	mg_error_clear(&job.err);
	mg_error_clear(&ferr);
	mg_kube_client_free(client);
	free(artifact);
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}

typedef struct {
	bool vms_only, k8s_only, accept_new;
	const char *version, *reason, *context;
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
	case OPT_CONTEXT:
		o->context = arg;
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
	    {"context", required_argument, NULL, OPT_CONTEXT},
	    {NULL, 0, NULL, 0}};
	deploy_opts o = {0};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "", deploy_opt, &o, 0, &exit_code) < 0)
		return exit_code;
	if (o.k8s_only && o.vms_only)
		return cli_usage_error(cli, "--vms-only and --k8s-only exclude each other; without "
		                            "either, deploy goes to every side the plan has");
	if (o.context && !*o.context)
		return cli_usage_error(cli, "--context needs a context name");
	if (o.vms_only && o.context)
		return cli_usage_error(cli, "--context names the cluster to use; --vms-only "
		                            "contacts only the VMs");
	if (o.vms_only && o.version)
		return cmd_fleet(cli, MG_FLEET_DEPLOY, o.version, o.accept_new, o.reason);
	return cmd_release(cli, MG_FLEET_DEPLOY, o.version, o.vms_only, o.k8s_only, o.accept_new,
	                   o.reason, o.context);
}
