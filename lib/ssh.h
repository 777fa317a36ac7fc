/*
 * One SSH connection to one host, through libssh2.
 *
 * A session belongs to the thread that opened it: libssh2 sessions are
 * never shared between threads, so the fleet runs one session per worker.
 * The host key is checked against known_hosts before any credential is
 * sent; a mismatch is always refused and shows both fingerprints, an
 * unknown host is refused unless the caller asked to accept new keys (and
 * then it is recorded, as `ssh -o StrictHostKeyChecking=accept-new` does).
 *
 * Every call is bounded: connect and handshake by connect_timeout, each
 * command and upload by its own timeout, and each returns MG_ECANCELED soon
 * after *cancel becomes non-zero. Keepalives go out while a long command runs.
 */
#ifndef MG_SSH_H
#define MG_SSH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"

typedef struct mg_ssh mg_ssh;

typedef enum {
	MG_SSH_HOSTKEY_STRICT,     /* unknown or changed: refused */
	MG_SSH_HOSTKEY_ACCEPT_NEW, /* unknown: recorded and accepted; changed: refused */
} mg_ssh_hostkey_policy;

typedef struct {
	const char *name;    /* the host as the operator knows it, for messages */
	const char *address; /* what is connected to and looked up in known_hosts */
	int port;
	const char *user;
	const char *identity_file; /* private key; NULL to use ssh-agent */
	const char *passphrase;    /* for identity_file, or NULL */
	const char *known_hosts;   /* path; must exist unless the policy accepts new keys */
	mg_ssh_hostkey_policy hostkey_policy;
	int64_t connect_timeout_ms; /* TCP connect, banner, key exchange and authentication */
	int keepalive_s;            /* 0: none */
	const mg_cancel *cancel;    /* may be NULL */
} mg_ssh_options;

/*
 * Connects, verifies the host key and authenticates. Errors name the host
 * and the stage: "vm-01 (127.0.1.1:22): host key mismatch: known_hosts
 * /root/.ssh/known_hosts has SHA256:..., the host sent SHA256:...; ...
 * remove the old key with ssh-keygen -f ... -R '127.0.1.1' ...".
 *
 * known_hosts is read as OpenSSH writes it (plain or hashed names, the host
 * as "[address]:port" unless the port is 22); lines libssh2 cannot parse are
 * skipped. A key on a @revoked line is refused for any host; a host named
 * only by a @cert-authority line is refused (host certificates cannot be
 * checked), also under ACCEPT_NEW. The host
 * key types known_hosts has for the host are asked for first, as OpenSSH
 * does. Accepting a new key appends "[address]:port type key" to the file
 * (created 0600 if missing), once, however many threads or processes do it
 * at the same time. Host names are resolved with getaddrinfo on a thread of
 * its own, bounded by the connect timeout and *cancel (a lookup given up on
 * finishes, and is freed, in the background). With identity_file NULL, ssh-agent is
 * asked through SSH_AUTH_SOCK.
 */
int mg_ssh_connect(mg_ssh **out, const mg_ssh_options *opt, mg_error *err);
void mg_ssh_free(mg_ssh *s); /* disconnects; NULL is fine */

/* "SHA256:<base64>" of the key the host presented, as OpenSSH prints it. */
const char *mg_ssh_host_fingerprint(const mg_ssh *s);

typedef struct {
	int exit_status; /* -1 if the wrapper on the host died of a signal */
	char *out;       /* stdout, NUL-terminated, at most MG_SSH_MAX_OUTPUT bytes kept */
	size_t out_len;
	char *err; /* stderr, the same */
	size_t err_len;
} mg_ssh_result;

#define MG_SSH_MAX_OUTPUT (64 * 1024)

/*
 * Runs one command through the remote user's shell, inside a wrapper (see
 * lib/fleet/command.c) that runs it in a process group of its own, kills that group
 * when the channel goes away, and prints the exit status on a line of its
 * own (cut from out). Returns 0 when the command ran to the end, whatever
 * its exit status (the caller decides what a status means; a command killed
 * by signal N has 128 + N); MG_ERROR on a transport failure or timeout, and
 * when the host reported no exit status (no status line, no exit-signal:
 * the session stays usable then); MG_ECANCELED when *cancel was set. On
 * failure *out holds nothing (freeing it is still fine). After a timeout or
 * cancel the session is unusable (every later call fails at once, only
 * mg_ssh_free is left) and its connection is shut at once, so the wrapper
 * on the host ends what the command started (TERM, then KILL 2 s later).
 */
int mg_ssh_exec(mg_ssh_result *out, mg_ssh *s, const char *command, int64_t timeout_ms,
                mg_error *err);
void mg_ssh_result_clear(mg_ssh_result *r);

/*
 * Copies a local file to remote_path over SFTP with large pipelined writes,
 * in place (write to a temporary name and rename it for an atomic switch),
 * and sets its mode, also when the file already existed. A failure leaves
 * remote_path partly written; the session stays usable unless the host
 * stopped answering.
 */
int mg_ssh_upload(mg_ssh *s, const char *local_path, const char *remote_path, long mode,
                  int64_t timeout_ms, mg_error *err);

/*
 * A string as one word for a POSIX shell: 'it'\''s'. Every value put into
 * a remote command goes through this. Returns a new string (NULL on ENOMEM).
 */
char *mg_ssh_quote(const char *s);

#endif
