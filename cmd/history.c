/* migrate history: the journal, newest last. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "journal.h"
#include "store.h"

static int history_opt(mg_cli *cli, int opt, const char *arg, void *ud)
{
	long *limit = ud;
	char *end;
	if (opt != 'n')
		return 0;
	long n = strtol(arg, &end, 10);
	if (!*arg || *end || n < 1 || n > INT_MAX) {
		cli_usage_error(
		    cli, "--limit takes a whole number of records, 1 or more, not \"%s\"", arg);
		return 1;
	}
	*limit = n;
	return 0;
}

static void print_value(const char *label, json_t *v)
{
	if (!v || json_is_null(v))
		return;
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
	                            JSON_REAL_PRECISION(15));
	if (s)
		printf("    %-9s%s\n", label, s);
	free(s);
}

/* A gate record: one line per check that did not pass (all of them when all passed). */
static void print_gate(bool c, json_t *evidence)
{
	json_t *checks = json_object_get(evidence, "checks");
	const char *outcome = json_string_value(json_object_get(evidence, "outcome"));
	size_t i;
	json_t *k;
	json_array_foreach(checks, i, k)
	{
		const char *o = json_string_value(json_object_get(k, "outcome"));
		if (!o || (outcome && strcmp(outcome, "pass") != 0 && !strcmp(o, "pass")))
			continue;
		json_t *v = json_object_get(k, "value"), *t = json_object_get(k, "threshold");
		char vb[32] = "-", tb[48] = "";
		if (json_is_number(v))
			snprintf(vb, sizeof(vb), "%.4g", json_number_value(v));
		else if (json_is_string(v))
			snprintf(vb, sizeof(vb), "%s", json_string_value(v));
		const char *op = json_string_value(json_object_get(k, "op"));
		if (json_is_number(t) && op)
			snprintf(tb, sizeof(tb), "(%s %.4g)", op, json_number_value(t));
		const char *col = !strcmp(o, "pass")   ? C_GREEN
		                  : !strcmp(o, "fail") ? C_RED
		                                       : C_YELLOW;
		const char *name = json_string_value(json_object_get(k, "name"));
		const char *detail = json_string_value(json_object_get(k, "detail"));
		printf("    %-9s%-16s %s%-12s%s %s %s%s%s\n", "check", name ? name : "?",
		       cli_c(c, col), o, cli_c(c, C_RESET), vb, tb, detail ? " " : "",
		       detail ? detail : "");
	}
}

/* A string field of a record, or "-": a hand-edited journal must not crash the reader. */
static const char *field(json_t *r, const char *key)
{
	const char *s = json_string_value(json_object_get(r, key));
	return s ? s : "-";
}

int cmd_history(mg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"limit", required_argument, NULL, 'n'},
	                                     {NULL, 0, NULL, 0}};
	long limit = 0;
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "n:", history_opt, &limit, 0, &exit_code) < 0)
		return exit_code;
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_store *store = NULL;
	json_t *records = NULL;
	size_t skipped = 0;
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc) {
		rc = mg_store_open_existing(&store, cli_state_dir(cli, plan), mg_plan_name(plan),
		                            &err);
		if (rc == MG_ENOTFOUND) {
			rc = 0;
			mg_error_clear(&err);
			records = json_array();
		} else if (!rc) {
			rc = mg_journal_read(&records, &skipped, store, (size_t)limit, &err);
		}
	}
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_set_new(doc, "plan", json_string(mg_plan_name(plan)));
		json_object_set_new(doc, "records", json_incref(records));
		json_object_set_new(doc, "skipped_lines", json_integer((json_int_t)skipped));
		exit_code = cli_doc_emit(cli, doc, EXIT_DONE);
		goto out;
	}
	if (!json_array_size(records))
		printf("%s: no journal records yet\n", mg_plan_name(plan));
	size_t i;
	json_t *r;
	bool c = cli->color_out;
	json_array_foreach(records, i, r)
	{
		const char *reason = json_string_value(json_object_get(r, "reason"));
		printf("%s%s%s  %-24s %s%s %s%s\n", cli_c(c, C_DIM), field(r, "time"),
		       cli_c(c, C_RESET), field(r, "operator"), cli_c(c, C_BOLD),
		       field(r, "command"), field(r, "action"), cli_c(c, C_RESET));
		print_value("before", json_object_get(r, "before"));
		print_value("after", json_object_get(r, "after"));
		if (reason)
			printf("    %-9s%s\n", "reason", reason);
		if (!strcmp(field(r, "action"), "gate"))
			print_gate(c, json_object_get(r, "evidence"));
		if (cli->verbose)
			print_value("evidence", json_object_get(r, "evidence"));
	}
out:
	json_decref(records);
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
