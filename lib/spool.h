/*
 * The local spool of a plan whose state is kept in the cluster (issue 14):
 * what a command that moved traffic could not record in the shared store
 * (the cluster unreachable, timed out, its lock held by a process that does
 * not answer) is kept here, and uploaded by the next command of this machine
 * that reaches the cluster and takes the lock.
 *
 *   <state dir>/spool/<plan>/<time ms, 20 digits>-<pid>-<n, 6 digits>.json   (0600; dirs 0700)
 *
 * One file per record, named so that they sort in the order they were
 * written. A file holds the journal record (time and operator as they
 * happened, seq null) and, when the state could not be saved either, the
 * state the command left and the revision it started from (null: unknown,
 * the state could not be read).
 */
#ifndef MG_SPOOL_H
#define MG_SPOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "state.h"
#include "store.h"

/* At most this many files are uploaded by one command (the rest by the next). */
#define MG_SPOOL_UPLOAD_MAX 64
/* Nor for longer than this: a command that takes the lock is not held up for long. */
#define MG_SPOOL_UPLOAD_MS 10000

/* <state_dir>/spool/<plan> into buf; MG_EINVALID when it does not fit. */
int mg_spool_dir(char *buf, size_t size, const char *state_dir, const char *plan, mg_error *err);

/*
 * Keeps record (borrowed) and, when st is not NULL, the state the store could
 * not save: base_known says whether base_revision is the revision st was read
 * at. The file's path goes to path (may be NULL). Creates the directory.
 */
int mg_spool_save(char *path, size_t size, const char *dir, const json_t *record,
                  const mg_state *st, bool base_known, uint64_t base_revision, mg_error *err);

/* How many files the spool holds now (0 when the directory does not exist). */
size_t mg_spool_count(const char *dir);

typedef struct {
	size_t uploaded;    /* records journalled (their files removed) */
	size_t applied;     /* spooled states saved over the one they started from */
	size_t not_applied; /* spooled states left out: the state moved since */
	size_t left;        /* files still in the spool (over a bound, or a failure) */
} mg_spool_upload;

/*
 * Uploads the spool at dir into store, whose lock the caller holds, oldest
 * first: each record is journalled (the store numbers it, its time stays),
 * then its state saved if the store's state has not moved since it was
 * spooled (the same revision; when that is unknown, no write after the
 * record's time), and only then its file removed. A failure stops the upload
 * with the files not uploaded kept, and is returned. Bounded by
 * MG_SPOOL_UPLOAD_MAX and MG_SPOOL_UPLOAD_MS.
 */
int mg_spool_upload_all(mg_spool_upload *out, mg_store *store, const char *dir, mg_error *err);

/*
 * The spool of a store in the cluster (mg_kube_store_open_plan sets it): once
 * set, mg_store_lock uploads it (except for a rollback, which moves traffic
 * first and uploads after its own record: mg_store_spool_flush), and logs
 * what it did.
 */
int mg_store_spool_set(mg_store *store, const char *dir, mg_error *err);
const char *mg_store_spool_dir(const mg_store *store); /* NULL when none */
/* What the upload when the lock was taken did (zero when none ran). */
const mg_spool_upload *mg_store_spool_result(const mg_store *store);
/* Uploads the spool now (the lock held); logged, never an error: the files stay. */
void mg_store_spool_flush(mg_store *store);

#endif
