/*
 * The one HTTP client of lib/: every request to Cloudflare, Prometheus or a
 * kube-apiserver goes through here, so timeouts, retries, TLS verification
 * and the rule that a token never appears in a message live in one place.
 */
#ifndef MG_HTTP_H
#define MG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"

typedef struct {
	const char *method; /* "GET", "PATCH", ... */
	const char *url;
	const char *body;         /* NULL for none */
	const char *content_type; /* of body */
	const char *accept;       /* NULL: application/json */
	const char *bearer_token; /* sent as Authorization: Bearer; never logged or shown */
	const char *ca_file;      /* NULL: the system's CAs; verification is always on */
	int64_t timeout_ms;       /* per attempt; 0: 10 s */
	int64_t deadline_ms;      /* all attempts and waits together; 0: 30 s */
	int max_attempts;         /* 0: 5 */
	/* When non-NULL and *cancel becomes non-zero, the transfer and any retry wait stop
	 * at once and mg_http_do fails with MG_ECANCELED: a signalled autopilot must not sit
	 * out a slow server. */
	const mg_cancel *cancel;
	/* For a kube-apiserver (all optional; zero keeps the behaviour above). */
	const char *ca_pem;           /* CA certificates as PEM text, used instead of ca_file */
	const char *client_cert_file; /* PEM client certificate for TLS client authentication */
	const char *client_key_file;  /* its PEM private key */
	const char *client_cert_pem;  /* the same from memory (never logged or shown) */
	const char *client_key_pem;
	/* The name the server's certificate is checked against and sent as SNI, when it
	 * differs from the URL's host (kubeconfig's tls-server-name). */
	const char *tls_server_name;
	/* No certificate verification at all: only when a user explicitly asked for it
	 * (kubeconfig's insecure-skip-tls-verify), and the caller warns about it. */
	bool insecure;
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated */
} mg_http_request;

typedef struct {
	long status; /* last HTTP status, 0 if no answer */
	char *body;  /* NUL-terminated, malloc'd */
	size_t len;
	char *content_type; /* malloc'd, or NULL */
	int attempts;
	int64_t elapsed_ms;
} mg_http_response;

/*
 * Sends the request. 429 waits for Retry-After; 5xx, timeouts and failed
 * connections back off exponentially with jitter; all within the deadline.
 * Returns 0 whenever an answer (of any status) was received in the end,
 * MG_ERROR with a clear message when none was (unreachable, TLS failure,
 * deadline passed); the last answer is in *out either way.
 */
int mg_http_do(mg_http_response *out, const mg_http_request *req, mg_error *err);
void mg_http_response_clear(mg_http_response *res);

/* libcurl's global init; call once, before threads. */
int mg_http_global_init(mg_error *err);

#endif
