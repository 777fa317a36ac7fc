/*
 * The plain verbs on objects migrate owns outright (issue 14's Leases and
 * ConfigMaps): create, update with the resourceVersion it was read at, list by
 * label selector, delete with a precondition. Unlike server-side apply, which
 * merges, these are compare-and-swap: a write that lost a race comes back as
 * MG_ECONFLICT with the server's words and changes nothing, so no caller can
 * overwrite a newer write without having read it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube.h"

/* Pages of a list: a real server's default limit is none, but a journal may grow long. */
#define LIST_PAGE      500
#define LIST_MAX_PAGES 10000

/* Percent-encodes all but RFC 3986 unreserved characters: a query value. */
static int escape(char *out, size_t size, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (n + 4 > size)
			return -1;
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
	return 0;
}

/*
 * What a message calls the object at path (name: the object's, for a
 * collection path), the way the API server does: "leases.coordination.k8s.io
 * shop/lock", "configmaps shop/state"; the path itself when it is no API path.
 */
static void describe(char *buf, size_t size, const char *path, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s", path);
	char *q = strchr(p, '?');
	if (q)
		*q = '\0';
	char *seg[8];
	int n = 0;
	for (char *save = NULL, *t = strtok_r(p, "/", &save); t && n < 8;
	     t = strtok_r(NULL, "/", &save))
		seg[n++] = t;
	int i;
	const char *group = "";
	if (n >= 2 && !strcmp(seg[0], "api"))
		i = 2;
	else if (n >= 3 && !strcmp(seg[0], "apis")) {
		group = seg[1];
		i = 3;
	} else
		goto raw;
	const char *ns = NULL;
	if (n - i >= 3 && !strcmp(seg[i], "namespaces"))
		ns = seg[i + 1], i += 2;
	if (n - i < 1 || n - i > 2)
		goto raw;
	const char *res = seg[i];
	const char *obj = n - i == 2 ? seg[i + 1] : name;
	if (obj)
		snprintf(buf, size, "%s%s%s %s%s%s", res, *group ? "." : "", group, ns ? ns : "",
		         ns ? "/" : "", obj);
	else
		snprintf(buf, size, "%s%s%s%s%s", res, *group ? "." : "", group, ns ? " in " : "",
		         ns ? ns : "");
	return;
raw:
	snprintf(buf, size, "%s", path);
}

static const char *meta_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* path with "?query" or "&query" appended; malloc'd, NULL when out of memory. */
static char *with_query(const char *path, const char *query)
{
	char *s;
	if (asprintf(&s, "%s%s%s", path, strchr(path, '?') ? "&" : "?", query) < 0)
		return NULL;
	return s;
}

/* One write of obj (POST or PUT) as JSON. */
static int write_object(mg_kube_client *c, const char *method, const char *path, const json_t *obj,
                        const char *what, json_t **out, mg_error *err)
{
	char *body = json_dumps(obj, JSON_COMPACT);
	/* fieldManager names the writer in managedFields, as kubectl's verbs do */
	char *url = with_query(path, "fieldManager=migrate");
	int rc;
	if (!body || !url)
		rc = mg_error_oom(err);
	else
		rc =
		    mg_kube_request(c, method, url, "application/json", body, what, NULL, out, err);
	free(body);
	free(url);
	return rc;
}

int mg_kube_create(mg_kube_client *c, const char *path, const json_t *obj, json_t **out,
                   mg_error *err)
{
	if (out)
		*out = NULL;
	const char *name = meta_str(obj, "name");
	char what[600];
	describe(what, sizeof(what), path, name ? name : "?");
	if (!json_is_object(obj) || !name || !*name)
		return mg_error_set(err, MG_EINVALID, "%s: an object to create needs metadata.name",
		                    what);
	const char *rv = meta_str(obj, "resourceVersion");
	if (rv && *rv)
		return mg_error_set(err, MG_EINVALID,
		                    "%s: an object to create cannot carry metadata.resourceVersion "
		                    "(%s): it exists already or was copied from one that does",
		                    what, rv);
	return write_object(c, "POST", path, obj, what, out, err);
}

int mg_kube_update(mg_kube_client *c, const char *path, const json_t *obj, json_t **out,
                   mg_error *err)
{
	if (out)
		*out = NULL;
	char what[600];
	describe(what, sizeof(what), path, NULL);
	if (!json_is_object(obj))
		return mg_error_set(err, MG_EINVALID, "%s: an update needs an object", what);
	const char *rv = meta_str(obj, "resourceVersion");
	/* a ConfigMap's update without one is unconditional: last writer wins, never here */
	if (!rv || !*rv)
		return mg_error_set(err, MG_EINVALID,
		                    "%s: an update needs metadata.resourceVersion, the version it "
		                    "was read at; without one the server would overwrite whatever "
		                    "another writer stored since",
		                    what);
	return write_object(c, "PUT", path, obj, what, out, err);
}

