/*
 * kubeconfig reading (lib/kube/kubeconfig.c) from the fixtures in
 * tests/fixtures/kube/, the exec plugin runner with
 * tests/fixtures/kube/plugin.sh, and lib/core/base64.c. No cluster: the
 * integration suite `kube` does the requests.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "base64.h"
#include "fs.h"
#include "kube.h"
#include "log.h"

#define FIX "tests/fixtures/kube/"

static char tmp[256], fixdir[PATH_MAX];

static void setup(void)
{
	tu_tmpdir_make(tmp, sizeof(tmp), "kube-unit");
	cr_assert_not_null(realpath("tests/fixtures/kube", fixdir));
	unsetenv("KUBECONFIG");
	/* a CI runner in a pod has these: the resolution order would find its ServiceAccount */
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("POD_NAMESPACE");
	tu_log_capture(MG_LOG_DEBUG);
}

static void teardown(void)
{
	tu_log_capture_stop();
	tu_tmpdir_remove(tmp);
	unsetenv("KUBECONFIG");
	unsetenv("MG_PLUGIN_DIR");
}

TestSuite(kube, .init = setup, .fini = teardown, .timeout = 60);

static mg_kube_config *load_ok(const char *kubeconfig, const char *context)
{
	mg_kube_config_options o = {.kubeconfig = kubeconfig, .context = context};
	mg_kube_config *c = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_kube_config_load(&c, &o, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	mg_error_clear(&err);
	return c;
}

static void load_fails(const char *kubeconfig, const char *context, mg_error *err)
{
	mg_kube_config_options o = {.kubeconfig = kubeconfig, .context = context};
	mg_kube_config *c = NULL;
	int rc = mg_kube_config_load(&c, &o, err);
	cr_assert_eq(rc, MG_EINVALID, "rc %d: %s", rc, err->message);
	cr_assert_null(c);
}

static const char *fix(const char *name)
{
	static char buf[4][PATH_MAX + 64];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", fixdir, name);
	return buf[i];
}

Test(kube, base64_round_trip_and_rejects)
{
	const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char *e = mg_base64_encode(cases[i], strlen(cases[i]));
		cr_assert_str_eq(e, enc[i]);
		free(e);
		char *d;
		size_t n;
		cr_assert_eq(mg_base64_decode(enc[i], strlen(enc[i]), &d, &n), 0);
		cr_assert_eq(n, strlen(cases[i]));
		cr_assert_str_eq(d, cases[i]);
		free(d);
	}
	char *d;
	size_t n;
	/* line breaks as in pasted data are fine */
	cr_assert_eq(mg_base64_decode("Zm9v\nYmFy\n", 10, &d, &n), 0);
	cr_assert_str_eq(d, "foobar");
	free(d);
	const char *bad[] = {"Zm9", "Zm9v!", "Zg=", "Zg==Zg==", "=Zg=", "Z===", "Zm9vY"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(mg_base64_decode(bad[i], strlen(bad[i]), &d, &n), -1, "%s", bad[i]);
		cr_expect_null(d);
	}
}

Test(kube, kubeconfig_merge_first_file_wins)
{
	char env[PATH_MAX * 2 + 8];
	snprintf(env, sizeof(env), "%s:%s", fix("a.yaml"), fix("b.yaml"));
	setenv("KUBECONFIG", env, 1);
	mg_kube_config *c = load_ok(NULL, NULL);
	cr_assert_str_eq(c->context, "a-ctx");
	cr_assert_str_eq(c->context_file, fix("a.yaml"));
	cr_assert_str_eq(c->server, "https://a.example:6443", "trailing slash dropped");
	cr_assert_str_eq(c->ca_file, fix("certs/ca.pem"), "relative to a.yaml's directory");
	cr_assert_str_eq(c->token, "tok-A-fixture-SECRET-1x9");
	cr_assert_str_eq(c->namespace_, "shop");
	cr_assert_str_eq(c->files, env);
	mg_kube_config_free(c);

	/* b first: b's current-context, and b's c1 wins for "shared"... */
	snprintf(env, sizeof(env), "%s:%s", fix("b.yaml"), fix("a.yaml"));
	setenv("KUBECONFIG", env, 1);
	c = load_ok(NULL, NULL);
	cr_assert_str_eq(c->context, "b-ctx");
	cr_assert_str_eq(c->server, "https://10.0.0.1:6443");
	cr_assert_str_eq(c->tls_server_name, "kube.internal");
	cr_assert_null(c->ca_file);
	cr_assert_str_eq(c->ca_pem, "-----BEGIN CERTIFICATE-----\nMIIBfixture\n-----END "
	                            "CERTIFICATE-----\n");
	cr_assert_str_eq(c->client_cert_pem,
	                 "-----BEGIN CERTIFICATE-----\nMIIBclientcert\n-----END "
	                 "CERTIFICATE-----\n");
	cr_assert_str_eq(c->client_key_pem, "-----BEGIN PRIVATE KEY-----\nKEY-b64-SECRET-7q2\n-----"
	                                    "END PRIVATE KEY-----\n");
	cr_assert_null(c->token);
	cr_assert_null(c->namespace_);
	mg_kube_config_free(c);

	/* ...and --context picks a context the other file defines, its cluster from b */
	c = load_ok(NULL, "a-ctx");
	cr_assert_str_eq(c->context_file, fix("a.yaml"));
	cr_assert_str_eq(c->server, "https://b.example:6443", "c1 from b.yaml, the first file");
	cr_assert_str_eq(c->token, "tok-B-loses-SECRET", "u1 from b.yaml too");
	mg_kube_config_free(c);

	/* a tokenFile relative to b.yaml */
	c = load_ok(NULL, "tf");
	cr_assert_str_eq(c->token_file, fix("../tokens/t1"));
	mg_kube_config_free(c);
}

