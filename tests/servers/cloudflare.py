#!/usr/bin/env python3
"""A strict stand-in for the Cloudflare API v4 (load balancers and pool health), for tests.

Serves HTTPS on 127.0.0.1 with the certificate given, and a plain-HTTP control
API on a second loopback port that only tests use. Prints "port N" and then
"control N" once both listen. Stops on SIGTERM or when stdin closes (the test
that started it is gone).

usage: cloudflare.py CERT KEY TOKEN

What it follows (Cloudflare's published OpenAPI schema, cloudflare/api-schemas):
  - every answer is the v4 envelope {"success", "errors", "messages", "result"};
  - GET/PATCH /zones/{zone_id}/load_balancers/{load_balancer_id}: the load
    balancer object (schema load-balancing_load-balancer); PATCH changes only
    the fields sent; steering_policy is one of the schema's enum values;
    random_steering is {default_weight: 0..1 in steps of 0.1, pool_weights:
    {pool id: number}} (schema load-balancing_random_steering);
  - GET /accounts/{account_id}/load_balancers/pools/{pool_id}/health: schema
    load-balancing_health_details, i.e. {"pool_id": ..., "pop_health": {"<PoP
    name>": {"healthy": bool, "origins": [{"<address>": {"healthy": bool,
    "rtt": "12.1ms", "failure_reason": "No failures", "response_code": 200}}]}}}.
Error codes: 10000 "Authentication error" (bad or missing token), 7003 "Could
not route to ..., perhaps your object identifier is invalid?" for ids that do
not exist, 7000 "No route for that URI", 6003/6105 for a wrong Content-Type and
1002 "...: validation failed" for a rejected body are the ones Cloudflare is
seen to send; 971 for rate limiting likewise. Status codes for them follow
what Cloudflare documents (4XX with the envelope).

Control API (JSON bodies):
  POST /queue    {"status": 429, "retry_after": "2"} | {"status": 500} |
                 {"status": 409, "code": 1003, "message": "..."} |
                 {"kind": "success_false", "message": "..."} | {"kind": "html"} |
                 {"kind": "no_result"} | {"kind": "slow", "ms": 1500} |
                 {"status": 302, "location": "..."} |
                 {"status": 400, "message": "...", "echo_auth": true} (quotes the
                 Authorization header back in the message)
                 optional "method" and "path" (a substring) pick which request
                 it applies to, "count" queues that many; each is used once.
  POST /echo     {"on": true[, "lb": true][, "patch": false]}: a careless server quoting the credential
                 back (common.echo_text: the Authorization header and the bare token
                 straddling every usual cut, > 2 KiB) on every endpoint: the health of
                 the VM pool answers 400 with it, the cluster pool's health is unhealthy
                 with it as the failure_reason, PATCH answers 400 with it (and in an
                 error_chain; not with "patch": false), GET of the load balancer too
                 with "lb"; every answer
                 also has it in an X-Echo header. {"on": false} ends it
  GET  /queue    what is still queued
  POST /health   {"pool_id": ..., "pop_health": {...}} or {"pool_id": ..., "unavailable": true}
  GET  /lb       the load balancer as stored;  PUT /lb replaces it
  GET  /log      every API request: method, path, headers (without
                 Authorization), auth ("valid", "invalid", "missing"), body,
                 status answered, behaviour used;  DELETE /log clears it
"""
import copy
import json
import math
import ssl
import sys
import threading
import time

from common import Handler, answer, echo_text, serve_with_control, tls_server

ACCOUNT = "01a7362d577a6c3019a474fd6f485823"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
LB = "699d98642c564d2e855e9661899b7252"
VM_POOL = "17b5962d775c646f3f9725cbc7a53df4"
K8S_POOL = "9290f38c5d07c2e2f4df57b1f61d4196"
DR_POOL = "de90f38ced07c2e2f4df50b1f61d4194"
POOLS = [VM_POOL, K8S_POOL, DR_POOL]

