/* fleet.json and the manifest records of the state directory (lib/records.h). */
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs.h"
#include "plan.h"
#include "secret.h"
#include "storebackend.h"

#define FLEET_FILE       "fleet.json"
#define FLEET_FORMAT     1
#define MANIFESTS_DIR    "manifests"
#define MANIFESTS_FORMAT 1

/* ---- fleet.json ---- */

/* <dir>/fleet.json, or what a message calls the backend's document. */
static char *fleet_path(const mg_store *store)
{
	char *p;
	if (asprintf(&p, mg_store_remote(store) ? "%s fleet" : "%s/" FLEET_FILE,
	             mg_store_path(store)) < 0)
		return NULL;
	return p;
}

static const char *store_plan(const mg_store *store)
{
	return mg_store_plan(store);
}

/* The bytes of a document, from the directory or the backend. */
static int read_doc(char **buf, size_t *len, mg_store *store, const char *path, const char *name,
                    mg_error *err)
{
	if (!mg_store_remote(store))
		return mg_fs_read_all(buf, len, path, err);
	char *version = NULL;
	int rc = mg_store_doc_read(store, name, buf, len, &version, err);
	free(version);
	return rc;
}

/* Written whole: atomically in the directory; in a backend over what is there, fenced. */
static int write_doc(mg_store *store, const char *path, const char *name, const char *text,
                     size_t len, mg_error *err)
{
	if (!mg_store_remote(store))
		return mg_fs_write_atomic(path, text, len, 0600, err);
	return mg_store_doc_write(store, name, text, len, NULL, true, err);
}

int mg_fleet_record_load(json_t **out, mg_store *store, mg_error *err)
{
	*out = NULL;
	char *path = fleet_path(store);
	if (!path)
		return mg_error_oom(err);
	char *buf;
	size_t len;
	int rc = read_doc(&buf, &len, store, path, "fleet", err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		*out = json_pack("{s:i, s:s, s:n, s:{}}", "format", FLEET_FORMAT, "plan",
		                 store_plan(store), "updated_at", "hosts");
		free(path);
		return *out ? 0 : mg_error_oom(err);
	}
	if (rc) {
		free(path);
		return rc;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!doc) {
		rc = mg_error_set(err, MG_EINVALID,
		                  "%s:%d:%d: not valid JSON (%s); fix or remove the file (it is "
		                  "never written partially; without it every host's release is "
		                  "unknown until the next deploy)",
		                  path, jerr.line, jerr.column, jerr.text);
		free(path);
		return rc;
	}
	json_t *fmt = json_object_get(doc, "format");
	json_t *plan = json_object_get(doc, "plan");
	json_t *hosts = json_object_get(doc, "hosts");
	const char *why = NULL;
	if (!json_is_integer(fmt) || json_integer_value(fmt) < 1)
		why = "\"format\" must be a positive integer";
	else if (json_integer_value(fmt) > FLEET_FORMAT)
		why = "written by a newer migrate; upgrade migrate";
	else if (!json_is_string(plan) || strcmp(json_string_value(plan), store_plan(store)))
		why = "it belongs to another plan";
	else if (!json_is_object(hosts))
		why = "\"hosts\" must be an object";
	if (!why) {
		const char *k;
		json_t *h;
		json_object_foreach(hosts, k, h)
		{
			json_t *v = json_object_get(h, "version");
			json_t *p = json_object_get(h, "previous");
			if (!json_is_object(h) || !(json_is_null(v) || json_is_string(v)) ||
			    (p && !(json_is_null(p) || json_is_string(p)))) {
				why = "every host must be {version, previous, outcome, at} with "
				      "string or null versions";
				break;
			}
		}
	}
	if (why) {
		rc = mg_error_set(err, MG_EINVALID, "%s: %s", path, why);
		json_decref(doc);
		free(path);
		return rc;
	}
	free(path);
	*out = doc;
	return 0;
}

