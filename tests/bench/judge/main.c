/*
 * tests/bench/judge: false rollbacks, detection and time to detect of the
 * error-rate judge against other rules, on simulated steps.
 *
 *   bench-judge [--steps N] [--seed S] [--threads T] [--jsonl PATH] [--cells PATH]
 *
 * Prints a Markdown table (a row per rule and traffic level, every scenario
 * of the row pooled), then the same per plan, and writes one JSON object per
 * row to PATH (build/bench-judge.jsonl), and with --cells one per rule, traffic
 * level, plan and scenario. Exits 1 when a number it produced
 * is impossible (a rate outside [0, 1], fewer steps than promised, a step
 * that advanced before its bake, a sampler off its distribution): the table
 * is then not to be trusted, and a run that only printed it would hide that.
 * Whether the migrate row meets its goal is not checked: it is reported.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * plans/example.yaml and plans/demo.yaml, the slo and bake that matter here;
 * min_requests is each plan's floor before the judge (500 and 20), which the
 * previous rule needs and the judge does not.
 */
static const bj_plan plans[] = {
    {"example", 30000, 300000, 600000, 2, 500, 0.01, 600000},
    {"demo", 1000, 20000, 6000, 1, 20, 0.05, 20000},
};
#define NPLANS (sizeof(plans) / sizeof(plans[0]))

static const double rps_levels[] = {1, 10, 100, 1000};
#define NRPS (sizeof(rps_levels) / sizeof(rps_levels[0]))

typedef enum { C_HEALTHY, C_BOUNDARY, C_2X, C_4X, C_OUTAGE, NCLASSES } klass;

typedef struct {
	klass cls;
	double k8s_mult; /* the cluster's error rate, in max_error_rate */
	double vm_rate;
	bool bursty;
} scenario;

/* every combination the issue asks for, then the VM outage: both sides at 4x */
#define NSCEN 22
static scenario scens[NSCEN];

/* A negative vm_rate is a multiple of the plan's max_error_rate (the outage). */
static double vm_rate_of(const scenario *sc, const bj_plan *p)
{
	return sc->vm_rate < 0 ? -sc->vm_rate * p->max_error_rate : sc->vm_rate;
}

static void make_scenarios(void)
{
	static const double mults[] = {0.25, 0.5, 1, 2, 4};
	static const klass cls[] = {C_HEALTHY, C_HEALTHY, C_BOUNDARY, C_2X, C_4X};
	int n = 0;
	for (int bursty = 0; bursty < 2; bursty++) {
		for (int v = 0; v < 2; v++)
			for (int m = 0; m < 5; m++)
				scens[n++] = (scenario){cls[m], mults[m], v ? 0.005 : 0, bursty};
		/* the VMs as bad as the cluster: 4 x max_error_rate on both sides */
		scens[n++] = (scenario){C_OUTAGE, 4, -4, bursty};
	}
}

/* What the steps of one rule, traffic level, plan and scenario came to. */
typedef struct {
	long n, ends[BJ_NENDS];
	long looks;
	long early;                         /* advanced before the bake: must stay 0 */
	long rollback_at[BJ_MAX_LOOKS + 1]; /* by the look that rolled back */
} cell;

static cell *cells;

static cell *cell_at(int j, int r, int p, int s)
{
	return &cells[((j * (int)NRPS + r) * (int)NPLANS + p) * NSCEN + s];
}

static struct {
	long steps;
	uint64_t seed;
	int threads;
	const char *jsonl;
	const char *cells; /* or NULL: the figures of every scenario alone */
} opt = {.steps = 5000, .seed = 20240611, .threads = 2, .jsonl = "build/bench-judge.jsonl"};

static atomic_int next_unit;
#define NUNITS ((int)(NRPS * NPLANS * NSCEN))

/*
 * A unit is one traffic level, plan and scenario; its steps are seeded from
 * their indices alone, so the numbers do not depend on the threads' order.
 * Each step's traffic is made once and every rule judges the same counts.
 */
