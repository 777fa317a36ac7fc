#!/bin/sh
# Wall time of a release deploy to 50 fake VMs (tests/sandbox/vms.sh: a real sshd per VM on
# 127.0.1.<i>, each with its own files under the same vms.path), at most 10 hosts at a time:
# `migrate deploy --vms-only` with parallel 10 and batch 100%, against ansible-playbook
# (Debian's ansible-core) doing the same work per host with forks 10, tests/bench/ansible/.
# The work per host: upload a 20 MB .tar.gz (20 MiB from /dev/urandom, so it does not
# compress, plus the `healthy` file the VMs' health server looks for), unpack it into
# releases/<version>, point `current` at it, run the activate command (`true`) in it, and get
# 200 from the host's health URL. Ansible gets its best configuration (ansible/ansible.cfg:
# pipelining, ControlMaster/ControlPersist, no fact gathering, no interpreter discovery, no
# ssh compression; the linear strategy, which was faster here than `free`).
#
# Each round deploys a NEW version with each tool (so neither can skip the upload), migrate
# first, then Ansible, then migrate to one host alone. Every run is checked afterwards: each
# VM's current must point at the version, every file of it must match the artifact's, and
# its health URL must answer 200 with the version; a run that fails stops the bench. Between
# runs, untimed: old releases and uploads are removed from the VMs, Ansible's persistent SSH
# connections are closed (each run starts cold, as a real deploy does) and dirty pages are
# written out (`sync`), so no run pays for the one before.
#
# Targets (issue 5): Ansible / migrate at least 5x; migrate within 1.5x of the ideal,
# ceil(hosts / parallel) x the single-host time. Misses are reported as they are.
# The CPU time each run takes (the tool's, and the VMs' sshd and everything run on them) is
# shown too: every byte is encrypted, decrypted, checked, unpacked and written on this one
# machine, so on few cores the hosts of a batch do not run side by side for free.
#
# usage: tests/bench/deploy.sh    (as root, from the repository root, after `make`)
# env:   ROUNDS (default 3), MIGRATE_BIN (default ./migrate), HOSTS (default 50; fewer for a
#        quick try, the issue's figure is 50)
set -eu
rounds=${ROUNDS:-3}
hosts=${HOSTS:-50}
parallel=10
bin=${MIGRATE_BIN:-./migrate}
case $rounds in '' | *[!0-9]* | 0) echo "bench: ROUNDS must be a whole number above 0" >&2; exit 2 ;; esac
case $hosts in '' | *[!0-9]* | 0) echo "bench: HOSTS must be a whole number above 0" >&2; exit 2 ;; esac
[ "$hosts" -le 254 ] || { echo "bench: HOSTS is at most 254" >&2; exit 2; }
[ -x "$bin" ] || { echo "bench: build first (make)" >&2; exit 2; }
"$bin" deploy --help >/dev/null 2>&1 || { echo "bench: $bin has no working \`deploy\`" >&2; exit 2; }
command -v ansible-playbook >/dev/null || { echo "bench: ansible-playbook missing (apt-get install ansible-core)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (the fake VMs need mount namespaces and sshd)" >&2; exit 2; }
if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
here=$(cd "$(dirname "$0")" && pwd)
vms_sh=$here/../sandbox/vms.sh
# Nothing from the caller's Ansible setup may change the comparison.
for v in $(env | sed -n 's/^\(ANSIBLE_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

work=$(mktemp -d /tmp/mg-bench-deploy-XXXXXX)
cleanup() {
	close_masters 2>/dev/null || true
	sh "$vms_sh" down "$work/vms" >/dev/null 2>&1 || true
	rm -rf "$work"
}
# Ansible's ControlPersist masters (one ssh per host) outlive ansible-playbook: close them.
close_masters() {
	for s in "$work"/cp/*; do
		if [ -S "$s" ]; then ssh -O exit -o ControlPath="$s" bench >/dev/null 2>&1 || true; fi
	done
	rm -rf "$work/cp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sh "$vms_sh" up "$work/vms" "$hosts" >"$work/up.log" 2>&1 ||
	{ cat "$work/up.log" >&2; echo "bench: the fake VMs did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/vms/vms.env"
vm_pids=$(cat "$VMS_DIR"/vm*/pid "$VMS_DIR/vmhealth.pid")

# The migrate plans: the whole fleet, and its first host alone (the ideal's single-host time).
plan() { # NAME HOSTS_YAML_LINES
	cat <<EOF
version: 1
name: $1
build:
  artifact: $work/art/app-\${version}.tar.gz
vms:
  hosts:
$(sed -n "1,${2}p" "$VMS_DIR/hosts.yaml" | sed 's/^/    /')
  user: $VMS_USER
  identity_file: $VMS_IDENTITY
  known_hosts: $VMS_KNOWN_HOSTS
  path: $VMS_PATH
  parallel: $parallel
  batch: 100%
  activate: "true"
  health: { url: "http://\${host}:$VMS_HEALTH_PORT/healthz" }
state:
  dir: $work/state-$1
EOF
}
plan bench-fleet "$hosts" >"$work/fleet.yaml"
plan bench-one 1 >"$work/one.yaml"
for p in fleet one; do
	"$bin" -p "$work/$p.yaml" validate >"$work/validate.log" 2>&1 ||
		{ cat "$work/validate.log" >&2; echo "bench: the $p plan is not valid" >&2; exit 1; }
done

# The Ansible inventory: the same hosts, key and known_hosts; no ~/.ssh/config, no agent keys.
{
	echo '[fleet]'
	i=1
	for a in $VMS_ADDRESSES; do
		printf 'vm-%02d ansible_host=%s ansible_port=%s\n' "$i" "$a" "$VMS_PORT"
		i=$((i + 1))
	done
	echo '[fleet:vars]'
	echo "ansible_user=$VMS_USER"
	echo "ansible_ssh_private_key_file=$VMS_IDENTITY"
	echo "ansible_ssh_common_args='-F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile=$VMS_KNOWN_HOSTS -o StrictHostKeyChecking=yes'"
} >"$work/inventory.ini"
mkdir -p "$work/ansible-home" "$work/ansible-tmp"
export ANSIBLE_CONFIG="$here/ansible/ansible.cfg" ANSIBLE_HOME="$work/ansible-home" \
	ANSIBLE_LOCAL_TEMP="$work/ansible-tmp"
# Ansible's remote temporary files inside vms.path, on the VM's own mount, so the copy module
# renames its upload into place instead of copying it a second time across mounts.
export ANSIBLE_REMOTE_TEMP="$VMS_PATH/.ansible-tmp"

# artifact V: $work/art/app-V.tar.gz, its tree kept in $work/art/V for the check
artifact() {
	d=$work/art/$1
	mkdir -p "$d/data"
	i=1
	while [ $i -le 20 ]; do
		head -c 1048576 /dev/urandom >"$d/data/part$i"
		i=$((i + 1))
	done
	echo "$1" >"$d/VERSION"
	echo ok >"$d/healthy"
	tar -czf "$work/art/app-$1.tar.gz" -C "$d" VERSION healthy data
}

# check V N: VMs 1..N run V, byte for byte, and their health URL says so
check() {
	"$py" - "$1" "$2" "$work/art/$1" "$VMS_DIR" "$VMS_HEALTH_PORT" <<'EOF'
import os, sys, urllib.request
version, n, tree, vms, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
files = []
for d, _, names in os.walk(tree):
    files += [os.path.relpath(os.path.join(d, f), tree) for f in names]
want = {f: open(os.path.join(tree, f), "rb").read() for f in files}
bad = []
for i in range(1, n + 1):
    root = os.path.join(vms, "vm%d" % i, "root")
    try:
        link = os.readlink(os.path.join(root, "current"))
    except OSError as e:
        bad.append("vm%d: current: %s" % (i, e.strerror))
        continue
    if link != "releases/" + version:
        bad.append("vm%d: current -> %s, not releases/%s" % (i, link, version))
        continue
    for f, data in want.items():
        try:
            with open(os.path.join(root, "current", f), "rb") as fh:
                same = fh.read() == data
        except OSError as e:
            bad.append("vm%d: %s: %s" % (i, f, e.strerror))
            break
        if not same:
            bad.append("vm%d: %s differs from the artifact's" % (i, f))
            break
    url = "http://127.0.1.%d:%s/healthz" % (i, port)
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode().strip()
            if r.status != 200 or body != version:
                bad.append("vm%d: %s: %d %s" % (i, url, r.status, body))
    except Exception as e:
        bad.append("vm%d: %s: %s" % (i, url, e))
if bad:
    sys.exit("not deployed:\n  " + "\n  ".join(bad[:10]) + ("\n  ..." if len(bad) > 10 else ""))
EOF
}

# tidy: untimed, between runs; every VM keeps only its live release
tidy() {
	close_masters
	i=1
	while [ $i -le "$hosts" ]; do
		vr=$VMS_DIR/vm$i/root
		live=$(readlink "$vr/current" 2>/dev/null || true)
		for e in "$vr"/releases/* "$vr"/releases/.[!.]*; do
			[ -e "$e" ] || [ -L "$e" ] || continue
			[ "releases/${e##*/}" = "$live" ] || rm -rf "$e"
		done
		rm -rf "$vr/.incoming"/* "$vr/.ansible-tmp"
		i=$((i + 1))
	done
	rm -rf "$work/art"/*
	sync
}

now_ms() { date +%s%3N; }
# cpu_snap: "TOTAL SELF", in ms: the CPU time so far of this bench's processes and their
# descendants, live or reaped (user + system + children's, from /proc/<pid>/stat) - this
# shell (so the tool), the VMs' sshd (so every session and command on them), the health
# server and Ansible's ControlPersist masters (found by their control path) - and of the
# snapshot itself, which ends up in this shell's count. Other processes on the machine
# are not counted.
cpu_snap() {
	# shellcheck disable=SC2086 # one argument per pid
	"$py" - "$work/cp/" $$ $vm_pids <<'EOF'
import os, sys
marker, roots = sys.argv[1].encode(), {int(p) for p in sys.argv[2:]}
me, stat = os.getpid(), {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        with open("/proc/%s/stat" % d) as f:
            s = f.read()
        with open("/proc/%s/cmdline" % d, "rb") as f:
            cmd = f.read()
    except OSError:
        continue
    rest = s[s.rfind(")") + 2:].split()
    stat[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    if marker in cmd:
        roots.add(int(d))
kids = {}
for pid, (ppid, _) in stat.items():
    kids.setdefault(ppid, []).append(pid)
seen, todo = set(), [p for p in roots if p in stat]
while todo:
    p = todo.pop()
    if p in seen or p == me:
        continue
    seen.add(p)
    todo += kids.get(p, [])
ticks = sum(stat[p][1] for p in seen)
t = os.times()
print(ticks * 1000 // os.sysconf("SC_CLK_TCK"), int((t.user + t.system) * 1000))
EOF
}

# run TOOL V N: one timed deploy of V; sets ms and cpu
run() {
	tool=$1 ver=$2 n=$3
	tidy
	artifact "$ver"
	log=$work/$tool-$ver.log
	c0=$(cpu_snap)
	t0=$(now_ms)
	rc=0
	case $tool in
	migrate) "$bin" -p "$work/fleet.yaml" deploy --vms-only --version "$ver" >"$log" 2>&1 || rc=$? ;;
	single) "$bin" -p "$work/one.yaml" deploy --vms-only --version "$ver" >"$log" 2>&1 || rc=$? ;;
	ansible)
		mkdir -p "$work/cp"
		ANSIBLE_SSH_CONTROL_PATH_DIR="$work/cp" ansible-playbook -i "$work/inventory.ini" \
			"$here/ansible/deploy.yml" -e "version=$ver" -e "artifact=$work/art/app-$ver.tar.gz" \
			-e "path=$VMS_PATH" -e "health_port=$VMS_HEALTH_PORT" >"$log" 2>&1 || rc=$?
		;;
	esac
	t1=$(now_ms)
	c1=$(cpu_snap)
	if [ "$rc" -ne 0 ]; then
		tail -n 30 "$log" >&2
		echo "bench: $tool deploy of $ver exited $rc" >&2
		exit 1
	fi
	if ! check "$ver" "$n"; then
		tail -n 30 "$log" >&2
		echo "bench: $tool deploy of $ver exited 0 but did not deploy it (above: the end of its output)" >&2
		exit 1
	fi
	ms=$((t1 - t0))
	cpu=$((${c1% *} - ${c0% *} - ${c0#* }))
}

median() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
sec() { awk "BEGIN {printf \"%.2f s\", $1 / 1000}"; }
cores=$(nproc)

echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(ansible-playbook --version | awk 'NR == 1 {gsub(/[][]/, ""); print "ansible-" $2, $3}') (forks $parallel, pipelining, ControlPersist, no facts), $(ssh -V 2>&1 | cut -d, -f1)"
echo "$hosts hosts on loopback, 20 MB artifact, a new version every run, migrate parallel $parallel batch 100%, $rounds rounds"
t_mig="" t_ans="" t_one="" c_mig="" c_ans="" c_one=""
round=1
while [ $round -le "$rounds" ]; do
	run migrate "m$round" "$hosts"
	t_mig="$t_mig $ms" c_mig="$c_mig $cpu" line="migrate $(sec "$ms") (CPU $(sec "$cpu"))"
	run ansible "a$round" "$hosts"
	t_ans="$t_ans $ms" c_ans="$c_ans $cpu" line="$line, ansible $(sec "$ms") (CPU $(sec "$cpu"))"
	run single "s$round" 1
	t_one="$t_one $ms" c_one="$c_one $cpu" line="$line, one host $(sec "$ms") (CPU $(sec "$cpu"))"
	echo "  round $round: $line"
	round=$((round + 1))
done

m_mig=$(median "$t_mig") m_ans=$(median "$t_ans") m_one=$(median "$t_one")
mc_one=$(median "$c_one") mc_mig=$(median "$c_mig") mc_ans=$(median "$c_ans")
waves=$(((hosts + parallel - 1) / parallel))
ideal=$((waves * m_one))
ratio=$(awk "BEGIN {printf \"%.2f\", $m_ans / $m_mig}")
vs_ideal=$(awk "BEGIN {printf \"%.2f\", $m_mig / $ideal}")
verdict() { if awk "BEGIN {exit !($1)}"; then echo PASS; else echo MISS; fi; }
echo "medians of $rounds (wall clock, whole process):"
echo "  migrate deploy, $hosts hosts, parallel $parallel:    $(sec "$m_mig")"
echo "  ansible-playbook, $hosts hosts, forks $parallel:     $(sec "$m_ans")"
echo "  migrate deploy, 1 host:                  $(sec "$m_one")"
echo "  ansible / migrate: ${ratio}x    target at least 5x: $(verdict "$ratio >= 5")"
echo "  ideal = ceil($hosts/$parallel) x 1 host = $(sec "$ideal"); migrate / ideal: ${vs_ideal}x    target at most 1.5x: $(verdict "$vs_ideal <= 1.5")"
# The ideal assumes $parallel hosts at a time take no longer than one; the CPU time a run needs,
# spread over every core, is the least wall clock this machine allows it.
echo "  CPU time, medians (tool + VMs' sshd + health server): migrate $(sec "$mc_mig"), ansible $(sec "$mc_ans"), 1 host $(sec "$mc_one")"
echo "    over $cores cores at best: migrate $(sec $((mc_mig / cores))), ansible $(sec $((mc_ans / cores)))"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
