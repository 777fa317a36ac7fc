/*
 * The nginx configuration parser (lib/nginx/): nginx's own lexing edge
 * cases word by word, every error message with its exact place, includes
 * (globs, order, cycles, missing files), the JSON shape, and the real nginx
 * (/usr/sbin/nginx -t) agreeing on each verdict the fixtures under
 * tests/fixtures/nginx/parser/ exercise.
 *
 * Inline configurations are parsed as "nginx.conf" from a buffer, one line
 * per string literal so a line number can be checked by eye.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "nginxconf.h"

#define NGINX "/usr/sbin/nginx"
#define FIX   "tests/fixtures/nginx/parser"

static char tmpdir[64];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "ngxconf");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmpdir);
}

TestSuite(nginxconf, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

static mg_nginxconf *parse_opts(const char *text, size_t len, const mg_nginxconf_options *opt)
{
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_nginxconf_parse_buffer(&c, text, len, NULL, opt, &err);
	cr_assert_eq(rc, 0, "parse failed: %s", err.message);
	cr_assert_not_null(c);
	cr_assert_eq(mg_error_count(&err, MG_SEV_WARNING), 0, "unexpected warning");
	mg_error_clear(&err);
	return c;
}

static mg_nginxconf *parse(const char *text)
{
	return parse_opts(text, strlen(text), NULL);
}

static const mg_ngx_directive *top(const mg_nginxconf *c, size_t i)
{
	const mg_ngx_file *f = mg_nginxconf_file(c, 0);
	cr_assert_lt(i, f->ndirs, "only %zu top-level directives", f->ndirs);
	return &f->dirs[i];
}

static const mg_ngx_directive *kid(const mg_ngx_directive *d, size_t i)
{
	cr_assert(d->has_block, "%s has no block", d->name);
	cr_assert_lt(i, d->nblock, "%s has %u children", d->name, d->nblock);
	return &d->block[i];
}

/* The directive's words joined with '|', name first: one string to compare. */
static const char *words(const mg_ngx_directive *d)
{
	static char buf[8192];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "%s", d->name);
	for (size_t i = 0; i < d->nargs && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "|%s", d->args[i]);
	return buf;
}

/* Parses text and expects nginx's message, and a diag at line:col with it (minus " in ..."). */
static void expect_error(const char *text, const char *message, int line, int col)
{
	mg_nginxconf *c = (mg_nginxconf *)1;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_nginxconf_parse_buffer(&c, text, strlen(text), NULL, NULL, &err);
	cr_assert_eq(rc, MG_EINVALID, "rc %d for: %s", rc, text);
	cr_assert_null(c);
	cr_assert_str_eq(err.message, message);
	cr_assert_eq(err.ndiags, 1);
	const mg_diag *d = &err.diags[0];
	cr_assert_eq(d->severity, MG_SEV_ERROR);
	cr_assert_str_eq(d->file, "nginx.conf");
	cr_assert_eq(d->line, line, "line %d, want %d (%s)", d->line, line, message);
	cr_assert_eq(d->col, col, "col %d, want %d (%s)", d->col, col, message);
	const char *in = strstr(message, " in nginx.conf:");
	cr_assert_not_null(in);
	cr_assert_eq(strlen(d->message), (size_t)(in - message));
	cr_assert(strncmp(d->message, message, strlen(d->message)) == 0, "%s", d->message);
	mg_error_clear(&err);
}

/* Absolute path of a fixture (the tests run from the repository root). */
static const char *fixture(const char *rel)
{
	static char buf[4][1024];
	static int n;
	char *p = buf[n++ % 4];
	char cwd[512];
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	snprintf(p, 1024, "%s/" FIX "/%s", cwd, rel);
	return p;
}

/*
 * `nginx -t` on conf (absolute): its exit status, and its first [emerg] or
 * [crit] message with conf's directory and "/" removed, so it reads like
 * ours ("unexpected "}" in conf.d/app.conf:4").
 */
static int nginx_verdict(const char *conf, char *msg, size_t size)
{
	struct stat st;
	cr_assert_eq(stat(NGINX, &st), 0, NGINX " is not installed (make deps installs it)");
	char prefix[80];
	snprintf(prefix, sizeof(prefix), "%s/", tmpdir);
	char *argv[] = {NGINX, "-t",   "-q", "-e",         "/dev/null",
	                "-p",  prefix, "-c", (char *)conf, NULL};
	tu_output r = tu_capture(argv);
	msg[0] = '\0';
	const char *m = strstr(r.err, "[emerg] ");
	if (!m)
		m = strstr(r.err, "[crit] ");
	if (m) {
		m = strchr(m, ' ') + 1;
		size_t n = strcspn(m, "\n");
		char dir[1024];
		snprintf(dir, sizeof(dir), "%s", conf);
		*strrchr(dir, '/') = '\0';
		size_t dl = strlen(dir), o = 0;
		for (size_t i = 0; i < n && o + 1 < size; i++) {
			if (strncmp(m + i, dir, dl) == 0 && m[i + dl] == '/' && i > 0 &&
			    m[i - 1] == ' ') {
				i += dl; /* the "/" after it is skipped by the loop */
				continue;
			}
			msg[o++] = m[i];
		}
		msg[o] = '\0';
	}
	int status = r.status;
	tu_output_free(&r);
	return status;
}

/* ---- words ---- */

Test(nginxconf, words_lines_and_columns)
{
	mg_nginxconf *c = parse("worker_processes 2;\n"  /* 1 */
	                        "events {\n"             /* 2 */
	                        "\tworker_connections\n" /* 3 */
	                        "\t\t64 ;\n"             /* 4 */
	                        "}\n"                    /* 5 */
	                        "http{server{}}\n");     /* 6 */
	cr_assert_eq(mg_nginxconf_nfiles(c), 1);
	const mg_ngx_file *f = mg_nginxconf_file(c, 0);
	cr_assert_str_eq(f->path, "nginx.conf");
	cr_assert_eq(f->ndirs, 3);
	cr_assert_str_eq(words(top(c, 0)), "worker_processes|2");
	cr_assert_eq(top(c, 0)->line, 1);
	cr_assert_eq(top(c, 0)->col, 1);
	cr_assert_not(top(c, 0)->has_block);
	const mg_ngx_directive *ev = top(c, 1);
	cr_assert_str_eq(words(ev), "events");
	cr_assert(ev->has_block);
	cr_assert_eq(ev->nblock, 1);
	cr_assert_str_eq(words(kid(ev, 0)), "worker_connections|64");
	cr_assert_eq(kid(ev, 0)->line, 3);
	cr_assert_eq(kid(ev, 0)->col, 2);
	const mg_ngx_directive *http = top(c, 2);
	cr_assert_str_eq(http->name, "http");
	cr_assert_eq(http->line, 6);
	cr_assert_str_eq(kid(http, 0)->name, "server");
	cr_assert(kid(http, 0)->has_block);
	cr_assert_eq(kid(http, 0)->nblock, 0);
	cr_assert_eq(kid(http, 0)->col, 6);
	cr_assert_eq(kid(http, 0)->file, 0);
	mg_nginxconf_free(c);
}

Test(nginxconf, quotes_and_nginx_escapes)
{
	mg_nginxconf *c = parse("a \"x y\" 'p q' \"\" '';\n"
	                        "b \"q\\\"d\" 's\\'q' \"b\\\\s\" 'm\"x' \"m'x\";\n"
	                        "c \"\\t\\r\\n\" \\t x\\ny;\n"
	                        "d \"\\d\\$\\{\" \\q \\;x;\n"
	                        "e a\\\nb;\n");
	const mg_ngx_directive *a = top(c, 0);
	cr_assert_str_eq(words(a), "a|x y|p q||");
	cr_assert_eq(mg_ngx_name_quote(a), 0);
	cr_assert_eq(mg_ngx_arg_quote(a, 0), '"');
	cr_assert_eq(mg_ngx_arg_quote(a, 1), '\'');
	cr_assert_eq(mg_ngx_arg_quote(a, 2), '"');
	cr_assert_eq(mg_ngx_arg_quote(a, 3), '\'');
	cr_assert_str_eq(words(top(c, 1)), "b|q\"d|s'q|b\\s|m\"x|m'x");
	/* \t \r \n become the characters, quoted or not */
	cr_assert_str_eq(words(top(c, 2)), "c|\t\r\n|\t|x\ny");
	cr_assert_eq(mg_ngx_arg_quote(top(c, 2), 1), 0);
	/* any other escape stays as written, backslash included */
	cr_assert_str_eq(words(top(c, 3)), "d|\\d\\$\\{|\\q|\\;x");
	/* an escaped line end is part of the word, and still a line */
	cr_assert_str_eq(words(top(c, 4)), "e|a\\\nb");
	cr_assert_eq(top(c, 4)->line, 5);
	mg_nginxconf_free(c);
}

