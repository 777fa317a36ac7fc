/*
 * Plan loader: libyaml's document API gives us nodes with their positions,
 * and the walkers (one file per section) turn them into the typed model in plan.h.
 *
 * The loader never stops at the first problem: every walker records what is
 * wrong and carries on with a default, so `migrate validate` can show the
 * operator everything at once. Cross-section rules run only over sections
 * that loaded cleanly enough to be checked.
 */
#include "plan.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "fs.h"
#include "internal.h"
#include "yamllimit.h"

void mg_plan_free(mg_plan *plan)
{
	if (!plan)
		return;
	struct block *b = plan->arena;
	while (b) {
		struct block *next = b->next;
		free(b);
		b = next;
	}
	free(plan);
}

static void load_root(loader *L, yaml_node_t *root)
{
	static const char *const keys[] = {"version",    "name",    "description", "build", "vms",
	                                   "kubernetes", "traffic", "slo",         "state", NULL};
	mg_plan *p = L->plan;
	if (!mg_pl_expect(L, root, YAML_MAPPING_NODE, NULL))
		return;
	mg_pl_check_keys(L, root, NULL, keys);
	yaml_node_t *ver = mg_pl_get(L, root, "version");
	if (!ver)
		ERR(L, root, NULL, "missing required key \"version\"; write `version: 1`");
	else if (!mg_pl_scalar(ver) || strcmp(mg_pl_scalar(ver), "1"))
		ERR(L, ver, "version",
		    "this migrate reads plan version 1; \"%s\" is from a different release",
		    mg_pl_scalar(ver) ? mg_pl_scalar(ver) : mg_pl_node_kind(ver));
	p->name = mg_pl_get_str(L, root, NULL, "name", true, NULL);
	if (p->name && !mg_pl_valid_dns_label(p->name, 63))
		ERR(L, mg_pl_get(L, root, "name"), "name",
		    "\"%s\" must be 1 to 63 lower case letters, digits or '-', starting and ending "
		    "with a letter or digit (it names the state directory)",
		    p->name);
	p->description = mg_pl_get_str(L, root, NULL, "description", false, NULL);

	yaml_node_t *n;
	if ((n = mg_pl_get(L, root, "build")))
		mg_pl_load_build(L, n);
	if ((n = mg_pl_get(L, root, "vms")))
		mg_pl_load_vms(L, n);
	if ((n = mg_pl_get(L, root, "kubernetes")))
		mg_pl_load_kubernetes(L, n);
	if ((n = mg_pl_get(L, root, "traffic")))
		mg_pl_load_traffic(L, n);
	if ((n = mg_pl_get(L, root, "slo")))
		mg_pl_load_slo(L, n);
	p->state_dir = mg_pl_resolve_path(L, ".migrate");
	mg_pl_load_state(L, root);
	mg_pl_check_cross(L, root);
}

static void yaml_problem(loader *L, yaml_parser_t *parser)
{
	const yaml_mark_t *m = parser->problem ? &parser->problem_mark : &parser->context_mark;
	char msg[512];
	if (parser->context)
		snprintf(msg, sizeof(msg), "%s %s", parser->problem ? parser->problem : "error",
		         parser->context);
	else
		snprintf(msg, sizeof(msg), "%s", parser->problem ? parser->problem : "YAML error");
	mg_error_diag(L->err, MG_SEV_ERROR, L->file, (int)m->line + 1, (int)m->column + 1, NULL,
	              "invalid YAML: %s", msg);
	L->errors++;
}

/* Orders diagnostics as an editor shows them: the plan file first, then by position. */
static int diag_cmp(const mg_diag *x, const mg_diag *y, const char *plan_file)
{
	const char *fx = x->file ? x->file : "", *fy = y->file ? y->file : "";
	int rx = strcmp(fx, plan_file) != 0, ry = strcmp(fy, plan_file) != 0;
	if (rx != ry)
		return rx - ry;
	int f = strcmp(fx, fy);
	if (f)
		return f;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->col < y->col ? -1 : x->col > y->col;
}

