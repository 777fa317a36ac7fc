/*
 * The metrics text of `run --metrics-addr` (lib/migration/expose.c): every
 * family with its HELP and TYPE, the values the state and the evaluation
 * hold, label values escaped, and the text accepted by Debian's own
 * `promtool check metrics` (skipped where prometheus is not installed).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"
#include "buildinfo.h"
#include "migration.h"

#define NOW      ((int64_t)2000000000000) /* ms */
#define PROMTOOL "/usr/bin/promtool"

static char dir[256];
static char *text;
static mg_error err = MG_ERROR_INIT;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "expose");
	text = NULL;
	mg_error_clear(&err);
}

static void teardown(void)
{
	free(text);
	text = NULL;
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}

TestSuite(expose, .init = setup, .fini = teardown);

static double steps[] = {10, 25, 50, 100};
static mg_plan_traffic traffic = {.steps = steps, .nsteps = 4, .bake_ms = 60000};
static mg_plan_slo slo = {.failure_limit = 3, .interval_ms = 5000};

static mg_state at_step_2(void)
{
	mg_state st;
	mg_state_init(&st, "shop");
	st.phase = MG_PHASE_SHIFTING;
	st.step_index = 1;
	st.step_started_ms = NOW - 20000; /* 40 s of the 60 s bake left */
	st.has_applied = true;
	st.applied_k8s_percent = 25;
	st.has_read_back = true;
	st.read_back_k8s_percent = 24.5;
	st.read_back_ms = NOW - 19000;
	st.gate_failures = 2;
	return st;
}

/* The line that starts with prefix (a whole sample name and labels), or NULL. */
static const char *line(const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, prefix, n) && p[n] == ' ')
			return p;
	return NULL;
}

/* The value of the sample prefix; asserts it is there. */
static double value(const char *prefix)
{
	const char *l = line(prefix);
	cr_assert_not_null(l, "no sample %s in:\n%s", prefix, text);
	return strtod(l + strlen(prefix) + 1, NULL);
}

/* Runs promtool check metrics over text; its exit status, its output in out. */
static int promtool(char *out, size_t size)
{
	char file[300];
	snprintf(file, sizeof(file), "%s/metrics.txt", dir);
	tu_write_file(file, text);
	char *argv[] = {"/bin/sh", "-c", "exec " PROMTOOL " check metrics < \"$0\"", file, NULL};
	tu_output r = tu_capture(argv);
	snprintf(out, size, "%s%s", r.out, r.err);
	int st = r.status;
	tu_output_free(&r);
	return st;
}

