/*
 * Server-side apply (PATCH, application/apply-patch+yaml, our fieldManager)
 * and the dry-run diff built on it. The server merges, defaults and
 * validates exactly as it will for real, so neither needs to know a
 * resource's schema; only its URL, which the kinds our templates use have
 * built in and any other kind gets through API discovery.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube.h"

static const struct {
	const char *group_version, *kind, *plural;
	bool namespaced;
} builtin[] = {
    {"v1", "ConfigMap", "configmaps", true},
    {"v1", "Secret", "secrets", true},
    {"v1", "Service", "services", true},
    {"v1", "Namespace", "namespaces", false},
    {"apps/v1", "Deployment", "deployments", true},
    {"apps/v1", "StatefulSet", "statefulsets", true},
    {"apps/v1", "DaemonSet", "daemonsets", true},
    {"autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true},
    {"policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", true},
    {"networking.k8s.io/v1", "Ingress", "ingresses", true},
};

/* Percent-encodes all but RFC 3986 unreserved characters: a name is one path segment. */
static void escape(char *out, size_t size, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (; *s && n + 4 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = '\0';
}

/* plural and scope of kind in group_version, from the cluster's discovery document. */
static int discover(mg_kube_client *c, const char *gv, const char *kind, const char **plural,
                    bool *namespaced, mg_error *err)
{
	json_t *cache = mg_kube_client_discovery_cache(c);
	json_t *list = json_object_get(cache, gv);
	if (!list) {
		char path[512], what[600];
		if (strchr(gv, '/'))
			snprintf(path, sizeof(path), "/apis/%s", gv);
		else
			snprintf(path, sizeof(path), "/api/%s", gv);
		snprintf(what, sizeof(what), "API discovery of %s", gv);
		mg_error derr = MG_ERROR_INIT;
		int rc = mg_kube_get(c, path, what, &list, &derr);
		if (rc == MG_ENOTFOUND) {
			mg_error_clear(&derr);
			return mg_error_set(
			    err, MG_ENOTFOUND,
			    "kind %s: the cluster does not serve the API %s (is its "
			    "CustomResourceDefinition installed?)",
			    kind, gv);
		}
		if (rc) {
			mg_error_set(err, rc, "%s", derr.message);
			mg_error_clear(&derr);
			return rc;
		}
		if (json_object_set_new(cache, gv, list ? list : json_object()))
			return mg_error_oom(err);
		list = json_object_get(cache, gv);
	}
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(list, "resources"), i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *k = json_string_value(json_object_get(r, "kind"));
		/* "deployments/status" and the like are subresources, not the resource */
		if (name && k && !strcmp(k, kind) && !strchr(name, '/')) {
			*plural = name;
			*namespaced = json_is_true(json_object_get(r, "namespaced"));
			return 0;
		}
	}
	return mg_error_set(err, MG_ENOTFOUND, "kind %s is not served by %s", kind, gv);
}

int mg_kube_object_path(mg_kube_client *c, const json_t *obj, char *path, size_t size, char *what,
                        size_t wsize, mg_error *err)
{
	const char *av = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	snprintf(what, wsize, "%s %s %s", av ? av : "?", kind ? kind : "?", name ? name : "?");
	if (!json_is_object(obj))
		return mg_error_set(err, MG_EINVALID, "a manifest must be an object");
	if (!av || !*av || !kind || !*kind)
		return mg_error_set(err, MG_EINVALID, "%s: a manifest needs apiVersion and kind",
		                    what);
	if (!name || !*name)
		return mg_error_set(err, MG_EINVALID, "%s: a manifest needs metadata.name", what);
	if (!ns || !*ns)
		ns = mg_kube_client_namespace(c);
	const char *plural = NULL;
	bool namespaced = true;
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (!strcmp(builtin[i].group_version, av) && !strcmp(builtin[i].kind, kind)) {
			plural = builtin[i].plural;
			namespaced = builtin[i].namespaced;
		}
	if (namespaced)
		snprintf(what, wsize, "%s %s %s/%s", av, kind, ns, name);
	else
		snprintf(what, wsize, "%s %s %s", av, kind, name);
	if (!plural) {
		int rc = discover(c, av, kind, &plural, &namespaced, err);
		if (rc)
			return rc;
		if (!namespaced)
			snprintf(what, wsize, "%s %s %s", av, kind, name);
	}
	char ens[256], ename[512];
	escape(ens, sizeof(ens), ns);
	escape(ename, sizeof(ename), name);
	int n;
	const char *root = strchr(av, '/') ? "/apis" : "/api";
	if (namespaced)
		n = snprintf(path, size, "%s/%s/namespaces/%s/%s/%s", root, av, ens, plural, ename);
	else
		n = snprintf(path, size, "%s/%s/%s/%s", root, av, plural, ename);
	if (n < 0 || (size_t)n >= size)
		return mg_error_set(err, MG_EINVALID, "%s: the name is too long", what);
	return 0;
}

