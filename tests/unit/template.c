/*
 * lib/template: references and the types they keep, values that try to
 * inject YAML, errors with file:line:col, $${, documents, keys, the YAML 1.1
 * warnings, tags and aliases, the YAML output read back, and both shipped
 * template directories rendered and checked for the fields the API requires.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "template.h"

TestSuite(template, .timeout = 60);

static mg_plan_value values[] = {
    {.key = "replicas", .value = "3", .is_string = false},
    {.key = "ratio", .value = "0.5", .is_string = false},
    {.key = "debug", .value = "true", .is_string = false},
    {.key = "quoted", .value = "3", .is_string = true},
    {.key = "cpu", .value = "500m", .is_string = true},
    {.key = "port", .value = "8080", .is_string = false},
    {.key = "max_replicas", .value = "9", .is_string = false},
    {.key = "memory", .value = "256Mi", .is_string = true},
    {.key = "health_path", .value = "/healthz", .is_string = true},
    {.key = "nginx_image", .value = "nginx:1.25", .is_string = true},
    {.key = "evil", .value = "x\n  evil: true\n- {a: b}", .is_string = true},
    {.key = "motd", .value = "hello: world", .is_string = true},
};

static json_t *items;

static mg_template_configmap cms[] = {
    {.name = "nginx",
     .cm_name = "nginx-config",
     .checksum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
     .items = NULL},
};

static mg_template_vars vars(void)
{
	if (!items)
		items =
		    json_pack("[{s:s, s:s}, {s:s, s:s}]", "key", "nginx.conf", "path", "nginx.conf",
		              "key", "conf.d_app.conf", "path", "conf.d/app.conf");
	cms[0].items = items;
	return (mg_template_vars){.version = "1.4.2",
	                          .image = "registry.example.com/app:1.4.2",
	                          .plan_name = "payments-api",
	                          .namespace_ = "payments",
	                          .values = values,
	                          .nvalues = sizeof(values) / sizeof(values[0]),
	                          .configmaps = cms,
	                          .nconfigmaps = 1};
}

/* Renders text as t.yaml; asserts success (warnings allowed). */
static mg_template_output render_ok(const char *text, mg_error *err)
{
	mg_template_vars v = vars();
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	int rc = mg_template_render_buffer(&out, text, strlen(text), "t.yaml", &v, err);
	cr_assert_eq(rc, 0, "render failed: %s; first diag: %s", err->message,
	             err->ndiags ? err->diags[0].message : "-");
	return out;
}

/* Renders text and returns the error (asserted to be MG_EINVALID). */
static void render_err(const char *text, mg_error *err)
{
	mg_template_vars v = vars();
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	int rc = mg_template_render_buffer(&out, text, strlen(text), "t.yaml", &v, err);
	cr_assert_eq(rc, MG_EINVALID, "expected an error, got %d", rc);
	cr_assert_eq(out.ndocs, 0, "no document on error");
	mg_template_output_clear(&out);
}

#define HEAD "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"

static json_t *get(json_t *obj, const char *path)
{
	json_t *v = obj;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
	return v;
}

static const mg_diag *find_diag(const mg_error *err, mg_severity sev, const char *needle)
{
	for (size_t i = 0; i < err->ndiags; i++)
		if (err->diags[i].severity == sev && strstr(err->diags[i].message, needle))
			return &err->diags[i];
	return NULL;
}

