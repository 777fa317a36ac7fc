/*
 * HAProxy: server weights through the Runtime API (a `stats socket`, unix or TCP).
 *
 * Every call is one connection: HAProxy answers a non-interactive command
 * line and closes. Several commands may share a line, separated by ';', and
 * HAProxy ends the answer to each with an empty line, so one line sets every
 * weight of a step and each answer still says which command it belongs to.
 */
#include "clock.h"
#include "traffic.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"
#include "weights.h"

/*
 * HAProxy reads a command line into one buffer (tune.bufsize, 16 kB by
 * default) and silently runs only part of a line that does not fit. Longer
 * steps go out as several lines of at most this size.
 */
#define HX_MAX_LINE 8192
/* `show stat` of one backend is a few kB; this only stops a runaway peer. */
#define HX_MAX_REPLY (16 << 20)
/* Columns of `show stat`; the CSV of HAProxy 2.6 has about 130. */
#define HX_MAX_FIELDS 512

typedef struct {
	char *socket; /* unix socket path, or NULL */
	char *host;   /* TCP, when socket is NULL */
	char *port;
	const char *where; /* socket path or host:port, for messages */
	char *address;
	char *backend;
	char **servers; /* VM servers first, then cluster servers */
	size_t nvm, nk8s;
	int64_t timeout_ms;
} hx;

static void hx_free(void *drv)
{
	hx *h = drv;
	if (!h)
		return;
	free(h->socket);
	free(h->host);
	free(h->port);
	free(h->address);
	free(h->backend);
	for (size_t i = 0; h->servers && i < h->nvm + h->nk8s; i++)
		free(h->servers[i]);
	free(h->servers);
	free(h);
}

/*
 * The runtime API splits commands on ';' and words on blanks, and '\' escapes;
 * '/' separates backend and server. Any of them in a name would turn
 * `set weight` into another command, so such a name is refused whatever the
 * plan loader let through.
 */
static int check_name(const char *name, const char *what, mg_error *err)
{
	if (!name || !*name)
		return mg_error_set(err, MG_EINVALID, "traffic.haproxy.%s is empty", what);
	if (strlen(name) > 255)
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.haproxy.%s \"%.40s...\" is longer than 255 characters",
		                    what, name);
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if (*c <= ' ' || *c == 0x7f || *c == ';' || *c == '\\' || *c == '/')
			return mg_error_set(
			    err, MG_EINVALID,
			    "traffic.haproxy.%s \"%s\" contains whitespace, a control "
			    "character, ';', '\\' or '/', which would change the "
			    "runtime API command; use the name from haproxy.cfg",
			    what, name);
	return 0;
}

/* Splits host:port or [v6 literal]:port, as the plan loader accepts them. */
static int split_address(hx *h, const char *address, mg_error *err)
{
	const char *host = address, *host_end, *colon;
	if (address[0] == '[') {
		host = address + 1;
		host_end = strchr(address, ']');
		colon = host_end && host_end[1] == ':' ? host_end + 1 : NULL;
	} else {
		host_end = colon = strrchr(address, ':');
	}
	if (!colon || host_end <= host || !colon[1])
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.haproxy.address \"%s\" is not host:port", address);
	h->host = strndup(host, (size_t)(host_end - host));
	h->port = strdup(colon + 1);
	return h->host && h->port ? 0 : mg_error_oom(err);
}

