/*
 * migrate configmap: a legacy nginx tree as a ConfigMap, linted for the pod
 * and checked by the real nginx -t.
 *
 * stdout carries only what `kubectl apply -f -` may take: the manifest
 * (YAML, or JSON with -o json), and nothing at all when the command fails,
 * so a pipe into kubectl never applies a configuration that has errors
 * (-o json prints a report document instead, which kubectl refuses).
 * Findings, the check's verdict and the pod snippet go to stderr; in YAML
 * the verdict and the snippet are also comments above the manifest.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "configmap.h"
#include "nginxconf.h"

typedef struct {
	const char *name, *namespace_, *prefix, *mount, *nginx, *secret;
	bool tree, comments, hash, fix_logs, allow, no_verify;
} opts;

/* One ConfigMap to render. */
typedef struct {
	const char *file;
	const char *name;
	const char *namespace_;
	mg_nginxconf *conf;
	mg_cm *cm;
	int exit_code;
} job;

/* doc (taken) on stdout; -1 when it cannot be written out. */
static int put_json(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!s)
		return -1;
	puts(s);
	free(s);
	return 0;
}

static void print_findings(mg_cli *cli, const job *j)
{
	bool c = cli->color_err;
	const mg_cm *cm = j->cm;
	for (size_t i = 0; i < cm->nfindings; i++) {
		const mg_cm_finding *f = &cm->findings[i];
		const char *col = f->severity == MG_CM_ERROR     ? C_RED
		                  : f->severity == MG_CM_WARNING ? C_YELLOW
		                                                 : C_CYAN;
		if (f->line)
			fprintf(stderr, "%s:%d: ", f->file, f->line);
		else
			fprintf(stderr, "%s: ", f->file);
		fprintf(stderr, "%s%s:%s %s [%s]\n", cli_c(c, col),
		        mg_cm_severity_name(f->severity), cli_c(c, C_RESET), f->message, f->rule);
		if (*f->fix)
			fprintf(stderr, "    %sfix:%s %s\n", cli_c(c, C_DIM), cli_c(c, C_RESET),
			        f->fix);
	}
}

static void print_verify(mg_cli *cli, const job *j)
{
	bool c = cli->color_err;
	const mg_cm_verify_result *v = &j->cm->verify;
	if (!v->ran) {
		fprintf(stderr, "nginx -t: not run (%s)\n", v->reason ? v->reason : "skipped");
		return;
	}
	fprintf(stderr, "nginx -t%s%s%s, on the files as the pod sees them under %s: %s%s%s\n",
	        v->version ? " (" : "", v->version ? v->version : "", v->version ? ")" : "",
	        j->cm->mount_path, cli_c(c, v->ok ? C_GREEN : C_RED), v->ok ? "passed" : "failed",
	        cli_c(c, C_RESET));
	if (!v->ok || cli->verbose) {
		fprintf(stderr, "    %s\n", v->command);
		for (const char *s = v->output ? v->output : ""; *s;) {
			size_t n = strcspn(s, "\n");
			fprintf(stderr, "    | %.*s\n", (int)n, s);
			s += n + (s[n] == '\n');
		}
	}
	for (size_t i = 0; i < v->nnotes; i++)
		fprintf(stderr, "    %snote:%s %s\n", cli_c(c, C_DIM), cli_c(c, C_RESET),
		        v->notes[i]);
}

static void print_summary(mg_cli *cli, const job *j)
{
	const mg_cm *cm = j->cm;
	size_t e = mg_cm_count(cm, MG_CM_ERROR), w = mg_cm_count(cm, MG_CM_WARNING),
	       n = mg_cm_count(cm, MG_CM_INFO);
	bool c = cli->color_err;
	fprintf(stderr,
	        "%s%s%s: %zu file%s, %zu bytes of %zu, checksum %.10s; %zu error%s, %zu warning%s, "
	        "%zu info\n",
	        cli_c(c, C_BOLD), cm->name, cli_c(c, C_RESET), cm->nentries,
	        cm->nentries == 1 ? "" : "s", cm->size, MG_CM_MAX_BYTES, cm->checksum, e,
	        e == 1 ? "" : "s", w, w == 1 ? "" : "s", n);
}

