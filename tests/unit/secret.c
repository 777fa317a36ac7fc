/*
 * lib/secret.h: the registry of secret values and the scrubbing step every
 * remote text goes through before it is cut, printed, logged or journalled.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "secret.h"

#define TOK  "cf-Tk7-unit-SECRET-4e1d9a0b7c"
#define TOK2 "kube-Qw3-unit-SECRET-99ff00aa"

static void reset(void)
{
	mg_secret_forget_all();
	mg_log_set(NULL, NULL, MG_LOG_DEBUG);
}

TestSuite(secret, .init = reset, .fini = reset);

/* The whole token, its first half or its last half in text. */
static bool leaks(const char *text, const char *tok)
{
	size_t n = strlen(tok), h = n / 2;
	char first[64], last[64];
	snprintf(first, sizeof(first), "%.*s", (int)h, tok);
	snprintf(last, sizeof(last), "%s", tok + n - h);
	return strstr(text, first) || strstr(text, last);
}

static char *scrub(const char *s)
{
	char *r = mg_scrub_dup(s);
	cr_assert_not_null(r);
	return r;
}

Test(secret, registered_values_are_replaced_everywhere)
{
	cr_assert_eq(mg_secret_register(TOK), 0);
	char *r = scrub("a " TOK " b " TOK "c");
	cr_assert_str_eq(r, "a [redacted] b [redacted]c");
	free(r);
	/* registering twice keeps one copy */
	cr_assert_eq(mg_secret_register(TOK), 0);
	cr_assert_eq(mg_secret_registered(), 1);
}

Test(secret, empty_and_short_values_are_not_registered)
{
	cr_assert_eq(mg_secret_register(NULL), 0);
	cr_assert_eq(mg_secret_register(""), 0);
	cr_assert_eq(mg_secret_register("abc"), 0);
	cr_assert_eq(mg_secret_register("12345"), 0);
	cr_assert_eq(mg_secret_register("          x"), 0); /* blanks are not secret */
	cr_assert_eq(mg_secret_registered(), 0);
	char *r = scrub("abc 12345 x the word abc stays");
	cr_assert_str_eq(r, "abc 12345 x the word abc stays");
	free(r);
	cr_assert_eq(mg_secret_register("123456"), 0);
	cr_assert_eq(mg_secret_registered(), 1);
}

Test(secret, a_token_cut_in_half_is_still_masked)
{
	mg_secret_register(TOK);
	/* scrub, then cut: the cut falls in the token's middle */
	char text[400];
	snprintf(text, sizeof(text), "%0*d %s and more after it", 290, 0, TOK);
	char out[300];
	mg_scrub_cut(out, sizeof(out), text, 299);
	cr_assert(!leaks(out, TOK), "%s", out);
	cr_assert_leq(strlen(out), 299);
	cr_assert(strstr(out, "...") != NULL, "a cut is marked: %s", out);
	/* a text someone else already cut: the first half alone, and the last half alone */
	char *r = scrub("the server said: cf-Tk7-unit-SEC");
	cr_assert_str_eq(r, "the server said: [redacted]");
	free(r);
	r = scrub("RET-4e1d9a0b7c\" (continued)");
	cr_assert_str_eq(r, "[redacted]\" (continued)");
	free(r);
	/* a few bytes of the start are not enough to tell, so they stay */
	r = scrub("cf-Tk7 is a prefix");
	cr_assert_str_eq(r, "cf-Tk7 is a prefix");
	free(r);
}

Test(secret, error_messages_are_scrubbed_before_their_cut)
{
	mg_secret_register(TOK);
	mg_error err = MG_ERROR_INIT;
	char pad[2048];
	/* the token straddles the 1024-byte message limit */
	size_t at = sizeof(err.message) - 1 - strlen(TOK) / 2;
	memset(pad, 'x', at);
	pad[at] = '\0';
	mg_error_set(&err, MG_ERROR, "%s%s tail", pad, TOK);
	cr_assert(!leaks(err.message, TOK), "%s", err.message + at - 20);
	mg_error_diag(&err, MG_SEV_ERROR, NULL, 0, 0, NULL, "%s%s", pad, TOK);
	cr_assert(!leaks(err.diags[0].message, TOK));
	mg_error_clear(&err);
}

static char logged[4096];

