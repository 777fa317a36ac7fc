#!/usr/bin/env python3
"""A small HTTP service standing for one VM or for the cluster ingress in the local sandbox.

GET on any path answers 200 with the service's name (so traffic can be told apart behind a
balancer). Faults can be switched on at run time, without a restart, directly on this
process (not through the balancer):

    curl -s -d '{"error_rate": 0.05, "latency_ms": 100}' http://127.0.0.1:PORT/__fault
    curl -s http://127.0.0.1:PORT/__fault

error_rate is the probability (0 to 1) of answering 500 instead of 200; latency_ms (0 to
60000) is added to every answer except those of /__fault itself, so the switch stays quick.
A POST changes only the keys it gives and answers with the settings now in force.

Loopback only. It exits after --max-seconds (default 900), on SIGTERM, and when its stdin
closes if stdin is a pipe, FIFO or terminal (the process that started it went away); with
stdin on /dev/null or a file only the first two apply. Prints "ready" once listening.

usage: app.py --name NAME --port PORT [--host 127.0.0.1] [--max-seconds 900]
              [--error-rate X] [--latency-ms N]
"""
import argparse
import http.server
import json
import os
import random
import signal
import socketserver
import stat
import sys
import threading
import time

MAX_LATENCY_MS = 60000


class Faults:
    """The current fault settings, shared by every request thread."""

    def __init__(self, error_rate, latency_ms):
        self.lock = threading.Lock()
        self.error_rate = error_rate
        self.latency_ms = latency_ms

    def snapshot(self):
        with self.lock:
            return {"error_rate": self.error_rate, "latency_ms": self.latency_ms}

    def update(self, changes):
        """Apply a partial update; returns an error message or None. Nothing changes on error."""
        if not isinstance(changes, dict):
            return 'expected a JSON object such as {"error_rate": 0.05, "latency_ms": 100}'
        unknown = sorted(set(changes) - {"error_rate", "latency_ms"})
        if unknown:
            return "unknown key(s) %s; accepted: error_rate, latency_ms" % ", ".join(unknown)
        new = self.snapshot()
        if "error_rate" in changes:
            v = changes["error_rate"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                return "error_rate must be a number from 0 to 1 (a probability)"
            new["error_rate"] = float(v)
        if "latency_ms" in changes:
            v = changes["latency_ms"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_LATENCY_MS:
                return "latency_ms must be a number from 0 to %d" % MAX_LATENCY_MS
            new["latency_ms"] = v
        with self.lock:
            self.error_rate, self.latency_ms = new["error_rate"], new["latency_ms"]
        return None


def valid_rate(s):
    v = float(s)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError("must be from 0 to 1")
    return v


def valid_latency(s):
    v = float(s)
    if not 0 <= v <= MAX_LATENCY_MS:
        raise argparse.ArgumentTypeError("must be from 0 to %d" % MAX_LATENCY_MS)
    return v


def positive(s):
    v = float(s)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return v


def main():
    ap = argparse.ArgumentParser(description="sandbox HTTP service with run-time fault injection")
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--max-seconds", type=positive, default=900.0)
    ap.add_argument("--error-rate", type=valid_rate, default=0.0)
    ap.add_argument("--latency-ms", type=valid_latency, default=0.0)
    args = ap.parse_args()
    if not args.host.startswith("127."):
        sys.exit("app.py serves on loopback (127.0.0.0/8) only")
    faults = Faults(args.error_rate, args.latency_ms)
    name = args.name

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def reply(self, code, body, ctype="text/plain"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def reply_json(self, code, obj):
            self.reply(code, json.dumps(obj) + "\n", "application/json")

        def do_GET(self):
            if self.path == "/__fault":
                self.reply_json(200, faults.snapshot())
                return
            f = faults.snapshot()
            if f["latency_ms"] > 0:
                time.sleep(f["latency_ms"] / 1000.0)
            if f["error_rate"] > 0 and random.random() < f["error_rate"]:
                self.reply(500, "%s: injected error\n" % name)
            else:
                self.reply(200, name + "\n")

        def do_POST(self):
            if self.path != "/__fault":
                self.reply(404, "POST only to /__fault\n")
                return
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if not 0 <= n <= 65536:
                self.close_connection = True
                self.reply_json(400, {"error": "bad Content-Length"})
                return
            try:
                changes = json.loads(self.rfile.read(n) or b"{}")
            except ValueError as e:
                self.reply_json(400, {"error": "body is not JSON: %s" % e})
                return
            err = faults.update(changes)
            if err:
                self.reply_json(400, {"error": err})
            else:
                self.reply_json(200, faults.snapshot())

        def log_message(self, *a):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    srv = Server((args.host, args.port), Handler)
    stop = threading.Event()

    def watch_stdin():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    try:
        mode = os.fstat(0).st_mode
        owned = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)
    except OSError:
        owned = False
    # /dev/null or a file gives EOF at once: that is no owner going away, so only a pipe counts
    if owned:
        threading.Thread(target=watch_stdin, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("ready", flush=True)
    stop.wait(args.max_seconds)
    srv.shutdown()
    srv.server_close()


if __name__ == "__main__":
    main()
