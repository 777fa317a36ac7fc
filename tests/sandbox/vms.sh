#!/bin/sh
# A fleet of fake VMs on loopback for the SSH layer and the fleet deploy: one real OpenSSH sshd
# per VM on its own address (127.0.1.1, 127.0.1.2, ...), each in its own mount namespace with a
# private directory bind-mounted over the same deploy path, so every VM has the same vms.path
# but its own files. Needs root (mount namespaces, sshd) and Debian's openssh-server.
#
# usage: vms.sh prepare DIR N [PORT]   write keys and configs for N VMs (1 to 254) in DIR
#        vms.sh up DIR N [PORT]        prepare, start every sshd and the health server, and wait
#                                      until all of them accept connections
#        vms.sh down DIR               stop what up started in DIR (idempotent)
#
# prepare writes, in DIR (created if missing):
#   id_ed25519, id_ed25519.pub  the test user's key (ed25519, no passphrase)
#   authorized_keys             that key; every VM's sshd lets it log in as any user, root too
#   vm<i>/ssh_host_ed25519_key  VM i's own host key
#   vm<i>/sshd_config           ListenAddress 127.0.1.<i>:PORT, log in vm<i>/sshd.log
#   vm<i>/root/                 VM i's private files: what the VM sees at DIR/deploy
#   vm<i>/home/                 VM i's home for root: what the VM sees at root's home (/root),
#                               so the VMs do not run this machine's ~/.bashrc for each command
#   deploy/                     the mount point: vms.path, the same on every VM (empty outside)
#   known_hosts                 "[127.0.1.<i>]:PORT ssh-ed25519 ..." for every VM
#   hosts.txt                   a vms.inventory file (docs/plan.md): "127.0.1.<i>:PORT" a line
#   hosts.yaml                  the same hosts as vms.hosts items with names, one a line:
#                               "- {name: vm-01, address: 127.0.1.1, port: PORT}"
#   vms.env                     shell-sourceable: VMS_DIR VMS_N VMS_PORT VMS_HEALTH_PORT VMS_PATH
#                               VMS_IDENTITY VMS_KNOWN_HOSTS VMS_INVENTORY VMS_ADDRESSES (space-
#                               separated) VMS_USER VMS_HOME (root's home, as the VMs see it)
# PORT (sshd's, the same on every address) defaults to a free one; the health port is always
# picked free. Both are checked free on every VM address.
#
# up runs each sshd as
#   unshare --mount --propagation private sh -c 'mount --bind DIR/vm<i>/root DIR/deploy &&
#       mount --bind DIR/vm<i>/home /root &&
#       exec /usr/sbin/sshd -D -f DIR/vm<i>/sshd_config -E DIR/vm<i>/sshd.log'
# (its pid in DIR/vm<i>/pid; the namespace, and the mount, go away with it) and
# tests/servers/vmhealth.py on VMS_HEALTH_PORT of every VM address (pid in DIR/vmhealth.pid, log
# in DIR/vmhealth.log): GET /healthz is 200 with the live release's name when
# DIR/vm<i>/root/current/healthy exists, else 503. On any failure up stops what it started and
# exits 1 with the reason.
#
# The VMs' user is root (the tests run as root). sshd runs with UsePAM no, so root's password
# must not be locked with "!" in /etc/shadow ("*" or a password is fine).
#
# Environment: PYTHON (default /usr/bin/python3, else python3), SSHD (default /usr/sbin/sshd),
# VMS_SSHD_LOGLEVEL (sshd's LogLevel, default VERBOSE; DEBUG1 also logs every keepalive).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/sandbox/common.sh
. "$here/common.sh"
SSHD=${SSHD:-/usr/sbin/sshd}
loglevel=${VMS_SSHD_LOGLEVEL:-VERBOSE}

die() {
	echo "vms.sh: $*" >&2
	exit 1
}
usage() {
	sed -n '7,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

count_ok() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -ge 1 ] && [ "$1" -le 254 ]
}
port_ok() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

# addresses N: 127.0.1.1 ... 127.0.1.N, space-separated
addresses() {
	i=1 out=''
	while [ "$i" -le "$1" ]; do
		out="$out${out:+ }127.0.1.$i"
		i=$((i + 1))
	done
	echo "$out"
}

