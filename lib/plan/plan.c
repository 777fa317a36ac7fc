/*
 * Plan loader: libyaml's document API gives us nodes with their positions,
 * and the walkers below turn them into the typed model in plan.h.
 *
 * The loader never stops at the first problem: every walker records what is
 * wrong and carries on with a default, so `migrate validate` can show the
 * operator everything at once. Cross-section rules run only over sections
 * that loaded cleanly enough to be checked.
 */
#include "plan.h"

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
#include <yaml.h>

#include "fs.h"
#include "suggest.h"
#include "units.h"
#include "weights.h"
#include "yamllimit.h"

#define MAX_HOSTS MG_PLAN_MAX_HOSTS
/* Diagnostics kept per load; more are counted, not stored. */
#define MAX_DIAGS 10000

struct block {
	struct block *next;
	size_t used, size;
	max_align_t data[];
};

struct mg_plan {
	struct block *arena;
	const char *file;
	const char *dir;
	const char *name;
	const char *description;
	const char *state_dir;
	mg_plan_build *build;
	mg_plan_vms *vms;
	mg_plan_kubernetes *kubernetes;
	mg_plan_traffic *traffic;
	mg_plan_slo *slo;
};

/* ---- a set of strings (owned elsewhere): duplicate checks stay linear on long lists ---- */

typedef struct {
	const char *s;
	size_t tag; /* what the caller wants back on a duplicate */
} strset_slot;

typedef struct {
	strset_slot *slot;
	size_t cap, n;
	bool oom;
} strset;

static size_t str_hash(const char *s)
{
	size_t h = (size_t)1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * (size_t)1099511628211u;
	return h;
}

static void strset_free(strset *set)
{
	free(set->slot);
	*set = (strset){0};
}

/* Adds s; false when s was already there (*prev: its tag) or memory ran out (set->oom). */
static bool strset_add(strset *set, const char *s, size_t tag, size_t *prev)
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
	set->slot[j] = (strset_slot){s, tag};
	set->n++;
	return true;
}

static bool strset_has(const strset *set, const char *s)
{
	if (!set->cap)
		return false;
	for (size_t j = str_hash(s) & (set->cap - 1); set->slot[j].s; j = (j + 1) & (set->cap - 1))
		if (!strcmp(set->slot[j].s, s))
			return true;
	return false;
}

typedef struct {
	mg_plan *plan;
	yaml_document_t *doc;
	const char *file; /* for diagnostics */
	unsigned flags;
	mg_error *err;
	size_t errors;
	bool oom;
	yaml_node_t **step_nodes; /* where each accepted step came from, for later rules */
	size_t *step_items;
	strset host_names; /* the fleet so far */
	size_t ndiags;     /* found by diag_at, kept or not */
} loader;

/* ---- arena: the plan owns every string and array it hands out ---- */

static void *arena_alloc(mg_plan *p, size_t n)
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

static const char *arena_strdup(mg_plan *p, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *r = arena_alloc(p, n);
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
	return arena_strdup(p, buf);
}

void mg_plan_free(mg_plan *plan)
{
	if (!plan)
		return;
	struct block *b = plan->arena;
	while (b) {
		struct block *next = b->next;
		free(b);
		b = next;
	}
	free(plan);
}

/* ---- diagnostics ---- */

