/*
 * state.json: where the migration stands. Written atomically (temp file,
 * fsync, rename, fsync of the directory; mode 0600) so that a crash leaves
 * either the old or the new state, never a mix.
 *
 * Every save bumps `revision`. A save checks that the file still has the
 * revision that was loaded, so two writers (or a hand edit) cannot silently
 * overwrite each other: that is MG_ECONFLICT, exit 3.
 */
#ifndef MG_STATE_H
#define MG_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

#define MG_STATE_FORMAT 1

typedef enum {
	MG_PHASE_IDLE,
	MG_PHASE_SHIFTING,
	MG_PHASE_PAUSED,
	MG_PHASE_ROLLED_BACK,
	MG_PHASE_COMPLETE,
} mg_phase;

typedef struct {
	uint64_t revision; /* 0: nothing saved yet */
	char plan[64];
	mg_phase phase;
	int step_index;          /* index into traffic.steps; -1 before the first step */
	int64_t step_started_ms; /* 0 if never */
	bool has_applied;
	double applied_k8s_percent; /* what we last asked the balancer for */
	int64_t applied_ms;
	bool has_read_back;
	double read_back_k8s_percent; /* what the balancer reported afterwards */
	int64_t read_back_ms;
	char vms_version[128];          /* "" if never deployed */
	char vms_previous_version[128]; /* what the fleet ran before vms_version; "" if unknown */
	char kubernetes_version[128];
	/* what the cluster ran before kubernetes_version ("" if unknown): rollback --release */
	char kubernetes_previous_version[128];
	/*
	 * How the last cluster deploy or rollback of kubernetes_version ended once
	 * anything of it was applied: "ok" (every rollout done), "failed" (an apply or
	 * a rollout failed: the cluster has some of it, not healthy), "" (unknown:
	 * files from before this was recorded). A failed release is never made
	 * kubernetes_previous_version (a rollback must go back to one that ran).
	 */
	char kubernetes_rollout[16];
	char kubernetes_error[512]; /* why it failed; "" unless "failed" */
	int64_t created_ms;
	int64_t updated_ms;
	/*
	 * An intent journalled before touching the balancer whose result is not
	 * recorded yet. Set means a command died in between: the next command
	 * reads the balancer back and reconciles before doing anything else.
	 */
	bool pending;
	char pending_command[16]; /* "step", "rollback" */
	double pending_k8s_percent;
	int pending_step_index; /* -1 for all traffic on the VMs */
	int64_t pending_ms;
	/* The gates at the current step; reset when a step is taken. */
	int gate_failures;      /* failed evaluations, against slo.failure_limit */
	char gate_last[16];     /* outcome of the last evaluation, "" if none */
	int64_t gate_last_ms;   /* when it was evaluated */
	char gate_summary[256]; /* the checks that decided it, in words */
	char pause_reason[256]; /* phase paused: who paused it and why */
} mg_state;

/* A new step was taken: the gates start again from nothing. */
void mg_state_reset_gates(mg_state *st);

/* A fresh state: idle, step -1, revision 0. */
void mg_state_init(mg_state *st, const char *plan_name);

/* Loads state.json; a missing file gives a fresh state (revision 0). */
int mg_state_load(mg_state *out, mg_store *store, mg_error *err);

/*
 * Saves atomically. The caller must hold the store's lock. Fails with
 * MG_ECONFLICT if the file's revision is no longer st->revision; on success
 * st->revision and st->updated_ms are advanced.
 */
int mg_state_save(mg_store *store, mg_state *st, mg_error *err);

const char *mg_phase_name(mg_phase p);
int mg_phase_parse(mg_phase *out, const char *s);

/* The document written to state.json (and shown by `migrate status -o json`). New reference. */
json_t *mg_state_to_json(const mg_state *st);
/* kubernetes_error = msg (NULL: ""), cut at a UTF-8 character boundary if too long. */
void mg_state_set_kubernetes_error(mg_state *st, const char *msg);
int mg_state_from_json(mg_state *out, const json_t *doc, mg_error *err);

#endif
