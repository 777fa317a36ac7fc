/*
 * `migrate unlock --force --reason TEXT` (issue 14), Terraform's
 * force-unlock for a plan whose lock is a Lease: a holder whose machine went
 * to sleep mid-command keeps renewing nothing, but a holder that hangs (a
 * stuck NFS mount, a debugger) renews forever and no lease runs out. The
 * holder displaced is named in the output and the journal; its fencing token
 * is then older than the Lease's, so its next write is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "kube.h"
#include "kubestore.h"
#include "migration.h"
#include "secret.h"
#include "storebackend.h"

/* "user@host pid N command C id X" (lib/kubestore.h) into h; false when it is not of that form. */
static bool parse_identity(mg_lock_holder *h, const char *s)
{
	const char *p = strstr(s, " pid ");
	const char *c = p ? strstr(p, " command ") : NULL;
	if (!p || !c)
		return false;
	int64_t since = h->since_ms;
	*h = (mg_lock_holder){.since_ms = since, .pid = strtol(p + 5, NULL, 10)};
	snprintf(h->operator_, sizeof(h->operator_), "%.*s", (int)(p - s < 250 ? p - s : 250), s);
	const char *cmd = c + 9, *id = strstr(cmd, " id ");
	size_t n = id ? (size_t)(id - cmd) : strlen(cmd);
	snprintf(h->command, sizeof(h->command), "%.*s", (int)(n < 60 ? n : 60), cmd);
	return true;
}

int mg_migration_unlock(mg_unlock_result *out, const mg_plan *plan, const mg_unlock_options *o,
                        mg_error *err)
{
	*out = (mg_unlock_result){0};
	const mg_plan_state *s = mg_plan_state_section(plan);
	if (s->backend != MG_STATE_KUBERNETES)
		return mg_error_set(
		    err, MG_EINVALID,
		    "plan \"%s\" keeps its state in a local directory (state.backend: local), whose "
		    "lock is a flock(2) the kernel releases when its holder dies: there is never a "
		    "stale one to force. A lock held now is held by a running migrate; `migrate "
		    "status` names it (pid, command): stop that process instead",
		    mg_plan_name(plan));
	if (!o->force)
		return mg_error_set(err, MG_EINVALID,
		                    "unlock takes plan \"%s\"'s lock from whoever holds it, even a "
		                    "holder still at work: say so with --force, and why with "
		                    "--reason TEXT (journalled)",
		                    mg_plan_name(plan));
	if (!o->reason || !*o->reason)
		return mg_error_set(
		    err, MG_EINVALID,
		    "unlock --force needs --reason TEXT: why the lock is taken from "
		    "its holder, for the journal");

	mg_kube_config_options co;
	mg_kube_client *c = NULL;
	int rc = mg_kube_store_client(&c, &co, plan, "lock", NULL, 0, err);
	if (rc)
		return rc;
	char *displaced = NULL;
	mg_kube_store_options so = {.plan = mg_plan_name(plan),
	                            .lease_ms = s->lease_ms,
	                            .force_lock = true,
	                            .displaced = &displaced};
	mg_store *store = NULL;
	if ((rc = mg_kube_store_open(&store, c, true, &so, err)))
		return rc;
	snprintf(out->where, sizeof(out->where), "%s", mg_store_path(store));
	if ((rc = mg_store_lock_probe(&out->held, &out->holder, store, err)) || !out->held ||
	    o->dry_run)
		goto out;

	if ((rc = mg_store_lock(store, "unlock", err)))
		goto out;
	if (displaced) {
		/* who was overwritten, which may not be whom the probe saw a moment before */
		mg_scrub_cut(out->identity, sizeof(out->identity), displaced, 500);
		parse_identity(&out->holder, out->identity);
	}
	json_t *before =
	    json_pack("{s:s?, s:s, s:I, s:s}", "holder", displaced ? out->identity : NULL,
	              "operator", out->holder.operator_, "pid", (json_int_t)out->holder.pid,
	              "command", out->holder.command);
	mg_journal_entry e = {
	    .command = "unlock", .action = "force", .before = before, .reason = o->reason};
	rc = before ? mg_journal_append(store, &e, err) : mg_error_oom(err);
	json_decref(before);
	if (rc)
		goto out;
	mg_store_unlock(store); /* released at once: the next command needs no wait */
	out->taken = true;
out:
	mg_store_free(store);
	free(displaced);
	return rc;
}
