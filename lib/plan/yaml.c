/*
 * The typed YAML layer of the plan loader: the arena, diagnostics, node
 * access, and getters that check a value's type and range, record their own
 * error and carry on with a default.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "suggest.h"
#include "units.h"

/* Diagnostics kept per load; more are counted, not stored. */
#define MAX_DIAGS 10000

/* ---- a set of strings (owned elsewhere) ---- */

static size_t str_hash(const char *s)
{
	size_t h = (size_t)1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * (size_t)1099511628211u;
	return h;
}

void mg_pl_strset_clear(strset *set)
{
	free(set->slot);
	*set = (strset){0};
}

/* Adds s; false when s was already there (*prev: its tag) or memory ran out (set->oom). */
bool mg_pl_strset_add(strset *set, const char *s, size_t tag, size_t *prev)
{
	if ((set->n + 1) * 2 > set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 16;
		strset_slot *ns = calloc(ncap, sizeof(*ns));
		if (!ns) {
			set->oom = true;
			return false;
		}
		for (size_t i = 0; i < set->cap; i++)
			if (set->slot[i].s) {
				size_t j = str_hash(set->slot[i].s) & (ncap - 1);
				while (ns[j].s)
					j = (j + 1) & (ncap - 1);
				ns[j] = set->slot[i];
			}
		free(set->slot);
		set->slot = ns;
		set->cap = ncap;
	}
	size_t j = str_hash(s) & (set->cap - 1);
	for (; set->slot[j].s; j = (j + 1) & (set->cap - 1))
		if (!strcmp(set->slot[j].s, s)) {
			if (prev)
				*prev = set->slot[j].tag;
			return false;
		}
	set->slot[j] = (strset_slot){.s = s, .tag = tag};
	set->n++;
	return true;
}

bool mg_pl_strset_has(const strset *set, const char *s)
{
	if (!set->cap)
		return false;
	for (size_t j = str_hash(s) & (set->cap - 1); set->slot[j].s; j = (j + 1) & (set->cap - 1))
		if (!strcmp(set->slot[j].s, s))
			return true;
	return false;
}

/* ---- arena: the plan owns every string and array it hands out ---- */

void *mg_pl_arena_alloc(mg_plan *p, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	struct block *b = p->arena;
	if (!b || b->size - b->used < n) {
		size_t size = n > 16384 ? n : 16384;
		b = malloc(sizeof(*b) + size);
		if (!b)
			return NULL;
		b->used = 0;
		b->size = size;
		b->next = p->arena;
		p->arena = b;
	}
	void *r = (char *)b->data + b->used;
	b->used += n;
	memset(r, 0, n);
	return r;
}

const char *mg_pl_arena_strdup(mg_plan *p, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *r = mg_pl_arena_alloc(p, n);
	if (r)
		memcpy(r, s, n);
	return r;
}

