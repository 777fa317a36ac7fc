/*
 * The state store kept in the cluster's API (issue 14), for teams: every
 * laptop and CI runner that runs a plan with `state.backend: kubernetes`
 * shares one migration, one lock and one journal, as Terraform's kubernetes
 * backend and Helm keep theirs.
 *
 *   lock       Lease migrate-<plan> (lib/kube/lease.c); holderIdentity
 *              "user@host pid N command C id X"; leaseTransitions is the
 *              fencing token every state and journal write carries
 *   state      ConfigMap migrate-<plan>-state, key state.json
 *   fleet      ConfigMap migrate-<plan>-fleet, key fleet.json
 *   manifests  ConfigMap migrate-<plan>-manifest-<sha256(version), 16 hex>
 *   requests   ConfigMaps migrate-<plan>-pause, -resume and -stop
 *   journal    ConfigMaps migrate-<plan>-journal-000001, -000002, ... (key
 *              journal.jsonl), each up to 256 KiB of records; the newest is
 *              labelled migrate.dev/open=true
 *
 * Every ConfigMap is labelled app.kubernetes.io/managed-by=migrate,
 * migrate.dev/plan=<plan> and migrate.dev/kind, and written with
 * metadata.resourceVersion compare-and-swap: a writer that lost a race gets
 * MG_ECONFLICT and has overwritten nothing.
 */
#ifndef MG_KUBESTORE_H
#define MG_KUBESTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kube.h"
#include "plan.h"
#include "store.h"

typedef struct {
	const char *namespace_;  /* NULL: the client's */
	const char *plan;        /* the plan's name (a DNS label) */
	int64_t lease_ms;        /* state.lease; 0: 15 s; rounded up to whole seconds, at least 2 */
	int64_t (*now_ms)(void); /* NULL: mg_now_ms (tests drive it) */
	/*
	 * How the store may make a client of its own (NULL: it does not): then a
	 * thread renews the Lease every third of the lease while the lock is held,
	 * so a command that writes nothing for minutes keeps the plan.
	 */
	const mg_kube_config_options *renew_client;
	/*
	 * `migrate unlock --force`: mg_store_lock takes the Lease over whoever
	 * holds it, alive or not (mg_kube_lease_force); *displaced (when not NULL,
	 * and it must outlive the store) gets the holder overwritten, malloc'd,
	 * or NULL when there was none.
	 */
	bool force_lock;
	char **displaced;
} mg_kube_store_options;

/*
 * A store over the cluster client c. own_client: the store frees c with
 * itself (also when this fails); otherwise c must outlive the store. Nothing
 * is contacted until the store is used.
 */
int mg_kube_store_open(mg_store **out, mg_kube_client *c, bool own_client,
                       const mg_kube_store_options *o, mg_error *err);

/*
 * A client for the plan's state connection (state.kubernetes, else the
 * kubernetes section), made with *co (filled here: a store's renewer makes
 * its own client from it). deadline_ms as for mg_kube_store_open_plan. A
 * cluster that cannot be reached is err saying the plan's what ("state",
 * "lock") is in the cluster.
 */
int mg_kube_store_client(mg_kube_client **out, mg_kube_config_options *co, const mg_plan *plan,
                         const char *what, const mg_cancel *cancel, int64_t deadline_ms,
                         mg_error *err);

/*
 * The store of a plan, as every command opens it: with `state.backend:
 * local` the state directory (state_dir, NULL: the plan's state.dir;
 * existing: mg_store_open_existing, else mg_store_open), with `kubernetes`
 * the cluster of the plan's resolved state connection (existing changes
 * nothing: opening it creates nothing). deadline_ms bounds each request to
 * the cluster with its retries (0: the client's 30 s): a rollback waits for
 * an unreachable cluster no longer than that before it moves traffic anyway.
 */
/*
 * The releases whose manifests the store of plan keeps in the cluster
 * (lib/kube/store_copy.c), for `migrate state pull`, which copies each:
 * *versions a new array of strings, read from the manifest ConfigMaps
 * (their names are hashes); one whose version is not a release name is
 * skipped with a warning.
 */
int mg_kube_store_manifest_versions(json_t **versions, mg_kube_client *c, const char *namespace_,
                                    const char *plan, mg_error *err);

/*
 * The standbys of a leader-elected autopilot (lib/kube/standby.c): each
 * keeps the Lease migrate-<plan>-standby-<id> (labelled managed-by=migrate,
 * migrate.dev/plan, migrate.dev/kind=standby) renewed while it waits, so
 * status can list who would take over.
 */
typedef struct {
	const char *ns;     /* the state namespace */
	const char *plan;   /* the plan's name */
	const char *id;     /* this standby's: 1 to 16 of a-z0-9 */
	const char *holder; /* "user@host pid N command run id X", as the lock's */
	int lease_seconds;  /* how long it counts as alive without a renewal */
	int64_t now_ms;     /* 0: mg_now_ms() */
} mg_kube_standby;

/* Creates or renews the standby's Lease. */
int mg_kube_standby_beat(mg_kube_client *c, const mg_kube_standby *s, mg_error *err);
/* Deletes it (absent is fine): a standby that became the leader, or ends. */
int mg_kube_standby_remove(mg_kube_client *c, const mg_kube_standby *s, mg_error *err);
/*
 * The standbys of plan: *out a new array of {"holder", "seen" (the last
 * renewal, RFC 3339), "alive" (renewed within its lease at now_ms)}, holders
 * scrubbed. prune: deletes those silent for an hour (a restarted pod's).
 */
int mg_kube_standby_list(json_t **out, mg_kube_client *c, const char *ns, const char *plan,
                         int64_t now_ms, bool prune, mg_error *err);

int mg_kube_store_open_plan(mg_store **out, const mg_plan *plan, const char *state_dir,
                            bool existing, const mg_cancel *cancel, int64_t deadline_ms,
                            mg_error *err);

#endif
