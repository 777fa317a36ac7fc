#!/bin/sh
# A throw-away HAProxy on loopback for the traffic driver's tests.
#
# usage: haproxy.sh -d DIR -f FRONTEND_PORT -b BACKEND [-a API_PORT] NAME=127.0.0.1:PORT[@WEIGHT]...
#
# A server's WEIGHT (0 to 256) is its weight in haproxy.cfg; without it HAProxy's default, 1.
# weight 0 starts a cluster server with no traffic, as before a migration.
#
# Writes DIR/haproxy.cfg and then becomes haproxy itself (exec, foreground -db): the pid the
# caller spawned is haproxy's, so SIGTERM + waitpid stops it with no pid file to race on and
# no daemon left behind; a caller that sets PR_SET_PDEATHSIG before exec'ing this script also
# takes haproxy down with it if the caller dies. DIR/haproxy.pid has that pid too.
#
# In DIR:
#   admin.sock   runtime API, level admin (what migrate drives)
#   user.sock    runtime API, level user (to test a socket that may read but not write)
#   haproxy.log  haproxy's stdout and stderr: startup alerts and server state changes
# With -a, the runtime API also listens on 127.0.0.1:API_PORT at level admin.
# The frontend serves /metrics with the Prometheus exporter when this haproxy has it.
set -eu

HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
dir='' front='' backend='' api=''
usage() {
	echo "usage: haproxy.sh -d DIR -f FRONTEND_PORT -b BACKEND [-a API_PORT] NAME=127.0.0.1:PORT[@WEIGHT]..." >&2
	exit 2
}
while getopts d:f:b:a: opt; do
	case $opt in
	d) dir=$OPTARG ;;
	f) front=$OPTARG ;;
	b) backend=$OPTARG ;;
	a) api=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
if [ -z "$dir" ] || [ -z "$front" ] || [ -z "$backend" ] || [ $# -eq 0 ]; then usage; fi
[ -d "$dir" ] || { echo "haproxy.sh: $dir is not a directory" >&2; exit 2; }

port_ok() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}
port_ok "$front" || { echo "haproxy.sh: bad frontend port '$front'" >&2; exit 2; }
[ -z "$api" ] || port_ok "$api" || { echo "haproxy.sh: bad API port '$api'" >&2; exit 2; }
# Names go into haproxy.cfg unquoted: keep them to HAProxy's identifier characters.
name_ok() {
	case $1 in '' | *[!A-Za-z0-9_.:-]*) return 1 ;; esac
}
name_ok "$backend" || { echo "haproxy.sh: bad backend name '$backend'" >&2; exit 2; }

cfg=$dir/haproxy.cfg
{
	cat <<EOF
global
	log stderr format short local0 info
	# HAProxy binds with SO_REUSEPORT by default: two test instances that drew the same free
	# port would then share it silently and answer each other's requests. Without it, the
	# second one fails to start, loudly.
	noreuseport
	stats socket $dir/admin.sock mode 600 level admin
	stats socket $dir/user.sock mode 600 level user
EOF
	[ -z "$api" ] || printf '\tstats socket ipv4@127.0.0.1:%s level admin\n' "$api"
	cat <<EOF

defaults
	mode http
	log global
	option httplog
	option dontlog-normal
	timeout connect 1s
	timeout client 5s
	timeout server 5s

frontend fe
	bind 127.0.0.1:$front
EOF
	# Only builds with the exporter know the service; others would refuse the whole file.
	if "$HAPROXY" -vv 2>/dev/null | grep -qi 'prometheus-exporter'; then
		printf '\thttp-request use-service prometheus-exporter if { path /metrics }\n'
	fi
	cat <<EOF
	default_backend $backend

backend $backend
	balance roundrobin
EOF
	for s in "$@"; do
		name=${s%%=*}
		addr=${s#*=}
		weight=''
		case $addr in
		*@*)
			weight=${addr##*@}
			addr=${addr%@*}
			case $weight in '' | *[!0-9]*) weight=x ;; esac
			if [ "$weight" = x ] || [ "$weight" -gt 256 ]; then
				echo "haproxy.sh: bad weight in '$s' (0 to 256)" >&2
				exit 2
			fi
			;;
		esac
		name_ok "$name" || { echo "haproxy.sh: bad server name in '$s'" >&2; exit 2; }
		case $addr in
		127.*:*) port_ok "${addr##*:}" || { echo "haproxy.sh: bad port in '$s'" >&2; exit 2; } ;;
		*) echo "haproxy.sh: '$s' is not NAME=127.x.x.x:PORT[@WEIGHT] (loopback only)" >&2; exit 2 ;;
		esac
		printf '\tserver %s %s check inter 100ms fall 1 rise 1%s\n' "$name" "$addr" \
			"${weight:+ weight $weight}"
	done
} >"$cfg"

"$HAPROXY" -c -q -f "$cfg" || { echo "haproxy.sh: haproxy rejects $cfg" >&2; exit 1; }
# haproxy -db writes no pid file of its own; exec keeps this shell's pid
echo $$ >"$dir/haproxy.pid"
exec "$HAPROXY" -db -f "$cfg" </dev/null >>"$dir/haproxy.log" 2>&1
