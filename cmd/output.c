/*
 * Everything the CLI prints passes one filter: stdout and stderr are
 * replaced by streams that escape terminal control characters and bidi
 * overrides, so text from a plan, a balancer or a remote host can neither
 * drive the terminal (ESC[2J, OSC 52) nor reorder what the operator reads
 * (U+202E). No caller can forget it, since there is no other way out.
 *
 * Our own colour and cursor codes take a dedicated path: cli_c() returns a
 * marker made of SOH, a per-process random nonce and an index; the filter
 * turns exactly that marker into the code. Input cannot forge it without
 * the nonce, and a lone SOH is escaped like any other control character.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cmd.h"

#define NONCE_LEN  12
#define MARKER_LEN (1 + NONCE_LEN + 1)

static const char *const codes[] = {C_BOLD, C_DIM,   C_RED,        C_GREEN, C_YELLOW,
                                    C_CYAN, C_RESET, C_CLEAR_LINE, C_UP,    C_CLEAR_DOWN};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static char nonce[NONCE_LEN];
static char markers[NCODES][MARKER_LEN + 1];
static bool installed;

typedef struct {
	int fd;
	unsigned char carry[MARKER_LEN]; /* an incomplete marker or UTF-8 sequence */
	size_t ncarry;
	char out[4096];
	size_t nout;
} filter;

static filter filters[2];

const char *cli_c(bool on, const char *code)
{
	if (!on || !installed)
		return "";
	for (size_t i = 0; i < NCODES; i++)
		if (!strcmp(code, codes[i]))
			return markers[i];
	return ""; /* not one of ours: never printed raw */
}

static void out_flush(filter *f)
{
	size_t off = 0;
	while (off < f->nout) {
		ssize_t n = write(f->fd, f->out + off, f->nout - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* a closed pipe: nothing more we can do for this output */
		off += (size_t)n;
	}
	f->nout = 0;
}

static void out_bytes(filter *f, const void *p, size_t n)
{
	if (f->nout + n > sizeof(f->out))
		out_flush(f);
	memcpy(f->out + f->nout, p, n);
	f->nout += n;
}

/* \xHH for a byte, \uHHHH for a code point: what C, JSON and most shells would write */
static void out_escape(filter *f, bool code_point, unsigned v)
{
	char e[16];
	int n = code_point ? snprintf(e, sizeof(e), "\\u%04x", v)
	                   : snprintf(e, sizeof(e), "\\x%02x", v);
	out_bytes(f, e, (size_t)n);
}

/* Whether a code point is one the terminal acts on instead of showing. */
static bool unsafe_cp(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * Filters d[0..n). Returns how many bytes were consumed: fewer than n only
 * when the tail may be the start of a marker or a UTF-8 sequence and more
 * may come (!final).
 */
static size_t filter_run(filter *f, const unsigned char *d, size_t n, bool final)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = d[i];
		if (c == 0x01) {
			size_t avail = n - i;
			size_t cmp = avail - 1 < NONCE_LEN ? avail - 1 : NONCE_LEN;
			if (!memcmp(d + i + 1, nonce, cmp)) {
				if (avail < MARKER_LEN && !final)
					return i;
				if (avail >= MARKER_LEN && d[i + 1 + NONCE_LEN] >= 'a' &&
				    d[i + 1 + NONCE_LEN] < 'a' + NCODES) {
					const char *code = codes[d[i + 1 + NONCE_LEN] - 'a'];
					out_bytes(f, code, strlen(code));
					i += MARKER_LEN;
					continue;
				}
			}
			out_escape(f, false, c);
			i++;
			continue;
		}
		if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
			out_bytes(f, &c, 1);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			out_escape(f, c == 0x7f, c);
			i++;
			continue;
		}
		size_t len = c >= 0xc2 && c <= 0xdf   ? 2
		             : c >= 0xe0 && c <= 0xef ? 3
		             : c >= 0xf0 && c <= 0xf4 ? 4
		                                      : 0;
		uint32_t cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
		size_t k = 1;
		for (; len && k < len && i + k < n && (d[i + k] & 0xc0) == 0x80; k++)
			cp = cp << 6 | (d[i + k] & 0x3f);
		if (len && k < len && i + k == n && !final)
			return i; /* the rest of the sequence is in the next write */
		bool valid = len && k == len && !(len == 3 && cp < 0x800) &&
		             !(len == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
		             !(cp >= 0xd800 && cp <= 0xdfff);
		if (!valid) {
			out_escape(f, false, c);
			i++;
		} else if (unsafe_cp(cp)) {
			out_escape(f, true, cp);
			i += len;
		} else {
			out_bytes(f, d + i, len);
			i += len;
		}
	}
	return n;
}

