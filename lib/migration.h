/*
 * A migration: the rules every front end (`step`, `run`, `rollback`, `pause`,
 * `resume`, and an autopilot elected elsewhere) obeys, so none of them can
 * skip one. Opening loads the plan, the state directory (lock, state.json),
 * the balancer's driver and, on first use, the metrics source; the
 * preconditions of a step are one function; the autopilot's decision table is
 * a pure function of (state, evaluation, plan, now); every journal record and
 * state save is written here, never by the caller.
 */
#ifndef MG_MIGRATION_H
#define MG_MIGRATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"
#include "gate.h"
#include "metrics.h"
#include "plan.h"
#include "serve.h"
#include "shift.h"
#include "state.h"
#include "store.h"
#include "traffic.h"

typedef struct mg_migration mg_migration;

typedef enum {
	MG_MIGRATION_SHIFT,    /* step, run: the lock, state.json unmoved, balancer, reconcile */
	MG_MIGRATION_ROLLBACK, /* the state directory never stops it: what failed is in site */
	MG_MIGRATION_HOLD,     /* pause, resume: plan and state directory; no lock, no balancer */
	MG_MIGRATION_READ,     /* status: any plan; the state directory if it exists, unlocked;
	                          a state.json that cannot be read is kept as an error, not one */
} mg_migration_mode;

typedef struct {
	const char *plan_path; /* NULL: migrate.yaml */
	const char *state_dir; /* NULL: the plan's state.dir */
	const char *command;   /* "step", "run", ...: the lock's and the journal's name */
	mg_migration_mode mode;
	unsigned needs; /* plan sections beyond traffic (MG_NEED_*; mode read: only these) */
	bool dry_run;   /* no lock, nothing written, no state directory created */
	/* rollback: why, left in the stop request for an autopilot of another host; may be NULL */
	const char *reason;
	/*
	 * For tests: a balancer (mg_traffic_open_driver) and a metrics source
	 * (mg_metrics_open_source) used instead of the plan's haproxy, nginx or
	 * Cloudflare and its Prometheus. When set, the migration owns them from
	 * the call on, whatever mg_migration_open returns; a mode that opens no
	 * balancer keeps the given one all the same. NULL: the plan's.
	 */
	mg_traffic *traffic;
	mg_metrics *metrics;
	/* mode shift: a standby that won the Lease (no "the state moved while waiting" check) */
	bool elected;
} mg_migration_options;

/* How long a rollback waits for a stopped autopilot to let go of the lock. */
#define MG_MIGRATION_PREEMPT_WAIT_MS 10000

/*
 * Opens a migration. The plan's warnings are left in err as diagnostics (its
 * code 0 on success) for the caller to show. A step that waited for the lock
 * acts on the state it found when it started: when state.json moved
 * meanwhile, MG_ECONFLICT saying what changed. An interrupted command is
 * reconciled (not with dry_run; for a rollback, only when it can be).
 */
int mg_migration_open(mg_migration **out, const mg_migration_options *o, mg_error *err);
void mg_migration_free(mg_migration *m); /* releases the lock */

const mg_plan *mg_migration_plan(const mg_migration *m);
const mg_plan_traffic *mg_migration_traffic(const mg_migration *m);
const mg_state *mg_migration_state(const mg_migration *m);
mg_traffic *
mg_migration_balancer(mg_migration *m); /* NULL in mode hold, unless the options gave one */
/* state.backend kubernetes: this machine's local spool (spool.h); NULL with a local store. */
const char *mg_migration_spool_dir(const mg_migration *m);
/*
 * Rollback: the autopilot of another host that held the plan and was left a
 * stop request ("user@host, pid N"), or NULL.
 */
const char *mg_migration_stop_asked(const mg_migration *m);
/* The outcome of a reconciliation done on opening ("applied", ...), or NULL. */
const char *mg_migration_reconciled(const mg_migration *m);
/* The flag that cuts metrics queries short (a signal); before the first evaluation. */
void mg_migration_set_cancel(mg_migration *m, const mg_cancel *flag);
/* Opens the metrics source (slo) now rather than at the first evaluation. */
int mg_migration_metrics_open(mg_migration *m, mg_error *err);