Test(nginxconf, quote_inside_a_word_is_a_literal)
{
	mg_nginxconf *c = parse("add_header X a\"b'c x\"y z\";\n");
	/* the word "x\"y" ends at the space: the quote did not open a string */
	cr_assert_str_eq(words(top(c, 0)), "add_header|X|a\"b'c|x\"y|z\"");
	cr_assert_eq(mg_ngx_arg_quote(top(c, 0), 1), 0);
	cr_assert_eq(mg_ngx_arg_quote(top(c, 0), 2), 0);
	mg_nginxconf_free(c);
}

Test(nginxconf, dollar_brace_is_part_of_the_word)
{
	mg_nginxconf *c = parse("set $a ${b}c;\n"
	                        "${x}y z;\n"
	                        "k a${b}${c}$;\n");
	cr_assert_str_eq(words(top(c, 0)), "set|$a|${b}c");
	cr_assert_str_eq(words(top(c, 1)), "${x}y|z");
	cr_assert_str_eq(words(top(c, 2)), "k|a${b}${c}$");
	mg_nginxconf_free(c);
	/* nginx's own trap: "${" does not open the block, so the "}" closes nothing */
	c = parse("location ~ \\.php${ return 200;\n");
	cr_assert_str_eq(words(top(c, 0)), "location|~|\\.php${|return|200");
	cr_assert_not(top(c, 0)->has_block);
	mg_nginxconf_free(c);
	expect_error("location ~ \\.php${\n  return 200;\n}\n", "unexpected \"}\" in nginx.conf:3",
	             3, 1);
}

Test(nginxconf, parenthesis_after_a_quote_starts_a_word)
{
	mg_nginxconf *c = parse("if ($a = \"b c\") { return 403; }\n"
	                        "if ($a ~ 'x')) {}\n");
	cr_assert_str_eq(words(top(c, 0)), "if|($a|=|b c|)");
	cr_assert_str_eq(words(kid(top(c, 0), 0)), "return|403");
	cr_assert_str_eq(words(top(c, 1)), "if|($a|~|x|))");
	mg_nginxconf_free(c);
}

Test(nginxconf, comments_between_arguments)
{
	const char *text = "# head\n"                    /* 1 */
	                   "listen # the port\n"         /* 2 */
	                   "  80 #\n"                    /* 3 */
	                   "  ;# after\r\n"              /* 4 */
	                   "a#b c#d; # tail without LF"; /* 5 */
	mg_nginxconf *c = parse(text);
	cr_assert_eq(mg_nginxconf_file(c, 0)->ndirs, 2);
	cr_assert_str_eq(words(top(c, 0)), "listen|80");
	/* "#" inside a word is a character */
	cr_assert_str_eq(words(top(c, 1)), "a#b|c#d");
	mg_nginxconf_free(c);

	mg_nginxconf_options opt = {.keep_comments = true};
	c = parse_opts(text, strlen(text), &opt);
	const mg_ngx_file *f = mg_nginxconf_file(c, 0);
	cr_assert_eq(f->ndirs, 7);
	const char *want[] = {" head", " the port", "", NULL, " after", NULL, " tail without LF"};
	uint32_t lines[] = {1, 2, 3, 2, 4, 5, 5};
	for (size_t i = 0; i < 7; i++) {
		const mg_ngx_directive *d = &f->dirs[i];
		cr_assert_eq(d->line, lines[i], "directive %zu on line %u", i, d->line);
		if (!want[i]) {
			cr_assert_not(d->is_comment);
			continue;
		}
		cr_assert(d->is_comment, "directive %zu: %s", i, words(d));
		cr_assert_str_eq(d->name, "#");
		cr_assert_eq(d->nargs, 1);
		cr_assert_str_eq(d->args[0], want[i]); /* the CR of a CRLF is not the comment's */
	}
	/* comments inside an unfinished directive come before it, as crossplane has them */
	cr_assert_str_eq(words(&f->dirs[3]), "listen|80");
	cr_assert_eq(f->dirs[1].col, 8);
	mg_nginxconf_free(c);
}

Test(nginxconf, quoted_braces_and_semicolons_are_words)
{
	mg_nginxconf *c = parse("return 200 \"{\\\"ok\\\": true};\";\n"
	                        "\"}\" '{' \";\";\n");
	cr_assert_str_eq(words(top(c, 0)), "return|200|{\"ok\": true};");
	cr_assert_str_eq(words(top(c, 1)), "}|{|;");
	cr_assert_eq(mg_ngx_name_quote(top(c, 1)), '"');
	mg_nginxconf_free(c);
}

Test(nginxconf, empty_values_in_map)
{
	mg_nginxconf *c = parse("map $http_x $y {\n"
	                        "\t\"\" 1;\n"
	                        "\t'' \"\";\n"
	                        "\tdefault 0;\n"
	                        "}\n");
	const mg_ngx_directive *m = top(c, 0);
	cr_assert_eq(m->nblock, 3);
	cr_assert_str_eq(kid(m, 0)->name, "");
	cr_assert_eq(mg_ngx_name_quote(kid(m, 0)), '"');
	cr_assert_str_eq(kid(m, 0)->args[0], "1");
	cr_assert_str_eq(kid(m, 1)->name, "");
	cr_assert_eq(mg_ngx_name_quote(kid(m, 1)), '\'');
	cr_assert_str_eq(kid(m, 1)->args[0], "");
	cr_assert_eq(kid(m, 2)->line, 4);
	mg_nginxconf_free(c);
}

Test(nginxconf, non_utf8_bytes_pass_through)
{
	const char text[] = "server_name caf\xe9.test \"\xff\xfe\" ok\xc3\xa9;\n";
	mg_nginxconf *c = parse(text);
	cr_assert_str_eq(top(c, 0)->args[0], "caf\xe9.test");
	cr_assert_str_eq(top(c, 0)->args[1], "\xff\xfe");
	cr_assert_str_eq(top(c, 0)->args[2], "ok\xc3\xa9");
	/* JSON cannot hold them: each bad byte is U+FFFD, valid UTF-8 stays */
	json_t *j = mg_nginxconf_to_json(c, false);
	cr_assert_not_null(j);
	json_t *args = json_object_get(
	    json_array_get(
	        json_object_get(json_array_get(json_object_get(j, "config"), 0), "parsed"), 0),
	    "args");
	cr_assert_str_eq(json_string_value(json_array_get(args, 0)), "caf\xef\xbf\xbd.test");
	cr_assert_str_eq(json_string_value(json_array_get(args, 1)), "\xef\xbf\xbd\xef\xbf\xbd");
	cr_assert_str_eq(json_string_value(json_array_get(args, 2)), "ok\xc3\xa9");
	json_decref(j);
	mg_nginxconf_free(c);
}

Test(nginxconf, crlf_line_endings)
{
	mg_nginxconf *c = parse("events {\r\n\tworker_connections 8;\r\n}\r\nhttp {\r\n}\r\n");
	cr_assert_str_eq(words(kid(top(c, 0), 0)), "worker_connections|8");
	cr_assert_eq(kid(top(c, 0), 0)->line, 2);
	cr_assert_eq(top(c, 1)->line, 4);
	mg_nginxconf_free(c);
}

