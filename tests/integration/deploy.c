/*
 * `migrate deploy --vms-only`, `rollback --release` and the fleet lines of
 * `status` end to end against the fake VMs of tests/sandbox/vms.sh: a real
 * sshd per VM on 127.0.1.<i>, each VM with its own files under the same
 * vms.path, and vmhealth.py answering 200 when current/healthy exists.
 * What is asserted is what the VMs hold afterwards (links read from each
 * VM's private root, files, markers), the exit codes, the JSON and the
 * journal, and, for refusals, that sshd saw no connection at all.
 *
 * The VMs are started by each test (not by .init) so that a failed start is
 * a failed assertion, after which .fini still stops whatever is up.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "sha256.h"
#include "store.h"

static char dir[256];
static char plan[300]; /* dir/plan.yaml */
static tu_vms vms;

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "deploy");
	snprintf(plan, sizeof(plan), "%s/plan.yaml", dir);
	unsetenv("NO_COLOR");
}

static void teardown(void)
{
	tu_vms_stop(&vms);
	tu_state_stop();
	tu_tmpdir_remove(dir);
}

TestSuite(deploy, .init = setup, .fini = teardown, .timeout = 60);

/* The whole file, or "" (and false) when it does not exist. */
static bool read_file(const char *path, char *buf, size_t size)
{
	buf[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	return true;
}

static const char *releases_of(int i)
{
	static char buf[2][512];
	static int k;
	k = (k + 1) % 2;
	tu_list_dir(buf[k], sizeof(buf[k]), tu_at("%s/releases", vms.root[i]));
	return buf[k];
}

static const char *sha_of(const char *version)
{
	static char hex[65];
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_sha256_file(hex, tu_at("%s/art/app-%s.tar.gz", dir, version), &err), 0,
	             "%s", err.message);
	return hex;
}

typedef struct {
	int nhosts;        /* the first n VMs; 0: all */
	const char *batch; /* default "1" */
	int parallel;      /* default 4 */
	int max_failures;  /* default 0 */
	int keep;          /* default 5 */
	const char *activate;
	bool no_health;
	const char *health_timeout; /* default 5s */
	const char *identity;       /* default the harness's key */
	const char *passphrase_env;
	const char *extra_host;      /* one more vms.hosts item */
	const char *command_timeout; /* default 20s */
} plan_opts;

static void write_plan(const plan_opts *o)
{
	char hosts[8192];
	tu_vms_hosts_lines(&vms, o->nhosts, hosts, sizeof(hosts));
	if (o->extra_host) {
		strncat(hosts, "    ", sizeof(hosts) - strlen(hosts) - 1);
		strncat(hosts, o->extra_host, sizeof(hosts) - strlen(hosts) - 1);
		strncat(hosts, "\n", sizeof(hosts) - strlen(hosts) - 1);
	}
	char text[16384];
	int len = snprintf(text, sizeof(text),
	                   "version: 1\n"
	                   "name: fleet\n"
	                   "build:\n"
	                   "  artifact: art/app-${version}.tar.gz\n"
	                   "vms:\n"
	                   "  hosts:\n%s"
	                   "  user: root\n"
	                   "  identity_file: %s\n"
	                   "  known_hosts: %s\n"
	                   "  path: %s\n"
	                   "  keep_releases: %d\n"
	                   "  parallel: %d\n"
	                   "  batch: \"%s\"\n"
	                   "  max_failures: %d\n"
	                   "  connect_timeout: 3s\n"
	                   "  command_timeout: %s\n",
	                   hosts, o->identity ? o->identity : vms.identity, vms.known_hosts,
	                   vms.path, o->keep ? o->keep : 5, o->parallel ? o->parallel : 4,
	                   o->batch ? o->batch : "1", o->max_failures,
	                   o->command_timeout ? o->command_timeout : "20s");
	if (o->passphrase_env)
		len += snprintf(text + len, sizeof(text) - (size_t)len, "  passphrase_env: %s\n",
		                o->passphrase_env);
	if (o->activate)
		len += snprintf(text + len, sizeof(text) - (size_t)len, "  activate: |-\n    %s\n",
		                o->activate);
	if (!o->no_health)
		len += snprintf(text + len, sizeof(text) - (size_t)len,
		                "  health: { url: \"http://${host}:%d/healthz\", timeout: %s }\n",
		                vms.health_port, o->health_timeout ? o->health_timeout : "5s");
	snprintf(text + len, sizeof(text) - (size_t)len, "state:\n  dir: state\n");
	tu_write_file(plan, text);
	tu_state_plan(plan, dir); /* MG_TEST_STATE_BACKEND */
}

/* A document of the plan's store ("state", "fleet") into buf; false when there is none. */
static bool read_doc(const char *name, char *buf, size_t size)
{
	char *t = tu_state_doc_text(plan, NULL, name);
	if (!t)
		return false;
	snprintf(buf, size, "%s", t);
	free(t);
	return true;
}

/* The plan's journal, one JSON record a line, into buf. */
static void read_journal(char *buf, size_t size)
{
	char *t = tu_state_journal_text(plan, NULL);
	snprintf(buf, size, "%s", t);
	free(t);
}

/* The size of every VM's sshd log now, so a test can tell whether it was contacted since. */
static void log_marks(long *marks)
{
	for (int i = 0; i < vms.n; i++) {
		struct stat sb;
		marks[i] =
		    stat(tu_at("%s/vm%d/sshd.log", vms.dir, i + 1), &sb) == 0 ? sb.st_size : 0;
	}
}

/*
 * Whether an SSH client connected since the marks. The harness's readiness
 * probe connects too and closes before the banner, and sshd may log that
 * after tu_vms_start returned: connections that ended that way do not count.
 */
static bool contacted_since(const long *marks, int i)
{
	FILE *f = fopen(tu_at("%s/vm%d/sshd.log", vms.dir, i + 1), "r");
	cr_assert_not_null(f);
	fseek(f, marks[i], SEEK_SET);
	char line[512];
	int connections = 0, probes = 0;
	while (fgets(line, sizeof(line), f)) {
		connections += strstr(line, "Connection from") != NULL;
		probes += strstr(line, "kex_exchange_identification") != NULL;
	}
	fclose(f);
	return connections > probes;
}

static json_t *host_json(json_t *doc, int i)
{
	json_t *h = json_array_get(json_object_get(doc, "hosts"), (size_t)i);
	cr_assert_not_null(h, "no hosts[%d]", i);
	return h;
}

