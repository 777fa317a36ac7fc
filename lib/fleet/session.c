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
 */
#include "clock.h"
#include "ssh.h"

#include "log.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
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

/* libssh2_sftp_write pipelines a large buffer as many packets in flight, so one read feeds it. */
#define UPLOAD_CHUNK (1024 * 1024)
/* The longest poll between two looks at *cancel and the deadline. */
#define SLICE_MS 100
/* How long tearing down may wait for a host that no longer answers. */
#define TEARDOWN_MS 1000
/* Starts the status line the exec wrapper prints after the command; a random nonce follows. */
#define EXIT_TOKEN "migrate-exit-status-"
/* How much of the end of stdout is kept to find that line in. */
#define EXIT_TAIL 96

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
/* Serializes appends to known_hosts between this process's workers (flock does it between
 * processes). */
static pthread_mutex_t known_hosts_lock = PTHREAD_MUTEX_INITIALIZER;

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

static const char *ssh_errmsg(const mg_ssh *s)
{
	char *msg = NULL;
	int len = 0;
	libssh2_session_last_error(s->session, &msg, &len, 0);
	return msg && *msg ? msg : "unknown libssh2 error";
}

/* ---- base64 and fingerprints ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of in into out (NUL-terminated; out must hold 4 * ceil(n / 3) + 1), '=' padding if pad. */
static void b64_encode(char *out, const uint8_t *in, size_t n, bool pad)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64chars[(v >> 6) & 63];
		else if (pad)
			out[o++] = '=';
		if (i + 2 < n)
			out[o++] = b64chars[v & 63];
		else if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
}

/* Decodes base64 text (padding optional); the length, or -1 if it is not base64 or too long. */
static long b64_decode(uint8_t *out, size_t cap, const char *in)
{
	uint32_t v = 0;
	int bits = 0;
	size_t o = 0;
	for (const char *p = in; *p && *p != '='; p++) {
		const char *c = strchr(b64chars, *p);
		if (!c)
			return -1;
		v = (v << 6) | (uint32_t)(c - b64chars);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (uint8_t)(v >> bits);
		}
	}
	return (long)o;
}

/* "SHA256:<base64 without padding>" of a key blob, as OpenSSH prints fingerprints. */
static void fingerprint_of(char out[64], const void *blob, size_t len)
{
	uint8_t digest[32];
	mg_sha256 c;
	mg_sha256_init(&c);
	mg_sha256_update(&c, blob, len);
	mg_sha256_final(&c, digest);
	memcpy(out, "SHA256:", 7);
	b64_encode(out + 7, digest, sizeof(digest), false);
}

/* The fingerprint of a known_hosts entry's key (base64 of the blob, as in the file). */
static void fingerprint_of_b64(char out[64], const char *key)
{
	static const size_t cap = 16384;
	uint8_t *blob = key ? malloc(cap) : NULL;
	long n = blob ? b64_decode(blob, cap, key) : -1;
	if (n > 0)
		fingerprint_of(out, blob, (size_t)n);
	else
		snprintf(out, 64, "(a key that cannot be decoded)");
	free(blob);
}

/* The key type a key blob names in its first field ("ssh-ed25519"), or "unknown". */
static void key_type_name(char *out, size_t size, const unsigned char *blob, size_t len)
{
	uint32_t n = len >= 4 ? (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
	                            (uint32_t)blob[2] << 8 | blob[3]
	                      : 0;
	if (n == 0 || n >= size || n > len - 4) {
		snprintf(out, size, "unknown");
		return;
	}
	memcpy(out, blob + 4, n);
	out[n] = '\0';
	for (uint32_t i = 0; i < n; i++)
		if (!((out[i] >= 'a' && out[i] <= 'z') || (out[i] >= '0' && out[i] <= '9') ||
		      out[i] == '-' || out[i] == '@' || out[i] == '.')) {
			snprintf(out, size, "unknown");
			return;
		}
}

/* ---- waiting ---- */

/* MG_ECANCELED or MG_ERROR (timed out) with the message, or 0 to go on. */
static int check_stop(mg_ssh *s, int64_t deadline, int64_t budget_ms, const char *what,
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
static int wait_socket(mg_ssh *s, int64_t deadline, int64_t budget_ms, const char *what,
                       mg_error *err)
{
	int rc = check_stop(s, deadline, budget_ms, what, err);
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
static int load_known_hosts(LIBSSH2_KNOWNHOSTS **out, mg_ssh *s, const char *path, bool *missing,
                            mg_error *err)
{
	*missing = false;
	*out = NULL;
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->session);
	if (!kh)
		return mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT) {
			*missing = true;
			*out = kh;
			return 0;
		}
		int e = errno;
		libssh2_knownhost_free(kh);
		return mg_error_set(err, MG_EIO, "%s: cannot read known_hosts %s: %s", s->label,
		                    path, strerror(e));
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int skipped = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		/* @revoked and @cert-authority lines are check_markers' (libssh2 cannot read them)
		 */
		if (line[strspn(line, " \t")] == '@')
			continue;
		if (libssh2_knownhost_readline(kh, line, (size_t)n, LIBSSH2_KNOWNHOST_FILE_OPENSSH))
			skipped++;
	}
	free(line);
	fclose(f);
	if (skipped)
		mg_log(MG_LOG_DEBUG, "%s: %d line(s) of %s that libssh2 cannot read were skipped",
		       s->label, skipped, path);
	*out = kh;
	return 0;
}

