/* What check, step and run share about the gates: metrics, evaluation, printing, journal. */
#ifndef MG_CMD_UTIL_GATE_H
#define MG_CMD_UTIL_GATE_H

#include "cmd.h"
#include "gate.h"
#include "metrics.h"
#include "state.h"
#include "store.h"

/* Prints an evaluation as a table: one line per check, details under it. */
void gate_print(FILE *f, const mg_cli *cli, const mg_gate_eval *ev, bool color);

/*
 * Journals an evaluation that led to a decision: action "gate", the outcome
 * and the decision in "after", the summary as the reason, the whole
 * evaluation as evidence. Also records it in st (not saved).
 */
int gate_journal(mg_store *store, mg_state *st, const char *command, const mg_gate_eval *ev,
                 const char *decision, mg_error *err);

/* Records the evaluation in st's gate fields (not saved). */
void gate_record(mg_state *st, const mg_gate_eval *ev);

/* "step 2 of 4 (25%)" or "before the first step (0%)". */
void gate_step_name(char *buf, size_t size, const mg_state *st, const mg_plan_traffic *t);

#endif