Test(nginxconf, one_megabyte_word_parses_and_warns_that_nginx_refuses_it)
{
	size_t n = 1 << 20;
	char *text = malloc(n + 64);
	cr_assert_not_null(text);
	int o = sprintf(text, "events {}\nset $v ");
	memset(text + o, 'v', n);
	sprintf(text + o + n, ";\nworker_processes 1;\n");
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_nginxconf_parse_buffer(&c, text, strlen(text), NULL, NULL, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	const mg_ngx_directive *set = top(c, 1);
	cr_assert_eq(set->nargs, 2);
	cr_assert_eq(strlen(set->args[1]), n);
	cr_assert_eq(set->args[1][n - 1], 'v');
	cr_assert_str_eq(words(top(c, 2)), "worker_processes|1");
	cr_assert_eq(top(c, 2)->line, 3);
	/* nginx's buffer is 4 KB: it fails where the word started, and says so */
	cr_assert_eq(err.ndiags, 1);
	cr_assert_eq(err.diags[0].severity, MG_SEV_WARNING);
	cr_assert_eq(err.diags[0].line, 2);
	cr_assert_str_eq(err.diags[0].message,
	                 "too long parameter \"vvvvvvvvvv...\" started: nginx reads at most 4095 "
	                 "bytes of one parameter and will refuse this");
	mg_error_clear(&err);
	mg_nginxconf_free(c);
	free(text);
}

Test(nginxconf, long_parameter_warnings_match_nginx)
{
	/* 4095 bytes and a ";" fit nginx's buffer; one more does not */
	struct {
		size_t len;
		const char *open, *close;
		const char *want; /* NULL: nginx accepts it */
	} cases[] = {
	    {4095, "", "", NULL},
	    {4096, "", "", "too long parameter \"xxxxxxxxxx...\" started"},
	    {4094, "\"", "\"", NULL},
	    {4095, "\"", "\"", "too long parameter \"xxxxxxxxxx...\" started"},
	    {5000, "'", "", "too long parameter, probably missing terminating \"'\" character"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char *text = malloc(cases[k].len + 128);
		int o = sprintf(text, "events {}\nhttp {\n\ttypes {\n\t\ttext/x %s", cases[k].open);
		memset(text + o, 'x', cases[k].len);
		sprintf(text + o + cases[k].len, "%s;\n\t}\n}\n", cases[k].close);
		char conf[128];
		snprintf(conf, sizeof(conf), "%s/long%zu.conf", tmpdir, k);
		tu_write_file_in(tmpdir, strrchr(conf, '/') + 1, text);

		char nginx[1024];
		int status = nginx_verdict(conf, nginx, sizeof(nginx));
		mg_nginxconf *c = NULL;
		mg_error err = MG_ERROR_INIT;
		int rc = mg_nginxconf_parse(&c, conf, NULL, &err);
		if (!cases[k].want) {
			cr_assert_eq(status, 0, "nginx: %s", nginx);
			cr_assert_eq(rc, 0, "%s", err.message);
			cr_assert_eq(err.ndiags, 0, "case %zu warned: %s", k, err.diags[0].message);
		} else {
			cr_assert_neq(status, 0);
			char line[128];
			snprintf(line, sizeof(line), "%s in long%zu.conf:4", cases[k].want, k);
			cr_assert_str_eq(nginx, line);
			if (cases[k].close[0] || !cases[k].open[0]) {
				cr_assert_eq(rc, 0, "%s", err.message);
				cr_assert_eq(err.ndiags, 1);
				cr_assert_eq(err.diags[0].severity, MG_SEV_WARNING);
				cr_assert_eq(err.diags[0].line, 4);
				cr_assert(strncmp(err.diags[0].message, cases[k].want,
				                  strlen(cases[k].want)) == 0,
				          "%s", err.diags[0].message);
			} else {
				/* the quote never closes: the warning, then the error at the end */
				cr_assert_eq(rc, MG_EINVALID);
				cr_assert_str_eq(err.message,
				                 "unexpected end of file, expecting \";\" "
				                 "or \"}\" in long4.conf:7");
				cr_assert_eq(mg_error_count(&err, MG_SEV_WARNING), 1);
			}
		}
		mg_error_clear(&err);
		mg_nginxconf_free(c);
		free(text);
	}
}

/* ---- Lua ---- */

Test(nginxconf, lua_blocks_hide_braces_in_strings_and_comments)
{
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, fixture("lua/nginx.conf"), NULL, &err), 0, "%s",
	             err.message);
	const mg_ngx_file *f = mg_nginxconf_file(c, 0);
	cr_assert_eq(f->ndirs, 1);
	const mg_ngx_directive *http = &f->dirs[0];
	cr_assert_eq(http->nblock, 2);
	const mg_ngx_directive *init = kid(http, 0);
	cr_assert_str_eq(init->name, "init_by_lua_block");
	cr_assert(init->is_lua_block);
	cr_assert_not(init->has_block);
	cr_assert_eq(init->nargs, 1);
	cr_assert_eq(mg_ngx_arg_quote(init, 0), '{');
	cr_assert_str_eq(init->args[0], "\n"
	                                "\t\tlocal t = { a = \"}\", b = '{', c = \"\\\"}\" }\n"
	                                "\t\t-- a comment with a } brace\n"
	                                "\t\t--[[ a long comment } ]]\n"
	                                "\t\tlocal s = [[ long } string ]]\n"
	                                "\t\tlocal s2 = [==[ also ]] } ]==]\n"
	                                "\t");
	const mg_ngx_directive *server = kid(http, 1);
	cr_assert_eq(server->line, 10);
	const mg_ngx_directive *loc = kid(server, 0);
	cr_assert_eq(loc->nblock, 2);
	cr_assert_str_eq(words(kid(loc, 0)), "content_by_lua_block| ngx.say(\"}\") ");
	cr_assert_eq(kid(loc, 0)->line, 12);
	/* set_by_lua_block has its variable before the code */
	cr_assert_str_eq(words(kid(loc, 1)), "set_by_lua_block|$res| return \"{\" .. \"}\" ");
	cr_assert_eq(mg_ngx_arg_quote(kid(loc, 1), 0), 0);
	cr_assert_eq(mg_ngx_arg_quote(kid(loc, 1), 1), '{');
	cr_assert_eq(kid(loc, 1)->line, 13);
	mg_error_clear(&err);
	mg_nginxconf_free(c);
}

Test(nginxconf, lua_block_errors)
{
	expect_error(
	    "http {\n"
	    "  content_by_lua_block {\n"
	    "    ngx.say('}')\n",
	    "unexpected end of file, expecting terminating characters for lua code block in "
	    "nginx.conf:4",
	    4, 1);
	expect_error("http {\n"
	             "  access_by_lua_block {\n"
	             "    local x = 1 local s = [==[ } ]=]\n"
	             "  }\n"
	             "}\n",
	             "Lua code block missing the closing long bracket \"]==]\" in nginx.conf:3", 3,
	             27);
	expect_error("init_by_lua_block { --[[ } }\n",
	             "Lua code block missing the closing long bracket \"]]\" in nginx.conf:1", 1,
	             21);
}

Test(nginxconf, lua_quotes_that_never_close_cost_linear_time)
{
	/* ' followed by 400000 \' on one line: every quote is escaped, none closes */
	size_t pairs = 400000;
	char *text = malloc(2 * pairs + 64);
	int o = sprintf(text, "content_by_lua_block { '");
	for (size_t i = 0; i < pairs; i++) {
		text[o++] = '\\';
		text[o++] = '\'';
	}
	sprintf(text + o, " }\nworker_processes 1;\n");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	mg_nginxconf *c = parse(text);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	/* rescanning from each quote would take minutes */
	cr_assert_lt(ms, 2000, "%.0f ms", ms);
	cr_assert_eq(strlen(top(c, 0)->args[0]), 2 * pairs + 3);
	cr_assert_str_eq(words(top(c, 1)), "worker_processes|1");
	mg_nginxconf_free(c);
	free(text);
}

/* ---- errors ---- */

