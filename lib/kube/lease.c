/*
 * The migration's lock as a coordination.k8s.io/v1 Lease (issue 14).
 *
 * Followed: client-go's tools/leaderelection/leaderelection.go,
 * LeaderElector.tryAcquireOrRenew and release (kubernetes/client-go):
 *   1. GET the Lease; when absent, create it (holderIdentity, leaseDurationSeconds,
 *      acquireTime = renewTime = now, leaseTransitions 0).
 *   2. When it has a holder that is not us and holder's lease has not expired,
 *      give up ("lock is held by %v and has not yet expired").
 *   3. Otherwise update it from the object as read (so with its resourceVersion):
 *      a new holder gets leaseTransitions + 1 and acquireTime now, the holder
 *      itself keeps both and only moves renewTime.
 *   release (ReleaseOnCancel): holderIdentity empty, leaseDurationSeconds 1,
 *      acquireTime = renewTime = now, leaseTransitions kept.
 * Where this differs, and why:
 *   - Expiry is renewTime + leaseDurationSeconds from the record, not client-go's
 *     observedTime (the local time it first saw the current record) + duration:
 *     an elector watches the record for a whole lease before taking it, a command
 *     reads it once and cannot wait that long to learn it is free. This trusts the
 *     holder's and the contender's clocks to agree (NTP) to well within a lease.
 *   - client-go treats any failed write as "try again next period"; here a 409
 *     is read once more and reported: MG_ELOCKED naming the winner, never a
 *     second write over it. A write whose answer was lost is resent by the HTTP
 *     layer and may then meet its own first attempt as a 409: the re-read
 *     recognises our own holder and renewTime and counts it as done.
 *   - Every update carries the object as read, uid included, so a Lease
 *     deleted meanwhile is a 409 rather than re-created by a stale holder.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "kube.h"
#include "secret.h"
#include "store.h" /* mg_time_parse */

#define LEASES_PATH "/apis/coordination.k8s.io/v1/namespaces/%s/leases"
/* a forced takeover racing the holder's renewals: read and overwrite again this often */
#define FORCE_TRIES 3

struct mg_kube_lease {
	mg_kube_client *c; /* borrowed */
	char *collection;  /* .../namespaces/NS/leases */
	char *path;        /* .../leases/NAME */
	char *what;        /* "Lease NS/NAME" */
	char *holder;
	int seconds;
	int64_t (*now_ms)(void);
	json_t *obj; /* as last written: its resourceVersion and uid guard the next write */
	int64_t token;
	bool released;
};

void mg_kube_lease_free(mg_kube_lease *l)
{
	if (!l)
		return;
	free(l->collection);
	free(l->path);
	free(l->what);
	free(l->holder);
	json_decref(l->obj);
	free(l);
}

int64_t mg_kube_lease_token(const mg_kube_lease *l)
{
	return l->token;
}

const char *mg_kube_lease_holder(const mg_kube_lease *l)
{
	return l->holder;
}

/* A Lease's MicroTime: RFC 3339 with exactly six fraction digits, which the API server
 * requires (metav1.MicroTime, RFC3339Micro); ours have millisecond precision. */
static void micro_time(char buf[40], int64_t ms)
{
	mg_time_format(buf, 36, ms); /* ...T07:00:00.123Z, 24 characters */
	size_t n = strlen(buf);      /* at most 35: room for three more digits */
	if (n && buf[n - 1] == 'Z')
		memcpy(buf + n - 1, "000Z", 5);
}

static json_t *spec_of(const json_t *obj)
{
	return json_object_get(obj, "spec");
}

static const char *spec_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(spec_of(obj), key));
	return s ? s : "";
}

static int64_t spec_int(const json_t *obj, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(spec_of(obj), key));
}

/* When the holder's lease runs out: renewTime (else acquireTime) + leaseDurationSeconds;
 * 0 when the record says neither (nothing to wait for). */
static int64_t expiry_ms(const json_t *obj, int64_t *renewed)
{
	int64_t t = 0;
	if (mg_time_parse(&t, spec_str(obj, "renewTime")) != 0 &&
	    mg_time_parse(&t, spec_str(obj, "acquireTime")) != 0)
		t = 0;
	if (renewed)
		*renewed = t;
	int64_t d = spec_int(obj, "leaseDurationSeconds");
	return t && d > 0 ? t + d * 1000 : 0;
}

/* Whether the record is the one we wrote at stamp: a resent write meeting its first attempt. */
static bool ours(const json_t *obj, const char *holder, const char *stamp)
{
	return !strcmp(spec_str(obj, "holderIdentity"), holder) &&
	       !strcmp(spec_str(obj, "renewTime"), stamp);
}