static void *worker(void *arg)
{
	bj_trace *t = malloc(sizeof(*t));
	if (!t) {
		perror("bench-judge");
		exit(1);
	}
	(void)arg;
	for (int u; (u = atomic_fetch_add(&next_unit, 1)) < NUNITS;) {
		int r = u / (int)(NPLANS * NSCEN), p = u / NSCEN % (int)NPLANS, s = u % NSCEN;
		const scenario *sc = &scens[s];
		bj_traffic tr = {.rps = rps_levels[r],
		                 .bursty = sc->bursty,
		                 .vm_rate = vm_rate_of(sc, &plans[p]),
		                 .k8s_rate = sc->k8s_mult * plans[p].max_error_rate};
		for (long i = 0; i < opt.steps; i++) {
			uint64_t seed =
			    bj_mix(opt.seed ^ bj_mix(((uint64_t)u << 32) | (uint64_t)i));
			bj_trace_begin(t, &tr, &plans[p], seed);
			for (int j = 0; j < BJ_NJUDGES; j++) {
				bj_end e = bj_run_step(j, &plans[p], t);
				cell *c = cell_at(j, r, p, s);
				c->n++;
				c->ends[e.kind]++;
				c->looks += e.look;
				if (e.kind == BJ_ROLLBACK)
					c->rollback_at[e.look]++;
				if (e.kind == BJ_ADVANCE &&
				    (int64_t)e.look * plans[p].interval_ms < plans[p].bake_ms)
					c->early++;
			}
		}
	}
	free(t);
	return NULL;
}

/* A row: the cells of one rule and traffic level, of one plan (p >= 0) or both. */
typedef struct {
	long n[NCLASSES], ends[NCLASSES][BJ_NENDS];
	long steps, looks, early, capped, stalled_or_capped;
	long hist[NCLASSES][BJ_MAX_LOOKS + 1];
} row;

static void row_of(row *w, int j, int r, int plan)
{
	memset(w, 0, sizeof(*w));
	for (int p = 0; p < (int)NPLANS; p++) {
		if (plan >= 0 && p != plan)
			continue;
		for (int s = 0; s < NSCEN; s++) {
			const cell *c = cell_at(j, r, p, s);
			klass k = scens[s].cls;
			w->n[k] += c->n;
			for (int e = 0; e < BJ_NENDS; e++)
				w->ends[k][e] += c->ends[e];
			for (int i = 0; i <= BJ_MAX_LOOKS; i++)
				w->hist[k][i] += c->rollback_at[i];
			w->steps += c->n;
			w->looks += c->looks;
			w->early += c->early;
			w->capped += c->ends[BJ_CAPPED];
			w->stalled_or_capped += c->ends[BJ_STALLED] + c->ends[BJ_CAPPED];
		}
	}
}

static double frac(long a, long b)
{
	return b > 0 ? (double)a / (double)b : NAN;
}

/* The lower median look of the rollbacks of class k: 0 when there were none. */
static int median_look(const row *w, klass k)
{
	long total = w->ends[k][BJ_ROLLBACK], seen = 0;
	if (!total)
		return 0;
	for (int i = 0; i <= BJ_MAX_LOOKS; i++) {
		seen += w->hist[k][i];
		if (2 * seen >= total)
			return i;
	}
	return -1; /* the histogram disagrees with the count: caught by check_row */
}

typedef struct {
	double false_rollback, outage, at_1x, detect_2x, detect_4x, inconclusive;
	int median_2x, median_4x;
	/* what the columns above leave out: the healthy steps held until they stalled
	 * (the price of a judge that will not guess), and the 2x regressions let through */
	double healthy_stalled, advance_2x;
} figures;

static figures figures_of(const row *w)
{
	return (figures){.false_rollback = frac(w->ends[C_HEALTHY][BJ_ROLLBACK], w->n[C_HEALTHY]),
	                 .outage = frac(w->ends[C_OUTAGE][BJ_ROLLBACK], w->n[C_OUTAGE]),
	                 .at_1x = frac(w->ends[C_BOUNDARY][BJ_ROLLBACK], w->n[C_BOUNDARY]),
	                 .detect_2x = frac(w->ends[C_2X][BJ_ROLLBACK], w->n[C_2X]),
	                 .detect_4x = frac(w->ends[C_4X][BJ_ROLLBACK], w->n[C_4X]),
	                 .inconclusive = frac(w->stalled_or_capped, w->steps),
	                 .median_2x = median_look(w, C_2X),
	                 .median_4x = median_look(w, C_4X),
	                 .healthy_stalled =
	                     frac(w->ends[C_HEALTHY][BJ_STALLED] + w->ends[C_HEALTHY][BJ_CAPPED],
	                          w->n[C_HEALTHY]),
	                 .advance_2x = frac(w->ends[C_2X][BJ_ADVANCE], w->n[C_2X])};
}

static int failures;

