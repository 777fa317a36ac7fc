/*
 * The pure parts of lib/fleet (commands.c) and fleet.json (lib/state/records.c): release names,
 * batches, which releases a prune removes, the health URL, fleet.json, and the remote commands,
 * which are run here through a real /bin/sh against a local directory standing in for a host (with
 * a path that needs quoting), so what is asserted is what they do, not only how they read.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "fleet.h"
#include "fs.h"
#include "state.h"
#include "store.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char tmp[256];

static void setup(void)
{
	tu_tmpdir_make(tmp, sizeof(tmp), "fleet");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmp);
}

TestSuite(fleet, .init = setup, .fini = teardown, .timeout = 60);

Test(fleet, release_names)
{
	const char *good[] = {"1.0", "1.4.2", "v2",  "2026.11.22-rc1", "1.0+build_7", "A",
	                      "_x",  "+1",    "1..2"};
	char why[256];
	for (size_t i = 0; i < N(good); i++)
		cr_expect_eq(mg_plan_check_version(good[i], why, sizeof(why)), 0, "%s: %s", good[i],
		             why);
	char longest[MG_PLAN_VERSION_MAX + 2];
	memset(longest, '7', MG_PLAN_VERSION_MAX);
	longest[MG_PLAN_VERSION_MAX] = '\0';
	cr_expect_eq(mg_plan_check_version(longest, why, sizeof(why)), 0);
	longest[MG_PLAN_VERSION_MAX] = '7';
	longest[MG_PLAN_VERSION_MAX + 1] = '\0';
	cr_expect_eq(mg_plan_check_version(longest, why, sizeof(why)), -1);
	cr_expect_str_eq(why, "the version is 128 characters long; at most 127 are allowed");

	static const struct {
		const char *v, *why;
	} bad[] = {
	    {"", "the version is empty"},
	    {".1", "\".1\" starts with '.'; a version starts with a letter, digit, '_' or '+'"},
	    {"-rf", "\"-rf\" starts with '-'; a version starts with a letter, digit, '_' or '+'"},
	    {"1.0;rm", "the version has ';' at position 4; only letters, digits and . _ + - are "
	               "allowed"},
	    {"a/b", "the version has '/' at position 2; only letters, digits and . _ + - are "
	            "allowed"},
	    {"$(id)", "the version has '$' at position 1; only letters, digits and . _ + - are "
	              "allowed"},
	    {"a b", "the version has byte 0x20 at position 2; only letters, digits and . _ + - "
	            "are allowed"},
	    {"a\nb", "the version has byte 0x0a at position 2; only letters, digits and . _ + - "
	             "are allowed"},
	    {"\xc3\xa9", "the version has byte 0xc3 at position 1; only letters, digits and . _ + "
	                 "- are allowed"},
	    {"1'", "the version has ''' at position 2; only letters, digits and . _ + - are "
	           "allowed"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		cr_expect_eq(mg_plan_check_version(bad[i].v, why, sizeof(why)), -1, "%s", bad[i].v);
		cr_expect_str_eq(why, bad[i].why);
	}
	cr_expect_eq(mg_plan_check_version(NULL, why, sizeof(why)), -1);
}

Test(fleet, batches)
{
	cr_expect_eq(mg_fleet_batch_count(20, 10), 2);
	cr_expect_eq(mg_fleet_batch_count(21, 10), 3);
	cr_expect_eq(mg_fleet_batch_count(1, 1), 1);
	cr_expect_eq(mg_fleet_batch_count(4, 4), 1);
	cr_expect_eq(mg_fleet_batch_count(0, 5), 0);
	cr_expect_eq(mg_fleet_batch_count(100000, 1), 100000);
	cr_expect_eq(mg_fleet_batch_count(5, 0), 0);
}

/* The names prune_select removes, joined with ','. */
static const char *removed(const mg_fleet_release *rel, size_t n, const char *live,
                           const char *prev, int keep)
{
	static char out[256];
	bool rm[16];
	size_t k = mg_fleet_prune_select(rm, rel, n, live, prev, keep);
	out[0] = '\0';
	size_t c = 0;
	for (size_t i = 0; i < n; i++) {
		if (!rm[i])
			continue;
		c++;
		if (*out)
			strcat(out, ",");
		strcat(out, rel[i].name);
	}
	cr_assert_eq(c, k, "the count returned is not the number marked");
	return out;
}