/*
 * The holder a record names, as a message may show it: whoever wrote the Lease
 * wrote it, so it is scrubbed (a secret, terminal control characters) before
 * it is cut to a length a message can carry.
 */
static void holder_text(char *dst, size_t size, const json_t *obj)
{
	mg_scrub_cut(dst, size, spec_str(obj, "holderIdentity"), 200);
}

/* "Lease NS/NAME is held by X until T unless renewed (...)", MG_ELOCKED. */
static int locked(mg_error *err, const mg_kube_lease *l, const json_t *obj, int64_t now,
                  const char *how)
{
	int64_t renewed;
	int64_t until = expiry_ms(obj, &renewed);
	char h[256];
	holder_text(h, sizeof(h), obj);
	char r[40], u[40];
	mg_time_format(r, sizeof(r), renewed);
	mg_time_format(u, sizeof(u), until);
	if (!*h)
		return mg_error_set(err, MG_ELOCKED,
		                    "%s%s changed while this process took it (now without a "
		                    "holder); try again",
		                    how, l->what);
	if (!until)
		return mg_error_set(err, MG_ELOCKED,
		                    "%s%s is held by %s, but the Lease says neither when it was "
		                    "renewed nor for how long; try again",
		                    how, l->what, h);
	if (until <= now)
		return mg_error_set(err, MG_ELOCKED,
		                    "%s%s is held by %s, whose lease ran out at %s; try again", how,
		                    l->what, h, u);
	int64_t left = until - now;
	return mg_error_set(err, MG_ELOCKED,
	                    "%s%s is held by %s until %s unless renewed (renewed %s, lease %lld "
	                    "s; %lld.%lld s from now)",
	                    how, l->what, h, u, r, (long long)spec_int(obj, "leaseDurationSeconds"),
	                    (long long)(left / 1000), (long long)(left % 1000 / 100));
}

/* MG_ECONFLICT: the Lease is no longer ours (obj: as read now, NULL when it is gone). */
static int lost(mg_error *err, const mg_kube_lease *l, const json_t *obj)
{
	if (!obj)
		return mg_error_set(err, MG_ECONFLICT, "%s: lost the lock: the Lease was deleted",
		                    l->what);
	char h[256];
	holder_text(h, sizeof(h), obj);
	if (!*h)
		return mg_error_set(
		    err, MG_ECONFLICT,
		    "%s: lost the lock: the Lease was released (leaseTransitions %lld)", l->what,
		    (long long)spec_int(obj, "leaseTransitions"));
	char at[64];
	mg_scrub_cut(at, sizeof(at), spec_str(obj, "acquireTime"), 40);
	return mg_error_set(err, MG_ECONFLICT,
	                    "%s: lost the lock to %s (acquired %s, leaseTransitions %lld; ours was "
	                    "%lld)",
	                    l->what, h, at, (long long)spec_int(obj, "leaseTransitions"),
	                    (long long)l->token);
}

/*
 * The record to write: the object as read (metadata with resourceVersion and uid
 * kept) or a new one, with a spec built whole as client-go's
 * LeaderElectionRecordToLeaseSpec does. holder "": released.
 */
static json_t *record(const mg_kube_lease *l, const json_t *base, const char *holder, int seconds,
                      const char *acquired, const char *renewed, int64_t transitions)
{
	json_t *o = base
	                ? json_deep_copy(base)
	                : json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "coordination.k8s.io/v1",
	                            "kind", "Lease", "metadata", "name", strrchr(l->path, '/') + 1);
	json_t *spec = json_pack("{s:s, s:i, s:s, s:s, s:I}", "holderIdentity", holder,
	                         "leaseDurationSeconds", seconds, "acquireTime", acquired,
	                         "renewTime", renewed, "leaseTransitions", (json_int_t)transitions);
	if (!o || !spec) {
		json_decref(o);
		json_decref(spec);
		return NULL;
	}
	if (json_object_set_new(o, "spec", spec)) { /* takes spec even when it fails */
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Names in a URL path: a DNS subdomain's characters only (what the API server allows). */
static bool path_safe(const char *s)
{
	if (!s || !*s || strlen(s) > 253)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '.'))
			return false;
	return true;
}