/* Stable merge sort: a hostile plan can hold many thousands of diagnostics. */
static void sort_diags(mg_error *err, size_t from, const char *plan_file)
{
	if (!err || err->ndiags < from + 2)
		return; /* also keeps NULL + 0 (no diagnostics yet) out of pointer arithmetic */
	mg_diag *d = err->diags + from;
	size_t n = err->ndiags - from;
	mg_diag *tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return; /* unsorted is still every diagnostic */
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n - w; lo += 2 * w) {
			size_t mid = lo + w, hi = mid + w < n ? mid + w : n;
			size_t i = lo, j = mid, k = 0;
			while (i < mid && j < hi)
				tmp[k++] = diag_cmp(&d[j], &d[i], plan_file) < 0 ? d[j++] : d[i++];
			while (i < mid)
				tmp[k++] = d[i++];
			while (j < hi)
				tmp[k++] = d[j++];
			memcpy(d + lo, tmp, k * sizeof(*tmp));
		}
	}
	free(tmp);
}

/* The nodes a walk of the document visits, aliases followed; false on a cycle. */
static bool expanded_size(yaml_document_t *doc, int id, size_t *memo, unsigned char *state,
                          size_t limit, size_t *out)
{
	yaml_node_t *n = yaml_document_get_node(doc, id);
	size_t i = (size_t)(id - 1);
	if (!n)
		return *out = 0, true;
	if (state[i] == 2)
		return *out = memo[i], true;
	if (state[i] == 1)
		return false; /* an alias inside the node it names */
	state[i] = 1;
	size_t total = 1, sub;
	if (n->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top && total <= limit; it++) {
			if (!expanded_size(doc, *it, memo, state, limit, &sub))
				return false;
			total += sub;
		}
	} else if (n->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top && total <= limit; p++) {
			if (!expanded_size(doc, p->key, memo, state, limit, &sub))
				return false;
			total += sub;
			if (!expanded_size(doc, p->value, memo, state, limit, &sub))
				return false;
			total += sub;
		}
	}
	if (total > limit)
		total = limit + 1; /* saturate: sums of saturated sizes stay small */
	state[i] = 2;
	memo[i] = total;
	return *out = total, true;
}

/*
 * Billion laughs: a few aliases of aliases make a walk visit billions of nodes. Each node
 * is reached through aliases at most MG_PLAN_MAX_ALIAS_NODES times over in all.
 */
static bool check_aliases(loader *L, yaml_document_t *doc)
{
	size_t nodes = (size_t)(doc->nodes.top - doc->nodes.start);
	if (!nodes)
		return true;
	size_t *memo = calloc(nodes, sizeof(*memo));
	unsigned char *state = calloc(nodes, 1);
	if (!memo || !state) {
		free(memo);
		free(state);
		L->oom = true;
		return false;
	}
	size_t limit = nodes + MG_PLAN_MAX_ALIAS_NODES, total = 0;
	bool ok = expanded_size(doc, 1, memo, state, limit, &total);
	free(memo);
	free(state);
	if (!ok) {
		mg_error_diag(L->err, MG_SEV_ERROR, L->file, 0, 0, NULL,
		              "an alias (*name) refers to a node that contains it");
		L->errors++;
		return false;
	}
	if (total > limit) {
		mg_error_diag(L->err, MG_SEV_ERROR, L->file, 0, 0, NULL,
		              "aliases (*name) repeat more than %d nodes (a limit; see \"Limits\" "
		              "in docs/plan.md)",
		              MG_PLAN_MAX_ALIAS_NODES);
		L->errors++;
		return false;
	}
	return true;
}

static char *absolute_dir(const char *dir)
{
	char *real = realpath(dir && *dir ? dir : ".", NULL);
	return real ? real : strdup(dir && *dir ? dir : ".");
}