static int parse_tree(mg_cli *cli, const opts *o, job *j)
{
	mg_error err = MG_ERROR_INIT;
	mg_nginxconf_options po = {.prefix = o->prefix, .keep_comments = o->comments && o->tree};
	int rc = mg_nginxconf_parse(&j->conf, j->file, &po, &err);
	if (rc) {
		if (o->tree) {
			/* the tree's own error shape, for tooling that reads --json */
			put_json(mg_nginxconf_error_json(&err));
			fprintf(stderr, "error: %s\n", err.message);
			rc = cli_exit_code(rc);
		} else {
			rc = cli_fail(cli, &err);
		}
		mg_error_clear(&err);
		return rc;
	}
	cli_print_diags(cli, &err); /* warnings: tokens nginx itself would reject */
	mg_error_clear(&err);
	return 0;
}

static int build(mg_cli *cli, const opts *o, job *j)
{
	mg_error err = MG_ERROR_INIT;
	mg_cm_options co = {.name = j->name,
	                    .namespace_ = j->namespace_,
	                    .mount_path = o->mount,
	                    .fix_logs = o->fix_logs,
	                    .hash_suffix = o->hash,
	                    .secret = o->secret};
	const char *skip = o->tree ? "--json" : o->no_verify ? "--no-verify" : NULL;
	int rc = mg_cm_make(&j->cm, j->conf, &co, o->nginx, skip, &err);
	if (rc)
		rc = cli_fail(cli, &err);
	mg_error_clear(&err);
	return rc;
}

static int write_stdout(const char *data, size_t len, void *ud)
{
	(void)ud;
	return fwrite(data, 1, len, stdout) == len ? 0 : MG_EIO;
}

/* The volumes for the pod on stderr, when no YAML carries them as comments. */
static void print_mount(const job *j)
{
	char *mount = mg_cm_mount_yaml(j->cm, "");
	if (mount)
		fputs(mount, stderr);
	free(mount);
}

static int run_jobs(mg_cli *cli, const opts *o, job *jobs, size_t n)
{
	int exit_code = EXIT_DONE;
	json_t *trees = o->tree ? json_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		job *j = &jobs[i];
		j->exit_code = parse_tree(cli, o, j);
		if (!j->exit_code)
			j->exit_code = build(cli, o, j);
		if (j->exit_code) {
			if (j->exit_code > exit_code)
				exit_code = j->exit_code;
			if (j->exit_code == EXIT_USAGE)
				break;
			continue;
		}
		print_findings(cli, j);
		if (o->tree) {
			json_t *t = mg_nginxconf_to_json(j->conf, o->comments);
			json_object_set_new(t, "findings", mg_cm_findings_json(j->cm));
			if (n > 1)
				json_object_set_new(t, "name", json_string(j->name));
			json_array_append_new(trees, t);
			continue;
		}
		print_verify(cli, j);
		if (mg_cm_failed(j->cm, o->allow)) {
			j->exit_code = EXIT_FAILED;
			if (exit_code < EXIT_FAILED)
				exit_code = EXIT_FAILED;
		}
	}
	if (o->tree) {
		/* after a parse error its own document is out already */
		if (exit_code != EXIT_USAGE)
			put_json(n == 1 && json_array_size(trees) == 1
			             ? json_incref(json_array_get(trees, 0))
			             : json_incref(trees));
		json_decref(trees);
		return exit_code;
	}
	if (exit_code == EXIT_USAGE)
		return exit_code;

	/* a manifest only when every ConfigMap may be applied; --allow-errors prints it anyway */
	bool print = exit_code == EXIT_DONE || o->allow;
	for (size_t i = 0; i < n; i++) {
		if (!jobs[i].cm)
			continue;
		if (!print || cli->json)
			print_mount(&jobs[i]);
		print_summary(cli, &jobs[i]);
	}
	if (!print) {
		fprintf(stderr,
		        "no manifest printed: fix the errors above (--allow-errors prints it "
		        "anyway)\n");
		if (cli->json) {
			json_t *doc = cli_doc(cli);
			json_t *cms = json_array();
			for (size_t i = 0; i < n; i++) {
				if (!jobs[i].cm)
					continue;
				json_array_append_new(cms,
				                      mg_cm_report_json(jobs[i].cm, jobs[i].file));
			}
			json_object_set_new(doc, "configmaps", cms);
			return cli_doc_emit(cli, doc, exit_code);
		}
		return exit_code;
	}
	if (cli->json) {
		json_t *items = json_array();
		for (size_t i = 0; i < n; i++)
			if (jobs[i].cm)
				json_array_append_new(items, mg_cm_json(jobs[i].cm));
		if (put_json(mg_cm_list_json(items)))
			return EXIT_FAILED;
	} else {
		bool first = true;
		for (size_t i = 0; i < n; i++) {
			if (!jobs[i].cm)
				continue;
			if (!first)
				fputs("---\n", stdout);
			first = false;
			char *header = mg_cm_yaml_header(jobs[i].cm, jobs[i].file);
			if (header)
				fputs(header, stdout);
			free(header);
			/* streamed: a large tree is not held twice */
			if (mg_cm_yaml_write(jobs[i].cm, write_stdout, NULL))
				return EXIT_FAILED;
		}
	}
	fflush(stdout);
	return exit_code;
}

