#!/bin/sh
# What `make demo` runs: one build deployed to fake VMs and to a Kubernetes API at once, then a
# real migration in a local sandbox (tests/sandbox/sandbox.sh); loopback only, all torn down at
# the end whatever happens (Ctrl-C included). Act 0 needs root (the fake VMs' sshd and mount
# namespaces); without it act 0 is skipped, and says so.
#
# Act 0 ships one build to both sides with plans/demo-deploy.yaml: three fake VMs, each a real
# sshd on its own loopback address (tests/sandbox/vms.sh), and a Kubernetes API server with a
# Deployment controller (tests/sandbox/kubeapi.sh, the stand-in the integration tests use).
#
# The sandbox of acts 1 and 2 is a real HAProxy as the external balancer (two "VM" servers and
# one "cluster" server), a real Prometheus scraping HAProxy's exporter every second, and 100
# requests a second of load. The plan is plans/demo.yaml: steps 10-25-50-100%, 6 s bake,
# gates every second over a 10 s window.
#
#   Act 0: `migrate deploy` puts 1.0.0 on the VMs (host by host, health-checked) and on the
#          cluster (server-side apply, rollout wait) at once; `status` shows both versions;
#          1.1.0 follows as a rolling update, and `rollback --release` takes both sides back.
#   Act 1: `migrate run` takes the healthy cluster from 0% to 100%, one gated step at a time.
#   Act 2: back to the VMs; the autopilot goes to 25%, the cluster starts answering 5% of its
#          requests with errors, and the autopilot rolls back by itself; `migrate history`
#          says why, with the numbers.
#   Last:  `migrate report` writes the page of acts 1 and 2 (traffic, verdicts, errors and
#          latency per side from the sandbox's Prometheus) to build/demo-report.html, which
#          outlives the sandbox, and says where it is.
set -eu
cd "$(dirname "$0")/.."
bold="" reset="" dim=""
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
	bold=$(printf '\033[1m') dim=$(printf '\033[2m') reset=$(printf '\033[0m')
fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$reset"; }
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$reset"; "$@"; }
# a step whose non-zero exit is part of the story
step_rc() { printf '\n%s$ %s%s\n' "$bold" "$*" "$reset"; rc=0; "$@" || rc=$?; printf '%s(exit %s)%s\n' "$dim" "$rc" "$reset"; }

if [ -z "${PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
# everything here is on loopback; a proxy from the environment must not see any of it
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

dir=$(mktemp -d /tmp/migrate-demo.XXXXXX)
act0_down() {
	tests/sandbox/kubeapi.sh down "$dir/kubeapi" >/dev/null 2>&1 || true
	tests/sandbox/vms.sh down "$dir/vms" >/dev/null 2>&1 || true
}
cleanup() {
	act0_down
	tests/sandbox/sandbox.sh down "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step ./migrate --version

# render_deploy_plan DST: plans/demo-deploy.yaml with this run's hosts, ports and directories
# (see its header); needs vms.env's variables
render_deploy_plan() {
	"$PYTHON" -c '
import sys
src, dst, hosts, vms_path, health_port, templates = sys.argv[1:]
text = open(src).read()
hosts = "".join("    " + line for line in open(hosts).read().splitlines(True))
subs = [("    - {name: vm-01, address: 127.0.1.1, port: 2222}\n"
         "    - {name: vm-02, address: 127.0.1.2, port: 2222}\n"
         "    - {name: vm-03, address: 127.0.1.3, port: 2222}\n", hosts),
        ("path: /tmp/migrate-demo/vms/deploy\n", "path: %s\n" % vms_path),
        (":8081/healthz", ":%s/healthz" % health_port),
        ("templates: ../templates/web\n", "templates: %s\n" % templates)]
for old, new in subs:
    if text.count(old) != 1:
        sys.exit("%s: expected %r exactly once" % (src, old))
    text = text.replace(old, new)
open(dst, "w").write(text)
' plans/demo-deploy.yaml "$1" "$VMS_DIR/hosts.yaml" "$VMS_PATH" "$VMS_HEALTH_PORT" \
		"$PWD/templates/web"
}

# Act 0: the deploy of one release to both sides, its update and its rollback. Its servers are
# stopped at its end, before the sandbox of acts 1 and 2 starts.
act0() {
	say "Act 0: ship the same build to both sides: three VMs over SSH and a Kubernetes cluster"
	tests/sandbox/vms.sh up "$dir/vms" 3
	KUBEAPI_PER_REPLICA_MS=150 tests/sandbox/kubeapi.sh up "$dir/kubeapi" demo
	# shellcheck disable=SC1091 # written by vms.sh up
	. "$dir/vms/vms.env"
	# the build: a tarball per release; the VMs' health server wants a file named `healthy`
	mkdir -p "$dir/artifacts"
	for v in 1.0.0 1.1.0; do
		mkdir -p "$dir/artifacts/src-$v"
		echo "$v" >"$dir/artifacts/src-$v/version.txt"
		: >"$dir/artifacts/src-$v/healthy"
		tar -czf "$dir/artifacts/web-$v.tar.gz" -C "$dir/artifacts/src-$v" .
	done
	render_deploy_plan "$dir/deploy.yaml"
	d() { ./migrate -p "$dir/deploy.yaml" --state-dir "$dir/state" "$@"; }
	printf '%s(each VM is a real sshd on 127.0.1.x with its own files; the cluster rolls 3 pods one by one)%s\n' "$dim" "$reset"

	step d deploy --version 1.0.0 --reason "demo: first release"
	step d status
	step d deploy --version 1.1.0 --reason "demo: a rolling update"
	printf '%s(one VM at a time, each health-checked before the next; the Deployment replaced its pods)%s\n' "$dim" "$reset"
	step d status
	step d rollback --release --reason "demo: back to the release before"
	step d status
	act0_down
}

if [ "$(id -u)" = 0 ]; then
	act0
else
	say "Act 0 (ship the same build to VMs and a cluster) is skipped: the fake VMs need root"
fi

say "Starting the sandbox: haproxy, prometheus, two VMs, one cluster server, 100 req/s"
tests/sandbox/sandbox.sh up "$dir"
. "$dir/sandbox.env"
m() { ./migrate -p "$PLAN" --state-dir "$dir/state" "$@"; }

step ./migrate validate -p "$PLAN"

say "Act 1: a healthy cluster, from 0% to 100% with the gates checked every second"
step m status
step m run
step m status --offline

say "Act 2: all traffic back on the VMs, then a cluster that fails at 25%"
step m rollback --reason "demo: act 2"
step m run --until 25
step tests/sandbox/sandbox.sh fault "$dir" k8s1 error_rate=0.25
printf '%s(k8s1 now answers 25%% of its requests with HTTP 500, five times the plan'"'"'s 5%%; the VMs are fine)%s\n' "$dim" "$reset"
step_rc m run
step m status --offline

say "Why did traffic move? The journal has the numbers"
step m history --limit 4

say "The whole run on one page: traffic, gate verdicts, errors and latency per side"
mkdir -p build
report="$PWD/build/demo-report.html"
step m report --out "$report"
printf '%s(open it in a browser: file://%s; it loads nothing from anywhere)%s\n' "$dim" "$report" "$reset"
say "Done: the sandbox is torn down now; the report stays in $report"
