/*
 * tests/servers/kubeapi.py, the Kubernetes API stand-in the cluster side is
 * tested against: proves it answers like a real kube-apiserver where a
 * client can get it wrong, so a client test that passes against it means
 * something. Driven with plain libcurl, not the code under test.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"

static char dir[256];
static tu_kubeapi kapi = TU_KUBEAPI_INIT;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kubeapi");
	tu_kubeapi_start(&kapi, dir, "default,staging");
}

static void teardown(void)
{
	tu_kubeapi_stop(&kapi);
	tu_tmpdir_remove(dir);
}

TestSuite(kubeapi_server, .init = setup, .fini = teardown, .timeout = 60);

typedef enum { AUTH_CERT, AUTH_TOKEN, AUTH_EXPIRED, AUTH_NONE, AUTH_OTHER } auth_mode;
/* the bearer token AUTH_OTHER sends */
static const char *other_token;

typedef struct {
	long status;
	char *text;      /* the body as received */
	char ctype[128]; /* Content-Type */
	char retry[32];  /* Retry-After */
	json_t *doc;     /* the body parsed, or NULL */
} answer;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	answer *a = ud;
	size_t old = strlen(a->text);
	a->text = realloc(a->text, old + size * n + 1);
	cr_assert_not_null(a->text);
	memcpy(a->text + old, data, size * n);
	a->text[old + size * n] = '\0';
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	answer *a = ud;
	size_t len = size * n;
	if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		size_t from = 12, to = len;
		while (from < to && data[from] == ' ')
			from++;
		while (to > from && (data[to - 1] == '\r' || data[to - 1] == '\n'))
			to--;
		snprintf(a->retry, sizeof(a->retry), "%.*s", (int)(to - from), data + from);
	}
	return len;
}

/* One API request; ctype NULL sends none. */
static answer call(auth_mode auth, const char *method, const char *path, const char *ctype,
                   const char *body)
{
	answer a = {0};
	a.text = calloc(1, 1);
	char url[512], bearer[128];
	snprintf(url, sizeof(url), "%s%s", kapi.url, path);
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	struct curl_slist *hdr = NULL;
	if (ctype) {
		char line[160];
		snprintf(line, sizeof(line), "Content-Type: %s", ctype);
		hdr = curl_slist_append(hdr, line);
	}
	if (auth == AUTH_TOKEN || auth == AUTH_EXPIRED || auth == AUTH_OTHER) {
		snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s",
		         auth == AUTH_TOKEN     ? kapi.token
		         : auth == AUTH_EXPIRED ? kapi.expired_token
		                                : other_token);
		hdr = curl_slist_append(hdr, bearer);
	}
	if (auth == AUTH_CERT) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, kapi.client_cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, kapi.client_key);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, kapi.ca);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(h);
	cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
	char *ct = NULL;
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(a.ctype, sizeof(a.ctype), "%s", ct ? ct : "");
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	a.doc = json_loads(a.text, 0, NULL);
	return a;
}

static void answer_free(answer *a)
{
	free(a->text);
	json_decref(a->doc);
}

static const char *str_at(json_t *doc, const char *p1, const char *p2, const char *p3)
{
	json_t *v = json_object_get(doc, p1);
	if (p2)
		v = json_object_get(v, p2);
	if (p3)
		v = json_object_get(v, p3);
	return json_string_value(v);
}

static json_int_t int_at(json_t *doc, const char *p1, const char *p2, const char *p3)
{
	json_t *v = json_object_get(doc, p1);
	if (p2)
		v = json_object_get(v, p2);
	if (p3)
		v = json_object_get(v, p3);
	return json_integer_value(v); /* 0 when absent: what omitempty means */
}

/* Asserts a Status object with this code, reason and message. */
static void assert_status(const answer *a, long code, const char *reason, const char *message)
{
	cr_assert_eq(a->status, code, "HTTP %ld, want %ld: %s", a->status, code, a->text);
	cr_assert_str_eq(a->ctype, "application/json");
	cr_assert_str_eq(str_at(a->doc, "kind", NULL, NULL), "Status");
	cr_assert_str_eq(str_at(a->doc, "apiVersion", NULL, NULL), "v1");
	cr_assert_str_eq(str_at(a->doc, "status", NULL, NULL), "Failure");
	cr_assert_str_eq(str_at(a->doc, "reason", NULL, NULL), reason, "%s", a->text);
	cr_assert_eq(int_at(a->doc, "code", NULL, NULL), code);
	if (message)
		cr_assert_str_eq(str_at(a->doc, "message", NULL, NULL), message);
}

#define APPLY    "application/apply-patch+yaml"
#define DEP_PATH "/apis/apps/v1/namespaces/default/deployments/web"

/* A Deployment as a client sends it (JSON is YAML); image and extra spec fields vary. */
static char *deployment(const char *image, int replicas, const char *extra)
{
	char *s = NULL;
	cr_assert_geq(
	    asprintf(&s,
	             "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
	             "\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\"}},"
	             "\"spec\":{\"replicas\":%d,%s\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
	             "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},"
	             "\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"%s\","
	             "\"ports\":[{\"containerPort\":8080}]}]}}}}",
	             replicas, extra ? extra : "", image),
	    0);
	return s;
}

static answer apply(const char *path, const char *query, const char *body)
{
	char url[512];
	snprintf(url, sizeof(url), "%s?%s", path, query);
	return call(AUTH_CERT, "PATCH", url, APPLY, body);
}

static void control(const char *json)
{
	json_decref(tu_kubeapi_control(&kapi, json));
}

Test(kubeapi_server, authentication)
{
	answer a = call(AUTH_NONE, "GET", "/api", NULL, NULL);
	assert_status(&a, 401, "Unauthorized", "Unauthorized");
	answer_free(&a);
	a = call(AUTH_EXPIRED, "GET", "/api", NULL, NULL);
	assert_status(&a, 401, "Unauthorized", "Unauthorized");
	answer_free(&a);
	a = call(AUTH_TOKEN, "GET", "/api/v1/namespaces/default/configmaps", NULL, NULL);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_str_eq(str_at(a.doc, "kind", NULL, NULL), "ConfigMapList");
	answer_free(&a);
	a = call(AUTH_CERT, "GET", "/api", NULL, NULL);
	cr_assert_eq(a.status, 200, "%s", a.text);
	answer_free(&a);

	/* a token that expires while in use */
	char op[200];
	snprintf(op, sizeof(op), "{\"op\":\"expire_token\",\"token\":\"%s\"}", kapi.token);
	control(op);
	a = call(AUTH_TOKEN, "GET", "/api", NULL, NULL);
	assert_status(&a, 401, "Unauthorized", "Unauthorized");
	answer_free(&a);

	json_t *log = tu_kubeapi_requests(&kapi);
	cr_assert_eq(json_array_size(log), 5);
	const char *want_auth[] = {"none", "expired", "token", "cert", "expired"};
	const char *want_user[] = {NULL, NULL, "ci", "admin", NULL};
	for (size_t i = 0; i < 5; i++) {
		json_t *e = json_array_get(log, i);
		cr_assert_str_eq(str_at(e, "auth", NULL, NULL), want_auth[i], "entry %zu", i);
		const char *user = str_at(e, "user", NULL, NULL);
		if (want_user[i])
			cr_assert_str_eq(user, want_user[i]);
		else
			cr_assert_null(user);
	}
	cr_assert_str_eq(
	    json_string_value(json_array_get(json_object_get(json_array_get(log, 3), "groups"), 0)),
	    "system:masters");
	char *text = json_dumps(log, 0);
	cr_assert_null(strstr(text, kapi.token), "the request log holds the token");
	cr_assert_null(strstr(text, kapi.expired_token));
	free(text);
	json_decref(log);
}

/* The last request's field in the server's log ("(none)" when null). */
static const char *last_field(const char *key, char *buf, size_t size)
{
	json_t *log = tu_kubeapi_requests(&kapi);
	const char *v =
	    json_string_value(json_object_get(json_array_get(log, json_array_size(log) - 1), key));
	snprintf(buf, size, "%s", v ? v : "(none)");
	json_decref(log);
	return buf;
}

/* GET /api with token: the HTTP status (a 401 must be the API's Status). */
static long get_with(const char *token)
{
	other_token = token;
	answer a = call(AUTH_OTHER, "GET", "/api", NULL, NULL);
	long st = a.status;
	if (st == 401)
		assert_status(&a, 401, "Unauthorized", "Unauthorized");
	answer_free(&a);
	return st;
}