static int apply(mg_kube_client *c, const json_t *obj, const mg_kube_apply_options *o,
                 json_t **result, char *what, size_t wsize, mg_error *err)
{
	char path[1024], fm[256], url[1400];
	int rc = mg_kube_object_path(c, obj, path, sizeof(path), what, wsize, err);
	if (rc)
		return rc;
	escape(fm, sizeof(fm),
	       o && o->field_manager && *o->field_manager ? o->field_manager : "migrate");
	snprintf(url, sizeof(url), "%s?fieldManager=%s%s%s", path, fm,
	         o && o->force ? "&force=true" : "", o && o->dry_run ? "&dryRun=All" : "");
	/* JSON is YAML: the apply content type takes it as it is */
	char *body = json_dumps(obj, JSON_COMPACT);
	if (!body)
		return mg_error_oom(err);
	json_t *res = NULL;
	rc = mg_kube_request(c, "PATCH", url, "application/apply-patch+yaml", body, what, NULL,
	                     &res, err);
	free(body);
	if (!rc && result)
		*result = res;
	else
		json_decref(res);
	return rc;
}

int mg_kube_apply(mg_kube_client *c, const json_t *obj, const mg_kube_apply_options *o,
                  json_t **result, mg_error *err)
{
	char what[700];
	if (result)
		*result = NULL;
	return apply(c, obj, o, result, what, sizeof(what), err);
}

/* --- diff --- */