static void fail(const char *what, int j, int r, const char *plan)
{
	fprintf(stderr, "bench-judge: CHECK FAILED: %s (%s, %g rps, %s)\n", what, bj_judge_names[j],
	        rps_levels[r], plan);
	failures++;
}

static bool rate_ok(double v)
{
	return isfinite(v) && v >= 0 && v <= 1;
}

/* What cannot be, whatever the rules do: each failure is a bug in this bench. */
static void check_row(const row *w, int j, int r, const char *plan, long promised)
{
	figures f = figures_of(w);
	if (w->steps < promised)
		fail("fewer steps than promised", j, r, plan);
	double rates[] = {f.false_rollback, f.outage,       f.at_1x,           f.detect_2x,
	                  f.detect_4x,      f.inconclusive, f.healthy_stalled, f.advance_2x};
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		if (!rate_ok(rates[i]))
			fail("a rate outside [0, 1]", j, r, plan);
	for (int k = 0; k < NCLASSES; k++) {
		long sum = 0, hist = 0;
		for (int e = 0; e < BJ_NENDS; e++)
			sum += w->ends[k][e];
		for (int i = 0; i <= BJ_MAX_LOOKS; i++)
			hist += w->hist[k][i];
		if (sum != w->n[k] || hist != w->ends[k][BJ_ROLLBACK] || w->hist[k][0])
			fail("the ends of the steps do not add up", j, r, plan);
	}
	if (f.median_2x < 0 || f.median_4x < 0 || f.median_2x > BJ_MAX_LOOKS ||
	    f.median_4x > BJ_MAX_LOOKS)
		fail("a median look outside the step", j, r, plan);
	if (w->early)
		fail("a step advanced before its bake", j, r, plan);
	if (w->looks < w->steps)
		fail("fewer looks than steps", j, r, plan);
}

/*
 * The sampler against its own moments: a Poisson draw that is off by a few
 * percent would move every figure of the table, and nothing else would show it.
 */
static void check_poisson(void)
{
	static const double mus[] = {0.3, 4, 9.9, 10, 30, 3000, 60000};
	bj_rng rng;
	bj_rng_seed(&rng, 1);
	for (size_t i = 0; i < sizeof(mus) / sizeof(mus[0]); i++) {
		const long n = 200000;
		double sum = 0, sq = 0, mu = mus[i];
		for (long k = 0; k < n; k++) {
			double x = (double)bj_poisson(&rng, mu);
			sum += x;
			sq += x * x;
		}
		double mean = sum / n, var = sq / n - mean * mean;
		/* six standard errors of the mean; the variance within 3% (its s.e. is under 0.5%)
		 */
		if (fabs(mean - mu) > 6 * sqrt(mu / n) || fabs(var / mu - 1) > 0.03) {
			fprintf(
			    stderr,
			    "bench-judge: CHECK FAILED: Poisson(%g) drew mean %g, variance %g\n",
			    mu, mean, var);
			failures++;
		}
	}
}