static void diag_at(loader *L, mg_severity sev, const yaml_node_t *n, const char *path,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void diag_at(loader *L, mg_severity sev, const yaml_node_t *n, const char *path,
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

#define ERR(L, n, path, ...)  diag_at(L, MG_SEV_ERROR, n, path, __VA_ARGS__)
#define WARN(L, n, path, ...) diag_at(L, MG_SEV_WARNING, n, path, __VA_ARGS__)

static const char *kpath(loader *L, const char *parent, const char *key)
{
	if (!parent || !*parent)
		return arena_strdup(L->plan, key);
	return arena_printf(L->plan, "%s.%s", parent, key);
}

static const char *ipath(loader *L, const char *parent, size_t i)
{
	return arena_printf(L->plan, "%s[%zu]", parent, i);
}

/* ---- node access ---- */

static yaml_node_t *node(loader *L, int id)
{
	return yaml_document_get_node(L->doc, id);
}

static const char *node_kind(const yaml_node_t *n)
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

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool is_null(const yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = scalar(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static bool is_plain(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool expect(loader *L, yaml_node_t *n, yaml_node_type_t type, const char *path)
{
	if (n->type == type)
		return true;
	static const char *want[] = {
	    [YAML_SCALAR_NODE] = "a single value",
	    [YAML_SEQUENCE_NODE] = "a list",
	    [YAML_MAPPING_NODE] = "a mapping (key: value lines)",
	};
	ERR(L, n, path, "expected %s, found %s", want[type], node_kind(n));
	return false;
}

/* Looks up key in a mapping; NULL when absent or null-valued. */
static yaml_node_t *get(loader *L, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(node(L, p->key));
		if (k && !strcmp(k, key)) {
			yaml_node_t *v = node(L, p->value);
			return is_null(v) ? NULL : v;
		}
	}
	return NULL;
}

/* Names that mean a secret written into the plan; they must come from *_env or *_file. */
static bool secret_key(const char *k)
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
static void check_keys(loader *L, yaml_node_t *map, const char *path, const char *const *allowed)
{
	if (map->type != YAML_MAPPING_NODE)
		return;
	strset seen = {0};
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = node(L, p->key);
		const char *k = scalar(kn);
		if (!k) {
			ERR(L, kn, path, "keys must be plain names, found %s", node_kind(kn));
			continue;
		}
		size_t first = 0;
		if (!strset_add(&seen, k, (size_t)kn->start_mark.line + 1, &first) && !seen.oom)
			ERR(L, kn, kpath(L, path, k), "duplicate key (first set on line %d)",
			    (int)first);
		L->oom |= seen.oom;
		bool known = false;
		for (size_t i = 0; allowed[i]; i++)
			known |= !strcmp(k, allowed[i]);
		if (known)
			continue;
		if (secret_key(k)) {
			char env_key[128];
			snprintf(env_key, sizeof(env_key), "%s_env", k);
			const char *use = NULL;
			for (size_t i = 0; allowed[i] && !use; i++)
				if (!strcmp(allowed[i], env_key) ||
				    !strcmp(allowed[i], "token_env"))
					use = allowed[i];
			if (use)
				ERR(L, kn, kpath(L, path, k),
				    "secrets may not be written into the plan; put it in an "
				    "environment variable and give that variable's name in `%s`",
				    use);
			else
				ERR(L, kn, kpath(L, path, k),
				    "secrets may not be written into the plan, and %s takes none",
				    path && *path ? path : "the top level");
			continue;
		}
		const char *best = mg_suggest(k, allowed);
		if (best)
			ERR(L, kn, kpath(L, path, k), "unknown key; did you mean \"%s\"?", best);
		else {
			char list[512] = "";
			for (size_t i = 0; allowed[i] && strlen(list) < sizeof(list) - 80; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				         i ? ", " : "", allowed[i]);
			ERR(L, kn, kpath(L, path, k), "unknown key; %s takes: %s",
			    path && *path ? path : "the top level", list);
		}
	}
	strset_free(&seen);
}

/* ---- typed getters: each records its own error and returns false on bad or missing input ---- */

static yaml_node_t *get_required(loader *L, yaml_node_t *map, const char *path, const char *key)
{
	yaml_node_t *v = get(L, map, key);
	if (!v)
		ERR(L, map, path && *path ? path : NULL, "missing required key \"%s\"", key);
	return v;
}

static bool str_at(loader *L, yaml_node_t *v, const char *path, const char **out)
{
	if (!expect(L, v, YAML_SCALAR_NODE, path))
		return false;
	*out = arena_strdup(L->plan, scalar(v));
	return true;
}

static const char *get_str(loader *L, yaml_node_t *map, const char *path, const char *key,
                           bool required, const char *def)
{
	yaml_node_t *v = required ? get_required(L, map, path, key) : get(L, map, key);
	const char *s = def;
	if (v)
		str_at(L, v, kpath(L, path, key), &s);
	return s;
}

/* true/false only: yes/no/on/off mean booleans to YAML 1.1 readers and strings to 1.2 ones */
static bool get_bool(loader *L, yaml_node_t *map, const char *path, const char *key, bool def)
{
	yaml_node_t *v = get(L, map, key);
	if (!v)
		return def;
	const char *s = scalar(v);
	if (s && is_plain(v) && !strcmp(s, "true"))
		return true;
	if (s && is_plain(v) && !strcmp(s, "false"))
		return false;
	ERR(L, v, kpath(L, path, key), "must be true or false (unquoted)");
	return def;
}

static bool parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

static long get_int(loader *L, yaml_node_t *map, const char *path, const char *key, long def,
                    long lo, long hi)
{
	yaml_node_t *v = get(L, map, key);
	if (!v)
		return def;
	const char *p = kpath(L, path, key);
	if (!expect(L, v, YAML_SCALAR_NODE, p))
		return def;
	long n;
	if (!parse_long(scalar(v), &n)) {
		ERR(L, v, p, "\"%s\" is not a whole number", scalar(v));
		return def;
	}
	if (n < lo || n > hi) {
		ERR(L, v, p, "%ld is out of range (%ld to %ld)", n, lo, hi);
		return def;
	}
	return n;
}

static bool parse_double(const char *s, double *out)
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

static bool get_number(loader *L, yaml_node_t *map, const char *path, const char *key, double *out)
{
	yaml_node_t *v = get(L, map, key);
	if (!v)
		return false;
	const char *p = kpath(L, path, key);
	if (!expect(L, v, YAML_SCALAR_NODE, p))
		return false;
	if (!parse_double(scalar(v), out)) {
		ERR(L, v, p, "\"%s\" is not a number", scalar(v));
		return false;
	}
	return true;
}

static int64_t get_duration(loader *L, yaml_node_t *map, const char *path, const char *key,
                            int64_t def, int64_t min_ms)
{
	yaml_node_t *v = get(L, map, key);
	if (!v)
		return def;
	const char *p = kpath(L, path, key);
	if (!expect(L, v, YAML_SCALAR_NODE, p))
		return def;
	int64_t ms;
	char why[256];
	if (mg_duration_parse(&ms, scalar(v), why, sizeof(why))) {
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
static double get_rate(loader *L, yaml_node_t *map, const char *path, const char *key)
{
	yaml_node_t *v = get(L, map, key);
	if (!v)
		return -1;
	const char *p = kpath(L, path, key);
	if (!expect(L, v, YAML_SCALAR_NODE, p))
		return -1;
	const char *s = scalar(v);
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
	if (!parse_double(s, &r) || r < 0 || r > 1) {
		ERR(L, v, p,
		    "\"%s\" is not a rate; write a percentage such as 1%% or a ratio from 0 to 1",
		    s);
		return -1;
	}
	return r;
}

static bool valid_env_name(const char *s)
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

static const char *get_env_name(loader *L, yaml_node_t *map, const char *path, const char *key)
{
	yaml_node_t *v = get(L, map, key);
	const char *s = NULL;
	if (!v || !str_at(L, v, kpath(L, path, key), &s))
		return NULL;
	if (looks_like_secret(s)) {
		ERR(L, v, kpath(L, path, key),
		    "must be the name of an environment variable (such as CLOUDFLARE_API_TOKEN); "
		    "this looks like a secret itself, which must never be in the plan");
		return NULL;
	}
	if (!valid_env_name(s)) {
		ERR(L, v, kpath(L, path, key),
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
	char *out = arena_alloc(L->plan, n + 2);
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
static const char *resolve_path(loader *L, const char *s)
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

static const char *get_path(loader *L, yaml_node_t *map, const char *path, const char *key,
                            bool required, const char *def)
{
	const char *s = get_str(L, map, path, key, required, def);
	if (!s)
		return NULL;
	if (!*s) {
		ERR(L, get(L, map, key), kpath(L, path, key), "empty path");
		return NULL;
	}
	return resolve_path(L, s);
}

static bool check_file_exists(loader *L, yaml_node_t *map, const char *path, const char *key,
                              const char *abs, bool want_dir, mg_severity sev)
{
	if (!abs || (L->flags & MG_PLAN_LOAD_NO_FS))
		return true;
	if (access(abs, F_OK) == 0) {
		if (want_dir) {
			char probe[PATH_MAX];
			snprintf(probe, sizeof(probe), "%s/.", abs);
			if (access(probe, F_OK) != 0) {
				diag_at(L, sev, get(L, map, key), kpath(L, path, key),
				        "%s is not a directory", abs);
				return false;
			}
		}
		return true;
	}
	diag_at(L, sev, get(L, map, key), kpath(L, path, key), "%s: %s", abs, strerror(errno));
	return false;
}

/* `${name}` references: each must be one of `allowed` (NULL-terminated). */
static bool check_refs(loader *L, yaml_node_t *v, const char *path, const char *s,
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

static bool valid_dns_label(const char *s, size_t max)
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
static bool valid_host(const char *s)
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

static bool valid_server_name(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (const char *c = s; *c; c++)
		if (!(isalnum((unsigned char)*c) || strchr("_.:-[]", *c)))
			return false;
	return true;
}

static bool valid_hex_id(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (const char *c = s; *c; c++)
		if (!isxdigit((unsigned char)*c))
			return false;
	return true;
}

/* ---- sections ---- */

static void load_build(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"repo", "artifact", "image", NULL};
	const char *P = "build";
	static const char *const version_ref[] = {"version", NULL};
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return;
	check_keys(L, m, P, keys);
	mg_plan_build *b = arena_alloc(L->plan, sizeof(*b));
	if (!b)
		return;
	b->repo = get_path(L, m, P, "repo", false, NULL);
	check_file_exists(L, m, P, "repo", b->repo, true, MG_SEV_ERROR);
	const char *artifact = get_str(L, m, P, "artifact", false, NULL);
	if (artifact &&
	    check_refs(L, get(L, m, "artifact"), "build.artifact", artifact, version_ref))
		b->artifact = resolve_path(L, artifact);
	b->image = get_str(L, m, P, "image", false, NULL);
	if (b->image) {
		check_refs(L, get(L, m, "image"), "build.image", b->image, version_ref);
		if (strpbrk(b->image, " \t\n"))
			ERR(L, get(L, m, "image"), "build.image",
			    "an image reference has no white space");
	}
	if (!artifact && !b->image)
		ERR(L, m, P,
		    "needs \"artifact\" (for the VMs), \"image\" (for Kubernetes), or both");
	L->plan->build = b;
}

static bool parse_host_port(const char *s, char *host, size_t hsize, int *port)
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
		if (!parse_long(colon + 1, &p) || p < 1 || p > 65535)
			return false;
		*port = (int)p;
	}
	return valid_host(host);
}

/* Adds a host; false (and nothing added) when the name is already in the fleet. */
static bool add_host(loader *L, mg_plan_vms *v, size_t *cap, const char *name, const char *addr,
                     int port)
{
	if (v->nhosts >= MAX_HOSTS)
		return true; /* refused once by the caller; the list stops growing */
	if (!strset_add(&L->host_names, name, 0, NULL)) {
		L->oom |= L->host_names.oom;
		return false;
	}
	if (v->nhosts == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		mg_plan_host *h = arena_alloc(L->plan, ncap * sizeof(*h));
		if (!h) {
			L->oom = true;
			return true;
		}
		if (v->nhosts)
			memcpy(h, v->hosts, v->nhosts * sizeof(*h));
		v->hosts = h;
		*cap = ncap;
	}
	v->hosts[v->nhosts++] = (mg_plan_host){name, addr, port};
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
		if (!parse_host_port(s, host, sizeof(host), &port)) {
			mg_error_diag(L->err, MG_SEV_ERROR, v->inventory, lineno,
			              (int)(s - line) + 1, "vms.inventory",
			              "\"%s\" is not host[:port]", s);
			L->errors++;
			continue;
		}
		const char *h = arena_strdup(L->plan, host);
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
	if (!expect(L, list, YAML_SEQUENCE_NODE, P))
		return;
	if (list->data.sequence.items.top - list->data.sequence.items.start > MAX_HOSTS) {
		ERR(L, list, P, "more than %d hosts (a limit; see \"Limits\" in docs/plan.md)",
		    MAX_HOSTS);
		return;
	}
	size_t i = 0;
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     it < list->data.sequence.items.top; it++, i++) {
		yaml_node_t *h = node(L, *it);
		const char *p = ipath(L, P, i);
		char host[256];
		int port = 22;
		if (h->type == YAML_SCALAR_NODE) {
			if (!parse_host_port(scalar(h), host, sizeof(host), &port)) {
				ERR(L, h, p,
				    "\"%s\" is not a host name, an IP address or host:port",
				    scalar(h));
				continue;
			}
			const char *s = arena_strdup(L->plan, host);
			if (!add_host(L, v, cap, s, s, port))
				ERR(L, h, p, "host \"%s\" is listed twice", s);
		} else if (h->type == YAML_MAPPING_NODE) {
			check_keys(L, h, p, hkeys);
			const char *name = get_str(L, h, p, "name", true, NULL);
			const char *addr = get_str(L, h, p, "address", false, name);
			port = (int)get_int(L, h, p, "port", 22, 1, 65535);
			if (!name)
				continue;
			if (!valid_host(name)) {
				ERR(L, get(L, h, "name"), kpath(L, p, "name"),
				    "\"%s\" is not a valid host name", name);
				continue;
			}
			if (addr != name && !valid_host(addr)) {
				ERR(L, get(L, h, "address"), kpath(L, p, "address"),
				    "\"%s\" is not a host name or IP address", addr);
				continue;
			}
			if (!add_host(L, v, cap, name, addr, port))
				ERR(L, get(L, h, "name"), kpath(L, p, "name"),
				    "host \"%s\" is listed twice", name);
		} else {
			ERR(L, h, p, "expected a host name or {name, address, port}, found %s",
			    node_kind(h));
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

static void load_vms(loader *L, yaml_node_t *m)
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
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return;
	check_keys(L, m, P, keys);
	mg_plan_vms *v = arena_alloc(L->plan, sizeof(*v));
	if (!v)
		return;
	size_t cap = 0;
	yaml_node_t *hosts = get(L, m, "hosts");
	size_t host_errors = L->errors; /* "no hosts" only when none was refused */
	v->inventory = get_path(L, m, P, "inventory", false, NULL);
	if (hosts && v->inventory)
		ERR(L, get(L, m, "inventory"), "vms.inventory",
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

	v->user = get_str(L, m, P, "user", true, NULL);
	v->identity_file = get_path(L, m, P, "identity_file", false, NULL);
	v->passphrase_env = get_env_name(L, m, P, "passphrase_env");
	v->known_hosts = get_path(L, m, P, "known_hosts", false, NULL);
	if (!v->known_hosts)
		v->known_hosts = resolve_path(L, "~/.ssh/known_hosts");
	v->path = get_str(L, m, P, "path", true, NULL);
	if (v->path && (v->path[0] != '/' || has_dotdot(v->path) || strpbrk(v->path, "\n'\"")))
		ERR(L, get(L, m, "path"), "vms.path",
		    "must be an absolute path on the hosts without \"..\" or quotes, such as "
		    "/srv/payments-api");
	v->keep_releases = (int)get_int(L, m, P, "keep_releases", 5, 2, 1000);
	v->parallel = (int)get_int(L, m, P, "parallel", 10, 1, 1000);
	v->max_failures = (int)get_int(L, m, P, "max_failures", 0, 0, MAX_HOSTS);
	yaml_node_t *batch = get(L, m, "batch");
	v->batch_percent = 25;
	if (batch && expect(L, batch, YAML_SCALAR_NODE, "vms.batch")) {
		const char *s = scalar(batch);
		long n;
		char why[256];
		if (strchr(s, '%')) {
			if (mg_percent_parse(&v->batch_percent, s, why, sizeof(why)))
				ERR(L, batch, "vms.batch", "%s", why);
			else if (v->batch_percent <= 0)
				ERR(L, batch, "vms.batch", "a batch must hold at least one host");
		} else if (parse_long(s, &n) && n >= 1 && n <= MAX_HOSTS) {
			v->batch_count = (int)n;
			v->batch_percent = 0;
		} else {
			ERR(L, batch, "vms.batch",
			    "\"%s\" is not a host count (such as 5) or a percentage (such as 25%%)",
			    s);
		}
	}
	v->activate = get_str(L, m, P, "activate", false, NULL);
	yaml_node_t *health = get(L, m, "health");
	v->health_timeout_ms = 30000;
	if (health && expect(L, health, YAML_MAPPING_NODE, "vms.health")) {
		check_keys(L, health, "vms.health", hkeys);
		v->health_url = get_str(L, health, "vms.health", "url", true, NULL);
		v->health_timeout_ms =
		    get_duration(L, health, "vms.health", "timeout", 30000, 1000);
		yaml_node_t *un = get(L, health, "url");
		if (v->health_url && check_refs(L, un, "vms.health.url", v->health_url, host_ref)) {
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
	v->connect_timeout_ms = get_duration(L, m, P, "connect_timeout", 10000, 100);
	v->command_timeout_ms = get_duration(L, m, P, "command_timeout", 300000, 1000);
	L->plan->vms = v;
}

static void load_kubernetes(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"kubeconfig",      "context",         "namespace",
	                                   "templates",       "values",          "configmaps",
	                                   "rollout_timeout", "force_conflicts", NULL};
	static const char *const ckeys[] = {"name", "from_nginx", NULL};
	const char *P = "kubernetes";
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return;
	check_keys(L, m, P, keys);
	mg_plan_kubernetes *k = arena_alloc(L->plan, sizeof(*k));
	if (!k)
		return;
	k->kubeconfig = get_path(L, m, P, "kubeconfig", false, NULL);
	k->context = get_str(L, m, P, "context", false, NULL);
	k->namespace_ = get_str(L, m, P, "namespace", true, NULL);
	if (k->namespace_ && !valid_dns_label(k->namespace_, 63))
		ERR(L, get(L, m, "namespace"), "kubernetes.namespace",
		    "\"%s\" is not a Kubernetes namespace name (lower case letters, digits and "
		    "'-', at most 63)",
		    k->namespace_);
	k->templates = get_path(L, m, P, "templates", true, NULL);
	check_file_exists(L, m, P, "templates", k->templates, true, MG_SEV_WARNING);
	k->rollout_timeout_ms = get_duration(L, m, P, "rollout_timeout", 600000, 1000);
	k->force_conflicts = get_bool(L, m, P, "force_conflicts", false);

	yaml_node_t *values = get(L, m, "values");
	if (values && expect(L, values, YAML_MAPPING_NODE, "kubernetes.values")) {
		size_t n =
		    (size_t)(values->data.mapping.pairs.top - values->data.mapping.pairs.start);
		k->values = arena_alloc(L->plan, (n ? n : 1) * sizeof(*k->values));
		strset seen = {0};
		for (yaml_node_pair_t *p = values->data.mapping.pairs.start;
		     k->values && p < values->data.mapping.pairs.top; p++) {
			yaml_node_t *kn = node(L, p->key), *vn = node(L, p->value);
			const char *key = scalar(kn);
			if (!key || !valid_env_name(key)) {
				ERR(L, kn, "kubernetes.values",
				    "value names are letters, digits and '_' (used as "
				    "${values.NAME} in templates)");
				continue;
			}
			const char *vp = kpath(L, "kubernetes.values", key);
			if (secret_key(key)) {
				ERR(L, kn, vp,
				    "secrets may not be written into the plan; keep it in a Kubernetes "
				    "Secret and reference that from the templates");
				continue;
			}
			if (!expect(L, vn, YAML_SCALAR_NODE, vp))
				continue;
			if (!strset_add(&seen, key, 0, NULL)) {
				L->oom |= seen.oom;
				ERR(L, kn, vp, "duplicate key");
				continue;
			}
			double d;
			const char *s = scalar(vn);
			bool plain_literal =
			    is_plain(vn) &&
			    (parse_double(s, &d) || !strcmp(s, "true") || !strcmp(s, "false"));
			k->values[k->nvalues++] = (mg_plan_value){
			    arena_strdup(L->plan, key), arena_strdup(L->plan, s), !plain_literal};
		}
		strset_free(&seen);
	}

	yaml_node_t *cms = get(L, m, "configmaps");
	if (cms && expect(L, cms, YAML_SEQUENCE_NODE, "kubernetes.configmaps")) {
		size_t n = (size_t)(cms->data.sequence.items.top - cms->data.sequence.items.start);
		k->configmaps = arena_alloc(L->plan, (n ? n : 1) * sizeof(*k->configmaps));
		size_t i = 0;
		for (yaml_node_item_t *it = cms->data.sequence.items.start;
		     k->configmaps && it < cms->data.sequence.items.top; it++, i++) {
			yaml_node_t *c = node(L, *it);
			const char *p = ipath(L, "kubernetes.configmaps", i);
			if (!expect(L, c, YAML_MAPPING_NODE, p))
				continue;
			check_keys(L, c, p, ckeys);
			mg_plan_configmap cm = {get_str(L, c, p, "name", true, NULL),
			                        get_path(L, c, p, "from_nginx", true, NULL)};
			if (cm.name && !valid_dns_label(cm.name, 253))
				ERR(L, get(L, c, "name"), kpath(L, p, "name"),
				    "\"%s\" is not a ConfigMap name (lower case letters, digits and "
				    "'-')",
				    cm.name);
			for (size_t j = 0; cm.name && j < k->nconfigmaps; j++)
				if (!strcmp(k->configmaps[j].name, cm.name))
					ERR(L, get(L, c, "name"), kpath(L, p, "name"),
					    "ConfigMap \"%s\" is listed twice", cm.name);
			check_file_exists(L, c, p, "from_nginx", cm.from_nginx, false,
			                  MG_SEV_WARNING);
			if (cm.name && cm.from_nginx)
				k->configmaps[k->nconfigmaps++] = cm;
		}
	}
	L->plan->kubernetes = k;
}

static const char **load_name_list(loader *L, yaml_node_t *map, const char *path, const char *key,
                                   size_t *n, bool required, bool (*valid)(const char *),
                                   const char *what)
{
	yaml_node_t *list = required ? get_required(L, map, path, key) : get(L, map, key);
	*n = 0;
	if (!list)
		return NULL;
	const char *p = kpath(L, path, key);
	if (!expect(L, list, YAML_SEQUENCE_NODE, p))
		return NULL;
	size_t cap = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	if (!cap) {
		ERR(L, list, p, "the list is empty");
		return NULL;
	}
	const char **out = arena_alloc(L->plan, cap * sizeof(*out));
	if (!out)
		return NULL;
	strset seen = {0};
	size_t i = 0;
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     it < list->data.sequence.items.top; it++, i++) {
		yaml_node_t *s = node(L, *it);
		const char *ip = ipath(L, p, i);
		const char *v;
		if (!str_at(L, s, ip, &v))
			continue;
		if (!valid(v)) {
			ERR(L, s, ip, "\"%s\" is not %s", v, what);
			continue;
		}
		if (!strset_add(&seen, v, 0, NULL)) {
			L->oom |= seen.oom;
			ERR(L, s, ip, "\"%s\" is listed twice", v);
			continue;
		}
		out[(*n)++] = v;
	}
	strset_free(&seen);
	return out;
}

static void check_disjoint(loader *L, yaml_node_t *m, const char *path, const char **a, size_t na,
                           const char **b, size_t nb)
{
	strset bs = {0};
	for (size_t j = 0; j < nb; j++)
		strset_add(&bs, b[j], 0, NULL);
	L->oom |= bs.oom;
	for (size_t i = 0; i < na; i++)
		if (strset_has(&bs, a[i]))
			ERR(L, get(L, m, "k8s_servers"), kpath(L, path, "k8s_servers"),
			    "\"%s\" is in both vm_servers and k8s_servers", a[i]);
	strset_free(&bs);
}

static bool valid_host_port(const char *s)
{
	char host[256];
	int port = 0;
	return parse_host_port(s, host, sizeof(host), &port) && port > 0;
}

static mg_plan_haproxy *load_haproxy(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"socket",      "address", "backend", "vm_servers",
	                                   "k8s_servers", "timeout", NULL};
	const char *P = "traffic.haproxy";
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return NULL;
	check_keys(L, m, P, keys);
	mg_plan_haproxy *h = arena_alloc(L->plan, sizeof(*h));
	if (!h)
		return NULL;
	h->socket = get_path(L, m, P, "socket", false, NULL);
	h->address = get_str(L, m, P, "address", false, NULL);
	if (h->socket && h->address)
		ERR(L, get(L, m, "address"), "traffic.haproxy.address",
		    "give either \"socket\" or \"address\", not both");
	else if (!h->socket && !h->address)
		ERR(L, m, P,
		    "needs \"socket\" (the admin socket's path) or \"address\" (host:port "
		    "of the runtime API)");
	if (h->address && !valid_host_port(h->address))
		ERR(L, get(L, m, "address"), "traffic.haproxy.address", "\"%s\" is not host:port",
		    h->address);
	h->backend = get_str(L, m, P, "backend", true, NULL);
	if (h->backend && !valid_server_name(h->backend))
		ERR(L, get(L, m, "backend"), "traffic.haproxy.backend",
		    "\"%s\" is not an HAProxy backend name", h->backend);
	h->vm_servers = load_name_list(L, m, P, "vm_servers", &h->nvm_servers, true,
	                               valid_server_name, "an HAProxy server name");
	h->k8s_servers = load_name_list(L, m, P, "k8s_servers", &h->nk8s_servers, true,
	                                valid_server_name, "an HAProxy server name");
	check_disjoint(L, m, P, h->vm_servers, h->nvm_servers, h->k8s_servers, h->nk8s_servers);
	h->timeout_ms = get_duration(L, m, P, "timeout", 5000, 10);
	return h;
}

static mg_plan_nginx *load_nginx(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {
	    "upstream_file", "upstream",       "vm_servers",      "k8s_servers",
	    "test_command",  "reload_command", "command_timeout", NULL};
	const char *P = "traffic.nginx";
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return NULL;
	check_keys(L, m, P, keys);
	mg_plan_nginx *n = arena_alloc(L->plan, sizeof(*n));
	if (!n)
		return NULL;
	n->upstream_file = get_path(L, m, P, "upstream_file", true, NULL);
	n->upstream = get_str(L, m, P, "upstream", true, NULL);
	if (n->upstream && !valid_server_name(n->upstream))
		ERR(L, get(L, m, "upstream"), "traffic.nginx.upstream",
		    "\"%s\" is not an nginx upstream name", n->upstream);
	n->vm_servers = load_name_list(L, m, P, "vm_servers", &n->nvm_servers, true,
	                               valid_host_port, "host:port");
	n->k8s_servers = load_name_list(L, m, P, "k8s_servers", &n->nk8s_servers, true,
	                                valid_host_port, "host:port");
	check_disjoint(L, m, P, n->vm_servers, n->nvm_servers, n->k8s_servers, n->nk8s_servers);
	n->test_command = get_str(L, m, P, "test_command", false, "nginx -t");
	n->reload_command = get_str(L, m, P, "reload_command", false, "nginx -s reload");
	n->command_timeout_ms = get_duration(L, m, P, "command_timeout", 30000, 100);
	return n;
}

static void check_url(loader *L, yaml_node_t *m, const char *path, const char *key, const char *url)
{
	char why[256];
	if (url && mg_url_check(url, why, sizeof(why)))
		ERR(L, get(L, m, key), kpath(L, path, key), "%s", why);
}

/* Exactly one of <prefix>_env / <prefix>_file, or neither when optional. */
static void load_secret_ref(loader *L, yaml_node_t *m, const char *path, const char **env,
                            const char **file, bool required)
{
	*env = get_env_name(L, m, path, "token_env");
	*file = get_path(L, m, path, "token_file", false, NULL);
	check_file_exists(L, m, path, "token_file", *file, false, MG_SEV_ERROR);
	if (*env && *file)
		ERR(L, get(L, m, "token_file"), kpath(L, path, "token_file"),
		    "give either \"token_env\" or \"token_file\", not both");
	else if (required && !*env && !*file && !get(L, m, "token_env") && !get(L, m, "token"))
		ERR(L, m, path,
		    "needs \"token_env\" (the name of an environment variable holding the API "
		    "token) or \"token_file\"");
}

static mg_plan_cloudflare *load_cloudflare(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {
	    "account_id", "zone_id", "load_balancer_id", "vm_pool", "k8s_pool", "token_env",
	    "token_file", "api_url", "ca_file",          "timeout", NULL};
	static const char *const ids[] = {"account_id", "zone_id", "load_balancer_id", "vm_pool",
	                                  "k8s_pool"};
	const char *P = "traffic.cloudflare";
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return NULL;
	check_keys(L, m, P, keys);
	mg_plan_cloudflare *c = arena_alloc(L->plan, sizeof(*c));
	if (!c)
		return NULL;
	const char **dst[] = {&c->account_id, &c->zone_id, &c->load_balancer_id, &c->vm_pool,
	                      &c->k8s_pool};
	for (size_t i = 0; i < 5; i++) {
		*dst[i] = get_str(L, m, P, ids[i], true, NULL);
		if (*dst[i] && !valid_hex_id(*dst[i]))
			ERR(L, get(L, m, ids[i]), kpath(L, P, ids[i]),
			    "\"%s\" is not a Cloudflare identifier (32 hexadecimal digits)",
			    *dst[i]);
	}
	if (c->vm_pool && c->k8s_pool && !strcmp(c->vm_pool, c->k8s_pool))
		ERR(L, get(L, m, "k8s_pool"), "traffic.cloudflare.k8s_pool",
		    "the cluster pool must differ from the VM pool");
	load_secret_ref(L, m, P, &c->token_env, &c->token_file, true);
	c->api_url = get_str(L, m, P, "api_url", false, "https://api.cloudflare.com/client/v4");
	check_url(L, m, P, "api_url", c->api_url);
	c->ca_file = get_path(L, m, P, "ca_file", false, NULL);
	check_file_exists(L, m, P, "ca_file", c->ca_file, false, MG_SEV_ERROR);
	c->timeout_ms = get_duration(L, m, P, "timeout", 30000, 100);
	return c;
}

static void load_traffic(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"provider", "steps",      "bake", "haproxy",
	                                   "nginx",    "cloudflare", NULL};
	static const char *const providers[] = {"haproxy", "nginx", "cloudflare"};
	const char *P = "traffic";
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return;
	check_keys(L, m, P, keys);
	mg_plan_traffic *t = arena_alloc(L->plan, sizeof(*t));
	if (!t)
		return;
	yaml_node_t *pn = get_required(L, m, P, "provider");
	bool have_provider = false;
	if (pn && expect(L, pn, YAML_SCALAR_NODE, "traffic.provider")) {
		for (size_t i = 0; i < 3; i++)
			if (!strcmp(scalar(pn), providers[i])) {
				t->provider = (mg_provider)i;
				have_provider = true;
			}
		if (!have_provider)
			ERR(L, pn, "traffic.provider",
			    "unknown provider \"%s\"; use haproxy, nginx or cloudflare",
			    scalar(pn));
	}

	yaml_node_t *steps = get_required(L, m, P, "steps");
	if (steps && expect(L, steps, YAML_SEQUENCE_NODE, "traffic.steps")) {
		size_t n =
		    (size_t)(steps->data.sequence.items.top - steps->data.sequence.items.start);
		t->steps = arena_alloc(L->plan, (n ? n : 1) * sizeof(double));
		L->step_nodes = arena_alloc(L->plan, (n ? n : 1) * sizeof(*L->step_nodes));
		L->step_items = arena_alloc(L->plan, (n ? n : 1) * sizeof(*L->step_items));
		size_t i = 0;
		bool ok = t->steps != NULL;
		yaml_node_t *last = NULL;
		for (yaml_node_item_t *it = steps->data.sequence.items.start;
		     t->steps && L->step_nodes && L->step_items &&
		     it < steps->data.sequence.items.top;
		     it++, i++) {
			yaml_node_t *s = node(L, *it);
			const char *p = ipath(L, "traffic.steps", i);
			double pct;
			char why[256];
			if (!expect(L, s, YAML_SCALAR_NODE, p)) {
				ok = false;
				continue;
			}
			if (mg_percent_parse(&pct, scalar(s), why, sizeof(why))) {
				ERR(L, s, p, "%s", why);
				ok = false;
				continue;
			}
			if (pct <= 0) {
				ERR(L, s, p,
				    "a step sends some traffic to the cluster; 0%% is where "
				    "every migration starts and `migrate rollback` returns");
				ok = false;
				continue;
			}
			if (t->nsteps && pct <= t->steps[t->nsteps - 1]) {
				char a[32], b[32];
				mg_percent_format(a, sizeof(a), pct);
				mg_percent_format(b, sizeof(b), t->steps[t->nsteps - 1]);
				a[strlen(a) - 1] = b[strlen(b) - 1] = '\0'; /* drop '%' */
				ERR(L, s, p,
				    "%s is %s the step before it (%s); steps must increase", a,
				    pct == t->steps[t->nsteps - 1] ? "the same as" : "lower than",
				    b);
				ok = false;
				continue;
			}
			L->step_nodes[t->nsteps] = s;
			L->step_items[t->nsteps] = i;
			t->steps[t->nsteps++] = pct;
			last = s;
		}
		if (!n)
			ERR(L, steps, "traffic.steps", "no steps; the last step must be 100");
		else if (ok && t->nsteps && t->steps[t->nsteps - 1] != 100)
			ERR(L, last, ipath(L, "traffic.steps", t->nsteps - 1),
			    "the last step must be 100, so the migration ends with all traffic on "
			    "the cluster");
	}
	t->bake_ms = get_duration(L, m, P, "bake", -1, 0);
	if (t->bake_ms < 0 && !get(L, m, "bake"))
		ERR(L, m, P,
		    "missing required key \"bake\" (the minimum time at a step, such as "
		    "10m)");

	yaml_node_t *hn = get(L, m, "haproxy"), *nn = get(L, m, "nginx"),
	            *cn = get(L, m, "cloudflare");
	t->haproxy = hn ? load_haproxy(L, hn) : NULL;
	t->nginx = nn ? load_nginx(L, nn) : NULL;
	t->cloudflare = cn ? load_cloudflare(L, cn) : NULL;
	if (have_provider) {
		yaml_node_t *sec[] = {hn, nn, cn};
		if (!sec[t->provider])
			ERR(L, pn, "traffic.provider",
			    "provider is %s but there is no traffic.%s section",
			    providers[t->provider], providers[t->provider]);
	}
	L->plan->traffic = t;
}

static void load_checks(loader *L, yaml_node_t *list, mg_plan_slo *s)
{
	static const char *const keys[] = {"name",     "query",     "min", "max",
	                                   "baseline", "max_ratio", NULL};
	static const char *const refs[] = {"window", "interval", NULL};
	const char *P = "slo.checks";
	if (!expect(L, list, YAML_SEQUENCE_NODE, P))
		return;
	size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	s->checks = arena_alloc(L->plan, (n ? n : 1) * sizeof(*s->checks));
	size_t i = 0;
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     s->checks && it < list->data.sequence.items.top; it++, i++) {
		yaml_node_t *c = node(L, *it);
		const char *p = ipath(L, P, i);
		if (!expect(L, c, YAML_MAPPING_NODE, p))
			continue;
		check_keys(L, c, p, keys);
		mg_plan_check ck = {0};
		ck.name = get_str(L, c, p, "name", true, NULL);
		if (ck.name && !valid_dns_label(ck.name, 63))
			ERR(L, get(L, c, "name"), kpath(L, p, "name"),
			    "\"%s\" is not a check name (lower case letters, digits and '-')",
			    ck.name);
		for (size_t j = 0; ck.name && j < s->nchecks; j++)
			if (!strcmp(s->checks[j].name, ck.name))
				ERR(L, get(L, c, "name"), kpath(L, p, "name"),
				    "check \"%s\" is defined twice", ck.name);
		ck.query = get_str(L, c, p, "query", true, NULL);
		if (ck.query)
			check_refs(L, get(L, c, "query"), kpath(L, p, "query"), ck.query, refs);
		ck.has_min = get_number(L, c, p, "min", &ck.min);
		ck.has_max = get_number(L, c, p, "max", &ck.max);
		ck.baseline = get_str(L, c, p, "baseline", false, NULL);
		if (ck.baseline)
			check_refs(L, get(L, c, "baseline"), kpath(L, p, "baseline"), ck.baseline,
			           refs);
		bool has_ratio = get_number(L, c, p, "max_ratio", &ck.max_ratio);
		if (ck.baseline && !has_ratio)
			ERR(L, c, p, "a check with \"baseline\" needs \"max_ratio\"");
		if (has_ratio && !ck.baseline)
			ERR(L, get(L, c, "max_ratio"), kpath(L, p, "max_ratio"),
			    "\"max_ratio\" compares with a \"baseline\" query, which is missing");
		if (has_ratio && ck.max_ratio <= 0)
			ERR(L, get(L, c, "max_ratio"), kpath(L, p, "max_ratio"),
			    "must be greater than 0");
		if (!get(L, c, "min") && !get(L, c, "max") && !get(L, c, "baseline"))
			ERR(L, c, p,
			    "a check needs \"min\", \"max\" or \"baseline\" to pass or fail");
		if (ck.has_min && ck.has_max && ck.min > ck.max)
			ERR(L, get(L, c, "min"), kpath(L, p, "min"),
			    "%g is greater than max (%g); no value could pass", ck.min, ck.max);
		if (ck.name && ck.query)
			s->checks[s->nchecks++] = ck;
	}
}

static void load_red(loader *L, yaml_node_t *m, mg_plan_slo *s)
{
	static const char *const keys[] = {"source",
	                                   "backend",
	                                   "ingress",
	                                   "namespace",
	                                   "vm_servers",
	                                   "k8s_servers",
	                                   "max_error_rate",
	                                   "max_latency",
	                                   "max_error_rate_vs_vms",
	                                   NULL};
	const char *P = "slo.red";
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return;
	check_keys(L, m, P, keys);
	mg_plan_red *r = arena_alloc(L->plan, sizeof(*r));
	if (!r)
		return;
	size_t source_errors = L->errors;
	yaml_node_t *src = get_required(L, m, P, "source");
	if (src && expect(L, src, YAML_SCALAR_NODE, "slo.red.source")) {
		if (!strcmp(scalar(src), "haproxy"))
			r->source = MG_RED_HAPROXY;
		else if (!strcmp(scalar(src), "ingress-nginx"))
			r->source = MG_RED_INGRESS_NGINX;
		else
			ERR(L, src, "slo.red.source",
			    "unknown metrics source \"%s\"; use haproxy or ingress-nginx",
			    scalar(src));
	}
	bool source_ok = L->errors == source_errors;
	/* an unknown source has no required keys of its own to complain about */
	r->backend =
	    get_str(L, m, P, "backend", source_ok && src && r->source == MG_RED_HAPROXY, NULL);
	r->ingress = get_str(L, m, P, "ingress", false, NULL);
	r->namespace_ = get_str(L, m, P, "namespace", false, NULL);
	r->vm_servers = load_name_list(L, m, P, "vm_servers", &r->nvm_servers, false,
	                               valid_server_name, "a server name");
	r->k8s_servers = load_name_list(L, m, P, "k8s_servers", &r->nk8s_servers, false,
	                                valid_server_name, "a server name");
	r->max_error_rate = get_rate(L, m, P, "max_error_rate");
	r->max_latency_ms = get_duration(L, m, P, "max_latency", -1, 1);
	r->max_error_rate_vs_vms = -1;
	if (get_number(L, m, P, "max_error_rate_vs_vms", &r->max_error_rate_vs_vms) &&
	    r->max_error_rate_vs_vms < 1) {
		ERR(L, get(L, m, "max_error_rate_vs_vms"), "slo.red.max_error_rate_vs_vms",
		    "%g would fail the cluster for doing better than the VMs; use 1 or more",
		    r->max_error_rate_vs_vms);
		r->max_error_rate_vs_vms = -1;
	}
	if (!get(L, m, "max_error_rate") && !get(L, m, "max_latency") &&
	    !get(L, m, "max_error_rate_vs_vms"))
		ERR(L, m, P,
		    "needs at least one of max_error_rate, max_latency, max_error_rate_vs_vms");
	/* with an unknown source no cross-section rule applies; the error is reported already */
	s->red = source_ok ? r : NULL;
}

static void load_slo(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"prometheus",   "interval",      "window",
	                                   "min_requests", "failure_limit", "on_failure",
	                                   "red",          "checks",        NULL};
	static const char *const pkeys[] = {"url",     "token_env", "token_file",
	                                    "ca_file", "timeout",   NULL};
	const char *P = "slo";
	if (!expect(L, m, YAML_MAPPING_NODE, P))
		return;
	check_keys(L, m, P, keys);
	mg_plan_slo *s = arena_alloc(L->plan, sizeof(*s));
	if (!s)
		return;
	yaml_node_t *prom = get_required(L, m, P, "prometheus");
	s->prometheus_timeout_ms = 10000;
	if (prom && expect(L, prom, YAML_MAPPING_NODE, "slo.prometheus")) {
		const char *PP = "slo.prometheus";
		check_keys(L, prom, PP, pkeys);
		s->prometheus_url = get_str(L, prom, PP, "url", true, NULL);
		check_url(L, prom, PP, "url", s->prometheus_url);
		load_secret_ref(L, prom, PP, &s->token_env, &s->token_file, false);
		s->ca_file = get_path(L, prom, PP, "ca_file", false, NULL);
		check_file_exists(L, prom, PP, "ca_file", s->ca_file, false, MG_SEV_ERROR);
		s->prometheus_timeout_ms = get_duration(L, prom, PP, "timeout", 10000, 100);
	}
	s->interval_ms = get_duration(L, m, P, "interval", 30000, 1000);
	s->window_ms = get_duration(L, m, P, "window", 300000, 1000);
	if (s->window_ms < s->interval_ms)
		ERR(L, get(L, m, "window") ? get(L, m, "window") : get(L, m, "interval"),
		    "slo.window",
		    "the window must be at least the interval, or requests between two "
		    "evaluations are never looked at");
	s->min_requests = get_int(L, m, P, "min_requests", 100, 0, LONG_MAX);
	s->failure_limit = (int)get_int(L, m, P, "failure_limit", 1, 1, 1000);
	s->on_failure = MG_ON_FAILURE_ROLLBACK;
	yaml_node_t *of = get(L, m, "on_failure");
	if (of && expect(L, of, YAML_SCALAR_NODE, "slo.on_failure")) {
		if (!strcmp(scalar(of), "pause"))
			s->on_failure = MG_ON_FAILURE_PAUSE;
		else if (strcmp(scalar(of), "rollback"))
			ERR(L, of, "slo.on_failure", "\"%s\" is not rollback or pause", scalar(of));
	}
	yaml_node_t *red = get(L, m, "red");
	if (red)
		load_red(L, red, s);
	yaml_node_t *checks = get(L, m, "checks");
	if (checks)
		load_checks(L, checks, s);
	if (!red && !checks)
		ERR(L, m, P,
		    "no gates: add \"red\" or \"checks\", or traffic would move on no "
		    "evidence");
	L->plan->slo = s;
}

/* ---- rules that span sections ---- */

static void check_weights(loader *L, size_t nvm, size_t nk8s, const char *provider)
{
	const mg_plan_traffic *t = L->plan->traffic;
	for (size_t i = 0; i < t->nsteps; i++) {
		mg_weights w;
		mg_error werr = MG_ERROR_INIT;
		if (mg_weights_split(&w, t->steps[i], nvm, nk8s, MG_WEIGHTS_BALANCER_MAX, &werr)) {
			ERR(L, L->step_nodes[i], ipath(L, "traffic.steps", L->step_items[i]),
			    "%s (traffic.%s)", werr.message, provider);
		}
		mg_error_clear(&werr);
	}
}

static void check_cross(loader *L, yaml_node_t *root)
{
	mg_plan *p = L->plan;
	const mg_plan_traffic *t = p->traffic;
	yaml_node_t *tn = get(L, root, "traffic"), *sn = get(L, root, "slo");
	if (t && t->nsteps) {
		if (t->provider == MG_PROVIDER_HAPROXY && t->haproxy && t->haproxy->nvm_servers &&
		    t->haproxy->nk8s_servers)
			check_weights(L, t->haproxy->nvm_servers, t->haproxy->nk8s_servers,
			              "haproxy");
		if (t->provider == MG_PROVIDER_NGINX && t->nginx && t->nginx->nvm_servers &&
		    t->nginx->nk8s_servers)
			check_weights(L, t->nginx->nvm_servers, t->nginx->nk8s_servers, "nginx");
	}
	if (t && p->slo && t->bake_ms >= 0 && t->bake_ms < p->slo->interval_ms) {
		char a[32], b[32];
		mg_duration_format(a, sizeof(a), t->bake_ms);
		mg_duration_format(b, sizeof(b), p->slo->interval_ms);
		ERR(L, get(L, tn, "bake"), "traffic.bake",
		    "%s is shorter than slo.interval (%s); a step would end before its gates "
		    "were evaluated once",
		    a, b);
	}
	const mg_plan_red *r = p->slo ? p->slo->red : NULL;
	yaml_node_t *rn = get(L, sn, "red");
	if (r && r->source == MG_RED_HAPROXY && t && t->provider == MG_PROVIDER_HAPROXY &&
	    t->haproxy) {
		const mg_plan_haproxy *h = t->haproxy;
		if (r->backend && h->backend && strcmp(r->backend, h->backend))
			ERR(L, get(L, rn, "backend"), "slo.red.backend",
			    "\"%s\" is not the backend traffic moves (traffic.haproxy.backend is "
			    "\"%s\")",
			    r->backend, h->backend);
		const char **lists[] = {r->vm_servers, r->k8s_servers};
		size_t counts[] = {r->nvm_servers, r->nk8s_servers};
		const char **tl[] = {h->vm_servers, h->k8s_servers};
		size_t tc[] = {h->nvm_servers, h->nk8s_servers};
		const char *keys[] = {"vm_servers", "k8s_servers"};
		for (size_t k = 0; k < 2; k++) {
			yaml_node_t *ln = get(L, rn, keys[k]);
			/* sets, not scans: both lists can be long */
			strset known = {0}, where = {0};
			for (size_t i = 0; i < tc[k]; i++)
				strset_add(&known, tl[k][i], 0, NULL);
			size_t idx = 0;
			for (yaml_node_item_t *it = ln && ln->type == YAML_SEQUENCE_NODE
			                                ? ln->data.sequence.items.start
			                                : NULL;
			     it && it < ln->data.sequence.items.top; it++, idx++)
				if (scalar(node(L, *it)))
					strset_add(&where, scalar(node(L, *it)), idx, NULL);
			L->oom |= known.oom || where.oom;
			for (size_t i = 0; i < counts[k]; i++) {
				if (strset_has(&known, lists[k][i]))
					continue;
				size_t at = 0;
				strset_add(&where, lists[k][i], 0, &at);
				yaml_node_t *item =
				    ln && ln->type == YAML_SEQUENCE_NODE &&
				            at < (size_t)(ln->data.sequence.items.top -
				                          ln->data.sequence.items.start)
				        ? node(L, ln->data.sequence.items.start[at])
				        : NULL;
				ERR(L, item ? item : rn, ipath(L, kpath(L, "slo.red", keys[k]), at),
				    "server \"%s\" is not in traffic.haproxy.%s", lists[k][i],
				    keys[k]);
			}
			strset_free(&known);
			strset_free(&where);
		}
	}
	if (r && r->source == MG_RED_HAPROXY && t && t->haproxy) {
		/* default each selector to the servers traffic moves between */
		mg_plan_red *rw = (mg_plan_red *)r;
		if (!rw->nvm_servers) {
			rw->vm_servers = t->haproxy->vm_servers;
			rw->nvm_servers = t->haproxy->nvm_servers;
		}
		if (!rw->nk8s_servers) {
			rw->k8s_servers = t->haproxy->k8s_servers;
			rw->nk8s_servers = t->haproxy->nk8s_servers;
		}
	}
	/* only when nothing was given at all: a refused entry has been reported already */
	bool from_traffic = t && t->haproxy;
	if (r && r->source == MG_RED_HAPROXY && !r->nk8s_servers && !from_traffic &&
	    !get(L, rn, "k8s_servers"))
		ERR(L, rn, "slo.red",
		    "needs k8s_servers (or a traffic.haproxy section to take them from)");
	if (r && r->source == MG_RED_HAPROXY && !r->nvm_servers && r->max_error_rate_vs_vms >= 0 &&
	    !from_traffic && !get(L, rn, "vm_servers"))
		ERR(L, rn, "slo.red",
		    "max_error_rate_vs_vms compares with the VM servers: needs vm_servers (or a "
		    "traffic.haproxy section to take them from)");
	if (r && r->source == MG_RED_INGRESS_NGINX && r->max_error_rate_vs_vms >= 0)
		ERR(L, get(L, rn, "max_error_rate_vs_vms"), "slo.red.max_error_rate_vs_vms",
		    "needs metrics from both pools; ingress-nginx only sees the cluster, so use "
		    "source: haproxy or drop this key");
	if (r && r->source == MG_RED_INGRESS_NGINX && !r->namespace_ && !p->kubernetes)
		ERR(L, rn, "slo.red",
		    "ingress-nginx needs \"namespace\" (or a kubernetes section to take it from)");
	if (r && r->source == MG_RED_INGRESS_NGINX && !r->namespace_ && p->kubernetes)
		((mg_plan_red *)r)->namespace_ = p->kubernetes->namespace_;
	yaml_node_t *bn = get(L, root, "build");
	if (p->build && p->vms && !p->build->artifact)
		ERR(L, bn, "build", "vms need \"artifact\": the file deployed to each host");
	if (p->build && p->kubernetes && !p->build->image)
		ERR(L, bn, "build", "kubernetes needs \"image\": the container image the pods run");
}

static void load_root(loader *L, yaml_node_t *root)
{
	static const char *const keys[] = {"version",    "name",    "description", "build", "vms",
	                                   "kubernetes", "traffic", "slo",         "state", NULL};
	static const char *const skeys[] = {"dir", NULL};
	mg_plan *p = L->plan;
	if (!expect(L, root, YAML_MAPPING_NODE, NULL))
		return;
	check_keys(L, root, NULL, keys);
	yaml_node_t *ver = get(L, root, "version");
	if (!ver)
		ERR(L, root, NULL, "missing required key \"version\"; write `version: 1`");
	else if (!scalar(ver) || strcmp(scalar(ver), "1"))
		ERR(L, ver, "version",
		    "this migrate reads plan version 1; \"%s\" is from a different release",
		    scalar(ver) ? scalar(ver) : node_kind(ver));
	p->name = get_str(L, root, NULL, "name", true, NULL);
	if (p->name && !valid_dns_label(p->name, 63))
		ERR(L, get(L, root, "name"), "name",
		    "\"%s\" must be 1 to 63 lower case letters, digits or '-', starting and ending "
		    "with a letter or digit (it names the state directory)",
		    p->name);
	p->description = get_str(L, root, NULL, "description", false, NULL);

	yaml_node_t *n;
	if ((n = get(L, root, "build")))
		load_build(L, n);
	if ((n = get(L, root, "vms")))
		load_vms(L, n);
	if ((n = get(L, root, "kubernetes")))
		load_kubernetes(L, n);
	if ((n = get(L, root, "traffic")))
		load_traffic(L, n);
	if ((n = get(L, root, "slo")))
		load_slo(L, n);
	p->state_dir = resolve_path(L, ".migrate");
	if ((n = get(L, root, "state")) && expect(L, n, YAML_MAPPING_NODE, "state")) {
		check_keys(L, n, "state", skeys);
		const char *d = get_path(L, n, "state", "dir", false, NULL);
		if (d)
			p->state_dir = d;
	}
	check_cross(L, root);
}

static void yaml_problem(loader *L, yaml_parser_t *parser)
{
	const yaml_mark_t *m = parser->problem ? &parser->problem_mark : &parser->context_mark;
	char msg[512];
	if (parser->context)
		snprintf(msg, sizeof(msg), "%s %s", parser->problem ? parser->problem : "error",
		         parser->context);
	else
		snprintf(msg, sizeof(msg), "%s", parser->problem ? parser->problem : "YAML error");
	mg_error_diag(L->err, MG_SEV_ERROR, L->file, (int)m->line + 1, (int)m->column + 1, NULL,
	              "invalid YAML: %s", msg);
	L->errors++;
}

/* Orders diagnostics as an editor shows them: the plan file first, then by position. */
static int diag_cmp(const mg_diag *x, const mg_diag *y, const char *plan_file)
{
	const char *fx = x->file ? x->file : "", *fy = y->file ? y->file : "";
	int rx = strcmp(fx, plan_file) != 0, ry = strcmp(fy, plan_file) != 0;
	if (rx != ry)
		return rx - ry;
	int f = strcmp(fx, fy);
	if (f)
		return f;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->col < y->col ? -1 : x->col > y->col;
}

/* Stable merge sort: a hostile plan can hold many thousands of diagnostics. */
static void sort_diags(mg_error *err, size_t from, const char *plan_file)
{
	if (!err || err->ndiags < from + 2)
		return; /* also keeps NULL + 0 (no diagnostics yet) out of pointer arithmetic */
	mg_diag *d = err->diags + from;
	size_t n = err->ndiags - from;
	mg_diag *tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return; /* unsorted is still every diagnostic */
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n - w; lo += 2 * w) {
			size_t mid = lo + w, hi = mid + w < n ? mid + w : n;
			size_t i = lo, j = mid, k = 0;
			while (i < mid && j < hi)
				tmp[k++] = diag_cmp(&d[j], &d[i], plan_file) < 0 ? d[j++] : d[i++];
			while (i < mid)
				tmp[k++] = d[i++];
			while (j < hi)
				tmp[k++] = d[j++];
			memcpy(d + lo, tmp, k * sizeof(*tmp));
		}
	}
	free(tmp);
}

/* The nodes a walk of the document visits, aliases followed; false on a cycle. */
static bool expanded_size(yaml_document_t *doc, int id, size_t *memo, unsigned char *state,
                          size_t limit, size_t *out)
{
	yaml_node_t *n = yaml_document_get_node(doc, id);
	size_t i = (size_t)(id - 1);
	if (!n)
		return *out = 0, true;
	if (state[i] == 2)
		return *out = memo[i], true;
	if (state[i] == 1)
		return false; /* an alias inside the node it names */
	state[i] = 1;
	size_t total = 1, sub;
	if (n->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top && total <= limit; it++) {
			if (!expanded_size(doc, *it, memo, state, limit, &sub))
				return false;
			total += sub;
		}
	} else if (n->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top && total <= limit; p++) {
			if (!expanded_size(doc, p->key, memo, state, limit, &sub))
				return false;
			total += sub;
			if (!expanded_size(doc, p->value, memo, state, limit, &sub))
				return false;
			total += sub;
		}
	}
	if (total > limit)
		total = limit + 1; /* saturate: sums of saturated sizes stay small */
	state[i] = 2;
	memo[i] = total;
	return *out = total, true;
}

