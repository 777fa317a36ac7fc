/*
 * Shared between the files of lib/fleet/ (the worker pool in fleet.c, one
 * host's stages in host.c). Not part of the library's API.
 */
#ifndef MG_FLEET_INTERNAL_H
#define MG_FLEET_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleet.h"

static inline bool mg_fleet_canceled(const mg_cancel *cancel)
{
	return cancel && *cancel;
}

/* One run: its options and result, and the pool's queue (under mu). */
typedef struct {
	const mg_fleet_options *opt;
	mg_fleet_result *res;
	pthread_mutex_t mu;
	const size_t *queue;
	size_t nqueue, next;
	bool revert; /* the queue's hosts go back to their previous release */
	size_t batch;
	int active;
	size_t done;
} mg_fleet_run_ctx;

/* The progress callback for h; the caller holds R->mu. */
void mg_fleet_notify_locked(mg_fleet_run_ctx *R, const mg_fleet_host_result *h, bool finished,
                            bool reverting);
/* One host through every stage (and back to its previous release if it failed after its
 * switch); fills h. */
void mg_fleet_host_work(mg_fleet_run_ctx *R, mg_fleet_host_result *h);
/* A host that succeeded, in a batch that stopped the run: back to where it was. */
void mg_fleet_host_batch_revert(mg_fleet_run_ctx *R, mg_fleet_host_result *h);

#endif
