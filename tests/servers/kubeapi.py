#!/usr/bin/env python3
"""A strict stand-in for the Kubernetes API server, for tests (Debian has no kube-apiserver).

It behaves like the real one where a client can get it wrong, and only there.
Serves HTTPS on 127.0.0.1 and a plain-HTTP control API on a second loopback
port that only tests use. Prints "port N" and then "control N" once both
listen. Stops on SIGTERM or when stdin closes (the test that started it is gone).

usage: kubeapi.py --cert PEM --key KEY [--client-ca PEM] [--tokens JSON]
                  [--namespaces default,staging]
                  [--sni-name NAME --sni-cert PEM --sni-key KEY]

--sni-cert is served instead of --cert to a client whose TLS SNI is NAME
(how a server behind a name-routing proxy looks to kubeconfig's
tls-server-name); every request's SNI and Host header are in the log.

Authentication (as kube-apiserver with --client-ca-file, a token file and
anonymous auth off): a client certificate signed by --client-ca is user CN,
groups O; else "Authorization: Bearer T" with T in the tokens file
({"T": {"user": "ci", "groups": [...], "expires": unix seconds, "id": "name"}});
an unknown or expired token, or none at all, is 401 Status Unauthorized (the
Status body kube-apiserver sends: reason Unauthorized, code 401). Tokens
rotate as the kubelet rotates a ServiceAccount's: the control API's
rotate_token gives a new token the old one's identity and ends the old one
(now, or after a grace period, as a bound token stays valid until it expires).

API (what real servers answer, Status objects for errors):
  /version, /healthz, /readyz, /livez; discovery /api, /api/v1, /apis,
  /apis/G, /apis/G/V for v1 (configmaps, secrets, services, namespaces),
  apps/v1 deployments, statefulsets, daemonsets, autoscaling/v2 horizontalpodautoscalers, policy/v1
  poddisruptionbudgets, networking.k8s.io/v1 ingresses, example.com/v1 widgets
  (a custom resource), coordination.k8s.io/v1 leases; an unknown group/version
  is 404 "404 page not found" (text/plain), an unknown resource in a known one
  a 404 Status "the server could not find the requested resource".
  GET object or list (labelSelector as labels.Parse: k=v, k==v, k!=v, k, !k,
  k in (a,b), k notin (a,b), comma-separated), DELETE (Status Success;
  DeleteOptions preconditions.resourceVersion / uid: 409 Conflict when stale),
  POST create (409 AlreadyExists; a resourceVersion set is 500 "resourceVersion
  should not be set on objects to be created"), PUT update as the generic
  registry store: metadata.resourceVersion stale is 409 Conflict ("the object has been
  modified; ..."), absent is an unconditional update except for Leases and
  custom resources (422 "must be specified for an update"); a PUT of a missing
  Lease creates it (201) unless it carries metadata.uid (a precondition: 409),
  of any other missing object is 404. ConfigMaps: data + binaryData (decoded)
  over 1048576 bytes is 422 "[]: Too long: must have at most 1048576 bytes".
  Leases: spec.acquireTime / renewTime are MicroTime, read with RFC3339Micro
  ("2006-01-02T15:04:05.000000Z07:00", six fraction digits, else 400) and
  stored in UTC; leaseDurationSeconds > 0, leaseTransitions >= 0 (422).
  PATCH:
    application/apply-patch+yaml: server-side apply. fieldManager required
      (422 PatchOptions.meta.k8s.io, as the real server), force=true|false,
      dryRun=All. The body must be JSON (which is YAML): this server does not
      read block YAML and says so (400). apiVersion/kind/name/namespace must
      match the URL (400), metadata.managedFields must be absent (400).
      Ownership is tracked per manager per leaf field (lists of containers,
      env, volumes, volumeMounts, ports are keyed as in Kubernetes, other
      lists are atomic); changing a field another manager owns is 409
      Conflict unless force=true; a field the manager applied before and
      omits now is removed unless another manager owns it. 201 on create.
    application/merge-patch+json and application/strategic-merge-patch+json:
      an Update by fieldManager (default: "unknown"), RFC 7386 merge (the
      strategic form is treated as a plain merge patch here).
    application/json-patch+json: 415 here (the real server supports it).
    anything else: 415 UnsupportedMediaType.
  Validation is 422 Invalid with causes for the rules named in validate_*.
  An object in a namespace that does not exist: GET is 404 for the object,
  a list is empty, a create/apply is 404 namespaces "x" not found (as the
  real NamespaceLifecycle admission).
  Deployments: generation counts spec changes, a controller thread moves
  status (observedGeneration after observe_ms, one pod step per
  per_replica_ms, old pods terminating while new ones come up, conditions
  Progressing/Available). A rollout whose pod template has an image containing
  "fail-rollout", or marked failing by the control API, never gets ready and
  after progressDeadlineSeconds * deadline_scale seconds (default 0.01, so
  600 s is 6 s) has Progressing False ProgressDeadlineExceeded.
  StatefulSets (OrderedReady: one pod created, made ready or replaced per
  per_replica_ms, highest ordinal first down to the partition; currentRevision
  becomes updateRevision once every pod is updated and ready) and DaemonSets
  (one pod per node on settings "nodes", default 3; RollingUpdate replaces up
  to maxUnavailable at a time) roll out the same way; OnDelete replaces
  nothing. A failing revision (image with "fail-rollout", or "fail" by the
  control API) never gets ready: stuck, with no deadline (they have none).
  GET of a list with watch=true streams WatchEvents (chunked) for what
  labelSelector / fieldSelector (metadata.name, metadata.namespace) select:
  enough for `kubectl rollout status`.

Control API on the second port:
  GET  /__requests   every API request: method, path, query, content_type,
                     accept, user_agent, host (the Host header), sni (the
                     TLS server name the client sent, or null), user, auth (cert|token|expired|
                     invalid|none), token_id (the "id" of the token that was sent, valid or
                     expired, else null: which one a client used), body (JSON when it is),
                     status. Never the token or the Authorization header.
  POST /__control    one JSON object, "op" says what:
    {"op": "reset"}                      objects, log, faults, settings, tokens
    {"op": "clear_requests"}
    {"op": "expire_token", "token": T}   or "add_token" with user, groups, expires, id
    {"op": "revoke_token", "token": T}   forgotten: 401 as a token never issued
    {"op": "rotate_token", "token": OLD, "new": NEW, "id": "v2", "grace_ms": 0}
                                         NEW gets OLD's user and groups (and id "v2");
                                         OLD expires after grace_ms (0: at once)
    {"op": "settings", "per_replica_ms": 50, "observe_ms": 20, "deadline_scale": 0.01}
    {"op": "rollout", "namespace": "default", "name": "web", "fail": true,
     "per_replica_ms": 500, "deadline_ms": 300}   per Deployment, all optional;
                                         "resource": "statefulsets"/"daemonsets" for those
    {"op": "clear_faults"}               the faults still queued
    {"op": "fault", "path": "substring", "method": "PATCH", "count": 1, "skip": 0,
     "status": 429, "retry_after": 1}    or status 500/503/409/..., or
     "skip": N lets the first N matching requests through (then the fault),
     "kind": "slow" with "ms" (then answers normally), "kind": "content_type"
     (200 text/html), "kind": "close" (drops the connection unanswered)
    {"op": "update", "path": "/apis/apps/v1/namespaces/default/deployments/web",
     "manager": "kubectl-edit", "patch": {...}}   a non-apply Update (merge patch)
    {"op": "get", "path": "..."}         the object as stored (with status)
    {"op": "namespace", "name": "x"}     adds a namespace
    {"op": "echo", "on": true, "status": 403, "kind": "status"|"text"}
                                         a careless server quoting the credential back
                                         (common.echo_text: the Authorization header and
                                         the bare token straddling every usual cut) on
                                         every API request: "status" as the message of a
                                         Status (its causes too), "text" as a text/plain
                                         body; always also in an X-Echo header
    {"op": "forbid", "user": "ci", "verb": "patch", "resource": "deployments"}
                                         403 Forbidden for that user from now on
"""
import argparse
import copy
import hashlib
import json
import math
import re
import ssl
import threading
import time
import urllib.parse
import uuid

from common import Handler, answer, echo_text, serve_with_control, tls_server

# ---------------------------------------------------------------- resources

# (group, version) -> [(resource, kind, namespaced, shortNames, has generation)]
API = {
    ("", "v1"): [("configmaps", "ConfigMap", True, ["cm"], False),
                 ("secrets", "Secret", True, [], False),
                 ("services", "Service", True, ["svc"], False),
                 ("namespaces", "Namespace", False, ["ns"], False)],
    ("apps", "v1"): [("deployments", "Deployment", True, ["deploy"], True),
                     ("statefulsets", "StatefulSet", True, ["sts"], True),
                     ("daemonsets", "DaemonSet", True, ["ds"], True)],
    ("autoscaling", "v2"): [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True,
                             ["hpa"], True)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], True)],
    ("networking.k8s.io", "v1"): [("ingresses", "Ingress", True, ["ing"], True)],
    ("example.com", "v1"): [("widgets", "Widget", True, [], True)],
    ("coordination.k8s.io", "v1"): [("leases", "Lease", True, [], False)],
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCES = {"deployments": ["status", "scale"], "statefulsets": ["status", "scale"],
                "daemonsets": ["status"], "horizontalpodautoscalers": ["status"],
                "poddisruptionbudgets": ["status"], "ingresses": ["status"],
                "services": ["status"], "namespaces": ["status"], "widgets": ["status"]}
SINGULAR = {"configmaps": "configmap", "secrets": "secret", "services": "service",
            "namespaces": "namespace", "deployments": "deployment",
            "statefulsets": "statefulset", "daemonsets": "daemonset",
            "horizontalpodautoscalers": "horizontalpodautoscaler",
            "poddisruptionbudgets": "poddisruptionbudget", "ingresses": "ingress",
            "widgets": "widget", "leases": "lease"}
# the registry strategies' AllowCreateOnUpdate / AllowUnconditionalUpdate where they differ
# from the common false / true (pkg/registry/coordination/lease/strategy.go; custom
# resources: apiextensions-apiserver's customResourceStrategy)
CREATE_ON_UPDATE = {"leases"}
NO_UNCONDITIONAL_UPDATE = {"leases", "widgets"}
MAX_BODY = 3 * 1024 * 1024  # the real server's limit for a request body


class Res:
    def __init__(self, group, version, name, kind, namespaced, short, generation):
        self.group, self.version, self.name, self.kind = group, version, name, kind
        self.namespaced, self.short, self.generation = namespaced, short, generation
        self.api_version = f"{group}/{version}" if group else version

    def qualified(self):
        """deployments.apps, services: how the real server names a resource in messages."""
        return f"{self.name}.{self.group}" if self.group else self.name

    def kind_qualified(self):
        return f"{self.kind}.{self.group}" if self.group else self.kind


RESOURCES = {}
for (g, v), lst in API.items():
    for r in lst:
        RESOURCES[(g, v, r[0])] = Res(g, v, *r)


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=()):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, list(headers)

    def status(self):
        doc = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason}
        if not self.reason:
            del doc["reason"]  # omitempty: a plain Go error has none
        if self.details is not None:
            doc["details"] = self.details
        doc["code"] = self.code
        return doc


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified()} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.name})


def precondition_failed(res, ns, name, field, want, have):
    """A failed delete or update precondition, as the etcd3 storage's InvalidObjError comes
    out of storeerr.InterpretDeleteError / InterpretUpdateError: 409 Conflict."""
    key = f"/registry/{res.name}/{ns}/{name}" if ns else f"/registry/{res.name}/{name}"
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified()} '
                    f'"{name}": StorageError: invalid object, Code: 4, Key: {key}, '
                    f"ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: {field} in "
                    f"precondition: {want}, {field} in object meta: {have}",
                    {"name": name, "group": res.group, "kind": res.name})


