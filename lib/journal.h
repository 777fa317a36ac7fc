/*
 * journal.jsonl: one JSON record per line, appended and fsynced per action,
 * never rewritten. It is the answer to "why did traffic move at 03:12?", so
 * a record says who, what, from what to what, why, and on what evidence.
 *
 * A crash can tear the last line. Readers skip lines that are not complete
 * JSON objects and report them through the logger as warnings; the writer
 * starts a fresh line after a torn tail so the next record stays readable.
 */
#ifndef MG_JOURNAL_H
#define MG_JOURNAL_H

#include <jansson.h>

#include "error.h"
#include "store.h"

typedef struct {
	const char *command; /* "step", "rollback", ... */
	const char *action;  /* "intent", "result", "gate", ... */
	json_t *before;      /* borrowed; may be NULL */
	json_t *after;       /* borrowed; may be NULL */
	const char *reason;  /* may be NULL */
	json_t *evidence;    /* borrowed; may be NULL */
} mg_journal_entry;

/*
 * Appends one record with time, operator and sequence number added. The
 * caller must hold the store's lock. The record is on disk (fsynced) when
 * this returns 0.
 */
int mg_journal_append(mg_store *store, const mg_journal_entry *entry, mg_error *err);

/*
 * Reads records, oldest first, keeping only the newest `limit` (0: all).
 * *out is a new JSON array; *out_skipped counts lines that were not valid
 * records (each also logged as a warning with its line number).
 */
int mg_journal_read(json_t **out, size_t *out_skipped, mg_store *store, size_t limit,
                    mg_error *err);

#endif
