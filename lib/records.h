/*
 * The records a release leaves in the plan's state directory (lib/store.h),
 * beside state.json and the journal: fleet.json, the release each VM runs,
 * and manifests/<version>.json, what a release applied to the cluster.
 */
#ifndef MG_RECORDS_H
#define MG_RECORDS_H

#include <jansson.h>

#include "error.h"
#include "store.h"

/*
 * fleet.json in the store: the release each host runs as last read back,
 * {"format": 1, "plan", "updated_at", "hosts": {NAME: {version, previous,
 * outcome, at}}}. A missing file gives an empty document.
 */
int mg_fleet_record_load(json_t **out, mg_store *store, mg_error *err);
/* Atomically, mode 0600; the caller holds the lock. */
int mg_fleet_record_save(mg_store *store, json_t *doc, mg_error *err);
/*
 * <store>/manifests/<version>.json (0600, written atomically): the objects
 * applied for a release, which a cluster rollback applies again. The caller
 * holds the store's lock.
 */
int mg_cluster_record_save(mg_store *store, const char *version, const json_t *objects,
                           mg_error *err);
/* The recorded objects of version (a new array); MG_ENOTFOUND when there is no record. */
int mg_cluster_record_load(json_t **objects, mg_store *store, const char *version, mg_error *err);

#endif
