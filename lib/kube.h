/*
 * The Kubernetes side: kubeconfig read the way kubectl reads it, a client
 * over lib/http.h, server-side apply, `kubectl rollout status`'s wait and a
 * dry-run diff. No secret from a kubeconfig (token, key, exec plugin output)
 * ever reaches a message or the log.
 */
#ifndef MG_KUBE_H
#define MG_KUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"

/* kubernetes.kubeconfig's value that asks for the in-cluster configuration (a file of that
 * name is "./in-cluster") */
#define MG_KUBE_IN_CLUSTER "in-cluster"

typedef struct {
	/*
	 * kubernetes.kubeconfig (like --kubeconfig: used alone), or MG_KUBE_IN_CLUSTER; NULL,
	 * as clientcmd: $KUBECONFIG (':'-separated, merged), else ~/.kube/config if it exists,
	 * else in-cluster when KUBERNETES_SERVICE_HOST and _PORT are set and the
	 * ServiceAccount token exists
	 */
	const char *kubeconfig;
	const char *context;     /* --context; NULL: current-context */
	const char *namespace_;  /* the plan's; NULL: the context's (in-cluster: the pod's), else
	                            "default" */
	int64_t timeout_ms;      /* per request; 0: 10 s */
	int64_t exec_timeout_ms; /* an exec credential plugin's run; 0: 30 s */
	int64_t deadline_ms;     /* one request, its retries and waits together; 0: 30 s */
	/* how long a token read from a file (tokenFile, in-cluster) is used before the file is
	 * read again, as the kubelet rotates it; 0: 60 s (client-go's). A 401 reads it at once. */
	int64_t token_reread_ms;
	/* NULL: /var/run/secrets/kubernetes.io/serviceaccount (tests point it elsewhere) */
	const char *serviceaccount_dir;
	const mg_cancel *cancel;
} mg_kube_config_options;

typedef struct {
	char *command; /* as written; resolved against the kubeconfig's directory if it has a '/' */
	char **args;
	size_t nargs;
	char **env; /* "NAME=value" */
	size_t nenv;
	char *api_version; /* client.authentication.k8s.io/v1 or v1beta1 */
	char *install_hint;
	char *dir;                 /* of the kubeconfig that defined it */
	bool provide_cluster_info; /* provideClusterInfo: true */
	/* then the JSON of KUBERNETES_EXEC_INFO's spec.cluster (server, CA data, the cluster's
	 * client.authentication.k8s.io/exec extension as config), built as client-go does */
	char *cluster_json;
} mg_kube_exec_config;

/* What one context resolves to. Every string is malloc'd; secrets are wiped when freed. */
typedef struct {
	char *files;        /* the kubeconfig file(s) read, ':'-separated, for messages */
	char *context;      /* its name */
	char *context_file; /* where it was defined */
	char *cluster, *user;
	char *namespace_; /* of the context, or NULL */
	char *server;
	char *ca_file; /* absolute */
	char *ca_pem;  /* certificate-authority-data, decoded */
	char *tls_server_name;
	bool insecure;                            /* insecure-skip-tls-verify: true */
	char *client_cert_file, *client_key_file; /* absolute */
	char *client_cert_pem, *client_key_pem;   /* *-data, decoded (secret) */
	char *token;                              /* secret */
	char *token_file; /* absolute; read by the client, again every minute and on a 401 */
	mg_kube_exec_config *exec;
	/* no kubeconfig: the pod's ServiceAccount (token_file, ca_file, namespace_ from its
	 * directory); files and context are "in-cluster", user NULL */
	bool in_cluster;
} mg_kube_config;

/*
 * Reads the kubeconfig(s) and resolves the context. Input errors (YAML,
 * unknown names, bad base64, both a file and its -data) are MG_EINVALID
 * with "file:line:col: key.path: what" in the message and a diagnostic.
 */
int mg_kube_config_load(mg_kube_config **out, const mg_kube_config_options *opts, mg_error *err);
void mg_kube_config_free(mg_kube_config *c);

