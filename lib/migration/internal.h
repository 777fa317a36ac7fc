/* What the files of lib/migration share: the migration itself. */
#ifndef MG_MIGRATION_INTERNAL_H
#define MG_MIGRATION_INTERNAL_H

#include "migration.h"

struct mg_migration {
	mg_plan *plan;
	const mg_plan_traffic *traffic;
	const mg_plan_slo *slo; /* NULL when the plan has none */
	char command[16];
	bool dry_run;
	bool elected;    /* a leader-elected autopilot's */
	mg_store *store; /* NULL with dry_run and no state directory, or a rollback without one */
	mg_state st;
	int state_rc; /* mode read: state.json could not be read, why in state_error */
	char state_error[1024];
	mg_traffic *t;       /* the plan's, or mg_migration_options.traffic */
	mg_metrics *metrics; /* opened on first use, or mg_migration_options.metrics */
	const mg_cancel *cancel;
	const char *reconciled;
	mg_shift_site site; /* rollback: what of the state directory it could not use */
	char spool[1024];   /* state.backend kubernetes: the local spool (spool.h); else "" */
	int64_t opened_ms;  /* when it was opened (and locked): older stop requests are stale */
};

/*
 * A move that the shared store could not record (rc MG_EUNRECORDED, out
 * filled): with the state in the cluster, what is missing goes to the local
 * spool and err says so. Any other rc is returned as is. The spool never
 * changes the traffic: the balancer has already moved.
 */
int mg_migration_spool(mg_migration *m, mg_shift_outcome *out, bool base_known, int rc,
                       mg_error *err);

/* The metrics source, opened on first use. */
int mg_migration_metrics(mg_metrics **out, mg_migration *m, mg_error *err);

/*
 * status with no state recorded (rebuild.c): the versions read from the hosts
 * and the cluster into out->st, named in out->rebuilt, what was read in
 * out->rebuild; *record: the hosts read, in fleet.json's shape (NULL without
 * a fleet). A host or cluster that cannot be read is said there, not an
 * error: MG_ENOMEM or MG_ECANCELED.
 */
int mg_migration_rebuild(mg_status *out, json_t **record, mg_migration *m, mg_error *err);

#endif
