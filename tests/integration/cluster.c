/*
 * The cluster side of a release (lib/cluster.h, lib/kube/cluster.c) called
 * through its library API against tests/servers/kubeapi.py: the plan's
 * templates rendered and sorted into apply order, server-side apply object by
 * object (stopping at the first failure), the rollout waits, conflicts with
 * and without force, a 5xx retried, cancel, the manifest record in the state
 * directory, and a dry run. What really arrived is checked in the server's
 * request log and in what it stores.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "cluster.h"
#include "kube.h"
#include "plan.h"
#include "records.h"
#include "store.h"

static char dir[256], cwd[512];
static tu_kubeapi k = TU_KUBEAPI_INIT;
static mg_plan *plan;
static mg_kube_client *client;
static json_t *objects;
static mg_cluster_result res;
static mg_error err = MG_ERROR_INIT;

#define DEPLOY  "/apis/apps/v1/namespaces/default/deployments/shop"
#define SERVICE "/api/v1/namespaces/default/services/shop"
#define CM      "/api/v1/namespaces/default/configmaps/settings"
#define HPA     "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/shop"
#define PDB     "/apis/policy/v1/namespaces/default/poddisruptionbudgets/shop"
#define INGRESS "/apis/networking.k8s.io/v1/namespaces/default/ingresses/shop"
#define WIDGET  "/apis/example.com/v1/namespaces/default/widgets/shop"

static void copy_template(const char *name)
{
	FILE *f = fopen(tu_at("%s/templates/web/%s", cwd, name), "r");
	cr_assert_not_null(f, "templates/web/%s", name);
	char text[8192];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	tu_write_file(tu_at("%s/templates/%s", dir, name), text);
}

static void setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "cluster");
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	unsetenv("KUBECONFIG");
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	tu_kubeapi_start(&k, dir, "default,staging");
	/* quick rollouts; the progress deadline at 6 s, far from any wait of these tests */
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":10,"
	                                   "\"observe_ms\":10,\"deadline_scale\":0.01}"));
	/*
	 * The templates' files in an order that is not the apply order: a custom
	 * resource and the Ingress come first by name, the Service last.
	 */
	cr_assert_eq(mkdir(tu_at("%s/templates", dir), 0700), 0);
	copy_template("deployment.yaml");
	copy_template("hpa.yaml");
	copy_template("pdb.yaml");
	copy_template("service.yaml");
	tu_write_file(tu_at("%s/templates/0-widget.yaml", dir),
	              "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: ${plan.name}\n"
	              "  namespace: ${namespace}\nspec:\n  size: 3\n");
	tu_write_file(tu_at("%s/templates/a-ingress.yaml", dir),
	              "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
	              "  name: ${plan.name}\n  namespace: ${namespace}\nspec:\n"
	              "  defaultBackend:\n    service:\n      name: ${plan.name}\n"
	              "      port:\n        number: 80\n");
	tu_write_file(tu_at("%s/templates/b-configmap.yaml", dir),
	              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
	              "  namespace: ${namespace}\ndata:\n  version: \"${version}\"\n");
	plan = NULL;
	client = NULL;
	objects = NULL;
	memset(&res, 0, sizeof(res));
	mg_error_clear(&err);
}

static void teardown(void)
{
	mg_cluster_result_clear(&res);
	json_decref(objects);
	mg_kube_client_free(client);
	mg_plan_free(plan);
	mg_error_clear(&err);
	tu_kubeapi_stop(&k);
	tu_tmpdir_remove(dir);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 90);

/* Loads the plan (replicas per Deployment) and connects to the test server with it. */
static void load_plan(int replicas)
{
	char text[4096];
	snprintf(text, sizeof(text),
	         "version: 1\n"
	         "name: shop\n"
	         "build:\n"
	         "  artifact: art/app-${version}.tar.gz\n"
	         "  image: registry.example.com/shop:${version}\n"
	         "kubernetes:\n"
	         "  kubeconfig: %s\n"
	         "  namespace: default\n"
	         "  templates: %s/templates\n"
	         "  values: { replicas: %d, max_replicas: 6, port: 8080, cpu: 100m, "
	         "memory: 64Mi, health_path: /healthz }\n"
	         "state:\n"
	         "  dir: state\n",
	         k.kubeconfig, dir, replicas);
	const char *path = tu_at("%s/plan.yaml", dir);
	tu_write_file(path, text);
	mg_plan_free(plan);
	plan = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_plan_load(&plan, path, 0, &e), 0, "%s", e.message);
	mg_error_clear(&e);
	if (!client)
		cr_assert_eq(mg_cluster_connect(&client, plan, NULL, NULL, &e), 0, "%s", e.message);
	mg_error_clear(&e);
}

