/*
 * rollback --release when no state is recorded (lib/release/internal.h): a CI
 * job on a fresh runner has no state.json, but the hosts still hold their
 * releases and the cluster the annotations migrate's applies left. Where the
 * rollback goes is taken from those, read back; a side that cannot be known
 * is refused with what is missing, never guessed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "secret.h"

/* Hosts named in a refusal; the rest are counted. */
#define NAMED_HOSTS 5

/* a then b at the end of dst, cut to size */
static void append(char *dst, size_t size, const char *a, const char *b)
{
	size_t len = strlen(dst);
	if (len < size)
		snprintf(dst + len, size - len, "%s%s", a, b);
}

/* The hosts' current and previous release when every host was read and they agree. */
static int vms_side(mg_state *st, const mg_plan_vms *v, const mg_release_rebuild_options *o,
                    mg_error *err)
{
	mg_fleet_survey sv;
	mg_fleet_survey_options so = {.vms = v,
	                              .accept_new_host_keys = o->accept_new_host_keys,
	                              .passphrase = o->passphrase,
	                              .cancel = o->cancel};
	int rc = mg_fleet_survey_run(&sv, &so, err);
	char list[1536] = "";
	size_t bad = 0;
	const char *cur = NULL, *prev = NULL;
	for (size_t i = 0; !rc && i < sv.nhosts; i++) {
		const mg_fleet_survey_host *h = &sv.hosts[i];
		if (h->reached || bad++ >= NAMED_HOSTS)
			continue;
		append(list, sizeof(list), *list ? "; " : "", h->host->name);
		append(list, sizeof(list), ": ", h->error);
	}
	if (!rc && bad)
		rc = mg_error_set(err, MG_EINVALID,
		                  "no state is recorded in %s and the VMs' release cannot be "
		                  "rebuilt: %zu of %zu hosts could not be read (%s%s); nothing was "
		                  "rolled back",
		                  o->state_dir, bad, sv.nhosts, list,
		                  bad > NAMED_HOSTS ? "; ..." : "");
	for (size_t i = 0; !rc && i < sv.nhosts; i++) {
		const mg_fleet_survey_host *h = &sv.hosts[i];
		if (!*h->current)
			rc = mg_error_set(
			    err, MG_EINVALID,
			    "nothing to roll back to on the VMs: no state is recorded in %s and %s "
			    "runs no release (its current is %s)",
			    o->state_dir, h->host->name,
			    !strcmp(h->kind, "none") ? "missing" : "not a link to a release");
		else if (cur && strcmp(cur, h->current))
			rc = mg_error_set(err, MG_EINVALID,
			                  "no state is recorded in %s and the hosts do not run one "
			                  "release: %s runs %s, %s runs %s; deploy the release you "
			                  "want with `migrate deploy --vms-only --version V`",
			                  o->state_dir, sv.hosts[0].host->name, cur, h->host->name,
			                  h->current);
		else if (!*h->previous)
			rc = mg_error_set(
			    err, MG_EINVALID,
			    "nothing to roll back to on the VMs: no state is recorded in "
			    "%s and %s holds no complete release unpacked before %s",
			    o->state_dir, h->host->name, h->current);
		else if (prev && strcmp(prev, h->previous))
			rc =
			    mg_error_set(err, MG_EINVALID,
			                 "no state is recorded in %s and the hosts disagree on the "
			                 "release before %s: %s has %s, %s has %s",
			                 o->state_dir, h->current, sv.hosts[0].host->name, prev,
			                 h->host->name, h->previous);
		cur = h->current;
		prev = h->previous;
	}
	if (!rc && cur && prev) {
		snprintf(st->vms_version, sizeof(st->vms_version), "%s", cur);
		snprintf(st->vms_previous_version, sizeof(st->vms_previous_version), "%s", prev);
	}
	mg_fleet_survey_clear(&sv);
	return rc;
}

static int k8s_side(mg_state *st, const mg_plan *plan, const mg_release_rebuild_options *o,
                    mg_error *err)
{
	mg_cluster_live live;
	int rc = mg_cluster_read_live(&live, o->client, plan, err);
	if (rc)
		return rc;
	if (*live.missing)
		return mg_error_set(
		    err, MG_EINVALID,
		    "no state is recorded in %s and the cluster's release cannot be "
		    "rebuilt: %s%s",
		    o->state_dir, live.missing,
		    o->vms ? " (--vms-only rolls back the VMs alone)" : "");
	if (!*live.previous)
		return mg_error_set(
		    err, MG_EINVALID,
		    "nothing to roll back to on the cluster: no state is recorded in "
		    "%s and %s%s",
		    o->state_dir, live.previous_missing,
		    o->vms ? " (--vms-only rolls back the VMs alone)" : "");
	snprintf(st->kubernetes_version, sizeof(st->kubernetes_version), "%s", live.version);
	snprintf(st->kubernetes_previous_version, sizeof(st->kubernetes_previous_version), "%s",
	         live.previous);
	/* it was applied by migrate and is what serves: whether its rollout finished is unknown */
	return 0;
}

int mg_release_rebuild(mg_state *st, char *how, size_t size, const mg_plan *plan,
                       const mg_release_rebuild_options *o, mg_error *err)
{
	int rc = 0;
	how[0] = '\0';
	const mg_plan_vms *v = mg_plan_vms_section(plan);
	if (o->vms && v && (rc = vms_side(st, v, o, err)))
		return rc;
	if (o->k8s && (rc = k8s_side(st, plan, o, err))) {
		mg_scrub_error(err);
		return rc;
	}
	snprintf(how, size, "no state recorded in %s: ", o->state_dir);
	if (o->vms)
		append(how, size, "the VMs' releases read from the hosts (current and releases/)",
		       o->k8s ? ", " : "");
	if (o->k8s)
		append(how, size,
		       "the cluster's from its Deployments' " MG_CLUSTER_RELEASE_ANNOTATION
		       " annotations",
		       "");
	return 0;
}