static const char *hstr(json_t *doc, int i, const char *key)
{
	json_t *v = json_object_get(host_json(doc, i), key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The journal's records of one command, as "action,action,..." */
static void journal_actions(char *out, size_t size, const char *command)
{
	char text[1 << 16];
	read_journal(text, sizeof(text));
	out[0] = '\0';
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *r = json_loads(line, 0, NULL);
		cr_assert_not_null(r, "a journal line is not JSON: %s", line);
		if (!strcmp(json_string_value(json_object_get(r, "command")), command)) {
			if (*out)
				strncat(out, ",", size - strlen(out) - 1);
			strncat(out, json_string_value(json_object_get(r, "action")),
			        size - strlen(out) - 1);
		}
		json_decref(r);
	}
}

static void expect_ok(tu_output *r, const char *what)
{
	cr_assert_eq(r->status, 0, "%s: exit %d\nstdout: %s\nstderr: %s", what, r->status, r->out,
	             r->err);
}

Test(deploy, twenty_vms_get_the_release_with_a_relative_link_read_back)
{
	tu_vms_start(&vms, dir, 20);
	tu_make_artifact(dir, "1.0", true);
	plan_opts o = {.batch = "50%",
	               .parallel = 10,
	               .activate =
	                   "echo \"$MIGRATE_VERSION on $MIGRATE_HOST in $(pwd)\" > activated"};
	write_plan(&o);

	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "-o", "json", NULL);
	expect_ok(&r, "deploy 1.0");
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "command")), "deploy");
	cr_assert(json_is_true(json_object_get(doc, "ok")));
	cr_assert_str_eq(json_string_value(json_object_get(doc, "version")), "1.0");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "sha256")), sha_of("1.0"));
	cr_assert_eq(json_integer_value(json_object_get(doc, "batches")), 2);
	cr_assert_eq(json_integer_value(json_object_get(doc, "batch_size")), 10);
	cr_assert_eq(json_integer_value(json_object_get(doc, "hosts_ok")), 20);
	cr_assert_eq(json_integer_value(json_object_get(doc, "hosts_failed")), 0);
	cr_assert_eq(json_integer_value(json_object_get(doc, "uploaded")), 20);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "fleet_version")), "1.0");
	cr_assert(json_is_null(json_object_get(doc, "from_version")));
	cr_assert_leq(json_integer_value(json_object_get(doc, "max_concurrent")), 10);
	cr_assert_eq(json_array_size(json_object_get(doc, "hosts")), 20);

	char buf[512];
	for (int i = 0; i < 20; i++) {
		cr_assert_str_eq(hstr(doc, i, "host"), vms.name[i]);
		cr_assert_str_eq(hstr(doc, i, "outcome"), "ok", "%s: %s", vms.name[i],
		                 hstr(doc, i, "error"));
		cr_assert_str_eq(hstr(doc, i, "stage"), "done");
		cr_assert_str_eq(hstr(doc, i, "upload"), "uploaded");
		cr_assert_str_eq(hstr(doc, i, "version"), "1.0");
		cr_assert_null(hstr(doc, i, "previous"));
		cr_assert_null(hstr(doc, i, "error"));
		cr_assert_eq(json_integer_value(json_object_get(host_json(doc, i), "batch")),
		             i < 10 ? 1 : 2);
		/* on the VM itself: the relative link, the files, the marker, activate's work */
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.0", "%s", vms.name[i]);
		cr_assert_str_eq(releases_of(i), "1.0");
		cr_assert(
		    read_file(tu_at("%s/releases/1.0/version.txt", vms.root[i]), buf, sizeof(buf)));
		cr_assert_str_eq(buf, "1.0");
		cr_assert(read_file(tu_at("%s/releases/1.0/.migrate-artifact-sha256", vms.root[i]),
		                    buf, sizeof(buf)));
		cr_assert_str_eq(buf, tu_at("%s\n", sha_of("1.0")));
		cr_assert(
		    read_file(tu_at("%s/releases/1.0/activated", vms.root[i]), buf, sizeof(buf)));
		cr_assert_str_eq(buf, tu_at("1.0 on %s in %s/current\n", vms.name[i], vms.path));
		tu_list_dir(buf, sizeof(buf), tu_at("%s/.incoming", vms.root[i]));
		cr_assert_str_eq(buf, "", "the upload is removed once unpacked");
	}
	json_decref(doc);
	tu_output_free(&r);

	/* the record: state.json, fleet.json (0600, every host), the journal */
	char text[1 << 16];
	cr_assert(read_doc("state", text, sizeof(text)));
	json_t *st = json_loads(text, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(st, "versions"), "vms")),
	                 "1.0");
	json_decref(st);
	struct stat sb;
	if (!tu_state_kube()) {
		cr_assert_eq(stat(tu_at("%s/state/fleet/fleet.json", dir), &sb), 0);
		cr_assert_eq(sb.st_mode & 0777, 0600);
	}
	cr_assert(read_doc("fleet", text, sizeof(text)));
	json_t *fl = json_loads(text, 0, NULL);
	cr_assert_not_null(fl, "%s", text);
	json_t *fh = json_object_get(fl, "hosts");
	cr_assert_eq(json_object_size(fh), 20);
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(fh, "vm-20"), "version")), "1.0");
	json_decref(fl);
	journal_actions(buf, sizeof(buf), "deploy");
	cr_assert_str_eq(buf, "intent,batch,batch,result");

	/* status: the fleet's versions, no skew */
	r = tu_migrate_plan(plan, "status", "--offline", NULL);
	expect_ok(&r, "status");
	cr_assert(strstr(r.out, "  versions   VMs 1.0, cluster -\n"), "%s", r.out);
	cr_assert(strstr(r.out, "  fleet      20 hosts: 20 on 1.0\n"), "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "status", "--offline", "-o", "json", NULL);
	expect_ok(&r, "status -o json");
	doc = tu_json_doc(&r);
	json_t *fleet = json_object_get(doc, "fleet");
	cr_assert(json_is_false(json_object_get(fleet, "skew")));
	cr_assert_eq(json_integer_value(json_object_get(fleet, "hosts")), 20);
	cr_assert_eq(json_integer_value(json_object_get(fleet, "unknown")), 0);
	cr_assert_eq(json_array_size(json_object_get(fleet, "off_version")), 0);
	json_decref(doc);
	tu_output_free(&r);
}