static void sink(mg_log_level level, const char *msg, void *ud)
{
	(void)level, (void)ud;
	snprintf(logged, sizeof(logged), "%s", msg);
}

Test(secret, log_messages_are_scrubbed_before_their_cut)
{
	mg_secret_register(TOK);
	mg_log_set(sink, NULL, MG_LOG_DEBUG);
	char pad[4096];
	size_t at = 2047 - strlen(TOK) / 2;
	memset(pad, 'y', at);
	pad[at] = '\0';
	mg_log(MG_LOG_INFO, "%s%s", pad, TOK);
	cr_assert(!leaks(logged, TOK));
	mg_log(MG_LOG_DEBUG, "plugin said: token %s", TOK);
	cr_assert_str_eq(logged, "plugin said: token [redacted]");
}

Test(secret, overlapping_secrets_leave_nothing)
{
	mg_secret_register("AAAA1111BBBB2222");
	mg_secret_register("BBBB2222CCCC3333");
	char *r = scrub("<AAAA1111BBBB2222CCCC3333>");
	cr_assert_str_eq(r, "<[redacted]>");
	free(r);
	/* one inside another: the longer wins, nothing of it stays */
	mg_secret_register("inner-Secret-9");
	r = scrub("x outer-inner-Secret-9-outer y inner-Secret-9");
	cr_assert(!strstr(r, "Secret-9"), "%s", r);
	free(r);
}

Test(secret, bearer_and_authorization_shapes)
{
	/* nothing registered: the shapes alone */
	const char *cases[][2] = {
	    {"Authorization: Bearer abc123def456", "Authorization: [redacted]"},
	    {"authorization: Basic dXNlcjpwYXNzd29yZA==\r\nHost: x",
	     "authorization: [redacted]\r\nHost: x"},
	    {"{\"Authorization\": \"Bearer q1w2e3r4t5y6\", \"a\": 1}",
	     "{\"Authorization\": \"[redacted]\", \"a\": 1}"},
	    {"{'authorization': 'Token zz9', 'b': 2}", "{'authorization': '[redacted]', 'b': 2}"},
	    {"X-Auth-Key: 0123456789abcdef; next", "X-Auth-Key: [redacted]; next"},
	    /* a configuration line quoted back (nginx -t) */
	    {"proxy_set_header Authorization \"Basic dXNlcjpwYXNz\";",
	     "proxy_set_header Authorization \"[redacted]\";"},
	    {"sent Bearer 9f8e7d6c5b4a3f2e1d0c and failed", "sent Bearer [redacted] and failed"},
	    {"token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl ok", "token [redacted] ok"},
	    /* prose and placeholders stay */
	    {"use Bearer authentication", "use Bearer authentication"},
	    {"Authorization: Bearer <from $CF_TOKEN>", "Authorization: Bearer <from $CF_TOKEN>"},
	    {"the Authorization header was refused", "the Authorization header was refused"},
	    {"a bearer token", "a bearer token"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *r = scrub(cases[i][0]);
		cr_assert_str_eq(r, cases[i][1], "case %zu", i);
		free(r);
	}
}

Test(secret, private_keys_are_masked)
{
	char *r = scrub("load failed: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBc\n-----END EC "
	                "PRIVATE KEY-----\n(done)");
	cr_assert_str_eq(r, "load failed: [redacted]\n(done)");
	free(r);
}

Test(secret, in_place_and_append_keep_the_limit)
{
	mg_secret_register(TOK);
	char buf[40] = "x " TOK;
	mg_scrub(buf, sizeof(buf));
	cr_assert_str_eq(buf, "x [redacted]");
	char small[16] = "ab";
	mg_scrub_append(small, sizeof(small), "\x1b[31m" TOK);
	cr_assert_str_eq(small, "ab [31m[redacte");
	cr_assert(!leaks(small, TOK));
}

Test(secret, json_strings_are_scrubbed)
{
	mg_secret_register(TOK);
	json_t *doc = json_pack("{s:s, s:[s, {s:s}], s:i}", "a", "x " TOK, "b", TOK "!", "c",
	                        "Authorization: Bearer zz11yy22xx33", "n", 5);
	mg_scrub_json(doc);
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(text, "{\"a\":\"x [redacted]\",\"b\":[\"[redacted]!\",{\"c\":"
	                       "\"Authorization: [redacted]\"}],\"n\":5}");
	free(text);
	json_decref(doc);
}

Test(secret, read_registers_the_token)
{
	setenv("MG_UNIT_SECRET", "  " TOK2 "\n", 1);
	mg_secret s;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_secret_read(&s, "MG_UNIT_SECRET", NULL, "unit token", "unit", &err), 0,
	             "%s", err.message);
	mg_secret_clear(&s);
	char *r = scrub("echo: " TOK2);
	cr_assert_str_eq(r, "echo: [redacted]");
	free(r);
	unsetenv("MG_UNIT_SECRET");
}

