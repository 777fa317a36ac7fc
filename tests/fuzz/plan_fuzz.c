/*
 * libFuzzer target for the plan loader: any bytes must give either a plan or
 * diagnostics, never a crash, a leak or undefined behaviour. Files the plan
 * names are not read (MG_PLAN_LOAD_NO_FS), so a run touches nothing.
 */
#include <stddef.h>
#include <stdint.h>

#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mg_plan *plan = NULL;
	mg_error err = MG_ERROR_INIT;
	if (mg_plan_load_buffer(&plan, (const char *)data, size, "fuzz.yaml", "/nonexistent",
	                        MG_PLAN_LOAD_NO_FS, &err) == 0) {
		/* touch the model so a dangling pointer would show */
		const mg_plan_traffic *t = mg_plan_traffic_section(plan);
		volatile double sum = 0;
		for (size_t i = 0; t && i < t->nsteps; i++)
			sum += t->steps[i];
		(void)sum;
		mg_plan_free(plan);
	}
	for (size_t i = 0; i < err.ndiags; i++) {
		char buf[4096];
		mg_diag_format(buf, sizeof(buf), &err.diags[i]);
	}
	mg_error_clear(&err);
	return 0;
}
