/*
 * migrate render as an operator runs it: a plan with the shipped
 * php-fpm-nginx templates and an nginx tree, printed as YAML (read back with
 * libyaml) and as a JSON List, the ConfigMap checksum the same as `migrate
 * configmap` prints, and the exit codes and messages of every error.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "../testutil.h"

static char tmpdir[256];
static char plan[512];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "render");
	unsetenv("NO_COLOR");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmpdir);
}

TestSuite(render, .init = setup, .fini = teardown, .timeout = 60);

/* A plan in tmpdir with the repository's templates dir (or tdir) and the php-app nginx tree. */
static void write_plan(const char *tdir, const char *extra_values)
{
	char cwd[256];
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	snprintf(plan, sizeof(plan), "%s/plan.yaml", tmpdir);
	FILE *f = fopen(plan, "w");
	cr_assert_not_null(f);
	fprintf(f,
	        "version: 1\nname: shop\n"
	        "build: { image: \"registry.example.com/shop:${version}\" }\n"
	        "kubernetes:\n"
	        "  namespace: web\n"
	        "  templates: %s%s%s\n"
	        "  values:\n"
	        "    replicas: 2\n    max_replicas: 6\n    port: 80\n    cpu: 250m\n"
	        "    memory: 128Mi\n    nginx_image: nginx:1.25\n    health_path: /healthz\n%s"
	        "  configmaps:\n"
	        "    - { name: nginx, from_nginx: %s/tests/fixtures/nginx/php-app/nginx.conf }\n",
	        tdir[0] == '/' ? "" : cwd, tdir[0] == '/' ? "" : "/", tdir,
	        extra_values ? extra_values : "", cwd);
	fclose(f);
}

static void write_file(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

/* The YAML stream read back with libyaml: the number of documents, each a mapping. */
static int count_yaml_docs(const char *text, char kinds[][64], int max)
{
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	int n = 0;
	for (;;) {
		yaml_document_t d;
		cr_assert(yaml_parser_load(&p, &d), "YAML output does not parse: %s", p.problem);
		yaml_node_t *root = yaml_document_get_root_node(&d);
		if (!root) {
			yaml_document_delete(&d);
			break;
		}
		cr_assert_eq(root->type, YAML_MAPPING_NODE);
		for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
		     pr < root->data.mapping.pairs.top; pr++) {
			yaml_node_t *k = yaml_document_get_node(&d, pr->key);
			yaml_node_t *v = yaml_document_get_node(&d, pr->value);
			if (n < max && !strcmp((char *)k->data.scalar.value, "kind"))
				snprintf(kinds[n], 64, "%s", (char *)v->data.scalar.value);
		}
		n++;
		yaml_document_delete(&d);
	}
	yaml_parser_delete(&p);
	return n;
}

