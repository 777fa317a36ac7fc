/*
 * The Cloudflare traffic driver against tests/servers/cloudflare.py, a strict
 * stand-in for the Cloudflare API v4, over real TLS (a throwaway CA made with
 * the openssl CLI). Everything goes through lib/traffic.h, as the CLI uses
 * it; what the load balancer really holds is checked through the server's
 * control API (its stored load balancer and its request log).
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"
#include "log.h"
#include "plan.h"
#include "traffic.h"

#define TOKEN     "cf-Tk7-integration-SECRET-4e1d"
#define TOKEN_ENV "MG_TEST_CF_TOKEN"
#define ACCOUNT   "01a7362d577a6c3019a474fd6f485823"
#define ZONE      "023e105f4ecef8ad9ca31a8372d0c353"
#define LB        "699d98642c564d2e855e9661899b7252"
#define VM_POOL   "17b5962d775c646f3f9725cbc7a53df4"
#define K8S_POOL  "9290f38c5d07c2e2f4df57b1f61d4196"
#define DR_POOL   "de90f38ced07c2e2f4df50b1f61d4194"

static char dir[256];
static tu_cloudflare srv = TU_CLOUDFLARE_INIT;
static int api_port;
static char api_url[128], ca_path[300], lb_path[200];
static mg_plan_cloudflare cfg;
static mg_plan_traffic plan;
static double steps[] = {10, 50, 100};

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

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "cloudflare");
	setenv("NO_PROXY", "127.0.0.1", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	setenv(TOKEN_ENV, TOKEN, 1);
	tu_log_capture(MG_LOG_DEBUG); /* every level: none may hold the token */
	char why[4096];
	require(tu_make_test_certs(dir, why, sizeof(why)), "%s", why);
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
	require(tu_cloudflare_start(&srv, dir, TOKEN, why, sizeof(why)), "%s", why);
	api_port = srv.api_port;
	snprintf(api_url, sizeof(api_url), "https://127.0.0.1:%d/client/v4", api_port);
	snprintf(lb_path, sizeof(lb_path), "/client/v4/zones/%s/load_balancers/%s", ZONE, LB);
	cfg = (mg_plan_cloudflare){
	    .account_id = ACCOUNT,
	    .zone_id = ZONE,
	    .load_balancer_id = LB,
	    .vm_pool = VM_POOL,
	    .k8s_pool = K8S_POOL,
	    .token_env = TOKEN_ENV,
	    .api_url = api_url,
	    .ca_file = ca_path,
	    .timeout_ms = 3000,
	};
	plan = (mg_plan_traffic){
	    .provider = MG_PROVIDER_CLOUDFLARE,
	    .steps = steps,
	    .nsteps = 3,
	    .cloudflare = &cfg,
	};
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

/* The load balancer as the server holds it. */
static json_t *stored_lb(void)
{
	return ctl("GET", "/lb", NULL);
}

static void put_lb(json_t *lb)
{
	char *text = json_dumps(lb, 0);
	json_decref(ctl("PUT", "/lb", text));
	free(text);
}

/* Requests the server saw with this method (and path, when given). */
static size_t count_requests(const char *method, const char *path)
{
	json_t *log = ctl("GET", "/log", NULL);
	size_t i, n = 0;
	json_t *e;
	json_array_foreach(log, i, e)
	{
		const char *m = json_string_value(json_object_get(e, "method"));
		const char *p = json_string_value(json_object_get(e, "path"));
		n += !strcmp(m, method) && (!path || !strcmp(p, path));
	}
	json_decref(log);
	return n;
}

/* The body of the n-th PATCH the server received. */
static json_t *patch_body(size_t nth)
{
	json_t *log = ctl("GET", "/log", NULL);
	size_t i, n = 0;
	json_t *e, *body = NULL;
	json_array_foreach(log, i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "method")), "PATCH") != 0)
			continue;
		if (n++ == nth) {
			body = json_loads(json_string_value(json_object_get(e, "body")), 0, NULL);
			cr_assert_str_eq(json_string_value(json_object_get(
			                     json_object_get(e, "headers"), "Content-Type")),
			                 "application/json");
			cr_assert_str_eq(json_string_value(json_object_get(e, "auth")), "valid");
		}
	}
	json_decref(log);
	cr_assert_not_null(body, "no PATCH number %zu", nth);
	return body;
}

