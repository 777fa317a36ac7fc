/*
 * lib/kube/ against tests/servers/kubeapi.py, a strict kube-apiserver
 * stand-in over real TLS: every way in (client certificate from a file and
 * from data, token, tokenFile, exec plugin, insecure, tls-server-name),
 * server-side apply and its errors, discovery, rollout waits and the diff.
 * What really arrived is checked in the server's request log.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../testutil.h"
#include "base64.h"
#include "fs.h"
#include "kube.h"
#include "log.h"

static char dir[256];
static tu_kubeapi k = TU_KUBEAPI_INIT;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "kube");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	tu_log_capture(MG_LOG_DEBUG); /* every level: none may hold a secret */
	tu_kubeapi_start(&k, dir, "default,staging");
}

static void teardown(void)
{
	tu_log_capture_stop();
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

TestSuite(kube, .init = setup, .fini = teardown, .timeout = 60);

/* Paths stay valid for the whole test: kubeconfig paths are kept while files are written. */
static const char *in_dir(const char *name)
{
	static char buf[64][512];
	static int i;
	i = (i + 1) % 64;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static char *b64_file(const char *path)
{
	char *text;
	size_t len;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&text, &len, path, &err), 0, "%s", err.message);
	char *b = mg_base64_encode(text, len);
	free(text);
	return b;
}

/* A kubeconfig with one cluster (server, cluster_extra lines) and one user (user lines). */
static const char *kubeconfig(const char *name, const char *server, const char *cluster_extra,
                              const char *user)
{
	char text[16384];
	snprintf(text, sizeof(text),
	         "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
	         "clusters:\n- name: c\n  cluster:\n    server: %s\n%s"
	         "users:\n- name: u\n  user:\n%s"
	         "contexts:\n- name: x\n  context: {cluster: c, user: u, namespace: default}\n",
	         server, cluster_extra, user);
	const char *p = in_dir(name);
	write_file(p, text);
	return p;
}

static mg_kube_client *client_for(const char *kubeconfig_path, const char *context)
{
	mg_kube_config_options o = {.kubeconfig = kubeconfig_path, .context = context};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &o, &err), 0, "%s", err.message);
	return c;
}

static json_t *last_request(void)
{
	json_t *log = tu_kubeapi_requests(&k);
	cr_assert(json_array_size(log) > 0);
	json_t *r = json_incref(json_array_get(log, json_array_size(log) - 1));
	json_decref(log);
	return r;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "(none)";
}

static json_t *configmap(const char *ns, const char *name, const char *value)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind",
	                      "ConfigMap", "metadata", "name", name, "data", "key", value);
	if (ns)
		json_object_set_new(json_object_get(o, "metadata"), "namespace", json_string(ns));
	return o;
}

static json_t *deployment(const char *name, int replicas, const char *image)
{
	char text[2048];
	snprintf(
	    text, sizeof(text),
	    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\"},"
	    "\"spec\":{\"replicas\":%d,\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},"
	    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"%s\"}},\"spec\":{"
	    "\"containers\":[{\"name\":\"web\"%s%s%s}]}}}}",
	    name, replicas, name, name, image ? ",\"image\":\"" : "", image ? image : "",
	    image ? "\"" : "");
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	cr_assert_not_null(o, "%s", jerr.text);
	return o;
}

static void apply_ok(mg_kube_client *c, json_t *obj, const mg_kube_apply_options *o,
                     json_t **result)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_apply(c, obj, o, result, &err), 0, "%s", err.message);
}

Test(kube, cert_auth_apply_creates_then_updates)
{
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	cr_assert_str_eq(mg_kube_client_context(c), "cert");
	cr_assert_str_eq(mg_kube_client_namespace(c), "default");
	json_t *cm = configmap(NULL, "app-config", "one"), *res = NULL;
	apply_ok(c, cm, NULL, &res);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(res, "data"), "key")),
	                 "one");
	json_decref(res);
	json_t *r = last_request();
	cr_assert_str_eq(str(r, "method"), "PATCH");
	cr_assert_str_eq(str(r, "path"), "/api/v1/namespaces/default/configmaps/app-config");
	cr_assert_str_eq(str(r, "content_type"), "application/apply-patch+yaml");
	cr_assert_str_eq(str(r, "auth"), "cert");
	cr_assert_str_eq(str(r, "user"), "admin");
	cr_assert_eq(json_integer_value(json_object_get(r, "status")), 201);
	json_t *q = json_object_get(r, "query");
	cr_assert_str_eq(str(q, "fieldManager"), "migrate");
	cr_assert_null(json_object_get(q, "force"));
	cr_assert_null(json_object_get(q, "dryRun"));
	json_decref(r);
	json_decref(cm);

	cm = configmap("staging", "app-config", "two");
	mg_kube_apply_options o = {.field_manager = "ci-bot"};
	apply_ok(c, cm, &o, NULL);
	json_decref(cm);
	r = last_request();
	cr_assert_str_eq(str(r, "path"), "/api/v1/namespaces/staging/configmaps/app-config");
	cr_assert_str_eq(str(json_object_get(r, "query"), "fieldManager"), "ci-bot");
	json_decref(r);

	cm = configmap(NULL, "app-config", "three");
	apply_ok(c, cm, NULL, NULL);
	json_decref(cm);
	r = last_request();
	cr_assert_eq(json_integer_value(json_object_get(r, "status")), 200);
	json_decref(r);
	json_t *live = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(
	    mg_kube_get(c, "/api/v1/namespaces/default/configmaps/app-config", "cm", &live, &err),
	    0, "%s", err.message);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(live, "data"), "key")),
	                 "three");
	json_decref(live);
	mg_kube_client_free(c);
}

