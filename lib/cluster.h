/*
 * The cluster side of a release: the plan's templates and ConfigMaps
 * rendered for a version, applied with server-side apply in an order the
 * objects can depend on (namespaces, then what pods mount, then services,
 * workloads, autoscalers, budgets, ingresses), every Deployment's rollout
 * waited for, and the applied manifests kept per version in the state
 * directory so that a rollback re-applies exactly what ran before.
 *
 * lib/kube.h does the talking; this module decides what to send and in
 * which order, and says per object what happened.
 */
#ifndef MG_CLUSTER_H
#define MG_CLUSTER_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"
#include "kube.h"
#include "plan.h"
#include "records.h"
#include "store.h"

/*
 * Every workload migrate applies (Deployment, StatefulSet, DaemonSet) carries
 * the release it was applied for, and the release its live object carried
 * before when that differs (what a deploy replaced; a rollback leaves none:
 * going back is done once), so a state directory lost with a CI runner can
 * be rebuilt from the cluster. Other objects carry nothing: one a release did
 * not change stays "unchanged".
 */
#define MG_CLUSTER_RELEASE_ANNOTATION  "migrate/release"
#define MG_CLUSTER_PREVIOUS_ANNOTATION "migrate/previous-release"

typedef enum {
	MG_CLUSTER_NOT_RUN,    /* not reached: an earlier object failed, or cancelled */
	MG_CLUSTER_CREATED,    /* did not exist */
	MG_CLUSTER_CONFIGURED, /* existed and changed */
	MG_CLUSTER_UNCHANGED,  /* existed and the apply changed nothing */
	MG_CLUSTER_FAILED,
} mg_cluster_outcome;

typedef struct {
	char *what; /* "apps/v1 Deployment shop/web" */
	char *kind, *name, *namespace_;
	mg_cluster_outcome outcome;
	bool rollout;    /* a Deployment, StatefulSet or DaemonSet: its rollout was (or would be)
	                    waited for */
	bool rolled_out; /* and it completed */
	/* a StatefulSet or DaemonSet with updateStrategy OnDelete: nothing to wait for */
	bool rollout_not_waitable;
	/*
	 * Applied, but its rollout was not waited for: the waits stop at the
	 * first failure (an apply or an earlier rollout), so whether this one
	 * became ready is unknown.
	 */
	bool rollout_not_waited;
	int64_t rollout_ms;
	char *rollout_status; /* the last status message of the wait, or NULL */
	char *diff;           /* dry run: mg_kube_diff's text, or NULL */
	char *error;          /* or NULL */
} mg_cluster_object;

typedef struct {
	mg_cluster_object *objects;
	size_t nobjects;
	size_t created, configured, unchanged, failed, not_run;
	size_t deployments, rolled_out;
	size_t workloads; /* Deployments, StatefulSets and DaemonSets (rolled_out counts all) */
	size_t rollouts_not_waitable; /* objects with rollout_not_waitable */
	size_t rollouts_not_waited;   /* objects with rollout_not_waited */
	bool dry_run;
	bool canceled;
	int64_t duration_ms;
	char *context, *server, *namespace_;
	bool insecure; /* the cluster's certificate is not verified */
} mg_cluster_result;

/*
 * The objects of release version, in apply order: the plan's
 * kubernetes.configmaps (rendered as `migrate configmap -p` renders them,
 * without the files that belong in a Secret), then the templates. *objects
 * is a new array. Template warnings are left in err->diags on success.
 * *secret_files (may be NULL) counts the files the ConfigMaps leave to a
 * Secret the operator provides.
 */
int mg_cluster_render(json_t **objects, const mg_plan *plan, const char *version,
                      size_t *secret_files, mg_error *err);

/* Sorts objects in place into apply order, keeping the given order within a kind. */
void mg_cluster_sort(json_t *objects);

