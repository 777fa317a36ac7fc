#include "error.h"

#include "secret.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mg_error_set(mg_error *err, int code, const char *fmt, ...)
{
	if (err) {
		/* formatted whole and scrubbed before the cut: half a secret would not match */
		char *full = NULL;
		va_list ap;
		va_start(ap, fmt);
		int n = vasprintf(&full, fmt, ap);
		va_end(ap);
		char *clean = n >= 0 ? mg_scrub_dup(full) : NULL;
		snprintf(err->message, sizeof(err->message), "%s",
		         clean ? clean : "out of memory (while formatting an error message)");
		free(clean);
		free(n >= 0 ? full : NULL);
		err->code = code;
	}
	return code;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void mg_error_diag(mg_error *err, mg_severity sev, const char *file, int line, int col,
                   const char *path, const char *fmt, ...)
{
	if (!err)
		return;
	if (err->ndiags == err->cap) {
		size_t cap = err->cap ? err->cap * 2 : 8;
		mg_diag *d = realloc(err->diags, cap * sizeof(*d));
		if (!d)
			return; /* out of memory: the error code still tells the caller */
		err->diags = d;
		err->cap = cap;
	}
	char msg[1024], *full = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&full, fmt, ap);
	va_end(ap);
	char *clean = n >= 0 ? mg_scrub_dup(full) : NULL;
	snprintf(msg, sizeof(msg), "%s", clean ? clean : "out of memory");
	free(clean);
	free(n >= 0 ? full : NULL);
	mg_diag *d = &err->diags[err->ndiags++];
	d->severity = sev;
	d->file = dup_or_null(file);
	d->line = line;
	d->col = col;
	d->path = dup_or_null(path && *path ? path : NULL);
	d->message = strdup(msg);
}

size_t mg_error_count(const mg_error *err, mg_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; err && i < err->ndiags; i++)
		n += err->diags[i].severity == sev;
	return n;
}

void mg_diag_format(char *buf, size_t size, const mg_diag *d)
{
	char loc[600] = "";
	if (d->file && d->line > 0)
		snprintf(loc, sizeof(loc), "%s:%d:%d: ", d->file, d->line, d->col);
	else if (d->file)
		snprintf(loc, sizeof(loc), "%s: ", d->file);
	snprintf(buf, size, "%s%s%s%s", loc, d->path ? d->path : "", d->path ? ": " : "",
	         d->message ? d->message : "");
}

void mg_error_clear(mg_error *err)
{
	if (!err)
		return;
	for (size_t i = 0; i < err->ndiags; i++) {
		free(err->diags[i].file);
		free(err->diags[i].path);
		free(err->diags[i].message);
	}
	free(err->diags);
	memset(err, 0, sizeof(*err));
}

const char *mg_error_name(int code)
{
	switch (code) {
	case MG_OK:
		return "ok";
	case MG_ERROR:
		return "failed";
	case MG_EINVALID:
		return "invalid input";
	case MG_ELOCKED:
		return "locked";
	case MG_ECONFLICT:
		return "state conflict";
	case MG_EINCONCLUSIVE:
		return "inconclusive";
	case MG_ENOTFOUND:
		return "not found";
	case MG_EIO:
		return "I/O error";
	case MG_ENOMEM:
		return "out of memory";
	case MG_ECANCELED:
		return "canceled";
	case MG_EUNRECORDED:
		return "not recorded";
	}
	return "unknown error";
}

int mg_error_oom(mg_error *err)
{
	return mg_error_set(err, MG_ENOMEM, "out of memory");
}

json_t *mg_error_diags_json(const mg_error *err, mg_severity sev)
{
	json_t *a = json_array();
	for (size_t i = 0; err && i < err->ndiags; i++) {
		const mg_diag *d = &err->diags[i];
		if (d->severity != sev)
			continue;
		json_array_append_new(a, json_pack("{s:s?, s:i, s:i, s:s?, s:s}", "file", d->file,
		                                   "line", d->line, "column", d->col, "path",
		                                   d->path, "message", d->message));
	}
	return a;
}

json_t *mg_error_json(const mg_error *err, int code, const char *message)
{
	json_t *e = json_pack("{s:s, s:s}", "kind",
	                      mg_error_name(err && err->code ? err->code : code), "message",
	                      message ? message
	                      : err   ? err->message
	                              : "");
	json_object_set_new(e, "diagnostics", mg_error_diags_json(err, MG_SEV_ERROR));
	return e;
}