# pick_ports WANT ADDR...: WANT (0 for any) and a second port, both free on every ADDR, one a line.
# Bound on all addresses at once so they are free everywhere right now; another process may
# still take one before sshd does (accepted: the start then fails with sshd's reason).
pick_ports() {
	"$PYTHON" - "$@" <<'EOF'
import socket, sys
want, addrs = int(sys.argv[1]), sys.argv[2:]

def grab(port):
    held = []
    try:
        for a in addrs:
            s = socket.socket()
            held.append(s)
            s.bind((a, port))
            port = s.getsockname()[1]
        return port, held
    except OSError:
        for s in held:
            s.close()
        return None, []

for attempt in range(50):
    p1, h1 = grab(want)
    if p1 is None:
        sys.exit("port %d is not free on every VM address" % want if want else "no free port")
    p2, h2 = grab(0)
    for s in h1 + h2:
        s.close()
    if p2 is not None:
        print(p1)
        print(p2)
        sys.exit(0)
sys.exit("no free pair of ports on every VM address")
EOF
}

prepare() {
	dir=$1 n=$2 want=${3:-0}
	count_ok "$n" || die "N must be 1 to 254, not '$n'"
	case $loglevel in '' | *[!A-Z0-9]*) die "bad VMS_SSHD_LOGLEVEL '$loglevel'" ;; esac
	[ "$want" = 0 ] || port_ok "$want" || die "bad port '$want'"
	mkdir -p "$dir" /run/sshd
	dir=$(cd "$dir" && pwd)
	case $dir in *[!A-Za-z0-9_./-]*) die "DIR must be a plain path (it goes into sshd_config): $dir" ;; esac
	addrs=$(addresses "$n")
	home=$(getent passwd root | cut -d: -f6)
	[ -d "$home" ] || die "root's home '$home' is not a directory"
	# shellcheck disable=SC2086 # one argument per address
	ports=$(pick_ports "$want" $addrs) || die "cannot pick ports"
	port=$(echo "$ports" | sed -n 1p)
	hport=$(echo "$ports" | sed -n 2p)

	rm -f "$dir/id_ed25519" "$dir/id_ed25519.pub"
	ssh-keygen -q -t ed25519 -N '' -C migrate-test-user -f "$dir/id_ed25519" || die "ssh-keygen failed"
	cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
	mkdir -p "$dir/deploy"
	# the host keys in parallel: 20 ssh-keygen one after the other take a noticeable while
	i=1
	while [ "$i" -le "$n" ]; do
		vm=$dir/vm$i
		mkdir -p "$vm/root" "$vm/home"
		chmod 700 "$vm/home"
		rm -f "$vm/ssh_host_ed25519_key" "$vm/ssh_host_ed25519_key.pub"
		ssh-keygen -q -t ed25519 -N '' -C "vm$i" -f "$vm/ssh_host_ed25519_key" &
		i=$((i + 1))
	done
	wait
	: >"$dir/known_hosts.tmp"
	: >"$dir/hosts.txt.tmp"
	: >"$dir/hosts.yaml.tmp"
	i=1
	while [ "$i" -le "$n" ]; do
		vm=$dir/vm$i addr=127.0.1.$i
		[ -s "$vm/ssh_host_ed25519_key.pub" ] || die "ssh-keygen failed for vm$i"
		cat >"$vm/sshd_config" <<EOF
# fake VM $i of $dir (tests/sandbox/vms.sh)
ListenAddress $addr:$port
HostKey $vm/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 1000
MaxSessions 1000
MaxAuthTries 10
Subsystem sftp internal-sftp
LogLevel $loglevel
EOF
		# OpenSSH writes a host on port 22 bare and any other port as [host]:port
		if [ "$port" = 22 ]; then h=$addr; else h="[$addr]:$port"; fi
		printf '%s %s\n' "$h" "$(cut -d' ' -f1,2 "$vm/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts.tmp"
		printf '%s:%s\n' "$addr" "$port" >>"$dir/hosts.txt.tmp"
		printf -- '- {name: vm-%02d, address: %s, port: %s}\n' "$i" "$addr" "$port" >>"$dir/hosts.yaml.tmp"
		i=$((i + 1))
	done
	mv "$dir/known_hosts.tmp" "$dir/known_hosts"
	mv "$dir/hosts.txt.tmp" "$dir/hosts.txt"
	mv "$dir/hosts.yaml.tmp" "$dir/hosts.yaml"
	cat >"$dir/vms.env" <<EOF
