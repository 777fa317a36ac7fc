/*
 * A release: one version onto the VM fleet (lib/fleet.h) and the cluster
 * (lib/cluster.h) together, or both sides back to the release they ran
 * before. `migrate deploy` and `migrate rollback --release` are this module
 * plus a display.
 *
 * The three calls run in order, each doing what the one before allows:
 *
 *   mg_release_prepare  what can be checked without contacting anything: the
 *                       release name (--version or build.repo's HEAD), the
 *                       artifact and its hash, the SSH credentials, the
 *                       cluster's objects rendered (each ConfigMap built once;
 *                       template warnings left in err->diags on success)
 *   mg_release_begin    the cluster client, the state (locked unless a dry
 *                       run) and what a rollback goes back to
 *   mg_release_run      both sides at once, the cluster in a thread of its own
 *                       and the fleet in the caller's; the manifests of a
 *                       deploy recorded before anything is applied, the
 *                       journal and state.json written from the caller's
 *                       thread only (lib/fleet journals from there too)
 *
 * Each side's failure leaves the other as it is. Nothing is printed:
 * progress goes to a callback, the outcome to mg_release_info.
 */
#ifndef MG_RELEASE_H
#define MG_RELEASE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "clock.h"
#include "cluster.h"
#include "error.h"
#include "fleet.h"
#include "plan.h"
#include "state.h"

/*
 * The release when no version is given: the short id of build.repo's HEAD
 * commit. A tree with uncommitted changes to tracked files is refused
 * (MG_EINVALID): the release would not be what the commit names.
 */
int mg_release_version(char *out, size_t size, const mg_plan *plan, mg_error *err);

/*
 * The fleet's checks before any host is contacted: the key (and the
 * passphrase from vms.passphrase_env, registered as a secret), ssh-agent
 * when there is no key, known_hosts unless accept_new. *passphrase is
 * borrowed from the environment, or NULL.
 */
int mg_release_preflight(const mg_plan_vms *v, bool accept_new, const char **passphrase,
                         mg_error *err);

/*
 * build.artifact for version (${version} expanded; a new string in *path),
 * checked to be a regular file, and its SHA-256 in sha. *path is set as
 * soon as it is known, also on error.
 */
int mg_release_artifact(char **path, char sha[65], const mg_plan *plan, const char *version,
                        mg_error *err);

/* One event of either side; called from either thread, one at a time. */
typedef struct {
	const mg_fleet_progress *fleet;  /* a fleet event, or NULL */
	const mg_cluster_object *object; /* a cluster event, or NULL */
	const char *message;             /* with object: what happened to it */
} mg_release_progress;

/*
 * What to load the plan with (mg_plan_require) for deploy or rollback
 * --release with these flags: the fleet's sections for `--vms-only --version`,
 * else a fleet or a cluster (the sides come from the plan).
 */
unsigned mg_release_plan_needs(mg_fleet_op op, bool vms_only, const char *version);

typedef struct {
	mg_fleet_op op;
	/* the sides: both that the plan has, or only one (--vms-only, --k8s-only) */
	bool vms_only, k8s_only;
	const char *version; /* deploy: the release, or NULL for build.repo's HEAD;
	                        rollback: NULL (state.json says where to; without one, the
	                        hosts' releases and the cluster's annotations) */
	bool accept_new_host_keys;
	const char *context; /* replaces kubernetes.context; may be NULL */
	const char *state_dir;
	const char *command;     /* for the lock and the journal: "deploy", "rollback" */
	const char *reason;      /* for the journal, or NULL */
	bool dry_run;            /* nothing changed, no state directory created */
	const mg_cancel *cancel; /* raised: both sides stop between stages */
	void (*progress)(void *ud, const mg_release_progress *p); /* may be NULL */
	void *progress_ud;
} mg_release_options;