/* "step 2 of 4 (25%)" or "before the first step (0%)". */
void mg_migration_step_name(char *buf, size_t size, const mg_state *st, const mg_plan_traffic *t);
/* Index of pct in traffic.steps, or -1. */
int mg_migration_step_index(const mg_plan_traffic *t, double pct);

/* ---- the preconditions of a step ---- */

typedef struct {
	const char *reason; /* journalled with an allowed skew or an adoption; may be NULL */
	bool has_to;        /* a target step given (step --to); else the next one */
	double to;
	const char *to_text; /* as the operator wrote it, for messages */
	bool force;          /* bake, pause and gates overridden (the reason says why) */
	bool adopt;          /* drift: take the live weights as the recorded ones */
	bool allow_skew;     /* VMs and cluster on different releases */
	bool bake;           /* refuse while the current step bakes (step; run waits instead) */
	bool gates;          /* evaluate the gates of the step being left (step; run decides) */
	int64_t now_ms;
} mg_step_rules;

typedef struct {
	int target;        /* index into traffic.steps of the step to take */
	bool at_end;       /* already at the last step: nothing to do (target -1) */
	bool skew_allowed; /* journalled as skew-allowed */
	bool adopted;      /* drift taken as the recorded weights */
	bool has_gates;    /* gates evaluated: also set when they refused the step */
	mg_gate_eval gates;
} mg_step_verdict;

/*
 * Whether the next step may be taken, in this order: releases (skew, or a
 * cluster whose rollout of the VMs' release failed: MG_ECONFLICT unless
 * allow_skew), hand-changed weights (MG_ECONFLICT unless adopt), the target
 * (--to: MG_EINVALID), the bake (MG_EINCONCLUSIVE), a pause or pause request
 * (MG_ECONFLICT), the gates of the step being left (MG_ERROR on fail,
 * MG_EINCONCLUSIVE otherwise; journalled). Clear out with
 * mg_step_verdict_clear, whatever the return.
 */
int mg_migration_check_step(mg_step_verdict *out, mg_migration *m, const mg_step_rules *r,
                            mg_error *err);
void mg_step_verdict_clear(mg_step_verdict *v);

/* ---- moving traffic (lib/traffic/shift.c underneath: intent, read-back, record) ---- */

/* Moves to step idx (-1: 0%) with read-back; MG_EUNRECORDED keeps the read-back in out. */
int mg_migration_shift(mg_shift_outcome *out, mg_migration *m, int idx, const char *reason,
                       bool forced, mg_error *err);
/*
 * Where a rollback to to_percent goes (to_text: --to as written, NULL for all
 * of it, to 0%): *idx, the step (-1 for 0%), which must be one of
 * traffic.steps, and *from, the share the balancer reads now (drifted or not:
 * rollback is the way out), which the target must be below. MG_EINVALID when not.
 */
int mg_migration_rollback_check(int *idx, double *from, mg_migration *m, double to_percent,
                                const char *to_text, mg_error *err);
/*
 * A traffic rollback to to_percent (step idx, or -1): the balancer first, then
 * the record as far as the state directory allows (MG_EUNRECORDED), and a
 * pause request left behind is removed (it would block the next run).
 */
int mg_migration_rollback(mg_shift_outcome *out, mg_migration *m, double to_percent, int idx,
                          const char *reason, bool forced, mg_error *err);

/*
 * A move of traffic as `-o json` reports it: plan, from {k8s_percent, step}
 * (no step when from_idx is NULL: a rollback starts from what the balancer
 * reads, wherever that is), to {k8s_percent, step}, read_back, phase and
 * reconciled. Steps are 1-based, null for 0%. New reference.
 */
json_t *mg_migration_move_to_json(const mg_migration *m, const mg_shift_outcome *out, double from,
                                  const int *from_idx, double to, int idx);

/* ---- gate journalling ---- */