int mg_traffic_haproxy_new(void **out, const mg_plan_haproxy *cfg, mg_error *err)
{
	*out = NULL;
	if ((cfg->socket && *cfg->socket) == (cfg->address && *cfg->address))
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.haproxy needs either \"socket\" or \"address\"");
	int rc = check_name(cfg->backend, "backend", err);
	for (size_t i = 0; !rc && i < cfg->nvm_servers; i++)
		rc = check_name(cfg->vm_servers[i], "vm_servers", err);
	for (size_t i = 0; !rc && i < cfg->nk8s_servers; i++)
		rc = check_name(cfg->k8s_servers[i], "k8s_servers", err);
	if (rc)
		return rc;
	if (!cfg->nvm_servers || !cfg->nk8s_servers)
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.haproxy needs at least one of vm_servers and of "
		                    "k8s_servers");

	hx *h = calloc(1, sizeof(*h));
	if (!h)
		return mg_error_oom(err);
	h->nvm = cfg->nvm_servers;
	h->nk8s = cfg->nk8s_servers;
	h->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
	h->backend = strdup(cfg->backend);
	h->servers = calloc(h->nvm + h->nk8s, sizeof(*h->servers));
	bool ok = h->backend && h->servers;
	for (size_t i = 0; ok && i < h->nvm + h->nk8s; i++) {
		h->servers[i] =
		    strdup(i < h->nvm ? cfg->vm_servers[i] : cfg->k8s_servers[i - h->nvm]);
		ok = h->servers[i] != NULL;
	}
	if (ok && cfg->socket) {
		h->socket = strdup(cfg->socket);
		h->where = h->socket;
		ok = h->socket != NULL;
	} else if (ok) {
		h->address = strdup(cfg->address);
		h->where = h->address;
		ok = h->address != NULL;
	}
	if (!ok) {
		hx_free(h);
		return mg_error_oom(err);
	}
	if (h->address && (rc = split_address(h, h->address, err))) {
		hx_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mg_clock_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {fd, events, 0};
		int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Non-blocking connect bounded by the deadline; 0, or an errno value (ETIMEDOUT). */
static int connect_by(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	/*
	 * A unix socket whose backlog is full (haproxy is not accepting) fails
	 * with EAGAIN instead of completing later, so it is tried again.
	 */
	for (;;) {
		if (connect(fd, sa, len) == 0)
			return 0;
		if (errno != EAGAIN)
			break;
		if (mg_clock_ms() >= deadline)
			return ETIMEDOUT;
		poll(NULL, 0, 10);
	}
	if (errno != EINPROGRESS && errno != EINTR)
		return errno;
	int w = wait_fd(fd, POLLOUT, deadline);
	if (w < 0)
		return errno;
	if (w == 0)
		return ETIMEDOUT;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
		return errno;
	return soerr;
}

static int connect_error(const hx *h, int e, mg_error *err)
{
	if (e == ETIMEDOUT)
		return mg_error_set(
		    err, MG_ERROR,
		    "cannot connect to HAProxy's runtime API at %s: no answer within "
		    "%lld ms (traffic.haproxy.timeout); is haproxy running and "
		    "reachable?",
		    h->where, (long long)h->timeout_ms);
	char hint[512];
	if (e == EACCES || e == EPERM)
		snprintf(hint, sizeof(hint),
		         "migrate must run as a user that may write to the socket (see the `mode`, "
		         "`user` and `group` options of `stats socket %s` in haproxy.cfg)",
		         h->where);
	else if (e == ENOENT && h->socket)
		snprintf(hint, sizeof(hint),
		         "is `stats socket %s level admin` in haproxy.cfg, and haproxy running?",
		         h->where);
	else if (e == ECONNREFUSED && h->socket)
		snprintf(hint, sizeof(hint),
		         "the socket file is there but nothing listens on it; is haproxy running "
		         "with `stats socket %s level admin`?",
		         h->where);
	else
		snprintf(hint, sizeof(hint),
		         "is haproxy running with `stats socket %s%s level admin` in haproxy.cfg?",
		         h->socket              ? ""
		         : strchr(h->host, ':') ? "ipv6@"
		                                : "ipv4@",
		         h->where);
	return mg_error_set(err, MG_ERROR, "cannot connect to HAProxy's runtime API at %s: %s; %s",
	                    h->where, strerror(e), hint);
}

/* A connected, non-blocking socket to the runtime API in *fd, or an error. */
static int hx_connect(const hx *h, int64_t deadline, int *fd_out, mg_error *err)
{
	*fd_out = -1;
	if (h->socket) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(h->socket) >= sizeof(sa.sun_path)) {
			return mg_error_set(
			    err, MG_EINVALID,
			    "traffic.haproxy.socket \"%s\" is longer than a unix socket "
			    "path may be (%zu bytes)",
			    h->socket, sizeof(sa.sun_path) - 1);
		}
		memcpy(sa.sun_path, h->socket, strlen(h->socket) + 1);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return mg_error_set(err, MG_EIO, "socket: %s", strerror(errno));
		int e = connect_by(fd, (struct sockaddr *)&sa, sizeof(sa), deadline);
		if (!e) {
			*fd_out = fd;
			return 0;
		}
		close(fd);
		return connect_error(h, e, err);
	}

	/* Name resolution cannot be bounded by poll(); an address is normally an IP literal. */
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(h->host, h->port, &hints, &ai);
	if (g)
		return mg_error_set(err, MG_ERROR,
		                    "cannot connect to HAProxy's runtime API at %s: cannot resolve "
		                    "%s: %s",
		                    h->where, h->host, gai_strerror(g));
	int e = ECONNREFUSED;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		                a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		e = connect_by(fd, a->ai_addr, a->ai_addrlen, deadline);
		if (!e) {
			freeaddrinfo(ai);
			*fd_out = fd;
			return 0;
		}
		close(fd);
		if (e == ETIMEDOUT)
			break;
	}
	freeaddrinfo(ai);
	return connect_error(h, e, err);
}

