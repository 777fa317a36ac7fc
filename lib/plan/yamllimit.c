#include "yamllimit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

enum { NORMAL, DQUOTE, SQUOTE, BLOCK_SCALAR };

typedef struct {
	const char *file;
	const mg_yaml_limits *lim;
	mg_error *err;
	size_t line;
	const char *ls; /* start of the current line */
} scan;

static int refuse(scan *s, const char *at, const char *what)
{
	int line = (int)(s->line > (size_t)0x7fffffff ? 0x7fffffff : s->line);
	int col = (int)((size_t)(at - s->ls) > 0x7ffffffe ? 0x7fffffff : (at - s->ls) + 1);
	mg_error_diag(s->err, MG_SEV_ERROR, s->file, line, col, NULL,
	              "%s (a limit; see \"Limits\" in docs/plan.md)", what);
	return mg_error_set(s->err, MG_EINVALID,
	                    "%s:%d:%d: %s (a limit; see \"Limits\" in docs/plan.md)",
	                    s->file ? s->file : "<yaml>", line, col, what);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool flow_ind(char c)
{
	return c == '[' || c == ']' || c == '{' || c == '}' || c == ',';
}

int mg_yaml_limits_check(const char *text, size_t len, const char *file, const mg_yaml_limits *lim,
                         mg_error *err)
{
	scan s = {.file = file, .lim = lim, .err = err, .line = 0, .ls = text};
	char what[160];
	/* indents of the open block collections; deeper than the limit is refused, so bounded */
	size_t *stack = malloc((lim->max_depth + 2) * sizeof(*stack));
	if (!stack)
		return mg_error_oom(err);
	size_t nstack = 0, flow = 0, anchors = 0, aliases = 0, bs_indent = 0;
	int mode = NORMAL;
	bool start = true; /* at the start of a node: indicators mean something */
	int rc = 0;
	const char *end = text + len;
	for (const char *ls = text; ls < end && !rc;) {
		const char *le = ls;
		while (le < end && *le != '\n')
			le++;
		s.line++;
		s.ls = ls;
		if ((size_t)(le - ls) > lim->max_line) {
			snprintf(what, sizeof(what), "line longer than %zu KiB",
			         lim->max_line / 1024);
			rc = refuse(&s, ls + lim->max_line, what);
			break;
		}
		const char *p = ls;
		size_t indent = 0;
		while (p < le && *p == ' ')
			p++, indent++;
		if (mode == BLOCK_SCALAR) {
			const char *q = p;
			while (q < le && blank(*q))
				q++;
			if (q == le || indent > bs_indent)
				goto next_line; /* content (or an empty line) of the block scalar */
			mode = NORMAL;
		}
		if (mode == NORMAL && flow == 0) {
			start = true;
			const char *q = p;
			while (q < le && blank(*q))
				q++;
			if (q == le || *q == '#')
				goto next_line;
			if (le - ls >= 3 && ls[0] == ls[1] && ls[1] == ls[2] &&
			    (ls[0] == '-' || ls[0] == '.') && (le - ls == 3 || blank(ls[3]))) {
				nstack = 0; /* a document marker */
				p = ls + 3;
			} else {
				while (nstack && stack[nstack - 1] > indent)
					nstack--;
				if (!nstack || stack[nstack - 1] < indent)
					stack[nstack++] = indent;
				/* "- - x": each entry opens a collection one level deeper */
				while (p < le && (*p == '-' || *p == '?') &&
				       (p + 1 == le || blank(p[1]))) {
					p++;
					while (p < le && blank(*p))
						p++;
					if (p < le && *p != '#') {
						if (nstack > lim->max_depth)
							break;
						stack[nstack++] = (size_t)(p - ls);
					}
				}
			}
			if (nstack > lim->max_depth) {
				snprintf(what, sizeof(what), "nesting deeper than %zu levels",
				         lim->max_depth);
				rc = refuse(&s, p, what);
				break;
			}
		}
		for (; p < le && !rc; p++) {
			char c = *p;
			if (mode == DQUOTE) {
				if (c == '\\' && p + 1 < le)
					p++;
				else if (c == '"')
					mode = NORMAL, start = false;
				continue;
			}
			if (mode == SQUOTE) {
				if (c == '\'' && p + 1 < le && p[1] == '\'')
					p++;
				else if (c == '\'')
					mode = NORMAL, start = false;
				continue;
			}
			if (blank(c))
				continue;
			if (c == '#' && (p == ls || blank(p[-1])))
				break; /* a comment */
			bool next_blank = p + 1 == le || blank(p[1]) || (flow && flow_ind(p[1]));
			if (start) {
				if (c == '"') {
					mode = DQUOTE;
					continue;
				}
				if (c == '\'') {
					mode = SQUOTE;
					continue;
				}
				if (c == '&' || c == '*' || c == '!') {
					const char *at = p;
					while (p + 1 < le && !blank(p[1]) && !flow_ind(p[1]))
						p++;
					if (c == '&' && ++anchors > lim->max_anchors) {
						snprintf(what, sizeof(what),
						         "more than %zu anchors (&name)",
						         lim->max_anchors);
						rc = refuse(&s, at, what);
					} else if (c == '*' && ++aliases > lim->max_aliases) {
						snprintf(what, sizeof(what),
						         "more than %zu aliases (*name)",
						         lim->max_aliases);
						rc = refuse(&s, at, what);
					}
					start = c != '*';
					continue;
				}
				if ((c == '|' || c == '>') && !flow) {
					mode = BLOCK_SCALAR;
					bs_indent = indent;
					break;
				}
				if ((c == '-' || c == '?' || c == ':') && next_blank)
					continue;
			}
			if (c == '[' || c == '{') {
				if (!start && !flow)
					continue; /* inside a plain scalar: "x[5m]" */
				flow++;
				start = true;
				if (nstack + flow > lim->max_depth) {
					snprintf(what, sizeof(what),
					         "nesting deeper than %zu levels", lim->max_depth);
					rc = refuse(&s, p, what);
				}
				continue;
			}
			if (flow && (c == ']' || c == '}')) {
				flow--;
				start = false;
				continue;
			}
			if (flow && c == ',') {
				start = true;
				continue;
			}
			if (c == ':' && next_blank) {
				start = true;
				continue;
			}
			start = false;
		}
	next_line:
		ls = le < end ? le + 1 : le;
	}
	free(stack);
	return rc;
}