Test(kubeapi_server, token_rotation)
{
	const char *v1 = "rot-v1-SECRET-5e0a", *v2 = "rot-v2-SECRET-77c2",
	           *v3 = "rot-v3-SECRET-1b9d";
	char buf[64];
	control("{\"op\":\"add_token\",\"token\":\"rot-v1-SECRET-5e0a\",\"user\":"
	        "\"system:serviceaccount:default:migrate\",\"groups\":[\"system:serviceaccounts\"],"
	        "\"id\":\"v1\"}");
	cr_assert_eq(get_with(v1), 200);
	cr_assert_str_eq(last_field("token_id", buf, sizeof(buf)), "v1");
	/* the kubelet's rotation, the old token ended at once */
	control("{\"op\":\"rotate_token\",\"token\":\"rot-v1-SECRET-5e0a\",\"new\":"
	        "\"rot-v2-SECRET-77c2\",\"id\":\"v2\"}");
	cr_assert_eq(get_with(v1), 401);
	cr_assert_str_eq(last_field("auth", buf, sizeof(buf)), "expired");
	cr_assert_str_eq(last_field("token_id", buf, sizeof(buf)), "v1");
	cr_assert_eq(get_with(v2), 200);
	cr_assert_str_eq(last_field("user", buf, sizeof(buf)),
	                 "system:serviceaccount:default:migrate");
	cr_assert_str_eq(last_field("token_id", buf, sizeof(buf)), "v2");
	/* with a grace period the old one works until it runs out, as a bound token does */
	control("{\"op\":\"rotate_token\",\"token\":\"rot-v2-SECRET-77c2\",\"new\":"
	        "\"rot-v3-SECRET-1b9d\",\"id\":\"v3\",\"grace_ms\":800}");
	int64_t t0 = tu_now_ms();
	cr_assert_eq(get_with(v2), 200);
	cr_assert_lt(tu_now_ms() - t0, 800, "too slow to see the grace period");
	cr_assert_eq(get_with(v3), 200);
	long st = 200;
	for (int i = 0; i < 50 && st == 200 && tu_now_ms() - t0 < 5000; i++) {
		usleep(100 * 1000);
		st = get_with(v2);
	}
	cr_assert_eq(st, 401, "the old token still works after its grace period");
	cr_assert_geq(tu_now_ms() - t0, 800);
	/* revoked: as a token never issued */
	control("{\"op\":\"revoke_token\",\"token\":\"rot-v3-SECRET-1b9d\"}");
	cr_assert_eq(get_with(v3), 401);
	cr_assert_str_eq(last_field("auth", buf, sizeof(buf)), "invalid");
	cr_assert_str_eq(last_field("token_id", buf, sizeof(buf)), "(none)");
	/* the control API refuses what makes no sense */
	long status = 0;
	char *text = NULL;
	cr_assert_eq(tu_kubeapi_control_status(&kapi,
	                                       "{\"op\":\"rotate_token\",\"token\":\"nope-token\","
	                                       "\"new\":\"x-token\"}",
	                                       &status, &text),
	             0);
	cr_assert_eq(status, 400, "%s", text);
	free(text);
	json_t *log = tu_kubeapi_requests(&kapi);
	char *all = json_dumps(log, 0);
	cr_assert_null(strstr(all, "SECRET"), "the request log holds a token");
	free(all);
	json_decref(log);
}

Test(kubeapi_server, kubeconfig_written)
{
	FILE *f = fopen(kapi.kubeconfig, "r");
	cr_assert_not_null(f);
	char text[4096] = "";
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	char want[800];
	snprintf(want, sizeof(want), "    server: %s\n    certificate-authority: %s\n", kapi.url,
	         kapi.ca);
	cr_assert_not_null(strstr(text, want), "%s", text);
	snprintf(want, sizeof(want), "    token: %s\n", kapi.token);
	cr_assert_not_null(strstr(text, want));
	cr_assert_not_null(strstr(text, "current-context: cert\n"));
}

Test(kubeapi_server, discovery)
{
	answer a = call(AUTH_CERT, "GET", "/api", NULL, NULL);
	cr_assert_str_eq(str_at(a.doc, "kind", NULL, NULL), "APIVersions");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(a.doc, "versions"), 0)),
	                 "v1");
	answer_free(&a);

	a = call(AUTH_CERT, "GET", "/apis", NULL, NULL);
	cr_assert_str_eq(str_at(a.doc, "kind", NULL, NULL), "APIGroupList");
	char names[256] = "";
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(a.doc, "groups"), i, g)
	{
		strcat(names, str_at(g, "preferredVersion", "groupVersion", NULL));
		strcat(names, " ");
	}
	cr_assert_str_eq(names, "apps/v1 autoscaling/v2 policy/v1 networking.k8s.io/v1 "
	                        "example.com/v1 coordination.k8s.io/v1 ");
	answer_free(&a);

	a = call(AUTH_CERT, "GET", "/apis/example.com/v1", NULL, NULL);
	cr_assert_eq(a.status, 200);
	cr_assert_str_eq(str_at(a.doc, "kind", NULL, NULL), "APIResourceList");
	cr_assert_str_eq(str_at(a.doc, "groupVersion", NULL, NULL), "example.com/v1");
	json_t *r = json_array_get(json_object_get(a.doc, "resources"), 0);
	cr_assert_str_eq(str_at(r, "name", NULL, NULL), "widgets");
	cr_assert_str_eq(str_at(r, "kind", NULL, NULL), "Widget");
	cr_assert(json_is_true(json_object_get(r, "namespaced")));
	answer_free(&a);

	a = call(AUTH_CERT, "GET", "/api/v1", NULL, NULL);
	char res[256] = "";
	json_array_foreach(json_object_get(a.doc, "resources"), i, r)
	{
		if (!strchr(str_at(r, "name", NULL, NULL), '/')) {
			strcat(res, str_at(r, "name", NULL, NULL));
			strcat(res, " ");
		}
	}
	cr_assert_str_eq(res, "configmaps secrets services namespaces ");
	answer_free(&a);

	a = call(AUTH_CERT, "GET", "/apis/coordination.k8s.io/v1", NULL, NULL);
	cr_assert_eq(a.status, 200);
	cr_assert_str_eq(str_at(a.doc, "groupVersion", NULL, NULL), "coordination.k8s.io/v1");
	r = json_array_get(json_object_get(a.doc, "resources"), 0);
	cr_assert_str_eq(str_at(r, "name", NULL, NULL), "leases");
	cr_assert_str_eq(str_at(r, "kind", NULL, NULL), "Lease");
	cr_assert(json_is_true(json_object_get(r, "namespaced")));
	cr_assert_eq(json_array_size(json_object_get(a.doc, "resources")), 1, "no subresources");
	answer_free(&a);

	/* an unknown group is the mux's plain 404, not a Status */
	a = call(AUTH_CERT, "GET", "/apis/nope.example/v1", NULL, NULL);
	cr_assert_eq(a.status, 404);
	cr_assert_str_eq(a.ctype, "text/plain; charset=utf-8");
	cr_assert_str_eq(a.text, "404 page not found\n");
	answer_free(&a);
}

