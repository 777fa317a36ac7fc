#!/bin/sh
# The kubernetes state backend (state.backend: kubernetes) against the Kubernetes API test
# server (tests/servers/kubeapi.py over TLS on loopback) and a local HAProxy, beside the
# same commands with the local state directory:
#  - `migrate rollback` and `migrate step`, whole process, median of RUNS runs each (the
#    untimed step or rollback in between puts the balancer back);
#  - how long a second operator waits for the lock after the holder is killed: a
#    `migrate run` holds the Lease (state.lease 2s), is killed with SIGKILL, and another
#    process tries `migrate step` every 100 ms until the lock is no longer refused (exit 3).
# Goals (issue 14): rollback under 100 ms, lock takeover within lease + 1 s.
#
# usage: tests/bench/kubestate.sh [RUNS]   (from the repository root after `make`)
set -eu
runs=${1:-20}
bin=${MIGRATE_BIN:-./migrate}
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
dir=$(mktemp -d /tmp/mg-bench-kube-XXXXXX)
pids=""
mkfifo "$dir/hold"
exec 3<>"$dir/hold"
cleanup() {
	exec 3>&-
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	sh tests/sandbox/kubeapi.sh down "$dir/kube" >/dev/null 2>&1 || true
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
sh tests/sandbox/kubeapi.sh up "$dir/kube" default >/dev/null
i=0
while [ ! -S "$dir/admin.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$dir/admin.sock" ] || { echo "bench: haproxy did not start" >&2; exit 1; }
sleep 0.5 # health checks: every server UP

# One plan per backend; the same balancer. The gates of `run` ask a Prometheus that is not
# there (a closed port): inconclusive, so the run holds its step (and the Lease) until killed.
plan() { # NAME STATE-SECTION
	cat >"$dir/$1.yaml" <<PLAN
version: 1
name: $1
traffic:
  provider: haproxy
  steps: [50, 100]
  bake: 1s
  haproxy: { socket: $dir/admin.sock, backend: be, vm_servers: [vm-01, vm-02], k8s_servers: [k8s] }
slo:
  prometheus: { url: "http://127.0.0.1:$(port)", timeout: 200ms }
  interval: 1s
  window: 30s
  checks: [{ name: up, query: "vector(1)", min: 0 }]
$2
PLAN
}
plan local "state: { dir: $dir/state }"
plan kube "state: { backend: kubernetes, kubernetes: { kubeconfig: $dir/kube/kubeconfig, namespace: default }, lease: 2s }"
for p in local kube; do
	"$bin" -p "$dir/$p.yaml" validate >/dev/null || { "$bin" -p "$dir/$p.yaml" validate; exit 1; }
done
echo "set weight be/k8s 0" | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.read().encode()); s.recv(4096)' "$dir/admin.sock"

ns() { date +%s%N; }
median() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
ms() { echo "$(($1 / 1000)).$(printf '%01d' $((($1 % 1000) / 100))) ms"; }
# step and rollback alternate, each timed, the two backends in the same loop so machine load
# hits both alike. The step is forced: its gates ask the absent Prometheus.
t_rb_local="" t_rb_kube="" t_st_local="" t_st_kube=""
n=0
while [ $n -lt "$runs" ]; do
	for p in local kube; do
		t0=$(ns)
		"$bin" -p "$dir/$p.yaml" step --to 50 --force --reason bench >/dev/null
		t1=$(ns)
		"$bin" -p "$dir/$p.yaml" rollback >/dev/null
		t2=$(ns)
		eval "t_st_$p=\"\$t_st_$p $(((t1 - t0) / 1000))\""
		eval "t_rb_$p=\"\$t_rb_$p $(((t2 - t1) / 1000))\""
	done
	n=$((n + 1))
done

# Lock takeover: run holds the Lease (renewed every third of 2 s), SIGKILL, then a second
# operator (another HOME) tries every 100 ms. Measured from the kill to the first attempt
# that is not refused for the lock; the Lease's last renewal was at most 2/3 s before.
"$bin" -p "$dir/kube.yaml" step --to 50 --force --reason bench >/dev/null
takeovers=""
k=0
while [ $k -lt 3 ]; do
	"$bin" -p "$dir/kube.yaml" run >"$dir/run.log" 2>&1 &
	run_pid=$!
	i=0
	until grep -q 'inconclusive' "$dir/run.log" 2>/dev/null || [ $i -ge 100 ]; do sleep 0.05; i=$((i + 1)); done
	grep -q 'inconclusive' "$dir/run.log" || { echo "bench: run did not start:" >&2; cat "$dir/run.log" >&2; exit 1; }
	kill -9 "$run_pid"
	wait "$run_pid" 2>/dev/null || true
	t0=$(ns)
	tries=0
	while :; do
		rc=0
		HOME="$dir" "$bin" -p "$dir/kube.yaml" step --to 100 --force --reason takeover >/dev/null 2>&1 || rc=$?
		if [ "$rc" -ne 3 ]; then
			[ "$rc" -eq 0 ] || { echo "bench: the step after the takeover exited $rc" >&2; exit 1; }
			break
		fi
		tries=$((tries + 1))
		[ $tries -ge 100 ] && { echo "bench: lock still refused after 100 tries" >&2; exit 1; }
		sleep 0.1
	done
	t1=$(ns)
	takeovers="$takeovers $(((t1 - t0) / 1000))"
	"$bin" -p "$dir/kube.yaml" step --to 50 --force --reason bench >/dev/null 2>&1 ||
		"$bin" -p "$dir/kube.yaml" rollback --to 50 >/dev/null
	k=$((k + 1))
done
"$bin" -p "$dir/kube.yaml" rollback >/dev/null 2>&1 || true

echo "machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "kubernetes backend: tests/servers/kubeapi.py over TLS on loopback; $runs runs each, medians"
for p in local kube; do
	eval "rb=\$t_rb_$p; st=\$t_st_$p"
	echo "  $p: migrate rollback $(ms "$(median "$rb")"), migrate step $(ms "$(median "$st")")"
done
r=$(median "$t_rb_kube")
l=$(median "$t_rb_local")
echo "  ratio rollback kubernetes / local: $(awk "BEGIN {printf \"%.2f\", $r / $l}")"
echo "  lock takeover after SIGKILL of the holder (state.lease 2s), each of 3:$(for t in $takeovers; do printf ' %s' "$(ms "$t")"; done)"
echo "goals: rollback under 100 ms; takeover within lease + 1 s (3000 ms)"
