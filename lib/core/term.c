/* The terminal filter (lib/term.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term.h"

#define MARKER_LEN (1 + MG_TERM_NONCE_LEN + 1)

struct mg_term_filter {
	mg_term_options o;
	unsigned char carry[MARKER_LEN]; /* an incomplete marker or UTF-8 sequence */
	size_t ncarry;
	char out[4096];
	size_t nout;
};

int mg_term_filter_new(mg_term_filter **out, const mg_term_options *o, mg_error *err)
{
	*out = NULL;
	if (!o->write || o->ncodes > 26 || (o->ncodes && (!o->codes || !o->nonce)))
		return mg_error_set(err, MG_EINVALID, "terminal filter: bad options");
	mg_term_filter *f = calloc(1, sizeof(*f));
	if (!f)
		return mg_error_oom(err);
	f->o = *o;
	*out = f;
	return 0;
}

void mg_term_filter_free(mg_term_filter *f)
{
	free(f);
}

static void out_flush(mg_term_filter *f)
{
	if (f->nout)
		f->o.write(f->out, f->nout, f->o.ud);
	f->nout = 0;
}

static void out_bytes(mg_term_filter *f, const void *p, size_t n)
{
	if (f->nout + n > sizeof(f->out))
		out_flush(f);
	memcpy(f->out + f->nout, p, n);
	f->nout += n;
}

static void out_escape(mg_term_filter *f, bool code_point, unsigned v)
{
	char e[16];
	int n = code_point ? snprintf(e, sizeof(e), "\\u%04x", v)
	                   : snprintf(e, sizeof(e), "\\x%02x", v);
	out_bytes(f, e, (size_t)n);
}

/* Whether a code point is one the terminal acts on instead of showing. */
static bool unsafe_cp(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * Filters d[0..n). Returns how many bytes were consumed: fewer than n only
 * when the tail may be the start of a marker or a UTF-8 sequence and more
 * may come (!final).
 */
static size_t filter_run(mg_term_filter *f, const unsigned char *d, size_t n, bool final)
{
	const char *nonce = f->o.nonce;
	size_t i = 0;
	while (i < n) {
		unsigned char c = d[i];
		if (c == 0x01 && f->o.ncodes) {
			size_t avail = n - i;
			size_t cmp = avail - 1 < MG_TERM_NONCE_LEN ? avail - 1 : MG_TERM_NONCE_LEN;
			if (!memcmp(d + i + 1, nonce, cmp)) {
				if (avail < MARKER_LEN && !final)
					return i;
				unsigned char letter =
				    avail >= MARKER_LEN ? d[i + 1 + MG_TERM_NONCE_LEN] : 0;
				if (letter >= 'a' && letter < 'a' + f->o.ncodes) {
					const char *code = f->o.codes[letter - 'a'];
					out_bytes(f, code, strlen(code));
					i += MARKER_LEN;
					continue;
				}
			}
			out_escape(f, false, c);
			i++;
			continue;
		}
		if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
			out_bytes(f, &c, 1);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			out_escape(f, c == 0x7f, c);
			i++;
			continue;
		}
		size_t len = c >= 0xc2 && c <= 0xdf   ? 2
		             : c >= 0xe0 && c <= 0xef ? 3
		             : c >= 0xf0 && c <= 0xf4 ? 4
		                                      : 0;
		uint32_t cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
		size_t k = 1;
		for (; len && k < len && i + k < n && (d[i + k] & 0xc0) == 0x80; k++)
			cp = cp << 6 | (d[i + k] & 0x3f);
		if (len && k < len && i + k == n && !final)
			return i; /* the rest of the sequence is in the next feed */
		bool valid = len && k == len && !(len == 3 && cp < 0x800) &&
		             !(len == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
		             !(cp >= 0xd800 && cp <= 0xdfff);
		if (!valid) {
			out_escape(f, false, c);
			i++;
		} else if (unsafe_cp(cp)) {
			out_escape(f, true, cp);
			i += len;
		} else {
			out_bytes(f, d + i, len);
			i += len;
		}
	}
	return n;
}

void mg_term_filter_feed(mg_term_filter *f, const char *buf, size_t size, bool final)
{
	if (f->ncarry) {
		/* the carried bytes and enough of this feed to finish any marker or sequence */
		unsigned char tmp[2 * MARKER_LEN];
		size_t take = size < MARKER_LEN ? size : MARKER_LEN;
		memcpy(tmp, f->carry, f->ncarry);
		if (take)
			memcpy(tmp + f->ncarry, buf, take);
		size_t have = f->ncarry + take;
		bool more = take < size;
		size_t used = filter_run(f, tmp, have, final && !more);
		if (used < f->ncarry) { /* still incomplete: only when this feed was short */
			memmove(f->carry, tmp + used, have - used);
			f->ncarry = have - used;
			out_flush(f);
			return;
		}
		buf += used - f->ncarry;
		size -= used - f->ncarry;
		f->ncarry = 0;
	}
	size_t used = filter_run(f, (const unsigned char *)buf, size, final);
	f->ncarry = size - used;
	if (f->ncarry)
		memcpy(f->carry, buf + used, f->ncarry);
	out_flush(f);
}
