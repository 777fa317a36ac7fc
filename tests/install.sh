#!/bin/sh
# make install, checked (issue 17): `make install-check`, run by `make test`.
#
#   - `make install DESTDIR=...` installs exactly the binary, the two man pages, the two
#     completions and share/migrate/'s templates, plans and examples, with their modes; PREFIX
#     moves all of it;
#   - `MANWIDTH=80 man --warnings -l` renders both pages with nothing on stderr (and with every
#     groff warning on, in a UTF-8 and in the C locale); migrate(1) shows every option of every
#     command's --help, migrate-plan(5) every key of docs/plan.md's key reference; plan2man.awk
#     fails on Markdown it does not know;
#   - the options each command parses are the ones its help shows (MG_CHECK_OPTIONS);
#   - the bash completion, sourced in a non-interactive bash, completes commands, options,
#     option arguments (plan files, -o's words, the plan's steps) and subcommands; bash-
#     completion's own loader finds it where it was installed;
#   - the zsh completion parses, compinit registers it, and in a terminal it completes;
#   - `make uninstall DESTDIR=...` leaves no file behind.
#
# From the repository root, after `make` (MAKE and BUILD as the Makefile passes them). Ends with
# "install: N passed, M failed"; exit 1 if any failed. About 10 seconds.
set -u

MAKE=${MAKE:-make}
BUILD=${BUILD:-build}
SRC=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/migrate-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
passed=0 failed=0

