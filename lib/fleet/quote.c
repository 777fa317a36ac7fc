#include "ssh.h"

#include <stdlib.h>
#include <string.h>

/*
 * Always quoted, even a plain word: one rule is easy to check, and inside
 * single quotes a POSIX shell gives no character a meaning except the quote
 * itself, which is closed, escaped and reopened.
 */
char *mg_ssh_quote(const char *s)
{
	size_t n = 2;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	char *o = out;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}
