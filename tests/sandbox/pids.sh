# Sourced by the sandbox scripts: stopping what they started, and only that.
#
# A pid file holds "PID TOKEN" lines, TOKEN being a piece of the process's
# command line, so a pid the kernel has since given to another process is
# never signalled.

# ours PID TOKEN: PID runs and its command line still contains TOKEN
ours() {
	[ -r "/proc/$1/cmdline" ] || return 1
	{ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "$2"
}

# stop_pids FILE NAME: SIGTERM to every process of FILE that is still ours, up to 2 s for
# them to go, SIGKILL (said on stderr, as NAME) to any left; then FILE is removed.
stop_pids() {
	[ -f "$1" ] || return 0
	while read -r pid token; do
		if ours "$pid" "$token"; then kill -TERM "$pid" 2>/dev/null || true; fi
	done <"$1"
	i=0
	while [ $i -lt 20 ]; do
		left=''
		while read -r pid token; do
			if ours "$pid" "$token"; then left="$left $pid"; fi
		done <"$1"
		[ -n "$left" ] || break
		sleep 0.1
		i=$((i + 1))
	done
	while read -r pid token; do
		if ours "$pid" "$token"; then
			echo "$2: pid $pid did not stop on SIGTERM within 2 s; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done <"$1"
	rm -f "$1"
}
