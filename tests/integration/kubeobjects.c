/*
 * lib/kube/objects.c (mg_kube_create, _update, _list, _delete) against
 * tests/servers/kubeapi.py: compare-and-swap on Leases and ConfigMaps, as the
 * state backend of issue 14 will use them. Nothing a loser of a race sends may
 * overwrite the winner: every refusal is read back.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "kube.h"

static char dir[256];
static tu_kubeapi k = TU_KUBEAPI_INIT;

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define CMS    "/api/v1/namespaces/default/configmaps"

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kubeobjects");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	tu_kubeapi_start(&k, dir, "default");
}

static void teardown(void)
{
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

TestSuite(kubeobjects, .init = setup, .fini = teardown, .timeout = 60);

static mg_kube_client *client(const char *context, int64_t timeout_ms)
{
	mg_kube_config_options o = {
	    .kubeconfig = k.kubeconfig, .context = context, .timeout_ms = timeout_ms};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &o, &err), 0, "%s", err.message);
	return c;
}

static json_t *lease(const char *name, const char *holder)
{
	return json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:i, s:s, s:s, s:i}}", "apiVersion",
	                 "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", name,
	                 "spec", "holderIdentity", holder, "leaseDurationSeconds", 15,
	                 "acquireTime", "2026-12-05T07:00:00.000000Z", "renewTime",
	                 "2026-12-05T07:00:00.000000Z", "leaseTransitions", 0);
}

static json_t *cm(const char *name, const char *value, const char *kind)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
	                      "ConfigMap", "metadata", "name", name, "labels",
	                      "app.kubernetes.io/managed-by", "migrate", "data", "v", value);
	if (kind)
		json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"),
		                    "migrate/kind", json_string(kind));
	return o;
}

static const char *meta(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(json_object_get(o, "metadata"), key));
	return s ? s : "(none)";
}

static const char *data_v(const json_t *o)
{
	const char *s = json_string_value(json_object_get(json_object_get(o, "data"), "v"));
	return s ? s : "(none)";
}

/* The object as the server has it now (NULL when it is gone). */
static json_t *live(mg_kube_client *c, const char *path)
{
	json_t *o = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_kube_get(c, path, "read back", &o, &err);
	cr_assert(rc == 0 || rc == MG_ENOTFOUND, "%s", err.message);
	mg_error_clear(&err);
	return o;
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

Test(kubeobjects, create_twice_is_a_conflict_with_the_servers_words)
{
	mg_kube_client *c = client(NULL, 0);
	json_t *l = lease("lock", "ann@laptop pid 41 step"), *out = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_create(c, LEASES, l, &out, &err), 0, "%s", err.message);
	cr_assert_str_eq(json_string_value(json_object_get(out, "kind")), "Lease");
	cr_assert_str_neq(meta(out, "resourceVersion"), "(none)");
	cr_assert_str_neq(meta(out, "uid"), "(none)");
	json_decref(out);

	json_t *l2 = lease("lock", "bob@ci pid 7 run");
	cr_assert_eq(mg_kube_create(c, LEASES, l2, &out, &err), MG_ECONFLICT, "%s", err.message);
	cr_assert_null(out);
	cr_assert_str_eq(err.message, "leases.coordination.k8s.io default/lock: 409 AlreadyExists: "
	                              "leases.coordination.k8s.io \"lock\" already exists");
	mg_error_clear(&err);
	json_t *now = live(c, LEASES "/lock");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(now, "spec"), "holderIdentity")),
	    "ann@laptop pid 41 step", "the second create changed nothing");
	json_decref(now);

	/* an object that was read (it has a resourceVersion) is not created: refused here */
	size_t before = requests("POST", LEASES);
	json_object_set_new(json_object_get(l2, "metadata"), "resourceVersion", json_string("7"));
	cr_assert_eq(mg_kube_create(c, LEASES, l2, NULL, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "cannot carry metadata.resourceVersion"), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_eq(requests("POST", LEASES), before, "nothing was sent");
	json_decref(l);
	json_decref(l2);
	mg_kube_client_free(c);
}

