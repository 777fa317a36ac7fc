#!/bin/sh
# Time from the moment the cluster upstream starts failing to the moment the balancer's own
# read-back shows 0% on the cluster, with `migrate run` (the autopilot) watching, in the sandbox
# of tests/sandbox/sandbox.sh (real HAProxy, real Prometheus scraping it every second, 100
# requests a second) and its demo plan (slo.interval 1s, on_failure rollback). The target is
# under 2 x interval + 1 s = 3 s: one scrape to see the errors, one evaluation to judge them,
# and the rollback itself.
#
# Each round: roll back to 0%, `run --until 25` (untimed), then `run` in the background; about
# 3 s into the step, t0, then every request to the cluster server fails (error_rate=1), and
# `get weight web/k8s1` is polled on the admin socket every 20 ms until it reads 0: t1. t0 is
# taken before the fault is set, so the setting's own cost (~50 ms) counts against migrate.
#
# usage: tests/bench/breach.sh [ROUNDS]    (run from the repository root after `make`)
set -eu
rounds=${1:-5}
bin=${MIGRATE_BIN:-./migrate}
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
case $rounds in '' | *[!0-9]* | 0) echo "bench: ROUNDS must be a whole number above 0" >&2; exit 2 ;; esac
if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
sandbox=tests/sandbox/sandbox.sh
# short: the admin socket lives inside it
dir=$(mktemp -d /tmp/mg-breach-XXXXXX)
run_pid=""
cleanup() {
	if [ -n "$run_pid" ]; then kill -9 "$run_pid" 2>/dev/null || true; fi
	sh "$sandbox" down "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

SANDBOX_SECONDS=${SANDBOX_SECONDS:-600} sh "$sandbox" up "$dir" >"$dir/up.log" 2>&1 ||
	{ cat "$dir/up.log" >&2; echo "bench: the sandbox did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$dir/sandbox.env"
mg() { "$bin" -p "$PLAN" --state-dir "$dir/state" "$@"; }

# wait_zero: polls k8s1's weight every 20 ms; prints the wall time (ms) it first reads 0
wait_zero() {
	"$py" -c '
import socket, sys, time
sock, deadline = sys.argv[1], time.time() + 30
while time.time() < deadline:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(sock)
        s.sendall(b"get weight web/k8s1\n")
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
    finally:
        s.close()
    if out.split() and out.split()[0] == b"0":
        print(int(time.time() * 1000))
        sys.exit(0)
    time.sleep(0.02)
sys.exit("k8s1 still has weight after 30 s: %r" % out)
' "$ADMIN_SOCK"
}

times=""
n=1
while [ "$n" -le "$rounds" ]; do
	sh "$sandbox" fault "$dir" k8s1 error_rate=0 >/dev/null
	mg rollback --reason "bench round $n" >/dev/null
	mg run --until 25 >"$dir/until.log" 2>&1 ||
		{ cat "$dir/until.log" >&2; echo "bench: run --until 25 failed" >&2; exit 1; }
	# not through mg(): $! must be migrate itself, not a subshell
	"$bin" -p "$PLAN" --state-dir "$dir/state" run >"$dir/run.log" 2>&1 &
	run_pid=$!
	sleep 3
	kill -0 "$run_pid" 2>/dev/null || { cat "$dir/run.log" >&2; echo "bench: run ended early" >&2; exit 1; }
	t0=$(date +%s%3N)
	sh "$sandbox" fault "$dir" k8s1 error_rate=1 >/dev/null
	t1=$(wait_zero)
	rc=0
	wait "$run_pid" || rc=$?
	run_pid=""
	if [ "$rc" -ne 1 ] || ! grep -q 'gates fail' "$dir/run.log" || ! grep -q 'rolled back' "$dir/run.log"; then
		cat "$dir/run.log" >&2
		echo "bench: run exited $rc without a gate failure and a rollback" >&2
		exit 1
	fi
	echo "  round $n: failing -> 0% on the cluster in $((t1 - t0)) ms (run exit $rc)"
	times="$times $((t1 - t0))"
	n=$((n + 1))
done
sh "$sandbox" fault "$dir" k8s1 error_rate=0 >/dev/null

median=$(echo "$times" | tr ' ' '\n' | grep . | sort -n |
	awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "haproxy $(haproxy -v | head -1 | cut -d' ' -f3), prometheus $(/usr/bin/prometheus --version 2>&1 | head -1 | cut -d' ' -f3); scrape 1s, slo.interval 1s, 100 rps, 25% on the cluster"
echo "  cluster failing -> balancer read-back at 0%, median of $rounds: $median ms"
echo "target: under 2 x interval + 1 s = 3000 ms"
