/*
 * The migrate binary as an operator or a CI job runs it: exit codes, what
 * goes to stdout and stderr, the JSON contract, colour rules. The binary is
 * $MIGRATE_BIN (set by the Makefile); state is prepared through lib/ in a
 * fresh directory per test.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "journal.h"
#include "state.h"
#include "store.h"
#include "storebackend.h"

typedef tu_output result;

static char tmpdir[256];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "cli");
	unsetenv("NO_COLOR");
}

static void teardown(void)
{
	tu_state_stop();
	tu_tmpdir_remove(tmpdir);
}

/* stdout must be exactly one JSON document. */
static json_t *json_doc(const result *r)
{
	json_error_t e;
	json_t *doc = json_loads(r->out, 0, &e);
	cr_assert_not_null(doc, "stdout is not one JSON document (%s): %s", e.text, r->out);
	cr_assert(json_is_object(doc));
	return doc;
}

static const char *jstr(json_t *o, const char *path)
{
	json_t *v = json_object_get(o, path);
	cr_assert(json_is_string(v), "%s is not a string", path);
	return json_string_value(v);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static const char *tmp(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static const char minimal_plan[] =
    "version: 1\n"
    "name: shop\n"
    "traffic:\n"
    "  provider: haproxy\n"
    "  steps: [10, 50, 100]\n"
    "  bake: 5m\n"
    "  haproxy:\n"
    "    address: 127.0.0.1:9999\n"
    "    backend: shop\n"
    "    vm_servers: [vm1, vm2]\n"
    "    k8s_servers: [k8s]\n"
    "slo:\n"
    "  prometheus: { url: \"http://127.0.0.1:9090\" }\n"
    "  red: { source: haproxy, backend: shop, max_error_rate: 1% }\n";

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

/* p.yaml, the minimal plan, its state where MG_TEST_STATE_BACKEND keeps it. */
static void plan_file(void)
{
	write_file(tmp("p.yaml"), minimal_plan);
	tu_state_plan(tmp("p.yaml"), tmpdir);
}

Test(cli, help_lists_every_command)
{
	result r = tu_migrate("help", NULL);
	cr_assert_eq(r.status, 0);
	const char *cmds[] = {"validate", "plan", "status", "history", "help"};
	for (size_t i = 0; i < 5; i++)
		cr_assert(strstr(r.out, cmds[i]), "help does not mention %s", cmds[i]);
	cr_assert(strstr(r.out, "Exit status"));
	tu_output_free(&r);
}

Test(cli, help_for_each_command_three_ways)
{
	const char *cmds[] = {"validate", "plan", "status", "history"};
	for (size_t i = 0; i < 4; i++) {
		char want[64];
		snprintf(want, sizeof(want), "usage: migrate %s", cmds[i]);
		result a = tu_migrate("help", cmds[i], NULL);
		result b = tu_migrate(cmds[i], "--help", NULL);
		result c = tu_migrate(cmds[i], "-h", NULL);
		cr_assert_eq(a.status, 0);
		cr_assert_eq(b.status, 0);
		cr_assert_eq(c.status, 0);
		cr_assert(strstr(a.out, want), "%s", a.out);
		cr_assert_str_eq(a.out, b.out);
		cr_assert_str_eq(b.out, c.out);
		tu_output_free(&a);
		tu_output_free(&b);
		tu_output_free(&c);
	}
	result h = tu_migrate("history", "--help", NULL);
	cr_assert(strstr(h.out, "--limit"));
	tu_output_free(&h);
}

Test(cli, no_command_is_a_usage_error)
{
	result r = tu_migrate(NULL);
	cr_assert_eq(r.status, 2);
	cr_assert_str_empty(r.out);
	cr_assert(strstr(r.err, "usage: migrate"));
	tu_output_free(&r);
}

Test(cli, version)
{
	result r = tu_migrate("--version", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(!strncmp(r.out, "migrate ", 8), "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate("--version", "-o", "json", NULL);
	json_t *doc = json_doc(&r);
	cr_assert(strlen(jstr(doc, "version")) > 0);
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, unknown_command_suggests)
{
	result r = tu_migrate("vaildate", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "did you mean 'validate'?"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate("frobnicate", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "'frobnicate' is not a migrate command"), "%s", r.err);
	cr_assert_null(strstr(r.err, "did you mean"));
	tu_output_free(&r);
	r = tu_migrate("help", "nosuch", NULL);
	cr_assert_eq(r.status, 2);
	tu_output_free(&r);
}

Test(cli, unknown_option_suggests)
{
	result r = tu_migrate("validate", "--plna", "x.yaml", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "unknown option '--plna'; did you mean '--plan'?"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate("history", "-x", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "unknown option '-x'"), "%s", r.err);
	tu_output_free(&r);
}

Test(cli, option_without_value)
{
	result r = tu_migrate("validate", "-p", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "needs a value"), "%s", r.err);
	tu_output_free(&r);
}

Test(cli, bad_output_format)
{
	result r = tu_migrate("validate", "-o", "xml", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--output takes text, json, yaml, html or svg, not \"xml\""), "%s",
	          r.err);
	tu_output_free(&r);
	/* yaml is for the commands that print manifests, before or after the command name */
	r = tu_migrate("-o", "yaml", "validate", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--output yaml is for configmap and render; `migrate validate` "
	                        "prints text or json"),
	          "%s", r.err);
	tu_output_free(&r);
}

Test(cli, validate_example_plan)
{
	result r = tu_migrate("validate", "-p", "plans/example.yaml", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "plans/example.yaml: valid (plan \"payments-api\")\n");
	cr_assert_str_empty(r.err);
	tu_output_free(&r);
}

/* The acceptance case: four different mistakes, all reported, with positions. */
Test(cli, validate_reports_all_four_errors_with_positions)
{
	result r = tu_migrate("validate", "tests/fixtures/plans/four-errors.yaml", NULL);
	cr_assert_eq(r.status, 2);
	const char *f = "tests/fixtures/plans/four-errors.yaml";
	char want[2048];
	snprintf(want, sizeof(want),
	         "%s:5:19: traffic.steps[2]: 40 is lower than the step before it (50); steps "
	         "must increase\n"
	         "%s:6:9: traffic.bake: ",
	         f, f);
	cr_assert(!strncmp(r.err, want, strlen(want)), "%s", r.err);
	snprintf(want, sizeof(want), "%s:13:5: traffic.cloudflare.token: secrets may not be", f);
	cr_assert(strstr(r.err, want), "%s", r.err);
	snprintf(want, sizeof(want),
	         "%s:16:3: slo.intreval: unknown key; did you mean \"interval\"?", f);
	cr_assert(strstr(r.err, want), "%s", r.err);
	size_t lines = 0;
	for (const char *p = r.err; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, 4, "expected exactly 4 diagnostics:\n%s", r.err);
	cr_assert_str_eq(r.out, "tests/fixtures/plans/four-errors.yaml: 4 errors\n");
	/* the token itself is never echoed back */
	cr_assert_null(strstr(r.err, "Yx3kP9qLmN2vB8wR5tZ7cD4fG6hJ1sA0eU"));
	tu_output_free(&r);
}

Test(cli, validate_json)
{
	result r = tu_migrate("validate", "-o", "json", "tests/fixtures/plans/four-errors.yaml",
	                      "plans/example.yaml", NULL);
	cr_assert_eq(r.status, 2);
	json_t *doc = json_doc(&r);
	cr_assert_str_eq(jstr(doc, "command"), "validate");
	cr_assert(json_is_false(json_object_get(doc, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(doc, "exit_code")), 2);
	json_t *plans = json_object_get(doc, "plans");
	cr_assert_eq(json_array_size(plans), 2);
	json_t *bad = json_array_get(plans, 0), *good = json_array_get(plans, 1);
	cr_assert(json_is_false(json_object_get(bad, "valid")));
	json_t *errs = json_object_get(bad, "errors");
	cr_assert_eq(json_array_size(errs), 4);
	int want[4][2] = {{5, 19}, {6, 9}, {13, 5}, {16, 3}};
	for (size_t i = 0; i < 4; i++) {
		json_t *e = json_array_get(errs, i);
		cr_assert_eq(json_integer_value(json_object_get(e, "line")), want[i][0]);
		cr_assert_eq(json_integer_value(json_object_get(e, "column")), want[i][1]);
		cr_assert(json_is_string(json_object_get(e, "path")));
		cr_assert(json_is_string(json_object_get(e, "message")));
	}
	cr_assert(json_is_true(json_object_get(good, "valid")));
	cr_assert_str_eq(jstr(good, "name"), "payments-api");
	cr_assert_eq(json_array_size(json_object_get(good, "errors")), 0);
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, validate_missing_file)
{
	result r = tu_migrate("validate", "-p", tmp("nope.yaml"), NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "no such plan file"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate("plan", "-o", "json", "-p", tmp("nope.yaml"), NULL);
	cr_assert_eq(r.status, 2);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_false(json_object_get(doc, "ok")));
	json_t *e = json_object_get(doc, "error");
	cr_assert(strstr(jstr(e, "message"), "no such plan file"));
	cr_assert_str_eq(jstr(e, "kind"), "invalid input");
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, unreadable_plans_are_bad_input)
{
	result r = tu_migrate("validate", "-p", tmpdir, NULL);
	cr_assert_eq(r.status, 2, "a directory as the plan: %s", r.err);
	cr_assert(strstr(r.err, "is not a regular file (a directory)"), "%s", r.err);
	tu_output_free(&r);
	write_file(tmp("bin.yaml"), "version: 1\n");
	FILE *f = fopen(tmp("bin.yaml"), "a");
	cr_assert_not_null(f);
	fputc('\0', f);
	fclose(f);
	r = tu_migrate("validate", "-p", tmp("bin.yaml"), NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "not a text file"), "%s", r.err);
	tu_output_free(&r);
	write_file(tmp("empty.yaml"), "");
	r = tu_migrate("validate", "-p", tmp("empty.yaml"), NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "empty.yaml:1:1: the plan is empty"), "%s", r.err);
	tu_output_free(&r);
}

