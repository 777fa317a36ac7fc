# Sourced first by the sandbox scripts, once they have set $here (their own directory):
# root (the checkout), PYTHON, and pids.sh's way of stopping what they start.
#
# Environment: PYTHON (default /usr/bin/python3, else python3).
# shellcheck shell=sh disable=SC2034,SC2154 # root is for the scripts; they set here

root=$(cd "$here/../.." && pwd)
if [ -z "${PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
# shellcheck source=tests/sandbox/pids.sh
. "$here/pids.sh"
