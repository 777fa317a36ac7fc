/*
 * The HTTP/1.1 server of serve.h: one listening socket, one thread, one
 * client at a time, every wait bounded. The thread never holds the mutex
 * while it talks to a client: it copies the document and lets go, so a
 * publish from the caller's loop waits for a memcpy at most, never for the
 * network.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "serve.h"

#define PATH_MAX_LEN 64
#define CTYPE_MAX    96
/* After an answer to a client still sending (431, 405 with a body), what is read and thrown
 * away before closing, so the kernel does not reset the connection over the answer. */
#define DRAIN_MS    200
#define DRAIN_BYTES 65536

typedef struct {
	char path[PATH_MAX_LEN];
	char ctype[CTYPE_MAX];
	int status;
	char *body;
	size_t len;
	int64_t at_ms; /* mg_clock_ms() of the publish */
	int64_t ttl_ms;
} doc;

struct mg_serve {
	int fd;
	int wake[2]; /* written once by mg_serve_free: the thread ends */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	doc docs[MG_SERVE_MAX_DOCS];
	size_t ndocs;
	char addr[80];
	int64_t read_timeout_ms;
	size_t max_request;
	char *req; /* max_request + 1 bytes, the thread's own */
};

/* ---- addresses ------------------------------------------------------------------------- */

static int parse_addr(struct sockaddr_storage *ss, socklen_t *len, const char *addr, mg_error *err)
{
	memset(ss, 0, sizeof(*ss));
	if (!addr || !*addr)
		return mg_error_set(err, MG_EINVALID,
		                    "an empty address: give HOST:PORT, such as 127.0.0.1:9090");
	char host[64];
	const char *port;
	bool v6 = false;
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (!close || close[1] != ':')
			return mg_error_set(
			    err, MG_EINVALID,
			    "\"%.200s\": an IPv6 address is written [ADDRESS]:PORT, "
			    "such as [::1]:9090",
			    addr);
		size_t n = (size_t)(close - addr - 1);
		if (n >= sizeof(host))
			return mg_error_set(err, MG_EINVALID, "\"%.200s\": the host is too long",
			                    addr);
		memcpy(host, addr + 1, n);
		host[n] = '\0';
		port = close + 2;
		v6 = true;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon)
			return mg_error_set(err, MG_EINVALID,
			                    "\"%.200s\" has no port: give HOST:PORT, such as "
			                    "127.0.0.1:9090 or :9090 for every interface",
			                    addr);
		size_t n = (size_t)(colon - addr);
		if (memchr(addr, ':', n))
			return mg_error_set(err, MG_EINVALID,
			                    "\"%.200s\": an IPv6 address goes in brackets, such as "
			                    "[::1]:9090",
			                    addr);
		if (n >= sizeof(host))
			return mg_error_set(err, MG_EINVALID, "\"%.200s\": the host is too long",
			                    addr);
		memcpy(host, addr, n);
		host[n] = '\0';
		port = colon + 1;
	}
	size_t pn = strlen(port);
	if (pn == 0 || pn > 5 || strspn(port, "0123456789") != pn || atol(port) > 65535)
		return mg_error_set(err, MG_EINVALID,
		                    "\"%.200s\": the port must be a number from 0 to 65535", addr);
	uint16_t p = htons((uint16_t)atol(port));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = p;
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return mg_error_set(
			    err, MG_EINVALID,
			    "\"%.200s\": \"%s\" is not an IPv6 address (names are not "
			    "looked up)",
			    addr, host);
		*len = sizeof(*a);
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = p;
	if (!*host)
		a->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return mg_error_set(
		    err, MG_EINVALID,
		    "\"%.200s\": \"%s\" is not an IPv4 address (names are not looked "
		    "up; IPv6 goes in brackets)",
		    addr, host);
	*len = sizeof(*a);
	return 0;
}

int mg_serve_check_addr(const char *addr, mg_error *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	return parse_addr(&ss, &len, addr, err);
}

static void format_addr(char *buf, size_t size, const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(a->sin_port));
	}
}

/* ---- talking to one client ------------------------------------------------------------- */

/* Waits for fd to be ready for ev until deadline; false at the deadline or when told to stop. */
static bool wait_fd(mg_serve *s, int fd, short ev, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mg_clock_ms();
		if (left <= 0)
			return false;
		struct pollfd p[2] = {{fd, ev, 0}, {s->wake[0], POLLIN, 0}};
		int n = poll(p, 2, (int)(left > 1000 ? 1000 : left));
		if (n < 0 && errno != EINTR)
			return false;
		if (n > 0 && p[1].revents)
			return false;
		if (n > 0 && p[0].revents)
			return true;
	}
}

/* Sends all of buf by the deadline; false if the client does not take it. */
static bool send_all(mg_serve *s, int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return false;
		if (!wait_fd(s, fd, POLLOUT, deadline))
			return false;
	}
	return true;
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

