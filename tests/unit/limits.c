/* Hostile input (issue 12): the bounded file reader and the YAML pre-scan. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "fs.h"
#include "plan.h"
#include "yamllimit.h"

static char tmpdir[64];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "limits");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmpdir);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 30);

static const mg_yaml_limits lim = {
    .max_depth = 64, .max_line = 64 * 1024, .max_anchors = 100, .max_aliases = 100};

/* 0, or the first diagnostic as "line:col: message" in out. */
static int scan(const char *text, char *out, size_t size)
{
	mg_error err = MG_ERROR_INIT;
	int rc = mg_yaml_limits_check(text, strlen(text), "t.yaml", &lim, &err);
	*out = '\0';
	if (rc) {
		cr_assert_eq(rc, MG_EINVALID);
		cr_assert_eq(err.ndiags, 1);
		snprintf(out, size, "%d:%d: %s", err.diags[0].line, err.diags[0].col,
		         err.diags[0].message);
	}
	mg_error_clear(&err);
	return rc;
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1);
	cr_assert_not_null(s);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + i * ul, unit, ul);
	memcpy(s + hl + ul * n, tail, tl + 1);
	return s;
}

Test(limits, flow_nesting_up_to_the_limit)
{
	char why[1100];
	/* the mapping is one level, so 63 lists fit and 64 do not */
	char *ok = repeat("a: ", "[", 63, "]");
	cr_expect_eq(scan(ok, why, sizeof(why)), 0, "%s", why);
	free(ok);
	char *bad = repeat("a: ", "[", 64, "");
	cr_expect_neq(scan(bad, why, sizeof(why)), 0);
	cr_expect(strstr(why, "1:67: nesting deeper than 64 levels"), "%s", why);
	free(bad);
}

