/*
 * lib/kube/lease.c (mg_kube_lease_*) against tests/servers/kubeapi.py: the
 * migration's lock as a coordination.k8s.io/v1 Lease. Time is driven through
 * the now_ms hook, never slept through; every refusal is read back to show
 * nothing was overwritten.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"
#include "kube.h"

static char dir[256];
static tu_kubeapi k = TU_KUBEAPI_INIT;

#define LEASE "/apis/coordination.k8s.io/v1/namespaces/default/leases/lock"
#define ANN   "ann@laptop pid 41 command step"
#define BOB   "bob@ci pid 7 command run"
/* 2026-12-05T07:00:00Z */
#define T0 1796454000000LL

static int64_t clock_ms = T0;

static int64_t test_now(void)
{
	return clock_ms;
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kubelease");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	tu_kubeapi_start(&k, dir, "default");
	clock_ms = T0;
}

static void teardown(void)
{
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

TestSuite(kubelease, .init = setup, .fini = teardown, .timeout = 60);

static mg_kube_client *client(int64_t timeout_ms)
{
	mg_kube_config_options o = {.kubeconfig = k.kubeconfig, .timeout_ms = timeout_ms};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &o, &err), 0, "%s", err.message);
	return c;
}

static mg_kube_lease_options opts(const char *holder)
{
	return (mg_kube_lease_options){
	    .name = "lock", .holder = holder, .lease_seconds = 15, .now_ms = test_now};
}

static mg_kube_lease *acquire_ok(mg_kube_client *c, const char *holder)
{
	mg_kube_lease_options o = opts(holder);
	mg_kube_lease *l = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_lease_acquire(&l, c, &o, &err), 0, "%s", err.message);
	cr_assert_not_null(l);
	cr_assert_str_eq(mg_kube_lease_holder(l), holder);
	return l;
}

/* The Lease as the server has it now (NULL when it is gone). */
static json_t *live(mg_kube_client *c)
{
	json_t *o = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_kube_get(c, LEASE, "read back", &o, &err);
	cr_assert(rc == 0 || rc == MG_ENOTFOUND, "%s", err.message);
	mg_error_clear(&err);
	return o;
}

static const char *spec_s(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(json_object_get(o, "spec"), key));
	return s ? s : "(none)";
}

