/*
 * A kube-apiserver client over lib/http.h: credentials from the kubeconfig
 * (token, tokenFile, client certificate, or an exec plugin's, cached until
 * it expires), and Kubernetes Status answers turned into messages an
 * operator can act on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "http.h"
#include "internal.h"
#include "kube.h"
#include "log.h"
#include "secret.h"

struct mg_kube_client {
	mg_kube_config *cfg;
	char *ns;
	int64_t timeout_ms, exec_timeout_ms, deadline_ms;
	const mg_cancel *cancel;
	/* what is sent now: the kubeconfig's, or the exec plugin's latest */
	char *token, *cert_pem, *key_pem;
	bool exec_valid;
	int64_t exec_expires; /* Unix time; 0: until the server refuses it */
	int exec_runs;
	json_t *discovery; /* "group/version" -> its APIResourceList */
};

void mg_kube_wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

int mg_kube_oom(mg_error *err)
{
	return mg_error_oom(err);
}

static int read_token_file(mg_kube_client *c, mg_error *err)
{
	char *raw = NULL;
	size_t len = 0;
	mg_error ferr = MG_ERROR_INIT;
	if (mg_fs_read_file(&raw, &len, c->cfg->token_file, MG_INPUT_MAX_BYTES, "the tokenFile",
	                    &ferr)) {
		int rc =
		    mg_error_set(err, MG_EINVALID, "cannot read the tokenFile of user %s in %s: %s",
		                 c->cfg->user, c->cfg->context_file, ferr.message);
		mg_error_clear(&ferr);
		return rc;
	}
	const char *s;
	size_t n;
	bool bad = !mg_secret_token_line(raw, &s, &n);
	int rc = 0;
	if (!n)
		rc = mg_error_set(err, MG_EINVALID, "tokenFile %s of user %s is empty",
		                  c->cfg->token_file, c->cfg->user);
	else if (bad)
		rc = mg_error_set(
		    err, MG_EINVALID,
		    "tokenFile %s of user %s contains spaces or control characters; it "
		    "must hold the token alone",
		    c->cfg->token_file, c->cfg->user);
	else if (!(c->token = strndup(s, n)) || mg_secret_register(c->token))
		rc = mg_kube_oom(err);
	explicit_bzero(raw, len);
	free(raw);
	return rc;
}

static int run_exec(mg_kube_client *c, mg_error *err)
{
	mg_kube_wipe_free(c->token);
	mg_kube_wipe_free(c->cert_pem);
	mg_kube_wipe_free(c->key_pem);
	c->token = c->cert_pem = c->key_pem = NULL;
	c->exec_valid = false;
	c->exec_runs++;
	int64_t exp = 0;
	int rc = mg_kube_exec_run(c->cfg->exec, c->exec_timeout_ms, &c->token, &c->cert_pem,
	                          &c->key_pem, &exp, err);
	if (rc)
		return rc;
	c->exec_valid = true;
	c->exec_expires = exp;
	mg_log(MG_LOG_DEBUG, "exec plugin %s gave a credential%s", c->cfg->exec->command,
	       exp ? " with an expiry" : "");
	return 0;
}

static int ensure_credentials(mg_kube_client *c, mg_error *err)
{
	if (!c->cfg->exec)
		return 0;
	/* a little early, so a credential does not expire in flight */
	if (c->exec_valid && (!c->exec_expires || (int64_t)time(NULL) + 10 < c->exec_expires))
		return 0;
	return run_exec(c, err);
}

int mg_kube_client_new(mg_kube_client **out, const mg_kube_config_options *opts, mg_error *err)
{
	*out = NULL;
	mg_kube_client *c = calloc(1, sizeof(*c));
	if (!c)
		return mg_kube_oom(err);
	int rc = mg_kube_config_load(&c->cfg, opts, err);
	if (rc)
		goto fail;
	const char *ns = opts && opts->namespace_ && *opts->namespace_ ? opts->namespace_
	                 : c->cfg->namespace_                          ? c->cfg->namespace_
	                                                               : "default";
	c->timeout_ms = opts ? opts->timeout_ms : 0;
	c->exec_timeout_ms = opts ? opts->exec_timeout_ms : 0;
	c->deadline_ms = opts ? opts->deadline_ms : 0;
	c->cancel = opts ? opts->cancel : NULL;
	if (!(c->ns = strdup(ns)) || !(c->discovery = json_object())) {
		rc = mg_kube_oom(err);
		goto fail;
	}
	if (c->cfg->token && !(c->token = strdup(c->cfg->token))) {
		rc = mg_kube_oom(err);
		goto fail;
	}
	if (!c->token && c->cfg->token_file && (rc = read_token_file(c, err)))
		goto fail;
	if (c->cfg->insecure)
		mg_log(MG_LOG_WARN,
		       "INSECURE: cluster %s (context %s) has insecure-skip-tls-verify: true; "
		       "the API server's certificate is NOT verified, so anyone on the path can "
		       "read and change what migrate sends, credentials included",
		       c->cfg->server, c->cfg->context);
	*out = c;
	return 0;
fail:
	mg_kube_client_free(c);
	return rc;
}

