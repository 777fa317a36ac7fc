#!/bin/sh
# A local Kubernetes API for the demo: tests/servers/kubeapi.py (the strict stand-in the
# integration tests use, with its Deployment controller) behind a throw-away CA, and a
# kubeconfig that reaches it with a client certificate, all in one directory on loopback.
#
# usage: kubeapi.sh up DIR [NAMESPACES]   make the certificates, start the server, write
#                                         DIR/kubeconfig (NAMESPACES: comma-separated, the
#                                         ones that exist; default "default")
#        kubeapi.sh down DIR              stop what up started in DIR (idempotent)
#
# up writes, in DIR (created if missing), what tu_kubeapi_start (tests/testutil.c) writes:
#   openssl.cnf, ca.pem, ca.key            the CA; the server and the client trust only it
#   server.pem, server.key                 the server's certificate, for IP 127.0.0.1
#   kubeapi-client.cnf, client.pem/.key    user admin in group system:masters
#   kubeconfig                             cluster kubeapi, user admin, context demo
#                                          (the current one), namespace: the first of
#                                          NAMESPACES
#   kubeapi.env                            shell-sourceable: KUBEAPI_URL KUBEAPI_CONTROL_URL
#                                          KUBEAPI_KUBECONFIG KUBEAPI_PID
#   kubeapi.log, kubeapi.pids              the server's output; what down stops
#
# kubeapi.py stops when its standard input closes, so up gives it a fifo whose only writer
# is a `sleep KUBEAPI_SECONDS` (default 900): the server lives until down kills both, or
# until that sleep ends if nobody calls down. up returns 0 once the server listens; on any
# failure it stops what it started and exits 1 with the reason.
#
# Environment: PYTHON (default /usr/bin/python3, else python3), KUBEAPI_SECONDS,
# KUBEAPI_PER_REPLICA_MS (the controller's pace: one pod step per that many ms; the
# server's default, 50, when unset).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/sandbox/common.sh
. "$here/common.sh"
lifetime=${KUBEAPI_SECONDS:-900}
pace=${KUBEAPI_PER_REPLICA_MS:-}

die() {
	echo "kubeapi.sh: $*" >&2
	exit 1
}
usage() {
	sed -n '6,9p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
case $lifetime in '' | *[!0-9]* | 0) die "KUBEAPI_SECONDS must be a whole number of seconds above 0" ;; esac
case $pace in *[!0-9]*) die "KUBEAPI_PER_REPLICA_MS must be a whole number of milliseconds" ;; esac

# running PID: PID exists and is not a zombie (kill -0 succeeds on a zombie, and one that
# exited at start stays a zombie until this shell ends)
running() {
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	case $st in Z* | X*) return 1 ;; esac
}

stop_all() { # DIR
	pids=$1/kubeapi.pids
	[ -f "$pids" ] || return 0
	stop_pids "$pids" kubeapi.sh
	rm -f "$1/kubeapi.in"
}

cmd_down() {
	[ -d "$1" ] || return 0
	dir=$(cd "$1" && pwd)
	[ -f "$dir/kubeapi.pids" ] || return 0
	stop_all "$dir"
	echo "kubeapi.sh: stopped the API server in $dir"
}

# ossl ARGS...: openssl, quiet unless it fails
ossl() {
	out=$(openssl "$@" 2>&1) || die "openssl $1 failed: $out"
}

make_certs() {
	# the same CA, server and client certificates as tests/testutil.c (tu_make_test_certs,
	# kubeapi_files): extendedKeyUsage clientAuth, as OpenSSL on the server refuses a
	# serverAuth-only client certificate
	cat >"$dir/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = migrate test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
EOF
	cat >"$dir/kubeapi-client.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = admin
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
	ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2'
	# shellcheck disable=SC2086 # $ec is several options
	ossl req -x509 -config "$dir/openssl.cnf" -extensions ca $ec \
		-keyout "$dir/ca.key" -out "$dir/ca.pem" -subj "/CN=migrate test CA"
	# shellcheck disable=SC2086
	ossl req -x509 -config "$dir/openssl.cnf" -extensions leaf -CA "$dir/ca.pem" \
		-CAkey "$dir/ca.key" $ec -keyout "$dir/server.key" -out "$dir/server.pem" \
		-subj /CN=127.0.0.1
	# shellcheck disable=SC2086
	ossl req -x509 -config "$dir/kubeapi-client.cnf" -extensions client -CA "$dir/ca.pem" \
		-CAkey "$dir/ca.key" $ec -keyout "$dir/client.key" -out "$dir/client.pem" \
		-subj "/O=system:masters/CN=admin"
	chmod 600 "$dir/ca.key" "$dir/server.key" "$dir/client.key"
}

