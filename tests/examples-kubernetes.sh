#!/bin/sh
# Checks examples/kubernetes (the leader-elected autopilot, docs/autopilot.md) offline:
#
#   1. every YAML document there parses, and each manifest is one Kubernetes object;
#   2. the Deployment is what docs/autopilot.md says: 2 replicas of `run --leader-elect
#      --metrics-addr 0.0.0.0:9102 --plan /etc/migrate/plan.yaml`, non-root, read-only root
#      file system, resources, anti-affinity on the node, httpGet probes on /healthz and
#      /readyz, a grace period longer than two balancer timeouts, every volume it mounts
#      and every Secret and ConfigMap it names accounted for;
#   3. the Role grants exactly what docs/kubernetes.md's table gives `run` and `pause` /
#      `resume`, plus what leader election adds (list and delete on leases), bound to the
#      Deployment's ServiceAccount, in the plan's state namespace;
#   4. the plan, laid out as the kubelet mounts it (..data symlinks, the tokens beside it),
#      passes `migrate validate` and keeps its state in the cluster;
#   5. `kubectl kustomize` builds the directory (when kubectl is installed) and the
#      ConfigMap it generates holds plan.yaml byte for byte;
#   6. the Containerfile's build packages are in the Makefile's DEB_PACKAGES and its
#      runtime packages (with what apt installs for them) provide every library
#      `ldd MIGRATE_BIN` names, and it runs as the uid the Deployment runs as.
#
# Usage: sh tests/examples-kubernetes.sh   (from anywhere; MIGRATE_BIN defaults to
# build/migrate, built by `make all`). Needs python3 with PyYAML (Debian: python3-yaml);
# without it, or without kubectl, ldd or apt-cache, that part is skipped and says so.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
ex=$root/examples/kubernetes
bin=${MIGRATE_BIN:-$root/build/migrate}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
ok() { printf 'ok    %s\n' "$*"; }
bad() {
	printf 'FAIL  %s\n' "$*"
	fail=1
}
skip() { printf 'skip  %s\n' "$*"; }

[ -x "$bin" ] || {
	echo "examples-kubernetes: $bin is not built; run make all first" >&2
	exit 2
}

# --- 1-3: the manifests, in python (PyYAML reads YAML 1.1, as kubectl does) ------------
if python3 -c 'import yaml' 2>/dev/null; then
	if python3 - "$ex" "$root/docs/kubernetes.md" <<'EOF'; then ok "manifests: every document parses; the Deployment, volumes, Role and RoleBinding as expected"; else bad "manifests (details above)"; fi
import glob, os, re, sys, yaml

ex, kdoc = sys.argv[1], sys.argv[2]
errors = []
def err(msg):
    errors.append(msg)
    print("      " + msg)

objs = {}
for path in sorted(glob.glob(os.path.join(ex, "*.yaml"))):
    name = os.path.basename(path)
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except yaml.YAMLError as e:
        err(f"{name}: does not parse: {e}")
        continue
    if name in ("plan.yaml", "kustomization.yaml"):
        continue
    for d in docs:
        if not (isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
                and isinstance(d.get("metadata"), dict) and d["metadata"].get("name")):
            err(f"{name}: a document is not one object with apiVersion, kind, metadata.name")
            continue
        objs[(d["kind"], d["metadata"]["name"])] = (name, d)

kust = yaml.safe_load(open(os.path.join(ex, "kustomization.yaml")))
for r in kust.get("resources", []):
    if not os.path.exists(os.path.join(ex, r)):
        err(f"kustomization.yaml: resource {r} does not exist")
plan = yaml.safe_load(open(os.path.join(ex, "plan.yaml")))
ns = plan["state"]["kubernetes"]["namespace"]
if plan["state"].get("backend") != "kubernetes":
    err("plan.yaml: state.backend is not kubernetes")
if kust.get("namespace") != ns:
    err(f"kustomization.yaml: namespace {kust.get('namespace')} is not the plan's state namespace {ns}")
for (kind, name), (f, d) in objs.items():
    if kind != "Namespace" and d["metadata"].get("namespace") != ns:
        err(f"{f}: {kind} {name} is not in the state namespace {ns}")