static long long spec_i(const json_t *o, const char *key)
{
	json_t *v = json_object_get(json_object_get(o, "spec"), key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static char *rv(const json_t *o)
{
	return strdup(
	    json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion")));
}

static size_t requests(const char *method, const char *path)
{
	json_t *log = tu_kubeapi_requests(&k);
	size_t i, n = 0;
	json_t *e;
	json_array_foreach(log, i, e)
	{
		if (!strcmp(json_string_value(json_object_get(e, "method")), method) &&
		    !strcmp(json_string_value(json_object_get(e, "path")), path))
			n++;
	}
	json_decref(log);
	return n;
}

/* Debian's kubectl against the stand-in (arguments up to a NULL). */
static tu_output kubectl(const char *a1, const char *a2, const char *a3, const char *a4)
{
	char kc[600], cache[600];
	snprintf(kc, sizeof(kc), "--kubeconfig=%s", k.kubeconfig);
	snprintf(cache, sizeof(cache), "--cache-dir=%s/kcache", dir);
	char *argv[] = {"/usr/bin/kubectl", kc,         cache,      (char *)a1,
	                (char *)a2,         (char *)a3, (char *)a4, NULL};
	return tu_capture(argv);
}

Test(kubelease, acquire_on_an_empty_namespace_creates_the_lease)
{
	mg_kube_client *c = client(0);
	cr_assert_null(live(c));
	mg_kube_lease *l = acquire_ok(c, ANN);
	cr_assert_eq(mg_kube_lease_token(l), 0);
	json_t *o = live(c);
	cr_assert_not_null(o);
	cr_assert_str_eq(spec_s(o, "holderIdentity"), ANN);
	cr_assert_eq(spec_i(o, "leaseDurationSeconds"), 15);
	cr_assert_eq(spec_i(o, "leaseTransitions"), 0);
	/* MicroTime: six fraction digits, or the real server answers 400 */
	cr_assert_str_eq(spec_s(o, "acquireTime"), "2026-12-05T07:00:00.000000Z");
	cr_assert_str_eq(spec_s(o, "renewTime"), "2026-12-05T07:00:00.000000Z");
	json_decref(o);
	cr_assert_eq(requests("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases"), 1);

	/* options that cannot make a lock are refused before anything is sent */
	mg_kube_lease_options bad = opts(BOB);
	bad.lease_seconds = 1;
	mg_kube_lease *l2 = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_lease_acquire(&l2, c, &bad, &err), MG_EINVALID);
	cr_assert_str_eq(err.message,
	                 "Lease default/lock: the lease must last at least 2 s (got 1)");
	mg_error_clear(&err);
	bad = opts("");
	cr_assert_eq(mg_kube_lease_acquire(&l2, c, &bad, &err), MG_EINVALID);
	mg_error_clear(&err);
	bad = opts(BOB);
	bad.name = "../x";
	cr_assert_eq(mg_kube_lease_acquire(&l2, c, &bad, &err), MG_EINVALID);
	mg_error_clear(&err);
	cr_assert_null(l2);
	cr_assert_eq(requests("GET", LEASE), 3, "live() twice and the first acquire: nothing more");

	/* kubectl sees the same Lease */
	if (access("/usr/bin/kubectl", X_OK) == 0) {
		tu_output r = kubectl("get", "lease", "lock", "-o=json");
		cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
		json_t *doc = json_loads(r.out, 0, NULL);
		cr_assert_not_null(doc, "%s", r.out);
		cr_assert_str_eq(json_string_value(json_object_get(doc, "kind")), "Lease");
		cr_assert_str_eq(spec_s(doc, "holderIdentity"), ANN);
		cr_assert_eq(spec_i(doc, "leaseTransitions"), 0);
		json_decref(doc);
		tu_output_free(&r);
	} else {
		cr_log_warn("no /usr/bin/kubectl: the kubectl check was skipped");
	}
	mg_kube_lease_free(l);
	mg_kube_client_free(c);
}

Test(kubelease, a_second_acquirer_is_locked_out_naming_the_first)
{
	mg_kube_client *c = client(0);
	mg_kube_lease *a = acquire_ok(c, ANN);
	json_t *before = live(c);
	char *rv0 = rv(before);

	mg_kube_lease_options o = opts(BOB);
	mg_kube_lease *b = NULL;
	mg_error err = MG_ERROR_INIT;
	clock_ms = T0 + 5000;
	cr_assert_eq(mg_kube_lease_acquire(&b, c, &o, &err), MG_ELOCKED, "%s", err.message);
	cr_assert_null(b);
	cr_assert_str_eq(err.message,
	                 "Lease default/lock is held by " ANN " until 2026-12-05T07:00:15.000Z "
	                 "unless renewed (renewed 2026-12-05T07:00:00.000Z, lease 15 s; 10.0 s "
	                 "from now)");
	mg_error_clear(&err);
	/* the last millisecond of the lease is still the holder's */
	clock_ms = T0 + 14999;
	cr_assert_eq(mg_kube_lease_acquire(&b, c, &o, &err), MG_ELOCKED, "%s", err.message);
	cr_assert(strstr(err.message, "held by " ANN), "%s", err.message);
	mg_error_clear(&err);

	json_t *after = live(c);
	char *rv1 = rv(after);
	cr_assert_str_eq(rv1, rv0, "nothing was written");
	cr_assert_str_eq(spec_s(after, "holderIdentity"), ANN);
	cr_assert_eq(requests("PUT", LEASE), 0);
	json_decref(before);
	json_decref(after);
	free(rv0);
	free(rv1);
	mg_kube_lease_free(a);
	mg_kube_client_free(c);
}

Test(kubelease, an_expired_lease_is_taken_over_and_the_token_increments)
{
	mg_kube_client *c = client(0);
	mg_kube_lease *a = acquire_ok(c, ANN);
	cr_assert_eq(mg_kube_lease_token(a), 0);
	clock_ms = T0 + 15000;
	mg_kube_lease *b = acquire_ok(c, BOB);
	cr_assert_eq(mg_kube_lease_token(b), 1);
	json_t *o = live(c);
	cr_assert_str_eq(spec_s(o, "holderIdentity"), BOB);
	cr_assert_eq(spec_i(o, "leaseTransitions"), 1);
	cr_assert_str_eq(spec_s(o, "acquireTime"), "2026-12-05T07:00:15.000000Z");
	cr_assert_str_eq(spec_s(o, "renewTime"), "2026-12-05T07:00:15.000000Z");
	json_decref(o);

	/* and once more: a third holder after bob's lease ran out */
	clock_ms = T0 + 30000;
	mg_kube_lease *a2 = acquire_ok(c, ANN);
	cr_assert_eq(mg_kube_lease_token(a2), 2);
	mg_kube_lease_free(a);
	mg_kube_lease_free(b);
	mg_kube_lease_free(a2);
	mg_kube_client_free(c);
}

Test(kubelease, renew_keeps_the_lease_and_the_displaced_holder_gets_a_conflict)
{
	mg_kube_client *c = client(0);
	mg_kube_lease *a = acquire_ok(c, ANN);
	mg_error err = MG_ERROR_INIT;
	clock_ms = T0 + 10000;
	cr_assert_eq(mg_kube_lease_renew(a, &err), 0, "%s", err.message);
	cr_assert_eq(mg_kube_lease_token(a), 0);
	json_t *o = live(c);
	cr_assert_str_eq(spec_s(o, "renewTime"), "2026-12-05T07:00:10.000000Z");
	cr_assert_str_eq(spec_s(o, "acquireTime"), "2026-12-05T07:00:00.000000Z");
	cr_assert_eq(spec_i(o, "leaseTransitions"), 0);
	json_decref(o);

	/* renewed at 10 s: still held at 20 s, free at 25 s */
	mg_kube_lease_options ob = opts(BOB);
	mg_kube_lease *b = NULL;
	clock_ms = T0 + 20000;
	cr_assert_eq(mg_kube_lease_acquire(&b, c, &ob, &err), MG_ELOCKED, "%s", err.message);
	cr_assert(strstr(err.message, "until 2026-12-05T07:00:25.000Z"), "%s", err.message);
	mg_error_clear(&err);
	clock_ms = T0 + 25000;
	b = acquire_ok(c, BOB);
	cr_assert_eq(mg_kube_lease_token(b), 1);

	/* ann comes back from a pause: her renewal is refused and changes nothing */
	clock_ms = T0 + 26000;
	cr_assert_eq(mg_kube_lease_renew(a, &err), MG_ECONFLICT);
	cr_assert_str_eq(err.message, "Lease default/lock: lost the lock to " BOB
	                              " (acquired 2026-12-05T07:00:25.000000Z, "
	                              "leaseTransitions 1; ours was 0)");
	mg_error_clear(&err);
	o = live(c);
	cr_assert_str_eq(spec_s(o, "holderIdentity"), BOB);
	cr_assert_str_eq(spec_s(o, "renewTime"), "2026-12-05T07:00:25.000000Z");
	json_decref(o);
	/* nor can she release bob's lease */
	cr_assert_eq(mg_kube_lease_release(a, &err), MG_ECONFLICT);
	cr_assert(strstr(err.message, "lost the lock to " BOB), "%s", err.message);
	mg_error_clear(&err);
	o = live(c);
	cr_assert_str_eq(spec_s(o, "holderIdentity"), BOB);
	json_decref(o);
	/* bob's own renewal goes on */
	cr_assert_eq(mg_kube_lease_renew(b, &err), 0, "%s", err.message);
	mg_kube_lease_free(a);
	mg_kube_lease_free(b);
	mg_kube_client_free(c);
}

typedef struct {
	const char *holder;
	pthread_barrier_t *start;
	int rc;
	int64_t token;
	char message[1024];
} racer;

static void *race(void *ud)
{
	racer *r = ud;
	mg_kube_client *c = client(0);
	mg_kube_lease_options o = opts(r->holder);
	mg_kube_lease *l = NULL;
	mg_error err = MG_ERROR_INIT;
	pthread_barrier_wait(r->start);
	r->rc = mg_kube_lease_acquire(&l, c, &o, &err);
	r->token = l ? mg_kube_lease_token(l) : -1;
	snprintf(r->message, sizeof(r->message), "%s", err.message);
	mg_error_clear(&err);
	mg_kube_lease_free(l);
	mg_kube_client_free(c);
	return NULL;
}

Test(kubelease, two_racing_acquirers_exactly_one_wins)
{
	mg_kube_client *c = client(0);
	/* round 0 races to create the Lease, the others to take over an expired one */
	for (int round = 0; round <= 10; round++) {
		clock_ms = T0 + round * 60000LL;
		char ha[64], hb[64];
		snprintf(ha, sizeof(ha), "a@host pid %d command step", round);
		snprintf(hb, sizeof(hb), "b@host pid %d command step", round);
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, 2);
		racer a = {.holder = ha, .start = &start};
		racer b = {.holder = hb, .start = &start};
		pthread_t ta, tb;
		cr_assert_eq(pthread_create(&ta, NULL, race, &a), 0);
		cr_assert_eq(pthread_create(&tb, NULL, race, &b), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&start);
		cr_assert((a.rc == 0 && b.rc == MG_ELOCKED) || (a.rc == MG_ELOCKED && b.rc == 0),
		          "round %d: a %d (%s), b %d (%s)", round, a.rc, a.message, b.rc,
		          b.message);
		const racer *won = a.rc == 0 ? &a : &b, *lost = a.rc == 0 ? &b : &a;
		cr_assert(strstr(lost->message, won->holder),
		          "round %d: the loser is told who won: %s", round, lost->message);
		cr_assert_eq(won->token, round, "round %d", round);
		json_t *o = live(c);
		cr_assert_str_eq(spec_s(o, "holderIdentity"), won->holder, "round %d", round);
		cr_assert_eq(spec_i(o, "leaseTransitions"), round, "round %d", round);
		json_decref(o);
	}
	mg_kube_client_free(c);
}

Test(kubelease, release_lets_the_next_acquire_in_at_once)
{
	mg_kube_client *c = client(0);
	mg_kube_lease *a = acquire_ok(c, ANN);
	mg_error err = MG_ERROR_INIT;
	clock_ms = T0 + 1000;
	cr_assert_eq(mg_kube_lease_release(a, &err), 0, "%s", err.message);
	json_t *o = live(c);
	cr_assert_str_eq(spec_s(o, "holderIdentity"), "");
	cr_assert_eq(spec_i(o, "leaseDurationSeconds"), 1);
	cr_assert_eq(spec_i(o, "leaseTransitions"), 0);
	cr_assert_str_eq(spec_s(o, "renewTime"), "2026-12-05T07:00:01.000000Z");
	json_decref(o);
	/* released: no renewing it any more */
	cr_assert_eq(mg_kube_lease_renew(a, &err), MG_ECONFLICT);
	mg_error_clear(&err);

	/* the same instant, 14 s before ann's lease would have run out */
	mg_kube_lease *b = acquire_ok(c, BOB);
	cr_assert_eq(mg_kube_lease_token(b), 1);
	o = live(c);
	cr_assert_str_eq(spec_s(o, "holderIdentity"), BOB);
	cr_assert_eq(spec_i(o, "leaseDurationSeconds"), 15);
	json_decref(o);
	mg_kube_lease_free(a);
	mg_kube_lease_free(b);
	mg_kube_client_free(c);
}

Test(kubelease, force_takes_over_a_live_lease_naming_the_displaced_holder)
{
	mg_kube_client *c = client(0);
	mg_kube_lease_options ob = opts(BOB);
	mg_kube_lease *b = NULL;
	char *displaced = (char *)"unset";
	mg_error err = MG_ERROR_INIT;
	/* nobody to displace: it is created */
	cr_assert_eq(mg_kube_lease_force(&b, &displaced, c, &ob, &err), 0, "%s", err.message);
	cr_assert_null(displaced);
	cr_assert_eq(mg_kube_lease_token(b), 0);
	mg_kube_lease_free(b);
	b = NULL;
	cr_assert_eq(mg_kube_delete(c, LEASE, NULL, NULL, &err), 0, "%s", err.message);

	mg_kube_lease *a = acquire_ok(c, ANN);
	clock_ms = T0 + 1000; /* ann's lease has 14 s to go */
	cr_assert_eq(mg_kube_lease_force(&b, &displaced, c, &ob, &err), 0, "%s", err.message);
	cr_assert_str_eq(displaced, ANN);
	free(displaced);
	cr_assert_eq(mg_kube_lease_token(b), 1);
	json_t *o = live(c);
	cr_assert_str_eq(spec_s(o, "holderIdentity"), BOB);
	cr_assert_eq(spec_i(o, "leaseTransitions"), 1);
	json_decref(o);
	/* the displaced holder finds out at its next renewal */
	cr_assert_eq(mg_kube_lease_renew(a, &err), MG_ECONFLICT);
	cr_assert(strstr(err.message, "lost the lock to " BOB), "%s", err.message);
	mg_error_clear(&err);
	mg_kube_lease_free(a);
	mg_kube_lease_free(b);
	mg_kube_client_free(c);
}

Test(kubelease, server_errors_are_retried)
{
	mg_kube_client *c = client(0);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/leases/lock\","
	                                   "\"method\":\"GET\",\"status\":503,\"count\":1}"));
	mg_kube_lease *a = acquire_ok(c, ANN);
	cr_assert_eq(requests("GET", LEASE), 2, "one 503, then the read");
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/leases/lock\","
	                                   "\"method\":\"PUT\",\"status\":503,\"count\":1}"));
	clock_ms = T0 + 5000;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_lease_renew(a, &err), 0, "%s", err.message);
	cr_assert_eq(requests("PUT", LEASE), 2, "one 503, then the renewal");
	json_t *o = live(c);
	cr_assert_str_eq(spec_s(o, "renewTime"), "2026-12-05T07:00:05.000000Z");
	json_decref(o);
	mg_kube_lease_free(a);
	mg_kube_client_free(c);
}