/*
 * Sends one command line and reads HAProxy's whole answer (it closes the
 * connection when done). what names the command in messages.
 */
static int hx_call(const hx *h, const char *line, const char *what, char **reply, mg_error *err)
{
	*reply = NULL;
	int64_t deadline = mg_clock_ms() + h->timeout_ms;
	int fd;
	int rc = hx_connect(h, deadline, &fd, err);
	if (rc)
		return rc;

	/* HAProxy runs nothing before the newline */
	size_t len = strlen(line), sent = 0;
	char *msg = malloc(len + 2);
	if (!msg) {
		close(fd);
		return mg_error_oom(err);
	}
	memcpy(msg, line, len);
	memcpy(msg + len++, "\n", 2);
	char *buf = NULL;
	size_t n = 0, cap = 0;
	const char *failed = NULL;
	int e = 0;
	while (sent < len && !failed) {
		ssize_t w = send(fd, msg + sent, len - sent, MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			e = errno;
			failed = "sending";
			break;
		}
		int r = wait_fd(fd, POLLOUT, deadline);
		if (r <= 0) {
			e = r ? errno : ETIMEDOUT;
			failed = "sending";
		}
	}
	while (!failed) {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb) {
				rc = mg_error_oom(err);
				break;
			}
			buf = nb;
		}
		ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
		if (r > 0) {
			n += (size_t)r;
			if (n > HX_MAX_REPLY) {
				rc = mg_error_set(
				    err, MG_ERROR,
				    "HAProxy's runtime API at %s sent more than %d bytes for "
				    "%s; stopped reading",
				    h->where, HX_MAX_REPLY, what);
				break;
			}
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			e = errno;
			failed = "reading the answer";
			break;
		}
		int w = wait_fd(fd, POLLIN, deadline);
		if (w <= 0) {
			e = w ? errno : ETIMEDOUT;
			failed = "reading the answer";
		}
	}
	close(fd);
	free(msg);
	if (failed && e == ETIMEDOUT)
		rc = mg_error_set(err, MG_ERROR,
		                  "HAProxy's runtime API at %s did not answer %s within %lld ms "
		                  "(traffic.haproxy.timeout)",
		                  h->where, what, (long long)h->timeout_ms);
	else if (failed)
		rc = mg_error_set(err, MG_ERROR, "HAProxy's runtime API at %s: %s for %s: %s",
		                  h->where, failed, what, strerror(e));
	else if (!rc && n == 0)
		rc = mg_error_set(err, MG_ERROR,
		                  "HAProxy's runtime API at %s closed the connection without "
		                  "answering %s",
		                  h->where, what);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*reply = buf;
	return 0;
}

/*
 * The next answer in a reply: HAProxy ends each command's answer with an
 * empty line. Returns the answer (NUL-terminated in place, without its
 * trailing newline) and advances *p, or NULL when the reply ends first.
 */