VMS_DIR='$dir'
VMS_N=$n
VMS_PORT=$port
VMS_HEALTH_PORT=$hport
VMS_PATH='$dir/deploy'
VMS_IDENTITY='$dir/id_ed25519'
VMS_KNOWN_HOSTS='$dir/known_hosts'
VMS_INVENTORY='$dir/hosts.txt'
VMS_ADDRESSES='$addrs'
VMS_USER=root
VMS_HOME='$home'
EOF
}

# alive PID PATTERN: PID runs and its command line still contains PATTERN (not a reused pid)
alive() {
	[ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

down() {
	dir=$(cd "$1" 2>/dev/null && pwd) || return 0
	pids=''
	for vm in "$dir"/vm*; do
		[ -f "$vm/pid" ] || continue
		pid=$(cat "$vm/pid")
		if alive "$pid" "$vm/sshd_config"; then pids="$pids $pid"; fi
		rm -f "$vm/pid"
	done
	if [ -f "$dir/vmhealth.pid" ]; then
		pid=$(cat "$dir/vmhealth.pid")
		if alive "$pid" vmhealth.py; then pids="$pids $pid"; fi
		rm -f "$dir/vmhealth.pid"
	fi
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086
	kill $pids 2>/dev/null || true
	t=0
	while [ $t -lt 20 ]; do
		left=''
		for pid in $pids; do
			if kill -0 "$pid" 2>/dev/null; then left="$left $pid"; fi
		done
		[ -n "$left" ] || return 0
		sleep 0.1
		t=$((t + 1))
	done
	# shellcheck disable=SC2086
	kill -9 $left 2>/dev/null || true
}

# wait_listening PORT ADDR...: every ADDR:PORT accepts a TCP connection within 10 s
wait_listening() {
	"$PYTHON" - "$@" <<'EOF'
import socket, sys, time
port, todo = int(sys.argv[1]), set(sys.argv[2:])
end = time.monotonic() + 10
while todo and time.monotonic() < end:
    for a in sorted(todo):
        try:
            socket.create_connection((a, port), timeout=0.5).close()
            todo.discard(a)
        except OSError:
            pass
    if todo:
        time.sleep(0.02)
if todo:
    sys.exit("not listening on port %d after 10 s: %s" % (port, " ".join(sorted(todo))))
EOF
}

up() {
	prepare "$@"
	dir=$(cd "$1" && pwd)
	# shellcheck disable=SC1091
	. "$dir/vms.env"
	trap 'down "$dir"' EXIT
	i=1
	while [ "$i" -le "$VMS_N" ]; do
		vm=$dir/vm$i
		# SC2016: expanded by the inner shell, from its arguments. SC2094: sshd -E and the
		# shell's own errors both append to sshd.log, nothing reads it.
		# shellcheck disable=SC2016,SC2094
		unshare --mount --propagation private sh -c \
			'mount --bind "$1" "$2" && mount --bind "$3" "$4" && exec "$5" -D -f "$6" -E "$7"' \
			sh "$vm/root" "$VMS_PATH" "$vm/home" "$VMS_HOME" "$SSHD" "$vm/sshd_config" "$vm/sshd.log" \
			</dev/null >>"$vm/sshd.log" 2>&1 &
		echo $! >"$vm/pid"
		i=$((i + 1))
	done
	set --
	i=1
	while [ "$i" -le "$VMS_N" ]; do
		set -- "$@" --vm "127.0.1.$i=$dir/vm$i/root"
		i=$((i + 1))
	done
	"$PYTHON" "$root/tests/servers/vmhealth.py" --port "$VMS_HEALTH_PORT" "$@" \
		</dev/null >"$dir/vmhealth.log" 2>&1 &
	echo $! >"$dir/vmhealth.pid"
	# shellcheck disable=SC2086
	if ! wait_listening "$VMS_PORT" $VMS_ADDRESSES; then
		for vm in "$dir"/vm*; do
			[ -s "$vm/sshd.log" ] && sed "s|^|$(basename "$vm"): |" "$vm/sshd.log" | tail -n 3 >&2
		done
		die "sshd did not come up (logs: $dir/vm*/sshd.log)"
	fi
	# shellcheck disable=SC2086
	wait_listening "$VMS_HEALTH_PORT" $VMS_ADDRESSES || die "vmhealth.py did not come up (log: $dir/vmhealth.log)"
	trap - EXIT
	echo "vms.sh: $VMS_N VMs up, sshd on port $VMS_PORT, health on $VMS_HEALTH_PORT; env in $dir/vms.env"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
prepare | up)
	if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
	"$cmd" "$@"
	;;
down) [ $# -eq 1 ] || usage; down "$1" ;;
*) usage ;;
esac