Test(kube, token_and_expired_token)
{
	mg_kube_client *c = client_for(k.kubeconfig, "token");
	json_t *cm = configmap(NULL, "t", "v");
	apply_ok(c, cm, NULL, NULL);
	json_t *r = last_request();
	cr_assert_str_eq(str(r, "auth"), "token");
	cr_assert_str_eq(str(r, "user"), "ci");
	json_decref(r);
	mg_kube_client_free(c);

	c = client_for(k.kubeconfig, "expired");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_apply(c, cm, NULL, NULL, &err), MG_ERROR);
	char want[1024];
	snprintf(want, sizeof(want),
	         "v1 ConfigMap default/t: 401 Unauthorized: %s refused the credentials of user "
	         "expired (context expired in %s); the token or certificate is wrong, expired or "
	         "revoked",
	         k.url, k.kubeconfig);
	cr_assert_str_eq(err.message, want);
	cr_assert_null(strstr(err.message, k.expired_token));
	cr_assert_null(strstr(tu_log_text(), k.expired_token));
	cr_assert_null(strstr(tu_log_text(), k.token));
	mg_error_clear(&err);
	json_decref(cm);
	mg_kube_client_free(c);
}

Test(kube, token_file_relative_and_data_fields)
{
	char user[8192];
	write_file(in_dir("tok"), k.token);
	write_file(in_dir("tok2"), "\n");
	/* tokenFile relative to the kubeconfig; the CA as a file */
	char extra[1024];
	snprintf(extra, sizeof(extra), "    certificate-authority: ca.pem\n");
	const char *kc = kubeconfig("kc-tokfile", k.url, extra, "    tokenFile: tok\n");
	mg_kube_client *c = client_for(kc, NULL);
	json_t *cm = configmap(NULL, "tf", "v");
	apply_ok(c, cm, NULL, NULL);
	json_t *r = last_request();
	cr_assert_str_eq(str(r, "auth"), "token");
	json_decref(r);
	mg_kube_client_free(c);

	/* an empty token file is named, not sent */
	kc = kubeconfig("kc-tokfile2", k.url, extra, "    tokenFile: tok2\n");
	mg_kube_config_options o = {.kubeconfig = kc};
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &o, &err), MG_EINVALID);
	char want[600];
	snprintf(want, sizeof(want), "tokenFile %s of user u is empty", in_dir("tok2"));
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);

	/* certificate-authority-data and client-certificate/key-data */
	char *ca = b64_file(k.ca), *cert = b64_file(k.client_cert), *key = b64_file(k.client_key);
	snprintf(extra, sizeof(extra), "    certificate-authority-data: %s\n", ca);
	snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n",
	         cert, key);
	kc = kubeconfig("kc-data", k.url, extra, user);
	c = client_for(kc, NULL);
	apply_ok(c, cm, NULL, NULL);
	r = last_request();
	cr_assert_str_eq(str(r, "auth"), "cert");
	cr_assert_str_eq(str(r, "user"), "admin");
	json_decref(r);
	mg_kube_client_free(c);

	/* no CA at all: the system's CAs do not know the test CA */
	kc = kubeconfig("kc-noca", k.url, "", user);
	c = client_for(kc, NULL);
	cr_assert_eq(mg_kube_apply(c, cm, NULL, NULL, &err), MG_ERROR);
	cr_assert(strstr(err.message, "TLS certificate of 127.0.0.1 not trusted"), "%s",
	          err.message);
	cr_assert_null(strstr(err.message, key));
	mg_error_clear(&err);
	mg_kube_client_free(c);
	free(ca);
	free(cert);
	free(key);
	json_decref(cm);
}

Test(kube, insecure_skip_tls_verify_is_warned)
{
	char user[256];
	snprintf(user, sizeof(user), "    token: %s\n", k.token);
	const char *kc =
	    kubeconfig("kc-insecure", k.url, "    insecure-skip-tls-verify: true\n", user);
	mg_kube_client *c = client_for(kc, NULL);
	cr_assert(mg_kube_client_insecure(c));
	cr_assert(strstr(tu_log_text(), "INSECURE: cluster ") &&
	              strstr(tu_log_text(), "has insecure-skip-tls-verify: true; the API server's "
	                                    "certificate is NOT verified"),
	          "%s", tu_log_text());
	json_t *cm = configmap(NULL, "ins", "v");
	apply_ok(c, cm, NULL, NULL);
	json_decref(cm);
	mg_kube_client_free(c);

	c = client_for(k.kubeconfig, NULL);
	cr_assert_not(mg_kube_client_insecure(c));
	mg_kube_client_free(c);
}

Test(kube, tls_server_name)
{
	char server[128], user[256], extra[600];
	/* "localhost" is not in the certificate (IP:127.0.0.1 only)... */
	snprintf(server, sizeof(server), "https://localhost:%d", k.port);
	snprintf(user, sizeof(user), "    token: %s\n", k.token);
	snprintf(extra, sizeof(extra), "    certificate-authority: %s\n", k.ca);
	const char *kc = kubeconfig("kc-nosni", server, extra, user);
	mg_kube_client *c = client_for(kc, NULL);
	json_t *cm = configmap(NULL, "sni", "v");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_apply(c, cm, NULL, NULL, &err), MG_ERROR);
	cr_assert(strstr(err.message, "TLS certificate of localhost not trusted"), "%s",
	          err.message);
	mg_error_clear(&err);
	mg_kube_client_free(c);
	/* ...but tls-server-name checks it against a name it has */
	snprintf(extra, sizeof(extra),
	         "    certificate-authority: %s\n    tls-server-name: 127.0.0.1\n", k.ca);
	kc = kubeconfig("kc-sni", server, extra, user);
	c = client_for(kc, NULL);
	apply_ok(c, cm, NULL, NULL);
	json_decref(cm);
	mg_kube_client_free(c);
	json_t *r = last_request();
	cr_assert_str_eq(str(r, "host"), tu_at("localhost:%d", k.port));
	json_decref(r);
}

/*
 * Issue 20: tls-server-name is the TLS SNI and the name the certificate is
 * checked against, and nothing else: the Host header stays the server URL's
 * host:port, as client-go sends it (a proxy that routes by SNI must not see a
 * different virtual host in HTTP). kubeapi.py has a certificate for
 * TU_KUBEAPI_SNI_NAME only, served to a client that asks for that name.
 */
