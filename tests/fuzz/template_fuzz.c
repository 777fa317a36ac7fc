/*
 * libFuzzer target for the template engine (lib/kube/template.c): any bytes as a
 * template must render or give diagnostics, never a crash, a leak or
 * undefined behaviour; what renders is turned into YAML and JSON too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *items;
	if (!items)
		items = json_pack("[{s:s, s:s}, {s:s, s:s}]", "key", "nginx.conf", "path",
		                  "nginx.conf", "key", "app.ini", "path", "conf/app.ini");
	static const mg_plan_value values[] = {
	    {.key = "replicas", .value = "3", .is_string = false},
	    {.key = "cpu", .value = "500m", .is_string = true},
	    {.key = "debug", .value = "true", .is_string = false},
	    {.key = "port", .value = "8080", .is_string = false},
	    {.key = "label", .value = "3", .is_string = true},
	    {.key = "ratio", .value = "0.5", .is_string = false},
	    {.key = "empty", .value = "", .is_string = true},
	    {.key = "nothing", .value = "null", .is_string = false},
	};
	static const mg_template_configmap cms[] = {
	    {.name = "nginx",
	     .cm_name = "nginx-5f2c",
	     .checksum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	     .items = NULL},
	    {.name = "app",
	     .cm_name = "app-config",
	     .checksum = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
	     .items = NULL},
	};
	mg_template_configmap cm[2] = {cms[0], cms[1]};
	cm[0].items = items;
	mg_template_vars vars = {.version = "1.4.2",
	                         .image = "registry.example.com/shop/web:1.4.2",
	                         .plan_name = "shop",
	                         .namespace_ = "shop",
	                         .values = values,
	                         .nvalues = sizeof(values) / sizeof(values[0]),
	                         .configmaps = cm,
	                         .nconfigmaps = 2};
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	mg_error err = MG_ERROR_INIT;
	if (mg_template_render_buffer(&out, (const char *)data, size, "fuzz.yaml", &vars, &err) ==
	    0) {
		char *y = mg_template_render_yaml(&out);
		json_t *j = mg_template_render_json(&out);
		free(y);
		json_decref(j);
	}
	mg_template_output_clear(&out);
	for (size_t i = 0; i < err.ndiags; i++) {
		char buf[4096];
		mg_diag_format(buf, sizeof(buf), &err.diags[i]);
	}
	mg_error_clear(&err);
	return 0;
}