/* Mann-Whitney on cases worked by hand (no ties; then all tied). */
static void check_mann_whitney(void)
{
	const double lo[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
	const double hi[] = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
	const double mixed[] = {1.5, 11.5, 2.5, 12.5, 3.5, 13.5, 4.5, 14.5, 5.5, 15.5};
	const double zeros[] = {0, 0, 0, 0, 0};
	/* 10 vs 10 fully apart: U = 100, mu 50, sd 13.23, z = 3.74 > 2.33 */
	if (bj_mann_whitney(hi, 10, lo, 10) != 1 || bj_mann_whitney(lo, 10, hi, 10) != -1 ||
	    /* 3 vs 3 fully apart: z = (4.5 - 0.5) / 2.29 = 1.75, never significant */
	    bj_mann_whitney(hi, 3, lo, 3) != 0 || bj_mann_whitney(mixed, 10, lo, 10) != 0 ||
	    bj_mann_whitney(zeros, 5, zeros, 5) != 0) {
		fprintf(stderr,
		        "bench-judge: CHECK FAILED: the Mann-Whitney test on known cases\n");
		failures++;
	}
}

static void pct(char *buf, size_t size, double v)
{
	if (isnan(v))
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.2f%%", v * 100);
}

static void looks(char *buf, size_t size, int m)
{
	if (m > 0)
		snprintf(buf, size, "%d", m);
	else
		snprintf(buf, size, "-");
}

static void table(int plan)
{
	printf("| judge | rps/side | false rollback | detect 2x | median looks 2x | detect 4x | "
	       "median looks 4x | inconclusive | false rollback, VM outage | rollback at 1x | "
	       "healthy stalled | 2x advanced |\n"
	       "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	row *w = malloc(sizeof(*w));
	if (!w) {
		perror("bench-judge");
		exit(1);
	}
	for (int r = 0; r < (int)NRPS; r++) {
		for (int j = 0; j < BJ_NJUDGES; j++) {
			row_of(w, j, r, plan);
			figures f = figures_of(w);
			char fr[16], d2[16], m2[16], d4[16], m4[16], inc[16], out[16], one[16],
			    hs[16], a2[16];
			pct(fr, sizeof(fr), f.false_rollback);
			pct(d2, sizeof(d2), f.detect_2x);
			looks(m2, sizeof(m2), f.median_2x);
			pct(d4, sizeof(d4), f.detect_4x);
			looks(m4, sizeof(m4), f.median_4x);
			pct(inc, sizeof(inc), f.inconclusive);
			pct(out, sizeof(out), f.outage);
			pct(one, sizeof(one), f.at_1x);
			pct(hs, sizeof(hs), f.healthy_stalled);
			pct(a2, sizeof(a2), f.advance_2x);
			printf("| %s | %g | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			       bj_judge_names[j], rps_levels[r], fr, d2, m2, d4, m4, inc, out, one,
			       hs, a2);
		}
	}
	free(w);
}

static void json_median(FILE *f, const char *key, int m)
{
	if (m > 0)
		fprintf(f, ", \"%s\": %d", key, m);
	else
		fprintf(f, ", \"%s\": null", key);
}

static void json_figures(FILE *f, const row *w)
{
	figures g = figures_of(w);
	fprintf(f, "\"false_rollback\": %.6g, \"detect_2x\": %.6g", g.false_rollback, g.detect_2x);
	json_median(f, "median_intervals_2x", g.median_2x);
	fprintf(f, ", \"detect_4x\": %.6g", g.detect_4x);
	json_median(f, "median_intervals_4x", g.median_4x);
	fprintf(f,
	        ", \"inconclusive\": %.6g, \"false_rollback_outage\": %.6g, \"rollback_1x\": %.6g, "
	        "\"healthy_stalled\": %.6g, \"advance_2x\": %.6g, \"steps\": %ld, "
	        "\"healthy_steps\": %ld, \"steps_2x\": %ld, \"steps_4x\": %ld, \"looks\": %ld, "
	        "\"capped\": %ld",
	        g.inconclusive, g.outage, g.at_1x, g.healthy_stalled, g.advance_2x, w->steps,
	        w->n[C_HEALTHY], w->n[C_2X], w->n[C_4X], w->looks, w->capped);
}

static int write_jsonl(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "bench-judge: %s: %s\n", path, strerror(errno));
		return -1;
	}
	row *w = malloc(sizeof(*w));
	if (!w) {
		fclose(f);
		return -1;
	}
	for (int r = 0; r < (int)NRPS; r++) {
		for (int j = 0; j < BJ_NJUDGES; j++) {
			row_of(w, j, r, -1);
			fprintf(f, "{\"judge\": \"%s\", \"traffic_rps\": %g, ", bj_judge_names[j],
			        rps_levels[r]);
			json_figures(f, w);
			fprintf(f, ", \"seed\": %llu, \"by_plan\": {",
			        (unsigned long long)opt.seed);
			for (int p = 0; p < (int)NPLANS; p++) {
				row_of(w, j, r, p);
				fprintf(f, "%s\"%s\": {", p ? ", " : "", plans[p].name);
				json_figures(f, w);
				fprintf(f, "}");
			}
			fprintf(f, "}}\n");
		}
	}
	free(w);
	return fclose(f) ? -1 : 0;
}

static const char *const class_names[NCLASSES] = {"healthy", "1x", "2x", "4x", "vm-outage"};
static const char *const end_names[BJ_NENDS] = {"rollback", "advance", "stalled", "capped"};