Test(kube, tls_server_name_sets_sni_not_host)
{
	char user[256], extra[600];
	snprintf(user, sizeof(user), "    token: %s\n", k.token);
	snprintf(extra, sizeof(extra),
	         "    certificate-authority: %s\n    tls-server-name: " TU_KUBEAPI_SNI_NAME "\n",
	         k.ca);
	const char *kc = kubeconfig("kc-named", k.url, extra, user);
	mg_kube_client *c = client_for(kc, NULL);
	json_t *cm = configmap(NULL, "named", "v");
	apply_ok(c, cm, NULL, NULL);
	json_decref(cm);
	mg_kube_client_free(c);
	json_t *r = last_request();
	cr_assert_str_eq(str(r, "sni"), TU_KUBEAPI_SNI_NAME);
	cr_assert_str_eq(str(r, "host"), tu_at("127.0.0.1:%d", k.port));
	cr_assert_str_eq(str(r, "auth"), "token");
	cr_assert_eq(json_integer_value(json_object_get(r, "status")), 201);
	json_decref(r);
}

/* A tls-server-name the certificate does not name fails verification, with that name in
 * the message, and nothing reaches the API. */
Test(kube, tls_server_name_wrong_fails_verification)
{
	char user[256], extra[600];
	snprintf(user, sizeof(user), "    token: %s\n", k.token);
	snprintf(extra, sizeof(extra),
	         "    certificate-authority: %s\n    tls-server-name: wrong.internal\n", k.ca);
	const char *kc = kubeconfig("kc-wrong", k.url, extra, user);
	mg_kube_client *c = client_for(kc, NULL);
	json_t *cm = configmap(NULL, "wrong", "v");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_apply(c, cm, NULL, NULL, &err), MG_ERROR);
	cr_assert(strstr(err.message, "TLS certificate of wrong.internal not trusted"), "%s",
	          err.message);
	mg_error_clear(&err);
	json_decref(cm);
	mg_kube_client_free(c);
	json_t *log = tu_kubeapi_requests(&k);
	for (size_t i = 0; i < json_array_size(log); i++)
		cr_assert_str_neq(str(json_array_get(log, i), "path"),
		                  "/api/v1/namespaces/default/configmaps/wrong");
	json_decref(log);
}

static const char *exec_kubeconfig(const char *name, const char *api_version)
{
	char user[8192], cluster[600], plugin[PATH_MAX];
	cr_assert_not_null(realpath("tests/fixtures/kube/plugin.sh", plugin));
	snprintf(user, sizeof(user),
	         "    exec:\n      apiVersion: %s\n      command: %s\n"
	         "      env:\n      - {name: MG_PLUGIN_DIR, value: %s}\n",
	         api_version, plugin, dir);
	snprintf(cluster, sizeof(cluster), "    certificate-authority: %s\n", k.ca);
	return kubeconfig(name, k.url, cluster, user);
}

static int plugin_runs(void)
{
	char *text = NULL;
	size_t len = 0;
	mg_error err = MG_ERROR_INIT;
	if (mg_fs_read_all(&text, &len, in_dir("runs"), &err)) {
		mg_error_clear(&err);
		return 0;
	}
	int n = 0;
	for (char *p = text; (p = strstr(p, "run\n")) != NULL; p += 4)
		n++;
	free(text);
	return n;
}

static void get_ok(mg_kube_client *c)
{
	json_t *out = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_get(c, "/api/v1/namespaces/default/configmaps", "list", &out, &err), 0,
	             "%s", err.message);
	json_decref(out);
}

Test(kube, exec_plugin_cached_until_expiry_and_rerun_after_401)
{
	write_file(in_dir("token"), k.token);
	/* far off: one run serves every request */
	write_file(in_dir("expiry"), "2099-01-01T00:00:00Z");
	const char *kc = exec_kubeconfig("kc-exec", "client.authentication.k8s.io/v1");
	mg_kube_client *c = client_for(kc, NULL);
	get_ok(c);
	get_ok(c);
	get_ok(c);
	cr_assert_eq(plugin_runs(), 1);
	cr_assert_eq(mg_kube_client_exec_runs(c), 1);
	json_t *r = last_request();
	cr_assert_str_eq(str(r, "auth"), "token");
	json_decref(r);

	/* revoked early: the 401 makes it run again, once, and the new token works */
	const char *fresh = "exec-fresh-SECRET-token-0b7e";
	json_t *a = tu_kubeapi_control(&k, "{\"op\":\"add_token\",\"token\":\"exec-fresh-SECRET-"
	                                   "token-0b7e\",\"user\":\"ci\",\"groups\":[\"g\"]}");
	json_decref(a);
	char op[256];
	snprintf(op, sizeof(op), "{\"op\":\"expire_token\",\"token\":\"%s\"}", k.token);
	json_decref(tu_kubeapi_control(&k, op));
	write_file(in_dir("token"), fresh);
	get_ok(c);
	cr_assert_eq(plugin_runs(), 2);
	get_ok(c);
	cr_assert_eq(plugin_runs(), 2);

	/* a plugin whose token keeps failing: one re-run, then the 401 message */
	write_file(in_dir("token"), k.token);
	snprintf(op, sizeof(op), "{\"op\":\"expire_token\",\"token\":\"%s\"}", fresh);
	json_decref(tu_kubeapi_control(&k, op));
	mg_error err = MG_ERROR_INIT;
	json_t *out = NULL;
	cr_assert_eq(mg_kube_get(c, "/api/v1/namespaces/default/configmaps", "list", &out, &err),
	             MG_ERROR);
	cr_assert(strstr(err.message, "list: 401 Unauthorized"), "%s", err.message);
	cr_assert_eq(plugin_runs(), 3);
	mg_error_clear(&err);
	mg_kube_client_free(c);

	/* about to expire: run before each request */
	write_file(in_dir("token"), fresh);
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"add_token\",\"token\":\"exec-fresh2-SECRET\","
	                                   "\"user\":\"ci\",\"groups\":[\"g\"]}"));
	write_file(in_dir("token"), "exec-fresh2-SECRET");
	char when[64];
	time_t soon = time(NULL) + 5;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&soon));
	write_file(in_dir("expiry"), when);
	c = client_for(kc, NULL);
	get_ok(c);
	get_ok(c);
	cr_assert_eq(mg_kube_client_exec_runs(c), 2);
	mg_kube_client_free(c);

	cr_assert(strstr(tu_log_text(), "plugin stderr: logging in"), "%s", tu_log_text());
	cr_assert_null(strstr(tu_log_text(), k.token));
	cr_assert_null(strstr(tu_log_text(), fresh));
	cr_assert_null(strstr(tu_log_text(), "exec-fresh2-SECRET"));
}