Test(nginxconf, every_syntax_error_with_its_place)
{
	expect_error("events {}\n}\n", "unexpected \"}\" in nginx.conf:2", 2, 1);
	expect_error("http {\n  server {\n  }\n",
	             "unexpected end of file, expecting \"}\" in nginx.conf:4", 4, 1);
	expect_error("http {\n  server {\n  }",
	             "unexpected end of file, expecting \"}\" in nginx.conf:3", 3, 4);
	expect_error("worker_processes 2",
	             "unexpected end of file, expecting \";\" or \"}\" in nginx.conf:1", 1, 19);
	expect_error("a \"b\n\n",
	             "unexpected end of file, expecting \";\" or \"}\" in nginx.conf:3", 3, 1);
	expect_error("a b\\", "unexpected end of file, expecting \";\" or \"}\" in nginx.conf:1", 1,
	             5);
	expect_error("a b # no end",
	             "unexpected end of file, expecting \";\" or \"}\" in nginx.conf:1", 1, 13);
	expect_error("events {}\n  ;\n", "unexpected \";\" in nginx.conf:2", 2, 3);
	expect_error("http {\n\t{\n}\n", "unexpected \"{\" in nginx.conf:2", 2, 2);
	expect_error("http {\n  default_type text/plain }\n", "unexpected \"}\" in nginx.conf:2", 2,
	             27);
	expect_error("a \"b\"c;\n", "unexpected \"c\" in nginx.conf:1", 1, 6);
	expect_error("a 'b'\"c\";\n", "unexpected \"\"\" in nginx.conf:1", 1, 6);
	expect_error("a \"b\"# c\n;\n", "unexpected \"#\" in nginx.conf:1", 1, 6);
	expect_error("a \"b\"}\n", "unexpected \"}\" in nginx.conf:1", 1, 6);
}

Test(nginxconf, too_deep_nesting_is_an_error)
{
	char text[2000] = "";
	for (int i = 0; i < 300; i++)
		strcat(text, "a{");
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse_buffer(&c, text, strlen(text), NULL, NULL, &err),
	             MG_EINVALID);
	cr_assert_str_eq(err.message,
	                 "too deep nesting of blocks (more than 256 levels) in nginx.conf:1");
	cr_assert_eq(err.diags[0].col, 514);
	mg_error_clear(&err);
}

/* Each fixture of errors/ and the message nginx and we must both give. */
static const struct {
	const char *file, *message;
} error_fixtures[] = {
    {"errors/after-quote.conf", "unexpected \"x\" in after-quote.conf:3"},
    {"errors/brace-in-args.conf", "unexpected \"}\" in brace-in-args.conf:3"},
    {"errors/close-brace-top.conf", "unexpected \"}\" in close-brace-top.conf:4"},
    {"errors/comment-after-quote.conf", "unexpected \"#\" in comment-after-quote.conf:3"},
    {"errors/comment-eats-semicolon.conf", "unexpected \"}\" in comment-eats-semicolon.conf:4"},
    {"errors/eof-in-block.conf", "unexpected end of file, expecting \"}\" in eof-in-block.conf:5"},
    {"errors/eof-in-directive.conf",
     "unexpected end of file, expecting \";\" or \"}\" in eof-in-directive.conf:2"},
    {"errors/leading-semicolon.conf", "unexpected \";\" in leading-semicolon.conf:2"},
    {"errors/lone-brace.conf", "unexpected \"{\" in lone-brace.conf:3"},
    {"errors/unterminated-quote.conf",
     "unexpected end of file, expecting \";\" or \"}\" in unterminated-quote.conf:5"},
    {"error-in-include/nginx.conf", "unexpected \"}\" in conf.d/app.conf:4"},
};

Test(nginxconf, error_fixtures_match_nginx)
{
	for (size_t i = 0; i < sizeof(error_fixtures) / sizeof(error_fixtures[0]); i++) {
		const char *conf = fixture(error_fixtures[i].file);
		mg_nginxconf *c = NULL;
		mg_error err = MG_ERROR_INIT;
		cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), MG_EINVALID, "%s",
		             error_fixtures[i].file);
		cr_assert_str_eq(err.message, error_fixtures[i].message);
		char nginx[1024];
		cr_assert_neq(nginx_verdict(conf, nginx, sizeof(nginx)), 0);
		cr_assert_str_eq(nginx, err.message, "nginx and we disagree on %s",
		                 error_fixtures[i].file);
		mg_error_clear(&err);
	}
}

/*
 * Random text of nginx's special characters in a `types` block (whose
 * handler takes any word list, so nginx only objects to the syntax): where
 * nginx accepts it we must, and where its lexer refuses it we must refuse it
 * with the same message at the same line. A bare "{" is left out: the types
 * handler refuses every block before the lexer would have a say.
 */
Test(nginxconf, random_inputs_agree_with_nginx)
{
	static const char *const pieces[] = {"a",  "b",  "$",  "}", ";",         "\"",  "'",
	                                     "\\", "#",  "(",  ")", " ",         "\n",  "\t",
	                                     "x",  "${", "\r", "n", "text/html", "\xe9"};
	const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
	uint64_t seed = 0x9E3779B97F4A7C15ull;
	int accepted = 0, refused = 0;
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/t.conf", tmpdir);
	for (int k = 0; k < 300; k++) {
		char body[512] = "";
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		int n = 1 + (int)(seed % 20);
		for (int i = 0; i < n; i++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			strcat(body, pieces[seed % npieces]);
		}
		char text[700];
		snprintf(text, sizeof(text), "events {}\nhttp {\ntypes {\n%s\n}\n}\n", body);
		tu_write_file_in(tmpdir, "t.conf", text);
		char nginx[1024];
		int status = nginx_verdict(conf, nginx, sizeof(nginx));
		mg_nginxconf *c = NULL;
		mg_error err = MG_ERROR_INIT;
		int rc = mg_nginxconf_parse(&c, conf, NULL, &err);
		if (status == 0) {
			cr_assert_eq(rc, 0, "nginx accepts, we say %s for:\n%s", err.message, text);
			accepted++;
		} else if ((strncmp(nginx, "unexpected", 10) == 0 ||
		            strncmp(nginx, "too long", 8) == 0) &&
		           strncmp(nginx, "unexpected \"{\"", 14) != 0) {
			cr_assert_str_eq(err.message, nginx, "for:\n%s", text);
			refused++;
		}
		mg_error_clear(&err);
		mg_nginxconf_free(c);
	}
	cr_log_info("%d accepted, %d refused as nginx does", accepted, refused);
	/* so that this test cannot pass by skipping everything */
	cr_assert_geq(accepted, 10, "%d accepted", accepted);
	cr_assert_geq(refused, 100, "%d refused", refused);
}

Test(nginxconf, missing_include_is_nginxs_open_error)
{
	const char *conf = fixture("missing/nginx.conf");
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), MG_EINVALID);
	char want[1200];
	snprintf(want, sizeof(want),
	         "open() \"%s\" failed (2: No such file or directory) in nginx.conf:4",
	         fixture("missing/conf.d/nope.conf"));
	cr_assert_str_eq(err.message, want);
	cr_assert_eq(err.diags[0].line, 4);
	cr_assert_str_eq(err.diags[0].file, "nginx.conf");
	char nginx[1200];
	cr_assert_neq(nginx_verdict(conf, nginx, sizeof(nginx)), 0);
	/* nginx names the includer by its full path, which nginx_verdict() shortened */
	cr_assert_str_eq(nginx, want);
	mg_error_clear(&err);
}

Test(nginxconf, directory_include_is_nginxs_read_error)
{
	const char *conf = fixture("dir-include/nginx.conf");
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), MG_EINVALID);
	char want[1200];
	snprintf(want, sizeof(want), "pread() \"%s\" failed (21: Is a directory)",
	         fixture("dir-include/sub"));
	char nginx[1200];
	cr_assert_neq(nginx_verdict(conf, nginx, sizeof(nginx)), 0);
	cr_assert_str_eq(nginx, want);
	/* nginx gives no place for it; we do */
	strcat(want, " in nginx.conf:2");
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);
}