/* Records the evaluation in st's gate fields (not saved). */
void mg_migration_gate_record(mg_state *st, const mg_gate_eval *ev);
/*
 * Journals an evaluation that led to a decision: action "gate", the outcome
 * and the decision in "after", the summary as the reason, the whole
 * evaluation as evidence. Also records it in st (not saved).
 */
int mg_migration_gate_journal(mg_store *store, mg_state *st, const char *command,
                              const mg_gate_eval *ev, const char *decision, mg_error *err);

/* ---- pause and resume ---- */

typedef struct {
	const char *how; /* "paused", "already paused", "the running autopilot paused", ... */
	bool changed;
	long autopilot_pid; /* the running autopilot that was asked, or 0 */
} mg_hold_result;

/*
 * Holds the migration at its current weights (pause) or releases it (resume),
 * journalled with reason. A running autopilot holds the lock: it is asked
 * through the pause file and waited for up to wait_ms to confirm. m is opened
 * in mode hold; its state is the one reported.
 */
int mg_migration_pause(mg_hold_result *out, mg_migration *m, const char *reason, int64_t wait_ms,
                       mg_error *err);
int mg_migration_resume(mg_hold_result *out, mg_migration *m, const char *reason, int64_t wait_ms,
                        mg_error *err);
/* `pause -o json`'s and `resume -o json`'s members (docs/cli.md); a new object. */
json_t *mg_hold_result_to_json(const mg_hold_result *h, const mg_migration *m);

/* ---- status ---- */

typedef struct {
	mg_state st;   /* as recorded; a fresh state when nothing is, or it cannot be read */
	bool recorded; /* a command has saved a state */
	int state_rc;  /* state.json cannot be read (MG_E*): why in state_error */
	char state_error[1024];
	bool lock_held;
	mg_lock_holder holder;
	bool has_live; /* the balancer read now (not offline), else why in live_error */
	mg_traffic_state live;
	char live_error[1024];
	const char *pending_outcome; /* an interrupted command: "applied", "not applied",
	                                "unknown" as the next command will record it; or NULL */
	bool drift;                  /* live differs from what migrate last set */
	int64_t bake_left_ms;        /* of the current step; -1 when no step bakes */
	json_t *fleet; /* vms: {hosts, recorded, unknown, versions, skew, off_version}, or NULL */
	char fleet_error[1024]; /* fleet.json cannot be read */
	/*
	 * No state recorded (no state directory or no state.json) and not offline:
	 * st's versions and fleet were rebuilt from the world. rebuilt names the
	 * fields filled ("versions.vms", "versions.vms_previous", "fleet",
	 * "versions.kubernetes", "versions.kubernetes_previous"); rebuild is what
	 * was read: {hosts: [mg_fleet_survey_to_json], hosts_read, cluster:
	 * mg_cluster_live_to_json or {version, previous, missing}}, a side the plan
	 * lacks null. Both NULL when the state was recorded.
	 */
	json_t *rebuilt;
	json_t *rebuild;
	/*
	 * state.backend kubernetes: the standbys of leader-elected autopilots
	 * (mg_kube_standby_list: holder, seen, alive), else NULL; a cluster that
	 * cannot list them says why in standbys_error.
	 */
	json_t *standbys;
	char standbys_error[512];
} mg_status;

/* Where m (opened in mode read) stands; offline: the balancer is not read. */
int mg_migration_status(mg_status *out, mg_migration *m, bool offline, int64_t now_ms,
                        mg_error *err);
void mg_status_clear(mg_status *s);
/* `status -o json`'s members (docs/cli.md), with "error" when state.json cannot be read; a new
 * object. state_dir: the directory the state is in. */
json_t *mg_status_to_json(const mg_status *s, const mg_migration *m, const char *state_dir);

/* ---- the gates once (`migrate check`) ---- */

typedef struct {
	const char *state_dir; /* where state.json may be: read, never created or locked */
	bool has_at;           /* at_ms given (check --at); else now */
	int64_t at_ms;
	int64_t since_ms; /* the traffic since then (check --since); -1: since the step began */
} mg_gates_once_options;

