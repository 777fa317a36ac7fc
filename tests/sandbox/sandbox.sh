#!/bin/sh
# A local sandbox for `migrate run`: the service on two "VMs" and one "cluster" server behind a
# real HAProxy, a real Prometheus scraping HAProxy's exporter, and steady load, all on loopback.
#
# usage: sandbox.sh up DIR                 start everything in DIR (created if missing)
#        sandbox.sh down DIR               stop everything up started there (idempotent)
#        sandbox.sh fault DIR NAME [error_rate=X] [latency_ms=Y]
#                                          set faults on app NAME (vm1, vm2 or k8s1) directly,
#                                          not through the balancer; keys not given are kept
#        sandbox.sh status DIR             pids (alive or not), URLs, HAProxy's weights
#
# up starts, each on 127.0.0.1 and a free port:
#   vm1, vm2, k8s1   examples/app/app.py (k8s1 stands for the cluster's ingress)
#   haproxy          tests/sandbox/haproxy.sh: frontend LB_URL, backend `web` with servers vm1,
#                    vm2 (weight 1) and k8s1 (weight 0: all traffic on the VMs, as before a
#                    migration); runtime API at DIR/admin.sock; exporter on LB_URL/metrics
#   prometheus       scrapes LB_URL/metrics every second; data in DIR/prom
#   loadgen          tests/sandbox/loadgen.py, SANDBOX_RPS (default 100) GETs a second to LB_URL
# and writes DIR/sandbox.env (shell-sourceable: PROM_URL LB_URL ADMIN_SOCK VM1_URL VM2_URL
# K8S_URL, VM1_PID VM2_PID K8S_PID HAPROXY_PID PROM_PID LOADGEN_PID, SANDBOX_DIR PLAN
# SANDBOX_DEADLINE) and DIR/plan.yaml (plans/demo.yaml with the real socket and Prometheus URL).
# It returns 0 once Prometheus has scraped HAProxy; on any failure it stops what it started and
# exits 1 with the reason (logs: DIR/*.log). It refuses a DIR whose sandbox is still up.
#
# Nothing outlives SANDBOX_SECONDS (default 900) even without `down`: the Python programs get
# --max-seconds, haproxy and prometheus run under timeout(1). `down` sends SIGTERM, then SIGKILL
# to what is left after 2 s, and only to pids whose command line is still the one up started
# (DIR/sandbox.pids), so a reused pid is never hit. It leaves DIR and its logs in place.
#
# Environment: PYTHON (default /usr/bin/python3, else python3), HAPROXY (for haproxy.sh),
# PROMETHEUS (default /usr/bin/prometheus), SANDBOX_SECONDS, SANDBOX_RPS.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/sandbox/common.sh
. "$here/common.sh"
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
lifetime=${SANDBOX_SECONDS:-900}
rps=${SANDBOX_RPS:-100}

die() {
	echo "sandbox.sh: $*" >&2
	exit 1
}
usage() {
	sed -n '5,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
case $lifetime in '' | *[!0-9]* | 0) die "SANDBOX_SECONDS must be a whole number of seconds above 0" ;; esac
case $rps in '' | *[!0-9]* | 0) die "SANDBOX_RPS must be a whole number above 0" ;; esac

# --- small helpers (python, so the sandbox needs nothing the tests do not already) ---

# free_ports N: N distinct free loopback ports, one a line. All are bound at once so they differ;
# another process may still take one before we do (accepted: the start then fails cleanly).
free_ports() {
	"$PYTHON" -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in ss))
' "$1"
}

# http URL [JSON]: GET (or POST JSON) with a 2 s timeout; prints the body; exit 0 only on 200
http() {
	"$PYTHON" -c '
import sys, urllib.request, urllib.error
url = sys.argv[1]
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request(url, data=data)
if data is not None:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=2) as r:
        sys.stdout.write(r.read().decode(errors="replace"))
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode(errors="replace"))
    sys.exit(1)
except Exception as e:
    sys.stdout.write("%s\n" % e)
    sys.exit(1)
' "$@"
}

# hap SOCKET COMMAND: one HAProxy runtime API command; prints the answer
hap() {
	"$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode(errors="replace"))
' "$@"
}

# --- down ---

