/*
 * Prometheus' HTTP API (/api/v1/query and /api/v1/query_range) as a metrics
 * source. Every request goes through lib/core/http.c with the plan's per-attempt
 * timeout, at most MAX_ATTEMPTS attempts within twice that timeout, and the
 * caller's cancel flag. The answer must be Prometheus' JSON envelope; when it
 * is not, the message says the URL is not the API rather than guessing.
 */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fs.h"
#include "http.h"
#include "metrics.h"
#include "secret.h"
#include "str.h"

/* Few enough that a dead Prometheus is reported within twice the timeout, not minutes later. */
#define MAX_ATTEMPTS 3

typedef struct {
	char *base;      /* slo.prometheus.url without its trailing '/' */
	mg_secret token; /* no value: send no Authorization header */
	char *ca_file;
	int64_t timeout_ms;
	const mg_cancel *cancel;
} prom;

static void prom_free(void *src)
{
	prom *p = src;
	if (!p)
		return;
	mg_secret_clear(&p->token);
	free(p->base);
	free(p->ca_file);
	free(p);
}

int mg_metrics_prometheus_new(void **out, const mg_plan_slo *slo, mg_error *err)
{
	*out = NULL;
	if (!slo->prometheus_url || !*slo->prometheus_url)
		return mg_error_set(err, MG_EINVALID, "slo.prometheus.url is not set");
	prom *p = calloc(1, sizeof(*p));
	if (!p)
		return mg_error_oom(err);
	/* no token configured is fine: many Prometheus have none */
	int rc = mg_secret_read(&p->token, slo->token_env, slo->token_file, "Prometheus token",
	                        "slo.prometheus", err);
	if (rc) {
		prom_free(p);
		return rc;
	}
	const char *url = slo->prometheus_url;
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	p->base = strndup(url, n);
	p->ca_file = slo->ca_file ? strdup(slo->ca_file) : NULL;
	p->timeout_ms = slo->prometheus_timeout_ms > 0 ? slo->prometheus_timeout_ms : 10000;
	if (!p->base || (slo->ca_file && !p->ca_file)) {
		prom_free(p);
		return mg_error_oom(err);
	}
	*out = p;
	return 0;
}

static void prom_set_cancel(void *src, const mg_cancel *flag)
{
	((prom *)src)->cancel = flag;
}

/* Percent-encodes all but RFC 3986's unreserved characters: PromQL is full of + { } " = ~. */
static char *escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Unix ms as the API's seconds with three decimals, exact (no float rounding). */
static void seconds(char *buf, size_t size, int64_t ms)
{
	int64_t s = ms / 1000, r = ms % 1000;
	if (r < 0) {
		s--;
		r += 1000;
	}
	snprintf(buf, size, "%lld.%03lld", (long long)s, (long long)r);
}