/*
 * Billion laughs: a few aliases of aliases make a walk visit billions of nodes. Each node
 * is reached through aliases at most MG_PLAN_MAX_ALIAS_NODES times over in all.
 */
static bool check_aliases(loader *L, yaml_document_t *doc)
{
	size_t nodes = (size_t)(doc->nodes.top - doc->nodes.start);
	if (!nodes)
		return true;
	size_t *memo = calloc(nodes, sizeof(*memo));
	unsigned char *state = calloc(nodes, 1);
	if (!memo || !state) {
		free(memo);
		free(state);
		L->oom = true;
		return false;
	}
	size_t limit = nodes + MG_PLAN_MAX_ALIAS_NODES, total = 0;
	bool ok = expanded_size(doc, 1, memo, state, limit, &total);
	free(memo);
	free(state);
	if (!ok) {
		mg_error_diag(L->err, MG_SEV_ERROR, L->file, 0, 0, NULL,
		              "an alias (*name) refers to a node that contains it");
		L->errors++;
		return false;
	}
	if (total > limit) {
		mg_error_diag(L->err, MG_SEV_ERROR, L->file, 0, 0, NULL,
		              "aliases (*name) repeat more than %d nodes (a limit; see \"Limits\" "
		              "in docs/plan.md)",
		              MG_PLAN_MAX_ALIAS_NODES);
		L->errors++;
		return false;
	}
	return true;
}

