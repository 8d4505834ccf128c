#!/usr/bin/env bash
# CI check of the Helm chart (helm/upgate), offline apart from PyPI:
#   1. helm lint --strict, with the default values and with helm/values-production.yaml
#   2. helm template of those and of a few variants, for each Kubernetes version below
#   3. every rendered manifest validated (strict: unknown fields fail) against the Kubernetes
#      JSON schemas shipped by the PyPI package kubernetes-validate, plus the chart's own
#      invariants (restricted pod security, config checksum, probes, drain timing)
#   4. combinations the chart must refuse (e.g. several replicas on SQLite) do fail to render
#   5. every value in values.yaml is documented by a comment
#   6. optional: with UPGATE_BIN=path/to/upgate, the rendered upgate.toml and the chart's
#      environment go through `upgate check-config`, which catches drift between the chart
#      and the Rust config (needs a binary that knows every section the chart sets)
# Exits non-zero on any failure.
#
# Environment: KUBE_VERSIONS (default "1.30 1.33"), HELM_CHECK_OUT (keep rendered manifests
# there; default a temp dir), UPGATE_BIN (step 6).
set -euo pipefail

readonly KUBE_VALIDATE_VERSION="1.37.0"
# Kinds without a core schema, skipped by name (CRDs). Anything else without a schema fails.
readonly SKIP_KINDS="ServiceMonitor"

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
chart=helm/upgate
prod=helm/values-production.yaml
kube_versions="${KUBE_VERSIONS:-1.30 1.33}"

bash scripts/fetch-helm.sh
helm="${HELM_CACHE_DIR:-$repo/.cache/bin}/helm"
# Keep helm's own config/cache/data out of $HOME.
export HELM_CONFIG_HOME="$repo/.cache/helm/config" HELM_CACHE_HOME="$repo/.cache/helm/cache" \
  HELM_DATA_HOME="$repo/.cache/helm/data"

if ! python3 -c "import kubernetes_validate, sys; sys.exit(kubernetes_validate.__version__ != '$KUBE_VALIDATE_VERSION')" 2>/dev/null; then
  echo "installing kubernetes-validate==$KUBE_VALIDATE_VERSION" >&2
  python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBE_VALIDATE_VERSION"
fi

if [ -n "${HELM_CHECK_OUT:-}" ]; then
  out="$HELM_CHECK_OUT"
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Render cases: name, then helm value arguments.
declare -A cases=(
  [default]=""
  [production]="-f $prod"
  [persistent-no-metrics]="--set persistence.enabled=true --set metrics.enabled=false --set testConnection=false --set preStopSleepSeconds=0 --set log.format=text"
  [production-plain]="-f $prod --set tls.enabled=false --set autoscaling.enabled=false --set podDisruptionBudget.maxUnavailable=1 --set storage.s3.existingSecret= --set redis.existingSecret="
)
case_order=(default production persistent-no-metrics production-plain)

echo "== helm lint"
for name in default production; do
  # shellcheck disable=SC2086 # word splitting of the value arguments is intended
  if "$helm" lint --strict --quiet $chart ${cases[$name]} >"$out/lint-$name.log" 2>&1; then
    echo "ok   lint $name"
  else
    cat "$out/lint-$name.log" >&2
    fail "helm lint ($name values)"
  fi
done

echo "== helm template"
rendered=()
for name in "${case_order[@]}"; do
  for kv in $kube_versions; do
    file="$out/$name-k8s$kv.yaml"
    # shellcheck disable=SC2086
    if "$helm" template upgate $chart --namespace upgate --kube-version "$kv.0" ${cases[$name]} \
      >"$file" 2>"$out/template-$name-$kv.log"; then
      echo "ok   template $name (Kubernetes $kv): $(grep -c '^kind:' "$file") objects"
      rendered+=("$kv:$file")
    else
      cat "$out/template-$name-$kv.log" >&2
      fail "helm template ($name, Kubernetes $kv)"
    fi
  done
done

echo "== must not render"
must_refuse() {
  local why="$1" expect="$2"
  shift 2
  if "$helm" template upgate $chart "$@" >/dev/null 2>"$out/refuse.log"; then
    fail "rendered although $why ($*)"
  elif grep -q -- "$expect" "$out/refuse.log"; then
    echo "ok   refused: $why"
  else
    cat "$out/refuse.log" >&2
    fail "refused for another reason than: $why"
  fi
}
must_refuse "3 replicas on SQLite and local objects" 'needs storage.backend "s3"' --set replicaCount=3
must_refuse "autoscaling without PostgreSQL" 'needs PostgreSQL' \
  --set autoscaling.enabled=true --set storage.backend=s3 --set storage.s3.bucket=b
must_refuse "several replicas with generated root credentials" 'rootCredentials.existingSecret' \
  --set replicaCount=2 --set storage.backend=s3 --set storage.s3.bucket=b --set database.existingSecret=pg
must_refuse "grace period shorter than the drain" 'terminationGracePeriodSeconds' \
  --set terminationGracePeriodSeconds=30
must_refuse "TLS without a certificate Secret" 'tls.existingSecret' --set tls.enabled=true
must_refuse "an unknown storage backend" 'storage.backend must be' --set storage.backend=memory
must_refuse "the s3 backend without a bucket" 'storage.s3.bucket' --set storage.backend=s3

echo "== every value in values.yaml documented"
# A key is documented by a comment line right above it, or by a documented ancestor (a value
# whose default is a whole block, like resources). Block scalars (config: |) are one value.
if python3 - "$chart/values.yaml" <<'PY'; then
import re, sys