# ports: "API CONTROL" once kubeapi.py has printed both, else nothing
ports() {
	sed -n 's/^port \([0-9]*\)$/\1/p; s/^control \([0-9]*\)$/\1/p' "$dir/kubeapi.log" 2>/dev/null |
		tr '\n' ' '
}

cmd_up() {
	namespaces=${2:-default}
	case $namespaces in '' | *[!a-z0-9,-]*) die "NAMESPACES must be DNS labels separated by commas, not '$namespaces'" ;; esac
	mkdir -p "$1"
	dir=$(cd "$1" && pwd)
	if [ -f "$dir/kubeapi.pids" ]; then
		while read -r pid token; do
			if ours "$pid" "$token"; then die "an API server is still up in $dir (pid $pid); run: $0 down $dir"; fi
		done <"$dir/kubeapi.pids"
		rm -f "$dir/kubeapi.pids"
	fi
	command -v openssl >/dev/null || die "openssl not found (Debian package openssl)"
	rm -f "$dir/kubeapi.in" "$dir/kubeapi.log" "$dir/kubeapi.env" "$dir/kubeconfig"
	ok=''
	trap 'if [ -z "$ok" ]; then stop_all "$dir"; fi' EXIT
	trap 'exit 1' INT TERM HUP

	make_certs
	mkfifo -m 600 "$dir/kubeapi.in"
	"$PYTHON" "$root/tests/servers/kubeapi.py" --cert "$dir/server.pem" --key "$dir/server.key" \
		--client-ca "$dir/ca.pem" --namespaces "$namespaces" \
		<"$dir/kubeapi.in" >"$dir/kubeapi.log" 2>&1 &
	server=$!
	echo "$server --cert $dir/server.pem" >>"$dir/kubeapi.pids"
	# the fifo's writer: opening it lets the server's open return; its exit closes the
	# server's stdin. sleep's command line cannot name DIR, so down knows it by its pid and
	# lifetime only. Its stdin and stderr are not the caller's, so a pipe reading the caller's
	# output does not wait for it.
	# shellcheck disable=SC2217
	sleep "$lifetime" </dev/null >"$dir/kubeapi.in" 2>/dev/null &
	echo "$! sleep $lifetime" >>"$dir/kubeapi.pids"

	end=$(($(date +%s) + 10))
	while :; do
		# shellcheck disable=SC2046 # two numbers
		set -- $(ports)
		[ $# -lt 2 ] || break
		running "$server" || die "kubeapi.py exited at start: $(tail -n 5 "$dir/kubeapi.log")"
		[ "$(date +%s)" -lt "$end" ] || die "kubeapi.py did not print its ports within 10 s (see $dir/kubeapi.log)"
		sleep 0.1
	done
	url=https://127.0.0.1:$1
	control=http://127.0.0.1:$2
	if [ -n "$pace" ]; then
		"$PYTHON" -c '
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/__control", data=sys.argv[2].encode(),
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5).read()
' "$control" "{\"op\": \"settings\", \"per_replica_ms\": $pace}" ||
			die "the control API at $control refused the settings"
	fi

	cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubeapi
  cluster:
    server: $url
    certificate-authority: $dir/ca.pem
users:
- name: admin
  user:
    client-certificate: $dir/client.pem
    client-key: $dir/client.key
contexts:
- name: demo
  context: {cluster: kubeapi, user: admin, namespace: ${namespaces%%,*}}
current-context: demo
EOF
	cat >"$dir/kubeapi.env" <<EOF
# written by tests/sandbox/kubeapi.sh up; stop with: tests/sandbox/kubeapi.sh down $dir
KUBEAPI_URL='$url'
KUBEAPI_CONTROL_URL='$control'
KUBEAPI_KUBECONFIG='$dir/kubeconfig'
KUBEAPI_PID=$server
EOF
	ok=1
	echo "kubeapi.sh: API server at $url (namespaces $namespaces), kubeconfig $dir/kubeconfig"
}

[ $# -ge 2 ] || usage
cmd=$1
shift
case $cmd in
up) if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi; cmd_up "$@" ;;
down) [ $# -eq 1 ] || usage; cmd_down "$1" ;;
*) usage ;;
esac
