/* Both sides of a release together (lib/release.h). */
#include "release.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "internal.h"
#include "kubestore.h"
#include "store.h"

struct mg_release {
	const mg_plan *plan;
	mg_release_options o;
	bool vms, k8s; /* the sides */
	mg_release_info info;
	char version[MG_PLAN_VERSION_MAX + 1], vms_version[MG_PLAN_VERSION_MAX + 1];
	char from_vms[sizeof(((mg_state *)0)->vms_version)];
	char from_k8s[sizeof(((mg_state *)0)->kubernetes_version)];
	char *artifact;
	char sha[65];
	const char *passphrase;
	size_t secret_files;
	json_t *objects, *fleet_doc;
	mg_kube_client *client;
	mg_store *store;
	mg_state st;
	char rebuilt[1024]; /* a rollback without state: where its versions came from; "" */
	bool begun;
	mg_fleet_options fo;
	mg_cluster_options co;
	pthread_mutex_t mu; /* one progress call at a time, from either side */
	mg_fleet_result fres;
	mg_cluster_result cres;
	mg_error ferr, cerr, serr, jerr;
	int frc, crc, src, jrc; /* the sides', the state save's, the result record's */
	bool fleet_ran, cluster_ran;
};

static void sync_info(mg_release *r)
{
	r->info = (mg_release_info){
	    .plan = mg_plan_name(r->plan),
	    .op = r->o.op,
	    .dry_run = r->o.dry_run,
	    .vms = r->vms,
	    .k8s = r->k8s,
	    .version = r->k8s ? r->version : r->vms_version,
	    .vms_version = r->vms_version,
	    .from_vms = r->from_vms,
	    .from_k8s = r->from_k8s,
	    .artifact = r->artifact,
	    .sha256 = r->sha,
	    .secret_files = r->secret_files,
	    .fleet_options = r->begun ? &r->fo : NULL,
	    .objects = r->objects,
	    .fleet_ran = r->fleet_ran,
	    .fleet_rc = r->frc,
	    .fleet_err = &r->ferr,
	    .fleet = &r->fres,
	    .cluster_ran = r->cluster_ran,
	    .cluster_rc = r->crc,
	    .cluster_err = &r->cerr,
	    .cluster = &r->cres,
	    .state = &r->st,
	    .state_rc = r->src,
	    .state_err = &r->serr,
	    .journal_rc = r->jrc,
	    .journal_err = &r->jerr,
	    .rebuilt = *r->rebuilt ? r->rebuilt : NULL,
	};
}

static unsigned fleet_needs(mg_fleet_op op)
{
	return op == MG_FLEET_DEPLOY ? MG_NEED_BUILD | MG_NEED_VMS : MG_NEED_VMS;
}

unsigned mg_release_plan_needs(mg_fleet_op op, bool vms_only, const char *version)
{
	return vms_only && version ? fleet_needs(op) : MG_NEED_VMS_OR_KUBERNETES;
}

/* Both sides the plan has, or the one the flags ask for. */
static int choose_sides(mg_release *r, mg_error *err)
{
	const mg_release_options *o = &r->o;
	bool has_vms = mg_plan_vms_section(r->plan) != NULL;
	bool has_k8s = mg_plan_kubernetes_section(r->plan) != NULL;
	r->vms = o->vms_only || (!o->k8s_only && has_vms);
	r->k8s = o->k8s_only || (!o->vms_only && has_k8s);
	if (r->vms && !r->k8s && o->context)
		return mg_error_set(
		    err, MG_EINVALID,
		    "--context names the cluster to use, but this %s contacts only the VMs%s",
		    o->op == MG_FLEET_DEPLOY ? "deploy" : "rollback",
		    o->vms_only ? " (--vms-only)" : ": the plan has no kubernetes section");
	if (o->k8s_only && !has_k8s)
		return mg_error_set(err, MG_EINVALID, "--k8s-only: %s has no kubernetes section",
		                    mg_plan_file(r->plan));
	return 0;
}