/* The server's log field of the request n from the end (1: the last), "(none)" if null. */
static const char *nth_last(int n, const char *key)
{
	static char buf[4][128];
	static int i;
	i = (i + 1) % 4;
	json_t *log = tu_kubeapi_requests(&k);
	size_t len = json_array_size(log);
	cr_assert_geq(len, (size_t)n);
	json_t *e = json_array_get(log, len - (size_t)n);
	json_t *v = json_object_get(e, key);
	if (json_is_integer(v))
		snprintf(buf[i], sizeof(buf[i]), "%lld", (long long)json_integer_value(v));
	else
		snprintf(buf[i], sizeof(buf[i]), "%s",
		         json_string_value(v) ? json_string_value(v) : "(none)");
	json_decref(log);
	return buf[i];
}

static int count_401(void)
{
	json_t *log = tu_kubeapi_requests(&k), *e;
	size_t i;
	int n = 0;
	json_array_foreach(log, i, e) n += json_integer_value(json_object_get(e, "status")) == 401;
	json_decref(log);
	return n;
}

Test(kube, token_file_rotated_under_a_long_lived_client)
{
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"add_token\",\"token\":\"tf-v1-SECRET-0aa1\","
	                                   "\"user\":\"ci\",\"id\":\"v1\"}"));
	const char *tok = in_dir("rot-tok");
	write_file(tok, "tf-v1-SECRET-0aa1\n");
	char extra[600];
	snprintf(extra, sizeof(extra), "    certificate-authority: %s\n", k.ca);
	const char *kc = kubeconfig("kc-rot", k.url, extra, "    tokenFile: rot-tok\n");
	mg_kube_client *c = client_for(kc, NULL); /* the default minute between reads */
	get_ok(c);
	cr_assert_str_eq(nth_last(1, "token_id"), "v1");

	/* rotated at the server, the old one ended at once, and in the file: the 401 makes the
	 * client read the file now, not in a minute, and the request goes through */
	json_decref(tu_kubeapi_control(&k,
	                               "{\"op\":\"rotate_token\",\"token\":\"tf-v1-SECRET-0aa1\","
	                               "\"new\":\"tf-v2-SECRET-0aa2\",\"id\":\"v2\"}"));
	write_file(tok, "tf-v2-SECRET-0aa2\n");
	get_ok(c);
	cr_assert_str_eq(nth_last(2, "status"), "401");
	cr_assert_str_eq(nth_last(2, "token_id"), "v1");
	cr_assert_str_eq(nth_last(1, "status"), "200");
	cr_assert_str_eq(nth_last(1, "token_id"), "v2");
	get_ok(c);
	cr_assert_str_eq(nth_last(1, "token_id"), "v2");

	/* a 401 after the fresh read is an error naming the file, never the token */
	json_decref(
	    tu_kubeapi_control(&k, "{\"op\":\"revoke_token\",\"token\":\"tf-v2-SECRET-0aa2\"}"));
	mg_error err = MG_ERROR_INIT;
	json_t *out = NULL;
	cr_assert_eq(mg_kube_get(c, "/api/v1/namespaces/default/configmaps", "list", &out, &err),
	             MG_ERROR);
	char want[2048];
	snprintf(
	    want, sizeof(want),
	    "list: 401 Unauthorized: %s refused the token from tokenFile %s of user u (context "
	    "x in %s), read again after the 401 and unchanged; the token or certificate is "
	    "wrong, expired or revoked",
	    k.url, tok, kc);
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);
	/* rotated to a token the server refuses too: sent once more, then the error */
	write_file(tok, "tf-v3-SECRET-0aa3\n");
	int before = count_401();
	cr_assert_eq(mg_kube_get(c, "/api/v1/namespaces/default/configmaps", "list", &out, &err),
	             MG_ERROR);
	cr_assert_eq(count_401(), before + 2);
	cr_assert(strstr(err.message, "whose new token, read after a first 401, was refused too"),
	          "%s", err.message);
	mg_error_clear(&err);
	mg_kube_client_free(c);
	cr_assert_null(strstr(tu_log_text(), "SECRET"), "%s", tu_log_text());
}

Test(kube, token_file_read_again_as_its_time_passes)
{
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"add_token\",\"token\":\"tt-v1-SECRET-0bb1\","
	                                   "\"user\":\"ci\",\"id\":\"v1\"}"));
	const char *tok = in_dir("tt-tok");
	write_file(tok, "tt-v1-SECRET-0bb1");
	char extra[600];
	snprintf(extra, sizeof(extra), "    certificate-authority: %s\n", k.ca);
	const char *kc = kubeconfig("kc-tt", k.url, extra, "    tokenFile: tt-tok\n");
	mg_kube_config_options o = {.kubeconfig = kc, .token_reread_ms = 300};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_client_new(&c, &o, &err), 0, "%s", err.message);
	int64_t t0 = tu_now_ms();
	get_ok(c);
	/* the kubelet's way: a new token while the old one still works (a grace period) */
	json_decref(tu_kubeapi_control(&k,
	                               "{\"op\":\"rotate_token\",\"token\":\"tt-v1-SECRET-0bb1\","
	                               "\"new\":\"tt-v2-SECRET-0bb2\",\"id\":\"v2\","
	                               "\"grace_ms\":60000}"));
	write_file(tok, "tt-v2-SECRET-0bb2");
	get_ok(c);
	cr_assert_lt(tu_now_ms() - t0, 300, "too slow to see the token kept between reads");
	cr_assert_str_eq(nth_last(1, "token_id"), "v1");
	usleep(350 * 1000);
	get_ok(c);
	cr_assert_str_eq(nth_last(1, "token_id"), "v2");
	cr_assert_eq(count_401(), 0, "picked up by time, not by a 401");
	/* a file that cannot be read for a while keeps the token it gave (client-go's way) */
	cr_assert_eq(unlink(tok), 0);
	usleep(350 * 1000);
	get_ok(c);
	cr_assert_str_eq(nth_last(1, "token_id"), "v2");
	cr_assert(strstr(tu_log_text(), "the token read before is used meanwhile"), "%s",
	          tu_log_text());
	mg_kube_client_free(c);
	cr_assert_null(strstr(tu_log_text(), "SECRET"), "%s", tu_log_text());
}

