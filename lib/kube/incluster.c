/*
 * In-cluster configuration, as client-go's rest.InClusterConfig builds it
 * for a process running in a pod with no kubeconfig: the API server from
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, the ServiceAccount's
 * token, CA and namespace from the files the kubelet mounts. The token is
 * not read here: the client reads the file as a tokenFile, again as the
 * kubelet rotates it (client.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "internal.h"
#include "kube.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

const char *mg_kube_incluster_dir(const mg_kube_config_options *o)
{
	return o && o->serviceaccount_dir && *o->serviceaccount_dir ? o->serviceaccount_dir
	                                                            : SA_DIR;
}

/*
 * The host as it may stand in a URL: a DNS name or IPv4 address, or an IPv6
 * address (bracketed here). Anything that could change what the URL means
 * (a '/', '@', '#', '?', a blank, brackets of its own) is refused: the
 * variable comes from the pod's environment, and a wrong one should fail
 * loudly rather than send the token somewhere else.
 */
static bool host_ok(const char *h, bool *ipv6)
{
	*ipv6 = strchr(h, ':') != NULL;
	if (!*h || strlen(h) > 253)
		return false;
	for (const char *p = h; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		          (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
		          (*ipv6 && (ch == ':' || ch == '%'));
		if (!ok)
			return false;
	}
	return true;
}

int mg_kube_incluster_server(char *out, size_t size, const char *host, const char *port,
                             mg_error *err)
{
	if (!host || !*host || !port || !*port)
		return mg_error_set(
		    err, MG_EINVALID,
		    "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
		    "must both be set (they are in every pod)");
	bool v6;
	if (!host_ok(host, &v6))
		return mg_error_set(err, MG_EINVALID,
		                    "in-cluster: KUBERNETES_SERVICE_HOST \"%.200s\" is not a host "
		                    "name or an IP address",
		                    host);
	char *end;
	errno = 0;
	long p = strtol(port, &end, 10);
	if (errno || *end || p < 1 || p > 65535 || port[0] < '0' || port[0] > '9')
		return mg_error_set(err, MG_EINVALID,
		                    "in-cluster: KUBERNETES_SERVICE_PORT \"%.40s\" is not a port "
		                    "number (1 to 65535)",
		                    port);
	/* net.JoinHostPort: an IPv6 address is bracketed, so its colons are not the port's */
	int n = snprintf(out, size, v6 ? "https://[%s]:%ld" : "https://%s:%ld", host, p);
	if (n < 0 || (size_t)n >= size)
		return mg_error_set(err, MG_EINVALID, "in-cluster: the server URL is too long");
	return 0;
}

bool mg_kube_incluster_possible(const mg_kube_config_options *o)
{
	const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
	char tok[4096];
	snprintf(tok, sizeof(tok), "%s/token", mg_kube_incluster_dir(o));
	struct stat sb;
	/* client-go's inClusterClientConfig.Possible(): both variables, and a token that is
	 * not a directory */
	return h && *h && p && *p && stat(tok, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

void mg_kube_incluster_looked(const mg_kube_config_options *o, char *buf, size_t size)
{
	const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
	char tok[4096];
	snprintf(tok, sizeof(tok), "%s/token", mg_kube_incluster_dir(o));
	struct stat sb;
	int st = stat(tok, &sb);
	const char *why[3] = {!h || !*h ? "KUBERNETES_SERVICE_HOST is not set" : NULL,
	                      !p || !*p ? "KUBERNETES_SERVICE_PORT is not set" : NULL,
	                      st != 0               ? "does not exist"
	                      : S_ISDIR(sb.st_mode) ? "is a directory"
	                                            : NULL};
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < 3; i++)
		if (why[i] && n < size)
			n += (size_t)snprintf(buf + n, size - n, "%s%s%s%s", n ? ", " : "",
			                      i == 2 ? tok : "", i == 2 ? " " : "", why[i]);
}

/* The namespace: POD_NAMESPACE (the downward API), else the ServiceAccount's, as client-go. */
static int read_namespace(mg_kube_config *c, const char *dir, mg_error *err)
{
	const char *env = getenv("POD_NAMESPACE");
	char *text = NULL, path[4096];
	size_t len = 0;
	const char *ns = env, *from = "POD_NAMESPACE";
	snprintf(path, sizeof(path), "%s/namespace", dir);
	if (!ns || !*ns) {
		mg_error ferr = MG_ERROR_INIT;
		if (mg_fs_read_file(&text, &len, path, 4096, "the ServiceAccount namespace",
		                    &ferr)) {
			/* client-go falls back to "default" too */
			mg_error_clear(&ferr);
			return 0;
		}
		while (len &&
		       (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\r'))
			text[--len] = '\0';
		ns = text;
		from = path;
	}
	int rc = 0;
	if (!*ns)
		; /* empty: the default namespace */
	else if (strlen(ns) > 63 ||
	         strspn(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(ns))
		rc = mg_error_set(err, MG_EINVALID,
		                  "in-cluster: the namespace in %s (\"%.80s\") is not a namespace "
		                  "name",
		                  from, ns);
	else if (!(c->namespace_ = strdup(ns)))
		rc = mg_kube_oom(err);
	free(text);
	return rc;
}

int mg_kube_incluster_load(mg_kube_config *c, const mg_kube_config_options *o, mg_error *err)
{
	const char *dir = mg_kube_incluster_dir(o);
	if (o && o->context && *o->context)
		return mg_error_set(
		    err, MG_EINVALID,
		    "context %s was asked for, but the in-cluster configuration has "
		    "no contexts: remove kubernetes.context (or --context)",
		    o->context);
	char url[600];
	int rc = mg_kube_incluster_server(url, sizeof(url), getenv("KUBERNETES_SERVICE_HOST"),
	                                  getenv("KUBERNETES_SERVICE_PORT"), err);
	if (rc)
		return rc;
	c->in_cluster = true;
	if (!(c->server = strdup(url)) || !(c->files = strdup("in-cluster")) ||
	    !(c->context = strdup("in-cluster")) || asprintf(&c->token_file, "%s/token", dir) < 0 ||
	    asprintf(&c->ca_file, "%s/ca.crt", dir) < 0) {
		c->token_file = c->ca_file = NULL; /* asprintf leaves them undefined */
		return mg_kube_oom(err);
	}
	struct stat sb;
	if (stat(c->token_file, &sb) != 0 || S_ISDIR(sb.st_mode))
		return mg_error_set(err, MG_EINVALID,
		                    "in-cluster: %s %s (is a ServiceAccount token mounted? "
		                    "automountServiceAccountToken: false turns it off)",
		                    c->token_file,
		                    stat(c->token_file, &sb) == 0 ? "is a directory"
		                                                  : "does not exist");
	/* client-go goes on with the system's CAs when ca.crt is missing; a pod always has one,
	 * so its absence is a broken mount, said now rather than as a TLS error later */
	if (stat(c->ca_file, &sb) != 0 || !S_ISREG(sb.st_mode))
		return mg_error_set(
		    err, MG_EINVALID, "in-cluster: the cluster's CA %s %s", c->ca_file,
		    stat(c->ca_file, &sb) == 0 ? "is not a file" : "does not exist");
	return read_namespace(c, dir, err);
}
