/*
 * The fleet's remote commands (lib/fleet.h): the shell each stage runs on a
 * host, every value quoted, the names of stages and outcomes, the release
 * name rule, which releases to prune, and the dry run's description.
 */
#include "fleet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh.h"

static const char *const stage_names[] = {
    [MG_FLEET_STAGE_QUEUED] = "queued",   [MG_FLEET_STAGE_CONNECT] = "connect",
    [MG_FLEET_STAGE_INSPECT] = "inspect", [MG_FLEET_STAGE_UPLOAD] = "upload",
    [MG_FLEET_STAGE_VERIFY] = "verify",   [MG_FLEET_STAGE_UNPACK] = "unpack",
    [MG_FLEET_STAGE_SWITCH] = "switch",   [MG_FLEET_STAGE_ACTIVATE] = "activate",
    [MG_FLEET_STAGE_HEALTH] = "health",   [MG_FLEET_STAGE_PRUNE] = "prune",
    [MG_FLEET_STAGE_DONE] = "done",
};

const char *mg_fleet_stage_name(mg_fleet_stage s)
{
	if ((unsigned)s < sizeof(stage_names) / sizeof(stage_names[0]))
		return stage_names[s];
	return "unknown";
}

const char *mg_fleet_outcome_name(mg_fleet_outcome o)
{
	switch (o) {
	case MG_FLEET_NOT_RUN:
		return "not-run";
	case MG_FLEET_OK:
		return "ok";
	case MG_FLEET_FAILED:
		return "failed";
	case MG_FLEET_ROLLED_BACK:
		return "rolled-back";
	}
	return "unknown";
}

const char *mg_fleet_op_name(mg_fleet_op op)
{
	return op == MG_FLEET_ROLLBACK ? "rollback" : "deploy";
}

size_t mg_fleet_batch_count(size_t nhosts, size_t batch_size)
{
	if (batch_size == 0)
		return 0;
	return (nhosts + batch_size - 1) / batch_size;
}

/* Newest first; ties by name so the choice does not depend on the listing's order. */
static int newer(const mg_fleet_release *a, const mg_fleet_release *b)
{
	if (a->sec != b->sec)
		return a->sec > b->sec ? -1 : 1;
	if (a->nsec != b->nsec)
		return a->nsec > b->nsec ? -1 : 1;
	return strcmp(b->name, a->name);
}

size_t mg_fleet_prune_select(bool *remove, const mg_fleet_release *rel, size_t n, const char *live,
                             const char *previous, int keep)
{
	size_t kept = 0, removed = 0;
	bool *keepm = calloc(n ? n : 1, sizeof(*keepm));
	if (!keepm) {
		/* removing nothing is always safe */
		for (size_t i = 0; i < n; i++)
			remove[i] = false;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if ((live && *live && !strcmp(rel[i].name, live)) ||
		    (previous && *previous && !strcmp(rel[i].name, previous))) {
			keepm[i] = true;
			kept++;
		}
	}
	/* then the newest, one at a time: n is a handful on a real host */
	while (kept < (size_t)(keep > 0 ? keep : 0)) {
		size_t best = n;
		for (size_t i = 0; i < n; i++)
			if (!keepm[i] && (best == n || newer(&rel[i], &rel[best]) < 0))
				best = i;
		if (best == n)
			break;
		keepm[best] = true;
		kept++;
	}
	for (size_t i = 0; i < n; i++) {
		remove[i] = !keepm[i];
		removed += remove[i];
	}
	free(keepm);
	return removed;
}

/* A growing string; any failure to grow makes the result NULL. */
typedef struct {
	char *buf;
	size_t len, cap;
	bool oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->buf, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

/* s as one shell word */
static void sb_addq(sbuf *b, const char *s)
{
	char *q = mg_ssh_quote(s);
	if (!q) {
		b->oom = true;
		return;
	}
	sb_add(b, q);
	free(q);
}

static void sb_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf *b, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	sb_addn(b, s, (size_t)n);
	free(s);
}

/* The quoted path joined with a suffix ("/releases"), as one word. */
static void sb_addq_join(sbuf *b, const char *path, const char *suffix)
{
	sbuf t = {0};
	sb_add(&t, path);
	sb_add(&t, suffix);
	if (t.oom)
		b->oom = true;
	else
		sb_addq(b, t.buf);
	free(t.buf);
}

static char *sb_take(sbuf *b)
{
	if (b->oom || !b->buf) {
		free(b->buf);
		return NULL;
	}
	return b->buf;
}

