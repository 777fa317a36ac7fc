#!/bin/sh
# Whole-process time of `migrate validate` on hostile and large plans (issue 12):
# 200 KB of nested "[" (refused by the depth limit before libyaml, which
# takes time quadratic in the nesting: a minute before the limit), a 4 MiB
# plan of 100,000 hosts (the largest accepted) and a 4 MiB + 1 plan (refused
# by size), and a plan with 100,000 servers in two lists (the cross-check
# of slo.red against traffic.haproxy took 38 s before it used hash sets). Prints the median of RUNS runs of each, in milliseconds.
#
# usage: tests/bench/hostile.sh [RUNS]    (run from the repository root after `make`)
# Not part of `make bench`.
set -eu
runs=${1:-5}
bin=${MIGRATE_BIN:-./migrate}
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
case $runs in '' | *[!0-9]* | 0) echo "bench: RUNS must be a whole number above 0" >&2; exit 2 ;; esac
if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
dir=$(mktemp -d /tmp/mg-bench-hostile-XXXXXX)
trap 'rm -rf "$dir"' EXIT

"$py" - "$dir" <<'PY'
import sys
d = sys.argv[1]
open(f"{d}/nested.yaml", "w").write("version: 1\nvms: " + "[\n" * 100000)
s = ["version: 1\nname: big\nvms:\n  user: deploy\n  path: /srv/app\n  hosts:\n"]
n = len(s[0])
for i in range(100000):
    line = f"  - {{name: h{i}, address: 10.{i // 65536}.{i // 256 % 256}.{i % 256}}}\n"
    s.append(line)
    n += len(line)
while n < 4 * 1024 * 1024 - 80:
    s.append("# " + "x" * 60 + "\n")
    n += 63
text = "".join(s)
open(f"{d}/big.yaml", "w").write(text)
open(f"{d}/over.yaml", "w").write(text + "#" * (4 * 1024 * 1024 + 1 - len(text)))
# 100,000 servers in traffic.haproxy and slo.red, 11,112 of them only in slo.red
vs = "".join(f"\n      - v{i}" for i in range(100000))
open(f"{d}/servers.yaml", "w").write(
    "version: 1\nname: shop\ntraffic:\n  provider: haproxy\n  steps: [10, 50, 100]\n"
    "  bake: 5m\n  haproxy:\n    address: 127.0.0.1:9\n    backend: shop\n"
    f"    vm_servers:{vs}\n    k8s_servers: [k8s]\nslo:\n"
    "  prometheus: { url: \"http://127.0.0.1:9\" }\n  red:\n    source: haproxy\n"
    f"    backend: shop\n    max_error_rate: 1%\n    vm_servers:{vs.replace('v1', 'w1')}\n")
PY

now_ms() { "$py" -c 'import time; print(int(time.monotonic() * 1000))'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for plan in nested big over servers; do
	i=0
	: >"$dir/times"
	while [ "$i" -lt "$runs" ]; do
		t0=$(now_ms)
		"$bin" validate -p "$dir/$plan.yaml" >/dev/null 2>"$dir/err" || true
		t1=$(now_ms)
		echo $((t1 - t0)) >>"$dir/times"
		i=$((i + 1))
	done
	printf '%-8s %6s ms  %s\n' "$plan" "$(median <"$dir/times")" "$(tail -n 1 "$dir/err" | cut -c1-90)"
done
