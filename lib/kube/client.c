/*
 * A kube-apiserver client over lib/http.h: credentials from the kubeconfig
 * (token, tokenFile, client certificate, or an exec plugin's, cached until
 * it expires) or the pod's ServiceAccount, and Kubernetes Status answers
 * turned into messages an operator can act on. A client may live for weeks
 * (the autopilot): a token from a file is read again as the kubelet or an
 * operator rotates it, an exec plugin run again as its credential expires,
 * and either at once when the server answers 401.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fs.h"
#include "http.h"
#include "internal.h"
#include "kube.h"
#include "log.h"
#include "secret.h"

/* client-go's cachingTokenSource re-reads a token file at most once a minute */
#define DEFAULT_TOKEN_REREAD_MS 60000

struct mg_kube_client {
	mg_kube_config *cfg;
	char *ns;
	int64_t timeout_ms, exec_timeout_ms, deadline_ms;
	const mg_cancel *cancel;
	/* what is sent now: the kubeconfig's, the token file's latest, or the exec plugin's */
	char *token, *cert_pem, *key_pem;
	int64_t token_read_ms;   /* mg_clock_ms() when the token file was last read */
	int64_t token_reread_ms; /* how long its token is used before it is read again */
	/* what the last 401 made of the credential, for its message: "" none was fetched again */
	char after_401[700];
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

/* "tokenFile P of user U" or "the ServiceAccount token P": where a file's token comes from. */
static void token_file_name(const mg_kube_client *c, char *buf, size_t size)
{
	if (c->cfg->in_cluster)
		snprintf(buf, size, "the ServiceAccount token %s", c->cfg->token_file);
	else
		snprintf(buf, size, "tokenFile %s of user %s", c->cfg->token_file, c->cfg->user);
}

/*
 * Reads the token file into c->token. *changed (may be NULL): the token is
 * not the one sent so far. On an error c->token is left as it was.
 */
static int read_token_file(mg_kube_client *c, bool *changed, mg_error *err)
{
	char *raw = NULL, name[4200];
	size_t len = 0;
	mg_error ferr = MG_ERROR_INIT;
	token_file_name(c, name, sizeof(name));
	if (changed)
		*changed = false;
	if (mg_fs_read_file(&raw, &len, c->cfg->token_file, MG_INPUT_MAX_BYTES, "the tokenFile",
	                    &ferr)) {
		int rc;
		if (c->cfg->in_cluster)
			rc = mg_error_set(err, MG_EINVALID, "cannot read %s: %s", name,
			                  ferr.message);
		else
			rc = mg_error_set(err, MG_EINVALID,
			                  "cannot read the tokenFile of user %s in %s: %s",
			                  c->cfg->user, c->cfg->context_file, ferr.message);
		mg_error_clear(&ferr);
		return rc;
	}
	const char *s;
	size_t n;
	bool bad = !mg_secret_token_line(raw, &s, &n);
	int rc = 0;
	char *tok = NULL;
	if (!n)
		rc = mg_error_set(err, MG_EINVALID, "%s is empty", name);
	else if (bad)
		rc = mg_error_set(err, MG_EINVALID,
		                  "%s contains spaces or control characters; it must hold the "
		                  "token alone",
		                  name);
	else if (!(tok = strndup(s, n)) || mg_secret_register(tok))
		rc = mg_kube_oom(err);
	explicit_bzero(raw, len);
	free(raw);
	if (rc) {
		mg_kube_wipe_free(tok);
		return rc;
	}
	if (changed)
		*changed = !c->token || strcmp(c->token, tok) != 0;
	mg_kube_wipe_free(c->token);
	c->token = tok;
	c->token_read_ms = mg_clock_ms();
	return 0;
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
	if (c->cfg->token_file && mg_clock_ms() - c->token_read_ms >= c->token_reread_ms) {
		/* the kubelet rotates a ServiceAccount token long before it expires: as
		 * client-go, a file that cannot be read now keeps the token it gave last */
		mg_error rerr = MG_ERROR_INIT;
		if (read_token_file(c, NULL, &rerr)) {
			mg_log(MG_LOG_WARN, "%s; the token read before is used meanwhile",
			       rerr.message);
			c->token_read_ms = mg_clock_ms();
		}
		mg_error_clear(&rerr);
	}
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
	c->token_reread_ms =
	    opts && opts->token_reread_ms > 0 ? opts->token_reread_ms : DEFAULT_TOKEN_REREAD_MS;
	if (!(c->ns = strdup(ns)) || !(c->discovery = json_object())) {
		rc = mg_kube_oom(err);
		goto fail;
	}
	if (c->cfg->token && !(c->token = strdup(c->cfg->token))) {
		rc = mg_kube_oom(err);
		goto fail;
	}
	if (!c->token && c->cfg->token_file && (rc = read_token_file(c, NULL, err)))
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

/*
 * A 401, naming where the refused credential came from (never the credential)
 * and what was done about it: a token file read again, an exec plugin run again.
 */
static int unauthorized(mg_kube_client *c, mg_error *err, const char *what)
{
	const mg_kube_config *k = c->cfg;
	char src[1200];
	if (k->in_cluster)
		snprintf(src, sizeof(src), "the ServiceAccount token from %s (in-cluster)",
		         k->token_file);
	else if (k->token_file)
		snprintf(src, sizeof(src),
		         "the token from tokenFile %s of user %s (context %s in %s)", k->token_file,
		         k->user, k->context, k->context_file);
	else if (k->exec)
		snprintf(src, sizeof(src),
		         "the credentials from exec plugin %s of user %s (context %s in %s)",
		         k->exec->command, k->user, k->context, k->context_file);
	else
		snprintf(src, sizeof(src), "the credentials of user %s (context %s in %s)",
		         k->user ? k->user : "(none)", k->context, k->context_file);
	return mg_error_set(err, MG_ERROR,
	                    "%s: 401 Unauthorized: %s refused %s%s%s; the token or certificate is "
	                    "wrong, expired or revoked",
	                    what, k->server, src, c->after_401[0] ? ", " : "", c->after_401);
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
	return unauthorized(c, err, what);
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
	c->after_401[0] = '\0';
	int rc = ensure_credentials(c, err);
	if (!rc)
		rc = send_once(c, &res, method, url, content_type, body, err);
	if (!rc && res.status == 401 && c->cfg->exec) {
		/* the plugin's credential was revoked or expired early: one fresh one, once */
		mg_log(MG_LOG_INFO, "%s: 401 from the cluster; running exec plugin %s again", what,
		       c->cfg->exec->command);
		mg_http_response_clear(&res);
		snprintf(c->after_401, sizeof(c->after_401), "run again after the first 401");
		rc = run_exec(c, err);
		if (!rc)
			rc = send_once(c, &res, method, url, content_type, body, err);
	} else if (!rc && res.status == 401 && c->cfg->token_file) {
		/*
		 * Rotated under us (the kubelet swaps a ServiceAccount token well before
		 * the old one expires, an operator rewrites a tokenFile): read it now
		 * rather than at the next minute, and send once more if it changed.
		 * client-go only drops its cache here and leaves the retry to the caller;
		 * an autopilot has no one to retry for it.
		 */
		bool changed = false;
		mg_error rerr = MG_ERROR_INIT;
		if (read_token_file(c, &changed, &rerr)) {
			snprintf(c->after_401, sizeof(c->after_401),
			         "which could not be read again after the 401: %.600s",
			         rerr.message);
		} else if (!changed) {
			snprintf(c->after_401, sizeof(c->after_401),
			         "read again after the 401 and unchanged");
		} else {
			mg_log(MG_LOG_INFO,
			       "%s: 401 from the cluster; the token file %s has a new "
			       "token, sending again",
			       what, c->cfg->token_file);
			snprintf(c->after_401, sizeof(c->after_401),
			         "whose new token, read after a first 401, was refused too");
			mg_http_response_clear(&res);
			rc = send_once(c, &res, method, url, content_type, body, err);
		}
		mg_error_clear(&rerr);
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