Test(cli, stray_operands_are_refused)
{
	const char *cmds[] = {"plan", "status", "history"};
	for (size_t i = 0; i < 3; i++) {
		result r = tu_migrate(cmds[i], "-p", "plans/example.yaml", "extra", NULL);
		cr_assert_eq(r.status, 2, "%s accepted a stray operand", cmds[i]);
		cr_assert(strstr(r.err, "unexpected argument 'extra'"), "%s", r.err);
		tu_output_free(&r);
	}
	result r = tu_migrate("help", "plan", "status", NULL);
	cr_assert_eq(r.status, 2);
	tu_output_free(&r);
}

/* CI asked for JSON: it gets a JSON document even when the error comes before -o is read. */
Test(cli, usage_errors_are_json_when_json_was_asked_for)
{
	result r = tu_migrate("plan", "-x", "-o", "json", NULL);
	cr_assert_eq(r.status, 2);
	json_t *doc = json_doc(&r);
	cr_assert_eq(json_integer_value(json_object_get(doc, "exit_code")), 2);
	cr_assert_str_eq(jstr(json_object_get(doc, "error"), "message"), "unknown option '-x'");
	json_decref(doc);
	tu_output_free(&r);
	r = tu_migrate("--output=json", NULL);
	cr_assert_eq(r.status, 2);
	doc = json_doc(&r);
	cr_assert_str_eq(jstr(json_object_get(doc, "error"), "message"), "no command given");
	json_decref(doc);
	tu_output_free(&r);
	r = tu_migrate("-o", "json", "nosuch", NULL);
	cr_assert_eq(r.status, 2);
	doc = json_doc(&r);
	cr_assert(json_is_false(json_object_get(doc, "ok")));
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, global_options_before_the_command)
{
	result r = tu_migrate("-o", "json", "-p", "plans/example.yaml", "validate", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_true(json_object_get(doc, "ok")));
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, plan_text_shows_weights_and_gates)
{
	result r = tu_migrate("plan", "-p", "plans/example.yaml", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	/* 4 VM servers at 9 and 1 cluster server at 4: 4 / 40 = 10% */
	cr_assert(strstr(r.out, "  1     10%      90%      10%        9 / 4\n"), "%s", r.out);
	cr_assert(strstr(r.out, "  5     100%     0%       100%       0 / 1\n"), "%s", r.out);
	cr_assert(strstr(r.out,
	                 "sum(increase(haproxy_server_http_responses_total{proxy=\"payments\","
	                 "server=~\"k8s\",code=\"5xx\"}[5m]))"));
	cr_assert(strstr(r.out, "checkout_ok_total{side=\"k8s\"}[5m]"), "window not expanded");
	cr_assert(strstr(r.out, "Nothing was changed."));
	cr_assert_null(strstr(r.out, "\033["), "colour on a pipe");
	tu_output_free(&r);
}

Test(cli, plan_json)
{
	result r = tu_migrate("plan", "-p", "plans/example.yaml", "--output=json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_doc(&r);
	cr_assert_str_eq(jstr(doc, "command"), "plan");
	json_t *hosts = json_object_get(json_object_get(doc, "vms"), "hosts");
	cr_assert_eq(json_array_size(hosts), 4);
	json_t *h4 = json_array_get(hosts, 3);
	cr_assert_str_eq(jstr(h4, "address"), "10.20.0.14");
	cr_assert_eq(json_integer_value(json_object_get(h4, "port")), 2222);
	cr_assert_eq(json_integer_value(json_object_get(h4, "batch")), 4);
	json_t *traffic = json_object_get(doc, "traffic");
	cr_assert_str_eq(jstr(traffic, "provider"), "haproxy");
	cr_assert_eq(json_integer_value(json_object_get(traffic, "bake_ms")), 600000);
	json_t *steps = json_object_get(traffic, "steps");
	cr_assert_eq(json_array_size(steps), 5);
	json_t *s1 = json_array_get(steps, 0);
	cr_assert_float_eq(json_real_value(json_object_get(s1, "k8s_percent")), 10.0, 1e-9);
	json_t *w = json_object_get(s1, "weights");
	cr_assert_eq(json_integer_value(json_object_get(w, "vm-01")), 9);
	cr_assert_eq(json_integer_value(json_object_get(w, "k8s")), 4);
	json_t *checks = json_object_get(json_object_get(doc, "slo"), "checks");
	cr_assert_eq(json_array_size(checks), 5);
	const char *names[] = {"rate", "errors", "duration", "errors-vs-vms", "checkout-success"};
	for (size_t i = 0; i < 5; i++)
		cr_assert_str_eq(jstr(json_array_get(checks, i), "name"), names[i]);
	cr_assert(json_is_string(json_object_get(json_array_get(checks, 3), "baseline")));
	cr_assert_eq(json_integer_value(json_object_get(doc, "minimum_duration_ms")), 3000000);
	json_t *files = json_object_get(
	    json_object_get(json_object_get(doc, "kubernetes"), "templates"), "files");
	cr_assert_eq(json_array_size(files), 4);
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, plan_with_only_traffic_and_slo)
{
	write_file(tmp("p.yaml"), minimal_plan);
	result r = tu_migrate("plan", "-p", tmp("p.yaml"), "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_null(json_object_get(doc, "vms")));
	cr_assert(json_is_null(json_object_get(doc, "kubernetes")));
	cr_assert(json_is_null(json_object_get(doc, "build")));
	json_t *w = json_object_get(
	    json_array_get(json_object_get(json_object_get(doc, "traffic"), "steps"), 0),
	    "weights");
	/* 2 VM servers, 1 cluster server, 10%: 9, 9 and 2 */
	cr_assert_eq(json_integer_value(json_object_get(w, "vm1")), 9);
	cr_assert_eq(json_integer_value(json_object_get(w, "k8s")), 2);
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, status_before_anything_ran)
{
	plan_file();
	result r = tu_migrate("status", "-p", tmp("p.yaml"), "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_false(json_object_get(doc, "recorded")));
	json_t *st = json_object_get(doc, "state");
	cr_assert_str_eq(jstr(st, "phase"), "idle");
	cr_assert(json_is_false(json_object_get(json_object_get(doc, "lock"), "held")));
	json_decref(doc);
	tu_output_free(&r);
	/* a read-only command creates nothing */
	cr_assert(!tu_state_written(tmp(".migrate")));
}

/* p.yaml's store, as the commands open it with --state-dir dir. */
static mg_store *open_store(const char *dir)
{
	return tu_state_store(tmp("p.yaml"), dir, false);
}

Test(cli, status_shows_recorded_state_and_lock_holder)
{
	plan_file();
	mg_store *s = open_store(tmp("state"));
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	mg_state st;
	mg_state_init(&st, "shop");
	st.phase = MG_PHASE_SHIFTING;
	st.step_index = 1;
	st.step_started_ms = mg_now_ms();
	st.has_applied = st.has_read_back = true;
	st.applied_k8s_percent = st.read_back_k8s_percent = 50;
	st.applied_ms = st.read_back_ms = mg_now_ms();
	snprintf(st.vms_version, sizeof(st.vms_version), "1.4.2");
	cr_assert_eq(mg_state_save(s, &st, &err), 0, "%s", err.message);

	result r = tu_migrate("status", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "phase shifting"), "%s", r.out);
	cr_assert(strstr(r.out, "step       2 of 3: 50% to the cluster, bake"), "%s", r.out);
	cr_assert(strstr(r.out, "versions   VMs 1.4.2, cluster -"), "%s", r.out);
	char pid[64];
	snprintf(pid, sizeof(pid), "(pid %ld, \"step\" since", (long)getpid());
	cr_assert(strstr(r.out, pid), "lock holder not shown: %s", r.out);
	tu_output_free(&r);

	r = tu_migrate("status", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), "-o", "json",
	               NULL);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_true(json_object_get(doc, "recorded")));
	json_t *lock = json_object_get(doc, "lock");
	cr_assert(json_is_true(json_object_get(lock, "held")));
	cr_assert_eq(json_integer_value(json_object_get(lock, "pid")), getpid());
	cr_assert_str_eq(jstr(lock, "command"), "step");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc, "state"), "revision")),
	             1);
	json_t *bake = json_object_get(doc, "bake_remaining_ms");
	cr_assert(json_integer_value(bake) > 290000 && json_integer_value(bake) <= 300000);
	json_decref(doc);
	tu_output_free(&r);
	mg_store_free(s);
	mg_error_clear(&err);
}