static const char *arena_printf(mg_plan *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *arena_printf(mg_plan *p, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return mg_pl_arena_strdup(p, buf);
}

/* ---- diagnostics ---- */

void mg_pl_diag_at(loader *L, mg_severity sev, const yaml_node_t *n, const char *path,
                   const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int line = n ? (int)n->start_mark.line + 1 : 0;
	int col = n ? (int)n->start_mark.column + 1 : 0;
	if (sev == MG_SEV_ERROR)
		L->errors++;
	/* a hostile plan can have a problem on every line: keep memory bounded */
	if (++L->ndiags > MAX_DIAGS) {
		if (L->ndiags == MAX_DIAGS + 1)
			mg_error_diag(L->err, MG_SEV_ERROR, L->file, 0, 0, NULL,
			              "more than %d problems; the rest are not listed", MAX_DIAGS);
		return;
	}
	mg_error_diag(L->err, sev, L->file, line, col, path, "%s", msg);
}

const char *mg_pl_kpath(loader *L, const char *parent, const char *key)
{
	if (!parent || !*parent)
		return mg_pl_arena_strdup(L->plan, key);
	return arena_printf(L->plan, "%s.%s", parent, key);
}

const char *mg_pl_ipath(loader *L, const char *parent, size_t i)
{
	return arena_printf(L->plan, "%s[%zu]", parent, i);
}

/* ---- node access ---- */

yaml_node_t *mg_pl_node(loader *L, int id)
{
	return yaml_document_get_node(L->doc, id);
}

const char *mg_pl_node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a single value";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

const char *mg_pl_scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool mg_pl_is_null(const yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = mg_pl_scalar(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

bool mg_pl_is_plain(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

bool mg_pl_expect(loader *L, yaml_node_t *n, yaml_node_type_t type, const char *path)
{
	if (n->type == type)
		return true;
	static const char *want[] = {
	    [YAML_SCALAR_NODE] = "a single value",
	    [YAML_SEQUENCE_NODE] = "a list",
	    [YAML_MAPPING_NODE] = "a mapping (key: value lines)",
	};
	ERR(L, n, path, "expected %s, found %s", want[type], mg_pl_node_kind(n));
	return false;
}

/* Looks up key in a mapping; NULL when absent or null-valued. */
yaml_node_t *mg_pl_get(loader *L, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *k = mg_pl_scalar(mg_pl_node(L, p->key));
		if (k && !strcmp(k, key)) {
			yaml_node_t *v = mg_pl_node(L, p->value);
			return mg_pl_is_null(v) ? NULL : v;
		}
	}
	return NULL;
}

/* Names that mean a secret written into the plan; they must come from *_env or *_file. */
bool mg_pl_secret_key(const char *k)
{
	static const char *const names[] = {"token",   "password",   "passphrase", "secret",
	                                    "api_key", "apikey",     "api_token",  "bearer_token",
	                                    "auth",    "credentials"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(k, names[i]))
			return true;
	size_t n = strlen(k);
	return (n > 6 && !strcmp(k + n - 6, "_token")) ||
	       (n > 9 && !strcmp(k + n - 9, "_password")) ||
	       (n > 7 && !strcmp(k + n - 7, "_secret"));
}

/*
 * Checks a mapping's keys: unknown keys (with a suggestion), duplicates, and
 * inline secrets. `allowed` is NULL-terminated.
 */
void mg_pl_check_keys(loader *L, yaml_node_t *map, const char *path, const char *const *allowed)
{
	if (map->type != YAML_MAPPING_NODE)
		return;
	strset seen = {0};
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = mg_pl_node(L, p->key);
		const char *k = mg_pl_scalar(kn);
		if (!k) {
			ERR(L, kn, path, "keys must be plain names, found %s", mg_pl_node_kind(kn));
			continue;
		}
		size_t first = 0;
		if (!mg_pl_strset_add(&seen, k, (size_t)kn->start_mark.line + 1, &first) &&
		    !seen.oom)
			ERR(L, kn, mg_pl_kpath(L, path, k), "duplicate key (first set on line %d)",
			    (int)first);
		L->oom |= seen.oom;
		bool known = false;
		for (size_t i = 0; allowed[i]; i++)
			known |= !strcmp(k, allowed[i]);
		if (known)
			continue;
		if (mg_pl_secret_key(k)) {
			char env_key[128];
			snprintf(env_key, sizeof(env_key), "%s_env", k);
			const char *use = NULL;
			for (size_t i = 0; allowed[i] && !use; i++)
				if (!strcmp(allowed[i], env_key) ||
				    !strcmp(allowed[i], "token_env"))
					use = allowed[i];
			if (use)
				ERR(L, kn, mg_pl_kpath(L, path, k),
				    "secrets may not be written into the plan; put it in an "
				    "environment variable and give that variable's name in `%s`",
				    use);
			else
				ERR(L, kn, mg_pl_kpath(L, path, k),
				    "secrets may not be written into the plan, and %s takes none",
				    path && *path ? path : "the top level");
			continue;
		}
		const char *best = mg_suggest(k, allowed);
		if (best)
			ERR(L, kn, mg_pl_kpath(L, path, k), "unknown key; did you mean \"%s\"?",
			    best);
		else {
			char list[512] = "";
			for (size_t i = 0; allowed[i] && strlen(list) < sizeof(list) - 80; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				         i ? ", " : "", allowed[i]);
			ERR(L, kn, mg_pl_kpath(L, path, k), "unknown key; %s takes: %s",
			    path && *path ? path : "the top level", list);
		}
	}
	mg_pl_strset_clear(&seen);
}

/* ---- typed getters: each records its own error and returns false on bad or missing input ---- */

yaml_node_t *mg_pl_get_required(loader *L, yaml_node_t *map, const char *path, const char *key)
{
	yaml_node_t *v = mg_pl_get(L, map, key);
	if (!v)
		ERR(L, map, path && *path ? path : NULL, "missing required key \"%s\"", key);
	return v;
}

static bool str_at(loader *L, yaml_node_t *v, const char *path, const char **out)
{
	if (!mg_pl_expect(L, v, YAML_SCALAR_NODE, path))
		return false;
	*out = mg_pl_arena_strdup(L->plan, mg_pl_scalar(v));
	return true;
}

const char *mg_pl_get_str(loader *L, yaml_node_t *map, const char *path, const char *key,
                          bool required, const char *def)
{
	yaml_node_t *v = required ? mg_pl_get_required(L, map, path, key) : mg_pl_get(L, map, key);
	const char *s = def;
	if (v)
		str_at(L, v, mg_pl_kpath(L, path, key), &s);
	return s;
}

/* true/false only: yes/no/on/off mean booleans to YAML 1.1 readers and strings to 1.2 ones */
bool mg_pl_get_bool(loader *L, yaml_node_t *map, const char *path, const char *key, bool def)
{
	yaml_node_t *v = mg_pl_get(L, map, key);
	if (!v)
		return def;
	const char *s = mg_pl_scalar(v);
	if (s && mg_pl_is_plain(v) && !strcmp(s, "true"))
		return true;
	if (s && mg_pl_is_plain(v) && !strcmp(s, "false"))
		return false;
	ERR(L, v, mg_pl_kpath(L, path, key), "must be true or false (unquoted)");
	return def;
}

bool mg_pl_parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

long mg_pl_get_int(loader *L, yaml_node_t *map, const char *path, const char *key, long def,
                   long lo, long hi)
{
	yaml_node_t *v = mg_pl_get(L, map, key);
	if (!v)
		return def;
	const char *p = mg_pl_kpath(L, path, key);
	if (!mg_pl_expect(L, v, YAML_SCALAR_NODE, p))
		return def;
	long n;
	if (!mg_pl_parse_long(mg_pl_scalar(v), &n)) {
		ERR(L, v, p, "\"%s\" is not a whole number", mg_pl_scalar(v));
		return def;
	}
	if (n < lo || n > hi) {
		ERR(L, v, p, "%ld is out of range (%ld to %ld)", n, lo, hi);
		return def;
	}
	return n;
}

bool mg_pl_parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	/* strtod accepts hex, inf and nan; a plan never needs them */
	for (const char *c = s; *c; c++)
		if (!strchr("0123456789.+-eE", *c))
			return false;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

bool mg_pl_get_number(loader *L, yaml_node_t *map, const char *path, const char *key, double *out)
{
	yaml_node_t *v = mg_pl_get(L, map, key);
	if (!v)
		return false;
	const char *p = mg_pl_kpath(L, path, key);
	if (!mg_pl_expect(L, v, YAML_SCALAR_NODE, p))
		return false;
	if (!mg_pl_parse_double(mg_pl_scalar(v), out)) {
		ERR(L, v, p, "\"%s\" is not a number", mg_pl_scalar(v));
		return false;
	}
	return true;
}

int64_t mg_pl_get_duration(loader *L, yaml_node_t *map, const char *path, const char *key,
                           int64_t def, int64_t min_ms)
{
	yaml_node_t *v = mg_pl_get(L, map, key);
	if (!v)
		return def;
	const char *p = mg_pl_kpath(L, path, key);
	if (!mg_pl_expect(L, v, YAML_SCALAR_NODE, p))
		return def;
	int64_t ms;
	char why[256];
	if (mg_duration_parse(&ms, mg_pl_scalar(v), why, sizeof(why))) {
		ERR(L, v, p, "%s", why);
		return def;
	}
	if (ms < min_ms) {
		char a[32], b[32];
		mg_duration_format(a, sizeof(a), ms);
		mg_duration_format(b, sizeof(b), min_ms);
		ERR(L, v, p, "%s is too short; the minimum is %s", a, b);
		return def;
	}
	return ms;
}

/* A rate such as max_error_rate: "1%" or a bare ratio "0.01". Returns a ratio 0..1. */
double mg_pl_get_rate(loader *L, yaml_node_t *map, const char *path, const char *key)
{
	yaml_node_t *v = mg_pl_get(L, map, key);
	if (!v)
		return -1;
	const char *p = mg_pl_kpath(L, path, key);
	if (!mg_pl_expect(L, v, YAML_SCALAR_NODE, p))
		return -1;
	const char *s = mg_pl_scalar(v);
	char why[256];
	double pct;
	if (strchr(s, '%')) {
		if (mg_percent_parse(&pct, s, why, sizeof(why))) {
			ERR(L, v, p, "%s", why);
			return -1;
		}
		return pct / 100.0;
	}
	double r;
	if (!mg_pl_parse_double(s, &r) || r < 0 || r > 1) {
		ERR(L, v, p,
		    "\"%s\" is not a rate; write a percentage such as 1%% or a ratio from 0 to 1",
		    s);
		return -1;
	}
	return r;
}

bool mg_pl_valid_env_name(const char *s)
{
	if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (const char *c = s; *c; c++)
		if (!(isalnum((unsigned char)*c) || *c == '_'))
			return false;
	return strlen(s) <= 128;
}

/* A value that looks like a credential rather than the name of a variable holding one. */
static bool looks_like_secret(const char *s)
{
	size_t n = strlen(s);
	bool lower = false, upper = false, digit = false;
	for (const char *c = s; *c; c++) {
		lower |= islower((unsigned char)*c);
		upper |= isupper((unsigned char)*c);
		digit |= isdigit((unsigned char)*c);
	}
	return n >= 24 && digit && lower && (upper || !strchr(s, '_'));
}

const char *mg_pl_get_env_name(loader *L, yaml_node_t *map, const char *path, const char *key)
{
	yaml_node_t *v = mg_pl_get(L, map, key);
	const char *s = NULL;
	if (!v || !str_at(L, v, mg_pl_kpath(L, path, key), &s))
		return NULL;
	if (looks_like_secret(s)) {
		ERR(L, v, mg_pl_kpath(L, path, key),
		    "must be the name of an environment variable (such as CLOUDFLARE_API_TOKEN); "
		    "this looks like a secret itself, which must never be in the plan");
		return NULL;
	}
	if (!mg_pl_valid_env_name(s)) {
		ERR(L, v, mg_pl_kpath(L, path, key),
		    "\"%s\" is not an environment variable name (letters, digits and '_', not "
		    "starting with a digit)",
		    s);
		return NULL;
	}
	return s;
}

/* Lexically removes ".", ".." and doubled slashes, so paths read as the operator expects. */
static const char *clean_path(loader *L, const char *path)
{
	size_t n = strlen(path);
	char *out = mg_pl_arena_alloc(L->plan, n + 2);
	if (!out)
		return path;
	bool abs = path[0] == '/';
	size_t o = 0, floor = 0; /* floor: ".." never climbs above a leading run of ".." */
	if (abs)
		out[o++] = '/';
	floor = o;
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		const char *e = p;
		while (*e && *e != '/')
			e++;
		size_t len = (size_t)(e - p);
		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* skip */
		} else if (len == 2 && p[0] == '.' && p[1] == '.' && o > floor) {
			while (o > floor && out[o - 1] != '/')
				o--;
			if (o > floor)
				o--;
		} else if (len == 2 && p[0] == '.' && p[1] == '.' && abs) {
			/* "/.." is "/" */
		} else {
			if (o > (abs ? 1u : 0u))
				out[o++] = '/';
			memcpy(out + o, p, len);
			o += len;
			if (len == 2 && p[0] == '.' && p[1] == '.')
				floor = o;
		}
		p = e;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return out;
}

/* Expands ~ and makes relative paths relative to the plan file's directory. */
const char *mg_pl_resolve_path(loader *L, const char *s)
{
	if (s[0] == '~' && (s[1] == '/' || !s[1])) {
		const char *home = getenv("HOME");
		if (!home || !*home) {
			struct passwd *pw = getpwuid(getuid());
			home = pw ? pw->pw_dir : "/";
		}
		return clean_path(L, arena_printf(L->plan, "%s%s", home, s + 1));
	}
	if (s[0] == '/')
		return clean_path(L, s);
	return clean_path(L, arena_printf(L->plan, "%s/%s", L->plan->dir, s));
}

const char *mg_pl_get_path(loader *L, yaml_node_t *map, const char *path, const char *key,
                           bool required, const char *def)
{
	const char *s = mg_pl_get_str(L, map, path, key, required, def);
	if (!s)
		return NULL;
	if (!*s) {
		ERR(L, mg_pl_get(L, map, key), mg_pl_kpath(L, path, key), "empty path");
		return NULL;
	}
	return mg_pl_resolve_path(L, s);
}

const char *mg_pl_get_kubeconfig(loader *L, yaml_node_t *map, const char *path)
{
	const char *s = mg_pl_get_str(L, map, path, "kubeconfig", false, NULL);
	if (s && !strcmp(s, MG_PL_IN_CLUSTER))
		return s; /* not a file: "./in-cluster" names one */
	return s ? mg_pl_get_path(L, map, path, "kubeconfig", false, NULL) : NULL;
}

bool mg_pl_check_file_exists(loader *L, yaml_node_t *map, const char *path, const char *key,
                             const char *abs, bool want_dir, mg_severity sev)
{
	if (!abs || (L->flags & MG_PLAN_LOAD_NO_FS))
		return true;
	if (access(abs, F_OK) == 0) {
		if (want_dir) {
			char probe[PATH_MAX];
			snprintf(probe, sizeof(probe), "%s/.", abs);
			if (access(probe, F_OK) != 0) {
				mg_pl_diag_at(L, sev, mg_pl_get(L, map, key),
				              mg_pl_kpath(L, path, key), "%s is not a directory",
				              abs);
				return false;
			}
		}
		return true;
	}
	mg_pl_diag_at(L, sev, mg_pl_get(L, map, key), mg_pl_kpath(L, path, key), "%s: %s", abs,
	              strerror(errno));
	return false;
}

/* `${name}` references: each must be one of `allowed` (NULL-terminated). */
bool mg_pl_check_refs(loader *L, yaml_node_t *v, const char *path, const char *s,
                      const char *const *allowed)
{
	bool ok = true;
	for (const char *p = strstr(s, "${"); p; p = strstr(p + 2, "${")) {
		const char *end = strchr(p, '}');
		if (!end) {
			ERR(L, v, path, "unterminated reference \"${\"; write ${name}");
			return false;
		}
		size_t n = (size_t)(end - p - 2);
		bool known = false;
		for (size_t i = 0; allowed[i]; i++)
			known |= strlen(allowed[i]) == n && !strncmp(p + 2, allowed[i], n);
		if (!known) {
			char list[256] = "";
			for (size_t i = 0; allowed[i]; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list),
				         "%s${%s}", i ? ", " : "", allowed[i]);
			ERR(L, v, path, "unknown reference \"${%.*s}\"; this value may use %s",
			    (int)n, p + 2, allowed[0] ? list : "no references");
			ok = false;
		}
	}
	return ok;
}