Test(kube, kubeconfig_missing_files_in_KUBECONFIG_are_skipped)
{
	char env[PATH_MAX * 2 + 64];
	snprintf(env, sizeof(env), "%s/nope.yaml::%s", tmp, fix("a.yaml"));
	setenv("KUBECONFIG", env, 1);
	mg_kube_config *c = load_ok(NULL, NULL);
	cr_assert_str_eq(c->context, "a-ctx");
	cr_assert_str_eq(c->files, fix("a.yaml"));
	mg_kube_config_free(c);

	snprintf(env, sizeof(env), "%s/nope.yaml", tmp);
	setenv("KUBECONFIG", env, 1);
	mg_error err = MG_ERROR_INIT;
	load_fails(NULL, NULL, &err);
	cr_assert(strstr(err.message, "none of the files in KUBECONFIG"), "%s", err.message);
	mg_error_clear(&err);
}

Test(kube, kubeconfig_plan_file_overrides_KUBECONFIG)
{
	setenv("KUBECONFIG", fix("a.yaml"), 1);
	mg_kube_config *c = load_ok(fix("b.yaml"), NULL);
	cr_assert_str_eq(c->context, "b-ctx");
	cr_assert_str_eq(c->files, fix("b.yaml"));
	mg_kube_config_free(c);

	/* a plan's file must exist: it is not skipped like a KUBECONFIG entry */
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/none.yaml", tmp);
	mg_error err = MG_ERROR_INIT;
	load_fails(missing, NULL, &err);
	cr_assert(strstr(err.message, "cannot read kubeconfig") && strstr(err.message, missing),
	          "%s", err.message);
	mg_error_clear(&err);
}

