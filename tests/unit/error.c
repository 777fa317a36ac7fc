/* Errors as JSON (lib/core/error.c): what -o json and every other machine reader get. */
#include <criterion/criterion.h>
#include <string.h>

#include "error.h"

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

Test(error, an_error_with_diagnostics_as_json)
{
	mg_error err = MG_ERROR_INIT;
	mg_error_diag(&err, MG_SEV_ERROR, "p.yaml", 3, 7, "traffic.steps", "must rise");
	mg_error_diag(&err, MG_SEV_WARNING, "p.yaml", 9, 1, NULL, "unused");
	mg_error_set(&err, MG_EINVALID, "p.yaml: 1 error");
	json_t *e = mg_error_json(&err, MG_ERROR, NULL);
	cr_assert_str_eq(str(e, "kind"), mg_error_name(MG_EINVALID));
	cr_assert_str_eq(str(e, "message"), "p.yaml: 1 error");
	json_t *d = json_object_get(e, "diagnostics");
	cr_assert_eq(json_array_size(d), 1, "errors only");
	json_t *d0 = json_array_get(d, 0);
	cr_assert_str_eq(str(d0, "file"), "p.yaml");
	cr_assert_eq(json_integer_value(json_object_get(d0, "line")), 3);
	cr_assert_eq(json_integer_value(json_object_get(d0, "column")), 7);
	cr_assert_str_eq(str(d0, "path"), "traffic.steps");
	cr_assert_str_eq(str(d0, "message"), "must rise");
	json_t *w = mg_error_diags_json(&err, MG_SEV_WARNING);
	cr_assert_eq(json_array_size(w), 1);
	cr_assert(json_is_null(json_object_get(json_array_get(w, 0), "path")));
	json_decref(w);
	json_decref(e);
	mg_error_clear(&err);
}

Test(error, without_an_error_the_code_and_message_given_are_used)
{
	json_t *e = mg_error_json(NULL, MG_EINVALID, "--to: not a number");
	cr_assert_str_eq(str(e, "kind"), mg_error_name(MG_EINVALID));
	cr_assert_str_eq(str(e, "message"), "--to: not a number");
	cr_assert_eq(json_array_size(json_object_get(e, "diagnostics")), 0);
	json_decref(e);
}