Test(kube, exec_plugin_rerun_when_its_expiry_passes)
{
	write_file(in_dir("token"), k.token);
	/* 12 s ahead; the client runs it again 10 s early, so it is due within 2 s */
	time_t now = time(NULL), exp = now + 12;
	char when[64];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&exp));
	write_file(in_dir("expiry"), when);
	const char *kc = exec_kubeconfig("kc-exec-exp", "client.authentication.k8s.io/v1");
	mg_kube_client *c = client_for(kc, NULL);
	get_ok(c);
	get_ok(c);
	if (time(NULL) < now + 2)
		cr_assert_eq(mg_kube_client_exec_runs(c), 1, "cached while it is valid");
	/* far off now: the next run's credential lasts */
	write_file(in_dir("expiry"), "2099-01-01T00:00:00Z");
	for (int i = 0; i < 40 && time(NULL) < now + 2; i++)
		usleep(100 * 1000);
	get_ok(c);
	cr_assert_eq(mg_kube_client_exec_runs(c), 2);
	get_ok(c);
	cr_assert_eq(mg_kube_client_exec_runs(c), 2);
	cr_assert_eq(count_401(), 0, "run again for its expiry, not after a 401");
	mg_kube_client_free(c);
}

Test(kube, exec_plugin_wrong_api_version_refused)
{
	write_file(in_dir("token"), k.token);
	write_file(in_dir("mode"), "wrong-version");
	const char *kc = exec_kubeconfig("kc-exec", "client.authentication.k8s.io/v1");
	mg_kube_client *c = client_for(kc, NULL);
	json_t *out = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_get(c, "/api/v1/namespaces/default/configmaps", "list", &out, &err),
	             MG_ERROR);
	cr_assert(strstr(err.message, "returned apiVersion client.authentication.k8s.io/v1beta1, "
	                              "but the kubeconfig asks for "
	                              "client.authentication.k8s.io/v1"),
	          "%s", err.message);
	cr_assert_null(strstr(err.message, k.token));
	mg_error_clear(&err);
	mg_kube_client_free(c);
	json_t *log = tu_kubeapi_requests(&k);
	cr_assert_eq(json_array_size(log), 0, "nothing sent without a credential");
	json_decref(log);

	/* v1beta1 asked for and returned is fine */
	kc = exec_kubeconfig("kc-exec-beta", "client.authentication.k8s.io/v1beta1");
	c = client_for(kc, NULL);
	get_ok(c);
	mg_kube_client_free(c);
}

/* What the plugin read from KUBERNETES_EXEC_INFO, parsed. */
static json_t *plugin_info(void)
{
	char *text;
	size_t len;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&text, &len, in_dir("info"), &err), 0, "%s", err.message);
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	cr_assert_not_null(j, "%s: %s", text, je.text);
	free(text);
	return j;
}

Test(kube, exec_plugin_provide_cluster_info)
{
	write_file(in_dir("token"), k.token);
	char user[8192], cluster[2048], plugin[PATH_MAX];
	cr_assert_not_null(realpath("tests/fixtures/kube/plugin.sh", plugin));
	snprintf(user, sizeof(user),
	         "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
	         "      command: %s\n      provideClusterInfo: true\n"
	         "      env:\n      - {name: MG_PLUGIN_DIR, value: %s}\n",
	         plugin, dir);
	/* the CA as a file: the plugin gets it as data, as from client-go */
	snprintf(cluster, sizeof(cluster),
	         "    certificate-authority: %s\n    tls-server-name: 127.0.0.1\n"
	         "    proxy-url: http://127.0.0.1:9/\n"
	         "    extensions:\n    - name: other\n      extension: {x: 1}\n"
	         "    - name: client.authentication.k8s.io/exec\n"
	         "      extension:\n        audience: shop\n        retries: 3\n"
	         "        fast: true\n        zone: \"42\"\n        list: [a, 2]\n",
	         k.ca);
	const char *kc = kubeconfig("kc-info", k.url, cluster, user);
	mg_kube_client *c = client_for(kc, NULL);
	get_ok(c);
	mg_kube_client_free(c);
	json_t *info = plugin_info();
	json_t *spec = json_object_get(info, "spec");
	cr_assert(json_is_false(json_object_get(spec, "interactive")));
	json_t *cl = json_object_get(spec, "cluster");
	cr_assert_not_null(cl, "no spec.cluster");
	cr_assert_str_eq(str(cl, "server"), k.url);
	cr_assert_str_eq(str(cl, "tls-server-name"), "127.0.0.1");
	cr_assert_str_eq(str(cl, "proxy-url"), "http://127.0.0.1:9/");
	cr_assert_null(json_object_get(cl, "insecure-skip-tls-verify"));
	char *ca = b64_file(k.ca);
	cr_assert_str_eq(str(cl, "certificate-authority-data"), ca);
	free(ca);
	json_t *want =
	    json_loads("{\"audience\":\"shop\",\"retries\":3,\"fast\":true,\"zone\":\"42\","
	               "\"list\":[\"a\",2]}",
	               0, NULL);
	cr_assert(json_equal(json_object_get(cl, "config"), want), "%s",
	          json_dumps(json_object_get(cl, "config"), 0));
	json_decref(want);
	json_decref(info);

	/* without provideClusterInfo nothing about the cluster; insecure shows when set */
	kc = exec_kubeconfig("kc-noinfo", "client.authentication.k8s.io/v1");
	c = client_for(kc, NULL);
	get_ok(c);
	mg_kube_client_free(c);
	info = plugin_info();
	cr_assert_null(json_object_get(json_object_get(info, "spec"), "cluster"));
	json_decref(info);
	snprintf(user, sizeof(user),
	         "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
	         "      command: %s\n      provideClusterInfo: true\n"
	         "      env:\n      - {name: MG_PLUGIN_DIR, value: %s}\n",
	         plugin, dir);
	kc = kubeconfig("kc-insecure-info", k.url, "    insecure-skip-tls-verify: true\n", user);
	c = client_for(kc, NULL);
	get_ok(c);
	mg_kube_client_free(c);
	info = plugin_info();
	cl = json_object_get(json_object_get(info, "spec"), "cluster");
	cr_assert(json_is_true(json_object_get(cl, "insecure-skip-tls-verify")));
	cr_assert_null(json_object_get(cl, "certificate-authority-data"));
	cr_assert_null(json_object_get(cl, "config"));
	json_decref(info);
}

