/*
 * Moving traffic from one step to another, the way an operator can trust:
 * an intent is journalled (and marked pending in the state) before the
 * balancer is touched, and the result after it was read back. A command that
 * dies in between leaves the mark; the next one reads the balancer and
 * reconciles before it does anything else.
 *
 * The caller holds the store's lock.
 */
#ifndef MG_SHIFT_H
#define MG_SHIFT_H

#include <jansson.h>
#include <stdbool.h>

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
 * Applies req: journal intent, mark pending, apply through the driver with
 * read-back, record the result in the state and the journal. On failure the
 * balancer is read again so the state holds what it really has, the failure
 * is journalled, and the error is returned. *after (may be NULL) gets the
 * read-back.
 */
int mg_shift_apply(mg_traffic_state *after, mg_store *store, mg_state *st, mg_traffic *t,
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