/*
 * How known_hosts names this host: bare on port 22, [address]:port otherwise,
 * as OpenSSH writes it. Looked up exactly (libssh2_knownhost_checkp with a
 * port would also take a bare-address line for any port, which OpenSSH never
 * does).
 */
static void known_hosts_name(char *out, size_t size, const mg_ssh_options *o)
{
	if (o->port == 22)
		snprintf(out, size, "%s", o->address);
	else
		snprintf(out, size, "[%s]:%d", o->address, o->port);
}

static int lookup(LIBSSH2_KNOWNHOSTS *kh, const char *name, const char *key, size_t len,
                  int keytype, struct libssh2_knownhost **found)
{
	return libssh2_knownhost_checkp(
	    kh, name, -1, key, len,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | keytype, found);
}

static const struct {
	const char *alg;
	int type;
} hostkey_algs[] = {
    {"ssh-ed25519", LIBSSH2_KNOWNHOST_KEY_ED25519},
    {"ecdsa-sha2-nistp256", LIBSSH2_KNOWNHOST_KEY_ECDSA_256},
    {"ecdsa-sha2-nistp384", LIBSSH2_KNOWNHOST_KEY_ECDSA_384},
    {"ecdsa-sha2-nistp521", LIBSSH2_KNOWNHOST_KEY_ECDSA_521},
    {"rsa-sha2-512", LIBSSH2_KNOWNHOST_KEY_SSHRSA},
    {"rsa-sha2-256", LIBSSH2_KNOWNHOST_KEY_SSHRSA},
    {"ssh-rsa", LIBSSH2_KNOWNHOST_KEY_SSHRSA},
    {"ssh-dss", LIBSSH2_KNOWNHOST_KEY_SSHDSS},
};

static int alg_keytype(const char *alg)
{
	for (size_t i = 0; i < sizeof(hostkey_algs) / sizeof(hostkey_algs[0]); i++)
		if (strcmp(alg, hostkey_algs[i].alg) == 0)
			return hostkey_algs[i].type;
	return 0;
}

/*
 * Asks for the host key types known_hosts already has for this host first,
 * as OpenSSH does: a host with an ed25519 and an ECDSA key, known by its
 * ed25519 key, would otherwise show its ECDSA key and look unknown.
 */
static void prefer_known_hostkeys(mg_ssh *s, LIBSSH2_KNOWNHOSTS *kh, const char *name)
{
	const char **algs = NULL;
	int n = libssh2_session_supported_algs(s->session, LIBSSH2_METHOD_HOSTKEY, &algs);
	if (n <= 0)
		return;
	char known[512] = "", other[512] = "";
	for (int i = 0; i < n; i++) {
		int t = alg_keytype(algs[i]);
		if (!t) /* a certificate type: no known_hosts line we read can vouch for it */
			continue;
		/* a one-byte key never matches: MISMATCH means a line of this type exists */
		int r = lookup(kh, name, "", 1, t, NULL);
		char *list = r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH ? known : other;
		size_t len = strlen(list);
		snprintf(list + len, 512 - len, "%s%s", len ? "," : "", algs[i]);
	}
	libssh2_free(s->session, algs);
	if (!known[0])
		return;
	char pref[1100];
	snprintf(pref, sizeof(pref), "%s%s%s", known, other[0] ? "," : "", other);
	libssh2_session_method_pref(s->session, LIBSSH2_METHOD_HOSTKEY, pref);
}

static int hostkey_to_known(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default:
		return 0;
	}
}