static void render(const char *version)
{
	json_decref(objects);
	objects = NULL;
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_cluster_render(&objects, plan, version, NULL, &e), 0, "%s", e.message);
	mg_error_clear(&e);
}

static int apply(const mg_cluster_options *o)
{
	mg_cluster_result_clear(&res);
	mg_error_clear(&err);
	return mg_cluster_apply(&res, client, o, &err);
}

static mg_cluster_options opts(void)
{
	return (mg_cluster_options){.objects = objects, .rollout_timeout_ms = 30000, .poll_ms = 20};
}

static const mg_cluster_object *object(const char *kind)
{
	for (size_t i = 0; i < res.nobjects; i++)
		if (!strcmp(res.objects[i].kind, kind))
			return &res.objects[i];
	cr_assert_fail("no %s in the result", kind);
	return NULL;
}

static void clear_requests(void)
{
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"clear_requests\"}"));
}

/* "METHOD path status" of every API request since the last clear, one per line. */
static void requests(char *buf, size_t size, const char *method)
{
	json_t *log = tu_kubeapi_requests(&k);
	buf[0] = '\0';
	size_t i;
	json_t *r;
	json_array_foreach(log, i, r)
	{
		const char *m = json_string_value(json_object_get(r, "method"));
		if (method && strcmp(m, method))
			continue;
		size_t len = strlen(buf);
		snprintf(buf + len, size - len, "%s %s %lld\n", m,
		         json_string_value(json_object_get(r, "path")),
		         (long long)json_integer_value(json_object_get(r, "status")));
	}
	json_decref(log);
}

/* The object as the server stores it, or NULL. */
static json_t *stored(const char *path)
{
	json_t *r = tu_kubeapi_control(&k, tu_at("{\"op\":\"get\",\"path\":\"%s\"}", path));
	json_t *obj = json_incref(json_object_get(r, "object"));
	if (!obj && json_object_get(r, "kind"))
		obj = json_incref(r);
	json_decref(r);
	return obj;
}

/* Whether the server has no object at path (asked through the API). */
static bool absent(const char *path)
{
	json_t *obj = NULL;
	mg_error e = MG_ERROR_INIT;
	int rc = mg_kube_get(client, path, "object", &obj, &e);
	json_decref(obj);
	cr_assert(rc == 0 || rc == MG_ENOTFOUND, "%s", e.message);
	mg_error_clear(&e);
	return rc == MG_ENOTFOUND;
}

static long long stored_replicas(void)
{
	json_t *d = stored(DEPLOY);
	cr_assert_not_null(d, "no Deployment stored");
	long long n = json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas"));
	json_decref(d);
	return n;
}

/* ---- order ------------------------------------------------------------------------------ */

