/* Opening a migration: plan, state directory, balancer, and the metrics on first use. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "internal.h"
#include "kubestore.h"
#include "log.h"
#include "spool.h"
#include "units.h"

/* "phase shifting, step 1 (10% read back), revision 3" */
static void describe(char *buf, size_t size, const mg_state *st)
{
	char step[32] = "no step";
	if (st->step_index >= 0)
		snprintf(step, sizeof(step), "step %d", st->step_index + 1);
	snprintf(buf, size, "phase %s, %s (%.4g%% read back), revision %llu",
	         mg_phase_name(st->phase), step, st->has_read_back ? st->read_back_k8s_percent : 0,
	         (unsigned long long)st->revision);
}

/* The state a command started from is not the one it found once it held the lock. */
static int state_moved(const char *command, const mg_state *seen, const mg_state *now,
                       mg_error *err)
{
	char was[160], is[160], when[40];
	describe(was, sizeof(was), seen);
	describe(is, sizeof(is), now);
	mg_time_format(when, sizeof(when), now->updated_ms);
	return mg_error_set(err, MG_ECONFLICT,
	                    "the state moved while `migrate %s` waited for the lock: it started "
	                    "at %s, and another command left %s (at %s). Nothing was changed: "
	                    "check `migrate status` and run the command again if it is still "
	                    "wanted",
	                    command, was, is, when);
}

/*
 * The state directory if it exists (*store stays NULL when not: 0). err keeps
 * the plan's warnings, so a missing directory is not cleared from it.
 */
static int open_existing(mg_migration *m, mg_store **store, const char *dir, mg_error *err)
{
	mg_error why = MG_ERROR_INIT;
	int rc = mg_kube_store_open_plan(store, m->plan, dir, true, m->cancel, 0, &why);
	if (rc && rc != MG_ENOTFOUND)
		mg_error_set(err, rc, "%s", why.message);
	mg_error_clear(&why);
	return rc == MG_ENOTFOUND ? 0 : rc;
}

/* --dry-run: change nothing, not even create the state directory. */
static int open_dry_run(mg_migration *m, const char *dir, const char *name, mg_error *err)
{
	(void)name;
	int rc = open_existing(m, &m->store, dir, err);
	return rc || !m->store ? rc : mg_state_load(&m->st, m->store, err);
}

/* status: nothing created, nothing locked; a damaged state.json is kept as an error. */
static int open_read(mg_migration *m, const char *dir, const char *name, mg_error *err)
{
	/* no state directory: nothing has run yet, and that is a state too */
	int rc = open_existing(m, &m->store, dir, err);
	if (!rc && m->store) {
		mg_error why = MG_ERROR_INIT;
		m->state_rc = mg_state_load(&m->st, m->store, &why);
		if (m->state_rc) {
			snprintf(m->state_error, sizeof(m->state_error), "%s", why.message);
			mg_state_init(&m->st, name);
		}
		mg_error_clear(&why);
	}
	return rc;
}

/* step, run: the lock, and the state the operator saw when they started the command. */
static int open_shift(mg_migration *m, const char *dir, const char *name, mg_error *err)
{
	if (m->dry_run)
		return open_dry_run(m, dir, name, err);
	(void)name;
	int rc = mg_kube_store_open_plan(&m->store, m->plan, dir, false, m->cancel, 0, err);
	/* what the operator saw when they started the command: a step decided on it */
	mg_state seen;
	mg_error ignored = MG_ERROR_INIT;
	bool have_seen = !rc && mg_state_load(&seen, m->store, &ignored) == 0;
	mg_error_clear(&ignored);
	if (!rc)
		rc = mg_store_lock(m->store, m->command, err);
	if (!rc)
		rc = mg_state_load(&m->st, m->store, err);
	/* a state this machine spooled, uploaded as the lock was taken, is no one else's move */
	if (!rc && have_seen && !m->elected && seen.revision != m->st.revision &&
	    !mg_store_spool_result(m->store)->applied)
		rc = state_moved(m->command, &seen, &m->st, err);
	return rc;
}

