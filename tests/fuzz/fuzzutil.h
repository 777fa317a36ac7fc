/*
 * What the fuzz targets share. The HTTP server: one fuzz input is the sequence of answers
 * the next requests get (lib/http_fake.h), so the real parsers of Prometheus,
 * Cloudflare and Kubernetes API answers see fuzzed bodies.
 *
 * Input format: answers separated by a line "===" ("\n===\n"). Each answer
 * may start with a line "STATUS[ CONTENT-TYPE]" (three digits, e.g.
 * "404 text/plain"; just "200" means no Content-Type); without it the answer
 * is 200 application/json and the whole part is the body. An answer that is
 * exactly "!" is a request that got no answer (a transport error). Once the
 * answers run out every request fails that way too.
 */
#ifndef FZ_FUZZUTIL_H
#define FZ_FUZZUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Installs the answers in data[0..size) (kept, not copied: valid until fz_http_stop). */
void fz_http_start(const uint8_t *data, size_t size);
/* How many requests were made since fz_http_start. */
int fz_http_requests(void);
/* Real transfers again. */
void fz_http_stop(void);

/*
 * Writes data to NAME in a private directory made on first use (removed at
 * exit), for the loaders that only read files; returns its path (static).
 * Aborts if it cannot: a target that cannot run must not pass.
 */
const char *fz_temp_file(const char *name, const void *data, size_t size);

/* With FUZZ_VERBOSE set (when checking that seeds reach the parsers): the outcome on stderr. */
void fz_report(const char *what, int rc, const mg_error *err);

/* Sends lib/'s log to a sink that formats every message and drops it. */
void fz_quiet_log(void);

#endif
