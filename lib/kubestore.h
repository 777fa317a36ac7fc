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

int mg_kube_store_open_plan(mg_store **out, const mg_plan *plan, const char *state_dir,
                            bool existing, const mg_cancel *cancel, int64_t deadline_ms,
                            mg_error *err);

#endif
