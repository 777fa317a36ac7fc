/* What check, step and run share about the gates: printing an evaluation. */
#ifndef MG_CMD_UTIL_GATE_H
#define MG_CMD_UTIL_GATE_H

#include "cmd.h"
#include "gate.h"
#include "migration.h"

/* Prints an evaluation as a table: one line per check, details under it. */
void gate_print(FILE *f, const mg_cli *cli, const mg_gate_eval *ev, bool color);

/* "step 2 of 4 (25%)" or "before the first step (0%)" (lib/migration). */
#define gate_step_name mg_migration_step_name

#endif
