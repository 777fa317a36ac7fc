#!/bin/sh
# `migrate history` on the journal of a service's life: 100,000 records
# (about 38 MB: 20 deploys a day at about 10 records each is 70,000 a year,
# before a migration's gate records), generated as the commands write them
# (intent/result pairs, gate records with a whole evaluation as evidence,
# deploy batches). Whole-process medians of RUNS runs, alternated with what
# a user would otherwise type (`tail -n 10` on the file), and peak RSS.
# Targets (issue 20): `history --limit 10` under 50 ms and 20 MB; a full
# `history -o json` in memory independent of the journal's length (the same
# command on a 1,000-record journal is the baseline).
#
# usage: tests/bench/history.sh [RUNS]    (run from the repository root after `make`)
set -eu
runs=${1:-21}
bin=${MIGRATE_BIN:-./migrate}
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
dir=$(mktemp -d /tmp/mg-bench-history-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM

cat >"$dir/plan.yaml" <<'YAML'
version: 1
name: shop
traffic:
  provider: haproxy
  steps: [10, 50, 100]
  bake: 5m
  haproxy:
    address: 127.0.0.1:9
    backend: shop
    vm_servers: [vm1, vm2]
    k8s_servers: [k8s]
slo:
  prometheus: { url: "http://127.0.0.1:9" }
  red: { source: haproxy, backend: shop, max_error_rate: 1% }
YAML

# The same peak-RSS parent as tests/bench/configmap.sh: a small C program, not python.
cat >"$dir/maxrss.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	(void)argc;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[1], argv + 1);
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
		return 1;
	printf("%ld\n", ru.ru_maxrss);
	return 0;
}
C
${CC:-cc} -O2 -o "$dir/maxrss" "$dir/maxrss.c"

python3 - "$bin" "$dir" "$runs" <<'PY'
import json, os, statistics, subprocess, sys, time

bin, dir, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
maxrss = os.path.join(dir, "maxrss")

def journal(path, n):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        t0 = 1795000000000
        for i in range(n):
            kind = i % 10
            t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + i * 60000) // 1000)) + ".000Z"
            rec = {"seq": i + 1, "time": t, "operator": "ci@runner-7", "pid": 4242 + i % 97}
            if kind < 6:
                checks = [{"name": c, "outcome": "pass", "value": 0.0012 * (i % 7), "op": "<=",
                           "threshold": 0.01, "detail": None} for c in ("rate", "errors")]
                rec.update(command="run", action="gate", before={"step": 2, "k8s_percent": 25.0},
                           after={"outcome": "pass", "decision": "bake", "failures": 0},
                           reason="errors 0.0012 <= 0.01 (window 5m)",
                           evidence={"outcome": "pass", "window_s": 300, "checks": checks})
            elif kind < 8:
                rec.update(command="step", action="intent" if kind == 6 else "result",
                           before={"k8s_percent": 10.0, "step": 1},
                           after={"k8s_percent": 25.0, "step": 2}, reason="nightly",
                           evidence={"balancer": "haproxy", "forced": False})
            else:
                rec.update(command="deploy", action="batch", before=None,
                           after={"batch": 1, "of": 5, "hosts": 10, "ok": 10, "failed": 0},
                           reason=None, evidence={"failed": []})
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")

big, small = os.path.join(dir, "big"), os.path.join(dir, "small")
journal(os.path.join(big, "shop", "journal.jsonl"), 100000)
journal(os.path.join(small, "shop", "journal.jsonl"), 1000)
size = os.path.getsize(os.path.join(big, "shop", "journal.jsonl"))
plan = os.path.join(dir, "plan.yaml")

def hist(state, *args):
    return [bin, "history", "-p", plan, "--state-dir", state] + list(args)

def run(argv):
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit("bench: %s exited %d" % (" ".join(argv), r.returncode))
    return dt

def peak_kb(argv):
    return min(int(subprocess.check_output([maxrss] + argv)) for _ in range(3))

ours = hist(big, "--limit", "10")
theirs = ["tail", "-n", "10", os.path.join(big, "shop", "journal.jsonl")]
run(ours); run(theirs)
a, b = [], []
for _ in range(runs):
    a.append(run(ours))
    b.append(run(theirs))
ma, mb = statistics.median(a), statistics.median(b)
full = hist(big, "-o", "json")
fa = statistics.median([run(full) for _ in range(3)])
print("history bench: 100,000 records, %.1f MB of journal" % (size / 1e6))
print("  migrate history --limit 10  median %7.2f ms  (%d runs)  %s" % (
    ma * 1000, runs, "(target < 50 ms: met)" if ma < 0.05 else "(target < 50 ms: MISSED)"))
print("  tail -n 10 (no parsing)     median %7.2f ms  (%d runs)" % (mb * 1000, runs))
p10 = peak_kb(ours)
print("  peak RSS, --limit 10        %d KB  %s" % (
    p10, "(target < 20 MB: met)" if p10 < 20 * 1024 else "(target < 20 MB: MISSED)"))
pbig, psmall = peak_kb(full), peak_kb(hist(small, "-o", "json"))
print("  history -o json, all        median %7.0f ms; peak RSS %d KB on 100,000 records, "
      "%d KB on 1,000 (%s)" % (fa * 1000, pbig, psmall,
                               "independent of length: met" if pbig < psmall + 1024
                               else "grows with the journal: MISSED"))
PY