/* The secret appears nowhere: not in the message, not in anything logged. */
static void no_token(const mg_error *err)
{
	cr_assert_null(strstr(err->message, TOKEN), "token in message: %s", err->message);
	cr_assert_null(strstr(tu_log_text(), TOKEN), "token in the log: %s", tu_log_text());
}

static mg_traffic *open_ok(void)
{
	mg_traffic *t = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_open(&t, &plan, &err), 0, "%s", err.message);
	cr_assert_str_eq(mg_traffic_name(t), "cloudflare");
	return t;
}

/* Applies and expects a failure whose message holds every one of the given parts. */
static void apply_fails(mg_traffic *t, double pct, const char *const *parts)
{
	mg_error err = MG_ERROR_INIT;
	mg_traffic_state st;
	int rc = mg_traffic_apply(&st, t, pct, false, &err);
	cr_assert_neq(rc, 0, "applying %g%% succeeded", pct);
	for (; *parts; parts++)
		cr_assert(strstr(err.message, *parts), "\"%s\" not in: %s", *parts, err.message);
	no_token(&err);
}

/* The load balancer still as the server started: nothing was changed. */
static void lb_unchanged(void)
{
	json_t *lb = stored_lb();
	cr_assert_str_eq(json_string_value(json_object_get(lb, "steering_policy")), "off");
	json_t *dp = json_object_get(lb, "default_pools");
	cr_assert_eq(json_array_size(dp), 2);
	cr_assert_str_eq(json_string_value(json_array_get(dp, 0)), VM_POOL);
	cr_assert_str_eq(json_string_value(json_array_get(dp, 1)), DR_POOL);
	cr_assert_null(json_object_get(lb, "random_steering"));
	json_decref(lb);
}

static double weight_of(json_t *lb, const char *pool)
{
	json_t *w = json_object_get(
	    json_object_get(json_object_get(lb, "random_steering"), "pool_weights"), pool);
	cr_assert(json_is_number(w), "no weight for %s", pool);
	return json_number_value(w);
}

TestSuite(cloudflare, .init = setup, .fini = teardown, .timeout = 60);

Test(cloudflare, reads_the_initial_state_and_pool_health)
{
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	/* steering "off": the first of default_pools, the VM pool, takes everything */
	cr_assert_eq(st.k8s_percent, 0);
	cr_assert_eq(st.nservers, 2);
	cr_assert_str_eq(st.servers[0].name, VM_POOL);
	cr_assert_not(st.servers[0].k8s);
	cr_assert_eq(st.servers[0].weight, 1);
	cr_assert_eq(st.servers[0].health, MG_HEALTH_UP);
	cr_assert_str_eq(st.servers[0].detail, "healthy in 2 PoPs");
	cr_assert_str_eq(st.servers[1].name, K8S_POOL);
	cr_assert(st.servers[1].k8s);
	cr_assert_eq(st.servers[1].weight, 0);
	cr_assert_eq(st.servers[1].health, MG_HEALTH_UP);
	mg_traffic_state_clear(&st);
	cr_assert_eq(count_requests("GET", lb_path), 1);
	cr_assert_eq(count_requests("GET", "/client/v4/accounts/" ACCOUNT
	                                   "/load_balancers/pools/" VM_POOL "/health"),
	             1);
	cr_assert_eq(count_requests("GET", "/client/v4/accounts/" ACCOUNT
	                                   "/load_balancers/pools/" K8S_POOL "/health"),
	             1);
	mg_traffic_free(t);
}

Test(cloudflare, steps_and_rollback_change_the_load_balancer_and_read_back)
{
	mg_traffic *t = open_ok();
	const double want[] = {10, 50, 100, 0};
	for (size_t i = 0; i < 4; i++) {
		mg_traffic_state st;
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_traffic_apply(&st, t, want[i], false, &err), 0, "%g%%: %s", want[i],
		             err.message);
		cr_assert_float_eq(st.k8s_percent, want[i], 1e-9);
		cr_assert_float_eq(st.servers[0].weight, (100 - want[i]) / 100, 1e-9);
		cr_assert_float_eq(st.servers[1].weight, want[i] / 100, 1e-9);
		mg_traffic_state_clear(&st);

		json_t *lb = stored_lb();
		cr_assert_str_eq(json_string_value(json_object_get(lb, "steering_policy")),
		                 "random");
		cr_assert_float_eq(weight_of(lb, VM_POOL), (100 - want[i]) / 100, 1e-9);
		cr_assert_float_eq(weight_of(lb, K8S_POOL), want[i] / 100, 1e-9);
		/* the other pool stays listed, where it was, and the fallback is untouched */
		json_t *dp = json_object_get(lb, "default_pools");
		cr_assert_eq(json_array_size(dp), 3);
		cr_assert_str_eq(json_string_value(json_array_get(dp, 0)), VM_POOL);
		cr_assert_str_eq(json_string_value(json_array_get(dp, 1)), DR_POOL);
		cr_assert_str_eq(json_string_value(json_array_get(dp, 2)), K8S_POOL);
		cr_assert_str_eq(json_string_value(json_object_get(lb, "fallback_pool")), DR_POOL);
		cr_assert_str_eq(json_string_value(json_object_get(lb, "name")), "www.example.com");
		cr_assert(json_is_true(json_object_get(lb, "proxied")));
		json_decref(lb);
	}
	cr_assert_eq(count_requests("PATCH", lb_path), 4);

	/* an independent read agrees with what apply reported */
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.k8s_percent, 0);
	mg_traffic_state_clear(&st);
	mg_traffic_free(t);
}