Test(fleet, prune_keeps_live_previous_then_the_newest)
{
	/* listed in no particular order, as a shell glob would not promise one */
	mg_fleet_release rel[] = {
	    {.name = "1.2", .sec = 300, .nsec = 0}, {.name = "1.0", .sec = 100, .nsec = 0},
	    {.name = "1.3", .sec = 400, .nsec = 0}, {.name = "1.1", .sec = 200, .nsec = 0},
	    {.name = "1.4", .sec = 500, .nsec = 0},
	};
	cr_expect_str_eq(removed(rel, 5, "1.4", "1.3", 2), "1.2,1.0,1.1");
	/* the previous release is kept even when it is the oldest */
	cr_expect_str_eq(removed(rel, 5, "1.4", "1.0", 2), "1.2,1.3,1.1");
	cr_expect_str_eq(removed(rel, 5, "1.4", "1.0", 3), "1.2,1.1");
	/* and the live one even when newer ones are lying around (after a rollback) */
	cr_expect_str_eq(removed(rel, 5, "1.1", "1.4", 2), "1.2,1.0,1.3");
	cr_expect_str_eq(removed(rel, 5, "1.4", "1.3", 5), "");
	cr_expect_str_eq(removed(rel, 5, "1.4", "1.3", 1000), "");
	/* no previous: the newest others fill up */
	cr_expect_str_eq(removed(rel, 5, "1.4", "", 3), "1.0,1.1");
	cr_expect_str_eq(removed(rel, 5, "1.4", NULL, 2), "1.2,1.0,1.1");
	/* live and previous not among the releases (pruned by hand): nothing else goes */
	cr_expect_str_eq(removed(rel, 5, "9.9", "8.8", 2), "1.2,1.0,1.1");
	cr_expect_str_eq(removed(rel, 0, "1.4", "1.3", 2), "");
}

Test(fleet, prune_orders_by_nanoseconds_then_name)
{
	mg_fleet_release rel[] = {
	    {.name = "b", .sec = 100, .nsec = 5},
	    {.name = "a", .sec = 100, .nsec = 7},
	    {.name = "c", .sec = 100, .nsec = 5},
	    {.name = "live", .sec = 50, .nsec = 0},
	};
	/* a (ns 7) is the newest; b and c tie, c wins by name */
	cr_expect_str_eq(removed(rel, 4, "live", NULL, 2), "b,c");
	cr_expect_str_eq(removed(rel, 4, "live", NULL, 3), "b");
}

Test(fleet, health_url)
{
	char *u = mg_fleet_health_url("http://${host}:8080/healthz", "10.0.0.7");
	cr_expect_str_eq(u, "http://10.0.0.7:8080/healthz");
	free(u);
	u = mg_fleet_health_url("http://${host}:8080/healthz?h=${host}", "2001:db8::7");
	cr_expect_str_eq(u, "http://[2001:db8::7]:8080/healthz?h=[2001:db8::7]");
	free(u);
	u = mg_fleet_health_url("https://lb.example.com/ok", "vm-01");
	cr_expect_str_eq(u, "https://lb.example.com/ok");
	free(u);
}

Test(fleet, commands_read_as_documented)
{
	char *c = mg_fleet_cmd_switch("/srv/app", "1.4.2");
	cr_expect_str_eq(c, "cd -- '/srv/app' && ln -sfn -- 'releases/1.4.2' current.tmp && mv -T "
	                    "-- current.tmp current && readlink current");
	free(c);
	c = mg_fleet_cmd_verify("/srv/app/.incoming/1.4.2.tar.gz.00ff");
	cr_expect_str_eq(c, "sha256sum -- '/srv/app/.incoming/1.4.2.tar.gz.00ff'");
	free(c);
	c = mg_fleet_incoming_path("/srv/app", "1.4.2", "00ff");
	cr_expect_str_eq(c, "/srv/app/.incoming/1.4.2.tar.gz.00ff");
	free(c);
	const char *names[] = {"1.0", "1.1"};
	c = mg_fleet_cmd_remove_releases("/srv/app", names, 2);
	cr_expect_str_eq(c, "cd -- '/srv/app/releases' && rm -rf -- '1.0' '1.1'");
	free(c);
	c = mg_fleet_cmd_activate("/srv/app", "sudo systemctl restart app # no more", "1.4.2",
	                          "vm-01");
	cr_expect_str_eq(c, "cd -- '/srv/app/current' && MIGRATE_VERSION='1.4.2' "
	                    "MIGRATE_HOST='vm-01' MIGRATE_PATH='/srv/app' && export "
	                    "MIGRATE_VERSION MIGRATE_HOST MIGRATE_PATH || exit 1\n"
	                    "sudo systemctl restart app # no more");
	free(c);
	/* a path with every character quoting has to survive stays one word */
	c = mg_fleet_cmd_switch("/srv/it's $(here)", "1.0");
	cr_expect(strstr(c, "cd -- '/srv/it'\\''s $(here)' && "), "%s", c);
	free(c);
}

