#!/bin/sh
# A short libFuzzer run of the plan loader, when clang and its fuzzer runtime
# are installed (Debian: clang, libclang-rt-dev); otherwise says so and skips,
# since the corpus is replayed by `make check` either way.
# Usage: tests/fuzz/run.sh SECONDS
set -eu
secs=${1:-20}
out=build-fuzz
if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang not installed; corpus replayed only"
	exit 0
fi
mkdir -p "$out/corpus"
probe="$out/probe.c"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! clang -fsanitize=fuzzer "$probe" -o "$out/probe" 2>/dev/null; then
	echo "fuzz: clang cannot link libFuzzer (install libclang-rt-dev); corpus replayed only"
	exit 0
fi
flags="-std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined -Ilib $(pkg-config --cflags yaml-0.1 jansson libcurl)"
# shellcheck disable=SC2086
clang $flags -o "$out/plan_fuzz" tests/fuzz/plan_fuzz.c lib/*.c lib/*/*.c \
	$(pkg-config --libs yaml-0.1 jansson libcurl) -lm
echo "fuzz: plan loader for ${secs}s"
"$out/plan_fuzz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-dict=tests/fuzz/plan.dict "$out/corpus" tests/fuzz/corpus/plan 2>"$out/fuzz.log" || {
	tail -n 60 "$out/fuzz.log"
	exit 1
}
tail -n 2 "$out/fuzz.log"