Test(cluster, render_sorts_into_kind_order_and_apply_keeps_it)
{
	load_plan(2);
	render("v1");
	static const char *const kinds[] = {
	    "ConfigMap",           "Service", "Deployment", "HorizontalPodAutoscaler",
	    "PodDisruptionBudget", "Ingress", "Widget"};
	cr_assert_eq(json_array_size(objects), 7);
	for (size_t i = 0; i < 7; i++)
		cr_assert_str_eq(
		    json_string_value(json_object_get(json_array_get(objects, i), "kind")),
		    kinds[i], "object %zu", i);

	clear_requests();
	mg_cluster_options o = opts();
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	char log[8192];
	requests(log, sizeof(log), "PATCH");
	cr_assert_str_eq(log, "PATCH " CM " 201\n"
	                      "PATCH " SERVICE " 201\n"
	                      "PATCH " DEPLOY " 201\n"
	                      "PATCH " HPA " 201\n"
	                      "PATCH " PDB " 201\n"
	                      "PATCH " INGRESS " 201\n"
	                      "PATCH " WIDGET " 201\n");
	cr_assert_eq(res.nobjects, 7);
	cr_assert_eq(res.created, 7);
	cr_assert_eq(res.failed + res.not_run + res.configured + res.unchanged, 0);
	for (size_t i = 0; i < 7; i++)
		cr_assert_str_eq(res.objects[i].kind, kinds[i]);
	cr_assert_str_eq(object("Deployment")->what, "apps/v1 Deployment default/shop");
	cr_assert(object("Deployment")->rollout);
	cr_assert(object("Deployment")->rolled_out);
	cr_assert_eq(res.deployments, 1);
	cr_assert_eq(res.rolled_out, 1);
	cr_assert_str_eq(res.context, "cert");
	cr_assert_str_eq(res.namespace_, "default");
	cr_assert(!res.dry_run && !res.canceled);

	/* the same release again changes nothing; another replica count changes the Deployment */
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(res.unchanged, 7, "%zu unchanged", res.unchanged);
	load_plan(3);
	render("v1");
	o = opts();
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(object("Deployment")->outcome, MG_CLUSTER_CONFIGURED);
	cr_assert_eq(object("Service")->outcome, MG_CLUSTER_UNCHANGED);
	cr_assert_eq(res.configured, 2, "the Deployment and the HPA's minReplicas");
	cr_assert_eq(stored_replicas(), 3);
}

/* ---- conflicts and refusals --------------------------------------------------------------- */

Test(cluster, a_conflict_stops_the_release_unless_forced)
{
	load_plan(2);
	render("v1");
	mg_cluster_options o = opts();
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	/* someone scales by hand: the replicas are theirs now */
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"update\",\"path\":\"" DEPLOY "\","
	                                   "\"manager\":\"kubectl-edit\",\"patch\":"
	                                   "{\"spec\":{\"replicas\":5}}}"));
	clear_requests();
	cr_assert_eq(apply(&o), MG_ECONFLICT, "%s", err.message);
	cr_assert(strstr(err.message, "apps/v1 Deployment default/shop: 409 Conflict"), "%s",
	          err.message);
	cr_assert(strstr(err.message, ".spec.replicas (managed by kubectl-edit)"), "%s",
	          err.message);
	const mg_cluster_object *d = object("Deployment");
	cr_assert_eq(d->outcome, MG_CLUSTER_FAILED);
	cr_assert(d->error && strstr(d->error, "409 Conflict"), "%s", d->error);
	cr_assert(!d->rolled_out);
	cr_assert_eq(object("ConfigMap")->outcome, MG_CLUSTER_UNCHANGED);
	cr_assert_eq(object("Service")->outcome, MG_CLUSTER_UNCHANGED);
	cr_assert_eq(object("HorizontalPodAutoscaler")->outcome, MG_CLUSTER_NOT_RUN);
	cr_assert_eq(object("Ingress")->outcome, MG_CLUSTER_NOT_RUN);
	cr_assert_eq(res.failed, 1);
	cr_assert_eq(res.not_run, 4);
	cr_assert_eq(res.rolled_out, 0);
	char log[8192];
	requests(log, sizeof(log), "PATCH");
	cr_assert_str_eq(log, "PATCH " CM " 200\nPATCH " SERVICE " 200\nPATCH " DEPLOY " 409\n",
	                 "sent after the conflict:\n%s", log);
	cr_assert_eq(stored_replicas(), 5, "the hand-set replicas stay");

	/* kubernetes.force_conflicts: the release takes the field back */
	clear_requests();
	o.force = true;
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(object("Deployment")->outcome, MG_CLUSTER_CONFIGURED);
	cr_assert(object("Deployment")->rolled_out);
	cr_assert_eq(stored_replicas(), 2);
	json_t *log_j = tu_kubeapi_requests(&k);
	size_t i;
	json_t *r;
	int patches = 0;
	json_array_foreach(log_j, i, r)
	{
		if (strcmp(json_string_value(json_object_get(r, "method")), "PATCH"))
			continue;
		patches++;
		cr_assert_str_eq(
		    json_string_value(json_object_get(json_object_get(r, "query"), "force")),
		    "true", "%s", json_string_value(json_object_get(r, "path")));
	}
	cr_assert_eq(patches, 7);
	json_decref(log_j);
}

