/*
 * `migrate run --leader-elect` (issue 15): any number of autopilots of one
 * plan on any machines, one of which leads. The lock of the kubernetes state
 * backend is already a Lease renewed by its holder (lib/kube/lease.c, as
 * client-go's leaderelection keeps one), so leading is holding the plan's
 * lock: a standby waits here until the Lease is free or has run out, then
 * opens the migration as any `run` does and continues from the recorded
 * state (the step, when it began, the failure count).
 *
 * A standby contends only when an autopilot has something to do: not while
 * a rollback's stop request is pending (it halts every replica, not only
 * the one that saw it), nor once the migration is complete, rolled back,
 * paused, or at --until. Those wait for an operator (`migrate step`,
 * `resume`), so a Deployment of autopilots neither crash-loops nor undoes a
 * rollback. It says what it waits for once per change, then nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "journal.h"
#include "kubestore.h"
#include "secret.h"
#include "serve.h"
#include "storebackend.h"

struct mg_standby {
	mg_standby_options o;
	mg_plan *plan;
	mg_store *store;
	mg_kube_client *c; /* the Lease and the standby's own Lease */
	char ns[254];
	char lease_path[512];
	int until; /* index of the last step to take */
	char id[17];
	char holder[512];
	int lease_seconds;
	int64_t retry_ms;
	int64_t next_beat_ms, next_prune_ms;
	bool registered;
	char said[1024];        /* the last thing said: each once */
	char last_leader[512];  /* the holder last seen leading, for the takeover record */
	bool last_released;     /* its Lease was given up (a hand-over), not left to expire */
	int64_t waiting_since;  /* mg_clock_ms() when this wait began */
	int64_t leader_seen_ms; /* mg_now_ms() of the last renewal seen */
	mg_state st;            /* as last read, for the metrics */
};