bool mg_pl_valid_dns_label(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n < 1 || n > max || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (const char *c = s; *c; c++)
		if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-'))
			return false;
	return true;
}

/* RFC 1123 host name, or an IPv4/IPv6 literal. */
bool mg_pl_valid_host(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 253)
		return false;
	if (strchr(s, ':')) {
		struct in6_addr a;
		return inet_pton(AF_INET6, s, &a) == 1;
	}
	const char *label = s;
	for (const char *c = s;; c++) {
		if (*c == '.' || !*c) {
			size_t len = (size_t)(c - label);
			if (len < 1 || len > 63 || label[0] == '-' || c[-1] == '-')
				return false;
			if (!*c)
				return true;
			label = c + 1;
		} else if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_')) {
			return false;
		}
	}
}

bool mg_pl_valid_server_name(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (const char *c = s; *c; c++)
		if (!(isalnum((unsigned char)*c) || strchr("_.:-[]", *c)))
			return false;
	return true;
}

bool mg_pl_valid_hex_id(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (const char *c = s; *c; c++)
		if (!isxdigit((unsigned char)*c))
			return false;
	return true;
}

bool mg_pl_parse_host_port(const char *s, char *host, size_t hsize, int *port)
{
	const char *colon = NULL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (size_t)(close - s - 1) >= hsize)
			return false;
		snprintf(host, hsize, "%.*s", (int)(close - s - 1), s + 1);
		if (close[1] == ':')
			colon = close + 1;
		else if (close[1])
			return false;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
		size_t n = colon ? (size_t)(colon - s) : strlen(s);
		if (n >= hsize)
			return false;
		snprintf(host, hsize, "%.*s", (int)n, s);
	}
	if (colon) {
		long p;
		if (!mg_pl_parse_long(colon + 1, &p) || p < 1 || p > 65535)
			return false;
		*port = (int)p;
	}
	return mg_pl_valid_host(host);
}

