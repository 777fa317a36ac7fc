/*
 * Hostile plans and files (issue 12): input built to hang, exhaust or
 * confuse the CLI is refused at once with exit 2 and a message naming the
 * limit, and text from a plan or a remote answer never drives the terminal.
 * Every case must end well within tu_capture's bound: a hang fails the test.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"

static char tmpdir[256];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "hostile");
	unsetenv("NO_COLOR");
}

static void teardown(void)
{
	/* a binary that waits on the FIFO (the defect) gets its end of file and exits */
	int fd = open(tu_at("%s/plan.fifo", tmpdir), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	tu_tmpdir_remove(tmpdir);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 60);

static const char *plan_path(void)
{
	return tu_at("%s/plan.yaml", tmpdir);
}

/* Writes n bytes made by fill (a buffer of the whole text) to the plan. */
static void write_plan_buf(const char *text, size_t n)
{
	FILE *f = fopen(plan_path(), "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

/* No raw ESC, C1 control or bidi override anywhere in s. */
static void assert_no_raw_controls(const char *s, const char *what)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		cr_assert(*p != 0x1b && *p != 0x07, "%s has a raw control character: %s", what, s);
		cr_assert(!(p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae),
		          "%s has a raw bidi override: %s", what, s);
		cr_assert(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f),
		          "%s has a raw C1 control: %s", what, s);
	}
}

Test(hostile, nested_brackets_are_refused_naming_the_depth_limit)
{
	size_t n = 200 * 1024;
	char *text = malloc(n + 32);
	cr_assert_not_null(text);
	int off = snprintf(text, 32, "version: 1\nvms: ");
	for (size_t i = 0; i < n; i += 2) /* "[\n": short lines, so only the depth is wrong */
		memcpy(text + off + i, "[\n", 2);
	text[off + n] = '\n';
	write_plan_buf(text, (size_t)off + n + 1);
	free(text);
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "nesting deeper than 64 levels"), "%s", r.err);
	cr_assert(strstr(r.err, "plan.yaml:65:1: "), "no file:line:col: %s", r.err);
	tu_output_free(&r);
}

Test(hostile, plan_over_the_size_limit_is_refused)
{
	size_t n = 4 * 1024 * 1024 + 1;
	char *text = malloc(n);
	cr_assert_not_null(text);
	memset(text, '#', n);
	for (size_t i = 79; i < n; i += 80)
		text[i] = '\n';
	write_plan_buf(text, n);
	free(text);
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "larger than the limit of 4 MiB"), "%s", r.err);
	tu_output_free(&r);
}

Test(hostile, dev_zero_as_the_plan_is_refused_at_once)
{
	tu_output r = tu_migrate_plan("/dev/zero", "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "/dev/zero: the plan is not a regular file"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate_plan("/dev/zero", "plan", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "not a regular file"), "%s", r.err);
	tu_output_free(&r);
}

/* A FIFO nobody writes to: opening it for reading would wait forever. */
Test(hostile, fifo_as_the_plan_is_refused_at_once)
{
	const char *fifo = tu_at("%s/plan.fifo", tmpdir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	tu_output r = tu_migrate_plan(fifo, "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "is not a regular file (a FIFO)"), "%s", r.err);
	tu_output_free(&r);
}

Test(hostile, directory_as_the_plan_is_refused)
{
	tu_output r = tu_migrate_plan(tmpdir, "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "is not a regular file (a directory)"), "%s", r.err);
	tu_output_free(&r);
}

Test(hostile, long_line_is_refused_naming_the_limit)
{
	size_t n = 70 * 1024;
	char *text = malloc(n + 64);
	cr_assert_not_null(text);
	int off = snprintf(text, 64, "version: 1\nname: x\ndescription: ");
	memset(text + off, 'x', n);
	text[off + n] = '\n';
	write_plan_buf(text, (size_t)off + n + 1);
	free(text);
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "plan.yaml:3:65537: line longer than 64 KiB"), "%s", r.err);
	tu_output_free(&r);
}

/* Billion laughs: 90 aliases that a walk would follow 10^9 times. */
Test(hostile, alias_bomb_is_refused)
{
	char text[4096];
	size_t off =
	    (size_t)snprintf(text, sizeof(text), "version: 1\nname: x\ndescription: &l0 lol\n");
	for (int i = 1; i <= 9; i++) {
		off += (size_t)snprintf(text + off, sizeof(text) - off, "x%d: &l%d [", i, i);
		for (int k = 0; k < 10; k++)
			off += (size_t)snprintf(text + off, sizeof(text) - off, "%s*l%d",
			                        k ? ", " : "", i - 1);
		off += (size_t)snprintf(text + off, sizeof(text) - off, "]\n");
	}
	off += (size_t)snprintf(text + off, sizeof(text) - off, "build: {repo: *l9}\n");
	write_plan_buf(text, off);
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "aliases (*name) repeat more than 10000 nodes"), "%s", r.err);
	tu_output_free(&r);
}