static char *next_answer(char **p)
{
	char *s = *p;
	if (*s == '\n') {
		*s = '\0';
		*p = s + 1;
		return s;
	}
	char *end = strstr(s, "\n\n");
	if (!end)
		return NULL;
	*end = '\0';
	*p = end + 2;
	return s;
}

/* The first line of an answer, shortened, for a message. */
static const char *first_line(const char *s, char *buf, size_t size)
{
	/* scrubbed, then cut: the one way a remote text is shortened */
	char *line = strndup(s, strcspn(s, "\n"));
	mg_scrub_cut(buf, size, line ? line : "(out of memory)", 203);
	free(line);
	return buf;
}

/* One CSV record of `show stat`, split in place; fields may be "quoted" with "" for a quote. */
static size_t csv_split(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line;
	for (;;) {
		char *out = p;
		if (n < max)
			f[n] = out;
		n++;
		if (*p == '"') {
			p++;
			while (*p) {
				if (*p == '"' && p[1] == '"') {
					*out++ = '"';
					p += 2;
				} else if (*p == '"') {
					p++;
					break;
				} else {
					*out++ = *p++;
				}
			}
		}
		while (*p && *p != ',')
			*out++ = *p++;
		char c = *p;
		*out = '\0';
		if (!c)
			return n;
		p++;
	}
}

static int column(char **hdr, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(hdr[i], name))
			return (int)i;
	return -1;
}

static bool first_word_is(const char *s, const char *word)
{
	size_t n = strlen(word);
	return !strncmp(s, word, n) && (s[n] == '\0' || s[n] == ' ');
}

/*
 * HAProxy's status column in its own words. "UP 1/3" is a server that failed
 * a check but not yet `fall` of them: HAProxy still sends it traffic, and the
 * operator chose `fall` so that one failed check does not count as down, so it
 * is up here too (the detail keeps the words). "DOWN 1/2" is on its way up
 * but gets no traffic yet: down. "no check" means HAProxy never checks it and
 * always sends it traffic: up. NOLB and DRAIN take no new traffic, like MAINT.
 */
static mg_health map_health(const char *status)
{
	if (first_word_is(status, "UP") || !strcmp(status, "no check"))
		return MG_HEALTH_UP;
	if (first_word_is(status, "DOWN"))
		return MG_HEALTH_DOWN;
	if (first_word_is(status, "MAINT") || first_word_is(status, "DRAIN") ||
	    first_word_is(status, "NOLB"))
		return MG_HEALTH_MAINT;
	return MG_HEALTH_UNKNOWN;
}

/* The columns of `show stat` used here; the first five must be there. */
enum { C_PXNAME, C_SVNAME, C_STATUS, C_WEIGHT, C_TYPE, C_CHECK_STATUS, C_LAST_CHK, C_BCK, C_N };

static int parse_weight(const hx *h, const char *server, const char *s, double *out, mg_error *err)
{
	char *end;
	errno = 0;
	long w = strtol(s, &end, 10);
	if (!*s || *end || errno || w < 0)
		return mg_error_set(
		    err, MG_ERROR,
		    "HAProxy's runtime API at %s gave server %s/%s the weight \"%s\", "
		    "which is not a number",
		    h->where, h->backend, server, s);
	*out = (double)w;
	return 0;
}

static void fill_server(mg_traffic_server *s, char **f, const int *c)
{
	const char *status = f[c[C_STATUS]];
	const char *chk = c[C_CHECK_STATUS] >= 0 ? f[c[C_CHECK_STATUS]] : "";
	const char *last = c[C_LAST_CHK] >= 0 ? f[c[C_LAST_CHK]] : "";
	/* a check that is running is shown as "* L4OK" */
	if (!strncmp(chk, "* ", 2))
		chk += 2;
	s->health = map_health(status);
	/* why it is down (or going down) is the part of the detail an operator needs */
	if (*chk && (s->health == MG_HEALTH_DOWN || strchr(status, '/')))
		snprintf(s->detail, sizeof(s->detail), "%s (%s%s%s)", status, chk,
		         *last ? ": " : "", last);
	else
		snprintf(s->detail, sizeof(s->detail), "%s", status);
}