/* Every scenario on its own, for a reader who wants to know where a pooled figure comes from. */
static int write_cells(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "bench-judge: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int r = 0; r < (int)NRPS; r++)
		for (int p = 0; p < (int)NPLANS; p++)
			for (int s = 0; s < NSCEN; s++)
				for (int j = 0; j < BJ_NJUDGES; j++) {
					const cell *c = cell_at(j, r, p, s);
					const scenario *sc = &scens[s];
					fprintf(
					    f,
					    "{\"judge\": \"%s\", \"traffic_rps\": %g, \"plan\": \"%s\", "
					    "\"class\": \"%s\", \"k8s_rate\": %g, \"vm_rate\": %g, "
					    "\"bursty\": %s, \"steps\": %ld",
					    bj_judge_names[j], rps_levels[r], plans[p].name,
					    class_names[sc->cls],
					    sc->k8s_mult * plans[p].max_error_rate,
					    vm_rate_of(sc, &plans[p]),
					    sc->bursty ? "true" : "false", c->n);
					for (int e = 0; e < BJ_NENDS; e++)
						fprintf(f, ", \"%s\": %ld", end_names[e],
						        c->ends[e]);
					long seen = 0, median = 0;
					for (int i = 1; i <= BJ_MAX_LOOKS && !median; i++) {
						seen += c->rollback_at[i];
						if (c->ends[BJ_ROLLBACK] &&
						    2 * seen >= c->ends[BJ_ROLLBACK])
							median = i;
					}
					if (median)
						fprintf(f, ", \"median_rollback_look\": %ld",
						        median);
					else
						fprintf(f, ", \"median_rollback_look\": null");
					fprintf(f, ", \"looks\": %ld}\n", c->looks);
				}
	return fclose(f) ? -1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-judge [--steps N] [--seed S] [--threads T] [--jsonl PATH] "
	                "[--cells PATH]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *end = NULL;
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--steps"))
			opt.steps = strtol(argv[++i], &end, 10);
		else if (!strcmp(argv[i], "--seed"))
			opt.seed = strtoull(argv[++i], &end, 10);
		else if (!strcmp(argv[i], "--threads"))
			opt.threads = (int)strtol(argv[++i], &end, 10);
		else if (!strcmp(argv[i], "--jsonl"))
			opt.jsonl = argv[++i];
		else if (!strcmp(argv[i], "--cells"))
			opt.cells = argv[++i];
		else
			usage();
		if (end && *end)
			usage();
	}
	if (opt.steps < 1 || opt.threads < 1 || opt.threads > 64)
		usage();

	check_poisson();
	check_mann_whitney();
	make_scenarios();
	cells = calloc((size_t)BJ_NJUDGES * NRPS * NPLANS * NSCEN, sizeof(*cells));
	if (!cells) {
		perror("bench-judge");
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_t th[64];
	for (int i = 0; i < opt.threads; i++)
		if (pthread_create(&th[i], NULL, worker, NULL)) {
			fprintf(stderr, "bench-judge: cannot start a thread\n");
			return 1;
		}
	for (int i = 0; i < opt.threads; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	/* the issue promises at least 10,000 steps per row, whatever --steps says */
	long promised = (long)NPLANS * NSCEN * opt.steps;
	if (promised < 10000)
		promised = 10000;
	row *w = malloc(sizeof(*w));
	if (!w) {
		perror("bench-judge");
		return 1;
	}
	long steps = 0, nlooks = 0;
	for (int r = 0; r < (int)NRPS; r++)
		for (int j = 0; j < BJ_NJUDGES; j++) {
			row_of(w, j, r, -1);
			check_row(w, j, r, "both plans", promised);
			steps += w->steps;
			nlooks += w->looks;
			for (int p = 0; p < (int)NPLANS; p++) {
				row_of(w, j, r, p);
				check_row(w, j, r, plans[p].name, promised / (long)NPLANS);
			}
		}
	free(w);

	printf("Both plans pooled (%ld steps per row, seed %llu):\n\n",
	       (long)NPLANS * NSCEN * opt.steps, (unsigned long long)opt.seed);
	table(-1);
	for (int p = 0; p < (int)NPLANS; p++) {
		printf("\n%s alone (interval %llds, window %llds, bake %llds, failure_limit %d, "
		       "min_requests %ld):\n\n",
		       plans[p].name, (long long)plans[p].interval_ms / 1000,
		       (long long)plans[p].window_ms / 1000, (long long)plans[p].bake_ms / 1000,
		       plans[p].failure_limit, plans[p].min_requests);
		table(p);
	}
	fflush(stdout);
	fprintf(stderr, "bench-judge: %ld steps, %ld looks in %.1f s on %d threads; %s\n", steps,
	        nlooks, secs, opt.threads, opt.jsonl);
	if (write_jsonl(opt.jsonl) || (opt.cells && write_cells(opt.cells)))
		failures++;
	free(cells);
	if (failures) {
		fprintf(stderr,
		        "bench-judge: %d check(s) failed: the table above is not to be "
		        "trusted\n",
		        failures);
		return 1;
	}
	return 0;
}