static void say(mg_standby *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(mg_standby *s, const char *fmt, ...)
{
	char msg[1024];
	va_list va;
	va_start(va, fmt);
	vsnprintf(msg, sizeof(msg), fmt, va);
	va_end(va);
	if (!strcmp(msg, s->said))
		return;
	snprintf(s->said, sizeof(s->said), "%s", msg);
	if (s->o.event)
		s->o.event(s->o.ud, msg);
}

int mg_standby_new(mg_standby **out, const mg_standby_options *o, mg_error *err)
{
	*out = NULL;
	mg_standby *s = calloc(1, sizeof(*s));
	if (!s)
		return mg_error_oom(err);
	s->o = *o;
	int rc = mg_plan_load(&s->plan, o->plan_path, 0, err);
	if (!rc)
		rc = mg_plan_require(s->plan, MG_NEED_TRAFFIC | MG_NEED_SLO, "run", err);
	const mg_plan_state *ps = rc ? NULL : mg_plan_state_section(s->plan);
	if (!rc && ps->backend != MG_STATE_KUBERNETES)
		rc = mg_error_set(err, MG_EINVALID,
		                  "--leader-elect needs the plan's state in the cluster "
		                  "(state: {backend: kubernetes}): the leader is whoever holds the "
		                  "plan's Lease there, and the standbys read the state it leaves");
	if (!rc) {
		s->until = mg_migration_step_index(mg_plan_traffic_section(s->plan),
		                                   o->until_pct > 0 ? o->until_pct : 100);
		if (s->until < 0)
			rc = mg_error_set(
			    err, MG_EINVALID,
			    "--until %s is not one of traffic.steps; `migrate plan` lists them",
			    o->until_text ? o->until_text : "100");
	}
	mg_kube_config_options co;
	if (!rc)
		rc = mg_kube_store_client(&s->c, &co, s->plan, "state", o->cancel, 0, err);
	if (!rc)
		rc = mg_kube_store_open_plan(&s->store, s->plan, o->state_dir, false, o->cancel, 0,
		                             err);
	if (rc) {
		mg_standby_free(s);
		return rc;
	}
	const char *plan = mg_plan_name(s->plan);
	mg_state_init(&s->st, plan);
	snprintf(s->ns, sizeof(s->ns), "%s", mg_kube_client_namespace(s->c));
	snprintf(s->lease_path, sizeof(s->lease_path),
	         "/apis/coordination.k8s.io/v1/namespaces/%s/leases/migrate-%s", s->ns, plan);
	int64_t lease_ms = ps->lease_ms > 0 ? ps->lease_ms : 15000;
	s->lease_seconds = (int)((lease_ms + 999) / 1000);
	if (s->lease_seconds < 2)
		s->lease_seconds = 2;
	/* a released Lease is taken within a fifth of the lease, and never slower than 1 s */
	s->retry_ms = lease_ms / 5;
	if (s->retry_ms > 1000)
		s->retry_ms = 1000;
	if (s->retry_ms < 200)
		s->retry_ms = 200;
	unsigned id = (unsigned)getpid() * 2654435761u ^ (unsigned)mg_clock_ms();
	snprintf(s->id, sizeof(s->id), "%08x", id);
	char op[256];
	mg_operator_id(op, sizeof(op));
	snprintf(s->holder, sizeof(s->holder), "%s pid %ld command run id %s", op, (long)getpid(),
	         s->id);
	*out = s;
	return 0;
}

void mg_standby_free(mg_standby *s)
{
	if (!s)
		return;
	if (s->registered) {
		mg_error tmp = MG_ERROR_INIT;
		mg_standby_leave(s, &tmp);
		mg_error_clear(&tmp);
	}
	mg_store_free(s->store);
	mg_kube_client_free(s->c);
	mg_plan_free(s->plan);
	free(s);
}

int mg_standby_leave(mg_standby *s, mg_error *err)
{
	if (!s->registered)
		return 0;
	mg_kube_standby me = {.ns = s->ns,
	                      .plan = mg_plan_name(s->plan),
	                      .id = s->id,
	                      .holder = s->holder,
	                      .lease_seconds = s->lease_seconds};
	s->registered = false;
	s->next_beat_ms = 0;
	return mg_kube_standby_remove(s->c, &me, err);
}

const char *mg_standby_last_leader(const mg_standby *s, bool *released)
{
	if (released)
		*released = s->last_released;
	return s->last_leader;
}

const char *mg_standby_holder(const mg_standby *s)
{
	return s->holder;
}

/* The standby's own Lease, renewed every third of the lease; failures are said, not fatal. */
static void beat(mg_standby *s)
{
	int64_t now = mg_clock_ms();
	if (now < s->next_beat_ms)
		return;
	s->next_beat_ms = now + s->lease_seconds * 1000 / 3;
	mg_kube_standby me = {.ns = s->ns,
	                      .plan = mg_plan_name(s->plan),
	                      .id = s->id,
	                      .holder = s->holder,
	                      .lease_seconds = s->lease_seconds};
	mg_error err = MG_ERROR_INIT;
	if (mg_kube_standby_beat(s->c, &me, &err) == 0)
		s->registered = true;
	mg_error_clear(&err);
	if (now >= s->next_prune_ms) {
		/* now and then: the Leases of standbys that died long ago go */
		s->next_prune_ms = now + 10 * 60 * 1000;
		json_t *list = NULL;
		if (mg_kube_standby_list(&list, s->c, s->ns, mg_plan_name(s->plan), mg_now_ms(),
		                         true, &err) == 0)
			json_decref(list);
		mg_error_clear(&err);
	}
}

/* Why not to contend now ("" when it may), read from the plan's Lease, requests and state. */
static int reason_to_wait(char *why, size_t size, mg_standby *s, mg_error *err)
{
	*why = '\0';
	json_t *lease = NULL;
	int rc = mg_kube_get(s->c, s->lease_path, "the plan's Lease", &lease, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		rc = 0;
	}
	if (rc)
		return rc;
	json_t *spec = json_object_get(lease, "spec");
	const char *who = json_string_value(json_object_get(spec, "holderIdentity"));
	int64_t renewed = 0,
	        secs = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	const char *rt = json_string_value(json_object_get(spec, "renewTime"));
	if (!rt || mg_time_parse(&renewed, rt))
		renewed = 0;
	if (who && *who) {
		char cut[512];
		mg_scrub_cut(cut, sizeof(cut), who, 400);
		if (strcmp(cut, s->last_leader))
			snprintf(s->last_leader, sizeof(s->last_leader), "%s", cut);
		s->last_released = false;
		s->leader_seen_ms = renewed;
		if (renewed && secs > 0 && renewed + secs * 1000 > mg_now_ms()) {
			snprintf(
			    why, size,
			    "standby: plan \"%s\" is led by %s; this process takes over if that "
			    "lease (%lld s) runs out or is handed over",
			    mg_plan_name(s->plan), s->last_leader, (long long)secs);
			json_decref(lease);
			return 0;
		}
	} else if (lease && s->last_leader[0]) {
		s->last_released = true; /* given up: a hand-over, not a death */
	}
	json_decref(lease);

	bool stop;
	mg_pause_request pr;
	rc = mg_store_stop_read(&stop, &pr, s->store, err);
	if (rc)
		return rc;
	if (stop) {
		char when[40];
		mg_time_format(when, sizeof(when), pr.since_ms);
		snprintf(
		    why, size,
		    "halted: a rollback by %.200s (at %s%s%.200s) asked the autopilots to stop; "
		    "once it is recorded, `migrate step` moves on and re-arms them",
		    pr.operator_[0] ? pr.operator_ : "someone", when, pr.reason[0] ? ": " : "",
		    pr.reason);
		return 0;
	}
	bool paused;
	rc = mg_store_pause_read(&paused, &pr, s->store, err);
	mg_state st;
	if (!rc)
		rc = mg_state_load(&st, s->store, err);
	if (rc)
		return rc;
	s->st = st;
	const mg_plan_traffic *t = mg_plan_traffic_section(s->plan);
	char at[64];
	mg_migration_step_name(at, sizeof(at), &st, t);
	if (st.phase == MG_PHASE_COMPLETE)
		snprintf(why, size, "the migration is complete (%s): nothing to do", at);
	else if (st.phase == MG_PHASE_ROLLED_BACK)
		snprintf(
		    why, size,
		    "rolled back (%s): waiting for an operator; `migrate step` takes the first "
		    "step again and re-arms the autopilot",
		    at);
	else if (st.phase == MG_PHASE_PAUSED || paused)
		snprintf(why, size, "paused (%s)%s%.300s: `migrate resume` releases it", at,
		         st.pause_reason[0] ? ": " : "", st.pause_reason);
	else if (st.step_index >= s->until)
		snprintf(why, size, "at --until (%s): nothing to do", at);
	return 0;
}

/*
 * --metrics-addr while waiting: role standby and the state as last read, and
 * /healthz kept fresh (a standby is alive while it looks), /readyz 200.
 */
static void publish(mg_standby *s)
{
	if (!s->o.serve)
		return;
	mg_error e = MG_ERROR_INIT;
	char *text = NULL;
	int64_t now = mg_now_ms();
	mg_autopilot_view v = {.plan = mg_plan_name(s->plan),
	                       .st = &s->st,
	                       .traffic = mg_plan_traffic_section(s->plan),
	                       .slo = mg_plan_slo_section(s->plan),
	                       .last_tick_ms = now,
	                       .role = "standby",
	                       .now_ms = now};
	if (mg_autopilot_metrics_render(&text, &v, &e) == 0)
		mg_serve_publish(s->o.serve, "/metrics", 200,
		                 "text/plain; version=0.0.4; charset=utf-8", text, 0, &e);
	free(text);
	mg_serve_publish(s->o.serve, "/healthz", 200, NULL, "ok\n", mg_autopilot_live_ms(NULL), &e);
	mg_serve_publish(s->o.serve, "/readyz", 200, NULL, "ready: standby\n", 0, &e);
	mg_error_clear(&e);
}

int mg_standby_wait(bool *go, mg_standby *s, mg_error *err)
{
	(void)err; /* the cluster failing is waited out, never the end of a standby */
	*go = false;
	s->waiting_since = mg_clock_ms();
	s->said[0] = '\0';
	while (!(s->o.cancel && *s->o.cancel)) {
		beat(s);
		char why[1024];
		mg_error tmp = MG_ERROR_INIT;
		if (reason_to_wait(why, sizeof(why), s, &tmp)) {
			snprintf(why, sizeof(why),
			         "standby: cannot read the plan's Lease and state (%.800s); trying "
			         "again",
			         tmp.message);
		}
		mg_error_clear(&tmp);
		publish(s);
		if (!*why) {
			*go = true;
			return 0;
		}
		say(s, "%s", why);
		mg_clock_sleep_ms(s->retry_ms, s->o.cancel);
	}
	return 0;
}

int64_t mg_standby_waited_ms(const mg_standby *s)
{
	return mg_clock_ms() - s->waiting_since;
}

int mg_migration_journal_takeover(mg_migration *m, const mg_standby *s, mg_error *err)
{
	bool released;
	const char *from = mg_standby_last_leader(s, &released);
	char why[800];
	if (!*from)
		snprintf(why, sizeof(why), "no autopilot led the plan: this one leads");
	else if (released)
		snprintf(why, sizeof(why), "%.400s handed the plan's Lease over: this one leads",
		         from);
	else {
		char seen[40];
		mg_time_format(seen, sizeof(seen), s->leader_seen_ms);
		snprintf(why, sizeof(why),
		         "the lease of %.400s ran out (last renewed %s): this one took over", from,
		         seen);
	}
	mg_state *st = &m->st;
	json_t *ev = json_pack("{s:s?, s:s, s:s, s:I, s:o, s:I}", "from", *from ? from : NULL, "to",
	                       s->holder, "how",
	                       !*from     ? "first"
	                       : released ? "handed-over"
	                                  : "expired",
	                       "waited_ms", (json_int_t)mg_standby_waited_ms(s), "step",
	                       st->step_index < 0 ? json_null() : json_integer(st->step_index + 1),
	                       "gate_failures", (json_int_t)st->gate_failures);
	mg_journal_entry e = {
	    .command = "run", .action = "takeover", .reason = why, .evidence = ev};
	int rc = mg_journal_append(m->store, &e, err);
	json_decref(ev);
	return rc;
}

bool mg_migration_leadership_lost(mg_migration *m)
{
	if (!m->store || !mg_store_remote(m->store))
		return false;
	mg_error tmp = MG_ERROR_INIT;
	bool lost = mg_store_keepalive(m->store, &tmp) == MG_ECONFLICT;
	mg_error_clear(&tmp);
	return lost;
}

int mg_migration_journal_handover(mg_migration *m, const char *signal_name, mg_error *err)
{
	char why[200];
	snprintf(why, sizeof(why),
	         "%s: the plan's Lease is released, so a standby takes over at once", signal_name);
	mg_journal_entry e = {.command = "run", .action = "handover", .reason = why};
	return mg_journal_append(m->store, &e, err);
}
