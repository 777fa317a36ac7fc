/*
 * lib/ssh.h over libssh2.
 *
 * Everything after the TCP connect runs with the session in non-blocking
 * mode and one poll loop (wait_socket), because that is the only way libssh2
 * lets a call be bounded by our own deadline and stopped by *cancel: its
 * blocking mode with libssh2_session_set_timeout can do the first but not the
 * second. Blocking mode with a short timeout is used only where nothing needs
 * cancelling: talking to ssh-agent over its local socket, and tearing down.
 *
 * A command that timed out or was cancelled leaves its channel in a state
 * libssh2 1.10 cannot get out of quickly (it has no way to signal the remote
 * process, and sshd does not close a channel whose command still runs), so
 * the session is marked broken and its connection shut: later calls fail at
 * once, and the exec wrapper's watchdog on the host (see wrapper_fmt) sees
 * the channel go and kills the command's process group.
 *
 * This file connects and authenticates; hostkey.c checks host keys,
 * command.c runs commands and uploads.
 */
#include "clock.h"
#include "ssh.h"

#include "internal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The longest poll between two looks at *cancel and the deadline. */
#define SLICE_MS 100

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh2(void)
{
	init_rc = libssh2_init(0);
}

/* "250 ms" or "2.5 s", for messages. */
static const char *duration(char *buf, size_t size, int64_t ms)
{
	if (ms < 1000)
		snprintf(buf, size, "%lld ms", (long long)ms);
	else
		snprintf(buf, size, "%.1f s", (double)ms / 1000);
	return buf;
}

const char *mg_ssh_errmsg(const mg_ssh *s)
{
	char *msg = NULL;
	int len = 0;
	libssh2_session_last_error(s->session, &msg, &len, 0);
	return msg && *msg ? msg : "unknown libssh2 error";
}

/* ---- waiting ---- */

/* MG_ECANCELED or MG_ERROR (timed out) with the message, or 0 to go on. */
int mg_ssh_check_stop(mg_ssh *s, int64_t deadline, int64_t budget_ms, const char *what,
                      mg_error *err)
{
	char d[32];
	if (s->cancel && *s->cancel)
		return mg_error_set(err, MG_ECANCELED, "%s: canceled during %s", s->label, what);
	if (mg_clock_ms() >= deadline)
		return mg_error_set(err, MG_ERROR, "%s: %s timed out after %s", s->label, what,
		                    duration(d, sizeof(d), budget_ms));
	return 0;
}

/*
 * Waits at most SLICE_MS for the socket to be ready in the direction libssh2
 * is blocked on, sending a keepalive when one is due; then 0 (call libssh2
 * again), or why to stop.
 */
int mg_ssh_wait_socket(mg_ssh *s, int64_t deadline, int64_t budget_ms, const char *what,
                       mg_error *err)
{
	int rc = mg_ssh_check_stop(s, deadline, budget_ms, what, err);
	if (rc)
		return rc;
	int64_t left = deadline - mg_clock_ms();
	int timeout = left < SLICE_MS ? (int)left : SLICE_MS;
	if (s->authenticated && s->keepalive_s > 0) {
		/* sends only when one is due; a slice is far shorter than any interval */
		int next = 0;
		libssh2_keepalive_send(s->session, &next);
	}
	int dir = libssh2_session_block_directions(s->session);
	short events = 0;
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		events |= POLLIN;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		events |= POLLOUT;
	/* libssh2 asked to be called again without waiting on the socket (it has data
	   of its own to go through): a short pause only, not a whole slice */
	if (!events && timeout > 1)
		timeout = 1;
	struct pollfd p = {s->fd, events ? events : POLLIN, 0};
	poll(&p, 1, timeout > 0 ? timeout : 0);
	return 0;
}

/* ---- connecting ---- */

/*
 * A name resolution on a thread of its own: getaddrinfo cannot be bounded
 * or interrupted (a DNS server that never answers holds it for the
 * resolver's whole timeout and retries), so the caller waits only as long
 * as it wants and walks away; whoever of the two is last frees the job.
 */
typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool done;
	int rc;
	struct addrinfo *res;
	char host[256], port[16];
} resolve_job;