Test(deploy, a_rerun_skips_the_upload_and_leaves_the_release_alone)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	plan_opts o = {.activate = "echo \"$MIGRATE_VERSION\" >> ../../activations"};
	write_plan(&o);
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "first deploy");
	tu_output_free(&r);
	struct stat before, marker_before;
	cr_assert_eq(stat(tu_at("%s/releases/1.0", vms.root[0]), &before), 0);
	cr_assert_eq(
	    stat(tu_at("%s/releases/1.0/.migrate-artifact-sha256", vms.root[0]), &marker_before),
	    0);

	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "-o", "json", NULL);
	expect_ok(&r, "second deploy");
	json_t *doc = tu_json_doc(&r);
	cr_assert_eq(json_integer_value(json_object_get(doc, "uploaded")), 0);
	cr_assert_eq(json_integer_value(json_object_get(doc, "skipped_uploads")), 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(hstr(doc, i, "upload"), "skipped");
		cr_assert(json_is_true(json_object_get(host_json(doc, i), "already")));
		cr_assert(json_is_false(json_object_get(host_json(doc, i), "switched")));
		cr_assert_str_eq(hstr(doc, i, "outcome"), "ok");
	}
	json_decref(doc);
	tu_output_free(&r);
	struct stat after, marker_after;
	cr_assert_eq(stat(tu_at("%s/releases/1.0", vms.root[0]), &after), 0);
	cr_assert_eq(
	    stat(tu_at("%s/releases/1.0/.migrate-artifact-sha256", vms.root[0]), &marker_after), 0);
	cr_assert_eq(after.st_ino, before.st_ino, "the release was replaced");
	cr_assert_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	cr_assert_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	cr_assert_eq(marker_after.st_mtim.tv_nsec, marker_before.st_mtim.tv_nsec);
	/* already live: not activated again */
	char buf[256];
	cr_assert(read_file(tu_at("%s/activations", vms.root[0]), buf, sizeof(buf)));
	cr_assert_str_eq(buf, "1.0\n");

	/* text output says so too */
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "third deploy");
	cr_assert(strstr(r.out, "deployed 1.0 on all 2 hosts"), "%s", r.out);
	cr_assert(strstr(r.out, "0 uploaded, 2 already there"), "%s", r.out);
	cr_assert(strstr(r.out, "skipped"), "%s", r.out);
	tu_output_free(&r);
}

Test(deploy, pruning_keeps_the_live_and_the_previous_release)
{
	tu_vms_start(&vms, dir, 2);
	const char *versions[] = {"1.0", "1.1", "1.2", "1.3"};
	for (int i = 0; i < 4; i++)
		tu_make_artifact(dir, versions[i], true);
	plan_opts o = {.keep = 2, .batch = "2"};
	write_plan(&o);
	for (int i = 0; i < 3; i++) {
		tu_output r =
		    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", versions[i], NULL);
		expect_ok(&r, versions[i]);
		tu_output_free(&r);
	}
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(releases_of(i), "1.1,1.2");
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.2");
	}

	/* back to 1.1, then forward to 1.3: 1.1 is the previous release, 1.2 only newer */
	tu_output r = tu_migrate_plan(plan, "rollback", "--release", NULL);
	expect_ok(&r, "rollback --release");
	cr_assert(strstr(r.out, "rolled back to 1.1 on all 2 hosts"), "%s", r.out);
	tu_output_free(&r);
	cr_assert_str_eq(tu_vms_current(&vms, 0), "releases/1.1");
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.3", "-o", "json", NULL);
	expect_ok(&r, "1.3");
	json_t *doc = tu_json_doc(&r);
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.3");
		cr_assert_str_eq(releases_of(i), "1.1,1.3");
		cr_assert_eq(json_integer_value(json_object_get(host_json(doc, i), "pruned")), 1);
		cr_assert_str_eq(hstr(doc, i, "previous"), "1.1");
	}
	json_decref(doc);
	tu_output_free(&r);
}

/* The journal's last record with that action, parsed. */
static json_t *last_record(const char *action)
{
	static char text[1 << 17];
	read_journal(text, sizeof(text));
	json_t *found = NULL;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *r = json_loads(line, 0, NULL);
		cr_assert_not_null(r, "%s", line);
		if (!strcmp(json_string_value(json_object_get(r, "action")), action)) {
			json_decref(found);
			found = r;
		} else {
			json_decref(r);
		}
	}
	cr_assert_not_null(found, "no %s record", action);
	return found;
}

/* Issue 20: leftovers of interrupted uploads stayed in .incoming/ for ever. */
Test(deploy, leftovers_of_interrupted_uploads_are_removed_and_reported)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	tu_make_artifact(dir, "1.1", true);
	plan_opts o = {.batch = "2"};
	write_plan(&o);
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "1.0");
	tu_output_free(&r);
	/* what a killed upload leaves on vm-01 */
	tu_write_file(tu_at("%s/.incoming/1.1.tar.gz.0123456789abcdef", vms.root[0]), "partial");
	tu_write_file(tu_at("%s/.incoming/.hidden-leftover", vms.root[0]), "x");
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1", "-o", "json", NULL);
	expect_ok(&r, "1.1");
	json_t *doc = tu_json_doc(&r);
	cr_assert_eq(json_integer_value(json_object_get(host_json(doc, 0), "incoming_removed")), 2);
	cr_assert_eq(json_integer_value(json_object_get(host_json(doc, 1), "incoming_removed")), 0);
	json_decref(doc);
	tu_output_free(&r);
	char list[256];
	tu_list_dir(list, sizeof(list), tu_at("%s/.incoming", vms.root[0]));
	cr_assert_str_eq(list, "", "left in .incoming: %s", list);
	cr_assert_str_eq(tu_vms_current(&vms, 0), "releases/1.1");
	json_t *rec = last_record("batch");
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(rec, "after"), "incoming_removed")),
	    2);
	json_t *inc = json_object_get(json_object_get(rec, "evidence"), "incoming_removed");
	cr_assert_eq(json_array_size(inc), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(inc, 0), "host")),
	                 "vm-01");
	json_decref(rec);
}

/* Issue 20: a failed prune was only a log line. */
Test(deploy, a_failed_prune_is_reported_and_fails_nothing)
{
	tu_vms_start(&vms, dir, 1);
	const char *versions[] = {"1.0", "1.1", "1.2", "1.3"};
	for (int i = 0; i < 4; i++)
		tu_make_artifact(dir, versions[i], true);
	plan_opts o = {.keep = 2};
	write_plan(&o);
	for (int i = 0; i < 2; i++) {
		tu_output r =
		    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", versions[i], NULL);
		expect_ok(&r, versions[i]);
		tu_output_free(&r);
	}
	/* an immutable releases/1.0: not even root can remove it */
	const char *old = tu_at("%s/releases/1.0", vms.root[0]);
	char p10[600];
	snprintf(p10, sizeof(p10), "%s", old);
	char why[1024];
	char *immutable[] = {"chattr", "+i", p10, NULL};
	cr_assert(tu_run_ok(dir, immutable, why, sizeof(why)), "%s", why);
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.2", "-o", "json", NULL);
	tu_output t = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.3", NULL);
	char *mutable_again[] = {"chattr", "-i", p10, NULL};
	cr_assert(tu_run_ok(dir, mutable_again, why, sizeof(why)), "%s", why);

	expect_ok(&r, "1.2 with a prune that fails");
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(hstr(doc, 0, "outcome"), "ok");
	cr_assert_eq(json_integer_value(json_object_get(host_json(doc, 0), "pruned")), 0);
	const char *pe = hstr(doc, 0, "prune_error");
	cr_assert_not_null(pe);
	cr_assert_not_null(strstr(pe, "removing old releases exited with status 1"), "%s", pe);
	cr_assert_null(hstr(doc, 0, "error"));
	json_decref(doc);
	tu_output_free(&r);

	expect_ok(&t, "1.3 with a prune that fails");
	cr_assert_not_null(strstr(t.out, "old releases not pruned: removing old releases exited"),
	                   "the table shows it:\n%s", t.out);
	tu_output_free(&t);
	cr_assert_str_eq(tu_vms_current(&vms, 0), "releases/1.3");

	json_t *rec = last_record("batch");
	json_t *pes = json_object_get(json_object_get(rec, "evidence"), "prune_errors");
	cr_assert_eq(json_array_size(pes), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(pes, 0), "host")),
	                 "vm-01");
	json_decref(rec);
}