/*
 * The gates of plan (loaded with MG_NEED_SLO) evaluated once into out,
 * changing nothing. *st is the state as recorded, or a fresh one when there
 * is none. A start after the time evaluated is MG_EINVALID: there is no
 * traffic to judge.
 */
int mg_migration_check_gates(mg_gate_eval *out, mg_state *st, const mg_plan *plan,
                             const mg_gates_once_options *o, mg_error *err);

/* ---- the preview (`migrate plan`) ---- */

/*
 * What plan will do, contacting nothing: the members plan, build, vms,
 * kubernetes, traffic (every step with the weights each server is given),
 * slo (the gates' PromQL expanded) and minimum_duration_ms of `plan -o json`
 * (docs/cli.md), a section the plan lacks as null; a new object. state_dir:
 * the directory the state would be in.
 */
int mg_migration_preview(json_t **out, const mg_plan *plan, const char *state_dir, mg_error *err);

/* ---- the autopilot's decision table ---- */

typedef enum {
	MG_DECIDE_FORGET,   /* no data yet right after a step: no news, nothing journalled */
	MG_DECIDE_COUNT,    /* a failure below slo.failure_limit: counted */
	MG_DECIDE_ROLLBACK, /* failure_limit reached, on_failure rollback: back to the VMs */
	MG_DECIDE_PAUSE,    /* failure_limit reached, on_failure pause: held */
	MG_DECIDE_STALLED,  /* inconclusive for 3 x max(bake, interval): held */
	MG_DECIDE_HOLD,     /* inconclusive: wait */
	MG_DECIDE_BAKE,     /* pass, but the step bakes */
	MG_DECIDE_DRIFT,    /* pass and baked, but the weights were changed by hand: held */
	MG_DECIDE_ADVANCE,  /* pass and baked: the next step */
} mg_decision_kind;

typedef enum {
	MG_RUN_GOES_ON,
	MG_RUN_DONE,         /* --until or 100% reached */
	MG_RUN_FAILED,       /* rolled back or held on failures or drift */
	MG_RUN_INCONCLUSIVE, /* held on inconclusive gates */
	MG_RUN_STOPPED,      /* a stop request: a rollback (on another host) has the traffic */
} mg_run_end;

typedef struct {
	const mg_state *st; /* step_index, step_started_ms, gate_failures */
	const mg_plan_traffic *traffic;
	const mg_plan_slo *slo;
	mg_gate_outcome outcome; /* of this evaluation */
	bool awaiting_data;      /* of this evaluation */
	bool changed;            /* first evaluation at this step, or a new outcome */
	int64_t now_ms;
	int64_t inconclusive_since_ms; /* 0: the last evaluation was conclusive */
	bool data_seen;                /* an evaluation at this step had data */
	bool drift;                    /* read only for a pass after the bake */
	int until;                     /* index of the last step to take */
} mg_decision_input;

typedef struct {
	mg_decision_kind kind;
	const char *journal; /* decision journalled with the evaluation, or NULL: none */
	bool save;           /* state.json saved after that record */
	int gate_failures;   /* the state's count after this evaluation */
	int64_t inconclusive_since_ms;
	bool data_seen;
	int target;     /* ADVANCE: the next step; ROLLBACK: -1 */
	mg_run_end end; /* whether the run ends with this decision */
} mg_decision;

/* True once the current step has baked (traffic.bake since it began). */
bool mg_migration_baked(const mg_state *st, const mg_plan_traffic *t, int64_t now_ms);
/* The decision table: pure, no I/O. */
void mg_migration_decide(mg_decision *out, const mg_decision_input *in);

/* ---- the autopilot ---- */

typedef struct mg_autopilot mg_autopilot;

typedef struct {
	int until; /* index of the last step to take */
	/* what happened, in words, as it happens (the caller shows it); may be NULL */
	void (*event)(void *ud, const char *msg);
	void *ud;
	/*
	 * A leader-elected autopilot (mg_standby_*): a stop request is read, not
	 * taken, so it halts every replica until the rollback is recorded; and
	 * before each move the Lease is renewed if due, or the move is not made.
	 */
	bool elected;
} mg_autopilot_options;