Test(kubelease, a_slow_api_is_bounded_by_the_client_timeout)
{
	mg_kube_client *c = client(300);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/leases\","
	                                   "\"kind\":\"slow\",\"ms\":2000,\"count\":10}"));
	mg_kube_lease_options o = opts(ANN);
	mg_kube_lease *l = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_lease_acquire(&l, c, &o, &err), MG_ERROR, "%s", err.message);
	cr_assert_null(l);
	cr_assert(strstr(err.message, "no answer from "), "%s", err.message);
	cr_assert(strstr(err.message, "within 300 ms"), "%s", err.message);
	mg_error_clear(&err);
	mg_kube_client_free(c);
}

/*
 * A write that landed but whose answer was lost is sent again by the HTTP
 * layer and meets itself as a 409: read back, it is ours, and counts as done.
 * Simulated here by writing what the call will write before it does, and
 * (for the create) hiding the Lease from its first read.
 */
Test(kubelease, a_write_whose_answer_was_lost_counts_as_done)
{
	mg_kube_client *c = client(0);
	mg_error err = MG_ERROR_INIT;
	json_t *l = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:i, s:s, s:s, s:i}}", "apiVersion",
	                      "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", "lock",
	                      "spec", "holderIdentity", ANN, "leaseDurationSeconds", 15,
	                      "acquireTime", "2026-12-05T07:00:00.000000Z", "renewTime",
	                      "2026-12-05T07:00:00.000000Z", "leaseTransitions", 0),
	       *first = NULL;
	cr_assert_eq(mg_kube_create(c, "/apis/coordination.k8s.io/v1/namespaces/default/leases", l,
	                            &first, &err),
	             0, "%s", err.message);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/leases/lock\","
	                                   "\"method\":\"GET\",\"status\":404,\"count\":1}"));
	mg_kube_lease *a = acquire_ok(c, ANN);
	cr_assert_eq(mg_kube_lease_token(a), 0);
	cr_assert_eq(requests("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases"), 2,
	             "ours, then the acquire's, refused");

	/* the renewal at 5 s lands, its answer is lost, the resend is refused */
	json_object_set_new(json_object_get(first, "spec"), "renewTime",
	                    json_string("2026-12-05T07:00:05.000000Z"));
	cr_assert_eq(mg_kube_update(c, LEASE, first, NULL, &err), 0, "%s", err.message);
	clock_ms = T0 + 5000;
	cr_assert_eq(mg_kube_lease_renew(a, &err), 0, "%s", err.message);
	cr_assert_eq(requests("PUT", LEASE), 2);
	/* and the handle holds the version as it is now: the next renewal goes through */
	clock_ms = T0 + 10000;
	cr_assert_eq(mg_kube_lease_renew(a, &err), 0, "%s", err.message);
	json_t *o = live(c);
	cr_assert_str_eq(spec_s(o, "renewTime"), "2026-12-05T07:00:10.000000Z");
	json_decref(o);
	json_decref(l);
	json_decref(first);
	mg_kube_lease_free(a);
	mg_kube_client_free(c);
}

