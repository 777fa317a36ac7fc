/*
 * lib/core/http.c against tests/servers/cloudflare.py over real TLS: a throwaway
 * CA made with the openssl CLI signs the server's certificate for 127.0.0.1.
 * The server's control API queues the failures (429, 5xx, slow answers,
 * redirects) and its request log says what really arrived.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "http.h"
#include "log.h"

#define TOKEN "tok-Zq81-unit-SECRET-9f3b"
#define ZONE  "023e105f4ecef8ad9ca31a8372d0c353"
#define LB    "699d98642c564d2e855e9661899b7252"

static char dir[256];
static tu_cloudflare srv = TU_CLOUDFLARE_INIT;
static int api_port;
static char lb_url[256], ca_path[300];

static const char *path_in(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void teardown(void)
{
	tu_log_capture_stop();
	tu_cloudflare_stop(&srv);
	tu_tmpdir_remove(dir);
	dir[0] = '\0';
}

/* For setup: Criterion skips .fini when .init fails, so clean up before failing. */
#define require(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			teardown();                                                                \
			cr_assert_fail(__VA_ARGS__);                                               \
		}                                                                                  \
	} while (0)

/* A self-signed CA, prefix.pem and prefix.key in the test's directory. */
static void make_ca(const char *prefix)
{
	char why[4096];
	require(tu_make_test_ca(dir, prefix, why, sizeof(why)), "%s", why);
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "http");
	setenv("NO_PROXY", "127.0.0.1", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("http_proxy");
	unsetenv("ALL_PROXY");
	tu_log_capture(MG_LOG_DEBUG); /* every level: none may hold the token */
	char why[4096];
	require(tu_make_test_certs(dir, why, sizeof(why)), "%s", why);
	snprintf(ca_path, sizeof(ca_path), "%s", path_in("ca.pem"));
	require(tu_cloudflare_start(&srv, dir, TOKEN, why, sizeof(why)), "%s", why);
	api_port = srv.api_port;
	snprintf(lb_url, sizeof(lb_url),
	         "https://127.0.0.1:%d/client/v4/zones/" ZONE "/load_balancers/" LB, api_port);
}

/* The control API, with plain libcurl: not with the code under test. */
static json_t *ctl(const char *method, const char *path, const char *body)
{
	return tu_cloudflare_ctl(&srv, method, path, body);
}

static void queue(const char *behaviour)
{
	json_decref(ctl("POST", "/queue", behaviour));
}

/* The request log: one entry per request that reached the server. */
static json_t *req_log(void)
{
	return ctl("GET", "/log", NULL);
}

static long logged_status(json_t *log, size_t i)
{
	return (long)json_integer_value(json_object_get(json_array_get(log, i), "status"));
}

/* No message and no log line may carry the token. */
static void no_token(const mg_error *err)
{
	cr_assert_null(strstr(err->message, TOKEN), "token in message: %s", err->message);
	cr_assert_null(strstr(err->message, "Bearer"), "auth header in message: %s", err->message);
	cr_assert_null(strstr(tu_log_text(), TOKEN), "token in the log: %s", tu_log_text());
}

static mg_http_request get_req(void)
{
	return (mg_http_request){
	    .method = "GET",
	    .url = lb_url,
	    .bearer_token = TOKEN,
	    .ca_file = ca_path,
	    .timeout_ms = 3000,
	    .deadline_ms = 5000,
	};
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 30);

Test(http, get_with_private_ca_sends_token_and_headers)
{
	mg_http_request req = get_req();
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 200);
	cr_assert_eq(res.attempts, 1);
	cr_assert_str_eq(res.content_type, "application/json");
	cr_assert_eq(res.len, strlen(res.body));
	json_t *doc = json_loads(res.body, 0, NULL);
	cr_assert(json_is_true(json_object_get(doc, "success")), "%s", res.body);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "result"), "id")),
	                 LB);
	json_decref(doc);
	mg_http_response_clear(&res);
	cr_assert_null(res.body);

	json_t *log = req_log();
	cr_assert_eq(json_array_size(log), 1);
	json_t *e = json_array_get(log, 0);
	json_t *h = json_object_get(e, "headers");
	cr_assert_str_eq(json_string_value(json_object_get(e, "auth")), "valid");
	cr_assert_str_eq(json_string_value(json_object_get(e, "method")), "GET");
	cr_assert_str_eq(json_string_value(json_object_get(h, "Accept")), "application/json");
	const char *ua = json_string_value(json_object_get(h, "User-Agent"));
	cr_assert(ua && !strncmp(ua, "migrate/", 8), "User-Agent %s", ua ? ua : "(none)");
	cr_assert_null(json_object_get(h, "Content-Type"), "a GET has no body to type");
	json_decref(log);
	no_token(&err);
}

