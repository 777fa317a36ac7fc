/* What step, run, rollback, pause and resume share: opening a migration, and its output. */
#ifndef MG_CMD_UTIL_SHIFT_H
#define MG_CMD_UTIL_SHIFT_H

#include "cmd.h"
#include "migration.h"

/*
 * mg_migration_open with the plan, state directory and --dry-run of the
 * command line; the plan's warnings go to stderr.
 */
int shift_open(mg_migration **m, mg_cli *cli, const char *command, mg_migration_mode mode,
               unsigned needs, mg_error *err);
/* As shift_open, with the rollback's --reason (mg_migration_options.reason). */
int shift_open_reason(mg_migration **m, mg_cli *cli, const char *command, mg_migration_mode mode,
                      unsigned needs, const char *reason, mg_error *err);

/*
 * The end of step, run and rollback: frees m (and with it the lock), then
 * prints doc (rc 0) or the error in err (rc < 0). MG_EUNRECORDED (traffic
 * moved, the record could not be written) adds the read-back and
 * record_error to doc and the record, one JSON line, to stderr. Returns the
 * exit code. out (may be NULL) is cleared.
 */
int shift_finish(mg_cli *cli, mg_migration *m, mg_shift_outcome *out, json_t *doc, mg_error *err,
                 int rc);

/* Parses a --to value; a usage error (already reported) is -1. */
int shift_parse_percent(mg_cli *cli, const char *option, const char *arg, double *out);

/* One line per server: name, side, weight, health. */
void shift_print_servers(const mg_cli *cli, const mg_traffic_state *st);

/* --dry-run: the exact balancer calls, in text or in doc["calls"]. */
int shift_print_dry_run(mg_migration *m, double target, json_t *doc, mg_error *err);

/* pause and resume, after the option parsing: hold or release, and the report. */
int shift_hold(mg_cli *cli, bool pause, const char *reason);

#endif
