/*
 * libFuzzer target for what lib/kube/ makes of Kubernetes API answers
 * (Status errors, discovery documents, apply results, the diff, rollout
 * status), behind the real client, with the answers from the input
 * (fuzzutil.h). The input's first line picks the call:
 *   apply | apply-widget   server-side apply of a Deployment | of a custom
 *                          kind (API discovery first)
 *   diff | diff-widget     the dry-run diff
 *   rollout                `kubectl rollout status` (until the answers run out)
 *   anything else          a GET
 * Any answers must give a result or an error, never a crash, a leak or
 * undefined behaviour.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char kubeconfig[] =
    "apiVersion: v1\nkind: Config\ncurrent-context: fuzz\n"
    "clusters:\n- name: c\n  cluster:\n    server: https://kube.fuzz:6443\n"
    "users:\n- name: u\n  user:\n    token: fuzz-token-0123456789\n"
    "contexts:\n- name: fuzz\n  context: {cluster: c, user: u, namespace: shop}\n";

static json_t *object(bool widget)
{
	if (widget)
		return json_pack("{s:s, s:s, s:{s:s}, s:{s:i}}", "apiVersion", "example.com/v1",
		                 "kind", "Widget", "metadata", "name", "w", "spec", "size", 3);
	return json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:i}}", "apiVersion", "apps/v1", "kind",
	                 "Deployment", "metadata", "name", "web", "labels", "app", "web", "spec",
	                 "replicas", 3);
}

static void progress(const char *msg, void *ud)
{
	(void)ud;
	volatile size_t n = strlen(msg);
	(void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *path;
	if (!path)
		path = fz_temp_file("kubeconfig", kubeconfig, sizeof(kubeconfig) - 1);
	fz_quiet_log();
	const uint8_t *nl = memchr(data, '\n', size);
	size_t oplen = nl ? (size_t)(nl - data) : size;
	char op[32] = "";
	snprintf(op, sizeof(op), "%.*s", (int)(oplen < sizeof(op) ? oplen : sizeof(op) - 1),
	         (const char *)data);
	const uint8_t *rest = nl ? nl + 1 : data + size;
	fz_http_start(rest, size - (size_t)(rest - data));

	mg_kube_config_options o = {.kubeconfig = path, .timeout_ms = 1000};
	mg_kube_client *c = NULL;
	mg_error err = MG_ERROR_INIT;
	if (mg_kube_client_new(&c, &o, &err) == 0) {
		bool widget = strstr(op, "widget") != NULL;
		if (!strncmp(op, "apply", 5)) {
			json_t *obj = object(widget), *res = NULL;
			mg_kube_apply_options ao = {.force = true};
			if (mg_kube_apply(c, obj, &ao, &res, &err) == 0) {
				char *s = json_dumps(res, 0);
				free(s);
			}
			json_decref(res);
			json_decref(obj);
		} else if (!strncmp(op, "diff", 4)) {
			json_t *obj = object(widget);
			char *text = NULL;
			bool changed = false;
			if (mg_kube_diff(c, obj, &text, &changed, &err) == 0) {
				volatile size_t n = strlen(text);
				(void)n;
			}
			free(text);
			json_decref(obj);
		} else if (!strcmp(op, "rollout")) {
			/* polls until a rollout ends or the answers run out (each is a poll) */
			mg_kube_rollout_options ro = {
			    .timeout_ms = 60000, .poll_ms = 1, .progress = progress};
			(void)mg_kube_rollout_wait(c, NULL, "web", &ro, &err);
		} else {
			json_t *doc = NULL;
			(void)mg_kube_get(c, "/api/v1/namespaces/shop/configmaps/x",
			                  "v1 ConfigMap shop/x", &doc, &err);
			json_decref(doc);
		}
		mg_kube_client_free(c);
	}
	fz_report("kubeapi", err.code, &err);
	mg_error_clear(&err);
	fz_http_stop();
	return 0;
}
