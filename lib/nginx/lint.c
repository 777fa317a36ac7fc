/*
 * Lint of an nginx tree for a pod: what works on a VM and breaks, or leaks,
 * once nginx runs in a container with its configuration on a read-only
 * ConfigMap volume and PHP-FPM in the container next to it.
 *
 * The walk follows includes in the context they are included in, so an
 * upstream `server` line is not taken for a server block and the keys of a
 * map are not taken for directives. A file included from several places is
 * linted once, where nginx first reads it.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef enum {
	CTX_MAIN,
	CTX_EVENTS,
	CTX_HTTP,
	CTX_SERVER, /* http server, location, if, limit_except */
	CTX_UPSTREAM,
	CTX_STREAM,
	CTX_STREAM_SERVER,
	CTX_STREAM_UPSTREAM,
	CTX_DATA, /* map, geo, types, ...: keys and values, not directives */
	CTX_OTHER,
} ctx;

typedef struct {
	mg_cm *cm;
	mg_cm_private *p;
	const mg_cm_options *opt;
	const char *mount;
	bool *walked; /* per file */
} lint;

static bool eq(const char *a, const char *b)
{
	return !strcmp(a, b);
}

static bool in(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static bool has_var(const char *s)
{
	return strchr(s, '$') != NULL;
}

const char *mg_cm_severity_name(mg_cm_severity sev)
{
	return sev == MG_CM_ERROR ? "error" : sev == MG_CM_WARNING ? "warning" : "info";
}

static const char *intern(mg_cm_private *p, const char *s)
{
	for (size_t i = 0; i < p->nfixes; i++)
		if (!strcmp(p->fixes[i], s))
			return p->fixes[i];
	char **v = realloc(p->fixes, (p->nfixes + 1) * sizeof(*v));
	if (!v)
		return NULL;
	p->fixes = v;
	v[p->nfixes] = strdup(s);
	return v[p->nfixes] ? v[p->nfixes++] : NULL;
}

struct cm_text_chunk {
	struct cm_text_chunk *next;
	size_t used, size;
	char mem[];
};

#define TEXT_CHUNK 8192

/* fmt formatted into p's message chunks; NULL when out of memory. */
static char *pack_text(mg_cm_private *p, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static char *pack_text(mg_cm_private *p, const char *fmt, va_list ap)
{
	struct cm_text_chunk *c = p->texts;
	size_t room = c ? c->size - c->used : 0;
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(c ? c->mem + c->used : NULL, room, fmt, ap);
	if (n < 0) {
		va_end(again);
		return NULL;
	}
	if ((size_t)n >= room) {
		size_t size = (size_t)n + 1 > TEXT_CHUNK ? (size_t)n + 1 : TEXT_CHUNK;
		struct cm_text_chunk *nc = malloc(sizeof(*nc) + size);
		if (!nc) {
			va_end(again);
			return NULL;
		}
		*nc = (struct cm_text_chunk){.next = c, .size = size};
		/* a long text alone: the chunk being filled stays in front */
		if (c && size > TEXT_CHUNK) {
			nc->next = c->next;
			c->next = nc;
		} else {
			p->texts = nc;
		}
		c = nc;
		vsnprintf(c->mem, size, fmt, again);
	}
	va_end(again);
	char *s = c->mem + c->used;
	c->used += (size_t)n + 1;
	return s;
}

void mg_cm_texts_clear(mg_cm_private *p)
{
	while (p->texts) {
		struct cm_text_chunk *n = p->texts->next;
		free(p->texts);
		p->texts = n;
	}
}

void mg_cm_add_finding(mg_cm *cm, mg_cm_severity sev, const char *rule, const mg_ngx_directive *d,
                       const char *fix, const char *fmt, ...)
{
	mg_cm_private *p = cm->priv;
	if (cm->nfindings == p->findings_cap) {
		size_t cap = p->findings_cap ? p->findings_cap + p->findings_cap / 2 : 32;
		mg_cm_finding *v = realloc(cm->findings, cap * sizeof(*v));
		if (!v) {
			p->oom = true;
			return;
		}
		cm->findings = v;
		p->findings_cap = cap;
	}
	mg_cm_finding *f = &cm->findings[cm->nfindings];
	*f = (mg_cm_finding){.severity = sev, .rule = rule};
	const mg_ngx_file *file = d ? mg_nginxconf_file(p->conf, d->file) : NULL;
	f->file = file ? file->path : mg_nginxconf_file(p->conf, 0)->path;
	f->line = d ? (int)d->line : 0;
	f->directive = d ? d->name : "";
	f->fix = intern(p, fix ? fix : "");
	va_list ap;
	va_start(ap, fmt);
	f->message = pack_text(p, fmt, ap);
	va_end(ap);
	if (!f->fix || !f->message) {
		p->oom = true;
		return;
	}
	cm->nfindings++;
}

static void add_ref(lint *L, cm_ref_kind kind, const mg_ngx_directive *d, uint32_t arg, size_t hs,
                    size_t he)
{
	mg_cm_private *p = L->p;
	if (p->nrefs == p->refs_cap) {
		size_t cap = p->refs_cap ? 2 * p->refs_cap : 32;
		cm_ref *v = realloc(p->refs, cap * sizeof(*v));
		if (!v) {
			p->oom = true;
			return;
		}
		p->refs = v;
		p->refs_cap = cap;
	}
	p->refs[p->nrefs++] =
	    (cm_ref){.kind = kind, .d = d, .arg = arg, .host_start = hs, .host_end = he};
}

static void add_unique(lint *L, char ***list, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (eq((*list)[i], s))
			return;
	char **v = realloc(*list, (*n + 1) * sizeof(*v));
	char *copy = strdup(s);
	if (!v || !copy) {
		if (v)
			*list = v;
		free(copy);
		L->p->oom = true;
		return;
	}
	*list = v;
	v[(*n)++] = copy;
}

/* --- addresses ---------------------------------------------------------------------------- */

typedef enum {
	ADDR_LOOPBACK,
	ADDR_UNIX,
	ADDR_VARIABLE,
	ADDR_UPSTREAM,
	ADDR_IP,
	ADDR_NAME
} addr_kind;

typedef struct {
	addr_kind kind;
	size_t hs, he; /* the host (or the socket path for ADDR_UNIX) in the value */
} addr;

static bool upstream_known(mg_cm_private *p, const char *s, size_t n)
{
	for (size_t i = 0; i < p->nupstreams; i++)
		if (strlen(p->upstreams[i]) == n && !strncmp(p->upstreams[i], s, n))
			return true;
	return false;
}

static bool is_loopback(const char *h, size_t n)
{
	char buf[64];
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, h, n);
	buf[n] = '\0';
	if (eq(buf, "localhost") || eq(buf, "::1") || eq(buf, "[::1]"))
		return true;
	struct in_addr a;
	return inet_pton(AF_INET, buf, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static bool is_ip(const char *h, size_t n)
{
	char buf[64];
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, h, n);
	buf[n] = '\0';
	if (buf[0] == '[')
		return true;
	struct in_addr a;
	struct in6_addr a6;
	return inet_pton(AF_INET, buf, &a) == 1 || inet_pton(AF_INET6, buf, &a6) == 1;
}

/*
 * What a *_pass target or an upstream server address points at. url: the
 * value may carry a scheme ("http://") and a URI; upstreams: a bare name
 * may be an upstream block.
 */
static addr classify(mg_cm_private *p, const char *v, bool url, bool upstreams)
{
	addr a = {ADDR_NAME, 0, 0};
	size_t i = 0;
	if (url) {
		const char *s = strstr(v, "://");
		if (s && (size_t)(s - v) < 10)
			i = (size_t)(s - v) + 3;
	}
	if (!strncmp(v + i, "unix:", 5)) {
		a.kind = ADDR_UNIX;
		a.hs = i + 5;
		/* http://unix:/run/app.sock:/uri */
		const char *end = url ? strchr(v + a.hs, ':') : NULL;
		a.he = end ? (size_t)(end - v) : strlen(v);
		return a;
	}
	a.hs = i;
	if (v[i] == '[') {
		const char *end = strchr(v + i, ']');
		a.he = end ? (size_t)(end - v) + 1 : strlen(v);
	} else {
		a.he = i + strcspn(v + i, ":/$");
	}
	const char *h = v + a.hs;
	size_t n = a.he - a.hs;
	/* a variable host is looked up per request; after a host, a variable is taken for the URI
	 * ($request_uri) */
	if (n == 0)
		a.kind = ADDR_VARIABLE;
	else if (is_loopback(h, n))
		a.kind = ADDR_LOOPBACK;
	else if (upstreams && upstream_known(p, h, n))
		a.kind = ADDR_UPSTREAM;
	else if (is_ip(h, n))
		a.kind = ADDR_IP;
	return a;
}

static void check_target(lint *L, const mg_ngx_directive *d, uint32_t arg, bool url, bool upstreams)
{
	if (arg >= d->nargs)
		return;
	const char *v = d->args[arg];
	addr a = classify(L->p, v, url, upstreams);
	const char *what = eq(d->name, "server") ? "upstream server" : d->name;
	char *host = strndup(v + a.hs, a.he - a.hs);
	if (!host) {
		L->p->oom = true;
		return;
	}
	switch (a.kind) {
	case ADDR_UNIX: {
		char *dir = strdup(host);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		char *fix = mg_str_printf(
		    "mount one emptyDir at %s in both containers (the output shows the volume) and have "
		    "the other container create the socket there; or connect over 127.0.0.1 "
		    "instead",
		    dir ? dir : host);
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "unix-socket", d, fix,
		    "%s %s: a unix socket; in a pod nginx and the application are separate "
		    "containers, which share no directory unless a volume is mounted in both",
		    what, v);
		if (dir && dir[0] == '/')
			add_unique(L, &L->cm->socket_dirs, &L->cm->nsocket_dirs, dir);
		free(fix);
		free(dir);
		break;
	}
	case ADDR_IP:
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "vm-address", d,
		    "point it at a Service (a name like app.<namespace>.svc.cluster.local), "
		    "or give what stays on the VMs a Service with Endpoints for them",
		    "%s %s: an address of the VM network; the pod reaches it only if the "
		    "cluster network routes there, and it will not follow the VMs' moves",
		    what, v);
		break;
	case ADDR_NAME:
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "vm-address", d,
		    "use a Service name (e.g. an ExternalName Service for a host that stays "
		    "outside the cluster)",
		    "%s %s: the host name %s may not resolve the same way in the cluster "
		    "(nginx resolves it when it starts and will not start if it cannot)",
		    what, v, host);
		/* with a variable anywhere nginx resolves per request, not when it starts */
		if (!has_var(v))
			add_ref(L, CM_REF_ADDR, d, arg, a.hs, a.he);
		break;
	default:
		break;
	}
	free(host);
}