Test(nginxconf, include_errors)
{
	tu_write_file_in(tmpdir, "main.conf", "events {}\ninclude x.conf {\n}\n");
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/main.conf", tmpdir);
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), MG_EINVALID);
	cr_assert_str_eq(err.message,
	                 "directive \"include\" is not terminated by \";\" in main.conf:2");
	char nginx[1024];
	cr_assert_neq(nginx_verdict(conf, nginx, sizeof(nginx)), 0);
	cr_assert_str_eq(nginx, err.message);
	mg_error_clear(&err);

	tu_write_file_in(tmpdir, "main.conf", "events {}\ninclude;\n");
	cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), MG_EINVALID);
	cr_assert_str_eq(err.message,
	                 "invalid number of arguments in \"include\" directive in main.conf:2");
	cr_assert_neq(nginx_verdict(conf, nginx, sizeof(nginx)), 0);
	cr_assert_str_eq(nginx, err.message);
	mg_error_clear(&err);
}

Test(nginxconf, main_file_missing)
{
	mg_nginxconf *c = (mg_nginxconf *)1;
	mg_error err = MG_ERROR_INIT;
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/none.conf", tmpdir);
	cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), MG_ENOTFOUND);
	cr_assert_null(c);
	char want[256];
	snprintf(want, sizeof(want), "open() \"%s\" failed (2: No such file or directory)", conf);
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);
}

/* ---- includes ---- */

Test(nginxconf, valid_fixture_passes_nginx_and_globs_are_sorted_and_shared)
{
	const char *conf = fixture("valid/nginx.conf");
	char nginx[1024];
	cr_assert_eq(nginx_verdict(conf, nginx, sizeof(nginx)), 0, "nginx -t: %s", nginx);

	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(err.ndiags, 0);
	cr_assert_str_eq(mg_nginxconf_prefix(c), fixture("valid"));
	/* depth first, in the order nginx reads them; the glob sorted byte-wise */
	const char *order[] = {"nginx.conf",           "mime.types",      "conf.d/10-b.conf",
	                       "snippets/common.conf", "conf.d/2-a.conf", "conf.d/B.conf",
	                       "conf.d/a.conf"};
	cr_assert_eq(mg_nginxconf_nfiles(c), 7);
	for (size_t i = 0; i < 7; i++) {
		const mg_ngx_file *f = mg_nginxconf_file(c, i);
		cr_assert_str_eq(f->path, order[i]);
		char abs[1024];
		snprintf(abs, sizeof(abs), "valid/%s", order[i]);
		cr_assert_str_eq(f->abs_path, fixture(abs));
		cr_assert_eq(f->data[f->len], '\0');
	}
	cr_assert_null(mg_nginxconf_file(c, 7));

	const mg_ngx_directive *http = top(c, 2);
	cr_assert_str_eq(http->name, "http");
	const mg_ngx_directive *mime = kid(http, 0);
	cr_assert(mime->is_include);
	cr_assert_eq(mime->nincludes, 1);
	cr_assert_eq(mime->includes[0], 1);
	const mg_ngx_directive *confd = kid(http, 6);
	cr_assert_str_eq(words(confd), "include|conf.d/*.conf");
	cr_assert(confd->is_include);
	cr_assert_eq(confd->nincludes, 4);
	cr_assert_eq(confd->includes[0], 2);
	cr_assert_eq(confd->includes[1], 4);
	cr_assert_eq(confd->includes[2], 5);
	cr_assert_eq(confd->includes[3], 6);
	/* a glob that matches nothing is fine, as for nginx */
	const mg_ngx_directive *extra = kid(http, 7);
	cr_assert_str_eq(words(extra), "include|extra/*.conf");
	cr_assert(extra->is_include);
	cr_assert_eq(extra->nincludes, 0);
	/* the snippet is read once, whoever includes it */
	const mg_ngx_directive *server = kid(http, 8);
	const mg_ngx_directive *snip = kid(server, server->nblock - 1);
	cr_assert_eq(snip->nincludes, 1);
	cr_assert_eq(snip->includes[0], 3);
	for (size_t i = 2; i < 7; i += i == 2 ? 2 : 1) {
		const mg_ngx_file *f = mg_nginxconf_file(c, i);
		const mg_ngx_directive *inc = kid(&f->dirs[0], 2);
		cr_assert_str_eq(inc->name, "include");
		cr_assert_eq(inc->includes[0], 3, "%s", f->path);
		cr_assert_eq(inc->file, i);
	}
	const mg_ngx_file *common = mg_nginxconf_file(c, 3);
	cr_assert_eq(common->ndirs, 1);
	cr_assert_str_eq(words(&common->dirs[0]), "add_header|X-Common|1");
	cr_assert_eq(common->dirs[0].line, 2);
	cr_assert_eq(common->dirs[0].file, 3);

	/* the words nginx accepted */
	cr_assert_str_eq(words(kid(http, 3)),
	                 "log_format|main|$remote_addr \"$request\" 'q' ${status}");
	cr_assert_str_eq(words(kid(kid(http, 4), 0)), "|1");
	cr_assert_str_eq(words(kid(kid(http, 4), 2)), "~^a\\d+$|2");
	cr_assert_str_eq(words(kid(server, 2)), "set|$x|a\"b\tc");
	cr_assert_str_eq(words(kid(kid(server, 3), 0)), "return|200|{\"ok\": true}\n");
	cr_assert_str_eq(words(kid(kid(server, 4), 0)), "if|($request_method|=|POST|)");
	cr_assert_str_eq(words(kid(kid(server, 4), 1)), "add_header|X-Raw|a\"b'c");
	mg_error_clear(&err);
	mg_nginxconf_free(c);
}

Test(nginxconf, include_cycles_are_detected)
{
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, fixture("cycle/nginx.conf"), NULL, &err), MG_EINVALID);
	cr_assert_null(c);
	cr_assert_str_eq(err.message, "include cycle: a.conf -> b.conf -> a.conf in b.conf:3");
	cr_assert_eq(err.ndiags, 1);
	cr_assert_str_eq(err.diags[0].file, "b.conf");
	cr_assert_eq(err.diags[0].line, 3);
	cr_assert_str_eq(err.diags[0].message, "include cycle: a.conf -> b.conf -> a.conf");
	mg_error_clear(&err);

	cr_assert_eq(mg_nginxconf_parse(&c, fixture("self-include/nginx.conf"), NULL, &err),
	             MG_EINVALID);
	cr_assert_str_eq(err.message, "include cycle: nginx.conf -> nginx.conf in nginx.conf:2");
	mg_error_clear(&err);
}

Test(nginxconf, cycle_through_a_symlink_is_a_cycle)
{
	tu_write_file_in(tmpdir, "etc/nginx.conf", "include sub/a.conf;\n");
	tu_write_file_in(tmpdir, "etc/sub/a.conf", "include link/a.conf;\n");
	char target[128], link[128];
	snprintf(target, sizeof(target), "%s/etc/sub", tmpdir);
	snprintf(link, sizeof(link), "%s/etc/link", tmpdir);
	cr_assert_eq(symlink(target, link), 0);
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/etc/nginx.conf", tmpdir);
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, conf, NULL, &err), MG_EINVALID);
	/* named as it was reached */
	cr_assert_str_eq(err.message, "include cycle: sub/a.conf -> link/a.conf in sub/a.conf:1");
	mg_error_clear(&err);
}

