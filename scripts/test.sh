#!/usr/bin/env bash
# The whole test suite: Rust unit + integration tests (they build the binary too), then the
# unmodified-client compatibility tests (boto3, aws CLI, rclone, s3cmd) against that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh
python3 -m pip install -q --disable-pip-version-check -r tests/compat/requirements.txt
cargo test --all-targets
python3 -m pytest -q tests/compat