int mg_release_prepare(mg_release **out, const mg_plan *plan, const mg_release_options *o,
                       mg_error *err)
{
	mg_release *r = calloc(1, sizeof(*r));
	*out = r;
	if (!r)
		return mg_error_oom(err);
	r->plan = plan;
	r->o = *o;
	r->ferr = r->cerr = r->serr = r->jerr = (mg_error)MG_ERROR_INIT;
	pthread_mutex_init(&r->mu, NULL);
	mg_state_init(&r->st, mg_plan_name(plan));
	sync_info(r);
	int rc = choose_sides(r, err);
	if (rc)
		goto out;
	if (o->op == MG_FLEET_DEPLOY) {
		if (o->version)
			snprintf(r->version, sizeof(r->version), "%s", o->version);
		else if ((rc = mg_release_version(r->version, sizeof(r->version), plan, err)))
			goto out;
		snprintf(r->vms_version, sizeof(r->vms_version), "%s", r->version);
	}
	/* the fleet alone, loaded without its sections checked: checked now, after the version */
	if (r->vms && !r->k8s &&
	    mg_release_plan_needs(o->op, o->vms_only, o->version) != fleet_needs(o->op) &&
	    (rc = mg_plan_require(plan, fleet_needs(o->op), o->command, err)))
		goto out;
	if (o->op == MG_FLEET_DEPLOY) {
		if (r->k8s && !mg_plan_build_section(plan)) {
			rc = mg_error_set(err, MG_EINVALID,
			                  "%s: deploy needs a build section (build.image for the "
			                  "cluster%s)",
			                  mg_plan_file(plan),
			                  r->vms ? ", build.artifact for the VMs" : "");
			goto out;
		}
		if (r->vms &&
		    (rc = mg_release_artifact(&r->artifact, r->sha, plan, r->version, err)))
			goto out;
	}
	if (r->vms && (rc = mg_release_preflight(mg_plan_vms_section(plan), o->accept_new_host_keys,
	                                         &r->passphrase, err)))
		goto out;
	if (o->op == MG_FLEET_DEPLOY && r->k8s)
		rc = mg_cluster_render(&r->objects, plan, r->version, &r->secret_files, err);
out:
	sync_info(r);
	return rc;
}

/*
 * Opens the plan's state and loads it (and, with the fleet, fleet.json). A dry
 * run changes nothing, not even creating the state directory: no store yet is a
 * fresh state and r->store stays NULL.
 */
static int open_state(mg_release *r, mg_error *err)
{
	const char *name = mg_plan_name(r->plan);
	int rc;
	if (r->o.dry_run) {
		rc = mg_kube_store_open_plan(&r->store, r->plan, r->o.state_dir, true, r->o.cancel,
		                             0, err);
		if (rc == MG_ENOTFOUND) {
			mg_error_clear(err);
			return 0;
		}
		return rc ? rc : mg_state_load(&r->st, r->store, err);
	}
	(void)name;
	rc =
	    mg_kube_store_open_plan(&r->store, r->plan, r->o.state_dir, false, r->o.cancel, 0, err);
	if (!rc)
		rc = mg_store_lock(r->store, r->o.command, err);
	if (!rc)
		rc = mg_state_load(&r->st, r->store, err);
	if (!rc && r->vms)
		rc = mg_fleet_record_load(&r->fleet_doc, r->store, err);
	return rc;
}

/* The VM side's release to go back to; state.json is hand-editable and the name goes
 * into remote paths. */
static int vms_previous_version(mg_release *r, mg_error *err)
{
	char why[256];
	snprintf(r->vms_version, sizeof(r->vms_version), "%s", r->st.vms_previous_version);
	if (mg_plan_check_version(r->vms_version, why, sizeof(why)))
		return mg_error_set(err, MG_EINVALID,
		                    "state.json: versions.vms_previous is not a release name: %s",
		                    why);
	return 0;
}