/* How many processes have marker in their command line (the VMs share this pid namespace). */
static int count_processes(const char *marker)
{
	int n = 0;
	DIR *d = opendir("/proc");
	cr_assert_not_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char line[4096];
		FILE *f = fopen(tu_at("/proc/%s/cmdline", e->d_name), "r");
		if (!f)
			continue;
		size_t k = fread(line, 1, sizeof(line) - 1, f);
		fclose(f);
		for (size_t i = 0; i < k; i++)
			if (!line[i])
				line[i] = ' ';
		line[k] = '\0';
		n += strstr(line, marker) != NULL;
	}
	closedir(d);
	return n;
}

/* Issue 12: `activate: sleep 30` with `command_timeout: 3s` left its sleeps running. */
Test(deploy, an_activate_that_times_out_leaves_nothing_running)
{
	tu_vms_start(&vms, dir, 1);
	tu_make_artifact(dir, "1.0", true);
	char marker[64], activate[256];
	snprintf(marker, sizeof(marker), "3%d.%d", (int)getpid() % 10, (int)getpid());
	snprintf(activate, sizeof(activate), "sleep %s1 & sleep %s2 & sleep %s3", marker, marker,
	         marker);
	plan_opts o = {.activate = activate, .command_timeout = "1s", .no_health = true};
	write_plan(&o);
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.out, "timed out"), "%s", r.out);
	tu_output_free(&r);
	int left = 0;
	for (int i = 0; i < 100; i++) {
		if (!(left = count_processes(marker)))
			break;
		usleep(100 * 1000);
	}
	cr_assert_eq(left, 0, "%d of activate's processes still run on the host", left);
}

Test(deploy, a_failed_activate_stops_the_deploy_and_its_batch_goes_back)
{
	tu_vms_start(&vms, dir, 6);
	tu_make_artifact(dir, "1.0", true);
	tu_make_artifact(dir, "1.1", true);
	plan_opts o = {.batch = "2",
	               .parallel = 2,
	               .activate = "if [ -e ../../fail-$MIGRATE_VERSION ]; then echo \"refusing "
	                           "$MIGRATE_VERSION\" >&2; exit 3; fi"};
	write_plan(&o);
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "deploy 1.0");
	tu_output_free(&r);

	/* vm-03, in batch 2, refuses 1.1 */
	tu_write_file(tu_at("%s/fail-1.1", vms.root[2]), "");
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "%s\n%s", r.out, r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert(json_is_false(json_object_get(doc, "ok")));
	cr_assert(json_is_true(json_object_get(doc, "stopped")));
	cr_assert_eq(json_integer_value(json_object_get(doc, "stopped_batch")), 2);
	cr_assert_eq(json_integer_value(json_object_get(doc, "hosts_ok")), 2);
	cr_assert_eq(json_integer_value(json_object_get(doc, "hosts_failed")), 1);
	cr_assert_eq(json_integer_value(json_object_get(doc, "hosts_rolled_back")), 1);
	cr_assert_eq(json_integer_value(json_object_get(doc, "hosts_not_run")), 2);
	cr_assert(
	    strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
	           "stopped at batch 2 of 3"));
	/* batch 1: on 1.1 */
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(hstr(doc, i, "outcome"), "ok");
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.1");
	}
	/* batch 2: the failed host and the one that had succeeded are both back on 1.0 */
	cr_assert_str_eq(hstr(doc, 2, "outcome"), "failed");
	cr_assert_str_eq(hstr(doc, 2, "stage"), "activate");
	cr_assert(strstr(hstr(doc, 2, "error"), "activate exited with status 3: refusing 1.1"),
	          "%s", hstr(doc, 2, "error"));
	cr_assert(strstr(hstr(doc, 2, "error"), "went back to 1.0"), "%s", hstr(doc, 2, "error"));
	cr_assert_str_eq(hstr(doc, 2, "version"), "1.0");
	cr_assert_str_eq(tu_vms_current(&vms, 2), "releases/1.0");
	cr_assert_str_eq(hstr(doc, 3, "outcome"), "rolled-back");
	cr_assert(json_is_true(json_object_get(host_json(doc, 3), "reverted")));
	cr_assert_str_eq(tu_vms_current(&vms, 3), "releases/1.0");
	/* batch 3: never touched */
	for (int i = 4; i < 6; i++) {
		cr_assert_str_eq(hstr(doc, i, "outcome"), "not-run");
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.0");
		cr_assert_str_eq(releases_of(i), "1.0", "batch 3 got files");
	}
	json_decref(doc);
	tu_output_free(&r);
	char buf[512];
	journal_actions(buf, sizeof(buf), "deploy");
	cr_assert_str_eq(buf, "intent,batch,batch,batch,result,intent,batch,batch,failed");

	/* status: 1.1 is the fleet's version, with skew */
	r = tu_migrate_plan(plan, "status", "--offline", NULL);
	expect_ok(&r, "status");
	cr_assert(strstr(r.out, "  versions   VMs 1.1 (before: 1.0), cluster -\n"), "%s", r.out);
	cr_assert(strstr(r.out, "  fleet      6 hosts: 4 on 1.0, 2 on 1.1  SKEW: not every host "
	                        "runs 1.1\n"),
	          "%s", r.out);
	cr_assert(
	    strstr(r.out, "    vm-03                        1.0              last failed at "),
	    "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "status", "--offline", "-o", "json", NULL);
	doc = tu_json_doc(&r);
	json_t *fleet = json_object_get(doc, "fleet");
	cr_assert(json_is_true(json_object_get(fleet, "skew")));
	cr_assert_eq(json_array_size(json_object_get(fleet, "off_version")), 4);
	json_t *v0 = json_array_get(json_object_get(fleet, "versions"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(v0, "version")), "1.0");
	cr_assert_eq(json_integer_value(json_object_get(v0, "hosts")), 4);
	json_decref(doc);
	tu_output_free(&r);

	/* rollback --release puts the whole fleet back on 1.0, in the same batches */
	r = tu_migrate_plan(plan, "rollback", "--release", "-o", "json", NULL);
	expect_ok(&r, "rollback --release");
	doc = tu_json_doc(&r);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "op")), "rollback");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "version")), "1.0");
	cr_assert_eq(json_integer_value(json_object_get(doc, "batches_run")), 3);
	cr_assert(json_is_true(json_object_get(host_json(doc, 0), "switched")));
	cr_assert(json_is_true(json_object_get(host_json(doc, 5), "already")));
	json_decref(doc);
	tu_output_free(&r);
	for (int i = 0; i < 6; i++)
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.0", "%s", vms.name[i]);
	r = tu_migrate_plan(plan, "status", "--offline", NULL);
	cr_assert(strstr(r.out, "  fleet      6 hosts: 6 on 1.0\n"), "%s", r.out);
	tu_output_free(&r);
	/* once: there is nothing recorded before 1.0 */
	r = tu_migrate_plan(plan, "rollback", "--release", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "nothing to roll back to"), "%s", r.err);
	tu_output_free(&r);
}

