/*
 * A ConfigMap as front ends make and report it: built and checked in one
 * call, findings and the nginx -t result as JSON, the manifest document for
 * several ConfigMaps, the comments above a YAML manifest, and whether the
 * result may be applied.
 */
#include <stdlib.h>

#include "internal.h"

static json_t *finding_json(const mg_cm_finding *f)
{
	return json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "file", f->file, "line", f->line,
	                 "severity", mg_cm_severity_name(f->severity), "rule", f->rule, "directive",
	                 f->directive, "message", f->message, "fix", f->fix);
}

json_t *mg_cm_findings_json(const mg_cm *cm)
{
	json_t *a = json_array();
	for (size_t i = 0; cm && i < cm->nfindings; i++)
		json_array_append_new(a, finding_json(&cm->findings[i]));
	return a;
}

json_t *mg_cm_verify_json(const mg_cm_verify_result *v)
{
	json_t *notes = json_array();
	for (size_t i = 0; i < v->nnotes; i++)
		json_array_append_new(notes, json_string(v->notes[i]));
	return json_pack("{s:b, s:b, s:s?, s:s?, s:s?, s:s?, s:s?, s:o}", "ran", v->ran, "ok",
	                 v->ok, "reason", v->reason, "version", v->version, "command", v->command,
	                 "summary", v->summary, "output", v->output, "notes", notes);
}

json_t *mg_cm_report_json(const mg_cm *cm, const char *source)
{
	return json_pack("{s:s, s:s, s:o, s:o}", "name", cm->name, "file", source, "findings",
	                 mg_cm_findings_json(cm), "verify", mg_cm_verify_json(&cm->verify));
}

json_t *mg_cm_list_json(json_t *items)
{
	json_t *doc = json_array_size(items) == 1 ? json_incref(json_array_get(items, 0))
	                                          : json_pack("{s:s, s:s, s:O}", "apiVersion", "v1",
	                                                      "kind", "List", "items", items);
	json_decref(items);
	return doc;
}

char *mg_cm_yaml_header(const mg_cm *cm, const char *source)
{
	cm_buf b = {0};
	const mg_cm_verify_result *v = &cm->verify;
	mg_cm_buf_printf(&b, "# ConfigMap %s from %s: %zu files, %zu bytes (the limit is %zu)\n",
	                 cm->name, source, cm->nentries, cm->size, MG_CM_MAX_BYTES);
	mg_cm_buf_printf(&b, "# checksum (sha256 of the content): %s\n", cm->checksum);
	if (v->ran)
		mg_cm_buf_printf(&b, "# nginx -t%s%s%s on the files as the pod sees them: %s%s%s\n",
		                 v->version ? " (" : "", v->version ? v->version : "",
		                 v->version ? ")" : "", v->ok ? "passed" : "failed",
		                 v->ok ? "" : ": ", v->ok ? "" : v->summary);
	else
		mg_cm_buf_printf(&b, "# nginx -t: not run (%s)\n",
		                 v->reason ? v->reason : "skipped");
	size_t e = mg_cm_count(cm, MG_CM_ERROR), w = mg_cm_count(cm, MG_CM_WARNING);
	if (e || w)
		mg_cm_buf_printf(&b, "# lint: %zu error%s, %zu warning%s (on stderr)\n", e,
		                 e == 1 ? "" : "s", w, w == 1 ? "" : "s");
	char *mount = mg_cm_mount_yaml(cm, "# ");
	if (mount) {
		mg_cm_buf_str(&b, "#\n");
		mg_cm_buf_str(&b, mount);
	}
	free(mount);
	return mg_cm_buf_take(&b);
}

int mg_cm_make(mg_cm **out, const mg_nginxconf *conf, const mg_cm_options *opt, const char *nginx,
               const char *skip_verify, mg_error *err)
{
	int rc = mg_cm_build(out, conf, opt, err);
	if (rc)
		return rc;
	if (skip_verify) {
		mg_cm_verify_skip(*out, skip_verify);
		return 0;
	}
	return mg_cm_verify(*out, nginx, NULL, MG_CM_VERIFY_TIMEOUT_MS, err);
}

bool mg_cm_failed(const mg_cm *cm, bool allow_errors)
{
	return (mg_cm_count(cm, MG_CM_ERROR) && !allow_errors) ||
	       (cm->verify.ran && !cm->verify.ok);
}