int mg_plan_load_buffer(mg_plan **out, const char *buf, size_t len, const char *display_path,
                        const char *base_dir, unsigned flags, mg_error *err)
{
	*out = NULL;
	mg_plan *p = calloc(1, sizeof(*p));
	if (!p)
		return mg_error_oom(err);
	char *dir = absolute_dir(base_dir);
	p->file = mg_pl_arena_strdup(p, display_path ? display_path : "<plan>");
	p->dir = mg_pl_arena_strdup(p, dir ? dir : ".");
	free(dir);
	loader L = {.plan = p, .file = p->file, .flags = flags, .err = err};
	size_t first_diag = err ? err->ndiags : 0;

	/* before libyaml: its time grows with the square of the nesting */
	static const mg_yaml_limits limits = {.max_depth = MG_PLAN_MAX_DEPTH,
	                                      .max_line = MG_PLAN_MAX_LINE,
	                                      .max_anchors = MG_PLAN_MAX_ANCHORS,
	                                      .max_aliases = MG_PLAN_MAX_ANCHORS};
	if (len > MG_PLAN_MAX_BYTES || memchr(buf, '\0', len) ||
	    mg_yaml_limits_check(buf, len, L.file, &limits, err)) {
		int rc;
		if (len > MG_PLAN_MAX_BYTES)
			rc = mg_error_set(err, MG_EINVALID,
			                  "%s: the plan is larger than the limit of %d MiB (see "
			                  "\"Limits\" in docs/plan.md)",
			                  L.file, MG_PLAN_MAX_BYTES >> 20);
		else if (memchr(buf, '\0', len))
			rc = mg_error_set(err, MG_EINVALID, "%s: not a text file", L.file);
		else
			rc = err ? err->code : MG_EINVALID;
		mg_plan_free(p);
		return rc;
	}

	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser)) {
		mg_plan_free(p);
		return mg_error_oom(err);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_problem(&L, &parser);
	} else {
		L.doc = &doc;
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (!root) {
			mg_error_diag(err, MG_SEV_ERROR, L.file, 1, 1, NULL,
			              "the plan is empty; see docs/plan.md for an example");
			L.errors++;
		} else if (check_aliases(&L, &doc)) {
			load_root(&L, root);
			yaml_document_t extra;
			if (!yaml_parser_load(&parser, &extra)) {
				yaml_problem(&L, &parser);
			} else {
				yaml_node_t *x = yaml_document_get_root_node(&extra);
				if (x &&
				    !mg_pl_is_null(x)) { /* a trailing empty "---" is harmless */
					L.doc = &extra;
					ERR(&L, x, NULL,
					    "a plan file holds one YAML document; found another "
					    "after \"---\"");
				}
				yaml_document_delete(&extra);
			}
		}
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	mg_pl_strset_clear(&L.host_names);

	sort_diags(err, first_diag, L.file);
	if (L.errors || L.oom) {
		int rc = L.oom ? mg_error_oom(err)
		               : mg_error_set(err, MG_EINVALID, "%s: %zu error%s in the plan",
		                              L.file, L.errors, L.errors == 1 ? "" : "s");
		mg_plan_free(p); /* last: L.file lives in the plan's arena */
		return rc;
	}
	*out = p;
	return 0;
}

