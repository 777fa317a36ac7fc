#include "fleet.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "http.h"
#include "journal.h"
#include "log.h"
#include "secret.h"
#include "ssh.h"

#define FLEET_FILE   "fleet.json"
#define FLEET_FORMAT 1
/* Keepalives while a long activate runs, so a NAT or firewall does not drop the session. */
#define KEEPALIVE_S 15
/* One health probe may not take longer than this, so the deadline is looked at often. */
#define HEALTH_PROBE_MS 2000
#define HEALTH_PAUSE_MS 200
/* Failed hosts named in a batch's journal record; the rest are counted. */
#define JOURNAL_FAILURES 50

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

static bool canceled(const mg_cancel *cancel)
{
	return cancel && *cancel;
}

int mg_fleet_check_version(const char *v, char *why, size_t size)
{
	size_t n = v ? strlen(v) : 0;
	if (n == 0) {
		snprintf(why, size, "the version is empty");
		return -1;
	}
	if (n > MG_FLEET_VERSION_MAX) {
		snprintf(why, size, "the version is %zu characters long; at most %d are allowed", n,
		         MG_FLEET_VERSION_MAX);
		return -1;
	}
	if (v[0] == '.' || v[0] == '-') {
		snprintf(why, size,
		         "\"%s\" starts with '%c'; a version starts with a letter, digit, "
		         "'_' or '+'",
		         v, v[0]);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-';
		if (!ok) {
			/* the version may hold anything here: show the offending byte, not the rest
			 */
			if (c >= 0x21 && c < 0x7f)
				snprintf(
				    why, size,
				    "the version has '%c' at position %zu; only letters, digits "
				    "and . _ + - are allowed",
				    c, i + 1);
			else
				snprintf(
				    why, size,
				    "the version has byte 0x%02x at position %zu; only letters, "
				    "digits and . _ + - are allowed",
				    c, i + 1);
			return -1;
		}
	}
	return 0;
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
	char tmp[MG_FLEET_VERSION_MAX + 8];
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

/* ---- the run ---- */

typedef struct {
	const mg_fleet_options *opt;
	mg_fleet_result *res;
	pthread_mutex_t mu;
	const size_t *queue;
	size_t nqueue, next;
	bool revert; /* the queue's hosts go back to their previous release */
	size_t batch;
	int active;
	size_t done;
} run_ctx;

static void notify_locked(run_ctx *R, const mg_fleet_host_result *h, bool finished, bool reverting)
{
	if (!R->opt->progress)
		return;
	mg_fleet_progress p = {R->res,   h,       finished,         reverting,
	                       R->batch, R->done, (size_t)R->active};
	R->opt->progress(R->opt->progress_ud, &p);
}

static void set_stage(run_ctx *R, mg_fleet_host_result *h, mg_fleet_stage s)
{
	mg_log(MG_LOG_DEBUG, "%s: %s%s", h->host->name, R->revert ? "going back: " : "",
	       mg_fleet_stage_name(s));
	pthread_mutex_lock(&R->mu);
	h->stage = s;
	notify_locked(R, h, false, R->revert);
	pthread_mutex_unlock(&R->mu);
}

/* Copies src into dst, trimming trailing white space. */
static void copy_trim(char *dst, size_t size, const char *src, size_t len)
{
	while (len && (src[len - 1] == '\n' || src[len - 1] == '\r' || src[len - 1] == ' ' ||
	               src[len - 1] == '\t'))
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* The last lines of a command's output, on one line, for an error message. */
static void output_tail(char *dst, size_t size, const char *raw, size_t rawlen)
{
	dst[0] = '\0';
	if (!raw)
		return;
	/* scrubbed before it is cut: a secret cut in half would no longer be recognised */
	char *s = mg_scrub_ndup(raw, rawlen);
	if (!s) {
		snprintf(dst, size, "%s", "(output withheld: out of memory)");
		return;
	}
	size_t len = strlen(s);
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	size_t start = len, lines = 0;
	while (start > 0 && lines < 3) {
		start--;
		if (s[start] == '\n')
			lines++;
	}
	if (start < len && s[start] == '\n')
		start++;
	size_t o = 0;
	if (start > 0 && o + 4 < size) {
		memcpy(dst, "... ", 4);
		o = 4;
	}
	for (size_t i = start; i < len && o + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[o++] = c == '\n' ? '|' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[o] = '\0';
	if (o > 300) /* keep the table readable: the host's own logs have the rest */
		snprintf(dst + 297, size - 297, "...");
	free(s);
}

/*
 * Runs one command; its exit status must be 0. out (may be NULL) gets the
 * result, to be freed by the caller also on failure.
 */
static int run_cmd(mg_ssh_result *out, mg_ssh *s, const char *cmd, int64_t timeout_ms,
                   const char *what, mg_error *e)
{
	mg_ssh_result local = {0};
	mg_ssh_result *r = out ? out : &local;
	memset(r, 0, sizeof(*r));
	if (!cmd)
		return mg_error_oom(e);
	int rc = mg_ssh_exec(r, s, cmd, timeout_ms, e);
	if (!rc && r->exit_status != 0) {
		char tail[512];
		output_tail(tail, sizeof(tail), r->err, r->err_len);
		if (!*tail)
			output_tail(tail, sizeof(tail), r->out, r->out_len);
		if (r->exit_status < 0)
			rc = mg_error_set(e, MG_ERROR, "%s died of a signal%s%s", what,
			                  *tail ? ": " : "", tail);
		else
			rc = mg_error_set(e, MG_ERROR, "%s exited with status %d%s%s", what,
			                  r->exit_status, *tail ? ": " : "", tail);
	}
	if (!out)
		mg_ssh_result_free(&local);
	return rc;
}

static int host_connect(run_ctx *R, mg_fleet_host_result *h, mg_ssh **s, mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	mg_ssh_options o = {
	    .name = h->host->name,
	    .address = h->host->address,
	    .port = h->host->port,
	    .user = v->user,
	    .identity_file = v->identity_file,
	    .passphrase = R->opt->passphrase,
	    .known_hosts = v->known_hosts,
	    .hostkey_policy =
	        R->opt->accept_new_host_keys ? MG_SSH_HOSTKEY_ACCEPT_NEW : MG_SSH_HOSTKEY_STRICT,
	    .connect_timeout_ms = v->connect_timeout_ms,
	    .keepalive_s = KEEPALIVE_S,
	    .cancel = R->opt->cancel,
	};
	return mg_ssh_connect(s, &o, e);
}

/* The release a link points at: "releases/V" (or an absolute .../releases/V) gives V. */
static void link_release(char *dst, size_t size, const char *link)
{
	dst[0] = '\0';
	const char *p = strstr(link, "releases/");
	if (!p || (p != link && p[-1] != '/'))
		return;
	p += strlen("releases/");
	char why[64];
	char name[MG_FLEET_VERSION_MAX + 2];
	copy_trim(name, sizeof(name), p, strlen(p));
	size_t n = strlen(name);
	if (n && name[n - 1] == '/')
		name[n - 1] = '\0';
	if (mg_fleet_check_version(name, why, sizeof(why)) == 0)
		snprintf(dst, size, "%s", name);
}

typedef struct {
	char kind[16];
	char link[1024];
	char marker[80];
	int incoming_removed;
} inspection;

static int inspect(run_ctx *R, mg_ssh *s, inspection *in, mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	mg_ssh_result r;
	char *cmd = mg_fleet_cmd_inspect(v->path, R->opt->version);
	int rc = run_cmd(&r, s, cmd, v->command_timeout_ms, "inspecting the deploy directory", e);
	free(cmd);
	memset(in, 0, sizeof(*in));
	if (!rc) {
		for (char *line = r.out; line && *line;) {
			char *nl = strchr(line, '\n');
			size_t len = nl ? (size_t)(nl - line) : strlen(line);
			if (!strncmp(line, "kind=", 5))
				copy_trim(in->kind, sizeof(in->kind), line + 5, len - 5);
			else if (!strncmp(line, "current=", 8))
				copy_trim(in->link, sizeof(in->link), line + 8, len - 8);
			else if (!strncmp(line, "marker=", 7))
				copy_trim(in->marker, sizeof(in->marker), line + 7, len - 7);
			else if (!strncmp(line, "removed=", 8))
				in->incoming_removed++;
			line = nl ? nl + 1 : NULL;
		}
		if (!*in->kind)
			rc = mg_error_set(e, MG_ERROR,
			                  "inspecting the deploy directory gave no answer (is the "
			                  "remote shell a POSIX shell?)");
	}
	mg_ssh_result_free(&r);
	return rc;
}

static void random_suffix(char out[17])
{
	unsigned char b[8];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		/* no entropy yet: the name need only not collide with a concurrent upload */
		uint64_t x =
		    (uint64_t)mg_clock_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)out;
		memcpy(b, &x, sizeof(b));
	}
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int upload(run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	char suffix[17];
	random_suffix(suffix);
	char *remote = mg_fleet_incoming_path(v->path, R->opt->version, suffix);
	if (!remote)
		return mg_error_oom(e);
	set_stage(R, h, MG_FLEET_STAGE_UPLOAD);
	int rc = mg_ssh_upload(s, R->opt->artifact, remote, 0600, v->command_timeout_ms, e);
	if (!rc) {
		set_stage(R, h, MG_FLEET_STAGE_VERIFY);
		mg_ssh_result r;
		char *cmd = mg_fleet_cmd_verify(remote);
		rc = run_cmd(&r, s, cmd, v->command_timeout_ms, "sha256sum of the upload", e);
		free(cmd);
		if (!rc && (r.out_len < 64 || strncmp(r.out, R->opt->artifact_sha256, 64) != 0)) {
			char got[65];
			copy_trim(got, sizeof(got), r.out ? r.out : "", r.out ? r.out_len : 0);
			got[strcspn(got, " ")] = '\0';
			rc = mg_error_set(
			    e, MG_ERROR,
			    "the uploaded artifact's SHA-256 on the host is %s, not %s: "
			    "it was damaged on the way; nothing was unpacked",
			    *got ? got : "(none)", R->opt->artifact_sha256);
		}
		mg_ssh_result_free(&r);
	}
	if (!rc) {
		set_stage(R, h, MG_FLEET_STAGE_UNPACK);
		char *cmd =
		    mg_fleet_cmd_unpack(v->path, R->opt->version, remote, R->opt->artifact_sha256);
		mg_ssh_result r;
		rc = run_cmd(&r, s, cmd, v->command_timeout_ms, "unpacking the release", e);
		free(cmd);
		char got[80] = "";
		if (!rc)
			copy_trim(got, sizeof(got), r.out ? r.out : "", r.out ? r.out_len : 0);
		if (!rc && strcmp(got, R->opt->artifact_sha256) != 0)
			rc = mg_error_set(e, MG_ERROR,
			                  "after unpacking, releases/%s/" MG_FLEET_MARKER
			                  " reads \"%s\", not the artifact's SHA-256",
			                  R->opt->version, got);
		mg_ssh_result_free(&r);
		free(remote);
		return rc;
	}
	/* a partial or damaged upload must not stay behind; best effort */
	if (!canceled(R->opt->cancel)) {
		mg_error ignored = MG_ERROR_INIT;
		sbuf b = {0};
		sb_add(&b, "rm -f -- ");
		sb_addq(&b, remote);
		char *cmd = sb_take(&b);
		if (cmd)
			run_cmd(NULL, s, cmd, v->command_timeout_ms, "removing the upload",
			        &ignored);
		free(cmd);
		mg_error_clear(&ignored);
	}
	free(remote);
	return rc;
}

/* Points current at version and reads it back; *version_known says whether it is known after. */
static int switch_to(run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, const char *version,
                     mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	set_stage(R, h, MG_FLEET_STAGE_SWITCH);
	mg_ssh_result r = {0};
	char *cmd = mg_fleet_cmd_switch(v->path, version);
	int rc = mg_ssh_exec(&r, s, cmd ? cmd : "false", v->command_timeout_ms, e);
	free(cmd);
	if (rc) {
		/* the command may or may not have run: only a read-back would say */
		h->version_known = false;
		h->switched = true;
		mg_ssh_result_free(&r);
		return rc;
	}
	if (r.exit_status != 0) {
		/* ln or mv failed: rename(2) is all or nothing, so current is unchanged */
		char tail[512];
		output_tail(tail, sizeof(tail), r.err, r.err_len);
		rc = mg_error_set(e, MG_ERROR, "switching current to releases/%s failed%s%s",
		                  version, *tail ? ": " : "", tail);
		mg_ssh_result_free(&r);
		return rc;
	}
	char got[1024], want[MG_FLEET_VERSION_MAX + 16];
	copy_trim(got, sizeof(got), r.out ? r.out : "", r.out ? r.out_len : 0);
	mg_ssh_result_free(&r);
	snprintf(want, sizeof(want), "releases/%s", version);
	h->switched = true;
	if (strcmp(got, want) != 0) {
		link_release(h->version, sizeof(h->version), got);
		h->version_known = *h->version != '\0';
		return mg_error_set(e, MG_ERROR,
		                    "after the switch, current points at \"%s\", not \"%s\": "
		                    "something else changed it",
		                    got, want);
	}
	snprintf(h->version, sizeof(h->version), "%s", version);
	h->version_known = true;
	return 0;
}

static int activate(run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, const char *version,
                    mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	if (!v->activate)
		return 0;
	set_stage(R, h, MG_FLEET_STAGE_ACTIVATE);
	char *cmd = mg_fleet_cmd_activate(v->path, v->activate, version, h->host->name);
	int rc = run_cmd(NULL, s, cmd, v->command_timeout_ms, "activate", e);
	free(cmd);
	return rc;
}

static int health(run_ctx *R, mg_fleet_host_result *h, mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	if (!v->health_url)
		return 0;
	set_stage(R, h, MG_FLEET_STAGE_HEALTH);
	char *url = mg_fleet_health_url(v->health_url, h->host->address);
	if (!url)
		return mg_error_oom(e);
	int64_t deadline = mg_clock_ms() + v->health_timeout_ms;
	char last[512] = "no answer";
	int probes = 0, rc;
	for (;;) {
		int64_t left = deadline - mg_clock_ms();
		int64_t budget = left < HEALTH_PROBE_MS ? left : HEALTH_PROBE_MS;
		if (budget < 100)
			budget = 100;
		mg_http_request req = {
		    .method = "GET",
		    .url = url,
		    .accept = "*/*",
		    .timeout_ms = budget,
		    .deadline_ms = budget,
		    .max_attempts = 1,
		    .cancel = R->opt->cancel,
		};
		mg_http_response res;
		mg_error he = MG_ERROR_INIT;
		rc = mg_http_do(&res, &req, &he);
		probes++;
		if (rc == MG_ECANCELED || canceled(R->opt->cancel)) {
			mg_http_response_clear(&res);
			mg_error_clear(&he);
			rc = mg_error_set(e, MG_ECANCELED, "stopped while checking %s", url);
			break;
		}
		if (rc == 0 && res.status >= 200 && res.status < 300) {
			mg_http_response_clear(&res);
			mg_error_clear(&he);
			break;
		}
		if (rc == 0) {
			char body[128];
			output_tail(body, sizeof(body), res.body, res.len);
			snprintf(last, sizeof(last), "HTTP %ld%s%s", res.status, *body ? " " : "",
			         body);
		} else {
			snprintf(last, sizeof(last), "%.500s", he.message);
		}
		mg_http_response_clear(&res);
		mg_error_clear(&he);
		if (mg_clock_ms() >= deadline) {
			char t[32];
			snprintf(t, sizeof(t), "%.3g s", (double)v->health_timeout_ms / 1000.0);
			rc = mg_error_set(e, MG_ERROR,
			                  "%s did not answer 2xx within %s (vms.health.timeout, %d "
			                  "probes); last: %s",
			                  url, t, probes, last);
			break;
		}
		int64_t pause = deadline - mg_clock_ms();
		mg_clock_sleep_ms(pause < HEALTH_PAUSE_MS ? pause : HEALTH_PAUSE_MS,
		                  R->opt->cancel);
	}
	free(url);
	return rc;
}

/* Removes old releases; never fails the host (it already runs the release). */
static void prune(run_ctx *R, mg_fleet_host_result *h, mg_ssh *s)
{
	const mg_plan_vms *v = R->opt->vms;
	set_stage(R, h, MG_FLEET_STAGE_PRUNE);
	mg_error e = MG_ERROR_INIT;
	mg_ssh_result r;
	char *cmd = mg_fleet_cmd_list_releases(v->path);
	int rc = run_cmd(&r, s, cmd, v->command_timeout_ms, "listing the releases", &e);
	free(cmd);
	mg_fleet_release *rel = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	for (char *line = rc ? NULL : r.out; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		/* "<sec>.<nsec> <name>/<marker>" */
		char *dot = strchr(line, '.'), *sp = strchr(line, ' ');
		char *slash = sp ? strchr(sp + 1, '/') : NULL;
		if (dot && sp && slash && dot < sp) {
			*slash = '\0';
			char why[64];
			if (mg_fleet_check_version(sp + 1, why, sizeof(why)) == 0) {
				if (n == cap) {
					cap = cap ? 2 * cap : 16;
					mg_fleet_release *nr = realloc(rel, cap * sizeof(*rel));
					char **nn =
					    nr ? realloc(names, cap * sizeof(*names)) : NULL;
					if (nr)
						rel = nr;
					if (!nr || !nn)
						break;
					names = nn;
				}
				char frac[10] = "000000000";
				size_t fl = (size_t)(sp - dot - 1);
				memcpy(frac, dot + 1, fl < 9 ? fl : 9);
				names[n] = strdup(sp + 1);
				rel[n].name = names[n];
				rel[n].sec = strtoll(line, NULL, 10);
				rel[n].nsec = strtol(frac, NULL, 10);
				if (names[n])
					n++;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	mg_ssh_result_free(&r);
	bool *remove = calloc(n ? n : 1, sizeof(*remove));
	if (!rc && remove) {
		size_t k = mg_fleet_prune_select(remove, rel, n, h->version, h->previous,
		                                 v->keep_releases);
		if (k) {
			const char **gone = calloc(k, sizeof(*gone));
			size_t j = 0;
			for (size_t i = 0; gone && i < n; i++)
				if (remove[i])
					gone[j++] = names[i];
			cmd = gone ? mg_fleet_cmd_remove_releases(v->path, gone, k) : NULL;
			rc = run_cmd(NULL, s, cmd, v->command_timeout_ms, "removing old releases",
			             &e);
			free(cmd);
			free(gone);
			if (!rc)
				h->pruned = (int)k;
		}
	}
	if (rc) {
		/* reported with the host (table, JSON, journal); the host still succeeded */
		snprintf(h->prune_error, sizeof(h->prune_error), "%.500s",
		         *e.message ? e.message : "unknown error");
		mg_log(MG_LOG_WARN, "%s: old releases were not pruned: %s", h->host->name,
		       h->prune_error);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(rel);
	free(remove);
	mg_error_clear(&e);
}

/* Everything after connecting. */
static int host_stages(run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, mg_error *e)
{
	const mg_fleet_options *o = R->opt;
	const mg_plan_vms *v = o->vms;
	set_stage(R, h, MG_FLEET_STAGE_INSPECT);
	inspection in;
	int rc = inspect(R, s, &in, e);
	if (rc)
		return rc;
	if (!strcmp(in.kind, "other"))
		return mg_error_set(e, MG_ERROR,
		                    "%s/current exists and is not a symbolic link; move it out of "
		                    "the way (migrate manages current as a link into releases/)",
		                    v->path);
	h->incoming_removed = in.incoming_removed;
	if (in.incoming_removed)
		mg_log(MG_LOG_INFO,
		       "%s: removed %d leftover(s) of interrupted uploads from %s/.incoming",
		       h->host->name, in.incoming_removed, v->path);
	link_release(h->previous, sizeof(h->previous), in.link);
	snprintf(h->version, sizeof(h->version), "%s", h->previous);
	h->version_known = true;
	if (*in.link && !*h->previous)
		mg_log(
		    MG_LOG_WARN,
		    "%s: current points at \"%s\", outside %s/releases; it cannot be gone back to",
		    h->host->name, in.link, v->path);
	bool live = !strcmp(h->previous, o->version);

	if (o->op == MG_FLEET_DEPLOY) {
		bool complete = !strcmp(in.marker, o->artifact_sha256);
		if (live && !complete)
			return mg_error_set(
			    e, MG_ERROR,
			    "release %s is live on this host but %s; nothing was changed. Deploy "
			    "the new artifact under a new version",
			    o->version,
			    *in.marker ? "was unpacked from a different artifact (another SHA-256)"
			               : "was not unpacked by migrate (it has no " MG_FLEET_MARKER
			                 ")");
		if (complete) {
			h->upload = MG_FLEET_UPLOAD_SKIPPED;
		} else {
			rc = upload(R, h, s, e);
			if (rc)
				return rc;
			h->upload = MG_FLEET_UPLOAD_DONE;
		}
	} else if (!live && !*in.marker) {
		return mg_error_set(e, MG_ERROR,
		                    "release %s is not on this host (never deployed here, pruned, "
		                    "or half unpacked); nothing was changed",
		                    o->version);
	}

	if (live) {
		h->already = true;
	} else {
		rc = switch_to(R, h, s, o->version, e);
		if (!rc)
			rc = activate(R, h, s, o->version, e);
		if (rc)
			return rc;
	}
	rc = health(R, h, e);
	if (!rc && o->op == MG_FLEET_DEPLOY && !h->already)
		prune(R, h, s);
	return rc;
}

/* Appends "; more" to the host's error. */
static void error_append(mg_fleet_host_result *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void error_append(mg_fleet_host_result *h, const char *fmt, ...)
{
	size_t n = strlen(h->error);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->error + n, sizeof(h->error) - n, fmt, ap);
	va_end(ap);
}

/*
 * Puts a switched host back on its previous release and activates it
 * again, with s (or a new session when s is NULL or broken).
 */
static int host_revert(run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, mg_error *e)
{
	if (!*h->previous)
		return mg_error_set(e, MG_ERROR,
		                    "there is no earlier release to go back to, so it stays on %s",
		                    R->opt->version);
	mg_ssh *own = NULL;
	int rc = 0;
	if (!s) {
		set_stage(R, h, MG_FLEET_STAGE_CONNECT);
		rc = host_connect(R, h, &own, e);
		s = own;
	}
	if (!rc)
		rc = switch_to(R, h, s, h->previous, e);
	if (!rc)
		rc = activate(R, h, s, h->previous, e);
	mg_ssh_free(own);
	return rc;
}

static void host_work(run_ctx *R, mg_fleet_host_result *h)
{
	int64_t t0 = mg_clock_ms();
	mg_error e = MG_ERROR_INIT;
	mg_ssh *s = NULL;
	set_stage(R, h, MG_FLEET_STAGE_CONNECT);
	int rc = host_connect(R, h, &s, &e);
	if (!rc)
		rc = host_stages(R, h, s, &e);
	if (!rc) {
		h->outcome = MG_FLEET_OK;
		h->stage = MG_FLEET_STAGE_DONE;
	} else {
		h->outcome = MG_FLEET_FAILED;
		snprintf(h->error, sizeof(h->error), "%s", e.message);
		mg_fleet_stage failed_at = h->stage;
		/* a host that failed after its switch does not stay on the release that failed */
		if (h->switched && !canceled(R->opt->cancel)) {
			if (!*h->previous) {
				error_append(
				    h,
				    "; there is no earlier release to go back to, so it stays "
				    "on %s",
				    R->opt->version);
			} else {
				mg_error re = MG_ERROR_INIT;
				int rr = host_revert(R, h, s, &re);
				if (rr && !canceled(R->opt->cancel)) {
					/* the session may be what broke: once more on a fresh one
					 */
					mg_error_clear(&re);
					rr = host_revert(R, h, NULL, &re);
				}
				if (!rr) {
					h->reverted = true;
					error_append(h, "; went back to %s", h->previous);
				} else {
					error_append(h, "; going back to %s failed: %s",
					             h->previous, re.message);
				}
				mg_error_clear(&re);
			}
		}
		h->stage = failed_at;
	}
	mg_ssh_free(s);
	h->duration_ms = mg_clock_ms() - t0;
	mg_error_clear(&e);
}

/* A host that succeeded, in a batch that stopped the run: back to where it was. */
static void host_batch_revert(run_ctx *R, mg_fleet_host_result *h)
{
	int64_t t0 = mg_clock_ms();
	mg_error e = MG_ERROR_INIT;
	mg_fleet_stage done = h->stage;
	int rc = host_revert(R, h, NULL, &e);
	if (!rc) {
		h->reverted = true;
		h->outcome = MG_FLEET_ROLLED_BACK;
	} else {
		h->outcome = MG_FLEET_FAILED;
		snprintf(h->error, sizeof(h->error),
		         "succeeded, but going back to %s when its batch stopped failed: %.800s",
		         *h->previous ? h->previous : "the earlier release", e.message);
	}
	h->stage = done;
	h->duration_ms += mg_clock_ms() - t0;
	mg_error_clear(&e);
}

static void *worker(void *arg)
{
	run_ctx *R = arg;
	for (;;) {
		pthread_mutex_lock(&R->mu);
		if (R->next >= R->nqueue || canceled(R->opt->cancel)) {
			pthread_mutex_unlock(&R->mu);
			break;
		}
		mg_fleet_host_result *h = &R->res->hosts[R->queue[R->next++]];
		R->active++;
		if (R->active > R->res->max_concurrent)
			R->res->max_concurrent = R->active;
		pthread_mutex_unlock(&R->mu);

		if (R->revert)
			host_batch_revert(R, h);
		else
			host_work(R, h);

		pthread_mutex_lock(&R->mu);
		R->active--;
		R->done++;
		notify_locked(R, h, true, R->revert);
		pthread_mutex_unlock(&R->mu);
	}
	return NULL;
}

/* Works through queue with at most vms.parallel threads. */
static void run_pool(run_ctx *R, const size_t *queue, size_t n, bool revert)
{
	R->queue = queue;
	R->nqueue = n;
	R->next = 0;
	R->revert = revert;
	size_t nt = (size_t)R->opt->vms->parallel;
	if (nt > n)
		nt = n;
	if (nt < 1)
		nt = 1;
	pthread_t *th = calloc(nt, sizeof(*th));
	size_t started = 0;
	pthread_attr_t attr;
	bool attr_ok = pthread_attr_init(&attr) == 0;
	if (attr_ok)
		pthread_attr_setstacksize(&attr, 4u << 20);
	for (size_t i = 0; th && i < nt; i++) {
		if (pthread_create(&th[i], attr_ok ? &attr : NULL, worker, R) != 0)
			break;
		started++;
	}
	if (attr_ok)
		pthread_attr_destroy(&attr);
	if (started < nt)
		mg_log(MG_LOG_WARN, "only %zu of %zu worker threads could be started", started, nt);
	if (!started)
		worker(R); /* no thread at all: one at a time, but still done */
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

json_t *mg_fleet_host_to_json(const mg_fleet_host_result *h)
{
	const char *up = h->upload == MG_FLEET_UPLOAD_DONE      ? "uploaded"
	                 : h->upload == MG_FLEET_UPLOAD_SKIPPED ? "skipped"
	                                                        : NULL;
	json_t *j =
	    json_pack("{s:s, s:s, s:i, s:I}", "host", h->host->name, "address", h->host->address,
	              "port", h->host->port, "batch", (json_int_t)h->batch + 1);
	if (!j)
		return NULL;
	json_object_set_new(j, "outcome", json_string(mg_fleet_outcome_name(h->outcome)));
	json_object_set_new(j, "stage",
	                    h->outcome == MG_FLEET_NOT_RUN
	                        ? json_null()
	                        : json_string(mg_fleet_stage_name(h->stage)));
	json_object_set_new(j, "upload", up ? json_string(up) : json_null());
	json_object_set_new(j, "already", json_boolean(h->already));
	json_object_set_new(j, "switched", json_boolean(h->switched));
	json_object_set_new(j, "reverted", json_boolean(h->reverted));
	json_object_set_new(
	    j, "previous", h->outcome == MG_FLEET_NOT_RUN ? json_null() : str_or_null(h->previous));
	json_object_set_new(j, "version", h->version_known ? str_or_null(h->version) : json_null());
	json_object_set_new(j, "pruned", json_integer(h->pruned));
	json_object_set_new(j, "prune_error", str_or_null(h->prune_error));
	json_object_set_new(j, "incoming_removed", json_integer(h->incoming_removed));
	json_object_set_new(j, "duration_ms", json_integer(h->duration_ms));
	json_object_set_new(j, "error", str_or_null(h->error));
	return j;
}

static int journal(const mg_fleet_options *o, const char *action, json_t *before, json_t *after,
                   const char *reason, json_t *evidence, mg_error *err)
{
	int rc = 0;
	if (o->store) {
		mg_journal_entry e = {o->command ? o->command : mg_fleet_op_name(o->op),
		                      action,
		                      before,
		                      after,
		                      reason,
		                      evidence};
		rc = mg_journal_append(o->store, &e, err);
	}
	json_decref(before);
	json_decref(after);
	json_decref(evidence);
	return rc;
}

size_t mg_fleet_count_on(const mg_fleet_result *r, const char *version)
{
	size_t n = 0;
	for (size_t i = 0; r && version && i < r->nhosts; i++)
		n += r->hosts[i].version_known && !strcmp(r->hosts[i].version, version);
	return n;
}

/* ---- fleet.json ---- */

static char *fleet_path(const mg_store *store)
{
	char *p;
	if (asprintf(&p, "%s/" FLEET_FILE, mg_store_path(store)) < 0)
		return NULL;
	return p;
}

static const char *store_plan(const mg_store *store)
{
	const char *path = mg_store_path(store);
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

int mg_fleet_record_load(json_t **out, mg_store *store, mg_error *err)
{
	*out = NULL;
	char *path = fleet_path(store);
	if (!path)
		return mg_error_oom(err);
	char *buf;
	size_t len;
	int rc = mg_fs_read_all(&buf, &len, path, err);
	if (rc == MG_ENOTFOUND) {
		mg_error_clear(err);
		*out = json_pack("{s:i, s:s, s:n, s:{}}", "format", FLEET_FORMAT, "plan",
		                 store_plan(store), "updated_at", "hosts");
		free(path);
		return *out ? 0 : mg_error_oom(err);
	}
	if (rc) {
		free(path);
		return rc;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!doc) {
		rc = mg_error_set(err, MG_EINVALID,
		                  "%s:%d:%d: not valid JSON (%s); fix or remove the file (it is "
		                  "never written partially; without it every host's release is "
		                  "unknown until the next deploy)",
		                  path, jerr.line, jerr.column, jerr.text);
		free(path);
		return rc;
	}
	json_t *fmt = json_object_get(doc, "format");
	json_t *plan = json_object_get(doc, "plan");
	json_t *hosts = json_object_get(doc, "hosts");
	const char *why = NULL;
	if (!json_is_integer(fmt) || json_integer_value(fmt) < 1)
		why = "\"format\" must be a positive integer";
	else if (json_integer_value(fmt) > FLEET_FORMAT)
		why = "written by a newer migrate; upgrade migrate";
	else if (!json_is_string(plan) || strcmp(json_string_value(plan), store_plan(store)))
		why = "it belongs to another plan";
	else if (!json_is_object(hosts))
		why = "\"hosts\" must be an object";
	if (!why) {
		const char *k;
		json_t *h;
		json_object_foreach(hosts, k, h)
		{
			json_t *v = json_object_get(h, "version");
			json_t *p = json_object_get(h, "previous");
			if (!json_is_object(h) || !(json_is_null(v) || json_is_string(v)) ||
			    (p && !(json_is_null(p) || json_is_string(p)))) {
				why = "every host must be {version, previous, outcome, at} with "
				      "string or null versions";
				break;
			}
		}
	}
	if (why) {
		rc = mg_error_set(err, MG_EINVALID, "%s: %s", path, why);
		json_decref(doc);
		free(path);
		return rc;
	}
	free(path);
	*out = doc;
	return 0;
}

int mg_fleet_record_save(mg_store *store, json_t *doc, mg_error *err)
{
	if (!mg_store_locked(store))
		return mg_error_set(err, MG_ERROR,
		                    "refusing to save %s/" FLEET_FILE
		                    " without holding the plan's lock (a bug in migrate)",
		                    mg_store_path(store));
	char when[40];
	mg_time_format(when, sizeof(when), mg_now_ms());
	json_object_set_new(doc, "updated_at", json_string(when));
	mg_scrub_json(doc); /* the last line of defence: hosts' outputs are quoted in it */
	char *path = fleet_path(store);
	/* indented for a reader, compact for fleets of thousands */
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_COMPACT);
	int rc;
	if (!path || !text) {
		rc = mg_error_set(err, MG_ENOMEM, "out of memory saving " FLEET_FILE);
	} else {
		size_t len = strlen(text);
		char *buf = realloc(text, len + 2);
		if (!buf) {
			rc = mg_error_set(err, MG_ENOMEM, "out of memory saving " FLEET_FILE);
		} else {
			text = buf;
			text[len++] = '\n';
			text[len] = '\0';
			rc = mg_fs_write_atomic(path, text, len, 0600, err);
		}
	}
	free(text);
	free(path);
	return rc;
}

void mg_fleet_record_apply(json_t *doc, const mg_fleet_result *r)
{
	json_t *hosts = json_object_get(doc, "hosts");
	if (!json_is_object(hosts) || !r)
		return;
	char when[40];
	mg_time_format(when, sizeof(when), mg_now_ms());
	for (size_t i = 0; i < r->nhosts; i++) {
		const mg_fleet_host_result *h = &r->hosts[i];
		if (h->outcome == MG_FLEET_NOT_RUN)
			continue;
		json_t *old = json_object_get(hosts, h->host->name);
		json_t *oldprev = json_object_get(old, "previous");
		json_t *oldver = json_object_get(old, "version");
		json_t *version, *previous;
		if (!h->switched && !h->version_known && json_is_object(old)) {
			/*
			 * Failed before anything was read from or done to the host (at
			 * connect or while inspecting): what it ran is what it ran before,
			 * so the record keeps it; only the outcome and the time change.
			 */
			json_t *keep = json_deep_copy(old);
			if (keep) {
				json_object_set_new(keep, "outcome",
				                    json_string(mg_fleet_outcome_name(h->outcome)));
				json_object_set_new(keep, "at", json_string(when));
				json_object_set_new(hosts, h->host->name, keep);
			}
			continue;
		}
		if (h->version_known)
			version = str_or_null(h->version);
		else /* lost track: the record must not claim what was not read back */
			version = json_null();
		if (h->switched && !h->reverted && h->version_known &&
		    strcmp(h->version, h->previous) != 0)
			previous = str_or_null(h->previous);
		else if (json_is_string(oldprev) && h->version_known && json_is_string(oldver) &&
		         !strcmp(json_string_value(oldver), h->version))
			previous = json_incref(oldprev);
		else
			previous = json_null();
		json_object_set_new(hosts, h->host->name,
		                    json_pack("{s:o, s:o, s:s, s:s}", "version", version,
		                              "previous", previous, "outcome",
		                              mg_fleet_outcome_name(h->outcome), "at", when));
	}
}

/* ---- the orchestration ---- */

/* The batch's hosts whose prune failed, and those that had upload leftovers removed. */
static void batch_notes(const mg_fleet_result *res, size_t b, json_t *evidence, json_t *after)
{
	json_t *pe = json_array(), *inc = json_array();
	json_int_t removed = 0;
	for (size_t i = 0; i < res->nhosts; i++) {
		const mg_fleet_host_result *h = &res->hosts[i];
		if (h->batch != b)
			continue;
		if (*h->prune_error && json_array_size(pe) < JOURNAL_FAILURES)
			json_array_append_new(pe, json_pack("{s:s, s:s}", "host", h->host->name,
			                                    "error", h->prune_error));
		if (h->incoming_removed) {
			removed += h->incoming_removed;
			if (json_array_size(inc) < JOURNAL_FAILURES)
				json_array_append_new(inc,
				                      json_pack("{s:s, s:i}", "host", h->host->name,
				                                "files", h->incoming_removed));
		}
	}
	json_object_set_new(evidence, "prune_errors", pe);
	json_object_set_new(evidence, "incoming_removed", inc);
	json_object_set_new(after, "incoming_removed", json_integer(removed));
}

static json_t *batch_failures(const mg_fleet_result *res, size_t b)
{
	json_t *a = json_array();
	size_t named = 0;
	for (size_t i = 0; i < res->nhosts; i++) {
		const mg_fleet_host_result *h = &res->hosts[i];
		if (h->batch != b || h->outcome != MG_FLEET_FAILED)
			continue;
		if (named++ >= JOURNAL_FAILURES)
			continue;
		json_array_append_new(a,
		                      json_pack("{s:s, s:s, s:s}", "host", h->host->name, "stage",
		                                mg_fleet_stage_name(h->stage), "error", h->error));
	}
	return a;
}

int mg_fleet_run(mg_fleet_result *out, const mg_fleet_options *o, mg_error *err)
{
	memset(out, 0, sizeof(*out));
	const mg_plan_vms *v = o->vms;
	char why[256];
	if (!v || !v->nhosts)
		return mg_error_set(err, MG_EINVALID, "the plan's vms section lists no host");
	if (mg_fleet_check_version(o->version, why, sizeof(why)))
		return mg_error_set(err, MG_EINVALID, "--version: %s", why);
	if (o->op == MG_FLEET_DEPLOY &&
	    (!o->artifact || !o->artifact_sha256 || strlen(o->artifact_sha256) != 64))
		return mg_error_set(err, MG_EINVALID,
		                    "a deploy needs the artifact and its SHA-256");
	/* curl's global init is not thread-safe: before any worker exists */
	int rc = mg_http_global_init(err);
	if (rc)
		return rc;

	mg_fleet_result *res = out;
	res->op = o->op;
	res->version = o->version;
	res->nhosts = v->nhosts;
	res->hosts = calloc(v->nhosts, sizeof(*res->hosts));
	size_t *queue = calloc(v->nhosts, sizeof(*queue));
	if (!res->hosts || !queue) {
		free(queue);
		mg_fleet_result_free(res);
		return mg_error_set(err, MG_ENOMEM, "out of memory for %zu hosts", v->nhosts);
	}
	res->batch_size = mg_plan_vms_batch_size(v);
	res->nbatches = mg_fleet_batch_count(v->nhosts, res->batch_size);
	for (size_t i = 0; i < v->nhosts; i++) {
		res->hosts[i].host = &v->hosts[i];
		res->hosts[i].batch = i / res->batch_size;
	}

	run_ctx R = {.opt = o, .res = res};
	pthread_mutex_init(&R.mu, NULL);
	int64_t t0 = mg_clock_ms();
	const char *op = mg_fleet_op_name(o->op);

	json_t *evidence = json_pack("{s:s}", "op", op);
	if (o->op == MG_FLEET_DEPLOY) {
		json_object_set_new(evidence, "artifact", json_string(o->artifact));
		json_object_set_new(evidence, "sha256", json_string(o->artifact_sha256));
	}
	json_object_set_new(evidence, "accept_new_host_keys",
	                    json_boolean(o->accept_new_host_keys));
	rc = journal(o, "intent", json_pack("{s:o}", "version", str_or_null(o->from_version)),
	             json_pack("{s:s, s:I, s:I, s:I, s:i, s:i}", "version", o->version, "hosts",
	                       (json_int_t)v->nhosts, "batches", (json_int_t)res->nbatches,
	                       "batch_size", (json_int_t)res->batch_size, "parallel", v->parallel,
	                       "max_failures", v->max_failures),
	             o->reason, evidence, err);
	if (rc) {
		free(queue);
		pthread_mutex_destroy(&R.mu);
		mg_fleet_result_free(res);
		return rc;
	}

	size_t failures = 0;
	int record_rc = 0;
	mg_error record_err = MG_ERROR_INIT;
	for (size_t b = 0; b < res->nbatches && !canceled(o->cancel); b++) {
		int64_t bt0 = mg_clock_ms();
		size_t lo = b * res->batch_size, hi = lo + res->batch_size;
		if (hi > v->nhosts)
			hi = v->nhosts;
		size_t n = 0;
		for (size_t i = lo; i < hi; i++)
			queue[n++] = i;
		R.batch = b;
		res->batches_run++;
		run_pool(&R, queue, n, false);

		size_t bok = 0, bfail = 0, already = 0, up = 0, skipped = 0, unrun = 0;
		for (size_t i = lo; i < hi; i++) {
			const mg_fleet_host_result *h = &res->hosts[i];
			bok += h->outcome == MG_FLEET_OK;
			bfail += h->outcome == MG_FLEET_FAILED;
			unrun += h->outcome == MG_FLEET_NOT_RUN;
			already += h->already;
			up += h->upload == MG_FLEET_UPLOAD_DONE;
			skipped += h->upload == MG_FLEET_UPLOAD_SKIPPED;
		}
		failures += bfail;
		bool stop = failures > (size_t)v->max_failures;
		bool cancel = canceled(o->cancel);
		size_t reverted = 0, revert_failed = 0;
		if (stop && !cancel) {
			/* the batch goes back as a whole: its switched hosts that succeeded too */
			n = 0;
			for (size_t i = lo; i < hi; i++)
				if (res->hosts[i].outcome == MG_FLEET_OK && res->hosts[i].switched)
					queue[n++] = i;
			if (n)
				run_pool(&R, queue, n, true);
			for (size_t k = 0; k < n; k++) {
				const mg_fleet_host_result *h = &res->hosts[queue[k]];
				reverted += h->outcome == MG_FLEET_ROLLED_BACK;
				revert_failed += h->outcome == MG_FLEET_FAILED;
			}
			failures += revert_failed;
		}
		for (size_t i = lo; i < hi; i++)
			reverted +=
			    res->hosts[i].outcome == MG_FLEET_FAILED && res->hosts[i].reverted;

		if (o->store && o->fleet && !record_rc) {
			mg_fleet_record_apply(o->fleet, res);
			record_rc = mg_fleet_record_save(o->store, o->fleet, &record_err);
		}
		const char *decision = cancel                   ? "canceled"
		                       : stop                   ? "stop"
		                       : b + 1 == res->nbatches ? "last"
		                                                : "continue";
		char reason[512] = "";
		if (stop && !cancel)
			snprintf(reason, sizeof(reason),
			         "%zu host%s failed in batch %zu of %zu, %zu in all, more than "
			         "vms.max_failures (%d): the %s stops and the batch goes back to "
			         "the releases its hosts ran before",
			         bfail, bfail == 1 ? "" : "s", b + 1, res->nbatches, failures,
			         v->max_failures, op);
		else if (cancel)
			snprintf(reason, sizeof(reason),
			         "stopped by a signal during batch %zu of %zu", b + 1,
			         res->nbatches);
		json_t *after = json_pack(
		    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "batch",
		    (json_int_t)b + 1, "of", (json_int_t)res->nbatches, "hosts",
		    (json_int_t)(hi - lo), "ok", (json_int_t)bok, "failed", (json_int_t)bfail,
		    "already", (json_int_t)already, "uploaded", (json_int_t)up, "skipped_uploads",
		    (json_int_t)skipped, "reverted", (json_int_t)reverted, "revert_failed",
		    (json_int_t)revert_failed, "failures_total", (json_int_t)failures,
		    "duration_ms", (json_int_t)(mg_clock_ms() - bt0), "decision", decision);
		json_object_set_new(after, "not_run", json_integer((json_int_t)unrun));
		json_t *bev = json_pack("{s:o}", "failed", batch_failures(res, b));
		batch_notes(res, b, bev, after);
		rc = journal(o, "batch", NULL, after, *reason ? reason : NULL, bev, err);
		if (rc)
			break;
		if (stop && !cancel) {
			res->stopped = true;
			res->stopped_batch = b;
			break;
		}
	}
	res->canceled = canceled(o->cancel);
	for (size_t i = 0; i < res->nhosts; i++) {
		const mg_fleet_host_result *h = &res->hosts[i];
		res->ok += h->outcome == MG_FLEET_OK;
		res->failed += h->outcome == MG_FLEET_FAILED;
		res->rolled_back += h->outcome == MG_FLEET_ROLLED_BACK;
		res->not_run += h->outcome == MG_FLEET_NOT_RUN;
		res->uploaded += h->upload == MG_FLEET_UPLOAD_DONE;
		res->skipped_uploads += h->upload == MG_FLEET_UPLOAD_SKIPPED;
	}
	res->duration_ms = mg_clock_ms() - t0;
	free(queue);
	pthread_mutex_destroy(&R.mu);
	if (rc) /* the journal could not be written: that error, whatever else happened */
		goto out;
	if (record_rc) {
		rc = mg_error_set(err, record_rc, "%s", record_err.message);
		goto out;
	}

	const char *action = res->canceled                 ? "canceled"
	                     : res->failed || res->stopped ? "failed"
	                                                   : "result";
	rc = journal(o, action, NULL,
	             json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "version",
	                       o->version, "ok", (json_int_t)res->ok, "failed",
	                       (json_int_t)res->failed, "rolled_back", (json_int_t)res->rolled_back,
	                       "not_run", (json_int_t)res->not_run, "on_version",
	                       (json_int_t)mg_fleet_count_on(res, o->version), "batches_run",
	                       (json_int_t)res->batches_run, "duration_ms",
	                       (json_int_t)res->duration_ms, "max_concurrent", res->max_concurrent),
	             NULL, NULL, err);
	if (rc)
		goto out;
	if (res->canceled)
		rc = mg_error_set(
		    err, MG_ECANCELED,
		    "the %s of %s was stopped by a signal during batch %zu of %zu: %zu "
		    "ok, %zu failed, %zu not started",
		    op, o->version, res->batches_run, res->nbatches, res->ok, res->failed,
		    res->not_run);
	else if (res->stopped)
		rc = mg_error_set(
		    err, MG_ERROR,
		    "the %s of %s stopped at batch %zu of %zu: %zu host%s failed, more "
		    "than vms.max_failures (%d); that batch went back to its previous "
		    "releases%s",
		    op, o->version, res->stopped_batch + 1, res->nbatches, res->failed,
		    res->failed == 1 ? "" : "s", v->max_failures,
		    res->stopped_batch + 1 < res->nbatches ? " and later batches were "
		                                             "not touched"
		                                           : "");
	else if (res->failed)
		rc =
		    mg_error_set(err, MG_ERROR,
		                 "%zu of %zu hosts failed (within vms.max_failures, %d); the %s of "
		                 "%s went on",
		                 res->failed, res->nhosts, v->max_failures, op, o->version);
out:
	mg_error_clear(&record_err);
	return rc;
}

void mg_fleet_result_free(mg_fleet_result *r)
{
	if (!r)
		return;
	free(r->hosts);
	memset(r, 0, sizeof(*r));
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
