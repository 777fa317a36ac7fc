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

/*
 * The process-wide registry of secret values and the one scrubbing step.
 *
 * Every secret migrate loads (API tokens, kubeconfig tokens and client keys,
 * exec plugins' credentials, the SSH passphrase) is registered where it is
 * loaded; every text that comes from a remote party (an API's answer, a
 * plugin's stderr, a command's output) goes through mg_scrub_* BEFORE it is
 * cut, printed, logged or journalled, because a secret cut in half no longer
 * matches. mg_error_set, mg_error_diag, mg_log and the writers of the
 * journal, state.json and fleet.json scrub again as a last line of defence.
 *
 * Scrubbing replaces with MG_REDACTED: every registered value; for values of
 * at least MG_SECRET_PARTIAL_MIN bytes without blanks, also any run of at least
 * 8 of their first or last bytes (what a cut elsewhere left); the value of an
 * (Proxy-)Authorization, X-Auth-Key or X-Auth-Token header, field or config
 * line (`Authorization "v"`), unless it is a placeholder ("<from $X>"); the
 * token after "Bearer " (8+ token characters with a digit); JWTs
 * ("eyJ...x.y"); PEM private key blocks. All functions are thread-safe.
 */
#define MG_REDACTED "[redacted]"
/* Shorter values are not registered: masking them would mangle ordinary words. */
#define MG_SECRET_MIN_LEN     6
#define MG_SECRET_PARTIAL_MIN 12

/* Registers a copy of value (NULL, shorter than MG_SECRET_MIN_LEN: ignored). 0 or MG_ENOMEM. */
int mg_secret_register(const char *value);
/* The same for n bytes of value (a PEM block, a token inside a larger buffer). */
int mg_secret_register_n(const char *value, size_t n);
/* How many values are registered (for tests). */
size_t mg_secret_registered(void);
/* Wipes and forgets every registered value (for tests: a process keeps them to its end). */
void mg_secret_forget_all(void);

/* Scrubs the string in buf in place; the result is cut to size - 1 bytes AFTER scrubbing. */
void mg_scrub(char *buf, size_t size);
/* A scrubbed copy of n bytes of s (NUL bytes become spaces); NULL when out of memory. */
char *mg_scrub_ndup(const char *s, size_t n);
/* A scrubbed copy of s (NULL: an empty string); NULL when out of memory. */
char *mg_scrub_dup(const char *s);
/*
 * Scrubs src, then cuts it to max bytes (0: no limit beyond size) adding "..."
 * when cut, and writes it to dst (size bytes); control characters become
 * spaces, so a remote party cannot drive the terminal. A remote text is only
 * ever shortened after this step (here, or by code that scrubbed it first).
 */
void mg_scrub_cut(char *dst, size_t size, const char *src, size_t max);
/* src scrubbed, then appended to the string in dst as far as it fits (control characters: spaces).
 */
void mg_scrub_append(char *dst, size_t size, const char *src);
/* Scrubs err's message and every diagnostic's message. */
void mg_scrub_error(mg_error *err);
/* Scrubs every string value in a JSON document, in place (a jansson json_t). */
struct json_t;
void mg_scrub_json(struct json_t *doc);

#endif
