/*
 * kubeconfig as kubectl reads it: one file named explicitly (the plan's
 * kubernetes.kubeconfig, like --kubeconfig) or $KUBECONFIG's files merged
 * (for each cluster, user and context name the first file that defines it
 * wins; current-context from the first file that sets one; missing files
 * skipped), else ~/.kube/config. Relative paths are relative to the file that
 * holds them. Every parsed file is kept while the context resolves, so an
 * error can point at the exact line in the exact file.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "base64.h"
#include "fs.h"
#include "internal.h"
#include "kube.h"
#include "secret.h"
#include "yamllimit.h"

typedef struct {
	char *path;
	char *dir;
	yaml_document_t doc;
	bool has_doc;
} kfile;

typedef struct {
	kfile *files;
	size_t n;
} kset;

static int input_error(mg_error *err, const kfile *f, const yaml_node_t *n, const char *path,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int input_error(mg_error *err, const kfile *f, const yaml_node_t *n, const char *path,
                       const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int line = n ? (int)n->start_mark.line + 1 : 0, col = n ? (int)n->start_mark.column + 1 : 0;
	mg_error_diag(err, MG_SEV_ERROR, f ? f->path : NULL, line, col, path, "%s", msg);
	if (f && n)
		return mg_error_set(err, MG_EINVALID, "%s:%d:%d: %s: %s", f->path, line, col, path,
		                    msg);
	if (f)
		return mg_error_set(err, MG_EINVALID, "%s: %s: %s", f->path, path, msg);
	return mg_error_set(err, MG_EINVALID, "%s: %s", path, msg);
}

static yaml_node_t *node(const kfile *f, yaml_node_item_t i)
{
	return yaml_document_get_node((yaml_document_t *)&f->doc, i);
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* An explicit null (`key:` or `key: null`) is the same as the key being absent. */
static bool is_null(const yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = scalar(n);
	return !*s || !strcmp(s, "null") || !strcmp(s, "~");
}

static yaml_node_t *map_get(const kfile *f, const yaml_node_t *map, const char *key,
                            yaml_node_t **key_node)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node(f, p->key);
		const char *ks = scalar(k);
		if (ks && !strcmp(ks, key)) {
			if (key_node)
				*key_node = k;
			yaml_node_t *v = node(f, p->value);
			return is_null(v) ? NULL : v;
		}
	}
	return NULL;
}

static yaml_node_t *root(const kfile *f)
{
	return f->has_doc ? yaml_document_get_root_node((yaml_document_t *)&f->doc) : NULL;
}

/* A string value: 0 with *out NULL when absent; not a scalar is an input error. */
static int get_str(const kfile *f, const yaml_node_t *map, const char *key, const char *path,
                   const char **out, yaml_node_t **at, mg_error *err)
{
	*out = NULL;
	yaml_node_t *v = map_get(f, map, key, NULL);
	if (at)
		*at = v;
	if (!v)
		return 0;
	if (v->type != YAML_SCALAR_NODE)
		return input_error(err, f, v, path, "must be a string");
	*out = scalar(v);
	return 0;
}

static int get_bool(const kfile *f, const yaml_node_t *map, const char *key, const char *path,
                    bool *out, mg_error *err)
{
	*out = false;
	yaml_node_t *v = map_get(f, map, key, NULL);
	if (!v)
		return 0;
	const char *s = scalar(v);
	if (s && !strcmp(s, "true"))
		*out = true;
	else if (!s || strcmp(s, "false") != 0)
		return input_error(err, f, v, path, "must be true or false");
	return 0;
}

static char *resolve(const kfile *f, const char *p)
{
	char *out;
	if (p[0] == '/')
		return strdup(p);
	if (p[0] == '~' && p[1] == '/' && getenv("HOME")) {
		if (asprintf(&out, "%s%s", getenv("HOME"), p + 1) < 0)
			return NULL;
		return out;
	}
	if (asprintf(&out, "%s/%s", f->dir, p) < 0)
		return NULL;
	return out;
}

