/* The plan's build section: what is deployed, from where. */
#include <string.h>

#include "internal.h"

void mg_pl_load_build(loader *L, yaml_node_t *m)
{
	static const char *const keys[] = {"repo", "artifact", "image", NULL};
	const char *P = "build";
	static const char *const version_ref[] = {"version", NULL};
	if (!mg_pl_expect(L, m, YAML_MAPPING_NODE, P))
		return;
	mg_pl_check_keys(L, m, P, keys);
	mg_plan_build *b = mg_pl_arena_alloc(L->plan, sizeof(*b));
	if (!b)
		return;
	b->repo = mg_pl_get_path(L, m, P, "repo", false, NULL);
	mg_pl_check_file_exists(L, m, P, "repo", b->repo, true, MG_SEV_ERROR);
	const char *artifact = mg_pl_get_str(L, m, P, "artifact", false, NULL);
	if (artifact && mg_pl_check_refs(L, mg_pl_get(L, m, "artifact"), "build.artifact", artifact,
	                                 version_ref))
		b->artifact = mg_pl_resolve_path(L, artifact);
	b->image = mg_pl_get_str(L, m, P, "image", false, NULL);
	if (b->image) {
		mg_pl_check_refs(L, mg_pl_get(L, m, "image"), "build.image", b->image, version_ref);
		if (strpbrk(b->image, " \t\n"))
			ERR(L, mg_pl_get(L, m, "image"), "build.image",
			    "an image reference has no white space");
	}
	if (!artifact && !b->image)
		ERR(L, m, P,
		    "needs \"artifact\" (for the VMs), \"image\" (for Kubernetes), or both");
	L->plan->build = b;
}
