/*
 * libFuzzer target for the nginx configuration lexer and parser: any bytes
 * must give either a tree or one error with nginx's message, never a crash,
 * a leak or undefined behaviour. Includes are recorded, not followed (no
 * prefix), so a run reads no file. The tree is walked, each directive found
 * again in the bytes (mg_nginxconf_spans) and all turned into JSON, so a
 * dangling pointer, a bad length or a lexer that disagrees with itself shows.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nginxconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Every directive's words must be found again by mg_nginxconf_spans(), in
 * order, and a bare word without backslashes must be its bytes exactly.
 */
static void check_spans(const mg_nginxconf *conf, const mg_ngx_directive *d)
{
	const mg_ngx_file *f = mg_nginxconf_file(conf, d->file);
	mg_ngx_span *sp = malloc((d->nargs + 1) * sizeof(*sp)), term;
	if (!sp)
		return;
	if (mg_nginxconf_spans(conf, d, sp, &term) != 0)
		abort();
	size_t prev = 0;
	for (size_t i = 0; i <= d->nargs; i++) {
		if (sp[i].start < prev || sp[i].end < sp[i].start || sp[i].end > f->len)
			abort();
		prev = sp[i].end;
		const char *w = i ? d->args[i - 1] : d->name;
		int q = i ? mg_ngx_arg_quote(d, i - 1) : mg_ngx_name_quote(d);
		size_t n = sp[i].end - sp[i].start;
		if (!q && !memchr(f->data + sp[i].start, '\\', n) &&
		    !memchr(f->data + sp[i].start, '\0', n) &&
		    (strlen(w) != n || memcmp(w, f->data + sp[i].start, n) != 0))
			abort();
	}
	if (term.start < prev || term.end != term.start + 1)
		abort();
	free(sp);
}

static size_t walk(const mg_nginxconf *conf, const mg_ngx_directive *d, size_t n)
{
	size_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		sum += strlen(d[i].name) + (size_t)mg_ngx_name_quote(&d[i]);
		for (size_t k = 0; k < d[i].nargs; k++)
			sum += strlen(d[i].args[k]) + (size_t)mg_ngx_arg_quote(&d[i], k);
		if (!d[i].is_comment)
			check_spans(conf, &d[i]);
		if (d[i].has_block)
			sum += walk(conf, d[i].block, d[i].nblock);
	}
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte picks the options, so both comment modes are explored */
	mg_nginxconf_options opt = {.keep_comments = size > 0 && (data[0] & 1)};
	mg_nginxconf *conf = NULL;
	mg_error err = MG_ERROR_INIT;
	json_t *j;
	if (mg_nginxconf_parse_buffer(&conf, (const char *)data, size, "fuzz.conf", &opt, &err) ==
	    0) {
		const mg_ngx_file *f = mg_nginxconf_file(conf, 0);
		volatile size_t sum = walk(conf, f->dirs, f->ndirs);
		(void)sum;
		j = mg_nginxconf_to_json(conf, opt.keep_comments);
		mg_nginxconf_free(conf);
	} else {
		j = mg_nginxconf_error_json(&err);
	}
	char *s = json_dumps(j, JSON_COMPACT);
	free(s);
	json_decref(j);
	for (size_t i = 0; i < err.ndiags; i++) {
		char buf[4096];
		mg_diag_format(buf, sizeof(buf), &err.diags[i]);
	}
	mg_error_clear(&err);
	return 0;
}