int mg_fleet_record_save(mg_store *store, json_t *doc, mg_error *err)
{
	if (!mg_store_locked(store))
		return mg_error_set(err, MG_ERROR,
		                    "refusing to save %s/" FLEET_FILE
		                    " without holding the plan's lock (a bug in migrate)",
		                    mg_store_path(store));
	char when[40];
	mg_time_format(when, sizeof(when), mg_now_ms());
	json_object_set_new(doc, "updated_at", json_string(when));
	mg_scrub_json(doc); /* the last line of defence: hosts' outputs are quoted in it */
	char *path = fleet_path(store);
	/* indented for a reader, compact for fleets of thousands */
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_COMPACT);
	int rc;
	if (!path || !text) {
		rc = mg_error_set(err, MG_ENOMEM, "out of memory saving " FLEET_FILE);
	} else {
		size_t len = strlen(text);
		char *buf = realloc(text, len + 2);
		if (!buf) {
			rc = mg_error_set(err, MG_ENOMEM, "out of memory saving " FLEET_FILE);
		} else {
			text = buf;
			text[len++] = '\n';
			text[len] = '\0';
			rc = write_doc(store, path, "fleet", text, len, err);
		}
	}
	free(text);
	free(path);
	return rc;
}

/* ---- manifests/<version>.json ---- */

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *meta(const json_t *obj, const char *key)
{
	return jstr(json_object_get(obj, "metadata"), key);
}

static int record_path(char *buf, size_t size, mg_store *store, const char *version, mg_error *err)
{
	char why[256];
	/* the version becomes a file name: the fleet's rules keep it a plain one */
	if (mg_plan_check_version(version, why, sizeof(why)))
		return mg_error_set(err, MG_EINVALID, "version \"%s\": %s", version, why);
	int n =
	    snprintf(buf, size,
	             mg_store_remote(store) ? "%s manifests of %s" : "%s/" MANIFESTS_DIR "/%s.json",
	             mg_store_path(store), version);
	if (n < 0 || (size_t)n >= size)
		return mg_error_set(err, MG_EINVALID, "state directory path too long");
	return 0;
}

int mg_cluster_record_save(mg_store *store, const char *version, const json_t *objects,
                           mg_error *err)
{
	char path[4096], dir[4096];
	int rc = record_path(path, sizeof(path), store, version, err);
	if (rc)
		return rc;
	snprintf(dir, sizeof(dir), "%s/" MANIFESTS_DIR, mg_store_path(store));
	rc = mg_store_remote(store) ? 0 : mg_fs_mkdirs(dir, 0700, err);
	if (rc)
		return rc;
	char when[40];
	mg_time_format(when, sizeof(when), mg_now_ms());
	json_t *doc = json_pack("{s:i, s:s, s:s, s:O}", "format", MANIFESTS_FORMAT, "version",
	                        version, "recorded_at", when, "objects", objects);
	char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!text)
		return mg_error_oom(err);
	char name[256];
	snprintf(name, sizeof(name), MANIFESTS_DIR "/%s", version);
	rc = write_doc(store, path, name, text, strlen(text), err);
	free(text);
	return rc;
}

int mg_cluster_record_load(json_t **objects, mg_store *store, const char *version, mg_error *err)
{
	*objects = NULL;
	char path[4096];
	int rc = record_path(path, sizeof(path), store, version, err);
	if (rc)
		return rc;
	char *text = NULL, name[256];
	size_t len = 0;
	snprintf(name, sizeof(name), MANIFESTS_DIR "/%s", version);
	rc = read_doc(&text, &len, store, path, name, err);
	if (rc)
		return rc;
	json_error_t je;
	json_t *doc = json_loadb(text, len, 0, &je);
	free(text);
	json_t *objs = json_object_get(doc, "objects");
	if (!doc || !json_is_array(objs) || !json_is_string(json_object_get(doc, "version")) ||
	    strcmp(jstr(doc, "version"), version) != 0) {
		json_decref(doc);
		return mg_error_set(err, MG_EINVALID,
		                    "%s: not a manifest record of version %s (%s)", path, version,
		                    doc ? "wrong fields" : je.text);
	}
	size_t i;
	json_t *o;
	json_array_foreach(objs, i, o)
	{
		if (!json_is_object(o) || !jstr(o, "apiVersion") || !jstr(o, "kind") ||
		    !meta(o, "name")) {
			json_decref(doc);
			return mg_error_set(err, MG_EINVALID,
			                    "%s: objects[%zu] is not a Kubernetes object", path, i);
		}
	}
	*objects = json_incref(objs);
	json_decref(doc);
	return 0;
}