Test(nginxconf, prefix_option_names_files_relative_to_it)
{
	tu_write_file_in(tmpdir, "root/site.conf", "server { listen 80; }\n");
	tu_write_file_in(tmpdir, "root/more/x.conf", "gzip on;\n");
	tu_write_file_in(tmpdir, "root/etc/main.conf",
	                 "http {\n include site.conf;\n include more/../more/*.conf;\n}\n");
	char conf[128], root[128];
	snprintf(conf, sizeof(conf), "%s/root/etc/main.conf", tmpdir);
	snprintf(root, sizeof(root), "%s/root/", tmpdir);
	mg_nginxconf_options opt = {.prefix = root};
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, conf, &opt, &err), 0, "%s", err.message);
	root[strlen(root) - 1] = '\0';
	cr_assert_str_eq(mg_nginxconf_prefix(c), root);
	cr_assert_eq(mg_nginxconf_nfiles(c), 3);
	cr_assert_str_eq(mg_nginxconf_file(c, 0)->path, "etc/main.conf");
	cr_assert_str_eq(mg_nginxconf_file(c, 1)->path, "site.conf");
	cr_assert_str_eq(mg_nginxconf_file(c, 2)->path, "more/x.conf");
	mg_nginxconf_free(c);

	/* the same main file by a relative name, default prefix: its directory */
	char cwd[512];
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(tmpdir), 0);
	tu_write_file_in(".", "etc/main.conf",
	                 "http {\n include site.conf;\n include more/*.conf;\n}\n");
	tu_write_file_in(".", "etc/site.conf", "server { listen 81; }\n");
	tu_write_file_in(".", "etc/more/y.conf", "gzip off;\n");
	int rc = mg_nginxconf_parse(&c, "etc/./main.conf", NULL, &err);
	cr_assert_eq(chdir(cwd), 0);
	cr_assert_eq(rc, 0, "%s", err.message);
	snprintf(root, sizeof(root), "%s/etc", tmpdir);
	cr_assert_str_eq(mg_nginxconf_prefix(c), root);
	cr_assert_str_eq(mg_nginxconf_file(c, 0)->path, "main.conf");
	cr_assert_str_eq(mg_nginxconf_file(c, 2)->path, "more/y.conf");
	mg_nginxconf_free(c);
}

/* ---- nothing outside the tree is read ---- */

#define SECRET_WORD "s3cret-never-read"

/*
 * tmpdir/a/tree/ is the tree, tmpdir/outside.conf and tmpdir/outside/ are not:
 * they hold a word that must never reach a message.
 */
static void confine_setup(const char *main_text)
{
	tu_write_file_in(tmpdir, "a/tree/nginx.conf", main_text);
	tu_write_file_in(tmpdir, "a/tree/conf.d/ok.conf", "gzip on;\n");
	tu_write_file_in(tmpdir, "outside.conf", SECRET_WORD " on;\n");
	tu_write_file_in(tmpdir, "outside/secret.conf", SECRET_WORD " on;\n");
}

static const char *at(const char *rel)
{
	static char buf[4][512];
	static int n;
	char *p = buf[n++ % 4];
	snprintf(p, 512, "%s/%s", tmpdir, rel);
	return p;
}

/* The parse of the tree's nginx.conf fails with message `want`, placed at nginx.conf:line. */
static void refused(int want_rc, const char *want, int line)
{
	mg_nginxconf *c = (mg_nginxconf *)1;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_nginxconf_parse(&c, at("a/tree/nginx.conf"), NULL, &err);
	cr_assert_eq(rc, want_rc, "rc %d: %s", rc, err.message);
	cr_assert_null(c);
	cr_assert_str_eq(err.message, want);
	cr_assert_null(strstr(err.message, SECRET_WORD));
	cr_assert_eq(err.ndiags, 1);
	cr_assert_str_eq(err.diags[0].file, line ? "nginx.conf" : at("a/tree/nginx.conf"));
	cr_assert_eq(err.diags[0].line, line);
	mg_error_clear(&err);
}

Test(nginxconf, symlinked_file_outside_the_tree_is_refused)
{
	confine_setup("events {}\nhttp {\n  include conf.d/*.conf;\n}\n");
	cr_assert_eq(symlink(at("outside/secret.conf"), at("a/tree/conf.d/x.conf")), 0);
	char want[1024];
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: it resolves to \"%s\", outside the tree \"%s\" in "
	         "nginx.conf:3",
	         at("a/tree/conf.d/x.conf"), at("outside/secret.conf"), at("a/tree"));
	refused(MG_EINVALID, want, 3);
	/* a relative link the same */
	cr_assert_eq(unlink(at("a/tree/conf.d/x.conf")), 0);
	cr_assert_eq(symlink("../../../outside.conf", at("a/tree/conf.d/x.conf")), 0);
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: it resolves to \"%s\", outside the tree \"%s\" in "
	         "nginx.conf:3",
	         at("a/tree/conf.d/x.conf"), at("outside.conf"), at("a/tree"));
	refused(MG_EINVALID, want, 3);
}

Test(nginxconf, symlinked_directory_outside_the_tree_is_refused)
{
	confine_setup("events {}\nhttp {\n  include sites/*.conf;\n}\n");
	cr_assert_eq(symlink(at("outside"), at("a/tree/sites")), 0);
	char want[1024];
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: it resolves to \"%s\", outside the tree \"%s\" in "
	         "nginx.conf:3",
	         at("a/tree/sites/secret.conf"), at("outside/secret.conf"), at("a/tree"));
	refused(MG_EINVALID, want, 3);
}

Test(nginxconf, relative_include_climbing_out_of_the_tree_is_refused)
{
	confine_setup("events {}\ninclude ../../outside.conf;\n");
	char want[1024];
	/* named as nginx names it; the name says where it is */
	snprintf(want, sizeof(want),
	         "open() \"%s/../../outside.conf\" refused: outside the tree \"%s\" in "
	         "nginx.conf:2",
	         at("a/tree"), at("a/tree"));
	refused(MG_EINVALID, want, 2);
	/* a glob too, at its first match */
	confine_setup("events {}\ninclude ../../outside/*.conf;\n");
	snprintf(want, sizeof(want),
	         "open() \"%s/../../outside/secret.conf\" refused: outside the tree \"%s\" in "
	         "nginx.conf:2",
	         at("a/tree"), at("a/tree"));
	refused(MG_EINVALID, want, 2);
}

Test(nginxconf, absolute_include_outside_the_tree_is_refused)
{
	char text[512];
	snprintf(text, sizeof(text), "events {}\nhttp {\n  include %s;\n}\n", at("outside.conf"));
	confine_setup(text);
	char want[1024];
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: outside the tree \"%s\" in nginx.conf:3",
	         at("outside.conf"), at("a/tree"));
	refused(MG_EINVALID, want, 3);
	/* this machine's /etc/shadow, named or linked */
	confine_setup("events {}\ninclude /etc/shadow;\n");
	snprintf(want, sizeof(want),
	         "open() \"/etc/shadow\" refused: outside the tree \"%s\" in nginx.conf:2",
	         at("a/tree"));
	refused(MG_EINVALID, want, 2);
	confine_setup("events {}\ninclude shadow.conf;\n");
	cr_assert_eq(symlink("/etc/shadow", at("a/tree/shadow.conf")), 0);
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: it resolves to \"/etc/shadow\", outside the tree \"%s\" "
	         "in nginx.conf:2",
	         at("a/tree/shadow.conf"), at("a/tree"));
	refused(MG_EINVALID, want, 2);
}

Test(nginxconf, main_file_outside_the_tree_is_refused)
{
	confine_setup("events {}\n");
	cr_assert_eq(unlink(at("a/tree/nginx.conf")), 0);
	cr_assert_eq(symlink(at("outside.conf"), at("a/tree/nginx.conf")), 0);
	char want[1024];
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: it resolves to \"%s\", outside the tree \"%s\"",
	         at("a/tree/nginx.conf"), at("outside.conf"), at("a/tree"));
	refused(MG_EINVALID, want, 0);

	/* outside a prefix given */
	tu_write_file_in(tmpdir, "a/tree/real.conf", "events {}\n");
	mg_nginxconf_options opt = {.prefix = at("a/tree/conf.d")};
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, at("a/tree/real.conf"), &opt, &err), MG_EINVALID);
	snprintf(want, sizeof(want), "open() \"%s\" refused: outside the tree \"%s\"",
	         at("a/tree/real.conf"), at("a/tree/conf.d"));
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);
	/* a prefix that does not exist */
	opt.prefix = at("a/none");
	cr_assert_eq(mg_nginxconf_parse(&c, at("a/tree/real.conf"), &opt, &err), MG_ENOTFOUND);
	snprintf(want, sizeof(want),
	         "the prefix: realpath() \"%s\" failed (2: No such file or directory)",
	         at("a/none"));
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);
	/* a buffer's includes as well */
	opt.prefix = at("a/tree");
	const char *text = "include ../../outside.conf;\n";
	cr_assert_eq(mg_nginxconf_parse_buffer(&c, text, strlen(text), NULL, &opt, &err),
	             MG_EINVALID);
	cr_assert(strstr(err.message, "outside the tree"), "%s", err.message);
	mg_error_clear(&err);
}