int mg_kube_delete(mg_kube_client *c, const char *path, const char *resource_version, json_t **out,
                   mg_error *err)
{
	if (out)
		*out = NULL;
	char what[600];
	describe(what, sizeof(what), path, NULL);
	char *body = NULL;
	if (resource_version) {
		json_t *opts =
		    json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "DeleteOptions",
		              "preconditions", "resourceVersion", resource_version);
		body = opts ? json_dumps(opts, JSON_COMPACT) : NULL;
		json_decref(opts);
		if (!body)
			return mg_error_oom(err);
	}
	int rc = mg_kube_request(c, "DELETE", path, body ? "application/json" : NULL, body, what,
	                         NULL, out, err);
	free(body);
	return rc;
}

/* The list's items, each with the apiVersion and kind a list leaves out, appended to all. */
static int take_items(json_t *all, json_t *list, mg_error *err)
{
	const char *av = json_string_value(json_object_get(list, "apiVersion"));
	const char *lk = json_string_value(json_object_get(list, "kind"));
	char kind[128] = "";
	size_t kl = lk ? strlen(lk) : 0;
	if (kl > 4 && kl < sizeof(kind) && !strcmp(lk + kl - 4, "List"))
		snprintf(kind, sizeof(kind), "%.*s", (int)(kl - 4), lk);
	size_t i;
	json_t *it;
	json_array_foreach(json_object_get(list, "items"), i, it)
	{
		if (!json_is_object(it))
			continue;
		if (av && !json_object_get(it, "apiVersion") &&
		    json_object_set_new(it, "apiVersion", json_string(av)))
			return mg_error_oom(err);
		if (kind[0] && !json_object_get(it, "kind") &&
		    json_object_set_new(it, "kind", json_string(kind)))
			return mg_error_oom(err);
		if (json_array_append(all, it))
			return mg_error_oom(err);
	}
	return 0;
}

int mg_kube_list(mg_kube_client *c, const char *path, const char *label_selector, json_t **items,
                 mg_error *err)
{
	*items = NULL;
	char what[700], base[600];
	describe(base, sizeof(base), path, NULL);
	if (label_selector && *label_selector)
		snprintf(what, sizeof(what), "%s (labels %s)", base, label_selector);
	else
		snprintf(what, sizeof(what), "%s", base);
	char sel[1024] = "";
	if (label_selector && escape(sel, sizeof(sel), label_selector))
		return mg_error_set(err, MG_EINVALID, "%s: the label selector is too long", what);
	json_t *all = json_array();
	if (!all)
		return mg_error_oom(err);
	char *cont = NULL;
	int rc = 0;
	for (int page = 0;; page++) {
		if (page == LIST_MAX_PAGES) {
			rc = mg_error_set(err, MG_ERROR, "%s: more than %d pages of %d objects",
			                  what, LIST_MAX_PAGES, LIST_PAGE);
			break;
		}
		char *query = NULL, *url = NULL;
		if (asprintf(&query, "limit=%d%s%s%s%s", LIST_PAGE, sel[0] ? "&labelSelector=" : "",
		             sel, cont ? "&continue=" : "", cont ? cont : "") < 0 ||
		    !(url = with_query(path, query))) {
			free(query);
			rc = mg_error_oom(err);
			break;
		}
		free(query);
		json_t *list = NULL;
		rc = mg_kube_get(c, url, what, &list, err);
		free(url);
		free(cont);
		cont = NULL;
		if (!rc && !json_is_array(json_object_get(list, "items")))
			rc = mg_error_set(err, MG_ERROR, "%s: the answer is not a list", what);
		if (!rc)
			rc = take_items(all, list, err);
		const char *next = json_string_value(
		    json_object_get(json_object_get(list, "metadata"), "continue"));
		if (!rc && next && *next) {
			/* the token is opaque: escaped like any query value */
			size_t n = strlen(next) * 3 + 1;
			if (!(cont = malloc(n)) || escape(cont, n, next))
				rc = mg_error_oom(err);
		}
		json_decref(list);
		if (rc || !cont)
			break;
	}
	free(cont);
	if (rc) {
		json_decref(all);
		return rc;
	}
	*items = all;
	return 0;
}