Test(cli, status_refuses_a_corrupt_state_file)
{
	plan_file();
	tu_state_write_raw(tmp("p.yaml"), tmp("state"), "{\"format\": 1, \"plan\": ");
	result r = tu_migrate("status", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "state.json"), "the message must name the file: %s", r.err);
	tu_output_free(&r);
}

/* The journal of p.yaml is these JSON lines (its records as migrate wrote them). */
static void journal_lines(const char *text)
{
	mg_store *s = open_store(tmp("state"));
	if (!mg_store_remote(s)) {
		write_file(tu_at("%s/journal.jsonl", mg_store_path(s)), text);
		mg_store_free(s);
		return;
	}
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(s, "step", &err), 0, "%s", err.message);
	for (const char *p = text; *p; p += strcspn(p, "\n") + 1) {
		json_error_t je;
		json_t *rec = json_loadb(p, strcspn(p, "\n"), 0, &je);
		cr_assert_not_null(rec, "%s", je.text);
		cr_assert_eq(mg_store_journal_append_record(s, rec, &err), 0, "%s", err.message);
		json_decref(rec);
	}
	mg_store_free(s);
}

static void append(mg_store *s, const char *action, const char *reason)
{
	mg_error err = MG_ERROR_INIT;
	json_t *before = json_pack("{s:i}", "k8s_percent", 10);
	json_t *after = json_pack("{s:i}", "k8s_percent", 25);
	mg_journal_entry e = {.command = "step",
	                      .action = action,
	                      .before = before,
	                      .after = after,
	                      .reason = reason};
	cr_assert_eq(mg_journal_append(s, &e, &err), 0, "%s", err.message);
	json_decref(before);
	json_decref(after);
}