Test(deploy, an_unhealthy_release_fails_and_goes_back)
{
	tu_vms_start(&vms, dir, 3);
	tu_make_artifact(dir, "1.0", true);
	tu_make_artifact(dir, "1.1", false);
	plan_opts o = {.health_timeout = "1s"};
	write_plan(&o);
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "deploy 1.0");
	tu_output_free(&r);

	int64_t t0 = tu_now_ms();
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1", "-o", "json", NULL);
	int64_t took = tu_now_ms() - t0;
	cr_assert_eq(r.status, 1, "%s\n%s", r.out, r.err);
	cr_assert_lt(took, 5000, "health.timeout is 1s, the deploy took %lld ms", (long long)took);
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(hstr(doc, 0, "outcome"), "failed");
	cr_assert_str_eq(hstr(doc, 0, "stage"), "health");
	const char *e = hstr(doc, 0, "error");
	cr_assert(strstr(e, tu_at("http://127.0.1.1:%d/healthz did not answer 2xx within 1 s",
	                          vms.health_port)),
	          "%s", e);
	cr_assert(strstr(e, "last: HTTP 503"), "%s", e);
	cr_assert(strstr(e, "went back to 1.0"), "%s", e);
	cr_assert_str_eq(tu_vms_current(&vms, 0), "releases/1.0");
	cr_assert_str_eq(hstr(doc, 1, "outcome"), "not-run");
	cr_assert_str_eq(tu_vms_current(&vms, 1), "releases/1.0");
	cr_assert_str_eq(releases_of(1), "1.0");
	json_decref(doc);
	tu_output_free(&r);
	/* text: a table row per host, exit 1, the reason on stderr */
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1", NULL);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.out, "fleet: deploy of 1.1 on 0 of 3 hosts"), "%s", r.out);
	cr_assert(strstr(r.out, "  vm-01  1      failed       health"), "%s", r.out);
	cr_assert(strstr(r.out, "  vm-03  3      not-run      -"), "%s", r.out);
	cr_assert(strstr(r.err, "error: the deploy of 1.1 stopped at batch 1 of 3"), "%s", r.err);
	tu_output_free(&r);
}

Test(deploy, bad_input_is_refused_before_any_host_is_contacted)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	plan_opts o = {0};
	write_plan(&o);
	long marks[TU_VMS_MAX];
	log_marks(marks);

	/* the artifact of this version does not exist */
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "9.9", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(
	    strstr(r.err, tu_at("the artifact %s/art/app-9.9.tar.gz (build.artifact for version "
	                        "9.9) does not exist; no host was contacted",
	                        dir)),
	    "%s", r.err);
	tu_output_free(&r);

	/* versions that are not release names, shell metacharacters first */
	const char *bad[] = {"1.0;touch /tmp/pwned",
	                     "$(touch x)",
	                     "`id`",
	                     "1.0 2",
	                     "../1.0",
	                     "a/b",
	                     ".hidden",
	                     "-rf",
	                     "",
	                     "1.0'",
	                     "1.0\n",
	                     "x\xc3\xa9",
	                     ("1111111111111111111111111111111111111111111111111111111111111111"
	                      "1111111111111111111111111111111111111111111111111111111111111111")};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", bad[i], "-o", "json",
		                    NULL);
		cr_assert_eq(r.status, 2, "%s: %s", bad[i], r.err);
		cr_assert(strstr(r.err, "--version: "), "%s: %s", bad[i], r.err);
		json_t *doc = tu_json_doc(&r);
		cr_assert_str_eq(
		    json_string_value(json_object_get(json_object_get(doc, "error"), "kind")),
		    "invalid input");
		json_decref(doc);
		tu_output_free(&r);
	}
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0;touch /tmp/pwned",
	                    NULL);
	cr_assert(strstr(r.err, "the version has ';' at position 4"), "%s", r.err);
	tu_output_free(&r);

	for (int i = 0; i < vms.n; i++)
		cr_assert_not(contacted_since(marks, i), "%s was contacted", vms.name[i]);
	cr_assert_eq(access(tu_at("%s/state", dir), F_OK), -1, "a refusal created the state dir");
}

