#!/bin/sh
# Proves each check of tests/lint.sh fires, and only where it should: a tiny
# fake tree with one violation of each kind (and look-alikes that are fine)
# must give exactly the expected findings; the same tree without the
# violations must pass. Run by `make lint`. Needs $CC (default cc) and nm.

LINT=$(cd "$(dirname "$0")" && pwd)/lint.sh
CC=${CC:-cc}
dir=$(mktemp -d "${TMPDIR:-/tmp}/mg-lint-selftest.XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
trap 'exit 2' HUP INT TERM
fails=0

fail() {
	echo "lint-selftest: FAIL: $*" >&2
	fails=$((fails + 1))
}

# --- a clean tree: what lib/ legitimately does today ---------------------------------------
mkdir -p "$dir/clean/lib/core" "$dir/clean/lib/traffic" "$dir/clean/cmd" "$dir/clean/tests"
cat >"$dir/clean/lib/core/clock.c" <<'EOF'
#include <time.h>
#include "clock.h"
long long mg_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* lib/core owns the clock */
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}
EOF
cat >"$dir/clean/lib/clock.h" <<'EOF'
long long mg_clock_ms(void);
EOF
: >"$dir/clean/lib/shift.h"
cat >"$dir/clean/lib/traffic/file.c" <<'EOF'
#include <stdio.h>
#include <unistd.h>
#include "clock.h"
/* Writes to a file it opened: fine. A comment may say printf("x"), stderr or exit(1). */
static int write_file(const char *path, const char *text)
{
	char buf[64];
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	snprintf(buf, sizeof(buf), "%s", "printf(\"no\") stdout exit(2)");
	fprintf(f, "%s %s\n", buf, text); // puts("also fine in a comment")
	fputs(text, f);
	fputc('"', f);
	fwrite(text, 1, 1, f);
	if (fileno(f) == STDERR_FILENO) /* the child of a fork would dup2 onto it: fine */
		return -1;
	return fclose(f);
}
int mg_file_write(const char *path, const char *text)
{
	long long t = mg_clock_ms();
	(void)t;
	return write_file(path, text);
}
EOF
cat >"$dir/clean/cmd/main.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include "cmd.h"
int main(void)
{
	printf("cmd/ prints\n");
	exit(0);
}
EOF
: >"$dir/clean/cmd/cmd.h"
seq 1 1000 | sed 's,^,// ,' >"$dir/clean/lib/long.c"
seq 1 1200 | sed 's,^,// ,' >"$dir/clean/lib/big.c"
printf '# a comment\nlib/big.c 1200\n' >"$dir/clean/tests/lint-allow.txt"