Test(http, patch_sends_body_with_its_content_type)
{
	mg_http_request req = get_req();
	req.method = "PATCH";
	req.body = "{\"proxied\":false}";
	req.content_type = "application/json";
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 200, "%s", res.body);
	cr_assert(strstr(res.body, "\"proxied\": false"), "%s", res.body);
	mg_http_response_clear(&res);
	json_t *log = req_log();
	json_t *e = json_array_get(log, 0);
	cr_assert_str_eq(json_string_value(json_object_get(e, "method")), "PATCH");
	cr_assert_str_eq(json_string_value(json_object_get(e, "body")), "{\"proxied\":false}");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(e, "headers"), "Content-Type")),
	    "application/json");
	cr_assert_null(json_object_get(json_object_get(e, "headers"), "Expect"));
	json_decref(log);
}

Test(http, content_type_is_sent_as_given)
{
	/* the server is strict about it, as Cloudflare is: a PATCH of text is refused */
	mg_http_request req = get_req();
	req.method = "PATCH";
	req.body = "proxied=false";
	req.content_type = "text/plain";
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 400);
	cr_assert_eq(res.attempts, 1);
	cr_assert(strstr(res.body, "Invalid Content-Type header"), "%s", res.body);
	mg_http_response_clear(&res);
	json_t *log = req_log();
	cr_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_array_get(log, 0), "headers"), "Content-Type")),
	                 "text/plain");
	json_decref(log);
}

Test(http, rate_limit_waits_for_retry_after_seconds)
{
	queue("{\"status\": 429, \"retry_after\": \"1\"}");
	mg_http_request req = get_req();
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	int64_t took = tu_now_ms() - t0;
	cr_assert_eq(res.status, 200);
	cr_assert_eq(res.attempts, 2);
	cr_assert_geq(took, 1000, "retried after %lld ms, before Retry-After", (long long)took);
	cr_assert_lt(took, 2500);
	cr_assert_geq(res.elapsed_ms, 1000);
	mg_http_response_clear(&res);
	json_t *log = req_log();
	cr_assert_eq(json_array_size(log), 2);
	cr_assert_eq(logged_status(log, 0), 429);
	cr_assert_eq(logged_status(log, 1), 200);
	json_decref(log);
	cr_assert(strstr(tu_log_text(), "HTTP 429; retrying in 1000 ms (attempt 2 of 5)"), "%s",
	          tu_log_text());
}

Test(http, rate_limit_waits_for_retry_after_http_date)
{
	/* an HTTP-date has whole seconds: 2 s ahead means a wait of more than 1 s */
	char date[64], behaviour[128];
	time_t when = time(NULL) + 2;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&when));
	snprintf(behaviour, sizeof(behaviour), "{\"status\": 429, \"retry_after\": \"%s\"}", date);
	queue(behaviour);
	mg_http_request req = get_req();
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	int64_t took = tu_now_ms() - t0;
	cr_assert_eq(res.status, 200);
	cr_assert_eq(res.attempts, 2);
	cr_assert_geq(took, 1000, "retried after %lld ms, before the date", (long long)took);
	cr_assert_lt(took, 3500);
	mg_http_response_clear(&res);
}

Test(http, retry_after_beyond_the_deadline_stops_at_once)
{
	queue("{\"status\": 429, \"retry_after\": \"30\"}");
	mg_http_request req = get_req();
	req.deadline_ms = 2000;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	cr_assert_lt(tu_now_ms() - t0, 1000, "it waited instead of stopping");
	cr_assert_eq(res.status, 429, "the last answer stays available");
	cr_assert_eq(res.attempts, 1);
	cr_assert(strstr(err.message, "is rate-limiting requests (HTTP 429) and asks to wait 30 s, "
	                              "beyond the deadline"),
	          "%s", err.message);
	cr_assert(strstr(err.message, lb_url), "%s", err.message);
	cr_assert(strstr(err.message, "try again later"), "%s", err.message);
	mg_http_response_clear(&res);
	no_token(&err);
}

