/*
 * Manifest templates, the other half of template.c: the template files of a
 * directory, the rendered objects as YAML and JSON, and the variables of a
 * plan (build.image expanded, each ConfigMap built once for both `render`
 * and the cluster side).
 */
#include "template.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "configmap.h"
#include "internal.h"
#include "nginxconf.h"

/* --- the template files of a directory -------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Dotfiles are left out: editors and tools leave .x.yaml.swp-like files, never templates. */
static bool is_template(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && ((n > 5 && !strcmp(name + n - 5, ".yaml")) ||
	                          (n > 4 && !strcmp(name + n - 4, ".yml")));
}

int mg_template_list_dir(char ***names_out, size_t *n_out, const char *dir, mg_error *err)
{
	*names_out = NULL;
	*n_out = 0;
	DIR *d = opendir(dir);
	if (!d)
		return mg_error_set(err, errno == ENOENT ? MG_EINVALID : MG_EIO,
		                    "templates directory %s: %s", dir, strerror(errno));
	char **names = NULL;
	size_t n = 0;
	int rc = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (!is_template(e->d_name))
			continue;
		char **t = realloc(names, (n + 1) * sizeof(*t));
		if (!t || !(t[n] = strdup(e->d_name))) {
			names = t ? t : names;
			rc = mg_error_oom(err);
			break;
		}
		names = t;
		n++;
	}
	closedir(d);
	if (rc) {
		mg_template_list_free(names, n);
		return rc;
	}
	if (names)
		qsort(names, n, sizeof(*names), cmp_str);
	*names_out = names;
	*n_out = n;
	return 0;
}

void mg_template_list_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* --- output -------------------------------------------------------------------------------- */

json_t *mg_template_render_json(const mg_template_output *out)
{
	json_t *items = json_array();
	for (size_t i = 0; i < out->ndocs; i++)
		json_array_append(items, out->docs[i].object);
	return json_pack("{s:s, s:s, s:o}", "apiVersion", "v1", "kind", "List", "items", items);
}

static bool emit(yaml_emitter_t *em, yaml_event_t *ev)
{
	return yaml_emitter_emit(em, ev) != 0;
}

static bool emit_scalar(yaml_emitter_t *em, const char *s, size_t len, bool string)
{
	yaml_event_t ev;
	yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
	if (string && !mg_kube_plain_safe(s))
		style = memchr(s, '\n', len) ? YAML_LITERAL_SCALAR_STYLE
		                             : YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	else if (string)
		style = YAML_ANY_SCALAR_STYLE;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style);
	return emit(em, &ev);
}

static bool emit_json(yaml_emitter_t *em, json_t *v)
{
	yaml_event_t ev;
	char num[64];
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (!emit(em, &ev))
			return false;
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			if (!emit_scalar(em, k, strlen(k), true) || !emit_json(em, x))
				return false;
		}
		yaml_mapping_end_event_initialize(&ev);
		return emit(em, &ev);
	}
	case JSON_ARRAY:
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (!emit(em, &ev))
			return false;
		for (size_t i = 0; i < json_array_size(v); i++)
			if (!emit_json(em, json_array_get(v, i)))
				return false;
		yaml_sequence_end_event_initialize(&ev);
		return emit(em, &ev);
	case JSON_STRING:
		return emit_scalar(em, json_string_value(v), json_string_length(v), true);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(em, num, strlen(num), false);
	case JSON_REAL: {
		double d = json_real_value(v);
		snprintf(num, sizeof(num), "%.15g", d);
		if (strtod(num, NULL) != d)
			snprintf(num, sizeof(num), "%.17g", d);
		if (!strpbrk(num, ".eEn")) /* stays a float when read back */
			strcat(num, ".0");
		return emit_scalar(em, num, strlen(num), false);
	}
	case JSON_TRUE:
		return emit_scalar(em, "true", 4, false);
	case JSON_FALSE:
		return emit_scalar(em, "false", 5, false);
	default:
		return emit_scalar(em, "null", 4, false);
	}
}

static int write_sb(void *data, unsigned char *buffer, size_t size)
{
	mg_kube_sbuf *b = data;
	mg_kube_sb_add(b, (const char *)buffer, size);
	return !b->oom;
}

