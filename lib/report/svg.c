/*
 * The charts, as one SVG: the traffic share to the cluster (applied and read
 * back, from the journal; what Prometheus saw, when it answered), a lane of
 * markers per kind of journal event, and requests, error rate and latency per
 * side. A marker's <title> is its hover text. No script, no external
 * reference: the SVG is the same inline in the page and as -o svg.
 *
 * Every element a test or a reader looks for has a class and data-*
 * attributes: series are <path class="series" data-metric data-side>,
 * markers <g class="marker" data-kind data-outcome data-seq>.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define W        1000.0
#define ML       70.0 /* left margin: the y labels */
#define MR       20.0
#define PW       (W - ML - MR)
#define CHART_H  150.0
#define TITLE_H  24.0
#define AXIS_H   24.0
#define LANE_H   18.0
#define NLANES   5
#define COLOR_K8 "#1f6fb4"
#define COLOR_VM "#e07b00"

#define P  mg_report_buf_printf
#define PS mg_report_buf_put
#define E  mg_report_buf_esc

typedef struct {
	rp_buf *b;
	const mg_report *r;
	double y; /* the top of what comes next */
} pen;

static double xt(const mg_report *r, int64_t t)
{
	int64_t span = r->until_ms - r->since_ms;
	if (span <= 0)
		return ML + PW / 2;
	double f = (double)(t - r->since_ms) / (double)span;
	return ML + (f < 0 ? 0 : f > 1 ? 1 : f) * PW;
}

/* A round number at or above v for an axis: 1, 2, 2.5 or 5 times a power of ten. */
static double nice_ceil(double v)
{
	if (!(v > 0))
		return 1;
	double p = pow(10, floor(log10(v)));
	static const double m[] = {1, 2, 2.5, 5, 10};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (m[i] * p >= v * (1 - 1e-9))
			return m[i] * p;
	return 10 * p;
}

/* The time axis: vertical grid lines and UTC labels at a round interval. */
static void time_axis(pen *p, double top, double h)
{
	static const int64_t steps[] = {
	    1000,     2000,     5000,      10000,     15000,      30000,     60000,    120000,
	    300000,   600000,   900000,    1800000,   3600000,    7200000,   10800000, 21600000,
	    43200000, 86400000, 172800000, 604800000, 1209600000, 2592000000};
	const mg_report *r = p->r;
	int64_t span = r->until_ms - r->since_ms, every = steps[0];
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		every = steps[i];
		if (span / every <= 8)
			break;
	}
	int64_t first = (r->since_ms + every - 1) / every * every;
	for (int64_t t = first; t <= r->until_ms && span > 0; t += every) {
		char ts[40], label[24];
		mg_report_time(ts, sizeof(ts), t);
		if (span > 2 * 86400000LL)
			snprintf(label, sizeof(label), "%.5s %.5s", ts + 5,
			         ts + 11); /* MM-DD HH:MM */
		else if (every >= 60000)
			snprintf(label, sizeof(label), "%.5s", ts + 11);
		else
			snprintf(label, sizeof(label), "%.8s", ts + 11);
		double x = xt(r, t);
		P(p->b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x,
		  top, x, top + h);
		/* labels at the edges stay inside the picture */
		const char *anchor = x < ML + 30 ? "start" : x > W - MR - 30 ? "end" : "middle";
		P(p->b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%s</text>",
		  x, top + h + 14, anchor, label);
	}
}

/* The value axis, 0 to ymax, with five labels (unit after the top one). */
static void value_axis(pen *p, double top, double ymax, const char *unit)
{
	for (int i = 0; i <= 4; i++) {
		double v = ymax * i / 4, y = top + CHART_H - CHART_H * i / 4;
		P(p->b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
		  ML, y, W - MR, y);
		P(p->b,
		  "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g%s</text>",
		  ML - 6, y + 4, v, i == 4 ? unit : "");
	}
	P(p->b, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", ML,
	  top, PW, CHART_H);
}

static double yv(double top, double ymax, double v)
{
	double f = v / ymax;
	return top + CHART_H - (f < 0 ? 0 : f > 1.02 ? 1.02 : f) * CHART_H;
}