Test(cloudflare, apply_reads_patches_once_and_reads_back)
{
	mg_traffic *t = open_ok();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, t, 10, false, &err), 0, "%s", err.message);
	json_t *log = ctl("GET", "/log", NULL);
	char health_vm[200], health_k8s[200];
	snprintf(health_vm, sizeof(health_vm),
	         "/client/v4/accounts/%s/load_balancers/pools/%s/health", ACCOUNT, VM_POOL);
	snprintf(health_k8s, sizeof(health_k8s),
	         "/client/v4/accounts/%s/load_balancers/pools/%s/health", ACCOUNT, K8S_POOL);
	/* read (health gate), GET for default_pools, one PATCH, read back */
	const char *want[][2] = {{"GET", lb_path},   {"GET", health_vm}, {"GET", health_k8s},
	                         {"GET", lb_path},   {"PATCH", lb_path}, {"GET", lb_path},
	                         {"GET", health_vm}, {"GET", health_k8s}};
	cr_assert_eq(json_array_size(log), 8);
	for (size_t i = 0; i < 8; i++) {
		json_t *e = json_array_get(log, i);
		cr_assert_str_eq(json_string_value(json_object_get(e, "method")), want[i][0]);
		cr_assert_str_eq(json_string_value(json_object_get(e, "path")), want[i][1]);
		cr_assert_str_eq(json_string_value(json_object_get(e, "auth")), "valid");
		cr_assert_eq(json_integer_value(json_object_get(e, "status")), 200);
	}
	json_decref(log);
	mg_traffic_free(t);
}

Test(cloudflare, patch_body_is_the_complete_weight_map)
{
	mg_traffic *t = open_ok();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(NULL, t, 25, false, &err), 0, "%s", err.message);
	cr_assert_eq(mg_traffic_apply(NULL, t, 100.0 / 3, false, &err), 0, "%s", err.message);
	for (size_t n = 0; n < 2; n++) {
		json_t *b = patch_body(n);
		cr_assert_eq(json_object_size(b), 3, "only the fields migrate owns are sent");
		cr_assert_str_eq(json_string_value(json_object_get(b, "steering_policy")),
		                 "random");
		json_t *rs = json_object_get(b, "random_steering");
		cr_assert_eq(json_object_size(rs), 2);
		cr_assert(json_is_number(json_object_get(rs, "default_weight")));
		cr_assert_eq(json_number_value(json_object_get(rs, "default_weight")), 0);
		json_t *pw = json_object_get(rs, "pool_weights");
		cr_assert_eq(json_object_size(pw), 2);
		json_t *vm = json_object_get(pw, VM_POOL), *k8s = json_object_get(pw, K8S_POOL);
		cr_assert(json_is_number(vm) && json_is_number(k8s));
		cr_assert_float_eq(json_number_value(vm) + json_number_value(k8s), 1.0, 1e-12);
		double k = n ? 1.0 / 3 : 0.25;
		cr_assert_float_eq(json_number_value(k8s), k, 1e-6);
		json_t *dp = json_object_get(b, "default_pools");
		cr_assert_eq(json_array_size(dp), 3);
		cr_assert_str_eq(json_string_value(json_array_get(dp, 0)), VM_POOL);
		cr_assert_str_eq(json_string_value(json_array_get(dp, 1)), DR_POOL);
		cr_assert_str_eq(json_string_value(json_array_get(dp, 2)), K8S_POOL);
		json_decref(b);
	}
	/* numbers as a person would write them, not 0.75000000000000001 */
	json_t *log = ctl("GET", "/log", NULL);
	size_t i;
	json_t *e;
	bool seen = false;
	json_array_foreach(log, i, e)
	{
		const char *body = json_string_value(json_object_get(e, "body"));
		if (strcmp(json_string_value(json_object_get(e, "method")), "PATCH") != 0 || seen)
			continue;
		seen = true;
		cr_assert(strstr(body, "\"" VM_POOL "\":0.75"), "%s", body);
		cr_assert(strstr(body, "\"" K8S_POOL "\":0.25"), "%s", body);
		cr_assert_null(strstr(body, "0000000"), "%s", body);
	}
	cr_assert(seen);
	json_decref(log);
	mg_traffic_free(t);
}