Test(render, yaml_and_json_of_the_php_template)
{
	write_plan("templates/php-fpm-nginx", NULL);
	tu_output r = tu_migrate("render", "-p", plan, "--version", "2.0.1", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.err, "", "no warnings on the shipped templates");
	char kinds[8][64] = {{0}};
	cr_assert_eq(count_yaml_docs(r.out, kinds, 8), 4, "%s", r.out);
	cr_assert_str_eq(kinds[0], "Deployment");
	cr_assert_str_eq(kinds[1], "HorizontalPodAutoscaler");
	cr_assert_str_eq(kinds[2], "PodDisruptionBudget");
	cr_assert_str_eq(kinds[3], "Service");
	cr_assert(strstr(r.out, "        image: registry.example.com/shop:2.0.1\n"), "%s", r.out);
	cr_assert(strstr(r.out, "\n---\n# Source: "), "%s", r.out);
	tu_output_free(&r);

	/* -o yaml is the same */
	r = tu_migrate("render", "-p", plan, "--version", "2.0.1", "-o", "yaml", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(count_yaml_docs(r.out, kinds, 8), 4);
	tu_output_free(&r);

	r = tu_migrate("render", "-p", plan, "--version", "2.0.1", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_error_t je;
	json_t *list = json_loads(r.out, 0, &je);
	cr_assert_not_null(list, "%s: %s", je.text, r.out);
	cr_assert_str_eq(json_string_value(json_object_get(list, "kind")), "List");
	json_t *items = json_object_get(list, "items");
	cr_assert_eq(json_array_size(items), 4);
	json_t *dep = json_array_get(items, 0);
	json_t *spec = json_object_get(json_object_get(dep, "spec"), "template");
	json_t *pod = json_object_get(spec, "spec");
	json_t *c0 = json_array_get(json_object_get(pod, "containers"), 0);
	json_t *port =
	    json_object_get(json_array_get(json_object_get(c0, "ports"), 0), "containerPort");
	cr_assert(json_is_integer(port) && json_integer_value(port) == 80);
	cr_assert(json_is_integer(json_object_get(json_object_get(dep, "spec"), "replicas")));
	const char *sum = json_string_value(json_object_get(
	    json_object_get(json_object_get(spec, "metadata"), "annotations"), "checksum/config"));
	cr_assert_not_null(sum);
	cr_assert_eq(strlen(sum), 64);
	json_t *vol =
	    json_object_get(json_array_get(json_object_get(pod, "volumes"), 0), "configMap");
	cr_assert_str_eq(json_string_value(json_object_get(vol, "name")), "nginx");
	json_t *vitems = json_object_get(vol, "items");
	cr_assert(json_array_size(vitems) > 1);

	/* the checksum and the items are the ConfigMap's that `migrate configmap` renders */
	tu_output c = tu_migrate("configmap", "-p", plan, "--no-verify", "--allow-errors", "-o",
	                         "json", NULL);
	cr_assert_eq(c.status, 0, "%s", c.err);
	json_t *cm = json_loads(c.out, 0, &je);
	cr_assert_not_null(cm, "%s", c.out);
	const char *cmsum = json_string_value(json_object_get(
	    json_object_get(json_object_get(cm, "metadata"), "annotations"), "migrate/checksum"));
	cr_assert_str_eq(sum, cmsum);
	json_t *data = json_object_get(cm, "data");
	for (size_t i = 0; i < json_array_size(vitems); i++) {
		const char *key =
		    json_string_value(json_object_get(json_array_get(vitems, i), "key"));
		cr_assert(json_object_get(data, key) ||
		              json_object_get(json_object_get(cm, "binaryData"), key),
		          "item %s is not a key of the ConfigMap", key);
	}
	json_decref(cm);
	tu_output_free(&c);
	json_decref(list);
	tu_output_free(&r);
}

Test(render, web_template)
{
	write_plan("templates/web", NULL);
	tu_output r = tu_migrate("render", "-p", plan, "--version", "7", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *list = json_loads(r.out, 0, NULL);
	cr_assert_eq(json_array_size(json_object_get(list, "items")), 4, "%s", r.out);
	json_decref(list);
	tu_output_free(&r);
}

Test(render, usage_errors)
{
	write_plan("templates/web", NULL);
	tu_output r = tu_migrate("render", "-p", plan, NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--version V is required"), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	tu_output_free(&r);

	r = tu_migrate("render", "-p", plan, "--version", "-bad", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--version \"-bad\""), "%s", r.err);
	tu_output_free(&r);

	r = tu_migrate("render", "-p", plan, "--version", "1", "extra", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "unexpected argument 'extra'"), "%s", r.err);
	tu_output_free(&r);

	/* a plan without kubernetes */
	write_file("nok8s.yaml", "version: 1\nname: shop\n");
	char p2[600];
	snprintf(p2, sizeof(p2), "%s/nok8s.yaml", tmpdir);
	r = tu_migrate("render", "-p", p2, "--version", "1", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "kubernetes"), "%s", r.err);
	tu_output_free(&r);
}

Test(render, template_error_exit_2_with_file_line_col)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/t", tmpdir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	write_file("t/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${plan.name}\n"
	                       "data:\n  x: \"${values.nope}\"\n");
	write_file("t/b.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
	                       "spec: {clusterIP: None, x: ${configmap.other.name}}\n");
	write_plan(dir, NULL);
	tu_output r = tu_migrate("render", "-p", plan, "--version", "1", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.out, "", "nothing to apply after an error");
	char want[700];
	snprintf(want, sizeof(want),
	         "%s/a.yaml:6:7: ${values.nope}: the plan has no kubernetes.values.nope", dir);
	cr_assert(strstr(r.err, want), "want %s in:\n%s", want, r.err);
	snprintf(want, sizeof(want), "%s/b.yaml:5:", dir);
	cr_assert(strstr(r.err, want), "both files' errors: %s", r.err);
	cr_assert(strstr(r.err, "error: 2 errors in the templates"), "%s", r.err);
	tu_output_free(&r);

	r = tu_migrate("render", "-p", plan, "--version", "1", "-o", "json", NULL);
	cr_assert_eq(r.status, 2);
	json_t *doc = json_loads(r.out, 0, NULL);
	cr_assert_not_null(doc, "%s", r.out);
	json_t *diags = json_object_get(json_object_get(doc, "error"), "diagnostics");
	cr_assert_eq(json_array_size(diags), 2);
	json_t *d0 = json_array_get(diags, 0);
	cr_assert_eq(json_integer_value(json_object_get(d0, "line")), 6);
	cr_assert_eq(json_integer_value(json_object_get(d0, "column")), 7);
	json_decref(doc);
	tu_output_free(&r);
}