Test(kube, kubeconfig_default_is_home_kube_config)
{
	char home[300], kdir[320], cfg[340], *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	snprintf(home, sizeof(home), "%s/home", tmp);
	snprintf(kdir, sizeof(kdir), "%s/.kube", home);
	snprintf(cfg, sizeof(cfg), "%s/config", kdir);
	cr_assert_eq(mkdir(home, 0700), 0);
	setenv("HOME", home, 1);
	mg_error err = MG_ERROR_INIT;
	mg_kube_config_options o = {0};
	mg_kube_config *c = NULL;
	int rc = mg_kube_config_load(&c, &o, &err);
	cr_expect_eq(rc, MG_EINVALID);
	cr_expect(strstr(err.message, "no kubeconfig") && strstr(err.message, cfg), "%s",
	          err.message);
	mg_error_clear(&err);
	cr_assert_eq(mkdir(kdir, 0700), 0);
	char *text;
	size_t len;
	cr_assert_eq(mg_fs_read_all(&text, &len, fix("insecure.yaml"), &err), 0);
	FILE *f = fopen(cfg, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	free(text);
	rc = mg_kube_config_load(&c, &o, &err);
	if (old)
		setenv("HOME", old, 1);
	free(old);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert(c->insecure);
	cr_assert_str_eq(c->files, cfg);
	mg_kube_config_free(c);
}

Test(kube, kubeconfig_bad_base64_names_position_not_value)
{
	mg_error err = MG_ERROR_INIT;
	load_fails(FIX "bad-base64.yaml", NULL, &err);
	cr_assert_str_eq(err.message,
	                 FIX "bad-base64.yaml:12:22: users[0].user.client-key-data: not valid "
	                     "base64 (the field holds the base64 of the PEM data)");
	cr_assert_eq(err.ndiags, 1);
	cr_assert_eq(err.diags[0].line, 12);
	cr_assert_eq(err.diags[0].col, 22);
	cr_assert_str_eq(err.diags[0].path, "users[0].user.client-key-data");
	cr_assert_null(strstr(tu_log_text(), "SECRET"));
	mg_error_clear(&err);
}

Test(kube, kubeconfig_yaml_error_position)
{
	mg_error err = MG_ERROR_INIT;
	load_fails(FIX "bad-yaml.yaml", NULL, &err);
	cr_assert(!strncmp(err.message, FIX "bad-yaml.yaml:6:6: not valid YAML: ",
	                   strlen(FIX "bad-yaml.yaml:6:6: not valid YAML: ")),
	          "%s", err.message);
	mg_error_clear(&err);
}

Test(kube, kubeconfig_unknown_names)
{
	mg_error err = MG_ERROR_INIT;
	load_fails(FIX "missing-cluster.yaml", NULL, &err);
	cr_assert_str_eq(err.message,
	                 FIX "missing-cluster.yaml:12:14: contexts[0].context.cluster: "
	                     "cluster staging is not defined (clusters: prod)");
	cr_assert_null(strstr(err.message, "SECRET"));
	mg_error_clear(&err);

	load_fails(FIX "a.yaml", "nope", &err);
	cr_assert_str_eq(err.message,
	                 "context nope is not defined in " FIX "a.yaml (contexts: a-ctx, shared)");
	mg_error_clear(&err);
}

Test(kube, kubeconfig_insecure_and_ca_conflict)
{
	mg_kube_config *c = load_ok(FIX "insecure.yaml", NULL);
	cr_assert(c->insecure);
	cr_assert_null(c->user);
	mg_kube_config_free(c);

	mg_error err = MG_ERROR_INIT;
	load_fails(FIX "insecure-with-ca.yaml", NULL, &err);
	cr_assert_str_eq(err.message, FIX "insecure-with-ca.yaml:8:31: "
	                                  "clusters[0].cluster.insecure-skip-tls-verify: "
	                                  "insecure-skip-tls-verify cannot be combined with a "
	                                  "certificate-authority: remove one");
	mg_error_clear(&err);
}

Test(kube, kubeconfig_exec_api_version)
{
	mg_error err = MG_ERROR_INIT;
	load_fails(FIX "exec-old.yaml", NULL, &err);
	cr_assert_str_eq(err.message, FIX "exec-old.yaml:10:19: users[0].user.exec.apiVersion: "
	                                  "client.authentication.k8s.io/v1alpha1 is not supported: "
	                                  "use client.authentication.k8s.io/v1 (or v1beta1)");
	mg_error_clear(&err);

	mg_kube_config *c = load_ok(FIX "exec.yaml", NULL);
	cr_assert_not_null(c->exec);
	cr_assert_str_eq(c->exec->command, "./plugin.sh");
	cr_assert_str_eq(c->exec->dir, fixdir);
	cr_assert_eq(c->exec->nargs, 2);
	cr_assert_str_eq(c->exec->args[1], "value");
	cr_assert_eq(c->exec->nenv, 1);
	cr_assert_str_eq(c->exec->env[0], "MG_PLUGIN_EXTRA=from-kubeconfig");
	mg_kube_config_free(c);
}

static void write_file(const char *name, const char *text)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", tmp, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static char *read_tmp(const char *name)
{
	char p[400], *text = NULL;
	size_t len;
	mg_error err = MG_ERROR_INIT;
	snprintf(p, sizeof(p), "%s/%s", tmp, name);
	cr_assert_eq(mg_fs_read_all(&text, &len, p, &err), 0, "%s", err.message);
	return text;
}

#define PLUGIN_TOKEN "plugin-tok-SECRET-55a1"

Test(kube, exec_plugin_runs_and_output_stays_secret)
{
	setenv("MG_PLUGIN_DIR", tmp, 1);
	write_file("token", PLUGIN_TOKEN);
	write_file("expiry", "2031-01-02T03:04:05Z");
	mg_kube_config *c = load_ok(FIX "exec.yaml", NULL);
	char *tok, *cert, *key;
	int64_t exp;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_kube_exec_run(c->exec, 5000, &tok, &cert, &key, &exp, &err), 0, "%s",
	             err.message);
	cr_assert_str_eq(tok, PLUGIN_TOKEN);
	cr_assert_null(cert);
	cr_assert_eq(exp, 1925089445);
	free(tok);
	char *info = read_tmp("info"), *args = read_tmp("args"), *extra = read_tmp("extra");
	cr_assert_str_eq(info, "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
	                       "\"ExecCredential\",\"spec\":{\"interactive\":false}}");
	cr_assert_str_eq(args, "--flag\nvalue\n");
	cr_assert_str_eq(extra, "from-kubeconfig");
	free(info);
	free(args);
	free(extra);
	/* stderr reaches the log; stdout (the credential) never does */
	cr_assert(strstr(tu_log_text(), "exec plugin ./plugin.sh: plugin stderr: logging in (mode "
	                                "ok)"),
	          "%s", tu_log_text());
	cr_assert_null(strstr(tu_log_text(), PLUGIN_TOKEN));

	write_file("mode", "wrong-version");
	cr_assert_eq(mg_kube_exec_run(c->exec, 5000, &tok, &cert, &key, &exp, &err), MG_ERROR);
	cr_assert_str_eq(err.message, "exec plugin ./plugin.sh returned apiVersion "
	                              "client.authentication.k8s.io/v1beta1, but the kubeconfig "
	                              "asks for client.authentication.k8s.io/v1; update the plugin "
	                              "or the kubeconfig's exec.apiVersion");
	mg_error_clear(&err);

	write_file("mode", "garbage");
	cr_assert_eq(mg_kube_exec_run(c->exec, 5000, &tok, &cert, &key, &exp, &err), MG_ERROR);
	cr_assert_str_eq(err.message, "exec plugin ./plugin.sh did not print an ExecCredential "
	                              "(its output is not a JSON object)");
	mg_error_clear(&err);

	write_file("mode", "fail");
	cr_assert_eq(mg_kube_exec_run(c->exec, 5000, &tok, &cert, &key, &exp, &err), MG_ERROR);
	cr_assert_str_eq(err.message, "exec plugin ./plugin.sh failed (exit status 3); its "
	                              "messages are in the log");
	cr_assert(strstr(tu_log_text(), "plugin stderr: no session, run login first"));
	mg_error_clear(&err);

	write_file("mode", "sleep");
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_kube_exec_run(c->exec, 300, &tok, &cert, &key, &exp, &err), MG_ERROR);
	cr_assert_lt(tu_now_ms() - t0, 3000, "the timeout kills the plugin and what it started");
	cr_assert_str_eq(err.message, "exec plugin ./plugin.sh did not finish within 0.3 s; it may "
	                              "be waiting for input it cannot get (migrate runs "
	                              "non-interactively)");
	mg_error_clear(&err);

	char *runs = read_tmp("runs");
	cr_assert_str_eq(runs, "run\nrun\nrun\nrun\nrun\n");
	free(runs);
	cr_assert_null(strstr(tu_log_text(), PLUGIN_TOKEN));
	mg_kube_config_free(c);
}