int cmd_configmap(mg_cli *cli, int argc, char **argv)
{
	opts o = {0};
	const cli_opt table[] = {CLI_STRING("name", &o.name),
	                         CLI_STRING("namespace", &o.namespace_),
	                         CLI_STRING("prefix", &o.prefix),
	                         CLI_STRING("mount-path", &o.mount),
	                         CLI_FLAG("json", &o.tree),
	                         CLI_FLAG("comments", &o.comments),
	                         CLI_FLAG("hash-suffix", &o.hash),
	                         CLI_FLAG("fix-logs", &o.fix_logs),
	                         CLI_FLAG("allow-errors", &o.allow),
	                         CLI_FLAG("no-verify", &o.no_verify),
	                         CLI_STRING("nginx", &o.nginx),
	                         CLI_STRING("secret", &o.secret),
	                         {0}};
	int exit_code = EXIT_DONE;
	int i = cli_parse(cli, argc, argv, table, 1, &exit_code);
	const char *file = i >= 0 && i < argc ? argv[i] : NULL;
	if (i < 0)
		return exit_code;
	if (o.comments && !o.tree)
		return cli_usage_error(cli, "--comments goes with --json");

	job *jobs = NULL;
	size_t n = 0;
	mg_plan *plan = NULL;
	if (file) {
		if (!o.name && !o.tree)
			return cli_usage_error(cli, "--name is required with FILE (the ConfigMap's "
			                            "name)");
		jobs = calloc(1, sizeof(*jobs));
		if (!jobs)
			return EXIT_FAILED;
		jobs[0] = (job){.file = file,
		                .name = o.name ? o.name : "nginx-config",
		                .namespace_ = o.namespace_};
		n = 1;
	} else {
		mg_error err = MG_ERROR_INIT;
		if (cli_load_plan(cli, &plan, MG_NEED_KUBERNETES, &err)) {
			exit_code = cli_fail(cli, &err);
			mg_error_clear(&err);
			return exit_code;
		}
		const mg_plan_kubernetes *k = mg_plan_kubernetes_section(plan);
		jobs = calloc(k->nconfigmaps ? k->nconfigmaps : 1, sizeof(*jobs));
		for (size_t c = 0; jobs && c < k->nconfigmaps; c++) {
			if (o.name && strcmp(o.name, k->configmaps[c].name))
				continue;
			jobs[n++] =
			    (job){.file = k->configmaps[c].from_nginx,
			          .name = k->configmaps[c].name,
			          .namespace_ = o.namespace_ ? o.namespace_ : k->namespace_};
		}
		if (jobs && n == 0) {
			free(jobs);
			mg_plan_free(plan);
			if (o.name)
				return cli_usage_error(
				    cli,
				    "the plan has no kubernetes.configmaps entry "
				    "named \"%s\"",
				    o.name);
			return cli_usage_error(cli, "give an nginx.conf, or a plan with "
			                            "kubernetes.configmaps");
		}
	}
	if (!jobs) {
		mg_plan_free(plan);
		return EXIT_FAILED;
	}
	exit_code = run_jobs(cli, &o, jobs, n);
	for (size_t k = 0; k < n; k++) {
		mg_cm_free(jobs[k].cm);
		mg_nginxconf_free(jobs[k].conf);
	}
	free(jobs);
	mg_plan_free(plan);
	return exit_code;
}
