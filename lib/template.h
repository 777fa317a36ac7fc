/*
 * Kubernetes manifest templates: YAML files whose scalar values may hold
 * ${...} references to the plan and the release (docs/kubernetes.md).
 *
 * Substitution is structural: each file is parsed with libyaml first, and
 * references are replaced inside scalar values of the parsed tree, never in
 * the text. Whatever a value contains ("\n  evil: true", "{a: b}") stays
 * inside the one string it was put in. Mapping keys are never substituted.
 *
 *   ${version}                  the release (always a string)
 *   ${image}                    build.image with ${version} expanded
 *   ${plan.name}, ${namespace}  the plan's name, kubernetes.namespace
 *   ${values.KEY}               kubernetes.values.KEY
 *   ${configmap.NAME.name}      the ConfigMap of kubernetes.configmaps NAME
 *   ${configmap.NAME.checksum}  its content checksum (lib/configmap.h)
 *   ${configmap.NAME.items}     its volume projection, a list: only as a
 *                               whole plain value
 *   $${                         a literal "${"
 *
 * A plain (unquoted) scalar that is exactly one reference takes the value's
 * type: a plan value written 3 is an integer, true a boolean, "3" or 500m a
 * string. A reference inside a longer scalar, or in a quoted or block
 * scalar, is interpolated as text. Plain scalars without references are
 * typed by the YAML 1.2 core schema (null, bool, int, float, else string);
 * where Kubernetes' YAML 1.1 reader would see something else (yes/no/on/off,
 * 0644) a warning says so.
 *
 * Errors name the template as file:line:col and the reference. Anchors and
 * aliases are resolved (a copy per alias, bounded); merge keys (<<) and tags
 * other than the YAML core ones are refused.
 */
#ifndef MG_TEMPLATE_H
#define MG_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "plan.h"

/* A ConfigMap the templates may refer to. */
typedef struct {
	const char *name;     /* kubernetes.configmaps[].name: the NAME in references */
	const char *cm_name;  /* metadata.name of the ConfigMap (with a hash suffix, if used) */
	const char *checksum; /* 64 hex */
	json_t *items;        /* [{"key", "path"}] (borrowed), or NULL */
} mg_template_configmap;

/* What references expand to. NULL strings: the reference is an error naming what is missing. */
typedef struct {
	const char *version;
	const char *image; /* ${version} already expanded */
	const char *plan_name;
	const char *namespace_;
	const mg_plan_value *values;
	size_t nvalues;
	const mg_template_configmap *configmaps;
	size_t nconfigmaps;
} mg_template_vars;

/* One rendered Kubernetes object. */
typedef struct {
	json_t *object;
	char *file; /* the template, as named in diagnostics */
	int line;   /* where the document's top mapping starts, 1-based */
} mg_template_doc;

typedef struct {
	mg_template_doc *docs;
	size_t ndocs;
} mg_template_output;

#define MG_TEMPLATE_OUTPUT_INIT                                                                    \
	{                                                                                          \
		NULL, 0                                                                            \
	}

/*
 * Renders one template held in memory and appends its non-empty documents
 * to out. On MG_EINVALID every problem found is in err->diags (file:line:col);
 * warnings may be there on success too. Each document must be a mapping with
 * string apiVersion, kind and metadata.name.
 */
int mg_template_render_buffer(mg_template_output *out, const char *buf, size_t len,
                              const char *display_path, const mg_template_vars *vars,
                              mg_error *err);
int mg_template_render_file(mg_template_output *out, const char *path, const mg_template_vars *vars,
                            mg_error *err);
/*
 * Every template file of dir (mg_template_list_dir); all files are read so that every error is
 * reported. MG_EINVALID also when there is no template at all.
 */
int mg_template_render_dir(mg_template_output *out, const char *dir, const mg_template_vars *vars,
                           mg_error *err);
void mg_template_output_clear(mg_template_output *out);

/*
 * The template files of dir: the *.yaml and *.yml files directly in it, not
 * dotfiles, in byte order of their names; what mg_template_render_dir renders
 * and `migrate plan` lists. *names (free with mg_template_list_free) may be
 * empty. MG_EINVALID when dir does not exist, MG_EIO when it cannot be read.
 */
int mg_template_list_dir(char ***names, size_t *n, const char *dir, mg_error *err);
void mg_template_list_free(char **names, size_t n);

/*
 * s with every ${version} replaced (a new string; NULL when out of memory):
 * the one expander of build.image and build.artifact.
 */
char *mg_template_expand_version(const char *s, const char *version);

/*
 * The objects as YAML: "---" between documents, each after a
 * "# Source: FILE:LINE" comment. Strings that a YAML reader would take for
 * another type ("3", "true", "yes", "0644", "") are quoted. NULL when out of
 * memory.
 */
char *mg_template_render_yaml(const mg_template_output *out);
/* The objects as {"apiVersion": "v1", "kind": "List", "items": [...]} (new reference). */
json_t *mg_template_render_json(const mg_template_output *out);

/* Variables for a plan: what `migrate render` uses. */
typedef struct mg_template_plan_vars mg_template_plan_vars;

/*
 * Builds the variables of the plan's kubernetes section for release version:
 * build.image expanded, and each kubernetes.configmaps entry read from its
 * nginx tree and rendered as `migrate configmap` renders it (same name,
 * checksum and items; lint findings are that command's business and are
 * not reported here). MG_EINVALID for a bad version, a missing section or
 * an nginx tree that does not parse.
 */
int mg_template_plan_vars_new(mg_template_plan_vars **out, const mg_plan *plan, const char *version,
                              mg_error *err);
const mg_template_vars *mg_template_plan_vars_get(const mg_template_plan_vars *pv);
void mg_template_plan_vars_free(mg_template_plan_vars *pv);

#endif