Test(expose, every_family_with_the_state_values)
{
	mg_state st = at_step_2();
	mg_gate_check checks[] = {
	    {.name = "rate",
	     .outcome = MG_GATE_PASS,
	     .has_value = true,
	     .value = 73.5,
	     .op = ">=",
	     .threshold = 20},
	    {.name = "errors",
	     .outcome = MG_GATE_FAIL,
	     .has_value = true,
	     .value = 0.05,
	     .op = "<=",
	     .threshold = 0.01},
	    {.name = "latency",
	     .outcome = MG_GATE_INCONCLUSIVE,
	     .op = "in",
	     .has_min = true,
	     .min = 0.5,
	     .has_max = true,
	     .max = 2},
	};
	mg_gate_eval ev = {
	    .outcome = MG_GATE_FAIL, .at_ms = NOW - 1000, .checks = checks, .nchecks = 3};
	mg_autopilot_view v = {.plan = "shop",
	                       .st = &st,
	                       .traffic = &traffic,
	                       .slo = &slo,
	                       .last = &ev,
	                       .last_tick_ms = NOW - 100,
	                       .role = "leader",
	                       .now_ms = NOW};
	cr_assert_eq(mg_autopilot_metrics_render(&text, &v, &err), 0, "%s", err.message);

	char bi[128];
	snprintf(bi, sizeof(bi), "migrate_build_info{version=\"%s\",revision=\"%s\"}",
	         mg_buildinfo_version(), mg_buildinfo_revision());
	cr_assert_eq(value(bi), 1);
	cr_assert_eq(value("migrate_role{plan=\"shop\",role=\"leader\"}"), 1);
	cr_assert_eq(value("migrate_role{plan=\"shop\",role=\"standby\"}"), 0);
	cr_assert_eq(value("migrate_role{plan=\"shop\",role=\"single\"}"), 0);
	cr_assert_eq(value("migrate_phase{plan=\"shop\",phase=\"shifting\"}"), 1);
	cr_assert_eq(value("migrate_phase{plan=\"shop\",phase=\"idle\"}"), 0);
	cr_assert_eq(value("migrate_phase{plan=\"shop\",phase=\"rolled-back\"}"), 0);
	cr_assert_eq(value("migrate_step{plan=\"shop\"}"), 2);
	cr_assert_eq(value("migrate_steps{plan=\"shop\"}"), 4);
	cr_assert_float_eq(value("migrate_step_cluster_ratio{plan=\"shop\"}"), 0.25, 1e-12);
	cr_assert_float_eq(value("migrate_cluster_applied_ratio{plan=\"shop\"}"), 0.25, 1e-12);
	cr_assert_float_eq(value("migrate_cluster_read_back_ratio{plan=\"shop\"}"), 0.245, 1e-12);
	cr_assert_float_eq(value("migrate_cluster_read_back_timestamp_seconds{plan=\"shop\"}"),
	                   (NOW - 19000) / 1000.0, 1e-3);
	cr_assert_float_eq(value("migrate_bake_remaining_seconds{plan=\"shop\"}"), 40, 1e-9);
	cr_assert_eq(value("migrate_gate_failures{plan=\"shop\"}"), 2);
	cr_assert_eq(value("migrate_gate_failure_limit{plan=\"shop\"}"), 3);
	cr_assert_eq(value("migrate_gate_outcome{plan=\"shop\",outcome=\"fail\"}"), 1);
	cr_assert_eq(value("migrate_gate_outcome{plan=\"shop\",outcome=\"pass\"}"), 0);
	cr_assert_eq(
	    value("migrate_gate_check_outcome{plan=\"shop\",check=\"errors\",outcome=\"fail\"}"),
	    1);
	cr_assert_eq(
	    value("migrate_gate_check_outcome{plan=\"shop\",check=\"errors\",outcome=\"pass\"}"),
	    0);
	cr_assert_eq(value("migrate_gate_check_outcome{plan=\"shop\",check=\"latency\","
	                   "outcome=\"inconclusive\"}"),
	             1);
	cr_assert_float_eq(value("migrate_gate_check_value{plan=\"shop\",check=\"errors\"}"), 0.05,
	                   1e-12);
	/* no data: no value, rather than a made-up 0 */
	cr_assert_null(line("migrate_gate_check_value{plan=\"shop\",check=\"latency\"}"), "%s",
	               text);
	cr_assert_eq(
	    value("migrate_gate_check_threshold{plan=\"shop\",check=\"rate\",bound=\"min\"}"), 20);
	cr_assert_float_eq(
	    value("migrate_gate_check_threshold{plan=\"shop\",check=\"errors\",bound=\"max\"}"),
	    0.01, 1e-12);
	cr_assert_eq(
	    value("migrate_gate_check_threshold{plan=\"shop\",check=\"latency\",bound=\"min\"}"),
	    0.5);
	cr_assert_eq(
	    value("migrate_gate_check_threshold{plan=\"shop\",check=\"latency\",bound=\"max\"}"),
	    2);
	cr_assert_float_eq(value("migrate_autopilot_last_tick_timestamp_seconds{plan=\"shop\"}"),
	                   (NOW - 100) / 1000.0, 1e-3);

	/* every family is introduced by its HELP and TYPE, once */
	static const char *const families[] = {"migrate_build_info",
	                                       "migrate_role",
	                                       "migrate_phase",
	                                       "migrate_step",
	                                       "migrate_steps",
	                                       "migrate_step_cluster_ratio",
	                                       "migrate_cluster_applied_ratio",
	                                       "migrate_cluster_read_back_ratio",
	                                       "migrate_bake_remaining_seconds",
	                                       "migrate_gate_outcome",
	                                       "migrate_gate_failures",
	                                       "migrate_gate_check_outcome",
	                                       "migrate_gate_check_value",
	                                       "migrate_gate_check_threshold",
	                                       "migrate_autopilot_last_tick_timestamp_seconds"};
	for (size_t i = 0; i < sizeof(families) / sizeof(*families); i++) {
		char h[128], t[128];
		snprintf(h, sizeof(h), "# HELP %s ", families[i]);
		snprintf(t, sizeof(t), "\n# TYPE %s gauge\n", families[i]);
		const char *at = strstr(text, h);
		cr_assert_not_null(at, "no HELP for %s", families[i]);
		cr_assert_null(strstr(at + 1, h), "two HELP for %s", families[i]);
		cr_assert_not_null(strstr(text, t), "no TYPE for %s", families[i]);
	}

	if (access(PROMTOOL, X_OK) != 0)
		cr_skip_test(PROMTOOL " is not installed (Debian package prometheus)");
	char out[4096];
	cr_assert_eq(promtool(out, sizeof(out)), 0, "promtool check metrics: %s\n%s", out, text);
}