STEERING = ["off", "geo", "random", "dynamic_latency", "proximity",
            "least_outstanding_requests", "least_connections", ""]
PATCHABLE = {"adaptive_routing", "country_pools", "default_pools", "description", "enabled",
             "fallback_pool", "location_strategy", "name", "networks", "pop_pools", "proxied",
             "random_steering", "region_pools", "rules", "session_affinity",
             "session_affinity_attributes", "session_affinity_ttl", "steering_policy", "ttl"}

lock = threading.Lock()
state = {
    "lb": {
        "id": LB,
        "name": "www.example.com",
        "description": "test load balancer",
        "created_on": "2024-01-01T00:00:00.000000Z",
        "modified_on": "2024-01-01T00:00:00.000000Z",
        "enabled": True,
        "proxied": True,
        "ttl": 30,
        "steering_policy": "off",
        "default_pools": [VM_POOL, DR_POOL],
        "fallback_pool": DR_POOL,
        "region_pools": {},
        "country_pools": {},
        "pop_pools": {},
        "session_affinity": "none",
        "rules": [],
        "zone_name": "example.com",
    },
    "health": {},
    "queue": [],
    "log": [],
    "echo": None,
}


def healthy_pool(pool_id):
    return {"pool_id": pool_id, "pop_health": {
        "Amsterdam, NL": {"healthy": True, "origins": [
            {"192.0.2.10": {"healthy": True, "rtt": "12.1ms",
                            "failure_reason": "No failures", "response_code": 200}}]},
        "Singapore, SG": {"healthy": True, "origins": [
            {"192.0.2.10": {"healthy": True, "rtt": "160.4ms",
                            "failure_reason": "No failures", "response_code": 200}}]},
    }}


for p in POOLS:
    state["health"][p] = healthy_pool(p)


def envelope(result=None, errors=None, success=None):
    errors = errors or []
    return {"success": not errors if success is None else success, "errors": errors,
            "messages": [], "result": result}


def err(code, message, **extra):
    e = {"code": code, "message": message}
    e.update(extra)
    return e


class Invalid(Exception):
    pass


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_patch(lb, patch):
    """The load balancer after patch, or Invalid with Cloudflare's kind of message."""
    if not isinstance(patch, dict):
        raise Invalid("the request body must be a JSON object: validation failed")
    for k in patch:
        if k not in PATCHABLE:
            raise Invalid(f"unknown or read-only field \"{k}\": validation failed")
    new = copy.deepcopy(lb)
    new.update(copy.deepcopy(patch))
    if new.get("steering_policy") not in STEERING:
        raise Invalid("steering_policy must be one of %s: validation failed" %
                      ", ".join(repr(s) for s in STEERING))
    dp = new.get("default_pools")
    if not isinstance(dp, list) or not dp:
        raise Invalid("default_pools must be a non-empty list of pool ids: validation failed")
    for p in dp:
        if not isinstance(p, str) or p not in POOLS:
            raise Invalid(f"pool {p!r} in default_pools does not exist: validation failed")
    if len(set(dp)) != len(dp):
        raise Invalid("default_pools contains a pool twice: validation failed")
    if new.get("fallback_pool") not in POOLS:
        raise Invalid(f"fallback_pool {new.get('fallback_pool')!r} does not exist: "
                      "validation failed")
    rs = new.get("random_steering")
    if rs is not None:
        if not isinstance(rs, dict):
            raise Invalid("random_steering must be an object: validation failed")
        for k in rs:
            if k not in ("default_weight", "pool_weights"):
                raise Invalid(f"unknown field random_steering.{k}: validation failed")
        if "default_weight" in rs:
            w = rs["default_weight"]
            if not is_number(w) or w < 0 or w > 1 or abs(w * 10 - round(w * 10)) > 1e-9:
                raise Invalid("random_steering.default_weight must be a number from 0 to 1 "
                              "in steps of 0.1: validation failed")
        pw = rs.get("pool_weights", {})
        if not isinstance(pw, dict):
            raise Invalid("random_steering.pool_weights must be an object: validation failed")
        for p, w in pw.items():
            if p not in POOLS:
                raise Invalid(f"pool {p} in random_steering.pool_weights does not exist: "
                              "validation failed")
            if p not in dp:
                raise Invalid(f"pool {p} in random_steering.pool_weights is not one of "
                              "default_pools: validation failed")
            if not is_number(w) or w < 0 or w > 1:
                raise Invalid(f"random_steering.pool_weights[{p}] must be a number from 0 "
                              "to 1: validation failed")
    for k in ("enabled", "proxied"):
        if not isinstance(new.get(k), bool):
            raise Invalid(f"{k} must be a boolean: validation failed")
    return new