build_lib() { # tree: compile lib/**/*.c into tree/build/libmigrate.a
	mkdir -p "$1/build"
	for c in $(cd "$1" && find lib -name '*.c'); do
		o=$1/build/$(echo "$c" | tr / _).o
		"$CC" -g -c -I"$1/lib" -I"$1/cmd" -o "$o" "$1/$c" || return 1
	done
	ar rcs "$1/build/libmigrate.a" "$1"/build/*.o
}

build_lib "$dir/clean" || { echo "lint-selftest: cannot build the fake tree with $CC" >&2; exit 2; }
if ! out=$(sh "$LINT" "$dir/clean" "$dir/clean/build/libmigrate.a" 2>&1); then
	fail "the clean fake tree does not pass:"
	echo "$out" >&2
fi

# --- the same tree, one violation of each kind -------------------------------------------
cp -R "$dir/clean" "$dir/bad"
rm -rf "$dir/bad/build"
cat >"$dir/bad/lib/traffic/helper.c" <<'EOF'
int helper_count(void);
int helper_count(void)
{
	return 1;
}
EOF
cat >"$dir/bad/cmd/wait.c" <<'EOF'
#include <time.h>
void cmd_wait(void);
void cmd_wait(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
}
EOF
cat >"$dir/bad/lib/traffic/print.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
void mg_print_all(const char *s);
void mg_print_all(const char *s)
{
	printf("%s\n", s);
	fprintf(stderr, "%s\n", s);
	puts(s);
	fputs(s, stdout);
	putchar('x');
	perror("x");
	dprintf(2, "%s", s);
	write(STDERR_FILENO, s, 1);
	exit(1);
	_exit(1);
	abort();
}
EOF
cat >"$dir/bad/lib/traffic/inc.c" <<'EOF'
#include "../../cmd/cmd.h"
#include "cmd.h"
int mg_inc(void);
int mg_inc(void)
{
	return 0;
}
EOF
cat >"$dir/bad/lib/traffic/oneway.c" <<'EOF'
#include <stdint.h>
#define MG_ENOMEM (-12)
int mg_error_set(void *err, int code, const char *fmt, ...);
static int64_t now_ms(void)
{
	return 0;
}
int mg_oneway(void *err);
int mg_oneway(void *err)
{
	if (now_ms())
		return mg_error_set(err,
		                    MG_ENOMEM, "out of memory");
	return mg_error_set(err, MG_ENOMEM, "out of memory: %d", 1);
}
EOF
mkdir -p "$dir/bad/lib/plan"
cat >"$dir/bad/lib/plan/up.c" <<'EOF'
#include "shift.h"
#include "clock.h"
int mg_plan_up(void);
int mg_plan_up(void)
{
	return 0;
}
EOF
: >"$dir/bad/lib/orphan.h"
seq 1 1001 | sed 's,^,// ,' >"$dir/bad/lib/long.c"
seq 1 1201 | sed 's,^,// ,' >"$dir/bad/lib/big.c"
printf 'lib/big.c 1200\nlib/gone.c 1500\nlib/traffic/file.c 1100\n' >"$dir/bad/tests/lint-allow.txt"

cat >"$dir/expected" <<'EOF'
cmd/wait.c:6: clock_gettime outside lib/core/: use mg_clock_ms, mg_now_ms or mg_clock_abstime (lib/clock.h)
lib/big.c:1201: 1201 lines, more than the 1200 tests/lint-allow.txt allows it: it may shrink, not grow
lib/long.c:1001: 1001 lines, over 1000: split it (or, for a split in progress, list it in tests/lint-allow.txt)
lib/orphan.h:1: public header in no layer: add it to LAYERS in tests/lint.sh and to docs/architecture.md
lib/plan/up.c:1: lib/plan/ includes shift.h (layer traffic): plan may use only core (docs/architecture.md, "The layers")
lib/traffic/helper.c:2: extern symbol helper_count of libmigrate.a does not start with mg_ (make it static or rename it mg_<module>_<verb>)
lib/traffic/inc.c:1: lib/ includes ../../cmd/cmd.h from cmd/: the library never calls into cmd/
lib/traffic/inc.c:2: lib/ includes cmd.h from cmd/: the library never calls into cmd/
lib/traffic/oneway.c:4: private clock: use mg_clock_ms or mg_now_ms (lib/clock.h)
lib/traffic/oneway.c:12: mg_error_set(..., MG_ENOMEM, "out of memory"): use mg_error_oom(err)
lib/traffic/print.c:7: printing in lib/: return an mg_error or mg_log it; cmd/ prints
lib/traffic/print.c:8: stdout/stderr in lib/: the library does not write to the terminal; cmd/ prints
lib/traffic/print.c:9: printing in lib/: return an mg_error or mg_log it; cmd/ prints
lib/traffic/print.c:10: stdout/stderr in lib/: the library does not write to the terminal; cmd/ prints
lib/traffic/print.c:11: printing in lib/: return an mg_error or mg_log it; cmd/ prints
lib/traffic/print.c:12: printing in lib/: return an mg_error or mg_log it; cmd/ prints
lib/traffic/print.c:13: printing in lib/: return an mg_error or mg_log it; cmd/ prints
lib/traffic/print.c:14: write to fd 1 or 2 in lib/: the library does not write to the terminal; cmd/ prints
lib/traffic/print.c:15: exit or abort in lib/: return a negative MG_E* code; only cmd/ decides the exit status
lib/traffic/print.c:16: exit or abort in lib/: return a negative MG_E* code; only cmd/ decides the exit status
lib/traffic/print.c:17: exit or abort in lib/: return a negative MG_E* code; only cmd/ decides the exit status
tests/lint-allow.txt:2: lib/gone.c is listed but does not exist: remove the line
tests/lint-allow.txt:3: lib/traffic/file.c is 25 lines now, not over 1000: remove the line
lint: 23 problem(s)
EOF

build_lib "$dir/bad" || { echo "lint-selftest: cannot build the fake tree with $CC" >&2; exit 2; }
sh "$LINT" "$dir/bad" "$dir/bad/build/libmigrate.a" >"$dir/out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "lint exits $rc on the tree with violations, not 1"
if ! cmp -s "$dir/expected" "$dir/out"; then
	fail "lint's findings on the tree with violations differ from the expected ones (- expected, + got):"
	diff -u "$dir/expected" "$dir/out" | tail -n +3 >&2
fi

# A missing library is an error, not a pass.
sh "$LINT" "$dir/clean" "$dir/clean/build/none.a" >/dev/null 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "lint exits $rc without the library, not 2"

if [ "$fails" -ne 0 ]; then
	echo "lint-selftest: $fails failure(s)" >&2
	exit 1
fi
echo "lint-selftest: ok (each check fires on the fake tree, none on its clean twin)"