Test(deploy, host_keys_unknown_refused_accepted_with_the_flag_changed_always_refused)
{
	tu_vms_start(&vms, dir, 3);
	tu_make_artifact(dir, "1.0", true);
	plan_opts o = {.max_failures = 5};
	write_plan(&o);

	/* vm-02 is not in known_hosts */
	tu_vms_forget_host(&vms, 1);
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(hstr(doc, 1, "outcome"), "failed");
	cr_assert_str_eq(hstr(doc, 1, "stage"), "connect");
	cr_assert(strstr(hstr(doc, 1, "error"), "unknown host"), "%s", hstr(doc, 1, "error"));
	cr_assert(strstr(hstr(doc, 1, "error"), "--accept-new-host-keys"), "%s",
	          hstr(doc, 1, "error"));
	cr_assert_str_eq(hstr(doc, 0, "outcome"), "ok");
	cr_assert_str_eq(hstr(doc, 2, "outcome"), "ok");
	cr_assert_str_eq(tu_vms_current(&vms, 1), "", "an unknown host was changed");
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0",
	                    "--accept-new-host-keys", NULL);
	expect_ok(&r, "with --accept-new-host-keys");
	tu_output_free(&r);
	cr_assert_str_eq(tu_vms_current(&vms, 1), "releases/1.0");
	char kh[8192];
	cr_assert(read_file(vms.known_hosts, kh, sizeof(kh)));
	cr_assert(strstr(kh, tu_at("[127.0.1.2]:%d ", vms.port)), "not recorded: %s", kh);
	/* recorded: strict checking now passes */
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "strict again");
	tu_output_free(&r);

	/* vm-01's key in known_hosts is not the one it has: refused, with or without the flag */
	char real[128], known[128];
	tu_vms_fingerprint(&vms, 0, real, sizeof(real));
	tu_vms_change_host_key(&vms, 0, known, sizeof(known));
	tu_make_artifact(dir, "1.1", true);
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1",
	                    "--accept-new-host-keys", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	doc = tu_json_doc(&r);
	const char *e = hstr(doc, 0, "error");
	cr_assert_str_eq(hstr(doc, 0, "stage"), "connect");
	cr_assert(strstr(e, "host key mismatch"), "%s", e);
	cr_assert(strstr(e, real), "%s lacks the host's %s", e, real);
	cr_assert(strstr(e, known), "%s lacks known_hosts' %s", e, known);
	cr_assert_str_eq(tu_vms_current(&vms, 0), "releases/1.0");
	cr_assert_str_eq(releases_of(0), "1.0");
	json_decref(doc);
	tu_output_free(&r);
}

Test(deploy, an_unreachable_host_fails_fast_and_alone)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	/* nothing listens on 127.0.1.250 */
	char extra[128];
	snprintf(extra, sizeof(extra), "- {name: gone, address: 127.0.1.250, port: %d}", vms.port);
	plan_opts o = {.max_failures = 1, .batch = "3", .extra_host = extra};
	write_plan(&o);
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(hstr(doc, 2, "host"), "gone");
	cr_assert_str_eq(hstr(doc, 2, "outcome"), "failed");
	cr_assert_str_eq(hstr(doc, 2, "stage"), "connect");
	cr_assert_lt(json_integer_value(json_object_get(host_json(doc, 2), "duration_ms")), 2000);
	cr_assert_null(hstr(doc, 2, "version"));
	/* within max_failures: the others go ahead */
	cr_assert(json_is_false(json_object_get(doc, "stopped")));
	cr_assert_str_eq(hstr(doc, 0, "outcome"), "ok");
	cr_assert_str_eq(tu_vms_current(&vms, 1), "releases/1.0");
	cr_assert(
	    strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
	           "1 of 3 hosts failed (within vms.max_failures, 1)"));
	json_decref(doc);
	tu_output_free(&r);
}

/* Issue 12: a host that failed at connect was recorded as running nothing. */
Test(deploy, a_host_that_fails_at_connect_keeps_its_recorded_release)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	tu_make_artifact(dir, "1.1", true);
	plan_opts o = {.max_failures = 1, .batch = "2"};
	write_plan(&o);
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "1.0");
	tu_output_free(&r);

	/* vm-02 is refused at connect (its key changed): nothing on it is touched */
	char fp[128];
	tu_vms_change_host_key(&vms, 1, fp, sizeof(fp));
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	json_t *doc = tu_json_doc(&r);
	cr_assert_str_eq(hstr(doc, 1, "stage"), "connect");
	cr_assert_str_eq(hstr(doc, 0, "outcome"), "ok");
	json_decref(doc);
	tu_output_free(&r);
	cr_assert_str_eq(tu_vms_current(&vms, 1), "releases/1.0");

	char text[8192];
	cr_assert(read_doc("fleet", text, sizeof(text)));
	json_t *rec = json_loads(text, 0, NULL);
	cr_assert_not_null(rec, "%s", text);
	json_t *h1 = json_object_get(json_object_get(rec, "hosts"), "vm-01");
	json_t *h2 = json_object_get(json_object_get(rec, "hosts"), "vm-02");
	cr_assert_str_eq(json_string_value(json_object_get(h1, "version")), "1.1", "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(h1, "previous")), "1.0", "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(h2, "version")), "1.0",
	                 "the failed host keeps its release: %s", text);
	cr_assert_str_eq(json_string_value(json_object_get(h2, "outcome")), "failed", "%s", text);
	json_decref(rec);
}

Test(deploy, a_key_the_hosts_do_not_know_is_refused)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	char why[2048], key[512];
	snprintf(key, sizeof(key), "%s/other_key", dir);
	char *argv[] = {"/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key, NULL};
	cr_assert(tu_run_ok(dir, argv, why, sizeof(why)), "%s", why);
	plan_opts o = {.identity = key, .max_failures = 5};
	write_plan(&o);
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "-o", "json", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	json_t *doc = tu_json_doc(&r);
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(hstr(doc, i, "stage"), "connect");
		cr_assert(strstr(hstr(doc, i, "error"), "authentication as root failed"), "%s",
		          hstr(doc, i, "error"));
		cr_assert_str_eq(tu_vms_current(&vms, i), "");
	}
	json_decref(doc);
	tu_output_free(&r);
}

Test(deploy, a_passphrase_from_the_environment_is_never_shown)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	const char *secret = "correct horse battery staple 42";
	char why[2048], key[512];
	snprintf(key, sizeof(key), "%s/locked_key", dir);
	char *argv[] = {"/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N",
	                (char *)secret,        "-f", key,  NULL};
	cr_assert(tu_run_ok(dir, argv, why, sizeof(why)), "%s", why);
	char pub[4096], keys[8192];
	cr_assert(read_file(tu_at("%s.pub", key), pub, sizeof(pub)));
	cr_assert(read_file(tu_at("%s/authorized_keys", vms.dir), keys, sizeof(keys)));
	strncat(keys, pub, sizeof(keys) - strlen(keys) - 1);
	tu_write_file(tu_at("%s/authorized_keys", vms.dir), keys);
	plan_opts o = {.identity = key, .passphrase_env = "MG_TEST_DEPLOY_PASSPHRASE"};
	write_plan(&o);

	unsetenv("MG_TEST_DEPLOY_PASSPHRASE");
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "MG_TEST_DEPLOY_PASSPHRASE is not set"), "%s", r.err);
	tu_output_free(&r);

	setenv("MG_TEST_DEPLOY_PASSPHRASE", secret, 1);
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "-vv", NULL);
	unsetenv("MG_TEST_DEPLOY_PASSPHRASE");
	expect_ok(&r, "deploy with the passphrase");
	cr_assert_null(strstr(r.out, "horse"));
	cr_assert_null(strstr(r.err, "horse"));
	tu_output_free(&r);
	cr_assert_str_eq(tu_vms_current(&vms, 1), "releases/1.0");
	char *text = tu_state_everything(plan, NULL);
	cr_assert_null(strstr(text, "horse"), "the passphrase is in the state");
	free(text);
}