static void *hammer(void *arg)
{
	char v[64];
	for (int i = 0; i < 200; i++) {
		snprintf(v, sizeof(v), "thread%ld-secret-%03d", (long)(intptr_t)arg, i);
		mg_secret_register(v);
		char *r = mg_scrub_dup(v);
		if (!r || strcmp(r, "[redacted]") != 0) {
			free(r);
			return (void *)1;
		}
		free(r);
	}
	return NULL;
}

Test(secret, registering_and_scrubbing_from_threads)
{
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 4; i++) {
		void *res;
		pthread_join(t[i], &res);
		cr_assert_null(res, "thread %d saw a registered value unmasked", i);
	}
	cr_assert_eq(mg_secret_registered(), 800);
}

Test(secret, a_partial_match_inside_a_utf8_character_leaves_valid_json)
{
	/* shares "passé-phrase-longue-" and the lead byte of "é" with the text */
	mg_secret_register("passé-phrase-longue-\xc3\xa9t\xc3\xa9");
	json_t *doc = json_pack("{s:s}", "a", "passé-phrase-longue-\xc3\xa8re");
	mg_scrub_json(doc);
	const char *v = json_string_value(json_object_get(doc, "a"));
	cr_assert_not_null(v);
	cr_assert_null(strstr(v, "passé-phrase"), "%s", v);
	json_decref(doc);
}

/* Whether text holds any run of `run` consecutive bytes of tok. */
static bool has_run(const char *text, const char *tok, size_t run)
{
	size_t n = strlen(tok);
	for (size_t i = 0; i + run <= n; i++) {
		char part[128];
		snprintf(part, sizeof(part), "%.*s", (int)run, tok + i);
		if (strstr(text, part))
			return true;
	}
	return false;
}

Test(secret, a_cut_at_any_byte_leaves_nothing_of_the_token)
{
	mg_secret_register(TOK);
	char text[256];
	snprintf(text, sizeof(text), "status 401: {\"token\": \"%s\", \"hint\": \"rotate\"}", TOK);
	size_t len = strlen(text);
	for (size_t max = 1; max <= len + 1; max++) {
		char out[256];
		mg_scrub_cut(out, sizeof(out), text, max);
		cr_assert_leq(strlen(out), max, "max %zu: %s", max, out);
		cr_assert(!has_run(out, TOK, 4), "max %zu leaks: %s", max, out);
		/* the same cut by the size of the destination */
		char *small = malloc(max + 1);
		cr_assert_not_null(small);
		mg_scrub_cut(small, max + 1, text, 0);
		cr_assert(!has_run(small, TOK, 4), "size %zu leaks: %s", max + 1, small);
		small[0] = '\0';
		mg_scrub_append(small, max + 1, text);
		cr_assert(!has_run(small, TOK, 4), "append %zu leaks: %s", max + 1, small);
		free(small);
	}
}

Test(secret, a_text_someone_else_cut_anywhere_in_the_token_keeps_under_8_bytes_of_it)
{
	mg_secret_register(TOK);
	size_t n = strlen(TOK);
	for (size_t k = 1; k < n; k++) {
		char text[128];
		/* the first k bytes at the end of the text, and the last n-k at its start */
		snprintf(text, sizeof(text), "said: %.*s", (int)k, TOK);
		char *r = scrub(text);
		cr_assert(!has_run(r, TOK, 8), "head %zu: %s", k, r);
		free(r);
		snprintf(text, sizeof(text), "%s\" (more)", &TOK[k]);
		r = scrub(text);
		cr_assert(!has_run(r, TOK, 8), "tail %zu: %s", n - k, r);
		free(r);
	}
}