Test(hostile, too_many_anchors_are_refused)
{
	char *text = malloc(64 * 1024);
	cr_assert_not_null(text);
	size_t off = (size_t)snprintf(text, 64, "version: 1\nname: x\nv:\n");
	for (int i = 0; i < 101; i++)
		off += (size_t)snprintf(text + off, 64, "  - &a%d x\n", i);
	write_plan_buf(text, off);
	free(text);
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "plan.yaml:104:5: more than 100 anchors"), "%s", r.err);
	tu_output_free(&r);
}

Test(hostile, too_many_hosts_are_refused)
{
	size_t cap = 100002 * 16 + 256;
	char *text = malloc(cap);
	cr_assert_not_null(text);
	size_t off = (size_t)snprintf(text, cap,
	                              "version: 1\nname: x\nvms:\n  user: u\n  path: /srv/x\n"
	                              "  hosts:\n");
	for (int i = 0; i < 100001; i++)
		off += (size_t)snprintf(text + off, cap - off, "  - h%d\n", i);
	write_plan_buf(text, off);
	free(text);
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "vms.hosts: more than 100000 hosts"), "%s", r.err);
	tu_output_free(&r);
}

Test(hostile, diagnostics_are_capped)
{
	char *text = malloc(300 * 16 + 64);
	cr_assert_not_null(text);
	size_t off = (size_t)snprintf(text, 64, "version: 1\nname: x\n");
	for (int i = 0; i < 300; i++)
		off += (size_t)snprintf(text + off, 16, "k%d: 1\n", i);
	write_plan_buf(text, off);
	free(text);
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "... and 200 more problems (only the first 100 are shown)"), "%s",
	          r.err);
	cr_assert_null(strstr(r.err, "k150: unknown key"), "%s", r.err);
	tu_output_free(&r);
}

/* ESC[2J (clear screen), U+202E (right-to-left override), BEL and OSC 52 (clipboard). */
#define EVIL_YAML "\\e[2J\\u202e\\e]52;c;Zm9v\\a"
#define EVIL_TEXT "\\x1b[2J\\u202e\\x1b]52;c;Zm9v\\x07"

static const char evil_plan[] = "version: 1\n"
                                "name: shop\n"
                                "description: \"evil" EVIL_YAML "\"\n"
                                "traffic:\n"
                                "  provider: haproxy\n"
                                "  steps: [10, 50, 100]\n"
                                "  bake: 5m\n"
                                "  haproxy:\n"
                                "    address: 127.0.0.1:%d\n"
                                "    backend: shop\n"
                                "    vm_servers: [vm1, vm2]\n"
                                "    k8s_servers: [k8s]\n"
                                "slo:\n"
                                "  prometheus: { url: \"http://127.0.0.1:9\" }\n"
                                "  red: { source: haproxy, backend: shop, max_error_rate: 1%% }\n"
                                "  checks:\n"
                                "    - name: %s\n"
                                "      query: \"sum(x) " EVIL_YAML "\"\n"
                                "      max: 1\n";

Test(hostile, validate_prints_plan_text_escaped)
{
	tu_write_file(plan_path(), tu_at(evil_plan, 9, "\"p99" EVIL_YAML "\""));
	tu_output r = tu_migrate_plan(plan_path(), "validate", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "\"p99" EVIL_TEXT "\" is not a check name"), "%s", r.err);
	assert_no_raw_controls(r.err, "stderr");
	assert_no_raw_controls(r.out, "stdout");
	tu_output_free(&r);

	r = tu_migrate_plan(plan_path(), "validate", "-o", "json", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	assert_no_raw_controls(r.out, "JSON");
	json_t *doc = tu_json_doc(&r); /* still one valid document */
	const char *msg = json_string_value(json_object_get(
	    json_array_get(
	        json_object_get(json_array_get(json_object_get(doc, "plans"), 0), "errors"), 0),
	    "message"));
	cr_assert_not_null(msg);
	cr_assert(strstr(msg, "p99\x1b[2J\xe2\x80\xae"), "JSON keeps the text: %s", msg);
	json_decref(doc);
	tu_output_free(&r);
}