Test(cluster, an_invalid_object_stops_there_and_what_came_before_stays)
{
	load_plan(2);
	/* a Service with a port out of range, between a ConfigMap and a Deployment */
	tu_write_file(tu_at("%s/templates/service.yaml", dir),
	              "apiVersion: v1\nkind: Service\nmetadata:\n  name: ${plan.name}\n"
	              "  namespace: ${namespace}\nspec:\n  selector:\n    app: x\n  ports:\n"
	              "    - name: http\n      port: 70000\n");
	render("v1");
	clear_requests();
	mg_cluster_options o = opts();
	cr_assert_eq(apply(&o), MG_EINVALID, "%s", err.message);
	cr_assert(strstr(err.message, "v1 Service default/shop: 422 Invalid: "), "%s", err.message);
	cr_assert(strstr(err.message, "spec.ports[0].port"), "%s", err.message);
	const mg_cluster_object *s = object("Service");
	cr_assert_eq(s->outcome, MG_CLUSTER_FAILED);
	cr_assert_str_eq(s->what, "v1 Service default/shop");
	cr_assert(s->error && strstr(s->error, "422 Invalid"), "%s", s->error);
	cr_assert_eq(object("ConfigMap")->outcome, MG_CLUSTER_CREATED);
	cr_assert_eq(object("Deployment")->outcome, MG_CLUSTER_NOT_RUN);
	cr_assert(!object("Deployment")->rollout_not_waited, "never applied: nothing to wait for");
	cr_assert_eq(res.created, 1);
	cr_assert_eq(res.failed, 1);
	cr_assert_eq(res.not_run, 5);
	/* what was applied before stays; nothing after it was sent */
	json_t *cm = stored(CM);
	cr_assert_not_null(cm, "the ConfigMap applied before the failure is gone");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cm, "data"), "version")),
	                 "v1");
	json_decref(cm);
	cr_assert(absent(DEPLOY), "the Deployment after the failure was applied");
	char log[8192];
	requests(log, sizeof(log), "PATCH");
	cr_assert_str_eq(log, "PATCH " CM " 201\nPATCH " SERVICE " 422\n");
}

Test(cluster, a_5xx_is_retried_and_the_release_goes_on)
{
	load_plan(2);
	render("v1");
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"fault\",\"path\":\"/services/shop\","
	                                   "\"method\":\"PATCH\",\"count\":2,\"status\":503}"));
	clear_requests();
	mg_cluster_options o = opts();
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(object("Service")->outcome, MG_CLUSTER_CREATED);
	cr_assert_eq(res.created, 7);
	cr_assert(object("Deployment")->rolled_out);
	char log[8192];
	requests(log, sizeof(log), "PATCH");
	cr_assert_str_eq(log, "PATCH " CM " 201\n"
	                      "PATCH " SERVICE " 503\n"
	                      "PATCH " SERVICE " 503\n"
	                      "PATCH " SERVICE " 201\n"
	                      "PATCH " DEPLOY " 201\n"
	                      "PATCH " HPA " 201\n"
	                      "PATCH " PDB " 201\n"
	                      "PATCH " INGRESS " 201\n"
	                      "PATCH " WIDGET " 201\n");
}

/* ---- rollouts and cancel -------------------------------------------------------------------- */