/*
 * A host whose activate step prints the passphrase (once where the output's
 * 300-byte cut falls in its middle) and fails: none of it reaches stdout,
 * stderr, the state directory or history, at any verbosity.
 */
Test(deploy, a_passphrase_echoed_by_a_host_is_masked)
{
#define PASSPHRASE "Pass-phrase-SECRET-7f3e9a1c"
	tu_vms_start(&vms, dir, 1);
	const char *versions[] = {"1.0", "1.1", "1.2"};
	for (int v = 0; v < 3; v++)
		tu_make_artifact(dir, versions[v], true);
	char why[2048], key[512];
	snprintf(key, sizeof(key), "%s/locked_key", dir);
	char *argv[] = {
	    "/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", key, NULL};
	cr_assert(tu_run_ok(dir, argv, why, sizeof(why)), "%s", why);
	char pub[4096], keys[8192];
	cr_assert(read_file(tu_at("%s.pub", key), pub, sizeof(pub)));
	cr_assert(read_file(tu_at("%s/authorized_keys", vms.dir), keys, sizeof(keys)));
	strncat(keys, pub, sizeof(keys) - strlen(keys) - 1);
	tu_write_file(tu_at("%s/authorized_keys", vms.dir), keys);
	plan_opts o = {.identity = key,
	               .passphrase_env = "MG_TEST_DEPLOY_PASSPHRASE",
	               .no_health = true,
	               .activate = "printf '%0280d " PASSPHRASE " tail\\n' 0 >&2; echo 'unlocked "
	                           "with " PASSPHRASE "' >&2; exit 1"};
	write_plan(&o);
	const char *halves[] = {"Pass-phrase-SE", "CRET-7f3e9a1c"};
	const char *vb[] = {NULL, "-v", "-vv"};
	setenv("MG_TEST_DEPLOY_PASSPHRASE", PASSPHRASE, 1);
	for (int v = 0; v < 3; v++) {
		tu_output r =
		    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", versions[v],
		                    v ? vb[v] : "-o", v ? NULL : "json", NULL);
		cr_assert_neq(r.status, 0, "%s", r.out);
		for (int h = 0; h < 2; h++) {
			cr_assert_null(strstr(r.out, halves[h]), "%s", r.out);
			cr_assert_null(strstr(r.err, halves[h]), "%s", r.err);
		}
		tu_output_free(&r);
		r = tu_migrate_plan(plan, "history", v ? vb[v] : "-o", v ? NULL : "json", NULL);
		for (int h = 0; h < 2; h++)
			cr_assert_null(strstr(r.out, halves[h]), "%s", r.out);
		tu_output_free(&r);
	}
	unsetenv("MG_TEST_DEPLOY_PASSPHRASE");
	char *text = tu_state_everything(plan, NULL);
	for (int h = 0; h < 2; h++)
		cr_assert_null(strstr(text, halves[h]), "the passphrase is in the state");
	free(text);
#undef PASSPHRASE
}

Test(deploy, at_most_parallel_hosts_at_once)
{
	tu_vms_start(&vms, dir, 8);
	tu_make_artifact(dir, "1.0", true);
	/* activate counts the hosts in it at once, in files outside the VMs' namespaces */
	char script[2048];
	snprintf(
	    script, sizeof(script),
	    "#!/bin/sh\n"
	    "d=%s\n"
	    "flock \"$d/conc.lock\" sh -c 'n=$(($(cat \"$1/cur\") + 1)); echo $n > \"$1/cur\"; "
	    "if [ $n -gt $(cat \"$1/max\") ]; then echo $n > \"$1/max\"; fi' sh \"$d\"\n"
	    "sleep 0.3\n"
	    "flock \"$d/conc.lock\" sh -c 'echo $(($(cat \"$1/cur\") - 1)) > \"$1/cur\"' sh "
	    "\"$d\"\n",
	    dir);
	tu_write_file(tu_at("%s/conc.sh", dir), script);
	tu_write_file(tu_at("%s/cur", dir), "0\n");
	tu_write_file(tu_at("%s/max", dir), "0\n");
	plan_opts o = {.batch = "100%", .parallel = 3, .activate = tu_at("sh %s/conc.sh", dir)};
	write_plan(&o);
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "-o", "json", NULL);
	expect_ok(&r, "deploy");
	json_t *doc = tu_json_doc(&r);
	cr_assert_eq(json_integer_value(json_object_get(doc, "batches")), 1);
	cr_assert_leq(json_integer_value(json_object_get(doc, "max_concurrent")), 3);
	json_decref(doc);
	tu_output_free(&r);
	char buf[64];
	cr_assert(read_file(tu_at("%s/max", dir), buf, sizeof(buf)));
	int max = atoi(buf);
	cr_assert_leq(max, 3, "%d activates ran at once with vms.parallel 3", max);
	cr_assert_geq(max, 2, "the hosts were not worked on in parallel (max %d)", max);
	cr_assert(read_file(tu_at("%s/cur", dir), buf, sizeof(buf)));
	cr_assert_str_eq(buf, "0\n");
	for (int i = 0; i < 8; i++)
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.0");
}