Test(kube, conflict_needs_force)
{
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *d = deployment("web", 2, "nginx:1.25");
	apply_ok(c, d, NULL, NULL);
	json_decref(tu_kubeapi_control(
	    &k, "{\"op\":\"update\",\"path\":\"/apis/apps/v1/namespaces/default/deployments/web\","
	        "\"manager\":\"kubectl-edit\",\"patch\":{\"spec\":{\"replicas\":5}}}"));
	json_decref(d);
	d = deployment("web", 3, "nginx:1.25");
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_apply(c, d, NULL, NULL, &err), MG_ECONFLICT);
	cr_assert_str_eq(
	    err.message,
	    "apps/v1 Deployment default/web: 409 Conflict: fields managed by another "
	    "field manager: .spec.replicas (managed by kubectl-edit); apply with force "
	    "to take them over");
	mg_error_clear(&err);
	mg_kube_apply_options o = {.force = true};
	json_t *res = NULL;
	apply_ok(c, d, &o, &res);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "spec"), "replicas")),
	             3);
	json_decref(res);
	json_t *r = last_request();
	cr_assert_str_eq(str(json_object_get(r, "query"), "force"), "true");
	json_decref(r);
	json_decref(d);
	mg_kube_client_free(c);
}

Test(kube, invalid_and_not_found_messages)
{
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *d = deployment("web", 1, NULL);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_apply(c, d, NULL, NULL, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "apps/v1 Deployment default/web: 422 Invalid: "
	                              "spec.template.spec.containers[0].image: Required value");
	mg_error_clear(&err);
	json_decref(d);

	json_t *cm = configmap("nope", "x", "v");
	cr_assert_eq(mg_kube_apply(c, cm, NULL, NULL, &err), MG_ENOTFOUND);
	cr_assert_str_eq(err.message, "v1 ConfigMap nope/x: 404 NotFound: namespaces \"nope\" not "
	                              "found");
	mg_error_clear(&err);
	json_decref(cm);

	json_t *g = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "example.com/v1", "kind",
	                      "Gadget", "metadata", "name", "g1");
	cr_assert_eq(mg_kube_apply(c, g, NULL, NULL, &err), MG_ENOTFOUND);
	cr_assert_str_eq(err.message, "kind Gadget is not served by example.com/v1");
	mg_error_clear(&err);
	json_decref(g);

	g = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "nothere.io/v1", "kind", "Thing",
	              "metadata", "name", "t1");
	cr_assert_eq(mg_kube_apply(c, g, NULL, NULL, &err), MG_ENOTFOUND);
	cr_assert_str_eq(err.message,
	                 "kind Thing: the cluster does not serve the API nothere.io/v1 "
	                 "(is its CustomResourceDefinition installed?)");
	mg_error_clear(&err);
	json_decref(g);
	mg_kube_client_free(c);
}

Test(kube, discovery_of_a_custom_kind_and_dry_run)
{
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *w = json_pack("{s:s, s:s, s:{s:s}, s:{s:i}}", "apiVersion", "example.com/v1",
	                      "kind", "Widget", "metadata", "name", "w1", "spec", "size", 3);
	mg_kube_apply_options dry = {.dry_run = true};
	apply_ok(c, w, &dry, NULL);
	json_t *r = last_request();
	cr_assert_str_eq(str(r, "path"), "/apis/example.com/v1/namespaces/default/widgets/w1");
	cr_assert_str_eq(str(json_object_get(r, "query"), "dryRun"), "All");
	json_decref(r);
	json_t *out = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_get(c, "/apis/example.com/v1/namespaces/default/widgets/w1", "widget",
	                         &out, &err),
	             MG_ENOTFOUND, "a dry run persists nothing");
	mg_error_clear(&err);

	apply_ok(c, w, NULL, NULL);
	cr_assert_eq(mg_kube_get(c, "/apis/example.com/v1/namespaces/default/widgets/w1", "widget",
	                         &out, &err),
	             0, "%s", err.message);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(out, "spec"), "size")), 3);
	json_decref(out);
	/* discovery ran once for both applies */
	json_t *log = tu_kubeapi_requests(&k);
	size_t i, n = 0;
	json_t *e;
	json_array_foreach(log, i, e) n += !strcmp(str(e, "path"), "/apis/example.com/v1");
	cr_assert_eq(n, 1);
	json_decref(log);
	json_decref(w);
	mg_kube_client_free(c);
}

typedef struct {
	char text[4096];
} progress_log;

static void on_progress(const char *msg, void *ud)
{
	progress_log *p = ud;
	size_t len = strlen(p->text);
	snprintf(p->text + len, sizeof(p->text) - len, "%s\n", msg);
}

Test(kube, rollout_waits_until_available)
{
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":100}"));
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *d = deployment("web", 3, "nginx:1.25");
	apply_ok(c, d, NULL, NULL);
	progress_log p = {""};
	mg_kube_rollout_options o = {
	    .timeout_ms = 10000, .poll_ms = 20, .progress = on_progress, .ud = &p};
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "web", &o, &err), 0, "%s", err.message);
	cr_assert_lt(tu_now_ms() - t0, 5000);
	cr_assert(strstr(p.text, "of 3 updated replicas are available\n"), "%s", p.text);
	cr_assert(strstr(p.text, "successfully rolled out (3 of 3 updated replicas available)\n"),
	          "%s", p.text);
	json_t *live = NULL;
	cr_assert_eq(
	    mg_kube_get(c, "/apis/apps/v1/namespaces/default/deployments/web", "d", &live, &err),
	    0);
	cr_assert_eq(json_integer_value(
	                 json_object_get(json_object_get(live, "status"), "availableReplicas")),
	             3);
	json_decref(live);
	json_decref(d);
	mg_kube_client_free(c);
}

