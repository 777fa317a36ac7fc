/* The ConfigMap: content, and the manifest as YAML or JSON; keys.c names the keys. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* --- text --------------------------------------------------------------------------------- */

/* Length of the UTF-8 sequence at s (its code point in *cp), or 0 if it is not valid UTF-8. */
static size_t utf8_char(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0)
		n = 2, v = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		n = 3, v = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		n = 4, v = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

static bool utf8_valid(const char *s, size_t len)
{
	uint32_t cp;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_char((const unsigned char *)s + i, len - i, &cp);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

/*
 * Whether a literal block scalar keeps s byte for byte: YAML turns CR, NEL
 * and the Unicode line separators into line feeds and has no way to write
 * other control characters or a BOM there.
 */
static bool block_ok(const char *s, size_t len)
{
	uint32_t cp;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_char((const unsigned char *)s + i, len - i, &cp);
		if (!n)
			return false;
		if ((cp < 0x20 && cp != '\t' && cp != '\n') || (cp >= 0x7f && cp < 0xa0) ||
		    cp == 0x2028 || cp == 0x2029 || cp == 0xfeff)
			return false;
		i += n;
	}
	return true;
}

static void yaml_dq(cm_buf *b, const char *s, size_t len)
{
	mg_cm_buf_add(b, "\"", 1);
	uint32_t cp;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_char((const unsigned char *)s + i, len - i, &cp);
		if (!n) { /* not reached for data (UTF-8 checked); a byte as its code point */
			mg_cm_buf_printf(b, "\\x%02x", (unsigned char)s[i]);
			i++;
			continue;
		}
		switch (cp) {
		case '"':
			mg_cm_buf_str(b, "\\\"");
			break;
		case '\\':
			mg_cm_buf_str(b, "\\\\");
			break;
		case '\n':
			mg_cm_buf_str(b, "\\n");
			break;
		case '\t':
			mg_cm_buf_str(b, "\\t");
			break;
		case '\r':
			mg_cm_buf_str(b, "\\r");
			break;
		case 0:
			mg_cm_buf_str(b, "\\0");
			break;
		case 0x2028:
			mg_cm_buf_str(b, "\\L");
			break;
		case 0x2029:
			mg_cm_buf_str(b, "\\P");
			break;
		case 0xfeff:
			mg_cm_buf_str(b, "\\uFEFF");
			break;
		default:
			if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
				mg_cm_buf_printf(b, "\\x%02x", (unsigned)cp);
			else
				mg_cm_buf_add(b, s + i, n);
		}
		i += n;
	}
	mg_cm_buf_add(b, "\"", 1);
}

static void yaml_str(cm_buf *b, const char *s)
{
	yaml_dq(b, s, strlen(s));
}