void mg_kube_client_free(mg_kube_client *c)
{
	if (!c)
		return;
	mg_kube_config_free(c->cfg);
	free(c->ns);
	mg_kube_wipe_free(c->token);
	mg_kube_wipe_free(c->cert_pem);
	mg_kube_wipe_free(c->key_pem);
	json_decref(c->discovery);
	free(c);
}

const char *mg_kube_client_namespace(const mg_kube_client *c)
{
	return c->ns;
}

const char *mg_kube_client_server(const mg_kube_client *c)
{
	return c->cfg->server;
}

const char *mg_kube_client_context(const mg_kube_client *c)
{
	return c->cfg->context;
}

bool mg_kube_client_insecure(const mg_kube_client *c)
{
	return c->cfg->insecure;
}

int mg_kube_client_exec_runs(const mg_kube_client *c)
{
	return c->exec_runs;
}

json_t *mg_kube_client_discovery_cache(mg_kube_client *c)
{
	return c->discovery;
}

/* "field (manager), ..." of a 409's causes: which fields, and who holds them. */
static void conflict_list(char *buf, size_t size, json_t *causes)
{
	size_t len = 0, i;
	json_t *cause;
	buf[0] = '\0';
	json_array_foreach(causes, i, cause)
	{
		const char *field = json_string_value(json_object_get(cause, "field"));
		const char *msg = json_string_value(json_object_get(cause, "message"));
		char manager[128] = "";
		const char *q = msg ? strchr(msg, '"') : NULL;
		const char *q2 = q ? strchr(q + 1, '"') : NULL;
		if (q && q2)
			snprintf(manager, sizeof(manager), "%.*s", (int)(q2 - q - 1), q + 1);
		if (len < size)
			len += (size_t)snprintf(buf + len, size - len, "%s%s (managed by %s)",
			                        len ? ", " : "", field ? field : "?",
			                        manager[0] ? manager
			                        : msg      ? msg
			                                   : "another manager");
	}
}

static int status_error(mg_kube_client *c, mg_error *err, long status, const char *what,
                        const mg_http_response *res)
{
	int code = status == 404                    ? MG_ENOTFOUND
	           : status == 409                  ? MG_ECONFLICT
	           : status == 400 || status == 422 ? MG_EINVALID
	                                            : MG_ERROR;
	json_t *st = res->body ? json_loads(res->body, 0, NULL) : NULL;
	mg_scrub_json(st); /* before any of it is cut into a message */
	const char *kind = json_string_value(json_object_get(st, "kind"));
	if (!st || !kind || strcmp(kind, "Status") != 0) {
		/* scrubbed before it is cut: half a token would not be recognised */
		char snippet[200];
		mg_scrub_cut(snippet, sizeof(snippet), res->body ? res->body : "", 0);
		json_decref(st);
		if (status == 401)
			goto unauthorized;
		mg_error_set(err, code, "%s: HTTP %ld from %s%s%s", what, status, c->cfg->server,
		             snippet[0] ? ": " : "", snippet);
		mg_scrub_error(err);
		return code;
	}
	const char *reason = json_string_value(json_object_get(st, "reason"));
	const char *message = json_string_value(json_object_get(st, "message"));
	json_t *causes = json_object_get(json_object_get(st, "details"), "causes");
	if (!reason || !*reason)
		reason = status == 401 ? "Unauthorized" : "Failure";
	if (status == 401) {
		json_decref(st);
		goto unauthorized;
	}
	if (status == 409 && json_array_size(causes) > 0) {
		char list[700];
		conflict_list(list, sizeof(list), causes);
		mg_error_set(err, code,
		             "%s: 409 Conflict: fields managed by another field manager: %s; "
		             "apply with force to take them over",
		             what, list);
	} else if (json_array_size(causes) > 0) {
		char list[700];
		size_t len = 0, i;
		json_t *cause;
		list[0] = '\0';
		json_array_foreach(causes, i, cause)
		{
			const char *f = json_string_value(json_object_get(cause, "field"));
			const char *m = json_string_value(json_object_get(cause, "message"));
			if (len < sizeof(list))
				len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s%s%s",
				                        len ? "; " : "", f && *f ? f : "",
				                        f && *f ? ": " : "", m ? m : "");
		}
		mg_error_set(err, code, "%s: %ld %s: %s", what, status, reason, list);
	} else {
		mg_error_set(err, code, "%s: %ld %s: %s", what, status, reason,
		             message ? message : "(no message)");
	}
	json_decref(st);
	mg_scrub_error(err);
	return code;