Test(template, exact_reference_keeps_the_value_type)
{
	mg_error err = MG_ERROR_INIT;
	mg_template_output out = render_ok(HEAD "spec:\n"
	                                        "  int: ${values.replicas}\n"
	                                        "  float: ${values.ratio}\n"
	                                        "  bool: ${values.debug}\n"
	                                        "  quotedvalue: ${values.quoted}\n"
	                                        "  cpu: ${values.cpu}\n"
	                                        "  quotedref: \"${values.replicas}\"\n"
	                                        "  singleref: '${values.debug}'\n"
	                                        "  inside: r-${values.replicas}\n"
	                                        "  version: ${version}\n"
	                                        "  image: ${image}\n"
	                                        "  ns: ${namespace}-${plan.name}\n"
	                                        "  cm: ${configmap.nginx.name}\n"
	                                        "  sum: ${configmap.nginx.checksum}\n"
	                                        "  items: ${configmap.nginx.items}\n",
	                                   &err);
	cr_assert_eq(out.ndocs, 1);
	json_t *s = get(out.docs[0].object, "spec");
	cr_assert(json_is_integer(get(s, "int")) && json_integer_value(get(s, "int")) == 3);
	cr_assert(json_is_real(get(s, "float")) && json_real_value(get(s, "float")) == 0.5);
	cr_assert(json_is_true(get(s, "bool")));
	cr_assert_str_eq(json_string_value(get(s, "quotedvalue")), "3");
	cr_assert_str_eq(json_string_value(get(s, "cpu")), "500m");
	cr_assert_str_eq(json_string_value(get(s, "quotedref")), "3");
	cr_assert_str_eq(json_string_value(get(s, "singleref")), "true");
	cr_assert_str_eq(json_string_value(get(s, "inside")), "r-3");
	cr_assert_str_eq(json_string_value(get(s, "version")), "1.4.2");
	cr_assert_str_eq(json_string_value(get(s, "image")), "registry.example.com/app:1.4.2");
	cr_assert_str_eq(json_string_value(get(s, "ns")), "payments-payments-api");
	cr_assert_str_eq(json_string_value(get(s, "cm")), "nginx-config");
	cr_assert_str_eq(json_string_value(get(s, "sum")), cms[0].checksum);
	cr_assert(json_equal(get(s, "items"), items));
	cr_assert_eq(err.ndiags, 0);
	mg_template_output_clear(&out);
	mg_error_clear(&err);
}

Test(template, version_is_always_a_string)
{
	mg_template_vars v = vars();
	v.version = "10";
	mg_error err = MG_ERROR_INIT;
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	const char *t = HEAD "data:\n  v: ${version}\n";
	cr_assert_eq(mg_template_render_buffer(&out, t, strlen(t), "t.yaml", &v, &err), 0);
	cr_assert_str_eq(json_string_value(get(out.docs[0].object, "data.v")), "10");
	char *y = mg_template_render_yaml(&out);
	cr_assert(strstr(y, "  v: \"10\"\n"), "%s", y);
	free(y);
	mg_template_output_clear(&out);
	mg_error_clear(&err);
}

Test(template, a_value_cannot_inject_yaml)
{
	mg_error err = MG_ERROR_INIT;
	mg_template_output out = render_ok(HEAD "data:\n"
	                                        "  plain: ${values.evil}\n"
	                                        "  inside: \"a ${values.evil} b\"\n"
	                                        "  block: |\n"
	                                        "    ${values.evil}\n"
	                                        "  flow: {k: \"${values.motd}\"}\n",
	                                   &err);
	json_t *d = get(out.docs[0].object, "data");
	cr_assert_eq(json_object_size(d), 4, "no key was added");
	cr_assert_str_eq(json_string_value(get(d, "plain")), "x\n  evil: true\n- {a: b}");
	cr_assert_str_eq(json_string_value(get(d, "inside")), "a x\n  evil: true\n- {a: b} b");
	cr_assert_str_eq(json_string_value(get(d, "block")), "x\n  evil: true\n- {a: b}\n");
	cr_assert_str_eq(json_string_value(get(d, "flow.k")), "hello: world");
	cr_assert_null(get(out.docs[0].object, "evil"));

	/* and the printed YAML, read back, is the same object */
	char *y = mg_template_render_yaml(&out);
	cr_assert_not_null(y);
	mg_template_output back = render_ok(y, &err);
	cr_assert_eq(back.ndocs, 1);
	cr_assert(json_equal(back.docs[0].object, out.docs[0].object), "%s", y);
	free(y);
	mg_template_output_clear(&back);
	mg_template_output_clear(&out);
	mg_error_clear(&err);
}