/* The bound on each of these: a FIFO opened for reading blocks until a writer comes. */
Test(nginxconf, fifo_include_is_refused_at_once, .timeout = 10)
{
	confine_setup("events {}\nhttp {\n  include pipe.conf;\n}\n");
	cr_assert_eq(mkfifo(at("a/tree/pipe.conf"), 0600), 0);
	char want[1024];
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: a FIFO, not a regular file in nginx.conf:3",
	         at("a/tree/pipe.conf"));
	refused(MG_EINVALID, want, 3);
	/* met by a glob */
	confine_setup("events {}\nhttp {\n  include p*.conf;\n}\n");
	refused(MG_EINVALID, want, 3);
}

Test(nginxconf, fifo_main_file_is_refused_at_once, .timeout = 10)
{
	cr_assert_eq(mkdir(at("a"), 0755), 0);
	cr_assert_eq(mkdir(at("a/tree"), 0755), 0);
	cr_assert_eq(mkfifo(at("a/tree/nginx.conf"), 0600), 0);
	char want[1024];
	snprintf(want, sizeof(want), "open() \"%s\" refused: a FIFO, not a regular file",
	         at("a/tree/nginx.conf"));
	refused(MG_EINVALID, want, 0);
}

/* /dev/zero's numbers: a file that never ends; the bound is for the code that reads it all. */
Test(nginxconf, device_is_refused_at_once, .timeout = 10)
{
	confine_setup("events {}\ninclude zero;\n");
	cr_assert_eq(mknod(at("a/tree/zero"), S_IFCHR | 0600, makedev(1, 5)), 0,
	             "mknod (the tests run as root)");
	char want[1024];
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: a character device, not a regular file in nginx.conf:2",
	         at("a/tree/zero"));
	refused(MG_EINVALID, want, 2);
	cr_assert_eq(unlink(at("a/tree/nginx.conf")), 0);
	cr_assert_eq(rename(at("a/tree/zero"), at("a/tree/nginx.conf")), 0);
	snprintf(want, sizeof(want),
	         "open() \"%s\" refused: a character device, not a regular file",
	         at("a/tree/nginx.conf"));
	refused(MG_EINVALID, want, 0);
}

Test(nginxconf, directory_main_file_is_bad_input)
{
	cr_assert_eq(mkdir(at("a"), 0755), 0);
	cr_assert_eq(mkdir(at("a/tree"), 0755), 0);
	cr_assert_eq(mkdir(at("a/tree/nginx.conf"), 0755), 0);
	char want[1024];
	/* nginx's words for it (it reads, we do not) */
	snprintf(want, sizeof(want), "pread() \"%s\" failed (21: Is a directory)",
	         at("a/tree/nginx.conf"));
	refused(MG_EINVALID, want, 0);
}

Test(nginxconf, symlinks_that_stay_in_the_tree_are_followed)
{
	confine_setup("events {}\nhttp {\n  include sites-enabled/*.conf;\n  include "
	              "snip.conf;\n}\n");
	tu_write_file_in(tmpdir, "a/tree/sites-available/shop.conf", "server { listen 80; }\n");
	cr_assert_eq(mkdir(at("a/tree/sites-enabled"), 0755), 0);
	/* as Debian's tree has them: absolute, into the tree itself */
	cr_assert_eq(
	    symlink(at("a/tree/sites-available/shop.conf"), at("a/tree/sites-enabled/shop.conf")),
	    0);
	cr_assert_eq(symlink("conf.d/ok.conf", at("a/tree/snip.conf")), 0);
	/* and the tree reached through a symlink of its own */
	cr_assert_eq(symlink(at("a/tree"), at("link")), 0);
	for (int k = 0; k < 2; k++) {
		mg_nginxconf *c = NULL;
		mg_error err = MG_ERROR_INIT;
		const char *main = at(k ? "link/nginx.conf" : "a/tree/nginx.conf");
		cr_assert_eq(mg_nginxconf_parse(&c, main, NULL, &err), 0, "%s", err.message);
		cr_assert_eq(mg_nginxconf_nfiles(c), 3);
		/* named as the configuration names them */
		cr_assert_str_eq(mg_nginxconf_file(c, 1)->path, "sites-enabled/shop.conf");
		cr_assert_str_eq(mg_nginxconf_file(c, 2)->path, "snip.conf");
		struct stat st;
		cr_assert_eq(stat(at("a/tree/conf.d/ok.conf"), &st), 0);
		cr_assert_eq(mg_nginxconf_file(c, 2)->ino, (uint64_t)st.st_ino);
		cr_assert_eq(mg_nginxconf_file(c, 2)->dev, (uint64_t)st.st_dev);
		mg_nginxconf_free(c);
	}
}

Test(nginxconf, no_includes_records_them_only)
{
	mg_nginxconf_options opt = {.no_includes = true};
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, fixture("missing/nginx.conf"), &opt, &err), 0, "%s",
	             err.message);
	cr_assert_eq(mg_nginxconf_nfiles(c), 1);
	const mg_ngx_directive *inc = kid(top(c, 1), 0);
	cr_assert_str_eq(words(inc), "include|conf.d/nope.conf");
	cr_assert_not(inc->is_include);
	mg_nginxconf_free(c);

	/* a buffer follows includes only when given a prefix */
	const char *text = "include snippets/common.conf;\n";
	c = parse(text);
	cr_assert_not(top(c, 0)->is_include);
	mg_nginxconf_free(c);
	mg_nginxconf_options p = {.prefix = fixture("valid")};
	c = parse_opts(text, strlen(text), &p);
	cr_assert_eq(mg_nginxconf_nfiles(c), 2);
	cr_assert_str_eq(mg_nginxconf_file(c, 0)->path, "nginx.conf");
	cr_assert_str_eq(mg_nginxconf_file(c, 1)->path, "snippets/common.conf");
	cr_assert(top(c, 0)->is_include);
	mg_nginxconf_free(c);
}

/* ---- spans ---- */

/* The bytes of each word of d and its terminator, '|'-joined. */
static const char *spans_of(const mg_nginxconf *c, const mg_ngx_directive *d)
{
	static char buf[1024];
	mg_ngx_span sp[16], term;
	cr_assert_lt(d->nargs, 15);
	cr_assert_eq(mg_nginxconf_spans(c, d, sp, &term), 0, "spans of %s", d->name);
	const char *data = mg_nginxconf_file(c, d->file)->data;
	size_t o = 0;
	for (size_t i = 0; i <= d->nargs + 1; i++) {
		mg_ngx_span s = i <= d->nargs ? sp[i] : term;
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%.*s", i ? "|" : "",
		                      (int)(s.end - s.start), data + s.start);
	}
	return buf;
}