Test(kubeapi_server, apply_conflict_force)
{
	char *dep = deployment("nginx:1.25", 3, NULL);
	answer a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 201, "%s", a.text);
	char rv1[32];
	cr_assert_eq(int_at(a.doc, "metadata", "generation", NULL), 1);
	cr_assert_not_null(str_at(a.doc, "metadata", "uid", NULL));
	cr_assert_not_null(str_at(a.doc, "metadata", "creationTimestamp", NULL));
	json_t *mf =
	    json_array_get(json_object_get(json_object_get(a.doc, "metadata"), "managedFields"), 0);
	cr_assert_str_eq(str_at(mf, "manager", NULL, NULL), "migrate");
	cr_assert_str_eq(str_at(mf, "operation", NULL, NULL), "Apply");
	cr_assert_not_null(json_object_get(
	    json_object_get(json_object_get(mf, "fieldsV1"), "f:spec"), "f:replicas"));
	/* the server's defaults are there */
	cr_assert_eq(int_at(a.doc, "spec", "progressDeadlineSeconds", NULL), 600);
	cr_assert_str_eq(str_at(a.doc, "spec", "strategy", "type"), "RollingUpdate");
	answer_free(&a);

	/* the same apply again changes nothing: same generation (the controller's status
	 * writes move the resourceVersion of a Deployment, so that is checked on a ConfigMap) */
	a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_eq(int_at(a.doc, "metadata", "generation", NULL), 1);
	answer_free(&a);
	const char *cm = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
	                 "\"name\":\"cfg\"},\"data\":{\"a\":\"b\"}}";
	a = apply("/api/v1/namespaces/default/configmaps/cfg", "fieldManager=migrate", cm);
	cr_assert_eq(a.status, 201, "%s", a.text);
	snprintf(rv1, sizeof(rv1), "%s", str_at(a.doc, "metadata", "resourceVersion", NULL));
	answer_free(&a);
	a = apply("/api/v1/namespaces/default/configmaps/cfg", "fieldManager=migrate", cm);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_str_eq(str_at(a.doc, "metadata", "resourceVersion", NULL), rv1);
	answer_free(&a);

	/* someone scales it by hand: the next apply must not silently undo that */
	control("{\"op\":\"update\",\"path\":\"" DEP_PATH "\",\"manager\":\"kubectl-edit\","
	        "\"patch\":{\"spec\":{\"replicas\":5}}}");
	a = apply(DEP_PATH, "fieldManager=migrate", dep);
	assert_status(&a, 409, "Conflict",
	              "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: "
	              ".spec.replicas");
	json_t *cause =
	    json_array_get(json_object_get(json_object_get(a.doc, "details"), "causes"), 0);
	cr_assert_str_eq(str_at(cause, "reason", NULL, NULL), "FieldManagerConflict");
	cr_assert_str_eq(str_at(cause, "field", NULL, NULL), ".spec.replicas");
	cr_assert_str_eq(str_at(cause, "message", NULL, NULL),
	                 "conflict with \"kubectl-edit\" using apps/v1");
	answer_free(&a);
	a = call(AUTH_CERT, "GET", DEP_PATH, NULL, NULL);
	cr_assert_eq(int_at(a.doc, "spec", "replicas", NULL), 5, "a refused apply changed it");
	answer_free(&a);

	a = apply(DEP_PATH, "fieldManager=migrate&force=true", dep);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_eq(int_at(a.doc, "spec", "replicas", NULL), 3);
	json_t *mfs = json_object_get(json_object_get(a.doc, "metadata"), "managedFields");
	cr_assert_eq(json_array_size(mfs), 1, "%s", a.text);
	cr_assert_str_eq(str_at(json_array_get(mfs, 0), "manager", NULL, NULL), "migrate");
	answer_free(&a);
	free(dep);
}

Test(kubeapi_server, apply_removes_fields_it_no_longer_sends)
{
	char *dep = deployment("nginx:1.25", 2, "\"minReadySeconds\":3,");
	answer a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 201, "%s", a.text);
	answer_free(&a);
	free(dep);
	/* another manager's field survives the applier dropping its own */
	control("{\"op\":\"update\",\"path\":\"" DEP_PATH "\",\"manager\":\"kubectl-edit\","
	        "\"patch\":{\"metadata\":{\"labels\":{\"team\":\"ops\"}}}}");
	dep = deployment("nginx:1.25", 2, NULL);
	a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_null(json_object_get(json_object_get(a.doc, "spec"), "minReadySeconds"), "%s",
	               a.text);
	cr_assert_str_eq(str_at(a.doc, "metadata", "labels", "team"), "ops");
	answer_free(&a);
	free(dep);

	/* a container the applier no longer sends goes, defaulted fields and all */
	a = apply(DEP_PATH, "fieldManager=migrate",
	          "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
	          "\"name\":\"web\"},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":"
	          "\"web\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},"
	          "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"app:2\"}]}}}}");
	cr_assert_eq(a.status, 200, "%s", a.text);
	json_t *cs = json_object_get(
	    json_object_get(json_object_get(json_object_get(a.doc, "spec"), "template"), "spec"),
	    "containers");
	cr_assert_eq(json_array_size(cs), 1, "%s", a.text);
	cr_assert_str_eq(str_at(json_array_get(cs, 0), "name", NULL, NULL), "app");
	cr_assert_str_eq(str_at(json_array_get(cs, 0), "imagePullPolicy", NULL, NULL),
	                 "IfNotPresent");
	cr_assert_eq(int_at(a.doc, "spec", "replicas", NULL), 1, "replicas dropped: the default");
	answer_free(&a);
}

Test(kubeapi_server, patch_content_type_and_field_manager)
{
	char *dep = deployment("nginx:1.25", 1, NULL);
	answer a =
	    call(AUTH_CERT, "PATCH", DEP_PATH "?fieldManager=migrate", "application/json", dep);
	assert_status(&a, 415, "UnsupportedMediaType",
	              "the body of the request was in an unknown format - accepted media types "
	              "include: application/json-patch+json, application/merge-patch+json, "
	              "application/strategic-merge-patch+json, application/apply-patch+yaml");
	answer_free(&a);
	a = call(AUTH_CERT, "PATCH", DEP_PATH "?fieldManager=migrate", NULL, dep);
	cr_assert_eq(a.status, 415, "%s", a.text);
	answer_free(&a);

	/* the real server's answer: 422 for the PatchOptions, not 400 */
	a = call(AUTH_CERT, "PATCH", DEP_PATH, APPLY, dep);
	assert_status(&a, 422, "Invalid",
	              "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is "
	              "required for apply patch");
	cr_assert_str_eq(str_at(a.doc, "details", "kind", NULL), "PatchOptions");
	answer_free(&a);

	a = call(AUTH_CERT, "PATCH", DEP_PATH "?fieldManager=migrate&dryRun=Yes", APPLY, dep);
	assert_status(&a, 422, "Invalid", NULL);
	answer_free(&a);

	a = apply(DEP_PATH, "fieldManager=migrate", "apiVersion: apps/v1\nkind: Deployment\n");
	assert_status(&a, 400, "BadRequest", NULL);
	cr_assert_not_null(strstr(str_at(a.doc, "message", NULL, NULL),
	                          "this test server reads the JSON form of YAML only"));
	answer_free(&a);

	/* the URL and the body must name the same object */
	a = apply("/apis/apps/v1/namespaces/default/deployments/other", "fieldManager=m", dep);
	assert_status(&a, 400, "BadRequest",
	              "the name of the object (web) does not match the name on the URL (other)");
	answer_free(&a);
	a = apply("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web",
	          "fieldManager=m", dep);
	assert_status(&a, 400, "BadRequest",
	              "the API version in the data (apps/v1) does not match the expected API "
	              "version (autoscaling/v2)");
	answer_free(&a);
	free(dep);
}

static const char *cause_field(const answer *a, size_t i, const char **reason)
{
	json_t *c =
	    json_array_get(json_object_get(json_object_get(a->doc, "details"), "causes"), i);
	*reason = str_at(c, "reason", NULL, NULL);
	return str_at(c, "field", NULL, NULL);
}

Test(kubeapi_server, validation)
{
	answer a = apply("/apis/apps/v1/namespaces/default/deployments/Web_1", "fieldManager=m",
	                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
	                 "\"name\":\"Web_1\",\"labels\":{\"app\":\"-bad-\"}},\"spec\":{"
	                 "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},"
	                 "\"spec\":{\"containers\":[{\"name\":\"web\"}]}}}}");
	assert_status(&a, 422, "Invalid", NULL);
	cr_assert_str_eq(str_at(a.doc, "details", "kind", NULL), "Deployment");
	cr_assert_str_eq(str_at(a.doc, "details", "group", NULL), "apps");
	const char *want[][2] = {{"metadata.name", "FieldValueInvalid"},
	                         {"metadata.labels", "FieldValueInvalid"},
	                         {"spec.selector", "FieldValueRequired"},
	                         {"spec.template.spec.containers[0].image", "FieldValueRequired"}};
	json_t *causes = json_object_get(json_object_get(a.doc, "details"), "causes");
	cr_assert_eq(json_array_size(causes), 4, "%s", a.text);
	for (size_t i = 0; i < 4; i++) {
		const char *reason, *field = cause_field(&a, i, &reason);
		cr_assert_str_eq(field, want[i][0]);
		cr_assert_str_eq(reason, want[i][1]);
	}
	cr_assert(strncmp(str_at(a.doc, "message", NULL, NULL),
	                  "Deployment.apps \"Web_1\" is invalid: [metadata.name: Invalid value: "
	                  "\"Web_1\": a lowercase RFC 1123 subdomain",
	                  95) == 0,
	          "%s", str_at(a.doc, "message", NULL, NULL));
	answer_free(&a);

	a = apply("/apis/apps/v1/namespaces/default/deployments/web", "fieldManager=m",
	          "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
	          "\"name\":\"web\"},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
	          "\"template\":{\"metadata\":{\"labels\":{\"app\":\"other\"}},"
	          "\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx\"}]}}}}");
	assert_status(&a, 422, "Invalid",
	              "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid "
	              "value: map[string]string{\"app\":\"other\"}: `selector` does not match "
	              "template `labels`");
	answer_free(&a);

	a = apply("/api/v1/namespaces/default/services/web", "fieldManager=m",
	          "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\"},"
	          "\"spec\":{\"selector\":{\"app\":\"web\"}}}");
	assert_status(&a, 422, "Invalid", "Service \"web\" is invalid: spec.ports: Required value");
	answer_free(&a);

	a = apply("/api/v1/namespaces/default/configmaps/cfg", "fieldManager=m",
	          "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cfg\"},"
	          "\"data\":{\"nginx conf\":\"x\"}}");
	assert_status(&a, 422, "Invalid", NULL);
	const char *reason, *field = cause_field(&a, 0, &reason);
	cr_assert_str_eq(field, "data[nginx conf]");
	answer_free(&a);

	a = apply("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web",
	          "fieldManager=m",
	          "{\"apiVersion\":\"autoscaling/v2\",\"kind\":\"HorizontalPodAutoscaler\","
	          "\"metadata\":{\"name\":\"web\"},\"spec\":{\"maxReplicas\":0}}");
	assert_status(&a, 422, "Invalid", NULL);
	const char *hpa[] = {"spec.scaleTargetRef.kind", "spec.scaleTargetRef.name",
	                     "spec.maxReplicas"};
	for (size_t i = 0; i < 3; i++)
		cr_assert_str_eq(cause_field(&a, i, &reason), hpa[i]);
	answer_free(&a);

	a = apply("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web", "fieldManager=m",
	          "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\","
	          "\"metadata\":{\"name\":\"web\"},\"spec\":{\"minAvailable\":1,"
	          "\"maxUnavailable\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}}");
	assert_status(&a, 422, "Invalid", NULL);
	cr_assert_not_null(strstr(a.text, "minAvailable and maxUnavailable cannot be both set"));
	answer_free(&a);

	/* nothing invalid was stored */
	a = call(AUTH_CERT, "GET", "/api/v1/namespaces/default/configmaps", NULL, NULL);
	cr_assert_eq(json_array_size(json_object_get(a.doc, "items")), 0);
	answer_free(&a);
}

