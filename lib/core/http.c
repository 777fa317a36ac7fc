/*
 * The one HTTP client of lib/ (see http.h). A fresh libcurl easy handle per
 * attempt: requests are few and far between (a traffic step every few
 * minutes), so connection reuse buys nothing and a clean handle means no
 * state leaks from a failed attempt into the next.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_fake.h"
#include "log.h"

#ifndef MG_VERSION
#define MG_VERSION "dev"
#endif

#define DEFAULT_TIMEOUT_MS  10000
#define DEFAULT_DEADLINE_MS 30000
#define DEFAULT_ATTEMPTS    5
#define BACKOFF_BASE_MS     200
#define BACKOFF_CAP_MS      5000
/* An attempt with less time than this left cannot succeed; stop instead of trying it. */
#define MIN_ATTEMPT_MS 50
/* API answers are small; anything this large is not the API and must not eat the memory. */
#define MAX_BODY (16u << 20)

typedef enum {
	FAIL_NONE,
	FAIL_TIMEOUT,
	FAIL_CONNECT,     /* refused, reset, name lookup: worth another try */
	FAIL_TLS,         /* a trust problem does not fix itself: not retried */
	FAIL_CLIENT_CERT, /* our own certificate or key is unusable: not retried */
	FAIL_CAFILE,
	FAIL_TOO_BIG,
	FAIL_CANCELED, /* the caller's cancel flag was raised */
	FAIL_OTHER,    /* bad URL, unsupported protocol, out of memory: not retried */
} failure;

typedef struct {
	char *buf;
	size_t len, cap;
	bool too_big;
} sink;

typedef struct {
	failure fail;
	CURLcode code;
	char detail[CURL_ERROR_SIZE];
	long status;
	char *location;    /* of a redirect */
	int64_t retry_ms;  /* Retry-After of a 429; -1 when absent */
	int64_t budget_ms; /* the per-attempt timeout that was used */
} outcome;

static bool global_done;

/* lib/http_fake.h: only the fuzz targets set it */
static mg_http_fake_fn fake_fn;
static void *fake_ud;

void mg_http_fake_set(mg_http_fake_fn fn, void *ud)
{
	fake_fn = fn;
	fake_ud = ud;
}

int mg_http_global_init(mg_error *err)
{
	if (global_done)
		return 0;
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
		return mg_error_set(err, MG_ERROR, "cannot initialise libcurl: %s",
		                    curl_easy_strerror(rc));
	global_done = true;
	return 0;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	const mg_cancel *cancel = ud;
	return *cancel ? 1 : 0;
}

static uint64_t random_u64(void)
{
	uint64_t r;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
		return r;
	/* only jitter depends on it: a weak fallback is fine */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)getpid();
}

/*
 * Full jitter (a random wait between 0 and the exponential bound) so that
 * many clients failing together do not retry together; never longer than
 * what leaves one useful attempt before the deadline.
 */
static int64_t backoff_ms(int retry, int64_t remaining_ms)
{
	int64_t bound = BACKOFF_BASE_MS;
	for (int i = 0; i < retry && bound < BACKOFF_CAP_MS; i++)
		bound *= 2;
	if (bound > BACKOFF_CAP_MS)
		bound = BACKOFF_CAP_MS;
	if (bound > remaining_ms - MIN_ATTEMPT_MS)
		bound = remaining_ms - MIN_ATTEMPT_MS;
	return bound > 0 ? (int64_t)(random_u64() % (uint64_t)(bound + 1)) : 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	sink *s = ud;
	size_t len = size * n;
	if (s->len + len + 1 > MAX_BODY) {
		s->too_big = true;
		return 0;
	}
	if (s->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + len + 1)
			cap *= 2;
		char *b = realloc(s->buf, cap);
		if (!b)
			return 0;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return len;
}

