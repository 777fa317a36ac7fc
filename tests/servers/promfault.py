#!/usr/bin/env python3
"""A strict stand-in for Prometheus' query API that misbehaves on request, for tests.

A real Prometheus (tu_prometheus_start) covers the answers; this covers what a
real one cannot be made to do: sit behind a proxy that wants a token, fail,
stall, or not be Prometheus at all. Serves plain HTTP on 127.0.0.1, prints
"port N" once it listens, stops when stdin closes (the test that started it
is gone) or on SIGTERM.

usage: promfault.py [--token T] [--fail N] [--slow MS] [--html] [--not-found]
                    [--warning TEXT]... [--echo error|warning] [--tls CERT KEY]

  --token T       /api/v1/* wants "Authorization: Bearer T": 401 without it
  --fail N        the first N API requests get 503 (text/plain, as a proxy sends)
  --slow MS       every API request waits MS ms before its answer
  --html          API requests get a 200 text/html page
  --not-found     API requests get 404 "404 page not found" (Prometheus' own text)
  --warning TEXT  added to "warnings" of every successful answer (repeatable)
  --echo KIND     a careless proxy quoting the credential back (common.echo_text:
                  the Authorization header, and the bare token straddling every usual
                  cut): "error" answers every API request 422 with it as the error,
                  "warning" answers successfully with it as a warning; both add it in
                  an X-Echo header
  --tls CERT KEY  serve HTTPS with this certificate and key

What it checks like Prometheus 2.x (web/api/v1/api.go): GET only; query is
required; time, start, end and step are Unix seconds ("1767225620.000");
step > 0 and end >= start; a parameter it does not know, or one given twice,
is refused. Refusals are Prometheus' envelope, {"status": "error",
"errorType": "bad_data", "error": "..."} with HTTP 400. Successes are the
envelope {"status": "success", "data": {"resultType", "result"}}: a vector of
one series up{job="promfault",instance="fault:9"} with value "1" at the time asked, or the same
series as a matrix with one sample per step from start to end.

GET /log (no token needed) is every API request so far: path, params
(decoded), raw (the query string as sent), auth ("valid", "invalid",
"missing") and the status answered.
"""
import argparse
import re
import ssl
import threading
import time
import urllib.parse

from common import Handler, Server, answer, echo_text, exit_when_stdin_closes

NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
# not in sorted order, unlike Prometheus: the client must not rely on the order
SERIES = {"job": "promfault", "__name__": "up", "instance": "fault:9"}
ALLOWED = {"/api/v1/query": {"query", "time", "timeout"},
           "/api/v1/query_range": {"query", "start", "end", "step", "timeout"}}


class BadData(Exception):
    pass


def seconds(params, name, default=None):
    v = params.get(name)
    if v is None:
        if default is None:
            raise BadData(f'invalid parameter "{name}": cannot parse "" to a valid timestamp')
        return default
    if not NUMBER.match(v):
        raise BadData(f'invalid parameter "{name}": cannot parse "{v}" to a valid timestamp')
    return float(v)


def number(t):
    """Seconds as Prometheus writes them: an integer when whole, else a float."""
    return int(t) if t == int(t) else t


def main():
    ap = argparse.ArgumentParser(description="Prometheus API stand-in that misbehaves")
    ap.add_argument("--token")
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--slow", type=int, default=0)
    ap.add_argument("--html", action="store_true")
    ap.add_argument("--not-found", action="store_true")
    ap.add_argument("--warning", action="append", default=[])
    ap.add_argument("--echo", choices=("error", "warning"))
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with these")
    opt = ap.parse_args()

    lock = threading.Lock()
    log = []
    failures = [opt.fail]

    class Api(Handler):
        def send(self, status, body, content_type="application/json"):
            headers = ()
            if opt.echo:
                headers = (("X-Echo", str(self.headers.get("Authorization"))),)
            answer(self, status, body, content_type, headers)
            if self.entry is not None:
                self.entry["status"] = status

        def do_GET(self):
            self.entry = None
            path, _, raw = self.path.partition("?")
            if path == "/log":
                with lock:
                    return self.send(200, log)
            if path not in ALLOWED:
                return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            auth = self.headers.get("Authorization")
            self.entry = {"path": path, "raw": raw, "params": None, "status": None,
                          "auth": "missing" if auth is None else
                          "valid" if opt.token and auth == "Bearer " + opt.token else "invalid"}
            with lock:
                log.append(self.entry)
            self.api(path, raw)

        def api(self, path, raw):
            if opt.token and self.entry["auth"] != "valid":
                return self.send(401, b"Unauthorized\n", "text/plain; charset=utf-8")
            if opt.not_found:
                return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            if opt.html:
                return self.send(200, b"<!DOCTYPE html><html><body><h1>Grafana</h1></body>"
                                      b"</html>\n", "text/html; charset=utf-8")
            if opt.slow:
                time.sleep(opt.slow / 1000.0)
            with lock:
                fail = failures[0] > 0
                failures[0] -= fail
            if fail:
                return self.send(503, b"upstream unavailable\n", "text/plain; charset=utf-8")
            if opt.echo == "error":
                return self.send(422, {"status": "error", "errorType": "execution",
                                       "error": echo_text(self.headers.get("Authorization"),
                                                          "query")})
            try:
                data = self.evaluate(path, raw)
            except BadData as e:
                return self.send(400, {"status": "error", "errorType": "bad_data",
                                       "error": str(e)})
            doc = {"status": "success", "data": data}
            if opt.warning:
                doc["warnings"] = opt.warning
            if opt.echo == "warning":
                doc["warnings"] = [echo_text(self.headers.get("Authorization"), "query")]
            self.send(200, doc)

        def evaluate(self, path, raw):
            try:
                pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True,
                                               strict_parsing=True, errors="strict")
            except (ValueError, UnicodeDecodeError) as e:
                raise BadData(f"invalid query string: {e}")
            params = {}
            for k, v in pairs:
                if k not in ALLOWED[path]:
                    raise BadData(f'unknown parameter "{k}"')
                if k in params:
                    raise BadData(f'parameter "{k}" given twice')
                params[k] = v
            self.entry["params"] = params
            if not params.get("query"):
                raise BadData('invalid parameter "query": unknown position: parse error: '
                              'no expression found in input')
            if path == "/api/v1/query":
                t = seconds(params, "time", time.time())
                return {"resultType": "vector",
                        "result": [{"metric": SERIES, "value": [number(t), "1"]}]}
            start, end = seconds(params, "start"), seconds(params, "end")
            step = seconds(params, "step")
            if end < start:
                raise BadData('invalid parameter "end": end timestamp must not be before '
                              'start time')
            if step <= 0:
                raise BadData('invalid parameter "step": zero or negative query resolution '
                              'step widths are not accepted. Try a positive integer')
            if (end - start) / step > 11000:
                raise BadData("exceeded maximum resolution of 11,000 points per timeseries. "
                              "Try decreasing the query resolution (?step=XX)")
            values, t = [], start
            while t <= end + 1e-9:
                values.append([number(round(t, 3)), "1"])
                t += step
            return {"resultType": "matrix", "result": [{"metric": SERIES, "values": values}]}

        def refuse(self):
            self.entry = None
            self.send(405, b"method not allowed\n", "text/plain; charset=utf-8")

        do_POST = do_PUT = do_PATCH = do_DELETE = refuse

    srv = Server(("127.0.0.1", 0), Api)
    if opt.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opt.tls[0], opt.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("port", srv.server_address[1], flush=True)
    exit_when_stdin_closes()
    srv.serve_forever()


if __name__ == "__main__":
    main()