ok() {
	passed=$((passed + 1))
	echo "ok: $1"
}
bad() {
	failed=$((failed + 1))
	echo "FAIL: $1"
	if [ $# -gt 1 ] && [ -s "$2" ]; then sed 's/^/    /' "$2" | head -40; fi
}

root=$tmp/root
pfx=/usr/local
if $MAKE --no-print-directory -s install DESTDIR="$root" BUILD="$BUILD" >"$tmp/install.log" 2>&1; then
	ok "make install DESTDIR=$root"
else
	bad "make install DESTDIR=$root" "$tmp/install.log"
	echo "install: $passed passed, $failed failed"
	exit 1
fi

# ---- exactly these files, with these modes ----
{
	echo "755 $pfx/bin/migrate"
	echo "644 $pfx/share/man/man1/migrate.1"
	echo "644 $pfx/share/man/man5/migrate-plan.5"
	echo "644 $pfx/share/bash-completion/completions/migrate"
	echo "644 $pfx/share/zsh/site-functions/_migrate"
	# the tracked templates, plans and examples, but the demo's (they need tests/sandbox/)
	if git rev-parse --git-dir >/dev/null 2>&1; then
		git ls-files templates plans examples
	else
		find templates plans examples -type f
	fi | grep -v -e '^examples/demo\.sh$' -e '^examples/app/' -e '^plans/demo\.yaml$' \
		-e '^plans/demo-deploy\.yaml$' | while read -r f; do
		if [ -x "$f" ]; then m=755; else m=644; fi
		echo "$m $pfx/share/migrate/$f"
	done
} | LC_ALL=C sort >"$tmp/want"
(cd "$root" && find . ! -type d -exec stat -c '%a %n' {} + | sed 's| \./| /|') |
	LC_ALL=C sort >"$tmp/got"
if diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
	ok "the installed files are exactly the $(wc -l <"$tmp/want") expected, with their modes"
else
	bad "installed files differ from the expected list (- expected, + installed)" "$tmp/diff"
fi

bin=$root$pfx/bin/migrate
if "$bin" --version | grep -q '^migrate '; then ok "the installed binary runs"; else bad "the installed binary does not run"; fi
if "$bin" validate "$root$pfx/share/migrate/plans/example.yaml" >"$tmp/v.out" 2>&1; then
	ok "the installed example plan validates where it was installed"
else
	bad "migrate validate share/migrate/plans/example.yaml" "$tmp/v.out"
fi

# ---- the man pages ----
man1=$root$pfx/share/man/man1/migrate.1
man5=$root$pfx/share/man/man5/migrate-plan.5
if ! command -v man >/dev/null 2>&1; then
	bad "man is not installed (make deps installs man-db)"
else
	for page in "$man1" "$man5"; do
		name=${page##*/}
		MANWIDTH=80 man --warnings -l "$page" >"$tmp/$name.txt" 2>"$tmp/$name.err"
		rc=$?
		if [ $rc -eq 0 ] && [ ! -s "$tmp/$name.err" ] && grep -q '^NAME' "$tmp/$name.txt"; then
			ok "MANWIDTH=80 man --warnings -l $name: rendered, stderr empty"
		else
			bad "MANWIDTH=80 man --warnings -l $name (exit $rc)" "$tmp/$name.err"
		fi
		# every groff warning, on the UTF-8 and the ASCII device
		for loc in C.UTF-8 C; do
			LC_ALL=$loc MANWIDTH=80 man --warnings=w -l "$page" >/dev/null 2>"$tmp/$name.w"
			if [ ! -s "$tmp/$name.w" ]; then
				ok "LC_ALL=$loc man --warnings=w -l $name: no warning"
			else
				bad "LC_ALL=$loc man --warnings=w -l $name" "$tmp/$name.w"
			fi
		done
	done

	# migrate(1) against --help: a section per command, every option any --help shows
	cmds=$("$bin" help | sed -n '/^Commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p')
	for c in $cmds; do echo "   $c"; done >"$tmp/want1"
	for c in $cmds; do "$bin" help "$c"; done | grep -o -- '--[a-z0-9][a-z0-9-]*' >>"$tmp/want1"
	LC_ALL=C sort -u "$tmp/want1" -o "$tmp/want1"
	{ grep -o -- '--[a-z0-9][a-z0-9-]*' "$tmp/migrate.1.txt"; grep '^   [a-z]' "$tmp/migrate.1.txt"; } |
		LC_ALL=C sort -u >"$tmp/got1"
	LC_ALL=C comm -23 "$tmp/want1" "$tmp/got1" >"$tmp/missing"
	if [ -n "$cmds" ] && [ ! -s "$tmp/missing" ]; then
		ok "migrate(1) has a section for each of the $(echo $cmds | wc -w) commands and every option their --help shows"
	else
		bad "migrate(1) lacks what --help shows" "$tmp/missing"
	fi

	# migrate-plan(5) against docs/plan.md: every key of the key reference's tables
	sed -n '/^## Key reference/,/^## /s/^| `\([^`]*\)` |.*/\1/p' docs/plan.md | LC_ALL=C sort -u >"$tmp/keys"
	grep -oF -f "$tmp/keys" "$tmp/migrate-plan.5.txt" | LC_ALL=C sort -u >"$tmp/got5"
	LC_ALL=C comm -23 "$tmp/keys" "$tmp/got5" >"$tmp/missing"
	if [ -s "$tmp/keys" ] && [ ! -s "$tmp/missing" ]; then
		ok "migrate-plan(5) shows all $(wc -l <"$tmp/keys") keys of docs/plan.md's key reference"
	else
		bad "migrate-plan(5) lacks keys of docs/plan.md" "$tmp/missing"
	fi
fi

# plan2man.awk refuses what it cannot convert instead of dropping it
sed 's/^The VM fleet the service runs on today\.$/1. a numbered list/' docs/plan.md >"$tmp/bad1.md"
sed 's/^| `vms.user` | string | yes | — | any | `user: deploy` |$/| `vms.user` | string | yes | any | `user: deploy` |/' \
	docs/plan.md >"$tmp/bad2.md"
for b in bad1 bad2; do
	if cmp -s docs/plan.md "$tmp/$b.md"; then
		bad "$b: docs/plan.md no longer has the line this test breaks"
	elif LC_ALL=C awk -v version=t -v date=t -f docs/plan2man.awk "$tmp/$b.md" >/dev/null 2>"$tmp/$b.err"; then
		bad "plan2man.awk accepted a broken docs/plan.md ($b)"
	elif grep -q "$b.md:[0-9]*: " "$tmp/$b.err"; then
		ok "plan2man.awk fails on a broken docs/plan.md ($b: $(cut -d' ' -f2- "$tmp/$b.err"))"
	else
		bad "plan2man.awk failed without file:line ($b)" "$tmp/$b.err"
	fi
done

# ---- parsed options against shown ones ----
: >"$tmp/check"
# every command of the table, and each subcommand (state push, state pull) on its own
bashc=$root$pfx/share/bash-completion/completions/migrate
bash --norc --noprofile -c 'source "$1"; for c in $_migrate_commands; do _migrate_words "$c"
	if [[ $_migrate_sub ]]; then for s in $_migrate_sub; do echo "$c $s"; done; else echo "$c"; fi; done' \
	bash "$bashc" >"$tmp/commands"
while read -r c s; do
	MG_CHECK_OPTIONS=1 "$bin" "$c" ${s:+"$s"} --help >/dev/null 2>>"$tmp/check" ||
		echo "$c${s:+ $s} --help failed" >>"$tmp/check"
done <"$tmp/commands"
if [ "$(wc -l <"$tmp/commands")" -lt 2 ]; then echo "no command list" >>"$tmp/check"; fi
if [ ! -s "$tmp/check" ]; then
	ok "each of $(wc -l <"$tmp/commands") commands parses exactly the options its --help shows (MG_CHECK_OPTIONS)"
else
	bad "options parsed and shown differ" "$tmp/check"
fi

# ---- bash completion ----
cat >"$tmp/bash-test" <<'EOF'
source "$1" || exit 1
PATH=$2:$PATH
plan=$3
cd "$4" || exit 1
fails=0
# t WANT WORD...: COMPREPLY after completing the last word must be WANT (sorted, one line)
t() {
	local want=$1 got
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_migrate migrate "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	got=$(printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort -u | tr '\n' ' ')
	got=${got% }
	if [[ $got == "$want" ]]; then
		echo "  ok: [${*:2}] -> $got"
	else
		echo "  FAIL: [${*:2}] -> \"$got\", want \"$want\""
		fails=$((fails + 1))
	fi
}
[[ $(complete -p migrate) == "complete -F _migrate migrate" ]] || { echo "  FAIL: complete -p migrate"; fails=$((fails + 1)); }
t "state status step" migrate st
t "render report resume rollback run" migrate r
t "--accept-new-host-keys" migrate -p x.yaml rollback --ac
t "--adopt --allow-skew" migrate step --a
t "--to" migrate step --t
t "--leader-elect" migrate run --le
t "--plan" migrate step --pl
t "--version" migrate --vers
t "" migrate step --vers
t "json text" migrate -o ""
t "json text" migrate step --output = ""
t "json yaml" migrate configmap -o ""
t "html json svg" migrate report -o ""
t "10 100 25 50 75" migrate -p "$plan" step --to ""
t "50" migrate --plan = "$plan" run --until 5
t "a.yaml b.yml sub" migrate -p ""
t "a.yaml b.yml sub" migrate validate a.yaml ""
t "pull push" migrate state ""
t "sub" migrate state pull ""
t "render report resume rollback run" migrate help r
exit $((fails > 0))
EOF
mkdir -p "$tmp/cwd/sub" && : >"$tmp/cwd/a.yaml" && : >"$tmp/cwd/b.yml" && : >"$tmp/cwd/c.txt"
if bash --norc --noprofile "$tmp/bash-test" "$bashc" "$root$pfx/bin" "$SRC/plans/example.yaml" \
	"$tmp/cwd" >"$tmp/bash.out" 2>&1; then
	ok "bash completion: commands, options, arguments, subcommands ($(grep -c '  ok' "$tmp/bash.out") cases)"
else
	bad "bash completion" "$tmp/bash.out"
fi
if [ -r /usr/share/bash-completion/bash_completion ]; then
	XDG_DATA_DIRS=$root$pfx/share bash --norc --noprofile -c \
		'source /usr/share/bash-completion/bash_completion && __load_completion migrate && complete -p migrate' \
		>"$tmp/loader.out" 2>&1
	if grep -qx 'complete -F _migrate migrate' "$tmp/loader.out"; then
		ok "bash-completion's loader finds share/bash-completion/completions/migrate"
	else
		bad "bash-completion's loader did not load the installed completion" "$tmp/loader.out"
	fi
else
	bad "bash-completion is not installed (make deps installs it)"
fi

# ---- zsh completion ----
zshc=$root$pfx/share/zsh/site-functions/_migrate
if command -v zsh >/dev/null 2>&1; then
	if zsh -n "$zshc" 2>"$tmp/zsh.err"; then ok "zsh -n _migrate"; else bad "zsh -n _migrate" "$tmp/zsh.err"; fi
	zsh -f -c 'fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -d "$2"; print -r -- "$_comps[migrate]"' \
		zsh "${zshc%/*}" "$tmp/zcompdump" >"$tmp/zsh.out" 2>&1
	if [ "$(cat "$tmp/zsh.out")" = _migrate ]; then
		ok "zsh compinit registers _migrate for migrate"
	else
		bad "zsh compinit did not register _migrate" "$tmp/zsh.out"
	fi
	# In a terminal (zpty): what a person sees after TAB.
	cat >"$tmp/zsh-test" <<'EOF'
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PS1='> '; fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -C -d ${(q)2}; path=(${(q)3} \$path); cd ${(q)4}"
fails=0
t() { # t LINE WORD...: after LINE and TAB, the screen shows each WORD
	local out= chunk w missing i
	zpty -w -n z "$1"$'\t'
	for ((i = 0; i < 50; i++)); do
		zpty -rt z chunk 2>/dev/null && out+=$chunk
		missing=0
		for w in "${@:2}"; do [[ $out == *$w* ]] || missing=1; done
		((missing)) || break
		sleep 0.1
	done
	if ((missing)); then
		print -r -- "  FAIL: [$1] did not show ${*:2}"; fails=$((fails + 1))
	else
		print -r -- "  ok: [$1] shows ${*:2}"
	fi
	zpty -w -n z $'\C-c'; sleep 0.2; while zpty -rt z chunk 2>/dev/null; do :; done
}
t 'migrate st' state status step
t 'migrate step --' --adopt --allow-skew --to --reason
t 'migrate configmap -o ' json yaml
t "migrate -p ${(q)5} run --until " 10 25 75 100
zpty -d z
exit $((fails > 0))
EOF
	if timeout 60 zsh -f "$tmp/zsh-test" "${zshc%/*}" "$tmp/zcompdump" "$root$pfx/bin" "$tmp/cwd" \
		"$SRC/plans/example.yaml" >"$tmp/zpty.out" 2>&1; then
		ok "zsh completion in a terminal: commands, options, -o's words, the plan's steps"
	elif [ $? -eq 2 ]; then
		echo "skip: zsh has no zpty module; the zsh completion was only parsed and registered"
	else
		bad "zsh completion in a terminal" "$tmp/zpty.out"
	fi
else
	bad "zsh is not installed (make deps installs it)"
fi

# ---- PREFIX, then uninstall ----
if $MAKE --no-print-directory -s install DESTDIR="$tmp/opt" PREFIX=/opt/migrate BUILD="$BUILD" >"$tmp/opt.log" 2>&1 &&
	[ -x "$tmp/opt/opt/migrate/bin/migrate" ] && [ -f "$tmp/opt/opt/migrate/share/man/man1/migrate.1" ] &&
	[ "$(cd "$tmp/opt" && find . ! -type d | grep -cv '^\./opt/migrate/')" -eq 0 ]; then
	ok "PREFIX=/opt/migrate puts everything under /opt/migrate"
else
	bad "make install PREFIX=/opt/migrate" "$tmp/opt.log"
fi
for d in "$root" "$tmp/opt"; do
	if [ "$d" = "$root" ]; then p=; else p=PREFIX=/opt/migrate; fi
	$MAKE --no-print-directory -s uninstall DESTDIR="$d" $p BUILD="$BUILD" >"$tmp/un.log" 2>&1 ||
		bad "make uninstall DESTDIR=$d $p" "$tmp/un.log"
	left=$(cd "$d" && find . ! -type d; find . -type d -name migrate -path '*/share/migrate')
	if [ -z "$left" ]; then
		ok "make uninstall DESTDIR=$d $p leaves no file behind"
	else
		echo "$left" >"$tmp/left"
		bad "make uninstall DESTDIR=$d $p left these behind" "$tmp/left"
	fi
done

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