/* Retry-After is either delay-seconds or an HTTP-date (RFC 9110 10.2.3). */
static int64_t retry_after_ms(CURL *h)
{
	struct curl_header *hdr;
	if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK)
		return -1;
	const char *v = hdr->value;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v >= '0' && *v <= '9') {
		char *end;
		errno = 0;
		long long s = strtoll(v, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end)
			return -1;
		if (errno == ERANGE || s > 86400LL * 365)
			s = 86400LL * 365;
		return (int64_t)s * 1000;
	}
	time_t when = curl_getdate(v, NULL);
	if (when == -1)
		return -1;
	time_t now = time(NULL);
	return when > now ? (int64_t)(when - now) * 1000 : 0;
}

static failure classify(CURLcode rc, const sink *s, const mg_http_request *req)
{
	if (req->cancel && *req->cancel)
		return FAIL_CANCELED;
	switch (rc) {
	case CURLE_OK:
		return FAIL_NONE;
	case CURLE_OPERATION_TIMEDOUT:
		return FAIL_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return FAIL_CONNECT;
	case CURLE_SSL_CERTPROBLEM:
		return FAIL_CLIENT_CERT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return FAIL_TLS;
	case CURLE_SSL_CACERT_BADFILE:
		return FAIL_CAFILE;
	case CURLE_WRITE_ERROR:
		return s->too_big ? FAIL_TOO_BIG : FAIL_OTHER;
	default:
		return FAIL_OTHER;
	}
}

