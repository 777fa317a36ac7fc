#!/bin/sh
# libFuzzer runs of every fuzz target (tests/fuzz/<target>_fuzz.c), when clang
# and its fuzzer runtime are installed (Debian: clang, libclang-rt-dev);
# otherwise says so and skips, since every corpus is replayed by `make check`
# either way.
#
# Usage: tests/fuzz/run.sh SECONDS ["TARGET ..."]
#          short runs (`make fuzz`): SECONDS in all, split between the targets
#          (or between the TARGETs named); the first finding stops the run (exit 1).
#        tests/fuzz/run.sh --long SECONDS ["TARGET ..."]
#          `make fuzz-long`: each target for SECONDS, one after another. A
#          finding is kept in build-fuzz/crashes/<target>/ and the target
#          goes on for the rest of its time; the fewest inputs that reach
#          code the committed corpus does not are merged into
#          tests/fuzz/corpus/<target>/ (inputs capped at MAX_LEN bytes, so the
#          committed corpora stay small: review and commit them). Prints per target: runs, corpus files, findings;
#          exits 1 when anything was found.
set -eu
long=0
if [ "${1:-}" = "--long" ]; then
	long=1
	shift
fi
secs=${1:-20}
only=${2:-}
out=build-fuzz
targets="plan nginxconf kubeconfig template prometheus cloudflare kubeapi"
MAX_LEN=${MAX_LEN:-4096}

if [ -n "$only" ]; then
	for o in $only; do
		case " $targets " in
		*" $o "*) ;;
		*)
			echo "fuzz: unknown target $o (one of: $targets)" >&2
			exit 2
			;;
		esac
	done
	targets=$only
fi
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
# Undefined behaviour stops the run like a crash does: it is a finding too.
# shellcheck disable=SC2086
flags="-std=c11 -D_GNU_SOURCE -pthread -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -Ilib $(pkg-config --cflags $pkgs)"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $pkgs) -lm -pthread"

# The library once, for all targets.
# (objects of files split or removed since the last run must not be linked in)
rm -rf "$out/libfuzz.a" "$out/obj"
mkdir -p "$out/obj"
# One compiler per core (FUZZ_JOBS, default nproc): the objects do not depend on each other.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
for src in lib/*.c lib/*/*.c; do
	[ -e "$src" ] || continue # lib/*.c matches nothing: the sources are in folders
	echo "$src"
done | FLAGS=$flags OUT=$out xargs -P "$jobs" -n 1 sh -c '
	obj="$OUT/obj/$(echo "$1" | tr / _ | sed "s/\.c\$/.o/")"
	# shellcheck disable=SC2086
	exec clang $FLAGS -c -o "$obj" "$1"' sh || {
	echo "fuzz: the library does not compile for fuzzing" >&2
	exit 1
}
ar rcs "$out/libfuzz.a" "$out"/obj/*.o

build() {
	# shellcheck disable=SC2086
	clang $flags -fsanitize=fuzzer -o "$out/$1_fuzz" "tests/fuzz/$1_fuzz.c" tests/fuzz/fuzzutil.c \
		"$out/libfuzz.a" $libs
}

dict_of() {
	if [ -f "tests/fuzz/$1.dict" ]; then echo "-dict=tests/fuzz/$1.dict"; fi
}

count_files() {
	find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l | tr -d ' '
}

# short TARGET SECONDS: stops everything at the first finding
short() {
	mkdir -p "$out/corpus-$1" "$out/crashes/$1"
	echo "fuzz: $1 for ${2}s"
	# shellcheck disable=SC2046
	"$out/$1_fuzz" -max_total_time="$2" -timeout=10 -rss_limit_mb=2048 $(dict_of "$1") \
		-artifact_prefix="$out/crashes/$1/" "$out/corpus-$1" "tests/fuzz/corpus/$1" \
		2>"$out/fuzz-$1.log" || {
		tail -n 60 "$out/fuzz-$1.log"
		echo "fuzz: $1: finding in $out/crashes/$1/ (log $out/fuzz-$1.log)"
		exit 1
	}
	tail -n 2 "$out/fuzz-$1.log"
}

summary=""
found_any=0
# long TARGET SECONDS: keeps going after a finding until its time is up
long() {
	t=$1
	work="$out/corpus-$t"
	crashes="$out/crashes/$t"
	log="$out/fuzz-long-$t.log"
	mkdir -p "$work" "$crashes"
	: >"$log"
	# findings of this run only: crash files from earlier runs stay, but are not counted
	marker="$out/.fuzz-long-start-$t"
	: >"$marker"
	before=$(count_files "tests/fuzz/corpus/$t")
	start=$(date +%s)
	end=$((start + $2))
	runs=0
	restarts=0
	echo "fuzz-long: $t for ${2}s (log $log)"
	while :; do
		left=$((end - $(date +%s)))
		[ "$left" -ge 1 ] || break
		# shellcheck disable=SC2046
		if "$out/${t}_fuzz" -max_total_time="$left" -timeout=10 -rss_limit_mb=2048 \
			-max_len="$MAX_LEN" -print_final_stats=1 $(dict_of "$t") \
			-artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$t" >>"$log" 2>&1; then
			rc=0
		else
			rc=$?
		fi
		n=$(grep 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
		runs=$n
		[ "$rc" -ne 0 ] || break
		# a finding (or a crash of libFuzzer itself): its artifact is kept, go on
		restarts=$((restarts + 1))
		[ "$restarts" -lt 50 ] || break
	done
	# What reaches code the committed corpus does not goes into it, the fewest inputs that
	# do (set cover over edges, not hit counts: else it takes hundreds); the rest stays in
	# $work for the next run.
	# shellcheck disable=SC2086
	"$out/${t}_fuzz" $merge -use_counters=0 -max_len="$MAX_LEN" -timeout=10 \
		-rss_limit_mb=2048 "tests/fuzz/corpus/$t" "$work" >>"$log" 2>&1 || true
	after=$(count_files "tests/fuzz/corpus/$t")
	findings=$(find "$crashes" -maxdepth 1 -type f -newer "$marker" | wc -l | tr -d ' ')
	rm -f "$marker"
	[ "$findings" -eq 0 ] || found_any=1
	line="$t: $runs runs in ${2}s, corpus $after files (+$((after - before)) merged), $findings findings"
	[ "$findings" -eq 0 ] || line="$line in $crashes/"
	echo "fuzz-long: $line"
	summary="$summary$line
"
}

for t in $targets; do
	build "$t"
done
# -set_cover_merge is libFuzzer 15 and later; -merge=1 before
merge=-merge=1
if "$out/plan_fuzz" -help=1 2>&1 | grep -q set_cover_merge; then merge=-set_cover_merge=1; fi
if [ "$long" = 1 ]; then
	for t in $targets; do
		long "$t" "$secs"
	done
	echo "fuzz-long: summary"
	printf '%s' "$summary"
	exit "$found_any"
fi
n=$(echo "$targets" | wc -w)
# -max_total_time=0 would mean forever: each gets a second at least
each=$((secs / n))
[ "$each" -ge 1 ] || each=1
for t in $targets; do
	short "$t" "$each"
done