static void resolve_release(resolve_job *j)
{
	pthread_mutex_lock(&j->mu);
	int left = --j->refs;
	pthread_mutex_unlock(&j->mu);
	if (left)
		return;
	if (j->res)
		freeaddrinfo(j->res);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static const struct addrinfo resolve_hints = {
    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};

static void *resolve_thread(void *arg)
{
	resolve_job *j = arg;
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(j->host, j->port, &resolve_hints, &res);
	pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->res = res;
	j->done = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	resolve_release(j);
	return NULL;
}

/* getaddrinfo bounded by the deadline and *cancel; 0 or the error, with *res to free. */
static int resolve(struct addrinfo **res, mg_ssh *s, const mg_ssh_options *o, const char *port,
                   int64_t deadline, int64_t budget_ms, mg_error *err)
{
	*res = NULL;
	/* an address needs no lookup: no thread */
	struct addrinfo hints = resolve_hints;
	hints.ai_flags |= AI_NUMERICHOST;
	if (getaddrinfo(o->address, port, &hints, res) == 0)
		return 0;
	*res = NULL;
	resolve_job *j = calloc(1, sizeof(*j));
	if (!j || strlen(o->address) >= sizeof(j->host)) {
		free(j);
		return mg_error_set(err, j ? MG_EINVALID : MG_ENOMEM, "%s: cannot resolve %s: %s",
		                    s->label, o->address, j ? "name too long" : "out of memory");
	}
	snprintf(j->host, sizeof(j->host), "%s", o->address);
	snprintf(j->port, sizeof(j->port), "%s", port);
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	j->refs = 2;
	pthread_attr_t attr;
	pthread_t t;
	bool started = false;
	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		started = pthread_create(&t, &attr, resolve_thread, j) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!started) {
		/* no thread to be had: resolve here, unbounded, rather than not at all */
		j->refs = 1;
		j->rc = getaddrinfo(j->host, j->port, &resolve_hints, &j->res);
		j->done = true;
	}
	char d[32];
	int rc = 0;
	pthread_mutex_lock(&j->mu);
	while (!j->done) {
		if (s->cancel && *s->cancel) {
			rc = mg_error_set(err, MG_ECANCELED, "%s: canceled while resolving %s",
			                  s->label, o->address);
			break;
		}
		int64_t left = deadline - mg_clock_ms();
		if (left <= 0) {
			rc =
			    mg_error_set(err, MG_ERROR,
			                 "%s: resolving %s timed out after %s (the name servers in "
			                 "/etc/resolv.conf did not answer in time)",
			                 s->label, o->address, duration(d, sizeof(d), budget_ms));
			break;
		}
		struct timespec ts;
		mg_clock_abstime(&ts, left < SLICE_MS ? left : SLICE_MS);
		pthread_cond_timedwait(&j->cv, &j->mu, &ts);
	}
	if (!rc && j->rc != 0)
		rc = mg_error_set(err, MG_ERROR, "%s: cannot resolve %s: %s", s->label, o->address,
		                  gai_strerror(j->rc));
	else if (!rc) {
		*res = j->res;
		j->res = NULL;
	}
	pthread_mutex_unlock(&j->mu);
	resolve_release(j);
	return rc;
}

