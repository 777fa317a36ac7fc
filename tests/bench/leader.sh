#!/bin/sh
# Leader election (`migrate run --leader-elect`, issue 15) against the Kubernetes API test
# server (tests/servers/kubeapi.py over TLS on loopback) and a local HAProxy: how long the
# plan goes without a leader when the leader is
#  - killed with SIGKILL: the standby takes over once the lease runs out (state.lease 2s and
#    the default 15s), at its next look (a fifth of the lease, at most 1 s);
#  - sent SIGTERM: the leader releases the Lease, and the standby takes it at its next look.
# Measured from the signal to the line "leading plan" of the standby (its output polled
# every 10 ms), RUNS rounds each; each round's new leader is the next round's victim.
# Goals (issue 15): kill -9 within lease + 1 slo.interval; SIGTERM under 2 s.
#
# usage: tests/bench/leader.sh [RUNS]   (from the repository root after `make`)
set -eu
runs=${1:-5}
bin=${MIGRATE_BIN:-./migrate}
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
dir=$(mktemp -d /tmp/mg-bench-leader-XXXXXX)
pids=""
mkfifo "$dir/hold"
exec 3<>"$dir/hold"
cleanup() {
	exec 3>&-
	for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
	sh tests/sandbox/kubeapi.sh down "$dir/kube" >/dev/null 2>&1 || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT INT TERM

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
sh tests/sandbox/kubeapi.sh up "$dir/kube" default >/dev/null
i=0
while [ ! -S "$dir/admin.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$dir/admin.sock" ] || { echo "bench: haproxy did not start" >&2; exit 1; }
sleep 0.5

# The gates ask a Prometheus that is not there: inconclusive, so a leader holds its first
# step (and the Lease) until it is signalled; the stall pause (3 x bake) is far beyond a round.
plan() { # NAME LEASE
	cat >"$dir/$1.yaml" <<PLAN
version: 1
name: $1
traffic:
  provider: haproxy
  steps: [50, 100]
  bake: 60s
  haproxy: { socket: $dir/admin.sock, backend: be, vm_servers: [vm-01, vm-02], k8s_servers: [k8s] }
slo:
  prometheus: { url: "http://127.0.0.1:$(port)", timeout: 200ms }
  interval: 1s
  window: 30s
  checks: [{ name: up, query: "vector(1)", min: 0 }]
state: { backend: kubernetes, kubernetes: { kubeconfig: $dir/kube/kubeconfig, namespace: default }, lease: $2 }
PLAN
	"$bin" -p "$dir/$1.yaml" validate >/dev/null || { "$bin" -p "$dir/$1.yaml" validate; exit 1; }
}
plan short 2s
plan long 15s

ns() { date +%s%N; }
median() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
ms() { echo "$(($1 / 1000)).$(printf '%01d' $((($1 % 1000) / 100))) ms"; }
wait_for() { # FILE TEXT: up to 30 s
	i=0
	until grep -q "$2" "$1" 2>/dev/null || [ $i -ge 3000 ]; do sleep 0.01; i=$((i + 1)); done
	grep -q "$2" "$1" || { echo "bench: no \"$2\" in $1:" >&2; cat "$1" >&2; exit 1; }
}

n=0
start() { # PLAN: a new `run --leader-elect`, its output in $dir/$n.out; $last is its pid
	n=$((n + 1))
	"$bin" -p "$dir/$1.yaml" run --leader-elect >"$dir/$n.out" 2>&1 &
	last=$!
	pids="$pids $last"
}

rounds() { # PLAN SIGNAL: prints the takeover times in microseconds
	start "$1"
	leader=$last
	wait_for "$dir/$n.out" "leading plan"
	out=""
	k=0
	while [ $k -lt "$runs" ]; do
		start "$1"
		wait_for "$dir/$n.out" "standby: "
		t0=$(ns)
		kill "-$2" "$leader"
		wait_for "$dir/$n.out" "leading plan"
		t1=$(ns)
		wait "$leader" 2>/dev/null || true
		out="$out $(((t1 - t0) / 1000))"
		leader=$last
		k=$((k + 1))
	done
	kill -9 "$leader" 2>/dev/null || true
	wait "$leader" 2>/dev/null || true
	"$bin" -p "$dir/$1.yaml" unlock --force --reason bench >/dev/null 2>&1 || true
	"$bin" -p "$dir/$1.yaml" rollback >/dev/null 2>&1 || true
	"$bin" -p "$dir/$1.yaml" step --to 50 --force --reason bench >/dev/null 2>&1 || true
	echo "$out"
}

# each plan starts from its first step taken by hand, so no round begins with a move; the
# two plans share the balancer, so one is rolled back before the other steps
echo "set weight be/k8s 0" | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.read().encode()); s.recv(4096)' "$dir/admin.sock"
"$bin" -p "$dir/short.yaml" step --to 50 --force --reason bench >/dev/null
kill_short=$(rounds short KILL)
term_short=$(rounds short TERM)
"$bin" -p "$dir/short.yaml" rollback >/dev/null
"$bin" -p "$dir/long.yaml" step --to 50 --force --reason bench >/dev/null
term_long=$(rounds long TERM)
kill_long=$(rounds long KILL)

list() { for t in $1; do printf ' %s' "$(ms "$t")"; done; }
echo "machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "leader election over tests/servers/kubeapi.py (TLS, loopback); $runs takeovers each, medians"
echo "  SIGKILL, lease 2s:  $(ms "$(median "$kill_short")")  (each:$(list "$kill_short"))"
echo "  SIGKILL, lease 15s: $(ms "$(median "$kill_long")")  (each:$(list "$kill_long"))"
echo "  SIGTERM, lease 2s:  $(ms "$(median "$term_short")")  (each:$(list "$term_short"))"
echo "  SIGTERM, lease 15s: $(ms "$(median "$term_long")")  (each:$(list "$term_long"))"
echo "goals: SIGKILL within lease + 1 slo.interval (3000 ms, 16000 ms); SIGTERM under 2000 ms"