/* A chart's title and its legend items ("label:color:dash", NULL-terminated). */
static void title(pen *p, const char *text, const char *const *legend)
{
	P(p->b, "<text class=\"ctitle\" x=\"%.1f\" y=\"%.1f\">%s</text>", ML, p->y + 16, text);
	double x = ML + 330;
	for (size_t i = 0; legend && legend[i]; i += 3) {
		P(p->b,
		  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		  "stroke-width=\"2.5\"%s/>",
		  x, p->y + 12, x + 22, p->y + 12, legend[i + 1],
		  *legend[i + 2] ? " stroke-dasharray=\"5 3\"" : "");
		P(p->b, "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">", x + 27, p->y + 16);
		E(p->b, legend[i]);
		PS(p->b, "</text>");
		x += 40 + 7.0 * (double)strlen(legend[i]);
	}
}

/* A series on the grid as a path, broken where it has no value. */
static void grid_path(pen *p, const rp_series *s, double top, double ymax, double scale,
                      const char *color, const char *extra)
{
	const mg_report *r = p->r;
	P(p->b,
	  "<path class=\"series\" data-metric=\"%s\" data-side=\"%s\" data-points=\"%s\" "
	  "fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"",
	  s->metric, s->side, s->any ? "yes" : "no", color, extra);
	bool pen_down = false;
	for (size_t k = 0; k < s->n; k++) {
		if (isnan(s->v[k])) {
			pen_down = false;
			continue;
		}
		double x = xt(r, r->since_ms + (int64_t)k * r->step_ms);
		double y = yv(top, ymax, s->v[k] * scale);
		/* a lone value is a dot: a zero-length segment with round caps */
		bool lone = (k + 1 >= s->n || isnan(s->v[k + 1])) && !pen_down;
		P(p->b, "%s%.1f %.1f%s", pen_down ? " L" : " M", x, y, lone ? " h0.01" : "");
		pen_down = true;
	}
	PS(p->b, "\"/>");
}

static const rp_series *find(const mg_report *r, const char *metric, const char *side)
{
	for (size_t i = 0; i < r->nseries; i++)
		if (!strcmp(r->series[i].metric, metric) && !strcmp(r->series[i].side, side))
			return &r->series[i];
	return NULL;
}

/* A step function of the share from where it stood at since to until. */
static void share_path(pen *p, const char *metric, const rp_point *a, size_t n, double initial,
                       double top, const char *attrs)
{
	const mg_report *r = p->r;
	P(p->b,
	  "<path class=\"series\" data-metric=\"%s\" data-side=\"cluster\" data-points=\"yes\" "
	  "fill=\"none\" %s d=\"M%.1f %.1f",
	  metric, attrs, xt(r, r->since_ms), yv(top, 100, initial));
	for (size_t i = 0; i < n; i++)
		P(p->b, " H%.1f V%.1f", xt(r, a[i].t_ms), yv(top, 100, a[i].pct));
	P(p->b, " H%.1f\"/>", xt(r, r->until_ms));
}

static void traffic_chart(pen *p)
{
	const mg_report *r = p->r;
	const rp_series *obs = find(r, "share", "cluster");
	const char *legend[] = {"applied",
	                        COLOR_K8,
	                        "",
	                        "read back",
	                        "#0b3d66",
	                        "d",
	                        obs ? "seen by Prometheus" : NULL,
	                        "#7fb2e0",
	                        "",
	                        NULL};
	title(p, "Traffic to the cluster (%)", legend);
	double top = p->y + TITLE_H;
	value_axis(p, top, 100, "%");
	time_axis(p, top, CHART_H);
	if (obs)
		grid_path(p, obs, top, 100, 1, "#7fb2e0", " stroke-opacity=\"0.9\"");
	share_path(p, "share_applied", r->applied, r->napplied, r->initial_applied, top,
	           "stroke=\"" COLOR_K8 "\" stroke-width=\"3\"");
	share_path(p, "share_read_back", r->read_back, r->nread_back, r->initial_read_back, top,
	           "stroke=\"#0b3d66\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"");
	p->y = top + CHART_H + AXIS_H;
}

static int lane_of(rp_kind k)
{
	switch (k) {
	case RP_STEP:
	case RP_ROLLBACK:
	case RP_FAILED:
		return 0;
	case RP_GATE:
		return 1;
	case RP_PAUSE:
	case RP_RESUME:
		return 2;
	case RP_DEPLOY:
		return 3;
	default:
		return 4;
	}
}

static const char *outcome_color(const char *o)
{
	if (!o)
		return "#777777";
	if (!strcmp(o, "pass") || !strcmp(o, "ok"))
		return "#2ca02c";
	if (!strcmp(o, "fail") || !strcmp(o, "failed") || !strcmp(o, "canceled"))
		return "#d62728";
	if (!strcmp(o, "inconclusive"))
		return "#e6a700";
	return "#777777";
}

static void marker_shape(rp_buf *b, const rp_event *e)
{
	switch (e->kind) {
	case RP_STEP:
		PS(b, "<path d=\"M0 -6 L6 5 L-6 5 Z\" fill=\"#2a9d8f\"/>");
		break;
	case RP_ROLLBACK:
		PS(b, "<path d=\"M0 6 L6 -5 L-6 -5 Z\" fill=\"#d62728\"/>");
		break;
	case RP_FAILED:
		PS(b,
		   "<path d=\"M-5 -5 L5 5 M5 -5 L-5 5\" stroke=\"#d62728\" stroke-width=\"2.5\"/>");
		break;
	case RP_GATE:
		P(b, "<circle r=\"5\" fill=\"%s\"/>", outcome_color(e->outcome));
		break;
	case RP_PAUSE:
		PS(b,
		   "<path d=\"M-5 -6 h3.5 v12 h-3.5 Z M1.5 -6 h3.5 v12 h-3.5 Z\" fill=\"#555555\"/>");
		break;
	case RP_RESUME:
		PS(b, "<path d=\"M-5 -6 L6 0 L-5 6 Z\" fill=\"#555555\"/>");
		break;
	case RP_DEPLOY:
		P(b, "<path d=\"M0 -6 L6 0 L0 6 L-6 0 Z\" fill=\"#6a3d9a\" stroke=\"%s\"/>",
		  outcome_color(e->outcome));
		break;
	default:
		PS(b, "<rect x=\"-4\" y=\"-4\" width=\"8\" height=\"8\" fill=\"#999999\"/>");
	}
}

/*
 * Text of another party in lines of at most width bytes, broken at spaces (a
 * word longer than a line is broken where it must, never inside a UTF-8
 * sequence), at most maxlines of them, the last one ending in "..." when cut.
 */
static void wrapped(rp_buf *b, double x, double y, const char *cls, const char *text, size_t width,
                    int maxlines)
{
	const char *s = text ? text : "";
	P(b, "<text class=\"%s\" x=\"%.1f\" y=\"%.1f\">", cls, x, y);
	for (int line = 0; *s && line < maxlines; line++) {
		size_t n = strlen(s);
		bool last = line == maxlines - 1;
		size_t cut = n;
		if (n > width) {
			cut = width;
			while (cut > width / 2 && s[cut] != ' ')
				cut--;
			if (s[cut] != ' ')
				cut = width;
			while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
				cut--;
		}
		char *part = strndup(s, cut);
		if (!part) {
			b->oom = true;
			return;
		}
		P(b, "<tspan x=\"%.1f\" dy=\"%s\">", x, line ? "1.3em" : "0");
		E(b, part);
		PS(b, last && cut < n ? "...</tspan>" : "</tspan>");
		free(part);
		s += cut;
		while (*s == ' ')
			s++;
	}
	PS(b, "</text>");
}

/* The hover text: time, what, reason, who. */
static void hover(rp_buf *b, const rp_event *e)
{
	char ts[40];
	mg_report_time(ts, sizeof(ts), e->t_ms);
	PS(b, "<title>");
	E(b, ts);
	PS(b, "  ");
	E(b, e->title ? e->title : "");
	if (e->reason) {
		PS(b, "\nreason: ");
		E(b, e->reason);
	}
	if (e->operator_) {
		PS(b, "\nby ");
		E(b, e->operator_);
		PS(b, " (migrate ");
		E(b, e->command ? e->command : "?");
		PS(b, " ");
		E(b, e->action ? e->action : "?");
		PS(b, ")");
	}
	PS(b, "</title>");
}

static void events_lanes(pen *p)
{
	const mg_report *r = p->r;
	static const char *const lanes[NLANES] = {"moves", "gates", "pauses", "deploys", "other"};
	P(p->b,
	  "<text class=\"ctitle\" x=\"%.1f\" y=\"%.1f\">Journal events (hover for why)</text>", ML,
	  p->y + 16);
	double top = p->y + TITLE_H;
	for (int i = 0; i < NLANES; i++) {
		double y = top + LANE_H * i + LANE_H / 2;
		P(p->b, "<line class=\"lane\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
		  ML, y, W - MR, y);
		P(p->b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
		  ML - 6, y + 4, lanes[i]);
	}
	for (size_t i = 0; i < r->nev; i++) {
		const rp_event *e = &r->ev[i];
		double y = top + LANE_H * lane_of(e->kind) + LANE_H / 2;
		P(p->b, "<g class=\"marker\" data-kind=\"%s\" data-outcome=\"",
		  mg_report_kind_name(e->kind));
		E(p->b, e->outcome ? e->outcome : "");
		PS(p->b, "\" data-seq=\"");
		for (size_t k = 0; k < e->nseq; k++)
			P(p->b, "%s%lld", k ? " " : "", (long long)e->seq[k]);
		P(p->b, "\" transform=\"translate(%.1f %.1f)\">", xt(r, e->t_ms), y);
		hover(p->b, e);
		marker_shape(p->b, e);
		PS(p->b, "</g>");
	}
	p->y = top + LANE_H * NLANES + 12;
}

/* A chart of one metric per side; scale turns the unit into the one shown (% or ms). */
static void metric_chart(pen *p, const char *metric, const char *name, const char *unit,
                         double scale, double limit, const char *limit_name)
{
	const mg_report *r = p->r;
	const rp_series *k = find(r, metric, "cluster"), *v = find(r, metric, "vms");
	double ymax = 0;
	for (int s = 0; s < 2; s++) {
		const rp_series *x = s ? v : k;
		for (size_t i = 0; x && i < x->n; i++)
			if (!isnan(x->v[i]) && x->v[i] * scale > ymax)
				ymax = x->v[i] * scale;
	}
	if (!isnan(limit) && limit * scale * 1.15 > ymax)
		ymax = limit * scale * 1.15;
	ymax = nice_ceil(ymax);
	char kl[48], vl[48];
	snprintf(kl, sizeof(kl), "cluster%s", k && k->any ? "" : " (no data)");
	snprintf(vl, sizeof(vl), "VMs%s", v && v->any ? "" : " (no data)");
	const char *legend[10] = {kl, COLOR_K8, ""};
	size_t n = 3;
	if (v) {
		legend[n++] = vl;
		legend[n++] = COLOR_VM;
		legend[n++] = "";
	}
	if (!isnan(limit)) {
		legend[n++] = limit_name;
		legend[n++] = "#d62728";
		legend[n++] = "d";
	}
	legend[n] = NULL;
	title(p, name, legend);
	double top = p->y + TITLE_H;
	value_axis(p, top, ymax, unit);
	time_axis(p, top, CHART_H);
	if (!isnan(limit)) {
		double y = yv(top, ymax, limit * scale);
		P(p->b,
		  "<line class=\"limit\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"><title>%s: "
		  "%.4g%s</title></line>",
		  ML, y, W - MR, y, limit_name, limit * scale, unit);
	}
	if (v)
		grid_path(p, v, top, ymax, scale, COLOR_VM, "");
	if (k)
		grid_path(p, k, top, ymax, scale, COLOR_K8, "");
	p->y = top + CHART_H + AXIS_H;
}

/* Thin lines through the charts where traffic moved, drawn first so they stay behind. */
static void move_lines(pen *p, double top, double bottom)
{
	const mg_report *r = p->r;
	for (size_t i = 0; i < r->nev; i++) {
		const rp_event *e = &r->ev[i];
		if (e->kind != RP_STEP && e->kind != RP_ROLLBACK)
			continue;
		double x = xt(r, e->t_ms);
		P(p->b, "<line class=\"move %s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
		  e->kind == RP_STEP ? "up" : "down", x, top, x, bottom);
	}
}

static const char style[] =
    "<style>"
    "text{font-family:sans-serif;font-size:11px;fill:#222}"
    ".ctitle{font-size:13px;font-weight:bold}.htitle{font-size:16px;font-weight:bold}"
    ".legend{font-size:11px}.tick{fill:#555}.note{fill:#a33}"
    ".grid{stroke:#e4e4e4;stroke-width:1}.frame{fill:none;stroke:#bbb}"
    ".lane{stroke:#eee;stroke-width:10}.limit{stroke:#d62728;stroke-width:1.5;"
    "stroke-dasharray:6 4}"
    ".move{stroke-width:1;stroke-dasharray:2 3}.move.up{stroke:#2a9d8f}"
    ".move.down{stroke:#d62728}.marker{cursor:help}"
    "</style>";

void mg_report_svg(rp_buf *b, const mg_report *r, bool standalone)
{
	double lanes_end = 52 + (TITLE_H + CHART_H + AXIS_H) + TITLE_H + LANE_H * NLANES;
	double h = lanes_end + 12 + (r->metrics_ok ? 3 * (TITLE_H + CHART_H + AXIS_H) : 60) + 10;
	P(b,
	  "<svg %sclass=\"report\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
	  "role=\"img\" aria-label=\"migration report charts\">",
	  standalone ? "xmlns=\"http://www.w3.org/2000/svg\" " : "", W, h, W, h);
	PS(b, style);
	pen p = {.b = b, .r = r, .y = 0};
	char a[40], z[40];
	mg_report_time(a, sizeof(a), r->since_ms);
	mg_report_time(z, sizeof(z), r->until_ms);
	P(b, "<text class=\"htitle\" x=\"%.1f\" y=\"20\">", ML);
	E(b, r->plan);
	P(b, ": %s to %s (times UTC)</text>", a, z);
	if (r->metrics_ok) {
		char wb[32];
		mg_report_duration(wb, sizeof(wb), r->window_ms);
		P(b, "<text class=\"tick\" x=\"%.1f\" y=\"40\">RED from ", ML);
		E(b, r->metrics_source);
		P(b, ", each point the counts of the %s before it</text>", wb);
	} else {
		P(b,
		  "<text class=\"note\" x=\"%.1f\" y=\"40\">No RED charts: traffic and verdicts "
		  "from the journal alone (why: below)</text>",
		  ML);
	}
	p.y = 52;
	/* the move lines first, so the charts draw over them; their extent is known in advance */
	double top = p.y + TITLE_H, bottom = r->metrics_ok ? h - 10 - AXIS_H : lanes_end;
	move_lines(&p, top, bottom);
	traffic_chart(&p);
	events_lanes(&p);
	if (r->metrics_ok) {
		metric_chart(&p, "requests", "Requests per second", "/s", 1, NAN, NULL);
		metric_chart(&p, "error_rate", "Error rate (5xx, %)", "%", 100, r->max_error_rate,
		             "max_error_rate");
		char lt[64];
		if (isnan(r->quantile))
			snprintf(lt, sizeof(lt), "Latency (HAProxy's average, ms)");
		else
			snprintf(lt, sizeof(lt), "Latency (p%.4g, ms)", r->quantile * 100);
		metric_chart(&p, "latency", lt, "ms", 1000, r->max_latency_s, "max_latency");
	} else {
		wrapped(b, ML, p.y + 14, "note", r->metrics_note ? r->metrics_note : "no metrics",
		        140, 3);
	}
	PS(b, "</svg>");
}
