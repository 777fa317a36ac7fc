/*
 * Host keys: fingerprints, and checking the key a host offers against
 * known_hosts (markers, hashed names, keys of other types), recording it on
 * first use when the options allow.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "sha256.h"

/* Serializes appends to known_hosts between this process's workers (flock does it between
 * processes). */
static pthread_mutex_t known_hosts_lock = PTHREAD_MUTEX_INITIALIZER;

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

int mg_ssh_load_known_hosts(LIBSSH2_KNOWNHOSTS **out, mg_ssh *s, const char *path, bool *missing,
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
void mg_ssh_known_hosts_name(char *out, size_t size, const mg_ssh_options *o)
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
void mg_ssh_prefer_known_hostkeys(mg_ssh *s, LIBSSH2_KNOWNHOSTS *kh, const char *name)
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
	if ((rc = mg_ssh_load_known_hosts(&kh, s, o->known_hosts, &missing, err)))
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

int mg_ssh_check_host_key(mg_ssh *s, const mg_ssh_options *o, LIBSSH2_KNOWNHOSTS *kh,
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
		                    mg_ssh_errmsg(s));
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
