/*
 * The autopilot's decision table: what one evaluation of the gates leads to.
 * Pure: the same input gives the same decision, so tests/unit/migration.c
 * can go through every row without a balancer, a Prometheus or a clock.
 *
 *   outcome       condition                                  decision   journal   run
 *   fail          failures + 1 < slo.failure_limit           count      count     goes on
 *   fail          limit reached, on_failure rollback         rollback   rollback  failed
 *   fail          limit reached, on_failure pause            pause      pause     failed
 *   inconclusive  for 3 x max(bake, interval) or longer      stalled    pause     inconclusive
 *   inconclusive  no data yet at a young step, none seen     forget     -         goes on
 *   inconclusive  otherwise                                  hold       hold (*)  goes on
 *   pass          the step bakes                             bake       bake (*)  goes on
 *   pass          baked, the weights were changed by hand    drift      -         failed
 *   pass          baked                                      advance    advance   done at until
 *
 *   (*) only when the outcome changed: a steady state is not news.
 */
#include "internal.h"

bool mg_migration_baked(const mg_state *st, const mg_plan_traffic *t, int64_t now_ms)
{
	return now_ms - st->step_started_ms >= t->bake_ms;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

void mg_migration_decide(mg_decision *out, const mg_decision_input *in)
{
	const mg_state *st = in->st;
	const mg_plan_traffic *t = in->traffic;
	const mg_plan_slo *slo = in->slo;
	*out = (mg_decision){.gate_failures = st->gate_failures,
	                     .inconclusive_since_ms = in->inconclusive_since_ms,
	                     .data_seen = in->data_seen,
	                     .target = st->step_index,
	                     .end = MG_RUN_GOES_ON};

	if (in->outcome == MG_GATE_FAIL) {
		out->inconclusive_since_ms = 0;
		out->gate_failures++;
		out->save = true;
		if (out->gate_failures < slo->failure_limit) {
			out->kind = MG_DECIDE_COUNT;
			out->journal = "count";
			return;
		}
		out->end = MG_RUN_FAILED;
		if (slo->on_failure == MG_ON_FAILURE_PAUSE) {
			out->kind = MG_DECIDE_PAUSE;
			out->journal = "pause";
		} else {
			out->kind = MG_DECIDE_ROLLBACK;
			out->journal = "rollback";
			out->target = -1;
		}
		return;
	}
	/*
	 * Right after a step Prometheus has not scraped the new weights yet, so the
	 * first evaluations have no data: no news, not a hold worth a journal record.
	 * Only until the first data at this step, and for at most the bake or two
	 * intervals: a query that never matches anything is a hold like any other.
	 * The clock towards the inconclusive pause runs all the same.
	 */
	bool grace = in->now_ms - st->step_started_ms < max64(t->bake_ms, 2 * slo->interval_ms);
	bool awaiting = in->outcome == MG_GATE_INCONCLUSIVE && in->awaiting_data;
	if (!awaiting)
		out->data_seen = true;
	if (in->outcome == MG_GATE_INCONCLUSIVE) {
		if (!out->inconclusive_since_ms)
			out->inconclusive_since_ms = in->now_ms;
		int64_t limit = 3 * max64(t->bake_ms, slo->interval_ms);
		if (in->now_ms - out->inconclusive_since_ms >= limit) {
			/* the hold that follows saves the state */
			out->kind = MG_DECIDE_STALLED;
			out->journal = "pause";
			out->end = MG_RUN_INCONCLUSIVE;
			return;
		}
		if (awaiting && !out->data_seen && grace) {
			out->kind = MG_DECIDE_FORGET;
			return;
		}
		out->kind = MG_DECIDE_HOLD;
		out->journal = in->changed ? "hold" : NULL;
		out->save = in->changed;
		return;
	}
	out->inconclusive_since_ms = 0;
	if (!mg_migration_baked(st, t, in->now_ms)) {
		out->kind = MG_DECIDE_BAKE;
		out->journal = in->changed ? "bake" : NULL;
		out->save = in->changed;
		return;
	}
	/* never step on top of a hand change: hold and let an operator decide */
	if (in->drift) {
		out->kind = MG_DECIDE_DRIFT;
		out->end = MG_RUN_FAILED;
		return;
	}
	out->kind = MG_DECIDE_ADVANCE;
	out->journal = "advance";
	out->target = st->step_index + 1;
	if (out->target >= in->until)
		out->end = MG_RUN_DONE;
}
