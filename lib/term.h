/*
 * Text bound for a terminal, made harmless: a streaming filter that escapes
 * terminal control characters and bidi overrides, so text from a plan, a
 * balancer or a remote host can neither drive the terminal (ESC[2J, OSC 52)
 * nor reorder what the operator reads (U+202E). Every front end that prints
 * needs it, so it lives here, not in cmd/.
 *
 * C0 controls except \n and \t, and bytes that are not valid UTF-8, come out
 * as \xHH; DEL, C1 controls and the bidi overrides and isolates as \uHHHH
 * (what C, JSON and most shells would write).
 *
 * The front end's own colour and cursor codes take a dedicated path: a marker
 * made of SOH, a secret nonce and a letter ('a' + i) becomes codes[i]. Input
 * cannot forge it without the nonce, and a lone SOH is escaped like any other
 * control character. A marker or a UTF-8 sequence split across two feeds is
 * carried over.
 */
#ifndef MG_TERM_H
#define MG_TERM_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define MG_TERM_NONCE_LEN 12

/* Writes filtered bytes out; the filter ignores failures (a closed pipe). */
typedef void (*mg_term_write_fn)(const char *buf, size_t len, void *ud);

typedef struct {
	const char *nonce;        /* MG_TERM_NONCE_LEN bytes; NULL: no markers at all */
	const char *const *codes; /* what marker i stands for; at most 26 */
	size_t ncodes;
	mg_term_write_fn write;
	void *ud;
} mg_term_options;

typedef struct mg_term_filter mg_term_filter;

int mg_term_filter_new(mg_term_filter **out, const mg_term_options *o, mg_error *err);
/*
 * Filters buf[0..size) and writes the result. Bytes that may start a marker
 * or a UTF-8 sequence finished by the next feed are held back, unless final:
 * then they are escaped as they are.
 */
void mg_term_filter_feed(mg_term_filter *f, const char *buf, size_t size, bool final);
void mg_term_filter_free(mg_term_filter *f);

#endif