static int mismatch(mg_ssh *s, const mg_ssh_options *o, const char *name,
                    const struct libssh2_knownhost *found, mg_error *err)
{
	char known[64];
	fingerprint_of_b64(known, found ? found->key : NULL);
	return mg_error_set(
	    err, MG_ERROR,
	    "%s: host key mismatch: known_hosts %s has %s, the host sent %s; someone "
	    "may be intercepting the connection, or the host was reinstalled: if "
	    "it was, remove the old key with ssh-keygen -f %s -R '%s' and connect "
	    "again",
	    s->label, o->known_hosts, known, s->fingerprint, o->known_hosts, name);
}

/*
 * Records a new host key (ACCEPT_NEW). Looks again under the locks: another
 * worker, or another migrate, may have recorded this host meanwhile, and a
 * second line for it would be noise (or, with another key, a mismatch).
 * Appends rather than rewriting the file, so comments and lines libssh2
 * cannot read stay as they are.
 */
static int record_host_key(mg_ssh *s, const mg_ssh_options *o, const char *name, const char *key,
                           size_t len, int keytype, mg_error *err)
{
	char tname[64];
	key_type_name(tname, sizeof(tname), (const unsigned char *)key, len);
	pthread_mutex_lock(&known_hosts_lock);
	int rc = 0;
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	char *line = NULL;
	int fd = open(o->known_hosts, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = mg_error_set(err, MG_EIO, "%s: cannot record its host key in %s: %s", s->label,
		                  o->known_hosts, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX) != 0) {
		rc = mg_error_set(err, MG_EIO, "%s: cannot lock %s: %s", s->label, o->known_hosts,
		                  strerror(errno));
		goto out;
	}
	bool missing;
	if ((rc = load_known_hosts(&kh, s, o->known_hosts, &missing, err)))
		goto out;
	struct libssh2_knownhost *found = NULL;
	int r = lookup(kh, name, key, len, keytype, &found);
	if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		goto out;
	if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
		rc = mismatch(s, o, name, found, err);
		goto out;
	}
	size_t cap = strlen(name) + strlen(tname) + 4 * (len / 3 + 1) + 8;
	line = malloc(cap);
	if (!line) {
		rc = mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
		goto out;
	}
	/* a last line without its newline would swallow ours */
	struct stat st;
	char last = '\n';
	if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	size_t at = 0;
	if (last != '\n')
		line[at++] = '\n';
	at += (size_t)snprintf(line + at, cap - at, "%s %s ", name, tname);
	b64_encode(line + at, (const uint8_t *)key, len, true);
	at += strlen(line + at);
	line[at++] = '\n';
	ssize_t w = write(fd, line, at);
	if (w != (ssize_t)at) {
		rc = mg_error_set(err, MG_EIO, "%s: cannot record its host key in %s: %s", s->label,
		                  o->known_hosts, w < 0 ? strerror(errno) : "short write");
		goto out;
	}
	mg_log(MG_LOG_INFO, "%s: new host key %s %s recorded in %s", s->label, tname,
	       s->fingerprint, o->known_hosts);
out:
	free(line);
	if (kh)
		libssh2_knownhost_free(kh);
	if (fd >= 0)
		close(fd); /* releases the flock */
	pthread_mutex_unlock(&known_hosts_lock);
	return rc;
}

/*
 * Whether a known_hosts host list ("a,b,!c", with * and ? wildcards) names
 * this host, as OpenSSH matches it: any pattern matches and no negated one
 * does. Hashed entries (|1|...) cannot be matched here and never match.
 */
static bool hosts_match(const char *list, const char *name, const char *address)
{
	bool yes = false;
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", list);
	char *save = NULL;
	for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		bool neg = *p == '!';
		if (neg)
			p++;
		if (*p == '|')
			continue;
		bool m =
		    fnmatch(p, name, FNM_CASEFOLD) == 0 || fnmatch(p, address, FNM_CASEFOLD) == 0;
		if (m && neg)
			return false;
		yes |= m;
	}
	return yes;
}

/*
 * The marker lines of known_hosts, which libssh2 does not read. A key on a
 * @revoked line is refused for every host, whatever other lines say (a
 * revoked key is not trusted anywhere). *ca_line gets the number of the
 * first @cert-authority line naming this host, or 0: libssh2 cannot check
 * host certificates, so such a host is refused unless a plain line has its
 * key.
 */