/*
 * The in-cluster API server URL from KUBERNETES_SERVICE_HOST and _PORT's
 * values, as client-go joins them: "https://host:port", an IPv6 host
 * bracketed ("https://[fd00::1]:443"). MG_EINVALID when either is empty, the
 * host holds anything but a name's or an address's characters, or the port
 * is not 1 to 65535.
 */
int mg_kube_incluster_server(char *out, size_t size, const char *host, const char *port,
                             mg_error *err);

/* The environment an exec plugin sees for one run; only the test needs it directly. */
int mg_kube_exec_run(const mg_kube_exec_config *e, int64_t timeout_ms, char **token,
                     char **cert_pem, char **key_pem, int64_t *expires_unix, mg_error *err);

typedef struct mg_kube_client mg_kube_client;

int mg_kube_client_new(mg_kube_client **out, const mg_kube_config_options *opts, mg_error *err);
void mg_kube_client_free(mg_kube_client *c);
const char *mg_kube_client_namespace(const mg_kube_client *c);
const char *mg_kube_client_server(const mg_kube_client *c);
const char *mg_kube_client_context(const mg_kube_client *c);
/* True when the cluster's certificate is not verified: a command shows it prominently. */
bool mg_kube_client_insecure(const mg_kube_client *c);
/* How often an exec plugin ran for this client (its cache working shows here). */
int mg_kube_client_exec_runs(const mg_kube_client *c);

/* lib/kube/ only: the client's discovery cache ("group/version" -> APIResourceList). */
json_t *mg_kube_client_discovery_cache(mg_kube_client *c);

/*
 * One request to path (e.g. "/api/v1/namespaces/shop/configmaps/x"; with a
 * query). A 401 with an exec plugin runs it again, with a token file reads
 * it again, and retries once (a token file only if its token changed); a
 * 401 after that names where the credential came from. 2xx:
 * *out the parsed JSON (NULL for an empty body). Otherwise the Kubernetes
 * Status turned into a message starting with what ("apps/v1 Deployment
 * shop/web: 422 Invalid: ..."): 404 MG_ENOTFOUND, 409 MG_ECONFLICT, 400/422
 * MG_EINVALID, others MG_ERROR. *status (may be NULL) gets the HTTP status.
 */
int mg_kube_request(mg_kube_client *c, const char *method, const char *path,
                    const char *content_type, const char *body, const char *what, long *status,
                    json_t **out, mg_error *err);
int mg_kube_get(mg_kube_client *c, const char *path, const char *what, json_t **out, mg_error *err);
/* mg_kube_delete: with the plain verbs below */

/*
 * The object's URL path ("/apis/apps/v1/namespaces/shop/deployments/web"),
 * from the built-in kinds or API discovery (cached per client); namespace_
 * NULL: the object's, else the client's. *what gets "apps/v1 Deployment
 * shop/web" for messages.
 */
int mg_kube_object_path(mg_kube_client *c, const json_t *obj, char *path, size_t size, char *what,
                        size_t wsize, mg_error *err);

typedef struct {
	bool force;                /* take over fields other managers own */
	bool dry_run;              /* dryRun=All: validated and defaulted, nothing persisted */
	const char *field_manager; /* NULL: "migrate" */
} mg_kube_apply_options;

/* Server-side apply of one object; *result (may be NULL) the object as the server has it. */
int mg_kube_apply(mg_kube_client *c, const json_t *obj, const mg_kube_apply_options *o,
                  json_t **result, mg_error *err);

typedef void (*mg_kube_progress_fn)(const char *msg, void *ud);

typedef struct {
	const char *kind;   /* "Deployment" (NULL), "StatefulSet" or "DaemonSet" (apps/v1) */
	int64_t timeout_ms; /* the plan's rollout_timeout; 0: 5 min */
	int64_t poll_ms;    /* 0: 1 s */
	const mg_cancel *cancel;
	mg_kube_progress_fn progress; /* called when the status message changes; may be NULL */
	void *ud;
	/*
	 * May be NULL. A StatefulSet or DaemonSet with updateStrategy OnDelete has
	 * no rollout (kubectl refuses to wait for one): with this set it is true
	 * and 0 is returned (the reason went to progress); without, MG_ERROR.
	 */
	bool *not_waitable;
} mg_kube_rollout_options;

