#include "base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int value_of(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int mg_base64_decode(const char *src, size_t len, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	char *buf = malloc(len / 4 * 3 + 4);
	if (!buf)
		return -2;
	size_t n = 0, pad = 0, quantum = 0;
	uint32_t acc = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			/* padding only ends the last quantum, in its last one or two places */
			if (quantum < 2)
				goto bad;
			pad++;
			acc <<= 6;
			quantum++;
		} else {
			int v = value_of(c);
			if (v < 0 || pad)
				goto bad;
			acc = acc << 6 | (uint32_t)v;
			quantum++;
		}
		if (quantum == 4) {
			buf[n++] = (char)(acc >> 16);
			if (pad < 2)
				buf[n++] = (char)(acc >> 8 & 0xff);
			if (pad < 1)
				buf[n++] = (char)(acc & 0xff);
			acc = 0;
			quantum = 0;
			if (pad)
				pad = 3; /* nothing may follow a padded quantum */
		} else if (pad == 3) {
			goto bad;
		}
	}
	if (quantum != 0 || (pad && pad != 3))
		goto bad;
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
bad:
	explicit_bzero(buf, len / 4 * 3 + 4);
	free(buf);
	return -1;
}

char *mg_base64_encode(const void *src, size_t len)
{
	const unsigned char *s = src;
	char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;
	if (!out)
		return NULL;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*p++ = alphabet[v >> 18];
		*p++ = alphabet[v >> 12 & 63];
		*p++ = alphabet[v >> 6 & 63];
		*p++ = alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
		*p++ = alphabet[v >> 18];
		*p++ = alphabet[v >> 12 & 63];
		*p++ = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
		*p++ = '=';
	}
	*p = '\0';
	return out;
}