/* --- files and paths ---------------------------------------------------------------------- */

static const char *const pem_secrets[] = {"ssl_certificate",
                                          "ssl_certificate_key",
                                          "ssl_trusted_certificate",
                                          "ssl_client_certificate",
                                          "proxy_ssl_certificate",
                                          "proxy_ssl_certificate_key",
                                          "proxy_ssl_trusted_certificate",
                                          "grpc_ssl_certificate",
                                          "grpc_ssl_certificate_key",
                                          "grpc_ssl_trusted_certificate",
                                          "uwsgi_ssl_certificate",
                                          "uwsgi_ssl_certificate_key",
                                          "uwsgi_ssl_trusted_certificate",
                                          NULL};
static const char *const byte_secrets[] = {"auth_basic_user_file",
                                           "ssl_password_file",
                                           "proxy_ssl_password_file",
                                           "grpc_ssl_password_file",
                                           "uwsgi_ssl_password_file",
                                           "ssl_session_ticket_key",
                                           NULL};
static const char *const drop_secrets[] = {"ssl_crl",       "proxy_ssl_crl",     "grpc_ssl_crl",
                                           "uwsgi_ssl_crl", "ssl_stapling_file", NULL};
static const char *const temp_paths[] = {"client_body_temp_path", "proxy_temp_path",
                                         "fastcgi_temp_path",     "uwsgi_temp_path",
                                         "scgi_temp_path",        "proxy_cache_path",
                                         "fastcgi_cache_path",    "uwsgi_cache_path",
                                         "scgi_cache_path",       NULL};