Test(kubeapi_server, not_found)
{
	answer a = apply("/api/v1/namespaces/nope/configmaps/cfg", "fieldManager=m",
	                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
	                 "\"name\":\"cfg\"},\"data\":{\"a\":\"b\"}}");
	assert_status(&a, 404, "NotFound", "namespaces \"nope\" not found");
	cr_assert_str_eq(str_at(a.doc, "details", "kind", NULL), "namespaces");
	answer_free(&a);
	/* "staging" was given on the command line */
	a = apply("/api/v1/namespaces/staging/configmaps/cfg", "fieldManager=m",
	          "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
	          "\"name\":\"cfg\"},\"data\":{\"a\":\"b\"}}");
	cr_assert_eq(a.status, 201, "%s", a.text);
	answer_free(&a);

	a = call(AUTH_CERT, "GET", "/apis/apps/v1/namespaces/default/replicasets/db", NULL, NULL);
	assert_status(&a, 404, "NotFound", "the server could not find the requested resource");
	answer_free(&a);
	a = call(AUTH_CERT, "GET", "/apis/apps/v1/namespaces/default/deployments/nothere", NULL,
	         NULL);
	assert_status(&a, 404, "NotFound", "deployments.apps \"nothere\" not found");
	cr_assert_str_eq(str_at(a.doc, "details", "group", NULL), "apps");
	answer_free(&a);
	a = call(AUTH_CERT, "GET", "/api/v1/namespaces/nope", NULL, NULL);
	assert_status(&a, 404, "NotFound", "namespaces \"nope\" not found");
	answer_free(&a);
}

Test(kubeapi_server, dry_run_persists_nothing)
{
	char *dep = deployment("nginx:1.25", 2, NULL);
	answer a = apply(DEP_PATH, "fieldManager=migrate&dryRun=All", dep);
	cr_assert_eq(a.status, 201, "%s", a.text);
	cr_assert_str_eq(str_at(a.doc, "metadata", "name", NULL), "web");
	cr_assert_eq(int_at(a.doc, "spec", "replicas", NULL), 2);
	answer_free(&a);
	a = call(AUTH_CERT, "GET", DEP_PATH, NULL, NULL);
	cr_assert_eq(a.status, 404, "a dry run created it");
	answer_free(&a);

	a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 201);
	char rv[32];
	snprintf(rv, sizeof(rv), "%s", str_at(a.doc, "metadata", "resourceVersion", NULL));
	answer_free(&a);
	free(dep);
	dep = deployment("nginx:1.26", 2, NULL);
	a = apply(DEP_PATH, "fieldManager=migrate&dryRun=All", dep);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_eq(int_at(a.doc, "metadata", "generation", NULL), 2,
	             "the dry run's answer is "
	             "the object as it would be");
	answer_free(&a);
	/* conflicts are checked in a dry run too */
	control("{\"op\":\"update\",\"path\":\"" DEP_PATH "\",\"manager\":\"kubectl-edit\","
	        "\"patch\":{\"spec\":{\"replicas\":4}}}");
	a = apply(DEP_PATH, "fieldManager=migrate&dryRun=All", dep);
	cr_assert_eq(a.status, 409, "%s", a.text);
	answer_free(&a);
	a = call(AUTH_CERT, "GET", DEP_PATH, NULL, NULL);
	json_t *c = json_array_get(
	    json_object_get(
	        json_object_get(json_object_get(json_object_get(a.doc, "spec"), "template"),
	                        "spec"),
	        "containers"),
	    0);
	cr_assert_str_eq(str_at(c, "image", NULL, NULL), "nginx:1.25");
	cr_assert_eq(int_at(a.doc, "metadata", "generation", NULL), 2, "only the update bumped it");
	cr_assert_str_neq(str_at(a.doc, "metadata", "resourceVersion", NULL), rv);
	answer_free(&a);
	free(dep);
}

/* The Deployment's status now, for a rollout test. */
typedef struct {
	json_int_t generation, observed, replicas, updated, available;
	char progressing[64]; /* Progressing's reason */
	char progressing_status[8];
} rollout;

static rollout rollout_now(void)
{
	answer a = call(AUTH_CERT, "GET", DEP_PATH, NULL, NULL);
	cr_assert_eq(a.status, 200, "%s", a.text);
	rollout r = {0};
	r.generation = int_at(a.doc, "metadata", "generation", NULL);
	r.observed = int_at(a.doc, "status", "observedGeneration", NULL);
	r.replicas = int_at(a.doc, "status", "replicas", NULL);
	r.updated = int_at(a.doc, "status", "updatedReplicas", NULL);
	r.available = int_at(a.doc, "status", "availableReplicas", NULL);
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(json_object_get(a.doc, "status"), "conditions"), i, c)
	{
		if (strcmp(str_at(c, "type", NULL, NULL), "Progressing") == 0) {
			snprintf(r.progressing, sizeof(r.progressing), "%s",
			         str_at(c, "reason", NULL, NULL));
			snprintf(r.progressing_status, sizeof(r.progressing_status), "%s",
			         str_at(c, "status", NULL, NULL));
		}
	}
	answer_free(&a);
	return r;
}

Test(kubeapi_server, deployment_rolls_out_over_time)
{
	control("{\"op\":\"settings\",\"per_replica_ms\":60,\"observe_ms\":30}");
	char *dep = deployment("nginx:1.25", 3, NULL);
	answer a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 201);
	/* the controller has not seen it yet: a client must wait for observedGeneration */
	cr_assert_eq(int_at(a.doc, "metadata", "generation", NULL), 1);
	cr_assert_null(json_object_get(json_object_get(a.doc, "status"), "observedGeneration"));
	answer_free(&a);
	free(dep);
	rollout r = {0};
	bool saw_partial = false;
	int64_t end = tu_now_ms() + 5000;
	while (tu_now_ms() < end) {
		r = rollout_now();
		if (r.observed == 1 && r.available > 0 && r.available < 3)
			saw_partial = true;
		if (r.available == 3 && strcmp(r.progressing, "NewReplicaSetAvailable") == 0)
			break;
		usleep(5000);
	}
	cr_assert_eq(r.available, 3);
	cr_assert_eq(r.updated, 3);
	cr_assert_str_eq(r.progressing, "NewReplicaSetAvailable");
	cr_assert(saw_partial, "replicas did not become available one by one");

	/* a new image: old pods terminate while new ones come up */
	dep = deployment("nginx:1.26", 3, NULL);
	a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 200);
	cr_assert_eq(int_at(a.doc, "metadata", "generation", NULL), 2);
	cr_assert_eq(int_at(a.doc, "status", "observedGeneration", NULL), 1);
	cr_assert_eq(int_at(a.doc, "status", "availableReplicas", NULL), 3);
	answer_free(&a);
	free(dep);
	bool saw_old = false, saw_updating = false;
	end = tu_now_ms() + 5000;
	while (tu_now_ms() < end) {
		r = rollout_now();
		if (r.observed == 2 && r.replicas > r.updated)
			saw_old = true;
		if (r.observed == 2 && strcmp(r.progressing, "ReplicaSetUpdated") == 0)
			saw_updating = true;
		if (r.observed == 2 && r.updated == 3 && r.replicas == 3 && r.available == 3 &&
		    strcmp(r.progressing, "NewReplicaSetAvailable") == 0)
			break;
		usleep(5000);
	}
	cr_assert_eq(r.observed, 2);
	cr_assert_eq(r.replicas, 3);
	cr_assert_str_eq(r.progressing, "NewReplicaSetAvailable");
	cr_assert(saw_old, "never saw old replicas terminating");
	cr_assert(saw_updating);
}