const char **mg_pl_load_name_list(loader *L, yaml_node_t *map, const char *path, const char *key,
                                  size_t *n, bool required, bool (*valid)(const char *),
                                  const char *what)
{
	yaml_node_t *list =
	    required ? mg_pl_get_required(L, map, path, key) : mg_pl_get(L, map, key);
	*n = 0;
	if (!list)
		return NULL;
	const char *p = mg_pl_kpath(L, path, key);
	if (!mg_pl_expect(L, list, YAML_SEQUENCE_NODE, p))
		return NULL;
	size_t cap = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	if (!cap) {
		ERR(L, list, p, "the list is empty");
		return NULL;
	}
	const char **out = mg_pl_arena_alloc(L->plan, cap * sizeof(*out));
	if (!out)
		return NULL;
	strset seen = {0};
	size_t i = 0;
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     it < list->data.sequence.items.top; it++, i++) {
		yaml_node_t *s = mg_pl_node(L, *it);
		const char *ip = mg_pl_ipath(L, p, i);
		const char *v;
		if (!str_at(L, s, ip, &v))
			continue;
		if (!valid(v)) {
			ERR(L, s, ip, "\"%s\" is not %s", v, what);
			continue;
		}
		if (!mg_pl_strset_add(&seen, v, 0, NULL)) {
			L->oom |= seen.oom;
			ERR(L, s, ip, "\"%s\" is listed twice", v);
			continue;
		}
		out[(*n)++] = v;
	}
	mg_pl_strset_clear(&seen);
	return out;
}

void mg_pl_check_url(loader *L, yaml_node_t *m, const char *path, const char *key, const char *url)
{
	char why[256];
	if (url && mg_url_check(url, why, sizeof(why)))
		ERR(L, mg_pl_get(L, m, key), mg_pl_kpath(L, path, key), "%s", why);
}

/* Exactly one of <prefix>_env / <prefix>_file, or neither when optional. */
void mg_pl_load_secret_ref(loader *L, yaml_node_t *m, const char *path, const char **env,
                           const char **file, bool required)
{
	*env = mg_pl_get_env_name(L, m, path, "token_env");
	*file = mg_pl_get_path(L, m, path, "token_file", false, NULL);
	mg_pl_check_file_exists(L, m, path, "token_file", *file, false, MG_SEV_ERROR);
	if (*env && *file)
		ERR(L, mg_pl_get(L, m, "token_file"), mg_pl_kpath(L, path, "token_file"),
		    "give either \"token_env\" or \"token_file\", not both");
	else if (required && !*env && !*file && !mg_pl_get(L, m, "token_env") &&
	         !mg_pl_get(L, m, "token"))
		ERR(L, m, path,
		    "needs \"token_env\" (the name of an environment variable holding the API "
		    "token) or \"token_file\"");
}
