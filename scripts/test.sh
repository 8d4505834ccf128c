#!/usr/bin/env bash
# The whole test suite: Rust unit + integration tests (they build the binary too), then the
# unmodified-client compatibility tests (boto3, aws CLI, rclone, s3cmd, tus-js-client, tuspy,
# Chromium with Playwright: upgate's pages, Uppy) against that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
# Storage emulators the backend tests start themselves: moto (S3, PyPI) and Azurite (Azure, npm).
command -v npm >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
}
bash scripts/start-emulators.sh install
# ClamAV's daemon and its test files for the malware-scan tests (the tests start clamd
# themselves, with a signature database they build).
if [ ! -x /usr/sbin/clamd ] || [ ! -d /usr/share/clamav-testfiles ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav-daemon clamav-testfiles >/dev/null
fi
# exiftool: the oracle of the image-metadata tests (what a reader of the stored file can see).
command -v exiftool >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libimage-exiftool-perl >/dev/null
}
python3 -m pip install -q --disable-pip-version-check -r tests/compat/requirements.txt
# Real JavaScript clients (tus-js-client) the compatibility tests drive, from the npm registry.
npm ci --prefix tests/compat/js --no-audit --no-fund --loglevel=error
cargo test --all-targets
python3 -m pytest -q tests/compat
