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
#include <stdint.h>

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
 * The record mg_journal_append would write now, with seq null: for a command
 * that changed something and could not journal it, to hand the operator
 * instead. New reference; NULL if a field is not valid JSON.
 */
json_t *mg_journal_record(const mg_journal_entry *entry);

/* Which records a reader wants; designated initialisers, zero for "all". */
typedef struct {
	size_t limit;     /* only the newest `limit` records (0: all) */
	int64_t since_ms; /* only records whose time is at or after this (0: no bound) */
} mg_journal_query;

/*
 * Called once per record, oldest first. The record is borrowed: it is freed
 * after the call returns (take a reference to keep it). A non-zero return
 * stops the walk and is returned by mg_journal_each.
 */
typedef int (*mg_journal_fn)(json_t *record, void *ud, mg_error *err);

/*
 * Streams the records q selects to fn, oldest first, holding one record at a
 * time: the journal of a service's whole life (100,000 records, tens of MB)
 * costs no more memory than its longest line. With a limit the file is read
 * backwards from its end, so `history -n 10` reads about 10 records whatever
 * the journal's length. *out_skipped (may be NULL) counts lines in the part
 * read that were not valid records (each also logged as a warning with its
 * line number). No journal is no records, not an error.
 */
int mg_journal_each(mg_store *store, const mg_journal_query *q, mg_journal_fn fn, void *ud,
                    size_t *out_skipped, mg_error *err);

/* mg_journal_each into a new JSON array *out: for tests and short journals. */
int mg_journal_read(json_t **out, size_t *out_skipped, mg_store *store, size_t limit,
                    mg_error *err);

#endif
