/*
 * Everything the CLI prints passes one filter (lib/term.h): stdout and
 * stderr are replaced by streams that escape terminal control characters and
 * bidi overrides, so text from a plan, a balancer or a remote host can
 * neither drive the terminal nor reorder what the operator reads. No caller
 * can forget it, since there is no other way out.
 *
 * Our own colour and cursor codes take a dedicated path: cli_c() returns a
 * marker made of SOH, a per-process random nonce and an index; the filter
 * turns exactly that marker into the code.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "cmd.h"
#include "term.h"

#define MARKER_LEN (1 + MG_TERM_NONCE_LEN + 1)

static const char *const codes[] = {C_BOLD, C_DIM,   C_RED,        C_GREEN, C_YELLOW,
                                    C_CYAN, C_RESET, C_CLEAR_LINE, C_UP,    C_CLEAR_DOWN};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static char nonce[MG_TERM_NONCE_LEN];
static char markers[NCODES][MARKER_LEN + 1];
static mg_term_filter *filters[2];

const char *cli_c(bool on, const char *code)
{
	if (!on || !filters[0])
		return "";
	for (size_t i = 0; i < NCODES; i++)
		if (!strcmp(code, codes[i]))
			return markers[i];
	return ""; /* not one of ours: never printed raw */
}

static void write_fd(const char *buf, size_t len, void *ud)
{
	int fd = *(const int *)ud;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* a closed pipe: nothing more we can do for this output */
		off += (size_t)n;
	}
}

static ssize_t filter_write(void *cookie, const char *buf, size_t size)
{
	mg_term_filter_feed(cookie, buf, size, false);
	return (ssize_t)size;
}

static void filter_finish(void)
{
	fflush(stdout);
	fflush(stderr);
	for (size_t i = 0; i < 2; i++)
		mg_term_filter_feed(filters[i], "", 0, true);
}

static void make_nonce(void)
{
	unsigned char raw[MG_TERM_NONCE_LEN];
	if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
		uint64_t x = (uint64_t)mg_now_ms() ^ ((uint64_t)mg_clock_ms() << 20) ^
		             ((uint64_t)getpid() << 40);
		for (size_t i = 0; i < MG_TERM_NONCE_LEN; i++, x = x * 6364136223846793005u + 1)
			raw[i] = (unsigned char)(x >> 33);
	}
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	for (size_t i = 0; i < MG_TERM_NONCE_LEN; i++)
		nonce[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	for (size_t i = 0; i < NCODES; i++) {
		markers[i][0] = 0x01;
		memcpy(markers[i] + 1, nonce, MG_TERM_NONCE_LEN);
		markers[i][1 + MG_TERM_NONCE_LEN] = (char)('a' + i);
		markers[i][MARKER_LEN] = '\0';
	}
}

void cli_output_init(void)
{
	static const int fds[2] = {STDOUT_FILENO, STDERR_FILENO};
	static mg_term_filter *made[2];
	if (filters[0])
		return;
	make_nonce();
	FILE *streams[2] = {NULL, NULL};
	cookie_io_functions_t io = {.write = filter_write};
	for (size_t i = 0; i < 2; i++) {
		mg_term_options o = {.nonce = nonce,
		                     .codes = codes,
		                     .ncodes = NCODES,
		                     .write = write_fd,
		                     .ud = (void *)&fds[i]};
		if (mg_term_filter_new(&made[i], &o, NULL) == 0)
			streams[i] = fopencookie(made[i], "w", io);
	}
	if (!streams[0] || !streams[1]) {
		/* without the filter, print no colour either: cli_c() stays "" */
		for (size_t i = 0; i < 2; i++) {
			if (streams[i])
				fclose(streams[i]);
			mg_term_filter_free(made[i]);
		}
		return;
	}
	fflush(stdout);
	fflush(stderr);
	setvbuf(streams[0], NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ);
	setvbuf(streams[1], NULL, _IONBF, 0);
	stdout = streams[0];
	stderr = streams[1];
	filters[0] = made[0];
	filters[1] = made[1];
	atexit(filter_finish);
}
