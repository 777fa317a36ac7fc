/*
 * What the hosts run, read without changing anything (lib/fleet.h): one
 * read-only command per host (mg_fleet_cmd_survey) through the fleet's own
 * sessions, command wrapper and worker pool. A state directory lost with a
 * CI runner does not lose what the hosts hold: their current link and the
 * complete releases beside it.
 */
#include "clock.h"
#include "fleet.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "secret.h"
#include "ssh.h"

typedef struct {
	const mg_fleet_survey_options *o;
	mg_fleet_survey *res;
	pthread_mutex_t mu;
	size_t next;
	bool oom;
} survey_ctx;

typedef struct {
	char *name;
	int64_t sec;
	long nsec;
} listed;

static int older(const void *a, const void *b)
{
	const listed *x = a, *y = b;
	if (x->sec != y->sec)
		return x->sec < y->sec ? -1 : 1;
	if (x->nsec != y->nsec)
		return x->nsec < y->nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* "release=<sec>.<nsec> <name>/<marker>": the name when it is a release name. */
static bool parse_release(listed *out, const char *line, size_t len)
{
	char buf[MG_PLAN_VERSION_MAX + 96], why[64];
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, line, len);
	buf[len] = '\0';
	char *sp = strchr(buf, ' ');
	char *slash = sp ? strrchr(sp + 1, '/') : NULL;
	if (!sp || !slash || strcmp(slash + 1, MG_FLEET_MARKER))
		return false;
	*sp = *slash = '\0';
	char *dot = strchr(buf, '.');
	out->sec = strtoll(buf, NULL, 10);
	out->nsec = dot ? strtol(dot + 1, NULL, 10) : 0;
	if (mg_plan_check_version(sp + 1, why, sizeof(why)))
		return false; /* not one of ours: a name migrate would never have unpacked */
	out->name = strdup(sp + 1);
	return out->name != NULL;
}

static void set_error(mg_fleet_survey_host *h, const char *msg)
{
	/* the message may carry what the host printed: scrubbed before it is cut */
	mg_scrub_cut(h->error, sizeof(h->error), msg, sizeof(h->error) - 1);
}

/* Fills h from the command's output; false on out of memory. */
static bool parse_output(mg_fleet_survey_host *h, const char *out)
{
	listed *rel = NULL;
	size_t n = 0, cap = 0;
	bool ok = true;
	char link[1024] = "";
	for (const char *line = out; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len > 5 && !strncmp(line, "kind=", 5)) {
			size_t k = len - 5 < sizeof(h->kind) - 1 ? len - 5 : sizeof(h->kind) - 1;
			memcpy(h->kind, line + 5, k);
			h->kind[k] = '\0';
		} else if (len >= 8 && !strncmp(line, "current=", 8)) {
			size_t k = len - 8 < sizeof(link) - 1 ? len - 8 : sizeof(link) - 1;
			memcpy(link, line + 8, k);
			link[k] = '\0';
		} else if (len > 8 && !strncmp(line, "release=", 8)) {
			listed l = {0};
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				listed *p = realloc(rel, nc * sizeof(*p));
				if (!p) {
					ok = false;
					break;
				}
				rel = p;
				cap = nc;
			}
			if (parse_release(&l, line + 8, len - 8))
				rel[n++] = l;
		}
		line = nl ? nl + 1 : NULL;
	}
	if (strcmp(h->kind, "link") && strcmp(h->kind, "none") && strcmp(h->kind, "other"))
		snprintf(h->kind, sizeof(h->kind), "%s", "other");
	if (!strcmp(h->kind, "link"))
		mg_fleet_link_release(h->current, sizeof(h->current), link);
	if (n) /* qsort wants a real array, even of none */
		qsort(rel, n, sizeof(*rel), older);
	if (ok && n) {
		h->releases = calloc(n, sizeof(*h->releases));
		ok = h->releases != NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (ok) {
			h->releases[h->nreleases++] = rel[i].name;
			/* the one just before the live one: what the last deploy replaced */
			if (*h->current && !strcmp(rel[i].name, h->current) && i > 0)
				snprintf(h->previous, sizeof(h->previous), "%s", rel[i - 1].name);
		} else {
			free(rel[i].name);
		}
	}
	free(rel);
	return ok;
}