char *mg_template_render_yaml(const mg_template_output *out)
{
	mg_kube_sbuf b = {0};
	mg_kube_sb_add(&b, "", 0);
	for (size_t i = 0; i < out->ndocs && !b.oom; i++) {
		if (i)
			mg_kube_sb_add(&b, "---\n", 4);
		char src[4200];
		int n = snprintf(src, sizeof(src), "# Source: %s:%d\n", out->docs[i].file,
		                 out->docs[i].line);
		mg_kube_sb_add(&b, src, n > 0 && (size_t)n < sizeof(src) ? (size_t)n : 0);
		yaml_emitter_t em;
		if (!yaml_emitter_initialize(&em)) {
			b.oom = true;
			break;
		}
		yaml_emitter_set_output(&em, write_sb, &b);
		yaml_emitter_set_unicode(&em, 1);
		yaml_emitter_set_width(&em, -1);
		yaml_emitter_set_indent(&em, 2);
		yaml_event_t ev;
		bool ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
		          emit(&em, &ev) &&
		          yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
		          emit(&em, &ev) && emit_json(&em, out->docs[i].object) &&
		          yaml_document_end_event_initialize(&ev, 1) && emit(&em, &ev) &&
		          yaml_stream_end_event_initialize(&ev) && emit(&em, &ev) &&
		          yaml_emitter_flush(&em);
		yaml_emitter_delete(&em);
		if (!ok)
			b.oom = true;
	}
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* --- variables from a plan ----------------------------------------------------------------- */

struct mg_template_plan_vars {
	mg_template_vars vars;
	char *version;
	char *image;
	mg_template_configmap *cms;
	mg_nginxconf **confs;
	mg_cm **built;
	size_t n;
};

void mg_template_plan_vars_free(mg_template_plan_vars *pv)
{
	if (!pv)
		return;
	for (size_t i = 0; i < pv->n; i++) {
		json_decref(pv->cms[i].items);
		mg_cm_free(pv->built[i]);
		mg_nginxconf_free(pv->confs[i]);
	}
	free(pv->cms);
	free(pv->built);
	free(pv->confs);
	free(pv->version);
	free(pv->image);
	free(pv);
}

const mg_template_vars *mg_template_plan_vars_get(const mg_template_plan_vars *pv)
{
	return &pv->vars;
}

char *mg_template_expand_version(const char *s, const char *version)
{
	mg_kube_sbuf b = {0};
	mg_kube_sb_add(&b, "", 0);
	for (const char *p = s; *p;) {
		if (!strncmp(p, "${version}", 10)) {
			mg_kube_sb_add(&b, version, strlen(version));
			p += 10;
		} else {
			mg_kube_sb_add(&b, p++, 1);
		}
	}
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

static int plan_vars_new(mg_template_plan_vars **out, const mg_plan *plan, const char *version,
                         bool cluster, mg_error *err)
{
	*out = NULL;
	char why[256];
	if (!version || mg_plan_check_version(version, why, sizeof(why)))
		return mg_error_set(err, MG_EINVALID, "version \"%s\": %s", version ? version : "",
		                    version ? why : "missing");
	const mg_plan_kubernetes *k = mg_plan_kubernetes_section(plan);
	if (!k)
		return mg_error_set(err, MG_EINVALID, "the plan has no kubernetes section");
	const mg_plan_build *b = mg_plan_build_section(plan);
	mg_template_plan_vars *pv = calloc(1, sizeof(*pv));
	size_t n = k->nconfigmaps;
	if (!pv || !(pv->version = strdup(version)) ||
	    !(pv->cms = calloc(n ? n : 1, sizeof(*pv->cms))) ||
	    !(pv->confs = calloc(n ? n : 1, sizeof(*pv->confs))) ||
	    !(pv->built = calloc(n ? n : 1, sizeof(*pv->built))) ||
	    (b && b->image && !(pv->image = mg_template_expand_version(b->image, version)))) {
		mg_template_plan_vars_free(pv);
		return mg_error_oom(err);
	}
	pv->vars = (mg_template_vars){.version = pv->version,
	                              .image = pv->image,
	                              .plan_name = mg_plan_name(plan),
	                              .namespace_ = k->namespace_,
	                              .values = k->values,
	                              .nvalues = k->nvalues,
	                              .configmaps = pv->cms,
	                              .nconfigmaps = n};
	for (size_t i = 0; i < n; i++, pv->n++) {
		const mg_plan_configmap *c = &k->configmaps[i];
		mg_nginxconf_options po = {0};
		/* the cluster side reports the tree by its path alone: its findings are
		 * `migrate configmap`'s business */
		mg_error local = MG_ERROR_INIT, *e = cluster ? &local : err;
		int rc = mg_nginxconf_parse(&pv->confs[i], c->from_nginx, &po, e);
		mg_cm_options co = {.name = c->name, .namespace_ = k->namespace_};
		if (!rc)
			rc = mg_cm_build(&pv->built[i], pv->confs[i], &co, e);
		if (rc) {
			char msg[sizeof(err->message)];
			snprintf(msg, sizeof(msg), "%s", e->message);
			mg_error_clear(&local);
			if (cluster)
				mg_error_set(err, rc, "kubernetes.configmaps %s (%s): %s", c->name,
				             c->from_nginx,
				             rc == MG_ENOMEM ? "out of memory" : msg);
			else
				mg_error_set(err, rc,
				             "kubernetes.configmaps %s (for ${configmap.%s.*}): %s",
				             c->name, c->name, msg);
			pv->n++;
			mg_template_plan_vars_free(pv);
			return rc;
		}
		mg_error_clear(&local);
		mg_cm *cm = pv->built[i];
		pv->cms[i] = (mg_template_configmap){.name = c->name,
		                                     .cm_name = cm->name,
		                                     .checksum = cm->checksum,
		                                     .items = mg_cm_items_json(cm)};
	}
	*out = pv;
	return 0;
}

int mg_template_plan_vars_new(mg_template_plan_vars **out, const mg_plan *plan, const char *version,
                              mg_error *err)
{
	return plan_vars_new(out, plan, version, false, err);
}

int mg_kube_plan_vars_new(mg_template_plan_vars **out, const mg_plan *plan, const char *version,
                          mg_error *err)
{
	return plan_vars_new(out, plan, version, true, err);
}

const mg_cm *mg_kube_plan_vars_configmap(const mg_template_plan_vars *pv, size_t i)
{
	return i < pv->n ? pv->built[i] : NULL;
}
