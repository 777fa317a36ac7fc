#include "util_shift.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "units.h"
#include "util_gate.h"

#include <time.h>

/* How long a rollback waits for a stopped autopilot to let go of the lock. */
#define PREEMPT_WAIT_MS 10000

/* "phase shifting, step 1 (10% read back), revision 3" */
static void describe(char *buf, size_t size, const mg_state *st)
{
	char step[32] = "no step";
	if (st->step_index >= 0)
		snprintf(step, sizeof(step), "step %d", st->step_index + 1);
	snprintf(buf, size, "phase %s, %s (%.4g%% read back), revision %llu",
	         mg_phase_name(st->phase), step, st->has_read_back ? st->read_back_k8s_percent : 0,
	         (unsigned long long)st->revision);
}

/* The state a command started from is not the one it found once it held the lock. */
static int state_moved(const char *command, const mg_state *seen, const mg_state *now,
                       mg_error *err)
{
	char was[160], is[160], when[40];
	describe(was, sizeof(was), seen);
	describe(is, sizeof(is), now);
	mg_time_format(when, sizeof(when), now->updated_ms);
	return mg_error_set(err, MG_ECONFLICT,
	                    "the state moved while `migrate %s` waited for the lock: it started "
	                    "at %s, and another command left %s (at %s). Nothing was changed: "
	                    "check `migrate status` and run the command again if it is still "
	                    "wanted",
	                    command, was, is, when);
}

/* The balancer's driver, and an interrupted command reconciled (not with --dry-run). */
static int open_balancer(shift_ctx *c, mg_cli *cli, const char *command, mg_error *err)
{
	int rc = mg_traffic_open(&c->t, c->traffic, err);
	if (!rc && !cli->dry_run) {
		bool done;
		rc =
		    mg_shift_reconcile(&done, &c->reconciled, c->store, &c->st, c->t, command, err);
	}
	return rc;
}

/* --dry-run: change nothing, not even create the state directory. */
static int open_dry_run(shift_ctx *c, const char *dir, const char *name, mg_error *err)
{
	int rc = mg_store_open_existing(&c->store, dir, name, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		mg_state_init(&c->st, name);
		rc = 0;
	} else if (!rc) {
		rc = mg_state_load(&c->st, c->store, err);
	}
	return rc;
}

int shift_open(shift_ctx *c, mg_cli *cli, const char *command, bool preempt, unsigned needs,
               mg_error *err)
{
	memset(c, 0, sizeof(*c));
	int rc = cli_load_plan(cli, &c->plan, MG_NEED_TRAFFIC | needs, err);
	if (rc)
		return rc;
	c->traffic = mg_plan_traffic_section(c->plan);
	const char *dir = cli_state_dir(cli, c->plan);
	const char *name = mg_plan_name(c->plan);
	if (cli->dry_run) {
		rc = open_dry_run(c, dir, name, err);
	} else {
		rc = mg_store_open(&c->store, dir, name, err);
		/* what the operator saw when they started the command: a step decided on it */
		mg_state seen;
		mg_error ignored = MG_ERROR_INIT;
		bool have_seen = !rc && mg_state_load(&seen, c->store, &ignored) == 0;
		mg_error_clear(&ignored);
		if (!rc)
			rc = preempt ? mg_store_lock_preempt(c->store, command, "run",
			                                     PREEMPT_WAIT_MS, err)
			             : mg_store_lock(c->store, command, err);
		if (!rc)
			rc = mg_state_load(&c->st, c->store, err);
		if (!rc && have_seen && seen.revision != c->st.revision)
			rc = state_moved(command, &seen, &c->st, err);
	}
	return rc ? rc : open_balancer(c, cli, command, err);
}

int shift_open_rollback(shift_ctx *c, mg_cli *cli, mg_error *err)
{
	memset(c, 0, sizeof(*c));
	int rc = cli_load_plan(cli, &c->plan, MG_NEED_TRAFFIC, err);
	if (rc)
		return rc;
	c->traffic = mg_plan_traffic_section(c->plan);
	const char *dir = cli_state_dir(cli, c->plan);
	const char *name = mg_plan_name(c->plan);
	if (cli->dry_run) {
		rc = open_dry_run(c, dir, name, err);
		return rc ? rc : open_balancer(c, cli, "rollback", err);
	}
	/* no state-moved check: whatever moved, the way out is the same */
	rc = mg_shift_open_rollback(&c->store, &c->st, &c->site, dir, name, "rollback", "run",
	                            PREEMPT_WAIT_MS, err);
	if (!rc)
		rc = mg_traffic_open(&c->t, c->traffic, err);
	if (rc || c->site.unlocked || c->site.state_unread)
		return rc;
	/* an interrupted command is recorded when it can be; the rollback goes on anyway */
	bool done;
	mg_error why = MG_ERROR_INIT;
	if (mg_shift_reconcile(&done, &c->reconciled, c->store, &c->st, c->t, "rollback", &why))
		mg_log(MG_LOG_WARN, "%s; the rollback goes on", why.message);
	mg_error_clear(&why);
	return 0;
}

void shift_close(shift_ctx *c)
{
	mg_traffic_free(c->t);
	mg_store_free(c->store); /* releases the lock */
	mg_plan_free(c->plan);
	memset(c, 0, sizeof(*c));
}