Test(kubeapi_server, failing_rollout_exceeds_deadline)
{
	/* progressDeadlineSeconds 20 is 0.2 s here (deadline_scale 0.01) */
	char *dep =
	    deployment("registry.example/app:fail-rollout", 2, "\"progressDeadlineSeconds\":20,");
	answer a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 201);
	answer_free(&a);
	free(dep);
	rollout r = {0};
	int64_t start = tu_now_ms(), end = start + 5000;
	while (tu_now_ms() < end) {
		r = rollout_now();
		if (strcmp(r.progressing, "ProgressDeadlineExceeded") == 0)
			break;
		usleep(10000);
	}
	cr_assert_str_eq(r.progressing, "ProgressDeadlineExceeded");
	cr_assert_str_eq(r.progressing_status, "False");
	cr_assert_eq(r.available, 0);
	cr_assert_geq(tu_now_ms() - start, 150, "the deadline came too early");

	/* or by the control API, for an image that would roll out */
	dep = deployment("nginx:1.27", 2, "\"progressDeadlineSeconds\":20,");
	control("{\"op\":\"rollout\",\"name\":\"web\",\"fail\":true}");
	a = apply(DEP_PATH, "fieldManager=migrate", dep);
	cr_assert_eq(a.status, 200);
	answer_free(&a);
	free(dep);
	end = tu_now_ms() + 5000;
	while (tu_now_ms() < end) {
		r = rollout_now();
		if (r.observed == 2 && strcmp(r.progressing, "ProgressDeadlineExceeded") == 0)
			break;
		usleep(10000);
	}
	cr_assert_eq(r.observed, 2);
	cr_assert_str_eq(r.progressing, "ProgressDeadlineExceeded");
}

Test(kubeapi_server, injected_faults)
{
	control("{\"op\":\"fault\",\"path\":\"/configmaps\",\"status\":429,\"retry_after\":1}");
	answer a = call(AUTH_CERT, "GET", "/api/v1/namespaces/default/configmaps", NULL, NULL);
	assert_status(&a, 429, "TooManyRequests", NULL);
	cr_assert_str_eq(a.retry, "1");
	answer_free(&a);
	a = call(AUTH_CERT, "GET", "/api/v1/namespaces/default/configmaps", NULL, NULL);
	cr_assert_eq(a.status, 200, "a fault is used once");
	answer_free(&a);
	control("{\"op\":\"fault\",\"method\":\"PATCH\",\"kind\":\"content_type\"}");
	a = call(AUTH_CERT, "PATCH", DEP_PATH "?fieldManager=m", APPLY, "{}");
	cr_assert_eq(a.status, 200);
	cr_assert_str_eq(a.ctype, "text/html");
	answer_free(&a);
	json_t *log = tu_kubeapi_requests(&kapi);
	json_t *last = json_array_get(log, json_array_size(log) - 1);
	cr_assert_str_eq(str_at(last, "content_type", NULL, NULL), APPLY);
	cr_assert_str_eq(str_at(last, "query", "fieldManager", NULL), "m");
	json_decref(log);
}

/* A StatefulSet or DaemonSet ("StatefulSet"/"DaemonSet") named name; extra goes into spec. */
static char *workload(const char *kind, const char *name, const char *image, const char *extra)
{
	char *s = NULL;
	cr_assert_geq(asprintf(&s,
	                       "{\"apiVersion\":\"apps/v1\",\"kind\":\"%s\","
	                       "\"metadata\":{\"name\":\"%s\",\"labels\":{\"app\":\"%s\"}},"
	                       "\"spec\":{%s\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},"
	                       "\"template\":{\"metadata\":{\"labels\":{\"app\":\"%s\"}},"
	                       "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"%s\"}]}}}}",
	                       kind, name, name, extra ? extra : "", name, name, image),
	              0);
	return s;
}

static const char *wpath(const char *resource, const char *name)
{
	return tu_at("/apis/apps/v1/namespaces/default/%s/%s", resource, name);
}

static void apply_workload(const char *kind, const char *resource, const char *name,
                           const char *image, const char *extra, long want)
{
	char *w = workload(kind, name, image, extra);
	answer a = apply(wpath(resource, name), "fieldManager=migrate", w);
	cr_assert_eq(a.status, want, "%s", a.text);
	answer_free(&a);
	free(w);
}

Test(kubeapi_server, statefulset_and_daemonset_roll_out_over_time)
{
	control("{\"op\":\"settings\",\"per_replica_ms\":30,\"observe_ms\":20}");
	apply_workload("StatefulSet", "statefulsets", "db", "nginx:1.25", "\"replicas\":3,", 201);
	apply_workload("DaemonSet", "daemonsets", "agent", "nginx:1.25", NULL, 201);
	answer a = call(AUTH_CERT, "GET", wpath("statefulsets", "db"), NULL, NULL);
	cr_assert_str_eq(str_at(a.doc, "spec", "updateStrategy", "type"), "RollingUpdate",
	                 "defaulted as the real server does");
	cr_assert_eq(int_at(a.doc, "metadata", "generation", NULL), 1);
	answer_free(&a);
	bool sts_partial = false, ds_partial = false, sts_done = false, ds_done = false;
	int64_t end = tu_now_ms() + 10000;
	while (tu_now_ms() < end && !(sts_done && ds_done)) {
		a = call(AUTH_CERT, "GET", wpath("statefulsets", "db"), NULL, NULL);
		json_int_t ready = int_at(a.doc, "status", "readyReplicas", NULL);
		if (ready > 0 && ready < 3)
			sts_partial = true;
		sts_done = ready == 3 && int_at(a.doc, "status", "updatedReplicas", NULL) == 3 &&
		           int_at(a.doc, "status", "observedGeneration", NULL) == 1;
		answer_free(&a);
		a = call(AUTH_CERT, "GET", wpath("daemonsets", "agent"), NULL, NULL);
		json_int_t avail = int_at(a.doc, "status", "numberAvailable", NULL);
		cr_assert_eq(int_at(a.doc, "status", "desiredNumberScheduled", NULL),
		             int_at(a.doc, "status", "observedGeneration", NULL) ? 3 : 0);
		if (avail > 0 && avail < 3)
			ds_partial = true;
		ds_done =
		    avail == 3 && int_at(a.doc, "status", "updatedNumberScheduled", NULL) == 3;
		answer_free(&a);
		usleep(5000);
	}
	cr_assert(sts_done && ds_done);
	cr_assert(sts_partial && ds_partial, "pods did not come up one by one");

	/* a new image: updateRevision moves at once, currentRevision only when all are updated */
	apply_workload("StatefulSet", "statefulsets", "db", "nginx:1.26", "\"replicas\":3,", 200);
	bool saw_split = false;
	end = tu_now_ms() + 10000;
	while (tu_now_ms() < end) {
		a = call(AUTH_CERT, "GET", wpath("statefulsets", "db"), NULL, NULL);
		const char *cur = str_at(a.doc, "status", "currentRevision", NULL);
		const char *upd = str_at(a.doc, "status", "updateRevision", NULL);
		bool observed = int_at(a.doc, "status", "observedGeneration", NULL) == 2;
		if (observed && cur && upd && strcmp(cur, upd) != 0)
			saw_split = true;
		bool done = observed && cur && upd && !strcmp(cur, upd) &&
		            int_at(a.doc, "status", "updatedReplicas", NULL) == 3;
		answer_free(&a);
		if (done)
			break;
		usleep(5000);
	}
	cr_assert(saw_split, "never saw currentRevision behind updateRevision");
	a = call(AUTH_CERT, "GET", wpath("statefulsets", "db"), NULL, NULL);
	cr_assert_str_eq(str_at(a.doc, "status", "currentRevision", NULL),
	                 str_at(a.doc, "status", "updateRevision", NULL));
	answer_free(&a);

	/* a failing image never gets ready: stuck, with no deadline condition */
	apply_workload("DaemonSet", "daemonsets", "agent", "registry.example/a:fail-rollout", NULL,
	               200);
	usleep(500000);
	a = call(AUTH_CERT, "GET", wpath("daemonsets", "agent"), NULL, NULL);
	cr_assert_eq(int_at(a.doc, "status", "observedGeneration", NULL), 2);
	cr_assert_lt(int_at(a.doc, "status", "numberAvailable", NULL), 3);
	cr_assert_lt(int_at(a.doc, "status", "updatedNumberScheduled", NULL), 3);
	cr_assert_null(json_object_get(json_object_get(a.doc, "status"), "conditions"));
	answer_free(&a);
}

