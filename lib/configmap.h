/*
 * A legacy nginx configuration tree as a Kubernetes ConfigMap.
 *
 * Three stages on a tree read by lib/nginxconf.h:
 *   lint    what breaks once nginx runs in a pod (secrets, log files, unix
 *           sockets, VM addresses, pinned process settings, paths the image
 *           must provide), each finding with its place and a fix;
 *   render  every file of the tree as a key of one ConfigMap, the volume
 *           projection (items) that gives nginx the original layout under
 *           the mount path, a content checksum, the 1 MiB limit;
 *   verify  the rendered files laid out as the pod sees them in a scratch
 *           directory and checked by the real `nginx -t`.
 *
 * Keys: a file's path relative to the tree with each '/' turned into '_'
 * and every byte outside [-._a-zA-Z0-9] into '-' ("conf.d/app.conf" ->
 * "conf.d_app.conf"). When two paths give the same key, the later path in
 * byte order gets "-2" ("-3", ...) before its extension, except that a
 * path that is a valid key itself always keeps it. Keys are never read back
 * into paths (the items do that), so the mapping only has to be unique and
 * stable for a given tree.
 *
 * Checksum: SHA-256 over the entries in byte order of their keys, each as
 * "<key length>:<key>,<value length>:<value>," (netstrings; binaryData
 * values as their raw bytes), lowercase hex. It covers content only: the
 * name, namespace and annotations do not change it.
 */
#ifndef MG_CONFIGMAP_H
#define MG_CONFIGMAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "nginxconf.h"

/* What the API server accepts: keys plus values of data and binaryData together. */
#define MG_CM_MAX_BYTES ((size_t)1024 * 1024)
/* Where the official nginx image reads its configuration. */
#define MG_CM_MOUNT_PATH "/etc/nginx"
/* Annotations on the rendered ConfigMap. */
#define MG_CM_ANNOTATION_CHECKSUM "migrate/checksum"
#define MG_CM_ANNOTATION_VERIFY   "migrate/nginx-test"

typedef enum { MG_CM_ERROR, MG_CM_WARNING, MG_CM_INFO } mg_cm_severity;

typedef struct {
	mg_cm_severity severity;
	const char *rule; /* static: "secret", "log-file", ... (docs/configmap.md) */
	const char *file; /* the file's path as the parser names it (borrowed from the tree) */
	int line;
	const char *directive; /* borrowed from the tree */
	char *message;
	const char *fix; /* what to do, one line; shared by findings with the same fix */
} mg_cm_finding;

/* One key of the ConfigMap. */
typedef struct {
	char *key;
	char *path;       /* where nginx finds it, relative to the mount path */
	char *source;     /* the file read */
	const char *data; /* as rendered (--fix-logs, include rewrites); NUL after the last byte */
	size_t len;
	size_t file;    /* its index in the parsed tree (mg_nginxconf_file) */
	bool binary;    /* not UTF-8: goes to binaryData, base64 */
	bool rewritten; /* data differs from the file */
} mg_cm_entry;

/* A file a directive names that belongs in a Secret; never read, never in the ConfigMap. */
typedef struct {
	char *pod_path;  /* absolute, where nginx opens it in the pod */
	char *source;    /* where it is on the VM (or in the tree) */
	char *key;       /* suggested key in the Secret */
	char *directive; /* the first directive naming it */
	char *file;
	int line;
	bool in_mount; /* under the mount path: projected with the ConfigMap */
} mg_cm_secret;

/* The outcome of mg_cm_verify(). */
typedef struct {
	bool ran;      /* nginx was run; false: skipped (reason says why) */
	bool ok;       /* nginx -t succeeded */
	int status;    /* its exit status (128+signal when killed) */
	char *reason;  /* why it did not run, or NULL */
	char *nginx;   /* the binary */
	char *version; /* "nginx/1.22.1" or NULL */
	char *command; /* as run, the scratch directory shown as <root> */
	/* what nginx printed, with the scratch directory removed from paths and secret material
	 * lint found (the words of a file left out as a secret, a data: key, the
	 * secure_link_secret word) shown as "<secret>" */
	char *output;
	char *summary; /* one line: "passed" / the first [emerg] line (of output, so masked) */
	char **notes;  /* what differs from the pod and why (overrides, placeholders) */
	size_t nnotes;
} mg_cm_verify_result;

typedef struct {
	const char *name;       /* the ConfigMap's name (before --hash-suffix) */
	const char *namespace_; /* NULL: none in the manifest */
	const char *mount_path; /* NULL: /etc/nginx */
	bool fix_logs;          /* access_log/error_log files become /dev/stdout, /dev/stderr */
	bool hash_suffix;       /* name-<hash10> and immutable: true */
	/*
	 * The Secret that provides the files secret directives name: with it,
	 * those directives are info (the operator has said where the files come
	 * from), not errors. NULL: "<name>-secret" in the suggestions.
	 */
	const char *secret;
} mg_cm_options;

typedef struct mg_cm_private mg_cm_private;

typedef struct {
	char *name;      /* final name: base, or base-<first 10 hex of checksum> */
	char *base_name; /* as asked */
	char *namespace_;
	char *mount_path;
	char *secret_name; /* the Secret for the secret files: as given, or <base name>-secret */
	bool secret_given; /* it was given (mg_cm_options.secret) */
	char *main_path;   /* the main file's path under the mount ("nginx.conf") */
	bool immutable;
	char checksum[65];
	size_t size; /* keys + values, as the API server counts */
	mg_cm_entry *entries;
	size_t nentries; /* sorted by key */
	mg_cm_finding *findings;
	size_t nfindings; /* in the order nginx reads the directives */
	mg_cm_secret *secrets;
	size_t nsecrets;
	char **socket_dirs; /* directories of unix sockets: an emptyDir each, shared */
	size_t nsocket_dirs;
	char **paths; /* root and alias paths the image must provide, unique, sorted */
	size_t npaths;
	mg_cm_verify_result verify; /* filled by mg_cm_verify() */
	mg_cm_private *priv;
} mg_cm;

