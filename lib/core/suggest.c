#include "suggest.h"

#include <stdint.h>
#include <string.h>

/* Optimal string alignment distance: a swapped pair of letters ("tarffic") counts as one edit. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

const char *mg_suggest(const char *word, const char *const *candidates)
{
	const char *best = NULL;
	size_t bestd = SIZE_MAX;
	for (size_t i = 0; candidates[i]; i++) {
		size_t dd = distance(word, candidates[i]);
		if (dd < bestd) {
			bestd = dd;
			best = candidates[i];
		}
	}
	/* two edits for short words, a third of the length for long ones */
	size_t limit = strlen(word) / 3 > 2 ? strlen(word) / 3 : 2;
	return best && bestd <= limit && bestd < strlen(word) ? best : NULL;
}
