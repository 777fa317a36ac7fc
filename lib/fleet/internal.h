/*
 * Shared between the files of lib/fleet/: the worker pool (fleet.c), one
 * host's stages (host.c), and the SSH session: connecting and authenticating
 * (session.c), host keys and known_hosts (hostkey.c), commands and uploads
 * (command.c). Not part of the library's API.
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
/*
 * The pool: min(parallel, n) threads (at least one) running fn(arg), joined
 * before it returns; fn takes its work off a queue in arg. With no thread at
 * all, fn runs in the caller's: slower, but done.
 */
void mg_fleet_pool(int parallel, size_t n, void *(*fn)(void *), void *arg);

/* ---- the SSH session ---- */

#include <libssh2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "ssh.h"

/* How long tearing down may wait for a host that no longer answers. */
#define TEARDOWN_MS 1000

struct mg_ssh {
	LIBSSH2_SESSION *session;
	int fd;
	char label[320];      /* "vm-01 (127.0.1.1:22)", the prefix of every message */
	char fingerprint[64]; /* of the host key, once the handshake is done */
	const mg_cancel *cancel;
	int keepalive_s;
	bool authenticated;
	bool broken; /* a timeout, cancel or protocol error mid-call: only mg_ssh_free is safe */
};

/* libssh2's last error message for the session. */
const char *mg_ssh_errmsg(const mg_ssh *s);
/* MG_ECANCELED or MG_ERROR (timed out) with the message, or 0 to go on. */
int mg_ssh_check_stop(mg_ssh *s, int64_t deadline, int64_t budget_ms, const char *what,
                      mg_error *err);
/*
 * Waits a short slice for the socket to be ready in the direction libssh2 is
 * blocked on, sending a keepalive when one is due; then 0 (call libssh2
 * again), or why to stop.
 */
int mg_ssh_wait_socket(mg_ssh *s, int64_t deadline, int64_t budget_ms, const char *what,
                       mg_error *err);

/*
 * Runs one command (host.c); its exit status must be 0. out (may be NULL)
 * gets the result, to be freed by the caller also on failure. The error
 * carries the scrubbed tail of the command's output.
 */
int mg_fleet_run_cmd(mg_ssh_result *out, mg_ssh *s, const char *cmd, int64_t timeout_ms,
                     const char *what, mg_error *e);
/* The release a link points at: "releases/V" (or .../releases/V) gives V; else "". */
void mg_fleet_link_release(char *dst, size_t size, const char *link);

/* ---- hostkey.c ---- */

/*
 * Reads known_hosts one line at a time, skipping the lines libssh2 cannot
 * parse; *missing when the file does not exist (an empty set).
 */
int mg_ssh_load_known_hosts(LIBSSH2_KNOWNHOSTS **out, mg_ssh *s, const char *path, bool *missing,
                            mg_error *err);
/* The host's name as known_hosts writes it: "address", or "[address]:port". */
void mg_ssh_known_hosts_name(char *out, size_t size, const mg_ssh_options *o);
/* Asks the handshake for the key types known_hosts holds for name first. */
void mg_ssh_prefer_known_hostkeys(mg_ssh *s, LIBSSH2_KNOWNHOSTS *kh, const char *name);
/* After the handshake: the host's key against known_hosts; sets s->fingerprint. */
int mg_ssh_check_host_key(mg_ssh *s, const mg_ssh_options *o, LIBSSH2_KNOWNHOSTS *kh,
                          bool kh_missing, const char *name, mg_error *err);

#endif