static void filter_feed(filter *f, const char *buf, size_t size, bool final)
{
	if (f->ncarry) {
		/* the carried bytes and enough of this write to finish any marker or sequence */
		unsigned char tmp[2 * MARKER_LEN];
		size_t take = size < MARKER_LEN ? size : MARKER_LEN;
		memcpy(tmp, f->carry, f->ncarry);
		memcpy(tmp + f->ncarry, buf, take);
		size_t have = f->ncarry + take;
		bool more = take < size;
		size_t used = filter_run(f, tmp, have, final && !more);
		if (used < f->ncarry) { /* still incomplete: only when this write was short */
			memmove(f->carry, tmp + used, have - used);
			f->ncarry = have - used;
			out_flush(f);
			return;
		}
		buf += used - f->ncarry;
		size -= used - f->ncarry;
		f->ncarry = 0;
	}
	size_t used = filter_run(f, (const unsigned char *)buf, size, final);
	f->ncarry = size - used;
	memcpy(f->carry, buf + used, f->ncarry);
	out_flush(f);
}

static ssize_t filter_write(void *cookie, const char *buf, size_t size)
{
	filter_feed(cookie, buf, size, false);
	return (ssize_t)size;
}

static void filter_finish(void)
{
	fflush(stdout);
	fflush(stderr);
	for (size_t i = 0; i < 2; i++)
		if (filters[i].ncarry)
			filter_feed(&filters[i], "", 0, true);
}

static void make_nonce(void)
{
	unsigned char raw[NONCE_LEN];
	if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
		uint64_t x = (uint64_t)mg_now_ms() ^ ((uint64_t)mg_clock_ms() << 20) ^
		             ((uint64_t)getpid() << 40);
		for (size_t i = 0; i < NONCE_LEN; i++, x = x * 6364136223846793005u + 1)
			raw[i] = (unsigned char)(x >> 33);
	}
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	for (size_t i = 0; i < NONCE_LEN; i++)
		nonce[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	for (size_t i = 0; i < NCODES; i++) {
		markers[i][0] = 0x01;
		memcpy(markers[i] + 1, nonce, NONCE_LEN);
		markers[i][1 + NONCE_LEN] = (char)('a' + i);
		markers[i][MARKER_LEN] = '\0';
	}
}

void cli_output_init(void)
{
	if (installed)
		return;
	make_nonce();
	cookie_io_functions_t io = {.write = filter_write};
	filters[0].fd = STDOUT_FILENO;
	filters[1].fd = STDERR_FILENO;
	FILE *out = fopencookie(&filters[0], "w", io);
	FILE *err = fopencookie(&filters[1], "w", io);
	if (!out || !err) {
		/* without the filter, print no colour either: cli_c() stays "" */
		if (out)
			fclose(out);
		if (err)
			fclose(err);
		return;
	}
	fflush(stdout);
	fflush(stderr);
	setvbuf(out, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ);
	setvbuf(err, NULL, _IONBF, 0);
	stdout = out;
	stderr = err;
	installed = true;
	atexit(filter_finish);
}