/* ---- in-cluster configuration ---- */

Test(kube, incluster_server_url_from_the_environment)
{
	static const struct {
		const char *host, *port, *url;
	} ok[] = {
	    {"10.96.0.1", "443", "https://10.96.0.1:443"},
	    {"kubernetes.default.svc", "6443", "https://kubernetes.default.svc:6443"},
	    /* IPv6 bracketed, as net.JoinHostPort does, or the port would read as a group */
	    {"fd00:10:96::1", "443", "https://[fd00:10:96::1]:443"},
	    {"::1", "65535", "https://[::1]:65535"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char url[128];
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(
		    mg_kube_incluster_server(url, sizeof(url), ok[i].host, ok[i].port, &err), 0,
		    "%s: %s", ok[i].host, err.message);
		cr_expect_str_eq(url, ok[i].url);
	}
	static const struct {
		const char *host, *port, *msg;
	} bad[] = {
	    {NULL, "443", "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set"},
	    {"10.96.0.1", "", "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both"},
	    {"10.96.0.1", "0", "KUBERNETES_SERVICE_PORT \"0\" is not a port number"},
	    {"10.96.0.1", "65536", "KUBERNETES_SERVICE_PORT \"65536\" is not a port number"},
	    {"10.96.0.1", "443x", "KUBERNETES_SERVICE_PORT \"443x\" is not a port number"},
	    {"10.96.0.1", "-1", "KUBERNETES_SERVICE_PORT \"-1\" is not a port number"},
	    /* what would send the token elsewhere: userinfo, a path, another URL */
	    {"evil.example@10.96.0.1", "443", "KUBERNETES_SERVICE_HOST \"evil.example@10.96.0.1\""},
	    {"10.96.0.1/x", "443", "is not a host name or an IP address"},
	    {"[::1]", "443", "is not a host name or an IP address"},
	    {"a b", "443", "is not a host name or an IP address"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char url[128];
		mg_error err = MG_ERROR_INIT;
		cr_expect_eq(
		    mg_kube_incluster_server(url, sizeof(url), bad[i].host, bad[i].port, &err),
		    MG_EINVALID, "%s:%s", bad[i].host ? bad[i].host : "(null)", bad[i].port);
		cr_expect(strstr(err.message, bad[i].msg), "%s", err.message);
		mg_error_clear(&err);
	}
}

/* tmp/sa as the kubelet mounts a ServiceAccount (namespace NULL: no namespace file). */
static const char *make_sa(const char *namespace_)
{
	static char sa[400];
	snprintf(sa, sizeof(sa), "%s/sa", tmp);
	mkdir(sa, 0755);
	write_file("sa/token", "sa-token-SECRET-0c1d\n");
	write_file("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
	if (namespace_)
		write_file("sa/namespace", namespace_);
	return sa;
}

static void in_a_pod(void)
{
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
}

/* HOME with no ~/.kube/config, or with the given fixture as one. */
static void home_with(const char *fixture)
{
	char home[400], kdir[420];
	snprintf(home, sizeof(home), "%s/home", tmp);
	snprintf(kdir, sizeof(kdir), "%s/.kube", home);
	mkdir(home, 0755);
	setenv("HOME", home, 1);
	if (!fixture)
		return;
	mkdir(kdir, 0755);
	char *text;
	size_t len;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&text, &len, fix(fixture), &err), 0);
	write_file("home/.kube/config", text);
	free(text);
}

static int load_opts(mg_kube_config **c, const char *kubeconfig, const char *context,
                     const char *sa, mg_error *err)
{
	mg_kube_config_options o = {
	    .kubeconfig = kubeconfig, .context = context, .serviceaccount_dir = sa};
	*c = NULL;
	return mg_kube_config_load(c, &o, err);
}

Test(kube, incluster_resolution_order)
{
	const char *sa = make_sa("shop\n");
	in_a_pod();
	home_with("b.yaml");
	mg_kube_config *c;
	mg_error err = MG_ERROR_INIT;

	/* ~/.kube/config exists: it comes before the pod's ServiceAccount */
	cr_assert_eq(load_opts(&c, NULL, NULL, sa, &err), 0, "%s", err.message);
	cr_expect_not(c->in_cluster);
	cr_expect_str_eq(c->context, "b-ctx");
	mg_kube_config_free(c);
	/* KUBECONFIG before both */
	setenv("KUBECONFIG", fix("a.yaml"), 1);
	cr_assert_eq(load_opts(&c, NULL, NULL, sa, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->context, "a-ctx");
	mg_kube_config_free(c);
	/* the plan's file before everything */
	cr_assert_eq(load_opts(&c, fix("insecure.yaml"), NULL, sa, &err), 0, "%s", err.message);
	cr_expect_not(c->in_cluster);
	cr_expect_str_eq(c->files, fix("insecure.yaml"));
	mg_kube_config_free(c);
	/* the plan's in-cluster before everything too */
	cr_assert_eq(load_opts(&c, "in-cluster", NULL, sa, &err), 0, "%s", err.message);
	cr_expect(c->in_cluster);
	mg_kube_config_free(c);

	/* KUBECONFIG naming only missing files: nothing there, so the pod's (clientcmd) */
	setenv("KUBECONFIG", tu_at("%s/none.yaml", tmp), 1);
	cr_assert_eq(load_opts(&c, NULL, NULL, sa, &err), 0, "%s", err.message);
	cr_expect(c->in_cluster);
	mg_kube_config_free(c);
	/* no KUBECONFIG, no ~/.kube/config: the pod's */
	unsetenv("KUBECONFIG");
	home_with(NULL);
	unlink(tu_at("%s/home/.kube/config", tmp));
	cr_assert_eq(load_opts(&c, NULL, NULL, sa, &err), 0, "%s", err.message);
	cr_expect(c->in_cluster);
	cr_expect_str_eq(c->server, "https://10.96.0.1:443");
	cr_expect_str_eq(c->ca_file, tu_at("%s/ca.crt", sa));
	cr_expect_str_eq(c->token_file, tu_at("%s/token", sa));
	cr_expect_null(c->token); /* read by the client, again as it rotates */
	cr_expect_str_eq(c->namespace_, "shop");
	cr_expect_str_eq(c->context, "in-cluster");
	cr_expect_null(c->user);
	mg_kube_config_free(c);

	/* a context asked for by name is never the ServiceAccount */
	cr_assert_eq(load_opts(&c, NULL, "prod", sa, &err), MG_EINVALID);
	cr_expect_str_eq(err.message,
	                 tu_at("no kubeconfig defines context prod: kubernetes.kubeconfig is not "
	                       "set, KUBECONFIG is not set and %s/home/.kube/config does not exist",
	                       tmp));
	mg_error_clear(&err);
	cr_assert_eq(load_opts(&c, "in-cluster", "prod", sa, &err), MG_EINVALID);
	cr_expect(strstr(err.message, "context prod was asked for, but the in-cluster "
	                              "configuration has no contexts"),
	          "%s", err.message);
	mg_error_clear(&err);

	/* one variable missing: not a pod, and the error says everything looked for */
	unsetenv("KUBERNETES_SERVICE_PORT");
	cr_assert_eq(load_opts(&c, NULL, NULL, sa, &err), MG_EINVALID);
	cr_expect_str_eq(
	    err.message,
	    tu_at("no kubeconfig and not in a pod: kubernetes.kubeconfig is not set, KUBECONFIG is "
	          "not set and %s/home/.kube/config does not exist, and the in-cluster "
	          "configuration is not possible (KUBERNETES_SERVICE_PORT is not set); set "
	          "kubernetes.kubeconfig (a file, or in-cluster) or KUBECONFIG",
	          tmp));
	mg_error_clear(&err);
	/* both set, no token: not a pod either */
	in_a_pod();
	unlink(tu_at("%s/token", sa));
	cr_assert_eq(load_opts(&c, NULL, NULL, sa, &err), MG_EINVALID);
	cr_expect(strstr(err.message, tu_at("(%s/token does not exist)", sa)), "%s", err.message);
	mg_error_clear(&err);
	/* asked for explicitly, the missing token is said as such */
	cr_assert_eq(load_opts(&c, "in-cluster", NULL, sa, &err), MG_EINVALID);
	cr_expect(strstr(err.message, tu_at("in-cluster: %s/token does not exist (is a "
	                                    "ServiceAccount token mounted?",
	                                    sa)),
	          "%s", err.message);
	mg_error_clear(&err);
}

Test(kube, incluster_namespace_and_ca)
{
	const char *sa = make_sa(NULL);
	in_a_pod();
	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	mg_kube_config *c;
	mg_error err = MG_ERROR_INIT;
	/* no namespace file: none here, so the client's "default" */
	cr_assert_eq(load_opts(&c, "in-cluster", NULL, sa, &err), 0, "%s", err.message);
	cr_expect_null(c->namespace_);
	cr_expect_str_eq(c->server, "https://[fd00:10:96::1]:443");
	mg_kube_config_free(c);
	/* POD_NAMESPACE (the downward API) first, as client-go */
	write_file("sa/namespace", "shop");
	setenv("POD_NAMESPACE", "ops", 1);
	cr_assert_eq(load_opts(&c, "in-cluster", NULL, sa, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->namespace_, "ops");
	mg_kube_config_free(c);
	unsetenv("POD_NAMESPACE");
	write_file("sa/namespace", "Not_A_Namespace\n");
	cr_assert_eq(load_opts(&c, "in-cluster", NULL, sa, &err), MG_EINVALID);
	cr_expect(strstr(err.message, "the namespace in ") &&
	              strstr(err.message, "(\"Not_A_Namespace\") is not a namespace name"),
	          "%s", err.message);
	mg_error_clear(&err);
	/* a broken mount without the CA is said now, not as a TLS error later */
	write_file("sa/namespace", "shop");
	unlink(tu_at("%s/ca.crt", sa));
	cr_assert_eq(load_opts(&c, "in-cluster", NULL, sa, &err), MG_EINVALID);
	cr_expect_str_eq(err.message,
	                 tu_at("in-cluster: the cluster's CA %s/ca.crt does not exist", sa));
	mg_error_clear(&err);
	cr_expect_null(strstr(tu_log_text(), "sa-token-SECRET"));
}