Test(template, missing_reference_names_file_line_col)
{
	mg_error err = MG_ERROR_INIT;
	render_err(HEAD "spec:\n"
	                "  a: ${values.replicas}-${values.nope}\n"
	                "  b: \"${configmap.other.checksum}\"\n"
	                "  c: ${whatever}\n"
	                "  d: ${configmap.nginx.size}\n"
	                "  e: x ${values.nope\n"
	                "  f: a-${configmap.nginx.items}\n",
	           &err);
	cr_assert_eq(mg_error_count(&err, MG_SEV_ERROR), 6, "every problem at once");
	const mg_diag *d = find_diag(&err, MG_SEV_ERROR, "${values.nope}:");
	cr_assert_not_null(d);
	cr_assert_str_eq(d->file, "t.yaml");
	cr_assert_eq(d->line, 6);
	cr_assert_eq(d->col, 25);
	cr_assert_str_eq(d->message, "${values.nope}: the plan has no kubernetes.values.nope");
	char line[2048];
	mg_diag_format(line, sizeof(line), d);
	cr_assert(strstr(line, "t.yaml:6:25"), "%s", line);

	d = find_diag(&err, MG_SEV_ERROR, "${configmap.other.checksum}");
	cr_assert(d && d->line == 7 && d->col == 7, "%d:%d", d ? d->line : 0, d ? d->col : 0);
	cr_assert(strstr(d->message, "no kubernetes.configmaps entry named \"other\""));
	d = find_diag(&err, MG_SEV_ERROR, "${whatever}: unknown reference");
	cr_assert(d && d->line == 8 && d->col == 6);
	d = find_diag(&err, MG_SEV_ERROR, "${configmap.nginx.size}");
	cr_assert(d && d->line == 9);
	d = find_diag(&err, MG_SEV_ERROR, "unterminated ${");
	cr_assert(d && d->line == 10 && d->col == 8, "%d:%d", d ? d->line : 0, d ? d->col : 0);
	d = find_diag(&err, MG_SEV_ERROR, "is a list");
	cr_assert(d && d->line == 11 && d->col == 8);
	cr_assert(strstr(err.message, "6 errors in t.yaml"), "%s", err.message);
	mg_error_clear(&err);
}

Test(template, position_counts_characters_not_bytes)
{
	mg_error err = MG_ERROR_INIT;
	render_err(HEAD "data:\n  k: \"é—${values.nope}\"\n", &err);
	const mg_diag *d = find_diag(&err, MG_SEV_ERROR, "${values.nope}");
	cr_assert(d && d->line == 6 && d->col == 9, "%d:%d", d ? d->line : 0, d ? d->col : 0);
	mg_error_clear(&err);
}

Test(template, dollar_dollar_escapes)
{
	mg_error err = MG_ERROR_INIT;
	mg_template_output out = render_ok(HEAD "data:\n"
	                                        "  a: $${values.nope}\n"
	                                        "  b: \"$${x} and ${values.replicas}\"\n"
	                                        "  c: cost $5 and $$ and $\n",
	                                   &err);
	cr_assert_str_eq(json_string_value(get(out.docs[0].object, "data.a")), "${values.nope}");
	cr_assert_str_eq(json_string_value(get(out.docs[0].object, "data.b")), "${x} and 3");
	cr_assert_str_eq(json_string_value(get(out.docs[0].object, "data.c")),
	                 "cost $5 and $$ and $");
	mg_template_output_clear(&out);
	mg_error_clear(&err);
}