Test(cloudflare, both_pools_are_added_when_missing_and_others_kept)
{
	json_t *lb = stored_lb();
	json_object_set_new(lb, "default_pools", json_pack("[s]", DR_POOL));
	put_lb(lb);
	json_decref(lb);
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	/* "off" with another pool first: neither of ours gets traffic */
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.k8s_percent, 0);
	cr_assert_eq(st.servers[0].weight, 0);
	cr_assert_eq(st.servers[1].weight, 0);
	mg_traffic_state_clear(&st);
	cr_assert_eq(mg_traffic_apply(&st, t, 10, false, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.k8s_percent, 10, 1e-9);
	mg_traffic_state_clear(&st);
	lb = stored_lb();
	json_t *dp = json_object_get(lb, "default_pools");
	cr_assert_eq(json_array_size(dp), 3);
	cr_assert_str_eq(json_string_value(json_array_get(dp, 0)), DR_POOL);
	cr_assert_str_eq(json_string_value(json_array_get(dp, 1)), VM_POOL);
	cr_assert_str_eq(json_string_value(json_array_get(dp, 2)), K8S_POOL);
	json_decref(lb);
	mg_traffic_free(t);
}

Test(cloudflare, random_share_counts_every_default_pool)
{
	/* set up by hand: the third pool takes default_weight 1 of the random traffic */
	json_t *lb = stored_lb();
	json_object_set_new(lb, "steering_policy", json_string("random"));
	json_object_set_new(lb, "default_pools", json_pack("[s,s,s]", VM_POOL, K8S_POOL, DR_POOL));
	json_object_set_new(lb, "random_steering",
	                    json_pack("{s:f, s:{s:f, s:f}}", "default_weight", 1.0, "pool_weights",
	                              VM_POOL, 0.5, K8S_POOL, 0.5));
	put_lb(lb);
	json_decref(lb);
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.k8s_percent, 25, 1e-9);
	cr_assert_float_eq(st.servers[0].weight, 0.5, 1e-12);
	cr_assert_float_eq(st.servers[1].weight, 0.5, 1e-12);
	mg_traffic_state_clear(&st);
	/* once migrate steers, the third pool's weight is 0 and the share is exact */
	cr_assert_eq(mg_traffic_apply(&st, t, 50, false, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.k8s_percent, 50, 1e-9);
	mg_traffic_state_clear(&st);
	mg_traffic_free(t);
}

Test(cloudflare, policies_without_a_readable_share_are_refused)
{
	const char *pols[] = {"geo", "dynamic_latency", "proximity", "least_connections"};
	mg_traffic *t = open_ok();
	for (size_t i = 0; i < 4; i++) {
		json_t *lb = stored_lb();
		json_object_set_new(lb, "steering_policy", json_string(pols[i]));
		put_lb(lb);
		json_decref(lb);
		mg_traffic_state st;
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_traffic_read(&st, t, &err), MG_ERROR);
		char want[128];
		snprintf(want, sizeof(want), "the load balancer uses steering_policy \"%s\"",
		         pols[i]);
		cr_assert(strstr(err.message, want), "%s", err.message);
		cr_assert(strstr(err.message, "switch the load balancer to \"random\" or \"off\""),
		          "%s", err.message);
		const char *parts[] = {want, NULL};
		apply_fails(t, 10, parts);
	}
	/* "" with geo pools is geo */
	json_t *lb = stored_lb();
	json_object_set_new(lb, "steering_policy", json_string(""));
	json_object_set_new(lb, "region_pools", json_pack("{s:[s]}", "WNAM", VM_POOL));
	put_lb(lb);
	json_decref(lb);
	const char *parts[] = {"uses steering_policy \"\" (geo steering, from its "
	                       "region/country/PoP pools), under which",
	                       NULL};
	apply_fails(t, 10, parts);
	cr_assert_eq(count_requests("PATCH", NULL), 0);
	mg_traffic_free(t);
}