/*
 * `show stat` rather than `show servers state`: one answer carries the weight
 * and HAProxy's own words for the state ("DOWN", "MAINT (via b/s)", "UP 1/3")
 * and for the last check ("L4CON", "Connection refused"), which is what an
 * operator should see. `show servers state` has the same facts as internal
 * numbers (operational state, an admin-state bit field, check status codes)
 * whose meaning depends on the HAProxy version.
 *
 * The weight is `uweight` (what `set weight` and the configuration set) when
 * this HAProxy has that column (2.6 has); `weight` is the effective weight,
 * which `slowstart` lowers for a while after a server comes up, and would make
 * a fresh step read back short of what was set.
 */
static int hx_read(void *drv, mg_traffic_state *out, mg_error *err)
{
	hx *h = drv;
	char cmd[512], what[600];
	/* type 6: the backend's own row and its servers' */
	snprintf(cmd, sizeof(cmd), "show stat %s 6 -1", h->backend);
	snprintf(what, sizeof(what), "`%s`", cmd);
	char *reply;
	int rc = hx_call(h, cmd, what, &reply, err);
	if (rc)
		return rc;

	char *p = reply, tmp[256];
	char *ans = next_answer(&p);
	if (!ans) {
		rc = mg_error_set(err, MG_ERROR,
		                  "HAProxy's runtime API at %s cut its answer to %s short",
		                  h->where, what);
		goto out;
	}
	if (!strcmp(ans, "No such proxy.")) {
		rc = mg_error_set(err, MG_ENOTFOUND,
		                  "HAProxy has no backend \"%s\" (it answered \"No such proxy.\"); "
		                  "traffic.haproxy.backend and haproxy.cfg disagree",
		                  h->backend);
		goto out;
	}
	if (strncmp(ans, "# pxname,", 9)) {
		rc = mg_error_set(err, MG_ERROR,
		                  "HAProxy's runtime API at %s answered %s with \"%s\"", h->where,
		                  what, first_line(ans, tmp, sizeof(tmp)));
		goto out;
	}

	char *hdr[HX_MAX_FIELDS], *f[HX_MAX_FIELDS];
	char *line = ans + 2;
	char *next = strchr(line, '\n');
	if (next)
		*next++ = '\0';
	size_t nh = csv_split(line, hdr, HX_MAX_FIELDS);
	if (nh > HX_MAX_FIELDS)
		nh = HX_MAX_FIELDS;
	static const char *const names[C_N] = {"pxname", "svname",       "status",   "uweight",
	                                       "type",   "check_status", "last_chk", "bck"};
	int c[C_N];
	size_t need = 0;
	for (int i = 0; i < C_N; i++) {
		c[i] = column(hdr, nh, names[i]);
		if (i == C_WEIGHT && c[i] < 0)
			c[i] = column(hdr, nh, "weight");
		if (i <= C_TYPE && c[i] < 0) {
			rc =
			    mg_error_set(err, MG_ERROR,
			                 "HAProxy's runtime API at %s answered %s without a \"%s\" "
			                 "column",
			                 h->where, what, i == C_WEIGHT ? "weight" : names[i]);
			goto out;
		}
		if (c[i] >= 0 && (size_t)c[i] + 1 > need)
			need = (size_t)c[i] + 1;
	}

	size_t nsrv = h->nvm + h->nk8s;
	out->servers = calloc(nsrv, sizeof(*out->servers));
	if (!out->servers) {
		rc = mg_error_oom(err);
		goto out;
	}
	out->nservers = nsrv;
	bool *seen = calloc(nsrv, sizeof(*seen));
	if (!seen) {
		rc = mg_error_oom(err);
		goto out;
	}
	bool backend_seen = false;
	double k8s = 0, total = 0;
	char extra[512] = "";
	size_t nextra = 0;
	for (line = next; !rc && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t nf = csv_split(line, f, HX_MAX_FIELDS);
		if (nf < need) {
			rc = mg_error_set(
			    err, MG_ERROR,
			    "HAProxy's runtime API at %s answered %s with a short row: "
			    "%zu fields where the header has %zu",
			    h->where, what, nf, nh);
			break;
		}
		if (strcmp(f[c[C_PXNAME]], h->backend))
			continue;
		if (!strcmp(f[c[C_TYPE]], "1")) {
			backend_seen = true;
			continue;
		}
		if (strcmp(f[c[C_TYPE]], "2"))
			continue;
		double w = 0;
		if ((rc = parse_weight(h, f[c[C_SVNAME]], f[c[C_WEIGHT]], &w, err)))
			break;
		size_t i = 0;
		while (i < nsrv && strcmp(h->servers[i], f[c[C_SVNAME]]))
			i++;
		if (i == nsrv) {
			/* a server the plan does not name still takes its share, unless a backup */
			if (c[C_BCK] >= 0 && !strcmp(f[c[C_BCK]], "1"))
				continue;
			total += w;
			if (w > 0) {
				size_t o = strlen(extra);
				if (o < sizeof(extra) - 1)
					snprintf(extra + o, sizeof(extra) - o, "%s%s (weight %g)",
					         nextra ? ", " : "", f[c[C_SVNAME]], w);
				nextra++;
			}
			continue;
		}
		mg_traffic_server *s = &out->servers[i];
		snprintf(s->name, sizeof(s->name), "%s", h->servers[i]);
		s->k8s = i >= h->nvm;
		s->weight = w;
		fill_server(s, f, c);
		seen[i] = true;
		total += w;
		if (s->k8s)
			k8s += w;
	}
	if (!rc && !backend_seen)
		rc = mg_error_set(err, MG_ENOTFOUND,
		                  "HAProxy has no backend \"%s\" (only a frontend of that name); "
		                  "traffic.haproxy.backend and haproxy.cfg disagree",
		                  h->backend);
	for (size_t i = 0; !rc && i < nsrv; i++)
		if (!seen[i])
			rc =
			    mg_error_set(err, MG_ENOTFOUND,
			                 "server %s is not in backend %s; the plan and haproxy.cfg "
			                 "disagree",
			                 h->servers[i], h->backend);
	free(seen);
	if (rc)
		goto out;
	if (nextra)
		mg_log(
		    MG_LOG_WARN,
		    "backend %s also sends traffic to %s, in neither vm_servers nor k8s_servers; "
		    "the cluster's share counts them on the VMs' side",
		    h->backend, extra);
	if (total > 0) {
		out->k8s_percent = 100 * k8s / total;
	} else {
		/* nothing is balanced anywhere; 0 keeps "towards the cluster" meaning "raise it" */
		out->k8s_percent = 0;
		mg_log(MG_LOG_WARN,
		       "every server of backend %s has weight 0, so HAProxy sends its traffic "
		       "nowhere; counting that as 0%% to the cluster",
		       h->backend);
	}
out:
	if (rc)
		mg_traffic_state_clear(out);
	free(reply);
	return rc;
}

