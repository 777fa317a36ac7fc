#!/usr/bin/env python3
"""The health endpoint of every fake VM (tests/sandbox/vms.sh), in one process.

Each fake VM is an sshd on its own loopback address with its own private
directory over the shared deploy path; what it deploys lands in that private
directory. This server binds ADDR:PORT for every --vm ADDR=ROOTDIR and answers

  GET /healthz  200, body the basename of readlink(ROOTDIR/current), when
                ROOTDIR/current/healthy exists (the release that is live says
                it is healthy); 503 otherwise, also when current is missing
  anything else 404

`current` is a relative symlink (releases/<version>), so it resolves from
outside the VM's mount namespace. Prints "ready" once every address listens.
Stops on SIGTERM, and when its stdin closes if stdin is a pipe, FIFO, socket
or terminal (the test that started it went away).

usage: vmhealth.py --port P --vm ADDR=ROOTDIR [--vm ADDR=ROOTDIR ...]
"""
import argparse
import http.server
import os
import socketserver
import sys
import threading

from common import answer, stop_on_owner_exit


def health(root):
    """(status, body) for the VM whose private files are in root."""
    cur = os.path.join(root, "current")
    try:
        target = os.readlink(cur)
    except OSError:
        return 503, "no current release\n"
    version = os.path.basename(target.rstrip("/"))
    if os.path.exists(os.path.join(cur, "healthy")):
        return 200, version
    return 503, "release %s is not healthy\n" % version


def make_handler(root):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path.split("?", 1)[0] == "/healthz":
                code, text = health(root)
            else:
                code, text = 404, "not found\n"
            answer(self, code, text.encode(), "text/plain")

        def log_message(self, *args):
            pass

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description="health endpoints of the fake VMs")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--vm", action="append", default=[], metavar="ADDR=ROOTDIR")
    args = ap.parse_args()
    if not args.vm:
        ap.error("at least one --vm ADDR=ROOTDIR")
    servers = []
    for spec in args.vm:
        addr, sep, root = spec.partition("=")
        if not sep or not root:
            ap.error("--vm %r is not ADDR=ROOTDIR" % spec)
        if not addr.startswith("127."):
            sys.exit("vmhealth.py serves on loopback only, not %s" % addr)
        servers.append(Server((addr, args.port), make_handler(root)))

    stop = threading.Event()
    # vms.sh up runs it in the background on /dev/null: only SIGTERM stops it then
    stop_on_owner_exit(stop)
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("ready", flush=True)
    stop.wait()
    # no shutdown() one server after the other: each waits up to its 0.5 s poll interval, and
    # the serving threads are daemons that end with the process anyway
    for srv in servers:
        srv.server_close()


if __name__ == "__main__":
    main()