static int tcp_connect(mg_ssh *s, const mg_ssh_options *o, int64_t deadline, int64_t budget_ms,
                       mg_error *err)
{
	struct addrinfo *res = NULL;
	char port[16], why[256] = "no address", d[32];
	snprintf(port, sizeof(port), "%d", o->port);
	int rc = resolve(&res, s, o, port, deadline, budget_ms, err);
	if (rc)
		return rc;
	for (struct addrinfo *ai = res; ai && s->fd < 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		                ai->ai_protocol);
		if (fd < 0) {
			snprintf(why, sizeof(why), "%s", strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			s->fd = fd;
			break;
		}
		if (errno != EINPROGRESS) {
			snprintf(why, sizeof(why), "%s", strerror(errno));
			close(fd);
			continue;
		}
		for (;;) {
			if (s->cancel && *s->cancel) {
				close(fd);
				freeaddrinfo(res);
				return mg_error_set(err, MG_ECANCELED,
				                    "%s: canceled while connecting", s->label);
			}
			int64_t left = deadline - mg_clock_ms();
			if (left <= 0) {
				snprintf(why, sizeof(why), "no answer within %s",
				         duration(d, sizeof(d), budget_ms));
				close(fd);
				fd = -1;
				break;
			}
			struct pollfd p = {fd, POLLOUT, 0};
			if (poll(&p, 1, left < SLICE_MS ? (int)left : SLICE_MS) <= 0)
				continue;
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
			if (soerr == 0) {
				s->fd = fd;
			} else {
				snprintf(why, sizeof(why), "%s", strerror(soerr));
				close(fd);
			}
			break;
		}
		if (mg_clock_ms() >= deadline)
			break;
	}
	freeaddrinfo(res);
	if (s->fd < 0)
		return mg_error_set(err, MG_ERROR, "%s: cannot connect: %s", s->label, why);
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/*
 * Reads known_hosts one line at a time: libssh2_knownhost_readfile gives up
 * at the first line it cannot parse, and one line it does not understand (a
 * newer key type) must not make every host unknown. *missing when the file
 * does not exist (an empty set).
 */

/* ---- authentication ---- */

/*
 * libssh2 1.10 signs only with ssh-rsa (SHA-1), which OpenSSH 8.8 and later
 * refuse, so an RSA key fails as "refused" although it is authorized: tell
 * the operator why. The key type is in the .pub beside the key, or in the
 * header of an old PEM key.
 */
static bool key_is_rsa(const char *identity_file)
{
	char pub[4096], head[64] = "";
	bool rsa = false;
	snprintf(pub, sizeof(pub), "%s.pub", identity_file);
	FILE *f = fopen(pub, "r");
	if (f) {
		rsa = fgets(head, sizeof(head), f) && strncmp(head, "ssh-rsa ", 8) == 0;
		fclose(f);
		return rsa;
	}
	if ((f = fopen(identity_file, "r"))) {
		rsa = fgets(head, sizeof(head), f) && strstr(head, "BEGIN RSA PRIVATE KEY");
		fclose(f);
	}
	return rsa;
}

static int auth_key_file(mg_ssh *s, const mg_ssh_options *o, int64_t deadline, int64_t budget,
                         mg_error *err)
{
	if (access(o->identity_file, R_OK) != 0)
		return mg_error_set(err, MG_EIO,
		                    "%s: authentication as %s failed: cannot read the key %s: %s",
		                    s->label, o->user, o->identity_file, strerror(errno));
	int rc;
	/* no public key file: libssh2 derives it from the private key */
	while ((rc = libssh2_userauth_publickey_fromfile_ex(
	            s->session, o->user, (unsigned)strlen(o->user), NULL, o->identity_file,
	            o->passphrase)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, budget, "authentication", err)))
			return rc;
	if (rc == 0)
		return 0;
	if (rc == LIBSSH2_ERROR_FILE)
		return mg_error_set(
		    err, MG_ERROR,
		    "%s: authentication as %s failed: cannot use the key %s (%s): a "
		    "wrong or missing passphrase, or a key format libssh2 cannot read",
		    s->label, o->user, o->identity_file, mg_ssh_errmsg(s));
	if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
		char hint[256];
		if (key_is_rsa(o->identity_file))
			snprintf(hint, sizeof(hint),
			         "it is an RSA key, which libssh2 1.10 signs with SHA-1 (ssh-rsa) "
			         "and OpenSSH 8.8 and later refuse: use an ed25519 or ECDSA key");
		else
			snprintf(hint, sizeof(hint),
			         "is its public key in ~%s/.ssh/authorized_keys on the host?",
			         o->user);
		return mg_error_set(
		    err, MG_ERROR,
		    "%s: authentication as %s failed: the server refused the key %s; %s", s->label,
		    o->user, o->identity_file, hint);
	}
	return mg_error_set(err, MG_ERROR, "%s: authentication as %s with the key %s failed: %s",
	                    s->label, o->user, o->identity_file, mg_ssh_errmsg(s));
}

