/* lib/report's private declarations: the model the renderers and the JSON share. */
#ifndef MG_REPORT_INTERNAL_H
#define MG_REPORT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report.h"

/* What a marker stands for; its lane on the chart and its "kind" in JSON. */
typedef enum {
	RP_STEP,      /* traffic moved up: step, run */
	RP_ROLLBACK,  /* traffic moved down: rollback, run's on_failure */
	RP_FAILED,    /* a move that failed (health gate, balancer, read-back) */
	RP_GATE,      /* a gate evaluation: pass, fail, inconclusive */
	RP_PAUSE,     /* pause */
	RP_RESUME,    /* resume */
	RP_DEPLOY,    /* a release on one side: deploy, rollback --release */
	RP_AUTOPILOT, /* run's start, stop, end, takeover, hand-over */
	RP_OTHER,     /* reconcile, adopt, skew-allowed, state push, unlock, anything newer */
	RP_NKINDS
} rp_kind;

const char *mg_report_kind_name(rp_kind k);

typedef struct {
	int64_t t_ms;
	rp_kind kind;
	int64_t *seq; /* the journal records it stands for: an intent and its result are one */
	size_t nseq;
	char *command, *action, *operator_;
	char *title;   /* one line: what happened */
	char *reason;  /* the record's reason, or NULL */
	char *outcome; /* gate: pass/fail/inconclusive; deploy: ok/failed/canceled; else NULL */
	/* a record still waiting for its result (an intent, a deploy's batches) */
	bool open;
	char group[16]; /* "traffic", "fleet", "cluster" */
	long pid;
} rp_event;

/* A share to the cluster from this instant on (a step function). */
typedef struct {
	int64_t t_ms;
	double pct;
} rp_point;

/* One chart series from Prometheus, on the report's grid: v[i] at since + i * step (NAN: none). */
typedef struct {
	const char *metric; /* "requests", "error_rate", "latency", "share" */
	const char *side;   /* "cluster", "vms" */
	const char *unit;   /* "per_second", "ratio", "seconds", "percent" */
	char *queries;      /* the PromQL it comes from, "; " between two */
	double *v;
	size_t n;
	bool any; /* at least one value */
} rp_series;

typedef struct {
	int step; /* 0: before the first step (all traffic on the VMs) */
	double pct;
	int64_t ms;
} rp_step_time;

struct mg_report {
	char *plan, *description, *provider;
	int64_t since_ms, until_ms, generated_ms;
	double *steps; /* the plan's traffic.steps */
	size_t nsteps;

	rp_event *ev;
	size_t nev, cap_ev;
	size_t records, skipped;

	rp_point *applied, *read_back;
	size_t napplied, nread_back, cap_applied, cap_read_back;
	/* where traffic stood when the period began: the last move recorded before it */
	double initial_applied, initial_read_back;
	int initial_step;

	/* summary */
	size_t steps_taken, rollbacks, failed_moves, pauses, resumes, deploys;
	size_t gates[3]; /* pass, fail, inconclusive */
	double max_pct, final_pct;
	int final_step;
	rp_step_time *at_step;
	size_t nat_step;

	/* metrics */
	char *metrics_source; /* "prometheus http://..." (credentials removed), or NULL */
	char *metrics_note;   /* why there are none, or NULL */
	bool metrics_ok;
	int64_t step_ms, window_ms;
	double max_error_rate, max_latency_s, quantile; /* NAN when the plan sets none */
	rp_series *series;
	size_t nseries;
};

/* model.c: the journal walk */
int mg_report_read_journal(mg_report *r, mg_store *store, const mg_plan *plan, int64_t until_ms,
                           mg_error *err);
/* prom.c: the RED series */
void mg_report_query_metrics(mg_report *r, const mg_plan *plan, mg_metrics *m,
                             const mg_cancel *cancel);

/* A growable string; after a failed allocation every append is a no-op and oom is set. */
typedef struct {
	char *s;
	size_t len, cap;
	bool oom;
} rp_buf;

void mg_report_buf_printf(rp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mg_report_buf_put(rp_buf *b, const char *s);
/* text from another party, escaped for HTML and XML (controls and bidi overrides made visible) */
void mg_report_buf_esc(rp_buf *b, const char *s);

/* svg.c: the charts, an <svg> element (standalone adds the XML namespace declarations) */
void mg_report_svg(rp_buf *b, const mg_report *r, bool standalone);
/* "2026-01-01T00:05:00.000Z" */
void mg_report_time(char *buf, size_t size, int64_t ms);
/* "1h 2m 3s", "450ms" */
void mg_report_duration(char *buf, size_t size, int64_t ms);

#endif