static char *absolute_dir(const char *dir)
{
	char *real = realpath(dir && *dir ? dir : ".", NULL);
	return real ? real : strdup(dir && *dir ? dir : ".");
}

int mg_plan_load_buffer(mg_plan **out, const char *buf, size_t len, const char *display_path,
                        const char *base_dir, unsigned flags, mg_error *err)
{
	*out = NULL;
	mg_plan *p = calloc(1, sizeof(*p));
	if (!p)
		return mg_error_oom(err);
	char *dir = absolute_dir(base_dir);
	p->file = arena_strdup(p, display_path ? display_path : "<plan>");
	p->dir = arena_strdup(p, dir ? dir : ".");
	free(dir);
	loader L = {.plan = p, .file = p->file, .flags = flags, .err = err};
	size_t first_diag = err ? err->ndiags : 0;

	/* before libyaml: its time grows with the square of the nesting */
	static const mg_yaml_limits limits = {MG_PLAN_MAX_DEPTH, MG_PLAN_MAX_LINE,
	                                      MG_PLAN_MAX_ANCHORS, MG_PLAN_MAX_ANCHORS};
	if (len > MG_PLAN_MAX_BYTES || memchr(buf, '\0', len) ||
	    mg_yaml_limits_check(buf, len, L.file, &limits, err)) {
		int rc;
		if (len > MG_PLAN_MAX_BYTES)
			rc = mg_error_set(err, MG_EINVALID,
			                  "%s: the plan is larger than the limit of %d MiB (see "
			                  "\"Limits\" in docs/plan.md)",
			                  L.file, MG_PLAN_MAX_BYTES >> 20);
		else if (memchr(buf, '\0', len))
			rc = mg_error_set(err, MG_EINVALID, "%s: not a text file", L.file);
		else
			rc = err ? err->code : MG_EINVALID;
		mg_plan_free(p);
		return rc;
	}

	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser)) {
		mg_plan_free(p);
		return mg_error_oom(err);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_problem(&L, &parser);
	} else {
		L.doc = &doc;
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (!root) {
			mg_error_diag(err, MG_SEV_ERROR, L.file, 1, 1, NULL,
			              "the plan is empty; see docs/plan.md for an example");
			L.errors++;
		} else if (check_aliases(&L, &doc)) {
			load_root(&L, root);
			yaml_document_t extra;
			if (!yaml_parser_load(&parser, &extra)) {
				yaml_problem(&L, &parser);
			} else {
				yaml_node_t *x = yaml_document_get_root_node(&extra);
				if (x && !is_null(x)) { /* a trailing empty "---" is harmless */
					L.doc = &extra;
					ERR(&L, x, NULL,
					    "a plan file holds one YAML document; found another "
					    "after \"---\"");
				}
				yaml_document_delete(&extra);
			}
		}
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	strset_free(&L.host_names);

	sort_diags(err, first_diag, L.file);
	if (L.errors || L.oom) {
		int rc = L.oom ? mg_error_oom(err)
		               : mg_error_set(err, MG_EINVALID, "%s: %zu error%s in the plan",
		                              L.file, L.errors, L.errors == 1 ? "" : "s");
		mg_plan_free(p); /* last: L.file lives in the plan's arena */
		return rc;
	}
	*out = p;
	return 0;
}

