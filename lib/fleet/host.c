/*
 * One host of a fleet run (lib/fleet.h): connect, inspect, upload, verify,
 * unpack, switch, activate, health, prune, and the way back to the previous
 * release when a stage after the switch fails.
 */
#include "clock.h"
#include "fleet.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "internal.h"
#include "log.h"
#include "secret.h"
#include "ssh.h"
#include "str.h"

/* Keepalives while a long activate runs, so a NAT or firewall does not drop the session. */
#define KEEPALIVE_S 15
/* One health probe may not take longer than this, so the deadline is looked at often. */
#define HEALTH_PROBE_MS 2000
#define HEALTH_PAUSE_MS 200

void mg_fleet_notify_locked(mg_fleet_run_ctx *R, const mg_fleet_host_result *h, bool finished,
                            bool reverting)
{
	if (!R->opt->progress)
		return;
	mg_fleet_progress p = {.run = R->res,
	                       .host = h,
	                       .finished = finished,
	                       .reverting = reverting,
	                       .batch = R->batch,
	                       .done = R->done,
	                       .running = (size_t)R->active};
	R->opt->progress(R->opt->progress_ud, &p);
}

static void set_stage(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_fleet_stage s)
{
	mg_log(MG_LOG_DEBUG, "%s: %s%s", h->host->name, R->revert ? "going back: " : "",
	       mg_fleet_stage_name(s));
	pthread_mutex_lock(&R->mu);
	h->stage = s;
	mg_fleet_notify_locked(R, h, false, R->revert);
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
int mg_fleet_run_cmd(mg_ssh_result *out, mg_ssh *s, const char *cmd, int64_t timeout_ms,
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
		mg_ssh_result_clear(&local);
	return rc;
}

static int host_connect(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_ssh **s, mg_error *e)
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
void mg_fleet_link_release(char *dst, size_t size, const char *link)
{
	dst[0] = '\0';
	const char *p = strstr(link, "releases/");
	if (!p || (p != link && p[-1] != '/'))
		return;
	p += strlen("releases/");
	char why[64];
	char name[MG_PLAN_VERSION_MAX + 2];
	copy_trim(name, sizeof(name), p, strlen(p));
	size_t n = strlen(name);
	if (n && name[n - 1] == '/')
		name[n - 1] = '\0';
	if (mg_plan_check_version(name, why, sizeof(why)) == 0)
		snprintf(dst, size, "%s", name);
}

typedef struct {
	char kind[16];
	char link[1024];
	char marker[80];
	int incoming_removed;
} inspection;

static int inspect(mg_fleet_run_ctx *R, mg_ssh *s, inspection *in, mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	mg_ssh_result r;
	char *cmd = mg_fleet_cmd_inspect(v->path, R->opt->version);
	int rc = mg_fleet_run_cmd(&r, s, cmd, v->command_timeout_ms,
	                          "inspecting the deploy directory", e);
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
	mg_ssh_result_clear(&r);
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

static int upload(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, mg_error *e)
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
		rc = mg_fleet_run_cmd(&r, s, cmd, v->command_timeout_ms, "sha256sum of the upload",
		                      e);
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
		mg_ssh_result_clear(&r);
	}
	if (!rc) {
		set_stage(R, h, MG_FLEET_STAGE_UNPACK);
		char *cmd =
		    mg_fleet_cmd_unpack(v->path, R->opt->version, remote, R->opt->artifact_sha256);
		mg_ssh_result r;
		rc =
		    mg_fleet_run_cmd(&r, s, cmd, v->command_timeout_ms, "unpacking the release", e);
		free(cmd);
		char got[80] = "";
		if (!rc)
			copy_trim(got, sizeof(got), r.out ? r.out : "", r.out ? r.out_len : 0);
		if (!rc && strcmp(got, R->opt->artifact_sha256) != 0)
			rc = mg_error_set(e, MG_ERROR,
			                  "after unpacking, releases/%s/" MG_FLEET_MARKER
			                  " reads \"%s\", not the artifact's SHA-256",
			                  R->opt->version, got);
		mg_ssh_result_clear(&r);
		free(remote);
		return rc;
	}
	/* a partial or damaged upload must not stay behind; best effort */
	if (!mg_fleet_canceled(R->opt->cancel)) {
		mg_error ignored = MG_ERROR_INIT;
		char *q = mg_ssh_quote(remote);
		char *cmd = q ? mg_str_printf("rm -f -- %s", q) : NULL;
		free(q);
		if (cmd)
			mg_fleet_run_cmd(NULL, s, cmd, v->command_timeout_ms, "removing the upload",
			                 &ignored);
		free(cmd);
		mg_error_clear(&ignored);
	}
	free(remote);
	return rc;
}