char *mg_fleet_cmd_inspect(const char *path, const char *version)
{
	sbuf b = {0};
	sb_add(&b, "mkdir -p -- ");
	sb_addq_join(&b, path, "/releases");
	sb_add(&b, " ");
	sb_addq_join(&b, path, "/.incoming");
	sb_add(&b, " && cd -- ");
	sb_addq(&b, path);
	sb_add(&b, " && if [ -L current ]; then k=link; elif [ -e current ]; then k=other; else "
	           "k=none; fi && printf 'kind=%s\\ncurrent=%s\\nmarker=%s\\n' \"$k\" \"$(readlink "
	           "current 2>/dev/null)\" \"$(cat -- ");
	sbuf m = {0};
	sb_add(&m, "releases/");
	sb_add(&m, version);
	sb_add(&m, "/" MG_FLEET_MARKER);
	if (m.oom)
		b.oom = true;
	else
		sb_addq(&b, m.buf);
	free(m.buf);
	sb_add(&b, " 2>/dev/null)\"");
	/*
	 * Leftovers of uploads that were interrupted (migrate killed, the host
	 * gone): the plan's lock means no other upload of this plan is running.
	 * A leftover that cannot be removed fails nothing.
	 */
	sb_add(&b, " && for f in .incoming/* .incoming/.[!.]* .incoming/..?*; do if [ -e \"$f\" ] "
	           "|| [ -L \"$f\" ]; then rm -rf -- \"$f\" 2>/dev/null && printf "
	           "'removed=%s\\n' \"${f#.incoming/}\"; fi; done; true");
	return sb_take(&b);
}

char *mg_fleet_cmd_verify(const char *remote_file)
{
	sbuf b = {0};
	sb_add(&b, "sha256sum -- ");
	sb_addq(&b, remote_file);
	return sb_take(&b);
}

char *mg_fleet_cmd_unpack(const char *path, const char *version, const char *remote_file,
                          const char *sha256)
{
	char tmp[MG_PLAN_VERSION_MAX + 8];
	snprintf(tmp, sizeof(tmp), ".%s.tmp", version);
	sbuf b = {0};
	sb_add(&b, "cd -- ");
	sb_addq_join(&b, path, "/releases");
	sb_add(&b, " && rm -rf -- ");
	sb_addq(&b, tmp);
	sb_add(&b, " && mkdir -- ");
	sb_addq(&b, tmp);
	sb_add(&b, " && tar -xzf ");
	sb_addq(&b, remote_file);
	sb_add(&b, " -C ");
	sb_addq(&b, tmp);
	sb_add(&b, " --no-same-owner && printf '%s\\n' ");
	sb_addq(&b, sha256);
	sb_add(&b, " > ");
	sb_addq_join(&b, tmp, "/" MG_FLEET_MARKER);
	sb_add(&b, " && rm -rf -- ");
	sb_addq(&b, version);
	sb_add(&b, " && mv -T -- ");
	sb_addq(&b, tmp);
	sb_add(&b, " ");
	sb_addq(&b, version);
	/* read back: the caller compares it with the digest it sent */
	sb_add(&b, " && cat -- ");
	sb_addq_join(&b, version, "/" MG_FLEET_MARKER);
	/* whatever happened, nothing half-unpacked or uploaded stays (absolute: cd may have
	 * failed) */
	sb_add(&b, "; rc=$?; rm -f -- ");
	sb_addq(&b, remote_file);
	sb_add(&b, "; [ $rc -eq 0 ] || rm -rf -- ");
	sbuf t = {0};
	sb_add(&t, path);
	sb_add(&t, "/releases/");
	sb_add(&t, tmp);
	if (t.oom)
		b.oom = true;
	else
		sb_addq(&b, t.buf);
	free(t.buf);
	sb_add(&b, "; exit $rc");
	return sb_take(&b);
}

char *mg_fleet_cmd_switch(const char *path, const char *version)
{
	sbuf b = {0};
	sb_add(&b, "cd -- ");
	sb_addq(&b, path);
	sb_add(&b, " && ln -sfn -- ");
	sb_addq_join(&b, "releases/", version);
	sb_add(&b, " current.tmp && mv -T -- current.tmp current && readlink current");
	return sb_take(&b);
}

char *mg_fleet_cmd_activate(const char *path, const char *activate, const char *version,
                            const char *host)
{
	sbuf b = {0};
	sb_add(&b, "cd -- ");
	sb_addq_join(&b, path, "/current");
	sb_add(&b, " && MIGRATE_VERSION=");
	sb_addq(&b, version);
	sb_add(&b, " MIGRATE_HOST=");
	sb_addq(&b, host);
	sb_add(&b, " MIGRATE_PATH=");
	sb_addq(&b, path);
	/* the operator's command on a line of its own: a comment in it cannot hide ours */
	sb_add(&b, " && export MIGRATE_VERSION MIGRATE_HOST MIGRATE_PATH || exit 1\n");
	sb_add(&b, activate);
	return sb_take(&b);
}

char *mg_fleet_cmd_list_releases(const char *path)
{
	sbuf b = {0};
	sb_add(&b, "cd -- ");
	sb_addq_join(&b, path, "/releases");
	sb_add(&b, " && for d in *; do if [ -f \"$d/" MG_FLEET_MARKER "\" ]; then stat -c "
	           "'%.9Y %n' -- \"$d/" MG_FLEET_MARKER "\" || exit 1; fi; done");
	return sb_take(&b);
}