Test(kubeobjects, stale_update_is_refused_and_overwrites_nothing)
{
	mg_kube_client *c = client(NULL, 0);
	json_t *o = cm("state", "v1", "state"), *base = NULL, *won = NULL, *out = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_create(c, CMS, o, &base, &err), 0, "%s", err.message);

	json_t *mine = json_deep_copy(base);
	json_object_set_new(json_object_get(mine, "data"), "v", json_string("v2"));
	cr_assert_eq(mg_kube_update(c, CMS "/state", mine, &won, &err), 0, "%s", err.message);
	cr_assert_str_eq(data_v(won), "v2");
	cr_assert_str_neq(meta(won, "resourceVersion"), meta(base, "resourceVersion"));

	/* another writer from the same base: refused, and v2 stays */
	json_t *theirs = json_deep_copy(base);
	json_object_set_new(json_object_get(theirs, "data"), "v", json_string("v3"));
	cr_assert_eq(mg_kube_update(c, CMS "/state", theirs, &out, &err), MG_ECONFLICT, "%s",
	             err.message);
	cr_assert_null(out);
	cr_assert_str_eq(err.message,
	                 "configmaps default/state: 409 Conflict: Operation cannot be fulfilled on "
	                 "configmaps \"state\": the object has been modified; please apply your "
	                 "changes to the latest version and try again");
	mg_error_clear(&err);
	json_t *now = live(c, CMS "/state");
	cr_assert_str_eq(data_v(now), "v2");
	cr_assert_str_eq(meta(now, "resourceVersion"), meta(won, "resourceVersion"));
	json_decref(now);

	/* without a resourceVersion the server would take it unconditionally: never sent */
	size_t before = requests("PUT", CMS "/state");
	json_object_del(json_object_get(theirs, "metadata"), "resourceVersion");
	cr_assert_eq(mg_kube_update(c, CMS "/state", theirs, NULL, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "an update needs metadata.resourceVersion"), "%s",
	          err.message);
	mg_error_clear(&err);
	cr_assert_eq(requests("PUT", CMS "/state"), before);
	now = live(c, CMS "/state");
	cr_assert_str_eq(data_v(now), "v2");
	json_decref(now);

	/* a ConfigMap deleted meanwhile: not found, not re-created */
	json_t *again = json_deep_copy(won);
	cr_assert_eq(mg_kube_delete(c, CMS "/state", NULL, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(mg_kube_update(c, CMS "/state", again, NULL, &err), MG_ENOTFOUND, "%s",
	             err.message);
	mg_error_clear(&err);
	cr_assert_null(live(c, CMS "/state"));
	json_decref(again);
	json_decref(o);
	json_decref(base);
	json_decref(mine);
	json_decref(won);
	json_decref(theirs);
	mg_kube_client_free(c);
}

Test(kubeobjects, a_lease_deleted_meanwhile_is_not_recreated_by_a_stale_holder)
{
	mg_kube_client *c = client(NULL, 0);
	json_t *l = lease("lock", "ann"), *base = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_create(c, LEASES, l, &base, &err), 0, "%s", err.message);
	cr_assert_eq(mg_kube_delete(c, LEASES "/lock", meta(base, "resourceVersion"), NULL, &err),
	             0, "%s", err.message);
	/* the holder renews from what it read: a PUT would create a missing Lease, but the
	 * uid it carries is a precondition */
	json_object_set_new(json_object_get(base, "spec"), "renewTime",
	                    json_string("2026-12-05T07:00:05.000000Z"));
	cr_assert_eq(mg_kube_update(c, LEASES "/lock", base, NULL, &err), MG_ECONFLICT, "%s",
	             err.message);
	cr_assert(strstr(err.message, "Precondition failed: UID in precondition"), "%s",
	          err.message);
	mg_error_clear(&err);
	cr_assert_null(live(c, LEASES "/lock"));
	json_decref(l);
	json_decref(base);
	mg_kube_client_free(c);
}

typedef struct {
	const json_t *base;
	const char *value;
	pthread_barrier_t *start;
	int rc;
	char message[1024];
} racer;

