/*
 * A move the cluster could not record, kept in the local spool (spool.h):
 * the balancer has moved, and the record and the state change wait on this
 * machine for the next command that reaches the cluster.
 */
#include <stdio.h>

#include "internal.h"
#include "log.h"
#include "spool.h"

int mg_migration_spool(mg_migration *m, mg_shift_outcome *out, bool base_known, int rc,
                       mg_error *err)
{
	if (rc != MG_EUNRECORDED || !m->spool[0] || (out->journalled && out->state_saved))
		return rc;
	mg_error why = MG_ERROR_INIT;
	if (mg_spool_save(out->spooled, sizeof(out->spooled), m->spool,
	                  out->journalled ? NULL : out->record, out->state_saved ? NULL : &m->st,
	                  base_known, m->st.revision, &why)) {
		/* the record printed with the error is then the operator's only copy */
		mg_log(MG_LOG_WARN, "the move could not be kept in the local spool either: %s",
		       why.message);
		mg_error_clear(&why);
		return rc;
	}
	return mg_error_set(err, MG_EUNRECORDED,
	                    "traffic is %.4g%% on the cluster (read back), but the shared store "
	                    "could not record it: %s. It is recorded in the local spool %s; it "
	                    "is uploaded by the next command that reaches the cluster",
	                    out->read_back.k8s_percent, out->record_error, m->spool);
}