/* A value under a key at indentation `indent`: a literal block when it can be exact. */
static void yaml_text(cm_buf *b, const char *s, size_t len, int indent)
{
	if (!len || !block_ok(s, len)) {
		mg_cm_buf_add(b, " ", 1);
		yaml_dq(b, s, len);
		mg_cm_buf_add(b, "\n", 1);
		return;
	}
	size_t trailing = 0;
	while (trailing < len && s[len - 1 - trailing] == '\n')
		trailing++;
	/* the explicit indentation keeps a first line that starts with spaces intact */
	mg_cm_buf_printf(b, " |2%s\n", trailing == 0 ? "-" : trailing == 1 ? "" : "+");
	size_t end = len - trailing;
	for (size_t i = 0; i < end;) {
		const char *nl = memchr(s + i, '\n', end - i);
		size_t l = nl ? (size_t)(nl - (s + i)) : end - i;
		if (l)
			mg_cm_buf_printf(b, "%*s", indent + 2, "");
		mg_cm_buf_add(b, s + i, l);
		mg_cm_buf_add(b, "\n", 1);
		i += l + 1;
	}
	for (size_t i = 1; i < trailing; i++)
		mg_cm_buf_add(b, "\n", 1);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64(const char *data, size_t len)
{
	const unsigned char *s = (const unsigned char *)data;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
	if (!out)
		return NULL;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static char *verify_annotation(const mg_cm *cm)
{
	const mg_cm_verify_result *v = &cm->verify;
	if (!v->ran)
		return NULL;
	return mg_str_printf("%s%s%s%s", v->ok ? "passed" : "failed", v->version ? " (" : "",
	                     v->version ? v->version : "", v->version ? ")" : "");
}

static void yaml_emit(const mg_cm *cm, cm_buf *b);

char *mg_cm_yaml(const mg_cm *cm)
{
	cm_buf b = {0};
	yaml_emit(cm, &b);
	return mg_cm_buf_take(&b);
}

int mg_cm_yaml_write(const mg_cm *cm, int (*write)(const char *data, size_t len, void *ud),
                     void *ud)
{
	cm_buf b = {.sink = write, .ud = ud};
	yaml_emit(cm, &b);
	int rc = mg_cm_buf_flush(&b);
	free(b.s);
	return rc;
}

static void yaml_emit(const mg_cm *cm, cm_buf *b)
{
	mg_cm_buf_str(b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ");
	yaml_str(b, cm->name);
	if (cm->namespace_) {
		mg_cm_buf_str(b, "\n  namespace: ");
		yaml_str(b, cm->namespace_);
	}
	mg_cm_buf_str(b, "\n  labels:\n    app.kubernetes.io/managed-by: migrate\n"
	                 "  annotations:\n    " MG_CM_ANNOTATION_CHECKSUM ": ");
	yaml_str(b, cm->checksum);
	char *va = verify_annotation(cm);
	if (va) {
		mg_cm_buf_str(b, "\n    " MG_CM_ANNOTATION_VERIFY ": ");
		yaml_str(b, va);
		free(va);
	}
	mg_cm_buf_str(b, "\n");
	if (cm->immutable)
		mg_cm_buf_str(b, "immutable: true\n");
	bool any = false;
	for (size_t i = 0; i < cm->nentries; i++) {
		const mg_cm_entry *e = &cm->entries[i];
		if (e->binary)
			continue;
		if (!any)
			mg_cm_buf_str(b, "data:\n");
		any = true;
		mg_cm_buf_str(b, "  ");
		yaml_str(b, e->key);
		mg_cm_buf_str(b, ":");
		yaml_text(b, e->data, e->len, 2);
	}
	any = false;
	for (size_t i = 0; i < cm->nentries; i++) {
		const mg_cm_entry *e = &cm->entries[i];
		if (!e->binary)
			continue;
		if (!any)
			mg_cm_buf_str(b, "binaryData:\n");
		any = true;
		char *enc = base64(e->data, e->len);
		if (!enc) {
			b->oom = true;
			return;
		}
		mg_cm_buf_str(b, "  ");
		yaml_str(b, e->key);
		mg_cm_buf_printf(b, ": %s\n", enc);
		free(enc);
	}
}

json_t *mg_cm_json(const mg_cm *cm)
{
	json_t *meta = json_pack("{s:s}", "name", cm->name);
	if (!meta)
		return NULL;
	if (cm->namespace_)
		json_object_set_new(meta, "namespace", json_string(cm->namespace_));
	json_object_set_new(meta, "labels",
	                    json_pack("{s:s}", "app.kubernetes.io/managed-by", "migrate"));
	json_t *ann = json_pack("{s:s}", MG_CM_ANNOTATION_CHECKSUM, cm->checksum);
	char *va = verify_annotation(cm);
	if (va)
		json_object_set_new(ann, MG_CM_ANNOTATION_VERIFY, json_string(va));
	free(va);
	json_object_set_new(meta, "annotations", ann);
	json_t *doc =
	    json_pack("{s:s, s:s, s:o}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", meta);
	if (!doc)
		return NULL;
	if (cm->immutable)
		json_object_set_new(doc, "immutable", json_true());
	json_t *data = json_object(), *bin = json_object();
	for (size_t i = 0; i < cm->nentries; i++) {
		const mg_cm_entry *e = &cm->entries[i];
		if (e->binary) {
			char *enc = base64(e->data, e->len);
			json_object_set_new(bin, e->key, enc ? json_string(enc) : NULL);
			free(enc);
		} else {
			json_object_set_new(data, e->key, json_stringn(e->data, e->len));
		}
	}
	if (json_object_size(data))
		json_object_set_new(doc, "data", data);
	else
		json_decref(data);
	if (json_object_size(bin))
		json_object_set_new(doc, "binaryData", bin);
	else
		json_decref(bin);
	if (json_object_size(doc) < 4) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

json_t *mg_cm_items_json(const mg_cm *cm)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < cm->nentries; i++)
		json_array_append_new(a, json_pack("{s:s, s:s}", "key", cm->entries[i].key, "path",
		                                   cm->entries[i].path));
	return a;
}

/* --- the pod snippet ---------------------------------------------------------------------- */

static void line(cm_buf *b, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line(cm_buf *b, const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	mg_cm_buf_str(b, prefix);
	mg_cm_buf_add(b, s, (size_t)n);
	mg_cm_buf_add(b, "\n", 1);
	free(s);
}

static char *dirname_of(const char *p)
{
	char *d = strdup(p);
	char *slash = d ? strrchr(d, '/') : NULL;
	if (slash)
		*(slash == d ? slash + 1 : slash) = '\0';
	return d;
}

static void shell_word(cm_buf *b, const char *s)
{
	if (*s &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@") ==
	        strlen(s)) {
		mg_cm_buf_str(b, s);
		return;
	}
	mg_cm_buf_add(b, "'", 1);
	for (; *s; s++)
		if (*s == '\'')
			mg_cm_buf_str(b, "'\\''");
		else
			mg_cm_buf_add(b, s, 1);
	mg_cm_buf_add(b, "'", 1);
}

char *mg_cm_mount_yaml(const mg_cm *cm, const char *pre)
{
	cm_buf b = {0};
	const char *secret = cm->secret_name;
	bool in_mount = false;
	for (size_t i = 0; i < cm->nsecrets; i++)
		in_mount |= cm->secrets[i].in_mount;
	if (cm->nsecrets) {
		line(&b, pre,
		     "The Secret for the files the ConfigMap leaves out, from the VM's files:");
		mg_cm_buf_str(&b, pre);
		mg_cm_buf_str(&b, "  kubectl create secret generic ");
		shell_word(&b, secret);
		if (cm->namespace_) {
			mg_cm_buf_str(&b, " --namespace ");
			shell_word(&b, cm->namespace_);
		}
		for (size_t i = 0; i < cm->nsecrets; i++) {
			mg_cm_buf_printf(&b, " \\\n%s      --from-file=", pre);
			char *arg =
			    mg_str_printf("%s=%s", cm->secrets[i].key, cm->secrets[i].source);
			shell_word(&b, arg ? arg : "");
			free(arg);
		}
		mg_cm_buf_str(&b, "\n");
	}
	line(&b, pre, "In the pod spec:");
	line(&b, pre, "  volumes:");
	line(&b, pre, "    - name: nginx-config");
	const char *in = "      ";
	if (in_mount) {
		line(&b, pre, "      projected:");
		line(&b, pre, "        sources:");
		line(&b, pre, "          - configMap:");
		in = "              ";
	} else {
		line(&b, pre, "      configMap:");
		in = "        ";
	}
	line(&b, pre, "%sname: %s", in, cm->name);
	line(&b, pre, "%sitems:", in);
	for (size_t i = 0; i < cm->nentries; i++)
		line(&b, pre, "%s  - {key: %s, path: %s}", in, cm->entries[i].key,
		     cm->entries[i].path);
	if (in_mount) {
		line(&b, pre, "          - secret:");
		line(&b, pre, "              name: %s", secret);
		line(&b, pre, "              items:");
		for (size_t i = 0; i < cm->nsecrets; i++)
			if (cm->secrets[i].in_mount)
				line(&b, pre, "                - {key: %s, path: %s}",
				     cm->secrets[i].key,
				     cm->secrets[i].pod_path + strlen(cm->mount_path) + 1);
	}
	/* files outside the mount: one secret volume per directory */
	char **dirs = calloc(cm->nsecrets + 1, sizeof(*dirs));
	size_t ndirs = 0;
	for (size_t i = 0; dirs && i < cm->nsecrets; i++) {
		if (cm->secrets[i].in_mount)
			continue;
		char *d = dirname_of(cm->secrets[i].pod_path);
		bool seen = false;
		for (size_t k = 0; d && k < ndirs; k++)
			seen |= !strcmp(dirs[k], d);
		if (seen || !d) {
			free(d);
			continue;
		}
		dirs[ndirs] = d;
		line(&b, pre, "    - name: nginx-secret-%zu", ndirs + 1);
		line(&b, pre, "      secret:");
		line(&b, pre, "        secretName: %s", secret);
		line(&b, pre, "        items:");
		for (size_t k = 0; k < cm->nsecrets; k++) {
			char *dk =
			    cm->secrets[k].in_mount ? NULL : dirname_of(cm->secrets[k].pod_path);
			if (dk && !strcmp(dk, d))
				line(&b, pre, "          - {key: %s, path: %s}", cm->secrets[k].key,
				     cm->secrets[k].pod_path + strlen(d) +
				         (strcmp(d, "/") ? 1 : 0));
			free(dk);
		}
		ndirs++;
	}
	for (size_t i = 0; i < cm->nsocket_dirs; i++) {
		line(&b, pre, "    - name: sockets-%zu", i + 1);
		line(&b, pre, "      emptyDir: {}");
	}
	line(&b, pre, "  nginx container:");
	line(&b, pre, "    volumeMounts:");
	line(&b, pre, "      - {name: nginx-config, mountPath: %s, readOnly: true}",
	     cm->mount_path);
	for (size_t i = 0; i < ndirs; i++)
		line(&b, pre, "      - {name: nginx-secret-%zu, mountPath: %s, readOnly: true}",
		     i + 1, dirs[i]);
	for (size_t i = 0; i < cm->nsocket_dirs; i++)
		line(&b, pre, "      - {name: sockets-%zu, mountPath: %s}", i + 1,
		     cm->socket_dirs[i]);
	if (cm->nsocket_dirs) {
		line(&b, pre, "  the container that creates the sockets (php-fpm):");
		line(&b, pre, "    volumeMounts:");
		for (size_t i = 0; i < cm->nsocket_dirs; i++)
			line(&b, pre, "      - {name: sockets-%zu, mountPath: %s}", i + 1,
			     cm->socket_dirs[i]);
	}
	for (size_t i = 0; dirs && i < ndirs; i++)
		free(dirs[i]);
	free(dirs);
	return mg_cm_buf_take(&b);
}

/* --- build -------------------------------------------------------------------------------- */

static bool dns_subdomain(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && c != '-' && c != '.')
			return false;
		if ((i == 0 || i == n - 1) && !alnum)
			return false;
	}
	return true;
}

static bool dns_label(const char *s)
{
	return dns_subdomain(s, 63) && !strchr(s, '.');
}

static int by_entry_key(const void *a, const void *b)
{
	return strcmp(((const mg_cm_entry *)a)->key, ((const mg_cm_entry *)b)->key);
}

void mg_cm_free(mg_cm *cm)
{
	if (!cm)
		return;
	for (size_t i = 0; i < cm->nentries; i++) {
		free(cm->entries[i].key);
		free(cm->entries[i].path);
		free(cm->entries[i].source);
	}
	free(cm->entries);
	free(cm->findings); /* their messages are in priv's texts */
	for (size_t i = 0; i < cm->nsecrets; i++) {
		free(cm->secrets[i].pod_path);
		free(cm->secrets[i].source);
		free(cm->secrets[i].key);
		free(cm->secrets[i].directive);
		free(cm->secrets[i].file);
	}
	free(cm->secrets);
	for (size_t i = 0; i < cm->nsocket_dirs; i++)
		free(cm->socket_dirs[i]);
	free(cm->socket_dirs);
	for (size_t i = 0; i < cm->npaths; i++)
		free(cm->paths[i]);
	free(cm->paths);
	mg_cm_verify_result *v = &cm->verify;
	free(v->reason);
	free(v->nginx);
	free(v->version);
	free(v->command);
	free(v->output);
	free(v->summary);
	for (size_t i = 0; i < v->nnotes; i++)
		free(v->notes[i]);
	free(v->notes);
	mg_cm_private *p = cm->priv;
	if (p) {
		mg_cm_edits_clear(&p->edits);
		free(p->refs);
		free(p->excluded);
		free(p->secret_file);
		for (size_t i = 0; i < p->nupstreams; i++)
			free(p->upstreams[i]);
		free(p->upstreams);
		for (size_t i = 0; i < p->nowned; i++)
			free(p->owned[i]);
		free(p->owned);
		for (size_t i = 0; i < p->nfixes; i++)
			free(p->fixes[i]);
		free(p->fixes);
		mg_cm_texts_clear(p);
		free(p);
	}
	free(cm->name);
	free(cm->base_name);
	free(cm->namespace_);
	free(cm->mount_path);
	free(cm->secret_name);
	free(cm->main_path);
	free(cm);
}

size_t mg_cm_count(const mg_cm *cm, mg_cm_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < cm->nfindings; i++)
		n += cm->findings[i].severity == sev;
	return n;
}

