/*
 * A small HTTP/1.1 server for what a long-lived command shows about itself
 * (`migrate run --metrics-addr`: /metrics, /healthz, /readyz). The caller's
 * thread publishes whole documents; one thread of the server's own answers
 * GET and HEAD for them, one client at a time, so a scrape never waits for
 * the loop that moves traffic and the loop never waits for a scraper.
 *
 * It is not a general web server, on purpose: no request body is read, no
 * keep-alive (every answer closes the connection), no TLS. A request must
 * arrive whole within the read timeout and fit in max_request bytes, so a
 * client that sends nothing or trickles holds the server for at most the
 * read timeout, and one that sends too much gets 431 without more being
 * read. Other paths are 404, other methods 405.
 */
#ifndef MG_SERVE_H
#define MG_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct mg_serve mg_serve;

/* How long a client has to send its whole request, and to take the answer. */
#define MG_SERVE_READ_TIMEOUT_MS 2000
/* The request line and headers, in bytes: a scraper sends a few hundred. */
#define MG_SERVE_MAX_REQUEST 8192
/* Documents a server holds (paths published). */
#define MG_SERVE_MAX_DOCS 8

typedef struct {
	int64_t read_timeout_ms; /* 0: MG_SERVE_READ_TIMEOUT_MS */
	size_t max_request;      /* 0: MG_SERVE_MAX_REQUEST */
} mg_serve_options;

/*
 * Whether addr is an address the server can be given, without binding:
 * "IPV4:PORT", "[IPV6]:PORT" or ":PORT" (every IPv4 interface, 0.0.0.0;
 * "[::]:PORT" is every interface of both families). Numeric hosts only (no
 * name is looked up); PORT 0 to 65535, 0 being a port the kernel picks.
 * MG_EINVALID naming addr and what is wrong with it.
 */
int mg_serve_check_addr(const char *addr, mg_error *err);

/*
 * Binds addr (as mg_serve_check_addr takes it) and starts answering: 404 for
 * every path until one is published. MG_EINVALID for a malformed address or
 * one that is on no interface of this host, MG_EIO when the system refuses
 * it (the port in use, a privileged port): the message names the address.
 * o may be NULL.
 */
int mg_serve_start(mg_serve **out, const char *addr, const mg_serve_options *o, mg_error *err);

/* Stops the thread, closes the socket, frees the documents; NULL is fine. */
void mg_serve_free(mg_serve *s);

/* The address bound, "127.0.0.1:9090" or "[::1]:9090" (the kernel's port for PORT 0). */
const char *mg_serve_address(const mg_serve *s);

/*
 * Publishes body (copied; NUL-terminated) at path ("/metrics"), answered
 * with status and content_type until the next publish at that path. With
 * ttl_ms > 0, once ttl_ms have passed since this publish and no other came,
 * the path answers 503 saying how long ago it was published: a document
 * that must be refreshed to stay true (a liveness probe). MG_EINVALID for a
 * path not starting with '/' or over 63 bytes, or MG_SERVE_MAX_DOCS paths
 * already published; MG_ENOMEM.
 */
int mg_serve_publish(mg_serve *s, const char *path, int status, const char *content_type,
                     const char *body, int64_t ttl_ms, mg_error *err);

#endif
