#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "sha256.h"

/* FIPS 180-4 examples (NIST CSRC "SHA256.pdf" and the long-message vector). */
Test(sha256, nist_vectors)
{
	char hex[65];
	mg_sha256_hex(hex, "", 0);
	cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	mg_sha256_hex(hex, "abc", 3);
	cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	mg_sha256_hex(hex, m448, strlen(m448));
	cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, million_a_in_odd_pieces)
{
	mg_sha256 c;
	uint8_t d[32];
	char piece[997];
	memset(piece, 'a', sizeof(piece));
	mg_sha256_init(&c);
	size_t left = 1000000;
	while (left) {
		size_t n = left < sizeof(piece) ? left : sizeof(piece);
		mg_sha256_update(&c, piece, n);
		left -= n;
	}
	mg_sha256_final(&c, d);
	char hex[65];
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
	cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every split of every length around the 55/56/64-byte padding edges gives the one-shot digest.
 */
Test(sha256, split_updates_match_one_shot)
{
	uint8_t msg[200];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(msg); len++) {
		char want[65];
		mg_sha256_hex(want, msg, len);
		for (size_t cut = 0; cut <= len; cut += 13) {
			mg_sha256 c;
			uint8_t d[32];
			char got[65];
			mg_sha256_init(&c);
			mg_sha256_update(&c, msg, cut);
			mg_sha256_update(&c, msg + cut, len - cut);
			mg_sha256_final(&c, d);
			for (int i = 0; i < 32; i++)
				sprintf(got + 2 * i, "%02x", d[i]);
			cr_assert_str_eq(got, want, "len %zu cut %zu", len, cut);
		}
	}
}

Test(sha256, file_matches_sha256sum)
{
	char dir[64], path[128], cmd[256], want[65] = "", got[65];
	tu_tmpdir_make(dir, sizeof(dir), "sha");
	snprintf(path, sizeof(path), "%s/blob", dir);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	for (int i = 0; i < 300000; i++)
		fputc((i * 31) & 0xff, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%64s", want), 1);
	pclose(p);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_sha256_file(got, path, &err), 0, "%s", err.message);
	cr_assert_str_eq(got, want);
	snprintf(path, sizeof(path), "%s/missing", dir);
	cr_assert_eq(mg_sha256_file(got, path, &err), MG_ENOTFOUND);
	cr_assert(strstr(err.message, "missing") != NULL, "%s", err.message);
	mg_error_clear(&err);
	tu_tmpdir_remove(dir);
}
