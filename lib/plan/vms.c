/* The plan's vms section: the fleet (hosts or an inventory file) and how to deploy to it. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "internal.h"
#include "units.h"

#define MAX_HOSTS MG_PLAN_MAX_HOSTS

/* Adds a host; false (and nothing added) when the name is already in the fleet. */
static bool add_host(loader *L, mg_plan_vms *v, size_t *cap, const char *name, const char *addr,
                     int port)
{
	if (v->nhosts >= MAX_HOSTS)
		return true; /* refused once by the caller; the list stops growing */
	if (!mg_pl_strset_add(&L->host_names, name, 0, NULL)) {
		L->oom |= L->host_names.oom;
		return false;
	}
	if (v->nhosts == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		mg_plan_host *h = mg_pl_arena_alloc(L->plan, ncap * sizeof(*h));
		if (!h) {
			L->oom = true;
			return true;
		}
		if (v->nhosts)
			memcpy(h, v->hosts, v->nhosts * sizeof(*h));
		v->hosts = h;
		*cap = ncap;
	}
	v->hosts[v->nhosts++] = (mg_plan_host){.name = name, .address = addr, .port = port};
	return true;
}

static void load_inventory(loader *L, mg_plan_vms *v, size_t *cap)
{
	char *buf;
	size_t len;
	mg_error ferr = MG_ERROR_INIT;
	if (mg_fs_read_file(&buf, &len, v->inventory, MG_INPUT_MAX_BYTES, "the inventory", &ferr)) {
		mg_error_diag(L->err, MG_SEV_ERROR, L->file, 0, 0, "vms.inventory", "%s",
		              ferr.message);
		L->errors++;
		mg_error_clear(&ferr);
		return;
	}
	int lineno = 0;
	for (char *line = buf, *next; line && *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		char *e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (!*s)
			continue;
		char host[256];
		int port = 22;
		if (v->nhosts >= MAX_HOSTS) {
			mg_error_diag(L->err, MG_SEV_ERROR, v->inventory, lineno, 1,
			              "vms.inventory",
			              "more than %d hosts (a limit; see \"Limits\" in "
			              "docs/plan.md)",
			              MAX_HOSTS);
			L->errors++;
			break;
		}
		if (!mg_pl_parse_host_port(s, host, sizeof(host), &port)) {
			mg_error_diag(L->err, MG_SEV_ERROR, v->inventory, lineno,
			              (int)(s - line) + 1, "vms.inventory",
			              "\"%s\" is not host[:port]", s);
			L->errors++;
			continue;
		}
		const char *h = mg_pl_arena_strdup(L->plan, host);
		if (!add_host(L, v, cap, h, h, port)) {
			mg_error_diag(L->err, MG_SEV_ERROR, v->inventory, lineno,
			              (int)(s - line) + 1, "vms.inventory",
			              "host \"%s\" is listed twice", h);
			L->errors++;
		}
	}
	free(buf);
}

static void load_hosts(loader *L, yaml_node_t *list, mg_plan_vms *v, size_t *cap)
{
	static const char *const hkeys[] = {"name", "address", "port", NULL};
	const char *P = "vms.hosts";
	if (!mg_pl_expect(L, list, YAML_SEQUENCE_NODE, P))
		return;
	if (list->data.sequence.items.top - list->data.sequence.items.start > MAX_HOSTS) {
		ERR(L, list, P, "more than %d hosts (a limit; see \"Limits\" in docs/plan.md)",
		    MAX_HOSTS);
		return;
	}
	size_t i = 0;
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     it < list->data.sequence.items.top; it++, i++) {
		yaml_node_t *h = mg_pl_node(L, *it);
		const char *p = mg_pl_ipath(L, P, i);
		char host[256];
		int port = 22;
		if (h->type == YAML_SCALAR_NODE) {
			if (!mg_pl_parse_host_port(mg_pl_scalar(h), host, sizeof(host), &port)) {
				ERR(L, h, p,
				    "\"%s\" is not a host name, an IP address or host:port",
				    mg_pl_scalar(h));
				continue;
			}
			const char *s = mg_pl_arena_strdup(L->plan, host);
			if (!add_host(L, v, cap, s, s, port))
				ERR(L, h, p, "host \"%s\" is listed twice", s);
		} else if (h->type == YAML_MAPPING_NODE) {
			mg_pl_check_keys(L, h, p, hkeys);
			const char *name = mg_pl_get_str(L, h, p, "name", true, NULL);
			const char *addr = mg_pl_get_str(L, h, p, "address", false, name);
			port = (int)mg_pl_get_int(L, h, p, "port", 22, 1, 65535);
			if (!name)
				continue;
			if (!mg_pl_valid_host(name)) {
				ERR(L, mg_pl_get(L, h, "name"), mg_pl_kpath(L, p, "name"),
				    "\"%s\" is not a valid host name", name);
				continue;
			}
			if (addr != name && !mg_pl_valid_host(addr)) {
				ERR(L, mg_pl_get(L, h, "address"), mg_pl_kpath(L, p, "address"),
				    "\"%s\" is not a host name or IP address", addr);
				continue;
			}
			if (!add_host(L, v, cap, name, addr, port))
				ERR(L, mg_pl_get(L, h, "name"), mg_pl_kpath(L, p, "name"),
				    "host \"%s\" is listed twice", name);
		} else {
			ERR(L, h, p, "expected a host name or {name, address, port}, found %s",
			    mg_pl_node_kind(h));
		}
	}
}