/* Runs cmd with /bin/sh -c; stdout in *out (caller frees), the exit status returned. */
static int sh(const char *cmd, char **out)
{
	char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
	tu_output r = tu_capture(argv);
	int st = r.status;
	if (out)
		*out = r.out;
	else
		free(r.out);
	if (st != 0)
		cr_log_info("sh -c %s: %d: %s", cmd, st, r.err);
	free(r.err);
	return st;
}

static void make_tar(const char *tar, const char *content)
{
	char src[512], why[2048];
	snprintf(src, sizeof(src), "%s/src", tmp);
	mkdir(src, 0755);
	FILE *f = fopen(tu_at("%s/app.txt", src), "w");
	cr_assert_not_null(f);
	fputs(content, f);
	fclose(f);
	char *argv[] = {"/bin/tar", "-czf", (char *)tar, "-C", src, ".", NULL};
	cr_assert(tu_run_ok(tmp, argv, why, sizeof(why)), "%s", why);
}

Test(fleet, commands_run_by_a_real_shell_deploy_switch_and_prune)
{
	/* the "host": a deploy path with a space, a quote and a $ in it */
	char path[512];
	snprintf(path, sizeof(path), "%s/it's $HOME dir", tmp);
	const char *v = "1.0+build_7";
	char *out = NULL;

	/* inspect creates the layout and reports no current, no marker */
	char *c = mg_fleet_cmd_inspect(path, v);
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_str_eq(out, "kind=none\ncurrent=\nmarker=\n");
	free(out);
	free(c);
	struct stat sb;
	cr_assert_eq(stat(tu_at("%s/releases", path), &sb), 0);
	cr_assert_eq(stat(tu_at("%s/.incoming", path), &sb), 0);

	/* unpack: the release, its marker, and the upload gone */
	char *incoming = mg_fleet_incoming_path(path, v, "abcd");
	make_tar(incoming, "hello\n");
	c = mg_fleet_cmd_verify(incoming);
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_eq(strlen(out) > 64 && out[64] == ' ', 1, "%s", out);
	free(out);
	free(c);
	c = mg_fleet_cmd_unpack(path, v, incoming, "0123abcd");
	cr_assert_eq(sh(c, NULL), 0);
	free(c);
	char text[256];
	size_t len;
	char *buf;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_read_all(&buf, &len, tu_at("%s/releases/%s/app.txt", path, v), &err), 0);
	cr_expect_str_eq(buf, "hello\n");
	free(buf);
	cr_assert_eq(
	    mg_fs_read_all(&buf, &len, tu_at("%s/releases/%s/" MG_FLEET_MARKER, path, v), &err), 0);
	cr_expect_str_eq(buf, "0123abcd\n");
	free(buf);
	cr_expect_eq(access(incoming, F_OK), -1, "the upload was not removed");
	cr_expect_eq(access(tu_at("%s/releases/.%s.tmp", path, v), F_OK), -1);

	/* inspect now sees the marker */
	c = mg_fleet_cmd_inspect(path, v);
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_str_eq(out, "kind=none\ncurrent=\nmarker=0123abcd\n");
	free(out);
	free(c);

	/* a broken archive: nothing counts, the upload is still removed, the status says so */
	FILE *f = fopen(incoming, "w");
	fputs("not gzip", f);
	fclose(f);
	c = mg_fleet_cmd_unpack(path, "2.0", incoming, "ffff");
	cr_expect_neq(sh(c, NULL), 0);
	free(c);
	cr_expect_eq(access(tu_at("%s/releases/2.0", path), F_OK), -1);
	cr_expect_eq(access(incoming, F_OK), -1);

	/* switch: a relative link, read back */
	c = mg_fleet_cmd_switch(path, v);
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_str_eq(out, tu_at("releases/%s\n", v));
	free(out);
	free(c);
	ssize_t n = readlink(tu_at("%s/current", path), text, sizeof(text) - 1);
	cr_assert_gt(n, 0);
	text[n] = '\0';
	cr_expect_str_eq(text, tu_at("releases/%s", v));
	c = mg_fleet_cmd_inspect(path, v);
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_str_eq(out, tu_at("kind=link\ncurrent=releases/%s\nmarker=0123abcd\n", v));
	free(out);
	free(c);

	/* activate runs in current with the variables set */
	c = mg_fleet_cmd_activate(path,
	                          "printf '%s|%s|%s|%s' \"$MIGRATE_VERSION\" "
	                          "\"$MIGRATE_HOST\" \"$MIGRATE_PATH\" \"$(cat app.txt)\"",
	                          v, "vm-01");
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_str_eq(out, tu_at("%s|vm-01|%s|hello", v, path));
	free(out);
	free(c);

	/* list: one line per complete release, with the marker's time */
	cr_assert_eq(mkdir(tu_at("%s/releases/no-marker", path), 0755), 0);
	c = mg_fleet_cmd_list_releases(path);
	cr_assert_eq(sh(c, &out), 0);
	long long sec;
	long nsec;
	char name[128];
	cr_expect_eq(sscanf(out, "%lld.%9ld %127[^/]/", &sec, &nsec, name), 3, "%s", out);
	cr_expect_str_eq(name, v);
	cr_expect_null(strstr(out, "no-marker"), "%s", out);
	free(out);
	free(c);
	const char *gone[] = {v, "no-marker"};
	c = mg_fleet_cmd_remove_releases(path, gone, 2);
	cr_assert_eq(sh(c, NULL), 0);
	free(c);
	tu_list_dir(text, sizeof(text), tu_at("%s/releases", path));
	cr_expect_str_eq(text, "");

	/* current as a directory is reported, not followed */
	cr_assert_eq(unlink(tu_at("%s/current", path)), 0);
	cr_assert_eq(mkdir(tu_at("%s/current", path), 0755), 0);
	c = mg_fleet_cmd_inspect(path, v);
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_str_eq(out, "kind=other\ncurrent=\nmarker=\n");
	free(out);
	free(c);
	free(incoming);
}

