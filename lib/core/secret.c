#include "secret.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fs.h"

int mg_secret_read(mg_secret *out, const char *env, const char *file, const char *what,
                   const char *key, mg_error *err)
{
	char *raw = NULL;
	size_t rawlen = 0;
	const char *v;
	memset(out, 0, sizeof(*out));
	if (env && *env) {
		snprintf(out->source, sizeof(out->source), "$%s", env);
		v = getenv(env);
		if (!v)
			return mg_error_set(
			    err, MG_EINVALID,
			    "the environment variable %s is not set; export the %s in "
			    "it (%s.token_env)",
			    env, what, key);
	} else if (file && *file) {
		snprintf(out->source, sizeof(out->source), "%s", file);
		mg_error ferr = MG_ERROR_INIT;
		if (mg_fs_read_file(&raw, &rawlen, file, MG_INPUT_MAX_BYTES, "the token file",
		                    &ferr)) {
			int rc =
			    mg_error_set(err, MG_EINVALID, "cannot read the %s (%s.token_file): %s",
			                 what, key, ferr.message);
			mg_error_clear(&ferr);
			return rc;
		}
		v = raw;
	} else {
		return 0;
	}
	const char *s;
	size_t n;
	bool bad = !mg_secret_token_line(v, &s, &n);
	int rc = 0;
	if (!n && raw)
		rc = mg_error_set(err, MG_EINVALID,
		                  "%s is empty: its first line must be the %s (%s.token_file)",
		                  file, what, key);
	else if (!n)
		rc = mg_error_set(err, MG_EINVALID,
		                  "the environment variable %s is empty; export the %s in it "
		                  "(%s.token_env)",
		                  env, what, key);
	else if (bad)
		/* the value itself is never shown */
		rc = mg_error_set(err, MG_EINVALID,
		                  "the %s in %s contains spaces or control characters; it must be "
		                  "the token alone",
		                  what, out->source);
	else if (!(out->value = strndup(s, n)))
		rc = mg_error_oom(err);
	else
		/* from here on it is masked wherever it shows up */
		rc = mg_secret_register(out->value) ? mg_error_oom(err) : 0;
	if (raw) {
		explicit_bzero(raw, rawlen);
		free(raw);
	}
	return rc;
}

bool mg_secret_token_line(const char *text, const char **start, size_t *len)
{
	/* the first line, trimmed: files often end in a newline, variables sometimes too */
	const char *s = text;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t n = strcspn(s, "\r\n");
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	bool bad = false;
	for (size_t i = 0; i < n; i++)
		bad |= (unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f;
	*start = s;
	*len = n;
	return !bad;
}

void mg_secret_clear(mg_secret *s)
{
	if (s->value) {
		explicit_bzero(s->value, strlen(s->value));
		free(s->value);
	}
	s->value = NULL;
}

/* ---- the registry ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static char **reg;
static size_t *reg_len;
static size_t nreg, capreg;

static void wipe_all(void)
{
	for (size_t i = 0; i < nreg; i++) {
		explicit_bzero(reg[i], reg_len[i]);
		free(reg[i]);
	}
	free(reg);
	free(reg_len);
	reg = NULL;
	reg_len = NULL;
	nreg = capreg = 0;
}

void mg_secret_forget_all(void)
{
	pthread_mutex_lock(&reg_lock);
	wipe_all();
	pthread_mutex_unlock(&reg_lock);
}

size_t mg_secret_registered(void)
{
	pthread_mutex_lock(&reg_lock);
	size_t n = nreg;
	pthread_mutex_unlock(&reg_lock);
	return n;
}

int mg_secret_register_n(const char *value, size_t n)
{
	if (!value)
		return 0;
	/* a value that is only blanks is no secret, and its blanks would mask every space */
	size_t lead = 0;
	while (lead < n && isspace((unsigned char)value[lead]))
		lead++;
	if (n - lead < MG_SECRET_MIN_LEN)
		return 0;
	pthread_mutex_lock(&reg_lock);
	int rc = 0;
	for (size_t i = 0; i < nreg; i++)
		if (reg_len[i] == n && !memcmp(reg[i], value, n))
			goto out;
	if (nreg == capreg) {
		size_t cap = capreg ? capreg * 2 : 8;
		char **r = realloc(reg, cap * sizeof(*r));
		if (r)
			reg = r;
		size_t *l = r ? realloc(reg_len, cap * sizeof(*l)) : NULL;
		if (!r || !l) {
			rc = MG_ENOMEM;
			goto out;
		}
		reg_len = l;
		capreg = cap;
	}
	char *copy = malloc(n + 1);
	if (!copy) {
		rc = MG_ENOMEM;
		goto out;
	}
	memcpy(copy, value, n);
	copy[n] = '\0';
	/* longest first, so of two overlapping values the longer one is tried first */
	size_t at = nreg;
	while (at > 0 && reg_len[at - 1] < n) {
		reg[at] = reg[at - 1];
		reg_len[at] = reg_len[at - 1];
		at--;
	}
	reg[at] = copy;
	reg_len[at] = n;
	nreg++;
	/*
	 * Kept until the process ends, never wiped at exit: a thread still logging
	 * while exit handlers run must still have its secrets masked.
	 */
out:
	pthread_mutex_unlock(&reg_lock);
	return rc;
}

