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

#include "journal.h"
#include "units.h"
#include "util_gate.h"
#include "util_shift.h"

/* How often the loop wakes: the bound on how late a signal or a pause request is seen. */
#define TICK_MS 100

enum { OPT_UNTIL = 3000 };

static mg_cancel stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

typedef struct {
	mg_cli *cli;
	shift_ctx *c;
	const mg_plan_slo *slo;
	mg_metrics *m;
	FILE *out;   /* stdout, or stderr when stdout holds the JSON document */
	bool tty;    /* live progress block instead of plain lines */
	int drawn;   /* lines of the live block on the terminal */
	json_t *log; /* events, for the JSON document */
	mg_gate_eval last;
	bool has_last;
	int64_t next_eval_ms;
	int64_t inconclusive_since_ms; /* 0: the last evaluation was conclusive */
	bool data_seen;                /* an evaluation at this step had data to judge */
	bool paused;
	json_t *decided;        /* the evaluation that made the last move, for the JSON document */
	mg_shift_outcome moved; /* a move the state could not record: reported on the way out */
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
	const mg_state *st = &r->c->st;
	const mg_plan_traffic *t = r->c->traffic;
	char where[64], left[32] = "", pct[32];
	gate_step_name(where, sizeof(where), st, t);
	mg_percent_format(pct, sizeof(pct), st->has_read_back ? st->read_back_k8s_percent : 0);
	int64_t now = mg_now_ms(), until = st->step_started_ms + t->bake_ms;
	if (now < until)
		mg_duration_format(left, sizeof(left), (until - now + 999) / 1000 * 1000);
	bool c = r->cli->color_out;
	fprintf(r->out, "%s%s%s  cluster %s, VMs %g%%  %s%s%s\n", cli_c(c, C_BOLD), where,
	        cli_c(c, C_RESET), pct, 100.0 - (st->has_read_back ? st->read_back_k8s_percent : 0),
	        r->paused ? "PAUSED"
	        : *left   ? "bake "
	                  : "baked",
	        r->paused ? "" : left, *left && !r->paused ? " left" : "");
	r->drawn = 1;
	if (r->has_last) {
		for (size_t i = 0; i < r->last.nchecks; i++) {
			const mg_gate_check *k = &r->last.checks[i];
			const char *col = k->outcome == MG_GATE_PASS   ? C_GREEN
			                  : k->outcome == MG_GATE_FAIL ? C_RED
			                                               : C_YELLOW;
			char v[32], th[48] = "";
			if (k->has_value)
				snprintf(v, sizeof(v), "%.4g", k->value);
			else
				snprintf(v, sizeof(v), "-");
			if (k->op && strcmp(k->op, "in"))
				snprintf(th, sizeof(th), "%s %.4g", k->op, k->threshold);
			fprintf(r->out, "  %-16s %s%-12s%s %-10s %s\n", k->name, cli_c(c, col),
			        mg_gate_outcome_name(k->outcome), cli_c(c, C_RESET), v, th);
			r->drawn++;
		}
	} else {
		fprintf(r->out, "  gates: first evaluation after slo.interval\n");
		r->drawn++;
	}
	fflush(r->out);
}