/* Points current at version and reads it back; *version_known says whether it is known after. */
static int switch_to(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, const char *version,
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
		mg_ssh_result_clear(&r);
		return rc;
	}
	if (r.exit_status != 0) {
		/* ln or mv failed: rename(2) is all or nothing, so current is unchanged */
		char tail[512];
		output_tail(tail, sizeof(tail), r.err, r.err_len);
		rc = mg_error_set(e, MG_ERROR, "switching current to releases/%s failed%s%s",
		                  version, *tail ? ": " : "", tail);
		mg_ssh_result_clear(&r);
		return rc;
	}
	char got[1024], want[MG_PLAN_VERSION_MAX + 16];
	copy_trim(got, sizeof(got), r.out ? r.out : "", r.out ? r.out_len : 0);
	mg_ssh_result_clear(&r);
	snprintf(want, sizeof(want), "releases/%s", version);
	h->switched = true;
	if (strcmp(got, want) != 0) {
		mg_fleet_link_release(h->version, sizeof(h->version), got);
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

static int activate(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, const char *version,
                    mg_error *e)
{
	const mg_plan_vms *v = R->opt->vms;
	if (!v->activate)
		return 0;
	set_stage(R, h, MG_FLEET_STAGE_ACTIVATE);
	char *cmd = mg_fleet_cmd_activate(v->path, v->activate, version, h->host->name);
	int rc = mg_fleet_run_cmd(NULL, s, cmd, v->command_timeout_ms, "activate", e);
	free(cmd);
	return rc;
}

static int health(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_error *e)
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
		if (rc == MG_ECANCELED || mg_fleet_canceled(R->opt->cancel)) {
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
static void prune(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_ssh *s)
{
	const mg_plan_vms *v = R->opt->vms;
	set_stage(R, h, MG_FLEET_STAGE_PRUNE);
	mg_error e = MG_ERROR_INIT;
	mg_ssh_result r;
	char *cmd = mg_fleet_cmd_list_releases(v->path);
	int rc = mg_fleet_run_cmd(&r, s, cmd, v->command_timeout_ms, "listing the releases", &e);
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
			if (mg_plan_check_version(sp + 1, why, sizeof(why)) == 0) {
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
	mg_ssh_result_clear(&r);
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
			rc = mg_fleet_run_cmd(NULL, s, cmd, v->command_timeout_ms,
			                      "removing old releases", &e);
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
static int host_stages(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, mg_error *e)
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
	mg_fleet_link_release(h->previous, sizeof(h->previous), in.link);
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
static int host_revert(mg_fleet_run_ctx *R, mg_fleet_host_result *h, mg_ssh *s, mg_error *e)
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

void mg_fleet_host_work(mg_fleet_run_ctx *R, mg_fleet_host_result *h)
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
		if (h->switched && !mg_fleet_canceled(R->opt->cancel)) {
			if (!*h->previous) {
				error_append(
				    h,
				    "; there is no earlier release to go back to, so it stays "
				    "on %s",
				    R->opt->version);
			} else {
				mg_error re = MG_ERROR_INIT;
				int rr = host_revert(R, h, s, &re);
				if (rr && !mg_fleet_canceled(R->opt->cancel)) {
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
void mg_fleet_host_batch_revert(mg_fleet_run_ctx *R, mg_fleet_host_result *h)
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
