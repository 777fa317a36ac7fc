/* migrate pause: hold the migration at its current weights (and a running autopilot with it). */
#include <string.h>

#include "journal.h"
#include "util_gate.h"
#include "util_shift.h"

int cmd_pause(mg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	const char *reason = NULL;
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "", shift_reason_opt, &reason, 0, &exit_code) < 0)
		return exit_code;

	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_store *store = NULL;
	mg_state st;
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	const char *how = NULL;
	bool changed = false;
	long pid = 0;
	int rc = cli_load_plan(cli, &plan, MG_NEED_TRAFFIC, &err);
	if (!rc)
		rc = mg_store_open(&store, cli_state_dir(cli, plan), mg_plan_name(plan), &err);
	if (rc)
		goto fail;
	rc = mg_store_lock(store, "pause", &err);
	if (rc == MG_ELOCKED) {
		pid = shift_autopilot_pid(store);
		if (!pid)
			goto fail; /* a manual step or rollback: its message names the holder */
		mg_error_clear(&err);
		rc = mg_state_load(&st, store, &err);
		if (rc)
			goto fail;
		if (st.phase == MG_PHASE_PAUSED) {
			how = "the running autopilot is already paused";
			goto report;
		}
		if (cli->dry_run) {
			how = "would ask the running autopilot to pause";
			goto report;
		}
		rc = mg_store_pause_write(store, reason, &err);
		if (!rc)
			rc = shift_wait_paused(&st, store, true, SHIFT_ACK_WAIT_MS, &err);
		if (rc) {
			/* nobody will act on a request that was not taken up: do not leave it */
			mg_error tmp = MG_ERROR_INIT;
			mg_store_pause_remove(store, &tmp);
			mg_error_clear(&tmp);
			goto fail;
		}
		how = "the running autopilot paused";
		changed = true;
		goto report;
	}
	if (rc)
		goto fail;
	rc = mg_state_load(&st, store, &err);
	if (rc)
		goto fail;
	if (st.phase == MG_PHASE_PAUSED) {
		how = "already paused";
		goto report;
	}
	if (st.phase != MG_PHASE_SHIFTING) {
		rc = mg_error_set(&err, MG_ERROR,
		                  "nothing to pause: the migration is %s, not shifting traffic",
		                  mg_phase_name(st.phase));
		goto fail;
	}
	if (cli->dry_run) {
		how = "would pause";
		goto report;
	}
	char op[256];
	mg_operator_id(op, sizeof(op));
	snprintf(st.pause_reason, sizeof(st.pause_reason), "by %.80s%s%.160s", op,
	         reason ? ": " : "", reason ? reason : "");
	st.phase = MG_PHASE_PAUSED;
	mg_journal_entry e = {"pause", "pause", NULL, NULL, reason, NULL};
	rc = mg_journal_append(store, &e, &err);
	if (!rc)
		rc = mg_state_save(store, &st, &err);
	if (rc)
		goto fail;
	how = "paused";
	changed = true;

report:
	exit_code = shift_hold_report(cli, doc, plan, &st, how, changed, pid,
	                              pid ? "`migrate resume` continues it"
	                                  : "`migrate resume` releases it");
	doc = NULL;
	goto out;
fail:
	json_decref(doc);
	exit_code = cli_fail(cli, &err);
out:
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