static void survey_host(const mg_fleet_survey_options *o, mg_fleet_survey_host *h, bool *oom)
{
	const mg_plan_vms *v = o->vms;
	mg_error e = MG_ERROR_INIT;
	mg_ssh *s = NULL;
	mg_ssh_result r = {0};
	mg_ssh_options so = {
	    .name = h->host->name,
	    .address = h->host->address,
	    .port = h->host->port,
	    .user = v->user,
	    .identity_file = v->identity_file,
	    .passphrase = o->passphrase,
	    .known_hosts = v->known_hosts,
	    .hostkey_policy =
	        o->accept_new_host_keys ? MG_SSH_HOSTKEY_ACCEPT_NEW : MG_SSH_HOSTKEY_STRICT,
	    .connect_timeout_ms = v->connect_timeout_ms,
	    .cancel = o->cancel,
	};
	char *cmd = mg_fleet_cmd_survey(v->path);
	int rc = mg_ssh_connect(&s, &so, &e);
	if (!rc)
		rc = mg_fleet_run_cmd(&r, s, cmd, v->command_timeout_ms,
		                      "reading the deploy directory", &e);
	if (rc) {
		if (rc == MG_ENOMEM)
			*oom = true;
		set_error(h, e.message);
	} else if (!parse_output(h, r.out)) {
		*oom = true;
		set_error(h, "out of memory");
	} else {
		h->reached = true;
	}
	free(cmd);
	mg_ssh_result_clear(&r);
	mg_ssh_free(s);
	mg_error_clear(&e);
}

static void *survey_worker(void *arg)
{
	survey_ctx *C = arg;
	for (;;) {
		pthread_mutex_lock(&C->mu);
		if (C->next >= C->res->nhosts || (C->o->cancel && *C->o->cancel)) {
			pthread_mutex_unlock(&C->mu);
			break;
		}
		mg_fleet_survey_host *h = &C->res->hosts[C->next++];
		pthread_mutex_unlock(&C->mu);
		bool oom = false;
		survey_host(C->o, h, &oom);
		pthread_mutex_lock(&C->mu);
		C->oom = C->oom || oom;
		pthread_mutex_unlock(&C->mu);
	}
	return NULL;
}

int mg_fleet_survey_run(mg_fleet_survey *out, const mg_fleet_survey_options *o, mg_error *err)
{
	memset(out, 0, sizeof(*out));
	const mg_plan_vms *v = o->vms;
	if (!v || !v->nhosts)
		return mg_error_set(err, MG_EINVALID, "the plan has no VM hosts to read");
	int64_t t0 = mg_clock_ms();
	out->hosts = calloc(v->nhosts, sizeof(*out->hosts));
	if (!out->hosts)
		return mg_error_oom(err);
	out->nhosts = v->nhosts;
	for (size_t i = 0; i < v->nhosts; i++) {
		out->hosts[i].host = &v->hosts[i];
		snprintf(out->hosts[i].error, sizeof(out->hosts[i].error), "%s",
		         "not read (cancelled)");
	}
	survey_ctx C = {.o = o, .res = out};
	pthread_mutex_init(&C.mu, NULL);
	mg_fleet_pool(v->parallel, v->nhosts, survey_worker, &C);
	pthread_mutex_destroy(&C.mu);
	for (size_t i = 0; i < out->nhosts; i++) {
		if (out->hosts[i].reached) {
			out->hosts[i].error[0] = '\0';
			out->reached++;
		}
	}
	out->duration_ms = mg_clock_ms() - t0;
	if (C.oom)
		return mg_error_oom(err);
	if (o->cancel && *o->cancel)
		return mg_error_set(err, MG_ECANCELED, "cancelled while reading the hosts");
	return 0;
}

void mg_fleet_survey_clear(mg_fleet_survey *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nhosts; i++) {
		for (size_t k = 0; k < s->hosts[i].nreleases; k++)
			free(s->hosts[i].releases[k]);
		free(s->hosts[i].releases);
	}
	free(s->hosts);
	memset(s, 0, sizeof(*s));
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

json_t *mg_fleet_survey_to_json(const mg_fleet_survey *s)
{
	json_t *a = json_array();
	for (size_t i = 0; s && i < s->nhosts; i++) {
		const mg_fleet_survey_host *h = &s->hosts[i];
		json_t *rel = json_array();
		for (size_t k = 0; k < h->nreleases; k++)
			json_array_append_new(rel, json_string(h->releases[k]));
		/* what was not read is null, never a default */
		json_array_append_new(
		    a, json_pack("{s:s, s:b, s:o, s:o, s:o, s:o}", "host", h->host->name, "reached",
		                 h->reached, "error", str_or_null(h->error), "current",
		                 h->reached ? str_or_null(h->current) : json_null(), "previous",
		                 h->reached ? str_or_null(h->previous) : json_null(), "releases",
		                 h->reached ? rel : (json_decref(rel), json_null())));
	}
	return a;
}