Test(secret, a_token_broken_by_control_characters_is_masked_on_both_sides)
{
	mg_secret_register(TOK);
	size_t h = strlen(TOK) / 2;
	char text[160];
	/* a remote wrapped the token over two lines, and coloured it */
	snprintf(text, sizeof(text), "\x1b[31m%.*s\r\n%s\x1b[0m", (int)h, TOK, &TOK[h]);
	char out[160];
	mg_scrub_cut(out, sizeof(out), text, 0);
	cr_assert(!leaks(out, TOK), "%s", out);
	cr_assert_str_eq(out, " [31m[redacted]  [redacted] [0m");
	/* every C0 control and DEL becomes a space; bytes of UTF-8 stay */
	char raw[40];
	for (int c = 1; c < 0x20; c++)
		raw[c - 1] = (char)c;
	raw[31] = 0x7f;
	snprintf(raw + 32, sizeof(raw) - 32, "\xc3\xa9ok");
	mg_scrub_cut(out, sizeof(out), raw, 0);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(out[i], ' ', "byte %d is 0x%02x", i, (unsigned char)out[i]);
	cr_assert_str_eq(out + 32, "\xc3\xa9ok");
}

Test(secret, nul_bytes_do_not_hide_a_token)
{
	mg_secret_register(TOK);
	char buf[80];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "x%cy %s", '\0', TOK);
	char *r = mg_scrub_ndup(buf, n);
	cr_assert_not_null(r);
	cr_assert_str_eq(r, "x y [redacted]");
	free(r);
}

Test(secret, adjacent_and_shorter_first_overlapping_secrets)
{
	/* registered shortest first: the longer still wins, whatever the order */
	mg_secret_register("overlap-77");
	mg_secret_register("my-overlap-77-and-more");
	char *r = scrub("[my-overlap-77-and-more] [overlap-77]");
	cr_assert_str_eq(r, "[[redacted]] [[redacted]]");
	free(r);
	/* two tokens back to back are one masked run */
	mg_secret_register(TOK);
	mg_secret_register(TOK2);
	r = scrub("<" TOK TOK2 ">");
	cr_assert_str_eq(r, "<[redacted]>");
	free(r);
	/* a registered token that is also a Bearer token */
	r = scrub("Authorization: Bearer " TOK2 ", then " TOK);
	cr_assert_str_eq(r, "Authorization: [redacted], then [redacted]");
	free(r);
}

Test(secret, tokens_with_control_characters_or_spaces_are_refused_unshown)
{
	const char *s;
	size_t n;
	cr_assert(mg_secret_token_line("  abc123\n", &s, &n));
	cr_assert_eq(n, 6);
	cr_assert_eq(strncmp(s, "abc123", n), 0);
	cr_assert(mg_secret_token_line("abc123\r\nsecond line", &s, &n));
	cr_assert_eq(n, 6);
	cr_assert(!mg_secret_token_line("abc\x01"
	                                "123",
	                                &s, &n));
	cr_assert(!mg_secret_token_line("abc 123", &s, &n));
	cr_assert(!mg_secret_token_line("abc\t123", &s, &n));
	cr_assert(!mg_secret_token_line("abc\x7f"
	                                "123",
	                                &s, &n));
	cr_assert(!mg_secret_token_line("abc\xc3\xa9", &s, &n), "non-ASCII is no header value");
	/* read: refused, and the value is not in the message */
	setenv("MG_UNIT_SECRET", "Hdr-Injected\r\nX-Evil: 1", 1);
	mg_secret sec;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_secret_read(&sec, "MG_UNIT_SECRET", NULL, "unit token", "unit", &err), 0,
	             "only the first line is taken: %s", err.message);
	cr_assert_str_eq(sec.value, "Hdr-Injected");
	mg_secret_clear(&sec);
	setenv("MG_UNIT_SECRET",
	       "Ctl\x1b"
	       "Secret-12345",
	       1);
	cr_assert_eq(mg_secret_read(&sec, "MG_UNIT_SECRET", NULL, "unit token", "unit", &err),
	             MG_EINVALID);
	cr_assert(strstr(err.message, "control characters"), "%s", err.message);
	cr_assert_null(strstr(err.message, "Secret-12345"), "%s", err.message);
	cr_assert_null(sec.value);
	mg_error_clear(&err);
	unsetenv("MG_UNIT_SECRET");
}