Test(render, warnings_on_stderr_and_injection)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/t", tmpdir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	write_file("t/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${plan.name}\n"
	                       "data:\n  flag: on\n  motd: ${values.motd}\n");
	write_plan(dir, "    motd: \"x\\n  evil: true\"\n");
	tu_output r = tu_migrate("render", "-p", plan, "--version", "1", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	char want[700];
	snprintf(want, sizeof(want), "warning: %s/a.yaml:6:9: on is the string \"on\"", dir);
	cr_assert(strstr(r.err, want), "want %s in:\n%s", want, r.err);
	json_t *list = json_loads(r.out, 0, NULL);
	json_t *data = json_object_get(json_array_get(json_object_get(list, "items"), 0), "data");
	cr_assert_eq(json_object_size(data), 2);
	cr_assert_str_eq(json_string_value(json_object_get(data, "motd")), "x\n  evil: true");
	json_decref(list);
	tu_output_free(&r);
}

/* Issue 13: `plan` listed a dotfile in the templates directory that `render` leaves out. */
Test(render, plan_lists_the_files_render_renders)
{
	char tdir[512];
	snprintf(tdir, sizeof(tdir), "%s/tpl", tmpdir);
	cr_assert_eq(mkdir(tdir, 0755), 0);
	const char *cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\n"
	                 "data: { v: \"${version}\" }\n";
	write_file("tpl/web.yaml", cm);
	write_file("tpl/.web.yaml", cm); /* an editor's copy, not a template */
	write_plan(tdir, NULL);
	tu_output r = tu_migrate("render", "-p", plan, "--version", "7", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *list = tu_json_doc(&r);
	cr_assert_eq(json_array_size(json_object_get(list, "items")), 1, "%s", r.out);
	json_decref(list);
	tu_output_free(&r);
	r = tu_migrate("plan", "-p", plan, "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = tu_json_doc(&r);
	json_t *files = json_object_get(
	    json_object_get(json_object_get(doc, "kubernetes"), "templates"), "files");
	cr_assert_eq(json_array_size(files), 1, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_array_get(files, 0)), "web.yaml");
	json_decref(doc);
	tu_output_free(&r);
	r = tu_migrate("plan", "-p", plan, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "(1 file)"), "%s", r.out);
	cr_assert_null(strstr(r.out, ".web.yaml"), "%s", r.out);
	tu_output_free(&r);
}
