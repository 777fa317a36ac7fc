/* What the files of lib/release/ share. Not part of the library's API. */
#ifndef MG_RELEASE_INTERNAL_H
#define MG_RELEASE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster.h"
#include "error.h"
#include "fleet.h"
#include "plan.h"
#include "state.h"

typedef struct {
	bool vms, k8s;          /* the sides rolled back */
	mg_kube_client *client; /* with k8s */
	const char *passphrase; /* for vms.identity_file, or NULL */
	bool accept_new_host_keys;
	const mg_cancel *cancel;
	const char *state_dir; /* for messages */
} mg_release_rebuild_options;

/*
 * rollback --release with no state recorded (rebuild.c): st's versions and
 * previous versions of the sides rolled back, read from the world: every
 * host's current link and releases/ (the previous release is the complete
 * one unpacked just before the live one), and the migrate/release and
 * migrate/previous-release annotations of the plan's Deployments. What
 * cannot be read back is MG_EINVALID naming what is missing (a host that
 * cannot be read, hosts on different releases, no release before, a
 * Deployment without the annotation); never a guess. how gets where each
 * side's versions came from, in words.
 */
int mg_release_rebuild(mg_state *st, char *how, size_t size, const mg_plan *plan,
                       const mg_release_rebuild_options *o, mg_error *err);

#endif