const char *const mg_cm_http_temp[5][2] = {
    {"client_body_temp_path", "/var/cache/nginx/client_temp"},
    {"proxy_temp_path", "/var/cache/nginx/proxy_temp"},
    {"fastcgi_temp_path", "/var/cache/nginx/fastcgi_temp"},
    {"uwsgi_temp_path", "/var/cache/nginx/uwsgi_temp"},
    {"scgi_temp_path", "/var/cache/nginx/scgi_temp"},
};

/* Where nginx in the pod opens a path that is relative to its conf prefix. */
static char *pod_path(lint *L, const char *v)
{
	if (v[0] == '/')
		return strdup(v);
	/* the conf prefix is the main file's directory, which sits at the mount path */
	char *dir = mg_cm_join(L->mount, L->cm->main_path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*slash = '\0';
	char *r = dir ? mg_cm_join(dir, v) : NULL;
	free(dir);
	return r;
}

static void add_secret(lint *L, const mg_ngx_directive *d, const char *v)
{
	mg_cm *cm = L->cm;
	char *pp = pod_path(L, v);
	if (!pp) {
		L->p->oom = true;
		return;
	}
	for (size_t i = 0; i < cm->nsecrets; i++)
		if (eq(cm->secrets[i].pod_path, pp)) {
			free(pp);
			return;
		}
	mg_cm_secret *s = realloc(cm->secrets, (cm->nsecrets + 1) * sizeof(*s));
	if (!s) {
		free(pp);
		L->p->oom = true;
		return;
	}
	cm->secrets = s;
	s = &s[cm->nsecrets];
	*s = (mg_cm_secret){.pod_path = pp, .line = (int)d->line};
	s->in_mount = mg_cm_path_under(pp, L->mount);
	s->source = v[0] == '/' ? strdup(v) : mg_cm_join(L->p->prefix, v);
	const char *rel = s->in_mount ? pp + strlen(L->mount) : pp;
	while (*rel == '/')
		rel++;
	s->key = mg_cm_key(rel);
	s->directive = strdup(d->name);
	s->file = strdup(mg_nginxconf_file(L->p->conf, d->file)->path);
	if (!s->source || !s->key || !s->directive || !s->file) {
		free(s->pod_path);
		free(s->source);
		free(s->key);
		free(s->directive);
		free(s->file);
		L->p->oom = true;
		return;
	}
	cm->nsecrets++;
}

static void check_secret(lint *L, const mg_ngx_directive *d)
{
	if (!d->nargs)
		return;
	const char *v = d->args[0];
	bool pem = in(d->name, pem_secrets), drop = in(d->name, drop_secrets);
	if (!strncmp(v, "data:", 5)) {
		mg_cm_add_finding(L->cm, MG_CM_ERROR, "secret", d,
		                  "load it from a file mounted from a Secret instead",
		                  "%s data:...: the certificate or key itself is written in the "
		                  "configuration, so it would be in the ConfigMap",
		                  d->name);
		/* nginx -t quotes it when it cannot load it: verify masks it */
		add_ref(L, CM_REF_INLINE, d, 0, 0, 0);
		return;
	}
	bool key = strstr(d->name, "_key") != NULL;
	const char *kind = eq(d->name, "auth_basic_user_file") ? "password hashes belong"
	                   : key                               ? "a private key belongs"
	                   : pem                               ? "TLS material belongs"
	                                                       : "secret material belongs";
	char *pp = pod_path(L, v);
	if (L->cm->secret_given) {
		/* the operator has said where the file comes from */
		mg_cm_add_finding(L->cm, MG_CM_INFO, "secret", d, "",
		                  "%s %s: from Secret %s, mounted at %s (not in the ConfigMap)",
		                  d->name, v, L->cm->secret_name, pp ? pp : v);
	} else {
		char *fix =
		    mg_str_printf("put the file in a Secret mounted so that nginx finds it at "
		                  "%s (the output shows the Secret and the volume) and name it "
		                  "with --secret; the ConfigMap leaves it out",
		                  pp ? pp : v);
		mg_cm_add_finding(
		    L->cm, MG_CM_ERROR, "secret", d, fix,
		    "%s %s: %s in a Secret, not in a ConfigMap (stored unencrypted and "
		    "readable by whoever may read the namespace's ConfigMaps)",
		    d->name, v, kind);
		free(fix);
	}
	free(pp);
	if (has_var(v))
		return; /* opened per request, not at start */
	add_secret(L, d, v);
	add_ref(L,
	        pem                          ? CM_REF_SECRET_PEM
	        : eq(d->name, "ssl_dhparam") ? CM_REF_SECRET_DH
	        : drop                       ? CM_REF_SECRET_DROP
	                                     : CM_REF_SECRET_BYTES,
	        d, 0, 0, 0);
}

static bool log_is_file(const char *v)
{
	return !(eq(v, "off") || eq(v, "stderr") || eq(v, "/dev/stdout") || eq(v, "/dev/stderr") ||
	         !strncmp(v, "syslog:", 7) || !strncmp(v, "memory:", 7));
}

/* A path nginx writes to that would land on the read-only ConfigMap volume. */
static bool on_mount(lint *L, const char *v)
{
	return v[0] != '/' || mg_cm_path_under(v, L->mount);
}

static void check_log(lint *L, const mg_ngx_directive *d)
{
	if (!d->nargs || !log_is_file(d->args[0]))
		return;
	const char *v = d->args[0];
	bool access = eq(d->name, "access_log");
	const char *to = access ? "/dev/stdout" : "/dev/stderr";
	if (L->opt->fix_logs) {
		if (mg_cm_edit_arg(L->p, &L->p->edits, d, 0, to) == 0) {
			mg_cm_add_finding(L->cm, MG_CM_INFO, "log-file", d, "",
			                  "%s %s rewritten to %s (--fix-logs)", d->name, v, to);
			return;
		}
	}
	char *fix =
	    mg_str_printf("%s %s; sends it to the container's log (kubectl logs); --fix-logs "
	                  "rewrites it",
	                  d->name, to);
	if (on_mount(L, v))
		mg_cm_add_finding(
		    L->cm, MG_CM_ERROR, "log-file", d, fix,
		    "%s %s: a file under the ConfigMap's mount, which is read-only in the pod; "
		    "nginx will not start",
		    d->name, v);
	else
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "log-file", d, fix,
		    "%s %s: a log file in the container is lost with the pod and read by "
		    "nobody",
		    d->name, v);
	free(fix);
	if (!has_var(v))
		add_ref(L, CM_REF_LOG, d, 0, 0, 0);
}

