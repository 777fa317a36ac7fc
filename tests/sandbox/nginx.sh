#!/bin/sh
# An nginx load balancer for the traffic-driver tests, confined to one directory.
#
# usage: nginx.sh DIR PORT UPSTREAM [UPSTREAM_FILE]
#
# Writes DIR/nginx.conf and starts nginx as a daemon with DIR as its prefix:
# configuration, pid file (DIR/nginx.pid), error log (DIR/error.log), lock
# file and temp paths all live in DIR, so it runs as the current user without
# touching /etc/nginx, /run or /var. It listens on 127.0.0.1:PORT and proxies
# every request to upstream UPSTREAM, defined in UPSTREAM_FILE (default
# DIR/upstream.conf), the file migrate rewrites; that file must exist.
#
# One worker process: nginx's weighted round-robin is then one deterministic
# sequence, so a test can check the share of requests exactly.
#
# Prints the master's pid. Stop it with `kill -TERM <pid>` or
# `nginx -p DIR/ -c DIR/nginx.conf -s quit`. $NGINX overrides /usr/sbin/nginx.
set -eu

die() {
	echo "nginx.sh: $*" >&2
	exit 1
}

[ $# -eq 3 ] || [ $# -eq 4 ] || die "usage: nginx.sh DIR PORT UPSTREAM [UPSTREAM_FILE]"
dir=$1
port=$2
upstream=$3
file=${4:-$dir/upstream.conf}
nginx=${NGINX:-/usr/sbin/nginx}

# Everything below is written into nginx.conf unquoted: allow only what needs no quoting there.
case $dir$file in
*[!A-Za-z0-9/._-]*) die "paths may only contain letters, digits and / . _ -: $dir $file" ;;
esac
case $dir in
/*) ;;
*) die "DIR must be absolute: $dir" ;;
esac
case $port in
'' | *[!0-9]*) die "PORT must be a number: $port" ;;
esac
case $upstream in
'' | *[!A-Za-z0-9_.-]*) die "UPSTREAM may only contain letters, digits and _ . -: $upstream" ;;
esac
[ -d "$dir" ] || die "no directory $dir"
[ -f "$file" ] || die "no upstream file $file (write it before starting nginx)"

mkdir -p "$dir/temp"

# As root, nginx would switch its workers to "nobody", who cannot enter a
# mkdtemp directory (mode 0700); keep them as the current user instead.
user=
if [ "$(id -u)" -eq 0 ]; then
	user="user $(id -un) $(id -gn);"
fi

cat >"$dir/nginx.conf" <<CONF
# Written by tests/sandbox/nginx.sh; the test owns this nginx.
$user
daemon on;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/error.log notice;

events {
	worker_connections 512;
}

http {
	access_log off;
	client_body_temp_path $dir/temp/body;
	proxy_temp_path $dir/temp/proxy;
	fastcgi_temp_path $dir/temp/fastcgi;
	uwsgi_temp_path $dir/temp/uwsgi;
	scgi_temp_path $dir/temp/scgi;

	include $file;

	server {
		listen 127.0.0.1:$port;
		location / {
			proxy_pass http://$upstream;
			# a failed upstream shows up as a 502 instead of moving the request
			proxy_next_upstream off;
		}
	}
}
CONF

rm -f "$dir/nginx.pid"
# nginx keeps no descriptor of ours once it is a daemon: its output goes to a file.
if ! "$nginx" -p "$dir/" -c "$dir/nginx.conf" </dev/null >"$dir/start.log" 2>&1; then
	cat "$dir/start.log" >&2
	die "nginx did not start"
fi

# The daemon writes its pid file just after the foreground process returns.
i=0
while [ ! -s "$dir/nginx.pid" ]; do
	i=$((i + 1))
	[ $i -le 100 ] || die "nginx wrote no pid file within 5 s (see $dir/error.log)"
	sleep 0.05
done
cat "$dir/nginx.pid"
