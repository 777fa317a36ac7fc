/*
 * Moving traffic from one step to another, the way an operator can trust:
 * an intent is journalled (and marked pending in the state) before the
 * balancer is touched, and the result after it was read back. A command that
 * dies in between leaves the mark; the next one reads the balancer and
 * reconciles before it does anything else.
 *
 * The caller holds the store's lock (a rollback tries to, and goes on
 * without it: mg_shift_open_rollback).
 */
#ifndef MG_SHIFT_H
#define MG_SHIFT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "state.h"
#include "store.h"
#include "traffic.h"

typedef struct {
	const char *command; /* "step", "rollback" */
	double k8s_percent;  /* the target share */
	int step_index;      /* index into traffic.steps of the target; -1 for 0% */
	size_t nsteps;       /* of the plan, to tell when the migration is complete */
	const char *reason;  /* journalled; may be NULL */
	bool forced;         /* an operator overrode a refusal (bake, health); journalled */
} mg_shift_request;

/*
 * What a command that moved traffic learnt: the balancer's read-back, and
 * when the move could not be recorded (MG_EUNRECORDED), why and the journal
 * record that was to be written, for the operator to keep. Clear it with
 * mg_shift_outcome_clear.
 */
typedef struct {
	mg_traffic_state read_back;
	char record_error[1024]; /* "" when everything was recorded */
	json_t *record;          /* the result record when record_error is set; else NULL */
	bool journalled;         /* record_error set: the journal has the record all the same */
	bool state_saved;        /* record_error set: the state has the move all the same */
	char spooled[1024];      /* the local spool file that keeps what was not recorded; "" */
} mg_shift_outcome;

void mg_shift_outcome_clear(mg_shift_outcome *out);

/*
 * Applies req: mark pending in the state, journal intent, apply through the
 * driver with read-back, record the result in the journal and the state. On
 * failure before the balancer changed, nothing moved and the error is
 * returned. When the balancer refuses, it is read again so the state holds
 * what it really has, the failure is journalled, and the error is returned.
 * When the balancer changed but the result cannot be recorded:
 * MG_EUNRECORDED, out (may be NULL) keeps the read-back and the record.
 * out gets the read-back on success.
 */
int mg_shift_apply(mg_shift_outcome *out, mg_store *store, mg_state *st, mg_traffic *t,
                   const mg_shift_request *req, mg_error *err);

/*
 * What a rollback could not use in the state directory. A rollback is the way
 * out: a full disk, a read-only directory, a lock file that cannot be
 * created or a damaged state.json never keeps traffic on the cluster, they
 * only keep the rollback from being recorded.
 */
typedef struct {
	bool unlocked;          /* the lock could not be taken: nothing is written */
	char lock_error[1024];  /* why */
	bool state_unread;      /* state.json cannot be read: it is not replaced */
	char state_error[1024]; /* why */
	/* the holder was an autopilot a signal cannot reach, left a stop request (store.h) */
	bool stop_asked;
	char stop_holder[300]; /* "user@host, pid N" */
} mg_shift_site;

/*
 * Opens the plan's store for a rollback through open (the state directory or
 * the cluster, as the plan says): *store (NULL if it cannot be opened at all), the lock
 * (preemptible holders are stopped as mg_store_lock_preempt does; wait_ms) and *st (a fresh state
 * when state.json cannot be read). What failed is in *site, not an error: only bad input (a plan
 * name) and another command holding the lock (MG_ELOCKED) are. A preemptible holder that
 * does not let go (on another host, where no signal reaches) is left a stop request
 * (mg_store_stop_write, reason) and the rollback goes on without the lock.
 */
int mg_shift_open_rollback(mg_store **store, mg_state *st, mg_shift_site *site,
                           mg_store_opener open, void *open_ud, const char *plan_name,
                           const char *command, const char *preemptible, int64_t wait_ms,
                           const char *reason, mg_error *err);

/*
 * The rollback itself: the balancer first (apply and read back), then the
 * record: the journal and state.json, as far as *site allows. A balancer
 * failure is returned as by mg_shift_apply. A record that cannot be written
 * is MG_EUNRECORDED with err saying where traffic is and why, and out holding
 * the read-back and the record. A pending intent in st is ended by this.
 */
int mg_shift_rollback(mg_shift_outcome *out, mg_store *store, mg_state *st,
                      const mg_shift_site *site, mg_traffic *t, const mg_shift_request *req,
                      mg_error *err);

/*
 * A rollback that moved traffic without the lock (an autopilot of another
 * host held it and was asked to stop), recorded once the lock is taken after
 * all: st is the state as read under it, out the rollback's outcome (its
 * read-back). Journal and state as mg_shift_rollback would have written
 * them; MG_EUNRECORDED as there.
 */
int mg_shift_rollback_record_late(mg_shift_outcome *out, mg_store *store, mg_state *st,
                                  const mg_shift_request *req, mg_error *err);

/*
 * If st has a pending intent, makes the balancer run what it reports
 * (mg_traffic_settle: nginx tests and reloads its file again; a failure is
 * returned and nothing is recorded), reads it and records what happened: the
 * target was reached (the step counts as taken), the old weights are still
 * there (nothing happened), or neither. Sets *reconciled; a journal record
 * "reconcile" with the outcome is written, once per intent: when the journal
 * already has it (the state could not be saved last time), it is not repeated.
 */
int mg_shift_reconcile(bool *reconciled, const char **outcome, mg_store *store, mg_state *st,
                       mg_traffic *t, const char *command, mg_error *err);

/* Live share as read now, and whether it differs from the last read-back (hand changes). */
int mg_shift_drift(bool *drift, double *live, const mg_state *st, mg_traffic *t, mg_error *err);

/* Takes the live weights as the recorded ones (after drift); journalled as "adopt". */
int mg_shift_adopt(mg_store *store, mg_state *st, double live, const char *command,
                   const char *reason, mg_error *err);

#endif
