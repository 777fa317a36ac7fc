#include "util_gate.h"

#include <string.h>

#include "units.h"

/* The confidence the judged checks used (all use slo.confidence). */
static double judged_confidence(const mg_gate_eval *ev)
{
	for (size_t i = 0; i < ev->nchecks; i++)
		if (ev->checks[i].stats.judged)
			return ev->checks[i].stats.confidence;
	return 0;
}

void gate_print(FILE *f, const mg_cli *cli, const mg_gate_eval *ev, bool color)
{
	(void)cli;
	char w[32], wp[32], at[40];
	mg_duration_format(w, sizeof(w), ev->window_ms);
	mg_duration_format(wp, sizeof(wp), ev->window_plan_ms);
	mg_time_format(at, sizeof(at), ev->at_ms);
	fprintf(f, "gates at %s over %s%s%s%s\n", at, w, ev->clamped ? " (clamped from " : "",
	        ev->clamped ? wp : "", ev->clamped ? ": the step is younger than slo.window)" : "");
	bool judged = false;
	for (size_t i = 0; i < ev->nchecks; i++)
		judged |= ev->checks[i].stats.judged;
	if (judged) {
		char sw[32];
		mg_duration_format(sw, sizeof(sw), ev->sample_ms);
		fprintf(f,
		        "counts over the last %s (test period %d of the step), judged with %g%% "
		        "confidence\n",
		        sw, ev->period, judged_confidence(ev) * 100);
	}
	fprintf(f, "  %-20s %-13s %-12s %s\n", "CHECK", "RESULT", "VALUE", "PASSES WHEN");
	for (size_t i = 0; i < ev->nchecks; i++) {
		const mg_gate_check *c = &ev->checks[i];
		char v[32], t[320];
		mg_gate_check_text(v, sizeof(v), t, sizeof(t), c);
		const char *col = c->outcome == MG_GATE_PASS   ? C_GREEN
		                  : c->outcome == MG_GATE_FAIL ? C_RED
		                                               : C_YELLOW;
		fprintf(f, "  %-20s %s%-13s%s %-12s %s\n", c->name, cli_c(color, col),
		        mg_gate_outcome_name(c->outcome), cli_c(color, C_RESET), v, t);
		if (c->detail)
			fprintf(f, "  %-20s %s%s%s\n", "", cli_c(color, C_DIM), c->detail,
			        cli_c(color, C_RESET));
		if (cli->verbose) {
			fprintf(f, "  %-20s query: %s\n", "", c->query ? c->query : "");
			if (c->requests_query)
				fprintf(f, "  %-20s requests: %s\n", "", c->requests_query);
			if (c->other_query)
				fprintf(f, "  %-20s %s: %s\n", "", c->has_ratio ? "baseline" : "vs",
				        c->other_query);
			if (c->vm_requests_query)
				fprintf(f, "  %-20s vs requests: %s\n", "", c->vm_requests_query);
		}
	}
}
