/*
 * The state store in the cluster's API (lib/kubestore.h): mg_store_ops over
 * a Lease and ConfigMaps, each write compare-and-swap on resourceVersion.
 *
 * Fencing: the Lease's leaseTransitions when this process took it is its
 * token; every locked write stamps it on the object (annotation
 * migrate.dev/fencing-token) and refuses to write over an object stamped
 * with a newer one. A process that stalled past its lease (a laptop
 * suspended mid-step) and wakes up after someone else took the plan over is
 * stopped by that, or earlier by its renewal failing: the store renews the
 * Lease before a write once a third of the lease has gone by, and (opened
 * by plan) a thread renews it every third of the lease while held, so a
 * holder at work never lets it lapse however long it goes without writing.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "kubestore.h"
#include "log.h"
#include "secret.h"
#include "sha256.h"
#include "spool.h"
#include "storebackend.h"

#define CM_PATH          "/api/v1/namespaces/%s/configmaps"
#define WRITE_TRIES      4 /* compare-and-swap rounds before reporting contention */
#define LEASE_DEFAULT_MS 15000

/* ---- names ---- */

/* The ConfigMap and its data key of a document name (storebackend.h). */
static int doc_names(char *cm, size_t cm_size, const char **key, const kstore *k, const char *name)
{
	const char *kind;
	if (!strcmp(name, "state"))
		kind = "state", *key = "state.json";
	else if (!strcmp(name, "fleet"))
		kind = "fleet", *key = "fleet.json";
	else if (!strcmp(name, "pause"))
		kind = "pause", *key = "pause.json";
	else if (!strcmp(name, "resume"))
		kind = "resume", *key = "resume.json";
	else if (!strcmp(name, "stop"))
		kind = "stop", *key = "stop.json";
	else if (!strncmp(name, "manifests/", 10)) {
		/* a version may hold '+', '_' and capitals, which no object name may: hash it */
		char hex[65];
		mg_sha256_hex(hex, name + 10, strlen(name + 10));
		hex[16] = '\0';
		*key = "manifest.json";
		snprintf(cm, cm_size, "%s-manifest-%s", k->prefix, hex);
		return 0;
	} else
		return -1;
	snprintf(cm, cm_size, "%s-%s", k->prefix, kind);
	return 0;
}

static const char *doc_kind(const char *name)
{
	return !strncmp(name, "manifests/", 10) ? "manifest" : name;
}

char *mg_kube_store_path(const kstore *k, const char *cm)
{
	char *p;
	return asprintf(&p, "%s/%s", k->collection, cm) < 0 ? NULL : p;
}

/* ---- objects ---- */

const char *mg_kube_store_meta(const json_t *o, const char *sect, const char *key)
{
	json_t *m = json_object_get(o, "metadata");
	return json_string_value(json_object_get(sect ? json_object_get(m, sect) : m, key));
}

/* The token a locked write stamped on the object; -1 when none did. */
int64_t mg_kube_store_token(const json_t *o)
{
	const char *t = mg_kube_store_meta(o, "annotations", ANN_TOKEN);
	char *end;
	long long v = t ? strtoll(t, &end, 10) : -1;
	return t && *t && !*end && v >= 0 ? (int64_t)v : -1;
}