/* The command lines for a step: `set weight` for every server, joined by ';'. */
typedef struct {
	char **lines;
	size_t nlines;
	size_t *first; /* index of the first server of each line */
} hx_lines;

static void lines_free(hx_lines *l)
{
	for (size_t i = 0; i < l->nlines; i++)
		free(l->lines[i]);
	free(l->lines);
	free(l->first);
	memset(l, 0, sizeof(*l));
}

static int weight_of(const hx *h, size_t i, const mg_weights *w)
{
	return i < h->nvm ? w->vm_weight : w->k8s_weight;
}

static int build_lines(const hx *h, double pct, hx_lines *l, mg_weights *w, mg_error *err)
{
	memset(l, 0, sizeof(*l));
	int rc = mg_weights_split(w, pct, h->nvm, h->nk8s, MG_WEIGHTS_BALANCER_MAX, err);
	if (rc)
		return rc;
	size_t nsrv = h->nvm + h->nk8s;
	/* at most one line per server */
	l->lines = calloc(nsrv, sizeof(*l->lines));
	l->first = calloc(nsrv, sizeof(*l->first));
	if (!l->lines || !l->first) {
		lines_free(l);
		return mg_error_oom(err);
	}
	char *cur = NULL;
	size_t len = 0;
	for (size_t i = 0; i < nsrv; i++) {
		char cmd[600];
		int n = snprintf(cmd, sizeof(cmd), "set weight %s/%s %d", h->backend, h->servers[i],
		                 weight_of(h, i, w));
		if (cur && len + 2 + (size_t)n > HX_MAX_LINE) {
			l->lines[l->nlines++] = cur;
			cur = NULL;
		}
		if (!cur) {
			cur = malloc(HX_MAX_LINE + sizeof(cmd));
			if (!cur) {
				lines_free(l);
				return mg_error_oom(err);
			}
			l->first[l->nlines] = i;
			len = 0;
		}
		len += (size_t)sprintf(cur + len, "%s%s", len ? "; " : "", cmd);
	}
	l->lines[l->nlines++] = cur;
	return 0;
}

