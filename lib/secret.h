/*
 * Bearer tokens a plan names by where they are (an environment variable or
 * a file), never by value: read once, kept out of every message, wiped when
 * freed. Cloudflare and Prometheus both use them.
 */
#ifndef MG_SECRET_H
#define MG_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct {
	char *value;      /* NULL when the plan names no token */
	char source[320]; /* "$NAME" or the file's path: what messages say instead of the value */
} mg_secret;

/*
 * Reads the token from env (a variable name) or else file; neither given
 * leaves out->value NULL and returns 0. The first line is taken, trimmed;
 * unset, empty, unreadable, or a value with spaces or control characters
 * (a header injection otherwise) is MG_EINVALID. what names the token in
 * messages ("Prometheus token"), key the plan section ("slo.prometheus").
 */
int mg_secret_read(mg_secret *out, const char *env, const char *file, const char *what,
                   const char *key, mg_error *err);

/*
 * The token in text (a file's content or a variable's value): its first line,
 * trimmed of blanks, at *start for *len bytes (0: empty). Returns false when
 * that line holds spaces or control characters: a header injection otherwise.
 * Shared with the kubeconfig's tokenFile so both take the same token.
 */
bool mg_secret_token_line(const char *text, const char **start, size_t *len);

/* Wipes and frees the value. */
void mg_secret_clear(mg_secret *s);

/* Replaces the value wherever it appears in err's message: whatever a server echoes back. */
void mg_secret_scrub(const mg_secret *s, mg_error *err);

#endif
