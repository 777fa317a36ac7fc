/*
 * Test-only: answers mg_http_do without a network, so the fuzz targets can
 * drive the real response parsing of lib/gates/prometheus.c,
 * lib/traffic/cloudflare.c and lib/kube/ with any bytes as the answer. Never
 * set by the program itself; nothing but tests/fuzz/ includes this header.
 */
#ifndef MG_HTTP_FAKE_H
#define MG_HTTP_FAKE_H

#include "error.h"
#include "http.h"

/*
 * Called instead of the transfer, once per mg_http_do (no retries, no waits).
 * Fills *out (status, malloc'd NUL-terminated body and len, malloc'd
 * content_type or NULL) and returns 0, or returns a negative MG_E* with err
 * set, as a request that got no answer. mg_http_do then applies its own rules
 * to the answer (a redirect is an error) as it does for a real one.
 */
typedef int (*mg_http_fake_fn)(mg_http_response *out, const mg_http_request *req, void *ud,
                               mg_error *err);

/* fn NULL: real transfers again. Not thread-safe: set it before any request. */
void mg_http_fake_set(mg_http_fake_fn fn, void *ud);

#endif
