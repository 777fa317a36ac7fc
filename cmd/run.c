/*
 * migrate run: the autopilot. From the current step to 100% (or --until),
 * evaluating the gates every slo.interval, advancing when they pass after
 * the bake, and applying slo.on_failure when they fail.
 *
 * It holds the plan's lock for as long as it runs, so every change it makes
 * goes through the same journal and state as a manual step. Other commands
 * reach it without the lock: `migrate rollback` sends SIGTERM (stop now,
 * weights left as they are, then the rollback goes ahead) and `migrate
 * pause` leaves a pause file, which is looked for every tick.
 */
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "units.h"
#include "util_gate.h"
#include "util_shift.h"

/* How often the loop wakes: the bound on how late a signal or a pause request is seen. */
#define TICK_MS 100

typedef struct {
	mg_cli *cli;
	mg_migration *m;
	mg_autopilot *ap;
	FILE *out;     /* stdout, or stderr when stdout holds the JSON document */
	bool tty;      /* live progress block instead of plain lines */
	int drawn;     /* lines of the live block on the terminal */
	json_t *log;   /* events, for the JSON document */
	mg_serve *srv; /* --metrics-addr, or NULL */
	bool elected;  /* --leader-elect: the metrics' role is "leader" (standbys publish theirs) */
} run_ctx;

static void block_clear(run_ctx *r)
{
	if (r->tty && r->drawn) {
		for (int i = 0; i < r->drawn; i++)
			fputs(cli_c(true, C_UP), r->out);
		fputs(cli_c(true, C_CLEAR_DOWN), r->out);
		r->drawn = 0;
	}
}

static void block_draw(run_ctx *r)
{
	if (!r->tty)
		return;
	block_clear(r);
	const mg_state *st = mg_migration_state(r->m);
	const mg_plan_traffic *t = mg_migration_traffic(r->m);
	bool paused = r->ap && mg_autopilot_paused(r->ap);
	const mg_gate_eval *last = r->ap ? mg_autopilot_last(r->ap) : NULL;
	char where[64], left[32] = "", pct[32];
	gate_step_name(where, sizeof(where), st, t);
	mg_percent_format(pct, sizeof(pct), st->has_read_back ? st->read_back_k8s_percent : 0);
	int64_t now = mg_now_ms(), until = st->step_started_ms + t->bake_ms;
	if (now < until)
		mg_duration_format(left, sizeof(left), (until - now + 999) / 1000 * 1000);
	bool c = r->cli->color_out;
	fprintf(r->out, "%s%s%s  cluster %s, VMs %g%%  %s%s%s\n", cli_c(c, C_BOLD), where,
	        cli_c(c, C_RESET), pct, 100.0 - (st->has_read_back ? st->read_back_k8s_percent : 0),
	        paused  ? "PAUSED"
	        : *left ? "bake "
	                : "baked",
	        paused ? "" : left, *left && !paused ? " left" : "");
	r->drawn = 1;
	for (size_t i = 0; last && i < last->nchecks; i++) {
		const mg_gate_check *k = &last->checks[i];
		const char *col = k->outcome == MG_GATE_PASS   ? C_GREEN
		                  : k->outcome == MG_GATE_FAIL ? C_RED
		                                               : C_YELLOW;
		char v[32] = "-", th[48] = "";
		if (k->has_value)
			snprintf(v, sizeof(v), "%.4g", k->value);
		if (k->op && strcmp(k->op, "in"))
			snprintf(th, sizeof(th), "%s %.4g", k->op, k->threshold);
		fprintf(r->out, "  %-16s %s%-12s%s %-10s %s\n", k->name, cli_c(c, col),
		        mg_gate_outcome_name(k->outcome), cli_c(c, C_RESET), v, th);
		r->drawn++;
	}
	if (!last) {
		fprintf(r->out, "  gates: first evaluation after slo.interval\n");
		r->drawn++;
	}
	fflush(r->out);
}

/* What the autopilot did, timestamped: a line of its own (above the live block). */
static void on_event(void *ud, const char *msg)
{
	run_ctx *r = ud;
	char when[40];
	mg_time_format(when, sizeof(when), mg_now_ms());
	block_clear(r);
	bool c = r->cli->color_out && !r->cli->json;
	fprintf(r->out, "%s%s%s %s\n", cli_c(c, C_DIM), when, cli_c(c, C_RESET), msg);
	fflush(r->out);
	if (r->log)
		json_array_append_new(r->log, json_pack("{s:s, s:s}", "time", when, "event", msg));
	block_draw(r);
}

