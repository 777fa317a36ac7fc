#!/bin/sh
# Short libFuzzer runs of the plan loader and of the nginx configuration
# parser, when clang and its fuzzer runtime are installed (Debian: clang,
# libclang-rt-dev); otherwise says so and skips, since both corpora are
# replayed by `make check` either way.
# Usage: tests/fuzz/run.sh SECONDS [TARGET]
#   SECONDS is the total, split between the targets; TARGET (plan or
#   nginxconf) runs that one alone for all of it.
set -eu
secs=${1:-20}
only=${2:-}
out=build-fuzz
if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang not installed; corpus replayed only"
	exit 0
fi
mkdir -p "$out"
probe="$out/probe.c"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! clang -fsanitize=fuzzer "$probe" -o "$out/probe" 2>/dev/null; then
	echo "fuzz: clang cannot link libFuzzer (install libclang-rt-dev); corpus replayed only"
	exit 0
fi
# The Makefile's packages, so a library object that needs one links wherever it is pulled in.
pkgs="yaml-0.1 jansson libcurl libssh2 libgit2"
# shellcheck disable=SC2086
flags="-std=c11 -D_GNU_SOURCE -pthread -O1 -g -fsanitize=fuzzer-no-link,address,undefined -Ilib $(pkg-config --cflags $pkgs)"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $pkgs) -lm -pthread"

# The library once, for both targets.
rm -f "$out/libfuzz.a"
mkdir -p "$out/obj"
for src in lib/*.c lib/*/*.c; do
	obj="$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
	# shellcheck disable=SC2086
	clang $flags -c -o "$obj" "$src"
done
ar rcs "$out/libfuzz.a" "$out"/obj/*.o

# run TARGET DICT SECONDS LABEL
run() {
	mkdir -p "$out/corpus-$1"
	# shellcheck disable=SC2086
	clang $flags -fsanitize=fuzzer -o "$out/$1_fuzz" "tests/fuzz/$1_fuzz.c" "$out/libfuzz.a" $libs
	echo "fuzz: $4 for ${3}s"
	"$out/$1_fuzz" -max_total_time="$3" -timeout=10 -rss_limit_mb=2048 -dict="tests/fuzz/$2" \
		"$out/corpus-$1" "tests/fuzz/corpus/$1" 2>"$out/fuzz-$1.log" || {
		tail -n 60 "$out/fuzz-$1.log"
		exit 1
	}
	tail -n 2 "$out/fuzz-$1.log"
}

case "$only" in
plan) run plan plan.dict "$secs" "plan loader" ;;
nginxconf) run nginxconf nginxconf.dict "$secs" "nginx configuration parser" ;;
"")
	# -max_total_time=0 would mean forever: each gets a second at least
	half=$((secs / 2))
	[ "$half" -ge 1 ] || half=1
	rest=$((secs - half))
	[ "$rest" -ge 1 ] || rest=1
	run plan plan.dict "$rest" "plan loader"
	run nginxconf nginxconf.dict "$half" "nginx configuration parser"
	;;
*)
	echo "fuzz: unknown target $only (plan or nginxconf)" >&2
	exit 2
	;;
esac