Test(nginxconf, spans_locate_every_word_in_the_file)
{
	const char *text = "server_name \"a b\" c\\;d # comment\n"
	                   "   'e' ${f}g;\n"
	                   "if ($a = \"x\") { }\n"
	                   "  \"quoted\"\t1;\n"
	                   "content_by_lua_block { x = \"}\" }\n"
	                   "# last\n";
	mg_nginxconf_options opt = {.keep_comments = true};
	mg_nginxconf *c = parse_opts(text, strlen(text), &opt);
	const mg_ngx_file *f = mg_nginxconf_file(c, 0);
	cr_assert_eq(f->ndirs, 6);
	cr_assert(f->dirs[0].is_comment);
	mg_ngx_span sp[4];
	cr_assert_eq(mg_nginxconf_spans(c, &f->dirs[0], sp, NULL), MG_EINVALID);
	cr_assert_str_eq(spans_of(c, &f->dirs[1]), "server_name|\"a b\"|c\\;d|'e'|${f}g|;");
	cr_assert_str_eq(spans_of(c, &f->dirs[2]), "if|($a|=|\"x\"|)|{");
	cr_assert_str_eq(spans_of(c, &f->dirs[3]), "\"quoted\"|1|;");
	cr_assert_str_eq(spans_of(c, &f->dirs[4]), "content_by_lua_block| x = \"}\" |}");
	mg_ngx_span term;
	cr_assert_eq(mg_nginxconf_spans(c, &f->dirs[4], sp, &term), 0);
	cr_assert_eq(term.start, strlen(text) - strlen("}\n# last\n"));
	mg_nginxconf_free(c);

	/* in an included file too */
	c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, fixture("valid/nginx.conf"), NULL, &err), 0);
	const mg_ngx_file *b = mg_nginxconf_file(c, 5);
	cr_assert_str_eq(b->path, "conf.d/B.conf");
	cr_assert_str_eq(spans_of(c, kid(&b->dirs[0], 1)), "server_name|B.test|;");
	mg_nginxconf_free(c);
}

/* ---- JSON ---- */

static char *dump(json_t *j)
{
	cr_assert_not_null(j);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

Test(nginxconf, json_shape_is_crossplanes)
{
	const char *text = "# c\n"
	                   "http {\n"
	                   "  include x/*.conf;\n"
	                   "  content_by_lua_block { a() }\n"
	                   "}\n";
	mg_nginxconf_options opt = {.keep_comments = true, .prefix = tmpdir};
	mg_nginxconf *c = parse_opts(text, strlen(text), &opt);
	char *s = dump(mg_nginxconf_to_json(c, false));
	cr_assert_str_eq(
	    s,
	    "{\"status\":\"ok\",\"errors\":[],\"config\":[{\"file\":\"nginx.conf\",\"status\":\"ok\","
	    "\"errors\":[],\"parsed\":[{\"directive\":\"http\",\"line\":2,\"args\":[],\"block\":["
	    "{\"directive\":\"include\",\"line\":3,\"args\":[\"x/*.conf\"],\"includes\":[]},"
	    "{\"directive\":\"content_by_lua_block\",\"line\":4,\"args\":[\" a() \"]}]}]}]}");
	free(s);
	s = dump(mg_nginxconf_to_json(c, true));
	cr_assert_str_eq(
	    s,
	    "{\"status\":\"ok\",\"errors\":[],\"config\":[{\"file\":\"nginx.conf\",\"status\":\"ok\","
	    "\"errors\":[],\"parsed\":[{\"directive\":\"#\",\"line\":1,\"args\":[],\"comment\":\" c\"},"
	    "{\"directive\":\"http\",\"line\":2,\"args\":[],\"block\":["
	    "{\"directive\":\"include\",\"line\":3,\"args\":[\"x/*.conf\"],\"includes\":[]},"
	    "{\"directive\":\"content_by_lua_block\",\"line\":4,\"args\":[\" a() \"]}]}]}]}");
	free(s);
	mg_nginxconf_free(c);

	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse_buffer(&c, "a {", 3, "conf.d/x.conf", NULL, &err),
	             MG_EINVALID);
	s = dump(mg_nginxconf_error_json(&err));
	cr_assert_str_eq(
	    s, "{\"status\":\"failed\",\"errors\":[{\"file\":\"conf.d/x.conf\",\"line\":1,"
	       "\"error\":\"unexpected end of file, expecting \\\"}\\\" in "
	       "conf.d/x.conf:1\"}],\"config\":[]}");
	free(s);
	mg_error_clear(&err);
}

Test(nginxconf, json_of_the_valid_fixture_names_files_and_includes)
{
	mg_nginxconf *c = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&c, fixture("valid/nginx.conf"), NULL, &err), 0);
	json_t *j = mg_nginxconf_to_json(c, false);
	json_t *config = json_object_get(j, "config");
	cr_assert_eq(json_array_size(config), 7);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(config, 6), "file")),
	                 "conf.d/a.conf");
	json_t *http = json_array_get(json_object_get(json_array_get(config, 0), "parsed"), 2);
	json_t *inc = json_array_get(json_object_get(http, "block"), 6);
	char *s = json_dumps(json_object_get(inc, "includes"), JSON_COMPACT);
	cr_assert_str_eq(s, "[2,4,5,6]");
	free(s);
	json_decref(j);
	mg_nginxconf_free(c);
}

/* ---- speed and size ---- */

static void write_tree(const char *dir, size_t *bytes)
{
	/* 200 upstreams of 4 servers and 2000 locations in 4 sites, as a big legacy tree */
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap);
	*bytes = 0;
	n = (size_t)sprintf(buf, "events {\n\tworker_connections 1024;\n}\nhttp {\n"
	                         "\tinclude upstreams.conf;\n\tinclude sites/*.conf;\n}\n");
	tu_write_file_in(dir, "nginx.conf", buf);
	*bytes += n;
	n = 0;
	for (int u = 0; u < 200; u++) {
		n += (size_t)sprintf(buf + n, "upstream backend_%d {\n\tleast_conn;\n", u);
		for (int s = 0; s < 4; s++)
			n += (size_t)sprintf(
			    buf + n, "\tserver 10.%d.%d.%d:8080 max_fails=3 fail_timeout=10s;\n",
			    u / 250, u % 250, s + 1);
		n += (size_t)sprintf(buf + n, "\tkeepalive 32;\n}\n");
	}
	tu_write_file_in(dir, "upstreams.conf", buf);
	*bytes += n;
	for (int site = 0; site < 4; site++) {
		n = (size_t)sprintf(buf, "server {\n\tlisten %d;\n\tserver_name s%d.test;\n",
		                    8000 + site, site);
		for (int l = 0; l < 500; l++) {
			int i = site * 500 + l;
			n += (size_t)sprintf(buf + n,
			                     "\t# route %d\n\tlocation ~ ^/api/v1/r%d(/.*)?$ {\n"
			                     "\t\tproxy_pass http://backend_%d;\n"
			                     "\t\tproxy_set_header Host $host;\n"
			                     "\t\tproxy_set_header X-Real-IP $remote_addr;\n"
			                     "\t\tproxy_read_timeout 30s;\n\t}\n",
			                     i, i, i % 200);
		}
		n += (size_t)sprintf(buf + n, "}\n");
		char name[64];
		snprintf(name, sizeof(name), "sites/s%d.conf", site);
		tu_write_file_in(dir, name, buf);
		*bytes += n;
	}
	free(buf);
}

/* Speed against nginx -t is measured by tests/bench/configmap.sh, not here. */
Test(nginxconf, big_tree_parses_as_nginx_does_in_under_4x_its_size)
{
	size_t bytes;
	write_tree(tmpdir, &bytes);
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/nginx.conf", tmpdir);
	{
		struct mallinfo2 before = mallinfo2();
		mg_nginxconf *c = NULL;
		mg_error err = MG_ERROR_INIT;
		int rc = mg_nginxconf_parse(&c, conf, NULL, &err);
		cr_assert_eq(rc, 0, "%s", err.message);
		struct mallinfo2 after = mallinfo2();
		size_t held = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
		size_t input = 0;
		for (size_t i = 0; i < mg_nginxconf_nfiles(c); i++)
			input += mg_nginxconf_file(c, i)->len;
		cr_assert_eq(input, bytes);
		/* the files' bytes are kept, so this includes 1x for them; AddressSanitizer's
		 * allocator reports nothing to mallinfo2(), so the size is checked in the plain
		 * build */
		if (after.uordblks + after.hblkhd > 0) {
			cr_assert_geq(held, input);
			cr_assert_lt(held, 4 * input, "%zu bytes held for %zu of input", held,
			             input);
		}
		const mg_ngx_file *site = mg_nginxconf_file(c, 2);
		cr_assert_str_eq(site->path, "sites/s0.conf");
		cr_assert_eq(site->dirs[0].nblock, 2 + 500);
		mg_nginxconf_free(c);

		char msg[1024];
		cr_assert_eq(nginx_verdict(conf, msg, sizeof(msg)), 0, "%s", msg);
	}
}
