/*
 * mg_ssh_quote: the exact quoted text, and a round trip through a real
 * /bin/sh (printf %s <quoted>) giving back every byte, for the strings that
 * break naive quoting.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "ssh.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *in, *out;
} exact[] = {
    {"", "''"},
    {"abc", "'abc'"},
    {"/srv/payments-api", "'/srv/payments-api'"},
    {"it's", "'it'\\''s'"},
    {"'", "''\\'''"},
    {"''", "''\\'''\\'''"},
    {"a b", "'a b'"},
    {"$HOME", "'$HOME'"},
    {"\\", "'\\'"},
    {"a\nb", "'a\nb'"},
};

Test(ssh_quote, exact_text)
{
	for (size_t i = 0; i < N(exact); i++) {
		char *q = mg_ssh_quote(exact[i].in);
		cr_assert_not_null(q);
		cr_expect_str_eq(q, exact[i].out, "quote(\"%s\")", exact[i].in);
		free(q);
	}
}

/* Strings a shell would otherwise expand, split, glob, redirect or run. */
static const char *const hostile[] = {
    "",
    " ",
    "  leading and trailing  ",
    "it's",
    "'",
    "'''",
    "\"double\"",
    "back\\slash\\",
    "$HOME ${PATH} $(id) `id` $((1+1))",
    "a; rm -rf /tmp/nothing-here; b",
    "x && y || z | w & v",
    "*.tar.gz ? [abc] {a,b} ~root",
    "> /dev/null < /dev/zero 2>&1",
    "new\nline\n",
    "tab\there",
    "#comment",
    "-n",
    "-e \\n",
    "%s %d %%",
    "!event",
    "\x01\x7f\xff utf-8: h\xc3\xa9",
    "'; echo pwned; '",
    "\"; echo pwned; \"",
};

Test(ssh_quote, round_trip_through_sh)
{
	for (size_t i = 0; i < N(hostile); i++) {
		char *q = mg_ssh_quote(hostile[i]);
		cr_assert_not_null(q);
		size_t len = strlen(q) + 16;
		char *script = malloc(len);
		cr_assert_not_null(script);
		snprintf(script, len, "printf %%s %s", q);
		char *argv[] = {"/bin/sh", "-c", script, NULL};
		tu_output r = tu_capture(argv);
		cr_expect_eq(r.status, 0, "sh -c '%s': %s", script, r.err);
		cr_expect_str_eq(r.out, hostile[i], "round trip of string %zu", i);
		cr_expect_str_eq(r.err, "", "string %zu: %s", i, r.err);
		tu_output_free(&r);
		free(script);
		free(q);
	}
}

Test(ssh_quote, one_word_among_others)
{
	/* a quoted empty string and a quoted space are words of their own */
	char *a = mg_ssh_quote(""), *b = mg_ssh_quote("x y"), *c = mg_ssh_quote("z");
	char script[128];
	snprintf(script, sizeof(script), "printf '<%%s>' %s %s %s", a, b, c);
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	tu_output r = tu_capture(argv);
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "<><x y><z>");
	tu_output_free(&r);
	free(a);
	free(b);
	free(c);
}