/* Whoever wrote the Lease wrote its holder: it reaches messages and the journal scrubbed. */
Test(kubelease, a_hostile_holder_is_scrubbed)
{
	mg_kube_client *c = client(0);
	mg_error err = MG_ERROR_INIT;
	char holder[600];
	snprintf(holder, sizeof(holder), "eve\x1b[2J@host Bearer %s pid %0400d", k.token, 7);
	json_t *l = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:i, s:s, s:s, s:i}}", "apiVersion",
	                      "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", "lock",
	                      "spec", "holderIdentity", holder, "leaseDurationSeconds", 15,
	                      "acquireTime", "2026-12-05T07:00:00.000000Z", "renewTime",
	                      "2026-12-05T07:00:00.000000Z", "leaseTransitions", 0);
	cr_assert_eq(mg_kube_create(c, "/apis/coordination.k8s.io/v1/namespaces/default/leases", l,
	                            NULL, &err),
	             0, "%s", err.message);
	json_decref(l);
	mg_kube_lease_options o = opts(BOB);
	mg_kube_lease *b = NULL;
	cr_assert_eq(mg_kube_lease_acquire(&b, c, &o, &err), MG_ELOCKED);
	cr_assert(!strchr(err.message, '\x1b'), "%s", err.message);
	cr_assert(!strstr(err.message, k.token), "%s", err.message);
	cr_assert(strstr(err.message, "held by eve [2J@host Bearer [redacted] pid 0000"), "%s",
	          err.message);
	cr_assert(strstr(err.message, "... until 2026-12-05T07:00:15.000Z"), "cut: %s",
	          err.message);
	mg_error_clear(&err);
	char *displaced = NULL;
	cr_assert_eq(mg_kube_lease_force(&b, &displaced, c, &o, &err), 0, "%s", err.message);
	cr_assert_not_null(displaced);
	cr_assert(!strchr(displaced, '\x1b') && !strstr(displaced, k.token), "%s", displaced);
	cr_assert(strlen(displaced) <= 500 && strstr(displaced, "eve [2J@host Bearer [redacted]"),
	          "%s", displaced);
	free(displaced);
	mg_kube_lease_free(b);
	mg_kube_client_free(c);
}