static mg_plan_host hosts[] = {
    {.name = "vm-01", .address = "127.0.1.1", .port = 22},
    {.name = "vm-02", .address = "127.0.1.2", .port = 22},
    {.name = "vm-03", .address = "127.0.1.3", .port = 22},
};

Test(fleet, survey_reads_current_and_releases_and_writes_nothing)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/it's $HOME dir", tmp);
	char *out = NULL;
	char *c = mg_fleet_cmd_survey(path);
	cr_assert_not_null(c);
	/* read-only: nothing in it creates, moves or removes (2>/dev/null is the only redirect) */
	const char *writes[] = {"mkdir", "rm ", "ln ", "mv ", "tar ", "> ", ">>"};
	for (size_t i = 0; i < N(writes); i++)
		cr_expect_null(strstr(c, writes[i]), "%s in: %s", writes[i], c);

	/* a host never deployed to: no directory, and none made */
	cr_assert_eq(sh(c, &out), 0);
	cr_expect_str_eq(out, "kind=none\n");
	free(out);
	struct stat sb;
	cr_expect_neq(stat(path, &sb), 0);

	/* two complete releases, one half-unpacked, current on the newer */
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(mkdir(tu_at("%s/releases", path), 0755), 0);
	const char *rel[] = {"1.0", "1.1", "2.0"};
	for (size_t i = 0; i < N(rel); i++) {
		cr_assert_eq(mkdir(tu_at("%s/releases/%s", path, rel[i]), 0755), 0);
		if (i < 2)
			tu_write_file(tu_at("%s/releases/%s/" MG_FLEET_MARKER, path, rel[i]),
			              "x\n");
	}
	cr_assert_eq(symlink("releases/1.1", tu_at("%s/current", path)), 0);
	cr_assert_eq(sh(c, &out), 0);
	cr_expect(strstr(out, "kind=link\ncurrent=releases/1.1\n") == out, "%s", out);
	cr_expect_not_null(strstr(out, "release="), "%s", out);
	cr_expect_not_null(strstr(out, " 1.0/" MG_FLEET_MARKER "\n"), "%s", out);
	cr_expect_not_null(strstr(out, " 1.1/" MG_FLEET_MARKER "\n"), "%s", out);
	cr_expect_null(strstr(out, " 2.0/"), "%s", out);
	free(out);
	free(c);
}

