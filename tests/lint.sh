#!/bin/sh
# Mechanical checks of the library's rules (docs: README.md, "Contributing"),
# in the spirit of curl's checksrc. Run by `make lint`, which `make test` runs.
#
#   sh tests/lint.sh [ROOT [LIBRARY]]
#
# ROOT is the source tree (default .), LIBRARY the built libmigrate.a
# (default ROOT/build/libmigrate.a; "-" skips the symbol check). Every
# finding is one "file:line: message" line on stderr; the exit status is 1
# when there is any. POSIX sh, awk and nm: no other dependency.
#
# The checks:
#   extern      every extern symbol of libmigrate.a starts with mg_
#   clock       clock_gettime only in lib/core/ (lib/ and cmd/ use lib/clock.h)
#   print       lib/ never prints or exits: no printf/vprintf/puts/putchar/
#               perror/dprintf/vdprintf, no stdout/stderr stream, no write(2)
#               to fd 1 or 2, no exit/_exit/_Exit/quick_exit/abort. Writing to
#               a FILE the library opened itself (fprintf(f, ...)) is fine.
#   include     lib/ includes nothing from cmd/
#   layer       a folder of lib/ includes only the public headers of the layers
#               it may use (docs/architecture.md, "The layers"), and every
#               public header lib/*.h belongs to a layer
#   oneway      no private static now_ms/mono_ms clock (lib/clock.h has one),
#               no mg_error_set(..., MG_ENOMEM, "out of memory") (mg_error_oom)
#   size        no file in lib/ over 1000 lines, except those in
#               tests/lint-allow.txt, which may not grow past the count given
#
# Comments and string literals are blanked before the code checks, so a
# comment about stderr or a message saying "exit" does not trip them.

ROOT=${1:-.}
LIB=${2:-$ROOT/build/libmigrate.a}
MAX_LINES=1000
ALLOW=$ROOT/tests/lint-allow.txt

cd "$ROOT" || exit 2
case $LIB in /* | -) ;; *) LIB=$OLDPWD/$LIB ;; esac
case $ALLOW in /*) ;; *) ALLOW=$OLDPWD/$ALLOW ;; esac
[ -d lib ] || { echo "lint: no lib/ in $ROOT" >&2; exit 2; }

tmp=${TMPDIR:-/tmp}/mg-lint.$$
trap 'rm -f "$tmp".*' EXIT
trap 'exit 2' HUP INT TERM
: >"$tmp.out"

# --- extern: symbols of the archive --------------------------------------------------------
if [ "$LIB" != - ]; then
	if [ ! -f "$LIB" ]; then
		echo "lint: $LIB not built (make lint builds it)" >&2
		exit 2
	fi
	# -l adds file:line from the debug info; without it the archive member is named.
	nm -g --defined-only -l "$LIB" >"$tmp.nm" 2>/dev/null || nm -g --defined-only "$LIB" >"$tmp.nm" || exit 2
	awk -v lib="$LIB" -v here="$PWD/" '
		/:$/ { member = substr($0, 1, length($0) - 1); next }
		NF >= 3 && $2 ~ /^[A-Za-z]$/ {
			sym = $3
			if (sym ~ /^mg_/) next
			where = lib "(" member ")"
			if (NF >= 4) {
				where = $4
				if (substr(where, 1, length(here)) == here) where = substr(where, length(here) + 1)
			}
			printf "%s: extern symbol %s of libmigrate.a does not start with mg_ (make it static or rename it mg_<module>_<verb>)\n", where, sym
		}' "$tmp.nm" >>"$tmp.out" || exit 2
fi

# --- the sources, comments and strings blanked -------------------------------------------
# One line per source line: file, line, the code with comments removed but strings kept,
# and the code with string and character literals emptied too, separated by \001.
find lib cmd -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | LC_ALL=C sort >"$tmp.files"

strip() {
	# shellcheck disable=SC2016
	awk '
	FNR == 1 { incomment = 0 }
	{
		line = $0; code = ""; bare = ""; n = length(line); i = 1
		while (i <= n) {
			c = substr(line, i, 1); c2 = substr(line, i, 2)
			if (incomment) {
				if (c2 == "*/") { incomment = 0; i += 2; code = code " "; bare = bare " " }
				else i++
				continue
			}
			if (c2 == "/*") { incomment = 1; i += 2; continue }
			if (c2 == "//") break
			if (c == "\"" || c == "'\''") {
				q = c; j = i + 1
				while (j <= n) {
					d = substr(line, j, 1)
					if (d == "\\") { j += 2; continue }
					if (d == q) break
					j++
				}
				code = code substr(line, i, j - i + 1)
				bare = bare q q
				i = j + 1
				continue
			}
			code = code c; bare = bare c; i++
		}
		printf "%s\001%d\001%s\001%s\n", FILENAME, FNR, code, bare
	}' "$@"
}
# shellcheck disable=SC2046
[ -s "$tmp.files" ] && strip $(cat "$tmp.files") >"$tmp.src"
: >>"$tmp.src"

