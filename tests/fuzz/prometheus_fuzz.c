/*
 * libFuzzer target for the Prometheus answer parser (lib/gates/prometheus.c)
 * behind the real mg_metrics API, with the answers from the input
 * (fuzzutil.h). The input's first line picks the call: "range" a range
 * query, anything else an instant query. Any answer must give a result or an
 * error, never a crash, a leak or undefined behaviour.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzzutil.h"
#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t oplen = nl ? (size_t)(nl - data) : size;
	bool range = oplen == 5 && !memcmp(data, "range", 5);
	const uint8_t *rest = nl ? nl + 1 : data + size;
	fz_quiet_log();
	fz_http_start(rest, size - (size_t)(rest - data));

	mg_plan_slo slo = {.prometheus_url = "http://prometheus.fuzz:9090/",
	                   .prometheus_timeout_ms = 1000};
	mg_metrics *m = NULL;
	mg_error err = MG_ERROR_INIT;
	if (mg_metrics_open(&m, &slo, &err) == 0) {
		mg_metrics_result r = {0};
		int rc = range ? mg_metrics_query_range(&r, m, "sum(rate(x[1m]))", 1700000000000,
		                                        1700000600000, 60000, &err)
		               : mg_metrics_query(&r, m, "up{job=\"a\"}", 1700000000000, &err);
		if (rc == 0) {
			/* touch the result so a dangling pointer or a bad count would show */
			volatile double sum = 0;
			volatile size_t chars = 0;
			for (size_t i = 0; i < r.nseries; i++) {
				chars += strlen(r.series[i].labels);
				for (size_t j = 0; j < r.series[i].nsamples; j++)
					sum += r.series[i].samples[j].v +
					       (double)r.series[i].samples[j].t_ms;
			}
			if (r.warnings)
				chars += strlen(r.warnings);
			(void)mg_metrics_type_name(r.type);
			(void)sum;
			(void)chars;
		}
		mg_metrics_result_clear(&r);
		mg_metrics_free(m);
	}
	fz_report("prometheus", err.code, &err);
	mg_error_clear(&err);
	fz_http_stop();
	return 0;
}