def get(kind, name):
    if (kind, name) not in objs:
        err(f"no {kind} {name}")
        return {}
    return objs[(kind, name)][1]

# --- the Deployment
dep = get("Deployment", "migrate-autopilot")
spec = dep.get("spec", {})
pod = spec.get("template", {}).get("spec", {})
cs = pod.get("containers", [])
c = cs[0] if cs else {}
if spec.get("replicas") != 2:
    err("Deployment: replicas is not 2")
args = c.get("args", [])
want = ["run", "--leader-elect", "--metrics-addr", "0.0.0.0:9102", "--plan", "/etc/migrate/plan.yaml"]
if args != want:
    err(f"Deployment: args {args}, expected {want}")
psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
if not psc.get("runAsNonRoot") or not psc.get("runAsUser"):
    err("Deployment: not runAsNonRoot with a runAsUser")
if not csc.get("readOnlyRootFilesystem") or csc.get("allowPrivilegeEscalation") is not False:
    err("Deployment: root file system not read-only, or privilege escalation allowed")
if "ALL" not in csc.get("capabilities", {}).get("drop", []):
    err("Deployment: capabilities not dropped")
res = c.get("resources", {})
if not res.get("requests", {}).get("cpu") or not res.get("requests", {}).get("memory") \
        or not res.get("limits", {}).get("memory"):
    err("Deployment: resources lack cpu/memory requests or a memory limit")
terms = pod.get("affinity", {}).get("podAntiAffinity", {}) \
    .get("requiredDuringSchedulingIgnoredDuringExecution", [])
sel = spec.get("selector", {}).get("matchLabels", {})
if not any(t.get("topologyKey") == "kubernetes.io/hostname"
           and t.get("labelSelector", {}).get("matchLabels") == sel for t in terms):
    err("Deployment: no required anti-affinity on kubernetes.io/hostname over its own pods")
ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    g = c.get(probe, {}).get("httpGet", {})
    port = ports.get(g.get("port"), g.get("port"))
    if g.get("path") != path or port != 9102:
        err(f"Deployment: {probe} is not httpGet {path} on 9102")
tgp = pod.get("terminationGracePeriodSeconds", 30)
cf_timeout = 30  # traffic.cloudflare.timeout's default
t = plan.get("traffic", {}).get("cloudflare", {}).get("timeout", "30s")
m = re.fullmatch(r"(\d+)s", str(t))
if m:
    cf_timeout = int(m.group(1))
if tgp <= 2 * cf_timeout + 2:
    err(f"Deployment: terminationGracePeriodSeconds {tgp} does not outlast an apply and its "
        f"read-back (2 x {cf_timeout}s) plus the hand-over (2 s)")
ann = spec.get("template", {}).get("metadata", {}).get("annotations", {})
if ann.get("prometheus.io/port") != "9102" and ("PodMonitor", "migrate-autopilot") not in objs:
    err("Deployment: neither prometheus.io annotations nor a PodMonitor")

# volumes: the plan and the tokens where the plan's relative paths expect them
vols = {v["name"]: v for v in pod.get("volumes", [])}
mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
files = {}
for mp, vn in mounts.items():
    v = vols.get(vn)
    if v is None:
        err(f"Deployment: mount {mp} names no volume {vn}")
        continue
    for s in v.get("projected", {}).get("sources", []):
        for kind in ("configMap", "secret"):
            if kind in s:
                for it in s[kind].get("items", []):
                    files[os.path.join(mp, it["path"])] = (kind, s[kind]["name"], it["key"])
planfile = args[args.index("--plan") + 1] if "--plan" in args else None
if files.get(planfile) != ("configMap", "migrate-plan", "plan.yaml"):
    err(f"Deployment: {planfile} is not plan.yaml of the ConfigMap migrate-plan")
gen = [g["name"] for g in kust.get("configMapGenerator", [])]
if "migrate-plan" not in gen:
    err("kustomization.yaml: no configMapGenerator migrate-plan")
