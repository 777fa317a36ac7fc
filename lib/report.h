/*
 * The report of a migration over a period (`migrate report`): what the
 * journal says happened (traffic share applied and read back, every step,
 * gate verdict, pause, rollback and deploy, with their reasons) beside what
 * Prometheus saw on each side (requests, error rate, latency: the RED
 * preset's queries as range queries), and a summary. Rendered as a
 * self-contained HTML page or one SVG image (nothing fetched from anywhere:
 * no script, no font, no link), or given as JSON.
 *
 * Everything that came from the journal or from Prometheus is text from
 * other parties: it is scrubbed of secrets when it enters the model and
 * escaped wherever it is written into HTML or SVG.
 *
 * Prometheus is optional: without an slo section, without slo.red, or when
 * it cannot be reached, the report is built from the journal alone and says
 * why (mg_report_info's metrics_note), which is not an error.
 */
#ifndef MG_REPORT_H
#define MG_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"
#include "metrics.h"
#include "plan.h"
#include "store.h"

typedef struct mg_report mg_report;

typedef struct {
	int64_t since_ms; /* the period's start; 0: the time of the journal's first record */
	int64_t until_ms; /* its end; 0: now */
	/* The metrics source to query (borrowed); NULL: the plan's slo.prometheus, if any. */
	mg_metrics *metrics;
	const mg_cancel *cancel; /* stops the Prometheus queries (NULL: never) */
} mg_report_options;

/*
 * Reads the plan's journal from store (NULL: no journal yet) through
 * mg_journal_each, one record at a time, and queries the metrics over the
 * period. MG_EINVALID when the period is empty or backwards (since at or
 * after until); a journal that cannot be read is its error. Prometheus
 * failing is not an error: the report then has no metrics and says why.
 */
int mg_report_build(mg_report **out, const mg_plan *plan, mg_store *store,
                    const mg_report_options *opt, mg_error *err);
void mg_report_free(mg_report *r);

typedef enum { MG_REPORT_HTML, MG_REPORT_SVG } mg_report_format;

/* The page (HTML) or the charts alone (one SVG document); *out is malloc'd, NUL-terminated. */
int mg_report_render(char **out, size_t *out_len, const mg_report *r, mg_report_format format,
                     mg_error *err);

/* The model as JSON (docs/cli.md, "report"): a new object, without the envelope; NULL: no memory.
 */
json_t *mg_report_to_json(const mg_report *r);

/* What the command line says about a report. Strings belong to the report. */
typedef struct {
	const char *plan;
	int64_t since_ms, until_ms;
	size_t records;           /* journal records in the period */
	size_t events;            /* markers: a move's intent and its result are one event */
	size_t skipped_lines;     /* journal lines that were not records (warned about) */
	bool metrics;             /* Prometheus answered: the RED charts have data */
	const char *metrics_note; /* why there are no metrics, or NULL */
} mg_report_info;

void mg_report_info_get(mg_report_info *out, const mg_report *r);

#endif