Test(cloudflare, rate_limit_is_waited_out)
{
	queue("{\"status\": 429, \"retry_after\": \"1\", \"method\": \"PATCH\"}");
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(mg_traffic_apply(&st, t, 10, false, &err), 0, "%s", err.message);
	cr_assert_geq(tu_now_ms() - t0, 1000);
	cr_assert_float_eq(st.k8s_percent, 10, 1e-9);
	mg_traffic_state_clear(&st);
	cr_assert_eq(count_requests("PATCH", lb_path), 2);
	json_t *lb = stored_lb();
	cr_assert_float_eq(weight_of(lb, K8S_POOL), 0.1, 1e-9);
	json_decref(lb);
	mg_traffic_free(t);
}

Test(cloudflare, server_errors_then_success)
{
	queue("{\"status\": 502, \"method\": \"PATCH\"}");
	queue("{\"status\": 503, \"method\": \"PATCH\"}");
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_apply(&st, t, 50, false, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.k8s_percent, 50, 1e-9);
	mg_traffic_state_clear(&st);
	cr_assert_eq(count_requests("PATCH", lb_path), 3);
	mg_traffic_free(t);
}

Test(cloudflare, server_errors_until_the_deadline_change_nothing)
{
	cfg.timeout_ms = 1500;
	queue("{\"status\": 500, \"method\": \"PATCH\", \"count\": 100}");
	mg_traffic *t = open_ok();
	int64_t t0 = tu_now_ms();
	const char *parts[] = {"Cloudflare: setting the cluster's share to 10%: HTTP 500: "
	                       "Internal Server Error (10001) (after ",
	                       "Cloudflare is failing; try again later",
	                       "the change may or may not have been made", NULL};
	apply_fails(t, 10, parts);
	cr_assert_lt(tu_now_ms() - t0, 2500, "a 1.5 s timeout took %lld ms",
	             (long long)(tu_now_ms() - t0));
	lb_unchanged();
	size_t patches = count_requests("PATCH", lb_path);
	cr_assert(patches >= 2 && patches <= 5, "%zu PATCHes", patches);
	mg_traffic_free(t);
}

Test(cloudflare, slow_answer_beyond_the_timeout)
{
	cfg.timeout_ms = 1000;
	queue("{\"kind\": \"slow\", \"ms\": 4000, \"method\": \"PATCH\", \"count\": 5}");
	mg_traffic *t = open_ok();
	int64_t t0 = tu_now_ms();
	const char *parts[] = {"Cloudflare: setting the cluster's share to 10%: no answer from ",
	                       "raise the timeout", "the change may or may not have been made",
	                       NULL};
	apply_fails(t, 10, parts);
	cr_assert_lt(tu_now_ms() - t0, 2000);
	mg_traffic_free(t);
}

Test(cloudflare, success_false_shows_cloudflares_message)
{
	queue("{\"kind\": \"success_false\", \"code\": 1002, \"message\": \"pool weights are "
	      "being recalculated\", \"method\": \"PATCH\"}");
	mg_traffic *t = open_ok();
	const char *parts[] = {"Cloudflare: setting the cluster's share to 10%: Cloudflare reports "
	                       "a failure: pool weights are being recalculated (1002)",
	                       NULL};
	apply_fails(t, 10, parts);
	mg_traffic_free(t);
}

Test(cloudflare, wrong_content_type_is_not_the_api)
{
	queue("{\"kind\": \"html\", \"method\": \"GET\", \"path\": \"/load_balancers/\"}");
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), MG_ERROR);
	char want[400];
	snprintf(want, sizeof(want),
	         "Cloudflare: reading the load balancer: the answer is text/html, not JSON; "
	         "https://127.0.0.1:%d/client/v4/zones/%s/load_balancers/%s does not look like the "
	         "Cloudflare API v4: check traffic.cloudflare.api_url",
	         api_port, ZONE, LB);
	cr_assert_str_eq(err.message, want);
	no_token(&err);
	mg_traffic_free(t);
}

Test(cloudflare, missing_result_confirms_nothing)
{
	queue("{\"kind\": \"no_result\", \"method\": \"PATCH\"}");
	mg_traffic *t = open_ok();
	const char *parts[] = {"Cloudflare: setting the cluster's share to 10%: the answer has no "
	                       "result, so nothing it did can be confirmed",
	                       NULL};
	apply_fails(t, 10, parts);
	mg_traffic_free(t);
}