/* The token is in these headers: wipe curl's copies too, not just ours. */
static void free_headers(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

static struct curl_slist *build_headers(const mg_http_request *req)
{
	struct curl_slist *list = NULL, *l;
	char line[512];
	snprintf(line, sizeof(line), "Accept: %s", req->accept ? req->accept : "application/json");
	if (!(l = curl_slist_append(list, line)))
		goto fail;
	list = l;
	if (req->body) {
		snprintf(line, sizeof(line), "Content-Type: %s",
		         req->content_type ? req->content_type : "application/json");
		if (!(l = curl_slist_append(list, line)))
			goto fail;
		list = l;
	}
	/* no 100-continue round trip: the body is small and the server may not do it */
	if (!(l = curl_slist_append(list, "Expect:")))
		goto fail;
	list = l;
	if (req->bearer_token) {
		size_t n = strlen("Authorization: Bearer ") + strlen(req->bearer_token) + 1;
		char *auth = malloc(n);
		if (!auth)
			goto fail;
		snprintf(auth, n, "Authorization: Bearer %s", req->bearer_token);
		l = curl_slist_append(list, auth);
		explicit_bzero(auth, n);
		free(auth);
		if (!l)
			goto fail;
		list = l;
	}
	for (const char *const *x = req->headers; x && *x; x++) {
		if (!(l = curl_slist_append(list, *x)))
			goto fail;
		list = l;
	}
	return list;
fail:
	free_headers(list);
	return NULL;
}

/*
 * For tls_server_name (issue 20), as client-go does it: the TLS layer uses that
 * name (SNI and the certificate check) and nothing else does. curl takes both
 * from the URL's host, so the URL names tls_server_name, CONNECT_TO sends the
 * connection to the real host:port, and an explicit Host header keeps the
 * original URL's host[:port] (a proxy routing on SNI must still see the virtual
 * host the user named). *url and *connect_to are malloc'd and the Host line is
 * appended to *headers; false when the URL cannot be parsed.
 */
static bool redirect_for_tls_name(const mg_http_request *req, char **url,
                                  struct curl_slist **connect_to, struct curl_slist **headers)
{
	bool ok = false;
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *given_port = NULL, *out = NULL;
	if (!u || curl_url_set(u, CURLUPART_URL, req->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto done;
	/* Host carries the port only when the URL does (RFC 9110 7.2, Go's URL.Host) */
	CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &given_port, 0);
	if ((pc != CURLUE_OK && pc != CURLUE_NO_PORT) ||
	    curl_url_set(u, CURLUPART_HOST, req->tls_server_name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
		goto done;
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s:%s:%s:%s", req->tls_server_name, port, host, port);
	if (n < 0 || (size_t)n >= sizeof(line) || !(*connect_to = curl_slist_append(NULL, line)) ||
	    !(*url = strdup(out)))
		goto done;
	n = snprintf(line, sizeof(line), "Host: %s%s%s", host, given_port ? ":" : "",
	             given_port ? given_port : "");
	struct curl_slist *l;
	if (n < 0 || (size_t)n >= sizeof(line) || !(l = curl_slist_append(*headers, line)))
		goto done;
	*headers = l;
	ok = true;
done:
	curl_free(host);
	curl_free(port);
	curl_free(given_port);
	curl_free(out);
	curl_url_cleanup(u);
	return ok;
}

static bool set_options(CURL *h, const mg_http_request *req, struct curl_slist *headers, sink *s,
                        char *errbuf, int64_t budget_ms, const char *url,
                        struct curl_slist *connect_to)
{
	CURLcode rc = CURLE_OK;
#define OPT(o, v)                                                                                  \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(h, o, v);                                            \
	} while (0)
	OPT(CURLOPT_URL, url);
	if (connect_to)
		OPT(CURLOPT_CONNECT_TO, connect_to);
#if LIBCURL_VERSION_NUM >= 0x075500
	OPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	OPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	OPT(CURLOPT_FOLLOWLOCATION, 0L);
	OPT(CURLOPT_NOSIGNAL, 1L);
	OPT(CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
	OPT(CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);
	if (req->ca_pem) {
		struct curl_blob blob = {(void *)req->ca_pem, strlen(req->ca_pem),
		                         CURL_BLOB_NOCOPY};
		OPT(CURLOPT_CAINFO_BLOB, &blob);
	} else if (req->ca_file) {
		OPT(CURLOPT_CAINFO, req->ca_file);
	}
	if (req->client_cert_pem) {
		struct curl_blob blob = {(void *)req->client_cert_pem, strlen(req->client_cert_pem),
		                         CURL_BLOB_NOCOPY};
		OPT(CURLOPT_SSLCERTTYPE, "PEM");
		OPT(CURLOPT_SSLCERT_BLOB, &blob);
	} else if (req->client_cert_file) {
		OPT(CURLOPT_SSLCERTTYPE, "PEM");
		OPT(CURLOPT_SSLCERT, req->client_cert_file);
	}
	if (req->client_key_pem) {
		struct curl_blob blob = {(void *)req->client_key_pem, strlen(req->client_key_pem),
		                         CURL_BLOB_NOCOPY};
		OPT(CURLOPT_SSLKEYTYPE, "PEM");
		OPT(CURLOPT_SSLKEY_BLOB, &blob);
	} else if (req->client_key_file) {
		OPT(CURLOPT_SSLKEYTYPE, "PEM");
		OPT(CURLOPT_SSLKEY, req->client_key_file);
	}
	OPT(CURLOPT_TIMEOUT_MS, (long)budget_ms);
	OPT(CURLOPT_CONNECTTIMEOUT_MS, (long)budget_ms);
	OPT(CURLOPT_USERAGENT, "migrate/" MG_VERSION);
	OPT(CURLOPT_HTTPHEADER, headers);
	OPT(CURLOPT_WRITEFUNCTION, on_body);
	OPT(CURLOPT_WRITEDATA, s);
	OPT(CURLOPT_ERRORBUFFER, errbuf);
	if (req->cancel) {
		OPT(CURLOPT_XFERINFOFUNCTION, on_progress);
		OPT(CURLOPT_XFERINFODATA, (void *)req->cancel);
		OPT(CURLOPT_NOPROGRESS, 0L);
	}
	const char *m = req->method ? req->method : "GET";
	if (req->body) {
		OPT(CURLOPT_POSTFIELDS, req->body);
		OPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->body));
		if (strcmp(m, "POST") != 0)
			OPT(CURLOPT_CUSTOMREQUEST, m);
	} else if (!strcmp(m, "GET")) {
		OPT(CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(m, "HEAD")) {
		OPT(CURLOPT_NOBODY, 1L);
	} else {
		OPT(CURLOPT_CUSTOMREQUEST, m);
	}
#undef OPT
	if (rc != CURLE_OK)
		snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
	return rc == CURLE_OK;
}

/*
 * curl_easy_perform, but looking at the cancel flag every 50 ms: the easy
 * interface calls the progress callback only about once a second while it
 * waits for a silent server, and an operator's rollback must not wait that
 * long for the autopilot to let go.
 */
static CURLcode perform_cancellable(CURL *h, const mg_cancel *cancel)
{
	CURLM *mh = curl_multi_init();
	if (!mh)
		return CURLE_OUT_OF_MEMORY;
	if (curl_multi_add_handle(mh, h) != CURLM_OK) {
		curl_multi_cleanup(mh);
		return CURLE_OUT_OF_MEMORY;
	}
	CURLcode code = CURLE_OK;
	int running = 1;
	while (running) {
		if (curl_multi_perform(mh, &running) != CURLM_OK) {
			code = CURLE_RECV_ERROR;
			break;
		}
		if (!running)
			break;
		if (*cancel) {
			code = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (curl_multi_poll(mh, NULL, 0, 50, NULL) != CURLM_OK) {
			code = CURLE_RECV_ERROR;
			break;
		}
	}
	if (!running) {
		int left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(mh, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
				code = msg->data.result;
	}
	curl_multi_remove_handle(mh, h);
	curl_multi_cleanup(mh);
	return code;
}

/* One request; an answer (of any status) replaces the previous one in *res. */
static void attempt(outcome *o, mg_http_response *res, const mg_http_request *req,
                    int64_t budget_ms)
{
	memset(o, 0, sizeof(*o));
	o->retry_ms = -1;
	o->budget_ms = budget_ms;
	sink s = {0};
	char *url = NULL;
	struct curl_slist *connect_to = NULL;
	struct curl_slist *headers = build_headers(req);
	CURL *h = curl_easy_init();
	if (!h || !headers) {
		o->fail = FAIL_OTHER;
		snprintf(o->detail, sizeof(o->detail), "out of memory");
		goto out;
	}
	if (req->tls_server_name && !redirect_for_tls_name(req, &url, &connect_to, &headers)) {
		o->fail = FAIL_OTHER;
		snprintf(o->detail, sizeof(o->detail), "cannot use tls-server-name %s with %s",
		         req->tls_server_name, req->url);
		goto out;
	}
	if (!set_options(h, req, headers, &s, o->detail, budget_ms, url ? url : req->url,
	                 connect_to)) {
		o->fail = FAIL_OTHER;
		goto out;
	}
	o->code = req->cancel ? perform_cancellable(h, req->cancel) : curl_easy_perform(h);
	o->fail = classify(o->code, &s, req);
	if (o->fail != FAIL_NONE) {
		if (!o->detail[0])
			snprintf(o->detail, sizeof(o->detail), "%s", curl_easy_strerror(o->code));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &o->status);
	char *ct = NULL, *loc = NULL;
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
	if (loc)
		o->location = strdup(loc);
	if (o->status == 429)
		o->retry_ms = retry_after_ms(h);
	free(res->body);
	free(res->content_type);
	res->status = o->status;
	res->body = s.buf ? s.buf : calloc(1, 1);
	res->len = s.len;
	res->content_type = ct ? strdup(ct) : NULL;
	s.buf = NULL;
out:
	free(s.buf);
	if (h)
		curl_easy_cleanup(h);
	free_headers(headers);
	curl_slist_free_all(connect_to);
	free(url);
}

static void host_of(char *buf, size_t size, const char *url)
{
	snprintf(buf, size, "%s", url);
	CURLU *u = curl_url();
	char *host = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		snprintf(buf, size, "%s", host);
	curl_free(host);
	curl_url_cleanup(u);
}

/* The message for a request that got no usable answer. */
static int fail_message(mg_error *err, const mg_http_request *req, const outcome *o, int attempts,
                        int64_t elapsed_ms)
{
	char tries[64], host[256];
	snprintf(tries, sizeof(tries), "after %d attempt%s in %.1f s", attempts,
	         attempts == 1 ? "" : "s", (double)elapsed_ms / 1000.0);
	switch (o->fail) {
	case FAIL_CANCELED:
		return mg_error_set(err, MG_ECANCELED, "request to %s stopped: interrupted",
		                    req->url);
	case FAIL_TIMEOUT:
		return mg_error_set(err, MG_ERROR,
		                    "no answer from %s within %lld ms (%s); the service is down, "
		                    "unreachable or too slow: check it, or raise the timeout",
		                    req->url, (long long)o->budget_ms, tries);
	case FAIL_CONNECT:
		return mg_error_set(err, MG_ERROR,
		                    "cannot reach %s: %s (%s); check the URL and that the service "
		                    "is up and reachable from here",
		                    req->url, o->detail, tries);
	case FAIL_CLIENT_CERT:
		return mg_error_set(err, MG_ERROR,
		                    "cannot use the client certificate or key for %s: %s; check "
		                    "that they are a matching PEM certificate and private key",
		                    req->url, o->detail);
	case FAIL_TLS:
		host_of(host, sizeof(host), req->url);
		if (req->tls_server_name)
			snprintf(host, sizeof(host), "%s", req->tls_server_name);
		if (req->ca_pem)
			return mg_error_set(
			    err, MG_ERROR,
			    "TLS certificate of %s not trusted: %s; check that the "
			    "certificate authority data holds the CA that signed it",
			    host, o->detail);
		if (req->ca_file)
			return mg_error_set(err, MG_ERROR,
			                    "TLS certificate of %s not trusted: %s; check that "
			                    "ca_file %s holds the CA that signed it",
			                    host, o->detail, req->ca_file);
		return mg_error_set(err, MG_ERROR,
		                    "TLS certificate of %s not trusted: %s; set ca_file if it uses "
		                    "a private CA",
		                    host, o->detail);
	case FAIL_CAFILE:
		return mg_error_set(
		    err, MG_ERROR,
		    "cannot use ca_file %s: %s; it must be a readable PEM file of CA "
		    "certificates",
		    req->ca_file ? req->ca_file : "(system)", o->detail);
	case FAIL_TOO_BIG:
		return mg_error_set(
		    err, MG_ERROR,
		    "%s sent an answer larger than %u MiB; that is not the API: check "
		    "the URL",
		    req->url, MAX_BODY >> 20);
	default:
		return mg_error_set(err, MG_ERROR, "request to %s failed: %s", req->url, o->detail);
	}
}

static bool retryable(const outcome *o)
{
	if (o->fail == FAIL_TIMEOUT || o->fail == FAIL_CONNECT)
		return true;
	return o->fail == FAIL_NONE && (o->status == 429 || o->status >= 500);
}

int mg_http_do(mg_http_response *out, const mg_http_request *req, mg_error *err)
{
	memset(out, 0, sizeof(*out));
	if (fake_fn) {
		int frc = fake_fn(out, req, fake_ud, err);
		out->attempts = 1;
		if (frc)
			return frc;
		if (out->status >= 300 && out->status < 400)
			return mg_error_set(err, MG_ERROR,
			                    "%s answered with a redirect (HTTP %ld) to %s; API "
			                    "redirects are not followed: use the final URL",
			                    req->url, out->status, "(fake)");
		return 0;
	}
	int rc = mg_http_global_init(err);
	if (rc)
		return rc;
	int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
	int64_t deadline = req->deadline_ms > 0 ? req->deadline_ms : DEFAULT_DEADLINE_MS;
	int max_attempts = req->max_attempts > 0 ? req->max_attempts : DEFAULT_ATTEMPTS;
	const char *method = req->method ? req->method : "GET";
	int64_t start = mg_clock_ms(), end = start + deadline;
	outcome o = {.fail = FAIL_OTHER};
	snprintf(o.detail, sizeof(o.detail), "deadline of %lld ms is too short",
	         (long long)deadline);

	for (int n = 1; n <= max_attempts; n++) {
		/* the first attempt gets the whole deadline: a clock tick since start is not
		 * "spent" */
		int64_t left = n == 1 ? deadline : end - mg_clock_ms();
		if (left < MIN_ATTEMPT_MS && n > 1)
			break;
		attempt(&o, out, req, left < timeout ? (left > 0 ? left : 1) : timeout);
		out->attempts = n;
		out->elapsed_ms = mg_clock_ms() - start;
		if (o.fail == FAIL_NONE)
			mg_log(MG_LOG_DEBUG, "%s %s: HTTP %ld (attempt %d, %lld ms)", method,
			       req->url, o.status, n, (long long)out->elapsed_ms);
		else
			mg_log(MG_LOG_DEBUG, "%s %s: %s (attempt %d, %lld ms)", method, req->url,
			       o.detail, n, (long long)out->elapsed_ms);
		if (!retryable(&o) || n == max_attempts)
			break;
		left = end - mg_clock_ms();
		int64_t wait;
		if (o.fail == FAIL_NONE && o.status == 429 && o.retry_ms >= 0) {
			if (o.retry_ms > left - MIN_ATTEMPT_MS) {
				free(o.location);
				return mg_error_set(
				    err, MG_ERROR,
				    "%s is rate-limiting requests (HTTP 429) and asks to wait %lld s, "
				    "beyond the deadline (%.1f s left, after %d attempt%s in %.1f s); "
				    "try again later",
				    req->url, (long long)((o.retry_ms + 999) / 1000),
				    (double)(left > 0 ? left : 0) / 1000.0, n, n == 1 ? "" : "s",
				    (double)out->elapsed_ms / 1000.0);
			}
			wait = o.retry_ms;
		} else {
			if (left < 2 * MIN_ATTEMPT_MS)
				break;
			wait = backoff_ms(n - 1, left);
		}
		if (o.fail == FAIL_NONE)
			mg_log(MG_LOG_INFO,
			       "%s %s: HTTP %ld; retrying in %lld ms (attempt %d of %d)", method,
			       req->url, o.status, (long long)wait, n + 1, max_attempts);
		else
			mg_log(MG_LOG_INFO, "%s %s: %s; retrying in %lld ms (attempt %d of %d)",
			       method, req->url, o.detail, (long long)wait, n + 1, max_attempts);
		mg_clock_sleep_ms(wait, req->cancel);
		free(o.location);
		o.location = NULL;
		if (req->cancel && *req->cancel) {
			o.fail = FAIL_CANCELED;
			break;
		}
	}
	out->elapsed_ms = mg_clock_ms() - start;

	if (o.fail != FAIL_NONE) {
		/* a timeout after an earlier answer still leaves that answer in *out */
		rc = fail_message(err, req, &o, out->attempts, out->elapsed_ms);
	} else if (o.status >= 300 && o.status < 400) {
		rc = mg_error_set(err, MG_ERROR,
		                  "%s answered with a redirect (HTTP %ld) to %s; API redirects are "
		                  "not followed: use the final URL",
		                  req->url, o.status, o.location ? o.location : "(no Location)");
	} else {
		rc = 0;
	}
	free(o.location);
	return rc;
}

void mg_http_response_clear(mg_http_response *res)
{
	if (!res)
		return;
	free(res->body);
	free(res->content_type);
	memset(res, 0, sizeof(*res));
}