/* A ".." path component anywhere: remote paths are used as given, so none may climb. */
static bool has_dotdot(const char *p)
{
	for (const char *c = strstr(p, ".."); c; c = strstr(c + 1, ".."))
		if ((c == p || c[-1] == '/') && (c[2] == '/' || !c[2]))
			return true;
	return false;
}

void mg_pl_load_vms(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"hosts",
	                                   "inventory",
	                                   "user",
	                                   "identity_file",
	                                   "passphrase_env",
	                                   "known_hosts",
	                                   "path",
	                                   "keep_releases",
	                                   "parallel",
	                                   "batch",
	                                   "max_failures",
	                                   "activate",
	                                   "health",
	                                   "connect_timeout",
	                                   "command_timeout",
	                                   NULL};
	static const char *const hkeys[] = {"url", "timeout", NULL};
	static const char *const host_ref[] = {"host", NULL};
	const char *P = "vms";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_vms *v = mg_pl_arena_alloc(L->plan, sizeof(*v));
	if (!v)
		return;
	size_t cap = 0;
	yaml_node_t *hosts = mg_pl_get(L, m, "hosts");
	size_t host_errors = L->errors; /* "no hosts" only when none was refused */
	v->inventory = mg_pl_get_path(L, m, P, "inventory", false, NULL);
	if (hosts && v->inventory)
		ERR(L, mg_pl_get(L, m, "inventory"), "vms.inventory",
		    "give either \"hosts\" or \"inventory\", not both");
	else if (hosts)
		load_hosts(L, hosts, v, &cap);
	else if (v->inventory && !(L->flags & MG_PLAN_LOAD_NO_FS))
		load_inventory(L, v, &cap);
	else if (!v->inventory)
		ERR(L, m, P,
		    "needs \"hosts\" (a list) or \"inventory\" (a file, one host per line)");
	if ((hosts || (v->inventory && !(L->flags & MG_PLAN_LOAD_NO_FS))) && !v->nhosts &&
	    L->errors == host_errors)
		ERR(L, hosts ? hosts : m, P, "the fleet has no hosts");

	v->user = mg_pl_get_str(L, m, P, "user", true, NULL);
	v->identity_file = mg_pl_get_path(L, m, P, "identity_file", false, NULL);
	v->passphrase_env = mg_pl_get_env_name(L, m, P, "passphrase_env");
	v->known_hosts = mg_pl_get_path(L, m, P, "known_hosts", false, NULL);
	if (!v->known_hosts)
		v->known_hosts = mg_pl_resolve_path(L, "~/.ssh/known_hosts");
	v->path = mg_pl_get_str(L, m, P, "path", true, NULL);
	if (v->path && (v->path[0] != '/' || has_dotdot(v->path) || strpbrk(v->path, "\n'\"")))
		ERR(L, mg_pl_get(L, m, "path"), "vms.path",
		    "must be an absolute path on the hosts without \"..\" or quotes, such as "
		    "/srv/payments-api");
	v->keep_releases = (int)mg_pl_get_int(L, m, P, "keep_releases", 5, 2, 1000);
	v->parallel = (int)mg_pl_get_int(L, m, P, "parallel", 10, 1, 1000);
	v->max_failures = (int)mg_pl_get_int(L, m, P, "max_failures", 0, 0, MAX_HOSTS);
	yaml_node_t *batch = mg_pl_get(L, m, "batch");
	v->batch_percent = 25;
	if (batch && mg_pl_expect(L, batch, YAML_SCALAR_NODE, "vms.batch")) {
		const char *s = mg_pl_scalar(batch);
		long n;
		char why[256];
		if (strchr(s, '%')) {
			if (mg_percent_parse(&v->batch_percent, s, why, sizeof(why)))
				ERR(L, batch, "vms.batch", "%s", why);
			else if (v->batch_percent <= 0)
				ERR(L, batch, "vms.batch", "a batch must hold at least one host");
		} else if (mg_pl_parse_long(s, &n) && n >= 1 && n <= MAX_HOSTS) {
			v->batch_count = (int)n;
			v->batch_percent = 0;
		} else {
			ERR(L, batch, "vms.batch",
			    "\"%s\" is not a host count (such as 5) or a percentage (such as 25%%)",
			    s);
		}
	}
	v->activate = mg_pl_get_str(L, m, P, "activate", false, NULL);
	yaml_node_t *health = mg_pl_get(L, m, "health");
	v->health_timeout_ms = 30000;
	if (health && mg_pl_expect(L, health, YAML_MAPPING_NODE, "vms.health")) {
		mg_pl_check_keys(L, health, "vms.health", hkeys);
		v->health_url = mg_pl_get_str(L, health, "vms.health", "url", true, NULL);
		v->health_timeout_ms =
		    mg_pl_get_duration(L, health, "vms.health", "timeout", 30000, 1000);
		yaml_node_t *un = mg_pl_get(L, health, "url");
		if (v->health_url &&
		    mg_pl_check_refs(L, un, "vms.health.url", v->health_url, host_ref)) {
			/* check the URL shape with a stand-in host */
			char url[2048], why[256];
			const char *ref = strstr(v->health_url, "${host}");
			if (ref)
				snprintf(url, sizeof(url), "%.*sexample.invalid%s",
				         (int)(ref - v->health_url), v->health_url, ref + 7);
			else
				snprintf(url, sizeof(url), "%s", v->health_url);
			if (mg_url_check(url, why, sizeof(why)))
				ERR(L, un, "vms.health.url", "%s", why);
		}
	}
	v->connect_timeout_ms = mg_pl_get_duration(L, m, P, "connect_timeout", 10000, 100);
	v->command_timeout_ms = mg_pl_get_duration(L, m, P, "command_timeout", 300000, 1000);
	L->plan->vms = v;
}