Test(cli, history_newest_last_with_limit)
{
	plan_file();
	mg_store *s = open_store(tmp("state"));
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	append(s, "intent", "first");
	append(s, "result", "second");
	append(s, "intent", "third");
	mg_store_free(s);

	result r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	char *a = strstr(r.out, "first"), *b = strstr(r.out, "second"), *c = strstr(r.out, "third");
	cr_assert(a && b && c && a < b && b < c, "%s", r.out);
	cr_assert(strstr(r.out, "{\"k8s_percent\":25}"), "%s", r.out);
	tu_output_free(&r);

	r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), "--limit", "2",
	               "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_doc(&r);
	json_t *recs = json_object_get(doc, "records");
	cr_assert_eq(json_array_size(recs), 2);
	cr_assert_str_eq(jstr(json_array_get(recs, 0), "reason"), "second");
	cr_assert_str_eq(jstr(json_array_get(recs, 1), "reason"), "third");
	cr_assert_eq(json_integer_value(json_object_get(doc, "skipped_lines")), 0);
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, history_skips_a_torn_last_line_with_a_warning)
{
	tu_state_local_only("appends a torn line to journal.jsonl");
	plan_file();
	mg_store *s = open_store(tmp("state"));
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_lock(s, "step", &err), 0);
	append(s, "intent", "kept");
	mg_store_free(s);
	FILE *f = fopen(tmp("state/shop/journal.jsonl"), "a");
	cr_assert_not_null(f);
	fputs("{\"seq\": 2, \"time\": \"2026-", f); /* a crash mid-write */
	fclose(f);
	result r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), "-o",
	                      "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "warning:"), "no warning on stderr: %s", r.err);
	cr_assert(strstr(r.err, "journal.jsonl:2"), "warning does not name the line: %s", r.err);
	json_t *doc = json_doc(&r);
	cr_assert_eq(json_array_size(json_object_get(doc, "records")), 1);
	cr_assert_eq(json_integer_value(json_object_get(doc, "skipped_lines")), 1);
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, history_bad_limit)
{
	write_file(tmp("p.yaml"), minimal_plan);
	const char *bad[] = {"0", "-3", "ten", ""};
	for (size_t i = 0; i < 4; i++) {
		result r = tu_migrate("history", "-p", tmp("p.yaml"), "--limit", bad[i], NULL);
		cr_assert_eq(r.status, 2, "--limit '%s' accepted", bad[i]);
		cr_assert(strstr(r.err, "--limit takes a whole number"), "%s", r.err);
		tu_output_free(&r);
	}
}

