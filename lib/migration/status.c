/*
 * Where a migration stands, for `migrate status`: the state as recorded (a
 * damaged state.json is shown beside the live weights, not a reason to show
 * nothing), the lock, the balancer read now, what the next command will do
 * about an interrupted one, and the fleet's releases as fleet.json records them.
 */
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "internal.h"
#include "kubestore.h"

static int by_count(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;
	json_int_t nx = json_integer_value(json_object_get(*x, "hosts"));
	json_int_t ny = json_integer_value(json_object_get(*y, "hosts"));
	if (nx != ny)
		return nx > ny ? -1 : 1;
	return strcmp(json_string_value(json_object_get(*x, "version")),
	              json_string_value(json_object_get(*y, "version")));
}

/* A host not on the fleet's version, as fleet.json last saw it. */
static json_t *off_host(const char *name, json_t *h)
{
	json_t *ver = json_object_get(h, "version");
	json_t *out = json_object_get(h, "outcome");
	json_t *at = json_object_get(h, "at");
	return json_pack("{s:s, s:O, s:O, s:O}", "host", name, "version",
	                 json_is_string(ver) ? ver : json_null(), "outcome",
	                 json_is_string(out) ? out : json_null(), "at",
	                 json_is_string(at) ? at : json_null());
}

/* {hosts, recorded, unknown, versions: [{version, hosts}] most hosts first, skew, off_version} */
static json_t *fleet_view(const mg_plan_vms *v, json_t *record, const char *fleet_version)
{
	size_t recorded = 0, unknown = 0;
	json_t *hosts = json_object_get(record, "hosts");
	json_t *count = json_object();
	json_t *off = json_array();
	for (size_t i = 0; i < v->nhosts; i++) {
		json_t *h = json_object_get(hosts, v->hosts[i].name);
		json_t *ver = json_object_get(h, "version");
		if (h)
			recorded++;
		if (!json_is_string(ver)) {
			unknown++;
		} else {
			const char *s = json_string_value(ver);
			json_t *n = json_object_get(count, s);
			json_object_set_new(count, s,
			                    json_integer(n ? json_integer_value(n) + 1 : 1));
		}
		if (!json_is_string(ver) || !*fleet_version ||
		    strcmp(json_string_value(ver), fleet_version) != 0)
			json_array_append_new(off, off_host(v->hosts[i].name, h));
	}
	size_t nv = json_object_size(count), k = 0;
	json_t **items = calloc(nv ? nv : 1, sizeof(*items));
	const char *key;
	json_t *n;
	json_object_foreach(count, key, n)
	{
		if (items)
			items[k++] = json_pack("{s:s, s:O}", "version", key, "hosts", n);
	}
	qsort(items, k, sizeof(*items), by_count);
	json_t *versions = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(versions, items[i]);
	free(items);
	json_decref(count);
	if (!recorded)
		json_array_clear(off);
	/* one release everywhere is the only state without skew; hosts never deployed to count */
	bool skew = recorded > 0 && (nv > 1 || (nv == 1 && unknown > 0));
	return json_pack("{s:I, s:I, s:I, s:o, s:b, s:o}", "hosts", (json_int_t)v->nhosts,
	                 "recorded", (json_int_t)recorded, "unknown", (json_int_t)unknown,
	                 "versions", versions, "skew", skew, "off_version", off);
}

/* The balancer as it is now; false with why set when it cannot be read. */
static bool read_live(mg_traffic_state *live, const mg_plan_traffic *t, char *why, size_t size)
{
	mg_error err = MG_ERROR_INIT;
	mg_traffic *drv = NULL;
	bool ok = mg_traffic_open(&drv, t, &err) == 0 && mg_traffic_read(live, drv, &err) == 0;
	if (!ok)
		snprintf(why, size, "%s", err.message);
	mg_traffic_free(drv);
	mg_error_clear(&err);
	return ok;
}

/* Who would take a leader-elected autopilot over: their own Leases, listed (leader.c). */
static void standbys(mg_status *out, mg_migration *m, int64_t now_ms)
{
	mg_kube_config_options co;
	mg_kube_client *c = NULL;
	mg_error why = MG_ERROR_INIT;
	if (mg_kube_store_client(&c, &co, m->plan, "state", m->cancel, 0, &why) == 0)
		mg_kube_standby_list(&out->standbys, c, mg_kube_client_namespace(c),
		                     mg_plan_name(m->plan), now_ms, false, &why);
	if (why.code)
		snprintf(out->standbys_error, sizeof(out->standbys_error), "%.500s", why.message);
	mg_error_clear(&why);
	mg_kube_client_free(c);
}

