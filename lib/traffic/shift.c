#include "shift.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "journal.h"
#include "log.h"
#include "storebackend.h"

static json_t *position(double k8s_percent, int step_index)
{
	return json_pack("{s:f, s:o}", "k8s_percent", k8s_percent, "step",
	                 step_index < 0 ? json_null() : json_integer(step_index + 1));
}

static int journal(mg_store *store, const char *command, const char *action, json_t *before,
                   json_t *after, const char *reason, json_t *evidence, mg_error *err)
{
	mg_journal_entry e = {.command = command,
	                      .action = action,
	                      .before = before,
	                      .after = after,
	                      .reason = reason,
	                      .evidence = evidence};
	int rc = mg_journal_append(store, &e, err);
	json_decref(before);
	json_decref(after);
	json_decref(evidence);
	return rc;
}

static void record_read_back(mg_state *st, double k8s_percent)
{
	st->has_read_back = true;
	st->read_back_k8s_percent = k8s_percent;
	st->read_back_ms = mg_now_ms();
}

/* The state after the balancer reached target: the step is taken and its bake starts now. */
static void reached(mg_state *st, double target, int step_index, size_t nsteps)
{
	int64_t now = mg_now_ms();
	st->step_index = step_index;
	st->step_started_ms = now;
	st->has_applied = true;
	st->applied_k8s_percent = target;
	st->applied_ms = now;
	mg_state_reset_gates(st);
	st->pause_reason[0] = '\0';
	if (step_index < 0)
		st->phase = MG_PHASE_ROLLED_BACK;
	else if (nsteps && (size_t)step_index == nsteps - 1 && target >= 100)
		st->phase = MG_PHASE_COMPLETE;
	else
		st->phase = MG_PHASE_SHIFTING;
}

void mg_shift_outcome_clear(mg_shift_outcome *out)
{
	if (!out)
		return;
	mg_traffic_state_clear(&out->read_back);
	json_decref(out->record);
	memset(out, 0, sizeof(*out));
}

