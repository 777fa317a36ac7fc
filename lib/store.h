/*
 * A plan's state directory, <state dir>/<plan name>/, and the lock that makes
 * one operator at a time the writer of it.
 *
 * The lock is flock(2) on <dir>/lock: the kernel drops it when the holder
 * dies, so a crashed `migrate step` never leaves a stale lock that someone
 * has to delete by hand at 3 a.m. The holder writes who it is into the file
 * so the next operator is told whom to talk to.
 */
#ifndef MG_STORE_H
#define MG_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"

typedef struct mg_store mg_store;

typedef struct {
	char operator_[256]; /* user@host */
	long pid;
	int64_t since_ms; /* Unix time in milliseconds */
	char command[64];
} mg_lock_holder;

/* Opens (creating with mode 0700 if needed) <state_dir>/<plan_name>/. */
int mg_store_open(mg_store **out, const char *state_dir, const char *plan_name, mg_error *err);
/* Opens only if the directory exists; MG_ENOTFOUND otherwise (read-only commands create nothing).
 */
int mg_store_open_existing(mg_store **out, const char *state_dir, const char *plan_name,
                           mg_error *err);
void mg_store_free(mg_store *store); /* releases the lock if held */

const char *mg_store_path(const mg_store *store);

/*
 * Opens a plan's store wherever the plan keeps it (the state directory, or the
 * cluster: mg_kube_store_open_plan); existing: as mg_store_open_existing, else
 * as mg_store_open. For a layer that cannot see every backend (the rollback of
 * lib/traffic/shift.c).
 */
typedef int (*mg_store_opener)(mg_store **out, bool existing, void *ud, mg_error *err);

/* Takes the exclusive lock without waiting; MG_ELOCKED naming the holder if someone has it. */
int mg_store_lock(mg_store *store, const char *command, mg_error *err);
/*
 * As mg_store_lock, but when the holder is running `preemptible` (the
 * autopilot, "run") on this host, asks it to stop with SIGTERM and waits up
 * to wait_ms for it to let go. A rollback must never wait behind an
 * autopilot; it does wait (MG_ELOCKED) behind another manual command.
 */
int mg_store_lock_preempt(mg_store *store, const char *command, const char *preemptible,
                          int64_t wait_ms, mg_error *err);
void mg_store_unlock(mg_store *store);
bool mg_store_locked(const mg_store *store); /* by this handle */
/*
 * For a long command (`run`, `deploy`): proves the lock is still held, and
 * keeps it so. A lock that lapses without it (a Lease in the cluster,
 * storebackend.h) is renewed; MG_ECONFLICT naming the new holder when it was
 * lost. Always 0 for the local directory, whose flock lasts as long as the
 * process.
 */
int mg_store_keepalive(mg_store *store, mg_error *err);

/* Whether another process holds the lock right now; fills holder when it does. */
int mg_store_lock_probe(bool *out_held, mg_lock_holder *holder, mg_store *store, mg_error *err);

/*
 * A request to hold a running autopilot, <dir>/pause. The autopilot holds
 * the lock for as long as it runs, so `migrate pause` cannot write the state;
 * it leaves this file instead (no lock needed, written atomically) and the
 * autopilot, which looks for it several times a second, pauses and records
 * it. `migrate resume` removes it.
 */
typedef struct {
	char operator_[256];
	char reason[256]; /* "" if none given */
	int64_t since_ms;
} mg_pause_request;

int mg_store_pause_write(mg_store *store, const char *reason, mg_error *err);
/* *present false (and 0) when there is no request. */
int mg_store_pause_read(bool *present, mg_pause_request *out, mg_store *store, mg_error *err);
int mg_store_pause_remove(mg_store *store, mg_error *err);
/*
 * Who released a running autopilot's pause, and why: `migrate resume` leaves
 * <dir>/resume (same format) before it removes the pause request, and the
 * autopilot takes it (reads and removes it) when it sees the request gone, so
 * the reason reaches the journal. A new pause request removes an old note.
 */
int mg_store_resume_write(mg_store *store, const char *reason, mg_error *err);
int mg_store_resume_take(bool *present, mg_pause_request *out, mg_store *store, mg_error *err);

/*
 * A request to stop a running autopilot that a signal cannot reach (it runs
 * on another host): a rollback leaves <dir>/stop (the ConfigMap
 * migrate-<plan>-stop in the cluster), written without the lock as the pause
 * request is, before it moves traffic. The autopilot, which looks for it at
 * every tick, stops without moving traffic again and journals who asked and
 * why. Same format as the pause request.
 */
int mg_store_stop_write(mg_store *store, const char *reason, mg_error *err);
/* Reads and removes it: *present false (and 0) when there is none. */
int mg_store_stop_take(bool *present, mg_pause_request *out, mg_store *store, mg_error *err);
/*
 * Leader-elected autopilots (issue 15) read it without taking it: it halts
 * every replica, not only the one that saw it first, until the rollback that
 * left it is recorded (mg_store_stop_remove, under the lock) or an operator
 * moves the migration on with `migrate step`.
 */
int mg_store_stop_read(bool *present, mg_pause_request *out, mg_store *store, mg_error *err);
int mg_store_stop_remove(mg_store *store, mg_error *err);

/* "user@host" of the process, for journal records and the lock file. */
void mg_operator_id(char *buf, size_t size);

/* mg_now_ms and mg_time_format live in clock.h. */
int mg_time_parse(int64_t *out_ms, const char *s);

#endif