/*
 * A client for the plan's kubernetes section (kubeconfig, context,
 * namespace); context (may be NULL) replaces kubernetes.context, as
 * kubectl's --context does. A context the kubeconfig lacks is MG_EINVALID
 * naming the kubeconfig and the contexts it has.
 */
int mg_cluster_connect(mg_kube_client **out, const mg_plan *plan, const char *context,
                       const mg_cancel *cancel, mg_error *err);

typedef void (*mg_cluster_progress_fn)(void *ud, const mg_cluster_object *obj, const char *msg);

typedef struct {
	const json_t *objects; /* in apply order */
	bool force;            /* kubernetes.force_conflicts */
	/*
	 * Nothing persisted: each object goes through mg_kube_diff (a
	 * server-side dryRun=All apply against the live object) and no rollout
	 * is waited for.
	 */
	bool dry_run;
	int64_t rollout_timeout_ms; /* for all rollouts together; 0: 10 min */
	int64_t poll_ms;            /* rollout polling; 0: 250 ms */
	const mg_cancel *cancel;
	mg_cluster_progress_fn progress; /* may be NULL; called from the applying thread */
	void *progress_ud;
	/* the release the objects are for: MG_CLUSTER_RELEASE_ANNOTATION; NULL: none added */
	const char *release;
	bool rollback; /* going back: no MG_CLUSTER_PREVIOUS_ANNOTATION */
} mg_cluster_options;

/*
 * Applies every object (stopping at the first failure: what depends on it
 * is not sent), then waits for every Deployment's, StatefulSet's and
 * DaemonSet's rollout (stopping at the
 * first that fails; the Deployments left are marked rollout_not_waited). The result is
 * filled whatever happens (free it); 0 when everything applied and rolled
 * out, MG_ECONFLICT for a field-manager conflict (force not set), MG_ERROR
 * for a failed rollout, MG_ECANCELED, or the client's error.
 */
int mg_cluster_apply(mg_cluster_result *out, mg_kube_client *c, const mg_cluster_options *o,
                     mg_error *err);
void mg_cluster_result_clear(mg_cluster_result *r);

/* What the cluster runs, read back from the plan's Deployments (mg_cluster_read_live). */
typedef struct {
	size_t deployments;                     /* the Deployments the plan's templates render */
	size_t read;                            /* of them, read back from the cluster */
	char version[MG_PLAN_VERSION_MAX + 1];  /* the release every one carries; "" unknown */
	char previous[MG_PLAN_VERSION_MAX + 1]; /* the release they carried before; "" unknown */
	char missing[1024]; /* why version is unknown ("" when known), naming the Deployment */
	char previous_missing[1024]; /* why previous is unknown ("" when known) */
} mg_cluster_live;

/*
 * Reads MG_CLUSTER_RELEASE_ANNOTATION and MG_CLUSTER_PREVIOUS_ANNOTATION back
 * from every Deployment of plan's templates (rendered for no particular
 * release: only their names are used). Deployments that disagree, one that
 * does not exist or carries no annotation leave the version unknown, with
 * why in out->missing. 0 unless the templates cannot be rendered, or the
 * cluster cannot be asked (the client's error).
 */
int mg_cluster_read_live(mg_cluster_live *out, mg_kube_client *c, const mg_plan *plan,
                         mg_error *err);
/* {version, previous, deployments, read, missing, previous_missing}, unknowns null. */
json_t *mg_cluster_live_to_json(const mg_cluster_live *l);

const char *mg_cluster_outcome_name(mg_cluster_outcome o);
json_t *mg_cluster_result_to_json(const mg_cluster_result *r);

/*
 * One journal record for the cluster side: action ("intent", "result"),
 * the versions from and to, and the result's counts and per-object
 * outcomes as evidence (no object content: nothing secret).
 */
int mg_cluster_journal(mg_store *store, const char *command, const char *action, const char *from,
                       const char *to, const mg_cluster_result *r, size_t nobjects,
                       const char *reason, mg_error *err);

#endif
