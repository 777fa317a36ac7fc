/* "Did you mean ...?" for misspelt keys, commands and flags. */
#ifndef MG_SUGGEST_H
#define MG_SUGGEST_H

/* The candidate closest to word by edit distance, if close enough to be a likely typo; else NULL.
 * candidates is NULL-terminated. */
const char *mg_suggest(const char *word, const char *const *candidates);

#endif