int mg_migration_status(mg_status *out, mg_migration *m, bool offline, int64_t now_ms,
                        mg_error *err)
{
	memset(out, 0, sizeof(*out));
	out->bake_left_ms = -1;
	mg_state *st = &out->st;
	*st = m->st;
	out->state_rc = m->state_rc;
	snprintf(out->state_error, sizeof(out->state_error), "%s", m->state_error);
	out->recorded = m->store && !m->state_rc && st->revision > 0;
	if (m->store) {
		int rc = mg_store_lock_probe(&out->lock_held, &out->holder, m->store, err);
		if (rc)
			return rc;
	}
	if (m->store && mg_plan_state_section(m->plan)->backend == MG_STATE_KUBERNETES)
		standbys(out, m, now_ms);
	/* nothing recorded here (a fresh runner): what the hosts and the cluster say instead */
	json_t *rebuilt_record = NULL;
	bool rebuilt = !offline && !m->state_rc && st->revision == 0;
	if (rebuilt) {
		int rc = mg_migration_rebuild(out, &rebuilt_record, m, err);
		if (rc)
			return rc;
	}
	/* the fleet as fleet.json records it; a damaged file is shown, not fatal */
	const mg_plan_vms *vms = mg_plan_vms_section(m->plan);
	if (vms && rebuilt) {
		out->fleet = fleet_view(vms, rebuilt_record, st->vms_version);
		json_decref(rebuilt_record);
	} else if (vms) {
		json_t *record = NULL;
		mg_error ferr = MG_ERROR_INIT;
		if (m->store && mg_fleet_record_load(&record, m->store, &ferr) != 0)
			snprintf(out->fleet_error, sizeof(out->fleet_error), "%s", ferr.message);
		else
			out->fleet = fleet_view(vms, record, st->vms_version);
		json_decref(record);
		mg_error_clear(&ferr);
	}
	const mg_plan_traffic *t = m->traffic;
	out->has_live =
	    t && !offline && read_live(&out->live, t, out->live_error, sizeof(out->live_error));
	double expected = st->has_read_back ? st->read_back_k8s_percent : 0;
	double live = out->live.k8s_percent;
	/* what the next step, rollback or run will record for an interrupted one, from live */
	if (out->has_live && st->pending && !out->state_rc)
		out->pending_outcome = mg_traffic_same_share(live, st->pending_k8s_percent)
		                           ? "applied"
		                       : mg_traffic_same_share(live, expected) ? "not applied"
		                                                               : "unknown";
	/* the target of migrate's own interrupted command is not a change made outside it */
	out->drift = out->has_live && !out->state_rc && !mg_traffic_same_share(live, expected) &&
	             !(out->pending_outcome && !strcmp(out->pending_outcome, "applied"));
	if (t && st->step_index >= 0 && st->step_started_ms > 0 && st->phase == MG_PHASE_SHIFTING) {
		out->bake_left_ms = st->step_started_ms + t->bake_ms - now_ms;
		if (out->bake_left_ms < 0)
			out->bake_left_ms = 0;
	}
	return 0;
}

void mg_status_clear(mg_status *s)
{
	mg_traffic_state_clear(&s->live);
	json_decref(s->fleet);
	json_decref(s->rebuilt);
	json_decref(s->rebuild);
	json_decref(s->standbys);
	memset(s, 0, sizeof(*s));
}

static json_t *lock_json(bool held, const mg_lock_holder *h)
{
	if (!held)
		return json_pack("{s:b}", "held", 0);
	if (!h->pid) /* held, but the holder is unknown: no made-up pid or 1970 timestamp */
		return json_pack("{s:b, s:n, s:n, s:n, s:n}", "held", 1, "operator", "pid",
		                 "command", "since");
	char since[40];
	mg_time_format(since, sizeof(since), h->since_ms);
	return json_pack("{s:b, s:s, s:I, s:s, s:s}", "held", 1, "operator", h->operator_, "pid",
	                 (json_int_t)h->pid, "command", h->command, "since", since);
}

json_t *mg_status_to_json(const mg_status *s, const mg_migration *m, const char *state_dir)
{
	const mg_plan_traffic *t = m->traffic;
	json_t *o = json_object();
	json_object_set_new(o, "plan", json_string(mg_plan_name(m->plan)));
	json_object_set_new(o, "state_dir", json_string(state_dir));
	/* where the record is kept: the directory's path, or "kubernetes NS/migrate-PLAN" */
	const mg_plan_state *ps = mg_plan_state_section(m->plan);
	json_object_set_new(
	    o, "state_backend",
	    json_string(ps && ps->backend == MG_STATE_KUBERNETES ? "kubernetes" : "local"));
	json_object_set_new(o, "state_store",
	                    m->store ? json_string(mg_store_path(m->store)) : json_null());
	json_object_set_new(o, "recorded", json_boolean(s->recorded));
	json_object_set_new(o, "state", s->state_rc ? json_null() : mg_state_to_json(&s->st));
	json_object_set_new(o, "state_error",
	                    s->state_rc ? json_string(s->state_error) : json_null());
	json_object_set_new(o, "steps", t ? json_integer((json_int_t)t->nsteps) : json_null());
	json_object_set_new(o, "bake_remaining_ms",
	                    s->bake_left_ms >= 0 ? json_integer(s->bake_left_ms) : json_null());
	json_object_set_new(o, "lock", lock_json(s->lock_held, &s->holder));
	json_object_set_new(o, "standbys", s->standbys ? json_incref(s->standbys) : json_null());
	json_object_set_new(o, "standbys_error",
	                    *s->standbys_error ? json_string(s->standbys_error) : json_null());
	json_object_set_new(o, "live",
	                    s->has_live ? mg_traffic_state_to_json(&s->live) : json_null());
	json_object_set_new(o, "live_error",
	                    *s->live_error ? json_string(s->live_error) : json_null());
	json_object_set_new(o, "drift",
	                    s->has_live && !s->state_rc ? json_boolean(s->drift) : json_null());
	json_object_set_new(o, "pending_outcome",
	                    s->pending_outcome ? json_string(s->pending_outcome) : json_null());
	json_object_set_new(o, "fleet", s->fleet ? json_incref(s->fleet) : json_null());
	json_object_set_new(o, "fleet_error",
	                    *s->fleet_error ? json_string(s->fleet_error) : json_null());
	json_object_set_new(o, "rebuilt", s->rebuilt ? json_incref(s->rebuilt) : json_null());
	json_object_set_new(o, "rebuilt_from", s->rebuild ? json_incref(s->rebuild) : json_null());
	if (s->state_rc)
		json_object_set_new(o, "error",
		                    json_pack("{s:s, s:s, s:[]}", "kind",
		                              mg_error_name(s->state_rc), "message", s->state_error,
		                              "diagnostics"));
	return o;
}