/* Debian's real kubectl against the stand-in: its rollout status lists, then watches. */
static tu_output kubectl(const char *a1, const char *a2, const char *a3, const char *a4)
{
	char kc[600], cache[600];
	snprintf(kc, sizeof(kc), "--kubeconfig=%s", kapi.kubeconfig);
	snprintf(cache, sizeof(cache), "--cache-dir=%s/kcache", dir);
	char *argv[] = {"/usr/bin/kubectl", kc,         cache,      (char *)a1,
	                (char *)a2,         (char *)a3, (char *)a4, NULL};
	return tu_capture(argv);
}

Test(kubeapi_server, kubectl_rollout_status_statefulset_and_daemonset)
{
	if (access("/usr/bin/kubectl", X_OK) != 0)
		cr_skip_test("no /usr/bin/kubectl");
	control("{\"op\":\"settings\",\"per_replica_ms\":40,\"observe_ms\":20}");
	apply_workload("StatefulSet", "statefulsets", "db", "nginx:1.25", "\"replicas\":3,", 201);
	apply_workload("DaemonSet", "daemonsets", "agent", "nginx:1.25", NULL, 201);
	tu_output r = kubectl("rollout", "status", "statefulset/db", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "statefulset rolling update complete 3 pods at revision db-") ||
	              strstr(r.out, "partitioned roll out complete: 3 new pods have been updated"),
	          "%s", r.out);
	tu_output_free(&r);
	r = kubectl("rollout", "status", "daemonset/agent", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "daemon set \"agent\" successfully rolled out"), "%s", r.out);
	tu_output_free(&r);

	/* stuck: kubectl's own timeout ends it */
	apply_workload("StatefulSet", "statefulsets", "db", "registry.example/db:fail-rollout",
	               "\"replicas\":3,", 200);
	r = kubectl("rollout", "status", "statefulset/db", "--timeout=1s");
	cr_assert_neq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "timed out waiting for the condition"), "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "Waiting for 1 pods to be ready"), "%s", r.out);
	tu_output_free(&r);

	/* OnDelete: kubectl refuses, as migrate does */
	apply_workload("DaemonSet", "daemonsets", "manual", "nginx:1.25",
	               "\"updateStrategy\":{\"type\":\"OnDelete\"},", 201);
	r = kubectl("rollout", "status", "daemonset/manual", NULL);
	cr_assert_neq(r.status, 0);
	cr_assert(strstr(r.err, "rollout status is only available for RollingUpdate strategy type"),
	          "%s", r.err);
	tu_output_free(&r);

	/* it watched: a list, then a watch, both selecting by name */
	json_t *log = tu_kubeapi_requests(&kapi);
	size_t i, watches = 0;
	json_t *e;
	json_array_foreach(log, i, e)
	{
		json_t *q = json_object_get(e, "query");
		if (json_is_string(json_object_get(q, "watch")) &&
		    strstr(str_at(e, "path", NULL, NULL), "/statefulsets"))
			watches++;
	}
	cr_assert_geq(watches, 1);
	json_decref(log);
}

/* ---- the plain verbs on Leases and ConfigMaps (issue 14's state backend) ---- */

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define CMS    "/api/v1/namespaces/default/configmaps"
#define JSON   "application/json"

static char *lease(const char *name, const char *holder, const char *rv, const char *uid,
                   const char *renew, int duration)
{
	char *s = NULL;
	cr_assert_geq(asprintf(&s,
	                       "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
	                       "\"metadata\":{\"name\":\"%s\"%s%s%s%s%s%s},"
	                       "\"spec\":{\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":%d,"
	                       "\"acquireTime\":\"%s\",\"renewTime\":\"%s\","
	                       "\"leaseTransitions\":0}}",
	                       name, rv ? ",\"resourceVersion\":\"" : "", rv ? rv : "",
	                       rv ? "\"" : "", uid ? ",\"uid\":\"" : "", uid ? uid : "",
	                       uid ? "\"" : "", holder, duration, renew, renew),
	              0);
	return s;
}

static char *rv_of(const answer *a)
{
	const char *rv = str_at(a->doc, "metadata", "resourceVersion", NULL);
	cr_assert_not_null(rv, "%s", a->text);
	return strdup(rv);
}

Test(kubeapi_server, lease_create_get_update_delete)
{
	char *l = lease("lock", "ann@laptop", NULL, NULL, "2026-12-05T09:00:00.123456+02:00", 15);
	answer a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	cr_assert_eq(a.status, 201, "%s", a.text);
	cr_assert_str_eq(str_at(a.doc, "kind", NULL, NULL), "Lease");
	/* MicroTime is stored in UTC with six fraction digits, as the real server writes it */
	cr_assert_str_eq(str_at(a.doc, "spec", "renewTime", NULL), "2026-12-05T07:00:00.123456Z");
	cr_assert_eq(int_at(a.doc, "spec", "leaseDurationSeconds", NULL), 15);
	char *rv1 = rv_of(&a), *uid = strdup(str_at(a.doc, "metadata", "uid", NULL));
	answer_free(&a);

	/* a second create: AlreadyExists, with the real server's Status */
	a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	assert_status(&a, 409, "AlreadyExists",
	              "leases.coordination.k8s.io \"lock\" already exists");
	cr_assert_str_eq(str_at(a.doc, "details", "name", NULL), "lock");
	cr_assert_str_eq(str_at(a.doc, "details", "group", NULL), "coordination.k8s.io");
	cr_assert_str_eq(str_at(a.doc, "details", "kind", NULL), "leases");
	answer_free(&a);
	free(l);

	/* a create of an object that was read (it has a resourceVersion): the storage's plain
	 * error, a 500 without a reason; another namespace than the URL's: 400 */
	l = lease("lock2", "x", "5", NULL, "2026-12-05T09:00:00.000000Z", 15);
	a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	cr_assert_eq(a.status, 500, "%s", a.text);
	cr_assert_str_eq(str_at(a.doc, "message", NULL, NULL),
	                 "resourceVersion should not be set on objects to be created");
	cr_assert_null(json_object_get(a.doc, "reason"));
	answer_free(&a);
	free(l);
	a = call(AUTH_CERT, "POST", LEASES, JSON,
	         "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
	         "\"metadata\":{\"name\":\"lock2\",\"namespace\":\"staging\"}}");
	assert_status(&a, 400, "BadRequest",
	              "the namespace of the provided object does not match the namespace sent on "
	              "the request");
	answer_free(&a);

	/* MicroTime without its six digits does not decode; a zero duration is invalid */
	l = lease("other", "x", NULL, NULL, "2026-12-05T09:00:00Z", 15);
	a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	assert_status(&a, 400, "BadRequest", NULL);
	cr_assert(strstr(str_at(a.doc, "message", NULL, NULL),
	                 "parsing time \"2026-12-05T09:00:00Z\" as "
	                 "\"2006-01-02T15:04:05.000000Z07:00\""),
	          "%s", a.text);
	answer_free(&a);
	free(l);
	l = lease("other", "x", NULL, NULL, "2026-12-05T09:00:00.000000Z", 0);
	a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	assert_status(&a, 422, "Invalid",
	              "Lease.coordination.k8s.io \"other\" is invalid: spec.leaseDurationSeconds: "
	              "Invalid value: 0: must be greater than 0");
	answer_free(&a);
	free(l);

	/* a Lease's update needs a resourceVersion (AllowUnconditionalUpdate is false) */
	l = lease("lock", "bob@ci", NULL, NULL, "2026-12-05T07:00:01.000000Z", 15);
	a = call(AUTH_CERT, "PUT", LEASES "/lock", JSON, l);
	assert_status(&a, 422, "Invalid",
	              "leases.coordination.k8s.io \"lock\" is invalid: metadata.resourceVersion: "
	              "Invalid value: 0x0: must be specified for an update");
	answer_free(&a);
	free(l);

	/* the current one wins once; the same base again is a conflict and changes nothing */
	l = lease("lock", "ann@laptop", rv1, uid, "2026-12-05T07:00:05.000000Z", 15);
	a = call(AUTH_CERT, "PUT", LEASES "/lock", JSON, l);
	cr_assert_eq(a.status, 200, "%s", a.text);
	char *rv2 = rv_of(&a);
	cr_assert_str_neq(rv2, rv1);
	answer_free(&a);
	free(l);
	l = lease("lock", "bob@ci", rv1, uid, "2026-12-05T07:00:06.000000Z", 15);
	a = call(AUTH_CERT, "PUT", LEASES "/lock", JSON, l);
	assert_status(&a, 409, "Conflict",
	              "Operation cannot be fulfilled on leases.coordination.k8s.io \"lock\": the "
	              "object has been modified; please apply your changes to the latest version "
	              "and try again");
	answer_free(&a);
	free(l);
	a = call(AUTH_CERT, "GET", LEASES "/lock", NULL, NULL);
	cr_assert_eq(a.status, 200);
	cr_assert_str_eq(str_at(a.doc, "spec", "holderIdentity", NULL), "ann@laptop");
	cr_assert_str_eq(str_at(a.doc, "metadata", "resourceVersion", NULL), rv2);
	answer_free(&a);

	/* a list of Leases */
	a = call(AUTH_CERT, "GET", LEASES, NULL, NULL);
	cr_assert_eq(a.status, 200);
	cr_assert_str_eq(str_at(a.doc, "kind", NULL, NULL), "LeaseList");
	cr_assert_eq(json_array_size(json_object_get(a.doc, "items")), 1);
	answer_free(&a);

	/* delete: a stale precondition is refused and deletes nothing */
	char *del = NULL;
	cr_assert_geq(asprintf(&del,
	                       "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
	                       "\"preconditions\":{\"resourceVersion\":\"%s\"}}",
	                       rv1),
	              0);
	a = call(AUTH_CERT, "DELETE", LEASES "/lock", JSON, del);
	assert_status(&a, 409, "Conflict", NULL);
	char want[300];
	snprintf(want, sizeof(want),
	         "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in "
	         "object meta: %s",
	         rv1, rv2);
	cr_assert(strstr(str_at(a.doc, "message", NULL, NULL), want), "%s", a.text);
	cr_assert(strstr(str_at(a.doc, "message", NULL, NULL),
	                 "Operation cannot be fulfilled on leases.coordination.k8s.io \"lock\": "),
	          "%s", a.text);
	answer_free(&a);
	free(del);
	a = call(AUTH_CERT, "GET", LEASES "/lock", NULL, NULL);
	cr_assert_eq(a.status, 200, "still there");
	answer_free(&a);
	cr_assert_geq(asprintf(&del, "{\"preconditions\":{\"resourceVersion\":\"%s\"}}", rv2), 0);
	a = call(AUTH_CERT, "DELETE", LEASES "/lock", JSON, del);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_str_eq(str_at(a.doc, "status", NULL, NULL), "Success");
	answer_free(&a);
	free(del);
	a = call(AUTH_CERT, "GET", LEASES "/lock", NULL, NULL);
	assert_status(&a, 404, "NotFound", "leases.coordination.k8s.io \"lock\" not found");
	answer_free(&a);

	/* a PUT creates a missing Lease, but not with the uid of the one that was deleted */
	l = lease("lock", "bob@ci", rv2, uid, "2026-12-05T07:00:09.000000Z", 15);
	a = call(AUTH_CERT, "PUT", LEASES "/lock", JSON, l);
	assert_status(&a, 409, "Conflict", NULL);
	cr_assert(strstr(str_at(a.doc, "message", NULL, NULL), "Precondition failed: UID"), "%s",
	          a.text);
	answer_free(&a);
	free(l);
	l = lease("lock", "bob@ci", NULL, NULL, "2026-12-05T07:00:09.000000Z", 15);
	a = call(AUTH_CERT, "PUT", LEASES "/lock", JSON, l);
	cr_assert_eq(a.status, 201, "%s", a.text);
	answer_free(&a);
	free(l);
	free(rv1);
	free(rv2);
	free(uid);
}

