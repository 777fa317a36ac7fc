/* The plan's slo section: Prometheus, and the gates (RED metrics and checks) a step must pass. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void load_checks(loader *L, yaml_node_t *list, mg_plan_slo *s)
{
	static const char *const keys[] = {"name",     "query",     "min", "max",
	                                   "baseline", "max_ratio", NULL};
	static const char *const refs[] = {"window", "interval", NULL};
	const char *P = "slo.checks";
	if (!mg_pl_expect(L, list, YAML_SEQUENCE_NODE, P))
		return;
	size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	s->checks = mg_pl_arena_alloc(L->plan, (n ? n : 1) * sizeof(*s->checks));
	size_t i = 0;
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     s->checks && it < list->data.sequence.items.top; it++, i++) {
		yaml_node_t *c = mg_pl_node(L, *it);
		const char *p = mg_pl_ipath(L, P, i);
		if (!mg_pl_expect(L, c, YAML_MAPPING_NODE, p))
			continue;
		mg_pl_check_keys(L, c, p, keys);
		mg_plan_check ck = {0};
		ck.name = mg_pl_get_str(L, c, p, "name", true, NULL);
		if (ck.name && !mg_pl_valid_dns_label(ck.name, 63))
			ERR(L, mg_pl_get(L, c, "name"), mg_pl_kpath(L, p, "name"),
			    "\"%s\" is not a check name (lower case letters, digits and '-')",
			    ck.name);
		for (size_t j = 0; ck.name && j < s->nchecks; j++)
			if (!strcmp(s->checks[j].name, ck.name))
				ERR(L, mg_pl_get(L, c, "name"), mg_pl_kpath(L, p, "name"),
				    "check \"%s\" is defined twice", ck.name);
		ck.query = mg_pl_get_str(L, c, p, "query", true, NULL);
		if (ck.query)
			mg_pl_check_refs(L, mg_pl_get(L, c, "query"), mg_pl_kpath(L, p, "query"),
			                 ck.query, refs);
		ck.has_min = mg_pl_get_number(L, c, p, "min", &ck.min);
		ck.has_max = mg_pl_get_number(L, c, p, "max", &ck.max);
		ck.baseline = mg_pl_get_str(L, c, p, "baseline", false, NULL);
		if (ck.baseline)
			mg_pl_check_refs(L, mg_pl_get(L, c, "baseline"),
			                 mg_pl_kpath(L, p, "baseline"), ck.baseline, refs);
		bool has_ratio = mg_pl_get_number(L, c, p, "max_ratio", &ck.max_ratio);
		if (ck.baseline && !has_ratio)
			ERR(L, c, p, "a check with \"baseline\" needs \"max_ratio\"");
		if (has_ratio && !ck.baseline)
			ERR(L, mg_pl_get(L, c, "max_ratio"), mg_pl_kpath(L, p, "max_ratio"),
			    "\"max_ratio\" compares with a \"baseline\" query, which is missing");
		if (has_ratio && ck.max_ratio <= 0)
			ERR(L, mg_pl_get(L, c, "max_ratio"), mg_pl_kpath(L, p, "max_ratio"),
			    "must be greater than 0");
		if (!mg_pl_get(L, c, "min") && !mg_pl_get(L, c, "max") &&
		    !mg_pl_get(L, c, "baseline"))
			ERR(L, c, p,
			    "a check needs \"min\", \"max\" or \"baseline\" to pass or fail");
		if (ck.has_min && ck.has_max && ck.min > ck.max)
			ERR(L, mg_pl_get(L, c, "min"), mg_pl_kpath(L, p, "min"),
			    "%g is greater than max (%g); no value could pass", ck.min, ck.max);
		if (ck.name && ck.query)
			s->checks[s->nchecks++] = ck;
	}
}

static void load_red(loader *L, yaml_node_t *m, mg_plan_slo *s)
{
	static const char *const keys[] = {"source",
	                                   "backend",
	                                   "ingress",
	                                   "namespace",
	                                   "vm_servers",
	                                   "k8s_servers",
	                                   "max_error_rate",
	                                   "max_latency",
	                                   "max_error_rate_vs_vms",
	                                   "max_latency_quantile",
	                                   NULL};
	const char *P = "slo.red";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_red *r = mg_pl_arena_alloc(L->plan, sizeof(*r));
	if (!r)
		return;
	size_t source_errors = L->errors;
	yaml_node_t *src = mg_pl_get_required(L, m, P, "source");
	if (src && mg_pl_expect(L, src, YAML_SCALAR_NODE, "slo.red.source")) {
		if (!strcmp(mg_pl_scalar(src), "haproxy"))
			r->source = MG_RED_HAPROXY;
		else if (!strcmp(mg_pl_scalar(src), "ingress-nginx"))
			r->source = MG_RED_INGRESS_NGINX;
		else
			ERR(L, src, "slo.red.source",
			    "unknown metrics source \"%s\"; use haproxy or ingress-nginx",
			    mg_pl_scalar(src));
	}
	bool source_ok = L->errors == source_errors;
	/* an unknown source has no required keys of its own to complain about */
	r->backend = mg_pl_get_str(L, m, P, "backend",
	                           source_ok && src && r->source == MG_RED_HAPROXY, NULL);
	r->ingress = mg_pl_get_str(L, m, P, "ingress", false, NULL);
	r->namespace_ = mg_pl_get_str(L, m, P, "namespace", false, NULL);
	r->vm_servers = mg_pl_load_name_list(L, m, P, "vm_servers", &r->nvm_servers, false,
	                                     mg_pl_valid_server_name, "a server name");
	r->k8s_servers = mg_pl_load_name_list(L, m, P, "k8s_servers", &r->nk8s_servers, false,
	                                      mg_pl_valid_server_name, "a server name");
	r->max_error_rate = mg_pl_get_rate(L, m, P, "max_error_rate");
	/* the judge tests a rate against the bound: 0 can never be shown (no number of
	 * requests proves a rate of exactly 0), and 100% cannot be exceeded */
	if (mg_pl_get(L, m, "max_error_rate") &&
	    (r->max_error_rate == 0 || r->max_error_rate >= 1)) {
		ERR(L, mg_pl_get(L, m, "max_error_rate"), "slo.red.max_error_rate",
		    "%s can never be judged with confidence: no number of requests shows a rate "
		    "%s it; use a rate between 0 and 100%%, such as 0.1%%",
		    r->max_error_rate == 0 ? "0" : "100%",
		    r->max_error_rate == 0 ? "of exactly 0, and none is above" : "above");
		r->max_error_rate = -1;
	}
	r->max_latency_quantile = 0.99;
	yaml_node_t *qn = mg_pl_get(L, m, "max_latency_quantile");
	if (qn && mg_pl_expect(L, qn, YAML_SCALAR_NODE, "slo.red.max_latency_quantile")) {
		/* p99, p99.9, 99%, 0.99 */
		const char *qs = mg_pl_scalar(qn);
		double q = -1;
		char *end = NULL;
		bool pct = qs[0] == 'p' || strchr(qs, '%');
		q = strtod(qs + (qs[0] == 'p'), &end);
		if (end == qs + (qs[0] == 'p') || !end ||
		    (*end && !(*end == '%' && !end[1] && qs[0] != 'p')))
			q = -1;
		else if (pct)
			q /= 100;
		if (q <= 0 || q >= 1)
			ERR(L, qn, "slo.red.max_latency_quantile",
			    "\"%s\" is not a quantile; write p99, p99.9, 99%% or 0.99 (above 0, "
			    "below 1)",
			    qs);
		else
			r->max_latency_quantile = q;
	}
	r->max_latency_ms = mg_pl_get_duration(L, m, P, "max_latency", -1, 1);
	r->max_error_rate_vs_vms = -1;
	if (mg_pl_get_number(L, m, P, "max_error_rate_vs_vms", &r->max_error_rate_vs_vms) &&
	    r->max_error_rate_vs_vms < 1) {
		ERR(L, mg_pl_get(L, m, "max_error_rate_vs_vms"), "slo.red.max_error_rate_vs_vms",
		    "%g would fail the cluster for doing better than the VMs; use 1 or more",
		    r->max_error_rate_vs_vms);
		r->max_error_rate_vs_vms = -1;
	}
	if (!mg_pl_get(L, m, "max_error_rate") && !mg_pl_get(L, m, "max_latency") &&
	    !mg_pl_get(L, m, "max_error_rate_vs_vms"))
		ERR(L, m, P,
		    "needs at least one of max_error_rate, max_latency, max_error_rate_vs_vms");
	if (qn && source_ok && r->source == MG_RED_HAPROXY)
		ERR(L, qn, "slo.red.max_latency_quantile",
		    "HAProxy exports an average response time, not a histogram, so no quantile "
		    "can be judged; remove max_latency_quantile (max_latency bounds the average) "
		    "or use source: ingress-nginx");
	if (qn && !mg_pl_get(L, m, "max_latency"))
		ERR(L, qn, "slo.red.max_latency_quantile",
		    "a quantile of what? set max_latency, the bound the quantile must stay under");
	/* with an unknown source no cross-section rule applies; the error is reported already */
	s->red = source_ok ? r : NULL;
}

