/* Helpers shared by the unit and integration tests. */
#ifndef MG_TESTUTIL_H
#define MG_TESTUTIL_H

#include <stddef.h>

/* A fresh directory /tmp/mg-<tag>-XXXXXX in buf (umask 022 so modes are predictable). */
void tu_tmpdir_make(char *buf, size_t size, const char *tag);
/* rm -rf, without following links. */
void tu_tmpdir_remove(const char *dir);
/* Names in dir, sorted and joined with ',', so a test can compare a whole listing. */
void tu_list_dir(char *out, size_t size, const char *dir);

#endif