static int load_file(kfile *f, const char *path, mg_error *err)
{
	memset(f, 0, sizeof(*f));
	if (!(f->path = strdup(path)))
		return mg_kube_oom(err);
	char *text = NULL;
	size_t len = 0;
	mg_error ferr = MG_ERROR_INIT;
	int frc = mg_fs_read_file(&text, &len, path, MG_INPUT_MAX_BYTES, "the kubeconfig", &ferr);
	if (frc) {
		if (frc == MG_ENOTFOUND)
			frc = mg_error_set(err, MG_ENOTFOUND, "cannot read kubeconfig %s: %s", path,
			                   strerror(ENOENT));
		else
			frc = mg_error_set(err, MG_EINVALID, "cannot read kubeconfig: %s",
			                   ferr.message);
		mg_error_clear(&ferr);
		return frc;
	}
	/* before libyaml, whose time grows with the square of the nesting; certificate data
	 * makes long lines, so only the file size bounds them */
	static const mg_yaml_limits limits = {.max_depth = 64,
	                                      .max_line = MG_INPUT_MAX_BYTES,
	                                      .max_anchors = 100,
	                                      .max_aliases = 100};
	if (mg_yaml_limits_check(text, len, path, &limits, err)) {
		free(text);
		return MG_EINVALID;
	}
	/* relative paths inside resolve against the file's real directory, so they stay
	 * right whatever directory migrate runs in */
	char *abs = realpath(path, NULL);
	const char *slash = abs ? strrchr(abs, '/') : NULL;
	f->dir = slash ? strndup(abs, slash == abs ? 1 : (size_t)(slash - abs)) : NULL;
	free(abs);
	if (!f->dir) {
		free(text);
		return mg_kube_oom(err);
	}
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	int rc = 0;
	if (!yaml_parser_load(&parser, &f->doc)) {
		int line = (int)parser.problem_mark.line + 1,
		    col = (int)parser.problem_mark.column + 1;
		mg_error_diag(err, MG_SEV_ERROR, path, line, col, NULL, "%s",
		              parser.problem ? parser.problem : "invalid YAML");
		rc = mg_error_set(err, MG_EINVALID, "%s:%d:%d: not valid YAML: %s%s%s", path, line,
		                  col, parser.problem ? parser.problem : "syntax error",
		                  parser.context ? " " : "", parser.context ? parser.context : "");
	} else {
		f->has_doc = true;
		yaml_node_t *r = root(f);
		if (r && !is_null(r) && r->type != YAML_MAPPING_NODE)
			rc = input_error(err, f, r, "(top level)",
			                 "a kubeconfig is a mapping (apiVersion, clusters, users, "
			                 "contexts, current-context)");
	}
	yaml_parser_delete(&parser);
	free(text); /* the document keeps copies of every scalar */
	return rc;
}

static void kset_free(kset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->files[i].path);
		free(s->files[i].dir);
		if (s->files[i].has_doc)
			yaml_document_delete(&s->files[i].doc);
	}
	free(s->files);
	s->files = NULL;
	s->n = 0;
}

static int kset_add(kset *s, const char *path, bool must_exist, mg_error *err)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->files[i].path, path))
			return 0;
	kfile *fs = realloc(s->files, (s->n + 1) * sizeof(*fs));
	if (!fs)
		return mg_kube_oom(err);
	s->files = fs;
	/* kubectl skips KUBECONFIG entries that do not exist */
	if (!must_exist && access(path, F_OK) != 0)
		return 0;
	int rc = load_file(&s->files[s->n], path, err);
	s->n++;
	if (rc == MG_ENOTFOUND)
		err->code = rc = MG_EINVALID;
	return rc;
}

/*
 * The kubeconfig files clientcmd would read. *none: there is none where one
 * may be (KUBECONFIG's files all missing, or no KUBECONFIG and no
 * ~/.kube/config), and looked says what was looked for: the caller may try
 * the in-cluster configuration then.
 */
static int load_set(kset *s, const mg_kube_config_options *o, bool *none, char *looked,
                    size_t lsize, mg_error *err)
{
	*none = false;
	if (o && o->kubeconfig && *o->kubeconfig)
		return kset_add(s, o->kubeconfig, true, err);
	const char *env = getenv("KUBECONFIG");
	if (env && *env) {
		char *copy = strdup(env), *save = NULL;
		if (!copy)
			return mg_kube_oom(err);
		int rc = 0;
		for (char *p = strtok_r(copy, ":", &save); p && !rc; p = strtok_r(NULL, ":", &save))
			rc = kset_add(s, p, false, err);
		free(copy);
		*none = !rc && !s->n;
		snprintf(looked, lsize, "none of the files in KUBECONFIG (%s) exists", env);
		return rc;
	}
	const char *home = getenv("HOME");
	char path[4096];
	snprintf(path, sizeof(path), "%s/.kube/config", home ? home : "");
	if (!home || !*home || access(path, F_OK) != 0) {
		*none = true;
		if (!home || !*home)
			snprintf(looked, lsize,
			         "KUBECONFIG is not set and HOME is not set, so ~/.kube/config "
			         "cannot be used");
		else
			snprintf(looked, lsize, "KUBECONFIG is not set and %.900s does not exist",
			         path);
		return 0;
	}
	return kset_add(s, path, true, err);
}