void mg_pl_load_slo(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {
	    "prometheus",    "interval",   "window", "min_requests", "confidence",
	    "failure_limit", "on_failure", "red",    "checks",       NULL};
	static const char *const pkeys[] = {"url",     "token_env", "token_file",
	                                    "ca_file", "timeout",   NULL};
	const char *P = "slo";
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_slo *s = mg_pl_arena_alloc(L->plan, sizeof(*s));
	if (!s)
		return;
	yaml_node_t *prom = mg_pl_get_required(L, m, P, "prometheus");
	s->prometheus_timeout_ms = 10000;
	if (prom && mg_pl_expect(L, prom, YAML_MAPPING_NODE, "slo.prometheus")) {
		const char *PP = "slo.prometheus";
		mg_pl_check_keys(L, prom, PP, pkeys);
		s->prometheus_url = mg_pl_get_str(L, prom, PP, "url", true, NULL);
		mg_pl_check_url(L, prom, PP, "url", s->prometheus_url);
		mg_pl_load_secret_ref(L, prom, PP, &s->token_env, &s->token_file, false);
		s->ca_file = mg_pl_get_path(L, prom, PP, "ca_file", false, NULL);
		mg_pl_check_file_exists(L, prom, PP, "ca_file", s->ca_file, false, MG_SEV_ERROR);
		s->prometheus_timeout_ms = mg_pl_get_duration(L, prom, PP, "timeout", 10000, 100);
	}
	s->interval_ms = mg_pl_get_duration(L, m, P, "interval", 30000, 1000);
	s->window_ms = mg_pl_get_duration(L, m, P, "window", 300000, 1000);
	if (s->window_ms < s->interval_ms)
		ERR(L,
		    mg_pl_get(L, m, "window") ? mg_pl_get(L, m, "window")
		                              : mg_pl_get(L, m, "interval"),
		    "slo.window",
		    "the window must be at least the interval, or requests between two "
		    "evaluations are never looked at");
	s->test_period_ms = s->window_ms; /* at least the bake: mg_pl_check_cross */
	s->min_requests = mg_pl_get_int(L, m, P, "min_requests", 0, 0, LONG_MAX);
	s->confidence = 0.95;
	if (mg_pl_get(L, m, "confidence")) {
		double c = mg_pl_get_rate(L, m, P, "confidence");
		if (c >= 0 && (c < 0.5 || c > 0.9999))
			ERR(L, mg_pl_get(L, m, "confidence"), "slo.confidence",
			    "%g is not a useful confidence: use 50%% to 99.99%% (0.95 is the default)",
			    c);
		else if (c >= 0)
			s->confidence = c;
	}
	s->failure_limit = (int)mg_pl_get_int(L, m, P, "failure_limit", 1, 1, 1000);
	s->on_failure = MG_ON_FAILURE_ROLLBACK;
	yaml_node_t *of = mg_pl_get(L, m, "on_failure");
	if (of && mg_pl_expect(L, of, YAML_SCALAR_NODE, "slo.on_failure")) {
		if (!strcmp(mg_pl_scalar(of), "pause"))
			s->on_failure = MG_ON_FAILURE_PAUSE;
		else if (strcmp(mg_pl_scalar(of), "rollback"))
			ERR(L, of, "slo.on_failure", "\"%s\" is not rollback or pause",
			    mg_pl_scalar(of));
	}
	yaml_node_t *red = mg_pl_get(L, m, "red");
	if (red)
		load_red(L, red, s);
	yaml_node_t *checks = mg_pl_get(L, m, "checks");
	if (checks)
		load_checks(L, checks, s);
	if (!red && !checks)
		ERR(L, m, P,
		    "no gates: add \"red\" or \"checks\", or traffic would move on no "
		    "evidence");
	L->plan->slo = s;
}
