/*
 * Private to lib/plan/: the plan's arena and the loader's state, the typed
 * YAML layer (yaml.c: node access, typed getters that record their own
 * diagnostics, value checks), the schema of each section (build.c, vms.c,
 * kubernetes.c, traffic.c, slo.c), the rules that span sections (rules.c),
 * and loading (plan.c). Not part of the library's API.
 */
#ifndef MG_PLAN_INTERNAL_H
#define MG_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "error.h"
#include "plan.h"

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
	mg_plan_state state;
};

/* A set of strings (owned elsewhere): duplicate checks stay linear on long lists. */
typedef struct {
	const char *s;
	size_t tag; /* what the caller wants back on a duplicate */
} strset_slot;

typedef struct {
	strset_slot *slot;
	size_t cap, n;
	bool oom;
} strset;

/* One load: the plan being filled, the document walked, the diagnostics so far. */
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

void mg_pl_strset_clear(strset *set);
/* Adds s; false when s was already there (*prev: its tag) or memory ran out (set->oom). */
bool mg_pl_strset_add(strset *set, const char *s, size_t tag, size_t *prev);
bool mg_pl_strset_has(const strset *set, const char *s);

/* The plan owns every string and array it hands out: zeroed, freed with the plan. */
void *mg_pl_arena_alloc(mg_plan *p, size_t n);
const char *mg_pl_arena_strdup(mg_plan *p, const char *s);

/* ---- diagnostics: counted in L->errors; a bounded number kept ---- */

void mg_pl_diag_at(loader *L, mg_severity sev, const yaml_node_t *n, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define ERR(L, n, path, ...)  mg_pl_diag_at(L, MG_SEV_ERROR, n, path, __VA_ARGS__)
#define WARN(L, n, path, ...) mg_pl_diag_at(L, MG_SEV_WARNING, n, path, __VA_ARGS__)
/* "parent.key" and "parent[i]", the paths diagnostics name (in the arena). */
const char *mg_pl_kpath(loader *L, const char *parent, const char *key);
const char *mg_pl_ipath(loader *L, const char *parent, size_t i);

/* ---- node access ---- */

yaml_node_t *mg_pl_node(loader *L, int id);
/* "a single value", "a list", "a mapping" */
const char *mg_pl_node_kind(const yaml_node_t *n);
/* The scalar's text, or NULL for a list or a mapping. */
const char *mg_pl_scalar(const yaml_node_t *n);
bool mg_pl_is_null(const yaml_node_t *n);
bool mg_pl_is_plain(const yaml_node_t *n);
/* true when n is of type; else an error naming what was found. */
bool mg_pl_expect(loader *L, yaml_node_t *n, yaml_node_type_t type, const char *path);
/* Looks up key in a mapping; NULL when absent or null-valued. */
yaml_node_t *mg_pl_get(loader *L, yaml_node_t *map, const char *key);
/* Names that mean a secret written into the plan; they must come from *_env or *_file. */
bool mg_pl_secret_key(const char *k);
/*
 * Checks a mapping's keys: unknown keys (with a suggestion), duplicates, and
 * inline secrets. `allowed` is NULL-terminated.
 */
void mg_pl_check_keys(loader *L, yaml_node_t *map, const char *path, const char *const *allowed);

/* ---- typed getters: each records its own error and returns the default on bad or missing input
 * ---- */

yaml_node_t *mg_pl_get_required(loader *L, yaml_node_t *map, const char *path, const char *key);
const char *mg_pl_get_str(loader *L, yaml_node_t *map, const char *path, const char *key,
                          bool required, const char *def);
bool mg_pl_get_bool(loader *L, yaml_node_t *map, const char *path, const char *key, bool def);
long mg_pl_get_int(loader *L, yaml_node_t *map, const char *path, const char *key, long def,
                   long lo, long hi);
/* false when absent or bad; *out set only on success */
bool mg_pl_get_number(loader *L, yaml_node_t *map, const char *path, const char *key, double *out);
int64_t mg_pl_get_duration(loader *L, yaml_node_t *map, const char *path, const char *key,
                           int64_t def, int64_t min_ms);
/* "1%" or "0.01" as a ratio 0..1; -1 when absent or bad. */
double mg_pl_get_rate(loader *L, yaml_node_t *map, const char *path, const char *key);
const char *mg_pl_get_env_name(loader *L, yaml_node_t *map, const char *path, const char *key);
/* Expands ~ and makes relative paths relative to the plan file's directory. */
const char *mg_pl_resolve_path(loader *L, const char *s);
/* A path, resolved by mg_pl_resolve_path. */
const char *mg_pl_get_path(loader *L, yaml_node_t *map, const char *path, const char *key,
                           bool required, const char *def);
/* The literal a kubeconfig key takes for the pod's ServiceAccount (kube.h's MG_KUBE_IN_CLUSTER). */
#define MG_PL_IN_CLUSTER "in-cluster"
/* A kubeconfig key: MG_PL_IN_CLUSTER as it is, else a path resolved as mg_pl_get_path does. */
const char *mg_pl_get_kubeconfig(loader *L, yaml_node_t *map, const char *path);
/* Unless MG_PLAN_LOAD_NO_FS: abs exists (and is a directory when want_dir), else a diagnostic. */
bool mg_pl_check_file_exists(loader *L, yaml_node_t *map, const char *path, const char *key,
                             const char *abs, bool want_dir, mg_severity sev);
/* `${name}` references: each must be one of `allowed` (NULL-terminated). */
bool mg_pl_check_refs(loader *L, yaml_node_t *v, const char *path, const char *s,
                      const char *const *allowed);
/* A list of distinct names, each passing valid(); *n entries. */
const char **mg_pl_load_name_list(loader *L, yaml_node_t *map, const char *path, const char *key,
                                  size_t *n, bool required, bool (*valid)(const char *),
                                  const char *what);
void mg_pl_check_url(loader *L, yaml_node_t *m, const char *path, const char *key, const char *url);
/* Exactly one of token_env / token_file, or neither when optional. */
void mg_pl_load_secret_ref(loader *L, yaml_node_t *m, const char *path, const char **env,
                           const char **file, bool required);

/* ---- values ---- */

bool mg_pl_parse_long(const char *s, long *out);
/* Decimal only: no hex, inf or nan. */
bool mg_pl_parse_double(const char *s, double *out);
bool mg_pl_valid_env_name(const char *s);
bool mg_pl_valid_dns_label(const char *s, size_t max);
/* RFC 1123 host name, or an IPv4/IPv6 literal. */
bool mg_pl_valid_host(const char *s);
bool mg_pl_valid_server_name(const char *s);
bool mg_pl_valid_hex_id(const char *s);
/* host, host:port, [v6] or [v6]:port; *port left as is when absent. */
bool mg_pl_parse_host_port(const char *s, char *host, size_t hsize, int *port);

/* ---- the sections (build.c, vms.c, kubernetes.c, traffic.c, slo.c) and rules.c ---- */

void mg_pl_load_build(loader *L, yaml_node_t *m);
void mg_pl_load_vms(loader *L, yaml_node_t *m);
void mg_pl_load_kubernetes(loader *L, yaml_node_t *m);
void mg_pl_load_traffic(loader *L, yaml_node_t *m);
void mg_pl_load_slo(loader *L, yaml_node_t *m);
/* The state section (or its defaults when root has none); after the kubernetes section. */
void mg_pl_load_state(loader *L, yaml_node_t *root);
/* The rules that span sections; fills what one section defaults from another. */
void mg_pl_check_cross(loader *L, yaml_node_t *root);

#endif