Test(cloudflare, conflict_and_unprocessable_show_cloudflares_message)
{
	queue("{\"status\": 409, \"code\": 1003, \"message\": \"another change to this load "
	      "balancer is in progress\", \"method\": \"PATCH\"}");
	queue("{\"status\": 422, \"code\": 1002, \"message\": \"pool_weights: validation failed\", "
	      "\"method\": \"PATCH\"}");
	mg_traffic *t = open_ok();
	const char *p409[] = {"Cloudflare: setting the cluster's share to 10%: HTTP 409: another "
	                      "change to this load balancer is in progress (1003); the load "
	                      "balancer is being changed by someone else",
	                      NULL};
	apply_fails(t, 10, p409);
	const char *p422[] = {"Cloudflare: setting the cluster's share to 10%: HTTP 422: "
	                      "pool_weights: validation failed (1002); Cloudflare refused the "
	                      "request as sent",
	                      NULL};
	apply_fails(t, 10, p422);
	cr_assert_eq(count_requests("PATCH", lb_path), 2, "4xx answers are not retried");
	lb_unchanged();
	mg_traffic_free(t);
}

Test(cloudflare, server_validation_errors_are_shown)
{
	/* the real server's own 400 when a pool id does not exist (a plan naming the wrong pool) */
	cfg.k8s_pool = "0000000000000000000000000000abcd";
	mg_traffic *t = open_ok();
	const char *parts[] = {"HTTP 400: pool '0000000000000000000000000000abcd' in default_pools "
	                       "does not exist: validation failed (1002)",
	                       NULL};
	apply_fails(t, 10, parts);
	lb_unchanged();
	mg_traffic_free(t);
}

Test(cloudflare, wrong_token_is_an_auth_error_without_the_token)
{
	setenv(TOKEN_ENV, "cf-wrong-token-7781", 1);
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), MG_ERROR);
	cr_assert(strstr(err.message,
	                 "Cloudflare: reading the load balancer: HTTP 403: "
	                 "Authentication error (10000); check the API token in $" TOKEN_ENV
	                 ": it must be valid"),
	          "%s", err.message);
	cr_assert_null(strstr(err.message, "cf-wrong-token-7781"), "%s", err.message);
	cr_assert_null(strstr(tu_log_text(), "cf-wrong-token-7781"), "%s", tu_log_text());
	no_token(&err);
	json_t *log = ctl("GET", "/log", NULL);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(log, 0), "auth")),
	                 "invalid");
	json_decref(log);
	mg_traffic_free(t);
}

Test(cloudflare, token_echoed_by_the_server_is_redacted)
{
	queue("{\"status\": 400, \"code\": 9106, \"message\": \"malformed header\", "
	      "\"echo_auth\": true, \"method\": \"PATCH\"}");
	mg_traffic *t = open_ok();
	const char *parts[] = {"HTTP 400: malformed header: Bearer [redacted] (9106)", NULL};
	apply_fails(t, 10, parts);
	mg_traffic_free(t);
}

Test(cloudflare, wrong_ids_are_not_found)
{
	cfg.load_balancer_id = "00000000000000000000000000000001";
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), MG_ERROR);
	cr_assert(strstr(err.message, "HTTP 404: Could not route to "), "%s", err.message);
	cr_assert(strstr(err.message, "perhaps your object identifier is invalid? (7003)"), "%s",
	          err.message);
	cr_assert(strstr(err.message, "check account_id, zone_id, load_balancer_id, vm_pool and "
	                              "k8s_pool in the plan"),
	          "%s", err.message);
	no_token(&err);
	mg_traffic_free(t);
}

Test(cloudflare, unhealthy_cluster_pool_blocks_moving_traffic_to_it)
{
	json_decref(ctl("POST", "/health",
	                "{\"pool_id\": \"" K8S_POOL "\", \"pop_health\": {"
	                "\"Amsterdam, NL\": {\"healthy\": true, \"origins\": [{\"192.0.2.20\": "
	                "{\"healthy\": true, \"rtt\": \"11ms\", \"failure_reason\": \"No "
	                "failures\", \"response_code\": 200}}]},"
	                "\"Singapore, SG\": {\"healthy\": false, \"origins\": [{\"192.0.2.20\": "
	                "{\"healthy\": false, \"rtt\": \"0ms\", \"failure_reason\": \"HTTP "
	                "timeout occurred\", \"response_code\": 0}}]}}}"));
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.servers[1].health, MG_HEALTH_DOWN);
	cr_assert_str_eq(st.servers[1].detail, "Singapore, SG: 192.0.2.20 HTTP timeout occurred");
	cr_assert_eq(st.servers[0].health, MG_HEALTH_UP);
	mg_traffic_state_clear(&st);
	const char *parts[] = {
	    "refusing to send more traffic to the cluster: cloudflare reports " K8S_POOL
	    " (Singapore, SG: 192.0.2.20 HTTP timeout occurred)",
	    NULL};
	apply_fails(t, 10, parts);
	cr_assert_eq(count_requests("PATCH", NULL), 0);
	lb_unchanged();
	/* --force */
	cr_assert_eq(mg_traffic_apply(&st, t, 10, true, &err), 0, "%s", err.message);
	cr_assert_float_eq(st.k8s_percent, 10, 1e-9);
	mg_traffic_state_clear(&st);
	mg_traffic_free(t);
}