stop_all() { # DIR
	pids=$1/sandbox.pids
	[ -f "$pids" ] || return 0
	# the load first, so that its summary does not count the balancer going away as errors
	while read -r pid token; do
		case $token in loadgen.py*) ;; *) continue ;; esac
		if ours "$pid" "$token"; then kill -TERM "$pid" 2>/dev/null || true; fi
		i=0
		while ours "$pid" "$token" && [ $i -lt 10 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	done <"$pids"
	stop_pids "$pids" sandbox.sh
}

cmd_down() {
	[ -d "$1" ] || { echo "sandbox.sh: no sandbox in $1 (not a directory); nothing to stop"; return 0; }
	dir=$(cd "$1" && pwd)
	if [ ! -f "$dir/sandbox.pids" ]; then
		echo "sandbox.sh: nothing running from $dir"
		return 0
	fi
	stop_all "$dir"
	echo "sandbox.sh: stopped the sandbox in $dir"
}

# --- up ---

# record PID TOKEN: remember a process for down; TOKEN is a piece of its command line
record() { echo "$1 $2" >>"$dir/sandbox.pids"; }

# wait_for SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it succeeds, else die with WHAT.
# COMMAND keeps quiet itself, so that a die inside it (a process that exited) is seen.
wait_for() {
	end=$(($(date +%s) + $1))
	what=$2
	shift 2
	while ! "$@"; do
		[ "$(date +%s)" -lt "$end" ] || die "$what"
		sleep 0.1
	done
}

alive() { kill -0 "$1" 2>/dev/null; }

# child_of PID: the pid of PID's (only) child, or nothing
child_of() {
	"$PYTHON" -c '
import os, sys
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        st = open("/proc/%s/stat" % p).read()
    except (OSError, ValueError):
        continue
    if st.rsplit(")", 1)[1].split()[1] == sys.argv[1]:
        print(p)
        break
' "$1"
}

app_ready() { # PID LOG
	alive "$1" || die "app $(basename "$2" .log) exited at start: $(tail -n 3 "$2" 2>/dev/null)"
	grep -qx ready "$2" 2>/dev/null
}

lb_ok() { http "$lb_url/" >/dev/null 2>&1; }

haproxy_ready() {
	alive "$hap_wrapper" ||
		die "haproxy exited at start: $(tail -n 5 "$dir/haproxy-start.log" "$dir/haproxy.log" 2>/dev/null)"
	[ -S "$dir/admin.sock" ] || return 1
	st=$(hap "$dir/admin.sock" "show stat web 4 -1" 2>/dev/null) || return 1
	for s in vm1 vm2 k8s1; do
		echo "$st" | grep -q "^web,$s,.*,UP," || return 1
	done
}

prom_scraped() {
	alive "$prom_wrapper" || die "prometheus exited at start: $(tail -n 5 "$dir/prometheus.log" 2>/dev/null)"
	out=$(http "$prom_url/api/v1/query?query=haproxy_server_http_responses_total%7Bproxy%3D%22web%22%7D" 2>/dev/null) ||
		return 1
	case $out in *'"result":[{'*) return 0 ;; esac
	return 1
}