for key in (("traffic", "cloudflare"), ("slo", "prometheus")):
    tf = plan.get(key[0], {}).get(key[1], {}).get("token_file")
    if not tf:
        continue
    p = os.path.normpath(os.path.join(os.path.dirname(planfile or "/"), tf))
    if files.get(p, ("",))[0] != "secret":
        err(f"plan.yaml: {'.'.join(key)}.token_file {tf} is {p} in the pod, which no Secret item mounts")
sdir = plan["state"].get("dir")
if not sdir or sdir not in mounts or "emptyDir" not in vols.get(mounts[sdir], {}):
    err("plan.yaml: state.dir (the local spool) is not a writable emptyDir mount")
sa = pod.get("serviceAccountName")
get("ServiceAccount", sa)

# --- the Role, against docs/kubernetes.md's table
rows = {}
for line in open(kdoc):
    cells = [x.strip() for x in line.strip().strip("|").split("|")]
    if len(cells) == 3 and "`run`" in cells[0]:
        rows["run"] = cells
    if len(cells) == 3 and cells[0].startswith("`pause`"):
        rows["pause"] = cells
if set(rows) != {"run", "pause"}:
    err("docs/kubernetes.md: the state store table has no `run` or `pause` row")
verbs = lambda s: {v.strip() for v in s.split(",") if v.strip()}
want = {"leases": set(), "configmaps": set()}
for r in rows.values():
    want["leases"] |= verbs(r[1])
    want["configmaps"] |= verbs(r[2])
want["leases"] |= {"list", "delete"}  # leader election: the standbys' Leases
role = get("Role", "migrate-autopilot")
have = {}
for rule in role.get("rules", []):
    for res_ in rule.get("resources", []):
        have.setdefault(res_, set()).update(rule.get("verbs", []))
    if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []) or rule.get("resourceNames") == ["*"]:
        err("Role: a wildcard")
if have != want:
    err(f"Role grants {dict(sorted((k, sorted(v)) for k, v in have.items()))}, "
        f"expected {dict(sorted((k, sorted(v)) for k, v in want.items()))}")
for kind in ("ClusterRole", "ClusterRoleBinding"):
    if any(k == kind for k, _ in objs):
        err(f"a {kind}: the autopilot needs nothing cluster-wide")
rb = get("RoleBinding", "migrate-autopilot")
if rb.get("roleRef", {}).get("name") != "migrate-autopilot" or \
        {"kind": "ServiceAccount", "name": sa, "namespace": ns} not in rb.get("subjects", []):
    err("RoleBinding: does not bind the Role to the Deployment's ServiceAccount")
sys.exit(1 if errors else 0)
EOF
else
	skip "manifests: python3 with PyYAML is not installed (Debian: python3-yaml)"
fi

# --- 4: the plan, as the pod sees it ------------------------------------------------------
# The kubelet's layout of a projected volume: the files are links into ..data, a link to a
# timestamped directory. The tokens are dummies: validate checks that the files exist.
cfg=$tmp/etc/migrate
mkdir -p "$cfg/..2026_01_01_00_00_00.000000000/secrets/cloudflare" \
	"$cfg/..2026_01_01_00_00_00.000000000/secrets/prometheus"
cp "$ex/plan.yaml" "$cfg/..2026_01_01_00_00_00.000000000/plan.yaml"
echo dummy-cloudflare-token >"$cfg/..2026_01_01_00_00_00.000000000/secrets/cloudflare/token"
echo dummy-prometheus-token >"$cfg/..2026_01_01_00_00_00.000000000/secrets/prometheus/token"
ln -s ..2026_01_01_00_00_00.000000000 "$cfg/..data"
ln -s ..data/plan.yaml "$cfg/plan.yaml"
ln -s ..data/secrets "$cfg/secrets"
if out=$("$bin" validate -p "$cfg/plan.yaml" 2>&1); then
	ok "plan: $out"
else
	bad "plan: migrate validate: $out"
fi
if out=$("$bin" plan -p "$cfg/plan.yaml" 2>&1) &&
	printf '%s\n' "$out" | grep -q '^  state in kubernetes migrate/migrate-payments-api (Lease and ConfigMaps)$'; then
	ok "plan: state in kubernetes migrate/migrate-payments-api"