static int too_big(const mg_cm *cm, mg_error *err)
{
	/* the three largest files, so the operator knows what to move out */
	size_t top[3] = {(size_t)-1, (size_t)-1, (size_t)-1};
	for (size_t i = 0; i < cm->nentries; i++) {
		for (int k = 0; k < 3; k++) {
			if (top[k] == (size_t)-1 || cm->entries[i].len > cm->entries[top[k]].len) {
				for (int m = 2; m > k; m--)
					top[m] = top[m - 1];
				top[k] = i;
				break;
			}
		}
	}
	char largest[512] = "";
	size_t o = 0;
	for (int k = 0; k < 3 && top[k] != (size_t)-1 && o < sizeof(largest); k++)
		o += (size_t)snprintf(largest + o, sizeof(largest) - o, "%s%s (%zu bytes)",
		                      k ? ", " : "", cm->entries[top[k]].path,
		                      cm->entries[top[k]].len);
	return mg_error_set(err, MG_ERROR,
	                    "ConfigMap %s would be %zu bytes (keys and values, as the API server "
	                    "counts them); the limit is %zu (1 MiB). Largest files: %s. Split the "
	                    "tree into several ConfigMaps, or move large maps into the image",
	                    cm->base_name, cm->size, MG_CM_MAX_BYTES, largest);
}