static int check_markers(mg_ssh *s, const mg_ssh_options *o, const char *name, const char *key,
                         size_t len, int *ca_line, mg_error *err)
{
	*ca_line = 0;
	FILE *f = fopen(o->known_hosts, "re");
	if (!f)
		return 0; /* missing: load_known_hosts has said what that means */
	char *line = NULL;
	size_t cap = 0;
	int no = 0, rc = 0;
	uint8_t *blob = malloc(16384);
	if (!blob) {
		fclose(f);
		return mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
	}
	while (!rc && getline(&line, &cap, f) >= 0) {
		no++;
		char marker[32], hosts[1024], type[64], b64[16384];
		const char *p = line + strspn(line, " \t");
		if (*p != '@' ||
		    sscanf(p, "%31s %1023s %63s %16383s", marker, hosts, type, b64) != 4)
			continue;
		if (!strcmp(marker, "@revoked")) {
			long n = b64_decode(blob, 16384, b64);
			if (n == (long)len && memcmp(blob, key, len) == 0)
				rc = mg_error_set(
				    err, MG_ERROR,
				    "%s: the host's key %s %s is revoked: %s:%d marks it @revoked; the "
				    "host is refused whatever else known_hosts says. If the host was "
				    "given a new key, check its fingerprint and record it",
				    s->label, type, s->fingerprint, o->known_hosts, no);
		} else if (!strcmp(marker, "@cert-authority") && !*ca_line &&
		           hosts_match(hosts, name, o->address)) {
			*ca_line = no;
		}
	}
	free(blob);
	free(line);
	fclose(f);
	return rc;
}

