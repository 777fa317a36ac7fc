/*
 * The tree as JSON, in crossplane's shape so tools written for crossplane
 * read it, and two configurations can be diffed.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (as jansson accepts it), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

json_t *mg_ngx_json_string(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, bad = 0;
	while (i < n) {
		size_t l = utf8_seq(u + i, n - i);
		bad += l == 0;
		i += l ? l : 1;
	}
	if (!bad)
		return json_stringn(s, n);
	/* configs in Latin-1 exist; JSON cannot carry those bytes, so they become U+FFFD */
	char *o = malloc(n + bad * 2 + 1);
	if (!o)
		return NULL;
	size_t w = 0;
	for (i = 0; i < n;) {
		size_t l = utf8_seq(u + i, n - i);
		if (l) {
			memcpy(o + w, s + i, l);
			w += l;
			i += l;
		} else {
			memcpy(o + w, "\xEF\xBF\xBD", 3);
			w += 3;
			i++;
		}
	}
	json_t *j = json_stringn(o, w);
	free(o);
	return j;
}

static json_t *str(const char *s)
{
	return mg_ngx_json_string(s, strlen(s));
}

static json_t *dirs_to_json(const mg_ngx_directive *dirs, size_t n, bool comments);

static json_t *dir_to_json(const mg_ngx_directive *d, bool comments)
{
	json_t *o = json_object();
	json_t *args = json_array();
	if (!o || !args)
		goto fail;
	if (json_object_set_new(o, "directive", str(d->name)) ||
	    json_object_set_new(o, "line", json_integer(d->line)))
		goto fail;
	if (d->is_comment) {
		if (json_object_set_new(o, "args", args) ||
		    json_object_set_new(o, "comment", str(d->args[0])))
			goto fail_o;
		return o;
	}
	for (size_t i = 0; i < d->nargs; i++)
		if (json_array_append_new(args, str(d->args[i])))
			goto fail;
	if (json_object_set_new(o, "args", args))
		goto fail_o;
	if (d->is_include) {
		json_t *inc = json_array();
		if (json_object_set_new(o, "includes", inc))
			goto fail_o;
		for (size_t i = 0; i < d->nincludes; i++)
			if (json_array_append_new(inc, json_integer(d->includes[i])))
				goto fail_o;
	}
	if (d->has_block) {
		json_t *b = dirs_to_json(d->block, d->nblock, comments);
		if (json_object_set_new(o, "block", b))
			goto fail_o;
	}
	return o;
fail:
	json_decref(args);
fail_o:
	json_decref(o);
	return NULL;
}

static json_t *dirs_to_json(const mg_ngx_directive *dirs, size_t n, bool comments)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		if (dirs[i].is_comment && !comments)
			continue;
		if (json_array_append_new(a, dir_to_json(&dirs[i], comments))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *mg_nginxconf_to_json(const mg_nginxconf *conf, bool keep_comments)
{
	json_t *config = json_array();
	json_t *root = json_pack("{s:s, s:[], s:o}", "status", "ok", "errors", "config", config);
	if (!root)
		return NULL;
	for (size_t i = 0; i < mg_nginxconf_nfiles(conf); i++) {
		const mg_ngx_file *f = mg_nginxconf_file(conf, i);
		json_t *parsed = dirs_to_json(f->dirs, f->ndirs, keep_comments);
		json_t *file = json_pack("{s:o, s:s, s:[], s:o}", "file", str(f->path), "status",
		                         "ok", "errors", "parsed", parsed);
		if (!file || json_array_append_new(config, file)) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

json_t *mg_nginxconf_error_json(const mg_error *err)
{
	json_t *errors = json_array();
	json_t *root =
	    json_pack("{s:s, s:o, s:[]}", "status", "failed", "errors", errors, "config");
	if (!root)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; err && i < err->ndiags; i++) {
		const mg_diag *d = &err->diags[i];
		if (d->severity != MG_SEV_ERROR)
			continue;
		json_t *e = json_object();
		char msg[1400];
		if (d->file && d->line > 0)
			snprintf(msg, sizeof(msg), "%s in %s:%d", d->message, d->file, d->line);
		else
			snprintf(msg, sizeof(msg), "%s", d->message);
		if (!e || json_array_append_new(errors, e) ||
		    json_object_set_new(e, "file", d->file ? str(d->file) : json_null()) ||
		    json_object_set_new(e, "line",
		                        d->line > 0 ? json_integer(d->line) : json_null()) ||
		    json_object_set_new(e, "error", str(msg))) {
			json_decref(root);
			return NULL;
		}
		n++;
	}
	if (!n && err && err->message[0]) {
		json_t *e =
		    json_pack("{s:n, s:n, s:o}", "file", "line", "error", str(err->message));
		if (!e || json_array_append_new(errors, e)) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}