/*
 * Waits like `kubectl rollout status deployment/NAME` (statefulset/,
 * daemonset/ with o->kind). 0 once rolled out; MG_ERROR at once on a
 * Deployment's ProgressDeadlineExceeded, or when the timeout passes (naming
 * the object and what it still waits for); MG_ECANCELED when *cancel is raised.
 */
int mg_kube_rollout_wait(mg_kube_client *c, const char *namespace_, const char *name,
                         const mg_kube_rollout_options *o, mg_error *err);

/*
 * What applying obj would change: a server-side dry run against the live
 * object, ignoring server-managed metadata and status. *out_text lists
 * "  path: old -> new" lines ("(new)" when the object does not exist yet,
 * "(no changes)" when nothing would change); malloc'd.
 */
int mg_kube_diff(mg_kube_client *c, const json_t *obj, char **out_text, bool *changed,
                 mg_error *err);

/*
 * The plain verbs (lib/kube/objects.c), for objects migrate owns outright
 * (the state backend's Leases and ConfigMaps), as compare-and-swap: a create
 * never replaces, an update always names the version it was read at, a delete
 * may; a writer that lost a race gets MG_ECONFLICT and has overwritten
 * nothing. path is a URL path without the
 * server: a collection ("/apis/coordination.k8s.io/v1/namespaces/shop/leases")
 * for create and list, an object (".../leases/lock") for update and delete.
 *
 * Each is one mg_kube_request: the client's credentials and TLS, each
 * attempt bounded by mg_kube_config_options.timeout_ms (0: 10 s) and all
 * attempts together by the HTTP layer's deadline (30 s); 429 (Retry-After),
 * 5xx, timeouts and refused connections retried there. A write whose answer
 * was lost is sent again, so when its first attempt had landed the retry
 * answers 409 (a delete's: 404): MG_ECONFLICT means "not done by this call,
 * or done by an earlier attempt of it", and the caller re-reads either way
 * before deciding anything. Error messages name the object as the API server does
 * ("leases.coordination.k8s.io shop/lock: 409 Conflict: Operation cannot be
 * fulfilled on ...") and quote the server's Status message, scrubbed
 * (mg_scrub) like every answer of mg_kube_request.
 *
 * Codes: MG_ECONFLICT 409 (create: AlreadyExists; update: a stale
 * resourceVersion or uid; delete: a failed precondition), MG_ENOTFOUND 404
 * (the object, or the namespace on create), MG_EINVALID 400/422 (the server
 * refused the object, e.g. a ConfigMap over 1 MiB: "[]: Too long: must have
 * at most 1048576 bytes"; or a refusal here, before anything is sent),
 * MG_ECANCELED, MG_ERROR anything else (no answer in time, 401, 403, 5xx
 * after the retries).
 */

/* POST obj (metadata.name set, no resourceVersion) to the collection path; *out (may be
 * NULL) the object as created, with its resourceVersion and uid. */
int mg_kube_create(mg_kube_client *c, const char *path, const json_t *obj, json_t **out,
                   mg_error *err);

/*
 * PUT obj to the object path. obj must carry metadata.resourceVersion, the
 * version it was read at (MG_EINVALID otherwise, nothing sent: without one a
 * ConfigMap's update is unconditional). Pass the object as read, with its
 * metadata.uid: a Lease that was deleted meanwhile is then MG_ECONFLICT
 * rather than created anew (a PUT creates a missing Lease). *out (may be
 * NULL) the object as stored, with its new resourceVersion.
 */
int mg_kube_update(mg_kube_client *c, const char *path, const json_t *obj, json_t **out,
                   mg_error *err);

