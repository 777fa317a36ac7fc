/* The terminal filter (lib/core/term.c): what reaches the terminal, fed whole and byte by byte. */
#include <criterion/criterion.h>
#include <string.h>

#include "error.h"
#include "term.h"

#define NONCE "N0nc3N0nc3xy"

typedef struct {
	char buf[1024];
	size_t len;
} sink;

static void put(const char *b, size_t n, void *ud)
{
	sink *s = ud;
	cr_assert_leq(s->len + n, sizeof(s->buf));
	memcpy(s->buf + s->len, b, n);
	s->len += n;
}

static const char *const codes[] = {"\033[1m", "\033[0m"};

/* in, filtered in one feed and again one byte at a time: both must give want. */
static void check(const char *in, size_t n, const char *want)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		sink s = {0};
		mg_term_filter *f = NULL;
		mg_term_options o = {
		    .nonce = NONCE, .codes = codes, .ncodes = 2, .write = put, .ud = &s};
		cr_assert_eq(mg_term_filter_new(&f, &o, NULL), 0);
		if (bytewise)
			for (size_t i = 0; i < n; i++)
				mg_term_filter_feed(f, in + i, 1, false);
		else
			mg_term_filter_feed(f, in, n, false);
		mg_term_filter_feed(f, "", 0, true);
		mg_term_filter_free(f);
		s.buf[s.len] = '\0';
		cr_assert_str_eq(s.buf, want, "%s feed of \"%s\"", bytewise ? "bytewise" : "one",
		                 in);
	}
}
#define CHECK(in, want) check(in, sizeof(in) - 1, want)

Test(term, printable_text_newlines_and_tabs_pass)
{
	CHECK("plan ok\n\tstep 2 of 5\n", "plan ok\n\tstep 2 of 5\n");
	CHECK("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80",
	      "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80");
}

Test(term, c0_controls_and_del_are_escaped)
{
	CHECK("\033[2Jclear", "\\x1b[2Jclear");
	CHECK("\033]52;c;aGk=\007", "\\x1b]52;c;aGk=\\x07");
	CHECK("a\rb\x7f", "a\\x0db\\u007f");
}

Test(term, c1_controls_and_bidi_overrides_are_escaped)
{
	CHECK("\xc2\x9b"
	      "2J",
	      "\\u009b2J");
	CHECK("txt\xe2\x80\xae"
	      "cod.exe",
	      "txt\\u202ecod.exe");
	CHECK("\xe2\x81\xa6x\xe2\x81\xa9", "\\u2066x\\u2069");
}

Test(term, invalid_utf8_is_escaped_byte_by_byte)
{
	CHECK("\xff\xfe", "\\xff\\xfe");
	CHECK("\xc0\xaf", "\\xc0\\xaf");          /* overlong '/' */
	CHECK("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
	CHECK("\xe2\x82", "\\xe2\\x82");          /* cut at the end */
}

Test(term, our_markers_become_codes_and_forgeries_do_not)
{
	CHECK("\001" NONCE "abold\001" NONCE "b", "\033[1mbold\033[0m");
	CHECK("\001" NONCE "z", "\\x01" NONCE "z");       /* no such code */
	CHECK("\001WrongNonce00a", "\\x01WrongNonce00a"); /* no nonce, no colour */
	CHECK("\001"
	      "N0nc3",
	      "\\x01N0nc3"); /* a marker cut short */
}

Test(term, without_codes_every_soh_is_escaped)
{
	sink s = {0};
	mg_term_filter *f = NULL;
	mg_term_options o = {.write = put, .ud = &s};
	cr_assert_eq(mg_term_filter_new(&f, &o, NULL), 0);
	mg_term_filter_feed(f, "\001" NONCE "a", 14, true);
	mg_term_filter_free(f);
	s.buf[s.len] = '\0';
	cr_assert_str_eq(s.buf, "\\x01" NONCE "a");
}

Test(term, bad_options_are_refused)
{
	mg_term_filter *f = NULL;
	mg_error err = MG_ERROR_INIT;
	mg_term_options o = {.codes = codes, .ncodes = 2, .write = put};
	cr_assert_eq(mg_term_filter_new(&f, &o, &err), MG_EINVALID);
	cr_assert_null(f);
	mg_error_clear(&err);
}
