#!/bin/sh
# What `make demo` runs: the real binary on the example plan, first checking
# it, then showing what it would do. Later issues extend this into a full
# migration against real daemons in a local sandbox (tests/sandbox/).
set -eu
cd "$(dirname "$0")/.."
bold=""; reset=""
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$(printf '\033[1m'); reset=$(printf '\033[0m'); fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$reset"; "$@"; }

step ./migrate --version
step ./migrate validate -p plans/example.yaml
step ./migrate plan -p plans/example.yaml
step ./migrate validate tests/fixtures/plans/four-errors.yaml || echo "(exit $?: a plan with four mistakes, all reported at once)"
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
step ./migrate status -p plans/example.yaml --state-dir "$state"
