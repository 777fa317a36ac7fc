/* migrate resume: release a pause, whether an autopilot is holding on it or not. */
#include <string.h>

#include "journal.h"
#include "util_gate.h"
#include "util_shift.h"

int cmd_resume(mg_cli *cli, int argc, char **argv)
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
	rc = mg_store_lock(store, "resume", &err);
	if (rc == MG_ELOCKED) {
		pid = shift_autopilot_pid(store);
		if (!pid)
			goto fail; /* a manual step or rollback: its message names the holder */
		mg_error_clear(&err);
		rc = mg_state_load(&st, store, &err);
		if (rc)
			goto fail;
		if (st.phase != MG_PHASE_PAUSED) {
			how = "the running autopilot is not paused";
			goto report;
		}
		if (cli->dry_run) {
			how = "would resume the running autopilot";
			goto report;
		}
		/* the note first: the autopilot reads it when it sees the request gone */
		rc = mg_store_resume_write(store, reason, &err);
		if (!rc)
			rc = mg_store_pause_remove(store, &err);
		if (!rc)
			rc = shift_wait_paused(&st, store, false, SHIFT_ACK_WAIT_MS, &err);
		if (rc)
			goto fail;
		how = "the running autopilot resumed";
		changed = true;
		goto report;
	}
	if (rc)
		goto fail;
	rc = mg_state_load(&st, store, &err);
	if (rc)
		goto fail;
	bool request;
	mg_pause_request pr;
	rc = mg_store_pause_read(&request, &pr, store, &err);
	if (rc)
		goto fail;
	if (st.phase != MG_PHASE_PAUSED && !request) {
		how = "not paused; nothing to do";
		goto report;
	}
	if (cli->dry_run) {
		how = "would resume";
		goto report;
	}
	/* a request no autopilot took up (it ended first) is released all the same */
	rc = mg_store_pause_remove(store, &err);
	if (rc)
		goto fail;
	if (st.phase == MG_PHASE_PAUSED) {
		st.phase = MG_PHASE_SHIFTING;
		st.pause_reason[0] = '\0';
		/* a fresh start at this step: earlier failures were looked at by whoever resumes */
		mg_state_reset_gates(&st);
		mg_journal_entry e = {"resume", "resume", NULL, NULL, reason, NULL};
		rc = mg_journal_append(store, &e, &err);
		if (!rc)
			rc = mg_state_save(store, &st, &err);
		if (rc)
			goto fail;
	}
	how = "resumed";
	changed = true;

report:
	exit_code = shift_hold_report(cli, doc, plan, &st, how, changed, pid, NULL);
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