int shift_finish(mg_cli *cli, shift_ctx *c, mg_shift_outcome *out, json_t *doc, mg_error *err,
                 int rc)
{
	int exit_code = EXIT_DONE;
	if (rc == MG_EUNRECORDED && out) {
		if (doc) {
			if (!json_object_get(doc, "read_back"))
				json_object_set_new(doc, "read_back",
				                    mg_traffic_state_to_json(&out->read_back));
			json_object_set_new(doc, "record_error", json_string(out->record_error));
		}
		/* the operator's only copy: one line, so it can be cut and pasted whole */
		char *line = out->record
		                 ? json_dumps(out->record, JSON_COMPACT | JSON_PRESERVE_ORDER |
		                                               JSON_REAL_PRECISION(15))
		                 : NULL;
		if (line) {
			fprintf(stderr,
			        "the record of this move, to keep (one JSON line, as the journal "
			        "writes it):\n"
			        "%s\n",
			        line);
			free(line);
		}
	}
	mg_shift_outcome_clear(out);
	if (rc)
		exit_code = cli_fail_doc(cli, err, doc);
	shift_close(c);
	mg_error_clear(err);
	return !rc && doc ? cli_doc_emit(cli, doc, EXIT_DONE) : exit_code;
}

int shift_step_index(const mg_plan_traffic *t, double pct)
{
	for (size_t i = 0; i < t->nsteps; i++)
		if (fabs(t->steps[i] - pct) < 1e-9)
			return (int)i;
	return -1;
}

int shift_parse_percent(mg_cli *cli, const char *option, const char *arg, double *out)
{
	char why[256];
	if (mg_percent_parse(out, arg, why, sizeof(why))) {
		cli_usage_error(cli, "%s: %s", option, why);
		return -1;
	}
	return 0;
}

void shift_print_servers(const mg_cli *cli, const mg_traffic_state *st)
{
	bool c = cli->color_out;
	for (size_t i = 0; i < st->nservers; i++) {
		const mg_traffic_server *s = &st->servers[i];
		bool bad = s->health == MG_HEALTH_DOWN || s->health == MG_HEALTH_MAINT;
		printf("    %-28s %-8s weight %-8g %s%s%s\n", s->name, s->k8s ? "cluster" : "vm",
		       s->weight, bad ? cli_c(c, C_YELLOW) : "",
		       *s->detail ? s->detail : mg_health_name(s->health),
		       bad ? cli_c(c, C_RESET) : "");
	}
}

int shift_print_dry_run(shift_ctx *c, double target, json_t *doc, mg_error *err)
{
	json_t *calls = NULL;
	int rc = mg_traffic_describe(&calls, c->t, target, err);
	if (rc)
		return rc;
	if (doc) {
		json_object_set_new(doc, "dry_run", json_true());
		json_object_set_new(doc, "calls", calls);
		return 0;
	}
	char *s = json_dumps(calls, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	printf("dry run: %s would be sent this, and nothing was changed:\n%s\n",
	       mg_traffic_name(c->t), s ? s : "");
	free(s);
	json_decref(calls);
	return 0;
}

int shift_wait_paused(mg_state *st, mg_store *store, bool paused, int64_t wait_ms, mg_error *err)
{
	int64_t deadline = mg_now_ms() + wait_ms;
	for (;;) {
		/* the autopilot saves atomically, so a read without the lock sees whole states */
		int rc = mg_state_load(st, store, err);
		if (rc)
			return rc;
		if ((st->phase == MG_PHASE_PAUSED) == paused)
			return 0;
		bool held;
		mg_lock_holder h;
		rc = mg_store_lock_probe(&held, &h, store, err);
		if (rc)
			return rc;
		if (!held)
			return mg_error_set(err, MG_ERROR,
			                    "the autopilot ended before it confirmed; see `migrate "
			                    "status` and `migrate history`");
		if (mg_now_ms() >= deadline)
			return mg_error_set(
			    err, MG_ERROR, "the autopilot (pid %ld) did not confirm within %lld ms",
			    h.pid, (long long)wait_ms);
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int shift_reason_opt(mg_cli *cli, int opt, const char *arg, void *ud)
{
	(void)cli;
	if (opt == 'r')
		*(const char **)ud = arg;
	return 0;
}

int shift_hold_report(mg_cli *cli, json_t *doc, const mg_plan *plan, const mg_state *st,
                      const char *how, bool changed, long pid, const char *hint)
{
	if (doc) {
		json_object_set_new(doc, "plan", json_string(mg_plan_name(plan)));
		json_object_set_new(doc, "changed", json_boolean(changed));
		json_object_set_new(doc, "autopilot", pid ? json_integer(pid) : json_null());
		json_object_set_new(doc, "phase", json_string(mg_phase_name(st->phase)));
		json_object_set_new(doc, "message", json_string(how));
		return cli_doc_emit(cli, doc, EXIT_DONE);
	}
	char where[64], who[32] = "";
	gate_step_name(where, sizeof(where), st, mg_plan_traffic_section(plan));
	if (pid)
		snprintf(who, sizeof(who), " (pid %ld)", pid);
	printf("%s: %s%s at %s%s%s\n", mg_plan_name(plan), how, who, where, hint ? "; " : "",
	       hint ? hint : "");
	return EXIT_DONE;
}

long shift_autopilot_pid(mg_store *store)
{
	bool held;
	mg_lock_holder h;
	mg_error probe = MG_ERROR_INIT;
	int rc = mg_store_lock_probe(&held, &h, store, &probe);
	mg_error_clear(&probe);
	return !rc && held && !strcmp(h.command, "run") ? h.pid : 0;
}
