/* migrate unlock --force --reason TEXT: take a plan's Lease from its holder and release it. */
#include <stdio.h>

#include "cmd.h"
#include "migration.h"

int cmd_unlock(mg_cli *cli, int argc, char **argv)
{
	bool force = false;
	const char *reason = NULL;
	const cli_opt opts[] = {CLI_FLAG("force", &force), CLI_STRING("reason", &reason), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	mg_unlock_result u;
	mg_unlock_options o = {.force = force, .reason = reason, .dry_run = cli->dry_run};
	int rc = cli_load_plan(cli, &plan, 0, &err);
	if (!rc)
		rc = mg_migration_unlock(&u, plan, &o, &err);
	if (rc) {
		exit_code = cli_fail(cli, &err);
		goto out;
	}
	char since[40] = "";
	if (u.holder.since_ms)
		mg_time_format(since, sizeof(since), u.holder.since_ms);
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_t *h = u.held ? json_pack("{s:s, s:I, s:s, s:s?, s:s?}", "operator",
		                               u.holder.operator_, "pid", (json_int_t)u.holder.pid,
		                               "command", u.holder.command, "since",
		                               since[0] ? since : NULL, "identity",
		                               u.identity[0] ? u.identity : NULL)
		                   : json_null();
		json_object_set_new(doc, "plan", json_string(mg_plan_name(plan)));
		json_object_set_new(doc, "lock", json_string(u.where));
		json_object_set_new(doc, "holder", h);
		json_object_set_new(doc, "taken", json_boolean(u.taken));
		exit_code = cli_doc_emit(cli, doc, EXIT_DONE);
		goto out;
	}
	if (!u.held) {
		printf("%s: nobody holds the lock (%s); nothing to do\n", mg_plan_name(plan),
		       u.where);
		goto out;
	}
	const char *done = u.taken ? " and released it; journalled with the reason"
	                           : " (dry run: nothing written)";
	if (!u.holder.operator_[0]) /* a holder identity migrate did not write */
		printf("%s: %s the lock (%s) from \"%s\"%s\n", mg_plan_name(plan),
		       u.taken ? "took" : "would take", u.where,
		       u.identity[0] ? u.identity : "(a holder migrate did not write)", done);
	else
		printf("%s: %s the lock (%s) from %s (pid %ld, running \"%s\"%s%s)%s\n",
		       mg_plan_name(plan), u.taken ? "took" : "would take", u.where,
		       u.holder.operator_, u.holder.pid, u.holder.command,
		       since[0] ? " since " : "", since, done);
out:
	mg_plan_free(plan);
	mg_error_clear(&err);
	return exit_code;
}
