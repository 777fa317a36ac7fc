/*
 * A store kept somewhere other than the local state directory: the
 * interface a backend implements (lib/kube/store.c keeps the lock, the
 * state, the journal and the records in the cluster's API), and the calls
 * through which lib/state/ reaches it.
 *
 * mg_store stays opaque and dispatches through the ops below. A store
 * opened with mg_store_open is the local directory (lib/state/store.c's
 * own ops: flock, request files; its state, journal and record files are
 * read and written by state.c, journal.c and records.c as before); one
 * opened with mg_store_open_backend takes every call of store.h, state.h,
 * journal.h and records.h to its ops. The state layer cannot
 * include a backend's headers (tests/lint.sh): a backend in a lower layer
 * fills these ops and plugs itself in.
 */
#ifndef MG_STOREBACKEND_H
#define MG_STOREBACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "journal.h"
#include "store.h"

/*
 * Documents are named "state", "fleet", "manifests/<version>", "pause",
 * "resume" and "stop". A document's version is the backend's (a resourceVersion),
 * opaque to the caller.
 */
typedef struct {
	/* Takes the lock without waiting: MG_ELOCKED naming the holder as mg_store_lock does. */
	int (*lock)(void *impl, const char *command, mg_error *err);
	/*
	 * As mg_store_lock_preempt (may be NULL: then the holder the probe names
	 * is asked to stop with SIGTERM when it runs `preemptible` on this host,
	 * and the lock is tried again until wait_ms).
	 */
	int (*lock_preempt)(void *impl, const char *command, const char *preemptible,
	                    int64_t wait_ms, mg_error *err);
	void (*unlock)(void *impl); /* gives the lock up; no-op when not held */
	bool (*locked)(const void *impl);
	/* Another holder right now (not us): *held and *holder (zeroed first by the caller). */
	int (*probe)(void *impl, bool *held, mg_lock_holder *holder, mg_error *err);
	/* Proves the lock is still ours (a lease renewed): MG_ECONFLICT when it was lost. */
	int (*keepalive)(void *impl, mg_error *err);
	/* *text and *version malloc'd; MG_ENOTFOUND when there is none. */
	int (*doc_read)(void *impl, const char *name, char **text, size_t *len, char **version,
	                mg_error *err);
	/*
	 * version: NULL writes whatever is there (a request, which needs no
	 * lock); "" only if there is none yet; else only if the document is
	 * still at that version. A lost race is MG_ECONFLICT and changes nothing.
	 * fenced: a locked write, refused when a newer lock holder wrote last.
	 */
	int (*doc_write)(void *impl, const char *name, const char *text, size_t len,
	                 const char *version, bool fenced, mg_error *err);
	int (*doc_remove)(void *impl, const char *name, mg_error *err); /* absent is fine */
	/* Appends record (an object whose "seq" the backend sets: the last one's + 1). */
	int (*journal_append)(void *impl, json_t *record, mg_error *err);
	/*
	 * Appends every record of the array, in order (may be NULL: then one
	 * journal_append each). For `migrate state push`, which copies a whole
	 * journal: as many records as fit in a write, not a write a record.
	 */
	int (*journal_append_many)(void *impl, json_t *records, mg_error *err);
	/* As mg_journal_each. */
	int (*journal_each)(void *impl, const mg_journal_query *q, mg_journal_fn fn, void *ud,
	                    size_t *out_skipped, mg_error *err);
	void (*free)(void *impl); /* releases the lock if held */
} mg_store_ops;

/*
 * A store over ops; impl is taken (freed through ops->free, also when this
 * fails). where names it in messages and is what mg_store_path returns
 * ("kubernetes shop/migrate-web").
 */
int mg_store_open_backend(mg_store **out, const mg_store_ops *ops, void *impl,
                          const char *plan_name, const char *where, mg_error *err);

/* False for the local state directory. */
bool mg_store_remote(const mg_store *store);
/* The plan the store belongs to. */
const char *mg_store_plan(const mg_store *store);

/* Through the backend's ops (MG_EINVALID on a local store: it uses its files). */
int mg_store_doc_read(mg_store *store, const char *name, char **text, size_t *len, char **version,
                      mg_error *err);
int mg_store_doc_write(mg_store *store, const char *name, const char *text, size_t len,
                       const char *version, bool fenced, mg_error *err);
int mg_store_doc_remove(mg_store *store, const char *name, mg_error *err);
int mg_store_journal_append_record(mg_store *store, json_t *record, mg_error *err);
/* The records of an array, in order, each numbered by the backend (journal_append_many). */
int mg_store_journal_append_records(mg_store *store, json_t *records, mg_error *err);
int mg_store_journal_each_remote(mg_store *store, const mg_journal_query *q, mg_journal_fn fn,
                                 void *ud, size_t *out_skipped, mg_error *err);

#endif