/*
 * Every object of the collection path that label_selector selects (NULL or "": all),
 * the selector as kubectl's -l takes it ("app.kubernetes.io/managed-by=migrate,
 * migrate/kind in (state,journal)"), escaped here. *items a new array of the objects,
 * in the server's order (by name), each with its apiVersion and kind; pages of 500
 * are followed with the server's continue token.
 */
int mg_kube_list(mg_kube_client *c, const char *path, const char *label_selector, json_t **items,
                 mg_error *err);

/*
 * DELETE the object path; with resource_version (may be NULL: unconditional)
 * only if it is still at that version (DeleteOptions preconditions), else
 * MG_ECONFLICT and nothing deleted. *out (may be NULL) the server's answer: a
 * Status, or the object when it still has finalizers to run.
 */
int mg_kube_delete(mg_kube_client *c, const char *path, const char *resource_version, json_t **out,
                   mg_error *err);

/*
 * The migration's lock as a coordination.k8s.io/v1 Lease (lib/kube/lease.c),
 * the way client-go's leaderelection takes and keeps one: whoever holds the
 * Lease and renewed it within its leaseDurationSeconds holds the lock; an
 * expired one is taken over; leaseTransitions counts the holders and is the
 * fencing token every state write carries. Every write names the
 * resourceVersion it was read at, so two contenders never both win.
 */
typedef struct {
	const char *namespace_; /* NULL: the client's */
	const char *name;       /* the Lease: one per migration */
	/* who is asking, as status and the exit-3 message show it:
	 * "user@host pid N command C", built by the caller */
	const char *holder;
	int lease_seconds; /* leaseDurationSeconds; at least 2 */
	int64_t (*now_ms)(
	    void); /* the dates written and compared; NULL: mg_now_ms (tests drive it) */
} mg_kube_lease_options;

/* A held Lease; it borrows the client, which must outlive it. */
typedef struct mg_kube_lease mg_kube_lease;

/*
 * Takes the Lease: creates it when absent, takes it over when its holder let
 * it expire (renewTime + leaseDurationSeconds not after now) or released it.
 * MG_ELOCKED when someone else holds it (the message names the holder and when
 * the lease expires), also when another contender won a race for it here (409:
 * read again, never overwritten); MG_EINVALID for bad options; the request
 * errors of mg_kube_request otherwise.
 */
int mg_kube_lease_acquire(mg_kube_lease **out, mg_kube_client *c, const mg_kube_lease_options *o,
                          mg_error *err);

/*
 * Takes the Lease whether or not its holder is alive (`migrate unlock --force`,
 * like `terraform force-unlock`). *displaced (may be NULL) gets the holder
 * whose lease was overwritten (scrubbed, control characters as spaces, cut to
 * 500 bytes), malloc'd, or NULL when it had none. A holder
 * renewing at the same moment is read again and overwritten (3 tries).
 */
int mg_kube_lease_force(mg_kube_lease **out, char **displaced, mg_kube_client *c,
                        const mg_kube_lease_options *o, mg_error *err);

/*
 * Writes a new renewTime at the version last written. MG_ECONFLICT "lost the
 * lock to X" when someone else took the Lease over (or it was deleted or
 * released): the caller must stop writing state.
 */
int mg_kube_lease_renew(mg_kube_lease *l, mg_error *err);

/*
 * Gives the Lease up at once, as client-go's ReleaseOnCancel: no holder,
 * leaseDurationSeconds 1, leaseTransitions kept; the next acquire needs no
 * wait. MG_ECONFLICT "lost the lock to X" when it was no longer ours (nothing
 * written). Without it, the Lease stays held until it expires.
 */
int mg_kube_lease_release(mg_kube_lease *l, mg_error *err);

/* leaseTransitions as this holder took the Lease: the fencing token. */
int64_t mg_kube_lease_token(const mg_kube_lease *l);
/* The holder identity this lease was taken with. */
const char *mg_kube_lease_holder(const mg_kube_lease *l);
/* Frees the handle; releases nothing (call mg_kube_lease_release first). NULL is fine. */
void mg_kube_lease_free(mg_kube_lease *l);

#endif