static char *cm(const char *name, const char *labels, const char *rv, const char *value)
{
	char *s = NULL;
	cr_assert_geq(asprintf(&s,
	                       "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
	                       "\"name\":\"%s\",\"labels\":{%s}%s%s%s},\"data\":{\"v\":\"%s\"}}",
	                       name, labels ? labels : "", rv ? ",\"resourceVersion\":\"" : "",
	                       rv ? rv : "", rv ? "\"" : "", value),
	              0);
	return s;
}

static void post_cm(const char *name, const char *labels)
{
	char *c = cm(name, labels, NULL, "x");
	answer a = call(AUTH_CERT, "POST", CMS, JSON, c);
	cr_assert_eq(a.status, 201, "%s", a.text);
	answer_free(&a);
	free(c);
}

/* The names a list with this (already URL-escaped) labelSelector gives, space-separated. */
static const char *listed(const char *selector)
{
	static char names[512];
	answer a = call(AUTH_CERT, "GET", tu_at("%s?labelSelector=%s", CMS, selector), NULL, NULL);
	cr_assert_eq(a.status, 200, "%s: %s", selector, a.text);
	names[0] = '\0';
	size_t i;
	json_t *it;
	json_array_foreach(json_object_get(a.doc, "items"), i, it)
	{
		strcat(names, str_at(it, "metadata", "name", NULL));
		strcat(names, " ");
	}
	answer_free(&a);
	return names;
}

Test(kubeapi_server, configmap_update_and_label_selectors)
{
	post_cm("state", "\"app.kubernetes.io/managed-by\":\"migrate\",\"migrate/kind\":\"state\"");
	post_cm("journal-0",
	        "\"app.kubernetes.io/managed-by\":\"migrate\",\"migrate/kind\":\"journal\"");
	post_cm("journal-1", "\"app.kubernetes.io/managed-by\":\"migrate\",\"migrate/kind\":"
	                     "\"journal\",\"migrate/sealed\":\"true\"");
	post_cm("other", "\"app.kubernetes.io/managed-by\":\"helm\"");
	post_cm("bare", NULL);

	cr_assert_str_eq(listed("app.kubernetes.io%2Fmanaged-by%3Dmigrate"),
	                 "journal-0 journal-1 state ");
	cr_assert_str_eq(listed("app.kubernetes.io%2Fmanaged-by%3D%3Dmigrate"),
	                 "journal-0 journal-1 state ");
	cr_assert_str_eq(listed("app.kubernetes.io%2Fmanaged-by%21%3Dmigrate"), "bare other ");
	cr_assert_str_eq(listed("app.kubernetes.io%2Fmanaged-by"),
	                 "journal-0 journal-1 other state ");
	cr_assert_str_eq(listed("%21app.kubernetes.io%2Fmanaged-by"), "bare ");
	cr_assert_str_eq(listed("migrate%2Fkind%20in%20%28journal%2C%20state%29"),
	                 "journal-0 journal-1 state ");
	cr_assert_str_eq(listed("migrate%2Fkind%20notin%20%28journal%29"), "bare other state ");
	cr_assert_str_eq(listed("migrate%2Fkind%3Djournal%2C%21migrate%2Fsealed"), "journal-0 ");
	cr_assert_str_eq(listed("migrate%2Fkind%3Dnone"), "");
	answer a = call(AUTH_CERT, "GET", CMS "?labelSelector=a%20in%20%28%29", NULL, NULL);
	assert_status(&a, 400, "BadRequest", NULL);
	answer_free(&a);

	/* a ConfigMap's update without resourceVersion is unconditional, as on a real server */
	char *c = cm("state", NULL, NULL, "second");
	a = call(AUTH_CERT, "PUT", CMS "/state", JSON, c);
	cr_assert_eq(a.status, 200, "%s", a.text);
	char *rv = rv_of(&a);
	answer_free(&a);
	free(c);
	c = cm("state", NULL, "1", "third");
	a = call(AUTH_CERT, "PUT", CMS "/state", JSON, c);
	assert_status(&a, 409, "Conflict",
	              "Operation cannot be fulfilled on configmaps \"state\": the object has been "
	              "modified; please apply your changes to the latest version and try again");
	answer_free(&a);
	free(c);
	c = cm("state", NULL, rv, "third");
	a = call(AUTH_CERT, "PUT", CMS "/state", JSON, c);
	cr_assert_eq(a.status, 200, "%s", a.text);
	cr_assert_str_eq(str_at(a.doc, "data", "v", NULL), "third");
	answer_free(&a);
	free(c);
	free(rv);
	/* and no create on update for ConfigMaps */
	c = cm("missing", NULL, NULL, "x");
	a = call(AUTH_CERT, "PUT", CMS "/missing", JSON, c);
	assert_status(&a, 404, "NotFound", "configmaps \"missing\" not found");
	answer_free(&a);
	free(c);
}