key_re = re.compile(r"^(\s*)(- )?([A-Za-z0-9_.\-]+):(\s.*)?$")
lines = open(sys.argv[1]).read().splitlines()
stack, problems, block_indent, prev = [], [], None, ""
for n, line in enumerate(lines, 1):
    indent = len(line) - len(line.lstrip(" "))
    if block_indent is not None:
        if not line.strip() or indent > block_indent:
            continue
        block_indent = None
    m = key_re.match(line)
    if m:
        col = len(m.group(1)) + (2 if m.group(2) else 0)
        while stack and stack[-1][0] >= col:
            stack.pop()
        rest = (m.group(4) or "").strip()
        documented = prev.lstrip().startswith("#") or any(d for _, _, d in stack)
        if rest and not rest.startswith("#") and not documented:
            problems.append(f"values.yaml:{n}: {m.group(3)} has no comment")
        if rest in ("|", ">", "|-", ">-"):
            block_indent = len(m.group(1))
        stack.append((col, m.group(3), documented))
    if line.strip():
        prev = line
for p in problems:
    print(f"FAIL: {p}", file=sys.stderr)
print(f"values.yaml: {len(problems)} undocumented values")
sys.exit(1 if problems else 0)
PY
  :
else
  fail "undocumented values in $chart/values.yaml"
fi

echo "== schema validation (kubernetes-validate $KUBE_VALIDATE_VERSION, strict) and chart invariants"
if ! python3 - "$SKIP_KINDS" "${rendered[@]}" <<'PY'; then
import sys

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

skip_kinds = set(sys.argv[1].split())
problems = []
counts = {"valid": 0, "skipped": 0}


def pod_specs(doc):
    kind = doc["kind"]
    if kind == "Pod":
        yield doc["metadata"]["name"], doc["spec"]
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def check_pod(where, spec):
    """The restricted Pod Security Standard, and what upgate needs to stay writable-only-where-meant."""
    psc = spec.get("securityContext", {})
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        name = f"{where} container {c['name']}"
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot not set")
        if (sc.get("runAsUser", psc.get("runAsUser")) or 0) == 0:
            problems.append(f"{name}: runs as uid 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities not dropped (drop: [ALL])")


def check_deployment(where, doc):
    tmpl = doc["spec"]["template"]
    spec = tmpl["spec"]
    if "checksum/config" not in tmpl["metadata"].get("annotations", {}):
        problems.append(f"{where}: no checksum/config pod annotation")
    (c,) = [c for c in spec["containers"] if c["name"] == "upgate"]
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        if c.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"{where}: {probe} is not GET {path}")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    grace = int(env.get("UPGATE__SERVER__SHUTDOWN_GRACE_SECS", 30))
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["sleep", "0"])
    if spec.get("terminationGracePeriodSeconds", 30) <= grace + int(pre[-1]):
        problems.append(f"{where}: terminationGracePeriodSeconds does not exceed preStop + shutdown grace")
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    for path in ("/tmp", "/var/lib/upgate"):
        if path not in mounts:
            problems.append(f"{where}: nothing mounted at {path} (read-only root filesystem)")


for arg in sys.argv[2:]:
    version, path = arg.split(":", 1)
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    seen = set()
    for doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        where = f"{path.rsplit('/', 1)[-1]}: {kind}/{name}"
        if (kind, name) in seen:
            problems.append(f"{where}: rendered twice")
        seen.add((kind, name))
        if kind in skip_kinds:
            counts["skipped"] += 1
            print(f"skip {where} (no core schema for this CRD kind)")
        else:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                counts["valid"] += 1
            except ValidationError as e:
                problems.append(f"{where}: {'.'.join(str(p) for p in e.path)}: {e.message}")
            except SchemaNotFoundError as e:
                problems.append(f"{where}: {e.message} (add it to SKIP_KINDS only if it is a CRD)")
        for pod_name, spec in pod_specs(doc):
            check_pod(where, spec)
        if kind == "Deployment":
            check_deployment(where, doc)

for p in problems:
    print(f"FAIL: {p}", file=sys.stderr)
print(f"{counts['valid']} manifests valid, {counts['skipped']} skipped (CRD kinds), {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
  fail "schema validation / chart invariants"
fi

if [ -n "${UPGATE_BIN:-}" ]; then
  echo "== upgate check-config against the rendered config ($UPGATE_BIN)"
  for name in "${case_order[@]}"; do
    kv="${kube_versions%% *}"
    if ! python3 - "$UPGATE_BIN" "$out/$name-k8s$kv.yaml" "$out/$name-upgate.toml" <<'PY'; then
import os, subprocess, sys
import yaml

binary, manifests, toml_path = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(manifests)) if d]
(cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
(dep,) = [d for d in docs if d["kind"] == "Deployment"]
(c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "upgate"]
with open(toml_path, "w") as f:
    f.write(cm["data"]["upgate.toml"])
# Secret-backed variables get plausible stand-ins; check-config connects to nothing.
stand_in = {
    "UPGATE__METADATA__URL": "postgres://upgate:secret@postgres:5432/upgate",
    "UPGATE__REDIS__URL": "redis://redis:6379/0",
}
env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
for e in c.get("env", []):
    env[e["name"]] = e["value"] if "value" in e else stand_in.get(e["name"], "stand-in-secret")
run = subprocess.run([binary, "check-config", "--config", toml_path], env=env, capture_output=True, text=True)
sys.stdout.write(run.stdout)
sys.stderr.write(run.stderr)
sys.exit(run.returncode)
PY
      fail "upgate check-config rejects the rendered $name config"
    else
      echo "ok   check-config $name"
    fi
  done
else
  echo "== upgate check-config: skipped (set UPGATE_BIN=target/debug/upgate to cross-check the Rust config)"
fi

if [ "$failures" -gt 0 ]; then
  echo "helm-check: $failures failure(s)" >&2
  exit 1
fi
echo "helm-check: all checks passed"
