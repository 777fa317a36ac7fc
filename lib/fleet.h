/*
 * The VM fleet: deploys a release to every host of vms, or switches the
 * fleet back to an earlier one, in rolling batches.
 *
 * On each host a release lives in <path>/releases/<version>/ and
 * <path>/current is a relative symbolic link to the live one. A release
 * counts as there only when its marker, <release>/.migrate-artifact-sha256
 * holding the artifact's SHA-256, matches: the marker is written last and
 * the directory renamed into place after it, so a half-unpacked release
 * never counts and a re-run skips the upload of one that is complete.
 *
 * Hosts are worked on by a pool of at most vms.parallel threads, each with
 * its own SSH session (libssh2 sessions are never shared between threads).
 * A batch ends when all its hosts are done. A host that fails after its
 * switch is put back on the release it ran before; a batch that takes the
 * failures of the whole run above vms.max_failures stops the run, and its
 * other switched hosts go back too, so no batch is left half on the new
 * release. Later batches are not touched.
 *
 * Nothing is reported as done unless it was read back: the switch ends
 * with readlink(current), and the host's version is what that returned.
 */
#ifndef MG_FLEET_H
#define MG_FLEET_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"
#include "plan.h"
#include "records.h"
#include "store.h"

/* The file in a release directory that says it is complete, and of which artifact. */
#define MG_FLEET_MARKER ".migrate-artifact-sha256"

typedef enum { MG_FLEET_DEPLOY, MG_FLEET_ROLLBACK } mg_fleet_op;

/* A host's stages, in order. */
typedef enum {
	MG_FLEET_STAGE_QUEUED,
	MG_FLEET_STAGE_CONNECT,
	MG_FLEET_STAGE_INSPECT,
	MG_FLEET_STAGE_UPLOAD,
	MG_FLEET_STAGE_VERIFY,
	MG_FLEET_STAGE_UNPACK,
	MG_FLEET_STAGE_SWITCH,
	MG_FLEET_STAGE_ACTIVATE,
	MG_FLEET_STAGE_HEALTH,
	MG_FLEET_STAGE_PRUNE,
	MG_FLEET_STAGE_DONE,
} mg_fleet_stage;

typedef enum {
	MG_FLEET_NOT_RUN,     /* in a batch after the run stopped, or cancelled before it began */
	MG_FLEET_OK,          /* runs the release and answered healthy */
	MG_FLEET_FAILED,      /* see stage and error */
	MG_FLEET_ROLLED_BACK, /* succeeded, then put back because its batch failed */
} mg_fleet_outcome;

typedef enum {
	MG_FLEET_UPLOAD_NONE,    /* not reached, or not a deploy */
	MG_FLEET_UPLOAD_DONE,    /* uploaded, verified and unpacked */
	MG_FLEET_UPLOAD_SKIPPED, /* the release was already complete on the host */
} mg_fleet_upload;

typedef struct {
	const mg_plan_host *host; /* borrowed from the plan */
	size_t batch;             /* 0-based */
	mg_fleet_outcome outcome;
	mg_fleet_stage stage; /* where it failed; DONE when it succeeded */
	mg_fleet_upload upload;
	bool already;  /* current already pointed at the release: nothing switched or activated */
	bool switched; /* this run switched current */
	bool reverted; /* and switched it back to previous afterwards */
	char previous[MG_PLAN_VERSION_MAX + 1]; /* current's release before this run; "" none */
	char version[MG_PLAN_VERSION_MAX + 1];  /* current's release as last read back */
	bool version_known;                     /* false: never read, or lost track of it */
	int pruned;                             /* releases removed */
	int incoming_removed;  /* leftovers of interrupted uploads removed from .incoming/ */
	char prune_error[512]; /* why old releases were not pruned; "" if they were (or none) */
	int64_t duration_ms;
	char error[1024]; /* "" unless failed (or the way back failed) */
} mg_fleet_host_result;

