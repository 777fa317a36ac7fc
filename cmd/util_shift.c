#include "util_shift.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"
#include "util_gate.h"

#include <time.h>

/* How long a rollback waits for a stopped autopilot to let go of the lock. */
#define PREEMPT_WAIT_MS 10000

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
		/* change nothing: not even create the state directory */
		rc = mg_store_open_existing(&c->store, dir, name, err);
		if (rc == MG_ENOTFOUND) {
			mg_error_clear(err);
			mg_state_init(&c->st, name);
			rc = 0;
		} else if (!rc) {
			rc = mg_state_load(&c->st, c->store, err);
		}
	} else {
		rc = mg_store_open(&c->store, dir, name, err);
		if (!rc)
			rc = preempt ? mg_store_lock_preempt(c->store, command, "run",
			                                     PREEMPT_WAIT_MS, err)
			             : mg_store_lock(c->store, command, err);
		if (!rc)
			rc = mg_state_load(&c->st, c->store, err);
	}
	if (!rc)
		rc = mg_traffic_open(&c->t, c->traffic, err);
	if (!rc && !cli->dry_run) {
		bool done;
		rc =
		    mg_shift_reconcile(&done, &c->reconciled, c->store, &c->st, c->t, command, err);
	}
	return rc;
}

void shift_close(shift_ctx *c)
{
	mg_traffic_free(c->t);
	mg_store_free(c->store); /* releases the lock */
	mg_plan_free(c->plan);
	memset(c, 0, sizeof(*c));
}

int shift_finish(mg_cli *cli, shift_ctx *c, mg_traffic_state *rb, json_t *doc, mg_error *err,
                 int rc)
{
	int exit_code = EXIT_DONE;
	mg_traffic_state_clear(rb);
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