static void event(run_ctx *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(run_ctx *r, const char *fmt, ...)
{
	char msg[1024], when[40];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int64_t now = mg_now_ms();
	mg_time_format(when, sizeof(when), now);
	block_clear(r);
	fprintf(r->out, "%s%s%s %s\n", cli_c(r->cli->color_out && !r->cli->json, C_DIM), when,
	        cli_c(r->cli->color_out && !r->cli->json, C_RESET), msg);
	fflush(r->out);
	if (r->log)
		json_array_append_new(r->log, json_pack("{s:s, s:s}", "time", when, "event", msg));
	block_draw(r);
}

static int journal_simple(run_ctx *r, const char *action, const char *reason, json_t *evidence,
                          mg_error *err)
{
	mg_journal_entry e = {"run", action, NULL, NULL, reason, evidence};
	int rc = mg_journal_append(r->c->store, &e, err);
	json_decref(evidence);
	return rc;
}

/*
 * The last record of a run that journalled `start`, unless a signal stopped it
 * (that is `stop`): why it ended, so the journal never leaves an autopilot that
 * seems to be still running. Best effort: the journal may be what failed, and
 * the error the command exits with says more than this record could.
 */
static void journal_end(run_ctx *r, const char *outcome, int exit_code, const char *why)
{
	mg_error tmp = MG_ERROR_INIT;
	journal_simple(r, "end", why,
	               json_pack("{s:s, s:i}", "outcome", outcome, "exit_code", exit_code), &tmp);
	mg_error_clear(&tmp);
}

/* Moves to step idx (-1: everything back on the VMs) with read-back. */
static int move(run_ctx *r, int idx, const char *reason, mg_error *err)
{
	const mg_plan_traffic *t = r->c->traffic;
	double target = idx < 0 ? 0.0 : t->steps[idx];
	mg_shift_request req = {"run", target, idx, t->nsteps, reason, false};
	/* MG_EUNRECORDED: the autopilot stops, and the way out reports the read-back (exit 5) */
	int rc = mg_shift_apply(&r->moved, r->c->store, &r->c->st, r->c->t, &req, err);
	if (rc)
		return rc;
	char a[32], b[32];
	mg_percent_format(a, sizeof(a), target);
	mg_percent_format(b, sizeof(b), r->moved.read_back.k8s_percent);
	mg_shift_outcome_clear(&r->moved);
	/* the old step's checks must not show under the new step */
	if (r->has_last) {
		json_decref(r->decided);
		r->decided = mg_gate_eval_to_json(&r->last);
	}
	mg_gate_eval_clear(&r->last);
	r->has_last = false;
	if (idx < 0)
		event(r, "rolled back: %s to the cluster (%s read back from %s)", a, b,
		      mg_traffic_name(r->c->t));
	else
		event(r, "step %d of %zu: %s to the cluster (%s read back from %s)", idx + 1,
		      t->nsteps, a, b, mg_traffic_name(r->c->t));
	r->inconclusive_since_ms = 0;
	r->data_seen = false;
	r->next_eval_ms = r->c->st.step_started_ms + r->slo->interval_ms;
	return 0;
}

/* Holds the migration at the current weights: phase paused, with why. */
static int hold(run_ctx *r, const char *why, json_t *evidence, mg_error *err)
{
	mg_state *st = &r->c->st;
	st->phase = MG_PHASE_PAUSED;
	snprintf(st->pause_reason, sizeof(st->pause_reason), "%s", why);
	int rc = journal_simple(r, "pause", why, evidence, err);
	if (!rc)
		rc = mg_state_save(r->c->store, st, err);
	if (!rc)
		event(r, "paused: %s", why);
	return rc;
}

/* A pause file appeared or went away: follow it. */
static int follow_pause_request(run_ctx *r, mg_error *err)
{
	bool present;
	mg_pause_request pr;
	int rc = mg_store_pause_read(&present, &pr, r->c->store, err);
	if (rc || present == r->paused)
		return rc;
	mg_state *st = &r->c->st;
	if (present) {
		char why[400];
		snprintf(why, sizeof(why), "by %.80s%s%.160s",
		         pr.operator_[0] ? pr.operator_ : "someone", pr.reason[0] ? ": " : "",
		         pr.reason);
		rc = hold(r, why, NULL, err);
		if (!rc)
			r->paused = true;
		return rc;
	}
	st->phase = MG_PHASE_SHIFTING;
	st->pause_reason[0] = '\0';
	/* as `migrate resume` without an autopilot: whoever resumes has looked at them */
	mg_state_reset_gates(st);
	/* `migrate resume` leaves who and why; a request removed by hand says only that */
	bool noted;
	mg_pause_request note;
	rc = mg_store_resume_take(&noted, &note, r->c->store, err);
	if (rc)
		return rc;
	char why[400] = "the pause request was removed";
	if (noted)
		snprintf(why, sizeof(why), "by %.80s%s%.160s",
		         note.operator_[0] ? note.operator_ : "someone", note.reason[0] ? ": " : "",
		         note.reason);
	rc = journal_simple(r, "resume", why, NULL, err);
	if (!rc)
		rc = mg_state_save(r->c->store, st, err);
	if (rc)
		return rc;
	r->paused = false;
	r->inconclusive_since_ms = 0;
	r->next_eval_ms = mg_now_ms();
	event(r, "resumed");
	return 0;
}

typedef enum { GO_ON, DONE_OK, DONE_FAILED, DONE_INCONCLUSIVE } verdict;

/* One evaluation and what follows from it. */
static int evaluate(verdict *v, run_ctx *r, int until_idx, mg_error *err)
{
	mg_state *st = &r->c->st;
	const mg_plan_traffic *t = r->c->traffic;
	const mg_plan_slo *slo = r->slo;
	int64_t now = mg_now_ms();
	mg_gate_eval ev;
	*v = GO_ON;
	int rc = mg_gate_evaluate(&ev, r->m, slo, now, st->step_started_ms, err);
	if (rc)
		return rc;
	if (stop_signal) {
		/* a query cut short by the signal is no evidence of anything */
		mg_gate_eval_clear(&ev);
		return 0;
	}
	r->next_eval_ms = now + slo->interval_ms;
	bool changed = !r->has_last || r->last.outcome != ev.outcome;
	char sum[512], where[64];
	mg_gate_eval_summary(sum, sizeof(sum), &ev);
	gate_step_name(where, sizeof(where), st, t);
	mg_gate_eval_clear(&r->last);
	r->last = ev;
	r->has_last = true;
	const mg_gate_eval *e = &r->last;

	if (e->outcome == MG_GATE_FAIL) {
		r->inconclusive_since_ms = 0;
		st->gate_failures++;
		bool limit = st->gate_failures >= slo->failure_limit;
		const char *decision = !limit                                   ? "count"
		                       : slo->on_failure == MG_ON_FAILURE_PAUSE ? "pause"
		                                                                : "rollback";
		rc = gate_journal(r->c->store, st, "run", e, decision, err);
		if (!rc)
			rc = mg_state_save(r->c->store, st, err);
		if (rc)
			return rc;
		event(r, "gates fail at %s (%d of %d): %s", where, st->gate_failures,
		      slo->failure_limit, sum);
		if (!limit)
			return 0;
		char why[700];
		snprintf(why, sizeof(why), "gates failed %d time%s at %s: %s", st->gate_failures,
		         st->gate_failures == 1 ? "" : "s", where, sum);
		*v = DONE_FAILED;
		if (slo->on_failure == MG_ON_FAILURE_PAUSE)
			return hold(r, why, NULL, err);
		return move(r, -1, why, err);
	}
	/*
	 * Right after a step Prometheus has not scraped the new weights yet, so the
	 * first evaluations have no data: no news, not a hold worth a journal record.
	 * Only until the first data at this step, and for at most the bake or two
	 * intervals: a query that never matches anything is a hold like any other.
	 * The clock towards the inconclusive pause runs all the same.
	 */
	bool grace = now - st->step_started_ms <
	             (t->bake_ms > 2 * slo->interval_ms ? t->bake_ms : 2 * slo->interval_ms);
	bool awaiting = e->outcome == MG_GATE_INCONCLUSIVE && e->awaiting_data;
	if (!awaiting)
		r->data_seen = true;
	if (e->outcome == MG_GATE_INCONCLUSIVE) {
		if (!r->inconclusive_since_ms)
			r->inconclusive_since_ms = now;
		int64_t limit = 3 * (t->bake_ms > slo->interval_ms ? t->bake_ms : slo->interval_ms);
		if (now - r->inconclusive_since_ms >= limit) {
			char why[700], d[32];
			mg_duration_format(d, sizeof(d), now - r->inconclusive_since_ms);
			snprintf(why, sizeof(why), "gates inconclusive for %s at %s: %s", d, where,
			         sum);
			rc = gate_journal(r->c->store, st, "run", e, "pause", err);
			if (!rc)
				rc = hold(r, why, NULL, err);
			*v = DONE_INCONCLUSIVE;
			return rc;
		}
		if (awaiting && !r->data_seen && grace) {
			/* unseen, so the next evaluation is journalled whatever it shows */
			mg_gate_eval_clear(&r->last);
			r->has_last = false;
			return 0;
		}
		if (changed) {
			rc = gate_journal(r->c->store, st, "run", e, "hold", err);
			if (!rc)
				rc = mg_state_save(r->c->store, st, err);
			event(r, "gates inconclusive at %s, holding: %s", where, sum);
		}
		return rc;
	}

	/* pass */
	r->inconclusive_since_ms = 0;
	if (now - st->step_started_ms < t->bake_ms) {
		if (changed) {
			rc = gate_journal(r->c->store, st, "run", e, "bake", err);
			if (!rc)
				rc = mg_state_save(r->c->store, st, err);
			event(r, "gates pass at %s; baking", where);
		}
		return rc;
	}
	/* never step on top of a hand change: hold and let an operator decide */
	bool drift;
	double live;
	rc = mg_shift_drift(&drift, &live, st, r->c->t, err);
	if (rc)
		return rc;
	if (drift) {
		char why[256];
		snprintf(why, sizeof(why),
		         "the balancer sends %.4g%% to the cluster, not the %.4g%% migrate set: "
		         "changed by hand",
		         live, st->has_read_back ? st->read_back_k8s_percent : 0.0);
		*v = DONE_FAILED;
		rc = hold(r, why, NULL, err);
		return rc ? rc : mg_error_set(err, MG_ECONFLICT, "%s; paused", why);
	}
	int next = st->step_index + 1;
	char why[700];
	snprintf(why, sizeof(why), "gates passed at %s after the bake: %s", where, sum);
	rc = gate_journal(r->c->store, st, "run", e, "advance", err);
	if (!rc)
		rc = move(r, next, why, err);
	if (!rc && next >= until_idx)
		*v = DONE_OK;
	return rc;
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

static int install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a sleep or a read should end when the operator asks */
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		return -1;
	return 0;
}

static int run_opt(mg_cli *cli, int opt, const char *arg, void *ud)
{
	(void)cli;
	if (opt == OPT_UNTIL)
		*(const char **)ud = arg;
	return 0;
}

int cmd_run(mg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"until", required_argument, NULL, OPT_UNTIL},
	                                     {NULL, 0, NULL, 0}};
	const char *until_arg = NULL;
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "", run_opt, &until_arg, 0, &exit_code) < 0)
		return exit_code;
	double until_pct = 100;
	if (until_arg && shift_parse_percent(cli, "--until", until_arg, &until_pct))
		return EXIT_USAGE;

	mg_error err = MG_ERROR_INIT;
	shift_ctx c;
	run_ctx r = {0};
	json_t *doc = cli->json ? cli_doc(cli) : NULL;
	const char *outcome = "stopped";
	bool started = false; /* `start` is in the journal: every way out journals why */
	verdict v = GO_ON;
	stop_signal = 0;
	if (install_signals()) {
		mg_error_set(&err, MG_ERROR, "cannot install signal handlers");
		return cli_fail(cli, &err);
	}
	int rc = shift_open(&c, cli, "run", false, MG_NEED_SLO, &err);
	if (rc)
		goto fail;
	r.cli = cli;
	r.c = &c;
	r.slo = mg_plan_slo_section(c.plan);
	r.out = cli->json ? stderr : stdout;
	r.tty = !cli->json && isatty(STDOUT_FILENO) && !cli->dry_run;
	r.log = doc ? json_array() : NULL;
	mg_state *st = &c.st;
	const mg_plan_traffic *t = c.traffic;

	int until_idx = shift_step_index(t, until_pct);
	if (until_idx < 0) {
		rc = mg_error_set(
		    &err, MG_EINVALID,
		    "--until %s is not one of traffic.steps; `migrate plan` lists them", until_arg);
		goto fail;
	}
	bool pause_file = false;
	mg_pause_request pr;
	if (c.store) { /* with --dry-run there may be no state directory yet */
		rc = mg_store_pause_read(&pause_file, &pr, c.store, &err);
		if (rc)
			goto fail;
	}
	if (st->phase == MG_PHASE_PAUSED || pause_file) {
		rc = mg_error_set(
		    &err, MG_ECONFLICT, "the migration is paused%s%s; `migrate resume` releases it",
		    st->pause_reason[0] ? " " : "", st->pause_reason[0] ? st->pause_reason : "");
		goto fail;
	}
	if (st->step_index >= until_idx) {
		outcome = st->phase == MG_PHASE_COMPLETE ? "complete" : "until-reached";
		event(&r, "already at step %d of %zu; nothing to do", st->step_index + 1,
		      t->nsteps);
		goto done;
	}
	bool drift;
	double live;
	rc = mg_shift_drift(&drift, &live, st, c.t, &err);
	if (rc)
		goto fail;
	if (drift) {
		rc =
		    mg_error_set(&err, MG_ECONFLICT,
		                 "%s sends %.4g%% to the cluster, but migrate last set %.4g%%: the "
		                 "weights were changed by hand. Take them with `migrate step "
		                 "--adopt`, or `migrate rollback`",
		                 mg_traffic_name(c.t), live,
		                 st->has_read_back ? st->read_back_k8s_percent : 0.0);
		goto fail;
	}
	rc = mg_metrics_open(&r.m, r.slo, &err);
	if (rc)
		goto fail;
	mg_metrics_set_cancel(r.m, &stop_signal);

	if (cli->dry_run) {
		char from[64];
		gate_step_name(from, sizeof(from), st, t);
		fprintf(r.out,
		        "dry run: from %s, the autopilot would take these steps, each after "
		        "its bake and only while the gates pass:\n",
		        from);
		for (int i = st->step_index + 1; i <= until_idx; i++)
			fprintf(r.out, "  step %d of %zu: %g%% to the cluster\n", i + 1, t->nsteps,
			        t->steps[i]);
		outcome = "dry-run";
		goto done;
	}

	char start[64];
	gate_step_name(start, sizeof(start), st, t);
	rc = journal_simple(
	    &r, "start", NULL,
	    json_pack("{s:o, s:f}", "from_step",
	              st->step_index < 0 ? json_null() : json_integer(st->step_index + 1), "until",
	              t->steps[until_idx]),
	    &err);
	if (rc)
		goto fail;
	started = true;
	event(&r, "autopilot started: %s, until %g%%; gates every %llds", start,
	      t->steps[until_idx], (long long)(r.slo->interval_ms / 1000));
	if (st->step_index < 0) {
		/* nothing on the cluster yet, so nothing to measure: the first step is the
		 * measurement */
		rc = move(&r, 0, "first step of the autopilot", &err);
		if (rc)
			goto fail;
		if (until_idx == 0)
			v = DONE_OK;
	} else {
		int64_t first = st->step_started_ms + r.slo->interval_ms;
		r.next_eval_ms = first > mg_now_ms() ? first : mg_now_ms();
	}
	block_draw(&r);
	int64_t drawn_at = 0;
	while (v == GO_ON && !stop_signal) {
		rc = follow_pause_request(&r, &err);
		if (rc)
			goto fail;
		int64_t now = mg_now_ms();
		if (!r.paused && now >= r.next_eval_ms) {
			rc = evaluate(&v, &r, until_idx, &err);
			if (rc)
				goto fail;
			if (v != GO_ON || stop_signal)
				break;
			drawn_at = 0;
		}
		if (r.tty && now - drawn_at >= 1000) {
			block_draw(&r);
			drawn_at = now;
		}
		sleep_tick(r.paused ? TICK_MS : r.next_eval_ms - mg_now_ms());
	}
	block_clear(&r);
	r.tty = false; /* the closing lines stand alone */
	if (v == GO_ON) {
		/* stopped by a signal: the weights stay where the last read-back put them */
		char why[64];
		snprintf(why, sizeof(why), "stopped by %s",
		         stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
		mg_error tmp = MG_ERROR_INIT;
		journal_simple(&r, "stop", why, NULL, &tmp);
		mg_error_clear(&tmp);
		char now_at[64];
		gate_step_name(now_at, sizeof(now_at), st, t);
		event(&r, "%s; the weights stay at %s", why, now_at);
		outcome = "stopped";
		exit_code = 128 + (int)stop_signal;
	} else if (v == DONE_OK) {
		outcome = st->phase == MG_PHASE_COMPLETE ? "complete" : "until-reached";
		const char *why = st->phase == MG_PHASE_COMPLETE
		                      ? "all traffic is on the cluster: the migration is complete"
		                      : "reached --until; stopping here";
		journal_end(&r, outcome, exit_code, why);
		event(&r, "%s", why);
	} else if (v == DONE_FAILED) {
		outcome = st->phase == MG_PHASE_PAUSED ? "paused" : "rolled-back";
		exit_code = EXIT_FAILED;
		journal_end(&r, outcome, exit_code,
		            st->phase == MG_PHASE_PAUSED
		                ? st->pause_reason
		                : "the gates failed: slo.on_failure rolled the traffic back to the "
		                  "VMs");
	} else {
		outcome = "paused";
		exit_code = EXIT_INCONCLUSIVE;
		journal_end(&r, outcome, exit_code, st->pause_reason);
	}
done:
	if (doc) {
		json_object_set_new(doc, "plan", json_string(mg_plan_name(c.plan)));
		json_object_set_new(doc, "outcome", json_string(outcome));
		json_object_set_new(doc, "phase", json_string(mg_phase_name(st->phase)));
		json_object_set_new(doc, "step",
		                    st->step_index < 0 ? json_null()
		                                       : json_integer(st->step_index + 1));
		json_object_set_new(doc, "k8s_percent",
		                    json_real(st->has_read_back ? st->read_back_k8s_percent : 0));
		json_object_set_new(doc, "gates",
		                    r.has_last  ? mg_gate_eval_to_json(&r.last)
		                    : r.decided ? json_incref(r.decided)
		                                : json_null());
		json_object_set_new(doc, "events", r.log ? json_incref(r.log) : json_array());
	}
	mg_gate_eval_clear(&r.last);
	mg_metrics_free(r.m);
	json_decref(r.log);
	json_decref(r.decided);
	if (doc) {
		shift_close(&c);
		mg_error_clear(&err);
		return cli_doc_emit(cli, doc, exit_code);
	}
	shift_close(&c);
	mg_error_clear(&err);
	return exit_code;
fail:
	block_clear(&r);
	if (started)
		journal_end(&r, "failed", cli_exit_code(rc), err.message);
	mg_gate_eval_clear(&r.last);
	mg_metrics_free(r.m);
	json_decref(r.log);
	json_decref(r.decided);
	return shift_finish(cli, &c, &r.moved, doc, &err, rc);
}