int mg_plan_load(mg_plan **out, const char *path, unsigned flags, mg_error *err)
{
	*out = NULL;
	char *buf;
	size_t len;
	int rc = mg_fs_read_file(&buf, &len, path, MG_PLAN_MAX_BYTES, "the plan", err);
	/* the plan is input: a file that cannot be read is the operator's to fix (exit 2) */
	if (rc == MG_ENOTFOUND)
		return mg_error_set(err, MG_EINVALID,
		                    "%s: no such plan file (give one with -p FILE, or create "
		                    "migrate.yaml; see docs/plan.md)",
		                    path);
	if (rc == MG_ENOMEM)
		return rc;
	if (rc) {
		char why[sizeof(
		    err->message)]; /* err->message cannot be both format input and output */
		snprintf(why, sizeof(why), "%s", err ? err->message : "cannot read the plan");
		return mg_error_set(err, MG_EINVALID, "%s", why);
	}
	if (memchr(buf, '\0', len)) {
		free(buf);
		mg_error_diag(err, MG_SEV_ERROR, path, 0, 0, NULL, "not a text file");
		return mg_error_set(err, MG_EINVALID, "%s: not a text file", path);
	}
	char *copy = strdup(path);
	if (!copy) {
		free(buf);
		return mg_error_oom(err);
	}
	char *slash = strrchr(copy, '/');
	const char *dir = ".";
	if (slash == copy)
		dir = "/";
	else if (slash) {
		*slash = '\0';
		dir = copy;
	}
	rc = mg_plan_load_buffer(out, buf, len, path, dir, flags, err);
	free(copy);
	free(buf);
	return rc;
}

int mg_plan_require(const mg_plan *plan, unsigned needs, const char *command, mg_error *err)
{
	struct {
		unsigned flag;
		bool present;
		const char *what;
	} rules[] = {
	    {MG_NEED_BUILD, plan->build != NULL, "a `build` section"},
	    {MG_NEED_VMS, plan->vms != NULL, "a `vms` section"},
	    {MG_NEED_KUBERNETES, plan->kubernetes != NULL, "a `kubernetes` section"},
	    {MG_NEED_TRAFFIC, plan->traffic != NULL, "a `traffic` section"},
	    {MG_NEED_SLO, plan->slo != NULL, "an `slo` section"},
	    {MG_NEED_VMS_OR_KUBERNETES, plan->vms || plan->kubernetes,
	     "a `vms` or `kubernetes` section"},
	};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if ((needs & rules[i].flag) && !rules[i].present)
			return mg_error_set(
			    err, MG_EINVALID,
			    "%s: `migrate %s` needs %s in the plan (see docs/plan.md)", plan->file,
			    command, rules[i].what);
	return 0;
}

const char *mg_plan_file(const mg_plan *plan)
{
	return plan->file;
}
const char *mg_plan_dir(const mg_plan *plan)
{
	return plan->dir;
}
const char *mg_plan_name(const mg_plan *plan)
{
	return plan->name;
}
const char *mg_plan_description(const mg_plan *plan)
{
	return plan->description;
}
const char *mg_plan_state_dir(const mg_plan *plan)
{
	return plan->state_dir;
}
const mg_plan_build *mg_plan_build_section(const mg_plan *plan)
{
	return plan->build;
}
const mg_plan_vms *mg_plan_vms_section(const mg_plan *plan)
{
	return plan->vms;
}
const mg_plan_state *mg_plan_state_section(const mg_plan *plan)
{
	return &plan->state;
}

const mg_plan_kubernetes *mg_plan_kubernetes_section(const mg_plan *plan)
{
	return plan->kubernetes;
}
const mg_plan_traffic *mg_plan_traffic_section(const mg_plan *plan)
{
	return plan->traffic;
}
const mg_plan_slo *mg_plan_slo_section(const mg_plan *plan)
{
	return plan->slo;
}

const char *mg_provider_name(mg_provider p)
{
	static const char *const n[] = {"haproxy", "nginx", "cloudflare"};
	return (unsigned)p < 3 ? n[p] : "?";
}
const char *mg_red_source_name(mg_red_source s)
{
	return s == MG_RED_HAPROXY ? "haproxy" : "ingress-nginx";
}
const char *mg_on_failure_name(mg_on_failure f)
{
	return f == MG_ON_FAILURE_PAUSE ? "pause" : "rollback";
}

size_t mg_plan_vms_batch_size(const mg_plan_vms *vms)
{
	size_t n = vms->batch_count > 0 ? (size_t)vms->batch_count
	                                : (size_t)ceil(vms->nhosts * vms->batch_percent / 100.0);
	if (n < 1)
		n = 1;
	if (vms->nhosts && n > vms->nhosts)
		n = vms->nhosts;
	return n;
}