/* What a release is about and, after mg_release_run, what happened. */
typedef struct {
	const char *plan; /* the plan's name */
	mg_fleet_op op;
	bool vms, k8s, dry_run;
	const char *version;     /* the cluster's release (a deploy: the release) */
	const char *vms_version; /* the fleet's: differs from version in a rollback */
	const char *from_vms;    /* the versions recorded before: "" none */
	const char *from_k8s;
	const char *artifact;                  /* deploy to the VMs: the local file; else NULL */
	const char *sha256;                    /* its hash, or "" */
	size_t secret_files;                   /* files the ConfigMaps leave to a Secret */
	const mg_fleet_options *fleet_options; /* after mg_release_begin (mg_fleet_describe) */
	const json_t *objects;                 /* the cluster's objects, in apply order */
	bool fleet_ran;                        /* the fleet run happened (a dry run has none) */
	int fleet_rc;
	const mg_error *fleet_err;
	const mg_fleet_result *fleet;
	bool cluster_ran;
	int cluster_rc;
	const mg_error *cluster_err;
	const mg_cluster_result *cluster;
	const mg_state *state; /* state.json as the run left it */
	int state_rc;          /* saving state.json failed: its error */
	const mg_error *state_err;
	int journal_rc; /* the cluster's result record failed: its error */
	const mg_error *journal_err;
	/* a rollback with no state recorded: where its versions were read from (and that the
	 * cluster's manifests were rendered from the templates); else NULL */
	const char *rebuilt;
} mg_release_info;

typedef struct mg_release mg_release;

/*
 * A release of plan (borrowed: it must outlive *out) with o (copied), loaded
 * with mg_release_plan_needs: the sides are decided (MG_EINVALID for
 * --context without a cluster, --k8s-only without a kubernetes section, or
 * the fleet alone without its sections). For a deploy without o->version the
 * version is mg_release_version's. On error *out may still be set: free it.
 */
int mg_release_prepare(mg_release **out, const mg_plan *plan, const mg_release_options *o,
                       mg_error *err);
int mg_release_begin(mg_release *r, mg_error *err);
/*
 * 0 when both sides succeeded; otherwise the first side's error (the fleet's,
 * then the cluster's) and mg_release_info says which. Before either side
 * starts, MG_E* for a record or journal that could not be written.
 */
int mg_release_run(mg_release *r, mg_error *err);
const mg_release_info *mg_release_info_get(const mg_release *r);
void mg_release_free(mg_release *r);

/*
 * The release as the members of `deploy -o json` (docs/cli.md), a new object
 * to merge into the envelope. The fleet alone: plan, op, version,
 * from_version, artifact, sha256, then a dry run's batches and hosts or the
 * run's result and the fleet's versions. Otherwise: plan, op, version,
 * dry_run, vms, kubernetes (each with "error": {kind, message, diagnostics}
 * when that side failed, else null) and versions.
 */
json_t *mg_release_to_json(const mg_release *r);

/* What `migrate diff` found (mg_release_diff). */
typedef struct {
	char version[MG_PLAN_VERSION_MAX + 1]; /* the release: --version or build.repo's HEAD */
	bool applied;              /* the dry run was sent: cluster says what each object does */
	bool changed;              /* an object would be created or changed */
	mg_cluster_result cluster; /* per object, with mg_kube_diff's text */
	mg_error warnings;         /* the templates' warnings (diagnostics), to show */
} mg_release_diff_result;

/*
 * What a deploy of version (NULL: build.repo's HEAD) would change on the
 * cluster of plan (loaded with MG_NEED_KUBERNETES | MG_NEED_BUILD), object by
 * object, from a server-side dry run (dryRun=All) against the live objects:
 * nothing is persisted, no VM is contacted. context (may be NULL) replaces
 * kubernetes.context. An error before the dry run leaves out->applied false
 * (the version, the templates or the connection); after it, out->cluster says
 * which object failed. out is filled whatever happens: clear it.
 */
int mg_release_diff(mg_release_diff_result *out, const mg_plan *plan, const char *version,
                    const char *context, mg_error *err);
void mg_release_diff_clear(mg_release_diff_result *d);
/* `diff -o json`'s members (docs/cli.md): plan, version, changed, the cluster's result, and
 * with rc the dry run's error; a new object. */
json_t *mg_release_diff_to_json(const mg_release_diff_result *d, const mg_plan *plan, int rc,
                                const mg_error *err);

#endif