static bool has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* A relative path that climbs out of its directory by "..", read lexically. */
static bool climbs_out(const char *rel)
{
	long depth = 0;
	for (const char *s = rel; *s;) {
		while (*s == '/')
			s++;
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (--depth < 0)
				return true;
		} else if (n && !(n == 1 && s[0] == '.')) {
			depth++;
		}
		s += n;
	}
	return false;
}

static void check_include(lint *L, const mg_ngx_directive *d)
{
	if (!d->nargs)
		return;
	const char *v = d->args[0];
	const char *prefix = L->p->prefix;
	if (!*prefix) {
		/* a buffer parsed without a prefix: includes were not followed */
		if (v[0] == '/')
			add_ref(L, CM_REF_INCLUDE, d, 0, 0, 0);
		return;
	}
	/* the parser refuses a file outside the tree; this is what it could not see: a glob
	 * that matched nothing here, a name outside that leads back in through a symlink */
	const char *rest = v[0] != '/'                   ? v
	                   : mg_cm_path_under(v, prefix) ? v + strlen(prefix)
	                                                 : NULL;
	if (!rest || climbs_out(rest)) {
		mg_cm_add_finding(
		    L->cm, MG_CM_ERROR, "outside-tree", d,
		    "copy the files into the tree and include them by a relative path, or run "
		    "migrate where the tree sits at the path the configuration names",
		    "include %s: outside the tree (%s); migrate reads nothing outside it, and a "
		    "ConfigMap holds one directory",
		    v, prefix);
	} else if (v[0] == '/' && !eq(prefix, L->mount)) {
		char *moved = mg_cm_join(L->mount, v + strlen(prefix));
		if (moved && mg_cm_edit_arg(L->p, &L->p->edits, d, 0, moved) == 0)
			mg_cm_add_finding(L->cm, MG_CM_INFO, "include-rewritten", d, "",
			                  "include %s rewritten to %s: the tree is mounted at %s",
			                  v, moved, L->mount);
		free(moved);
	}
	if (d->is_include && d->nincludes == 0 && has_glob(v))
		mg_cm_add_finding(L->cm, MG_CM_WARNING, "empty-glob", d,
		                  "check that the tree has every file the VM has",
		                  "include %s matches no file here", v);
	const char *eff = mg_cm_edit_find(&L->p->edits, L->p, d, 0);
	if ((eff ? eff : v)[0] == '/')
		add_ref(L, CM_REF_INCLUDE, d, 0, 0, 0);
}