Test(template, multiple_documents_and_lines)
{
	mg_error err = MG_ERROR_INIT;
	mg_template_output out = render_ok("# comment\n"
	                                   "---\n" HEAD "---\n"
	                                   "# nothing\n"
	                                   "---\n"
	                                   "apiVersion: v1\nkind: Service\nmetadata: {name: "
	                                   "s}\n...\n",
	                                   &err);
	cr_assert_eq(out.ndocs, 2);
	cr_assert_eq(out.docs[0].line, 3);
	cr_assert_eq(out.docs[1].line, 10);
	cr_assert_str_eq(out.docs[1].file, "t.yaml");
	cr_assert_str_eq(json_string_value(get(out.docs[1].object, "kind")), "Service");
	char *y = mg_template_render_yaml(&out);
	cr_assert_str_eq(y, "# Source: t.yaml:3\n"
	                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
	                    "---\n# Source: t.yaml:10\n"
	                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n");
	free(y);
	json_t *list = mg_template_render_json(&out);
	cr_assert_str_eq(json_string_value(get(list, "kind")), "List");
	cr_assert_eq(json_array_size(get(list, "items")), 2);
	json_decref(list);
	mg_template_output_clear(&out);
	mg_error_clear(&err);
}

Test(template, keys_are_not_substituted)
{
	mg_error err = MG_ERROR_INIT;
	mg_template_output out =
	    render_ok(HEAD "data:\n  ${values.replicas}: ${values.replicas}\n", &err);
	json_t *d = get(out.docs[0].object, "data");
	cr_assert_eq(json_integer_value(json_object_get(d, "${values.replicas}")), 3);
	mg_template_output_clear(&out);
	mg_error_clear(&err);
}

Test(template, core_schema_types_and_yaml11_warnings)
{
	mg_error err = MG_ERROR_INIT;
	mg_template_output out = render_ok(HEAD "spec:\n"
	                                        "  n1: null\n  n2: ~\n  n3:\n"
	                                        "  b: True\n  i: -12\n  hex: 0x1F\n  oct: 0o17\n"
	                                        "  f: 1e3\n  s: 1.2.3\n"
	                                        "  yes: yes\n  off: Off\n  q: \"yes\"\n"
	                                        "  mode: 0644\n",
	                                   &err);
	json_t *s = get(out.docs[0].object, "spec");
	cr_assert(json_is_null(get(s, "n1")) && json_is_null(get(s, "n2")) &&
	          json_is_null(get(s, "n3")));
	cr_assert(json_is_true(get(s, "b")));
	cr_assert_eq(json_integer_value(get(s, "i")), -12);
	cr_assert_eq(json_integer_value(get(s, "hex")), 31);
	cr_assert_eq(json_integer_value(get(s, "oct")), 15);
	cr_assert(json_is_real(get(s, "f")) && json_real_value(get(s, "f")) == 1000.0);
	cr_assert_str_eq(json_string_value(get(s, "s")), "1.2.3");
	cr_assert_str_eq(json_string_value(get(s, "yes")), "yes");
	cr_assert_str_eq(json_string_value(get(s, "off")), "Off");
	cr_assert_eq(json_integer_value(get(s, "mode")), 644);
	cr_assert_eq(mg_error_count(&err, MG_SEV_WARNING), 3, "yes, Off, 0644; not the quoted one");
	const mg_diag *d = find_diag(&err, MG_SEV_WARNING, "yes is the string \"yes\"");
	cr_assert(d && d->line == 15 && d->col == 8, "%d:%d", d ? d->line : 0, d ? d->col : 0);
	cr_assert(strstr(d->message, "a boolean to kubectl"));
	d = find_diag(&err, MG_SEV_WARNING, "0644 is the decimal 644");
	cr_assert(d && d->line == 18 && strstr(d->message, "0o644"));

	/* printed, the strings that look like something else are quoted */
	char *y = mg_template_render_yaml(&out);
	cr_assert(strstr(y, "  \"yes\": \"yes\"\n"), "%s", y);
	cr_assert(strstr(y, "  s: \"1.2.3\"\n"), "%s", y);
	cr_assert(strstr(y, "  f: 1000.0\n"), "%s", y);
	cr_assert(strstr(y, "  n1: null\n"), "%s", y);
	free(y);
	mg_template_output_clear(&out);
	mg_error_clear(&err);

	render_err(HEAD "spec: {x: .inf}\n", &err);
	cr_assert_not_null(find_diag(&err, MG_SEV_ERROR, "infinity and NaN"));
	mg_error_clear(&err);
}

Test(template, tags_anchors_aliases)
{
	mg_error err = MG_ERROR_INIT;
	mg_template_output out = render_ok(HEAD "spec:\n"
	                                        "  s: !!str 3\n  i: !!int \"7\"\n  x: ! 12\n"
	                                        "  base: &b {app: \"${plan.name}\"}\n"
	                                        "  copy: *b\n",
	                                   &err);
	json_t *s = get(out.docs[0].object, "spec");
	cr_assert_str_eq(json_string_value(get(s, "s")), "3");
	cr_assert_eq(json_integer_value(get(s, "i")), 7);
	cr_assert_str_eq(json_string_value(get(s, "x")), "12");
	cr_assert_str_eq(json_string_value(get(s, "copy.app")), "payments-api");
	mg_template_output_clear(&out);
	mg_error_clear(&err);

	render_err(HEAD "spec: !Ref x\n", &err);
	cr_assert_not_null(find_diag(&err, MG_SEV_ERROR, "tag !Ref is not supported"));
	mg_error_clear(&err);
	render_err(HEAD "spec:\n  a: &a {x: 1}\n  b:\n    <<: *a\n", &err);
	cr_assert_not_null(find_diag(&err, MG_SEV_ERROR, "merge keys (<<) are not supported"));
	mg_error_clear(&err);
	render_err(HEAD "spec: *nothing\n", &err);
	cr_assert_not_null(find_diag(&err, MG_SEV_ERROR, "no anchor &nothing"));
	mg_error_clear(&err);
	render_err(HEAD "spec: {a: 1, a: 2}\n", &err);
	cr_assert_not_null(find_diag(&err, MG_SEV_ERROR, "duplicate key a"));
	mg_error_clear(&err);

	/* aliases of aliases: bounded, not exponential */
	char big[4096] = HEAD "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
	char prev = 'a';
	for (char c = 'b'; c <= 'k'; c++, prev++) {
		char line[128];
		snprintf(line, sizeof(line),
		         "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c, prev,
		         prev, prev, prev, prev, prev, prev, prev, prev, prev);
		strcat(big, line);
	}
	render_err(big, &err);
	cr_assert_not_null(find_diag(&err, MG_SEV_ERROR, "more than 1000000 nodes"));
	mg_error_clear(&err);
}

Test(template, documents_must_be_objects)
{
	mg_error err = MG_ERROR_INIT;
	render_err("kind: ConfigMap\nmetadata: {name: x}\n", &err);
	const mg_diag *d = find_diag(&err, MG_SEV_ERROR, "no apiVersion");
	cr_assert(d && d->line == 1 && d->col == 1);
	mg_error_clear(&err);
	render_err("- a\n- b\n", &err);
	cr_assert_not_null(find_diag(&err, MG_SEV_ERROR, "not a list"));
	mg_error_clear(&err);
	render_err(HEAD "spec: [unclosed\n", &err);
	d = find_diag(&err, MG_SEV_ERROR, "YAML:");
	cr_assert(d && d->line >= 5, "%s", d ? d->message : "no YAML error");
	mg_error_clear(&err);
}

Test(template, directory_in_name_order_every_error)
{
	mg_template_vars v = vars();
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_template_render_dir(&out, "tests/fixtures/templates/ok", &v, &err), 0, "%s",
	             err.message);
	cr_assert_eq(out.ndocs, 3);
	cr_assert_str_eq(out.docs[0].file, "tests/fixtures/templates/ok/10-cm.yaml");
	cr_assert_eq(out.docs[0].line, 2);
	cr_assert_str_eq(json_string_value(get(out.docs[0].object, "metadata.name")),
	                 "payments-api-settings");
	cr_assert_str_eq(json_string_value(get(out.docs[0].object, "data.literal")),
	                 "${not.a.reference}");
	cr_assert_str_eq(json_string_value(get(out.docs[1].object, "data.flag")), "on");
	cr_assert_str_eq(out.docs[2].file, "tests/fixtures/templates/ok/20-deploy.yml");
	cr_assert_eq(json_integer_value(get(out.docs[2].object, "spec.replicas")), 3);
	mg_template_output_clear(&out);
	mg_error_clear(&err);

	cr_assert_eq(mg_template_render_dir(&out, "tests/fixtures/templates/errors", &v, &err),
	             MG_EINVALID);
	cr_assert_eq(out.ndocs, 0);
	cr_assert_eq(mg_error_count(&err, MG_SEV_ERROR), 3, "%s", err.message);
	cr_assert_str_eq(err.diags[0].file, "tests/fixtures/templates/errors/a.yaml");
	cr_assert_eq(err.diags[0].line, 7);
	cr_assert_eq(err.diags[0].col, 14);
	cr_assert_str_eq(err.diags[2].file, "tests/fixtures/templates/errors/b.yml");
	cr_assert_eq(err.diags[2].line, 6);
	cr_assert_eq(err.diags[2].col, 14);
	mg_error_clear(&err);

	cr_assert_eq(mg_template_render_dir(&out, "tests/fixtures/nginx", &v, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "has no *.yaml or *.yml file"), "%s", err.message);
	mg_error_clear(&err);
}