static void event(run_ctx *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(run_ctx *r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	on_event(r, msg);
}

static void sleep_tick(int64_t ms)
{
	if (ms <= 0)
		return;
	if (ms > TICK_MS)
		ms = TICK_MS;
	struct timespec ts = {0, (long)ms * 1000000L};
	nanosleep(&ts, NULL); /* a signal ends it early, which is the point */
}

/* --metrics-addr: /metrics, /healthz and /readyz, bound before anything is opened or moved. */
static int metrics_start(run_ctx *r, const char *addr, mg_error *err)
{
	if (!addr)
		return 0;
	int rc = mg_serve_start(&r->srv, addr, NULL, err);
	if (!rc)
		rc = mg_autopilot_publish(r->srv, NULL, NULL, "single", false, err);
	if (!rc)
		event(r, "metrics at http://%s/metrics (probes /healthz, /readyz)",
		      mg_serve_address(r->srv));
	return rc;
}

/* After every tick: what a scrape sees. */
static void metrics_publish(run_ctx *r, bool ready)
{
	mg_error e = MG_ERROR_INIT;
	/* out of memory at worst: showing the state must never stop the migration */
	if (r->srv)
		mg_autopilot_publish(r->srv, r->m, r->ap, r->elected ? "leader" : "single", ready,
		                     &e);
	mg_error_clear(&e);
}

/* --dry-run: the steps the autopilot would take. */
static void print_dry_run(run_ctx *r, int until_idx)
{
	const mg_state *st = mg_migration_state(r->m);
	const mg_plan_traffic *t = mg_migration_traffic(r->m);
	char from[64];
	gate_step_name(from, sizeof(from), st, t);
	fprintf(r->out,
	        "dry run: from %s, the autopilot would take these steps, each after "
	        "its bake and only while the gates pass:\n",
	        from);
	for (int i = st->step_index + 1; i <= until_idx; i++)
		fprintf(r->out, "  step %d of %zu: %g%% to the cluster\n", i + 1, t->nsteps,
		        t->steps[i]);
}

/* The loop: ticks until the run ends or a signal stops it. */
static int loop(mg_run_end *end, run_ctx *r, mg_error *err)
{
	block_draw(r);
	int64_t drawn_at = 0;
	while (*end == MG_RUN_GOES_ON && !cli_signal) {
		int64_t now = mg_now_ms(), next = mg_autopilot_next_eval_ms(r->ap);
		int rc = mg_autopilot_tick(end, r->ap, now, err);
		metrics_publish(r, true);
		if (rc)
			return rc;
		if (*end != MG_RUN_GOES_ON || cli_signal)
			break;
		if (mg_autopilot_next_eval_ms(r->ap) != next)
			drawn_at = 0; /* evaluated: show it now */
		if (r->tty && now - drawn_at >= 1000) {
			block_draw(r);
			drawn_at = now;
		}
		sleep_tick(mg_autopilot_paused(r->ap)
		               ? TICK_MS
		               : mg_autopilot_next_eval_ms(r->ap) - mg_now_ms());
	}
	return 0;
}

/* The end of one leadership: "stopped", "complete", ... and the exit code it would give. */
static const char *finish(run_ctx *r, mg_run_end end, int *exit_code)
{
	block_clear(r);
	/* stopped by a signal (still going on): the weights stay where the last read-back put
	 * them */
	*exit_code = end == MG_RUN_GOES_ON                           ? 128 + (int)cli_signal
	             : end == MG_RUN_DONE                            ? EXIT_DONE
	             : end == MG_RUN_FAILED || end == MG_RUN_STOPPED ? EXIT_FAILED
	                                                             : EXIT_INCONCLUSIVE;
	char say[256];
	const char *outcome = mg_autopilot_finish(
	    r->ap, end, cli_signal == SIGINT ? "SIGINT" : "SIGTERM", *exit_code, say, sizeof(say));
	if (*say)
		event(r, "%s", say);
	return outcome;
}

/*
 * --leader-elect: wait as a standby (lib/migration/leader.c says what for),
 * lead while the plan's Lease is ours, and wait again when a leadership ends
 * without a signal: lost (taken over, or not renewed in time: nothing moves
 * after that), or the migration has nothing to do for now (complete, rolled
 * back, paused, at --until). A signal hands the Lease over and ends it. On an
 * error, r->m and r->ap are left for the caller's way out.
 */
static int run_elected(run_ctx *r, const char *until, double until_pct, bool allow_skew,
                       const char **outcome, int *exit_code, mg_error *err)
{
	mg_cli *cli = r->cli;
	mg_standby *sb = NULL;
	r->elected = true;
	mg_standby_options so = {.plan_path = cli->plan_path,
	                         .serve = r->srv,
	                         .state_dir = cli->state_dir,
	                         .until_pct = until_pct,
	                         .until_text = until,
	                         .cancel = &cli_signal,
	                         .event = on_event,
	                         .ud = r};
	int rc = mg_standby_new(&sb, &so, err);
	if (!rc) {
		cli_print_diags(cli, err); /* the plan's warnings, once */
		mg_error_clear(err);
	}
	*exit_code = 128 + SIGTERM;
	while (!rc && !cli_signal) {
		bool go;
		rc = mg_standby_wait(&go, sb, err);
		if (rc || !go)
			break;
		mg_migration_options mo = {.plan_path = cli->plan_path,
		                           .state_dir = cli->state_dir,
		                           .command = "run",
		                           .mode = MG_MIGRATION_SHIFT,
		                           .needs = MG_NEED_SLO,
		                           .elected = true};
		rc = mg_migration_open(&r->m, &mo, err);
		if (rc == MG_ELOCKED) { /* another standby was quicker */
			mg_error_clear(err);
			rc = 0;
			continue;
		}
		mg_error_clear(err); /* the plan's warnings were said when the standby began */
		if (rc)
			break;
		mg_error tmp = MG_ERROR_INIT;
		mg_standby_leave(sb, &tmp);
		mg_error_clear(&tmp);
		rc = mg_migration_journal_takeover(r->m, sb, err);
		bool released;
		const char *from = mg_standby_last_leader(sb, &released);
		if (!rc)
			event(r, "leading plan \"%s\"%s%s%s", mg_plan_name(mg_migration_plan(r->m)),
			      *from ? (released ? " (handed over by " : " (took over from ") : "",
			      from, *from ? ")" : "");
		int until_idx;
		const char *done = NULL;
		if (!rc)
			rc = mg_autopilot_prepare(&until_idx, &done, r->m, until_pct, until,
			                          allow_skew, &cli_signal, err);
		mg_run_end end = MG_RUN_GOES_ON;
		if (!rc && !done) {
			mg_autopilot_options ao = {
			    .until = until_idx, .event = on_event, .ud = r, .elected = true};
			rc = mg_autopilot_new(&r->ap, r->m, &ao, err);
			if (!rc)
				rc = mg_autopilot_start(&end, r->ap, err);
			if (!rc)
				rc = loop(&end, r, err);
		}
		if (rc && mg_migration_leadership_lost(r->m)) {
			block_clear(r);
			event(r, "no longer the leader: %s; moving nothing, waiting as a standby",
			      err->message);
			mg_error_clear(err);
			rc = 0;
			if (r->ap)
				mg_shift_outcome_clear(mg_autopilot_moved(r->ap));
		} else if (rc) {
			break;
		} else if (r->ap) {
			*outcome = finish(r, end, exit_code);
			if (end == MG_RUN_GOES_ON &&
			    mg_migration_journal_handover(
			        r->m, cli_signal == SIGINT ? "SIGINT" : "SIGTERM", &tmp) == 0)
				event(r,
				      "handed the plan over: the Lease is released for a standby");
			mg_error_clear(&tmp);
		}
		mg_autopilot_free(r->ap);
		r->ap = NULL;
		mg_migration_free(r->m); /* releases the Lease unless it was lost */
		r->m = NULL;
	}
	if (!rc && cli_signal)
		*exit_code = 128 + (int)cli_signal;
	mg_standby_free(sb);
	return rc;
}

int cmd_run(mg_cli *cli, int argc, char **argv)
{
	struct {
		const char *until;
		bool allow_skew, leader_elect;
		const char *metrics_addr;
	} o = {0};
	const cli_opt opts[] = {CLI_STRING("until", &o.until),
	                        CLI_FLAG("allow-skew", &o.allow_skew),
	                        CLI_FLAG("leader-elect", &o.leader_elect),
	                        CLI_STRING("metrics-addr", &o.metrics_addr),
	                        {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	double until_pct = 100;
	if (o.until && shift_parse_percent(cli, "--until", o.until, &until_pct))
		return EXIT_USAGE;
	mg_error err = MG_ERROR_INIT;
	if (o.metrics_addr && mg_serve_check_addr(o.metrics_addr, &err)) {
		char why[sizeof(err.message)];
		memcpy(why, err.message, sizeof(why));
		mg_error_set(&err, err.code, "--metrics-addr %s", why);
		return cli_fail(cli, &err);
	}

	run_ctx r = {.cli = cli, .out = cli->json ? stderr : stdout};
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	const char *outcome = "stopped";
	mg_run_end end = MG_RUN_GOES_ON;
	cli_signal = 0;
	if (cli_signals_catch()) {
		mg_error_set(&err, MG_ERROR, "cannot install signal handlers");
		return cli_fail(cli, &err);
	}
	int rc = metrics_start(&r, o.metrics_addr, &err);
	if (!rc && o.leader_elect && !cli->dry_run) {
		r.tty = !cli->json && isatty(STDOUT_FILENO);
		r.log = doc ? json_array() : NULL;
		rc = run_elected(&r, o.until, until_pct, o.allow_skew, &outcome, &exit_code, &err);
		if (rc)
			goto fail;
		goto done;
	}
	if (!rc)
		rc = shift_open(&r.m, cli, "run", MG_MIGRATION_SHIFT, MG_NEED_SLO, &err);
	if (rc)
		goto fail;
	metrics_publish(&r, false);
	r.tty = !cli->json && isatty(STDOUT_FILENO) && !cli->dry_run;
	r.log = doc ? json_array() : NULL;
	const mg_state *st = mg_migration_state(r.m);
	const mg_plan_traffic *t = mg_migration_traffic(r.m);

	int until_idx;
	const char *done = NULL;
	rc = mg_autopilot_prepare(&until_idx, &done, r.m, until_pct, o.until, o.allow_skew,
	                          &cli_signal, &err);
	if (rc)
		goto fail;
	if (done) {
		outcome = done;
		event(&r, "already at step %d of %zu; nothing to do", st->step_index + 1,
		      t->nsteps);
		goto done;
	}
	if (cli->dry_run) {
		print_dry_run(&r, until_idx);
		outcome = "dry-run";
		goto done;
	}
	mg_autopilot_options ao = {.until = until_idx, .event = on_event, .ud = &r};
	rc = mg_autopilot_new(&r.ap, r.m, &ao, &err);
	if (!rc)
		rc = mg_autopilot_start(&end, r.ap, &err);
	metrics_publish(&r, true);
	if (!rc)
		rc = loop(&end, &r, &err);
	if (rc)
		goto fail;
	block_clear(&r);
	r.tty = false; /* the closing lines stand alone */
	outcome = finish(&r, end, &exit_code);
done:
	metrics_publish(&r, false); /* the end, for a scrape that races the exit */
	mg_serve_free(r.srv);
	if (doc && !r.m) { /* --leader-elect: each leadership was freed as it ended */
		json_object_set_new(doc, "outcome", json_string(outcome));
		json_object_set_new(doc, "events", r.log ? json_incref(r.log) : json_array());
	} else if (doc) {
		json_object_update_new(doc, mg_autopilot_to_json(r.m, r.ap, outcome));
		json_object_set_new(doc, "events", r.log ? json_incref(r.log) : json_array());
	}
	mg_autopilot_free(r.ap);
	json_decref(r.log);
	mg_migration_free(r.m);
	mg_error_clear(&err);
	return doc ? cli_doc_emit(cli, doc, exit_code) : exit_code;
fail:
	block_clear(&r);
	mg_shift_outcome moved = {0};
	if (r.ap) {
		mg_autopilot_journal_end(r.ap, "failed", cli_exit_code(rc), err.message);
		moved = *mg_autopilot_moved(r.ap);
		*mg_autopilot_moved(r.ap) = (mg_shift_outcome){0};
	}
	mg_autopilot_free(r.ap);
	mg_serve_free(r.srv);
	json_decref(r.log);
	return shift_finish(cli, r.m, &moved, doc, &err, rc);
}