int mg_cm_build(mg_cm **out, const mg_nginxconf *conf, const mg_cm_options *opt, mg_error *err)
{
	*out = NULL;
	const char *mount = opt->mount_path ? opt->mount_path : MG_CM_MOUNT_PATH;
	if (!opt->name || !dns_subdomain(opt->name, opt->hash_suffix ? 242 : 253))
		return mg_error_set(err, MG_EINVALID,
		                    "the ConfigMap's name \"%s\" is not a DNS subdomain (lowercase "
		                    "letters, digits, '-' and '.', at most %d characters%s)",
		                    opt->name ? opt->name : "", opt->hash_suffix ? 242 : 253,
		                    opt->hash_suffix ? " with the hash suffix" : "");
	if (opt->secret && !dns_subdomain(opt->secret, 253))
		return mg_error_set(err, MG_EINVALID,
		                    "the Secret's name \"%s\" is not a DNS subdomain (lowercase "
		                    "letters, digits, '-' and '.', at most 253 characters)",
		                    opt->secret);
	if (opt->namespace_ && !dns_label(opt->namespace_))
		return mg_error_set(
		    err, MG_EINVALID,
		    "the namespace \"%s\" is not a DNS label (lowercase letters, digits "
		    "and '-', at most 63 characters)",
		    opt->namespace_);
	if (mount[0] != '/' || !strcmp(mount, "/") || strstr(mount, "/../") ||
	    strstr(mount, "/./") || strstr(mount, "//"))
		return mg_error_set(
		    err, MG_EINVALID,
		    "the mount path \"%s\" must be an absolute directory other than /", mount);
	const mg_ngx_file *main_file = mg_nginxconf_file(conf, 0);
	if (main_file->path[0] == '/')
		return mg_error_set(err, MG_EINVALID, "the main file %s is outside the prefix %s",
		                    main_file->path, mg_nginxconf_prefix(conf));

	mg_cm *cm = calloc(1, sizeof(*cm));
	mg_cm_private *p = cm ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		free(cm);
		return mg_error_oom(err);
	}
	cm->priv = p;
	p->conf = conf;
	p->prefix = mg_nginxconf_prefix(conf);
	cm->base_name = strdup(opt->name);
	cm->namespace_ = mg_cm_strdup(opt->namespace_);
	cm->mount_path = strdup(mount);
	cm->secret_given = opt->secret != NULL;
	cm->secret_name = opt->secret ? strdup(opt->secret) : mg_str_printf("%s-secret", opt->name);
	size_t ml = strlen(cm->mount_path ? cm->mount_path : "");
	while (ml > 1 && cm->mount_path[ml - 1] == '/')
		cm->mount_path[--ml] = '\0';
	cm->main_path = strdup(main_file->path);
	cm->immutable = opt->hash_suffix;
	int rc = 0;
	if (!cm->base_name || (opt->namespace_ && !cm->namespace_) || !cm->mount_path ||
	    !cm->main_path || !cm->secret_name) {
		rc = mg_error_oom(err);
		goto fail;
	}
	rc = mg_cm_lint(cm, opt, err);
	if (rc)
		goto fail;

	size_t nfiles = mg_nginxconf_nfiles(conf);
	p->excluded = calloc(nfiles, sizeof(*p->excluded));
	p->secret_file = calloc(nfiles, sizeof(*p->secret_file));
	cm->entries = calloc(nfiles, sizeof(*cm->entries));
	const char **paths = calloc(nfiles, sizeof(*paths));
	char **keys = calloc(nfiles, sizeof(*keys));
	p->owned = calloc(nfiles, sizeof(*p->owned));
	struct stat *sst = calloc(cm->nsecrets ? cm->nsecrets : 1, sizeof(*sst));
	if (!p->excluded || !p->secret_file || !cm->entries || !paths || !keys || !p->owned ||
	    !sst) {
		free(paths);
		free(keys);
		free(sst);
		rc = mg_error_oom(err);
		goto fail;
	}
	/* which file each secret path is (stat only: a secret file is never opened), so one
	 * the tree includes by another name (a symlink, a hard link) is known too */
	for (size_t s = 0; s < cm->nsecrets; s++)
		if (stat(cm->secrets[s].source, &sst[s]) != 0)
			sst[s].st_ino = 0;
	size_t n = 0;
	for (size_t i = 0; i < nfiles; i++) {
		const mg_ngx_file *f = mg_nginxconf_file(conf, i);
		if (f->path[0] == '/') {
			p->excluded[i] = true; /* outside the tree: the include has an error */
			continue;
		}
		char *pod = mg_cm_join(cm->mount_path, f->path);
		if (!pod) {
			rc = MG_ENOMEM;
			break;
		}
		for (size_t s = 0; s < cm->nsecrets && !p->excluded[i]; s++) {
			const mg_cm_secret *sec = &cm->secrets[s];
			/* the same path, the same file, or where the pod would see it */
			if (!strcmp(sec->source, f->abs_path) ||
			    (f->ino && sst[s].st_ino && (uint64_t)sst[s].st_ino == f->ino &&
			     (uint64_t)sst[s].st_dev == f->dev) ||
			    !strcmp(sec->pod_path, pod)) {
				p->excluded[i] = p->secret_file[i] = true;
				mg_cm_add_finding(
				    cm, MG_CM_INFO, "secret", NULL, "",
				    "%s is both included and named by %s; it stays out of the "
				    "ConfigMap",
				    f->path, sec->directive);
			}
		}
		free(pod);
		if (p->excluded[i])
			continue;
		mg_cm_entry *e = &cm->entries[n];
		bool edited = false;
		for (size_t k = 0; k < p->edits.n && !edited; k++)
			edited = p->edits.v[k].file == i;
		if (edited) {
			size_t len;
			char *data = mg_cm_apply(f, (uint32_t)i, &p->edits, &len);
			if (!data) {
				rc = MG_ENOMEM;
				break;
			}
			p->owned[p->nowned++] = data;
			e->data = data;
			e->len = len;
			e->rewritten = len != f->len || memcmp(data, f->data, len);
		} else {
			e->data = f->data;
			e->len = f->len;
		}
		e->file = i;
		e->path = strdup(f->path);
		e->source = strdup(f->abs_path);
		e->binary = !utf8_valid(e->data, e->len);
		if (!e->path || !e->source) {
			free(e->path);
			free(e->source);
			rc = MG_ENOMEM;
			break;
		}
		paths[n++] = e->path;
	}
	free(sst);
	cm->nentries = n;
	if (!rc)
		rc = mg_cm_keys(keys, paths, n, err);
	else
		mg_error_set(err, rc, "out of memory");
	free(paths);
	if (rc) {
		free(keys);
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		cm->entries[i].key = keys[i];
	free(keys);
	qsort(cm->entries, n, sizeof(*cm->entries), by_entry_key);

	/* the Secret's keys, unique among themselves */
	if (cm->nsecrets) {
		const char **sp = calloc(cm->nsecrets, sizeof(*sp));
		char **sk = calloc(cm->nsecrets, sizeof(*sk));
		for (size_t i = 0; sp && sk && i < cm->nsecrets; i++) {
			const char *pp = cm->secrets[i].pod_path;
			sp[i] = cm->secrets[i].in_mount ? pp + strlen(cm->mount_path) + 1 : pp + 1;
		}
		rc = sp && sk ? mg_cm_keys(sk, sp, cm->nsecrets, err) : mg_error_oom(err);
		for (size_t i = 0; !rc && i < cm->nsecrets; i++) {
			free(cm->secrets[i].key);
			cm->secrets[i].key = sk[i];
		}
		free(sp);
		free(sk);
		if (rc)
			goto fail;
	}

	const char **k = malloc((n ? n : 1) * sizeof(*k));
	const char **v = malloc((n ? n : 1) * sizeof(*v));
	size_t *l = malloc((n ? n : 1) * sizeof(*l));
	if (!k || !v || !l) {
		free(k);
		free(v);
		free(l);
		rc = mg_error_oom(err);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		k[i] = cm->entries[i].key;
		v[i] = cm->entries[i].data;
		l[i] = cm->entries[i].len;
	}
	cm->size = mg_cm_size(k, l, n);
	mg_cm_checksum(cm->checksum, k, v, l, n);
	free(k);
	free(v);
	free(l);
	cm->name = opt->hash_suffix ? mg_str_printf("%s-%.10s", cm->base_name, cm->checksum)
	                            : strdup(cm->base_name);
	if (!cm->name) {
		rc = mg_error_oom(err);
		goto fail;
	}
	if (cm->size > MG_CM_MAX_BYTES) {
		rc = too_big(cm, err);
		goto fail;
	}
	if (p->oom) {
		rc = mg_error_oom(err);
		goto fail;
	}
	*out = cm;
	return 0;
fail:
	mg_cm_free(cm);
	return rc;
}
