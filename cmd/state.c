/* migrate state push | pull: the plan's state between a local directory and the cluster. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "migration.h"

/* What was (or would be) copied, in words: "state.json (revision 3), 12 journal records, ..." */
static void say_counts(char *buf, size_t size, const mg_state_copy *c, bool state)
{
	int n = 0;
	if (state)
		n = snprintf(buf, size, "state.json (revision %llu), ",
		             (unsigned long long)c->revision);
	if (n < 0 || (size_t)n >= size)
		n = 0;
	snprintf(buf + n, size - (size_t)n, "%zu journal record%s, %zu manifest record%s%s",
	         c->records, c->records == 1 ? "" : "s", c->manifests, c->manifests == 1 ? "" : "s",
	         c->fleet ? ", fleet.json" : "");
}

static json_t *copy_json(const mg_state_copy *c, const char *plan, bool push, bool state)
{
	json_t *doc = json_pack("{s:s, s:s, s:s, s:b, s:o, s:I, s:I, s:I, s:b}", "plan", plan,
	                        "from", c->from, "to", c->to, "written", c->written, "revision",
	                        state ? json_integer((json_int_t)c->revision) : json_null(),
	                        "journal_records", (json_int_t)c->records, "journal_lines_skipped",
	                        (json_int_t)c->skipped, "manifests", (json_int_t)c->manifests,
	                        "fleet", c->fleet);
	if (doc && push)
		json_object_set_new(doc, "cluster_before",
		                    c->had_state || c->had_records || c->had_fleet
		                        ? json_pack("{s:o, s:I, s:b}", "revision",
		                                    c->had_state
		                                        ? json_integer((json_int_t)c->had_revision)
		                                        : json_null(),
		                                    "journal_records", (json_int_t)c->had_records,
		                                    "fleet", c->had_fleet)
		                        : json_null());
	return doc;
}

static int state_push(mg_cli *cli, int argc, char **argv)
{
	bool force = false;
	const cli_opt opts[] = {CLI_FLAG("force", &force), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_state_copy c;
	mg_push_options o = {.state_dir = cli->state_dir, .force = force, .dry_run = cli->dry_run};
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc)
		rc = mg_migration_push(&c, plan, &o, &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
	} else if (cli->json) {
		exit_code = cli_doc_emit(cli, copy_json(&c, mg_plan_name(plan), true, true), 0);
	} else {
		char counts[256];
		say_counts(counts, sizeof(counts), &c, true);
		printf("%s: %s %s to %s: %s", mg_plan_name(plan),
		       c.written ? "pushed" : "would push", c.from, c.to, counts);
		if (c.had_state || c.had_records)
			printf(
			    "; replacing the cluster's state.json at revision %llu, after its %zu "
			    "journal record%s",
			    (unsigned long long)c.had_revision, c.had_records,
			    c.had_records == 1 ? "" : "s");
		printf("%s\n", c.written ? "" : " (dry run: nothing written)");
		if (c.skipped)
			fprintf(stderr, "warning: %zu torn or corrupt journal line%s not copied\n",
			        c.skipped, c.skipped == 1 ? "" : "s");
	}
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}

static int state_pull(mg_cli *cli, int argc, char **argv)
{
	bool force = false;
	const cli_opt opts[] = {CLI_FLAG("force", &force), {0}};
	int exit_code = EXIT_DONE;
	int i = cli_parse(cli, argc, argv, opts, 1, &exit_code);
	if (i < 0)
		return exit_code;
	if (i >= argc)
		return cli_usage_error(cli, "state pull needs the directory to copy into (DIR)");
	if (cli->dry_run)
		return cli_usage_error(cli,
		                       "state pull writes only into DIR: --dry-run has nothing "
		                       "to hold back");
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_state_copy c;
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc)
		rc = mg_migration_pull(&c, plan, argv[i], force, &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
	} else if (cli->json) {
		exit_code =
		    cli_doc_emit(cli, copy_json(&c, mg_plan_name(plan), false, c.had_state), 0);
	} else {
		char counts[256];
		say_counts(counts, sizeof(counts), &c, c.had_state);
		printf("%s: pulled %s into %s: %s%s\n", mg_plan_name(plan), c.from, c.to,
		       c.had_state ? "" : "no state.json, ", counts);
		if (c.skipped)
			fprintf(stderr, "warning: %zu torn or corrupt journal line%s not copied\n",
			        c.skipped, c.skipped == 1 ? "" : "s");
	}
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}

int cmd_state(mg_cli *cli, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	if (sub && (!strcmp(sub, "-h") || !strcmp(sub, "--help"))) {
		cli_print_command_help(stdout, mg_command_find("state"));
		return EXIT_DONE;
	}
	/* the envelope and the messages name the subcommand: "state push" */
	if (sub && !strcmp(sub, "push")) {
		cli->command = "state push";
		return state_push(cli, argc - 1, argv + 1);
	}
	if (sub && !strcmp(sub, "pull")) {
		cli->command = "state pull";
		return state_pull(cli, argc - 1, argv + 1);
	}
	if (!sub || sub[0] == '-')
		return cli_usage_error(cli, "state needs a subcommand: push or pull");
	return cli_usage_error(cli, "'%s' is not a state subcommand: push or pull", sub);
}