static void *race(void *ud)
{
	racer *r = ud;
	mg_kube_client *c = client(NULL, 0);
	json_t *o = json_deep_copy(r->base);
	json_object_set_new(json_object_get(o, "data"), "v", json_string(r->value));
	mg_error err = MG_ERROR_INIT;
	pthread_barrier_wait(r->start);
	r->rc = mg_kube_update(c, CMS "/state", o, NULL, &err);
	snprintf(r->message, sizeof(r->message), "%s", err.message);
	mg_error_clear(&err);
	json_decref(o);
	mg_kube_client_free(c);
	return NULL;
}

Test(kubeobjects, two_racing_updaters_exactly_one_wins)
{
	mg_kube_client *c = client(NULL, 0);
	json_t *o = cm("state", "base", "state"), *base = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_create(c, CMS, o, &base, &err), 0, "%s", err.message);
	json_decref(o);
	for (int round = 0; round < 10; round++) {
		char va[32], vb[32];
		snprintf(va, sizeof(va), "a%d", round);
		snprintf(vb, sizeof(vb), "b%d", round);
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, 2);
		racer a = {.base = base, .value = va, .start = &start};
		racer b = {.base = base, .value = vb, .start = &start};
		pthread_t ta, tb;
		cr_assert_eq(pthread_create(&ta, NULL, race, &a), 0);
		cr_assert_eq(pthread_create(&tb, NULL, race, &b), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&start);
		cr_assert(
		    (a.rc == 0 && b.rc == MG_ECONFLICT) || (a.rc == MG_ECONFLICT && b.rc == 0),
		    "round %d: a %d (%s), b %d (%s)", round, a.rc, a.message, b.rc, b.message);
		json_t *now = live(c, CMS "/state");
		cr_assert_str_eq(data_v(now), a.rc == 0 ? va : vb, "round %d: the winner's value",
		                 round);
		json_decref(base);
		base = now; /* the next round races from what is there now */
	}
	json_decref(base);
	mg_kube_client_free(c);
}

