/* migrate history: the journal, newest last. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "journal.h"
#include "kubestore.h"
#include "store.h"

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
		char vb[32] = "-", tb[160] = "";
		if (json_is_number(v))
			snprintf(vb, sizeof(vb), "%.4g", json_number_value(v));
		else if (json_is_string(v))
			snprintf(vb, sizeof(vb), "%s", json_string_value(v));
		const char *op = json_string_value(json_object_get(k, "op"));
		if (json_is_number(t) && op)
			snprintf(tb, sizeof(tb), "(%s %.4g)", op, json_number_value(t));
		/* judged on counts: the counts and the interval, to check the verdict by hand */
		json_t *jd = json_object_get(k, "judge");
		json_t *cn = json_object_get(jd, "counts");
		json_t *iv = json_object_get(jd, "interval");
		if (json_is_object(cn)) {
			size_t l = strlen(tb);
			json_t *ev = json_object_get(cn, "errors");
			if (!ev)
				ev = json_object_get(cn, "slow");
			char vm[64] = "";
			if (json_is_number(json_object_get(cn, "vm_requests")))
				snprintf(vm, sizeof(vm), " vs VMs %.0f/%.0f",
				         json_number_value(json_object_get(cn, "vm_errors")),
				         json_number_value(json_object_get(cn, "vm_requests")));
			snprintf(tb + l, sizeof(tb) - l, " [%.0f/%.0f%s, %.0f%%: %.2g..%s]",
			         json_number_value(ev),
			         json_number_value(json_object_get(cn, "requests")), vm,
			         json_number_value(json_object_get(jd, "confidence")) * 100,
			         json_number_value(json_array_get(iv, 0)),
			         json_is_number(json_array_get(iv, 1)) ? "" : "+Inf");
			if (json_is_number(json_array_get(iv, 1))) {
				l = strlen(tb) - 1; /* before the ']' */
				snprintf(tb + l, sizeof(tb) - l, "%.2g]",
				         json_number_value(json_array_get(iv, 1)));
			}
		}
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

typedef struct {
	mg_cli *cli;
	size_t n;
} printer;

/* One record as text, printed as it is read: nothing is held. */
static int print_record(json_t *r, void *ud, mg_error *err)
{
	(void)err;
	printer *p = ud;
	bool c = p->cli->color_out;
	const char *reason = json_string_value(json_object_get(r, "reason"));
	p->n++;
	printf("%s%s%s  %-24s %s%s %s%s\n", cli_c(c, C_DIM), field(r, "time"), cli_c(c, C_RESET),
	       field(r, "operator"), cli_c(c, C_BOLD), field(r, "command"), field(r, "action"),
	       cli_c(c, C_RESET));
	print_value("before", json_object_get(r, "before"));
	print_value("after", json_object_get(r, "after"));
	if (reason)
		printf("    %-9s%s\n", "reason", reason);
	if (!strcmp(field(r, "action"), "gate"))
		print_gate(c, json_object_get(r, "evidence"));
	if (p->cli->verbose)
		print_value("evidence", json_object_get(r, "evidence"));
	return 0;
}

/* One record as an element of the JSON envelope's "records" array, as it is read. */
static int emit_record(json_t *r, void *ud, mg_error *err)
{
	printer *p = ud;
	char *s = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	if (!s)
		return mg_error_oom(err);
	fputs(p->n++ ? ",\n    " : "\n    ", stdout);
	/* nested two levels into the envelope */
	for (const char *q = s; *q; q++) {
		fputc(*q, stdout);
		if (*q == '\n')
			fputs("    ", stdout);
	}
	free(s);
	return 0;
}

int cmd_history(mg_cli *cli, int argc, char **argv)
{
	struct {
		const char *limit, *since;
	} o = {0};
	const cli_opt opts[] = {
	    CLI_STRING_S("limit", 'n', &o.limit), CLI_STRING("since", &o.since), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	char *end;
	long limit = o.limit ? strtol(o.limit, &end, 10) : 0;
	if (o.limit && (!*o.limit || *end || limit < 1 || limit > INT_MAX))
		return cli_usage_error(
		    cli, "--limit takes a whole number of records, 1 or more, not \"%s\"", o.limit);
	mg_journal_query q = {.limit = (size_t)limit};
	if (o.since && cli_parse_time(cli, "--since", o.since, &q.since_ms))
		return EXIT_USAGE;
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_store *store = NULL;
	size_t skipped = 0;
	printer p = {.cli = cli};
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc) {
		rc = mg_kube_store_open_plan(&store, plan, cli_state_dir(cli, plan), true, NULL, 0,
		                             &err);
		if (rc == MG_ENOTFOUND) {
			rc = 0;
			mg_error_clear(&err);
		}
	}
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}
	if (cli->json) {
		/*
		 * Streamed, so that a journal of any length costs one record of memory:
		 * the envelope's "ok" and "exit_code" come last, after the records
		 * they vouch for.
		 */
		json_t *name = json_string(mg_plan_name(plan));
		char *pn = json_dumps(name, JSON_ENCODE_ANY);
		json_decref(name);
		printf("{\n  \"command\": \"history\",\n  \"plan\": %s,\n  \"records\": [",
		       pn ? pn : "null");
		free(pn);
		if (store)
			rc = mg_journal_each(store, &q, emit_record, &p, &skipped, &err);
		printf("%s],\n  \"skipped_lines\": %zu,\n", p.n ? "\n  " : "", skipped);
		if (rc) {
			exit_code = cli_exit_code(rc);
			json_t *e = json_pack("{s:s, s:s}", "kind", mg_error_name(rc), "message",
			                      err.message);
			char *es = json_dumps(e, JSON_PRESERVE_ORDER);
			json_decref(e);
			printf("  \"error\": %s,\n", es ? es : "null");
			free(es);
			fprintf(stderr, "%serror:%s %s\n", cli_c(cli->color_err, C_RED),
			        cli_c(cli->color_err, C_RESET), err.message);
		}
		printf("  \"ok\": %s,\n  \"exit_code\": %d\n}\n", exit_code ? "false" : "true",
		       exit_code);
		fflush(stdout);
		goto out;
	}
	if (store)
		rc = mg_journal_each(store, &q, print_record, &p, &skipped, &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}
	if (!p.n)
		printf("%s: no journal records %s\n", mg_plan_name(plan),
		       o.since ? "since then" : "yet");
out:
	mg_store_free(store);
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
