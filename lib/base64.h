/*
 * Standard base64 (RFC 4648, with padding): kubeconfig's *-data fields and
 * the exec plugin's certificate data use it, and none of our libraries
 * exposes one.
 */
#ifndef MG_BASE64_H
#define MG_BASE64_H

#include <stddef.h>

/*
 * Decodes src (len bytes; whitespace and line breaks ignored, as in PEM-ish
 * data pasted across lines). *out is malloc'd and NUL-terminated, *outlen its
 * length. -1 for characters outside the alphabet, bad padding or a length
 * that is not a whole number of quanta; -2 for out of memory.
 */
int mg_base64_decode(const char *src, size_t len, char **out, size_t *outlen);

/* Encodes len bytes; malloc'd, NUL-terminated, or NULL when out of memory. */
char *mg_base64_encode(const void *src, size_t len);

#endif