/*
 * ssh-agent answers over a local socket that libssh2 reads in blocking mode
 * whatever the session's mode, so the whole exchange runs blocking, bounded
 * by what is left of the connect timeout.
 */
static int auth_agent(mg_ssh *s, const mg_ssh_options *o, int64_t deadline, mg_error *err)
{
	const char *sock = getenv("SSH_AUTH_SOCK");
	if (!sock || !*sock)
		return mg_error_set(err, MG_ERROR,
		                    "%s: authentication as %s failed: no identity_file, and no "
		                    "ssh-agent to ask (SSH_AUTH_SOCK is not set)",
		                    s->label, o->user);
	LIBSSH2_AGENT *agent = libssh2_agent_init(s->session);
	if (!agent)
		return mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
	int64_t left = deadline - mg_clock_ms();
	libssh2_session_set_blocking(s->session, 1);
	libssh2_session_set_timeout(s->session, left > 1 ? (long)left : 1);
	int rc = 0, tried = 0;
	bool ok = false;
	if (libssh2_agent_connect(agent) != 0) {
		rc = mg_error_set(
		    err, MG_ERROR,
		    "%s: authentication as %s failed: cannot reach ssh-agent at %s: %s", s->label,
		    o->user, sock, mg_ssh_errmsg(s));
	} else if (libssh2_agent_list_identities(agent) != 0) {
		rc = mg_error_set(
		    err, MG_ERROR,
		    "%s: authentication as %s failed: ssh-agent did not list its keys: %s",
		    s->label, o->user, mg_ssh_errmsg(s));
	} else {
		struct libssh2_agent_publickey *id = NULL, *prev = NULL;
		while (!ok && libssh2_agent_get_identity(agent, &id, prev) == 0) {
			if (s->cancel && *s->cancel) {
				rc = mg_error_set(err, MG_ECANCELED,
				                  "%s: canceled during authentication", s->label);
				break;
			}
			if (mg_clock_ms() >= deadline)
				break;
			tried++;
			ok = libssh2_agent_userauth(agent, o->user, id) == 0;
			prev = id;
		}
		if (!ok && !rc && tried == 0)
			rc = mg_error_set(
			    err, MG_ERROR,
			    "%s: authentication as %s failed: ssh-agent has no keys (add "
			    "one with ssh-add, or set identity_file)",
			    s->label, o->user);
		else if (!ok && !rc)
			rc = mg_error_set(err, MG_ERROR,
			                  "%s: authentication as %s failed: the server refused %s "
			                  "ssh-agent key(s) it was offered",
			                  s->label, o->user, tried == 1 ? "the one" : "all the");
		libssh2_agent_disconnect(agent);
	}
	libssh2_agent_free(agent);
	libssh2_session_set_timeout(s->session, 0);
	libssh2_session_set_blocking(s->session, 0);
	return rc;
}

static int authenticate(mg_ssh *s, const mg_ssh_options *o, int64_t deadline, int64_t budget,
                        mg_error *err)
{
	/* one "none" request: it says which methods the server takes, for a useful refusal */
	char *methods;
	int rc;
	while (!(methods = libssh2_userauth_list(s->session, o->user, (unsigned)strlen(o->user))) &&
	       libssh2_session_last_errno(s->session) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, budget, "authentication", err)))
			return rc;
	if (!methods) {
		if (libssh2_userauth_authenticated(s->session))
			return 0;
		return mg_error_set(err, MG_ERROR, "%s: authentication as %s failed: %s", s->label,
		                    o->user, mg_ssh_errmsg(s));
	}
	if (!strstr(methods, "publickey"))
		return mg_error_set(
		    err, MG_ERROR,
		    "%s: authentication as %s failed: the server takes no public keys "
		    "(it offers: %s)",
		    s->label, o->user, methods);
	if (o->identity_file)
		return auth_key_file(s, o, deadline, budget, err);
	return auth_agent(s, o, deadline, err);
}