/*
 * A traffic rollback, which the state directory never stops: a directory or
 * lock that cannot be written, or a state.json that cannot be read, go into
 * m->site and the rollback goes on. No state-moved check: whatever moved, the
 * way out is the same. An autopilot holding the lock is told to stop.
 */
/* A rollback waits this long at most for a cluster that keeps the state and does not answer. */
#define MG_ROLLBACK_DEADLINE 2000

typedef struct {
	mg_migration *m;
	const char *dir;
} rollback_opener;

/*
 * The store, for mg_shift_open_rollback. A cluster that cannot be reached
 * (its kubeconfig included) is a state that cannot be recorded, not bad
 * input: the rollback still moves traffic.
 */
static int open_for_rollback(mg_store **out, bool existing, void *ud, mg_error *err)
{
	rollback_opener *o = ud;
	int rc = mg_kube_store_open_plan(out, o->m->plan, o->dir, existing, o->m->cancel,
	                                 MG_ROLLBACK_DEADLINE, err);
	if (rc == MG_EINVALID && mg_plan_state_section(o->m->plan)->backend != MG_STATE_LOCAL)
		rc = err->code = MG_ERROR;
	return rc;
}

static int open_rollback(mg_migration *m, const char *dir, const char *name, const char *reason,
                         mg_error *err)
{
	if (m->dry_run)
		return open_dry_run(m, dir, name, err);
	rollback_opener o = {.m = m, .dir = dir};
	return mg_shift_open_rollback(&m->store, &m->st, &m->site, open_for_rollback, &o, name,
	                              m->command, "run", MG_MIGRATION_PREEMPT_WAIT_MS, reason, err);
}

/* The balancer's driver, and an interrupted command reconciled (not with dry_run). */
static int open_balancer(mg_migration *m, bool rollback, mg_error *err)
{
	int rc = m->t ? 0 : mg_traffic_open(&m->t, m->traffic, err);
	if (rc || m->dry_run)
		return rc;
	bool done;
	if (!rollback)
		return mg_shift_reconcile(&done, &m->reconciled, m->store, &m->st, m->t, m->command,
		                          err);
	if (m->site.unlocked || m->site.state_unread)
		return 0;
	/* an interrupted command is recorded when it can be; the rollback goes on anyway */
	mg_error why = MG_ERROR_INIT;
	if (mg_shift_reconcile(&done, &m->reconciled, m->store, &m->st, m->t, m->command, &why))
		mg_log(MG_LOG_WARN, "%s; the rollback goes on", why.message);
	mg_error_clear(&why);
	return 0;
}