/* Where a rollback goes: the release each side ran before, as state.json records it. */
static int rollback_target(mg_release *r, mg_error *err)
{
	const mg_state *st = &r->st;
	if (!r->k8s) {
		if (!*st->vms_previous_version)
			return mg_error_set(
			    err, MG_EINVALID,
			    "nothing to roll back to: no release before %s is recorded for the VMs "
			    "(a rollback --release can only go back once, to the release the last "
			    "deploy replaced). Deploy the version you want with `migrate deploy "
			    "--vms-only --version V`",
			    *st->vms_version ? st->vms_version : "the first deploy");
		return vms_previous_version(r, err);
	}
	if (r->vms && !*st->vms_previous_version)
		return mg_error_set(err, MG_EINVALID,
		                    "nothing to roll back to on the VMs: no release before %s is "
		                    "recorded (--k8s-only rolls back the cluster alone)",
		                    *st->vms_version ? st->vms_version : "the first deploy");
	if (!*st->kubernetes_previous_version)
		return mg_error_set(
		    err, MG_EINVALID,
		    "nothing to roll back to on the cluster: no release before %s is recorded%s",
		    *st->kubernetes_version ? st->kubernetes_version : "the first deploy",
		    r->vms ? " (--vms-only rolls back the VMs alone)" : "");
	int rc;
	if (r->vms && (rc = vms_previous_version(r, err)))
		return rc;
	snprintf(r->version, sizeof(r->version), "%s", st->kubernetes_previous_version);
	rc = r->store ? mg_cluster_record_load(&r->objects, r->store, r->version, err)
	              : MG_ENOTFOUND;
	if (rc == MG_ENOTFOUND && *r->rebuilt) {
		/* a fresh runner has no manifests: the plan's templates for that release, as
		 * `deploy --k8s-only --version` would apply them (info.rebuilt says so) */
		mg_error_clear(err);
		rc = mg_cluster_render(&r->objects, r->plan, r->version, &r->secret_files, err);
		if (!rc) {
			mg_error_clear(err); /* template warnings: shown when it was deployed */
			size_t len = strlen(r->rebuilt);
			snprintf(
			    r->rebuilt + len, sizeof(r->rebuilt) - len,
			    "; %s's manifests are not recorded there: rendered from the plan's "
			    "templates",
			    r->version);
		}
	} else if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		rc = mg_error_set(err, MG_EINVALID,
		                  "the manifests of %s are not recorded in %s/manifests; deploy "
		                  "it again with `migrate deploy --k8s-only --version %s`",
		                  r->version, r->store ? mg_store_path(r->store) : r->o.state_dir,
		                  r->version);
	}
	return rc;
}

/* No state recorded (a fresh runner): where the rollback goes, read from the world. */
static int rebuild(mg_release *r, mg_error *err)
{
	char how[sizeof(r->rebuilt)];
	/* a missing state.json is a fresh state, but its not-found may still sit in err */
	mg_error_clear(err);
	mg_release_rebuild_options o = {.vms = r->vms,
	                                .k8s = r->k8s,
	                                .client = r->client,
	                                .passphrase = r->passphrase,
	                                .accept_new_host_keys = r->o.accept_new_host_keys,
	                                .cancel = r->o.cancel,
	                                .state_dir =
	                                    r->store ? mg_store_path(r->store) : r->o.state_dir};
	int rc = mg_release_rebuild(&r->st, how, sizeof(how), r->plan, &o, err);
	if (!rc)
		snprintf(r->rebuilt, sizeof(r->rebuilt), "%s", how);
	return rc;
}

static void fleet_progress(void *ud, const mg_fleet_progress *p)
{
	mg_release *r = ud;
	pthread_mutex_lock(&r->mu);
	r->o.progress(r->o.progress_ud, &(mg_release_progress){.fleet = p});
	pthread_mutex_unlock(&r->mu);
}

static void cluster_progress(void *ud, const mg_cluster_object *obj, const char *msg)
{
	mg_release *r = ud;
	pthread_mutex_lock(&r->mu);
	r->o.progress(r->o.progress_ud, &(mg_release_progress){.object = obj, .message = msg});
	pthread_mutex_unlock(&r->mu);
}