Test(cluster, a_rollout_that_never_completes_times_out)
{
	load_plan(2);
	render("v1");
	/* a second Deployment after the first: its rollout is the one nobody waits for */
	json_t *second = json_deep_copy(json_array_get(objects, 2));
	cr_assert_str_eq(json_string_value(json_object_get(second, "kind")), "Deployment");
	json_object_set_new(json_object_get(second, "metadata"), "name", json_string("shop-b"));
	json_array_insert_new(objects, 3, second);
	/* ten minutes a pod and the real 600 s progress deadline: only the wait's timeout ends it
	 */
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":600000,"
	                                   "\"deadline_scale\":1}"));
	mg_cluster_options o = opts();
	o.rollout_timeout_ms = 500;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(apply(&o), MG_ERROR, "%s", err.message);
	int64_t took = tu_now_ms() - t0;
	cr_assert_lt(took, 30000, "the wait is bounded by rollout_timeout (%lld ms)",
	             (long long)took);
	cr_assert(strstr(err.message,
	                 "apps/v1 Deployment default/shop: not rolled out within 0.5 s "
	                 "(rollout_timeout)"),
	          "%s", err.message);
	const mg_cluster_object *d = &res.objects[2];
	cr_assert_str_eq(d->name, "shop");
	cr_assert_eq(d->outcome, MG_CLUSTER_FAILED, "applied, but its rollout failed");
	cr_assert(!d->rolled_out);
	cr_assert(d->error && strstr(d->error, "not rolled out"), "%s", d->error);
	const mg_cluster_object *b = &res.objects[3];
	cr_assert_str_eq(b->name, "shop-b");
	cr_assert_eq(b->outcome, MG_CLUSTER_CREATED);
	cr_assert(b->rollout_not_waited);
	cr_assert_eq(res.rollouts_not_waited, 1);
	cr_assert_eq(res.rolled_out, 0);
	cr_assert_eq(res.deployments, 2);
	cr_assert_eq(res.created, 7, "every object was applied before the waits");
	cr_assert(!res.canceled);
}

static void cancel_after_the_service(void *ud, const mg_cluster_object *obj, const char *msg)
{
	(void)msg;
	if (!strcmp(obj->kind, "Service"))
		*(mg_cancel *)ud = 1;
}

static void cancel_in_the_rollout(void *ud, const mg_cluster_object *obj, const char *msg)
{
	(void)msg;
	if (obj->rollout && obj->outcome != MG_CLUSTER_NOT_RUN && strcmp(msg, "created"))
		*(mg_cancel *)ud = 1;
}

Test(cluster, cancel_stops_before_the_next_object_and_in_a_rollout)
{
	load_plan(2);
	render("v1");
	mg_cancel flag = 1;
	clear_requests();
	mg_cluster_options o = opts();
	o.cancel = &flag;
	cr_assert_eq(apply(&o), MG_ECANCELED, "%s", err.message);
	cr_assert(res.canceled);
	cr_assert_eq(res.not_run, 7);
	char log[8192];
	requests(log, sizeof(log), "PATCH");
	cr_assert_str_eq(log, "", "sent while cancelled");

	/* raised while applying: what is applied stays, the rest is not sent */
	flag = 0;
	o.progress = cancel_after_the_service;
	o.progress_ud = (void *)&flag;
	cr_assert_eq(apply(&o), MG_ECANCELED, "%s", err.message);
	cr_assert_str_eq(err.message, "cancelled before applying Deployment shop");
	cr_assert(res.canceled);
	cr_assert_eq(object("Service")->outcome, MG_CLUSTER_CREATED);
	cr_assert_eq(object("Deployment")->outcome, MG_CLUSTER_NOT_RUN);
	cr_assert_eq(res.created, 2);
	requests(log, sizeof(log), "PATCH");
	cr_assert_str_eq(log, "PATCH " CM " 201\nPATCH " SERVICE " 201\n");
	cr_assert(absent(DEPLOY));

	/* raised during a rollout that would take ten minutes */
	json_decref(tu_kubeapi_control(&k, "{\"op\":\"settings\",\"per_replica_ms\":600000,"
	                                   "\"deadline_scale\":1}"));
	flag = 0;
	o.progress = cancel_in_the_rollout;
	o.rollout_timeout_ms = 600000;
	int64_t t0 = tu_now_ms();
	cr_assert_eq(apply(&o), MG_ECANCELED, "%s", err.message);
	cr_assert_lt(tu_now_ms() - t0, 30000, "cancel ends the wait");
	cr_assert(res.canceled);
	cr_assert_eq(object("Deployment")->outcome, MG_CLUSTER_FAILED);
	cr_assert(!object("Deployment")->rolled_out);
	cr_assert_eq(res.unchanged, 2);
	cr_assert_eq(res.created, 4, "every object was applied before the waits");
}

/* ---- the record, and a dry run -------------------------------------------------------------- */

