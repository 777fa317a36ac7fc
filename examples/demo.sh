#!/bin/sh
# What `make demo` runs: a real migration in a local sandbox (tests/sandbox/sandbox.sh), on
# loopback only, torn down at the end whatever happens.
#
# The sandbox is a real HAProxy as the external balancer (two "VM" servers and one "cluster"
# server), a real Prometheus scraping HAProxy's exporter every second, and 100 requests a
# second of load. The plan is plans/demo.yaml: steps 10-25-50-100%, 6 s bake, gates every
# second over a 10 s window.
#
#   Act 1: `migrate run` takes the healthy cluster from 0% to 100%, one gated step at a time.
#   Act 2: back to the VMs; the autopilot goes to 25%, the cluster starts answering 5% of its
#          requests with errors, and the autopilot rolls back by itself; `migrate history`
#          says why, with the numbers.
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

dir=$(mktemp -d /tmp/migrate-demo.XXXXXX)
cleanup() {
	tests/sandbox/sandbox.sh down "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting the sandbox: haproxy, prometheus, two VMs, one cluster server, 100 req/s"
tests/sandbox/sandbox.sh up "$dir"
. "$dir/sandbox.env"
m() { ./migrate -p "$PLAN" --state-dir "$dir/state" "$@"; }

step ./migrate --version
step ./migrate validate -p "$PLAN"

say "Act 1: a healthy cluster, from 0% to 100% with the gates checked every second"
step m status
step m run
step m status --offline

say "Act 2: all traffic back on the VMs, then a cluster that fails at 25%"
step m rollback --reason "demo: act 2"
step m run --until 25
step tests/sandbox/sandbox.sh fault "$dir" k8s1 error_rate=0.05
printf '%s(k8s1 now answers 5%% of its requests with HTTP 500; the VMs are fine)%s\n' "$dim" "$reset"
step_rc m run
step m status --offline

say "Why did traffic move? The journal has the numbers"
step m history --limit 4

say "Done: the sandbox is torn down now"