int mg_secret_register(const char *value)
{
	return value ? mg_secret_register_n(value, strlen(value)) : 0;
}

/* ---- scrubbing ---- */

static bool tok_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' ||
	       c == '=';
}

static bool word_char(unsigned char c)
{
	return isalnum(c) || c == '_';
}

static void mark(bool *m, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		m[i] = true;
}

/* Registered values: whole, and the first or last 8+ bytes of a long one (a cut elsewhere). */
static void mark_registered(bool *m, const char *s, size_t n)
{
	enum { PART = 8 };
	for (size_t k = 0; k < nreg; k++) {
		const char *v = reg[k];
		size_t len = reg_len[k];
		bool partial = len >= MG_SECRET_PARTIAL_MIN;
		for (size_t j = 0; partial && j < len; j++)
			partial = !isspace((unsigned char)v[j]);
		for (size_t i = 0; i < n; i++) {
			if (s[i] != v[0] && !(partial && s[i] == v[len - PART]))
				continue;
			if (n - i >= len && !memcmp(s + i, v, len)) {
				mark(m, i, i + len);
				continue;
			}
			if (!partial)
				continue;
			/* a prefix of the value, ended by the text or by a byte that differs */
			size_t p = 0;
			while (i + p < n && p < len && s[i + p] == v[p])
				p++;
			if (p >= PART)
				mark(m, i, i + p);
			/* a suffix: the last PART bytes here, extended backwards */
			if (n - i >= PART && !memcmp(s + i, v + len - PART, PART)) {
				size_t b = 0;
				while (b < i && PART + b < len &&
				       s[i - 1 - b] == v[len - PART - 1 - b])
					b++;
				mark(m, i - b, i + PART);
			}
		}
	}
}

static bool at_word_ci(const char *s, size_t n, size_t i, const char *w)
{
	size_t l = strlen(w);
	if (i + l > n || strncasecmp(s + i, w, l) != 0)
		return false;
	if (i > 0 && (word_char((unsigned char)s[i - 1]) || s[i - 1] == '-'))
		return false;
	return i + l == n || !word_char((unsigned char)s[i + l]);
}

/* "Authorization: v", "Authorization=v", "\"Authorization\": \"v\"", 'X-Auth-Key': 'v'... */
static void mark_header(bool *m, const char *s, size_t n, size_t i, size_t l)
{
	size_t j = i + l;
	bool named_quoted = j < n && (s[j] == '"' || s[j] == '\'');
	if (named_quoted)
		j++;
	while (j < n && s[j] == ' ')
		j++;
	if (j < n && (s[j] == ':' || s[j] == '=')) {
		j++;
		while (j < n && (s[j] == ' ' || s[j] == '\t'))
			j++;
	} else if (named_quoted || j == i + l || j >= n || (s[j] != '"' && s[j] != '\'')) {
		/* not a header: only `Authorization "value"` (a config line) is taken too */
		return;
	}
	char quote = 0;
	if (j < n && (s[j] == '"' || s[j] == '\'')) {
		quote = s[j];
		j++;
	}
	size_t from = j;
	/* "Bearer <from $TOKEN>", "<redacted>": a placeholder, not a credential */
	size_t w = j;
	while (w < n && isalpha((unsigned char)s[w]))
		w++;
	while (w < n && s[w] == ' ')
		w++;
	if (w < n && (s[w] == '<' || s[w] == '['))
		return;
	while (j < n && s[j] != '\n' && s[j] != '\r' &&
	       (quote ? s[j] != quote : !strchr(",;}\"'&", s[j])))
		j++;
	/* the value ends where it ends: blanks before the delimiter stay */
	size_t to = j;
	while (to > from && (s[to - 1] == ' ' || s[to - 1] == '\t'))
		to--;
	if (to > from)
		mark(m, from, to);
}

