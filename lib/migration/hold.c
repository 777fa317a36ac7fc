/* pause and resume: holding a migration at its weights, whether an autopilot runs or not. */
#include <string.h>

#include "clock.h"
#include "internal.h"
#include "journal.h"

/*
 * Waits up to wait_ms for the state a running autopilot writes to show
 * (paused) or stop showing (!paused) the paused phase.
 */
static int wait_paused(mg_state *st, mg_store *store, bool paused, int64_t wait_ms, mg_error *err)
{
	int64_t deadline = mg_clock_ms() + wait_ms;
	for (;;) {
		/* the autopilot saves atomically, so a read without the lock sees whole states */
		int rc = mg_state_load(st, store, err);
		if (rc)
			return rc;
		if ((st->phase == MG_PHASE_PAUSED) == paused)
			return 0;
		bool held;
		mg_lock_holder h;
		rc = mg_store_lock_probe(&held, &h, store, err);
		if (rc)
			return rc;
		if (!held)
			return mg_error_set(err, MG_ERROR,
			                    "the autopilot ended before it confirmed; see `migrate "
			                    "status` and `migrate history`");
		if (mg_clock_ms() >= deadline)
			return mg_error_set(
			    err, MG_ERROR, "the autopilot (pid %ld) did not confirm within %lld ms",
			    h.pid, (long long)wait_ms);
		mg_clock_sleep_ms(50, NULL);
	}
}

/* When the lock is held: the pid of the autopilot (`run`) holding it, or 0 for anyone else. */
static long autopilot_pid(mg_store *store)
{
	bool held;
	mg_lock_holder h;
	mg_error probe = MG_ERROR_INIT;
	int rc = mg_store_lock_probe(&held, &h, store, &probe);
	mg_error_clear(&probe);
	return !rc && held && !strcmp(h.command, "run") ? h.pid : 0;
}

/* The hold itself, journalled: phase paused (or shifting again), then saved. */
static int record(mg_migration *m, const char *action, const char *reason, mg_error *err)
{
	mg_journal_entry e = {.command = action, .action = action, .reason = reason};
	int rc = mg_journal_append(m->store, &e, err);
	return rc ? rc : mg_state_save(m->store, &m->st, err);
}

/* Locks for pause or resume: 1 when a running autopilot holds the lock (its pid in out). */
static int lock(mg_hold_result *out, mg_migration *m, const char *command, mg_error *err)
{
	int rc = mg_store_lock(m->store, command, err);
	if (rc == MG_ELOCKED) {
		out->autopilot_pid = autopilot_pid(m->store);
		if (!out->autopilot_pid)
			return rc; /* a manual step or rollback: its message names the holder */
		mg_error_clear(err);
		rc = mg_state_load(&m->st, m->store, err);
		return rc ? rc : 1;
	}
	return rc ? rc : mg_state_load(&m->st, m->store, err);
}

int mg_migration_pause(mg_hold_result *out, mg_migration *m, const char *reason, int64_t wait_ms,
                       mg_error *err)
{
	memset(out, 0, sizeof(*out));
	int rc = lock(out, m, "pause", err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		if (m->st.phase == MG_PHASE_PAUSED) {
			out->how = "the running autopilot is already paused";
			return 0;
		}
		if (m->dry_run) {
			out->how = "would ask the running autopilot to pause";
			return 0;
		}
		rc = mg_store_pause_write(m->store, reason, err);
		if (!rc)
			rc = wait_paused(&m->st, m->store, true, wait_ms, err);
		if (rc) {
			/* nobody will act on a request that was not taken up: do not leave it */
			mg_error tmp = MG_ERROR_INIT;
			mg_store_pause_remove(m->store, &tmp);
			mg_error_clear(&tmp);
			return rc;
		}
		out->how = "the running autopilot paused";
		out->changed = true;
		return 0;
	}
	if (m->st.phase == MG_PHASE_PAUSED) {
		out->how = "already paused";
		return 0;
	}
	if (m->st.phase != MG_PHASE_SHIFTING)
		return mg_error_set(err, MG_ERROR,
		                    "nothing to pause: the migration is %s, not shifting traffic",
		                    mg_phase_name(m->st.phase));
	if (m->dry_run) {
		out->how = "would pause";
		return 0;
	}
	char op[256];
	mg_operator_id(op, sizeof(op));
	snprintf(m->st.pause_reason, sizeof(m->st.pause_reason), "by %.80s%s%.160s", op,
	         reason ? ": " : "", reason ? reason : "");
	m->st.phase = MG_PHASE_PAUSED;
	rc = record(m, "pause", reason, err);
	if (rc)
		return rc;
	out->how = "paused";
	out->changed = true;
	return 0;
}

int mg_migration_resume(mg_hold_result *out, mg_migration *m, const char *reason, int64_t wait_ms,
                        mg_error *err)
{
	memset(out, 0, sizeof(*out));
	int rc = lock(out, m, "resume", err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		if (m->st.phase != MG_PHASE_PAUSED) {
			out->how = "the running autopilot is not paused";
			return 0;
		}
		if (m->dry_run) {
			out->how = "would resume the running autopilot";
			return 0;
		}
		/* the note first: the autopilot reads it when it sees the request gone */
		rc = mg_store_resume_write(m->store, reason, err);
		if (!rc)
			rc = mg_store_pause_remove(m->store, err);
		if (!rc)
			rc = wait_paused(&m->st, m->store, false, wait_ms, err);
		if (rc)
			return rc;
		out->how = "the running autopilot resumed";
		out->changed = true;
		return 0;
	}
	bool request;
	mg_pause_request pr;
	rc = mg_store_pause_read(&request, &pr, m->store, err);
	if (rc)
		return rc;
	if (m->st.phase != MG_PHASE_PAUSED && !request) {
		out->how = "not paused; nothing to do";
		return 0;
	}
	if (m->dry_run) {
		out->how = "would resume";
		return 0;
	}
	/* a request no autopilot took up (it ended first) is released all the same */
	rc = mg_store_pause_remove(m->store, err);
	if (rc)
		return rc;
	if (m->st.phase == MG_PHASE_PAUSED) {
		m->st.phase = MG_PHASE_SHIFTING;
		m->st.pause_reason[0] = '\0';
		/* a fresh start at this step: earlier failures were looked at by whoever resumes */
		mg_state_reset_gates(&m->st);
		rc = record(m, "resume", reason, err);
		if (rc)
			return rc;
	}
	out->how = "resumed";
	out->changed = true;
	return 0;
}

json_t *mg_hold_result_to_json(const mg_hold_result *h, const mg_migration *m)
{
	json_t *o = json_object();
	json_object_set_new(o, "plan", json_string(mg_plan_name(m->plan)));
	json_object_set_new(o, "changed", json_boolean(h->changed));
	json_object_set_new(o, "autopilot",
	                    h->autopilot_pid ? json_integer(h->autopilot_pid) : json_null());
	json_object_set_new(o, "phase", json_string(mg_phase_name(m->st.phase)));
	json_object_set_new(o, "message", json_string(h->how));
	return o;
}