/* The first entry named name in section (clusters, users, contexts), in file order. */
static int find_named(const kset *s, const char *section, const char *name, const kfile **file,
                      yaml_node_t **entry, size_t *index, mg_error *err)
{
	*file = NULL;
	*entry = NULL;
	for (size_t i = 0; i < s->n; i++) {
		const kfile *f = &s->files[i];
		yaml_node_t *seq = map_get(f, root(f), section, NULL);
		if (!seq)
			continue;
		if (seq->type != YAML_SEQUENCE_NODE)
			return input_error(err, f, seq, section, "must be a list");
		size_t k = 0;
		for (yaml_node_item_t *it = seq->data.sequence.items.start;
		     it < seq->data.sequence.items.top; it++, k++) {
			yaml_node_t *e = node(f, *it);
			const char *nm = scalar(map_get(f, e, "name", NULL));
			if (nm && !strcmp(nm, name)) {
				*file = f;
				*entry = e;
				*index = k;
				return 0;
			}
		}
	}
	return 0;
}

/* "a, b, c" of the names in section across the files, for "did you mean" messages. */
static void names_of(const kset *s, const char *section, char *buf, size_t size)
{
	buf[0] = '\0';
	size_t len = 0;
	for (size_t i = 0; i < s->n; i++) {
		const kfile *f = &s->files[i];
		yaml_node_t *seq = map_get(f, root(f), section, NULL);
		if (!seq || seq->type != YAML_SEQUENCE_NODE)
			continue;
		for (yaml_node_item_t *it = seq->data.sequence.items.start;
		     it < seq->data.sequence.items.top; it++) {
			const char *nm = scalar(map_get(f, node(f, *it), "name", NULL));
			if (nm && len < size)
				len += (size_t)snprintf(buf + len, size - len, "%s%s",
				                        len ? ", " : "", nm);
		}
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

static int decode_data(const kfile *f, yaml_node_t *at, const char *value, const char *path,
                       char **out, mg_error *err)
{
	size_t n;
	int rc = mg_base64_decode(value, strlen(value), out, &n);
	if (rc == -2)
		return mg_kube_oom(err);
	/* the value is a secret: say what is wrong with it, never what it is */
	if (rc || n == 0)
		return input_error(err, f, at, path,
		                   "not valid base64 (the field holds the "
		                   "base64 of the PEM data)");
	if (strlen(*out) != n) {
		mg_kube_wipe_free(*out);
		*out = NULL;
		return input_error(err, f, at, path, "decodes to binary data; PEM text expected");
	}
	return 0;
}

static int dup_to(char **dst, const char *src, mg_error *err)
{
	if (!src)
		return 0;
	if (!(*dst = strdup(src)))
		return mg_kube_oom(err);
	return 0;
}

static int read_cluster(mg_kube_config *c, const kfile *f, yaml_node_t *entry, size_t idx,
                        mg_error *err)
{
	char base[128], path[192];
	snprintf(base, sizeof(base), "clusters[%zu].cluster", idx);
	yaml_node_t *cl = map_get(f, entry, "cluster", NULL);
	if (!cl || cl->type != YAML_MAPPING_NODE)
		return input_error(err, f, cl ? cl : entry, base,
		                   "cluster %s has no cluster: mapping (server, ...)", c->cluster);
	const char *server, *ca, *cad, *tsn;
	yaml_node_t *at_server, *at_ca, *at_cad, *at;
	int rc;
	snprintf(path, sizeof(path), "%s.server", base);
	if ((rc = get_str(f, cl, "server", path, &server, &at_server, err)))
		return rc;
	if (!server || !*server)
		return input_error(err, f, cl, path, "cluster %s has no server URL", c->cluster);
	if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
		return input_error(err, f, at_server, path,
		                   "%s is not an http(s) URL (https://host:port expected)", server);
	if ((rc = dup_to(&c->server, server, err)))
		return rc;
	size_t sl = strlen(c->server);
	while (sl > 0 && c->server[sl - 1] == '/')
		c->server[--sl] = '\0';
	snprintf(path, sizeof(path), "%s.certificate-authority", base);
	if ((rc = get_str(f, cl, "certificate-authority", path, &ca, &at_ca, err)))
		return rc;
	snprintf(path, sizeof(path), "%s.certificate-authority-data", base);
	if ((rc = get_str(f, cl, "certificate-authority-data", path, &cad, &at_cad, err)))
		return rc;
	if (ca && *ca && cad && *cad)
		return input_error(err, f, at_cad, path,
		                   "certificate-authority and certificate-authority-data are both "
		                   "set; keep one");
	if (cad && *cad && (rc = decode_data(f, at_cad, cad, path, &c->ca_pem, err)))
		return rc;
	if (ca && *ca && !(c->ca_file = resolve(f, ca)))
		return mg_kube_oom(err);
	snprintf(path, sizeof(path), "%s.tls-server-name", base);
	if ((rc = get_str(f, cl, "tls-server-name", path, &tsn, &at, err)) ||
	    (rc = dup_to(&c->tls_server_name, tsn && *tsn ? tsn : NULL, err)))
		return rc;
	snprintf(path, sizeof(path), "%s.insecure-skip-tls-verify", base);
	if ((rc = get_bool(f, cl, "insecure-skip-tls-verify", path, &c->insecure, err)))
		return rc;
	if (c->insecure && (c->ca_file || c->ca_pem))
		return input_error(err, f, map_get(f, cl, "insecure-skip-tls-verify", NULL), path,
		                   "insecure-skip-tls-verify cannot be combined with a "
		                   "certificate-authority: remove one");
	return 0;
}

static int read_exec(mg_kube_config *c, const kfile *f, yaml_node_t *ex, const char *base,
                     mg_error *err)
{
	char path[256];
	int rc;
	if (ex->type != YAML_MAPPING_NODE)
		return input_error(err, f, ex, base,
		                   "must be a mapping (apiVersion, command, ...)");
	mg_kube_exec_config *e = calloc(1, sizeof(*e));
	if (!e)
		return mg_kube_oom(err);
	c->exec = e;
	if (!(e->dir = strdup(f->dir)))
		return mg_kube_oom(err);
	const char *av, *cmd, *hint, *mode;
	yaml_node_t *at;
	snprintf(path, sizeof(path), "%s.provideClusterInfo", base);
	if ((rc = get_bool(f, ex, "provideClusterInfo", path, &e->provide_cluster_info, err)))
		return rc;
	snprintf(path, sizeof(path), "%s.apiVersion", base);
	if ((rc = get_str(f, ex, "apiVersion", path, &av, &at, err)))
		return rc;
	if (!av)
		return input_error(err, f, ex, path,
		                   "missing: set client.authentication.k8s.io/v1");
	if (strcmp(av, "client.authentication.k8s.io/v1") != 0 &&
	    strcmp(av, "client.authentication.k8s.io/v1beta1") != 0)
		return input_error(err, f, at, path,
		                   "%s is not supported: use client.authentication.k8s.io/v1 (or "
		                   "v1beta1)",
		                   av);
	if ((rc = dup_to(&e->api_version, av, err)))
		return rc;
	snprintf(path, sizeof(path), "%s.command", base);
	if ((rc = get_str(f, ex, "command", path, &cmd, &at, err)))
		return rc;
	if (!cmd || !*cmd)
		return input_error(err, f, ex, path, "missing: the plugin to run");
	if ((rc = dup_to(&e->command, cmd, err)))
		return rc;
	snprintf(path, sizeof(path), "%s.installHint", base);
	if ((rc = get_str(f, ex, "installHint", path, &hint, &at, err)) ||
	    (rc = dup_to(&e->install_hint, hint, err)))
		return rc;
	snprintf(path, sizeof(path), "%s.interactiveMode", base);
	if ((rc = get_str(f, ex, "interactiveMode", path, &mode, &at, err)))
		return rc;
	if (mode && !strcmp(mode, "Always"))
		return input_error(err, f, at, path,
		                   "Always: this plugin needs a terminal, and migrate runs "
		                   "without one (CI); use a plugin mode that does not prompt");
	yaml_node_t *args = map_get(f, ex, "args", NULL);
	if (args) {
		snprintf(path, sizeof(path), "%s.args", base);
		if (args->type != YAML_SEQUENCE_NODE)
			return input_error(err, f, args, path, "must be a list of strings");
		size_t n =
		    (size_t)(args->data.sequence.items.top - args->data.sequence.items.start);
		if (!(e->args = calloc(n + 1, sizeof(char *))))
			return mg_kube_oom(err);
		for (size_t i = 0; i < n; i++) {
			yaml_node_t *a = node(f, args->data.sequence.items.start[i]);
			snprintf(path, sizeof(path), "%s.args[%zu]", base, i);
			if (!scalar(a))
				return input_error(err, f, a, path, "must be a string");
			if (!(e->args[i] = strdup(scalar(a))))
				return mg_kube_oom(err);
			e->nargs++;
		}
	}
	yaml_node_t *env = map_get(f, ex, "env", NULL);
	if (env) {
		snprintf(path, sizeof(path), "%s.env", base);
		if (env->type != YAML_SEQUENCE_NODE)
			return input_error(err, f, env, path,
			                   "must be a list of {name, value} mappings");
		size_t n = (size_t)(env->data.sequence.items.top - env->data.sequence.items.start);
		if (!(e->env = calloc(n + 1, sizeof(char *))))
			return mg_kube_oom(err);
		for (size_t i = 0; i < n; i++) {
			yaml_node_t *v = node(f, env->data.sequence.items.start[i]);
			snprintf(path, sizeof(path), "%s.env[%zu]", base, i);
			const char *name = scalar(map_get(f, v, "name", NULL));
			yaml_node_t *val = map_get(f, v, "value", NULL);
			if (!name || !*name || strchr(name, '='))
				return input_error(err, f, v, path, "needs a name (without '=')");
			if (val && !scalar(val))
				return input_error(err, f, val, path, "value must be a string");
			if (asprintf(&e->env[i], "%s=%s", name, val ? scalar(val) : "") < 0)
				return mg_kube_oom(err);
			e->nenv++;
		}
	}
	return 0;
}

/* A YAML value as JSON, typed the way sigs.k8s.io/yaml types plain scalars. */
static json_t *yaml_json(const kfile *f, const yaml_node_t *n, int depth)
{
	if (!n || depth > 64)
		return NULL;
	if (n->type == YAML_SCALAR_NODE) {
		const char *s = scalar(n);
		if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
			return json_string(s);
		if (is_null(n))
			return json_null();
		if (!strcmp(s, "true") || !strcmp(s, "false"))
			return json_boolean(!strcmp(s, "true"));
		char *end;
		errno = 0;
		long long i = strtoll(s, &end, 10);
		if (!*end && !errno)
			return json_integer(i);
		double d = strtod(s, &end);
		if (!*end && *s != '.' && strspn(s, "+-0123456789.eE") == strlen(s))
			return json_real(d);
		return json_string(s);
	}
	if (n->type == YAML_SEQUENCE_NODE) {
		json_t *a = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     a && i < n->data.sequence.items.top; i++) {
			json_t *v = yaml_json(f, node(f, *i), depth + 1);
			if (!v || json_array_append_new(a, v)) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	if (n->type == YAML_MAPPING_NODE) {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     o && p < n->data.mapping.pairs.top; p++) {
			const char *k = scalar(node(f, p->key));
			json_t *v = yaml_json(f, node(f, p->value), depth + 1);
			if (!k || !v || json_object_set_new(o, k, v)) {
				json_decref(v);
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	return NULL;
}

/*
 * KUBERNETES_EXEC_INFO's spec.cluster for a plugin with provideClusterInfo
 * (client-go's rest.ConfigToExecCluster): the CA as data even when the
 * kubeconfig names a file, and the config of the cluster's extension named
 * client.authentication.k8s.io/exec.
 */
static int exec_cluster_info(mg_kube_config *c, const kfile *f, yaml_node_t *entry, size_t idx,
                             mg_error *err)
{
	char path[192];
	yaml_node_t *cl = map_get(f, entry, "cluster", NULL);
	json_t *j = json_pack("{s:s}", "server", c->server);
	if (!j)
		return mg_kube_oom(err);
	int rc = 0;
	if (c->tls_server_name)
		json_object_set_new(j, "tls-server-name", json_string(c->tls_server_name));
	if (c->insecure)
		json_object_set_new(j, "insecure-skip-tls-verify", json_true());
	char *ca = NULL;
	size_t calen = 0;
	if (c->ca_pem) {
		ca = strdup(c->ca_pem);
		calen = ca ? strlen(ca) : 0;
		if (!ca)
			rc = mg_kube_oom(err);
	} else if (c->ca_file) {
		mg_error e = MG_ERROR_INIT;
		if (mg_fs_read_all(&ca, &calen, c->ca_file, &e))
			rc = mg_error_set(
			    err, MG_EINVALID,
			    "%s: clusters[%zu].cluster.certificate-authority: %s (the exec "
			    "plugin asks for the cluster's CA: provideClusterInfo)",
			    f->path, idx, e.message);
		mg_error_clear(&e);
	}
	if (!rc && ca) {
		char *b = mg_base64_encode(ca, calen);
		if (!b || json_object_set_new(j, "certificate-authority-data", json_string(b)))
			rc = mg_kube_oom(err);
		free(b);
	}
	free(ca);
	const char *proxy;
	snprintf(path, sizeof(path), "clusters[%zu].cluster.proxy-url", idx);
	if (!rc && !(rc = get_str(f, cl, "proxy-url", path, &proxy, NULL, err)) && proxy && *proxy)
		json_object_set_new(j, "proxy-url", json_string(proxy));
	bool nocomp = false;
	snprintf(path, sizeof(path), "clusters[%zu].cluster.disable-compression", idx);
	if (!rc && !(rc = get_bool(f, cl, "disable-compression", path, &nocomp, err)) && nocomp)
		json_object_set_new(j, "disable-compression", json_true());
	yaml_node_t *exts = rc ? NULL : map_get(f, cl, "extensions", NULL);
	if (exts && exts->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *i = exts->data.sequence.items.start;
		     !rc && i < exts->data.sequence.items.top; i++) {
			yaml_node_t *x = node(f, *i);
			const char *name = scalar(map_get(f, x, "name", NULL));
			if (!name || strcmp(name, "client.authentication.k8s.io/exec") != 0)
				continue;
			yaml_node_t *v = map_get(f, x, "extension", NULL);
			json_t *cfg = v ? yaml_json(f, v, 0) : NULL;
			if (v && !cfg) {
				snprintf(path, sizeof(path),
				         "clusters[%zu].cluster.extensions[%zu]", idx,
				         (size_t)(i - exts->data.sequence.items.start));
				rc = input_error(err, f, v, path,
				                 "extension is not plain data (nested too deep?)");
			} else if (cfg) {
				json_object_set_new(j, "config", cfg);
			}
		}
	} else if (exts && !is_null(exts)) {
		snprintf(path, sizeof(path), "clusters[%zu].cluster.extensions", idx);
		rc = input_error(err, f, exts, path, "must be a list of {name, extension}");
	}
	if (!rc && !(c->exec->cluster_json = json_dumps(j, JSON_COMPACT)))
		rc = mg_kube_oom(err);
	json_decref(j);
	return rc;
}

static int read_user(mg_kube_config *c, const kfile *f, yaml_node_t *entry, size_t idx,
                     mg_error *err)
{
	char base[128], path[192];
	snprintf(base, sizeof(base), "users[%zu].user", idx);
	yaml_node_t *u = map_get(f, entry, "user", NULL);
	if (!u)
		return 0; /* a user with no credentials: anonymous */
	if (u->type != YAML_MAPPING_NODE)
		return input_error(err, f, u, base, "must be a mapping");
	int rc;
	struct {
		const char *file_key, *data_key;
		char **file_out, **data_out;
	} pairs[] = {
	    {"client-certificate", "client-certificate-data", &c->client_cert_file,
	     &c->client_cert_pem},
	    {"client-key", "client-key-data", &c->client_key_file, &c->client_key_pem},
	};
	for (size_t i = 0; i < 2; i++) {
		const char *fv, *dv;
		yaml_node_t *at_f, *at_d;
		snprintf(path, sizeof(path), "%s.%s", base, pairs[i].file_key);
		if ((rc = get_str(f, u, pairs[i].file_key, path, &fv, &at_f, err)))
			return rc;
		char dpath[192];
		snprintf(dpath, sizeof(dpath), "%s.%s", base, pairs[i].data_key);
		if ((rc = get_str(f, u, pairs[i].data_key, dpath, &dv, &at_d, err)))
			return rc;
		if (fv && *fv && dv && *dv)
			return input_error(err, f, at_d, dpath, "%s and %s are both set; keep one",
			                   pairs[i].file_key, pairs[i].data_key);
		if (fv && *fv && !(*pairs[i].file_out = resolve(f, fv)))
			return mg_kube_oom(err);
		if (dv && *dv && (rc = decode_data(f, at_d, dv, dpath, pairs[i].data_out, err)))
			return rc;
		/* the key, decoded and as written (base64), is masked wherever it shows up */
		if (i == 1 && dv && *dv &&
		    (mg_secret_register(dv) || mg_secret_register(*pairs[i].data_out)))
			return mg_kube_oom(err);
	}
	bool have_cert = c->client_cert_file || c->client_cert_pem;
	bool have_key = c->client_key_file || c->client_key_pem;
	if (have_cert != have_key) {
		snprintf(path, sizeof(path), "%s.%s", base,
		         have_cert ? "client-key" : "client-certificate");
		return input_error(err, f, u, path,
		                   "%s without %s: a client certificate needs its key",
		                   have_cert ? "client-certificate" : "client-key",
		                   have_cert ? "client-key" : "client-certificate");
	}
	const char *tok, *tokfile;
	yaml_node_t *at_tok, *at_tf;
	snprintf(path, sizeof(path), "%s.token", base);
	if ((rc = get_str(f, u, "token", path, &tok, &at_tok, err)))
		return rc;
	snprintf(path, sizeof(path), "%s.tokenFile", base);
	if ((rc = get_str(f, u, "tokenFile", path, &tokfile, &at_tf, err)))
		return rc;
	if (tok && *tok) {
		for (const char *p = tok; *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
				snprintf(path, sizeof(path), "%s.token", base);
				return input_error(
				    err, f, at_tok, path,
				    "contains spaces or control characters; it must be "
				    "the token alone");
			}
		if (!(c->token = strdup(tok)) || mg_secret_register(tok))
			return mg_kube_oom(err);
	} else if (tokfile && *tokfile && !(c->token_file = resolve(f, tokfile))) {
		return mg_kube_oom(err);
	}
	yaml_node_t *k = NULL;
	static const char *unsupported[] = {"username", "password", "auth-provider"};
	for (size_t i = 0; i < 3; i++)
		if (map_get(f, u, unsupported[i], &k)) {
			snprintf(path, sizeof(path), "%s.%s", base, unsupported[i]);
			return input_error(err, f, k, path,
			                   "not supported (kubectl dropped it too); use a token, a "
			                   "client certificate or an exec plugin");
		}
	yaml_node_t *ex = map_get(f, u, "exec", NULL);
	if (ex) {
		snprintf(path, sizeof(path), "%s.exec", base);
		if (c->token || c->token_file)
			return input_error(err, f, ex, path,
			                   "exec and token/tokenFile are both set; only one "
			                   "authentication method is allowed");
		if ((rc = read_exec(c, f, ex, path, err)))
			return rc;
	}
	return 0;
}

static void set_files(mg_kube_config *c, const kset *s)
{
	size_t n = 1;
	for (size_t i = 0; i < s->n; i++)
		n += strlen(s->files[i].path) + 1;
	c->files = calloc(1, n);
	if (!c->files)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (i)
			strcat(c->files, ":");
		strcat(c->files, s->files[i].path);
	}
}

static int resolve_context(mg_kube_config *c, const kset *s, const mg_kube_config_options *o,
                           mg_error *err)
{
	const char *want = o && o->context && *o->context ? o->context : NULL;
	const kfile *cur_file = NULL;
	yaml_node_t *cur_at = NULL;
	for (size_t i = 0; !want && i < s->n; i++) {
		const kfile *f = &s->files[i];
		yaml_node_t *v = map_get(f, root(f), "current-context", NULL);
		if (v && scalar(v) && *scalar(v)) {
			want = scalar(v);
			cur_file = f;
			cur_at = v;
		}
	}
	char names[512];
	names_of(s, "contexts", names, sizeof(names));
	if (!want)
		return mg_error_set(err, MG_EINVALID,
		                    "%s sets no current-context; set kubernetes.context or pass "
		                    "--context (contexts: %s)",
		                    c->files, names);
	const kfile *f;
	yaml_node_t *e;
	size_t idx;
	int rc = find_named(s, "contexts", want, &f, &e, &idx, err);
	if (rc)
		return rc;
	if (!e) {
		if (cur_file)
			return input_error(err, cur_file, cur_at, "current-context",
			                   "context %s is not defined (contexts: %s)", want, names);
		return mg_error_set(err, MG_EINVALID,
		                    "context %s is not defined in %s (contexts: %s)", want,
		                    c->files, names);
	}
	if ((rc = dup_to(&c->context, want, err)) || (rc = dup_to(&c->context_file, f->path, err)))
		return rc;
	char path[128];
	snprintf(path, sizeof(path), "contexts[%zu].context", idx);
	yaml_node_t *ctx = map_get(f, e, "context", NULL);
	if (!ctx || ctx->type != YAML_MAPPING_NODE)
		return input_error(err, f, ctx ? ctx : e, path,
		                   "context %s has no context: mapping (cluster, user)", want);
	const char *cluster, *user, *ns;
	yaml_node_t *at_cluster, *at_user, *at;
	char p2[160];
	snprintf(p2, sizeof(p2), "%s.cluster", path);
	if ((rc = get_str(f, ctx, "cluster", p2, &cluster, &at_cluster, err)))
		return rc;
	if (!cluster || !*cluster)
		return input_error(err, f, ctx, p2, "context %s names no cluster", want);
	snprintf(p2, sizeof(p2), "%s.user", path);
	if ((rc = get_str(f, ctx, "user", p2, &user, &at_user, err)))
		return rc;
	snprintf(p2, sizeof(p2), "%s.namespace", path);
	if ((rc = get_str(f, ctx, "namespace", p2, &ns, &at, err)))
		return rc;
	if ((rc = dup_to(&c->cluster, cluster, err)) || (rc = dup_to(&c->user, user, err)) ||
	    (rc = dup_to(&c->namespace_, ns && *ns ? ns : NULL, err)))
		return rc;

	const kfile *cf;
	yaml_node_t *ce;
	if ((rc = find_named(s, "clusters", cluster, &cf, &ce, &idx, err)))
		return rc;
	if (!ce) {
		names_of(s, "clusters", names, sizeof(names));
		snprintf(p2, sizeof(p2), "%s.cluster", path);
		return input_error(err, f, at_cluster, p2,
		                   "cluster %s is not defined (clusters: %s)", cluster, names);
	}
	if ((rc = read_cluster(c, cf, ce, idx, err)))
		return rc;
	size_t cluster_idx = idx;
	if (user && *user) {
		const kfile *uf;
		yaml_node_t *ue;
		if ((rc = find_named(s, "users", user, &uf, &ue, &idx, err)))
			return rc;
		if (!ue) {
			names_of(s, "users", names, sizeof(names));
			snprintf(p2, sizeof(p2), "%s.user", path);
			return input_error(err, f, at_user, p2,
			                   "user %s is not defined (users: %s)", user, names);
		}
		if ((rc = read_user(c, uf, ue, idx, err)))
			return rc;
	}
	if (c->exec && c->exec->provide_cluster_info &&
	    (rc = exec_cluster_info(c, cf, ce, cluster_idx, err)))
		return rc;
	return 0;
}

int mg_kube_config_load(mg_kube_config **out, const mg_kube_config_options *opts, mg_error *err)
{
	*out = NULL;
	kset s = {0};
	mg_kube_config *c = calloc(1, sizeof(*c));
	if (!c)
		return mg_kube_oom(err);
	bool none = false;
	char looked[1024] = "";
	int rc;
	if (opts && opts->kubeconfig && !strcmp(opts->kubeconfig, MG_KUBE_IN_CLUSTER))
		rc = mg_kube_incluster_load(c, opts, err);
	else if (!(rc = load_set(&s, opts, &none, looked, sizeof(looked), err)) && !none) {
		set_files(c, &s);
		rc = c->files ? resolve_context(c, &s, opts, err) : mg_kube_oom(err);
	} else if (!rc && opts && opts->context && *opts->context) {
		/* as clientcmd: a context asked for by name is never the pod's ServiceAccount */
		rc = mg_error_set(err, MG_EINVALID,
		                  "no kubeconfig defines context %s: kubernetes.kubeconfig is not "
		                  "set, %s",
		                  opts->context, looked);
	} else if (!rc && mg_kube_incluster_possible(opts)) {
		rc = mg_kube_incluster_load(c, opts, err);
	} else if (!rc) {
		char pod[1024];
		mg_kube_incluster_looked(opts, pod, sizeof(pod));
		rc = mg_error_set(
		    err, MG_EINVALID,
		    "no kubeconfig and not in a pod: kubernetes.kubeconfig is not set, "
		    "%s, and the in-cluster configuration is not possible (%s); set "
		    "kubernetes.kubeconfig (a file, or in-cluster) or KUBECONFIG",
		    looked, pod);
	}
	kset_free(&s);
	if (rc) {
		mg_kube_config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void mg_kube_config_free(mg_kube_config *c)
{
	if (!c)
		return;
	free(c->files);
	free(c->context);
	free(c->context_file);
	free(c->cluster);
	free(c->user);
	free(c->namespace_);
	free(c->server);
	free(c->ca_file);
	free(c->ca_pem);
	free(c->tls_server_name);
	free(c->client_cert_file);
	free(c->client_key_file);
	mg_kube_wipe_free(c->client_cert_pem);
	mg_kube_wipe_free(c->client_key_pem);
	mg_kube_wipe_free(c->token);
	free(c->token_file);
	if (c->exec) {
		mg_kube_exec_config *e = c->exec;
		free(e->command);
		for (size_t i = 0; i < e->nargs; i++)
			free(e->args[i]);
		free(e->args);
		for (size_t i = 0; i < e->nenv; i++)
			mg_kube_wipe_free(e->env[i]);
		free(e->env);
		free(e->api_version);
		free(e->install_hint);
		free(e->dir);
		free(e->cluster_json);
		free(e);
	}
	free(c);
}