typedef struct {
	char *buf;
	size_t len, cap;
	bool oom;
	bool secret; /* a Secret: data values are never shown */
	size_t changes;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || t->oom)
		return;
	if (t->len + (size_t)n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->oom = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static bool plain_key(const char *k)
{
	if (!*k)
		return false;
	for (const char *p = k; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	return true;
}

static void child_path(char *out, size_t size, const char *parent, const char *key, long index)
{
	if (index >= 0)
		snprintf(out, size, "%s[%ld]", parent, index);
	else if (plain_key(key))
		snprintf(out, size, "%s%s%s", parent, *parent ? "." : "", key);
	else
		snprintf(out, size, "%s[\"%s\"]", parent, key);
}

static bool is_secret_path(const text *t, const char *path)
{
	return t->secret && (!strncmp(path, "data", 4) || !strncmp(path, "stringData", 10)) &&
	       (path[path[0] == 'd' ? 4 : 10] == '.' || path[path[0] == 'd' ? 4 : 10] == '[');
}

static char *render(const text *t, const char *path, const json_t *v)
{
	if (is_secret_path(t, path))
		return strdup("(secret value hidden)");
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
}

static void leaves(text *t, char sign, const char *path, const json_t *v)
{
	char sub[1024];
	if (json_is_object(v) && json_object_size(v)) {
		void *it;
		const char **keys = malloc(json_object_size(v) * sizeof(char *));
		size_t n = 0;
		if (!keys) {
			t->oom = true;
			return;
		}
		for (it = json_object_iter((json_t *)v); it;
		     it = json_object_iter_next((json_t *)v, it))
			keys[n++] = json_object_iter_key(it);
		for (size_t i = 0; i < n; i++)
			for (size_t j = i + 1; j < n; j++)
				if (strcmp(keys[j], keys[i]) < 0) {
					const char *x = keys[i];
					keys[i] = keys[j];
					keys[j] = x;
				}
		for (size_t i = 0; i < n; i++) {
			child_path(sub, sizeof(sub), path, keys[i], -1);
			leaves(t, sign, sub, json_object_get(v, keys[i]));
		}
		free(keys);
	} else if (json_is_array(v) && json_array_size(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			child_path(sub, sizeof(sub), path, NULL, (long)i);
			leaves(t, sign, sub, json_array_get(v, i));
		}
	} else {
		char *s = render(t, path, v);
		put(t, "  %c %s: %s\n", sign, path, s ? s : "?");
		free(s);
		t->changes++;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void compare(text *t, const char *path, const json_t *a, const json_t *b)
{
	char sub[1024];
	if (json_equal((json_t *)a, (json_t *)b))
		return;
	if (!a) {
		leaves(t, '+', path, b);
		return;
	}
	if (!b) {
		leaves(t, '-', path, a);
		return;
	}
	if (json_is_object(a) && json_is_object(b)) {
		size_t n = json_object_size(a) + json_object_size(b), k = 0;
		const char **keys = malloc((n ? n : 1) * sizeof(char *));
		if (!keys) {
			t->oom = true;
			return;
		}
		const char *key;
		json_t *v;
		json_object_foreach((json_t *)a, key, v) keys[k++] = key;
		json_object_foreach((json_t *)b, key, v) if (!json_object_get(a, key)) keys[k++] =
		    key;
		qsort(keys, k, sizeof(char *), cmp_str);
		for (size_t i = 0; i < k; i++) {
			child_path(sub, sizeof(sub), path, keys[i], -1);
			compare(t, sub, json_object_get(a, keys[i]), json_object_get(b, keys[i]));
		}
		free(keys);
		return;
	}
	if (json_is_array(a) && json_is_array(b)) {
		size_t n = json_array_size(a) > json_array_size(b) ? json_array_size(a)
		                                                   : json_array_size(b);
		for (size_t i = 0; i < n; i++) {
			child_path(sub, sizeof(sub), path, NULL, (long)i);
			compare(t, sub, json_array_get(a, i), json_array_get(b, i));
		}
		return;
	}
	char *sa = render(t, path, a), *sb = render(t, path, b);
	put(t, "  ~ %s: %s -> %s\n", path, sa ? sa : "?", sb ? sb : "?");
	free(sa);
	free(sb);
	t->changes++;
}

/* What the server sets on its own: never a change the operator made. */
static void strip(json_t *o)
{
	json_t *meta = json_object_get(o, "metadata");
	static const char *fields[] = {"managedFields", "resourceVersion",   "generation",
	                               "uid",           "creationTimestamp", "selfLink"};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		json_object_del(meta, fields[i]);
	json_object_del(o, "status");
}

int mg_kube_diff(mg_kube_client *c, const json_t *obj, char **out_text, bool *changed,
                 mg_error *err)
{
	*out_text = NULL;
	*changed = false;
	char what[700], path[1024];
	json_t *after = NULL, *live = NULL;
	mg_kube_apply_options o = {.dry_run = true};
	int rc = apply(c, obj, &o, &after, what, sizeof(what), err);
	if (rc)
		return rc;
	rc = mg_kube_object_path(c, obj, path, sizeof(path), what, sizeof(what), err);
	mg_error gerr = MG_ERROR_INIT;
	if (!rc) {
		rc = mg_kube_get(c, path, what, &live, &gerr);
		if (rc && rc != MG_ENOTFOUND)
			mg_error_set(err, rc, "%s", gerr.message);
		mg_error_clear(&gerr);
	}
	text t = {0};
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	t.secret = kind && !strcmp(kind, "Secret");
	if (rc == MG_ENOTFOUND) {
		rc = 0;
		put(&t, "%s: (new)\n", what);
		json_t *copy = json_deep_copy(obj);
		strip(copy);
		leaves(&t, '+', "", copy);
		json_decref(copy);
		*changed = true;
	} else if (!rc) {
		strip(after);
		strip(live);
		put(&t, "%s:", what);
		size_t mark = t.len;
		put(&t, "\n");
		compare(&t, "", live, after);
		*changed = t.changes > 0;
		if (!*changed) {
			t.len = mark;
			put(&t, " (no changes)\n");
		}
	}
	json_decref(after);
	json_decref(live);
	if (!rc && t.oom)
		rc = mg_error_oom(err);
	if (rc) {
		free(t.buf);
		return rc;
	}
	*out_text = t.buf;
	return 0;
}