int mg_release_begin(mg_release *r, mg_error *err)
{
	int rc = 0;
	/* a kubeconfig that does not resolve is bad input, found before anything is touched */
	if (r->k8s &&
	    (rc = mg_cluster_connect(&r->client, r->plan, r->o.context, r->o.cancel, err)))
		goto out;
	if ((rc = open_state(r, err)))
		goto out;
	if (r->o.op == MG_FLEET_ROLLBACK && r->st.revision == 0 && (rc = rebuild(r, err)))
		goto out;
	snprintf(r->from_vms, sizeof(r->from_vms), "%s", r->st.vms_version);
	snprintf(r->from_k8s, sizeof(r->from_k8s), "%s", r->st.kubernetes_version);
	if (r->o.op == MG_FLEET_ROLLBACK && (rc = rollback_target(r, err)))
		goto out;
	/* a dry run gets no store: it journals nothing */
	r->fo = (mg_fleet_options){
	    .op = r->o.op,
	    .vms = mg_plan_vms_section(r->plan),
	    .version = r->vms_version,
	    .artifact = r->artifact,
	    .artifact_sha256 = r->o.op == MG_FLEET_DEPLOY ? r->sha : NULL,
	    .accept_new_host_keys = r->o.accept_new_host_keys,
	    .passphrase = r->passphrase,
	    .cancel = r->o.cancel,
	    .store = r->o.dry_run ? NULL : r->store,
	    .fleet = r->fleet_doc,
	    .command = r->o.command,
	    .reason = r->o.reason,
	    .from_version = *r->from_vms ? r->from_vms : NULL,
	    .progress = r->o.progress ? fleet_progress : NULL,
	    .progress_ud = r,
	};
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(r->plan);
	if (r->k8s)
		r->co = (mg_cluster_options){
		    .objects = r->objects,
		    .force = k->force_conflicts,
		    .dry_run = r->o.dry_run,
		    .rollout_timeout_ms = k->rollout_timeout_ms,
		    .cancel = r->o.cancel,
		    .progress = r->o.progress ? cluster_progress : NULL,
		    .progress_ud = r,
		    .release = r->version,
		    .rollback = r->o.op == MG_FLEET_ROLLBACK,
		};
	r->begun = true;
out:
	sync_info(r);
	return rc;
}

static void *cluster_thread(void *ud)
{
	mg_release *r = ud;
	r->crc = mg_cluster_apply(&r->cres, r->client, &r->co, &r->cerr);
	r->cluster_ran = true;
	return NULL;
}

/*
 * The VMs' version in the state after a fleet run, as read back from the hosts: a
 * deploy that reached any host moves it on; a rollback counts once every host is
 * back (gone back once; going back again would be a guess). Returns whether st
 * changed.
 */
static bool vms_state_update(mg_release *r)
{
	mg_state *st = &r->st;
	const char *version = r->vms_version;
	size_t on = mg_fleet_count_on(&r->fres, version);
	if (r->o.op == MG_FLEET_DEPLOY && on > 0 && strcmp(st->vms_version, version) != 0) {
		snprintf(st->vms_previous_version, sizeof(st->vms_previous_version), "%s",
		         st->vms_version);
		snprintf(st->vms_version, sizeof(st->vms_version), "%s", version);
		return true;
	}
	if (r->o.op == MG_FLEET_ROLLBACK && on == r->fres.nhosts) {
		snprintf(st->vms_version, sizeof(st->vms_version), "%s", version);
		st->vms_previous_version[0] = '\0';
		return true;
	}
	return false;
}

/*
 * Once anything of V is on the cluster it runs V, healthy or not: the state says
 * which, and only a release that rolled out becomes the one a rollback goes to.
 * Journals the result. Returns whether st changed.
 */