# The layers of lib/ (docs/architecture.md): the public headers of each, and the layers each
# folder may use besides its own. A folder not listed here is not checked.
LAYERS=${MG_LINT_LAYERS-"core:error.h,log.h,str.h,clock.h,fs.h,sha256.h,base64.h,units.h,secret.h,http.h,http_fake.h,suggest.h,term.h,weights.h,serve.h,buildinfo.h;\
plan:plan.h,yamllimit.h;state:store.h,storebackend.h,state.h,journal.h,records.h,spool.h;traffic:traffic.h,shift.h;\
gates:metrics.h,promql.h,judge.h,gate.h;fleet:ssh.h,fleet.h;kube:kube.h,kubestore.h,template.h,cluster.h;\
nginx:nginxconf.h,configmap.h;migration:migration.h;release:release.h;report:report.h"}
USES=${MG_LINT_USES-"core:;plan:core;state:core,plan;traffic:core,plan,state;gates:core,plan,state;\
fleet:core,plan,state;kube:core,plan,state,nginx;nginx:core;\
migration:core,plan,state,traffic,gates,fleet,kube,nginx;release:core,plan,state,traffic,gates,fleet,kube,nginx;\
report:core,plan,state,gates"}

# A bare "name.h" is cmd/'s when cmd/ has it and lib/ (the -I directory) does not.
cmdh=$(cd cmd 2>/dev/null && ls -- *.h 2>/dev/null | tr '\n' ' ')
libh=$(cd lib && ls -- *.h 2>/dev/null | tr '\n' ' ')
awk -F '\001' -v cmdh="$cmdh" -v libh="$libh" -v layers="$LAYERS" -v usestr="$USES" '
	BEGIN {
		n = split(cmdh, hs, " ")
		for (k = 1; k <= n; k++) cmdheader[hs[k]] = 1
		n = split(libh, hs, " ")
		for (k = 1; k <= n; k++) libheader[hs[k]] = 1
		# "layer:h1.h,h2.h;..." and "layer:l1,l2;..."
		n = split(layers, ls, ";")
		for (k = 1; k <= n; k++) {
			split(ls[k], kv, ":")
			m = split(kv[2], hs, ",")
			for (q = 1; q <= m; q++) layerof[hs[q]] = kv[1]
		}
		n = split(usestr, ls, ";")
		for (k = 1; k <= n; k++) {
			split(ls[k], kv, ":")
			gsub(/,/, " ", kv[2])
			usesof[kv[1]] = kv[2]
		}
		# every public header belongs to a layer
		n = split(libh, hs, " ")
		for (k = 1; k <= n; k++)
			if (!(hs[k] in layerof) && length(layers))
				printf "lib/%s:1: public header in no layer: add it to LAYERS in tests/lint.sh and to docs/architecture.md\n", hs[k]
	}
	function report(msg) { printf "%s:%d: %s\n", $1, $2, msg }
	{
		file = $1; code = $3; bare = $4
		inlib = file ~ /^lib\//
		incore = file ~ /^lib\/core\//
	}

	# clock: one monotonic clock, in lib/core (lib/clock.h)
	!incore && bare ~ /(^|[^A-Za-z0-9_])clock_gettime[ \t]*\(/ {
		report("clock_gettime outside lib/core/: use mg_clock_ms, mg_now_ms or mg_clock_abstime (lib/clock.h)")
	}

	# print: the library returns errors and logs through mg_log; cmd/ prints
	inlib && bare ~ /(^|[^A-Za-z0-9_>.])(printf|vprintf|puts|putchar|perror|dprintf|vdprintf)[ \t]*\(/ {
		report("printing in lib/: return an mg_error or mg_log it; cmd/ prints")
	}
	inlib && bare ~ /(^|[^A-Za-z0-9_])(stdout|stderr)([^A-Za-z0-9_]|$)/ {
		report("stdout/stderr in lib/: the library does not write to the terminal; cmd/ prints")
	}
	# (dup2(fd, STDOUT_FILENO) in a child before exec is fine: only writing to them is not)
	inlib && bare ~ /(^|[^A-Za-z0-9_])write[ \t]*\([ \t]*([12]|STDOUT_FILENO|STDERR_FILENO)[ \t]*,/ {
		report("write to fd 1 or 2 in lib/: the library does not write to the terminal; cmd/ prints")
	}
	inlib && bare ~ /(^|[^A-Za-z0-9_>.])(exit|_exit|_Exit|quick_exit|abort)[ \t]*\(/ {
		report("exit or abort in lib/: return a negative MG_E* code; only cmd/ decides the exit status")
	}

	# include: lib/ does not know cmd/
	inlib && code ~ /^[ \t]*#[ \t]*include[ \t]*[<"]/ {
		name = code
		sub(/^[ \t]*#[ \t]*include[ \t]*[<"]/, "", name)
		sub(/[>"].*$/, "", name)
		if (name ~ /(^|\/)cmd\// || (name !~ /\// && (name in cmdheader) && !(name in libheader)))
			report("lib/ includes " name " from cmd/: the library never calls into cmd/")
		# layer: a folder uses its own layer and the ones docs/architecture.md allows it
		split(file, parts, "/")
		from = parts[2]
		if (inlib && (from in usesof) && (name in layerof)) {
			to = layerof[name]
			if (to != from && index(" " usesof[from] " ", " " to " ") == 0)
				report("lib/" from "/ includes " name " (layer " to "): " from " may use only " usesof[from] " (docs/architecture.md, \"The layers\")")
		}
	}

	# oneway: a private clock
	bare ~ /(^|[^A-Za-z0-9_])static[^;=]*[^A-Za-z0-9_](now_ms|mono_ms)[ \t]*\(/ {
		report("private clock: use mg_clock_ms or mg_now_ms (lib/clock.h)")
	}

	# oneway: mg_error_set(err, MG_ENOMEM, "out of memory"), possibly over several lines
	# (but in mg_error_oom itself, lib/core/error.c)
	!inset && file != "lib/core/error.c" && bare ~ /(^|[^A-Za-z0-9_])mg_error_set[ \t]*\(/ {
		inset = 1; setfile = file; setline = $2; stmt = ""
	}
	inset {
		stmt = stmt " " code
		if (bare ~ /;/ || file != setfile) {
			if (stmt ~ /MG_ENOMEM[ \t]*,[ \t]*"out of memory"[ \t]*\)/) {
				printf "%s:%d: %s\n", setfile, setline, "mg_error_set(..., MG_ENOMEM, \"out of memory\"): use mg_error_oom(err)"
			}
			inset = 0
		}
	}
' "$tmp.src" >>"$tmp.out" || exit 2

# --- size: no file in lib/ over MAX_LINES lines, but for the allowlist --------------------
if [ ! -f "$ALLOW" ]; then
	: >"$tmp.allow"
	ALLOW=$tmp.allow
fi
find lib -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort | while IFS= read -r f; do
	printf '%s %s\n' "$f" "$(wc -l <"$f" | tr -d ' ')"
done >"$tmp.sizes"
awk -v max="$MAX_LINES" -v allowname="tests/lint-allow.txt" '
	FILENAME == ARGV[1] {
		if ($0 ~ /^[ \t]*(#|$)/) next
		allow[$1] = $2; allowline[$1] = FNR
		next
	}
	{
		size[$1] = $2
		if ($2 <= max) next
		if (!($1 in allow))
			printf "%s:%d: %d lines, over %d: split it (or, for a split in progress, list it in %s)\n", $1, $2, $2, max, allowname
		else if ($2 > allow[$1] + 0)
			printf "%s:%d: %d lines, more than the %d %s allows it: it may shrink, not grow\n", $1, $2, $2, allow[$1], allowname
	}
	END {
		for (f in allow) {
			if (!(f in size))
				printf "%s:%d: %s is listed but does not exist: remove the line\n", allowname, allowline[f], f
			else if (size[f] <= max)
				printf "%s:%d: %s is %d lines now, not over %d: remove the line\n", allowname, allowline[f], f, size[f], max
		}
	}' "$ALLOW" "$tmp.sizes" >>"$tmp.out" || exit 2

if [ -s "$tmp.out" ]; then
	LC_ALL=C sort -t: -k1,1 -k2,2n "$tmp.out" | uniq >"$tmp.sorted"
	cat "$tmp.sorted" >&2
	echo "lint: $(wc -l <"$tmp.sorted" | tr -d ' ') problem(s)" >&2
	exit 1
fi
echo "lint: ok ($(wc -l <"$tmp.files" | tr -d ' ') files, $( [ "$LIB" = - ] && echo "symbols not checked" || echo "$(grep -c ' [A-Z] ' "$tmp.nm") extern symbols"))"