def ns_not_found(ns):
    return ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                    {"name": ns, "kind": "namespaces"})


def no_resource():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def bad_request(message):
    return ApiError(400, "BadRequest", message)


class Cause:
    """One field error as k8s.io/apimachinery/pkg/util/validation/field.Error."""

    def __init__(self, reason, field, message):
        self.reason, self.field, self.message = reason, field, message


def go_value(v):
    """A value as the real server quotes it in 'Invalid value: ...' (Go's %#v, roughly)."""
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        if all(isinstance(x, str) for x in v.values()):
            return "map[string]string{" + ", ".join(
                f"{json.dumps(k)}:{json.dumps(x)}" for k, x in sorted(v.items())) + "}"
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return json.dumps(v)


def invalid(field, value, detail):
    return Cause("FieldValueInvalid", field, f"Invalid value: {go_value(value)}: {detail}")


def required(field, detail=""):
    return Cause("FieldValueRequired", field, "Required value" + (": " + detail if detail
                                                                  else ""))


def not_supported(field, value, allowed):
    return Cause("FieldValueNotSupported", field, f"Unsupported value: {go_value(value)}: "
                 "supported values: " + ", ".join(json.dumps(a) for a in allowed))


def duplicate(field, value):
    return Cause("FieldValueDuplicate", field, f"Duplicate value: {go_value(value)}")


def not_found_cause(field, value):
    return Cause("FieldValueNotFound", field, f"Not found: {go_value(value)}")


def too_long(field, limit):
    return Cause("FieldValueTooLong", field, f"Too long: must have at most {limit} bytes")


def invalid_error(kind_q, name, group, kind, causes):
    parts = [f"{c.field}: {c.message}" for c in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = {"name": name, "group": group, "kind": kind,
               "causes": [{"reason": c.reason, "message": c.message, "field": c.field}
                          for c in causes]}
    if not name:
        del details["name"]
    return ApiError(422, "Invalid", f'{kind_q} "{name}" is invalid: {text}', details)


# ---------------------------------------------------------------- validation helpers

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
PERCENT = re.compile(r"^[0-9]+%$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL1123 = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                 "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                 "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_LABEL1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                 "start with an alphabetic character, and end with an alphanumeric character "
                 "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
                 "'[a-z]([-a-z0-9]*[a-z0-9])?')")
MSG_NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                 "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                 "or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
MSG_LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric "
                   "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                   "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                   "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
MSG_CONFIG_KEY = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                  "is '[-._a-zA-Z0-9]+')")


def subdomain_errors(v):
    out = []
    if len(v) > 253:
        out.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(v):
        out.append(MSG_SUBDOMAIN)
    return out


def label1123_errors(v):
    out = []
    if len(v) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1123_LABEL.match(v):
        out.append(MSG_LABEL1123)
    return out


def label1035_errors(v):
    out = []
    if len(v) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1035_LABEL.match(v):
        out.append(MSG_LABEL1035)
    return out


