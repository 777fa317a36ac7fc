/*
 * Cloudflare Load Balancing: the cluster's share is the weight of its pool
 * under steering_policy "random", where Cloudflare picks a pool with
 * probability proportional to its weight (API v4, random_steering).
 *
 * One load balancer, two of its pools (VM and cluster). apply() reads the
 * load balancer and then PATCHes it once: the complete pool_weights map,
 * default_weight 0 so that any other pool listed in default_pools takes no
 * share of the random traffic (else the cluster's share would not be what
 * was asked), and default_pools as they are with whichever of the two pools
 * is missing appended (order and other pools kept: they may matter to an
 * operator's failover setup). fallback_pool and every other field are left
 * alone: PATCH changes only what is sent.
 */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "fs.h"
#include "http.h"
#include "log.h"
#include "secret.h"
#include "str.h"
#include "traffic.h"

#define DEFAULT_API_URL    "https://api.cloudflare.com/client/v4"
#define DEFAULT_TIMEOUT_MS 30000
#define PER_ATTEMPT_MS     10000
/* weights are sent with this many decimals: 0.0001 percentage points, far below what matters */
#define WEIGHT_SCALE 1000000.0

enum { VM, K8S };

typedef struct {
	mg_secret token; /* its source is what messages and describe() name */
	char *lb_url;
	char *health_url[2];
	char *pool[2];
	char *ca_file;
	int64_t timeout_ms;
	bool warned_rules;
} cf;

/* What a call to the API ended in, for callers that word their own message. */
typedef struct {
	char reason[512]; /* Cloudflare's errors[] or why there was no usable answer */
} call_info;

/* Cloudflare's errors[] as "message (code)[: chained (code)]; ...". */
static void errors_text(char *buf, size_t size, json_t *errors)
{
	buf[0] = '\0';
	size_t i;
	json_t *e;
	json_array_foreach(errors, i, e)
	{
		char one[300] = "";
		mg_scrub_append(one, sizeof(one), json_string_value(json_object_get(e, "message")));
		json_t *code = json_object_get(e, "code");
		if (json_is_integer(code))
			snprintf(one + strlen(one), sizeof(one) - strlen(one), " (%lld)",
			         (long long)json_integer_value(code));
		size_t j;
		json_t *ch;
		json_array_foreach(json_object_get(e, "error_chain"), j, ch)
		{
			snprintf(one + strlen(one), sizeof(one) - strlen(one), ": ");
			mg_scrub_append(one, sizeof(one),
			                json_string_value(json_object_get(ch, "message")));
		}
		if (strlen(buf) + 2 < size && buf[0])
			strcat(buf, "; ");
		mg_scrub_append(buf, size, one);
	}
}

