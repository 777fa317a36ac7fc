/* The plan's build section: what is deployed, from where. */
#include <stdbool.h>
#include <stdio.h>
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

/* The release name rule: a version names a directory on every host and an image tag. */
int mg_plan_check_version(const char *v, char *why, size_t size)
{
	size_t n = v ? strlen(v) : 0;
	if (n == 0) {
		snprintf(why, size, "the version is empty");
		return -1;
	}
	if (n > MG_PLAN_VERSION_MAX) {
		snprintf(why, size, "the version is %zu characters long; at most %d are allowed", n,
		         MG_PLAN_VERSION_MAX);
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