Test(cli, commands_say_which_plan_is_missing)
{
	result r = tu_migrate("status", "-p", tmp("missing.yaml"), NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "missing.yaml: no such plan file"), "%s", r.err);
	tu_output_free(&r);
}

/* Runs migrate on a pseudo-terminal and returns what it printed. */
static char *run_on_tty(const char *no_color, const char *arg_extra)
{
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (no_color)
			setenv("NO_COLOR", no_color, 1);
		else
			unsetenv("NO_COLOR");
		setenv("TERM", "xterm", 1);
		execl(tu_migrate_bin(), tu_migrate_bin(), "validate", "-p", "plans/example.yaml",
		      arg_extra, (char *)NULL);
		_exit(127);
	}
	char *buf = calloc(1, 1);
	size_t len = 0, cap = 1;
	for (int rounds = 0; rounds < 2000; rounds++) {
		struct pollfd p = {master, POLLIN, 0};
		if (poll(&p, 1, 10) > 0) {
			size_t before = len;
			tu_drain(master, &buf, &len, &cap);
			if (len == before)
				break; /* EIO: the child closed the terminal */
		} else if (waitpid(pid, NULL, WNOHANG) == pid) {
			pid = 0;
			break;
		}
	}
	if (pid)
		waitpid(pid, NULL, 0);
	close(master);
	return buf;
}