static int lease_new(mg_kube_lease **out, mg_kube_client *c, const mg_kube_lease_options *o,
                     mg_error *err)
{
	*out = NULL;
	if (!o)
		return mg_error_set(err, MG_EINVALID, "a Lease needs options");
	const char *ns = o->namespace_ ? o->namespace_ : mg_kube_client_namespace(c);
	if (!path_safe(ns) || !path_safe(o->name))
		return mg_error_set(err, MG_EINVALID,
		                    "Lease %s/%s: the namespace and the name must be lower-case "
		                    "letters, digits, '-' and '.'",
		                    ns ? ns : "", o->name ? o->name : "");
	if (!o->holder || !*o->holder)
		return mg_error_set(err, MG_EINVALID, "Lease %s/%s: a holder identity is needed",
		                    ns, o->name);
	if (o->lease_seconds < 2)
		return mg_error_set(err, MG_EINVALID,
		                    "Lease %s/%s: the lease must last at least 2 s (got %d)", ns,
		                    o->name, o->lease_seconds);
	mg_kube_lease *l = calloc(1, sizeof(*l));
	if (!l)
		return mg_error_oom(err);
	l->c = c;
	l->seconds = o->lease_seconds;
	l->now_ms = o->now_ms ? o->now_ms : mg_now_ms;
	if (asprintf(&l->collection, LEASES_PATH, ns) < 0)
		l->collection = NULL;
	if (asprintf(&l->path, LEASES_PATH "/%s", ns, o->name) < 0)
		l->path = NULL;
	if (asprintf(&l->what, "Lease %s/%s", ns, o->name) < 0)
		l->what = NULL;
	l->holder = strdup(o->holder);
	if (!l->collection || !l->path || !l->what || !l->holder) {
		mg_kube_lease_free(l);
		return mg_error_oom(err);
	}
	*out = l;
	return 0;
}

/*
 * One try at taking the Lease (force: even from a live holder). *again is set
 * when a forced try lost a race and may read and try once more.
 */
static int take_once(mg_kube_lease *l, bool force, char **displaced, bool *again, mg_error *err)
{
	*again = false;
	json_t *cur = NULL, *rec = NULL, *now_obj = NULL;
	int rc = mg_kube_get(l->c, l->path, l->what, &cur, err);
	int64_t now = l->now_ms();
	char stamp[40];
	micro_time(stamp, now);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		if (!(rec = record(l, NULL, l->holder, l->seconds, stamp, stamp, 0)))
			return mg_error_oom(err);
		rc = mg_kube_create(l->c, l->collection, rec, &l->obj, err);
	} else if (rc == 0) {
		const char *h = spec_str(cur, "holderIdentity");
		bool mine = !strcmp(h, l->holder);
		/* client-go: a holder, not us, and renewTime + duration after now */
		if (!force && *h && !mine && expiry_ms(cur, NULL) > now) {
			rc = locked(err, l, cur, now, "");
			json_decref(cur);
			return rc;
		}
		int64_t t = spec_int(cur, "leaseTransitions");
		if (displaced) {
			free(*displaced);
			/* for the journal and the terminal: scrubbed like any text another
			 * party wrote, control characters as spaces */
			char shown[512];
			mg_scrub_cut(shown, sizeof(shown), h, 500);
			*displaced = *h && !mine ? strdup(shown) : NULL;
			if (*h && !mine && !*displaced) {
				json_decref(cur);
				return mg_error_oom(err);
			}
		}
		rec = record(l, cur, l->holder, l->seconds,
		             mine ? spec_str(cur, "acquireTime") : stamp, stamp, mine ? t : t + 1);
		if (!rec) {
			json_decref(cur);
			return mg_error_oom(err);
		}
		rc = mg_kube_update(l->c, l->path, rec, &l->obj, err);
	}
	json_decref(cur);
	json_decref(rec);
	if (rc != MG_ECONFLICT)
		return rc;

	/* someone else wrote first: read once more, and never write over it */
	mg_error tmp = MG_ERROR_INIT;
	int r2 = mg_kube_get(l->c, l->path, l->what, &now_obj, &tmp);
	if (r2 == 0 && ours(now_obj, l->holder, stamp)) {
		mg_error_clear(err);
		l->obj = now_obj;
		return 0;
	}
	if (force && (r2 == 0 || r2 == MG_ENOTFOUND)) {
		*again = true;
		json_decref(now_obj);
		return rc; /* err: the 409 */
	}
	if (r2 == 0)
		rc = locked(err, l, now_obj, now, "lost a race for the lock: ");
	else if (r2 == MG_ENOTFOUND)
		rc = mg_error_set(err, MG_ELOCKED,
		                  "lost a race for the lock: %s was written and deleted by another "
		                  "process meanwhile; try again",
		                  l->what);
	else
		rc = mg_error_set(err, r2, "%s", tmp.message);
	mg_error_clear(&tmp);
	json_decref(now_obj);
	return rc;
}