Test(http, server_errors_are_retried_until_success)
{
	queue("{\"status\": 502}");
	queue("{\"status\": 503}");
	mg_http_request req = get_req();
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 200);
	cr_assert_eq(res.attempts, 3);
	mg_http_response_clear(&res);
	json_t *log = req_log();
	cr_assert_eq(json_array_size(log), 3);
	long want[] = {502, 503, 200};
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(logged_status(log, i), want[i], "request %zu", i);
	json_decref(log);
}

Test(http, server_errors_stop_at_max_attempts_with_the_last_answer)
{
	queue("{\"status\": 503, \"count\": 10}");
	mg_http_request req = get_req();
	req.max_attempts = 3;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 503);
	cr_assert_eq(res.attempts, 3);
	cr_assert(strstr(res.body, "Internal Server Error"), "%s", res.body);
	mg_http_response_clear(&res);
	json_t *left = ctl("GET", "/queue", NULL);
	cr_assert_eq(json_array_size(left), 7);
	json_decref(left);
}

Test(http, server_errors_stop_at_the_deadline)
{
	queue("{\"status\": 500, \"count\": 200}");
	mg_http_request req = get_req();
	req.max_attempts = 200;
	req.deadline_ms = 700;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	int64_t took = tu_now_ms() - t0;
	cr_assert_eq(res.status, 500);
	cr_assert_geq(res.attempts, 2);
	cr_assert_lt(res.attempts, 200);
	cr_assert_lt(took, 1200, "went %lld ms past a 700 ms deadline", (long long)took);
	mg_http_response_clear(&res);
}

Test(http, client_errors_are_answers_not_retried)
{
	queue("{\"status\": 409, \"code\": 1003, \"message\": \"locked\"}");
	mg_http_request req = get_req();
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 409);
	cr_assert_eq(res.attempts, 1);
	cr_assert(strstr(res.body, "\"locked\""), "%s", res.body);
	mg_http_response_clear(&res);

	req.bearer_token = "wrong-token";
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 403);
	cr_assert_eq(res.attempts, 1);
	cr_assert(strstr(res.body, "Authentication error"), "%s", res.body);
	mg_http_response_clear(&res);
	json_t *log = req_log();
	cr_assert_eq(json_array_size(log), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(log, 1), "auth")),
	                 "invalid");
	json_decref(log);
}

Test(http, slow_answers_time_out_per_attempt)
{
	queue("{\"kind\": \"slow\", \"ms\": 3000, \"count\": 2}");
	mg_http_request req = get_req();
	req.timeout_ms = 300;
	req.deadline_ms = 3000;
	req.max_attempts = 2;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	int64_t took = tu_now_ms() - t0;
	cr_assert_geq(took, 600, "two 300 ms attempts took %lld ms", (long long)took);
	cr_assert_lt(took, 1500);
	cr_assert_eq(res.status, 0, "no answer came");
	cr_assert_eq(res.attempts, 2);
	cr_assert(strstr(err.message, "no answer from "), "%s", err.message);
	cr_assert(strstr(err.message, " within 300 ms (after 2 attempts in "), "%s", err.message);
	cr_assert(strstr(err.message, "raise the timeout"), "%s", err.message);
	mg_http_response_clear(&res);
	no_token(&err);
}

Test(http, deadline_shorter_than_timeout_bounds_the_attempt)
{
	queue("{\"kind\": \"slow\", \"ms\": 3000, \"count\": 5}");
	mg_http_request req = get_req();
	req.timeout_ms = 10000;
	req.deadline_ms = 500;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	cr_assert_lt(tu_now_ms() - t0, 1000);
	cr_assert_eq(res.attempts, 1);
	cr_assert(strstr(err.message, " within 500 ms (after 1 attempt in "), "%s", err.message);
	mg_http_response_clear(&res);
}

Test(http, connection_refused_is_retried_then_reported)
{
	int port = tu_free_port();
	char url[128];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/client/v4/x", port);
	mg_http_request req = get_req();
	req.url = url;
	req.max_attempts = 3;
	req.deadline_ms = 3000;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	cr_assert_eq(res.attempts, 3);
	cr_assert_eq(res.status, 0);
	char want[200];
	snprintf(want, sizeof(want), "cannot reach %s: ", url);
	cr_assert(!strncmp(err.message, want, strlen(want)), "%s", err.message);
	cr_assert(strstr(err.message, "Couldn't connect to server") ||
	              strstr(err.message, "Connection refused"),
	          "%s", err.message);
	cr_assert(strstr(err.message, "(after 3 attempts in "), "%s", err.message);
	mg_http_response_clear(&res);
	no_token(&err);
}

