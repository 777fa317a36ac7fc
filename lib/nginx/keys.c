/* The ConfigMap's keys (one per file, from its path), its checksum and its size. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sha256.h"

/* --- keys --------------------------------------------------------------------------------- */

static bool key_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* A key the API server's IsConfigMapKey accepts: those bytes, at most 253, no ".." start. */
char *mg_cm_key(const char *path)
{
	size_t n = strlen(path);
	char *k = malloc(n + 2);
	if (!k)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		k[i] = c == '/' ? '_' : key_char(c) ? (char)c : '-';
	}
	k[n] = '\0';
	if (n == 0 || !strcmp(k, ".") || !strncmp(k, "..", 2))
		k[0] = '_', k[n ? n : 1] = '\0';
	if (strlen(k) > 253) {
		/* keep the start and make the rest a digest of the whole path */
		char hex[65];
		mg_sha256_hex(hex, path, n);
		snprintf(k + 242, 12, "-%.10s", hex);
	}
	return k;
}

typedef struct {
	char **slot;
	size_t cap;
} keyset;

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static bool keyset_has(const keyset *ks, const char *k)
{
	for (size_t i = fnv(k) & (ks->cap - 1); ks->slot[i]; i = (i + 1) & (ks->cap - 1))
		if (!strcmp(ks->slot[i], k))
			return true;
	return false;
}

static void keyset_put(keyset *ks, char *k)
{
	size_t i = fnv(k) & (ks->cap - 1);
	while (ks->slot[i])
		i = (i + 1) & (ks->cap - 1);
	ks->slot[i] = k;
}

static const char *const *sort_paths;
static int by_path(const void *a, const void *b)
{
	return strcmp(sort_paths[*(const size_t *)a], sort_paths[*(const size_t *)b]);
}

/* k with "-<n>" before its extension (from the last '.' that is not the first byte). */
static char *suffixed(const char *k, unsigned n)
{
	const char *dot = strrchr(k, '.');
	size_t kl = strlen(k), at = dot && dot != k ? (size_t)(dot - k) : kl;
	char num[16];
	size_t nl = (size_t)snprintf(num, sizeof(num), "-%u", n);
	size_t ext = kl - at;
	if (at + nl + ext > 253) {
		if (ext + nl >= 253) {
			at = 253 - nl;
			ext = 0;
		} else {
			at = 253 - nl - ext;
		}
	}
	return mg_str_printf("%.*s%s%.*s", (int)at, k, num, (int)ext, k + kl - ext);
}

int mg_cm_keys(char **keys, const char *const *paths, size_t n, mg_error *err)
{
	keyset ks = {NULL, 16};
	while (ks.cap < 2 * n + 2)
		ks.cap *= 2;
	ks.slot = calloc(ks.cap, sizeof(*ks.slot));
	size_t *order = malloc((n ? n : 1) * sizeof(*order));
	if (!ks.slot || !order) {
		free(ks.slot);
		free(order);
		return mg_error_oom(err);
	}
	for (size_t i = 0; i < n; i++) {
		order[i] = i;
		keys[i] = NULL;
	}
	sort_paths = paths;
	qsort(order, n, sizeof(*order), by_path);
	int rc = 0;
	/* first the paths that are keys as they are, then the mapped ones, then the collisions */
	for (int pass = 0; pass < 3 && !rc; pass++) {
		for (size_t j = 0; j < n && !rc; j++) {
			size_t i = order[j];
			if (keys[i])
				continue;
			char *k = mg_cm_key(paths[i]);
			if (!k) {
				rc = MG_ENOMEM;
				break;
			}
			if (pass == 0 && strcmp(k, paths[i])) {
				free(k);
				continue;
			}
			if (pass == 2 && keyset_has(&ks, k)) {
				char *base = k;
				k = NULL;
				for (unsigned s = 2; !k || keyset_has(&ks, k); s++) {
					free(k);
					k = suffixed(base, s);
					if (!k)
						break;
				}
				free(base);
				if (!k) {
					rc = MG_ENOMEM;
					break;
				}
			}
			if (keyset_has(&ks, k)) {
				free(k);
				continue;
			}
			keys[i] = k;
			keyset_put(&ks, k);
		}
	}
	free(ks.slot);
	free(order);
	if (rc) {
		for (size_t i = 0; i < n; i++) {
			free(keys[i]);
			keys[i] = NULL;
		}
		return mg_error_set(err, rc, "out of memory");
	}
	return 0;
}

/* --- checksum and size -------------------------------------------------------------------- */

static const char *const *sort_keys;
static int by_key(const void *a, const void *b)
{
	return strcmp(sort_keys[*(const size_t *)a], sort_keys[*(const size_t *)b]);
}

void mg_cm_checksum(char hex[65], const char *const *keys, const char *const *values,
                    const size_t *lens, size_t n)
{
	size_t *order = malloc((n ? n : 1) * sizeof(*order));
	mg_sha256 c;
	mg_sha256_init(&c);
	for (size_t i = 0; i < n; i++)
		if (order)
			order[i] = i;
	if (order) {
		sort_keys = keys;
		qsort(order, n, sizeof(*order), by_key);
	}
	for (size_t j = 0; j < n; j++) {
		size_t i = order ? order[j] : j;
		char num[32];
		int l = snprintf(num, sizeof(num), "%zu:", strlen(keys[i]));
		mg_sha256_update(&c, num, (size_t)l);
		mg_sha256_update(&c, keys[i], strlen(keys[i]));
		l = snprintf(num, sizeof(num), ",%zu:", lens[i]);
		mg_sha256_update(&c, num, (size_t)l);
		mg_sha256_update(&c, values[i], lens[i]);
		mg_sha256_update(&c, ",", 1);
	}
	free(order);
	uint8_t d[32];
	mg_sha256_final(&c, d);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

size_t mg_cm_size(const char *const *keys, const size_t *lens, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += strlen(keys[i]) + lens[i];
	return total;
}