Test(cluster, the_applied_manifests_are_recorded_in_the_state_directory)
{
	load_plan(2);
	render("v1");
	mg_cluster_options o = opts();
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	mg_store *store = NULL;
	const char *state_dir = tu_at("%s/state", dir);
	mg_error e = MG_ERROR_INIT;
	cr_assert_eq(mg_store_open(&store, state_dir, "shop", &e), 0, "%s", e.message);
	cr_assert_eq(mg_store_lock(store, "deploy", &e), 0, "%s", e.message);
	json_t *none = NULL;
	cr_assert_eq(mg_cluster_record_load(&none, store, "v1", &e), MG_ENOTFOUND);
	mg_error_clear(&e);
	cr_assert_eq(mg_cluster_record_save(store, "v1", objects, &e), 0, "%s", e.message);
	struct stat sb;
	const char *file = tu_at("%s/manifests/v1.json", mg_store_path(store));
	cr_assert_eq(stat(file, &sb), 0, "%s", file);
	cr_assert_eq(sb.st_mode & 0777, 0600, "%o", sb.st_mode & 0777);
	json_t *back = NULL;
	cr_assert_eq(mg_cluster_record_load(&back, store, "v1", &e), 0, "%s", e.message);
	cr_assert(json_equal(back, objects), "the record is not what was applied");

	/* the next release, then a rollback that re-applies the record of v1 */
	load_plan(4);
	render("v2");
	o = opts();
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(stored_replicas(), 4);
	o.objects = back;
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(object("Deployment")->outcome, MG_CLUSTER_CONFIGURED);
	cr_assert_eq(stored_replicas(), 2);
	json_t *cm = stored(CM);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cm, "data"), "version")),
	                 "v1");
	json_decref(cm);
	/* and again: the record is exactly what runs, nothing changes */
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(res.unchanged, 7);
	json_decref(back);
	mg_store_free(store);
}

Test(cluster, a_dry_run_sends_dry_run_all_and_changes_nothing)
{
	load_plan(2);
	render("v1");
	clear_requests();
	mg_cluster_options o = opts();
	o.dry_run = true;
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert(res.dry_run);
	cr_assert_eq(res.created, 7, "each object is new to the cluster");
	cr_assert_eq(res.rolled_out, 0, "a dry run waits for no rollout");
	cr_assert(!object("Deployment")->rollout_not_waited);
	cr_assert_not_null(object("Deployment")->diff);
	json_t *log_j = tu_kubeapi_requests(&k);
	size_t i;
	json_t *r;
	int patches = 0;
	json_array_foreach(log_j, i, r)
	{
		const char *m = json_string_value(json_object_get(r, "method"));
		const char *path = json_string_value(json_object_get(r, "path"));
		cr_assert(!strcmp(m, "GET") || !strcmp(m, "PATCH"), "%s %s", m, path);
		if (strcmp(m, "PATCH"))
			continue;
		patches++;
		cr_assert_str_eq(
		    json_string_value(json_object_get(json_object_get(r, "query"), "dryRun")),
		    "All", "%s", path);
	}
	cr_assert_eq(patches, 7);
	json_decref(log_j);
	static const char *const paths[] = {CM, SERVICE, DEPLOY, HPA, PDB, INGRESS, WIDGET};
	for (i = 0; i < 7; i++)
		cr_assert(absent(paths[i]), "a dry run stored %s", paths[i]);
	cr_assert_neq(access(tu_at("%s/state", dir), F_OK), 0, "a dry run wrote a state directory");

	/* against a live release: a change is shown, not made */
	o.dry_run = false;
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	load_plan(3);
	render("v1");
	o = opts();
	o.dry_run = true;
	cr_assert_eq(apply(&o), 0, "%s", err.message);
	cr_assert_eq(object("Deployment")->outcome, MG_CLUSTER_CONFIGURED);
	cr_assert_eq(object("Service")->outcome, MG_CLUSTER_UNCHANGED);
	cr_assert(strstr(object("Deployment")->diff, "replicas"), "%s", object("Deployment")->diff);
	cr_assert_eq(stored_replicas(), 2, "a dry run changed the Deployment");
}