/* Over m (opened in mode shift with MG_NEED_SLO); m stays the caller's. */
int mg_autopilot_new(mg_autopilot **out, mg_migration *m, const mg_autopilot_options *o,
                     mg_error *err);
void mg_autopilot_free(mg_autopilot *ap);
/*
 * Before a run over m: *until_idx, the step until_pct names (until_text: as the
 * operator wrote it, NULL for 100; MG_EINVALID when it is not one of
 * traffic.steps); *done, "complete" or "until-reached" when the current step is
 * already there (nothing to do, nothing checked), else NULL, and then the rules
 * of `migrate step` (skew unless allow_skew, drift, pause; the bake and the
 * gates are the loop's to wait for) and the metrics source, opened. cancel (may
 * be NULL) stops every wait of the run.
 */
int mg_autopilot_prepare(int *until_idx, const char **done, mg_migration *m, double until_pct,
                         const char *until_text, bool allow_skew, const mg_cancel *cancel,
                         mg_error *err);
/* Journals start and takes the first step when none was taken (the measurement). */
int mg_autopilot_start(mg_run_end *end, mg_autopilot *ap, mg_error *err);
/*
 * One turn of the loop at now: follows a pause request (or its removal), and
 * when due, evaluates the gates and does what the decision table says.
 * *end tells whether the run is over.
 */
int mg_autopilot_tick(mg_run_end *end, mg_autopilot *ap, int64_t now_ms, mg_error *err);
/*
 * The journal's last record of a run that journalled start: "end" with the
 * outcome, the exit code and why; best effort (the journal may be what failed).
 */
void mg_autopilot_journal_end(mg_autopilot *ap, const char *outcome, int exit_code,
                              const char *why);
/*
 * The end of a run: its outcome ("stopped", "complete", "until-reached",
 * "rolled-back", "paused") and its last record: "stop" when the run still went
 * on (stopped by the signal named stopped_by) or a stop request ended it
 * (MG_RUN_STOPPED: who asked and why), else "end". say gets the line to show
 * ("" for none).
 */
const char *mg_autopilot_finish(mg_autopilot *ap, mg_run_end end, const char *stopped_by,
                                int exit_code, char *say, size_t size);

bool mg_autopilot_paused(const mg_autopilot *ap);
int64_t mg_autopilot_next_eval_ms(const mg_autopilot *ap);
/* The last evaluation at this step, or NULL. */
const mg_gate_eval *mg_autopilot_last(const mg_autopilot *ap);
/* The evaluation that made the last move, as JSON (borrowed), or NULL. */
json_t *mg_autopilot_decided(const mg_autopilot *ap);
/* A move that could not be recorded (MG_EUNRECORDED): its read-back and record. */
mg_shift_outcome *mg_autopilot_moved(mg_autopilot *ap);
/*
 * `run -o json`'s members before "events" (docs/cli.md): plan, the run's outcome, phase,
 * step, k8s_percent and the last gates (the evaluation that made the last move when
 * none since); ap may be NULL (a dry run, nothing to do). A new object.
 */
json_t *mg_autopilot_to_json(const mg_migration *m, const mg_autopilot *ap, const char *outcome);

/* ---- leader election (lib/migration/leader.c): `migrate run --leader-elect` ---- */

/*
 * A process waiting to lead a plan's autopilot: it keeps a standby Lease of
 * its own (so `status` lists it) and reads the plan's Lease, stop and pause
 * requests and state every retry (a fifth of the lease, 200 ms to 1 s).
 */
typedef struct mg_standby mg_standby;

typedef struct {
	const char *plan_path;  /* NULL: migrate.yaml */
	const char *state_dir;  /* NULL: the plan's state.dir (the local spool) */
	double until_pct;       /* --until: at that step, nothing to lead (0: 100) */
	const char *until_text; /* as the operator wrote it, for the message; NULL: 100 */
	const mg_cancel *cancel;
	/* --metrics-addr: the standby publishes its role and the state it read there; may be NULL
	 */
	mg_serve *serve;
	/* what it waits for, said once per change; may be NULL */
	void (*event)(void *ud, const char *msg);
	void *ud;
} mg_standby_options;

