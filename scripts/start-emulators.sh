#!/usr/bin/env bash
# Storage backend emulators for the storage tests and benches.
#
#   scripts/start-emulators.sh install   install what is missing (idempotent; CI runs this)
#   scripts/start-emulators.sh start     also start moto (S3) and Azurite (Azure Blob) on fixed
#                                        ports for manual experiments, until Ctrl-C
#
# The tests do not need `start`: tests/backends/mod.rs starts each emulator itself on a free
# port and stops it afterwards. gcp-storage-emulator is not installed: object_store cannot use it
# (its XML-API PUT returns no ETag and multipart answers 501), so the GCS test is #[ignore]d.
set -euo pipefail

install() {
  if ! command -v moto_server >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check 'moto[server]'
  fi
  if ! command -v azurite-blob >/dev/null 2>&1; then
    npm install -g --silent azurite
  fi
  moto_server --version >/dev/null 2>&1 || true
  command -v moto_server >/dev/null && command -v azurite-blob >/dev/null
  echo "emulators: moto_server and azurite-blob are installed"
}

case "${1:-install}" in
  install)
    install
    ;;
  start)
    install
    dir=$(mktemp -d)
    moto_server -H 127.0.0.1 -p "${MOTO_PORT:-5000}" >"$dir/moto.log" 2>&1 &
    moto=$!
    azurite-blob --blobHost 127.0.0.1 --blobPort "${AZURITE_PORT:-10000}" --location "$dir" \
      --silent --skipApiVersionCheck --loose >"$dir/azurite.log" 2>&1 &
    azurite=$!
    trap 'kill "$moto" "$azurite" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
    echo "S3 (moto):   http://127.0.0.1:${MOTO_PORT:-5000}   (any credentials)"
    echo "Azure Blob:  http://127.0.0.1:${AZURITE_PORT:-10000}/devstoreaccount1"
    wait
    ;;
  *)
    echo "usage: $0 [install|start]" >&2
    exit 2
    ;;
esac