char *mg_fleet_cmd_survey(const char *path)
{
	sbuf b = {0};
	/* no deploy directory is a host never deployed to, not an error; nothing is created */
	sb_add(&b, "if [ ! -e ");
	sb_addq(&b, path);
	sb_add(&b, " ]; then printf 'kind=none\\n'; exit 0; fi; cd -- ");
	sb_addq(&b, path);
	sb_add(&b, " && if [ -L current ]; then k=link; elif [ -e current ]; then k=other; else "
	           "k=none; fi && printf 'kind=%s\\ncurrent=%s\\n' \"$k\" \"$(readlink current "
	           "2>/dev/null)\" && if [ -d releases ]; then cd releases && for d in *; do if [ "
	           "-f \"$d/" MG_FLEET_MARKER
	           "\" ]; then stat -c 'release=%.9Y %n' -- \"$d/" MG_FLEET_MARKER
	           "\" || exit 1; fi; done; fi");
	return sb_take(&b);
}

char *mg_fleet_cmd_remove_releases(const char *path, const char *const *names, size_t n)
{
	sbuf b = {0};
	sb_add(&b, "cd -- ");
	sb_addq_join(&b, path, "/releases");
	sb_add(&b, " && rm -rf --");
	for (size_t i = 0; i < n; i++) {
		sb_add(&b, " ");
		sb_addq(&b, names[i]);
	}
	return sb_take(&b);
}

char *mg_fleet_incoming_path(const char *path, const char *version, const char *suffix)
{
	char *s;
	if (asprintf(&s, "%s/.incoming/%s.tar.gz.%s", path, version, suffix) < 0)
		return NULL;
	return s;
}

char *mg_fleet_health_url(const char *tmpl, const char *address)
{
	sbuf b = {0};
	bool v6 = strchr(address, ':') != NULL;
	for (const char *p = tmpl; *p;) {
		const char *ref = strstr(p, "${host}");
		if (!ref) {
			sb_add(&b, p);
			break;
		}
		sb_addn(&b, p, (size_t)(ref - p));
		if (v6)
			sb_addf(&b, "[%s]", address);
		else
			sb_add(&b, address);
		p = ref + 7;
	}
	if (!b.buf && !b.oom)
		sb_add(&b, "");
	return sb_take(&b);
}

json_t *mg_fleet_describe(const mg_fleet_options *o)
{
	const mg_plan_vms *v = o->vms;
	json_t *a = json_array();
	size_t bs = mg_plan_vms_batch_size(v);
	for (size_t i = 0; v && i < v->nhosts; i++) {
		const mg_plan_host *host = &v->hosts[i];
		json_t *steps = json_array();
		char *s = NULL;
#define STEP(...)                                                                                  \
	do {                                                                                       \
		if (asprintf(&s, __VA_ARGS__) >= 0) {                                              \
			json_array_append_new(steps, json_string(s));                              \
			free(s);                                                                   \
		}                                                                                  \
	} while (0)
		STEP("connect to %s@%s port %d (host key checked against %s%s)", v->user,
		     host->address, host->port, v->known_hosts,
		     o->accept_new_host_keys ? "; an unknown key is accepted and recorded" : "");
		char *cmd = mg_fleet_cmd_inspect(v->path, o->version);
		STEP("run: %s", cmd ? cmd : "");
		free(cmd);
		if (o->op == MG_FLEET_DEPLOY) {
			char *remote = mg_fleet_incoming_path(v->path, o->version, "<random>");
			STEP("unless releases/%s is complete with SHA-256 %s: upload %s to %s over "
			     "SFTP",
			     o->version, o->artifact_sha256, o->artifact, remote ? remote : "");
			cmd = remote ? mg_fleet_cmd_verify(remote) : NULL;
			STEP("run: %s (must print %s)", cmd ? cmd : "", o->artifact_sha256);
			free(cmd);
			cmd = remote ? mg_fleet_cmd_unpack(v->path, o->version, remote,
			                                   o->artifact_sha256)
			             : NULL;
			STEP("run: %s", cmd ? cmd : "");
			free(cmd);
			free(remote);
		} else {
			STEP("refuse unless releases/%s is complete on the host", o->version);
		}
		cmd = mg_fleet_cmd_switch(v->path, o->version);
		STEP("unless current already points at releases/%s, run: %s (must print "
		     "releases/%s)",
		     o->version, cmd ? cmd : "", o->version);
		free(cmd);
		if (v->activate)
			STEP("then run in %s/current, with MIGRATE_VERSION=%s MIGRATE_HOST=%s "
			     "MIGRATE_PATH=%s: %s",
			     v->path, o->version, host->name, v->path, v->activate);
		if (v->health_url) {
			char *url = mg_fleet_health_url(v->health_url, host->address);
			STEP("check GET %s until it answers 2xx, at most %lld ms", url ? url : "",
			     (long long)v->health_timeout_ms);
			free(url);
		}
		if (o->op == MG_FLEET_DEPLOY)
			STEP(
			    "keep %d releases in %s/releases: the live one, the previous one, then "
			    "the newest",
			    v->keep_releases, v->path);
#undef STEP
		json_array_append_new(a,
		                      json_pack("{s:s, s:s, s:i, s:I, s:o}", "host", host->name,
		                                "address", host->address, "port", host->port,
		                                "batch", (json_int_t)(i / bs) + 1, "steps", steps));
	}
	return a;
}
