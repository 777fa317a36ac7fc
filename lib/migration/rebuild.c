/*
 * `status` with no state recorded (no state directory, or no state.json: a
 * fresh CI runner): what can be known is read from the world instead of
 * shown as "nothing recorded". The VMs' releases from each host's current
 * link and releases/ (lib/fleet.h, read-only), the cluster's from the
 * annotations migrate's applies leave on the plan's Deployments
 * (lib/cluster.h). A field is filled only from what was read back, and
 * named in the status's rebuilt list; what could not be read says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "fleet.h"
#include "http.h"
#include "internal.h"
#include "secret.h"

/*
 * The version every host shows in field (current or previous), when all were
 * read and agree; else NULL.
 */
static const char *fleet_agrees(const mg_fleet_survey *s, bool previous)
{
	const char *v = NULL;
	for (size_t i = 0; i < s->nhosts; i++) {
		const mg_fleet_survey_host *h = &s->hosts[i];
		const char *x = previous ? h->previous : h->current;
		if (!h->reached || !*x || (v && strcmp(v, x)))
			return NULL;
		v = x;
	}
	return v;
}

static void add(json_t *list, const char *field)
{
	json_array_append_new(list, json_string(field));
}

/* The hosts side: fills st, *record (fleet.json's shape) and the rebuild's "hosts". */
static int rebuild_hosts(mg_status *out, json_t **record, const mg_plan_vms *v,
                         const mg_cancel *cancel, mg_error *err)
{
	const char *pass = v->passphrase_env ? getenv(v->passphrase_env) : NULL;
	if (pass && *pass)
		mg_secret_register(pass); /* masked wherever a host or libssh2 echoes it */
	mg_fleet_survey sv;
	mg_fleet_survey_options o = {.vms = v, .passphrase = pass, .cancel = cancel};
	int rc = mg_fleet_survey_run(&sv, &o, err);
	if (rc) {
		mg_fleet_survey_clear(&sv);
		return rc;
	}
	mg_state *st = &out->st;
	const char *cur = fleet_agrees(&sv, false), *prev = fleet_agrees(&sv, true);
	if (cur) {
		snprintf(st->vms_version, sizeof(st->vms_version), "%s", cur);
		add(out->rebuilt, "versions.vms");
	}
	if (cur && prev) {
		snprintf(st->vms_previous_version, sizeof(st->vms_previous_version), "%s", prev);
		add(out->rebuilt, "versions.vms_previous");
	}
	/* the per-host view as fleet.json would hold it: only hosts that were read */
	json_t *hosts = json_object();
	for (size_t i = 0; i < sv.nhosts; i++) {
		const mg_fleet_survey_host *h = &sv.hosts[i];
		if (h->reached)
			json_object_set_new(
			    hosts, h->host->name,
			    json_pack("{s:o, s:o, s:n, s:n}", "version",
			              *h->current ? json_string(h->current) : json_null(),
			              "previous",
			              *h->previous ? json_string(h->previous) : json_null(),
			              "outcome", "at"));
	}
	*record = json_pack("{s:o}", "hosts", hosts);
	if (sv.reached)
		add(out->rebuilt, "fleet");
	json_object_set_new(out->rebuild, "hosts", mg_fleet_survey_to_json(&sv));
	json_object_set_new(out->rebuild, "hosts_read", json_integer((json_int_t)sv.reached));
	mg_fleet_survey_clear(&sv);
	return 0;
}

/* The cluster side: fills st and the rebuild's "cluster"; a cluster that cannot be asked
 * is said, not fatal. */
static void rebuild_cluster(mg_status *out, const mg_plan *plan, const mg_cancel *cancel)
{
	mg_error e = MG_ERROR_INIT;
	mg_kube_client *c = NULL;
	mg_cluster_live live;
	memset(&live, 0, sizeof(live));
	int rc = mg_http_global_init(&e);
	if (!rc)
		rc = mg_cluster_connect(&c, plan, NULL, cancel, &e);
	if (!rc)
		rc = mg_cluster_read_live(&live, c, plan, &e);
	json_t *j;
	if (rc) {
		mg_scrub_error(&e);
		j = json_pack("{s:n, s:n, s:s}", "version", "previous", "missing", e.message);
	} else {
		j = mg_cluster_live_to_json(&live);
		mg_state *st = &out->st;
		if (*live.version) {
			snprintf(st->kubernetes_version, sizeof(st->kubernetes_version), "%s",
			         live.version);
			add(out->rebuilt, "versions.kubernetes");
		}
		if (*live.previous) {
			snprintf(st->kubernetes_previous_version,
			         sizeof(st->kubernetes_previous_version), "%s", live.previous);
			add(out->rebuilt, "versions.kubernetes_previous");
		}
	}
	json_object_set_new(out->rebuild, "cluster", j);
	mg_kube_client_free(c);
	mg_error_clear(&e);
}

int mg_migration_rebuild(mg_status *out, json_t **record, mg_migration *m, mg_error *err)
{
	*record = NULL;
	out->rebuilt = json_array();
	out->rebuild = json_pack("{s:n, s:n, s:n}", "hosts", "hosts_read", "cluster");
	if (!out->rebuilt || !out->rebuild)
		return mg_error_oom(err);
	const mg_plan_vms *v = mg_plan_vms_section(m->plan);
	if (v && v->nhosts) {
		int rc = rebuild_hosts(out, record, v, m->cancel, err);
		if (rc)
			return rc;
	}
	if (mg_plan_kubernetes_section(m->plan))
		rebuild_cluster(out, m->plan, m->cancel);
	return 0;
}
