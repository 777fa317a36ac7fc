/* The version the Makefile compiles in (-DMG_VERSION, -DMG_GITREV): see lib/buildinfo.h. */
#include "buildinfo.h"

#ifndef MG_VERSION
#define MG_VERSION "dev"
#endif
#ifndef MG_GITREV
#define MG_GITREV ""
#endif

const char *mg_buildinfo_version(void)
{
	return MG_VERSION;
}

const char *mg_buildinfo_revision(void)
{
	return MG_GITREV;
}