Test(deploy, dry_runs_list_each_host_and_touch_nothing)
{
	tu_vms_start(&vms, dir, 3);
	tu_make_artifact(dir, "1.0", true);
	tu_make_artifact(dir, "1.1", true);
	plan_opts o = {.activate = "true"};
	write_plan(&o);
	long marks[TU_VMS_MAX];
	log_marks(marks);
	tu_output r =
	    tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "--dry-run", NULL);
	expect_ok(&r, "dry run");
	cr_assert(strstr(r.out, "dry run: deploy 1.0 on 3 hosts in 3 batches of 1, at most 4 at "
	                        "once; nothing was contacted or changed\n"),
	          "%s", r.out);
	cr_assert(strstr(r.out, tu_at("  sha256 %s\n", sha_of("1.0"))), "%s", r.out);
	for (int i = 0; i < 3; i++)
		cr_assert(strstr(r.out, tu_at("  %s (root@%s port %d)\n", vms.name[i],
		                              vms.address[i], vms.port)),
		          "%s", r.out);
	cr_assert(strstr(r.out, "ln -sfn -- 'releases/1.0' current.tmp && mv -T -- current.tmp "
	                        "current && readlink current"),
	          "%s", r.out);
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", "--dry-run", "-o",
	                    "json", NULL);
	expect_ok(&r, "dry run json");
	json_t *doc = tu_json_doc(&r);
	cr_assert(json_is_true(json_object_get(doc, "dry_run")));
	cr_assert_eq(json_array_size(json_object_get(doc, "hosts")), 3);
	cr_assert_eq(json_integer_value(json_object_get(host_json(doc, 2), "batch")), 3);
	cr_assert_geq(json_array_size(json_object_get(host_json(doc, 0), "steps")), 6);
	json_decref(doc);
	tu_output_free(&r);
	for (int i = 0; i < 3; i++) {
		cr_assert_not(contacted_since(marks, i), "a dry run contacted %s", vms.name[i]);
		char list[256];
		tu_list_dir(list, sizeof(list), vms.root[i]);
		cr_assert_str_eq(list, "");
	}
	cr_assert_eq(access(tu_at("%s/state", dir), F_OK), -1, "a dry run created the state dir");

	/* rollback --release --dry-run names the release and changes nothing */
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	expect_ok(&r, "1.0");
	tu_output_free(&r);
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.1", NULL);
	expect_ok(&r, "1.1");
	tu_output_free(&r);
	char before[1 << 16], after[1 << 16];
	read_journal(before, sizeof(before));
	log_marks(marks);
	r = tu_migrate_plan(plan, "rollback", "--release", "--dry-run", NULL);
	expect_ok(&r, "rollback dry run");
	cr_assert(strstr(r.out, "dry run: rollback to 1.0 on 3 hosts"), "%s", r.out);
	tu_output_free(&r);
	read_journal(after, sizeof(after));
	cr_assert_str_eq(before, after);
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(tu_vms_current(&vms, i), "releases/1.1");
		cr_assert_not(contacted_since(marks, i));
	}
}

Test(deploy, usage_errors_and_plans_without_what_deploy_needs)
{
	/* no VM needed: all of these stop before any host */
	tu_write_file(tu_at("%s/key", dir), "not a key, never read\n");
	tu_write_file(tu_at("%s/known_hosts", dir), "");
	tu_write_file(tu_at("%s/plan.yaml", dir), "version: 1\n"
	                                          "name: fleet\n"
	                                          "build: { artifact: app.tar.gz }\n"
	                                          "vms:\n"
	                                          "  hosts: [127.0.1.250]\n"
	                                          "  user: deploy\n"
	                                          "  identity_file: key\n"
	                                          "  known_hosts: known_hosts\n"
	                                          "  path: /srv/app\n");
	struct {
		const char *args[6];
		const char *err;
	} cases[] = {
	    /* no flag: every side the plan has, here the VMs alone */
	    {{"deploy", "--version", "1.0"},
	     "app.tar.gz (build.artifact for version 1.0) does not"},
	    {{"deploy", "--k8s-only", "--version", "1.0"}, "has no kubernetes section"},
	    {{"deploy", "--vms-only"}, "--version V is required: the plan has no build.repo"},
	    {{"rollback", "--release", "--to", "10"}, "--to and --force are for a traffic"},
	    {{"rollback", "--accept-new-host-keys"}, "goes with --release"},
	    /* no state and a host that cannot be read: where to go back is not known */
	    {{"rollback", "--release"},
	     "the VMs' release cannot be rebuilt: 1 of 1 hosts could "
	     "not be read"},
	    {{"deploy", "--vms-only", "--version", "1.0", "--no-such"}, "unknown option"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char **a = cases[i].args;
		tu_output r = tu_migrate_plan(plan, a[0], a[1], a[2], a[3], a[4], a[5]);
		cr_assert_eq(r.status, 2, "%s %s: %d %s", a[0], a[1], r.status, r.err);
		cr_assert(strstr(r.err, cases[i].err), "%s %s: %s", a[0], a[1], r.err);
		tu_output_free(&r);
	}
	/* the artifact exists, the key does not */
	tu_write_file(tu_at("%s/app.tar.gz", dir), "x");
	cr_assert_eq(unlink(tu_at("%s/key", dir)), 0);
	tu_output r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, tu_at("vms.identity_file: cannot read %s/key", dir)), "%s", r.err);
	tu_output_free(&r);
	/* no build section */
	tu_write_file(tu_at("%s/plan.yaml", dir), "version: 1\n"
	                                          "name: fleet\n"
	                                          "vms:\n"
	                                          "  hosts: [127.0.1.250]\n"
	                                          "  user: deploy\n"
	                                          "  path: /srv/app\n");
	r = tu_migrate_plan(plan, "deploy", "--vms-only", "--version", "1.0", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "needs a `build` section"), "%s", r.err);
	tu_output_free(&r);
}

Test(deploy, an_autopilot_holding_the_plan_is_named_with_what_ends_it)
{
	tu_vms_start(&vms, dir, 2);
	tu_make_artifact(dir, "1.0", true);
	plan_opts o = {0};
	write_plan(&o);
	long marks[TU_VMS_MAX];
	log_marks(marks);

	/* a `migrate run` of this plan: a child holding the lock as "run" until told to go */
	int go[2], ready[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(go[1]);
		close(ready[0]);
		mg_error err = MG_ERROR_INIT;
		mg_store *s;
		if (tu_state_store_open(&s, plan, NULL, false, &err) ||
		    mg_store_lock(s, "run", &err))
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		char c;
		(void)!read(go[0], &c, 1);
		mg_store_free(s);
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	/* the child says when it holds the lock (5 s at most) */
	struct pollfd rp = {ready[0], POLLIN, 0};
	char c = 0;
	cr_assert(poll(&rp, 1, 5000) == 1 && read(ready[0], &c, 1) == 1,
	          "the child did not take the lock");
	close(ready[0]);

	const char *argv[][4] = {{"deploy", "--vms-only", "--version", "1.0"},
	                         {"rollback", "--release", "--vms-only", NULL}};
	for (size_t i = 0; i < 2; i++) {
		tu_output r =
		    tu_migrate_plan(plan, argv[i][0], argv[i][1], argv[i][2], argv[i][3], NULL);
		cr_assert_eq(r.status, 3, "%s: %d %s", argv[i][0], r.status, r.err);
		cr_assert(strstr(r.err, tu_at("running \"run\" since")), "%s", r.err);
		cr_assert(strstr(r.err, tu_at("pid %ld", (long)pid)), "%s", r.err);
		cr_assert(strstr(r.err, "`migrate rollback` stops it"), "%s", r.err);
		cr_assert(strstr(r.err, tu_at("then run `migrate %s` again", argv[i][0])), "%s",
		          r.err);
		tu_output_free(&r);
	}
	cr_assert_eq(write(go[1], "x", 1), 1);
	close(go[1]);
	int st;
	waitpid(pid, &st, 0);
	for (int i = 0; i < vms.n; i++)
		cr_assert_not(contacted_since(marks, i), "%s was contacted", vms.name[i]);
}
