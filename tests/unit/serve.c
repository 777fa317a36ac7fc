/*
 * The HTTP server of lib/serve.h on loopback, talked to over plain sockets
 * (not through any code under test): what is published is answered, every
 * other path and method refused, and no client, silent, slow or oversized,
 * holds it for longer than its read timeout.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "serve.h"

static mg_serve *srv;
static mg_error err = MG_ERROR_INIT;

static void setup(void)
{
	srv = NULL;
	mg_error_clear(&err);
}

static void teardown(void)
{
	mg_serve_free(srv);
	srv = NULL;
	mg_error_clear(&err);
}

TestSuite(serve, .init = setup, .fini = teardown, .timeout = 30);

/* The port of "127.0.0.1:PORT". */
static int port_of(const mg_serve *s)
{
	const char *a = mg_serve_address(s);
	const char *colon = strrchr(a, ':');
	cr_assert_not_null(colon, "%s", a);
	return atoi(colon + 1);
}

static void start(const mg_serve_options *o)
{
	cr_assert_eq(mg_serve_start(&srv, "127.0.0.1:0", o, &err), 0, "%s", err.message);
	cr_assert_gt(port_of(srv), 0);
}

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s",
	             strerror(errno));
	return fd;
}

/* Everything the server sends until it closes (5 s at most), NUL-terminated. */
static void read_all(int fd, char *buf, size_t size)
{
	size_t n = 0;
	int64_t end = tu_now_ms() + 5000;
	while (n < size - 1) {
		int64_t left = end - tu_now_ms();
		cr_assert_gt(left, 0, "no end of the answer within 5 s: %.*s", (int)n, buf);
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t got = recv(fd, buf + n, size - 1 - n, 0);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
}

/* Sends req whole, returns the answer's status; the whole answer in ans. */
static int ask(const char *req, char *ans, size_t size)
{
	int fd = dial(port_of(srv));
	cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	read_all(fd, ans, size);
	close(fd);
	int status = 0;
	cr_assert_eq(sscanf(ans, "HTTP/1.1 %d ", &status), 1, "not an HTTP answer: %s", ans);
	return status;
}

static const char *body_of(const char *ans)
{
	const char *b = strstr(ans, "\r\n\r\n");
	cr_assert_not_null(b, "%s", ans);
	return b + 4;
}

Test(serve, answers_what_was_published_and_404_for_the_rest)
{
	start(NULL);
	static char ans[8192];
	cr_assert_eq(ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", ans, sizeof(ans)), 404);
	cr_assert_eq(
	    mg_serve_publish(srv, "/metrics", 200, "text/plain; version=0.0.4", "a 1\n", 0, &err),
	    0, "%s", err.message);
	cr_assert_eq(ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", ans, sizeof(ans)), 200);
	cr_assert_str_eq(body_of(ans), "a 1\n");
	cr_assert(strstr(ans, "\r\nContent-Type: text/plain; version=0.0.4\r\n"), "%s", ans);
	cr_assert(strstr(ans, "\r\nContent-Length: 4\r\n"), "%s", ans);
	cr_assert(strstr(ans, "\r\nConnection: close\r\n"), "%s", ans);
	/* a query string is not part of the path; HTTP/1.0 and bare LF are fine */
	cr_assert_eq(ask("GET /metrics?x=1 HTTP/1.0\n\n", ans, sizeof(ans)), 200);
	cr_assert_str_eq(body_of(ans), "a 1\n");
	/* HEAD: the same headers, no body */
	cr_assert_eq(ask("HEAD /metrics HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 200);
	cr_assert(strstr(ans, "\r\nContent-Length: 4\r\n"), "%s", ans);
	cr_assert_str_eq(body_of(ans), "");
	/* the next publish replaces it */
	cr_assert_eq(mg_serve_publish(srv, "/metrics", 200, NULL, "b 2\n", 0, &err), 0);
	cr_assert_eq(ask("GET /metrics HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 200);
	cr_assert_str_eq(body_of(ans), "b 2\n");
	cr_assert_eq(ask("GET /metricsx HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 404);
	cr_assert_eq(ask("GET / HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 404);
}

Test(serve, other_methods_are_405_and_garbage_400)
{
	start(NULL);
	cr_assert_eq(mg_serve_publish(srv, "/metrics", 200, NULL, "a 1\n", 0, &err), 0);
	static char ans[8192];
	cr_assert_eq(
	    ask("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", ans, sizeof(ans)), 405);
	cr_assert(strstr(ans, "\r\nAllow: GET, HEAD\r\n"), "%s", ans);
	cr_assert_eq(ask("DELETE /metrics HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 405);
	cr_assert_eq(ask("hello\r\n\r\n", ans, sizeof(ans)), 400);
	cr_assert_eq(ask("GET metrics HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 400);
	cr_assert_eq(ask("GET /metrics SPDY/3\r\n\r\n", ans, sizeof(ans)), 400);
	/* and it still answers after them */
	cr_assert_eq(ask("GET /metrics HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 200);
}

Test(serve, a_request_over_the_limit_is_431_without_reading_it_all)
{
	mg_serve_options o = {.max_request = 1024};
	start(&o);
	cr_assert_eq(mg_serve_publish(srv, "/metrics", 200, NULL, "a 1\n", 0, &err), 0);
	static char req[64 * 1024], ans[8192];
	/* headers that never end: 64 KiB of them */
	int n = snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\n");
	while ((size_t)n < sizeof(req) - 16)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "X-A: aaaaaaaaaaaa\r\n");
	int fd = dial(port_of(srv));
	/* the server stops reading at 1 KiB: what it never reads may not all be taken */
	ssize_t sent = send(fd, req, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	cr_assert_gt(sent, 0);
	read_all(fd, ans, sizeof(ans));
	close(fd);
	int status = 0;
	cr_assert_eq(sscanf(ans, "HTTP/1.1 %d ", &status), 1, "%s", ans);
	cr_assert_eq(status, 431, "%s", ans);
	/* a request that fits is still answered */
	cr_assert_eq(ask("GET /metrics HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 200);
}

Test(serve, a_silent_client_holds_it_for_the_read_timeout_at_most)
{
	start(NULL); /* the default: MG_SERVE_READ_TIMEOUT_MS, 2 s */
	cr_assert_eq(mg_serve_publish(srv, "/metrics", 200, NULL, "a 1\n", 0, &err), 0);
	int64_t t0 = tu_now_ms();
	int silent = dial(port_of(srv)); /* connects and sends nothing */
	int slow = dial(port_of(srv));   /* sends a byte at a time, never the end */
	cr_assert_eq(send(slow, "G", 1, MSG_NOSIGNAL), 1);
	static char ans[8192];
	int status = ask("GET /metrics HTTP/1.1\r\n\r\n", ans, sizeof(ans));
	int64_t took = tu_now_ms() - t0;
	cr_assert_eq(status, 200, "%s", ans);
	/* one read timeout per client ahead of it, and a margin for a loaded machine */
	cr_assert_leq(took, 2 * MG_SERVE_READ_TIMEOUT_MS + 1000, "answered after %lld ms",
	              (long long)took);
	/* the silent one was told why it was dropped */
	read_all(silent, ans, sizeof(ans));
	cr_assert(!strncmp(ans, "HTTP/1.1 408 ", 13), "%s", ans);
	close(silent);
	close(slow);
}

Test(serve, a_document_with_a_ttl_turns_503_when_not_refreshed)
{
	start(NULL);
	cr_assert_eq(mg_serve_publish(srv, "/healthz", 200, NULL, "ok\n", 300, &err), 0);
	static char ans[8192];
	cr_assert_eq(ask("GET /healthz HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 200);
	cr_assert_str_eq(body_of(ans), "ok\n");
	struct timespec ts = {0, 500 * 1000000L};
	nanosleep(&ts, NULL);
	cr_assert_eq(ask("GET /healthz HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 503);
	cr_assert(strstr(body_of(ans), "stale: /healthz was last published "), "%s", ans);
	/* published again: alive again */
	cr_assert_eq(mg_serve_publish(srv, "/healthz", 200, NULL, "ok\n", 300, &err), 0);
	cr_assert_eq(ask("GET /healthz HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 200);
	/* a status of the caller's own (not ready) */
	cr_assert_eq(mg_serve_publish(srv, "/readyz", 503, NULL, "starting\n", 0, &err), 0);
	cr_assert_eq(ask("GET /readyz HTTP/1.1\r\n\r\n", ans, sizeof(ans)), 503);
	cr_assert_str_eq(body_of(ans), "starting\n");
}

Test(serve, a_port_in_use_is_refused_naming_the_address)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	socklen_t len = sizeof(a);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
	int rc = mg_serve_start(&srv, addr, NULL, &err);
	close(fd);
	cr_assert_eq(rc, MG_EIO, "%d %s", rc, err.message);
	cr_assert_null(srv);
	cr_assert(strstr(err.message, addr), "%s", err.message);
	cr_assert(strstr(err.message, "in use"), "%s", err.message);
	/* an address of no interface here is the operator's to fix */
	mg_error_clear(&err);
	cr_assert_eq(mg_serve_start(&srv, "192.0.2.1:0", NULL, &err), MG_EINVALID, "%s",
	             err.message);
	cr_assert(strstr(err.message, "192.0.2.1:0"), "%s", err.message);
}

Test(serve, addresses)
{
	static const struct {
		const char *addr;
		const char *says; /* NULL: valid */
	} cases[] = {
	    {"127.0.0.1:9090", NULL},
	    {":9090", NULL},
	    {"0.0.0.0:0", NULL},
	    {"[::1]:9090", NULL},
	    {"[::]:9090", NULL},
	    {"", "empty"},
	    {"9090", "no port"},
	    {"127.0.0.1", "no port"},
	    {"127.0.0.1:", "port must be a number"},
	    {"127.0.0.1:65536", "port must be a number"},
	    {"127.0.0.1:-1", "port must be a number"},
	    {"127.0.0.1:90a", "port must be a number"},
	    {"::1:9090", "in brackets"},
	    {"[::1]9090", "[ADDRESS]:PORT"},
	    {"[::1:9090", "[ADDRESS]:PORT"},
	    {"[127.0.0.1]:9090", "not an IPv6 address"},
	    {"localhost:9090", "not an IPv4 address"},
	    {"1.2.3:9090", "not an IPv4 address"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		mg_error e = MG_ERROR_INIT;
		int rc = mg_serve_check_addr(cases[i].addr, &e);
		if (!cases[i].says) {
			cr_expect_eq(rc, 0, "%s: %s", cases[i].addr, e.message);
		} else {
			cr_expect_eq(rc, MG_EINVALID, "%s: %d", cases[i].addr, rc);
			cr_expect(strstr(e.message, cases[i].says), "%s: %s", cases[i].addr,
			          e.message);
		}
		mg_error_clear(&e);
	}
}

Test(serve, publish_refuses_what_it_cannot_hold)
{
	start(NULL);
	cr_assert_eq(mg_serve_publish(srv, "metrics", 200, NULL, "", 0, &err), MG_EINVALID);
	char path[16];
	for (int i = 0; i < MG_SERVE_MAX_DOCS; i++) {
		snprintf(path, sizeof(path), "/d%d", i);
		cr_assert_eq(mg_serve_publish(srv, path, 200, NULL, "x", 0, &err), 0, "%s",
		             err.message);
	}
	cr_assert_eq(mg_serve_publish(srv, "/one-more", 200, NULL, "x", 0, &err), MG_EINVALID);
	/* an existing path is replaced, not added */
	cr_assert_eq(mg_serve_publish(srv, "/d0", 200, NULL, "y", 0, &err), 0, "%s", err.message);
}