static void check_listen(lint *L, const mg_ngx_directive *d)
{
	if (!d->nargs)
		return;
	const char *v = d->args[0];
	if (!strncmp(v, "unix:", 5))
		return;
	size_t hs = 0, he;
	if (v[0] == '[') {
		const char *end = strchr(v, ']');
		he = end ? (size_t)(end - v) + 1 : strlen(v);
	} else {
		const char *colon = strchr(v, ':');
		he = colon ? (size_t)(colon - v) : strlen(v);
	}
	const char *h = v + hs;
	size_t n = he - hs;
	bool port_only = n && strspn(h, "0123456789") == n && !strchr(v, ':');
	if (port_only || (n == 1 && *h == '*') || (n == 7 && !strncmp(h, "0.0.0.0", 7)) ||
	    (n == 4 && !strncmp(h, "[::]", 4)))
		return;
	if (is_loopback(h, n)) {
		mg_cm_add_finding(
		    L->cm, MG_CM_INFO, "listen-address", d, "",
		    "listen %s: reachable only from inside the pod (a sidecar, a probe with "
		    "exec)",
		    v);
		return;
	}
	char *port = strchr(v + he, ':');
	char *fix = mg_str_printf("listen %s; (every address of the pod)", port ? port + 1 : "80");
	mg_cm_add_finding(
	    L->cm, MG_CM_ERROR, "listen-address", d, fix,
	    "listen %s: an address of the VM; the pod has another, so nginx cannot bind it "
	    "and will not start",
	    v);
	free(fix);
}

