#include "secret.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		rc = mg_error_set(err, MG_ENOMEM, "out of memory");
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

void mg_secret_scrub(const mg_secret *s, mg_error *err)
{
	if (!err || !s->value || !*s->value)
		return;
	size_t n = strlen(s->value);
	char *p;
	while ((p = strstr(err->message, s->value)) != NULL) {
		static const char mask[] = "<redacted>";
		size_t m = strlen(mask), rest = strlen(p + n);
		if (m <= n) {
			memcpy(p, mask, m);
			memmove(p + m, p + n, rest + 1);
		} else {
			memset(p, '*', n);
		}
	}
}