static int hx_apply(void *drv, double pct, mg_error *err)
{
	hx *h = drv;
	hx_lines l;
	mg_weights w;
	int rc = build_lines(h, pct, &l, &w, err);
	if (rc)
		return rc;
	size_t nsrv = h->nvm + h->nk8s, done = 0;
	char what[600];
	snprintf(what, sizeof(what), "`set weight` for backend %s", h->backend);
	for (size_t k = 0; !rc && k < l.nlines; k++) {
		size_t from = l.first[k], to = k + 1 < l.nlines ? l.first[k + 1] : nsrv;
		char *reply;
		if ((rc = hx_call(h, l.lines[k], what, &reply, err)))
			break;
		char *p = reply, tmp[256];
		size_t bad = 0, first_bad = 0, answered = 0;
		const char *why = NULL;
		for (char *ans; answered < to - from && (ans = next_answer(&p)); answered++) {
			if (!*ans)
				done++;
			else if (!bad++) {
				first_bad = from + answered;
				why = first_line(ans, tmp, sizeof(tmp));
			}
		}
		if (bad) {
			char more[64] = "";
			if (bad > 1)
				snprintf(more, sizeof(more), " (and %zu more)", bad - 1);
			rc = mg_error_set(
			    err, MG_ERROR, "HAProxy refused `set weight %s/%s %d`%s: %s%s",
			    h->backend, h->servers[first_bad], weight_of(h, first_bad, &w), more,
			    why,
			    !strncmp(why, "Permission denied", 17)
			        ? "; this runtime API is not at admin level: give its `stats socket` "
			          "line `level admin`"
			        : "");
		} else if (answered < to - from) {
			rc = mg_error_set(
			    err, MG_ERROR,
			    "HAProxy's runtime API at %s answered %zu of %zu `set weight` "
			    "commands and closed the connection; whether the others ran "
			    "is unknown",
			    h->where, answered, to - from);
		}
		free(reply);
	}
	/* a step half done is not the step before it either: say so */
	if (rc && done && err) {
		char first[sizeof(err->message)];
		snprintf(first, sizeof(first), "%s", err->message);
		mg_error_set(
		    err, rc,
		    "%s; %zu of this step's %zu weights were set, so run the step again or "
		    "roll back",
		    first, done, nsrv);
	}
	lines_free(&l);
	return rc;
}

static int hx_describe(void *drv, double pct, json_t **out, mg_error *err)
{
	hx *h = drv;
	*out = NULL;
	hx_lines l;
	mg_weights w;
	int rc = build_lines(h, pct, &l, &w, err);
	if (rc)
		return rc;
	json_t *arr = json_array();
	for (size_t k = 0; arr && k < l.nlines; k++)
		if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "kind", "runtime-api",
		                                         h->socket ? "socket" : "address", h->where,
		                                         "line", l.lines[k]))) {
			json_decref(arr);
			arr = NULL;
		}
	lines_free(&l);
	if (!arr)
		return mg_error_oom(err);
	*out = arr;
	return 0;
}

const mg_traffic_ops mg_traffic_haproxy_ops = {
    .name = "haproxy",
    .read = hx_read,
    .apply = hx_apply,
    .describe = hx_describe,
    .free = hx_free,
};