Test(fleet, fleet_json_round_trip_and_refusals)
{
	mg_store *store;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&store, tmp, "payments-api", &err), 0, "%s", err.message);
	json_t *doc;
	cr_assert_eq(mg_fleet_record_load(&doc, store, &err), 0, "%s", err.message);
	cr_expect_eq(json_object_size(json_object_get(doc, "hosts")), 0);
	cr_expect_eq(mg_fleet_record_save(store, doc, &err), MG_ERROR, "saved without the lock");
	mg_error_clear(&err);
	cr_assert_eq(mg_store_lock(store, "test", &err), 0);

	/* vm-01 switched 1.0 -> 1.1; vm-02 failed before switching; vm-03 never reached */
	mg_fleet_host_result h[3] = {0};
	for (int i = 0; i < 3; i++)
		h[i].host = &hosts[i];
	h[0].outcome = MG_FLEET_OK;
	h[0].switched = true;
	h[0].version_known = true;
	snprintf(h[0].version, sizeof(h[0].version), "1.1");
	snprintf(h[0].previous, sizeof(h[0].previous), "1.0");
	h[1].outcome = MG_FLEET_FAILED;
	h[1].version_known = true;
	snprintf(h[1].version, sizeof(h[1].version), "1.0");
	snprintf(h[1].previous, sizeof(h[1].previous), "1.0");
	mg_fleet_result r = {.hosts = h, .nhosts = 3};
	mg_fleet_record_apply(doc, &r);
	cr_assert_eq(mg_fleet_record_save(store, doc, &err), 0, "%s", err.message);
	json_decref(doc);
	cr_expect_eq(mg_fleet_count_on(&r, "1.1"), 1);
	cr_expect_eq(mg_fleet_count_on(&r, "1.0"), 1);

	struct stat sb;
	const char *file = tu_at("%s/fleet.json", mg_store_path(store));
	cr_assert_eq(stat(file, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0600);
	cr_assert_eq(mg_fleet_record_load(&doc, store, &err), 0, "%s", err.message);
	json_t *hs = json_object_get(doc, "hosts");
	cr_expect_eq(json_object_size(hs), 2);
	json_t *a = json_object_get(hs, "vm-01");
	cr_expect_str_eq(json_string_value(json_object_get(a, "version")), "1.1");
	cr_expect_str_eq(json_string_value(json_object_get(a, "previous")), "1.0");
	cr_expect_str_eq(json_string_value(json_object_get(a, "outcome")), "ok");
	json_t *b = json_object_get(hs, "vm-02");
	cr_expect_str_eq(json_string_value(json_object_get(b, "version")), "1.0");
	cr_expect(json_is_null(json_object_get(b, "previous")));
	cr_expect_str_eq(json_string_value(json_object_get(b, "outcome")), "failed");

	/* vm-01 again, already on 1.1: its previous release is kept; lost track: version null */
	memset(h, 0, sizeof(h));
	for (int i = 0; i < 3; i++)
		h[i].host = &hosts[i];
	h[0].outcome = MG_FLEET_OK;
	h[0].already = true;
	h[0].version_known = true;
	snprintf(h[0].version, sizeof(h[0].version), "1.1");
	snprintf(h[0].previous, sizeof(h[0].previous), "1.1");
	h[1].outcome = MG_FLEET_FAILED;
	h[1].switched = true;
	mg_fleet_record_apply(doc, &r);
	a = json_object_get(hs, "vm-01");
	cr_expect_str_eq(json_string_value(json_object_get(a, "previous")), "1.0");
	b = json_object_get(hs, "vm-02");
	cr_expect(json_is_null(json_object_get(b, "version")));
	json_decref(doc);

	const struct {
		const char *text, *why;
	} bad[] = {
	    {"{", "not valid JSON"},
	    {"{\"format\":2,\"plan\":\"payments-api\",\"hosts\":{}}", "newer migrate"},
	    {"{\"format\":1,\"plan\":\"other\",\"hosts\":{}}", "another plan"},
	    {"{\"format\":1,\"plan\":\"payments-api\",\"hosts\":[]}",
	     "\"hosts\" must be an object"},
	    {"{\"format\":1,\"plan\":\"payments-api\",\"hosts\":{\"a\":{\"version\":1}}}",
	     "string or null"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		cr_assert_eq(mg_fs_write_atomic(file, bad[i].text, strlen(bad[i].text), 0600, &err),
		             0);
		cr_expect_eq(mg_fleet_record_load(&doc, store, &err), MG_EINVALID, "%s",
		             bad[i].text);
		cr_expect(strstr(err.message, bad[i].why), "%s: %s", bad[i].text, err.message);
		cr_expect(strstr(err.message, file), "%s", err.message);
		mg_error_clear(&err);
	}
	mg_store_free(store);
}

Test(fleet, state_keeps_the_previous_vm_release_and_reads_files_without_it)
{
	mg_state st;
	mg_state_init(&st, "payments-api");
	snprintf(st.vms_version, sizeof(st.vms_version), "1.1");
	snprintf(st.vms_previous_version, sizeof(st.vms_previous_version), "1.0");
	json_t *j = mg_state_to_json(&st);
	json_t *v = json_object_get(j, "versions");
	cr_expect_str_eq(json_string_value(json_object_get(v, "vms")), "1.1");
	cr_expect_str_eq(json_string_value(json_object_get(v, "vms_previous")), "1.0");
	mg_state back;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_state_from_json(&back, j, &err), 0, "%s", err.message);
	cr_expect_str_eq(back.vms_previous_version, "1.0");
	/* written before deploy existed */
	json_object_del(v, "vms_previous");
	cr_assert_eq(mg_state_from_json(&back, j, &err), 0, "%s", err.message);
	cr_expect_str_eq(back.vms_previous_version, "");
	cr_expect_str_eq(back.vms_version, "1.1");
	json_object_set_new(v, "vms_previous", json_integer(3));
	cr_expect_eq(mg_state_from_json(&back, j, &err), MG_EINVALID);
	cr_expect(strstr(err.message, "versions.vms_previous"), "%s", err.message);
	mg_error_clear(&err);
	json_decref(j);
}