typedef struct {
	mg_fleet_op op;
	const char *version;
	mg_fleet_host_result *hosts; /* one per vms->hosts, in the plan's order */
	size_t nhosts;
	size_t batch_size, nbatches;
	size_t batches_run;
	bool stopped;         /* a batch took the failures above max_failures */
	size_t stopped_batch; /* 0-based, when stopped */
	bool canceled;
	size_t ok, failed, rolled_back, not_run;
	size_t uploaded, skipped_uploads;
	int max_concurrent; /* the most hosts worked on at the same time */
	int64_t duration_ms;
} mg_fleet_result;

/* One host moved to a stage, or finished. Called under a mutex: keep it short. */
typedef struct {
	const mg_fleet_result *run;
	const mg_fleet_host_result *host;
	bool finished;        /* host reached its outcome */
	bool reverting;       /* the stage is part of going back to the previous release */
	size_t batch;         /* 0-based */
	size_t done, running; /* hosts finished so far, hosts being worked on now */
} mg_fleet_progress;

typedef struct {
	mg_fleet_op op;
	const mg_plan_vms *vms;
	const char *version;         /* deploy: --version; rollback: the release to go back to */
	const char *artifact;        /* deploy: the local file (${version} expanded) */
	const char *artifact_sha256; /* deploy: its lowercase hex SHA-256 */
	bool accept_new_host_keys;
	const char *passphrase; /* for vms.identity_file, or NULL; never logged */
	const mg_cancel *cancel;
	/* With a store (locked by the caller): every decision is journalled, and fleet
	 * (the fleet.json document, see mg_fleet_record_load) is updated and saved after
	 * every batch. */
	mg_store *store;
	json_t *fleet;
	const char *command;      /* for the journal: "deploy", "rollback" */
	const char *reason;       /* for the journal, or NULL */
	const char *from_version; /* the fleet's recorded version, for the journal; or NULL */
	void (*progress)(void *ud, const mg_fleet_progress *p);
	void *progress_ud;
} mg_fleet_options;

/*
 * Runs the deploy or rollback. Returns 0 when every host succeeded, MG_ERROR
 * when a host failed (the result says which and why), MG_ECANCELED when
 * *cancel was raised, MG_EINVALID for bad input found before any host is
 * contacted. *out is filled whenever hosts were worked on (free it with
 * mg_fleet_result_clear; it is zeroed on an early error).
 */
int mg_fleet_run(mg_fleet_result *out, const mg_fleet_options *opt, mg_error *err);
void mg_fleet_result_clear(mg_fleet_result *r);

/* Hosts per batch (mg_plan_vms_batch_size) and the number of batches. */
size_t mg_fleet_batch_count(size_t nhosts, size_t batch_size);

/* A release on a host, with the time its marker was written. */
typedef struct {
	const char *name;
	int64_t sec;
	long nsec;
} mg_fleet_release;

/*
 * Which releases to remove to keep `keep`: never live or previous, then the
 * newest (by marker time, then name) up to keep in all. remove[i] is set
 * for each of rel[i]; returns how many.
 */
size_t mg_fleet_prune_select(bool *remove, const mg_fleet_release *rel, size_t n, const char *live,
                             const char *previous, int keep);

/*
 * The shell commands run on a host, every value quoted with mg_ssh_quote.
 * Exposed for the tests and for --dry-run. Each is a new string, NULL on
 * ENOMEM.
 */
/* Creates the layout and prints "current=<readlink current>", "kind=link|none|other" and
 * "marker=<the version's marker>". */
char *mg_fleet_cmd_inspect(const char *path, const char *version);
char *mg_fleet_cmd_verify(const char *remote_file);
/* Unpacks into releases/.<version>.tmp, writes the marker, renames it into place, and
 * removes remote_file whatever happened. */
char *mg_fleet_cmd_unpack(const char *path, const char *version, const char *remote_file,
                          const char *sha256);
/* The new relative link, renamed over current, then readlink current. */
char *mg_fleet_cmd_switch(const char *path, const char *version);
/* activate, run in <path>/current with MIGRATE_VERSION, MIGRATE_HOST and MIGRATE_PATH set. */
char *mg_fleet_cmd_activate(const char *path, const char *activate, const char *version,
                            const char *host);
