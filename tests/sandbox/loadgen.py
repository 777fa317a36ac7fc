#!/usr/bin/env python3
"""Steady HTTP load for the sandbox: GET one URL at a fixed rate, never faster.

usage: loadgen.py URL [--rps 100] [--seconds 600] [--threads N] [--timeout 5]

Request start times are handed out from one schedule, at least 1/rps apart; a thread that
falls behind (a slow answer) does not make up for it with a burst, so the rate is a ceiling,
and --threads (default: enough for answers up to about 250 ms at full rate) bounds how many
requests are in flight. Each thread keeps one keep-alive connection. A failed connection or
request is counted as an error, the thread pauses 100 ms and reconnects; nothing stops the run
but the end of --seconds (at most 86400), SIGTERM/SIGINT, or stdin closing when stdin is a
pipe, FIFO or terminal. At exit it prints one summary line:

  loadgen: 6012 requests in 60.1 s (100.0/s): 200=5990 500=22 errors=0 | by server: vm1=3001 vm2=3011
"by server" counts the first word of each answer's body, which the sandbox's app.py makes its
name. With --report N it also prints the same line (for the last N seconds) every N seconds.
"""
import argparse
import collections
import http.client
import math
import os
import sys
import threading
import time
import urllib.parse

# the stop-when-the-owner-goes logic the test servers use
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "servers"))
from common import stop_on_owner_exit  # noqa: E402

MAX_SECONDS = 86400


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.codes = collections.Counter()
        self.servers = collections.Counter()
        self.errors = 0
        self.requests = 0

    def add(self, code=None, server=None):
        with self.lock:
            self.requests += 1
            if code is None:
                self.errors += 1
            else:
                self.codes[code] += 1
                if server:
                    self.servers[server] += 1

    def take(self):
        with self.lock:
            s = (self.requests, dict(self.codes), dict(self.servers), self.errors)
            self.codes.clear()
            self.servers.clear()
            self.errors = self.requests = 0
            return s


def line(requests, codes, servers, errors, seconds):
    rate = requests / seconds if seconds > 0 else 0.0
    parts = ["%s=%d" % (c, n) for c, n in sorted(codes.items())]
    parts.append("errors=%d" % errors)
    by = " ".join("%s=%d" % (s, n) for s, n in sorted(servers.items())) or "-"
    return "loadgen: %d requests in %.1f s (%.1f/s): %s | by server: %s" % (
        requests, seconds, rate, " ".join(parts), by)


def main():
    ap = argparse.ArgumentParser(description="GET a URL at a fixed rate, never faster")
    ap.add_argument("url")
    ap.add_argument("--rps", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--report", type=float, default=0.0)
    args = ap.parse_args()
    u = urllib.parse.urlsplit(args.url)
    if u.scheme != "http" or not u.hostname:
        sys.exit("loadgen.py: %s is not an http:// URL" % args.url)
    if not (u.hostname.startswith("127.") or u.hostname in ("localhost", "::1")):
        sys.exit("loadgen.py: loopback URLs only")
    if not 0 < args.rps <= 10000:
        sys.exit("loadgen.py: --rps must be above 0 and at most 10000")
    if not 0 < args.seconds <= MAX_SECONDS:
        sys.exit("loadgen.py: --seconds must be above 0 and at most %d" % MAX_SECONDS)
    threads = args.threads or max(4, min(64, math.ceil(args.rps / 4)))
    if not 1 <= threads <= 512:
        sys.exit("loadgen.py: --threads must be from 1 to 512")
    host, port = u.hostname, u.port or 80
    path = (u.path or "/") + ("?" + u.query if u.query else "")

    stats = Stats()
    total = Stats()
    stop = threading.Event()
    sched = {"next": time.monotonic()}
    sched_lock = threading.Lock()
    gap = 1.0 / args.rps

    def next_slot():
        """The start time of this thread's next request: one gap after the last slot handed out,
        or now if that is already past, so no backlog builds up to be sent in a burst."""
        with sched_lock:
            t = max(sched["next"], time.monotonic())
            sched["next"] = t + gap
        return t

    def worker():
        conn = None
        while not stop.is_set():
            t = next_slot()
            d = t - time.monotonic()
            if d > 0 and stop.wait(d):
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read(256)
                if not r.isclosed():
                    r.read()
                words = body.split(None, 1)
                server = words[0].decode("ascii", "replace").rstrip(":")[:32] if words else ""
                stats.add(r.status, server)
                total.add(r.status, server)
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                stats.add()
                total.add()
                if conn is not None:
                    conn.close()
                    conn = None
                stop.wait(0.1)
        if conn is not None:
            conn.close()

    stop_on_owner_exit(stop)

    start = time.monotonic()
    end = start + args.seconds
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for th in pool:
        th.start()
    print("loadgen: %s at %g/s with %d threads for at most %g s" % (
        args.url, args.rps, threads, args.seconds), flush=True)
    last = start
    while not stop.is_set():
        now = time.monotonic()
        wake = end
        if args.report > 0:
            wake = min(end, last + args.report)
        if now >= end:
            break
        if stop.wait(max(0.0, wake - now)):
            break
        now = time.monotonic()
        if args.report > 0 and now - last >= args.report:
            print(line(*stats.take(), now - last), flush=True)
            last = now
    stop.set()
    for th in pool:
        th.join(args.timeout + 1)
    print(line(*total.take(), time.monotonic() - start), flush=True)


if __name__ == "__main__":
    main()
