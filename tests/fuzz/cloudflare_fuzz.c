/*
 * libFuzzer target for the Cloudflare answer handling
 * (lib/traffic/cloudflare.c) behind the real mg_traffic API, with the answers
 * from the input (fuzzutil.h). The input's first line picks the call:
 * "apply P" (P percent to the cluster, then the read-back), "describe P", or
 * anything else a read. Any answers must give a state or an error, never a
 * crash, a leak or undefined behaviour.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "traffic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const mg_traffic_state *st)
{
	volatile double sum = st->k8s_percent;
	volatile size_t chars = 0;
	for (size_t i = 0; i < st->nservers; i++) {
		sum += st->servers[i].weight;
		chars += strlen(st->servers[i].name) + strlen(st->servers[i].detail);
		(void)mg_health_name(st->servers[i].health);
	}
	(void)sum;
	(void)chars;
	json_t *j = mg_traffic_state_to_json(st);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t oplen = nl ? (size_t)(nl - data) : size;
	char op[32] = "";
	snprintf(op, sizeof(op), "%.*s", (int)(oplen < sizeof(op) ? oplen : sizeof(op) - 1),
	         (const char *)data);
	const uint8_t *rest = nl ? nl + 1 : data + size;
	double pct = 0;
	if (!strncmp(op, "apply ", 6) || !strncmp(op, "describe ", 9)) {
		pct = atof(strchr(op, ' ') + 1);
		if (!(pct >= 0 && pct <= 100)) /* the plan allows nothing else */
			pct = 50;
	}
	setenv("FZ_CF_TOKEN", "fuzz-token-0123456789", 1);
	mg_plan_cloudflare cf = {.account_id = "acc0",
	                         .zone_id = "zone0",
	                         .load_balancer_id = "lb0",
	                         .vm_pool = "pool-vm",
	                         .k8s_pool = "pool-k8s",
	                         .token_env = "FZ_CF_TOKEN",
	                         .api_url = "https://cloudflare.fuzz/client/v4",
	                         .timeout_ms = 60000};
	mg_plan_traffic plan = {.provider = MG_PROVIDER_CLOUDFLARE, .cloudflare = &cf};
	fz_quiet_log();
	fz_http_start(rest, size - (size_t)(rest - data));
	mg_traffic *t = NULL;
	mg_error err = MG_ERROR_INIT;
	if (mg_traffic_open(&t, &plan, &err) == 0) {
		mg_traffic_state st = {0};
		if (!strncmp(op, "apply ", 6)) {
			if (mg_traffic_apply(&st, t, pct, false, &err) == 0)
				touch(&st);
		} else if (!strncmp(op, "describe ", 9)) {
			json_t *d = NULL;
			if (mg_traffic_describe(&d, t, pct, &err) == 0) {
				char *s = json_dumps(d, 0);
				free(s);
			}
			json_decref(d);
		} else if (mg_traffic_read(&st, t, &err) == 0) {
			touch(&st);
		}
		mg_traffic_state_clear(&st);
		mg_traffic_free(t);
	}
	fz_report("cloudflare", err.code, &err);
	mg_error_clear(&err);
	fz_http_stop();
	return 0;
}
