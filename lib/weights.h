/*
 * Integer server weights that give the cluster a share of traffic.
 *
 * Load balancers such as HAProxy and nginx take an integer weight per
 * server, not a percentage. A share like 10% with 2 VM servers and 1
 * cluster server becomes weight 9 on each VM server and 2 on the cluster
 * server: 2 / (9 + 9 + 2) = 10%. Every server of a kind gets the same weight
 * so the traffic inside each pool stays even.
 */
#ifndef MG_WEIGHTS_H
#define MG_WEIGHTS_H

#include <stddef.h>

#include "error.h"

typedef struct {
	int vm_weight;            /* for each VM server */
	int k8s_weight;           /* for each cluster server */
	double effective_percent; /* the cluster's share these weights actually give */
} mg_weights;

/* Limits that keep the arithmetic exact; far beyond any real pool or balancer. */
#define MG_WEIGHTS_MAX_SERVERS 1000000
#define MG_WEIGHTS_MAX_WEIGHT  1000000

/*
 * The weight ceiling every balancer driver and the plan check use: HAProxy's
 * documented maximum for `set weight`; nginx takes more but needs no finer steps,
 * and one ceiling keeps the plan's weight table true for every driver.
 */
#define MG_WEIGHTS_BALANCER_MAX 256

/*
 * Splits traffic so the nk8s cluster servers together get percent (0..100)
 * and the nvm VM servers the rest, with weights in 0..max_weight (HAProxy
 * allows 256). 0% gives the cluster weight 0 and 100% gives the VMs weight
 * 0; otherwise both weights are at least 1 and the pair is the one closest to
 * percent, the smallest (most readable) pair among equally close ones.
 *
 * Returns MG_EINVALID, with the closest share in the message, when no pair
 * comes within 0.5 percentage points, and for a zero server count, a percent
 * outside 0..100, or a count or max_weight beyond the limits above. out is
 * only written on success.
 */
int mg_weights_split(mg_weights *out, double percent, size_t nvm, size_t nk8s, int max_weight,
                     mg_error *err);

#endif