static int check_host_key(mg_ssh *s, const mg_ssh_options *o, LIBSSH2_KNOWNHOSTS *kh,
                          bool kh_missing, const char *name, mg_error *err)
{
	size_t len = 0;
	int type = 0;
	const char *key = libssh2_session_hostkey(s->session, &len, &type);
	if (!key || !len)
		return mg_error_set(err, MG_ERROR, "%s: the host sent no host key", s->label);
	fingerprint_of(s->fingerprint, key, len);
	char tname[64];
	key_type_name(tname, sizeof(tname), (const unsigned char *)key, len);
	int keytype = hostkey_to_known(type);
	if (!keytype)
		return mg_error_set(err, MG_ERROR,
		                    "%s: host key of a type libssh2 cannot check (%s %s)", s->label,
		                    tname, s->fingerprint);
	int ca_line = 0;
	int rc = check_markers(s, o, name, key, len, &ca_line, err);
	if (rc)
		return rc;
	struct libssh2_knownhost *found = NULL;
	int r = lookup(kh, name, key, len, keytype, &found);
	if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		return 0;
	if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
		return mismatch(s, o, name, found, err);
	if (r != LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
		return mg_error_set(err, MG_ERROR, "%s: cannot check the host key: %s", s->label,
		                    ssh_errmsg(s));
	char port[24] = "";
	if (o->port != 22)
		snprintf(port, sizeof(port), "-p %d ", o->port);
	if (ca_line) /* never accepted silently, not even with accept-new */
		return mg_error_set(
		    err, MG_ERROR,
		    "%s: the host is known only through a certificate authority (%s:%d, "
		    "@cert-authority), and host certificates cannot be checked (libssh2); pin "
		    "the host's own key instead: check its fingerprint (%s %s), then add it "
		    "with ssh-keyscan -t %s %s%s >> %s",
		    s->label, o->known_hosts, ca_line, tname, s->fingerprint, tname, port,
		    o->address, o->known_hosts);
	if (o->hostkey_policy == MG_SSH_HOSTKEY_ACCEPT_NEW)
		return record_host_key(s, o, name, key, len, keytype, err);
	return mg_error_set(err, MG_ERROR,
	                    "%s: unknown host: %s %s no key for %s (the host sent %s %s); check "
	                    "that fingerprint, then record it with --accept-new-host-keys, or add "
	                    "it with ssh-keyscan -t %s %s%s >> %s",
	                    s->label, o->known_hosts,
	                    kh_missing ? "does not exist, so it has" : "has", name, tname,
	                    s->fingerprint, tname, port, o->address, o->known_hosts);
}

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
		if ((rc = wait_socket(s, deadline, budget, "authentication", err)))
			return rc;
	if (rc == 0)
		return 0;
	if (rc == LIBSSH2_ERROR_FILE)
		return mg_error_set(
		    err, MG_ERROR,
		    "%s: authentication as %s failed: cannot use the key %s (%s): a "
		    "wrong or missing passphrase, or a key format libssh2 cannot read",
		    s->label, o->user, o->identity_file, ssh_errmsg(s));
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
	                    s->label, o->user, o->identity_file, ssh_errmsg(s));
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
		    o->user, sock, ssh_errmsg(s));
	} else if (libssh2_agent_list_identities(agent) != 0) {
		rc = mg_error_set(
		    err, MG_ERROR,
		    "%s: authentication as %s failed: ssh-agent did not list its keys: %s",
		    s->label, o->user, ssh_errmsg(s));
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
		if ((rc = wait_socket(s, deadline, budget, "authentication", err)))
			return rc;
	if (!methods) {
		if (libssh2_userauth_authenticated(s->session))
			return 0;
		return mg_error_set(err, MG_ERROR, "%s: authentication as %s failed: %s", s->label,
		                    o->user, ssh_errmsg(s));
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
	known_hosts_name(name, sizeof(name), o);
	int rc = tcp_connect(s, o, deadline, budget, err);
	if (rc)
		goto fail;
	s->session = libssh2_session_init_ex(NULL, NULL, NULL, s);
	if (!s->session) {
		rc = mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
		goto fail;
	}
	libssh2_session_set_blocking(s->session, 0);
	if ((rc = load_known_hosts(&kh, s, o->known_hosts, &kh_missing, err)))
		goto fail;
	if (kh_missing && o->hostkey_policy != MG_SSH_HOSTKEY_ACCEPT_NEW) {
		rc = mg_error_set(
		    err, MG_ERROR,
		    "%s: known_hosts %s does not exist, so no host is known; create it "
		    "with ssh-keyscan, or record new hosts with --accept-new-host-keys",
		    s->label, o->known_hosts);
		goto fail;
	}
	prefer_known_hostkeys(s, kh, name);
	while ((rc = libssh2_session_handshake(s->session, s->fd)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, budget, "the SSH handshake", err)))
			goto fail;
	if (rc) {
		rc = mg_error_set(err, MG_ERROR, "%s: SSH handshake failed: %s", s->label,
		                  ssh_errmsg(s));
		goto fail;
	}
	if ((rc = check_host_key(s, o, kh, kh_missing, name, err)))
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

/* ---- commands ---- */

/* Appends what fits under MG_SSH_MAX_OUTPUT; the rest is read and dropped so the window moves. */
static int keep(char **buf, size_t *len, const char *data, size_t n)
{
	size_t room = MG_SSH_MAX_OUTPUT - *len;
	if (n > room)
		n = room;
	if (!n)
		return 0;
	char *p = realloc(*buf, *len + n + 1);
	if (!p)
		return MG_ENOMEM;
	memcpy(p + *len, data, n);
	*len += n;
	p[*len] = '\0';
	*buf = p;
	return 0;
}

void mg_ssh_result_free(mg_ssh_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static int unusable(const mg_ssh *s, mg_error *err)
{
	return mg_error_set(err, MG_ERROR,
	                    "%s: the session is unusable after an earlier failure; connect again",
	                    s->label);
}

/*
 * What is sent instead of the command: a POSIX shell script, run by the
 * user's login shell, that
 *  - starts the command (with the login shell, as sshd would have) in a
 *    session and process group of its own (setsid), stdin from /dev/null;
 *  - keeps a watchdog on the channel's stdin, which migrate never writes to:
 *    it reaches EOF only when the channel or the connection goes away (a
 *    timeout, a cancel, migrate killed), and then the whole group gets TERM
 *    and, 2 s later, KILL, so nothing the command started keeps running;
 *    the watchdog ignores TERM once it fired, so the wrapper's own cleanup
 *    cannot stop the KILL;
 *  - does the same when the wrapper itself gets HUP, INT or TERM;
 *  - prints, after the command ended, a line with a per-call random token
 *    and the command's exit status, and exits with it. libssh2 reports a
 *    missing exit-status message as 0, so only that line (or an
 *    exit-signal) tells that the command ran to the end and how.
 * Without setsid on the host the command runs in the wrapper's group, and
 * only the command's own process is signalled.
 */
static const char wrapper_fmt[] =
    "c=%s\n"
    "exec 3<&0 </dev/null\n"
    "if command -v setsid >/dev/null 2>&1; then setsid \"${SHELL:-/bin/sh}\" -c \"$c\" 3<&- & "
    "else \"${SHELL:-/bin/sh}\" -c \"$c\" 3<&- & fi\n"
    "p=$!\n"
    "(while IFS= read -r _; do :; done; trap '' TERM; kill -TERM -$p || kill -TERM $p; "
    "sleep 2; kill -KILL -$p || kill -KILL $p) <&3 >/dev/null 2>&1 &\n"
    "w=$!\n"
    "exec 3<&-\n"
    "trap 'kill -TERM -$p 2>/dev/null || kill -TERM $p 2>/dev/null' HUP INT TERM\n"
    "wait $p\n"
    "r=$?\n"
    "kill $w 2>/dev/null\n"
    "printf '\\n" EXIT_TOKEN "%s %%d\\n' \"$r\"\n"
    "exit $r\n";

/* Keeps the last EXIT_TAIL bytes of stdout, where the wrapper's status line is. */
static void tail_add(char *tail, size_t *tlen, const char *data, size_t n)
{
	if (n >= EXIT_TAIL) {
		memcpy(tail, data + n - EXIT_TAIL, EXIT_TAIL);
		*tlen = EXIT_TAIL;
		return;
	}
	if (*tlen + n > EXIT_TAIL) {
		size_t drop = *tlen + n - EXIT_TAIL;
		memmove(tail, tail + drop, *tlen - drop);
		*tlen -= drop;
	}
	memcpy(tail + *tlen, data, n);
	*tlen += n;
}

/*
 * Finds "\n<EXIT_TOKEN><nonce> <status>\n" at the very end of stdout: the
 * status, and the line's length (to cut it from the output), or -1.
 */
static int exit_line(const char *tail, size_t tlen, const char *nonce, size_t *line_len)
{
	char tok[80];
	int n = snprintf(tok, sizeof(tok), "\n" EXIT_TOKEN "%s ", nonce);
	if (n <= 0 || tlen < (size_t)n + 2 || tail[tlen - 1] != '\n')
		return -1;
	for (size_t at = tlen - (size_t)n - 1;; at--) {
		if (memcmp(tail + at, tok, (size_t)n) == 0) {
			const char *p = tail + at + n, *end = tail + tlen - 1;
			int status = 0;
			if (p == end || end - p > 3)
				return -1;
			for (; p < end; p++) {
				if (*p < '0' || *p > '9')
					return -1;
				status = status * 10 + (*p - '0');
			}
			if (status > 255)
				return -1;
			*line_len = tlen - at;
			return status;
		}
		if (at == 0)
			return -1;
	}
}

int mg_ssh_exec(mg_ssh_result *r, mg_ssh *s, const char *command, int64_t timeout_ms, mg_error *err)
{
	memset(r, 0, sizeof(*r));
	if (s->broken)
		return unusable(s, err);
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	uint8_t rnd[16];
	char nonce[33];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* no entropy yet: the token need only not appear in the command's own output */
		uint64_t x =
		    (uint64_t)mg_clock_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
		memcpy(rnd, &x, sizeof(x));
		memcpy(rnd + 8, &x, sizeof(x));
	}
	for (int i = 0; i < 16; i++)
		snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
	char *quoted = mg_ssh_quote(command);
	char *wrapped = NULL;
	if (!quoted || asprintf(&wrapped, wrapper_fmt, quoted, nonce) < 0)
		wrapped = NULL;
	free(quoted);
	if (!r->out || !r->err || !wrapped) {
		free(wrapped);
		mg_ssh_result_free(r);
		return mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
	}
	char tail[EXIT_TAIL];
	size_t tlen = 0, out_total = 0;
	const char *what = "the command";
	int64_t deadline = mg_clock_ms() + timeout_ms;
	LIBSSH2_CHANNEL *ch;
	int rc;
	while (!(ch = libssh2_channel_open_session(s->session))) {
		if (libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_EAGAIN) {
			rc = mg_error_set(err, MG_ERROR, "%s: cannot open a channel: %s", s->label,
			                  ssh_errmsg(s));
			goto fail;
		}
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	}
	while ((rc = libssh2_channel_exec(ch, wrapped)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	if (rc) {
		rc = mg_error_set(err, MG_ERROR, "%s: the host would not run the command: %s",
		                  s->label, ssh_errmsg(s));
		goto fail;
	}
	char buf[16384];
	for (;;) {
		/* checked here too: a command that never stops writing never makes us wait */
		if ((rc = check_stop(s, deadline, timeout_ms, what, err)))
			goto fail;
		/*
		 * Sampled before reading: a read of one stream may take in the other's
		 * last data together with the EOF, and that data must still be read.
		 */
		bool eof = libssh2_channel_eof(ch) == 1;
		bool got = false;
		for (int stream = 0; stream < 2; stream++) {
			ssize_t n = libssh2_channel_read_ex(ch, stream, buf, sizeof(buf));
			if (n > 0) {
				got = true;
				if (!stream) {
					tail_add(tail, &tlen, buf, (size_t)n);
					out_total += (size_t)n;
				}
				if ((rc = stream ? keep(&r->err, &r->err_len, buf, (size_t)n)
				                 : keep(&r->out, &r->out_len, buf, (size_t)n))) {
					rc = mg_error_set(err, rc, "%s: out of memory", s->label);
					goto fail;
				}
			} else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
				rc = mg_error_set(err, MG_ERROR,
				                  "%s: reading the command's output: %s", s->label,
				                  ssh_errmsg(s));
				goto fail;
			}
		}
		if (got)
			continue;
		if (eof)
			break;
		/* the EOF came in with these reads: read once more for data that came with it,
		   instead of waiting a slice for a socket that has nothing more to say */
		if (libssh2_channel_eof(ch) == 1)
			continue;
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	}
	while ((rc = libssh2_channel_close(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	while ((rc = libssh2_channel_wait_closed(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	size_t line_len = 0;
	int status = exit_line(tail, tlen, nonce, &line_len);
	char *sig = NULL;
	libssh2_channel_get_exit_signal(ch, &sig, NULL, NULL, NULL, NULL, NULL);
	if (status >= 0) {
		r->exit_status = status;
		/* the status line is the wrapper's, not the command's output */
		size_t start = out_total - line_len;
		if (start < r->out_len) {
			r->out_len = start;
			r->out[start] = '\0';
		}
	} else if (sig) {
		r->exit_status = -1; /* the wrapper (the login shell) itself was killed */
	}
	if (sig)
		libssh2_free(s->session, sig);
	while ((rc = libssh2_channel_free(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto fail;
	if (status < 0 && r->exit_status != -1) {
		/*
		 * No status line and no exit-signal: libssh2 would say 0 whether the
		 * host sent that or nothing. The command may not have run, or not to
		 * its end: never a success. The session itself is still fine.
		 */
		char tail_err[256] = "";
		size_t k = 0;
		for (size_t i = 0; i < r->err_len && k + 1 < sizeof(tail_err); i++) {
			unsigned char c = (unsigned char)r->err[i];
			tail_err[k++] = c == '\n' ? '|' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
		}
		tail_err[k] = '\0';
		mg_ssh_result_free(r);
		free(wrapped);
		return mg_error_set(
		    err, MG_ERROR,
		    "%s: the host did not report an exit status for the command (it "
		    "may not have run, or not to its end; is the user's login shell "
		    "a POSIX shell, and is no forced command set for the key?)%s%s",
		    s->label, *tail_err ? ": " : "", tail_err);
	}
	free(wrapped);
	return 0;
fail:
	/*
	 * The channel is left to libssh2_session_free: see the top of this file.
	 * The connection is shut at once: the host then closes the channel, and
	 * the wrapper's watchdog ends whatever the command started.
	 */
	s->broken = true;
	if (s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
	free(wrapped);
	mg_ssh_result_free(r);
	return rc ? rc : MG_ERROR;
}

/* ---- upload ---- */

static const char *sftp_status(unsigned long code)
{
	switch (code) {
	case LIBSSH2_FX_NO_SUCH_FILE:
	case LIBSSH2_FX_NO_SUCH_PATH:
		return "no such file or directory";
	case LIBSSH2_FX_PERMISSION_DENIED:
		return "permission denied";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
		return "no space left on the file system";
	case LIBSSH2_FX_QUOTA_EXCEEDED:
		return "quota exceeded";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS:
		return "file exists";
	case LIBSSH2_FX_WRITE_PROTECT:
	case LIBSSH2_FX_LOCK_CONFLICT:
		return "the file system is read-only or the file is locked";
	case LIBSSH2_FX_NOT_A_DIRECTORY:
		return "a parent is not a directory";
	case LIBSSH2_FX_INVALID_FILENAME:
		return "invalid file name";
	default:
		return "failure";
	}
}

/* The reason an SFTP call failed: the server's status when it sent one, else libssh2's. */
static void sftp_why(char *out, size_t size, mg_ssh *s, LIBSSH2_SFTP *sftp)
{
	int e = libssh2_session_last_errno(s->session);
	if (sftp && e == LIBSSH2_ERROR_SFTP_PROTOCOL) {
		unsigned long code = libssh2_sftp_last_error(sftp);
		snprintf(out, size, "%s (SFTP status %lu)", sftp_status(code), code);
	} else {
		snprintf(out, size, "%s", ssh_errmsg(s));
	}
}

int mg_ssh_upload(mg_ssh *s, const char *local_path, const char *remote_path, long mode,
                  int64_t timeout_ms, mg_error *err)
{
	if (s->broken)
		return unusable(s, err);
	int fd = open(local_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mg_error_set(err, MG_EIO, "%s: cannot read %s: %s", s->label, local_path,
		                    strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mg_error_set(err, MG_EIO, "%s: %s is not a regular file", s->label,
		                    local_path);
	}
	char *buf = malloc(UPLOAD_CHUNK);
	if (!buf) {
		close(fd);
		return mg_error_set(err, MG_ENOMEM, "%s: out of memory", s->label);
	}
	const char *what = "the upload";
	char why[256];
	int64_t deadline = mg_clock_ms() + timeout_ms;
	LIBSSH2_SFTP *sftp = NULL;
	LIBSSH2_SFTP_HANDLE *h = NULL;
	int rc = 0;
	while (!(sftp = libssh2_sftp_init(s->session))) {
		if (libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_EAGAIN) {
			rc = mg_error_set(err, MG_ERROR, "%s: cannot start SFTP: %s", s->label,
			                  ssh_errmsg(s));
			goto out;
		}
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	}
	while (!(h = libssh2_sftp_open_ex(sftp, remote_path, (unsigned)strlen(remote_path),
	                                  LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
	                                  mode, LIBSSH2_SFTP_OPENFILE))) {
		if (libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_EAGAIN) {
			sftp_why(why, sizeof(why), s, sftp);
			rc = mg_error_set(err, MG_ERROR, "%s: cannot create %s: %s", s->label,
			                  remote_path, why);
			goto out;
		}
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, UPLOAD_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mg_error_set(err, MG_EIO, "%s: reading %s: %s", s->label, local_path,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (size_t off = 0; off < (size_t)n;) {
			if ((rc = check_stop(s, deadline, timeout_ms, what, err)))
				goto out;
			ssize_t w = libssh2_sftp_write(h, buf + off, (size_t)n - off);
			if (w > 0) {
				off += (size_t)w;
			} else if (w == 0 || w == LIBSSH2_ERROR_EAGAIN) {
				if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
					goto out;
			} else {
				sftp_why(why, sizeof(why), s, sftp);
				rc = mg_error_set(err, MG_ERROR, "%s: writing %s: %s", s->label,
				                  remote_path, why);
				goto out;
			}
		}
	}
	/* the mode given to open applies only to a new file, and through the server's umask */
	LIBSSH2_SFTP_ATTRIBUTES attrs = {.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS,
	                                 .permissions = (unsigned long)mode};
	while ((rc = libssh2_sftp_fsetstat(h, &attrs)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	if (rc) {
		sftp_why(why, sizeof(why), s, sftp);
		rc = mg_error_set(err, MG_ERROR, "%s: setting the mode of %s: %s", s->label,
		                  remote_path, why);
		goto out;
	}
	/* closing is what confirms the last writes: its failure is the upload's */
	while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	h = NULL;
	if (rc) {
		sftp_why(why, sizeof(why), s, sftp);
		rc = mg_error_set(err, MG_ERROR, "%s: closing %s: %s", s->label, remote_path, why);
		goto out;
	}
	while ((rc = libssh2_sftp_shutdown(sftp)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = wait_socket(s, deadline, timeout_ms, what, err)))
			goto out;
	sftp = NULL;
	rc = 0;
out:
	if (h || sftp) {
		/*
		 * Gone wrong midway: close what is open, bounded, so the session may
		 * still serve; if even that fails, it is broken.
		 */
		libssh2_session_set_blocking(s->session, 1);
		libssh2_session_set_timeout(s->session, TEARDOWN_MS);
		if (h && libssh2_sftp_close_handle(h) != 0)
			s->broken = true;
		if (sftp && !s->broken && libssh2_sftp_shutdown(sftp) != 0)
			s->broken = true;
		libssh2_session_set_timeout(s->session, 0);
		libssh2_session_set_blocking(s->session, 0);
	}
	free(buf);
	close(fd);
	return rc;
}