static void check_resolver(lint *L, const mg_ngx_directive *d)
{
	for (uint32_t i = 0; i < d->nargs; i++) {
		const char *v = d->args[i];
		if (strchr(v, '='))
			continue;
		addr a = classify(L->p, v, false, false);
		if (a.kind == ADDR_LOOPBACK)
			continue;
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "resolver", d,
		    "use the cluster DNS Service's address (kubectl -n kube-system get svc "
		    "kube-dns), or drop it if nothing is resolved at run time",
		    "resolver %s: the VM network's DNS server; in the pod names are the "
		    "cluster's",
		    v);
		return;
	}
}

static void check_main(lint *L, const mg_ngx_directive *d)
{
	const char *n = d->name;
	if (eq(n, "user")) {
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "user", d,
		    "drop the line: the official image's workers run as nginx, and the "
		    "unprivileged image ignores it",
		    "user %s: the pod's securityContext and the image decide who nginx runs "
		    "as; this user may not exist in the image",
		    d->nargs ? d->args[0] : "");
		L->p->user = d;
		add_ref(L, CM_REF_USER, d, 0, 0, 0);
	} else if (eq(n, "daemon")) {
		mg_cm_add_finding(
		    L->cm, MG_CM_ERROR, "daemon", d, "drop the line",
		    "daemon %s: the image starts nginx with -g 'daemon off;', and nginx refuses "
		    "a directive given twice (\"daemon\" directive is duplicate)",
		    d->nargs ? d->args[0] : "");
	} else if (eq(n, "pid") && d->nargs) {
		const char *v = d->args[0];
		L->p->has_pid = true;
		add_ref(L, CM_REF_PID, d, 0, 0, 0);
		if (!strncmp(v, "/tmp/", 5))
			return;
		if (on_mount(L, v))
			mg_cm_add_finding(
			    L->cm, MG_CM_ERROR, "pid", d,
			    "pid /tmp/nginx.pid; (writable for a root and a non-root nginx)",
			    "pid %s: under the ConfigMap's mount, which is read-only in the pod; "
			    "nginx will not start",
			    v);
		else if (eq(v, "/run/nginx.pid") || eq(v, "/var/run/nginx.pid"))
			mg_cm_add_finding(
			    L->cm, MG_CM_INFO, "pid", d,
			    "pid /tmp/nginx.pid; for a non-root image (nginxinc/nginx-unprivileged)",
			    "pid %s: fine for the official image, whose master runs as root", v);
		else
			mg_cm_add_finding(
			    L->cm, MG_CM_WARNING, "pid", d,
			    "pid /tmp/nginx.pid; (or drop the line for the image's default)",
			    "pid %s: the directory may not exist or be writable in the image", v);
	} else if (eq(n, "worker_processes") && d->nargs) {
		const char *v = d->args[0];
		if (strspn(v, "0123456789") == strlen(v) && atoi(v) > 1)
			mg_cm_add_finding(
			    L->cm, MG_CM_WARNING, "worker-processes", d,
			    "worker_processes auto; or the container's CPU limit (auto counts "
			    "the node's CPUs, not the limit)",
			    "worker_processes %s: pinned to the VM's cores; a pod gets the CPU "
			    "its resources give it",
			    v);
	} else if (eq(n, "worker_cpu_affinity") && d->nargs && !eq(d->args[0], "auto")) {
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "worker-cpu-affinity", d,
		    "drop the line, or worker_cpu_affinity auto;",
		    "worker_cpu_affinity %s: binds workers to CPUs of the VM; a pod may not "
		    "have them",
		    d->args[0]);
	} else if (eq(n, "load_module")) {
		mg_cm_add_finding(
		    L->cm, MG_CM_ERROR, "load-module", d,
		    "use an image that contains the module (built in, or installed in a "
		    "Dockerfile FROM nginx) and keep the line only if the path matches it",
		    "load_module %s: a shared object cannot come from a ConfigMap; the image "
		    "must contain it",
		    d->nargs ? d->args[0] : "");
	}
}

