/*
 * The migration plan: a YAML file loaded into a typed, validated model.
 *
 * The plan handle is opaque (it owns every string below); sections are
 * exposed as read-only structs so callers get types, not YAML. A section
 * that the file does not have is NULL: commands ask for what they need with
 * mg_plan_require() and get an error that names the missing section.
 *
 * The model knows nothing about load balancers, SSH or Prometheus; it only
 * states what the operator asked for.
 */
#ifndef MG_PLAN_H
#define MG_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct mg_plan mg_plan;

/* Limits on hostile or mistaken input, documented in docs/plan.md "Limits". */
#define MG_PLAN_MAX_BYTES       (4 << 20)  /* the plan file */
#define MG_PLAN_MAX_DEPTH       64         /* nested mappings and lists */
#define MG_PLAN_MAX_LINE        (64 << 10) /* bytes in one line */
#define MG_PLAN_MAX_ANCHORS     100        /* anchors (&name), and aliases (*name) */
#define MG_PLAN_MAX_ALIAS_NODES 10000      /* nodes repeated through aliases */
#define MG_PLAN_MAX_HOSTS       100000     /* vms.hosts or the inventory */

typedef struct {
	const char *repo;     /* absolute path, or NULL */
	const char *artifact; /* may contain ${version}; relative paths resolved */
	const char *image;    /* may contain ${version} */
} mg_plan_build;

typedef struct {
	const char *name;    /* how the operator refers to the host */
	const char *address; /* what we connect to (defaults to name) */
	int port;            /* defaults to 22 */
} mg_plan_host;

typedef struct {
	mg_plan_host *hosts; /* from vms.hosts or the inventory file */
	size_t nhosts;
	const char *inventory; /* absolute path, or NULL */
	const char *user;
	const char *identity_file; /* absolute path, or NULL for ssh-agent */
	const char *passphrase_env;
	const char *known_hosts; /* absolute path */
	const char *path;
	int keep_releases;
	int parallel;
	int batch_count;      /* batch as a host count, or 0 when given as a percentage */
	double batch_percent; /* batch as a percentage, or 0 */
	int max_failures;
	const char *activate;   /* NULL when nothing is run after the switch */
	const char *health_url; /* may contain ${host}; NULL when there is no health check */
	int64_t health_timeout_ms;
	int64_t connect_timeout_ms;
	int64_t command_timeout_ms;
} mg_plan_vms;

typedef struct {
	const char *key;
	const char *value; /* as written */
	bool is_string;    /* quoted or non-numeric in YAML: keeps its type when substituted */
} mg_plan_value;

typedef struct {
	const char *name;
	const char *from_nginx; /* absolute path */
} mg_plan_configmap;

typedef struct {
	const char *kubeconfig; /* absolute path, or NULL for KUBECONFIG / ~/.kube/config */
	const char *context;
	const char *namespace_;
	const char *templates; /* absolute path */
	mg_plan_value *values;
	size_t nvalues;
	mg_plan_configmap *configmaps;
	size_t nconfigmaps;
	int64_t rollout_timeout_ms;
	/* server-side apply with force: take over fields another field manager owns */
	bool force_conflicts;
} mg_plan_kubernetes;

/* Where the lock, state and journal live: the state section. */
typedef enum { MG_STATE_LOCAL, MG_STATE_KUBERNETES } mg_state_backend;

typedef struct {
	mg_state_backend backend; /* state.backend; default local */
	/*
	 * The cluster the kubernetes backend uses: each of state.kubernetes's
	 * keys, else the kubernetes section's (NULL: the kubeconfig's default).
	 */
	const char *kubeconfig; /* absolute path */
	const char *context;
	const char *namespace_;
	bool has_connection; /* state.kubernetes was given */
	int64_t lease_ms;    /* state.lease: how long a silent holder keeps the lock; >= 2 s */
} mg_plan_state;

typedef enum { MG_PROVIDER_HAPROXY, MG_PROVIDER_NGINX, MG_PROVIDER_CLOUDFLARE } mg_provider;

typedef struct {
	const char *socket;  /* unix socket path, or NULL */
	const char *address; /* host:port, or NULL */
	const char *backend;
	const char **vm_servers;
	size_t nvm_servers;
	const char **k8s_servers;
	size_t nk8s_servers;
	int64_t timeout_ms;
} mg_plan_haproxy;

typedef struct {
	const char *upstream_file; /* absolute path */
	const char *upstream;
	const char **vm_servers;
	size_t nvm_servers;
	const char **k8s_servers;
	size_t nk8s_servers;
	const char *test_command;
	const char *reload_command;
	int64_t command_timeout_ms; /* each of test_command and reload_command */
} mg_plan_nginx;

typedef struct {
	const char *account_id;
	const char *zone_id;
	const char *load_balancer_id;
	const char *vm_pool;
	const char *k8s_pool;
	const char *token_env;
	const char *token_file;
	const char *api_url;
	const char *ca_file;
	int64_t timeout_ms;
} mg_plan_cloudflare;

typedef struct {
	mg_provider provider;
	double *steps; /* percent sent to Kubernetes, strictly increasing, last is 100 */
	size_t nsteps;
	int64_t bake_ms;
	const mg_plan_haproxy *haproxy;       /* NULL unless present */
	const mg_plan_nginx *nginx;           /* NULL unless present */
	const mg_plan_cloudflare *cloudflare; /* NULL unless present */
} mg_plan_traffic;

