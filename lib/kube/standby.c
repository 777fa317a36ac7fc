/*
 * The standbys of a leader-elected autopilot (issue 15): each `migrate run
 * --leader-elect` that waits for the plan's Lease keeps a Lease of its own,
 * migrate-<plan>-standby-<id>, renewed as it waits, so `migrate status` can
 * list who would take over. The plan's lock is not touched here: a standby
 * writing the lock's Lease would race the leader's renewals for nothing.
 *
 * A standby that dies leaves its Lease behind; it stops being renewed, so
 * status shows it as gone once its lease ran out, and the next standby of the
 * plan deletes it after STALE_MS (a list that grows with every pod restart
 * would say nothing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "internal.h"
#include "kubestore.h"
#include "secret.h"
#include "store.h" /* mg_time_parse */

#define LEASES   "/apis/coordination.k8s.io/v1/namespaces/%s/leases"
#define STALE_MS (60 * 60 * 1000) /* a standby silent this long is deleted by the others */

/* RFC 3339 with six fraction digits, as a Lease's MicroTime must be. */
static void micro_time(char buf[40], int64_t ms)
{
	mg_time_format(buf, 36, ms);
	size_t n = strlen(buf);
	if (n && buf[n - 1] == 'Z')
		memcpy(buf + n - 1, "000Z", 5);
}

static bool id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (!n || n > 16)
		return false;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || (*id >= '0' && *id <= '9')))
			return false;
	return true;
}

static json_t *standby_obj(const char *name, const char *plan, const char *holder, int seconds,
                           const char *now)
{
	return json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}}, s:{s:s, s:i, s:s, s:s}}",
	                 "apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata",
	                 "name", name, "labels", MANAGED_BY, "migrate", LABEL_PLAN, plan,
	                 LABEL_KIND, "standby", "spec", "holderIdentity", holder,
	                 "leaseDurationSeconds", seconds, "acquireTime", now, "renewTime", now);
}

int mg_kube_standby_beat(mg_kube_client *c, const mg_kube_standby *s, mg_error *err)
{
	if (!s->ns || !s->plan || !id_ok(s->id) || !s->holder || s->lease_seconds < 1)
		return mg_error_set(err, MG_EINVALID,
		                    "a standby needs a namespace, a plan, an id "
		                    "(1 to 16 of a-z0-9) and a holder");
	char *coll = NULL, *path = NULL, name[128], now[40];
	snprintf(name, sizeof(name), "migrate-%s-standby-%s", s->plan, s->id);
	micro_time(now, s->now_ms ? s->now_ms : mg_now_ms());
	if (asprintf(&coll, LEASES, s->ns) < 0)
		coll = NULL;
	if (coll && asprintf(&path, "%s/%s", coll, name) < 0)
		path = NULL;
	if (!coll || !path) {
		free(coll);
		return mg_error_oom(err);
	}
	json_t *cur = NULL;
	char what[200];
	snprintf(what, sizeof(what), "Lease %s/%s", s->ns, name);
	int rc = mg_kube_get(c, path, what, &cur, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		json_t *o = standby_obj(name, s->plan, s->holder, s->lease_seconds, now);
		rc = o ? mg_kube_create(c, coll, o, NULL, err) : mg_error_oom(err);
		json_decref(o);
	} else if (!rc) {
		/* as read, with its resourceVersion: nobody else writes it, a 409 is a resend */
		json_t *spec = json_object_get(cur, "spec");
		if (!json_is_object(spec)) {
			spec = json_object();
			json_object_set_new(cur, "spec", spec);
		}
		if (!spec || json_object_set_new(spec, "renewTime", json_string(now)) ||
		    json_object_set_new(spec, "holderIdentity", json_string(s->holder)) ||
		    json_object_set_new(spec, "leaseDurationSeconds",
		                        json_integer(s->lease_seconds)))
			rc = mg_error_oom(err);
		else
			rc = mg_kube_update(c, path, cur, NULL, err);
	}
	if (rc == MG_ECONFLICT) {
		mg_error_clear(err);
		rc = 0;
	}
	json_decref(cur);
	free(coll);
	free(path);
	return rc;
}

int mg_kube_standby_remove(mg_kube_client *c, const mg_kube_standby *s, mg_error *err)
{
	if (!s->ns || !s->plan || !id_ok(s->id))
		return mg_error_set(err, MG_EINVALID,
		                    "a standby needs a namespace, a plan and an id");
	char *path = NULL;
	if (asprintf(&path, LEASES "/migrate-%s-standby-%s", s->ns, s->plan, s->id) < 0)
		return mg_error_oom(err);
	int rc = mg_kube_delete(c, path, NULL, NULL, err);
	if (rc == MG_ENOTFOUND || rc == MG_ECONFLICT) {
		mg_error_clear(err);
		rc = 0;
	}
	free(path);
	return rc;
}

static int64_t spec_time(const json_t *o, const char *key)
{
	int64_t t = 0;
	const char *v = json_string_value(json_object_get(json_object_get(o, "spec"), key));
	return v && mg_time_parse(&t, v) == 0 ? t : 0;
}

int mg_kube_standby_list(json_t **out, mg_kube_client *c, const char *ns, const char *plan,
                         int64_t now_ms, bool prune, mg_error *err)
{
	*out = NULL;
	char *coll = NULL, sel[200];
	if (asprintf(&coll, LEASES, ns) < 0)
		return mg_error_oom(err);
	snprintf(sel, sizeof(sel), MANAGED_BY "=migrate," LABEL_PLAN "=%s," LABEL_KIND "=standby",
	         plan);
	json_t *items = NULL;
	int rc = mg_kube_list(c, coll, sel, &items, err);
	json_t *list = rc ? NULL : json_array();
	if (!rc && !list)
		rc = mg_error_oom(err);
	size_t i;
	json_t *o;
	json_array_foreach(rc ? NULL : items, i, o)
	{
		json_t *spec = json_object_get(o, "spec");
		int64_t renewed = spec_time(o, "renewTime");
		int64_t secs = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
		const char *name =
		    json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
		if (prune && name && renewed && now_ms - renewed > STALE_MS) {
			char *path = NULL;
			mg_error tmp = MG_ERROR_INIT;
			if (asprintf(&path, "%s/%s", coll, name) >= 0)
				mg_kube_delete(c, path, NULL, NULL, &tmp);
			else
				path = NULL;
			free(path);
			mg_error_clear(&tmp);
			continue;
		}
		/* whoever wrote it wrote it: scrubbed and cut before anyone prints it */
		char who[256];
		mg_scrub_cut(who, sizeof(who),
		             json_string_value(json_object_get(spec, "holderIdentity"))
		                 ? json_string_value(json_object_get(spec, "holderIdentity"))
		                 : "",
		             200);
		char seen[40];
		mg_time_format(seen, sizeof(seen), renewed);
		bool alive = renewed && secs > 0 && renewed + secs * 1000 > now_ms;
		json_array_append_new(list, json_pack("{s:s, s:s, s:b}", "holder", who, "seen",
		                                      renewed ? seen : "", "alive", alive));
	}
	json_decref(items);
	free(coll);
	if (rc) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}