static void check_path(lint *L, const mg_ngx_directive *d)
{
	if (!d->nargs)
		return;
	const char *v = d->args[0];
	for (size_t i = 0; i < L->cm->npaths; i++)
		if (eq(L->cm->paths[i], v))
			return;
	add_unique(L, &L->cm->paths, &L->cm->npaths, v);
	mg_cm_add_finding(
	    L->cm, MG_CM_INFO, "image-path", d, "check that the image (or a volume) provides it",
	    "%s %s: served from the container's file system%s", d->name, v,
	    v[0] == '/' ? "" : " (relative to nginx's prefix, /etc/nginx in the image)");
}

static void check_temp(lint *L, const mg_ngx_directive *d)
{
	if (!d->nargs)
		return;
	const char *v = d->args[0];
	if (on_mount(L, v))
		mg_cm_add_finding(
		    L->cm, MG_CM_ERROR, "read-only-path", d,
		    "use a directory under /var/cache/nginx or /tmp",
		    "%s %s: nginx writes there, and the ConfigMap's mount is read-only", d->name,
		    v);
	add_ref(L, CM_REF_TEMP, d, 0, 0, 0);
}

/* --- the walk ----------------------------------------------------------------------------- */

static ctx child_ctx(ctx c, const char *name)
{
	static const char *const data[] = {"map",         "geo",   "types", "split_clients",
	                                   "charset_map", "match", NULL};
	if (c == CTX_DATA || in(name, data))
		return CTX_DATA;
	switch (c) {
	case CTX_MAIN:
		return eq(name, "events")   ? CTX_EVENTS
		       : eq(name, "http")   ? CTX_HTTP
		       : eq(name, "stream") ? CTX_STREAM
		                            : CTX_OTHER;
	case CTX_HTTP:
		return eq(name, "server")     ? CTX_SERVER
		       : eq(name, "upstream") ? CTX_UPSTREAM
		                              : CTX_HTTP;
	case CTX_SERVER:
		return CTX_SERVER;
	case CTX_STREAM:
		return eq(name, "server")     ? CTX_STREAM_SERVER
		       : eq(name, "upstream") ? CTX_STREAM_UPSTREAM
		                              : CTX_STREAM;
	default:
		return CTX_OTHER;
	}
}

static void walk(lint *L, const mg_ngx_directive *dirs, size_t n, ctx c);

static void walk_file(lint *L, uint32_t fi, ctx c)
{
	if (L->walked[fi])
		return;
	L->walked[fi] = true;
	const mg_ngx_file *f = mg_nginxconf_file(L->p->conf, fi);
	walk(L, f->dirs, f->ndirs, c);
}

