/*
 * The release of this build, as `migrate --version` prints it and as the
 * library reports it (the User-Agent, migrate_build_info). Set by the
 * Makefile from the VERSION file and the commit.
 */
#ifndef MG_BUILDINFO_H
#define MG_BUILDINFO_H

/* "0.1.0", or "dev" for a build outside the Makefile. */
const char *mg_buildinfo_version(void);
/* The commit's short id, "" when not built from a git checkout. */
const char *mg_buildinfo_revision(void);

#endif