cmd_up() {
	mkdir -p "$1"
	dir=$(cd "$1" && pwd)
	# the runtime API socket path must fit in sun_path (108 bytes with its NUL)
	[ ${#dir} -le 90 ] || die "$dir is too long for a unix socket path inside it; use a shorter DIR"
	if [ -f "$dir/sandbox.pids" ]; then
		while read -r pid token; do
			if ours "$pid" "$token"; then die "a sandbox is still up in $dir (pid $pid); run: $0 down $dir"; fi
		done <"$dir/sandbox.pids"
		rm -f "$dir/sandbox.pids"
	fi
	[ -x "$PROMETHEUS" ] || die "prometheus not found at $PROMETHEUS (Debian package prometheus; or set PROMETHEUS)"
	command -v timeout >/dev/null || die "timeout(1) not found (coreutils)"
	rm -rf "$dir/prom"
	rm -f "$dir/sandbox.env" "$dir/plan.yaml" "$dir/admin.sock" "$dir/user.sock" "$dir/haproxy.pid" \
		"$dir"/*.log
	started=$(date +%s)
	ok=''
	trap 'if [ -z "$ok" ]; then stop_all "$dir"; fi' EXIT
	trap 'exit 1' INT TERM HUP

	# shellcheck disable=SC2046 # one port a line, digits only
	set -- $(free_ports 5)
	[ $# -eq 5 ] || die "could not find free loopback ports"
	vm1_port=$1 vm2_port=$2 k8s_port=$3 lb_port=$4 prom_port=$5

	# Prometheus first: it waits 5 s after starting before its first scrape (the discovery
	# manager's fixed update interval), time the other processes take to start meanwhile
	cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: haproxy
    static_configs:
      - targets: ["127.0.0.1:$lb_port"]
EOF
	prom_url=http://127.0.0.1:$prom_port
	timeout -k 2 "$lifetime" "$PROMETHEUS" --config.file="$dir/prometheus.yml" \
		--storage.tsdb.path="$dir/prom" --storage.tsdb.retention.time=1d \
		--web.listen-address="127.0.0.1:$prom_port" --log.level=warn \
		</dev/null >"$dir/prometheus.log" 2>&1 &
	prom_wrapper=$!
	record "$prom_wrapper" "--storage.tsdb.path=$dir/prom"

	# the apps
	for app in vm1:$vm1_port vm2:$vm2_port k8s1:$k8s_port; do
		name=${app%%:*}
		port=${app#*:}
		"$PYTHON" "$root/examples/app/app.py" --name "$name" --port "$port" \
			--max-seconds "$lifetime" </dev/null >"$dir/$name.log" 2>&1 &
		record $! "--name $name --port $port "
		eval "${name}_pid=$!"
	done
	# shellcheck disable=SC2154 # set by the eval above
	for app in "$vm1_pid:vm1" "$vm2_pid:vm2" "$k8s1_pid:k8s1"; do
		wait_for 5 "app ${app#*:} did not print ready within 5 s (see $dir/${app#*:}.log)" \
			app_ready "${app%%:*}" "$dir/${app#*:}.log"
	done

	# the balancer; timeout(1) is its watchdog, haproxy.sh exec's haproxy under it
	timeout -k 2 "$lifetime" /bin/sh "$here/haproxy.sh" -d "$dir" -f "$lb_port" -b web \
		"vm1=127.0.0.1:$vm1_port" "vm2=127.0.0.1:$vm2_port" "k8s1=127.0.0.1:$k8s_port@0" \
		</dev/null >"$dir/haproxy-start.log" 2>&1 &
	hap_wrapper=$!
	record "$hap_wrapper" "haproxy.sh -d $dir "
	wait_for 5 "haproxy did not bring vm1, vm2 and k8s1 UP within 5 s (see $dir/haproxy.log, $dir/haproxy-start.log)" haproxy_ready
	hap_pid=$(cat "$dir/haproxy.pid")
	record "$hap_pid" "$dir/haproxy.cfg"
	lb_url=http://127.0.0.1:$lb_port
	wait_for 5 "no answer through haproxy at $lb_url/ within 5 s" lb_ok

	# the load, ending a second before the apps it needs (when nobody calls down)
	load_seconds=$((lifetime - ($(date +%s) - started) - 1))
	[ "$load_seconds" -gt 0 ] || load_seconds=1
	"$PYTHON" "$here/loadgen.py" "$lb_url/" --rps "$rps" --seconds "$load_seconds" --report 10 \
		</dev/null >"$dir/loadgen.log" 2>&1 &
	loadgen_pid=$!
	record "$loadgen_pid" "loadgen.py $lb_url/"

	wait_for 20 "prometheus at $prom_url has not scraped haproxy within 20 s (see $dir/prometheus.log)" prom_scraped
	# timeout(1) forwards SIGTERM, but down's SIGKILL needs prometheus' own pid: its child
	prom_pid=$(child_of "$prom_wrapper")
	[ -n "$prom_pid" ] || die "cannot find prometheus' pid (the child of timeout, pid $prom_wrapper)"
	record "$prom_pid" "--storage.tsdb.path=$dir/prom"

	# the plan, with the real socket and Prometheus URL
	"$PYTHON" -c '
import json, sys
src, dst, sock, prom = sys.argv[1:]
text = open(src).read()
subs = [("socket: /tmp/migrate-sandbox/admin.sock", "socket: " + json.dumps(sock)),
        ("url: \"http://127.0.0.1:9090\"", "url: " + json.dumps(prom))]
for old, new in subs:
    if text.count(old) != 1:
        sys.exit("%s: expected %s exactly once" % (src, old))
    text = text.replace(old, new)
open(dst, "w").write(text)
' "$root/plans/demo.yaml" "$dir/plan.yaml" "$dir/admin.sock" "$prom_url" ||
		die "could not write $dir/plan.yaml from plans/demo.yaml"

	cat >"$dir/sandbox.env" <<EOF
# written by tests/sandbox/sandbox.sh up; stop with: tests/sandbox/sandbox.sh down $dir
SANDBOX_DIR='$dir'
SANDBOX_DEADLINE=$((started + lifetime))
PLAN='$dir/plan.yaml'
PROM_URL='$prom_url'
LB_URL='$lb_url'
ADMIN_SOCK='$dir/admin.sock'
VM1_URL='http://127.0.0.1:$vm1_port'
VM2_URL='http://127.0.0.1:$vm2_port'
K8S_URL='http://127.0.0.1:$k8s_port'
VM1_PID=$vm1_pid
VM2_PID=$vm2_pid
K8S_PID=$k8s1_pid
HAPROXY_PID=$hap_pid
PROM_PID=$prom_pid
LOADGEN_PID=$loadgen_pid
EOF
	ok=1
	echo "sandbox.sh: up in $dir after $(($(date +%s) - started)) s; stops by itself after ${lifetime} s"
	echo "  balancer   $lb_url (backend web: vm1, vm2 at weight 1, k8s1 at weight 0)"
	echo "  prometheus $prom_url"
	echo "  plan       $dir/plan.yaml   environment $dir/sandbox.env"
}

# --- fault, status ---

load_env() {
	[ -f "$1/sandbox.env" ] || die "no sandbox in $1 (no sandbox.env); start one with: $0 up $1"
	# shellcheck disable=SC1091
	. "$1/sandbox.env"
}

cmd_fault() {
	load_env "$1"
	case $2 in
	vm1) url=$VM1_URL ;;
	vm2) url=$VM2_URL ;;
	k8s1) url=$K8S_URL ;;
	*) die "unknown app '$2': vm1, vm2 or k8s1" ;;
	esac
	shift 2
	[ $# -gt 0 ] || die "give error_rate=X and/or latency_ms=Y"
	json=''
	for kv in "$@"; do
		key=${kv%%=*}
		val=${kv#*=}
		case $key in error_rate | latency_ms) ;; *) die "unknown setting '$kv': error_rate=X or latency_ms=Y" ;; esac
		# the app checks the range; here only that it is a plain JSON number
		case $val in '' | *[!0-9.]* | *.*.* | .*) die "'$kv': the value must be a number such as 0.05 or 100" ;; esac
		json="$json${json:+, }\"$key\": $val"
	done
	http "$url/__fault" "{$json}" || die "the app refused the settings (see above)"
}

# shellcheck disable=SC2153 # the upper-case names come from sandbox.env
cmd_status() {
	load_env "$1"
	now=$(date +%s)
	echo "sandbox in $SANDBOX_DIR, stops by itself in $((SANDBOX_DEADLINE - now)) s"
	for v in VM1 VM2 K8S HAPROXY PROM LOADGEN; do
		eval "pid=\$${v}_PID"
		if alive "$pid"; then state=running; else state=gone; fi
		printf '  %-8s pid %-7s %s\n' "$v" "$pid" "$state"
	done
	printf '  %-10s %s\n' LB_URL "$LB_URL" PROM_URL "$PROM_URL" ADMIN_SOCK "$ADMIN_SOCK" \
		VM1_URL "$VM1_URL" VM2_URL "$VM2_URL" K8S_URL "$K8S_URL" PLAN "$PLAN"
	if [ -S "$ADMIN_SOCK" ] && st=$(hap "$ADMIN_SOCK" "show stat web 4 -1" 2>/dev/null); then
		echo "  haproxy weights:"
		echo "$st" | awk -F, '/^#/ { for (i = 1; i <= NF; i++) c[$i] = i; next }
			NF > 1 { printf "    %-6s weight %-4s %-6s %s requests\n", $2, $c["weight"], $c["status"], $c["stot"] }'
	fi
	if [ -f "$SANDBOX_DIR/loadgen.log" ]; then
		echo "  load: $(tail -n 1 "$SANDBOX_DIR/loadgen.log")"
	fi
}

[ $# -ge 2 ] || usage
cmd=$1
shift
case $cmd in
up) [ $# -eq 1 ] || usage; cmd_up "$1" ;;
down) [ $# -eq 1 ] || usage; cmd_down "$1" ;;
fault) [ $# -ge 2 ] || usage; cmd_fault "$@" ;;
status) [ $# -eq 1 ] || usage; cmd_status "$1" ;;
*) usage ;;
esac