static void check(lint *L, const mg_ngx_directive *d, ctx c)
{
	static const char *const passes[] = {"proxy_pass", "fastcgi_pass", "uwsgi_pass",
	                                     "scgi_pass",  "grpc_pass",    "memcached_pass",
	                                     NULL};
	const char *n = d->name;
	if (d->is_include) {
		check_include(L, d);
		return;
	}
	if (c == CTX_DATA || d->is_comment || d->is_lua_block)
		return;
	if (c == CTX_MAIN)
		check_main(L, d);
	if (in(n, pem_secrets) || in(n, byte_secrets) || in(n, drop_secrets) ||
	    eq(n, "ssl_dhparam"))
		check_secret(L, d);
	else if (eq(n, "access_log") || eq(n, "error_log"))
		check_log(L, d);
	else if (in(n, passes))
		check_target(L, d, 0, c != CTX_STREAM_SERVER, true);
	else if (eq(n, "server") && (c == CTX_UPSTREAM || c == CTX_STREAM_UPSTREAM))
		check_target(L, d, 0, false, false);
	else if (eq(n, "resolver"))
		check_resolver(L, d);
	else if (eq(n, "listen") && (c == CTX_SERVER || c == CTX_STREAM_SERVER))
		check_listen(L, d);
	else if (eq(n, "root") || eq(n, "alias"))
		check_path(L, d);
	else if (in(n, temp_paths))
		check_temp(L, d);
	else if (eq(n, "secure_link_secret")) {
		mg_cm_add_finding(
		    L->cm, MG_CM_WARNING, "inline-secret", d,
		    "move the lines that hold it into a file mounted from a Secret and "
		    "include that",
		    "secure_link_secret: the secret word would be in the ConfigMap");
		add_ref(L, CM_REF_INLINE, d, 0, 0, 0);
	}
	if (c == CTX_HTTP && eq(n, "access_log"))
		L->p->http_access_log = true;
	for (int i = 0; c == CTX_HTTP && i < 5; i++)
		if (eq(n, mg_cm_http_temp[i][0]))
			L->p->http_temp |= 1u << i;
}

static void walk(lint *L, const mg_ngx_directive *dirs, size_t n, ctx c)
{
	for (size_t i = 0; i < n && !L->p->oom; i++) {
		const mg_ngx_directive *d = &dirs[i];
		check(L, d, c);
		if (d->is_include) {
			for (uint32_t k = 0; k < d->nincludes; k++)
				walk_file(L, d->includes[k], c);
		} else if (d->has_block) {
			if (c == CTX_MAIN && eq(d->name, "http") && !L->p->http) {
				L->p->http = d;
				L->p->http_file = mg_nginxconf_file(L->p->conf, d->file);
			}
			walk(L, d->block, d->nblock, child_ctx(c, d->name));
		}
	}
}

/* Every upstream block's name, first: a proxy_pass may name one defined further down. */
static void collect_upstreams(lint *L, const mg_ngx_directive *dirs, size_t n, bool *seen)
{
	mg_cm_private *p = L->p;
	for (size_t i = 0; i < n; i++) {
		const mg_ngx_directive *d = &dirs[i];
		if (d->is_include) {
			for (uint32_t k = 0; k < d->nincludes; k++) {
				uint32_t fi = d->includes[k];
				if (seen[fi])
					continue;
				seen[fi] = true;
				const mg_ngx_file *f = mg_nginxconf_file(p->conf, fi);
				collect_upstreams(L, f->dirs, f->ndirs, seen);
			}
		} else if (d->has_block) {
			if (eq(d->name, "upstream") && d->nargs)
				add_unique(L, &p->upstreams, &p->nupstreams, d->args[0]);
			else
				collect_upstreams(L, d->block, d->nblock, seen);
		}
	}
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mg_cm_lint(mg_cm *cm, const mg_cm_options *opt, mg_error *err)
{
	mg_cm_private *p = cm->priv;
	size_t nfiles = mg_nginxconf_nfiles(p->conf);
	lint L = {.cm = cm, .p = p, .opt = opt, .mount = cm->mount_path};
	L.walked = calloc(nfiles, sizeof(*L.walked));
	bool *seen = calloc(nfiles, sizeof(*seen));
	if (!L.walked || !seen) {
		free(L.walked);
		free(seen);
		return mg_error_oom(err);
	}
	const mg_ngx_file *main_file = mg_nginxconf_file(p->conf, 0);
	seen[0] = true;
	collect_upstreams(&L, main_file->dirs, main_file->ndirs, seen);
	free(seen);
	walk_file(&L, 0, CTX_MAIN);
	free(L.walked);
	if (cm->npaths)
		qsort(cm->paths, cm->npaths, sizeof(*cm->paths), by_str);
	if (strcmp(cm->main_path, "nginx.conf"))
		mg_cm_add_finding(
		    cm, MG_CM_INFO, "main-file", NULL,
		    "run nginx with -c <mount>/<file> in the container's args, or rename it",
		    "the main file is %s; the image reads %s/nginx.conf", cm->main_path,
		    cm->mount_path);
	if (p->oom)
		return mg_error_oom(err);
	return 0;
}
