/*
 * SHA-256 (FIPS 180-4), for artifact checksums and content hashes.
 *
 * None of the project's libraries exposes a digest API (libssh2 and libcurl
 * keep theirs internal, libgit2 1.5 hashes with SHA-1), and linking libcrypto
 * directly would be a sixth dependency for a hundred lines of arithmetic.
 */
#ifndef MG_SHA256_H
#define MG_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t nbuf;
} mg_sha256;

void mg_sha256_init(mg_sha256 *c);
void mg_sha256_update(mg_sha256 *c, const void *data, size_t len);
void mg_sha256_final(mg_sha256 *c, uint8_t out[32]);

/* Lowercase hex of data's digest into hex[65]. */
void mg_sha256_hex(char hex[65], const void *data, size_t len);
/* The same of a file's contents. */
int mg_sha256_file(char hex[65], const char *path, mg_error *err);

#endif
