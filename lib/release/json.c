/* A release as the members of `deploy -o json` (lib/release.h). */
#include "release.h"

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* What a fleet run is about: the same keys for the fleet alone and in a dual run. */
static void fleet_about(json_t *o, const mg_release_info *in)
{
	json_object_set_new(o, "version", json_string(in->vms_version));
	json_object_set_new(o, "from_version", str_or_null(in->from_vms));
	json_object_set_new(o, "artifact", str_or_null(in->artifact));
	json_object_set_new(o, "sha256", str_or_null(in->sha256));
}

static json_t *fleet_alone(const mg_release_info *in)
{
	json_t *o = json_object();
	const mg_fleet_options *fo = in->fleet_options;
	json_object_set_new(o, "plan", json_string(in->plan));
	if (in->dry_run)
		json_object_set_new(o, "dry_run", json_true());
	json_object_set_new(o, "op", json_string(mg_fleet_op_name(in->op)));
	json_object_set_new(o, "rebuilt", str_or_null(in->rebuilt));
	fleet_about(o, in);
	if (in->dry_run) {
		size_t bs = mg_plan_vms_batch_size(fo->vms);
		json_object_set_new(o, "batch_size", json_integer((json_int_t)bs));
		json_object_set_new(
		    o, "batches",
		    json_integer((json_int_t)mg_fleet_batch_count(fo->vms->nhosts, bs)));
		json_object_set_new(o, "parallel", json_integer(fo->vms->parallel));
		json_object_set_new(o, "max_failures", json_integer(fo->vms->max_failures));
		json_object_set_new(o, "hosts", mg_fleet_describe(fo));
		return o;
	}
	json_t *rj = mg_fleet_result_to_json(in->fleet);
	json_object_update(o, rj);
	json_decref(rj);
	json_object_set_new(o, "fleet_version", str_or_null(in->state->vms_version));
	json_object_set_new(o, "fleet_previous_version",
	                    str_or_null(in->state->vms_previous_version));
	return o;
}

json_t *mg_release_to_json(const mg_release *r)
{
	const mg_release_info *in = mg_release_info_get(r);
	if (!in->k8s)
		return fleet_alone(in);
	bool dry = in->dry_run;
	json_t *o = json_object();
	json_object_set_new(o, "plan", json_string(in->plan));
	json_object_set_new(o, "op", json_string(mg_fleet_op_name(in->op)));
	json_object_set_new(o, "version", json_string(in->version));
	json_object_set_new(o, "dry_run", json_boolean(dry));
	json_object_set_new(o, "rebuilt", str_or_null(in->rebuilt));
	json_t *vj = json_null();
	if (in->vms && in->fleet_ran) {
		vj = mg_fleet_result_to_json(in->fleet);
		json_object_set_new(vj, "ok", json_boolean(!in->fleet_rc));
		fleet_about(vj, in);
		json_object_set_new(vj, "error",
		                    in->fleet_rc ? mg_error_json(in->fleet_err, in->fleet_rc, NULL)
		                                 : json_null());
	} else if (in->vms && dry) {
		vj = json_pack("{s:b, s:s, s:o}", "dry_run", 1, "version", in->vms_version, "hosts",
		               mg_fleet_describe(in->fleet_options));
	}
	json_object_set_new(o, "vms", vj);
	json_t *kj = mg_cluster_result_to_json(in->cluster);
	json_object_set_new(kj, "ok", json_boolean(!in->cluster_rc));
	json_object_set_new(kj, "version", json_string(in->version));
	json_object_set_new(kj, "from_version", str_or_null(in->from_k8s));
	json_object_set_new(kj, "secret_files", json_integer((json_int_t)in->secret_files));
	json_object_set_new(kj, "error",
	                    in->cluster_rc ? mg_error_json(in->cluster_err, in->cluster_rc, NULL)
	                                   : json_null());
	json_object_set_new(o, "kubernetes", kj);
	const mg_state *st = in->state;
	json_object_set_new(o, "versions",
	                    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "vms",
	                              str_or_null(st->vms_version), "vms_previous",
	                              str_or_null(st->vms_previous_version), "kubernetes",
	                              str_or_null(st->kubernetes_version), "kubernetes_previous",
	                              str_or_null(st->kubernetes_previous_version),
	                              "kubernetes_rollout", str_or_null(st->kubernetes_rollout),
	                              "kubernetes_error", str_or_null(st->kubernetes_error)));
	return o;
}