static bool cluster_state_update(mg_release *r)
{
	mg_state *st = &r->st;
	const mg_cluster_result *res = &r->cres;
	bool applied = res->created + res->configured + res->unchanged > 0;
	if (applied) {
		if (r->o.op == MG_FLEET_DEPLOY && strcmp(st->kubernetes_version, r->version)) {
			if (strcmp(st->kubernetes_rollout, "failed") != 0)
				snprintf(st->kubernetes_previous_version,
				         sizeof(st->kubernetes_previous_version), "%s",
				         st->kubernetes_version);
		} else if (r->o.op == MG_FLEET_ROLLBACK && !r->crc) {
			st->kubernetes_previous_version[0] = '\0';
		}
		/* a failed rollback keeps kubernetes_previous: running it again retries */
		snprintf(st->kubernetes_version, sizeof(st->kubernetes_version), "%s", r->version);
		snprintf(st->kubernetes_rollout, sizeof(st->kubernetes_rollout), "%s",
		         r->crc ? "failed" : "ok");
		mg_state_set_kubernetes_error(st, r->crc ? r->cerr.message : NULL);
	}
	/* "to" is what the cluster runs now, as in state.json: V once any of it applied */
	r->jrc =
	    mg_cluster_journal(r->store, r->o.command, "cluster-result", r->from_k8s,
	                       applied ? r->version : r->from_k8s, res, json_array_size(r->objects),
	                       r->crc ? r->cerr.message : r->o.reason, &r->jerr);
	return applied;
}

int mg_release_run(mg_release *r, mg_error *err)
{
	int rc = 0;
	bool k8s = r->k8s, vms = r->vms, dry = r->o.dry_run;
	if (!r->begun)
		return mg_error_set(err, MG_EINVALID, "mg_release_run before mg_release_begin");
	if (k8s && !dry) {
		/* what a rollback to this release re-applies, kept before any of it is sent */
		if (r->o.op == MG_FLEET_DEPLOY &&
		    (rc = mg_cluster_record_save(r->store, r->version, r->objects, err)))
			goto out;
		rc = mg_cluster_journal(r->store, r->o.command, "cluster-intent", r->from_k8s,
		                        r->version, NULL, json_array_size(r->objects), r->o.reason,
		                        err);
		if (rc)
			goto out;
	}
	if (k8s && (rc = mg_http_global_init(err)))
		goto out;
	if (dry) {
		/* the fleet's dry run is mg_fleet_describe: nothing to run */
		if (k8s)
			cluster_thread(r);
	} else if (vms && k8s) {
		/* both sides at once: the cluster in its own thread, the fleet in this one */
		pthread_t th;
		if (pthread_create(&th, NULL, cluster_thread, r) != 0) {
			rc = mg_error_set(err, MG_ERROR, "cannot start a thread: %s",
			                  strerror(errno));
			goto out;
		}
		r->frc = mg_fleet_run(&r->fres, &r->fo, &r->ferr);
		r->fleet_ran = true;
		pthread_join(th, NULL);
	} else if (vms) {
		r->frc = mg_fleet_run(&r->fres, &r->fo, &r->ferr);
		r->fleet_ran = true;
	} else {
		cluster_thread(r);
	}

	/* the state: what each side runs now, written from this thread only */
	bool changed = false;
	if (!dry && r->fleet_ran && r->fres.hosts)
		changed = vms_state_update(r);
	if (!dry && r->cluster_ran)
		changed = cluster_state_update(r) || changed;
	if (changed)
		r->src = mg_state_save(r->store, &r->st, &r->serr);
	rc = r->fleet_ran && r->frc ? r->frc : r->crc;
	if (rc)
		mg_error_set(err, rc, "%s",
		             r->fleet_ran && r->frc ? r->ferr.message : r->cerr.message);
out:
	sync_info(r);
	return rc;
}

const mg_release_info *mg_release_info_get(const mg_release *r)
{
	return &r->info;
}

void mg_release_free(mg_release *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->mu);
	json_decref(r->objects);
	json_decref(r->fleet_doc);
	mg_fleet_result_clear(&r->fres);
	mg_cluster_result_clear(&r->cres);
	mg_error_clear(&r->ferr);
	mg_error_clear(&r->cerr);
	mg_error_clear(&r->serr);
	mg_error_clear(&r->jerr);
	mg_kube_client_free(r->client);
	free(r->artifact);
	mg_store_free(r->store);
	free(r);
}