Test(fleet, describe_lists_every_host_with_its_batch)
{
	mg_plan_vms v = {.hosts = hosts,
	                 .nhosts = 3,
	                 .user = "deploy",
	                 .known_hosts = "/k",
	                 .path = "/srv/app",
	                 .keep_releases = 3,
	                 .parallel = 2,
	                 .batch_count = 2,
	                 .activate = "true",
	                 .health_url = "http://${host}:80/h",
	                 .health_timeout_ms = 5000};
	mg_fleet_options o = {.op = MG_FLEET_DEPLOY,
	                      .vms = &v,
	                      .version = "1.0",
	                      .artifact = "/a.tar.gz",
	                      .artifact_sha256 = "ab"};
	json_t *d = mg_fleet_describe(&o);
	cr_assert_eq(json_array_size(d), 3);
	json_t *h = json_array_get(d, 2);
	cr_expect_str_eq(json_string_value(json_object_get(h, "host")), "vm-03");
	cr_expect_eq(json_integer_value(json_object_get(h, "batch")), 2);
	json_t *steps = json_object_get(h, "steps");
	cr_expect_str_eq(json_string_value(json_array_get(steps, 0)),
	                 "connect to deploy@127.0.1.3 port 22 (host key checked against /k)");
	size_t last = json_array_size(steps) - 1;
	cr_expect_str_eq(json_string_value(json_array_get(steps, last - 1)),
	                 "check GET http://127.0.1.3:80/h until it answers 2xx, at most 5000 ms");
	json_decref(d);
}
