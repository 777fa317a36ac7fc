/*
 * Shared between the files of lib/kube/ (the kubeconfig loader and the
 * client both hold credentials). Not part of the library's API.
 */
#ifndef MG_KUBE_INTERNAL_H
#define MG_KUBE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "configmap.h"
#include "error.h"
#include "kube.h"
#include "template.h"

/* Overwrites a credential (NUL-terminated) before freeing it; NULL is a no-op. */
void mg_kube_wipe_free(char *s);

/* MG_ENOMEM with the one message every kube file gives for it. */
int mg_kube_oom(mg_error *err);

/* ---- in-cluster configuration (incluster.c) ---- */

/* The ServiceAccount directory the options name (or the real one). */
const char *mg_kube_incluster_dir(const mg_kube_config_options *o);
/* client-go's Possible(): both variables set and a token file (not a directory). */
bool mg_kube_incluster_possible(const mg_kube_config_options *o);
/* What is missing for in-cluster, for the error that says what was looked for. */
void mg_kube_incluster_looked(const mg_kube_config_options *o, char *buf, size_t size);
/* Fills c (server, CA, token file, namespace) from the environment and the directory. */
int mg_kube_incluster_load(mg_kube_config *c, const mg_kube_config_options *o, mg_error *err);

/* A growing string (the templates' substitution and YAML output); oom once a realloc failed. */
typedef struct {
	char *s;
	size_t len, cap;
	bool oom;
} mg_kube_sbuf;
void mg_kube_sb_add(mg_kube_sbuf *b, const char *s, size_t n);

/* Whether a template output string may go out unquoted and be read back as the same string. */
bool mg_kube_plain_safe(const char *s);

/*
 * mg_template_plan_vars_new for the cluster side (mg_cluster_render): the same
 * build, with errors that name the nginx tree rather than the references.
 */
int mg_kube_plan_vars_new(mg_template_plan_vars **out, const mg_plan *plan, const char *version,
                          mg_error *err);
/* The ConfigMap of the i-th kubernetes.configmaps entry, as built for the variables. */
const mg_cm *mg_kube_plan_vars_configmap(const mg_template_plan_vars *pv, size_t i);

/* ---- the state store in the cluster (store.c, store_journal.c) ---- */

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "journal.h"
#include "kube.h"
#include "store.h"

#define MANAGED_BY  "app.kubernetes.io/managed-by"
#define LABEL_PLAN  "migrate.dev/plan"
#define LABEL_KIND  "migrate.dev/kind"
#define LABEL_OPEN  "migrate.dev/open"
#define ANN_TOKEN   "migrate.dev/fencing-token"
#define ANN_WRITE   "migrate.dev/write-id"
#define ANN_HOLDER  "migrate.dev/holder"
#define JOURNAL_KEY "journal.jsonl"
#define CHUNK_MAX   (256 * 1024) /* far under the 1 MiB object limit, with room for metadata */
#define CHUNKS_MAX  1000000      /* the six digits of a chunk's name */

typedef struct mg_kube_store_impl {
	mg_kube_client *c;
	bool own_client;
	char *ns;
	char plan[64];
	char prefix[80];  /* migrate-<plan>: the Lease, and every ConfigMap's name starts so */
	char *collection; /* .../namespaces/NS/configmaps */
	char *lease_path; /* for probes */
	char holder[512]; /* ours, once locked */
	int lease_seconds;
	int64_t (*now_ms)(void);
	bool force_lock;      /* mg_kube_store_options.force_lock */
	char **displaced;     /* and where the holder it overwrote goes */
	mg_kube_lease *lease; /* non-NULL while we hold the lock */
	int64_t renewed_ms;   /* when the Lease was last written by us */
	/*
	 * Renewal in the background while the lock is held (when the store knows
	 * how to make a client of its own: renew_*): a deploy's fleet stage or a
	 * rollout wait writes nothing for minutes, and must keep the plan all the
	 * same. The Lease and lease_client are used under mu only.
	 */
	bool can_renew;
	char *r_kubeconfig, *r_context, *r_namespace;
	int64_t r_timeout_ms, r_deadline_ms;
	mg_kube_client *lease_client; /* the Lease's requests while held; NULL: c */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t renewer;
	bool renewing, stop, lost;
	char lost_msg[1024]; /* why the renewer gave up: the lock was taken over */
} mg_kube_store_impl;

typedef mg_kube_store_impl kstore;

const char *mg_kube_store_meta(const json_t *o, const char *sect, const char *key);
/* The fencing token a locked write stamped on the object; -1 when none did. */
int64_t mg_kube_store_token(const json_t *o);
/* MG_ECONFLICT when a newer holder of the lock stamped cur (what: for the message). */
int mg_kube_store_fence(const kstore *k, const json_t *cur, const char *what, mg_error *err);
/* A new ConfigMap of the store, stamped when fenced. */
json_t *mg_kube_store_cm_new(const kstore *k, const char *name, const char *kind, const char *key,
                             const char *text, bool fenced);
/* cur (deep-copied) with data {key: text}, stamped when fenced. */
json_t *mg_kube_store_rewrite(const kstore *k, const json_t *cur, const char *key, const char *text,
                              bool fenced);
/* The lock held, and renewed when a third of the lease went by. */
int mg_kube_store_renew_if_due(kstore *k, mg_error *err);
/* <collection>/<name>, malloc'd. */
char *mg_kube_store_path(const kstore *k, const char *name);
int mg_kube_store_journal_append(void *impl, json_t *record, mg_error *err);
int mg_kube_store_journal_append_many(void *impl, json_t *records, mg_error *err);
int mg_kube_store_journal_each(void *impl, const mg_journal_query *q, mg_journal_fn fn, void *ud,
                               size_t *out_skipped, mg_error *err);

#endif