Test(kubeobjects, list_by_label_selector)
{
	mg_kube_client *c = client(NULL, 0);
	mg_error err = MG_ERROR_INIT;
	const char *names[] = {"journal-0", "journal-1", "state", "other"};
	const char *kinds[] = {"journal", "journal", "state", NULL};
	for (size_t i = 0; i < 4; i++) {
		json_t *o = cm(names[i], "x", kinds[i]);
		if (i == 3)
			json_object_set_new(
			    json_object_get(json_object_get(o, "metadata"), "labels"),
			    "app.kubernetes.io/managed-by", json_string("helm"));
		cr_assert_eq(mg_kube_create(c, CMS, o, NULL, &err), 0, "%s", err.message);
		json_decref(o);
	}
	const struct {
		const char *selector, *want;
	} cases[] = {
	    {"app.kubernetes.io/managed-by=migrate", "journal-0 journal-1 state "},
	    {"app.kubernetes.io/managed-by=migrate,migrate/kind in (journal)",
	     "journal-0 journal-1 "},
	    {"migrate/kind notin (journal, state)", "other "},
	    {"!migrate/kind", "other "},
	    {"app.kubernetes.io/managed-by!=migrate", "other "},
	    {NULL, "journal-0 journal-1 other state "},
	    {"", "journal-0 journal-1 other state "},
	    {"migrate/kind=none", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *items = NULL;
		cr_assert_eq(mg_kube_list(c, CMS, cases[i].selector, &items, &err), 0, "%s",
		             err.message);
		char got[256] = "";
		size_t j;
		json_t *it;
		json_array_foreach(items, j, it)
		{
			/* a list leaves them out; each item here can go back to mg_kube_update */
			cr_assert_str_eq(json_string_value(json_object_get(it, "kind")),
			                 "ConfigMap");
			cr_assert_str_eq(json_string_value(json_object_get(it, "apiVersion")),
			                 "v1");
			strcat(got, meta(it, "name"));
			strcat(got, " ");
		}
		cr_assert_str_eq(got, cases[i].want, "selector %s", cases[i].selector);
		json_decref(items);
	}
	/* it arrived as written: escaped on the way, decoded by the server */
	json_t *log = tu_kubeapi_requests(&k);
	json_t *q = json_object_get(json_array_get(log, json_array_size(log) - 1), "query");
	cr_assert_str_eq(json_string_value(json_object_get(q, "labelSelector")),
	                 "migrate/kind=none");
	q = json_object_get(json_array_get(log, 5), "query");
	cr_assert_str_eq(json_string_value(json_object_get(q, "labelSelector")),
	                 "app.kubernetes.io/managed-by=migrate,migrate/kind in (journal)");
	json_decref(log);

	/* a selector the server cannot read: its words */
	json_t *items = NULL;
	cr_assert_eq(mg_kube_list(c, CMS, "migrate/kind in ()", &items, &err), MG_EINVALID);
	cr_assert_null(items);
	cr_assert(strstr(err.message, "configmaps in default (labels migrate/kind in ()): 400 "
	                              "BadRequest: unable to parse requirement"),
	          "%s", err.message);
	mg_error_clear(&err);
	mg_kube_client_free(c);
}

Test(kubeobjects, delete_with_a_stale_precondition_is_refused)
{
	mg_kube_client *c = client(NULL, 0);
	json_t *l = lease("lock", "ann"), *first = NULL, *second = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_create(c, LEASES, l, &first, &err), 0, "%s", err.message);
	json_t *renew = json_deep_copy(first);
	json_object_set_new(json_object_get(renew, "spec"), "renewTime",
	                    json_string("2026-12-05T07:00:05.000000Z"));
	cr_assert_eq(mg_kube_update(c, LEASES "/lock", renew, &second, &err), 0, "%s", err.message);

	cr_assert_eq(mg_kube_delete(c, LEASES "/lock", meta(first, "resourceVersion"), NULL, &err),
	             MG_ECONFLICT);
	char want[256];
	snprintf(want, sizeof(want),
	         "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in "
	         "object meta: %s",
	         meta(first, "resourceVersion"), meta(second, "resourceVersion"));
	cr_assert(strstr(err.message, want), "%s", err.message);
	cr_assert(
	    !strncmp(err.message, "leases.coordination.k8s.io default/lock: 409 Conflict: ", 55),
	    "%s", err.message);
	mg_error_clear(&err);
	json_t *now = live(c, LEASES "/lock");
	cr_assert_not_null(now, "still there");
	json_decref(now);

	json_t *status = NULL;
	cr_assert_eq(
	    mg_kube_delete(c, LEASES "/lock", meta(second, "resourceVersion"), &status, &err), 0,
	    "%s", err.message);
	cr_assert_str_eq(json_string_value(json_object_get(status, "status")), "Success");
	json_decref(status);
	cr_assert_null(live(c, LEASES "/lock"));
	cr_assert_eq(mg_kube_delete(c, LEASES "/lock", NULL, NULL, &err), MG_ENOTFOUND);
	cr_assert_str_eq(err.message, "leases.coordination.k8s.io default/lock: 404 NotFound: "
	                              "leases.coordination.k8s.io \"lock\" not found");
	mg_error_clear(&err);
	json_decref(l);
	json_decref(first);
	json_decref(second);
	json_decref(renew);
	mg_kube_client_free(c);
}

Test(kubeobjects, a_configmap_over_one_mib_is_refused_with_the_servers_message)
{
	mg_kube_client *c = client(NULL, 0);
	size_t n = 1048576;
	char *big = malloc(n + 2);
	cr_assert_not_null(big);
	memset(big, 'j', n + 1);
	big[n + 1] = '\0';
	json_t *o = cm("journal-7", big, "journal");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_create(c, CMS, o, NULL, &err), MG_EINVALID);
	/* "v": 1 MiB + 1 byte */
	cr_assert_str_eq(err.message, "configmaps default/journal-7: 422 Invalid: []: Too long: "
	                              "must have at most 1048576 bytes");
	mg_error_clear(&err);
	cr_assert_null(live(c, CMS "/journal-7"));
	big[n] = '\0';
	json_object_set_new(json_object_get(o, "data"), "v", json_string(big));
	cr_assert_eq(mg_kube_create(c, CMS, o, NULL, &err), 0, "exactly 1 MiB: %s", err.message);
	json_decref(o);
	free(big);
	mg_kube_client_free(c);
}