static void respond(mg_serve *s, int fd, int status, const char *ctype, const char *body,
                    size_t len, bool head)
{
	char h[512];
	int n = snprintf(h, sizeof(h),
	                 "HTTP/1.1 %d %s\r\n"
	                 "Content-Type: %s\r\n"
	                 "Content-Length: %zu\r\n"
	                 "Cache-Control: no-store\r\n"
	                 "%s"
	                 "Connection: close\r\n\r\n",
	                 status, reason(status), ctype, len,
	                 status == 405 ? "Allow: GET, HEAD\r\n" : "");
	int64_t deadline = mg_clock_ms() + s->read_timeout_ms;
	if (n > 0 && (size_t)n < sizeof(h) && send_all(s, fd, h, (size_t)n, deadline) && !head)
		send_all(s, fd, body, len, deadline);
}

static void respond_text(mg_serve *s, int fd, int status, const char *text, bool head)
{
	respond(s, fd, status, "text/plain; charset=utf-8", text, strlen(text), head);
}

/* The answer is out: tell the client, and read what it still sends for a moment. */
static void drain(mg_serve *s, int fd)
{
	shutdown(fd, SHUT_WR);
	int64_t deadline = mg_clock_ms() + DRAIN_MS;
	size_t total = 0;
	char buf[4096];
	while (total < DRAIN_BYTES && wait_fd(s, fd, POLLIN, deadline)) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
			break;
		if (n > 0)
			total += (size_t)n;
	}
}

/* The published document at path, copied, answered. */
static void answer_doc(mg_serve *s, int fd, const char *path, bool head)
{
	doc d = {.status = 0};
	bool oom = false;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->ndocs; i++) {
		if (strcmp(s->docs[i].path, path))
			continue;
		d = s->docs[i];
		d.body = malloc(d.len + 1);
		if (d.body)
			memcpy(d.body, s->docs[i].body, d.len + 1);
		else
			oom = true;
		break;
	}
	pthread_mutex_unlock(&s->mu);
	if (oom) {
		respond_text(s, fd, 500, "out of memory\n", head);
		return;
	}
	if (!d.status) {
		respond_text(s, fd, 404, "not found\n", head);
		return;
	}
	int64_t age = mg_clock_ms() - d.at_ms;
	if (d.ttl_ms > 0 && age > d.ttl_ms) {
		char msg[200];
		snprintf(msg, sizeof(msg),
		         "stale: %s was last published %lld ms ago, more than %lld ms: the loop "
		         "that publishes it is stuck\n",
		         d.path, (long long)age, (long long)d.ttl_ms);
		respond_text(s, fd, 503, msg, head);
	} else {
		respond(s, fd, d.status, d.ctype, d.body, d.len, head);
	}
	free(d.body);
}

/* The end of the request's headers in buf[0..len), or NULL while it is incomplete. */
static const char *headers_end(const char *buf, size_t len)
{
	const char *e = memmem(buf, len, "\r\n\r\n", 4);
	return e ? e : memmem(buf, len, "\n\n", 2);
}

