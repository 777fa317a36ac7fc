/*
 * Bounds on YAML text checked before libyaml sees it.
 *
 * libyaml keeps one "simple key" slot per open flow collection and scans all
 * of them for every token, so deep nesting costs quadratic time (200 KB of
 * "[" took a minute); it also expands nothing itself, but a loader that walks
 * aliases can be made to visit billions of nodes. One linear pass over the
 * bytes refuses such text with the position of the first offence.
 */
#ifndef MG_YAMLLIMIT_H
#define MG_YAMLLIMIT_H

#include <stddef.h>

#include "error.h"

typedef struct {
	size_t max_depth;   /* nested block and flow collections together */
	size_t max_line;    /* bytes in one line, the newline excluded */
	size_t max_anchors; /* "&name" */
	size_t max_aliases; /* "*name" */
} mg_yaml_limits;

/*
 * Checks text against limits. On an offence: MG_EINVALID, one error
 * diagnostic at file:line:col naming the limit, and err's message says the
 * same. The scan follows YAML's lexical rules closely enough for plans
 * (quoted scalars, comments, block scalars, flow collections); it never
 * rejects what it cannot classify as nesting.
 */
int mg_yaml_limits_check(const char *text, size_t len, const char *file,
                         const mg_yaml_limits *limits, mg_error *err);

#endif
