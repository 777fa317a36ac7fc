/* What step and rollback share: plan, lock, state, balancer, reconciliation, output. */
#ifndef MG_CMD_UTIL_SHIFT_H
#define MG_CMD_UTIL_SHIFT_H

#include "cmd.h"
#include "shift.h"
#include "state.h"
#include "store.h"
#include "traffic.h"

typedef struct {
	mg_plan *plan;
	const mg_plan_traffic *traffic;
	mg_store *store;
	mg_state st;
	mg_traffic *t;
	const char *reconciled; /* outcome of a reconciliation done on opening, or NULL */
	mg_shift_site site;     /* rollback: what of the state directory it could not use */
} shift_ctx;

/*
 * Loads the plan, takes the lock (with dry-run: none, and nothing is
 * written), loads the state, opens the balancer's driver and reconciles an
 * interrupted command. preempt: stop an autopilot holding the lock. needs: plan sections
 * beyond traffic (MG_NEED_*).
 */
int shift_open(shift_ctx *c, mg_cli *cli, const char *command, bool preempt, unsigned needs,
               mg_error *err);
/*
 * A command that waited for the lock acts on the state it found when it started:
 * when state.json moved meanwhile (another step went first), shift_open fails with
 * MG_ECONFLICT, exit 3, saying what changed.
 */

/*
 * shift_open for a traffic rollback, which the state directory never stops: a
 * directory or lock that cannot be written, or a state.json that cannot be
 * read, go into c->site (mg_shift_open_rollback) and the rollback goes on.
 */
int shift_open_rollback(shift_ctx *c, mg_cli *cli, mg_error *err);
void shift_close(shift_ctx *c);

/*
 * The end of step and rollback: releases everything (and with it the lock),
 * then prints doc (rc 0) or the error in err (rc < 0). MG_EUNRECORDED (traffic
 * moved, the record could not be written) adds the read-back and
 * record_error to doc and the record, one JSON line, to stderr. Returns the
 * exit code. out (may be NULL) is cleared.
 */
int shift_finish(mg_cli *cli, shift_ctx *c, mg_shift_outcome *out, json_t *doc, mg_error *err,
                 int rc);

/* Index of pct in traffic.steps, or -1. */
int shift_step_index(const mg_plan_traffic *t, double pct);

/* Parses a --to value; a usage error (already reported) is -1. */
int shift_parse_percent(mg_cli *cli, const char *option, const char *arg, double *out);

/* One line per server: name, side, weight, health. */
void shift_print_servers(const mg_cli *cli, const mg_traffic_state *st);

/* --dry-run: the exact balancer calls, in text or in doc["calls"]. */
int shift_print_dry_run(shift_ctx *c, double target, json_t *doc, mg_error *err);

/*
 * For pause and resume while an autopilot runs: waits up to wait_ms for the
 * state it writes to show (paused) or stop showing (!paused) the paused
 * phase. 0 when it did, MG_ERROR when it did not in time; *st gets the state.
 */
int shift_wait_paused(mg_state *st, mg_store *store, bool paused, int64_t wait_ms, mg_error *err);

/* When the lock is held: the pid of the autopilot (`run`) holding it, or 0 for anyone else. */
long shift_autopilot_pid(mg_store *store);

/* pause and resume: --reason TEXT into *(const char **)ud. */
int shift_reason_opt(mg_cli *cli, int opt, const char *arg, void *ud);

/*
 * The end of pause and resume: doc (then emitted) or one line, "NAME: how at
 * <step>", with hint after it when given. Returns the exit code.
 */
int shift_hold_report(mg_cli *cli, json_t *doc, const mg_plan *plan, const mg_state *st,
                      const char *how, bool changed, long pid, const char *hint);

/* How long pause and resume wait for a running autopilot to confirm. */
#define SHIFT_ACK_WAIT_MS 3000
#endif
