/*
 * `kubectl rollout status deployment/NAME` (and statefulset/, daemonset/):
 * the same checks in the same order (kubectl's DeploymentStatusViewer,
 * StatefulSetStatusViewer, DaemonSetStatusViewer), so "rolled out" means
 * here what it means to anyone who runs kubectl by hand. StatefulSets and
 * DaemonSets have no progress deadline: only the timeout ends their wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "kube.h"
#include "secret.h"

#define DEFAULT_TIMEOUT_MS (5 * 60 * 1000)
#define DEFAULT_POLL_MS    1000

static long long num(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

typedef enum { ST_WAIT, ST_DONE, ST_FAILED, ST_NOT_WAITABLE } state;

/* One look at the Deployment: where it stands, in kubectl's words. */
static state assess_deployment(const json_t *d, char *msg, size_t size)
{
	json_t *spec = json_object_get(d, "spec"), *st = json_object_get(d, "status");
	long long generation = num(json_object_get(d, "metadata"), "generation");
	if (generation > num(st, "observedGeneration")) {
		snprintf(msg, size, "waiting for the deployment spec update to be observed");
		return ST_WAIT;
	}
	size_t i;
	json_t *cond;
	json_array_foreach(json_object_get(st, "conditions"), i, cond)
	{
		const char *type = json_string_value(json_object_get(cond, "type"));
		const char *reason = json_string_value(json_object_get(cond, "reason"));
		if (type && !strcmp(type, "Progressing") && reason &&
		    !strcmp(reason, "ProgressDeadlineExceeded")) {
			const char *m = json_string_value(json_object_get(cond, "message"));
			/* the server's words: scrubbed before the cut */
			char *clean = m ? mg_scrub_dup(m) : NULL;
			snprintf(msg, size,
			         "exceeded its progress deadline (ProgressDeadlineExceeded%s%s)",
			         m ? ": " : "", clean ? clean : "");
			free(clean);
			return ST_FAILED;
		}
	}
	/* spec.replicas absent means the server's default of 1 */
	json_t *r = json_object_get(spec, "replicas");
	long long want = r ? (long long)json_integer_value(r) : 1;
	long long updated = num(st, "updatedReplicas"), total = num(st, "replicas"),
	          available = num(st, "availableReplicas");
	if (updated < want) {
		snprintf(msg, size, "%lld out of %lld new replicas have been updated", updated,
		         want);
		return ST_WAIT;
	}
	if (total > updated) {
		snprintf(msg, size, "%lld old replicas are pending termination", total - updated);
		return ST_WAIT;
	}
	if (available < updated) {
		snprintf(msg, size, "%lld of %lld updated replicas are available", available,
		         updated);
		return ST_WAIT;
	}
	snprintf(msg, size, "successfully rolled out (%lld of %lld updated replicas available)",
	         available, updated);
	return ST_DONE;
}

/* spec.updateStrategy.type, defaulted as the server does; NULL-safe. */
static const char *update_strategy(const json_t *spec)
{
	const char *t =
	    json_string_value(json_object_get(json_object_get(spec, "updateStrategy"), "type"));
	return t ? t : "RollingUpdate";
}

static state not_waitable(const char *strategy, char *msg, size_t size)
{
	snprintf(msg, size,
	         "rollout status is only available for RollingUpdate strategy type (updateStrategy "
	         "%s: pods change only when someone deletes them)",
	         strategy);
	return ST_NOT_WAITABLE;
}

/*
 * kubectl's StatefulSetStatusViewer, stricter where it stops early: with no
 * partition the update is complete only when currentRevision caught up with
 * updateRevision (the controller's own "done"), not when the counts look
 * right for a moment.
 */
static state assess_statefulset(const json_t *d, char *msg, size_t size)
{
	json_t *spec = json_object_get(d, "spec"), *st = json_object_get(d, "status");
	const char *strategy = update_strategy(spec);
	if (strcmp(strategy, "RollingUpdate") != 0)
		return not_waitable(strategy, msg, size);
	long long generation = num(json_object_get(d, "metadata"), "generation");
	long long observed = num(st, "observedGeneration");
	if (observed == 0 || generation > observed) {
		snprintf(msg, size, "waiting for the statefulset spec update to be observed");
		return ST_WAIT;
	}
	json_t *r = json_object_get(spec, "replicas");
	long long want = r ? (long long)json_integer_value(r) : 1;
	long long ready = num(st, "readyReplicas"), updated = num(st, "updatedReplicas");
	if (ready < want) {
		snprintf(msg, size, "waiting for %lld pods to be ready (%lld of %lld ready)",
		         want - ready, ready, want);
		return ST_WAIT;
	}
	long long partition = num(
	    json_object_get(json_object_get(spec, "updateStrategy"), "rollingUpdate"), "partition");
	if (partition > 0) {
		long long target = want - partition > 0 ? want - partition : 0;
		if (updated < target) {
			snprintf(msg, size,
			         "waiting for partitioned roll out to finish: %lld out of %lld new "
			         "pods have been updated (partition %lld)",
			         updated, target, partition);
			return ST_WAIT;
		}
		snprintf(
		    msg, size,
		    "partitioned roll out complete: %lld new pods have been updated (partition "
		    "%lld)",
		    updated, partition);
		return ST_DONE;
	}
	const char *cur = json_string_value(json_object_get(st, "currentRevision"));
	const char *upd = json_string_value(json_object_get(st, "updateRevision"));
	if (updated < want || !cur || !upd || strcmp(cur, upd) != 0) {
		snprintf(msg, size,
		         "waiting for statefulset rolling update to complete: %lld of %lld pods at "
		         "revision %s (current revision %s)",
		         updated, want, upd ? upd : "?", cur ? cur : "?");
		return ST_WAIT;
	}
	snprintf(msg, size, "statefulset rolling update complete: %lld pods at revision %s",
	         num(st, "currentReplicas"), cur);
	return ST_DONE;
}