/* MG_EINVALID unless the plan keeps its state in the cluster (state.backend: kubernetes). */
int mg_standby_new(mg_standby **out, const mg_standby_options *o, mg_error *err);
/* Removes its standby Lease (when it has one) and frees it. */
void mg_standby_free(mg_standby *s);
/*
 * Waits until this process may try to lead (*go): the plan's Lease is free
 * or has run out, no rollback's stop request is pending, and the state is
 * one an autopilot drives (not complete, rolled back, paused or at --until).
 * *go false when the cancel flag ended the wait. A cluster that cannot be
 * reached is said and waited out, never an error.
 */
int mg_standby_wait(bool *go, mg_standby *s, mg_error *err);
/* Deletes its standby Lease: it leads now (the next wait makes it again). */
int mg_standby_leave(mg_standby *s, mg_error *err);
/* The holder last seen leading ("" for none); *released: it handed the Lease over. */
const char *mg_standby_last_leader(const mg_standby *s, bool *released);
/* This process as a holder of Leases: "user@host pid N command run id X". */
const char *mg_standby_holder(const mg_standby *s);
int64_t mg_standby_waited_ms(const mg_standby *s);
/* The journal's "takeover" record: from whom, how (first, expired, handed-over), the step. */
int mg_migration_journal_takeover(mg_migration *m, const mg_standby *s, mg_error *err);
/* The "handover" record of a leader that releases its Lease on signal_name ("SIGTERM"). */
int mg_migration_journal_handover(mg_migration *m, const char *signal_name, mg_error *err);
/* Whether m's lock (a Lease) was lost: taken over, or not renewed by its deadline. */
bool mg_migration_leadership_lost(mg_migration *m);
/* When the loop last ticked (Unix ms, the now_ms given to mg_autopilot_tick), or 0. */
int64_t mg_autopilot_last_tick_ms(const mg_autopilot *ap);

/* ---- what a running autopilot exposes (lib/migration/expose.c; docs/cli.md, "migrate run") ----
 */

/* What the metrics text is made of; every pointer but st and traffic may be NULL. */
typedef struct {
	const char *plan; /* the plan's name: label plan of every sample */
	const mg_state *st;
	const mg_plan_traffic *traffic;
	const mg_plan_slo *slo;
	const mg_gate_eval *last; /* the autopilot's last evaluation at this step */
	int64_t last_tick_ms;     /* Unix ms; 0: no tick yet */
	const char *role;         /* "leader", "standby" or "single" */
	int64_t now_ms;           /* Unix ms: the bake left is counted from it */
} mg_autopilot_view;

/*
 * The Prometheus text exposition format 0.0.4 of v (HELP and TYPE lines, every
 * name migrate_*, label plan, label values escaped) into *text (the caller's
 * to free). MG_ENOMEM only.
 */
int mg_autopilot_metrics_render(char **text, const mg_autopilot_view *v, mg_error *err);
/* The same for m and the autopilot running over it (ap may be NULL: none runs). */
int mg_autopilot_metrics_text(char **text, const mg_migration *m, const mg_autopilot *ap,
                              const char *role, int64_t now_ms, mg_error *err);
/*
 * How long /healthz stays 200 after a publish: 30 s, or longer when one tick
 * of m may legitimately take longer (3 x slo.interval; every query of an
 * evaluation cut at twice slo.prometheus.timeout, plus 30 s). m may be NULL.
 */
int64_t mg_autopilot_live_ms(const mg_migration *m);
/*
 * Publishes on srv: /metrics (mg_autopilot_metrics_text; not when m is NULL,
 * before the migration is open), /healthz (200 "ok", turning 503 by itself
 * mg_autopilot_live_ms(m) after this call unless another comes: a loop that
 * hangs fails its liveness probe), /readyz (200 when ready, 503 otherwise).
 */