int mg_ssh_connect(mg_ssh **out, const mg_ssh_options *o, mg_error *err)
{
	*out = NULL;
	if (!o->address || !*o->address || !o->user || !*o->user || !o->known_hosts ||
	    o->port < 1 || o->port > 65535)
		return mg_error_set(
		    err, MG_EINVALID,
		    "ssh: an address, a port (1 to 65535), a user and a known_hosts "
		    "path are needed");
	pthread_once(&init_once, init_libssh2);
	if (init_rc != 0)
		return mg_error_set(err, MG_ERROR, "ssh: libssh2 failed to initialize (%d)",
		                    init_rc);
	mg_ssh *s = calloc(1, sizeof(*s));
	if (!s)
		return mg_error_set(err, MG_ENOMEM, "ssh: out of memory");
	s->fd = -1;
	s->cancel = o->cancel;
	s->keepalive_s = o->keepalive_s;
	s->broken = true; /* until connected: mg_ssh_free then waits for nothing */
	char hp[300];
	if (strchr(o->address, ':'))
		snprintf(hp, sizeof(hp), "[%s]:%d", o->address, o->port);
	else
		snprintf(hp, sizeof(hp), "%s:%d", o->address, o->port);
	if (o->name && *o->name && strcmp(o->name, o->address) != 0)
		snprintf(s->label, sizeof(s->label), "%s (%s)", o->name, hp);
	else
		snprintf(s->label, sizeof(s->label), "%s", hp);

	int64_t budget = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	int64_t deadline = mg_clock_ms() + budget;
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	bool kh_missing = false;
	char name[300];
	mg_ssh_known_hosts_name(name, sizeof(name), o);
	int rc = tcp_connect(s, o, deadline, budget, err);
	if (rc)
		goto fail;
	s->session = libssh2_session_init_ex(NULL, NULL, NULL, s);
	if (!s->session) {
		rc = mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
		goto fail;
	}
	libssh2_session_set_blocking(s->session, 0);
	if ((rc = mg_ssh_load_known_hosts(&kh, s, o->known_hosts, &kh_missing, err)))
		goto fail;
	if (kh_missing && o->hostkey_policy != MG_SSH_HOSTKEY_ACCEPT_NEW) {
		rc = mg_error_set(
		    err, MG_ERROR,
		    "%s: known_hosts %s does not exist, so no host is known; create it "
		    "with ssh-keyscan, or record new hosts with --accept-new-host-keys",
		    s->label, o->known_hosts);
		goto fail;
	}
	mg_ssh_prefer_known_hostkeys(s, kh, name);
	while ((rc = libssh2_session_handshake(s->session, s->fd)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = mg_ssh_wait_socket(s, deadline, budget, "the SSH handshake", err)))
			goto fail;
	if (rc) {
		rc = mg_error_set(err, MG_ERROR, "%s: SSH handshake failed: %s", s->label,
		                  mg_ssh_errmsg(s));
		goto fail;
	}
	if ((rc = mg_ssh_check_host_key(s, o, kh, kh_missing, name, err)))
		goto fail;
	libssh2_knownhost_free(kh);
	kh = NULL;
	if ((rc = authenticate(s, o, deadline, budget, err)))
		goto fail;
	if (s->keepalive_s > 0)
		libssh2_keepalive_config(s->session, 1, (unsigned)s->keepalive_s);
	s->authenticated = true;
	s->broken = false;
	*out = s;
	return 0;
fail:
	if (kh)
		libssh2_knownhost_free(kh);
	mg_ssh_free(s);
	return rc;
}

void mg_ssh_free(mg_ssh *s)
{
	if (!s)
		return;
	if (s->session) {
		/*
		 * A broken session's socket is shut first, so libssh2's goodbyes fail at
		 * once instead of waiting for a host that will not answer.
		 */
		if (s->broken && s->fd >= 0)
			shutdown(s->fd, SHUT_RDWR);
		libssh2_session_set_blocking(s->session, 1);
		libssh2_session_set_timeout(s->session, TEARDOWN_MS);
		if (!s->broken)
			libssh2_session_disconnect(s->session, "done");
		libssh2_session_free(s->session);
	}
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

const char *mg_ssh_host_fingerprint(const mg_ssh *s)
{
	return s->fingerprint;
}