/* kubectl's DaemonSetStatusViewer. */
static state assess_daemonset(const json_t *d, char *msg, size_t size)
{
	json_t *spec = json_object_get(d, "spec"), *st = json_object_get(d, "status");
	const char *strategy = update_strategy(spec);
	if (strcmp(strategy, "RollingUpdate") != 0)
		return not_waitable(strategy, msg, size);
	long long generation = num(json_object_get(d, "metadata"), "generation");
	if (generation > num(st, "observedGeneration")) {
		snprintf(msg, size, "waiting for the daemon set spec update to be observed");
		return ST_WAIT;
	}
	long long desired = num(st, "desiredNumberScheduled"),
	          updated = num(st, "updatedNumberScheduled"),
	          available = num(st, "numberAvailable");
	if (updated < desired) {
		snprintf(msg, size, "%lld out of %lld new pods have been updated", updated,
		         desired);
		return ST_WAIT;
	}
	if (available < desired) {
		snprintf(msg, size, "%lld of %lld updated pods are available", available, desired);
		return ST_WAIT;
	}
	snprintf(msg, size, "successfully rolled out (%lld of %lld pods updated and available)",
	         available, desired);
	return ST_DONE;
}

int mg_kube_rollout_wait(mg_kube_client *c, const char *namespace_, const char *name,
                         const mg_kube_rollout_options *o, mg_error *err)
{
	const char *ns = namespace_ && *namespace_ ? namespace_ : mg_kube_client_namespace(c);
	int64_t timeout = o && o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	int64_t poll = o && o->poll_ms > 0 ? o->poll_ms : DEFAULT_POLL_MS;
	const mg_cancel *cancel = o ? o->cancel : NULL;
	const char *kind = o && o->kind ? o->kind : "Deployment";
	state (*assess)(const json_t *, char *, size_t);
	if (!strcmp(kind, "Deployment"))
		assess = assess_deployment;
	else if (!strcmp(kind, "StatefulSet"))
		assess = assess_statefulset;
	else if (!strcmp(kind, "DaemonSet"))
		assess = assess_daemonset;
	else
		return mg_error_set(err, MG_EINVALID,
		                    "%s %s: no rollout to wait for (Deployment, StatefulSet or "
		                    "DaemonSet only)",
		                    kind, name);
	if (o && o->not_waitable)
		*o->not_waitable = false;
	char path[1024], what[600], msg[512], last[512] = "", lower[32];
	snprintf(lower, sizeof(lower), "%s", kind);
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	json_t *probe = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "apps/v1", "kind", kind,
	                          "metadata", "name", name, "namespace", ns);
	if (!probe)
		return mg_error_oom(err);
	int rc = mg_kube_object_path(c, probe, path, sizeof(path), what, sizeof(what), err);
	json_decref(probe);
	if (rc)
		return rc;
	int64_t start = mg_clock_ms(), end = start + timeout;
	for (;;) {
		if (cancel && *cancel)
			return mg_error_set(
			    err, MG_ECANCELED,
			    "%s: stopped waiting for the rollout: interrupted (last: %s)", what,
			    last[0] ? last : "no status yet");
		json_t *d = NULL;
		rc = mg_kube_get(c, path, what, &d, err);
		if (rc)
			return rc;
		state s = assess(d, msg, sizeof(msg));
		json_decref(d);
		if (strcmp(msg, last) != 0) {
			snprintf(last, sizeof(last), "%s", msg);
			if (o && o->progress)
				o->progress(msg, o->ud);
		}
		if (s == ST_DONE)
			return 0;
		if (s == ST_NOT_WAITABLE) {
			if (o && o->not_waitable) {
				*o->not_waitable = true;
				return 0;
			}
			return mg_error_set(err, MG_ERROR, "%s: %s", what, msg);
		}
		if (s == ST_FAILED)
			return mg_error_set(err, MG_ERROR,
			                    "%s: rollout failed: %s; see `kubectl "
			                    "describe %s %s -n %s`",
			                    what, msg, lower, name, ns);
		int64_t left = end - mg_clock_ms();
		if (left <= 0)
			return mg_error_set(
			    err, MG_ERROR, "%s: not rolled out within %.1f s (rollout_timeout): %s",
			    what, (double)timeout / 1000.0, msg);
		mg_clock_sleep_ms(poll < left ? poll : left, cancel);
	}
}