Test(expose, label_values_are_escaped)
{
	mg_state st = at_step_2();
	mg_gate_check checks[] = {
	    {.name = "a\"b\\c\nd",
	     .outcome = MG_GATE_PASS,
	     .has_value = true,
	     .value = 1,
	     .op = "<=",
	     .threshold = 2},
	};
	mg_gate_eval ev = {.outcome = MG_GATE_PASS, .at_ms = NOW, .checks = checks, .nchecks = 1};
	mg_autopilot_view v = {.plan = "sh\"op\\",
	                       .st = &st,
	                       .traffic = &traffic,
	                       .last = &ev,
	                       .role = "single",
	                       .now_ms = NOW};
	cr_assert_eq(mg_autopilot_metrics_render(&text, &v, &err), 0, "%s", err.message);
	cr_assert_eq(
	    value("migrate_gate_check_value{plan=\"sh\\\"op\\\\\",check=\"a\\\"b\\\\c\\nd\"}"), 1,
	    "%s", text);
	/* nothing raw: every line is a comment or a sample of one of ours */
	for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
		cr_assert(!strncmp(p, "# ", 2) || !strncmp(p, "migrate_", 8), "a stray line: %.60s",
		          p);
		cr_assert_not_null(strchr(p, '\n'), "the text ends in a newline");
	}
	if (access(PROMTOOL, X_OK) != 0)
		cr_skip_test(PROMTOOL " is not installed (Debian package prometheus)");
	char out[4096];
	cr_assert_eq(promtool(out, sizeof(out)), 0, "promtool check metrics: %s\n%s", out, text);
}

/*
 * No autopilot (ap NULL) over a migration opened for reading, before the first
 * step: the state's families, nothing of an evaluation or a tick.
 */
Test(expose, a_null_autopilot_before_the_first_step)
{
	char plan[300];
	snprintf(plan, sizeof(plan), "%s/plan.yaml", dir);
	tu_write_file(plan, "version: 1\n"
	                    "name: shop\n"
	                    "traffic:\n"
	                    "  provider: haproxy\n"
	                    "  steps: [10, 50, 100]\n"
	                    "  bake: 1m\n"
	                    "  haproxy:\n"
	                    "    socket: /nonexistent.sock\n"
	                    "    backend: app\n"
	                    "    vm_servers: [vm1]\n"
	                    "    k8s_servers: [k8s1]\n"
	                    "state:\n"
	                    "  dir: state\n");
	mg_migration_options o = {
	    .plan_path = plan, .command = "status", .mode = MG_MIGRATION_READ};
	mg_migration *m = NULL;
	cr_assert_eq(mg_migration_open(&m, &o, &err), 0, "%s", err.message);
	int rc = mg_autopilot_metrics_text(&text, m, NULL, "single", NOW, &err);
	mg_migration_free(m);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_eq(value("migrate_step{plan=\"shop\"}"), 0);
	cr_assert_eq(value("migrate_steps{plan=\"shop\"}"), 3);
	cr_assert_eq(value("migrate_step_cluster_ratio{plan=\"shop\"}"), 0);
	cr_assert_eq(value("migrate_phase{plan=\"shop\",phase=\"idle\"}"), 1);
	cr_assert_eq(value("migrate_role{plan=\"shop\",role=\"single\"}"), 1);
	cr_assert_eq(value("migrate_bake_remaining_seconds{plan=\"shop\"}"), 0);
	cr_assert_eq(value("migrate_gate_outcome{plan=\"shop\",outcome=\"pass\"}"), 0);
	cr_assert_eq(value("migrate_gate_outcome{plan=\"shop\",outcome=\"fail\"}"), 0);
	cr_assert_eq(value("migrate_gate_outcome{plan=\"shop\",outcome=\"inconclusive\"}"), 0);
	/* nothing recorded, nothing made up */
	cr_assert_null(strstr(text, "migrate_cluster_applied_ratio{"), "%s", text);
	cr_assert_null(strstr(text, "migrate_cluster_read_back_ratio{"), "%s", text);
	cr_assert_null(strstr(text, "migrate_gate_check_"), "%s", text);
	cr_assert_null(strstr(text, "migrate_gate_failure_limit{"), "no slo: %s", text);
	cr_assert_null(strstr(text, "migrate_autopilot_last_tick_timestamp_seconds{"), "%s", text);
	/* the probes' deadline without an slo section: the floor */
	cr_assert_eq(mg_autopilot_live_ms(NULL), 30000);
}