/* Appends why to the record error: several parts of a record can fail at once. */
static void note(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	if (n && n + 2 < size) {
		snprintf(buf + n, size - n, "; ");
		n += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

/*
 * The balancer moved and reads back rb: the result goes to the journal, then
 * to state.json (journal first: it is the story an operator reads when the
 * state is lost). write_journal/write_state false skip a part that cannot be
 * written, with why already in out->record_error. MG_EUNRECORDED when any
 * part is missing, with the record kept in out.
 */
static int record_result(mg_shift_outcome *out, mg_store *store, mg_state *st,
                         const mg_shift_request *req, json_t *before, const mg_traffic_state *rb,
                         bool write_journal, bool write_state, const char *then, mg_error *err)
{
	json_t *after = position(rb->k8s_percent, req->step_index);
	json_t *evidence = json_pack("{s:o, s:b}", "read_back", mg_traffic_state_to_json(rb),
	                             "forced", req->forced);
	mg_journal_entry e = {.command = req->command,
	                      .action = "result",
	                      .before = before,
	                      .after = after,
	                      .reason = req->reason,
	                      .evidence = evidence};
	mg_error why = MG_ERROR_INIT;
	out->journalled = write_journal && mg_journal_append(store, &e, &why) == 0;
	if (write_journal && !out->journalled)
		note(out->record_error, sizeof(out->record_error), "%s", why.message);
	mg_error_clear(&why);
	bool saved = write_state && mg_state_save(store, st, &why) == 0;
	out->state_saved = saved;
	if (write_state && !saved)
		note(out->record_error, sizeof(out->record_error), "%s", why.message);
	mg_error_clear(&why);
	int rc = 0;
	if (saved) /* only the journal is short of it */
		then = "state.json has the move; the journal does not: keep the record "
		       "printed with this error";
	if (*out->record_error) {
		out->record = mg_journal_record(&e);
		char pct[32];
		snprintf(pct, sizeof(pct), "%.4g%%", rb->k8s_percent);
		rc = mg_error_set(err, MG_EUNRECORDED,
		                  "traffic is %s on the cluster (read back), but the record could "
		                  "not be written: %s. %s",
		                  pct, out->record_error, then);
	}
	json_decref(before);
	json_decref(after);
	json_decref(evidence);
	return rc;
}

/*
 * The balancer refused req: read it again so the state holds what it really has, and
 * journal the failure (each as far as the store allows). Returns the balancer's error.
 */
static int apply_failed(mg_store *store, mg_state *st, mg_traffic *t, const mg_shift_request *req,
                        json_t *before, bool can_write, int rc, mg_error *err)
{
	/* keep the balancer's own answer; the read below is only for the record */
	mg_error why = MG_ERROR_INIT;
	mg_error_set(&why, rc, "%s", err->message);
	mg_traffic_state now;
	json_t *live = NULL;
	if (mg_traffic_read(&now, t, err) == 0) {
		record_read_back(st, now.k8s_percent);
		live = mg_traffic_state_to_json(&now);
		mg_traffic_state_clear(&now);
	}
	st->pending = false;
	if (can_write) {
		journal(store, req->command, "failed", before, live ? live : json_null(),
		        req->reason, json_pack("{s:s}", "error", why.message), err);
		mg_state_save(store, st, err);
	} else {
		json_decref(before);
		json_decref(live);
	}
	mg_error_set(err, rc, "%s", why.message);
	mg_error_clear(&why);
	return rc;
}

int mg_shift_apply(mg_shift_outcome *out, mg_store *store, mg_state *st, mg_traffic *t,
                   const mg_shift_request *req, mg_error *err)
{
	mg_shift_outcome local = {0};
	if (!out)
		out = &local;
	memset(out, 0, sizeof(*out));
	double before = st->has_read_back ? st->read_back_k8s_percent : 0;
	int before_step = st->step_index;

	/*
	 * The mark before the intent: a mark that cannot be saved (disk full) leaves
	 * nothing behind, where an intent journalled first would read as a step
	 * that died half-way. An intent that cannot be journalled takes the mark back.
	 */
	mg_state saved = *st;
	st->pending = true;
	snprintf(st->pending_command, sizeof(st->pending_command), "%s", req->command);
	st->pending_k8s_percent = req->k8s_percent;
	st->pending_step_index = req->step_index;
	st->pending_ms = mg_now_ms();
	int rc = mg_state_save(store, st, err);
	if (rc) {
		*st = saved;
		return rc;
	}
	rc = journal(store, req->command, "intent", position(before, before_step),
	             position(req->k8s_percent, req->step_index), req->reason,
	             json_pack("{s:s, s:b}", "balancer", mg_traffic_name(t), "forced", req->forced),
	             err);
	if (rc) {
		st->pending = false;
		mg_error tmp = MG_ERROR_INIT;
		if (mg_state_save(store, st, &tmp))
			mg_error_clear(&tmp); /* the next command reconciles it: nothing moved */
		return rc;
	}
	/*
	 * The intent's writes may have waited on a cluster that froze: a lock
	 * that lapses (a Lease) is proven still ours, renewed if a third of it
	 * went by, before the balancer is touched. Lost, nothing moves, and the
	 * pending mark is reconciled by whoever holds the plan now.
	 */
	if ((rc = mg_store_keepalive(store, err)))
		return rc;

	rc = mg_traffic_apply(&out->read_back, t, req->k8s_percent, req->forced, err);
	if (rc)
		return apply_failed(store, st, t, req, position(before, before_step), true, rc,
		                    err);

	reached(st, req->k8s_percent, req->step_index, req->nsteps);
	record_read_back(st, out->read_back.k8s_percent);
	st->pending = false;
	rc = record_result(out, store, st, req, position(before, before_step), &out->read_back,
	                   true, true,
	                   "state.json still marks the move as pending: once the state directory "
	                   "can be written, the next step, rollback or run reads the balancer and "
	                   "records it",
	                   err);
	if (out == &local)
		mg_shift_outcome_clear(&local);
	return rc;
}

/*
 * The holder is the autopilot (preemptible) and still has the lock: on another
 * host, no signal reaches it. It is left a stop request, looked for at each of
 * its ticks, and the rollback goes on without the lock. False when the holder
 * is anyone else (a person at work: MG_ELOCKED stands).
 */
static bool ask_to_stop(mg_shift_site *site, mg_store *store, const char *preemptible,
                        const char *reason, const mg_error *locked)
{
	bool held = false;
	mg_lock_holder h;
	mg_error why = MG_ERROR_INIT;
	int rc = mg_store_lock_probe(&held, &h, store, &why);
	mg_error_clear(&why);
	if (rc || !held || !preemptible || strcmp(h.command, preemptible) != 0)
		return false;
	snprintf(site->stop_holder, sizeof(site->stop_holder), "%s, pid %ld", h.operator_, h.pid);
	/* before traffic moves, so that the autopilot moves it no more once it has */
	rc = mg_store_stop_write(store, reason, &why);
	site->stop_asked = rc == 0;
	if (rc)
		snprintf(site->lock_error, sizeof(site->lock_error),
		         "%.500s; and the stop request for it could not be written: %.400s",
		         locked->message, why.message);
	else
		snprintf(
		    site->lock_error, sizeof(site->lock_error),
		    "plan \"%s\" is held by an autopilot (`migrate %s`) on %s, which was asked "
		    "to stop: it stops within one slo.interval without moving traffic again",
		    mg_store_plan(store), h.command, site->stop_holder);
	mg_error_clear(&why);
	return true;
}

int mg_shift_open_rollback(mg_store **store, mg_state *st, mg_shift_site *site,
                           mg_store_opener open, void *open_ud, const char *plan_name,
                           const char *command, const char *preemptible, int64_t wait_ms,
                           const char *reason, mg_error *err)
{
	*store = NULL;
	memset(site, 0, sizeof(*site));
	mg_state_init(st, plan_name);
	mg_error why = MG_ERROR_INIT;
	int rc = open(store, false, open_ud, &why);
	if (rc == MG_EINVALID || rc == MG_ENOMEM) {
		mg_error_set(err, rc, "%s", why.message);
		mg_error_clear(&why);
		return rc;
	}
	if (rc) {
		/* cannot be created (read-only, full): one that exists can still be read */
		mg_error again = MG_ERROR_INIT;
		if (open(store, true, open_ud, &again)) {
			site->unlocked = site->state_unread = true;
			snprintf(site->lock_error, sizeof(site->lock_error), "%s", why.message);
			snprintf(site->state_error, sizeof(site->state_error), "%s", why.message);
			mg_error_clear(&again);
			mg_error_clear(&why);
			return 0;
		}
		mg_error_clear(&why);
	}
	rc = mg_store_lock_preempt(*store, command, preemptible, wait_ms, &why);
	bool answered = rc == 0 || rc == MG_ELOCKED; /* the store is there, held or not */
	if (rc == MG_ELOCKED && ask_to_stop(site, *store, preemptible, reason, &why)) {
		mg_error_clear(&why);
		rc = MG_ERROR; /* goes on unlocked, as below, with why in site->lock_error */
		mg_error_set(&why, rc, "%s", site->lock_error);
	}
	if (rc == MG_ELOCKED) {
		/* a person at work is not ours to override: they are told, exit 3 */
		mg_error_set(err, rc, "%s", why.message);
		mg_error_clear(&why);
		mg_store_free(*store);
		*store = NULL;
		return rc;
	}
	if (rc) {
		site->unlocked = true;
		snprintf(site->lock_error, sizeof(site->lock_error), "%s", why.message);
		/* an autopilot asked to stop lets go soon: the record is written then (rules.c) */
		if (!site->stop_asked)
			mg_log(MG_LOG_WARN,
			       "the plan's lock could not be taken (%s): the rollback goes on, and "
			       "writes no record without it",
			       why.message);
		mg_error_clear(&why);
		/*
		 * A cluster that did not answer for the lock would make the state read
		 * wait as long again before traffic moves; unlocked, nothing is written,
		 * so the state is not needed: the rollback waits for one request at most.
		 */
		if (mg_store_remote(*store) && !answered) {
			site->state_unread = true;
			snprintf(site->state_error, sizeof(site->state_error), "%s",
			         site->lock_error);
			return 0;
		}
	}
	if (mg_state_load(st, *store, &why)) {
		site->state_unread = true;
		snprintf(site->state_error, sizeof(site->state_error), "%s", why.message);
		mg_state_init(st, plan_name);
		mg_error_clear(&why);
	}
	return 0;
}

int mg_shift_rollback(mg_shift_outcome *out, mg_store *store, mg_state *st,
                      const mg_shift_site *site, mg_traffic *t, const mg_shift_request *req,
                      mg_error *err)
{
	memset(out, 0, sizeof(*out));
	bool can_write = store && !site->unlocked;
	/* what the state says it left; unknown when it cannot be read */
	json_t *before =
	    site->state_unread
	        ? json_null()
	        : position(st->has_read_back ? st->read_back_k8s_percent : 0, st->step_index);
	/* no intent first: the way out waits for no disk */
	int rc = mg_traffic_apply(&out->read_back, t, req->k8s_percent, req->forced, err);
	if (rc)
		return apply_failed(store, st, t, req, before, can_write && !site->state_unread, rc,
		                    err);

	reached(st, req->k8s_percent, req->step_index, req->nsteps);
	record_read_back(st, out->read_back.k8s_percent);
	st->pending = false;
	if (!can_write)
		note(out->record_error, sizeof(out->record_error),
		     "the plan's lock could not be taken (%s), and nothing is written without it",
		     site->lock_error);
	else if (site->state_unread)
		note(out->record_error, sizeof(out->record_error),
		     "state.json was not replaced: it cannot be read (%s); fix or restore it",
		     site->state_error);
	return record_result(out, store, st, req, before, &out->read_back, can_write,
	                     can_write && !site->state_unread,
	                     "Keep the record printed with this error; once the state directory "
	                     "can be written (and state.json read), run `migrate rollback` again "
	                     "to record it: the balancer is already there",
	                     err);
}

int mg_shift_rollback_record_late(mg_shift_outcome *out, mg_store *store, mg_state *st,
                                  const mg_shift_request *req, mg_error *err)
{
	/* the move's read-back stands: the state is the one the lock holder left, read now */
	json_t *before =
	    position(st->has_read_back ? st->read_back_k8s_percent : 0, st->step_index);
	reached(st, req->k8s_percent, req->step_index, req->nsteps);
	st->read_back_ms = mg_now_ms();
	st->has_read_back = true;
	st->read_back_k8s_percent = out->read_back.k8s_percent;
	st->pending = false;
	out->record_error[0] = '\0';
	json_decref(out->record);
	out->record = NULL;
	return record_result(out, store, st, req, before, &out->read_back, true, true,
	                     "Keep the record printed with this error; run `migrate rollback` "
	                     "again to record it: the balancer is already there",
	                     err);
}

/*
 * Whether the journal already has the reconcile record of the pending intent.
 * A reconciliation whose state could not be saved leaves the mark, so every
 * command after it reconciles the same intent again; the journal says so once.
 * Records written before the intent was marked cannot be it: the search ends
 * there. An unreadable journal counts as no record (one too many is better than
 * none).
 */
typedef struct {
	const mg_state *st;
	const char *since;
	bool found;
} reconcile_search;

static int is_reconcile_of(json_t *rec, void *ud, mg_error *err)
{
	(void)err;
	reconcile_search *q = ud;
	json_t *intent = json_object_get(rec, "before");
	const char *action = json_string_value(json_object_get(rec, "action"));
	const char *command = json_string_value(json_object_get(intent, "command"));
	const char *when = json_string_value(json_object_get(intent, "since"));
	q->found |= action && !strcmp(action, "reconcile") && command &&
	            !strcmp(command, q->st->pending_command) && when && !strcmp(when, q->since);
	return 0;
}

/*
 * Whether the journal already has the reconcile record of this intent: a retry
 * whose state save failed must not write it again. Only the records since the
 * intent are read, from the end of the journal backwards.
 */
static bool reconcile_journalled(mg_store *store, const mg_state *st, const char *since)
{
	reconcile_search q = {.st = st, .since = since};
	mg_journal_query jq = {.limit = SIZE_MAX, .since_ms = st->pending_ms};
	mg_error err = MG_ERROR_INIT;
	if (mg_journal_each(store, &jq, is_reconcile_of, &q, NULL, &err))
		mg_error_clear(&err);
	return q.found;
}

int mg_shift_reconcile(bool *reconciled, const char **outcome, mg_store *store, mg_state *st,
                       mg_traffic *t, const char *command, mg_error *err)
{
	*reconciled = false;
	*outcome = NULL;
	if (!st->pending)
		return 0;
	char since[40];
	mg_time_format(since, sizeof(since), st->pending_ms);
	/* a read must be what the balancer runs before it can say "applied" (nginx: the file
	 * may be renamed into place and never reloaded) */
	int rc = mg_traffic_settle(t, err);
	if (rc) {
		mg_error why = MG_ERROR_INIT;
		mg_error_set(&why, rc, "%s", err->message);
		mg_error_set(
		    err, rc,
		    "an interrupted %s (to %.4g%% since %s) cannot be reconciled: %s; "
		    "nothing counts as applied until %s runs what it reports: fix that and "
		    "run the command again",
		    st->pending_command, st->pending_k8s_percent, since, why.message,
		    mg_traffic_name(t));
		mg_error_clear(&why);
		return rc;
	}
	mg_traffic_state live;
	rc = mg_traffic_read(&live, t, err);
	if (rc)
		return rc;
	double before = st->has_read_back ? st->read_back_k8s_percent : 0;
	json_t *intent =
	    json_pack("{s:s, s:o, s:s}", "command", st->pending_command, "target",
	              position(st->pending_k8s_percent, st->pending_step_index), "since", since);
	if (mg_traffic_same_share(live.k8s_percent, st->pending_k8s_percent)) {
		*outcome = "applied"; /* the balancer has it: the step was taken */
		reached(st, st->pending_k8s_percent, st->pending_step_index, 0);
		if (st->pending_step_index >= 0 && st->pending_k8s_percent >= 100)
			st->phase = MG_PHASE_COMPLETE;
	} else if (mg_traffic_same_share(live.k8s_percent, before)) {
		*outcome = "not applied"; /* nothing changed at the balancer */
	} else {
		*outcome = "unknown"; /* neither: someone else moved it; drift rules apply */
	}
	/* "unknown": keep the last read-back, so the next command sees the drift and refuses */
	if (strcmp(*outcome, "unknown") != 0)
		record_read_back(st, live.k8s_percent);
	bool again = reconcile_journalled(store, st, since);
	st->pending = false;
	mg_log(MG_LOG_WARN,
	       "an interrupted %s (to %.4g%% since %s) was reconciled: the balancer has %.4g%% "
	       "to the cluster, so it was %s%s",
	       st->pending_command, st->pending_k8s_percent, since, live.k8s_percent, *outcome,
	       again ? " (the journal already has its reconcile record)" : "");
	if (again)
		json_decref(intent);
	else
		rc = journal(store, command, "reconcile", intent, mg_traffic_state_to_json(&live),
		             NULL, json_pack("{s:s}", "outcome", *outcome), err);
	mg_traffic_state_clear(&live);
	if (!rc)
		rc = mg_state_save(store, st, err);
	*reconciled = rc == 0;
	return rc;
}

int mg_shift_drift(bool *drift, double *live, const mg_state *st, mg_traffic *t, mg_error *err)
{
	mg_traffic_state now;
	int rc = mg_traffic_read(&now, t, err);
	if (rc)
		return rc;
	*live = now.k8s_percent;
	/* before the first step the balancer should send nothing to the cluster */
	double expected = st->has_read_back ? st->read_back_k8s_percent : 0;
	*drift = !mg_traffic_same_share(now.k8s_percent, expected);
	mg_traffic_state_clear(&now);
	return 0;
}

int mg_shift_adopt(mg_store *store, mg_state *st, double live, const char *command,
                   const char *reason, mg_error *err)
{
	double before = st->has_read_back ? st->read_back_k8s_percent : 0;
	record_read_back(st, live);
	st->has_applied = true;
	st->applied_k8s_percent = live;
	st->applied_ms = st->read_back_ms;
	int rc = journal(store, command, "adopt", position(before, st->step_index),
	                 position(live, st->step_index), reason,
	                 json_pack("{s:s}", "why",
	                           "the balancer's weights were changed outside "
	                           "migrate; the operator adopted them"),
	                 err);
	return rc ? rc : mg_state_save(store, st, err);
}