int mg_autopilot_publish(mg_serve *srv, const mg_migration *m, const mg_autopilot *ap,
                         const char *role, bool ready, mg_error *err);

/* ---- the state between a directory and the cluster (lib/migration/statecopy.c, unlock.c) ---- */

typedef struct {
	const char *state_dir; /* where the local state is (NULL: the plan's state.dir) */
	bool force;            /* over state the cluster already has */
	bool dry_run;          /* read both sides, write nothing, take no lock */
} mg_push_options;

/* What a push or a pull found and copied. */
typedef struct {
	char from[1100]; /* the local directory (push) or the cluster's objects (pull) */
	char to[1100];
	/* push: what the cluster had before (replaced with force, else the refusal's numbers) */
	bool had_state;
	uint64_t had_revision; /* 0: no state.json */
	size_t had_records;    /* journal records */
	bool had_fleet;
	uint64_t revision; /* state.json as written (push: the cluster's new revision) */
	size_t records;    /* journal records copied */
	size_t skipped;    /* torn or corrupt journal lines not copied */
	size_t manifests;  /* manifest records copied */
	bool fleet;        /* fleet.json copied */
	bool written;      /* false for a dry run */
} mg_state_copy;

/*
 * `migrate state push`: copies the plan's local state directory (state.json,
 * fleet.json, manifests/, journal.jsonl) into the store of its cluster; the
 * plan must have `state.backend: kubernetes` (MG_EINVALID otherwise). Holds
 * the local lock and the cluster's Lease while it writes. MG_ECONFLICT when
 * the cluster already has state for the plan (its revision and journal
 * length in the message), unless o->force: then state.json, fleet.json and
 * the manifests are replaced, and the journal's records follow the cluster's
 * own (a journal is never rewritten). The records keep their time, operator
 * and order; the cluster numbers them (seq) after its last one. A last
 * record of its own, command "state" action "push", says from where and
 * how many. state.json keeps its revision, or goes past the cluster's.
 */
int mg_migration_push(mg_state_copy *out, const mg_plan *plan, const mg_push_options *o,
                      mg_error *err);

/*
 * `migrate state pull DIR`: the cluster's state of the plan into dir, laid
 * out as a state directory (dir/state.json, journal.jsonl, fleet.json,
 * manifests/V.json; files 0600, dir 0700, created if needed). Reads only, no
 * lock. MG_EINVALID when dir is not empty (unless force: the files of that
 * layout are replaced, those the cluster lacks removed) or the plan keeps
 * its state locally; MG_ENOTFOUND when the cluster has nothing for the plan.
 */
int mg_migration_pull(mg_state_copy *out, const mg_plan *plan, const char *dir, bool force,
                      mg_error *err);

typedef struct {
	bool force;         /* required: the lock is taken from a holder that may be alive */
	const char *reason; /* required, for the journal */
	bool dry_run;       /* say whom it would displace; change nothing */
} mg_unlock_options;

typedef struct {
	char where[256];       /* "kubernetes NS/migrate-PLAN" */
	bool held;             /* someone held the lock, unexpired, when asked */
	mg_lock_holder holder; /* who (operator_, pid, command, since_ms) */
	char identity[512];    /* the Lease's holderIdentity as displaced ("" if none), scrubbed */
	bool taken;            /* taken over, journalled and released (false for a dry run) */
} mg_unlock_result;

/*
 * `migrate unlock --force --reason TEXT`, as `terraform force-unlock`: takes
 * the plan's Lease over from its holder (mg_kube_lease_force), journals
 * command "unlock" action "force" naming the holder displaced and the
 * reason, and releases it. The displaced holder's next write is refused by
 * the fencing token. 0 with out->held false when nobody holds it (nothing
 * written). MG_EINVALID without force or reason, and for a plan with
 * `state.backend: local`, whose flock the kernel releases when its holder
 * dies: there is never a stale one to force.
 */
int mg_migration_unlock(mg_unlock_result *out, const mg_plan *plan, const mg_unlock_options *o,
                        mg_error *err);

#endif