int mg_migration_open(mg_migration **out, const mg_migration_options *o, mg_error *err)
{
	*out = NULL;
	mg_migration *m = calloc(1, sizeof(*m));
	if (!m) {
		mg_traffic_free(o->traffic);
		mg_metrics_free(o->metrics);
		return mg_error_oom(err);
	}
	/* a test's balancer and metrics source, taken at once: every way out frees them */
	m->t = o->traffic;
	m->metrics = o->metrics;
	snprintf(m->command, sizeof(m->command), "%s", o->command ? o->command : "migrate");
	m->dry_run = o->dry_run;
	m->elected = o->elected;
	m->opened_ms = mg_now_ms();
	/* the warnings stay in err, for the caller to show */
	unsigned needs = o->mode == MG_MIGRATION_READ ? o->needs : MG_NEED_TRAFFIC | o->needs;
	int rc = mg_plan_load(&m->plan, o->plan_path, 0, err);
	if (!rc)
		rc = mg_plan_require(m->plan, needs, m->command, err);
	if (rc) {
		mg_migration_free(m);
		return rc;
	}
	m->traffic = mg_plan_traffic_section(m->plan);
	m->slo = mg_plan_slo_section(m->plan);
	/* the state directory, when the plan keeps its state there (state.backend: local) */
	const char *dir = o->state_dir ? o->state_dir : mg_plan_state_dir(m->plan);
	const char *name = mg_plan_name(m->plan);
	mg_state_init(&m->st, name);
	if (mg_plan_state_section(m->plan)->backend != MG_STATE_LOCAL &&
	    (rc = mg_spool_dir(m->spool, sizeof(m->spool), dir, name, err))) {
		mg_migration_free(m);
		return rc;
	}
	switch (o->mode) {
	case MG_MIGRATION_READ:
		rc = open_read(m, dir, name, err);
		break;
	case MG_MIGRATION_HOLD:
		rc = mg_kube_store_open_plan(&m->store, m->plan, dir, false, m->cancel, 0, err);
		break;
	case MG_MIGRATION_ROLLBACK:
		rc = open_rollback(m, dir, name, o->reason, err);
		if (!rc)
			rc = open_balancer(m, true, err);
		break;
	default:
		rc = open_shift(m, dir, name, err);
		if (!rc)
			rc = open_balancer(m, false, err);
		break;
	}
	if (rc) {
		mg_migration_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void mg_migration_free(mg_migration *m)
{
	if (!m)
		return;
	mg_metrics_free(m->metrics);
	mg_traffic_free(m->t);
	mg_store_free(m->store); /* releases the lock */
	mg_plan_free(m->plan);
	free(m);
}

const mg_plan *mg_migration_plan(const mg_migration *m)
{
	return m->plan;
}

const mg_plan_traffic *mg_migration_traffic(const mg_migration *m)
{
	return m->traffic;
}

const mg_state *mg_migration_state(const mg_migration *m)
{
	return &m->st;
}

mg_traffic *mg_migration_balancer(mg_migration *m)
{
	return m->t;
}

const char *mg_migration_spool_dir(const mg_migration *m)
{
	return m->spool[0] ? m->spool : NULL;
}

const char *mg_migration_stop_asked(const mg_migration *m)
{
	return m->site.stop_asked ? m->site.stop_holder : NULL;
}

const char *mg_migration_reconciled(const mg_migration *m)
{
	return m->reconciled;
}

void mg_migration_set_cancel(mg_migration *m, const mg_cancel *flag)
{
	m->cancel = flag;
	if (m->metrics)
		mg_metrics_set_cancel(m->metrics, flag);
}

int mg_migration_metrics(mg_metrics **out, mg_migration *m, mg_error *err)
{
	if (!m->metrics) {
		if (!m->slo)
			return mg_error_set(err, MG_EINVALID, "the plan has no slo section");
		int rc = mg_metrics_open(&m->metrics, m->slo, err);
		if (rc)
			return rc;
		if (m->cancel)
			mg_metrics_set_cancel(m->metrics, m->cancel);
	}
	*out = m->metrics;
	return 0;
}

int mg_migration_metrics_open(mg_migration *m, mg_error *err)
{
	mg_metrics *unused;
	return mg_migration_metrics(&unused, m, err);
}

void mg_migration_step_name(char *buf, size_t size, const mg_state *st, const mg_plan_traffic *t)
{
	char p[32];
	if (st->step_index < 0 || !t || (size_t)st->step_index >= t->nsteps) {
		snprintf(buf, size, "before the first step (0%%)");
		return;
	}
	mg_percent_format(p, sizeof(p), t->steps[st->step_index]);
	snprintf(buf, size, "step %d of %zu (%s)", st->step_index + 1, t->nsteps, p);
}

int mg_migration_step_index(const mg_plan_traffic *t, double pct)
{
	for (size_t i = 0; i < t->nsteps; i++)
		if (fabs(t->steps[i] - pct) < 1e-9)
			return (int)i;
	return -1;
}