Test(kubeapi_server, configmap_size_limit)
{
	size_t n = 1048576;
	char *big = malloc(n + 200);
	cr_assert_not_null(big);
	int head = sprintf(big, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
	                        "\"metadata\":{\"name\":\"big\"},\"data\":{\"a\":\"");
	memset(big + head, 'x', n - 1);
	strcpy(big + head + n - 1, "\",\"b\":\"yy\"}}");
	answer a = call(AUTH_CERT, "POST", CMS, JSON, big);
	assert_status(
	    &a, 422, "Invalid",
	    "ConfigMap \"big\" is invalid: []: Too long: must have at most 1048576 bytes");
	answer_free(&a);
	/* exactly 1 MiB of values is allowed */
	strcpy(big + head + n - 1, "\",\"b\":\"y\"}}");
	a = call(AUTH_CERT, "POST", CMS, JSON, big);
	cr_assert_eq(a.status, 201, "%.300s", a.text);
	answer_free(&a);
	free(big);
}

Test(kubeapi_server, faults_on_leases)
{
	char *l = lease("lock", "ann", NULL, NULL, "2026-12-05T07:00:00.000000Z", 15);
	control("{\"op\":\"fault\",\"path\":\"/leases\",\"method\":\"POST\",\"status\":503}");
	answer a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	assert_status(&a, 503, "ServiceUnavailable", NULL);
	answer_free(&a);
	a = call(AUTH_CERT, "GET", LEASES "/lock", NULL, NULL);
	cr_assert_eq(a.status, 404, "a faulted create creates nothing");
	answer_free(&a);
	control("{\"op\":\"fault\",\"path\":\"/leases\",\"status\":429,\"retry_after\":2}");
	a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	assert_status(&a, 429, "TooManyRequests", NULL);
	cr_assert_str_eq(a.retry, "2");
	answer_free(&a);
	a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	cr_assert_eq(a.status, 201, "%s", a.text);
	answer_free(&a);
	free(l);
}

/* Debian's kubectl with any arguments (up to 12, NULL-terminated). */
static tu_output kubectl_v(const char *first, ...)
{
	char kc[600], cache[600];
	snprintf(kc, sizeof(kc), "--kubeconfig=%s", kapi.kubeconfig);
	snprintf(cache, sizeof(cache), "--cache-dir=%s/kcache", dir);
	char *argv[16] = {"/usr/bin/kubectl", kc, cache};
	int n = 3;
	va_list ap;
	va_start(ap, first);
	for (const char *s = first; s && n < 15; s = va_arg(ap, const char *))
		argv[n++] = (char *)s;
	va_end(ap);
	argv[n] = NULL;
	return tu_capture(argv);
}

Test(kubeapi_server, kubectl_leases_and_configmaps)
{
	if (access("/usr/bin/kubectl", X_OK) != 0)
		cr_skip_test("no /usr/bin/kubectl");
	tu_output r = kubectl_v("create", "configmap", "plain", "--from-literal=k=v", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "configmap/plain created"), "%s", r.out);
	tu_output_free(&r);
	r = kubectl_v("create", "configmap", "plain", "--from-literal=k=v", NULL);
	cr_assert_neq(r.status, 0);
	/* kubectl's own words for a create subcommand, around the server's message */
	cr_assert(strstr(r.err, "failed to create configmap: configmaps \"plain\" already exists"),
	          "%s", r.err);
	tu_output_free(&r);
	post_cm("state", "\"app.kubernetes.io/managed-by\":\"migrate\"");
	post_cm("journal-0", "\"app.kubernetes.io/managed-by\":\"migrate\"");
	r = kubectl_v("get", "cm", "-l", "app.kubernetes.io/managed-by=migrate", "-o", "name",
	              NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(r.out, "configmap/journal-0\nconfigmap/state\n");
	tu_output_free(&r);

	char *l = lease("lock", "ann@laptop", NULL, NULL, "2026-12-05T07:00:00.000000Z", 15);
	answer a = call(AUTH_CERT, "POST", LEASES, JSON, l);
	cr_assert_eq(a.status, 201, "%s", a.text);
	char *rv1 = rv_of(&a);
	answer_free(&a);
	free(l);
	r = kubectl_v("get", "leases", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	json_t *doc = json_loads(r.out, 0, NULL);
	cr_assert_not_null(doc, "%s", r.out);
	json_t *item = json_array_get(json_object_get(doc, "items"), 0);
	cr_assert_str_eq(str_at(item, "kind", NULL, NULL), "Lease");
	cr_assert_str_eq(str_at(item, "spec", "holderIdentity", NULL), "ann@laptop");
	cr_assert_str_eq(str_at(item, "spec", "renewTime", NULL), "2026-12-05T07:00:00.000000Z");
	json_decref(doc);
	tu_output_free(&r);

	/* someone renews; a replace from the old copy is a conflict, as with a real server */
	l = lease("lock", "ann@laptop", rv1, NULL, "2026-12-05T07:00:05.000000Z", 15);
	a = call(AUTH_CERT, "PUT", LEASES "/lock", JSON, l);
	cr_assert_eq(a.status, 200, "%s", a.text);
	answer_free(&a);
	free(l);
	const char *file = tu_at("%s/stale-lease.json", dir);
	l = lease("lock", "bob@ci", rv1, NULL, "2026-12-05T07:00:06.000000Z", 15);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs(l, f);
	fclose(f);
	free(l);
	/* --validate=false: kubectl would validate against /openapi/v2, which this server lacks */
	r = kubectl_v("replace", "--validate=false", "-f", file, NULL);
	cr_assert_neq(r.status, 0, "%s", r.out);
	cr_assert(strstr(r.err, "Error from server (Conflict)"), "%s", r.err);
	cr_assert(strstr(r.err, "Operation cannot be fulfilled on leases.coordination.k8s.io "
	                        "\"lock\": the object has been modified; please apply your "
	                        "changes to the latest version and try again"),
	          "%s", r.err);
	tu_output_free(&r);
	a = call(AUTH_CERT, "GET", LEASES "/lock", NULL, NULL);
	cr_assert_str_eq(str_at(a.doc, "spec", "holderIdentity", NULL), "ann@laptop");
	answer_free(&a);
	free(rv1);

	r = kubectl_v("delete", "lease", "lock", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "lease.coordination.k8s.io \"lock\" deleted"), "%s", r.out);
	tu_output_free(&r);
	a = call(AUTH_CERT, "GET", LEASES "/lock", NULL, NULL);
	cr_assert_eq(a.status, 404);
	answer_free(&a);
}

/*
 * Debian's kubectl and the rotation: a kubeconfig tokenFile whose token the
 * server ended gets kubectl's own 401 words, and the rotated file works; so a
 * client test that rotates tokens here sees what a real cluster would do.
 */
Test(kubeapi_server, kubectl_token_file_rotation)
{
	if (access("/usr/bin/kubectl", X_OK) != 0)
		cr_skip_test("no /usr/bin/kubectl");
	const char *tok = tu_at("%s/sa-token", dir), *kc = tu_at("%s/kc-tokenfile", dir);
	char text[2048];
	snprintf(text, sizeof(text),
	         "apiVersion: v1\nkind: Config\ncurrent-context: sa\n"
	         "clusters:\n- name: c\n  cluster: {server: \"%s\", certificate-authority: %s}\n"
	         "users:\n- name: sa\n  user: {tokenFile: %s}\n"
	         "contexts:\n- name: sa\n  context: {cluster: c, user: sa, namespace: default}\n",
	         kapi.url, kapi.ca, tok);
	tu_write_file(kc, text);
	tu_write_file(tok, "kctl-v1-SECRET-a4f0\n");
	control("{\"op\":\"add_token\",\"token\":\"kctl-v1-SECRET-a4f0\",\"user\":\"sa\","
	        "\"id\":\"v1\"}");
	const char *kflag = tu_at("--kubeconfig=%s", kc), *cache = tu_at("--cache-dir=%s/kc2", dir);
	char *argv[] = {
	    "/usr/bin/kubectl", (char *)kflag, (char *)cache, "get", "cm", "-o", "name", NULL};
	tu_output r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	tu_output_free(&r);
	control("{\"op\":\"rotate_token\",\"token\":\"kctl-v1-SECRET-a4f0\",\"new\":"
	        "\"kctl-v2-SECRET-c3d1\",\"id\":\"v2\"}");
	r = tu_capture(argv);
	cr_assert_neq(r.status, 0, "%s", r.out);
	/* kubectl read the server's 401 Status as a real one's */
	cr_assert(strstr(r.err, "error: You must be logged in to the server (Unauthorized)"), "%s",
	          r.err);
	tu_output_free(&r);
	tu_write_file(tok, "kctl-v2-SECRET-c3d1\n");
	r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	tu_output_free(&r);
	char buf[64];
	cr_assert_str_eq(last_field("token_id", buf, sizeof(buf)), "v2");
	cr_assert_str_eq(last_field("user", buf, sizeof(buf)), "sa");
}