Test(kube, rollout_progress_deadline_fails_at_once)
{
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *d = deployment("web", 2, "nginx:fail-rollout");
	json_object_set_new(json_object_get(d, "spec"), "progressDeadlineSeconds",
	                    json_integer(30)); /* 0.3 s at the server's scale */
	apply_ok(c, d, NULL, NULL);
	mg_kube_rollout_options o = {.timeout_ms = 20000, .poll_ms = 20};
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_kube_rollout_wait(c, "default", "web", &o, &err), MG_ERROR);
	cr_assert_lt(tu_now_ms() - t0, 5000, "not the whole timeout");
	cr_assert(strstr(err.message, "apps/v1 Deployment default/web: rollout failed: exceeded "
	                              "its progress deadline (ProgressDeadlineExceeded"),
	          "%s", err.message);
	mg_error_clear(&err);
	json_decref(d);
	mg_kube_client_free(c);
}

Test(kube, rollout_timeout_and_cancel)
{
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":60000}"));
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *d = deployment("web", 2, "nginx:1.25");
	apply_ok(c, d, NULL, NULL);
	mg_kube_rollout_options o = {.timeout_ms = 400, .poll_ms = 20};
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "web", &o, &err), MG_ERROR);
	int64_t took = tu_now_ms() - t0;
	cr_assert(took >= 400 && took < 3000, "%lld ms", (long long)took);
	cr_assert(strstr(err.message, "apps/v1 Deployment default/web: not rolled out within 0.4 s "
	                              "(rollout_timeout): "),
	          "%s", err.message);
	mg_error_clear(&err);

	volatile int cancel = 1;
	o.cancel = &cancel;
	o.timeout_ms = 10000;
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "web", &o, &err), MG_ECANCELED);
	mg_error_clear(&err);

	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "absent", &o, &err), MG_ECANCELED);
	mg_error_clear(&err);
	cancel = 0;
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "absent", &o, &err), MG_ENOTFOUND);
	cr_assert(strstr(err.message, "apps/v1 Deployment default/absent: 404 NotFound: "), "%s",
	          err.message);
	mg_error_clear(&err);
	json_decref(d);
	mg_kube_client_free(c);
}

/* A Deployment turned into kind (StatefulSet, DaemonSet); strategy: updateStrategy.type or NULL. */
static json_t *workload(const char *kind, const char *name, int replicas, const char *image,
                        const char *strategy)
{
	json_t *o = deployment(name, replicas, image);
	json_object_set_new(o, "kind", json_string(kind));
	json_t *spec = json_object_get(o, "spec");
	if (!strcmp(kind, "DaemonSet"))
		json_object_del(spec, "replicas");
	if (strategy)
		json_object_set_new(spec, "updateStrategy", json_pack("{s:s}", "type", strategy));
	return o;
}

Test(kube, rollout_statefulset_and_daemonset)
{
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":40}"));
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *s = workload("StatefulSet", "db", 3, "postgres:16", NULL);
	json_t *d = workload("DaemonSet", "agent", 0, "agent:1", NULL);
	apply_ok(c, s, NULL, NULL);
	apply_ok(c, d, NULL, NULL);
	progress_log p = {""};
	mg_kube_rollout_options o = {.kind = "StatefulSet",
	                             .timeout_ms = 10000,
	                             .poll_ms = 10,
	                             .progress = on_progress,
	                             .ud = &p};
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "db", &o, &err), 0, "%s", err.message);
	cr_assert(strstr(p.text, "pods to be ready ("), "%s", p.text);
	cr_assert(strstr(p.text, "statefulset rolling update complete: 3 pods at revision db-"),
	          "%s", p.text);
	p.text[0] = '\0';
	o.kind = "DaemonSet";
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "agent", &o, &err), 0, "%s", err.message);
	cr_assert(strstr(p.text, "successfully rolled out (3 of 3 pods updated and available)"),
	          "%s", p.text);

	/* an update: the StatefulSet is done only when currentRevision caught up */
	json_decref(s);
	s = workload("StatefulSet", "db", 3, "postgres:17", NULL);
	apply_ok(c, s, NULL, NULL);
	p.text[0] = '\0';
	o.kind = "StatefulSet";
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "db", &o, &err), 0, "%s", err.message);
	cr_assert(strstr(p.text, "waiting for statefulset rolling update to complete: "), "%s",
	          p.text);
	json_t *live = NULL;
	cr_assert_eq(
	    mg_kube_get(c, "/apis/apps/v1/namespaces/default/statefulsets/db", "s", &live, &err),
	    0);
	json_t *st = json_object_get(live, "status");
	cr_assert_str_eq(str(st, "currentRevision"), str(st, "updateRevision"));
	cr_assert_eq(json_integer_value(json_object_get(st, "updatedReplicas")), 3);
	json_decref(live);

	/* OnDelete: nothing to wait for; said so, as kubectl says it */
	json_t *m = workload("DaemonSet", "manual", 0, "agent:1", "OnDelete");
	apply_ok(c, m, NULL, NULL);
	bool nw = false;
	o.not_waitable = &nw;
	o.kind = "DaemonSet";
	p.text[0] = '\0';
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "manual", &o, &err), 0, "%s", err.message);
	cr_assert(nw);
	cr_assert(strstr(p.text, "rollout status is only available for RollingUpdate strategy type "
	                         "(updateStrategy OnDelete"),
	          "%s", p.text);
	o.not_waitable = NULL;
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "manual", &o, &err), MG_ERROR);
	cr_assert(strstr(err.message, "apps/v1 DaemonSet default/manual: rollout status is only "
	                              "available for RollingUpdate"),
	          "%s", err.message);
	mg_error_clear(&err);
	json_decref(m);
	json_decref(s);
	json_decref(d);
	mg_kube_client_free(c);
}