static void handle(mg_serve *s, int fd)
{
	char *buf = s->req;
	size_t len = 0;
	int64_t deadline = mg_clock_ms() + s->read_timeout_ms;
	/* the whole request by the deadline: a silent or trickling client gets 408 */
	while (!headers_end(buf, len)) {
		if (len >= s->max_request) {
			respond_text(s, fd, 431, "request too large\n", false);
			drain(s, fd);
			return;
		}
		if (!wait_fd(s, fd, POLLIN, deadline)) {
			if (mg_clock_ms() >= deadline)
				respond_text(s, fd, 408, "request timeout\n", false);
			return;
		}
		ssize_t n = recv(fd, buf + len, s->max_request - len, 0);
		if (n == 0)
			return;
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			return;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	/* the request line: METHOD SP TARGET SP HTTP/1.x */
	char method[16], target[PATH_MAX_LEN * 4], version[16];
	size_t line = strcspn(buf, "\r\n");
	buf[line] = '\0';
	if (sscanf(buf, "%15s %255s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) || target[0] != '/') {
		respond_text(s, fd, 400, "bad request\n", false);
		drain(s, fd);
		return;
	}
	bool head = !strcmp(method, "HEAD");
	if (!head && strcmp(method, "GET")) {
		respond_text(s, fd, 405, "only GET and HEAD\n", false);
		drain(s, fd); /* a POST may be sending its body */
		return;
	}
	target[strcspn(target, "?#")] = '\0';
	answer_doc(s, fd, target, head);
}

static void *serve_thread(void *ud)
{
	mg_serve *s = ud;
	for (;;) {
		struct pollfd p[2] = {{s->fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
		int n = poll(p, 2, -1);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (p[1].revents)
			break;
		int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			/* out of descriptors: let them come back instead of spinning on poll */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				poll(&p[1], 1, 100);
			continue;
		}
		handle(s, fd);
		close(fd);
	}
	return NULL;
}

/* ---- the server ------------------------------------------------------------------------ */

int mg_serve_start(mg_serve **out, const char *addr, const mg_serve_options *o, mg_error *err)
{
	*out = NULL;
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc = parse_addr(&ss, &sl, addr, err);
	if (rc)
		return rc;
	mg_serve *s = calloc(1, sizeof(*s));
	if (!s)
		return mg_error_oom(err);
	s->fd = s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	s->read_timeout_ms =
	    o && o->read_timeout_ms > 0 ? o->read_timeout_ms : MG_SERVE_READ_TIMEOUT_MS;
	s->max_request = o && o->max_request > 0 ? o->max_request : MG_SERVE_MAX_REQUEST;
	s->req = malloc(s->max_request + 1);
	if (!s->req) {
		mg_serve_free(s);
		return mg_error_oom(err);
	}
	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0) {
		rc = mg_error_set(err, MG_EIO, "cannot listen on %s: socket: %s", addr,
		                  strerror(errno));
		mg_serve_free(s);
		return rc;
	}
	int one = 1, zero = 0;
	/* a restarted process binds while the last one's connections are in TIME_WAIT;
	 * a port another process listens on is still refused */
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6) /* [::] is both families, whatever the sysctl says */
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(s->fd, (struct sockaddr *)&ss, sl) < 0 || listen(s->fd, 16) < 0) {
		int e = errno;
		rc = mg_error_set(err, e == EADDRNOTAVAIL ? MG_EINVALID : MG_EIO,
		                  "cannot listen on %s: %s%s", addr, strerror(e),
		                  e == EADDRINUSE      ? " (another process listens there)"
		                  : e == EADDRNOTAVAIL ? " (no interface of this host has it)"
		                                       : "");
		mg_serve_free(s);
		return rc;
	}
	struct sockaddr_storage bound;
	socklen_t bl = sizeof(bound);
	if (getsockname(s->fd, (struct sockaddr *)&bound, &bl) == 0)
		format_addr(s->addr, sizeof(s->addr), &bound);
	else
		snprintf(s->addr, sizeof(s->addr), "%.79s", addr);
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		rc = mg_error_set(err, MG_EIO, "cannot serve %s: pipe: %s", addr, strerror(errno));
		mg_serve_free(s);
		return rc;
	}
	/* the caller's signals (SIGINT, SIGTERM) must wake the caller's loop, not this thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&s->thread, NULL, serve_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		rc = mg_error_set(err, MG_EIO, "cannot serve %s: a thread: %s", addr, strerror(e));
		mg_serve_free(s);
		return rc;
	}
	s->started = true;
	*out = s;
	return 0;
}

void mg_serve_free(mg_serve *s)
{
	if (!s)
		return;
	if (s->started) {
		ssize_t w;
		do
			w = write(s->wake[1], "x", 1);
		while (w < 0 && errno == EINTR);
		pthread_join(s->thread, NULL);
	}
	if (s->fd >= 0)
		close(s->fd);
	for (int i = 0; i < 2; i++)
		if (s->wake[i] >= 0)
			close(s->wake[i]);
	for (size_t i = 0; i < s->ndocs; i++)
		free(s->docs[i].body);
	pthread_mutex_destroy(&s->mu);
	free(s->req);
	free(s);
}

const char *mg_serve_address(const mg_serve *s)
{
	return s->addr;
}

int mg_serve_publish(mg_serve *s, const char *path, int status, const char *content_type,
                     const char *body, int64_t ttl_ms, mg_error *err)
{
	if (!path || path[0] != '/' || strlen(path) >= PATH_MAX_LEN)
		return mg_error_set(err, MG_EINVALID,
		                    "cannot publish at \"%.80s\": a path is /NAME",
		                    path ? path : "");
	size_t len = strlen(body);
	char *copy = malloc(len + 1);
	if (!copy)
		return mg_error_oom(err);
	memcpy(copy, body, len + 1);
	pthread_mutex_lock(&s->mu);
	doc *d = NULL;
	for (size_t i = 0; i < s->ndocs && !d; i++)
		if (!strcmp(s->docs[i].path, path))
			d = &s->docs[i];
	if (!d && s->ndocs < MG_SERVE_MAX_DOCS) {
		d = &s->docs[s->ndocs++];
		snprintf(d->path, sizeof(d->path), "%s", path);
	}
	if (!d) {
		pthread_mutex_unlock(&s->mu);
		free(copy);
		return mg_error_set(err, MG_EINVALID, "cannot publish at %s: %d paths already are",
		                    path, MG_SERVE_MAX_DOCS);
	}
	free(d->body);
	d->body = copy;
	d->len = len;
	d->status = status;
	snprintf(d->ctype, sizeof(d->ctype), "%s",
	         content_type ? content_type : "text/plain; charset=utf-8");
	d->at_ms = mg_clock_ms();
	d->ttl_ms = ttl_ms;
	pthread_mutex_unlock(&s->mu);
	return 0;
}