Test(limits, block_nesting)
{
	char why[1100];
	char buf[64 * 80] = "";
	size_t off = 0;
	for (int i = 0; i < 65; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%*sk%d:\n", i, "", i);
	cr_expect_neq(scan(buf, why, sizeof(why)), 0);
	cr_expect(strstr(why, "65:65: nesting deeper than 64 levels"), "%s", why);
	char *seq = repeat("", "- ", 65, "x\n");
	cr_expect_neq(scan(seq, why, sizeof(why)), 0);
	cr_expect(strstr(why, "nesting deeper than 64 levels"), "%s", why);
	free(seq);
}

/* Brackets that are text: in quotes, comments, block scalars and plain scalars. */
Test(limits, brackets_in_text_are_not_nesting)
{
	char why[1100];
	char *text = repeat("a: \"", "[", 100, "\"\nb: '");
	char *t2 = repeat(text, "{", 100, "'\n# ");
	char *t3 = repeat(t2, "[", 100, "\nc: |\n  ");
	char *t4 = repeat(t3, "[", 100, "\n  more\nd: sum(rate(x[5m])) [1]\ne: x");
	char *t5 = repeat(t4, "[", 100, "\n");
	cr_expect_eq(scan(t5, why, sizeof(why)), 0, "%s", why);
	free(text);
	free(t2);
	free(t3);
	free(t4);
	free(t5);
}

Test(limits, long_line)
{
	char why[1100];
	char *ok = repeat("a: ", "x", 64 * 1024 - 3, "\n");
	cr_expect_eq(scan(ok, why, sizeof(why)), 0, "%s", why);
	free(ok);
	char *bad = repeat("a: b\nc: ", "x", 64 * 1024, "\n");
	cr_expect_neq(scan(bad, why, sizeof(why)), 0);
	cr_expect(strstr(why, "2:65537: line longer than 64 KiB"), "%s", why);
	free(bad);
}

Test(limits, anchors_and_aliases)
{
	char why[1100];
	char *ok = repeat("a:\n", "  - &x y\n", 100, "b: [*x, *x]\n");
	cr_expect_eq(scan(ok, why, sizeof(why)), 0, "%s", why);
	free(ok);
	char *bad = repeat("a:\n", "  - &x y\n", 101, "");
	cr_expect_neq(scan(bad, why, sizeof(why)), 0);
	cr_expect(strstr(why, "102:5: more than 100 anchors"), "%s", why);
	free(bad);
	bad = repeat("a: &x y\nb: [", "*x, ", 101, "]\n");
	cr_expect_neq(scan(bad, why, sizeof(why)), 0);
	cr_expect(strstr(why, "more than 100 aliases"), "%s", why);
	free(bad);
	/* "&" and "*" inside text are not anchors */
	bad = repeat("a: ", "x&y*z ", 200, "\n");
	cr_expect_eq(scan(bad, why, sizeof(why)), 0, "%s", why);
	free(bad);
}

static int load(const char *yaml, char *why, size_t size)
{
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc =
	    mg_plan_load_buffer(&p, yaml, strlen(yaml), "t.yaml", "/tmp", MG_PLAN_LOAD_NO_FS, &err);
	snprintf(why, size, "%s", err.ndiags ? err.diags[0].message : err.message);
	mg_plan_free(p);
	mg_error_clear(&err);
	return rc;
}

Test(limits, alias_expansion_and_cycles)
{
	char why[1100];
	char text[4096];
	size_t off = (size_t)snprintf(text, sizeof(text), "version: 1\nname: x\nl0: &l0 [a]\n");
	for (int i = 1; i <= 5; i++) {
		off += (size_t)snprintf(text + off, sizeof(text) - off, "l%d: &l%d [", i, i);
		for (int k = 0; k < 10; k++)
			off += (size_t)snprintf(text + off, sizeof(text) - off, "%s*l%d",
			                        k ? ", " : "", i - 1);
		off += (size_t)snprintf(text + off, sizeof(text) - off, "]\n");
	}
	cr_expect_eq(load(text, why, sizeof(why)), MG_EINVALID);
	cr_expect(strstr(why, "aliases (*name) repeat more than 10000 nodes"), "%s", why);
	cr_expect_eq(load("version: 1\nname: x\nl: &a [*a]\n", why, sizeof(why)), MG_EINVALID);
	cr_expect(strstr(why, "refers to a node that contains it"), "%s", why);
}

Test(limits, plan_buffer_over_the_size_limit)
{
	size_t n = MG_PLAN_MAX_BYTES + 1;
	char *text = malloc(n + 1);
	cr_assert_not_null(text);
	memset(text, '\n', n);
	text[n] = '\0';
	char why[1100];
	cr_expect_eq(load(text, why, sizeof(why)), MG_EINVALID);
	cr_expect(strstr(why, "larger than the limit of 4 MiB"), "%s", why);
	free(text);
}

static int read_file(const char *path, size_t limit, char *why, size_t size, size_t *len)
{
	char *buf = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = mg_fs_read_file(&buf, len, path, limit, "the plan", &err);
	snprintf(why, size, "%s", err.message);
	if (!rc)
		cr_expect_eq(buf[*len], '\0');
	free(buf);
	mg_error_clear(&err);
	return rc;
}

Test(limits, read_file_bounded_and_regular_only)
{
	char why[1100], path[128], fifo[128];
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	tu_write_file(path, "0123456789");
	cr_expect_eq(read_file(path, 10, why, sizeof(why), &len), 0, "%s", why);
	cr_expect_eq(len, 10);
	cr_expect_eq(read_file(path, 9, why, sizeof(why), &len), MG_EINVALID);
	cr_expect(strstr(why, "the plan is larger than the limit of 9 bytes"), "%s", why);
	cr_expect_eq(read_file("/dev/zero", 1024, why, sizeof(why), &len), MG_EINVALID);
	cr_expect(strstr(why, "not a regular file (a character device)"), "%s", why);
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_expect_eq(read_file(fifo, 1024, why, sizeof(why), &len), MG_EINVALID);
	cr_expect(strstr(why, "not a regular file (a FIFO)"), "%s", why);
	cr_expect_eq(read_file(tmpdir, 1024, why, sizeof(why), &len), MG_EINVALID);
	cr_expect(strstr(why, "(a directory)"), "%s", why);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	cr_expect_eq(read_file(path, 1024, why, sizeof(why), &len), MG_ENOTFOUND);
}

/* A problem on every line: the count is right, the memory is bounded. */
Test(limits, diagnostics_kept_are_bounded)
{
	char *text = malloc(20000 * 16 + 64);
	cr_assert_not_null(text);
	size_t off = (size_t)sprintf(text, "version: 1\nname: x\n");
	for (int i = 0; i < 20000; i++)
		off += (size_t)sprintf(text + off, "k%d: 1\n", i);
	mg_plan *p = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_expect_eq(mg_plan_load_buffer(&p, text, off, "t.yaml", "/tmp", MG_PLAN_LOAD_NO_FS, &err),
	             MG_EINVALID);
	cr_expect_eq(err.ndiags, 10001);
	bool found = false;
	for (size_t i = 0; i < err.ndiags; i++)
		found |= strstr(err.diags[i].message, "more than 10000 problems") != NULL;
	cr_expect(found);
	cr_expect(strstr(err.message, "20000 errors"), "%s", err.message);
	mg_error_clear(&err);
	free(text);
}