/*
 * Lints conf and renders it. The result holds borrowed pointers into conf,
 * which must outlive it. Returns MG_EINVALID for a bad name or mount path,
 * and MG_ERROR when the ConfigMap would exceed MG_CM_MAX_BYTES (the message
 * names the size, the limit and the largest files); lint errors are
 * findings, not a failure. *out is set on success only.
 */
int mg_cm_build(mg_cm **out, const mg_nginxconf *conf, const mg_cm_options *opt, mg_error *err);
void mg_cm_free(mg_cm *cm);

/* Findings of one severity. */
size_t mg_cm_count(const mg_cm *cm, mg_cm_severity sev);
const char *mg_cm_severity_name(mg_cm_severity sev);

/* The natural key of a relative path (malloc'd), before collisions are resolved. */
char *mg_cm_key(const char *path);
/*
 * Keys for n distinct paths, unique: keys[i] for paths[i] (malloc'd); see
 * the top of this file for who keeps the natural key on a collision.
 */
int mg_cm_keys(char **keys, const char *const *paths, size_t n, mg_error *err);

/*
 * The checksum (see the top of this file) of n entries given as keys and
 * values in any order; what `${configmap.<name>.checksum}` expands to.
 */
void mg_cm_checksum(char hex[65], const char *const *keys, const char *const *values,
                    const size_t *lens, size_t n);
/* keys + values as the API server counts them. */
size_t mg_cm_size(const char *const *keys, const size_t *lens, size_t n);

/* The ConfigMap as YAML (one document, no "---"), and as a JSON object. */
char *mg_cm_yaml(const mg_cm *cm);
/*
 * The same YAML handed to write in pieces (at most 32 KB buffered), so a
 * large tree is never held twice; stops at the first non-zero return of
 * write and returns it, or MG_ENOMEM.
 */
int mg_cm_yaml_write(const mg_cm *cm, int (*write)(const char *data, size_t len, void *ud),
                     void *ud);
json_t *mg_cm_json(const mg_cm *cm);
/* The volume projection: [{"key": ..., "path": ...}], in key order. */
json_t *mg_cm_items_json(const mg_cm *cm);
/*
 * YAML to paste into the pod spec: the volume (a projected one with the
 * Secret when files belong there), emptyDirs for socket directories, and
 * the mounts, each line prefixed by `prefix` (e.g. "# "). With secrets,
 * also the kubectl command that creates the Secret from the files.
 */
char *mg_cm_mount_yaml(const mg_cm *cm, const char *prefix);

/*
 * Writes the rendered tree as the pod sees it under root (root + mount
 * path + each item's path) and runs `nginx -t` on it, filling cm->verify.
 * What the pod has that this machine lacks is simulated and listed in
 * notes: placeholder certificates (generated with openssl) and files for
 * the Secret's paths, absolute paths moved under root, directories the
 * image provides (logs, pid, temp), host names that do not resolve here
 * checked as 127.0.0.1, a `user` unknown here dropped. nginx is the binary
 * ("nginx" searched in PATH, then /usr/sbin); when it is not installed,
 * verify.ran is false and the reason says so (not an error). root NULL: a
 * fresh directory under $TMPDIR, removed after. timeout_ms bounds nginx.
 * Errors only for what prevents the check itself (MG_EIO).
 */
int mg_cm_verify(mg_cm *cm, const char *nginx, const char *root, long timeout_ms, mg_error *err);
/* Marks the check as not run, with the reason (e.g. "--no-verify"). */
void mg_cm_verify_skip(mg_cm *cm, const char *reason);

/* How long `nginx -t` may take in mg_cm_make. */
#define MG_CM_VERIFY_TIMEOUT_MS 30000

/*
 * mg_cm_build, then mg_cm_verify with nginx (bounded by
 * MG_CM_VERIFY_TIMEOUT_MS), or, when skip_verify gives a reason,
 * mg_cm_verify_skip with it. *out is set once built, also when the check
 * itself then fails (the caller frees it either way).
 */
int mg_cm_make(mg_cm **out, const mg_nginxconf *conf, const mg_cm_options *opt, const char *nginx,
               const char *skip_verify, mg_error *err);

/*
 * Whether the ConfigMap must not be applied: lint errors (unless
 * allow_errors), or nginx -t ran and failed.
 */
bool mg_cm_failed(const mg_cm *cm, bool allow_errors);

/* The findings as [{file, line, severity, rule, directive, message, fix}]; cm NULL: []. */
json_t *mg_cm_findings_json(const mg_cm *cm);
/* The check as {ran, ok, reason, version, command, summary, output, notes}. */
json_t *mg_cm_verify_json(const mg_cm_verify_result *v);
/* Why cm may not be applied: {name, file (source), findings, verify}. */
json_t *mg_cm_report_json(const mg_cm *cm, const char *source);
/*
 * The manifest for items (mg_cm_json objects; taken): the one object when
 * there is one, else a v1 List of them.
 */
json_t *mg_cm_list_json(json_t *items);
/*
 * The YAML comments above a manifest (malloc'd, each line "# ..."): the
 * source, size, checksum, the nginx -t verdict, lint counts, and the pod
 * snippet (mg_cm_mount_yaml).
 */
char *mg_cm_yaml_header(const mg_cm *cm, const char *source);

#endif