static void mark_shapes(bool *m, const char *s, size_t n)
{
	static const char *const headers[] = {"authorization", "proxy-authorization", "x-auth-key",
	                                      "x-auth-token"};
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 'a' || c == 'A' || c == 'p' || c == 'P' || c == 'x' || c == 'X')
			for (size_t h = 0; h < sizeof(headers) / sizeof(*headers); h++)
				if (at_word_ci(s, n, i, headers[h]))
					mark_header(m, s, n, i, strlen(headers[h]));
		if ((c == 'b' || c == 'B') && at_word_ci(s, n, i, "bearer")) {
			size_t j = i + 6, from;
			while (j < n && (s[j] == ' ' || s[j] == '\t'))
				j++;
			from = j;
			bool digit = false;
			while (j < n && tok_char((unsigned char)s[j]))
				digit |= isdigit((unsigned char)s[j++]);
			/* "Bearer authentication" is prose; a token is long and has a digit */
			if (from > i + 6 && j - from >= 8 && digit)
				mark(m, from, j);
		}
		if (c == 'e' && i + 3 <= n && !memcmp(s + i, "eyJ", 3) &&
		    (i == 0 || !tok_char((unsigned char)s[i - 1]))) {
			/* a JWT: base64url header "{"..., payload and signature, dot-separated */
			size_t j = i, dots = 0;
			while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '-' ||
			                 s[j] == '_' || s[j] == '.'))
				dots += s[j++] == '.';
			if (dots >= 2 && j - i >= 20)
				mark(m, i, j);
		}
		if (c == '-' && i + 10 <= n && !memcmp(s + i, "-----BEGIN", 10)) {
			const char *eol = memchr(s + i, '\n', n - i);
			size_t hl = eol ? (size_t)(eol - (s + i)) : n - i;
			if (memmem(s + i, hl, "PRIVATE KEY-----", 16)) {
				const char *end = memmem(s + i, n - i, "-----END", 8);
				const char *fin =
				    end ? memmem(end, n - (size_t)(end - s), "KEY-----", 8) : NULL;
				mark(m, i, fin ? (size_t)(fin - s) + 8 : n);
			}
		}
	}
}

char *mg_scrub_ndup(const char *s, size_t n)
{
	if (!s)
		n = 0;
	bool *m = calloc(n + 1, 1);
	if (!m)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	mark_registered(m, s, n);
	pthread_mutex_unlock(&reg_lock);
	mark_shapes(m, s, n);
	size_t red = strlen(MG_REDACTED), out = 0;
	for (size_t i = 0; i < n; i++)
		out += m[i] ? (i == 0 || !m[i - 1] ? red : 0) : 1;
	char *r = malloc(out + 1);
	if (r) {
		size_t o = 0;
		for (size_t i = 0; i < n; i++) {
			if (!m[i]) {
				r[o++] = s[i] ? s[i] : ' ';
			} else if (i == 0 || !m[i - 1]) {
				memcpy(r + o, MG_REDACTED, red);
				o += red;
			}
		}
		r[o] = '\0';
	}
	free(m);
	return r;
}

char *mg_scrub_dup(const char *s)
{
	return mg_scrub_ndup(s ? s : "", s ? strlen(s) : 0);
}

/* Out of memory, a text that cannot be scrubbed is not shown at all. */
static const char oom_text[] = "[redacted: out of memory while scrubbing]";

void mg_scrub(char *buf, size_t size)
{
	if (!buf || !size)
		return;
	char *r = mg_scrub_dup(buf);
	snprintf(buf, size, "%s", r ? r : oom_text);
	if (r) {
		explicit_bzero(r, strlen(r));
		free(r);
	}
}

void mg_scrub_append(char *dst, size_t size, const char *src)
{
	if (!dst || !size)
		return;
	size_t o = strnlen(dst, size - 1);
	char *r = mg_scrub_dup(src);
	const char *t = r ? r : oom_text;
	for (; *t && o + 1 < size; t++)
		dst[o++] = (unsigned char)*t < 0x20 || *t == 0x7f ? ' ' : *t;
	dst[o] = '\0';
	free(r);
}

void mg_scrub_cut(char *dst, size_t size, const char *src, size_t max)
{
	if (!dst || !size)
		return;
	dst[0] = '\0';
	char *r = mg_scrub_dup(src);
	const char *t = r ? r : oom_text;
	size_t n = strlen(t), lim = size - 1;
	if (max && max < lim)
		lim = max;
	bool cut = n > lim;
	/* the "..." counts in max too: a max below 3 gets that many dots and no text */
	size_t dots = cut ? (lim < 3 ? lim : 3) : 0;
	lim -= dots;
	size_t o = 0;
	for (; o < n && o < lim; o++)
		dst[o] = (unsigned char)t[o] < 0x20 || t[o] == 0x7f ? ' ' : t[o];
	for (size_t k = 0; k < dots; k++)
		dst[o++] = '.';
	dst[o] = '\0';
	free(r);
}

void mg_scrub_error(mg_error *err)
{
	if (!err)
		return;
	mg_scrub(err->message, sizeof(err->message));
	for (size_t i = 0; i < err->ndiags; i++) {
		char *r = err->diags[i].message ? mg_scrub_dup(err->diags[i].message) : NULL;
		if (err->diags[i].message && !r)
			r = strdup(oom_text);
		free(err->diags[i].message);
		err->diags[i].message = r;
	}
}

void mg_scrub_json(json_t *doc)
{
	if (json_is_string(doc)) {
		char *r = mg_scrub_ndup(json_string_value(doc), json_string_length(doc));
		/* a partial match can end inside a UTF-8 sequence: then the whole value goes */
		if (json_string_set(doc, r ? r : oom_text) != 0)
			json_string_set(doc, MG_REDACTED);
		free(r);
	} else if (json_is_object(doc)) {
		const char *k;
		json_t *v;
		json_object_foreach(doc, k, v) mg_scrub_json(v);
	} else if (json_is_array(doc)) {
		size_t i;
		json_t *v;
		json_array_foreach(doc, i, v) mg_scrub_json(v);
	}
}
