#!/bin/sh
# `migrate configmap` (parse + lint + render, --no-verify) against `nginx -t`
# on the same generated reverse-proxy tree: 2,000 locations and 200
# upstreams of three VM addresses each over ten files
# (tests/bench/gen-nginx-tree.py). Medians of RUNS runs each, alternated so
# machine load hits both alike, and their ratio; then peak RSS against the
# input size. Targets: faster than nginx -t; memory under 4x the input,
# counted as peak RSS above the same command's own baseline: `migrate
# configmap` on the smallest tree the generator makes (one location, one
# upstream), which runs the same code (include globs, lint rules, render,
# YAML) and so touches the same code and library pages, which no input
# changes. (`migrate --version` touched a few hundred KB less of them, which
# was then counted as memory for the tree.) The input is counted the same
# way: the difference of the two trees' sizes.
#
# usage: tests/bench/configmap.sh [RUNS]    (run from the repository root after `make`)
set -eu
runs=${1:-21}
bin=${MIGRATE_BIN:-./migrate}
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
[ -x "$nginx" ] || { echo "bench: nginx is not installed (make deps)" >&2; exit 2; }
dir=$(mktemp -d /tmp/mg-bench-cm-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM

python3 tests/bench/gen-nginx-tree.py "$dir/tree" --locations 2000 --upstreams 200
python3 tests/bench/gen-nginx-tree.py "$dir/base" --locations 1 --upstreams 1

# Peak RSS from wait4(): a forked child's ru_maxrss also counts the parent it was forked
# from (Linux keeps the old image's high-water mark across exec), so the parent is this
# small C program, not python.
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

python3 - "$bin" "$nginx" "$dir/tree" "$runs" "$dir/maxrss" "$dir/base" <<'PY'
import os, statistics, subprocess, sys, time

bin, nginx, tree, runs, maxrss = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
basetree = sys.argv[6]
conf = os.path.join(tree, "nginx.conf")

def tree_files(t):
    return [os.path.join(d, f) for d, _, fs in os.walk(t) for f in fs]

def configmap(t):
    return [bin, "configmap", os.path.join(t, "nginx.conf"), "--name", "bench", "--no-verify",
            "--allow-errors"]

files = tree_files(tree)
size = sum(os.path.getsize(f) for f in files)
base_size = sum(os.path.getsize(f) for f in tree_files(basetree))
ours = configmap(tree)
theirs = [nginx, "-t", "-q", "-p", tree + "/", "-c", conf]

def run(argv):
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit("bench: %s exited %d" % (" ".join(argv), r.returncode))
    return dt

def peak_rss_kb(argv):
    return min(int(subprocess.check_output([maxrss] + argv)) for _ in range(3))

run(ours); run(theirs)  # warm the page cache
a, b = [], []
for _ in range(runs):
    a.append(run(ours))
    b.append(run(theirs))
ma, mb = statistics.median(a), statistics.median(b)
out = subprocess.run(ours, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout

print("configmap bench: %d locations, 200 upstreams, %d files, %d bytes of configuration"
      % (2000, len(files), size))
print("  migrate configmap --no-verify  median %7.2f ms  (%d runs; %d bytes of YAML out)"
      % (ma * 1000, runs, len(out)))
print("  nginx -t                       median %7.2f ms  (%d runs)" % (mb * 1000, runs))
print("  ratio nginx -t / migrate       %.1fx %s" % (mb / ma, "(faster: target met)" if ma < mb
                                                   else "(SLOWER than nginx -t: target missed)"))
base = peak_rss_kb(configmap(basetree))
peak = peak_rss_kb(ours)
ngx = peak_rss_kb(theirs)
extra = (peak - base) * 1024
input = size - base_size
print("  peak RSS: migrate %d KB (baseline %d KB on a %d-byte tree, so %d KB for the tree), "
      "nginx -t %d KB" % (peak, base, base_size, peak - base, ngx))
print("  memory for the tree / input    %.1fx %s" % (extra / input, "(target < 4x: met)"
                                                     if extra < 4 * input else "(target < 4x: MISSED)"))
PY