def take_behaviour(method, path):
    with lock:
        for i, b in enumerate(state["queue"]):
            if b.get("method") and b["method"] != method:
                continue
            if b.get("path") and b["path"] not in path:
                continue
            return state["queue"].pop(i)
    return None


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    cert, key, token = sys.argv[1], sys.argv[2], sys.argv[3]

    class Api(Handler):
        def send(self, status, doc, content_type="application/json", headers=()):
            answer(self, status, doc, content_type, headers)
            self.entry["status"] = status

        def handle_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n > 0 else b""
            auth = self.headers.get("Authorization")
            self.entry = {
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()
                            if k.lower() != "authorization"},
                "auth": "missing" if auth is None else
                        "valid" if auth == "Bearer " + token else "invalid",
                "body": raw.decode("utf-8", "replace"),
                "status": None,
                "behaviour": None,
            }
            try:
                self.dispatch(raw)
            finally:
                with lock:
                    state["log"].append(self.entry)

        def echo(self):
            """The echo mode's answer for this request; False when it answers normally."""
            with lock:
                mode = copy.deepcopy(state["echo"])
            if not mode:
                return False
            auth = self.headers.get("Authorization")
            text = echo_text(auth, self.command)
            hdr = [("X-Echo", str(auth))]
            failed = envelope(errors=[err(1002, text, error_chain=[err(1003, text)])])
            if self.path.endswith("/pools/%s/health" % VM_POOL):
                self.send(400, failed, headers=hdr)
            elif self.path.endswith("/pools/%s/health" % K8S_POOL):
                self.send(200, envelope({"pool_id": K8S_POOL, "pop_health": {
                    "Amsterdam, NL": {"healthy": False, "origins": [{"192.0.2.20": {
                        "healthy": False, "rtt": "0ms", "failure_reason": text,
                        "response_code": 401}}]}}}), headers=hdr)
            elif (self.command == "PATCH" and mode.get("patch", True)) or mode.get("lb"):
                self.send(400, failed, headers=hdr)
            else:
                return False
            return True

        def dispatch(self, raw):
            if self.echo():
                return
            b = take_behaviour(self.command, self.path)
            if b is not None:
                self.entry["behaviour"] = b
                if self.behave(b):
                    return
            if self.entry["auth"] != "valid":
                status = 400 if self.entry["auth"] == "missing" else 403
                return self.send(status, envelope(errors=[err(10000, "Authentication error")]))
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:2] != ["client", "v4"]:
                return self.send(404, envelope(errors=[err(7000, "No route for that URI")]))
            parts = parts[2:]
            bad_id = envelope(errors=[
                err(7003, "Could not route to /%s, perhaps your object identifier is invalid?"
                    % "/".join(parts)),
                err(7000, "No route for that URI")])
            if len(parts) == 4 and parts[0] == "zones" and parts[2] == "load_balancers":
                if parts[1] != ZONE or parts[3] != LB:
                    return self.send(404, bad_id)
                if self.command == "GET":
                    with lock:
                        return self.send(200, envelope(copy.deepcopy(state["lb"])))
                if self.command == "PATCH":
                    return self.patch(raw)
                return self.send(405, envelope(errors=[err(10405, "Method not allowed")]))
            if (len(parts) == 6 and parts[0] == "accounts" and parts[2:4] ==
                    ["load_balancers", "pools"] and parts[5] == "health"):
                if parts[1] != ACCOUNT or parts[4] not in POOLS:
                    return self.send(404, bad_id)
                if self.command != "GET":
                    return self.send(405, envelope(errors=[err(10405, "Method not allowed")]))
                with lock:
                    h = copy.deepcopy(state["health"].get(parts[4]))
                if h is None or h.get("unavailable"):
                    return self.send(400, envelope(errors=[err(1002, "Health info unavailable")]))
                return self.send(200, envelope(h))
            return self.send(404, envelope(errors=[err(7000, "No route for that URI")]))

        def patch(self, raw):
            ct = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ct != "application/json":
                return self.send(400, envelope(errors=[err(
                    6003, "Invalid request headers", error_chain=[err(
                        6105, "Invalid Content-Type header, valid values are "
                        "application/json,multipart/form-data")])]))
            try:
                doc = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                return self.send(400, envelope(errors=[err(1002, f"invalid JSON: {e}: "
                                                                  "validation failed")]))
            with lock:
                try:
                    new = validate_patch(state["lb"], doc)
                except Invalid as e:
                    return self.send(400, envelope(errors=[err(1002, str(e))]))
                new["modified_on"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
                state["lb"] = new
                result = copy.deepcopy(new)
            return self.send(200, envelope(result))

        def behave(self, b):
            """Answers as the queued behaviour says; False to go on answering normally."""
            kind = b.get("kind")
            if kind == "slow":
                time.sleep(b.get("ms", 1000) / 1000.0)
                return False
            if kind == "success_false":
                self.send(200, envelope(errors=[err(b.get("code", 1000), b.get(
                    "message", "something went wrong"))], success=False))
            elif kind == "html":
                self.send(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>\n",
                          "text/html")
            elif kind == "no_result":
                self.send(200, {"success": True, "errors": [], "messages": []})
            else:
                status = b.get("status", 500)
                headers = []
                if "retry_after" in b:
                    headers.append(("Retry-After", str(b["retry_after"])))
                if "location" in b:
                    headers.append(("Location", b["location"]))
                default = {429: (971, "Please wait and consider throttling your request "
                                      "speed")}.get(status, (10001, "Internal Server Error"))
                message = b.get("message", default[1])
                if b.get("echo_auth"):
                    # a careless server quoting the request back: the client must not repeat it
                    message += ": " + str(self.headers.get("Authorization"))
                self.send(status, envelope(errors=[err(b.get("code", default[0]), message)]),
                          headers=headers)
            return True

        do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = handle_any

    class Control(Handler):
        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n).decode() or "null")

        def do_GET(self):
            with lock:
                if self.path == "/log":
                    return self.reply(200, state["log"])
                if self.path == "/lb":
                    return self.reply(200, state["lb"])
                if self.path == "/queue":
                    return self.reply(200, state["queue"])
            self.reply(404, {"error": "no such control endpoint"})

        def do_POST(self):
            doc = self.body()
            with lock:
                if self.path == "/queue":
                    n = doc.pop("count", 1)
                    state["queue"].extend(copy.deepcopy(doc) for _ in range(n))
                    return self.reply(200, {"queued": len(state["queue"])})
                if self.path == "/health":
                    state["health"][doc["pool_id"]] = doc
                    return self.reply(200, {})
                if self.path == "/echo":
                    state["echo"] = doc if doc.get("on") else None
                    return self.reply(200, {})
            self.reply(404, {"error": "no such control endpoint"})

        def do_PUT(self):
            doc = self.body()
            with lock:
                if self.path == "/lb":
                    state["lb"] = doc
                    return self.reply(200, {})
            self.reply(404, {"error": "no such control endpoint"})

        def do_DELETE(self):
            with lock:
                if self.path == "/log":
                    state["log"].clear()
                    return self.reply(200, {})
            self.reply(404, {"error": "no such control endpoint"})

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    serve_with_control(tls_server(ctx, Api), Control)


if __name__ == "__main__":
    main()