unauthorized:
	return mg_error_set(err, MG_ERROR,
	                    "%s: 401 Unauthorized: %s refused the credentials of user %s "
	                    "(context %s in %s); the token or certificate is wrong, expired or "
	                    "revoked",
	                    what, c->cfg->server, c->cfg->user ? c->cfg->user : "(none)",
	                    c->cfg->context, c->cfg->context_file);
}

static int send_once(mg_kube_client *c, mg_http_response *res, const char *method, const char *url,
                     const char *content_type, const char *body, mg_error *err)
{
	const mg_kube_config *k = c->cfg;
	mg_http_request req = {
	    .method = method,
	    .url = url,
	    .body = body,
	    .content_type = content_type,
	    .bearer_token = c->token,
	    .ca_file = k->ca_file,
	    .ca_pem = k->ca_pem,
	    .timeout_ms = c->timeout_ms,
	    .deadline_ms = c->deadline_ms,
	    .cancel = c->cancel,
	    .tls_server_name = k->tls_server_name,
	    .insecure = k->insecure,
	    .client_cert_pem = c->cert_pem ? c->cert_pem : k->client_cert_pem,
	    .client_key_pem = c->key_pem ? c->key_pem : k->client_key_pem,
	    .client_cert_file = c->cert_pem ? NULL : k->client_cert_file,
	    .client_key_file = c->key_pem ? NULL : k->client_key_file,
	};
	int rc = mg_http_do(res, &req, err);
	if (rc)
		mg_scrub_error(err);
	return rc;
}

int mg_kube_request(mg_kube_client *c, const char *method, const char *path,
                    const char *content_type, const char *body, const char *what, long *status,
                    json_t **out, mg_error *err)
{
	if (out)
		*out = NULL;
	if (status)
		*status = 0;
	char *url;
	if (asprintf(&url, "%s%s", c->cfg->server, path) < 0)
		return mg_kube_oom(err);
	mg_http_response res = {0};
	int rc = ensure_credentials(c, err);
	if (!rc)
		rc = send_once(c, &res, method, url, content_type, body, err);
	if (!rc && res.status == 401 && c->cfg->exec) {
		/* the plugin's credential was revoked or expired early: one fresh one, once */
		mg_log(MG_LOG_INFO, "%s: 401 from the cluster; running exec plugin %s again", what,
		       c->cfg->exec->command);
		mg_http_response_clear(&res);
		rc = run_exec(c, err);
		if (!rc)
			rc = send_once(c, &res, method, url, content_type, body, err);
	}
	free(url);
	if (rc) {
		mg_http_response_clear(&res);
		return rc;
	}
	if (status)
		*status = res.status;
	if (res.status < 200 || res.status >= 300) {
		rc = status_error(c, err, res.status, what, &res);
		mg_http_response_clear(&res);
		return rc;
	}
	if (out && res.len) {
		json_error_t jerr;
		*out = json_loadb(res.body, res.len, 0, &jerr);
		if (!*out)
			rc = mg_error_set(err, MG_ERROR,
			                  "%s: %s answered HTTP %ld with invalid JSON: %s", what,
			                  c->cfg->server, res.status, jerr.text);
	}
	mg_http_response_clear(&res);
	return rc;
}

int mg_kube_get(mg_kube_client *c, const char *path, const char *what, json_t **out, mg_error *err)
{
	return mg_kube_request(c, "GET", path, NULL, NULL, what, NULL, out, err);
}
