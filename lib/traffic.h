/*
 * Traffic drivers: how much of the service's traffic the external load
 * balancer sends to the cluster. One small interface, one file per balancer
 * under lib/traffic/; nothing outside this header knows which one is in use.
 *
 * A driver moves weights and reads them back; the rules around it (never
 * report what was not read back, refuse to send traffic to servers that are
 * down) are in lib/traffic/traffic.c so every balancer follows them the same way.
 */
#ifndef MG_TRAFFIC_H
#define MG_TRAFFIC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "plan.h"

/*
 * Integer weights round, so shares this close count as the same: for the
 * read-back after a change, for drift, and for reconciling an interrupted one.
 */
#define MG_TRAFFIC_SAME_SHARE 0.5

/* Whether two shares (in percent) are the same as far as a balancer can tell. */
bool mg_traffic_same_share(double a, double b);

typedef enum {
	MG_HEALTH_UP,
	MG_HEALTH_DOWN,
	MG_HEALTH_MAINT,   /* drained or in maintenance by an operator */
	MG_HEALTH_UNKNOWN, /* the balancer does not tell (nginx open source) */
} mg_health;

typedef struct {
	char name[256]; /* HAProxy server, nginx host:port, Cloudflare pool id */
	bool k8s;       /* a cluster server (or pool), else a VM one */
	double weight;  /* as the balancer holds it: integers, or Cloudflare's 0..1 share */
	mg_health health;
	char detail[128]; /* the balancer's own words, e.g. "DOWN (L4CON)", "MAINT" */
} mg_traffic_server;

typedef struct {
	double k8s_percent; /* the share the read-back weights give the cluster */
	mg_traffic_server *servers;
	size_t nservers;
} mg_traffic_state;

typedef struct mg_traffic mg_traffic;

/* What every driver implements. */
typedef struct {
	const char *name;
	/* Reads the live weights and health. */
	int (*read)(void *drv, mg_traffic_state *out, mg_error *err);
	/* Sets the weights for k8s_percent in as few balancer calls as it can (one for HAProxy;
	 * a GET and one PATCH for Cloudflare, to keep its other pools). Does not read back;
	 * mg_traffic_apply() does. */
	int (*apply)(void *drv, double k8s_percent, mg_error *err);
	/* The exact calls apply would make, for --dry-run, with no secret in them. */
	int (*describe)(void *drv, double k8s_percent, json_t **out, mg_error *err);
	void (*free)(void *drv);
	/* Makes the balancer run what read() reports, after an apply that may have been cut
	 * short (nginx: the file renamed into place, the test and reload perhaps never run).
	 * NULL when a read is always what the balancer runs (HAProxy, Cloudflare). */
	int (*settle)(void *drv, mg_error *err);
} mg_traffic_ops;

/* Opens the driver for the plan's provider. Contacts nothing yet. */
int mg_traffic_open(mg_traffic **out, const mg_plan_traffic *plan, mg_error *err);
/*
 * Opens a handle over any driver: ops (name, read, apply and describe
 * required; ops must outlive the handle) called with drv, under the same
 * rules (health gate, read-back) as the plan's. On success the handle owns
 * drv (mg_traffic_free calls ops->free if set); on an error the caller still
 * does. For tests, which plug a fake balancer.
 */
int mg_traffic_open_driver(mg_traffic **out, const mg_traffic_ops *ops, void *drv, mg_error *err);
void mg_traffic_free(mg_traffic *t);
const char *mg_traffic_name(const mg_traffic *t);

int mg_traffic_read(mg_traffic_state *out, mg_traffic *t, mg_error *err);

/*
 * Before reading the balancer to reconcile an interrupted command: makes sure
 * what a read reports is what the balancer runs (nginx tests and reloads its
 * file again). Fails, changing nothing, when the balancer refuses it; 0 for
 * balancers whose reads are always live.
 */
int mg_traffic_settle(mg_traffic *t, mg_error *err);

/*
 * Moves the cluster's share to k8s_percent and reads it back. Refuses
 * (MG_ERROR, naming them) to raise the share of a side whose servers the
 * balancer reports DOWN or in maintenance, unless allow_unhealthy; a
 * rollback (towards the VMs) only needs one VM server up. Returns MG_ERROR
 * if the read-back share is more than 0.5 points from what was asked; *out
 * (may be NULL) is then still the read-back, as it is on success. Drivers
 * copy what they need from the plan at open.
 */
int mg_traffic_apply(mg_traffic_state *out, mg_traffic *t, double k8s_percent, bool allow_unhealthy,
                     mg_error *err);

int mg_traffic_describe(json_t **out, mg_traffic *t, double k8s_percent, mg_error *err);

void mg_traffic_state_clear(mg_traffic_state *st);
json_t *mg_traffic_state_to_json(const mg_traffic_state *st);
const char *mg_health_name(mg_health h);

/* Driver constructors (lib/traffic/<name>.c). */
int mg_traffic_haproxy_new(void **out, const mg_plan_haproxy *cfg, mg_error *err);
int mg_traffic_nginx_new(void **out, const mg_plan_nginx *cfg, mg_error *err);
int mg_traffic_cloudflare_new(void **out, const mg_plan_cloudflare *cfg, mg_error *err);
extern const mg_traffic_ops mg_traffic_haproxy_ops;
extern const mg_traffic_ops mg_traffic_nginx_ops;
extern const mg_traffic_ops mg_traffic_cloudflare_ops;

#endif
