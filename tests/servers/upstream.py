#!/usr/bin/env python3
"""A stand-in for one VM or cluster server behind the balancer under test.

Answers every GET with its own name, so a test that sends N requests through
the balancer can count where they went. Loopback only; stops on SIGTERM or
when its parent test dies (stdin closes).

usage: upstream.py NAME HOST PORT
"""
import http.server
import socketserver
import sys
import threading

from common import answer


def main():
    name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if not host.startswith("127.") and host != "::1":
        sys.exit("upstream.py serves on loopback only")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            answer(self, 200, (name + "\n").encode(), "text/plain")

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server((host, port), Handler)
    # the test that started us owns our stdin: when it goes, we go
    threading.Thread(target=lambda: (sys.stdin.read(), srv.shutdown()), daemon=True).start()
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