else
	bad "plan: migrate plan does not show the state in kubernetes migrate/migrate-payments-api"
fi

# --- 5: kustomize ---------------------------------------------------------------------------
if command -v kubectl >/dev/null 2>&1; then
	if kubectl kustomize "$ex" >"$tmp/built.yaml" 2>"$tmp/kustomize.err"; then
		n=$(grep -c '^kind: ' "$tmp/built.yaml" || true)
		ok "kubectl kustomize: $n objects"
		if python3 -c 'import yaml' 2>/dev/null; then
			if python3 - "$tmp/built.yaml" "$ex/plan.yaml" <<'EOF'; then ok "kustomize: the generated ConfigMap holds plan.yaml as it is, and the Deployment names it"; else bad "kustomize: generated ConfigMap"; fi
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
plan = open(sys.argv[2]).read()
cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("migrate-plan-")]
dep = [d for d in docs if d["kind"] == "Deployment"][0]
srcs = [s for v in dep["spec"]["template"]["spec"]["volumes"] for s in v.get("projected", {}).get("sources", [])]
named = [s["configMap"]["name"] for s in srcs if "configMap" in s]
sys.exit(0 if len(cms) == 1 and cms[0]["data"]["plan.yaml"] == plan and named == [cms[0]["metadata"]["name"]] else 1)
EOF
		fi
	else
		bad "kubectl kustomize: $(cat "$tmp/kustomize.err")"
	fi
else
	skip "kubectl kustomize: kubectl is not installed"
fi

# --- 6: the Containerfile -------------------------------------------------------------------
arg() { sed -n "s/^ARG $1=\"\\(.*\\)\"\$/\\1/p" "$ex/Containerfile"; }
build_pkgs=$(arg BUILD_PACKAGES)
rt_pkgs=$(arg RUNTIME_PACKAGES)
deb=$(sed -n '/^DEB_PACKAGES *=/,/[^\\]$/p' "$root/Makefile" | sed 's/^DEB_PACKAGES *=//; s/\\$//' | tr -s ' \n' '  ')
missing=""
for p in $build_pkgs; do
	case " $deb " in *" $p "*) ;; *) missing="$missing $p" ;; esac
done
if [ -n "$build_pkgs" ] && [ -z "$missing" ]; then
	ok "Containerfile: build packages are in DEB_PACKAGES ($build_pkgs)"
else
	bad "Containerfile: build packages not in the Makefile's DEB_PACKAGES:${missing:- (none found)}"
fi
if grep -q '^USER 10001:10001$' "$ex/Containerfile" && grep -q 'runAsUser: 10001$' "$ex/deployment.yaml"; then
	ok "Containerfile: USER 10001, as the Deployment's runAsUser"
else
	bad "Containerfile: USER is not the Deployment's runAsUser (10001)"
fi
if command -v ldd >/dev/null 2>&1 && command -v apt-cache >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
	# shellcheck disable=SC2086 # a list of package names
	apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances $rt_pkgs 2>/dev/null | grep -v '^ ' | sed 's/:.*//' |
		sort -u >"$tmp/closure"
	libs=$(ldd "$bin" | awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }')
	n=0
	gaps=""
	for l in $libs; do
		n=$((n + 1))
		p=$(dpkg -S "$l" 2>/dev/null || dpkg -S "$(readlink -f "$l")" 2>/dev/null || true)
		p=${p%%:*}
		if [ -z "$p" ] || ! grep -qx "$p" "$tmp/closure"; then gaps="$gaps $l(${p:-no package})"; fi
	done
	if [ -n "$rt_pkgs" ] && [ -z "$gaps" ]; then
		ok "Containerfile: the runtime packages provide all $n libraries ldd names"
	else
		bad "Containerfile: libraries no runtime package provides:${gaps:- (no RUNTIME_PACKAGES)}"
	fi
else
	skip "Containerfile runtime libraries: needs ldd, dpkg and apt-cache"
fi

[ "$fail" -eq 0 ] && echo "examples-kubernetes: all checks passed" || echo "examples-kubernetes: FAILED"
exit "$fail"