Test(http, tls_without_ca_file_is_refused_and_not_retried)
{
	mg_http_request req = get_req();
	req.ca_file = NULL;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	cr_assert_eq(res.attempts, 1);
	cr_assert_eq(res.status, 0);
	cr_assert(!strncmp(err.message, "TLS certificate of 127.0.0.1 not trusted: ", 42), "%s",
	          err.message);
	cr_assert(strstr(err.message, "; set ca_file if it uses a private CA"), "%s", err.message);
	mg_http_response_clear(&res);
	json_t *log = req_log();
	cr_assert_eq(json_array_size(log), 0, "no request may go over an untrusted connection");
	json_decref(log);
	no_token(&err);
}

Test(http, tls_with_another_ca_is_refused)
{
	make_ca("other");
	mg_http_request req = get_req();
	req.ca_file = path_in("other.pem");
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	cr_assert_eq(res.attempts, 1);
	cr_assert(!strncmp(err.message, "TLS certificate of 127.0.0.1 not trusted: ", 42), "%s",
	          err.message);
	cr_assert(strstr(err.message, "check that ca_file ") &&
	              strstr(err.message, "other.pem holds the CA that signed it"),
	          "%s", err.message);
	mg_http_response_clear(&res);
	no_token(&err);
}

Test(http, unreadable_ca_file_is_reported)
{
	mg_http_request req = get_req();
	req.ca_file = path_in("missing.pem");
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	cr_assert_eq(res.attempts, 1);
	cr_assert(strstr(err.message, "cannot use ca_file ") &&
	              strstr(err.message, "missing.pem: "),
	          "%s", err.message);
	cr_assert(strstr(err.message, "it must be a readable PEM file of CA certificates"), "%s",
	          err.message);
	mg_http_response_clear(&res);
}

Test(http, redirects_are_errors_and_not_followed)
{
	char behaviour[256];
	snprintf(behaviour, sizeof(behaviour),
	         "{\"status\": 301, \"location\": \"https://127.0.0.1:%d/client/v4/elsewhere\"}",
	         api_port);
	queue(behaviour);
	mg_http_request req = get_req();
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	cr_assert_eq(res.status, 301);
	cr_assert_eq(res.attempts, 1);
	char want[400];
	snprintf(
	    want, sizeof(want),
	    "%s answered with a redirect (HTTP 301) to https://127.0.0.1:%d/client/v4/elsewhere; "
	    "API redirects are not followed: use the final URL",
	    lb_url, api_port);
	cr_assert_str_eq(err.message, want);
	mg_http_response_clear(&res);
	json_t *log = req_log();
	cr_assert_eq(json_array_size(log), 1, "the redirect was followed");
	json_decref(log);
	no_token(&err);
}

Test(http, only_http_and_https)
{
	const char *urls[] = {"ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/"};
	for (size_t i = 0; i < 3; i++) {
		mg_http_request req = get_req();
		req.url = urls[i];
		mg_http_response res;
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR, "%s", urls[i]);
		cr_assert_eq(res.attempts, 1);
		char want[128];
		snprintf(want, sizeof(want), "request to %s failed: ", urls[i]);
		cr_assert(!strncmp(err.message, want, strlen(want)), "%s", err.message);
		mg_http_response_clear(&res);
		no_token(&err);
	}
}

Test(http, token_never_in_messages_or_log)
{
	/* every failing path above, each with the token set; the log at debug level */
	queue("{\"status\": 429, \"retry_after\": \"60\"}");
	queue("{\"status\": 500, \"count\": 2}");
	mg_http_request req = get_req();
	req.deadline_ms = 2000;
	req.max_attempts = 2;
	mg_http_response res;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	no_token(&err);
	mg_http_response_clear(&res);
	cr_assert_eq(mg_http_do(&res, &req, &err), 0, "%s", err.message);
	cr_assert_eq(res.status, 500);
	mg_http_response_clear(&res);
	req.ca_file = NULL;
	cr_assert_eq(mg_http_do(&res, &req, &err), MG_ERROR);
	no_token(&err);
	mg_http_response_clear(&res);
	cr_assert(strstr(tu_log_text(), "HTTP 500; retrying in"), "debug log: %s", tu_log_text());
	cr_assert_null(strstr(tu_log_text(), "Authorization"), "%s", tu_log_text());
}

Test(http, global_init_is_idempotent)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_http_global_init(&err), 0);
	cr_assert_eq(mg_http_global_init(&err), 0);
}