/* Prints "<sec>.<nsec> <name>/<marker>" per complete release. */
char *mg_fleet_cmd_list_releases(const char *path);
char *mg_fleet_cmd_remove_releases(const char *path, const char *const *names, size_t n);
/* <path>/.incoming/<version>.tar.gz.<suffix> */
char *mg_fleet_incoming_path(const char *path, const char *version, const char *suffix);
/* The health URL for a host: ${host} replaced by the address, bracketed when IPv6. */
char *mg_fleet_health_url(const char *tmpl, const char *address);

/*
 * --dry-run: what would happen on each host, without connecting. A new
 * JSON array of {host, address, port, batch, steps: [strings]}.
 */
json_t *mg_fleet_describe(const mg_fleet_options *opt);

/*
 * Puts what the run read back into doc's hosts. Hosts it did not reach keep
 * their record; so do hosts that failed before anything was read from them
 * (at connect or inspect): only their outcome and time change.
 */
void mg_fleet_record_apply(json_t *doc, const mg_fleet_result *r);

/* How many of the result's hosts run version now, as read back. */
size_t mg_fleet_count_on(const mg_fleet_result *r, const char *version);

/*
 * What the hosts run, read without changing anything on them: for `status`
 * and `rollback --release` when no state is recorded (a fresh CI runner).
 * Each host gets one read-only command (mg_fleet_cmd_survey) over its own
 * session, by a pool of at most vms.parallel threads, bounded by
 * vms.connect_timeout and vms.command_timeout. Nothing is taken from a host
 * that was not read: an unreachable host has reached false and its error.
 */
typedef struct {
	const mg_plan_host *host; /* borrowed from the plan */
	bool reached;             /* connected, and the listing ran to the end */
	char error[512];          /* why not (scrubbed); "" when reached */
	/* "link" (current is a symbolic link), "none" (no current, or no deploy directory),
	 * "other" (current is not a link) */
	char kind[8];
	char current[MG_PLAN_VERSION_MAX + 1]; /* the release current points at; "" none */
	/* the complete release unpacked just before current's (marker times); "" none */
	char previous[MG_PLAN_VERSION_MAX + 1];
	char **releases; /* complete releases, oldest first by marker time, then name */
	size_t nreleases;
} mg_fleet_survey_host;

typedef struct {
	mg_fleet_survey_host *hosts; /* one per vms->hosts, in the plan's order */
	size_t nhosts;
	size_t reached;
	int64_t duration_ms;
} mg_fleet_survey;

typedef struct {
	const mg_plan_vms *vms;
	bool accept_new_host_keys; /* known_hosts (local) may learn a key; the host is only read */
	const char *passphrase;    /* for vms.identity_file, or NULL */
	const mg_cancel *cancel;
} mg_fleet_survey_options;

/*
 * Reads every host. 0 whatever each host answered (see reached and error);
 * MG_ENOMEM, or MG_EINVALID without hosts. Clear out whatever the return.
 */
int mg_fleet_survey_run(mg_fleet_survey *out, const mg_fleet_survey_options *o, mg_error *err);
void mg_fleet_survey_clear(mg_fleet_survey *s);
/* The survey as JSON: [{host, reached, error, current, previous, releases}]. */
json_t *mg_fleet_survey_to_json(const mg_fleet_survey *s);
/* Prints "kind=", "current=<readlink current>" and "release=<sec>.<nsec> <name>/<marker>"
 * per complete release; writes nothing, creates nothing. */
char *mg_fleet_cmd_survey(const char *path);

const char *mg_fleet_stage_name(mg_fleet_stage s);
const char *mg_fleet_outcome_name(mg_fleet_outcome o);
const char *mg_fleet_op_name(mg_fleet_op op);

/* The result as JSON: {host, address, port, batch, outcome, stage, upload, ...} per host. */
json_t *mg_fleet_host_to_json(const mg_fleet_host_result *h);
/* The run as JSON: {batch_size, batches, batches_run, stopped, ..., hosts: [per host]}. */
json_t *mg_fleet_result_to_json(const mg_fleet_result *r);

#endif