typedef enum { MG_RED_HAPROXY, MG_RED_INGRESS_NGINX } mg_red_source;
typedef enum { MG_ON_FAILURE_ROLLBACK, MG_ON_FAILURE_PAUSE } mg_on_failure;

typedef struct {
	mg_red_source source;
	const char *backend; /* haproxy: the backend (proxy) label */
	const char *ingress; /* ingress-nginx: the ingress label */
	const char
	    *namespace_; /* ingress-nginx: the namespace label; defaults to kubernetes.namespace */
	const char **vm_servers; /* haproxy: defaults to traffic.haproxy.vm_servers */
	size_t nvm_servers;
	const char **k8s_servers; /* haproxy: defaults to traffic.haproxy.k8s_servers */
	size_t nk8s_servers;
	double max_error_rate;        /* ratio 0..1; < 0 when not set */
	int64_t max_latency_ms;       /* < 0 when not set */
	double max_latency_quantile;  /* ingress-nginx: the quantile max_latency bounds (0.99) */
	double max_error_rate_vs_vms; /* < 0 when not set */
} mg_plan_red;

typedef struct {
	const char *name;
	const char *query; /* may contain ${window} and ${interval} */
	bool has_min, has_max;
	double min, max;
	const char *baseline; /* NULL when there is none */
	double max_ratio;     /* with baseline */
} mg_plan_check;

typedef struct {
	const char *prometheus_url;
	const char *token_env;
	const char *token_file;
	const char *ca_file;
	int64_t prometheus_timeout_ms;
	int64_t interval_ms;
	int64_t window_ms;
	/* The judge's test period (judge.h): the longer of the window and traffic.bake, so the
	 * verdict that advances a step stands on all of its bake. */
	int64_t test_period_ms;
	long min_requests; /* a floor under the judge: fewer requests are never judged */
	double confidence; /* of every verdict on counts (judge.h): 0.95 */
	int failure_limit;
	mg_on_failure on_failure;
	const mg_plan_red *red; /* NULL unless present */
	mg_plan_check *checks;
	size_t nchecks;
} mg_plan_slo;

typedef enum {
	MG_NEED_BUILD = 1 << 0,
	MG_NEED_VMS = 1 << 1,
	MG_NEED_KUBERNETES = 1 << 2,
	MG_NEED_TRAFFIC = 1 << 3,
	MG_NEED_SLO = 1 << 4,
	MG_NEED_VMS_OR_KUBERNETES = 1 << 5,
} mg_plan_need;

typedef enum {
	/* Do not read files the plan names (inventory): for fuzzing and for tests of the pure
	   parser. */
	MG_PLAN_LOAD_NO_FS = 1 << 0,
} mg_plan_load_flags;

/*
 * Loads and validates a plan. On MG_EINVALID every problem found is in
 * err->diags (warnings may be there on success too). *out is set only on
 * success.
 */
int mg_plan_load(mg_plan **out, const char *path, unsigned flags, mg_error *err);

/* The same from memory; display_path names the file in diagnostics, base_dir resolves relative
 * paths. */
int mg_plan_load_buffer(mg_plan **out, const char *buf, size_t len, const char *display_path,
                        const char *base_dir, unsigned flags, mg_error *err);

void mg_plan_free(mg_plan *plan);

/* Fails with MG_EINVALID naming the first missing section, as "`<command>` needs ...". */
int mg_plan_require(const mg_plan *plan, unsigned needs, const char *command, mg_error *err);

const char *mg_plan_file(const mg_plan *plan); /* as given */
const char *mg_plan_dir(const mg_plan *plan);  /* absolute directory of the plan file */
const char *mg_plan_name(const mg_plan *plan);
const char *mg_plan_description(const mg_plan *plan); /* NULL if none */
const char *mg_plan_state_dir(const mg_plan *plan);   /* absolute; default <plan dir>/.migrate */

const mg_plan_build *mg_plan_build_section(const mg_plan *plan);
const mg_plan_vms *mg_plan_vms_section(const mg_plan *plan);
const mg_plan_kubernetes *mg_plan_kubernetes_section(const mg_plan *plan);
const mg_plan_traffic *mg_plan_traffic_section(const mg_plan *plan);
/* Never NULL: a plan without a state section has the local defaults. */
const mg_plan_state *mg_plan_state_section(const mg_plan *plan);
const mg_plan_slo *mg_plan_slo_section(const mg_plan *plan);

const char *mg_provider_name(mg_provider p);
const char *mg_red_source_name(mg_red_source s);
const char *mg_on_failure_name(mg_on_failure f);

/* Hosts per rolling batch for this fleet (at least 1). */
size_t mg_plan_vms_batch_size(const mg_plan_vms *vms);

/* The longest release name (mg_plan_check_version). */
#define MG_PLAN_VERSION_MAX 127

/*
 * A version as a release name: [A-Za-z0-9._+-], 1 to 127 characters, not
 * starting with '.' or '-'. 0, or -1 with why.
 */
int mg_plan_check_version(const char *v, char *why, size_t size);

#endif