json_t *mg_kube_store_cm_new(const kstore *k, const char *name, const char *kind, const char *key,
                             const char *text, bool fenced)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}, s:{}}, s:{s:s}}", "apiVersion",
	                      "v1", "kind", "ConfigMap", "metadata", "name", name, "labels",
	                      MANAGED_BY, "migrate", LABEL_PLAN, k->plan, LABEL_KIND, kind,
	                      "annotations", "data", key, text);
	if (o && fenced && k->lease) {
		char tok[32];
		snprintf(tok, sizeof(tok), "%lld", (long long)mg_kube_lease_token(k->lease));
		json_t *ann = json_object_get(json_object_get(o, "metadata"), "annotations");
		if (json_object_set_new(ann, ANN_TOKEN, json_string(tok)) ||
		    json_object_set_new(ann, ANN_HOLDER, json_string(k->holder))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* The object as read, its data replaced and our stamp on it (a deep copy). */
json_t *mg_kube_store_rewrite(const kstore *k, const json_t *cur, const char *key, const char *text,
                              bool fenced)
{
	json_t *o = json_deep_copy(cur);
	if (!o)
		return NULL;
	json_t *meta = json_object_get(o, "metadata");
	json_t *data = json_object();
	if (!json_is_object(meta) || !data || json_object_set_new(o, "data", data) ||
	    json_object_set_new(data, key, json_string(text))) {
		json_decref(o);
		return NULL;
	}
	if (fenced && k->lease) {
		json_t *ann = json_object_get(meta, "annotations");
		if (!json_is_object(ann)) {
			ann = json_object();
			json_object_set_new(meta, "annotations", ann);
		}
		char tok[32];
		snprintf(tok, sizeof(tok), "%lld", (long long)mg_kube_lease_token(k->lease));
		if (!ann || json_object_set_new(ann, ANN_TOKEN, json_string(tok)) ||
		    json_object_set_new(ann, ANN_HOLDER, json_string(k->holder))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/*
 * A locked write over cur: refused (MG_ECONFLICT) when a newer holder of the
 * lock stamped it. Its name is the other party's text: scrubbed and cut.
 */
int mg_kube_store_fence(const kstore *k, const json_t *cur, const char *what, mg_error *err)
{
	int64_t t = mg_kube_store_token(cur);
	if (!k->lease || t <= mg_kube_lease_token(k->lease))
		return 0;
	char who[256];
	const char *h = mg_kube_store_meta(cur, "annotations", ANN_HOLDER);
	mg_scrub_cut(who, sizeof(who), h ? h : "(unknown)", 200);
	return mg_error_set(err, MG_ECONFLICT,
	                    "%s was written by a newer holder of plan \"%s\"'s lock, %s "
	                    "(fencing token %lld; ours is %lld): this process lost the lock "
	                    "and stops without writing",
	                    what, k->plan, who, (long long)t,
	                    (long long)mg_kube_lease_token(k->lease));
}

/* ---- the lock ---- */

/* "user@host pid N command C id X", parsed back; -1 when it is not ours to parse. */
static int parse_holder(mg_lock_holder *h, const char *s)
{
	memset(h, 0, sizeof(*h));
	const char *p = strstr(s, " pid ");
	const char *c = p ? strstr(p, " command ") : NULL;
	if (!p || !c)
		return -1;
	/* the other party's words: the part wanted, then scrubbed and cut */
	char part[256];
	snprintf(part, sizeof(part), "%.*s", (int)(p - s < 250 ? p - s : 250), s);
	mg_scrub_cut(h->operator_, sizeof(h->operator_), part, 200);
	h->pid = strtol(p + 5, NULL, 10);
	const char *cmd = c + 9;
	const char *id = strstr(cmd, " id ");
	size_t n = id ? (size_t)(id - cmd) : strlen(cmd);
	snprintf(part, sizeof(part), "%.*s", (int)(n < 250 ? n : 250), cmd);
	mg_scrub_cut(h->command, sizeof(h->command), part, 60);
	return 0;
}

static int64_t spec_time(const json_t *lease, const char *key)
{
	int64_t t = 0;
	const char *s = json_string_value(json_object_get(json_object_get(lease, "spec"), key));
	return s && mg_time_parse(&t, s) == 0 ? t : 0;
}

/* The Lease as it is now: *held when someone other than this handle holds it unexpired. */
static int read_holder(bool *held, mg_lock_holder *h, int64_t *until, char *raw, size_t rsize,
                       kstore *k, mg_error *err)
{
	*held = false;
	*until = 0;
	memset(h, 0, sizeof(*h));
	if (raw && rsize)
		raw[0] = '\0';
	json_t *o = NULL;
	char what[256];
	snprintf(what, sizeof(what), "Lease %s/%s", k->ns, k->prefix);
	int rc = mg_kube_get(k->c, k->lease_path, what, &o, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	json_t *spec = json_object_get(o, "spec");
	const char *who = json_string_value(json_object_get(spec, "holderIdentity"));
	int64_t renewed = spec_time(o, "renewTime");
	if (!renewed)
		renewed = spec_time(o, "acquireTime");
	int64_t secs = (int64_t)json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	*until = renewed && secs > 0 ? renewed + secs * 1000 : 0;
	bool mine = k->lease && who && !strcmp(who, k->holder);
	if (who && *who && !mine && *until > k->now_ms()) {
		*held = true;
		if (raw && rsize)
			mg_scrub_cut(raw, rsize, who, 200);
		if (parse_holder(h, who) == 0)
			h->since_ms = spec_time(o, "acquireTime");
	}
	json_decref(o);
	return 0;
}

static int ks_probe(void *impl, bool *held, mg_lock_holder *holder, mg_error *err)
{
	int64_t until;
	return read_holder(held, holder, &until, NULL, 0, impl, err);
}

/* MG_ELOCKED worded as the state directory's lock words it, and when the lease runs out. */
static int locked_by(kstore *k, const char *command, mg_error *why, mg_error *err)
{
	bool held;
	mg_lock_holder h;
	int64_t until;
	char raw[256];
	mg_error tmp = MG_ERROR_INIT;
	int rc = read_holder(&held, &h, &until, raw, sizeof(raw), k, &tmp);
	mg_error_clear(&tmp);
	if (rc || !held || !h.operator_[0]) {
		/* gone meanwhile, or a holder not written by migrate: the Lease's own words */
		rc = mg_error_set(err, MG_ELOCKED, "plan \"%s\" is locked: %s", k->plan,
		                  why->message);
		return rc;
	}
	char since[40], exp[40];
	mg_time_format(since, sizeof(since), h.since_ms);
	mg_time_format(exp, sizeof(exp), until);
	if (!strcmp(h.command, "run") && command && strcmp(command, "run"))
		return mg_error_set(
		    err, MG_ELOCKED,
		    "plan \"%s\" is locked by %s (pid %ld, running \"run\" since %s; Lease %s/%s, "
		    "renewed until %s): an autopilot is moving traffic and holds the plan until it "
		    "ends (`migrate pause` holds traffic but keeps the lock). Wait for it to finish, "
		    "or end it first: `migrate rollback` stops it and moves traffic back to the VMs; "
		    "then run `migrate %s` again",
		    k->plan, h.operator_, h.pid, since, k->ns, k->prefix, exp, command);
	return mg_error_set(err, MG_ELOCKED,
	                    "plan \"%s\" is locked by %s (pid %ld, running \"%s\" since %s; Lease "
	                    "%s/%s, renewed until %s); wait for it to finish or ask them",
	                    k->plan, h.operator_, h.pid, h.command, since, k->ns, k->prefix, exp);
}

static int64_t renew_period_ms(const kstore *k)
{
	return (int64_t)k->lease_seconds * 1000 / 3;
}

/*
 * How long a holder may go without a renewal that landed before it must
 * assume the plan is someone else's: two thirds of the lease (client-go's
 * RenewDeadline is 10 s of a 15 s lease), so a holder that stops there has a
 * third of the lease left, before any standby can take over, to have stopped
 * moving traffic.
 */
static int64_t renew_deadline_ms(const kstore *k)
{
	return (int64_t)k->lease_seconds * 1000 * 2 / 3;
}

/* After a failed renewal: tried again this soon, so one lost request is not the deadline. */
static int64_t renew_retry_ms(const kstore *k)
{
	int64_t ms = (int64_t)k->lease_seconds * 1000 / 10;
	return ms < 200 ? 200 : ms;
}

/*
 * Past the renew deadline with no renewal: a standby may take the plan over
 * once the lease runs out, so this holder stops here, whatever the cluster
 * says later (client-go's leader does the same). Under k->mu.
 */
static void give_up(kstore *k, int64_t since, const char *why)
{
	char last[40];
	mg_time_format(last, sizeof(last), k->renewed_ms);
	k->lost = true;
	snprintf(k->lost_msg, sizeof(k->lost_msg),
	         "plan \"%s\"'s lease was last renewed at %s, %lld s ago, and cannot be renewed "
	         "(%.500s): past the renew deadline (%lld s of the %d s lease) another process "
	         "may take the plan over, so this one moves nothing more",
	         k->plan, last, (long long)(since / 1000), why,
	         (long long)(renew_deadline_ms(k) / 1000), k->lease_seconds);
}

/*
 * The renewer: wakes every third of the lease and renews it (a failed renewal
 * of a network blip is tried again a tenth of the lease later). A Lease
 * someone else took over ends it: the next locked write or keepalive is told;
 * so is a renew deadline that passed without a renewal (mg_kube_store_renew_if_due).
 */
static void *renewer(void *ud)
{
	kstore *k = ud;
	pthread_mutex_lock(&k->mu);
	bool failed = false;
	while (!k->stop) {
		struct timespec ts;
		mg_clock_abstime(&ts, failed ? renew_retry_ms(k) : renew_period_ms(k));
		pthread_cond_timedwait(&k->cv, &k->mu, &ts);
		if (k->stop || k->now_ms() - k->renewed_ms < renew_period_ms(k))
			continue;
		mg_error err = MG_ERROR_INIT;
		int rc = mg_kube_lease_renew(k->lease, &err);
		failed = rc != 0;
		if (rc == 0) {
			k->renewed_ms = k->now_ms();
		} else if (rc == MG_ECONFLICT) {
			k->lost = true;
			snprintf(k->lost_msg, sizeof(k->lost_msg), "%s", err.message);
			mg_error_clear(&err);
			break;
		} else if (k->now_ms() - k->renewed_ms >= (int64_t)k->lease_seconds * 1000) {
			/*
			 * The lease ran out without a renewal: another process may hold the
			 * plan now, and the main thread moves nothing from here on. (Before
			 * each move it also gives up at the renew deadline, two thirds in; a
			 * long deploy rides out a shorter blip of the API.)
			 */
			give_up(k, k->now_ms() - k->renewed_ms, err.message);
			mg_error_clear(&err);
			break;
		} else {
			mg_log(MG_LOG_DEBUG, "plan \"%s\": renewing the lock: %s", k->plan,
			       err.message);
		}
		mg_error_clear(&err);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* A client for the Lease alone, so the renewer never shares the store's. */
static int lease_client_new(kstore *k, mg_error *err)
{
	/* a renewal that waits longer than a third of the lease is too late to count */
	int64_t third = renew_period_ms(k);
	mg_kube_config_options co = {
	    .kubeconfig = k->r_kubeconfig,
	    .context = k->r_context,
	    .namespace_ = k->r_namespace,
	    .timeout_ms = k->r_timeout_ms && k->r_timeout_ms < third ? k->r_timeout_ms : third,
	    .deadline_ms = k->r_deadline_ms && k->r_deadline_ms < third ? k->r_deadline_ms : third};
	return mg_kube_client_new(&k->lease_client, &co, err);
}

static int ks_lock(void *impl, const char *command, mg_error *err)
{
	kstore *k = impl;
	if (k->lease)
		return 0;
	char op[256];
	mg_operator_id(op, sizeof(op));
	/* the id tells two handles of one process apart: the Lease counts one holder as one */
	static unsigned counter;
	unsigned id = (unsigned)getpid() * 2654435761u ^ (unsigned)mg_clock_ms() ^
	              __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	snprintf(k->holder, sizeof(k->holder), "%s pid %ld command %s id %08x", op, (long)getpid(),
	         command && *command ? command : "migrate", id);
	mg_kube_lease_options lo = {.namespace_ = k->ns,
	                            .name = k->prefix,
	                            .holder = k->holder,
	                            .lease_seconds = k->lease_seconds,
	                            .now_ms = k->now_ms};
	mg_error why = MG_ERROR_INIT;
	int rc = k->can_renew ? lease_client_new(k, &why) : 0;
	if (!rc && k->force_lock)
		rc = mg_kube_lease_force(&k->lease, k->displaced,
		                         k->lease_client ? k->lease_client : k->c, &lo, &why);
	else if (!rc)
		rc = mg_kube_lease_acquire(&k->lease, k->lease_client ? k->lease_client : k->c, &lo,
		                           &why);
	if (rc == MG_ELOCKED)
		rc = locked_by(k, command, &why, err);
	else if (rc)
		mg_error_set(err, rc, "cannot lock plan \"%s\": %s", k->plan, why.message);
	mg_error_clear(&why);
	if (rc) {
		mg_kube_client_free(k->lease_client);
		k->lease_client = NULL;
		return rc;
	}
	k->renewed_ms = k->now_ms();
	k->lost = k->stop = false;
	if (k->lease_client) {
		/* signals (SIGTERM to an autopilot, ^C) stay the main thread's to see */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		k->renewing = pthread_create(&k->renewer, NULL, renewer, k) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return 0;
}

static void ks_unlock(void *impl)
{
	kstore *k = impl;
	if (!k->lease)
		return;
	if (k->renewing) {
		pthread_mutex_lock(&k->mu);
		k->stop = true;
		pthread_cond_signal(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->renewer, NULL);
		k->renewing = false;
	}
	/* given up at once, so the next command needs no wait; else it lapses on its own */
	mg_error err = MG_ERROR_INIT;
	if (!k->lost && mg_kube_lease_release(k->lease, &err))
		mg_log(MG_LOG_DEBUG, "plan \"%s\": releasing the lock: %s", k->plan, err.message);
	mg_error_clear(&err);
	mg_kube_lease_free(k->lease);
	k->lease = NULL;
	mg_kube_client_free(k->lease_client);
	k->lease_client = NULL;
}

static bool ks_locked(const void *impl)
{
	return ((const kstore *)impl)->lease != NULL;
}

/*
 * Before a locked write, and at each tick of a long command: renewed once a
 * third of the lease went by (client-go renews at about that pace), so a
 * holder at work never lets it lapse and a check costs no request otherwise.
 * A renewal also proves the Lease still ours (MG_ECONFLICT when lost).
 */
int mg_kube_store_renew_if_due(kstore *k, mg_error *err)
{
	if (!k->lease)
		return mg_error_set(
		    err, MG_ERROR,
		    "refusing to write plan \"%s\"'s state without holding its lock "
		    "(a bug in migrate)",
		    k->plan);
	pthread_mutex_lock(&k->mu);
	int rc = 0;
	int64_t since = k->now_ms() - k->renewed_ms;
	if (k->lost)
		rc = mg_error_set(err, MG_ECONFLICT, "%s", k->lost_msg);
	else if (since >= renew_period_ms(k)) {
		mg_error why = MG_ERROR_INIT;
		rc = mg_kube_lease_renew(k->lease, &why);
		if (rc == 0)
			k->renewed_ms = k->now_ms();
		else if (rc != MG_ECONFLICT && since >= renew_deadline_ms(k)) {
			give_up(k, since, why.message);
			rc = mg_error_set(err, MG_ECONFLICT, "%s", k->lost_msg);
		} else if (rc) {
			if (rc == MG_ECONFLICT) {
				k->lost = true;
				snprintf(k->lost_msg, sizeof(k->lost_msg), "%s", why.message);
			}
			mg_error_set(err, rc, "%s", why.message);
		}
		mg_error_clear(&why);
	}
	pthread_mutex_unlock(&k->mu);
	return rc;
}

static int ks_keepalive(void *impl, mg_error *err)
{
	kstore *k = impl;
	return k->lease ? mg_kube_store_renew_if_due(k, err) : 0;
}

/* ---- documents ---- */

static int ks_doc_read(void *impl, const char *name, char **text, size_t *len, char **version,
                       mg_error *err)
{
	kstore *k = impl;
	*text = *version = NULL;
	*len = 0;
	char cm[160];
	const char *key;
	if (doc_names(cm, sizeof(cm), &key, k, name))
		return mg_error_set(err, MG_EINVALID, "no document \"%s\" in a store", name);
	char *path = mg_kube_store_path(k, cm);
	if (!path)
		return mg_error_oom(err);
	json_t *o = NULL;
	int rc = mg_kube_get(k->c, path, NULL, &o, err);
	free(path);
	if (rc)
		return rc;
	const char *s = json_string_value(json_object_get(json_object_get(o, "data"), key));
	const char *rv = mg_kube_store_meta(o, NULL, "resourceVersion");
	if (!s || !rv)
		rc = mg_error_set(err, MG_EINVALID,
		                  "ConfigMap %s/%s has no data \"%s\" (or no resourceVersion): it "
		                  "was not written by migrate; delete it or restore it",
		                  k->ns, cm, key);
	else if (!(*text = strdup(s)) || !(*version = strdup(rv))) {
		free(*text);
		*text = NULL;
		rc = mg_error_oom(err);
	} else
		*len = strlen(s);
	json_decref(o);
	return rc;
}

/*
 * Each write carries an id of its own, so that a 409 read back tells our
 * resent write that landed from another writer's that happened to store the
 * same bytes.
 */
static int stamp_write(json_t *o, char id[40])
{
	static unsigned counter;
	snprintf(id, 40, "%ld-%lld-%u", (long)getpid(), (long long)mg_now_ms(),
	         __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	json_t *meta = json_object_get(o, "metadata");
	json_t *ann = json_object_get(meta, "annotations");
	if (!json_is_object(ann)) {
		ann = json_object();
		if (!ann || json_object_set_new(meta, "annotations", ann))
			return -1;
	}
	return json_object_set_new(ann, ANN_WRITE, json_string(id));
}

/* After a 409: whether the object now holds our write wid (a resent request that had landed). */
static bool landed(kstore *k, const char *path, const char *wid)
{
	json_t *now = NULL;
	mg_error tmp = MG_ERROR_INIT;
	const char *was;
	bool ours = mg_kube_get(k->c, path, NULL, &now, &tmp) == 0 &&
	            (was = mg_kube_store_meta(now, "annotations", ANN_WRITE)) && !strcmp(was, wid);
	mg_error_clear(&tmp);
	json_decref(now);
	return ours;
}

/* The write of one round; *again when another writer came in between and a new read may win. */
static int doc_write_once(kstore *k, const char *cm, const char *path, const char *kind,
                          const char *key, const char *text, const char *version, bool fenced,
                          bool *again, mg_error *err)
{
	*again = false;
	char what[200];
	snprintf(what, sizeof(what), "ConfigMap %s/%s", k->ns, cm);
	json_t *cur = NULL, *obj = NULL;
	int rc = mg_kube_get(k->c, path, NULL, &cur, err);
	if (rc && rc != MG_ENOTFOUND)
		return rc;
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		if (version && *version)
			return mg_error_set(
			    err, MG_ECONFLICT,
			    "%s was deleted since it was read: another process "
			    "changed plan \"%s\"'s state, so nothing was saved. Check "
			    "`migrate status` and run the command again",
			    what, k->plan);
		char wid[40];
		obj = mg_kube_store_cm_new(k, cm, kind, key, text, fenced);
		if (!obj || stamp_write(obj, wid)) {
			json_decref(obj);
			return mg_error_oom(err);
		}
		rc = mg_kube_create(k->c, k->collection, obj, NULL, err);
		json_decref(obj);
		if (rc == MG_ECONFLICT && landed(k, path, wid)) {
			mg_error_clear(err);
			return 0;
		}
		if (rc == MG_ECONFLICT) {
			if (version)
				return mg_error_set(
				    err, MG_ECONFLICT,
				    "%s moved underneath us: another migrate created it after it was "
				    "read, so nothing was saved. Check `migrate status` and run the "
				    "command again",
				    what);
			mg_error_clear(err);
			*again = true;
		}
		return rc;
	}
	const char *rv = mg_kube_store_meta(cur, NULL, "resourceVersion");
	if (fenced && (rc = mg_kube_store_fence(k, cur, what, err))) {
		json_decref(cur);
		return rc;
	}
	if (version && (!*version || !rv || strcmp(rv, version))) {
		json_decref(cur);
		return mg_error_set(
		    err, MG_ECONFLICT,
		    "%s moved underneath us: another migrate wrote it after it was "
		    "read, so nothing was saved. Check `migrate status` and run the "
		    "command again",
		    what);
	}
	char wid[40];
	obj = mg_kube_store_rewrite(k, cur, key, text, fenced);
	json_decref(cur);
	if (!obj || stamp_write(obj, wid)) {
		json_decref(obj);
		return mg_error_oom(err);
	}
	rc = mg_kube_update(k->c, path, obj, NULL, err);
	json_decref(obj);
	if (rc != MG_ECONFLICT)
		return rc;
	/* a resent write meeting its own first attempt, or someone else's: read and tell */
	if (landed(k, path, wid)) {
		mg_error_clear(err);
		return 0;
	}
	if (version)
		return mg_error_set(
		    err, MG_ECONFLICT,
		    "%s moved underneath us: another migrate wrote it after it was "
		    "read, so nothing was saved. Check `migrate status` and run the "
		    "command again",
		    what);
	mg_error_clear(err);
	*again = true;
	return MG_ECONFLICT;
}

static int ks_doc_write(void *impl, const char *name, const char *text, size_t len,
                        const char *version, bool fenced, mg_error *err)
{
	kstore *k = impl;
	(void)len;
	char cm[160];
	const char *key;
	if (doc_names(cm, sizeof(cm), &key, k, name))
		return mg_error_set(err, MG_EINVALID, "no document \"%s\" in a store", name);
	if (strlen(text) != len)
		return mg_error_set(err, MG_EINVALID, "%s: a NUL in the document", name);
	int rc = fenced ? mg_kube_store_renew_if_due(k, err) : 0;
	if (rc)
		return rc;
	char *path = mg_kube_store_path(k, cm);
	if (!path)
		return mg_error_oom(err);
	bool again = true;
	for (int i = 0; again && i < WRITE_TRIES; i++)
		rc = doc_write_once(k, cm, path, doc_kind(name), key, text, version, fenced, &again,
		                    err);
	if (again)
		rc = mg_error_set(err, MG_ECONFLICT,
		                  "ConfigMap %s/%s changed under each of %d tries to write it; try "
		                  "again",
		                  k->ns, cm, WRITE_TRIES);
	free(path);
	return rc;
}

static int ks_doc_remove(void *impl, const char *name, mg_error *err)
{
	kstore *k = impl;
	char cm[160];
	const char *key;
	if (doc_names(cm, sizeof(cm), &key, k, name))
		return mg_error_set(err, MG_EINVALID, "no document \"%s\" in a store", name);
	char *path = mg_kube_store_path(k, cm);
	if (!path)
		return mg_error_oom(err);
	int rc = mg_kube_delete(k->c, path, NULL, NULL, err);
	free(path);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		rc = 0;
	}
	return rc;
}

static void ks_free(void *impl)
{
	kstore *k = impl;
	if (!k)
		return;
	ks_unlock(k);
	if (k->own_client)
		mg_kube_client_free(k->c);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k->r_kubeconfig);
	free(k->r_context);
	free(k->r_namespace);
	free(k->ns);
	free(k->collection);
	free(k->lease_path);
	free(k);
}

static const mg_store_ops kube_ops = {
    .lock = ks_lock,
    .unlock = ks_unlock,
    .locked = ks_locked,
    .probe = ks_probe,
    .keepalive = ks_keepalive,
    .doc_read = ks_doc_read,
    .doc_write = ks_doc_write,
    .doc_remove = ks_doc_remove,
    .journal_append = mg_kube_store_journal_append,
    .journal_append_many = mg_kube_store_journal_append_many,
    .journal_each = mg_kube_store_journal_each,
    .free = ks_free,
};

int mg_kube_store_open(mg_store **out, mg_kube_client *c, bool own_client,
                       const mg_kube_store_options *o, mg_error *err)
{
	*out = NULL;
	kstore *k = calloc(1, sizeof(*k));
	if (!k) {
		if (own_client)
			mg_kube_client_free(c);
		return mg_error_oom(err);
	}
	k->c = c;
	k->own_client = own_client;
	pthread_mutex_init(&k->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* mg_clock_abstime's clock */
	pthread_cond_init(&k->cv, &ca);
	pthread_condattr_destroy(&ca);
	const mg_kube_config_options *rc_opts = o->renew_client;
	bool copies_ok = true;
	if (rc_opts) {
		k->can_renew = true;
		k->r_timeout_ms = rc_opts->timeout_ms;
		k->r_deadline_ms = rc_opts->deadline_ms;
		k->r_kubeconfig = rc_opts->kubeconfig ? strdup(rc_opts->kubeconfig) : NULL;
		k->r_context = rc_opts->context ? strdup(rc_opts->context) : NULL;
		k->r_namespace = rc_opts->namespace_ ? strdup(rc_opts->namespace_) : NULL;
		copies_ok = (!rc_opts->kubeconfig || k->r_kubeconfig) &&
		            (!rc_opts->context || k->r_context) &&
		            (!rc_opts->namespace_ || k->r_namespace);
	}
	const char *ns = o->namespace_ ? o->namespace_ : mg_kube_client_namespace(c);
	const char *plan = o->plan ? o->plan : "";
	int64_t ms = o->lease_ms > 0 ? o->lease_ms : LEASE_DEFAULT_MS;
	k->lease_seconds = (int)((ms + 999) / 1000);
	if (k->lease_seconds < 2)
		k->lease_seconds = 2;
	k->now_ms = o->now_ms ? o->now_ms : mg_now_ms;
	k->force_lock = o->force_lock;
	k->displaced = o->displaced;
	snprintf(k->plan, sizeof(k->plan), "%s", plan);
	snprintf(k->prefix, sizeof(k->prefix), "migrate-%s", plan);
	k->ns = strdup(ns ? ns : "default");
	if (!copies_ok || !k->ns || asprintf(&k->collection, CM_PATH, k->ns) < 0 ||
	    asprintf(&k->lease_path, "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", k->ns,
	             k->prefix) < 0) {
		k->collection = k->lease_path = NULL; /* asprintf leaves them undefined */
		ks_free(k);
		return mg_error_oom(err);
	}
	/*
	 * mg_store_open_backend checks the characters (a-z, 0-9, '-', 1 to 63); a
	 * name ending in '-' would make the Lease "migrate-web-", which no API
	 * server accepts (DNS-1123: a letter or digit at each end).
	 */
	size_t n = strlen(plan);
	if (n && plan[n - 1] == '-') {
		ks_free(k);
		return mg_error_set(err, MG_EINVALID,
		                    "invalid plan name \"%s\": it names objects in the cluster, so "
		                    "it must end with a letter or a digit",
		                    plan);
	}
	char where[200];
	snprintf(where, sizeof(where), "kubernetes %s/%s", k->ns, k->prefix);
	/* the plan name is checked there, so every object name derived from it is a DNS name */
	return mg_store_open_backend(out, &kube_ops, k, plan, where, err);
}

int mg_kube_store_client(mg_kube_client **out, mg_kube_config_options *co, const mg_plan *plan,
                         const char *what, const mg_cancel *cancel, int64_t deadline_ms,
                         mg_error *err)
{
	const mg_plan_state *s = mg_plan_state_section(plan);
	*co = (mg_kube_config_options){.kubeconfig = s->kubeconfig,
	                               .context = s->context,
	                               .namespace_ = s->namespace_,
	                               .cancel = cancel,
	                               .timeout_ms =
	                                   deadline_ms && deadline_ms < 10000 ? deadline_ms : 0,
	                               .deadline_ms = deadline_ms};
	mg_error why = MG_ERROR_INIT;
	int rc = mg_kube_client_new(out, co, &why);
	if (rc) {
		mg_error_set(err, rc,
		             "the %s of plan \"%s\" is in the cluster (state.backend: kubernetes), "
		             "which cannot be reached: %s",
		             what, mg_plan_name(plan), why.message);
		mg_error_clear(&why);
	}
	return rc;
}

int mg_kube_store_open_plan(mg_store **out, const mg_plan *plan, const char *state_dir,
                            bool existing, const mg_cancel *cancel, int64_t deadline_ms,
                            mg_error *err)
{
	*out = NULL;
	const mg_plan_state *s = mg_plan_state_section(plan);
	if (s->backend == MG_STATE_LOCAL) {
		const char *dir = state_dir ? state_dir : mg_plan_state_dir(plan);
		return existing ? mg_store_open_existing(out, dir, mg_plan_name(plan), err)
		                : mg_store_open(out, dir, mg_plan_name(plan), err);
	}
	mg_kube_config_options co;
	mg_kube_client *c = NULL;
	int rc = mg_kube_store_client(&c, &co, plan, "state", cancel, deadline_ms, err);
	if (rc)
		return rc;
	co.cancel = NULL; /* the renewer's client: a signal must not stop it mid-renewal */
	mg_kube_store_options o = {
	    .plan = mg_plan_name(plan), .lease_ms = s->lease_ms, .renew_client = &co};
	rc = mg_kube_store_open(out, c, true, &o, err);
	/* what a command of this machine could not record here waits in its spool (spool.h) */
	char spool[1024];
	if (!rc && !(rc = mg_spool_dir(spool, sizeof(spool),
	                               state_dir ? state_dir : mg_plan_state_dir(plan),
	                               mg_plan_name(plan), err)))
		rc = mg_store_spool_set(*out, spool, err);
	if (rc) {
		mg_store_free(*out);
		*out = NULL;
	}
	return rc;
}