Test(cloudflare, unavailable_health_is_unknown)
{
	json_decref(
	    ctl("POST", "/health", "{\"pool_id\": \"" K8S_POOL "\", \"unavailable\": true}"));
	json_decref(ctl("POST", "/health", "{\"pool_id\": \"" VM_POOL "\", \"pop_health\": {}}"));
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	cr_assert_eq(st.servers[1].health, MG_HEALTH_UNKNOWN);
	cr_assert_str_eq(st.servers[1].detail,
	                 "health unavailable: HTTP 400: Health info unavailable (1002)");
	cr_assert_eq(st.servers[0].health, MG_HEALTH_UNKNOWN);
	cr_assert_str_eq(st.servers[0].detail, "no health data (is a monitor attached?)");
	mg_traffic_state_clear(&st);
	cr_assert(strstr(tu_log_text(), "Cloudflare: reading the health of pool " K8S_POOL
	                                ": HTTP 400: Health info unavailable (1002)"),
	          "%s", tu_log_text());
	/* unknown is not down: the gate lets the step through */
	cr_assert_eq(mg_traffic_apply(&st, t, 10, false, &err), 0, "%s", err.message);
	mg_traffic_state_clear(&st);
	mg_traffic_free(t);
}

Test(cloudflare, tls_without_the_ca_is_refused)
{
	cfg.ca_file = NULL;
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), MG_ERROR);
	cr_assert(strstr(err.message, "Cloudflare: reading the load balancer: TLS certificate of "
	                              "127.0.0.1 not trusted: "),
	          "%s", err.message);
	cr_assert(strstr(err.message, "set ca_file if it uses a private CA"), "%s", err.message);
	no_token(&err);
	json_t *log = ctl("GET", "/log", NULL);
	cr_assert_eq(json_array_size(log), 0);
	json_decref(log);
	mg_traffic_free(t);
}

Test(cloudflare, token_env_unset_or_empty_fails_at_open)
{
	mg_traffic *t = NULL;
	mg_error err = MG_ERROR_INIT;
	unsetenv(TOKEN_ENV);
	cr_assert_eq(mg_traffic_open(&t, &plan, &err), MG_EINVALID);
	cr_assert_null(t);
	cr_assert_str_eq(err.message, "the environment variable " TOKEN_ENV " is not set; export "
	                              "the Cloudflare API token in it "
	                              "(traffic.cloudflare.token_env)");
	setenv(TOKEN_ENV, " \n", 1);
	cr_assert_eq(mg_traffic_open(&t, &plan, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "the environment variable " TOKEN_ENV
	                              " is empty; export the Cloudflare API token in it "
	                              "(traffic.cloudflare.token_env)");
	setenv(TOKEN_ENV, "abc def", 1);
	cr_assert_eq(mg_traffic_open(&t, &plan, &err), MG_EINVALID);
	cr_assert_str_eq(err.message, "the Cloudflare API token in $" TOKEN_ENV
	                              " contains spaces or control characters; it must be the "
	                              "token alone");
	cr_assert_null(strstr(err.message, "abc"));
	json_t *log = ctl("GET", "/log", NULL);
	cr_assert_eq(json_array_size(log), 0, "opening contacts nothing");
	json_decref(log);
}

Test(cloudflare, token_file_first_line_trimmed)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/token", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("  " TOKEN " \r\nsecond line\n", f);
	cr_assert_eq(fclose(f), 0);
	unsetenv(TOKEN_ENV);
	cfg.token_env = NULL;
	cfg.token_file = path;
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), 0, "%s", err.message);
	mg_traffic_state_clear(&st);
	json_t *d;
	cr_assert_eq(mg_traffic_describe(&d, t, 10, &err), 0, "%s", err.message);
	char want[1024];
	snprintf(want, sizeof(want), "Bearer <from %s>", path);
	cr_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_array_get(d, 1), "headers"), "Authorization")),
	                 want);
	json_decref(d);
	mg_traffic_free(t);

	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(mg_traffic_open(&t, &plan, &err), MG_EINVALID);
	snprintf(want, sizeof(want),
	         "%s is empty: its first line must be the Cloudflare API token "
	         "(traffic.cloudflare.token_file)",
	         path);
	cr_assert_str_eq(err.message, want);

	cfg.token_file = "/nonexistent/migrate-token";
	cr_assert_eq(mg_traffic_open(&t, &plan, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "cannot read the Cloudflare API token "
	                              "(traffic.cloudflare.token_file): "),
	          "%s", err.message);
	cr_assert(strstr(err.message, "/nonexistent/migrate-token"), "%s", err.message);
}