Test(kube, rollout_stuck_statefulset_and_daemonset_fail_at_the_timeout)
{
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":20}"));
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *s = workload("StatefulSet", "db", 2, "postgres:fail-rollout", NULL);
	json_t *d = workload("DaemonSet", "agent", 0, "agent:fail-rollout", NULL);
	apply_ok(c, s, NULL, NULL);
	apply_ok(c, d, NULL, NULL);
	mg_kube_rollout_options o = {.kind = "StatefulSet", .timeout_ms = 500, .poll_ms = 20};
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "db", &o, &err), MG_ERROR);
	cr_assert(strstr(err.message, "apps/v1 StatefulSet default/db: not rolled out within 0.5 s "
	                              "(rollout_timeout): waiting for 2 pods to be ready (0 of 2 "
	                              "ready)"),
	          "%s", err.message);
	mg_error_clear(&err);
	o.kind = "DaemonSet";
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "agent", &o, &err), MG_ERROR);
	cr_assert(strstr(err.message,
	                 "apps/v1 DaemonSet default/agent: not rolled out within 0.5 s "
	                 "(rollout_timeout): "),
	          "%s", err.message);
	cr_assert(strstr(err.message, "updated pods are available"), "%s", err.message);
	mg_error_clear(&err);

	/* unstuck by the control API: then it completes */
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"rollout\",\"resource\":\"daemonsets\","
	                                   "\"name\":\"agent\",\"fail\":false}"));
	o.timeout_ms = 10000;
	cr_assert_eq(mg_kube_rollout_wait(c, NULL, "agent", &o, &err), 0, "%s", err.message);
	json_decref(s);
	json_decref(d);
	mg_kube_client_free(c);
}

Test(kube, diff_new_same_and_changed)
{
	mg_kube_client *c = client_for(k.kubeconfig, NULL);
	json_t *d = deployment("web", 2, "nginx:1.25");
	char *text = NULL;
	bool changed = false;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_diff(c, d, &text, &changed, &err), 0, "%s", err.message);
	cr_assert(changed);
	cr_assert(!strncmp(text, "apps/v1 Deployment default/web: (new)\n", 38), "%s", text);
	cr_assert(strstr(text, "  + spec.replicas: 2\n"), "%s", text);
	cr_assert(strstr(text, "  + spec.template.spec.containers[0].image: \"nginx:1.25\"\n"),
	          "%s", text);
	free(text);
	cr_assert_eq(
	    mg_kube_get(c, "/apis/apps/v1/namespaces/default/deployments/web", "d", NULL, &err),
	    MG_ENOTFOUND, "the diff's dry run created nothing");
	mg_error_clear(&err);

	apply_ok(c, d, NULL, NULL);
	cr_assert_eq(mg_kube_diff(c, d, &text, &changed, &err), 0, "%s", err.message);
	cr_assert_not(changed);
	cr_assert_str_eq(text, "apps/v1 Deployment default/web: (no changes)\n");
	free(text);
	json_decref(d);

	d = deployment("web", 3, "nginx:1.27");
	json_object_set_new(json_object_get(d, "metadata"), "labels",
	                    json_pack("{s:s}", "tier", "front"));
	cr_assert_eq(mg_kube_diff(c, d, &text, &changed, &err), 0, "%s", err.message);
	cr_assert(changed);
	cr_assert_str_eq(text, "apps/v1 Deployment default/web:\n"
	                       "  + metadata.labels.tier: \"front\"\n"
	                       "  ~ spec.replicas: 2 -> 3\n"
	                       "  ~ spec.template.spec.containers[0].image: \"nginx:1.25\" -> "
	                       "\"nginx:1.27\"\n");
	free(text);
	json_decref(d);
	mg_kube_client_free(c);
}

/* The whole secret, or its first or last half, in text (a cut before scrubbing leaves one). */
static bool leaks(const char *text, const char *secret)
{
	size_t n = strlen(secret), h = n / 2;
	char first[128], last[128];
	snprintf(first, sizeof(first), "%.*s", (int)h, secret);
	snprintf(last, sizeof(last), "%s", secret + n - h);
	return text && (strstr(text, first) || strstr(text, last));
}

/* A server quoting the token back, as a Status (and its causes) or a plain-text body. */
Test(kube, echoed_token_is_masked_in_messages_and_log)
{
	const char *modes[] = {"{\"op\":\"echo\",\"on\":true,\"status\":400,\"kind\":\"text\"}",
	                       "{\"op\":\"echo\",\"on\":true,\"status\":403,\"kind\":\"status\"}",
	                       "{\"op\":\"echo\",\"on\":true,\"status\":422,\"kind\":\"status\"}"};
	for (size_t i = 0; i < 3; i++) {
		json_decref(tu_kubeapi_control(&k, modes[i]));
		mg_kube_client *c = client_for(k.kubeconfig, "token");
		json_t *out = NULL;
		mg_error err = MG_ERROR_INIT;
		cr_assert_neq(
		    mg_kube_get(c, "/api/v1/namespaces/default/configmaps", "list", &out, &err), 0);
		cr_assert(!leaks(err.message, k.token), "mode %zu: %s", i, err.message);
		cr_assert(strstr(err.message, "[redacted]"), "mode %zu: %s", i, err.message);
		mg_error_clear(&err);
		json_t *cm = configmap(NULL, "t", "v");
		cr_assert_neq(mg_kube_apply(c, cm, NULL, NULL, &err), 0);
		cr_assert(!leaks(err.message, k.token), "mode %zu: %s", i, err.message);
		mg_error_clear(&err);
		json_decref(cm);
		mg_kube_client_free(c);
	}
	cr_assert(!leaks(tu_log_text(), k.token), "%s", tu_log_text());
}

/* A plugin that prints the token it handed out on stderr, and then fails. */
Test(kube, exec_plugin_echoing_its_token_on_stderr_is_masked)
{
	write_file(in_dir("token"), k.token);
	write_file(in_dir("expiry"), "2099-01-01T00:00:00Z");
	const char *kc = exec_kubeconfig("kc-exec", "client.authentication.k8s.io/v1");
	mg_kube_client *c = client_for(kc, NULL);
	get_ok(c);
	/* revoked: the 401 runs the plugin again, which now echoes the token and fails */
	char op[256];
	snprintf(op, sizeof(op), "{\"op\":\"expire_token\",\"token\":\"%s\"}", k.token);
	json_decref(tu_kubeapi_control(&k, op));
	write_file(in_dir("mode"), "fail-echo");
	json_t *out = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_neq(mg_kube_get(c, "/api/v1/namespaces/default/configmaps", "list", &out, &err),
	              0);
	cr_assert(strstr(err.message, "exit status 3"), "%s", err.message);
	cr_assert(!leaks(err.message, k.token), "%s", err.message);
	mg_error_clear(&err);
	mg_kube_client_free(c);
	cr_assert(!leaks(tu_log_text(), k.token), "%s", tu_log_text());
	cr_assert(strstr(tu_log_text(), "cached token [redacted] is stale"), "%s", tu_log_text());
}