static bool is_json_type(const char *ct)
{
	if (!ct)
		return false;
	size_t n = strcspn(ct, "; ");
	return (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
	       (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

/* A sample value: Go's float formatting, with NaN and ±Inf spelled out. */
static bool parse_value(const char *s, double *v)
{
	if (!strcmp(s, "NaN")) {
		*v = NAN;
		return true;
	}
	if (!strcmp(s, "+Inf")) {
		*v = INFINITY;
		return true;
	}
	if (!strcmp(s, "-Inf")) {
		*v = -INFINITY;
		return true;
	}
	char *end;
	if (!*s || strchr(" \t\n", *s))
		return false;
	*v = strtod(s, &end);
	return *end == '\0';
}

/* [<unix seconds>, "<value>"]; a string result's text is kept as a number when it is one. */
static const char *parse_sample(json_t *pair, mg_metrics_sample *out, bool is_string)
{
	json_t *t = json_array_get(pair, 0), *v = json_array_get(pair, 1);
	if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_number(t) ||
	    !json_is_string(v))
		return "a sample is not [<time>, \"<value>\"]";
	double sec = json_number_value(t);
	if (!isfinite(sec) || fabs(sec) > 9.0e15)
		return "a sample's time is out of range";
	out->t_ms = (int64_t)llround(sec * 1000.0);
	if (!parse_value(json_string_value(v), &out->v)) {
		if (!is_string)
			return "a sample's value is not a number";
		out->v = NAN;
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* {a="b",c="d"} with keys sorted, values escaped as PromQL writes them; "{}" for none. */
static const char *render_labels(json_t *metric, char **out)
{
	*out = NULL;
	if (!json_is_object(metric))
		return "a series has no \"metric\" object";
	size_t n = json_object_size(metric), i = 0;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return "out of memory";
	const char *k;
	json_t *v;
	json_object_foreach(metric, k, v)
	{
		if (!json_is_string(v)) {
			free(keys);
			return "a label value is not a string";
		}
		keys[i++] = k;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	size_t len = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		free(keys);
		return "out of memory";
	}
	fputc('{', f);
	for (i = 0; i < n; i++) {
		fprintf(f, "%s%s=\"", i ? "," : "", keys[i]);
		for (const char *s = json_string_value(json_object_get(metric, keys[i])); *s; s++) {
			if (*s == '\\' || *s == '"')
				fputc('\\', f);
			if (*s == '\n')
				fputs("\\n", f);
			else
				fputc(*s, f);
		}
		fputc('"', f);
	}
	fputc('}', f);
	free(keys);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return "out of memory";
	}
	*out = buf;
	return NULL;
}

static const char *parse_series(json_t *e, mg_metrics_series *s, bool matrix)
{
	if (!json_is_object(e))
		return "a series is not an object";
	if (json_object_get(e, matrix ? "histograms" : "histogram"))
		return "it holds native histogram samples, which a gate cannot compare with a "
		       "threshold: wrap the query in histogram_quantile(), histogram_count() or "
		       "histogram_sum()";
	const char *why = render_labels(json_object_get(e, "metric"), &s->labels);
	if (why)
		return why;
	if (!matrix) {
		s->samples = calloc(1, sizeof(*s->samples));
		if (!s->samples)
			return "out of memory";
		s->nsamples = 1;
		return parse_sample(json_object_get(e, "value"), &s->samples[0], false);
	}
	json_t *values = json_object_get(e, "values");
	if (!json_is_array(values))
		return "a series of a matrix has no \"values\"";
	size_t n = json_array_size(values);
	s->samples = calloc(n ? n : 1, sizeof(*s->samples));
	if (!s->samples)
		return "out of memory";
	s->nsamples = n;
	for (size_t i = 0; i < n; i++)
		if ((why = parse_sample(json_array_get(values, i), &s->samples[i], false)))
			return why;
	return NULL;
}

/* data of a success envelope into *out; NULL or why it is not what the API sends. */
static const char *parse_data(json_t *data, mg_metrics_result *out)
{
	static const char *const names[] = {"vector", "scalar", "matrix", "string"};
	static const mg_metrics_type types[] = {MG_METRICS_VECTOR, MG_METRICS_SCALAR,
	                                        MG_METRICS_MATRIX, MG_METRICS_STRING};
	const char *rt = json_string_value(json_object_get(data, "resultType"));
	json_t *result = json_object_get(data, "result");
	if (!json_is_object(data) || !rt || !result)
		return "\"data\" has no \"resultType\" and \"result\"";
	size_t k;
	for (k = 0; k < 4 && strcmp(rt, names[k]); k++)
		;
	if (k == 4)
		return "unknown resultType";
	out->type = types[k];
	if (out->type == MG_METRICS_SCALAR || out->type == MG_METRICS_STRING) {
		out->series = calloc(1, sizeof(*out->series));
		if (!out->series)
			return "out of memory";
		out->nseries = 1;
		mg_metrics_series *s = &out->series[0];
		s->labels = strdup("{}");
		s->samples = calloc(1, sizeof(*s->samples));
		if (!s->labels || !s->samples)
			return "out of memory";
		s->nsamples = 1;
		return parse_sample(result, &s->samples[0], out->type == MG_METRICS_STRING);
	}
	if (!json_is_array(result))
		return "\"result\" of a vector or matrix is not a list";
	size_t n = json_array_size(result);
	out->series = calloc(n ? n : 1, sizeof(*out->series));
	if (!out->series)
		return "out of memory";
	out->nseries = n;
	for (size_t i = 0; i < n; i++) {
		const char *why = parse_series(json_array_get(result, i), &out->series[i],
		                               out->type == MG_METRICS_MATRIX);
		if (why)
			return why;
	}
	return NULL;
}

static int warnings_of(json_t *doc, mg_metrics_result *out, mg_error *err)
{
	json_t *w = json_object_get(doc, "warnings");
	if (!json_is_array(w) || !json_array_size(w))
		return 0;
	char buf[2048] = "";
	size_t i;
	json_t *e;
	json_array_foreach(w, i, e)
	{
		if (!json_is_string(e))
			continue;
		if (buf[0])
			mg_scrub_append(buf, sizeof(buf), "; ");
		mg_scrub_append(buf, sizeof(buf), json_string_value(e));
	}
	if (buf[0] && !(out->warnings = strdup(buf)))
		return mg_error_oom(err);
	return 0;
}

/* The message of a request that got no answer, with the (long) query string cut from the URL. */
static int no_answer(const prom *p, mg_error *herr, const char *url, const char *shown,
                     mg_error *err)
{
	char msg[sizeof(herr->message)] = "";
	size_t n = strlen(url);
	const char *s = herr->message, *hit;
	while ((hit = strstr(s, url)) != NULL) {
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%.*s%s", (int)(hit - s), s,
		         shown);
		s = hit + n;
	}
	snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s", s);
	if (herr->code == MG_ECANCELED)
		return mg_error_set(err, MG_ECANCELED, "Prometheus: %s", msg);
	return mg_error_set(err, herr->code ? herr->code : MG_ERROR,
	                    "Prometheus: %s (slo.prometheus.url, slo.prometheus.timeout: %lld ms)",
	                    msg, (long long)p->timeout_ms);
}

/* What came back, as a result or as a message that says which kind of failure it was. */
static int answer(const prom *p, const mg_http_response *res, const char *shown,
                  mg_metrics_result *out, mg_error *err)
{
	char tries[80] = "", ct[96] = "";
	if (res->attempts > 1)
		snprintf(tries, sizeof(tries), " after %d attempts in %.1f s", res->attempts,
		         (double)res->elapsed_ms / 1000.0);
	mg_scrub_append(ct, sizeof(ct), res->content_type ? res->content_type : "none given");
	json_error_t je = {0};
	json_t *doc = NULL;
	if (!res->content_type || is_json_type(res->content_type))
		doc = json_loadb(res->body ? res->body : "", res->len, 0, &je);
	/* its messages, before any is cut (the data is left as it is) */
	mg_scrub_json(json_object_get(doc, "error"));
	mg_scrub_json(json_object_get(doc, "errorType"));
	mg_scrub_json(json_object_get(doc, "warnings"));
	const char *st = json_string_value(json_object_get(doc, "status"));
	long code = res->status;
	int rc = 0;
	if (st && !strcmp(st, "error")) {
		char et[128] = "", msg[768] = "";
		mg_scrub_append(et, sizeof(et),
		                json_string_value(json_object_get(doc, "errorType")));
		mg_scrub_append(msg, sizeof(msg), json_string_value(json_object_get(doc, "error")));
		if (code >= 500)
			rc = mg_error_set(err, MG_ERROR,
			                  "Prometheus at %s failed to run the query (HTTP %ld%s): "
			                  "%s: %s",
			                  p->base, code, tries, et[0] ? et : "(no errorType)",
			                  msg[0] ? msg : "(no error)");
		else
			rc = mg_error_set(err, MG_ERROR, "Prometheus rejected the query: %s: %s",
			                  et[0] ? et : "(no errorType)",
			                  msg[0] ? msg : "(no error)");
	} else if (code == 401 || code == 403) {
		if (p->token.value)
			rc = mg_error_set(err, MG_ERROR,
			                  "Prometheus at %s refused the token from %s (HTTP %ld): "
			                  "check that it is valid and allowed to query Prometheus",
			                  p->base, p->token.source, code);
		else
			rc = mg_error_set(err, MG_ERROR,
			                  "Prometheus at %s wants a token (HTTP %ld): name the "
			                  "environment variable that holds it in "
			                  "slo.prometheus.token_env, or its file in "
			                  "slo.prometheus.token_file",
			                  p->base, code);
	} else if (code == 404) {
		rc = mg_error_set(err, MG_ERROR,
		                  "no Prometheus API at %s (HTTP 404 for %s): check "
		                  "slo.prometheus.url",
		                  p->base, shown);
	} else if (code >= 500) {
		rc = mg_error_set(err, MG_ERROR,
		                  "Prometheus at %s is failing: HTTP %ld%s; check Prometheus, or "
		                  "try again later",
		                  p->base, code, tries);
	} else if (code < 200 || code > 299) {
		rc =
		    mg_error_set(err, MG_ERROR,
		                 "%s answered HTTP %ld (content type %s), which the Prometheus API "
		                 "does not: check slo.prometheus.url",
		                 shown, code, ct);
	} else if (res->content_type && !is_json_type(res->content_type)) {
		rc = mg_error_set(err, MG_ERROR,
		                  "%s is not the Prometheus API (content type %s, not JSON): check "
		                  "slo.prometheus.url",
		                  shown, ct);
	} else if (!doc) {
		char why[200] = "";
		mg_scrub_append(why, sizeof(why), je.text);
		rc = mg_error_set(err, MG_ERROR,
		                  "%s is not the Prometheus API (content type %s, but the body is "
		                  "not JSON: %s): check slo.prometheus.url",
		                  shown, ct, why);
	} else if (!st || strcmp(st, "success") != 0) {
		rc = mg_error_set(err, MG_ERROR,
		                  "%s is not the Prometheus API (content type %s, but no "
		                  "\"status\": \"success\" or \"error\" in the answer): check "
		                  "slo.prometheus.url",
		                  shown, ct);
	} else {
		const char *why = parse_data(json_object_get(doc, "data"), out);
		if (why)
			rc = mg_error_set(err, MG_ERROR,
			                  "the answer of Prometheus at %s cannot be used: %s",
			                  p->base, why);
		else
			rc = warnings_of(doc, out, err);
	}
	json_decref(doc);
	return rc;
}

static int run(prom *p, const char *path, const char *query, const char *params,
               mg_metrics_result *out, mg_error *err)
{
	char *q = escape(query);
	char *url = q ? mg_str_printf("%s%s?query=%s&%s", p->base, path, q, params) : NULL;
	char *shown = mg_str_printf("%s%s", p->base, path);
	free(q);
	if (!url || !shown) {
		free(url);
		free(shown);
		return mg_error_oom(err);
	}
	mg_http_request req = {
	    .method = "GET",
	    .url = url,
	    .accept = "application/json",
	    .bearer_token = p->token.value,
	    .ca_file = p->ca_file,
	    .timeout_ms = p->timeout_ms,
	    .deadline_ms = 2 * p->timeout_ms,
	    .max_attempts = MAX_ATTEMPTS,
	    .cancel = p->cancel,
	};
	mg_http_response res;
	mg_error herr = MG_ERROR_INIT;
	int rc = mg_http_do(&res, &req, &herr);
	if (rc)
		rc = no_answer(p, &herr, url, shown, err);
	else
		rc = answer(p, &res, shown, out, err);
	mg_error_clear(&herr);
	mg_http_response_clear(&res);
	free(url);
	free(shown);
	mg_scrub_error(err);
	return rc;
}

static int prom_query(void *src, mg_metrics_result *out, const char *query, int64_t at_ms,
                      mg_error *err)
{
	char params[64], t[32];
	seconds(t, sizeof(t), at_ms);
	snprintf(params, sizeof(params), "time=%s", t);
	return run(src, "/api/v1/query", query, params, out, err);
}

static int prom_query_range(void *src, mg_metrics_result *out, const char *query, int64_t start_ms,
                            int64_t end_ms, int64_t step_ms, mg_error *err)
{
	char params[128], a[32], b[32], s[32];
	seconds(a, sizeof(a), start_ms);
	seconds(b, sizeof(b), end_ms);
	seconds(s, sizeof(s), step_ms);
	snprintf(params, sizeof(params), "start=%s&end=%s&step=%s", a, b, s);
	return run(src, "/api/v1/query_range", query, params, out, err);
}

const mg_metrics_ops mg_metrics_prometheus_ops = {
    .name = "prometheus",
    .query = prom_query,
    .query_range = prom_query_range,
    .free = prom_free,
    .set_cancel = prom_set_cancel,
};