/* --- the shipped templates ---------------------------------------------------------------- */

static bool dns1123(const char *s, size_t max)
{
	regex_t re;
	regcomp(&re, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", REG_EXTENDED | REG_NOSUB);
	bool ok = s && strlen(s) <= max && regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

/* Every key of sel is in labels with the same value. */
static void assert_selects(json_t *sel, json_t *labels, const char *what)
{
	cr_assert(json_is_object(sel) && json_object_size(sel) > 0, "%s: empty selector", what);
	const char *k;
	json_t *v;
	json_object_foreach(sel, k, v)
	{
		cr_assert(json_equal(v, json_object_get(labels, k)), "%s: %s does not match", what,
		          k);
	}
}

static json_t *find_kind(const mg_template_output *out, const char *kind)
{
	json_t *found = NULL;
	for (size_t i = 0; i < out->ndocs; i++)
		if (!strcmp(json_string_value(get(out->docs[i].object, "kind")), kind)) {
			cr_assert_null(found, "two %s", kind);
			found = out->docs[i].object;
		}
	cr_assert_not_null(found, "no %s", kind);
	return found;
}

static void check_shipped(const char *dir, mg_template_output *out)
{
	mg_template_vars v = vars();
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_template_render_dir(out, dir, &v, &err), 0, "%s: %s %s", dir, err.message,
	             err.ndiags ? err.diags[0].message : "");
	cr_assert_eq(err.ndiags, 0, "no warnings: %s", err.ndiags ? err.diags[0].message : "");
	mg_error_clear(&err);
	cr_assert_eq(out->ndocs, 4);
	static const char *const api[][2] = {{"Deployment", "apps/v1"},
	                                     {"Service", "v1"},
	                                     {"HorizontalPodAutoscaler", "autoscaling/v2"},
	                                     {"PodDisruptionBudget", "policy/v1"}};
	for (size_t i = 0; i < 4; i++) {
		json_t *o = find_kind(out, api[i][0]);
		cr_assert_str_eq(json_string_value(get(o, "apiVersion")), api[i][1]);
		cr_assert(dns1123(json_string_value(get(o, "metadata.name")), 253));
		cr_assert_str_eq(json_string_value(get(o, "metadata.namespace")), "payments");
	}
	json_t *dep = find_kind(out, "Deployment");
	json_t *pod_labels = get(dep, "spec.template.metadata.labels");
	assert_selects(get(dep, "spec.selector.matchLabels"), pod_labels, "Deployment");
	cr_assert_eq(json_integer_value(get(dep, "spec.replicas")), 3);
	json_t *containers = get(dep, "spec.template.spec.containers");
	cr_assert(json_array_size(containers) >= 1);
	bool has_port = false;
	for (size_t i = 0; i < json_array_size(containers); i++) {
		json_t *c = json_array_get(containers, i);
		cr_assert(dns1123(json_string_value(get(c, "name")), 63));
		cr_assert(json_is_string(get(c, "image")) && json_string_length(get(c, "image")));
		json_t *ports = get(c, "ports");
		for (size_t p = 0; p < json_array_size(ports); p++) {
			json_t *cp = get(json_array_get(ports, p), "containerPort");
			cr_assert(json_is_integer(cp) && json_integer_value(cp) == 8080);
			has_port = true;
		}
		json_t *mounts = get(c, "volumeMounts");
		for (size_t m = 0; m < json_array_size(mounts); m++) {
			const char *vn = json_string_value(get(json_array_get(mounts, m), "name"));
			bool found = false;
			json_t *vols = get(dep, "spec.template.spec.volumes");
			for (size_t k = 0; k < json_array_size(vols); k++)
				found |= !strcmp(
				    json_string_value(get(json_array_get(vols, k), "name")), vn);
			cr_assert(found, "mount %s has no volume", vn);
		}
	}
	cr_assert(has_port);

	json_t *svc = find_kind(out, "Service");
	assert_selects(get(svc, "spec.selector"), pod_labels, "Service");
	json_t *sp = get(svc, "spec.ports.0");
	cr_assert(json_is_integer(get(sp, "port")));
	cr_assert_str_eq(json_string_value(get(sp, "targetPort")), "http");

	json_t *hpa = find_kind(out, "HorizontalPodAutoscaler");
	cr_assert_str_eq(json_string_value(get(hpa, "spec.scaleTargetRef.kind")), "Deployment");
	cr_assert_str_eq(json_string_value(get(hpa, "spec.scaleTargetRef.apiVersion")), "apps/v1");
	cr_assert_str_eq(json_string_value(get(hpa, "spec.scaleTargetRef.name")),
	                 json_string_value(get(dep, "metadata.name")));
	json_t *min = get(hpa, "spec.minReplicas"), *max = get(hpa, "spec.maxReplicas");
	cr_assert(json_is_integer(min) && json_is_integer(max));
	cr_assert(json_integer_value(min) >= 1 &&
	          json_integer_value(min) <= json_integer_value(max));
	cr_assert_str_eq(json_string_value(get(hpa, "spec.metrics.0.type")), "Resource");

	json_t *pdb = find_kind(out, "PodDisruptionBudget");
	assert_selects(get(pdb, "spec.selector.matchLabels"), pod_labels, "PodDisruptionBudget");
	cr_assert(get(pdb, "spec.maxUnavailable") || get(pdb, "spec.minAvailable"));

	/* the YAML read back is the same objects */
	char *y = mg_template_render_yaml(out);
	mg_template_output back = MG_TEMPLATE_OUTPUT_INIT;
	cr_assert_eq(mg_template_render_buffer(&back, y, strlen(y), "out.yaml", &v, &err), 0, "%s",
	             err.message);
	cr_assert_eq(back.ndocs, out->ndocs);
	for (size_t i = 0; i < back.ndocs; i++)
		cr_assert(json_equal(back.docs[i].object, out->docs[i].object), "%s", y);
	free(y);
	mg_template_output_clear(&back);
	mg_error_clear(&err);
}

Test(template, shipped_web)
{
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	check_shipped("templates/web", &out);
	json_t *dep = find_kind(&out, "Deployment");
	cr_assert_eq(json_array_size(get(dep, "spec.template.spec.containers")), 1);
	cr_assert_str_eq(json_string_value(get(dep, "spec.template.spec.containers.0.image")),
	                 "registry.example.com/app:1.4.2");
	cr_assert_str_eq(json_string_value(get(dep, "spec.template.spec.containers.0.resources."
	                                            "requests.cpu")),
	                 "500m");
	mg_template_output_clear(&out);
}

Test(template, shipped_php_fpm_nginx)
{
	mg_template_output out = MG_TEMPLATE_OUTPUT_INIT;
	check_shipped("templates/php-fpm-nginx", &out);
	json_t *dep = find_kind(&out, "Deployment");
	json_t *spec = get(dep, "spec.template.spec");
	cr_assert_eq(json_array_size(get(spec, "containers")), 2);
	cr_assert_str_eq(json_string_value(get(spec, "containers.0.name")), "nginx");
	cr_assert_str_eq(json_string_value(get(spec, "containers.0.image")), "nginx:1.25");
	cr_assert_str_eq(json_string_value(get(spec, "containers.1.name")), "php-fpm");
	cr_assert_str_eq(json_string_value(get(spec, "containers.1.image")),
	                 "registry.example.com/app:1.4.2");
	cr_assert_str_eq(json_string_value(get(spec, "containers.0.volumeMounts.0.mountPath")),
	                 "/etc/nginx");
	cr_assert_str_eq(json_string_value(get(spec, "volumes.0.configMap.name")), "nginx-config");
	cr_assert(json_equal(get(spec, "volumes.0.configMap.items"), items));
	cr_assert(json_is_object(get(spec, "volumes.1.emptyDir")));
	cr_assert_str_eq(json_string_value(get(spec, "containers.0.volumeMounts.1.mountPath")),
	                 "/run/php");
	cr_assert_str_eq(json_string_value(get(spec, "containers.1.volumeMounts.0.mountPath")),
	                 "/run/php");
	json_t *ann = get(dep, "spec.template.metadata.annotations");
	cr_assert_str_eq(json_string_value(json_object_get(ann, "checksum/config")),
	                 cms[0].checksum);
	cr_assert_str_eq(json_string_value(json_object_get(ann, "migrate/version")), "1.4.2");
	mg_template_output_clear(&out);
}

/* Found by the template fuzzer: a file with no document at all (empty, or comments only)
 * renders to nothing, without passing NULL to memcpy (UBSan in the ASan run says so). */
Test(template, a_template_without_documents_renders_nothing)
{
	const char *texts[] = {"", "# only a comment\n", "---\n"};
	for (size_t i = 0; i < 3; i++) {
		mg_error err = MG_ERROR_INIT;
		mg_template_output out = render_ok(texts[i], &err);
		cr_assert_eq(out.ndocs, 0, "%s", texts[i]);
		mg_template_output_clear(&out);
		mg_error_clear(&err);
	}
}

/* The one ${version} expander: build.image and build.artifact alike. */
Test(template, expand_version_every_occurrence)
{
	char *s = mg_template_expand_version("dist/app-${version}/${version}.tgz", "1.2");
	cr_assert_str_eq(s, "dist/app-1.2/1.2.tgz");
	free(s);
	s = mg_template_expand_version("reg/app:${versio}n ${version", "9");
	cr_assert_str_eq(s, "reg/app:${versio}n ${version");
	free(s);
}

/* The one lister of `plan` and `render`: *.yaml and *.yml, no dotfiles, sorted. */
Test(template, list_dir_skips_dotfiles_and_other_names)
{
	char dir[256];
	tu_tmpdir_make(dir, sizeof(dir), "tlist");
	const char *files[] = {"b.yml", "a.yaml", ".a.yaml", "c.txt", ".yml", "d.yaml.bak"};
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++)
		tu_write_file_in(dir, files[i], "x: 1\n");
	char **names = NULL;
	size_t n = 0;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_template_list_dir(&names, &n, dir, &err), 0, "%s", err.message);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(names[0], "a.yaml");
	cr_assert_str_eq(names[1], "b.yml");
	mg_template_list_free(names, n);
	cr_assert_eq(mg_template_list_dir(&names, &n, "/nonexistent/tpl", &err), MG_EINVALID);
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}
