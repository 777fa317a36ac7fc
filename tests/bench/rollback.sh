#!/bin/sh
# Wall time of the whole `migrate rollback` process against a local HAProxy
# (the real Debian haproxy, three upstream servers, admin socket), median of
# 20 runs, each after a step back to 50% that is not timed. The target is
# under 50 ms: a hot-fix switch in a published migration took ~10 s.
#
# usage: tests/bench/rollback.sh [RUNS]    (run from the repository root after `make`)
set -eu
runs=${1:-20}
bin=${MIGRATE_BIN:-./migrate}
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
dir=$(mktemp -d /tmp/mg-bench-XXXXXX)
pids=""
# The upstream servers exit when their stdin closes: hold a fifo open for them, close it at the end.
mkfifo "$dir/hold"
exec 3<>"$dir/hold"
cleanup() {
	exec 3>&-
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
servers=""
for name in vm-01 vm-02 k8s; do
	p=$(port)
	python3 tests/servers/upstream.py "$name" 127.0.0.1 "$p" <"$dir/hold" >/dev/null &
	pids="$pids $!"
	servers="$servers $name=127.0.0.1:$p"
done
# shellcheck disable=SC2086
sh tests/sandbox/haproxy.sh -d "$dir" -f "$(port)" -b be $servers &
pids="$pids $!"
i=0
while [ ! -S "$dir/admin.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$dir/admin.sock" ] || { echo "bench: haproxy did not start" >&2; exit 1; }
sleep 0.5 # health checks: every server UP

cat >"$dir/plan.yaml" <<PLAN
version: 1
name: bench
traffic:
  provider: haproxy
  steps: [50, 100]
  bake: 0s
  haproxy: { socket: $dir/admin.sock, backend: be, vm_servers: [vm-01, vm-02], k8s_servers: [k8s] }
PLAN
echo "set weight be/k8s 0" | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.read().encode()); s.recv(4096)' "$dir/admin.sock"

# Baselines measured in the same loop, so machine load hits all three alike:
#  - /bin/true: what starting any process costs here (the floor for a CLI);
#  - the manual way: one `set weight` line per server to the admin socket with
#    socat, what an operator would type instead (if socat is installed).
sock="$dir/admin.sock"
manual() {
	printf 'set weight be/vm-01 1; set weight be/vm-02 1; set weight be/k8s 0\n' |
		socat stdio "unix-connect:$sock" >/dev/null
}
have_socat=$(command -v socat || true)
ns() { date +%s%N; }
t_mig="" t_true="" t_man=""
n=0
while [ $n -lt "$runs" ]; do
	"$bin" -p "$dir/plan.yaml" step --to 50 >/dev/null 2>&1 ||
		"$bin" -p "$dir/plan.yaml" step --to 50 --force --reason bench >/dev/null
	t0=$(ns); "$bin" -p "$dir/plan.yaml" rollback >/dev/null; t1=$(ns)
	t_mig="$t_mig $(((t1 - t0) / 1000))"
	t0=$(ns); /bin/true; t1=$(ns)
	t_true="$t_true $(((t1 - t0) / 1000))"
	if [ -n "$have_socat" ]; then
		t0=$(ns); manual; t1=$(ns)
		t_man="$t_man $(((t1 - t0) / 1000))"
	fi
	n=$((n + 1))
done
# restore what the manual runs changed behind migrate's back
"$bin" -p "$dir/plan.yaml" rollback >/dev/null 2>&1 || true

median() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
ms() { echo "$(($1 / 1000)).$(printf '%01d' $((($1 % 1000) / 100))) ms"; }
m_mig=$(median "$t_mig")
m_true=$(median "$t_true")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "haproxy: $(haproxy -v | head -1 | cut -d' ' -f3); $runs runs each, medians"
echo "  migrate rollback (whole process, read + apply + read back, journal, state): $(ms "$m_mig")"
echo "  /bin/true (starting any process here):                                      $(ms "$m_true")"
echo "  migrate rollback minus process start:                                       $(ms $((m_mig - m_true)))"
if [ -n "$have_socat" ]; then
	m_man=$(median "$t_man")
	echo "  socat, one set-weight line by hand (no read-back, no record):               $(ms "$m_man")"
	echo "  ratio migrate / socat: $(awk "BEGIN {printf \"%.2f\", $m_mig / $m_man}")"
fi
echo "target: migrate rollback under 50 ms"