Test(cloudflare, describe_shows_the_calls_without_the_token)
{
	mg_traffic *t = open_ok();
	json_t *d;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_describe(&d, t, 10, &err), 0, "%s", err.message);
	char *text = json_dumps(d, JSON_COMPACT);
	cr_assert_null(strstr(text, TOKEN), "%s", text);
	cr_assert_eq(json_array_size(d), 2);
	json_t *get = json_array_get(d, 0), *patch = json_array_get(d, 1);
	char url[300];
	snprintf(url, sizeof(url), "%s/zones/%s/load_balancers/%s", api_url, ZONE, LB);
	cr_assert_str_eq(json_string_value(json_object_get(get, "kind")), "http");
	cr_assert_str_eq(json_string_value(json_object_get(patch, "kind")), "http");
	cr_assert_str_eq(json_string_value(json_object_get(get, "method")), "GET");
	cr_assert_str_eq(json_string_value(json_object_get(get, "url")), url);
	cr_assert_str_eq(json_string_value(json_object_get(patch, "method")), "PATCH");
	cr_assert_str_eq(json_string_value(json_object_get(patch, "url")), url);
	json_t *h = json_object_get(patch, "headers");
	cr_assert_str_eq(json_string_value(json_object_get(h, "Authorization")),
	                 "Bearer <from $" TOKEN_ENV ">");
	cr_assert_str_eq(json_string_value(json_object_get(h, "Content-Type")), "application/json");
	json_t *body = json_object_get(patch, "body");
	cr_assert_str_eq(json_string_value(json_object_get(body, "steering_policy")), "random");
	json_t *pw = json_object_get(json_object_get(body, "random_steering"), "pool_weights");
	cr_assert_float_eq(json_number_value(json_object_get(pw, VM_POOL)), 0.9, 1e-12);
	cr_assert_float_eq(json_number_value(json_object_get(pw, K8S_POOL)), 0.1, 1e-12);
	json_t *dp = json_object_get(body, "default_pools");
	cr_assert_eq(json_array_size(dp), 2);
	free(text);
	json_decref(d);
	cr_assert_eq(mg_traffic_describe(&d, t, 101, &err), MG_EINVALID);
	json_t *log = ctl("GET", "/log", NULL);
	cr_assert_eq(json_array_size(log), 0, "describe contacts nothing");
	json_decref(log);
	mg_traffic_free(t);
}

Test(cloudflare, shares_outside_0_to_100_are_refused)
{
	mg_traffic *t = open_ok();
	const double bad[] = {-1, 100.5, NAN, INFINITY};
	for (size_t i = 0; i < 4; i++) {
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_traffic_apply(NULL, t, bad[i], true, &err), MG_EINVALID, "%g",
		             bad[i]);
		cr_assert(strstr(err.message, "a share is from 0% to 100%"), "%s", err.message);
	}
	cr_assert_eq(count_requests("PATCH", NULL), 0);
	mg_traffic_free(t);
}

Test(cloudflare, unreachable_api_is_reported)
{
	snprintf(api_url, sizeof(api_url), "https://127.0.0.1:1/client/v4");
	cfg.timeout_ms = 800;
	mg_traffic *t = open_ok();
	mg_traffic_state st;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_traffic_read(&st, t, &err), MG_ERROR);
	cr_assert(strstr(err.message, "Cloudflare: reading the load balancer: cannot reach "
	                              "https://127.0.0.1:1/client/v4/zones/"),
	          "%s", err.message);
	no_token(&err);
	mg_traffic_free(t);
}
