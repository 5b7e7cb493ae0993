#!/usr/bin/env bash
# Install fidrs from source and run every test: Rust unit tests, then the Python suite (conformance included).
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { echo "== $1 (at ${SECONDS} s)"; }  # each phase's start, in seconds since this script began
phase setup
bash scripts/setup.sh
phase "ruff (lint and format); the package's structure (import cycles, public surface) is a pytest test"
.venv/bin/python -m pip install -q ruff
.venv/bin/ruff check python tests bench scripts
.venv/bin/ruff format --check python tests
phase "wheel (built, installed without Rust on PATH, smoke-tested)"
bash scripts/wheel_smoke.sh
# After the wheel: cargo's test build configures PyO3 for an embedded interpreter, maturin's for an extension
# module, and each rebuilds PyO3 and fidrs after the other (~45 s); setup.sh's build is the one the wheel reuses.
phase "cargo test"
cargo test --release --lib
phase "cargo clippy (every target, warnings are errors)"
cargo clippy --release --all-targets -- -D warnings
phase pytest
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --durations=25 "$@"  # the slowest 25 in every CI log: the 20-minute budget
status=$?
set -e
phase "end: pytest exit ${status}"
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"