def qualified_name_errors(v):
    """A label or annotation key: [prefix/]name (apimachinery IsQualifiedName)."""
    parts = v.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        errs = subdomain_errors(prefix)
        if errs:
            return ["prefix part " + e for e in errs]
    else:
        return ["a qualified name " + MSG_NAME_PART[len("name part "):]
                .replace("must consist", "must consist", 1) +
                " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        return ["name part must be non-empty"]
    out = []
    if len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if not QUALIFIED_NAME.match(name):
        out.append(MSG_NAME_PART)
    return out


def validate_labels(labels, field, causes):
    if labels is None:
        return
    if not isinstance(labels, dict):
        causes.append(invalid(field, labels, "must be a map of string keys to string values"))
        return
    for k, v in labels.items():
        for e in qualified_name_errors(k):
            causes.append(invalid(field, k, e))
        if not isinstance(v, str):
            causes.append(invalid(f"{field}", v, "label values must be strings"))
            continue
        if len(v) > 63:
            causes.append(invalid(field, v, "must be no more than 63 characters"))
        if not LABEL_VALUE.match(v):
            causes.append(invalid(field, v, MSG_LABEL_VALUE))


def validate_meta(obj, res, causes):
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        errs = label1035_errors(name) if res.name == "services" else subdomain_errors(name)
        for e in errs:
            causes.append(invalid("metadata.name", name, e))
    validate_labels(meta.get("labels"), "metadata.labels", causes)
    ann = meta.get("annotations")
    if isinstance(ann, dict):
        size = 0
        for k, v in ann.items():
            for e in qualified_name_errors(k):
                causes.append(invalid("metadata.annotations", k, e))
            size += len(k) + len(str(v))
        if size > 256 * 1024:
            causes.append(Cause("FieldValueTooLong", "metadata.annotations",
                                "Too long: must have at most 262144 bytes"))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def int_or_percent_errors(v, field):
    if is_int(v):
        return [] if v >= 0 else [invalid(field, v, "must be greater than or equal to 0")]
    if isinstance(v, str) and PERCENT.match(v):
        return []
    return [invalid(field, v, "a valid percent string must be a numeric string followed by an "
                    "ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]


def selector_matches(selector, labels):
    """True when labels satisfy a LabelSelector (matchLabels and matchExpressions)."""
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def validate_pod_spec(spec, field, causes):
    if not isinstance(spec, dict):
        causes.append(required(field))
        return
    volumes = set()
    for i, vol in enumerate(spec.get("volumes") or []):
        f = f"{field}.volumes[{i}]"
        n = vol.get("name", "") if isinstance(vol, dict) else ""
        if not n:
            causes.append(required(f + ".name"))
        else:
            for e in label1123_errors(n):
                causes.append(invalid(f + ".name", n, e))
            if n in volumes:
                causes.append(duplicate(f + ".name", n))
            volumes.add(n)
        if isinstance(vol, dict):
            cm = vol.get("configMap")
            if isinstance(cm, dict) and not cm.get("name"):
                causes.append(required(f + ".configMap.name"))
    containers = spec.get("containers")
    if not containers:
        causes.append(required(field + ".containers"))
        containers = []
    names = set()
    for kind, lst in (("containers", containers), ("initContainers",
                                                   spec.get("initContainers") or [])):
        for i, c in enumerate(lst):
            f = f"{field}.{kind}[{i}]"
            if not isinstance(c, dict):
                causes.append(invalid(f, c, "must be an object"))
                continue
            n = c.get("name", "")
            if not n:
                causes.append(required(f + ".name"))
            else:
                for e in label1123_errors(n):
                    causes.append(invalid(f + ".name", n, e))
                if n in names:
                    causes.append(duplicate(f + ".name", n))
                names.add(n)
            if not c.get("image"):
                causes.append(required(f + ".image"))
            for j, p in enumerate(c.get("ports") or []):
                cp = p.get("containerPort", 0) if isinstance(p, dict) else 0
                if not is_int(cp) or not 1 <= cp <= 65535:
                    causes.append(invalid(f"{f}.ports[{j}].containerPort", cp,
                                          "must be between 1 and 65535, inclusive"))
            for j, m in enumerate(c.get("volumeMounts") or []):
                mn = m.get("name", "") if isinstance(m, dict) else ""
                if not mn:
                    causes.append(required(f"{f}.volumeMounts[{j}].name"))
                elif mn not in volumes:
                    causes.append(not_found_cause(f"{f}.volumeMounts[{j}].name", mn))
                if isinstance(m, dict) and not m.get("mountPath"):
                    causes.append(required(f"{f}.volumeMounts[{j}].mountPath"))
            pol = c.get("imagePullPolicy")
            if pol is not None and pol not in ("Always", "IfNotPresent", "Never"):
                causes.append(not_supported(f + ".imagePullPolicy", pol,
                                            ["Always", "IfNotPresent", "Never"]))


def validate_deployment(obj, causes):
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        causes.append(required("spec.selector"))
        causes.append(required("spec.template.spec.containers"))
        return
    replicas = spec.get("replicas", 1)
    if not is_int(replicas) or replicas < 0:
        causes.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    sel = spec.get("selector")
    tmpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    tlabels = (tmpl.get("metadata") or {}).get("labels") or {}
    if not isinstance(sel, dict):
        causes.append(required("spec.selector"))
    elif not sel.get("matchLabels") and not sel.get("matchExpressions"):
        causes.append(invalid("spec.selector", sel, "empty selector is invalid for deployment"))
    else:
        validate_labels(sel.get("matchLabels"), "spec.selector.matchLabels", causes)
        if not selector_matches(sel, tlabels):
            causes.append(invalid("spec.template.metadata.labels", tlabels,
                                  "`selector` does not match template `labels`"))
    validate_labels(tlabels, "spec.template.metadata.labels", causes)
    validate_pod_spec(tmpl.get("spec"), "spec.template.spec", causes)
    strat = spec.get("strategy") or {}
    st = strat.get("type", "RollingUpdate")
    if st not in ("RollingUpdate", "Recreate"):
        causes.append(not_supported("spec.strategy.type", st, ["Recreate", "RollingUpdate"]))
    ru = strat.get("rollingUpdate")
    if isinstance(ru, dict):
        for k in ("maxSurge", "maxUnavailable"):
            if k in ru:
                causes.extend(int_or_percent_errors(ru[k], f"spec.strategy.rollingUpdate.{k}"))
        if ru.get("maxSurge") in (0, "0%") and ru.get("maxUnavailable") in (0, "0%"):
            causes.append(invalid("spec.strategy.rollingUpdate.maxUnavailable",
                                  ru.get("maxUnavailable"),
                                  "may not be 0 when `maxSurge` is 0"))
    pds = spec.get("progressDeadlineSeconds", 600)
    if not is_int(pds) or pds <= 0:
        causes.append(invalid("spec.progressDeadlineSeconds", pds,
                              "must be greater than minReadySeconds"))


def validate_workload(obj, causes, kind, strategies):
    """StatefulSet and DaemonSet: selector, template, pod spec, updateStrategy."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        causes.append(required("spec.selector"))
        causes.append(required("spec.template.spec.containers"))
        return
    if kind == "statefulset":
        replicas = spec.get("replicas", 1)
        if not is_int(replicas) or replicas < 0:
            causes.append(invalid("spec.replicas", replicas,
                                  "must be greater than or equal to 0"))
    sel = spec.get("selector")
    tmpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    tlabels = (tmpl.get("metadata") or {}).get("labels") or {}
    if not isinstance(sel, dict):
        causes.append(required("spec.selector"))
    elif not sel.get("matchLabels") and not sel.get("matchExpressions"):
        causes.append(invalid("spec.selector", sel, f"empty selector is invalid for {kind}"))
    elif not selector_matches(sel, tlabels):
        causes.append(invalid("spec.template.metadata.labels", tlabels,
                              "`selector` does not match template `labels`"))
    validate_labels(tlabels, "spec.template.metadata.labels", causes)
    validate_pod_spec(tmpl.get("spec"), "spec.template.spec", causes)
    st = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if st not in strategies:
        causes.append(not_supported("spec.updateStrategy.type", st, strategies))
    ru = (spec.get("updateStrategy") or {}).get("rollingUpdate")
    if isinstance(ru, dict) and "partition" in ru and (not is_int(ru["partition"]) or
                                                       ru["partition"] < 0):
        causes.append(invalid("spec.updateStrategy.rollingUpdate.partition", ru["partition"],
                              "must be greater than or equal to 0"))


def validate_statefulset(obj, causes):
    validate_workload(obj, causes, "statefulset", ["OnDelete", "RollingUpdate"])


def validate_daemonset(obj, causes):
    validate_workload(obj, causes, "daemonset", ["OnDelete", "RollingUpdate"])


def validate_service(obj, causes):
    spec = obj.get("spec") or {}
    ports = spec.get("ports") or []
    typ = spec.get("type", "ClusterIP")
    types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
    if typ not in types:
        causes.append(not_supported("spec.type", typ, types))
    if not ports and spec.get("clusterIP") != "None" and typ != "ExternalName":
        causes.append(required("spec.ports"))
    names = set()
    for i, p in enumerate(ports):
        f = f"spec.ports[{i}]"
        if not isinstance(p, dict):
            causes.append(invalid(f, p, "must be an object"))
            continue
        n = p.get("name", "")
        if len(ports) > 1 and not n:
            causes.append(required(f + ".name"))
        elif n:
            for e in label1123_errors(n):
                causes.append(invalid(f + ".name", n, e))
            if n in names:
                causes.append(duplicate(f + ".name", n))
            names.add(n)
        port = p.get("port", 0)
        if not is_int(port) or not 1 <= port <= 65535:
            causes.append(invalid(f + ".port", port, "must be between 1 and 65535, inclusive"))
        tp = p.get("targetPort")
        if is_int(tp) and not 1 <= tp <= 65535:
            causes.append(invalid(f + ".targetPort", tp,
                                  "must be between 1 and 65535, inclusive"))
        elif isinstance(tp, str) and (len(tp) > 15 or not IANA_SVC_NAME.match(tp)
                                      or not re.search("[a-z]", tp)):
            causes.append(invalid(f + ".targetPort", tp, "must contain only alpha-numeric "
                                  "characters (a-z, 0-9), and hyphens (-)"))
        proto = p.get("protocol", "TCP")
        if proto not in ("SCTP", "TCP", "UDP"):
            causes.append(not_supported(f + ".protocol", proto, ["SCTP", "TCP", "UDP"]))
    sel = spec.get("selector")
    if sel is not None:
        validate_labels(sel, "spec.selector", causes)


def validate_configmap(obj, causes):
    size = 0
    seen = set()
    for section in ("data", "binaryData"):
        d = obj.get(section)
        if d is None:
            continue
        if not isinstance(d, dict):
            causes.append(invalid(section, d, "must be a map"))
            continue
        for k, v in d.items():
            if not CONFIG_KEY.match(k):
                causes.append(invalid(f"{section}[{k}]", k, MSG_CONFIG_KEY))
            if len(k) > 253:
                causes.append(invalid(f"{section}[{k}]", k, "must be no more than 253 "
                                      "characters"))
            if k in seen:
                causes.append(duplicate(f"{section}[{k}]", k))
            seen.add(k)
            if section == "binaryData":
                import base64
                import binascii
                try:
                    size += len(base64.b64decode(str(v), validate=True))
                except (binascii.Error, ValueError):
                    size += len(str(v).encode())
            else:
                size += len(str(v).encode())
    if size > 1024 * 1024:
        # field.NewPath("") prints as "[]": the real message is
        # 'ConfigMap "x" is invalid: []: Too long: must have at most 1048576 bytes'
        causes.append(too_long("[]", 1024 * 1024))


def validate_lease(obj, causes):
    """k8s.io/kubernetes pkg/apis/coordination/validation ValidateLeaseSpec."""
    spec = obj.get("spec") or {}
    d = spec.get("leaseDurationSeconds")
    if d is not None and d <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", d, "must be greater than 0"))
    t = spec.get("leaseTransitions")
    if t is not None and t < 0:
        causes.append(invalid("spec.leaseTransitions", t, "must be greater than or equal to 0"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        causes.append(Cause("FieldValueForbidden", "spec.preferredHolder",
                            "Forbidden: may only be specified if `strategy` is defined"))


RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
MICRO_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})"
                        r"(Z|[+-]\d{2}:\d{2})$")


def lease_decode(body):
    """What the real server's JSON decoding of a Lease does: MicroTime is parsed with
    RFC3339Micro (exactly six fraction digits, as metav1.MicroTime.UnmarshalJSON) and
    written back in UTC; int32 fields must be integers. Else 400, as the real server."""
    import calendar
    body = copy.deepcopy(body)
    spec = body.get("spec")
    if spec is None:
        return body

    def bad(detail):
        return bad_request(f'Lease in version "v1" cannot be handled as a Lease: {detail}')

    if not isinstance(spec, dict):
        raise bad("json: cannot unmarshal into Go struct field Lease.spec of type "
                  "v1.LeaseSpec")
    for f in ("leaseDurationSeconds", "leaseTransitions"):
        v = spec.get(f)
        if v is not None and (not is_int(v) or not -2**31 <= v < 2**31):
            raise bad(f"json: cannot unmarshal {type(v).__name__} into Go struct field "
                      f"LeaseSpec.spec.{f} of type int32")
    for f in ("holderIdentity", "strategy", "preferredHolder"):
        v = spec.get(f)
        if v is not None and not isinstance(v, str):
            raise bad(f"json: cannot unmarshal {type(v).__name__} into Go struct field "
                      f"LeaseSpec.spec.{f} of type string")
    for f in ("acquireTime", "renewTime"):
        v = spec.get(f)
        if v is None:
            spec.pop(f, None)
            continue
        m = MICRO_TIME.match(v) if isinstance(v, str) else None
        if not m:
            raise bad(f'parsing time "{v}" as "{RFC3339_MICRO}": cannot parse "{v}" as '
                      f'"{RFC3339_MICRO}"')
        y, mo, d, h, mi, sec, us, zone = m.groups()
        try:
            t = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(sec)))
            time.gmtime(t)
            if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(h) < 24 and
                    int(mi) < 60 and int(sec) < 60):
                raise ValueError
        except (ValueError, OverflowError):
            raise bad(f'parsing time "{v}": value out of range')
        if zone != "Z":
            off = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60
            t -= off if zone[0] == "+" else -off
        spec[f] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{us}Z"
    return body


def validate_secret(obj, causes):
    d = obj.get("data") or {}
    size = 0
    for k, v in d.items():
        if not CONFIG_KEY.match(k):
            causes.append(invalid(f"data[{k}]", k, MSG_CONFIG_KEY))
        size += len(v)
    if size > 1024 * 1024:
        causes.append(too_long("data", 1024 * 1024))


def validate_hpa(obj, causes):
    spec = obj.get("spec") or {}
    ref = spec.get("scaleTargetRef")
    if not isinstance(ref, dict):
        causes.append(required("spec.scaleTargetRef.kind"))
        causes.append(required("spec.scaleTargetRef.name"))
    else:
        if not ref.get("kind"):
            causes.append(required("spec.scaleTargetRef.kind"))
        if not ref.get("name"):
            causes.append(required("spec.scaleTargetRef.name"))
    mn, mx = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
    if not is_int(mn) or mn < 1:
        causes.append(invalid("spec.minReplicas", mn, "must be greater than or equal to 1"))
    if not is_int(mx) or mx < 1:
        causes.append(invalid("spec.maxReplicas", mx, "must be greater than or equal to 1"))
    elif is_int(mn) and mx < mn:
        causes.append(invalid("spec.maxReplicas", mx,
                              "must be greater than or equal to `minReplicas`"))
    types = ["ContainerResource", "External", "Object", "Pods", "Resource"]
    for i, m in enumerate(spec.get("metrics") or []):
        f = f"spec.metrics[{i}]"
        t = m.get("type") if isinstance(m, dict) else None
        if not t:
            causes.append(required(f + ".type"))
        elif t not in types:
            causes.append(not_supported(f + ".type", t, types))
        elif t == "Resource":
            r = m.get("resource") or {}
            if not r.get("name"):
                causes.append(required(f + ".resource.name"))
            tgt = r.get("target") or {}
            tt = tgt.get("type")
            if not tt:
                causes.append(required(f + ".resource.target.type"))
            elif tt not in ("AverageValue", "Utilization", "Value"):
                causes.append(not_supported(f + ".resource.target.type", tt,
                                            ["AverageValue", "Utilization", "Value"]))
            elif tt == "Utilization" and (not is_int(tgt.get("averageUtilization"))
                                          or tgt["averageUtilization"] <= 0):
                causes.append(required(f + ".resource.target.averageUtilization",
                                       "must populate averageUtilization when target type is "
                                       "Utilization"))


def validate_pdb(obj, causes):
    spec = obj.get("spec") or {}
    # The real policy/v1 server accepts neither being set; it refuses both.
    if "minAvailable" in spec and "maxUnavailable" in spec:
        causes.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for k in ("minAvailable", "maxUnavailable"):
        if k in spec:
            causes.extend(int_or_percent_errors(spec[k], f"spec.{k}"))
    sel = spec.get("selector")
    if isinstance(sel, dict):
        validate_labels(sel.get("matchLabels"), "spec.selector.matchLabels", causes)


def validate_ingress(obj, causes):
    spec = obj.get("spec") or {}
    rules = spec.get("rules")
    if not rules and not spec.get("defaultBackend"):
        causes.append(invalid("spec", spec, "either `defaultBackend` or `rules` must be "
                              "specified"))
    kinds = ["Exact", "ImplementationSpecific", "Prefix"]
    for i, r in enumerate(rules or []):
        f = f"spec.rules[{i}]"
        host = r.get("host")
        if host:
            h = host[2:] if host.startswith("*.") else host
            for e in subdomain_errors(h):
                causes.append(invalid(f + ".host", host, e))
        paths = (r.get("http") or {}).get("paths")
        if not paths:
            causes.append(required(f + ".http.paths"))
            continue
        for j, p in enumerate(paths):
            pf = f"{f}.http.paths[{j}]"
            pt = p.get("pathType")
            if not pt:
                causes.append(required(pf + ".pathType", "pathType must be specified"))
            elif pt not in kinds:
                causes.append(not_supported(pf + ".pathType", pt, kinds))
            path = p.get("path", "")
            if pt in ("Exact", "Prefix") and not str(path).startswith("/"):
                causes.append(invalid(pf + ".path", path, "must be an absolute path"))
            svc = (p.get("backend") or {}).get("service")
            if not isinstance(svc, dict):
                causes.append(invalid(pf + ".backend", p.get("backend"),
                                      "resource or service required"))
                continue
            if not svc.get("name"):
                causes.append(required(pf + ".backend.service.name"))
            port = svc.get("port") or {}
            if "number" not in port and "name" not in port:
                causes.append(required(pf + ".backend.service.port",
                                       "port name or number is required"))


def validate_widget(obj, causes):
    spec = obj.get("spec") or {}
    if "size" in spec and not is_int(spec["size"]):
        causes.append(invalid("spec.size", spec["size"],
                              f"spec.size in body must be of type integer: "
                              f"{json.dumps(type(spec['size']).__name__)}"))


VALIDATORS = {"deployments": validate_deployment, "statefulsets": validate_statefulset,
              "daemonsets": validate_daemonset, "services": validate_service,
              "configmaps": validate_configmap, "secrets": validate_secret,
              "horizontalpodautoscalers": validate_hpa, "poddisruptionbudgets": validate_pdb,
              "ingresses": validate_ingress, "widgets": validate_widget,
              "leases": validate_lease}


def validate(obj, res):
    causes = []
    validate_meta(obj, res, causes)
    VALIDATORS.get(res.name, lambda o, c: None)(obj, causes)
    if causes:
        name = (obj.get("metadata") or {}).get("name", "")
        raise invalid_error(res.kind_qualified(), name, res.group, res.kind, causes)


# ---------------------------------------------------------------- defaults


def set_default(d, key, value):
    if key not in d:
        d[key] = value


def default_pod_spec(ps):
    if not isinstance(ps, dict):
        return
    set_default(ps, "restartPolicy", "Always")
    set_default(ps, "terminationGracePeriodSeconds", 30)
    set_default(ps, "dnsPolicy", "ClusterFirst")
    set_default(ps, "schedulerName", "default-scheduler")
    set_default(ps, "securityContext", {})
    for c in (ps.get("containers") or []) + (ps.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        img = str(c.get("image", ""))
        set_default(c, "imagePullPolicy",
                    "Always" if img.endswith(":latest") or ":" not in img.split("/")[-1]
                    else "IfNotPresent")
        set_default(c, "terminationMessagePath", "/dev/termination-log")
        set_default(c, "terminationMessagePolicy", "File")
        set_default(c, "resources", {})
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                set_default(p, "protocol", "TCP")


def apply_defaults(obj, res, state):
    """What the real server's defaulting adds: clients that diff must expect these."""
    spec = obj.get("spec")
    if res.name == "deployments" and isinstance(spec, dict):
        set_default(spec, "replicas", 1)
        set_default(spec, "revisionHistoryLimit", 10)
        set_default(spec, "progressDeadlineSeconds", 600)
        set_default(spec, "strategy", {})
        if isinstance(spec["strategy"], dict):
            set_default(spec["strategy"], "type", "RollingUpdate")
            if spec["strategy"]["type"] == "RollingUpdate":
                set_default(spec["strategy"], "rollingUpdate", {})
                set_default(spec["strategy"]["rollingUpdate"], "maxUnavailable", "25%")
                set_default(spec["strategy"]["rollingUpdate"], "maxSurge", "25%")
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            set_default(tmpl, "metadata", {})
            if isinstance(tmpl["metadata"], dict):
                set_default(tmpl["metadata"], "creationTimestamp", None)
            default_pod_spec(tmpl.get("spec"))
    elif res.name in ("statefulsets", "daemonsets") and isinstance(spec, dict):
        set_default(spec, "revisionHistoryLimit", 10)
        set_default(spec, "updateStrategy", {})
        us = spec["updateStrategy"]
        if isinstance(us, dict):
            set_default(us, "type", "RollingUpdate")
            if us["type"] == "RollingUpdate":
                set_default(us, "rollingUpdate", {})
                if res.name == "statefulsets":
                    set_default(us["rollingUpdate"], "partition", 0)
                else:
                    set_default(us["rollingUpdate"], "maxUnavailable", 1)
                    set_default(us["rollingUpdate"], "maxSurge", 0)
        if res.name == "statefulsets":
            set_default(spec, "replicas", 1)
            set_default(spec, "podManagementPolicy", "OrderedReady")
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            set_default(tmpl, "metadata", {})
            if isinstance(tmpl["metadata"], dict):
                set_default(tmpl["metadata"], "creationTimestamp", None)
            default_pod_spec(tmpl.get("spec"))
    elif res.name == "services":
        if not isinstance(spec, dict):
            obj["spec"] = spec = {}
        set_default(spec, "type", "ClusterIP")
        set_default(spec, "sessionAffinity", "None")
        if spec.get("clusterIP") is None:
            state["ip"] += 1
            ip = f"10.96.{state['ip'] // 250}.{state['ip'] % 250 + 1}"
            spec["clusterIP"] = ip
        set_default(spec, "clusterIPs", [spec["clusterIP"]])
        set_default(spec, "ipFamilies", ["IPv4"])
        set_default(spec, "ipFamilyPolicy", "SingleStack")
        set_default(spec, "internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                set_default(p, "protocol", "TCP")
                if "port" in p:
                    set_default(p, "targetPort", p["port"])
    elif res.name == "horizontalpodautoscalers" and isinstance(spec, dict):
        set_default(spec, "minReplicas", 1)
    elif res.name == "secrets":
        set_default(obj, "type", "Opaque")


# ---------------------------------------------------------------- field sets

# Lists Kubernetes merges by key (patchMergeKey / listMapKeys); every other list is atomic.
LIST_KEYS = {"containers": ("name",), "initContainers": ("name",),
             "ephemeralContainers": ("name",), "env": ("name",), "volumes": ("name",),
             "volumeMounts": ("mountPath",), "imagePullSecrets": ("name",),
             "envFrom": None, "hostAliases": ("ip",)}
PORT_KEYS = (("containerPort",), ("port",))


def list_key(field, items):
    """The key fields of a keyed list, or None when the list is atomic."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if field == "ports":
        for k in PORT_KEYS:
            if all(k[0] in i for i in items):
                return k
        return None
    keys = LIST_KEYS.get(field)
    if keys and all(all(k in i for k in keys) for i in items):
        return keys
    return None


def key_elem(item, keys):
    return "k:" + json.dumps({k: item[k] for k in keys}, separators=(",", ":"), sort_keys=True)


MISSING = object()


def flatten(value, prefix=(), field=None, out=None):
    """Leaf paths of value: ("f:spec", "f:template", 'k:{"name":"web"}', "f:image") -> value."""
    if out is None:
        out = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            flatten(v, prefix + ("f:" + k,), k, out)
    elif isinstance(value, list) and list_key(field, value):
        keys = list_key(field, value)
        for item in value:
            el = prefix + (key_elem(item, keys),)
            out[el + (".",)] = None  # the item itself: it exists while someone owns it
            for k, v in item.items():
                flatten(v, el + ("f:" + k,), k, out)
    else:
        out[prefix] = value
    return out


def path_string(path):
    """.spec.template.spec.containers[name="web"].image, as structured-merge-diff prints."""
    s = ""
    for el in path:
        if el == ".":
            continue
        if el.startswith("f:"):
            s += "." + el[2:]
        else:
            kv = json.loads(el[2:])
            s += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in kv.items()) + "]"
    return s


def user_part(obj):
    """What appliers own: everything but identity, status and server-set metadata."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    meta = obj.get("metadata") or {}
    m = {k: meta[k] for k in ("labels", "annotations", "finalizers", "ownerReferences")
         if k in meta}
    if m:
        out["metadata"] = m
    return out


def find_item(lst, el):
    want = json.loads(el[2:])
    for i, item in enumerate(lst):
        if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
            return i
    return -1


def set_path(obj, path, value):
    if path and path[-1] == ".":
        path = path[:-1]
        if not path:
            return
        container = set_path_container(obj, path)
        return container
    cur = obj
    for i, el in enumerate(path):
        last = i == len(path) - 1
        if el.startswith("f:"):
            k = el[2:]
            if last:
                cur[k] = copy.deepcopy(value)
                return
            nxt = path[i + 1]
            want = list if nxt.startswith("k:") else dict
            if not isinstance(cur.get(k), want):
                cur[k] = want()
            cur = cur[k]
        else:
            j = find_item(cur, el)
            if j < 0:
                cur.append(dict(json.loads(el[2:])))
                j = len(cur) - 1
            if last:
                return
            cur = cur[j]


def set_path_container(obj, path):
    """Makes sure the keyed item at path exists."""
    set_path(obj, path + ("f:__tmp",), None)
    delete_path(obj, path + ("f:__tmp",), prune=False)


def delete_path(obj, path, prune=True):
    if path and path[-1] == ".":
        path = path[:-1]
    trail = []
    cur = obj
    for el in path:
        if el.startswith("f:"):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return
            trail.append((cur, el[2:]))
            cur = cur[el[2:]]
        else:
            if not isinstance(cur, list):
                return
            j = find_item(cur, el)
            if j < 0:
                return
            trail.append((cur, j))
            cur = cur[j]
    if not trail:
        return
    container, key = trail.pop()
    del container[key]
    if not prune:
        return
    # drop what became empty on the way up (a keyed item with only its key fields is empty)
    while trail:
        parent, k = trail.pop()
        v = parent[k]
        if isinstance(v, (dict, list)) and not v:
            del parent[k]
        else:
            break


def fields_v1(paths):
    tree = {}
    for p in sorted(paths):
        cur = tree
        for el in p:
            cur = cur.setdefault(el, {})
    return tree


# ---------------------------------------------------------------- state

lock = threading.Lock()
settings_default = {"per_replica_ms": 50, "observe_ms": 20, "deadline_scale": 0.01, "nodes": 3}
state = {}


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def reset_state(namespaces, tokens):
    state.clear()
    state.update({
        "objects": {},  # (group, resource, ns, name) -> {"obj", "managers", "rollout"}
        "namespaces": {n: now_rfc3339() for n in namespaces},
        "rv": 1000,
        "ip": 0,
        "log": [],
        "faults": [],
        "settings": dict(settings_default),
        "tokens": copy.deepcopy(tokens),
        "forbid": [],
    })


def next_rv():
    state["rv"] += 1
    return str(state["rv"])


def render(entry):
    """The object as the API returns it, managedFields included."""
    obj = copy.deepcopy(entry["obj"])
    mf = []
    for name, m in entry["managers"].items():
        mf.append({"manager": name, "operation": m["operation"], "apiVersion": m["apiVersion"],
                   "time": m["time"], "fieldsType": "FieldsV1",
                   "fieldsV1": fields_v1(m["fields"])})
    if mf:
        obj["metadata"]["managedFields"] = mf
    return obj


def manager_label(name, m):
    """How conflicts name a manager (k8s.io/apiserver fieldmanager printManager)."""
    if m["operation"] == "Update":
        return f'"{name}" using {m["apiVersion"]}'
    return f'"{name}"'


def conflict_error(conflicts, managers):
    causes = [{"reason": "FieldManagerConflict",
               "message": f"conflict with {manager_label(m, managers[m])}",
               "field": path_string(p)} for m, p in conflicts]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        msg = (f"Apply failed with 1 conflict: conflict with {manager_label(m, managers[m])}: "
               f"{path_string(p)}")
    else:
        by = {}
        for m, p in conflicts:
            by.setdefault(m, []).append(p)
        lines = []
        for m in sorted(by):
            lines.append(f"conflicts with {manager_label(m, managers[m])}:")
            lines.extend(f"- {path_string(p)}" for p in by[m])
        msg = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", msg, {"causes": causes})


def template_hash(spec):
    t = json.dumps((spec or {}).get("template"), sort_keys=True)
    h = hashlib.sha256(t.encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[int(h[i:i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))


def commit(res, ns, name, old_entry, obj, managers, dry_run):
    """Stores obj (with metadata set as the server does); the entry as it would be stored."""
    now = now_rfc3339()
    meta = obj.setdefault("metadata", {})
    meta["name"] = name
    if res.namespaced:
        meta["namespace"] = ns
    if old_entry is None:
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        if res.generation:
            meta["generation"] = 1
        if res.name == "deployments":
            meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
            obj["status"] = {}
        elif res.generation:
            obj.setdefault("status", {})
    else:
        old = old_entry["obj"]
        for k in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
        if "status" in old:
            obj["status"] = copy.deepcopy(old["status"])
        if res.name == "deployments":
            rev = (old["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision")
            if rev is not None:
                meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = rev
        if res.generation and spec_of(old) != spec_of(obj):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
    changed = old_entry is None or old_entry["obj"] != obj or \
        {m: e["fields"] for m, e in old_entry["managers"].items()} != \
        {m: e["fields"] for m, e in managers.items()}
    key = (res.group, res.name, ns, name)
    entry = {"obj": obj, "managers": managers,
             "rollout": old_entry.get("rollout") if old_entry else None}
    if changed:
        if dry_run:
            if old_entry is None:
                meta["resourceVersion"] = ""
        else:
            meta["resourceVersion"] = next_rv()
    if not dry_run and changed:
        state["objects"][key] = entry
    return entry


def spec_of(obj):
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata",
                                                       "status")}


def do_apply(res, ns, name, body, manager, force, dry_run):
    if not isinstance(body, dict):
        raise bad_request("the body of an apply request must be an object")
    if "apiVersion" not in body or "kind" not in body:
        missing = "apiVersion" if "apiVersion" not in body else "kind"
        raise bad_request(f"error decoding patch: Object '{missing}' is missing in the data")
    if body["apiVersion"] != res.api_version:
        raise bad_request(f"the API version in the data ({body['apiVersion']}) does not match "
                          f"the expected API version ({res.api_version})")
    if body["kind"] != res.kind:
        raise bad_request(f"the kind in the data ({body['kind']}) does not match the expected "
                          f"kind ({res.kind})")
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise bad_request("metadata is required in an apply request")
    if meta.get("name") != name:
        raise bad_request(f"the name of the object ({meta.get('name')}) does not match the "
                          f"name on the URL ({name})")
    if "namespace" in meta and res.namespaced and meta["namespace"] != ns:
        raise bad_request("the namespace of the provided object does not match the namespace "
                          "sent on the request")
    if meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    key = (res.group, res.name, ns, name)
    if res.namespaced and ns not in state["namespaces"]:
        raise ns_not_found(ns)
    entry = state["objects"].get(key)
    if entry is not None and meta.get("resourceVersion") and \
            meta["resourceVersion"] != entry["obj"]["metadata"]["resourceVersion"]:
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified()} '
                       f'"{name}": the object has been modified; please apply your changes to '
                       f"the latest version and try again",
                       {"name": name, "group": res.group, "kind": res.name})
    if res.name == "secrets":
        body = secret_decode(body, res)
    if res.name == "leases":
        body = lease_decode(body)
    applied = flatten(user_part(body))
    live = entry["obj"] if entry else {"apiVersion": res.api_version, "kind": res.kind,
                                       "metadata": {"name": name}}
    live_leaves = flatten(user_part(live))
    managers = copy.deepcopy(entry["managers"]) if entry else {}
    conflicts = []
    for p, v in applied.items():
        if p and p[-1] == ".":
            continue
        for m, e in managers.items():
            if m != manager and p in e["fields"] and live_leaves.get(p, MISSING) != v:
                conflicts.append((m, p))
    if conflicts and not force:
        raise conflict_error(conflicts, managers)
    new = copy.deepcopy(live)
    new.pop("status", None)
    before = managers.get(manager, {}).get("fields", set())
    others = set()
    for m, e in managers.items():
        if m != manager:
            others |= e["fields"]
    removed = [p for p in before - set(applied) if p not in others]
    # whole list items first: their key fields must still be there to find them by
    for p in sorted((p for p in removed if p[-1] == "."), key=len):
        if not any(o[:len(p) - 1] == p[:-1] for o in others):
            delete_path(new, p)  # else another manager still has fields in it: it stays
    for p in sorted((p for p in removed if p[-1] != "."), key=len, reverse=True):
        if len(p) >= 2 and p[-2].startswith("k:") and p[-1][2:] in json.loads(p[-2][2:]):
            continue  # a key field goes with its item, never alone
        delete_path(new, p)
    for p, v in applied.items():
        if p and p[-1] == ".":
            set_path(new, p, None)
        else:
            set_path(new, p, v)
    for m, p in conflicts:
        managers[m]["fields"].discard(p)
    fields = set(applied)
    old_m = managers.get(manager)
    managers[manager] = {"operation": "Apply", "apiVersion": res.api_version,
                         "time": old_m["time"] if old_m and old_m["fields"] == fields and
                         old_m["operation"] == "Apply" else now_rfc3339(),
                         "fields": fields}
    managers = {m: e for m, e in managers.items() if e["fields"]}
    new["apiVersion"], new["kind"] = res.api_version, res.kind
    apply_defaults(new, res, state)
    validate(new, res)
    created = entry is None
    result = commit(res, ns, name, entry, new, managers, dry_run)
    return (201 if created else 200), render(result)


def secret_decode(body, res):
    """Secret data must be base64 (a JSON decode error on the real server); stringData merges in."""
    import base64
    import binascii
    body = copy.deepcopy(body)
    for k, v in (body.get("data") or {}).items():
        try:
            base64.b64decode(str(v), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal '
                              f'base64 data at input byte 0')
    sd = body.pop("stringData", None)
    if isinstance(sd, dict):
        body.setdefault("data", {})
        for k, v in sd.items():
            body["data"][k] = base64.b64encode(str(v).encode()).decode()
    return body


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def do_update(res, ns, name, new, manager, dry_run, create=False):
    """A non-apply write (create, merge patch, control update): takes changed fields."""
    key = (res.group, res.name, ns, name)
    entry = state["objects"].get(key)
    if create and entry is not None:
        raise ApiError(409, "AlreadyExists", f'{res.qualified()} "{name}" already exists',
                       {"name": name, "group": res.group, "kind": res.name})
    if res.namespaced and create and ns not in state["namespaces"]:
        raise ns_not_found(ns)
    if res.name == "secrets":
        new = secret_decode(new, res)
    if res.name == "leases":
        new = lease_decode(new)
    new = copy.deepcopy(new)
    new["apiVersion"], new["kind"] = res.api_version, res.kind
    new.setdefault("metadata", {})["name"] = name
    new["metadata"].pop("managedFields", None)
    apply_defaults(new, res, state)
    validate(new, res)
    old_leaves = flatten(user_part(entry["obj"])) if entry else {}
    new_leaves = flatten(user_part(new))
    changed = {p for p, v in new_leaves.items() if old_leaves.get(p, MISSING) != v
               or p not in old_leaves}
    managers = copy.deepcopy(entry["managers"]) if entry else {}
    for m, e in managers.items():
        if m != manager:
            e["fields"] -= changed
        e["fields"] &= set(new_leaves)
    me = managers.setdefault(manager, {"operation": "Update", "apiVersion": res.api_version,
                                       "time": now_rfc3339(), "fields": set()})
    if changed:
        me["fields"] |= changed
        me["time"] = now_rfc3339()
        me["operation"] = "Update" if me["operation"] == "Update" else me["operation"]
    managers = {m: e for m, e in managers.items() if e["fields"]}
    result = commit(res, ns, name, entry, new, managers, dry_run)
    return (201 if entry is None else 200), render(result)


# ---------------------------------------------------------------- deployment controller


def ceil_pct(v, total, up):
    if is_int(v):
        return v
    n = int(str(v).rstrip("%")) * total / 100.0
    return math.ceil(n) if up else math.floor(n)


def condition(status, ctype, cstatus, reason, message, now):
    conds = status.setdefault("conditions", [])
    for c in conds:
        if c["type"] == ctype:
            if c["status"] != cstatus:
                c["lastTransitionTime"] = now
            if c["reason"] != reason or c["status"] != cstatus:
                c["lastUpdateTime"] = now
            c.update(status=cstatus, reason=reason, message=message)
            return
    conds.append({"type": ctype, "status": cstatus, "lastUpdateTime": now,
                  "lastTransitionTime": now, "reason": reason, "message": message})


def controller_step(key, entry, t):
    """One look at a Deployment: observes its spec, moves pods one step, writes status."""
    obj = entry["obj"]
    spec = obj.get("spec") or {}
    gen = obj["metadata"].get("generation", 1)
    ro = entry.get("rollout")
    s = state["settings"]
    if ro is None:
        ro = entry["rollout"] = {"observed": 0, "seen_at": t, "hash": None, "new_created": 0,
                                 "new_ready": 0, "old": 0, "last_step": t, "last_progress": t,
                                 "fail": False, "per_replica_ms": None, "deadline_ms": None,
                                 "exceeded": False, "revision": 0}
    if ro["observed"] < gen:
        if ro.get("gen_seen") != gen:
            ro["gen_seen"], ro["seen_at"] = gen, t
        if (t - ro["seen_at"]) * 1000 < s["observe_ms"]:
            return
        ro["observed"] = gen
        h = template_hash(spec)
        if h != ro["hash"]:
            if ro["hash"] is not None:
                ro["old"] += ro["new_ready"]
                ro["revision"] += 1
                obj["metadata"].setdefault("annotations", {})[
                    "deployment.kubernetes.io/revision"] = str(ro["revision"] + 1)
            ro.update(hash=h, new_created=0, new_ready=0, last_progress=t, exceeded=False,
                      started=t)
            images = [c.get("image", "") for c in
                      ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
                      if isinstance(c, dict)]
            ro["failing"] = ro["fail"] or any("fail-rollout" in str(i) for i in images)
        else:
            ro["last_progress"] = t
    desired = spec.get("replicas", 1)
    per = ro["per_replica_ms"] if ro["per_replica_ms"] is not None else s["per_replica_ms"]
    strat = spec.get("strategy") or {}
    ru = strat.get("rollingUpdate") or {}
    surge = ceil_pct(ru.get("maxSurge", "25%"), desired, True)
    max_unavail = ceil_pct(ru.get("maxUnavailable", "25%"), desired, False)
    if strat.get("type") == "Recreate":
        surge = 0
    if not spec.get("paused") and (t - ro["last_step"]) * 1000 >= per and not ro["exceeded"]:
        ro["last_step"] = t
        progressed = True
        if ro["new_created"] > desired:
            ro["new_created"] -= 1
            ro["new_ready"] = min(ro["new_ready"], ro["new_created"])
        elif ro["new_ready"] < ro["new_created"] and not ro["failing"]:
            ro["new_ready"] += 1
        elif ro["old"] > 0 and (ro["new_ready"] + ro["old"] > desired or
                                strat.get("type") == "Recreate"):
            ro["old"] -= 1
        elif ro["new_created"] < desired and ro["new_created"] + ro["old"] < desired + \
                max(surge, 1 if ro["old"] == 0 else 0):
            ro["new_created"] += 1
        elif ro["old"] > 0 and not ro["failing"]:
            ro["old"] -= 1
        else:
            progressed = False
        if progressed:
            ro["last_progress"] = t
    now = now_rfc3339()
    st = copy.deepcopy(obj.get("status") or {})
    total = ro["new_created"] + ro["old"]
    avail = ro["new_ready"] + ro["old"]
    new_status = {"observedGeneration": ro["observed"], "replicas": total,
                  "updatedReplicas": ro["new_created"], "readyReplicas": avail,
                  "availableReplicas": avail, "unavailableReplicas": max(0, total - avail)}
    for k, v in new_status.items():
        # the real status omits zero counts (omitempty): clients must read absent as 0
        if v:
            st[k] = v
        else:
            st.pop(k, None)
    rs = f'{obj["metadata"]["name"]}-{ro["hash"]}'
    complete = ro["new_created"] == desired and ro["new_ready"] == desired and ro["old"] == 0
    deadline_ms = ro["deadline_ms"] if ro["deadline_ms"] is not None else \
        spec.get("progressDeadlineSeconds", 600) * s["deadline_scale"] * 1000
    if avail >= desired - max_unavail:
        condition(st, "Available", "True", "MinimumReplicasAvailable",
                  "Deployment has minimum availability.", now)
    else:
        condition(st, "Available", "False", "MinimumReplicasUnavailable",
                  "Deployment does not have minimum availability.", now)
    if ro["exceeded"]:
        pass
    elif complete:
        condition(st, "Progressing", "True", "NewReplicaSetAvailable",
                  f'ReplicaSet "{rs}" has successfully progressed.', now)
    elif (t - ro["last_progress"]) * 1000 >= deadline_ms:
        ro["exceeded"] = True
        condition(st, "Progressing", "False", "ProgressDeadlineExceeded",
                  f'ReplicaSet "{rs}" has timed out progressing.', now)
    elif ro["new_created"] == 0 and ro["new_ready"] == 0:
        condition(st, "Progressing", "True", "NewReplicaSetCreated",
                  f'Created new replica set "{rs}"', now)
    else:
        condition(st, "Progressing", "True", "ReplicaSetUpdated",
                  f'ReplicaSet "{rs}" is progressing.', now)
    # the order real Deployments list them in
    st["conditions"].sort(key=lambda c: c["type"] != "Available")
    if st != obj.get("status"):
        obj["status"] = st
        obj["metadata"]["resourceVersion"] = next_rv()


def pod_images(spec):
    return [c.get("image", "") for c in
            ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
            if isinstance(c, dict)]


def pods_observe(entry, t):
    """StatefulSet/DaemonSet: observes a new generation after observe_ms; the rollout state."""
    obj = entry["obj"]
    spec = obj.get("spec") or {}
    gen = obj["metadata"].get("generation", 1)
    s = state["settings"]
    ro = entry.get("rollout")
    if ro is None:
        ro = entry["rollout"] = {"observed": 0, "seen_at": t, "hash": None, "current": None,
                                 "pods": [], "last_step": t, "fail": False,
                                 "failing": False, "per_replica_ms": None}
    if ro["observed"] < gen:
        if ro.get("gen_seen") != gen:
            ro["gen_seen"], ro["seen_at"] = gen, t
        if (t - ro["seen_at"]) * 1000 >= s["observe_ms"]:
            ro["observed"] = gen
            h = template_hash(spec)
            if h != ro["hash"]:
                ro["hash"] = h
                if ro["current"] is None:
                    ro["current"] = h
                ro["failing"] = ro["fail"] or any("fail-rollout" in str(i)
                                                  for i in pod_images(spec))
    per = ro["per_replica_ms"] if ro["per_replica_ms"] is not None else s["per_replica_ms"]
    due = ro["hash"] is not None and (t - ro["last_step"]) * 1000 >= per
    if due:
        ro["last_step"] = t
    return ro, spec, due


def set_status(obj, new_status):
    # the real status omits zero counts (omitempty): clients must read absent as 0
    st = {k: v for k, v in new_status.items() if v not in (0, None, "")}
    if st != obj.get("status"):
        obj["status"] = st
        obj["metadata"]["resourceVersion"] = next_rv()


def statefulset_step(key, entry, t):
    """One look at a StatefulSet (OrderedReady): pods by ordinal, [revision, ready]; one
    change per per_replica_ms. A pod of a failing revision never gets ready: stuck, as a
    real one is (StatefulSets have no progress deadline)."""
    ro, spec, due = pods_observe(entry, t)
    if ro["hash"] is None:
        return  # not observed yet: no status, as from a real controller
    pods = ro["pods"]
    want = spec.get("replicas", 1)
    us = spec.get("updateStrategy") or {}
    rolling = us.get("type", "RollingUpdate") == "RollingUpdate"
    partition = (us.get("rollingUpdate") or {}).get("partition", 0) if rolling else want
    if due and ro["hash"] is not None:
        unready = [i for i, p in enumerate(pods) if not p[1]]
        if unready:
            i = unready[0]
            if not (pods[i][0] == ro["hash"] and ro["failing"]):
                pods[i][1] = True
        elif len(pods) < want:
            # a new ordinal is made at the update revision, below the partition at current
            rev = ro["hash"] if len(pods) >= partition or not rolling else ro["current"]
            pods.append([rev if rolling else ro["hash"], False])
        elif len(pods) > want:
            pods.pop()
        elif rolling:
            for i in range(len(pods) - 1, partition - 1, -1):
                if pods[i][0] != ro["hash"]:
                    pods[i] = [ro["hash"], False]
                    break
        if all(p[0] == ro["hash"] and p[1] for p in pods) and len(pods) == want:
            ro["current"] = ro["hash"]
    name = entry["obj"]["metadata"]["name"]
    ready = sum(1 for p in pods if p[1])
    set_status(entry["obj"], {
        "observedGeneration": ro["observed"], "replicas": len(pods),
        "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": sum(1 for p in pods if p[0] == ro["current"]),
        "updatedReplicas": sum(1 for p in pods if p[0] == ro["hash"]),
        "currentRevision": f"{name}-{ro['current']}" if ro["current"] else None,
        "updateRevision": f"{name}-{ro['hash']}" if ro["hash"] else None,
        "collisionCount": 0})


def daemonset_step(key, entry, t):
    """One look at a DaemonSet on settings.nodes nodes: a pod per node, [revision, ready];
    RollingUpdate replaces maxUnavailable pods at a time, OnDelete never replaces."""
    ro, spec, due = pods_observe(entry, t)
    if ro["hash"] is None:
        return
    nodes = int(state["settings"]["nodes"])
    pods = ro["pods"]
    while len(pods) < nodes:
        pods.append(None)
    del pods[nodes:]
    us = spec.get("updateStrategy") or {}
    rolling = us.get("type", "RollingUpdate") == "RollingUpdate"
    mu = max(1, ceil_pct((us.get("rollingUpdate") or {}).get("maxUnavailable", 1), nodes,
                         False))
    if due and ro["hash"] is not None:
        for i, p in enumerate(pods):
            if p is None:
                pods[i] = [ro["hash"], False]
                break
            if not p[1] and not (p[0] == ro["hash"] and ro["failing"]):
                p[1] = True
                break
        else:
            unavailable = sum(1 for p in pods if not p[1])
            if rolling and unavailable < mu:
                for i, p in enumerate(pods):
                    if p[0] != ro["hash"]:
                        pods[i] = None
                        break
    ready = sum(1 for p in pods if p and p[1])
    scheduled = sum(1 for p in pods if p)
    set_status(entry["obj"], {
        "observedGeneration": ro["observed"], "desiredNumberScheduled": nodes,
        "currentNumberScheduled": scheduled, "numberMisscheduled": 0,
        "numberReady": ready, "numberAvailable": ready,
        "numberUnavailable": nodes - ready,
        "updatedNumberScheduled": sum(1 for p in pods if p and p[0] == ro["hash"])})


STEPS = {"deployments": controller_step, "statefulsets": statefulset_step,
         "daemonsets": daemonset_step}


def controller():
    while True:
        time.sleep(0.01)
        t = time.monotonic()
        with lock:
            for key, entry in list(state["objects"].items()):
                step = STEPS.get(key[1])
                if step:
                    step(key, entry, t)


# ---------------------------------------------------------------- HTTP


def discovery_list(group, version):
    res = []
    for r in API[(group, version)]:
        name, kind, namespaced, short, _ = r
        d = {"name": name, "singularName": SINGULAR[name], "namespaced": namespaced,
             "kind": kind, "verbs": VERBS if name != "namespaces" else
             ["create", "delete", "get", "list", "patch", "update", "watch"]}
        if short:
            d["shortNames"] = short
        if name in ("deployments", "statefulsets", "daemonsets"):
            d["categories"] = ["all"]
        res.append(d)
        for sub in SUBRESOURCES.get(name, []):
            sd = {"name": f"{name}/{sub}", "singularName": "", "namespaced": namespaced,
                  "kind": kind if sub == "status" else "Scale",
                  "verbs": ["get", "patch", "update"]}
            if sub == "scale":
                sd["group"], sd["version"] = "autoscaling", "v1"
            res.append(sd)
    gv = f"{group}/{version}" if group else version
    doc = {"kind": "APIResourceList", "groupVersion": gv, "resources": res}
    if group:
        # the real /apis/G/V carries apiVersion, /api/v1 does not
        doc = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
               "resources": res}
    return doc


def api_group(group):
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for (g, v) in API if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def parse_labels(sel):
    want = {}
    for part in filter(None, (sel or "").split(",")):
        if "=" not in part:
            raise bad_request(f"unable to parse requirement: {part}")
        k, _, v = part.partition("==" if "==" in part else "=")
        want[k.strip()] = v.strip()
    return want


SET_REQ = re.compile(r"^([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                       r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def parse_selector(sel):
    """A label selector as k8s.io/apimachinery labels.Parse reads it: requirements
    separated by commas (not those inside a set), each k=v, k==v, k!=v, k, !k,
    k in (a,b) or k notin (a,b). [(op, key, values)]; a 400 for what it cannot read."""
    parts, depth, cur = [], 0, ""
    for ch in sel or "":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip() or parts:
        parts.append(cur)
    reqs = []
    for raw in parts:
        part = raw.strip()
        m = SET_REQ.match(part)
        if m:
            key, op = m.group(1), m.group(2)
            values = [v.strip() for v in m.group(3).split(",")]
            if values == [""]:
                raise bad_request(f"unable to parse requirement: found ')', expected: "
                                  f"identifier or ')' in {part!r}: for 'in', 'notin' "
                                  "operators, values set can't be empty")
        elif part.startswith("!"):
            key, op, values = part[1:].strip(), "!", []
        elif "!=" in part:
            key, _, v = part.partition("!=")
            op, values = "!=", [v.strip()]
        elif "=" in part:
            key, _, v = part.partition("==" if "==" in part else "=")
            op, values = "=", [v.strip()]
        else:
            key, op, values = part, "exists", []
        key = key.strip()
        if not LABEL_KEY.match(key) or any(not LABEL_VALUE.match(v) or len(v) > 63
                                           for v in values):
            raise bad_request(f"unable to parse requirement: {part!r}: not a valid label "
                              "key or value")
        reqs.append((op, key, values))
    return reqs


def selector_selects(reqs, labels):
    for op, key, values in reqs:
        has = key in labels
        v = labels.get(key)
        if op in ("=", "in"):
            ok = has and v in values
        elif op in ("!=", "notin"):
            ok = not has or v not in values
        else:
            ok = has if op == "exists" else not has
        if not ok:
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description="Kubernetes API stand-in for tests")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    ap.add_argument("--tokens")
    ap.add_argument("--namespaces", default="default")
    ap.add_argument("--sni-name")
    ap.add_argument("--sni-cert")
    ap.add_argument("--sni-key")
    opt = ap.parse_args()
    tokens = {}
    if opt.tokens:
        with open(opt.tokens) as f:
            tokens = json.load(f)
    namespaces = [n for n in opt.namespaces.split(",") if n]
    reset_state(namespaces, tokens)

    class Api(Handler):
        def send(self, status, doc, content_type="application/json", headers=()):
            answer(self, status, doc, content_type,
                   (("Cache-Control", "no-cache, private"),) + tuple(headers))
            self.entry["status"] = status

        def read_body(self):
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                data = b""
                for _ in range(100000):
                    line = self.rfile.readline(100)
                    n = int(line.split(b";")[0].strip() or b"0", 16)
                    if n == 0:
                        self.rfile.readline(100)
                        break
                    if len(data) + n > MAX_BODY:
                        raise ApiError(413, "RequestEntityTooLarge",
                                       "the request body is too large")
                    data += self.rfile.read(n)
                    self.rfile.readline(100)
                return data
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                raise ApiError(413, "RequestEntityTooLarge", "the request body is too large")
            return self.rfile.read(n) if n > 0 else b""

        def authenticate(self):
            """(user, groups, how) or (None, None, why)."""
            try:
                cert = self.connection.getpeercert()
            except (ValueError, AttributeError):
                cert = None
            if cert:
                cn, groups = None, []
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            cn = v
                        elif k == "organizationName":
                            groups.append(v)
                if cn:
                    return cn, groups, "cert"
            auth = self.headers.get("Authorization")
            if auth is None:
                return None, None, "none"
            if not auth.startswith("Bearer "):
                return None, None, "invalid"
            tok = state["tokens"].get(auth[len("Bearer "):].strip())
            if tok is None:
                return None, None, "invalid"
            self.entry["token_id"] = tok.get("id")
            if tok.get("expires") is not None and tok["expires"] <= time.time():
                return None, None, "expired"
            return tok.get("user", "unknown"), tok.get("groups", []), "token"

        def handle_any(self):
            split = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
            self.query = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
            self.entry = {"method": self.command, "path": split.path, "query": self.query,
                          "content_type": self.headers.get("Content-Type"),
                          "accept": self.headers.get("Accept"),
                          "user_agent": self.headers.get("User-Agent"),
                          "host": self.headers.get("Host"),
                          "sni": getattr(self.connection, "mg_sni", None),
                          "user": None, "auth": None, "token_id": None, "body": None,
                          "status": None}
            try:
                raw = self.read_body()
                if raw:
                    try:
                        self.entry["body"] = json.loads(raw.decode())
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        self.entry["body"] = raw.decode("utf-8", "replace")
                with lock:
                    user, groups, how = self.authenticate()
                    self.entry["user"], self.entry["auth"] = user, how
                    self.entry["groups"] = groups
                if self.echo():
                    return
                fault = self.take_fault(split.path)
                if fault is not None and self.behave(fault):
                    return
                if user is None:
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                self.user = user
                self.route(split.path, raw)
            except ApiError as e:
                self.send(e.code, e.status(), headers=e.headers)
            finally:
                with lock:
                    state["log"].append(self.entry)

        def echo(self):
            """The echo mode's answer; False when it is off."""
            with lock:
                mode = copy.deepcopy(state.get("echo"))
            if not mode:
                return False
            auth = self.headers.get("Authorization")
            text = echo_text(auth, f"{self.command} {urllib.parse.urlsplit(self.path).path}")
            status = int(mode.get("status", 403))
            headers = [("X-Echo", str(auth))]
            if mode.get("kind") == "text":
                self.send(status, text.encode(), "text/plain; charset=utf-8", headers=headers)
            else:
                e = ApiError(status, "Forbidden", text,
                             {"causes": [{"field": "metadata", "message": text}]}, headers)
                self.send(status, e.status(), headers=headers)
            return True

        def take_fault(self, path):
            with lock:
                for i, f in enumerate(state["faults"]):
                    if f.get("method") and f["method"] != self.command:
                        continue
                    if f.get("path") and f["path"] not in path:
                        continue
                    if f.get("skip", 0) > 0:
                        f["skip"] -= 1  # this one passes: the fault hits a later request
                        return None
                    f["count"] = f.get("count", 1) - 1
                    if f["count"] <= 0:
                        state["faults"].pop(i)
                    self.entry["fault"] = {k: v for k, v in f.items() if k != "count"}
                    return f
            return None

        def behave(self, f):
            """Answers as the fault says; False to go on answering normally."""
            kind = f.get("kind")
            if kind == "slow":
                time.sleep(min(f.get("ms", 1000), 30000) / 1000.0)
                return False
            if kind == "close":
                self.close_connection = True
                self.entry["status"] = 0
                return True
            if kind == "content_type":
                self.send(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>\n",
                          "text/html")
                return True
            status = f.get("status", 500)
            headers = []
            reasons = {429: ("TooManyRequests", "Too many requests, please try again later."),
                       500: ("InternalError", "Internal error occurred: injected fault"),
                       503: ("ServiceUnavailable", "the server is currently unable to handle "
                             "the request"),
                       409: ("Conflict", "Operation cannot be fulfilled: the object has been "
                             "modified; please apply your changes to the latest version and "
                             "try again"),
                       504: ("Timeout", "Timeout: request did not complete within the allowed "
                             "duration")}
            reason, message = reasons.get(status, ("InternalError", "injected fault"))
            details = None
            if "retry_after" in f:
                headers.append(("Retry-After", str(f["retry_after"])))
                details = {"retryAfterSeconds": int(f["retry_after"])}
            e = ApiError(status, f.get("reason", reason), f.get("message", message), details,
                         headers)
            self.send(status, e.status(), headers=headers)
            return True

        def forbidden_check(self, verb, res, ns, name):
            for rule in state["forbid"]:
                if rule.get("user") not in (None, self.user):
                    continue
                if rule.get("verb") not in (None, verb):
                    continue
                if rule.get("resource") not in (None, res.name):
                    continue
                where = f' in the namespace "{ns}"' if ns else ""
                group = f'in API group "{res.group}"'
                what = f'{res.qualified()} "{name}"' if name else res.qualified()
                raise ApiError(403, "Forbidden",
                               f'{what} is forbidden: User "{self.user}" cannot {verb} '
                               f'resource "{res.name}" {group}{where}',
                               {"name": name, "group": res.group, "kind": res.name}
                               if name else {"group": res.group, "kind": res.name})

        def route(self, path, raw):
            parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")] \
                if path.strip("/") else []
            if path in ("/healthz", "/readyz", "/livez"):
                return self.send(200, b"ok", "text/plain; charset=utf-8")
            if path == "/version":
                return self.send(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0",
                                       "platform": "linux/amd64"})
            if parts == ["api"]:
                return self.send(200, {"kind": "APIVersions", "versions": ["v1"],
                                       "serverAddressByClientCIDRs": [{
                                           "clientCIDR": "0.0.0.0/0",
                                           "serverAddress": f"127.0.0.1:{self.server.server_port}"
                                       }]})
            if parts == ["apis"]:
                groups = []
                for g in dict.fromkeys(g for (g, _) in API if g):
                    groups.append(api_group(g))
                return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                       "groups": groups})
            if len(parts) == 2 and parts[0] == "apis" and any(g == parts[1] for g, _ in API):
                doc = api_group(parts[1])
                doc.update(kind="APIGroup", apiVersion="v1")
                return self.send(200, doc)
            if parts[:1] == ["api"] and len(parts) >= 2:
                group, version, rest = "", parts[1], parts[2:]
            elif parts[:1] == ["apis"] and len(parts) >= 3:
                group, version, rest = parts[1], parts[2], parts[3:]
            else:
                return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            if (group, version) not in API:
                return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            if not rest:
                if self.command != "GET":
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this "
                                   "method on the requested resource")
                return self.send(200, discovery_list(group, version))
            ns = None
            if rest[0] == "namespaces" and len(rest) >= 3 and group == "":
                ns, rest = rest[1], rest[2:]
            elif rest[0] == "namespaces" and len(rest) >= 3:
                ns, rest = rest[1], rest[2:]
            res = RESOURCES.get((group, version, rest[0]))
            if res is None:
                raise no_resource()
            if res.name == "namespaces":
                return self.namespaces(rest[1:])
            if ns is None and res.namespaced and len(rest) > 1:
                raise no_resource()
            if len(rest) > 3:
                raise no_resource()
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
            if sub is not None and sub not in SUBRESOURCES.get(res.name, []):
                raise no_resource()
            if self.command == "GET" and name is None and \
                    self.query.get("watch") in ("true", "1"):
                return self.watch(res, ns)
            with lock:
                return self.resource(res, ns, name, sub, raw)

        def namespaces(self, rest):
            with lock:
                if self.command != "GET":
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this "
                                   "method on the requested resource")
                def obj(n):
                    return {"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": n, "creationTimestamp": state["namespaces"][n],
                                         "labels": {"kubernetes.io/metadata.name": n}},
                            "spec": {"finalizers": ["kubernetes"]},
                            "status": {"phase": "Active"}}
                if not rest:
                    items = [obj(n) for n in sorted(state["namespaces"])]
                    for i in items:
                        del i["apiVersion"], i["kind"]
                    return self.send(200, {"kind": "NamespaceList", "apiVersion": "v1",
                                           "metadata": {"resourceVersion": str(state["rv"])},
                                           "items": items})
                n = rest[0]
                if n not in state["namespaces"] or len(rest) > 1:
                    raise ns_not_found(n)
                return self.send(200, obj(n))

        def dry_run(self):
            v = self.query.get("dryRun")
            if v is None:
                return False
            vals = v if isinstance(v, list) else [v]
            if vals != ["All"]:
                raise self.options_invalid(Cause(
                    "FieldValueNotSupported", "dryRun",
                    f"Unsupported value: []string{{{', '.join(json.dumps(x) for x in vals)}}}: "
                    f'supported values: "All"'))
            return True

        def options_invalid(self, cause, kind="PatchOptions"):
            return invalid_error(f"{kind}.meta.k8s.io", "", "meta.k8s.io", kind, [cause])

        def resource(self, res, ns, name, sub, raw):
            verb = {"GET": "get" if name else "list", "DELETE": "delete", "PATCH": "patch",
                    "POST": "create", "PUT": "update"}.get(self.command)
            if verb is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            self.forbidden_check(verb, res, ns, name)
            key = (res.group, res.name, ns, name)
            if self.command == "GET" and name is None:
                return self.list(res, ns)
            if self.command == "POST":
                if name is not None:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this "
                                   "method on the requested resource")
                body = self.json_body(raw)
                nm = (body.get("metadata") or {}).get("name")
                if not nm:
                    raise invalid_error(res.kind_qualified(), "", res.group, res.kind,
                                        [required("metadata.name",
                                                  "name or generateName is required")])
                self.check_namespace(res, ns, body)
                rv = (body.get("metadata") or {}).get("resourceVersion")
                if isinstance(rv, str) and rv.isdigit() and int(rv) != 0:
                    # the etcd3 store's ErrResourceVersionSetOnCreate, a plain error: 500
                    raise ApiError(500, "", "resourceVersion should not be set on objects "
                                   "to be created")
                dry = self.dry_run()
                code, obj = do_update(res, ns, nm, body, self.manager(), dry, create=True)
                return self.send(201, obj)
            if name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource")
            entry = state["objects"].get(key)
            if self.command == "GET":
                if entry is None:
                    raise not_found(res, name)
                return self.send(200, render(entry))
            if self.command == "DELETE":
                if entry is None:
                    raise not_found(res, name)
                opts = self.json_body(raw, "the DeleteOptions") if raw.strip() else {}
                pre = opts.get("preconditions") or {}
                meta = entry["obj"]["metadata"]
                for field, have in (("UID", meta.get("uid")),
                                    ("ResourceVersion", meta.get("resourceVersion"))):
                    want = pre.get(field[0].lower() + field[1:])
                    if want is not None and want != have:
                        raise precondition_failed(res, ns, name, field, want, have)
                if not self.dry_run():
                    del state["objects"][key]
                return self.send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                       "status": "Success",
                                       "details": {"name": name, "group": res.group,
                                                   "kind": res.name,
                                                   "uid": entry["obj"]["metadata"]["uid"]}})
            if self.command == "PUT":
                # k8s.io/apiserver pkg/registry/generic/registry/store.go (*Store).Update:
                # a missing object is NotFound unless the strategy's AllowCreateOnUpdate
                # (Leases: a PUT creates); no resourceVersion is an unconditional update
                # only where AllowUnconditionalUpdate (ConfigMaps yes, Leases and custom
                # resources no: 422 "must be specified for an update"); a stale one is 409
                # Conflict; a metadata.uid is a precondition too.
                body = self.json_body(raw)
                if (body.get("metadata") or {}).get("name") != name:
                    raise bad_request(f"the name of the object "
                                      f"({(body.get('metadata') or {}).get('name')}) does not "
                                      f"match the name on the URL ({name})")
                self.check_namespace(res, ns, body)
                uid = (body.get("metadata") or {}).get("uid")
                if entry is None and res.name in CREATE_ON_UPDATE:
                    # the object's uid is a precondition (rest.defaultUpdatedObjectInfo),
                    # checked against the empty object of a missing key: an update of a
                    # Lease read before it was deleted is a conflict, not a re-creation
                    if uid:
                        raise precondition_failed(res, ns, name, "UID", uid, "")
                    if res.namespaced and ns not in state["namespaces"]:
                        raise ns_not_found(ns)
                    body = copy.deepcopy(body)
                    body["metadata"].pop("resourceVersion", None)
                    code, obj = do_update(res, ns, name, body, self.manager(), self.dry_run(),
                                          create=True)
                    return self.send(201, obj)
                if entry is None:
                    raise not_found(res, name)
                rv = (body.get("metadata") or {}).get("resourceVersion")
                if not rv and res.name in NO_UNCONDITIONAL_UPDATE:
                    raise invalid_error(res.qualified(), name, res.group, res.name, [
                        Cause("FieldValueInvalid", "metadata.resourceVersion",
                              "Invalid value: 0x0: must be specified for an update")])
                if uid and uid != entry["obj"]["metadata"].get("uid"):
                    raise precondition_failed(res, ns, name, "UID", uid,
                                              entry["obj"]["metadata"].get("uid"))
                if rv and rv != entry["obj"]["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on '
                                   f'{res.qualified()} "{name}": the object has been modified; '
                                   f"please apply your changes to the latest version and try "
                                   f"again", {"name": name, "group": res.group,
                                              "kind": res.name})
                code, obj = do_update(res, ns, name, body, self.manager(), self.dry_run())
                return self.send(200, obj)
            return self.patch(res, ns, name, sub, raw, entry)

        def check_namespace(self, res, ns, body):
            got = (body.get("metadata") or {}).get("namespace")
            if res.namespaced and got and got != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")

        def manager(self):
            return self.query.get("fieldManager") or \
                (self.headers.get("User-Agent") or "unknown").split("/")[0]

        def json_body(self, raw, what="the request body"):
            try:
                doc = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise bad_request(f"this test server reads the JSON form of YAML only: "
                                  f"{what} is not JSON ({e})")
            if not isinstance(doc, dict):
                raise bad_request(f"{what} must be a JSON object")
            return doc

        def patch(self, res, ns, name, sub, raw, entry):
            ct = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            known = ["application/json-patch+json", "application/merge-patch+json",
                     "application/apply-patch+yaml"]
            if res.group != "example.com":
                known.insert(2, "application/strategic-merge-patch+json")
            if ct not in known or ct == "application/json-patch+json":
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted "
                               "media types include: " + ", ".join(known)
                               + ("" if ct != "application/json-patch+json"
                                  else " (this test server does not do json-patch)"))
            apply = ct == "application/apply-patch+yaml"
            manager = self.query.get("fieldManager")
            force = self.query.get("force")
            if apply and not manager:
                raise self.options_invalid(required("fieldManager", "is required for apply "
                                                    "patch"))
            if not apply and force is not None:
                raise self.options_invalid(Cause("FieldValueForbidden", "force",
                                                 "Forbidden: may not be specified for "
                                                 "non-apply patch"))
            if manager is not None and (len(manager) > 128 or not manager.isprintable()):
                raise self.options_invalid(invalid("fieldManager", manager,
                                                   "must be at most 128 printable characters"))
            if force not in (None, "true", "false"):
                raise bad_request(f'strconv.ParseBool: parsing "{force}": invalid syntax')
            dry = self.dry_run()
            if sub == "scale":
                raise bad_request("this test server does not patch the scale subresource")
            if apply:
                body = self.json_body(raw, "the apply patch")
                if sub == "status":
                    if entry is None:
                        raise not_found(res, name)
                    raise bad_request("this test server does not apply to status")
                code, obj = do_apply(res, ns, name, body, manager, force == "true", dry)
                return self.send(code, obj)
            if entry is None:
                raise not_found(res, name)
            patch = self.json_body(raw, "the patch")
            new = merge_patch(entry["obj"], patch)
            new.pop("status", None)
            code, obj = do_update(res, ns, name, new, manager or self.manager(), dry)
            return self.send(200, obj)

        def selected(self, res, ns):
            """The entries a list or watch of res in ns selects (labelSelector as
            parse_selector reads it; fieldSelector metadata.name/metadata.namespace, as
            kubectl rollout status sends)."""
            reqs = parse_selector(self.query.get("labelSelector"))
            fields = parse_labels(self.query.get("fieldSelector"))
            for f in fields:
                if f not in ("metadata.name", "metadata.namespace"):
                    raise bad_request(f'"{f}" is not a known field selector: only '
                                      f'"metadata.name", "metadata.namespace"')
            out = []
            for (g, r, n, nm), e in sorted(state["objects"].items()):
                if g != res.group or r != res.name or (ns is not None and n != ns):
                    continue
                if fields.get("metadata.name", nm) != nm or \
                        fields.get("metadata.namespace", n) != n:
                    continue
                labels = e["obj"]["metadata"].get("labels") or {}
                if selector_selects(reqs, labels):
                    out.append(((g, r, n, nm), e))
            return out

        def watch(self, res, ns):
            """?watch=true: a chunked stream of WatchEvents (ADDED, MODIFIED, DELETED) for
            what the selectors select, changes after resourceVersion, until timeoutSeconds
            (at most 30 s here) or the client goes away. The lock is taken per look only."""
            with lock:
                self.forbidden_check("watch", res, ns, None)
                since = int(self.query.get("resourceVersion") or 0)
                seen = {k: int(e["obj"]["metadata"].get("resourceVersion", 0))
                        for k, e in self.selected(res, ns)}
            end = time.monotonic() + min(float(self.query.get("timeoutSeconds") or 30), 30)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            self.wfile.flush()  # the headers now, as a real server: clients wait for them
            self.entry["status"] = 200
            first = {k: (since if since else rv) for k, rv in seen.items()}

            def chunk(data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            try:
                while time.monotonic() < end:
                    events = []
                    with lock:
                        now = {}
                        for k, e in self.selected(res, ns):
                            rv = int(e["obj"]["metadata"].get("resourceVersion", 0))
                            now[k] = rv
                            old = first.get(k)
                            if old is None or rv > old:
                                o = render(e)
                                events.append({"type": "ADDED" if old is None and
                                               k not in seen else "MODIFIED", "object": o})
                        for k in first:
                            if k not in now:
                                events.append({"type": "DELETED", "object": {
                                    "apiVersion": res.api_version, "kind": res.kind,
                                    "metadata": {"name": k[3], "namespace": k[2]}}})
                    first = now
                    for ev in events:
                        chunk(json.dumps(ev).encode() + b"\n")
                    time.sleep(0.02)
                chunk(b"")
            except OSError:
                self.close_connection = True

        def list(self, res, ns):
            items = []
            for _, e in self.selected(res, ns):
                o = render(e)
                del o["apiVersion"], o["kind"]
                items.append(o)
            return self.send(200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                                   "metadata": {"resourceVersion": str(state["rv"])},
                                   "items": items})

        do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = handle_any

    class Control(Handler):
        def do_GET(self):
            with lock:
                if self.path == "/__requests":
                    return self.reply(200, state["log"])
            self.reply(404, {"error": "no such control endpoint"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            try:
                doc = json.loads(self.rfile.read(n).decode() or "null")
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                return self.reply(400, {"error": f"not JSON: {e}"})
            if self.path != "/__control" or not isinstance(doc, dict):
                return self.reply(404, {"error": "POST /__control with a JSON object"})
            try:
                with lock:
                    return self.reply(200, self.op(doc))
            except ApiError as e:
                return self.reply(e.code, e.status())
            except (KeyError, TypeError, ValueError) as e:
                return self.reply(400, {"error": f"bad control request: {e!r}"})

        def lookup(self, path):
            parts = path.strip("/").split("/")
            if parts[0] == "api":
                group, version, rest = "", parts[1], parts[2:]
            else:
                group, version, rest = parts[1], parts[2], parts[3:]
            if len(rest) != 4 or rest[0] != "namespaces":
                raise ValueError(f"not an object path: {path}")
            res = RESOURCES[(group, version, rest[2])]
            return res, rest[1], rest[3]

        def op(self, doc):
            op = doc["op"]
            if op == "reset":
                reset_state(namespaces, tokens)
                return {}
            if op == "clear_requests":
                state["log"].clear()
                return {}
            if op == "expire_token":
                state["tokens"][doc["token"]]["expires"] = time.time() - 1
                return {}
            if op == "add_token":
                state["tokens"][doc["token"]] = {"user": doc["user"],
                                                 "groups": doc.get("groups", []),
                                                 "expires": doc.get("expires"),
                                                 "id": doc.get("id")}
                return {}
            if op == "revoke_token":
                if state["tokens"].pop(doc["token"], None) is None:
                    raise ValueError("no such token")
                return {}
            if op == "rotate_token":
                old = state["tokens"].get(doc["token"])
                if old is None:
                    raise ValueError("no such token")
                if doc["new"] in state["tokens"]:
                    raise ValueError("the new token is already issued")
                state["tokens"][doc["new"]] = {"user": old.get("user"),
                                               "groups": list(old.get("groups", [])),
                                               "expires": None, "id": doc.get("id")}
                old["expires"] = time.time() + float(doc.get("grace_ms", 0)) / 1000.0
                return {}
            if op == "settings":
                for k in settings_default:
                    if k in doc:
                        state["settings"][k] = float(doc[k])
                return dict(state["settings"])
            if op == "namespace":
                state["namespaces"][doc["name"]] = now_rfc3339()
                return {}
            if op == "echo":
                state["echo"] = doc if doc.get("on") else None
                return {}
            if op == "forbid":
                state["forbid"].append({k: doc.get(k) for k in ("user", "verb", "resource")})
                return {}
            if op == "clear_faults":
                state["faults"] = []
                return {}
            if op == "fault":
                f = {k: v for k, v in doc.items() if k != "op"}
                f.setdefault("count", 1)
                state["faults"].append(f)
                return {"queued": len(state["faults"])}
            if op == "rollout":
                resource = doc.get("resource", "deployments")
                key = ("apps", resource, doc.get("namespace", "default"), doc["name"])
                entry = state["objects"].get(key)
                if entry is None:
                    raise not_found(RESOURCES[("apps", "v1", resource)], doc["name"])
                STEPS[resource](key, entry, time.monotonic())
                ro = entry["rollout"]
                if "fail" in doc:
                    ro["fail"] = ro["failing"] = bool(doc["fail"])
                    if not doc["fail"] and resource == "deployments":
                        ro["exceeded"] = False
                        ro["last_progress"] = time.monotonic()
                for k in ("per_replica_ms", "deadline_ms"):
                    if k in doc:
                        ro[k] = doc[k]
                return {k: v for k, v in ro.items() if isinstance(v, (int, float, str, bool))}
            if op == "update":
                res, ns, name = self.lookup(doc["path"])
                entry = state["objects"].get((res.group, res.name, ns, name))
                if entry is None:
                    raise not_found(res, name)
                new = merge_patch(entry["obj"], doc["patch"])
                new.pop("status", None)
                _, obj = do_update(res, ns, name, new, doc.get("manager", "kubectl-edit"),
                                   False)
                return obj
            if op == "get":
                res, ns, name = self.lookup(doc["path"])
                entry = state["objects"].get((res.group, res.name, ns, name))
                if entry is None:
                    raise not_found(res, name)
                return render(entry)
            raise ValueError(f"unknown op {op!r}")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opt.cert, opt.key)
    if opt.client_ca:
        # asked for, verified when given, not required: tokens are the other way in
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(opt.client_ca)
    named = None
    if opt.sni_name:
        named = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        named.load_cert_chain(opt.sni_cert, opt.sni_key)
        if opt.client_ca:
            named.verify_mode = ssl.CERT_OPTIONAL
            named.load_verify_locations(opt.client_ca)

    def on_sni(sock, name, _ctx):
        # remembered on the connection for the request log; the certificate follows the name
        sock.mg_sni = name
        if named is not None and name == opt.sni_name:
            sock.context = named

    ctx.sni_callback = on_sni
    serve_with_control(tls_server(ctx, Api), Control, controller)


if __name__ == "__main__":
    main()