int mg_plan_load(mg_plan **out, const char *path, unsigned flags, mg_error *err)
{
	*out = NULL;
	char *buf;
	size_t len;
	int rc = mg_fs_read_file(&buf, &len, path, MG_PLAN_MAX_BYTES, "the plan", err);
	/* the plan is input: a file that cannot be read is the operator's to fix (exit 2) */
	if (rc == MG_ENOTFOUND)
		return mg_error_set(err, MG_EINVALID,
		                    "%s: no such plan file (give one with -p FILE, or create "
		                    "migrate.yaml; see docs/plan.md)",
		                    path);
	if (rc == MG_ENOMEM)
		return rc;
	if (rc) {
		char why[sizeof(
		    err->message)]; /* err->message cannot be both format input and output */
		snprintf(why, sizeof(why), "%s", err ? err->message : "cannot read the plan");
		return mg_error_set(err, MG_EINVALID, "%s", why);
	}
	if (memchr(buf, '\0', len)) {
		free(buf);
		mg_error_diag(err, MG_SEV_ERROR, path, 0, 0, NULL, "not a text file");
		return mg_error_set(err, MG_EINVALID, "%s: not a text file", path);
	}
	char *copy = strdup(path);
	if (!copy) {
		free(buf);
		return mg_error_oom(err);
	}
	char *slash = strrchr(copy, '/');
	const char *dir = ".";
	if (slash == copy)
		dir = "/";
	else if (slash) {
		*slash = '\0';
		dir = copy;
	}
	rc = mg_plan_load_buffer(out, buf, len, path, dir, flags, err);
	free(copy);
	free(buf);
	return rc;
}