static int take(mg_kube_lease **out, char **displaced, mg_kube_client *c,
                const mg_kube_lease_options *o, bool force, mg_error *err)
{
	*out = NULL;
	if (displaced)
		*displaced = NULL;
	mg_kube_lease *l;
	int rc = lease_new(&l, c, o, err);
	if (rc)
		return rc;
	bool again = false;
	for (int i = 0; i < (force ? FORCE_TRIES : 1); i++) {
		rc = take_once(l, force, displaced, &again, err);
		if (!again)
			break;
	}
	if (again)
		rc = mg_error_set(err, MG_ELOCKED,
		                  "%s changed under each of %d tries to take it over; try again",
		                  l->what, FORCE_TRIES);
	if (rc == 0 && !json_is_object(spec_of(l->obj)))
		rc = mg_error_set(err, MG_ERROR, "%s: the server's answer has no spec", l->what);
	if (rc) {
		if (displaced) {
			free(*displaced);
			*displaced = NULL;
		}
		mg_kube_lease_free(l);
		return rc;
	}
	l->token = spec_int(l->obj, "leaseTransitions");
	*out = l;
	return 0;
}

int mg_kube_lease_acquire(mg_kube_lease **out, mg_kube_client *c, const mg_kube_lease_options *o,
                          mg_error *err)
{
	return take(out, NULL, c, o, false, err);
}

int mg_kube_lease_force(mg_kube_lease **out, char **displaced, mg_kube_client *c,
                        const mg_kube_lease_options *o, mg_error *err)
{
	return take(out, displaced, c, o, true, err);
}

/*
 * Writes rec over the Lease we hold (guarded by the version last written). A
 * 409 or 404 is read once more: our own resent write that had landed (our
 * holder, renewTime and token: done), or someone else's (lost).
 */
static int write_held(mg_kube_lease *l, json_t *rec, const char *stamp, bool releasing,
                      mg_error *err)
{
	json_t *out = NULL;
	int rc = mg_kube_update(l->c, l->path, rec, &out, err);
	if (rc == 0) {
		/* a write at our version keeps our holder; a server that says otherwise lost it */
		const char *h = spec_str(out, "holderIdentity");
		if (strcmp(h, releasing ? "" : l->holder)) {
			rc = lost(err, l, out);
			json_decref(out);
			return rc;
		}
		json_decref(l->obj);
		l->obj = out;
		return 0;
	}
	if (rc != MG_ECONFLICT && rc != MG_ENOTFOUND)
		return rc;
	json_t *cur = NULL;
	mg_error tmp = MG_ERROR_INIT;
	int r2 = mg_kube_get(l->c, l->path, l->what, &cur, &tmp);
	if (r2 == 0 && !strcmp(spec_str(cur, "renewTime"), stamp) &&
	    spec_int(cur, "leaseTransitions") == l->token &&
	    !strcmp(spec_str(cur, "holderIdentity"), releasing ? "" : l->holder)) {
		mg_error_clear(err);
		json_decref(l->obj);
		l->obj = cur;
		return 0;
	}
	if (r2 == 0 || r2 == MG_ENOTFOUND)
		rc = lost(err, l, cur);
	else
		rc = mg_error_set(err, r2, "%s", tmp.message);
	mg_error_clear(&tmp);
	json_decref(cur);
	return rc;
}

int mg_kube_lease_renew(mg_kube_lease *l, mg_error *err)
{
	if (l->released)
		return mg_error_set(err, MG_ECONFLICT,
		                    "%s: this process released the lock; it cannot renew it",
		                    l->what);
	char stamp[40];
	micro_time(stamp, l->now_ms());
	json_t *rec = json_deep_copy(l->obj);
	if (!rec || json_object_set_new(spec_of(rec), "renewTime", json_string(stamp))) {
		json_decref(rec);
		return mg_error_oom(err);
	}
	int rc = write_held(l, rec, stamp, false, err);
	json_decref(rec);
	return rc;
}

int mg_kube_lease_release(mg_kube_lease *l, mg_error *err)
{
	if (l->released)
		return 0;
	char stamp[40];
	micro_time(stamp, l->now_ms());
	/* client-go's release: no holder, a 1 s lease, the transitions kept */
	json_t *rec = record(l, l->obj, "", 1, stamp, stamp, l->token);
	if (!rec)
		return mg_error_oom(err);
	int rc = write_held(l, rec, stamp, true, err);
	json_decref(rec);
	if (rc == 0)
		l->released = true;
	return rc;
}
