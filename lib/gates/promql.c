#include "promql.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mg_promql_duration(char *buf, size_t size, int64_t ms)
{
	/* PromQL durations take whole numbers per unit, so sub-second parts go to ms */
	if (ms % 1000) {
		snprintf(buf, size, "%lldms", (long long)ms);
		return;
	}
	int64_t s = ms / 1000;
	int64_t h = s / 3600, m = s % 3600 / 60, sec = s % 60;
	size_t n = 0;
	buf[0] = '\0';
	if (h)
		n += (size_t)snprintf(buf + n, size - n, "%lldh", (long long)h);
	if (m && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%lldm", (long long)m);
	if ((sec || !n) && n < size)
		snprintf(buf + n, size - n, "%llds", (long long)sec);
}

int mg_promql_expand(char **out, const char *tmpl, int64_t window_ms, int64_t interval_ms,
                     mg_error *err)
{
	char w[32], iv[32];
	mg_promql_duration(w, sizeof(w), window_ms);
	mg_promql_duration(iv, sizeof(iv), interval_ms);
	size_t cap = strlen(tmpl) * 2 + 64, n = 0;
	char *s = malloc(cap);
	if (!s)
		return mg_error_oom(err);
	for (const char *p = tmpl; *p;) {
		const char *rep = NULL;
		size_t skip = 0;
		if (!strncmp(p, "${window}", 9)) {
			rep = w;
			skip = 9;
		} else if (!strncmp(p, "${interval}", 11)) {
			rep = iv;
			skip = 11;
		}
		size_t add = rep ? strlen(rep) : 1;
		if (n + add + 1 > cap) {
			cap = (n + add + 1) * 2;
			char *t = realloc(s, cap);
			if (!t) {
				free(s);
				return mg_error_oom(err);
			}
			s = t;
		}
		if (rep) {
			memcpy(s + n, rep, add);
			p += skip;
		} else {
			s[n] = *p++;
		}
		n += add;
	}
	s[n] = '\0';
	*out = s;
	return 0;
}

/* Server names go into a regex inside a PromQL string: escape regex syntax for both layers. */
static void server_regex(char *buf, size_t size, const char **servers, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < size; i++) {
		if (i)
			buf[o++] = '|';
		for (const char *c = servers[i]; *c && o + 4 < size; c++) {
			if (strchr(".[]()*+?{}|^$\\", *c)) {
				buf[o++] = '\\';
				buf[o++] = '\\';
			}
			buf[o++] = *c;
		}
	}
	buf[o < size ? o : size - 1] = '\0';
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static char *count(const char *metric, const char *sel, const char *err_sel, const char *w)
{
	if (!err_sel)
		return fmt("sum(increase(%s{%s}[%s]))", metric, sel, w);
	return fmt("sum(increase(%s{%s,%s}[%s])) or vector(0)", metric, sel, err_sel, w);
}

/* The label selectors of each side and the metric names of the preset's source. */
typedef struct {
	char ksel[1400], vsel[1400]; /* vsel is "" for ingress-nginx, which has no VM side */
	const char *reqs, *errsel;
} red_selectors;

static void red_selectors_make(red_selectors *s, const mg_plan_red *r)
{
	char k8s[1024], vm[1024];
	if (r->source == MG_RED_HAPROXY) {
		server_regex(k8s, sizeof(k8s), r->k8s_servers, r->nk8s_servers);
		server_regex(vm, sizeof(vm), r->vm_servers, r->nvm_servers);
		snprintf(s->ksel, sizeof(s->ksel), "proxy=\"%s\",server=~\"%s\"", r->backend, k8s);
		snprintf(s->vsel, sizeof(s->vsel), "proxy=\"%s\",server=~\"%s\"", r->backend, vm);
		s->reqs = "haproxy_server_http_responses_total";
		s->errsel = "code=\"5xx\"";
	} else {
		snprintf(s->ksel, sizeof(s->ksel), "namespace=\"%s\"%s%s%s",
		         r->namespace_ ? r->namespace_ : "", r->ingress ? ",ingress=\"" : "",
		         r->ingress ? r->ingress : "", r->ingress ? "\"" : "");
		s->vsel[0] = '\0';
		s->reqs = "nginx_ingress_controller_requests";
		s->errsel = "status=~\"5..\"";
	}
}

int mg_promql_red(mg_red_check **out, size_t *out_n, const mg_plan_slo *slo, int64_t window_ms,
                  int64_t sample_ms, mg_error *err)
{
	*out = NULL;
	*out_n = 0;
	const mg_plan_red *r = slo->red;
	if (!r)
		return 0;
	mg_red_check *c = calloc(4, sizeof(*c));
	if (!c)
		return mg_error_oom(err);
	char w[32], sw[32];
	mg_promql_duration(w, sizeof(w), window_ms);
	mg_promql_duration(sw, sizeof(sw), sample_ms);
	red_selectors rs;
	red_selectors_make(&rs, r);
	const char *ksel = rs.ksel, *vsel = rs.vsel, *reqs = rs.reqs, *errsel = rs.errsel;
	size_t n = 0;
	c[n] = (mg_red_check){.kind = MG_RED_RATE,
	                      .name = "rate",
	                      .query = count(reqs, ksel, NULL, sw),
	                      .threshold = (double)slo->min_requests};
	n++;
	if (r->max_error_rate >= 0) {
		c[n] = (mg_red_check){.kind = MG_RED_ERRORS,
		                      .name = "errors",
		                      .query = count(reqs, ksel, errsel, sw),
		                      .threshold = r->max_error_rate};
		n++;
	}
	if (r->max_latency_ms >= 0) {
		bool hist = r->source != MG_RED_HAPROXY;
		char *q = hist ? fmt("sum by (le) (increase(nginx_ingress_controller_request_"
		                     "duration_seconds_bucket{%s}[%s]))",
		                     ksel, sw)
		               : fmt("max(avg_over_time(haproxy_server_response_time_average_"
		                     "seconds{%s}[%s]))",
		                     ksel, w);
		c[n] = (mg_red_check){.kind = MG_RED_DURATION,
		                      .name = "duration",
		                      .query = q,
		                      .histogram = hist,
		                      .quantile = r->max_latency_quantile,
		                      .threshold = (double)r->max_latency_ms / 1000.0};
		n++;
	}
	/* ingress-nginx only sees the cluster; there is no VM side to compare with */
	if (r->max_error_rate_vs_vms >= 0 && r->source == MG_RED_HAPROXY) {
		c[n] = (mg_red_check){.kind = MG_RED_ERRORS_VS_VMS,
		                      .name = "errors-vs-vms",
		                      .query = count(reqs, ksel, errsel, sw),
		                      .vm_query = count(reqs, vsel, errsel, sw),
		                      .vm_requests_query = count(reqs, vsel, NULL, sw),
		                      .threshold = r->max_error_rate_vs_vms};
		n++;
	}
	for (size_t i = 0; i < n; i++)
		if (!c[i].query || (c[i].kind == MG_RED_ERRORS_VS_VMS &&
		                    (!c[i].vm_query || !c[i].vm_requests_query))) {
			mg_promql_red_free(c, n);
			return mg_error_oom(err);
		}
	*out = c;
	*out_n = n;
	return 0;
}

void mg_promql_red_free(mg_red_check *checks, size_t n)
{
	for (size_t i = 0; checks && i < n; i++) {
		free(checks[i].query);
		free(checks[i].vm_query);
		free(checks[i].vm_requests_query);
	}
	free(checks);
}

/* The latency of one side over w: HAProxy's average (worst server), or ingress-nginx' quantile. */
static char *latency(const mg_plan_red *r, const char *sel, const char *w)
{
	if (r->source == MG_RED_HAPROXY)
		return fmt(
		    "max(avg_over_time(haproxy_server_response_time_average_seconds{%s}[%s]))", sel,
		    w);
	return fmt("histogram_quantile(%g, sum by (le) (increase(nginx_ingress_controller_request_"
	           "duration_seconds_bucket{%s}[%s])))",
	           r->max_latency_quantile, sel, w);
}

int mg_promql_red_sides(mg_red_side **out, size_t *out_n, const mg_plan_red *r, int64_t window_ms,
                        mg_error *err)
{
	*out = NULL;
	*out_n = 0;
	if (!r)
		return 0;
	size_t n = r->source == MG_RED_HAPROXY ? 2 : 1;
	mg_red_side *s = calloc(n, sizeof(*s));
	if (!s)
		return mg_error_oom(err);
	char w[32];
	mg_promql_duration(w, sizeof(w), window_ms);
	red_selectors rs;
	red_selectors_make(&rs, r);
	for (size_t i = 0; i < n; i++) {
		const char *sel = i ? rs.vsel : rs.ksel;
		s[i].side = i ? "vms" : "cluster";
		s[i].requests = count(rs.reqs, sel, NULL, w);
		s[i].errors = count(rs.reqs, sel, rs.errsel, w);
		s[i].latency = latency(r, sel, w);
		s[i].quantile = r->source == MG_RED_HAPROXY ? 0 : r->max_latency_quantile;
		if (!s[i].requests || !s[i].errors || !s[i].latency) {
			mg_promql_red_sides_free(s, n);
			return mg_error_oom(err);
		}
	}
	*out = s;
	*out_n = n;
	return 0;
}

void mg_promql_red_sides_free(mg_red_side *sides, size_t n)
{
	for (size_t i = 0; sides && i < n; i++) {
		free(sides[i].requests);
		free(sides[i].errors);
		free(sides[i].latency);
	}
	free(sides);
}