Test(kubeobjects, server_errors_and_rate_limits_are_retried)
{
	mg_kube_client *c = client(NULL, 0);
	json_t *o = cm("state", "v1", "state"), *base = NULL;
	mg_error err = MG_ERROR_INIT;
	json_decref(tu_kubeapi_control(
	    &k, "{\"op\":\"fault\",\"path\":\"/configmaps\",\"method\":\"POST\",\"status\":429,"
	        "\"retry_after\":1}"));
	cr_assert_eq(mg_kube_create(c, CMS, o, &base, &err), 0, "%s", err.message);
	cr_assert_eq(requests("POST", CMS), 2, "one 429, then the create");

	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/configmaps/state\","
	                                   "\"method\":\"PUT\",\"status\":503,\"count\":2}"));
	json_object_set_new(json_object_get(base, "data"), "v", json_string("v2"));
	cr_assert_eq(mg_kube_update(c, CMS "/state", base, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(requests("PUT", CMS "/state"), 3, "two 503s, then the update");
	json_t *now = live(c, CMS "/state");
	cr_assert_str_eq(data_v(now), "v2");
	json_decref(now);

	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/configmaps\","
	                                   "\"method\":\"GET\",\"status\":500,\"count\":1}"));
	json_t *items = NULL;
	cr_assert_eq(mg_kube_list(c, CMS, "migrate/kind=state", &items, &err), 0, "%s",
	             err.message);
	cr_assert_eq(json_array_size(items), 1);
	json_decref(items);
	json_decref(o);
	json_decref(base);
	mg_kube_client_free(c);
}

Test(kubeobjects, a_slow_answer_hits_the_bound)
{
	mg_kube_client *c = client(NULL, 300);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/leases\","
	                                   "\"kind\":\"slow\",\"ms\":2000,\"count\":10}"));
	json_t *items = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_list(c, LEASES, NULL, &items, &err), MG_ERROR);
	cr_assert_null(items);
	cr_assert(strstr(err.message, "no answer from "), "%s", err.message);
	cr_assert(strstr(err.message, "within 300 ms"), "%s", err.message);
	mg_error_clear(&err);
	mg_kube_client_free(c);
}

Test(kubeobjects, a_token_the_server_quotes_back_stays_out_of_errors)
{
	mg_kube_client *c = client("token", 0);
	json_t *o = cm("state", "v1", "state"), *base = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_create(c, CMS, o, &base, &err), 0, "%s", err.message);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"echo\",\"on\":true,\"status\":409,"
	                                   "\"kind\":\"status\"}"));
	size_t h = strlen(k.token) / 2;
	char first[64], last[64];
	snprintf(first, sizeof(first), "%.*s", (int)h, k.token);
	snprintf(last, sizeof(last), "%s", k.token + strlen(k.token) - h);
	cr_assert_eq(mg_kube_update(c, CMS "/state", base, NULL, &err), MG_ECONFLICT);
	cr_assert(!strstr(err.message, first) && !strstr(err.message, last), "%s", err.message);
	cr_assert(strstr(err.message, "[redacted]"), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_neq(mg_kube_create(c, CMS, o, NULL, &err), 0);
	cr_assert(!strstr(err.message, first) && !strstr(err.message, last), "%s", err.message);
	mg_error_clear(&err);
	json_t *items = NULL;
	cr_assert_neq(mg_kube_list(c, CMS, "a=b", &items, &err), 0);
	cr_assert(!strstr(err.message, first) && !strstr(err.message, last), "%s", err.message);
	mg_error_clear(&err);
	cr_assert_neq(mg_kube_delete(c, CMS "/state", "1", NULL, &err), 0);
	cr_assert(!strstr(err.message, first) && !strstr(err.message, last), "%s", err.message);
	mg_error_clear(&err);
	json_decref(o);
	json_decref(base);
	mg_kube_client_free(c);
}
