#!/usr/bin/env bash
# Install fidrs from source and run every test: Rust unit tests, then the Python suite (conformance included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== cargo test"
cargo test --release --lib
echo "== ruff (lint and format); the package's structure (import cycles, public surface) is a pytest test"
.venv/bin/python -m pip install -q ruff
.venv/bin/ruff check python tests bench scripts
.venv/bin/ruff format --check python tests
echo "== wheel (built, installed without Rust on PATH, smoke-tested)"
bash scripts/wheel_smoke.sh
echo "== pytest"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"