static bool is_json_type(const char *ct)
{
	return ct && !strncasecmp(ct, "application/json", 16) &&
	       (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* What to do about an error status; the token is named by where it comes from. */
static void status_hint(char *buf, size_t size, const cf *c, long status)
{
	if (status == 401 || status == 403)
		snprintf(
		    buf, size,
		    "check the API token in %s: it must be valid and allowed to edit this load "
		    "balancer (Load Balancers: Write) and read its pools (Load Balancing: "
		    "Monitors and Pools: Read)",
		    c->token.source);
	else if (status == 404)
		snprintf(buf, size,
		         "check account_id, zone_id, load_balancer_id, vm_pool and "
		         "k8s_pool in the plan");
	else if (status == 429)
		snprintf(buf, size, "Cloudflare is rate-limiting this token; try again later");
	else if (status >= 500)
		snprintf(buf, size, "Cloudflare is failing; try again later");
	else if (status == 409)
		snprintf(buf, size,
		         "the load balancer is being changed by someone else or is in a "
		         "state that forbids the change; check it in Cloudflare and try "
		         "again");
	else
		snprintf(buf, size, "Cloudflare refused the request as sent");
}

/*
 * One API call within the operation's deadline. *result is the envelope's
 * result (a new reference). Every failure is a message naming what was being
 * done, what Cloudflare said, and what to do.
 */
static int call(cf *c, int64_t end, const char *what, const char *method, const char *url,
                const char *body, json_t **result, call_info *info, mg_error *err)
{
	*result = NULL;
	info->reason[0] = '\0';
	int64_t left = end - mg_clock_ms();
	if (left <= 0) {
		snprintf(info->reason, sizeof(info->reason), "the %lld ms timeout ran out",
		         (long long)c->timeout_ms);
		return mg_error_set(err, MG_ERROR,
		                    "Cloudflare: %s: the %lld ms timeout ran out before this call; "
		                    "raise traffic.cloudflare.timeout if Cloudflare is just slow",
		                    what, (long long)c->timeout_ms);
	}
	mg_http_request req = {
	    .method = method,
	    .url = url,
	    .body = body,
	    .content_type = body ? "application/json" : NULL,
	    .bearer_token = c->token.value,
	    .ca_file = c->ca_file,
	    .timeout_ms = left < PER_ATTEMPT_MS ? left : PER_ATTEMPT_MS,
	    .deadline_ms = left,
	};
	mg_http_response res;
	mg_error herr = MG_ERROR_INIT;
	int rc = mg_http_do(&res, &req, &herr);
	if (rc) {
		mg_scrub_append(info->reason, sizeof(info->reason), herr.message);
		rc =
		    mg_error_set(err, MG_ERROR, "Cloudflare: %s: %s%s", what, herr.message,
		                 body ? "; the change may or may not have been made: read the load "
		                        "balancer again before retrying"
		                      : "");
		mg_error_clear(&herr);
		mg_http_response_clear(&res);
		return rc;
	}
	char tries[80] = "";
	if (res.attempts > 1)
		snprintf(tries, sizeof(tries), " (after %d attempts in %.1f s)", res.attempts,
		         (double)res.elapsed_ms / 1000.0);
	json_t *doc = NULL;
	json_error_t je;
	if (is_json_type(res.content_type))
		doc = json_loadb(res.body, res.len, 0, &je);
	/* its messages, before any is cut (not the result: it is sent back in a PATCH) */
	mg_scrub_json(json_object_get(doc, "errors"));
	char errs[400] = "";
	if (json_is_object(doc))
		errors_text(errs, sizeof(errs), json_object_get(doc, "errors"));

	char ct[80] = "";
	mg_scrub_append(ct, sizeof(ct), res.content_type ? res.content_type : "untyped");
	if (res.status < 200 || res.status > 299) {
		char hint[512];
		status_hint(hint, sizeof(hint), c, res.status);
		snprintf(info->reason, sizeof(info->reason), "HTTP %ld: %s", res.status,
		         *errs ? errs : "no error details");
		rc = mg_error_set(err, MG_ERROR, "Cloudflare: %s: HTTP %ld: %s%s; %s", what,
		                  res.status, *errs ? errs : "no error details in the answer",
		                  tries, hint);
	} else if (!is_json_type(res.content_type)) {
		snprintf(info->reason, sizeof(info->reason), "answer is %s, not JSON", ct);
		rc = mg_error_set(
		    err, MG_ERROR,
		    "Cloudflare: %s: the answer is %s, not JSON; %s does not look like "
		    "the Cloudflare API v4: check traffic.cloudflare.api_url",
		    what, ct, url);
	} else if (!json_is_object(doc)) {
		snprintf(info->reason, sizeof(info->reason), "malformed JSON answer");
		rc = mg_error_set(err, MG_ERROR,
		                  "Cloudflare: %s: the answer is not a JSON object (%s); check "
		                  "traffic.cloudflare.api_url",
		                  what, doc ? "another JSON value" : je.text);
	} else if (!json_is_true(json_object_get(doc, "success"))) {
		snprintf(info->reason, sizeof(info->reason), "%s", *errs ? errs : "success: false");
		rc = mg_error_set(err, MG_ERROR, "Cloudflare: %s: Cloudflare reports a failure: %s",
		                  what, *errs ? errs : "success is false and no error is given");
	} else if (!json_object_get(doc, "result") ||
	           json_is_null(json_object_get(doc, "result"))) {
		snprintf(info->reason, sizeof(info->reason), "answer has no result");
		rc = mg_error_set(err, MG_ERROR,
		                  "Cloudflare: %s: the answer has no result, so nothing it did can "
		                  "be confirmed; check traffic.cloudflare.api_url",
		                  what);
	} else {
		*result = json_incref(json_object_get(doc, "result"));
	}
	if (rc && err && body && res.status >= 500)
		snprintf(
		    err->message + strlen(err->message),
		    sizeof(err->message) - strlen(err->message),
		    "; the change may or may not have been made: read the load balancer again");
	json_decref(doc);
	mg_http_response_clear(&res);
	return rc;
}

static void cf_free(void *drv)
{
	cf *c = drv;
	if (!c)
		return;
	mg_secret_clear(&c->token);
	free(c->lb_url);
	for (int i = 0; i < 2; i++) {
		free(c->health_url[i]);
		free(c->pool[i]);
	}
	free(c->ca_file);
	free(c);
}

int mg_traffic_cloudflare_new(void **out, const mg_plan_cloudflare *cfg, mg_error *err)
{
	*out = NULL;
	const char *need[] = {cfg->account_id, cfg->zone_id, cfg->load_balancer_id, cfg->vm_pool,
	                      cfg->k8s_pool};
	const char *names[] = {"account_id", "zone_id", "load_balancer_id", "vm_pool", "k8s_pool"};
	for (size_t i = 0; i < 5; i++)
		if (!need[i] || !*need[i])
			return mg_error_set(err, MG_EINVALID, "traffic.cloudflare.%s is not set",
			                    names[i]);
	if (!strcmp(cfg->vm_pool, cfg->k8s_pool))
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.cloudflare.k8s_pool must differ from vm_pool");
	cf *c = calloc(1, sizeof(*c));
	if (!c)
		return mg_error_oom(err);
	int rc = mg_secret_read(&c->token, cfg->token_env, cfg->token_file, "Cloudflare API token",
	                        "traffic.cloudflare", err);
	if (!rc && !c->token.value)
		rc = mg_error_set(err, MG_EINVALID,
		                  "no Cloudflare API token: set traffic.cloudflare.token_env or "
		                  "token_file");
	if (rc) {
		cf_free(c);
		return rc;
	}
	const char *api = cfg->api_url && *cfg->api_url ? cfg->api_url : DEFAULT_API_URL;
	int alen = (int)strlen(api);
	while (alen > 0 && api[alen - 1] == '/')
		alen--;
	c->lb_url = mg_str_printf("%.*s/zones/%s/load_balancers/%s", alen, api, cfg->zone_id,
	                          cfg->load_balancer_id);
	c->pool[VM] = strdup(cfg->vm_pool);
	c->pool[K8S] = strdup(cfg->k8s_pool);
	for (int i = 0; i < 2; i++)
		c->health_url[i] =
		    mg_str_printf("%.*s/accounts/%s/load_balancers/pools/%s/health", alen, api,
		                  cfg->account_id, i == VM ? cfg->vm_pool : cfg->k8s_pool);
	c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	if (!c->lb_url || !c->pool[VM] || !c->pool[K8S] || !c->health_url[VM] ||
	    !c->health_url[K8S] || (cfg->ca_file && !c->ca_file)) {
		cf_free(c);
		return mg_error_oom(err);
	}
	*out = c;
	return 0;
}

static bool in_pools(json_t *pools, const char *id)
{
	size_t i;
	json_t *p;
	json_array_foreach(pools, i, p)
	{
		if (json_is_string(p) && !strcmp(json_string_value(p), id))
			return true;
	}
	return false;
}

static bool has_entries(json_t *o)
{
	return (json_is_object(o) && json_object_size(o)) ||
	       (json_is_array(o) && json_array_size(o));
}

/*
 * Under "random" the share is read from the weights, counting every pool in
 * default_pools (the others get default_weight). Under "off" (and "" without
 * geo pools, which Cloudflare treats as "off") the first pool of
 * default_pools takes everything while healthy. Other policies decide per
 * request (latency, location, load), so no share can be read from the
 * configuration: those are refused rather than guessed.
 */
static int share(cf *c, json_t *lb, double w[2], double *k8s_percent, mg_error *err)
{
	json_t *pools = json_object_get(lb, "default_pools");
	const char *pol = json_string_value(json_object_get(lb, "steering_policy"));
	if (!pol)
		pol = "";
	if (!json_is_array(pools) || !json_array_size(pools))
		return mg_error_set(
		    err, MG_ERROR,
		    "Cloudflare: load balancer has no default_pools; add %s and %s to "
		    "it in Cloudflare",
		    c->pool[VM], c->pool[K8S]);
	bool geo_pools = has_entries(json_object_get(lb, "region_pools")) ||
	                 has_entries(json_object_get(lb, "country_pools")) ||
	                 has_entries(json_object_get(lb, "pop_pools"));
	if (!strcmp(pol, "off") || (!*pol && !geo_pools)) {
		const char *first = json_string_value(json_array_get(pools, 0));
		w[VM] = first && !strcmp(first, c->pool[VM]);
		w[K8S] = first && !strcmp(first, c->pool[K8S]);
		*k8s_percent = 100.0 * w[K8S];
		return 0;
	}
	if (strcmp(pol, "random") != 0)
		return mg_error_set(
		    err, MG_ERROR,
		    "Cloudflare: the load balancer uses steering_policy \"%s\"%s, under which its "
		    "traffic split is not set by pool weights; migrate steers with \"random\": switch "
		    "the load balancer to \"random\" or \"off\" in Cloudflare before migrating",
		    pol, *pol ? "" : " (geo steering, from its region/country/PoP pools)");
	json_t *rs = json_object_get(lb, "random_steering");
	json_t *dw = json_object_get(rs, "default_weight");
	json_t *pw = json_object_get(rs, "pool_weights");
	double def = json_is_number(dw) ? json_number_value(dw) : 1.0, total = 0;
	w[VM] = w[K8S] = 0;
	size_t i;
	json_t *p;
	json_array_foreach(pools, i, p)
	{
		const char *id = json_string_value(p);
		if (!id)
			continue;
		json_t *v = json_object_get(pw, id);
		double x = json_is_number(v) ? json_number_value(v) : def;
		if (!isfinite(x) || x < 0)
			return mg_error_set(err, MG_ERROR,
			                    "Cloudflare: pool %s has an invalid weight in "
			                    "random_steering; fix it in Cloudflare",
			                    id);
		total += x;
		if (!strcmp(id, c->pool[VM]))
			w[VM] = x;
		else if (!strcmp(id, c->pool[K8S]))
			w[K8S] = x;
	}
	if (total <= 0)
		return mg_error_set(err, MG_ERROR,
		                    "Cloudflare: every pool of the load balancer has weight 0 in "
		                    "random_steering, so no share can be read; set the weights in "
		                    "Cloudflare");
	*k8s_percent = 100.0 * w[K8S] / total;
	return 0;
}

/* Health across every PoP that checks the pool: one unhealthy PoP is enough to say DOWN. */
static void pool_health(cf *c, int64_t end, int side, mg_traffic_server *s)
{
	char what[160];
	snprintf(what, sizeof(what), "reading the health of pool %s", c->pool[side]);
	json_t *h = NULL;
	call_info info;
	mg_error e = MG_ERROR_INIT;
	if (call(c, end, what, "GET", c->health_url[side], NULL, &h, &info, &e)) {
		s->health = MG_HEALTH_UNKNOWN;
		snprintf(s->detail, sizeof(s->detail), "health unavailable: ");
		mg_scrub_append(s->detail, sizeof(s->detail), info.reason);
		mg_scrub_error(&e);
		mg_log(MG_LOG_WARN, "%s", e.message);
		mg_error_clear(&e);
		return;
	}
	json_t *pops = json_object_get(h, "pop_health");
	size_t total = 0, down = 0;
	const char *pop;
	json_t *ph;
	s->health = MG_HEALTH_UP;
	json_object_foreach(pops, pop, ph)
	{
		total++;
		if (json_is_true(json_object_get(ph, "healthy")))
			continue;
		if (down++)
			continue;
		/* the first failing PoP in the detail, with its first failing origin's reason */
		char d[sizeof(s->detail)] = "";
		mg_scrub_append(d, sizeof(d), pop);
		bool named = false;
		size_t i;
		json_t *o;
		json_array_foreach(json_object_get(ph, "origins"), i, o)
		{
			const char *addr;
			json_t *oh;
			json_object_foreach(o, addr, oh)
			{
				if (named || json_is_true(json_object_get(oh, "healthy")))
					continue;
				named = true;
				mg_scrub_append(d, sizeof(d), ": ");
				mg_scrub_append(d, sizeof(d), addr);
				const char *why =
				    json_string_value(json_object_get(oh, "failure_reason"));
				if (why && *why) {
					mg_scrub_append(d, sizeof(d), " ");
					mg_scrub_append(d, sizeof(d), why);
				}
			}
		}
		if (!named)
			mg_scrub_append(d, sizeof(d), ": unhealthy");
		snprintf(s->detail, sizeof(s->detail), "%s", d);
	}
	if (!total) {
		s->health = MG_HEALTH_UNKNOWN;
		snprintf(s->detail, sizeof(s->detail), "no health data (is a monitor attached?)");
	} else if (down) {
		s->health = MG_HEALTH_DOWN;
		if (down > 1) {
			size_t l = strlen(s->detail);
			snprintf(s->detail + l, sizeof(s->detail) - l, " (+%zu more PoPs)",
			         down - 1);
		}
	} else {
		snprintf(s->detail, sizeof(s->detail), "healthy in %zu PoP%s", total,
		         total == 1 ? "" : "s");
	}
	json_decref(h);
}

static int get_lb(cf *c, int64_t end, json_t **lb, mg_error *err)
{
	call_info info;
	int rc = call(c, end, "reading the load balancer", "GET", c->lb_url, NULL, lb, &info, err);
	if (!rc && !json_is_object(*lb)) {
		json_decref(*lb);
		*lb = NULL;
		rc = mg_error_set(err, MG_ERROR,
		                  "Cloudflare: reading the load balancer: the result is not an "
		                  "object; check traffic.cloudflare.api_url");
	}
	if (!rc && !c->warned_rules && has_entries(json_object_get(*lb, "rules"))) {
		c->warned_rules = true;
		mg_log(
		    MG_LOG_WARN,
		    "Cloudflare: the load balancer has rules; requests they match may be steered "
		    "differently from the pool weights migrate sets");
	}
	return rc;
}

static int cf_read(void *drv, mg_traffic_state *out, mg_error *err)
{
	cf *c = drv;
	int64_t end = mg_clock_ms() + c->timeout_ms;
	json_t *lb = NULL;
	double w[2];
	int rc = get_lb(c, end, &lb, err);
	if (!rc)
		rc = share(c, lb, w, &out->k8s_percent, err);
	json_decref(lb);
	if (rc) {
		mg_scrub_error(err);
		return rc;
	}
	out->servers = calloc(2, sizeof(*out->servers));
	if (!out->servers)
		return mg_error_oom(err);
	out->nservers = 2;
	for (int i = 0; i < 2; i++) {
		mg_traffic_server *s = &out->servers[i];
		snprintf(s->name, sizeof(s->name), "%s", c->pool[i]);
		s->k8s = i == K8S;
		s->weight = w[i];
		pool_health(c, end, i, s);
	}
	return 0;
}

/* The PATCH body; pools is the load balancer's current default_pools (NULL: just the two). */
static json_t *patch_body(cf *c, double pct, json_t *pools)
{
	double k = round(pct * (WEIGHT_SCALE / 100.0));
	json_t *dp = json_array(), *p;
	size_t i;
	json_array_foreach(pools, i, p)
	{
		if (json_is_string(p))
			json_array_append(dp, p);
	}
	for (int s = 0; s < 2; s++)
		if (!in_pools(dp, c->pool[s]))
			json_array_append_new(dp, json_string(c->pool[s]));
	return json_pack("{s:s, s:{s:f, s:{s:f, s:f}}, s:o}", "steering_policy", "random",
	                 "random_steering", "default_weight", 0.0, "pool_weights", c->pool[VM],
	                 (WEIGHT_SCALE - k) / WEIGHT_SCALE, c->pool[K8S], k / WEIGHT_SCALE,
	                 "default_pools", dp);
}

static int cf_apply(void *drv, double k8s_percent, mg_error *err)
{
	cf *c = drv; /* lib/traffic/traffic.c has checked k8s_percent is 0..100 */
	int64_t end = mg_clock_ms() + c->timeout_ms;
	json_t *lb = NULL, *res = NULL;
	double w[2], cur;
	int rc = get_lb(c, end, &lb, err);
	/* never switch a load balancer away from a policy we cannot read (geo, latency, ...) */
	if (!rc)
		rc = share(c, lb, w, &cur, err);
	if (rc) {
		json_decref(lb);
		mg_scrub_error(err);
		return rc;
	}
	json_t *body = patch_body(c, k8s_percent, json_object_get(lb, "default_pools"));
	json_decref(lb);
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	json_decref(body);
	if (!text)
		return mg_error_oom(err);
	char what[96];
	snprintf(what, sizeof(what), "setting the cluster's share to %g%%", k8s_percent);
	call_info info;
	rc = call(c, end, what, "PATCH", c->lb_url, text, &res, &info, err);
	free(text);
	json_decref(res);
	mg_scrub_error(err);
	return rc;
}

static int cf_describe(void *drv, double k8s_percent, json_t **out, mg_error *err)
{
	cf *c = drv;
	*out = NULL;
	char auth[400];
	snprintf(auth, sizeof(auth), "Bearer <from %s>", c->token.source);
	json_t *body = patch_body(c, k8s_percent, NULL);
	json_t *calls = json_pack(
	    "[{s:s, s:s, s:s, s:{s:s}, s:s}, {s:s, s:s, s:s, s:{s:s, s:s}, s:o, s:s}]", "kind",
	    "http", "method", "GET", "url", c->lb_url, "headers", "Authorization", auth, "why",
	    "read default_pools, to keep the pools already listed", "kind", "http", "method",
	    "PATCH", "url", c->lb_url, "headers", "Authorization", auth, "Content-Type",
	    "application/json", "body", body, "note",
	    "default_pools is the load balancer's current list with these pools appended when "
	    "missing");
	if (!calls)
		return mg_error_oom(err);
	*out = calls;
	return 0;
}

const mg_traffic_ops mg_traffic_cloudflare_ops = {
    .name = "cloudflare",
    .read = cf_read,
    .apply = cf_apply,
    .describe = cf_describe,
    .free = cf_free,
};