Test(hostile, plan_prints_plan_text_escaped)
{
	tu_write_file(plan_path(), tu_at(evil_plan, 9, "p99"));
	tu_output r = tu_migrate_plan(plan_path(), "plan", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "evil" EVIL_TEXT), "%s", r.out);
	cr_assert(strstr(r.out, "sum(x) " EVIL_TEXT), "%s", r.out);
	assert_no_raw_controls(r.out, "stdout");
	tu_output_free(&r);
}

/* A balancer whose answer carries control sequences: status and step show it escaped. */
Test(hostile, remote_message_is_printed_escaped)
{
	static const char server[] =
	    "import socket, sys\n"
	    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
	    "s.bind(('127.0.0.1', 0)); s.listen(8); s.settimeout(30)\n"
	    "print(s.getsockname()[1], flush=True)\n"
	    "while True:\n" /* idle 30 s: the test is gone, so is the server */
	    "    try: c, _ = s.accept()\n"
	    "    except socket.timeout: sys.exit(0)\n"
	    "    c.settimeout(None)\n"
	    "    c.recv(4096)\n"
	    "    c.sendall('No such backend: \\x1b[2J\\u202eevil\\x9b31m\\n\\n'.encode())\n"
	    "    c.close()\n";
	char *argv[] = {(char *)tu_python(), "-c", (char *)server, NULL};
	int in = -1, out = -1;
	pid_t pid = tu_spawn_piped(argv, &in, &out);
	char buf[64] = "";
	size_t n = 0;
	for (int i = 0; i < 100 && !memchr(buf, '\n', n); i++) {
		ssize_t k = read(out, buf + n, sizeof(buf) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
	}
	int port = atoi(buf);
	cr_assert_gt(port, 0, "the fake balancer did not start: %s", buf);
	tu_write_file(plan_path(), tu_at(evil_plan, port, "p99"));

	const char *cmds[] = {"status", "step"};
	for (size_t i = 0; i < 2; i++) {
		tu_output r = tu_migrate_plan(plan_path(), cmds[i], NULL);
		const char *all = tu_at("%s%s", r.out, r.err);
		/* lib/ turns C0 controls of a one-line remote message into blanks (mg_scrub_cut);
		 * what is left (U+202E, the C1 CSI) is escaped by the output filter */
		cr_assert(strstr(all, "No such backend:  [2J\\u202eevil\\u009b31m"), "%s: %s",
		          cmds[i], all);
		assert_no_raw_controls(r.out, cmds[i]);
		assert_no_raw_controls(r.err, cmds[i]);
		tu_output_free(&r);
	}
	close(in);
	close(out);
	tu_stop(&pid);
}

/* Output leaves in buffers of a few KiB: sequences cut at a buffer's end are escaped too. */
Test(hostile, escapes_survive_buffer_boundaries)
{
	size_t n = 5000;
	char *desc = malloc(n * 7 + 16);
	cr_assert_not_null(desc);
	char *p = desc;
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "a\\u202e");
	strcpy(p, "\\e[2J");
	char plan[2048];
	snprintf(plan, sizeof(plan), evil_plan, 9, "p99");
	char *text = malloc(sizeof(plan) + strlen(desc) + 64);
	cr_assert_not_null(text);
	char *d = strstr(plan, "description: ");
	cr_assert_not_null(d);
	sprintf(text, "%.*sdescription: \"%s\"\n%s", (int)(d - plan), plan, desc,
	        strchr(d, '\n') + 1);
	tu_write_file(plan_path(), text);
	free(text);
	free(desc);
	tu_output r = tu_migrate_plan(plan_path(), "plan", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	assert_no_raw_controls(r.out, "stdout");
	size_t found = 0;
	for (const char *q = r.out; (q = strstr(q, "a\\u202e")); q++)
		found++;
	cr_assert_eq(found, n, "%zu of %zu escaped", found, n);
	tu_output_free(&r);
}
