/* Byte-exact edits of nginx configuration text. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *mg_cm_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

bool mg_cm_path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '/')
		return path[0] == '/';
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

char *mg_cm_join(const char *dir, const char *rel)
{
	if (!*dir)
		return strdup(rel);
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '/')
		n = 0;
	while (*rel == '/')
		rel++;
	return mg_str_printf("%.*s/%s", (int)n, dir, rel);
}

size_t mg_cm_offset(mg_cm_private *p, const mg_ngx_directive *d)
{
	mg_ngx_span *spans = calloc((size_t)d->nargs + 1, sizeof(*spans));
	size_t off =
	    spans && !mg_nginxconf_spans(p->conf, d, spans, NULL) ? spans[0].start : (size_t)-1;
	free(spans);
	return off;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int mg_cm_spans(mg_cm_private *p, const mg_ngx_directive *d, cm_span *args, cm_span *term)
{
	if (d->is_lua_block || d->is_comment)
		return -1;
	mg_ngx_span *spans = calloc((size_t)d->nargs + 1, sizeof(*spans));
	mg_ngx_span t;
	int rc = spans ? mg_nginxconf_spans(p->conf, d, spans, &t) : -1;
	for (uint32_t i = 0; !rc && args && i < d->nargs; i++)
		args[i] = (cm_span){.start = spans[i + 1].start, .end = spans[i + 1].end};
	if (!rc && term)
		*term = (cm_span){.start = t.start, .end = t.end};
	free(spans);
	return rc ? -1 : 0;
}

char *mg_cm_quote(const char *value)
{
	bool bare = *value != '\0';
	size_t extra = 0;
	for (const char *c = value; *c; c++) {
		if (is_space(*c) || strchr(";{}\"'\\#", *c))
			bare = false;
		if (*c == '"' || *c == '\\')
			extra++;
	}
	if (bare)
		return strdup(value);
	char *out = malloc(strlen(value) + extra + 3), *o = out;
	if (!out)
		return NULL;
	*o++ = '"';
	for (const char *c = value; *c; c++) {
		if (*c == '"' || *c == '\\')
			*o++ = '\\';
		*o++ = *c;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

int mg_cm_edits_add(cm_edits *e, uint32_t file, size_t start, size_t end, const char *text)
{
	/* the same bytes edited twice (a file included from two places): the last one wins */
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].file == file && e->v[i].start == start && e->v[i].end == end) {
			char *t = strdup(text);
			if (!t)
				return -1;
			free(e->v[i].text);
			e->v[i].text = t;
			return 0;
		}
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 16;
		cm_edit *v = realloc(e->v, cap * sizeof(*v));
		if (!v)
			return -1;
		e->v = v;
		e->cap = cap;
	}
	char *t = strdup(text);
	if (!t)
		return -1;
	e->v[e->n++] = (cm_edit){.file = file, .start = start, .end = end, .text = t};
	return 0;
}

int mg_cm_edit_arg(mg_cm_private *p, cm_edits *e, const mg_ngx_directive *d, uint32_t i,
                   const char *value)
{
	cm_span *spans = calloc(d->nargs ? d->nargs : 1, sizeof(*spans));
	if (!spans)
		return -1;
	int rc = -1;
	char *q = mg_cm_quote(value);
	if (q && i < d->nargs && !mg_cm_spans(p, d, spans, NULL))
		rc = mg_cm_edits_add(e, d->file, spans[i].start, spans[i].end, q);
	free(q);
	free(spans);
	return rc;
}

const char *mg_cm_edit_find(const cm_edits *e, mg_cm_private *p, const mg_ngx_directive *d,
                            uint32_t i)
{
	bool any = false;
	for (size_t k = 0; k < e->n && !any; k++)
		any = e->v[k].file == d->file;
	if (!any)
		return NULL;
	cm_span *spans = calloc(d->nargs ? d->nargs : 1, sizeof(*spans));
	const char *found = NULL;
	if (spans && i < d->nargs && !mg_cm_spans(p, d, spans, NULL))
		for (size_t k = 0; k < e->n; k++)
			if (e->v[k].file == d->file && e->v[k].start == spans[i].start &&
			    e->v[k].end == spans[i].end)
				found = e->v[k].text;
	free(spans);
	return found;
}

void mg_cm_edits_clear(cm_edits *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i].text);
	free(e->v);
	*e = (cm_edits){0};
}

static int by_start(const void *a, const void *b)
{
	const cm_edit *x = *(const cm_edit *const *)a, *y = *(const cm_edit *const *)b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return (x->end > y->end) - (x->end < y->end);
}

char *mg_cm_apply(const mg_ngx_file *f, uint32_t fi, const cm_edits *e, size_t *len)
{
	size_t n = 0, grow = 0;
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].file == fi) {
			n++;
			grow += strlen(e->v[i].text);
		}
	const cm_edit **mine = calloc(n ? n : 1, sizeof(*mine));
	char *out = malloc(f->len + grow + 1);
	if (!mine || !out) {
		free(mine);
		free(out);
		return NULL;
	}
	n = 0;
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].file == fi)
			mine[n++] = &e->v[i];
	qsort(mine, n, sizeof(*mine), by_start);
	size_t o = 0, pos = 0;
	for (size_t i = 0; i < n; i++) {
		const cm_edit *x = mine[i];
		if (x->start < pos || x->end > f->len)
			continue; /* overlaps an earlier edit: keep the first */
		memcpy(out + o, f->data + pos, x->start - pos);
		o += x->start - pos;
		size_t tl = strlen(x->text);
		memcpy(out + o, x->text, tl);
		o += tl;
		pos = x->end;
	}
	memcpy(out + o, f->data + pos, f->len - pos);
	o += f->len - pos;
	out[o] = '\0';
	free(mine);
	*len = o;
	return out;
}

int mg_cm_buf_flush(cm_buf *b)
{
	if (b->sink && !b->err && !b->oom && b->n)
		b->err = b->sink(b->s, b->n, b->ud);
	b->n = 0;
	return b->oom ? MG_ENOMEM : b->err;
}

void mg_cm_buf_add(cm_buf *b, const char *data, size_t len)
{
	if (b->oom || b->err)
		return;
	/* 4 KB at most before the sink (stdio buffers behind it anyway): the buffer
	 * stays within 8 KB instead of adding to the peak of a large tree */
	if (b->sink && b->n + len > 4096) {
		mg_cm_buf_flush(b);
		if (len > 4096) {
			if (!b->err)
				b->err = b->sink(data, len, b->ud);
			return;
		}
	}
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + len + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s) {
			free(b->s);
			b->s = NULL;
			b->n = b->cap = 0;
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->n, data, len);
	b->n += len;
	b->s[b->n] = '\0';
}

void mg_cm_buf_str(cm_buf *b, const char *s)
{
	mg_cm_buf_add(b, s, strlen(s));
}

void mg_cm_buf_printf(cm_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		free(b->s);
		b->s = NULL;
		b->n = b->cap = 0;
		b->oom = true;
		return;
	}
	mg_cm_buf_add(b, s, (size_t)n);
	free(s);
}

char *mg_cm_buf_take(cm_buf *b)
{
	char *s = b->oom ? NULL : b->s ? b->s : strdup("");
	*b = (cm_buf){0};
	return s;
}