Test(cli, colour_only_on_a_terminal_and_never_with_no_color)
{
	char *c = run_on_tty(NULL, NULL);
	cr_assert(strstr(c, "\033[32mvalid"), "no colour on a terminal: %s", c);
	free(c);
	c = run_on_tty("1", NULL);
	cr_assert(strstr(c, "valid") && !strstr(c, "\033["), "NO_COLOR ignored: %s", c);
	free(c);
	c = run_on_tty(NULL, "--no-color");
	cr_assert(strstr(c, "valid") && !strstr(c, "\033["), "--no-color ignored: %s", c);
	free(c);
}

Test(cli, history_since_and_streamed_json)
{
	plan_file();
	journal_lines(
	    "{\"seq\":1,\"time\":\"2026-11-20T00:00:00.000Z\",\"operator\":\"a@b\",\"pid\":1,"
	    "\"command\":\"step\",\"action\":\"intent\",\"before\":null,\"after\":null,"
	    "\"reason\":\"old\",\"evidence\":null}\n"
	    "{\"seq\":2,\"time\":\"2026-11-22T00:00:00.000Z\",\"operator\":\"a@b\",\"pid\":1,"
	    "\"command\":\"step\",\"action\":\"result\",\"before\":null,\"after\":null,"
	    "\"reason\":\"new\",\"evidence\":{\"k\":[1,{\"x\":\"y\"}]}}\n");
	result r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"),
	                      "--since", "2026-11-21T00:00:00Z", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "new") && !strstr(r.out, "old"), "%s", r.out);
	tu_output_free(&r);

	/* the streamed envelope is one JSON document with every field */
	r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), "-o", "json",
	               NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_doc(&r);
	cr_assert_str_eq(jstr(doc, "command"), "history");
	cr_assert_str_eq(jstr(doc, "plan"), "shop");
	cr_assert(json_is_true(json_object_get(doc, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(doc, "exit_code")), 0);
	json_t *recs = json_object_get(doc, "records");
	cr_assert_eq(json_array_size(recs), 2);
	cr_assert_str_eq(
	    jstr(json_array_get(
	             json_object_get(json_object_get(json_array_get(recs, 1), "evidence"), "k"), 1),
	         "x"),
	    "y");
	json_decref(doc);
	tu_output_free(&r);

	/* nothing since then, in both forms */
	r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), "--since",
	               "2026-12-01T00:00:00Z", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "shop: no journal records since then"), "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), "--since",
	               "2026-12-01T00:00:00Z", "-o", "json", NULL);
	doc = json_doc(&r);
	cr_assert_eq(json_array_size(json_object_get(doc, "records")), 0);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate("history", "-p", tmp("p.yaml"), "--since", "yesterday", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--since yesterday: not an RFC 3339"), "%s", r.err);
	tu_output_free(&r);
}

Test(cli, history_json_reports_a_journal_it_cannot_read)
{
	tu_state_local_only("makes journal.jsonl a FIFO");
	plan_file();
	mg_store_free(open_store(tmp("state")));
	cr_assert_eq(mkfifo(tmp("state/shop/journal.jsonl"), 0600), 0);
	result r = tu_migrate("history", "-p", tmp("p.yaml"), "--state-dir", tmp("state"), "-o",
	                      "json", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	json_t *doc = json_doc(&r);
	cr_assert(json_is_false(json_object_get(doc, "ok")));
	cr_assert(strstr(jstr(json_object_get(doc, "error"), "message"), "not a regular file"));
	json_decref(doc);
	tu_output_free(&r);
}

Test(cli, rollback_force_needs_a_reason)
{
	plan_file();
	result r = tu_migrate("rollback", "-p", tmp("p.yaml"), "--state-dir", tmp("state"),
	                      "--force", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "--force needs --reason TEXT: the journal records why"), "%s",
	          r.err);
	tu_output_free(&r);
	/* refused before anything is opened: no state directory was made */
	cr_assert(!tu_state_written(tmp("state")));
}
