/* The release's name and what is checked before anything is contacted (lib/release.h). */
#include "release.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "secret.h"
#include "sha256.h"
#include "template.h"

/* git rev-parse --short HEAD of build.repo, refusing a tree with uncommitted changes. */
int mg_release_version(char *out, size_t size, const mg_plan *plan, mg_error *err)
{
	const mg_plan_build *b = mg_plan_build_section(plan);
	if (!b || !b->repo)
		return mg_error_set(err, MG_EINVALID,
		                    "--version V is required: the plan has no build.repo to take "
		                    "the release from (its HEAD commit)");
	git_libgit2_init();
	git_repository *repo = NULL;
	git_object *head = NULL;
	git_status_list *st = NULL;
	git_buf shortid = {0};
	int rc = 0;
	if (git_repository_open(&repo, b->repo) != 0 ||
	    git_revparse_single(&head, repo, "HEAD^{commit}") != 0 ||
	    git_object_short_id(&shortid, head) != 0) {
		const git_error *ge = git_error_last();
		rc = mg_error_set(err, MG_EINVALID, "build.repo %s: cannot read HEAD: %s", b->repo,
		                  ge && ge->message ? ge->message : "unknown error");
		goto out;
	}
	git_status_options so = GIT_STATUS_OPTIONS_INIT;
	/* untracked files are not part of a build from the commit; changes to tracked ones are */
	so.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	if (git_status_list_new(&st, repo, &so) != 0) {
		const git_error *ge = git_error_last();
		rc = mg_error_set(err, MG_EINVALID, "build.repo %s: cannot read its status: %s",
		                  b->repo, ge && ge->message ? ge->message : "unknown error");
		goto out;
	}
	size_t dirty = git_status_list_entrycount(st);
	if (dirty) {
		const git_status_entry *e = git_status_byindex(st, 0);
		const char *path = e->index_to_workdir && e->index_to_workdir->new_file.path
		                       ? e->index_to_workdir->new_file.path
		                   : e->head_to_index ? e->head_to_index->new_file.path
		                                      : "?";
		rc =
		    mg_error_set(err, MG_EINVALID,
		                 "build.repo %s has %zu uncommitted change%s (%s%s): the release "
		                 "would not be the commit %s names. Commit them, or pass --version "
		                 "V",
		                 b->repo, dirty, dirty == 1 ? "" : "s", path,
		                 dirty > 1 ? ", ..." : "", shortid.ptr);
		goto out;
	}
	snprintf(out, size, "%s", shortid.ptr);
out:
	git_buf_dispose(&shortid);
	git_status_list_free(st);
	git_object_free(head);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

int mg_release_preflight(const mg_plan_vms *v, bool accept_new, const char **passphrase,
                         mg_error *err)
{
	*passphrase = NULL;
	if (v->identity_file && v->passphrase_env) {
		const char *p = getenv(v->passphrase_env);
		if (!p || !*p)
			return mg_error_set(
			    err, MG_EINVALID,
			    "vms.passphrase_env: the environment variable %s is not set "
			    "or empty; it must hold the passphrase of %s",
			    v->passphrase_env, v->identity_file);
		*passphrase = p;
		mg_secret_register(p); /* masked wherever a host or libssh2 echoes it */
	}
	if (v->identity_file && access(v->identity_file, R_OK) != 0)
		return mg_error_set(err, MG_EINVALID, "vms.identity_file: cannot read %s: %s",
		                    v->identity_file, strerror(errno));
	if (!v->identity_file && !getenv("SSH_AUTH_SOCK"))
		return mg_error_set(err, MG_EINVALID,
		                    "the plan has no vms.identity_file, so ssh-agent is used, but "
		                    "SSH_AUTH_SOCK is not set: start an agent and add the key "
		                    "(ssh-add), or set vms.identity_file");
	if (!accept_new && access(v->known_hosts, F_OK) != 0)
		return mg_error_set(
		    err, MG_EINVALID,
		    "vms.known_hosts: %s does not exist, so no host key can be "
		    "checked; add the hosts' keys after checking their fingerprints "
		    "(ssh-keyscan -p PORT HOST >> %s), or pass "
		    "--accept-new-host-keys to record them on first contact "
		    "(see docs/vms.md)",
		    v->known_hosts, v->known_hosts);
	return 0;
}

int mg_release_artifact(char **path, char sha[65], const mg_plan *plan, const char *version,
                        mg_error *err)
{
	*path = NULL;
	const mg_plan_build *b = mg_plan_build_section(plan);
	if (!b || !b->artifact)
		return mg_error_set(err, MG_EINVALID,
		                    "%s: deploying to the VMs needs build.artifact, the "
		                    "file unpacked on each VM (see docs/plan.md)",
		                    mg_plan_file(plan));
	char *artifact = mg_template_expand_version(b->artifact, version);
	if (!artifact)
		return mg_error_oom(err);
	*path = artifact;
	struct stat sb;
	errno = 0;
	if (stat(artifact, &sb) != 0 || !S_ISREG(sb.st_mode))
		return mg_error_set(err, MG_EINVALID,
		                    "the artifact %s (build.artifact for version %s) %s; no host "
		                    "was contacted",
		                    artifact, version,
		                    errno == ENOENT ? "does not exist" : "is not a readable file");
	if (mg_sha256_file(sha, artifact, err))
		return mg_error_set(err, MG_EINVALID, "%s; no host was contacted", err->message);
	return 0;
}
