/*
 * The fleet run (lib/fleet.h): the batches, a pool of at most vms.parallel
 * workers each taking hosts off the batch's queue (host.c does a host), the
 * journal, and the result as JSON and into fleet.json's hosts.
 */
#include "fleet.h"
#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "internal.h"
#include "journal.h"
#include "log.h"
#include "records.h"

/* Failed hosts named in a batch's journal record; the rest are counted. */
#define JOURNAL_FAILURES 50

static void *worker(void *arg)
{
	mg_fleet_run_ctx *R = arg;
	for (;;) {
		pthread_mutex_lock(&R->mu);
		if (R->next >= R->nqueue || mg_fleet_canceled(R->opt->cancel)) {
			pthread_mutex_unlock(&R->mu);
			break;
		}
		mg_fleet_host_result *h = &R->res->hosts[R->queue[R->next++]];
		R->active++;
		if (R->active > R->res->max_concurrent)
			R->res->max_concurrent = R->active;
		pthread_mutex_unlock(&R->mu);

		if (R->revert)
			mg_fleet_host_batch_revert(R, h);
		else
			mg_fleet_host_work(R, h);

		pthread_mutex_lock(&R->mu);
		R->active--;
		R->done++;
		mg_fleet_notify_locked(R, h, true, R->revert);
		pthread_mutex_unlock(&R->mu);
	}
	return NULL;
}

void mg_fleet_pool(int parallel, size_t n, void *(*fn)(void *), void *arg)
{
	size_t nt = parallel > 0 ? (size_t)parallel : 1;
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
		if (pthread_create(&th[i], attr_ok ? &attr : NULL, fn, arg) != 0)
			break;
		started++;
	}
	if (attr_ok)
		pthread_attr_destroy(&attr);
	if (started < nt)
		mg_log(MG_LOG_WARN, "only %zu of %zu worker threads could be started", started, nt);
	if (!started)
		fn(arg); /* no thread at all: one at a time, but still done */
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
}

/* Works through queue with at most vms.parallel threads. */
static void run_pool(mg_fleet_run_ctx *R, const size_t *queue, size_t n, bool revert)
{
	R->queue = queue;
	R->nqueue = n;
	R->next = 0;
	R->revert = revert;
	mg_fleet_pool(R->opt->vms->parallel, n, worker, R);
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

json_t *mg_fleet_result_to_json(const mg_fleet_result *r)
{
	json_t *hosts = json_array();
	for (size_t i = 0; i < r->nhosts; i++)
		json_array_append_new(hosts, mg_fleet_host_to_json(&r->hosts[i]));
	json_t *j = json_pack(
	    "{s:I, s:I, s:I, s:b, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:i, "
	    "s:I}",
	    "batch_size", (json_int_t)r->batch_size, "batches", (json_int_t)r->nbatches,
	    "batches_run", (json_int_t)r->batches_run, "stopped", r->stopped, "stopped_batch",
	    r->stopped ? json_integer((json_int_t)r->stopped_batch + 1) : json_null(), "canceled",
	    r->canceled, "hosts_ok", (json_int_t)r->ok, "hosts_failed", (json_int_t)r->failed,
	    "hosts_rolled_back", (json_int_t)r->rolled_back, "hosts_not_run",
	    (json_int_t)r->not_run, "uploaded", (json_int_t)r->uploaded, "skipped_uploads",
	    (json_int_t)r->skipped_uploads, "max_concurrent", r->max_concurrent, "duration_ms",
	    (json_int_t)r->duration_ms);
	json_object_set_new(j, "hosts", hosts);
	return j;
}

static int journal(const mg_fleet_options *o, const char *action, json_t *before, json_t *after,
                   const char *reason, json_t *evidence, mg_error *err)
{
	int rc = 0;
	if (o->store) {
		mg_journal_entry e = {.command = o->command ? o->command : mg_fleet_op_name(o->op),
		                      .action = action,
		                      .before = before,
		                      .after = after,
		                      .reason = reason,
		                      .evidence = evidence};
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
	if (mg_plan_check_version(o->version, why, sizeof(why)))
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
		mg_fleet_result_clear(res);
		return mg_error_set(err, MG_ENOMEM, "out of memory for %zu hosts", v->nhosts);
	}
	res->batch_size = mg_plan_vms_batch_size(v);
	res->nbatches = mg_fleet_batch_count(v->nhosts, res->batch_size);
	for (size_t i = 0; i < v->nhosts; i++) {
		res->hosts[i].host = &v->hosts[i];
		res->hosts[i].batch = i / res->batch_size;
	}

	mg_fleet_run_ctx R = {.opt = o, .res = res};
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
		mg_fleet_result_clear(res);
		return rc;
	}

	size_t failures = 0;
	int record_rc = 0;
	mg_error record_err = MG_ERROR_INIT;
	for (size_t b = 0; b < res->nbatches && !mg_fleet_canceled(o->cancel); b++) {
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
		bool cancel = mg_fleet_canceled(o->cancel);
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
	res->canceled = mg_fleet_canceled(o->cancel);
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

void mg_fleet_result_clear(mg_fleet_result *r)
{
	if (!r)
		return;
	free(r->hosts);
	memset(r, 0, sizeof(*r));
}