int mg_plan_require(const mg_plan *plan, unsigned needs, const char *command, mg_error *err)
{
	struct {
		unsigned flag;
		bool present;
		const char *what;
	} rules[] = {
	    {MG_NEED_BUILD, plan->build != NULL, "a `build` section"},
	    {MG_NEED_VMS, plan->vms != NULL, "a `vms` section"},
	    {MG_NEED_KUBERNETES, plan->kubernetes != NULL, "a `kubernetes` section"},
	    {MG_NEED_TRAFFIC, plan->traffic != NULL, "a `traffic` section"},
	    {MG_NEED_SLO, plan->slo != NULL, "an `slo` section"},
	    {MG_NEED_VMS_OR_KUBERNETES, plan->vms || plan->kubernetes,
	     "a `vms` or `kubernetes` section"},
	};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if ((needs & rules[i].flag) && !rules[i].present)
			return mg_error_set(
			    err, MG_EINVALID,
			    "%s: `migrate %s` needs %s in the plan (see docs/plan.md)", plan->file,
			    command, rules[i].what);
	return 0;
}

const char *mg_plan_file(const mg_plan *plan)
{
	return plan->file;
}
const char *mg_plan_dir(const mg_plan *plan)
{
	return plan->dir;
}
const char *mg_plan_name(const mg_plan *plan)
{
	return plan->name;
}
const char *mg_plan_description(const mg_plan *plan)
{
	return plan->description;
}
const char *mg_plan_state_dir(const mg_plan *plan)
{
	return plan->state_dir;
}
const mg_plan_build *mg_plan_build_section(const mg_plan *plan)
{
	return plan->build;
}
const mg_plan_vms *mg_plan_vms_section(const mg_plan *plan)
{
	return plan->vms;
}
const mg_plan_kubernetes *mg_plan_kubernetes_section(const mg_plan *plan)
{
	return plan->kubernetes;
}
const mg_plan_traffic *mg_plan_traffic_section(const mg_plan *plan)
{
	return plan->traffic;
}
const mg_plan_slo *mg_plan_slo_section(const mg_plan *plan)
{
	return plan->slo;
}

const char *mg_provider_name(mg_provider p)
{
	static const char *const n[] = {"haproxy", "nginx", "cloudflare"};
	return (unsigned)p < 3 ? n[p] : "?";
}
const char *mg_red_source_name(mg_red_source s)
{
	return s == MG_RED_HAPROXY ? "haproxy" : "ingress-nginx";
}
const char *mg_on_failure_name(mg_on_failure f)
{
	return f == MG_ON_FAILURE_PAUSE ? "pause" : "rollback";
}

size_t mg_plan_vms_batch_size(const mg_plan_vms *vms)
{
	size_t n = vms->batch_count > 0 ? (size_t)vms->batch_count
	                                : (size_t)ceil(vms->nhosts * vms->batch_percent / 100.0);
	if (n < 1)
		n = 1;
	if (vms->nhosts && n > vms->nhosts)
		n = vms->nhosts;
	return n;
}
